//! `GET /metrics` (issue 13 item 1): who may scrape it, and the numbers against what happened
//! (reads by outcome, a refresh against the Snowflake emulator, a failed one, a failed
//! delivery and the queue, a token whose refresh token expires in 5 days and its client secret
//! in 10); no secret in it;
//! `docs/alerts.yml` and `docs/grafana-dashboard.json` name only metrics the server exports.

use crate::support::{ADMIN, Db, TestApp, emulator, spawn, spawn_with};
use reqwest::Method;
use secrecy::SecretString;
use serde_json::{Value, json};
use snowflake_emulator::Fault;
use std::collections::BTreeSet;
use tokenwarden_server::ops::metrics::{AddrRange, MetricsAccess};
use tokenwarden_testkit::webhook::WebhookReceiver;

const METRICS_TOKEN: &str = "metrics-scraper-token-0123456789abcdef";

fn with_token(s: &mut tokenwarden_server::ServerSettings) {
    s.metrics = MetricsAccess::new(Some(&SecretString::from(METRICS_TOKEN)), vec![]);
}

async fn scrape_as(t: &TestApp, bearer: Option<&str>) -> (u16, String, reqwest::header::HeaderMap) {
    let mut req = t.http.get(t.url("/metrics"));
    if let Some(b) = bearer {
        req = req.bearer_auth(b);
    }
    let res = req.send().await.unwrap();
    let status = res.status().as_u16();
    let headers = res.headers().clone();
    (status, res.text().await.unwrap(), headers)
}

/// A scrape with the metrics token, past the counts' cache (the test clock moves 10 s).
async fn scrape(t: &TestApp) -> String {
    t.clock.advance(chrono::Duration::seconds(10));
    let (s, text, h) = scrape_as(t, Some(METRICS_TOKEN)).await;
    assert_eq!(s, 200, "{text}");
    assert!(
        h["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain; version=0.0.4"),
        "{h:?}"
    );
    text
}

/// One sample of a scrape: (name, labels, value).
type Sample = (String, Vec<(String, String)>, f64);

/// The samples of a scrape, from the text format's lines.
fn samples(text: &str) -> Vec<Sample> {
    let mut out = Vec::new();
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let (series, value) = line.rsplit_once(' ').unwrap();
        let value: f64 = match value {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            v => v
                .parse()
                .unwrap_or_else(|_| panic!("bad value in {line:?}")),
        };
        let (name, labels) = match series.split_once('{') {
            None => (series.to_owned(), vec![]),
            Some((name, rest)) => {
                let rest = rest.strip_suffix('}').unwrap();
                let labels = rest
                    .split("\",")
                    .filter(|p| !p.is_empty())
                    .map(|p| {
                        let (k, v) = p.split_once("=\"").unwrap();
                        (k.to_owned(), v.trim_end_matches('"').to_owned())
                    })
                    .collect();
                (name.to_owned(), labels)
            }
        };
        out.push((name, labels, value));
    }
    out
}

/// The value of the sample `name` whose labels include `labels`; 0 when there is none.
fn value(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    let found: Vec<f64> = samples(text)
        .into_iter()
        .filter(|(n, ls, _)| {
            n == name
                && labels
                    .iter()
                    .all(|(k, v)| ls.iter().any(|(lk, lv)| lk == k && lv == v))
        })
        .map(|(_, _, v)| v)
        .collect();
    assert!(
        found.len() <= 1,
        "{name} {labels:?} is ambiguous: {found:?}"
    );
    found.first().copied().unwrap_or(0.0)
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

#[tokio::test]
async fn metrics_are_off_unless_configured_and_need_their_own_credential() {
    // Off: 404, saying how to turn them on.
    let t = spawn(Db::Sqlite).await;
    let (s, body, _) = scrape_as(&t, Some(ADMIN)).await;
    assert_eq!(s, 404, "{body}");
    assert!(body.contains("metrics_token_file"), "{body}");

    // A metrics token: none or a wrong one is 401 (the admin token is not it), the token 200.
    let t = spawn_with(Db::Sqlite, with_token).await;
    let (s, body, h) = scrape_as(&t, None).await;
    assert_eq!(s, 401, "{body}");
    assert!(
        h["www-authenticate"]
            .to_str()
            .unwrap()
            .starts_with("Bearer")
    );
    for wrong in ["wrong", ADMIN, &METRICS_TOKEN[..METRICS_TOKEN.len() - 1]] {
        let (s, body, _) = scrape_as(&t, Some(wrong)).await;
        assert_eq!(s, 401, "{wrong}: {body}");
        assert!(!body.contains("tokenwarden_reads_total"), "{body}");
    }
    let (s, body, _) = scrape_as(&t, Some(METRICS_TOKEN)).await;
    assert_eq!(s, 200, "{body}");
    assert!(
        body.contains("tokenwarden_reads_total{outcome=\"ok\"} 0"),
        "{body}"
    );
    // The refusals are counted with the API's (one audit row per minute and reason).
    t.clock.advance(chrono::Duration::minutes(2));
    t.pass().await;
    let (_, audit) = t
        .admin(Method::GET, "/api/v1/audit?action=auth.denied", None)
        .await;
    assert!(audit.to_string().contains("GET /metrics"), "{audit}");

    // An allowed address (the tests connect from 127.0.0.1): 200 without a token.
    let t = spawn_with(Db::Sqlite, |s| {
        s.metrics = MetricsAccess::new(None, vec![AddrRange::parse("127.0.0.1/32").unwrap()]);
    })
    .await;
    let (s, body, _) = scrape_as(&t, None).await;
    assert_eq!(s, 200, "{body}");
    // Only other addresses allowed: 403.
    let t = spawn_with(Db::Sqlite, |s| {
        s.metrics = MetricsAccess::new(None, vec![AddrRange::parse("10.0.0.0/8").unwrap()]);
    })
    .await;
    let (s, body, _) = scrape_as(&t, Some(METRICS_TOKEN)).await;
    assert_eq!(s, 403, "{body}");
    assert!(body.contains("metrics_allow"), "{body}");
    // Both: an address not allowed may still scrape with the token.
    let t = spawn_with(Db::Sqlite, |s| {
        s.metrics = MetricsAccess::new(
            Some(&SecretString::from(METRICS_TOKEN)),
            vec![AddrRange::parse("10.0.0.0/8").unwrap()],
        );
    })
    .await;
    assert_eq!(scrape_as(&t, None).await.0, 401);
    assert_eq!(scrape_as(&t, Some(METRICS_TOKEN)).await.0, 200);
}

on_both_databases!(the_numbers_follow_what_happened);

async fn the_numbers_follow_what_happened(db: Db) {
    let t = spawn_with(db, with_token).await;
    let emu = emulator().await;
    let (s, app) = t
        .admin(
            Method::POST,
            "/api/v1/apps",
            Some(json!({"name": "reader", "tokens": ["sf", "nope"]})),
        )
        .await;
    assert_eq!(s, 201, "{app}");
    let key = app["api_key"].as_str().unwrap().to_owned();
    // The refresh token lives 5 days (the integration's OAUTH_REFRESH_TOKEN_VALIDITY).
    let id = t
        .authorized_snowflake_token(
            &emu,
            "sf",
            json!({"settings": {"account": emu.base_url(), "role": "ANALYST",
                "refresh_token_validity": "432000"}}),
        )
        .await;
    // Its client secret expires in 10 days (an Azure secret, say): a gauge of its own.
    let secret_expires = t.clock_now() + chrono::Duration::days(10);
    let (s, view) = t
        .admin(
            Method::PATCH,
            &format!("/api/v1/tokens/{id}"),
            Some(json!({"client_secret_expires_at":
                tokenwarden_domain::Rfc3339(secret_expires).to_string()})),
        )
        .await;
    assert_eq!(s, 200, "{view}");
    let before = scrape(&t).await;

    // N reads: ok, and refused ones by outcome.
    let mut served = Vec::new();
    for _ in 0..7 {
        let (s, b) = read(&t, &key, "sf").await;
        assert_eq!(s, 200, "{b}");
        served.push(b["access_token"].as_str().unwrap().to_owned());
    }
    for _ in 0..3 {
        assert_eq!(read(&t, &key, "nope").await.0, 404);
    }
    let (s, _) = read(&t, &key, "sf?min_validity=-1").await;
    assert_eq!(s, 400);
    let after = scrape(&t).await;
    let delta = |name: &str, labels: &[(&str, &str)]| {
        value(&after, name, labels) - value(&before, name, labels)
    };
    assert_eq!(delta("tokenwarden_reads_total", &[("outcome", "ok")]), 7.0);
    assert_eq!(
        delta("tokenwarden_reads_total", &[("outcome", "not_found")]),
        3.0
    );
    assert_eq!(
        delta("tokenwarden_reads_total", &[("outcome", "invalid")]),
        1.0
    );
    assert_eq!(
        delta("tokenwarden_read_duration_seconds_count", &[]),
        11.0,
        "every read is timed"
    );
    assert!(
        delta("tokenwarden_read_cache_hits_total", &[]) >= 5.0,
        "{after}"
    );

    // The token's refresh token expires in 5 days: its gauge (and the soonest expiry) say so.
    let left = value(
        &after,
        "tokenwarden_token_refresh_expiry_seconds",
        &[("token", "sf"), ("app", ""), ("provider", "snowflake")],
    );
    assert!(
        (432_000.0 - 60.0..=432_000.0).contains(&left),
        "about 5 days: {left}\n{after}"
    );
    assert_eq!(
        value(&after, "tokenwarden_next_refresh_expiry_seconds", &[]),
        left
    );
    assert_eq!(
        value(&after, "tokenwarden_tokens_refresh_expiring", &[]),
        1.0
    );
    // The client secret's, apart from the refresh token's: 10 days.
    let secret_left = value(
        &after,
        "tokenwarden_token_client_secret_expiry_seconds",
        &[("token", "sf"), ("app", ""), ("provider", "snowflake")],
    );
    let ten_days = 864_000.0;
    assert!(
        (ten_days - 60.0..=ten_days).contains(&secret_left),
        "about 10 days: {secret_left}\n{after}"
    );
    assert_eq!(
        value(&after, "tokenwarden_next_client_secret_expiry_seconds", &[]),
        secret_left
    );
    assert_eq!(
        value(&after, "tokenwarden_tokens_client_secret_expiring", &[]),
        1.0
    );
    // Within the longest reminder lead time (14 days): expiring soon.
    assert_eq!(
        value(&after, "tokenwarden_tokens", &[("status", "expiring_soon")]),
        1.0
    );
    assert_eq!(
        value(&after, "tokenwarden_tokens", &[("status", "healthy")]),
        0.0
    );
    assert_eq!(
        value(&after, "tokenwarden_tokens", &[("status", "expired")]),
        0.0
    );
    assert_eq!(
        value(&after, "tokenwarden_apps", &[("state", "running")]),
        1.0
    );
    assert_eq!(value(&after, "tokenwarden_metrics_database_ok", &[]), 1.0);

    // A refresh against the emulator (the access token is past its 10 minutes).
    t.clock.advance(chrono::Duration::seconds(601));
    let (s, b) = read(&t, &key, "sf").await;
    assert_eq!(s, 200, "{b}");
    served.push(b["access_token"].as_str().unwrap().to_owned());
    let refreshed = scrape(&t).await;
    let ok = [("provider", "snowflake"), ("outcome", "ok")];
    assert_eq!(
        value(&refreshed, "tokenwarden_refreshes_total", &ok)
            - value(&after, "tokenwarden_refreshes_total", &ok),
        1.0,
        "{refreshed}"
    );
    assert_eq!(
        value(
            &refreshed,
            "tokenwarden_refresh_duration_seconds_count",
            &[("provider", "snowflake")]
        ),
        value(&refreshed, "tokenwarden_refreshes_total", &ok)
    );

    // A failed refresh (the provider answers 503), and its notification to a webhook that
    // answers 500: a failed delivery, left in the queue for a retry.
    let rx = tokio::task::spawn_blocking(|| WebhookReceiver::start().unwrap())
        .await
        .unwrap();
    rx.set_response(500);
    let (s, ch) = t
        .admin(
            Method::POST,
            "/api/v1/notification-channels",
            Some(json!({"name": "ops", "kind": "webhook", "url": rx.url(), "events": ["token.refresh_failed"]})),
        )
        .await;
    assert_eq!(s, 201, "{ch}");
    emu.emulator.inject_token_fault(Fault::ServerError, 1);
    t.clock.advance(chrono::Duration::seconds(601));
    let (s, b) = read(&t, &key, "sf").await;
    assert_eq!(s, 503, "{b}");
    let queued = scrape(&t).await;
    assert_eq!(
        value(&queued, "tokenwarden_notification_queue_depth", &[]),
        1.0,
        "{queued}"
    );
    t.pass().await;
    let failed = scrape(&t).await;
    let d = |name: &str, labels: &[(&str, &str)]| {
        value(&failed, name, labels) - value(&refreshed, name, labels)
    };
    assert_eq!(
        d(
            "tokenwarden_refreshes_total",
            &[("provider", "snowflake"), ("outcome", "failed")]
        ),
        1.0,
        "{failed}"
    );
    assert_eq!(
        d(
            "tokenwarden_reads_total",
            &[("outcome", "provider_unavailable")]
        ),
        1.0
    );
    assert_eq!(
        d(
            "tokenwarden_notification_deliveries_total",
            &[("outcome", "retry")]
        ),
        1.0,
        "{failed}"
    );
    assert!(!rx.requests().is_empty(), "the webhook was called");
    assert_eq!(
        value(&failed, "tokenwarden_notification_queue_depth", &[]),
        1.0,
        "waiting for its retry"
    );

    // No secret anywhere in it.
    let rec = t
        .ctx
        .store
        .get_token(tokenwarden_domain::TokenId::parse(&id).unwrap())
        .await
        .unwrap();
    let mut secrets = vec![key.clone(), ADMIN.to_owned(), METRICS_TOKEN.to_owned()];
    secrets.extend(served);
    for (column, sealed) in [
        (
            tokenwarden_store::SealedColumn::TokenRefreshToken,
            rec.material.refresh_token.clone(),
        ),
        (
            tokenwarden_store::SealedColumn::TokenClientSecret,
            rec.client_secret.clone(),
        ),
    ] {
        use secrecy::ExposeSecret;
        let opened = t
            .ctx
            .vault
            .open_secret(&sealed.unwrap(), column, &id)
            .await
            .unwrap();
        secrets.push(opened.expose_secret().to_owned());
    }
    for text in [&before, &after, &refreshed, &failed] {
        for secret in &secrets {
            assert!(!text.contains(secret.as_str()), "a secret in the metrics");
        }
        assert!(!text.contains(&id), "no ids in labels");
    }

    // The alert rules and the dashboard name only metrics this server exports.
    let exported = exported_names(&failed);
    check_doc_names("docs/alerts.yml", &alert_exprs(), &exported);
    check_doc_names("docs/grafana-dashboard.json", &dashboard_exprs(), &exported);
}

/// Every metric name a scrape shows: sample names and the families' `# TYPE` names.
fn exported_names(text: &str) -> BTreeSet<String> {
    let mut names: BTreeSet<String> = samples(text).into_iter().map(|(n, _, _)| n).collect();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            names.insert(rest.split(' ').next().unwrap().to_owned());
        }
    }
    names
}

fn repo_file(path: &str) -> String {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    std::fs::read_to_string(root.join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The `expr:` of every rule in `docs/alerts.yml` (Prometheus rule groups; one line each),
/// checking its shape on the way: groups, each rule an alert with an expr, labels and
/// annotations.
fn alert_exprs() -> Vec<String> {
    let text = repo_file("docs/alerts.yml");
    assert!(
        text.starts_with("groups:") || text.contains("\ngroups:"),
        "{text}"
    );
    let mut exprs = Vec::new();
    let mut alerts = 0;
    for line in text.lines() {
        let l = line.trim_start();
        if l.starts_with("- alert:") {
            alerts += 1;
        } else if let Some(e) = l.strip_prefix("expr:") {
            let e = e.trim();
            assert!(
                !e.is_empty() && !e.starts_with('|'),
                "one-line exprs: {line}"
            );
            exprs.push(e.to_owned());
        }
    }
    assert!(alerts >= 5, "the issue's alerts: {alerts}");
    assert_eq!(alerts, exprs.len(), "every alert has an expr");
    assert_eq!(
        text.matches("severity:").count(),
        alerts,
        "every alert has a severity"
    );
    assert_eq!(
        text.matches("summary:").count(),
        alerts,
        "every alert has a summary"
    );
    exprs
}

/// The `expr` of every target of every panel of `docs/grafana-dashboard.json`.
fn dashboard_exprs() -> Vec<String> {
    let dash: Value = serde_json::from_str(&repo_file("docs/grafana-dashboard.json"))
        .expect("docs/grafana-dashboard.json is valid JSON");
    assert!(dash["title"].is_string());
    let panels = dash["panels"].as_array().expect("panels");
    assert!(panels.len() >= 6, "{}", panels.len());
    let mut exprs = Vec::new();
    for p in panels {
        let targets = p["targets"]
            .as_array()
            .unwrap_or_else(|| panic!("a panel without targets: {p}"));
        for target in targets {
            exprs.push(target["expr"].as_str().expect("expr").to_owned());
        }
    }
    exprs
}

fn check_doc_names(doc: &str, exprs: &[String], exported: &BTreeSet<String>) {
    let name = regex_lite::Regex::new(r"tokenwarden_[a-z_]+").unwrap();
    let mut seen = 0;
    for e in exprs {
        for m in name.find_iter(e) {
            seen += 1;
            assert!(
                exported.contains(m.as_str()),
                "{doc} names {} which the server does not export (in {e}); exported: {exported:?}",
                m.as_str()
            );
        }
    }
    assert!(seen >= exprs.len(), "{doc}: every expr names a metric");
}

#[tokio::test]
async fn database_errors_are_counted_and_scrapes_go_on_without_the_database() {
    let t = spawn_with(Db::Sqlite, |s| {
        s.metrics = MetricsAccess::new(None, vec![AddrRange::parse("127.0.0.1/32").unwrap()]);
    })
    .await;
    let (_, before, _) = scrape_as(&t, None).await;
    let unavailable = |text: &str| {
        value(
            text,
            "tokenwarden_database_errors_total",
            &[("kind", "unavailable")],
        )
    };
    t.ctx.store.close().await;
    t.clock.advance(chrono::Duration::seconds(10));
    let (s, after, _) = scrape_as(&t, None).await;
    assert_eq!(s, 200, "{after}");
    assert_eq!(value(&after, "tokenwarden_metrics_database_ok", &[]), 0.0);
    assert!(unavailable(&after) > unavailable(&before), "{after}");
    assert!(after.contains("tokenwarden_reads_total"), "{after}");
    assert!(
        !after.contains("tokenwarden_tokens{"),
        "no stale counts: {after}"
    );
}
