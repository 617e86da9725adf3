/**
 * The runtime inside every Hand's worker_thread (bundled to dist/hand-worker.cjs, CommonJS).
 * It loads the Hand's module, builds `ctx`, and speaks ./protocol.ts with the kernel.
 *
 * Two modes (workerData.mode):
 *   manifest  load the module, post its manifest, nothing else (the kernel reads manifests
 *             in a throwaway worker so Hand code never runs on the kernel's thread);
 *   run       start the Hand, heartbeat, batch publishes per tick, dispatch deliveries.
 *
 * The kernel re-checks everything sent from here; the local checks exist to fail fast with a
 * typed error and to keep a flooding Hand's excess off the kernel's thread.
 *
 * Before any Hand code runs (both modes: a module's top level runs while its manifest is read)
 * it closes what Node's permission model leaves open to a worker: the ports to the kernel
 * (./port-guard.ts), process.kill, the network (./net-guard.ts, unless raw), the process's file
 * descriptors (./fd-guard.ts), node:sqlite (./sqlite-guard.ts), process._rawDebug and
 * process.report. See runtime/supervisor/README.md.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { getHeapStatistics } from 'node:v8';
import { format } from 'node:util';
import type { BusMessageIn, HandContext, HandDefinition, HandFetchInit, HandStore, LogLevel } from '../core/hand.ts';
import type { DeniedMsg, KernelToWorker, WorkerData, WorkerToKernel } from '../core/protocol.ts';
import { REQUEST_ANSWER_MAX, RETAIN_FLAG } from '../core/protocol.ts';
import { TalonError, type ErrorJSON } from '../core/errors.ts';
import { TokenBucket } from '../core/token-bucket.ts';
import { Grants } from '../core/grants.ts';
import { validateFilter, validateTopic, toAbsolute } from '../core/topics.ts';
import { installNetworkGuard } from './net-guard.ts';
import { installFdGuard } from './fd-guard.ts';
import { installSqliteGuard } from './sqlite-guard.ts';
import { installPortGuard } from './port-guard.ts';
import { boundedJson } from '../core/bounded-json.ts';

declare const require: (id: string) => unknown;

if (!parentPort) throw new Error('hand-worker.cjs runs only as a worker_thread started by the Talon kernel');
const port = parentPort;
const data = workerData as WorkerData;
// The ports to the kernel are the runtime's alone (./port-guard.ts): Hand code gets `parentPort: null`,
// Node's stdio port takes only stdio, and `post` is the SDK's own. What the kernel receives is checked
// there anyway; this keeps heartbeats, logs and refusals the SDK's.
const post: (msg: WorkerToKernel) => void = installPortGuard(port, {
  hand: data.mode === 'run' ? data.name : undefined,
  report: (action, subject) => reportDenied(action, subject),
});

/** the sizes the kernel keeps (runtime/supervisor/hand-runner.ts): cut here already, so the rest never crosses */
const LOG_MSG_MAX = 8192;
const LOG_DATA_MAX = 16 * 1024;
const SUBJECT_MAX = 256;
const ERROR_TEXT_MAX = 2000;
const clip = (s: string, max: number): string =>
  s.length <= max ? s : `${s.slice(0, max)}… [${s.length - max} more characters cut]`;

function errorJSON(err: unknown): ErrorJSON {
  if (err instanceof TalonError) return err.toJSON();
  if (
    typeof err === 'object' &&
    err !== null &&
    typeof (err as { code?: unknown }).code === 'string' &&
    typeof (err as { message?: unknown }).message === 'string' &&
    /^[A-Z_]+$/.test((err as { code: string }).code)
  ) {
    const e = err as { code: string; message: string };
    return { code: e.code.slice(0, 40) as ErrorJSON['code'], message: clip(e.message, ERROR_TEXT_MAX) };
  }
  let message: string;
  try {
    message = err instanceof Error ? String(err.message) : String(err);
  } catch {
    message = '(an error that cannot be printed)';
  }
  return { code: 'INTERNAL', message: clip(message, ERROR_TEXT_MAX) };
}

function stackOf(err: unknown): string | undefined {
  return err instanceof Error && typeof err.stack === 'string' ? err.stack.slice(0, 4000) : undefined;
}

function loadHand(modulePath: string): HandDefinition {
  const mod = require(modulePath) as { default?: unknown } | undefined;
  const def = (mod && typeof mod === 'object' && 'default' in mod ? mod.default : mod) as HandDefinition | undefined;
  if (!def || typeof def !== 'object')
    throw new TalonError(
      'MANIFEST_INVALID',
      `${modulePath} does not export a Hand (export default defineHand({ manifest, start }))`,
    );
  return def;
}

// -- lock-down: what Node's permission model leaves open to a worker ------------------------
// process.kill from a worker signals the whole kernel process (even SIGKILL); see
// runtime/supervisor/README.md. Replace it before any Hand code runs, in both modes.
for (const name of ['kill', '_kill']) {
  Object.defineProperty(process, name, {
    value: () => {
      reportDenied('process.signal', `process.${name}`);
      throw new TalonError('CAPABILITY_DENIED', `process.${name} is not available to a Hand`);
    },
    writable: false,
    configurable: false,
  });
}

// Refusals found here go to the kernel to be audited: at most DENIES_PER_SEC a second; the
// rest are counted and sent along with the next one (or a second later), so a Hand retrying in
// a loop costs the kernel a few messages a second, not one per attempt.
const DENIES_PER_SEC = 20;
let denyWindow = 0;
let denySent = 0;
let denyHeld: { action: string; subject: string; n: number } | null = null;
const reportDenied = (action: string, rawSubject: string): void => {
  const subject = clip(String(rawSubject), SUBJECT_MAX);
  const now = performance.now();
  if (now - denyWindow >= 1000) {
    denyWindow = now;
    denySent = 0;
  }
  if (denySent >= DENIES_PER_SEC) {
    if (!denyHeld) {
      denyHeld = { action, subject, n: 0 };
      setTimeout(flushDenied, Math.max(1, 1000 - (now - denyWindow))).unref();
    }
    denyHeld.action = action;
    denyHeld.subject = subject;
    denyHeld.n++;
    return;
  }
  denySent++;
  const msg: DeniedMsg = { t: 'denied', action, subject };
  if (denyHeld) {
    msg.suppressed = denyHeld.n;
    denyHeld = null;
  }
  post(msg);
};
function flushDenied(): void {
  const h = denyHeld;
  if (!h) return;
  denyHeld = null;
  // this message stands for the h.n refusals held back: itself and h.n - 1 more
  post({ t: 'denied', action: h.action, subject: h.subject, suppressed: h.n - 1 });
}

// Without a raw network grant the worker has no --allow-net: Node refuses every socket and DNS
// query. The guard turns the common entry points into a typed CAPABILITY_DENIED the kernel audits.
const rawNetwork = data.mode === 'run' && data.grants.network.raw === true;
const handName = data.mode === 'run' ? data.name : undefined;
if (!rawNetwork) installNetworkGuard({ hand: handName, report: reportDenied });
// The process's descriptors (LevelDB's files, the daemon's stdout) are not the Hand's: only the
// ones it opens itself (./fd-guard.ts). node:sqlite opens files past the permission model: held
// to the fs grants (./sqlite-guard.ts).
const fdGuard = installFdGuard({ hand: handName, report: reportDenied, rawNetwork });
installSqliteGuard({
  hand: handName,
  report: reportDenied,
  fs: data.mode === 'run' ? data.grants.fs : { read: [], write: [] },
});
// process._rawDebug writes to the process's fd 2 from any thread: send it down the worker's stderr
// (which the kernel captures as the Hand's log) instead
Object.defineProperty(process, '_rawDebug', {
  value: (...args: unknown[]) => {
    try {
      process.stderr.write(`${format(...args)}\n`);
    } catch {
      // nothing to do
    }
  },
  writable: false,
  configurable: false,
});
// process.report.getReport() answers with the whole process's environment (the kernel's, not the
// worker's empty one), command line and native state: not the Hand's to read
{
  const report = process.report as unknown as Record<string, unknown> | undefined;
  if (report) {
    for (const name of ['getReport', 'writeReport']) {
      Object.defineProperty(report, name, {
        value: () => {
          reportDenied('process.report', `process.report.${name}`);
          throw new TalonError(
            'CAPABILITY_DENIED',
            `process.report.${name} is not available to a Hand (it describes the kernel's process)`,
          );
        },
        writable: false,
        configurable: false,
      });
    }
  }
}

// FileHandles are locked once one has been seen (an fs.promises.open of the module file, which
// the worker may read); only then does Hand code load
fdGuard.lockFileHandles(data.modulePath).then(
  () => {
    if (data.mode === 'manifest') {
      try {
        const def = loadHand(data.modulePath);
        try {
          post({ t: 'manifest', manifest: def.manifest });
        } catch (err) {
          throw new TalonError(
            'MANIFEST_INVALID',
            `the manifest of ${data.modulePath} is not plain data: ${(err as Error).message}`,
          );
        }
      } catch (err) {
        post({ t: 'error', phase: 'load', error: errorJSON(err), stack: stackOf(err) });
      }
    } else {
      runHand(data);
    }
  },
  (err: unknown) => {
    post({
      t: 'error',
      phase: 'load',
      error: { code: 'INTERNAL', message: `the worker runtime could not lock file handles: ${(err as Error).message}` },
    });
  },
);

function runHand(wd: Extract<WorkerData, { mode: 'run' }>): void {
  const grants = new Grants(wd.grants, `talon/${wd.deviceId}`);
  const root = grants.root;
  let handlerErrors = 0;
  let stopping = false;

  // -- logging --------------------------------------------------------------------------------
  const log = (level: LogLevel, msg: string, data?: Record<string, unknown>): void => {
    const text = clip(String(msg), LOG_MSG_MAX);
    if (data === undefined) {
      post({ t: 'log', level, msg: text });
      return;
    }
    const json = boundedJson(data, LOG_DATA_MAX);
    post({
      t: 'log',
      level,
      msg: text,
      data:
        json !== null
          ? (JSON.parse(json) as Record<string, unknown>)
          : { truncated: `the data was over ${LOG_DATA_MAX} bytes of JSON (or not JSON) and was dropped` },
    });
  };
  const consoleLevel: Record<string, LogLevel> = {
    log: 'info',
    info: 'info',
    debug: 'debug',
    trace: 'debug',
    warn: 'warn',
    error: 'error',
  };
  for (const [method, level] of Object.entries(consoleLevel)) {
    (console as unknown as Record<string, unknown>)[method] = (...args: unknown[]) => log(level, format(...args));
  }

  const handlerFailed = (where: string, err: unknown): void => {
    handlerErrors++;
    log('error', `${where} threw: ${err instanceof Error ? err.message : String(err)}`, { stack: stackOf(err) ?? '' });
  };
  process.on('unhandledRejection', (reason) => handlerFailed('a promise', reason));

  // -- heartbeat ------------------------------------------------------------------------------
  const heartbeat = (): void => {
    const h = getHeapStatistics();
    post({ t: 'hb', heapUsed: h.used_heap_size, heapLimit: h.heap_size_limit, handlerErrors });
  };
  setInterval(heartbeat, wd.heartbeatMs);

  // -- RPC ------------------------------------------------------------------------------------
  let nextCall = 1;
  const pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: unknown) => void }>();
  const call = <T>(method: string, args: unknown[]): Promise<T> =>
    new Promise<T>((resolve, reject) => {
      if (stopping && !method.startsWith('store.')) {
        reject(new TalonError('HAND_STOPPED', `the Hand is stopping; ${method} was not sent`));
        return;
      }
      const id = nextCall++;
      try {
        post({ t: 'call', id, method, args });
      } catch (err) {
        reject(
          new TalonError(
            'BAD_REQUEST',
            `arguments of ${method} cannot be sent to the kernel: ${(err as Error).message}`,
          ),
        );
        return;
      }
      pending.set(id, { resolve: resolve as (v: unknown) => void, reject });
    });

  // -- publish: checked here, batched per tick -----------------------------------------------
  // messagesPerSec, burst the same; the clock is read only when the bucket runs dry
  const bucket = new TokenBucket({ rate: wd.quotas.messagesPerSec, now: performance.now() });
  let batch: Array<string | Uint8Array | number> = [];
  let dropped = 0;
  let flushScheduled = false;
  const topicCache = new Map<string, string | null>();

  const flush = (): void => {
    flushScheduled = false;
    if (batch.length === 0 && dropped === 0) return;
    const m = batch;
    const d = dropped;
    batch = [];
    dropped = 0;
    post({ t: 'pub', m, dropped: d });
  };

  const absTopic = (topic: string): string => {
    let abs = topicCache.get(topic);
    if (abs === undefined) {
      if (typeof topic !== 'string') throw new TalonError('BUS_TOPIC_INVALID', 'topic must be a string');
      abs = toAbsolute(root, topic);
      validateTopic(abs);
      abs = grants.canPublish(abs) ? abs : null;
      if (topic.length <= 1024) {
        // a long topic is checked each time, never kept
        if (topicCache.size > 4096) topicCache.clear();
        topicCache.set(topic, abs);
      }
    }
    if (abs === null) {
      const full = toAbsolute(root, topic);
      reportDenied('bus.publish', full);
      throw new TalonError(
        'CAPABILITY_DENIED',
        `Hand "${wd.name}" may not publish to ${full}; its grant allows ${grants.caps.bus.publish.join(', ') || 'no topics'}`,
      );
    }
    return abs;
  };

  const publish = (topic: string, payload: unknown, opts?: { qos?: 0 | 1 | 2; retain?: boolean }): void => {
    const abs = absTopic(topic);
    if (!bucket.takeBanked() && !bucket.take(performance.now())) {
      dropped++;
      if (!flushScheduled) {
        flushScheduled = true;
        setImmediate(flush);
      }
      return;
    }
    let body: string | Uint8Array;
    if (typeof payload === 'string') body = payload;
    else if (payload instanceof Uint8Array) body = payload;
    else if (payload === undefined) body = '';
    else body = JSON.stringify(payload);
    batch.push(abs, body, (opts?.qos ?? 0) | (opts?.retain ? RETAIN_FLAG : 0));
    if (!flushScheduled) {
      flushScheduled = true;
      setImmediate(flush);
    }
  };

  // -- subscribe: the kernel checks and subscribes; deliveries come batched ------------------
  let nextSub = 1;
  const subs = new Map<number, (msg: BusMessageIn) => void | Promise<void>>();
  const subscribe = async (
    filter: string,
    handler: (msg: BusMessageIn) => void | Promise<void>,
  ): Promise<() => Promise<void>> => {
    if (typeof handler !== 'function')
      throw new TalonError('BAD_REQUEST', 'bus.subscribe(filter, handler): handler must be a function');
    validateFilter(filter);
    const abs = toAbsolute(root, filter);
    if (!grants.canSubscribe(abs)) {
      reportDenied('bus.subscribe', abs);
      throw new TalonError(
        'CAPABILITY_DENIED',
        `Hand "${wd.name}" may not subscribe to ${abs}; its grant allows ${grants.caps.bus.subscribe.join(', ') || 'no topics'}`,
      );
    }
    const id = nextSub++;
    subs.set(id, handler); // before the call: a retained message may arrive with the answer
    try {
      await call('bus.subscribe', [id, filter]);
    } catch (err) {
      subs.delete(id);
      throw err;
    }
    return async () => {
      if (subs.delete(id)) await call('bus.unsubscribe', [id]);
    };
  };

  // a `track` batch (routed task-inbox messages): each entry's end is reported, coalesced per tick
  let doneN = 0;
  let doneScheduled = false;
  const flushDone = (): void => {
    doneScheduled = false;
    if (doneN === 0) return;
    const n = doneN;
    doneN = 0;
    post({ t: 'done', n });
  };
  const finished = (): void => {
    doneN++;
    if (!doneScheduled) {
      doneScheduled = true;
      setImmediate(flushDone);
    }
  };

  const deliver = (m: Array<number | string | boolean>, track: boolean): void => {
    for (let i = 0; i + 3 < m.length; i += 4) {
      if (stopping) return;
      const handler = subs.get(m[i] as number);
      if (!handler) {
        if (track) finished();
        continue;
      }
      const msg = new Incoming(m[i + 1] as string, m[i + 2] as string, m[i + 3] as boolean);
      try {
        const r = handler(msg);
        if (r && typeof (r as Promise<void>).then === 'function') {
          const p = (r as Promise<void>).then(undefined, (err) => handlerFailed(`handler for ${msg.topic}`, err));
          if (track) p.then(finished);
        } else if (track) finished();
      } catch (err) {
        handlerFailed(`handler for ${msg.topic}`, err);
        if (track) finished();
      }
    }
  };

  // -- timers, cleared on stop ---------------------------------------------------------------
  const timers = new Set<NodeJS.Timeout>();
  const guarded = (what: string, fn: () => void | Promise<void>) => () => {
    try {
      const r = fn();
      if (r && typeof (r as Promise<void>).then === 'function')
        (r as Promise<void>).then(undefined, (err) => handlerFailed(what, err));
    } catch (err) {
      handlerFailed(what, err);
    }
  };

  const controller = new AbortController();
  const store: HandStore = {
    get: <T>(key: string) => call<T | undefined>('store.get', [key]),
    put: (key, value, opts) => call<void>('store.put', opts?.sync ? [key, value, { sync: true }] : [key, value]),
    del: (key) => call<void>('store.del', [key]),
    list: <T>(opts?: { prefix?: string; limit?: number; reverse?: boolean; after?: string }) =>
      call<Array<[string, T]>>('store.list', [opts ?? {}]),
    batch: (ops, opts) => call<void>('store.batch', [ops, { sync: opts?.sync === true }]),
  };

  const ctx: HandContext = {
    name: wd.name,
    deviceId: wd.deviceId,
    settings: Object.freeze(wd.settings),
    grants: deepFreeze(structuredClone(wd.grants)),
    signal: controller.signal,
    log: Object.assign((level: LogLevel, msg: string, data?: Record<string, unknown>) => log(level, msg, data), {
      debug: (msg: string, data?: Record<string, unknown>) => log('debug', msg, data),
      info: (msg: string, data?: Record<string, unknown>) => log('info', msg, data),
      warn: (msg: string, data?: Record<string, unknown>) => log('warn', msg, data),
      error: (msg: string, data?: Record<string, unknown>) => log('error', msg, data),
    }),
    bus: { publish, subscribe },
    store,
    audit: (action, subject, opts) =>
      call<void>('audit.record', [action, subject, opts?.decision ?? 'ok', opts?.detail]),
    timers: {
      every(ms, fn) {
        if (stopping) return () => {};
        const h = setInterval(guarded('timer', fn), Math.max(1, ms));
        timers.add(h);
        return () => {
          clearInterval(h);
          timers.delete(h);
        };
      },
      after(ms, fn) {
        if (stopping) return () => {};
        const h: NodeJS.Timeout = setTimeout(
          () => {
            timers.delete(h);
            guarded('timer', fn)();
          },
          Math.max(0, ms),
        );
        timers.add(h);
        return () => {
          clearTimeout(h);
          timers.delete(h);
        };
      },
    },
    call: <T>(method: string, ...args: unknown[]) => {
      if (typeof method !== 'string' || method.length > 200) {
        return Promise.reject(
          new TalonError(
            'BAD_REQUEST',
            'ctx.call(method, ...args): method must be the name of a kernel service (at most 200 characters)',
          ),
        );
      }
      if (method.startsWith('bus.') || method.startsWith('store.')) {
        return Promise.reject(
          new TalonError('BAD_REQUEST', `ctx.call("${method}"): use ctx.bus / ctx.store for bus and store`),
        );
      }
      return call<T>(method, args);
    },
    llm: {
      chat: (request, opts) => call('llm.chat', opts === undefined ? [request] : [request, opts]),
    },
    tools: {
      list: () => call('tools.list', []),
      call: (name, input) => call('tools.call', [name, input ?? {}]),
    },
    agent: {
      run: (opts) => call('agent.run', [opts]),
    },
    fetch: (input, init) => kernelFetch(input, init),
  };

  // -- ctx.fetch: a Request built here (method, headers, body as fetch() reads them), sent as
  // bytes; the kernel checks and makes it; the body comes back piece by piece as it is read
  let nextFetch = 1;
  async function kernelFetch(input: string | URL | { url: string }, init: HandFetchInit = {}): Promise<Response> {
    const signal = init.signal;
    if (signal?.aborted) throw signal.reason;
    let req: Request;
    try {
      const ri: RequestInit & { duplex?: 'half' } = {};
      if (init.method !== undefined) ri.method = init.method;
      if (init.headers !== undefined) ri.headers = init.headers as RequestInit['headers'];
      if (init.body !== undefined && init.body !== null) {
        ri.body = init.body as RequestInit['body'];
        if (init.body instanceof ReadableStream) ri.duplex = 'half';
      }
      if (init.redirect !== undefined) ri.redirect = init.redirect;
      const target =
        input instanceof Request || typeof input === 'string' || input instanceof URL
          ? input
          : typeof (input as { url?: unknown })?.url === 'string'
            ? (input as { url: string }).url
            : String(input);
      req = new Request(target, ri);
    } catch (err) {
      throw new TalonError('BAD_REQUEST', `ctx.fetch: ${(err as Error).message}`);
    }
    const body = req.body ? await readAll(req.body, MAX_FETCH_BODY) : undefined;
    const id = nextFetch++;
    const cancel = (): void => {
      call('net.cancel', [id]).then(undefined, () => undefined);
    };
    signal?.addEventListener('abort', cancel, { once: true });
    const done = (): void => signal?.removeEventListener('abort', cancel);
    let head: {
      status: number;
      statusText: string;
      headers: Array<[string, string]>;
      url: string;
      redirected: boolean;
      body: boolean;
    };
    try {
      head = await call('net.fetch', [
        id,
        {
          url: req.url,
          method: req.method,
          headers: [...req.headers],
          body,
          redirect: req.redirect,
          timeoutMs: init.timeoutMs,
          maxResponseBytes: init.maxResponseBytes,
        },
      ]);
    } catch (err) {
      done();
      throw signal?.aborted ? signal.reason : err;
    }
    let stream: ReadableStream<Uint8Array> | null = null;
    if (head.body) {
      stream = new ReadableStream<Uint8Array>(
        {
          async pull(ctrl) {
            try {
              const chunk = await call<Uint8Array | null>('net.read', [id]);
              if (chunk === null) {
                done();
                ctrl.close();
              } else ctrl.enqueue(chunk);
            } catch (err) {
              done();
              ctrl.error(signal?.aborted ? signal.reason : err);
            }
          },
          cancel() {
            done();
            cancel();
          },
        },
        { highWaterMark: 0 },
      );
    } else done();
    const headers = new Headers();
    for (const [n, v] of head.headers) {
      try {
        headers.append(n, v);
      } catch {
        // a header fetch's Headers cannot hold: left out
      }
    }
    let res: Response;
    try {
      res = new Response(stream, { status: head.status, statusText: head.statusText, headers });
    } catch {
      res = new Response(stream, { status: head.status, headers });
    }
    Object.defineProperty(res, 'url', { value: head.url });
    Object.defineProperty(res, 'redirected', { value: head.redirected });
    return res;
  }

  // -- messages from the kernel --------------------------------------------------------------
  let def: HandDefinition | undefined;
  port.on('message', (msg: KernelToWorker) => {
    switch (msg.t) {
      case 'deliver':
        deliver(msg.m, msg.track === true);
        break;
      case 'result': {
        const p = pending.get(msg.id);
        if (!p) break;
        pending.delete(msg.id);
        if (msg.ok) p.resolve(msg.value);
        else p.reject(new TalonError(msg.error.code, msg.error.message, { details: msg.error.details }));
        break;
      }
      case 'stop':
        void stop();
        break;
      case 'ask':
        void ask(msg.id, msg.messages);
        break;
      case 'ask-cancel':
        asks.get(msg.id)?.abort();
        break;
      case 'request':
        void serve(msg.id, msg.kind, msg.body);
        break;
    }
  });

  // -- typed requests: the handler the Hand declared for the kind (hands/sdk/surface.ts) --------
  async function serve(id: number, kind: string, body: unknown): Promise<void> {
    let reply: WorkerToKernel;
    try {
      const handlers = def?.requests;
      const handler =
        handlers && typeof kind === 'string' && Object.hasOwn(handlers, kind) ? handlers[kind] : undefined;
      if (typeof handler !== 'function') {
        const known = handlers ? Object.keys(handlers).slice(0, 20).join(', ') : '';
        throw new TalonError(
          'BAD_REQUEST',
          `Hand "${wd.name}" has no request "${String(kind).slice(0, 80)}"; it answers ${known || 'no requests'}`,
        );
      }
      if (stopping) throw new TalonError('HAND_STOPPED', `Hand "${wd.name}" is stopping`);
      const value = await handler(body as never, ctx);
      const json = boundedJson(value === undefined ? null : value, REQUEST_ANSWER_MAX);
      if (json === null)
        throw new TalonError(
          'PAYLOAD_TOO_LARGE',
          `Hand "${wd.name}"'s answer to ${kind} is over ${REQUEST_ANSWER_MAX} characters of JSON (or not JSON)`,
        );
      reply = { t: 'reply', id, ok: true, json };
    } catch (err) {
      reply = { t: 'reply', id, ok: false, error: errorJSON(err) };
    }
    post(reply);
  }

  // -- talk to the Hand: chat(messages, ctx) -------------------------------------------------
  const asks = new Map<number, AbortController>();
  async function ask(
    id: number,
    messages: Array<{ role: 'system' | 'user' | 'assistant'; content: string }>,
  ): Promise<void> {
    const ac = new AbortController();
    asks.set(id, ac);
    const onStop = (): void => ac.abort();
    controller.signal.addEventListener('abort', onStop, { once: true });
    try {
      if (!def || typeof def.chat !== 'function')
        throw new TalonError(
          'BAD_REQUEST',
          `Hand "${wd.name}" does not take chat messages (its module has no chat function)`,
        );
      const answer = await def.chat(messages, { ...ctx, signal: ac.signal });
      if (typeof answer === 'string') post({ t: 'answer', id, text: answer });
      else if (answer && typeof (answer as AsyncIterable<string>)[Symbol.asyncIterator] === 'function') {
        for await (const piece of answer as AsyncIterable<string>) {
          if (ac.signal.aborted) break;
          if (typeof piece === 'string' && piece.length > 0) post({ t: 'answer', id, text: piece });
        }
      } else
        throw new TalonError(
          'BAD_REQUEST',
          `Hand "${wd.name}"'s chat returned neither text nor an async iterable of text`,
        );
      post({ t: 'answer', id, end: true });
    } catch (err) {
      post({ t: 'answer', id, end: true, error: errorJSON(err) });
    } finally {
      asks.delete(id);
      controller.signal.removeEventListener('abort', onStop);
    }
  }

  async function stop(): Promise<void> {
    if (stopping) return;
    stopping = true;
    controller.abort();
    for (const h of timers) {
      clearTimeout(h);
      clearInterval(h);
    }
    timers.clear();
    subs.clear();
    try {
      await def?.stop?.();
    } catch (err) {
      post({ t: 'error', phase: 'stop', error: errorJSON(err), stack: stackOf(err) });
    }
    flush();
    post({ t: 'stopped' });
  }

  // -- start -----------------------------------------------------------------------------------
  heartbeat();
  try {
    def = loadHand(wd.modulePath);
    if (typeof def.start !== 'function')
      throw new TalonError('MANIFEST_INVALID', `${wd.modulePath}: the Hand has no start(ctx) function`);
  } catch (err) {
    post({ t: 'error', phase: 'load', error: errorJSON(err), stack: stackOf(err) });
    return;
  }
  const hand = def;
  Promise.resolve()
    .then(() => hand.start(ctx))
    .then(
      () => post({ t: 'started' }),
      (err) => post({ t: 'error', phase: 'start', error: errorJSON(err), stack: stackOf(err) }),
    );
}

/** the largest request body ctx.fetch sends (the kernel checks again) */
const MAX_FETCH_BODY = 10 * 1024 * 1024;

async function readAll(stream: ReadableStream<Uint8Array>, max: number): Promise<Uint8Array> {
  const parts: Uint8Array[] = [];
  let n = 0;
  const reader = stream.getReader();
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    n += value.byteLength;
    if (n > max) {
      await reader.cancel();
      throw new TalonError('PAYLOAD_TOO_LARGE', `ctx.fetch: the request body is larger than ${max} bytes`);
    }
    parts.push(value);
  }
  const out = new Uint8Array(n);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.byteLength;
  }
  return out;
}

/** A delivered message; payload and JSON are made only when asked for. */
class Incoming implements BusMessageIn {
  readonly topic: string;
  readonly text: string;
  readonly retain: boolean;
  #payload: Buffer | undefined;
  #json: unknown;
  #parsed = false;

  constructor(topic: string, text: string, retain: boolean) {
    this.topic = topic;
    this.text = text;
    this.retain = retain;
  }

  get payload(): Buffer {
    this.#payload ??= Buffer.from(this.text, 'utf8');
    return this.#payload;
  }

  get json(): unknown {
    if (!this.#parsed) {
      this.#parsed = true;
      try {
        this.#json = JSON.parse(this.text);
      } catch {
        this.#json = undefined;
      }
    }
    return this.#json;
  }
}

function deepFreeze<T>(value: T): T {
  if (value && typeof value === 'object') {
    for (const v of Object.values(value)) deepFreeze(v);
    Object.freeze(value);
  }
  return value;
}
