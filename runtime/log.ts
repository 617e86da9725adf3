/** The daemon's own log lines: one line each, to stdout (journald picks them up on a device). */
import type { LogLevel } from './core/hand.ts';

const ORDER: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };

export interface Logger {
  debug(msg: string): void;
  info(msg: string): void;
  warn(msg: string): void;
  error(msg: string): void;
  line(level: LogLevel, source: string, msg: string): void;
}

export function createLogger(level: LogLevel, write: (s: string) => void = (s) => process.stdout.write(s)): Logger {
  const min = ORDER[level];
  const line = (lvl: LogLevel, source: string, msg: string): void => {
    // a line break in a message (a Hand's log line is its own text) continues the entry, indented: it
    // cannot start a line that passes for another entry
    if (ORDER[lvl] >= min)
      write(
        `${new Date().toISOString()} ${lvl.padEnd(5)} [${source}] ${String(msg).replace(/\r\n|\r|\n/g, '\n    | ')}\n`,
      );
  };
  return {
    debug: (m) => line('debug', 'talon', m),
    info: (m) => line('info', 'talon', m),
    warn: (m) => line('warn', 'talon', m),
    error: (m) => line('error', 'talon', m),
    line,
  };
}
