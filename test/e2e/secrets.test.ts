/**
 * Sealed secrets as an operator uses them: sealed on a stopped device, used as a cloud
 * provider's key (the fake OpenAI server sees it), listed by name only, never in the audit log
 * or in plain text on disk; set and deleted again through the running daemon.
 */
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ensureBuilt, startDaemon, cli, spawnTalon, TALON } from '../helpers/daemon.ts';
import { startFakeLlm } from '../helpers/llm-fakes.ts';

before(() => ensureBuilt());

const KEY = 'sk-test-0123456789abcdefSECRET';
const setSecret = (dataDir: string, name: string, value: string) =>
  spawnSync(process.execPath, [TALON, 'secrets', 'set', name, '--data', dataDir], { input: value, encoding: 'utf8' });

test('a sealed key reaches the provider and nowhere else', async () => {
  const fake = await startFakeLlm('openai');
  // first start makes the device key; then seal the key on the stopped device
  const first = await startDaemon({ hands: [], drivers: [] });
  assert.equal(await first.stop(), 0);
  // none yet: says so rather than nothing (issue 14); the offline store leaves no talon.pid behind
  const none = cli(['secrets', 'list', '--data', first.dataDir]);
  assert.equal(none.status, 0, none.stderr);
  assert.equal(none.stdout, 'no secrets\n');
  assert.ok(!existsSync(join(first.dataDir, 'talon.pid')), 'no talon.pid after a clean stop or an offline CLI command');
  const set = setSecret(first.dataDir, 'openai-key', KEY);
  assert.equal(set.status, 0, set.stderr);

  const d = await startDaemon(
    {
      hands: [],
      drivers: [],
      llm: {
        providers: [
          { name: 'cloud', kind: 'openai', baseUrl: fake.url, model: 'gpt-test', apiKeySecret: 'openai-key' },
        ],
      },
    },
    { dataDir: first.dataDir },
  );
  try {
    // async: the fake server lives in this process, so a blocking spawnSync would starve it
    const chat = spawnTalon(['llm', 'chat', 'hi', '--json', '--data', d.dataDir]);
    assert.equal(await chat.exited, 0, chat.output());
    assert.equal(fake.requests.at(-1)!.headers.authorization, `Bearer ${KEY}`);

    const list = cli(['secrets', 'list', '--json', '--data', d.dataDir]);
    assert.equal(list.status, 0, list.stderr);
    assert.deepEqual(
      (JSON.parse(list.stdout) as Array<{ name: string }>).map((x) => x.name),
      ['openai-key'],
    );
    assert.ok(!list.stdout.includes(KEY));

    // through the running daemon: set another, delete it, bad names refused
    assert.equal(setSecret(d.dataDir, 'other', 'x-value-1').status, 0);
    assert.match(cli(['secrets', 'delete', 'other', '--data', d.dataDir]).stdout, /deleted other/);
    const bad = setSecret(d.dataDir, '../etc', 'v');
    assert.equal(bad.status, 2, bad.stderr);

    const audit = cli(['audit', 'export', '--out', join(d.dataDir, 'audit.jsonl'), '--data', d.dataDir]);
    assert.equal(audit.status, 0, audit.stderr);
    const log = readFileSync(join(d.dataDir, 'audit.jsonl'), 'utf8');
    assert.match(log, /api\.secrets\.set/);
    assert.ok(!log.includes(KEY) && !log.includes('x-value-1'), 'no secret value in the audit log');
  } finally {
    assert.equal(await d.stop(), 0);
    await fake.close();
  }
  // nothing on disk holds the key in plain text
  const dbDir = join(first.dataDir, 'db');
  for (const f of readdirSync(dbDir))
    assert.ok(!readFileSync(join(dbDir, f)).includes(Buffer.from(KEY)), `${f} holds the key in plain text`);
});

test('a provider whose sealed key is missing stops the start with a clear message', async () => {
  const first = await startDaemon({ hands: [], drivers: [] });
  assert.equal(await first.stop(), 0);
  const { file } = await import('../helpers/daemon.ts').then((m) =>
    m.writeConfig(
      {
        hands: [],
        drivers: [],
        llm: {
          providers: [
            { name: 'cloud', kind: 'openai', baseUrl: 'http://127.0.0.1:9/v1', model: 'm', apiKeySecret: 'missing' },
          ],
        },
      },
      first.dataDir,
    ),
  );
  const r = spawnSync(process.execPath, [TALON, 'run', '--config', file], { encoding: 'utf8', timeout: 20_000 });
  assert.equal(r.status, 2, r.stdout + r.stderr);
  assert.match(r.stderr + r.stdout, /sealed secret "missing".*talon secrets set missing/);
});
