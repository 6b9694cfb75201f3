//! The device authorization grant (RFC 8628) against a real OAuth server nobody here wrote:
//! npm's oidc-provider with its deviceFlow feature, a public client of its own. The person is
//! played over HTTP at the provider's verification page (enter the code, confirm or abort, sign
//! in). The background pass polls, on the test's manual clock.

use crate::support::{Db, TestApp, spawn};
use reqwest::Method;
use serde_json::json;
use tokenwarden_testkit::oidc::OidcProvider;

on_both_databases!(
    rfc8628_device_sign_in_pending_then_approved_read_and_refreshed,
    rfc8628_denied_and_expired_device_sign_ins_end_without_a_token,
);

const DEVICE_GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";

async fn provider_for(t: &TestApp) -> OidcProvider {
    crate::support::oidc_provider(t, "tw-client", "tw-client-secret").await
}

/// A global `oauth2` token for the provider's public device client (no secret), and an app
/// that uses it. Returns (token id, app key).
async fn setup(t: &TestApp, op: &OidcProvider) -> (String, String) {
    let (s, tok) = t
        .admin(
            Method::POST,
            "/api/v1/tokens",
            Some(json!({
                "name": "tv", "provider": "oauth2", "grant": "device_code",
                "settings": {
                    "authorization_url": op.authorization_endpoint(),
                    "token_url": op.token_endpoint(),
                    "device_authorization_url": op.device_authorization_endpoint(),
                    "scope": "openid", "probe_url": op.userinfo_endpoint()
                },
                "client_id": op.device_client_id()
            })),
        )
        .await;
    assert_eq!(s, 201, "{tok}");
    let (s, app) = t
        .admin(
            Method::POST,
            "/api/v1/apps",
            Some(json!({"name": "reader", "tokens": ["tv"]})),
        )
        .await;
    assert_eq!(s, 201, "{app}");
    (
        tok["id"].as_str().unwrap().to_owned(),
        app["api_key"].as_str().unwrap().to_owned(),
    )
}

async fn device(t: &TestApp, method: Method, id: &str) -> (u16, serde_json::Value) {
    t.admin(
        method,
        &format!("/api/v1/tokens/{id}/device-authorization"),
        None,
    )
    .await
}

/// The person at the provider's page. Synchronous (the testkit is): it talks only to the
/// provider's process, so blocking this test's runtime meanwhile is harmless.
fn person(op: &OidcProvider, user_code: &str, approve: bool) {
    op.complete_device_sign_in(user_code, approve).unwrap();
}

async fn read(t: &TestApp, key: &str) -> (u16, serde_json::Value) {
    let (s, body, _) = t
        .send(Method::GET, "/api/v1/access-tokens/tv", Some(key), None)
        .await;
    (s, body)
}

async fn rfc8628_device_sign_in_pending_then_approved_read_and_refreshed(db: Db) {
    let t = spawn(db).await;
    let op = provider_for(&t).await;
    let (id, key) = setup(&t, &op).await;

    let (s, none) = device(&t, Method::GET, &id).await;
    assert_eq!(
        (s, none["code"].as_str()),
        (404, Some("not_found")),
        "{none}"
    );

    // Start, through the grant's dispatch point (`/authorize`, as the UI and the CLI do): the
    // code and the page for the person; the device code stays ours.
    let (s, started) = t
        .admin(
            Method::POST,
            &format!("/api/v1/tokens/{id}/authorize"),
            None,
        )
        .await;
    assert_eq!(s, 200, "{started}");
    assert_eq!(started["grant"], "device_code", "{started}");
    assert!(started.get("authorization_url").is_none(), "{started}");
    let (s, flow) = device(&t, Method::GET, &id).await;
    assert_eq!(s, 200, "{flow}");
    assert_eq!(flow, started["device"], "the same flow");
    assert_eq!(flow["status"], "pending");
    let user_code = flow["user_code"].as_str().unwrap().to_owned();
    assert_eq!(user_code.len(), 9, "oidc-provider's ****-**** mask: {flow}");
    assert_eq!(flow["verification_uri"], format!("{}/device", op.issuer));
    assert!(
        flow["verification_uri_complete"]
            .as_str()
            .unwrap()
            .contains(&user_code),
        "{flow}"
    );
    assert_eq!(flow["interval"], 5, "RFC 8628's default interval: {flow}");
    assert!(
        flow["expires_at"].as_str().unwrap().ends_with('Z'),
        "{flow}"
    );
    assert!(flow.get("device_code").is_none(), "{flow}");

    // Polled at the interval by the background pass, never earlier.
    assert_eq!(
        t.pass().await.device_polls,
        0,
        "not due before the interval"
    );
    t.clock.advance(chrono::Duration::seconds(5));
    assert_eq!(t.pass().await.device_polls, 1);
    assert_eq!(op.token_requests(DEVICE_GRANT).unwrap(), 1);
    let (_, flow) = device(&t, Method::GET, &id).await;
    assert_eq!(flow["status"], "pending", "authorization_pending: {flow}");
    let (s, body) = read(&t, &key).await;
    assert_eq!(
        (s, body["code"].as_str()),
        (409, Some("token_not_authorized"))
    );

    // The person approves at the provider; the next due poll gets the tokens.
    person(&op, &user_code, true);
    assert_eq!(t.pass().await.device_polls, 0, "still one interval apart");
    t.clock.advance(chrono::Duration::seconds(5));
    assert_eq!(t.pass().await.device_polls, 1);
    let (s, flow) = device(&t, Method::GET, &id).await;
    assert_eq!(
        (s, flow["status"].as_str()),
        (200, Some("authorized")),
        "{flow}"
    );
    assert!(flow["error"].is_null(), "{flow}");
    assert_eq!(op.token_requests(DEVICE_GRANT).unwrap(), 2);
    let (_, view) = t
        .admin(Method::GET, &format!("/api/v1/tokens/{id}"), None)
        .await;
    assert_eq!(view["status"], "healthy", "{view}");

    // The app reads a working access token (the provider's userinfo takes it).
    let (s, tok) = read(&t, &key).await;
    assert_eq!(s, 200, "{tok}");
    let access = tok["access_token"].as_str().unwrap().to_owned();
    let me = reqwest::Client::new()
        .get(op.userinfo_endpoint())
        .bearer_auth(&access)
        .send()
        .await
        .unwrap();
    assert_eq!(me.status(), 200);

    // The refresh token works like any other: a public client refreshes without a secret.
    t.clock.advance(chrono::Duration::seconds(301));
    let (s, fresh) = read(&t, &key).await;
    assert_eq!(s, 200, "{fresh}");
    assert_ne!(fresh["access_token"], access.as_str());
    assert_eq!(op.token_requests("refresh_token").unwrap(), 1);

    // An ended flow is not polled again; the audit says who signed in how.
    assert_eq!(t.pass().await.device_polls, 0);
    assert_eq!(op.token_requests(DEVICE_GRANT).unwrap(), 2);
    let (_, audit) = t
        .admin(Method::GET, &format!("/api/v1/audit?object_id={id}"), None)
        .await;
    let actions: Vec<&str> = audit["items"]
        .as_array()
        .map(|a| a.iter().filter_map(|e| e["action"].as_str()).collect())
        .unwrap_or_default();
    assert!(
        actions.contains(&"token.device_start") && actions.contains(&"token.authorize"),
        "{audit}"
    );
}

async fn rfc8628_denied_and_expired_device_sign_ins_end_without_a_token(db: Db) {
    let t = spawn(db).await;
    let op = provider_for(&t).await;
    let (id, key) = setup(&t, &op).await;

    // The person refuses: access_denied ends the flow.
    let (_, flow) = device(&t, Method::POST, &id).await;
    let first_code = flow["user_code"].as_str().unwrap().to_owned();
    person(&op, &first_code, false);
    t.clock.advance(chrono::Duration::seconds(5));
    assert_eq!(t.pass().await.device_polls, 1);
    let (_, flow) = device(&t, Method::GET, &id).await;
    assert_eq!(flow["status"], "denied", "{flow}");
    assert!(
        flow["error"].as_str().unwrap().contains("access_denied"),
        "{flow}"
    );
    let (s, body) = read(&t, &key).await;
    assert_eq!(
        (s, body["code"].as_str()),
        (409, Some("token_not_authorized"))
    );
    t.clock.advance(chrono::Duration::seconds(5));
    assert_eq!(
        t.pass().await.device_polls,
        0,
        "a denied flow is not polled"
    );

    // A new start replaces it with new codes; left alone past its expiry it is expired, shown
    // so before any pass and ended by the next pass without asking the provider.
    let (_, flow) = device(&t, Method::POST, &id).await;
    assert_eq!(flow["status"], "pending");
    assert_ne!(flow["user_code"], first_code.as_str());
    let polls = op.token_requests(DEVICE_GRANT).unwrap();
    t.clock.advance(chrono::Duration::seconds(601));
    let (_, flow) = device(&t, Method::GET, &id).await;
    assert_eq!(flow["status"], "expired", "{flow}");
    assert_eq!(t.pass().await.device_polls, 1);
    assert_eq!(op.token_requests(DEVICE_GRANT).unwrap(), polls);
    let (_, flow) = device(&t, Method::GET, &id).await;
    assert_eq!(flow["status"], "expired", "{flow}");
    assert_eq!(t.pass().await.device_polls, 0);

    // A device_code token needs a device endpoint: refused at creation, naming the setting.
    let (s, e) = t
        .admin(
            Method::POST,
            "/api/v1/tokens",
            Some(json!({
                "name": "no-device", "provider": "oauth2", "grant": "device_code",
                "settings": {"authorization_url": op.authorization_endpoint(), "token_url": op.token_endpoint()},
                "client_id": "tw-client"
            })),
        )
        .await;
    assert_eq!(
        (s, e["code"].as_str()),
        (400, Some("invalid_request")),
        "{e}"
    );
    assert!(
        e["message"]
            .as_str()
            .unwrap()
            .contains("device_authorization_url"),
        "{e}"
    );
    // A token of another grant: no device sign-in (the grant is fixed at creation), nothing
    // sent to the provider.
    let (s, other) = t
        .admin(
            Method::POST,
            "/api/v1/tokens",
            Some(json!({
                "name": "browser", "provider": "oauth2",
                "settings": {"authorization_url": op.authorization_endpoint(), "token_url": op.token_endpoint(),
                    "device_authorization_url": op.device_authorization_endpoint()},
                "client_id": "tw-client", "client_secret": "tw-client-secret"
            })),
        )
        .await;
    assert_eq!(s, 201, "{other}");
    let (s, e) = device(&t, Method::POST, other["id"].as_str().unwrap()).await;
    assert_eq!(
        (s, e["code"].as_str()),
        (400, Some("invalid_request")),
        "{e}"
    );
    assert!(
        e["message"].as_str().unwrap().contains("device_code"),
        "{e}"
    );
}
