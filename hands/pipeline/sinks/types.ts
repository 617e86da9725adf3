/**
 * The contract every sink of the Data Pipeline Hand keeps (PLAN.md "Round 2"), and the dependencies a sink is given.
 * A Hand's worker runs under Node's permission model, so a sink takes its network I/O as `deps.fetch` (ctx.fetch's
 * shape) and never imports node:http or node:net; files and node:sqlite are used directly on the Hand's `fs` grant.
 *
 * The Hand reads a sink's entries from the journal (../journal.ts `next`), calls `write(batch)` and acknowledges the
 * first `done` entries (`ack`); the entries in `rejected` (all below `done`) go to the dead-letter queue; when `done`
 * is short of the batch the rest is written again after `retryAfterMs`. A sink never throws for a delivery problem:
 * it answers it. It throws (TalonError) only for a bug or a misconfiguration at creation.
 */
import type { HandFetchInit, LogLevel } from '../../../runtime/core/hand.ts';
import type { PipelineRecord } from '../types.ts';

/** A journalled record handed to a sink; `id` is ../journal.ts `idempotencyKey(pipeline, seq)`, same on redelivery */
export interface SinkEntry {
  id: string;
  record: PipelineRecord;
}

export interface SinkResult {
  /** entries from the start of the batch that are settled (delivered or rejected) */
  done: number;
  /** settled but refused for good (→ dead-letter queue); every index is below `done` */
  rejected: Array<{ index: number; error: string }>;
  /** when done < batch.length: a transient failure, the rest is retried after this many milliseconds */
  retryAfterMs?: number;
  /** what went wrong, in words, when done < batch.length */
  error?: string;
}

export interface SinkWriter {
  write(batch: SinkEntry[]): Promise<SinkResult>;
  close(): Promise<void>;
}

/** ctx.fetch's shape (runtime/core/hand.ts HandContext.fetch) */
export type SinkFetch = (url: string, init?: HandFetchInit) => Promise<Response>;

export interface SinkDeps {
  /** the network (the http sink needs it; the others ignore it) */
  fetch?: SinkFetch;
  now: () => number;
  log: (level: LogLevel, msg: string) => void;
}
