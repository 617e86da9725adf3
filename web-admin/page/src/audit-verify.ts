/**
 * Verifies an exported audit log (JSON Lines, runtime/audit/FORMAT.md) in the browser:
 * the device's own state machine (runtime/audit/verifier.ts, pure) fed line by line exactly
 * as `talon audit verify-file` feeds it, with SHA-256 from @noble/hashes (crypto.subtle is
 * missing on plain-http LAN origins, and is async) and Ed25519 from tweetnacl.
 * Pure: no DOM, so node:test runs it against real exports.
 */
import nacl from 'tweetnacl';
import { sha256 } from '@noble/hashes/sha2.js';
import { bytesToHex } from '@noble/hashes/utils.js';
import { isCheckpointLine, type Checkpoint, type Sha256Hex, type VerifySig } from '../../../runtime/audit/format.ts';
import { ChainVerifier, type VerifyReport } from '../../../runtime/audit/verifier.ts';

export type { VerifyReport } from '../../../runtime/audit/verifier.ts';

/** a line longer than this is not an export (as verify-file.ts) */
export const MAX_LINE_CHARS = 1 << 20;

const utf8 = new TextEncoder();

export const sha256Hex: Sha256Hex = (text) => bytesToHex(sha256(utf8.encode(text)));

export function base64ToBytes(text: string): Uint8Array {
  const bin = atob(text.trim().replace(/-/g, '+').replace(/_/g, '/'));
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

/** The 32-byte Ed25519 public key from base64 (GET /api/v1/system → publicKey) or hex; throws when it is neither. */
export function parsePublicKey(text: string): Uint8Array {
  const t = text.trim();
  let key: Uint8Array | null = null;
  if (/^[0-9a-fA-F]{64}$/.test(t)) {
    key = new Uint8Array(32);
    for (let i = 0; i < 32; i++) key[i] = parseInt(t.slice(i * 2, i * 2 + 2), 16);
  } else if (/^[A-Za-z0-9+/_-]{43}=?$/.test(t)) {
    key = base64ToBytes(t.length === 43 ? `${t}=` : t);
  }
  if (!key || key.length !== 32)
    throw new Error('the device public key must be 32 bytes of Ed25519 key in base64 or hex');
  return key;
}

export function ed25519Verifier(publicKey: Uint8Array): VerifySig {
  return (message, sigBase64) => {
    let sig: Uint8Array;
    try {
      sig = base64ToBytes(sigBase64);
    } catch {
      return false;
    }
    if (sig.length !== 64) return false;
    return nacl.sign.detached.verify(utf8.encode(message), sig, publicKey);
  };
}

export interface VerifyTextOptions {
  /** the device public key, base64 or hex */
  publicKey: string;
  /** a head seen elsewhere that the export must contain */
  against?: Checkpoint;
}

/**
 * Verifies the whole text of an export. Same rules, same first broken seq, kind, line and
 * reason as runtime/audit/verify-file.ts on the same bytes.
 */
export function verifyExportText(text: string, opts: VerifyTextOptions): VerifyReport {
  const v = new ChainVerifier({
    sha256Hex,
    verifySig: ed25519Verifier(parsePublicKey(opts.publicKey)),
    requireSealed: true,
    ...(opts.against ? { against: opts.against } : {}),
  });
  let line = 0;
  let sawLine = false;
  const feed = (raw: string, ended: boolean): boolean => {
    line++;
    if (raw.trim() === '') return true;
    sawLine = true;
    if (raw.length > MAX_LINE_CHARS) {
      return v.corrupt({ line }, `line ${line} is longer than ${MAX_LINE_CHARS} bytes: not an audit export`);
    }
    let value: unknown;
    try {
      value = JSON.parse(raw);
    } catch {
      return v.corrupt(
        { line },
        ended ? `line ${line} is not JSON` : `line ${line} is not JSON and has no line end: the export was cut short`,
      );
    }
    return isCheckpointLine(value) ? v.checkpoint(value, { line }) : v.entry(value, { line });
  };
  let from = 0;
  let nl: number;
  let going = true;
  while (going && (nl = text.indexOf('\n', from)) >= 0) {
    const raw = text.slice(from, text.charCodeAt(nl - 1) === 13 ? nl - 1 : nl);
    from = nl + 1;
    going = feed(raw, true);
  }
  if (going && !v.broken && from < text.length) feed(text.slice(from), false);
  const report = v.end();
  if (report.ok && !sawLine) {
    return {
      ...report,
      ok: false,
      kind: 'format',
      reason: 'the file is empty: an export holds at least one checkpoint',
    };
  }
  return report;
}

/** One line a person reads: OK with counts, or where it breaks and why. */
export function describeReport(r: VerifyReport): string {
  if (r.ok) {
    const cp = r.lastCheckpoint ? `, signed up to seq ${r.lastCheckpoint.seq}` : '';
    const range = r.firstSeq === null ? '' : ` (seq ${r.firstSeq}..${r.lastSeq})`;
    return `OK: ${r.checked} entries verified${range}${cp}`;
  }
  return `Broken at seq ${r.firstBrokenSeq ?? '?'}${r.kind ? ` (${r.kind})` : ''}: ${r.reason ?? 'unknown problem'}`;
}
