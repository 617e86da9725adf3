/**
 * The runtime side of the web admin over real sockets, with the kernel run by a KernelHost in
 * this process (LevelDB, embedded broker, worker Hands, a fake LLM server): soft restart keeps
 * serving on the same port; a config applied through the API survives a restart while the
 * file is unchanged, and a changed file wins; a Hands-only apply reconciles just that Hand;
 * stats, bus recent/publish; chat resumed from an offset gets exactly the rest; a restart
 * mid-answer leaves the message as an error.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { KernelHost, type Kernel } from '../../runtime/host/kernel.ts';
import { validateConfig } from '../../runtime/config/load.ts';
import { createLogger } from '../../runtime/log.ts';
import { fixture, workerEntry } from '../helpers/fixtures.ts';
import { startFakeLlm, type FakeLlm } from '../helpers/llm-fakes.ts';
import type { TalonConfig } from '../../runtime/config/types.ts';

let fake: FakeLlm;
let dataDir: string;
let fileConfig: TalonConfig;
let host: KernelHost;
let token: string;
let idle: string;
let entry: string;

const logger = createLogger('error', () => {});

async function startHost(config: TalonConfig): Promise<KernelHost> {
  return KernelHost.start({ config, source: 'test file', logger, workerEntry: entry });
}

function nextRestart(h: KernelHost): Promise<Kernel> {
  return new Promise((resolve, reject) => {
    h.onRestart = (k, err) => (k ? resolve(k) : reject(err));
  });
}

interface Reply {
  status: number;
  json: any;
  text: string;
}

function request(method: string, path: string, body?: unknown): Promise<Reply> {
  const { host: h, port } = host.kernel.http.address();
  return new Promise((resolve, reject) => {
    const payload = body === undefined ? undefined : JSON.stringify(body);
    const req = http.request(
      {
        host: h,
        port,
        method,
        path,
        headers: { authorization: `Bearer ${token}`, ...(payload ? { 'content-type': 'application/json' } : {}) },
      },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (text += c));
        res.on('end', () => {
          let json: unknown;
          try {
            json = JSON.parse(text);
          } catch {
            json = undefined;
          }
          resolve({ status: res.statusCode ?? 0, json, text });
        });
      },
    );
    req.on('error', reject);
    req.end(payload);
  });
}

interface SseEvent {
  event: string;
  data: any;
  id?: string;
}

/** Opens an event stream; `until` decides when to stop reading (the connection is then dropped). */
function sse(
  path: string,
  until: (events: SseEvent[]) => boolean,
  headers: Record<string, string> = {},
): Promise<{ events: SseEvent[]; type: string }> {
  const { host: h, port } = host.kernel.http.address();
  return new Promise((resolve, reject) => {
    const events: SseEvent[] = [];
    const req = http.get({ host: h, port, path, headers: { authorization: `Bearer ${token}`, ...headers } }, (res) => {
      if (res.statusCode !== 200) {
        reject(new Error(`stream ${path}: ${res.statusCode}`));
        return;
      }
      let buf = '';
      let done = false;
      const finish = (): void => {
        if (done) return;
        done = true;
        req.destroy();
        resolve({ events, type: String(res.headers['content-type']) });
      };
      res.setEncoding('utf8');
      res.on('data', (c: string) => {
        buf += c;
        let i: number;
        while ((i = buf.indexOf('\n\n')) >= 0) {
          const block = buf.slice(0, i);
          buf = buf.slice(i + 2);
          const ev: SseEvent = { event: 'message', data: undefined };
          let isEvent = false;
          for (const line of block.split('\n')) {
            if (line.startsWith('event: ')) ev.event = line.slice(7);
            else if (line.startsWith('id: ')) ev.id = line.slice(4);
            else if (line.startsWith('data: ')) {
              ev.data = JSON.parse(line.slice(6));
              isEvent = true;
            }
          }
          if (isEvent) events.push(ev);
          if (until(events)) return finish();
        }
      });
      res.on('end', finish);
      res.on('error', finish);
    });
    req.on('error', (err) => (events.length > 0 ? resolve({ events, type: '' }) : reject(err)));
  });
}

before(async () => {
  fake = await startFakeLlm('ollama');
  entry = await workerEntry();
  idle = await fixture('idle');
  dataDir = mkdtempSync(join(tmpdir(), 'talon-webrt-'));
  fileConfig = validateConfig({
    dataDir,
    deviceName: 'from-file',
    http: { host: '127.0.0.1', port: 0 },
    bus: { embedded: { enabled: true, listen: { host: '127.0.0.1', port: 0 } } },
    hands: [{ name: 'idle', module: idle }],
    llm: { providers: [{ name: 'local', kind: 'ollama', baseUrl: fake.url, model: 'fake-model' }] },
  });
  host = await startHost(fileConfig);
  token = readFileSync(join(dataDir, 'cli-token'), 'utf8').trim();
});

after(async () => {
  await host.stop();
  await fake.close();
});

test('POST /system/restart: a soft restart in process, serving again on the same port', async () => {
  const before = host.kernel;
  const port = before.http.address().port;
  const restarted = nextRestart(host);
  const r = await request('POST', '/api/v1/system/restart');
  assert.equal(r.status, 202, r.text);
  assert.deepEqual(r.json, { restarting: true });
  const k = await restarted;
  assert.notEqual(k, before);
  assert.equal(k.http.address().port, port);
  const health = await request('GET', '/healthz');
  assert.equal(health.status, 200);
  const audit = await request('GET', '/api/v1/audit?action=api.system.restart');
  const entries = (audit.json.entries ?? audit.json.items) as Array<{ actor: string }>;
  assert.equal(entries[0]!.actor, 'cli');
});

test('stats sample shape; the stream sends `stats` events as text/event-stream', async () => {
  const r = await request('GET', '/api/v1/system/stats');
  assert.equal(r.status, 200, r.text);
  const s = r.json;
  assert.ok(s.cpu.percent >= 0 && s.cpu.percent <= 100);
  assert.ok(s.cpu.cores >= 1);
  assert.ok(s.memory.totalBytes > 0 && s.memory.usedBytes > 0 && s.memory.usedBytes <= s.memory.totalBytes);
  assert.ok(s.memory.rssBytes > 0);
  assert.ok(s.temperatureC === null || typeof s.temperatureC === 'number');
  assert.ok(s.disk.totalBytes > 0 && s.disk.usedBytes <= s.disk.totalBytes);
  assert.equal(s.disk.path, dataDir);
  assert.ok(s.network.rxBytesPerSec >= 0 && s.network.txBytesPerSec >= 0);
  assert.deepEqual(
    s.hands.map((h: { name: string }) => h.name),
    ['idle'],
  );
  const info = await request('GET', '/api/v1/system');
  assert.equal(info.json.deviceId, host.kernel.deviceId);
  assert.equal(Buffer.from(info.json.publicKey, 'base64').length, 32);
  const { events, type } = await sse('/api/v1/system/stream', (ev) => ev.length >= 1);
  assert.match(type, /^text\/event-stream/);
  assert.equal(events[0]!.event, 'stats');
  assert.equal(typeof events[0]!.data.cpu.percent, 'number');
});

test('bus: a test message shows in recent traffic; kernel-reserved topics and paths outside the device are refused', async () => {
  const r = await request('POST', '/api/v1/bus/publish', { topic: 'test/hello', payload: 'x'.repeat(3000) });
  assert.equal(r.status, 200, r.text);
  assert.equal(r.json.topic, `talon/${host.kernel.deviceId}/test/hello`);
  let found: { payload: string; truncated: boolean; bytes: number } | undefined;
  for (let i = 0; i < 100 && !found; i++) {
    found = (await request('GET', '/api/v1/bus/recent?filter=test/%23')).json.messages.find(
      (m: { topic: string }) => m.topic === 'test/hello',
    );
    if (!found) await new Promise((res) => setTimeout(res, 20));
  }
  assert.ok(found);
  assert.equal(found.payload.length, 1024);
  assert.equal(found.truncated, true);
  assert.equal(found.bytes, 3000);
  for (const topic of ['state', 'cmd', 'hands/idle/status', 'audit/head', 'sensors/fake']) {
    const x = await request('POST', '/api/v1/bus/publish', { topic, payload: '{}' });
    assert.equal(x.status, 403, `${topic}: ${x.text}`);
  }
  for (const topic of ['/etc/x', 'a/../b', 'a/#']) {
    const x = await request('POST', '/api/v1/bus/publish', { topic, payload: '{}' });
    assert.equal(x.status, 400, `${topic}: ${x.text}`);
  }
});

test('a Hands-only config change reconciles that Hand and keeps the kernel', async () => {
  const k = host.kernel;
  const cur = (await request('GET', '/api/v1/config')).json;
  const next = {
    ...cur.config,
    hands: [...cur.config.hands, { name: 'idle2', module: idle, enabled: true, settings: {} }],
  };
  const r = await request('PUT', '/api/v1/config', { config: next, baseGeneration: cur.generation });
  assert.equal(r.status, 200, r.text);
  assert.deepEqual(r.json, { generation: cur.generation + 1, changed: true, restarted: ['idle2'] });
  assert.equal(host.kernel, k, 'no kernel restart');
  let state = '';
  for (let i = 0; i < 200 && state !== 'running'; i++) {
    state = (await request('GET', '/api/v1/hands/idle2')).json.state;
    if (state !== 'running') await new Promise((res) => setTimeout(res, 25));
  }
  assert.equal(state, 'running');
  const stale = await request('PUT', '/api/v1/config', { config: cur.config, baseGeneration: cur.generation });
  assert.equal(stale.status, 409);
  assert.equal(stale.json.error.code, 'CONFLICT');
  const bad = await request('PUT', '/api/v1/config', {
    config: { ...cur.config, http: { ...cur.config.http, port: 'x' } },
  });
  assert.equal(bad.status, 400);
  assert.ok(bad.json.error.details.errors.some((e: { path: string }) => e.path === 'http.port'));
});

test('a config applied through the API survives a restart while the file is unchanged; a changed file wins', async () => {
  const cur = (await request('GET', '/api/v1/config')).json;
  const restarted = nextRestart(host);
  const r = await request('PUT', '/api/v1/config', { config: { ...cur.config, deviceName: 'from-api' } });
  assert.equal(r.status, 200, r.text);
  assert.deepEqual(r.json.restarted, ['kernel']);
  await restarted;
  assert.equal((await request('GET', '/api/v1/system')).json.deviceName, 'from-api');

  // a full stop and a new start from the same file: the API's generation stays in force
  await host.stop();
  host = await startHost(fileConfig);
  assert.equal(host.kernel.config.deviceName, 'from-api');
  assert.equal((await request('GET', '/api/v1/config')).json.source, 'api');

  // the file changed: it is applied, and wins
  await host.stop();
  host = await startHost({ ...fileConfig, deviceName: 'file-edited' });
  assert.equal(host.kernel.config.deviceName, 'file-edited');
  assert.equal((await request('GET', '/api/v1/config')).json.source, 'test file');
});

test('chat: a stream dropped by the client and resumed from its offset gets exactly the rest', async () => {
  fake.reply({ chunks: ['The ', 'quick ', 'brown ', 'fox ', 'jumps.'] });
  const c = await request('POST', '/api/v1/chat', { target: 'router' });
  assert.equal(c.status, 201, c.text);
  const id = c.json.conversation.id as string;
  const p = await request('POST', `/api/v1/chat/${id}/messages`, { content: 'say something' });
  assert.equal(p.status, 202, p.text);
  assert.equal(p.json.assistant.status, 'streaming');
  const mid = p.json.assistant.id as string;
  const first = await sse(`/api/v1/chat/${id}/messages/${mid}/stream?from=0`, (ev) =>
    ev.some((e) => e.event === 'delta'),
  );
  const shown = first.events
    .filter((e) => e.event === 'delta')
    .map((e) => e.data.text as string)
    .join('');
  assert.ok(shown.length > 0);
  const rest = await sse(`/api/v1/chat/${id}/messages/${mid}/stream?from=${shown.length}`, (ev) =>
    ev.some((e) => e.event === 'done' || e.event === 'error'),
  );
  const deltas = rest.events.filter((e) => e.event === 'delta');
  if (deltas.length > 0) assert.equal(deltas[0]!.data.offset, shown.length);
  const done = rest.events.at(-1)!;
  assert.equal(done.event, 'done', JSON.stringify(done.data));
  assert.equal(shown + deltas.map((e) => e.data.text as string).join(''), 'The quick brown fox jumps.');
  assert.equal(done.data.content, 'The quick brown fox jumps.');
  // Last-Event-ID resumes the same way
  const again = await sse(`/api/v1/chat/${id}/messages/${mid}/stream`, (ev) => ev.some((e) => e.event === 'done'), {
    'last-event-id': '4',
  });
  assert.equal(
    again.events
      .filter((e) => e.event === 'delta')
      .map((e) => e.data.text)
      .join(''),
    'quick brown fox jumps.',
  );
  const stored = (await request('GET', `/api/v1/chat/${id}`)).json;
  assert.deepEqual(
    stored.messages.map((m: { role: string; status: string }) => `${m.role}:${m.status}`),
    ['user:done', 'assistant:done'],
  );
});

test('chat: a kernel restart mid-answer leaves the message as an error, never as a whole answer', async () => {
  fake.reply({ chunks: ['Partial ', 'answer ', 'never ', 'finished'], fault: { kind: 'stall', afterText: 1 } });
  const c = await request('POST', '/api/v1/chat', { target: 'router', title: 'stall' });
  const id = c.json.conversation.id as string;
  const p = await request('POST', `/api/v1/chat/${id}/messages`, { content: 'go' });
  const mid = p.json.assistant.id as string;
  await sse(`/api/v1/chat/${id}/messages/${mid}/stream?from=0`, (ev) => ev.some((e) => e.event === 'delta'));
  const midway = (await request('GET', `/api/v1/chat/${id}`)).json.messages[1];
  assert.equal(midway.status, 'streaming');
  await host.restart('test');
  const after = (await request('GET', `/api/v1/chat/${id}`)).json.messages[1];
  assert.equal(after.status, 'error');
  assert.equal(after.error.code, 'INTERRUPTED');
  assert.equal(after.content, 'Partial ');
  const s = await sse(`/api/v1/chat/${id}/messages/${mid}/stream?from=8`, (ev) =>
    ev.some((e) => e.event === 'error' || e.event === 'done'),
  );
  assert.equal(s.events.at(-1)!.event, 'error');
});

test('Hand settings: schema from the manifest, validated with the path, applied as a generation; chat with the Hand streams its answer', async () => {
  const talker = await fixture('talker');
  const cur = (await request('GET', '/api/v1/config')).json;
  const add = await request('PUT', '/api/v1/config', {
    config: {
      ...cur.config,
      hands: [...cur.config.hands, { name: 'talker', module: talker, settings: { greeting: 'good day' } }],
    },
  });
  assert.equal(add.status, 200, add.text);
  const waitRunning = async (): Promise<void> => {
    for (let i = 0; i < 200; i++) {
      if ((await request('GET', '/api/v1/hands/talker')).json.state === 'running') return;
      await new Promise((res) => setTimeout(res, 25));
    }
    assert.fail('talker did not start');
  };
  await waitRunning();
  const s = await request('GET', '/api/v1/hands/talker/settings');
  assert.equal(s.status, 200, s.text);
  assert.deepEqual(s.json.settings, { greeting: 'good day' });
  assert.equal(s.json.schema.properties.times.maximum, 5);

  const bad = await request('PUT', '/api/v1/hands/talker/settings', { settings: { greeting: 'hi', times: 9 } });
  assert.equal(bad.status, 400, bad.text);
  assert.equal(bad.json.error.code, 'CONFIG_INVALID');
  assert.deepEqual(
    bad.json.error.details.errors.map((e: { path: string }) => e.path),
    ['times'],
  );

  const gen = (await request('GET', '/api/v1/config')).json.generation;
  const ok = await request('PUT', '/api/v1/hands/talker/settings', { settings: { greeting: 'hi you', times: 2 } });
  assert.equal(ok.status, 200, ok.text);
  assert.equal(ok.json.generation, gen + 1);
  await waitRunning();
  assert.deepEqual((await request('GET', '/api/v1/hands/talker/settings')).json.settings, {
    greeting: 'hi you',
    times: 2,
  });

  const c = await request('POST', '/api/v1/chat', { target: 'hand:talker' });
  const id = c.json.conversation.id as string;
  const p = await request('POST', `/api/v1/chat/${id}/messages`, { content: 'ping' });
  const mid = p.json.assistant.id as string;
  const s2 = await sse(`/api/v1/chat/${id}/messages/${mid}/stream`, (ev) =>
    ev.some((e) => e.event === 'done' || e.event === 'error'),
  );
  const done = s2.events.at(-1)!;
  assert.equal(done.event, 'done', JSON.stringify(done.data));
  assert.equal(done.data.content, 'hi you hi you (you said: ping)');
  assert.equal(done.data.provider, 'hand:talker');
  const unknown = await request('POST', '/api/v1/chat', { target: 'hand:nobody' });
  assert.equal(unknown.status, 404);
});

test('sensor and alert streams relay bus messages; alerts without a Monitoring Hand are a clear 503', async () => {
  const root = `talon/${host.kernel.deviceId}`;
  const sensors = sse('/api/v1/sensors/stream', (ev) => ev.some((e) => e.event === 'reading'));
  const alerts = sse('/api/v1/alerts/stream', (ev) => ev.some((e) => e.event === 'alert'));
  // the streams subscribe before their headers go out; publish until each has seen one
  let done = false;
  void Promise.all([sensors, alerts]).finally(() => {
    done = true;
  });
  for (let i = 0; i < 200 && !done; i++) {
    await host.kernel.bus.publish(
      `${root}/sensors/room.temp`,
      JSON.stringify({ sensor: 'room.temp', value: 21.5, ts: 1 }),
    );
    await request('POST', '/api/v1/bus/publish', {
      topic: 'alerts/warning',
      payload: JSON.stringify({
        id: 'a1',
        sensor: 'room.temp',
        rule: 'above',
        severity: 'warning',
        state: 'firing',
        ts: 2,
      }),
    });
    await new Promise((res) => setTimeout(res, 25));
  }
  const s = (await sensors).events.find((e) => e.event === 'reading')!;
  assert.deepEqual(s.data, { id: 'room.temp', value: 21.5, ts: 1 });
  const a = (await alerts).events.find((e) => e.event === 'alert')!;
  assert.equal(a.data.id, 'a1');
  const list = await request('GET', '/api/v1/alerts');
  assert.equal(list.status, 503);
  assert.equal(list.json.error.code, 'HAND_NOT_RUNNING');
  const hist = await request('GET', '/api/v1/sensors/room.temp/history?from=0&to=999999999999999');
  assert.equal(hist.status, 400, hist.text);
});
