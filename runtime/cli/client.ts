/**
 * The CLI's client for the running daemon. The daemon writes `<data>/runtime.json`
 * ({pid, http: {host, port}, startedAt, version, ...}) and `<data>/cli-token` (mode 0600)
 * at start; the client reads both and calls the REST API with `Authorization: Bearer`.
 *
 * Errors: no runtime.json, a dead pid or a refused connection → NOT_RUNNING ("Talon is
 * not running on data folder X"); an API error body `{error: {code, message, details}}`
 * → a DaemonError carrying the HTTP status. The CLI exits 2 for 4xx answers about what
 * the operator asked (HAND_NOT_FOUND, HAND_STATE, BAD_REQUEST...), 1 for the rest
 * (401/403 mean the token is wrong, which is not the command line's fault).
 */
import { request as httpRequest, type IncomingMessage } from 'node:http';
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { TalonError, exitForStatus, isErrorJSON, type ErrorCode } from '../core/errors.ts';

export const RUNTIME_FILE = 'runtime.json';
export const CLI_TOKEN_FILE = 'cli-token';
/** an API answer larger than this is refused */
const MAX_BODY = 32 * 1024 * 1024;

export interface RuntimeInfo {
  pid: number;
  http: { host: string; port: number };
  startedAt?: string | number;
  version?: string;
}

/** An error answered by the daemon: its code and message, and the HTTP status. */
export class DaemonError extends TalonError {
  readonly httpStatus: number;
  constructor(code: ErrorCode, message: string, httpStatus: number, details?: unknown) {
    super(code, message, details === undefined ? {} : { details });
    this.httpStatus = httpStatus;
  }

  override get status(): number {
    return this.httpStatus;
  }

  override get exitCode(): 1 | 2 {
    return exitForStatus(this.httpStatus);
  }
}

export function notRunning(dataDir: string, why?: string): TalonError {
  return new TalonError(
    'NOT_RUNNING',
    `Talon is not running on data folder ${dataDir} (start it with \`talon run\`)${why ? `; ${why}` : ''}`,
  );
}

/** Where the CLI looks for the daemon: --data, then TALON_DATA, then ./data. */
export function defaultDataDir(flag: string | undefined, env: NodeJS.ProcessEnv, cwd: string): string {
  const v = flag ?? (env.TALON_DATA && env.TALON_DATA.trim() !== '' ? env.TALON_DATA.trim() : undefined) ?? 'data';
  return resolve(cwd, v);
}

export interface ClientOptions {
  /** per-request timeout (not for streams), ms */
  timeoutMs?: number;
  /** a stream with no bytes (the daemon pings every 15 s) for this long is dead, ms */
  streamIdleMs?: number;
}

export class DaemonClient {
  readonly dataDir: string;
  readonly info: RuntimeInfo;
  #token: string;
  #timeoutMs: number;
  #streamIdleMs: number;

  constructor(dataDir: string, info: RuntimeInfo, token: string, opts: ClientOptions = {}) {
    this.dataDir = dataDir;
    this.info = info;
    this.#token = token;
    this.#timeoutMs = opts.timeoutMs ?? 60_000;
    this.#streamIdleMs = opts.streamIdleMs ?? 60_000;
  }

  /** Reads runtime.json and the token of the daemon on `dataDir`. */
  static open(dataDir: string, opts: ClientOptions = {}): DaemonClient {
    const file = join(dataDir, RUNTIME_FILE);
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOENT' || code === 'ENOTDIR') throw notRunning(dataDir, undefined);
      throw new TalonError('NOT_RUNNING', `cannot read ${file}: ${(err as Error).message}`, { cause: err });
    }
    let info: unknown;
    try {
      info = JSON.parse(text);
    } catch {
      throw notRunning(dataDir, `${file} is not valid JSON`);
    }
    if (!isRuntimeInfo(info)) throw notRunning(dataDir, `${file} does not say where the daemon listens`);
    if (!pidAlive(info.pid)) throw notRunning(dataDir, `process ${info.pid} from ${RUNTIME_FILE} has exited`);
    const tokenFile = join(dataDir, CLI_TOKEN_FILE);
    let token: string;
    try {
      token = readFileSync(tokenFile, 'utf8').trim();
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      const hint =
        code === 'EACCES' || code === 'EPERM' ? ' (run the CLI as the user Talon runs as, or with sudo)' : '';
      throw new TalonError(
        'UNAUTHORIZED',
        `cannot read the CLI token ${tokenFile}: ${code ?? (err as Error).message}${hint}`,
        { cause: err },
      );
    }
    if (token === '')
      throw new TalonError('UNAUTHORIZED', `the CLI token ${tokenFile} is empty; restart Talon to write a new one`);
    return new DaemonClient(dataDir, info, token, opts);
  }

  get baseUrl(): string {
    const { host, port } = this.#target();
    return `http://${host.includes(':') ? `[${host}]` : host}:${port}`;
  }

  /** A JSON request; resolves with the parsed body of a 2xx answer. */
  async request<T>(method: 'GET' | 'POST' | 'PUT' | 'DELETE', path: string, body?: unknown): Promise<T> {
    const payload = body === undefined ? undefined : JSON.stringify(body);
    const res = await this.#send(method, path, payload, 'application/json', this.#timeoutMs);
    const text = await readBody(res, MAX_BODY);
    if (res.statusCode === undefined || res.statusCode >= 300) throw this.#errorFrom(res.statusCode ?? 0, text);
    try {
      return JSON.parse(text) as T;
    } catch {
      throw new TalonError(
        'INTERNAL',
        `Talon at ${this.baseUrl} answered ${method} ${path} with something that is not JSON`,
      );
    }
  }

  /** Streams a 2xx answer's body into `out` (exports); errors as for request(). */
  async download(path: string, out: NodeJS.WritableStream, accept = 'application/x-ndjson'): Promise<void> {
    const res = await this.#send('GET', path, undefined, accept, this.#timeoutMs);
    if (res.statusCode === undefined || res.statusCode >= 300)
      throw this.#errorFrom(res.statusCode ?? 0, await readBody(res, MAX_BODY));
    const { pipeline } = await import('node:stream/promises');
    await pipeline(res, out);
  }

  /**
   * Reads a text/event-stream; calls `onEvent(data, event)` for each event. Resolves when
   * the daemon ends the stream or `signal` aborts; rejects on errors.
   */
  /** POSTs a JSON body and reads the answer as an event stream (LLM chat). */
  postStream(
    path: string,
    body: unknown,
    onEvent: (data: string, event: string) => void,
    signal?: AbortSignal,
  ): Promise<void> {
    return this.stream(path, onEvent, signal, body);
  }

  async stream(
    path: string,
    onEvent: (data: string, event: string) => void,
    signal?: AbortSignal,
    body?: unknown,
  ): Promise<void> {
    const res =
      body === undefined
        ? await this.#send('GET', path, undefined, 'text/event-stream', this.#timeoutMs, signal)
        : await this.#send('POST', path, JSON.stringify(body), 'text/event-stream', this.#timeoutMs, signal);
    if (res.statusCode === undefined || res.statusCode >= 300)
      throw this.#errorFrom(res.statusCode ?? 0, await readBody(res, MAX_BODY));
    if (!/^text\/event-stream/.test(String(res.headers['content-type']))) {
      res.destroy();
      throw new TalonError('INTERNAL', `Talon at ${this.baseUrl} did not answer ${path} with an event stream`);
    }
    res.setEncoding('utf8');
    await new Promise<void>((resolveStream, reject) => {
      let buf = '';
      let data: string[] = [];
      let event = 'message';
      let failed = false;
      let idle: NodeJS.Timeout | undefined;
      const arm = () => {
        clearTimeout(idle);
        idle = setTimeout(
          () =>
            res.destroy(
              new TalonError(
                'NOT_RUNNING',
                `the log stream from ${this.baseUrl} went silent for ${this.#streamIdleMs} ms`,
              ),
            ),
          this.#streamIdleMs,
        );
      };
      const done = (err?: unknown) => {
        clearTimeout(idle);
        signal?.removeEventListener('abort', onAbort);
        if (err) reject(err);
        else resolveStream();
      };
      const onAbort = () => {
        res.destroy();
        done();
      };
      if (signal?.aborted) return onAbort();
      signal?.addEventListener('abort', onAbort, { once: true });
      arm();
      res.on('data', (chunk: string) => {
        if (failed) return;
        arm();
        buf += chunk;
        if (buf.length > MAX_BODY)
          return res.destroy(new TalonError('INTERNAL', 'an event from the daemon is larger than 32 MB'));
        let nl: number;
        while ((nl = buf.indexOf('\n')) >= 0) {
          const line = buf.slice(0, nl).replace(/\r$/, '');
          buf = buf.slice(nl + 1);
          if (line === '') {
            if (data.length > 0) {
              try {
                onEvent(data.join('\n'), event);
              } catch (err) {
                failed = true;
                res.destroy();
                return done(err);
              }
            }
            data = [];
            event = 'message';
          } else if (line.startsWith(':')) {
            // comment / keep-alive ping
          } else {
            const i = line.indexOf(':');
            const field = i < 0 ? line : line.slice(0, i);
            const value = i < 0 ? '' : line.slice(i + 1).replace(/^ /, '');
            if (field === 'data') data.push(value);
            else if (field === 'event') event = value;
          }
        }
      });
      res.on('end', () => done());
      res.on('error', (err) => failed || done(signal?.aborted ? undefined : this.#connError(err)));
      res.on('close', () => {
        if (!res.complete && !signal?.aborted && !failed)
          done(new TalonError('NOT_RUNNING', `Talon at ${this.baseUrl} closed the stream`));
      });
    });
  }

  #target(): { host: string; port: number } {
    const { host, port } = this.info.http;
    // a daemon listening on every address is reached on loopback
    if (host === '0.0.0.0' || host === '') return { host: '127.0.0.1', port };
    if (host === '::' || host === '[::]') return { host: '::1', port };
    return { host: host.replace(/^\[(.*)\]$/, '$1'), port };
  }

  #send(
    method: string,
    path: string,
    payload: string | undefined,
    accept: string,
    timeoutMs: number,
    signal?: AbortSignal,
  ): Promise<IncomingMessage> {
    const { host, port } = this.#target();
    return new Promise((resolveRes, reject) => {
      const req = httpRequest({
        host,
        port,
        method,
        path,
        headers: {
          authorization: `Bearer ${this.#token}`,
          accept,
          ...(payload === undefined
            ? {}
            : { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) }),
        },
        ...(signal ? { signal } : {}),
      });
      // until the answer's head arrives; a stream's body has its own idle timer
      const timer = setTimeout(
        () =>
          req.destroy(
            new TalonError(
              'INTERNAL',
              `Talon at ${this.baseUrl} did not answer ${method} ${path} within ${Math.round(timeoutMs / 1000)} s`,
            ),
          ),
        timeoutMs,
      );
      req.on('response', (res) => {
        clearTimeout(timer);
        resolveRes(res);
      });
      req.on('error', (err) => {
        clearTimeout(timer);
        reject(err instanceof TalonError ? err : this.#connError(err));
      });
      req.end(payload);
    });
  }

  #connError(err: unknown): TalonError {
    if (err instanceof TalonError) return err;
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ECONNREFUSED') return notRunning(this.dataDir, `nothing answers at ${this.baseUrl}`);
    if (code === 'ABORT_ERR') return new TalonError('INTERNAL', 'aborted');
    return new TalonError('NOT_RUNNING', `cannot reach Talon at ${this.baseUrl}: ${code ?? (err as Error).message}`, {
      cause: err,
    });
  }

  #errorFrom(status: number, text: string): TalonError {
    let body: unknown;
    try {
      body = JSON.parse(text);
    } catch {
      /* not JSON */
    }
    const e = (body as { error?: unknown } | undefined)?.error;
    if (isErrorJSON(e)) {
      let message = e.message;
      if (status === 401)
        message += ` (the token in ${join(this.dataDir, CLI_TOKEN_FILE)} was refused; is ${this.dataDir} the data folder of the Talon at ${this.baseUrl}?)`;
      return new DaemonError(e.code, message, status, e.details);
    }
    return new DaemonError(
      status === 404 ? 'NOT_FOUND' : 'INTERNAL',
      `Talon at ${this.baseUrl} answered HTTP ${status}${text ? `: ${text.slice(0, 200)}` : ''}`,
      status,
    );
  }
}

function isRuntimeInfo(v: unknown): v is RuntimeInfo {
  const o = v as RuntimeInfo;
  return (
    typeof o === 'object' &&
    o !== null &&
    Number.isInteger(o.pid) &&
    typeof o.http === 'object' &&
    o.http !== null &&
    typeof o.http.host === 'string' &&
    Number.isInteger(o.http.port) &&
    o.http.port > 0 &&
    o.http.port < 65536
  );
}

function pidAlive(pid: number): boolean {
  if (pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM'; // alive, someone else's
  }
}

function readBody(res: IncomingMessage, limit: number): Promise<string> {
  return new Promise((resolveBody, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    res.on('data', (c: Buffer) => {
      size += c.length;
      if (size > limit) {
        res.destroy(new TalonError('INTERNAL', `an answer from the daemon is larger than ${limit} bytes`));
        return;
      }
      chunks.push(c);
    });
    res.on('end', () => resolveBody(Buffer.concat(chunks).toString('utf8')));
    res.on('error', reject);
  });
}
