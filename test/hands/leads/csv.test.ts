/**
 * The leads' CSV export: the header, RFC 4180 quoting read back by a real CSV parser (csv-parse), lists joined by
 * `;`, ISO times, and the formula-injection guard for values a spreadsheet would run.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parse } from 'csv-parse/sync';
import { CSV_COLUMNS, csvField, guardFormula, leadsToCsv } from '../../../hands/leads/csv.ts';
import type { Lead } from '../../../hands/leads/types.ts';

const T0 = Date.UTC(2026, 11, 3, 12, 0, 0);
const src = (value: string) => ({ value, source: 'https://directory.example/list', at: T0 });

function lead(over: Partial<Lead> = {}): Lead {
  return {
    id: 'd:acme.example',
    domain: 'acme.example',
    company: src('ACME, "the" Robot Co.'),
    website: src('https://acme.example/'),
    emails: [src('info@acme.example'), src('sales@acme.example')],
    phones: [src('030 123456')],
    contact: src('Ada Lovelace'),
    title: src('CEO'),
    industry: src('Robotics'),
    location: src('Berlin\nGermany'),
    size: { value: 120, source: 'https://acme.example/about', at: T0 },
    social: [],
    technologies: [src('WordPress'), src('React')],
    mx: [],
    score: 82,
    reasons: ['industry: robotics +25', 'location: Berlin +15'],
    status: 'qualified',
    sources: ['directory', 'feed'],
    firstSeen: T0,
    lastSeen: T0 + 3600_000,
    version: 'v1',
    ...over,
  };
}

describe('leadsToCsv', () => {
  it('writes the header and one RFC 4180 row per lead that a CSV parser reads back', () => {
    const csv = leadsToCsv([lead(), lead({ id: 'e:bob@example.org', domain: undefined, company: undefined })]);
    assert.ok(csv.startsWith(`${CSV_COLUMNS.join(',')}\r\n`));
    assert.ok(csv.endsWith('\r\n'));
    const rows = parse(csv, { columns: true }) as Array<Record<string, string>>;
    assert.equal(rows.length, 2);
    const r = rows[0] as Record<string, string>;
    assert.deepEqual(Object.keys(r), [...CSV_COLUMNS]);
    assert.equal(r.company, 'ACME, "the" Robot Co.');
    assert.equal(r.location, 'Berlin\nGermany');
    assert.equal(r.emails, 'info@acme.example;sales@acme.example');
    assert.equal(r.technologies, 'WordPress;React');
    assert.equal(r.reasons, 'industry: robotics +25;location: Berlin +15');
    assert.equal(r.size, '120');
    assert.equal(r.score, '82');
    assert.equal(r.first_seen, '2026-12-03T12:00:00.000Z');
    assert.equal(r.last_seen, '2026-12-03T13:00:00.000Z');
    assert.equal(rows[1]?.company, '');
    assert.equal(rows[1]?.domain, '');
    assert.ok(csv.includes('"ACME, ""the"" Robot Co."'), 'quotes doubled inside a quoted field');
  });

  it('guards values a spreadsheet would run as formulas', () => {
    const evil = lead({
      company: src('=HYPERLINK("http://evil.example","click")'),
      contact: src('+1+1'),
      title: src('-2+3'),
      industry: src('@SUM(A1:A9)'),
      location: src('\tTab'),
      phones: [src('\r=1')],
      technologies: [src('=cmd|calc!A0'), src('React')],
    });
    const rows = parse(leadsToCsv([evil]), { columns: true }) as Array<Record<string, string>>;
    const r = rows[0] as Record<string, string>;
    assert.equal(r.company, `'=HYPERLINK("http://evil.example","click")`);
    assert.equal(r.contact, "'+1+1");
    assert.equal(r.title, "'-2+3");
    assert.equal(r.industry, "'@SUM(A1:A9)");
    assert.equal(r.location, "'\tTab");
    assert.equal(r.phones, "'\r=1");
    assert.equal(r.technologies, "'=cmd|calc!A0;React");
    assert.equal(r.website, 'https://acme.example/', 'an ordinary value is left alone');
  });

  it('the helpers: quoting only when needed, the guard only at the start', () => {
    assert.equal(csvField('plain'), 'plain');
    assert.equal(csvField('a,b'), '"a,b"');
    assert.equal(csvField('say "hi"'), '"say ""hi"""');
    assert.equal(csvField('line\r\nbreak'), '"line\r\nbreak"');
    assert.equal(guardFormula('a=b'), 'a=b');
    assert.equal(guardFormula('=1'), "'=1");
    assert.equal(leadsToCsv([]), `${CSV_COLUMNS.join(',')}\r\n`);
  });
});
