/**
 * The Pipeline Hand's file sink (hands/pipeline/sinks/file.ts) on real files in a temp folder: JSON Lines and CSV
 * appended and read back after the sink is closed and a new one opened (what was answered done is on disk), CSV
 * quoting checked by an independent RFC 4180 reader, rotation by size and by age (a fake clock), a write error.
 * Records are readings from a public traffic data set (../shared/datasets/nab, speed_6005.csv).
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { FILE_BACKOFF, createFileSink, csvField, utcStamp } from '../../../../hands/pipeline/sinks/file.ts';
import type { SinkDeps, SinkEntry } from '../../../../hands/pipeline/sinks/types.ts';
import type { FileSinkSpec, PipelineRecord } from '../../../../hands/pipeline/types.ts';
import { nabRows } from '../fixtures.ts';

const ROWS: PipelineRecord[] = nabRows().map(({ timestamp, value }) => ({ timestamp, speed: value }));
const entries = (records: PipelineRecord[], from = 0): SinkEntry[] =>
  records.map((record, i) => ({ id: `p1:${from + i + 1}`, record }));

const dir = mkdtempSync(join(tmpdir(), 'talon-file-sink-'));
after(() => rmSync(dir, { recursive: true, force: true }));

let clock = Date.UTC(2026, 11, 3, 19, 22, 0, 123);
const deps: SinkDeps = { now: () => clock, log: () => {} };
const spec = (name: string, over: Partial<FileSinkSpec> = {}): FileSinkSpec => ({
  type: 'file',
  inputs: ['raw'],
  path: join(dir, name),
  format: 'jsonl',
  rotate: { maxBytes: 64 * 1024 * 1024 },
  ...over,
});

/** an RFC 4180 reader written for the test (quoted fields, doubled quotes, CRLF or LF inside quotes) */
function readCsv(text: string): string[][] {
  const rows: string[][] = [];
  let row: string[] = [];
  let cur = '';
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i] as string;
    if (quoted) {
      if (c === '"' && text[i + 1] === '"') {
        cur += '"';
        i++;
      } else if (c === '"') quoted = false;
      else cur += c;
    } else if (c === '"') quoted = true;
    else if (c === ',') {
      row.push(cur);
      cur = '';
    } else if (c === '\r' && text[i + 1] === '\n') {
      row.push(cur);
      rows.push(row);
      row = [];
      cur = '';
      i++;
    } else cur += c;
  }
  assert.equal(cur, '', 'the file ends with a line end');
  return rows;
}

describe('file sink', () => {
  test('JSON Lines: appended, on disk after close, a second writer appends after it', async () => {
    const s = spec('readings.jsonl');
    const one = createFileSink(s, deps);
    assert.deepEqual(await one.write(entries(ROWS.slice(0, 50))), { done: 50, rejected: [] });
    await one.close();
    const two = createFileSink(s, deps);
    assert.deepEqual(await two.write(entries(ROWS.slice(50, 80), 50)), { done: 30, rejected: [] });
    await two.close();
    const lines = readFileSync(s.path, 'utf8').trimEnd().split('\n');
    assert.deepEqual(
      lines.map((l) => JSON.parse(l)),
      ROWS.slice(0, 80),
    );
    assert.deepEqual(
      readdirSync(dir).filter((n) => n.startsWith('readings')),
      ['readings.jsonl'],
    );
  });

  test('a record that cannot be serialized is rejected alone, the rest written', async () => {
    const s = spec('bigint.jsonl');
    const sink = createFileSink(s, deps);
    const records = [ROWS[0], { ...ROWS[1], big: 10n }, ROWS[2]] as PipelineRecord[];
    const r = await sink.write(entries(records));
    assert.equal(r.done, 3);
    assert.deepEqual(
      r.rejected.map((x) => x.index),
      [1],
    );
    assert.match(r.rejected[0]?.error ?? '', /cannot be written as jsonl: .*BigInt/);
    await sink.close();
    assert.deepEqual(
      readFileSync(s.path, 'utf8')
        .trimEnd()
        .split('\n')
        .map((l) => JSON.parse(l)),
      [ROWS[0], ROWS[2]],
    );
  });

  test('CSV: header from the first record, commas, quotes, newlines quoted; reopened: no second header', async () => {
    const s = spec('notes.csv', { format: 'csv' });
    const tricky: PipelineRecord[] = [
      { ...ROWS[0], note: 'plain' },
      { ...ROWS[1], note: 'a, b' },
      { ...ROWS[2], note: 'say "hi"' },
      { ...ROWS[3], note: 'two\nlines\r\nand crlf' },
      { ...ROWS[4], note: ' padded ' },
      { ...ROWS[5], note: null },
      { ...ROWS[6], note: { nested: [1, 'x,y'] } },
      { speed: 7, note: 'no timestamp', timestamp: undefined },
    ];
    const one = createFileSink(s, deps);
    assert.deepEqual(await one.write(entries(tricky.slice(0, 5))), { done: 5, rejected: [] });
    await one.close();
    const two = createFileSink(s, deps);
    assert.deepEqual(await two.write(entries(tricky.slice(5), 5)), { done: 3, rejected: [] });
    await two.close();
    const text = readFileSync(s.path, 'utf8');
    const rows = readCsv(text);
    assert.deepEqual(rows[0], ['timestamp', 'speed', 'note']);
    assert.equal(rows.length, 1 + tricky.length);
    assert.deepEqual(
      rows.slice(1).map((r) => r[2]),
      ['plain', 'a, b', 'say "hi"', 'two\nlines\r\nand crlf', ' padded ', '', '{"nested":[1,"x,y"]}', 'no timestamp'],
    );
    assert.deepEqual(rows[1], [ROWS[0]?.timestamp, String(ROWS[0]?.speed), 'plain']);
    assert.deepEqual(rows[8], ['', '7', 'no timestamp']);
    assert.equal(csvField('a"b'), '"a""b"');
    assert.equal(csvField(3.5), '3.5');
  });

  test('CSV: a record with a new field starts a new file with its own header (nothing dropped)', async () => {
    const s = spec('grow.csv', { format: 'csv' });
    const sink = createFileSink(s, deps);
    clock += 1000;
    const r = await sink.write(entries([ROWS[0], ROWS[1], { ...ROWS[2], lane: 3 }, ROWS[3]] as PipelineRecord[]));
    assert.deepEqual(r, { done: 4, rejected: [] });
    await sink.close();
    const rotated = `grow.${utcStamp(clock)}.csv`;
    assert.deepEqual(
      readdirSync(dir)
        .filter((n) => n.startsWith('grow'))
        .sort(),
      [rotated, 'grow.csv'].sort(),
    );
    assert.deepEqual(
      readCsv(readFileSync(join(dir, rotated), 'utf8')).map((r) => r[0]),
      ['timestamp', ROWS[0]?.timestamp, ROWS[1]?.timestamp],
    );
    const current = readCsv(readFileSync(s.path, 'utf8'));
    assert.deepEqual(current[0], ['timestamp', 'speed', 'lane']);
    assert.deepEqual(current.slice(1), [
      [ROWS[2]?.timestamp, String(ROWS[2]?.speed), '3'],
      [ROWS[3]?.timestamp, String(ROWS[3]?.speed), ''],
    ]);
  });

  test('rotation by size: named <name>.<UTC stamp>.<ext>, none past maxBytes, every record once in order', async () => {
    const s = spec('sized.jsonl', { rotate: { maxBytes: 1024 } });
    const sink = createFileSink(s, deps);
    const records = ROWS.slice(0, 120);
    for (let i = 0; i < records.length; i += 40) {
      clock += 1000; // each batch's rotations get a later stamp
      assert.equal((await sink.write(entries(records.slice(i, i + 40), i))).done, 40);
    }
    await sink.close();
    const names = readdirSync(dir).filter((n) => n.startsWith('sized.'));
    const rotated = names.filter((n) => n !== 'sized.jsonl');
    assert.ok(rotated.length >= 4, `expected several rotated files, got ${names.join(' ')}`);
    for (const n of rotated) assert.match(n, /^sized\.\d{8}T\d{9}Z(-\d+)?\.jsonl$/);
    for (const n of names) assert.ok(statSync(join(dir, n)).size <= 1024, `${n} is over maxBytes`);
    // rotated files sort by stamp (then clash suffix): read them in that order, the current file last
    const rank = (n: string): [string, number] => {
      const m = /^sized\.(\w+?)(?:-(\d+))?\.jsonl$/.exec(n) as RegExpExecArray;
      return [m[1] as string, Number(m[2] ?? 0)];
    };
    const order = [...rotated]
      .sort((a, b) => {
        const [sa, na] = rank(a);
        const [sb, nb] = rank(b);
        return sa === sb ? na - nb : sa < sb ? -1 : 1;
      })
      .concat('sized.jsonl');
    const back = order.flatMap((n) =>
      readFileSync(join(dir, n), 'utf8')
        .trimEnd()
        .split('\n')
        .map((l) => JSON.parse(l)),
    );
    assert.deepEqual(back, records);
  });

  test('rotation by age (fake clock)', async () => {
    const s = spec('aged.jsonl', { rotate: { maxAgeMs: 60_000 } });
    const sink = createFileSink(s, deps);
    assert.equal((await sink.write(entries(ROWS.slice(0, 3)))).done, 3);
    clock += 30_000;
    assert.equal((await sink.write(entries(ROWS.slice(3, 6), 3))).done, 3);
    assert.deepEqual(
      readdirSync(dir).filter((n) => n.startsWith('aged.')),
      ['aged.jsonl'],
    );
    clock += 30_000;
    assert.equal((await sink.write(entries(ROWS.slice(6, 9), 6))).done, 3);
    await sink.close();
    const rotated = `aged.${utcStamp(clock)}.jsonl`;
    assert.deepEqual(
      readdirSync(dir)
        .filter((n) => n.startsWith('aged.'))
        .sort(),
      [rotated, 'aged.jsonl'].sort(),
    );
    assert.equal(readFileSync(join(dir, rotated), 'utf8').trimEnd().split('\n').length, 6);
    assert.equal(readFileSync(s.path, 'utf8').trimEnd().split('\n').length, 3);
  });

  test('a write error: done 0, retryAfterMs with backoff, the error; written once the path works', async () => {
    const blocker = join(dir, 'blocked');
    writeFileSync(blocker, 'a file where the folder should be');
    const s = spec('blocked/out.jsonl');
    const sink = createFileSink(s, deps);
    const first = await sink.write(entries(ROWS.slice(0, 2)));
    assert.equal(first.done, 0);
    assert.deepEqual(first.rejected, []);
    assert.equal(first.retryAfterMs, FILE_BACKOFF.firstMs);
    assert.match(first.error ?? '', /writing .*blocked\/out\.jsonl failed: (EEXIST|ENOTDIR)/);
    assert.equal((await sink.write(entries(ROWS.slice(0, 2)))).retryAfterMs, FILE_BACKOFF.firstMs * 2);
    rmSync(blocker);
    assert.deepEqual(await sink.write(entries(ROWS.slice(0, 2))), { done: 2, rejected: [] });
    await sink.close();
    assert.equal(readFileSync(s.path, 'utf8').trimEnd().split('\n').length, 2);
  });
});
