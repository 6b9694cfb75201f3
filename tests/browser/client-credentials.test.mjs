// Issue 12: a client credentials token made in the UI, the way an admin does it: New token >
// Generic OAuth 2.0 > "Client credentials", then the client id and secret on the token form.
// No sign-in window: saving the secret fetches the access token from a real OAuth 2.0 server
// (npm's oidc-provider, tests/oidc-provider, started here on a port of its own).
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { launchBrowser, newContext, printShots, repo, shot, signIn, startDemo } from './lib.mjs';

const SECRET = 'browser-cc-secret';

/** Starts tests/oidc-provider/server.mjs on a free port; resolves with its issuer. */
async function startOidcProvider() {
  const dir = path.join(repo, 'tests', 'oidc-provider');
  const child = spawn(process.execPath, ['server.mjs'], {
    cwd: dir,
    stdio: ['pipe', 'pipe', 'inherit'],
    env: { ...process.env, PORT: '0', CLIENT_ID: 'ui', CLIENT_SECRET: SECRET, ACCESS_TOKEN_TTL: '300' },
  });
  const issuer = await new Promise((resolve, reject) => {
    let text = '';
    child.stdout.on('data', (chunk) => {
      text += chunk.toString();
      const m = /READY (\{.*\})/.exec(text);
      if (m) resolve(JSON.parse(m[1]).issuer);
    });
    child.once('exit', (code) => reject(new Error(`oidc-provider exited (${code}); did \`npm ci\` run in ${dir}?`)));
  });
  return { issuer, stop: () => child.kill('SIGTERM') };
}

describe('client credentials token in the UI', { timeout: 180_000 }, () => {
  let demo;
  let op;
  let browser;
  let page;

  before(async () => {
    op = await startOidcProvider();
    demo = await startDemo('client-credentials');
    browser = await launchBrowser();
    page = await (await newContext(browser, demo)).newPage();
    await signIn(page, demo);
  });

  after(async () => {
    try {
      await browser?.close();
    } finally {
      await demo?.stop();
      op?.stop();
      printShots('client-credentials');
    }
  });

  test('create, store the secret, and the token holds an access token without a sign-in', async () => {
    await page.goto(`${demo.tw}/tokens/new`);
    const provider = page.getByLabel('Provider');
    await Promise.all([
      page.waitForResponse((r) => r.url().includes('/ui/provider-fields')),
      provider.selectOption({ label: 'Generic OAuth 2.0' }),
    ]);
    // The grant choice follows the provider: Generic OAuth 2.0 offers client credentials.
    // Picking it swaps in that grant's settings (htmx): no authorization endpoint to give.
    const grant = page.getByLabel('How it gets access tokens');
    await Promise.all([
      page.waitForResponse((r) => r.url().includes('/ui/provider-fields')),
      grant.selectOption('client_credentials'),
    ]);
    assert.equal(await page.getByLabel(/^Authorization endpoint/).count(), 0);
    await page.getByLabel(/^Name/).fill('m2m-api');
    await page.getByLabel(/^Token endpoint/).fill(`${op.issuer}/token`);
    await page.getByLabel(/^Scopes/).fill('api:read');
    await shot(page, 'cc-01-new');
    await page.getByRole('button', { name: 'Create and continue' }).click();
    await page.waitForURL(/\/tokens\/[^/]+\/edit$/);
    // No redirect URI to register and no sign-in button: client credentials need neither.
    assert.equal(await page.getByLabel('Redirect URI').count(), 0);
    assert.equal(await page.getByRole('button', { name: 'Get OAuth 2.0 Access Token' }).count(), 0);
    await page.getByLabel('Client id').fill('ui-cc');
    await page.getByLabel('Client secret', { exact: true }).fill(SECRET);
    await page.getByLabel(/^Client secret expires/).fill('2099-06-30');
    await page.getByRole('button', { name: 'Save' }).click();
    await page.waitForURL(/done=saved/);
    const status = page.locator('#token-status');
    await assert.doesNotReject(status.getByText('Healthy').waitFor());
    await shot(page, 'cc-02-saved');
    const text = await status.innerText();
    assert.match(text, /Client secret/);
    assert.ok(!(await page.content()).includes(SECRET), 'the secret is never shown');

    // The detail page names the grant; "Get a new access token" fetches another one.
    await page.goto(page.url().replace(/\/edit.*$/, ''));
    await page.getByText('Client credentials (machine to machine, no sign-in)').waitFor();
    const before = await page.locator('#token-status code.masked').innerText();
    await page.getByRole('button', { name: 'Get a new access token' }).click();
    await page.waitForLoadState();
    const afterText = await page.locator('#token-status code.masked').innerText();
    assert.notEqual(afterText, before, 'a new access token');
    await shot(page, 'cc-03-detail');
  });
});
