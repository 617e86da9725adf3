/**
 * Follows an assistant message as it streams: GET …/messages/{mid}/stream?from=<chars shown>
 * with fetch and a streaming reader. `delta` events append, `done` replaces the text with the
 * stored full message, `error` shows the stored message marked failed. A dropped connection
 * reconnects with from= the length shown, so nothing is lost or repeated; the message stays
 * marked "streaming" until the server says done or error. No DOM.
 */

export interface ChatMessage {
  id: string;
  role: 'user' | 'assistant' | 'system';
  content: string;
  status: 'streaming' | 'done' | 'error';
  error?: string | { code?: string; message?: string };
  provider?: string;
  createdAt?: number | string;
}

export interface SseEvent {
  event: string;
  data: string;
}

/** Splits complete events off the front of an SSE buffer; `rest` is the incomplete tail. */
export function parseSse(buffer: string): { events: SseEvent[]; rest: string } {
  const events: SseEvent[] = [];
  const text = buffer.replace(/\r\n?/g, '\n');
  let from = 0;
  let end: number;
  while ((end = text.indexOf('\n\n', from)) >= 0) {
    const block = text.slice(from, end);
    from = end + 2;
    let event = 'message';
    const data: string[] = [];
    for (const line of block.split('\n')) {
      if (line.startsWith(':') || line === '') continue;
      const i = line.indexOf(':');
      const field = i < 0 ? line : line.slice(0, i);
      const value = i < 0 ? '' : line.slice(i + 1).replace(/^ /, '');
      if (field === 'event') event = value;
      else if (field === 'data') data.push(value);
    }
    if (data.length) events.push({ event, data: data.join('\n') });
  }
  return { events, rest: text.slice(from) };
}

export interface FollowUpdate {
  text: string;
  status: 'streaming' | 'done' | 'error';
  /** the stored message, on done and error */
  message?: ChatMessage;
  error?: string;
  /** connections made after the first */
  reconnects: number;
  /** waiting to reconnect after a drop */
  reconnecting: boolean;
}

export interface FollowOptions {
  /** …/messages/{mid}/stream, without the query */
  url: string;
  /** what is already on screen (a stored partial message) */
  initial?: string;
  onUpdate(u: FollowUpdate): void;
  signal?: AbortSignal;
  fetchImpl?: typeof fetch;
  /** give up after this many connections in a row that brought nothing (default 20) */
  maxFailures?: number;
  /** wait before reconnect n (default 250 ms doubling, at most 4 s) */
  backoff?: (n: number) => number;
}

const errorText = (e: unknown): string => {
  if (typeof e === 'string') return e;
  if (e && typeof e === 'object')
    return (e as { message?: string }).message ?? (e as { code?: string }).code ?? JSON.stringify(e);
  return 'the answer failed';
};

export async function followMessage(o: FollowOptions): Promise<FollowUpdate> {
  const doFetch = o.fetchImpl ?? fetch;
  const backoff = o.backoff ?? ((n: number) => Math.min(4000, 250 * 2 ** n));
  let text = o.initial ?? '';
  let reconnects = 0;
  let failures = 0;
  const emit = (u: Partial<FollowUpdate> & Pick<FollowUpdate, 'status'>): FollowUpdate => {
    const full: FollowUpdate = { text, reconnects, reconnecting: false, ...u };
    o.onUpdate(full);
    return full;
  };
  for (let attempt = 0; ; attempt++) {
    if (o.signal?.aborted) return { text, status: 'streaming', reconnects, reconnecting: false };
    if (attempt > 0) {
      reconnects++;
      emit({ status: 'streaming', reconnecting: true });
      await sleep(backoff(failures), o.signal);
      if (o.signal?.aborted) return { text, status: 'streaming', reconnects, reconnecting: false };
    }
    let progressed = false;
    try {
      const res = await doFetch(`${o.url}?from=${text.length}`, {
        headers: { accept: 'text/event-stream' },
        credentials: 'same-origin',
        ...(o.signal ? { signal: o.signal } : {}),
      });
      if (!res.ok || !res.body) {
        if (res.status >= 400 && res.status < 500 && res.status !== 408 && res.status !== 429) {
          let msg = `HTTP ${res.status}`;
          try {
            msg = errorText(((await res.json()) as { error?: unknown }).error ?? msg);
          } catch {
            // keep the status
          }
          return emit({ status: 'error', error: msg });
        }
        throw new Error(`HTTP ${res.status}`);
      }
      const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
      let buf = '';
      read: for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buf += value;
        const { events, rest } = parseSse(buf);
        buf = rest;
        for (const ev of events) {
          let data: unknown;
          try {
            data = JSON.parse(ev.data);
          } catch {
            continue;
          }
          if (ev.event === 'delta') {
            const d = data as { offset?: number; text?: string };
            if (typeof d.text !== 'string') continue;
            const offset = typeof d.offset === 'number' ? d.offset : text.length;
            if (offset > text.length) {
              // a gap: ask again from what is shown
              await reader.cancel().catch(() => undefined);
              break read;
            }
            const add = d.text.slice(text.length - offset);
            if (add) {
              text += add;
              progressed = true;
              emit({ status: 'streaming' });
            }
          } else if (ev.event === 'done') {
            const m = data as ChatMessage;
            if (typeof m?.content === 'string') text = m.content;
            return emit({
              status: m?.status === 'error' ? 'error' : 'done',
              message: m,
              ...(m?.status === 'error' ? { error: errorText(m.error) } : {}),
            });
          } else if (ev.event === 'error') {
            const d = data as { error?: unknown; message?: ChatMessage };
            if (typeof d?.message?.content === 'string') text = d.message.content;
            return emit({
              status: 'error',
              error: errorText(d?.error ?? d?.message?.error),
              ...(d?.message ? { message: d.message } : {}),
            });
          }
        }
      }
    } catch (err) {
      if (o.signal?.aborted) return { text, status: 'streaming', reconnects, reconnecting: false };
      void err;
    }
    failures = progressed ? 0 : failures + 1;
    if (failures >= (o.maxFailures ?? 20))
      return emit({ status: 'error', error: 'lost the connection to the device; reload to see the stored answer' });
  }
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const t = setTimeout(resolve, ms);
    signal?.addEventListener(
      'abort',
      () => {
        clearTimeout(t);
        resolve();
      },
      { once: true },
    );
  });
}
