import assert from 'node:assert/strict';
import { appendFileSync, copyFileSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { createFileSource, globToRegExp, parseCsv } from '../../../../hands/pipeline/sources/file.ts';
import type { PollResult, Source } from '../../../../hands/pipeline/sources/types.ts';
import type { FileSourceSpec, PipelineRecord } from '../../../../hands/pipeline/types.ts';
import { memoryState } from '../fixtures.ts';
import { nabFile } from '../../../helpers/datasets.ts';

const NAB = `${nabFile('realTraffic')}/`;
const dirs: string[] = [];
const tmp = () => {
  const d = mkdtempSync(join(tmpdir(), 'talon-file-src-'));
  dirs.push(d);
  return d;
};
after(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});
const deps = () => ({ state: memoryState(), log: () => {} });
const spec = (dir: string, format: FileSourceSpec['format'], extra: Partial<FileSourceSpec> = {}): FileSourceSpec => ({
  type: 'file',
  dir,
  format,
  ...extra,
});

/** Polls and acks until a poll reads nothing and says no more (bounded). */
async function drain(src: Source, max = 100): Promise<{ records: PipelineRecord[]; bad: PollResult['bad'] }> {
  const records: PipelineRecord[] = [];
  const bad: PollResult['bad'] = [];
  for (let i = 0; i < max; i++) {
    const r = await src.poll();
    assert.equal(r.error, undefined);
    records.push(...r.records);
    bad.push(...r.bad);
    await src.ack(r.token);
    if (r.records.length === 0 && r.bad.length === 0 && !r.more) return { records, bad };
  }
  throw new Error('did not drain');
}

describe('file source: csv', () => {
  it('reads the NAB CSVs matching the pattern: as many rows as `wc -l` counts line breaks', async () => {
    const dir = tmp();
    for (const f of ['TravelTime_387.csv', 'speed_7578.csv']) copyFileSync(join(NAB, f), join(dir, f));
    writeFileSync(join(dir, 'notes.txt'), 'not read\n');
    // the NAB files have a header and no line break after the last row: line breaks = data rows
    const breaks = (f: string) => readFileSync(join(NAB, f), 'utf8').split('\n').length - 1;
    const want = breaks('TravelTime_387.csv') + breaks('speed_7578.csv');
    const src = createFileSource(spec(dir, 'csv', { pattern: '*.csv' }), deps(), { chunkBytes: 16 * 1024 });
    const { records, bad } = await drain(src);
    assert.equal(bad.length, 0);
    assert.equal(records.length, want);
    assert.equal(want, 2500 + 1127);
    assert.deepEqual(records[0], { timestamp: '2015-07-10 14:24:00', value: '564' });
    assert.deepEqual(Object.keys(records.at(-1)!), ['timestamp', 'value']);
  });

  it('a broken row goes to bad with its line; quoted delimiter, quote and line break are kept', async () => {
    const dir = tmp();
    writeFileSync(
      join(dir, 'a.csv'),
      'id;name;note\r\n1;"Smith; John";"said ""hi""\non two lines"\r\n2;short\r\n3;ok;"x"y\n4;"last";fine\n',
    );
    const src = createFileSource(spec(dir, 'csv', { delimiter: ';' }), deps());
    const r = await src.poll();
    assert.deepEqual(r.records, [
      { id: '1', name: 'Smith; John', note: 'said "hi"\non two lines' },
      { id: '4', name: 'last', note: 'fine' },
    ]);
    assert.deepEqual(
      r.bad.map((b) => [b.line, b.error]),
      [
        [4, 'a.csv line 4: 2 fields, the header has 3'],
        [5, 'a.csv line 5: text after the closing quote of field 3'],
      ],
    );
    assert.equal(r.bad[0]!.raw, '2;short');
  });

  it('an unclosed quote is a broken row once the file has stopped growing; the rows after it are read', async () => {
    const dir = tmp();
    writeFileSync(join(dir, 'b.csv'), 'a,b\n1,2\n3,"open\n5,6\n7,8\n');
    const src = createFileSource(spec(dir, 'csv'), deps());
    const first = await src.poll();
    // it may still be growing: the open quote could close later
    assert.deepEqual(first.records, [{ a: '1', b: '2' }]);
    assert.equal(first.bad.length, 0);
    await src.ack(first.token);
    const second = await src.poll();
    assert.deepEqual(second.bad, [{ error: 'b.csv line 3: an unclosed quote in field 2', raw: '3,"open', line: 3 }]);
    assert.deepEqual(second.records, [
      { a: '5', b: '6' },
      { a: '7', b: '8' },
    ]);
  });

  it('polling twice without ack reads the same rows (a crash between poll and ack)', async () => {
    const dir = tmp();
    writeFileSync(join(dir, 'c.csv'), 'k,v\na,1\nb,2\n');
    const d = deps();
    const src = createFileSource(spec(dir, 'csv'), d);
    const a = await src.poll();
    const b = await src.poll();
    assert.equal(a.records.length, 2);
    assert.deepEqual(b.records, a.records);
    assert.equal(d.state.map.size, 0);
    await src.ack(b.token);
    // a new source on the same state (a restart) reads nothing more
    const again = await createFileSource(spec(dir, 'csv'), d).poll();
    assert.deepEqual(again.records, []);
  });

  it('a replaced file (new inode) is read from the start', async () => {
    const dir = tmp();
    const path = join(dir, 'r.csv');
    writeFileSync(path, 'k\nold1\nold2\n');
    const src = createFileSource(spec(dir, 'csv'), deps());
    await src.ack((await src.poll()).token);
    writeFileSync(join(dir, 'r.tmp'), 'k\nnew\n');
    renameSync(join(dir, 'r.tmp'), path);
    const r = await src.poll();
    assert.deepEqual(r.records, [{ k: 'new' }]);
  });
});

describe('file source: jsonl and json', () => {
  it('reads a growing JSON Lines file: only whole lines, then the appended ones', async () => {
    const dir = tmp();
    const path = join(dir, 'g.jsonl');
    writeFileSync(path, '{"n":1}\n{"n":2}\n{"n":');
    const src = createFileSource(spec(dir, 'jsonl'), deps());
    const a = await src.poll();
    assert.deepEqual(a.records, [{ n: 1 }, { n: 2 }]);
    await src.ack(a.token);
    appendFileSync(path, '3}\nnot json\n[4]\n{"n":5}\n');
    const b = await src.poll();
    assert.deepEqual(b.records, [{ n: 3 }, { n: 5 }]);
    assert.deepEqual(
      b.bad.map((x) => [x.line, x.raw]),
      [
        [4, 'not json'],
        [5, '[4]'],
      ],
    );
    // not acked: the same again
    assert.deepEqual((await src.poll()).records, b.records);
    await src.ack(b.token);
    assert.deepEqual((await src.poll()).records, []);
  });

  it('reads a big file in chunks with `more`', async () => {
    const dir = tmp();
    const lines = Array.from({ length: 500 }, (_, i) => JSON.stringify({ i, pad: 'x'.repeat(40) }));
    writeFileSync(join(dir, 'big.jsonl'), `${lines.join('\n')}\n`);
    const src = createFileSource(spec(dir, 'jsonl'), deps(), { chunkBytes: 4096 });
    const first = await src.poll();
    assert.equal(first.more, true);
    assert.ok(first.records.length > 0 && first.records.length < 500);
    await src.ack(first.token);
    const rest = await drain(src);
    const all = [...first.records, ...rest.records].map((r) => r.i);
    assert.deepEqual(
      all,
      Array.from({ length: 500 }, (_, i) => i),
    );
  });

  it('json: an array or one object; a file that does not parse goes to bad whole', async () => {
    const dir = tmp();
    writeFileSync(join(dir, '1.json'), '[{"a":1},{"a":2},3]');
    writeFileSync(join(dir, '2.json'), '{"a":9}');
    writeFileSync(join(dir, '3.json'), '{"a":');
    const src = createFileSource(spec(dir, 'json'), deps());
    const r = await src.poll();
    assert.deepEqual(r.records, [{ a: 1 }, { a: 2 }, { a: 9 }]);
    assert.equal(r.bad.length, 2);
    assert.match(r.bad[0]!.error, /^1\.json: element 2 is not an object/);
    assert.match(r.bad[1]!.error, /^3\.json: not JSON .*the whole file is left out/);
    assert.equal(r.bad[1]!.raw, '{"a":');
    await src.ack(r.token);
    assert.deepEqual((await src.poll()).records, []);
  });

  it('a missing folder is an error in the result', async () => {
    const r = await createFileSource(spec(join(tmpdir(), 'talon-no-such-dir-x'), 'json'), deps()).poll();
    assert.match(r.error!, /ENOENT/);
    assert.equal(r.token, null);
  });
});

describe('file source helpers', () => {
  it('globToRegExp', () => {
    assert.ok(globToRegExp('*.csv').test('a.csv'));
    assert.ok(!globToRegExp('*.csv').test('a.csv.tmp'));
    assert.ok(globToRegExp('data-??.[jc]sv').test('data-01.csv'));
    assert.ok(!globToRegExp('data-??.[!c]sv').test('data-01.csv'));
  });

  it('parseCsv leaves an unfinished record unread unless final', () => {
    const p = parseCsv('a,b\n1,"x\ny', ',', false);
    assert.equal(p.rows.length, 1);
    assert.equal(p.consumed, 4);
    assert.equal(p.lines, 1);
    const f = parseCsv('a,b\n1,2', ',', true);
    assert.deepEqual(
      f.rows.map((r) => ('fields' in r ? r.fields : r.error)),
      [
        ['a', 'b'],
        ['1', '2'],
      ],
    );
  });
});
