/** Providers and the router from the config; each provider's code is loaded only when configured. */
import { join, isAbsolute } from 'node:path';
import type { LlmProvider } from './types.ts';
import type { LlmConfig, LlmProviderConfig } from './config.ts';
import type { LlmRouter } from './router.ts';
import type { Audit } from '../audit/types.ts';
import type { Clock, Random } from '../core/clock.ts';
import { TalonError } from '../core/errors.ts';

export async function createProvider(
  c: LlmProviderConfig,
  env: NodeJS.ProcessEnv,
  dataDir: string,
  secrets?: { get(name: string): Promise<string | undefined> },
): Promise<LlmProvider> {
  const need = (field: 'baseUrl' | 'model'): string => {
    const v = c[field];
    if (v === undefined)
      throw new TalonError('CONFIG_INVALID', `llm.providers ${c.name}: a ${c.kind} provider needs ${field}`);
    return v;
  };
  let apiKey: string | undefined;
  if (c.apiKeySecret !== undefined) {
    apiKey = await secrets?.get(c.apiKeySecret);
    if (!apiKey)
      throw new TalonError(
        'CONFIG_INVALID',
        `llm.providers ${c.name}: the sealed secret "${c.apiKeySecret}" (its API key) is not set; set it with \`talon secrets set ${c.apiKeySecret}\``,
      );
  } else if (c.apiKeyEnv !== undefined) {
    apiKey = env[c.apiKeyEnv];
    if (!apiKey)
      throw new TalonError(
        'CONFIG_INVALID',
        `llm.providers ${c.name}: the environment variable ${c.apiKeyEnv} (its API key) is not set`,
      );
  }
  const remote = () => ({
    name: c.name,
    baseUrl: need('baseUrl'),
    model: need('model'),
    ...(apiKey !== undefined ? { apiKey } : {}),
  });
  switch (c.kind) {
    case 'openai':
      return new (await import('./providers/openai.ts')).OpenAiProvider(remote());
    case 'anthropic':
      return new (await import('./providers/anthropic.ts')).AnthropicProvider(remote());
    case 'gemini':
      return new (await import('./providers/gemini.ts')).GeminiProvider(remote());
    case 'ollama':
      return new (await import('./providers/ollama.ts')).OllamaProvider(remote());
    case 'llama.cpp': {
      if (c.modelPath === undefined)
        throw new TalonError(
          'CONFIG_INVALID',
          `llm.providers ${c.name}: a llama.cpp provider needs modelPath (a GGUF file in the data folder)`,
        );
      const { LocalProvider } = await import('./providers/local.ts');
      return new LocalProvider({
        name: c.name,
        dataDir,
        modelPath: isAbsolute(c.modelPath) ? c.modelPath : join(dataDir, c.modelPath),
        ...(c.threads !== undefined ? { threads: c.threads } : {}),
        ...(c.contextSize !== undefined ? { contextSize: c.contextSize } : {}),
        ...(c.gpu !== undefined ? { gpu: c.gpu } : {}),
        ...(c.idleUnloadMs !== undefined ? { idleUnloadMs: c.idleUnloadMs } : {}),
        ...(c.maxTokens !== undefined ? { maxTokens: c.maxTokens } : {}),
      });
    }
  }
}

/** null when no provider is configured */
export async function createRouter(
  cfg: LlmConfig,
  deps: {
    audit: Audit;
    clock: Clock;
    random: Random;
    env: NodeJS.ProcessEnv;
    dataDir: string;
    secrets?: { get(name: string): Promise<string | undefined> };
  },
): Promise<LlmRouter | null> {
  if (cfg.providers.length === 0) return null;
  const names = new Set<string>();
  for (const p of cfg.providers) {
    if (names.has(p.name)) throw new TalonError('CONFIG_INVALID', `llm.providers: the name "${p.name}" is used twice`);
    names.add(p.name);
  }
  const providers = await Promise.all(
    cfg.providers.map((p) => createProvider(p, deps.env, deps.dataDir, deps.secrets)),
  );
  const { LlmRouter } = await import('./router.ts');
  return new LlmRouter(
    {
      providers,
      chains: cfg.chains,
      policies: cfg.policies,
      retry: cfg.retry,
      timeouts: cfg.timeouts,
      auditPrompts: cfg.auditPrompts,
      ...(cfg.prices ? { prices: cfg.prices } : {}),
    },
    { audit: deps.audit, clock: deps.clock, random: deps.random },
  );
}
