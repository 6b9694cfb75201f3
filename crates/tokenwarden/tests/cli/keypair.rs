//! Snowflake key-pair tokens from the command line (issue 12): `token keys` shows the
//! fingerprint and the `ALTER USER ... SET RSA_PUBLIC_KEY` SQL to run, and rotates the key.

use crate::{ADMIN, Http, run, serve, text};
use serde_json::json;

#[test]
fn token_keys_shows_the_sql_and_rotates_through_rsa_public_key_2() {
    let dir = tempfile::tempdir().unwrap();
    let env = [("TOKENWARDEN_ADMIN_TOKEN", ADMIN)];
    let server = serve(dir.path(), &env, &[]);
    let (s, b) = Http::new().send(
        "POST",
        &server.url("/api/v1/tokens"),
        Some(ADMIN),
        Some(json!({"name": "sf-loader", "provider": "snowflake", "grant": "snowflake_keypair",
                    "settings": {"account": "xy12345.us-east-2.aws", "role": "LOADER", "user": "svc_loader"}})),
    );
    assert_eq!(s, 201, "{b}");
    server.stop();

    let o = run(dir.path(), &env, &["token", "keys", "sf-loader"]);
    let (out, err) = text(&o);
    assert!(o.status.success(), "{err}");
    assert!(
        out.contains("ALTER USER \"SVC_LOADER\" SET RSA_PUBLIC_KEY = 'MII"),
        "{out}"
    );
    assert!(out.contains("signing key (RS256): SHA256:"), "{out}");
    assert!(out.contains("DESC USER \"SVC_LOADER\";"), "{out}");
    assert!(!out.contains("PRIVATE KEY"), "{out}");
    // A key-pair token holds no client secret: storing one is refused, nothing changes.
    let o = crate::cmd(
        dir.path(),
        &[
            ("TOKENWARDEN_ADMIN_TOKEN", ADMIN),
            ("TOKENWARDEN_CLIENT_SECRET", "walk-secret-1234"),
        ],
    )
    .args(["token", "set-secret", "sf-loader"])
    .output()
    .unwrap();
    assert!(!o.status.success());
    assert!(
        text(&o).1.contains("holds no client secret"),
        "{:?}",
        text(&o)
    );

    let o = run(dir.path(), &env, &["token", "keys", "sf-loader", "--json"]);
    let (out, err) = text(&o);
    assert!(o.status.success(), "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let fp = v["current"]["fingerprint"].as_str().unwrap().to_owned();
    assert_eq!(v["current"]["slot"], "rsa_public_key");

    // A rotation shows the new key for RSA_PUBLIC_KEY_2; the current one keeps signing.
    let o = run(
        dir.path(),
        &env,
        &["token", "keys", "sf-loader", "--rotate", "--json"],
    );
    let (out, err) = text(&o);
    assert!(o.status.success(), "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["current"]["fingerprint"], fp.as_str());
    assert!(
        v["next"]["set_sql"]
            .as_str()
            .unwrap()
            .starts_with("ALTER USER \"SVC_LOADER\" SET RSA_PUBLIC_KEY_2 = 'MII"),
        "{v}"
    );
    let next = v["next"]["fingerprint"].as_str().unwrap().to_owned();
    // The admin confirms: the new key signs, the old slot's UNSET is offered.
    let o = run(
        dir.path(),
        &env,
        &["token", "keys", "sf-loader", "--finish", "--confirmed"],
    );
    let (out, err) = text(&o);
    assert!(o.status.success(), "{err}");
    assert!(
        out.contains(&format!("signing key (RS256): {next}")),
        "{out}"
    );
    assert!(
        out.contains("ALTER USER \"SVC_LOADER\" UNSET RSA_PUBLIC_KEY;"),
        "{out}"
    );

    // A token without a key, and a missing token: clear errors.
    let o = run(dir.path(), &env, &["token", "keys", "nope"]);
    let (_, err) = text(&o);
    assert!(!o.status.success());
    assert!(err.contains("no global token named nope"), "{err}");
}
