/**
 * The contract every source of the Data Pipeline Hand keeps (/tmp/r21/PLAN.md, Round 2), and the dependencies a
 * source is given instead of opening sockets itself: a Hand's worker runs under Node's permission model, so the
 * network goes through `ctx.fetch` and the cursors, ETags and file offsets live in a slice of the Hand's store.
 *
 * The Hand calls `poll()` on its schedule, journals the records, and only then calls `ack(token)`: that is when the
 * persisted position moves. A crash between the two re-reads the same records (at-least-once). `poll()` always
 * starts from the acknowledged position, so polling twice without an ack reads the same records twice.
 *
 * Additions to the plan's contract: `PollResult.error` (a poll that failed as a whole: an HTTP error, a body that is
 * not JSON, a database that cannot be opened; nothing read, the position unchanged) and `BadInput.line` (the line a
 * broken row or line starts on, for files).
 *
 * No code here: types only.
 */
import type { HandFetchInit } from '../../../runtime/core/hand.ts';
import type { PipelineRecord } from '../types.ts';

/** This source's own slice of the Hand's store (keys are the source's; the Hand prefixes them). */
export interface SourceState {
  get<T>(key: string): Promise<T | undefined>;
  put(key: string, value: unknown): Promise<void>;
}

export type SourceLogLevel = 'debug' | 'info' | 'warn' | 'error';

/** What a source gets from the Hand; each source takes the part it needs (`Pick<SourceDeps, …>`). */
export interface SourceDeps {
  /** ctx.fetch's shape: the only way to the network */
  fetch: (url: string, init?: HandFetchInit) => Promise<Response>;
  state: SourceState;
  now: () => number;
  log: (level: SourceLogLevel, msg: string) => void;
}

/** An input that could not become a record: to the dead-letter queue with the error and the raw text. */
export interface BadInput {
  /** what is wrong, naming where (`a.csv line 7: 3 fields, the header has 2`) */
  error: string;
  raw: string;
  /** (files) the line the broken row or line starts on, from 1 */
  line?: number;
}

export interface PollResult {
  records: PipelineRecord[];
  bad: BadInput[];
  /** given back to ack() once the records are journalled; null when there is nothing to acknowledge */
  token: unknown;
  /** poll again right away (pages remain, a big file is half read) */
  more: boolean;
  /** the poll failed as a whole: nothing read past what `records` holds, and the position moves no further */
  error?: string;
}

export interface Source {
  poll(): Promise<PollResult>;
  /** moves the persisted position to where the poll that returned `token` ended; a null token does nothing */
  ack(token: unknown): Promise<void>;
  close(): Promise<void>;
}
