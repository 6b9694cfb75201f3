//! The authorization-code flow against a real OAuth 2.0 server nobody here wrote: the npm
//! package oidc-provider (PKCE required, refresh-token rotation on, RFC 9207 `iss`).

use crate::support::{Db, TestApp, spawn};
use reqwest::Method;
use serde_json::json;
use tokenwarden_testkit::oidc::OidcProvider;

on_both_databases!(
    code_exchange_refresh_with_rotation_and_reauthorization,
    r2_forged_reused_and_expired_states_never_reach_the_token_endpoint,
    r3_r4_wrong_issuer_is_refused_and_a_flow_only_ever_fills_its_own_token,
    provider_errors_and_a_wrong_client_secret_leave_the_token_untouched,
    a_client_secret_post_client_signs_in_and_refreshes,
);

async fn provider_for(t: &TestApp) -> OidcProvider {
    crate::support::oidc_provider(t, "tw-client", "tw-client-secret+/=").await
}

/// A global `oauth2` token pointing at the provider, and an app that uses it. Returns
/// (token id, app key).
async fn setup(t: &TestApp, op: &OidcProvider, issuer: &str) -> (String, String) {
    let (s, tok) = t
        .admin(
            Method::POST,
            "/api/v1/tokens",
            Some(json!({
                "name": "idp", "provider": "oauth2",
                "settings": {
                    "authorization_url": op.authorization_endpoint(), "token_url": op.token_endpoint(),
                    "scope": "openid api:read", "issuer": issuer, "probe_url": op.userinfo_endpoint()
                },
                "client_id": "tw-client", "client_secret": "tw-client-secret+/="
            })),
        )
        .await;
    assert_eq!(s, 201, "{tok}");
    let (s, app) = t
        .admin(
            Method::POST,
            "/api/v1/apps",
            Some(json!({"name": "reader", "tokens": ["idp"]})),
        )
        .await;
    assert_eq!(s, 201);
    (
        tok["id"].as_str().unwrap().to_owned(),
        app["api_key"].as_str().unwrap().to_owned(),
    )
}

async fn get_page(t: &TestApp, url: &str) -> (u16, String, reqwest::header::HeaderMap) {
    let res = t.http.get(url).send().await.unwrap();
    let (status, headers) = (res.status().as_u16(), res.headers().clone());
    (status, res.text().await.unwrap(), headers)
}

fn requests(op: &OidcProvider, grant: &str) -> u64 {
    op.token_requests(grant).unwrap()
}

async fn code_exchange_refresh_with_rotation_and_reauthorization(db: Db) {
    let t = spawn(db).await;
    let op = provider_for(&t).await;
    let (id, app_key) = setup(&t, &op, &op.issuer).await;

    // Not yet authorized: a clear, distinct error.
    let (s, body, _) = t
        .send(
            Method::GET,
            "/api/v1/access-tokens/idp",
            Some(&app_key),
            None,
        )
        .await;
    assert_eq!(
        (s, body["code"].as_str()),
        (409, Some("token_not_authorized")),
        "{body}"
    );

    // R1: PKCE S256 in the URL; the provider signs in and sends the browser to our callback.
    let url = t.start_authorization(&id).await;
    assert!(
        url.contains("code_challenge_method=S256") && url.contains("code_challenge="),
        "{url}"
    );
    let callback = t.follow_to_callback(&url).await;
    assert!(
        callback.contains("iss="),
        "RFC 9207 iss present: {callback}"
    );
    let (status, page, headers) = get_page(&t, &callback).await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("Token obtained"), "{page}");
    // R6, R31: no referrer, no inline script, no third-party resource.
    assert_eq!(headers.get("referrer-policy").unwrap(), "no-referrer");
    let csp = headers
        .get("content-security-policy")
        .unwrap()
        .to_str()
        .unwrap();
    assert!(
        csp.contains("script-src 'self'") && csp.contains("frame-ancestors 'none'"),
        "{csp}"
    );
    assert!(
        !page.contains("<script>") && !page.contains("http://") && !page.contains("https://"),
        "{page}"
    );
    assert_eq!(requests(&op, "authorization_code"), 1);

    // The app reads a working access token: the provider's userinfo accepts it.
    let (s, tok, h) = t
        .send(
            Method::GET,
            "/api/v1/access-tokens/idp",
            Some(&app_key),
            None,
        )
        .await;
    assert_eq!(s, 200, "{tok}");
    assert_eq!(h.get("cache-control").unwrap(), "no-store");
    let access = tok["access_token"].as_str().unwrap().to_owned();
    assert_eq!(tok["token_type"], "Bearer");
    assert!(tok["expires_in"].as_i64().unwrap() > 250);
    let me = reqwest::Client::new()
        .get(op.userinfo_endpoint())
        .bearer_auth(&access)
        .send()
        .await
        .unwrap();
    assert_eq!(me.status(), 200);
    let (s, test) = t
        .admin(Method::POST, &format!("/api/v1/tokens/{id}/test"), None)
        .await;
    assert_eq!((s, test["ok"].as_bool()), (200, Some(true)), "{test}");

    // Reads within the lifetime do not refresh.
    for _ in 0..5 {
        let (_, again, _) = t
            .send(
                Method::GET,
                "/api/v1/access-tokens/idp",
                Some(&app_key),
                None,
            )
            .await;
        assert_eq!(again["access_token"], access.as_str());
    }
    assert_eq!(requests(&op, "refresh_token"), 0);

    // Past the lifetime (our clock), a read refreshes once; the rotated refresh token is kept,
    // so a second refresh works too (the old one would be refused by the provider).
    for round in 1..=2 {
        t.clock.advance(chrono::Duration::seconds(301));
        let (s, fresh, _) = t
            .send(
                Method::GET,
                "/api/v1/access-tokens/idp",
                Some(&app_key),
                None,
            )
            .await;
        assert_eq!(s, 200, "{fresh}");
        assert_ne!(fresh["access_token"], access.as_str());
        assert_eq!(requests(&op, "refresh_token"), round);
    }
    // min_validity: asking for more than what is left forces a refresh, asking for less does not.
    let (s, _, _) = t
        .send(
            Method::GET,
            "/api/v1/access-tokens/idp?min_validity=10",
            Some(&app_key),
            None,
        )
        .await;
    assert_eq!((s, requests(&op, "refresh_token")), (200, 2));
    t.clock.advance(chrono::Duration::seconds(250));
    let (s, _, _) = t
        .send(
            Method::GET,
            "/api/v1/access-tokens/idp?min_validity=120",
            Some(&app_key),
            None,
        )
        .await;
    assert_eq!((s, requests(&op, "refresh_token")), (200, 3));

    // The provider revokes the grant: the next refresh is refused for good.
    op.revoke_all().unwrap();
    t.clock.advance(chrono::Duration::seconds(301));
    let (s, body, _) = t
        .send(
            Method::GET,
            "/api/v1/access-tokens/idp",
            Some(&app_key),
            None,
        )
        .await;
    assert_eq!(
        (s, body["code"].as_str()),
        (409, Some("token_needs_reauthorization")),
        "{body}"
    );
    let (_, view) = t
        .admin(Method::GET, &format!("/api/v1/tokens/{id}"), None)
        .await;
    assert_eq!(view["status"], "needs_reauthorization");
    assert_eq!(
        view["client_secret_set"], true,
        "R13: credentials are never deleted on a failed refresh"
    );
    let refreshes = requests(&op, "refresh_token");
    let (s, _, _) = t
        .send(
            Method::GET,
            "/api/v1/access-tokens/idp",
            Some(&app_key),
            None,
        )
        .await;
    assert_eq!(s, 409);
    assert_eq!(
        requests(&op, "refresh_token"),
        refreshes,
        "a dead token is not hammered"
    );

    // Re-authorizing restores it.
    let callback = t
        .follow_to_callback(&t.start_authorization(&id).await)
        .await;
    assert_eq!(get_page(&t, &callback).await.0, 200);
    let (s, _, _) = t
        .send(
            Method::GET,
            "/api/v1/access-tokens/idp",
            Some(&app_key),
            None,
        )
        .await;
    assert_eq!(s, 200);
}

async fn r2_forged_reused_and_expired_states_never_reach_the_token_endpoint(db: Db) {
    let t = spawn(db).await;
    let op = provider_for(&t).await;
    let (id, _) = setup(&t, &op, &op.issuer).await;
    let callback = t
        .follow_to_callback(&t.start_authorization(&id).await)
        .await;
    let code_part = callback
        .split("code=")
        .nth(1)
        .unwrap()
        .split('&')
        .next()
        .unwrap()
        .to_owned();

    // Forged and missing state: 400, nothing sent.
    for forged in [
        format!("{}/oauth/callback?code={code_part}&state=forged", t.base),
        format!("{}/oauth/callback?code={code_part}", t.base),
    ] {
        let (s, page, _) = get_page(&t, &forged).await;
        assert_eq!(s, 400, "{page}");
    }
    assert_eq!(requests(&op, "authorization_code"), 0);
    // The real one works once; replayed, it is refused.
    assert_eq!(get_page(&t, &callback).await.0, 200);
    let (s, page, _) = get_page(&t, &callback).await;
    assert_eq!(s, 400);
    assert!(page.contains("already completed"), "{page}");
    assert_eq!(requests(&op, "authorization_code"), 1);

    // Expired: started, then 11 minutes pass before the browser comes back.
    let late = t
        .follow_to_callback(&t.start_authorization(&id).await)
        .await;
    t.clock.advance(chrono::Duration::minutes(11));
    let (s, page, _) = get_page(&t, &late).await;
    assert_eq!(s, 400);
    assert!(page.contains("expired"), "{page}");
    assert_eq!(requests(&op, "authorization_code"), 1);
}

async fn r3_r4_wrong_issuer_is_refused_and_a_flow_only_ever_fills_its_own_token(db: Db) {
    let t = spawn(db).await;
    let op = provider_for(&t).await;
    // Configured issuer differs from what the provider sends in `iss`.
    let (id, _) = setup(&t, &op, "http://127.0.0.1:1/other-issuer").await;
    let (s, other) = t
        .admin(Method::POST, "/api/v1/tokens", Some(json!({"name": "other", "provider": "oauth2", "settings": {"authorization_url": "https://auth.example.com/authorize", "token_url": "https://auth.example.com/token"}, "client_id": "x", "client_secret": "y"})))
        .await;
    assert_eq!(s, 201);
    let callback = t
        .follow_to_callback(&t.start_authorization(&id).await)
        .await;
    let (s, page, _) = get_page(&t, &callback).await;
    assert_eq!(s, 502, "{page}");
    assert!(page.contains("issuer"), "{page}");
    assert_eq!(
        requests(&op, "authorization_code"),
        0,
        "nothing sent after an issuer mismatch"
    );
    for tid in [id.as_str(), other["id"].as_str().unwrap()] {
        let (_, v) = t
            .admin(Method::GET, &format!("/api/v1/tokens/{tid}"), None)
            .await;
        assert_eq!(v["status"], "not_authorized", "{v}");
    }
}

async fn provider_errors_and_a_wrong_client_secret_leave_the_token_untouched(db: Db) {
    let t = spawn(db).await;
    let op = provider_for(&t).await;
    let (id, _) = setup(&t, &op, &op.issuer).await;
    // The provider redirects back with an error.
    let url = t.start_authorization(&id).await;
    let state = url
        .split("state=")
        .nth(1)
        .unwrap()
        .split('&')
        .next()
        .unwrap();
    let (s, page, _) = get_page(&t, &format!("{}/oauth/callback?error=access_denied&error_description=The+user+said+no&state={state}", t.base)).await;
    assert_eq!(s, 502);
    assert!(
        page.contains("access_denied") && page.contains("The user said no"),
        "{page}"
    );

    // A wrong secret in slot 1 and the right one in slot 2: slot 2 is tried and works.
    let (s, _) = t
        .admin(
            Method::PATCH,
            &format!("/api/v1/tokens/{id}"),
            Some(json!({"client_secret": "wrong", "client_secret_2": "tw-client-secret+/="})),
        )
        .await;
    assert_eq!(s, 200);
    let callback = t
        .follow_to_callback(&t.start_authorization(&id).await)
        .await;
    assert_eq!(get_page(&t, &callback).await.0, 200);
    // Both wrong: refused with the provider's words, and the stored material is unchanged (the
    // clock moves first, so material stored now would show a new authorized_at and expiry).
    let (s, _) = t
        .admin(
            Method::PATCH,
            &format!("/api/v1/tokens/{id}"),
            Some(json!({"client_secret_2": "also-wrong"})),
        )
        .await;
    assert_eq!(s, 200);
    let (_, before) = t
        .admin(Method::GET, &format!("/api/v1/tokens/{id}"), None)
        .await;
    t.clock.advance(chrono::Duration::minutes(5));
    let callback = t
        .follow_to_callback(&t.start_authorization(&id).await)
        .await;
    let (s, page, _) = get_page(&t, &callback).await;
    assert_eq!(s, 502);
    assert!(page.contains("invalid_client"), "{page}");
    let (_, after) = t
        .admin(Method::GET, &format!("/api/v1/tokens/{id}"), None)
        .await;
    assert_eq!(after["status"], "healthy");
    for field in [
        "authorized_at",
        "access_token_expires_at",
        "refresh_token_expires_at",
        "version",
    ] {
        assert_eq!(after[field], before[field], "{field}: {before} vs {after}");
    }
    assert!(before["authorized_at"].is_string(), "{before}");
}

/// The provider's second client accepts only `client_secret_post` (id and secret in the form):
/// with `client_auth = body` the code exchange and a refresh work; with HTTP Basic the same
/// client is refused.
async fn a_client_secret_post_client_signs_in_and_refreshes(db: Db) {
    let t = spawn(db).await;
    let op = provider_for(&t).await;
    let create = |name: &str, client_auth: &str| {
        json!({
            "name": name, "provider": "oauth2",
            "settings": {
                "authorization_url": op.authorization_endpoint(), "token_url": op.token_endpoint(),
                "scope": "openid api:read", "issuer": op.issuer, "probe_url": op.userinfo_endpoint(),
                "client_auth": client_auth
            },
            "client_id": op.post_client_id(), "client_secret": "tw-client-secret+/="
        })
    };
    let (s, tok) = t
        .admin(Method::POST, "/api/v1/tokens", Some(create("post", "body")))
        .await;
    assert_eq!(s, 201, "{tok}");
    let id = tok["id"].as_str().unwrap().to_owned();
    let (s, app) = t
        .admin(
            Method::POST,
            "/api/v1/apps",
            Some(json!({"name": "reader", "tokens": ["post"]})),
        )
        .await;
    assert_eq!(s, 201, "{app}");
    let key = app["api_key"].as_str().unwrap().to_owned();

    let callback = t
        .follow_to_callback(&t.start_authorization(&id).await)
        .await;
    let (s, page, _) = get_page(&t, &callback).await;
    assert_eq!(s, 200, "{page}");
    assert_eq!(requests(&op, "authorization_code"), 1);
    let read = || t.send(Method::GET, "/api/v1/access-tokens/post", Some(&key), None);
    let (s, first, _) = read().await;
    assert_eq!(s, 200, "{first}");
    // Past the lifetime: a refresh, authenticated the same way.
    t.clock.advance(chrono::Duration::seconds(301));
    let (s, second, _) = read().await;
    assert_eq!(s, 200, "{second}");
    assert_ne!(second["access_token"], first["access_token"]);
    assert_eq!(requests(&op, "refresh_token"), 1);
    let (s, test) = t
        .admin(Method::POST, &format!("/api/v1/tokens/{id}/test"), None)
        .await;
    assert_eq!((s, test["ok"].as_bool()), (200, Some(true)), "{test}");

    // The same client with HTTP Basic: the provider refuses the exchange.
    let (s, tok) = t
        .admin(
            Method::POST,
            "/api/v1/tokens",
            Some(create("basic", "basic")),
        )
        .await;
    assert_eq!(s, 201, "{tok}");
    let basic_id = tok["id"].as_str().unwrap().to_owned();
    let callback = t
        .follow_to_callback(&t.start_authorization(&basic_id).await)
        .await;
    let (s, page, _) = get_page(&t, &callback).await;
    assert_eq!(s, 502, "{page}");
    assert!(page.contains("invalid_client"), "{page}");
    let view = t
        .admin(Method::GET, &format!("/api/v1/tokens/{basic_id}"), None)
        .await
        .1;
    assert_eq!(view["status"], "not_authorized", "{view}");
}
