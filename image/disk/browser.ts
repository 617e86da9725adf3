/**
 * The browser on a device image: whether `talon image build` adds Debian's Chromium to the root filesystem, and the
 * browser companion (talon-browser.tar, image/binary/browser.ts) next to the binary. On when asked
 * (`--with-browser`), else when a config the image is built for runs a Hand of module `web-automation` (the Web
 * Automation Hand drives the system's Chromium through the kernel's browser pool); off otherwise: Chromium and
 * what it pulls in are ~0.7 GB installed (image/disk/README.md), too much for images that never open a page.
 *
 * The root filesystem's cache key hashes the package list (rootfs.ts), so an image with the browser and one without
 * come from two cached root filesystems, each built once.
 */
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { TalonError } from '../../runtime/core/errors.ts';
import { BINARY_PATH } from './talon-files.ts';

/** what the browser adds to the root filesystem: Chromium, and a font so pages have glyphs to render */
export const BROWSER_PACKAGES = ['chromium', 'fonts-dejavu-core'] as const;
/** the Hand whose config turns the browser on */
export const BROWSER_MODULE = 'web-automation';
/** the companion's folder in the image: next to the binary, where image/launcher.cjs looks */
export const BROWSER_DIR = join(dirname(BINARY_PATH), 'talon-browser');
/** the file image/binary/browser.ts writes next to the binaries */
export const BROWSER_TAR = 'talon-browser.tar';

export interface BrowserChoice {
  browser: boolean;
  /** said during the build */
  why: string;
}

/**
 * The enabled Hands of module `web-automation` in a config (parsed YAML or JSON; anything else has none). A config
 * without `hands` runs the built-in Hands' default instances, and the Web Automation Hand has none
 * (hands/catalog.ts): no browser.
 */
export function browserHands(config: unknown): string[] {
  if (typeof config !== 'object' || config === null) return [];
  const hands = (config as { hands?: unknown }).hands;
  if (!Array.isArray(hands)) return [];
  return hands.flatMap((h) => {
    if (typeof h !== 'object' || h === null) return [];
    const { module, name, enabled } = h as { module?: unknown; name?: unknown; enabled?: unknown };
    return module === BROWSER_MODULE && enabled !== false ? [typeof name === 'string' ? name : BROWSER_MODULE] : [];
  });
}

/**
 * On or off: `withBrowser` (the `--with-browser` flag; false turns it off whatever the configs say) wins; else on
 * when one of `configs` (the config written into the image, and the config the devices will be provisioned with
 * when the caller has it) runs a Web Automation Hand.
 */
export function browserChoice(opts: { withBrowser?: boolean | undefined; configs?: unknown[] }): BrowserChoice {
  if (opts.withBrowser === true) return { browser: true, why: '--with-browser' };
  if (opts.withBrowser === false) return { browser: false, why: 'the browser was turned off' };
  for (const config of opts.configs ?? []) {
    const hands = browserHands(config);
    if (hands.length > 0)
      return {
        browser: true,
        why: `the config runs the Hand ${hands.map((h) => `"${h}"`).join(', ')} (module ${BROWSER_MODULE})`,
      };
  }
  return { browser: false, why: `no Hand of module ${BROWSER_MODULE} in the config and no --with-browser` };
}

/** the root filesystem's extra packages for a choice */
export function browserPackages(browser: boolean): string[] {
  return browser ? [...BROWSER_PACKAGES] : [];
}

/** the companion tar for an image: given, else next to the binary; an error saying how to build it when missing */
export function browserCompanionTar(binary: string, given?: string): string {
  const file = given ?? join(dirname(binary), BROWSER_TAR);
  if (!existsSync(file))
    throw new TalonError(
      'IMAGE_BINARY_MISSING',
      `the image's browser needs the companion ${BROWSER_TAR} and there is none at ${file}: build it with ` +
        '`npm run build:binary -- --arch arm64 --browser` (it lands next to the binary), or give its path',
    );
  return file;
}
