//! The fixed request and response shapes, CRUD, audit, on both backends.

use crate::support::{Db, TestApp, spawn};
use reqwest::Method;
use serde_json::json;

#[tokio::test]
async fn sqlite_apps_and_tokens_crud() {
    apps_and_tokens_crud(spawn(Db::Sqlite).await).await;
}

#[tokio::test]
async fn postgres_apps_and_tokens_crud() {
    apps_and_tokens_crud(spawn(Db::Postgres).await).await;
}

async fn apps_and_tokens_crud(t: TestApp) {
    let (app, token) = t.seed().await;
    // Fixed shapes: scripts outside the project rely on these fields.
    let api_key = app["api_key"].as_str().unwrap();
    assert!(api_key.starts_with("tw_app_"), "{app}");
    assert_eq!(app["name"], "sales-invoice");
    assert!(app["id"].is_string());
    for f in ["id", "name", "status", "redirect_uri"] {
        assert!(!token[f].is_null(), "token response lacks {f}: {token}");
    }
    assert_eq!(token["status"], "not_authorized");
    assert_eq!(token["redirect_uri"], format!("{}/oauth/callback", t.base));
    assert_eq!(token["scope"], "app");
    assert_eq!(token["app"], "sales-invoice");

    let id = token["id"].as_str().unwrap();
    let (s, got) = t
        .admin(Method::GET, &format!("/api/v1/tokens/{id}"), None)
        .await;
    assert_eq!(s, 200);
    assert_eq!(got["client_id"], "kMoBQd6lZ0iRIB5W+LjzHc3CQqM=");
    assert_eq!(got["client_secret_set"], true);
    assert!(!got.to_string().contains("SEEDED"), "secret echoed: {got}");

    // Apps: get by id and by name, with state; the key is never shown again.
    let app_id = app["id"].as_str().unwrap();
    for key in [app_id, "sales-invoice"] {
        let (s, a) = t
            .admin(Method::GET, &format!("/api/v1/apps/{key}"), None)
            .await;
        assert_eq!(s, 200);
        assert_eq!(a["state"], "running");
        assert_eq!(a["tokens"], json!(["snowflake-sales"]));
        assert!(a.get("api_key").is_none());
    }
    let (s, list) = t.admin(Method::GET, "/api/v1/apps", None).await;
    assert_eq!((s, list["items"].as_array().unwrap().len()), (200, 1));

    // A global token of the same name may coexist with the app-level one.
    let (s, global) = t
        .admin(
            Method::POST,
            "/api/v1/tokens",
            Some(json!({"name": "snowflake-sales", "provider": "snowflake", "settings": {"account": "xy12345.us-east-1", "role": "ANALYST"}})),
        )
        .await;
    assert_eq!(s, 201, "{global}");
    assert_eq!(global["scope"], "global");
    let (s, dup) = t
        .admin(
            Method::POST,
            "/api/v1/tokens",
            Some(json!({"name": "snowflake-sales", "provider": "snowflake", "settings": {"account": "xy12345.us-east-1", "role": "ANALYST"}})),
        )
        .await;
    assert_eq!((s, dup["code"].as_str()), (409, Some("conflict")), "{dup}");
    let (_, list) = t.admin(Method::GET, "/api/v1/tokens", None).await;
    assert_eq!(list["items"].as_array().unwrap().len(), 2);

    // Pointing the token at another account without the client secret is refused: the stored
    // secret must never be sent to a server it was not given for.
    let (s, refused) = t
        .admin(
            Method::PATCH,
            &format!("/api/v1/tokens/{id}"),
            Some(json!({"settings": {"account": "org-acct", "role": "R"}})),
        )
        .await;
    assert_eq!(s, 400, "{refused}");
    assert!(
        refused["message"]
            .as_str()
            .unwrap()
            .contains("client secret again"),
        "{refused}"
    );
    // PATCH: change fields, rotate secrets, version checks.
    let (s, patched) = t
        .admin(
            Method::PATCH,
            &format!("/api/v1/tokens/{id}"),
            Some(json!({"client_id": "new-id", "client_secret": "first-SEEDED-3", "client_secret_2": "second-SEEDED-2", "settings": {"account": "org-acct", "role": "R"}, "version": 1})),
        )
        .await;
    assert_eq!(s, 200, "{patched}");
    assert_eq!(patched["client_id"], "new-id");
    assert_eq!(patched["client_secret_2_set"], true);
    assert_eq!(patched["version"], 2);
    assert_eq!(patched["settings"]["account"], "org-acct");
    let (s, stale) = t
        .admin(
            Method::PATCH,
            &format!("/api/v1/tokens/{id}"),
            Some(json!({"client_id": "x", "version": 1})),
        )
        .await;
    assert_eq!((s, stale["code"].as_str()), (409, Some("version_mismatch")));
    let (s, cleared) = t
        .admin(
            Method::PATCH,
            &format!("/api/v1/tokens/{id}"),
            Some(json!({"client_secret_2": null})),
        )
        .await;
    assert_eq!(
        (s, cleared["client_secret_2_set"].as_bool()),
        (200, Some(false))
    );
    assert_eq!(cleared["client_id"], "new-id", "omitted fields are kept");

    // Apps: rename, change tokens, stale version.
    let (s, a) = t
        .admin(
            Method::PATCH,
            &format!("/api/v1/apps/{app_id}"),
            Some(json!({"name": "sales", "tokens": ["b", "a", "b"]})),
        )
        .await;
    assert_eq!(s, 200, "{a}");
    assert_eq!(a["tokens"], json!(["a", "b"]));
    let (s, _) = t
        .admin(
            Method::PATCH,
            &format!("/api/v1/apps/{app_id}"),
            Some(json!({"name": "x", "version": 1})),
        )
        .await;
    assert_eq!(s, 409);
    // The app-level token now shows the new app name.
    let (_, got) = t
        .admin(Method::GET, &format!("/api/v1/tokens/{id}"), None)
        .await;
    assert_eq!(got["app"], "sales");

    // DELETE: 204, then 404; deleting the app removes its app-level token, keeps the global one.
    let (s, _) = t
        .admin(Method::DELETE, &format!("/api/v1/apps/{app_id}"), None)
        .await;
    assert_eq!(s, 204);
    let (s, gone) = t
        .admin(Method::GET, &format!("/api/v1/apps/{app_id}"), None)
        .await;
    assert_eq!((s, gone["code"].as_str()), (404, Some("not_found")));
    let (s, _) = t
        .admin(Method::GET, &format!("/api/v1/tokens/{id}"), None)
        .await;
    assert_eq!(s, 404);
    let gid = global["id"].as_str().unwrap();
    let (s, _) = t
        .admin(Method::DELETE, &format!("/api/v1/tokens/{gid}"), None)
        .await;
    assert_eq!(s, 204);
    let (s, _) = t
        .admin(Method::DELETE, &format!("/api/v1/tokens/{gid}"), None)
        .await;
    assert_eq!(s, 404);

    // R27: every change left an audit record with actor, object and action, and no secret.
    let events = t.ctx.store.list_audit(&Default::default()).await.unwrap();
    let actions: Vec<_> = events.iter().map(|e| e.action.as_str()).collect();
    for a in [
        "app.create",
        "token.create",
        "token.update",
        "app.update",
        "app.delete",
        "token.delete",
    ] {
        assert!(actions.contains(&a), "no {a} in {actions:?}");
    }
    assert!(
        events
            .iter()
            .filter(|e| e.action != "auth.denied")
            .all(|e| e.actor == "admin:bootstrap")
    );
    let dump = format!("{events:?}");
    assert!(
        !dump.contains("SEEDED") && !dump.contains(api_key),
        "secret in audit: {dump}"
    );
}

#[tokio::test]
async fn health_and_readiness() {
    let t = spawn(Db::Sqlite).await;
    let (s, body, _) = t.send(Method::GET, "/healthz", None, None).await;
    assert_eq!((s, body["status"].as_str()), (200, Some("ok")));
    let (s, body, _) = t.send(Method::GET, "/readyz", None, None).await;
    assert_eq!((s, body["status"].as_str()), (200, Some("ready")));
    // R16: database gone -> not ready, with the JSON error shape; health stays up.
    t.ctx.store.close().await;
    let (s, body, _) = t.send(Method::GET, "/readyz", None, None).await;
    assert_eq!(
        (s, body["code"].as_str()),
        (503, Some("unavailable")),
        "{body}"
    );
    let (s, _, _) = t.send(Method::GET, "/healthz", None, None).await;
    assert_eq!(s, 200);
}

#[tokio::test]
async fn r24_every_api_answer_is_no_store() {
    let t = spawn(Db::Sqlite).await;
    let (app, _) = t.seed().await;
    assert!(app["api_key"].is_string());
    for (method, path, bearer) in [
        (Method::GET, "/api/v1/apps", Some(crate::support::ADMIN)),
        (Method::GET, "/api/v1/tokens", Some(crate::support::ADMIN)),
        (Method::GET, "/api/v1/apps", None),
        (Method::GET, "/nope", None),
    ] {
        let (_, _, h) = t.send(method, path, bearer, None).await;
        assert_eq!(h.get("cache-control").unwrap(), "no-store", "{path}");
    }
    // And the response that carries the API key.
    let res = t
        .http
        .post(t.url("/api/v1/apps"))
        .bearer_auth(crate::support::ADMIN)
        .json(&json!({"name": "second"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    assert_eq!(res.headers().get("cache-control").unwrap(), "no-store");
}
