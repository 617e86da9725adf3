/** `talon llm providers` and `talon llm chat "…" [--provider NAME] [--stream]`, through the running daemon. */
import { parseSubcommand, UsageError, printable, type CommandSpec, type Io } from '../args.ts';
import { DaemonClient } from '../client.ts';
import { dataDir, DATA_OPTIONS } from './hands.ts';
import { TalonError } from '../../core/errors.ts';
import type { ProviderStatus } from '../../llm/router.ts';
import type { ChatResult } from '../../llm/types.ts';

export const spec: CommandSpec = {
  name: 'talon llm',
  summary: 'Talk to the LLM router of the running daemon.',
  subcommands: [
    {
      name: 'providers',
      summary: 'each provider: kind, local or cloud, breaker state, p50 latency, calls, last error',
    },
    { name: 'chat', summary: 'one prompt through the failover chain (or one provider), the answer printed' },
  ],
  notes: 'Exit codes: 0 ok, 1 Talon not running or every provider failed, 2 bad usage.',
};

const SUBSPECS: Record<string, CommandSpec> = {
  providers: {
    name: 'talon llm providers',
    summary: 'List the LLM providers with their health.',
    options: DATA_OPTIONS,
  },
  chat: {
    name: 'talon llm chat',
    summary: 'Send PROMPT through the router and print the answer.',
    positionals: [{ name: 'PROMPT', required: true, description: 'the prompt' }],
    options: {
      ...DATA_OPTIONS,
      provider: { type: 'string', short: 'p', value: 'NAME', description: 'only this provider (no failover)' },
      stream: { type: 'boolean', description: 'print the answer as it is generated' },
      'max-tokens': { type: 'string', value: 'N', description: 'longest answer in tokens' },
    },
  },
};

export async function main(argv: string[], io: Io): Promise<number> {
  const picked = parseSubcommand(spec, SUBSPECS, argv, io);
  if (!picked) return 0;
  const { spec: s, args } = picked;
  const sub = { name: picked.name };
  const client = DaemonClient.open(await dataDir(args, io));
  const json = args.values.json === true;
  if (sub.name === 'providers') {
    const { providers } = await client.request<{ providers: ProviderStatus[] }>('GET', '/api/v1/llm/providers');
    if (json) io.out(`${JSON.stringify(providers, null, 2)}\n`);
    else if (providers.length === 0) io.out('no LLM provider configured (llm.providers in the config)\n');
    else {
      for (const p of providers) {
        io.out(
          `${p.name.padEnd(12)} ${p.kind.padEnd(10)} ${(p.local ? 'local' : 'cloud').padEnd(6)} ${p.state.padEnd(9)} ` +
            `p50 ${p.p50LatencyMs === null ? '-' : `${Math.round(p.p50LatencyMs)} ms`}  calls ${p.calls}  failures ${p.failures}` +
            `${p.lastError ? `  last error ${p.lastError.code}: ${printable(p.lastError.message.slice(0, 120))}` : ''}\n`,
        );
      }
    }
    return 0;
  }
  const body: Record<string, unknown> = { prompt: args.positionals[0]! };
  if (args.values.provider !== undefined) body.provider = args.values.provider;
  if (args.values['max-tokens'] !== undefined) {
    const n = Number(args.values['max-tokens']);
    if (!Number.isInteger(n) || n < 1 || n > 32768)
      throw new UsageError('--max-tokens must be a whole number from 1 to 32768', s);
    body.maxTokens = n;
  }
  if (!args.values.stream) {
    const r = await client.request<ChatResult>('POST', '/api/v1/llm/chat', body);
    io.out(
      json
        ? `${JSON.stringify(r, null, 2)}\n`
        : `${printable(r.text)}\n[${r.provider}/${r.model}, ${r.usage.inputTokens}+${r.usage.outputTokens} tokens]\n`,
    );
    return 0;
  }
  let failed: TalonError | null = null;
  await client.postStream('/api/v1/llm/chat', { ...body, stream: true }, (data, event) => {
    const v = JSON.parse(data) as {
      type?: string;
      text?: string;
      result?: ChatResult;
      from?: string;
      to?: string;
      error?: unknown;
    };
    if (event === 'error') {
      failed = TalonError.from(v.error);
      return;
    }
    if (json) io.out(`${data}\n`);
    else if (v.type === 'text') io.out(printable(v.text ?? ''));
    else if (v.type === 'failover') io.out(`\n[${v.from} failed; restarting on ${v.to}]\n`);
    else if (v.type === 'done' && v.result)
      io.out(
        `\n[${v.result.provider}/${v.result.model}, ${v.result.usage.inputTokens}+${v.result.usage.outputTokens} tokens]\n`,
      );
  });
  if (failed) throw failed;
  return 0;
}
