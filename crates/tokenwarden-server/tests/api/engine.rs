//! The refresh engine, reminders, and apps that stop and resume by themselves, driven by the
//! injected clock: 90 days pass in a test. Against the Snowflake emulator; webhooks go to a
//! local receiver, email to a local SMTP sink.

use crate::support::{Db, TestApp, spawn};
use reqwest::Method;
use serde_json::json;
use snowflake_emulator::{Emulator, EmulatorConfig, RunningEmulator};
use tokenwarden_testkit::webhook::WebhookReceiver;

on_both_databases!(
    ninety_days_reminders_once_each_then_expiry_stops_the_app_and_reauthorization_resumes_it,
    a_client_secret_expiry_reminds_once_each_stops_the_apps_and_a_new_secret_resumes_them,
    a_client_secret_expiry_is_found_by_the_schedule_not_by_a_scan,
    a_revoked_grant_is_found_by_the_daily_check_and_the_apps_stop_and_resume,
    tokens_in_use_are_refreshed_ahead_once_per_lifetime_and_reads_never_wait,
    r38_a_dead_webhook_receiver_never_blocks_serving_and_deliveries_retry_until_it_is_back,
    reminders_by_email_reach_an_smtp_sink,
    r16_with_the_database_down_cached_valid_tokens_keep_being_served,
    r8_concurrent_reads_within_one_instance_cause_one_refresh,
    an_app_asking_for_more_validity_than_the_provider_gives_cannot_make_every_read_a_refresh,
    issue9_bug1_short_lived_tokens_are_served_and_refreshed_once_per_half_lifetime,
    issue9_bug1_min_validity_out_of_range_is_a_400,
    issue10_item2_a_pass_with_nothing_due_reads_no_token_rows,
    issue10_item3_due_refreshes_of_one_pass_run_concurrently_each_exactly_once,
);

struct World {
    t: TestApp,
    emu: RunningEmulator,
    token_id: String,
    app_key: String,
    start: chrono::DateTime<chrono::Utc>,
}

impl World {
    /// Moves both clocks (ours and Snowflake's) forward together.
    fn advance(&self, by: chrono::Duration) {
        self.t.clock.advance(by);
        self.emu
            .emulator
            .set_clock_offset(self.t.clock_now() - self.start);
    }

    async fn pass(&self) -> tokenwarden_server::ops::engine::PassReport {
        self.t.pass().await
    }

    async fn token(&self) -> serde_json::Value {
        self.t
            .admin(
                Method::GET,
                &format!("/api/v1/tokens/{}", self.token_id),
                None,
            )
            .await
            .1
    }

    async fn app(&self) -> serde_json::Value {
        self.t
            .admin(Method::GET, "/api/v1/apps/sales-invoice", None)
            .await
            .1
    }

    async fn read(&self) -> (u16, serde_json::Value) {
        let (s, b, _) = self
            .t
            .send(
                Method::GET,
                "/api/v1/access-tokens/snowflake-sales",
                Some(&self.app_key),
                None,
            )
            .await;
        (s, b)
    }

    async fn authorize(&self) {
        self.t.sign_in(&self.token_id).await;
    }
}

/// An authorized Snowflake token used by the app sales-invoice, with the given refresh-token
/// validity.
async fn world(db: Db, validity_secs: u64) -> World {
    world_with(db, validity_secs, EmulatorConfig::default_for_tests()).await
}

/// [`world`] on an emulator configured by `config` (e.g. a short access-token lifetime).
async fn world_with(db: Db, validity_secs: u64, config: EmulatorConfig) -> World {
    let t = spawn(db).await;
    let emu = Emulator::start(config, "127.0.0.1:0").await.unwrap();
    let (s, app) = t
        .admin(
            Method::POST,
            "/api/v1/apps",
            Some(json!({"name": "sales-invoice", "tokens": ["snowflake-sales"]})),
        )
        .await;
    assert_eq!(s, 201);
    let token_id = t
        .authorized_snowflake_token(
            &emu,
            "snowflake-sales",
            json!({"settings": {"account": emu.base_url(), "role": "ANALYST",
                                "refresh_token_validity": validity_secs.to_string()}}),
        )
        .await;
    let start = t.clock_now();
    World {
        t,
        emu,
        token_id,
        app_key: app["api_key"].as_str().unwrap().to_owned(),
        start,
    }
}

/// A webhook channel to a local receiver; returns (receiver, signing secret).
async fn webhook(t: &TestApp, extra: serde_json::Value) -> (WebhookReceiver, String) {
    let rx = tokio::task::spawn_blocking(|| WebhookReceiver::start().unwrap())
        .await
        .unwrap();
    let mut body = json!({"name": "ops", "kind": "webhook", "url": rx.url()});
    if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
        b.extend(e.clone());
    }
    let (s, ch) = t
        .admin(Method::POST, "/api/v1/notification-channels", Some(body))
        .await;
    assert_eq!(s, 201, "{ch}");
    (rx, ch["secret"].as_str().unwrap().to_owned())
}

/// Event kinds the receiver got, in order, after checking every signature (Standard Webhooks;
/// each checked as of its own timestamp, since the test's clock has moved on since).
fn received(rx: &WebhookReceiver, secret: &str) -> Vec<(String, serde_json::Value)> {
    let secret = secrecy::SecretString::from(secret.to_owned());
    rx.requests()
        .iter()
        .map(|r| {
            let (id, ts, sig) = (
                r.header("webhook-id").unwrap(),
                r.header("webhook-timestamp").unwrap(),
                r.header("webhook-signature").unwrap(),
            );
            tokenwarden_notify::verify(&secret, (id, ts, sig), &r.body, ts.parse().unwrap(), 600)
                .unwrap_or_else(|e| panic!("bad signature on {id}: {e}"));
            let body: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
            (body["type"].as_str().unwrap().to_owned(), body)
        })
        .collect()
}

async fn ninety_days_reminders_once_each_then_expiry_stops_the_app_and_reauthorization_resumes_it(
    db: Db,
) {
    let w = world(db, 7_776_000).await; // Snowflake's default: 90 days
    let (rx, secret) = webhook(&w.t, json!({})).await;
    let (s, view) =
        w.t.admin(Method::GET, &format!("/api/v1/tokens/{}", w.token_id), None)
            .await;
    assert_eq!((s, view["status"].as_str()), (200, Some("healthy")));

    // Walk 91 days in 6-hour steps, a background pass each step (restarts don't matter: all
    // bookkeeping is in the database).
    let mut expiring_at = Vec::new();
    for step in 0..(91 * 4) {
        w.advance(chrono::Duration::hours(6));
        let report = w.pass().await;
        if report.reminders_sent > 0 {
            expiring_at.push(step);
        }
        if step == 70 * 4 {
            // Nothing yet: 20 days before expiry the token is healthy.
            assert_eq!(w.token().await["status"], "healthy");
        }
        if step == 78 * 4 {
            assert_eq!(
                w.token().await["status"],
                "expiring_soon",
                "inside the first lead time (14 d)"
            );
        }
    }
    // R39: one reminder per lead time (14, 7, 3, 1 days), each once.
    let events = received(&rx, &secret);
    let kinds: Vec<&str> = events.iter().map(|(k, _)| k.as_str()).collect();
    let expiring: Vec<&serde_json::Value> = events
        .iter()
        .filter(|(k, _)| k == "token.expiring")
        .map(|(_, b)| b)
        .collect();
    let leads: Vec<&str> = expiring
        .iter()
        .map(|b| b["data"]["lead"].as_str().unwrap())
        .collect();
    assert_eq!(leads, ["14d", "7d", "3d", "1d"], "{kinds:?}");
    assert!(
        expiring[0]["data"]["summary"]
            .as_str()
            .unwrap()
            .contains("sales-invoice"),
        "{}",
        expiring[0]
    );
    assert_eq!(
        kinds.iter().filter(|k| **k == "token.expired").count(),
        1,
        "{kinds:?}"
    );
    assert_eq!(
        kinds.iter().filter(|k| **k == "app.stopped").count(),
        1,
        "{kinds:?}"
    );
    assert_eq!(expiring_at.len(), 4);

    // Expired: the app stopped with the reason; reads say why; starting it is refused.
    assert_eq!(w.token().await["status"], "expired");
    let app = w.app().await;
    assert_eq!(app["state"], "stopped");
    assert_eq!(app["stop_reason"], "waiting for token snowflake-sales");
    let (s, body) = w.read().await;
    assert_eq!(
        (s, body["code"].as_str()),
        (409, Some("token_needs_reauthorization")),
        "{body}"
    );
    assert!(
        body["message"].as_str().unwrap().contains("expired"),
        "{body}"
    );
    let (s, body) =
        w.t.admin(Method::POST, "/api/v1/apps/sales-invoice/start", None)
            .await;
    assert_eq!(s, 409, "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("snowflake-sales"),
        "{body}"
    );
    // More passes: nothing is sent twice.
    for _ in 0..8 {
        w.advance(chrono::Duration::hours(6));
        w.pass().await;
    }
    assert_eq!(received(&rx, &secret).len(), events.len());

    // Re-authorize (the seed's Update): the app starts again by itself, everyone is told, and a
    // new reminder schedule starts for the new expiry.
    w.authorize().await;
    w.pass().await;
    assert_eq!(w.token().await["status"], "healthy");
    let app = w.app().await;
    assert_eq!(
        (app["state"].as_str(), app["stop_reason"].as_str()),
        (Some("running"), None)
    );
    assert_eq!(w.read().await.0, 200);
    let after: Vec<String> = received(&rx, &secret)
        .into_iter()
        .map(|(k, _)| k)
        .skip(events.len())
        .collect();
    for k in ["token.authorized", "token.restored", "app.started"] {
        assert!(after.iter().any(|a| a == k), "{k} missing from {after:?}");
    }
    // The delivery log has every delivery.
    let (_, channels) =
        w.t.admin(Method::GET, "/api/v1/notification-channels", None)
            .await;
    let ch = channels["items"][0]["id"].as_str().unwrap();
    let (_, log) =
        w.t.admin(
            Method::GET,
            &format!("/api/v1/notification-channels/{ch}/deliveries"),
            None,
        )
        .await;
    assert_eq!(
        log["items"].as_array().unwrap().len(),
        events.len() + after.len()
    );
    assert!(
        log["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|d| d["outcome"] == "delivered"),
        "{log}"
    );
}

/// Issue 12: a client secret's expiry (Azure secrets expire) on any token, here an
/// authorization-code one: reminders at 14/7/3/1 days (once each, through the channels),
/// "expiring soon", then at the expiry the token expires and its apps stop; storing the new
/// secret with its new expiry brings the token back and the apps resume.
async fn a_client_secret_expiry_reminds_once_each_stops_the_apps_and_a_new_secret_resumes_them(
    db: Db,
) {
    let w = world(db, 7_776_000).await; // the refresh token lives 90 days: not what expires
    let (rx, secret) = webhook(&w.t, json!({})).await;
    let expires = w.start + chrono::Duration::days(20);
    let token_url = format!("/api/v1/tokens/{}", w.token_id);
    let (s, view) =
        w.t.admin(
            Method::PATCH,
            &token_url,
            Some(json!({"client_secret_expires_at": tokenwarden_domain::Rfc3339(expires).to_string()})),
        )
        .await;
    assert_eq!(s, 200, "{view}");
    assert_eq!(view["status"], "healthy");
    assert_eq!(
        view["client_secret_expires_at"],
        tokenwarden_domain::Rfc3339(expires).to_string()
    );
    // A bad date is a clear error and changes nothing.
    let (s, body) =
        w.t.admin(
            Method::PATCH,
            &token_url,
            Some(json!({"client_secret_expires_at": "next tuesday"})),
        )
        .await;
    assert!((400..500).contains(&s), "{body}");

    for step in 0..(21 * 4) {
        w.advance(chrono::Duration::hours(6));
        w.pass().await;
        if step == 4 * 4 {
            assert_eq!(w.token().await["status"], "healthy", "16 days before");
        }
        if step == 8 * 4 {
            let v = w.token().await;
            assert_eq!(v["status"], "expiring_soon", "{v}");
            assert!(
                v["status_reason"]
                    .as_str()
                    .unwrap()
                    .contains("client secret"),
                "{v}"
            );
        }
    }
    let events = received(&rx, &secret);
    let kinds: Vec<&str> = events.iter().map(|(k, _)| k.as_str()).collect();
    let expiring: Vec<&serde_json::Value> = events
        .iter()
        .filter(|(k, _)| k == "token.expiring")
        .map(|(_, b)| b)
        .collect();
    let leads: Vec<&str> = expiring
        .iter()
        .map(|b| b["data"]["lead"].as_str().unwrap())
        .collect();
    assert_eq!(leads, ["14d", "7d", "3d", "1d"], "{kinds:?}");
    assert!(
        expiring
            .iter()
            .all(|b| b["data"]["expiring"] == "client_secret")
    );
    let summary = expiring[0]["data"]["summary"].as_str().unwrap();
    assert!(
        summary.contains("client secret") && summary.contains("sales-invoice"),
        "{summary}"
    );
    assert_eq!(
        kinds.iter().filter(|k| **k == "token.expired").count(),
        1,
        "{kinds:?}"
    );
    assert_eq!(
        kinds.iter().filter(|k| **k == "app.stopped").count(),
        1,
        "{kinds:?}"
    );

    // Expired with its secret: the app stopped, reads say why.
    let v = w.token().await;
    assert_eq!(v["status"], "expired", "{v}");
    assert!(
        v["status_reason"]
            .as_str()
            .unwrap()
            .contains("client secret expired"),
        "{v}"
    );
    assert_eq!(w.app().await["state"], "stopped");
    let (s, body) = w.read().await;
    assert_eq!(s, 409, "{body}");
    assert!(
        body["message"].as_str().unwrap().contains("client secret"),
        "{body}"
    );

    // More passes send nothing more.
    for _ in 0..8 {
        w.advance(chrono::Duration::hours(6));
        w.pass().await;
    }
    assert_eq!(received(&rx, &secret).len(), events.len());

    // The new secret (Snowflake's, rotated) with its new expiry: usable at once, the app
    // resumes, reads work (a refresh with the new secret).
    let creds = w
        .emu
        .emulator
        .client_credentials("TW_SNOWFLAKE_SALES")
        .unwrap();
    let (s, view) =
        w.t.admin(
            Method::PATCH,
            &token_url,
            Some(json!({
                "client_secret": creds.client_secret,
                "client_secret_expires_at": tokenwarden_domain::Rfc3339(w.t.clock_now() + chrono::Duration::days(365)).to_string()
            })),
        )
        .await;
    assert_eq!(s, 200, "{view}");
    assert_eq!(view["status"], "healthy", "{view}");
    let app = w.app().await;
    assert_eq!(
        (app["state"].as_str(), app["stop_reason"].as_str()),
        (Some("running"), None)
    );
    let (s, body) = w.read().await;
    assert_eq!(s, 200, "{body}");
    w.pass().await;
    let after: Vec<String> = received(&rx, &secret)
        .into_iter()
        .map(|(k, _)| k)
        .skip(events.len())
        .collect();
    for k in ["token.restored", "app.started"] {
        assert!(after.iter().any(|a| a == k), "{k} missing from {after:?}");
    }
    // Clearing the expiry (null) leaves the token as it is.
    let (s, view) =
        w.t.admin(
            Method::PATCH,
            &token_url,
            Some(json!({"client_secret_expires_at": null})),
        )
        .await;
    assert_eq!(
        (s, view["status"].as_str()),
        (200, Some("healthy")),
        "{view}"
    );
    assert!(view["client_secret_expires_at"].is_null());
}

/// The pass reads a token only when something is due: a client secret's first reminder is
/// part of the token's next-check time (the indexed `next_check_at`), so the pass finds it
/// without looking at the token before.
async fn a_client_secret_expiry_is_found_by_the_schedule_not_by_a_scan(db: Db) {
    let w = world(db, 7_776_000).await;
    let expires = w.start + chrono::Duration::days(14) + chrono::Duration::hours(2);
    let (s, _) =
        w.t.admin(
            Method::PATCH,
            &format!("/api/v1/tokens/{}", w.token_id),
            Some(json!({"client_secret_expires_at": tokenwarden_domain::Rfc3339(expires).to_string()})),
        )
        .await;
    assert_eq!(s, 200);
    assert_eq!(w.pass().await.examined, 1, "the edit made it due once");
    w.advance(chrono::Duration::hours(1));
    let quiet = w.pass().await;
    assert_eq!((quiet.examined, quiet.reminders_sent), (0, 0), "{quiet:?}");
    w.advance(chrono::Duration::hours(1) + chrono::Duration::minutes(1));
    let due = w.pass().await;
    assert_eq!((due.examined, due.reminders_sent), (1, 1), "{due:?}");
    assert_eq!(w.token().await["status"], "expiring_soon");
}

async fn a_revoked_grant_is_found_by_the_daily_check_and_the_apps_stop_and_resume(db: Db) {
    let w = world(db, 7_776_000).await;
    let filter = [
        "token.needs_reauthorization",
        "app.stopped",
        "app.started",
        "token.restored",
    ];
    let (rx, secret) = webhook(&w.t, json!({ "events": filter })).await;
    // A second channel without a filter gets everything: the events the first one must not get.
    let (all_rx, all_secret) = webhook(&w.t, json!({"name": "everything"})).await;
    // A second app stopped by an admin stays stopped through all of this.
    let (s, _) =
        w.t.admin(
            Method::POST,
            "/api/v1/apps",
            Some(json!({"name": "batch", "tokens": ["snowflake-sales"]})),
        )
        .await;
    assert_eq!(s, 201);
    assert_eq!(
        w.t.admin(Method::POST, "/api/v1/apps/batch/stop", None)
            .await
            .0,
        200
    );

    let integration = w.emu.emulator.stats().integrations[0].name.clone();
    w.emu
        .emulator
        .revoke_delegated_authorizations("ALICE", &integration);
    // Nobody reads the token; the daily health refresh finds the revoked grant.
    w.advance(chrono::Duration::hours(25));
    w.pass().await;
    let tok = w.token().await;
    assert_eq!(tok["status"], "needs_reauthorization", "{tok}");
    assert_eq!(tok["client_secret_set"], true, "credentials are kept");
    assert_eq!(
        w.app().await["stop_reason"],
        "waiting for token snowflake-sales"
    );
    let (_, batch) = w.t.admin(Method::GET, "/api/v1/apps/batch", None).await;
    assert_eq!(batch["stop_reason"], "stopped by an admin");
    let kinds: Vec<String> = received(&rx, &secret).into_iter().map(|(k, _)| k).collect();
    assert!(
        kinds.contains(&"token.needs_reauthorization".to_string()),
        "{kinds:?}"
    );
    assert_eq!(
        kinds.iter().filter(|k| *k == "app.stopped").count(),
        2,
        "admin stop + token stop: {kinds:?}"
    );

    w.authorize().await;
    assert_eq!(w.app().await["state"], "running");
    let (_, batch) = w.t.admin(Method::GET, "/api/v1/apps/batch", None).await;
    assert_eq!(
        batch["state"], "stopped",
        "an app stopped by hand stays stopped"
    );
    let (s, body) = w.read().await;
    assert_eq!(s, 200, "{body}");
    w.pass().await;
    let kinds: Vec<String> = received(&rx, &secret).into_iter().map(|(k, _)| k).collect();
    assert!(
        kinds.contains(&"token.restored".to_string()) && kinds.contains(&"app.started".to_string()),
        "{kinds:?}"
    );
    // The filter filtered: events outside it happened (the unfiltered channel got them) and
    // never reached the filtered channel.
    let everything: Vec<String> = received(&all_rx, &all_secret)
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    let outside: Vec<&String> = everything
        .iter()
        .filter(|k| !filter.contains(&k.as_str()))
        .collect();
    assert!(
        outside.iter().any(|k| *k == "token.authorized"),
        "{everything:?}"
    );
    assert!(
        kinds.iter().all(|k| filter.contains(&k.as_str())),
        "an event outside the channel's filter was delivered: {kinds:?}"
    );
    assert_eq!(
        kinds.len(),
        everything.len() - outside.len(),
        "{kinds:?} vs {everything:?}"
    );
}

async fn tokens_in_use_are_refreshed_ahead_once_per_lifetime_and_reads_never_wait(db: Db) {
    let w = world(db, 7_776_000).await;
    let mut last = String::new();
    // 30 access-token lifetimes (10 minutes each), read every minute, a pass every minute.
    for minute in 0..300 {
        let calls = w.emu.emulator.stats().counters.token_requests;
        let (s, body) = w.read().await;
        assert_eq!(s, 200, "minute {minute}: {body}");
        // No background pass runs by itself here: a provider call during the read would be
        // the read refreshing on the spot, i.e. waiting for the provider.
        assert_eq!(
            w.emu.emulator.stats().counters.token_requests,
            calls,
            "minute {minute}: the read waited on a refresh"
        );
        assert!(
            body["expires_in"].as_i64().unwrap() >= 60,
            "min_validity honoured: {body}"
        );
        last = body["access_token"].as_str().unwrap().to_owned();
        w.advance(chrono::Duration::minutes(1));
        w.pass().await;
    }
    assert!(!last.is_empty());
    let refreshes = w.emu.emulator.stats().counters.refresh_token_grants_ok;
    // Refreshed ahead at 3/4 of each 10-minute lifetime: about one refresh per 7-8 minutes.
    assert!(
        (35..=45).contains(&refreshes),
        "{refreshes} refreshes in 300 minutes"
    );
    // Every refresh the provider granted was stored (and audited).
    let audited =
        w.t.ctx
            .store
            .list_audit(&tokenwarden_store::AuditFilter {
                action: Some("token.refresh".into()),
                limit: 1000,
                ..Default::default()
            })
            .await
            .unwrap()
            .len();
    assert_eq!(audited as u64, refreshes);
    // Reads were counted in memory and flushed by the passes, not written per read.
    let health =
        w.t.ctx
            .store
            .get_token_health(tokenwarden_domain::TokenId::parse(&w.token_id).unwrap())
            .await
            .unwrap()
            .unwrap();
    assert_eq!(health.reads_total, 300);
    let read_events =
        w.t.ctx
            .store
            .list_audit(&tokenwarden_store::AuditFilter {
                action: Some("token.read".into()),
                limit: 1000,
                ..Default::default()
            })
            .await
            .unwrap();
    assert!(read_events.len() <= 300 && !read_events.is_empty());
}

async fn r38_a_dead_webhook_receiver_never_blocks_serving_and_deliveries_retry_until_it_is_back(
    db: Db,
) {
    let w = world(db, 7_776_000).await;
    let (rx, secret) = webhook(&w.t, json!({})).await;
    rx.set_response(503);
    let (s, app) =
        w.t.admin(Method::POST, "/api/v1/apps/sales-invoice/stop", None)
            .await;
    assert_eq!((s, app["state"].as_str()), (200, Some("stopped")));
    w.pass().await;
    assert_eq!(rx.requests().len(), 1, "first attempt");
    // Serving is unaffected while deliveries fail.
    assert_eq!(
        w.t.admin(Method::POST, "/api/v1/apps/sales-invoice/start", None)
            .await
            .0,
        200
    );
    assert_eq!(w.read().await.0, 200);
    // Backoff: an immediate pass does not retry; after the delay it does.
    w.pass().await;
    let after_immediate = rx.requests().len();
    w.advance(chrono::Duration::hours(2));
    w.pass().await;
    assert!(
        rx.requests().len() > after_immediate,
        "retried after the backoff"
    );
    rx.set_response(204);
    for _ in 0..5 {
        w.advance(chrono::Duration::hours(2));
        w.pass().await;
    }
    let (_, channels) =
        w.t.admin(Method::GET, "/api/v1/notification-channels", None)
            .await;
    let ch = channels["items"][0]["id"].as_str().unwrap();
    let (_, log) =
        w.t.admin(
            Method::GET,
            &format!("/api/v1/notification-channels/{ch}/deliveries"),
            None,
        )
        .await;
    let outcomes: Vec<&str> = log["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["outcome"].as_str().unwrap())
        .collect();
    assert!(
        outcomes.contains(&"retry") && outcomes.contains(&"delivered"),
        "{outcomes:?}"
    );
    let kinds: Vec<String> = received(&rx, &secret).into_iter().map(|(k, _)| k).collect();
    assert!(
        kinds.contains(&"app.stopped".to_string()) && kinds.contains(&"app.started".to_string()),
        "{kinds:?}"
    );
    // Each event is delivered successfully once even though it was attempted several times.
    let delivered: Vec<&str> = log["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["outcome"] == "delivered")
        .map(|d| d["event_id"].as_str().unwrap())
        .collect();
    let mut unique = delivered.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), delivered.len());
    // The test-send button reports what the receiver said.
    let (s, test) =
        w.t.admin(
            Method::POST,
            &format!("/api/v1/notification-channels/{ch}/test"),
            None,
        )
        .await;
    assert_eq!((s, test["ok"].as_bool()), (200, Some(true)), "{test}");
}

async fn reminders_by_email_reach_an_smtp_sink(db: Db) {
    let w = world(db, 86_400 * 3).await; // a 3-day refresh token: the 3d and 1d reminders apply
    let sink =
        tokio::task::spawn_blocking(|| tokenwarden_testkit::smtp::SmtpSink::start().unwrap())
            .await
            .unwrap();
    let mailer = tokenwarden_notify::Mailer::new(tokenwarden_notify::SmtpSettings {
        host: "127.0.0.1".into(),
        port: sink.port,
        security: tokenwarden_notify::SmtpSecurity::None,
        username: None,
        password: None,
        from: "tokenwarden@example.com".into(),
        timeout: std::time::Duration::from_secs(5),
    })
    .unwrap();
    w.t.ctx
        .notifier
        .mailer
        .set(Some(std::sync::Arc::new(mailer)));
    let (s, ch) = w.t.admin(Method::POST, "/api/v1/notification-channels", Some(json!({"name": "admins", "kind": "email", "to": ["ops@example.com"], "events": ["token.expiring"]}))).await;
    assert_eq!(s, 201, "{ch}");
    assert!(ch.get("secret").is_none());
    for _ in 0..(3 * 24) {
        w.advance(chrono::Duration::hours(1));
        w.pass().await;
    }
    let mails =
        tokio::task::spawn_blocking(move || sink.wait_for(2, std::time::Duration::from_secs(60)))
            .await
            .unwrap();
    assert_eq!(mails.len(), 2, "3d (at once) and 1d reminders");
    assert!(mails.iter().all(|m| m.to == ["ops@example.com"]));
    let subject = mails[0].subject().unwrap();
    assert!(subject.contains("snowflake-sales"), "{subject}");
}

async fn r16_with_the_database_down_cached_valid_tokens_keep_being_served(db: Db) {
    let w = world(db, 7_776_000).await;
    let (s, first) = w.read().await;
    assert_eq!(s, 200);
    w.t.ctx.store.close().await;
    // Fresh in memory: answered without the database.
    let (s, again) = w.read().await;
    assert_eq!((s, &again["access_token"]), (200, &first["access_token"]));
    // Later, still valid: served from memory although the database cannot confirm it.
    w.advance(chrono::Duration::minutes(3));
    let (s, later) = w.read().await;
    assert_eq!(s, 200, "{later}");
    assert!(later["expires_in"].as_i64().unwrap() >= 60);
    // Nothing that needs the database pretends to work, and readiness says so.
    let (s, body) = w.t.admin(Method::GET, "/api/v1/apps", None).await;
    assert_eq!(
        (s, body["code"].as_str()),
        (503, Some("unavailable")),
        "{body}"
    );
    let (s, _, _) = w.t.send(Method::GET, "/readyz", None, None).await;
    assert_eq!(s, 503);
    // Once the cached token would expire within min_validity, reads stop: never past expiry.
    w.advance(chrono::Duration::minutes(6));
    let (s, _) = w.read().await;
    assert_eq!(s, 503);
    // A pass with the database down does nothing and does not panic.
    assert_eq!(
        w.pass().await,
        tokenwarden_server::ops::engine::PassReport::default()
    );
}

async fn r8_concurrent_reads_within_one_instance_cause_one_refresh(db: Db) {
    let w = world(db, 7_776_000).await;
    let before = w.emu.emulator.stats().counters.refresh_token_grants_ok;
    w.advance(chrono::Duration::seconds(601));
    let mut tasks = Vec::new();
    for _ in 0..20 {
        let http = w.t.http.clone();
        let url = w.t.url("/api/v1/access-tokens/snowflake-sales");
        let key = w.app_key.clone();
        tasks.push(tokio::spawn(async move {
            let res = http.get(url).bearer_auth(key).send().await.unwrap();
            let status = res.status().as_u16();
            let body: serde_json::Value = res.json().await.unwrap();
            (
                status,
                body["access_token"].as_str().unwrap_or_default().to_owned(),
            )
        }));
    }
    let mut tokens = Vec::new();
    for t in tasks {
        let (status, token) = t.await.unwrap();
        assert_eq!(status, 200);
        tokens.push(token);
    }
    tokens.sort();
    tokens.dedup();
    assert_eq!(tokens.len(), 1, "every caller gets the one new token");
    assert_eq!(
        w.emu.emulator.stats().counters.refresh_token_grants_ok,
        before + 1
    );
}

async fn an_app_asking_for_more_validity_than_the_provider_gives_cannot_make_every_read_a_refresh(
    db: Db,
) {
    let w = world(db, 7_776_000).await;
    let before = w.emu.emulator.stats().counters.token_requests;
    // Snowflake's tokens live 10 minutes; an hour is asked for, ten times: the freshest token
    // is served with its true expiry (issue 9, bug 1), and the provider is not called again.
    for _ in 0..10 {
        let (s, body, _) =
            w.t.send(
                Method::GET,
                "/api/v1/access-tokens/snowflake-sales?min_validity=3600",
                Some(&w.app_key),
                None,
            )
            .await;
        assert_eq!(s, 200, "{body}");
        let left = body["expires_in"].as_i64().unwrap();
        assert!((1..=600).contains(&left), "{body}");
    }
    let calls = w.emu.emulator.stats().counters.token_requests - before;
    assert!(calls <= 1, "{calls} provider calls for 10 reads");
    // Reads asking for what the provider gives still work.
    assert_eq!(w.read().await.0, 200);
}

/// Issue 9, bug 1: with access tokens living 90 s (shorter than twice the default
/// `min_validity` of 60 s), reads answered 503 "less validity than asked" for part of every
/// lifetime. A healthy provider never causes a 503: every read over ten minutes gets a valid
/// token with its true `expires_in`, the token is refreshed about once per half-lifetime (not
/// on every read), and a larger `min_validity` gets the freshest token too.
async fn issue9_bug1_short_lived_tokens_are_served_and_refreshed_once_per_half_lifetime(db: Db) {
    let mut config = EmulatorConfig::default_for_tests();
    config.access_token_ttl = std::time::Duration::from_secs(90);
    let w = world_with(db, 7_776_000, config).await;
    let grants = || w.emu.emulator.stats().counters.refresh_token_grants_ok;
    let before = grants();
    let mut tokens = std::collections::BTreeSet::new();
    for step in 0..120 {
        for query in ["", "?min_validity=60", "?min_validity=3600"] {
            let (s, body, _) =
                w.t.send(
                    Method::GET,
                    &format!("/api/v1/access-tokens/snowflake-sales{query}"),
                    Some(&w.app_key),
                    None,
                )
                .await;
            assert_eq!(s, 200, "step {step}{query}: {body}");
            let left = body["expires_in"].as_i64().unwrap();
            assert!((1..=90).contains(&left), "step {step}{query}: {body}");
            if query.is_empty() {
                // Never less than half the provider's lifetime is left.
                assert!(left >= 45, "step {step}: {body}");
            }
            tokens.insert(body["access_token"].as_str().unwrap().to_owned());
        }
        w.advance(chrono::Duration::seconds(5));
    }
    // 600 s at one refresh per 45 s half-lifetime: about 13; never one per read (360 reads).
    let refreshes = grants() - before;
    assert!((10..=16).contains(&refreshes), "{refreshes} refreshes");
    assert_eq!(tokens.len() as u64, refreshes + 1);
    // The background pass keeps it fresh too, without refreshing twice per half-lifetime.
    let before = grants();
    for _ in 0..18 {
        w.pass().await;
        w.advance(chrono::Duration::seconds(5));
    }
    assert!(grants() - before <= 3, "{} refreshes", grants() - before);
}

/// Issue 9, bug 1: `min_validity` outside 0..=86400 is a bad request (400, the JSON error
/// shape), not a 503; nothing is refreshed.
async fn issue9_bug1_min_validity_out_of_range_is_a_400(db: Db) {
    let w = world(db, 7_776_000).await;
    let before = w.emu.emulator.stats().counters.token_requests;
    for q in ["86401", "-1", "99999999999"] {
        let (s, body, _) =
            w.t.send(
                Method::GET,
                &format!("/api/v1/access-tokens/snowflake-sales?min_validity={q}"),
                Some(&w.app_key),
                None,
            )
            .await;
        assert_eq!(
            (s, body["code"].as_str()),
            (400, Some("invalid_request")),
            "{q}: {body}"
        );
        assert!(
            body["message"].as_str().unwrap().contains("min_validity"),
            "{body}"
        );
    }
    for q in ["0", "86400"] {
        let (s, body, _) =
            w.t.send(
                Method::GET,
                &format!("/api/v1/access-tokens/snowflake-sales?min_validity={q}"),
                Some(&w.app_key),
                None,
            )
            .await;
        assert_eq!(s, 200, "{q}: {body}");
    }
    assert!(w.emu.emulator.stats().counters.token_requests - before <= 1);
}

/// `n` authorized Snowflake tokens (each with its own integration) on one emulator.
async fn authorized_tokens(t: &TestApp, emu: &RunningEmulator, n: usize) -> Vec<String> {
    let mut ids = Vec::with_capacity(n);
    for i in 0..n {
        ids.push(
            t.authorized_snowflake_token(emu, &format!("sf-{i}"), json!({}))
                .await,
        );
    }
    ids
}

/// Issue 10, item 2: the background pass reads only the tokens that are due. With N tokens and
/// nothing due it reads no token row at all; the daily checks come due together a day later,
/// each token is refreshed once and then left alone (its next check is stored with the refresh).
async fn issue10_item2_a_pass_with_nothing_due_reads_no_token_rows(db: Db) {
    const N: usize = 20;
    let t = spawn(db).await;
    let emu = Emulator::start(EmulatorConfig::default_for_tests(), "127.0.0.1:0")
        .await
        .unwrap();
    authorized_tokens(&t, &emu, N).await;
    // Just authorized: looked at once, nothing to do.
    let first = t.pass().await;
    assert_eq!((first.examined, first.refreshed), (N, 0), "{first:?}");
    for _ in 0..3 {
        let idle = t.pass().await;
        assert_eq!(idle.examined, 0, "nothing due, no token row read: {idle:?}");
    }
    t.clock.advance(chrono::Duration::hours(23));
    assert_eq!(
        t.pass().await.examined,
        0,
        "an hour before the daily checks"
    );
    let grants = emu.emulator.stats().counters.refresh_token_grants_ok;
    t.clock.advance(chrono::Duration::hours(2));
    let daily = t.pass().await;
    assert_eq!((daily.examined, daily.refreshed), (N, N), "{daily:?}");
    assert_eq!(
        emu.emulator.stats().counters.refresh_token_grants_ok - grants,
        N as u64
    );
    // Each refresh stored the token's next check in its own transaction: nothing is due
    // again, not even a second look at the rows just written.
    let after = t.pass().await;
    assert_eq!((after.examined, after.refreshed), (0, 0), "{after:?}");
    assert_eq!(t.pass().await.examined, 0);
}

/// Issue 10, item 3: the refreshes due in one pass run concurrently, at most
/// `refresh_concurrency` at once (observed at the provider), each token refreshed exactly once.
/// 200 tokens at 100 ms a refresh would take 20 s one at a time.
async fn issue10_item3_due_refreshes_of_one_pass_run_concurrently_each_exactly_once(db: Db) {
    const N: usize = 200;
    let t = spawn(db).await;
    let emu = Emulator::start(EmulatorConfig::default_for_tests(), "127.0.0.1:0")
        .await
        .unwrap();
    let ids = authorized_tokens(&t, &emu, N).await;
    assert_eq!(t.pass().await.refreshed, 0);
    let limit = t.ctx.settings.refresh_concurrency;
    assert_eq!(limit, tokenwarden_server::DEFAULT_REFRESH_CONCURRENCY);
    emu.emulator
        .set_token_latency(std::time::Duration::from_millis(100));
    emu.emulator.reset_token_concurrency();
    let grants = emu.emulator.stats().counters.refresh_token_grants_ok;
    // A day later every token's daily check is due in the same pass.
    t.clock.advance(chrono::Duration::hours(25));
    let pass = t.pass().await;
    assert_eq!((pass.refreshed, pass.refresh_failures), (N, 0), "{pass:?}");
    assert_eq!(
        emu.emulator.stats().counters.refresh_token_grants_ok - grants,
        N as u64,
        "one refresh per token"
    );
    let in_flight = emu.emulator.max_token_requests_in_flight() as usize;
    assert!(
        (8..=limit).contains(&in_flight),
        "{in_flight} token requests at once (limit {limit})"
    );
    // Each exactly once: one refresh recorded per token, and nothing more to do.
    let audited = t
        .ctx
        .store
        .list_audit(&tokenwarden_store::AuditFilter {
            action: Some("token.refresh".into()),
            limit: 10 * N as i64,
            ..Default::default()
        })
        .await
        .unwrap();
    let per_token: std::collections::BTreeMap<String, usize> =
        audited.iter().fold(Default::default(), |mut m, e| {
            *m.entry(e.object_id.clone().unwrap_or_default())
                .or_default() += 1;
            m
        });
    assert_eq!(per_token.len(), N, "{per_token:?}");
    assert!(per_token.values().all(|&n| n == 1), "{per_token:?}");
    assert!(ids.iter().all(|id| per_token.contains_key(id)));
    assert_eq!(t.pass().await.refreshed, 0);
}

/// CPU time of this process so far (user + system), from /proc/self/stat.
fn cpu_time() -> std::time::Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
    let after_name = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = after_name.split(' ').collect();
    // utime and stime are fields 14 and 15 of the whole line (11 and 12 after the name).
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    std::time::Duration::from_millis(ticks * 10)
}

/// Issue 10 benchmark (docs/benchmarks.md), not run by default: the cost of a background pass
/// with nothing due over `TOKENWARDEN_BENCH_TOKENS` tokens (default 20,000), against what the
/// former pass selected every tick (every token and every bookkeeping row); and refreshes per
/// second at 100 ms provider latency with `refresh_concurrency` 16 and 32
/// (`TOKENWARDEN_BENCH_CONCURRENCY`).
/// `TOKENWARDEN_BENCH_DB=postgres` for PostgreSQL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: cargo test -p tokenwarden-server --test api -- --ignored bench_issue10 --nocapture"]
async fn bench_issue10_idle_pass_and_refresh_concurrency() {
    use tokenwarden_domain::{ProviderId, TokenId, TokenName, TokenStatus};
    use tokenwarden_store::{Sealed, TokenMaterial, TokenRecord};
    let n: usize = std::env::var("TOKENWARDEN_BENCH_TOKENS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000);
    let db = match std::env::var("TOKENWARDEN_BENCH_DB").as_deref() {
        Ok("postgres") => Db::Postgres,
        _ => Db::Sqlite,
    };
    let t = spawn(db).await;
    let now = t.clock_now();
    let created = std::time::Instant::now();
    for i in 0..n {
        let rec = TokenRecord {
            id: TokenId(uuid::Uuid::new_v4()),
            name: TokenName::parse(&format!("bench-{i}")).unwrap(),
            provider: ProviderId::parse("snowflake").unwrap(),
            grant: Default::default(),
            app_id: None,
            settings: [("account".to_owned(), "xy12345".to_owned())].into(),
            client_id: Some("client".into()),
            client_secret: Some(Sealed(vec![7; 60])),
            client_secret_2: None,
            client_auth: None,
            client_secret_expires_at: None,
            material: TokenMaterial {
                access_token: Some(Sealed(vec![7; 300])),
                refresh_token: Some(Sealed(vec![7; 300])),
                token_type: Some("Bearer".into()),
                scopes: None,
                access_expires_at: Some(now + chrono::Duration::minutes(10)),
                refresh_expires_at: Some(now + chrono::Duration::days(90)),
                issued_at: Some(now),
            },
            status: TokenStatus::Healthy,
            status_reason: None,
            version: 1,
            created_at: now,
            updated_at: now,
        };
        t.ctx.store.create_token(&rec).await.unwrap();
    }
    println!("{n} tokens created in {:.1?} ({db:?})", created.elapsed());
    let (cpu, wall) = (cpu_time(), std::time::Instant::now());
    let first = t.pass().await;
    println!(
        "first pass (every token due once): examined {}, {:.1?} wall, {:.0?} CPU",
        first.examined,
        wall.elapsed(),
        cpu_time() - cpu
    );
    const PASSES: u32 = 20;
    let (cpu, wall) = (cpu_time(), std::time::Instant::now());
    let mut examined = 0;
    for _ in 0..PASSES {
        examined += t.pass().await.examined;
    }
    println!(
        "after: idle pass (nothing due): {examined} token rows read in {PASSES} passes, {:.2?} wall, {:.2?} CPU per pass",
        wall.elapsed() / PASSES,
        (cpu_time() - cpu) / PASSES
    );
    let (cpu, wall) = (cpu_time(), std::time::Instant::now());
    let mut rows = 0;
    for _ in 0..5 {
        rows += t.ctx.store.list_tokens().await.unwrap().len();
        rows += t.ctx.store.list_token_health().await.unwrap().len();
    }
    println!(
        "before: the former pass's selection alone (list_tokens + list_token_health): {} rows, {:.2?} wall, {:.2?} CPU per pass",
        rows / 5,
        wall.elapsed() / 5,
        (cpu_time() - cpu) / 5
    );

    // Refreshes per second at 100 ms provider latency, on a database of their own.
    let t = spawn(db).await;
    let emu = Emulator::start(EmulatorConfig::default_for_tests(), "127.0.0.1:0")
        .await
        .unwrap();
    let m: usize = std::env::var("TOKENWARDEN_BENCH_REFRESH_TOKENS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(64);
    authorized_tokens(&t, &emu, m).await;
    t.pass().await;
    emu.emulator
        .set_token_latency(std::time::Duration::from_millis(100));
    // `TOKENWARDEN_BENCH_CONCURRENCY`: the settings to compare, e.g. "1,16,32" (default "16,32").
    let settings: Vec<usize> = std::env::var("TOKENWARDEN_BENCH_CONCURRENCY")
        .unwrap_or_else(|_| "16,32".into())
        .split(',')
        .map(|v| v.trim().parse().unwrap())
        .collect();
    for concurrency in settings {
        let mut ctx = t.ctx.clone();
        let mut settings = (*ctx.settings).clone();
        settings.refresh_concurrency = concurrency;
        ctx.settings = std::sync::Arc::new(settings);
        // A day later: every token's daily check is due.
        t.clock.advance(chrono::Duration::hours(25));
        let wall = std::time::Instant::now();
        let grants = emu.emulator.stats().counters.refresh_token_grants_ok;
        let r = tokenwarden_server::ops::engine::run_due_once(&ctx, t.clock_now()).await;
        let took = wall.elapsed();
        let done = emu.emulator.stats().counters.refresh_token_grants_ok - grants;
        println!(
            "refresh_concurrency {concurrency}: {done} refreshes at 100 ms in {took:.2?}: {:.0} refreshes/s (refreshed {}, failures {})",
            done as f64 / took.as_secs_f64(),
            r.refreshed,
            r.refresh_failures
        );
        t.pass().await; // the re-look after the writes
    }
}
