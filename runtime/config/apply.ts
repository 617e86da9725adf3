/**
 * ConfigManager: what the API does with config generations (./generations.ts): read the one
 * in force, validate a proposal with every problem and its path, diff it against the current
 * one, apply it (optionally only over a known base generation: 409 CONFLICT when stale), and
 * roll back to an older generation (re-validated, written as a new one). Applies and rollbacks
 * are serialised by one mutex and audited with the actor and the sections they changed; after
 * a write the kernel's `reconfigure` hook brings the running system in line.
 *
 * Also the start-up precedence: the config file (plus env) is applied only when it differs from
 * the file content last applied *from the file* (its hash is kept under `file` in the config
 * sublevel); otherwise the store's current generation stays in force, so a config applied
 * through the API survives a restart while the file is unchanged.
 */
import type { Store, Sublevel } from '../store/store.ts';
import { SYNC } from '../store/store.ts';
import type { Audit } from '../audit/types.ts';
import { TalonError } from '../core/errors.ts';
import type { Caller } from '../supervisor/types.ts';
import {
  ConfigGenerations,
  canonicalJson,
  configHash,
  type ConfigGeneration,
  type ConfigGenerationInfo,
} from './generations.ts';
import { checkConfig, type ConfigProblem } from './validate.ts';
import { talonConfigSchema } from './schema.ts';
import { defaultHands } from './builtins.ts';
import type { TalonConfig } from './types.ts';
import { unifiedDiff } from './line-diff.ts';

const FILE_KEY = 'file';

export interface ValidationResult {
  ok: boolean;
  errors: ConfigProblem[];
}

export interface DiffResult {
  changed: boolean;
  diff: string;
  /** top-level keys whose content differs */
  sections: string[];
}

export interface ApplyResult {
  generation: number;
  changed: boolean;
  /** what was restarted to bring the system in line: Hand names, or `kernel` */
  restarted: string[];
}

/** Called after a new generation is written; returns what it restarted. */
export type Reconfigure = (
  prev: TalonConfig,
  next: TalonConfig,
  sections: string[],
  caller: Caller,
) => Promise<string[]>;

/** Canonical pretty JSON: sorted keys, two-space indent; what diffs are made of. */
export function prettyCanonical(value: unknown): string {
  return JSON.stringify(JSON.parse(canonicalJson(value)), null, 2);
}

export function changedSections(a: TalonConfig, b: TalonConfig): string[] {
  const keys = new Set([...Object.keys(a), ...Object.keys(b)]);
  return [...keys]
    .filter(
      (k) =>
        canonicalJson((a as unknown as Record<string, unknown>)[k] ?? null) !==
        canonicalJson((b as unknown as Record<string, unknown>)[k] ?? null),
    )
    .sort();
}

/**
 * The start-up rule. Returns the config the kernel runs with: the file's when it changed since
 * it was last applied from the file (or nothing was ever applied), else the store's current one.
 */
export async function resolveStartConfig(
  store: Store,
  generations: ConfigGenerations,
  fileConfig: TalonConfig,
  source: string,
  formerly?: TalonConfig,
): Promise<{ config: TalonConfig; generation: number; fromFile: boolean; changed: boolean }> {
  const db = store.sublevel('config') as Sublevel<unknown>;
  const fileHash = configHash(fileConfig);
  const last = (await db.get(FILE_KEY)) as { hash?: string } | undefined;
  const current = await generations.current();
  // `formerly`: the same file as an older version hashed it (with TALON_HTTP/TALON_MQTT in it): unchanged too
  if (current && last?.hash !== undefined && last.hash !== fileHash && formerly && last.hash === configHash(formerly)) {
    await db.put(FILE_KEY, { ...last, hash: fileHash }, SYNC);
    return {
      config: { ...current.config, dataDir: fileConfig.dataDir },
      generation: current.generation,
      fromFile: false,
      changed: false,
    };
  }
  if (current && last?.hash === fileHash) {
    // the store's generation stays in force; where this process keeps its data is the file's call
    return {
      config: { ...current.config, dataDir: fileConfig.dataDir },
      generation: current.generation,
      fromFile: false,
      changed: false,
    };
  }
  const applied = await generations.apply(fileConfig, { actor: 'kernel', source });
  await db.put(FILE_KEY, { hash: fileHash, generation: applied.generation }, SYNC);
  return { config: fileConfig, generation: applied.generation, fromFile: true, changed: applied.changed };
}

export class ConfigManager {
  readonly generations: ConfigGenerations;
  #audit: Audit;
  #reconfigure: Reconfigure;
  #lock: Promise<unknown> = Promise.resolve();

  constructor(opts: { generations: ConfigGenerations; audit: Audit; reconfigure?: Reconfigure }) {
    this.generations = opts.generations;
    this.#audit = opts.audit;
    this.#reconfigure = opts.reconfigure ?? (async () => []);
  }

  async current(): Promise<ConfigGeneration> {
    const cur = await this.generations.current();
    if (!cur) throw new TalonError('NOT_RUNNING', 'no config generation has been applied yet');
    return cur;
  }

  /** the config's JSON Schema, with the built-in Hands' default instances as the default of `hands` */
  schema(): Record<string, unknown> {
    return schemaWithDefaults();
  }

  /** Every problem with its readable path; never throws for a bad config. */
  async validate(config: unknown): Promise<ValidationResult> {
    const { problems } = await this.#check(config);
    return { ok: problems.length === 0, errors: problems };
  }

  async diff(config: unknown): Promise<DiffResult> {
    const cur = await this.current();
    const { config: valid, problems } = await this.#check(config);
    if (!valid) throw invalidError(problems);
    const sections = changedSections(cur.config, valid);
    const text =
      sections.length === 0
        ? ''
        : unifiedDiff(prettyCanonical(cur.config), prettyCanonical(valid), {
            from: `generation ${cur.generation}`,
            to: 'proposed',
          });
    return { changed: sections.length > 0, diff: text, sections };
  }

  list(limit?: number): Promise<ConfigGenerationInfo[]> {
    return this.generations.list(limit !== undefined ? { limit } : {});
  }

  get(n: number): Promise<ConfigGeneration> {
    return this.generations.get(n);
  }

  apply(
    caller: Caller,
    config: unknown,
    opts: { baseGeneration?: number; source?: string } = {},
  ): Promise<ApplyResult> {
    return this.#serial(() => this.#apply(caller, config, opts.baseGeneration, opts.source ?? 'api', 'config.apply'));
  }

  rollback(caller: Caller, generation: number): Promise<ApplyResult> {
    return this.#serial(async () => {
      const old = await this.generations.get(generation);
      return this.#apply(caller, old.config, undefined, `rollback to ${generation}`, 'config.rollback');
    });
  }

  #serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.#lock.then(fn);
    this.#lock = run.catch(() => {});
    return run;
  }

  async #check(input: unknown): Promise<{ config?: TalonConfig; problems: ConfigProblem[] }> {
    const { config, problems } = checkConfig(input);
    if (config) {
      const cur = await this.generations.current();
      if (cur && config.dataDir !== cur.config.dataDir) {
        return {
          problems: [
            {
              path: 'dataDir',
              message: `the data folder cannot be changed while running (it is ${cur.config.dataDir}); change it in the config file`,
            },
          ],
        };
      }
    }
    return config ? { config, problems } : { problems };
  }

  async #apply(
    caller: Caller,
    input: unknown,
    base: number | undefined,
    source: string,
    action: string,
  ): Promise<ApplyResult> {
    const cur = await this.current();
    const fail = async (e: TalonError): Promise<never> => {
      await this.#audit.record({
        actor: caller.actor,
        action,
        subject: `generation ${cur.generation}`,
        decision: 'error',
        detail: { code: e.code, message: e.message.slice(0, 500) },
      });
      throw e;
    };
    if (base !== undefined && base !== cur.generation) {
      return fail(
        new TalonError(
          'CONFLICT',
          `the config changed since generation ${base}: generation ${cur.generation} is in force now; reload, review and apply again`,
          { details: { baseGeneration: base, current: cur.generation } },
        ),
      );
    }
    const { config, problems } = await this.#check(input);
    if (!config) return fail(invalidError(problems));
    const sections = changedSections(cur.config, config);
    const applied = await this.generations.apply(config, { actor: caller.actor, source });
    if (!applied.changed) {
      await this.#audit.record({
        actor: caller.actor,
        action,
        subject: `generation ${applied.generation}`,
        decision: 'info',
        detail: { changed: false, source },
      });
      return { generation: applied.generation, changed: false, restarted: [] };
    }
    await this.#audit.record({
      actor: caller.actor,
      action,
      subject: `generation ${applied.generation}`,
      decision: 'ok',
      detail: { from: cur.generation, sections, source },
    });
    const restarted = await this.#reconfigure(cur.config, config, sections, caller);
    return { generation: applied.generation, changed: true, restarted };
  }
}

/**
 * The schema as editors and the web admin see it: `hands` shows what a config that lists no Hands
 * runs (the schema itself names no Hand; ./builtins.ts).
 */
export function schemaWithDefaults(): Record<string, unknown> {
  const s = talonConfigSchema as unknown as { properties: Record<string, Record<string, unknown>> } & Record<
    string,
    unknown
  >;
  return { ...s, properties: { ...s.properties, hands: { ...s.properties.hands, default: defaultHands() } } };
}

function invalidError(problems: ConfigProblem[]): TalonError {
  const n = problems.length;
  const first = problems
    .slice(0, 3)
    .map((p) => `${p.path}: ${p.message}`)
    .join('; ');
  return new TalonError(
    'CONFIG_INVALID',
    `the config is invalid (${n} problem${n === 1 ? '' : 's'}): ${first}${n > 3 ? '; …' : ''}`,
    { details: { errors: problems } },
  );
}
