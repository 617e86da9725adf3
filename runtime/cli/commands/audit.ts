/**
 * `talon audit tail|verify|export|verify-file`. With Talon running, tail/verify/export go
 * through its REST API (the store is its); with Talon stopped, they open the data folder
 * directly and only read. verify-file needs no data folder at all.
 * Exit codes: 0 ok, 1 the log does not verify (or Talon failed), 2 bad usage.
 */
import { createWriteStream, existsSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { finished } from 'node:stream/promises';
import { parseSubcommand, plural, printable, UsageError, type CommandSpec, type Io, type Parsed } from '../args.ts';
import { DaemonClient } from '../client.ts';
import { dataDir, DATA_OPTIONS } from './hands.ts';
import { TalonError } from '../../core/errors.ts';
import type { AuditEntry, Checkpoint } from '../../audit/format.ts';
import type { VerifyReport } from '../../audit/verifier.ts';
import type { AuditChain, AuditQuery, AuditPage } from '../../audit/chain.ts';

const where = DATA_OPTIONS;

export const spec: CommandSpec = {
  name: 'talon audit',
  summary: 'Read, verify and export the signed audit log.',
  subcommands: [
    { name: 'tail', summary: 'the newest entries, optionally filtered' },
    { name: 'verify', summary: 'check every hash, link and signature; exit 1 naming the first broken seq' },
    { name: 'export', summary: 'write the log as JSON Lines (entries and checkpoints), for verify-file elsewhere' },
    { name: 'verify-file', summary: 'verify an exported file against the device public key, on any machine' },
  ],
  notes:
    'The format is documented in runtime/audit/FORMAT.md. Exit codes: 0 ok, 1 does not verify or Talon failed, 2 bad usage.',
};

const SUBSPECS: Record<string, CommandSpec> = {
  tail: {
    name: 'talon audit tail',
    summary: 'Print the newest entries (oldest of them first).',
    options: {
      ...where,
      lines: { type: 'string', short: 'n', value: 'N', description: 'how many entries (1-1000, default 20)' },
      actor: { type: 'string', value: 'ACTOR', description: 'only this actor (kernel, cli, hand:<name>, mqtt…)' },
      action: { type: 'string', value: 'ACTION', description: 'only this action, or a prefix: hand.*' },
      decision: { type: 'string', value: 'D[,D]', description: 'only these decisions: allow, deny, ok, error, info' },
    },
  },
  verify: {
    name: 'talon audit verify',
    summary: 'Verify the whole chain from its first entry (or from the last verified checkpoint with --quick).',
    options: {
      ...where,
      quick: { type: 'boolean', description: 'start from the last verified checkpoint instead of the first entry' },
      against: {
        type: 'string',
        value: 'HEAD_JSON',
        description:
          'a head seen elsewhere (the retained talon/<id>/audit/head), as JSON or a file holding it: the log must still contain it',
      },
    },
  },
  export: {
    name: 'talon audit export',
    summary: 'Write the log as JSON Lines to FILE (written to FILE.partial, renamed when complete).',
    options: {
      ...where,
      out: { type: 'string', short: 'o', value: 'FILE', description: 'where to write (required)' },
      since: {
        type: 'string',
        value: 'SEQ',
        description: 'from this seq on (the file starts with the checkpoint before it, so it verifies alone)',
      },
    },
  },
  'verify-file': {
    name: 'talon audit verify-file',
    summary: "Verify an exported JSON Lines file against the device's public key; needs no data folder.",
    positionals: [{ name: 'FILE', required: true, description: 'the export' }],
    options: {
      'public-key': {
        type: 'string',
        value: 'KEY',
        description:
          'base64 or hex Ed25519 public key (`talon keys show`), or a file holding it or device-key.json (required)',
      },
      against: {
        type: 'string',
        value: 'HEAD_JSON',
        description: 'a head seen elsewhere that the file must contain (JSON or a file)',
      },
      json: { type: 'boolean', description: 'print the report as JSON' },
    },
  },
};

export async function main(argv: string[], io: Io): Promise<number> {
  const picked = parseSubcommand(spec, SUBSPECS, argv, io);
  if (!picked) return 0;
  const { spec: s, args } = picked;
  const sub = { name: picked.name };
  switch (sub.name) {
    case 'tail':
      return tail(args, io, s);
    case 'verify':
      return verify(args, io);
    case 'export':
      return exportLog(args, io, s);
    default:
      return verifyFileCmd(args, io, s);
  }
}

// ---------------------------------------------------------------------------------------
// where the log is: the running daemon, or the data folder read directly

type Target = { daemon: DaemonClient } | { dir: string };

async function target(args: Parsed, io: Io): Promise<Target> {
  const dir = await dataDir(args, io);
  try {
    return { daemon: DaemonClient.open(dir) };
  } catch (err) {
    if (err instanceof TalonError && err.code === 'NOT_RUNNING') return { dir };
    throw err;
  }
}

/** Opens a stopped Talon's log to read it; never starts the chain, so nothing is written to it. */
async function withLog<T>(dir: string, fn: (log: AuditChain) => Promise<T>): Promise<T> {
  const [{ Store }, { DeviceKey, DEVICE_KEY_FILE }, { AuditChain }] = await Promise.all([
    import('../../store/store.ts'),
    import('../../secrets/device-key.ts'),
    import('../../audit/chain.ts'),
  ]);
  if (!existsSync(join(dir, DEVICE_KEY_FILE)) || !existsSync(join(dir, 'db'))) {
    throw new TalonError('NOT_FOUND', `no Talon data in ${dir} (no device key or store); pass --data`);
  }
  const store = await Store.open(dir);
  try {
    return await fn(new AuditChain(store, DeviceKey.loadOrCreate(dir), { verifyAtStart: false }));
  } finally {
    await store.close();
  }
}

function readHead(text: string | undefined): Promise<Checkpoint | undefined> {
  if (text === undefined) return Promise.resolve(undefined);
  return import('../../audit/verify-file.ts').then(({ parseHead }) =>
    parseHead(existsSync(text) ? readFileSync(text, 'utf8') : text),
  );
}

// ---------------------------------------------------------------------------------------

async function tail(args: Parsed, io: Io, s: CommandSpec): Promise<number> {
  const n = args.values.lines === undefined ? 20 : Number(args.values.lines);
  if (!Number.isInteger(n) || n < 1 || n > 1000)
    throw new UsageError('--lines must be a whole number from 1 to 1000', s);
  const q: AuditQuery = { limit: n, order: 'desc' };
  const qs = new URLSearchParams({ limit: String(n), order: 'desc' });
  for (const k of ['actor', 'action', 'decision'] as const) {
    const v = args.values[k] as string | undefined;
    if (v === undefined) continue;
    qs.set(k, v);
    if (k === 'decision') q.decision = v.split(',') as AuditQuery['decision'];
    else q[k] = v;
  }
  const t = await target(args, io);
  const page: AuditPage =
    'daemon' in t
      ? await t.daemon.request<AuditPage>('GET', `/api/v1/audit?${qs}`)
      : await withLog(t.dir, (log) => log.query(q));
  const items = [...page.items].reverse();
  if (args.values.json) {
    for (const e of items) io.out(`${JSON.stringify(e)}\n`);
  } else {
    for (const e of items) io.out(`${entryText(e)}\n`);
  }
  return 0;
}

export function entryText(e: AuditEntry): string {
  const detail = e.detail && Object.keys(e.detail).length > 0 ? ` ${JSON.stringify(e.detail)}` : '';
  return printable(
    `${String(e.seq).padStart(7)} ${new Date(e.ts).toISOString()} ${e.decision.padEnd(5)} ${e.actor} ${e.action} ${e.subject}${detail}`,
  );
}

async function verify(args: Parsed, io: Io): Promise<number> {
  const against = await readHead(args.values.against as string | undefined);
  const from = args.values.quick ? 'checkpoint' : 'start';
  const t = await target(args, io);
  const report =
    'daemon' in t
      ? await t.daemon.request<VerifyReport>('POST', '/api/v1/audit/verify', { from, ...(against ? { against } : {}) })
      : await withLog(t.dir, (log) => log.verify({ from, ...(against ? { against } : {}) }));
  return printReport(report, io, args.values.json === true);
}

async function exportLog(args: Parsed, io: Io, s: CommandSpec): Promise<number> {
  const out = args.values.out as string | undefined;
  if (out === undefined) throw new UsageError('--out FILE is required', s);
  let since: number | undefined;
  if (args.values.since !== undefined) {
    since = Number(args.values.since);
    if (!Number.isSafeInteger(since) || since < 1)
      throw new UsageError('--since must be a seq (a whole number from 1)', s);
  }
  const t = await target(args, io);
  const partial = `${out}.partial`;
  const file = createWriteStream(partial, { mode: 0o600 });
  try {
    if ('daemon' in t) {
      await t.daemon.download(`/api/v1/audit/export${since !== undefined ? `?since=${since}` : ''}`, file);
    } else {
      await withLog(t.dir, (log) => log.export(file, since !== undefined ? { since } : {}));
      file.end();
      await finished(file);
    }
    renameSync(partial, out);
  } catch (err) {
    file.destroy();
    rmSync(partial, { force: true });
    throw err;
  }
  io.out(`wrote ${out}\n`);
  return 0;
}

async function verifyFileCmd(args: Parsed, io: Io, s: CommandSpec): Promise<number> {
  const key = args.values['public-key'] as string | undefined;
  if (key === undefined) throw new UsageError('--public-key KEY is required (see `talon keys show` on the device)', s);
  const against = await readHead(args.values.against as string | undefined);
  const { verifyFile } = await import('../../audit/verify-file.ts');
  const report = await verifyFile(args.positionals[0]!, { publicKey: key, ...(against ? { against } : {}) });
  return printReport(report, io, args.values.json === true);
}

export function printReport(r: VerifyReport, io: Io, json: boolean): number {
  if (json) {
    io.out(`${JSON.stringify(r, null, 2)}\n`);
  } else if (r.ok) {
    const cp = r.lastCheckpoint ? `, signed up to seq ${r.lastCheckpoint.seq}` : '';
    const ag =
      r.against === 'matched'
        ? '; the head given with --against is in this log'
        : r.against === 'pruned'
          ? '; the head given with --against is older than the pruned floor'
          : '';
    io.out(
      `OK: ${plural(r.checked, 'entry', 'entries')} verified (seq ${r.firstSeq ?? '-'}..${r.lastSeq ?? '-'}, from ${r.anchor ?? 'nothing'})${cp}${ag}\n`,
    );
  } else {
    const at = r.line !== undefined ? ` (line ${r.line})` : '';
    io.err(
      `BROKEN at seq ${r.firstBrokenSeq ?? '?'}${at}: ${r.kind ?? 'problem'}: ${r.reason ?? ''}\n` +
        `${plural(r.checked, 'entry', 'entries')} verified before it${r.lastCheckpoint ? `; last good signed checkpoint at seq ${r.lastCheckpoint.seq}` : ''}\n`,
    );
  }
  return r.ok ? 0 : 1;
}
