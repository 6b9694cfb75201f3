//! Issue 13: `backup` while `serve` runs under write load, `restore` into a new folder (and what
//! it refuses), then a server on the restored folder answers every token; `export` /
//! `import` from SQLite into PostgreSQL, idempotent, with a dry run, and the apps' keys and
//! tokens working on the new instance.

use crate::instances::{APP, Fleet, MASTER_KEY, SERIAL, TOKEN};
use crate::{ADMIN, cmd, spawn_listening, text};
use serde_json::{Value, json};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const PUBLIC_URL: &str = "https://tokenwarden.example.test";
const OTHER_KEY: &str = "HxwbGhkYFxYVFBMSERAPDg0MCwoJCAcGBQQDAgEAAAA=";
const PASSPHRASE: &str = "export passphrase for the test";

fn env_of(f: &Fleet) -> Vec<(String, String)> {
    f.env()
}

fn run_with(dir: &Path, env: &[(String, String)], args: &[&str]) -> std::process::Output {
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    cmd(dir, &env).args(args).output().unwrap()
}

/// Creates a global Snowflake token `name` and signs it in through the emulator, as
/// `Fleet::authorize` does for the fleet's own token.
async fn add_authorized_token(f: &Fleet, name: &str) {
    let emu = f.emu.emulator.clone();
    let (s, tok) = f
        .admin(
            0,
            "POST",
            "/api/v1/tokens",
            Some(json!({"name": name, "provider": "snowflake",
                        "settings": {"account": f.emu.base_url(), "role": "ANALYST"}})),
        )
        .await;
    assert_eq!(s, 201, "{tok}");
    let id = tok["id"].as_str().unwrap().to_owned();
    let (s, setup) = f
        .admin(0, "GET", &format!("/api/v1/tokens/{id}/setup"), None)
        .await;
    assert_eq!(s, 200, "{setup}");
    let runs = emu.run_script_as("ADMIN", setup["snowflake"]["sql"].as_str().unwrap());
    let cell = runs[1].outcome.first_value().unwrap().to_owned();
    let res = f
        .http
        .post(format!(
            "{}/api/v1/tokens/{id}/client-secrets",
            f.nodes[0].base()
        ))
        .bearer_auth(ADMIN)
        .header("content-type", "text/plain")
        .body(cell)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 200);
    let (s, a) = f
        .admin(0, "POST", &format!("/api/v1/tokens/{id}/authorize"), None)
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
        .get(format!("{}/oauth/callback?{query}", f.nodes[0].base()))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 200);
}

async fn app_id(f: &Fleet) -> String {
    let (s, apps) = f.admin(0, "GET", "/api/v1/apps", None).await;
    assert_eq!(s, 200, "{apps}");
    apps["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["name"] == APP)
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// The app reads `name` from the server at `base`: the access token.
async fn read(http: &reqwest::Client, base: &str, api_key: &str, name: &str) -> (u16, Value) {
    let res = http
        .get(format!("{base}/api/v1/access-tokens/{name}"))
        .bearer_auth(api_key)
        .send()
        .await
        .unwrap();
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

/// `GET {url}` as the admin; asserts 200 and returns the JSON answer.
async fn admin_get(http: &reqwest::Client, url: &str) -> Value {
    let res = http.get(url).bearer_auth(ADMIN).send().await.unwrap();
    assert_eq!(res.status().as_u16(), 200, "GET {url}");
    res.json().await.unwrap()
}

async fn token_names(http: &reqwest::Client, base: &str) -> Vec<String> {
    let v = admin_get(http, &format!("{base}/api/v1/tokens?limit=1000")).await;
    v["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_owned())
        .collect()
}

/// Issue 13 item 2: a backup taken while the server takes writes restores into a new folder
/// and a server started on it gives the app every token; a wrong key, a newer schema and a
/// folder that holds anything are refused with the reason, and change nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn issue13_backup_under_write_load_restores_and_every_token_reads() {
    let _serial = SERIAL.lock().await;
    // SQLite in the instance's data folder; access tokens live 60 s.
    let f = Fleet::start_on(None, 1, 60, false).await;
    let names: Vec<String> = std::iter::once(TOKEN.to_owned())
        .chain((1..=3).map(|i| format!("snowflake-extra-{i}")))
        .collect();
    for n in &names[1..] {
        add_authorized_token(&f, n).await;
    }
    let id = app_id(&f).await;
    let (s, app) = f
        .admin(
            0,
            "PATCH",
            &format!("/api/v1/apps/{id}"),
            Some(json!({"tokens": names})),
        )
        .await;
    assert_eq!(s, 200, "{app}");
    let base = f.nodes[0].base();
    for n in &names {
        let (s, body) = read(&f.http, &base, &f.api_key, n).await;
        assert_eq!(s, 200, "{n}: {body}");
    }

    // Write load: new tokens, setting changes and reads, until the backup is done.
    let stop = Arc::new(AtomicBool::new(false));
    let acknowledged = Arc::new(Mutex::new(Vec::<String>::new()));
    let load = {
        let (stop, acknowledged, http, base) = (
            stop.clone(),
            acknowledged.clone(),
            f.http.clone(),
            base.clone(),
        );
        let account = f.emu.base_url();
        tokio::spawn(async move {
            let mut i = 0;
            while !stop.load(Ordering::Relaxed) {
                i += 1;
                let name = format!("load-{i}");
                let res = http
                    .post(format!("{base}/api/v1/tokens"))
                    .bearer_auth(ADMIN)
                    .json(&json!({"name": name, "provider": "snowflake",
                                  "settings": {"account": account, "role": format!("R{i}")}}))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(res.status().as_u16(), 201);
                acknowledged.lock().unwrap().push(name);
            }
            i
        })
    };
    while acknowledged.lock().unwrap().len() < 20 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let before_backup: Vec<String> = acknowledged.lock().unwrap().clone();
    let work = tempfile::tempdir().unwrap();
    let file = work.path().join("tw.backup");
    let (dir, env) = (f.nodes[0].dir.path().to_owned(), env_of(&f));
    let out = {
        let (file, dir, env) = (file.clone(), dir.clone(), env.clone());
        tokio::task::spawn_blocking(move || {
            run_with(&dir, &env, &["backup", "--output", file.to_str().unwrap()])
        })
        .await
        .unwrap()
    };
    stop.store(true, Ordering::Relaxed);
    let created = load.await.unwrap();
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}{stderr}");
    assert!(stdout.contains("backup written"), "{stdout}");
    assert!(
        created > before_backup.len(),
        "the load ran during the backup"
    );
    let bytes = std::fs::read(&file).unwrap();
    let header: Value =
        serde_json::from_slice(&bytes[..bytes.iter().position(|b| *b == b'\n').unwrap()]).unwrap();
    assert_eq!(header["format"], "tokenwarden-backup");
    assert_eq!(header["backend"], "sqlite");
    assert!(header["schema_version"].as_i64().unwrap() >= 7, "{header}");
    assert_eq!(header["master_key_check"].as_str().unwrap().len(), 32);
    // The master key itself is not in the backup.
    assert!(
        !bytes
            .windows(MASTER_KEY.len())
            .any(|w| w == MASTER_KEY.as_bytes())
    );
    // A second backup to the same file is refused (nothing is overwritten).
    let again = run_with(&dir, &env, &["backup", "--output", file.to_str().unwrap()]);
    assert!(!again.status.success());
    assert!(
        text(&again).1.contains("already exists"),
        "{}",
        text(&again).1
    );

    let restored = work.path().join("restored");
    let restored_arg = restored.to_str().unwrap().to_owned();
    let restore = |env: &[(String, String)], file: &Path| {
        run_with(
            work.path(),
            env,
            &[
                "--data-dir",
                &restored_arg,
                "restore",
                file.to_str().unwrap(),
            ],
        )
    };
    // A wrong master key is refused before anything is written.
    let wrong: Vec<(String, String)> = env
        .iter()
        .map(|(k, v)| {
            let v = if k == "TOKENWARDEN_MASTER_KEY" {
                OTHER_KEY.to_owned()
            } else {
                v.clone()
            };
            (k.clone(), v)
        })
        .collect();
    let out = restore(&wrong, &file);
    let (o, e) = text(&out);
    assert!(!out.status.success(), "{o}{e}");
    assert!(e.contains("wrong master key"), "{e}");
    assert!(!restored.exists());
    // No key at all: the message says which is needed.
    let keyless: Vec<(String, String)> = env
        .iter()
        .filter(|(k, _)| k != "TOKENWARDEN_MASTER_KEY")
        .cloned()
        .collect();
    let out = restore(&keyless, &file);
    assert!(!out.status.success());
    assert!(
        text(&out).1.contains("needs the master key"),
        "{}",
        text(&out).1
    );
    assert!(!restored.exists());
    // A backup of a newer schema than this binary knows.
    let newer = work.path().join("newer.backup");
    let nl = bytes.iter().position(|b| *b == b'\n').unwrap();
    let mut h = header.clone();
    h["schema_version"] = json!(9999);
    let mut newer_bytes = serde_json::to_vec(&h).unwrap();
    newer_bytes.extend_from_slice(&bytes[nl..]);
    std::fs::write(&newer, newer_bytes).unwrap();
    let out = restore(&env, &newer);
    assert!(!out.status.success());
    assert!(
        text(&out).1.contains("newer tokenwarden"),
        "{}",
        text(&out).1
    );
    assert!(!restored.exists());
    // Not a backup at all.
    let out = restore(
        &env,
        &work.path().join("newer.backup").with_extension("none"),
    );
    assert!(!out.status.success());

    // The restore.
    let out = restore(&env, &file);
    let (o, e) = text(&out);
    assert!(out.status.success(), "{o}{e}");
    assert!(o.contains("restored"), "{o}");
    // Into a folder that now holds data: refused.
    let out = restore(&env, &file);
    assert!(!out.status.success());
    assert!(text(&out).1.contains("not empty"), "{}", text(&out).1);

    // A server on the restored folder (the original keeps running).
    let log = work.path().join("restored-serve.log");
    let envs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let mut c = cmd(work.path(), &envs);
    c.arg("--data-dir")
        .arg(&restored)
        .arg("serve")
        .stdout(std::process::Stdio::null());
    let server = spawn_listening(c, &log);
    let rbase = server.base.clone();
    for n in &names {
        let (s, body) = read(&f.http, &rbase, &f.api_key, n).await;
        assert_eq!(s, 200, "{n} from the restored server: {body}");
        let token = body["access_token"].as_str().unwrap();
        let (ok, answer) = f.snowflake_accepts(token).await;
        assert!(ok, "{n}: {answer}");
    }
    let restored_names = token_names(&f.http, &rbase).await;
    for n in names.iter().chain(before_backup.iter()) {
        assert!(
            restored_names.contains(n),
            "{n} was written before the backup began"
        );
    }
    let logged = server.stop();
    assert!(!logged.contains(MASTER_KEY));
}

/// Issue 13 item 3: export from SQLite, import into PostgreSQL (a dry run first, which changes
/// nothing), import again (nothing to change); the new instance then serves the app with its
/// old API key and the token material, and exports the same document.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn issue13_export_from_sqlite_imports_into_postgres_idempotently() {
    let _serial = SERIAL.lock().await;
    let f = Fleet::start_on(None, 1, 600, false).await;
    // More to move: an app-level token with a client id, two channels, an admin-stopped app.
    let (s, body) = f
        .admin(
            0,
            "POST",
            "/api/v1/tokens",
            Some(
                json!({"name": "warehouse", "provider": "snowflake", "app": APP,
                        "client_id": "CLIENT-ID-1",
                        "settings": {"account": f.emu.base_url(), "role": "LOADER"}}),
            ),
        )
        .await;
    assert_eq!(s, 201, "{body}");
    // A Snowflake key-pair token (issue 12): its private key must move with it, or the new
    // instance would sign with a key Snowflake does not know.
    let (s, body) = f
        .admin(
            0,
            "POST",
            "/api/v1/tokens",
            Some(
                json!({"name": "sf-keys", "provider": "snowflake", "grant": "snowflake_keypair",
                        "settings": {"account": f.emu.base_url(), "role": "LOADER",
                                     "user": "alice", "account_identifier": "EMU12345"}}),
            ),
        )
        .await;
    assert_eq!(s, 201, "{body}");
    let (s, keys) = f
        .admin(
            0,
            "GET",
            &format!("/api/v1/tokens/{}/keys", body["id"].as_str().unwrap()),
            None,
        )
        .await;
    assert_eq!(s, 200, "{keys}");
    let fingerprint = keys["current"]["fingerprint"].as_str().unwrap().to_owned();
    let (s, body) = f
        .admin(
            0,
            "POST",
            "/api/v1/notification-channels",
            Some(json!({"name": "ops hook", "kind": "webhook",
                        "url": "https://hooks.example.test/tokenwarden",
                        "events": ["token.expiring"]})),
        )
        .await;
    assert_eq!(s, 201, "{body}");
    let (s, body) = f
        .admin(
            0,
            "POST",
            "/api/v1/notification-channels",
            Some(
                json!({"name": "sales mail", "kind": "email", "to": ["ops@example.test"],
                        "app": APP}),
            ),
        )
        .await;
    assert_eq!(s, 201, "{body}");
    let (s, body) = f
        .admin(
            0,
            "POST",
            "/api/v1/apps",
            Some(json!({"name": "paused", "tokens": [TOKEN]})),
        )
        .await;
    assert_eq!(s, 201, "{body}");
    let paused = body["id"].as_str().unwrap().to_owned();
    let (s, body) = f
        .admin(0, "POST", &format!("/api/v1/apps/{paused}/stop"), None)
        .await;
    assert_eq!(s, 200, "{body}");
    let base = f.nodes[0].base();
    let (s, before) = read(&f.http, &base, &f.api_key, TOKEN).await;
    assert_eq!(s, 200, "{before}");
    let access = before["access_token"].as_str().unwrap().to_owned();

    let work = tempfile::tempdir().unwrap();
    let (dir, env) = (f.nodes[0].dir.path().to_owned(), env_of(&f));
    // Without secrets: no secret in the document.
    let plain = work.path().join("plain.json");
    let out = run_with(&dir, &env, &["export", "--output", plain.to_str().unwrap()]);
    assert!(out.status.success(), "{:?}", text(&out));
    let plain_text = std::fs::read_to_string(&plain).unwrap();
    let doc: Value = serde_json::from_str(&plain_text).unwrap();
    assert_eq!(doc["format"], "tokenwarden-export");
    assert!(doc.get("secrets").is_none());
    assert!(!plain_text.contains(&access));
    assert_eq!(doc["tokens"].as_array().unwrap().len(), 3, "{doc}");
    assert_eq!(doc["providers"][0]["id"], "snowflake");
    // With secrets: sealed with the passphrase from the environment.
    let full = work.path().join("full.json");
    let mut senv = env.clone();
    senv.push(("TOKENWARDEN_PASSPHRASE".into(), PASSPHRASE.into()));
    let out = run_with(
        &dir,
        &senv,
        &[
            "export",
            "--with-secrets",
            "--output",
            full.to_str().unwrap(),
        ],
    );
    assert!(out.status.success(), "{:?}", text(&out));
    let full_text = std::fs::read_to_string(&full).unwrap();
    assert!(!full_text.contains(&access));
    // The app's key is in it only as its hash: not its secret part (`tw_app_<id>_<secret>`).
    assert!(!full_text.contains(f.api_key.splitn(4, '_').nth(3).unwrap()));
    let full_doc: Value = serde_json::from_str(&full_text).unwrap();
    assert_eq!(full_doc["secrets"]["kdf"], "argon2id");

    // The new instance: PostgreSQL, its own master key.
    let pg = tokenwarden_testkit::require_postgres().url;
    let new_dir = tempfile::tempdir().unwrap();
    let penv: Vec<(String, String)> = vec![
        ("TOKENWARDEN_DATABASE_URL".into(), pg.clone()),
        ("TOKENWARDEN_MASTER_KEY".into(), OTHER_KEY.into()),
        ("TOKENWARDEN_ADMIN_TOKEN".into(), ADMIN.into()),
        ("TOKENWARDEN_PUBLIC_URL".into(), PUBLIC_URL.into()),
        ("TOKENWARDEN_ENGINE_INTERVAL".into(), "off".into()),
    ];
    let mut ppass = penv.clone();
    ppass.push(("TOKENWARDEN_PASSPHRASE".into(), PASSPHRASE.into()));
    let import = |env: &[(String, String)], extra: &[&str]| {
        let mut args = vec!["import", full.to_str().unwrap()];
        args.extend_from_slice(extra);
        run_with(new_dir.path(), env, &args)
    };
    // Like every command but serve/migrate, import opens an existing database only (issue 11
    // item 10): the new instance's database is made by `migrate` first.
    let out = run_with(new_dir.path(), &penv, &["migrate"]);
    assert!(out.status.success(), "{:?}", text(&out));
    // Without the passphrase, or with a wrong one: refused, nothing changed.
    let out = import(&penv, &[]);
    assert!(!out.status.success());
    assert!(text(&out).1.contains("passphrase"), "{}", text(&out).1);
    let mut wrong = penv.clone();
    wrong.push((
        "TOKENWARDEN_PASSPHRASE".into(),
        "not the passphrase at all".into(),
    ));
    let out = import(&wrong, &[]);
    assert!(!out.status.success());
    assert!(
        text(&out).1.contains("passphrase is wrong"),
        "{}",
        text(&out).1
    );
    // A dry run lists what would change and changes nothing (a second one lists the same).
    let dry = import(&ppass, &["--dry-run"]);
    let (dry_out, dry_err) = text(&dry);
    assert!(dry.status.success(), "{dry_out}{dry_err}");
    for line in [
        format!("would create app {APP}"),
        "would create app paused".to_owned(),
        "would stop app paused".to_owned(),
        format!("would create token {TOKEN}"),
        format!("would create token {APP}/warehouse"),
        "would create token sf-keys".to_owned(),
        "would import signing key of token sf-keys".to_owned(),
        "would create channel ops hook".to_owned(),
        "would import signing secret of channel ops hook".to_owned(),
        format!("would create channel {APP}/sales mail"),
    ] {
        assert!(dry_out.lines().any(|l| l == line), "{line} in {dry_out}");
    }
    let dry2 = import(&ppass, &["--dry-run"]);
    assert_eq!(text(&dry2).0, dry_out);
    // The import.
    let out = import(&ppass, &[]);
    let (o, e) = text(&out);
    assert!(out.status.success(), "{o}{e}");
    assert!(o.contains(&format!("create token {TOKEN}")), "{o}");
    assert!(
        o.contains(&format!("import material of token {TOKEN}")),
        "{o}"
    );
    assert!(
        o.contains("import signing secret of channel ops hook"),
        "{o}"
    );
    assert!(o.contains("import signing key of token sf-keys"), "{o}");
    // Again: nothing to change.
    let out = import(&ppass, &[]);
    let (o, e) = text(&out);
    assert!(out.status.success(), "{o}{e}");
    assert_eq!(o, "", "a second import changes nothing");
    assert!(e.contains("nothing to change"), "{e}");

    // Both instances export the same document (but for its time).
    let moved = work.path().join("moved.json");
    let out = run_with(
        new_dir.path(),
        &penv,
        &["export", "--output", moved.to_str().unwrap()],
    );
    assert!(out.status.success(), "{:?}", text(&out));
    let mut a: Value = serde_json::from_str(&plain_text).unwrap();
    let mut b: Value = serde_json::from_str(&std::fs::read_to_string(&moved).unwrap()).unwrap();
    a["exported_at"] = Value::Null;
    b["exported_at"] = Value::Null;
    assert_eq!(a, b);

    // The new instance serves the app with its old key and the moved token.
    let envs: Vec<(&str, &str)> = penv.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let mut c = cmd(new_dir.path(), &envs);
    c.arg("serve").stdout(std::process::Stdio::null());
    let server = spawn_listening(c, &new_dir.path().join("serve.log"));
    let (s, after) = read(&f.http, &server.base, &f.api_key, TOKEN).await;
    assert_eq!(s, 200, "{after}");
    assert_eq!(after["access_token"], before["access_token"]);
    let (ok, answer) = f
        .snowflake_accepts(after["access_token"].as_str().unwrap())
        .await;
    assert!(ok, "{answer}");
    // The import went through the core: the same audit records as any create.
    let audit = admin_get(
        &f.http,
        &format!("{}/api/v1/audit?action=token.create&limit=100", server.base),
    )
    .await;
    let items = audit["items"].as_array().unwrap();
    assert_eq!(items.len(), 3, "{audit}");
    assert!(items.iter().all(|e| e["actor"] == "cli"), "{audit}");
    // The key-pair token signs with the key it had: the same public key's fingerprint.
    let tokens = admin_get(&f.http, &format!("{}/api/v1/tokens?limit=100", server.base)).await;
    let moved_id = tokens["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "sf-keys")
        .unwrap_or_else(|| panic!("{tokens}"))["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let moved_keys = admin_get(
        &f.http,
        &format!("{}/api/v1/tokens/{moved_id}/keys", server.base),
    )
    .await;
    assert_eq!(moved_keys["current"]["fingerprint"], fingerprint.as_str());
    server.stop();
}

/// Issue 13 item 2 on PostgreSQL: the backup is pg_dump's (password kept off its command line),
/// restored into another, empty database; a database holding tables is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn issue13_postgres_backup_restores_into_an_empty_database() {
    let _serial = SERIAL.lock().await;
    let db = tokenwarden_testkit::require_postgres().url;
    let f = Fleet::start_on(Some(db), 1, 600, false).await;
    let (dir, env) = (f.nodes[0].dir.path().to_owned(), env_of(&f));
    let work = tempfile::tempdir().unwrap();
    let file = work.path().join("pg.backup");
    let out = run_with(&dir, &env, &["backup", "--output", file.to_str().unwrap()]);
    assert!(out.status.success(), "{:?}", text(&out));
    let bytes = std::fs::read(&file).unwrap();
    let header: Value =
        serde_json::from_slice(&bytes[..bytes.iter().position(|b| *b == b'\n').unwrap()]).unwrap();
    assert_eq!(header["backend"], "postgres");
    let target = tokenwarden_testkit::require_postgres().url;
    let tenv: Vec<(String, String)> = env
        .iter()
        .map(|(k, v)| {
            let v = if k == "TOKENWARDEN_DATABASE_URL" {
                target.clone()
            } else {
                v.clone()
            };
            (k.clone(), v)
        })
        .collect();
    let out = run_with(work.path(), &tenv, &["restore", file.to_str().unwrap()]);
    assert!(out.status.success(), "{:?}", text(&out));
    let out = run_with(work.path(), &tenv, &["restore", file.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(text(&out).1.contains("holds tables"), "{}", text(&out).1);
    let envs: Vec<(&str, &str)> = tenv.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let mut c = cmd(work.path(), &envs);
    c.arg("serve").stdout(std::process::Stdio::null());
    let server = spawn_listening(c, &work.path().join("serve.log"));
    let (s, body) = read(&f.http, &server.base, &f.api_key, TOKEN).await;
    assert_eq!(s, 200, "{body}");
    server.stop();
}
