import { test } from 'node:test';
import assert from 'node:assert/strict';
import { TalonError } from '../../../runtime/core/errors.ts';
import { NO_CAPABILITIES } from '../../../runtime/core/grants.ts';
import { dataTools } from '../../../runtime/tools/builtin/data.ts';
import type { ToolCaller, ToolDefinition } from '../../../runtime/tools/types.ts';

const tools = new Map(dataTools().map((t) => [t.name, t as ToolDefinition<Record<string, unknown>, any>]));
const c: ToolCaller = { actor: 'hand:t', admin: false, grants: NO_CAPABILITIES, folder: '/nonexistent' };

function call(name: string, input: Record<string, unknown>) {
  const t = tools.get(name);
  assert.ok(t, name);
  assert.equal(t.check?.(input, c) ?? null, null);
  return t.run(input, { caller: c, signal: new AbortController().signal, timeoutMs: 30_000, maxOutputBytes: 65_536 });
}

const store = {
  store: {
    book: [
      { title: 'Sayings', price: 8.95, tags: ['a'] },
      { title: 'Sword', price: 12.99 },
      { title: 'Moby Dick', price: 8.99, isbn: '0-553' },
    ],
    bicycle: { color: 'red', price: 19.95 },
  },
};

test('json.query: paths, wildcards, recursive descent, slices, unions', async () => {
  assert.deepEqual((await call('json.query', { data: store, path: '$.store.book[*].title' })).results, [
    'Sayings',
    'Sword',
    'Moby Dick',
  ]);
  const prices = await call('json.query', { data: store, path: '$..price' });
  assert.equal(prices.count, 4);
  assert.deepEqual(prices.results.sort(), [12.99, 19.95, 8.95, 8.99].sort());
  assert.ok(prices.paths.includes("$['store']['bicycle']['price']"));
  assert.deepEqual((await call('json.query', { data: store, path: '$.store.book[0:2].price' })).results, [8.95, 12.99]);
  assert.deepEqual((await call('json.query', { data: store, path: '$.store.bicycle[color,price]' })).results, [
    'red',
    19.95,
  ]);
  assert.deepEqual(
    (await call('json.query', { data: store, path: '$.store.book[?(@.isbn)]' }).catch((e) => e)).code,
    'TOOL_BAD_INPUT',
  );
  assert.deepEqual(await call('json.query', { data: store, path: '$.nothing.here' }), {
    count: 0,
    results: [],
    paths: [],
  });
});

test('json.query: data as JSON text; text that is not JSON is refused', async () => {
  const r = await call('json.query', {
    data: JSON.stringify(store),
    path: '$.store.bicycle.color',
    language: 'jsonpath',
  });
  assert.deepEqual(r.results, ['red']);
  await assert.rejects(call('json.query', { data: '{not json', path: '$' }), (e) => {
    assert.ok(e instanceof TalonError);
    assert.equal(e.code, 'TOOL_BAD_INPUT');
    assert.equal((e.details as { errors: Array<{ path: string }> }).errors[0]?.path, '/data');
    return true;
  });
  assert.deepEqual(await call('json.query', { data: 42, path: '$' }), { count: 1, results: [42], paths: ['$'] });
});

test('json.query: script and filter expressions never run', async () => {
  let ran = false;
  (globalThis as Record<string, unknown>).__talonJsonpathProbe = () => {
    ran = true;
  };
  try {
    for (const path of [
      '$..book[?(@.price < 10)]',
      '$..book[?(globalThis.__talonJsonpathProbe())]',
      '$..book[(globalThis.__talonJsonpathProbe())]',
      "$..[?(@.constructor.constructor('return process')().exit(1))]",
    ]) {
      const e = await call('json.query', { data: store, path }).catch((err) => err);
      assert.ok(e instanceof TalonError, path);
      assert.equal(e.code, 'TOOL_BAD_INPUT', path);
      assert.match(e.message, /not supported/);
    }
    assert.equal(ran, false);
  } finally {
    delete (globalThis as Record<string, unknown>).__talonJsonpathProbe;
  }
});

test('csv.parse: header, quotes, separators and newlines in quotes, a BOM, ragged rows', async () => {
  const text = '\ufeffname,note,n\r\nann,"a, b",1\nbob,"say ""hi""\nthere",2\n\ncid,short\n';
  const r = await call('csv.parse', { text });
  assert.deepEqual(r.columns, ['name', 'note', 'n']);
  assert.deepEqual(r.rows, [
    ['ann', 'a, b', '1'],
    ['bob', 'say "hi"\nthere', '2'],
    ['cid', 'short'],
  ]);
  assert.equal(r.total, 3);
  assert.equal(r.truncated, false);
});

test('csv.parse: no header, another delimiter, a limit', async () => {
  const r = await call('csv.parse', { text: 'a;b\n1;2\n3;4\n', delimiter: ';', header: false, limit: 2 });
  assert.deepEqual(r, {
    columns: [],
    rows: [
      ['a', 'b'],
      ['1', '2'],
    ],
    total: 3,
    truncated: true,
  });
});

test('csv.parse: broken CSV is TOOL_BAD_INPUT with the parser message', async () => {
  await assert.rejects(call('csv.parse', { text: 'a,b\n"open,1\n' }), (e) => {
    assert.ok(e instanceof TalonError);
    assert.equal(e.code, 'TOOL_BAD_INPUT');
    assert.match(e.message, /not valid CSV/);
    return true;
  });
});

test('both are read-only and idempotent', () => {
  for (const t of tools.values()) {
    assert.equal(t.annotations.readOnlyHint, true, t.name);
    assert.equal(t.annotations.idempotentHint, true, t.name);
  }
});
