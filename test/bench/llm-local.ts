/**
 * `node --import tsx test/bench/llm-local.ts [tiny|1b ...]`: local llama.cpp speed on this
 * machine, as Markdown table rows in the style of test/bench/run.ts (which can call
 * llmLocalRows()). Models are random-weight GGUFs written by test/fixtures/llm/gguf-writer.ts into a
 * temp folder and deleted afterwards:
 * - tiny: the test model (dim 64, 2 layers, vocab 320, F32);
 * - 1b:   a 1B-class shape (dim 2048, 16 layers, ffn 5632, 32 heads / 8 KV heads, vocab
 *         32000, Q8_0 ≈ 0.9 GB, ~0.84 B parameters).
 * For each, with 1 and 2 threads: prompt processing (a batch of prompt tokens evaluated at
 * once) and generation (one token at a time, greedy), in tokens/s, median of LLM_BENCH_RUNS
 * (default 3). Random weights cost the same arithmetic as trained ones of the same shape and
 * type, so the figures stand for real models of that size; only the text is gibberish.
 */
import { pathToFileURL } from 'node:url';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ONE_B_SHAPE, TINY_SHAPE, writeTestModel, type TestModelShape } from '../fixtures/llm/gguf-writer.ts';

const RUNS = Number(process.env.LLM_BENCH_RUNS ?? 3);
const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

interface Case {
  label: string;
  shape: Partial<TestModelShape>;
  prompt: number;
  gen: number;
}

const CASES: Record<string, Case> = {
  tiny: { label: 'tiny (64×2, F32)', shape: TINY_SHAPE, prompt: 256, gen: 128 },
  '1b': { label: '1B-shaped (2048×16, Q8_0)', shape: ONE_B_SHAPE, prompt: 128, gen: 32 },
};

export async function llmLocalRows(
  which: string[] = ['tiny', '1b'],
  say: (line: string) => void = console.log,
): Promise<void> {
  const { getLlama, LlamaLogLevel } = await import('node-llama-cpp');
  const llama = await getLlama({
    build: 'never',
    gpu: false,
    skipDownload: true,
    progressLogs: false,
    maxThreads: 2,
    logLevel: LlamaLogLevel.error,
  });
  const dir = mkdtempSync(join(tmpdir(), 'talon-llm-bench-'));
  say(`| model | params | file | threads | load ms | prompt tok/s | generation tok/s |`);
  say(`|---|---|---|---|---|---|---|`);
  try {
    for (const key of which) {
      const c = CASES[key];
      if (!c) throw new Error(`unknown case ${key} (tiny, 1b)`);
      const path = join(dir, `${key}.gguf`);
      const t0 = performance.now();
      const written = writeTestModel(path, c.shape);
      const writeMs = performance.now() - t0;
      console.error(`# wrote ${key}: ${(written.bytes / 1e6).toFixed(0)} MB in ${(writeMs / 1000).toFixed(1)} s`);
      for (const threads of [1, 2]) {
        const t1 = performance.now();
        const model = await llama.loadModel({ modelPath: path, gpuLayers: 0 });
        const loadMs = performance.now() - t1;
        const ctx = await model.createContext({ contextSize: 1024, threads, batchSize: 512 });
        const seq = ctx.getSequence();
        // prompt tokens: ordinary pieces above the specials and the byte tokens
        const prompt = Array.from(
          { length: c.prompt },
          (_, i) => 262 + ((i * 7) % (written.vocab.tokens.length - 262)),
        );
        const pp: number[] = [];
        const tg: number[] = [];
        for (let r = 0; r < RUNS; r++) {
          await seq.clearHistory();
          const a = performance.now();
          await seq.evaluateWithoutGeneratingNewTokens(prompt as never);
          pp.push(c.prompt / ((performance.now() - a) / 1000));
          // generation: one token in, one out, greedy; time from the first to the last token
          let n = 0;
          let first = 0;
          for await (const _t of seq.evaluate([prompt[0]!] as never, { temperature: 0 })) {
            if (n === 0) first = performance.now();
            if (++n > c.gen) break;
          }
          tg.push(c.gen / ((performance.now() - first) / 1000));
        }
        say(
          `| ${c.label} | ${(written.parameters / 1e6).toFixed(written.parameters < 1e6 ? 2 : 0)} M | ${(written.bytes / 1e6).toFixed(written.bytes < 1e7 ? 1 : 0)} MB | ${threads} | ${loadMs.toFixed(0)} | ${median(pp).toFixed(1)} | ${median(tg).toFixed(1)} |`,
        );
        await ctx.dispose();
        await model.dispose();
      }
      rmSync(path, { force: true });
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
    await llama.dispose();
  }
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const args = process.argv.slice(2);
  await llmLocalRows(args.length ? args : undefined);
}
