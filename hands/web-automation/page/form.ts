/**
 * The pure parts of the Web Automation Hand's page (./index.tsx), kept out of the JSX so Node's tests import them:
 * the "Add watch" form's kinds and the PUT body it makes (a missing field named in the form's words; the Hand checks
 * the rest with ../watch.ts parseWatch and names the field it refuses), and a visual change in words as the Hand says
 * it (../visual.ts visualWords, not imported: that file uses Node's Buffer).
 */

export interface LastChange {
  at: number;
  runId: string;
  before: string;
  after: string;
  diff?: string;
  visual?: {
    percent: number;
    sizeChanged: boolean;
    width: number;
    height: number;
    before?: { width: number; height: number };
  };
  screenshot?: string;
}
/** the kinds the Add form offers, with what its selector field holds */
export const KINDS = {
  text: { label: 'Text', field: 'Selector', placeholder: '#price (empty: the whole page)' },
  price: { label: 'Price', field: 'Selector', placeholder: '.price (empty: the whole page)' },
  json: { label: 'JSON', field: 'JSON path', placeholder: '$.items[0].price' },
  attribute: { label: 'Attribute', field: 'Selector@attribute', placeholder: 'a.download@href' },
  visual: { label: 'Visual', field: 'Selector', placeholder: '#hero (empty: the viewport)' },
} as const;
export type Kind = keyof typeof KINDS;

/**
 * The watch the Add form describes, as PUT takes it; a message naming the form's field when it cannot be one (the
 * Hand checks the rest and names the field it refuses).
 */
export function formWatch(f: {
  id: string;
  url: string;
  kind: Kind;
  target: string;
  schedule: string;
}): { id: string; body: Record<string, unknown> } | string {
  const id = f.id.trim();
  if (id === '') return 'Id: write a watch id (lowercase letters, digits, - and _: "shop-price")';
  if (f.url.trim() === '') return 'URL: write the page to watch (https://…)';
  const t = f.target.trim();
  let what: Record<string, unknown>;
  if (f.kind === 'json') {
    if (t === '') return 'JSON path: write the path of the value ($.items[0].price)';
    what = { json: t };
  } else if (f.kind === 'attribute') {
    const at = t.lastIndexOf('@');
    if (at <= 0 || at === t.length - 1)
      return 'Selector@attribute: write the selector and the attribute (a.download@href)';
    what = { attribute: { selector: t.slice(0, at), name: t.slice(at + 1) } };
  } else what = { [f.kind]: t === '' ? null : t };
  const body: Record<string, unknown> = { url: f.url.trim(), what };
  if (f.schedule.trim() !== '') body.schedule = f.schedule.trim();
  return { id, body };
}

/** "12.5 % of the region changed (size 800×600)", as the Hand says it (../visual.ts visualWords) */
export function visualText(v: NonNullable<LastChange['visual']>): string {
  if (v.sizeChanged && v.before)
    return `the region's size changed from ${v.before.width}×${v.before.height} to ${v.width}×${v.height}`;
  const p = v.percent >= 10 || Number.isInteger(v.percent) ? String(Math.round(v.percent)) : v.percent.toFixed(1);
  return `${p} % of the region changed (size ${v.width}×${v.height})`;
}
