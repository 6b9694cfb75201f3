//! R21, R22 through the binary: wrong keys stop start-up with a clear message; rotation keeps
//! every secret readable and lets the old key go.

use crate::{ADMIN, Http, run, serve, text};
use serde_json::json;

fn seed_token(dir: &std::path::Path, env: &[(&str, &str)], name: &str) {
    let server = serve(dir, env, &[]);
    let (s, b) = Http::new().send(
        "POST",
        &server.url("/api/v1/tokens"),
        Some(ADMIN),
        Some(json!({"name": name, "provider": "oauth2", "settings": {"authorization_url": "https://auth.example.com/authorize", "token_url": "https://auth.example.com/token"}, "client_id": "c", "client_secret": "s3cret", "client_secret_2": "s3cret2"})),
    );
    assert_eq!(s, 201, "{b}");
    server.stop();
}

#[test]
fn r21_first_serve_generates_a_private_key_and_other_keys_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let env = [("TOKENWARDEN_ADMIN_TOKEN", ADMIN)];
    let server = serve(dir.path(), &env, &[]);
    let (s, body) = Http::new().send("GET", &server.url("/healthz"), None, None);
    assert_eq!((s, body["status"].as_str()), (200, Some("ok")));
    let log = server.stop();
    assert!(log.contains("generated a new master key"), "{log}");
    let key = dir.path().join("tokenwarden-data/master.key");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&key).unwrap().permissions().mode() & 0o777,
        0o600
    );
    seed_token(dir.path(), &env, "t1");

    // Another (valid) key: refused, naming the problem, before serving anything.
    let other = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
    let o = run(
        dir.path(),
        &[("TOKENWARDEN_MASTER_KEY", other)],
        &["serve", "--listen", "127.0.0.1:0"],
    );
    let (_, err) = text(&o);
    assert_eq!(o.status.code(), Some(1));
    assert!(err.contains("the master key is wrong"), "{err}");
    // A malformed key.
    let o = run(
        dir.path(),
        &[("TOKENWARDEN_MASTER_KEY", "not-a-key")],
        &["serve", "--listen", "127.0.0.1:0"],
    );
    let (_, err) = text(&o);
    assert_eq!(o.status.code(), Some(1));
    assert!(err.contains("TOKENWARDEN_MASTER_KEY is malformed"), "{err}");
    // A key file that does not exist.
    let o = run(
        dir.path(),
        &[("TOKENWARDEN_MASTER_KEY_FILE", "/nonexistent/key")],
        &["serve"],
    );
    assert!(
        text(&o)
            .1
            .contains("cannot read the master key file /nonexistent/key"),
        "{:?}",
        text(&o)
    );
    // No key at all, for a database that has encrypted data: refused, never a new key.
    std::fs::rename(&key, dir.path().join("moved.key")).unwrap();
    let o = run(dir.path(), &[], &["serve", "--listen", "127.0.0.1:0"]);
    let (_, err) = text(&o);
    assert_eq!(o.status.code(), Some(1));
    // Issue 11 item 12: the message names where the key was looked for.
    assert!(
        err.contains("no master key is configured")
            && err.contains(&format!("there is none at {}", key.display())),
        "{err}"
    );
    assert!(!key.exists(), "no new key was generated over existing data");
    // The original key, moved elsewhere and named by a file variable, works.
    let moved = dir.path().join("moved.key");
    let o = run(
        dir.path(),
        &[("TOKENWARDEN_MASTER_KEY_FILE", moved.to_str().unwrap())],
        &["keys", "verify"],
    );
    assert!(o.status.success(), "{:?}", text(&o));
    assert!(
        text(&o).0.contains("all 2 stored secrets decrypt"),
        "{:?}",
        text(&o)
    );
}

#[test]
fn r22_keys_rotate_while_serving_keeps_every_token_readable_then_the_old_key_goes() {
    let dir = tempfile::tempdir().unwrap();
    let env = [("TOKENWARDEN_ADMIN_TOKEN", ADMIN)];
    seed_token(dir.path(), &env, "before");
    let server = serve(dir.path(), &env, &[]);
    // Rotate online, while the server runs.
    let o = run(dir.path(), &[], &["keys", "rotate"]);
    let (out, err) = text(&o);
    assert!(o.status.success(), "{out}{err}");
    assert!(
        out.contains("new active key: k2") && out.contains("re-encrypted 2 stored secrets"),
        "{out}"
    );
    // The running server (its keyring not yet reloaded) keeps working.
    let (s, _) = Http::new().send(
        "POST",
        &server.url("/api/v1/tokens"),
        Some(ADMIN),
        Some(json!({"name": "during", "provider": "github", "client_secret": "x"})),
    );
    assert_eq!(s, 201);
    server.stop();
    let o = run(dir.path(), &[], &["keys", "verify"]);
    assert!(
        text(&o).0.contains("all 3 stored secrets decrypt"),
        "{:?}",
        text(&o)
    );
    // k1 is still used by the value written during rotation: dropping it is refused.
    let o = run(dir.path(), &[], &["keys", "drop", "k1"]);
    assert!(!o.status.success());
    assert!(text(&o).1.contains("still use key k1"), "{:?}", text(&o));
    // A second pass moves it, and --drop-old removes every unused key.
    let o = run(dir.path(), &[], &["keys", "rotate", "--drop-old"]);
    let (out, _) = text(&o);
    assert!(out.contains("removed keys: k1, k2"), "{out}");
    let o = run(dir.path(), &[], &["keys", "list"]);
    let (out, _) = text(&o);
    assert!(
        out.contains("k3") && !out.contains("k1 ") && !out.contains("k2 "),
        "{out}"
    );
    let o = run(dir.path(), &[], &["keys", "verify"]);
    assert!(
        text(&o).0.contains("all 3 stored secrets decrypt"),
        "{:?}",
        text(&o)
    );
    // And the service starts and serves them.
    let server = serve(dir.path(), &env, &[]);
    let (s, list) = Http::new().send("GET", &server.url("/api/v1/tokens"), Some(ADMIN), None);
    assert_eq!((s, list["items"].as_array().unwrap().len()), (200, 2));
    server.stop();
}
