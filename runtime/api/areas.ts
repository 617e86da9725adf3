/**
 * The runtime API areas the web admin added (issue 6): system info and stats, sensor history
 * and live readings, alerts, config generations, stored chats, bus traffic, provisioning,
 * and Hand settings. Transport-agnostic like the rest of ./runtime-api.ts: functions that
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
import { privileged } from '../audit/privileged.ts';
import type { MonitoringClient } from './monitoring-client.ts';
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
  monitoring?: MonitoringClient;
  chat?: ChatService;
  provisioning?: () => Promise<ProvisioningStatus>;
}

const SENSOR_ID = /^[a-z0-9][a-z0-9._-]{0,127}$/;
const HAND_NAME = /^[a-z0-9][a-z0-9-]{0,62}$/;
/** the longest range history and alert queries accept */
export const MAX_RANGE_MS = 400 * 86_400_000;

function need<T>(v: T | undefined, what: string): T {
  if (v === undefined) throw new TalonError('NOT_RUNNING', `${what} is not available in this kernel`);
  return v;
}

function checkRange(from: number | undefined, to: number | undefined): void {
  if (from !== undefined && to !== undefined) {
    if (from > to) throw new TalonError('BAD_REQUEST', `from (${from}) must not be after to (${to})`);
    if (to - from > MAX_RANGE_MS) throw new TalonError('BAD_REQUEST', `the range is ${Math.round((to - from) / 86_400_000)} days; at most ${MAX_RANGE_MS / 86_400_000} days at once`);
  }
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
  const monitoring = (): MonitoringClient => need(d.monitoring, 'the Monitoring Hand client');
  const cfg = (): ConfigManager => need(d.config, 'config management');
  const chat = (): ChatService => need(d.chat, 'chat');

  const alertChange = async (caller: Caller, type: 'ack' | 'resolve', id: string, note?: string): Promise<{ alert: unknown }> => {
    if (typeof id !== 'string' || id.length === 0 || id.length > 200 || /[\u0000-\u001f]/.test(id)) throw new TalonError('BAD_REQUEST', 'an alert id is 1-200 printable characters');
    if (note !== undefined && (typeof note !== 'string' || note.length > 1000)) throw new TalonError('BAD_REQUEST', 'note must be text of at most 1000 characters');
    const client = monitoring();
    const r = await privileged(d.audit, { actor: caller.actor, action: `api.alerts.${type}`, subject: id, ...(note ? { detail: { note } } : {}) },
      () => client.query(type, { alertId: id, by: caller.actor, ...(note ? { note } : {}) }));
    return { alert: r.alert };
  };

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
        await privileged(d.audit, { actor: caller.actor, action: 'api.system.restart', subject: 'kernel' }, () => restart(caller), { outcome: false });
        return { restarting: true };
      },
    },

    sensors: {
      history: async (_caller: Caller, id: string, q: { from?: number; to?: number; resolution?: string; maxPoints?: number } = {}): Promise<Record<string, unknown>> => {
        if (!SENSOR_ID.test(id)) throw new TalonError('BAD_REQUEST', `"${id.slice(0, 80)}" is not a sensor id`);
        const now = Date.now();
        const to = q.to ?? now;
        const from = q.from ?? to - 3_600_000;
        checkRange(from, to);
        const r = await monitoring().query('history', { sensor: id, from, to, resolution: q.resolution ?? 'auto', maxPoints: q.maxPoints ?? 1000 });
        const { id: _id, ok: _ok, ...rest } = r;
        return rest;
      },
      /** calls `onReading` for every reading published on sensors/<id> until the returned function is called */
      follow: (_caller: Caller, onReading: (r: { id: string; value: unknown; ts: unknown }) => void): Promise<() => void> =>
        subscribeRel('sensors/+', (topic, json) => {
          const r = json as { sensor?: unknown; value?: unknown; ts?: unknown } | null;
          if (r && typeof r === 'object') onReading({ id: topic.slice('sensors/'.length), value: r.value, ts: r.ts });
        }),
    },

    alerts: {
      list: async (_caller: Caller, q: { state?: 'active' | 'all'; sensor?: string; from?: number; to?: number; limit?: number } = {}): Promise<unknown[]> => {
        checkRange(q.from, q.to);
        if (q.sensor !== undefined && !SENSOR_ID.test(q.sensor)) throw new TalonError('BAD_REQUEST', `"${q.sensor.slice(0, 80)}" is not a sensor id`);
        if ((q.state ?? 'active') === 'active') {
          const r = await monitoring().query('active');
          const alerts = Array.isArray(r.alerts) ? r.alerts as Array<{ sensor?: string }> : [];
          return (q.sensor ? alerts.filter((a) => a.sensor === q.sensor) : alerts).slice(0, q.limit ?? 200);
        }
        const r = await monitoring().query('alerts', {
          ...(q.sensor !== undefined ? { sensor: q.sensor } : {}), ...(q.from !== undefined ? { from: q.from } : {}),
          ...(q.to !== undefined ? { to: q.to } : {}), limit: q.limit ?? 200,
        });
        return Array.isArray(r.alerts) ? r.alerts : [];
      },
      ack: (caller: Caller, id: string, note?: string) => alertChange(caller, 'ack', id, note),
      resolve: (caller: Caller, id: string, note?: string) => alertChange(caller, 'resolve', id, note),
      follow: (_caller: Caller, onAlert: (a: unknown) => void): Promise<() => void> => subscribeRel('alerts/#', (_t, json) => onAlert(json)),
    },

    config: {
      get: async (_caller: Caller): Promise<ConfigGeneration> => cfg().current(),
      schema: async (_caller: Caller): Promise<Record<string, unknown>> => cfg().schema(),
      validate: (_caller: Caller, config: unknown): Promise<ValidationResult> => cfg().validate(config),
      diff: (_caller: Caller, config: unknown): Promise<DiffResult> => cfg().diff(config),
      // the config manager records the outcome (config.apply, config.rollback); the intent is written first
      apply: async (caller: Caller, config: unknown, opts: { baseGeneration?: number } = {}): Promise<ApplyResult> => {
        const manager = cfg();
        return privileged(d.audit, { actor: caller.actor, action: 'api.config.apply', subject: 'config', ...(opts.baseGeneration !== undefined ? { detail: { baseGeneration: opts.baseGeneration } } : {}) },
          () => manager.apply(caller, config, opts), { outcome: false });
      },
      rollback: async (caller: Caller, generation: number): Promise<ApplyResult> => {
        const manager = cfg();
        return privileged(d.audit, { actor: caller.actor, action: 'api.config.rollback', subject: `generation ${generation}` }, () => manager.rollback(caller, generation), { outcome: false });
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
        return privileged(d.audit, { actor: caller.actor, action: 'api.chat.create', subject: target.slice(0, 80) }, () => service.create(caller, target, title), { outcome: 'errors' });
      },
      get: (caller: Caller, id: string) => chat().get(caller, id),
      post: async (caller: Caller, id: string, content: string): Promise<{ user: Message; assistant: Message }> => {
        const service = chat();
        return privileged(d.audit, { actor: caller.actor, action: 'api.chat.message', subject: id.slice(0, 80) }, () => service.post(caller, id, content), { outcome: 'errors' });
      },
      follow: (caller: Caller, id: string, mid: string, from: number, listener: ChatListener): Promise<() => void> => chat().subscribe(caller, id, mid, from, listener),
      delete: async (caller: Caller, id: string) => {
        const service = chat();
        return privileged(d.audit, { actor: caller.actor, action: 'api.chat.delete', subject: id.slice(0, 80) }, () => service.delete(caller, id), { outcome: 'errors' });
      },
    },

    bus: {
      recent: async (_caller: Caller, q: { limit?: number; filter?: string } = {}): Promise<RecordedMessage[]> => need(d.recorder, 'the bus recorder').recent(q),
      publish: async (caller: Caller, topic: string, payload: string, opts: { retain?: boolean; qos?: 0 | 1 | 2 } = {}): Promise<{ topic: string }> => {
        const recorder = need(d.recorder, 'the bus recorder');
        const abs = await privileged(d.audit, { actor: caller.actor, action: 'api.bus.publish', subject: topic.slice(0, 200), detail: { bytes: Buffer.byteLength(payload), retain: opts.retain ?? false } },
          () => recorder.publish(topic, payload, opts), { okDetail: (t) => ({ topic: t }) });
        return { topic: abs };
      },
    },

    provisioning: {
      status: async (_caller: Caller): Promise<ProvisioningStatus> => d.provisioning?.()
        ?? { state: 'standalone', message: 'no fleet is configured: this device runs standalone, managed from this page and its config file' },
    },

    handSettings: {
      get: async (_caller: Caller, name: string): Promise<{ settings: Record<string, unknown>; schema: Record<string, unknown> | null }> => {
        if (!HAND_NAME.test(name)) throw new TalonError('BAD_REQUEST', `"${name.slice(0, 80)}" is not a Hand name`);
        const hand = d.supervisor.handConfig(name);
        const schema = await d.supervisor.settingsSchema(name).catch(() => null);
        return { settings: hand.settings ?? {}, schema };
      },
      update: async (caller: Caller, name: string, settings: unknown): Promise<{ settings: Record<string, unknown>; generation: number }> => {
        if (!HAND_NAME.test(name)) throw new TalonError('BAD_REQUEST', `"${name.slice(0, 80)}" is not a Hand name`);
        d.supervisor.handConfig(name); // HAND_NOT_FOUND
        if (typeof settings !== 'object' || settings === null || Array.isArray(settings)) throw new TalonError('BAD_REQUEST', 'settings must be an object');
        const schema = await d.supervisor.settingsSchema(name);
        if (schema) {
          const v = settingsValidator(schema);
          if (!v(structuredClone(settings))) {
            const errors: ConfigProblem[] = (v.errors ?? []).map((e) => ({
              path: readablePath(e.instancePath, e.keyword === 'required' ? String((e.params as { missingProperty?: unknown }).missingProperty) : e.keyword === 'additionalProperties' ? String((e.params as { additionalProperty?: unknown }).additionalProperty) : undefined),
              message: e.message ?? 'is invalid',
            }));
            await d.audit.record({ actor: caller.actor, action: 'api.hands.settings', subject: name, decision: 'error', detail: { errors: errors.slice(0, 10) } });
            throw new TalonError('CONFIG_INVALID', `the settings of Hand "${name}" are invalid: ${errors.slice(0, 3).map((e) => `${e.path}: ${e.message}`).join('; ')}`, { details: { errors } });
          }
        }
        const manager = cfg();
        const cur = await manager.current();
        const next: TalonConfig = structuredClone(cur.config);
        const hand = next.hands.find((h) => h.name === name);
        if (!hand) throw new TalonError('HAND_NOT_FOUND', `Hand "${name}" is not in the config generation in force`);
        hand.settings = settings as Record<string, unknown>;
        const r = await privileged(d.audit, { actor: caller.actor, action: 'api.hands.settings', subject: name },
          () => manager.apply(caller, next, { baseGeneration: cur.generation, source: `settings of ${name}` }), { okDetail: (x) => ({ generation: x.generation, changed: x.changed }) });
        return { settings: settings as Record<string, unknown>, generation: r.generation };
      },
    },
  };
}

export type Areas = ReturnType<typeof createAreas>;
