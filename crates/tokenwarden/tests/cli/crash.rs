//! Crash loops (issue 9, item 12): `tokenwarden serve` killed with SIGKILL again and again while
//! clients create tokens and apps over the API and an app reads a short-lived Snowflake token
//! (each expiry is a refresh at the emulator), on SQLite (R34) and on PostgreSQL with three
//! instances (R12, R40); and the database stopped and started again under read load (R16).
//!
//! After each kill: SQLite's `PRAGMA integrity_check` is `ok`, `tokenwarden keys verify`
//! decrypts every stored secret, and once restarted every write a client saw acknowledged (a
//! 2xx received) before the kill is there. The loops print their figures (cycles, acknowledged
//! writes, lost writes: must be 0); `TOKENWARDEN_CRASH_CYCLES=50` runs the full loops (50 on
//! SQLite, 10 on PostgreSQL) instead of the default 10 and 3.
//!
//! The kill comes at an event, not after a sleep: once the cycle's clients have received a
//! number of acknowledgements that varies from cycle to cycle, with more writes and reads in
//! flight.

use crate::instances::{Fleet, Read, SERIAL, TOKEN, bad_reads, read_token};
use crate::{ADMIN, cmd, text};
use serde_json::json;
use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// Cycles of the SQLite loop and of the PostgreSQL loop.
fn cycles() -> (usize, usize) {
    match std::env::var("TOKENWARDEN_CRASH_CYCLES")
        .ok()
        .and_then(|v| v.trim().parse::<usize>().ok())
    {
        Some(n) => (n.max(1), (n / 5).max(1)),
        None => (10, 3),
    }
}

/// Clients creating tokens and apps (each name recorded once acknowledged) and an app reading
/// its token, against the running instances, until they die.
struct Load {
    /// Names of tokens and apps whose creation was acknowledged, over every cycle.
    acked: Arc<std::sync::Mutex<Vec<(Kind, String)>>>,
    /// Writes sent whose answer never came (the instance died with them in flight).
    unanswered: Arc<AtomicUsize>,
    reads: Arc<std::sync::Mutex<Vec<Read>>>,
    /// Cycles killed after a refresh had happened in the cycle.
    after_refresh: AtomicUsize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    Token,
    App,
}

const WRITERS: usize = 4;

/// One cycle's clients, running.
struct Running {
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Running {
    /// Waits for every client to see its instance gone.
    async fn finish(self) {
        for t in self.tasks {
            t.await.unwrap();
        }
    }
}

impl Load {
    fn new() -> Self {
        Load {
            acked: Arc::default(),
            unanswered: Arc::default(),
            reads: Arc::default(),
            after_refresh: AtomicUsize::new(0),
        }
    }

    /// Starts one cycle's load against the running instances of `f` (writer `w` and the
    /// reader's `i`th read go to instance `w % n`, `i % n`) and returns once the cycle has
    /// `threshold` acknowledgements, with the clients still running: kill the instances, then
    /// [`Running::finish`].
    async fn start(&self, f: &Fleet, cycle: usize, threshold: usize) -> Running {
        let bases: Vec<String> = f.nodes.iter().map(|n| n.base()).collect();
        let (acks_tx, mut acks_rx) = tokio::sync::watch::channel(0usize);
        let acks_tx = Arc::new(acks_tx);
        let mut tasks = Vec::new();
        for w in 0..WRITERS {
            let base = bases[w % bases.len()].clone();
            let http = f.http.clone();
            let acked = self.acked.clone();
            let unanswered = self.unanswered.clone();
            let acks_tx = acks_tx.clone();
            tasks.push(tokio::spawn(async move {
                for i in 0.. {
                    let (kind, name, path, body) = if i % 2 == 0 {
                        let name = format!("k{cycle}-{w}-{i}");
                        let body = json!({"name": name, "provider": "oauth2", "client_id": "c",
                                          "settings": {"authorization_url": "https://auth.example.com/authorize", "token_url": "https://auth.example.com/token"},
                                          "client_secret": format!("s3cret-{name}")});
                        (Kind::Token, name, "/api/v1/tokens", body)
                    } else {
                        let name = format!("a{cycle}-{w}-{i}");
                        let body = json!({"name": name, "tokens": [TOKEN]});
                        (Kind::App, name, "/api/v1/apps", body)
                    };
                    let sent = http
                        .post(format!("{base}{path}"))
                        .bearer_auth(ADMIN)
                        .json(&body)
                        .send()
                        .await;
                    match sent {
                        // The status line arrived: the server had committed the write.
                        Ok(res) if res.status().is_success() => {
                            acked.lock().unwrap().push((kind, name));
                            acks_tx.send_modify(|n| *n += 1);
                            let _ = res.bytes().await;
                        }
                        Ok(res) => panic!(
                            "a write was refused: {} {}",
                            res.status(),
                            res.text().await.unwrap_or_default()
                        ),
                        Err(e) if e.is_connect() => break,
                        Err(_) => {
                            unanswered.fetch_add(1, Ordering::Relaxed);
                            break;
                        }
                    }
                }
            }));
        }
        {
            let http = f.http.clone();
            let key = f.api_key.clone();
            let reads = self.reads.clone();
            tasks.push(tokio::spawn(async move {
                for i in 0.. {
                    let node = i % bases.len();
                    match read_token(&http, node, &bases[node], &key, "?min_validity=0").await {
                        Ok(r) => reads.lock().unwrap().push(r),
                        Err(_) => break,
                    }
                }
            }));
        }
        let refreshes = || f.emu.emulator.stats().counters.refresh_token_grants_ok;
        let at_start = refreshes();
        tokio::time::timeout(
            Duration::from_secs(120),
            acks_rx.wait_for(|n| *n >= threshold),
        )
        .await
        .expect("no acknowledged writes within 2 minutes")
        .unwrap();
        // And a refresh in this cycle (the token lives a second), unless a lease a killed
        // instance held still blocks refreshes: then the guard ends the wait.
        let guard = Instant::now() + Duration::from_secs(2);
        while refreshes() == at_start && Instant::now() < guard {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        if refreshes() > at_start {
            self.after_refresh.fetch_add(1, Ordering::Relaxed);
        }
        Running { tasks }
    }

    /// How many acknowledged writes the instance at `node` does not have.
    async fn lost(&self, f: &Fleet, node: usize) -> Vec<(Kind, String)> {
        let mut present = BTreeSet::new();
        for (kind, path) in [
            (Kind::Token, "/api/v1/tokens?limit=1000"),
            (Kind::App, "/api/v1/apps?limit=1000"),
        ] {
            // Every page: the list's own cursor until the last page.
            let mut url = path.to_owned();
            loop {
                let (s, list) = f.admin(node, "GET", &url, None).await;
                assert_eq!(s, 200, "{list}");
                for item in list["items"].as_array().unwrap() {
                    present.insert((kind, item["name"].as_str().unwrap().to_owned()));
                }
                match list["next_cursor"].as_str() {
                    Some(cursor) => url = format!("{path}&cursor={cursor}"),
                    None => break,
                }
            }
        }
        self.acked
            .lock()
            .unwrap()
            .iter()
            .filter(|w| !present.contains(*w))
            .cloned()
            .collect()
    }

    fn acked(&self) -> usize {
        self.acked.lock().unwrap().len()
    }
}

/// `tokenwarden keys verify` in `dir` with `env`: every stored secret decrypts.
fn keys_verify(dir: &std::path::Path, env: &[(String, String)]) -> String {
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let o = cmd(dir, &env).args(["keys", "verify"]).output().unwrap();
    let (out, err) = text(&o);
    assert!(o.status.success(), "keys verify failed: {out}{err}");
    assert!(out.contains("stored secrets decrypt"), "{out}{err}");
    out
}

/// The SQLite database file of an instance whose data folder is in `dir`.
fn sqlite_file(dir: &std::path::Path) -> std::path::PathBuf {
    dir.join("tokenwarden-data/tokenwarden.db")
}

/// `PRAGMA integrity_check` and the journal mode, on the database the killed server left.
async fn sqlite_check(file: &std::path::Path) -> (String, String) {
    use sqlx::Connection;
    let url = format!("sqlite://{}", file.display());
    let mut c = sqlx::SqliteConnection::connect(&url).await.unwrap();
    let integrity: (String,) = sqlx::query_as("PRAGMA integrity_check")
        .fetch_one(&mut c)
        .await
        .unwrap();
    let mode: (String,) = sqlx::query_as("PRAGMA journal_mode")
        .fetch_one(&mut c)
        .await
        .unwrap();
    c.close().await.unwrap();
    (integrity.0, mode.0)
}

/// At the end of a loop the token is still there and usable: a live instance serves it (once
/// a lease a killed instance held has run out) and Snowflake accepts what it serves.
async fn token_survived(f: &Fleet) {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let r = f.app_read(0, "?min_validity=1").await;
        assert!(bad_reads(std::slice::from_ref(&r)).is_empty(), "{r:?}");
        if r.status == 200 {
            let (ok, answer) = f.snowflake_accepts(r.token().unwrap()).await;
            assert!(ok, "Snowflake refuses the served token: {answer}");
            break;
        }
        assert!(Instant::now() < deadline, "the token is not served: {r:?}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let view = f.token_view(0).await;
    assert_eq!(view["status"], "healthy", "{view}");
}

struct Figures {
    backend: &'static str,
    instances: usize,
    cycles: usize,
    acked: usize,
    unanswered: usize,
    lost: usize,
    reads: usize,
    /// How many reads got each status.
    statuses: std::collections::BTreeMap<u16, usize>,
    refreshes: u64,
    after_refresh: usize,
    took: Duration,
}

impl std::fmt::Display for Figures {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "crash loop {} ({} instance{}): {} kill -9 cycles, {} acknowledged writes, {} lost, \
             {} writes in flight at a kill, {} token reads (by status: {:?}), {} refreshes at the \
             provider ({} cycles killed after a refresh in the cycle), {:.1} s",
            self.backend,
            self.instances,
            if self.instances == 1 { "" } else { "s" },
            self.cycles,
            self.acked,
            self.lost,
            self.unanswered,
            self.reads,
            self.statuses,
            self.refreshes,
            self.after_refresh,
            self.took.as_secs_f64()
        )
    }
}

/// The number of acknowledgements after which cycle `c` is killed: 3 to 15, varying.
fn threshold(c: usize) -> usize {
    3 + (c * 7) % 13
}

/// R34 (and R12, R40 on SQLite): kill -9 cycles during concurrent writes and refreshes;
/// after each, `PRAGMA integrity_check` is ok (in WAL mode), `keys verify` passes, and no
/// acknowledged write is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn r34_r40_sqlite_kill_9_cycles_during_writes_and_refreshes_lose_no_acknowledged_write() {
    let _serial = SERIAL.lock().await;
    let (cycles, _) = cycles();
    let started = Instant::now();
    let mut f = Fleet::start_on(None, 1, 1, false).await;
    let before = f.emu.emulator.stats().counters;
    let load = Load::new();
    let env = f.env();
    let dir = f.nodes[0].dir.path().to_owned();
    let mut lost = BTreeSet::new();
    for c in 0..cycles {
        let running = load.start(&f, c, threshold(c)).await;
        f.nodes[0].kill9();
        running.finish().await;
        let (integrity, mode) = sqlite_check(&sqlite_file(&dir)).await;
        assert_eq!(integrity, "ok", "cycle {c}");
        assert_eq!(mode, "wal", "cycle {c}");
        keys_verify(&dir, &env);
        f.nodes[0].start(&env);
        lost.extend(load.lost(&f, 0).await);
        assert!(
            lost.is_empty(),
            "cycle {c}: acknowledged writes lost: {lost:?}"
        );
    }
    token_survived(&f).await;
    finish(&f, &load, "SQLite", cycles, before, lost.len(), started);
}

/// R12, R40 on PostgreSQL: three instances killed with SIGKILL at once during concurrent writes
/// and refreshes, again and again; after each, `keys verify` passes and, restarted, no
/// acknowledged write is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn r12_r40_postgres_three_instances_kill_9_cycles_lose_no_acknowledged_write() {
    let _serial = SERIAL.lock().await;
    let (_, cycles) = cycles();
    let started = Instant::now();
    let db = tokenwarden_testkit::require_postgres().url;
    let mut f = Fleet::start_on(Some(db), 3, 1, false).await;
    let before = f.emu.emulator.stats().counters;
    let load = Load::new();
    let env = f.env();
    let mut lost = BTreeSet::new();
    for c in 0..cycles {
        let running = load.start(&f, c, threshold(c)).await;
        for node in &mut f.nodes {
            node.kill9();
        }
        running.finish().await;
        keys_verify(f.nodes[0].dir.path(), &env);
        for node in &mut f.nodes {
            node.start(&env);
        }
        for node in 0..3 {
            lost.extend(load.lost(&f, node).await);
        }
        assert!(
            lost.is_empty(),
            "cycle {c}: acknowledged writes lost: {lost:?}"
        );
    }
    token_survived(&f).await;
    finish(&f, &load, "PostgreSQL", cycles, before, lost.len(), started);
}

/// Checks the reads the loop saw and prints its figures.
fn finish(
    f: &Fleet,
    load: &Load,
    backend: &'static str,
    cycles: usize,
    before: snowflake_emulator::Counters,
    lost: usize,
    started: Instant,
) {
    let reads = load.reads.lock().unwrap();
    let bad = bad_reads(&reads);
    assert!(
        bad.is_empty(),
        "only 200, 409 and 503 with Retry-After may be answered: {bad:#?}"
    );
    let after = f.emu.emulator.stats().counters;
    let figures = Figures {
        backend,
        instances: f.nodes.len(),
        cycles,
        acked: load.acked(),
        unanswered: load.unanswered.load(Ordering::Relaxed),
        lost,
        reads: reads.len(),
        statuses: reads.iter().fold(Default::default(), |mut m, r| {
            *m.entry(r.status).or_default() += 1;
            m
        }),
        refreshes: after.refresh_token_grants_ok - before.refresh_token_grants_ok,
        after_refresh: load.after_refresh.load(Ordering::Relaxed),
        took: started.elapsed(),
    };
    eprintln!("{figures}");
    assert_eq!(figures.lost, 0, "{figures}");
    assert!(figures.acked >= 3 * cycles, "{figures}");
}

/// R16: the database (PostgreSQL, a cluster of this test's own) stopped under read load and
/// started again. While it is down, a valid token keeps being served to the app from memory
/// (past the 2-second answer cache and the 10-second key cache), nothing is sent to the
/// provider, writes are refused with 503, and `/readyz` answers 503; once it is back the
/// instance is ready again by itself, and writes succeed.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn r16_database_stopped_under_read_load_tokens_are_served_from_memory_and_it_recovers() {
    let _serial = SERIAL.lock().await;
    let pg = Arc::new(
        tokio::task::spawn_blocking(tokenwarden_testkit::OwnPostgres::start)
            .await
            .unwrap()
            .unwrap_or_else(|e| panic!("this test needs the PostgreSQL server programs: {e}")),
    );
    let f = Fleet::start_on(Some(pg.url.clone()), 1, 600, false).await;
    let first = f.app_read(0, "").await;
    assert_eq!(first.status, 200, "{first:?}");
    let token = first.token().unwrap().to_owned();
    let base = f.nodes[0].base();
    let readyz = |http: reqwest::Client, base: String| async move {
        http.get(format!("{base}/readyz"))
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    };
    assert_eq!(readyz(f.http.clone(), base.clone()).await, 200);

    // Four readers, each reading in a loop and recording every answer with its time.
    let stop = Arc::new(AtomicBool::new(false));
    let answers: Arc<std::sync::Mutex<Vec<(Instant, Duration, Read)>>> = Arc::default();
    let readers: Vec<_> = (0..4)
        .map(|_| {
            let (http, base, key) = (f.http.clone(), base.clone(), f.api_key.clone());
            let (stop, answers) = (stop.clone(), answers.clone());
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    let sent = Instant::now();
                    let r = read_token(&http, 0, &base, &key, "").await.unwrap();
                    answers.lock().unwrap().push((sent, sent.elapsed(), r));
                }
            })
        })
        .collect();
    let before = f.emu.emulator.stats().counters;

    let stopping = Instant::now();
    let db = pg.clone();
    tokio::task::spawn_blocking(move || db.stop())
        .await
        .unwrap()
        .unwrap();
    let down = Instant::now();
    let deadline = down + Duration::from_secs(30);
    while readyz(f.http.clone(), base.clone()).await != 503 {
        assert!(Instant::now() < deadline, "/readyz never said not ready");
    }
    let (s, refused) = f
        .admin(
            0,
            "POST",
            "/api/v1/apps",
            Some(json!({"name": "while-down", "tokens": [TOKEN]})),
        )
        .await;
    assert_eq!(
        (s, refused["code"].as_str()),
        (503, Some("unavailable")),
        "{refused}"
    );
    // Past the freshness of both caches: every answer now comes from what memory still holds.
    tokio::time::sleep(Duration::from_secs(12)).await;
    assert_eq!(readyz(f.http.clone(), base.clone()).await, 503);
    let at_provider = f.emu.emulator.stats().counters;

    let db = pg.clone();
    tokio::task::spawn_blocking(move || db.start_again())
        .await
        .unwrap()
        .unwrap();
    let up = Instant::now();
    let deadline = up + Duration::from_secs(60);
    while readyz(f.http.clone(), base.clone()).await != 200 {
        assert!(
            Instant::now() < deadline,
            "not ready again 60 s after the database came back"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let recovered = up.elapsed();
    let (s, app) = f
        .admin(
            0,
            "POST",
            "/api/v1/apps",
            Some(json!({"name": "after-the-outage", "tokens": [TOKEN]})),
        )
        .await;
    assert_eq!(s, 201, "{app}");
    stop.store(true, Ordering::Relaxed);
    for r in readers {
        r.await.unwrap();
    }

    let answers = answers.lock().unwrap();
    let during: Vec<&(Instant, Duration, Read)> = answers
        .iter()
        .filter(|(sent, _, _)| *sent >= stopping && *sent < up)
        .collect();
    let wrong: Vec<_> = answers
        .iter()
        .filter(|(_, _, r)| r.status != 200 || r.token() != Some(token.as_str()))
        .collect();
    let slowest = during
        .iter()
        .map(|(_, took, _)| *took)
        .max()
        .unwrap_or_default();
    eprintln!(
        "R16: database down {:.1} s; {} reads while down, all 200 with the cached token: {}; \
         slowest {:.0} ms; {} reads in all; ready again {:.1} s after the database came back",
        (up - down).as_secs_f64(),
        during.len(),
        wrong.is_empty(),
        slowest.as_secs_f64() * 1000.0,
        answers.len(),
        recovered.as_secs_f64()
    );
    assert!(wrong.is_empty(), "{wrong:#?}");
    assert!(
        during.len() >= 10,
        "too few reads while down: {}",
        during.len()
    );
    assert_eq!(
        at_provider.token_requests, before.token_requests,
        "a refresh was started while the database was down"
    );
}
