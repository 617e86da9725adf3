/**
 * The supervisor: every configured Hand in its own worker_thread (./hand-runner.ts), one
 * transport-agnostic API over them for the kernel, HTTP, MQTT and the CLI. A Hand that fails
 * (bad manifest, throws in start, crashes, hangs, floods, leaks) is contained: it goes to
 * backoff or is parked as failed, and nothing else is disturbed.
 *
 * Events: 'status' (HandStatus, at every state change), 'log' (LogLine).
 */
import { EventEmitter } from 'node:events';
import { Worker } from 'node:worker_threads';
import { existsSync, statSync } from 'node:fs';
import { resolve } from 'node:path';
import type { Bus } from '../bus/types.ts';
import type { Store } from '../store/store.ts';
import type { Audit } from '../audit/types.ts';
import type { HandConfig, SupervisorConfig } from '../config/types.ts';
import { systemClock, systemRandom, type Clock, type Random } from '../core/clock.ts';
import { TalonError, isErrorJSON } from '../core/errors.ts';
import { HAND_ID, checkHandName } from '../core/names.ts';
import { builtinHandModule, handWorkerEntry } from '../paths.ts';
import type { WorkerToKernel } from '../core/protocol.ts';
import { BUILTIN_METHODS } from '../core/protocol.ts';
import { workerExecArgv } from './permissions.ts';
import { canonicalJson } from '../config/generations.ts';
import { DEFAULT_LIMITS, HandRunner, LOG_RING, type RunnerDeps, type RunnerLimits } from './hand-runner.ts';
import { HandPool, usesPool } from './pool.ts';
import type { Caller, HandStatus, KernelService, LogLine } from './types.ts';

export interface SupervisorOptions {
  config: SupervisorConfig;
  hands: HandConfig[];
  bus: Bus;
  store: Store;
  audit: Audit;
  deviceId: string;
  clock?: Clock;
  random?: Random;
  /** the worker runtime file; default dist/hand-worker.cjs */
  workerEntry?: string;
  /** a HandConfig.module → a module file; default: a bare id is a built-in Hand, else a path from the cwd */
  resolveModule?: (module: string) => string;
  /** flood, log and audit-rate policy (tests shrink them) */
  limits?: Partial<RunnerLimits>;
}

export function defaultResolveModule(module: string): string {
  return HAND_ID.test(module) ? builtinHandModule(module) : resolve(process.cwd(), module);
}

export interface SupervisorEvents {
  status: [HandStatus];
  log: [LogLine];
}

export class Supervisor extends EventEmitter<SupervisorEvents> {
  readonly deviceId: string;
  /** a lone worker, or a pool for on-demand and scaled Hands (./pool.ts) */
  #runners = new Map<string, HandRunner | HandPool>();
  #enabled = new Map<string, boolean>();
  #services = new Map<string, KernelService>();
  #manifests = new Map<string, { mtimeMs: number; size: number; manifest: Promise<unknown> }>();
  /** aborted by stop(): a manifest still being read is not left running after the kernel stopped */
  #probing = new AbortController();
  #config: SupervisorConfig;
  #workerEntry: string;
  #up = false;
  #opts: SupervisorOptions;
  #hands = new Map<string, { hand: HandConfig; modulePath: string }>();
  #limits: RunnerLimits;
  #rssTimer: unknown = null;
  #rss = 0;

  constructor(opts: SupervisorOptions) {
    super();
    this.deviceId = opts.deviceId;
    this.#config = opts.config;
    this.#opts = opts;
    this.#workerEntry = opts.workerEntry ?? handWorkerEntry();
    this.#limits = { ...DEFAULT_LIMITS, ...opts.limits };
    checkHands(opts.hands);
    for (const hand of opts.hands) this.#add(hand);
  }

  #add(hand: HandConfig): void {
    const opts = this.#opts;
    const modulePath = (opts.resolveModule ?? defaultResolveModule)(hand.module);
    this.#enabled.set(hand.name, hand.enabled !== false);
    this.#hands.set(hand.name, { hand, modulePath });
    const deps: RunnerDeps = {
      config: opts.config,
      hand,
      bus: opts.bus,
      store: opts.store,
      audit: opts.audit,
      deviceId: opts.deviceId,
      clock: opts.clock ?? systemClock,
      random: opts.random ?? systemRandom,
      workerEntry: this.#workerEntry,
      modulePath,
      services: this.#services,
      limits: this.#limits,
      readManifest: (path) => this.#readManifest(path),
      onStatus: (status) => this.emit('status', status),
      onLog: (line) => this.emit('log', line),
    };
    if (!usesPool(hand)) {
      this.#runners.set(hand.name, new HandRunner(deps));
      return;
    }
    this.#runners.set(
      hand.name,
      new HandPool({
        hand,
        bus: opts.bus,
        audit: opts.audit,
        clock: deps.clock,
        deviceId: opts.deviceId,
        stopTimeoutMs: opts.config.stopTimeoutMs,
        makeRunner: (instance, hooks) =>
          new HandRunner({ ...deps, instance, publishStatus: false, inbox: hooks.inbox, onStatus: hooks.onStatus }),
        onStatus: (status) => this.emit('status', status),
      }),
    );
  }

  /** an on-demand Hand is armed (waits for a message to its task inbox); any other is started */
  #boot(r: HandRunner | HandPool): Promise<void> {
    if (r instanceof HandPool && r.onDemand) return r.arm();
    return r.start('kernel');
  }

  /**
   * Brings the Hands in line with a new `hands` config: removed ones are stopped and dropped,
   * new ones added (and started when enabled), changed ones stopped and started again with
   * their new config; unchanged ones are not touched. Returns the names it touched.
   */
  async reconcile(hands: HandConfig[]): Promise<{ added: string[]; removed: string[]; restarted: string[] }> {
    checkHands(hands);
    const next = new Map(hands.map((h) => [h.name, h]));
    const removed = [...this.#hands.keys()].filter((n) => !next.has(n));
    const added = hands.filter((h) => !this.#hands.has(h.name)).map((h) => h.name);
    const restarted = hands
      .filter((h) => this.#hands.has(h.name) && canonicalJson(this.#hands.get(h.name)!.hand) !== canonicalJson(h))
      .map((h) => h.name);
    for (const name of [...removed, ...restarted]) {
      const r = this.#runners.get(name)!;
      if (r instanceof HandPool) await r.close('kernel', this.#config.stopTimeoutMs);
      else if (r.state !== 'stopped') await r.stop('kernel', this.#config.stopTimeoutMs).catch(() => undefined);
      await r.settled();
      this.#runners.delete(name);
      this.#enabled.delete(name);
      this.#hands.delete(name);
    }
    for (const name of [...restarted, ...added]) this.#add(next.get(name)!);
    // keep the configured order
    const ordered = new Map<string, HandRunner | HandPool>();
    for (const h of hands) ordered.set(h.name, this.#runners.get(h.name)!);
    this.#runners = ordered;
    if (this.#up) {
      await Promise.all(
        [...restarted, ...added]
          .filter((n) => this.#enabled.get(n) === true)
          .map((n) => this.#boot(this.#runners.get(n)!).catch(() => undefined)),
      );
    }
    return { added, removed, restarted };
  }

  /** The Hand's config as the supervisor runs it. */
  handConfig(name: string): HandConfig {
    this.#runner(name);
    return this.#hands.get(name)!.hand;
  }

  /** The JSON Schema of the Hand's settings from its manifest, or null when it declares none. */
  async settingsSchema(name: string): Promise<Record<string, unknown> | null> {
    this.#runner(name);
    const manifest = await this.#readManifest(this.#hands.get(name)!.modulePath);
    const schema = (manifest as { settingsSchema?: unknown } | null)?.settingsSchema;
    return schema && typeof schema === 'object' && !Array.isArray(schema) ? (schema as Record<string, unknown>) : null;
  }

  /** Talks to a running Hand through its chat(); see HandRunner.ask. */
  ask(
    name: string,
    messages: Array<{ role: 'system' | 'user' | 'assistant'; content: string }>,
    opts: { signal?: AbortSignal; timeoutMs?: number; maxChars?: number } = {},
  ): AsyncGenerator<string> {
    return this.#runner(name).ask(messages, opts);
  }

  /**
   * Sends a typed request to a running Hand (its surface's protocol: hands/sdk/surface.ts);
   * see HandRunner.request. The caller (runtime/api/hand-requests.ts) validates `body` against
   * the kind's schema first: the supervisor knows no Hand's protocol.
   */
  request(
    name: string,
    kind: string,
    body: unknown,
    opts: { timeoutMs?: number; signal?: AbortSignal } = {},
  ): Promise<unknown> {
    try {
      return this.#runner(name).request(kind, body, opts);
    } catch (err) {
      return Promise.reject(err);
    }
  }

  /** Starts every enabled Hand at once; resolves when each is running, in backoff or failed. */
  async start(): Promise<void> {
    this.#up = true;
    this.#watchRss();
    const enabled = [...this.#runners.values()].filter(
      (r) => this.#enabled.get(r.name) === true && r.state === 'stopped',
    );
    await Promise.all(enabled.map((r) => this.#boot(r).catch(() => undefined)));
  }

  /** Asks every Hand to stop; those still running after `deadlineMs` are terminated. */
  async stop(deadlineMs: number = this.#config.stopTimeoutMs): Promise<void> {
    this.#up = false;
    if (this.#rssTimer !== null) (this.#opts.clock ?? systemClock).clearInterval(this.#rssTimer);
    this.#rssTimer = null;
    const stopping = Promise.all(
      [...this.#runners.values()].map(async (r) => {
        if (r instanceof HandPool) await r.close('kernel', deadlineMs);
        else if (r.state !== 'stopped' && r.state !== 'stopping')
          await r.stop('kernel', deadlineMs).catch(() => undefined);
      }),
    );
    // after the runners gave up their launches (a launch still reading its manifest drops the answer)
    this.#probing.abort();
    this.#probing = new AbortController();
    await stopping;
    await Promise.all([...this.#runners.values()].map((r) => r.settled()));
  }

  /**
   * Memory a Hand holds outside its heap is read per Hand every memoryPollMs; a Hand allocating
   * fast gets far in that time. The process's RSS is cheap to read: when it jumps, every running
   * Hand's memory is read at once, so a Buffer bomb is stopped near its quota.
   */
  #watchRss(): void {
    if (this.#rssTimer !== null) return;
    const clock = this.#opts.clock ?? systemClock;
    this.#rss = process.memoryUsage.rss();
    const jump = this.#limits.rssJumpMb * 1024 * 1024;
    this.#rssTimer = clock.setInterval(
      () => {
        const rss = process.memoryUsage.rss();
        if (rss - this.#rss >= jump) {
          for (const r of this.#runners.values()) if (r.state === 'running' || r.state === 'starting') r.measureNow();
        }
        this.#rss = rss;
      },
      Math.max(5, this.#limits.rssWatchMs),
    );
    (this.#rssTimer as { unref?: () => void }).unref?.();
  }

  isUp(): boolean {
    return this.#up;
  }

  list(): HandStatus[] {
    return [...this.#runners.values()].map((r) => r.status());
  }

  status(name: string): HandStatus {
    return this.#runner(name).status();
  }

  async startHand(name: string, caller: Caller): Promise<HandStatus> {
    const r = this.#runner(name);
    await r.start(caller.actor, { resetPolicy: true });
    return r.status();
  }

  async stopHand(name: string, caller: Caller): Promise<HandStatus> {
    const r = this.#runner(name);
    await r.stop(caller.actor);
    return r.status();
  }

  async restartHand(name: string, caller: Caller): Promise<HandStatus> {
    const r = this.#runner(name);
    await r.restart(caller.actor);
    return r.status();
  }

  logs(name: string, opts: { lines?: number } = {}): LogLine[] {
    return this.#runner(name).logs(opts.lines ?? LOG_RING);
  }

  /** A service Hands reach with ctx.call(method, ...args). */
  registerService(method: string, service: KernelService): void {
    if (typeof method !== 'string' || method.length === 0)
      throw new TalonError('BAD_REQUEST', 'a service needs a method name');
    if (
      (BUILTIN_METHODS as readonly string[]).includes(method) ||
      method.startsWith('bus.') ||
      method.startsWith('store.')
    ) {
      throw new TalonError('BAD_REQUEST', `"${method}" is reserved for the supervisor`);
    }
    if (this.#services.has(method)) throw new TalonError('BAD_REQUEST', `a service "${method}" is already registered`);
    this.#services.set(method, service);
  }

  #runner(name: string): HandRunner | HandPool {
    const r = this.#runners.get(name);
    if (!r)
      throw new TalonError(
        'HAND_NOT_FOUND',
        `there is no Hand named "${name}"; known: ${[...this.#runners.keys()].join(', ') || 'none'}`,
      );
    return r;
  }

  /** The module's manifest, read in a throwaway worker (Hand code never runs here), cached by file. */
  #readManifest(modulePath: string): Promise<unknown> {
    let st;
    try {
      st = statSync(modulePath);
    } catch {
      return Promise.reject(new TalonError('HAND_START_FAILED', `the Hand module ${modulePath} does not exist`));
    }
    const cached = this.#manifests.get(modulePath);
    if (cached && cached.mtimeMs === st.mtimeMs && cached.size === st.size) return cached.manifest;
    const manifest = probeManifest(this.#workerEntry, modulePath, this.#config.startTimeoutMs, this.#probing.signal);
    this.#manifests.set(modulePath, { mtimeMs: st.mtimeMs, size: st.size, manifest });
    manifest.catch(() => this.#manifests.delete(modulePath));
    return manifest;
  }
}

function checkHands(hands: HandConfig[]): void {
  const seen = new Set<string>();
  hands.forEach((hand, i) => {
    checkHandName(hand.name, { code: 'CONFIG_INVALID', where: `hands[${i}].name` });
    if (seen.has(hand.name))
      throw new TalonError(
        'CONFIG_INVALID',
        `hands[${i}].name "${hand.name}" is used by another Hand; names must be unique`,
      );
    seen.add(hand.name);
    const inst = hand.instances;
    if (inst && inst.max < inst.min)
      throw new TalonError(
        'CONFIG_INVALID',
        `hands[${i}].instances.max (${inst.max}) must be at least instances.min (${inst.min})`,
      );
  });
}

/** the memory outside the V8 heap a module may take while only its manifest is read */
export const MANIFEST_EXTERNAL_MB = 64;

export function probeManifest(
  workerEntry: string,
  modulePath: string,
  timeoutMs: number,
  signal?: AbortSignal,
): Promise<unknown> {
  if (!existsSync(workerEntry)) {
    return Promise.reject(
      new TalonError('HAND_START_FAILED', `the Hand worker runtime ${workerEntry} is missing; run npm run build`),
    );
  }
  const stopped = (): TalonError =>
    new TalonError('HAND_STOPPED', `the supervisor stopped while the Hand module ${modulePath} was loading`);
  if (signal?.aborted) return Promise.reject(stopped());
  return new Promise<unknown>((resolvePromise, reject) => {
    const worker = new Worker(workerEntry, {
      workerData: { mode: 'manifest', modulePath },
      execArgv: workerExecArgv({ workerEntry, modulePath, fs: { read: [], write: [] } }),
      env: {},
      stdout: true,
      stderr: true,
      resourceLimits: { maxOldGenerationSizeMb: 64 },
    });
    worker.stdout.resume();
    worker.stderr.resume();
    let done = false;
    const finish = (err: TalonError | null, value?: unknown): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
      void worker.terminate();
      if (err) reject(err);
      else resolvePromise(value);
    };
    const timer = setTimeout(
      () =>
        finish(
          new TalonError('HAND_TIMEOUT', `loading the Hand module ${modulePath} took longer than ${timeoutMs} ms`),
        ),
      timeoutMs,
    );
    const onAbort = (): void => finish(stopped());
    signal?.addEventListener('abort', onAbort, { once: true });
    // the module's top level runs here: its memory outside the V8 heap is bounded too
    const memory = setInterval(() => {
      worker.getHeapStatistics().then(
        (st) => {
          if (st.external_memory > MANIFEST_EXTERNAL_MB * 1024 * 1024) {
            finish(
              new TalonError(
                'QUOTA_EXCEEDED',
                `loading the Hand module ${modulePath} took more than ${MANIFEST_EXTERNAL_MB} MB outside the V8 heap`,
              ),
            );
          }
        },
        () => undefined,
      );
    }, 200);
    memory.unref();
    void new Promise((r) => worker.once('exit', r)).then(() => clearInterval(memory));
    worker.on('message', (msg: WorkerToKernel) => {
      if (msg.t === 'manifest') finish(null, msg.manifest);
      else if (msg.t === 'error') {
        const e = isErrorJSON(msg.error) ? msg.error : { code: 'INTERNAL', message: 'unknown error' };
        finish(
          e.code === 'MANIFEST_INVALID'
            ? new TalonError('MANIFEST_INVALID', e.message)
            : new TalonError('HAND_START_FAILED', `the Hand module ${modulePath} failed to load: ${e.message}`),
        );
      }
    });
    worker.on('error', (err: Error) =>
      finish(new TalonError('HAND_START_FAILED', `the Hand module ${modulePath} failed to load: ${err.message}`)),
    );
    worker.on('exit', (code) =>
      finish(
        new TalonError(
          'HAND_START_FAILED',
          `the Hand module ${modulePath} exited (code ${code}) before declaring a manifest`,
        ),
      ),
    );
  });
}
