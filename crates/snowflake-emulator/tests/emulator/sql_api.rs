//! POST /api/v2/statements.

use base64::Engine;

use crate::common::{Env, str_of};

#[tokio::test]
async fn current_user_with_an_oauth_token() {
    let env = Env::start().await;
    let creds = env.create_integration("TW_SALES", "");
    let tokens = env.tokens_for_alice(&creds, &[]).await;
    let (status, body) = env
        .sql_api(
            str_of(&tokens, "access_token"),
            "SELECT CURRENT_USER(), CURRENT_ROLE()",
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["code"], "090001");
    assert_eq!(body["message"], "Statement executed successfully.");
    assert!(body["statementHandle"].is_string());
    assert_eq!(body["resultSetMetaData"]["numRows"], 1);
    assert_eq!(
        body["resultSetMetaData"]["rowType"][0]["name"],
        "CURRENT_USER()"
    );
    assert_eq!(body["resultSetMetaData"]["rowType"][0]["type"], "text");
    assert_eq!(body["data"], serde_json::json!([["ALICE", "ANALYST"]]));

    // An OAuth session cannot create integrations (ANALYST is not ACCOUNTADMIN): 422.
    let (status, body) = env
        .sql_api(
            str_of(&tokens, "access_token"),
            "DROP SECURITY INTEGRATION TW_SALES",
        )
        .await;
    assert_eq!(status, 422);
    assert_eq!(body["code"], "003001");
}

#[tokio::test]
async fn expired_and_invalid_tokens() {
    let env = Env::start().await;
    let creds = env.create_integration("TW_SALES", "");
    let tokens = env.tokens_for_alice(&creds, &[]).await;
    let at = str_of(&tokens, "access_token").to_string();

    let (status, body) = env.sql_api("ver:1-hint:0-bogus", "SELECT 1").await;
    assert_eq!(status, 401);
    assert_eq!(body["code"], "390303");
    assert!(str_of(&body, "message").starts_with("Invalid OAuth access token. ["));

    env.emu().set_clock_offset(chrono::Duration::seconds(601));
    let (status, body) = env.sql_api(&at, "SELECT 1").await;
    assert_eq!(status, 401);
    assert_eq!(body["code"], "390318");
    assert!(str_of(&body, "message").starts_with("OAuth access token expired. ["));
    assert!(env.emu().stats().counters.sql_api_auth_failures >= 2);
}

#[tokio::test]
async fn token_type_header_is_required_and_basic_is_an_emulator_convenience() {
    let env = Env::start().await;
    let creds = env.create_integration("TW_SALES", "");
    let tokens = env.tokens_for_alice(&creds, &[]).await;
    let resp = env
        .http
        .post(env.url("/api/v2/statements"))
        .bearer_auth(str_of(&tokens, "access_token"))
        .json(&serde_json::json!({"statement": "SELECT 1"}))
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status(), 401);

    let basic = base64::engine::general_purpose::STANDARD.encode("admin:admin-pass");
    let resp = env
        .http
        .post(env.url("/api/v2/statements"))
        .header("Authorization", format!("Basic {basic}"))
        .json(&serde_json::json!({"statement": "SELECT CURRENT_ROLE()"}))
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status(), 200);
    let body: serde_json::Value = resp.json().await.expect("json");
    assert_eq!(body["data"][0][0], "ACCOUNTADMIN");

    // Two statements without MULTI_STATEMENT_COUNT are refused, as on Snowflake.
    let resp = env
        .http
        .post(env.url("/api/v2/statements"))
        .header("Authorization", format!("Basic {basic}"))
        .json(&serde_json::json!({"statement": "SELECT 1; SELECT 2"}))
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status(), 422);
    let body: serde_json::Value = resp.json().await.expect("json");
    assert_eq!(body["code"], "000008");
}
