//! R23: seeded secrets never appear in logs, error bodies, or the database files.

use crate::{ADMIN, Http, serve};
use serde_json::json;

#[test]
fn r23_seeded_secrets_appear_in_no_log_error_body_or_database_byte() {
    let dir = tempfile::tempdir().unwrap();
    let client_secret = "client-SEEDED-secret-1111";
    let client_secret_2 = "client-SEEDED-secret-2222";
    let env = [
        ("TOKENWARDEN_ADMIN_TOKEN", ADMIN),
        ("TOKENWARDEN_LOG", "trace"),
    ];
    let server = serve(dir.path(), &env, &[]);
    let http = Http::new();
    let mut bodies = Vec::new();

    let (s, app) = http.send(
        "POST",
        &server.url("/api/v1/apps"),
        Some(ADMIN),
        Some(json!({"name": "sales-invoice", "tokens": ["sf"]})),
    );
    assert_eq!(s, 201, "{app}");
    let api_key = app["api_key"].as_str().unwrap().to_owned();
    let (s, tok) = http.send(
        "POST",
        &server.url("/api/v1/tokens"),
        Some(ADMIN),
        Some(json!({"name": "sf", "provider": "snowflake", "client_id": "cid", "client_secret": client_secret})),
    );
    assert_eq!(s, 201);
    bodies.push(tok.to_string());
    let id = tok["id"].as_str().unwrap();
    let (s, b) = http.send(
        "PATCH",
        &server.url(&format!("/api/v1/tokens/{id}")),
        Some(ADMIN),
        Some(json!({"client_secret_2": client_secret_2})),
    );
    assert_eq!(s, 200);
    bodies.push(b.to_string());
    // Error paths that see the secrets: wrong types, bad fields, denied credentials, a
    // credential in the query string, an app key on an admin route.
    for (m, path, bearer, body) in [
        (
            "PATCH",
            format!("/api/v1/tokens/{id}"),
            Some(ADMIN),
            json!({"client_secret": client_secret, "colour": 1}),
        ),
        (
            "POST",
            "/api/v1/tokens".into(),
            Some(ADMIN),
            json!({"name": "sf", "provider": "snowflake", "client_secret": client_secret}),
        ),
        (
            "POST",
            "/api/v1/tokens".into(),
            Some(ADMIN),
            json!({"name": "x", "provider": "nope", "client_secret": client_secret}),
        ),
        (
            "GET",
            "/api/v1/tokens".into(),
            Some(api_key.as_str()),
            json!({}),
        ),
        (
            "GET",
            format!("/api/v1/apps?api_key={api_key}"),
            None,
            json!({}),
        ),
        (
            "GET",
            format!("/api/v1/apps?token={ADMIN}"),
            Some(ADMIN),
            json!({}),
        ),
        (
            "GET",
            "/api/v1/apps".into(),
            Some(&format!("{ADMIN}x")),
            json!({}),
        ),
    ] {
        let (s, b) = http.send(m, &server.url(&path), bearer, Some(body));
        assert!(s >= 400, "{m} {path} -> {s}");
        bodies.push(b.to_string());
    }
    let (s, b) = http.send("GET", &server.url("/api/v1/tokens"), Some(ADMIN), None);
    assert_eq!(s, 200);
    bodies.push(b.to_string());
    let log = server.stop();
    assert!(
        log.contains("tokenwarden is listening"),
        "the log was captured: {log}"
    );
    assert!(
        log.contains("/api/v1/tokens"),
        "request tracing is on: {log}"
    );

    let master_key =
        std::fs::read_to_string(dir.path().join("tokenwarden-data/master.key")).unwrap();
    let secrets = [
        client_secret,
        client_secret_2,
        ADMIN,
        api_key.as_str(),
        master_key.trim(),
    ];
    let api_key_secret_part = api_key.rsplit('_').next().unwrap();
    for secret in secrets.iter().chain([&api_key_secret_part]) {
        assert!(!log.contains(secret), "log leaks {secret}");
        for b in &bodies {
            assert!(!b.contains(secret), "response body leaks {secret}: {b}");
        }
    }
    // Every byte of the SQLite database, its WAL and shared memory.
    let data = dir.path().join("tokenwarden-data");
    let mut checked = 0;
    for entry in std::fs::read_dir(&data).unwrap() {
        let path = entry.unwrap().path();
        if path.file_name().unwrap() == "master.key" {
            continue;
        }
        let bytes = std::fs::read(&path).unwrap();
        checked += bytes.len();
        for secret in secrets.iter().chain([&api_key_secret_part]) {
            let found = bytes.windows(secret.len()).any(|w| w == secret.as_bytes());
            assert!(!found, "{} holds {secret} in plaintext", path.display());
        }
    }
    assert!(
        checked > 4096,
        "the database files were read ({checked} bytes)"
    );
}
