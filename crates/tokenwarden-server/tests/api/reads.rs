//! Who reads which token, and what a token's death does to the apps that use it: against
//! Snowflake emulators (one per token where tokens share a name, so that the test can tell
//! which token it was given), on both databases. Also: a token sent to another server, the
//! `token.refresh_failed` event, the audit API's filters, `/_demo/clock` outside the demo.

use crate::support::{ADMIN, Db, TestApp, emulator, spawn};
use reqwest::Method;
use serde_json::{Value, json};
use snowflake_emulator::{Fault, RunningEmulator};
use tokenwarden_testkit::webhook::WebhookReceiver;

on_both_databases!(
    an_app_reads_only_its_tokens_and_its_own_app_level_token_wins,
    a_dead_global_token_does_not_stop_an_app_with_its_own_app_level_token,
    an_app_stays_stopped_while_a_second_token_it_uses_is_dead,
    pointing_an_authorized_token_at_another_server_drops_its_material,
    a_failing_refresh_sends_token_refresh_failed_once,
    the_audit_api_filters_by_actor_and_caps_the_limit,
);

/// Creates an app using `tokens`; returns its API key.
async fn app(t: &TestApp, name: &str, tokens: &[&str]) -> String {
    let (s, a) = t
        .admin(
            Method::POST,
            "/api/v1/apps",
            Some(json!({"name": name, "tokens": tokens})),
        )
        .await;
    assert_eq!(s, 201, "{a}");
    a["api_key"].as_str().unwrap().to_owned()
}

async fn read(t: &TestApp, key: &str, name: &str) -> (u16, Value) {
    let (s, b, _) = t
        .send(
            Method::GET,
            &format!("/api/v1/access-tokens/{name}"),
            Some(key),
            None,
        )
        .await;
    (s, b)
}

/// Does this emulator accept `token` (a `SELECT` through its SQL API)?
pub(crate) async fn accepts(emu: &RunningEmulator, token: &str) -> bool {
    reqwest::Client::new()
        .post(format!("{}/api/v2/statements", emu.base_url()))
        .bearer_auth(token)
        .header("X-Snowflake-Authorization-Token-Type", "OAUTH")
        .json(&json!({"statement": "SELECT CURRENT_USER()"}))
        .send()
        .await
        .unwrap()
        .status()
        == 200
}

async fn status(t: &TestApp, id: &str) -> Value {
    let (s, v) = t
        .admin(Method::GET, &format!("/api/v1/tokens/{id}"), None)
        .await;
    assert_eq!(s, 200, "{v}");
    v
}

async fn app_view(t: &TestApp, name: &str) -> Value {
    t.admin(Method::GET, &format!("/api/v1/apps/{name}"), None)
        .await
        .1
}

/// The nobody-reads-it daily check finds a revoked grant: the token dies.
async fn kill(t: &TestApp, emu: &RunningEmulator, id: &str) {
    let integration = emu.emulator.stats().integrations[0].name.clone();
    emu.emulator
        .revoke_delegated_authorizations("ALICE", &integration);
    t.clock.advance(chrono::Duration::hours(25));
    t.pass().await;
    assert_eq!(status(t, id).await["status"], "needs_reauthorization");
}

/// Apps A and B use token `sf`; A has its own app-level `sf` (on one emulator), and there is a
/// global `sf` (on another). Returns (A's key, B's key, A's token id, the global id).
async fn two_apps_one_name(
    t: &TestApp,
    own: &RunningEmulator,
    global: &RunningEmulator,
) -> (String, String, String, String) {
    let key_a = app(t, "app-a", &["sf", "other"]).await;
    let key_b = app(t, "app-b", &["sf"]).await;
    let own_id = t
        .authorized_snowflake_token(own, "sf", json!({"app": "app-a"}))
        .await;
    let global_id = t.authorized_snowflake_token(global, "sf", json!({})).await;
    (key_a, key_b, own_id, global_id)
}

async fn an_app_reads_only_its_tokens_and_its_own_app_level_token_wins(db: Db) {
    let t = spawn(db).await;
    let (own, global) = (emulator().await, emulator().await);
    let (key_a, key_b, _, _) = two_apps_one_name(&t, &own, &global).await;
    // A global token that neither app lists.
    let third = emulator().await;
    t.authorized_snowflake_token(&third, "unlisted", json!({}))
        .await;

    // A gets its own app-level token, not the global one of the same name.
    let (s, a) = read(&t, &key_a, "sf").await;
    assert_eq!(s, 200, "{a}");
    let a_token = a["access_token"].as_str().unwrap();
    assert!(
        accepts(&own, a_token).await,
        "A was not given its own token"
    );
    assert!(!accepts(&global, a_token).await);
    // B gets the global one, never A's app-level token.
    let (s, b) = read(&t, &key_b, "sf").await;
    assert_eq!(s, 200, "{b}");
    let b_token = b["access_token"].as_str().unwrap();
    assert_ne!(a_token, b_token);
    assert!(accepts(&global, b_token).await);
    assert!(!accepts(&own, b_token).await, "B was given A's token");

    // A token not in the app's list is 404, whether it exists or not; so is A's app-level
    // token for an app that lists another name.
    for (key, name) in [
        (&key_a, "unlisted"),
        (&key_b, "unlisted"),
        (&key_a, "other"),
        (&key_b, "other"),
        (&key_a, "no-such-token"),
    ] {
        let (s, body) = read(&t, key, name).await;
        assert_eq!(
            (s, body["code"].as_str()),
            (404, Some("not_found")),
            "{name}: {body}"
        );
        assert!(body.get("access_token").is_none());
    }
    // Once the global token is gone, B has nothing to read; A still reads its own.
    let (_, tokens) = t.admin(Method::GET, "/api/v1/tokens", None).await;
    let global_id = tokens["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["name"] == "sf" && x["scope"] == "global")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (s, _) = t
        .admin(Method::DELETE, &format!("/api/v1/tokens/{global_id}"), None)
        .await;
    assert_eq!(s, 204);
    let (s, body) = read(&t, &key_b, "sf").await;
    assert_eq!(
        s, 404,
        "B must not fall back to A's app-level token: {body}"
    );
    let (s, a) = read(&t, &key_a, "sf").await;
    assert_eq!((s, a["access_token"].as_str()), (200, Some(a_token)));
}

async fn a_dead_global_token_does_not_stop_an_app_with_its_own_app_level_token(db: Db) {
    let t = spawn(db).await;
    let (own, global) = (emulator().await, emulator().await);
    let (key_a, key_b, own_id, global_id) = two_apps_one_name(&t, &own, &global).await;
    kill(&t, &global, &global_id).await;
    assert_eq!(status(&t, &own_id).await["status"], "healthy");
    let b = app_view(&t, "app-b").await;
    assert_eq!(
        (b["state"].as_str(), b["stop_reason"].as_str()),
        (Some("stopped"), Some("waiting for token sf")),
        "{b}"
    );
    let a = app_view(&t, "app-a").await;
    assert_eq!(a["state"], "running", "{a}");
    let (s, body) = read(&t, &key_a, "sf").await;
    assert_eq!(s, 200, "{body}");
    assert!(accepts(&own, body["access_token"].as_str().unwrap()).await);
    let (s, body) = read(&t, &key_b, "sf").await;
    assert_eq!(s, 409, "{body}");
}

async fn an_app_stays_stopped_while_a_second_token_it_uses_is_dead(db: Db) {
    let t = spawn(db).await;
    let (e1, e2) = (emulator().await, emulator().await);
    let key = app(&t, "both", &["one", "two"]).await;
    let one = t.authorized_snowflake_token(&e1, "one", json!({})).await;
    let two = t.authorized_snowflake_token(&e2, "two", json!({})).await;
    kill(&t, &e1, &one).await;
    kill(&t, &e2, &two).await;
    assert_eq!(app_view(&t, "both").await["state"], "stopped");
    // One token is back: the app still waits for the other.
    t.sign_in(&one).await;
    t.pass().await;
    assert_eq!(status(&t, &one).await["status"], "healthy");
    let a = app_view(&t, "both").await;
    assert_eq!(
        (a["state"].as_str(), a["stop_reason"].as_str()),
        (Some("stopped"), Some("waiting for token two")),
        "{a}"
    );
    let (s, body) = read(&t, &key, "one").await;
    assert_eq!(
        (s, body["code"].as_str()),
        (409, Some("app_stopped")),
        "{body}"
    );
    let (s, body) = t.admin(Method::POST, "/api/v1/apps/both/start", None).await;
    assert_eq!(s, 409, "started with a dead token: {body}");
    // Both back: it starts by itself.
    t.sign_in(&two).await;
    t.pass().await;
    assert_eq!(app_view(&t, "both").await["state"], "running");
    assert_eq!(read(&t, &key, "one").await.0, 200);
    assert_eq!(read(&t, &key, "two").await.0, 200);
}

async fn pointing_an_authorized_token_at_another_server_drops_its_material(db: Db) {
    let t = spawn(db).await;
    let (old, new) = (emulator().await, emulator().await);
    let key = app(&t, "reader", &["sf"]).await;
    let id = t.authorized_snowflake_token(&old, "sf", json!({})).await;
    let (s, before) = read(&t, &key, "sf").await;
    assert_eq!(s, 200, "{before}");
    let view = status(&t, &id).await;
    assert!(view["authorized_at"].is_string(), "{view}");
    let (s, moved) = t
        .admin(
            Method::PATCH,
            &format!("/api/v1/tokens/{id}"),
            Some(
                json!({"settings": {"account": new.base_url(), "role": "ANALYST"},
                        "client_id": "new-client", "client_secret": "new-secret-0123456789"}),
            ),
        )
        .await;
    assert_eq!(s, 200, "{moved}");
    assert_eq!(moved["status"], "not_authorized", "{moved}");
    for field in [
        "authorized_at",
        "access_token_expires_at",
        "refresh_token_expires_at",
    ] {
        assert!(moved[field].is_null(), "{field} kept: {moved}");
    }
    // Nothing of the old server's is served any more (not even from the read cache).
    let (s, body) = read(&t, &key, "sf").await;
    assert_eq!(
        (s, body["code"].as_str()),
        (409, Some("token_not_authorized")),
        "{body}"
    );
    let (s, body, _) = t
        .send(Method::GET, "/api/v1/access-tokens/sf", Some(ADMIN), None)
        .await;
    assert_eq!(s, 409, "{body}");
    // And no pass sends the old refresh token anywhere.
    let calls = (
        old.emulator.stats().counters.token_requests,
        new.emulator.stats().counters.token_requests,
    );
    t.clock.advance(chrono::Duration::hours(25));
    t.pass().await;
    assert_eq!(
        (
            old.emulator.stats().counters.token_requests,
            new.emulator.stats().counters.token_requests
        ),
        calls
    );
}

async fn a_failing_refresh_sends_token_refresh_failed_once(db: Db) {
    let t = spawn(db).await;
    let emu = emulator().await;
    let key = app(&t, "reader", &["sf"]).await;
    let id = t.authorized_snowflake_token(&emu, "sf", json!({})).await;
    let rx = tokio::task::spawn_blocking(|| WebhookReceiver::start().unwrap())
        .await
        .unwrap();
    let (s, ch) = t
        .admin(
            Method::POST,
            "/api/v1/notification-channels",
            Some(json!({"name": "ops", "kind": "webhook", "url": rx.url(), "events": ["token.refresh_failed"]})),
        )
        .await;
    assert_eq!(s, 201, "{ch}");
    // The provider answers 503 three times: three failed attempts (past each backoff).
    emu.emulator.inject_token_fault(Fault::ServerError, 3);
    t.clock.advance(chrono::Duration::seconds(601));
    for _ in 0..3 {
        let (s, body) = read(&t, &key, "sf").await;
        assert_eq!(s, 503, "{body}");
        t.pass().await;
        t.clock.advance(chrono::Duration::minutes(31));
    }
    assert_eq!(emu.emulator.stats().counters.faulted_token_requests, 3);
    let events: Vec<Value> = rx
        .requests()
        .iter()
        .map(|r| serde_json::from_slice(&r.body).unwrap())
        .collect();
    assert_eq!(
        events.len(),
        1,
        "one alert for a run of failures: {events:#?}"
    );
    assert_eq!(events[0]["type"], "token.refresh_failed");
    assert_eq!(events[0]["data"]["token"]["id"], id, "{}", events[0]);
    assert!(
        events[0]["data"]["error"].as_str().unwrap().contains("503"),
        "{}",
        events[0]
    );
    // The provider is back: the next read refreshes; the token was never flagged.
    let (s, body) = read(&t, &key, "sf").await;
    assert_eq!(s, 200, "{body}");
    assert_eq!(status(&t, &id).await["status"], "healthy");
}

async fn the_audit_api_filters_by_actor_and_caps_the_limit(db: Db) {
    let t = spawn(db).await;
    let key = app(&t, "reader", &[]).await;
    // 1001 anonymous records (denials are audited in aggregate, one row per minute and route:
    // written here directly), an app's forbidden request, an admin's change.
    for i in 0..1001 {
        t.ctx
            .store
            .append_audit(&tokenwarden_store::AuditEvent {
                id: format!("denied-{i:04}"),
                at: t.clock_now(),
                actor: "anonymous".into(),
                action: "auth.denied".into(),
                object_type: "route".into(),
                object_id: None,
                object_name: Some("GET /api/v1/apps".into()),
                outcome: "denied".into(),
                detail: json!({"reason": "unauthorized", "count": 1}),
            })
            .await
            .unwrap();
    }
    t.clock.advance(chrono::Duration::seconds(1));
    let (s, _, _) = t.send(Method::GET, "/api/v1/apps", Some(&key), None).await;
    assert_eq!(s, 403);
    let (s, _) = t
        .admin(Method::POST, "/api/v1/apps/reader/stop", None)
        .await;
    assert_eq!(s, 200);

    let audit = |q: String| {
        let t = &t;
        async move {
            let (s, rows) = t
                .admin(Method::GET, &format!("/api/v1/audit{q}"), None)
                .await;
            assert_eq!(s, 200, "{rows}");
            rows["items"].as_array().unwrap().clone()
        }
    };
    let all = audit("?limit=1000".into()).await;
    assert_eq!(all.len(), 1000, "at most 1000 a page");
    let (s, body) = t
        .admin(Method::GET, "/api/v1/audit?limit=100000", None)
        .await;
    assert_eq!((s, body["code"].as_str()), (400, Some("invalid_request")));
    assert_eq!(audit(String::new()).await.len(), 100, "default 100");
    assert_eq!(audit("?limit=7".into()).await.len(), 7);
    // Actor: exactly the rows of that actor.
    let stop_rows: Vec<Value> = all
        .iter()
        .filter(|r| r["action"] == "app.stop")
        .cloned()
        .collect();
    assert_eq!(stop_rows.len(), 1, "{stop_rows:#?}");
    let admin = stop_rows[0]["actor"].as_str().unwrap().to_owned();
    let by_admin = audit(format!("?actor={admin}&limit=1000")).await;
    assert!(!by_admin.is_empty());
    assert!(
        by_admin.iter().all(|r| r["actor"] == admin),
        "{by_admin:#?}"
    );
    assert!(by_admin.iter().any(|r| r["action"] == "app.stop"));
    assert!(!by_admin.iter().any(|r| r["action"] == "auth.denied"));
    let forbidden: Vec<Value> = all
        .iter()
        .filter(|r| r["action"] == "auth.forbidden")
        .cloned()
        .collect();
    assert_eq!(forbidden.len(), 1, "{forbidden:#?}");
    let app_actor = forbidden[0]["actor"].as_str().unwrap().to_owned();
    assert_ne!(app_actor, admin);
    let by_app = audit(format!("?actor={app_actor}")).await;
    assert_eq!(by_app.len(), 1, "{by_app:#?}");
    assert_eq!(by_app[0]["action"], "auth.forbidden");
    assert_eq!(audit("?actor=nobody-at-all".into()).await.len(), 0);
}

#[tokio::test]
async fn the_demo_clock_does_nothing_outside_demo_mode() {
    let t = spawn(Db::Sqlite).await;
    let before = t.clock_now();
    let (s, body, _) = t.send(Method::GET, "/_demo/clock", None, None).await;
    assert_eq!(
        (s, body["code"].as_str()),
        (404, Some("no_route")),
        "{body}"
    );
    for bearer in [None, Some(ADMIN)] {
        let (s, body, _) = t
            .send(
                Method::POST,
                "/_demo/clock",
                bearer,
                Some(json!({"seconds": 86_400})),
            )
            .await;
        assert_eq!(
            (s, body["code"].as_str()),
            (404, Some("no_route")),
            "{body}"
        );
    }
    assert_eq!(t.clock_now(), before, "the clock moved");
    #[cfg(feature = "demo")]
    assert!(t.ctx.demo.is_none());
}

/// Issue 10: `GET /api/v1/access-tokens/{name}` is answered without the router
/// (`api::read_direct`); what the router did for it still holds: a percent-encoded name is
/// decoded, `HEAD` answers, other methods 405, a query or name that does not parse 400 in the
/// JSON shape, a refused key 401 counted under the route's template (never the path), and the
/// answer's headers (`no-store`, JSON, the request id).
#[tokio::test]
async fn issue10_the_read_route_without_the_router_answers_as_the_router_did() {
    let t = spawn(Db::Sqlite).await;
    let emu = emulator().await;
    t.authorized_snowflake_token(&emu, "sf", json!({})).await;
    let key = app(&t, "reader", &["sf"]).await;

    let (s, b, h) = t
        .send(Method::GET, "/api/v1/access-tokens/s%66", Some(&key), None)
        .await;
    assert_eq!(s, 200, "{b}");
    assert!(accepts(&emu, b["access_token"].as_str().unwrap()).await);
    assert_eq!(b["token_type"], "Bearer");
    let left = b["expires_in"].as_i64().unwrap();
    assert!((60..=600).contains(&left), "{b}");
    assert!(b["expires_at"].as_str().unwrap().ends_with('Z'), "{b}");
    assert_eq!(h["cache-control"], "no-store");
    assert_eq!(h["content-type"], "application/json");
    assert_eq!(h["content-length"], b.to_string().len().to_string());
    assert_eq!(h["x-request-id"].len(), 16);

    let head = t
        .http
        .head(t.url("/api/v1/access-tokens/sf"))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(head.status(), 200);
    assert_eq!(head.headers()["cache-control"], "no-store");

    let (s, b, _) = t
        .send(Method::POST, "/api/v1/access-tokens/sf", Some(&key), None)
        .await;
    assert_eq!(
        (s, b["code"].as_str()),
        (405, Some("method_not_allowed")),
        "{b}"
    );
    for (path, what) in [
        ("/api/v1/access-tokens/sf?min_validity=soon", "min_validity"),
        ("/api/v1/access-tokens/%FF", "UTF-8"),
    ] {
        let (s, b, h) = t.send(Method::GET, path, Some(&key), None).await;
        assert_eq!(
            (s, b["code"].as_str()),
            (400, Some("invalid_request")),
            "{path}: {b}"
        );
        assert!(b["message"].as_str().unwrap().contains(what), "{path}: {b}");
        assert_eq!(h["cache-control"], "no-store");
    }
    let (s, b, _) = t
        .send(
            Method::GET,
            "/api/v1/access-tokens/sf?min_validity=86401",
            Some(&key),
            None,
        )
        .await;
    assert_eq!(
        (s, b["code"].as_str()),
        (400, Some("invalid_request")),
        "{b}"
    );

    let (s, b, _) = t
        .send(
            Method::GET,
            "/api/v1/access-tokens/sf",
            Some("tw_app_nope"),
            None,
        )
        .await;
    assert_eq!((s, b["code"].as_str()), (401, Some("unauthorized")), "{b}");
    let denied = t.ctx.denials.drain(None);
    assert_eq!(denied.len(), 1, "{denied:?}");
    assert_eq!(denied[0].0.1, "GET /api/v1/access-tokens/{name}");
}
