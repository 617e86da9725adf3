/**
 * Code transforms in QuickJS (hands/pipeline/sandbox.ts): compile errors with the user's line and column, results
 * (one record, fan-out, drop, wrong shapes), the standard library (ctx.now, ctx.log, deterministic Date and
 * Math.random), and the escapes a hostile transform tries — host objects, prototype pollution, eval/Function, an
 * infinite loop (also inside a try/catch), deep recursion, 1 GB allocations, a thrown non-Error — after each of which
 * the same CodeTransform still transforms a good record. The records/s figures are printed as diagnostics, never
 * asserted.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { TalonError } from '../../../runtime/core/errors.ts';
import { checkCode, compileCode, type CodeResult, type CodeTransform } from '../../../hands/pipeline/sandbox.ts';
import { NAB_DIR } from '../../helpers/datasets.ts';

const ADD_FIELD = 'function transform(record, ctx) {\n  record.doubled = record.value * 2;\n  return record;\n}';

function ok(r: CodeResult): Record<string, unknown>[] {
  assert.ok('out' in r, `expected records, got ${JSON.stringify(r)}`);
  return r.out;
}
function err(r: CodeResult): string {
  assert.ok('error' in r, `expected an error, got ${JSON.stringify(r)}`);
  return r.error;
}
async function stillWorks(t: CodeTransform): Promise<void> {
  assert.deepEqual(ok(await t.run({ value: 21, ts: 1 })), [{ value: 21, ts: 1, doubled: 42 }]);
}

async function loadError(source: string): Promise<TalonError> {
  try {
    (await compileCode(source, { name: 'pipelines.p1.transforms.clean' })).dispose();
  } catch (e) {
    assert.ok(e instanceof TalonError);
    return e;
  }
  assert.fail('expected a compile error');
}

test('a syntax error is a BAD_REQUEST naming the line and column of the user source', async () => {
  const e = await loadError('const k = 2;\nfunction transform(r) {\n  return r.a +;\n}');
  assert.equal(e.code, 'BAD_REQUEST');
  assert.match(e.message, /^pipelines\.p1\.transforms\.clean: syntax error: .* \(line 3, column 15\)$/);
  assert.deepEqual(e.details, { line: 3, column: 15 });
  // on the first line: the wrapper's own line is not counted
  const first = await loadError('let a = ;\nfunction transform(r) { return r }');
  assert.deepEqual(first.details, { line: 1, column: 9 });
  // an unclosed brace, or one too many: said in words, at the source's last line (not the wrapper's)
  const open = await loadError('function transform(r) {\n  return r;\n');
  assert.match(open.message, /syntax error at the end of the code: .* not closed, or one `}` too many .* \(line 3\)$/);
  const extra = await loadError('function transform(r) { return r } }');
  assert.match(extra.message, /syntax error at the end of the code: .* \(line 1\)$/);
});

test('a source without transform, an empty one, a throwing or looping top level: clear load errors', async () => {
  assert.match(
    (await loadError('function transfrom(r) { return r }')).message,
    /does not define a function named transform/,
  );
  assert.match((await loadError('const transform = 5;')).message, /does not define a function named transform/);
  assert.match((await loadError('   ')).message, /source is empty/);
  const threw = await loadError('let x = 1;\nnull.x;\nfunction transform(r) { return r }');
  assert.match(threw.message, /threw at load: TypeError: .*null.* \(line 2, column \d+\)/);
  const loop = await loadError('while (true) {}\nfunction transform(r) { return r }');
  assert.match(loop.message, /top level ran longer than 1000 ms at load/);
  await assert.rejects(compileCode(ADD_FIELD, { timeoutMs: -1 }), /timeoutMs must be a number above 0/);
  await assert.rejects(compileCode(ADD_FIELD, { memoryMb: 5000 }), /memoryMb must be at most 1024/);
});

test('checkCode: null for good code, the message for bad code', async () => {
  assert.equal(await checkCode(ADD_FIELD), null);
  assert.match((await checkCode('function transform(r) {')) ?? '', /syntax error/);
  assert.match((await checkCode('x = 1')) ?? '', /threw at load: ReferenceError/);
});

test('one record, fan-out, drop, and results that are not records', async () => {
  const t = await compileCode(
    `function transform(r, ctx) {
      switch (r.kind) {
        case 'one': return { ...r, seen: true };
        case 'many': return r.items.map((v) => ({ v }));
        case 'drop': return null;
        case 'undef': return;
        case 'number': return 5;
        case 'array-in-array': return [{ a: 1 }, [2]];
        case 'date': return new Date(0);
        case 'class': { class P { constructor() { this.x = 1 } }; return new P(); }
        case 'cycle': { const o = {}; o.o = o; return o; }
        case 'bigint': return { n: 10n };
        case 'huge': return { s: 'x'.repeat(2 * 1024 * 1024) };
        case 'lossy': return { f() {}, u: undefined, nan: NaN, d: new Date(0) };
      }
    }`,
  );
  assert.deepEqual(ok(await t.run({ kind: 'one', a: 1 })), [{ kind: 'one', a: 1, seen: true }]);
  assert.deepEqual(ok(await t.run({ kind: 'many', items: [1, 2, 3] })), [{ v: 1 }, { v: 2 }, { v: 3 }]);
  assert.deepEqual(ok(await t.run({ kind: 'drop' })), []);
  assert.deepEqual(ok(await t.run({ kind: 'undef' })), []);
  assert.match(
    err(await t.run({ kind: 'number' })),
    /^transform returned a number; return a record \(a plain object\)/,
  );
  assert.match(err(await t.run({ kind: 'array-in-array' })), /^transform returned an array at \[1\]/);
  assert.match(err(await t.run({ kind: 'date' })), /^transform returned an object of class Date;/);
  assert.match(err(await t.run({ kind: 'class' })), /^transform returned an object of class P;/);
  assert.match(
    err(await t.run({ kind: 'cycle' })),
    /^transform returned a record that is not JSON: TypeError: circular/,
  );
  assert.match(err(await t.run({ kind: 'bigint' })), /^transform returned a record that is not JSON: TypeError/);
  assert.match(err(await t.run({ kind: 'huge' })), /^transform returned \d+ characters of JSON; the limit is 1048576$/);
  assert.deepEqual(ok(await t.run({ kind: 'lossy' })), [{ nan: null, d: '1970-01-01T00:00:00.000Z' }]);
  t.dispose();
  await assert.rejects(t.run({}), /disposed/);
});

test('ctx.now is the record time; Date and Math.random are deterministic; ctx.log keeps a capped number of lines', async () => {
  const t = await compileCode(
    `function transform(r, ctx) {
      ctx.log('now', ctx.now, { a: 1 });
      console.warn('second');
      for (let i = 0; i < r.extraLogs; i++) ctx.log('line', i);
      return { now: ctx.now, dateNow: Date.now(), iso: new Date().toISOString(), parsed: new Date('2024-01-01T00:00:00Z').getTime(),
        isDate: new Date() instanceof Date, rnd: Math.random() };
    }`,
    { maxLogLines: 5 },
  );
  const a = await t.run({ ts: '2025-06-01T12:00:00Z', extraLogs: 0 });
  const ms = Date.parse('2025-06-01T12:00:00Z');
  assert.deepEqual(ok(a)[0]?.now, ms);
  assert.equal(ok(a)[0]?.dateNow, ms);
  assert.equal(ok(a)[0]?.iso, '2025-06-01T12:00:00.000Z');
  assert.equal(ok(a)[0]?.parsed, Date.parse('2024-01-01T00:00:00Z'));
  assert.equal(ok(a)[0]?.isDate, true);
  assert.deepEqual(a.logs, [`now ${ms} {"a":1}`, 'second']);
  const b = await t.run({ ts: '2025-06-01T12:00:00Z', extraLogs: 0 });
  assert.equal(ok(b)[0]?.rnd, ok(a)[0]?.rnd, 'the same record gives the same Math.random()');
  const c = await t.run({ ts: 5, extraLogs: 0 });
  assert.equal(ok(c)[0]?.now, 5);
  assert.notEqual(ok(c)[0]?.rnd, ok(a)[0]?.rnd);
  assert.equal(ok(await t.run({ extraLogs: 0 }, { now: 77 }))[0]?.now, 77);
  const many = await t.run({ ts: 1, extraLogs: 10 });
  assert.equal(many.logs.length, 6);
  assert.equal(many.logs[5], '… 7 more lines not kept');
  t.dispose();
});

test('a thrown Error names its line; a thrown non-Error is reported; the transform keeps working', async () => {
  const t = await compileCode(
    `function transform(r) {
  if (r.k === 'error') {
    throw new Error('bad reading');
  }
  if (r.k === 'type') return r.missing.field;
  if (r.k === 'string') throw 'just a string';
  if (r.k === 'object') throw { code: 7 };
  if (r.k === 'null') throw null;
  if (r.k === 'custom') { class E extends Error { constructor() { super('mine'); this.name = 'MyError'; } } throw new E(); }
  record.doubled = 1;
  return r;
}
function helper() {}
var record = null;`,
  );
  assert.equal(err(await t.run({ k: 'error' })), 'transform threw: bad reading (line 3)');
  assert.match(
    err(await t.run({ k: 'type' })),
    /^transform threw: TypeError: cannot read property 'field' of undefined \(line 5\)$/,
  );
  assert.equal(err(await t.run({ k: 'string' })), 'transform threw: just a string (a string was thrown, not an Error)');
  assert.equal(err(await t.run({ k: 'object' })), 'transform threw: {"code":7} (a object was thrown, not an Error)');
  assert.equal(err(await t.run({ k: 'null' })), 'transform threw: null (a null was thrown, not an Error)');
  assert.equal(err(await t.run({ k: 'custom' })), 'transform threw: MyError: mine (line 9)');
  t.dispose();
});

test('escapes: no host objects, no std/os, import() fails, eval and Function reach only the VM', async () => {
  const t = await compileCode(
    `function transform(r) {
      const g = globalThis;
      const names = ['process', 'require', 'module', 'fetch', 'WebAssembly', 'std', 'os', 'print', 'scriptArgs',
        'setTimeout', 'XMLHttpRequest', 'Deno', 'Bun', 'global', 'window', 'Buffer', '__filename'];
      const found = names.filter((n) => typeof g[n] !== 'undefined');
      let importResult = 'no promise';
      try { import('std').then(() => {}, () => {}); importResult = 'promise'; } catch (e) { importResult = String(e); }
      const viaEval = eval('typeof process + typeof require + typeof globalThis.fetch');
      const viaFunction = Function('return typeof this.process + typeof this.require')();
      const viaConstructor = (() => {}).constructor('return typeof process')();
      const ownGlobals = Object.getOwnPropertyNames(g);
      return { found, importResult, viaEval, viaFunction, viaConstructor, hostish: ownGlobals.filter((n) => /process|require|fetch|std|os$/.test(n)) };
    }`,
  );
  const [r] = ok(await t.run({}));
  assert.deepEqual(r?.found, []);
  assert.equal(r?.importResult, 'promise', 'import() gives a promise that never loads a module (below)');
  assert.equal(r?.viaEval, 'undefinedundefinedundefined');
  assert.equal(r?.viaFunction, 'undefinedundefined');
  assert.equal(r?.viaConstructor, 'undefined');
  assert.deepEqual(r?.hostish, []);
  t.dispose();

  // the module loader: a static import does not even compile in the function wrapper, and a dynamic one has no loader
  const stat = await checkCode("import * as std from 'std';\nfunction transform(r) { return r }");
  assert.match(stat ?? '', /syntax error/);
  const dyn = await compileCode(
    `let outcome = 'pending';
     import('os').then(() => { outcome = 'loaded' }, (e) => { outcome = String(e) });
     function transform(r) { return { outcome } }`,
  );
  // no job queue is run for the code, so the import never resolves to a module either way
  assert.deepEqual(ok(await dyn.run({})), [{ outcome: 'pending' }]);
  dyn.dispose();
});

test('escapes: prototype pollution throws and does not reach the next record; own overrides still work', async () => {
  const t = await compileCode(
    `function transform(r) {
      if (r.k === 'pollute') { Object.prototype.polluted = 'yes'; return r; }
      if (r.k === 'array') { Array.prototype.push = function () { return 0 }; return r; }
      if (r.k === 'json') { JSON.stringify = () => '{"out":[{"forged":true}]}'; return r; }
      if (r.k === 'global') { globalThis.leak = 1; return r; }
      if (r.k === 'proto') { ({}).__proto__.x = 1; return r; }
      if (r.k === 'define') { Object.defineProperty(Object.prototype, 'y', { value: 1 }); return r; }
      if (r.k === 'own') { const o = { }; o.toString = () => 'mine'; o.constructor = 'c'; return { s: String(o), c: o.constructor }; }
      const a = []; a.push(1);
      return { polluted: ({}).polluted ?? null, y: ({}).y ?? null, leak: typeof globalThis.leak, len: a.length,
        frozen: Object.isFrozen(Object.prototype) && Object.isFrozen(Array.prototype) && Object.isFrozen(globalThis) };
    }`,
  );
  for (const k of ['pollute', 'array', 'json', 'global', 'proto', 'define']) {
    assert.match(err(await t.run({ k })), /^transform threw: TypeError: /, k);
  }
  assert.deepEqual(ok(await t.run({ k: 'own' })), [{ s: 'mine', c: 'c' }]);
  assert.deepEqual(ok(await t.run({ k: 'check' })), [
    { polluted: null, y: null, leak: 'undefined', len: 1, frozen: true },
  ]);
  t.dispose();
});

test('escapes: infinite loops (also swallowed by try/catch) hit the deadline; the stage keeps transforming', async () => {
  const t = await compileCode(
    `${ADD_FIELD}
    const plain = transform;
    transform = function (r, ctx) {
      if (r.k === 'loop') while (true) {}
      if (r.k === 'swallow') { for (;;) { try { while (true) {} } catch (e) { ctx.log('caught', String(e)); } } }
      if (r.k === 'finally') { try { while (true) {} } finally { return { escaped: true }; } }
      return plain(r, ctx);
    };`,
  );
  await stillWorks(t);
  const before = t.restarts;
  assert.equal(err(await t.run({ k: 'loop' })), 'transform ran longer than 50 ms');
  await stillWorks(t);
  assert.equal(err(await t.run({ k: 'swallow' })), 'transform ran longer than 50 ms');
  assert.equal(err(await t.run({ k: 'finally' })), 'transform ran longer than 50 ms');
  await stillWorks(t);
  assert.equal(t.restarts, before + 3, 'a fresh runtime after each interrupt');
  t.dispose();
});

test('escapes: deep recursion is a stack overflow error, and the context stays in use', async () => {
  const t = await compileCode(
    `${ADD_FIELD}
    const plain = transform;
    function down(n) { return down(n + 1) + 1; }
    transform = function (r, ctx) {
      if (r.k === 'recurse') return { n: down(0) };
      if (r.k === 'caught') { try { down(0); } catch (e) { return { caught: String(e) }; } }
      return plain(r, ctx);
    };`,
  );
  const before = t.restarts;
  assert.match(
    err(await t.run({ k: 'recurse' })),
    /^transform recursed too deep \(more than 256 KB of stack\) \(line 6\)$/,
  );
  assert.deepEqual(ok(await t.run({ k: 'caught' })), [{ caught: 'InternalError: stack overflow' }]);
  await stillWorks(t);
  assert.equal(t.restarts, before, 'no fresh runtime needed after a stack overflow');
  t.dispose();
});

test('escapes: 1 GB allocations fail the record with a memory error and the kernel RSS stays bounded', async (ctx) => {
  const t = await compileCode(
    `${ADD_FIELD}
    const plain = transform;
    transform = function (r, ctx) {
      if (r.k === 'string') return { s: 'x'.repeat(1e9) };
      if (r.k === 'array') return { a: new Array(1e9).fill(0) };
      if (r.k === 'buffer') return { b: new ArrayBuffer(1e9).byteLength };
      if (r.k === 'many-strings') { const keep = []; for (;;) keep.push('x'.repeat(8 * 1024 * 1024)); }
      if (r.k === 'many-buffers') { const keep = []; for (;;) keep.push(new Uint8Array(1024 * 1024)); }
      if (r.k === 'small-pieces') { const keep = []; for (;;) keep.push('y'.repeat(1000) + keep.length); }
      return plain(r, ctx);
    };`,
    // a deadline long enough that the memory cap, not the clock, is what stops the small-pieces bomb
    { timeoutMs: 10_000 },
  );
  const rss0 = process.memoryUsage().rss;
  let peak = rss0;
  for (const k of ['string', 'array', 'buffer', 'many-strings', 'many-buffers', 'small-pieces', 'string']) {
    assert.equal(err(await t.run({ k })), 'transform used more than 16 MB', k);
    peak = Math.max(peak, process.memoryUsage().rss);
    await stillWorks(t);
  }
  const grew = (peak - rss0) / 1e6;
  ctx.diagnostic(`RSS grew by ${grew.toFixed(1)} MB over seven memory bombs`);
  assert.ok(grew < 100, `RSS grew by ${grew.toFixed(1)} MB`);
  t.dispose();
});

test('every escape in turn through one CodeTransform, then a good record still transforms correctly', async () => {
  const t = await compileCode(
    `${ADD_FIELD}
    const plain = transform;
    function down(n) { return down(n + 1) + 1; }
    transform = function (r, ctx) {
      switch (r.k) {
        case 'host': return { p: typeof process, q: typeof require, f: typeof fetch, w: typeof WebAssembly };
        case 'pollute': Object.prototype.value = 1000; return r;
        case 'eval': return eval('({ p: typeof process })');
        case 'loop': while (true) {}
        case 'swallow': for (;;) { try { while (true) {} } catch {} }
        case 'recurse': return { n: down(0) };
        case 'bomb': return { s: 'x'.repeat(1e9) };
        case 'throw': throw 42;
      }
      return plain(r, ctx);
    };`,
  );
  assert.deepEqual(ok(await t.run({ k: 'host' })), [
    { p: 'undefined', q: 'undefined', f: 'undefined', w: 'undefined' },
  ]);
  assert.match(err(await t.run({ k: 'pollute' })), /TypeError/);
  assert.deepEqual(ok(await t.run({ k: 'eval' })), [{ p: 'undefined' }]);
  assert.equal(err(await t.run({ k: 'loop' })), 'transform ran longer than 50 ms');
  assert.equal(err(await t.run({ k: 'swallow' })), 'transform ran longer than 50 ms');
  assert.match(err(await t.run({ k: 'recurse' })), /recursed too deep/);
  assert.equal(err(await t.run({ k: 'bomb' })), 'transform used more than 16 MB');
  assert.equal(err(await t.run({ k: 'throw' })), 'transform threw: 42 (a number was thrown, not an Error)');
  // value * 2 from the record, not from a polluted Object.prototype.value
  await stillWorks(t);
  assert.deepEqual(ok(await t.run({ ts: 2 })), [{ ts: 2, doubled: null }]);
  t.dispose();
});

/** 10,000 records: NAB's real readings (timestamp, value) when the data set is here, else generated ones */
function records(n: number): { records: Record<string, unknown>[]; from: string } {
  const dir = NAB_DIR;
  const data = join(dir, 'data');
  const out: Record<string, unknown>[] = [];
  if (existsSync(data)) {
    for (const sub of readdirSync(data).sort()) {
      if (!sub.startsWith('real')) continue;
      for (const f of readdirSync(join(data, sub)).filter((x) => x.endsWith('.csv'))) {
        for (const line of readFileSync(join(data, sub, f), 'utf8')
          .split('\n')
          .slice(1)) {
          const [ts, value] = line.split(',');
          if (ts && value) out.push({ ts: `${ts.replace(' ', 'T')}Z`, value: Number(value), file: f });
          if (out.length === n) return { records: out, from: `NAB ${data}/real*` };
        }
      }
    }
  }
  while (out.length < n) out.push({ ts: out.length * 1000, value: out.length % 97, file: 'generated' });
  return { records: out, from: 'generated' };
}

test('throughput (diagnostic only): one runtime per stage vs a fresh runtime per record', async (t) => {
  const { records: recs, from } = records(10_000);
  const stage = await compileCode(ADD_FIELD);
  let start = performance.now();
  let n = 0;
  for (const r of recs) n += ok(await stage.run(r)).length;
  const perStage = (recs.length / (performance.now() - start)) * 1000;
  assert.equal(n, recs.length);
  stage.dispose();

  const fresh = await compileCode(ADD_FIELD, { isolation: 'record' });
  const some = recs.slice(0, 300);
  start = performance.now();
  for (const r of some) assert.equal(ok(await fresh.run(r))[0]?.doubled, (r.value as number) * 2);
  const perRecord = (some.length / (performance.now() - start)) * 1000;
  fresh.dispose();
  t.diagnostic(`records from ${from}`);
  t.diagnostic(`one runtime per stage: ${Math.round(perStage)} records/s over ${recs.length} records`);
  t.diagnostic(`fresh runtime per record: ${Math.round(perRecord)} records/s over ${some.length} records`);
});
