//! The refresh_token grant: plain, single-use rotation, reuse detection, expiry,
//! revocation, and client-secret rotation.

use crate::common::{Env, basic_encoded, str_of};

async fn refresh(
    env: &Env,
    creds: &snowflake_emulator::ClientCredentials,
    token: &str,
) -> (u16, serde_json::Value) {
    env.token(
        creds,
        &[("grant_type", "refresh_token"), ("refresh_token", token)],
    )
    .await
}

#[tokio::test]
async fn plain_refresh_keeps_the_refresh_token() {
    let env = Env::start().await;
    let creds = env.create_integration("TW_SALES", "OAUTH_ACCESS_TOKEN_VALIDITY = 900");
    let first = env.tokens_for_alice(&creds, &[]).await;
    let rt = str_of(&first, "refresh_token").to_string();
    for _ in 0..2 {
        let (status, body) = refresh(&env, &creds, &rt).await;
        assert_eq!(status, 200, "{body}");
        let keys: Vec<&str> = body
            .as_object()
            .expect("object")
            .keys()
            .map(String::as_str)
            .collect();
        let mut keys = keys;
        keys.sort_unstable();
        assert_eq!(
            keys,
            ["access_token", "expires_in", "idpInitiated", "token_type"]
        );
        assert_eq!(body["expires_in"], 900);
        let (status, _) = env.sql_api(str_of(&body, "access_token"), "SELECT 1").await;
        assert_eq!(status, 200);
    }
    // The first access token still works (no single-use rotation).
    let (status, _) = env
        .sql_api(str_of(&first, "access_token"), "SELECT 1")
        .await;
    assert_eq!(status, 200);
    // A refresh asking for another role is refused.
    let (status, body) = env
        .token(
            &creds,
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", &rt),
                ("scope", "session:role:PUBLIC"),
            ],
        )
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant"))
    );
    assert_eq!(env.emu().stats().counters.refresh_token_grants_ok, 2);
    assert_eq!(env.emu().stats().counters.refresh_token_grants_failed, 1);
}

#[tokio::test]
async fn single_use_rotation_and_reuse_detection() {
    let env = Env::start().await;
    let creds = env.create_integration("TW_SALES", "OAUTH_REFRESH_TOKEN_VALIDITY = 86400");
    let first = env
        .tokens_for_alice(&creds, &[("enable_single_use_refresh_tokens", "true")])
        .await;
    let rt1 = str_of(&first, "refresh_token").to_string();

    // Half a day later: the new refresh token keeps the original expiry.
    env.emu()
        .set_clock_offset(chrono::Duration::seconds(43_200));
    let (status, second) = refresh(&env, &creds, &rt1).await;
    assert_eq!(status, 200, "{second}");
    let rt2 = str_of(&second, "refresh_token").to_string();
    assert_ne!(rt1, rt2);
    let left = second["refresh_token_expires_in"]
        .as_i64()
        .expect("expires_in");
    assert!((43_100..=43_200).contains(&left), "{left}");
    // Earlier access token is dead, the new one works.
    assert_eq!(
        env.sql_api(str_of(&first, "access_token"), "SELECT 1")
            .await
            .0,
        401
    );
    assert_eq!(
        env.sql_api(str_of(&second, "access_token"), "SELECT 1")
            .await
            .0,
        200
    );

    // Reuse of rt1: refused, and everything of the grant dies.
    let (status, body) = refresh(&env, &creds, &rt1).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant"))
    );
    let (status, _) = refresh(&env, &creds, &rt2).await;
    assert_eq!(status, 400);
    assert_eq!(
        env.sql_api(str_of(&second, "access_token"), "SELECT 1")
            .await
            .0,
        401
    );
}

#[tokio::test]
async fn integration_requiring_single_use_rotates_without_the_request_flag() {
    let env = Env::start().await;
    let creds = env.create_integration(
        "TW_SALES",
        "OAUTH_SINGLE_USE_REFRESH_TOKENS_REQUIRED = TRUE",
    );
    let first = env.tokens_for_alice(&creds, &[]).await;
    let (status, body) = refresh(&env, &creds, str_of(&first, "refresh_token")).await;
    assert_eq!(status, 200);
    assert!(body["refresh_token"].is_string(), "{body}");
}

#[tokio::test]
async fn refresh_token_expires_on_the_emulator_clock() {
    let env = Env::start().await;
    let creds = env.create_integration("TW_SALES", "OAUTH_REFRESH_TOKEN_VALIDITY = 86400");
    let first = env.tokens_for_alice(&creds, &[]).await;
    assert_eq!(first["refresh_token_expires_in"], 86_400);
    let rt = str_of(&first, "refresh_token").to_string();
    env.emu()
        .set_clock_offset(chrono::Duration::seconds(86_300));
    assert_eq!(refresh(&env, &creds, &rt).await.0, 200);
    // Over HTTP this time.
    let resp = env
        .http
        .post(env.url("/_emulator/clock"))
        .json(&serde_json::json!({"offset_seconds": 86_401}))
        .send()
        .await
        .expect("clock");
    assert_eq!(resp.status(), 200);
    let (status, body) = refresh(&env, &creds, &rt).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant"))
    );
    assert!(str_of(&body, "error_description").contains("expired"));
}

#[tokio::test]
async fn revocation_kills_refresh_and_access_tokens() {
    let env = Env::start().await;
    let creds = env.create_integration("TW_SALES", "");
    let a = env.tokens_for_alice(&creds, &[]).await;
    let b = env.tokens_for_alice(&creds, &[]).await;
    let c = env.tokens_for_alice(&creds, &[]).await;

    env.emu()
        .revoke_delegated_authorizations("ALICE", "TW_SALES");
    assert_eq!(
        refresh(&env, &creds, str_of(&a, "refresh_token")).await.0,
        400
    );
    assert_eq!(
        env.sql_api(str_of(&a, "access_token"), "SELECT 1").await.0,
        401
    );
    assert_eq!(
        refresh(&env, &creds, str_of(&b, "refresh_token")).await.0,
        400
    );

    // New authorizations work again; revoke them with SQL and over HTTP.
    let d = env.tokens_for_alice(&creds, &[]).await;
    let out = env.emu().run_sql_as(
        "ADMIN",
        "ALTER USER alice REMOVE DELEGATED AUTHORIZATIONS FROM SECURITY INTEGRATION tw_sales",
    );
    assert!(out.is_ok(), "{out:?}");
    assert_eq!(
        refresh(&env, &creds, str_of(&d, "refresh_token")).await.0,
        400
    );
    let e = env.tokens_for_alice(&creds, &[]).await;
    assert_eq!(
        refresh(&env, &creds, str_of(&e, "refresh_token")).await.0,
        200
    );
    let resp = env
        .http
        .post(env.url("/_emulator/revoke"))
        .json(&serde_json::json!({"user": "ALICE", "integration": "TW_SALES"}))
        .send()
        .await
        .expect("revoke");
    assert_eq!(resp.status(), 200);
    assert_eq!(
        refresh(&env, &creds, str_of(&e, "refresh_token")).await.0,
        400
    );
    let _ = c;
}

#[tokio::test]
async fn refreshing_one_secret_slot_keeps_the_other_working() {
    let env = Env::start().await;
    let creds = env.create_integration("TW_SALES", "");
    let tokens = env.tokens_for_alice(&creds, &[]).await;
    let rt = str_of(&tokens, "refresh_token").to_string();
    let out = env.emu().run_sql_as(
        "ADMIN",
        "ALTER SECURITY INTEGRATION TW_SALES REFRESH OAUTH_CLIENT_SECRET",
    );
    assert!(out.is_ok());
    let fields = [
        ("grant_type", "refresh_token"),
        ("refresh_token", rt.as_str()),
    ];
    let (status, body) = env
        .token_with_auth(
            Some(basic_encoded(&creds.client_id, &creds.client_secret)),
            &fields,
        )
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_client"))
    );
    let (status, _) = env
        .token_with_auth(
            Some(basic_encoded(&creds.client_id, &creds.client_secret_2)),
            &fields,
        )
        .await;
    assert_eq!(status, 200);
    let fresh = env.emu().client_credentials("TW_SALES").expect("creds");
    let (status, _) = env
        .token_with_auth(
            Some(basic_encoded(&fresh.client_id, &fresh.client_secret)),
            &fields,
        )
        .await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn no_refresh_token_when_the_integration_does_not_issue_them() {
    let env = Env::start().await;
    let creds = env.create_integration("TW_SALES", "");
    env.emu().run_sql_as(
        "ADMIN",
        "ALTER SECURITY INTEGRATION TW_SALES SET OAUTH_ISSUE_REFRESH_TOKENS = FALSE",
    );
    let body = env.tokens_for_alice(&creds, &[]).await;
    assert!(
        body.get("refresh_token").is_none() && body.get("refresh_token_expires_in").is_none(),
        "{body}"
    );
    assert_eq!(body["scope"], "session:role:ANALYST");
}
