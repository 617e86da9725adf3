/**
 * The provider contract (./contract.ts) against LocalProvider: real llama.cpp (node-llama-cpp)
 * on a tiny random-weight GGUF from the project's generator. Its text is gibberish and cannot
 * be scripted, so the contract runs with `scripted: false` (structure only, no tool-call cases).
 * The fault cases are all about a remote vendor's wire (HTTP statuses and Retry-After, keys,
 * empty or malformed bodies, stalled/cut/never-ending connections, an unreachable port) and
 * are skipped: a local model has none of them. Its own failures (missing/bad GGUF, context
 * overflow, idle unload) are in ./local.test.ts.
 */
import { after, before } from 'node:test';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { LocalProvider } from '../../../runtime/llm/providers/local.ts';
import { modelDir, TINY_SHAPE, writeTestModel, type ModelDir } from '../../fixtures/llm/gguf.ts';
import { providerContract, type ContractFault } from './contract.ts';

const NO_WIRE: ContractFault[] = [
  'status500',
  'status503',
  'status429',
  'status401',
  'status403',
  'status402',
  'status400',
  'status404',
  'empty200',
  'noTokens',
  'malformed',
  'stall',
  'cut',
  'neverEnds',
  'noHeaders',
  'unreachable',
];

// one model file for the whole suite; each harness gets a fresh provider (a fresh load)
let d: ModelDir;
before(() => {
  d = modelDir();
  mkdirSync(join(d.dir, 'models'));
  writeTestModel(join(d.dir, 'models', 'tiny.gguf'), TINY_SHAPE);
});
after(() => d.cleanup());

providerContract(
  'llama.cpp',
  async () => ({
    provider: new LocalProvider({
      name: 'local',
      dataDir: d.dir,
      modelPath: 'models/tiny.gguf',
      threads: 1,
      contextSize: 512,
      gpu: false,
      maxTokens: 48,
      seed: 42,
      idleUnloadMs: 0,
    }),
    script: () => {
      throw new Error('a local model cannot be scripted');
    },
    close: async () => {},
  }),
  { skipFaults: NO_WIRE, scripted: false },
);
