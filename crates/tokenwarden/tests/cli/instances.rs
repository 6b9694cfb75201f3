//! Three `tokenwarden serve` processes on one PostgreSQL database, in front of the Snowflake
//! emulator (in this process): fifty concurrent reads of an expired token refresh it once (R8),
//! kill -9 of an instance at a chosen moment of a refresh loses no token (R12, R40), and
//! restarting every instance loses no app state and no token (R40), and the background passes
//! of three instances split many due refreshes between them, each token refreshed once (issue 10).
//!
//! Nothing here depends on timing: every instance runs with its background passes off
//! (`TOKENWARDEN_ENGINE_INTERVAL=off`), so the only refreshes are those the test's reads cause;
//! each instance binds a port of the system's choosing and says which; the kills happen while the
//! emulator holds a refresh at a chosen point (`Emulator::hold_next_refresh`). Waits are for
//! events (an answer, an expiry, a lease running out), with generous ceilings only as guards.
//!
//! Every instance shares the database, the master key, the admin token and the public URL (a
//! load balancer's, in front of all of them; the test delivers the provider's redirect to
//! instance 1); each has its own data folder.

use crate::{ADMIN, Server, cmd, spawn_listening};
use serde_json::{Value, json};
use snowflake_emulator::{Emulator, EmulatorConfig, HoldPoint, RunningEmulator};
use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokenwarden_domain::{Clock, SystemClock, Timestamp};

pub(crate) const MASTER_KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
pub(crate) const TOKEN: &str = "snowflake-sales";
pub(crate) const APP: &str = "sales-invoice";
/// The public URL: a load balancer in front of the instances (never contacted by the tests).
const PUBLIC_URL: &str = "https://tokenwarden.example.test";
/// How long a refresh lease lasts (tokenwarden-server's grant module): the wait before another
/// instance may take over a lease a killed one held.
const LEASE: Duration = Duration::from_secs(30);

/// These tests run one at a time: each starts three servers and a PostgreSQL-backed fleet, and
/// two cores are better spent on one fleet at a time.
pub(crate) static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// One instance: its data folder survives restarts (its port does not: each start binds a new
/// one). Dropping it kills the process.
pub(crate) struct Node {
    pub(crate) dir: tempfile::TempDir,
    pub(crate) server: Option<Server>,
    /// The base URL of the running process, shared with readers (a restart changes it); `None`
    /// while it is down.
    base: Arc<Mutex<Option<String>>>,
}

impl Node {
    pub(crate) fn log(&self) -> std::path::PathBuf {
        self.dir.path().join("serve.log")
    }

    pub(crate) fn base(&self) -> String {
        self.base
            .lock()
            .unwrap()
            .clone()
            .expect("the instance runs")
    }

    pub(crate) fn start(&mut self, env: &[(String, String)]) {
        assert!(self.server.is_none(), "the instance already runs");
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let mut c = cmd(self.dir.path(), &env);
        c.arg("serve").stdout(std::process::Stdio::null());
        let server = spawn_listening(c, &self.log());
        *self.base.lock().unwrap() = Some(server.base.clone());
        self.server = Some(server);
    }

    /// SIGKILL (as `kill -9`, sent directly): no shutdown code runs. Returns what it logged.
    pub(crate) fn kill9(&mut self) -> String {
        *self.base.lock().unwrap() = None;
        let mut server = self.server.take().expect("the instance runs");
        server.child.kill().unwrap();
        let exit = server.reap();
        assert_eq!(
            std::os::unix::process::ExitStatusExt::signal(&exit),
            Some(9),
            "{exit}"
        );
        std::fs::read_to_string(&server.log).unwrap_or_default()
    }

    /// SIGTERM, waiting for the graceful shutdown. Returns what it logged.
    fn stop(&mut self) -> String {
        *self.base.lock().unwrap() = None;
        self.server.take().expect("the instance runs").stop()
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if let Some(mut server) = self.server.take() {
            let _ = server.child.kill();
            server.reap();
        }
        if std::thread::panicking() {
            let log = std::fs::read_to_string(self.log()).unwrap_or_default();
            let lines: Vec<&str> = log.lines().collect();
            eprintln!(
                "--- instance in {} (last 40 lines of its log) ---\n{}",
                self.dir.path().display(),
                lines[lines.len().saturating_sub(40)..].join("\n")
            );
        }
    }
}

/// One answer of `GET /api/v1/access-tokens/{name}`.
#[derive(Debug, Clone)]
pub(crate) struct Read {
    /// Which instance answered (shown when an assertion fails).
    #[allow(dead_code)]
    node: usize,
    pub(crate) status: u16,
    pub(crate) retry_after: Option<String>,
    pub(crate) body: Value,
}

impl Read {
    pub(crate) fn token(&self) -> Option<&str> {
        self.body["access_token"].as_str()
    }

    pub(crate) fn code(&self) -> &str {
        self.body["code"].as_str().unwrap_or("")
    }
}

pub(crate) async fn read_token(
    http: &reqwest::Client,
    node: usize,
    base: &str,
    bearer: &str,
    query: &str,
) -> Result<Read, reqwest::Error> {
    let res = http
        .get(format!("{base}/api/v1/access-tokens/{TOKEN}{query}"))
        .bearer_auth(bearer)
        .send()
        .await?;
    let status = res.status().as_u16();
    let retry_after = res
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let text = res.text().await?;
    Ok(Read {
        node,
        status,
        retry_after,
        body: serde_json::from_str(&text).unwrap_or(Value::String(text)),
    })
}

pub(crate) fn parse_time(v: &Value) -> Timestamp {
    let s = v.as_str().unwrap_or_else(|| panic!("not a time: {v}"));
    chrono::DateTime::parse_from_rfc3339(s)
        .unwrap()
        .with_timezone(&chrono::Utc)
}

/// Three instances, an app using the token, and the token authorized through the emulator.
pub(crate) struct Fleet {
    pub(crate) emu: RunningEmulator,
    pub(crate) env: Vec<(String, String)>,
    pub(crate) nodes: Vec<Node>,
    pub(crate) http: reqwest::Client,
    pub(crate) api_key: String,
    pub(crate) token_id: String,
}

impl Fleet {
    /// Starts the emulator (access tokens live `ttl_seconds`), three instances on a fresh
    /// database, creates the app and the global token, runs the setup SQL, pastes the secrets
    /// (with single-use refresh tokens switched on first when asked), and signs in as ALICE.
    async fn start(ttl_seconds: u64, single_use_refresh_tokens: bool) -> Fleet {
        let db = tokenwarden_testkit::require_postgres().url;
        Fleet::start_on(Some(db), 3, ttl_seconds, single_use_refresh_tokens).await
    }

    /// As [`Fleet::start`], with `instances` instances on database `db` (`None`: SQLite in the
    /// first instance's data folder, for one instance).
    pub(crate) async fn start_on(
        db: Option<String>,
        instances: usize,
        ttl_seconds: u64,
        single_use_refresh_tokens: bool,
    ) -> Fleet {
        Fleet::start_with(db, instances, ttl_seconds, single_use_refresh_tokens, &[]).await
    }

    /// As [`Fleet::start_on`], with more settings (`extra` replaces the defaults above it,
    /// e.g. `TOKENWARDEN_ENGINE_INTERVAL`).
    pub(crate) async fn start_with(
        db: Option<String>,
        instances: usize,
        ttl_seconds: u64,
        single_use_refresh_tokens: bool,
        extra: &[(&str, &str)],
    ) -> Fleet {
        tokenwarden_oauth::client::install_crypto_provider();
        let emu = Emulator::start(
            EmulatorConfig {
                access_token_ttl: Duration::from_secs(ttl_seconds),
                ..EmulatorConfig::default_for_tests()
            },
            "127.0.0.1:0",
        )
        .await
        .unwrap();
        let env: Vec<(String, String)> = db
            .map(|db| ("TOKENWARDEN_DATABASE_URL", db))
            .into_iter()
            .chain([
                ("TOKENWARDEN_MASTER_KEY", MASTER_KEY.to_owned()),
                ("TOKENWARDEN_ADMIN_TOKEN", ADMIN.to_owned()),
                ("TOKENWARDEN_PUBLIC_URL", PUBLIC_URL.to_owned()),
                ("TOKENWARDEN_ENGINE_INTERVAL", "off".to_owned()),
            ])
            .filter(|(k, _)| !extra.iter().any(|(e, _)| e == k))
            .chain(extra.iter().map(|(k, v)| (*k, (*v).to_owned())))
            .map(|(k, v)| (k.to_owned(), v))
            .collect();
        let mut nodes: Vec<Node> = (0..instances)
            .map(|_| Node {
                dir: tempfile::tempdir().unwrap(),
                server: None,
                base: Arc::new(Mutex::new(None)),
            })
            .collect();
        for node in &mut nodes {
            node.start(&env);
        }
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(60))
            .build()
            .unwrap();
        let mut fleet = Fleet {
            emu,
            env,
            nodes,
            http,
            api_key: String::new(),
            token_id: String::new(),
        };
        fleet.authorize(single_use_refresh_tokens).await;
        fleet
    }

    async fn authorize(&mut self, single_use_refresh_tokens: bool) {
        let emu = self.emu.emulator.clone();
        let (s, app) = self
            .admin(
                0,
                "POST",
                "/api/v1/apps",
                Some(json!({"name": APP, "tokens": [TOKEN]})),
            )
            .await;
        assert_eq!(s, 201, "{app}");
        self.api_key = app["api_key"].as_str().unwrap().to_owned();
        let (s, tok) = self
            .admin(
                1,
                "POST",
                "/api/v1/tokens",
                Some(json!({"name": TOKEN, "provider": "snowflake",
                            "settings": {"account": self.emu.base_url(), "role": "ANALYST"}})),
            )
            .await;
        assert_eq!(s, 201, "{tok}");
        self.token_id = tok["id"].as_str().unwrap().to_owned();
        let id = self.token_id.clone();

        let (s, setup) = self
            .admin(2, "GET", &format!("/api/v1/tokens/{id}/setup"), None)
            .await;
        assert_eq!(s, 200, "{setup}");
        let runs = emu.run_script_as("ADMIN", setup["snowflake"]["sql"].as_str().unwrap());
        assert_eq!(runs.len(), 2, "{runs:?}");
        assert!(runs[0].outcome.is_ok(), "{:?}", runs[0].outcome);
        let cell = runs[1].outcome.first_value().unwrap().to_owned();
        if single_use_refresh_tokens {
            let name = emu.stats().integrations[0].name.clone();
            let out = emu.run_sql_as(
                "ADMIN",
                &format!(
                    "ALTER SECURITY INTEGRATION {name} SET OAUTH_SINGLE_USE_REFRESH_TOKENS_REQUIRED = TRUE"
                ),
            );
            assert!(out.is_ok(), "{out:?}");
            assert!(emu.stats().integrations[0].single_use_refresh_tokens_required);
        }
        let res = self
            .http
            .post(format!(
                "{}/api/v1/tokens/{id}/client-secrets",
                self.nodes[0].base()
            ))
            .bearer_auth(ADMIN)
            .header("content-type", "text/plain")
            .body(cell)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status().as_u16(), 200, "{}", res.text().await.unwrap());

        // Started on instance 2; the provider sends the browser to instance 1 (the public URL).
        let (s, a) = self
            .admin(1, "POST", &format!("/api/v1/tokens/{id}/authorize"), None)
            .await;
        assert_eq!(s, 200, "{a}");
        let callback = snowflake_emulator::sign_in_and_consent(
            &self.http,
            a["authorization_url"].as_str().unwrap(),
            "ALICE",
            "alice-pass",
        )
        .await
        .unwrap();
        // The provider sends the browser to the public URL; the load balancer passes it to
        // instance 1.
        let query = callback
            .strip_prefix(&format!("{PUBLIC_URL}/oauth/callback?"))
            .unwrap_or_else(|| panic!("not to the public URL: {callback}"));
        let res = self
            .http
            .get(format!("{}/oauth/callback?{query}", self.nodes[0].base()))
            .send()
            .await
            .unwrap();
        let status = res.status().as_u16();
        let page = res.text().await.unwrap();
        assert_eq!(status, 200, "{page}");
        assert!(page.contains("Token obtained"), "{page}");
        let view = self.token_view(2).await;
        assert_eq!(view["status"], "healthy", "{view}");
    }

    pub(crate) async fn admin(
        &self,
        node: usize,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut req = self
            .http
            .request(
                method.parse().unwrap(),
                // With fewer instances, instance `node` is one of them.
                format!("{}{path}", self.nodes[node % self.nodes.len()].base()),
            )
            .bearer_auth(ADMIN);
        if let Some(body) = body {
            req = req.json(&body);
        }
        let res = req.send().await.unwrap();
        let status = res.status().as_u16();
        let text = res.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    pub(crate) async fn token_view(&self, node: usize) -> Value {
        let (s, view) = self
            .admin(
                node,
                "GET",
                &format!("/api/v1/tokens/{}", self.token_id),
                None,
            )
            .await;
        assert_eq!(s, 200, "the token must never be deleted: {view}");
        view
    }

    /// The app reads the token from instance `node`.
    pub(crate) async fn app_read(&self, node: usize, query: &str) -> Read {
        read_token(
            &self.http,
            node,
            &self.nodes[node % self.nodes.len()].base(),
            &self.api_key,
            query,
        )
        .await
        .unwrap()
    }

    /// Runs `SELECT CURRENT_USER()` with `token` through the emulator's SQL API: does Snowflake
    /// accept it?
    pub(crate) async fn snowflake_accepts(&self, token: &str) -> (bool, Value) {
        let res = self
            .http
            .post(format!("{}/api/v2/statements", self.emu.base_url()))
            .bearer_auth(token)
            .header("X-Snowflake-Authorization-Token-Type", "OAUTH")
            .json(&json!({"statement": "SELECT CURRENT_USER()"}))
            .send()
            .await
            .unwrap();
        let ok = res.status().as_u16() == 200;
        (ok, res.json().await.unwrap_or(Value::Null))
    }

    pub(crate) fn env(&self) -> Vec<(String, String)> {
        self.env.clone()
    }
}

/// R8: fifty concurrent reads of an expired token, spread over three instances on one
/// PostgreSQL, cause exactly one refresh request at the provider, and every caller gets the new
/// token.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn r8_fifty_concurrent_reads_of_an_expired_token_over_three_instances_cause_one_refresh() {
    let _serial = SERIAL.lock().await;
    let f = Fleet::start(4, false).await;
    let emu = &f.emu.emulator;

    // Nothing has read the token yet, so no background pass refreshes it ahead of time: it
    // simply expires.
    let view = f.token_view(0).await;
    let first_expiry = parse_time(&view["access_token_expires_at"]);
    let before = emu.stats().counters;
    assert_eq!(
        (
            before.authorization_code_grants_ok,
            before.refresh_token_grants_ok
        ),
        (1, 0),
        "{before:?}"
    );

    // Right after expiry (no background pass runs: only reads refresh).
    let until_expiry = (first_expiry - SystemClock.now())
        .to_std()
        .unwrap_or_default();
    tokio::time::sleep(until_expiry + Duration::from_millis(50)).await;
    assert!(SystemClock.now() > first_expiry);
    let start = Instant::now();

    let tasks: Vec<_> = (0..50)
        .map(|i| {
            let node = i % 3;
            let http = f.http.clone();
            let base = f.nodes[node].base();
            let key = f.api_key.clone();
            tokio::spawn(async move {
                read_token(&http, node, &base, &key, "?min_validity=0")
                    .await
                    .unwrap()
            })
        })
        .collect();
    let mut reads = Vec::new();
    for t in tasks {
        reads.push(t.await.unwrap());
    }
    // Count at once: the instances' background passes refresh again later, by design.
    let after = emu.stats().counters;
    let took = start.elapsed();
    eprintln!("R8: 50 reads over 3 instances took {took:?}");

    let failed: Vec<&Read> = reads.iter().filter(|r| r.status != 200).collect();
    let served: BTreeSet<&str> = reads.iter().filter_map(Read::token).collect();
    let expiries: BTreeSet<Timestamp> = reads
        .iter()
        .filter(|r| r.status == 200)
        .map(|r| parse_time(&r.body["expires_at"]))
        .collect();
    let at_provider = (
        after.token_requests - before.token_requests,
        after.refresh_token_grants_ok - before.refresh_token_grants_ok,
        after.refresh_token_grants_failed - before.refresh_token_grants_failed,
    );
    let facts = format!(
        "{} of 50 reads failed, {} different tokens served, (token requests, refreshes ok, \
         refreshes failed) at the provider during the burst: {at_provider:?} (the burst took \
         {took:?}); failed reads: {failed:#?}",
        failed.len(),
        served.len()
    );
    assert!(failed.is_empty(), "{facts}");
    assert_eq!(
        served.len(),
        1,
        "every caller must get the same new token: {facts}"
    );
    assert_eq!(
        at_provider,
        (1, 1, 0),
        "exactly one refresh request: {facts}"
    );
    assert_eq!(expiries.len(), 1, "{expiries:?}");
    assert!(
        expiries.iter().all(|e| *e > first_expiry),
        "the served token is the expired one: {expiries:?} vs {first_expiry}"
    );
    // It is Snowflake's new token, not the expired one (which Snowflake refuses).
    let token = served.into_iter().next().unwrap();
    let (ok, answer) = f.snowflake_accepts(token).await;
    assert!(ok, "Snowflake refuses the served token: {answer}");
    assert_eq!(answer["data"][0][0], "ALICE", "{answer}");
}

/// R8 across instances, at a chosen moment: while instance 1's refresh is held at the provider
/// (before the grant), reads of the expired token on instances 2 and 3 do not call the provider
/// themselves: they wait for the lease holder and, as it does not finish, answer 503 with
/// Retry-After. Released, the one refresh serves every instance.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn r8_while_one_instance_refreshes_the_others_never_call_the_provider() {
    let _serial = SERIAL.lock().await;
    let f = Fleet::start(4, false).await;
    let emu = &f.emu.emulator;
    let expiry = parse_time(&f.token_view(0).await["access_token_expires_at"]);
    let mut hold = emu.hold_next_refresh(HoldPoint::BeforeGrant);
    let until_expiry = (expiry - SystemClock.now()).to_std().unwrap_or_default();
    tokio::time::sleep(until_expiry + Duration::from_millis(50)).await;
    let before = emu.stats().counters;

    let http = f.http.clone();
    let base = f.nodes[0].base();
    let key = f.api_key.clone();
    let first = tokio::spawn(async move {
        read_token(&http, 0, &base, &key, "?min_validity=0")
            .await
            .unwrap()
    });
    tokio::time::timeout(Duration::from_secs(60), hold.held())
        .await
        .expect("instance 1 never sent the refresh");
    for node in [1, 2] {
        let r = f.app_read(node, "?min_validity=0").await;
        assert_eq!(
            (r.status, r.retry_after.is_some()),
            (503, true),
            "instance {} did not wait for the lease holder: {r:?}",
            node + 1
        );
        let calls = emu.stats().counters.token_requests - before.token_requests;
        assert_eq!(calls, 1, "instance {} called the provider too", node + 1);
    }
    hold.release();
    let first = first.await.unwrap();
    assert_eq!(first.status, 200, "{first:?}");
    let token = first.token().unwrap().to_owned();
    for node in 0..3 {
        let r = f.app_read(node, "?min_validity=0").await;
        assert_eq!(r.token(), Some(token.as_str()), "{r:?}");
    }
    let after = emu.stats().counters;
    assert_eq!(
        (
            after.token_requests - before.token_requests,
            after.refresh_token_grants_ok - before.refresh_token_grants_ok
        ),
        (1, 1),
        "{after:?}"
    );
    assert!(f.snowflake_accepts(&token).await.0);
}

/// Only 200 with a token, 409 saying what to do, and 503 with Retry-After may ever be answered.
pub(crate) fn bad_reads(reads: &[Read]) -> Vec<&Read> {
    reads
        .iter()
        .filter(|r| match r.status {
            200 => r.token().is_none(),
            409 => !matches!(r.code(), "token_needs_reauthorization" | "app_stopped"),
            503 => r.retry_after.is_none(),
            _ => true,
        })
        .collect()
}

/// What happened around a kill, for the assertions.
struct AfterKill {
    /// Every read answered by a live instance from the kill to the end state.
    reads: Vec<Read>,
    /// The provider's counters while the refresh was held, just before the kill.
    at_kill: snowflake_emulator::Counters,
}

/// The token is read from instance 2 once expired: instance 2 takes the refresh lease and sends
/// the refresh, which the provider holds at `point`. Instance 2 is killed with SIGKILL there;
/// then the provider's hold ends (`lose`: as if the request had never arrived). Instance 2 is
/// started again, and every instance is read until `done` says the end state is reached.
async fn kill_during_a_refresh(
    f: &mut Fleet,
    point: HoldPoint,
    lose: bool,
    done: impl AsyncFnMut(&Fleet, &[Read]) -> bool,
) -> AfterKill {
    let mut done = done;
    let victim = 1;
    let first = f.app_read(0, "?min_validity=0").await;
    assert_eq!(first.status, 200, "{first:?}");
    let expiry = parse_time(&f.token_view(0).await["access_token_expires_at"]);
    let mut hold = f.emu.emulator.hold_next_refresh(point);
    let until_expiry = (expiry - SystemClock.now()).to_std().unwrap_or_default();
    tokio::time::sleep(until_expiry + Duration::from_millis(50)).await;

    let http = f.http.clone();
    let base = f.nodes[victim].base();
    let key = f.api_key.clone();
    let victims_read =
        tokio::spawn(
            async move { read_token(&http, victim, &base, &key, "?min_validity=0").await },
        );
    tokio::time::timeout(Duration::from_secs(60), hold.held())
        .await
        .expect("instance 2 never sent the refresh");
    let at_kill = f.emu.emulator.stats().counters;
    f.nodes[victim].kill9();
    if lose {
        hold.lose();
    } else {
        hold.release();
    }
    let answer = victims_read.await.unwrap();
    assert!(
        answer.is_err(),
        "the killed instance answered its read: {answer:?}"
    );
    let env = f.env();
    f.nodes[victim].start(&env);

    // The lease the killed instance held blocks refreshes until it runs out: the guard allows
    // for that and a loaded machine.
    let waited = Instant::now();
    let deadline = waited + LEASE + Duration::from_secs(90);
    let mut reads = Vec::new();
    loop {
        for node in 0..3 {
            reads.push(f.app_read(node, "?min_validity=0").await);
        }
        if done(&*f, &reads).await {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no end state {:?} after the kill: {}; last reads: {:#?}",
            waited.elapsed(),
            f.token_view(0).await,
            &reads[reads.len().saturating_sub(3)..]
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let bad = bad_reads(&reads);
    assert!(
        bad.is_empty(),
        "only 200, 409 (needs re-authorization / app stopped) and 503 with Retry-After are \
         allowed: {bad:#?}"
    );
    AfterKill { reads, at_kill }
}

/// The refreshes committed to the database (each is audited as it is stored).
async fn committed_refreshes(f: &Fleet) -> usize {
    let (s, audited) = f
        .admin(
            2,
            "GET",
            &format!(
                "/api/v1/audit?action=token.refresh&object_id={}&limit=1000",
                f.token_id
            ),
            None,
        )
        .await;
    assert_eq!(s, 200, "{audited}");
    audited["items"].as_array().unwrap().len()
}

/// R12, R40: single-use refresh tokens (each refresh rotates it; a used one sent again revokes
/// the grant). An instance is killed right after the provider granted its refresh and before
/// the answer reached it, so before the store write: the rotated refresh token is lost with it.
/// The token is not lost silently: once the lease runs out a live instance tries the stored
/// refresh token, the provider refuses it, and the token is flagged `needs_reauthorization`
/// with an alert, never deleted, never served again; no read meanwhile gets anything but the
/// allowed answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn r12_r40_kill_9_after_the_provider_granted_a_refresh_flags_the_token_with_an_alert() {
    let _serial = SERIAL.lock().await;
    let mut f = Fleet::start(3, true).await;
    let after = kill_during_a_refresh(
        &mut f,
        HoldPoint::AfterGrant,
        false,
        async |f: &Fleet, _: &[Read]| f.token_view(0).await["status"] == "needs_reauthorization",
    )
    .await;
    assert_eq!(
        (
            after.at_kill.refresh_token_grants_ok,
            after.at_kill.refresh_token_grants_failed
        ),
        (1, 0),
        "the killed instance's refresh was granted, nothing else happened: {:?}",
        after.at_kill
    );
    let counters = f.emu.emulator.stats().counters;
    assert_eq!(
        (
            counters.refresh_token_grants_ok,
            counters.refresh_token_grants_failed
        ),
        (1, 1),
        "one more refresh, with the stored (used) refresh token, refused: {counters:?}"
    );
    assert_eq!(
        committed_refreshes(&f).await,
        0,
        "the granted refresh was never stored"
    );
    let view = f.token_view(1).await;
    assert_eq!(view["status"], "needs_reauthorization", "{view}");
    let (s, audit) = f
        .admin(
            1,
            "GET",
            &format!(
                "/api/v1/audit?action=token.needs_reauthorization&object_id={}",
                f.token_id
            ),
            None,
        )
        .await;
    assert_eq!(s, 200, "{audit}");
    assert!(
        audit["items"].as_array().is_some_and(|a| !a.is_empty()),
        "flagged without an alert: {audit}"
    );
    // Not served any more, from any instance (one may answer from its 2-second cache a moment).
    for node in 0..3 {
        let until = Instant::now() + Duration::from_secs(30);
        loop {
            let r = f.app_read(node, "?min_validity=0").await;
            if (r.status, r.code()) == (409, "token_needs_reauthorization") {
                break;
            }
            assert!(bad_reads(std::slice::from_ref(&r)).is_empty(), "{r:?}");
            assert!(Instant::now() < until, "a flagged token is served: {r:?}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    assert!(
        after.reads.iter().all(|r| r.status != 200),
        "{:#?}",
        after.reads
    );
}

/// R12, R40: the same kill, but before the provider looked at the refresh (the request is lost
/// with the instance). Nothing was granted, so nothing is lost: once the lease runs out a live
/// instance refreshes with the stored refresh token, and every instance serves the new token,
/// which Snowflake accepts.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn r12_r40_kill_9_before_the_provider_granted_a_refresh_loses_nothing() {
    let _serial = SERIAL.lock().await;
    let mut f = Fleet::start(3, true).await;
    let after = kill_during_a_refresh(
        &mut f,
        HoldPoint::BeforeGrant,
        true,
        async |_: &Fleet, reads: &[Read]| {
            let last_round = &reads[reads.len() - 3..];
            last_round.iter().all(|r| r.status == 200)
        },
    )
    .await;
    assert_eq!(
        after.at_kill.refresh_token_grants_ok, 0,
        "{:?}",
        after.at_kill
    );
    let last_round = &after.reads[after.reads.len() - 3..];
    let served: BTreeSet<&str> = last_round.iter().filter_map(Read::token).collect();
    assert_eq!(served.len(), 1, "{last_round:#?}");
    let token = served.into_iter().next().unwrap();
    let (ok, answer) = f.snowflake_accepts(token).await;
    assert!(ok, "Snowflake refuses the served token: {answer}");
    let counters = f.emu.emulator.stats().counters;
    assert_eq!(
        (
            counters.refresh_token_grants_ok,
            counters.refresh_token_grants_failed
        ),
        (1, 0),
        "{counters:?}"
    );
    assert_eq!(committed_refreshes(&f).await, 1);
    assert_eq!(f.token_view(2).await["status"], "healthy");
}

/// R40: stop an app, restart every instance (SIGTERM, then start again on the same database):
/// the app is still stopped with its reason, its key still works, and the token still reads --
/// the same token, stored and decrypted, with no new sign-in and no refresh.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn r40_restarting_every_instance_loses_no_app_state_or_token() {
    let _serial = SERIAL.lock().await;
    let mut f = Fleet::start(600, false).await;
    let mut served = BTreeSet::new();
    for node in 0..3 {
        let r = f.app_read(node, "").await;
        assert_eq!(r.status, 200, "{r:?}");
        served.insert(r.token().unwrap().to_owned());
    }
    assert_eq!(served.len(), 1, "{served:?}");
    let token = served.into_iter().next().unwrap();
    assert!(f.snowflake_accepts(&token).await.0);
    let before = f.token_view(0).await;

    let (s, app) = f
        .admin(1, "POST", &format!("/api/v1/apps/{APP}/stop"), None)
        .await;
    assert_eq!(s, 200, "{app}");
    assert_eq!(app["state"], "stopped", "{app}");
    let r = f.app_read(1, "").await;
    assert_eq!((r.status, r.code()), (409, "app_stopped"), "{r:?}");

    for node in &mut f.nodes {
        let log = node.stop();
        assert!(
            log.lines()
                .last()
                .is_some_and(|l| l.trim_end().ends_with("stopped")),
            "instance in {} did not shut down gracefully:\n{log}",
            node.dir.path().display()
        );
    }
    let env = f.env();
    for node in &mut f.nodes {
        node.start(&env);
    }

    for node in 0..3 {
        let (s, app) = f
            .admin(node, "GET", &format!("/api/v1/apps/{APP}"), None)
            .await;
        assert_eq!(s, 200, "{app}");
        assert_eq!(
            (app["state"].as_str(), app["stop_reason"].as_str()),
            (Some("stopped"), Some("stopped by an admin")),
            "{app}"
        );
        let r = f.app_read(node, "").await;
        assert_eq!((r.status, r.code()), (409, "app_stopped"), "{r:?}");
        let r = read_token(
            &f.http,
            node,
            &f.nodes[node].base(),
            ADMIN,
            &format!("?app={APP}"),
        )
        .await
        .unwrap();
        assert_eq!(r.status, 200, "{r:?}");
        assert_eq!(r.token(), Some(token.as_str()), "the stored token changed");
    }
    let after = f.token_view(2).await;
    for field in [
        "status",
        "version",
        "client_id",
        "client_secret_set",
        "client_secret_2_set",
        "access_token_expires_at",
        "refresh_token_expires_at",
        "authorized_at",
        "scopes",
    ] {
        assert_eq!(after[field], before[field], "{field}: {before} vs {after}");
    }
    let counters = f.emu.emulator.stats().counters;
    assert_eq!(
        (
            counters.authorization_code_grants_ok,
            counters.refresh_token_grants_ok
        ),
        (1, 0),
        "{counters:?}"
    );

    // Started again, the app reads with the key it had before the restart, from every instance
    // (another instance may answer from its 2-second read cache a moment longer).
    let (s, app) = f
        .admin(2, "POST", &format!("/api/v1/apps/{APP}/start"), None)
        .await;
    assert_eq!(s, 200, "{app}");
    for node in 0..3 {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let r = f.app_read(node, "").await;
            if r.status == 200 {
                assert_eq!(r.token(), Some(token.as_str()));
                break;
            }
            assert!(Instant::now() < deadline, "{r:?}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    let (ok, answer) = f.snowflake_accepts(&token).await;
    assert!(ok, "{answer}");
}

/// Authorizes a global Snowflake token `name` (its own security integration) through the
/// emulator, as an admin would; returns its id.
async fn authorize_token(f: &Fleet, node: usize, name: &str) -> String {
    let emu = &f.emu.emulator;
    let (s, tok) = f
        .admin(
            node,
            "POST",
            "/api/v1/tokens",
            Some(json!({"name": name, "provider": "snowflake",
                        "settings": {"account": f.emu.base_url(), "role": "ANALYST"}})),
        )
        .await;
    assert_eq!(s, 201, "{tok}");
    let id = tok["id"].as_str().unwrap().to_owned();
    let (s, setup) = f
        .admin(node, "GET", &format!("/api/v1/tokens/{id}/setup"), None)
        .await;
    assert_eq!(s, 200, "{setup}");
    let runs = emu.run_script_as("ADMIN", setup["snowflake"]["sql"].as_str().unwrap());
    let cell = runs[1].outcome.first_value().unwrap().to_owned();
    let res = f
        .http
        .post(format!(
            "{}/api/v1/tokens/{id}/client-secrets",
            f.nodes[node].base()
        ))
        .bearer_auth(ADMIN)
        .header("content-type", "text/plain")
        .body(cell)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 200, "{}", res.text().await.unwrap());
    let (s, a) = f
        .admin(
            node,
            "POST",
            &format!("/api/v1/tokens/{id}/authorize"),
            None,
        )
        .await;
    assert_eq!(s, 200, "{a}");
    let callback = snowflake_emulator::sign_in_and_consent(
        &f.http,
        a["authorization_url"].as_str().unwrap(),
        "ALICE",
        "alice-pass",
    )
    .await
    .unwrap();
    let query = callback
        .strip_prefix(&format!("{PUBLIC_URL}/oauth/callback?"))
        .unwrap();
    let res = f
        .http
        .get(format!("{}/oauth/callback?{query}", f.nodes[node].base()))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 200);
    id
}

/// Every `token.refresh` audit record (all pages).
async fn refresh_audit(f: &Fleet) -> Vec<Value> {
    let mut out = Vec::new();
    let mut cursor = String::new();
    loop {
        let (s, page) = f
            .admin(
                0,
                "GET",
                &format!("/api/v1/audit?action=token.refresh&limit=1000{cursor}"),
                None,
            )
            .await;
        assert_eq!(s, 200, "{page}");
        out.extend(page["items"].as_array().unwrap().iter().cloned());
        match page["next_cursor"].as_str() {
            Some(c) => cursor = format!("&cursor={c}"),
            None => return out,
        }
    }
}

/// Issue 10, item 3: three instances on one PostgreSQL, their background passes on (every
/// second, two refreshes at once each), the provider 200 ms away. Many tokens come due in the
/// same second (their daily check: the test moves each one's last success a day back through
/// the store, which puts it in the schedule at once, as any write does). Each token is refreshed
/// exactly once: the provider sees each refresh token presented once, and one `token.refresh`
/// is recorded per token; and the work splits: each instance refreshed a fair share (counted
/// from the audit records, which name the instance). One instance alone would need
/// N / 2 x 200 ms = 6 s: long enough for every instance's pass to take part.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn issue10_three_instances_split_due_refreshes_and_refresh_each_token_once() {
    const N: usize = 60;
    let _serial = SERIAL.lock().await;
    let db = tokenwarden_testkit::require_postgres().url;
    let f = Fleet::start_with(
        Some(db.clone()),
        3,
        600,
        false,
        &[
            ("TOKENWARDEN_ENGINE_INTERVAL", "1"),
            ("TOKENWARDEN_REFRESH_CONCURRENCY", "2"),
        ],
    )
    .await;
    let mut ids = Vec::with_capacity(N);
    for i in 0..N {
        ids.push(authorize_token(&f, i % 3, &format!("fleet-{i}")).await);
    }
    let emu = &f.emu.emulator;
    // Let the passes look at the new tokens once (nothing to do for a day).
    tokio::time::sleep(Duration::from_secs(3)).await;
    let before = emu.stats().counters;
    assert_eq!(before.refresh_token_grants_ok, 0, "nothing was due yet");
    emu.set_token_latency(Duration::from_millis(200));

    let store = tokenwarden_store::SqlStore::connect(&db).await.unwrap();
    use tokenwarden_store::Store;
    for id in &ids {
        let tid = tokenwarden_domain::TokenId::parse(id).unwrap();
        let mut h = store.get_token_health(tid).await.unwrap().unwrap();
        h.last_success_at = Some(h.last_success_at.unwrap() - chrono::Duration::hours(25));
        store.put_token_health(&h).await.unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(120);
    while emu.stats().counters.refresh_token_grants_ok < N as u64 {
        assert!(
            Instant::now() < deadline,
            "{} of {N} refreshed",
            emu.stats().counters.refresh_token_grants_ok
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // A few more passes of every instance: nothing more is refreshed.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let after = emu.stats().counters;
    assert_eq!(after.refresh_token_grants_ok, N as u64);
    assert_eq!(after.refresh_token_grants_failed, 0);
    let presented = emu.refresh_requests_by_token();
    assert_eq!(presented.len(), N, "one refresh token presented per token");
    assert!(presented.values().all(|&n| n == 1), "{presented:?}");

    let audited = refresh_audit(&f).await;
    let mut per_token: std::collections::BTreeMap<&str, usize> = Default::default();
    let mut per_instance: std::collections::BTreeMap<String, usize> = Default::default();
    for e in &audited {
        *per_token
            .entry(e["object_id"].as_str().unwrap())
            .or_default() += 1;
        let instance = e["detail"]["instance"].as_str().unwrap();
        *per_instance.entry(instance.to_owned()).or_default() += 1;
    }
    assert_eq!(per_token.len(), N, "{per_token:?}");
    assert!(per_token.values().all(|&n| n == 1), "{per_token:?}");
    assert!(ids.iter().all(|id| per_token.contains_key(id.as_str())));
    // The instance ids start with each process's id.
    let pids: Vec<String> = f
        .nodes
        .iter()
        .map(|n| n.server.as_ref().unwrap().child.id().to_string())
        .collect();
    let shares: Vec<usize> = pids
        .iter()
        .map(|pid| {
            per_instance
                .iter()
                .filter(|(i, _)| i.split('-').next() == Some(pid.as_str()))
                .map(|(_, n)| n)
                .sum()
        })
        .collect();
    println!("refreshes per instance: {shares:?}");
    assert_eq!(shares.iter().sum::<usize>(), N, "{per_instance:?}");
    assert!(
        shares.iter().all(|&n| n >= N / 10),
        "each instance refreshes a fair share: {shares:?}"
    );
    for id in &ids {
        let (s, v) = f
            .admin(1, "GET", &format!("/api/v1/tokens/{id}"), None)
            .await;
        assert_eq!((s, v["status"].as_str()), (200, Some("healthy")), "{v}");
    }
}
