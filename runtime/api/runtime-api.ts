/**
 * The runtime API: plain async functions that take the caller, transport-agnostic
 * (Node-RED style). The HTTP layer (web-admin/server.ts), the CLI (through HTTP) and MQTT
 * command topics (./mqtt-commands.ts) all call these. Every call that changes state is
 * audited with the caller, before it acts (../audit/privileged.ts): when its entry cannot be
 * written it is refused with AUDIT_UNAVAILABLE and nothing happens.
 */
import type { Audit } from '../audit/types.ts';
import type { AuditChain, AuditPage, AuditQuery, VerifyOptions, VerifyReport } from '../audit/chain.ts';
import type { AnyCheckpoint } from '../audit/format.ts';
import { checkpointProblem } from '../audit/format.ts';
import type { SensorRegistry } from '../sensors/registry.ts';
import type { Reading, SensorInfo } from '../../drivers/types.ts';
import { renderMetrics, type MetricsInput } from './metrics.ts';
import type { LlmRouter, ProviderStatus, RouterChunk } from '../llm/router.ts';
import type { ChatMessage, ChatResult } from '../llm/types.ts';
import type { SecretStore } from '../secrets/sealed.ts';
import type { Supervisor } from '../supervisor/supervisor.ts';
import type { Caller, HandStatus, LogLine } from '../supervisor/types.ts';
import { TalonError } from '../core/errors.ts';
import { HAND_NAME, SENSOR_ID } from '../core/names.ts';
import { intend, privileged } from '../audit/privileged.ts';
import { createAreas, type AreaDeps, type Areas } from './areas.ts';
import { HandRequests, type RequestOptions } from './hand-requests.ts';
import type { AnySurface, AuditIntent } from '../../hands/sdk/surface.ts';
import type { Health } from './health.ts';
import type { ToolsArea } from './tools-api.ts';

export type { Health } from './health.ts';

export interface RuntimeApiDeps {
  supervisor: Supervisor;
  audit: Audit;
  /** the signed log itself, for queries, verification and export */
  auditLog: AuditChain;
  sensors: SensorRegistry;
  /** what /metrics exposes, gathered from the subsystems */
  metrics: () => MetricsInput;
  /** null when no LLM provider is configured */
  llm?: LlmRouter | null;
  secrets?: SecretStore;
  health: () => Health;
  /** the web admin's areas (system info and stats, config, chat, bus, provisioning) */
  areas?: Omit<AreaDeps, 'audit' | 'supervisor'>;
  /**
   * What the Hands bring (hands/sdk/surface.ts): their typed requests, routes, metrics. The
   * composition root passes the built-in Hands' surfaces (hands/catalog.ts); none by default.
   */
  surfaces?: readonly AnySurface[];
  /** how long a Hand's typed request waits for its answer (default 5 s) */
  requestTimeoutMs?: number;
  /** tools, approvals and agent runs (./tools-api.ts toolsArea) */
  tools?: ToolsArea;
}

function checkName(name: string): void {
  if (!HAND_NAME.test(name)) {
    throw new TalonError(
      'BAD_REQUEST',
      `"${name.slice(0, 80)}" is not a Hand name (lowercase letters, digits and dashes, at most 63)`,
    );
  }
}

export class RuntimeApi {
  #d: RuntimeApiDeps;
  #a: Areas;

  /** the Hands' typed requests (their routes, metrics and CLI reach them through this) */
  readonly handRequests: HandRequests;

  constructor(deps: RuntimeApiDeps) {
    this.#d = deps;
    this.handRequests = new HandRequests(
      deps.supervisor,
      deps.surfaces ?? [],
      deps.requestTimeoutMs !== undefined ? { timeoutMs: deps.requestTimeoutMs } : {},
    );
    this.#a = createAreas({ ...deps.areas, audit: deps.audit, supervisor: deps.supervisor });
  }

  health(): Health {
    return this.#d.health();
  }

  /** tools, approvals and agent runs (./tools-api.ts); NOT_RUNNING when the kernel has none */
  get tools(): ToolsArea {
    if (!this.#d.tools) throw new TalonError('NOT_RUNNING', 'tools are not set up');
    return this.#d.tools;
  }

  readonly hands = {
    list: async (_caller: Caller): Promise<HandStatus[]> => this.#d.supervisor.list(),

    get: async (_caller: Caller, name: string): Promise<HandStatus> => {
      checkName(name);
      return this.#d.supervisor.status(name);
    },

    start: (caller: Caller, name: string) =>
      this.#change(caller, 'hands.start', name, () => this.#d.supervisor.startHand(name, caller)),
    stop: (caller: Caller, name: string) =>
      this.#change(caller, 'hands.stop', name, () => this.#d.supervisor.stopHand(name, caller)),
    restart: (caller: Caller, name: string) =>
      this.#change(caller, 'hands.restart', name, () => this.#d.supervisor.restartHand(name, caller)),

    logs: async (_caller: Caller, name: string, opts: { lines?: number } = {}): Promise<LogLine[]> => {
      checkName(name);
      const lines = opts.lines ?? 100;
      if (!Number.isInteger(lines) || lines < 1 || lines > 1000) {
        throw new TalonError('BAD_REQUEST', `lines must be a whole number from 1 to 1000 (got ${String(opts.lines)})`);
      }
      return this.#d.supervisor.logs(name, { lines });
    },

    /** calls `onLine` for every new log line of the Hand until the returned function is called */
    follow: (_caller: Caller, name: string, onLine: (line: LogLine) => void): (() => void) => {
      checkName(name);
      this.#d.supervisor.status(name); // HAND_NOT_FOUND for unknown names
      const listener = (line: LogLine): void => {
        if (line.hand === name) onLine(line);
      };
      this.#d.supervisor.on('log', listener);
      return () => this.#d.supervisor.off('log', listener);
    },

    /** {settings, schema}: the Hand's settings in force and its manifest's settingsSchema (null when none) */
    settings: (caller: Caller, name: string) => this.#a.handSettings.get(caller, name),
    /** validate against the Hand's schema (CONFIG_INVALID with details.errors [{path, message}]), apply as a new config generation, restart the Hand */
    updateSettings: (caller: Caller, name: string, settings: unknown) =>
      this.#a.handSettings.update(caller, name, settings),
  };

  readonly system = {
    metrics: async (_caller: Caller): Promise<string> => {
      const input = this.#d.metrics();
      return renderMetrics(input, await this.handRequests.metrics());
    },
    info: (caller: Caller) => this.#a.system.info(caller),
    stats: (caller: Caller) => this.#a.system.stats(caller),
    statsHistory: (caller: Caller, ms?: number) => this.#a.system.statsHistory(caller, ms),
    restart: (caller: Caller) => this.#a.system.restart(caller),
  };

  /**
   * What a Hand's routes use (hands/sdk/surface.ts HandRouteContext): a typed request to the
   * running Hand, an audited action, and bus messages to follow for an event stream.
   */
  readonly handSurface = {
    request: (_caller: Caller, id: string, kind: string, body: unknown, opts: RequestOptions = {}): Promise<unknown> =>
      this.handRequests.request(id, kind, body, opts),
    audited: <T>(caller: Caller, intent: AuditIntent, act: () => Promise<T> | T): Promise<T> =>
      privileged(
        this.#d.audit,
        {
          actor: caller.actor,
          action: intent.action,
          subject: intent.subject,
          ...(intent.detail ? { detail: intent.detail } : {}),
        },
        act,
      ),
    follow: (caller: Caller, filter: string, onMessage: (topic: string, json: unknown) => void): Promise<() => void> =>
      this.#a.bus.follow(caller, filter, onMessage),
  };

  readonly config = {
    get: (caller: Caller) => this.#a.config.get(caller),
    schema: (caller: Caller) => this.#a.config.schema(caller),
    validate: (caller: Caller, config: unknown) => this.#a.config.validate(caller, config),
    diff: (caller: Caller, config: unknown) => this.#a.config.diff(caller, config),
    apply: (caller: Caller, config: unknown, opts: { baseGeneration?: number } = {}) =>
      this.#a.config.apply(caller, config, opts),
    rollback: (caller: Caller, generation: number) => this.#a.config.rollback(caller, generation),
    generations: (caller: Caller, limit?: number) => this.#a.config.generations(caller, limit),
    generation: (caller: Caller, n: number) => this.#a.config.generation(caller, n),
  };

  /** stored, resumable conversations with the LLM router or a Hand */
  readonly chat = {
    list: (caller: Caller) => this.#a.chat.list(caller),
    create: (caller: Caller, target: string, title?: string) => this.#a.chat.create(caller, target, title),
    get: (caller: Caller, id: string) => this.#a.chat.get(caller, id),
    post: (caller: Caller, id: string, content: string) => this.#a.chat.post(caller, id, content),
    follow: (caller: Caller, id: string, mid: string, from: number, listener: Parameters<Areas['chat']['follow']>[4]) =>
      this.#a.chat.follow(caller, id, mid, from, listener),
    delete: (caller: Caller, id: string) => this.#a.chat.delete(caller, id),
  };

  readonly bus = {
    recent: (caller: Caller, q: { limit?: number; filter?: string } = {}) => this.#a.bus.recent(caller, q),
    publish: (caller: Caller, topic: string, payload: string, opts: { retain?: boolean; qos?: 0 | 1 | 2 } = {}) =>
      this.#a.bus.publish(caller, topic, payload, opts),
  };

  readonly provisioning = {
    status: (caller: Caller) => this.#a.provisioning.status(caller),
  };

  readonly sensors = {
    list: async (
      _caller: Caller,
    ): Promise<Array<SensorInfo & { driver: string; latest: Reading | null; faults: number }>> =>
      this.#d.sensors
        .states()
        .map((st) => ({ ...st.info, driver: st.driver, latest: st.latest ?? null, faults: st.faults })),
    read: async (caller: Caller, id: string): Promise<Reading> => {
      if (!SENSOR_ID.test(id)) throw new TalonError('BAD_REQUEST', `"${id.slice(0, 80)}" is not a sensor id`);
      return this.#d.sensors.read(id);
    },
    follow: (caller: Caller, onReading: Parameters<Areas['sensors']['follow']>[1]) =>
      this.#a.sensors.follow(caller, onReading),
  };

  readonly llm = {
    providers: async (_caller: Caller): Promise<ProviderStatus[]> => this.#d.llm?.status() ?? [],

    /** tokens and estimated cost since start, per provider and per Hand */
    usage: async (_caller: Caller): Promise<ReturnType<LlmRouter['usage']>> =>
      this.#d.llm?.usage() ?? { providers: {}, hands: {} },

    /** one chat from the CLI or the page: `prompt` or `messages`, optionally pinned to a provider */
    chat: async (caller: Caller, body: unknown): Promise<ChatResult> => {
      const { router, req, opts } = this.#llmRequest(caller, body);
      // the router records each call's outcome; the request is written before any provider is asked
      return privileged(this.#d.audit, this.#llmIntent(caller, opts.provider), () => router.chat(req, opts), {
        outcome: false,
      });
    },

    stream: (caller: Caller, body: unknown): AsyncIterable<RouterChunk> => {
      const { router, req, opts } = this.#llmRequest(caller, body);
      const audit = this.#d.audit;
      const intent = this.#llmIntent(caller, opts.provider);
      return (async function* () {
        await intend(audit, intent);
        yield* router.stream(req, { ...opts, onPartial: 'restart' });
      })();
    },
  };

  #llmIntent(caller: Caller, provider: string | undefined) {
    return { actor: caller.actor, action: 'api.llm.chat', subject: provider ?? 'router' };
  }

  #llmRequest(
    caller: Caller,
    body: unknown,
  ): {
    router: LlmRouter;
    req: { messages: ChatMessage[]; maxTokens?: number };
    opts: { provider?: string; actor: string; allowCloud: boolean };
  } {
    const router = this.#d.llm;
    if (!router) throw new TalonError('LLM_UNAVAILABLE', 'no LLM provider is configured (llm.providers in the config)');
    if (typeof body !== 'object' || body === null || Array.isArray(body))
      throw new TalonError('BAD_REQUEST', 'the body must be a JSON object {prompt | messages, provider?, maxTokens?}');
    const b = body as { prompt?: unknown; messages?: unknown; provider?: unknown; maxTokens?: unknown };
    const extra = Object.keys(b).find((k) => !['prompt', 'messages', 'provider', 'maxTokens', 'stream'].includes(k));
    if (extra !== undefined) throw new TalonError('BAD_REQUEST', `unknown field "${extra.slice(0, 40)}"`);
    let messages: ChatMessage[];
    if (typeof b.prompt === 'string' && b.prompt.length > 0) messages = [{ role: 'user', content: b.prompt }];
    else if (
      Array.isArray(b.messages) &&
      b.messages.length > 0 &&
      b.messages.every(
        (m) =>
          typeof m === 'object' &&
          m !== null &&
          ['system', 'user', 'assistant'].includes((m as ChatMessage).role) &&
          typeof (m as ChatMessage).content === 'string',
      )
    ) {
      messages = (b.messages as ChatMessage[]).map((m) => ({ role: m.role, content: m.content }));
    } else
      throw new TalonError(
        'BAD_REQUEST',
        'give a non-empty prompt, or messages [{role: system|user|assistant, content}]',
      );
    if (b.provider !== undefined && typeof b.provider !== 'string')
      throw new TalonError('BAD_REQUEST', 'provider must be a provider name');
    if (
      b.maxTokens !== undefined &&
      (!Number.isInteger(b.maxTokens) || (b.maxTokens as number) < 1 || (b.maxTokens as number) > 32768)
    ) {
      throw new TalonError('BAD_REQUEST', 'maxTokens must be a whole number from 1 to 32768');
    }
    return {
      router,
      req: { messages, ...(b.maxTokens !== undefined ? { maxTokens: b.maxTokens as number } : {}) },
      opts: {
        ...(b.provider !== undefined ? { provider: b.provider as string } : {}),
        actor: caller.actor,
        allowCloud: true,
      },
    };
  }

  /** sealed secrets: names in, names out; a value is never returned */
  readonly secrets = {
    list: async (_caller: Caller): Promise<Array<{ name: string; updatedAt: number }>> => this.#secrets().list(),
    set: async (caller: Caller, name: string, value: unknown): Promise<{ name: string }> => {
      if (typeof value !== 'string') throw new TalonError('BAD_REQUEST', 'the body must be {"value": "<the secret>"}');
      const secrets = this.#secrets();
      await privileged(this.#d.audit, { actor: caller.actor, action: 'api.secrets.set', subject: name }, () =>
        secrets.set(name, value),
      );
      return { name };
    },
    delete: async (caller: Caller, name: string): Promise<{ name: string; deleted: boolean }> => {
      const secrets = this.#secrets();
      const deleted = await privileged(
        this.#d.audit,
        { actor: caller.actor, action: 'api.secrets.delete', subject: name },
        () => secrets.delete(name),
        { okDetail: (d) => ({ deleted: d }) },
      );
      return { name, deleted };
    },
  };

  #secrets(): SecretStore {
    if (!this.#d.secrets) throw new TalonError('NOT_RUNNING', 'sealed secrets are not available');
    return this.#d.secrets;
  }

  readonly audit = {
    query: async (_caller: Caller, q: AuditQuery): Promise<AuditPage> => this.#d.auditLog.query(q),

    verify: async (caller: Caller, opts: { from?: unknown; against?: unknown } = {}): Promise<VerifyReport> => {
      const v: VerifyOptions = {};
      if (opts.from !== undefined) {
        if (opts.from !== 'start' && opts.from !== 'checkpoint')
          throw new TalonError('BAD_REQUEST', 'from must be "start" or "checkpoint"');
        v.from = opts.from;
      }
      if (opts.against !== undefined) {
        const problem = checkpointProblem(opts.against);
        if (problem !== null || (opts.against as AnyCheckpoint).type !== 'checkpoint') {
          throw new TalonError('BAD_REQUEST', `against is not a checkpoint: ${problem ?? 'type must be "checkpoint"'}`);
        }
        v.against = opts.against as VerifyOptions['against'];
      }
      const report = await this.#d.auditLog.verify(v);
      await this.#d.audit.record({
        actor: caller.actor,
        action: 'api.audit.verify',
        subject: 'audit',
        decision: report.ok ? 'ok' : 'error',
        detail: {
          checked: report.checked,
          ...(report.firstBrokenSeq !== undefined ? { firstBrokenSeq: report.firstBrokenSeq } : {}),
        },
      });
      return report;
    },

    export: (_caller: Caller, out: NodeJS.WritableStream, opts: { since?: number } = {}) =>
      this.#d.auditLog.export(out, opts),

    head: async (_caller: Caller): Promise<AnyCheckpoint | null> => this.#d.auditLog.latestCheckpoint(),
  };

  /** a Hand lifecycle change: audited first, refused when its entry cannot be written */
  async #change<T>(caller: Caller, action: string, subject: string, fn: () => Promise<T>): Promise<T> {
    checkName(subject);
    return privileged(this.#d.audit, { actor: caller.actor, action: `api.${action}`, subject }, fn);
  }
}
