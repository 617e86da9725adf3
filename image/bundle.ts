/**
 * Bundles the whole program with esbuild into CommonJS files that run on plain Node and,
 * later, inside a Node single executable (SEA runs one CommonJS script):
 *   dist/talon.cjs        a small launcher that runs talon-main.cjs through V8's code cache
 *   dist/talon-main.cjs   the daemon and CLI
 *   dist/hand-worker.cjs  what runs inside every Hand's worker_thread
 *   dist/hands/<id>.cjs   each built-in Hand, loaded by the worker by path
 * ESM-only dependencies (aedes) are converted to CJS by esbuild; none may use top-level
 * await. node-llama-cpp (ESM with native addons) stays external and is loaded with a
 * dynamic import() from a companion folder (see README: "Bundle plan"); so does playwright-core
 * (CommonJS, required on first use: companionRequire below, image/binary/browser.ts).
 */
import { build, type BuildOptions, type Plugin } from 'esbuild';
import standaloneCode from 'ajv/dist/standalone/index.js';
import { SCHEMAS } from '../runtime/schema/registry.ts';
import { makeAjv } from '../runtime/schema/validators.ts';
import {
  readdirSync,
  existsSync,
  mkdirSync,
  rmSync,
  readFileSync,
  writeFileSync,
  copyFileSync,
  chmodSync,
} from 'node:fs';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { buildPage } from '../web-admin/page/build.ts';

const root = join(import.meta.dirname, '..');
const distOut = join(root, 'dist');
const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { version: string };

/**
 * the build's time for BUILD_TIME (runtime/version.ts): the commit's time, so two builds of one commit are the same;
 * SOURCE_DATE_EPOCH (seconds) wins, as reproducible builds expect
 */
function commitTime(): number {
  const epoch = Number(process.env.SOURCE_DATE_EPOCH);
  if (Number.isFinite(epoch) && epoch > 0) return epoch * 1000;
  try {
    const s = execFileSync('git', ['log', '-1', '--format=%ct'], {
      cwd: root,
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'ignore'],
    }).trim();
    return Number(s) > 0 ? Number(s) * 1000 : Date.parse('2026-12-01T00:00:00Z');
  } catch {
    return Date.parse('2026-12-01T00:00:00Z');
  }
}

function commit(): string {
  if (process.env.TALON_COMMIT) return process.env.TALON_COMMIT;
  try {
    return execFileSync('git', ['rev-parse', '--short=12', 'HEAD'], {
      cwd: root,
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'ignore'],
    }).trim();
  } catch {
    return 'unknown';
  }
}

/**
 * Replaces runtime/schema/precompiled.ts with ajv standalone validators for every schema
 * in the registry: no schema compilation when the shipped program starts. A `lazy` entry
 * (a driver type's validator) is a getter that evaluates its code on first use, so V8
 * compiles it only in a kernel whose config uses that driver type, and the launcher's code
 * cache then holds it. (Its own file, required on first use, was measured too: it saves the
 * ~0.3 MB of source in the heap but costs ~10 ms at every start of the default config, whose
 * system and sim validators are then compiled without a code cache.)
 */
export const precompiledSchemas: Plugin = {
  name: 'precompiled-schemas',
  setup(b) {
    b.onLoad({ filter: /runtime[\\/]schema[\\/]precompiled\.ts$/ }, () => {
      const parts: string[] = [];
      const names: string[] = [];
      for (const [id, entry] of Object.entries(SCHEMAS)) {
        const ajv = makeAjv(entry, { code: { source: true, esm: false } });
        const name = `v_${id.replace(/\W/g, '_')}`;
        const make = `(() => { const module = { exports: {} }; const exports = module.exports;\n${standaloneCode(ajv, ajv.compile(entry.schema))}\nreturn module.exports; })()`;
        if (entry.lazy) {
          parts.push(`let ${name};`);
          names.push(`get ${JSON.stringify(id)}() { return ${name} ??= ${make}; }`);
        } else {
          parts.push(`const ${name} = ${make};`);
          names.push(`${JSON.stringify(id)}: ${name}`);
        }
      }
      return {
        contents: `${parts.join('\n')}\nexport const precompiled = { ${names.join(', ')} };\n`,
        loader: 'js',
        resolveDir: root,
      };
    });
  },
};

/** classic-level's binding.js loads its addon relative to its own folder: route it through runtime/native.ts */
export const nativeAddons: Plugin = {
  name: 'native-addons',
  setup(b) {
    b.onLoad({ filter: /node_modules[\\/]@serialport[\\/]bindings-cpp[\\/]dist[\\/]serialport-bindings\.js$/ }, () => ({
      contents: `exports.binding = require(${JSON.stringify(join(root, 'runtime/native.ts'))}).loadAddon('@serialport/bindings-cpp');`,
      loader: 'js',
      resolveDir: root,
    }));
    b.onLoad({ filter: /node_modules[\\/]classic-level[\\/]binding\.js$/ }, () => ({
      contents: `module.exports = require(${JSON.stringify(join(root, 'runtime/native.ts'))}).loadAddon('classic-level');`,
      loader: 'js',
      resolveDir: root,
    }));
    // onoff's epoll finds its addon with `bindings` (a stack walk to the package folder)
    b.onLoad({ filter: /node_modules[\\/]epoll[\\/]epoll\.js$/ }, () => ({
      contents: `module.exports = require(${JSON.stringify(join(root, 'runtime/native.ts'))}).loadAddon('epoll');`,
      loader: 'js',
      resolveDir: root,
    }));
  },
};

/**
 * Big dependencies loaded only with `await import()` on a path that is rarely taken at start
 * (mqtt.js: only with an external broker; serialport and onoff: only with such drivers;
 * systeminformation: inventory only; selfsigned (node-forge): only to make a TLS certificate;
 * linkedom, Readability and turndown: only when the web.read tool reads an HTML page; jsonpath-plus and
 * csv-parse: only at the json.query and csv.parse tools' first calls; pngjs: only for a visual browser.read). Each goes to
 * its own dist/vendor/<file>.cjs, so its source is neither read, compiled nor kept in memory by a
 * daemon that never uses it.
 */
export const VENDOR = [
  'mqtt',
  'serialport',
  'onoff',
  'systeminformation',
  'selfsigned',
  'linkedom',
  '@mozilla/readability',
  'turndown',
  'jsonpath-plus',
  'csv-parse/sync',
  'pngjs',
] as const;

/**
 * Files of ours that stay out of the main bundle the same way, by the dynamic import that names
 * them: the MCP SDK (with zod and its transports), loaded on the first MCP connection or request.
 */
export const LOCAL_VENDOR = {
  'mcp-sdk': { importer: 'runtime/tools/mcp/', request: './sdk.ts', entry: 'runtime/tools/mcp/sdk.ts' },
} as const;

/** vendor/<file>.cjs: one level down, whatever the package's scope (runtime/native.ts looks there) */
export const vendorFile = (name: string): string => `${name.replace(/^@/, '').replace(/\//g, '-')}.cjs`;

export const vendorSplit: Plugin = {
  name: 'vendor-split',
  setup(b) {
    const filter = new RegExp(`^(${VENDOR.map((v) => v.replace(/[/.]/g, '\\$&')).join('|')})$`);
    b.onResolve({ filter }, (args) =>
      args.kind === 'dynamic-import' ? { path: args.path, namespace: 'vendor' } : undefined,
    );
    for (const [file, v] of Object.entries(LOCAL_VENDOR)) {
      const request = new RegExp(`^${v.request.replace(/[/.]/g, '\\$&')}$`);
      b.onResolve({ filter: request }, (args) =>
        args.kind === 'dynamic-import' && args.importer.replace(/\\/g, '/').includes(v.importer)
          ? { path: file, namespace: 'vendor' }
          : undefined,
      );
    }
    // a stub in the bundle: require() (not import()) of the file next to the bundle, so the
    // module's shape is what the bundled import() gave before (default = module.exports)
    b.onLoad({ filter: /.*/, namespace: 'vendor' }, (args) => ({
      contents: `module.exports = require(require('node:path').join(__dirname, 'vendor', ${JSON.stringify(vendorFile(args.path))}));`,
      loader: 'js',
    }));
  },
};

/**
 * CommonJS packages kept outside the bundle and, in the single executable, outside the binary too: playwright-core
 * (it reads its own files by path; the binary gets it from the browser companion, image/binary/browser.ts). The
 * bundle's `import()` of one becomes a stub that, on first use, requires it through globalThis.__talonRequire when
 * the launcher defines one (inside the binary: the companion folder, or a clear error naming it), else from
 * node_modules as before (dist/, `npm start`). Each stays in `external`, so the stub's own require() is kept.
 */
export const COMPANIONS = ['playwright-core'] as const;

export const companionRequire: Plugin = {
  name: 'companion-require',
  setup(b) {
    const filter = new RegExp(`^(${COMPANIONS.map((c) => c.replace(/[/.]/g, '\\$&')).join('|')})$`);
    b.onResolve({ filter }, (args) =>
      args.kind === 'dynamic-import' ? { path: args.path, namespace: 'companion' } : undefined,
    );
    // loaded on the first use of the module, not when the stub is: esbuild keeps a CommonJS module whose body threw
    // as an empty object, so a first attempt without the companion would break every later one in the process
    b.onLoad({ filter: /.*/, namespace: 'companion' }, (args) => {
      const id = JSON.stringify(args.path);
      return {
        contents: [
          'let loaded;',
          `const load = () => (loaded ??= globalThis.__talonRequire ? globalThis.__talonRequire(${id}) : require(${id}));`,
          'module.exports = new Proxy({}, {',
          '  get: (_, key) => load()[key],',
          '  has: (_, key) => key in load(),',
          '  ownKeys: () => Reflect.ownKeys(load()),',
          '  getOwnPropertyDescriptor: (_, key) => {',
          '    const d = Reflect.getOwnPropertyDescriptor(load(), key);',
          '    return d && { ...d, configurable: true };',
          '  },',
          '});',
          '',
        ].join('\n'),
        loader: 'js',
        resolveDir: root,
      };
    });
  },
};

/**
 * dist/talon.cjs reads the bundle as latin1 (one byte per character in V8's heap, half the
 * memory of a two-byte string): escape the odd non-ASCII character esbuild leaves in comments.
 */
function asciiOnly(file: string): void {
  const text = readFileSync(file, 'utf8');
  // eslint-disable-next-line no-control-regex
  if (!/[^\x00-\x7f]/.test(text)) return;
  // eslint-disable-next-line no-control-regex
  writeFileSync(
    file,
    text.replace(/[^\x00-\x7f]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`),
  );
}

export const common: BuildOptions = {
  bundle: true,
  platform: 'node',
  target: 'node20',
  format: 'cjs',
  sourcemap: false,
  minifySyntax: true,
  legalComments: 'none',
  logLevel: 'warning',
  banner: { js: 'const __import_meta_url = require("node:url").pathToFileURL(__filename).href;' },
  define: {
    'import.meta.url': '__import_meta_url',
    'import.meta.dirname': '__dirname',
    'import.meta.filename': '__filename',
    __TALON_BUNDLE__: 'true',
    __TALON_VERSION__: JSON.stringify(pkg.version),
    __TALON_COMMIT__: JSON.stringify(commit()),
    __TALON_BUILD_TIME__: String(commitTime()),
  },
  // playwright-core finds its own files by path at run time: loaded from node_modules (or, in the binary, the
  // browser companion: companionRequire) when a browser tool first runs
  external: ['node-llama-cpp', 'node-gyp-build', ...COMPANIONS],
  plugins: [precompiledSchemas, nativeAddons, companionRequire],
  // dynamic import() of what the bundle keeps outside becomes require(): the launcher runs the
  // bundle through vm.Script, where import() has no loader once V8's code cache is used. The
  // one ESM-only package (node-llama-cpp) is imported through globalThis.__talonImport,
  // which the launcher defines with a real import().
  supported: { 'dynamic-import': false },
};

export function builtinHands(): string[] {
  const dir = join(root, 'hands');
  return readdirSync(dir, { withFileTypes: true })
    .filter((d) => d.isDirectory() && d.name !== 'sdk' && existsSync(join(dir, d.name, 'index.ts')))
    .map((d) => d.name);
}

/** builds into `out` (dist/, or a private folder for image/binary/build.ts); dist/bin/ (the binaries) is kept */
export async function bundle(out: string = distOut): Promise<void> {
  for (const entry of existsSync(out) ? readdirSync(out) : []) {
    if (entry !== 'bin') rmSync(join(out, entry), { recursive: true, force: true });
  }
  mkdirSync(join(out, 'hands'), { recursive: true });
  await Promise.all([
    build({
      ...common,
      entryPoints: [join(root, 'runtime/cli/main.ts')],
      outfile: join(out, 'talon-main.cjs'),
      plugins: [...common.plugins!, vendorSplit],
    }),
    ...VENDOR.map((name) => build({ ...common, entryPoints: [name], outfile: join(out, 'vendor', vendorFile(name)) })),
    ...Object.entries(LOCAL_VENDOR).map(([file, v]) =>
      build({ ...common, entryPoints: [join(root, v.entry)], outfile: join(out, 'vendor', vendorFile(file)) }),
    ),
    build({ ...common, entryPoints: [join(root, 'runtime/worker/worker.ts')], outfile: join(out, 'hand-worker.cjs') }),
    ...builtinHands().map((id) =>
      build({
        ...common,
        entryPoints: [join(root, 'hands', id, 'index.ts')],
        outfile: join(out, 'hands', `${id}.cjs`),
      }),
    ),
  ]);
  // the web admin page: dist/web/ (index.html, app-<hash>.js|css, .gz/.br siblings, manifest.json)
  await buildPage(join(out, 'web'));
  asciiOnly(join(out, 'talon-main.cjs'));
  copyFileSync(join(root, 'image/launcher.cjs'), join(out, 'talon.cjs'));
  chmodSync(join(out, 'talon.cjs'), 0o755);
}

if (process.argv[1] && import.meta.filename === process.argv[1]) {
  bundle().catch((err: unknown) => {
    console.error(err);
    process.exit(1);
  });
}
