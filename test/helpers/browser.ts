/**
 * Debian's Chromium driven by playwright-core (no browser download: `executablePath`), headless,
 * with the flags this closed network needs (playwright gives it a fresh temporary profile). Screenshots land in test-results/screenshots/.
 */
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import { REPO } from './daemon.ts';

export const CHROMIUM = process.env.TALON_CHROMIUM ?? '/usr/bin/chromium';
export const SCREENSHOTS = join(REPO, 'test-results', 'screenshots');

export interface BrowserSession {
  browser: Browser;
  context: BrowserContext;
  page: Page;
  /** console errors and failed requests seen by the page (a clean page has none) */
  problems: string[];
  /** the whole page, or the viewport scrolled to `focus` (a selector) */
  screenshot(name: string, focus?: string): Promise<string>;
  close(): Promise<void>;
}

export async function openBrowser(baseURL: string): Promise<BrowserSession> {
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--disable-dev-shm-usage',
    ],
    timeout: 60_000,
  });
  const context = await browser.newContext({ baseURL, viewport: { width: 1280, height: 860 } });
  context.setDefaultTimeout(20_000);
  const page = await context.newPage();
  const problems: string[] = [];
  page.on('console', (m) => {
    if (m.type() === 'error') problems.push(`console: ${m.text()}`);
  });
  page.on('pageerror', (e) =>
    problems.push(`pageerror at ${page.url()}: ${e.message} ${(e.stack ?? '').split('\n').slice(1, 3).join(' ')}`),
  );
  mkdirSync(SCREENSHOTS, { recursive: true });
  return {
    browser,
    context,
    page,
    problems,
    async screenshot(name: string, focus?: string): Promise<string> {
      const file = join(SCREENSHOTS, `${name}.png`);
      if (focus) await page.locator(focus).first().scrollIntoViewIfNeeded();
      await page.screenshot({ path: file, fullPage: !focus });
      return file;
    },
    async close(): Promise<void> {
      await context.close().catch(() => {});
      await browser.close().catch(() => {});
    },
  };
}

/**
 * The web admin's first run as an owner does it: the setup code from the data folder, a user and password, then the
 * dashboard. Throws when the code file is missing (the daemon did not ask for a setup).
 */
export async function firstRunSetup(page: Page, dataDir: string, user: string, password: string): Promise<void> {
  await page.goto('/');
  await page.waitForSelector('[data-testid="setup-form"]');
  const codeFile = join(dataDir, 'setup-code');
  if (!existsSync(codeFile)) throw new Error(`no setup code in ${dataDir}: the daemon did not ask for a setup`);
  await page.fill('[data-testid="setup-code"]', readFileSync(codeFile, 'utf8').trim());
  await page.fill('[data-testid="setup-username"]', user);
  await page.fill('[data-testid="setup-password"]', password);
  await page.fill('[data-testid="setup-password2"]', password);
  await page.click('[data-testid="setup-submit"]');
  await page.waitForSelector('[data-testid="page-dashboard"]');
}
