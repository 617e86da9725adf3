/**
 * Page change detection (hands/web-automation/watch.ts), fed what a browser would have read: a noisy page (a clock and a
 * rotating ad line matched by `ignore`) silent over 20 checks; a real change reported once, after confirmation, with a
 * readable diff; a flip-flop never reported; minChange by characters and by percent; a selector that disappears
 * broken after N failures, once, then recovered; page errors broken; "unchanged for N days" once, and again only after
 * a change; the price parser on a table of formats and a price drop by percent; a JSON path watch; the state through
 * JSON; parseWatch's errors naming the field.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  type Check,
  evaluate,
  normalizeText,
  parsePrice,
  parseJsonPath,
  parseWatch,
  type Watch,
  type WatchEvent,
  WatchState,
} from '../../../hands/web-automation/watch.ts';

const T0 = Date.parse('2026-12-01T00:00:00Z');
const HOUR = 3_600_000;
const DAY = 24 * HOUR;

function watchOf(raw: Record<string, unknown>): Watch {
  const w = parseWatch({ id: 'w1', url: 'https://shop.example/item', what: { text: '#main' }, ...raw });
  if (typeof w === 'string') throw new Error(w);
  return w;
}

/** runs checks in order (one an hour unless `at` is given), the state carried through JSON as the Hand would */
function run(
  watch: Watch,
  checks: Array<{ at?: number } & ({ value: string | number | null } | { error: string })>,
  state = new WatchState(),
): { state: WatchState; events: WatchEvent[][] } {
  const events: WatchEvent[][] = [];
  checks.forEach((c, i) => {
    const at = c.at ?? T0 + i * HOUR;
    const check: Check = 'error' in c ? { ok: false, error: c.error, at } : { ok: true, value: c.value, at };
    const out = evaluate(watch, state, check);
    state = WatchState.fromJSON(JSON.parse(JSON.stringify(out.state)));
    events.push(out.events);
  });
  return { state, events };
}
const types = (events: WatchEvent[][]): string[] => events.flat().map((e) => e.type);

const page = (i: number, body = 'Widget Pro\nIn stock\nPrice: 49 EUR'): string =>
  `  Updated ${String(i % 24).padStart(2, '0')}:${String((i * 7) % 60).padStart(2, '0')}:05   \n` +
  `Sponsored: ${['Buy shoes', 'Cheap flights today', 'Learn Rust'][i % 3]}\n\n${body}\n  Visitors: ${1000 + i * 13}`;

test('a noisy page (clock, rotating ad, counter, white space) never alerts over 20 checks', () => {
  const watch = watchOf({ ignore: ['Updated \\d{2}:\\d{2}:\\d{2}', '/^sponsored:.*$/i', 'Visitors: \\d+'] });
  const { events, state } = run(
    watch,
    Array.from({ length: 20 }, (_, i) => ({ value: i % 2 ? page(i) : page(i).replace(/ +/g, '\t ') })),
  );
  assert.deepEqual(types(events), []);
  assert.equal(state.value, 'Widget Pro\nIn stock\nPrice: 49 EUR');
  // the same page without the ignore patterns (and without confirmation) does alert: the noise is real
  const naive = run(
    watchOf({ confirm: false }),
    Array.from({ length: 20 }, (_, i) => ({ value: page(i) })),
  );
  assert.ok(types(naive.events).includes('changed'));
});

test('a real change is reported once, after two checks in a row, with a readable diff', () => {
  const watch = watchOf({ ignore: ['Updated \\d{2}:\\d{2}:\\d{2}', '/^sponsored:.*$/i', 'Visitors: \\d+'] });
  const changedBody = 'Widget Pro\nOut of stock\nPrice: 49 EUR';
  const checks = [0, 1, 2].map((i) => ({ value: page(i) }));
  for (let i = 3; i < 10; i++) checks.push({ value: page(i, changedBody) });
  const { events, state } = run(watch, checks);
  assert.deepEqual(types(events), ['pending', 'changed']);
  assert.deepEqual(
    events[3]!.map((e) => e.type),
    ['pending'],
  );
  const changed = events[4]![0]!;
  assert.ok(changed.type === 'changed');
  assert.equal(changed.before, 'Widget Pro\nIn stock\nPrice: 49 EUR');
  assert.equal(changed.after, changedBody);
  assert.deepEqual(changed.diff.removed, ['In stock']);
  assert.deepEqual(changed.diff.added, ['Out of stock']);
  assert.equal(changed.diff.unified, '@@ -1,3 +1,3 @@\n Widget Pro\n-In stock\n+Out of stock\n Price: 49 EUR');
  assert.equal(state.value, changedBody);
  assert.equal(state.lastChangeAt, T0 + 4 * HOUR);
  assert.equal(state.pending, null);
});

test('without confirm a change is reported on the first check that shows it', () => {
  const { events } = run(watchOf({ confirm: false }), [{ value: 'a' }, { value: 'b' }, { value: 'b' }]);
  assert.deepEqual(types(events), ['changed']);
  assert.equal(events[1]![0]!.type, 'changed');
});

test('a value that flips back and forth (A B A B …) is noise: never reported', () => {
  const values = Array.from({ length: 12 }, (_, i) => ({ value: i % 2 ? 'Stock: 3 left' : 'Stock: 4 left' }));
  const { events, state } = run(watchOf({}), values);
  assert.ok(!types(events).includes('changed'), types(events).join());
  assert.equal(state.value, 'Stock: 4 left');
  // a new candidate replaces an old one: A, B, C, C reports C (not B)
  const abc = run(watchOf({}), [{ value: 'A' }, { value: 'B' }, { value: 'C' }, { value: 'C' }]);
  assert.deepEqual(types(abc.events), ['pending', 'pending', 'changed']);
  const last = abc.events[3]![0]!;
  assert.ok(last.type === 'changed' && last.before === 'A' && last.after === 'C');
});

test('minChange in characters: small edits are no change; once they add up past it they are reported', () => {
  const watch = watchOf({ minChange: { chars: 5 }, confirm: false });
  const base = 'The meeting is on Monday in room 12';
  const { events, state } = run(watch, [
    { value: base },
    { value: 'The meeting is on Monday in room 13' },
    { value: 'The meeting is on Monday in room 14' },
    { value: 'The meeting is on Friday in room 14' },
  ]);
  assert.deepEqual(types(events), ['changed']);
  assert.equal(events[3]![0]!.type, 'changed');
  assert.equal(state.value, 'The meeting is on Friday in room 14');
});

test('minChange in percent of the text', () => {
  const long = `${'word '.repeat(200)}end`;
  const watch = watchOf({ minChange: { percent: 10 }, confirm: false });
  const small = run(watch, [{ value: long }, { value: long.replace('end', 'fin') }]);
  assert.deepEqual(types(small.events), []);
  const big = run(watch, [{ value: long }, { value: `${'word '.repeat(100)}${'other '.repeat(100)}end` }]);
  assert.deepEqual(types(big.events), ['changed']);
});

test('a selector that disappears is broken after brokenAfter checks, once, then recovered', () => {
  const watch = watchOf({ brokenAfter: 3 });
  const checks: Array<{ value: string | null }> = [{ value: 'Price 10' }];
  for (let i = 0; i < 8; i++) checks.push({ value: null });
  checks.push({ value: 'Price 10' }, { value: 'Price 10' });
  const { events, state } = run(watch, checks);
  assert.deepEqual(types(events), ['broken', 'recovered']);
  const broken = events[3]![0]!;
  assert.ok(broken.type === 'broken');
  assert.equal(broken.failures, 3);
  assert.match(broken.reason, /selector "#main" matched nothing/);
  assert.deepEqual(events[9], [{ type: 'recovered', failures: 8 }]);
  assert.equal(state.failures, 0);
  assert.equal(state.broken, false);
  // two misses then a good read: never broken
  const blip = run(watch, [{ value: 'x' }, { value: null }, { value: null }, { value: 'x' }, { value: null }]);
  assert.deepEqual(types(blip.events), []);
});

test('page errors count toward broken; the default is 3 in a row', () => {
  const watch = watchOf({});
  assert.equal(watch.brokenAfter, 3);
  const { events } = run(watch, [
    { error: 'net::ERR_CONNECTION_REFUSED' },
    { error: 'net::ERR_CONNECTION_REFUSED' },
    { error: 'timeout after 30000 ms' },
    { error: 'timeout after 30000 ms' },
    { value: 'back' },
  ]);
  assert.deepEqual(types(events), ['broken', 'recovered']);
  const broken = events[2]![0]!;
  assert.ok(broken.type === 'broken');
  assert.match(broken.reason, /the page failed: timeout/);
});

test('a failed check between two sightings neither confirms nor forgets the candidate', () => {
  const { events } = run(watchOf({}), [{ value: 'a' }, { value: 'b' }, { error: 'reset' }, { value: 'b' }]);
  assert.deepEqual(types(events), ['pending', 'changed']);
});

test('unchanged for N days fires once, and again only after a change', () => {
  const watch = watchOf({ unchangedDays: 3, confirm: false });
  const checks = [];
  for (let d = 0; d <= 8; d++) checks.push({ value: 'same', at: T0 + d * DAY });
  checks.push({ value: 'new', at: T0 + 9 * DAY });
  for (let d = 10; d <= 14; d++) checks.push({ value: 'new', at: T0 + d * DAY });
  const { events } = run(watch, checks);
  assert.deepEqual(types(events), ['unchanged', 'changed', 'unchanged']);
  assert.deepEqual(events[3], [{ type: 'unchanged', days: 3 }]);
  assert.deepEqual(events[12], [{ type: 'unchanged', days: 3 }]);
});

test('the first check sets the baseline without a changed event', () => {
  const { events, state } = run(watchOf({ confirm: false }), [{ value: '  Hello \n\n  world ' }]);
  assert.deepEqual(types(events), []);
  assert.equal(state.value, 'Hello\nworld');
  assert.deepEqual(
    state.history.map((h) => h.result),
    ['baseline'],
  );
});

test('prices in common formats', () => {
  const table: Array<[string, number, string | null]> = [
    ['$1,299.00', 1299, 'USD'],
    ['1.299,00 €', 1299, 'EUR'],
    ['EUR 12', 12, 'EUR'],
    ['12,50 €', 12.5, 'EUR'],
    ['£9.99', 9.99, 'GBP'],
    ['¥1,200', 1200, 'JPY'],
    ["CHF 1'299.50", 1299.5, 'CHF'],
    ['1\u00a0299,00\u00a0€', 1299, 'EUR'],
    ['US$ 5', 5, 'USD'],
    ['R$ 10,00', 10, 'BRL'],
    ['99,00 kr', 99, 'kr'],
    ['1299 USD', 1299, 'USD'],
    ['₹1,23,456.00', 123456, 'INR'],
    ['Pack of 2 — now 12,50 €', 12.5, 'EUR'],
    ['Price: 19.99', 19.99, null],
    ['0.299 $', 0.299, 'USD'],
    ['Only 1.299 € today', 1299, 'EUR'],
  ];
  for (const [text, amount, currency] of table) assert.deepEqual(parsePrice(text), { amount, currency }, text);
  assert.equal(parsePrice('Sold out'), null);
});

test('a price drop by percent is reported with both prices; a smaller move is not', () => {
  const watch = watchOf({ what: { price: '.price' }, minChange: { percent: 5 } });
  const { events, state } = run(watch, [
    { value: 'Now only $1,299.00!' },
    { value: 'Now only $1,279.00!' }, // -1.5 %: below the threshold
    { value: 'Now only $1,279.00!' },
    { value: 'Sale: $1,099.00' }, // -15.4 %
    { value: 'Sale: $1,099.00' },
  ]);
  assert.deepEqual(types(events), ['pending', 'changed']);
  const changed = events[4]![0]!;
  assert.ok(changed.type === 'changed' && changed.price);
  assert.deepEqual(changed.price.before, { amount: 1299, currency: 'USD' });
  assert.deepEqual(changed.price.after, { amount: 1099, currency: 'USD' });
  assert.equal(changed.price.delta, -200);
  assert.ok(Math.abs(changed.price.percent! + 15.396) < 0.01);
  assert.equal(state.value, '1099 USD');
  // text with no price in it is a failure, not a change
  const gone = run(watchOf({ what: { price: null }, brokenAfter: 1 }), [{ value: '$5' }, { value: 'Sold out' }]);
  assert.deepEqual(types(gone.events), ['broken']);
  // minChange.amount
  const byAmount = watchOf({ what: { price: null }, minChange: { amount: 10 }, confirm: false });
  assert.deepEqual(types(run(byAmount, [{ value: '€100' }, { value: '€95' }]).events), []);
  assert.deepEqual(types(run(byAmount, [{ value: '€100' }, { value: '€89' }]).events), ['changed']);
});

test('a JSON path watch compares one value of an API answer', () => {
  const watch = watchOf({ what: { json: '$.items[0].stock' }, confirm: false, brokenAfter: 2 });
  const body = (stock: unknown, ts: number): string =>
    JSON.stringify({
      generated: ts,
      items: [
        { id: 1, stock },
        { id: 2, stock: 9 },
      ],
    });
  const { events } = run(watch, [
    { value: body(5, 1) },
    { value: body(5, 2) }, // only the timestamp moved: not compared
    { value: body(4, 3) },
    { value: JSON.stringify({ items: [] }) }, // the path is gone
    { value: 'not json' },
  ]);
  assert.deepEqual(types(events), ['changed', 'broken']);
  const changed = events[2]![0]!;
  assert.ok(changed.type === 'changed' && changed.before === '5' && changed.after === '4');
  const broken = events[4]![0]!;
  assert.ok(broken.type === 'broken' && /not JSON/.test(broken.reason));
  // an object value is compared as sorted, indented JSON, so key order is no change and the diff goes by lines
  const obj = watchOf({ what: { json: "$['items'][-1]" }, confirm: false });
  const r = run(obj, [
    { value: '{"items":[{"a":1,"b":[1,2]}]}' },
    { value: '{"items":[{"b":[1,2],"a":1}]}' },
    { value: '{"items":[{"b":[1,3],"a":1}]}' },
  ]);
  assert.deepEqual(types(r.events), ['changed']);
  const c = r.events[2]![0]!;
  assert.ok(c.type === 'changed');
  assert.deepEqual(c.diff.removed, ['2']);
  assert.deepEqual(c.diff.added, ['3']);
  assert.deepEqual(parseJsonPath('$.a["b c"][2].d'), ['a', 'b c', 2, 'd']);
});

test('an attribute watch: the value compared as text', () => {
  const watch = watchOf({ what: { attribute: { selector: 'a.download', name: 'href' } }, confirm: false });
  const { events } = run(watch, [{ value: '/files/app-1.2.zip' }, { value: '/files/app-1.3.zip' }]);
  assert.deepEqual(types(events), ['changed']);
});

test('the state round-trips through JSON and a bad stored state is refused naming the field', () => {
  const { state } = run(watchOf({}), [{ value: 'a' }, { value: 'b' }, { error: 'x' }]);
  const again = WatchState.fromJSON(JSON.parse(JSON.stringify(state)));
  assert.deepEqual(again.toJSON(), state.toJSON());
  assert.equal(again.pending?.value, 'b');
  assert.equal(again.failures, 1);
  assert.equal(again.history.length, 3);
  assert.throws(
    () => WatchState.fromJSON({ ...state.toJSON(), failures: -1 }),
    (e: Error & { code?: string }) => e.code === 'CONFIG_INVALID' && /failures/.test(e.message),
  );
  // the history is a bounded tail
  const many = run(
    watchOf({}),
    Array.from({ length: 50 }, () => ({ value: 'same' })),
  );
  assert.equal(many.state.history.length, 20);
});

test('normalizeText collapses white space per line and removes ignored text', () => {
  const re = [/\d+ views/gm];
  assert.equal(normalizeText('  a \t b \r\n\r\n c 123 views  \n 45 views', re), 'a b\nc');
});

test('parseWatch: a valid watch with defaults, and errors naming the field', () => {
  const w = parseWatch(
    { id: 'shop-1', url: 'https://shop.example/p/1', what: { text: null }, schedule: '*/30 * * * *' },
    'watches[0]',
  );
  assert.ok(typeof w !== 'string');
  assert.deepEqual(
    { what: w.what, confirm: w.confirm, brokenAfter: w.brokenAfter, schedule: w.schedule },
    { what: { kind: 'text' }, confirm: true, brokenAfter: 3, schedule: '*/30 * * * *' },
  );
  const ok = { id: 'w', url: 'https://a.example/', what: { text: '#x' } };
  const cases: Array<[Record<string, unknown>, RegExp]> = [
    [{ ...ok, id: 'Bad Id' }, /^watches\[0\]\.id: /],
    [{ ...ok, url: 'ftp://a.example/' }, /^watches\[0\]\.url: must be an http\(s\) URL/],
    [{ ...ok, url: 'https://u:p@a.example/' }, /^watches\[0\]\.url: must not carry/],
    [{ ...ok, what: {} }, /^watches\[0\]\.what: must have exactly one/],
    [{ ...ok, what: { screenshot: '#a' } }, /^watches\[0\]\.what\.screenshot: not a kind of watch/],
    [{ ...ok, what: { json: 'items[0]' } }, /^watches\[0\]\.what\.json: "items\[0\]" must start with \$/],
    [{ ...ok, what: { json: '$.items[*]' } }, /^watches\[0\]\.what\.json: .*wildcards/],
    [{ ...ok, what: { attribute: { selector: 'a' } } }, /^watches\[0\]\.what\.attribute\.name: /],
    [{ ...ok, what: { attribute: { name: 'href' } } }, /^watches\[0\]\.what\.attribute\.selector: /],
    [{ ...ok, what: { text: 42 } }, /^watches\[0\]\.what\.text: must be a selector/],
    [{ ...ok, schedule: 'every hour' }, /^watches\[0\]\.schedule: /],
    [{ ...ok, schedule: '99 * * * *' }, /^watches\[0\]\.schedule: .*croner/],
    [{ ...ok, ignore: 'x' }, /^watches\[0\]\.ignore: must be a list/],
    [{ ...ok, ignore: ['ok', '(unclosed'] }, /^watches\[0\]\.ignore\[1\]: .*not a regular expression/],
    [{ ...ok, ignore: ['a*'] }, /^watches\[0\]\.ignore\[0\]: .*matches an empty text/],
    [{ ...ok, ignore: ['/x/g'] }, /^watches\[0\]\.ignore\[0\]: flags "g"/],
    [{ ...ok, minChange: { amount: 5 } }, /^watches\[0\]\.minChange\.amount: not a threshold of a text watch/],
    [{ ...ok, what: { price: '#p' }, minChange: { chars: 5 } }, /^watches\[0\]\.minChange\.chars: not a threshold/],
    [{ ...ok, minChange: { percent: -1 } }, /^watches\[0\]\.minChange\.percent: must be a number ≥ 0/],
    [{ ...ok, confirm: 'yes' }, /^watches\[0\]\.confirm: /],
    [{ ...ok, unchangedDays: 0 }, /^watches\[0\]\.unchangedDays: /],
    [{ ...ok, brokenAfter: 1.5 }, /^watches\[0\]\.brokenAfter: /],
    [{ ...ok, interval: 5 }, /^watches\[0\]\.interval: not a watch field/],
  ];
  for (const [raw, re] of cases) {
    const got = parseWatch(raw, 'watches[0]');
    assert.equal(typeof got, 'string', JSON.stringify(raw));
    assert.match(got as string, re, JSON.stringify(raw));
  }
  assert.match(parseWatch('nope') as string, /^watch: must be an object/);
});
