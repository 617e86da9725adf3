/**
 * `talon leads list|show ID|scan|import FILE|export|deliveries|retry KEY`: the Lead Generation Hand's leads on the
 * running daemon, through /api/v1/leads (./surface.ts). Options are checked here before any request, so a bad
 * `--status` or `--limit` is a usage error (exit 2) naming the option and what to write instead. `export` writes the
 * CSV itself to stdout (or --out FILE), not JSON.
 */
import { readFile, writeFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import type { HandCommandArgs, HandDaemon } from '../sdk/index.ts';
import { TalonError } from '../../runtime/core/errors.ts';
import { DELIVERY_STATES, MAX_IMPORT_CHARS, STATUSES } from './protocol.ts';
import type { Delivery, Lead, Sourced } from './types.ts';
import { iso, oneLine, table, printJson } from '../sdk/cli-text.ts';

const enc = encodeURIComponent;

export interface ScanView {
  found: number;
  new: number;
  updated: number;
  qualified: number;
  newlyQualified?: number;
  enqueued: number;
  enriched: number;
  pages?: number;
  errors: Record<string, number>;
  sources?: string[];
  joined?: boolean;
  startedAt: number;
  finishedAt: number;
}

function daemonOf(a: HandCommandArgs): HandDaemon {
  if (!a.daemon) throw new TalonError('INTERNAL', 'this command needs the running daemon (declared daemon: true)');
  return a.daemon;
}

function oneOf(a: HandCommandArgs, name: string, list: readonly string[]): string | undefined {
  const v = a.values[name];
  if (v === undefined) return undefined;
  if (typeof v !== 'string' || !list.includes(v))
    return a.usage(`--${name} must be one of ${list.join(', ')}, not "${String(v)}"`);
  return v;
}

function limitOf(a: HandCommandArgs, dflt: number): number {
  const l = a.values.limit ?? String(dflt);
  if (typeof l !== 'string' || !/^\d+$/.test(l)) return a.usage(`--limit must be a whole number, got "${String(l)}"`);
  if (Number(l) < 1 || Number(l) > 500) return a.usage(`--limit must be from 1 to 500, not ${l}`);
  return Number(l);
}

/** the query string of GET /api/v1/leads from the options */
export function listQuery(a: HandCommandArgs): string {
  const q = new URLSearchParams();
  const status = oneOf(a, 'status', STATUSES);
  if (status) q.set('status', status);
  const m = a.values['min-score'];
  if (m !== undefined) {
    if (typeof m !== 'string' || !/^\d+(\.\d+)?$/.test(m) || Number(m) > 100)
      return a.usage(`--min-score must be a number from 0 to 100, not "${String(m)}"`);
    q.set('minScore', m);
  }
  if (typeof a.values.q === 'string') {
    if (a.values.q.trim() === '' || a.values.q.length > 200) return a.usage('--q must be 1-200 characters');
    q.set('q', a.values.q);
  }
  q.set('limit', String(limitOf(a, 50)));
  return q.toString();
}

export function leadsTable(leads: Lead[]): string {
  const rows = [['SCORE', 'STATUS', 'COMPANY', 'DOMAIN', 'SOURCES']];
  for (const l of leads)
    rows.push([
      String(Math.round(l.score)),
      l.status,
      oneLine(l.company?.value, 40),
      l.domain ?? l.id,
      oneLine(l.sources.join(', '), 40),
    ]);
  return table(rows);
}

export async function listCommand(a: HandCommandArgs): Promise<number> {
  const query = listQuery(a);
  const r = await daemonOf(a).request<{ leads: Lead[]; next?: string }>('GET', `/api/v1/leads?${query}`);
  if (a.values.json) return printJson(a, r);
  if (r.leads.length === 0) {
    a.io.out('no leads (yet): run `talon leads scan`, or check the sources in the Hand’s settings\n');
    return 0;
  }
  a.io.out(leadsTable(r.leads));
  if (r.next) a.io.out(`(more: past ${r.next})\n`);
  return 0;
}

/** what a person types as a lead: an id (`d:acme.example`, `e:ann@x.org`), a domain, or an e-mail */
export function leadIdArg(s: string): string | undefined {
  const t = s.trim().toLowerCase();
  if (/^[de]:[^\s/]+$/.test(t)) return t;
  if (/^[^\s@/]+@[^\s@/]+\.[^\s@/]+$/.test(t)) return `e:${t}`;
  const host = t
    .replace(/^https?:\/\//, '')
    .replace(/\/.*$/, '')
    .replace(/^www\./, '');
  if (/^[a-z0-9-]+(\.[a-z0-9-]+)+$/.test(host)) return `d:${host}`;
  return undefined;
}

function sourcedLine(name: string, s: Sourced<unknown> | undefined): string[] {
  return s === undefined ? [] : [`${name.padEnd(13)}${String(s.value)}  (${s.source})`];
}

export function leadText(l: Lead): string {
  const lines = [
    `${l.company?.value ?? l.domain ?? l.id}  [${l.id}]`,
    `score ${Math.round(l.score)} – ${l.status}${l.excludedBy ? ` (excluded by ${l.excludedBy})` : ''}`,
    ...l.reasons.map((r) => `  + ${r}`),
    ...(l.model ? [`  model: ${l.model.score} – ${l.model.reason}`] : []),
    ...sourcedLine('company', l.company),
    ...sourcedLine('website', l.website),
    ...sourcedLine('industry', l.industry),
    ...sourcedLine('location', l.location),
    ...sourcedLine('size', l.size),
    ...sourcedLine('contact', l.contact),
    ...sourcedLine('title', l.title),
    ...sourcedLine('description', l.description),
    ...l.emails.flatMap((e) => sourcedLine('e-mail', e)),
    ...l.phones.flatMap((e) => sourcedLine('phone', e)),
    ...l.social.flatMap((e) => sourcedLine('social', e)),
    ...l.technologies.flatMap((e) => sourcedLine('technology', e)),
    ...l.mx.flatMap((e) => sourcedLine('mx', e)),
    `sources      ${l.sources.join(', ')}`,
    `first seen   ${iso(l.firstSeen)}, last seen ${iso(l.lastSeen)}${l.enrichedAt ? `, enriched ${iso(l.enrichedAt)}` : ''}`,
  ];
  return `${lines.join('\n')}\n`;
}

export async function showCommand(a: HandCommandArgs): Promise<number> {
  const arg = a.positionals[0]!;
  const id = leadIdArg(arg);
  if (!id)
    return a.usage(`ID must be a lead id (d:acme.example, e:ann@example.org), a domain or an e-mail, not "${arg}"`);
  const r = await daemonOf(a).request<{ lead: Lead }>('GET', `/api/v1/leads/${enc(id)}`);
  if (a.values.json) return printJson(a, r.lead);
  a.io.out(leadText(r.lead));
  return 0;
}

export function scanText(r: ScanView): string {
  const errs = Object.entries(r.errors)
    .filter(([, n]) => n > 0)
    .map(([k, n]) => `${k} ${n}`);
  return `${[
    `${r.joined ? 'joined the scan running: ' : ''}found ${r.found}, new ${r.new}, updated ${r.updated}, qualified ${r.qualified}${r.newlyQualified ? ` (${r.newlyQualified} newly)` : ''}`,
    `enriched ${r.enriched}, deliveries queued ${r.enqueued}`,
    `errors: ${errs.length ? errs.join(', ') : 'none'}`,
  ].join('\n')}\n`;
}

export async function scanCommand(a: HandCommandArgs): Promise<number> {
  const src = a.values.source;
  if (src !== undefined && (typeof src !== 'string' || !/^[a-zA-Z0-9][a-zA-Z0-9._-]{0,63}$/.test(src)))
    return a.usage(`--source must be a source name as in the settings, not "${String(src)}"`);
  const r = await daemonOf(a).request<ScanView>(
    'POST',
    '/api/v1/leads/scan',
    typeof src === 'string' ? { source: src } : {},
  );
  if (a.values.json) return printJson(a, r);
  a.io.out(scanText(r));
  return 0;
}

/** csv or json: --format, else the file's extension */
export function importFormat(a: HandCommandArgs, file: string): 'csv' | 'json' {
  const f = a.values.format;
  if (f !== undefined) {
    if (f !== 'csv' && f !== 'json') return a.usage(`--format must be csv or json, not "${String(f)}"`);
    return f;
  }
  if (/\.csv$/i.test(file)) return 'csv';
  if (/\.json$/i.test(file)) return 'json';
  return a.usage(`--format csv or --format json: "${file}" ends neither in .csv nor in .json`);
}

export async function importCommand(a: HandCommandArgs): Promise<number> {
  const file = a.positionals[0]!;
  const format = importFormat(a, file);
  const src = a.values.source;
  if (src !== undefined && (typeof src !== 'string' || !/^[a-zA-Z0-9][a-zA-Z0-9._-]{0,63}$/.test(src)))
    return a.usage(`--source must be a name (letters, digits, . _ -), not "${String(src)}"`);
  let data: string;
  try {
    data = await readFile(resolve(a.io.cwd, file), 'utf8');
  } catch (err) {
    throw new TalonError('NOT_FOUND', `${file}: ${(err as Error).message}`);
  }
  if (data.length > MAX_IMPORT_CHARS)
    return a.usage(`${file} has ${data.length} characters; an import is at most 1 MiB (split the file)`);
  if (data.trim() === '') return a.usage(`${file} is empty`);
  const r = await daemonOf(a).request<ScanView>('POST', '/api/v1/leads/import', {
    format,
    data,
    ...(typeof src === 'string' && { source: src }),
  });
  if (a.values.json) return printJson(a, r);
  a.io.out(scanText(r));
  return 0;
}

export async function exportCommand(a: HandCommandArgs): Promise<number> {
  const status = oneOf(a, 'status', STATUSES);
  const r = await daemonOf(a).request<{ csv: string; count: number }>(
    'GET',
    `/api/v1/leads/export${status ? `?status=${status}` : ''}`,
  );
  const out = a.values.out;
  if (typeof out === 'string' && out !== '') {
    await writeFile(resolve(a.io.cwd, out), r.csv);
    a.io.err(`${r.count} lead(s) written to ${out}\n`);
    return 0;
  }
  a.io.out(r.csv);
  return 0;
}

export function deliveriesTable(ds: Delivery[]): string {
  const rows = [['KEY', 'STATE', 'TRIES', 'NEXT / SENT', 'CRM ID', 'LAST ERROR']];
  for (const d of ds)
    rows.push([
      d.key,
      d.state + (d.action ? ` (${d.action})` : ''),
      String(d.attempts),
      d.state === 'sent' ? iso(d.sentAt) : d.state === 'pending' ? iso(d.nextAt) : '-',
      d.crmId ?? '-',
      oneLine(d.lastError, 60),
    ]);
  return table(rows);
}

export async function deliveriesCommand(a: HandCommandArgs): Promise<number> {
  const state = oneOf(a, 'state', DELIVERY_STATES);
  const q = `limit=${limitOf(a, 50)}${state ? `&state=${state}` : ''}`;
  const r = await daemonOf(a).request<{ deliveries: Delivery[]; next?: string }>(
    'GET',
    `/api/v1/leads/deliveries?${q}`,
  );
  if (a.values.json) return printJson(a, r);
  if (r.deliveries.length === 0) {
    a.io.out(state ? `no ${state} deliveries\n` : 'no deliveries: no lead qualified yet, or no CRM is configured\n');
    return 0;
  }
  a.io.out(deliveriesTable(r.deliveries));
  if (r.next) a.io.out(`(more: past ${r.next})\n`);
  return 0;
}

export async function retryCommand(a: HandCommandArgs): Promise<number> {
  const key = a.positionals[0]!;
  if (!/^[^\s/]{1,64}\/[de]:[^\s/]{1,320}$/.test(key))
    return a.usage(`KEY must be a delivery key <target>/<lead id> (hubspot/d:acme.example), not "${key}"`);
  const r = await daemonOf(a).request<{ delivery: Delivery }>('POST', '/api/v1/leads/deliveries/retry', { key });
  if (a.values.json) return printJson(a, r.delivery);
  const d = r.delivery;
  a.io.out(
    d.state === 'sent'
      ? `${key} was sent${d.crmId ? ` (${d.crmId})` : ''}\n`
      : `${key}: ${d.state}, next try ${iso(d.nextAt)}${d.lastError ? ` (last error: ${oneLine(d.lastError, 80)})` : ''}\n`,
  );
  return 0;
}
