/**
 * The tools over the kernel's own services: sensors and actuators, the bus, the caller's store,
 * the audit log, the Hands, embeddings, the clock and notifications. Each goes through the same
 * grant the kernel service checks for a Hand (the sensor registry checks `sensors` and `gpio`
 * itself; the bus grant, the store scope, `llm` and the audit rule are checked here), so a tool
 * never gives a Hand more than `ctx.call` would.
 *
 * The kernel's parts come in as narrow functions (KernelToolDeps), filled by the integrator; this
 * file imports no part of the kernel, only types.
 */
import type { AuditPage, AuditQuery } from '../../audit/chain.ts';
import type { AuditDecision } from '../../audit/types.ts';
import { type Clock, systemClock } from '../../core/clock.ts';
import { TalonError } from '../../core/errors.ts';
import { Grants } from '../../core/grants.ts';
import type { Capabilities } from '../../core/hand.ts';
import { HAND_NAME_PATTERN } from '../../core/names.ts';
import { KERNEL_ONLY, toAbsolute, toRelative, topicMatches, validateTopic } from '../../core/topics.ts';
import type { HandStatus, KernelService } from '../../supervisor/types.ts';
import type { ToolCaller, ToolDefinition } from '../types.ts';

/** the store scope an admin's store.* calls use (not a valid Hand name, so never a Hand's) */
export const ADMIN_STORE_SCOPE = '(admin)';
/** as a Hand's ctx.store (runtime/supervisor/hand-runner.ts) */
export const STORE_KEY_MAX_BYTES = 512;
export const STORE_VALUE_MAX_BYTES = 256 * 1024;
export const STORE_LIST_MAX = 1000;
/** topics under the device root nobody publishes to but the kernel (its state, Hand status, the audit head) */
const RESERVED = [...KERNEL_ONLY, 'audit/#'];
/** BCM pins an admin may drive (every pin of a Raspberry Pi header) */
const ALL_PINS = Array.from({ length: 64 }, (_, i) => i);

/** One caller's own key-value store: a Hand's ctx.store, or the admin scope. */
export interface ScopedStore {
  get(key: string): Promise<unknown>;
  put(key: string, value: unknown): Promise<void>;
  /** keys and values in key order */
  list(opts: { prefix?: string; limit: number }): Promise<Array<[string, unknown]>>;
}

export interface NotifyMessage {
  text: string;
  title?: string;
  priority: 'low' | 'normal' | 'high';
  /** the caller's actor (`hand:<name>`, `cli`, …) */
  from: string;
  hand?: string;
}

export interface NotifyResult {
  delivered: boolean;
  /** where it went (channel names) */
  channels?: string[];
  detail?: string;
}

/** What the kernel tools need of the kernel: each a narrow function the integrator fills in. */
export interface KernelToolDeps {
  /**
   * the Hand services by method: `sensors.list`, `sensors.read`, `actuators.list`,
   * `actuators.write` (runtime/sensors/registry.ts services(); they check the grants they are given)
   */
  services: (method: string) => KernelService | undefined;
  /** publish on the broker (an absolute topic) */
  publish: (topicAbs: string, payload: string, opts: { qos: 0 | 1 | 2; retain: boolean }) => Promise<void>;
  /** `talon/<deviceId>` */
  deviceRoot: string;
  /** the store of a Hand (its name) or of the admins (ADMIN_STORE_SCOPE) */
  store: { scope(owner: string): ScopedStore };
  auditQuery: (q: AuditQuery) => Promise<AuditPage>;
  /** the Supervisor's list, status, startHand, stopHand (actor: who asked, for its audit entry) */
  hands: {
    list(): HandStatus[];
    status(name: string): HandStatus;
    start(name: string, actor: string): Promise<HandStatus>;
    stop(name: string, actor: string): Promise<HandStatus>;
    /** the Supervisor's restartHand; absent: hands.restart answers TOOL_FAILED */
    restart?(name: string, actor: string): Promise<HandStatus>;
    /** the Supervisor's ask: a running Hand's chat() answer, in pieces; absent: hands.chat answers TOOL_FAILED */
    ask?(name: string, text: string, opts: { signal: AbortSignal; maxChars: number }): AsyncIterable<string>;
  };
  /**
   * an actuator's BCM pin (null: it has none, undefined: no such actuator), so actuators.write is refused
   * before a person is asked to approve a call that cannot pass; absent: the sensor registry alone checks
   */
  actuatorPin?: (id: string) => number | null | undefined;
  /** embeddings from the LLM router, under the caller's llm budget; absent: no provider embeds */
  embed?: (
    texts: string[],
    model: string | undefined,
    who: { actor: string; hand?: string; tokensPerHour?: number },
  ) => Promise<number[][]>;
  /** hand a notification to the Hand that delivers them (a surface with `notify`); absent: none can */
  notify?: (msg: NotifyMessage) => Promise<NotifyResult>;
  clock?: Clock;
}

/** the longest answer hands.chat returns, in characters */
const CHAT_ANSWER_MAX = 4000;

const READ = { readOnlyHint: true, destructiveHint: false, idempotentHint: true, openWorldHint: false } as const;

const sensorInfoSchema = {
  type: 'object',
  required: ['id', 'name', 'kind', 'mode'],
  properties: {
    id: { type: 'string' },
    name: { type: 'string' },
    kind: { enum: ['number', 'boolean', 'string'] },
    unit: { type: 'string' },
    deviceClass: { type: 'string' },
    stateClass: { type: 'string' },
    mode: { enum: ['polled', 'pushed'] },
  },
} as const;

const readingSchema = {
  type: 'object',
  required: ['sensor', 'value', 'ts'],
  properties: {
    sensor: { type: 'string' },
    value: { type: ['number', 'boolean', 'string'] },
    ts: { type: 'number', description: 'ms epoch when the value was taken' },
  },
} as const;

const handStatusSchema = {
  type: 'object',
  required: ['name', 'state', 'since'],
  properties: {
    name: { type: 'string' },
    module: { type: 'string' },
    state: { enum: ['stopped', 'starting', 'running', 'backoff', 'failed', 'stopping'] },
    since: { type: 'number' },
    uptimeMs: { type: 'number' },
    restarts: { type: 'number' },
  },
} as const;

const noInput = { type: 'object', additionalProperties: false, properties: {} } as const;
const sensorId = { type: 'string', minLength: 1, maxLength: 128, description: 'a sensor id from sensors.list' };
const handName = { type: 'string', pattern: HAND_NAME_PATTERN, description: 'a Hand name from hands.list' };
const storeKey = { type: 'string', minLength: 1, maxLength: STORE_KEY_MAX_BYTES };

export function kernelTools(deps: KernelToolDeps): ToolDefinition[] {
  const clock = deps.clock ?? systemClock;
  const service = (method: string): KernelService => {
    const s = deps.services(method);
    if (!s) throw new TalonError('TOOL_FAILED', `the kernel service ${method} is not available here`);
    return s;
  };
  /** the HandCaller a kernel service checks: an admin holds every sensor and pin */
  const handCaller = (c: ToolCaller): { name: string; grants: Capabilities } => ({
    name: c.hand ?? c.actor,
    grants: c.admin ? { ...c.grants, sensors: ['*'], gpio: ALL_PINS } : c.grants,
  });
  const storeOf = (c: ToolCaller): ScopedStore => {
    if (c.hand !== undefined) return deps.store.scope(c.hand);
    if (c.admin) return deps.store.scope(ADMIN_STORE_SCOPE);
    throw new TalonError('CAPABILITY_DENIED', `${c.actor} has no store: store.* work on a Hand's own store`, {
      details: { action: 'store', subject: c.actor },
    });
  };
  const storeCheck = (_: unknown, c: ToolCaller): null => {
    storeOf(c);
    return null;
  };

  const tools: ToolDefinition[] = [
    // ---- sensors and actuators ----------------------------------------------------------------
    {
      name: 'sensors.list',
      description:
        'List the sensors this caller may read: id, name, kind (number, boolean or string), unit. Use the ids with sensors.read.',
      inputSchema: noInput,
      outputSchema: {
        type: 'object',
        required: ['sensors'],
        properties: { sensors: { type: 'array', items: sensorInfoSchema } },
      },
      annotations: { title: 'List sensors', ...READ },
      capability: 'sensors: lists the sensors the grant covers',
      timeoutMs: 5000,
      async run(_input, ctx) {
        const sensors = await service('sensors.list')(handCaller(ctx.caller), []);
        return { sensors };
      },
    },
    {
      name: 'sensors.read',
      description:
        "Read one sensor now: its value and the time it was taken (ms epoch). The sensor must be in the caller's sensors grant.",
      inputSchema: {
        type: 'object',
        additionalProperties: false,
        required: ['id'],
        properties: { id: sensorId },
      },
      outputSchema: readingSchema,
      annotations: { title: 'Read a sensor', ...READ, idempotentHint: false },
      capability: 'sensors: the sensor id must match a glob of the grant',
      timeoutMs: 15_000,
      run: (input, ctx) => service('sensors.read')(handCaller(ctx.caller), [(input as { id: string }).id]),
    },
    {
      name: 'actuators.list',
      description:
        'List the actuators (relays, outputs) this caller may drive: id, name, kind (boolean or number), BCM pin.',
      inputSchema: noInput,
      outputSchema: {
        type: 'object',
        required: ['actuators'],
        properties: {
          actuators: {
            type: 'array',
            items: {
              type: 'object',
              required: ['id', 'name', 'kind'],
              properties: {
                id: { type: 'string' },
                name: { type: 'string' },
                kind: { enum: ['boolean', 'number'] },
                pin: { type: 'integer' },
              },
            },
          },
        },
      },
      annotations: { title: 'List actuators', ...READ },
      capability: 'gpio: lists the actuators whose pin the grant holds',
      timeoutMs: 5000,
      async run(_input, ctx) {
        const actuators = await service('actuators.list')(handCaller(ctx.caller), []);
        return { actuators };
      },
    },
    {
      name: 'actuators.write',
      description:
        'Set an actuator: true/false for a switch or relay, a number for a level. Changes the physical world; a person approves each call.',
      inputSchema: {
        type: 'object',
        additionalProperties: false,
        required: ['id', 'value'],
        properties: {
          id: { type: 'string', minLength: 1, maxLength: 128, description: 'an actuator id from actuators.list' },
          value: { type: ['boolean', 'number'], description: 'on/off, or a level' },
        },
      },
      outputSchema: {
        type: 'object',
        required: ['id', 'value'],
        properties: { id: { type: 'string' }, value: { type: ['boolean', 'number'] } },
      },
      annotations: {
        title: 'Drive an actuator',
        readOnlyHint: false,
        destructiveHint: true,
        idempotentHint: true,
        openWorldHint: false,
      },
      capability: "gpio: the actuator's BCM pin must be in the grant",
      timeoutMs: 15_000,
      check(input, caller) {
        // refused before a person is asked: no pins at all, an unknown actuator, or one whose pin is not granted
        // (the sensor registry checks the pin again when it writes)
        const id = (input as { id: string }).id;
        if (caller.grants.gpio.length === 0)
          throw new TalonError(
            'CAPABILITY_DENIED',
            `${nameOf(caller)} may not drive actuators; its gpio grant holds no pins`,
            {
              details: { action: 'actuators.write', subject: id },
            },
          );
        if (deps.actuatorPin) {
          const pin = deps.actuatorPin(id);
          if (pin === undefined)
            throw new TalonError(
              'ACTUATOR_NOT_FOUND',
              `there is no actuator "${id.slice(0, 80)}" (actuators.list names them)`,
            );
          if (pin === null || !caller.grants.gpio.includes(pin))
            throw new TalonError(
              'CAPABILITY_DENIED',
              `${nameOf(caller)} may not drive actuator ${id}${pin === null ? '' : ` on pin ${pin}`}; its gpio grant holds pins ${caller.grants.gpio.join(', ')}`,
              { details: { action: 'actuators.write', subject: id } },
            );
        }
        return null;
      },
      async run(input, ctx) {
        const { id, value } = input as { id: string; value: boolean | number };
        await service('actuators.write')(handCaller(ctx.caller), [id, value]);
        return { id, value };
      },
    },

    // ---- the bus --------------------------------------------------------------------------------
    {
      name: 'bus.publish',
      description:
        "Publish a message on the device's MQTT bus. topic is relative to talon/<deviceId>/ " +
        '(a leading "/" means absolute); payload is sent as is when a string, as JSON otherwise.',
      inputSchema: {
        type: 'object',
        additionalProperties: false,
        required: ['topic', 'payload'],
        properties: {
          topic: { type: 'string', minLength: 1, maxLength: 1024 },
          payload: { description: 'a string (sent as is) or any JSON value' },
          retain: { type: 'boolean', description: "keep it as the topic's last message (default false)" },
          qos: { enum: [0, 1, 2], description: 'MQTT QoS (default 0)' },
        },
      },
      outputSchema: {
        type: 'object',
        required: ['topic', 'bytes'],
        properties: { topic: { type: 'string' }, bytes: { type: 'integer' } },
      },
      annotations: {
        title: 'Publish on the bus',
        readOnlyHint: false,
        destructiveHint: false,
        idempotentHint: false,
        openWorldHint: false,
      },
      capability: 'bus.publish: the topic must match a filter of the grant',
      timeoutMs: 10_000,
      check(input, caller) {
        const abs = checkTopic(deps.deviceRoot, (input as { topic: string }).topic);
        const grants = new Grants(caller.grants, deps.deviceRoot);
        if (!grants.canPublish(abs)) {
          const allowed = caller.grants.bus.publish.map((f) => toRelative(deps.deviceRoot, f));
          throw new TalonError(
            'CAPABILITY_DENIED',
            `${nameOf(caller)} may not publish to ${toRelative(deps.deviceRoot, abs)}; its bus.publish grant allows ${allowed.join(', ') || 'no topics'}`,
            { details: { action: 'bus.publish', subject: abs } },
          );
        }
        return null;
      },
      async run(input, _ctx) {
        const i = input as { topic: string; payload: unknown; retain?: boolean; qos?: 0 | 1 | 2 };
        const abs = checkTopic(deps.deviceRoot, i.topic);
        const payload = typeof i.payload === 'string' ? i.payload : JSON.stringify(i.payload ?? null);
        await deps.publish(abs, payload, { qos: i.qos ?? 0, retain: i.retain ?? false });
        return { topic: abs, bytes: Buffer.byteLength(payload) };
      },
    },

    // ---- the caller's store -----------------------------------------------------------------------
    {
      name: 'store.get',
      description:
        "Read one key of the caller's own persistent key-value store. found is false when the key is not set.",
      inputSchema: { type: 'object', additionalProperties: false, required: ['key'], properties: { key: storeKey } },
      outputSchema: {
        type: 'object',
        required: ['key', 'found'],
        properties: { key: { type: 'string' }, found: { type: 'boolean' }, value: {} },
      },
      annotations: { title: 'Read from the store', ...READ },
      capability: "store: the caller's own store (a Hand's ctx.store)",
      timeoutMs: 10_000,
      check: storeCheck,
      async run(input, ctx) {
        const key = storeKeyOf((input as { key: string }).key);
        const value = await storeOf(ctx.caller).get(key);
        return value === undefined ? { key, found: false } : { key, found: true, value };
      },
    },
    {
      name: 'store.put',
      description: `Write one key of the caller's own persistent store (any JSON value, up to ${STORE_VALUE_MAX_BYTES / 1024} KiB). Overwrites the key's value.`,
      inputSchema: {
        type: 'object',
        additionalProperties: false,
        required: ['key', 'value'],
        properties: { key: storeKey, value: { description: 'any JSON value' } },
      },
      outputSchema: {
        type: 'object',
        required: ['key', 'bytes'],
        properties: { key: { type: 'string' }, bytes: { type: 'integer' } },
      },
      annotations: {
        title: 'Write to the store',
        readOnlyHint: false,
        destructiveHint: false,
        idempotentHint: true,
        openWorldHint: false,
      },
      capability: "store: the caller's own store (a Hand's ctx.store)",
      timeoutMs: 10_000,
      check: storeCheck,
      async run(input, ctx) {
        const i = input as { key: string; value: unknown };
        const key = storeKeyOf(i.key);
        const json = JSON.stringify(i.value ?? null);
        const bytes = Buffer.byteLength(json);
        if (bytes > STORE_VALUE_MAX_BYTES)
          throw new TalonError(
            'STORE_LIMIT',
            `the value for "${key}" is ${bytes} bytes of JSON; the limit is ${STORE_VALUE_MAX_BYTES}`,
          );
        await storeOf(ctx.caller).put(key, i.value ?? null);
        return { key, bytes };
      },
    },
    {
      name: 'store.list',
      description:
        "List keys and values of the caller's own store in key order, optionally those starting with prefix.",
      inputSchema: {
        type: 'object',
        additionalProperties: false,
        properties: {
          prefix: { type: 'string', maxLength: STORE_KEY_MAX_BYTES },
          limit: { type: 'integer', minimum: 1, maximum: STORE_LIST_MAX, description: 'default 100' },
        },
      },
      outputSchema: {
        type: 'object',
        required: ['items', 'more'],
        properties: {
          items: {
            type: 'array',
            items: { type: 'object', required: ['key'], properties: { key: { type: 'string' }, value: {} } },
          },
          more: { type: 'boolean', description: 'true when limit cut the list' },
        },
      },
      annotations: { title: 'List the store', ...READ },
      capability: "store: the caller's own store (a Hand's ctx.store)",
      timeoutMs: 10_000,
      check: storeCheck,
      async run(input, ctx) {
        const i = input as { prefix?: string; limit?: number };
        const limit = i.limit ?? 100;
        const rows = await storeOf(ctx.caller).list({
          ...(i.prefix ? { prefix: i.prefix } : {}),
          limit: Math.min(STORE_LIST_MAX, limit + 1),
        });
        return { items: rows.slice(0, limit).map(([key, value]) => ({ key, value })), more: rows.length > limit };
      },
    },

    // ---- the audit log ----------------------------------------------------------------------------
    {
      name: 'audit.query',
      description:
        "Search the device's signed audit log, newest first by default: who did what, allowed or denied. " +
        'Filter by actor, action (exact, or a prefix like "tool.*"), decision and time; page with cursor.',
      inputSchema: {
        type: 'object',
        additionalProperties: false,
        properties: {
          actor: { type: 'string', maxLength: 200 },
          action: { type: 'string', maxLength: 200 },
          decision: {
            anyOf: [
              { enum: ['allow', 'deny', 'ok', 'error', 'info'] },
              { type: 'array', items: { enum: ['allow', 'deny', 'ok', 'error', 'info'] }, minItems: 1 },
            ],
          },
          from: { type: 'integer', minimum: 0, description: 'ms epoch, inclusive' },
          to: { type: 'integer', minimum: 0, description: 'ms epoch, inclusive' },
          cursor: { type: 'string', maxLength: 200, description: 'nextCursor of a previous page' },
          limit: { type: 'integer', minimum: 1, maximum: 200, description: 'default 50' },
          order: { enum: ['asc', 'desc'] },
        },
      },
      outputSchema: {
        type: 'object',
        required: ['items', 'nextCursor'],
        properties: {
          items: { type: 'array', items: { type: 'object' } },
          nextCursor: { type: ['string', 'null'] },
        },
      },
      annotations: { title: 'Query the audit log', ...READ, idempotentHint: false },
      capability: 'tools: audit.query named in the tools grant itself (a glob does not grant it)',
      timeoutMs: 15_000,
      maxOutputBytes: 256 * 1024,
      check(_input, caller) {
        if (!(caller.grants.tools?.allow ?? []).includes('audit.query'))
          throw new TalonError(
            'CAPABILITY_DENIED',
            `${nameOf(caller)} may not read the audit log: audit.query must be named in its tools grant itself, not through a glob`,
            { details: { action: 'audit.query', subject: 'audit' } },
          );
        return null;
      },
      async run(input) {
        const i = input as AuditQuery & { decision?: AuditDecision | AuditDecision[] };
        const page = await deps.auditQuery({ ...i, limit: i.limit ?? 50 });
        return { items: page.items, nextCursor: page.nextCursor };
      },
    },

    // ---- Hands ------------------------------------------------------------------------------------
    {
      name: 'hands.list',
      description: 'List the Hands on this device with their state (running, stopped, failed…), uptime and restarts.',
      inputSchema: noInput,
      outputSchema: {
        type: 'object',
        required: ['hands'],
        properties: { hands: { type: 'array', items: handStatusSchema } },
      },
      annotations: { title: 'List Hands', ...READ, idempotentHint: false },
      capability: 'tools: hands.list in the tools grant',
      timeoutMs: 5000,
      async run() {
        return { hands: deps.hands.list() };
      },
    },
    {
      name: 'hands.status',
      description: "One Hand's status: state, uptime, restarts, last error, CPU and memory, message counters.",
      inputSchema: { type: 'object', additionalProperties: false, required: ['name'], properties: { name: handName } },
      outputSchema: handStatusSchema,
      annotations: { title: "A Hand's status", ...READ, idempotentHint: false },
      capability: 'tools: hands.status in the tools grant',
      timeoutMs: 5000,
      async run(input) {
        return deps.hands.status((input as { name: string }).name);
      },
    },
    {
      name: 'hands.chat',
      description:
        "Ask a running Hand something in words and get its chat answer (a Hand that has no chat says so). Not the caller's own Hand.",
      inputSchema: {
        type: 'object',
        additionalProperties: false,
        required: ['name', 'text'],
        properties: { name: handName, text: { type: 'string', minLength: 1, maxLength: 4000 } },
      },
      outputSchema: {
        type: 'object',
        required: ['answer'],
        properties: { answer: { type: 'string' }, truncated: { type: 'boolean' } },
      },
      annotations: {
        title: 'Ask a Hand',
        readOnlyHint: false,
        destructiveHint: false,
        idempotentHint: false,
        openWorldHint: false,
      },
      capability: 'tools: hands.chat in the tools grant',
      timeoutMs: 60_000,
      async run(input, ctx) {
        const i = input as { name: string; text: string };
        if (ctx.caller.hand === i.name)
          throw new TalonError('BAD_REQUEST', `Hand "${i.name}" cannot ask itself: name another Hand`);
        if (!deps.hands.ask) throw new TalonError('TOOL_FAILED', 'asking Hands is not available here');
        let answer = '';
        for await (const piece of deps.hands.ask(i.name, i.text, { signal: ctx.signal, maxChars: CHAT_ANSWER_MAX }))
          answer += piece;
        const truncated = answer.length > CHAT_ANSWER_MAX;
        return { answer: truncated ? answer.slice(0, CHAT_ANSWER_MAX) : answer, ...(truncated && { truncated }) };
      },
    },
    {
      name: 'hands.start',
      description: 'Start a stopped Hand. Returns its status. A person approves each call.',
      inputSchema: { type: 'object', additionalProperties: false, required: ['name'], properties: { name: handName } },
      outputSchema: handStatusSchema,
      annotations: {
        title: 'Start a Hand',
        readOnlyHint: false,
        destructiveHint: true,
        idempotentHint: true,
        openWorldHint: false,
      },
      capability: "tools: hands.start in the tools grant, and a person's approval",
      timeoutMs: 60_000,
      async run(input, ctx) {
        return deps.hands.start((input as { name: string }).name, ctx.caller.actor);
      },
    },
    {
      name: 'hands.stop',
      description:
        'Stop a running Hand (it stays stopped until started). Returns its status. A person approves each call.',
      inputSchema: { type: 'object', additionalProperties: false, required: ['name'], properties: { name: handName } },
      outputSchema: handStatusSchema,
      annotations: {
        title: 'Stop a Hand',
        readOnlyHint: false,
        destructiveHint: true,
        idempotentHint: true,
        openWorldHint: false,
      },
      capability: "tools: hands.stop in the tools grant, and a person's approval; never the calling Hand itself",
      timeoutMs: 60_000,
      check(input, caller) {
        const name = (input as { name: string }).name;
        if (caller.hand === name)
          throw new TalonError('CAPABILITY_DENIED', `Hand "${name}" may not stop itself with hands.stop`, {
            details: { action: 'hands.stop', subject: name },
          });
        return null;
      },
      async run(input, ctx) {
        return deps.hands.stop((input as { name: string }).name, ctx.caller.actor);
      },
    },
    {
      name: 'hands.restart',
      description:
        'Restart a Hand (stop it if it runs, then start it; a failed Hand gets a fresh restart budget). Returns its status. A person approves each call.',
      inputSchema: { type: 'object', additionalProperties: false, required: ['name'], properties: { name: handName } },
      outputSchema: handStatusSchema,
      annotations: {
        title: 'Restart a Hand',
        readOnlyHint: false,
        destructiveHint: true,
        idempotentHint: false,
        openWorldHint: false,
      },
      capability: "tools: hands.restart in the tools grant, and a person's approval; never the calling Hand itself",
      timeoutMs: 60_000,
      check(input, caller) {
        const name = (input as { name: string }).name;
        if (caller.hand === name)
          throw new TalonError('CAPABILITY_DENIED', `Hand "${name}" may not restart itself with hands.restart`, {
            details: { action: 'hands.restart', subject: name },
          });
        return null;
      },
      async run(input, ctx) {
        const restart = deps.hands.restart;
        if (!restart) throw new TalonError('TOOL_FAILED', 'hands.restart is not available here');
        return restart((input as { name: string }).name, ctx.caller.actor);
      },
    },

    // ---- the LLM, the clock, people ---------------------------------------------------------------
    {
      name: 'llm.embed',
      description:
        "Embed texts as vectors with the device's LLM router (for similarity search). One vector per text, in order.",
      inputSchema: {
        type: 'object',
        additionalProperties: false,
        required: ['texts'],
        properties: {
          texts: { type: 'array', minItems: 1, maxItems: 32, items: { type: 'string', maxLength: 8192 } },
          model: { type: 'string', maxLength: 200 },
        },
      },
      outputSchema: {
        type: 'object',
        required: ['vectors', 'dimensions'],
        properties: {
          vectors: { type: 'array', items: { type: 'array', items: { type: 'number' } } },
          dimensions: { type: 'integer' },
        },
      },
      annotations: { title: 'Embed texts', ...READ, idempotentHint: true, openWorldHint: true },
      capability: 'llm: the llm grant (its token budget)',
      timeoutMs: 60_000,
      maxOutputBytes: 4 * 1024 * 1024,
      check(_input, caller) {
        if (!caller.grants.llm)
          throw new TalonError('CAPABILITY_DENIED', `${nameOf(caller)} may not use the LLM: it has no llm grant`, {
            details: { action: 'llm.embed', subject: 'llm' },
          });
        return null;
      },
      async run(input, ctx) {
        const i = input as { texts: string[]; model?: string };
        if (!deps.embed) throw new TalonError('TOOL_FAILED', 'no LLM provider on this device can embed texts');
        const who = {
          actor: ctx.caller.actor,
          ...(ctx.caller.hand !== undefined && { hand: ctx.caller.hand }),
          ...(!ctx.caller.admin && ctx.caller.grants.llm && { tokensPerHour: ctx.caller.grants.llm.tokensPerHour }),
        };
        const vectors = await deps.embed(i.texts, i.model, who);
        if (!Array.isArray(vectors) || vectors.length !== i.texts.length)
          throw new TalonError(
            'TOOL_FAILED',
            `the embedding provider answered ${vectors?.length} vectors for ${i.texts.length} texts`,
          );
        return { vectors, dimensions: vectors[0]?.length ?? 0 };
      },
    },
    {
      name: 'time.now',
      description:
        "The device's current time: ISO 8601 in UTC, ms epoch, the local time with its offset, the time zone name and the weekday.",
      inputSchema: noInput,
      outputSchema: {
        type: 'object',
        required: ['iso', 'epochMs', 'local', 'timeZone', 'utcOffsetMinutes', 'weekday'],
        properties: {
          iso: { type: 'string' },
          epochMs: { type: 'integer' },
          local: { type: 'string' },
          timeZone: { type: 'string' },
          utcOffsetMinutes: { type: 'integer' },
          weekday: { type: 'string' },
        },
      },
      annotations: { title: 'Current time', ...READ, idempotentHint: false },
      capability: 'none: any caller whose tools grant names it',
      timeoutMs: 1000,
      async run() {
        return timeNow(clock.now());
      },
    },
    {
      name: 'notify',
      description:
        "Send a short message to the people who look after this device, through the messaging Hand's channels (its rules pick who).",
      inputSchema: {
        type: 'object',
        additionalProperties: false,
        required: ['text'],
        properties: {
          text: { type: 'string', minLength: 1, maxLength: 4000 },
          title: { type: 'string', maxLength: 200 },
          priority: { enum: ['low', 'normal', 'high'], description: 'default normal' },
        },
      },
      outputSchema: {
        type: 'object',
        required: ['delivered'],
        properties: {
          delivered: { type: 'boolean' },
          channels: { type: 'array', items: { type: 'string' } },
          detail: { type: 'string' },
        },
      },
      annotations: {
        title: 'Notify a person',
        readOnlyHint: false,
        destructiveHint: false,
        idempotentHint: false,
        openWorldHint: true,
      },
      capability: 'tools: notify in the tools grant',
      timeoutMs: 30_000,
      async run(input, ctx) {
        if (!deps.notify) throw new TalonError('TOOL_FAILED', 'no Hand delivers notifications on this device');
        const i = input as { text: string; title?: string; priority?: 'low' | 'normal' | 'high' };
        return deps.notify({
          text: i.text,
          ...(i.title !== undefined && { title: i.title }),
          priority: i.priority ?? 'normal',
          from: ctx.caller.actor,
          ...(ctx.caller.hand !== undefined && { hand: ctx.caller.hand }),
        });
      },
    },
  ];
  for (const t of tools) t.source = 'builtin';
  return tools;
}

function nameOf(caller: ToolCaller): string {
  return caller.hand !== undefined ? `Hand "${caller.hand}"` : caller.actor;
}

/** the absolute topic of a tool's topic, refused when it is not a topic or is the kernel's own */
function checkTopic(root: string, topic: string): string {
  const abs = toAbsolute(root, topic);
  validateTopic(abs);
  if (abs.startsWith(`${root}/`)) {
    const rel = abs.slice(root.length + 1);
    if (RESERVED.some((f) => topicMatches(f, rel)))
      throw new TalonError('CAPABILITY_DENIED', `${rel} is the kernel's own topic; nobody else publishes there`, {
        details: { action: 'bus.publish', subject: abs },
      });
  }
  return abs;
}

function storeKeyOf(key: string): string {
  const bytes = Buffer.byteLength(key);
  if (bytes > STORE_KEY_MAX_BYTES)
    throw new TalonError('STORE_LIMIT', `store key is ${bytes} bytes; the limit is ${STORE_KEY_MAX_BYTES}`);
  return key;
}

/** the time in UTC, and locally with the process's time zone */
export function timeNow(ms: number): {
  iso: string;
  epochMs: number;
  local: string;
  timeZone: string;
  utcOffsetMinutes: number;
  weekday: string;
} {
  const d = new Date(ms);
  const offset = -d.getTimezoneOffset();
  const sign = offset < 0 ? '-' : '+';
  const abs = Math.abs(offset);
  const hhmm = `${String(Math.floor(abs / 60)).padStart(2, '0')}:${String(abs % 60).padStart(2, '0')}`;
  const local = `${new Date(ms + offset * 60_000).toISOString().slice(0, 23)}${sign}${hhmm}`;
  return {
    iso: d.toISOString(),
    epochMs: ms,
    local,
    timeZone: Intl.DateTimeFormat().resolvedOptions().timeZone ?? 'UTC',
    utcOffsetMinutes: offset,
    weekday: d.toLocaleDateString('en-US', { weekday: 'long' }),
  };
}
