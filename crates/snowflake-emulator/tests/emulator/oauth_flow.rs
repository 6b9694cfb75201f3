//! /oauth/authorize and the authorization-code grant.

use snowflake_emulator::{AuthorizeOutcome, sign_in_and_consent};

use crate::common::{Env, REDIRECT, VERIFIER, basic_encoded, basic_raw, pkce_params, str_of};

#[tokio::test]
async fn full_code_flow_with_pkce() {
    let env = Env::start().await;
    let creds = env.create_integration("TW_SALES", "OAUTH_ENFORCE_PKCE = TRUE");
    let body = env.tokens_for_alice(&creds, &[]).await;
    assert!(str_of(&body, "access_token").starts_with("ver:1-hint:"));
    assert!(str_of(&body, "refresh_token").starts_with("ver:2-hint:"));
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["username"], "ALICE");
    assert_eq!(body["scope"], "refresh_token session:role:ANALYST");
    assert_eq!(body["refresh_token_expires_in"], 7_776_000);
    assert_eq!(body["idpInitiated"], false);
    assert_eq!(body["expires_in"], 600);
    let stats = env.emu().stats();
    assert_eq!(stats.counters.authorization_code_grants_ok, 1);
}

#[tokio::test]
async fn wrong_verifier_reused_code_and_wrong_redirect_are_invalid_grant() {
    let env = Env::start().await;
    let creds = env.create_integration("TW_SALES", "");
    let scope = "refresh_token session:role:ANALYST";

    let code = env.code_for(&creds, "ALICE", "alice-pass", scope).await;
    let wrong = "x".repeat(50);
    let fields = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", REDIRECT),
        ("code_verifier", wrong.as_str()),
    ];
    let (status, body) = env.token(&creds, &fields).await;
    assert_eq!(status, 400);
    assert_eq!(body["error"], "invalid_grant");
    assert_eq!(body["success"], false);
    assert!(body["data"].is_null() && body["code"].is_null());
    assert!(body["error_description"].is_string());

    let code = env.code_for(&creds, "ALICE", "alice-pass", scope).await;
    let other_redirect = "http://127.0.0.1:9/elsewhere";
    let fields = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", other_redirect),
        ("code_verifier", VERIFIER),
    ];
    let (status, body) = env.token(&creds, &fields).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant"))
    );

    let code = env.code_for(&creds, "ALICE", "alice-pass", scope).await;
    let fields = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", REDIRECT),
        ("code_verifier", VERIFIER),
    ];
    let (status, first) = env.token(&creds, &fields).await;
    assert_eq!(status, 200);
    let (status, body) = env.token(&creds, &fields).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant"))
    );
    // Replaying a code revokes what it issued.
    let (status, _) = env
        .sql_api(str_of(&first, "access_token"), "SELECT CURRENT_USER()")
        .await;
    assert_eq!(status, 401);
    assert_eq!(
        env.emu().stats().counters.authorization_code_grants_failed,
        3
    );
}

#[tokio::test]
async fn basic_auth_raw_and_url_encoded_both_work_and_bad_secret_is_invalid_client() {
    let env = Env::start().await;
    let creds = env.create_integration("TW_SALES", "");
    assert!(creds.client_secret.contains('+') && creds.client_secret.contains('/'));
    for auth in [
        basic_encoded(&creds.client_id, &creds.client_secret),
        basic_raw(&creds.client_id, &creds.client_secret),
        basic_raw(&creds.client_id, &creds.client_secret_2),
    ] {
        let code = env
            .code_for(&creds, "ALICE", "alice-pass", "session:role:ANALYST")
            .await;
        let fields = [
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", REDIRECT),
            ("code_verifier", VERIFIER),
        ];
        let (status, body) = env.token_with_auth(Some(auth), &fields).await;
        assert_eq!(status, 200, "{body}");
        // No refresh_token scope: no refresh token.
        assert!(body.get("refresh_token").is_none(), "{body}");
        assert_eq!(body["scope"], "session:role:ANALYST");
    }
    // Credentials in the body.
    let code = env
        .code_for(&creds, "ALICE", "alice-pass", "session:role:ANALYST")
        .await;
    let fields = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", REDIRECT),
        ("code_verifier", VERIFIER),
        ("client_id", creds.client_id.as_str()),
        ("client_secret", creds.client_secret.as_str()),
    ];
    let (status, _) = env.token_with_auth(None, &fields).await;
    assert_eq!(status, 200);

    // A mangled secret (what a '+' turned into ' ' looks like) is refused.
    let mangled = creds.client_secret.replace('+', " ");
    let (status, body) = env
        .token_with_auth(
            Some(basic_raw(&creds.client_id, &mangled)),
            &[("grant_type", "refresh_token")],
        )
        .await;
    assert_eq!(status, 400);
    assert_eq!(
        body,
        serde_json::json!({"data": null, "message": "This is an invalid client.", "code": null, "success": false, "error": "invalid_client"})
    );
}

#[tokio::test]
async fn token_request_errors() {
    let env = Env::start().await;
    let creds = env.create_integration("TW_SALES", "");
    let (status, body) = env.token(&creds, &[("grant_type", "password")]).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("unsupported_grant_type"))
    );
    let (_, body) = env
        .token(&creds, &[("grant_type", "authorization_code")])
        .await;
    assert_eq!(body["error"], "invalid_request");
    let (_, body) = env
        .token(
            &creds,
            &[("grant_type", "refresh_token"), ("refresh_token", "nope")],
        )
        .await;
    assert_eq!(body["error"], "invalid_grant");
    assert_eq!(
        body["error_description"],
        "Unknown or invalid refresh token."
    );
}

#[tokio::test]
async fn blocked_roles_are_refused_at_authorize() {
    let env = Env::start().await;
    let creds = env.create_integration("TW_SALES", "BLOCKED_ROLES_LIST = ('ANALYST')");

    // Explicitly requested: refused before sign-in.
    let url = env.authorize_url(&creds.client_id, "session:role:ACCOUNTADMIN", &[]);
    let resp = env.http.get(&url).send().await.expect("get");
    assert_eq!(resp.status(), 302);
    let loc = resp.headers()["location"]
        .to_str()
        .expect("location")
        .to_string();
    let out = AuthorizeOutcome::parse(&loc);
    assert_eq!(out.error.as_deref(), Some("invalid_scope"));
    assert!(
        out.error_description
            .as_deref()
            .is_some_and(|d| d.contains("ACCOUNTADMIN") && d.contains("blocked"))
    );
    assert_eq!(out.state.as_deref(), Some("st-123"));

    // Default role ACCOUNTADMIN (no role scope): refused after sign-in.
    let url = env.authorize_url(&creds.client_id, "refresh_token", &[]);
    let loc = sign_in_and_consent(&env.http, &url, "ADMIN", "admin-pass")
        .await
        .expect("flow");
    let out = AuthorizeOutcome::parse(&loc);
    assert_eq!(out.error.as_deref(), Some("invalid_scope"));
    assert!(out.code.is_none());

    // BLOCKED_ROLES_LIST adds ANALYST.
    let url = env.authorize_url(&creds.client_id, "session:role:ANALYST", &[]);
    let loc = sign_in_and_consent(&env.http, &url, "ALICE", "alice-pass")
        .await
        .expect("flow");
    assert_eq!(
        AuthorizeOutcome::parse(&loc).error.as_deref(),
        Some("invalid_scope")
    );

    // PUBLIC is fine.
    let url = env.authorize_url(&creds.client_id, "session:role:PUBLIC", &[]);
    let loc = sign_in_and_consent(&env.http, &url, "ALICE", "alice-pass")
        .await
        .expect("flow");
    let out = AuthorizeOutcome::parse(&loc);
    assert!(out.code.is_some(), "{loc}");
    assert_eq!(out.scope.as_deref(), Some("session:role:PUBLIC"));
}

async fn redirect_error(env: &Env, url: &str) -> AuthorizeOutcome {
    let resp = env.http.get(url).send().await.expect("get");
    assert_eq!(resp.status(), 302, "{url}");
    let loc = resp.headers()["location"]
        .to_str()
        .expect("location")
        .to_string();
    assert!(loc.starts_with(REDIRECT), "{loc}");
    AuthorizeOutcome::parse(&loc)
}

#[tokio::test]
async fn authorize_validation() {
    let env = Env::start().await;
    let creds = env.create_integration("TW_SALES", "OAUTH_ENFORCE_PKCE = TRUE");
    let id = creds.client_id.as_str();

    // Unknown client_id and redirect mismatch: an error page, no redirect.
    let resp = env
        .http
        .get(env.authorize_url("nope", "refresh_token", &pkce_params()))
        .send()
        .await
        .expect("get");
    assert_eq!(resp.status(), 400);
    assert!(resp.text().await.expect("text").contains("390306"));
    let url = env
        .authorize_url(id, "refresh_token", &pkce_params())
        .replace("callback", "other");
    let resp = env.http.get(url).send().await.expect("get");
    assert_eq!(resp.status(), 400);
    assert!(resp.text().await.expect("text").contains("390307"));

    let out = redirect_error(
        &env,
        &env.authorize_url(id, "refresh_token offline_access", &pkce_params()),
    )
    .await;
    assert_eq!(out.error.as_deref(), Some("invalid_scope"));
    assert!(
        out.error_description
            .as_deref()
            .is_some_and(|d| d.contains("390308"))
    );

    let out = redirect_error(&env, &env.authorize_url(id, "refresh_token", &[])).await;
    assert_eq!(out.error.as_deref(), Some("invalid_request"));
    assert!(
        out.error_description
            .as_deref()
            .is_some_and(|d| d.contains("390311"))
    );

    let plain = [
        ("code_challenge", "abc"),
        ("code_challenge_method", "plain"),
    ];
    let out = redirect_error(&env, &env.authorize_url(id, "refresh_token", &plain)).await;
    assert!(
        out.error_description
            .as_deref()
            .is_some_and(|d| d.contains("390311"))
    );

    let url = env
        .authorize_url(id, "refresh_token", &pkce_params())
        .replace("response_type=code", "response_type=token");
    let out = redirect_error(&env, &url).await;
    assert_eq!(out.error.as_deref(), Some("unsupported_response_type"));

    let long_state = "s".repeat(2049);
    let url = env
        .authorize_url(id, "refresh_token", &pkce_params())
        .replace("state=st-123", &format!("state={long_state}"));
    let out = redirect_error(&env, &url).await;
    assert!(
        out.error_description
            .as_deref()
            .is_some_and(|d| d.contains("390305"))
    );

    // Wrong password: the sign-in page again, Err from the helper.
    let err = sign_in_and_consent(
        &env.http,
        &env.authorize_url(id, "refresh_token", &pkce_params()),
        "ALICE",
        "bad",
    )
    .await
    .expect_err("refused");
    assert!(
        err.contains("401") && err.contains("Incorrect username or password"),
        "{err}"
    );

    // Deny.
    let loc = snowflake_emulator::sign_in_and_decide(
        &env.http,
        &env.authorize_url(id, "refresh_token session:role:ANALYST", &pkce_params()),
        "ALICE",
        "alice-pass",
        false,
    )
    .await
    .expect("flow");
    assert_eq!(
        AuthorizeOutcome::parse(&loc).error.as_deref(),
        Some("access_denied")
    );
}

#[tokio::test]
async fn disabled_integration_refuses_authorize_and_encoded_role_works() {
    let env = Env::start().await;
    let creds = env.create_integration("TW_SALES", "");
    env.emu().run_sql_as(
        "ADMIN",
        "ALTER SECURITY INTEGRATION TW_SALES SET ENABLED = FALSE",
    );
    let resp = env
        .http
        .get(env.authorize_url(&creds.client_id, "refresh_token", &[]))
        .send()
        .await
        .expect("get");
    assert_eq!(resp.status(), 400);
    assert!(resp.text().await.expect("text").contains("ENABLED = FALSE"));

    env.emu().run_sql_as(
        "ADMIN",
        "ALTER SECURITY INTEGRATION TW_SALES SET ENABLED = TRUE",
    );
    let url = env.authorize_url(&creds.client_id, "session:role-encoded:ANALYST", &[]);
    let loc = sign_in_and_consent(&env.http, &url, "alice", "alice-pass")
        .await
        .expect("flow");
    assert_eq!(
        AuthorizeOutcome::parse(&loc).scope.as_deref(),
        Some("session:role:ANALYST")
    );
}

#[tokio::test]
async fn pre_authorized_role_skips_consent() {
    let env = Env::start().await;
    let creds = env.create_integration("TW_SALES", "PRE_AUTHORIZED_ROLES_LIST = ('ANALYST')");
    let url = env.authorize_url(&creds.client_id, "session:role:ANALYST", &[]);
    let resp = env
        .http
        .post(&url)
        .form(&[("username", "ALICE"), ("password", "alice-pass")])
        .send()
        .await
        .expect("post");
    assert_eq!(resp.status(), 302);
    let loc = resp.headers()["location"]
        .to_str()
        .expect("loc")
        .to_string();
    assert!(AuthorizeOutcome::parse(&loc).code.is_some());
}
