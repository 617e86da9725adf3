/**
 * `talon audit verify-file FILE --public-key KEY`: verifies an exported JSON Lines file on
 * any machine, with no data folder. Streams the file (one line in memory at a time) through
 * the same ChainVerifier the device uses; problems name the line and the seq.
 */
import { createReadStream, existsSync, readFileSync, statSync } from 'node:fs';
import { TalonError } from '../core/errors.ts';
import { checkpointProblem, isCheckpointLine, type Checkpoint } from './format.ts';
import { ChainVerifier, type VerifyReport } from './verifier.ts';
import { ed25519Verifier, sha256Hex } from './crypto.ts';

export type { VerifyReport } from './verifier.ts';

/** a line longer than this is not an export */
export const MAX_LINE_BYTES = 1 << 20;

export interface VerifyFileOptions {
  /** base64 or hex of the 32-byte Ed25519 public key, or a path to device-key.json or to a file holding the key */
  publicKey: string;
  /** a head seen elsewhere (the retained MQTT head) that the file must contain */
  against?: Checkpoint;
}

export async function verifyFile(file: string, opts: VerifyFileOptions): Promise<VerifyReport> {
  const key = loadPublicKey(opts.publicKey);
  if (!existsSync(file) || !statSync(file).isFile()) throw new TalonError('USAGE', `${file} is not a file`);
  const v = new ChainVerifier({
    sha256Hex,
    verifySig: ed25519Verifier(key),
    requireSealed: true,
    ...(opts.against ? { against: opts.against } : {}),
  });
  let line = 0;
  let sawLine = false;
  let rest = '';
  const feed = (text: string, ended: boolean): boolean => {
    line++;
    if (text.trim() === '') return true;
    sawLine = true;
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch {
      return v.corrupt(
        { line },
        ended ? `line ${line} is not JSON` : `line ${line} is not JSON and has no line end: the export was cut short`,
      );
    }
    return isCheckpointLine(value) ? v.checkpoint(value, { line }) : v.entry(value, { line });
  };
  const stream = createReadStream(file, { encoding: 'utf8', highWaterMark: 1 << 20 });
  try {
    outer: for await (const chunk of stream as AsyncIterable<string>) {
      rest += chunk;
      let from = 0;
      let nl: number;
      while ((nl = rest.indexOf('\n', from)) >= 0) {
        const text = rest.slice(from, rest.charCodeAt(nl - 1) === 13 ? nl - 1 : nl);
        from = nl + 1;
        if (!feed(text, true)) break outer;
      }
      rest = rest.slice(from);
      if (rest.length > MAX_LINE_BYTES) {
        v.corrupt({ line: line + 1 }, `line ${line + 1} is longer than ${MAX_LINE_BYTES} bytes: not an audit export`);
        break;
      }
    }
    if (!v.broken && rest !== '') feed(rest, false);
  } finally {
    stream.destroy();
  }
  const report = v.end();
  if (report.ok && !sawLine) {
    return {
      ...report,
      ok: false,
      kind: 'format',
      reason: `${file} is empty: an export holds at least one checkpoint`,
    };
  }
  return report;
}

/**
 * The public key from what a person has at hand: base64 or hex of the 32 bytes (`talon keys
 * show`), device-key.json (tweetnacl's format: only `publicKey` is read), or a file holding
 * either.
 */
export function loadPublicKey(spec: string): Buffer {
  let text = spec.trim();
  if (existsSync(spec)) {
    text = readFileSync(spec, 'utf8').trim();
    if (text.startsWith('{')) {
      let parsed: { publicKey?: unknown };
      try {
        parsed = JSON.parse(text) as { publicKey?: unknown };
      } catch {
        throw new TalonError('USAGE', `${spec} is neither a key nor valid JSON`);
      }
      if (typeof parsed.publicKey !== 'string') throw new TalonError('USAGE', `${spec} has no "publicKey"`);
      text = parsed.publicKey.trim();
    }
  }
  const key = /^[0-9a-fA-F]{64}$/.test(text)
    ? Buffer.from(text, 'hex')
    : /^[A-Za-z0-9+/_-]{43}=?$/.test(text)
      ? Buffer.from(text, 'base64')
      : null;
  if (!key || key.length !== 32) {
    throw new TalonError(
      'USAGE',
      `the public key must be the 32-byte Ed25519 key in base64 or hex (see \`talon keys show\`), or a path to device-key.json; got ${JSON.stringify(spec.length > 80 ? `${spec.slice(0, 80)}…` : spec)}`,
    );
  }
  return key;
}

/** A head given on the command line (`--against HEAD_JSON`, as published on talon/<id>/audit/head). */
export function parseHead(text: string): Checkpoint {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new TalonError(
      'USAGE',
      'the head to compare against is not JSON; pass the checkpoint published on talon/<deviceId>/audit/head',
    );
  }
  const problem = checkpointProblem(value);
  if (problem || (value as Checkpoint).type !== 'checkpoint') {
    throw new TalonError(
      'USAGE',
      `the head to compare against is not a checkpoint: ${problem ?? `type ${(value as Checkpoint).type}`}`,
    );
  }
  return value as Checkpoint;
}
