/**
 * What a Hand's web admin page imports: the shape of `hands/<id>/page/index.tsx`.
 *
 * A Hand adds to the web admin by default-exporting a page descriptor from
 * `hands/<id>/page/index.tsx`: `export default definePage({ id, label, view })`. The page build
 * (web-admin/page/build.ts) finds the file, compiles it into a chunk of its own that the browser
 * loads only when the page is opened (so the first paint does not grow with every Hand), and
 * puts `id`, `label` and `section` in the nav. The module's top level is also run once at
 * build time (under Node) to read those three, so it must only declare: no `document`,
 * `location` or requests outside the view.
 *
 * The view is a Preact component (`import { useState } from 'preact/hooks'` as usual). It gets
 * what it needs from the page through its props (`api`, `ui`), never by importing the web
 * admin: the requests go through the page's session (CSRF token, 401 → login), and a 503
 * `HAND_NOT_RUNNING` from any of them makes the page show, instead of the view, that the Hand is
 * not running and where to start it. CSS cannot be imported: use the page's classes (`card`,
 * `tabs`, `scroll`, `muted`, `error`, `badge`, `small`).
 *
 * Dependency-free on purpose (no import of preact or the web admin): the types are structural,
 * so a Preact function component fits `PageView`.
 */

/** What a component returns: a Preact VNode, text, or nothing (a subset of Preact's ComponentChildren). */
export type PageNode = object | string | number | boolean | null | undefined;

/** The kernel pages a Hand may add a section to, instead of a page of its own. */
export const PAGE_SECTIONS = ['sensors'] as const;
export type PageSection = (typeof PAGE_SECTIONS)[number];

/** A nav id: the route `#/<id>` and the test id `nav-<id>`. */
export const PAGE_ID = /^[a-z][a-z0-9-]{0,39}$/;

export interface User {
  name: string;
  role: 'admin' | 'viewer';
}

/** Calls to this device's /api/v1 through the page's session. Errors carry `code` and `status`. */
export interface PageApi {
  get<T>(path: string): Promise<T>;
  post<T>(path: string, body?: unknown): Promise<T>;
  put<T>(path: string, body: unknown): Promise<T>;
  del<T>(path: string): Promise<T>;
  /** `?a=1&b=x` from the params that are set (undefined, null and '' are left out); '' when none */
  query(params: Record<string, string | number | undefined | null>): string;
  /** a readable line for an error of any shape */
  message(err: unknown): string;
  /** the API error code (`NOT_FOUND`, `HAND_NOT_RUNNING`, …) of an error thrown by a call, if any */
  code(err: unknown): string | undefined;
  /**
   * A hook: server-sent events from `url` while the component is mounted (null: not now). JSON
   * data; unnamed events and the named ones in `names` are delivered. Counted in the status bar.
   */
  useStream(url: string | null, onData: (data: unknown, event: string) => void, names?: string[]): void;
}

export interface ChartProps {
  /** the container's data-testid (it also carries data-points and data-yticks for tests) */
  testid: string;
  title: string;
  series: string[];
  /** [seconds[], ...series[]] */
  data: Array<Array<number | null>>;
  /** y-axis formatting */
  unit?: string;
  height?: number;
  /** the x range to show, in seconds; default: the data's, at least a minute */
  xRange?: [number, number] | undefined;
}

/** The page's shared pieces a Hand's view may use. */
export interface PageUi {
  /** a uPlot time-series chart */
  Chart: (props: ChartProps) => PageNode;
  /** a timestamp (ms) as local date and time, '–' for none */
  time(ts: number | null | undefined): string;
  /** a number with k/M/G and `digits` decimals, '–' for none */
  fmt(v: number | null | undefined, digits?: number): string;
}

/** The Hand the page belongs to. */
export interface PageHand {
  /** the Hand's folder name (hands/<id>/) */
  id: string;
  /** the configured Hands running this module (their names), as the page found them when it opened */
  instances: string[];
}

export interface HandPageProps {
  /** the parts of the hash route after the page's name (#/sensors/room.temp → ['room.temp']) */
  args: string[];
  user: User;
  hand: PageHand;
  api: PageApi;
  ui: PageUi;
}

export type PageView = (props: HandPageProps) => PageNode;

/** What `hands/<id>/page/index.tsx` default-exports. */
export interface HandPage {
  /** a page of its own: its route `#/<id>`; a section: its name within the page */
  id: string;
  /** the nav entry's text; a section's label is added to its page's title ("Sensors & alerts") */
  label: string;
  /** show the view as a section of this kernel page (under its route and nav entry) */
  section?: PageSection;
  view: PageView;
}

/** Checks the descriptor's shape, so a mistake shows in the page build rather than in a browser. */
export function definePage(page: HandPage): HandPage {
  const problem = pageProblem(page);
  if (problem) throw new TypeError(`definePage(page): ${problem}`);
  return page;
}

/** What is wrong with a page descriptor, or null. */
export function pageProblem(page: unknown): string | null {
  if (typeof page !== 'object' || page === null) return 'the page must be an object { id, label, view }';
  const p = page as Partial<HandPage>;
  if (typeof p.id !== 'string' || !PAGE_ID.test(p.id))
    return `id must match ${PAGE_ID} (it is the route #/<id>), not ${JSON.stringify(p.id)}`;
  if (typeof p.label !== 'string' || p.label.trim() === '') return `page "${p.id}": label must be a non-empty string`;
  if (typeof p.view !== 'function') return `page "${p.id}": view must be a component (a function)`;
  if (p.section !== undefined && !(PAGE_SECTIONS as readonly string[]).includes(p.section)) {
    return `page "${p.id}": section must be one of ${PAGE_SECTIONS.join(', ')}, not ${JSON.stringify(p.section)}`;
  }
  return null;
}
