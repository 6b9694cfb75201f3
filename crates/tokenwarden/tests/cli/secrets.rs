//! R23, the secrets scan: seed unique secrets, drive every feature of a real `tokenwarden serve`
//! (logging at `trace`) against the Snowflake emulator, a webhook receiver and an SMTP sink, then
//! look for every secret, raw and encoded (percent, form, base64 at any alignment, hex), in every
//! log line, response head and body, HTML page, audit row, CLI output, outgoing notification,
//! and every byte of the database (SQLite's files and WAL; PostgreSQL through `pg_dump`).
//!
//! Secrets seeded: the client secrets Snowflake (the emulator) issued and one typed in a PATCH,
//! every access and refresh token the emulator issued, the app API keys (API and UI), the
//! bootstrap and a CLI-made admin token, the admin password, the UI session cookie, the webhook
//! signing secret, the SMTP password (the SQLite run; the PostgreSQL run delivers the email
//! instead, see below), the master key, and a Snowflake key-pair token's JWTs (its private key,
//! generated inside tokenwarden, is looked for by its PEM marker). Each may appear only where it is
//! handed over on purpose (an access token in a read's answer, a new key on its shown-once
//! answer); anywhere else is a failure.

use crate::{ADMIN, Server, cmd, serve};
use base64::Engine as _;
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::path::Path;
use std::process::Output;
use std::time::{Duration, Instant};

const PASSWORD: &str = "SEEDED admin pass-phrase 7781/+=";
const SMTP_PASSWORD: &str = "smtp-SEEDED-password-4242";
const PATCHED_SECRET: &str = "client-SEEDED-typed-secret-3333";

/// Kinds of secret, and where each may be seen.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    ClientSecret,
    AccessToken,
    RefreshToken,
    ApiKey,
    AdminToken,
    AdminPassword,
    Session,
    WebhookSecret,
    SmtpPassword,
    MasterKey,
}

/// One place looked at: what it is, which kinds may appear there, its bytes.
struct Place {
    label: String,
    allowed: Vec<Kind>,
    bytes: Vec<u8>,
}

struct Seen {
    places: Vec<Place>,
    http: reqwest::Client,
    base: String,
}

struct Resp {
    status: u16,
    headers: reqwest::header::HeaderMap,
    text: String,
}

impl Resp {
    fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or(Value::Null)
    }
}

impl Seen {
    fn record(&mut self, label: impl Into<String>, allowed: &[Kind], bytes: impl Into<Vec<u8>>) {
        self.places.push(Place {
            label: label.into(),
            allowed: allowed.to_vec(),
            bytes: bytes.into(),
        });
    }

    /// Sends `req`, records its answer (head and body) as `label`, returns it.
    async fn send(&mut self, label: &str, allowed: &[Kind], req: reqwest::RequestBuilder) -> Resp {
        let res = req.send().await.unwrap_or_else(|e| panic!("{label}: {e}"));
        let status = res.status().as_u16();
        let headers = res.headers().clone();
        let text = res.text().await.unwrap();
        let head: String = headers
            .iter()
            .map(|(k, v)| format!("{k}: {}\n", String::from_utf8_lossy(v.as_bytes())))
            .collect();
        self.record(
            format!("{label} ({status})"),
            allowed,
            format!("HTTP {status}\n{head}\n{text}"),
        );
        Resp {
            status,
            headers,
            text,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    async fn api(
        &mut self,
        method: &str,
        path: &str,
        bearer: Option<&str>,
        body: Option<Value>,
    ) -> Resp {
        self.api_allowing(method, path, bearer, body, &[]).await
    }

    async fn api_allowing(
        &mut self,
        method: &str,
        path: &str,
        bearer: Option<&str>,
        body: Option<Value>,
        allowed: &[Kind],
    ) -> Resp {
        let mut req = self.http.request(method.parse().unwrap(), self.url(path));
        if let Some(b) = bearer {
            req = req.bearer_auth(b);
        }
        if let Some(body) = body {
            req = req.json(&body);
        }
        self.send(&format!("{method} {path}"), allowed, req).await
    }

    fn cli(&mut self, dir: &Path, env: &[(&str, &str)], args: &[&str], allowed: &[Kind]) -> String {
        let o: Output = cmd(dir, env).args(args).output().unwrap();
        let out = String::from_utf8_lossy(&o.stdout).into_owned();
        let err = String::from_utf8_lossy(&o.stderr).into_owned();
        assert!(o.status.success(), "tokenwarden {args:?}: {out}{err}");
        self.record(
            format!("tokenwarden {} (stdout)", args.join(" ")),
            allowed,
            out.clone(),
        );
        self.record(format!("tokenwarden {} (stderr)", args.join(" ")), &[], err);
        out
    }
}

/// The forms a secret can take on its way to a log or a file.
fn encodings(secret: &str) -> Vec<(&'static str, Vec<u8>)> {
    let mut out: Vec<(&'static str, Vec<u8>)> = vec![("raw", secret.as_bytes().to_vec())];
    let percent = tokenwarden_oauth::snowflake::urlencode(secret);
    out.push(("percent-encoded", percent.clone().into_bytes()));
    out.push(("form-encoded", percent.replace("%20", "+").into_bytes()));
    out.push((
        "hex",
        secret
            .bytes()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
            .into_bytes(),
    ));
    // Base64 of the secret inside a longer value (a Basic header, a sealed blob): the characters
    // that depend on the secret's bytes alone, for each of the three alignments.
    for (name, engine) in [
        ("base64", base64::engine::general_purpose::STANDARD_NO_PAD),
        (
            "base64url",
            base64::engine::general_purpose::URL_SAFE_NO_PAD,
        ),
    ] {
        for k in 0..3usize {
            let mut bytes = vec![0u8; k];
            bytes.extend_from_slice(secret.as_bytes());
            let enc = engine.encode(&bytes);
            let from = (8 * k).div_ceil(6);
            let to = 8 * bytes.len() / 6;
            out.push((name, enc.as_bytes()[from..to].to_vec()));
        }
    }
    out.sort();
    out.dedup();
    out
}

struct Hit {
    kind: Kind,
    encoding: &'static str,
    place: String,
    context: String,
}

/// Every (secret, encoding) found in a place where its kind is not allowed.
fn scan(places: &[Place], secrets: &[(Kind, String)]) -> (Vec<Hit>, usize) {
    let mut hits = Vec::new();
    let mut patterns = 0;
    for (kind, secret) in secrets {
        for (encoding, needle) in encodings(secret) {
            patterns += 1;
            for p in places.iter().filter(|p| !p.allowed.contains(kind)) {
                if let Some(at) = p.bytes.windows(needle.len()).position(|w| w == needle) {
                    let lo = at.saturating_sub(60);
                    let hi = (at + needle.len() + 60).min(p.bytes.len());
                    hits.push(Hit {
                        kind: *kind,
                        encoding,
                        place: p.label.clone(),
                        context: String::from_utf8_lossy(&p.bytes[lo..hi]).into_owned(),
                    });
                }
            }
        }
    }
    (hits, patterns)
}

/// The scanner itself finds each encoding where it is planted (so a green scan means something).
#[test]
fn r23_the_secrets_scanner_finds_every_encoding_it_looks_for() {
    let secret = "vNy/1st+secret=SEEDED";
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("kMoBQd6l:{secret}"));
    for (planted, encoding) in [
        (format!("log line client_secret={secret} end"), "raw"),
        (
            format!(
                "body=grant&client_secret={}",
                tokenwarden_oauth::snowflake::urlencode(secret)
            ),
            "percent-encoded",
        ),
        (format!("Authorization: Basic {basic}"), "base64"),
        (
            format!(
                "x{}y",
                base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("ab{secret}cd"))
            ),
            "base64url",
        ),
        (
            format!(
                "\\x{}",
                secret
                    .bytes()
                    .map(|b| format!("{b:02x}"))
                    .collect::<String>()
            ),
            "hex",
        ),
    ] {
        let places = [Place {
            label: "planted".into(),
            allowed: vec![],
            bytes: planted.clone().into_bytes(),
        }];
        let (hits, _) = scan(&places, &[(Kind::ClientSecret, secret.to_owned())]);
        assert!(
            hits.iter().any(|h| h.encoding == encoding),
            "{encoding} not found in {planted}"
        );
        let allowed = [Place {
            label: "allowed".into(),
            allowed: vec![Kind::ClientSecret],
            bytes: planted.into_bytes(),
        }];
        assert!(
            scan(&allowed, &[(Kind::ClientSecret, secret.to_owned())])
                .0
                .is_empty()
        );
    }
    let form = "username=nobody&password=SEEDED+admin+pass-phrase+7781%2F%2B%3D";
    let places = [Place {
        label: "form".into(),
        allowed: vec![],
        bytes: form.as_bytes().to_vec(),
    }];
    assert!(
        !scan(&places, &[(Kind::AdminPassword, PASSWORD.to_owned())])
            .0
            .is_empty()
    );
}

fn csrf_of(page: &str) -> String {
    let start = page.find("data-csrf=\"").expect("a page with a CSRF token") + 11;
    page[start..start + page[start..].find('"').unwrap()].to_owned()
}

/// The secret part of an API key or admin token (`tw_app_<id>_<secret>`): what must never leak.
fn secret_part(key: &str) -> String {
    let rest = key
        .strip_prefix("tw_app_")
        .or_else(|| key.strip_prefix("tw_adm_"))
        .unwrap_or_else(|| panic!("not a key: {key}"));
    // The id is a simple UUID (no '_'); the secret is URL-safe base64 (which may hold '_').
    rest.split_once('_').unwrap().1.to_owned()
}

#[derive(Clone, Copy, Debug)]
enum Db {
    Sqlite,
    Postgres,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r23_secrets_scan_sqlite_every_feature_at_trace() {
    secrets_scan(Db::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r23_secrets_scan_postgres_every_feature_at_trace() {
    secrets_scan(Db::Postgres).await;
}

#[allow(clippy::too_many_lines)]
async fn secrets_scan(db: Db) {
    let started = Instant::now();
    tokenwarden_oauth::client::install_crypto_provider();
    let dir = tempfile::tempdir().unwrap();
    // Access tokens live 3 s, so that the run sees refreshes without waiting long.
    let emu = snowflake_emulator::Emulator::start(
        snowflake_emulator::EmulatorConfig {
            access_token_ttl: Duration::from_secs(3),
            ..snowflake_emulator::EmulatorConfig::default_for_tests()
        },
        "127.0.0.1:0",
    )
    .await
    .unwrap();
    let hook = tokenwarden_testkit::webhook::WebhookReceiver::start().unwrap();
    let smtp = tokenwarden_testkit::smtp::SmtpSink::start().unwrap();
    let smtp_port = smtp.port.to_string();
    let db_url = match db {
        Db::Sqlite => None,
        Db::Postgres => Some(tokenwarden_testkit::require_postgres().url),
    };
    let mut env: Vec<(&str, &str)> = vec![
        ("TOKENWARDEN_ADMIN_TOKEN", ADMIN),
        ("TOKENWARDEN_LOG", "trace"),
        ("TOKENWARDEN_ENGINE_INTERVAL", "1"),
        ("TOKENWARDEN_SMTP_HOST", "127.0.0.1"),
        ("TOKENWARDEN_SMTP_PORT", &smtp_port),
        ("TOKENWARDEN_SMTP_SECURITY", "none"),
    ];
    // The SMTP sink has no AUTH: with a password configured (the SQLite run) the email fails at
    // AUTH and the password goes through that failure path; without one (the PostgreSQL run) the
    // email is delivered and its text scanned.
    match &db_url {
        Some(url) => env.push(("TOKENWARDEN_DATABASE_URL", url)),
        None => env.extend([
            ("TOKENWARDEN_SMTP_USERNAME", "tokenwarden"),
            ("TOKENWARDEN_SMTP_PASSWORD", SMTP_PASSWORD),
        ]),
    }
    let server: Server = serve(dir.path(), &env, &[]);
    let mut seen = Seen {
        places: Vec::new(),
        http: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap(),
        base: server.base.clone(),
    };
    let mut secrets: Vec<(Kind, String)> = vec![
        (Kind::AdminToken, ADMIN.to_owned()),
        (Kind::AdminPassword, PASSWORD.to_owned()),
        (Kind::ClientSecret, PATCHED_SECRET.to_owned()),
    ];

    // The CLI: an admin who signs in to the UI, and an admin token.
    let pw_file = dir.path().join("password");
    std::fs::write(&pw_file, format!("{PASSWORD}\n")).unwrap();
    seen.cli(
        dir.path(),
        &env,
        &[
            "admin",
            "create",
            "alice",
            "--password-file",
            pw_file.to_str().unwrap(),
        ],
        &[],
    );
    std::fs::remove_file(&pw_file).unwrap();
    let out = seen.cli(
        dir.path(),
        &env,
        &["admin", "token", "create", "--label", "ops"],
        &[Kind::AdminToken],
    );
    let cli_admin = out
        .split_whitespace()
        .find(|w| w.starts_with("tw_adm_"))
        .unwrap_or_else(|| panic!("no admin token printed: {out}"))
        .to_owned();
    secrets.push((Kind::AdminToken, secret_part(&cli_admin)));

    // Apps and tokens through the API, the emulator as Snowflake.
    let r = seen
        .api_allowing(
            "POST",
            "/api/v1/apps",
            Some(ADMIN),
            Some(json!({"name": "sales-invoice", "tokens": ["sf"]})),
            &[Kind::ApiKey],
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let app = r.json();
    let app_id = app["id"].as_str().unwrap().to_owned();
    let api_key = app["api_key"].as_str().unwrap().to_owned();
    secrets.push((Kind::ApiKey, secret_part(&api_key)));
    let r = seen
        .api_allowing(
            "POST",
            &format!("/api/v1/apps/{app_id}/keys"),
            Some(&cli_admin),
            Some(json!({"label": "second"})),
            &[Kind::ApiKey],
        )
        .await;
    assert!(r.status < 300, "{}", r.text);
    if let Some(k) = r.json()["api_key"].as_str() {
        secrets.push((Kind::ApiKey, secret_part(k)));
    }
    let r = seen
        .api(
            "POST",
            "/api/v1/tokens",
            Some(ADMIN),
            Some(json!({"name": "sf", "provider": "snowflake",
            "settings": {"account": emu.base_url(), "role": "ANALYST"}})),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let token_id = r.json()["id"].as_str().unwrap().to_owned();
    let r = seen
        .api(
            "GET",
            &format!("/api/v1/tokens/{token_id}/setup"),
            Some(ADMIN),
            None,
        )
        .await;
    let runs = emu
        .emulator
        .run_script_as("ADMIN", r.json()["snowflake"]["sql"].as_str().unwrap());
    assert!(runs[0].outcome.is_ok(), "{:?}", runs[0].outcome);
    let cell = runs[1].outcome.first_value().unwrap().to_owned();
    let integration = emu.emulator.stats().integrations[0].name.clone();
    let issued = emu.emulator.client_credentials(&integration).unwrap();
    secrets.push((Kind::ClientSecret, issued.client_secret.clone()));
    secrets.push((Kind::ClientSecret, issued.client_secret_2.clone()));
    let paste = seen
        .http
        .post(seen.url(&format!("/api/v1/tokens/{token_id}/client-secrets")))
        .bearer_auth(ADMIN)
        .header("content-type", "text/plain")
        .body(cell.clone());
    let r = seen.send("POST client-secrets", &[], paste).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let r = seen
        .api(
            "POST",
            &format!("/api/v1/tokens/{token_id}/authorize"),
            Some(ADMIN),
            None,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let back = snowflake_emulator::sign_in_and_consent(
        &seen.http,
        r.json()["authorization_url"].as_str().unwrap(),
        "ALICE",
        "alice-pass",
    )
    .await
    .unwrap();
    // The redirect names the configured public URL (`127.0.0.1:0`); the browser reaches this
    // instance.
    let query = back.split_once("/oauth/callback?").unwrap().1.to_owned();
    let callback = seen.http.get(seen.url(&format!("/oauth/callback?{query}")));
    let r = seen.send("GET /oauth/callback", &[], callback).await;
    assert_eq!(r.status, 200, "{}", r.text);

    // The app reads, until the access token it gets is a refreshed one (the first expires
    // after 3 s; a read then refreshes it).
    let read = |seen: &Seen| {
        seen.http
            .get(seen.url("/api/v1/access-tokens/sf?min_validity=0"))
            .bearer_auth(&api_key)
    };
    let r = seen.send("read", &[Kind::AccessToken], read(&seen)).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let first = r.json()["access_token"].as_str().unwrap().to_owned();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let r = seen
            .send("read until refreshed", &[Kind::AccessToken], read(&seen))
            .await;
        if r.status == 200 && r.json()["access_token"].as_str() != Some(first.as_str()) {
            break;
        }
        assert!(Instant::now() < deadline, "never refreshed: {}", r.text);
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let req = seen
        .http
        .get(seen.url("/api/v1/access-tokens/sf?min_validity=3600"))
        .bearer_auth(&api_key);
    let r = seen
        .send("read asking for an hour", &[Kind::AccessToken], req)
        .await;
    assert!(r.status < 500 || r.status == 503, "{}", r.text);
    let r = seen
        .api(
            "POST",
            &format!("/api/v1/tokens/{token_id}/test"),
            Some(ADMIN),
            None,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    for (m, path, body) in [
        ("GET", format!("/api/v1/tokens/{token_id}"), None),
        ("GET", "/api/v1/tokens".to_owned(), None),
        ("GET", format!("/api/v1/apps/{app_id}"), None),
        ("GET", format!("/api/v1/apps/{app_id}/keys"), None),
        ("GET", "/api/v1/apps".to_owned(), None),
        ("GET", "/api/v1/providers".to_owned(), None),
        (
            "PATCH",
            format!("/api/v1/tokens/{token_id}"),
            Some(json!({"client_secret_2": PATCHED_SECRET})),
        ),
        ("POST", format!("/api/v1/apps/{app_id}/stop"), None),
        ("POST", format!("/api/v1/apps/{app_id}/start"), None),
        ("GET", "/api/openapi.json".to_owned(), None),
        ("GET", "/healthz".to_owned(), None),
        ("GET", "/readyz".to_owned(), None),
    ] {
        let r = seen.api(m, &path, Some(ADMIN), body).await;
        assert!(r.status < 300, "{m} {path}: {} {}", r.status, r.text);
    }

    // A Snowflake key-pair token (issue 12): tokenwarden generates the private key (it must never
    // leave the sealed column: checked below by its PEM marker everywhere), the admin runs the
    // ALTER USER it shows, an app reads the KEYPAIR_JWT minted from it.
    let r = seen
        .api_allowing(
            "POST",
            "/api/v1/apps",
            Some(ADMIN),
            Some(json!({"name": "loader", "tokens": ["sf-keys"]})),
            &[Kind::ApiKey],
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let loader_key = r.json()["api_key"].as_str().unwrap().to_owned();
    secrets.push((Kind::ApiKey, secret_part(&loader_key)));
    let r = seen
        .api(
            "POST",
            "/api/v1/tokens",
            Some(ADMIN),
            Some(
                json!({"name": "sf-keys", "provider": "snowflake", "grant": "snowflake_keypair",
                "settings": {"account": emu.base_url(), "role": "ANALYST", "user": "alice",
                             "account_identifier": "EMU12345"}}),
            ),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let keys_id = r.json()["id"].as_str().unwrap().to_owned();
    let r = seen
        .api(
            "GET",
            &format!("/api/v1/tokens/{keys_id}/keys"),
            Some(ADMIN),
            None,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let set_sql = r.json()["current"]["set_sql"].as_str().unwrap().to_owned();
    let runs = emu.emulator.run_script_as("ADMIN", &set_sql);
    assert!(runs[0].outcome.is_ok(), "{:?}", runs[0].outcome);
    let r = seen
        .api(
            "POST",
            &format!("/api/v1/tokens/{keys_id}/authorize"),
            Some(ADMIN),
            None,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let req = seen
        .http
        .get(seen.url("/api/v1/access-tokens/sf-keys"))
        .bearer_auth(&loader_key);
    let r = seen
        .send("read a key-pair JWT", &[Kind::AccessToken], req)
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json()["token_type"], "KEYPAIR_JWT", "{}", r.text);
    secrets.push((
        Kind::AccessToken,
        r.json()["access_token"].as_str().unwrap().to_owned(),
    ));
    seen.cli(dir.path(), &env, &["token", "keys", "sf-keys"], &[]);

    // Channels and deliveries: a signed webhook and an email.
    let r = seen
        .api_allowing(
            "POST",
            "/api/v1/notification-channels",
            Some(ADMIN),
            Some(json!({"name": "ops-hook", "kind": "webhook", "url": hook.url()})),
            &[Kind::WebhookSecret],
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let hook_id = r.json()["id"].as_str().unwrap().to_owned();
    let hook_secret = r.json()["secret"]
        .as_str()
        .expect("the signing secret, shown once")
        .to_owned();
    secrets.push((Kind::WebhookSecret, hook_secret.clone()));
    if let Some(raw) = hook_secret.strip_prefix("whsec_") {
        secrets.push((Kind::WebhookSecret, raw.to_owned()));
    }
    let r = seen
        .api(
            "POST",
            "/api/v1/notification-channels",
            Some(ADMIN),
            Some(json!({"name": "ops-mail", "kind": "email", "to": ["ops@example.com"]})),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let mail_id = r.json()["id"].as_str().unwrap().to_owned();
    for id in [&hook_id, &mail_id] {
        let r = seen
            .api(
                "POST",
                &format!("/api/v1/notification-channels/{id}/test"),
                Some(ADMIN),
                None,
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.text);
        let r = seen
            .api(
                "GET",
                &format!("/api/v1/notification-channels/{id}/deliveries"),
                Some(ADMIN),
                None,
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.text);
    }
    let r = seen
        .api(
            "PATCH",
            &format!("/api/v1/notification-channels/{hook_id}"),
            Some(ADMIN),
            Some(json!({"enabled": true})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let r = seen
        .api("GET", "/api/v1/notification-channels", Some(ADMIN), None)
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let hooks = hook.wait_for(1, Duration::from_secs(30));
    assert!(!hooks.is_empty(), "the webhook test send arrived");
    let mails = smtp.messages().len();
    if matches!(db, Db::Sqlite) {
        secrets.push((Kind::SmtpPassword, SMTP_PASSWORD.to_owned()));
    } else {
        assert!(mails > 0, "the email test send arrived");
    }
    for req in hooks {
        let head: String = req
            .headers
            .iter()
            .map(|(k, v)| format!("{k}: {v}\n"))
            .collect();
        seen.record(
            format!("webhook sent to the receiver {}", req.path),
            &[],
            format!("{head}\n{}", req.body_text()),
        );
    }
    for mail in smtp.messages() {
        seen.record("email sent to the SMTP sink", &[], mail.data.clone());
    }

    // Errors that see secrets: wrong types, unknown fields, refused credentials, credentials in
    // the query, an app key on an admin route, a wrong admin token, bad JSON.
    let access_now = emu.emulator.issued_tokens().0;
    let some_access = access_now.last().cloned().unwrap_or_default();
    for (m, path, bearer, body) in [
        (
            "PATCH",
            format!("/api/v1/tokens/{token_id}"),
            Some(ADMIN.to_owned()),
            Some(json!({"client_secret": PATCHED_SECRET, "colour": 1})),
        ),
        (
            "PATCH",
            format!("/api/v1/tokens/{token_id}"),
            Some(ADMIN.to_owned()),
            Some(json!({"client_secret": 5, "client_secret_2": [PATCHED_SECRET]})),
        ),
        (
            "POST",
            "/api/v1/tokens".into(),
            Some(ADMIN.to_owned()),
            Some(json!({"name": "sf", "provider": "snowflake", "client_secret": PATCHED_SECRET})),
        ),
        (
            "POST",
            "/api/v1/tokens".into(),
            Some(ADMIN.to_owned()),
            Some(json!({"name": "x", "provider": "nope", "client_secret": PATCHED_SECRET})),
        ),
        ("GET", "/api/v1/tokens".into(), Some(api_key.clone()), None),
        ("GET", format!("/api/v1/apps?api_key={api_key}"), None, None),
        (
            "GET",
            format!("/api/v1/access-tokens/sf?access_token={some_access}"),
            None,
            None,
        ),
        (
            "GET",
            format!("/api/v1/apps?token={ADMIN}"),
            Some(ADMIN.to_owned()),
            None,
        ),
        (
            "GET",
            "/api/v1/apps".into(),
            Some(format!("{ADMIN}x")),
            None,
        ),
        (
            "GET",
            "/api/v1/access-tokens/sf".into(),
            Some(format!("{api_key}x")),
            None,
        ),
        (
            "GET",
            "/api/v1/access-tokens/other".into(),
            Some(api_key.clone()),
            None,
        ),
        (
            "GET",
            "/api/v1/apps".into(),
            Some(some_access.clone()),
            None,
        ),
    ] {
        let r = seen.api(m, &path, bearer.as_deref(), body).await;
        assert!(r.status >= 400, "{m} {path} -> {}", r.status);
    }
    let bad_json = seen
        .http
        .patch(seen.url(&format!("/api/v1/tokens/{token_id}")))
        .bearer_auth(ADMIN)
        .header("content-type", "application/json")
        .body(format!("{{\"client_secret\": \"{PATCHED_SECRET}\""));
    let r = seen.send("PATCH with broken JSON", &[], bad_json).await;
    assert_eq!(r.status, 400, "{}", r.text);
    let bad_paste = seen
        .http
        .post(seen.url(&format!("/api/v1/tokens/{token_id}/client-secrets")))
        .bearer_auth(ADMIN)
        .header("content-type", "text/plain")
        .body(cell.replace("OAUTH_CLIENT_ID", "OAUTH_CLIENT_IDX"));
    let r = seen
        .send("POST client-secrets without an id", &[], bad_paste)
        .await;
    assert_eq!(r.status, 400, "{}", r.text);

    // The web UI: failed sign-ins that carry the password, the right one, every page.
    for (user, pw) in [
        ("nobody", PASSWORD.to_owned()),
        ("alice", format!("{PASSWORD}x")),
    ] {
        let req = seen.http.post(seen.url("/login")).form(&[
            ("username", user),
            ("password", pw.as_str()),
            ("next", "/tokens"),
        ]);
        let r = seen.send("POST /login refused", &[], req).await;
        assert!(r.status >= 400, "{user}: {}", r.status);
    }
    let req = seen.http.post(seen.url("/login")).form(&[
        ("username", "alice"),
        ("password", PASSWORD),
        ("next", "/tokens"),
    ]);
    let r = seen.send("POST /login", &[Kind::Session], req).await;
    assert_eq!(r.status, 303, "{}", r.text);
    let cookie = r
        .headers
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .find(|c| c.starts_with("tw_session="))
        .unwrap();
    let session = cookie["tw_session=".len()..]
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    secrets.push((Kind::Session, session.clone()));
    let cookie = format!("tw_session={session}");
    let mut csrf = String::new();
    for path in [
        "/tokens".to_owned(),
        "/tokens/new".to_owned(),
        format!("/tokens/{token_id}"),
        format!("/tokens/{token_id}/status"),
        "/apps".to_owned(),
        format!("/apps/{app_id}"),
        "/notifications".to_owned(),
        format!("/notifications/{hook_id}"),
        format!("/notifications/{mail_id}"),
        "/audit".to_owned(),
        "/ui/provider-fields?provider=snowflake".to_owned(),
        format!(
            "/ui/check-setting?provider=snowflake&s_account={}",
            tokenwarden_oauth::snowflake::urlencode(&emu.base_url())
        ),
    ] {
        let req = seen.http.get(seen.url(&path)).header("cookie", &cookie);
        let r = seen.send(&format!("page {path}"), &[], req).await;
        assert_eq!(r.status, 200, "{path}: {}", r.text);
        if csrf.is_empty() && r.text.contains("data-csrf=\"") {
            csrf = csrf_of(&r.text);
        }
    }
    for (path, form, allowed) in [
        (format!("/tokens/{token_id}/test"), vec![], vec![]),
        (
            format!("/tokens/{token_id}/client-secrets"),
            vec![("pasted", cell.clone())],
            vec![],
        ),
        (
            format!("/apps/{app_id}/keys"),
            vec![("label", "from-ui".to_owned())],
            vec![Kind::ApiKey],
        ),
        (format!("/notifications/{hook_id}/test"), vec![], vec![]),
    ] {
        let mut pairs: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
        pairs.push(("csrf", &csrf));
        let req = seen
            .http
            .post(seen.url(&path))
            .header("cookie", &cookie)
            .header("sec-fetch-site", "same-origin")
            .form(&pairs);
        let mut r = seen.send(&format!("UI POST {path}"), &allowed, req).await;
        assert!(r.status < 400, "{path}: {} {}", r.status, r.text);
        // A secret made by a UI POST is shown by the page it redirects to (post/redirect/get),
        // in a sealed cookie the browser sends back once.
        // (`/shown-once?secret=...&of=...`: which secret and whose, for the page after a reload.)
        let location = r
            .headers
            .get("location")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        if let Some(location) = location.filter(|l| l.starts_with("/shown-once")) {
            let sealed: Vec<String> = r
                .headers
                .get_all("set-cookie")
                .iter()
                .filter_map(|v| v.to_str().ok()?.split(';').next().map(str::to_owned))
                .collect();
            let req = seen
                .http
                .get(seen.url(&location))
                .header("cookie", format!("{cookie}; {}", sealed.join("; ")));
            r = seen.send("UI GET /shown-once", &allowed, req).await;
            assert_eq!(r.status, 200, "{}", r.text);
        }
        if let Some(at) = r.text.find("id=\"secret\" class=\"secret\" value=\"") {
            let rest = &r.text[at + 34..];
            secrets.push((Kind::ApiKey, secret_part(&rest[..rest.find('"').unwrap()])));
        }
    }

    // The audit log, through the API.
    let r = seen
        .api("GET", "/api/v1/audit?limit=1000", Some(ADMIN), None)
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let audit_rows = r.json()["items"].as_array().map_or(0, Vec::len);
    assert!(
        audit_rows > 20,
        "the audit log recorded the run: {}",
        r.text
    );

    // The CLI's lists, the key rotation, and a read under the new key.
    for args in [
        &["app", "list"][..],
        &["app", "list", "--json"],
        &["token", "list"],
        &["admin", "token", "list"],
        &["keys", "list"],
        &["keys", "rotate"],
        &["keys", "verify"],
        &["keys", "list"],
        &["config", "default"],
    ] {
        seen.cli(dir.path(), &env, args, &[]);
    }
    let req = seen
        .http
        .get(seen.url("/api/v1/access-tokens/sf?min_validity=0"))
        .bearer_auth(&api_key);
    let r = seen
        .send("read after the key rotation", &[Kind::AccessToken], req)
        .await;
    assert_eq!(r.status, 200, "{}", r.text);

    // The database while the server runs (SQLite: with its WAL), then after it stopped.
    let data = dir.path().join("tokenwarden-data");
    let snapshot_db = |seen: &mut Seen, when: &str| match &db_url {
        None => {
            for entry in std::fs::read_dir(&data).unwrap() {
                let path = entry.unwrap().path();
                let name = path.file_name().unwrap().to_string_lossy().into_owned();
                if name == "master.key" {
                    continue;
                }
                seen.record(
                    format!("database file {name} ({when})"),
                    &[],
                    std::fs::read(&path).unwrap(),
                );
            }
        }
        Some(url) => {
            seen.record(
                format!("pg_dump ({when})"),
                &[],
                tokenwarden_testkit::pg_dump(url).unwrap(),
            );
        }
    };
    snapshot_db(&mut seen, "running");
    let log = server.stop();
    assert!(
        log.contains("tokenwarden is listening"),
        "the log was captured: {log}"
    );
    assert!(log.contains("/api/v1/tokens"), "request tracing is on");
    assert!(
        log.contains("DEBUG") || log.contains("TRACE"),
        "debug logging is on"
    );
    let log_lines = log.lines().count();
    seen.record("serve's log (stderr)", &[], log.clone());
    snapshot_db(&mut seen, "stopped");
    if matches!(db, Db::Sqlite) {
        let files: BTreeSet<String> = seen
            .places
            .iter()
            .filter(|p| p.label.starts_with("database file"))
            .map(|p| p.label.split(' ').nth(2).unwrap().to_owned())
            .collect();
        assert!(
            files.iter().any(|f| f.ends_with("-wal")),
            "the WAL was read: {files:?}"
        );
    }

    let (access, refresh) = emu.emulator.issued_tokens();
    assert!(
        access.len() >= 2,
        "a code exchange and a refresh: {access:?}"
    );
    assert!(!refresh.is_empty());
    secrets.extend(access.into_iter().map(|t| (Kind::AccessToken, t)));
    secrets.extend(refresh.into_iter().map(|t| (Kind::RefreshToken, t)));
    let master = std::fs::read_to_string(data.join("master.key")).unwrap();
    secrets.push((Kind::MasterKey, master.trim().to_owned()));
    for (_, s) in &secrets {
        assert!(
            s.len() >= 16,
            "a seeded secret is long enough to be unmistakable: {s}"
        );
    }

    let mut kinds: std::collections::BTreeMap<Kind, usize> = std::collections::BTreeMap::new();
    for (k, _) in &secrets {
        *kinds.entry(*k).or_default() += 1;
    }
    assert_eq!(
        kinds.len(),
        if matches!(db, Db::Sqlite) { 10 } else { 9 },
        "every kind of secret was seeded: {kinds:?}"
    );
    assert!(
        kinds[&Kind::ApiKey] >= 3,
        "API keys from the API and the UI: {kinds:?}"
    );
    let (hits, patterns) = scan(&seen.places, &secrets);
    let bytes: usize = seen.places.iter().map(|p| p.bytes.len()).sum();
    println!("seeded: {kinds:?}; emails received by the sink: {mails}");
    println!(
        "secrets scan ({db:?}): {} secrets in {patterns} encodings, {} places, {bytes} bytes \
         ({log_lines} log lines, {audit_rows} audit rows), {} hits, {:.1} s",
        secrets.len(),
        seen.places.len(),
        hits.len(),
        started.elapsed().as_secs_f64()
    );
    let report: Vec<String> = hits
        .iter()
        .take(20)
        .map(|h| {
            format!(
                "{:?} ({}) in {}: …{}…",
                h.kind, h.encoding, h.place, h.context
            )
        })
        .collect();
    assert!(hits.is_empty(), "secrets found:\n{}", report.join("\n"));
    // The key-pair token's private key: never seen by the test, so found by its PEM marker (a
    // sealed column holds only ciphertext; `ENCRYPTED PRIVATE KEY` would match too).
    let marked: Vec<&str> = seen
        .places
        .iter()
        .filter(|p| p.bytes.windows(11).any(|w| w == b"PRIVATE KEY"))
        .map(|p| p.label.as_str())
        .collect();
    assert!(marked.is_empty(), "a private key in: {marked:?}");
    emu.shutdown();
}
