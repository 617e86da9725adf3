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
import { deserialize } from 'node:v8';
import { TalonError } from '../core/errors.ts';
import type { DenyReport } from './net-guard.ts';

export const PORT_ACTION = 'worker.port';
/** the longest piece of stdout / stderr one write sends to the kernel (it keeps 8 KB a line) */
export const STDIO_CHUNK_MAX = 64 * 1024;

/**
 * the message types Node's worker stdio sends to the parent (lib/internal/worker/io.js). The
 * kernel gives a Hand no stdin, so `stdioWantsMoreData` (which would name it) is never Node's:
 * the kernel's thread reads `stdin` of null there and throws, uncaught.
 */
const STDIO_TYPES = new Set(['stdioPayload', 'errorMessage', 'couldNotSerializeError']);
const STDIO_STREAMS = new Set(['stdout', 'stderr']);
/** the constructors Node's deserializeError knows (lib/internal/error_serdes.js) */
/** an uncaught error's report to the kernel, bytes (the kernel keeps 2000 characters of its message) */
const ERROR_PAYLOAD_MAX = 1024 * 1024;
const ERROR_CTORS = new Set([
  'Error',
  'EvalError',
  'RangeError',
  'ReferenceError',
  'SyntaxError',
  'TypeError',
  'URIError',
]);

const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null;

/**
 * Would the kernel's thread read this `errorMessage` payload without throwing? Node's
 * deserializeError runs there, outside any try: a malformed one is an uncaught exception in
 * the kernel. Its forms: 0 a v8-serialized { constructor, properties } (a cause nested the
 * same way), 1 a v8-serialized value, 2-4 text.
 */
function errorPayloadOk(e: unknown, depth = 0): boolean {
  if (!ArrayBuffer.isView(e) || e.byteLength === 0 || e.byteLength > ERROR_PAYLOAD_MAX || depth > 8) return false;
  const b = Buffer.from(e.buffer, e.byteOffset, e.byteLength);
  if (b[0] === 2 || b[0] === 3 || b[0] === 4) return true;
  if (b[0] !== 0 && b[0] !== 1) return false;
  let v: unknown;
  try {
    v = deserialize(b.subarray(1));
  } catch {
    return false;
  }
  if (b[0] === 1) return true;
  if (!isRecord(v) || typeof v.constructor !== 'string' || !ERROR_CTORS.has(v.constructor) || !isRecord(v.properties))
    return false;
  const props = v.properties;
  // Object.create(ctor.prototype, properties): each a data descriptor (v8 cannot carry a getter)
  if (!Object.values(props).every((d) => isRecord(d) && !('get' in d) && !('set' in d))) return false;
  const cause = props.cause;
  return !(isRecord(cause) && 'value' in cause) || errorPayloadOk(cause.value, depth + 1);
}

/** Readable#push in the kernel's thread throws on a chunk that is neither text nor bytes, or on an unknown encoding */
function chunkOk(c: unknown): boolean {
  if (!isRecord(c)) return false;
  if (ArrayBuffer.isView(c.chunk)) return true;
  return (
    typeof c.chunk === 'string' &&
    (c.encoding === undefined || (typeof c.encoding === 'string' && Buffer.isEncoding(c.encoding)))
  );
}

type Fn = (...args: unknown[]) => unknown;

/** Returns the SDK's post: the original postMessage bound to `port`. */
export function installPortGuard(
  port: MessagePort,
  opts: { hand?: string; report: DenyReport },
): (msg: unknown) => void {
  const who = opts.hand === undefined ? 'A Hand' : `Hand "${opts.hand}"`;
  const proto = MessagePort.prototype as unknown as Record<string, unknown>;
  const original = proto.postMessage as Fn;
  const denied = (subject: string): TalonError => {
    opts.report(PORT_ACTION, subject);
    return new TalonError(
      'CAPABILITY_DENIED',
      `${who} may not post to the kernel's ports (${subject}); it talks to the kernel through ctx`,
      { details: { action: PORT_ACTION, subject } },
    );
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
        if (typeof type !== 'string' || !STDIO_TYPES.has(type))
          throw denied(`stdio port: ${String(type).slice(0, 50)}`);
        const m = msg as { stream?: unknown; chunks?: unknown; error?: unknown };
        if (type === 'errorMessage' && !errorPayloadOk(m.error)) throw denied('stdio port: errorMessage (malformed)');
        if (type === 'stdioPayload') {
          if (
            typeof m.stream !== 'string' ||
            !STDIO_STREAMS.has(m.stream) ||
            !Array.isArray(m.chunks) ||
            !m.chunks.every(chunkOk)
          ) {
            throw denied('stdio port: stdioPayload (malformed)');
          }
          msg!.chunks = (msg!.chunks as Array<{ chunk?: unknown; encoding?: unknown }>).slice(0, 64).map((c) => {
            const chunk = c?.chunk;
            if (typeof chunk === 'string' && chunk.length > STDIO_CHUNK_MAX)
              return { chunk: `${chunk.slice(0, STDIO_CHUNK_MAX)}\n`, encoding: c.encoding };
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
