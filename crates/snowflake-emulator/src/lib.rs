//! A small, faithful stand-in for Snowflake's OAuth for custom clients, its SQL worksheet
//! and its SQL API, for tokenwarden's tests and demo. See the crate README for the HTTP
//! surface and what differs from real Snowflake.

mod api;
#[cfg(feature = "client")]
mod client;
mod clock;
mod console;
mod control;
mod html;
mod keypair;
mod oauth;
mod random;
mod sql;
mod state;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use serde::{Deserialize, Serialize};

#[cfg(feature = "client")]
pub use client::{AuthorizeOutcome, sign_in_and_consent, sign_in_and_decide};
pub use keypair::JwtRefusal;
pub use sql::{Column, ResultSet, SqlError, SqlOutcome, StatementRun};
pub use state::{ClientType, Counters, IntegrationInfo};

/// A Snowflake user the emulator knows. Login names are case-insensitive (stored upper-case);
/// the user is granted `default_role` and PUBLIC (and, with ACCOUNTADMIN, the system roles
/// below it: SECURITYADMIN, USERADMIN, SYSADMIN).
#[derive(Clone, PartialEq, Eq)]
pub struct UserSpec {
    pub name: String,
    pub password: String,
    pub default_role: String,
}

impl UserSpec {
    pub fn new(
        name: impl Into<String>,
        password: impl Into<String>,
        default_role: impl Into<String>,
    ) -> Self {
        UserSpec {
            name: name.into(),
            password: password.into(),
            default_role: default_role.into(),
        }
    }
}

impl std::fmt::Debug for UserSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserSpec")
            .field("name", &self.name)
            .field("password", &"[redacted]")
            .field("default_role", &self.default_role)
            .finish()
    }
}

#[derive(Debug, Clone)]
pub struct EmulatorConfig {
    pub users: Vec<UserSpec>,
    /// Access-token lifetime when the integration sets no OAUTH_ACCESS_TOKEN_VALIDITY (600 s).
    pub access_token_ttl: Duration,
    /// Shown in pages and returned by CURRENT_ACCOUNT().
    pub account: String,
    /// Upper bound for OAUTH_REFRESH_TOKEN_VALIDITY: 7776000 (90 days) unless "Snowflake
    /// Support raised the limit" (e.g. 157784630, 5 years).
    pub max_refresh_token_validity: u64,
}

impl EmulatorConfig {
    /// ADMIN / admin-pass (ACCOUNTADMIN) and ALICE / alice-pass (ANALYST, also PUBLIC).
    pub fn default_for_tests() -> Self {
        EmulatorConfig {
            users: vec![
                UserSpec::new("ADMIN", "admin-pass", "ACCOUNTADMIN"),
                UserSpec::new("ALICE", "alice-pass", "ANALYST"),
            ],
            access_token_ttl: Duration::from_secs(600),
            account: "EMU12345".to_string(),
            max_refresh_token_validity: state::DEFAULT_REFRESH_VALIDITY,
        }
    }
}

impl Default for EmulatorConfig {
    fn default() -> Self {
        EmulatorConfig::default_for_tests()
    }
}

/// A failure injected into the next calls of `POST /oauth/token-request`. A faulted call
/// consumes nothing (no code, no refresh token).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Fault {
    /// HTTP 503 with an HTML body.
    ServerError,
    /// Sleeps 30 s, then answers 504 with an HTML body (the client should have given up).
    Timeout,
    /// HTTP 200, `Content-Type: application/json`, a body that is not JSON.
    Garbage,
    /// HTTP 200 JSON without `access_token`.
    MissingAccessToken,
}

/// Where [`Emulator::hold_next_refresh`] holds the next refresh-token grant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HoldPoint {
    /// Before the grant is looked at: nothing has happened at the provider yet.
    BeforeGrant,
    /// After the grant was made (tokens issued, a single-use refresh token consumed, counted in
    /// the stats), before the answer is sent.
    AfterGrant,
}

/// The emulator's side of a hold.
pub(crate) struct ArmedHold {
    pub point: HoldPoint,
    pub held: tokio::sync::oneshot::Sender<()>,
    /// `true`: go on; `false`: the request is lost before the provider looks at it.
    pub release: tokio::sync::oneshot::Receiver<bool>,
}

/// The test's side of [`Emulator::hold_next_refresh`]: wait until a refresh is held, then
/// release it (dropping the handle releases it too).
#[derive(Debug)]
pub struct RefreshHold {
    held: Option<tokio::sync::oneshot::Receiver<()>>,
    release: Option<tokio::sync::oneshot::Sender<bool>>,
}

impl RefreshHold {
    /// Waits until a refresh-token request arrived and is held at the chosen point.
    ///
    /// # Panics
    ///
    /// If the emulator dropped the hold without holding anything (e.g. a new hold replaced it).
    pub async fn held(&mut self) {
        if let Some(rx) = self.held.take() {
            rx.await
                .expect("the hold was replaced before any refresh came");
        }
    }

    /// Lets the held refresh go on (its answer goes to whoever still waits for it).
    pub fn release(mut self) {
        if let Some(tx) = self.release.take() {
            let _ = tx.send(true);
        }
    }

    /// As if the request never reached the provider: one held at [`HoldPoint::BeforeGrant`] is
    /// answered 503 without being looked at (nothing granted, nothing consumed, not counted as
    /// a grant). At [`HoldPoint::AfterGrant`] it is too late for that: the same as `release`.
    pub fn lose(mut self) {
        if let Some(tx) = self.release.take() {
            let _ = tx.send(false);
        }
    }
}

/// What [`Emulator::stats`] reports.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Stats {
    #[serde(flatten)]
    pub counters: Counters,
    pub integrations: Vec<IntegrationInfo>,
    /// Seconds the emulator's clock is ahead of real time.
    pub clock_offset_seconds: i64,
    /// The fault still armed, with the number of calls left.
    pub pending_fault: Option<(Fault, u32)>,
}

/// An integration's client credentials, as SYSTEM$SHOW_OAUTH_CLIENT_SECRETS shows them.
#[derive(Clone, PartialEq, Eq)]
pub struct ClientCredentials {
    pub client_id: String,
    pub client_secret: String,
    pub client_secret_2: String,
}

impl std::fmt::Debug for ClientCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientCredentials")
            .field("client_id", &self.client_id)
            .field("client_secret", &"[redacted]")
            .field("client_secret_2", &"[redacted]")
            .finish()
    }
}

/// The emulated account. Cheap to clone: every clone shares the same state.
#[derive(Clone)]
pub struct Emulator {
    inner: Arc<Mutex<state::Inner>>,
}

impl std::fmt::Debug for Emulator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Emulator")
            .field("account", &self.lock().account)
            .finish_non_exhaustive()
    }
}

impl Emulator {
    pub fn new(config: EmulatorConfig) -> Self {
        Emulator {
            inner: Arc::new(Mutex::new(state::Inner::new(&config))),
        }
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, state::Inner> {
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// All routes: worksheet, OAuth, SQL API and `/_emulator/` controls, at the root.
    pub fn router(&self) -> axum::Router {
        axum::Router::new()
            .merge(console::routes())
            .merge(oauth::routes())
            .merge(api::routes())
            .merge(control::routes())
            .with_state(self.clone())
    }

    /// Binds `listen` (e.g. `"127.0.0.1:0"`) and serves [`Emulator::router`] in a tokio task.
    pub async fn start(config: EmulatorConfig, listen: &str) -> std::io::Result<RunningEmulator> {
        let listener = tokio::net::TcpListener::bind(listen).await?;
        let addr = listener.local_addr()?;
        let emulator = Emulator::new(config);
        emulator.set_base_url(format!("http://{addr}"));
        let app = emulator.router();
        let handle = tokio::spawn(async move {
            if let Err(err) = axum::serve(listener, app).await {
                tracing::error!(%err, "snowflake emulator stopped");
            }
        });
        Ok(RunningEmulator {
            addr,
            emulator,
            handle,
        })
    }

    /// The base URL shown by DESC INTEGRATION's endpoints (set by [`Emulator::start`]).
    pub fn set_base_url(&self, base_url: impl Into<String>) {
        self.lock().base_url = Some(base_url.into().trim_end_matches('/').to_string());
    }

    /// The emulator's "now" becomes real now + `offset` (expire tokens without waiting).
    pub fn set_clock_offset(&self, offset: chrono::Duration) {
        self.lock().clock_offset = offset;
    }

    /// The emulator's current time (real time plus the offset).
    pub fn now(&self) -> chrono::DateTime<chrono::Utc> {
        self.lock().now()
    }

    /// The next `times` calls of `POST /oauth/token-request` fail with `fault`
    /// (replaces any fault still armed; `times == 0` disarms).
    pub fn inject_token_fault(&self, fault: Fault, times: u32) {
        self.lock().fault = (times > 0).then_some((fault, times));
    }

    /// Every `POST /oauth/token-request` waits `latency` before it is handled, as a provider
    /// 100-300 ms away does (zero: answered at once).
    pub fn set_token_latency(&self, latency: std::time::Duration) {
        self.lock().token_latency = latency;
    }

    /// The most token requests that were in flight at once since the last
    /// [`Emulator::reset_token_concurrency`] (or since start).
    pub fn max_token_requests_in_flight(&self) -> u32 {
        self.lock().token_requests_in_flight_max
    }

    /// How many refresh-token grant requests presented each refresh token (whatever the
    /// answer): a client that refreshes a token twice shows up here.
    pub fn refresh_requests_by_token(&self) -> std::collections::HashMap<String, u32> {
        self.lock().refresh_requests_by_token.clone()
    }

    /// Starts counting [`Emulator::max_token_requests_in_flight`] afresh.
    pub fn reset_token_concurrency(&self) {
        let mut inner = self.lock();
        inner.token_requests_in_flight_max = inner.token_requests_in_flight;
    }

    /// The next refresh-token grant (`grant_type=refresh_token`) waits at `point` until the
    /// returned handle is released or dropped: a test can act (kill the client, say) at a known
    /// moment of the exchange. Replaces a hold armed before.
    pub fn hold_next_refresh(&self, point: HoldPoint) -> RefreshHold {
        let (held_tx, held_rx) = tokio::sync::oneshot::channel();
        let (release_tx, release_rx) = tokio::sync::oneshot::channel();
        self.lock().refresh_hold = Some(ArmedHold {
            point,
            held: held_tx,
            release: release_rx,
        });
        RefreshHold {
            held: Some(held_rx),
            release: Some(release_tx),
        }
    }

    /// As `ALTER USER <user> REMOVE DELEGATED AUTHORIZATIONS FROM SECURITY INTEGRATION
    /// <integration>`: every refresh and access token of that user and integration stops
    /// working. Unquoted-identifier rules apply to both names (an exact match is tried first).
    pub fn revoke_delegated_authorizations(&self, user: &str, integration: &str) {
        let mut inner = self.lock();
        let user = user.to_ascii_uppercase();
        let name = if inner.integrations.contains_key(integration) {
            integration.to_string()
        } else {
            integration.to_ascii_uppercase()
        };
        inner.revoke(&user, &name);
    }

    pub fn stats(&self) -> Stats {
        let inner = self.lock();
        Stats {
            counters: inner.counters.clone(),
            integrations: inner.integrations.values().map(|i| i.info()).collect(),
            clock_offset_seconds: inner.clock_offset.num_seconds(),
            pending_fault: inner.fault,
        }
    }

    /// Client id and both secrets of integration `name` (exact name), like
    /// `SELECT SYSTEM$SHOW_OAUTH_CLIENT_SECRETS('<name>')` but already parsed.
    pub fn client_credentials(&self, name: &str) -> Option<ClientCredentials> {
        let inner = self.lock();
        inner.integrations.get(name).map(|i| ClientCredentials {
            client_id: i.client_id.clone(),
            client_secret: i.secret.clone(),
            client_secret_2: i.secret_2.clone(),
        })
    }

    /// Every access token and every refresh token issued so far (sorted), for tests that look
    /// for them where they must not be (logs, pages, database files).
    pub fn issued_tokens(&self) -> (Vec<String>, Vec<String>) {
        let inner = self.lock();
        let mut access: Vec<String> = inner.access_tokens.keys().cloned().collect();
        let mut refresh: Vec<String> = inner.refresh_tokens.keys().cloned().collect();
        access.sort();
        refresh.sort();
        (access, refresh)
    }

    /// Runs `sql` as `user` with their default role, as the worksheet does. With several
    /// `;`-separated statements, all run and the first error (or else the last result) is
    /// returned; see [`Emulator::run_script_as`] for every result.
    pub fn run_sql_as(&self, user: &str, sql: &str) -> SqlOutcome {
        let runs = self.run_script_as(user, sql);
        if let Some(err) = runs.iter().find(|r| !r.outcome.is_ok()) {
            return err.outcome.clone();
        }
        runs.into_iter()
            .last()
            .map(|r| r.outcome)
            .unwrap_or_else(|| SqlOutcome::Error(SqlError::syntax("Empty SQL statement.")))
    }

    /// Runs every `;`-separated statement of `sql` as `user` (default role) and returns each result.
    pub fn run_script_as(&self, user: &str, sql: &str) -> Vec<StatementRun> {
        let mut inner = self.lock();
        let user = user.to_ascii_uppercase();
        let Some(role) = inner.users.get(&user).map(|u| u.default_role.clone()) else {
            return vec![StatementRun {
                sql: sql.to_string(),
                outcome: SqlOutcome::Error(SqlError::new(
                    "390100",
                    "08004",
                    "Incorrect username or password was specified.",
                )),
            }];
        };
        let mut session = sql::SqlSession { user, role };
        sql::execute_script(&mut inner, &mut session, sql)
    }
}

/// A started emulator. The server runs until [`RunningEmulator::shutdown`] or the end of
/// the tokio runtime; dropping this handle does not stop it.
#[derive(Debug)]
pub struct RunningEmulator {
    pub addr: SocketAddr,
    pub emulator: Emulator,
    handle: tokio::task::JoinHandle<()>,
}

impl RunningEmulator {
    /// `http://127.0.0.1:PORT`: what tokenwarden uses as the Snowflake "account" URL.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops serving (connections in flight are dropped).
    pub fn shutdown(&self) {
        self.handle.abort();
    }
}
