/**
 * Code transforms for the Data Pipeline Hand: a JavaScript function run in QuickJS compiled to WebAssembly
 * (quickjs-emscripten, the single-file variant: the WASM is inside the JS, so nothing is read from disk at run time,
 * which the Hand's worker under Node's permission model needs). The user's source defines
 *
 *   function transform(record, ctx) { …; return record }   // a record, an array of records (fan-out), or null (drop)
 *
 * and `compileCode` turns it into a `CodeTransform` for one pipeline stage; `await run(record)` gives `{ out, logs }` or
 * `{ error, logs }` (the caller sends a failed record to the dead-letter queue with that error; run never throws for
 * anything the code does). `checkCode` is the config parser's hook: the same compile, the error text or null.
 *
 * What the code sees (one QuickJS runtime and context per stage, with its own memory limit, stack limit and an
 * interrupt handler that gives each record a CPU deadline, measured on the wall clock from the call's start):
 *   - the record, passed as JSON text and parsed inside the VM (no handle to a host object ever crosses);
 *   - `ctx.now`: the record's time (ms since the epoch: `record[timeField]`, else the arrival time); `ctx.log(...)`
 *     (also `console.log/info/warn/error/debug`) keeps up to `maxLogLines` lines per record for the caller;
 *   - the ECMAScript built-ins (eval and Function included: they reach nothing the code could not already reach), made
 *     deterministic: `Date.now()` and `new Date()` are `ctx.now`, `Math.random()` is seeded from `ctx.now`, so a
 *     record replayed from the dead-letter queue transforms the same way;
 *   - nothing else: QuickJS has no I/O of its own and this variant has no `std`/`os` modules (`import('std')` fails:
 *     no module loader), no process, require, fetch, WebAssembly, timers or print.
 * The built-ins and the global object are frozen before the user's code runs (SES-style: every object reachable from
 * globalThis and the hidden intrinsics, generator and iterator prototypes included), so one record cannot change how
 * the next sees Object, Array or JSON (prototype pollution throws a TypeError: the code is strict mode). Assigning
 * `toString`, `constructor`, `name`, `message`… on your own objects still works (those properties of Object.prototype
 * and the Error prototypes are accessors that define an own property, the "override mistake" fix). The user's
 * top-level variables do live as long as the stage (a lookup table built once, a counter): that is the code's own state.
 *
 * Containment: an infinite loop is interrupted at the deadline (QuickJS's interrupt cannot be caught by the code, and
 * a record whose deadline passed fails even if the code returned), deep recursion hits the stack limit, and a memory
 * bomb hits the memory cap. The cap is the stage's own WebAssembly.Memory (each stage loads its own QuickJS module,
 * ~20 ms and ~16 MB at load): its maximum is the module's base 16 MB + `memoryMb`, because QuickJS's own
 * runtime.setMemoryLimit only bounds single allocations in this build (see loadQuickJS). So this process never holds
 * more than base + memoryMb for a stage, whatever the code allocates. After a timeout or out-of-memory the runtime is
 * disposed and a fresh one is made (the prelude and the source run again) before the next record; a thrown error or a
 * stack overflow leaves it in use. A fault of the WASM module itself (an abort) drops the module; the next record loads
 * a new one. `isolation: 'record'` makes a fresh runtime for every record instead: about 300 times slower (the test
 * prints both figures), so the default is one runtime per stage with the built-ins frozen.
 *
 * Line numbers in errors are the user's: the source is wrapped in one line `(function () { 'use strict';` (the
 * wrapper's line is subtracted) and its file name is `transform.js`.
 */
import variant from '@jitl/quickjs-singlefile-cjs-release-sync';
import {
  newQuickJSWASMModuleFromVariant,
  newVariant,
  type QuickJSContext,
  type QuickJSHandle,
  type QuickJSRuntime,
  type QuickJSWASMModule,
} from 'quickjs-emscripten-core';
import { TalonError } from '../../runtime/core/errors.ts';
import type { PipelineRecord } from './types.ts';

export const CODE_TIMEOUT_MS = 50;
export const CODE_MEMORY_MB = 16;
export const CODE_STACK_KB = 256;
export const CODE_LOAD_TIMEOUT_MS = 1000;
export const CODE_MAX_OUTPUT_BYTES = 1024 * 1024;
export const CODE_MAX_LOG_LINES = 20;
/** a stage's memory cap: the WebAssembly memory is at most 2 GB, the module's base included */
export const MAX_MEMORY_MB = 1024;
const MAX_LOG_LINE = 1000;
const FILE = 'transform.js';
/** lines the wrapper puts before the user's source */
const WRAP_LINES = 1;

export interface CodeOptions {
  /** the stage, for error messages (e.g. `pipelines.p1.transforms.clean`) */
  name?: string;
  /** the CPU deadline of one record (default 50) */
  timeoutMs?: number;
  /** the runtime's memory limit (default 16) */
  memoryMb?: number;
  /** the VM's stack limit (default 256) */
  stackKb?: number;
  /** the deadline of the code's top level at load (default 1000) */
  loadTimeoutMs?: number;
  /** the cap of one record's result as JSON (default 1 MB) */
  maxOutputBytes?: number;
  /** the log lines kept per record (default 20) */
  maxLogLines?: number;
  /** the record's time field for `ctx.now` (default `ts`: ms since the epoch or ISO text) */
  timeField?: string;
  /** 'stage' (default): one runtime for the stage, built-ins frozen; 'record': a fresh runtime per record */
  isolation?: 'stage' | 'record';
}

export type CodeResult = { out: PipelineRecord[]; logs: string[] } | { error: string; logs: string[] };

/** what the VM answers for one record (JSON text: only strings cross the boundary) */
type VmAnswer =
  | { out: unknown; logs?: unknown }
  | { fail: 'threw' | 'memory' | 'stack' | 'result'; message?: string; line?: number; logs?: unknown };

/**
 * The prelude: run once per context before the user's code. It makes Date and Math.random deterministic, adds
 * console, freezes every reachable intrinsic and the global object, and returns `setup(factory)`, which runs the
 * user's top level (`factory`) and returns the per-record `run(json, now)`. Everything it needs later is captured here,
 * before any user code runs.
 */
const PRELUDE = String.raw`(function (MAX_LOGS, MAX_LINE, MAX_OUT, FILE, WRAP) {
  'use strict';
  const G = globalThis;
  const getProto = Object.getPrototypeOf, isArray = Array.isArray, freeze = Object.freeze;
  const ownKeys = Reflect.ownKeys, getDesc = Object.getOwnPropertyDescriptor, defProp = Object.defineProperty;
  const parse = JSON.parse, stringify = JSON.stringify, OP = Object.prototype, ErrorC = Error;
  const InternalErrorC = typeof InternalError === 'function' ? InternalError : undefined;
  const imul = Math.imul, RealDate = Date, construct = Reflect.construct, StringC = String;
  const lineRe = new RegExp(FILE.replace('.', '\\.') + ':(\\d+)');
  const exec = RegExp.prototype.exec, apply = Reflect.apply;
  let now = 0, seed = 0, logs = [], dropped = 0;

  function fmt(v) {
    if (typeof v === 'string') return v;
    try { const s = stringify(v); return s === undefined ? StringC(v) : s; } catch { try { return StringC(v); } catch { return '?'; } }
  }
  function log(...args) {
    if (logs.length >= MAX_LOGS) { dropped++; return; }
    let line = '';
    for (let i = 0; i < args.length; i++) line += (i ? ' ' : '') + fmt(args[i]);
    if (line.length > MAX_LINE) line = line.slice(0, MAX_LINE) + '…';
    logs[logs.length] = line;
  }
  function takeLogs() {
    const l = logs;
    if (dropped) l[l.length] = '… ' + dropped + ' more lines not kept';
    logs = []; dropped = 0;
    return l;
  }

  const TDate = function Date(...a) {
    if (new.target === undefined) return new RealDate(now).toString();
    return construct(RealDate, a.length === 0 ? [now] : a, new.target);
  };
  defProp(TDate, 'prototype', { value: RealDate.prototype, writable: false });
  defProp(RealDate.prototype, 'constructor', { value: TDate, writable: true, configurable: true });
  TDate.now = function now_() { return now; };
  TDate.parse = RealDate.parse;
  TDate.UTC = RealDate.UTC;
  G.Date = TDate;
  Math.random = function random() {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = seed;
    t = imul(t ^ (t >>> 15), t | 1);
    t ^= t + imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  G.console = { log, info: log, warn: log, error: log, debug: log };

  // the "override mistake": with a frozen prototype, obj.toString = f would throw; make these accessors that define
  // an own property on the object assigned to instead
  function tame(proto, keys) {
    for (const k of keys) {
      const d = getDesc(proto, k);
      if (!d || !('value' in d) || !d.configurable) continue;
      const value = d.value;
      defProp(proto, k, {
        configurable: false, enumerable: d.enumerable,
        get() { return value; },
        set(v) {
          if (this === proto) throw new TypeError('the built-ins are frozen in a code transform');
          defProp(this, k, { value: v, writable: true, enumerable: true, configurable: true });
        },
      });
    }
  }
  tame(OP, ownKeys(OP).filter((k) => k !== '__proto__'));
  for (const E of [Error, EvalError, RangeError, ReferenceError, SyntaxError, TypeError, URIError, AggregateError, InternalErrorC]) {
    if (E) tame(E.prototype, ['name', 'message', 'toString', 'constructor']);
  }

  const roots = [G, function* () {}, async function () {}, async function* () {}, (function* () {})(), (async function* () {})(),
    [][Symbol.iterator](), new Map()[Symbol.iterator](), new Set()[Symbol.iterator](), ''[Symbol.iterator](),
    /x/g[Symbol.matchAll](''), Promise.resolve()];
  if (typeof Iterator === 'function' && typeof Iterator.prototype.map === 'function') roots.push([].values().map((x) => x));
  if (typeof Iterator === 'function' && typeof Iterator.from === 'function') roots.push(Iterator.from({ next() { return { done: true }; } }));
  const seen = new Set();
  while (roots.length) {
    const o = roots.pop();
    if (o === null || (typeof o !== 'object' && typeof o !== 'function') || seen.has(o)) continue;
    seen.add(o);
    freeze(o);
    roots.push(getProto(o));
    for (const k of ownKeys(o)) {
      const d = getDesc(o, k);
      if ('value' in d) roots.push(d.value);
      else roots.push(d.get, d.set);
    }
  }

  function lineOf(e) {
    try { const m = apply(exec, lineRe, [StringC(e.stack)]); return m ? +m[1] - WRAP : 0; } catch { return 0; }
  }
  function failure(e) {
    if (e instanceof ErrorC) {
      let name = 'Error', message = '';
      try { name = StringC(e.name); message = StringC(e.message); } catch {}
      if (InternalErrorC && e instanceof InternalErrorC && message === 'out of memory') return { fail: 'memory' };
      if (InternalErrorC && e instanceof InternalErrorC && message === 'stack overflow') return { fail: 'stack', line: lineOf(e) };
      return { fail: 'threw', message: name === 'Error' ? message : name + ': ' + message, line: lineOf(e) };
    }
    return { fail: 'threw', message: fmt(e) + ' (a ' + (e === null ? 'null' : typeof e) + ' was thrown, not an Error)' };
  }
  function describe(v) {
    if (v === null) return 'null';
    if (isArray(v)) return 'an array';
    if (typeof v === 'object') return 'an object of class ' + fmt(v.constructor && v.constructor.name);
    return 'a ' + typeof v;
  }
  function plain(v) {
    if (v === null || typeof v !== 'object' || isArray(v)) return false;
    const p = getProto(v);
    return p === OP || p === null;
  }

  return function setup(factory) {
    seed = 0;
    const transform = factory();
    if (typeof transform !== 'function') return undefined;
    return function run(json, t) {
      now = t; seed = (t | 0) ^ 0x5bd1e995; logs = []; dropped = 0;
      const record = parse(json);
      const ctx = freeze({ now: t, log });
      let r;
      try { r = transform(record, ctx); } catch (e) { const f = failure(e); f.logs = takeLogs(); return stringify(f); }
      const many = isArray(r);
      const out = r === null || r === undefined ? [] : many ? r : [r];
      for (let i = 0; i < out.length; i++) {
        if (!plain(out[i])) {
          return stringify({ fail: 'result', message: 'transform returned ' + describe(out[i]) + (many ? ' at [' + i + ']' : '') +
            '; return a record (a plain object), an array of records, or null to drop the record', logs: takeLogs() });
        }
      }
      let s;
      try { s = stringify({ out, logs: takeLogs() }); } catch (e) {
        const f = failure(e);
        if (f.fail === 'threw') { f.fail = 'result'; f.message = 'transform returned a record that is not JSON: ' + f.message; }
        f.logs = logs;
        return stringify(f);
      }
      if (s.length > MAX_OUT) {
        return stringify({ fail: 'result', message: 'transform returned ' + s.length + ' characters of JSON; the limit is ' + MAX_OUT, logs: [] });
      }
      return s;
    };
  };
})`;

/** the variant as Node's ESM import of a CommonJS module hands it over (module.exports, whose `default` is the variant) */
const VARIANT = ((variant as unknown as { default?: typeof variant }).default ?? variant) as typeof variant;
/** the linear memory the module starts with (its own INITIAL_MEMORY: static data, stack and the first heap) */
const BASE_MEMORY_PAGES = 256;
/** WebAssembly.Memory, typed here: the project's TypeScript lib has no WebAssembly declarations */
export interface WasmMemory {
  readonly buffer: ArrayBuffer;
}
const WASM = (
  globalThis as unknown as { WebAssembly: { Memory: new (d: { initial: number; maximum: number }) => WasmMemory } }
).WebAssembly;
const PAGE = 65536;

/**
 * A QuickJS WASM module of its own for one stage, in a WebAssembly.Memory whose maximum is the module's base plus
 * `memoryMb`. QuickJS's own limit (runtime.setMemoryLimit) only bounds each single allocation in this build (it cannot
 * measure a block: quickjs-emscripten issues #255, #271), so the memory's maximum is the real cap: past it malloc fails
 * and QuickJS throws "out of memory", and this process never holds more than that for the stage.
 */
export async function loadQuickJS(memoryMb: number): Promise<{ module: QuickJSWASMModule; memory: WasmMemory }> {
  const memory = new WASM.Memory({
    initial: BASE_MEMORY_PAGES,
    maximum: BASE_MEMORY_PAGES + Math.ceil((memoryMb * 1024 * 1024) / PAGE),
  });
  const module = await newQuickJSWASMModuleFromVariant(newVariant(VARIANT, { wasmMemory: memory as never }));
  return { module, memory };
}

interface Vm {
  runtime: QuickJSRuntime;
  context: QuickJSContext;
  run: QuickJSHandle;
}

/** The error of a failed load, with the line and column in the user's source where known. */
class LoadFailure extends Error {
  readonly line: number | undefined;
  readonly column: number | undefined;
  constructor(message: string, line?: number, column?: number) {
    super(message);
    this.line = line;
    this.column = column;
  }
}

/** One code transform stage: a QuickJS runtime with the user's `transform` loaded. Not safe to share across threads. */
export class CodeTransform {
  readonly name: string;
  #module: QuickJSWASMModule | undefined;
  /** set when the WASM module itself failed (an abort): the next record loads a fresh one */
  #broken = false;
  #loading: Promise<{ module: QuickJSWASMModule }> | undefined;
  readonly #source: string;
  readonly #timeoutMs: number;
  readonly #loadTimeoutMs: number;
  readonly #memoryMb: number;
  readonly #stackKb: number;
  readonly #maxOutputBytes: number;
  readonly #maxLogLines: number;
  readonly #timeField: string;
  readonly #perRecord: boolean;
  #vm: Vm | undefined;
  #deadline = Number.POSITIVE_INFINITY;
  #interrupted = false;
  #disposed = false;
  #boots = 0;

  /** Use `compileCode`: it loads the module and reports a compile error as a TalonError. */
  constructor(module: QuickJSWASMModule, source: string, opts: CodeOptions = {}) {
    this.name = opts.name ?? 'code transform';
    this.#module = module;
    this.#source = source;
    this.#timeoutMs = positive(opts.timeoutMs, CODE_TIMEOUT_MS, 'timeoutMs', this.name);
    this.#loadTimeoutMs = positive(opts.loadTimeoutMs, CODE_LOAD_TIMEOUT_MS, 'loadTimeoutMs', this.name);
    this.#memoryMb = positive(opts.memoryMb, CODE_MEMORY_MB, 'memoryMb', this.name);
    this.#stackKb = positive(opts.stackKb, CODE_STACK_KB, 'stackKb', this.name);
    this.#maxOutputBytes = positive(opts.maxOutputBytes, CODE_MAX_OUTPUT_BYTES, 'maxOutputBytes', this.name);
    this.#maxLogLines = positive(opts.maxLogLines, CODE_MAX_LOG_LINES, 'maxLogLines', this.name);
    this.#timeField = opts.timeField ?? 'ts';
    this.#perRecord = opts.isolation === 'record';
    try {
      this.#vm = this.#boot();
    } catch (err) {
      if (!(err instanceof LoadFailure)) throw err;
      const where =
        err.line === undefined ? '' : ` (line ${err.line}${err.column === undefined ? '' : `, column ${err.column}`})`;
      throw new TalonError('BAD_REQUEST', `${this.name}: ${err.message}${where}`, {
        details: { line: err.line, column: err.column },
      });
    }
  }

  /** Transform one record: `{ out }` (0, 1 or more records) or `{ error }` naming what went wrong. */
  async run(record: PipelineRecord, opts: { now?: number } = {}): Promise<CodeResult> {
    if (this.#disposed) throw new TalonError('NOT_RUNNING', `${this.name}: the code transform was disposed`);
    if (this.#module === undefined) {
      try {
        // one load for every record that arrives while it runs
        this.#loading ??= loadQuickJS(this.#memoryMb).finally(() => {
          this.#loading = undefined;
        });
        const { module } = await this.#loading;
        if (this.#module === undefined) this.#module = module;
        this.#broken = false;
      } catch (err) {
        return { error: `transform could not be restarted: ${(err as Error).message}`, logs: [] };
      }
    }
    try {
      return this.#runSync(record, opts.now);
    } catch (err) {
      // a fault of the WASM module (an abort, an access out of bounds): drop it and load a fresh one next time
      this.#abandon();
      return { error: `transform crashed the sandbox: ${(err as Error).message}`, logs: [] };
    }
  }

  #runSync(record: PipelineRecord, nowOpt: number | undefined): CodeResult {
    const now = nowOpt ?? this.#timeOf(record);
    let json: string;
    try {
      json = JSON.stringify(record);
    } catch (err) {
      return { error: `the record is not JSON: ${(err as Error).message}`, logs: [] };
    }
    let vm = this.#vm;
    if (vm === undefined) {
      try {
        vm = this.#vm = this.#boot();
      } catch (err) {
        return { error: `transform could not be restarted: ${(err as Error).message}`, logs: [] };
      }
    }
    const { context } = vm;
    const arg = context.newString(json);
    const t = context.newNumber(now);
    this.#interrupted = false;
    this.#deadline = performance.now() + this.#timeoutMs;
    const result = context.callFunction(vm.run, context.undefined, arg, t);
    this.#deadline = Number.POSITIVE_INFINITY;
    arg.dispose();
    t.dispose();
    if (result.error) {
      const message = this.#interrupted ? 'interrupted' : errorMessage(context, result.error);
      result.error.dispose();
      this.#reset();
      if (this.#interrupted) return { error: `transform ran longer than ${this.#timeoutMs} ms`, logs: [] };
      if (message === 'out of memory') return { error: `transform used more than ${this.#memoryMb} MB`, logs: [] };
      return { error: `transform failed: ${message}`, logs: [] };
    }
    const text = context.getString(result.value);
    result.value.dispose();
    if (this.#interrupted) {
      // the deadline passed while the answer was being made: the record failed all the same
      this.#reset();
      return { error: `transform ran longer than ${this.#timeoutMs} ms`, logs: [] };
    }
    if (this.#perRecord) this.#reset();
    return this.#answer(text);
  }

  /** Free the runtime. `run` after this throws. */
  dispose(): void {
    this.#disposed = true;
    this.#reset();
  }

  #answer(text: string): CodeResult {
    if (Buffer.byteLength(text) > this.#maxOutputBytes + 64 * 1024) {
      return { error: `transform returned more than ${this.#maxOutputBytes} bytes of JSON`, logs: [] };
    }
    const a = JSON.parse(text) as VmAnswer;
    const logs = Array.isArray(a.logs) ? a.logs.filter((l): l is string => typeof l === 'string') : [];
    if ('fail' in a) {
      switch (a.fail) {
        case 'memory':
          this.#reset();
          return { error: `transform used more than ${this.#memoryMb} MB`, logs };
        case 'stack':
          return {
            error: `transform recursed too deep (more than ${this.#stackKb} KB of stack)${lineText(a.line)}`,
            logs,
          };
        case 'threw':
          return { error: `transform threw: ${a.message}${lineText(a.line)}`, logs };
        default:
          return { error: String(a.message), logs };
      }
    }
    // the VM checked the shape; check again here, where the trust boundary is
    const out = a.out;
    if (!Array.isArray(out) || !out.every((r) => r !== null && typeof r === 'object' && !Array.isArray(r))) {
      return { error: 'transform returned something other than records', logs };
    }
    const bytes = Buffer.byteLength(text);
    if (bytes > this.#maxOutputBytes) {
      return { error: `transform returned ${bytes} bytes of JSON; the limit is ${this.#maxOutputBytes}`, logs };
    }
    return { out: out as PipelineRecord[], logs };
  }

  #timeOf(record: PipelineRecord): number {
    const v = record[this.#timeField];
    if (typeof v === 'number' && Number.isFinite(v)) return v;
    if (typeof v === 'string') {
      const ms = Date.parse(v);
      if (Number.isFinite(ms)) return ms;
    }
    return Date.now();
  }

  /** A fresh runtime and context with the user's code loaded; a LoadFailure says why not. */
  #boot(): Vm {
    this.#boots++;
    if (this.#module === undefined) throw new LoadFailure('the sandbox is not loaded');
    const runtime = this.#module.newRuntime();
    runtime.setMemoryLimit(this.#memoryMb * 1024 * 1024);
    runtime.setMaxStackSize(this.#stackKb * 1024);
    runtime.setInterruptHandler(() => {
      if (performance.now() <= this.#deadline) return false;
      this.#interrupted = true;
      return true;
    });
    const context = runtime.newContext();
    const handles: QuickJSHandle[] = [];
    const free = (): void => {
      try {
        for (const h of handles) if (h.alive) h.dispose();
        context.dispose();
        runtime.dispose();
      } catch {
        this.#abandon();
      }
    };
    try {
      this.#interrupted = false;
      this.#deadline = performance.now() + this.#loadTimeoutMs;
      const prelude = this.#eval(context, handles, PRELUDE, 'talon-prelude.js');
      const args = [
        context.newNumber(this.#maxLogLines),
        context.newNumber(MAX_LOG_LINE),
        context.newNumber(this.#maxOutputBytes),
        context.newString(FILE),
        context.newNumber(WRAP_LINES),
      ];
      handles.push(...args);
      const setup = this.#call(context, handles, prelude, args, 'the sandbox');
      const factory = this.#eval(
        context,
        handles,
        `(function () { 'use strict';\n${this.#source}\n;return typeof transform === 'function' ? transform : undefined;\n})`,
        FILE,
      );
      const run = this.#call(context, handles, setup, [factory], 'the code');
      if (context.typeof(run) !== 'function') {
        throw new LoadFailure(
          'the code does not define a function named transform; write `function transform(record, ctx) { …; return record }`',
        );
      }
      handles.splice(handles.indexOf(run), 1);
      for (const h of handles) if (h.alive) h.dispose();
      return { runtime, context, run };
    } catch (err) {
      free();
      throw err;
    } finally {
      this.#deadline = Number.POSITIVE_INFINITY;
    }
  }

  #eval(context: QuickJSContext, handles: QuickJSHandle[], code: string, file: string): QuickJSHandle {
    const r = context.evalCode(code, file);
    if (r.error) {
      handles.push(r.error);
      const e = this.#loadError(context, r.error, 'syntax error');
      throw e;
    }
    handles.push(r.value);
    return r.value;
  }

  #call(
    context: QuickJSContext,
    handles: QuickJSHandle[],
    fn: QuickJSHandle,
    args: QuickJSHandle[],
    who: string,
  ): QuickJSHandle {
    const r = context.callFunction(fn, context.undefined, ...args);
    if (r.error) {
      handles.push(r.error);
      throw this.#loadError(context, r.error, `${who} threw at load`);
    }
    handles.push(r.value);
    return r.value;
  }

  #loadError(context: QuickJSContext, err: QuickJSHandle, what: string): LoadFailure {
    if (this.#interrupted)
      return new LoadFailure(`the code's top level ran longer than ${this.#loadTimeoutMs} ms at load`);
    const message = errorMessage(context, err);
    if (message === 'out of memory') return new LoadFailure(`the code used more than ${this.#memoryMb} MB at load`);
    const name = stringProp(context, err, 'name');
    const stack = stringProp(context, err, 'stack') ?? '';
    const m = new RegExp(`${FILE.replace('.', '\\.')}:(\\d+)(?::(\\d+))?`).exec(stack);
    const lines = this.#source.split('\n').length;
    const raw = m ? Number(m[1]) - WRAP_LINES : undefined;
    if (name === 'SyntaxError' && raw !== undefined && raw > lines) {
      // the parser stopped in the wrapper's closing lines: the code itself is unbalanced
      return new LoadFailure(
        'syntax error at the end of the code: a brace, bracket, parenthesis or string is not closed, or one `}` too ' +
          `many closes the code early (QuickJS: ${message})`,
        lines,
      );
    }
    const line = raw === undefined ? undefined : Math.max(raw, 1);
    const column = m?.[2] === undefined ? undefined : Number(m[2]);
    const label = name === 'SyntaxError' ? 'syntax error' : what;
    const prefix = name && name !== 'SyntaxError' && name !== 'Error' ? `${name}: ` : '';
    return new LoadFailure(`${label}: ${prefix}${message}`, line, column);
  }

  #reset(): void {
    const vm = this.#vm;
    this.#vm = undefined;
    if (vm === undefined) return;
    try {
      vm.run.dispose();
      vm.context.dispose();
      vm.runtime.dispose();
    } catch {
      this.#abandon();
    }
  }

  /** Forget the module (its memory goes with it) after it failed; run() loads a fresh one. */
  #abandon(): void {
    this.#vm = undefined;
    this.#module = undefined;
    this.#broken = true;
  }

  /** runtimes made since the stage started (the first included): how often a failure forced a fresh one */
  get restarts(): number {
    return this.#boots;
  }

  /** true while the WASM module is gone after a fault (the next run loads a fresh one) */
  get broken(): boolean {
    return this.#broken;
  }
}

/** Compile a code transform (async: the WASM module loads once per process). A bad source is a BAD_REQUEST. */
export async function compileCode(source: string, opts: CodeOptions = {}): Promise<CodeTransform> {
  if (typeof source !== 'string' || source.trim() === '') {
    throw new TalonError(
      'BAD_REQUEST',
      `${opts.name ?? 'code transform'}: source is empty; write \`function transform(record, ctx) { …; return record }\``,
    );
  }
  const memoryMb = positive(opts.memoryMb, CODE_MEMORY_MB, 'memoryMb', opts.name ?? 'code transform');
  if (memoryMb > MAX_MEMORY_MB) {
    throw new TalonError(
      'BAD_REQUEST',
      `${opts.name ?? 'code transform'}: memoryMb must be at most ${MAX_MEMORY_MB} (got ${memoryMb})`,
    );
  }
  const { module } = await loadQuickJS(memoryMb);
  return new CodeTransform(module, source, opts);
}

/** The config parser's hook: null when the source compiles and defines `transform`, else the error's message. */
export async function checkCode(source: string, opts: CodeOptions = {}): Promise<string | null> {
  try {
    (await compileCode(source, opts)).dispose();
    return null;
  } catch (err) {
    if (err instanceof TalonError) return err.message;
    throw err;
  }
}

function positive(v: number | undefined, dflt: number, field: string, name: string): number {
  if (v === undefined) return dflt;
  if (!Number.isFinite(v) || v <= 0)
    throw new TalonError('BAD_REQUEST', `${name}: ${field} must be a number above 0 (got ${v})`);
  return v;
}

function lineText(line: number | undefined): string {
  return typeof line === 'number' && line > 0 ? ` (line ${line})` : '';
}

function stringProp(context: QuickJSContext, h: QuickJSHandle, key: string): string | undefined {
  try {
    if (context.typeof(h) !== 'object') return undefined;
    const p = context.getProp(h, key);
    try {
      return context.typeof(p) === 'string' ? context.getString(p) : undefined;
    } finally {
      p.dispose();
    }
  } catch {
    return undefined;
  }
}

function errorMessage(context: QuickJSContext, h: QuickJSHandle): string {
  const m = stringProp(context, h, 'message');
  if (m !== undefined) return m;
  try {
    return context.typeof(h) === 'string' ? context.getString(h) : String(context.typeof(h));
  } catch {
    return 'unknown error';
  }
}
