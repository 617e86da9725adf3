#!/usr/bin/env node
'use strict';
/*
 * dist/talon.cjs: starts dist/talon-main.cjs (the bundle) through V8's code cache. The first
 * run compiles normally and, a few seconds later, saves the compiled code (with every
 * function it has run by then) next to the bundle; later runs skip parsing and compiling it.
 * Node 22+ has this built in (module.enableCompileCache, SEA useCodeCache); Node 20 does not.
 * A missing, stale (other Node) or rejected cache only costs the normal compile.
 */
const fs = require('node:fs');
const path = require('node:path');
const vm = require('node:vm');
const Module = require('node:module');

// Talon runs on Node 26 LTS (the permission model that closes the network to Hands, among
// others). Started by an older Node (`node dist/talon.cjs` with the system's Node 20, or
// `./dist/talon.cjs` through `#!/usr/bin/env node`), it runs itself on the project's own
// Node (npm's node-linux-<arch> package in node_modules) or stops at once, saying what it needs.
const MIN_NODE = [26, 12];
if (nodeIsRecentEnough(process.versions.node)) start();
else runOnProjectNode();

function start() {
  // Inside the single executable (image/binary/) the bundle's files are SEA assets: extracted
  // once to a cache folder keyed by their hash, then run from there exactly like dist/.
  const sea = seaModule();
  const dir = sea ? extractAssets(sea) : __dirname;

  // ESM-only packages kept outside the bundle (node-llama-cpp) are imported through this: the
  // bundle itself runs in a vm.Script, whose import() has no loader once the code cache is used
  globalThis.__talonImport = sea ? (specifier) => importInSea(dir, specifier) : (specifier) => import(specifier);
  // CommonJS packages kept outside the binary (playwright-core, from the browser companion) are required through
  // this inside it (image/bundle.ts routes the bundle's import to it); elsewhere they come from node_modules
  if (sea) globalThis.__talonRequire = requireInSea;

  const companionScript = sea ? forkedCompanionScript() : null;
  if (companionScript) {
    // node-llama-cpp checks its library in a child process: fork(process.execPath, [its script])
    globalThis.__talonImport(require('node:url').pathToFileURL(companionScript).href).catch((err) => {
      process.stderr.write(`${err && err.stack ? err.stack : err}\n`);
      process.exit(1);
    });
  } else {
    runBundle(dir);
  }
}

function runBundle(dir) {
  const file = path.join(dir, 'talon-main.cjs');
  const cacheFile = path.join(dir, `.talon-main.${process.version}-${process.arch}.v8cache`);
  let cachedData;
  try {
    cachedData = fs.readFileSync(cacheFile);
  } catch {
    /* first run */
  }

  // The source is read and wrapped inside a function so that only the Script holds it (V8
  // needs it for lazy compilation); the bundle is ASCII (checked by image/bundle.ts), so it is
  // a one-byte string of the file's size rather than a two-byte one of twice that.
  const script = compile(file, cachedData);
  if (cachedData === undefined || script.cachedDataRejected) {
    const save = setTimeout(() => {
      try {
        const tmp = `${cacheFile}.${process.pid}`;
        fs.writeFileSync(tmp, script.createCachedData());
        fs.renameSync(tmp, cacheFile);
      } catch {
        /* read-only install: run without a cache */
      }
    }, 3000);
    save.unref();
  }
  cachedData = undefined;
  const mod = new Module(file, module);
  mod.filename = file;
  mod.paths = Module._nodeModulePaths(dir);
  const req = (id) => mod.require(id);
  req.resolve = (request, opts) => Module._resolveFilename(request, mod, false, opts);
  req.main = process.mainModule;
  req.cache = Module._cache;
  script.runInThisContext()(mod.exports, req, mod, file, dir);
}

function compile(file, cachedData) {
  return new vm.Script(Module.wrap(fs.readFileSync(file, 'latin1')), {
    filename: file,
    cachedData,
  });
}

// ---- the single executable ------------------------------------------------------------
// (function declarations: hoisted, so the code above can call them)

/** node:sea when running as a single executable, else null (plain node; Node 20 before 20.12 has no node:sea) */
function seaModule() {
  try {
    const m = require('node:sea');
    return m.isSea() ? m : null;
  } catch {
    return null;
  }
}

/**
 * The cache folder: $TALON_CACHE, else $STATE_DIRECTORY/cache (systemd's StateDirectory=),
 * else ~/.cache/talon, else <tmp>/talon-<uid>. The first that can be made (mode 0700) and is
 * ours alone: a folder another user owns or can write to is refused, not used.
 */
function cacheRoots() {
  const os = require('node:os');
  const roots = [];
  if (process.env.TALON_CACHE) return [process.env.TALON_CACHE];
  if (process.env.STATE_DIRECTORY) roots.push(path.join(process.env.STATE_DIRECTORY.split(':')[0], 'cache'));
  let home = '';
  try {
    home = os.homedir();
  } catch {
    /* no home */
  }
  if (home && home !== '/' && home !== '/nonexistent') roots.push(path.join(home, '.cache', 'talon'));
  roots.push(path.join(os.tmpdir(), `talon-${typeof process.getuid === 'function' ? process.getuid() : 'user'}`));
  return roots;
}

function usableRoot(root) {
  fs.mkdirSync(root, { recursive: true, mode: 0o700 });
  const st = fs.lstatSync(root);
  const uid = typeof process.getuid === 'function' ? process.getuid() : st.uid;
  if (!st.isDirectory() || st.uid !== uid || (st.mode & 0o022) !== 0) {
    throw new Error(`${root} is not a folder owned by this user and closed to others`);
  }
  return root;
}

/**
 * Extracts the assets named in talon-assets.json (written by image/binary/build.ts: the
 * assets' hash and each file's name and mode) into <cache>/<hash>/, once: a new folder is
 * filled under a temporary name and renamed into place, so a folder under the final name is
 * always complete (two processes starting at once both extract; one rename wins).
 */
function extractAssets(sea) {
  const manifest = JSON.parse(Buffer.from(sea.getRawAsset('talon-assets.json')).toString('utf8'));
  const errors = [];
  for (const candidate of cacheRoots()) {
    let root;
    try {
      root = usableRoot(candidate);
    } catch (err) {
      errors.push(`${candidate}: ${err.message}`);
      continue;
    }
    const dir = path.join(root, manifest.hash);
    if (fs.existsSync(dir)) return dir;
    const tmp = `${dir}.tmp-${process.pid}`;
    try {
      fs.rmSync(tmp, { recursive: true, force: true });
      fs.mkdirSync(tmp, { mode: 0o700 });
      for (const [name, mode] of manifest.files) {
        const target = path.join(tmp, name);
        fs.mkdirSync(path.dirname(target), { recursive: true, mode: 0o700 });
        fs.writeFileSync(target, new Uint8Array(sea.getRawAsset(name)), { mode });
      }
      fs.renameSync(tmp, dir);
    } catch (err) {
      fs.rmSync(tmp, { recursive: true, force: true });
      if (fs.existsSync(dir)) return dir; // another process won the rename
      errors.push(`${candidate}: ${err.message}`);
      continue;
    }
    return dir;
  }
  process.stderr.write(
    `talon: cannot extract the program's files to a cache folder (set TALON_CACHE to a writable folder):\n  ${errors.join('\n  ')}\n`,
  );
  process.exit(70);
}

/**
 * import() inside the single executable: its main script has no ESM loader, so the import
 * runs in esm-import.cjs (a real file in the extracted folder). node-llama-cpp is not in the
 * binary: it comes from the optional companion folder talon-llama-linux-<arch>/ next to it
 * (unpacked from talon-llama-linux-<arch>.tar), or $TALON_LLAMA_DIR.
 */
function llamaCompanion() {
  const name = `talon-llama-linux-${process.arch}`;
  return { name, dir: path.resolve(process.env.TALON_LLAMA_DIR || path.join(path.dirname(process.execPath), name)) };
}

/**
 * A script of the companion's, when node-llama-cpp has forked this binary to run it (as it
 * would fork `node`): a child with an IPC channel, whose first argument is a file inside the
 * companion folder. Anything else runs Talon.
 */
function forkedCompanionScript() {
  const arg = process.argv[2];
  if (typeof process.send !== 'function' || !arg || !path.isAbsolute(arg)) return null;
  const rel = path.relative(llamaCompanion().dir, arg);
  return !rel.startsWith('..') && !path.isAbsolute(rel) && fs.existsSync(arg) ? arg : null;
}

function importInSea(dir, specifier) {
  // the main script's own require() loads only built-in modules in a single executable
  const esmImport = Module.createRequire(path.join(dir, 'talon-main.cjs'))('./esm-import.cjs');
  if (specifier !== 'node-llama-cpp') return esmImport(specifier);
  const { name, dir: companion } = llamaCompanion();
  const entry = path.join(companion, 'index.mjs');
  if (!fs.existsSync(entry)) {
    return Promise.reject(
      new Error(
        `local inference (llama.cpp) is not built into this binary: put the companion ${name}/ (unpack ${name}.tar) ` +
          `next to ${process.execPath}, or set TALON_LLAMA_DIR to it; looked for ${entry}`,
      ),
    );
  }
  return esmImport(require('node:url').pathToFileURL(entry).href);
}

/**
 * The browser companion: playwright-core (CommonJS, no native code, one for every architecture) in the folder
 * talon-browser/ next to the binary (unpacked from talon-browser.tar), or $TALON_BROWSER_DIR. Required when the
 * kernel's browser starts its first job, never at start.
 */
function browserCompanion() {
  const name = 'talon-browser';
  return { name, dir: path.resolve(process.env.TALON_BROWSER_DIR || path.join(path.dirname(process.execPath), name)) };
}

function requireInSea(id) {
  if (id !== 'playwright-core') throw new Error(`${id} is not carried by this binary`);
  const { name, dir } = browserCompanion();
  const entry = path.join(dir, 'index.cjs');
  if (!fs.existsSync(entry)) {
    throw new Error(
      `browser automation needs the companion ${name}/ next to the binary (unpack ${name}.tar) and Chromium ` +
        `(apt-get install chromium); or set TALON_BROWSER_DIR to the companion folder; looked for ${entry}`,
    );
  }
  return Module.createRequire(entry)(entry);
}

// ---- the Node version gate --------------------------------------------------------------

function nodeIsRecentEnough(version) {
  const [major, minor] = version.split('.').map(Number);
  return major > MIN_NODE[0] || (major === MIN_NODE[0] && minor >= MIN_NODE[1]);
}

/**
 * Re-runs this launcher on node_modules/node-linux-<arch>/bin/node (installed by `npm ci` as
 * an optional dependency) with the same arguments, passing signals on and exiting as it
 * exits; without one, prints what to do and exits 78 (EX_CONFIG). Never returns.
 */
function runOnProjectNode() {
  const want = `${MIN_NODE[0]}.${MIN_NODE[1]}`;
  let node = null;
  let version = '';
  try {
    const pkgFile = require.resolve(`node-linux-${process.arch}/package.json`, { paths: [__dirname] });
    version = JSON.parse(fs.readFileSync(pkgFile, 'utf8')).version;
    const candidate = path.join(path.dirname(pkgFile), 'bin', 'node');
    if (nodeIsRecentEnough(version) && fs.existsSync(candidate)) node = candidate;
  } catch {
    /* not installed */
  }
  if (!node) {
    const root = path.resolve(__dirname, '..');
    process.stderr.write(
      `talon: needs Node ${want} or newer; this is Node ${process.versions.node} (${process.execPath}).\n` +
        `  In the project folder, \`npm ci\` installs its own Node ${MIN_NODE[0]} (node_modules/.bin/node), and\n` +
        `  \`npm start\` or \`npx talon ...\` in ${root} run on it; or install Node ${MIN_NODE[0]} LTS, or use the single binary.\n`,
    );
    process.exit(78);
  }
  const { spawn } = require('node:child_process');
  const child = spawn(node, process.argv.slice(1), { stdio: 'inherit' });
  // a terminal's Ctrl-C reaches both processes (one process group): let the child decide
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGQUIT', 'SIGUSR1', 'SIGUSR2']) {
    process.on(sig, () => {
      if (sig !== 'SIGINT') child.kill(sig);
    });
  }
  child.on('error', (err) => {
    process.stderr.write(`talon: cannot start ${node}: ${err.message}\n`);
    process.exit(70);
  });
  child.on('exit', (code, signal) => {
    if (signal) {
      process.removeAllListeners(signal);
      process.kill(process.pid, signal);
    }
    process.exit(code === null ? 1 : code);
  });
}
