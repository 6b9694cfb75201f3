// The device sign-in (RFC 8628) in the UI, against npm's oidc-provider (tests/oidc-provider, its
// public device client): the admin clicks "Sign in with a code", sees the code large with a copy
// button and the provider's link; a person enters the code at the provider in another tab; the
// admin's page shows "Signed in." by itself (htmx polls the status), without a reload.
import assert from 'node:assert/strict';
import { spawn, execFileSync } from 'node:child_process';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { bin, expectSoon, launchBrowser, newContext, printShots, repo, shot, signIn, startDemo } from './lib.mjs';

/** Starts tests/oidc-provider/server.mjs on a free port; resolves { issuer, stop }. */
async function startOidcProvider() {
  const dir = path.join(repo, 'tests', 'oidc-provider');
  const child = spawn('node', ['server.mjs'], {
    cwd: dir,
    env: { ...process.env, PORT: '0', CLIENT_ID: 'tw-browser' },
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  const issuer = await new Promise((resolve, reject) => {
    let text = '';
    child.stdout.on('data', (chunk) => {
      text += chunk.toString();
      const m = /READY (\{.*\})/.exec(text);
      if (m) resolve(JSON.parse(m[1]).issuer);
    });
    child.once('exit', (code) => reject(new Error(`oidc-provider exited (${code}) before READY; run npm ci in ${dir}`)));
  });
  return { issuer, clientId: 'tw-browser-device', stop: () => child.kill('SIGTERM') };
}

describe('device sign-in', { timeout: 180_000 }, () => {
  let demo;
  let op;
  let browser;
  let context;
  let page;
  let tokenId;

  before(async () => {
    demo = await startDemo('device');
    op = await startOidcProvider();
    // An admin token from the CLI, beside the running demo, to create the token over the API.
    const out = execFileSync(bin, ['--data-dir', demo.dataDir, 'admin', 'token', 'create', '--label', 'browser'], {
      encoding: 'utf8',
    });
    const adminToken = /(tw_adm_\S+)/.exec(out)[1];
    const res = await fetch(`${demo.tw}/api/v1/tokens`, {
      method: 'POST',
      headers: { Authorization: `Bearer ${adminToken}`, 'Content-Type': 'application/json' },
      body: JSON.stringify({
        name: 'tv-sign-in',
        provider: 'oauth2',
        grant: 'device_code',
        settings: {
          authorization_url: `${op.issuer}/auth`,
          token_url: `${op.issuer}/token`,
          device_authorization_url: `${op.issuer}/device/auth`,
          scope: 'openid',
        },
        client_id: op.clientId,
      }),
    });
    const body = await res.json();
    assert.equal(res.status, 201, JSON.stringify(body));
    tokenId = body.id;
    browser = await launchBrowser();
    context = await newContext(browser, demo);
    page = await context.newPage();
    await signIn(page, demo);
  });

  after(async () => {
    try {
      await browser?.close();
    } finally {
      op?.stop();
      await demo?.stop();
      printShots('device');
    }
  });

  test('the code is shown with a copy button and a link, and the result appears without a reload', async () => {
    // The token form of a device token: no redirect URI to register, no pop-up sign-in.
    await page.goto(`${demo.tw}/tokens/${tokenId}/edit`);
    await page.getByRole('heading', { name: /Sign in with a code/ }).waitFor();
    assert.equal(await page.getByLabel('Redirect URI').count(), 0);
    assert.equal(await page.getByRole('button', { name: 'Get OAuth 2.0 Access Token' }).count(), 0);
    assert.equal(await page.getByLabel(/^Authorization endpoint/).count(), 0);
    await page.getByLabel(/^Device authorization endpoint/).waitFor();
    await shot(page, 'device-00-form');
    await page.goto(`${demo.tw}/tokens/${tokenId}`);
    await page.getByRole('button', { name: 'Sign in with a code' }).click();
    await page.waitForURL(new RegExp(`/tokens/${tokenId}/device$`));
    const code = await page.locator('#user-code').inputValue();
    assert.match(code, /^[A-Z]{4}-[A-Z]{4}$/);
    const link = page.getByRole('link', { name: /^Open / });
    const href = await link.getAttribute('href');
    assert.ok(href.startsWith(`${op.issuer}/device`), href);
    await page.getByRole('button', { name: 'Copy code' }).click();
    assert.equal(await page.evaluate(() => navigator.clipboard.readText()), code);
    await page.locator('#device-status').getByText(/Waiting for the sign-in/).waitFor();
    await shot(page, 'device-01-code');
    // Marks this document: a reload or a navigation would lose the mark.
    await page.evaluate(() => {
      window.deviceMark = 'same page';
    });

    // The person, in another tab: the provider's page, the code typed in, confirmed.
    const person = await context.newPage();
    await person.goto(`${op.issuer}/device`);
    await person.locator('input[name="user_code"]').fill(code);
    await person.getByRole('button', { name: 'Continue' }).click();
    await person.getByRole('button', { name: 'Continue' }).click();
    await person.getByText('Sign-in Success').waitFor();
    await shot(person, 'device-02-provider-success');
    await person.close();

    // The service polls the provider (the background pass, every few seconds); htmx shows it.
    await expectSoon(async () => {
      await page.locator('#device-status').getByText('Signed in.').waitFor({ timeout: 1000 });
    }, 60_000);
    assert.equal(await page.evaluate(() => window.deviceMark), 'same page', 'the page was reloaded');
    await shot(page, 'device-03-signed-in');
    await page.goto(`${demo.tw}/tokens/${tokenId}`);
    await page.locator('#token-status').getByText('Healthy').waitFor();
  });
});
