/**
 * The one verification state machine, fed in sequence order by a source (the LevelDB chain,
 * an exported JSONL file, later the browser). Constant memory: it keeps the previous hash,
 * the last good checkpoint and counters, never the entries. It stops at the first problem
 * and reports the first sequence number that can no longer be trusted and why.
 * Pure, like ./format.ts: hashing and signature checks are injected.
 */
import {
  GENESIS_PREV,
  MAX_CHECKPOINT_GAP,
  checkpointProblem,
  entryHash,
  entryProblem,
  signedMessage,
  type AnyCheckpoint,
  type AuditEntry,
  type Checkpoint,
  type Sha256Hex,
  type VerifySig,
} from './format.ts';

export type ProblemKind =
  /** a record or line that is not JSON */
  | 'corrupt'
  /** JSON, but not a v1 entry or checkpoint */
  | 'format'
  /** an entry whose content does not hash to its recorded hash */
  | 'edited'
  /** an entry whose prev is not the hash of the entry before it */
  | 'chain'
  /** sequence numbers missing */
  | 'missing'
  /** sequence numbers out of order or repeated */
  | 'order'
  /** the log does not start at seq 1 and has no signed prune checkpoint in front */
  | 'anchor'
  /** a checkpoint whose hash is not the hash of its entry */
  | 'checkpoint'
  /** a checkpoint whose signature does not verify with the key */
  | 'signature'
  /** more than MAX_CHECKPOINT_GAP entries without a checkpoint */
  | 'missing-checkpoint'
  /** entries after the last checkpoint: the tail was truncated, or power was lost before the next checkpoint */
  | 'unsigned-tail'
  /** the head seen elsewhere (--against) is not in this log */
  | 'against';

export interface VerifyReport {
  ok: boolean;
  /** entries whose hash and link were checked */
  checked: number;
  /** first and last entry seq seen */
  firstSeq: number | null;
  lastSeq: number | null;
  /** what the first entry chained onto: seq 1's zeros, a prune checkpoint, a checkpoint (partial export), an earlier verification */
  anchor: 'genesis' | 'prune' | 'checkpoint' | 'resume' | null;
  /** the newest checkpoint whose signature and hash verified */
  lastCheckpoint: AnyCheckpoint | null;
  /** the first seq that can no longer be trusted */
  firstBrokenSeq?: number;
  kind?: ProblemKind;
  reason?: string;
  /** 1-based line of an exported file where the problem was found */
  line?: number;
  /** with `against`: whether that head was found in this log, or is older than what is left after pruning */
  against?: 'matched' | 'pruned';
}

export interface VerifierOptions {
  sha256Hex: Sha256Hex;
  verifySig: VerifySig;
  /** a head seen elsewhere that must be in this log with the same hash */
  against?: Checkpoint;
  /** an unsigned tail is an error (exports, a stopped device); default true */
  requireSealed?: boolean;
}

export interface Where {
  /** the seq a store keyed the record under */
  key?: number;
  /** 1-based line of a file */
  line?: number;
}

export class ChainVerifier {
  #o: VerifierOptions;
  #r: VerifyReport = { ok: true, checked: 0, firstSeq: null, lastSeq: null, anchor: null, lastCheckpoint: null };
  /** hash of the last entry, or of the anchor */
  #prev: string | null = null;
  /** seq of the last signed point: checkpoint, prune or genesis (0) */
  #signedSeq = 0;
  #line: number | undefined;

  constructor(opts: VerifierOptions) {
    this.#o = opts;
    const a = opts.against;
    if (a && (checkpointProblem(a) !== null || a.type !== 'checkpoint' || !opts.verifySig(signedMessage(a), a.sig))) {
      this.#fail(
        a.seq,
        'against',
        `the head given to compare against (seq ${a.seq}) is not a checkpoint signed by this key`,
      );
    }
  }

  get broken(): boolean {
    return !this.#r.ok;
  }

  /** hash of the last entry accepted */
  get head(): { seq: number; hash: string } | null {
    return this.#r.lastSeq === null || this.#prev === null ? null : { seq: this.#r.lastSeq, hash: this.#prev };
  }

  /**
   * Start after a point the caller has already verified (an earlier run's checkpoint, whose
   * entry the caller re-hashed): entries continue at cp.seq + 1.
   */
  resume(cp: AnyCheckpoint): void {
    this.#prev = cp.hash;
    this.#signedSeq = cp.seq;
    this.#r.anchor = 'resume';
    this.#r.lastCheckpoint = cp;
    this.#r.lastSeq = cp.seq;
  }

  /**
   * For a head seen elsewhere that lies before where this run starts (resume): the caller
   * re-hashed the stored entry at `against.seq` (null: not there).
   */
  againstEarlier(hash: string | null, pruned: boolean): boolean {
    const a = this.#o.against;
    if (!a || !this.#r.ok) return this.#r.ok;
    if (pruned) {
      this.#r.against = 'pruned';
      return true;
    }
    if (hash === null)
      return this.#fail(a.seq, 'against', `entry ${a.seq}, the head seen elsewhere, is missing from this log`);
    if (hash !== a.hash)
      return this.#fail(
        a.seq,
        'against',
        `entry ${a.seq} differs from the head seen elsewhere (${short(a.hash)}, here ${short(hash)}): the log was rewritten`,
      );
    this.#r.against = 'matched';
    return true;
  }

  /** A record that could not be parsed as JSON. */
  corrupt(where: Where, what: string): false {
    this.#line = where.line;
    return this.#fail(where.key ?? this.#expected(), 'corrupt', what);
  }

  entry(value: unknown, where: Where = {}): boolean {
    if (!this.#r.ok) return false;
    this.#line = where.line;
    const problem = entryProblem(value);
    const e = value as AuditEntry;
    const seq = typeof e?.seq === 'number' ? e.seq : where.key;
    if (problem) return this.#fail(seq ?? this.#expected(), 'format', `entry ${seq ?? '?'} is malformed: ${problem}`);
    if (where.key !== undefined && where.key !== e.seq) {
      return this.#fail(
        Math.min(where.key, e.seq),
        'order',
        `the record stored as seq ${where.key} holds seq ${e.seq} (entries moved or swapped)`,
      );
    }
    if (this.#prev === null) {
      if (e.seq !== 1) {
        return this.#fail(
          1,
          'anchor',
          `the log starts at seq ${e.seq} without a signed prune checkpoint before it: entries 1..${e.seq - 1} were removed`,
        );
      }
      this.#prev = GENESIS_PREV;
      this.#r.anchor = 'genesis';
    }
    const expected = this.#expected();
    if (e.seq > expected) {
      return this.#fail(
        expected,
        'missing',
        expected === e.seq - 1
          ? `entry ${expected} is missing (found ${e.seq} after ${expected - 1})`
          : `entries ${expected}..${e.seq - 1} are missing (found ${e.seq} after ${expected - 1})`,
      );
    }
    if (e.seq < expected) {
      return this.#fail(e.seq, 'order', `entry ${e.seq} appears after entry ${expected - 1} (reordered or repeated)`);
    }
    let hash: string;
    try {
      hash = entryHash(e, this.#o.sha256Hex);
    } catch (err) {
      return this.#fail(e.seq, 'format', `entry ${e.seq} cannot be canonicalised: ${(err as Error).message}`);
    }
    if (e.hash !== undefined && e.hash !== hash) {
      return this.#fail(
        e.seq,
        'edited',
        `entry ${e.seq} was changed: its content hashes to ${short(hash)}, not to its recorded hash ${short(e.hash)}`,
      );
    }
    if (e.prev !== this.#prev) {
      return this.#fail(
        e.seq,
        'chain',
        e.seq === 1
          ? `entry 1 has prev ${short(e.prev)} instead of 64 zeros`
          : `entry ${e.seq} does not chain onto entry ${e.seq - 1}: its prev is ${short(e.prev)}, entry ${e.seq - 1} hashes to ${short(this.#prev)} (one of them was changed)`,
      );
    }
    if (e.seq - this.#signedSeq > MAX_CHECKPOINT_GAP) {
      return this.#fail(
        this.#signedSeq + 1,
        'missing-checkpoint',
        `missing checkpoint: no checkpoint signs entries ${this.#signedSeq + 1}..${e.seq} (one is written at least every ${MAX_CHECKPOINT_GAP} entries)`,
      );
    }
    this.#prev = hash;
    this.#r.firstSeq ??= e.seq;
    this.#r.lastSeq = e.seq;
    this.#r.checked++;
    if (this.#o.against?.seq === e.seq) {
      if (this.#o.against.hash !== hash) {
        return this.#fail(
          e.seq,
          'against',
          `entry ${e.seq} differs from the head seen elsewhere (${short(this.#o.against.hash)}, here ${short(hash)}): the log was rewritten`,
        );
      }
      this.#r.against = 'matched';
    }
    return true;
  }

  checkpoint(value: unknown, where: Where = {}): boolean {
    if (!this.#r.ok) return false;
    this.#line = where.line;
    const problem = checkpointProblem(value);
    const cp = value as AnyCheckpoint;
    if (problem) {
      const seq = typeof cp?.seq === 'number' ? cp.seq : where.key;
      return this.#fail(seq ?? this.#expected(), 'format', `checkpoint ${seq ?? '?'} is malformed: ${problem}`);
    }
    if (where.key !== undefined && where.key !== cp.seq) {
      return this.#fail(
        Math.min(where.key, cp.seq),
        'order',
        `the checkpoint stored as seq ${where.key} is for seq ${cp.seq} (moved or replayed)`,
      );
    }
    const goodSig = this.#o.verifySig(signedMessage(cp), cp.sig);
    if (this.#prev === null) {
      // an anchor: the first line of an export after pruning, or of a partial export
      if (!goodSig) {
        return this.#fail(
          1,
          'signature',
          `the ${cp.type} at seq ${cp.seq} the log starts from is not signed by this key (wrong key, or forged)`,
        );
      }
      this.#prev = cp.hash;
      this.#signedSeq = cp.seq;
      this.#r.anchor = cp.type;
      this.#r.lastCheckpoint = cp;
      this.#r.lastSeq = cp.seq;
      if (this.#o.against && this.#o.against.seq <= cp.seq) {
        if (this.#o.against.seq === cp.seq && this.#o.against.hash !== cp.hash) {
          return this.#fail(
            cp.seq,
            'against',
            `the ${cp.type} at seq ${cp.seq} differs from the head seen elsewhere: the log was rewritten`,
          );
        }
        this.#r.against = this.#o.against.seq === cp.seq ? 'matched' : 'pruned';
      }
      return true;
    }
    const last = this.#r.lastSeq ?? 0;
    if (cp.seq > last) {
      return this.#fail(
        last + 1,
        'missing',
        `a checkpoint for seq ${cp.seq} follows entry ${last}: entries ${last + 1}..${cp.seq} are missing (truncated)`,
      );
    }
    if (cp.seq < last) {
      return this.#fail(
        cp.seq,
        'order',
        `a checkpoint for seq ${cp.seq} appears after entry ${last} (reordered or replayed)`,
      );
    }
    if (cp.hash !== this.#prev) {
      return this.#fail(
        this.#signedSeq + 1,
        'checkpoint',
        `the checkpoint at seq ${cp.seq} signs ${short(cp.hash)} but entry ${cp.seq} hashes to ${short(this.#prev)}: entries ${this.#signedSeq + 1}..${cp.seq} were changed, or the checkpoint was replayed from another log`,
      );
    }
    if (!goodSig) {
      return this.#fail(
        this.#signedSeq + 1,
        'signature',
        `the checkpoint at seq ${cp.seq} is not signed by this key (wrong key, or the log was rewritten and re-signed): entries ${this.#signedSeq + 1}..${cp.seq} are not vouched for`,
      );
    }
    this.#signedSeq = cp.seq;
    this.#r.lastCheckpoint = cp;
    return true;
  }

  end(): VerifyReport {
    const r = this.#r;
    if (r.ok) {
      const last = r.lastSeq ?? 0;
      const a = this.#o.against;
      if (a && r.against === undefined) {
        if (a.seq > last) {
          this.#fail(
            last + 1,
            'against',
            `the log ends at seq ${last} but a head at seq ${a.seq} was seen elsewhere: entries ${last + 1}..${a.seq} were truncated`,
          );
        }
      }
      if (r.ok && (this.#o.requireSealed ?? true) && last > this.#signedSeq) {
        this.#line = undefined;
        this.#fail(
          this.#signedSeq + 1,
          'unsigned-tail',
          `missing checkpoint at the tail: entries ${this.#signedSeq + 1}..${last} are not signed (the log was truncated, or the device lost power before its next checkpoint)`,
        );
      }
    }
    return { ...r };
  }

  #expected(): number {
    return (this.#r.lastSeq ?? 0) + 1;
  }

  #fail(seq: number, kind: ProblemKind, reason: string): false {
    if (!this.#r.ok) return false;
    this.#r.ok = false;
    this.#r.firstBrokenSeq = seq;
    this.#r.kind = kind;
    this.#r.reason = this.#line === undefined ? reason : `line ${this.#line}: ${reason}`;
    if (this.#line !== undefined) this.#r.line = this.#line;
    return false;
  }
}

const short = (h: string): string => `${h.slice(0, 12)}…`;
