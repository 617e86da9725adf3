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

// ESM-only packages kept outside the bundle (node-llama-cpp) are imported through this: the
// bundle itself runs in a vm.Script, whose import() has no loader once the code cache is used
globalThis.__talonImport = (specifier) => import(specifier);

const file = path.join(__dirname, 'talon-main.cjs');
const cacheFile = path.join(__dirname, `.talon-main.${process.version}-${process.arch}.v8cache`);
let cachedData;
try { cachedData = fs.readFileSync(cacheFile); } catch { /* first run */ }

// The source is read and wrapped inside a function so that only the Script holds it (V8
// needs it for lazy compilation); the bundle is ASCII (checked by image/bundle.ts), so it is
// a one-byte string of the file's size rather than a two-byte one of twice that.
const script = compile();
function compile() {
  return new vm.Script(Module.wrap(fs.readFileSync(file, 'latin1')), {
    filename: file, cachedData,
  });
}
if (cachedData === undefined || script.cachedDataRejected) {
  const save = setTimeout(() => {
    try {
      const tmp = `${cacheFile}.${process.pid}`;
      fs.writeFileSync(tmp, script.createCachedData());
      fs.renameSync(tmp, cacheFile);
    } catch { /* read-only install: run without a cache */ }
  }, 3000);
  save.unref();
}
cachedData = undefined;
const mod = new Module(file, module);
mod.filename = file;
mod.paths = Module._nodeModulePaths(__dirname);
const req = (id) => mod.require(id);
req.resolve = (request, opts) => Module._resolveFilename(request, mod, false, opts);
req.main = process.mainModule;
req.cache = Module._cache;
script.runInThisContext()(mod.exports, req, mod, file, __dirname);
