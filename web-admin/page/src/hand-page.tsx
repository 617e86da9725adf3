/**
 * The host side of the Hands' pages (hands/sdk/page.ts): their nav entries and sections, each
 * module loaded when first shown, and the page API their views get. The page knows no Hand by
 * name: the list comes from `virtual:hand-pages`, made by the build from what it found.
 *
 * A 503 `HAND_NOT_RUNNING` from any request of a Hand's view replaces the view with the
 * server's message and a link to the Hands page; the view comes back by itself once an
 * instance of the Hand runs again.
 */
import { Component, type ComponentChildren } from 'preact';
import { useEffect, useMemo, useState } from 'preact/hooks';
import pages from 'virtual:hand-pages';
import {
  pageProblem,
  type HandPage,
  type PageApi,
  type PageSection,
  type PageUi,
  type PageView,
  type User,
} from '../../../hands/sdk/page.ts';
import { ApiError, del, get, message, post, put, q } from './api.ts';
import { Chart, fmt, time } from './chart.tsx';
import { useStream } from './sse.ts';

export type HandPageRef = (typeof pages)[number];

/** how often a view that found its Hand not running looks whether it runs again */
export const NOT_RUNNING_POLL_MS = 3000;

/** the Hands' pages of their own (a nav entry each) */
export const handOwnPages: HandPageRef[] = pages.filter((p) => !p.section);

/** the Hands' sections of a kernel page */
export const sectionsOf = (page: PageSection): HandPageRef[] => pages.filter((p) => p.section === page);

/** a kernel page's title with its Hands' sections: "Sensors & alerts" */
export function pageTitle(page: PageSection, base: string): string {
  const all = [base, ...sectionsOf(page).map((s) => s.label)];
  return all.length === 1 ? base : `${all.slice(0, -1).join(', ')} & ${all.at(-1)!}`;
}

const ui: PageUi = { Chart, time, fmt };

const modules = new Map<HandPageRef, Promise<HandPage>>();
function loadModule(ref: HandPageRef): Promise<HandPage> {
  let p = modules.get(ref);
  if (!p) {
    p = ref.load().then((m) => {
      const problem = pageProblem(m.default);
      if (problem) throw new Error(problem);
      return m.default as HandPage;
    });
    // a failed load (the device upgraded under an open page) is tried again next time
    p.catch(() => modules.delete(ref));
    modules.set(ref, p);
  }
  return p;
}

interface HandInfo {
  name: string;
  id?: string;
  module?: string;
  state: string;
}
const isOf = (h: HandInfo, hand: string): boolean => h.id === hand || h.module === hand;

/** the page API of one view: requests through the page's session, HAND_NOT_RUNNING reported */
function pageApi(onNotRunning: (message: string) => void): PageApi {
  const watch = <T,>(p: Promise<T>): Promise<T> =>
    p.catch((err: unknown) => {
      if (err instanceof ApiError && err.code === 'HAND_NOT_RUNNING') onNotRunning(err.message);
      throw err;
    });
  return {
    get: (path) => watch(get(path)),
    post: (path, body) => watch(post(path, body)),
    put: (path, body) => watch(put(path, body)),
    del: (path) => watch(del(path)),
    query: q,
    message,
    code: (err) => (err instanceof ApiError ? err.code : undefined),
    useStream: (url, onData, names) => useStream(url, onData, names),
  };
}

/** All the sections the Hands add to a kernel page, in the order of their Hands. */
export function HandSections({ page, args, user }: { page: PageSection; args: string[]; user: User }) {
  return (
    <>
      {sectionsOf(page).map((entry) => (
        <HandView key={`${entry.hand}/${entry.id}`} entry={entry} args={args} user={user} />
      ))}
    </>
  );
}

/** One Hand's view: loaded on first show, with its page API, or why it cannot show. */
export function HandView({ entry, args, user }: { entry: HandPageRef; args: string[]; user: User }) {
  const [page, setPage] = useState<HandPage | null>(null);
  const [instances, setInstances] = useState<string[] | null>(null);
  const [error, setError] = useState('');
  const [down, setDown] = useState<string | null>(null);
  const [generation, setGeneration] = useState(0);
  const api = useMemo(() => pageApi((m) => setDown(m)), [entry]);

  useEffect(() => {
    let live = true;
    loadModule(entry).then(
      (p) => live && setPage(p),
      (e: unknown) =>
        live && setError(`the page of the Hand "${entry.hand}" did not load (${message(e)}); reload the page`),
    );
    return () => {
      live = false;
    };
  }, [entry]);
  useEffect(() => {
    let live = true;
    get<{ hands: HandInfo[] }>('/api/v1/hands').then(
      (r) => live && setInstances(r.hands.filter((h) => isOf(h, entry.hand)).map((h) => h.name)),
      () => live && setInstances([]),
    );
    return () => {
      live = false;
    };
  }, [entry, generation]);
  useEffect(() => {
    if (down === null) return;
    const t = setInterval(() => {
      get<{ hands: HandInfo[] }>('/api/v1/hands').then(
        (r) => {
          if (!r.hands.some((h) => isOf(h, entry.hand) && h.state === 'running')) return;
          setDown(null);
          setGeneration((g) => g + 1);
        },
        () => undefined,
      );
    }, NOT_RUNNING_POLL_MS);
    return () => clearInterval(t);
  }, [down, entry]);

  const testid = `hand-${entry.hand}-${entry.id}`;
  if (error)
    return (
      <div class="card" data-testid={`${testid}-error`}>
        <p class="error">{error}</p>
      </div>
    );
  if (down !== null) {
    return (
      <div class="card" data-testid={`hand-not-running-${entry.hand}`}>
        <p class="error">
          {down} —{' '}
          {instances?.length === 0 ? (
            <a href="#/config">add it to the config</a>
          ) : (
            <a href="#/hands">start it on the Hands page</a>
          )}
          .
        </p>
        <p class="muted small">This part of the page comes back by itself once the Hand runs.</p>
      </div>
    );
  }
  if (!page || !instances)
    return (
      <p class="muted" data-testid={`${testid}-loading`}>
        Loading…
      </p>
    );
  const View = page.view as PageView;
  return (
    <Boundary label={`the page of the Hand "${entry.hand}"`} testid={`${testid}-error`}>
      <View key={generation} args={args} user={user} hand={{ id: entry.hand, instances }} api={api} ui={ui} />
    </Boundary>
  );
}

/** a Hand's view that throws while rendering takes only itself down, not the page */
class Boundary extends Component<{ label: string; testid: string; children: ComponentChildren }, { error: string }> {
  override state = { error: '' };

  static override getDerivedStateFromError(err: unknown): { error: string } {
    return { error: message(err) };
  }

  override render() {
    return this.state.error ? (
      <div class="card" data-testid={this.props.testid}>
        <p class="error">
          {this.props.label} failed: {this.state.error}
        </p>
      </div>
    ) : (
      this.props.children
    );
  }
}
