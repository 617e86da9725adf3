/**
 * The CLI as shipped: runtime/cli/main.ts bundled by esbuild with the build's options,
 * spawned as `node talon.cjs ...`.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { buildCli } from './build-cli.ts';
import { runCli } from './run-cli.ts';
import { freePort } from '../../helpers/ports.ts';

let bin: string;
let cwd: string;
before(async () => {
  bin = await buildCli();
  cwd = mkdtempSync(join(tmpdir(), 'talon-cli-cwd-'));
});
after(() => {
  rmSync(dirname(bin), { recursive: true, force: true });
  rmSync(cwd, { recursive: true, force: true });
});

const talon = (args: string[], env: Record<string, string> = {}) => runCli(bin, args, { cwd, env });

const HELP_LINES: Array<[string[], string]> = [
  [['--help'], 'usage: talon <command>'],
  [['-h'], 'usage: talon <command>'],
  [['help'], 'usage: talon <command>'],
  [['run', '--help'], 'usage: talon run [--config FILE] [--data DIR]'],
  [['version', '-h'], 'usage: talon version [--json]'],
  [['config', '--help'], 'usage: talon config <command>'],
  [['config', 'validate', '--help'], 'usage: talon config validate FILE [--json]'],
  [['config', 'apply', '--help'], 'usage: talon config apply FILE [--data DIR] [--json]'],
  [['hands', '--help'], 'usage: talon hands <command>'],
  [['help', 'hands'], 'usage: talon hands <command>'],
  [['hands', 'list', '--help'], 'usage: talon hands list [--data DIR] [--config FILE] [--json]'],
  [['hands', 'status', '--help'], 'usage: talon hands status NAME'],
  [['hands', 'start', '--help'], 'usage: talon hands start NAME'],
  [['hands', 'stop', '-h'], 'usage: talon hands stop NAME'],
  [['hands', 'restart', '--help'], 'usage: talon hands restart NAME'],
  [
    ['hands', 'logs', '--help'],
    'usage: talon hands logs NAME [--data DIR] [--config FILE] [--json] [--follow] [--lines N]',
  ],
  // --help wins over a missing argument or an unknown flag on the same line
  [['hands', 'logs', '--bogus', '--help'], 'usage: talon hands logs NAME'],
];

for (const [args, first] of HELP_LINES) {
  test(`talon ${args.join(' ')} prints usage and exits 0`, async () => {
    const r = await talon(args);
    assert.equal(r.code, 0, r.stderr);
    assert.ok(r.stdout.startsWith(first), r.stdout);
    assert.match(r.stdout, /-h, --help/);
    assert.equal(r.stderr, '');
  });
}

const USAGE_ERRORS: Array<[string[], RegExp]> = [
  [[], /^usage: talon <command>/],
  [['bogus'], /^talon: unknown command "bogus"\n/],
  [['--bogus'], /^talon: unknown option --bogus\n/],
  [['help', 'bogus'], /^talon: unknown command "bogus"\n/],
  [['run', '--bogus'], /^talon: unknown option --bogus\nusage: talon run /],
  [['run', '--config'], /^talon: option --config needs a value\n/],
  [['version', 'extra'], /^talon: unexpected argument "extra"\nusage: talon version/],
  [['hands'], /^talon: talon hands needs a command\nusage: talon hands <command>/],
  [['hands', 'explode'], /^talon: unknown command "talon hands explode"; expected one of: list, status/],
  [['hands', 'status'], /^talon: missing NAME\nusage: talon hands status NAME/],
  [['hands', 'status', 'Not/A/Name'], /is not a Hand name/],
  [['hands', 'logs', 'mon', '--lines', 'lots'], /--lines must be a whole number from 1 to 1000/],
  [['hands', 'list', '--follow'], /^talon: unknown option --follow\n/],
  [['config'], /needs a command/],
  [['config', 'validate'], /^talon: missing FILE\n/],
];

for (const [args, err] of USAGE_ERRORS) {
  test(`talon ${args.join(' ') || '(nothing)'} is a usage error: exit 2, message and usage on stderr`, async () => {
    const r = await talon(args);
    assert.equal(r.code, 2, `stdout: ${r.stdout}\nstderr: ${r.stderr}`);
    assert.match(r.stderr, err);
    assert.match(r.stderr, /usage: talon/);
    assert.equal(r.stdout, '');
  });
}

test('talon version prints the version, commit and Node; --json too', async () => {
  const pkg = JSON.parse(
    spawnSync(process.execPath, ['-p', 'JSON.stringify(require("./package.json"))'], {
      cwd: join(import.meta.dirname, '..', '..', '..'),
      encoding: 'utf8',
    }).stdout,
  ) as { version: string };
  const r = await talon(['version']);
  assert.equal(r.code, 0);
  assert.match(
    r.stdout,
    new RegExp(
      `^talon ${pkg.version.replace(/\./g, '\\.')}( \\(\\w+\\))?\\nnode ${process.version} ${process.platform}-${process.arch}\\n$`,
    ),
  );
  const j = await talon(['version', '--json']);
  const v = JSON.parse(j.stdout) as Record<string, unknown>;
  assert.equal(v.talon, pkg.version);
  assert.equal(v.node, process.version);
  assert.equal((await talon(['--version'])).stdout, r.stdout);
});

test('config validate: a good file → OK, exit 0', async () => {
  const f = join(cwd, 'good.yaml');
  writeFileSync(f, 'deviceName: pi\nhands:\n  - { name: mon, module: monitoring }\n');
  const r = await talon(['config', 'validate', f]);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout, `OK: ${f} (1 Hand, data in ${join(cwd, 'data')})\n`);
  const j = await talon(['config', 'validate', 'good.yaml', '--json']);
  const out = JSON.parse(j.stdout) as { ok: boolean; config: { deviceName: string } };
  assert.equal(out.ok, true);
  assert.equal(out.config.deviceName, 'pi');
});

test('config validate: a file without hands runs the Monitoring Hand, as before (the CLI gives the config layer the catalog)', async () => {
  const f = join(cwd, 'no-hands.yaml');
  writeFileSync(f, 'deviceName: pi\n');
  const j = await talon(['config', 'validate', f, '--json']);
  assert.equal(j.code, 0, j.stderr);
  const out = JSON.parse(j.stdout) as { config: { hands: unknown[] } };
  assert.deepEqual(out.config.hands, [
    { name: 'monitoring', module: 'monitoring', enabled: true, settings: {} },
    { name: 'scheduler', module: 'scheduling', enabled: true, settings: {} },
  ]);
});

test('config validate: the shipped example is valid', async () => {
  const r = await talon([
    'config',
    'validate',
    join(import.meta.dirname, '..', '..', '..', 'runtime', 'config', 'example.yaml'),
  ]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /^OK: /);
});

test('config validate: a bad file → exit 2 with every problem and its path on stderr', async () => {
  const f = join(cwd, 'bad.yaml');
  writeFileSync(
    f,
    'http:\n  port: 70000\nhands:\n  - { name: mon, module: monitoring, quotas: { heapMB: 64 } }\n  - { name: mon, module: monitoring }\n',
  );
  const r = await talon(['config', 'validate', f]);
  assert.equal(r.code, 2);
  assert.equal(r.stdout, '');
  assert.match(r.stderr, new RegExp(`^talon: the config ${f} is invalid \\(3 problems\\): \\(CONFIG_INVALID\\)\\n`));
  assert.match(r.stderr, /\n {2}http\.port: must be a port number 0-65535 \(0 = any free port\), got 70000\n/);
  assert.match(r.stderr, /\n {2}hands\[0\]\.quotas\.heapMB: unknown key; did you mean "heapMb"\?\n/);
  assert.match(r.stderr, /\n {2}hands\[1\]\.name: "mon" is already used by hands\[0\]/);
  assert.doesNotMatch(r.stderr, /\n\s+at /, 'no stack trace without TALON_DEBUG');
  const j = await talon(['config', 'validate', f, '--json']);
  assert.equal(j.code, 2);
  const out = JSON.parse(j.stdout) as { ok: boolean; error: { code: string; details: Array<{ path: string }> } };
  assert.equal(out.ok, false);
  assert.deepEqual(
    out.error.details.map((d) => d.path),
    ['http.port', 'hands[0].quotas.heapMB', 'hands[1].name'],
  );
});

test('config validate: Hand modules are checked: a missing file, an unknown built-in, a .ts file (issue 14)', async () => {
  const folder = join(cwd, 'mods');
  mkdirSync(folder, { recursive: true });
  writeFileSync(join(folder, 'echo.cjs'), 'module.exports = {};\n');
  const f = join(folder, 'talon.yaml');
  writeFileSync(
    f,
    'hands:\n  - { name: echo, module: ./ecoh.cjs }\n  - { name: greeter, module: greter }\n  - { name: mine, module: ./hand.ts }\n  - { name: ok, module: ./echo.cjs }\n',
  );
  const r = await talon(['config', 'validate', f]);
  assert.equal(r.code, 2, r.stdout);
  assert.match(r.stderr, /\(3 problems\)/);
  assert.match(
    r.stderr,
    new RegExp(
      `\\n {2}hands\\[0\\]\\.module: "\\./ecoh\\.cjs": no such file \\(${join(folder, 'ecoh.cjs').replace(/[.]/g, '\\.')};`,
    ),
  );
  assert.match(
    r.stderr,
    /\n {2}hands\[1\]\.module: "greter" is not a built-in Hand \(built-in: monitoring, scheduling, communication, research, leads, web-automation\)/,
  );
  assert.match(
    r.stderr,
    /\n {2}hands\[2\]\.module: "\.\/hand\.ts" is TypeScript; a Hand must be a bundled CommonJS file: run `npx esbuild \.\/hand\.ts --bundle --platform=node --format=cjs --outfile=\.\/hand\.cjs`/,
  );
});

test('config validate: a syntax error → exit 2 with line and column; a missing file → exit 2', async () => {
  const f = join(cwd, 'syntax.json');
  writeFileSync(f, '{\n  "http": { "port": 1, }\n}\n');
  const r = await talon(['config', 'validate', f]);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /syntax\.json at line 2, column 24: not valid JSON.*\(CONFIG_PARSE\)/);
  const m = await talon(['config', 'validate', 'nope.yaml']);
  assert.equal(m.code, 2);
  assert.equal(m.stderr, `talon: the config file ${join(cwd, 'nope.yaml')} does not exist (CONFIG_NOT_FOUND)\n`);
});

test('config validate ignores TALON_* overrides: the file is checked as written', async () => {
  const f = join(cwd, 'plain.yaml');
  writeFileSync(f, 'deviceName: x\n');
  const r = await talon(['config', 'validate', f], { TALON_HTTP: 'not-an-address' });
  assert.equal(r.code, 0, r.stderr);
});

test('TALON_DEBUG=1 adds the stack trace', async () => {
  const r = await talon(['config', 'validate', 'nope.yaml'], { TALON_DEBUG: '1' });
  assert.equal(r.code, 2);
  assert.match(r.stderr, /TalonError: the config file .* does not exist\n\s+at /);
});

test('hands list with no daemon: exit 1, "not running" naming the data folder', async () => {
  const r = await talon(['hands', 'list']);
  assert.equal(r.code, 1);
  assert.equal(
    r.stderr,
    `talon: Talon is not running on data folder ${join(cwd, 'data')} (start it with \`talon run\`) (NOT_RUNNING)\n`,
  );
  const d = join(cwd, 'elsewhere');
  const viaEnv = await talon(['hands', 'status', 'mon'], { TALON_DATA: d });
  assert.equal(viaEnv.code, 1);
  assert.match(viaEnv.stderr, new RegExp(`not running on data folder ${d} `));
  const viaFlag = await talon(['hands', 'logs', 'mon', '--data', 'flagdir'], { TALON_DATA: d });
  assert.match(viaFlag.stderr, new RegExp(`not running on data folder ${join(cwd, 'flagdir')} `));
});

test('hands with a stale runtime.json (refused connection, or a dead pid): exit 1, not running', async () => {
  const data = join(cwd, 'stale');
  mkdirSync(data, { recursive: true });
  writeFileSync(join(data, 'cli-token'), 'token\n');
  const port = await freePort();
  writeFileSync(
    join(data, 'runtime.json'),
    JSON.stringify({
      pid: process.pid,
      http: { host: '127.0.0.1', port },
      startedAt: new Date().toISOString(),
      version: '0',
    }),
  );
  const r = await talon(['hands', 'list', '--data', data]);
  assert.equal(r.code, 1);
  assert.match(
    r.stderr,
    new RegExp(
      `^talon: Talon is not running on data folder ${data} \\(start it with \`talon run\`\\); nothing answers at http://127\\.0\\.0\\.1:${port}`,
    ),
  );
  const dead = spawnSync(process.execPath, ['-e', '0']).pid;
  writeFileSync(
    join(data, 'runtime.json'),
    JSON.stringify({ pid: dead, http: { host: '127.0.0.1', port }, startedAt: 0, version: '0' }),
  );
  const d = await talon(['hands', 'list', '--data', data]);
  assert.equal(d.code, 1);
  assert.match(
    d.stderr,
    new RegExp(`not running on data folder ${data} .*process ${dead} from runtime\\.json has exited`),
  );
});

test('hands --config finds the data folder through the config file', async () => {
  const f = join(cwd, 'cfgdir', 'talon.yaml');
  mkdirSync(dirname(f), { recursive: true });
  writeFileSync(f, 'dataDir: ./state\n');
  const r = await talon(['hands', 'list', '--config', f]);
  assert.equal(r.code, 1);
  assert.match(r.stderr, new RegExp(`not running on data folder ${join(cwd, 'cfgdir', 'state')} `));
});
