/**
 * The runtime API areas the web admin added (issue 6): system info and stats, live sensor
 * readings, config generations, stored chats, bus traffic, provisioning, and Hand settings.
 * (What a Hand serves itself, alerts and sensor history among them, comes through its surface:
 * ./hand-requests.ts.) Transport-agnostic like the rest of ./runtime-api.ts: functions that
 * take the caller; every change audited with it, before it acts (../audit/privileged.ts).
 */
import type { Audit } from '../audit/types.ts';
import type { Bus } from '../bus/types.ts';
import type { BusRecorder, RecordedMessage } from '../bus/recorder.ts';
import type { ChatListener, ChatService, Conversation, Message } from '../chat/chat.ts';
import type { ApplyResult, ConfigManager, DiffResult, ValidationResult } from '../config/apply.ts';
import type { ConfigGeneration, ConfigGenerationInfo } from '../config/generations.ts';
import { readablePath, type ConfigProblem } from '../config/validate.ts';
import type { TalonConfig } from '../config/types.ts';
import { settingsValidator } from '../supervisor/manifest.ts';
import type { Supervisor } from '../supervisor/supervisor.ts';
import type { Caller } from '../supervisor/types.ts';
import { TalonError } from '../core/errors.ts';
import { HAND_NAME } from '../core/names.ts';
import { privileged } from '../audit/privileged.ts';
import type { StatsSample, SystemStats } from './system-info.ts';

export interface SystemInfo {
  deviceId: string;
  deviceName: string;
  version: string;
  node: string;
  platform: string;
  arch: string;
  board?: string;
  publicKey: string;
  startedAt: number;
  uptimeMs: number;
  configGeneration: number | null;
}

export interface ProvisioningStatus {
  state: 'standalone' | 'announcing' | 'provisioned' | 'decommissioned';
  message: string;
  fleet?: string;
  deviceId?: string;
  /** the version of the fleet bundle in force (0: none) */
  appliedVersion?: number;
  broker?: { kind: 'bootstrap' | 'fleet'; url: string; connected: boolean } | null;
  pending?: { version: number; phase: string };
  lastResult?: { version: number; outcome: string; code?: string; message?: string; generation?: number; at: number };
  rejected?: number;
  dropped?: number;
}

export interface AreaDeps {
  audit: Audit;
  supervisor: Supervisor;
  bus?: Bus;
  info?: () => Promise<SystemInfo>;
  stats?: SystemStats;
  /** soft restart of the kernel in process (after the reply is sent) */
  restart?: (caller: Caller) => void;
  config?: ConfigManager;
  recorder?: BusRecorder;
  chat?: ChatService;
  provisioning?: () => Promise<ProvisioningStatus>;
}

function need<T>(v: T | undefined, what: string): T {
  if (v === undefined) throw new TalonError('NOT_RUNNING', `${what} is not available in this kernel`);
  return v;
}

export function createAreas(d: AreaDeps) {
  const subscribeRel = async (filter: string, fn: (topic: string, json: unknown) => void): Promise<() => void> => {
    const bus = need(d.bus, 'the bus');
    const unsub = await bus.subscribe(`${bus.root}/${filter}`, (m) => {
      let json: unknown;
      try {
        json = JSON.parse(m.payload.toString('utf8'));
      } catch {
        return;
      }
      fn(m.topic.slice(bus.root.length + 1), json);
    });
    return () => void unsub().catch(() => {});
  };
  const cfg = (): ConfigManager => need(d.config, 'config management');
  const chat = (): ChatService => need(d.chat, 'chat');

  return {
    system: {
      info: async (_caller: Caller): Promise<SystemInfo> => need(d.info, 'system info')(),
      stats: async (_caller: Caller): Promise<StatsSample> => {
        const stats = need(d.stats, 'system stats');
        // several dashboards share a sample taken within the last second
        return stats.latest(1000);
      },
      /** the samples of the last minutes (the kernel samples every 2 s), oldest first */
      statsHistory: async (_caller: Caller, ms?: number): Promise<{ samples: StatsSample[] }> => {
        const stats = need(d.stats, 'system stats');
        return { samples: stats.history(ms) };
      },
      restart: async (caller: Caller): Promise<{ restarting: true }> => {
        const restart = need(d.restart, 'restarting');
        // the kernel records its own stop and start; this entry is the request, written before it acts
        await privileged(
          d.audit,
          { actor: caller.actor, action: 'api.system.restart', subject: 'kernel' },
          () => restart(caller),
          { outcome: false },
        );
        return { restarting: true };
      },
    },

    sensors: {
      /** calls `onReading` for every reading published on sensors/<id> until the returned function is called */
      follow: (
        _caller: Caller,
        onReading: (r: { id: string; value: unknown; ts: unknown }) => void,
      ): Promise<() => void> =>
        subscribeRel('sensors/+', (topic, json) => {
          const r = json as { sensor?: unknown; value?: unknown; ts?: unknown } | null;
          if (r && typeof r === 'object') onReading({ id: topic.slice('sensors/'.length), value: r.value, ts: r.ts });
        }),
    },

    config: {
      get: async (_caller: Caller): Promise<ConfigGeneration> => cfg().current(),
      schema: async (_caller: Caller): Promise<Record<string, unknown>> => cfg().schema(),
      validate: (_caller: Caller, config: unknown): Promise<ValidationResult> => cfg().validate(config),
      diff: (_caller: Caller, config: unknown): Promise<DiffResult> => cfg().diff(config),
      // the config manager records the outcome (config.apply, config.rollback); the intent is written first
      apply: async (caller: Caller, config: unknown, opts: { baseGeneration?: number } = {}): Promise<ApplyResult> => {
        const manager = cfg();
        return privileged(
          d.audit,
          {
            actor: caller.actor,
            action: 'api.config.apply',
            subject: 'config',
            ...(opts.baseGeneration !== undefined ? { detail: { baseGeneration: opts.baseGeneration } } : {}),
          },
          () => manager.apply(caller, config, opts),
          { outcome: false },
        );
      },
      rollback: async (caller: Caller, generation: number): Promise<ApplyResult> => {
        const manager = cfg();
        return privileged(
          d.audit,
          { actor: caller.actor, action: 'api.config.rollback', subject: `generation ${generation}` },
          () => manager.rollback(caller, generation),
          { outcome: false },
        );
      },
      generations: (_caller: Caller, limit?: number): Promise<ConfigGenerationInfo[]> => cfg().list(limit),
      generation: (_caller: Caller, n: number): Promise<ConfigGeneration> => cfg().get(n),
    },

    // the chat service records each change's success; the intent is written first
    chat: {
      list: (caller: Caller): Promise<Conversation[]> => chat().list(caller),
      create: async (caller: Caller, target: string, title?: string): Promise<Conversation> => {
        if (target.startsWith('hand:')) d.supervisor.status(target.slice(5)); // HAND_NOT_FOUND for unknown names
        const service = chat();
        return privileged(
          d.audit,
          { actor: caller.actor, action: 'api.chat.create', subject: target.slice(0, 80) },
          () => service.create(caller, target, title),
          { outcome: 'errors' },
        );
      },
      get: (caller: Caller, id: string) => chat().get(caller, id),
      post: async (caller: Caller, id: string, content: string): Promise<{ user: Message; assistant: Message }> => {
        const service = chat();
        return privileged(
          d.audit,
          { actor: caller.actor, action: 'api.chat.message', subject: id.slice(0, 80) },
          () => service.post(caller, id, content),
          { outcome: 'errors' },
        );
      },
      follow: (caller: Caller, id: string, mid: string, from: number, listener: ChatListener): Promise<() => void> =>
        chat().subscribe(caller, id, mid, from, listener),
      delete: async (caller: Caller, id: string) => {
        const service = chat();
        return privileged(
          d.audit,
          { actor: caller.actor, action: 'api.chat.delete', subject: id.slice(0, 80) },
          () => service.delete(caller, id),
          { outcome: 'errors' },
        );
      },
    },

    bus: {
      /**
       * calls `onMessage` with (topic relative to the device root, payload as JSON) for every JSON
       * message under `filter` until the returned function is called (a Hand route's event stream)
       */
      follow: (
        _caller: Caller,
        filter: string,
        onMessage: (topic: string, json: unknown) => void,
      ): Promise<() => void> => subscribeRel(filter, onMessage),
      recent: async (_caller: Caller, q: { limit?: number; filter?: string } = {}): Promise<RecordedMessage[]> =>
        need(d.recorder, 'the bus recorder').recent(q),
      publish: async (
        caller: Caller,
        topic: string,
        payload: string,
        opts: { retain?: boolean; qos?: 0 | 1 | 2 } = {},
      ): Promise<{ topic: string }> => {
        const recorder = need(d.recorder, 'the bus recorder');
        const abs = await privileged(
          d.audit,
          {
            actor: caller.actor,
            action: 'api.bus.publish',
            subject: topic.slice(0, 200),
            detail: { bytes: Buffer.byteLength(payload), retain: opts.retain ?? false },
          },
          () => recorder.publish(topic, payload, opts),
          { okDetail: (t) => ({ topic: t }) },
        );
        return { topic: abs };
      },
    },

    provisioning: {
      status: async (_caller: Caller): Promise<ProvisioningStatus> =>
        d.provisioning?.() ?? {
          state: 'standalone',
          message: 'no fleet is configured: this device runs standalone, managed from this page and its config file',
        },
    },

    handSettings: {
      get: async (
        _caller: Caller,
        name: string,
      ): Promise<{ settings: Record<string, unknown>; schema: Record<string, unknown> | null }> => {
        if (!HAND_NAME.test(name)) throw new TalonError('BAD_REQUEST', `"${name.slice(0, 80)}" is not a Hand name`);
        const hand = d.supervisor.handConfig(name);
        const schema = await d.supervisor.settingsSchema(name).catch(() => null);
        return { settings: hand.settings ?? {}, schema };
      },
      update: async (
        caller: Caller,
        name: string,
        settings: unknown,
      ): Promise<{ settings: Record<string, unknown>; generation: number }> => {
        if (!HAND_NAME.test(name)) throw new TalonError('BAD_REQUEST', `"${name.slice(0, 80)}" is not a Hand name`);
        d.supervisor.handConfig(name); // HAND_NOT_FOUND
        if (typeof settings !== 'object' || settings === null || Array.isArray(settings))
          throw new TalonError('BAD_REQUEST', 'settings must be an object');
        const schema = await d.supervisor.settingsSchema(name);
        if (schema) {
          const v = settingsValidator(schema);
          if (!v(structuredClone(settings))) {
            const errors: ConfigProblem[] = (v.errors ?? []).map((e) => ({
              path: readablePath(
                e.instancePath,
                e.keyword === 'required'
                  ? String((e.params as { missingProperty?: unknown }).missingProperty)
                  : e.keyword === 'additionalProperties'
                    ? String((e.params as { additionalProperty?: unknown }).additionalProperty)
                    : undefined,
              ),
              message: e.message ?? 'is invalid',
            }));
            await d.audit.record({
              actor: caller.actor,
              action: 'api.hands.settings',
              subject: name,
              decision: 'error',
              detail: { errors: errors.slice(0, 10) },
            });
            throw new TalonError(
              'CONFIG_INVALID',
              `the settings of Hand "${name}" are invalid: ${errors
                .slice(0, 3)
                .map((e) => `${e.path}: ${e.message}`)
                .join('; ')}`,
              { details: { errors } },
            );
          }
        }
        const manager = cfg();
        const cur = await manager.current();
        const next: TalonConfig = structuredClone(cur.config);
        const hand = next.hands.find((h) => h.name === name);
        if (!hand) throw new TalonError('HAND_NOT_FOUND', `Hand "${name}" is not in the config generation in force`);
        hand.settings = settings as Record<string, unknown>;
        const r = await privileged(
          d.audit,
          { actor: caller.actor, action: 'api.hands.settings', subject: name },
          () => manager.apply(caller, next, { baseGeneration: cur.generation, source: `settings of ${name}` }),
          { okDetail: (x) => ({ generation: x.generation, changed: x.changed }) },
        );
        return { settings: settings as Record<string, unknown>, generation: r.generation };
      },
    },
  };
}

export type Areas = ReturnType<typeof createAreas>;
