// Browser harness for clawgate's browser tests: Debian's Chromium, headless, driven by
// puppeteer-core (installed by the Rust side into CLAWGATE_PUPPETEER_DIR). A test script does
//   const h = await import(process.env.CLAWGATE_BROWSER_JS);
//   const browser = await h.launch();
// and ends with h.done({...result}) (or throws: the harness prints the error and exits 1).
import { createRequire } from 'node:module';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const require = createRequire(join(process.env.CLAWGATE_PUPPETEER_DIR, 'resolve.js'));
export const puppeteer = require('puppeteer-core');

const profiles = [];

/** Launches headless Chromium with a fresh profile and the flags this machine needs. */
export async function launch(extraArgs = []) {
  const dir = mkdtempSync(join(tmpdir(), 'clawgate-chromium-'));
  profiles.push(dir);
  return puppeteer.launch({
    executablePath: process.env.CLAWGATE_CHROMIUM,
    headless: true,
    args: [
      '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
      `--user-data-dir=${dir}`, ...extraArgs,
    ],
  });
}

/** Waits until `fn` (run in the page) returns a truthy value, or fails naming `what`. */
export async function waitIn(page, what, fn, arg, timeoutMs = 20000) {
  try {
    const handle = await page.waitForFunction(fn, { timeout: timeoutMs, polling: 50 }, arg);
    return handle.jsonValue();
  } catch (e) {
    const text = await page.evaluate(() => document.body ? document.body.innerText : '').catch(() => '');
    throw new Error(`timed out waiting for ${what}: ${e.message}\n--- page text ---\n${text.slice(0, 4000)}`);
  }
}

/** Collects console messages and page errors of `page` into an array (for assertions). */
export function recordConsole(page) {
  const log = [];
  page.on('console', (m) => log.push(`${m.type()}: ${m.text()}`));
  page.on('pageerror', (e) => log.push(`pageerror: ${e.message}`));
  return log;
}

/** Saves a screenshot when CLAWGATE_SCREENSHOTS names a directory (docs are made this way). */
export async function screenshot(page, name) {
  const dir = process.env.CLAWGATE_SCREENSHOTS;
  if (dir) await page.screenshot({ path: join(dir, `${name}.png`), fullPage: false });
}

function cleanup() {
  for (const d of profiles) {
    try { rmSync(d, { recursive: true, force: true }); } catch { /* best effort */ }
  }
}

/** Prints the test's result as the last stdout line and exits 0. */
export function done(result) {
  cleanup();
  process.stdout.write(`\n${JSON.stringify(result ?? {})}\n`);
  process.exit(0);
}

process.on('unhandledRejection', (e) => {
  process.stderr.write(`browser script failed: ${e && e.stack ? e.stack : e}\n`);
  cleanup();
  process.exit(1);
});
