/**
 * The LLM router on the real daemon: a random-weight GGUF generated here and loaded by
 * node-llama-cpp for real (its text is gibberish, its mechanics are real), the CLI's chat
 * (whole and streamed) and providers listing, and failover from a dead cloud provider to the
 * local model.
 */
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ensureBuilt, startDaemon, cli } from '../helpers/daemon.ts';
import { writeTestModel, TINY_SHAPE } from '../fixtures/llm/gguf-writer.ts';
import { freePort } from '../helpers/ports.ts';
import mqtt from 'mqtt';

let dataDir: string;
before(async () => {
  ensureBuilt();
  dataDir = mkdtempSync(join(tmpdir(), 'talon-llm-e2e-'));
  mkdirSync(join(dataDir, 'models'), { recursive: true });
  await writeTestModel(join(dataDir, 'models', 'tiny.gguf'), TINY_SHAPE);
});

test('chat through the CLI with the local model, whole and streamed; failover from a dead cloud provider', async () => {
  const dead = await freePort(); // nothing listens here: connection refused
  const d = await startDaemon(
    {
      hands: [],
      drivers: [],
      llm: {
        providers: [
          { name: 'cloud', kind: 'openai', baseUrl: `http://127.0.0.1:${dead}/v1`, model: 'gpt-test' },
          { name: 'local', kind: 'llama.cpp', modelPath: 'models/tiny.gguf', threads: 1, maxTokens: 16 },
        ],
        chains: { default: ['cloud', 'local'] },
        retry: { maxAttempts: 4, baseMs: 10, maxMs: 1000, jitter: 0.1 },
      },
    },
    { dataDir },
  );
  try {
    const r = cli(['llm', 'chat', 'hello there', '--max-tokens', '8', '--json', '--data', d.dataDir]);
    assert.equal(r.status, 0, r.stderr);
    const result = JSON.parse(r.stdout) as {
      provider: string;
      text: string;
      usage: { inputTokens: number; outputTokens: number };
    };
    assert.equal(result.provider, 'local', 'the dead cloud provider failed over to the local model');
    assert.ok(result.usage.outputTokens > 0 && result.usage.inputTokens > 0);

    const s = cli([
      'llm',
      'chat',
      'stream please',
      '--stream',
      '--json',
      '--provider',
      'local',
      '--max-tokens',
      '8',
      '--data',
      d.dataDir,
    ]);
    assert.equal(s.status, 0, s.stderr);
    const chunks = s.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { type: string; text?: string; result?: { text: string } });
    const done = chunks.filter((c) => c.type === 'done');
    assert.equal(done.length, 1);
    assert.equal(
      chunks
        .filter((c) => c.type === 'text')
        .map((c) => c.text)
        .join(''),
      done[0]!.result!.text,
    );

    const p = cli(['llm', 'providers', '--json', '--data', d.dataDir]);
    assert.equal(p.status, 0, p.stderr);
    const providers = JSON.parse(p.stdout) as Array<{ name: string; local: boolean; failures: number; calls: number }>;
    assert.deepEqual(
      providers.map((x) => [x.name, x.local]),
      [
        ['cloud', false],
        ['local', true],
      ],
    );
    assert.ok(providers.find((x) => x.name === 'cloud')!.failures >= 1);
    const api = (await (
      await fetch(`http://127.0.0.1:${d.httpPort}/api/v1/llm/providers`, {
        headers: { authorization: `Bearer ${d.token()}` },
      })
    ).json()) as { usage: { providers: Record<string, { outputTokens: number }> } };
    assert.ok(api.usage.providers.local!.outputTokens > 0, JSON.stringify(api.usage));

    const bad = cli(['llm', 'chat', 'x', '--provider', 'nope', '--data', d.dataDir]);
    assert.notEqual(bad.status, 0);
    assert.match(bad.stderr, /nope/);

    // every call is audited, without the prompt text
    const audit = cli(['audit', 'tail', '-n', '50', '--action', 'llm.*', '--json', '--data', d.dataDir]);
    assert.equal(audit.status, 0, audit.stderr);
    assert.ok(audit.stdout.includes('llm.chat'));
    assert.ok(!audit.stdout.includes('hello there'), 'prompts stay out of the audit log');
  } finally {
    const code = await d.stop();
    assert.equal(code, 0, d.output().slice(-3000));
  }
});

test('with an llm grant the Monitoring Hand asks the local model for its suggested fix, audited under its name', async () => {
  const monData = mkdtempSync(join(tmpdir(), 'talon-llm-mon-'));
  mkdirSync(join(monData, 'models'), { recursive: true });
  writeTestModel(join(monData, 'models', 'tiny.gguf'), TINY_SHAPE);
  const d = await startDaemon(
    {
      drivers: [
        {
          type: 'sim',
          name: 'green',
          seed: 3,
          sensors: [{ id: 'green.temp', pattern: { base: { type: 'constant', value: 90 } } }],
        },
      ],
      hands: [
        {
          name: 'monitoring',
          module: 'monitoring',
          capabilities: { llm: { tokensPerHour: 50000 } },
          settings: { sensors: [{ id: 'green.temp', intervalMs: 250, severity: 'critical', rules: { above: 50 } }] },
        },
      ],
      llm: {
        providers: [{ name: 'local', kind: 'llama.cpp', modelPath: 'models/tiny.gguf', threads: 1, maxTokens: 12 }],
      },
    },
    { dataDir: monData },
  );
  const client = await mqtt.connectAsync(`mqtt://127.0.0.1:${d.mqttPort}`, { reconnectPeriod: 0 });
  const fixes: string[] = [];
  client.on('message', (_t, p) => fixes.push((JSON.parse(p.toString()) as { suggestedFix: string }).suggestedFix));
  try {
    await client.subscribeAsync(`talon/${d.deviceId()}/alerts/#`);
    const t0 = Date.now();
    while (!fixes.some((f) => f.endsWith('[local]'))) {
      assert.ok(Date.now() - t0 < 30_000, `no LLM-made fix: ${JSON.stringify(fixes)}`);
      await new Promise((r) => setTimeout(r, 100));
    }
    const audit = cli([
      'audit',
      'tail',
      '-n',
      '100',
      '--actor',
      'hand:monitoring',
      '--action',
      'llm.*',
      '--json',
      '--data',
      d.dataDir,
    ]);
    assert.ok(audit.stdout.includes('"llm.chat"'), audit.stdout + audit.stderr);
  } finally {
    client.end(true);
    assert.equal(await d.stop(), 0);
  }
});
