/**
 * Audit log format v1 (spec: ./FORMAT.md). Pure: no I/O and no node-only APIs, so the
 * web admin can verify in the browser with the same code; hashing and signature checks are
 * injected (see ./crypto.ts for node's).
 *
 *   entry      {v:1, seq, ts, actor, action, subject, decision, detail, prev[, hash]}
 *   hash       hex SHA-256 of the UTF-8 bytes of RFC 8785 (JCS) of the entry without `hash`
 *   checkpoint {v:1, type:"checkpoint", seq, hash, ts, sig}  sig = Ed25519("talon-audit-v1:<seq>:<hash>")
 *   prune      {v:1, type:"prune", seq, hash, ts, sig}       sig = Ed25519("talon-audit-v1:prune:<seq>:<hash>")
 */
import { canonicalJson } from '../core/canonical.ts';
import type { AuditDecision } from './types.ts';

export const FORMAT_VERSION = 1;
/** `prev` of seq 1 */
export const GENESIS_PREV = '0'.repeat(64);
/** A checkpoint is written at least this often; verifiers reject longer unsigned stretches. */
export const MAX_CHECKPOINT_GAP = 256;
export const DECISIONS: readonly AuditDecision[] = ['allow', 'deny', 'ok', 'error', 'info'];

export interface AuditEntry {
  v: 1;
  seq: number;
  /** milliseconds since the Unix epoch, the device's clock */
  ts: number;
  actor: string;
  action: string;
  subject: string;
  decision: AuditDecision;
  /** a JSON object, `{}` when there is nothing to add */
  detail: Record<string, unknown>;
  /** hash of entry seq-1, GENESIS_PREV for seq 1 */
  prev: string;
  /** entryHash of this entry; stored and exported for convenience, always recomputed by verifiers */
  hash?: string;
}

interface SignedHead {
  v: 1;
  seq: number;
  /** entryHash of entry `seq` */
  hash: string;
  ts: number;
  /** base64 Ed25519 signature by the device key */
  sig: string;
}

/** Signs the chain up to and including entry `seq`. */
export interface Checkpoint extends SignedHead {
  type: 'checkpoint';
}

/** Entries up to and including `seq` were removed on purpose (retention); the rest chain onto `hash`. */
export interface PruneCheckpoint extends SignedHead {
  type: 'prune';
}

export type AnyCheckpoint = Checkpoint | PruneCheckpoint;
export type ExportLine = AuditEntry | AnyCheckpoint;

/** hex SHA-256 of a string's UTF-8 bytes */
export type Sha256Hex = (text: string) => string;
/** Ed25519 verification of an ASCII message against the 32-byte public key the verifier holds */
export type VerifySig = (message: string, sigBase64: string) => boolean;

/** RFC 8785 canonical JSON of the entry without its `hash` field: the bytes that are hashed. */
export function canonicalEntry(entry: AuditEntry): string {
  return fastCanonicalEntry(entry) ?? canonicalJson(withoutHash(entry));
}

/** RFC 8785 (JSON Canonicalization Scheme) through the reference implementation (runtime/core/canonical.ts). */
export { canonicalJson };

function withoutHash(entry: AuditEntry): Omit<AuditEntry, 'hash'> {
  const { hash: _omit, ...rest } = entry;
  return rest;
}

/**
 * The same bytes as canonicalJson for the common case, ~4× faster (verification's budget is
 * 100k entries/s): every v1 entry has the same nine members, whose UTF-16 order is fixed, and
 * `detail` is usually flat. Anything else (nested detail, a surrogate anywhere, an extra
 * member, a non-finite number) returns null and goes through the reference implementation,
 * so its errors and its output stay authoritative. A test compares the two on generated input.
 */
export function fastCanonicalEntry(e: AuditEntry): string | null {
  let n = 0;
  for (const k in e) {
    if (!Object.hasOwn(e, k)) return null;
    if (k !== 'hash') n++;
  }
  if (
    n !== 9 ||
    e.v !== 1 ||
    !plainString(e.action) ||
    !plainString(e.actor) ||
    !plainString(e.decision) ||
    !plainString(e.prev) ||
    !plainString(e.subject) ||
    !finite(e.seq) ||
    !finite(e.ts)
  )
    return null;
  const detail = flatCanonical(e.detail);
  if (detail === null) return null;
  return `{"action":${JSON.stringify(e.action)},"actor":${JSON.stringify(e.actor)},"decision":${JSON.stringify(e.decision)},"detail":${detail},"prev":${JSON.stringify(e.prev)},"seq":${JSON.stringify(e.seq)},"subject":${JSON.stringify(e.subject)},"ts":${JSON.stringify(e.ts)},"v":1}`;
}

const SURROGATE = /[\uD800-\uDFFF]/;
const plainString = (v: unknown): v is string => typeof v === 'string' && !SURROGATE.test(v);
const finite = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v);

/** a plain object of strings, finite numbers, booleans and nulls, or null when it is anything else */
function flatCanonical(o: unknown): string | null {
  if (typeof o !== 'object' || o === null || Array.isArray(o) || Object.getPrototypeOf(o) !== Object.prototype)
    return null;
  const keys = Object.keys(o).sort();
  let out = '{';
  for (let i = 0; i < keys.length; i++) {
    const k = keys[i]!;
    const v = (o as Record<string, unknown>)[k];
    if (!plainString(k)) return null;
    let text: string;
    if (typeof v === 'string') {
      if (SURROGATE.test(v)) return null;
      text = JSON.stringify(v);
    } else if (typeof v === 'number') {
      if (!Number.isFinite(v)) return null;
      text = JSON.stringify(v);
    } else if (typeof v === 'boolean') {
      text = v ? 'true' : 'false';
    } else if (v === null) {
      text = 'null';
    } else {
      return null;
    }
    out += `${i === 0 ? '' : ','}${JSON.stringify(k)}:${text}`;
  }
  return `${out}}`;
}

export function entryHash(entry: AuditEntry, sha256Hex: Sha256Hex): string {
  return sha256Hex(canonicalEntry(entry));
}

export function checkpointMessage(seq: number, hash: string): string {
  return `talon-audit-v1:${seq}:${hash}`;
}

export function pruneMessage(seq: number, hash: string): string {
  return `talon-audit-v1:prune:${seq}:${hash}`;
}

export function signedMessage(cp: AnyCheckpoint): string {
  return cp.type === 'prune' ? pruneMessage(cp.seq, cp.hash) : checkpointMessage(cp.seq, cp.hash);
}

const HEX64 = /^[0-9a-f]{64}$/;
const isSeq = (n: unknown): n is number => typeof n === 'number' && Number.isSafeInteger(n) && n >= 0;
const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** What is wrong with a parsed line or record as an entry, or null when it is a well-formed v1 entry. */
export function entryProblem(v: unknown): string | null {
  if (!isObject(v)) return 'not a JSON object';
  if (v.v !== FORMAT_VERSION) return `unknown format version ${JSON.stringify(v.v)}`;
  if (!isSeq(v.seq) || v.seq < 1) return 'seq is not a positive integer';
  if (typeof v.ts !== 'number' || !Number.isFinite(v.ts)) return 'ts is not a number';
  for (const f of ['actor', 'action', 'subject'] as const) if (typeof v[f] !== 'string') return `${f} is not a string`;
  if (!DECISIONS.includes(v.decision as AuditDecision))
    return `decision ${JSON.stringify(v.decision)} is not one of ${DECISIONS.join(', ')}`;
  if (!isObject(v.detail)) return 'detail is not an object';
  // prev and hash must equal computed hex digests, which verifiers compare: a type check is enough here
  if (typeof v.prev !== 'string') return 'prev is not a string';
  if (v.hash !== undefined && typeof v.hash !== 'string') return 'hash is not a string';
  for (const k of Object.keys(v)) if (!ENTRY_FIELDS.has(k)) return `unknown field ${JSON.stringify(k)}`;
  return null;
}

const ENTRY_FIELDS = new Set(['v', 'seq', 'ts', 'actor', 'action', 'subject', 'decision', 'detail', 'prev', 'hash']);
const CHECKPOINT_FIELDS = new Set(['v', 'type', 'seq', 'hash', 'ts', 'sig']);

/** What is wrong with a parsed value as a (prune) checkpoint, or null. */
export function checkpointProblem(v: unknown): string | null {
  if (!isObject(v)) return 'not a JSON object';
  if (v.v !== FORMAT_VERSION) return `unknown format version ${JSON.stringify(v.v)}`;
  if (v.type !== 'checkpoint' && v.type !== 'prune') return `unknown type ${JSON.stringify(v.type)}`;
  if (!isSeq(v.seq) || v.seq < 1) return 'seq is not a positive integer';
  if (typeof v.hash !== 'string' || !HEX64.test(v.hash)) return 'hash is not 64 lowercase hex digits';
  if (typeof v.ts !== 'number' || !Number.isFinite(v.ts)) return 'ts is not a number';
  if (typeof v.sig !== 'string' || !/^[A-Za-z0-9+/]{86}==$/.test(v.sig)) return 'sig is not a base64 64-byte signature';
  for (const k of Object.keys(v)) if (!CHECKPOINT_FIELDS.has(k)) return `unknown field ${JSON.stringify(k)}`;
  return null;
}

export const isCheckpointLine = (v: unknown): boolean => isObject(v) && 'type' in v;
