/**
 * The kernel's one client for Hands' typed requests (hands/sdk/surface.ts): it finds the
 * running instance of a Hand module (by the surface's id: the configured module, or the
 * manifest id of a Hand loaded from a path), validates the request against its kind's schema,
 * forwards it over the worker protocol (Supervisor.request) and maps the errors. Every Hand's
 * routes, metrics and page reach their Hand through this, so the runtime knows no Hand's insides.
 *
 * - no instance configured, or none running: HAND_NOT_RUNNING (503), naming the Hand and its state;
 * - no answer within the timeout: HAND_TIMEOUT;
 * - a body that does not match the kind's request schema: BAD_REQUEST with the field's path;
 * - the Hand's own refusals (BAD_REQUEST, NOT_FOUND, CONFLICT) pass through; anything else is INTERNAL;
 * - an answer that does not match the kind's answer schema: INTERNAL naming the field (a Hand, built in
 *   or not, cannot hand the API's callers a shape its declaration does not promise).
 */
import type { ValidateFunction } from 'ajv';
import type { AnySurface, MetricFamily } from '../../hands/sdk/surface.ts';
import type { HandStatus } from '../supervisor/types.ts';
import { TalonError } from '../core/errors.ts';
import { createAjv, fieldErrors, type Ajv } from '../core/ajv.ts';

/** how long a request waits for its answer unless the caller says otherwise */
export const REQUEST_TIMEOUT_MS = 5000;
/** how long /metrics waits for a Hand's series before it leaves them out of that scrape */
export const METRICS_TIMEOUT_MS = 1000;

/** What the client needs of the supervisor. */
export interface RequestTarget {
  list(): HandStatus[];
  request(
    name: string,
    kind: string,
    body: unknown,
    opts: { timeoutMs?: number; signal?: AbortSignal },
  ): Promise<unknown>;
}

export interface RequestOptions {
  /** the instance to ask, by name (default: the running instance of the module) */
  hand?: string;
  timeoutMs?: number;
  signal?: AbortSignal;
}

export class HandRequests {
  readonly surfaces: readonly AnySurface[];
  #target: RequestTarget;
  #byId = new Map<string, AnySurface>();
  #validators = new Map<string, ValidateFunction>();
  #ajv: Ajv | null = null;
  #ajvAnswer: Ajv | null = null;
  #timeoutMs: number;
  #metricsTimeoutMs: number;

  constructor(
    target: RequestTarget,
    surfaces: readonly AnySurface[] = [],
    opts: { timeoutMs?: number; metricsTimeoutMs?: number } = {},
  ) {
    this.#target = target;
    this.surfaces = surfaces;
    for (const s of surfaces) {
      if (this.#byId.has(s.id)) throw new TalonError('CONFIG_INVALID', `two Hand surfaces have the id "${s.id}"`);
      this.#byId.set(s.id, s);
    }
    this.#timeoutMs = opts.timeoutMs ?? REQUEST_TIMEOUT_MS;
    this.#metricsTimeoutMs = opts.metricsTimeoutMs ?? METRICS_TIMEOUT_MS;
  }

  surface(id: string): AnySurface {
    const s = this.#byId.get(id);
    if (!s)
      throw new TalonError(
        'NOT_FOUND',
        `no Hand module "${id.slice(0, 80)}" declares a surface; known: ${[...this.#byId.keys()].join(', ') || 'none'}`,
      );
    return s;
  }

  /** the configured instances of a module: its `module`, or its manifest id (a Hand loaded from a path) */
  instances(id: string): HandStatus[] {
    return this.#target.list().filter((h) => h.module === id || h.id === id);
  }

  /** The name of the instance a request goes to; HAND_NOT_RUNNING (or HAND_NOT_FOUND) with a message a person can act on. */
  target(id: string, hand?: string): string {
    const s = this.surface(id);
    const title = `${s.title} Hand`;
    if (hand !== undefined) {
      const st = this.#target.list().find((h) => h.name === hand);
      if (!st) throw new TalonError('HAND_NOT_FOUND', `there is no Hand named "${hand.slice(0, 80)}"`);
      if (st.module !== id && st.id !== id)
        throw new TalonError(
          'NOT_FOUND',
          `Hand "${hand}" is not a ${title} (its module is ${st.module.slice(0, 200)})`,
        );
      if (st.state !== 'running') {
        throw new TalonError(
          'HAND_NOT_RUNNING',
          `the ${title} "${hand}" is ${st.state}; start it${s.provides ? ` to see ${s.provides}` : ''}`,
          { details: { hand, state: st.state } },
        );
      }
      return hand;
    }
    const all = this.instances(id);
    // the configured module first: a Hand loaded from a path that only claims the id in its
    // manifest is asked only when no instance of the module itself runs
    const running = all.find((h) => h.state === 'running' && h.module === id) ?? all.find((h) => h.state === 'running');
    if (running) return running.name;
    throw new TalonError(
      'HAND_NOT_RUNNING',
      all.length === 0
        ? `no ${title} is configured (add a Hand with module "${id}" to the config)${s.provides ? `; ${s.provides} come from it` : ''}`
        : `the ${title} "${all[0]!.name}" is ${all[0]!.state}; start it${s.provides ? ` to see ${s.provides}` : ''}`,
      { details: { hand: all[0]?.name ?? null, ...(all[0] ? { state: all[0].state } : {}) } },
    );
  }

  /** the validator of a kind's request or answer schema, compiled on first use */
  #validator(id: string, kind: string, which: 'request' | 'answer'): ValidateFunction {
    const s = this.surface(id);
    const k = s.protocol && Object.hasOwn(s.protocol, kind) ? s.protocol[kind] : undefined;
    if (!k)
      throw new TalonError(
        'BAD_REQUEST',
        `the ${s.title} Hand takes no request "${kind.slice(0, 80)}"; it takes ${Object.keys(s.protocol ?? {}).join(', ') || 'none'}`,
      );
    const key = `${id}\u0000${kind}\u0000${which}`;
    let v = this.#validators.get(key);
    if (!v) {
      // what a Hand declares: defaults filled in (requests), every error listed; answers only checked
      v =
        which === 'request'
          ? (this.#ajv ??= createAjv('hand')).compile(k.request as Record<string, unknown>)
          : (this.#ajvAnswer ??= createAjv('check')).compile(k.answer as Record<string, unknown>);
      this.#validators.set(key, v);
    }
    return v;
  }

  /** Validates `body` against the kind's request schema (defaults filled in); BAD_REQUEST naming the field. */
  check(id: string, kind: string, body: unknown): void {
    const s = this.surface(id);
    const v = this.#validator(id, kind, 'request');
    if (!v(body)) {
      const errors = fieldErrors(v.errors);
      const first = errors[0];
      throw new TalonError(
        'BAD_REQUEST',
        `the ${kind} request to the ${s.title} Hand: ${first ? `${first.path === '/' ? 'the body' : first.path} ${first.message}` : 'is not valid'}`.slice(
          0,
          300,
        ),
        { details: { in: 'request', kind, errors } },
      );
    }
  }

  /** Sends a typed request to the running instance of module `id` (see the file's doc for the errors). */
  async request(id: string, kind: string, body: unknown, opts: RequestOptions = {}): Promise<unknown> {
    this.check(id, kind, body);
    const name = this.target(id, opts.hand);
    const answer = await this.#target.request(name, kind, body, {
      timeoutMs: opts.timeoutMs ?? this.#timeoutMs,
      ...(opts.signal ? { signal: opts.signal } : {}),
    });
    const v = this.#validator(id, kind, 'answer');
    if (!v(answer)) {
      const first = fieldErrors(v.errors)[0];
      throw new TalonError(
        'INTERNAL',
        `Hand "${name}" answered the ${kind} request with a shape its surface does not declare: ${first ? `${first.path} ${first.message}` : 'not valid'}`.slice(
          0,
          300,
        ),
      );
    }
    return answer;
  }

  /**
   * Every running instance's metric families (HandSurface.metrics), each sample labelled with
   * the instance's `hand`; an instance that fails or is late is left out of this scrape.
   */
  async metrics(): Promise<MetricFamily[]> {
    const jobs: Array<Promise<Array<{ hand: string; families: MetricFamily[] }>>> = [];
    for (const s of this.surfaces) {
      const collect = s.metrics?.collect;
      if (!collect) continue;
      for (const h of this.instances(s.id)) {
        if (h.state !== 'running') continue;
        const request = (kind: string, body: unknown, o: { timeoutMs?: number } = {}) =>
          this.request(s.id, kind, body, {
            hand: h.name,
            timeoutMs: Math.min(o.timeoutMs ?? this.#metricsTimeoutMs, this.#metricsTimeoutMs),
          });
        jobs.push(
          Promise.resolve()
            .then(() => collect({ hand: h.name, request: request as never }))
            .then(
              (families) => [{ hand: h.name, families: Array.isArray(families) ? families : [] }],
              () => [],
            ),
        );
      }
    }
    const merged = new Map<string, MetricFamily>();
    for (const { hand, families } of (await Promise.all(jobs)).flat()) {
      for (const f of families) {
        if (!f || typeof f.name !== 'string' || !Array.isArray(f.samples)) continue;
        let m = merged.get(f.name);
        if (!m) merged.set(f.name, (m = { name: f.name, type: f.type, help: f.help, samples: [] }));
        for (const x of f.samples) m.samples.push({ labels: { ...x.labels, hand }, value: x.value });
      }
    }
    return [...merged.values()];
  }
}
