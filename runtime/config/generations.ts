/**
 * Applied configs, kept as numbered generations in the store's `config` sublevel:
 *   head              {generation, hash}               the one in force
 *   gen/<12 hex>      ConfigGeneration                 every one ever applied
 * A new generation is written only when the canonical content changed (sha256 over JSON
 * with sorted keys), in one sync batch with the new head: LevelDB applies a batch
 * atomically, so after a crash the head is the old one or the new one, and the generation
 * it names is always there.
 *
 * Rollback is `apply((await gens.get(n)).config, {actor, source: \`rollback to ${n}\`})`:
 * it re-validates the old config against today's schema and writes it as a new generation
 * (history is never rewritten).
 */
import { createHash } from 'node:crypto';
import type { Store, Sublevel } from '../store/store.ts';
import { SYNC } from '../store/store.ts';
import { TalonError } from '../core/errors.ts';
import { sortedKeysJson as canonicalJson } from '../core/canonical.ts';
import type { Clock } from '../core/clock.ts';
import { systemClock } from '../core/clock.ts';
import type { TalonConfig } from './types.ts';
import { validateConfig } from './validate.ts';

export interface ConfigGenerationInfo {
  generation: number;
  /** sha256 hex of the canonical JSON */
  hash: string;
  /** ms epoch */
  appliedAt: number;
  actor: string;
  source: string;
}

export interface ConfigGeneration extends ConfigGenerationInfo {
  config: TalonConfig;
}

interface Head {
  generation: number;
  hash: string;
}

const HEAD = 'head';
const PREFIX = 'gen/';
const genKey = (n: number): string => `${PREFIX}${n.toString(16).padStart(12, '0')}`;

/** JSON with object keys sorted at every level; arrays keep their order (runtime/core/canonical.ts: not RFC 8785, on purpose). */
export { canonicalJson };

export function configHash(config: TalonConfig): string {
  return createHash('sha256').update(canonicalJson(config)).digest('hex');
}

export class ConfigGenerations {
  #db: Sublevel<unknown>;
  #clock: Clock;
  /** applies are serialised: two at once must not both take generation n+1 */
  #queue: Promise<unknown> = Promise.resolve();

  constructor(store: Store, opts: { clock?: Clock } = {}) {
    this.#db = store.sublevel('config');
    this.#clock = opts.clock ?? systemClock;
  }

  /** The generation in force, or undefined before the first apply. */
  async current(): Promise<ConfigGeneration | undefined> {
    const head = await this.#head();
    return head ? this.get(head.generation) : undefined;
  }

  /** Newest first, without the configs themselves. */
  async list(opts: { limit?: number } = {}): Promise<ConfigGenerationInfo[]> {
    const limit = Math.max(1, Math.min(opts.limit ?? 50, 10_000));
    const out: ConfigGenerationInfo[] = [];
    for await (const value of this.#db.values({ gte: PREFIX, lt: `${PREFIX}\uffff`, reverse: true, limit })) {
      const { config: _config, ...info } = value as ConfigGeneration;
      out.push(info);
    }
    return out;
  }

  /** One generation; TalonError('NOT_FOUND') when there is no such generation. */
  async get(n: number): Promise<ConfigGeneration> {
    if (!Number.isInteger(n) || n < 1)
      throw new TalonError('BAD_REQUEST', `a config generation is a whole number from 1, got ${String(n)}`);
    const value = await this.#db.get(genKey(n));
    if (value === undefined) {
      const head = await this.#head();
      throw new TalonError(
        'NOT_FOUND',
        `config generation ${n} does not exist${head ? ` (the newest is ${head.generation})` : ' (none applied yet)'}`,
      );
    }
    return value as ConfigGeneration;
  }

  /**
   * Records `config` as the generation in force. Validates it first (a rollback to a config
   * today's schema refuses fails here, before anything is written). Returns the generation
   * in force afterwards and whether a new one was written.
   */
  apply(
    config: TalonConfig,
    meta: { actor: string; source: string },
  ): Promise<{ generation: number; changed: boolean }> {
    const run = this.#queue.then(() => this.#apply(config, meta));
    this.#queue = run.catch(() => {});
    return run;
  }

  async #apply(
    config: TalonConfig,
    meta: { actor: string; source: string },
  ): Promise<{ generation: number; changed: boolean }> {
    const valid = validateConfig(config);
    const hash = configHash(valid);
    const head = await this.#head();
    if (head && head.hash === hash) return { generation: head.generation, changed: false };
    const generation = (head?.generation ?? 0) + 1;
    const entry: ConfigGeneration = {
      generation,
      hash,
      appliedAt: this.#clock.now(),
      actor: meta.actor,
      source: meta.source,
      config: valid,
    };
    await this.#db.batch(
      [
        { type: 'put', key: genKey(generation), value: entry as unknown },
        { type: 'put', key: HEAD, value: { generation, hash } satisfies Head as unknown },
      ],
      SYNC,
    );
    return { generation, changed: true };
  }

  async #head(): Promise<Head | undefined> {
    const v = await this.#db.get(HEAD);
    return v === undefined ? undefined : (v as Head);
  }
}
