//! Key-pair authentication: `ALTER USER ... SET/UNSET RSA_PUBLIC_KEY[_2]`, `DESC USER`, and the
//! SQL API refusing every kind of bad key-pair JWT the way Snowflake does (401, 390144
//! "JWT token is invalid. [uuid]", the reason behind the UUID for an administrator).

use serde_json::{Value, json};
use tokenwarden_crypto::keypair::{KeyAlgorithm, SigningKey};

use crate::common::{Env, str_of};

fn rsa_key() -> SigningKey {
    SigningKey::generate(KeyAlgorithm::Rs256).expect("rsa key")
}

fn assign(env: &Env, slot: &str, key: &SigningKey) {
    let sql = format!(
        "ALTER USER alice SET {slot} = '{}'",
        key.public_key().base64()
    );
    let out = env.emu().run_sql_as("ADMIN", &sql);
    assert!(out.is_ok(), "{out:?}");
}

/// A JWT as Snowflake specifies it, `iat` = now + `iat_shift`, living `lifetime` seconds.
fn jwt_with(key: &SigningKey, fingerprint: &str, sub: &str, iat: i64, lifetime: i64) -> String {
    let claims = json!({
        "iss": format!("{sub}.{fingerprint}"),
        "sub": sub,
        "iat": iat,
        "exp": iat + lifetime,
    });
    key.sign_jwt(None, &claims).expect("sign")
}

fn jwt(env: &Env, key: &SigningKey) -> String {
    let now = env.emu().now().timestamp();
    jwt_with(
        key,
        &key.public_key().fingerprint(),
        "EMU12345.ALICE",
        now,
        3600,
    )
}

async fn keypair_sql(env: &Env, jwt: &str, header: Option<&str>) -> (u16, Value) {
    let mut req = env
        .http
        .post(env.url("/api/v2/statements"))
        .bearer_auth(jwt)
        .json(&json!({"statement": "SELECT CURRENT_USER(), CURRENT_ROLE()"}));
    if let Some(h) = header {
        req = req.header("X-Snowflake-Authorization-Token-Type", h);
    }
    let resp = req.send().await.expect("send");
    let status = resp.status().as_u16();
    (status, resp.json().await.expect("json"))
}

/// The refusal's public answer, and the error name `SYSTEM$GET_LOGIN_FAILURE_DETAILS` gives for
/// its UUID.
async fn refused(env: &Env, jwt: &str) -> String {
    let (status, body) = keypair_sql(env, jwt, Some("KEYPAIR_JWT")).await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(body["code"], "390144", "{body}");
    let message = str_of(&body, "message");
    let uuid = message
        .strip_prefix("JWT token is invalid. [")
        .and_then(|m| m.strip_suffix(']'))
        .unwrap_or_else(|| panic!("message {message:?}"));
    let out = env.emu().run_sql_as(
        "ADMIN",
        &format!("SELECT SYSTEM$GET_LOGIN_FAILURE_DETAILS('{uuid}')"),
    );
    let details: Value =
        serde_json::from_str(out.first_value().expect("details")).expect("details json");
    details["errorCode"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

#[tokio::test]
async fn a_jwt_signed_by_the_assigned_key_runs_sql_as_the_user() {
    let env = Env::start().await;
    let key = rsa_key();
    assign(&env, "RSA_PUBLIC_KEY", &key);

    // DESC USER shows the key and its fingerprint as tokenwarden computes it.
    let desc = env.emu().run_sql_as("ADMIN", "DESC USER alice");
    let rows = desc.rows().expect("rows");
    let value = |p: &str| {
        rows.rows
            .iter()
            .find(|r| r[0].as_deref() == Some(p))
            .and_then(|r| r[1].clone())
            .unwrap_or_default()
    };
    assert_eq!(value("RSA_PUBLIC_KEY_FP"), key.public_key().fingerprint());
    assert_eq!(value("RSA_PUBLIC_KEY"), key.public_key().base64());
    assert_eq!(value("RSA_PUBLIC_KEY_2_FP"), "null");

    let token = jwt(&env, &key);
    let (status, body) = keypair_sql(&env, &token, Some("KEYPAIR_JWT")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"], json!([["ALICE", "ANALYST"]]));
    // Without the header Snowflake looks at the token itself.
    let (status, _) = keypair_sql(&env, &token, None).await;
    assert_eq!(status, 200);
    assert_eq!(env.emu().stats().counters.keypair_jwt_logins_ok, 2);
}

#[tokio::test]
async fn every_bad_jwt_is_refused_with_390144_and_its_reason() {
    let env = Env::start().await;
    let key = rsa_key();
    assign(&env, "RSA_PUBLIC_KEY", &key);
    let fp = key.public_key().fingerprint();
    let now = env.emu().now().timestamp();

    // Wrong fingerprint (another key's).
    let other = rsa_key();
    let t = jwt_with(
        &key,
        &other.public_key().fingerprint(),
        "EMU12345.ALICE",
        now,
        60,
    );
    assert_eq!(
        refused(&env, &t).await,
        "JWT_TOKEN_INVALID_PUBLIC_KEY_FINGERPRINT_MISMATCH"
    );
    // Right fingerprint, signed by another key: bad signature.
    let t = jwt_with(&other, &fp, "EMU12345.ALICE", now, 60);
    assert_eq!(refused(&env, &t).await, "JWT_TOKEN_INVALID_SIGNATURE");
    // Expired.
    let t = jwt_with(&key, &fp, "EMU12345.ALICE", now - 3600, 3000);
    assert_eq!(refused(&env, &t).await, "JWT_TOKEN_EXPIRED");
    // exp - iat over an hour.
    let t = jwt_with(&key, &fp, "EMU12345.ALICE", now, 3601);
    assert_eq!(refused(&env, &t).await, "JWT_TOKEN_INVALID_EXPIRATION_TIME");
    // Issued in the future.
    let t = jwt_with(&key, &fp, "EMU12345.ALICE", now + 600, 60);
    assert_eq!(refused(&env, &t).await, "JWT_TOKEN_INVALID_ISSUE_TIME");
    // Another account; a lower-case account; a region left on the locator.
    for sub in [
        "OTHER99.ALICE",
        "emu12345.ALICE",
        "EMU12345.US-EAST-2.ALICE",
    ] {
        let t = jwt_with(&key, &fp, sub, now, 60);
        let reason = refused(&env, &t).await;
        assert!(
            reason == "JWT_TOKEN_ACCOUNT_MISMATCH" || reason == "JWT_TOKEN_INVALID_USER",
            "{sub}: {reason}"
        );
    }
    // A sub naming another user than the iss.
    let claims = json!({
        "iss": format!("EMU12345.ALICE.{fp}"), "sub": "EMU12345.ADMIN", "iat": now, "exp": now + 60,
    });
    let t = key.sign_jwt(None, &claims).expect("sign");
    assert_eq!(refused(&env, &t).await, "JWT_TOKEN_INVALID_USER_IN_ISSUER");
    // A user with no key.
    let t = jwt_with(&key, &fp, "EMU12345.ADMIN", now, 60);
    assert_eq!(refused(&env, &t).await, "JWT_TOKEN_PUBLIC_KEY_NOT_SET");
    // Not RS256 (an ES256 JWT), garbage, a missing claim.
    let ec = SigningKey::generate(KeyAlgorithm::Es256).expect("ec");
    let t = jwt_with(&ec, &fp, "EMU12345.ALICE", now, 60);
    assert_eq!(refused(&env, &t).await, "JWT_TOKEN_INVALID");
    assert_eq!(refused(&env, "not.a.jwt").await, "JWT_TOKEN_INVALID");
    let t = key
        .sign_jwt(
            None,
            &json!({"iss": format!("EMU12345.ALICE.{fp}"), "sub": "EMU12345.ALICE"}),
        )
        .expect("sign");
    assert_eq!(refused(&env, &t).await, "JWT_TOKEN_INVALID");
    // A tampered payload.
    let good = jwt(&env, &key);
    let mut parts: Vec<String> = good.split('.').map(String::from).collect();
    parts[1] = parts[1].chars().rev().collect();
    assert_eq!(refused(&env, &parts.join(".")).await, "JWT_TOKEN_INVALID");

    // And the good one still works after all that.
    let (status, _) = keypair_sql(&env, &good, Some("KEYPAIR_JWT")).await;
    assert_eq!(status, 200);
    // The details are for administrators only.
    let out = env
        .emu()
        .run_sql_as("ALICE", "SELECT SYSTEM$GET_LOGIN_FAILURE_DETAILS('x')");
    assert_eq!(out.error().map(|e| e.code.as_str()), Some("003001"));
}

#[tokio::test]
async fn rotation_with_rsa_public_key_2_never_breaks_either_key() {
    let env = Env::start().await;
    let old = rsa_key();
    let new = rsa_key();
    assign(&env, "RSA_PUBLIC_KEY", &old);
    assign(&env, "RSA_PUBLIC_KEY_2", &new);
    for key in [&old, &new] {
        let (status, body) = keypair_sql(&env, &jwt(&env, key), Some("KEYPAIR_JWT")).await;
        assert_eq!(status, 200, "{body}");
    }
    // The old key unset: only the new one logs in.
    let out = env
        .emu()
        .run_sql_as("ADMIN", "ALTER USER alice UNSET RSA_PUBLIC_KEY");
    assert!(out.is_ok(), "{out:?}");
    assert_eq!(
        refused(&env, &jwt(&env, &old)).await,
        "JWT_TOKEN_INVALID_PUBLIC_KEY_FINGERPRINT_MISMATCH"
    );
    let (status, _) = keypair_sql(&env, &jwt(&env, &new), Some("KEYPAIR_JWT")).await;
    assert_eq!(status, 200);
}

#[test]
fn alter_user_refuses_bad_keys_unknown_users_and_non_admins() {
    let emu = snowflake_emulator::Emulator::new(snowflake_emulator::EmulatorConfig::default());
    let key = rsa_key();
    let b64 = key.public_key().base64();
    // PEM delimiters, not base64, an EC key: an invalid value.
    let pem = key.public_key().pem();
    for bad in [
        pem.as_str(),
        "not base64!",
        &SigningKey::generate(KeyAlgorithm::Es256)
            .expect("ec")
            .public_key()
            .base64(),
    ] {
        let out = emu.run_sql_as(
            "ADMIN",
            &format!("ALTER USER alice SET RSA_PUBLIC_KEY = '{bad}'"),
        );
        assert_eq!(
            out.error().map(|e| e.code.as_str()),
            Some("001008"),
            "{bad}"
        );
    }
    let out = emu.run_sql_as(
        "ADMIN",
        &format!("ALTER USER nobody SET RSA_PUBLIC_KEY = '{b64}'"),
    );
    assert_eq!(out.error().map(|e| e.code.as_str()), Some("002003"));
    let out = emu.run_sql_as(
        "ADMIN",
        &format!("ALTER USER IF EXISTS nobody SET RSA_PUBLIC_KEY = '{b64}'"),
    );
    assert!(out.is_ok());
    let out = emu.run_sql_as(
        "ALICE",
        &format!("ALTER USER alice SET RSA_PUBLIC_KEY = '{b64}'"),
    );
    assert_eq!(out.error().map(|e| e.code.as_str()), Some("003001"));
    let out = emu.run_sql_as("ADMIN", "ALTER USER alice UNSET PASSWORD");
    assert_eq!(out.error().map(|e| e.code.as_str()), Some("001003"));
    // A key split over lines (as copied from a PEM body) is accepted.
    let wrapped: String = b64
        .as_bytes()
        .chunks(64)
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect::<Vec<_>>()
        .join("\n");
    let out = emu.run_sql_as(
        "ADMIN",
        &format!("ALTER USER alice SET RSA_PUBLIC_KEY = '{wrapped}' RSA_PUBLIC_KEY_2 = '{b64}'"),
    );
    assert!(out.is_ok(), "{out:?}");
    let out = emu.run_sql_as(
        "ADMIN",
        "ALTER USER alice UNSET RSA_PUBLIC_KEY, RSA_PUBLIC_KEY_2",
    );
    assert!(out.is_ok(), "{out:?}");
}
