// The seed workflow of the demo, in a real browser, then the refresh token's countdown colours
// as the demo clock moves forward. One demo for the file: test 2 continues from test 1's token.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import {
  DAY,
  advanceClock,
  expectSoon,
  authorizeInPopup,
  createSnowflakeToken,
  integrationOf,
  launchBrowser,
  newContext,
  openSignedIn,
  pasteSecrets,
  printShots,
  runInWorksheet,
  setupSql,
  shot,
  signIn,
  startDemo,
} from './lib.mjs';

describe('demo workflow', { timeout: 180_000 }, () => {
  let demo;
  let browser;
  let context;
  let page;
  /** Set by test 1 once the token is authorized. */
  let token;
  /** Set by test 2 once the refresh token has expired. */
  let expiredText;

  before(async () => {
    demo = await startDemo('workflow');
    browser = await launchBrowser();
    context = await newContext(browser, demo);
    page = await context.newPage();
  });

  after(async () => {
    try {
      await browser?.close();
    } finally {
      await demo?.stop();
      printShots('workflow');
    }
  });

  test('1. seed workflow: token, setup SQL in the emulator, pasted secrets, sign-in popup, test, app read', async () => {
    await signIn(page, demo);
    await shot(page, '01-tokens-empty');

    // Global Access Tokens > New token: Snowflake, the emulator as the account, role ANALYST.
    const id = await createSnowflakeToken(page, demo, 'snowflake-sales', { shotName: '01-new-token' });

    // Step 2: the redirect URI with a copy button that really copies it.
    const redirect = page.getByLabel('Redirect URI');
    assert.equal(await redirect.inputValue(), `${demo.tw}/oauth/callback`);
    await page.bringToFront();
    await page.getByRole('button', { name: 'Copy', exact: true }).click();
    // The button confirms, and the clipboard holds the URI.
    await page.getByRole('button', { name: 'Copied', exact: true }).waitFor({ timeout: 3000 });
    assert.equal(await page.evaluate(() => navigator.clipboard.readText()), `${demo.tw}/oauth/callback`);

    // The setup panel: the SQL, with its own copy button.
    const sql = await setupSql(page);
    assert.match(sql, /CREATE SECURITY INTEGRATION/);
    assert.ok(sql.includes(`OAUTH_REDIRECT_URI = '${demo.tw}/oauth/callback'`), `the SQL registers our redirect URI:\n${sql}`);
    assert.match(sql, /SYSTEM\$SHOW_OAUTH_CLIENT_SECRETS\('TW_SNOWFLAKE_SALES'\)/);
    await page.getByRole('button', { name: 'Copy SQL' }).click();
    const copied = await page.evaluate(() => navigator.clipboard.readText());
    assert.equal(copied.trim(), sql, 'Copy SQL puts the whole SQL on the clipboard');
    await shot(page, '01-token-form-setup');

    // The worksheet in a second page: paste the copied SQL, run it as ADMIN, read the cell.
    const cell = await runInWorksheet(context, demo, copied, '01-emulator-worksheet');
    const secrets = JSON.parse(cell);
    assert.ok(secrets.OAUTH_CLIENT_ID && secrets.OAUTH_CLIENT_SECRET, `the cell holds the client credentials: ${cell}`);

    // Paste it back: the client id is filled, the secrets are set (never shown).
    await pasteSecrets(page, cell);
    await page.getByRole('status').filter({ hasText: 'filled from the pasted output' }).waitFor();
    assert.equal(await page.getByLabel('Client id').inputValue(), secrets.OAUTH_CLIENT_ID);
    assert.match(await page.getByLabel('Client secret', { exact: true }).getAttribute('placeholder'), /set/);
    assert.doesNotMatch(await page.getByLabel('Client secret', { exact: true }).getAttribute('placeholder'), /not set/);
    assert.equal(await page.getByLabel('Client secret', { exact: true }).inputValue(), '', 'a secret is never shown');
    assert.ok(!(await page.content()).includes(secrets.OAUTH_CLIENT_SECRET), 'the secret is nowhere in the page');
    await shot(page, '01-token-form-filled');

    // Get OAuth 2.0 Access Token: the popup signs in; the form updates without a reload.
    await page.evaluate(() => {
      window.__marker = 1;
    });
    await authorizeInPopup(page, { shotPrefix: '01-popup' });
    await page.locator('#oauth-message').getByText('Token obtained').waitFor();
    const status = page.locator('#token-status');
    await status.locator('code.masked').waitFor();
    assert.equal(await page.evaluate(() => window.__marker), 1, 'the token form did not reload or navigate');
    const masked = await status.locator('code.masked').textContent();
    assert.match(masked, /^•+.{1,4}$/, `the access token is masked to its last characters: ${masked}`);
    const statusText = await status.innerText();
    assert.match(statusText, /Healthy/);
    assert.match(statusText, /expires in \d+ minutes?/, `access-token expiry shown: ${statusText}`);
    assert.match(statusText, /89 days 23 hours left|90 days left/, `refresh-token expiry shown: ${statusText}`);
    await shot(page, '01-token-obtained');

    // Save, then Test connection.
    await page.getByRole('button', { name: 'Save', exact: true }).click();
    await page.getByRole('status').filter({ hasText: 'Saved.' }).waitFor();
    await page.getByRole('button', { name: 'Test connection' }).click();
    const result = page.locator('#test-result');
    await result.getByText('Connection works').waitFor();
    assert.match(await result.innerText(), /connected as ALICE/);
    await shot(page, '01-test-connection');

    // The app sales-invoice: a new API key (shown once), and the token read with it.
    await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Apps' }).click();
    const row = page.getByRole('row').filter({ has: page.getByRole('link', { name: 'sales-invoice' }) });
    assert.match(await row.innerText(), /running/);
    assert.match(await row.innerText(), /snowflake-sales/);
    await shot(page, '01-apps');
    await row.getByRole('link', { name: 'sales-invoice' }).click();
    await page.getByRole('heading', { name: 'sales-invoice' }).waitFor();
    await page.getByLabel('Label').fill('browser-test');
    await page.getByRole('button', { name: 'Create API key' }).click();
    await page.getByRole('heading', { name: /New API key .browser-test. for sales-invoice/ }).waitFor();
    const key = await page.locator('#secret').inputValue();
    assert.match(key, /^tw_app_/);
    await shot(page, '01-api-key-shown-once');

    const res = await fetch(`${demo.tw}/api/v1/access-tokens/snowflake-sales`, {
      headers: { Authorization: `Bearer ${key}` },
    });
    const body = await res.json();
    assert.equal(res.status, 200, JSON.stringify(body));
    assert.equal(typeof body.access_token, 'string');
    assert.ok(body.access_token.length > 10);
    assert.ok(body.access_token.endsWith(masked.replace(/^•+/, '')), 'the masked tail is the token read');

    token = { id, integration: integrationOf(sql) };
  });

  test('2. countdown colours: amber inside 14 days, red and expired past the refresh token', async () => {
    assert.ok(token, 'needs the token authorized by test 1');
    await page.goto(`${demo.tw}/tokens`);
    const row = () => page.getByRole('row').filter({ has: page.getByRole('link', { name: 'snowflake-sales' }) });
    const countdown = () => row().locator('.countdown');
    assert.match(await countdown().getAttribute('class'), /\bok\b/);
    assert.match(await row().innerText(), /Healthy/);
    await shot(page, '02-tokens-healthy');

    // 80 days on: 10 days left, inside the first 14-day lead time.
    await advanceClock(demo, 80 * DAY);
    await openSignedIn(page, demo, '/tokens');
    assert.match(await countdown().getAttribute('class'), /\bwarn\b/, 'amber inside 14 days');
    assert.match(await row().getAttribute('class'), /\brow-warn\b/);
    assert.match(await countdown().innerText(), /^(9 days 23 hours|10 days) left$/);
    // The status badge: see the report — a refresh in the same pass resets it to Healthy
    // (grant.rs store_response); the next pass sets it again. One runs now (a second on), rather
    // than waiting for a background one.
    await advanceClock(demo, 1);
    await expectSoon(async () => {
      await page.reload();
      assert.match(await row().innerText(), /Expiring soon/);
    }, 60_000);
    await page.getByRole('status').filter({ hasText: '1 token(s) need attention soon' }).waitFor();
    await shot(page, '02-tokens-amber');

    // 11 more days: the refresh token is dead.
    await advanceClock(demo, 11 * DAY);
    await openSignedIn(page, demo, '/tokens');
    assert.match(await countdown().getAttribute('class'), /\bcrit\b/, 'red past expiry');
    assert.match(await row().getAttribute('class'), /\brow-crit\b/);
    assert.match(await countdown().innerText(), /^expired /);
    assert.match(await row().innerText(), /Expired/);
    await shot(page, '02-tokens-red-expired');
    expiredText = await countdown().innerText();
  });

  test('2b. the live countdown keeps counting from the service\'s clock, not the browser\'s', async () => {
    // ui.js re-renders every countdown every 30 s. In the demo the service's clock is ahead of
    // the browser's; the text must go on from the service's time, not jump back to the
    // browser's (where the refresh token is still ~90 days away).
    assert.ok(expiredText, 'needs the expired token of test 2');
    const p = await context.newPage();
    try {
      await p.clock.install();
      await openSignedIn(p, demo, '/tokens');
      const cd = p.getByRole('row').filter({ has: p.getByRole('link', { name: 'snowflake-sales' }) }).locator('.countdown');
      assert.match(await cd.innerText(), /^expired 1 day ago$/);
      await p.clock.runFor(31_000);
      const ticked = await cd.innerText();
      await shot(p, '02b-tokens-after-live-tick');
      assert.match(ticked, /^expired 1 day ago$/, `30 s later the countdown says "${ticked}"`);
      assert.match(await cd.getAttribute('class'), /\bcrit\b/);
    } finally {
      await p.close();
    }
  });
});
