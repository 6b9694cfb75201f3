//! Issue 9 bugs 5 and 9: a lost or full database is noticed; cross-app denials are audited;
//! HSTS behind https; the demo clock refuses cross-site posts.

use crate::support::{Db, TestApp, spawn};
use reqwest::Method;
use serde_json::{Value, json};
use std::sync::Arc;
use tower::ServiceExt;

async fn readyz(t: &TestApp) -> (u16, Value) {
    let (s, b, _) = t.send(Method::GET, "/readyz", None, None).await;
    (s, b)
}

/// Issue 9 bug 5: the SQLite file deleted under a running server: `/readyz` answers 503 and
/// writes are refused with 503 `unavailable` instead of acknowledged and lost.
#[tokio::test]
async fn r16_issue9_bug5_a_deleted_database_is_noticed_and_writes_are_refused() {
    let t = spawn(Db::Sqlite).await;
    assert_eq!(readyz(&t).await.0, 200);
    let (s, _) = t
        .admin(
            Method::POST,
            "/api/v1/apps",
            Some(json!({"name": "before"})),
        )
        .await;
    assert_eq!(s, 201);
    let db = t.sqlite_path().unwrap();
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", db.display()));
    }
    let (s, b) = readyz(&t).await;
    assert_eq!((s, b["code"].as_str()), (503, Some("unavailable")), "{b}");
    let (s, b) = t
        .admin(Method::POST, "/api/v1/apps", Some(json!({"name": "after"})))
        .await;
    assert_eq!((s, b["code"].as_str()), (503, Some("unavailable")), "{b}");
    // Replaced by another file at the same path: still not the database that was opened.
    std::fs::write(&db, b"").unwrap();
    assert_eq!(readyz(&t).await.0, 503);
    let (s, _) = t.admin(Method::DELETE, "/api/v1/apps/before", None).await;
    assert_eq!(s, 503);
    // The background pass does not write either.
    assert_eq!(
        t.pass().await,
        tokenwarden_server::ops::engine::PassReport::default()
    );
}

/// Issue 9 bug 5: a database that takes no writes (a full disk) makes `/readyz` answer 503.
/// Simulated with a trigger that fails every write to the metadata table with SQLite's own
/// disk-full message (a real full disk needs a small filesystem this test cannot mount); the
/// probe runs at most every 5 s, so the test clock moves between checks.
#[tokio::test]
async fn r16_issue9_bug5_readyz_fails_when_the_database_cannot_be_written() {
    let t = spawn(Db::Sqlite).await;
    assert_eq!(readyz(&t).await.0, 200);
    let url = format!("sqlite://{}", t.sqlite_path().unwrap().display());
    let side = tokenwarden_store::SqlStore::connect(&url).await.unwrap();
    for ddl in [
        "CREATE TRIGGER full_on_insert BEFORE INSERT ON meta BEGIN SELECT RAISE(ABORT, 'database or disk is full'); END",
        "CREATE TRIGGER full_on_update BEFORE UPDATE ON meta BEGIN SELECT RAISE(ABORT, 'database or disk is full'); END",
    ] {
        // DDL returns no row: `diagnostic` reports that, after the statement ran.
        let _ = side.diagnostic(ddl).await;
    }
    // Within 5 s of the last probe, the last answer stands.
    assert_eq!(readyz(&t).await.0, 200);
    t.clock.advance(chrono::Duration::seconds(6));
    let (s, b) = readyz(&t).await;
    assert_eq!((s, b["code"].as_str()), (503, Some("unavailable")), "{b}");
    for ddl in ["DROP TRIGGER full_on_insert", "DROP TRIGGER full_on_update"] {
        let _ = side.diagnostic(ddl).await;
    }
    t.clock.advance(chrono::Duration::seconds(6));
    assert_eq!(readyz(&t).await.0, 200);
}

/// Issue 9 bug 9 (R26): an app asking for a token it does not use gets 404 and the denial is
/// audited; repeats within a minute are counted into the next record, not written each.
#[tokio::test]
async fn r26_issue9_bug9_cross_app_denials_are_audited_in_aggregate() {
    let t = spawn(Db::Sqlite).await;
    let (s, app) = t
        .admin(
            Method::POST,
            "/api/v1/apps",
            Some(json!({"name": "reader", "tokens": ["mine"]})),
        )
        .await;
    assert_eq!(s, 201, "{app}");
    let key = app["api_key"].as_str().unwrap();
    let denied = || async {
        let (s, b, _) = t
            .send(Method::GET, "/api/v1/access-tokens/theirs", Some(key), None)
            .await;
        assert_eq!((s, b["code"].as_str()), (404, Some("not_found")), "{b}");
    };
    let records = || async {
        let (s, b) = t
            .admin(Method::GET, "/api/v1/audit?action=auth.forbidden", None)
            .await;
        assert_eq!(s, 200, "{b}");
        b["items"].as_array().unwrap().clone()
    };
    denied().await;
    let r = records().await;
    assert_eq!(r.len(), 1, "{r:?}");
    assert_eq!(r[0]["object_name"], "theirs");
    assert_eq!(r[0]["outcome"], "denied");
    assert_eq!(
        r[0]["actor"],
        format!("app:{}", app["id"].as_str().unwrap())
    );
    denied().await;
    denied().await;
    assert_eq!(records().await.len(), 1);
    t.clock.advance(chrono::Duration::seconds(61));
    denied().await;
    let r = records().await;
    assert_eq!(r.len(), 2, "{r:?}");
    assert_eq!(r[0]["detail"]["repeats_since_last_record"], 2, "{r:?}");
}

async fn get_via_router(
    ctx: tokenwarden_server::AppContext,
    req: axum::http::Request<axum::body::Body>,
) -> axum::response::Response {
    tokenwarden_server::router(ctx).oneshot(req).await.unwrap()
}

/// Issue 9 bug 9: `Strict-Transport-Security` on every answer when the public URL is https
/// (the rule that makes the session cookie `Secure`), and not over plain http.
#[tokio::test]
async fn r29_issue9_bug9_hsts_behind_https_only() {
    let t = spawn(Db::Sqlite).await;
    let get = || {
        axum::http::Request::get("/healthz")
            .body(axum::body::Body::empty())
            .unwrap()
    };
    let res = get_via_router(t.ctx.clone(), get()).await;
    assert!(res.headers().get("strict-transport-security").is_none());
    let mut ctx = t.ctx.clone();
    let mut settings = (*ctx.settings).clone();
    settings.public_url = "https://tokens.example.com".into();
    ctx.settings = Arc::new(settings);
    let res = get_via_router(ctx, get()).await;
    assert_eq!(
        res.headers()["strict-transport-security"],
        "max-age=31536000"
    );
}

/// Issue 9 bug 9: `POST /_demo/clock` needs a JSON body and our own origin; a cross-site post
/// is refused with 403 and the clock does not move.
#[tokio::test]
async fn r30_issue9_bug9_the_demo_clock_refuses_cross_site_posts() {
    let t = spawn(Db::Sqlite).await;
    let mut ctx = t.ctx.clone();
    let clock = Arc::new(tokenwarden_domain::OffsetClock::default());
    ctx.clock = clock.clone();
    ctx.demo = Some(Arc::new(tokenwarden_server::DemoHooks {
        clock: clock.clone(),
        on_advance: Box::new(|_: chrono::Duration| {}),
    }));
    let ours = ctx.settings.public_url.clone();
    let post = |headers: &[(&str, &str)]| {
        let mut req = axum::http::Request::post("/_demo/clock");
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        req.body(axum::body::Body::from("{\"seconds\": 60}"))
            .unwrap()
    };
    let cases: Vec<(Vec<(&str, &str)>, u16)> = vec![
        (vec![("content-type", "text/plain")], 400),
        (vec![], 400),
        (
            vec![
                ("content-type", "application/json"),
                ("sec-fetch-site", "cross-site"),
            ],
            403,
        ),
        (
            vec![
                ("content-type", "application/json"),
                ("sec-fetch-site", "same-site"),
            ],
            403,
        ),
        (
            vec![
                ("content-type", "application/json"),
                ("origin", "https://evil.example"),
            ],
            403,
        ),
    ];
    for (headers, status) in cases {
        let res = get_via_router(ctx.clone(), post(&headers)).await;
        assert_eq!(res.status().as_u16(), status, "{headers:?}");
        assert_eq!(clock.offset(), chrono::Duration::zero(), "{headers:?}");
    }
    for headers in [
        vec![("content-type", "application/json")],
        vec![
            ("content-type", "application/json; charset=utf-8"),
            ("sec-fetch-site", "same-origin"),
        ],
        vec![
            ("content-type", "application/json"),
            ("origin", ours.as_str()),
        ],
    ] {
        let before = clock.offset();
        let res = get_via_router(ctx.clone(), post(&headers)).await;
        assert_eq!(res.status().as_u16(), 200, "{headers:?}");
        assert_eq!(clock.offset() - before, chrono::Duration::seconds(60));
    }
}
