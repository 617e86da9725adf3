import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Grants, effectiveGrants, globMatches, globCovers, pathCovers } from '../../../runtime/core/grants.ts';
import { TalonError } from '../../../runtime/core/errors.ts';
import type { DeclaredCapabilities } from '../../../runtime/core/hand.ts';
import { NO_NETWORK } from '../../../runtime/core/network.ts';

const ROOT = 'talon/dev1';
const manifest: DeclaredCapabilities = {
  bus: { publish: ['alerts/#', '/homeassistant/sensor/+/state'], subscribe: ['sensors/+/value', 'cmd/#'] },
  sensors: ['cpu.*', 'mem.used'],
  gpio: [17, 27],
  llm: { tokensPerHour: 1000 },
  network: ['api.example.com', 'mail.example.com:587'],
  fs: { read: ['/var/lib/talon/in'], write: ['/var/lib/talon/out'] },
  shell: ['uptime'],
};
const invalid = (path: RegExp) => (e: TalonError) => e.code === 'CONFIG_INVALID' && path.test(e.message);

test('the manifest is granted as declared, topics made absolute; a leading / is absolute', () => {
  const g = effectiveGrants(manifest, undefined, ROOT, 'hands.m.capabilities');
  assert.deepEqual(g.bus.publish, ['talon/dev1/alerts/#', 'homeassistant/sensor/+/state']);
  assert.deepEqual(g.bus.subscribe, ['talon/dev1/sensors/+/value', 'talon/dev1/cmd/#']);
  const empty = effectiveGrants(undefined, undefined, ROOT, 'x');
  assert.deepEqual(empty, {
    bus: { publish: [], subscribe: [] },
    sensors: [],
    gpio: [],
    llm: null,
    network: NO_NETWORK,
    fs: { read: [], write: [] },
    shell: [],
    shellLimits: { timeoutMs: 60_000, maxOutputBytes: 1024 * 1024 },
    tools: { allow: [], approve: [] },
    secrets: [],
    approvals: false,
  });
});

test('secrets and approvals: a config narrows the names by globs and may not grant what the manifest does not offer', () => {
  const m: DeclaredCapabilities = { secrets: ['telegram_*', 'smtp_password'], approvals: true };
  const g = effectiveGrants(m, { secrets: ['telegram_token'], approvals: false }, ROOT, 'hands.c.capabilities');
  assert.deepEqual([g.secrets, g.approvals], [['telegram_token'], false]);
  assert.throws(
    () => effectiveGrants(m, { secrets: ['db_password'] }, ROOT, 'hands.c.capabilities'),
    /hands\.c\.capabilities\.secrets\[0\]: "db_password" widens/,
  );
  assert.throws(
    () => effectiveGrants({ secrets: [] }, { approvals: true }, ROOT, 'hands.c.capabilities'),
    /hands\.c\.capabilities\.approvals: true widens/,
  );
  const optional = effectiveGrants({}, { secrets: ['x'] }, ROOT, 'h', { secrets: ['*'] });
  assert.deepEqual(optional.secrets, ['x']);
});

test('tools: a config narrows the allow list by globs and may only add approvals', () => {
  const m: DeclaredCapabilities = { tools: { allow: ['web.*', 'file.read', 'shell.exec'], approve: ['shell.exec'] } };
  const g = effectiveGrants(m, { tools: ['web.read', 'file.read'] }, ROOT, 'hands.r.capabilities');
  assert.deepEqual(g.tools, { allow: ['web.read', 'file.read'], approve: ['shell.exec'] });
  const more = effectiveGrants(m, { tools: { approve: ['web.*'] } }, ROOT, 'hands.r.capabilities');
  assert.deepEqual(more.tools, { allow: ['web.*', 'file.read', 'shell.exec'], approve: ['shell.exec', 'web.*'] });
  assert.throws(
    () => effectiveGrants(m, { tools: ['web.read', 'file.write'] }, ROOT, 'hands.r.capabilities'),
    invalid(/hands\.r\.capabilities\.tools\[1\]: "file\.write" widens/),
  );
  assert.throws(() => effectiveGrants(m, { tools: { allow: ['*'] } }, ROOT, 'w'), invalid(/tools\.allow\[0\]/));
  const grants = new Grants(g, ROOT);
  assert.equal(grants.canCallTool('web.read'), true);
  assert.equal(grants.canCallTool('web.search'), false);
  assert.equal(new Grants(more, ROOT).mustApprove('web.search'), true);
});

test('shell: a list or { commands, timeoutMs, maxOutputBytes }; a config may lower the limits, never raise them', () => {
  const m: DeclaredCapabilities = { shell: { commands: ['grep', 'wc'], timeoutMs: 3_600_000 } };
  const g = effectiveGrants(m, undefined, ROOT, 'x');
  assert.deepEqual(g.shell, ['grep', 'wc']);
  assert.deepEqual(g.shellLimits, { timeoutMs: 3_600_000, maxOutputBytes: 1024 * 1024 });
  const n = effectiveGrants(m, { shell: { commands: ['wc'], timeoutMs: 1000 } }, ROOT, 'x');
  assert.deepEqual([n.shell, n.shellLimits.timeoutMs], [['wc'], 1000]);
  assert.throws(
    () => effectiveGrants(m, { shell: { maxOutputBytes: 2 * 1024 * 1024 } }, ROOT, 'x'),
    invalid(/shell\.maxOutputBytes/),
  );
  assert.throws(
    () => effectiveGrants(m, { shell: { commands: ['rm'] } }, ROOT, 'x'),
    invalid(/shell\.commands\[0\]: "rm"/),
  );
});

test('a config narrows; fields it leaves out keep the manifest value', () => {
  const g = effectiveGrants(
    manifest,
    {
      bus: { publish: ['alerts/cpu'], subscribe: ['sensors/cpu/value'] },
      gpio: [17],
      llm: { tokensPerHour: 10 },
      fs: { read: ['/var/lib/talon/in/a'], write: [] },
    },
    ROOT,
    'w',
  );
  assert.deepEqual(g.bus.publish, ['talon/dev1/alerts/cpu']);
  assert.deepEqual(g.bus.subscribe, ['talon/dev1/sensors/cpu/value']);
  assert.deepEqual(g.gpio, [17]);
  assert.deepEqual(g.llm, { tokensPerHour: 10 });
  assert.deepEqual(g.sensors, ['cpu.*', 'mem.used']);
  assert.deepEqual(g.fs, { read: ['/var/lib/talon/in/a'], write: [] });
  assert.deepEqual(effectiveGrants(manifest, { llm: null }, ROOT, 'w').llm, null);
});

test('a config that widens is CONFIG_INVALID naming the path', () => {
  const w = 'hands.mon.capabilities';
  assert.throws(
    () => effectiveGrants(manifest, { bus: { publish: ['alerts/#', 'state'], subscribe: [] } }, ROOT, w),
    invalid(/hands\.mon\.capabilities\.bus\.publish\[1\]: "state" widens/),
  );
  assert.throws(
    () => effectiveGrants(manifest, { bus: { publish: [], subscribe: ['sensors/#'] } }, ROOT, w),
    invalid(/bus\.subscribe\[0\]/),
  );
  assert.throws(
    () => effectiveGrants(manifest, { bus: { publish: ['/homeassistant/#'], subscribe: [] } }, ROOT, w),
    invalid(/bus\.publish\[0\]/),
  );
  assert.throws(() => effectiveGrants(manifest, { sensors: ['*'] }, ROOT, w), invalid(/sensors\[0\]/));
  assert.throws(() => effectiveGrants(manifest, { sensors: ['mem.*'] }, ROOT, w), invalid(/sensors\[0\]/));
  assert.throws(() => effectiveGrants(manifest, { gpio: [17, 4] }, ROOT, w), invalid(/gpio\[1\]/));
  assert.throws(
    () => effectiveGrants(manifest, { llm: { tokensPerHour: 5000 } }, ROOT, w),
    invalid(/llm\.tokensPerHour/),
  );
  assert.throws(() => effectiveGrants({}, { llm: { tokensPerHour: 1 } }, ROOT, w), invalid(/\.llm: /));
  assert.throws(() => effectiveGrants(manifest, { network: ['evil.example.com'] }, ROOT, w), invalid(/network\[0\]/));
  assert.throws(
    () => effectiveGrants(manifest, { network: ['mail.example.com:25'] }, ROOT, w),
    invalid(/network\[0\]/),
  );
  assert.throws(
    () => effectiveGrants(manifest, { fs: { read: ['/var/lib/talon/in/../secret'], write: [] } }, ROOT, w),
    invalid(/fs\.read\[0\]/),
  );
  assert.throws(
    () => effectiveGrants(manifest, { fs: { read: [], write: ['/var/lib/talon/in'] } }, ROOT, w),
    invalid(/fs\.write\[0\]/),
  );
  assert.throws(() => effectiveGrants(manifest, { shell: ['reboot'] }, ROOT, w), invalid(/shell\[0\]/));
  assert.throws(
    () => effectiveGrants(manifest, { bus: { publish: ['a/#/b'], subscribe: [] } }, ROOT, w),
    invalid(/bus\.publish\[0\]: .*"#"/),
  );
  // narrowing that stays inside is fine
  assert.doesNotThrow(() =>
    effectiveGrants(manifest, { sensors: ['cpu.load', 'cpu.t*'], network: ['api.example.com:443'] }, ROOT, w),
  );
});

test('publish checks match topics against granted filters', () => {
  const g = new Grants(effectiveGrants(manifest, undefined, ROOT, 'x'), ROOT);
  assert.equal(g.canPublish(g.absolute('alerts/cpu/high')), true);
  assert.equal(g.canPublish(g.absolute('alerts')), true, '# matches its parent level');
  assert.equal(g.canPublish(g.absolute('state')), false);
  assert.equal(g.canPublish(g.absolute('/homeassistant/sensor/x/state')), true);
  assert.equal(g.canPublish(g.absolute('/homeassistant/sensor/x/config')), false);
  assert.equal(g.canPublish('talon/dev2/alerts/x'), false, 'another device');
  // cached answers stay right
  assert.equal(g.canPublish(g.absolute('state')), false);
  assert.equal(g.canPublish(g.absolute('alerts/cpu/high')), true);
});

test('subscribe checks use cover rules: a filter is allowed only if a grant covers all it can match', () => {
  const g = new Grants(effectiveGrants(manifest, undefined, ROOT, 'x'), ROOT);
  const can = (f: string) => g.canSubscribe(g.absolute(f));
  assert.equal(can('sensors/+/value'), true);
  assert.equal(can('sensors/cpu/value'), true);
  assert.equal(can('sensors/#'), false);
  assert.equal(can('sensors/+/+'), false);
  assert.equal(can('sensors/cpu/value/x'), false);
  assert.equal(can('cmd/#'), true);
  assert.equal(can('cmd/reply/+'), true);
  assert.equal(can('+/cpu/value'), false);
  assert.equal(can('/#'), false);
});

test('sensors, gpio, network, fs and shell checks', () => {
  const g = new Grants(effectiveGrants(manifest, undefined, ROOT, 'x'), ROOT);
  assert.equal(g.canReadSensor('cpu.load'), true);
  assert.equal(g.canReadSensor('cpu.temp.core0'), true);
  assert.equal(g.canReadSensor('mem.used'), true);
  assert.equal(g.canReadSensor('mem.free'), false);
  assert.equal(g.canUseGpio(17), true);
  assert.equal(g.canUseGpio(18), false);
  assert.equal(g.canReach('api.example.com', 443), true);
  assert.equal(g.canReach('mail.example.com', 587), true);
  assert.equal(g.canReach('mail.example.com', 25), false);
  assert.equal(g.canReach('evil.example.com', 443), false);
  assert.equal(g.canReadFile('/var/lib/talon/in/x.csv'), true);
  assert.equal(g.canReadFile('/var/lib/talon/inbox'), false, 'a sibling with the same prefix is outside');
  assert.equal(g.canWriteFile('/var/lib/talon/out/y'), true);
  assert.equal(g.canWriteFile('/var/lib/talon/in/y'), false);
  assert.equal(g.canRun('uptime'), true);
  assert.equal(g.canRun('rm'), false);
  assert.equal(g.llmTokensPerHour(), 1000);
});

test('glob helpers', () => {
  assert.equal(globMatches('cpu.*', 'cpu.load'), true);
  assert.equal(globMatches('cpu.*', 'cpux'), false);
  assert.equal(globMatches('a+b', 'a+b'), true, 'regex characters are literal');
  assert.equal(globCovers('cpu.*', 'cpu.l*'), true);
  assert.equal(globCovers('cpu.l*', 'cpu.*'), false);
  assert.equal(pathCovers('/a/b', '/a/b'), true);
  assert.equal(pathCovers('/a/b', '/a/bc'), false);
  assert.equal(pathCovers('/', '/etc/passwd'), true);
});

test('optional capabilities are granted only when the config names them, and never beyond the ceiling', () => {
  const manifestCaps = { sensors: ['*'], gpio: [] };
  const optional = { gpio: [17, 18] };
  assert.deepEqual(effectiveGrants(manifestCaps, undefined, ROOT, 'w', optional).gpio, []);
  assert.deepEqual(effectiveGrants(manifestCaps, { sensors: ['cpu.*'] }, ROOT, 'w', optional).gpio, []);
  assert.deepEqual(effectiveGrants(manifestCaps, { gpio: [18] }, ROOT, 'w', optional).gpio, [18]);
  assert.throws(() => effectiveGrants(manifestCaps, { gpio: [4] }, ROOT, 'w', optional), /gpio\[0\].*widens/);
  assert.throws(() => effectiveGrants(manifestCaps, { gpio: [18] }, ROOT, 'w'), /gpio\[0\].*widens/);
});

test('tools.unattended: from the config only, within the allow list; a manifest cannot excuse itself', () => {
  const m: DeclaredCapabilities = {
    tools: { allow: ['hands.*', 'web.read'], approve: [], unattended: ['hands.*'] },
  };
  assert.equal(effectiveGrants(m, undefined, ROOT, 'x').tools.unattended, undefined, "the manifest's word is ignored");
  const g = effectiveGrants(m, { tools: { unattended: ['hands.start'] } }, ROOT, 'hands.s.capabilities');
  assert.deepEqual(g.tools.unattended, ['hands.start']);
  const grants = new Grants(g, ROOT);
  assert.equal(grants.unattended('hands.start'), true);
  assert.equal(grants.unattended('hands.stop'), false);
  assert.throws(
    () =>
      effectiveGrants(m, { tools: { allow: ['web.read'], unattended: ['hands.stop'] } }, ROOT, 'hands.s.capabilities'),
    (e: unknown) =>
      e instanceof TalonError &&
      e.code === 'CONFIG_INVALID' &&
      /hands\.s\.capabilities\.tools\.unattended\[0\]: "hands\.stop" is not in the Hand's tools grant/.test(e.message),
  );
});
