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
import { writeTestModel, TINY_SHAPE } from '../../runtime/llm/gguf.ts';
import { freePort } from '../helpers/ports.ts';

let dataDir: string;
before(async () => {
  ensureBuilt();
  dataDir = mkdtempSync(join(tmpdir(), 'talon-llm-e2e-'));
  mkdirSync(join(dataDir, 'models'), { recursive: true });
  await writeTestModel(join(dataDir, 'models', 'tiny.gguf'), TINY_SHAPE);
});

test('chat through the CLI with the local model, whole and streamed; failover from a dead cloud provider', async () => {
  const dead = await freePort(); // nothing listens here: connection refused
  const d = await startDaemon({
    hands: [], drivers: [],
    llm: {
      providers: [
        { name: 'cloud', kind: 'openai', baseUrl: `http://127.0.0.1:${dead}/v1`, model: 'gpt-test' },
        { name: 'local', kind: 'llama.cpp', modelPath: 'models/tiny.gguf', threads: 1, maxTokens: 16 },
      ],
      chains: { default: ['cloud', 'local'] },
      retry: { maxAttempts: 4, baseMs: 10, maxMs: 1000, jitter: 0.1 },
    },
  }, { dataDir });
  try {
    const r = cli(['llm', 'chat', 'hello there', '--max-tokens', '8', '--json', '--data', d.dataDir]);
    assert.equal(r.status, 0, r.stderr);
    const result = JSON.parse(r.stdout) as { provider: string; text: string; usage: { inputTokens: number; outputTokens: number } };
    assert.equal(result.provider, 'local', 'the dead cloud provider failed over to the local model');
    assert.ok(result.usage.outputTokens > 0 && result.usage.inputTokens > 0);

    const s = cli(['llm', 'chat', 'stream please', '--stream', '--json', '--provider', 'local', '--max-tokens', '8', '--data', d.dataDir]);
    assert.equal(s.status, 0, s.stderr);
    const chunks = s.stdout.trim().split('\n').map((l) => JSON.parse(l) as { type: string; text?: string; result?: { text: string } });
    const done = chunks.filter((c) => c.type === 'done');
    assert.equal(done.length, 1);
    assert.equal(chunks.filter((c) => c.type === 'text').map((c) => c.text).join(''), done[0]!.result!.text);

    const p = cli(['llm', 'providers', '--json', '--data', d.dataDir]);
    assert.equal(p.status, 0, p.stderr);
    const providers = JSON.parse(p.stdout) as Array<{ name: string; local: boolean; failures: number; calls: number }>;
    assert.deepEqual(providers.map((x) => [x.name, x.local]), [['cloud', false], ['local', true]]);
    assert.ok(providers.find((x) => x.name === 'cloud')!.failures >= 1);

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
