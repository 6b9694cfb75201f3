//! A real OAuth 2.0 authorization server for tests: the npm package `oidc-provider` (its version
//! is pinned in `tests/oidc-provider/package.json`), run with Node.js by
//! `tests/oidc-provider/server.mjs`, one process per [`OidcProvider`].
//!
//! [`OidcProvider::start`] (or [`require_oidc_provider`], which panics instead of returning an
//! error) runs `npm ci` in `tests/oidc-provider` if its `node_modules` is missing or holds
//! another `oidc-provider` version, starts the server on a free port on 127.0.0.1 (the server
//! binds port 0 itself, so there is no race for the port), waits for its `READY` line and reads
//! the endpoints from its discovery document (`/.well-known/openid-configuration`). Dropping
//! the [`OidcProvider`] kills the process; the server also exits by itself when its stdin (a
//! pipe from this process) closes, so it never outlives the test process, however that ends.
//!
//! What the server does (see the head of `server.mjs` for the details):
//!
//! - Two confidential clients: `client_id` with `client_secret_basic` and `client_id` + `-post`
//!   ([`OidcProvider::post_client_id`]) with `client_secret_post`, both with `client_secret`,
//!   the one `redirect_uri`, grant types `authorization_code` and `refresh_token`, response type
//!   `code`. Each client must authenticate with its registered method (`invalid_client`
//!   otherwise; stricter than oidc-provider alone, which takes either).
//! - PKCE with `S256` is required (`plain` is refused). At least one scope must be requested
//!   (`openid`, `api:read`, `api:write`, `offline_access`, `email`, `profile`); `openid` is
//!   optional (with it, responses also carry an ID token); `nonce` is optional.
//! - Every code exchange returns a refresh token (no `offline_access` or `prompt=consent`
//!   needed). With `rotate_refresh_tokens`, each refresh returns a new refresh token and
//!   consumes the old one; presenting a consumed one is `invalid_grant` **and revokes the whole
//!   grant** (the newest refresh token of the chain stops working too). Using an authorization
//!   code twice also revokes the tokens it gave.
//! - Access tokens are opaque, live `access_token_ttl_secs`; refresh tokens live
//!   `refresh_token_ttl_secs` (from their own issue, also after a rotation).
//! - Authorization responses carry `iss` (RFC 9207) as well as `code` and `state`.
//! - Client credentials (RFC 6749 4.4): two separate clients, [`OidcProvider::cc_client_id`]
//!   (`client_secret_basic`) and [`OidcProvider::cc_post_client_id`] (`client_secret_post`),
//!   with the same secret; their access tokens live `access_token_ttl_secs` too.
//! - No browser needed: following the 302/303 redirects from the authorization URL (cookies
//!   kept or not) signs in the account `alice`, grants what was asked and ends with a redirect
//!   to `redirect_uri?code=...&state=...&iss=...` (3 redirects).
//! - Revocation (RFC 7009), introspection (RFC 7662) and userinfo endpoints are enabled.
//! - The device flow (RFC 8628) for a third, public client ([`OidcProvider::device_client_id`],
//!   no secret): its codes come from [`OidcProvider::device_authorization_endpoint`], and
//!   [`OidcProvider::complete_device_sign_in`] plays the person at the verification page
//!   (enter the code, confirm or abort, sign in as `alice`).
//! - Test knobs: [`OidcProvider::revoke_all`] (`POST /_test/revoke`: every grant and token
//!   issued so far is revoked, so the next refresh is `invalid_grant`) and
//!   [`OidcProvider::stats`] / [`OidcProvider::token_requests`] (`GET /_test/stats`: counts of
//!   token endpoint requests by grant type).
//!
//! Everything here is synchronous and uses only std (HTTP/1.1 over a `TcpStream` to the
//! loopback server), so it works from plain `#[test]`s and from `#[tokio::test]`s alike.
//! Needs `node` (>= 18; tested with 20) on `PATH`, and `npm` plus the npm registry the first
//! time.

use std::fmt::Write as _;
use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// How long to wait for the server's `READY` line.
const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// Connect, read and write timeout of one HTTP request to the server.
const HTTP_TIMEOUT: Duration = Duration::from_secs(15);
/// How much of the server's stderr is kept for error messages.
const STDERR_KEEP: usize = 16 * 1024;

/// Settings of one [`OidcProvider`]; each becomes an environment variable of `server.mjs`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OidcProviderConfig {
    /// `CLIENT_ID`: the `client_secret_basic` client; `{client_id}-post` is the
    /// `client_secret_post` one.
    pub client_id: String,
    /// `CLIENT_SECRET`, of both clients.
    pub client_secret: String,
    /// `REDIRECT_URI`, the only one registered for both clients (an absolute URL).
    pub redirect_uri: String,
    /// `ACCESS_TOKEN_TTL` (at least 1).
    pub access_token_ttl_secs: u64,
    /// `REFRESH_TOKEN_TTL` (at least 1).
    pub refresh_token_ttl_secs: u64,
    /// `ROTATE_REFRESH_TOKENS`.
    pub rotate_refresh_tokens: bool,
    /// `PRIVATE_KEY_JWT_JWKS`: the public keys (a JWKS) of the `{client_id}-pkjwt` client, which
    /// authenticates with `private_key_jwt`; that client exists only when this is set.
    pub private_key_jwt_jwks: Option<String>,
}

impl Default for OidcProviderConfig {
    /// The server's own defaults: client `tokenwarden-test`, secret `tokenwarden-test-secret`,
    /// redirect URI `http://127.0.0.1:8420/oauth/callback`, 60 s access tokens, 86400 s
    /// refresh tokens, rotation on.
    fn default() -> Self {
        OidcProviderConfig {
            client_id: "tokenwarden-test".to_owned(),
            client_secret: "tokenwarden-test-secret".to_owned(),
            redirect_uri: "http://127.0.0.1:8420/oauth/callback".to_owned(),
            access_token_ttl_secs: 60,
            refresh_token_ttl_secs: 86_400,
            rotate_refresh_tokens: true,
            private_key_jwt_jwks: None,
        }
    }
}

/// A running oidc-provider server; the process is killed when this is dropped.
#[derive(Debug)]
pub struct OidcProvider {
    /// `http://127.0.0.1:PORT`, as the server announced it and its discovery document says.
    pub issuer: String,
    /// The port on 127.0.0.1 it listens on.
    pub port: u16,
    config: OidcProviderConfig,
    authorization_endpoint: String,
    token_endpoint: String,
    revocation_endpoint: String,
    introspection_endpoint: String,
    userinfo_endpoint: String,
    child: Child,
    /// Write end of the server's stdin, never written; closing it makes the server exit.
    stdin: Option<ChildStdin>,
    stderr: Arc<Mutex<String>>,
}

impl OidcProvider {
    /// Starts `tests/oidc-provider/server.mjs` with `node` and waits until it serves its
    /// discovery document.
    ///
    /// First makes sure the npm dependencies are installed: if `node_modules` in that folder is
    /// missing or holds another `oidc-provider` version than `package.json` pins, runs
    /// `npm ci --no-audit --no-fund` there (one at a time, across processes too).
    ///
    /// # Errors
    ///
    /// A message that says what failed: `node` or `npm` missing, `npm ci` or the server failing
    /// (with its exit status and output), no `READY` line within 60 s, or a discovery document
    /// without the expected endpoints.
    pub fn start(config: OidcProviderConfig) -> Result<OidcProvider, String> {
        let dir = harness_dir()?;
        let node = find_on_path("node").ok_or_else(|| {
            "`node` (Node.js >= 18) was not found on PATH; the oidc-provider tests need it \
             (e.g. `apt-get install nodejs npm`)"
                .to_owned()
        })?;
        ensure_node_modules(&dir)?;

        let mut cmd = Command::new(&node);
        cmd.arg("server.mjs")
            .current_dir(&dir)
            .env("PORT", "0")
            .env("CLIENT_ID", &config.client_id)
            .env("CLIENT_SECRET", &config.client_secret)
            .env("REDIRECT_URI", &config.redirect_uri)
            .env("ACCESS_TOKEN_TTL", config.access_token_ttl_secs.to_string())
            .env(
                "REFRESH_TOKEN_TTL",
                config.refresh_token_ttl_secs.to_string(),
            )
            .env(
                "ROTATE_REFRESH_TOKENS",
                if config.rotate_refresh_tokens {
                    "true"
                } else {
                    "false"
                },
            )
            .env(
                "PRIVATE_KEY_JWT_JWKS",
                config.private_key_jwt_jwks.as_deref().unwrap_or_default(),
            )
            .env_remove("OIDC_PROVIDER_IGNORE_STDIN")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let what = format!("`{} server.mjs` in {}", node.display(), dir.display());
        let mut child = cmd
            .spawn()
            .map_err(|e| format!("could not start {what}: {e}"))?;

        let stderr = Arc::new(Mutex::new(String::new()));
        if let Some(pipe) = child.stderr.take() {
            let buffer = Arc::clone(&stderr);
            std::thread::spawn(move || collect_stderr(pipe, &buffer));
        }
        let (ready_tx, ready_rx) = mpsc::channel();
        if let Some(pipe) = child.stdout.take() {
            std::thread::spawn(move || {
                let mut ready_tx = Some(ready_tx);
                for line in BufReader::new(pipe).lines() {
                    let Ok(line) = line else { break };
                    if line.starts_with("READY ")
                        && let Some(tx) = ready_tx.take()
                    {
                        let _ = tx.send(line);
                    }
                    // Anything else on stdout is drained and dropped.
                }
            });
        }

        let mut provider = OidcProvider {
            issuer: String::new(),
            port: 0,
            config,
            authorization_endpoint: String::new(),
            token_endpoint: String::new(),
            revocation_endpoint: String::new(),
            introspection_endpoint: String::new(),
            userinfo_endpoint: String::new(),
            stdin: child.stdin.take(),
            child,
            stderr,
        };
        // From here on, dropping `provider` (on any error) kills the process.

        let line = match ready_rx.recv_timeout(READY_TIMEOUT) {
            Ok(line) => line,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                return Err(format!(
                    "{what} printed no READY line within {}s{}",
                    READY_TIMEOUT.as_secs(),
                    provider.stderr_section()
                ));
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                // stdout closed: the process ended (or is ending).
                let status = wait_briefly(&mut provider.child);
                return Err(format!(
                    "{what} exited before it was ready ({status}){}",
                    provider.stderr_section()
                ));
            }
        };
        let ready = &line["READY ".len()..];
        provider.issuer = json_string(ready, "issuer")
            .ok_or_else(|| format!("{what} printed a READY line without issuer: {line}"))?;
        provider.port = json_u64(ready, "port")
            .and_then(|p| u16::try_from(p).ok())
            .ok_or_else(|| format!("{what} printed a READY line without a port: {line}"))?;

        let url = format!("{}/.well-known/openid-configuration", provider.issuer);
        let discovery = http_request("GET", &url, None)?;
        if discovery.status != 200 {
            return Err(format!(
                "GET {url} answered {}: {}",
                discovery.status, discovery.body
            ));
        }
        if !discovery
            .header("content-type")
            .is_some_and(|t| t.starts_with("application/json"))
        {
            return Err(format!(
                "GET {url} answered {:?}, not JSON: {}",
                discovery.header("content-type"),
                discovery.body
            ));
        }
        let doc = &discovery.body;
        if json_string(doc, "issuer").as_deref() != Some(provider.issuer.as_str()) {
            return Err(format!(
                "the discovery document at {url} names another issuer than {}: {doc}",
                provider.issuer
            ));
        }
        let endpoint = |key: &str| -> Result<String, String> {
            json_string(doc, key)
                .filter(|value| value.starts_with(&provider.issuer))
                .ok_or_else(|| {
                    format!("the discovery document at {url} has no {key} on the issuer: {doc}")
                })
        };
        let authorization_endpoint = endpoint("authorization_endpoint")?;
        let token_endpoint = endpoint("token_endpoint")?;
        let revocation_endpoint = endpoint("revocation_endpoint")?;
        let introspection_endpoint = endpoint("introspection_endpoint")?;
        let userinfo_endpoint = endpoint("userinfo_endpoint")?;
        provider.authorization_endpoint = authorization_endpoint;
        provider.token_endpoint = token_endpoint;
        provider.revocation_endpoint = revocation_endpoint;
        provider.introspection_endpoint = introspection_endpoint;
        provider.userinfo_endpoint = userinfo_endpoint;
        Ok(provider)
    }

    /// The authorization endpoint, from the discovery document (oidc-provider's
    /// `{issuer}/auth`).
    #[must_use]
    pub fn authorization_endpoint(&self) -> String {
        self.authorization_endpoint.clone()
    }

    /// The token endpoint, from the discovery document (`{issuer}/token`).
    #[must_use]
    pub fn token_endpoint(&self) -> String {
        self.token_endpoint.clone()
    }

    /// The revocation endpoint (RFC 7009), from the discovery document
    /// (`{issuer}/token/revocation`).
    #[must_use]
    pub fn revocation_endpoint(&self) -> String {
        self.revocation_endpoint.clone()
    }

    /// The introspection endpoint (RFC 7662), from the discovery document
    /// (`{issuer}/token/introspection`). Either client may call it with its own credentials.
    #[must_use]
    pub fn introspection_endpoint(&self) -> String {
        self.introspection_endpoint.clone()
    }

    /// The userinfo endpoint, from the discovery document (`{issuer}/me`): answers 200 for a
    /// live access token of a grant with scope `openid`, 401 once it expired or was revoked.
    #[must_use]
    pub fn userinfo_endpoint(&self) -> String {
        self.userinfo_endpoint.clone()
    }

    /// The settings it was started with.
    #[must_use]
    pub fn config(&self) -> &OidcProviderConfig {
        &self.config
    }

    /// The device authorization endpoint (RFC 8628), `{issuer}/device/auth`, of the
    /// [`device_client_id`](Self::device_client_id) client.
    #[must_use]
    pub fn device_authorization_endpoint(&self) -> String {
        format!("{}/device/auth", self.issuer)
    }

    /// The id of the third client: public (no secret), grant types
    /// `urn:ietf:params:oauth:grant-type:device_code` and `refresh_token`.
    #[must_use]
    pub fn device_client_id(&self) -> String {
        format!("{}-device", self.config.client_id)
    }

    /// Plays the person at the device verification page, over HTTP with a cookie jar as a
    /// browser would: GET `{issuer}/device`, post the `user_code`, then confirm (`approve`) or
    /// abort (the poll then answers `access_denied`); a confirmation signs in as `alice`
    /// through the interaction and ends on the "Sign-in Success" page.
    ///
    /// # Errors
    ///
    /// What the server answered where a step went wrong (unknown or expired code, ...).
    pub fn complete_device_sign_in(&self, user_code: &str, approve: bool) -> Result<(), String> {
        let mut jar = CookieJar::default();
        let page_url = format!("{}/device", self.issuer);
        let page = jar.request("GET", &page_url, None)?;
        let xsrf = html_input_value(&page.body, "xsrf")
            .ok_or_else(|| format!("GET {page_url} has no xsrf field: {}", page.body))?;
        let form = |extra: &str| {
            format!(
                "xsrf={}&user_code={}{extra}",
                form_encode(&xsrf),
                form_encode(user_code)
            )
        };
        let entered = jar.request("POST", &page_url, Some(&form("")))?;
        if !entered.body.contains("op.deviceConfirmForm") {
            return Err(format!(
                "the code {user_code} was not accepted ({}): {}",
                entered.status, entered.body
            ));
        }
        if !approve {
            let aborted = jar.request("POST", &page_url, Some(&form("&abort=yes")))?;
            return if aborted.status < 500 {
                Ok(())
            } else {
                Err(format!(
                    "aborting answered {}: {}",
                    aborted.status, aborted.body
                ))
            };
        }
        let mut res = jar.request("POST", &page_url, Some(&form("&confirm=yes")))?;
        for _ in 0..5 {
            if !(300..400).contains(&res.status) {
                break;
            }
            let location = res
                .header("location")
                .ok_or("a redirect without a location")?
                .to_owned();
            let next = if location.starts_with("http") {
                location
            } else {
                format!("{}{location}", self.issuer)
            };
            res = jar.request("GET", &next, None)?;
        }
        if res.status == 200 && res.body.contains("Sign-in Success") {
            Ok(())
        } else {
            Err(format!(
                "the device sign-in did not end on the success page ({}): {}",
                res.status, res.body
            ))
        }
    }

    /// The id of the second client, which authenticates with `client_secret_post`.
    #[must_use]
    pub fn post_client_id(&self) -> String {
        format!("{}-post", self.config.client_id)
    }

    /// The id of the client credentials client (grant type `client_credentials` only, scopes
    /// `api:read api:write`), which authenticates with `client_secret_basic`; its secret is
    /// the configured one.
    #[must_use]
    pub fn cc_client_id(&self) -> String {
        format!("{}-cc", self.config.client_id)
    }

    /// The client credentials client that authenticates with `client_secret_post`.
    #[must_use]
    pub fn cc_post_client_id(&self) -> String {
        format!("{}-cc-post", self.config.client_id)
    }

    /// `POST /_test/revoke`: revokes every grant, refresh token, access token, authorization
    /// code and session issued so far (as when the account's access is withdrawn), so the next
    /// refresh is `invalid_grant`. Later authorizations work as before. Returns the server's
    /// answer, e.g. `{"revoked":{"Grant":2,"RefreshToken":2,...}}`.
    ///
    /// # Errors
    ///
    /// If the request fails or does not answer 200.
    pub fn revoke_all(&self) -> Result<String, String> {
        let url = format!("{}/_test/revoke", self.issuer);
        let response = http_request("POST", &url, Some(("application/json", b"{}")))?;
        if response.status != 200 {
            return Err(format!(
                "POST {url} answered {}: {}",
                response.status, response.body
            ));
        }
        Ok(response.body)
    }

    /// `GET /_test/stats`, as JSON: `{"token_requests":{"authorization_code":N,
    /// "refresh_token":N},"token_errors":{"refresh_token":{"invalid_grant":N}},
    /// "authorization_requests":N,"revocation_requests":N,"introspection_requests":N,
    /// "test_revocations":N}` (grant types appear once used).
    ///
    /// # Errors
    ///
    /// If the request fails or does not answer 200.
    pub fn stats(&self) -> Result<String, String> {
        let url = format!("{}/_test/stats", self.issuer);
        let response = http_request("GET", &url, None)?;
        if response.status != 200 {
            return Err(format!(
                "GET {url} answered {}: {}",
                response.status, response.body
            ));
        }
        Ok(response.body)
    }

    /// How many requests with this `grant_type` the token endpoint has had (answered with
    /// success or error, client authentication failures included).
    ///
    /// # Errors
    ///
    /// If [`stats`](Self::stats) fails or answers something unexpected.
    pub fn token_requests(&self, grant_type: &str) -> Result<u64, String> {
        let stats = self.stats()?;
        let counts = json_object(&stats, "token_requests")
            .ok_or_else(|| format!("/_test/stats has no token_requests: {stats}"))?;
        Ok(json_u64(counts, grant_type).unwrap_or(0))
    }

    /// What the server printed on stderr so far (the last 16 KiB): its errors and, with
    /// `OIDC_PROVIDER_VERBOSE=1` in the environment of the test, oidc-provider's notices.
    #[must_use]
    pub fn stderr_output(&self) -> String {
        self.stderr
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The process id of the server.
    #[must_use]
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    fn stderr_section(&self) -> String {
        // Give the stderr reader a moment to collect the last lines.
        std::thread::sleep(Duration::from_millis(200));
        let text = self.stderr_output();
        if text.trim().is_empty() {
            String::new()
        } else {
            format!("\n--- its stderr ---\n{}", text.trim_end())
        }
    }
}

impl Drop for OidcProvider {
    fn drop(&mut self) {
        drop(self.stdin.take());
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Like [`OidcProvider::start`], for tests: returns the running server or panics with a clear
/// message. It never skips: a test that needs the server fails when it cannot run.
///
/// # Panics
///
/// If the server could not be started (see [`OidcProvider::start`]).
#[track_caller]
#[must_use]
pub fn require_oidc_provider(config: OidcProviderConfig) -> OidcProvider {
    match OidcProvider::start(config) {
        Ok(provider) => provider,
        Err(e) => panic!(
            "this test needs the oidc-provider test server (tests/oidc-provider), \
             but it could not be started: {e}\n\
             hint: it needs Node.js >= 18 (`node`) and, the first time, `npm` with access to \
             the npm registry; try `cd tests/oidc-provider && npm ci && node server.mjs`"
        ),
    }
}

/// `tests/oidc-provider` of this repository.
fn harness_dir() -> Result<PathBuf, String> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/oidc-provider");
    let dir = std::fs::canonicalize(&dir).map_err(|e| {
        format!(
            "the oidc-provider harness {} is missing: {e}",
            dir.display()
        )
    })?;
    if !dir.join("server.mjs").is_file() {
        return Err(format!("{} has no server.mjs", dir.display()));
    }
    Ok(dir)
}

/// Runs `npm ci --no-audit --no-fund` in `dir` unless `node_modules` already holds the
/// `oidc-provider` version that `package.json` pins. One install at a time: a mutex in this
/// process and a lock file (in the temporary directory) across processes.
fn ensure_node_modules(dir: &Path) -> Result<(), String> {
    static INSTALL: Mutex<()> = Mutex::new(());
    let wanted = pinned_version(dir)?;
    if installed_version(dir).as_deref() == Some(wanted.as_str()) {
        return Ok(());
    }
    let _guard = INSTALL.lock().unwrap_or_else(PoisonError::into_inner);
    let lock_path = std::env::temp_dir().join("tokenwarden-testkit-oidc-provider-npm-ci.lock");
    let lock = File::create(&lock_path).map_err(|e| {
        format!(
            "could not create the lock file {}: {e}",
            lock_path.display()
        )
    })?;
    lock.lock()
        .map_err(|e| format!("could not lock {}: {e}", lock_path.display()))?;
    if installed_version(dir).as_deref() == Some(wanted.as_str()) {
        return Ok(());
    }
    let npm = find_on_path("npm").ok_or_else(|| {
        format!(
            "{} has no node_modules with oidc-provider {wanted} and `npm` was not found on \
             PATH to install it",
            dir.display()
        )
    })?;
    let mut cmd = Command::new(npm);
    cmd.args(["ci", "--no-audit", "--no-fund"]).current_dir(dir);
    super::run(&mut cmd).map_err(|e| {
        format!(
            "installing the npm dependencies of {} failed: {e}",
            dir.display()
        )
    })?;
    match installed_version(dir) {
        Some(version) if version == wanted => Ok(()),
        other => Err(format!(
            "`npm ci` in {} succeeded but node_modules/oidc-provider is {other:?}, not {wanted}",
            dir.display()
        )),
    }
}

/// The `oidc-provider` version that `package.json` pins.
fn pinned_version(dir: &Path) -> Result<String, String> {
    let path = dir.join("package.json");
    let text = std::fs::read_to_string(&path)
        .map_err(|e| format!("could not read {}: {e}", path.display()))?;
    json_object(&text, "dependencies")
        .and_then(|deps| json_string(deps, "oidc-provider"))
        .ok_or_else(|| format!("{} has no dependency oidc-provider", path.display()))
}

/// The version of `node_modules/oidc-provider`, if installed.
fn installed_version(dir: &Path) -> Option<String> {
    let text = std::fs::read_to_string(dir.join("node_modules/oidc-provider/package.json")).ok()?;
    json_string(&text, "version")
}

fn find_on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| super::is_executable(candidate))
}

fn collect_stderr(pipe: impl Read, buffer: &Mutex<String>) {
    for line in BufReader::new(pipe).lines() {
        let Ok(line) = line else { break };
        let mut text = buffer.lock().unwrap_or_else(PoisonError::into_inner);
        text.push_str(&line);
        text.push('\n');
        if text.len() > STDERR_KEEP {
            let mut cut = text.len() - STDERR_KEEP;
            while !text.is_char_boundary(cut) {
                cut += 1;
            }
            text.drain(..cut);
        }
    }
}

/// The exit status of a process whose stdout just closed, waiting up to 5 s for it.
fn wait_briefly(child: &mut Child) -> String {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return status.to_string(),
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(50)),
            Ok(None) => return "still running, stdout closed".to_owned(),
            Err(e) => return format!("status unknown: {e}"),
        }
    }
}

/// An HTTP response: status, headers (names lower-cased) and body.
#[derive(Debug)]
struct HttpResponse {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl HttpResponse {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// The cookies a browser would keep for the test server (paths and expiry ignored, except
/// that an empty value deletes the cookie).
#[derive(Default)]
struct CookieJar(Vec<(String, String)>);

impl CookieJar {
    /// One request carrying the jar's cookies (a form body when given); keeps what it sets.
    fn request(
        &mut self,
        method: &str,
        url: &str,
        form: Option<&str>,
    ) -> Result<HttpResponse, String> {
        let cookie = self
            .0
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ");
        let body = form.map(|f| ("application/x-www-form-urlencoded", f.as_bytes()));
        let res = http_request_with(
            method,
            url,
            body,
            Some(cookie.as_str()).filter(|c| !c.is_empty()),
        )?;
        for (name, value) in &res.headers {
            if name != "set-cookie" {
                continue;
            }
            let pair = value.split(';').next().unwrap_or_default();
            let Some((k, v)) = pair.split_once('=') else {
                continue;
            };
            let (k, v) = (k.trim().to_owned(), v.trim().to_owned());
            self.0.retain(|(name, _)| *name != k);
            if !v.is_empty() {
                self.0.push((k, v));
            }
        }
        Ok(res)
    }
}

/// The `value` of `<input name="NAME" value="...">` in a page.
fn html_input_value(html: &str, name: &str) -> Option<String> {
    let at = html.find(&format!("name=\"{name}\""))?;
    let rest = &html[at..];
    let start = rest.find("value=\"")? + "value=\"".len();
    let end = rest[start..].find('"')?;
    Some(rest[start..start + end].to_owned())
}

fn form_encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// One HTTP/1.1 request to an `http://HOST:PORT/...` URL (the loopback test server), with
/// `Connection: close`; redirects are not followed. `body` is a content type and the bytes.
fn http_request(
    method: &str,
    url: &str,
    body: Option<(&str, &[u8])>,
) -> Result<HttpResponse, String> {
    http_request_with(method, url, body, None)
}

/// [`http_request`] with a `Cookie` header.
fn http_request_with(
    method: &str,
    url: &str,
    body: Option<(&str, &[u8])>,
    cookie: Option<&str>,
) -> Result<HttpResponse, String> {
    let what = format!("{method} {url}");
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| format!("{what}: only http:// URLs are supported"))?;
    let (authority, path) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, "/"),
    };
    let addr = std::net::ToSocketAddrs::to_socket_addrs(authority)
        .map_err(|e| format!("{what}: cannot resolve {authority}: {e}"))?
        .next()
        .ok_or_else(|| format!("{what}: {authority} resolves to no address"))?;
    let mut stream = TcpStream::connect_timeout(&addr, HTTP_TIMEOUT)
        .map_err(|e| format!("{what}: cannot connect: {e}"))?;
    stream
        .set_read_timeout(Some(HTTP_TIMEOUT))
        .and_then(|()| stream.set_write_timeout(Some(HTTP_TIMEOUT)))
        .map_err(|e| format!("{what}: {e}"))?;

    let mut request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\n\
         Accept: application/json\r\nUser-Agent: tokenwarden-testkit\r\n"
    );
    if let Some(cookie) = cookie {
        let _ = write!(request, "Cookie: {cookie}\r\n");
    }
    if let Some((content_type, bytes)) = body {
        let _ = write!(
            request,
            "Content-Type: {content_type}\r\nContent-Length: {}\r\n",
            bytes.len()
        );
    }
    request.push_str("\r\n");
    let mut bytes = request.into_bytes();
    if let Some((_, body)) = body {
        bytes.extend_from_slice(body);
    }
    stream
        .write_all(&bytes)
        .map_err(|e| format!("{what}: cannot send the request: {e}"))?;
    let mut raw = Vec::new();
    stream
        .read_to_end(&mut raw)
        .map_err(|e| format!("{what}: cannot read the response: {e}"))?;
    parse_http_response(&raw).map_err(|e| format!("{what}: {e}"))
}

fn parse_http_response(raw: &[u8]) -> Result<HttpResponse, String> {
    let head_end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| format!("incomplete response ({} bytes)", raw.len()))?;
    let head = String::from_utf8_lossy(&raw[..head_end]);
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("bad status line {status_line:?}"))?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|line| {
            let (name, value) = line.split_once(':')?;
            Some((name.trim().to_ascii_lowercase(), value.trim().to_owned()))
        })
        .collect();
    let payload = &raw[head_end + 4..];
    let chunked = headers
        .iter()
        .any(|(n, v)| n == "transfer-encoding" && v.eq_ignore_ascii_case("chunked"));
    let body = if chunked {
        dechunk(payload)?
    } else {
        payload.to_vec()
    };
    Ok(HttpResponse {
        status,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    })
}

fn dechunk(mut data: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    loop {
        let line_end = data
            .windows(2)
            .position(|w| w == b"\r\n")
            .ok_or("truncated chunked body")?;
        let size_text = String::from_utf8_lossy(&data[..line_end]);
        let size_text = size_text.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size_text, 16)
            .map_err(|_| format!("bad chunk size {size_text:?}"))?;
        data = &data[line_end + 2..];
        if size == 0 {
            return Ok(out);
        }
        if data.len() < size + 2 {
            return Err("truncated chunk".to_owned());
        }
        out.extend_from_slice(&data[..size]);
        data = &data[size + 2..];
    }
}

// Minimal JSON look-ups, enough for the known, flat documents of this server (discovery,
// READY line, stats, package.json): the first `"key":` found anywhere in the text is taken.

/// The text right after `"key":` (whitespace skipped).
fn json_value_start<'a>(json: &'a str, key: &str) -> Option<&'a str> {
    let needle = format!("\"{key}\"");
    let mut from = 0;
    while let Some(i) = json[from..].find(&needle) {
        let after = json[from + i + needle.len()..].trim_start();
        if let Some(value) = after.strip_prefix(':') {
            return Some(value.trim_start());
        }
        from += i + needle.len();
    }
    None
}

/// The string value of `"key"`, unescaped.
fn json_string(json: &str, key: &str) -> Option<String> {
    let value = json_value_start(json, key)?.strip_prefix('"')?;
    let mut out = String::new();
    let mut chars = value.chars();
    while let Some(c) = chars.next() {
        match c {
            '"' => return Some(out),
            '\\' => match chars.next()? {
                'n' => out.push('\n'),
                't' => out.push('\t'),
                'r' => out.push('\r'),
                'b' => out.push('\u{8}'),
                'f' => out.push('\u{c}'),
                'u' => {
                    let hex: String = chars.by_ref().take(4).collect();
                    out.push(char::from_u32(u32::from_str_radix(&hex, 16).ok()?)?);
                }
                other => out.push(other),
            },
            c => out.push(c),
        }
    }
    None
}

/// The unsigned integer value of `"key"`.
fn json_u64(json: &str, key: &str) -> Option<u64> {
    let value = json_value_start(json, key)?;
    let end = value
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(value.len());
    value[..end].parse().ok()
}

/// The object value of `"key"`, braces included (it may hold nested objects but no strings
/// with braces in them).
fn json_object<'a>(json: &'a str, key: &str) -> Option<&'a str> {
    let value = json_value_start(json, key)?;
    if !value.starts_with('{') {
        return None;
    }
    let mut depth = 0usize;
    for (i, c) in value.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => {
                depth -= 1;
                if depth == 0 {
                    return Some(&value[..=i]);
                }
            }
            _ => {}
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    fn config(rotate: bool, access_token_ttl_secs: u64) -> OidcProviderConfig {
        OidcProviderConfig {
            client_id: "tw-client".to_owned(),
            client_secret: "tw-secret with spaces & symbols".to_owned(),
            redirect_uri: "http://127.0.0.1:9/oauth/callback".to_owned(),
            access_token_ttl_secs,
            refresh_token_ttl_secs: 3600,
            rotate_refresh_tokens: rotate,
            private_key_jwt_jwks: None,
        }
    }

    fn get(url: &str) -> HttpResponse {
        http_request("GET", url, None).unwrap()
    }

    /// The query parameters of a URL, percent-decoded.
    fn query_of(url: &str) -> Vec<(String, String)> {
        let query = url.split_once('?').map(|(_, q)| q).unwrap_or_default();
        query
            .split('&')
            .filter(|p| !p.is_empty())
            .map(|pair| {
                let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
                (percent_decode(k), percent_decode(v))
            })
            .collect()
    }

    fn percent_decode(s: &str) -> String {
        let bytes = s.as_bytes();
        let mut out = Vec::new();
        let mut i = 0;
        while i < bytes.len() {
            match bytes[i] {
                b'%' if i + 2 < bytes.len() => {
                    let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap();
                    out.push(u8::from_str_radix(hex, 16).unwrap());
                    i += 3;
                }
                b'+' => {
                    out.push(b' ');
                    i += 1;
                }
                b => {
                    out.push(b);
                    i += 1;
                }
            }
        }
        String::from_utf8(out).unwrap()
    }

    fn param<'a>(params: &'a [(String, String)], name: &str) -> Option<&'a str> {
        params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// Runs `selftest.mjs` against `provider`; returns (success, stdout, stderr).
    fn run_selftest(provider: &OidcProvider) -> (bool, String, String) {
        let dir = harness_dir().unwrap();
        let node = find_on_path("node").unwrap();
        let config = provider.config();
        let output = Command::new(node)
            .arg("selftest.mjs")
            .current_dir(dir)
            .env("ISSUER", &provider.issuer)
            .env("CLIENT_ID", &config.client_id)
            .env("CLIENT_SECRET", &config.client_secret)
            .env("REDIRECT_URI", &config.redirect_uri)
            .env("ACCESS_TOKEN_TTL", config.access_token_ttl_secs.to_string())
            .env(
                "REFRESH_TOKEN_TTL",
                config.refresh_token_ttl_secs.to_string(),
            )
            .env(
                "ROTATE_REFRESH_TOKENS",
                config.rotate_refresh_tokens.to_string(),
            )
            .stdin(Stdio::null())
            .output()
            .unwrap();
        (
            output.status.success(),
            String::from_utf8_lossy(&output.stdout).into_owned(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    }

    /// Asserts the selftest passed exactly the `expected` checks; returns its stdout.
    fn assert_selftest(provider: &OidcProvider, expected: &[&str]) -> String {
        let (ok, stdout, stderr) = run_selftest(provider);
        let context = format!(
            "--- selftest stdout ---\n{stdout}\n--- selftest stderr ---\n{stderr}\n\
             --- server stderr ---\n{}",
            provider.stderr_output()
        );
        let passed: BTreeSet<&str> = stdout
            .lines()
            .filter_map(|l| l.strip_prefix("PASS "))
            .collect();
        let failed: Vec<&str> = stdout.lines().filter(|l| l.starts_with("FAIL ")).collect();
        assert!(
            failed.is_empty(),
            "selftest checks failed: {failed:?}\n{context}"
        );
        assert!(ok, "selftest exited with an error\n{context}");
        assert_eq!(
            passed,
            expected.iter().copied().collect::<BTreeSet<_>>(),
            "{context}"
        );
        let summary = format!("SELFTEST {} passed, 0 failed", expected.len());
        assert_eq!(stdout.lines().last(), Some(summary.as_str()), "{context}");
        stdout
    }

    const COMMON_CHECKS: &[&str] = &[
        "authorize_redirects_to_redirect_uri_with_code_state_iss",
        "authorize_with_a_cookie_jar",
        "code_exchange_with_pkce_and_basic_auth",
        "access_token_works_at_userinfo",
        "wrong_code_verifier_is_invalid_grant",
        "missing_code_verifier_is_refused",
        "authorization_without_pkce_is_refused",
        "authorization_with_plain_pkce_is_refused",
        "wrong_client_secret_is_invalid_client",
        "basic_client_cannot_use_client_secret_post",
        "post_client_cannot_use_client_secret_basic",
        "token_lifetimes_are_the_configured_ones",
        "code_reuse_is_invalid_grant_and_revokes_its_tokens",
        "post_client_flow",
        "scope_without_openid",
        "no_scope_is_access_denied",
        "resource_indicator",
        "revocation_endpoint_revokes_a_refresh_token",
        "revocation_endpoint_revokes_an_access_token",
        "test_revoke_knob_makes_refresh_fail",
        "stats_count_token_requests_by_grant_type",
    ];

    #[test]
    fn oidc_discovery_has_the_expected_endpoints() {
        let started = Instant::now();
        let provider = require_oidc_provider(config(true, 60));
        eprintln!(
            "oidc-provider started in {:?} at {}",
            started.elapsed(),
            provider.issuer
        );
        let issuer = format!("http://127.0.0.1:{}", provider.port);
        assert_eq!(provider.issuer, issuer);
        assert_eq!(provider.authorization_endpoint(), format!("{issuer}/auth"));
        assert_eq!(provider.token_endpoint(), format!("{issuer}/token"));
        assert_eq!(
            provider.revocation_endpoint(),
            format!("{issuer}/token/revocation")
        );
        assert_eq!(
            provider.introspection_endpoint(),
            format!("{issuer}/token/introspection")
        );
        assert_eq!(provider.userinfo_endpoint(), format!("{issuer}/me"));
        assert_eq!(provider.post_client_id(), "tw-client-post");

        let response = get(&format!("{issuer}/.well-known/openid-configuration"));
        assert_eq!(response.status, 200);
        assert!(
            response
                .header("content-type")
                .is_some_and(|t| t.starts_with("application/json")),
            "{response:?}"
        );
        let doc = response.body.replace(char::is_whitespace, "");
        for expected in [
            r#""authorization_response_iss_parameter_supported":true"#,
            r#""code_challenge_methods_supported":["S256"]"#,
            r#""response_types_supported":["code"]"#,
        ] {
            assert!(doc.contains(expected), "{expected} not in {doc}");
        }
        let grant_types = doc
            .split(r#""grant_types_supported":["#)
            .nth(1)
            .and_then(|rest| rest.split(']').next())
            .unwrap();
        assert!(grant_types.contains(r#""authorization_code""#), "{doc}");
        assert!(grant_types.contains(r#""refresh_token""#), "{doc}");
        let auth_methods = doc
            .split(r#""token_endpoint_auth_methods_supported":["#)
            .nth(1)
            .and_then(|rest| rest.split(']').next())
            .unwrap();
        assert!(auth_methods.contains(r#""client_secret_basic""#), "{doc}");
        assert!(auth_methods.contains(r#""client_secret_post""#), "{doc}");
    }

    #[test]
    fn oidc_authorization_without_pkce_is_refused_on_the_redirect_with_iss() {
        let provider = require_oidc_provider(config(true, 60));
        let cfg = provider.config();
        let url = format!(
            "{}?response_type=code&client_id={}&redirect_uri={}&scope=openid%20api%3Aread&state=s123",
            provider.authorization_endpoint(),
            cfg.client_id,
            "http%3A%2F%2F127.0.0.1%3A9%2Foauth%2Fcallback",
        );
        let response = get(&url);
        assert!(
            matches!(response.status, 302 | 303),
            "expected a redirect: {response:?}"
        );
        let location = response.header("location").unwrap();
        assert!(location.starts_with(&cfg.redirect_uri), "{location}");
        let params = query_of(location);
        assert_eq!(
            param(&params, "error"),
            Some("invalid_request"),
            "{location}"
        );
        assert_eq!(param(&params, "state"), Some("s123"), "{location}");
        assert_eq!(
            param(&params, "iss"),
            Some(provider.issuer.as_str()),
            "{location}"
        );
        assert_eq!(param(&params, "code"), None, "{location}");

        // An unknown redirect URI is never redirected to.
        let bad = url.replace("%2Foauth%2Fcallback", "%2Fevil");
        let response = get(&bad);
        assert_eq!(response.status, 400, "{response:?}");
        assert!(response.header("location").is_none(), "{response:?}");
        assert!(response.body.contains("redirect_uri"), "{response:?}");
    }

    #[test]
    fn oidc_full_flow_with_rotation_and_short_access_tokens() {
        let provider = require_oidc_provider(config(true, 2));
        let mut expected = COMMON_CHECKS.to_vec();
        expected.extend([
            "refresh_rotates_the_refresh_token",
            "refresh_again_rotates_again",
            "reusing_a_rotated_refresh_token_is_invalid_grant",
            "reuse_revokes_the_whole_chain",
            "access_token_expires_after_its_ttl",
        ]);
        let stdout = assert_selftest(&provider, &expected);
        for line in stdout.lines().filter(|l| l.starts_with("RESPONSE ")) {
            eprintln!("{line}");
        }
        assert!(
            stdout.contains(r#"RESPONSE code_exchange {"access_token":"#),
            "{stdout}"
        );
        assert!(
            stdout.contains(r#"RESPONSE refresh {"access_token":"#),
            "{stdout}"
        );

        // The counters the selftest left, as a tokenwarden test would read them.
        assert!(provider.token_requests("authorization_code").unwrap() >= 10);
        assert!(provider.token_requests("refresh_token").unwrap() >= 10);
        assert_eq!(provider.token_requests("password").unwrap(), 0);
        let stats = provider.stats().unwrap();
        assert!(stats.contains(r#""invalid_grant":"#), "{stats}");
        assert!(stats.contains(r#""test_revocations":1"#), "{stats}");
    }

    #[test]
    fn oidc_full_flow_without_rotation() {
        let provider = require_oidc_provider(config(false, 60));
        let mut expected = COMMON_CHECKS.to_vec();
        expected.push("refresh_keeps_the_refresh_token");
        assert_selftest(&provider, &expected);
    }

    #[test]
    fn oidc_revoke_all_and_stats_from_rust() {
        let provider = require_oidc_provider(config(true, 60));
        assert_eq!(provider.token_requests("refresh_token").unwrap(), 0);
        let stats = provider.stats().unwrap();
        assert!(stats.contains(r#""test_revocations":0"#), "{stats}");
        let revoked = provider.revoke_all().unwrap();
        assert!(revoked.contains(r#""Grant":0"#), "{revoked}");
        assert!(revoked.contains(r#""RefreshToken":0"#), "{revoked}");
        let stats = provider.stats().unwrap();
        assert!(stats.contains(r#""test_revocations":1"#), "{stats}");

        // A token request, failing client authentication, is counted by grant type.
        let response = http_request(
            "POST",
            &provider.token_endpoint(),
            Some((
                "application/x-www-form-urlencoded",
                b"grant_type=refresh_token&refresh_token=nope&client_id=tw-client&client_secret=wrong",
            )),
        )
        .unwrap();
        assert_eq!(response.status, 401, "{response:?}");
        assert!(response.body.contains("invalid_client"), "{response:?}");
        assert_eq!(provider.token_requests("refresh_token").unwrap(), 1);
    }

    #[test]
    fn oidc_providers_run_side_by_side_and_die_on_drop() {
        let a = require_oidc_provider(config(true, 60));
        let b = require_oidc_provider(config(true, 60));
        assert_ne!(a.port, b.port);
        let pid = a.pid();
        assert!(Path::new(&format!("/proc/{pid}")).exists());
        let a_discovery = format!("{}/.well-known/openid-configuration", a.issuer);
        drop(a);
        assert!(
            !Path::new(&format!("/proc/{pid}")).exists(),
            "process {pid} still exists after drop"
        );
        assert!(http_request("GET", &a_discovery, None).is_err());
        assert_eq!(
            get(&format!("{}/.well-known/openid-configuration", b.issuer)).status,
            200
        );
    }

    #[test]
    fn oidc_server_exits_when_its_stdin_closes() {
        let mut provider = require_oidc_provider(config(true, 60));
        drop(provider.stdin.take());
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = provider.child.try_wait().unwrap() {
                assert!(status.success(), "{status}");
                break;
            }
            assert!(
                Instant::now() < deadline,
                "still running 10 s after stdin closed"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    #[test]
    fn oidc_bad_config_fails_with_a_clear_message() {
        let mut bad = config(true, 60);
        bad.redirect_uri = "not a url".to_owned();
        let err = OidcProvider::start(bad).unwrap_err();
        assert!(err.contains("server.mjs"), "{err}");
        assert!(err.contains("exited before it was ready"), "{err}");
        assert!(
            err.contains("REDIRECT_URI must be an absolute URL"),
            "{err}"
        );

        let mut zero = config(true, 60);
        zero.access_token_ttl_secs = 0;
        let err = OidcProvider::start(zero).unwrap_err();
        assert!(
            err.contains("ACCESS_TOKEN_TTL must be an integer >= 1"),
            "{err}"
        );
    }

    #[test]
    fn oidc_json_lookups() {
        let doc = r#"{"issuer": "http://127.0.0.1:1", "port":123, "esc":"a\"b\\c\u00e9\/",
            "nested": {"a": {"b": 1}, "c": 2}, "n":"x"}"#;
        assert_eq!(
            json_string(doc, "issuer").as_deref(),
            Some("http://127.0.0.1:1")
        );
        assert_eq!(json_string(doc, "esc").as_deref(), Some("a\"b\\cé/"));
        assert_eq!(json_u64(doc, "port"), Some(123));
        assert_eq!(json_u64(doc, "issuer"), None);
        assert_eq!(json_string(doc, "missing"), None);
        assert_eq!(
            json_object(doc, "nested"),
            Some(r#"{"a": {"b": 1}, "c": 2}"#)
        );
        assert_eq!(json_u64(json_object(doc, "nested").unwrap(), "c"), Some(2));
        // A key that appears as a value first is skipped.
        assert_eq!(
            json_string(r#"{"a":"n","n":"y"}"#, "n").as_deref(),
            Some("y")
        );
    }

    #[test]
    fn oidc_http_responses_are_parsed() {
        let raw = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nWiki\r\n5;x=y\r\npedia\r\n0\r\n\r\n";
        let response = parse_http_response(raw).unwrap();
        assert_eq!(response.status, 200);
        assert_eq!(response.header("content-type"), Some("text/plain"));
        assert_eq!(response.body, "Wikipedia");
        let raw = b"HTTP/1.1 303 See Other\r\nLocation: /x\r\nContent-Length: 0\r\n\r\n";
        let response = parse_http_response(raw).unwrap();
        assert_eq!(
            (response.status, response.header("location")),
            (303, Some("/x"))
        );
        assert!(parse_http_response(b"HTTP/1.1 200 OK\r\n").is_err());
        assert!(dechunk(b"5\r\nab").is_err());
    }
}
