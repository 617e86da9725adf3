/**
 * The Hands' pages in the page build (web-admin/page/build.ts, hands/sdk/page.ts): each
 * `<hands dir>/<id>/page/index.tsx` becomes a chunk of its own that the first paint does not
 * load, listed in the manifest and the nav. The fixture Hand (test/fixtures/hands/surface-demo)
 * adds its page without a line in runtime/ or web-admin/.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { HANDS_DIR, MAX_GZIP_BYTES, buildPage, findHandPages, type PageManifest } from '../../web-admin/page/build.ts';

const FIXTURE_HANDS = join(import.meta.dirname, '..', 'fixtures', 'hands');
/** text only the fixture's page has (its module is browser code, not imported here) */
const MARKER = 'surface-demo-page-marker-7f3c';

const dirs: string[] = [];
process.once('exit', () => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});
const temp = (): string => {
  const d = mkdtempSync(join(tmpdir(), 'talon-page-hands-'));
  dirs.push(d);
  return d;
};

interface Built {
  dir: string;
  manifest: PageManifest;
}
const builds = new Map<string, Promise<Built>>();
/** the page built once per set of Hand folders */
const built = (handDirs: string[]): Promise<Built> => {
  const key = handDirs.join('|');
  let b = builds.get(key);
  if (!b) {
    b = (async () => {
      const dir = join(temp(), 'web');
      return { dir, manifest: await buildPage(dir, { handDirs }) };
    })();
    builds.set(key, b);
  }
  return b;
};
const read = (b: Built, name: string): string => readFileSync(join(b.dir, name), 'utf8');
const firstPaintBytes = (b: Built): number =>
  b.manifest.firstPaint.reduce((s, n) => s + b.manifest.files.find((f) => f.name === n)!.bytes, 0);
const appJs = (b: Built): string => b.manifest.firstPaint.find((n) => /^app-[A-Z0-9]+\.js$/.test(n))!;

test("a fixture Hand's page is found by its place and built into a chunk of its own", async () => {
  assert.deepEqual(
    findHandPages([FIXTURE_HANDS]).map((p) => p.hand),
    ['surface-demo'],
  );
  assert.ok(readFileSync(findHandPages([FIXTURE_HANDS])[0]!.path, 'utf8').includes(MARKER));
  const b = await built([HANDS_DIR, FIXTURE_HANDS]);
  const demo = b.manifest.hands.find((h) => h.hand === 'surface-demo');
  assert.ok(demo, `the manifest lists it: ${JSON.stringify(b.manifest.hands)}`);
  assert.deepEqual(
    { ...demo, file: '' },
    { hand: 'surface-demo', id: 'surface-demo', label: 'Surface demo', file: '' },
  );
  assert.match(demo.file, /^hand-surface-demo-[A-Z0-9]+\.js$/);
  assert.ok(
    b.manifest.files.some((f) => f.name === demo.file),
    'its chunk is one of the files (with its .gz and .br)',
  );
  assert.ok(read(b, demo.file).includes(MARKER), 'its code is in its chunk');
  // the nav knows it from the first paint, and loads it by import() when opened
  const app = read(b, appJs(b));
  assert.ok(app.includes('"Surface demo"'), 'the nav entry is in the app');
  assert.ok(app.includes(`import("./${demo.file}")`), 'the app loads the chunk on demand');
  assert.ok(b.manifest.totalGzip <= MAX_GZIP_BYTES);
});

test("the first paint loads no Hand's page code", async () => {
  const b = await built([HANDS_DIR, FIXTURE_HANDS]);
  assert.ok(b.manifest.firstPaint.includes('index.html'));
  assert.ok(b.manifest.hands.length >= 2, "the built-in Hand's page and the fixture's");
  for (const h of b.manifest.hands)
    assert.ok(!b.manifest.firstPaint.includes(h.file), `${h.file} is not in the first paint`);
  for (const name of b.manifest.firstPaint) {
    const text = read(b, name);
    assert.ok(!text.includes(MARKER), `${name} has none of the fixture page's code`);
    // the built-in Monitoring Hand's page: its alerts table and history chart load with it
    assert.ok(!/alert-ack-|chart-sensor-history/.test(text), `${name} has none of the Monitoring page's code`);
  }
  const monitoring = b.manifest.hands.find((h) => h.hand === 'monitoring');
  assert.deepEqual(monitoring && { id: monitoring.id, label: monitoring.label, section: monitoring.section }, {
    id: 'alerts',
    label: 'alerts',
    section: 'sensors',
  });
  assert.match(read(b, monitoring!.file), /alert-ack-/);
});

test("adding a Hand's page grows the first paint by its nav entry only", async () => {
  const without = await built([HANDS_DIR]);
  const withDemo = await built([HANDS_DIR, FIXTURE_HANDS]);
  const demo = withDemo.manifest.hands.find((h) => h.hand === 'surface-demo')!;
  const grew = firstPaintBytes(withDemo) - firstPaintBytes(without);
  assert.ok(
    grew >= 0 && grew < 200,
    `the first paint grew by ${grew} bytes (the fixture's chunk is ${withDemo.manifest.files.find((f) => f.name === demo.file)!.bytes})`,
  );
  assert.equal(
    without.manifest.hands.some((h) => h.hand === 'surface-demo'),
    false,
  );
});

test("with no Hand pages the page still builds: no Hand chunk, and only the kernel's lazy pages besides the app", async () => {
  const b = await built([]);
  assert.deepEqual(b.manifest.hands, []);
  const names = b.manifest.files.map((f) => f.name.replace(/-[A-Z0-9]+\./, '.')).sort();
  // the kernel's Tools, Approvals and Runs pages are one chunk loaded when opened (and what it shares with the app)
  assert.deepEqual(
    names.filter((n) => n !== 'chunk.js'),
    ['app.css', 'app.js', 'index.html'],
  );
  const chunks = b.manifest.files.filter((f) => f.name.startsWith('chunk-')).map((f) => read(b, f.name));
  assert.ok(
    chunks.some((text) => text.includes('approval')),
    'the tools pages are a chunk of their own',
  );
});

/** a Hands folder in a temp dir with one Hand `x` whose page module is `source` */
function handsWith(source: string, extra: Record<string, string> = {}): string {
  const root = temp();
  mkdirSync(join(root, 'x', 'page'), { recursive: true });
  writeFileSync(join(root, 'x', 'page', 'index.tsx'), source);
  for (const [name, text] of Object.entries(extra)) writeFileSync(join(root, 'x', 'page', name), text);
  return root;
}

test("a page module that is not a descriptor, or takes a kernel page's route, fails the build and says why", async () => {
  await assert.rejects(
    buildPage(join(temp(), 'web'), { handDirs: [handsWith("export default { id: 'x', label: 'X' };\n")] }),
    /index\.tsx: the default export is not a page descriptor: page "x": view must be a component/,
  );
  await assert.rejects(
    buildPage(join(temp(), 'web'), {
      handDirs: [handsWith("export default { id: 'Not An Id', label: 'X', view: () => null };\n")],
    }),
    /id must match/,
  );
  await assert.rejects(
    buildPage(join(temp(), 'web'), {
      handDirs: [handsWith("export default { id: 'x', label: 'X', section: 'nowhere', view: () => null };\n")],
    }),
    /section must be one of sensors/,
  );
  await assert.rejects(
    buildPage(join(temp(), 'web'), {
      handDirs: [handsWith("export default { id: 'hands', label: 'X', view: () => null };\n")],
    }),
    /the page "hands" is already the web admin's/,
  );
  await assert.rejects(
    buildPage(join(temp(), 'web'), {
      handDirs: [handsWith("document.title = 'x';\nexport default { id: 'x', label: 'X', view: () => null };\n")],
    }),
    /its top level must only declare/,
  );
});

test("two Hands' pages with the same route, or a page that imports CSS, fail the build", async () => {
  const page = "export default { id: 'same', label: 'Same', view: () => null };\n";
  const a = handsWith(page);
  const b = temp();
  mkdirSync(join(b, 'y', 'page'), { recursive: true });
  writeFileSync(join(b, 'y', 'page', 'index.tsx'), page);
  await assert.rejects(
    buildPage(join(temp(), 'web'), { handDirs: [a, b] }),
    /the page "same" is already the Hand "x"'s/,
  );
  const css = handsWith("import './own.css';\nexport default { id: 'styled', label: 'Styled', view: () => null };\n", {
    'own.css': '.x { color: red }\n',
  });
  await assert.rejects(buildPage(join(temp(), 'web'), { handDirs: [css] }), /imports CSS .*use the page's classes/);
});
