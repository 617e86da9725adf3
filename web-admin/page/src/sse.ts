/**
 * Server-sent events with EventSource (same origin, the session cookie goes along). Data is
 * JSON; both unnamed events and the named ones given are delivered. EventSource reconnects by
 * itself; the state it is in goes to the status bar.
 */
import { useEffect, useRef } from 'preact/hooks';
import { store } from './store.ts';

export type StreamState = 'connecting' | 'open' | 'closed';

/** streams open now, and how many of them are connected */
export const streams = store<{ open: number; total: number }>({ open: 0, total: 0 });
const states = new Map<number, StreamState>();
let ids = 0;
const publish = (): void => {
  let open = 0;
  for (const s of states.values()) if (s === 'open') open++;
  streams.set({ open, total: states.size });
};

export function subscribe(
  url: string,
  onData: (data: unknown, event: string) => void,
  names: string[] = [],
  onState?: (s: StreamState) => void,
): () => void {
  const id = ++ids;
  const es = new EventSource(url, { withCredentials: true });
  const state = (s: StreamState): void => {
    states.set(id, s);
    publish();
    onState?.(s);
  };
  state('connecting');
  const handler = (ev: MessageEvent<string>): void => {
    let data: unknown;
    try {
      data = JSON.parse(ev.data);
    } catch {
      data = ev.data;
    }
    onData(data, ev.type);
  };
  es.onmessage = handler;
  for (const n of names) es.addEventListener(n, handler as EventListener);
  es.onopen = () => state('open');
  es.onerror = () => state(es.readyState === EventSource.CLOSED ? 'closed' : 'connecting');
  return () => {
    es.close();
    states.delete(id);
    publish();
  };
}

/** subscribe while the component is mounted (and `url` stays the same); null: not now */
export function useStream(
  url: string | null,
  onData: (data: unknown, event: string) => void,
  names: string[] = [],
  onState?: (s: StreamState) => void,
): void {
  const cb = useRef({ onData, onState });
  cb.current = { onData, onState };
  useEffect(
    () =>
      url
        ? subscribe(
            url,
            (d, e) => cb.current.onData(d, e),
            names,
            (s) => cb.current.onState?.(s),
          )
        : undefined,
    [url],
  );
}
