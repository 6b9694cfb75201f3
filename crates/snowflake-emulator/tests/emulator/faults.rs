//! Fault injection on /oauth/token-request, from the library and over HTTP.

use std::time::Duration;

use snowflake_emulator::Fault;

use crate::common::{Env, basic_encoded, str_of};

async fn raw_refresh(
    env: &Env,
    creds: &snowflake_emulator::ClientCredentials,
    rt: &str,
) -> reqwest::Response {
    env.http
        .post(env.url("/oauth/token-request"))
        .header(
            "Authorization",
            basic_encoded(&creds.client_id, &creds.client_secret),
        )
        .form(&[("grant_type", "refresh_token"), ("refresh_token", rt)])
        .send()
        .await
        .expect("send")
}

#[tokio::test]
async fn each_fault_then_recovery() {
    let env = Env::start().await;
    let creds = env.create_integration(
        "TW_SALES",
        "OAUTH_SINGLE_USE_REFRESH_TOKENS_REQUIRED = TRUE",
    );
    let tokens = env.tokens_for_alice(&creds, &[]).await;
    let rt = str_of(&tokens, "refresh_token").to_string();

    env.emu().inject_token_fault(Fault::ServerError, 2);
    for _ in 0..2 {
        let resp = raw_refresh(&env, &creds, &rt).await;
        assert_eq!(resp.status(), 503);
        assert!(resp.text().await.expect("text").contains("<html>"));
    }

    env.emu().inject_token_fault(Fault::Garbage, 1);
    let resp = raw_refresh(&env, &creds, &rt).await;
    assert_eq!(resp.status(), 200);
    let text = resp.text().await.expect("text");
    assert!(
        serde_json::from_str::<serde_json::Value>(&text).is_err(),
        "{text}"
    );

    env.emu().inject_token_fault(Fault::MissingAccessToken, 1);
    let resp = raw_refresh(&env, &creds, &rt).await;
    assert_eq!(resp.status(), 200);
    let body: serde_json::Value = resp.json().await.expect("json");
    assert!(body.get("access_token").is_none() && body["token_type"] == "Bearer");

    // Over HTTP: a timeout the client gives up on.
    let resp = env
        .http
        .post(env.url("/_emulator/faults"))
        .json(&serde_json::json!({"fault": "timeout", "times": 1}))
        .send()
        .await
        .expect("faults");
    assert_eq!(resp.status(), 200);
    let started = std::time::Instant::now();
    let err = env
        .http
        .post(env.url("/oauth/token-request"))
        .timeout(Duration::from_millis(700))
        .form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", rt.as_str()),
        ])
        .send()
        .await
        .expect_err("timed out");
    assert!(err.is_timeout(), "{err}");
    assert!(started.elapsed() < Duration::from_secs(5));

    // Faults consumed nothing: the single-use refresh token still works, once.
    let resp = raw_refresh(&env, &creds, &rt).await;
    assert_eq!(resp.status(), 200);
    let stats: serde_json::Value = env
        .http
        .get(env.url("/_emulator/stats"))
        .send()
        .await
        .expect("stats")
        .json()
        .await
        .expect("json");
    assert_eq!(stats["faulted_token_requests"], 5);
    assert_eq!(stats["refresh_token_grants_ok"], 1);
    assert_eq!(stats["integrations"][0]["name"], "TW_SALES");
    assert!(stats["pending_fault"].is_null());
    // The pollers' endpoint: the same counters, without the integrations.
    let counters: serde_json::Value = env
        .http
        .get(env.url("/_emulator/counters"))
        .send()
        .await
        .expect("counters")
        .json()
        .await
        .expect("json");
    assert_eq!(counters["faulted_token_requests"], 5);
    assert_eq!(counters["refresh_token_grants_ok"], 1);
    assert!(counters.get("integrations").is_none(), "{counters}");
}
