// A real OAuth 2.0 authorization server for tokenwarden's tests: the `oidc-provider` package
// (pinned in package.json), configured from environment variables, with browser-less
// interactions and two test-only knobs. Started by tokenwarden-testkit (src/oidc.rs).
//
//   cd tests/oidc-provider && npm ci && PORT=0 node server.mjs
//
// Environment (all optional):
//   PORT                   TCP port on 127.0.0.1; 0 (default) picks a free one
//   CLIENT_ID              default "tokenwarden-test"
//   CLIENT_SECRET          default "tokenwarden-test-secret"
//   REDIRECT_URI           default "http://127.0.0.1:8420/oauth/callback"
//   ACCESS_TOKEN_TTL       seconds, default 60
//   REFRESH_TOKEN_TTL      seconds, default 86400
//   ROTATE_REFRESH_TOKENS  "true" (default) or "false"
//   OIDC_PROVIDER_VERBOSE  "1" prints oidc-provider's development notices and every endpoint error
//   OIDC_PROVIDER_IGNORE_STDIN  "1" keeps running when stdin ends (for running it by hand
//                          in the background; by default it exits when stdin ends, so that it
//                          never outlives the process that started it)
//
// Clients (both confidential, grant types authorization_code + refresh_token, response type
// code, the one redirect URI):
//   CLIENT_ID           token_endpoint_auth_method client_secret_basic
//   CLIENT_ID + "-post" token_endpoint_auth_method client_secret_post (same secret)
// Client credentials (RFC 6749 4.4) clients, separate ones (grant type client_credentials only,
// no redirect URI, scopes api:read api:write, same secret; access tokens live ACCESS_TOKEN_TTL):
//   CLIENT_ID + "-cc"      token_endpoint_auth_method client_secret_basic
//   CLIENT_ID + "-cc-post" token_endpoint_auth_method client_secret_post
// Device flow (RFC 8628, feature deviceFlow): a separate PUBLIC client, no secret, no redirect:
//   CLIENT_ID + "-device"  token_endpoint_auth_method none, grant types
//                          urn:ietf:params:oauth:grant-type:device_code + refresh_token
//   Its device authorization endpoint is {issuer}/device/auth; a person enters the user code at
//   {issuer}/device (a form with an xsrf field, tied to the _session cookie), confirms
//   (confirm=yes, or abort=yes for access_denied), signs in through /interaction/:uid as below,
//   and lands on /device/:uid ("Sign-in Success").
//   CLIENT_ID + "-pkjwt" token_endpoint_auth_method private_key_jwt, its keys from the
//                       environment variable PRIVATE_KEY_JWT_JWKS (only when that is set)
//
// Behaviour: PKCE with S256 is required on every authorization request; a refresh token is
// issued with every authorization code exchange (no offline_access scope or prompt=consent
// needed); refresh tokens rotate (each refresh returns a new one and consumes the old one; a
// consumed one presented again is invalid_grant AND revokes the whole grant, as oidc-provider
// does); authorization responses carry `iss` (RFC 9207); revocation (RFC 7009) and
// introspection (RFC 7662) are enabled; access tokens are opaque.
//
// Browser-less interactions: GET /interaction/:uid signs in the account "alice" and grants every
// requested scope, claim and resource, then redirects (303) back to the authorization endpoint,
// which redirects (303) to REDIRECT_URI?code=...&state=...&iss=.... oidc-provider ties these
// steps together with cookies (_interaction, _interaction_resume); a client without a cookie
// jar works too: when such a request carries no cookie of that name, this server adds it from
// the uid in the path. So: follow 302/303 redirects from the authorization URL and stop at
// REDIRECT_URI (3 redirects).
//
// Test knobs (outside oidc-provider's routes):
//   POST /_test/revoke  revokes everything issued so far (grants, refresh tokens, access
//                       tokens, authorization codes, sessions): the next refresh is invalid_grant.
//                       Answers {"revoked": {"Grant": n, "RefreshToken": n, ...}}.
//   GET  /_test/stats   counts: {"token_requests": {"<grant_type>": n}, "token_errors":
//                       {"<grant_type>": {"<error>": n}}, "authorization_requests": n,
//                       "revocation_requests": n, "introspection_requests": n,
//                       "test_revocations": n}
//
// When listening it prints one line to stdout: READY {"issuer":"http://127.0.0.1:PORT","port":PORT}
// Everything else goes to stderr.

import { createServer } from 'node:http';
import { generateKeyPairSync, randomUUID } from 'node:crypto';

const verbose = process.env.OIDC_PROVIDER_VERBOSE === '1';

// stdout carries only the READY line. oidc-provider prints its development notices with
// console.info/console.warn: they go to stderr, and only when verbose.
const stderrLog = console.error.bind(console);
const quiet = (...args) => {
  if (!verbose && typeof args[0] === 'string' && /^(\x1b\[[0-9;]*m)?oidc-provider (NOTICE|WARNING): /.test(args[0])) {
    return;
  }
  stderrLog(...args);
};
console.log = quiet;
console.info = quiet;
console.warn = quiet;

function fail(message) {
  process.stderr.write(`oidc-provider test server: ${message}\n`);
  process.exit(2);
}

function envString(name, fallback) {
  const value = process.env[name];
  return value === undefined || value === '' ? fallback : value;
}

function envInt(name, fallback, min) {
  const raw = envString(name, String(fallback));
  if (!/^\d+$/.test(raw) || Number(raw) < min || !Number.isSafeInteger(Number(raw))) {
    fail(`${name} must be an integer >= ${min}, got ${JSON.stringify(raw)}`);
  }
  return Number(raw);
}

function envBool(name, fallback) {
  const raw = envString(name, String(fallback)).toLowerCase();
  if (['true', '1', 'yes'].includes(raw)) return true;
  if (['false', '0', 'no'].includes(raw)) return false;
  return fail(`${name} must be "true" or "false", got ${JSON.stringify(raw)}`);
}

const port = envInt('PORT', 0, 0);
const clientId = envString('CLIENT_ID', 'tokenwarden-test');
const clientSecret = envString('CLIENT_SECRET', 'tokenwarden-test-secret');
const redirectUri = envString('REDIRECT_URI', 'http://127.0.0.1:8420/oauth/callback');
const accessTokenTtl = envInt('ACCESS_TOKEN_TTL', 60, 1);
const refreshTokenTtl = envInt('REFRESH_TOKEN_TTL', 86400, 1);
const rotateRefreshTokens = envBool('ROTATE_REFRESH_TOKENS', true);
let privateKeyJwtJwks;
if (envString('PRIVATE_KEY_JWT_JWKS', '')) {
  try {
    privateKeyJwtJwks = JSON.parse(process.env.PRIVATE_KEY_JWT_JWKS);
  } catch {
    fail('PRIVATE_KEY_JWT_JWKS must be a JSON Web Key Set ({"keys": [...]})');
  }
}
if (port > 65535) fail(`PORT must be at most 65535, got ${port}`);
try {
  new URL(redirectUri); // eslint-disable-line no-new
} catch {
  fail(`REDIRECT_URI must be an absolute URL, got ${JSON.stringify(redirectUri)}`);
}

// Imported only now, after the console is redirected: it prints a notice on import.
const { default: Provider, errors: oidcErrors } = await import('oidc-provider');

const ACCOUNT_ID = 'alice';
const API_SCOPES = ['api:read', 'api:write'];

// ---------------------------------------------------------------------------------------------
// Storage: an in-memory adapter (oidc-provider's own keeps at most 1000 entries in an LRU and
// warns on start) that this server can also enumerate, for POST /_test/revoke.

const store = new Map(); // `${model}:${id}` -> { payload, expiresAt (ms) | undefined }
const GRANTABLE = new Set(['AccessToken', 'AuthorizationCode', 'RefreshToken', 'DeviceCode', 'BackchannelAuthenticationRequest']);

function storeGet(key) {
  const entry = store.get(key);
  if (!entry) return undefined;
  if (entry.expiresAt !== undefined && entry.expiresAt <= Date.now()) {
    store.delete(key);
    return undefined;
  }
  return entry.payload;
}

class TestAdapter {
  constructor(model) {
    this.model = model;
  }

  key(id) {
    return `${this.model}:${id}`;
  }

  async upsert(id, payload, expiresIn) {
    const expiresAt = expiresIn ? Date.now() + expiresIn * 1000 : undefined;
    store.set(this.key(id), { payload, expiresAt });
  }

  async find(id) {
    return storeGet(this.key(id));
  }

  async findByUid(uid) {
    for (const [key, entry] of store) {
      if (key.startsWith(`${this.model}:`) && entry.payload.uid === uid) return storeGet(key);
    }
    return undefined;
  }

  async findByUserCode(userCode) {
    for (const [key, entry] of store) {
      if (key.startsWith(`${this.model}:`) && entry.payload.userCode === userCode) return storeGet(key);
    }
    return undefined;
  }

  async consume(id) {
    const payload = storeGet(this.key(id));
    if (payload) payload.consumed = Math.floor(Date.now() / 1000);
  }

  async destroy(id) {
    store.delete(this.key(id));
  }

  async revokeByGrantId(grantId) {
    if (!GRANTABLE.has(this.model)) return;
    for (const [key, entry] of store) {
      if (key.startsWith(`${this.model}:`) && entry.payload.grantId === grantId) store.delete(key);
    }
  }
}

function revokeEverything() {
  const revoked = {};
  for (const model of ['Grant', 'RefreshToken', 'AccessToken', 'AuthorizationCode', 'Session']) {
    revoked[model] = 0;
  }
  for (const key of [...store.keys()]) {
    const model = key.slice(0, key.indexOf(':'));
    if (model in revoked) {
      if (storeGet(key) !== undefined) revoked[model] += 1;
      store.delete(key);
    }
  }
  return revoked;
}

// ---------------------------------------------------------------------------------------------
// Counters, for GET /_test/stats.

const stats = {
  token_requests: {},
  token_errors: {},
  authorization_requests: 0,
  revocation_requests: 0,
  introspection_requests: 0,
  test_revocations: 0,
};

// ---------------------------------------------------------------------------------------------
// The provider. Its issuer needs the port, so the socket is bound first.

const server = createServer((req, res) => handler(req, res));
let handler = (req, res) => {
  res.statusCode = 503;
  res.end('starting');
};

await new Promise((resolve, reject) => {
  server.once('error', reject);
  server.listen(port, '127.0.0.1', () => {
    server.off('error', reject);
    resolve();
  });
}).catch((e) => fail(`cannot listen on 127.0.0.1:${port}: ${e.message}`));

const boundPort = server.address().port;
const issuer = `http://127.0.0.1:${boundPort}`;

// A fresh signing key per run (for ID tokens), instead of oidc-provider's published dev keys.
const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const signingKey = { ...privateKey.export({ format: 'jwk' }), kid: randomUUID(), use: 'sig', alg: 'ES256' };

const clientBase = {
  client_secret: clientSecret,
  redirect_uris: [redirectUri],
  grant_types: ['authorization_code', 'refresh_token'],
  response_types: ['code'],
  id_token_signed_response_alg: 'ES256',
};

// Client credentials: the -cc clients (see the top of this file).
const ccClients = [
  [`${clientId}-cc`, 'client_secret_basic'],
  [`${clientId}-cc-post`, 'client_secret_post'],
].map(([client_id, token_endpoint_auth_method]) => ({
  client_id,
  client_secret: clientSecret,
  token_endpoint_auth_method,
  grant_types: ['client_credentials'],
  response_types: [],
  redirect_uris: [],
  scope: API_SCOPES.join(' '),
  // The only signing key is ES256 (no id token is ever issued to these clients, but
  // oidc-provider checks the client's metadata against the keys it has).
  id_token_signed_response_alg: 'ES256',
}));

const provider = new Provider(issuer, {
  adapter: TestAdapter,
  jwks: { keys: [signingKey] },
  clients: [
    { ...clientBase, client_id: clientId, token_endpoint_auth_method: 'client_secret_basic' },
    { ...clientBase, client_id: `${clientId}-post`, token_endpoint_auth_method: 'client_secret_post' },
    ...ccClients,
    {
      client_id: `${clientId}-device`,
      token_endpoint_auth_method: 'none',
      grant_types: ['urn:ietf:params:oauth:grant-type:device_code', 'refresh_token'],
      response_types: [],
      redirect_uris: [],
      id_token_signed_response_alg: 'ES256',
    },
    // private_key_jwt (RFC 7523): registered only when PRIVATE_KEY_JWT_JWKS holds the client's
    // public keys ({"keys": [...]}), e.g. the JWKS tokenwarden shows for a token's key.
    ...(privateKeyJwtJwks
      ? [{ ...clientBase, client_secret: undefined, client_id: `${clientId}-pkjwt`, token_endpoint_auth_method: 'private_key_jwt', jwks: privateKeyJwtJwks }]
      : []),
  ],
  responseTypes: ['code'],
  scopes: ['openid', 'offline_access', ...API_SCOPES],
  claims: { openid: ['sub'], email: ['email', 'email_verified'], profile: ['name'] },
  findAccount: async (ctx, sub) => ({
    accountId: sub,
    claims: async () => ({ sub, email: `${sub}@example.test`, email_verified: true, name: sub }),
  }),
  pkce: { methods: ['S256'], required: () => true },
  // Refresh tokens for every code exchange, without the offline_access + prompt=consent dance,
  // living REFRESH_TOKEN_TTL regardless of any session.
  issueRefreshToken: async (ctx, client) => client.grantTypeAllowed('refresh_token'),
  expiresWithSession: async () => false,
  rotateRefreshToken: rotateRefreshTokens,
  ttl: {
    AccessToken: accessTokenTtl,
    AuthorizationCode: 60,
    RefreshToken: refreshTokenTtl,
    IdToken: 3600,
    ClientCredentials: accessTokenTtl,
    Interaction: 600,
    Session: 14 * 24 * 3600,
    // Must outlive every refresh token of the chain, rotated ones included.
    Grant: refreshTokenTtl + 365 * 24 * 3600,
  },
  features: {
    devInteractions: { enabled: false },
    clientCredentials: { enabled: true },
    deviceFlow: { enabled: true },
    revocation: { enabled: true },
    introspection: { enabled: true },
    userinfo: { enabled: true },
    rpInitiatedLogout: { enabled: false },
    resourceIndicators: {
      enabled: true,
      defaultResource: async (ctx, client, oneOf) => oneOf,
      useGrantedResource: async () => true,
      getResourceServerInfo: async (ctx, resourceIndicator) => {
        if (!/^https?:\/\//.test(resourceIndicator)) throw new oidcErrors.InvalidTarget();
        return {
          scope: API_SCOPES.join(' '),
          audience: resourceIndicator,
          accessTokenTTL: accessTokenTtl,
          accessTokenFormat: 'opaque',
        };
      },
    },
  },
  clientBasedCORS: () => false,
  interactions: { url: async (ctx, interaction) => `/interaction/${interaction.uid}` },
  renderError: async (ctx, out) => {
    ctx.type = 'json';
    ctx.body = out;
  },
});

// Counts requests per endpoint and token requests per grant type.
provider.use(async (ctx, next) => {
  await next();
  const route = ctx.oidc?.route || ctx.state.testRoute;
  if (route === 'authorization') stats.authorization_requests += 1;
  if (route === 'revocation') stats.revocation_requests += 1;
  if (route === 'introspection') stats.introspection_requests += 1;
  if (route === 'token') {
    const grantType = ctx.oidc?.params?.grant_type || ctx.state.testForm?.grant_type || 'unknown';
    stats.token_requests[grantType] = (stats.token_requests[grantType] || 0) + 1;
    if (ctx.status >= 400) {
      const error = ctx.body?.error || `http_${ctx.status}`;
      const errors = stats.token_errors[grantType] || (stats.token_errors[grantType] = {});
      errors[error] = (errors[error] || 0) + 1;
    }
  }
});

// oidc-provider accepts client_secret_basic and client_secret_post interchangeably, whatever
// the client registered. This server holds each client to its registered method (on the token,
// revocation and introspection endpoints), so that a client sending the wrong one is noticed:
// 401 invalid_client. To look at the form it reads the body first and hands it on as req.body
// (which oidc-provider then parses as it would have).
const registeredAuthMethod = new Map([
  [clientId, 'client_secret_basic'],
  [`${clientId}-post`, 'client_secret_post'],
  ...ccClients.map((c) => [c.client_id, c.token_endpoint_auth_method]),
]);
const clientAuthRoutes = new Map([['/token', 'token'], ['/token/revocation', 'revocation'], ['/token/introspection', 'introspection']]);
const MAX_BODY = 56 * 1024;

provider.use(async (ctx, next) => {
  const route = clientAuthRoutes.get(ctx.path);
  if (!route || ctx.method !== 'POST' || !ctx.is('application/x-www-form-urlencoded')) {
    await next();
    return;
  }
  const chunks = [];
  let size = 0;
  for await (const chunk of ctx.req) {
    size += chunk.length;
    if (size > MAX_BODY) ctx.throw(413, 'request body too large');
    chunks.push(chunk);
  }
  const raw = Buffer.concat(chunks);
  ctx.req.body = raw;
  const form = Object.fromEntries(new URLSearchParams(raw.toString('utf8')));
  ctx.state.testForm = form;
  ctx.state.testRoute = route;

  let used;
  let id;
  const authorization = ctx.get('authorization');
  if (/^basic /i.test(authorization)) {
    used = 'client_secret_basic';
    const decoded = Buffer.from(authorization.slice(6).trim(), 'base64').toString('utf8');
    try {
      id = decodeURIComponent(decoded.slice(0, decoded.indexOf(':')).replace(/\+/g, '%20'));
    } catch {
      id = undefined;
    }
  } else if (form.client_secret !== undefined) {
    used = 'client_secret_post';
    id = form.client_id;
  }
  const registered = registeredAuthMethod.get(id);
  if (used && registered && used !== registered) {
    ctx.status = 401;
    ctx.set('cache-control', 'no-store');
    ctx.body = {
      error: 'invalid_client',
      error_description: `client authentication failed: ${used} used, but client ${id} is registered with ${registered} (enforced by the test server)`,
    };
    return;
  }
  await next();
});

provider.on('server_error', (ctx, err) => {
  process.stderr.write(`oidc-provider server_error on ${ctx.method} ${ctx.path}: ${err.stack || err}\n`);
});
if (verbose) {
  for (const event of ['authorization.error', 'grant.error', 'revocation.error', 'introspection.error']) {
    provider.on(event, (ctx, err) => {
      process.stderr.write(`oidc-provider ${event}: ${err.error || err.name}: ${err.error_description || err.message}\n`);
    });
  }
}

// ---------------------------------------------------------------------------------------------
// Browser-less interactions: sign in "alice" and grant everything that was asked for.

async function finishInteraction(req, res) {
  const interaction = await provider.interactionDetails(req, res);
  const { prompt, params, session } = interaction;
  const accountId = session?.accountId || ACCOUNT_ID;

  const grant = interaction.grantId
    ? await provider.Grant.find(interaction.grantId)
    : new provider.Grant({ accountId, clientId: params.client_id });
  const requested = typeof params.scope === 'string' ? params.scope.split(' ').filter(Boolean) : [];
  if (requested.length) grant.addOIDCScope(requested.join(' '));
  const details = prompt.details || {};
  if (details.missingOIDCScope) grant.addOIDCScope(details.missingOIDCScope.join(' '));
  if (details.missingOIDCClaims) grant.addOIDCClaims(details.missingOIDCClaims);
  const resources = params.resource === undefined ? [] : [params.resource].flat();
  for (const resource of resources) {
    const apiScopes = requested.filter((s) => API_SCOPES.includes(s));
    if (apiScopes.length) grant.addResourceScope(resource, apiScopes.join(' '));
  }
  for (const [indicator, scopes] of Object.entries(details.missingResourceScopes || {})) {
    grant.addResourceScope(indicator, scopes.join(' '));
  }
  const grantId = await grant.save();

  const result = { consent: { grantId } };
  if (!session?.accountId) result.login = { accountId: ACCOUNT_ID };
  await provider.interactionFinished(req, res, result, { mergeWithLastSubmission: true });
}

// oidc-provider finds the pending interaction by a cookie; add it from the path when the
// client has no cookie jar (only if the request has no cookie of that name).
function addInteractionCookie(req, name, uid) {
  const existing = req.headers.cookie || '';
  if (existing.split(';').some((c) => c.trim().startsWith(`${name}=`))) return;
  req.headers.cookie = existing ? `${existing}; ${name}=${uid}` : `${name}=${uid}`;
}

function sendJson(res, status, body) {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), 'cache-control': 'no-store' });
  res.end(text);
}

const providerCallback = provider.callback();

handler = (req, res) => {
  const { pathname } = new URL(req.url, issuer);
  (async () => {
    if (pathname === '/_test/stats' && req.method === 'GET') {
      sendJson(res, 200, stats);
      return;
    }
    if (pathname === '/_test/revoke' && req.method === 'POST') {
      for await (const chunk of req) void chunk; // any body (JSON or none) is ignored
      stats.test_revocations += 1;
      sendJson(res, 200, { revoked: revokeEverything() });
      return;
    }
    if (pathname.startsWith('/_test/')) {
      sendJson(res, 404, { error: 'not_found', error_description: `no test route ${req.method} ${pathname}` });
      return;
    }
    const interaction = /^\/interaction\/([A-Za-z0-9_-]+)$/.exec(pathname);
    if (interaction && req.method === 'GET') {
      addInteractionCookie(req, provider.cookieName('interaction'), interaction[1]);
      try {
        await finishInteraction(req, res);
      } catch (e) {
        sendJson(res, 400, { error: e.error || 'interaction_failed', error_description: e.error_description || e.message });
      }
      return;
    }
    const resume = /^\/auth\/([A-Za-z0-9_-]+)$/.exec(pathname);
    if (resume) addInteractionCookie(req, provider.cookieName('resume'), resume[1]);
    providerCallback(req, res);
  })().catch((e) => {
    process.stderr.write(`oidc-provider test server: ${req.method} ${pathname} failed: ${e.stack || e}\n`);
    if (!res.headersSent) sendJson(res, 500, { error: 'server_error', error_description: e.message });
    else res.destroy();
  });
};

// ---------------------------------------------------------------------------------------------

process.on('SIGTERM', () => process.exit(0));
process.on('SIGINT', () => process.exit(0));
if (process.env.OIDC_PROVIDER_IGNORE_STDIN !== '1') {
  process.stdin.on('end', () => process.exit(0));
  process.stdin.on('error', () => process.exit(0));
  process.stdin.resume();
}

process.stdout.write(`READY ${JSON.stringify({ issuer, port: boundPort })}\n`);
