// An app stopped by a dead token and resumed by a new sign-in, a sign-in popup closed by the
// admin, and CSRF refusals. One demo for the file, with snowflake-sales authorized through the
// UI first (the same steps as the workflow test, without its checks).
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import {
  DAY,
  advanceClock,
  expectSoon,
  authorizeInPopup,
  launchBrowser,
  newContext,
  openSignedIn,
  printShots,
  setUpAuthorizedToken,
  shot,
  signIn,
  startDemo,
} from './lib.mjs';

describe('app lifecycle, popup and CSRF', { timeout: 180_000 }, () => {
  let demo;
  let browser;
  let context;
  let page;
  let token;
  /** The alert test 3 saw when starting the stopped app by hand. */
  let startRefusal;

  const appRow = () => page.getByRole('row').filter({ has: page.getByRole('link', { name: 'sales-invoice', exact: true }) });

  before(async () => {
    demo = await startDemo('lifecycle');
    browser = await launchBrowser();
    context = await newContext(browser, demo);
    page = await context.newPage();
    await signIn(page, demo);
    token = await setUpAuthorizedToken(page, context, demo);
  });

  after(async () => {
    try {
      await browser?.close();
    } finally {
      await demo?.stop();
      printShots('lifecycle');
    }
  });

  test('3. an app stops when its token is revoked and starts again after a new sign-in', async () => {
    await openSignedIn(page, demo, '/apps');
    assert.match(await appRow().innerText(), /running/);

    // ALICE's grant is revoked in Snowflake; a day later the daily health check finds it.
    const res = await fetch(`${demo.emu}/_emulator/revoke`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ user: 'ALICE', integration: token.integration }),
    });
    assert.equal(res.status, 200, await res.text());
    const pass = await advanceClock(demo, DAY + 60);
    assert.equal(pass.pass.refreshed, 0, `the refresh must have failed: ${JSON.stringify(pass)}`);

    await openSignedIn(page, demo, '/apps');
    await expectSoon(async () => {
      await page.reload();
      const stopped = await appRow().innerText();
      assert.match(stopped, /stopped/);
      assert.match(stopped, /waiting for token snowflake-sales/);
      assert.match(stopped, /Needs re-authorization/);
    }, 60_000);
    await shot(page, '03-apps-stopped');

    // The app's page says the same, and starting it by hand is refused with the reason.
    await appRow().getByRole('link', { name: 'sales-invoice', exact: true }).click();
    await page.getByRole('heading', { name: 'sales-invoice' }).waitFor();
    await page.getByRole('button', { name: 'Start app' }).click();
    startRefusal = await page.getByRole('alert').innerText();
    assert.match(startRefusal, /cannot start: token snowflake-sales/);
    await shot(page, '03-app-start-refused');

    // The token's page asks for a new sign-in; sign in again through the popup.
    await page.goto(`${demo.tw}/tokens/${token.id}/edit`);
    assert.match(await page.locator('#token-status').innerText(), /Needs re-authorization/);
    await shot(page, '03-token-needs-signin');
    await authorizeInPopup(page);
    await page.locator('#oauth-message').getByText('Token obtained').waitFor();
    await page.locator('#token-status').getByText('Healthy').waitFor();
    await shot(page, '03-token-reauthorized');

    // The app starts again by itself.
    await expectSoon(async () => {
      await page.goto(`${demo.tw}/apps`);
      const row = await appRow().innerText();
      assert.match(row, /running/);
      assert.doesNotMatch(row, /waiting for token/);
    }, 60_000);
    await shot(page, '03-apps-running-again');
  });

  test('3b. the refusal to start the app names the token\'s status in words', () => {
    assert.ok(startRefusal, 'needs the refusal seen by test 3');
    // Shown to a person: "needs re-authorization" or the badge's "Needs re-authorization", not the API's
    // status code.
    assert.doesNotMatch(startRefusal, /needs_reauthorization|not_authorized|expiring_soon/, startRefusal);
  });

  test('4. closing the sign-in popup without signing in says so and changes nothing', async () => {
    await openSignedIn(page, demo, `/tokens/${token.id}/edit`);
    const status = page.locator('#token-status');
    const masked = await status.locator('code.masked').textContent();

    const [popup] = await Promise.all([
      page.waitForEvent('popup'),
      page.getByRole('button', { name: 'Get OAuth 2.0 Access Token' }).click(),
    ]);
    await page.locator('#oauth-message').getByText('Waiting for the sign-in in the pop-up window').waitFor();
    await popup.getByRole('button', { name: 'Sign in' }).waitFor();
    // Marks the status box now shown: the reload replaces the element, so a box without the
    // mark is the reloaded one.
    await status.evaluate((el) => { el.dataset.beforeClose = '1'; });
    await popup.close();

    const message = page.locator('#oauth-message');
    await message.getByText('The sign-in window was closed before it finished: nothing changed.').waitFor();
    assert.match(await message.getAttribute('class'), /\bwarn\b/);
    assert.match(await message.innerText(), /Click the button to try again/);
    await shot(page, '04-popup-closed');
    // The status box is reloaded, and shows the same token.
    await page.locator('#token-status:not([data-before-close])').waitFor({ timeout: 60_000 });
    assert.equal(await status.locator('code.masked').textContent(), masked);
    assert.match(await status.innerText(), /Healthy/);
  });

  test('4b. a denied sign-in says why, once, and changes nothing', async () => {
    await openSignedIn(page, demo, `/tokens/${token.id}/edit`);
    const status = page.locator('#token-status');
    const masked = await status.locator('code.masked').textContent();
    const [popup] = await Promise.all([
      page.waitForEvent('popup'),
      page.getByRole('button', { name: 'Get OAuth 2.0 Access Token' }).click(),
    ]);
    await popup.getByLabel('Username').fill('ALICE');
    await popup.getByLabel('Password').fill('alice-pass');
    await popup.getByRole('button', { name: 'Sign in' }).click();
    await popup.getByRole('button', { name: 'Deny' }).click();
    // On an error the popup stays open, so the admin can read it.
    await popup.getByRole('heading', { name: 'snowflake-sales was not authorized' }).waitFor();
    await shot(popup, '04b-popup-denied');
    const message = page.locator('#oauth-message');
    await message.getByText(/^Not authorized/).waitFor();
    await popup.close();
    const text = await message.innerText();
    await shot(page, '04b-denied');
    assert.match(await message.getAttribute('class'), /\bcrit\b/);
    assert.match(text, /access_denied/);
    assert.equal(await status.locator('code.masked').textContent(), masked);
    assert.match(await status.innerText(), /Healthy/);
    // Written for a person: each sentence once, no doubled full stops.
    assert.equal(text.split('The stored token was not changed.').length - 1, 1, `said once: ${text}`);
    assert.doesNotMatch(text, /\.\./, `no doubled full stop: ${text}`);
  });

  test('5. state-changing UI posts without the right CSRF token are refused with 403', async () => {
    await openSignedIn(page, demo, `/tokens/${token.id}/edit`);
    const clientId = await page.getByLabel('Client id').inputValue();
    const masked = await page.locator('#token-status code.masked').textContent();
    assert.ok(clientId);

    const results = await page.evaluate(async ({ id }) => {
      const post = async (path, body, headers = {}) => {
        const res = await fetch(path, {
          method: 'POST',
          headers: { 'Content-Type': 'application/x-www-form-urlencoded', ...headers },
          body: new URLSearchParams(body).toString(),
          credentials: 'same-origin',
          redirect: 'manual',
        });
        return { status: res.status, text: await res.text() };
      };
      return {
        // No CSRF token at all: an Update that would clear the client id.
        missing: await post(`/tokens/${id}/edit`, { client_id: 'changed-by-attacker', s_account: 'evil.example.com', s_role: 'ANALYST' }),
        // A wrong token in the form field, and one in the header.
        wrongField: await post(`/tokens/${id}/delete`, { csrf: 'not-the-token' }),
        wrongHeader: await post(`/tokens/${id}/delete`, {}, { 'X-CSRF-Token': 'not-the-token' }),
      };
    }, { id: token.id });
    for (const [what, r] of Object.entries(results)) {
      assert.equal(r.status, 403, `${what}: ${r.status} ${r.text.slice(0, 300)}`);
      assert.match(r.text, /missing or wrong CSRF token/, what);
    }

    // Nothing changed: the token is there with the same client id, settings and access token.
    await page.reload();
    assert.equal(await page.getByLabel('Client id').inputValue(), clientId);
    assert.equal(await page.getByLabel(/^Account(?! identifier)/).inputValue(), demo.emu);
    assert.equal(await page.locator('#token-status code.masked').textContent(), masked);
    assert.match(await page.locator('#token-status').innerText(), /Healthy/);
    await page.goto(`${demo.tw}/tokens`);
    await page.getByRole('link', { name: 'snowflake-sales' }).waitFor();

    // The refusals are in the audit log.
    await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Audit log' }).click();
    const refused = page.getByRole('row').filter({ hasText: 'auth.csrf_refused' });
    assert.equal(await refused.count(), 3);
    await shot(page, '05-audit-csrf-refused');
  });
});
