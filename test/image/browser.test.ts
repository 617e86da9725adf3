/**
 * The browser in the shipped forms, without building a binary or a root filesystem: the companion tar
 * (image/binary/browser.ts) and playwright-core loading from it alone; the bundle's import of playwright-core going
 * through the launcher's __talonRequire (a failure not remembered, so unpacking the companion later works in the
 * same process); the image's choice of Chromium (a Web Automation Hand in a config, --with-browser), its package
 * list and the root filesystem's cache key; the missing companion refused before anything is written; and (as root,
 * like the image tests) a real image assembled from a stand-in root filesystem cached under the browser's key, with
 * the companion unpacked next to the binary.
 * The binary itself reading a page through the companion is in binary.test.ts (it reuses that file's build).
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { build } from 'esbuild';
import { REPO } from '../helpers/daemon.ts';
import { common } from '../../image/bundle.ts';
import { BROWSER_COMPANION, buildBrowserCompanion, skipped } from '../../image/binary/browser.ts';
import { parseArgs } from '../../image/binary/build.ts';
import {
  BROWSER_DIR,
  BROWSER_PACKAGES,
  browserChoice,
  browserCompanionTar,
  browserHands,
} from '../../image/disk/browser.ts';
import { BASE_PACKAGES, familyPackages, INITRAMFS_MODULES } from '../../image/disk/boards.ts';
import { rootfsKey, rootfsSpec, SUITE } from '../../image/disk/rootfs.ts';
import { buildImage, preflight } from '../../image/disk/assemble.ts';
import { Progress } from '../../image/disk/progress.ts';
import { initFleet } from '../../provisioning/fleet/keys.ts';
import { imageSkipReason } from './fixture.ts';
import { check, cut, extRead, extStat, partitions } from './readback.ts';

const work = mkdtempSync(join(tmpdir(), 'talon-browser-image-'));
// the bundled probe must find node_modules the way dist/ does: a folder inside the checkout
mkdirSync(join(REPO, '.cache'), { recursive: true });
const inRepo = mkdtempSync(join(REPO, '.cache', 'browser-bundle-test-'));
after(() => {
  rmSync(work, { recursive: true, force: true });
  rmSync(inRepo, { recursive: true, force: true });
});

/** a plain environment: nothing of this runner's Node options or Talon's variables */
function cleanEnv(): NodeJS.ProcessEnv {
  const env = { ...process.env };
  for (const k of Object.keys(env)) if (k.startsWith('NODE_') || k.startsWith('TALON_')) delete env[k];
  return env;
}

test('the companion: playwright-core alone, without declarations or the trace viewer, loads from the unpacked folder', () => {
  const tar = buildBrowserCompanion(REPO, join(work, 'out'));
  assert.equal(tar, join(work, 'out', `${BROWSER_COMPANION}.tar`));
  const names = execFileSync('tar', ['-tf', tar], { encoding: 'utf8' }).trim().split('\n');
  for (const f of ['index.cjs', 'package.json', 'node_modules/playwright-core/index.js'])
    assert.ok(names.includes(`${BROWSER_COMPANION}/${f}`), f);
  assert.ok(names.includes(`${BROWSER_COMPANION}/node_modules/playwright-core/lib/coreBundle.js`));
  assert.ok(!names.some((n) => /\.d\.ts$|\/types\/|\/lib\/vite\//.test(n)), 'declarations or lib/vite carried');
  assert.ok(!names.some((n) => n.startsWith('/') || n.split('/').includes('..')), 'a path outside the folder');
  // reproducible: the same tar twice
  const again = buildBrowserCompanion(REPO, join(work, 'again'));
  assert.equal(
    execFileSync('sha256sum', [tar], { encoding: 'utf8' }).split(' ')[0],
    execFileSync('sha256sum', [again], { encoding: 'utf8' }).split(' ')[0],
  );

  // unpacked in a folder with no node_modules above it, it loads by itself
  const folder = join(work, 'unpacked');
  mkdirSync(folder);
  execFileSync('tar', ['-xf', tar, '-C', folder]);
  for (let d = folder; d !== dirname(d); d = dirname(d)) assert.ok(!existsSync(join(d, 'node_modules')), d);
  const r = spawnSync(
    process.execPath,
    [
      '-e',
      `const p = require(${JSON.stringify(join(folder, BROWSER_COMPANION, 'index.cjs'))}); console.log(typeof p.chromium.launch, p.chromium.name())`,
    ],
    { encoding: 'utf8', env: cleanEnv(), cwd: folder },
  );
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stdout.trim(), 'function chromium');

  assert.equal(skipped('lib/vite/traceViewer/index.html'), true);
  assert.equal(skipped('types/types.d.ts'), true);
  assert.equal(skipped('lib/coreBundle.js'), false);
  assert.equal(skipped('lib/server/chromium/appIcon.png'), false);
});

test("the bundle's import of playwright-core: through __talonRequire when the launcher has one, a failure not kept", async () => {
  const entry = join(inRepo, 'probe.ts');
  writeFileSync(
    entry,
    [
      "const load = async () => { const { chromium } = await import('playwright-core'); return chromium.name(); };",
      'const out: string[] = [];',
      'const mode = process.argv[2];',
      "if (mode === 'launcher') {",
      '  let calls = 0;',
      '  (globalThis as any).__talonRequire = (id: string) => {',
      '    calls++;',
      "    if (calls === 1) throw new Error('no companion for ' + id);",
      "    return { chromium: { name: () => 'from the companion' } };",
      '  };',
      '}',
      '(async () => {',
      '  for (let i = 0; i < 2; i++) {',
      "    try { out.push(await load()); } catch (err) { out.push('error: ' + (err as Error).message); }",
      '  }',
      '  console.log(JSON.stringify(out));',
      '})();',
      '',
    ].join('\n'),
  );
  const outfile = join(inRepo, 'probe.cjs');
  await build({ ...common, entryPoints: [entry], outfile, logLevel: 'error' });
  const run = (mode: string): string[] => {
    const r = spawnSync(process.execPath, [outfile, mode], { encoding: 'utf8', env: cleanEnv() });
    assert.equal(r.status, 0, r.stderr);
    return JSON.parse(r.stdout) as string[];
  };
  // dist/ and `npm start`: node_modules, as before
  assert.deepEqual(run('plain'), ['chromium', 'chromium']);
  // the binary: the launcher's require; the first attempt fails (no companion yet), the next one loads it
  assert.deepEqual(run('launcher'), ['error: no companion for playwright-core', 'from the companion']);
});

test("the image's browser: on for a config with a Web Automation Hand or --with-browser, off otherwise", () => {
  const web = { name: 'web', module: 'web-automation' };
  assert.deepEqual(browserHands({ hands: [{ name: 'monitoring', module: 'monitoring' }, web] }), ['web']);
  assert.deepEqual(browserHands({ hands: [{ ...web, enabled: false }] }), []);
  // no `hands`: the built-in default instances, and web-automation has none
  assert.deepEqual(browserHands({ deviceName: 'x' }), []);
  assert.deepEqual(browserHands('hands: web'), []);
  assert.deepEqual(browserHands(null), []);

  assert.deepEqual(browserChoice({}).browser, false);
  assert.match(browserChoice({}).why, /no Hand of module web-automation .* no --with-browser/);
  assert.deepEqual(browserChoice({ withBrowser: true }), { browser: true, why: '--with-browser' });
  const byConfig = browserChoice({ configs: [{ deviceName: 'x' }, { hands: [web] }] });
  assert.equal(byConfig.browser, true);
  assert.match(byConfig.why, /the Hand "web" \(module web-automation\)/);
  assert.equal(browserChoice({ withBrowser: false, configs: [{ hands: [web] }] }).browser, false);
});

test('the package list and the cache key: chromium and a font with the browser, the old key without it', () => {
  for (const family of ['rpi', 'generic'] as const) {
    const plain = rootfsSpec(family);
    // without the browser, exactly the spec (and so the key) of the root filesystems cached before it existed
    assert.deepEqual(plain, {
      suite: SUITE,
      family,
      packages: [...BASE_PACKAGES, ...familyPackages(family)].sort(),
      components: family === 'rpi' ? ['main', 'non-free-firmware'] : ['main'],
      initramfs: { modules: INITRAMFS_MODULES, compress: 'gzip' },
    });
    assert.deepEqual(rootfsSpec(family, { browser: false }), plain);
    const withBrowser = rootfsSpec(family, { browser: true });
    for (const p of ['chromium', 'fonts-dejavu-core']) {
      assert.ok(withBrowser.packages.includes(p), p);
      assert.ok(!plain.packages.includes(p), p);
    }
    assert.deepEqual(
      withBrowser.packages,
      [...plain.packages, ...BROWSER_PACKAGES].sort(),
      'only the browser packages added, sorted',
    );
    assert.notEqual(rootfsKey(withBrowser), rootfsKey(plain));
    assert.match(rootfsKey(withBrowser), new RegExp(`^${SUITE}-${family}-[0-9a-f]{16}$`));
    assert.equal(rootfsKey(rootfsSpec(family, { browser: true })), rootfsKey(withBrowser), 'stable');
  }
});

test('an image with the browser needs the companion: refused before anything is written, found next to the binary', () => {
  const dir = join(work, 'image');
  mkdirSync(dir);
  const fleet = initFleet(join(dir, 'fleet'), { fleetId: 'browser-test', brokerUrl: 'mqtt://broker.example:1883' });
  // an arm64 ELF header is all the binary check reads
  const binary = join(dir, 'talon-linux-arm64');
  const elf = Buffer.alloc(64);
  elf.writeUInt32BE(0x7f454c46, 0);
  elf.writeUInt16LE(183, 18);
  writeFileSync(binary, elf);
  const opts = {
    board: 'generic-arm64',
    cache: join(dir, 'cache'),
    fleet: fleet.dir,
    out: join(dir, 'device.img'),
    binary,
    progress: new Progress(1, { write: () => {}, tty: false }),
  };
  const missing = (e: Error & { code?: string }): boolean =>
    e.code === 'IMAGE_BINARY_MISSING' &&
    e.message.includes(`there is none at ${join(dir, 'talon-browser.tar')}`) &&
    e.message.includes('npm run build:binary -- --arch arm64 --browser');
  assert.throws(() => preflight({ ...opts, withBrowser: true }), missing);
  assert.throws(
    () => preflight({ ...opts, provisionConfig: { hands: [{ name: 'web', module: 'web-automation' }] } }),
    missing,
  );
  assert.deepEqual(readdirSync(dir).sort(), ['fleet', 'talon-linux-arm64'], 'nothing written');

  writeFileSync(join(dir, 'talon-browser.tar'), '');
  assert.equal(browserCompanionTar(binary), join(dir, 'talon-browser.tar'));
  assert.equal(
    browserCompanionTar(binary, join(work, 'out', 'talon-browser.tar')),
    join(work, 'out', 'talon-browser.tar'),
  );
  assert.equal(BROWSER_DIR, '/usr/local/bin/talon-browser', 'next to /usr/local/bin/talon, where the launcher looks');
});

test('`npm run build:binary -- --browser`', () => {
  assert.deepEqual(parseArgs(['--arch', 'x64', '--browser', '--no-sizes']), {
    arches: ['x64'],
    sizes: false,
    llama: false,
    browser: true,
  });
  assert.equal(parseArgs(['--arch=arm64']).browser, false);
  assert.throws(() => parseArgs(['--chromium']), /unknown option --chromium/);
});

/** an arm64 ELF header: all the binary check reads */
function fakeArm64Binary(file: string): void {
  const elf = Buffer.alloc(64);
  elf.writeUInt32BE(0x7f454c46, 0);
  elf.writeUInt16LE(183, 18);
  writeFileSync(file, elf);
}

test("an image for a config with a Web Automation Hand: the browser's root filesystem, the companion next to the binary", {
  skip: imageSkipReason() ?? false,
  timeout: 180_000,
}, async () => {
  const dir = join(work, 'built');
  mkdirSync(dir);
  const fleet = initFleet(join(dir, 'fleet'), { fleetId: 'browser-image', brokerUrl: 'mqtt://broker.example:1883' });
  const binary = join(dir, 'talon-linux-arm64');
  fakeArm64Binary(binary);
  buildBrowserCompanion(REPO, dir);
  // a stand-in for the Debian root filesystem, cached under the key of the package list with chromium: a build
  // that looked under any other key would start mmdebstrap instead
  const fake = join(dir, 'fake-root');
  for (const d of ['boot', 'etc', 'usr/local/bin']) mkdirSync(join(fake, d), { recursive: true });
  writeFileSync(join(fake, 'boot', 'vmlinuz-6.1.0-99-arm64'), 'kernel');
  writeFileSync(join(fake, 'boot', 'initrd.img-6.1.0-99-arm64'), 'initrd');
  const cache = join(dir, 'cache');
  mkdirSync(cache);
  const key = rootfsKey(rootfsSpec('generic', { browser: true }));
  execFileSync('tar', ['-cf', join(cache, `${key}.tar`), '--numeric-owner', '-C', fake, '.']);
  const out = join(dir, 'out');
  mkdirSync(out);
  const lines: string[] = [];
  const r = await buildImage({
    board: 'generic-arm64',
    fleet: fleet.dir,
    out: join(out, 'device.img'),
    binary,
    cache,
    compress: 'none',
    sizeBytes: 1024 ** 3,
    provisionConfig: { hands: [{ name: 'web', module: 'web-automation' }] },
    progress: new Progress(7, { write: (s) => void lines.push(s), tty: false }),
  });
  const said = lines.join('');
  assert.match(said, /browser on: the config runs the Hand "web" \(module web-automation\)/);
  assert.match(said, new RegExp(`root filesystem from the cache: .*${key}\\.tar`));
  assert.deepEqual(readdirSync(cache), [`${key}.tar`], 'no other root filesystem was built');

  const root = partitions(r.raw!).partitions[1]!;
  const rootFs = cut(r.raw!, root, dir, 'root.ext4');
  const fsck = check('e2fsck', ['-fn', rootFs]);
  assert.equal(fsck.status, 0, fsck.output);
  const entry = `${BROWSER_DIR}/index.cjs`;
  assert.match(extRead(rootFs, entry).toString(), /require\('playwright-core'\)/);
  assert.match(extStat(rootFs, entry), /User:\s+0\s+Group:\s+0/);
  assert.match(extStat(rootFs, entry), /Mode:\s+0644/);
  const pkg = JSON.parse(extRead(rootFs, `${BROWSER_DIR}/node_modules/playwright-core/package.json`).toString());
  assert.equal(pkg.name, 'playwright-core');
  assert.match(extStat(rootFs, BROWSER_DIR), /Mode:\s+0755/);
});

test('an overlay with the browser: the companion as /usr/local/bin/talon-browser/, root-owned; missing, refused first', async () => {
  const { buildOverlay } = await import('../../image/disk/overlay.ts');
  const dir = join(work, 'overlay');
  mkdirSync(dir);
  const binary = join(dir, 'talon-linux-arm64');
  fakeArm64Binary(binary);
  const out = join(dir, 'talon-rootfs.tar');
  // no companion next to the binary yet: refused, nothing written
  await assert.rejects(
    buildOverlay({ out, binary, withBrowser: true }),
    (e: Error & { code?: string }) => e.code === 'IMAGE_BINARY_MISSING' && /--browser/.test(e.message),
  );
  assert.equal(existsSync(out), false);
  buildBrowserCompanion(REPO, dir);
  const r = await buildOverlay({ out, binary, withBrowser: true });
  const listing = execFileSync('tar', ['-tvf', out], { encoding: 'utf8' });
  for (const f of ['./usr/local/bin/talon', './usr/local/bin/talon-browser/index.cjs', './etc/talon/config.yaml'])
    assert.ok(listing.includes(f), `${f} in the overlay:\n${listing.slice(0, 2000)}`);
  for (const line of listing.trim().split('\n')) assert.match(line, /^\S+ 0\/0 /, `root-owned: ${line}`);
  assert.ok(r.entries.includes('./usr/local/bin/talon-browser/'));
  // without the option the overlay is as before
  const plain = await buildOverlay({ out: join(dir, 'plain.tar'), binary });
  assert.doesNotMatch(execFileSync('tar', ['-tf', plain.file], { encoding: 'utf8' }), /talon-browser/);
});
