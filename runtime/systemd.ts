/**
 * sd_notify for the daemon under systemd (Type=notify, WatchdogSec=): READY=1 once the kernel
 * is up, WATCHDOG=1 every WATCHDOG_USEC/3 while the event loop turns, STOPPING=1 on stop.
 *
 * The protocol is a datagram on the AF_UNIX socket named by $NOTIFY_SOCKET. Node has no unix
 * datagram sockets, and the npm packages that add them (unix-dgram, sd-notify) are native
 * addons — one more binary to carry in the single executable for a handful of tiny messages.
 * So Talon runs systemd's own `systemd-notify`, present wherever systemd is; the unit sets
 * NotifyAccess=all because the message comes from that child, not the main process. Since
 * systemd 246 systemd-notify waits (a BARRIER=1 round trip) until the manager has read the
 * message, so the child's exit does not race it. Outside systemd (no NOTIFY_SOCKET) all of
 * this is a no-op.
 */
import { execFile } from 'node:child_process';
import type { Logger } from './log.ts';

export interface SystemdNotifier {
  ready(): void;
  stopping(): void;
  /** stops the watchdog timer */
  close(): void;
  /** the watchdog period in ms, or null when systemd set none */
  readonly watchdogMs: number | null;
}

export interface NotifyOptions {
  env?: NodeJS.ProcessEnv;
  pid?: number;
  logger?: Pick<Logger, 'warn' | 'debug'>;
  /** the program that sends one message (tests put a fake here) */
  command?: string;
  /** the watchdog is fed only while this says yes (default: always) */
  healthy?: () => boolean;
}

const NOOP: SystemdNotifier = { ready() {}, stopping() {}, close() {}, watchdogMs: null };

export function systemdNotifier(opts: NotifyOptions = {}): SystemdNotifier {
  const env = opts.env ?? process.env;
  if (!env.NOTIFY_SOCKET) return NOOP;
  const pid = opts.pid ?? process.pid;
  const command = opts.command ?? 'systemd-notify';
  let warned = false;
  const send = (...messages: string[]): void => {
    execFile(command, messages, { env: { ...env }, timeout: 10_000 }, (err) => {
      if (err && !warned) {
        warned = true;
        opts.logger?.warn(`systemd notify (${messages.join(' ')}) failed: ${err.message}`);
      }
    });
  };
  // WATCHDOG_PID names the process systemd watches; a child of ours that inherited the variables is not it
  const usec = Number(env.WATCHDOG_USEC);
  const forUs = env.WATCHDOG_PID === undefined || Number(env.WATCHDOG_PID) === pid;
  const watchdogMs = forUs && Number.isFinite(usec) && usec > 0 ? Math.max(1, Math.floor(usec / 1000)) : null;
  let timer: NodeJS.Timeout | null = null;
  return {
    watchdogMs,
    ready() {
      send('READY=1', 'STATUS=running');
      if (watchdogMs !== null && timer === null) {
        timer = setInterval(
          () => {
            if (opts.healthy === undefined || opts.healthy()) send('WATCHDOG=1');
          },
          Math.max(1, Math.floor(watchdogMs / 3)),
        );
        timer.unref();
      }
    },
    stopping() {
      if (timer) clearInterval(timer);
      timer = null;
      send('STOPPING=1', 'STATUS=stopping');
    },
    close() {
      if (timer) clearInterval(timer);
      timer = null;
    },
  };
}
