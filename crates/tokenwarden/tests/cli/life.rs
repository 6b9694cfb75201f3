//! Issue 13 items 4 and 5, with real `tokenwarden serve` processes: the access log (JSON lines,
//! request ids, route templates, the read route logged only when it fails), SIGTERM during a
//! refresh (drained within the grace period, exit 0, or cut and its lease released), SIGHUP
//! (the log filter and the lead times reloaded, the settings that need a restart named).
//!
//! The refreshes are held at the provider by the emulator's latency (`POST /_emulator/latency`)
//! and counted there (`GET /_emulator/refresh-requests`).

use crate::instances::{Fleet, SERIAL, parse_time, read_token};
use crate::{ADMIN, cmd, serve};
use serde_json::{Value, json};
use std::time::{Duration, Instant};
use tokenwarden_domain::{Clock, SystemClock};

/// The emulator's count of refresh-token grant requests.
async fn refresh_requests(f: &Fleet) -> u64 {
    let v: Value = f
        .http
        .get(format!("{}/_emulator/refresh-requests", f.emu.base_url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    v["requests"].as_u64().unwrap()
}

/// Every token request waits `ms` at the emulator before it is answered.
async fn set_latency(f: &Fleet, ms: u64) {
    let res = f
        .http
        .post(format!("{}/_emulator/latency", f.emu.base_url()))
        .json(&json!({ "token_latency_ms": ms }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 200);
}

/// Waits until the access token has expired, then starts a read that must refresh it (held
/// `latency_ms` at the emulator) and returns once the refresh request is at the emulator.
async fn read_during_a_refresh(
    f: &Fleet,
    latency_ms: u64,
) -> tokio::task::JoinHandle<Result<crate::instances::Read, reqwest::Error>> {
    let expiry = parse_time(&f.token_view(0).await["access_token_expires_at"]);
    let until_expiry = (expiry - SystemClock.now()).to_std().unwrap_or_default();
    tokio::time::sleep(until_expiry + Duration::from_millis(50)).await;
    set_latency(f, latency_ms).await;
    f.emu.emulator.reset_token_concurrency();
    let (http, base, key) = (f.http.clone(), f.nodes[0].base(), f.api_key.clone());
    let read =
        tokio::spawn(async move { read_token(&http, 0, &base, &key, "?min_validity=0").await });
    let waited = Instant::now();
    while f.emu.emulator.max_token_requests_in_flight() == 0 {
        assert!(
            waited.elapsed() < Duration::from_secs(30),
            "the read never sent a refresh"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    read
}

/// SIGTERM to the fleet's only instance; returns its exit status and its log.
fn sigterm(f: &mut Fleet) -> (std::process::ExitStatus, String) {
    let node = &mut f.nodes[0];
    let mut server = node.server.take().expect("the instance runs");
    let sent = std::process::Command::new("kill")
        .arg("-TERM")
        .arg(server.child.id().to_string())
        .status()
        .unwrap();
    assert!(sent.success());
    let deadline = Instant::now() + Duration::from_secs(60);
    while server.child.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "serve did not stop within 60 s");
        std::thread::sleep(Duration::from_millis(20));
    }
    let status = server.reap();
    (status, std::fs::read_to_string(node.log()).unwrap())
}

/// Item 5: SIGTERM while a read's refresh is at the provider (3 s of latency): the refresh
/// finishes and the read is answered within the grace period (10 s by default), the process
/// exits 0 and says what it did; started again, it serves the refreshed token with no other
/// refresh: the provider saw exactly one.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn issue13_sigterm_during_a_refresh_lets_it_finish_and_exits_0() {
    let _serial = SERIAL.lock().await;
    let mut f = Fleet::start_on(None, 1, 12, false).await;
    let before = refresh_requests(&f).await;
    let read = read_during_a_refresh(&f, 3000).await;
    let (status, log) = sigterm(&mut f);
    assert_eq!(status.code(), Some(0), "{log}");
    let drained = read
        .await
        .unwrap()
        .expect("the read in flight was answered");
    assert_eq!(drained.status, 200, "{drained:?}");
    let token = drained.token().unwrap().to_owned();
    assert!(log.contains("stopping: no new connections"), "{log}");
    assert!(log.contains("requests in flight finished"), "{log}");
    assert!(!log.contains("grace period: cut"), "nothing was cut: {log}");
    assert!(log.contains("stopped"), "{log}");
    assert_eq!(refresh_requests(&f).await, before + 1);

    set_latency(&f, 0).await;
    let env = f.env();
    f.nodes[0].start(&env);
    let again = f.app_read(0, "?min_validity=0").await;
    assert_eq!(again.status, 200, "{again:?}");
    assert_eq!(
        again.token(),
        Some(token.as_str()),
        "the refreshed token was kept"
    );
    assert_eq!(
        refresh_requests(&f).await,
        before + 1,
        "exactly one refresh at the provider"
    );
}

/// Item 5: a refresh longer than the grace period (1 s here) is cut: the process still exits 0
/// within the bound, and releases the token's refresh lease, so the next start refreshes at
/// once instead of waiting 30 s for the lease to run out.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn issue13_sigterm_past_the_grace_period_cuts_the_refresh_and_releases_its_lease() {
    let _serial = SERIAL.lock().await;
    let mut f = Fleet::start_with(None, 1, 12, false, &[("TOKENWARDEN_SHUTDOWN_GRACE", "1")]).await;
    let read = read_during_a_refresh(&f, 8000).await;
    let sent = Instant::now();
    let (status, log) = sigterm(&mut f);
    let took = sent.elapsed();
    assert_eq!(status.code(), Some(0), "{log}");
    assert!(
        took < Duration::from_secs(6),
        "stopping took {took:?} with a 1 s grace period: {log}"
    );
    assert!(
        log.contains("requests still in flight after the grace period: cut"),
        "{log}"
    );
    assert!(
        log.contains("released the leases of work that was cut"),
        "{log}"
    );
    let cut = read.await.unwrap();
    assert!(
        cut.as_ref().map_or(true, |r| r.status != 200),
        "a cut read was answered 200: {cut:?}"
    );

    set_latency(&f, 0).await;
    let env = f.env();
    f.nodes[0].start(&env);
    let started = Instant::now();
    let again = f.app_read(0, "?min_validity=0").await;
    assert_eq!(
        again.status, 200,
        "the lease was left behind: the refresh waits for it ({again:?})"
    );
    assert!(started.elapsed() < Duration::from_secs(20));
}

/// The access lines (target `tokenwarden_server::access`) of a JSON log.
fn access_lines(log: &str) -> Vec<Value> {
    log.lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .filter(|v| v["target"] == "tokenwarden_server::access")
        .collect()
}

/// Waits until the instance's log has an access line with `request_id`.
async fn logged(f: &Fleet, request_id: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let log = std::fs::read_to_string(f.nodes[0].log()).unwrap();
        if access_lines(&log)
            .iter()
            .any(|l| l["request_id"] == request_id)
        {
            return log;
        }
        assert!(
            Instant::now() < deadline,
            "no access line {request_id}: {log}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Item 4: `TOKENWARDEN_LOG_FORMAT=json`: every line is a JSON object; each request gets one
/// access line at INFO with the method, the route template (never the raw path or the query),
/// the status, the duration and the request id, which the answer echoes: the one sent when
/// sane, else a new one. A successful read of the read route writes no line; a failed one does.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn issue13_json_access_lines_name_route_templates_and_request_ids_and_skip_good_reads() {
    let _serial = SERIAL.lock().await;
    let f = Fleet::start_with(None, 1, 600, false, &[("TOKENWARDEN_LOG_FORMAT", "json")]).await;
    let base = f.nodes[0].base();
    let get = |path: &str, id: Option<&str>, bearer: &str| {
        let mut req = f.http.get(format!("{base}{path}")).bearer_auth(bearer);
        if let Some(id) = id {
            req = req.header("x-request-id", id);
        }
        req.send()
    };
    let header =
        |res: &reqwest::Response| res.headers()["x-request-id"].to_str().unwrap().to_owned();

    // An admin request with an id and a query value that must not be logged.
    let token_path = format!(
        "/api/v1/tokens/{}?probe=query-value-never-logged",
        f.token_id
    );
    let res = get(&token_path, Some("it-req-0001"), ADMIN).await.unwrap();
    assert_eq!(res.status().as_u16(), 200);
    assert_eq!(header(&res), "it-req-0001");
    // An insane id (a space) is replaced by a new one.
    let res = get("/api/v1/apps", Some("bad id"), ADMIN).await.unwrap();
    let made = header(&res);
    assert_eq!(made.len(), 16, "{made}");
    assert!(made.chars().all(|c| c.is_ascii_hexdigit()), "{made}");
    // The read route: a good read, then a refused one.
    let read_path = format!("/api/v1/access-tokens/{}", crate::instances::TOKEN);
    let res = get(&read_path, Some("it-read-good"), &f.api_key)
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 200);
    assert_eq!(header(&res), "it-read-good");
    let res = get(&read_path, Some("it-read-bad"), "twk_not-a-key")
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 401);
    assert_eq!(header(&res), "it-read-bad");
    // No route.
    let res = get("/no/such/thing", Some("it-no-route"), ADMIN)
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 404);

    let log = logged(&f, "it-no-route").await;
    let lines = access_lines(&log);
    let by_id =
        |id: &str| -> Vec<&Value> { lines.iter().filter(|l| l["request_id"] == id).collect() };
    let admin = by_id("it-req-0001");
    assert_eq!(admin.len(), 1, "{admin:?}");
    assert_eq!(admin[0]["level"], "INFO");
    assert_eq!(admin[0]["method"], "GET");
    assert_eq!(admin[0]["route"], "/api/v1/tokens/{id}");
    assert_eq!(admin[0]["status"], 200);
    assert!(admin[0]["duration_ms"].as_f64().is_some(), "{}", admin[0]);
    assert_eq!(by_id(&made).len(), 1, "{log}");
    assert_eq!(by_id(&made)[0]["route"], "/api/v1/apps");
    assert!(
        by_id("it-read-good").is_empty(),
        "a good read was logged: {log}"
    );
    let bad = by_id("it-read-bad");
    assert_eq!(bad.len(), 1, "{log}");
    assert_eq!(bad[0]["route"], "/api/v1/access-tokens/{name}");
    assert_eq!(bad[0]["status"], 401);
    assert_eq!(by_id("it-no-route")[0]["route"], "(no route)");
    assert!(!log.contains("query-value-never-logged"), "{log}");
    assert!(!log.contains(&f.api_key), "an API key reached the log");
    // Raw paths never: the token's id only ever appears in templates' place holders.
    assert!(
        !lines
            .iter()
            .any(|l| l["route"].as_str().unwrap_or("").contains(&f.token_id)),
        "{log}"
    );
}

/// Item 5: SIGHUP reads the config file again: the new log filter is in force at once (the
/// access lines it had hidden appear), the new lead times are taken, and the log says what was
/// reloaded and which changed settings need a restart; a file with an error changes nothing.
#[test]
fn issue13_sighup_reloads_the_log_filter_and_lead_times_and_names_what_needs_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("tokenwarden.toml");
    std::fs::write(
        &conf,
        "log = \"info,tokenwarden_server::access=warn\"\nreminder_lead_times = [\"14d\", \"1d\"]\n",
    )
    .unwrap();
    let conf_arg = conf.to_str().unwrap().to_owned();
    let server = serve(
        dir.path(),
        &[("TOKENWARDEN_ADMIN_TOKEN", ADMIN)],
        &["--config", &conf_arg],
    );
    let http = crate::Http::new();
    let hup = |server: &crate::Server| {
        assert!(
            std::process::Command::new("kill")
                .arg("-HUP")
                .arg(server.child.id().to_string())
                .status()
                .unwrap()
                .success()
        );
    };
    let wait_for = |what: &str| {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let log = std::fs::read_to_string(&server.log).unwrap();
            if log.contains(what) {
                return log;
            }
            assert!(Instant::now() < deadline, "no {what:?} in: {log}");
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    let (s, _) = http.send("GET", &server.url("/api/v1/apps"), Some(ADMIN), None);
    assert_eq!(s, 200);
    let log = std::fs::read_to_string(&server.log).unwrap();
    assert!(
        !log.contains("route=/api/v1/apps"),
        "the access line is hidden by the filter: {log}"
    );

    std::fs::write(
        &conf,
        "log = \"info\"\nreminder_lead_times = [\"10d\", \"2d\"]\nmax_body_bytes = 2048\n",
    )
    .unwrap();
    hup(&server);
    let log = wait_for("SIGHUP: configuration reloaded");
    let reloaded = log
        .lines()
        .find(|l| l.contains("SIGHUP: configuration reloaded"))
        .unwrap();
    assert!(
        reloaded.contains("reloaded=log,reminder_lead_times"),
        "{reloaded}"
    );
    assert!(
        reloaded.contains("needs_restart=max_body_bytes"),
        "{reloaded}"
    );
    assert!(
        reloaded.contains("reminder_lead_times=10d,2d"),
        "{reloaded}"
    );
    // Logged right after the line above: wait for it rather than race the log file.
    wait_for("these settings changed but take effect only after a restart");
    let (s, _) = http.send("GET", &server.url("/api/v1/apps"), Some(ADMIN), None);
    assert_eq!(s, 200);
    wait_for("route=/api/v1/apps");

    // A broken file: nothing changes, the service goes on.
    std::fs::write(&conf, "log = \"info\"\nno_such_setting = 1\n").unwrap();
    hup(&server);
    wait_for("SIGHUP: the configuration has an error; nothing was reloaded");
    let (s, _) = http.send("GET", &server.url("/healthz"), None, None);
    assert_eq!(s, 200);

    // And `config check` says what is wrong with it, as a command.
    let out = cmd(dir.path(), &[])
        .args(["config", "check", "--config", &conf_arg])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no_such_setting"),
        "{out:?}"
    );
    let log = server.stop();
    assert!(log.contains("stopped"), "{log}");
}

/// Item 6: the shipped unit (`dist/tokenwarden.service`) has the hardening the guide promises,
/// is the one the guide shows, and its `ExecStart` command line, run with its `Environment=`
/// settings and the shipped configuration, is accepted by the real binary: `config check` loads
/// it as `serve` would, and `serve`'s arguments parse.
#[test]
fn issue13_the_shipped_systemd_unit_is_hardened_and_its_command_line_parses() {
    let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let unit = std::fs::read_to_string(repo.join("dist/tokenwarden.service")).unwrap();
    let guide = std::fs::read_to_string(repo.join("docs/operations.md")).unwrap();
    assert!(
        guide.contains(&unit),
        "docs/operations.md must show the shipped unit as it is"
    );
    let mut section = String::new();
    let mut service: Vec<(String, String)> = Vec::new();
    for line in unit.lines().map(str::trim) {
        if line.starts_with('#') || line.is_empty() {
            continue;
        }
        if line.starts_with('[') {
            section = line.to_owned();
            continue;
        }
        let (k, v) = line
            .split_once('=')
            .unwrap_or_else(|| panic!("not KEY=VALUE: {line}"));
        if section == "[Service]" {
            service.push((k.to_owned(), v.to_owned()));
        }
    }
    let get = |k: &str| -> Vec<&str> {
        service
            .iter()
            .filter(|(key, _)| key == k)
            .map(|(_, v)| v.as_str())
            .collect()
    };
    for (k, v) in [
        ("DynamicUser", "yes"),
        ("StateDirectory", "tokenwarden"),
        ("ProtectSystem", "strict"),
        ("NoNewPrivileges", "yes"),
        ("PrivateTmp", "yes"),
        ("ProtectHome", "yes"),
        ("CapabilityBoundingSet", ""),
        ("SystemCallFilter", "@system-service"),
        ("RestrictAddressFamilies", "AF_INET AF_INET6 AF_UNIX"),
        ("ExecReload", "/bin/kill -HUP $MAINPID"),
        ("KillSignal", "SIGTERM"),
    ] {
        assert_eq!(get(k), vec![v], "{k}");
    }
    let stop: u64 = get("TimeoutStopSec")[0].parse().unwrap();
    assert!(
        stop > 10,
        "TimeoutStopSec must exceed shutdown_grace (10 s)"
    );

    // The machine's paths, moved into a scratch folder.
    let dir = tempfile::tempdir().unwrap();
    let etc = dir.path().join("etc/tokenwarden");
    let creds = dir.path().join("credentials");
    let state = dir.path().join("var/lib/tokenwarden");
    for d in [&etc, &creds, &state] {
        std::fs::create_dir_all(d).unwrap();
    }
    std::fs::copy(
        repo.join("dist/tokenwarden.toml"),
        etc.join("tokenwarden.toml"),
    )
    .unwrap();
    std::fs::write(
        creds.join("master.key"),
        format!("{}\n", crate::instances::MASTER_KEY),
    )
    .unwrap();
    let moved = |v: &str| {
        v.replace("/etc/tokenwarden", etc.to_str().unwrap())
            .replace("/var/lib/tokenwarden", state.to_str().unwrap())
            .replace("%d", creds.to_str().unwrap())
    };
    let env: Vec<(String, String)> = get("Environment")
        .iter()
        .map(|e| {
            let (k, v) = e.split_once('=').unwrap();
            (k.to_owned(), moved(v))
        })
        .collect();
    let exec = get("ExecStart")[0];
    let mut args: Vec<String> = exec.split_whitespace().map(moved).collect();
    assert_eq!(args.remove(0), "/usr/local/bin/tokenwarden");
    assert_eq!(args.last().map(String::as_str), Some("serve"), "{exec}");
    let env_refs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();

    let mut check_args = args.clone();
    check_args.pop();
    check_args.extend(["config".to_owned(), "check".to_owned()]);
    let out = cmd(dir.path(), &env_refs)
        .args(&check_args)
        .output()
        .unwrap();
    let (stdout, stderr) = crate::text(&out);
    assert!(out.status.success(), "{stdout}{stderr}");
    assert!(stdout.contains("configuration ok"), "{stdout}");
    assert!(stdout.contains("https://tokens.example.com"), "{stdout}");
    assert!(
        stdout.contains("Json"),
        "TOKENWARDEN_LOG_FORMAT=json is taken: {stdout}"
    );
    assert!(stdout.contains(state.to_str().unwrap()), "{stdout}");
    assert!(
        !stdout.contains(crate::instances::MASTER_KEY),
        "a secret was printed"
    );

    let mut help_args = args.clone();
    help_args.push("--help".to_owned());
    let out = cmd(dir.path(), &env_refs)
        .args(&help_args)
        .output()
        .unwrap();
    assert!(out.status.success(), "{:?}", crate::text(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("--listen"));
    assert!(
        !state.join("tokenwarden.db").exists(),
        "checking touched no data"
    );
}
