/**
 * The kernel tools through the real registry, over real parts: the sensor registry (a small
 * in-memory driver) and its grant-checking services, a LevelDB store scoped per Hand as the
 * supervisor scopes ctx.store, the audit chain (audit.query reads it back), and the approval
 * queue (a listener answers as a person would). Each tool's grant is tried from both sides.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AuditChain } from '../../../runtime/audit/chain.ts';
import type { Bus } from '../../../runtime/bus/types.ts';
import { TalonError } from '../../../runtime/core/errors.ts';
import { NO_CAPABILITIES } from '../../../runtime/core/grants.ts';
import type { Capabilities } from '../../../runtime/core/hand.ts';
import { DeviceKey } from '../../../runtime/secrets/device-key.ts';
import { SensorRegistry } from '../../../runtime/sensors/registry.ts';
import { Store } from '../../../runtime/store/store.ts';
import type { HandStatus } from '../../../runtime/supervisor/types.ts';
import { Approvals } from '../../../runtime/tools/approvals.ts';
import {
  ADMIN_STORE_SCOPE,
  type KernelToolDeps,
  type NotifyMessage,
  type ScopedStore,
  kernelTools,
} from '../../../runtime/tools/builtin/kernel.ts';
import { ToolRegistry } from '../../../runtime/tools/registry.ts';
import type { ToolCaller } from '../../../runtime/tools/types.ts';
import type { Driver, Reading } from '../../../drivers/types.ts';

const ROOT = 'talon/dev-1';

/** a driver with two sensors and one actuator on BCM 17, in memory */
function memoryDriver(): Driver & { writes: Array<[string, boolean | number]> } {
  const writes: Array<[string, boolean | number]> = [];
  return {
    name: 'mem',
    type: 'memory',
    writes,
    start: async () => {},
    stop: async () => {},
    sensors: () => [
      { id: 'greenhouse.temp', name: 'Greenhouse temperature', kind: 'number', unit: '°C', mode: 'polled' },
      { id: 'cpu.temp', name: 'CPU temperature', kind: 'number', unit: '°C', mode: 'polled' },
    ],
    read: async (id: string): Promise<Reading> => ({ sensor: id, value: id === 'cpu.temp' ? 51.5 : 21.25, ts: 1000 }),
    onReading: () => () => {},
    actuators: () => [{ id: 'pump', name: 'Water pump', kind: 'boolean', pin: 17 }],
    write: async (id, value) => void writes.push([id, value]),
    health: () => ({ ok: true, counters: {} }),
  };
}

const downBus = {
  deviceId: 'dev-1',
  root: ROOT,
  isUp: () => false,
  publish: async () => {},
} as unknown as Bus;

function caps(over: Partial<Capabilities> & { allow?: string[]; approve?: string[] } = {}): Capabilities {
  const { allow, approve, ...rest } = over;
  return { ...NO_CAPABILITIES, ...rest, tools: { allow: allow ?? ['*'], approve: approve ?? [] } } as Capabilities;
}

function hand(name: string, grants: Capabilities): ToolCaller {
  return { actor: `hand:${name}`, hand: name, admin: false, grants, folder: `/tmp/${name}` };
}

const admin: ToolCaller = { actor: 'user:ada', admin: true, grants: caps({ allow: [] }), folder: '/tmp' };

let dir: string;
let store: Store;
let chain: AuditChain;
let approvals: Approvals;
let reg: ToolRegistry;
let driver: ReturnType<typeof memoryDriver>;
let answer: 'approve' | 'deny' = 'approve';
const published: Array<{ topic: string; payload: string; opts: unknown }> = [];
const handOps: Array<[string, string, string]> = [];
const notified: NotifyMessage[] = [];
const deps: Partial<KernelToolDeps> = {};

function status(name: string, state: HandStatus['state']): HandStatus {
  return {
    name,
    module: 'builtin',
    state,
    since: 1,
    uptimeMs: 0,
    restarts: 0,
    cpu: 0,
    heapUsedMb: 0,
    heapLimitMb: 0,
    messages: { published: 0, received: 0, dropped: 0, denied: 0, malformed: 0 },
    handlerErrors: 0,
    logsDropped: 0,
  };
}

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'talon-kernel-tools-'));
  store = await Store.open(dir);
  chain = new AuditChain(store, DeviceKey.loadOrCreate(dir));
  await chain.start();
  driver = memoryDriver();
  const sensors = new SensorRegistry([driver], downBus, chain);
  await sensors.start();
  const services = sensors.services();
  approvals = new Approvals({ store, audit: chain, timeoutMs: () => 60_000 });
  await approvals.start();
  approvals.onChange((a) => {
    if (a.state === 'pending') void approvals.decide(a.id, answer, 'user:ada', answer === 'deny' ? 'no' : undefined);
  });
  reg = new ToolRegistry({ audit: chain, approvals, config: () => ({ auditArgs: false, approvalTimeoutMs: 60_000 }) });
  const scope = (owner: string): ScopedStore => {
    const db = store.sublevel('hands').sublevel<string, unknown>(owner, { valueEncoding: 'json' });
    return {
      get: async (key) => (await db.get(key)) ?? undefined,
      put: (key, value) => db.put(key, value),
      list: async ({ prefix, limit }) => {
        const out: Array<[string, unknown]> = [];
        const range = prefix ? { gte: prefix, lt: `${prefix}\uffff` } : {};
        for await (const [k, v] of db.iterator({ ...range, limit })) out.push([k, v]);
        return out;
      },
    };
  };
  const hands = new Map([
    ['gardener', status('gardener', 'running')],
    ['reporter', status('reporter', 'stopped')],
  ]);
  Object.assign(deps, {
    services: (m: string) => services[m],
    actuatorPin: (id: string) => {
      const a = sensors.actuators().find((x) => x.id === id);
      return a === undefined ? undefined : (a.pin ?? null);
    },
    publish: async (topic: string, payload: string, opts: unknown) => void published.push({ topic, payload, opts }),
    deviceRoot: ROOT,
    store: { scope },
    auditQuery: (q) => chain.query(q),
    hands: {
      list: () => [...hands.values()],
      status: (name: string) => {
        const s = hands.get(name);
        if (!s) throw new TalonError('HAND_NOT_FOUND', `no Hand "${name}"`);
        return s;
      },
      start: async (name: string, actor: string) => {
        handOps.push(['start', name, actor]);
        return status(name, 'running');
      },
      stop: async (name: string, actor: string) => {
        handOps.push(['stop', name, actor]);
        return status(name, 'stopped');
      },
      async *ask(name: string, text: string) {
        if (!hands.has(name)) throw new TalonError('HAND_NOT_FOUND', `no Hand "${name}"`);
        yield `${name} heard: `;
        yield text.repeat(text === 'long' ? 2000 : 1);
      },
    },
  } satisfies Partial<KernelToolDeps>);
  for (const t of kernelTools(deps as KernelToolDeps)) reg.register(t);
});

after(async () => {
  await approvals.stop();
  await chain.stop();
  await store.close();
  rmSync(dir, { recursive: true, force: true });
});

async function rejectsWith(p: Promise<unknown>, code: string, match?: RegExp): Promise<TalonError> {
  try {
    await p;
  } catch (err) {
    assert.ok(err instanceof TalonError, `not a TalonError: ${String(err)}`);
    assert.equal(err.code, code, err.message);
    if (match) assert.match(err.message, match);
    return err;
  }
  assert.fail(`expected ${code}, the call succeeded`);
}

test('every kernel tool is listed with schemas, a capability and MCP annotations; the destructive ones are the three that change things', () => {
  const infos = reg.list();
  const names = infos.map((i) => i.name);
  for (const n of [
    'sensors.list',
    'sensors.read',
    'actuators.write',
    'bus.publish',
    'store.get',
    'store.put',
    'store.list',
    'audit.query',
    'hands.list',
    'hands.status',
    'hands.start',
    'hands.stop',
    'hands.chat',
    'llm.embed',
    'time.now',
    'notify',
  ])
    assert.ok(names.includes(n), n);
  for (const i of infos) {
    assert.ok(i.capability.length > 0, i.name);
    assert.ok(i.outputSchema, `${i.name} has an output schema`);
    assert.equal(i.inputSchema.type, 'object', i.name);
    assert.equal(typeof i.annotations.readOnlyHint, 'boolean', i.name);
    assert.equal(i.source, 'builtin');
  }
  const destructive = infos
    .filter((i) => i.annotations.destructiveHint && !i.annotations.readOnlyHint)
    .map((i) => i.name);
  assert.deepEqual(destructive.sort(), ['actuators.write', 'hands.restart', 'hands.start', 'hands.stop']);
});

test('sensors.list and sensors.read keep to the sensors grant; an admin reads any sensor', async () => {
  const h = hand('gardener', caps({ sensors: ['greenhouse.*'] }));
  const list = await reg.call(h, 'sensors.list', {});
  assert.deepEqual(
    (list.output as { sensors: Array<{ id: string }> }).sensors.map((s) => s.id),
    ['greenhouse.temp'],
  );
  const r = await reg.call(h, 'sensors.read', { id: 'greenhouse.temp' });
  assert.deepEqual(r.output, { sensor: 'greenhouse.temp', value: 21.25, ts: 1000 });
  await rejectsWith(reg.call(h, 'sensors.read', { id: 'cpu.temp' }), 'CAPABILITY_DENIED', /cpu\.temp.*greenhouse\.\*/);
  await rejectsWith(reg.call(h, 'sensors.read', {}), 'TOOL_BAD_INPUT', /\/id is required/);
  const a = await reg.call(admin, 'sensors.read', { id: 'cpu.temp' });
  assert.equal((a.output as Reading).value, 51.5);
  await rejectsWith(reg.call(admin, 'sensors.read', { id: 'no.such' }), 'SENSOR_NOT_FOUND');
});

test('actuators.write: refused before anyone is asked when the pin is not granted or the actuator unknown; else a person decides', async () => {
  const before = (await approvals.list({ limit: 1000 })).length;
  const ok = hand('gardener', caps({ gpio: [17] }));
  const r = await reg.call(ok, 'actuators.write', { id: 'pump', value: true });
  assert.deepEqual(r.output, { id: 'pump', value: true });
  assert.equal(r.approval?.by, 'user:ada');
  assert.deepEqual(driver.writes.at(-1), ['pump', true]);
  await rejectsWith(
    reg.call(hand('gardener', caps({ gpio: [] })), 'actuators.write', { id: 'pump', value: false }),
    'CAPABILITY_DENIED',
    /no pins/,
  );
  assert.equal((await approvals.list({ limit: 1000 })).length, before + 1, 'nobody was asked about the refused call');
  await rejectsWith(
    reg.call(hand('gardener', caps({ gpio: [5] })), 'actuators.write', { id: 'pump', value: false }),
    'CAPABILITY_DENIED',
    /actuator pump on pin 17; its gpio grant holds pins 5/,
  );
  await rejectsWith(reg.call(ok, 'actuators.write', { id: 'valve', value: true }), 'ACTUATOR_NOT_FOUND');
  assert.equal((await approvals.list({ limit: 1000 })).length, before + 1, 'nobody was asked about either');
  answer = 'deny';
  try {
    await rejectsWith(
      reg.call(ok, 'actuators.write', { id: 'pump', value: false }),
      'APPROVAL_DENIED',
      /user:ada denied.*: no/,
    );
  } finally {
    answer = 'approve';
  }
  assert.equal(driver.writes.length, 1);
});

test("bus.publish keeps to the bus.publish grant, never the kernel's own topics", async () => {
  const h = hand('gardener', caps({ bus: { publish: [`${ROOT}/out/#`], subscribe: [] } }));
  const r = await reg.call(h, 'bus.publish', { topic: 'out/level', payload: { v: 3 }, retain: true });
  assert.deepEqual(r.output, { topic: `${ROOT}/out/level`, bytes: 7 });
  assert.deepEqual(published.at(-1), {
    topic: `${ROOT}/out/level`,
    payload: '{"v":3}',
    opts: { qos: 0, retain: true },
  });
  await reg.call(h, 'bus.publish', { topic: 'out/raw', payload: 'plain text' });
  assert.equal(published.at(-1)?.payload, 'plain text');
  await rejectsWith(
    reg.call(h, 'bus.publish', { topic: 'cmd/restart', payload: 1 }),
    'CAPABILITY_DENIED',
    /may not publish to cmd\/restart; its bus\.publish grant allows out\/#/,
  );
  await rejectsWith(reg.call(h, 'bus.publish', { topic: 'out/+', payload: 1 }), 'BUS_TOPIC_INVALID');
  await rejectsWith(
    reg.call(admin, 'bus.publish', { topic: 'state', payload: 'online' }),
    'CAPABILITY_DENIED',
    /kernel's own/,
  );
  await rejectsWith(
    reg.call(admin, 'bus.publish', { topic: 'sensors/greenhouse.temp', payload: 99 }),
    'CAPABILITY_DENIED',
  );
  const n = published.length;
  await reg.call(admin, 'bus.publish', { topic: '/elsewhere/x', payload: 'hi' });
  assert.equal(published.length, n + 1);
  assert.equal(published.at(-1)?.topic, 'elsewhere/x');
});

test("store.* work on the caller's own store: Hands apart, the admin apart, none for a non-Hand caller", async () => {
  const a = hand('gardener', caps());
  const b = hand('reporter', caps());
  await reg.call(a, 'store.put', { key: 'plan/1', value: { water: 2 } });
  await reg.call(a, 'store.put', { key: 'plan/2', value: 'dry' });
  await reg.call(a, 'store.put', { key: 'other', value: 1 });
  assert.deepEqual((await reg.call(a, 'store.get', { key: 'plan/1' })).output, {
    key: 'plan/1',
    found: true,
    value: { water: 2 },
  });
  assert.deepEqual((await reg.call(b, 'store.get', { key: 'plan/1' })).output, { key: 'plan/1', found: false });
  const listed = (await reg.call(a, 'store.list', { prefix: 'plan/', limit: 1 })).output;
  assert.deepEqual(listed, { items: [{ key: 'plan/1', value: { water: 2 } }], more: true });
  // it is the same store the Hand's ctx.store reads
  const raw = store.sublevel('hands').sublevel<string, unknown>('gardener', { valueEncoding: 'json' });
  assert.equal(await raw.get('plan/2'), 'dry');
  await reg.call(admin, 'store.put', { key: 'plan/1', value: 'admin' });
  assert.deepEqual((await reg.call(admin, 'store.get', { key: 'plan/1' })).output, {
    key: 'plan/1',
    found: true,
    value: 'admin',
  });
  const adminDb = store.sublevel('hands').sublevel<string, unknown>(ADMIN_STORE_SCOPE, { valueEncoding: 'json' });
  assert.equal(await adminDb.get('plan/1'), 'admin');
  assert.deepEqual((await reg.call(a, 'store.get', { key: 'plan/1' })).output, {
    key: 'plan/1',
    found: true,
    value: { water: 2 },
  });
  const mcp: ToolCaller = { actor: 'mcp:tok1', admin: false, grants: caps(), folder: '/tmp' };
  await rejectsWith(reg.call(mcp, 'store.get', { key: 'x' }), 'CAPABILITY_DENIED', /has no store/);
  await rejectsWith(reg.call(a, 'store.put', { key: 'big', value: 'x'.repeat(300 * 1024) }), 'STORE_LIMIT', /262144/);
  await rejectsWith(reg.call(a, 'store.get', { key: '' }), 'TOOL_BAD_INPUT');
});

test('audit.query: only for admins and Hands that name it in their grant, not through a glob', async () => {
  const globbed = hand('gardener', caps({ allow: ['*'] }));
  await rejectsWith(reg.call(globbed, 'audit.query', {}), 'CAPABILITY_DENIED', /named in its tools grant itself/);
  const named = hand('auditor', caps({ allow: ['audit.query'] }));
  const r = await reg.call(named, 'audit.query', { action: 'tool.call', decision: 'deny', limit: 5 });
  const items = (r.output as { items: Array<{ action: string; decision: string; detail: Record<string, unknown> }> })
    .items;
  assert.ok(items.length > 0);
  for (const e of items) {
    assert.equal(e.action, 'tool.call');
    assert.equal(e.decision, 'deny');
    assert.match(String(e.detail.argsHash), /^[0-9a-f]{64}$/);
    assert.ok(!('args' in e.detail));
  }
  // the refused call just made is itself in the log
  assert.ok(items.some((e) => e.detail.hand === 'gardener' && e.detail.outcome === 'CAPABILITY_DENIED'));
  const adminPage = await reg.call(admin, 'audit.query', { action: 'approval.*', limit: 2 });
  assert.equal((adminPage.output as { items: unknown[] }).items.length, 2);
  await rejectsWith(reg.call(named, 'audit.query', { limit: 5000 }), 'TOOL_BAD_INPUT', /\/limit/);
});

test('hands.list and hands.status read; hands.start and hands.stop wait for a person and never stop the caller itself', async () => {
  const h = hand('gardener', caps());
  const list = (await reg.call(h, 'hands.list', {})).output as { hands: HandStatus[] };
  assert.deepEqual(
    list.hands.map((s) => [s.name, s.state]),
    [
      ['gardener', 'running'],
      ['reporter', 'stopped'],
    ],
  );
  assert.equal(((await reg.call(h, 'hands.status', { name: 'reporter' })).output as HandStatus).state, 'stopped');
  await rejectsWith(reg.call(h, 'hands.status', { name: 'nobody' }), 'HAND_NOT_FOUND');
  await rejectsWith(reg.call(h, 'hands.status', { name: 'Bad Name' }), 'TOOL_BAD_INPUT');
  const started = await reg.call(h, 'hands.start', { name: 'reporter' });
  assert.equal(started.approval?.by, 'user:ada');
  assert.deepEqual(handOps.at(-1), ['start', 'reporter', 'hand:gardener']);
  await rejectsWith(reg.call(h, 'hands.stop', { name: 'gardener' }), 'CAPABILITY_DENIED', /may not stop itself/);
  await reg.call(admin, 'hands.stop', { name: 'reporter' });
  assert.deepEqual(handOps.at(-1), ['stop', 'reporter', 'user:ada']);
});

test("hands.chat: another Hand's chat answer, cut at 4000 characters; never the caller itself", async () => {
  const h = hand('gardener', caps());
  const r = await reg.call(h, 'hands.chat', { name: 'reporter', text: 'how is the pump?' });
  assert.deepEqual(r.output, { answer: 'reporter heard: how is the pump?' });
  const long = (await reg.call(h, 'hands.chat', { name: 'reporter', text: 'long' })).output as {
    answer: string;
    truncated?: boolean;
  };
  assert.equal(long.answer.length, 4000);
  assert.equal(long.truncated, true);
  await rejectsWith(reg.call(h, 'hands.chat', { name: 'gardener', text: 'hi' }), 'BAD_REQUEST', /cannot ask itself/);
  await rejectsWith(reg.call(h, 'hands.chat', { name: 'nobody', text: 'hi' }), 'HAND_NOT_FOUND');
  await rejectsWith(
    reg.call(hand('gardener', caps({ allow: ['hands.list'] })), 'hands.chat', { name: 'reporter', text: 'hi' }),
    'CAPABILITY_DENIED',
  );
});

test('llm.embed needs the llm grant and a provider that embeds', async () => {
  const noLlm = hand('gardener', caps());
  await rejectsWith(reg.call(noLlm, 'llm.embed', { texts: ['a'] }), 'CAPABILITY_DENIED', /no llm grant/);
  const withLlm = hand('gardener', caps({ llm: { tokensPerHour: 1000 } }));
  await rejectsWith(reg.call(withLlm, 'llm.embed', { texts: ['a'] }), 'TOOL_FAILED', /can embed/);
  const seen: unknown[] = [];
  deps.embed = async (texts, model, who) => {
    seen.push({ texts, model, who });
    return texts.map((t) => [t.length, 0.5]);
  };
  try {
    const r = await reg.call(withLlm, 'llm.embed', { texts: ['ab', 'abc'], model: 'nomic' });
    assert.deepEqual(r.output, {
      vectors: [
        [2, 0.5],
        [3, 0.5],
      ],
      dimensions: 2,
    });
    assert.deepEqual(seen[0], {
      texts: ['ab', 'abc'],
      model: 'nomic',
      // the Hand's budget goes with it: the router charges the embedding to the Hand's tokens per hour
      who: { actor: 'hand:gardener', hand: 'gardener', tokensPerHour: 1000 },
    });
    await rejectsWith(reg.call(withLlm, 'llm.embed', { texts: [] }), 'TOOL_BAD_INPUT');
  } finally {
    delete deps.embed;
  }
});

test('time.now gives UTC, local time with its offset, the zone and the weekday', async () => {
  const t0 = Date.now();
  const r = (await reg.call(hand('gardener', caps()), 'time.now', {})).output as {
    iso: string;
    epochMs: number;
    local: string;
    timeZone: string;
    utcOffsetMinutes: number;
    weekday: string;
  };
  assert.ok(r.epochMs >= t0);
  assert.equal(new Date(r.iso).getTime(), r.epochMs);
  assert.equal(new Date(r.local).getTime(), r.epochMs, 'the local time and its offset name the same instant');
  assert.ok(r.timeZone.length > 0);
  assert.match(r.weekday, /day$/);
});

test('notify: refused with a plain reason while no Hand handles it, handed on when one does', async () => {
  const h = hand('gardener', caps());
  await rejectsWith(
    reg.call(h, 'notify', { text: 'the tank is empty' }),
    'TOOL_FAILED',
    /no Hand delivers notifications on this device/,
  );
  deps.notify = async (msg) => {
    notified.push(msg);
    return { delivered: true, channels: ['telegram'] };
  };
  try {
    const r = await reg.call(h, 'notify', { text: 'the tank is empty', priority: 'high' });
    assert.deepEqual(r.output, { delivered: true, channels: ['telegram'] });
    assert.deepEqual(notified[0], {
      text: 'the tank is empty',
      priority: 'high',
      from: 'hand:gardener',
      hand: 'gardener',
    });
  } finally {
    delete deps.notify;
  }
});
