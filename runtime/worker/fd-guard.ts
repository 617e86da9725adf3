/**
 * File descriptors, closed from JavaScript: installed in every Hand's worker before any Hand
 * code runs (both modes: a module's top level runs while its manifest is read).
 *
 * A worker_thread shares the process's descriptor table, and Node's permission model checks
 * paths, not descriptors: a worker without a single fs grant can fstat, read and write every
 * descriptor the kernel holds (LevelDB's write-ahead log, the daemon's stdout). So a Hand may
 * use only the descriptors it opened itself:
 *
 *  - every descriptor it opens through `fs.open` / `fs.openSync` / `fs.promises.open` (and the
 *    streams and helpers that open through them) is recorded with the file's (dev, ino);
 *  - every fd-taking call (`fs.read`/`write`/`fstat`/`close`… sync and callback, `readFile` /
 *    `writeFile` / `appendFile` given a number, streams and `fs.Utf8Stream` given `fd`,
 *    `tty.ReadStream` / `tty.WriteStream`, `net.Socket({ fd })`) is refused with
 *    CAPABILITY_DENIED unless the descriptor is one of those and still names the same file
 *    (a descriptor closed behind the guard's back and reused by the kernel is refused);
 *  - a descriptor with operations in flight cannot be closed under them (`closeSync` throws
 *    EBUSY, `close` waits): the number could otherwise be reused by the kernel before a queued
 *    read or write runs;
 *  - `fs.promises` FileHandles: only handles this guard saw opened are served (a FileHandle
 *    built by hand around a number is refused), their descriptor cannot be swapped, and the
 *    native handle class behind them (which writes to any number it is given) is hidden;
 *  - with a raw network grant, the socket handles' `open(fd)` (net.Socket({ fd }),
 *    server.listen({ fd }), dgram bind({ fd })) is refused too (without it Node refuses them).
 *
 * This is a JavaScript guard in the Hand's own realm: it closes the doors Node offers, it is
 * not a wall (runtime/supervisor/README.md says what that means). Refusals are reported to the
 * kernel for the audit (rate-limited by the caller).
 */
// default imports: the modules' own exports objects (a namespace import would be a copy)
import fs from 'node:fs';
import tty from 'node:tty';
import net from 'node:net';
import dgram from 'node:dgram';
import { syncBuiltinESMExports } from 'node:module';
import { TalonError } from '../core/errors.ts';
import type { DenyReport } from './net-guard.ts';

export interface FdGuardOptions {
  /** the Hand's name, for messages; undefined while only its manifest is read */
  hand?: string;
  /** tell the kernel (rate-limited by the caller) */
  report: DenyReport;
  /** the worker has --allow-net: lock the socket handles' open(fd) too */
  rawNetwork: boolean;
}

export const FD_ACTION = 'fd.use';

type Fn = (...args: unknown[]) => unknown;
type Ctor = new (...args: unknown[]) => object;

interface Owned {
  fd: number;
  dev: bigint;
  ino: bigint;
  /** callback / promise operations started and not finished */
  pending: number;
  /** a close waits for `pending` to drain */
  closing: boolean;
  idle: Array<() => void>;
}

const FD_SYNC = [
  'fchmodSync',
  'fchownSync',
  'fdatasyncSync',
  'fstatSync',
  'fsyncSync',
  'ftruncateSync',
  'futimesSync',
  'readSync',
  'readvSync',
  'writeSync',
  'writevSync',
];
const FD_ASYNC = [
  'fchmod',
  'fchown',
  'fdatasync',
  'fstat',
  'fsync',
  'ftruncate',
  'futimes',
  'read',
  'readv',
  'write',
  'writev',
];
const PATH_OR_FD_SYNC = ['readFileSync', 'writeFileSync', 'appendFileSync'];
const PATH_OR_FD_ASYNC = ['readFile', 'writeFile', 'appendFile'];
/** FileHandle methods that answer synchronously (the rest return promises) */
const HANDLE_SYNC = new Set(['readLines', 'createReadStream', 'createWriteStream', 'readableWebStream']);
/** the native handle's stream methods: raw reads and writes on its descriptor */
const NATIVE_IO = [
  'readStart',
  'readStop',
  'shutdown',
  'useUserBuffer',
  'writev',
  'writeBuffer',
  'writeAsciiString',
  'writeUtf8String',
  'writeUcs2String',
  'writeLatin1String',
  'releaseFD',
];

export interface FdGuard {
  /** finish the guard for fs.promises FileHandles: opens `probePath` (readable) once. Await before Hand code runs. */
  lockFileHandles(probePath: string): Promise<void>;
  /** is this descriptor the Hand's own (tests, diagnostics) */
  owns(fd: number): boolean;
}

export function installFdGuard(opts: FdGuardOptions): FdGuard {
  const who = opts.hand === undefined ? 'A Hand' : `Hand "${opts.hand}"`;
  const owned = new Map<number, Owned>();
  const orig = {
    open: fs.open as Fn,
    openSync: fs.openSync as Fn,
    close: fs.close as Fn,
    closeSync: fs.closeSync as Fn,
    fstatSync: fs.fstatSync as (fd: number, o: { bigint: true }) => fs.BigIntStats,
  };

  const denied = (api: string, fd: unknown): TalonError => {
    const subject = `${api} fd ${typeof fd === 'number' ? fd : '?'}`;
    opts.report(FD_ACTION, subject);
    return new TalonError(
      'CAPABILITY_DENIED',
      `${who} may not use file descriptor ${String(fd)} (${api}): a Hand may use only the descriptors it opened itself ` +
        '(fs.open, fs.openSync, fs.promises.open), and only the paths its capabilities.fs grants',
      { details: { action: FD_ACTION, subject } },
    );
  };
  const busy = (fd: number): Error =>
    Object.assign(new Error(`EBUSY: file descriptor ${fd} has reads or writes in flight; close it when they finish`), {
      code: 'EBUSY',
      syscall: 'close',
    });
  const closing = (fd: number): Error =>
    Object.assign(new Error(`EBADF: file descriptor ${fd} is being closed`), { code: 'EBADF' });

  const identity = (fd: number): { dev: bigint; ino: bigint } | null => {
    try {
      const st = orig.fstatSync(fd, { bigint: true });
      return { dev: st.dev, ino: st.ino };
    } catch {
      return null;
    }
  };
  const adopt = (fd: unknown): Owned | undefined => {
    if (typeof fd !== 'number') return undefined;
    const id = identity(fd);
    if (!id) return undefined;
    const e: Owned = { fd, dev: id.dev, ino: id.ino, pending: 0, closing: false, idle: [] };
    owned.set(fd, e);
    return e;
  };
  const release = (e: Owned): void => {
    if (owned.get(e.fd) === e) owned.delete(e.fd);
  };
  /** the Hand's record for `fd`, if it is its own and still names the same file */
  const lookup = (fd: number): Owned | undefined => {
    const e = owned.get(fd);
    if (!e) return undefined;
    const id = identity(fd);
    if (!id || id.dev !== e.dev || id.ino !== e.ino) {
      owned.delete(fd); // closed behind the guard's back (and maybe reused by the kernel)
      return undefined;
    }
    return e;
  };
  /** throws unless `fd` is the Hand's; a non-number passes (the original validates it) */
  const check = (api: string, fd: unknown): Owned | undefined => {
    if (typeof fd !== 'number') return undefined;
    const e = lookup(fd);
    if (!e) throw denied(api, fd);
    if (e.closing) throw closing(fd);
    return e;
  };
  const settle = (e: Owned | undefined): void => {
    if (!e) return;
    e.pending--;
    if (e.pending === 0 && e.idle.length > 0) for (const f of e.idle.splice(0)) f();
  };

  /** exports[key] := value, read-only from here on */
  const set = (obj: object, key: PropertyKey, value: unknown): void => {
    const d = Object.getOwnPropertyDescriptor(obj, key);
    if (d && !d.configurable) return;
    Object.defineProperty(obj, key, {
      value,
      writable: false,
      configurable: false,
      enumerable: d?.enumerable ?? false,
    });
  };
  /** keep util.promisify's hints (customPromisifyArgs); never copy a function-valued one (an unguarded original) */
  const carry = (from: Fn, to: Fn): Fn => {
    for (const s of Object.getOwnPropertySymbols(from)) {
      const v = (from as unknown as Record<symbol, unknown>)[s];
      if (typeof v !== 'function') Object.defineProperty(to, s, { value: v, enumerable: false });
    }
    Object.defineProperty(to, 'name', { value: from.name });
    return to;
  };
  const callbackOf = (args: unknown[]): number => (typeof args[args.length - 1] === 'function' ? args.length - 1 : -1);

  /** run a callback-style original on an fd the Hand owns; `e` counts it as in flight until it calls back */
  const inFlight = (fn: Fn, self: unknown, args: unknown[], e: Owned | undefined): unknown => {
    const i = callbackOf(args);
    if (!e || i < 0) return fn.apply(self, args);
    const cb = args[i] as Fn;
    const a = args.slice();
    a[i] = function (this: unknown, ...r: unknown[]) {
      settle(e);
      return cb.apply(this, r);
    };
    e.pending++;
    try {
      return fn.apply(self, a);
    } catch (err) {
      settle(e);
      throw err;
    }
  };
  /** a callback API refuses through its callback (an error event would crash a Hand with no listener) */
  const refuse = (args: unknown[], err: Error): undefined => {
    const i = callbackOf(args);
    if (i < 0) throw err;
    process.nextTick(args[i] as Fn, err);
    return undefined;
  };

  // -- fs: opening (recorded), closing (released), every fd-taking call (checked) -------------
  set(
    fs,
    'openSync',
    carry(orig.openSync, function openSync(this: unknown, ...args: unknown[]) {
      const fd = orig.openSync.apply(this, args);
      adopt(fd);
      return fd;
    }),
  );
  set(
    fs,
    'open',
    carry(orig.open, function open(this: unknown, ...args: unknown[]) {
      const i = callbackOf(args);
      if (i < 0) return orig.open.apply(this, args);
      const cb = args[i] as Fn;
      const a = args.slice();
      a[i] = (err: unknown, fd: unknown) => {
        if (!err) adopt(fd);
        cb(err, fd);
      };
      return orig.open.apply(this, a);
    }),
  );
  set(
    fs,
    'closeSync',
    carry(orig.closeSync, function closeSync(this: unknown, fd: unknown) {
      const e = check('fs.closeSync', fd);
      if (e && e.pending > 0) throw busy(e.fd);
      if (e) release(e);
      return orig.closeSync.call(this, fd);
    }),
  );
  set(
    fs,
    'close',
    carry(orig.close, function close(this: unknown, ...args: unknown[]) {
      let e: Owned | undefined;
      try {
        e = check('fs.close', args[0]);
      } catch (err) {
        return refuse(args, err as Error);
      }
      if (!e) return orig.close.apply(this, args);
      const entry = e;
      const go = (): unknown => {
        release(entry);
        return orig.close.apply(this, args);
      };
      if (entry.pending === 0) return go();
      entry.closing = true;
      entry.idle.push(() => void go());
      return undefined;
    }),
  );
  // readFile(fd) / writeFile(fd) / appendFile(fd) (PATH_OR_FD_*) go to the binding directly with the number
  for (const name of [...FD_SYNC, ...PATH_OR_FD_SYNC]) {
    const f = (fs as unknown as Record<string, Fn>)[name];
    if (typeof f !== 'function') continue;
    set(
      fs,
      name,
      carry(f, function (this: unknown, ...args: unknown[]) {
        check(`fs.${name}`, args[0]);
        return f.apply(this, args);
      }),
    );
  }
  for (const name of [...FD_ASYNC, ...PATH_OR_FD_ASYNC]) {
    const f = (fs as unknown as Record<string, Fn>)[name];
    if (typeof f !== 'function') continue;
    set(
      fs,
      name,
      carry(f, function (this: unknown, ...args: unknown[]) {
        let e: Owned | undefined;
        try {
          e = check(`fs.${name}`, args[0]);
        } catch (err) {
          return refuse(args, err as Error);
        }
        return inFlight(f, this, args, e);
      }),
    );
  }

  // -- FileHandles (fs.promises) --------------------------------------------------------------
  /** handles this guard saw opened → their record */
  const genuine = new WeakMap<object, Owned>();
  let handleProto: object | null = null;
  let kFd: symbol | undefined;
  const gone = new FinalizationRegistry<Owned>((e) => release(e)); // a handle closed by the garbage collector

  /**
   * a FileHandle argument: it must be one this guard opened, still on its own descriptor;
   * undefined for a closed one (the original answers EBADF itself: its descriptor is -1)
   */
  const checkHandle = (api: string, h: unknown): Owned | undefined => {
    const e = typeof h === 'object' && h !== null ? genuine.get(h) : undefined;
    const fd = (h as { fd?: unknown } | null)?.fd;
    if (!e) throw denied(api, fd);
    if (fd === -1) return undefined;
    if (fd !== e.fd || lookup(e.fd) !== e) throw denied(api, fd);
    if (e.closing) throw closing(e.fd);
    return e;
  };
  /** a streams / fs.promises argument that is not a path: it must be a FileHandle this guard opened */
  const isHandleArg = (v: unknown): boolean =>
    typeof v === 'object' && v !== null && !(v instanceof URL) && !ArrayBuffer.isView(v);

  const adoptHandle = (fh: object): void => {
    const e = adopt((fh as { fd: unknown }).fd);
    if (!e) return;
    genuine.set(fh, e);
    gone.register(fh, e);
    // its descriptor can only go to -1 (closed, transferred), never to another number
    let cur = e.fd;
    if (kFd !== undefined) {
      Object.defineProperty(fh, kFd, {
        get: () => cur,
        set: (v: unknown) => {
          if (v === -1 && cur !== -1) {
            cur = -1;
            release(e);
          }
        },
        enumerable: false,
        configurable: false,
      });
    }
    Object.defineProperty(fh, 'fd', { get: () => cur, enumerable: false, configurable: false });
    // close: not under operations this guard counts (fs.read(fh.fd, …), fs.promises.readFile(fh))
    const origClose = (fh as { close?: unknown }).close;
    if (typeof origClose === 'function') {
      Object.defineProperty(fh, 'close', {
        value: function close(this: unknown) {
          if (e.pending === 0 || cur === -1) return (origClose as Fn).call(fh);
          e.closing = true;
          return new Promise((resolve) => e.idle.push(() => resolve(undefined))).then(() => {
            e.closing = false;
            return (origClose as Fn).call(fh);
          });
        },
        writable: false,
        configurable: false,
        enumerable: true,
      });
    }
  };

  const fsp = fs.promises as unknown as Record<string, Fn>;
  const pOpen = fsp.open!;
  set(
    fsp,
    'open',
    carry(pOpen, async function open(this: unknown, ...args: unknown[]) {
      const fh = (await pOpen.apply(this, args)) as object;
      adoptHandle(fh);
      return fh;
    }),
  );
  for (const name of ['readFile', 'writeFile', 'appendFile']) {
    const f = fsp[name]!;
    set(
      fsp,
      name,
      carry(f, function (this: unknown, ...args: unknown[]) {
        if (!isHandleArg(args[0])) return f.apply(this, args);
        let e: Owned | undefined;
        try {
          e = checkHandle(`fs.promises.${name}`, args[0]);
        } catch (err) {
          return Promise.reject(err);
        }
        if (!e) return f.apply(this, args);
        const entry = e;
        entry.pending++;
        return Promise.resolve(f.apply(this, args)).finally(() => settle(entry));
      }),
    );
  }

  // -- streams: refuse a foreign fd when the stream is made, not at its first read ------------
  const streamOptions = (api: string, options: unknown): void => {
    if (typeof options !== 'object' || options === null) return;
    const fd = (options as { fd?: unknown }).fd;
    if (typeof fd === 'number') check(api, fd);
    else if (fd !== undefined && fd !== null && isHandleArg(fd)) checkHandle(api, fd);
  };
  for (const name of ['createReadStream', 'createWriteStream']) {
    const f = (fs as unknown as Record<string, Fn>)[name]!;
    set(
      fs,
      name,
      carry(f, function (this: unknown, ...args: unknown[]) {
        streamOptions(`fs.${name}`, args[1]);
        return f.apply(this, args);
      }),
    );
  }
  /**
   * obj[key] := a constructor that runs `test` on its arguments first. It also works called as
   * a function with a `this` (ES5 subclassing: tls.TLSSocket and tty.WriteStream call
   * net.Socket that way). `hide`: point the prototype's `constructor` at it, so that no instance
   * hands out the unguarded original.
   */
  const guardCtor = (obj: object, key: string, test: (args: unknown[]) => void, hide: boolean): void => {
    const C = (obj as Record<string, unknown>)[key] as Ctor | undefined;
    if (typeof C !== 'function') return;
    const G = function (this: unknown, ...args: unknown[]): unknown {
      test(args);
      return new.target ? Reflect.construct(C, args, new.target) : (C as unknown as Fn).apply(this, args);
    } as unknown as Ctor;
    Object.defineProperty(G, 'name', { value: C.name });
    G.prototype = C.prototype;
    Object.setPrototypeOf(G, Object.getPrototypeOf(C) as object);
    if (hide)
      Object.defineProperty(C.prototype, 'constructor', {
        value: G,
        writable: true,
        configurable: true,
        enumerable: false,
      });
    set(obj, key, G);
  };
  for (const key of ['ReadStream', 'WriteStream', 'FileReadStream', 'FileWriteStream']) {
    guardCtor(fs, key, (a) => streamOptions(`fs.${key}`, a[1]), false);
  }
  guardCtor(fs, 'Utf8Stream', (a) => streamOptions('fs.Utf8Stream', a[0]), false);

  // -- tty and sockets made from a descriptor -----------------------------------------------
  // tty.WriteStream(1) writes straight to the daemon's terminal: hide the originals
  guardCtor(tty, 'ReadStream', (a) => void check('tty.ReadStream', a[0]), true);
  guardCtor(tty, 'WriteStream', (a) => void check('tty.WriteStream', a[0]), true);
  // without --allow-net Node refuses net.Socket({ fd }) itself (ERR_ACCESS_DENIED); this says why,
  // and the handles' open() is locked below when the Hand has raw network access
  const socketFd = (a: unknown[]): void => {
    const o = a[0];
    if (typeof o === 'object' && o !== null && typeof (o as { fd?: unknown }).fd === 'number')
      check('net.Socket', (o as { fd: number }).fd);
  };
  guardCtor(net, 'Socket', socketFd, false);
  guardCtor(net, 'Stream', socketFd, false); // net.Stream: the old name of net.Socket
  if (opts.rawNetwork) lockSocketHandles(check);

  // `import { writeSync } from 'node:fs'` in an ES module Hand sees the guarded functions too
  syncBuiltinESMExports();

  return {
    owns: (fd) => lookup(fd) !== undefined,
    async lockFileHandles(probePath: string): Promise<void> {
      if (handleProto) return;
      const fh = (await pOpen(probePath, 'r')) as object;
      const proto = Object.getPrototypeOf(fh) as Record<PropertyKey, unknown>;
      const syms = Object.getOwnPropertySymbols(fh);
      kFd = syms.find((s) => s.description === 'kFd');
      const kHandle = syms.find((s) => s.description === 'kHandle');
      const native = kHandle ? ((fh as Record<symbol, unknown>)[kHandle] as object | undefined) : undefined;
      await (fh as { close(): Promise<void> }).close();
      handleProto = proto;
      // every method that reaches the descriptor: only on a handle this guard opened
      for (const key of Object.getOwnPropertyNames(proto)) {
        if (key === 'constructor' || key === 'getAsyncId') continue;
        const d = Object.getOwnPropertyDescriptor(proto, key);
        if (!d || typeof d.value !== 'function') continue;
        const f = d.value as Fn;
        const sync = HANDLE_SYNC.has(key);
        set(
          proto,
          key,
          carry(f, function (this: unknown, ...args: unknown[]) {
            try {
              checkHandle(`FileHandle.${key}`, this);
            } catch (err) {
              if (sync) throw err;
              return Promise.reject(err);
            }
            return f.apply(this, args);
          }),
        );
      }
      // the close that skips the promise: not under operations in flight
      const kCloseSync = Object.getOwnPropertySymbols(proto).find((s) => s.description === 'kCloseSync');
      if (kCloseSync && typeof proto[kCloseSync] === 'function') {
        const f = proto[kCloseSync] as Fn;
        set(proto, kCloseSync, function (this: unknown) {
          const e = typeof this === 'object' && this !== null ? genuine.get(this) : undefined;
          if (e && e.pending > 0) throw busy(e.fd);
          return f.call(this);
        });
      }
      // the native handle: its class takes any number (`new FileHandle(1)`) and writes to it
      if (native) {
        const np = Object.getPrototypeOf(native) as Record<string, unknown>;
        Object.defineProperty(np, 'constructor', {
          value: function FileHandle(): never {
            throw denied('FileHandle (native)', undefined);
          },
          writable: false,
          configurable: false,
          enumerable: false,
        });
        for (const key of NATIVE_IO) {
          const f = np[key];
          if (typeof f !== 'function') continue;
          set(np, key, function (this: { fd?: unknown }, ...args: unknown[]) {
            const fd = this.fd;
            if (typeof fd !== 'number' || fd < 0 || !lookup(fd)) throw denied(`FileHandle.${key}`, fd);
            return (f as Fn).apply(this, args);
          });
        }
        for (const key of ['close', 'closeSync']) {
          const f = np[key];
          if (typeof f !== 'function') continue;
          set(np, key, function (this: { fd?: unknown }, ...args: unknown[]) {
            const fd = this.fd;
            const e = typeof fd === 'number' ? owned.get(fd) : undefined;
            if (e && e.pending > 0) throw busy(e.fd);
            if (e) release(e);
            return (f as Fn).apply(this, args);
          });
        }
      }
    },
  };
}

/**
 * With --allow-net, net.Socket({ fd }), server.listen({ fd }) and dgram's bind({ fd }) all end in
 * the native handle's open(fd): refuse it there for a descriptor the Hand did not open. The
 * prototypes are reached by making one handle of each kind and dropping it unused.
 */
function lockSocketHandles(check: (api: string, fd: unknown) => unknown): void {
  const protos = new Set<object>();
  const take = (h: unknown): void => {
    if (typeof h === 'object' && h !== null) protos.add(Object.getPrototypeOf(h) as object);
  };
  try {
    const s = new net.Socket();
    s.on('error', () => {});
    s.connect({ port: 9, host: '127.0.0.1' }); // makes its TCP handle now; the connect itself waits a tick
    take((s as unknown as { _handle: unknown })._handle);
    s.destroy();
  } catch {
    /* no TCP handle: nothing to lock */
  }
  try {
    const p = new net.Socket();
    p.on('error', () => {});
    p.connect('\0talon-fd-guard-probe'); // a Pipe handle (abstract name: nothing on disk)
    take((p as unknown as { _handle: unknown })._handle);
    p.destroy();
  } catch {
    /* no Pipe handle */
  }
  try {
    const u = dgram.createSocket('udp4');
    const k = Object.getOwnPropertySymbols(u).find((s) => s.description === 'state symbol');
    if (k) take((u as unknown as Record<symbol, { handle?: unknown }>)[k]?.handle);
    u.close();
  } catch {
    /* no UDP handle */
  }
  for (const proto of protos) {
    const open = (proto as Record<string, unknown>).open;
    if (typeof open !== 'function') continue;
    Object.defineProperty(proto, 'open', {
      value: function (this: { fd?: unknown }, fd: unknown) {
        if (this.fd !== fd) check('socket open', fd);
        return (open as Fn).call(this, fd);
      },
      writable: false,
      configurable: false,
      enumerable: false,
    });
  }
}
