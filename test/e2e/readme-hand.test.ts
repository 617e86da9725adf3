/**
 * The README's worked Hand example (issue 14), run as written: the blocks marked
 * `<!-- test:readme-hand … -->` are taken from README.md, the Hand bundled with the esbuild
 * command the README gives, and added to a running daemon with `talon config apply`; it is
 * pinged over MQTT and its log says what the README says.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import mqtt from 'mqtt';
import { parse, stringify } from 'yaml';
import { ensureBuilt, startDaemon, cli, writeConfig } from '../helpers/daemon.ts';

const ROOT = join(import.meta.dirname, '..', '..');

/** the fenced block after each `<!-- test:readme-hand NAME -->` */
function blocks(): Map<string, string> {
  const md = readFileSync(join(ROOT, 'README.md'), 'utf8');
  const out = new Map<string, string>();
  for (const m of md.matchAll(/<!-- test:readme-hand (\S+) -->\n```\w*\n([\s\S]*?)\n```/g)) out.set(m[1]!, m[2]!);
  return out;
}

async function until<T>(what: string, fn: () => T | undefined | false, ms = 15_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = fn();
    if (v) return v;
    if (Date.now() > end) assert.fail(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

test("the README's Hand example bundles, applies to a running daemon, and runs as described", {
  timeout: 120_000,
}, async () => {
  ensureBuilt();
  const b = blocks();
  for (const k of ['hand.ts', 'bundle', 'talon.yaml', 'run'])
    assert.ok(b.has(k), `README.md has no <!-- test:readme-hand ${k} --> block`);

  const dir = mkdtempSync(join(tmpdir(), 'talon-readme-'));
  let d: Awaited<ReturnType<typeof startDaemon>> | undefined;
  let client: mqtt.MqttClient | undefined;
  try {
    symlinkSync(ROOT, join(dir, 'talon'));
    writeFileSync(join(dir, 'hand.ts'), `${b.get('hand.ts')!}\n`);

    // the bundle command as written, with this repo's esbuild
    const cmd = b.get('bundle')!.trim();
    assert.match(cmd, /^npx esbuild hand\.ts --bundle --platform=node --format=cjs --outfile=hand\.cjs$/);
    const esbuild = spawnSync(join(ROOT, 'node_modules', '.bin', 'esbuild'), cmd.split(/\s+/).slice(2), {
      cwd: dir,
      encoding: 'utf8',
    });
    assert.equal(esbuild.status, 0, esbuild.stderr);
    assert.ok(existsSync(join(dir, 'hand.cjs')));

    // a daemon already running on the data folder the README's config names (./data), without the Hand
    const dataDir = join(dir, 'data');
    mkdirSync(dataDir);
    const base = await writeConfig({ hands: [] }, dataDir);
    const baseCfg = JSON.parse(readFileSync(base.file, 'utf8')) as Record<string, unknown>;
    d = await startDaemon({}, { configFile: base.file });

    // the README's config, on this test's ports (the daemon's own listeners are left as they are)
    const cfg = parse(b.get('talon.yaml')!) as Record<string, unknown>;
    assert.equal(cfg.dataDir, './data');
    cfg.http = baseCfg.http;
    cfg.bus = baseCfg.bus;
    cfg.supervisor = baseCfg.supervisor;
    writeFileSync(join(dir, 'talon.yaml'), stringify(cfg));

    // the run block, command by command
    const run = b
      .get('run')!
      .split('\n')
      .map((l) => l.replace(/#.*$/, '').trim())
      .filter(Boolean);
    assert.deepEqual(
      run,
      [
        'talon config validate talon.yaml',
        'talon config apply talon.yaml',
        'talon hands list',
        'mosquitto_pub -t "talon/$DEVICE_ID/tally/ping" -m hello',
        'talon hands logs tally',
      ],
      'the commands this test runs',
    );
    const talon = (args: string[]) => cli(args);
    const v = spawnSync(process.execPath, [join(ROOT, 'dist', 'talon.cjs'), 'config', 'validate', 'talon.yaml'], {
      cwd: dir,
      encoding: 'utf8',
    });
    assert.equal(v.status, 0, v.stderr);
    assert.match(v.stdout, /^OK: .*\(1 Hand, data in /);
    const a = spawnSync(process.execPath, [join(ROOT, 'dist', 'talon.cjs'), 'config', 'apply', 'talon.yaml'], {
      cwd: dir,
      encoding: 'utf8',
    });
    assert.equal(a.status, 0, a.stdout + a.stderr);
    assert.match(a.stdout, /applied as generation \d+; restarted: tally/);

    await until('tally running', () => /tally\s+running/.test(talon(['hands', 'list', '--data', dataDir]).stdout));

    // mosquitto_pub -t talon/<id>/tally/ping -m hello, as an anonymous local client
    const id = d.deviceId();
    client = await mqtt.connectAsync(`mqtt://127.0.0.1:${d.mqttPort}`);
    await client.publishAsync(`talon/${id}/tally/ping`, 'hello');

    const logs = await until('the ping in the log', () => {
      const out = talon(['hands', 'logs', 'tally', '--data', dataDir]).stdout;
      return /ping 1 from hello/.test(out) && out;
    });
    assert.match(logs, /tally started at 0/);
    assert.match(logs, /greeting.*hello/, 'ctx.log.info carries its data and ctx.settings');
    assert.doesNotMatch(logs, /error/i);
  } finally {
    await client?.endAsync();
    await d?.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});
