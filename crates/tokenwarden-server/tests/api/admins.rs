//! Issue 11 item 9 over the JSON API: admins (list, add, reset a password, remove, never the
//! last), admin tokens (list, create once, revoke, never the one in use), renaming a token apps
//! use (refused unless their bindings move with it), clearing the second secret slot, deleting
//! an app with its keys and app-level tokens.

use crate::support::{Db, TestApp, spawn};
use reqwest::Method;
use serde_json::json;
use tokenwarden_domain::{AppId, AppState, StopReason, TokenId};
use tokenwarden_store::AuditFilter;

const PASSWORD: &str = "correct horse battery staple";

async fn audited(t: &TestApp, action: &str) -> Vec<tokenwarden_store::AuditEvent> {
    t.ctx
        .store
        .list_audit(&AuditFilter {
            action: Some(action.into()),
            limit: 100,
            ..AuditFilter::default()
        })
        .await
        .unwrap()
}

/// Signs in to the UI as `user`; the session cookie, or `None` if refused.
async fn ui_login(t: &TestApp, user: &str, password: &str) -> Option<String> {
    let res = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .post(t.url("/login"))
        .form(&[("username", user), ("password", password)])
        .send()
        .await
        .unwrap();
    res.headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .find(|c| c.starts_with("tw_session=") && !c.starts_with("tw_session=;"))
        .map(|c| c.split(';').next().unwrap().to_owned())
}

async fn signed_in(t: &TestApp, cookie: &str) -> bool {
    let res = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .get(t.url("/tokens"))
        .header("cookie", cookie)
        .send()
        .await
        .unwrap();
    res.status() == 200
}

async fn issue11_admins_are_listed_added_reset_and_removed_but_never_the_last(db: Db) {
    let t = spawn(db).await;
    for (user, expect) in [
        ("alice", 201),
        ("bob", 201),
        ("carol", 201),
        ("alice", 409),
        ("not a name", 400),
    ] {
        let (s, a) = t
            .admin(
                Method::POST,
                "/api/v1/admins",
                Some(json!({"username": user, "password": PASSWORD})),
            )
            .await;
        assert_eq!(s, expect, "{user}: {a}");
        if s == 201 {
            assert_eq!(a["username"], user);
            assert!(!a.to_string().contains("argon2"), "{a}");
        }
    }
    let (s, a) = t
        .admin(
            Method::POST,
            "/api/v1/admins",
            Some(json!({"username": "dave", "password": "too short"})),
        )
        .await;
    assert_eq!(s, 400, "{a}");
    assert!(
        a["message"].as_str().unwrap().contains("at least 12"),
        "{a}"
    );

    // One page at a time, by username.
    let (s, page) = t.admin(Method::GET, "/api/v1/admins?limit=2", None).await;
    assert_eq!(s, 200, "{page}");
    assert_eq!(page["items"].as_array().unwrap().len(), 2);
    let cursor = page["next_cursor"].as_str().unwrap();
    let (_, rest) = t
        .admin(
            Method::GET,
            &format!("/api/v1/admins?limit=2&cursor={cursor}"),
            None,
        )
        .await;
    let names: Vec<_> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .chain(rest["items"].as_array().unwrap())
        .map(|a| a["username"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(names, ["alice", "bob", "carol"]);
    assert!(rest["next_cursor"].is_null());
    let (s, bob) = t.admin(Method::GET, "/api/v1/admins/bob", None).await;
    assert_eq!(s, 200);
    let (s, same) = t
        .admin(
            Method::GET,
            &format!("/api/v1/admins/{}", bob["id"].as_str().unwrap()),
            None,
        )
        .await;
    assert_eq!((s, same["username"].as_str()), (200, Some("bob")));

    // A reset: the old password and every session of bob's end; the new one works.
    let bobs_session = ui_login(&t, "bob", PASSWORD).await.unwrap();
    assert!(signed_in(&t, &bobs_session).await);
    let (s, e) = t
        .admin(
            Method::PUT,
            "/api/v1/admins/bob/password",
            Some(json!({"password": "short"})),
        )
        .await;
    assert_eq!(s, 400, "{e}");
    assert!(
        signed_in(&t, &bobs_session).await,
        "a refused reset changes nothing"
    );
    let new_password = "a brand new passphrase";
    let (s, e) = t
        .admin(
            Method::PUT,
            "/api/v1/admins/bob/password",
            Some(json!({"password": new_password})),
        )
        .await;
    assert_eq!(s, 200, "{e}");
    assert!(!signed_in(&t, &bobs_session).await, "bob's sessions ended");
    assert!(ui_login(&t, "bob", PASSWORD).await.is_none());
    assert!(ui_login(&t, "bob", new_password).await.is_some());
    let (s, _) = t
        .admin(
            Method::PUT,
            "/api/v1/admins/nobody/password",
            Some(json!({"password": new_password})),
        )
        .await;
    assert_eq!(s, 404);
    let reset = audited(&t, "admin.password").await;
    assert_eq!(reset.len(), 1);
    assert_eq!(reset[0].object_name.as_deref(), Some("bob"));
    assert!(!reset[0].detail.to_string().contains(new_password));

    // Removing: sessions end; never the last admin, and the message says why.
    let carols = ui_login(&t, "carol", PASSWORD).await.unwrap();
    for user in ["alice", "carol"] {
        let (s, e) = t
            .admin(Method::DELETE, &format!("/api/v1/admins/{user}"), None)
            .await;
        assert_eq!(s, 204, "{e}");
    }
    assert!(!signed_in(&t, &carols).await, "carol's session ended");
    let (s, e) = t.admin(Method::DELETE, "/api/v1/admins/bob", None).await;
    assert_eq!(s, 409, "{e}");
    assert_eq!(e["code"], "conflict");
    assert!(e["message"].as_str().unwrap().contains("last admin"), "{e}");
    let (s, _) = t.admin(Method::DELETE, "/api/v1/admins/alice", None).await;
    assert_eq!(s, 404);
    let (_, page) = t.admin(Method::GET, "/api/v1/admins", None).await;
    assert_eq!(page["items"].as_array().unwrap().len(), 1);
    assert!(ui_login(&t, "bob", new_password).await.is_some());
    assert_eq!(audited(&t, "admin.remove").await.len(), 2);

    // An app's key may not manage admins.
    let (_, app) = t
        .admin(Method::POST, "/api/v1/apps", Some(json!({"name": "a"})))
        .await;
    let (s, _, _) = t
        .send(
            Method::GET,
            "/api/v1/admins",
            Some(app["api_key"].as_str().unwrap()),
            None,
        )
        .await;
    assert_eq!(s, 403);
}

async fn issue11_admin_tokens_are_created_once_listed_and_revoked_but_not_by_themselves(db: Db) {
    let t = spawn(db).await;
    let (s, created) = t
        .admin(
            Method::POST,
            "/api/v1/admin-tokens",
            Some(json!({"label": "deploy"})),
        )
        .await;
    assert_eq!(s, 201, "{created}");
    let token = created["admin_token"].as_str().unwrap().to_owned();
    let id = created["id"].as_str().unwrap().to_owned();
    assert!(token.starts_with("tw_adm_"), "{created}");
    // An empty POST makes one labelled `api` (a second later: the list is oldest first).
    t.clock.advance(chrono::Duration::seconds(1));
    let (s, other) = t.admin(Method::POST, "/api/v1/admin-tokens", None).await;
    assert_eq!((s, other["label"].as_str()), (201, Some("api")));

    // The new token works, and is listed without its secret.
    let (s, list, _) = t
        .send(Method::GET, "/api/v1/admin-tokens", Some(&token), None)
        .await;
    assert_eq!(s, 200, "{list}");
    assert_eq!(list["items"].as_array().unwrap().len(), 2);
    assert_eq!(list["items"][0]["label"], "deploy");
    assert!(list["items"][0]["revoked_at"].is_null());
    assert!(!list.to_string().contains(&token[10..]), "{list}");
    let (s, one) = t
        .admin(Method::GET, &format!("/api/v1/admin-tokens/{id}"), None)
        .await;
    assert_eq!((s, one["label"].as_str()), (200, Some("deploy")));

    // A token cannot revoke itself (the caller would lock itself out); another one can.
    let (s, e, _) = t
        .send(
            Method::DELETE,
            &format!("/api/v1/admin-tokens/{id}"),
            Some(&token),
            None,
        )
        .await;
    assert_eq!(s, 409, "{e}");
    assert!(
        e["message"].as_str().unwrap().contains("this request"),
        "{e}"
    );
    let (s, _, _) = t
        .send(Method::GET, "/api/v1/admin-tokens", Some(&token), None)
        .await;
    assert_eq!(s, 200, "still works");
    let (s, e) = t
        .admin(Method::DELETE, &format!("/api/v1/admin-tokens/{id}"), None)
        .await;
    assert_eq!(s, 204, "{e}");
    let (s, _, _) = t
        .send(Method::GET, "/api/v1/admin-tokens", Some(&token), None)
        .await;
    assert_eq!(s, 401, "revoked: refused at once");
    let (_, one) = t
        .admin(Method::GET, &format!("/api/v1/admin-tokens/{id}"), None)
        .await;
    assert!(one["revoked_at"].is_string(), "{one}");
    assert_eq!(audited(&t, "admin_token.revoke").await.len(), 1);

    // An app's key is no admin token: not found here.
    let (_, app) = t
        .admin(Method::POST, "/api/v1/apps", Some(json!({"name": "a"})))
        .await;
    let app_key = app["api_key_id"].as_str().unwrap();
    for method in [Method::GET, Method::DELETE] {
        let (s, _) = t
            .admin(method, &format!("/api/v1/admin-tokens/{app_key}"), None)
            .await;
        assert_eq!(s, 404);
    }
}

async fn token_of(t: &TestApp, name: &str, app: Option<&str>) -> String {
    let mut body = json!({"name": name, "provider": "github",
        "client_id": "id-1", "client_secret": "secret-1", "client_secret_2": "secret-2"});
    if let Some(a) = app {
        body["app"] = json!(a);
    }
    let (s, tok) = t.admin(Method::POST, "/api/v1/tokens", Some(body)).await;
    assert_eq!(s, 201, "{tok}");
    tok["id"].as_str().unwrap().to_owned()
}

async fn app_tokens(t: &TestApp, app: &str) -> serde_json::Value {
    t.admin(Method::GET, &format!("/api/v1/apps/{app}"), None)
        .await
        .1["tokens"]
        .clone()
}

/// Renaming a token apps fetch by name: refused naming them, unless their bindings move with
/// it; apps that reach another token of that name (their own) are left alone; an app stopped
/// waiting for the old name now waits for the new one.
async fn issue11_renaming_a_token_apps_use_moves_them_or_is_refused_naming_them(db: Db) {
    let t = spawn(db).await;
    for (app, tokens) in [
        ("billing", json!(["gh", "other"])),
        ("reports", json!(["gh"])),
        ("own", json!(["gh"])),
        ("bystander", json!(["unrelated"])),
    ] {
        let (s, a) = t
            .admin(
                Method::POST,
                "/api/v1/apps",
                Some(json!({"name": app, "tokens": tokens})),
            )
            .await;
        assert_eq!(s, 201, "{a}");
    }
    let global = token_of(&t, "gh", None).await;
    let owns = token_of(&t, "gh", Some("own")).await; // `own` reads its own gh
    let unused = token_of(&t, "spare", None).await;

    // Stopped waiting for gh: after the rename it waits for the new name.
    let reports = t
        .ctx
        .store
        .get_app_by_name(&tokenwarden_domain::AppName::parse("reports").unwrap())
        .await
        .unwrap();
    let mut stopped = reports.clone();
    stopped.state = AppState::Stopped;
    stopped.stop_reason = Some(StopReason::WaitingForToken { token: "gh".into() });
    t.ctx
        .store
        .update_app(&stopped, t.clock_now())
        .await
        .unwrap();

    let rename = |id: String, body: serde_json::Value| {
        let t = &t;
        async move {
            t.admin(Method::PATCH, &format!("/api/v1/tokens/{id}"), Some(body))
                .await
        }
    };
    let (s, e) = rename(global.clone(), json!({"name": "github-main"})).await;
    assert_eq!(s, 409, "{e}");
    let msg = e["message"].as_str().unwrap();
    assert!(
        msg.contains("billing") && msg.contains("reports") && !msg.contains("own"),
        "{msg}"
    );
    assert!(msg.contains("rebind_apps"), "{msg}");
    let (_, still) = t
        .admin(Method::GET, &format!("/api/v1/tokens/{global}"), None)
        .await;
    assert_eq!(still["name"], "gh", "refused: nothing changed");

    // An app already using the new name would merge two bindings: refused.
    let (s, e) = rename(
        global.clone(),
        json!({"name": "other", "rebind_apps": true}),
    )
    .await;
    assert_eq!(s, 409, "{e}");
    assert!(e["message"].as_str().unwrap().contains("billing"), "{e}");

    let (s, renamed) = rename(
        global.clone(),
        json!({"name": "github-main", "rebind_apps": true}),
    )
    .await;
    assert_eq!(s, 200, "{renamed}");
    assert_eq!(renamed["name"], "github-main");
    assert_eq!(
        app_tokens(&t, "billing").await,
        json!(["github-main", "other"])
    );
    assert_eq!(app_tokens(&t, "reports").await, json!(["github-main"]));
    assert_eq!(
        app_tokens(&t, "own").await,
        json!(["gh"]),
        "reads its own gh"
    );
    assert_eq!(app_tokens(&t, "bystander").await, json!(["unrelated"]));
    let reports = t.ctx.store.get_app(reports.id).await.unwrap();
    assert_eq!(
        reports.stop_reason,
        Some(StopReason::WaitingForToken {
            token: "github-main".into()
        })
    );
    let audit = audited(&t, "token.update").await;
    assert_eq!(
        audit[0].detail["rebound_apps"],
        json!(["billing", "reports"])
    );
    assert_eq!(audited(&t, "app.update").await.len(), 2);

    // An app-level token: its owner moves with it. A token no app uses renames freely.
    let (s, e) = rename(owns.clone(), json!({"name": "gh-own"})).await;
    assert_eq!(s, 409, "{e}");
    let (s, _) = rename(owns, json!({"name": "gh-own", "rebind_apps": true})).await;
    assert_eq!(s, 200);
    assert_eq!(app_tokens(&t, "own").await, json!(["gh-own"]));
    let (s, e) = rename(unused, json!({"name": "spare-2"})).await;
    assert_eq!(s, 200, "{e}");
}

/// The second client-secret slot is cleared with `null`; the first stays.
async fn issue11_the_second_secret_slot_is_cleared(db: Db) {
    let t = spawn(db).await;
    let id = token_of(&t, "gh", None).await;
    let (_, before) = t
        .admin(Method::GET, &format!("/api/v1/tokens/{id}"), None)
        .await;
    assert_eq!(before["client_secret_2_set"], true);
    let (s, after) = t
        .admin(
            Method::PATCH,
            &format!("/api/v1/tokens/{id}"),
            Some(json!({"client_secret_2": null})),
        )
        .await;
    assert_eq!(s, 200, "{after}");
    assert_eq!(after["client_secret_2_set"], false);
    assert_eq!(after["client_secret_set"], true);
    let stored = t
        .ctx
        .store
        .get_token(TokenId::parse(&id).unwrap())
        .await
        .unwrap();
    assert!(stored.client_secret_2.is_none() && stored.client_secret.is_some());
}

/// Deleting an app: its keys stop working at once (even one this instance has cached), its
/// app-level tokens go with it, a global token it used stays.
async fn issue11_deleting_an_app_revokes_its_keys_and_deletes_its_own_tokens(db: Db) {
    let t = spawn(db).await;
    let (app, own) = t.seed().await;
    let global = token_of(&t, "shared", None).await;
    let key = app["api_key"].as_str().unwrap();
    let app_id = app["id"].as_str().unwrap();
    let (s, _, _) = t
        .send(
            Method::GET,
            &format!("/api/v1/apps/{app_id}"),
            Some(key),
            None,
        )
        .await;
    assert_eq!(s, 200, "the key works (and is now cached)");
    let (s, _) = t
        .admin(Method::DELETE, &format!("/api/v1/apps/{app_id}"), None)
        .await;
    assert_eq!(s, 204);
    let (s, _, _) = t
        .send(
            Method::GET,
            "/api/v1/access-tokens/snowflake-sales",
            Some(key),
            None,
        )
        .await;
    assert_eq!(s, 401, "the deleted app's key is refused at once");
    let (s, _) = t
        .admin(
            Method::GET,
            &format!("/api/v1/tokens/{}", own["id"].as_str().unwrap()),
            None,
        )
        .await;
    assert_eq!(s, 404, "its app-level token is gone");
    let (s, _) = t
        .admin(Method::GET, &format!("/api/v1/tokens/{global}"), None)
        .await;
    assert_eq!(s, 200, "a global token stays");
    assert!(
        t.ctx
            .store
            .list_api_keys(AppId::parse(app_id))
            .await
            .unwrap()
            .is_empty()
    );
}

on_both_databases!(
    issue11_admins_are_listed_added_reset_and_removed_but_never_the_last,
    issue11_admin_tokens_are_created_once_listed_and_revoked_but_not_by_themselves,
    issue11_renaming_a_token_apps_use_moves_them_or_is_refused_naming_them,
    issue11_the_second_secret_slot_is_cleared,
    issue11_deleting_an_app_revokes_its_keys_and_deletes_its_own_tokens,
);
