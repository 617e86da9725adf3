/**
 * `talon hands list|status|start|stop|restart|logs`: talks to the running daemon over its
 * REST API (see ../client.ts). Human output by default, `--json` for machines.
 */
import {
  parseSubcommand,
  printable,
  UsageError,
  type CommandSpec,
  type OptionSpec,
  type Io,
  type Parsed,
} from '../args.ts';
import { DaemonClient, defaultDataDir } from '../client.ts';
import { TalonError } from '../../core/errors.ts';
import { HAND_NAME_PATTERN } from '../../config/schema.ts';
import type { HandStatus, LogLine } from '../../supervisor/types.ts';

/** where the data folder is, and JSON output: shared by every command that reads a data folder */
export const DATA_OPTIONS: Record<string, OptionSpec> = {
  data: { type: 'string', short: 'd', value: 'DIR', description: 'data folder (default: TALON_DATA, else ./data)' },
  config: { type: 'string', short: 'c', value: 'FILE', description: 'find the data folder from this config file' },
  json: { type: 'boolean', description: 'print JSON' },
};
const common = DATA_OPTIONS;
const NAME = [{ name: 'NAME', required: true, description: "the Hand's name, as in the config" }];

export const spec: CommandSpec = {
  name: 'talon hands',
  summary: 'Manage the Hands of the running Talon daemon.',
  subcommands: [
    { name: 'list', summary: 'every Hand with its state, uptime, restarts, CPU, heap and last error' },
    { name: 'status', summary: 'one Hand in detail' },
    { name: 'start', summary: 'start a Hand' },
    { name: 'stop', summary: 'stop a Hand' },
    { name: 'restart', summary: 'restart a Hand' },
    { name: 'logs', summary: "a Hand's recent log lines; --follow to keep reading" },
  ],
  notes: 'Exit codes: 0 ok, 1 Talon not running or failed, 2 bad usage or a request Talon refused (unknown Hand...).',
};

const SUBSPECS: Record<string, CommandSpec> = {
  list: {
    name: 'talon hands list',
    summary: 'List every Hand with its state, uptime, restarts, CPU %, heap MB and last error.',
    options: common,
  },
  status: { name: 'talon hands status', summary: 'Show one Hand in detail.', positionals: NAME, options: common },
  start: {
    name: 'talon hands start',
    summary: 'Start a Hand; prints its state afterwards.',
    positionals: NAME,
    options: common,
  },
  stop: {
    name: 'talon hands stop',
    summary: 'Stop a Hand; prints its state afterwards.',
    positionals: NAME,
    options: common,
  },
  restart: {
    name: 'talon hands restart',
    summary: 'Restart a Hand; prints its state afterwards.',
    positionals: NAME,
    options: common,
  },
  logs: {
    name: 'talon hands logs',
    summary: "Print a Hand's recent log lines; with --follow keep printing new ones until Ctrl-C or the daemon stops.",
    positionals: NAME,
    options: {
      ...common,
      follow: { type: 'boolean', short: 'f', description: 'keep printing new lines' },
      lines: {
        type: 'string',
        short: 'n',
        value: 'N',
        description: 'how many recent lines (1-1000, the daemon keeps the last 1000; default 100)',
      },
    },
  },
};

const HAND_NAME = new RegExp(HAND_NAME_PATTERN);

export async function main(argv: string[], io: Io): Promise<number> {
  const picked = parseSubcommand(spec, SUBSPECS, argv, io);
  if (!picked) return 0;
  const { spec: s, args } = picked;
  const sub = { name: picked.name };
  const name = args.positionals[0];
  if (name !== undefined && !HAND_NAME.test(name)) {
    throw new UsageError(`"${printable(name.slice(0, 80))}" is not a Hand name (lowercase letters, digits and "-")`, s);
  }
  let lines = 100;
  if (args.values.lines !== undefined) {
    const v = String(args.values.lines);
    if (!/^\d+$/.test(v) || Number(v) < 1 || Number(v) > 1000)
      throw new UsageError(`--lines must be a whole number from 1 to 1000, got "${printable(v.slice(0, 20))}"`, s);
    lines = Number(v);
  }
  const client = DaemonClient.open(await dataDir(args, io));
  const json = args.values.json === true;
  const path = name === undefined ? '' : `/${encodeURIComponent(name)}`;

  switch (sub.name) {
    case 'list': {
      const body = await client.request<{ hands: HandStatus[] }>('GET', '/api/v1/hands');
      if (!Array.isArray(body?.hands))
        throw new TalonError('INTERNAL', 'the daemon\'s answer to GET /api/v1/hands has no "hands" list');
      io.out(json ? `${JSON.stringify(body, null, 2)}\n` : handsTable(body.hands, Date.now()));
      return 0;
    }
    case 'status': {
      const st = await client.request<HandStatus>('GET', `/api/v1/hands${path}`);
      io.out(json ? `${JSON.stringify(st, null, 2)}\n` : statusText(st, Date.now()));
      return 0;
    }
    case 'start':
    case 'stop':
    case 'restart': {
      const st = await client.request<HandStatus>('POST', `/api/v1/hands${path}/${sub.name}`);
      io.out(
        json
          ? `${JSON.stringify(st, null, 2)}\n`
          : `${printable(String(st.name ?? name))}: ${printable(String(st.state))}${st.lastError ? ` (${st.lastError.code}: ${printable(st.lastError.message)})` : ''}\n`,
      );
      return 0;
    }
    case 'logs': {
      const print = (l: unknown) => io.out(json ? `${JSON.stringify(l)}\n` : `${logText(l)}\n`);
      if (!args.values.follow) {
        const body = await client.request<{ lines: LogLine[] }>('GET', `/api/v1/hands${path}/logs?lines=${lines}`);
        if (!Array.isArray(body?.lines))
          throw new TalonError('INTERNAL', 'the daemon\'s answer to the logs request has no "lines" list');
        for (const l of body.lines) print(l);
        return 0;
      }
      const ac = new AbortController();
      const stop = () => ac.abort();
      process.once('SIGINT', stop);
      process.once('SIGTERM', stop);
      try {
        await client.stream(
          `/api/v1/hands${path}/logs?follow=1&lines=${lines}`,
          (data, event) => {
            let value: unknown;
            try {
              value = JSON.parse(data);
            } catch {
              value = data;
            }
            if (event === 'error') throw TalonError.from((value as { error?: unknown })?.error ?? value);
            print(value);
          },
          ac.signal,
        );
      } finally {
        process.off('SIGINT', stop);
        process.off('SIGTERM', stop);
      }
      return 0;
    }
    default:
      throw new UsageError(`unknown command "${sub.name}"`, spec);
  }
}

export async function dataDir(args: Parsed, io: Io): Promise<string> {
  const flag = args.values.data as string | undefined;
  const config = args.values.config as string | undefined;
  if (config === undefined) return defaultDataDir(flag, io.env, io.cwd);
  const { loadConfig } = await import('../../config/load.ts');
  return loadConfig({ file: config, dataDir: flag, env: io.env, cwd: io.cwd }).config.dataDir;
}

// ---------------------------------------------------------------------------------------
// human output

export function formatDuration(ms: number): string {
  if (!(ms > 0)) return '-';
  const s = Math.floor(ms / 1000);
  if (s < 60) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m${String(s % 60).padStart(2, '0')}s`;
  const h = Math.floor(m / 60);
  if (h < 24) return `${h}h${String(m % 60).padStart(2, '0')}m`;
  return `${Math.floor(h / 24)}d${String(h % 24).padStart(2, '0')}h`;
}

const num = (v: unknown, digits: number): string =>
  typeof v === 'number' && Number.isFinite(v) ? v.toFixed(digits) : '-';

function lastErrorText(st: HandStatus, max: number): string {
  if (!st.lastError) return '-';
  const t = printable(`${st.lastError.code}: ${st.lastError.message}`.replace(/\s+/g, ' '));
  return t.length > max ? `${t.slice(0, max - 1)}…` : t;
}

/** ` on demand`, ` ×2 of 1–4` (a pool's running workers): what the state alone does not say */
function modeText(h: HandStatus): string {
  const pool =
    h.instances && h.instances.max > 1 ? ` ×${h.instances.running} of ${h.instances.min}–${h.instances.max}` : '';
  return `${h.mode === 'on-demand' ? ' on demand' : ''}${pool}`;
}

export function handsTable(hands: HandStatus[], now: number): string {
  if (hands.length === 0) return 'no Hands configured\n';
  const rows = [
    ['NAME', 'STATE', 'UPTIME', 'RESTARTS', 'CPU %', 'HEAP MB', 'LAST ERROR'],
    ...hands.map((h) => [
      printable(String(h.name)),
      printable(String(h.state)) +
        (h.state === 'backoff' && typeof h.nextStartAt === 'number'
          ? ` (${formatDuration(Math.max(1000, h.nextStartAt - now))})`
          : '') +
        modeText(h),
      formatDuration(h.uptimeMs),
      String(h.restarts ?? '-'),
      typeof h.cpu === 'number' ? num(h.cpu * 100, 1) : '-',
      `${num(h.heapUsedMb, 1)}/${num(h.heapLimitMb, 0)}`,
      lastErrorText(h, 60),
    ]),
  ];
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((r) => r[c]!.length)));
  // numbers right-aligned, text left-aligned; the last column is not padded
  const right = new Set([2, 3, 4, 5]);
  return (
    rows
      .map((r) =>
        r
          .map((cell, c) =>
            c === r.length - 1 ? cell : right.has(c) ? cell.padStart(widths[c]!) : cell.padEnd(widths[c]!),
          )
          .join('  ')
          .trimEnd(),
      )
      .join('\n') + '\n'
  );
}

export function statusText(st: HandStatus, now: number): string {
  const rows: Array<[string, string]> = [
    ['name', printable(String(st.name))],
    ['module', printable(String(st.module))],
  ];
  if (st.id || st.version) rows.push(['hand', printable(`${st.id ?? '?'} ${st.version ?? ''}`.trim())]);
  if (st.description) rows.push(['description', printable(st.description)]);
  rows.push([
    'state',
    `${printable(String(st.state))}${typeof st.since === 'number' ? ` since ${new Date(st.since).toISOString()}` : ''}`,
  ]);
  if (st.state === 'backoff' && typeof st.nextStartAt === 'number')
    rows.push(['next start', `in ${formatDuration(Math.max(1000, st.nextStartAt - now))}`]);
  if (st.mode === 'on-demand' && st.onDemand)
    rows.push([
      'mode',
      `on demand: started by a task or a start, stopped after ${formatDuration(st.onDemand.idleStopMs)} idle${st.onDemand.armed ? '' : ' (disarmed by a stop: a start arms it)'}`,
    ]);
  if (st.instances)
    rows.push([
      'instances',
      `${st.instances.running} running (${st.instances.min}–${st.instances.max}), ${st.instances.inFlight} tasks in flight, ${st.instances.queued} queued`,
    ]);
  rows.push(
    ['uptime', formatDuration(st.uptimeMs)],
    ['restarts', String(st.restarts ?? '-')],
    ['cpu', typeof st.cpu === 'number' ? `${num(st.cpu * 100, 1)} % of one core` : '-'],
    ['heap', `${num(st.heapUsedMb, 1)} of ${num(st.heapLimitMb, 0)} MB`],
  );
  if (typeof st.externalMb === 'number')
    rows.push([
      'outside heap',
      `${num(st.externalMb, 1)} of ${num(st.externalLimitMb ?? 0, 0)} MB (Buffers, ArrayBuffers)`,
    ]);
  if (st.messages) {
    const m = st.messages as unknown as Record<string, unknown>;
    rows.push([
      'messages',
      Object.entries(m)
        .filter(([, v]) => typeof v === 'number')
        .map(([k, v]) => `${k} ${String(v)}`)
        .join(', '),
    ]);
  }
  if (typeof st.handlerErrors === 'number') rows.push(['handler errors', String(st.handlerErrors)]);
  if (typeof st.logsDropped === 'number' && st.logsDropped > 0) rows.push(['logs dropped', String(st.logsDropped)]);
  if (typeof st.truncated === 'number' && st.truncated > 0) rows.push(['fields cut', String(st.truncated)]);
  if (typeof st.auditSuppressed === 'number' && st.auditSuppressed > 0)
    rows.push(['audit held back', String(st.auditSuppressed)]);
  rows.push(['last error', lastErrorText(st, 400)]);
  const w = Math.max(...rows.map(([k]) => k.length));
  return rows.map(([k, v]) => `${`${k}:`.padEnd(w + 1)}  ${v}`).join('\n') + '\n';
}

export function logText(l: unknown): string {
  const line = l as Partial<LogLine>;
  if (typeof line !== 'object' || line === null || typeof line.msg !== 'string')
    return printable(typeof l === 'string' ? l : JSON.stringify(l));
  const ts = typeof line.ts === 'number' ? new Date(line.ts).toISOString() : '-';
  const data = line.data && Object.keys(line.data).length > 0 ? ` ${JSON.stringify(line.data)}` : '';
  return printable(`${ts} ${String(line.level ?? '-').padEnd(5)} [${String(line.hand ?? '-')}] ${line.msg}${data}`);
}
