//! Notification channels through the API: changing, disabling and deleting them, per-app
//! channels, and what happens to deliveries that fail (retries, giving up, a 4xx, a channel
//! deleted with deliveries queued). Events come from stopping and starting apps; a background
//! pass (`TestApp::pass`) delivers them. On both databases.

use crate::support::{Db, TestApp, spawn};
use reqwest::Method;
use serde_json::{Value, json};
use tokenwarden_testkit::webhook::WebhookReceiver;

on_both_databases!(
    channels_can_be_changed_disabled_and_deleted_and_invalid_changes_are_refused,
    a_per_app_channel_hears_only_its_app,
    deliveries_give_up_after_the_last_attempt_and_a_4xx_fails_at_once,
    a_channel_deleted_with_deliveries_queued_gets_nothing_more,
);

async fn receiver() -> WebhookReceiver {
    tokio::task::spawn_blocking(|| WebhookReceiver::start().unwrap())
        .await
        .unwrap()
}

async fn channel(t: &TestApp, body: Value) -> String {
    let (s, ch) = t
        .admin(Method::POST, "/api/v1/notification-channels", Some(body))
        .await;
    assert_eq!(s, 201, "{ch}");
    ch["id"].as_str().unwrap().to_owned()
}

async fn app(t: &TestApp, name: &str) {
    let (s, a) = t
        .admin(Method::POST, "/api/v1/apps", Some(json!({"name": name})))
        .await;
    assert_eq!(s, 201, "{a}");
}

/// Stops and starts the app: two events, `app.stopped` and `app.started`.
async fn stop_and_start(t: &TestApp, name: &str) {
    for verb in ["stop", "start"] {
        let (s, a) = t
            .admin(Method::POST, &format!("/api/v1/apps/{name}/{verb}"), None)
            .await;
        assert_eq!(s, 200, "{a}");
    }
}

/// (event type, app name) of every request the receiver got.
fn kinds(rx: &WebhookReceiver) -> Vec<(String, String)> {
    rx.requests()
        .iter()
        .map(|r| {
            let body: Value = serde_json::from_slice(&r.body).unwrap();
            (
                body["type"].as_str().unwrap_or_default().to_owned(),
                body["data"]["app"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
            )
        })
        .collect()
}

async fn deliveries(t: &TestApp, ch: &str) -> Vec<Value> {
    let (s, log) = t
        .admin(
            Method::GET,
            &format!("/api/v1/notification-channels/{ch}/deliveries"),
            None,
        )
        .await;
    assert_eq!(s, 200, "{log}");
    log["items"].as_array().unwrap().clone()
}

async fn channels_can_be_changed_disabled_and_deleted_and_invalid_changes_are_refused(db: Db) {
    let t = spawn(db).await;
    app(&t, "batch").await;
    let rx = receiver().await;
    let other = receiver().await;
    let id = channel(
        &t,
        json!({"name": "ops", "kind": "webhook", "url": rx.url(), "events": ["app.stopped"]}),
    )
    .await;
    let path = format!("/api/v1/notification-channels/{id}");

    // Invalid changes are refused and change nothing.
    for (body, words) in [
        (json!({"name": ""}), "name"),
        (json!({"events": ["app.exploded"]}), "unknown event kind"),
        (json!({"url": "ftp://example.com/x"}), ""),
        (json!({"to": ["ops@example.com"]}), "only an email channel"),
        (json!({"colour": "red"}), ""),
    ] {
        let (s, err) = t.admin(Method::PATCH, &path, Some(body.clone())).await;
        assert_eq!(s, 400, "{body}: {err}");
        assert!(
            err["message"].as_str().unwrap_or_default().contains(words),
            "{body}: {err}"
        );
    }
    let (_, listed) = t
        .admin(Method::GET, "/api/v1/notification-channels", None)
        .await;
    assert_eq!(listed["items"][0]["name"], "ops");
    assert_eq!(listed["items"][0]["events"], json!(["app.stopped"]));
    assert_eq!(listed["items"][0]["url"], rx.url());

    // A valid change: another receiver, another name, every event.
    let (s, changed) = t
        .admin(
            Method::PATCH,
            &path,
            Some(json!({"name": "ops-2", "url": other.url(), "events": []})),
        )
        .await;
    assert_eq!(s, 200, "{changed}");
    assert_eq!(
        (&changed["name"], &changed["url"], &changed["events"]),
        (&json!("ops-2"), &json!(other.url()), &json!([]))
    );
    assert!(changed.get("secret").is_none(), "{changed}");
    stop_and_start(&t, "batch").await;
    t.pass().await;
    assert!(rx.requests().is_empty(), "the old url still gets events");
    // One pass delivers side by side: in any order.
    let mut got = kinds(&other);
    got.sort();
    assert_eq!(
        got,
        [
            ("app.started".to_owned(), "batch".to_owned()),
            ("app.stopped".to_owned(), "batch".to_owned())
        ]
    );

    // Disabled: receives nothing, even what was queued before it was disabled.
    stop_and_start(&t, "batch").await;
    let (s, off) = t
        .admin(Method::PATCH, &path, Some(json!({"enabled": false})))
        .await;
    assert_eq!((s, &off["enabled"]), (200, &json!(false)), "{off}");
    stop_and_start(&t, "batch").await;
    t.pass().await;
    t.clock.advance(chrono::Duration::hours(2));
    t.pass().await;
    assert_eq!(other.requests().len(), 2, "a disabled channel got events");

    // Enabled again: new events flow.
    let (s, _) = t
        .admin(Method::PATCH, &path, Some(json!({"enabled": true})))
        .await;
    assert_eq!(s, 200);
    stop_and_start(&t, "batch").await;
    t.pass().await;
    assert_eq!(other.requests().len(), 4);

    // Deleted: gone from the list, 404 after, nothing more delivered.
    let (s, _) = t.admin(Method::DELETE, &path, None).await;
    assert_eq!(s, 204);
    let (_, listed) = t
        .admin(Method::GET, "/api/v1/notification-channels", None)
        .await;
    assert_eq!(listed, json!({"items": [], "next_cursor": null}));
    for m in [Method::DELETE, Method::PATCH] {
        let (s, body) = t.admin(m.clone(), &path, Some(json!({}))).await;
        assert_eq!((s, body["code"].as_str()), (404, Some("not_found")), "{m}");
    }
    stop_and_start(&t, "batch").await;
    t.pass().await;
    assert_eq!(other.requests().len(), 4);
}

async fn a_per_app_channel_hears_only_its_app(db: Db) {
    let t = spawn(db).await;
    app(&t, "alpha").await;
    app(&t, "beta").await;
    let rx_alpha = receiver().await;
    let rx_all = receiver().await;
    channel(
        &t,
        json!({"name": "alpha-ops", "kind": "webhook", "url": rx_alpha.url(), "app": "alpha"}),
    )
    .await;
    channel(
        &t,
        json!({"name": "everyone", "kind": "webhook", "url": rx_all.url()}),
    )
    .await;
    let (s, err) = t
        .admin(
            Method::POST,
            "/api/v1/notification-channels",
            Some(json!({"name": "x", "kind": "webhook", "url": rx_all.url(), "app": "gamma"})),
        )
        .await;
    assert_eq!(s, 400, "{err}");
    stop_and_start(&t, "alpha").await;
    stop_and_start(&t, "beta").await;
    t.pass().await;
    let alpha: Vec<String> = kinds(&rx_alpha).into_iter().map(|(_, a)| a).collect();
    assert_eq!(alpha, ["alpha", "alpha"]);
    let mut all: Vec<String> = kinds(&rx_all).into_iter().map(|(_, a)| a).collect();
    all.sort();
    assert_eq!(all, ["alpha", "alpha", "beta", "beta"]);
}

async fn deliveries_give_up_after_the_last_attempt_and_a_4xx_fails_at_once(db: Db) {
    let t = spawn(db).await;
    app(&t, "batch").await;
    let down = receiver().await;
    down.set_response(503);
    let refusing = receiver().await;
    refusing.set_response(410);
    let down_id = channel(
        &t,
        json!({"name": "down", "kind": "webhook", "url": down.url(), "events": ["app.stopped"]}),
    )
    .await;
    let refusing_id = channel(
        &t,
        json!({"name": "refusing", "kind": "webhook", "url": refusing.url(), "events": ["app.stopped"]}),
    )
    .await;
    let (s, _) = t.admin(Method::POST, "/api/v1/apps/batch/stop", None).await;
    assert_eq!(s, 200);
    // Every pass two hours on (past any backoff): one attempt each, until the last one.
    let max = tokenwarden_notify::MAX_ATTEMPTS as usize;
    for _ in 0..max + 5 {
        t.pass().await;
        t.clock.advance(chrono::Duration::hours(2));
    }
    assert_eq!(down.requests().len(), max, "attempts made");
    let log = deliveries(&t, &down_id).await;
    assert_eq!(log.len(), max, "{log:#?}");
    // Newest first: the last attempt gave up; every earlier one was a retry.
    assert_eq!(log[0]["outcome"], "failed", "{log:#?}");
    assert!(log[1..].iter().all(|d| d["outcome"] == "retry"), "{log:#?}");
    assert!(log.iter().all(|d| d["status_code"] == 503), "{log:#?}");
    // A 4xx other than 408/429 is final at the first attempt.
    assert_eq!(refusing.requests().len(), 1);
    let log = deliveries(&t, &refusing_id).await;
    assert_eq!(log.len(), 1, "{log:#?}");
    assert_eq!(
        (&log[0]["outcome"], &log[0]["status_code"]),
        (&json!("failed"), &json!(410)),
        "{log:#?}"
    );
}

async fn a_channel_deleted_with_deliveries_queued_gets_nothing_more(db: Db) {
    let t = spawn(db).await;
    app(&t, "batch").await;
    let rx = receiver().await;
    rx.set_response(503);
    let id = channel(
        &t,
        json!({"name": "ops", "kind": "webhook", "url": rx.url()}),
    )
    .await;
    stop_and_start(&t, "batch").await;
    t.pass().await;
    assert_eq!(rx.requests().len(), 2, "first attempts");
    // Two retries are queued; the channel goes; its receiver comes back.
    let (s, _) = t
        .admin(
            Method::DELETE,
            &format!("/api/v1/notification-channels/{id}"),
            None,
        )
        .await;
    assert_eq!(s, 204);
    rx.set_response(204);
    for _ in 0..4 {
        t.clock.advance(chrono::Duration::hours(2));
        t.pass().await;
    }
    assert_eq!(rx.requests().len(), 2, "a deleted channel got a retry");
    // New events reach no one either, and a new channel hears only what comes after it.
    let rx2 = receiver().await;
    channel(
        &t,
        json!({"name": "ops2", "kind": "webhook", "url": rx2.url()}),
    )
    .await;
    stop_and_start(&t, "batch").await;
    t.pass().await;
    assert_eq!(rx.requests().len(), 2);
    assert_eq!(rx2.requests().len(), 2);
}
