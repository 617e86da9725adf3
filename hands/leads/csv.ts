/**
 * The Lead Generation Hand's CSV export: one row per lead, the columns in CSV_COLUMNS, RFC 4180 (CRLF line ends,
 * every field that holds a comma, a quote, CR or LF quoted, quotes doubled) with a header row.
 *
 * Spreadsheet safety: a value that starts with =, +, -, @, a tab or a CR would be read as a formula by Excel,
 * LibreOffice or Google Sheets (CSV injection: a company name scraped from a page is not trusted). Such a value gets a
 * leading `'`, which the spreadsheet shows as text (so does a phone number written +49…, as OWASP advises). Numbers
 * Talon writes itself (score, size) are not prefixed; a negative one cannot occur. Lists (e-mails, phones, reasons,
 * technologies, sources) are joined by `;`; times are ISO 8601 (UTC).
 */
import type { Lead } from './types.ts';

export const CSV_COLUMNS: readonly string[] = [
  'id',
  'company',
  'domain',
  'website',
  'emails',
  'phones',
  'contact',
  'title',
  'industry',
  'location',
  'size',
  'score',
  'status',
  'reasons',
  'technologies',
  'sources',
  'first_seen',
  'last_seen',
];

/** a value a spreadsheet would run as a formula gets a leading ' */
export function guardFormula(v: string): string {
  return /^[=+\-@\t\r]/.test(v) ? `'${v}` : v;
}

/** one field, RFC 4180 quoted when it needs to be */
export function csvField(v: string): string {
  return /[",\r\n]/.test(v) ? `"${v.replace(/"/g, '""')}"` : v;
}

const iso = (ms: number): string => (Number.isFinite(ms) ? new Date(ms).toISOString() : '');

function row(l: Lead): string[] {
  const text = (v: string | undefined): string => guardFormula(v ?? '');
  const list = (xs: Array<{ value: string }> | string[]): string =>
    guardFormula(xs.map((x) => (typeof x === 'string' ? x : x.value)).join(';'));
  return [
    text(l.id),
    text(l.company?.value),
    text(l.domain),
    text(l.website?.value),
    list(l.emails),
    list(l.phones),
    text(l.contact?.value),
    text(l.title?.value),
    text(l.industry?.value),
    text(l.location?.value),
    l.size !== undefined && Number.isFinite(l.size.value) ? String(l.size.value) : '',
    Number.isFinite(l.score) ? String(l.score) : '',
    text(l.status),
    list(l.reasons),
    list(l.technologies),
    list(l.sources),
    iso(l.firstSeen),
    iso(l.lastSeen),
  ];
}

/** the leads as CSV text: a header row, then one row per lead, each line ending in CRLF */
export function leadsToCsv(leads: Lead[]): string {
  const lines = [CSV_COLUMNS.map(csvField).join(',')];
  for (const l of leads) lines.push(row(l).map(csvField).join(','));
  return `${lines.join('\r\n')}\r\n`;
}
