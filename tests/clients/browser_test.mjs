// Drives ferry's web file manager in headless Chromium: log in, upload, download and compare,
// screenshot, rename, delete, log out. Prints `ok` and exits 0, or prints the error and exits 1.
//
// Usage: node browser_test.mjs BASE_URL USER PASSWORD UPLOAD_FILE SCREENSHOT_PATH
import { readFile } from 'node:fs/promises';
import { basename } from 'node:path';

import { chromium } from 'playwright-core';

const WAIT_MS = 15_000;
const TOTAL_MS = 120_000;

const [baseUrl, user, password, uploadFile, screenshotPath] = process.argv.slice(2);
if (!screenshotPath) {
  console.error('usage: node browser_test.mjs BASE_URL USER PASSWORD UPLOAD_FILE SCREENSHOT_PATH');
  process.exit(2);
}

/** The listing row of one entry. */
const row = (page, name) => page.locator(`#file-table tbody tr[data-name=${JSON.stringify(name)}]`);

async function run(browser) {
  const context = await browser.newContext({ ignoreHTTPSErrors: true, acceptDownloads: true });
  const page = await context.newPage();
  page.setDefaultTimeout(WAIT_MS);
  page.setDefaultNavigationTimeout(WAIT_MS);
  // CSP violations and script errors show up here; print them so a failure explains itself.
  page.on('console', (msg) => msg.type() === 'error' && console.error(`console: ${msg.text()}`));
  page.on('pageerror', (error) => console.error(`page error: ${error.message}`));

  try {
    await page.goto(baseUrl);
    await page.fill('#username', user);
    await page.fill('#password', password);
    await page.click('#login-form button[type=submit]');
    await page.waitForSelector('#file-table', { state: 'visible' });

    const name = basename(uploadFile);
    await page.setInputFiles('#file-input', uploadFile);
    await row(page, name).waitFor();

    const [download] = await Promise.all([
      page.waitForEvent('download'),
      row(page, name).locator('a.download').click(),
    ]);
    const failure = await download.failure();
    if (failure) throw new Error(`download failed: ${failure}`);
    const got = await readFile(await download.path());
    const want = await readFile(uploadFile);
    if (!got.equals(want)) {
      throw new Error(`downloaded file (${got.length} bytes) differs from the upload (${want.length} bytes)`);
    }

    await page.screenshot({ path: screenshotPath, fullPage: true });

    const renamed = `renamed-${name}`;
    await row(page, name).locator('button.rename').click();
    await row(page, name).locator('input.rename-input').fill(renamed);
    await row(page, name).locator('button.rename-save').click();
    await row(page, renamed).waitFor();
    await row(page, name).waitFor({ state: 'detached' });

    await row(page, renamed).locator('button.delete').click();
    await page.waitForSelector('#confirm-dialog', { state: 'visible' });
    await page.click('#confirm-yes');
    await row(page, renamed).waitFor({ state: 'detached' });

    await page.click('#logout');
    await page.waitForSelector('#login-form', { state: 'visible' });
  } catch (error) {
    // The page's own alert usually says what went wrong.
    const alert = await page.locator('#alert:not([hidden])').textContent({ timeout: 1000 }).catch(() => null);
    if (alert) error.message += ` (page alert: ${alert.trim()})`;
    throw error;
  }
}

const deadline = setTimeout(() => {
  console.error(`timed out after ${TOTAL_MS / 1000} s`);
  process.exit(1);
}, TOTAL_MS);

let browser;
try {
  browser = await chromium.launch({
    executablePath: '/usr/bin/chromium',
    headless: true,
    timeout: WAIT_MS,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
  await run(browser);
  console.log('ok');
  process.exitCode = 0;
} catch (error) {
  console.error(error && error.stack ? error.stack : String(error));
  process.exitCode = 1;
} finally {
  await browser?.close().catch(() => {});
  clearTimeout(deadline);
}
