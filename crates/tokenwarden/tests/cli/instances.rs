//! Three `tokenwarden serve` processes on one PostgreSQL database, in front of the Snowflake
//! emulator (in this process): fifty concurrent reads of an expired token refresh it once (R8),
//! kill -9 of an instance mid-run loses no token (R12, R40), and restarting every instance loses
//! no app state and no token (R40).
//!
//! Every instance shares the database, the master key, the admin token and the public URL (that
//! of instance 1, so the provider sends the browser back there); each has its own data folder.

use crate::{ADMIN, Server, cmd};
use serde_json::{Value, json};
use snowflake_emulator::{Emulator, EmulatorConfig, RunningEmulator};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use tokenwarden_domain::{Clock, SystemClock, Timestamp};

const MASTER_KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
const TOKEN: &str = "snowflake-sales";
const APP: &str = "sales-invoice";

/// These tests run one at a time: the R8 test times its reads between the instances'
/// background passes, and nine instances of the other tests hammering the CPU (and the
/// database) alongside would stretch a burst past the quiet window it was given.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Like `serve`, on a chosen port (the public URL must be known before the first instance
/// starts). Returns once the port accepts connections, with that instant: the instance's
/// background engine passes start then and every `ENGINE_TICK` after.
fn serve_on(dir: &Path, env: &[(&str, &str)], port: u16) -> (Server, Instant) {
    let log = dir.join(format!("serve-{port}.log"));
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log)
        .unwrap();
    let mut c = cmd(dir, env);
    c.arg("serve")
        .arg("--listen")
        .arg(format!("127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::from(file));
    let mut child = c.spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            panic!(
                "serve on port {port} exited with {status}: {}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
        }
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            break;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "serve on port {port} did not start: {}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let server = Server {
        child,
        base: format!("http://127.0.0.1:{port}"),
        log,
    };
    (server, Instant::now())
}

/// One instance: its port and data folder survive restarts. Dropping it kills the process.
struct Node {
    port: u16,
    dir: tempfile::TempDir,
    server: Option<Server>,
    started: Instant,
    /// Whether it is meant to be up (readers skip it, and forgive its connection errors, when
    /// it is not).
    alive: Arc<AtomicBool>,
}

impl Node {
    fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn start(&mut self, env: &[(String, String)]) {
        assert!(
            self.server.is_none(),
            "instance on {} already runs",
            self.port
        );
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let (server, started) = serve_on(self.dir.path(), &env, self.port);
        self.server = Some(server);
        self.started = started;
        self.alive.store(true, Ordering::SeqCst);
    }

    /// SIGKILL (as `kill -9`, sent directly to be quick): no shutdown code runs. Returns what
    /// it logged.
    fn kill9(&mut self) -> String {
        self.alive.store(false, Ordering::SeqCst);
        let mut server = self.server.take().expect("the instance runs");
        server.child.kill().unwrap();
        let exit = server.child.wait().unwrap();
        assert_eq!(
            std::os::unix::process::ExitStatusExt::signal(&exit),
            Some(9),
            "{exit}"
        );
        std::fs::read_to_string(&server.log).unwrap_or_default()
    }

    /// SIGTERM, waiting for the graceful shutdown. Returns what it logged.
    fn stop(&mut self) -> String {
        self.alive.store(false, Ordering::SeqCst);
        self.server.take().expect("the instance runs").stop()
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if let Some(mut server) = self.server.take() {
            let _ = server.child.kill();
            let _ = server.child.wait();
        }
        if std::thread::panicking() {
            let log =
                std::fs::read_to_string(self.dir.path().join(format!("serve-{}.log", self.port)))
                    .unwrap_or_default();
            let lines: Vec<&str> = log.lines().collect();
            eprintln!(
                "--- instance on port {} (last 40 lines of its log) ---\n{}",
                self.port,
                lines[lines.len().saturating_sub(40)..].join("\n")
            );
        }
    }
}

/// One answer of `GET /api/v1/access-tokens/{name}`.
#[derive(Debug, Clone)]
struct Read {
    node: usize,
    status: u16,
    retry_after: Option<String>,
    body: Value,
}

impl Read {
    fn token(&self) -> Option<&str> {
        self.body["access_token"].as_str()
    }

    fn code(&self) -> &str {
        self.body["code"].as_str().unwrap_or("")
    }
}

async fn read_token(
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

fn parse_time(v: &Value) -> Timestamp {
    let s = v.as_str().unwrap_or_else(|| panic!("not a time: {v}"));
    chrono::DateTime::parse_from_rfc3339(s)
        .unwrap()
        .with_timezone(&chrono::Utc)
}

/// A few bits of randomness, for "random-ish" moments.
fn random_u16() -> u16 {
    u16::from_le_bytes(tokenwarden_crypto::random_bytes::<2>())
}

/// Three instances, an app using the token, and the token authorized through the emulator.
struct Fleet {
    emu: RunningEmulator,
    env: Vec<(String, String)>,
    nodes: Vec<Node>,
    http: reqwest::Client,
    api_key: String,
    token_id: String,
}

impl Fleet {
    /// Starts the emulator (access tokens live `ttl_seconds`), three instances on a fresh
    /// database, creates the app and the global token, runs the setup SQL, pastes the secrets
    /// (with single-use refresh tokens switched on first when asked), and signs in as ALICE.
    async fn start(ttl_seconds: u64, single_use_refresh_tokens: bool) -> Fleet {
        tokenwarden_oauth::client::install_crypto_provider();
        let db = tokenwarden_testkit::require_postgres().url;
        let emu = Emulator::start(
            EmulatorConfig {
                access_token_ttl: Duration::from_secs(ttl_seconds),
                ..EmulatorConfig::default_for_tests()
            },
            "127.0.0.1:0",
        )
        .await
        .unwrap();
        let mut ports = BTreeSet::new();
        while ports.len() < 3 {
            ports.insert(tokenwarden_testkit::free_port());
        }
        let ports: Vec<u16> = ports.into_iter().collect();
        let env: Vec<(String, String)> = [
            ("TOKENWARDEN_DATABASE_URL", db),
            ("TOKENWARDEN_MASTER_KEY", MASTER_KEY.to_owned()),
            ("TOKENWARDEN_ADMIN_TOKEN", ADMIN.to_owned()),
            (
                "TOKENWARDEN_PUBLIC_URL",
                format!("http://127.0.0.1:{}", ports[0]),
            ),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        let mut nodes: Vec<Node> = ports
            .iter()
            .map(|&port| Node {
                port,
                dir: tempfile::tempdir().unwrap(),
                server: None,
                started: Instant::now(),
                alive: Arc::new(AtomicBool::new(false)),
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
        assert!(
            callback.starts_with(&format!("{}/oauth/callback?", self.nodes[0].base())),
            "{callback}"
        );
        let res = self.http.get(&callback).send().await.unwrap();
        let status = res.status().as_u16();
        let page = res.text().await.unwrap();
        assert_eq!(status, 200, "{page}");
        assert!(page.contains("Token obtained"), "{page}");
        let view = self.token_view(2).await;
        assert_eq!(view["status"], "healthy", "{view}");
    }

    async fn admin(
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
                format!("{}{path}", self.nodes[node].base()),
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

    async fn token_view(&self, node: usize) -> Value {
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
    async fn app_read(&self, node: usize, query: &str) -> Read {
        read_token(
            &self.http,
            node,
            &self.nodes[node].base(),
            &self.api_key,
            query,
        )
        .await
        .unwrap()
    }

    /// Runs `SELECT CURRENT_USER()` with `token` through the emulator's SQL API: does Snowflake
    /// accept it?
    async fn snowflake_accepts(&self, token: &str) -> (bool, Value) {
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

    fn env(&self) -> Vec<(String, String)> {
        self.env.clone()
    }
}

/// The first instant at or after `earliest` around which no instance starts a background pass:
/// none in `[t - before, t + window]`. The engine ticks every `ENGINE_TICK` from the instance's
/// start (`MissedTickBehavior::Delay`; a pass takes milliseconds).
fn quiet_moment(nodes: &[Node], earliest: Instant, before: Duration, window: Duration) -> Instant {
    let tick = tokenwarden_server::ENGINE_TICK.as_millis();
    let mut t = earliest;
    for _ in 0..400 {
        let quiet = nodes.iter().all(|n| {
            let from = (t - before)
                .saturating_duration_since(n.started)
                .as_millis();
            let next = n.started + Duration::from_millis((from.div_ceil(tick) * tick) as u64);
            next > t + window
        });
        if quiet {
            return t;
        }
        t += Duration::from_millis(25);
    }
    panic!("no moment without a background pass in 10 s");
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

    // Right after expiry -- but at a moment when no instance's background pass runs during the
    // burst: once an instance has served a read, its next pass refreshes a 4-second token ahead
    // of time (as it should), and that second, later refresh must not be mistaken for one
    // caused by the burst.
    let until_expiry = (first_expiry - SystemClock.now())
        .to_std()
        .unwrap_or_default();
    let window = Duration::from_millis(1200);
    let start = quiet_moment(
        &f.nodes,
        Instant::now() + until_expiry + Duration::from_millis(150),
        Duration::from_millis(300),
        window,
    );
    tokio::time::sleep_until(start.into()).await;
    assert!(SystemClock.now() > first_expiry);

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
         {took:?}, with no background pass for {window:?}); failed reads: {failed:#?}",
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

/// R12, R40: reading through three instances while one is killed with SIGKILL at a random-ish
/// moment (right after Snowflake answers a refresh) and restarted; single-use refresh tokens
/// (every refresh rotates the refresh token, and sending a used one revokes the grant), access
/// tokens of 3 s (refreshed all the time). No read gets a 5xx but a 503 with Retry-After; the
/// token ends readable and working from every instance, or flagged `needs_reauthorization` with
/// an alert -- never silently broken, never deleted -- and a flag must be the kill's doing (a
/// granted refresh that was never committed), not the live instances'.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn r12_r40_kill_9_an_instance_and_no_token_is_lost() {
    let _serial = SERIAL.lock().await;
    let mut f = Fleet::start(3, true).await;
    let first = f.app_read(0, "?min_validity=0").await;
    assert_eq!(first.status, 200, "{first:?}");

    // Readers: two per instance, each reading every 50 ms over a fresh connection (a pooled
    // connection to a killed process would fail after its restart).
    let run_for = Duration::from_secs(15);
    let stop = Arc::new(AtomicBool::new(false));
    let readers: Vec<_> = (0..6)
        .map(|r| {
            let node = r % 3;
            let base = f.nodes[node].base();
            let alive = f.nodes[node].alive.clone();
            let stop = stop.clone();
            let key = f.api_key.clone();
            let http = reqwest::Client::builder()
                .pool_max_idle_per_host(0)
                .timeout(Duration::from_secs(30))
                .build()
                .unwrap();
            tokio::spawn(async move {
                let mut reads = Vec::new();
                let mut transport_errors = Vec::new();
                while !stop.load(Ordering::SeqCst) {
                    if alive.load(Ordering::SeqCst) {
                        match read_token(&http, node, &base, &key, "?min_validity=0").await {
                            Ok(read) => reads.push(read),
                            // A request in flight when the instance was killed.
                            Err(_) if !alive.load(Ordering::SeqCst) => {}
                            Err(e) => transport_errors.push(format!("instance {node}: {e}")),
                        }
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                (reads, transport_errors)
            })
        })
        .collect();

    let run_start = Instant::now();
    let kill_after = Duration::from_millis(4000 + u64::from(random_u16() % 5000));
    let victim = usize::from(random_u16() % 3);
    tokio::time::sleep_until((run_start + kill_after).into()).await;
    let at_kill = f.token_view((victim + 1) % 3).await;
    let counters_at_kill = f.emu.emulator.stats().counters;
    // The kill comes right after Snowflake answers a refresh (at most 4 s later): when the
    // victim sent it, it dies between the provider's answer and its commit, holding the lease
    // and the only copy of the rotated refresh token -- the interesting moment.
    let latest = Instant::now() + Duration::from_secs(4);
    while f.emu.emulator.stats().counters.refresh_token_grants_ok
        == counters_at_kill.refresh_token_grants_ok
        && Instant::now() < latest
    {
        std::thread::sleep(Duration::from_micros(500));
    }
    f.nodes[victim].kill9();
    let killed_at = run_start.elapsed();
    eprintln!(
        "R12: killed instance {victim} with SIGKILL {killed_at:?} into the run (token {}; \
         refreshes at the provider before: {} ok, {} refused; now {} ok)",
        at_kill["status"],
        counters_at_kill.refresh_token_grants_ok,
        counters_at_kill.refresh_token_grants_failed,
        f.emu.emulator.stats().counters.refresh_token_grants_ok
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    let env = f.env();
    f.nodes[victim].start(&env);
    eprintln!(
        "R12: restarted instance {victim} {:?} into the run",
        run_start.elapsed()
    );
    // Read on for a while through the restarted instance too.
    let end = (run_start + run_for).max(Instant::now() + Duration::from_secs(3));
    tokio::time::sleep_until(end.into()).await;
    stop.store(true, Ordering::SeqCst);
    let mut reads = Vec::new();
    let mut transport_errors = Vec::new();
    for r in readers {
        let (rs, errs) = r.await.unwrap();
        reads.extend(rs);
        transport_errors.extend(errs);
    }

    let mut summary: BTreeMap<(usize, u16, String), usize> = BTreeMap::new();
    for r in &reads {
        *summary
            .entry((r.node, r.status, r.code().to_owned()))
            .or_default() += 1;
    }
    eprintln!(
        "R12: {} reads, {} refreshes at the provider: {summary:?}",
        reads.len(),
        f.emu.emulator.stats().counters.refresh_token_grants_ok
    );
    assert!(
        transport_errors.is_empty(),
        "a live instance did not answer: {transport_errors:#?}"
    );
    assert!(
        reads.len() > 100,
        "too few reads to mean anything: {}",
        reads.len()
    );
    let bad: Vec<&Read> = reads
        .iter()
        .filter(|r| match r.status {
            200 => r.token().is_none(),
            409 => !matches!(r.code(), "token_needs_reauthorization" | "app_stopped"),
            503 => r.retry_after.is_none(),
            _ => true,
        })
        .collect();
    assert!(
        bad.is_empty(),
        "only 200, 409 (needs re-authorization / app stopped) and 503 with Retry-After are \
         allowed: {bad:#?}"
    );

    // The end state: either working from every instance, or flagged with an alert. A lease held
    // by the killed process blocks refreshes until it runs out (30 s), hence the patience.
    let deadline = Instant::now() + Duration::from_secs(45);
    let mut last: Vec<Option<String>> = vec![None; 3];
    let mut working = [false; 3];
    let (flagged, outcome) = loop {
        let view = f.token_view(0).await;
        if view["status"] == "needs_reauthorization" {
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
                audit.as_array().is_some_and(|a| !a.is_empty()),
                "flagged without an alert: {audit}"
            );
            // Not served any more (an instance may answer from its 2-second cache a moment).
            for node in 0..3 {
                let until = Instant::now() + Duration::from_secs(5);
                loop {
                    let r = f.app_read(node, "?min_validity=1").await;
                    if r.status == 409 {
                        break;
                    }
                    assert!(Instant::now() < until, "a flagged token is served: {r:?}");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
            break (
                true,
                format!("flagged needs_reauthorization: {}", view["status_reason"]),
            );
        }
        assert!(
            matches!(view["status"].as_str(), Some("healthy" | "expiring_soon")),
            "{view}"
        );
        for node in 0..3 {
            if working[node] {
                continue;
            }
            let r = f.app_read(node, "?min_validity=1").await;
            match r.token() {
                Some(token) if r.status == 200 => {
                    let (ok, answer) = f.snowflake_accepts(token).await;
                    working[node] = ok;
                    last[node] = Some(format!("200, Snowflake answered {answer}"));
                }
                _ => last[node] = Some(format!("{r:?}")),
            }
        }
        if working.iter().all(|w| *w) {
            break (false, "readable and working from every instance".to_owned());
        }
        assert!(
            Instant::now() < deadline,
            "the token is neither usable from every instance nor flagged: {view}\nlast answers: \
             {last:#?}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    // Refreshes Snowflake granted but the database never got show as the difference between
    // Snowflake's count and the audited (committed) ones: the killed process died holding one.
    let (_, audited) = f
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
    let counters = f.emu.emulator.stats().counters;
    eprintln!(
        "R12: outcome: {outcome}; Snowflake answered {} refreshes and refused {}, {} refreshes \
         were committed (audited)",
        counters.refresh_token_grants_ok,
        counters.refresh_token_grants_failed,
        audited.as_array().map_or(0, Vec::len)
    );
    // Whose doing was it? Until the kill nothing may have gone wrong: no refresh refused (a
    // refresh token sent twice revokes the grant), the token healthy -- otherwise the token died
    // of plain concurrent reads and this run tested nothing about killing.
    assert!(
        matches!(
            at_kill["status"].as_str(),
            Some("healthy" | "expiring_soon")
        ) && counters_at_kill.refresh_token_grants_failed == 0,
        "before any instance was killed the token is {} ({}) and Snowflake refused {} of {} \
         refreshes: live instances sent a used refresh token again",
        at_kill["status"],
        at_kill["status_reason"],
        counters_at_kill.refresh_token_grants_failed,
        counters_at_kill.refresh_token_grants_failed + counters_at_kill.refresh_token_grants_ok
    );
    // A flag is the right end only when the kill lost a rotated refresh token: then some granted
    // refresh was never committed. If every granted one was, the refused refresh re-sent a
    // refresh token that a live instance had already used -- not the kill's doing.
    let committed = audited.as_array().map_or(0, Vec::len) as u64;
    assert!(
        !flagged || counters.refresh_token_grants_ok > committed,
        "the token was flagged although every refresh Snowflake granted ({}) was committed: \
         live instances sent a used refresh token again ({} refreshes refused)",
        counters.refresh_token_grants_ok,
        counters.refresh_token_grants_failed
    );
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
            "instance on {} did not shut down gracefully:\n{log}",
            node.port
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
