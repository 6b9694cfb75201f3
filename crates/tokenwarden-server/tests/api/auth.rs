//! R25, R26: deny by default, keys in headers only, apps see only themselves.

use crate::support::{ADMIN, Db, spawn};
use reqwest::Method;
use serde_json::json;
use tokenwarden_domain::{ApiKeyId, Clock};

on_both_databases!(issue9_bug3_denials_are_audited_in_aggregate_and_old_records_are_pruned);

/// Every operation of the OpenAPI document (so every route added later too), with each path
/// parameter filled with a real object: no credential or a wrong one is 401; an app key is 403
/// everywhere but the two operations an app may use (reading itself, reading its tokens).
#[tokio::test]
async fn r26_every_route_denies_missing_and_wrong_credentials() {
    let t = spawn(Db::Sqlite).await;
    let (app, token) = t.seed().await;
    let app_key = app["api_key"].as_str().unwrap().to_owned();
    let tid = token["id"].as_str().unwrap();
    let aid = app["id"].as_str().unwrap();
    let kid = app["api_key_id"].as_str().unwrap();
    let (s, ch) = t
        .admin(
            Method::POST,
            "/api/v1/notification-channels",
            Some(json!({"name": "ops", "kind": "webhook", "url": "http://127.0.0.1:9/hook"})),
        )
        .await;
    assert_eq!(s, 201, "{ch}");
    let cid = ch["id"].as_str().unwrap();
    let doc = serde_json::to_value(tokenwarden_server::openapi()).unwrap();
    let mut routes = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        let id = if path.starts_with("/api/v1/apps/") {
            aid
        } else if path.starts_with("/api/v1/tokens/") {
            tid
        } else if path.starts_with("/api/v1/notification-channels/") {
            cid
        } else {
            // Admins and admin tokens: any id (credentials are checked before the lookup).
            "someone"
        };
        let concrete = path
            .replace("{id}", id)
            .replace("{key_id}", kid)
            .replace("{name}", "snowflake-sales");
        assert!(!concrete.contains('{'), "unfilled parameter in {path}");
        for (method, op) in item.as_object().unwrap() {
            let m = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let op_id = op["operationId"].as_str().unwrap().to_owned();
            routes.push((m, concrete.clone(), op_id));
        }
    }
    assert!(routes.len() >= 28, "{} operations", routes.len());
    let forged = format!("{}x", &app_key[..app_key.len() - 1]);
    for (m, path, op) in &routes {
        for bad in [
            None,
            Some("wrong"),
            Some("tw_app_00000000000000000000000000000000_abc"),
            Some(forged.as_str()),
        ] {
            let (s, body, _) = t.send(m.clone(), path, bad, Some(json!({}))).await;
            assert_eq!(
                (s, body["code"].as_str()),
                (401, Some("unauthorized")),
                "{op}: {m} {path} with {bad:?}"
            );
        }
    }
    // The app key is not an admin credential: 403 on every admin route. An app may read itself
    // and its own tokens (the token is not authorized yet: 409, not 403).
    let app_routes = ["get_app", "read_access_token"];
    for (m, path, op) in &routes {
        let (s, body, _) = t
            .send(m.clone(), path, Some(&app_key), Some(json!({})))
            .await;
        if app_routes.contains(&op.as_str()) {
            assert!(
                s != 401 && s != 403,
                "{op}: an app may use {m} {path}: {s} {body}"
            );
        } else {
            assert_eq!(
                (s, body["code"].as_str()),
                (403, Some("forbidden")),
                "{op}: {m} {path}"
            );
        }
    }
    // The objects are all still there: no denied request did anything.
    for path in [
        format!("/api/v1/apps/{aid}"),
        format!("/api/v1/tokens/{tid}"),
    ] {
        assert_eq!(t.admin(Method::GET, &path, None).await.0, 200, "{path}");
    }
    let (_, keys) = t
        .admin(Method::GET, &format!("/api/v1/apps/{aid}/keys"), None)
        .await;
    assert_eq!(keys["items"].as_array().map(Vec::len), Some(1), "{keys}");
    // Every denial is audited, in aggregate once its minute is over (issue 9, bug 3), without
    // the presented secret.
    t.clock.advance(chrono::Duration::minutes(1));
    t.pass().await;
    let denied = t
        .ctx
        .store
        .list_audit(&tokenwarden_store::AuditFilter {
            limit: 1000,
            ..Default::default()
        })
        .await
        .unwrap();
    let n401: i64 = denied
        .iter()
        .filter(|e| e.action == "auth.denied")
        .map(|e| e.detail["count"].as_i64().unwrap())
        .sum();
    let n403 = denied
        .iter()
        .filter(|e| e.action == "auth.forbidden")
        .count();
    assert_eq!(n401 as usize, routes.len() * 4);
    assert_eq!(n403, routes.len() - app_routes.len());
    assert!(!format!("{denied:?}").contains(&app_key));
}

#[tokio::test]
async fn r26_app_a_cannot_see_app_b() {
    let t = spawn(Db::Sqlite).await;
    let (a, _) = t
        .admin(Method::POST, "/api/v1/apps", Some(json!({"name": "a"})))
        .await;
    let (b, _) = t
        .admin(Method::POST, "/api/v1/apps", Some(json!({"name": "b"})))
        .await;
    assert_eq!((a, b), (201, 201));
    let (_, a) = t.admin(Method::GET, "/api/v1/apps/a", None).await;
    let (_, apps) = t.admin(Method::GET, "/api/v1/apps", None).await;
    assert_eq!(apps["items"].as_array().unwrap().len(), 2);
    // Make a key for app a through the store: the one in the create answer is gone.
    let key = tokenwarden_server::auth::new_key(
        tokenwarden_store::ApiKeyKind::App,
        tokenwarden_domain::AppId::parse(a["id"].as_str().unwrap()),
        tokenwarden_domain::KeyLabel::parse("second").unwrap(),
        t.clock.now(),
    );
    t.ctx.store.create_api_key(&key.record).await.unwrap();
    use secrecy::ExposeSecret;
    let k = key.text.expose_secret();
    let (s, _, _) = t.send(Method::GET, "/api/v1/apps/a", Some(k), None).await;
    assert_eq!(s, 200);
    let (s, body, _) = t.send(Method::GET, "/api/v1/apps/b", Some(k), None).await;
    assert_eq!(
        (s, body["code"].as_str()),
        (404, Some("not_found")),
        "404, not 403: names do not leak"
    );
    let (s, _, _) = t
        .send(Method::GET, "/api/v1/apps/does-not-exist", Some(k), None)
        .await;
    assert_eq!(s, 404);
}

#[tokio::test]
async fn r25_revoked_keys_and_query_string_credentials_are_refused() {
    let t = spawn(Db::Sqlite).await;
    let (app, _) = t.seed().await;
    let key = app["api_key"].as_str().unwrap();
    let (s, _, _) = t
        .send(Method::GET, "/api/v1/apps/sales-invoice", Some(key), None)
        .await;
    assert_eq!(s, 200);
    let key_id = ApiKeyId::parse(app["api_key_id"].as_str().unwrap()).unwrap();
    t.ctx
        .store
        .revoke_api_key(key_id, t.clock.now())
        .await
        .unwrap();
    // Revoked elsewhere (another instance, the CLI): cached keys are trusted for at most
    // KEY_FRESH_FOR; revoking through the API takes effect at once (tested elsewhere).
    t.clock
        .advance(tokenwarden_server::cache::KEY_FRESH_FOR + chrono::Duration::seconds(1));
    let (s, _, _) = t
        .send(Method::GET, "/api/v1/apps/sales-invoice", Some(key), None)
        .await;
    assert_eq!(s, 401);

    for param in ["api_key", "access_token", "token", "key"] {
        let (s, body, _) = t
            .send(
                Method::GET,
                &format!("/api/v1/apps?{param}={ADMIN}"),
                Some(ADMIN),
                None,
            )
            .await;
        assert_eq!(
            (s, body["code"].as_str()),
            (400, Some("credentials_in_query")),
            "{param}"
        );
    }
}

/// Issue 9 bug 8 (R25): credential names are recognised after percent-decoding and
/// lower-casing, with `;` as a separator too, not by their exact spelling only.
#[tokio::test]
async fn r25_issue9_bug8_encoded_and_semicolon_credentials_in_query_are_refused() {
    let t = spawn(Db::Sqlite).await;
    for query in [
        "api%5Fkey=x",
        "API%5fKEY=x",
        "access%5Ftoken=x",
        "%61pi_key=x",
        "limit=1;api_key=x",
        "limit=1;access%5Ftoken=x",
        "a=1&Admin%5FToken=x",
    ] {
        let (s, body, _) = t
            .send(
                Method::GET,
                &format!("/api/v1/apps?{query}"),
                Some(ADMIN),
                None,
            )
            .await;
        assert_eq!(
            (s, body["code"].as_str()),
            (400, Some("credentials_in_query")),
            "{query}"
        );
    }
    // Names that only resemble one are not refused.
    let (s, _, _) = t
        .send(Method::GET, "/api/v1/apps?api%5Fkeys=x", Some(ADMIN), None)
        .await;
    assert_eq!(s, 200);
}

#[tokio::test]
async fn admin_tokens_made_by_the_cli_path_work_and_can_be_revoked() {
    let t = spawn(Db::Sqlite).await;
    let key = tokenwarden_server::ops::admins::create_admin_token(
        &t.ctx,
        "cli",
        tokenwarden_domain::KeyLabel::parse("ops").unwrap(),
    )
    .await
    .unwrap();
    use secrecy::ExposeSecret;
    let k = key.text.expose_secret();
    assert!(k.starts_with("tw_adm_"));
    let (s, _, _) = t
        .send(
            Method::POST,
            "/api/v1/apps",
            Some(k),
            Some(json!({"name": "by-ops"})),
        )
        .await;
    assert_eq!(s, 201);
    let ev = t
        .ctx
        .store
        .list_audit(&tokenwarden_store::AuditFilter {
            action: Some("app.create".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(ev[0].actor, "admin:ops");
    t.ctx
        .store
        .revoke_api_key(key.record.id, t.clock.now())
        .await
        .unwrap();
    // Revoked elsewhere (another instance, the CLI): cached keys are trusted for at most
    // KEY_FRESH_FOR; revoking through the API takes effect at once (tested elsewhere).
    t.clock
        .advance(tokenwarden_server::cache::KEY_FRESH_FOR + chrono::Duration::seconds(1));
    let (s, _, _) = t.send(Method::GET, "/api/v1/apps", Some(k), None).await;
    assert_eq!(s, 401);
}

#[tokio::test]
async fn app_keys_can_be_added_listed_and_revoked_without_downtime() {
    let t = spawn(Db::Sqlite).await;
    let (app, _) = t.seed().await;
    let old = app["api_key"].as_str().unwrap().to_owned();
    // A second key, made with an empty body, then one with a label.
    let res = t
        .http
        .post(t.url("/api/v1/apps/sales-invoice/keys"))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let (s, labelled) = t
        .admin(
            Method::POST,
            "/api/v1/apps/sales-invoice/keys",
            Some(json!({"label": "production"})),
        )
        .await;
    assert_eq!(s, 201);
    let new = labelled["api_key"].as_str().unwrap().to_owned();
    assert_eq!(labelled["label"], "production");
    let (s, keys) = t
        .admin(Method::GET, "/api/v1/apps/sales-invoice/keys", None)
        .await;
    assert_eq!((s, keys["items"].as_array().unwrap().len()), (200, 3));
    assert!(
        !keys.to_string().contains("tw_app_"),
        "keys are never listed: {keys}"
    );
    // Both old and new work; revoke the old one; only the new one works.
    for k in [&old, &new] {
        assert_eq!(
            t.send(Method::GET, "/api/v1/apps/sales-invoice", Some(k), None)
                .await
                .0,
            200
        );
    }
    let old_id = app["api_key_id"].as_str().unwrap();
    let (s, _) = t
        .admin(
            Method::DELETE,
            &format!("/api/v1/apps/sales-invoice/keys/{old_id}"),
            None,
        )
        .await;
    assert_eq!(s, 204);
    assert_eq!(
        t.send(Method::GET, "/api/v1/apps/sales-invoice", Some(&old), None)
            .await
            .0,
        401
    );
    assert_eq!(
        t.send(Method::GET, "/api/v1/apps/sales-invoice", Some(&new), None)
            .await
            .0,
        200
    );
    // A key of another app cannot be revoked through this app: 404.
    let (_, other) = t
        .admin(Method::POST, "/api/v1/apps", Some(json!({"name": "other"})))
        .await;
    let other_key = other["api_key_id"].as_str().unwrap();
    let (s, _) = t
        .admin(
            Method::DELETE,
            &format!("/api/v1/apps/sales-invoice/keys/{other_key}"),
            None,
        )
        .await;
    assert_eq!(s, 404);
    let (s, body) = t
        .admin(
            Method::POST,
            "/api/v1/apps/sales-invoice/keys",
            Some(json!({"label": "bad/label"})),
        )
        .await;
    // A label that breaks its rule is a name error (issue 11 item 12).
    assert_eq!(
        (s, body["code"].as_str()),
        (400, Some("invalid_name")),
        "{body}"
    );
}

/// Issue 9, bug 3 (R27): every anonymous 401 wrote an audit row, so anyone could fill the disk.
/// Thousands of refused requests (any path, any bad credential) become one row per minute,
/// route pattern, credential kind and reason, with the count, and nothing is written while the
/// minute runs; records older than the retention (90 days by default) are pruned by the
/// background pass.
async fn issue9_bug3_denials_are_audited_in_aggregate_and_old_records_are_pruned(db: Db) {
    use tokenwarden_store::{AuditEvent, AuditFilter};
    let t = spawn(db).await;
    let audit = || async {
        t.ctx
            .store
            .list_audit(&AuditFilter {
                limit: 1000,
                ..Default::default()
            })
            .await
            .unwrap()
    };
    let before = audit().await.len();
    const N: usize = 3000;
    let bads = [
        None,
        Some("wrong"),
        Some("tw_app_00000000000000000000000000000000_abc"),
    ];
    let mut sent = 0;
    while sent < N {
        let mut batch = Vec::new();
        for i in sent..(sent + 100).min(N) {
            let path = if i % 2 == 0 {
                format!("/api/v1/apps/app-{i}")
            } else {
                "/api/v1/tokens".to_owned()
            };
            let mut req = t.http.get(t.url(&path));
            if let Some(b) = bads[i % 3] {
                req = req.bearer_auth(b);
            }
            batch.push(tokio::spawn(async move {
                req.send().await.unwrap().status().as_u16()
            }));
        }
        sent += batch.len();
        for b in batch {
            assert_eq!(b.await.unwrap(), 401);
        }
    }
    // Nothing is written per request, nor while the minute runs.
    t.pass().await;
    assert_eq!(audit().await.len(), before);
    t.clock.advance(chrono::Duration::seconds(61));
    t.pass().await;
    let rows: Vec<AuditEvent> = audit()
        .await
        .into_iter()
        .filter(|e| e.action == "auth.denied")
        .collect();
    assert!(
        rows.len() <= 6,
        "{} rows for {N} denials: {rows:#?}",
        rows.len()
    );
    let total: i64 = rows
        .iter()
        .map(|e| e.detail["count"].as_i64().unwrap())
        .sum();
    assert_eq!(total as usize, N);
    let routes: std::collections::BTreeSet<_> = rows
        .iter()
        .map(|e| e.object_name.clone().unwrap())
        .collect();
    assert_eq!(
        routes.into_iter().collect::<Vec<_>>(),
        ["GET /api/v1/apps/{id}", "GET /api/v1/tokens"]
    );
    let kinds: std::collections::BTreeSet<_> = rows
        .iter()
        .map(|e| e.detail["credential"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        kinds.into_iter().collect::<Vec<_>>(),
        ["bearer", "none", "tw_app_"]
    );

    // Retention: a backlog of old records goes, newer ones stay.
    let existing = audit().await.len();
    let old = t.clock.now();
    for i in 0..2500 {
        t.ctx
            .store
            .append_audit(&AuditEvent {
                id: format!("old-{i:05}"),
                at: old,
                actor: "system".into(),
                action: "token.refresh".into(),
                object_type: "token".into(),
                object_id: None,
                object_name: None,
                outcome: "ok".into(),
                detail: json!({}),
            })
            .await
            .unwrap();
    }
    t.clock.advance(chrono::Duration::days(89));
    let (s, _) = t
        .admin(
            Method::POST,
            "/api/v1/apps",
            Some(json!({"name": "recent"})),
        )
        .await;
    assert_eq!(s, 201);
    assert_eq!(t.pass().await.audit_pruned, 0, "nothing is 90 days old yet");
    t.clock.advance(chrono::Duration::days(2));
    let report = t.pass().await;
    let left = audit().await;
    assert_eq!(report.audit_pruned as usize, existing + 2500);
    assert!(left.iter().any(|e| e.action == "app.create"), "{left:#?}");
    let cutoff = t.clock.now() - tokenwarden_server::DEFAULT_AUDIT_RETENTION;
    assert!(left.iter().all(|e| e.at >= cutoff), "{left:#?}");
}

/// Issue 11 item 12: an app's API key is not an admin credential anywhere. The API's admin
/// routes answer it 403 (`r26_every_route_denies_missing_and_wrong_credentials` walks the
/// OpenAPI document); so do the web UI's signed-in routes, every one the UI's router declares
/// (read from its source, so a route added later is walked too), for GET and POST alike,
/// instead of sending the app to a sign-in page (303) or answering 401.
#[tokio::test]
async fn issue11_item12_an_app_key_on_the_ui_routes_is_403_forbidden() {
    let t = spawn(Db::Sqlite).await;
    let (app, token) = t.seed().await;
    let app_key = app["api_key"].as_str().unwrap().to_owned();
    let aid = app["id"].as_str().unwrap();
    let tid = token["id"].as_str().unwrap();
    let source = include_str!("../../src/ui/mod.rs");
    let signed_in =
        &source[source.find("let signed_in").unwrap()..source.find("require_session,").unwrap()];
    let mut routes = Vec::new();
    for chunk in signed_in.split(".route(").skip(1) {
        let path = chunk.split('"').nth(1).unwrap();
        for (method, call) in [(Method::GET, "get("), (Method::POST, "post(")] {
            if chunk.contains(call) {
                let concrete = path
                    .replace("{id}", if path.starts_with("/apps") { aid } else { tid })
                    .replace("{key_id}", app["api_key_id"].as_str().unwrap())
                    .replace("{list}", "apps");
                routes.push((method, concrete));
            }
        }
    }
    assert!(routes.len() >= 40, "{routes:?}");
    let plain = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    for (m, path) in &routes {
        let res = plain
            .request(m.clone(), t.url(path))
            .bearer_auth(&app_key)
            .header("origin", t.url(""))
            .form(&[("csrf", "x")])
            .send()
            .await
            .unwrap();
        let status = res.status().as_u16();
        let body: serde_json::Value = res.json().await.unwrap_or_default();
        assert_eq!(
            (status, body["code"].as_str()),
            (403, Some("forbidden")),
            "{m} {path} with an app key"
        );
        // Without it (or with a wrong one), a browser is still sent to sign in.
        for bearer in [None, Some("tw_app_00000000000000000000000000000000_abc")] {
            let mut req = plain.request(m.clone(), t.url(path));
            if let Some(b) = bearer {
                req = req.bearer_auth(b);
            }
            let s = req.send().await.unwrap().status().as_u16();
            assert_eq!(s, 303, "{m} {path} with {bearer:?}");
        }
    }
    // Each refusal is audited like the API's (auth.forbidden, naming the app, never the key).
    let forbidden = t
        .ctx
        .store
        .list_audit(&tokenwarden_store::AuditFilter {
            action: Some("auth.forbidden".into()),
            limit: 1000,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(forbidden.len(), routes.len());
    assert!(!format!("{forbidden:?}").contains(&app_key));
}
