/**
 * An open server-sent event stream for the system, sensors, alerts and chat routes: the
 * headers (text/event-stream, no-store), events with optional `id:` lines, a `: ping` comment
 * every 15 s so proxies keep it open, and cleanup once when the client goes away (or the
 * server ends the stream at shutdown).
 */
import type { RouteContext } from '../route.ts';
import { sseHeaders } from './sse.ts';

export const PING_MS = 15_000;

export interface Live {
  send(event: string | undefined, data: unknown, id?: string | number): void;
  /** runs when the stream closes (client gone, server shutdown, or end()) */
  onClose(fn: () => void): void;
  end(): void;
  readonly closed: boolean;
}

export function openStream(ctx: Pick<RouteContext, 'res' | 'signal'>): Live {
  const { res, signal } = ctx;
  sseHeaders(res);
  res.write(': stream open\n\n');
  const cleanups: Array<() => void> = [];
  let closed = false;
  const close = (): void => {
    if (closed) return;
    closed = true;
    clearInterval(ping);
    for (const fn of cleanups.splice(0)) {
      try {
        fn();
      } catch {
        // cleanup must not throw into the server
      }
    }
  };
  const ping = setInterval(() => {
    if (!res.writableEnded) res.write(': ping\n\n');
  }, PING_MS);
  ping.unref();
  signal.addEventListener('abort', close, { once: true });
  res.once('close', close);
  return {
    send(event, data, id) {
      if (closed || res.writableEnded) return;
      res.write(
        `${id !== undefined ? `id: ${id}\n` : ''}${event ? `event: ${event}\n` : ''}data: ${JSON.stringify(data)}\n\n`,
      );
    },
    onClose(fn) {
      if (closed) fn();
      else cleanups.push(fn);
    },
    end() {
      if (!res.writableEnded) res.end();
      close();
    },
    get closed() {
      return closed;
    },
  };
}
