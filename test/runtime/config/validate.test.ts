import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import {
  validateConfig,
  checkConfig,
  readablePath,
  didYouMean,
  isModulePath,
  type ConfigProblem,
} from '../../../runtime/config/validate.ts';
import { loadConfig } from '../../../runtime/config/load.ts';
import { TalonError } from '../../../runtime/core/errors.ts';
import type { TalonConfig } from '../../../runtime/config/types.ts';
import { DEMO_DRIVERS } from '../../../drivers/demo.ts';
import { setBuiltinHands } from '../../../runtime/config/builtins.ts';
import { schemaWithDefaults } from '../../../runtime/config/apply.ts';
import { BUILTIN_HANDS } from '../../../hands/catalog.ts';

// what the composition root (runtime/cli, runtime/host) does at start: the config layer names no Hand
setBuiltinHands(BUILTIN_HANDS);

const EXPECTED_DEFAULTS: TalonConfig = {
  deviceName: 'talon',
  dataDir: './data',
  http: { host: '127.0.0.1', port: 8080 },
  bus: { embedded: { enabled: true, listen: { host: '127.0.0.1', port: 1883 } }, maxPayloadBytes: 262144 },
  supervisor: {
    heartbeatMs: 1000,
    hangTimeoutMs: 10000,
    stopTimeoutMs: 5000,
    startTimeoutMs: 15000,
    backoff: { initialMs: 500, maxMs: 30000, factor: 2, jitter: 0.2 },
    crashLoop: { restarts: 5, windowMs: 60000 },
  },
  hands: [
    { name: 'monitoring', module: 'monitoring', enabled: true, settings: {} },
    { name: 'scheduler', module: 'scheduling', enabled: true, settings: {} },
  ],
  log: { level: 'info' },
  audit: { retention: {} },
  drivers: DEMO_DRIVERS,
  network: { hosts: {}, dns: [] },
  homeAssistant: { enabled: true, prefix: 'homeassistant' },
  llm: {
    providers: [],
    chains: {},
    policies: {},
    auditPrompts: false,
    retry: { maxAttempts: 4, baseMs: 250, maxMs: 10000, jitter: 0.2 },
    timeouts: { firstTokenMs: 60000, stallMs: 30000 },
  },
  tools: {
    auditArgs: false,
    approvalTimeoutMs: 300000,
    callsPerSec: 50,
    mcp: {
      servers: [],
      serve: {
        enabled: false,
        expose: ['sensors.list', 'sensors.read', 'actuators.write', 'audit.query', 'hands.list', 'hands.status'],
        capabilities: { sensors: ['*'] },
        approve: [],
      },
    },
  },
};

/** The problems validateConfig reports for `input` (fails when it accepts it). */
function problems(input: unknown): ConfigProblem[] {
  try {
    validateConfig(input);
  } catch (err) {
    assert.ok(err instanceof TalonError, `expected a TalonError, got ${String(err)}`);
    assert.equal(err.code, 'CONFIG_INVALID');
    assert.equal(err.exitCode, 2);
    const details = err.details as ConfigProblem[];
    // the message lists every problem as `<path>: <reason>`
    for (const p of details)
      assert.ok(
        err.message.includes(`${p.path}: ${p.message}`),
        `message lacks "${p.path}: ${p.message}":\n${err.message}`,
      );
    return details;
  }
  assert.fail('the config was accepted');
}

function find(ps: ConfigProblem[], path: string): ConfigProblem {
  const p = ps.find((x) => x.path === path);
  assert.ok(p, `no problem at ${path}; got ${JSON.stringify(ps)}`);
  return p;
}

const hand = (over: Record<string, unknown> = {}) => ({ name: 'mon', module: 'monitoring', ...over });

test('an empty config validates to the laptop defaults', () => {
  assert.deepEqual(validateConfig({}), EXPECTED_DEFAULTS);
});

test("the defaults come out in the schema's key order, hands where the schema has it", () => {
  assert.deepEqual(Object.keys(validateConfig({})), [
    'deviceName',
    'dataDir',
    'http',
    'bus',
    'supervisor',
    'hands',
    'drivers',
    'llm',
    'tools',
    'network',
    'homeAssistant',
    'log',
    'audit',
  ]);
  assert.deepEqual(Object.keys(validateConfig({ log: { level: 'debug' }, deviceName: 'x' })).slice(0, 3), [
    'log',
    'deviceName',
    'dataDir',
  ]);
});

test("the schema served to editors shows the built-in Hands' default instances as the default of hands", () => {
  const hands = (schemaWithDefaults().properties as Record<string, { default?: unknown; maxItems?: number }>).hands!;
  assert.deepEqual(hands.default, [
    { name: 'monitoring', module: 'monitoring' },
    { name: 'scheduler', module: 'scheduling' },
  ]);
  assert.equal(hands.maxItems, 256);
});

test('validateConfig does not change its input', () => {
  const input = { http: { port: 9000 } };
  const out = validateConfig(input);
  assert.deepEqual(input, { http: { port: 9000 } });
  assert.equal(out.http.host, '127.0.0.1');
  assert.equal(out.http.port, 9000);
});

test('a validated config validates again to itself (generations re-validate on apply)', () => {
  const once = validateConfig({
    bus: { url: 'mqtt://broker:1883', username: 'u', password: 'p' },
    hands: [hand({ quotas: { heapMb: 64 } })],
  });
  assert.deepEqual(validateConfig(once), once);
});

test('a Hand gets enabled and settings defaults; partial capabilities and quotas pass through', () => {
  const c = validateConfig({
    hands: [hand({ capabilities: { sensors: ['cpu.*'], llm: null }, quotas: { cpuShare: 0.5 } })],
  });
  assert.deepEqual(c.hands[0], {
    name: 'mon',
    module: 'monitoring',
    enabled: true,
    settings: {},
    capabilities: { sensors: ['cpu.*'], llm: null },
    quotas: { cpuShare: 0.5 },
  });
});

test('unknown keys are refused with their path and a did-you-mean', () => {
  const ps = problems({ dataDri: '/x', supervisor: { heartbeat: 10 }, hands: [hand({ quotas: { heapMB: 64 } })] });
  assert.equal(find(ps, 'dataDri').message, 'unknown key; did you mean "dataDir"?');
  assert.equal(find(ps, 'supervisor.heartbeat').message, 'unknown key; did you mean "heartbeatMs"?');
  assert.equal(find(ps, 'hands[0].quotas.heapMB').message, 'unknown key; did you mean "heapMb"?');
});

test('an unknown key far from every known one lists the known keys instead', () => {
  const ps = problems({ log: { colour: true } });
  assert.equal(find(ps, 'log.colour').message, 'unknown key; expected one of: level');
});

test('wrong types name the path, the expected type and what was given', () => {
  const ps = problems({ http: { port: '8080' }, bus: { embedded: { enabled: 'yes' } }, hands: {} });
  assert.match(find(ps, 'http.port').message, /must be an integer, got string "8080"/);
  assert.match(find(ps, 'bus.embedded.enabled').message, /must be true or false/);
  assert.match(find(ps, 'hands').message, /must be a list/);
});

test('out-of-range ports are refused at their path', () => {
  const ps = problems({ http: { port: 70000 }, bus: { embedded: { listen: { port: -1 } } } });
  assert.match(find(ps, 'http.port').message, /0-65535.*got 70000/);
  assert.match(find(ps, 'bus.embedded.listen.port').message, /0-65535.*got -1/);
});

test('other range and enum checks', () => {
  const ps = problems({
    log: { level: 'verbose' },
    supervisor: { backoff: { jitter: 2 } },
    hands: [hand({ quotas: { heapMb: 1 } })],
  });
  assert.match(find(ps, 'log.level').message, /must be one of "debug", "info", "warn", "error", got string "verbose"/);
  assert.match(find(ps, 'supervisor.backoff.jitter').message, /between 0 and 1, got 2/);
  assert.match(find(ps, 'hands[0].quotas.heapMb').message, /between 8 and 16384, got 1/);
});

test('a Hand needs a name and a module', () => {
  const ps = problems({ hands: [{}] });
  assert.equal(find(ps, 'hands[0].name').message, 'is required');
  assert.equal(find(ps, 'hands[0].module').message, 'is required');
});

test('Hand names must be safe for topics and paths', () => {
  for (const bad of ['Mon', 'a/b', '-x', 'a b', '', 'x'.repeat(64), 'ünï', 'a+', '#']) {
    const ps = problems({ hands: [hand({ name: bad })] });
    assert.match(find(ps, 'hands[0].name').message, /lowercase letters, digits or "-"/, bad);
  }
  for (const good of ['a', '0', 'monitoring', 'web-automation-2', 'x'.repeat(63)]) {
    assert.doesNotThrow(() => validateConfig({ hands: [hand({ name: good })] }), good);
  }
});

test('duplicate Hand names are refused at the second one', () => {
  const ps = problems({ hands: [hand({ name: 'a' }), hand({ name: 'b' }), hand({ name: 'a' })] });
  assert.equal(find(ps, 'hands[2].name').message, '"a" is already used by hands[0]; Hand names must be unique');
  assert.equal(ps.length, 1);
});

test('a module is a built-in id or a path', () => {
  assert.ok(
    isModulePath('./x.js') && isModulePath('/opt/h/index.cjs') && isModulePath('hands/x') && isModulePath('x.mjs'),
  );
  assert.ok(!isModulePath('monitoring'));
  const ps = problems({ hands: [hand({ module: 'Monitoring' })] });
  assert.match(find(ps, 'hands[0].module').message, /neither a built-in Hand id .* nor a path/);
});

test("topic filters in a Hand's bus grant follow MQTT wildcard rules", () => {
  const ps = problems({
    hands: [
      hand({
        capabilities: { bus: { publish: ['alerts/#', 'a/#/b'], subscribe: ['x+/y', '/homeassistant/+/config'] } },
      }),
    ],
  });
  assert.match(find(ps, 'hands[0].capabilities.bus.publish[1]').message, /"#" must be a whole level/);
  assert.match(find(ps, 'hands[0].capabilities.bus.subscribe[0]').message, /"\+" must be a whole level/);
  assert.equal(ps.length, 2);
});

test('bus.url turns the embedded broker off; saying enabled: true next to it is an error', () => {
  const c = validateConfig({ bus: { url: 'mqtts://broker.example:8883' } });
  assert.equal(c.bus.url, 'mqtts://broker.example:8883');
  assert.equal(c.bus.embedded.enabled, false);
  const ps = problems({ bus: { url: 'mqtt://b:1883', embedded: { enabled: true } } });
  assert.match(find(ps, 'bus.embedded.enabled').message, /cannot be true when bus.url is set/);
  assert.match(find(problems({ bus: { url: 'http://b' } }), 'bus.url').message, /broker URL like mqtt:\/\//);
});

test('broker credentials need bus.url', () => {
  const ps = problems({ bus: { username: 'u', password: 'p' } });
  assert.match(find(ps, 'bus.username').message, /only used with an external broker/);
  assert.match(find(ps, 'bus.password').message, /only used with an external broker/);
});

test('the LAN listener: explicit enabled, at least one user, hashed passwords, embedded broker on', () => {
  assert.equal(
    find(problems({ bus: { embedded: { lan: { port: 8883 } } } }), 'bus.embedded.lan.enabled').message,
    'is required',
  );
  assert.match(
    find(problems({ bus: { embedded: { lan: { enabled: true } } } }), 'bus.embedded.lan.users').message,
    /at least one user/,
  );
  const plain = problems({
    bus: { embedded: { lan: { enabled: true, users: [{ username: 'ha', passwordHash: 'hunter2' }] } } },
  });
  assert.match(find(plain, 'bus.embedded.lan.users[0].passwordHash').message, /scrypt hash/);
  const off = problems({
    bus: {
      embedded: {
        enabled: false,
        lan: { enabled: true, users: [{ username: 'ha', passwordHash: 'scrypt$16384$8$1$c2FsdA$aGFzaA' }] },
      },
    },
  });
  assert.match(find(off, 'bus.embedded.lan.enabled').message, /needs the embedded broker/);
  const ok = validateConfig({
    bus: {
      embedded: { lan: { enabled: true, users: [{ username: 'ha', passwordHash: 'scrypt$16384$8$1$c2FsdA$aGFzaA' }] } },
    },
  });
  assert.deepEqual(ok.bus.embedded.lan, {
    enabled: true,
    host: '0.0.0.0',
    port: 8883,
    users: [{ username: 'ha', passwordHash: 'scrypt$16384$8$1$c2FsdA$aGFzaA' }],
  });
});

test('listeners on the same host and port clash; port 0 never does', () => {
  const ps = problems({ http: { port: 1883 } });
  assert.match(find(ps, 'bus.embedded.listen.port').message, /1883 is already used by http/);
  assert.doesNotThrow(() => validateConfig({ http: { port: 0 }, bus: { embedded: { listen: { port: 0 } } } }));
  assert.doesNotThrow(() => validateConfig({ http: { host: '127.0.0.2', port: 1883 } }));
  assert.doesNotThrow(
    () => validateConfig({ http: { port: 1883 }, bus: { url: 'mqtt://b' } }),
    'no embedded listener, no clash',
  );
});

test('timings must be consistent', () => {
  assert.match(
    find(problems({ supervisor: { heartbeatMs: 1000, hangTimeoutMs: 1500 } }), 'supervisor.hangTimeoutMs').message,
    /at least twice/,
  );
  assert.match(
    find(problems({ supervisor: { backoff: { initialMs: 5000, maxMs: 1000 } } }), 'supervisor.backoff.maxMs').message,
    /at least supervisor.backoff.initialMs/,
  );
});

test('every problem is reported at once, schema and semantic together', () => {
  const ps = problems({ bogus: 1, http: { port: 'x' }, hands: [hand({ name: 'a' }), hand({ name: 'a' })] });
  assert.deepEqual(ps.map((p) => p.path).sort(), ['bogus', 'hands[1].name', 'http.port']);
});

test('the root must be a mapping', () => {
  for (const v of [null, 3, 'x', []]) {
    const r = checkConfig(v);
    assert.equal(r.config, undefined);
    assert.equal(r.problems[0]?.path, '(root)');
  }
});

test('$schema is accepted for editors and dropped from the result', () => {
  const c = validateConfig({ $schema: './schema.json' });
  assert.equal('$schema' in c, false);
});

test('readablePath and didYouMean', () => {
  assert.equal(readablePath(''), '(root)');
  assert.equal(readablePath('/hands/0/quotas/heapMb'), 'hands[0].quotas.heapMb');
  assert.equal(readablePath('/hands/1/settings', 'a key'), 'hands[1].settings["a key"]');
  assert.equal(didYouMean('hand', ['hands', 'http']), 'hands');
  assert.equal(didYouMean('LOG', ['log']), 'log');
  assert.equal(didYouMean('zzzzzz', ['hands', 'http']), undefined);
});

test('the example config in runtime/config/example.yaml validates', () => {
  const file = join(import.meta.dirname, '..', '..', '..', 'runtime', 'config', 'example.yaml');
  const { config } = loadConfig({ file, env: {} });
  assert.deepEqual({ ...config, dataDir: './data' }, EXPECTED_DEFAULTS, 'the example spells out the defaults');
  assert.equal(config.dataDir, join(import.meta.dirname, '..', '..', '..', 'runtime', 'config', 'data'));
});

test('tools.mcp.servers: exactly one of command and url, names unique and safe for tool names', () => {
  const p = problems({
    tools: {
      mcp: {
        servers: [
          { name: 'files', command: ['node', 'server.js'] },
          { name: 'both', command: ['x'], url: 'http://127.0.0.1:9/mcp' },
          { name: 'none' },
          { name: 'files', url: 'http://127.0.0.1:9/mcp' },
          { name: 'Bad Name', url: 'ftp://x' },
        ],
      },
    },
  });
  const at = (path: string) => p.filter((x) => x.path === path).map((x) => x.message);
  assert.match(at('tools.mcp.servers[1]').join(), /exactly one of command .* or url/);
  assert.match(at('tools.mcp.servers[2]').join(), /exactly one of command .* or url/);
  assert.match(at('tools.mcp.servers[3].name').join(), /already used by tools\.mcp\.servers\[0\]/);
  assert.ok(at('tools.mcp.servers[4].name').length > 0, 'a name that cannot be part of mcp.<name>.<tool>');
  assert.ok(at('tools.mcp.servers[4].url').length > 0, 'only http(s) URLs');
  assert.equal(at('tools.mcp.servers[0]').length, 0);
});
