import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync, mkdirSync, rmSync, readdirSync, existsSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig, parseHostPort, MAX_CONFIG_BYTES, setBuiltinHands } from '../../../runtime/config/load.ts';
import { TalonError } from '../../../runtime/core/errors.ts';
import { BUILTIN_HANDS } from '../../../hands/catalog.ts';

let dir: string;
before(() => {
  dir = mkdtempSync(join(tmpdir(), 'talon-config-'));
  // what the composition root (runtime/cli, runtime/host) does at start
  setBuiltinHands(BUILTIN_HANDS);
});
after(() => rmSync(dir, { recursive: true, force: true }));

function write(name: string, text: string): string {
  const file = join(dir, name);
  mkdirSync(join(file, '..'), { recursive: true });
  writeFileSync(file, text);
  return file;
}

function fails(fn: () => unknown, code: string): TalonError {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof TalonError, String(err));
    assert.equal(err.code, code, err.message);
    return err;
  }
  assert.fail(`expected ${code}`);
}

test('loads YAML and JSON the same way', () => {
  const y = write(
    'a/talon.yaml',
    'deviceName: pi-1\nhttp:\n  port: 9001\nhands:\n  - name: mon\n    module: monitoring\n',
  );
  const j = write(
    'a/talon.json',
    JSON.stringify({ deviceName: 'pi-1', http: { port: 9001 }, hands: [{ name: 'mon', module: 'monitoring' }] }),
  );
  const a = loadConfig({ file: y, env: {} });
  const b = loadConfig({ file: j, env: {} });
  assert.deepEqual(a.config, b.config);
  assert.equal(a.config.deviceName, 'pi-1');
  assert.equal(a.config.http.port, 9001);
  assert.equal(a.config.http.host, '127.0.0.1');
  assert.equal(a.config.hands[0]?.enabled, true);
  assert.equal(a.source, y);
});

test('the format is sniffed when the extension says neither', () => {
  const j = write('sniff/config.conf', '{ "deviceName": "json-one" }');
  const y = write('sniff/other.conf', 'deviceName: yaml-one\n');
  assert.equal(loadConfig({ file: j, env: {} }).config.deviceName, 'json-one');
  assert.equal(loadConfig({ file: y, env: {} }).config.deviceName, 'yaml-one');
});

test('an empty file is the defaults', () => {
  const f = write('empty.yaml', '# nothing here\n');
  assert.equal(loadConfig({ file: f, env: {} }).config.http.port, 8080);
});

test('a JSON syntax error is CONFIG_PARSE with line and column', () => {
  const f = write('bad.json', '{\n  "deviceName": "x",\n}\n');
  const err = fails(() => loadConfig({ file: f, env: {} }), 'CONFIG_PARSE');
  assert.match(err.message, /bad\.json at line 3, column 1: not valid JSON/);
  assert.deepEqual(err.details, { file: f, line: 3, col: 1 });
  assert.equal(err.exitCode, 2);
});

test('a YAML syntax error is CONFIG_PARSE with line and column', () => {
  const f = write('bad.yaml', 'deviceName: x\nhttp:\n  port: 1\n\thost: y\n');
  const err = fails(() => loadConfig({ file: f, env: {} }), 'CONFIG_PARSE');
  assert.equal(err.message, `${f} at line 4, column 1: not valid YAML: Tabs are not allowed as indentation`);
  assert.deepEqual(err.details, { file: f, line: 4, col: 1 });
});

test('duplicate YAML keys are a parse error, not a silent last-wins', () => {
  const f = write('dup.yaml', 'deviceName: a\ndeviceName: b\n');
  assert.match(fails(() => loadConfig({ file: f, env: {} }), 'CONFIG_PARSE').message, /line 2.*unique/);
});

test('a missing file is CONFIG_NOT_FOUND; a folder too', () => {
  assert.match(
    fails(() => loadConfig({ file: join(dir, 'nope.yaml'), env: {} }), 'CONFIG_NOT_FOUND').message,
    /nope\.yaml does not exist/,
  );
  assert.match(fails(() => loadConfig({ file: dir, env: {} }), 'CONFIG_NOT_FOUND').message, /is a folder/);
});

test('a file that is not a mapping, or too large, is refused', () => {
  assert.match(
    fails(() => loadConfig({ file: write('list.yaml', '- a\n- b\n'), env: {} }), 'CONFIG_INVALID').message,
    /\(root\): must be a mapping/,
  );
  const big = write('big.yaml', `deviceName: ${'x'.repeat(MAX_CONFIG_BYTES)}\n`);
  assert.match(fails(() => loadConfig({ file: big, env: {} }), 'CONFIG_PARSE').message, /more than/);
});

test('validation errors from a file name the file and every path', () => {
  const f = write(
    'invalid.yaml',
    'http:\n  port: 99999\nhands:\n  - { name: x, module: monitoring, quotas: { heapMB: 64 } }\n',
  );
  const err = fails(() => loadConfig({ file: f, env: {} }), 'CONFIG_INVALID');
  assert.ok(err.message.startsWith(`the config ${f} is invalid (2 problems):`), err.message);
  assert.match(err.message, /\n {2}http\.port: /);
  assert.match(err.message, /\n {2}hands\[0\]\.quotas\.heapMB: unknown key; did you mean "heapMb"\?/);
});

test("relative paths resolve against the config file's folder", () => {
  const f = write(
    'site/etc/talon.yaml',
    [
      'dataDir: ../var/talon',
      'hands:',
      '  - { name: mine, module: ./hands/mine.js, capabilities: { fs: { read: [./shared, /abs], write: [out] } } }',
      '  - { name: mon, module: monitoring }',
      'bus:',
      '  embedded:',
      '    lan: { enabled: true, tls: { cert: tls/cert.pem, key: /etc/key.pem }, users: [{ username: u, passwordHash: "scrypt$16384$8$1$c2FsdA$aGFzaA" }] }',
    ].join('\n'),
  );
  const etc = join(dir, 'site', 'etc');
  write('site/etc/hands/mine.js', 'module.exports = {};\n');
  const { config } = loadConfig({ file: f, env: {}, cwd: '/somewhere/else' });
  assert.equal(config.dataDir, join(dir, 'site', 'var', 'talon'));
  assert.equal(config.hands[0]?.module, join(etc, 'hands', 'mine.js'));
  assert.deepEqual(config.hands[0]?.capabilities?.fs, {
    read: [join(etc, 'shared'), '/abs'],
    write: [join(etc, 'out')],
  });
  assert.equal(config.hands[1]?.module, 'monitoring', 'a built-in id is not a path');
  assert.equal(config.bus.embedded.lan?.tls?.cert, join(etc, 'tls', 'cert.pem'));
  assert.equal(config.bus.embedded.lan?.tls?.key, '/etc/key.pem');
});

test("the default dataDir resolves against the config file's folder, or the working folder without a file", () => {
  const f = write('nodata/talon.yaml', 'deviceName: x\n');
  assert.equal(loadConfig({ file: f, env: {}, cwd: '/elsewhere' }).config.dataDir, join(dir, 'nodata', 'data'));
  const none = loadConfig({ env: {}, cwd: '/srv/app' });
  assert.equal(none.config.dataDir, '/srv/app/data');
  assert.equal(none.source, 'defaults');
});

test('data folder precedence: --data beats TALON_DATA beats the file; both resolve against the working folder', () => {
  const f = write('prec/talon.yaml', 'dataDir: from-file\n');
  const cwd = '/work/here';
  assert.equal(loadConfig({ file: f, env: {}, cwd }).config.dataDir, join(dir, 'prec', 'from-file'));
  const env = loadConfig({ file: f, env: { TALON_DATA: 'from-env' }, cwd });
  assert.equal(env.config.dataDir, '/work/here/from-env');
  assert.equal(env.source, `${f} + TALON_DATA`);
  const flag = loadConfig({ file: f, dataDir: 'from-flag', env: { TALON_DATA: 'from-env' }, cwd });
  assert.equal(flag.config.dataDir, '/work/here/from-flag');
  assert.equal(flag.source, `${f} + TALON_DATA + --data`);
  assert.equal(
    loadConfig({ file: f, env: { TALON_DATA: '  ' }, cwd }).config.dataDir,
    join(dir, 'prec', 'from-file'),
    'an empty variable is unset',
  );
});

test('TALON_HTTP and TALON_MQTT override the listeners', () => {
  const f = write(
    'env/talon.yaml',
    'http: { host: 0.0.0.0, port: 80 }\nbus: { embedded: { listen: { port: 2883 } } }\n',
  );
  const { config } = loadConfig({ file: f, env: { TALON_HTTP: '127.0.0.1:9999', TALON_MQTT: '[::1]:1999' } });
  assert.deepEqual(config.http, { host: '127.0.0.1', port: 9999 });
  assert.deepEqual(config.bus.embedded.listen, { host: '::1', port: 1999 });
  assert.equal(config.bus.embedded.enabled, true);
});

test('TALON_MQTT_URL selects an external broker, over a file that enables the embedded one', () => {
  const f = write('env/embedded.yaml', 'bus: { embedded: { enabled: true } }\n');
  const { config } = loadConfig({ file: f, env: { TALON_MQTT_URL: 'mqtt://broker.lan:1883' } });
  assert.equal(config.bus.url, 'mqtt://broker.lan:1883');
  assert.equal(config.bus.embedded.enabled, false);
});

test('TALON_MQTT brings the embedded broker back over a file that sets bus.url', () => {
  const f = write('env/remote.yaml', 'bus: { url: "mqtt://far:1883" }\n');
  const { config } = loadConfig({ file: f, env: { TALON_MQTT: '127.0.0.1:1884' } });
  assert.equal(config.bus.url, undefined);
  assert.equal(config.bus.embedded.enabled, true);
  assert.equal(config.bus.embedded.listen.port, 1884);
});

test("bad environment overrides are CONFIG_INVALID naming the variable, with the file's own problems", () => {
  const f = write('env/bad.yaml', 'bogus: 1\n');
  const err = fails(
    () => loadConfig({ file: f, env: { TALON_HTTP: 'localhost', TALON_MQTT: '127.0.0.1:99999' } }),
    'CONFIG_INVALID',
  );
  const paths = (err.details as Array<{ path: string }>).map((d) => d.path);
  assert.deepEqual(paths, ['env TALON_HTTP', 'env TALON_MQTT', 'bogus']);
  assert.match(err.message, /env TALON_HTTP: must be host:port/);
  const both = fails(
    () => loadConfig({ env: { TALON_MQTT: '127.0.0.1:1', TALON_MQTT_URL: 'mqtt://x' } }),
    'CONFIG_INVALID',
  );
  assert.match(both.message, /not both/);
  // an env value is still checked by the schema
  const range = fails(() => loadConfig({ env: { TALON_MQTT_URL: 'ftp://x' } }), 'CONFIG_INVALID');
  assert.match(range.message, /bus\.url: must be a broker URL/);
});

test('parseHostPort', () => {
  assert.deepEqual(parseHostPort('0.0.0.0:80'), { host: '0.0.0.0', port: 80 });
  assert.deepEqual(parseHostPort('[::]:8080'), { host: '::', port: 8080 });
  assert.deepEqual(parseHostPort('my-pi.local:1'), { host: 'my-pi.local', port: 1 });
  for (const bad of ['8080', 'host:', ':80', 'a:b', 'a:80:1', '::1:80', 'h:70000'])
    assert.equal(typeof parseHostPort(bad), 'string', bad);
});

test("a Hand module must exist: a file relative to the config file's folder, or a built-in id (issue 14)", () => {
  write('mods/ok.cjs', 'module.exports = {};\n');
  const ok = write(
    'mods/talon.yaml',
    'hands:\n  - { name: ok, module: ./ok.cjs }\n  - { name: mon, module: monitoring }\n',
  );
  assert.equal(
    loadConfig({ file: ok, env: {}, cwd: '/elsewhere' }).config.hands[0]?.module,
    join(dir, 'mods', 'ok.cjs'),
  );

  const bad = write(
    'mods/bad.yaml',
    [
      'hands:',
      '  - { name: echo, module: ./ecoh.cjs }',
      '  - { name: greeter, module: greter }',
      '  - { name: ts, module: ./hand.ts }',
      '  - { name: dir, module: ./ }',
      '  - { name: mon, module: monitorin }',
    ].join('\n'),
  );
  const err = fails(() => loadConfig({ file: bad, env: {}, cwd: '/elsewhere' }), 'CONFIG_INVALID');
  const ps = err.details as Array<{ path: string; message: string }>;
  const at = (p: string) =>
    ps
      .filter((x) => x.path === p)
      .map((x) => x.message)
      .join(' | ');
  assert.match(at('hands[0].module'), /"\.\/ecoh\.cjs": no such file/);
  assert.ok(at('hands[0].module').includes(join(dir, 'mods', 'ecoh.cjs')), at('hands[0].module'));
  assert.match(
    at('hands[1].module'),
    /"greter" is not a built-in Hand \(built-in: monitoring, scheduling, communication, research, leads, web-automation\)/,
  );
  assert.match(
    at('hands[2].module'),
    /is TypeScript; .*npx esbuild \.\/hand\.ts --bundle --platform=node --format=cjs --outfile=\.\/hand\.cjs/,
  );
  assert.match(at('hands[3].module'), /is not a file/);
  assert.match(at('hands[4].module'), /did you mean "monitoring"\?/);
  assert.match(err.message, /hands\[0\]\.module: /);
});

test('BUILTIN_HANDS (hands/catalog.ts) lists the folders under hands/ with an index.ts', () => {
  const root = join(import.meta.dirname, '..', '..', '..', 'hands');
  const ids = readdirSync(root)
    .filter((d) => d !== 'sdk' && existsSync(join(root, d, 'index.ts')))
    .sort();
  assert.deepEqual(BUILTIN_HANDS.map((h) => h.id).sort(), ids);
});

test('the built-in Hands are the registered ones: ids a module may name, default instances (the config layer names none)', () => {
  try {
    setBuiltinHands([{ id: 'alpha', defaultInstance: { name: 'first' } }, { id: 'beta' }]);
    const f = write('builtins/none.yaml', 'deviceName: x\n');
    assert.deepEqual(loadConfig({ file: f, env: {} }).config.hands, [
      { name: 'first', module: 'alpha', enabled: true, settings: {} },
    ]);
    const bad = write(
      'builtins/bad.yaml',
      'hands:\n  - { name: a, module: alpha }\n  - { name: b, module: beta }\n  - { name: c, module: monitoring }\n  - { name: d, module: bet }\n',
    );
    const ps = fails(() => loadConfig({ file: bad, env: {} }), 'CONFIG_INVALID').details as Array<{
      path: string;
      message: string;
    }>;
    assert.deepEqual(
      ps.map((p) => p.path),
      ['hands[2].module', 'hands[3].module'],
    );
    assert.match(ps[0]!.message, /"monitoring" is not a built-in Hand \(built-in: alpha, beta\)/);
    assert.match(ps[1]!.message, /did you mean "beta"\?/);
    assert.deepEqual(
      loadConfig({ file: write('builtins/empty.yaml', 'hands: []\n'), env: {} }).config.hands,
      [],
      'an empty list stays empty',
    );

    setBuiltinHands([]);
    assert.deepEqual(loadConfig({ file: f, env: {} }).config.hands, [], 'none registered: no Hands');
    assert.match(
      fails(() => loadConfig({ file: bad, env: {} }), 'CONFIG_INVALID').message,
      /"alpha" is not a built-in Hand \(built-in: none\)/,
    );
  } finally {
    setBuiltinHands(BUILTIN_HANDS);
  }
});

test('no file of the config layer names a Hand', () => {
  const root = join(import.meta.dirname, '..', '..', '..', 'runtime', 'config');
  for (const file of readdirSync(root).filter((f) => f.endsWith('.ts'))) {
    const text = readFileSync(join(root, file), 'utf8');
    for (const h of BUILTIN_HANDS)
      assert.ok(!new RegExp(`\\b${h.id}\\b`, 'i').test(text), `runtime/config/${file} names the ${h.id} Hand`);
  }
});
