/**
 * The daemon end to end, as a user runs it: `talon run` with a config, /healthz, the CLI,
 * MQTT command topics, retained state, graceful shutdown, and the operator errors that must
 * exit 2 (or 1) with a clear message and lose nothing.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, existsSync, statSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import mqtt from 'mqtt';
import { ensureBuilt, startDaemon, spawnTalon, writeConfig, cli, TALON } from '../helpers/daemon.ts';
import { fixture } from '../helpers/fixtures.ts';
import { freePort } from '../helpers/ports.ts';
import { Store } from '../../runtime/store/store.ts';
import { ConfigGenerations } from '../../runtime/config/generations.ts';

let idle: string;
let counter: string;

before(async () => {
  ensureBuilt();
  idle = await fixture('idle');
  counter = await fixture('counter');
});

test('run: healthz, CLI hands commands, status retained, SIGTERM publishes offline and exits 0', async () => {
  const d = await startDaemon({
    hands: [
      { name: 'idle', module: idle },
      { name: 'counter', module: counter },
    ],
  });
  let client: mqtt.MqttClient | null = null;
  try {
    const health = (await (await fetch(`http://127.0.0.1:${d.httpPort}/healthz`)).json()) as {
      status: string;
      checks: Record<string, boolean>;
    };
    assert.equal(health.status, 'ok');
    // the "up" line gives the admin page, not /healthz (issue 14)
    const upBy = Date.now() + 5000;
    while (!/ up: /.test(d.output()) && Date.now() < upBy) await new Promise((res) => setTimeout(res, 20));
    assert.match(d.output(), new RegExp(` up: admin page http://127\\.0\\.0\\.1:${d.httpPort}/[ ,]`), d.output());
    assert.deepEqual(health.checks, { store: true, bus: true, supervisor: true, audit: true });
    assert.equal(statSync(join(d.dataDir, 'cli-token')).mode & 0o777, 0o600);
    assert.equal(statSync(join(d.dataDir, 'device-key.json')).mode & 0o777, 0o600);

    // the API needs the token
    assert.equal((await fetch(`http://127.0.0.1:${d.httpPort}/api/v1/hands`)).status, 401);

    // hands reach running; the CLI lists them
    const deadline = Date.now() + 15_000;
    for (;;) {
      const r = cli(['hands', 'list', '--json', '--data', d.dataDir]);
      assert.equal(r.status, 0, r.stderr);
      const { hands } = JSON.parse(r.stdout) as { hands: Array<{ name: string; state: string }> };
      if (hands.length === 2 && hands.every((h) => h.state === 'running')) break;
      assert.ok(Date.now() < deadline, `hands not running: ${r.stdout}`);
      await new Promise((res) => setTimeout(res, 100));
    }
    const table = cli(['hands', 'list', '--data', d.dataDir]);
    assert.match(table.stdout, /idle\s+running/);

    const stop = cli(['hands', 'stop', 'idle', '--data', d.dataDir]);
    assert.equal(stop.status, 0, stop.stderr);
    assert.match(cli(['hands', 'status', 'idle', '--data', d.dataDir]).stdout, /stopped/);
    assert.equal(cli(['hands', 'start', 'idle', '--data', d.dataDir]).status, 0);
    const restart = cli(['hands', 'restart', 'counter', '--data', d.dataDir]);
    assert.equal(restart.status, 0, restart.stderr);

    const logs = cli(['hands', 'logs', 'counter', '--lines', '20', '--json', '--data', d.dataDir]);
    assert.equal(logs.status, 0, logs.stderr);
    const logLines = logs.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { hand: string; msg: string });
    assert.ok(
      logLines.every((l) => l.hand === 'counter'),
      logs.stdout,
    );
    // the restart above shows in the Hand's log: stopped, then running again
    const msgs = logLines.map((l) => l.msg);
    assert.ok(msgs.lastIndexOf('running') > msgs.lastIndexOf('stopped') && msgs.includes('stopped'), logs.stdout);

    const unknown = cli(['hands', 'status', 'nope', '--data', d.dataDir]);
    assert.equal(unknown.status, 2);
    assert.match(unknown.stderr, /nope/);

    // an outside client sees the retained device state and Hand status
    const deviceId = d.deviceId();
    client = await mqtt.connectAsync(`mqtt://127.0.0.1:${d.mqttPort}`, { reconnectPeriod: 0 });
    const seen = new Map<string, string>();
    client.on('message', (topic, payload) => seen.set(topic, payload.toString()));
    await client.subscribeAsync([`talon/${deviceId}/state`, `talon/${deviceId}/hands/+/status`]);
    const t0 = Date.now();
    while (!(seen.get(`talon/${deviceId}/state`) === 'online' && seen.has(`talon/${deviceId}/hands/idle/status`))) {
      assert.ok(Date.now() - t0 < 5000, `retained topics not seen: ${[...seen.keys()].join(', ')}`);
      await new Promise((res) => setTimeout(res, 20));
    }
    assert.equal((JSON.parse(seen.get(`talon/${deviceId}/hands/idle/status`)!) as { state: string }).state, 'running');

    // graceful stop: exit 0, offline published while the broker was still up
    const code = await d.stop('SIGTERM');
    assert.equal(code, 0, d.output());
    assert.equal(seen.get(`talon/${deviceId}/state`), 'offline');
    assert.ok(!existsSync(join(d.dataDir, 'runtime.json')), 'runtime.json removed on stop');
    assert.ok(!existsSync(join(d.dataDir, 'talon.pid')), 'talon.pid removed on a clean stop (issue 14)');
  } finally {
    client?.end(true);
    await d.stop('SIGKILL');
  }
});

test('the device id is stable across restarts and config generations are recorded', async () => {
  const d1 = await startDaemon({ hands: [] });
  const id = d1.deviceId();
  assert.match(id, /^t[a-z2-7]{16}$/);
  assert.equal(await d1.stop(), 0);
  // the same config again: same device, no new generation; a changed config: a new one
  const d2 = await startDaemon({}, { configFile: d1.configFile });
  try {
    assert.equal(d2.deviceId(), id);
  } finally {
    assert.equal(await d2.stop(), 0);
  }
  const d3 = await startDaemon({ hands: [], log: { level: 'warn' } }, { dataDir: d1.dataDir });
  assert.equal(await d3.stop(), 0);
  const store = await Store.open(d1.dataDir);
  try {
    const gens = await new ConfigGenerations(store).list();
    assert.equal(gens.length, 2, JSON.stringify(gens));
    assert.equal((await new ConfigGenerations(store).current())?.config.log.level, 'warn');
  } finally {
    await store.close();
  }
});

test('MQTT command topics: admin clients get answers, anonymous ones are refused', async () => {
  const d = await startDaemon({ hands: [{ name: 'idle', module: idle }] });
  const id = d.deviceId();
  const admin = await mqtt.connectAsync(`mqtt://127.0.0.1:${d.mqttPort}`, {
    username: 'token',
    password: d.token(),
    reconnectPeriod: 0,
    clientId: 'cli-admin',
  });
  const anon = await mqtt.connectAsync(`mqtt://127.0.0.1:${d.mqttPort}`, { reconnectPeriod: 0 });
  try {
    const replies = new Map<string, unknown>();
    admin.on('message', (topic, payload) => replies.set(topic, JSON.parse(payload.toString())));
    // replies go to the asker's own topic, named by its client id
    await admin.subscribeAsync(`talon/${id}/cmd/reply/cli-admin/+`);
    await anon
      .publishAsync(`talon/${id}/cmd/hands/stop`, JSON.stringify({ id: 'anon-1', name: 'idle' }))
      .catch(() => {});
    await admin.publishAsync(`talon/${id}/cmd/hands/list`, JSON.stringify({ id: 'req-1' }));
    await admin.publishAsync(`talon/${id}/cmd/hands/status`, JSON.stringify({ id: 'req-2', name: 'missing' }));
    const t0 = Date.now();
    while (
      !(replies.has(`talon/${id}/cmd/reply/cli-admin/req-1`) && replies.has(`talon/${id}/cmd/reply/cli-admin/req-2`))
    ) {
      assert.ok(Date.now() - t0 < 5000, 'no reply to admin commands');
      await new Promise((r) => setTimeout(r, 20));
    }
    const list = replies.get(`talon/${id}/cmd/reply/cli-admin/req-1`) as {
      ok: boolean;
      result: Array<{ name: string }>;
    };
    assert.equal(list.ok, true);
    assert.deepEqual(
      list.result.map((h) => h.name),
      ['idle'],
    );
    const missing = replies.get(`talon/${id}/cmd/reply/cli-admin/req-2`) as { ok: boolean; error: { code: string } };
    assert.equal(missing.ok, false);
    assert.equal(missing.error.code, 'HAND_NOT_FOUND');
    // the anonymous stop was refused by the broker: the Hand is still running and no reply came
    assert.ok(![...replies.keys()].some((t) => t.endsWith('/anon-1')));
    const status = (await (
      await fetch(`http://127.0.0.1:${d.httpPort}/api/v1/hands/idle`, {
        headers: { authorization: `Bearer ${d.token()}` },
      })
    ).json()) as { state: string };
    assert.notEqual(status.state, 'stopped');
  } finally {
    admin.end(true);
    anon.end(true);
    assert.equal(await d.stop(), 0);
  }
});

test('a second Talon on the same data folder exits 2 naming the holder, and the first keeps running', async () => {
  const d = await startDaemon({ hands: [] });
  try {
    const { file } = await writeConfig({ hands: [] }, d.dataDir);
    const second = spawnTalon(['run', '--config', file]);
    assert.equal(await second.exited, 2);
    assert.match(second.output(), /in use by another running Talon \(pid \d+\)/);
    assert.equal((await fetch(`http://127.0.0.1:${d.httpPort}/healthz`)).status, 200);
  } finally {
    assert.equal(await d.stop(), 0);
  }
});

test('an HTTP or MQTT port in use exits 2 with the port named, leaving the data folder unlocked', async () => {
  const blocker: Server = createServer();
  const port = await freePort();
  await new Promise<void>((r) => blocker.listen(port, '127.0.0.1', r));
  try {
    const { file, dataDir } = await writeConfig({ http: { host: '127.0.0.1', port } });
    const r = spawnTalon(['run', '--config', file]);
    assert.equal(await r.exited, 2, r.output());
    assert.match(r.output(), new RegExp(`127\\.0\\.0\\.1:${port} is in use`));
    const mq = await writeConfig(
      { bus: { embedded: { enabled: true, listen: { host: '127.0.0.1', port } } } },
      dataDir,
    );
    const r2 = spawnTalon(['run', '--config', mq.file]);
    assert.equal(await r2.exited, 2, r2.output());
    assert.match(r2.output(), new RegExp(`127\\.0\\.0\\.1:${port}.*in use`));
    // the store was released: a daemon starts on the same folder
    const d = await startDaemon({ hands: [] }, { dataDir });
    assert.equal(await d.stop(), 0);
  } finally {
    blocker.close();
  }
});

test('a bad config exits 2 and names the field path', async () => {
  const { file } = await writeConfig({ hands: [{ name: 'x', module: idle, quotas: { heapMb: 'lots' } }], bogus: 1 });
  const r = spawnTalon(['run', '--config', file]);
  assert.equal(await r.exited, 2);
  assert.match(r.output(), /hands\[0\]\.quotas\.heapMb/);
  assert.match(r.output(), /bogus/);
});

test('a read-only or full data folder gets a specific error', {
  skip: process.getuid?.() !== 0 ? 'needs root for a private mount namespace' : false,
}, async () => {
  const base = mkdtempSync(join(tmpdir(), 'talon-ro-'));
  const run = (mountOpts: string): { status: number | null; out: string } => {
    const script = `mount -t tmpfs -o ${mountOpts} tmpfs ${base} && exec ${process.execPath} ${TALON} run --data ${base}/data`;
    const env = { ...process.env, TALON_HTTP: '127.0.0.1:0', TALON_MQTT: '127.0.0.1:0' };
    const r = spawnSync('unshare', ['-m', '--propagation', 'private', 'sh', '-c', script], {
      encoding: 'utf8',
      env,
      timeout: 20_000,
    });
    return { status: r.status, out: r.stdout + r.stderr };
  };
  // a read-only mount: the data folder cannot be created
  const ro = run('ro,size=4m');
  assert.equal(ro.status, 2, ro.out);
  assert.match(ro.out, /not writable/);
  // a tiny filesystem: not enough room for the store
  const full = run('size=64k');
  assert.equal(full.status, 1, full.out);
  assert.match(full.out, /full|free/);
});

test('talon version names the Talon and Node versions', () => {
  const r = cli(['version', '--json']);
  assert.equal(r.status, 0, r.stderr);
  const v = JSON.parse(r.stdout) as { talon: string; node: string; commit: string };
  assert.equal(v.node, process.version);
  assert.equal(
    v.talon,
    (JSON.parse(readFileSync(join(import.meta.dirname, '../../package.json'), 'utf8')) as { version: string }).version,
  );
});

after(() => {});

test('on an external mosquitto: Hands run, state is retained, and SIGKILL leaves the last will `offline`', async () => {
  const { startMosquitto } = await import('../helpers/mosquitto.ts');
  const mosq = await startMosquitto();
  let outside: mqtt.MqttClient | null = null;
  const d = await startDaemon({
    bus: { url: mosq.url },
    hands: [{ name: 'counter', module: counter }],
  });
  try {
    const id = d.deviceId();
    outside = await mqtt.connectAsync(mosq.url, { reconnectPeriod: 0 });
    const seen = new Map<string, string>();
    outside.on('message', (topic, payload) => seen.set(topic, payload.toString()));
    await outside.subscribeAsync([`talon/${id}/state`, `talon/${id}/hands/+/status`]);
    const t0 = Date.now();
    while (
      !(
        seen.get(`talon/${id}/state`) === 'online' &&
        (JSON.parse(seen.get(`talon/${id}/hands/counter/status`) ?? '{}') as { state?: string }).state === 'running'
      )
    ) {
      assert.ok(Date.now() - t0 < 10_000, `not seen on mosquitto: ${JSON.stringify([...seen])}`);
      await new Promise((r) => setTimeout(r, 20));
    }
    await d.stop('SIGKILL');
    const t1 = Date.now();
    while (seen.get(`talon/${id}/state`) !== 'offline') {
      assert.ok(Date.now() - t1 < 10_000, 'last will not delivered');
      await new Promise((r) => setTimeout(r, 20));
    }
  } finally {
    outside?.end(true);
    await d.stop('SIGKILL');
    await mosq.stop();
  }
});

test('hands logs --follow streams new lines from the running daemon until it stops', async () => {
  const d = await startDaemon({ hands: [{ name: 'idle', module: idle }] });
  const follow = spawnTalon(['hands', 'logs', 'idle', '--follow', '--json', '--data', d.dataDir]);
  try {
    // wait until the stream is open, then make something happen to the Hand
    const t0 = Date.now();
    const lines = (): Array<{ msg: string }> =>
      follow
        .output()
        .trim()
        .split('\n')
        .filter((l) => l.startsWith('{'))
        .map((l) => JSON.parse(l) as { msg: string });
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(cli(['hands', 'restart', 'idle', '--data', d.dataDir]).status, 0);
    while (!(lines().some((l) => l.msg === 'stopped') && lines().filter((l) => l.msg === 'running').length >= 2)) {
      assert.ok(Date.now() - t0 < 15_000, `no streamed lifecycle lines: ${follow.output()}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  } finally {
    assert.equal(await d.stop(), 0);
  }
  // the daemon ending the stream ends the follower cleanly
  assert.equal(await follow.exited, 0, follow.output());
});
