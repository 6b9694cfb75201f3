//! Issue 11 item 9 in the web UI, by form posts as a browser sends them: the Admins screen
//! (add, reset a password, change your own, remove; admin tokens created once through
//! post/redirect/get and revoked), renaming a token, clearing the second secret, editing a
//! channel, deleting an app.

use super::{Browser, PASSWORD, Res, USER, alert, client, done, login, make_admin, sign_in};
use crate::support::{Db, TestApp, spawn};
use reqwest::Method;
use serde_json::json;

fn location(r: &Res) -> &str {
    r.header("location")
}

async fn admin_id(t: &TestApp, username: &str) -> String {
    t.ctx
        .store
        .get_admin_by_username(username)
        .await
        .unwrap()
        .id
}

async fn signed_in(t: &TestApp, b: &Browser) -> bool {
    b.get(t, "/tokens").await.status == 200
}

async fn browser_of(t: &TestApp, user: &str, password: &str) -> Option<Browser> {
    let r = login(t, user, password).await;
    let (value, _) = r.session_cookie()?;
    let cookie = format!("tw_session={value}");
    let page = done(client().get(t.url("/tokens")).header("cookie", &cookie)).await;
    Some(Browser {
        csrf: super::csrf_of(&page.body),
        cookie,
    })
}

#[tokio::test]
async fn issue11_admins_are_added_reset_and_removed_from_the_admins_screen() {
    let t = spawn(Db::Sqlite).await;
    make_admin(&t).await;
    let b = sign_in(&t).await;
    let page = b.get(&t, "/admins").await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains(USER) && page.body.contains("(you)"));
    assert!(page.body.contains("href=\"/admins\""), "in the nav");

    // Adding: the password twice, the rules of the core; nothing is saved on a mistake.
    for (user, pw, pw2, why) in [
        (
            "bob",
            "a long passphrase 1",
            "a long passphrase 2",
            "differ",
        ),
        ("bob", "short", "short", "at least 12"),
        (
            "bad name!",
            "a long passphrase 1",
            "a long passphrase 1",
            "username",
        ),
        (USER, "a long passphrase 1", "a long passphrase 1", "exists"),
    ] {
        let r = b
            .post(
                &t,
                "/admins",
                &[("username", user), ("password", pw), ("password2", pw2)],
            )
            .await;
        assert_eq!(r.status, 422, "{user}: {}", r.body);
        assert!(alert(&r.body).contains(why), "{why}: {}", alert(&r.body));
    }
    assert_eq!(t.ctx.store.count_admins().await.unwrap(), 1);
    let bob_pw = "bobs first passphrase";
    let r = b
        .post(
            &t,
            "/admins",
            &[
                ("username", "bob"),
                ("password", bob_pw),
                ("password2", bob_pw),
            ],
        )
        .await;
    assert_eq!(
        (r.status, location(&r)),
        (303, "/admins?done=added"),
        "{}",
        r.body
    );
    assert!(b.get(&t, "/admins").await.body.contains(">bob</a>"));
    let bob = browser_of(&t, "bob", bob_pw).await.unwrap();
    let bob_id = admin_id(&t, "bob").await;
    let alice_id = admin_id(&t, USER).await;

    // Resetting bob's password ends his sessions; the new one works, the old one not.
    let page = b.get(&t, &format!("/admins/{bob_id}")).await;
    assert!(page.body.contains("Reset the password") && !page.body.contains("name=\"current\""));
    let new_pw = "bobs second passphrase";
    let r = b
        .post(
            &t,
            &format!("/admins/{bob_id}/password"),
            &[("password", new_pw), ("password2", "something else")],
        )
        .await;
    assert_eq!(r.status, 422);
    assert!(signed_in(&t, &bob).await, "a refused reset changes nothing");
    let r = b
        .post(
            &t,
            &format!("/admins/{bob_id}/password"),
            &[("password", new_pw), ("password2", new_pw)],
        )
        .await;
    assert_eq!(r.status, 303, "{}", r.body);
    assert!(!signed_in(&t, &bob).await, "bob was signed out");
    assert!(browser_of(&t, "bob", bob_pw).await.is_none());
    let bob = browser_of(&t, "bob", new_pw).await.unwrap();

    // Your own password needs the current one; you stay signed in, your other sessions end.
    let other_alice = browser_of(&t, USER, PASSWORD).await.unwrap();
    let mine = b.get(&t, &format!("/admins/{alice_id}")).await;
    assert!(mine.body.contains("name=\"current\""));
    assert!(mine.body.contains("cannot remove your own account"));
    let alice_new = "alices new passphrase";
    for current in ["", "not my password"] {
        let r = b
            .post(
                &t,
                &format!("/admins/{alice_id}/password"),
                &[
                    ("current", current),
                    ("password", alice_new),
                    ("password2", alice_new),
                ],
            )
            .await;
        assert_eq!(r.status, 422, "{}", r.body);
        assert!(
            alert(&r.body).contains("current password"),
            "{}",
            alert(&r.body)
        );
    }
    let r = b
        .post(
            &t,
            &format!("/admins/{alice_id}/password"),
            &[
                ("current", PASSWORD),
                ("password", alice_new),
                ("password2", alice_new),
            ],
        )
        .await;
    assert_eq!(r.status, 303, "{}", r.body);
    assert!(signed_in(&t, &b).await, "this session stays");
    assert!(
        !signed_in(&t, &other_alice).await,
        "the other session ended"
    );

    // Removing yourself is refused with the reason; bob can remove alice, not himself.
    let r = b.post(&t, &format!("/admins/{alice_id}/remove"), &[]).await;
    assert_eq!(r.status, 409, "{}", r.body);
    assert!(
        alert(&r.body).contains("your own account"),
        "{}",
        alert(&r.body)
    );
    let r = b.post(&t, &format!("/admins/{bob_id}/remove"), &[]).await;
    assert_eq!((r.status, location(&r)), (303, "/admins?done=removed"));
    assert!(!signed_in(&t, &bob).await, "bob's session ended with him");
    assert!(browser_of(&t, "bob", new_pw).await.is_none());
    assert_eq!(t.ctx.store.count_admins().await.unwrap(), 1);
    assert!(!b.get(&t, "/admins").await.body.contains(">bob</a>"));
}

/// The set-cookie line that carries the shown-once page.
fn shown_cookie(r: &Res) -> Option<String> {
    r.headers
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .find(|c| c.starts_with("tw_shown_once="))
}

#[tokio::test]
async fn issue11_admin_tokens_are_shown_once_by_post_redirect_get_and_revoked() {
    let t = spawn(Db::Sqlite).await;
    make_admin(&t).await;
    let b = sign_in(&t).await;
    let r = b.post(&t, "/admin-tokens", &[("label", "ci")]).await;
    assert_eq!(r.status, 303, "{}", r.body);
    let page = location(&r).to_owned();
    assert!(
        page.starts_with("/shown-once?secret=admin-token&of="),
        "{page}"
    );
    assert!(
        !r.body.contains("tw_adm_"),
        "the POST's answer holds no secret"
    );
    let set = shown_cookie(&r).unwrap();
    assert!(
        set.contains("HttpOnly") && set.contains("SameSite=Strict") && set.contains("Max-Age=300"),
        "{set}"
    );
    let value = set.split(';').next().unwrap().to_owned();
    assert!(!value.contains("tw_adm_"), "sealed, not the token");
    let with_it = format!("{}; {value}", b.cookie);
    let shown = done(
        client()
            .get(t.url("/shown-once"))
            .header("cookie", &with_it),
    )
    .await;
    assert_eq!(shown.status, 200, "{}", shown.body);
    let start = shown.body.find("tw_adm_").unwrap();
    let token = shown.body[start..start + shown.body[start..].find('"').unwrap()].to_owned();
    let cleared = shown_cookie(&shown).unwrap();
    assert!(cleared.contains("Max-Age=0"), "{cleared}");
    let (s, _, _) = t
        .send(Method::GET, "/api/v1/admin-tokens", Some(&token), None)
        .await;
    assert_eq!(s, 200, "the token shown works");

    // A reload (the browser dropped the cookie) shows no secret and makes no token; neither
    // does a replay of the cookie, nor the cookie in another session.
    let reload = b.get(&t, &page).await;
    assert_eq!(reload.status, 410);
    assert!(!reload.body.contains("tw_adm_") && reload.body.contains("shown once"));
    // It says which secret it was, and how to get a working one.
    assert!(
        reload.body.contains("The admin token “ci”") && reload.body.contains("rotate it"),
        "{}",
        reload.body
    );
    assert!(reload.body.contains(r#"href="/admins#tokens-h""#));
    let replay = done(
        client()
            .get(t.url("/shown-once"))
            .header("cookie", &with_it),
    )
    .await;
    assert_eq!(replay.status, 410);
    assert!(!replay.body.contains(&token));
    t.clock.advance(chrono::Duration::seconds(1)); // the list is oldest first
    let r = b.post(&t, "/admin-tokens", &[("label", "other")]).await;
    let value = shown_cookie(&r)
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let elsewhere = browser_of(&t, USER, PASSWORD).await.unwrap();
    let stolen = done(
        client()
            .get(t.url("/shown-once"))
            .header("cookie", format!("{}; {value}", elsewhere.cookie)),
    )
    .await;
    assert_eq!(stolen.status, 410, "sealed for the session that made it");
    assert!(!stolen.body.contains("tw_adm_"));
    let (_, list) = t.admin(Method::GET, "/api/v1/admin-tokens", None).await;
    assert_eq!(list["items"].as_array().unwrap().len(), 2, "{list}");

    // Listed by label, never the token; revoked from the page.
    let page = b.get(&t, "/admins").await;
    assert!(page.body.contains(">ci<") && !page.body.contains(&token));
    assert_eq!(list["items"][0]["label"], "ci");
    let id = list["items"][0]["id"].as_str().unwrap();
    let r = b.post(&t, &format!("/admin-tokens/{id}/revoke"), &[]).await;
    assert_eq!((r.status, location(&r)), (303, "/admins?done=revoked"));
    let (s, _, _) = t
        .send(Method::GET, "/api/v1/admin-tokens", Some(&token), None)
        .await;
    assert_eq!(s, 401, "revoked at once");
    assert!(b.get(&t, "/admins").await.body.contains("revoked"));
    let r = b
        .post(&t, "/admin-tokens", &[("label", "bad label!!")])
        .await;
    assert_eq!(r.status, 422, "{}", r.body);
}

#[tokio::test]
async fn issue11_tokens_are_renamed_second_secrets_cleared_channels_edited_apps_deleted() {
    let t = spawn(Db::Sqlite).await;
    make_admin(&t).await;
    let b = sign_in(&t).await;
    let (app, token) = t.seed().await;
    let app_id = app["id"].as_str().unwrap();
    let id = token["id"].as_str().unwrap();

    // Rename: the form names the app that fetches it; the app moves with it.
    let form = b.get(&t, &format!("/tokens/{id}/rename")).await;
    assert_eq!(form.status, 200);
    assert!(form.body.contains("sales-invoice") && form.body.contains("Rename and move 1 app"));
    assert!(
        b.get(&t, &format!("/tokens/{id}"))
            .await
            .body
            .contains(&format!("/tokens/{id}/rename"))
    );
    let r = b
        .post(&t, &format!("/tokens/{id}/rename"), &[("name", "Not OK!")])
        .await;
    assert_eq!(r.status, 422);
    let r = b
        .post(&t, &format!("/tokens/{id}/rename"), &[("name", "sf-sales")])
        .await;
    assert_eq!(
        (r.status, location(&r)),
        (303, format!("/tokens/{id}").as_str())
    );
    let (_, a) = t
        .admin(Method::GET, &format!("/api/v1/apps/{app_id}"), None)
        .await;
    assert_eq!(a["tokens"], json!(["sf-sales"]));

    // The second secret slot: set, then cleared from the page.
    let (s, _) = t
        .admin(
            Method::PATCH,
            &format!("/api/v1/tokens/{id}"),
            Some(json!({"client_secret_2": "second-secret-value"})),
        )
        .await;
    assert_eq!(s, 200);
    assert!(
        b.get(&t, &format!("/tokens/{id}"))
            .await
            .body
            .contains(">Clear the second secret<")
    );
    let r = b
        .post(&t, &format!("/tokens/{id}/client-secret-2/clear"), &[])
        .await;
    assert_eq!(r.status, 303);
    assert!(location(&r).ends_with("/edit?done=cleared"));
    let (_, tok) = t
        .admin(Method::GET, &format!("/api/v1/tokens/{id}"), None)
        .await;
    assert_eq!(
        (&tok["client_secret_2_set"], &tok["client_secret_set"]),
        (&json!(false), &json!(true))
    );

    // A channel edited beyond enable/disable.
    let (_, ch) = t
        .admin(
            Method::POST,
            "/api/v1/notification-channels",
            Some(json!({"name": "ops", "kind": "webhook", "url": "http://127.0.0.1:9/a"})),
        )
        .await;
    let ch_id = ch["id"].as_str().unwrap();
    let form = b.get(&t, &format!("/notifications/{ch_id}/edit")).await;
    assert_eq!(form.status, 200);
    assert!(form.body.contains("http://127.0.0.1:9/a"));
    let r = b
        .post(
            &t,
            &format!("/notifications/{ch_id}/edit"),
            &[("name", "ops"), ("url", "not a url"), ("enabled", "true")],
        )
        .await;
    assert_eq!(r.status, 422, "{}", r.body);
    let r = b
        .post(
            &t,
            &format!("/notifications/{ch_id}/edit"),
            &[
                ("name", "ops pager"),
                ("url", "http://127.0.0.1:9/b"),
                ("events", "token.expiring"),
                ("events", "token.expired"),
            ],
        )
        .await;
    assert_eq!(r.status, 303, "{}", r.body);
    let (_, ch) = t
        .admin(Method::GET, "/api/v1/notification-channels", None)
        .await;
    let ch = &ch["items"][0];
    assert_eq!(
        (&ch["name"], &ch["url"], &ch["events"], &ch["enabled"]),
        (
            &json!("ops pager"),
            &json!("http://127.0.0.1:9/b"),
            &json!(["token.expiring", "token.expired"]),
            &json!(false)
        ),
        "{ch}"
    );

    // Deleting the app: its key stops working, its app-level token goes.
    let key = app["api_key"].as_str().unwrap();
    assert!(
        b.get(&t, &format!("/apps/{app_id}"))
            .await
            .body
            .contains("Delete app")
    );
    let r = b.post(&t, &format!("/apps/{app_id}/delete"), &[]).await;
    assert_eq!((r.status, location(&r)), (303, "/apps"));
    let (s, _, _) = t
        .send(
            Method::GET,
            &format!("/api/v1/apps/{app_id}"),
            Some(key),
            None,
        )
        .await;
    assert_eq!(s, 401);
    let (s, _) = t
        .admin(Method::GET, &format!("/api/v1/tokens/{id}"), None)
        .await;
    assert_eq!(s, 404);
    assert_eq!(b.get(&t, &format!("/apps/{app_id}")).await.status, 404);
}
