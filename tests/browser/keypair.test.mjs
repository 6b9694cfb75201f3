// Issue 12: a Snowflake key-pair token made in the UI the way a new admin does it, against the
// demo's Snowflake emulator: New token > Snowflake > "Snowflake key pair"; the token form shows
// the ALTER USER ... SET RSA_PUBLIC_KEY SQL with the key's SHA-256 fingerprint and a copy button;
// the SQL runs in the emulator's worksheet (DESC USER shows the same fingerprint); "Get a new
// access token" checks the key with Snowflake; the connection test connects; the demo's app reads
// a KEYPAIR_JWT the emulator's SQL API accepts. Then the key is rotated through RSA_PUBLIC_KEY_2
// (the new SQL shown, "Test and switch" refused until it ran), the old key removed, and reads go
// on working, also an hour (a JWT's whole life) later.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import {
  SNOWFLAKE_ADMIN,
  advanceClock,
  launchBrowser,
  newContext,
  printShots,
  shot,
  signIn,
  startDemo,
} from './lib.mjs';

/** The JWT's claims, unverified (the emulator verifies). */
function claims(jwt) {
  return JSON.parse(Buffer.from(jwt.split('.')[1], 'base64url').toString('utf8'));
}

/**
 * Runs `sql` in the emulator's worksheet as ADMIN in a new page; fails on any statement's error.
 * Answers the user's key fingerprints when the SQL ends with a DESC USER.
 */
async function runSql(context, demo, sql, shotName) {
  const ws = await context.newPage();
  try {
    await ws.goto(`${demo.emu}/console`);
    // Signed in once, the worksheet opens at once (its session cookie).
    if (await ws.getByLabel('Username').count()) {
      await ws.getByLabel('Username').fill(SNOWFLAKE_ADMIN.username);
      await ws.getByLabel('Password').fill(SNOWFLAKE_ADMIN.password);
      await ws.getByRole('button', { name: 'Sign in' }).click();
    }
    await ws.getByRole('heading', { name: 'Worksheet' }).waitFor();
    await ws.locator('textarea[name="sql"]').fill(sql);
    await ws.getByRole('button', { name: 'Run' }).click();
    await ws.getByRole('heading', { name: 'Results' }).waitFor();
    if (shotName) await shot(ws, shotName);
    const errors = await ws.locator('.error').allInnerTexts();
    assert.deepEqual(errors, [], `the worksheet refused the SQL:\n${sql}`);
    const value = async (property) => {
      const row = ws.locator('tr', { has: ws.locator('td', { hasText: new RegExp(`^${property}$`) }) });
      return (await row.count()) ? (await row.first().locator('td').nth(1).innerText()).trim() : null;
    };
    return { fp: await value('RSA_PUBLIC_KEY_FP'), fp2: await value('RSA_PUBLIC_KEY_2_FP') };
  } finally {
    await ws.close();
  }
}

describe('Snowflake key-pair token in the UI', { timeout: 240_000 }, () => {
  let demo;
  let browser;
  let context;
  let page;
  let tokenId;

  /** The demo app's read of its token (it uses snowflake-sales), as the app does it. */
  async function appReads() {
    const res = await fetch(`${demo.tw}/api/v1/access-tokens/snowflake-sales`, {
      headers: { Authorization: `Bearer ${demo.apiKey}` },
    });
    const body = await res.json();
    assert.equal(res.status, 200, JSON.stringify(body));
    return body;
  }

  /** The emulator's SQL API with the JWT, as Snowflake documents it. */
  async function snowflakeAccepts(jwt) {
    const res = await fetch(`${demo.emu}/api/v2/statements`, {
      method: 'POST',
      headers: {
        Authorization: `Bearer ${jwt}`,
        'X-Snowflake-Authorization-Token-Type': 'KEYPAIR_JWT',
        'Content-Type': 'application/json',
      },
      body: JSON.stringify({ statement: 'SELECT CURRENT_USER()' }),
    });
    const body = await res.json();
    assert.equal(res.status, 200, JSON.stringify(body));
    assert.deepEqual(body.data, [['ALICE']]);
  }

  before(async () => {
    demo = await startDemo('keypair');
    assert.ok(demo.apiKey, 'the demo prints the app sales-invoice API key on its first start');
    browser = await launchBrowser();
    context = await newContext(browser, demo);
    page = await context.newPage();
    await signIn(page, demo);
  });

  after(async () => {
    try {
      await browser?.close();
    } finally {
      await demo?.stop();
      printShots('keypair');
    }
  });

  test('create: the key, its SQL and fingerprint, activated once the SQL ran', async () => {
    await page.goto(`${demo.tw}/tokens/new`);
    await page.getByRole('heading', { name: 'New token' }).waitFor();
    assert.equal(await page.getByLabel('Provider').inputValue(), 'snowflake');
    // Picking the grant swaps in the settings of that grant (htmx), keeping what was typed.
    await page.getByLabel(/^Account required/).fill(demo.emu);
    await Promise.all([
      page.waitForResponse((r) => r.url().includes('/ui/provider-fields')),
      page.getByLabel('How it gets access tokens').selectOption({ label: 'Snowflake key pair (no sign-in, ever)' }),
    ]);
    assert.equal(await page.getByLabel(/^Account required/).inputValue(), demo.emu, 'the account typed is kept');
    assert.equal(await page.getByLabel(/^Refresh-token validity/).count(), 0, 'no refresh token with a key pair');
    await page.getByLabel(/^Name/).fill('snowflake-sales');
    await page.getByLabel(/^Role/).fill('ANALYST');
    await page.getByLabel(/^Snowflake user/).fill('ALICE');
    // The emulator's URL names no account: the JWTs need its name (the emulator's header shows it).
    await page.getByLabel(/^Account identifier for the JWT/).fill('EMU12345');
    await shot(page, 'keypair-01-new');
    await page.getByRole('button', { name: 'Create and continue' }).click();
    await page.waitForURL(/\/tokens\/[^/]+\/edit$/);
    tokenId = page.url().match(/\/tokens\/([^/]+)\/edit/)[1];

    // The form: no redirect URI, no client id or secret, no sign-in; step 2 is the key.
    assert.equal(await page.getByLabel('Redirect URI').count(), 0);
    assert.equal(await page.getByLabel('Client id').count(), 0);
    assert.equal(await page.getByRole('button', { name: 'Get OAuth 2.0 Access Token' }).count(), 0);
    await page.getByRole('heading', { name: /Assign the key to the Snowflake user/ }).waitFor();
    const sql = (await page.locator('#key-sql').textContent()).trim();
    assert.match(sql, /^ALTER USER "ALICE" SET RSA_PUBLIC_KEY = '[A-Za-z0-9+/=]{300,}';$/);
    const fingerprint = (await page.locator('#key-fingerprint').textContent()).trim();
    assert.match(fingerprint, /^SHA256:[A-Za-z0-9+/]{43}=$/);
    await page.getByRole('button', { name: 'Copy SQL' }).first().click();
    assert.equal((await page.evaluate(() => navigator.clipboard.readText())).trim(), sql);
    await shot(page, 'keypair-02-form');

    // Before the SQL ran, Snowflake refuses the key: said on the form, which shows the SQL.
    await page.getByRole('button', { name: 'Get a new access token' }).click();
    await page.getByRole('alert').getByText(/Snowflake refused a JWT signed by the token's key/).waitFor();
    assert.ok(await page.locator('#key-sql').isVisible(), 'the SQL is still there to run');
    await shot(page, 'keypair-03-refused-before-sql');

    // The admin runs the SQL in the worksheet; DESC USER shows the fingerprint tokenwarden shows.
    const shown = await runSql(context, demo, `${sql}\nDESC USER "ALICE";`, 'keypair-04-worksheet');
    assert.equal(shown.fp, fingerprint);

    await page.getByRole('button', { name: 'Get a new access token' }).click();
    await page.waitForURL(new RegExp(`/tokens/${tokenId}$`));
    await page.locator('#token-status').getByText('Healthy').waitFor();
    await page.getByText('Snowflake key pair (no sign-in, ever)').waitFor();
    // Its settings are a key pair's: no refresh token or security integration, no client secret.
    for (const label of ['Refresh-token validity', 'Security integration name', 'Client secret']) {
      assert.equal(await page.locator('dl.facts dt', { hasText: label }).count(), 0, label);
    }
    await page.getByRole('button', { name: 'Test connection' }).click();
    await page.locator('#test-result').getByText(/connected as ALICE/i).waitFor();
    await shot(page, 'keypair-05-active');

    // The app reads a key-pair JWT that Snowflake's SQL API accepts.
    const read = await appReads();
    assert.equal(read.token_type, 'KEYPAIR_JWT');
    const c = claims(read.access_token);
    assert.equal(c.iss, `EMU12345.ALICE.${fingerprint}`);
    assert.equal(c.sub, 'EMU12345.ALICE');
    assert.ok(c.exp - c.iat <= 3600, JSON.stringify(c));
    await snowflakeAccepts(read.access_token);
  });

  test('rotate through RSA_PUBLIC_KEY_2: reads never fail, and go on an hour later', async () => {
    await page.goto(`${demo.tw}/tokens/${tokenId}`);
    const card = page.locator('#token-keys');
    const oldFingerprint = (await card.locator('#key-fingerprint').textContent()).trim();
    await card.getByRole('button', { name: 'Rotate the key' }).click();
    await card.getByRole('heading', { name: 'Rotation in progress' }).waitFor();
    const sql2 = (await card.locator('#next-key-sql').textContent()).trim();
    assert.match(sql2, /^ALTER USER "ALICE" SET RSA_PUBLIC_KEY_2 = '[A-Za-z0-9+/=]{300,}';$/);
    const newFingerprint = (await card.locator('#next-fingerprint').textContent()).trim();
    assert.notEqual(newFingerprint, oldFingerprint);
    await shot(page, 'keypair-06-rotation');

    // Meanwhile the old key signs: reads work.
    await snowflakeAccepts((await appReads()).access_token);

    // "Test and switch" before the SQL ran: refused, the old key signs on.
    await card.getByRole('button', { name: 'Test and switch' }).click();
    await card.getByRole('status').getByText(/Snowflake refused a JWT signed by the new key/).waitFor();
    assert.equal((await card.locator('#key-fingerprint').textContent()).trim(), oldFingerprint);
    const during = await appReads();
    assert.ok(claims(during.access_token).iss.endsWith(oldFingerprint));
    await snowflakeAccepts(during.access_token);

    const shown = await runSql(context, demo, `${sql2}\nDESC USER "ALICE";`, 'keypair-07-worksheet-key-2');
    assert.equal(shown.fp, oldFingerprint);
    assert.equal(shown.fp2, newFingerprint);
    await card.getByRole('button', { name: 'Test and switch' }).click();
    await card.getByRole('status').getByText(/The new key works \(connected as ALICE\)/i).waitFor();
    assert.equal((await card.locator('#key-fingerprint').textContent()).trim(), newFingerprint);
    await shot(page, 'keypair-08-switched');

    // Reads serve the new key's JWT at once.
    const switched = await appReads();
    assert.ok(claims(switched.access_token).iss.endsWith(newFingerprint), claims(switched.access_token).iss);
    await snowflakeAccepts(switched.access_token);

    // The old key goes: the UNSET offered after the rotation.
    await card.getByText('After a rotation: remove the old key').click();
    const unset = (await card.locator('#unset-sql').textContent()).trim();
    assert.equal(unset, 'ALTER USER "ALICE" UNSET RSA_PUBLIC_KEY;');
    const after = await runSql(context, demo, `${unset}\nDESC USER "ALICE";`);
    assert.equal(after.fp, 'null');
    assert.equal(after.fp2, newFingerprint);
    await snowflakeAccepts((await appReads()).access_token);

    // An hour and more later (both clocks): a new JWT, still accepted.
    await advanceClock(demo, 3700);
    const later = await appReads();
    assert.notEqual(later.access_token, switched.access_token);
    assert.ok(claims(later.access_token).iat > claims(switched.access_token).iat);
    await snowflakeAccepts(later.access_token);
    await page.reload();
    await page.locator('#token-status').getByText('Healthy').waitFor();
    await shot(page, 'keypair-09-an-hour-later');
  });
});
