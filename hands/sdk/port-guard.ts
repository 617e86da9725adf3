/**
 * The worker's ports to the kernel, closed to Hand code: installed before any Hand code runs.
 *
 *  - `parentPort` (the SDK's channel: heartbeats, logs, calls) becomes `null` for Hand code; the
 *    SDK posts through the method as it was at startup, and the port itself refuses any other
 *    post (a Hand could otherwise post heartbeats of its own, or messages of any size);
 *  - Node's internal port behind `process.stdout` / `process.stderr` (reachable through their
 *    `kPort` symbol) takes only what Node's stdio sends: an unknown message type there throws
 *    an uncaught exception in the kernel's thread ("Unknown worker message type"), which would
 *    take the whole daemon down. Its stdio chunks are cut to STDIO_CHUNK_MAX;
 *  - `worker_threads.postMessageToThread` (a message to any thread, the kernel's included) is
 *    refused.
 *
 * A refusal is CAPABILITY_DENIED and is reported for the audit (action `worker.port`).
 */
import workerThreads, { MessagePort } from 'node:worker_threads';
import { syncBuiltinESMExports } from 'node:module';
import { TalonError } from '../../runtime/errors.ts';
import type { DenyReport } from './net-guard.ts';

export const PORT_ACTION = 'worker.port';
/** the longest piece of stdout / stderr one write sends to the kernel (it keeps 8 KB a line) */
export const STDIO_CHUNK_MAX = 64 * 1024;

/** the message types Node's worker stdio sends to the parent (lib/internal/worker/io.js) */
const STDIO_TYPES = new Set(['stdioPayload', 'stdioWantsMoreData', 'errorMessage', 'couldNotSerializeError']);

type Fn = (...args: unknown[]) => unknown;

/** Returns the SDK's post: the original postMessage bound to `port`. */
export function installPortGuard(port: MessagePort, opts: { hand?: string; report: DenyReport }): (msg: unknown) => void {
  const who = opts.hand === undefined ? 'A Hand' : `Hand "${opts.hand}"`;
  const proto = MessagePort.prototype as unknown as Record<string, unknown>;
  const original = proto.postMessage as Fn;
  const denied = (subject: string): TalonError => {
    opts.report(PORT_ACTION, subject);
    return new TalonError('CAPABILITY_DENIED', `${who} may not post to the kernel's ports (${subject}); it talks to the kernel through ctx`,
      { details: { action: PORT_ACTION, subject } });
  };

  // Node's stdio port: process.stdout[kPort] (the same one serves stderr and stdin)
  let stdio: unknown;
  try {
    const out = process.stdout as unknown as Record<symbol, unknown>;
    const k = Object.getOwnPropertySymbols(out).find((s) => s.description === 'kPort');
    stdio = k ? out[k] : undefined;
  } catch {
    stdio = undefined;
  }

  Object.defineProperty(proto, 'postMessage', {
    value: function postMessage(this: unknown, ...args: unknown[]): unknown {
      if (this === port) throw denied('parentPort');
      if (stdio !== undefined && this === stdio) {
        const msg = args[0] as { type?: unknown; chunks?: unknown } | null;
        const type = typeof msg === 'object' && msg !== null ? msg.type : undefined;
        if (typeof type !== 'string' || !STDIO_TYPES.has(type)) throw denied(`stdio port: ${String(type).slice(0, 50)}`);
        if (type === 'stdioPayload' && Array.isArray(msg!.chunks)) {
          msg!.chunks = (msg!.chunks as Array<{ chunk?: unknown; encoding?: unknown }>).slice(0, 64).map((c) => {
            const chunk = c?.chunk;
            if (typeof chunk === 'string' && chunk.length > STDIO_CHUNK_MAX) return { chunk: `${chunk.slice(0, STDIO_CHUNK_MAX)}\n`, encoding: c.encoding };
            if (ArrayBuffer.isView(chunk) && chunk.byteLength > STDIO_CHUNK_MAX) {
              return { chunk: Buffer.from(chunk.buffer, chunk.byteOffset, STDIO_CHUNK_MAX), encoding: c.encoding };
            }
            return c;
          });
        }
      }
      return Reflect.apply(original, this, args);
    },
    writable: false,
    configurable: false,
    enumerable: false,
  });

  const wt = workerThreads as unknown as Record<string, unknown>;
  Object.defineProperty(wt, 'parentPort', { value: null, writable: false, configurable: false, enumerable: true });
  if (typeof wt.postMessageToThread === 'function') {
    Object.defineProperty(wt, 'postMessageToThread', {
      value: function postMessageToThread(threadId: unknown): Promise<never> {
        return Promise.reject(denied(`postMessageToThread ${String(threadId).slice(0, 20)}`));
      },
      writable: false,
      configurable: false,
      enumerable: true,
    });
  }
  syncBuiltinESMExports();
  return (msg: unknown) => {
    Reflect.apply(original, port, [msg]);
  };
}
