// Shared helpers of the browser tests: start `tokenwarden demo` on ports the system picks,
// launch Debian's chromium through playwright-core, and walk the admin UI the way a person does.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const here = path.dirname(fileURLToPath(import.meta.url));
export const repo = path.resolve(here, '..', '..');
export const bin = process.env.TOKENWARDEN_BIN || path.join(repo, 'target', 'debug', 'tokenwarden');
export const chromiumPath = process.env.CHROMIUM_PATH || '/usr/bin/chromium';
/** Where every screenshot (and each demo's log) goes; a reviewer looks here. */
export const shotsDir = path.resolve(process.env.TOKENWARDEN_SCREENSHOTS || path.join(here, 'screenshots'));

export const ADMIN = { username: 'admin', password: 'tokenwarden-demo' };
export const SNOWFLAKE_ADMIN = { username: 'ADMIN', password: 'admin-pass' };
export const ALICE = { username: 'ALICE', password: 'alice-pass' };
export const DAY = 86_400;

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Retries `check` until it passes or `ms` run out; throws its last failure. */
export async function expectSoon(check, ms) {
  const deadline = Date.now() + ms;
  for (;;) {
    try {
      return await check();
    } catch (e) {
      if (Date.now() > deadline) throw e;
      await sleep(500);
    }
  }
}

/** Demos still running: killed when this process exits, whatever the way. */
const live = new Set();
process.on('exit', () => {
  for (const child of live) child.kill('SIGKILL');
});

/** `promise`, or `onTimeout()` after `ms`; the timer never keeps the process alive. */
async function within(promise, ms, onTimeout) {
  let timer;
  const late = new Promise((resolve, reject) => {
    timer = setTimeout(() => Promise.resolve().then(onTimeout).then(resolve, reject), ms);
  });
  try {
    return await Promise.race([promise, late]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Starts `tokenwarden --data-dir <tmp> demo` on ports the system picks (`127.0.0.1:0`) and
 * resolves once it has printed where the service and the emulator listen (both are bound by
 * then). `stop()` sends SIGTERM, then SIGKILL after 5 s, and deletes the folder.
 */
export async function startDemo(label, { throwaway = false } = {}) {
  if (!fs.existsSync(bin)) {
    throw new Error(`no tokenwarden binary at ${bin}: run \`cargo build -p tokenwarden\` or set TOKENWARDEN_BIN`);
  }
  fs.mkdirSync(shotsDir, { recursive: true });
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), `tw-browser-${label}-`));
  const logPath = path.join(shotsDir, `${label}-demo.log`);
  const log = fs.createWriteStream(logPath);
  // `throwaway`: no --data-dir, as a newcomer runs it (the demo makes and deletes its own folder).
  const args = throwaway ? [] : ['--data-dir', dataDir];
  const child = spawn(
    bin,
    [...args, 'demo', '--listen', '127.0.0.1:0', '--emulator-listen', '127.0.0.1:0'],
    { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, TOKENWARDEN_LOG: process.env.TOKENWARDEN_LOG || 'info' } },
  );
  live.add(child);
  const exited = new Promise((resolve) => child.once('exit', resolve));
  exited.then(() => live.delete(child));
  child.stderr.pipe(log, { end: false });
  // The banner on stdout: "Open      http://127.0.0.1:PORT/" and "Snowflake http://127.0.0.1:PORT/console".
  const addresses = new Promise((resolve, reject) => {
    let text = '';
    child.stdout.on('data', (chunk) => {
      log.write(chunk);
      text += chunk.toString();
      const tw = /Open\s+(http:\/\/127\.0\.0\.1:\d+)\//.exec(text);
      const emu = /Snowflake\s+(http:\/\/127\.0\.0\.1:\d+)\/console/.exec(text);
      // The app's API key, printed on the first start of a data folder.
      const key = /API key\s+(tw_app_\S+)/.exec(text);
      if (tw && emu) resolve({ tw: tw[1], emu: emu[1], apiKey: key ? key[1] : null, banner: text });
    });
    exited.then((code) => reject(new Error(`tokenwarden demo exited (${code ?? child.signalCode}) before it listened; see ${logPath}`)));
  });
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      const done = await within(exited.then(() => true), 5000, () => false);
      if (!done) {
        child.kill('SIGKILL');
        await exited;
      }
    }
    fs.rmSync(dataDir, { recursive: true, force: true });
  };
  try {
    // A guard only: the banner comes as soon as both are bound.
    const { tw, emu, apiKey, banner } = await within(addresses, 120_000, () => {
      throw new Error(`tokenwarden demo did not say where it listens within 120 s; see ${logPath}`);
    });
    return { tw, emu, apiKey, banner, dataDir, logPath, child, stop };
  } catch (e) {
    await stop();
    throw e;
  }
}

export const launchArgs = [
  '--headless=new',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--no-first-run',
  '--disable-quic',
];

export async function launchBrowser() {
  return chromium.launch({ executablePath: chromiumPath, args: launchArgs, headless: true });
}

/** A browser context that may use the clipboard on the demo's origin. */
export async function newContext(browser, demo) {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  await context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: demo.tw });
  context.setDefaultTimeout(15_000);
  return context;
}

export async function shot(page, name) {
  fs.mkdirSync(shotsDir, { recursive: true });
  const file = path.join(shotsDir, `${name}.png`);
  await page.screenshot({ path: file, fullPage: true });
  return file;
}

/** POST /_demo/clock: both clocks forward, and one background pass at once. */
export async function advanceClock(demo, seconds) {
  const res = await fetch(`${demo.tw}/_demo/clock`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ seconds }),
  });
  const body = await res.json();
  if (res.status !== 200) throw new Error(`/_demo/clock answered ${res.status}: ${JSON.stringify(body)}`);
  return body;
}

export async function signIn(page, demo) {
  await page.goto(`${demo.tw}/tokens`);
  // Not signed in: the UI sends the browser to the sign-in page.
  await page.getByRole('heading', { name: 'Sign in' }).waitFor();
  await page.getByLabel('Username').fill(ADMIN.username);
  await page.getByLabel('Password').fill(ADMIN.password);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByRole('heading', { name: 'Global Access Tokens' }).waitFor();
}

/**
 * Opens a UI page; signs in again first when the session has ended (sessions follow real time,
 * not the demo's clock, so moving the clock no longer ends them). Answers whether a new sign-in
 * was needed.
 */
export async function openSignedIn(page, demo, pathname) {
  await page.goto(`${demo.tw}${pathname}`);
  if (!new URL(page.url()).pathname.startsWith('/login')) return false;
  await page.getByLabel('Username').fill(ADMIN.username);
  await page.getByLabel('Password').fill(ADMIN.password);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.waitForURL((u) => u.pathname === pathname.split('?')[0]);
  return true;
}

/**
 * Global Access Tokens > New token > Snowflake with the emulator as the account. Ends on the
 * token form (/tokens/{id}/edit); returns the token id.
 */
export async function createSnowflakeToken(page, demo, name = 'snowflake-sales', { shotName } = {}) {
  await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Global Access Tokens' }).click();
  await page.getByRole('link', { name: 'New token' }).first().click();
  await page.getByRole('heading', { name: 'New token' }).waitFor();
  const provider = page.getByLabel('Provider');
  if ((await provider.inputValue()) !== 'snowflake') {
    // Picking a provider swaps its settings fields in (htmx): wait for them before typing.
    await Promise.all([
      page.waitForResponse((r) => r.url().includes('/ui/provider-fields')),
      provider.selectOption({ label: 'Snowflake' }),
    ]);
  }
  await page.getByLabel(/^Name/).fill(name);
  // Each setting is checked when it loses focus, and the answer appears under it and pushes the
  // page down: wait for it before clicking on, or the click can miss its button (a UI bug,
  // asserted by new-token-click.test.mjs).
  for (const [label, id, value] of [[/^Account(?! identifier)/, 'account', demo.emu], [/^Role/, 'role', 'ANALYST']]) {
    const input = page.getByLabel(label);
    await input.fill(value);
    await input.blur();
    await page.locator(`#check-${id}`).getByText('Looks right.').waitFor();
  }
  if (shotName) await shot(page, shotName);
  await page.getByRole('button', { name: 'Create and continue' }).click();
  await page.waitForURL(/\/tokens\/[^/]+\/edit$/);
  await page.getByRole('heading', { name: `Edit ${name}` }).waitFor();
  return page.url().match(/\/tokens\/([^/]+)\/edit/)[1];
}

/** The setup SQL shown on the token form. */
export async function setupSql(page) {
  return (await page.locator('#sf-sql').textContent()).trim();
}

export function integrationOf(sql) {
  const m = sql.match(/CREATE\s+(?:OR\s+REPLACE\s+)?SECURITY\s+INTEGRATION\s+(?:IF\s+NOT\s+EXISTS\s+)?("?)([A-Za-z0-9_]+)\1/i);
  if (!m) throw new Error(`no CREATE SECURITY INTEGRATION in the setup SQL:\n${sql}`);
  return m[2];
}

/**
 * Runs `sql` in the emulator's worksheet as ADMIN in a new page and answers the
 * SYSTEM$SHOW_OAUTH_CLIENT_SECRETS cell.
 */
export async function runInWorksheet(context, demo, sql, shotName) {
  const ws = await context.newPage();
  try {
    await ws.goto(`${demo.emu}/console`);
    await ws.getByLabel('Username').fill(SNOWFLAKE_ADMIN.username);
    await ws.getByLabel('Password').fill(SNOWFLAKE_ADMIN.password);
    await ws.getByRole('button', { name: 'Sign in' }).click();
    await ws.getByRole('heading', { name: 'Worksheet' }).waitFor();
    await ws.locator('textarea[name="sql"]').fill(sql);
    await ws.getByRole('button', { name: 'Run' }).click();
    await ws.getByRole('heading', { name: 'Results' }).waitFor();
    const col = ws.locator('th', { hasText: /^SYSTEM\$SHOW_OAUTH_CLIENT_SECRETS/ });
    await col.first().waitFor();
    const table = ws.locator('table', { has: col });
    const cell = (await table.locator('tbody td pre').first().textContent()).trim();
    if (shotName) await shot(ws, shotName);
    return cell;
  } finally {
    await ws.close();
  }
}

/** Pastes the cell into the token form and submits it ("Fill client id and secrets"). */
export async function pasteSecrets(page, cell) {
  await page.getByLabel(/Paste the output cell/).fill(cell);
  await page.getByRole('button', { name: 'Fill client id and secrets' }).click();
  await page.waitForURL(/done=filled/);
}

/**
 * Clicks "Get OAuth 2.0 Access Token" on the token form, signs in as ALICE in the popup and
 * allows. Resolves once the popup has closed itself. The main page must not navigate.
 */
export async function authorizeInPopup(page, { shotPrefix } = {}) {
  const [popup] = await Promise.all([
    page.waitForEvent('popup'),
    // "Re-authorize" once the token needs it; the same button.
    page.getByRole('button', { name: /^(Get OAuth 2\.0 Access Token|Re-authorize)$/ }).first().click(),
  ]);
  const closed = new Promise((resolve) => popup.once('close', resolve));
  await popup.getByRole('button', { name: 'Sign in' }).waitFor();
  if (shotPrefix) await shot(popup, `${shotPrefix}-signin`);
  await popup.getByLabel('Username').fill(ALICE.username);
  await popup.getByLabel('Password').fill(ALICE.password);
  await popup.getByRole('button', { name: 'Sign in' }).click();
  await popup.getByRole('button', { name: 'Allow' }).waitFor();
  if (shotPrefix) await shot(popup, `${shotPrefix}-consent`);
  await popup.getByRole('button', { name: 'Allow' }).click();
  // The callback page tells the opener and closes itself (1.2 s after success).
  await within(closed, 15_000, async () => {
    const text = popup.isClosed() ? '' : await popup.locator('body').innerText().catch(() => '');
    throw new Error(`the sign-in popup did not close itself; it shows: ${text}`);
  });
}

/** Drives the whole exchange for a token through the UI; ends on its form, authorized. */
export async function setUpAuthorizedToken(page, context, demo, name = 'snowflake-sales') {
  const id = await createSnowflakeToken(page, demo, name);
  const sql = await setupSql(page);
  const cell = await runInWorksheet(context, demo, sql);
  await pasteSecrets(page, cell);
  await authorizeInPopup(page);
  await page.locator('#oauth-message').getByText('Token obtained').waitFor();
  return { id, sql, integration: integrationOf(sql) };
}

/** The closing line of each file: where the screenshots are. */
export function printShots(label) {
  console.log(`${label}: screenshots and the demo log are in ${shotsDir}`);
}
