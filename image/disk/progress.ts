/**
 * The console display of an image build: numbered steps with their time, and a live status
 * line for long commands (the last line mmdebstrap printed), redrawn in place on a terminal
 * and printed every few seconds otherwise.
 */
import { spawn } from 'node:child_process';
import { TalonError } from '../../runtime/core/errors.ts';

export interface ProgressOptions {
  write(s: string): void;
  tty: boolean;
  now?: () => number;
}

export class Progress {
  #step = 0;
  #started = 0;
  #lastStatus = 0;
  #statusShown = false;
  readonly #now: () => number;
  readonly #t0: number;
  readonly #opts: ProgressOptions;
  readonly #total: number;
  constructor(total: number, opts: ProgressOptions) {
    this.#opts = opts;
    this.#total = total;
    this.#now = opts.now ?? Date.now;
    this.#t0 = this.#now();
  }

  /** Starts the next numbered step. */
  begin(title: string): void {
    this.#endStatus();
    this.#step++;
    this.#started = this.#now();
    this.#opts.write(`[${this.#step}/${this.#total}] ${title}\n`);
  }

  /** A finished step's line: `      done in 12.3 s`. */
  done(what = 'done'): void {
    this.#endStatus();
    this.#opts.write(`      ${what} in ${secs(this.#now() - this.#started)}\n`);
  }

  note(s: string): void {
    this.#endStatus();
    this.#opts.write(`      ${s}\n`);
  }

  /** A live status line (a command's output); throttled when not on a terminal. */
  status(s: string): void {
    const line = s.replace(/\s+/g, ' ').trim();
    if (!line) return;
    const elapsed = secs(this.#now() - this.#started);
    if (this.#opts.tty) {
      const cols = Math.max(40, (process.stdout.columns ?? 100) - 1);
      this.#opts.write(`\r\x1b[2K      ${`${elapsed}  ${line}`.slice(0, cols - 6)}`);
      this.#statusShown = true;
    } else if (this.#now() - this.#lastStatus >= 5000) {
      this.#lastStatus = this.#now();
      this.#opts.write(`      ${elapsed}  ${line.slice(0, 160)}\n`);
    }
  }

  finish(s: string): void {
    this.#endStatus();
    this.#opts.write(`${s} (total ${secs(this.#now() - this.#t0)})\n`);
  }

  #endStatus(): void {
    if (this.#statusShown) this.#opts.write('\r\x1b[2K');
    this.#statusShown = false;
  }
}

function secs(ms: number): string {
  return `${(ms / 1000).toFixed(1)} s`;
}

/**
 * Runs a command, its output lines going to the status line; the last lines are kept for
 * the error when it fails (TalonError IMAGE_BUILD).
 */
export function run(
  cmd: string,
  args: string[],
  progress: Progress | null,
  opts: { label?: string; input?: string; env?: NodeJS.ProcessEnv } = {},
): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, {
      stdio: [opts.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
      env: opts.env ?? process.env,
    });
    const tail: string[] = [];
    let out = '';
    const feed = (chunk: Buffer, keep: boolean): void => {
      const text = chunk.toString('utf8');
      if (keep) out += text;
      for (const line of text.split(/\r?\n|\r/)) {
        if (!line.trim()) continue;
        tail.push(line);
        if (tail.length > 30) tail.shift();
        progress?.status(line);
      }
    };
    child.stdout!.on('data', (c: Buffer) => feed(c, true));
    child.stderr!.on('data', (c: Buffer) => feed(c, false));
    child.on('error', (err: NodeJS.ErrnoException) => {
      reject(
        err.code === 'ENOENT'
          ? new TalonError(
              'IMAGE_TOOL_MISSING',
              `${cmd} is not installed (apt-get install ${TOOL_PACKAGES[cmd] ?? cmd})`,
            )
          : new TalonError('IMAGE_BUILD', `${cmd} failed to start: ${err.message}`, { cause: err }),
      );
    });
    child.on('close', (code, signal) => {
      if (code === 0) resolve(out);
      else
        reject(
          new TalonError(
            'IMAGE_BUILD',
            `${opts.label ?? cmd} failed (${signal ?? `exit ${code}`}):\n${tail
              .slice(-15)
              .map((l) => `  ${l}`)
              .join('\n')}`,
          ),
        );
    });
    if (opts.input !== undefined && child.stdin) {
      child.stdin.on('error', () => {
        /* the command's exit status says what went wrong */
      });
      child.stdin.end(opts.input);
    }
  });
}

/** The Debian package that has each tool the build runs. */
export const TOOL_PACKAGES: Record<string, string> = {
  mmdebstrap: 'mmdebstrap',
  sfdisk: 'fdisk',
  'mkfs.vfat': 'dosfstools',
  mcopy: 'mtools',
  mmd: 'mtools',
  mke2fs: 'e2fsprogs',
  tar: 'tar',
  zstd: 'zstd',
  xz: 'xz-utils',
  dd: 'coreutils',
};
