// Drives an already running server.mjs through full OAuth 2.0 flows with fetch, as a client
// would, and checks what a client of it relies on. Starts nothing.
//
//   ISSUER=http://127.0.0.1:PORT CLIENT_ID=... CLIENT_SECRET=... REDIRECT_URI=... \
//   ACCESS_TOKEN_TTL=60 REFRESH_TOKEN_TTL=86400 ROTATE_REFRESH_TOKENS=true node selftest.mjs
//
// With ACCESS_TOKEN_TTL at most 3 it also waits for an access token to expire.
//
// Prints one line per check, `PASS <name>` or `FAIL <name>: <why>`, lines
// `RESPONSE <label> <json>` with sample token responses (token values elided), and last
// `SELFTEST <passed> passed, <failed> failed`. Exits 1 if any check failed, 2 on bad usage.
// Run it against a server nobody else is using: it revokes everything (POST /_test/revoke)
// and compares counters before and after.

import { createHash, randomBytes } from 'node:crypto';

function env(name) {
  const value = process.env[name];
  if (!value) {
    process.stderr.write(`selftest: environment variable ${name} is required\n`);
    process.exit(2);
  }
  return value;
}

const issuer = env('ISSUER');
const clientId = env('CLIENT_ID');
const clientSecret = env('CLIENT_SECRET');
const redirectUri = env('REDIRECT_URI');
const accessTokenTtl = Number(env('ACCESS_TOKEN_TTL'));
const refreshTokenTtl = Number(env('REFRESH_TOKEN_TTL'));
const rotate = env('ROTATE_REFRESH_TOKENS') === 'true';

let passed = 0;
let failed = 0;

async function check(name, fn) {
  try {
    await fn();
    passed += 1;
    console.log(`PASS ${name}`);
  } catch (e) {
    failed += 1;
    console.log(`FAIL ${name}: ${(e && e.message) || e}`.replace(/\n/g, ' | '));
  }
}

function assert(condition, message) {
  if (!condition) throw new Error(message);
}

function assertEq(actual, expected, what) {
  assert(
    JSON.stringify(actual) === JSON.stringify(expected),
    `${what}: expected ${JSON.stringify(expected)}, got ${JSON.stringify(actual)}`,
  );
}

const b64url = (buf) => buf.toString('base64url');

function pkce() {
  const verifier = b64url(randomBytes(32));
  const challenge = b64url(createHash('sha256').update(verifier).digest());
  return { verifier, challenge };
}

function elide(body) {
  const out = { ...body };
  for (const key of ['access_token', 'refresh_token', 'id_token']) {
    if (typeof out[key] === 'string') out[key] = `<${out[key].length} chars>`;
  }
  return out;
}

const discovery = await (await fetch(`${issuer}/.well-known/openid-configuration`)).json();
const AUTH = discovery.authorization_endpoint;
const TOKEN = discovery.token_endpoint;
const REVOKE = discovery.revocation_endpoint;
const INTROSPECT = discovery.introspection_endpoint;
const USERINFO = discovery.userinfo_endpoint;

// What this script sends to the token endpoint, per grant type, to compare with /_test/stats.
const sent = { authorization_code: 0, refresh_token: 0 };

/// Follows redirects from the authorization URL until one goes to REDIRECT_URI; returns that
/// URL's query parameters and the number of redirects. `jar` (a Map) keeps cookies like a
/// browser; without it, no cookie is ever sent.
async function authorize(params, { jar } = {}) {
  let url = `${AUTH}?${new URLSearchParams({ response_type: 'code', client_id: clientId, redirect_uri: redirectUri, ...params })}`;
  for (let hops = 0; hops < 10; hops += 1) {
    const headers = {};
    if (jar?.size) headers.cookie = [...jar].map(([k, v]) => `${k}=${v}`).join('; ');
    const res = await fetch(url, { redirect: 'manual', headers });
    for (const c of res.headers.getSetCookie()) {
      const [pair] = c.split(';');
      const eq = pair.indexOf('=');
      jar?.set(pair.slice(0, eq), pair.slice(eq + 1));
    }
    const location = res.headers.get('location');
    if (![302, 303].includes(res.status) || !location) {
      throw new Error(`GET ${url} answered ${res.status} without a redirect: ${(await res.text()).slice(0, 300)}`);
    }
    url = new URL(location, url).href;
    if (url.startsWith(redirectUri)) {
      return { query: Object.fromEntries(new URL(url).searchParams), hops: hops + 1, url };
    }
  }
  throw new Error('more than 10 redirects');
}

async function tokenRequest(form, { auth = 'basic', id = clientId, secret = clientSecret } = {}) {
  const headers = { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' };
  const body = new URLSearchParams(form);
  if (auth === 'basic') {
    headers.authorization = `Basic ${Buffer.from(`${encodeURIComponent(id)}:${encodeURIComponent(secret)}`).toString('base64')}`;
  } else {
    body.set('client_id', id);
    body.set('client_secret', secret);
  }
  if (form.grant_type in sent) sent[form.grant_type] += 1;
  const res = await fetch(TOKEN, { method: 'POST', headers, body });
  return { status: res.status, body: await res.json(), headers: res.headers };
}

async function codeFor(scope, extra = {}) {
  const { verifier, challenge } = pkce();
  const state = b64url(randomBytes(12));
  const { query } = await authorize({ scope, state, code_challenge: challenge, code_challenge_method: 'S256', ...extra });
  assert(query.code, `no code in the authorization response: ${JSON.stringify(query)}`);
  assertEq(query.state, state, 'state');
  return { code: query.code, verifier };
}

async function exchange(scope, extra = {}, options = {}) {
  const { code, verifier } = await codeFor(scope, extra);
  const res = await tokenRequest({ grant_type: 'authorization_code', code, redirect_uri: redirectUri, code_verifier: verifier, ...(extra.resource ? { resource: extra.resource } : {}) }, options);
  assert(res.status === 200, `code exchange answered ${res.status}: ${JSON.stringify(res.body)}`);
  return res.body;
}

async function refresh(refreshToken, options) {
  return tokenRequest({ grant_type: 'refresh_token', refresh_token: refreshToken }, options);
}

function assertInvalidGrant(res, what) {
  assert(res.status === 400 && res.body.error === 'invalid_grant', `${what}: expected 400 invalid_grant, got ${res.status} ${JSON.stringify(res.body)}`);
}

async function stats() {
  return (await fetch(`${issuer}/_test/stats`)).json();
}

const statsBefore = await stats();

// ---------------------------------------------------------------------------------------------

let first; // { code, verifier, state, query, hops }
await check('authorize_redirects_to_redirect_uri_with_code_state_iss', async () => {
  const { verifier, challenge } = pkce();
  const state = b64url(randomBytes(12));
  const res = await authorize({ scope: 'openid api:read', state, code_challenge: challenge, code_challenge_method: 'S256' });
  assert(res.query.code, `no code: ${res.url}`);
  assertEq(res.query.state, state, 'state');
  assertEq(res.query.iss, issuer, 'iss');
  assertEq(res.hops, 3, 'redirects from the authorization URL to REDIRECT_URI');
  first = { ...res, verifier };
});

await check('authorize_with_a_cookie_jar', async () => {
  const jar = new Map();
  const { challenge } = pkce();
  const res = await authorize({ scope: 'openid', state: 'jar', code_challenge: challenge, code_challenge_method: 'S256' }, { jar });
  assert(res.query.code, `no code: ${res.url}`);
  assert(jar.has('_session'), `no session cookie kept: ${[...jar.keys()]}`);
  // A second authorization in the same "browser" reuses the session and the grant: no interaction.
  const again = await authorize({ scope: 'openid', state: 'jar2', code_challenge: challenge, code_challenge_method: 'S256' }, { jar });
  assert(again.query.code, `no code: ${again.url}`);
  assertEq(again.hops, 1, 'redirects with an existing session and grant');
});

let tokens;
await check('code_exchange_with_pkce_and_basic_auth', async () => {
  const res = await tokenRequest({ grant_type: 'authorization_code', code: first.query.code, redirect_uri: redirectUri, code_verifier: first.verifier });
  assert(res.status === 200, `status ${res.status}: ${JSON.stringify(res.body)}`);
  const b = res.body;
  assertEq(b.token_type, 'Bearer', 'token_type');
  assert(typeof b.access_token === 'string' && b.access_token.length >= 20, 'access_token');
  assert(typeof b.refresh_token === 'string' && b.refresh_token.length >= 20, 'refresh_token (issued without offline_access)');
  assert(typeof b.id_token === 'string' && b.id_token.split('.').length === 3, 'id_token for scope openid');
  assertEq(b.expires_in, accessTokenTtl, 'expires_in');
  assertEq(b.scope, 'openid api:read', 'scope');
  assertEq(res.headers.get('cache-control'), 'no-store', 'cache-control');
  console.log(`RESPONSE code_exchange ${JSON.stringify(elide(b))}`);
  tokens = b;
});

await check('access_token_works_at_userinfo', async () => {
  const res = await fetch(USERINFO, { headers: { authorization: `Bearer ${tokens.access_token}` } });
  const body = await res.json();
  assert(res.status === 200, `userinfo answered ${res.status}: ${JSON.stringify(body)}`);
  assertEq(body.sub, 'alice', 'sub');
});


await check('wrong_code_verifier_is_invalid_grant', async () => {
  const { code } = await codeFor('openid');
  const res = await tokenRequest({ grant_type: 'authorization_code', code, redirect_uri: redirectUri, code_verifier: pkce().verifier });
  assertInvalidGrant(res, 'wrong code_verifier');
});

await check('missing_code_verifier_is_refused', async () => {
  const { code } = await codeFor('openid');
  const res = await tokenRequest({ grant_type: 'authorization_code', code, redirect_uri: redirectUri });
  assert(res.status === 400 && ['invalid_grant', 'invalid_request'].includes(res.body.error), `got ${res.status} ${JSON.stringify(res.body)}`);
});

await check('authorization_without_pkce_is_refused', async () => {
  const { query } = await authorize({ scope: 'openid', state: 'nopkce' });
  assertEq(query.error, 'invalid_request', 'error');
  assert(/PKCE|code_challenge/.test(query.error_description || ''), `error_description: ${query.error_description}`);
  assertEq(query.state, 'nopkce', 'state');
  assertEq(query.iss, issuer, 'iss');
  assert(!query.code, 'no code');
});

await check('authorization_with_plain_pkce_is_refused', async () => {
  const { verifier } = pkce();
  const { query } = await authorize({ scope: 'openid', state: 'plain', code_challenge: verifier, code_challenge_method: 'plain' });
  assertEq(query.error, 'invalid_request', 'error');
});

await check('wrong_client_secret_is_invalid_client', async () => {
  const res = await refresh(tokens.refresh_token, { secret: `${clientSecret}-wrong` });
  assert(res.status === 401 && res.body.error === 'invalid_client', `got ${res.status} ${JSON.stringify(res.body)}`);
});

await check('basic_client_cannot_use_client_secret_post', async () => {
  const res = await refresh(tokens.refresh_token, { auth: 'post' });
  assert(res.status === 401 && res.body.error === 'invalid_client', `got ${res.status} ${JSON.stringify(res.body)}`);
});

await check('post_client_cannot_use_client_secret_basic', async () => {
  const res = await refresh(tokens.refresh_token, { id: `${clientId}-post` });
  assert(res.status === 401 && res.body.error === 'invalid_client', `got ${res.status} ${JSON.stringify(res.body)}`);
});

if (rotate) {
  let r1;
  let r2;
  await check('refresh_rotates_the_refresh_token', async () => {
    const res = await refresh(tokens.refresh_token);
    assert(res.status === 200, `status ${res.status}: ${JSON.stringify(res.body)}`);
    r1 = res.body;
    assert(r1.refresh_token && r1.refresh_token !== tokens.refresh_token, 'a new refresh token');
    assert(r1.access_token && r1.access_token !== tokens.access_token, 'a new access token');
    assertEq(r1.expires_in, accessTokenTtl, 'expires_in');
    assertEq(r1.scope, 'openid api:read', 'scope');
    console.log(`RESPONSE refresh ${JSON.stringify(elide(r1))}`);
  });

  await check('refresh_again_rotates_again', async () => {
    const res = await refresh(r1.refresh_token);
    assert(res.status === 200, `status ${res.status}: ${JSON.stringify(res.body)}`);
    r2 = res.body;
    assert(r2.refresh_token && ![tokens.refresh_token, r1.refresh_token].includes(r2.refresh_token), 'a third refresh token');
  });

  await check('reusing_a_rotated_refresh_token_is_invalid_grant', async () => {
    assertInvalidGrant(await refresh(tokens.refresh_token), 'the first refresh token, already rotated');
  });

  await check('reuse_revokes_the_whole_chain', async () => {
    // oidc-provider's reuse detection: presenting a consumed refresh token revokes the grant.
    assertInvalidGrant(await refresh(r2.refresh_token), 'the newest refresh token after a reuse');
  });
} else {
  await check('refresh_keeps_the_refresh_token', async () => {
    const res = await refresh(tokens.refresh_token);
    assert(res.status === 200, `status ${res.status}: ${JSON.stringify(res.body)}`);
    assertEq(res.body.refresh_token, tokens.refresh_token, 'refresh_token');
    assert(res.body.access_token !== tokens.access_token, 'a new access token');
    console.log(`RESPONSE refresh ${JSON.stringify(elide(res.body))}`);
    const again = await refresh(tokens.refresh_token);
    assert(again.status === 200, `second refresh with the same token: ${again.status} ${JSON.stringify(again.body)}`);
  });
}

async function introspect(token) {
  const res = await fetch(INTROSPECT, {
    method: 'POST',
    headers: { authorization: `Basic ${Buffer.from(`${clientId}:${clientSecret}`).toString('base64')}`, 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ token }),
  });
  assertEq(res.status, 200, 'introspection status');
  return res.json();
}

await check('token_lifetimes_are_the_configured_ones', async () => {
  const b = await exchange('openid');
  const at = await introspect(b.access_token);
  const rt = await introspect(b.refresh_token);
  assertEq([at.active, at.token_type, at.exp - at.iat], [true, 'Bearer', accessTokenTtl], 'access token: active, token_type, lifetime');
  assertEq([rt.active, rt.client_id, rt.sub, rt.exp - rt.iat], [true, clientId, 'alice', refreshTokenTtl], 'refresh token: active, client_id, sub, lifetime');
});

if (accessTokenTtl <= 3) {
  await check('access_token_expires_after_its_ttl', async () => {
    // Taken before the exchange: no later than the token's issue. If the answer came within the
    // TTL of it, the token was certainly still valid (on a loaded machine it may not have).
    const before = Date.now();
    const b = await exchange('openid');
    const ok = await fetch(USERINFO, { headers: { authorization: `Bearer ${b.access_token}` } });
    if (Date.now() - before < accessTokenTtl * 1000) {
      assertEq(ok.status, 200, 'userinfo right away');
    }
    await new Promise((resolve) => { setTimeout(resolve, accessTokenTtl * 1000 + 1200); });
    const expired = await fetch(USERINFO, { headers: { authorization: `Bearer ${b.access_token}` } });
    assertEq(expired.status, 401, 'userinfo after the access token TTL');
    assertEq((await introspect(b.access_token)).active, false, 'introspection active after the TTL');
    const r = await refresh(b.refresh_token);
    assertEq(r.status, 200, 'refresh after the access token expired');
  });
}

await check('code_reuse_is_invalid_grant_and_revokes_its_tokens', async () => {
  const { code, verifier } = await codeFor('openid');
  const form = { grant_type: 'authorization_code', code, redirect_uri: redirectUri, code_verifier: verifier };
  const ok = await tokenRequest(form);
  assertEq(ok.status, 200, 'first use of the code');
  assertInvalidGrant(await tokenRequest(form), 'second use of a code');
  // As RFC 6749 section 4.1.2 suggests, oidc-provider then revokes what the code gave.
  assertInvalidGrant(await refresh(ok.body.refresh_token), 'refresh token of a code used twice');
});

await check('post_client_flow', async () => {
  const { code, verifier } = await (async () => {
    const { verifier: v, challenge } = pkce();
    const { query } = await authorize({ client_id: `${clientId}-post`, scope: 'openid', state: 's', code_challenge: challenge, code_challenge_method: 'S256' });
    assert(query.code, `no code: ${JSON.stringify(query)}`);
    return { code: query.code, verifier: v };
  })();
  const res = await tokenRequest({ grant_type: 'authorization_code', code, redirect_uri: redirectUri, code_verifier: verifier }, { auth: 'post', id: `${clientId}-post` });
  assert(res.status === 200 && res.body.refresh_token, `status ${res.status}: ${JSON.stringify(res.body)}`);
  const r = await refresh(res.body.refresh_token, { auth: 'post', id: `${clientId}-post` });
  assert(r.status === 200, `refresh: ${r.status} ${JSON.stringify(r.body)}`);
  // The other client cannot use this client's refresh token.
  assertInvalidGrant(await refresh(r.body.refresh_token), 'a refresh token of another client');
});

await check('scope_without_openid', async () => {
  const b = await exchange('api:read api:write');
  assertEq(b.scope, 'api:read api:write', 'scope');
  assert(b.refresh_token, 'refresh_token');
  assert(b.id_token === undefined, 'no id_token without openid');
  const r = await refresh(b.refresh_token);
  assert(r.status === 200 && r.body.scope === 'api:read api:write', `refresh: ${r.status} ${JSON.stringify(r.body)}`);
});

await check('no_scope_is_access_denied', async () => {
  // oidc-provider refuses to finish an authorization that grants no scope at all.
  const { challenge } = pkce();
  const { query } = await authorize({ state: 'noscope', code_challenge: challenge, code_challenge_method: 'S256' });
  assertEq([query.error, query.state, query.iss], ['access_denied', 'noscope', issuer], 'error, state, iss');
});

await check('resource_indicator', async () => {
  const resource = 'https://api.example.test/';
  const b = await exchange('openid api:read', { resource });
  assertEq(b.scope, 'api:read', 'scope of an access token for a resource server');
  const info = await introspect(b.access_token);
  assertEq([info.active, info.aud, info.sub], [true, resource, 'alice'], 'introspection active, aud, sub');
});

await check('revocation_endpoint_revokes_a_refresh_token', async () => {
  const b = await exchange('openid');
  const basic = `Basic ${Buffer.from(`${clientId}:${clientSecret}`).toString('base64')}`;
  const res = await fetch(REVOKE, {
    method: 'POST',
    headers: { authorization: basic, 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ token: b.refresh_token, token_type_hint: 'refresh_token' }),
  });
  assertEq(res.status, 200, 'revocation status');
  assertInvalidGrant(await refresh(b.refresh_token), 'a revoked refresh token');
});

await check('revocation_endpoint_revokes_an_access_token', async () => {
  const b = await exchange('openid');
  const basic = `Basic ${Buffer.from(`${clientId}:${clientSecret}`).toString('base64')}`;
  const revoke = await fetch(REVOKE, {
    method: 'POST',
    headers: { authorization: basic, 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ token: b.access_token }),
  });
  assertEq(revoke.status, 200, 'revocation status');
  const res = await fetch(USERINFO, { headers: { authorization: `Bearer ${b.access_token}` } });
  assertEq(res.status, 401, 'userinfo with a revoked access token');
});

await check('test_revoke_knob_makes_refresh_fail', async () => {
  const a = await exchange('openid api:read');
  const b = await exchange('api:read');
  const res = await fetch(`${issuer}/_test/revoke`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' });
  const body = await res.json();
  assertEq(res.status, 200, '/_test/revoke status');
  assert(body.revoked.Grant >= 2 && body.revoked.RefreshToken >= 2, `revoked: ${JSON.stringify(body)}`);
  assertInvalidGrant(await refresh(a.refresh_token), 'refresh after /_test/revoke');
  assertInvalidGrant(await refresh(b.refresh_token), 'refresh after /_test/revoke');
  // New authorizations work again afterwards.
  const c = await exchange('openid');
  const r = await refresh(c.refresh_token);
  assertEq(r.status, 200, 'refresh of a token issued after /_test/revoke');
});

await check('stats_count_token_requests_by_grant_type', async () => {
  const after = await stats();
  const delta = (s, k) => (after.token_requests[k] || 0) - (statsBefore.token_requests[k] || 0);
  assertEq(delta(after, 'authorization_code'), sent.authorization_code, 'authorization_code requests');
  assertEq(delta(after, 'refresh_token'), sent.refresh_token, 'refresh_token requests');
  assert((after.token_errors.refresh_token?.invalid_grant || 0) > (statsBefore.token_errors.refresh_token?.invalid_grant || 0), `invalid_grant counted: ${JSON.stringify(after)}`);
  assert(after.test_revocations === statsBefore.test_revocations + 1, 'test_revocations');
  assert(after.authorization_requests > statsBefore.authorization_requests, 'authorization_requests');
});

console.log(`SELFTEST ${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
