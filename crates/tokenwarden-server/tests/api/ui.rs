//! The admin web UI over HTTP: setup link, sign-in, sessions, CSRF, security headers, the
//! token countdowns, the token form's paste box, app keys, and GETs that change nothing.

use crate::support::{Db, TestApp, spawn};

mod admin_screens;
mod lists;
mod words;
use base64::Engine as _;
use reqwest::header::HeaderMap;
use tokenwarden_domain::{Clock, TokenId, TokenStatus};
use tokenwarden_store::AuditFilter;

const USER: &str = "alice";
const PASSWORD: &str = "correct horse battery staple";

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

struct Res {
    status: u16,
    headers: HeaderMap,
    body: String,
}

async fn done(r: reqwest::RequestBuilder) -> Res {
    let res = r.send().await.unwrap();
    Res {
        status: res.status().as_u16(),
        headers: res.headers().clone(),
        body: res.text().await.unwrap(),
    }
}

impl Res {
    fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .map(|v| v.to_str().unwrap())
            .unwrap_or("")
    }

    /// The `tw_session` cookie this response sets, and its whole Set-Cookie line.
    fn session_cookie(&self) -> Option<(String, String)> {
        self.headers
            .get_all("set-cookie")
            .iter()
            .map(|v| v.to_str().unwrap().to_owned())
            .find(|c| c.starts_with("tw_session="))
            .map(|line| {
                let value = line["tw_session=".len()..]
                    .split(';')
                    .next()
                    .unwrap()
                    .to_owned();
                (value, line)
            })
    }
}

/// A signed-in browser: its cookie and the session's CSRF token.
struct Browser {
    cookie: String,
    csrf: String,
}

async fn make_admin(t: &TestApp) {
    tokenwarden_server::ops::admins::create_admin(&t.ctx, "test", USER, PASSWORD.to_owned().into())
        .await
        .unwrap();
}

async fn login(t: &TestApp, user: &str, password: &str) -> Res {
    done(client().post(t.url("/login")).form(&[
        ("username", user),
        ("password", password),
        ("next", "/apps"),
    ]))
    .await
}

fn csrf_of(body: &str) -> String {
    let start = body.find("data-csrf=\"").expect("page has a CSRF token") + 11;
    body[start..start + body[start..].find('"').unwrap()].to_owned()
}

async fn sign_in(t: &TestApp) -> Browser {
    let r = login(t, USER, PASSWORD).await;
    assert_eq!(r.status, 303, "{}", r.body);
    let (value, _) = r.session_cookie().unwrap();
    let cookie = format!("tw_session={value}");
    let page = done(client().get(t.url("/tokens")).header("cookie", &cookie)).await;
    assert_eq!(page.status, 200);
    Browser {
        csrf: csrf_of(&page.body),
        cookie,
    }
}

impl Browser {
    async fn get(&self, t: &TestApp, path: &str) -> Res {
        done(client().get(t.url(path)).header("cookie", &self.cookie)).await
    }

    /// Follows the redirect `r` as a browser would: with the cookies `r` set (the shown-once
    /// page travels in one). Answers the page and the cookie header it was asked with.
    async fn follow(&self, t: &TestApp, r: &Res) -> (Res, String) {
        let mut cookie = self.cookie.clone();
        for set in r.headers.get_all("set-cookie") {
            let pair = set.to_str().unwrap().split(';').next().unwrap();
            cookie.push_str("; ");
            cookie.push_str(pair);
        }
        let page = done(
            client()
                .get(t.url(r.header("location")))
                .header("cookie", &cookie),
        )
        .await;
        (page, cookie)
    }

    async fn post(&self, t: &TestApp, path: &str, form: &[(&str, &str)]) -> Res {
        let mut pairs: Vec<(&str, &str)> = form.to_vec();
        pairs.push(("csrf", &self.csrf));
        done(
            client()
                .post(t.url(path))
                .header("cookie", &self.cookie)
                .header("sec-fetch-site", "same-origin")
                .form(&pairs),
        )
        .await
    }
}

fn alert(body: &str) -> &str {
    let start = body.find("role=\"alert\">").expect("an alert") + 13;
    &body[start..start + body[start..].find('<').unwrap()]
}

#[tokio::test]
async fn the_setup_link_creates_the_first_admin_once() {
    let t = spawn(Db::Sqlite).await;
    let url = tokenwarden_server::ops::admins::setup_link(&t.ctx)
        .await
        .unwrap()
        .unwrap();
    let token = url.split("token=").nth(1).unwrap().to_owned();
    assert!(url.starts_with(&format!("{}/setup?token=", t.base)));
    let page = done(client().get(&url)).await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains("Create the first admin"));
    assert_eq!(
        done(client().get(t.url("/setup?token=wrong"))).await.status,
        403
    );
    // Too short a password is refused and creates nobody.
    let short = done(client().post(t.url("/setup")).form(&[
        ("token", token.as_str()),
        ("username", "root"),
        ("password", "short"),
        ("password2", "short"),
    ]))
    .await;
    assert_eq!(short.status, 400);
    assert!(alert(&short.body).contains("at least 12"));
    assert_eq!(t.ctx.store.count_admins().await.unwrap(), 0);

    let form = [
        ("token", token.as_str()),
        ("username", "root"),
        ("password", PASSWORD),
        ("password2", PASSWORD),
    ];
    let made = done(client().post(t.url("/setup")).form(&form)).await;
    assert_eq!(made.status, 303, "{}", made.body);
    assert!(made.session_cookie().is_some(), "signed in at once");
    assert_eq!(t.ctx.store.count_admins().await.unwrap(), 1);
    // Once only: the same link (and form) no longer work, and no new link is made.
    let again = done(client().post(t.url("/setup")).form(&form)).await;
    assert_eq!(again.status, 410);
    assert_eq!(done(client().get(&url)).await.status, 410);
    assert_eq!(t.ctx.store.count_admins().await.unwrap(), 1);
    assert!(
        tokenwarden_server::ops::admins::setup_link(&t.ctx)
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test]
async fn wrong_password_and_unknown_user_look_the_same_and_repeats_are_rate_limited() {
    let t = spawn(Db::Sqlite).await;
    make_admin(&t).await;
    let wrong = login(&t, USER, "not the password at all").await;
    let unknown = login(&t, "mallory", PASSWORD).await;
    assert_eq!(wrong.status, 401);
    assert_eq!(unknown.status, 401);
    assert_eq!(alert(&wrong.body), alert(&unknown.body));
    assert!(wrong.session_cookie().is_none());
    // Five failures from this address: the next attempt is refused even with the right password.
    for _ in 0..3 {
        assert_eq!(login(&t, USER, "still not it!!").await.status, 401);
    }
    let limited = login(&t, USER, PASSWORD).await;
    assert_eq!(limited.status, 429);
    assert!(limited.session_cookie().is_none());
    // After the window it works again.
    t.clock.advance(chrono::Duration::minutes(16));
    assert_eq!(login(&t, USER, PASSWORD).await.status, 303);

    let events = t
        .ctx
        .store
        .list_audit(&AuditFilter {
            action: Some("auth.login".into()),
            limit: 100,
            ..AuditFilter::default()
        })
        .await
        .unwrap();
    let reasons: Vec<_> = events
        .iter()
        .map(|e| {
            (
                e.outcome.as_str(),
                e.detail["reason"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(
        reasons.iter().filter(|r| r.1 == "wrong_password").count(),
        4
    );
    assert!(reasons.contains(&("denied", "unknown_user")));
    assert!(reasons.contains(&("denied", "rate_limited")));
    assert_eq!(events[0].outcome, "ok");
    assert_eq!(events[0].actor, "admin:alice");
}

/// R29 over http: HttpOnly, SameSite, no `Secure`, a new value of 256 bits at each sign-in,
/// only its hash stored (over https: `r29_behind_https_...`).
#[tokio::test]
async fn the_session_cookie_is_httponly_lax_not_secure_on_http_and_new_at_each_login() {
    let t = spawn(Db::Sqlite).await;
    make_admin(&t).await;
    let first = login(&t, USER, PASSWORD).await;
    assert_eq!(first.status, 303);
    assert_eq!(first.header("location"), "/apps");
    let (v1, line) = first.session_cookie().unwrap();
    assert!(line.contains("HttpOnly"), "{line}");
    assert!(line.contains("SameSite=Lax"), "{line}");
    assert!(line.contains("Path=/"), "{line}");
    assert!(!line.contains("Secure"), "{line}");
    assert!(v1.len() >= 43, "at least 256 bits, base64url");
    let (v2, _) = login(&t, USER, PASSWORD).await.session_cookie().unwrap();
    assert_ne!(v1, v2);
    // Only the hash is stored.
    let hash = tokenwarden_server::ops::admins::sha256_hex(&v1);
    assert!(t.ctx.store.get_session(&hash).await.is_ok());
    assert!(t.ctx.store.get_session(&v1).await.is_err());
    // An open redirect is not possible through `next`.
    let r = done(client().post(t.url("/login")).form(&[
        ("username", USER),
        ("password", PASSWORD),
        ("next", "//evil.example"),
    ]))
    .await;
    assert_eq!(r.header("location"), "/tokens");
}

/// R29: after sign-out the cookie opens nothing; idle and old sessions end.
#[tokio::test]
async fn logout_ends_the_session_and_idle_sessions_expire() {
    let t = spawn(Db::Sqlite).await;
    make_admin(&t).await;
    let b = sign_in(&t).await;
    let out = b.post(&t, "/logout", &[]).await;
    assert_eq!(out.status, 303);
    assert!(out.header("set-cookie").contains("Max-Age=0"));
    let after = b.get(&t, "/tokens").await;
    assert_eq!(after.status, 303);
    assert!(after.header("location").starts_with("/login"));

    let b = sign_in(&t).await;
    t.clock.advance(chrono::Duration::minutes(119));
    assert_eq!(b.get(&t, "/tokens").await.status, 200);
    t.clock.advance(chrono::Duration::minutes(119));
    assert_eq!(b.get(&t, "/tokens").await.status, 200, "use keeps it alive");
    t.clock.advance(chrono::Duration::minutes(121));
    assert_eq!(b.get(&t, "/tokens").await.status, 303, "2 h idle ends it");
    let b = sign_in(&t).await;
    for _ in 0..6 {
        t.clock.advance(chrono::Duration::minutes(110));
        assert_eq!(b.get(&t, "/apps").await.status, 200);
    }
    t.clock.advance(chrono::Duration::minutes(110));
    assert_eq!(
        b.get(&t, "/apps").await.status,
        303,
        "12 h is the most a session lives"
    );
}

#[tokio::test]
async fn every_page_needs_a_session() {
    let t = spawn(Db::Sqlite).await;
    let (_, token) = t.seed().await;
    let id = token["id"].as_str().unwrap();
    for path in [
        "/".to_owned(),
        "/tokens".into(),
        "/tokens/new".into(),
        format!("/tokens/{id}"),
        format!("/tokens/{id}/edit"),
        format!("/tokens/{id}/status"),
        "/apps".into(),
        "/notifications".into(),
        "/audit".into(),
    ] {
        let r = done(client().get(t.url(&path))).await;
        assert_eq!(r.status, 303, "{path}");
        assert!(r.header("location").starts_with("/login"), "{path}");
    }
    let r = done(client().get(t.url("/tokens")).header("hx-request", "true")).await;
    assert_eq!(r.status, 401);
    assert!(r.header("x-tokenwarden-login").starts_with("/login"));
    let r = done(
        client()
            .post(t.url("/apps"))
            .form(&[("name", "sneaky"), ("tokens", "")]),
    )
    .await;
    assert_eq!(r.status, 303);
    assert_eq!(t.ctx.store.list_apps().await.unwrap().len(), 1);
    // A forged cookie is no session either.
    let r = done(
        client()
            .get(t.url("/tokens"))
            .header("cookie", "tw_session=forged"),
    )
    .await;
    assert_eq!(r.status, 303);
}

/// R30: a POST without the CSRF token, with a wrong or another session's token, or from another
/// site is refused and audited; the header works as well as the form field.
#[tokio::test]
async fn posts_need_the_csrf_token_and_a_same_site_origin() {
    let t = spawn(Db::Sqlite).await;
    make_admin(&t).await;
    let b = sign_in(&t).await;
    let form = [("name", "csrf-test"), ("tokens", "")];
    let missing = done(
        client()
            .post(t.url("/apps"))
            .header("cookie", &b.cookie)
            .form(&form),
    )
    .await;
    assert_eq!(missing.status, 403);
    let wrong = done(
        client()
            .post(t.url("/apps"))
            .header("cookie", &b.cookie)
            .form(&[("name", "csrf-test"), ("csrf", "guess")]),
    )
    .await;
    assert_eq!(wrong.status, 403);
    let cross = done(
        client()
            .post(t.url("/apps"))
            .header("cookie", &b.cookie)
            .header("sec-fetch-site", "cross-site")
            .form(&[("name", "csrf-test"), ("csrf", b.csrf.as_str())]),
    )
    .await;
    assert_eq!(cross.status, 403);
    assert!(t.ctx.store.list_apps().await.unwrap().is_empty());
    // Another session's token does not work for this one.
    let other = sign_in(&t).await;
    assert_ne!(other.csrf, b.csrf);
    let mixed = done(
        client()
            .post(t.url("/apps"))
            .header("cookie", &b.cookie)
            .form(&[("name", "csrf-test"), ("csrf", other.csrf.as_str())]),
    )
    .await;
    assert_eq!(mixed.status, 403);
    assert!(t.ctx.store.list_apps().await.unwrap().is_empty());
    // The htmx header works as well as the form field.
    let ok = done(
        client()
            .post(t.url("/apps"))
            .header("cookie", &b.cookie)
            .header("x-csrf-token", &b.csrf)
            .form(&form),
    )
    .await;
    assert_eq!(ok.status, 303, "{}", ok.body);
    let (shown, _) = b.follow(&t, &ok).await;
    assert!(shown.body.contains("tw_app_"));
    assert_eq!(t.ctx.store.list_apps().await.unwrap().len(), 1);
    let refused = t
        .ctx
        .store
        .list_audit(&AuditFilter {
            action: Some("auth.csrf_refused".into()),
            limit: 10,
            ..AuditFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(refused.len(), 4);
    // Sign-in from another site is refused too.
    let r = done(
        client()
            .post(t.url("/login"))
            .header("sec-fetch-site", "cross-site")
            .form(&[("username", USER), ("password", PASSWORD)]),
    )
    .await;
    assert_eq!(r.status, 403);
    assert!(r.session_cookie().is_none());
}

fn assert_secure_html(r: &Res, what: &str) {
    assert!(r.header("content-type").starts_with("text/html"), "{what}");
    let csp = r.header("content-security-policy");
    for needed in [
        "script-src 'self'",
        "frame-ancestors 'none'",
        "object-src 'none'",
        "base-uri 'none'",
    ] {
        assert!(csp.contains(needed), "{what}: {csp}");
    }
    assert!(!csp.contains("unsafe-inline"), "{what}");
    assert!(!csp.contains("unsafe-eval"), "{what}");
    assert_eq!(r.header("x-content-type-options"), "nosniff", "{what}");
    assert_eq!(r.header("referrer-policy"), "no-referrer", "{what}");
    // Nothing the CSP would block: no inline script, style attribute or event handler.
    let lower = r.body.to_ascii_lowercase();
    assert!(!lower.contains(" style="), "{what}");
    assert!(!lower.contains(" onclick="), "{what}");
    assert!(!lower.contains(" onload="), "{what}");
    assert!(!lower.contains("javascript:"), "{what}");
    for (i, _) in lower.match_indices("<script") {
        assert!(
            lower[i..i + lower[i..].find('>').unwrap()].contains(" src="),
            "{what}: inline script"
        );
    }
}

/// R31 on the signed-in pages, the sign-in page and a refusal (every route, signed in or not:
/// `r31_every_html_response_signed_in_or_not_carries_the_security_headers`).
#[tokio::test]
async fn every_html_response_carries_the_security_headers() {
    let t = spawn(Db::Sqlite).await;
    let (app, token) = t.seed().await;
    let id = token["id"].as_str().unwrap();
    let app_id = app["id"].as_str().unwrap();
    make_admin(&t).await;
    assert_secure_html(&done(client().get(t.url("/login"))).await, "/login");
    assert_secure_html(&login(&t, USER, "wrong password!").await, "failed login");
    let b = sign_in(&t).await;
    for path in [
        "/tokens".to_owned(),
        "/tokens/new".into(),
        format!("/tokens/{id}"),
        format!("/tokens/{id}/edit"),
        format!("/tokens/{id}/status"),
        "/apps".into(),
        format!("/apps/{app_id}"),
        "/notifications".into(),
        "/audit".into(),
        format!("/audit?token={id}&action=token.create"),
        "/tokens/00000000-0000-0000-0000-000000000000".into(),
        "/ui/provider-fields?provider=oauth2".into(),
    ] {
        let r = b.get(&t, &path).await;
        assert!(r.status == 200 || r.status == 404, "{path}: {}", r.status);
        assert_secure_html(&r, &path);
    }
    let refused = done(
        client()
            .post(t.url("/apps"))
            .header("cookie", &b.cookie)
            .form(&[("name", "x")]),
    )
    .await;
    assert_secure_html(&refused, "CSRF refusal");
    // The vendored assets are served by the binary itself.
    for (path, kind) in [
        ("/static/htmx.min.js", "text/javascript"),
        ("/static/ui.js", "text/javascript"),
        ("/static/ui.css", "text/css"),
    ] {
        let r = done(client().get(t.url(path))).await;
        assert_eq!(r.status, 200, "{path}");
        assert!(r.header("content-type").starts_with(kind), "{path}");
        assert_eq!(r.header("x-content-type-options"), "nosniff");
    }
}

/// Gives the token refresh-token material expiring `days` from now.
async fn expire_in(t: &TestApp, id: &str, days: i64) {
    let tid = TokenId::parse(id).unwrap();
    let mut tok = t.ctx.store.get_token(tid).await.unwrap();
    let now = t.clock.now();
    tok.status = TokenStatus::Healthy;
    tok.material.refresh_expires_at = Some(now + chrono::Duration::days(days));
    tok.material.access_expires_at = Some(now + chrono::Duration::minutes(10));
    tok.material.issued_at = Some(now);
    t.ctx.store.update_token(&tok, now).await.unwrap();
}

fn countdown_class(body: &str) -> &str {
    let start = body
        .find("class=\"countdown ")
        .unwrap_or_else(|| panic!("no countdown in {body}"))
        + 17;
    &body[start..start + body[start..].find('"').unwrap()]
}

#[tokio::test]
async fn the_refresh_countdown_turns_amber_then_red_as_the_clock_moves() {
    let t = spawn(Db::Sqlite).await;
    make_admin(&t).await;
    let (s, token) = t
        .admin(
            reqwest::Method::POST,
            "/api/v1/tokens",
            Some(serde_json::json!({"name": "graph-mail", "provider": "microsoft", "settings": {"tenant": "contoso.onmicrosoft.com"}})),
        )
        .await;
    assert_eq!(s, 201, "{token}");
    let id = token["id"].as_str().unwrap();
    expire_in(&t, id, 30).await;
    let b = sign_in(&t).await;
    let page = b.get(&t, "/tokens").await;
    assert!(page.body.contains("graph-mail"));
    assert!(
        page.body.contains("Microsoft"),
        "grouped under its provider"
    );
    assert_eq!(countdown_class(&page.body), "ok");
    assert!(page.body.contains("30 days left"));
    let expires_ms = (t.clock.now() + chrono::Duration::days(30)).timestamp_millis();
    assert!(
        page.body
            .contains(&format!("data-expires-ms=\"{expires_ms}\""))
    );

    t.clock.advance(chrono::Duration::days(17)); // 13 days left: inside the 14-day lead time
    let b = sign_in(&t).await; // (the old session has ended meanwhile)
    let page = b.get(&t, "/tokens").await;
    assert_eq!(countdown_class(&page.body), "warn");
    assert!(page.body.contains("13 days left"));

    t.clock.advance(chrono::Duration::hours(12 * 24 + 13)); // 11 hours left
    let b = sign_in(&t).await;
    let page = b.get(&t, "/tokens").await;
    assert_eq!(countdown_class(&page.body), "crit");
    assert!(page.body.contains("11 hours left"));

    // A token that needs a new sign-in is red whatever its expiry.
    expire_in(&t, id, 60).await;
    let tid = TokenId::parse(id).unwrap();
    let mut tok = t.ctx.store.get_token(tid).await.unwrap();
    tok.status = TokenStatus::NeedsReauthorization;
    t.ctx.store.update_token(&tok, t.clock.now()).await.unwrap();
    let page = b.get(&t, "/tokens").await;
    assert_eq!(countdown_class(&page.body), "crit");
    assert!(page.body.contains("Needs re-authorization"));
}

#[tokio::test]
async fn pasting_the_client_secrets_output_in_the_form_fills_the_token() {
    let t = spawn(Db::Sqlite).await;
    make_admin(&t).await;
    let (s, token) = t
        .admin(
            reqwest::Method::POST,
            "/api/v1/tokens",
            Some(serde_json::json!({"name": "snowflake-sales", "provider": "snowflake", "settings": {"account": "xy12345.us-east-1", "role": "ANALYST"}})),
        )
        .await;
    assert_eq!(s, 201);
    let id = token["id"].as_str().unwrap();
    let tid = TokenId::parse(id).unwrap();
    let b = sign_in(&t).await;
    let edit = b.get(&t, &format!("/tokens/{id}/edit")).await;
    assert!(edit.body.contains("CREATE SECURITY INTEGRATION"));
    assert!(edit.body.contains("SYSTEM$SHOW_OAUTH_CLIENT_SECRETS"));
    assert!(edit.body.contains(&t.url("/oauth/callback")));
    assert!(edit.body.contains("data-copy=\"#redirect-uri\""));

    let garbage = b
        .post(
            &t,
            &format!("/tokens/{id}/client-secrets"),
            &[("pasted", "SELECT 1")],
        )
        .await;
    assert_eq!(garbage.status, 422);
    assert!(garbage.body.contains("class=\"bad\""));
    let before = t.ctx.store.get_token(tid).await.unwrap();
    assert!(before.client_id.is_none() && before.client_secret.is_none());

    let cell = r#""{""OAUTH_CLIENT_SECRET_2"":""pIl/2nd+secret="",""OAUTH_CLIENT_SECRET"":""vNy/1st+secret="",""OAUTH_CLIENT_ID"":""kMoBQd6lZ0iRIB5W+LjzHc3CQqM=""}""#;
    let r = b
        .post(
            &t,
            &format!("/tokens/{id}/client-secrets"),
            &[("pasted", cell)],
        )
        .await;
    assert_eq!(r.status, 303, "{}", r.body);
    assert_eq!(
        r.header("location"),
        format!("/tokens/{id}/edit?done=filled")
    );
    let after = t.ctx.store.get_token(tid).await.unwrap();
    assert_eq!(
        after.client_id.as_deref(),
        Some("kMoBQd6lZ0iRIB5W+LjzHc3CQqM=")
    );
    let secrets = tokenwarden_server::ops::grant::client_secrets(&t.ctx, &after)
        .await
        .unwrap();
    let secrets: Vec<_> = secrets
        .iter()
        .map(|s| secrecy::ExposeSecret::expose_secret(s).to_owned())
        .collect();
    assert_eq!(secrets, ["vNy/1st+secret=", "pIl/2nd+secret="]);
    // The form shows that secrets are set, never their values.
    let edit = b.get(&t, &format!("/tokens/{id}/edit?done=filled")).await;
    assert!(
        edit.body
            .contains("set (hidden): type a new one to replace it")
    );
    assert!(!edit.body.contains("vNy/1st+secret="));
    assert!(edit.body.contains("kMoBQd6lZ0iRIB5W+LjzHc3CQqM="));

    // "Update" with empty secret fields keeps them; settings are validated per field.
    let bad = b
        .post(
            &t,
            &format!("/tokens/{id}/edit"),
            &[
                ("s_account", "xy12345.us-east-1"),
                ("s_role", "ACCOUNTADMIN"),
                ("client_id", "kMoBQd6lZ0iRIB5W+LjzHc3CQqM="),
                ("client_secret", ""),
            ],
        )
        .await;
    assert_eq!(bad.status, 422);
    assert!(bad.body.contains("ACCOUNTADMIN"));
    let good = b
        .post(
            &t,
            &format!("/tokens/{id}/edit"),
            &[
                ("s_account", "xy12345.us-east-1"),
                ("s_role", "REPORTING"),
                ("s_refresh_token_validity", "2592000"),
                ("client_id", "kMoBQd6lZ0iRIB5W+LjzHc3CQqM="),
                ("client_secret", ""),
                ("client_secret_2", ""),
            ],
        )
        .await;
    assert_eq!(good.status, 303, "{}", good.body);
    let saved = t.ctx.store.get_token(tid).await.unwrap();
    assert_eq!(saved.settings["role"], "REPORTING");
    assert_eq!(saved.settings["refresh_token_validity"], "2592000");
    assert_eq!(saved.client_secret, after.client_secret, "kept");
    let edit = b.get(&t, &format!("/tokens/{id}/edit")).await;
    assert!(edit.body.contains("OAUTH_REFRESH_TOKEN_VALIDITY = 2592000"));
}

#[tokio::test]
async fn app_keys_are_created_once_and_revoked_from_the_app_page() {
    let t = spawn(Db::Sqlite).await;
    let (app, _) = t.seed().await;
    let app_id = app["id"].as_str().unwrap();
    make_admin(&t).await;
    let b = sign_in(&t).await;
    let page = b.get(&t, &format!("/apps/{app_id}")).await;
    assert!(page.body.contains("sales-invoice"));
    assert!(page.body.contains("snowflake-sales"), "its app-level token");
    let created = b
        .post(&t, &format!("/apps/{app_id}/keys"), &[("label", "ci")])
        .await;
    assert_eq!(created.status, 303, "post/redirect/get");
    let (created, _) = b.follow(&t, &created).await;
    assert_eq!(created.status, 200);
    let start = created.body.find("tw_app_").unwrap();
    let key = &created.body[start..start + created.body[start..].find('"').unwrap()];
    let (s, _, _) = t
        .send(
            reqwest::Method::GET,
            &format!("/api/v1/apps/{app_id}"),
            Some(key),
            None,
        )
        .await;
    assert_eq!(s, 200, "the new key works");
    // Shown once: the app page lists the key by label only.
    let page = b.get(&t, &format!("/apps/{app_id}")).await;
    assert!(page.body.contains("ci"));
    assert!(!page.body.contains(key));
    let keys = t
        .ctx
        .store
        .list_api_keys(tokenwarden_domain::AppId::parse(app_id))
        .await
        .unwrap();
    let ci = keys.iter().find(|k| k.label.as_str() == "ci").unwrap();
    let r = b
        .post(&t, &format!("/apps/{app_id}/keys/{}/revoke", ci.id), &[])
        .await;
    assert_eq!(r.status, 303);
    let (s, _, _) = t
        .send(
            reqwest::Method::GET,
            &format!("/api/v1/apps/{app_id}"),
            Some(key),
            None,
        )
        .await;
    assert_eq!(s, 401, "the revoked key stops working at once");
    let page = b.get(&t, &format!("/apps/{app_id}")).await;
    assert!(page.body.contains("revoked"));

    // Stop and start from the page.
    assert_eq!(
        b.post(&t, &format!("/apps/{app_id}/stop"), &[])
            .await
            .status,
        303
    );
    let a = t
        .ctx
        .store
        .get_app(tokenwarden_domain::AppId::parse(app_id).unwrap())
        .await
        .unwrap();
    assert_eq!(a.state, tokenwarden_domain::AppState::Stopped);
    assert!(b.get(&t, "/apps").await.body.contains("stopped"));
    assert_eq!(
        b.post(&t, &format!("/apps/{app_id}/start"), &[])
            .await
            .status,
        303
    );
    let a = t
        .ctx
        .store
        .get_app(tokenwarden_domain::AppId::parse(app_id).unwrap())
        .await
        .unwrap();
    assert_eq!(a.state, tokenwarden_domain::AppState::Running);
    assert_eq!(a.stop_reason, None);
}

#[tokio::test]
async fn a_sign_in_started_in_the_ui_completes_only_in_that_session() {
    let t = spawn(Db::Sqlite).await;
    let (_, token) = t.seed().await;
    let id = token["id"].as_str().unwrap();
    make_admin(&t).await;
    let b = sign_in(&t).await;
    let start = || async {
        let r = done(
            client()
                .post(t.url(&format!("/tokens/{id}/authorize")))
                .header("cookie", &b.cookie)
                .header("x-csrf-token", &b.csrf)
                .header("accept", "application/json"),
        )
        .await;
        assert_eq!(r.status, 200, "{}", r.body);
        let url: serde_json::Value = serde_json::from_str(&r.body).unwrap();
        let url = url["url"].as_str().unwrap().to_owned();
        url.split("state=")
            .nth(1)
            .unwrap()
            .split('&')
            .next()
            .unwrap()
            .to_owned()
    };
    // Without the session cookie (another browser): refused, nothing sent to the provider.
    let state = start().await;
    let r = done(client().get(t.url(&format!(
        "/oauth/callback?state={state}&error=access_denied"
    ))))
    .await;
    assert_eq!(r.status, 400);
    assert!(r.body.contains("another session"));
    // With it: the session check passes and the provider's refusal is shown.
    let state = start().await;
    let r = done(
        client()
            .get(t.url(&format!(
                "/oauth/callback?state={state}&error=access_denied&error_description=user+said+no"
            )))
            .header("cookie", &b.cookie),
    )
    .await;
    assert_eq!(r.status, 502, "{}", r.body);
    assert!(r.body.contains("user said no"));
    // Without script, the POST answers a page with the link instead of JSON.
    let page = b.post(&t, &format!("/tokens/{id}/authorize"), &[]).await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains("Continue to the provider"));
}

/// What the UI could change: each token's and app's version, the app's keys, the channels.
async fn state_of(t: &TestApp, app_id: &str) -> impl PartialEq + std::fmt::Debug {
    let tokens: Vec<_> = t
        .ctx
        .store
        .list_tokens()
        .await
        .unwrap()
        .iter()
        .map(|t| t.version)
        .collect();
    let apps: Vec<_> = t
        .ctx
        .store
        .list_apps()
        .await
        .unwrap()
        .iter()
        .map(|a| a.version)
        .collect();
    let keys = t
        .ctx
        .store
        .list_api_keys(tokenwarden_domain::AppId::parse(app_id))
        .await
        .unwrap()
        .len();
    let channels = t.ctx.store.list_channels().await.unwrap();
    (tokens, apps, keys, channels)
}

/// R30: no GET changes anything, not even the audit log (every route, from the router:
/// `r30_every_ui_post_needs_the_csrf_token_and_a_same_origin_and_no_get_changes_anything`).
#[tokio::test]
async fn get_requests_change_nothing() {
    let t = spawn(Db::Sqlite).await;
    let (app, token) = t.seed().await;
    let id = token["id"].as_str().unwrap();
    let app_id = app["id"].as_str().unwrap();
    make_admin(&t).await;
    let b = sign_in(&t).await;
    let (s, ch) = t
        .admin(
            reqwest::Method::POST,
            "/api/v1/notification-channels",
            Some(serde_json::json!({"name": "ops", "kind": "email", "to": ["ops@example.com"]})),
        )
        .await;
    assert_eq!(s, 201);
    let ch_id = ch["id"].as_str().unwrap();
    let snapshot = || async {
        let audit = t
            .ctx
            .store
            .list_audit(&AuditFilter {
                limit: 1000,
                ..AuditFilter::default()
            })
            .await
            .unwrap()
            .len();
        (audit, state_of(&t, app_id).await)
    };
    let before = snapshot().await;
    for path in [
        "/".to_owned(),
        "/tokens".into(),
        "/tokens/new".into(),
        format!("/tokens/{id}"),
        format!("/tokens/{id}/edit"),
        format!("/tokens/{id}/status"),
        // State-changing routes answer GET with 405, never act.
        format!("/tokens/{id}/authorize"),
        format!("/tokens/{id}/test"),
        format!("/tokens/{id}/delete"),
        format!("/apps/{app_id}/stop"),
        format!("/apps/{app_id}/keys"),
        format!("/notifications/{ch_id}/test"),
        "/logout".into(),
        "/ui/check-setting?provider=snowflake&s_role=ACCOUNTADMIN".into(),
        "/apps".into(),
        format!("/apps/{app_id}"),
        "/notifications".into(),
        format!("/notifications/{ch_id}"),
        "/audit".into(),
    ] {
        let r = b.get(&t, &path).await;
        assert!(
            r.status == 200 || r.status == 303 || r.status == 405,
            "{path}: {}",
            r.status
        );
    }
    assert_eq!(snapshot().await, before);
    assert_eq!(b.get(&t, "/tokens").await.status, 200, "still signed in");
    let check = b
        .get(
            &t,
            "/ui/check-setting?provider=snowflake&s_role=ACCOUNTADMIN",
        )
        .await;
    assert!(check.body.contains("class=\"bad\""), "{}", check.body);
}

#[tokio::test]
async fn reminder_lead_times_are_set_on_the_notifications_page_for_every_instance() {
    let t = spawn(Db::Sqlite).await;
    make_admin(&t).await;
    let b = sign_in(&t).await;
    let page = b.get(&t, "/notifications").await;
    assert!(
        page.body.contains("14d, 7d, 3d, 1d"),
        "the configured defaults are shown"
    );
    let r = b
        .post(
            &t,
            "/notifications/lead-times",
            &[("lead_times", "2d, 10d, 12h")],
        )
        .await;
    assert_eq!(r.status, 303, "{}", r.body);
    assert_eq!(
        t.ctx
            .lead_times()
            .iter()
            .map(|l| l.duration())
            .collect::<Vec<_>>(),
        vec![
            chrono::Duration::days(10),
            chrono::Duration::days(2),
            chrono::Duration::hours(12)
        ]
    );
    // Kept in the database: another instance (a fresh context on the same store) follows.
    let other = tokenwarden_server::AppContext::new(
        t.ctx.store.clone(),
        t.ctx.vault.clone(),
        t.ctx.clock.clone(),
        (*t.ctx.settings).clone(),
    );
    assert_eq!(
        other.lead_times().len(),
        4,
        "before it reloads: the configured ones"
    );
    other.reload_lead_times().await;
    assert_eq!(other.lead_times()[0].duration(), chrono::Duration::days(10));
    for bad in ["", "2w", "0d", "14"] {
        let r = b
            .post(&t, "/notifications/lead-times", &[("lead_times", bad)])
            .await;
        assert_eq!(r.status, 422, "{bad:?}");
    }
    assert_eq!(t.ctx.lead_times().len(), 3, "refused input changed nothing");
}

#[tokio::test]
async fn r32_parallel_wrong_passwords_cannot_slip_past_the_limit() {
    let t = spawn(Db::Sqlite).await;
    make_admin(&t).await;
    let mut tasks = Vec::new();
    for _ in 0..30 {
        let url = t.url("/login");
        tasks.push(tokio::spawn(async move {
            client()
                .post(url)
                .form(&[
                    ("username", USER),
                    ("password", "wrong-password-123"),
                    ("next", "/apps"),
                ])
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }));
    }
    let mut checked = 0;
    for task in tasks {
        if task.await.unwrap() != 429 {
            checked += 1;
        }
    }
    // At most 5 (fewer when checks were also turned away for running at the same time), and
    // not none: a limiter that refuses everything is no limiter.
    assert!(
        (1..=5).contains(&checked),
        "{checked} password checks ran; the limit is 5 per 15 minutes"
    );
    // One by one, in a new window: exactly 5 wrong passwords are checked, the 6th attempt is
    // refused unchecked (the right password too), and once the window has passed the right
    // password signs in.
    t.clock.advance(chrono::Duration::minutes(16));
    let attempt = |password: &'static str| {
        done(client().post(t.url("/login")).form(&[
            ("username", USER),
            ("password", password),
            ("next", "/apps"),
        ]))
    };
    for n in 1..=5 {
        let r = attempt("wrong-password-123").await;
        assert!(
            r.status != 429 && r.status != 303,
            "wrong password {n}: {}",
            r.status
        );
    }
    assert_eq!(attempt("wrong-password-123").await.status, 429);
    assert_eq!(attempt(PASSWORD).await.status, 429);
    t.clock.advance(chrono::Duration::minutes(16));
    let r = attempt(PASSWORD).await;
    assert_eq!(r.status, 303);
    assert_eq!(r.headers.get("location").unwrap(), "/apps");
}

#[tokio::test]
async fn r7_the_sign_in_destination_cannot_leave_the_site() {
    let t = spawn(Db::Sqlite).await;
    make_admin(&t).await;
    for next in [
        "/\t/evil.example/x",
        "//evil.example",
        "/\\evil.example",
        "https://evil.example",
        "/\n/evil.example",
    ] {
        let r = done(client().post(t.url("/login")).form(&[
            ("username", USER),
            ("password", PASSWORD),
            ("next", next),
        ]))
        .await;
        assert_eq!(r.status, 303, "{next:?}");
        let loc = r
            .headers
            .get("location")
            .unwrap()
            .to_str()
            .unwrap()
            .to_owned();
        assert_eq!(loc, "/tokens", "{next:?} must not be followed");
    }
    let r = done(client().post(t.url("/login")).form(&[
        ("username", USER),
        ("password", PASSWORD),
        ("next", "/apps"),
    ]))
    .await;
    assert_eq!(
        r.headers.get("location").unwrap(),
        "/apps",
        "a local path is kept"
    );
}

/// Deleting a token, changing an app's tokens, and creating, disabling, enabling and deleting a
/// notification channel from the pages: each changes what the API then shows.
#[tokio::test]
async fn token_delete_app_update_and_channel_changes_from_the_pages() {
    let t = spawn(Db::Sqlite).await;
    make_admin(&t).await;
    let b = sign_in(&t).await;
    let (app, token) = t.seed().await;
    let app_id = app["id"].as_str().unwrap();
    let token_id = token["id"].as_str().unwrap();

    // App update: the tokens it uses (sorted, deduplicated); a bad name changes nothing.
    let r = b
        .post(
            &t,
            &format!("/apps/{app_id}"),
            &[("tokens", "zeta, alpha alpha\nsnowflake-sales")],
        )
        .await;
    assert_eq!(r.status, 303, "{}", r.body);
    let (_, a) = t
        .admin(
            reqwest::Method::GET,
            &format!("/api/v1/apps/{app_id}"),
            None,
        )
        .await;
    assert_eq!(
        a["tokens"],
        serde_json::json!(["alpha", "snowflake-sales", "zeta"])
    );
    let r = b
        .post(&t, &format!("/apps/{app_id}"), &[("tokens", "Not A Name!")])
        .await;
    assert_eq!(r.status, 422, "{}", r.body);
    let (_, a) = t
        .admin(
            reqwest::Method::GET,
            &format!("/api/v1/apps/{app_id}"),
            None,
        )
        .await;
    assert_eq!(
        a["tokens"],
        serde_json::json!(["alpha", "snowflake-sales", "zeta"])
    );

    // Token delete: gone from the API, back to the app's page (it was the app's own token).
    let r = b.post(&t, &format!("/tokens/{token_id}/delete"), &[]).await;
    assert_eq!(r.status, 303, "{}", r.body);
    assert_eq!(
        r.headers.get("location").unwrap().to_str().unwrap(),
        format!("/apps/{app_id}")
    );
    let (s, _) = t
        .admin(
            reqwest::Method::GET,
            &format!("/api/v1/tokens/{token_id}"),
            None,
        )
        .await;
    assert_eq!(s, 404);
    let (_, list) = t.admin(reqwest::Method::GET, "/api/v1/tokens", None).await;
    assert_eq!(list, serde_json::json!({"items": [], "next_cursor": null}));

    // Channels: create (the secret shown once), disable, enable, delete.
    let r = b
        .post(
            &t,
            "/notifications",
            &[
                ("name", "ops"),
                ("kind", "webhook"),
                ("url", "http://127.0.0.1:9/hook"),
                ("events", "app.stopped"),
                ("app", "sales-invoice"),
            ],
        )
        .await;
    assert_eq!(r.status, 303, "{}", r.body);
    let (r, _) = b.follow(&t, &r).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.body.contains("whsec_"), "the secret is shown once");
    let channels = || async {
        t.admin(reqwest::Method::GET, "/api/v1/notification-channels", None)
            .await
            .1["items"]
            .clone()
    };
    let ch = channels().await;
    assert_eq!(ch.as_array().unwrap().len(), 1, "{ch}");
    assert_eq!(
        (
            &ch[0]["name"],
            &ch[0]["events"],
            &ch[0]["app"],
            &ch[0]["enabled"]
        ),
        (
            &serde_json::json!("ops"),
            &serde_json::json!(["app.stopped"]),
            &serde_json::json!("sales-invoice"),
            &serde_json::json!(true)
        )
    );
    let id = ch[0]["id"].as_str().unwrap().to_owned();
    let r = b
        .post(
            &t,
            &format!("/notifications/{id}/enabled"),
            &[("enabled", "false")],
        )
        .await;
    assert_eq!(r.status, 303, "{}", r.body);
    assert_eq!(channels().await[0]["enabled"], false);
    let r = b
        .post(
            &t,
            &format!("/notifications/{id}/enabled"),
            &[("enabled", "true")],
        )
        .await;
    assert_eq!(r.status, 303, "{}", r.body);
    assert_eq!(channels().await[0]["enabled"], true);
    // A bad one is refused with the reason and not created.
    let r = b
        .post(
            &t,
            "/notifications",
            &[("name", "bad"), ("kind", "webhook"), ("url", "not a url")],
        )
        .await;
    assert_eq!(r.status, 422, "{}", r.body);
    assert_eq!(channels().await.as_array().unwrap().len(), 1);
    let r = b
        .post(&t, &format!("/notifications/{id}/delete"), &[])
        .await;
    assert_eq!(r.status, 303, "{}", r.body);
    assert_eq!(channels().await, serde_json::json!([]));
    // Each change is audited under the admin's name.
    let (_, audit) = t
        .admin(reqwest::Method::GET, "/api/v1/audit?limit=1000", None)
        .await;
    for action in [
        "app.update",
        "token.delete",
        "channel.create",
        "channel.update",
        "channel.delete",
    ] {
        assert!(
            audit["items"]
                .as_array()
                .unwrap()
                .iter()
                .any(|e| e["action"] == action && e["actor"].as_str().unwrap().contains(USER)),
            "{action} not audited: {audit}"
        );
    }
}

/// One UI route as `ui::router` declares it.
#[derive(Debug)]
struct UiRoute {
    path: String,
    get: bool,
    post: bool,
    /// Behind `require_session` (everything but sign-in, setup and assets).
    signed_in: bool,
}

/// Every route of the UI, read from the router's own source, so a route added there is
/// covered here without anyone listing it.
fn ui_routes() -> Vec<UiRoute> {
    let src = include_str!("../../src/ui/mod.rs");
    let body = &src[src.find("pub fn router(").unwrap()..];
    let body = &body[..body.find("\n}\n").unwrap()];
    let session_layer = body.find(".route_layer(").unwrap();
    let mut at = 0;
    let mut out = Vec::new();
    while let Some(i) = body[at..].find(".route(") {
        let start = at + i + ".route(".len();
        let rest = &body[start..];
        let end = [".route(", ".route_layer(", ".merge("]
            .iter()
            .filter_map(|m| rest.find(m))
            .min()
            .unwrap_or(rest.len());
        let chunk = &rest[..end];
        let q = chunk.find('"').unwrap() + 1;
        out.push(UiRoute {
            path: chunk[q..q + chunk[q..].find('"').unwrap()].to_owned(),
            get: chunk.contains("get("),
            post: chunk.contains("post("),
            signed_in: start < session_layer,
        });
        at = start;
    }
    out
}

/// A UI world with one of everything a route can name: (token id, app id, channel id, key id).
async fn ui_world(t: &TestApp) -> (String, String, String, String) {
    let (app, token) = t.seed().await;
    let (s, ch) = t
        .admin(
            reqwest::Method::POST,
            "/api/v1/notification-channels",
            Some(serde_json::json!({"name": "ops", "kind": "email", "to": ["ops@example.com"]})),
        )
        .await;
    assert_eq!(s, 201, "{ch}");
    let app_id = app["id"].as_str().unwrap().to_owned();
    let key = t
        .ctx
        .store
        .list_api_keys(tokenwarden_domain::AppId::parse(&app_id))
        .await
        .unwrap()[0]
        .id
        .to_string();
    (
        token["id"].as_str().unwrap().to_owned(),
        app_id,
        ch["id"].as_str().unwrap().to_owned(),
        key,
    )
}

fn fill(path: &str, (token, app, channel, key): &(String, String, String, String)) -> String {
    let id = if path.starts_with("/tokens/") {
        token
    } else if path.starts_with("/apps/") {
        app
    } else {
        channel
    };
    path.replace("{key_id}", key).replace("{id}", id)
}

/// R30: every POST route of the UI (taken from the router) is refused with 403 without the
/// session's CSRF token, with a wrong one, and from another site even with the right one;
/// sign-in and setup, which have no session yet, refuse other sites. No GET of any route
/// changes anything, and routes without a GET answer it with 405.
#[tokio::test]
async fn r30_every_ui_post_needs_the_csrf_token_and_a_same_origin_and_no_get_changes_anything() {
    let t = spawn(Db::Sqlite).await;
    let ids = ui_world(&t).await;
    make_admin(&t).await;
    let b = sign_in(&t).await;
    let routes = ui_routes();
    let posts = routes.iter().filter(|r| r.post && r.signed_in).count();
    assert!(
        posts >= 18 && routes.iter().any(|r| r.path == "/setup" && !r.signed_in),
        "{routes:?}"
    );
    let before = state_of(&t, &ids.1).await;
    let mut refused = 0;
    for r in &routes {
        let url = t.url(&fill(&r.path, &ids));
        let what = format!("{} ({url})", r.path);
        if r.post && r.signed_in {
            let form = [("name", "csrf-probe"), ("enabled", "false")];
            let post = |site: &'static str| {
                client()
                    .post(&url)
                    .header("cookie", &b.cookie)
                    .header("sec-fetch-site", site)
            };
            for attempt in [
                post("same-origin").form(&form),
                post("same-origin").form(&[("name", "x"), ("csrf", "guess")]),
                post("same-origin").header("x-csrf-token", "guess"),
                post("cross-site").form(&[("name", "x"), ("csrf", b.csrf.as_str())]),
                post("same-site").form(&[("name", "x"), ("csrf", b.csrf.as_str())]),
                post("cross-site").header("x-csrf-token", &b.csrf),
            ] {
                let res = done(attempt).await;
                assert_eq!(res.status, 403, "{what}: {}", res.body);
                refused += 1;
            }
        } else if r.post {
            let res = done(
                client()
                    .post(&url)
                    .header("sec-fetch-site", "cross-site")
                    .form(&[
                        ("username", USER),
                        ("password", PASSWORD),
                        ("password2", PASSWORD),
                        ("token", "x"),
                    ]),
            )
            .await;
            assert_eq!(res.status, 403, "{what}: {}", res.body);
            assert!(res.session_cookie().is_none(), "{what}");
        }
        let got = b.get(&t, &fill(&r.path, &ids)).await;
        if r.get {
            assert!(
                [200, 303, 404, 410].contains(&got.status),
                "{what}: {}",
                got.status
            );
        } else {
            assert_eq!(got.status, 405, "{what}");
        }
    }
    assert_eq!(state_of(&t, &ids.1).await, before);
    let audited = t
        .ctx
        .store
        .list_audit(&AuditFilter {
            action: Some("auth.csrf_refused".into()),
            limit: 1000,
            ..AuditFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(audited.len(), refused, "every refusal is audited");
    assert_eq!(b.get(&t, "/tokens").await.status, 200, "still signed in");
}

/// R31: every HTML answer of every UI route (taken from the router), signed in or not, as a
/// page or an htmx partial, and the refusal, error and callback pages, carry the CSP without
/// inline script, `frame-ancestors`/`object-src`/`base-uri 'none'`, nosniff and no-referrer.
#[tokio::test]
async fn r31_every_html_response_signed_in_or_not_carries_the_security_headers() {
    let t = spawn(Db::Sqlite).await;
    let ids = ui_world(&t).await;
    let mut checked = 0;
    let mut check = |r: &Res, what: &str| {
        if r.header("content-type").starts_with("text/html") {
            assert_secure_html(r, what);
            checked += 1;
        } else {
            assert!(
                [303, 401, 405].contains(&r.status) || what.contains("/static/"),
                "{what}: {} {}",
                r.status,
                r.header("content-type")
            );
        }
    };
    // Before any admin exists: the setup pages.
    for path in ["/setup", "/setup?token=wrong", "/login"] {
        check(&done(client().get(t.url(path))).await, path);
    }
    make_admin(&t).await;
    let b = sign_in(&t).await;
    for r in ui_routes() {
        let path = fill(&r.path, &ids);
        for (who, cookie) in [("signed in", b.cookie.as_str()), ("anonymous", "")] {
            for htmx in [false, true] {
                let what = format!("GET {path} {who} htmx={htmx}");
                let mut req = client().get(t.url(&path)).header("cookie", cookie);
                if htmx {
                    req = req.header("hx-request", "true");
                }
                check(&done(req).await, &what);
            }
            if r.post {
                let what = format!("POST {path} {who} without CSRF");
                let req = client()
                    .post(t.url(&path))
                    .header("cookie", cookie)
                    .header("sec-fetch-site", "cross-site")
                    .form(&[
                        ("username", USER),
                        ("password", "wrong password!"),
                        ("password2", "wrong password!"),
                        ("token", "x"),
                    ]);
                check(&done(req).await, &what);
            }
        }
    }
    for path in [
        "/oauth/callback".to_owned(),
        "/oauth/callback?code=c&state=forged".into(),
        "/oauth/callback?error=access_denied&state=forged".into(),
        "/setup?token=wrong".into(),
        "/tokens/00000000-0000-0000-0000-000000000000".into(),
        "/apps/00000000-0000-0000-0000-000000000000".into(),
        "/notifications/00000000-0000-0000-0000-000000000000".into(),
        "/tokens/not-an-id".into(),
        "/login?next=//evil.example".into(),
    ] {
        check(&b.get(&t, &path).await, &path);
    }
    check(&login(&t, USER, "wrong password!").await, "failed login");
    assert!(checked >= 60, "{checked} HTML answers checked");
}

/// R29: behind https (the public URL is https, as behind a TLS proxy) the session cookie is
/// `__Host-` prefixed, `Secure`, `HttpOnly`, `SameSite`, for the whole site and no domain; its
/// value carries at least 128 bits and is new at each sign-in; after sign-out it opens nothing.
#[tokio::test]
async fn r29_behind_https_the_session_cookie_is_host_prefixed_secure_and_dies_at_logout() {
    let t = spawn(Db::Sqlite).await;
    make_admin(&t).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let mut settings = (*t.ctx.settings).clone();
    settings.public_url = "https://tokenwarden.example".into();
    let ctx = tokenwarden_server::AppContext::from(tokenwarden_server::ContextParts {
        settings: std::sync::Arc::new(settings),
        ..(*t.ctx).clone()
    });
    tokio::spawn(async move {
        let _ = tokenwarden_server::serve(listener, ctx, std::future::pending()).await;
    });
    let sign_in = || async {
        let r = done(client().post(format!("{base}/login")).form(&[
            ("username", USER),
            ("password", PASSWORD),
            ("next", "/tokens"),
        ]))
        .await;
        assert_eq!(r.status, 303, "{}", r.body);
        r.headers
            .get_all("set-cookie")
            .iter()
            .map(|v| v.to_str().unwrap().to_owned())
            .find(|c| c.starts_with("__Host-tw_session="))
            .expect("a __Host- session cookie")
    };
    let mut values = std::collections::HashSet::new();
    for _ in 0..3 {
        let line = sign_in().await;
        let attrs: Vec<&str> = line.split(';').map(str::trim).collect();
        for needed in ["Secure", "HttpOnly", "Path=/"] {
            assert!(attrs.contains(&needed), "{line}");
        }
        assert!(
            attrs
                .iter()
                .any(|a| a.starts_with("SameSite=Lax") || a.starts_with("SameSite=Strict")),
            "{line}"
        );
        assert!(!line.to_ascii_lowercase().contains("domain="), "{line}");
        let value = attrs[0]["__Host-tw_session=".len()..].to_owned();
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(&value)
            .unwrap();
        assert!(bytes.len() >= 16, "{value}: at least 128 bits");
        assert!(values.insert(value), "a new value at each sign-in");
    }
    let value = values.into_iter().next().unwrap();
    let cookie = format!("__Host-tw_session={value}");
    let page = done(
        client()
            .get(format!("{base}/tokens"))
            .header("cookie", &cookie),
    )
    .await;
    assert_eq!(page.status, 200);
    // Without the prefix the same value is not our cookie.
    let plain = done(
        client()
            .get(format!("{base}/tokens"))
            .header("cookie", format!("tw_session={value}")),
    )
    .await;
    assert_eq!(plain.status, 303);
    let out = done(
        client()
            .post(format!("{base}/logout"))
            .header("cookie", &cookie)
            .header("x-csrf-token", csrf_of(&page.body)),
    )
    .await;
    assert_eq!(out.status, 303);
    let cleared = out.header("set-cookie");
    assert!(
        cleared.starts_with("__Host-tw_session=;")
            && cleared.contains("Max-Age=0")
            && cleared.contains("Secure"),
        "{cleared}"
    );
    let after = done(
        client()
            .get(format!("{base}/tokens"))
            .header("cookie", &cookie),
    )
    .await;
    assert_eq!(after.status, 303);
    assert!(after.header("location").starts_with("/login"));
}

/// A client whose connections come from `ip` (any 127.0.0.0/8 address reaches the server):
/// another client address for the sign-in throttle.
fn client_from(ip: &str) -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .local_address(ip.parse::<std::net::IpAddr>().unwrap())
        .build()
        .unwrap()
}

async fn login_from(t: &TestApp, ip: &str, user: &str, password: &str) -> Res {
    done(client_from(ip).post(t.url("/login")).form(&[
        ("username", user),
        ("password", password),
        ("next", "/apps"),
    ]))
    .await
}

/// Issue 9, bug 4 (R32): five wrong passwords for a username from anywhere locked it for 15
/// minutes everywhere. Now the hammering address is throttled (429, audited, with growing
/// waits: 1 minute, then 2, ...), while a correct password from another address gets in (its
/// check only delayed a little), and a wrong one from a third address is just wrong (401).
#[tokio::test]
async fn issue9_bug4_r32_another_address_hammering_a_username_cannot_lock_its_admin_out() {
    let t = spawn(Db::Sqlite).await;
    make_admin(&t).await;
    let attacker = "127.0.0.2";
    for n in 1..=20 {
        let r = login_from(&t, attacker, USER, "guess-guess-guess").await;
        let expected = if n <= 5 { 401 } else { 429 };
        assert_eq!(r.status, expected, "attempt {n}");
        assert!(r.session_cookie().is_none());
    }
    // The right password from the attacker's address is refused unchecked too.
    assert_eq!(login_from(&t, attacker, USER, PASSWORD).await.status, 429);
    // A wrong password from elsewhere is only wrong; the right one gets in (after a short
    // delay: the username has failures).
    assert_eq!(
        login_from(&t, "127.0.0.4", USER, "not it either")
            .await
            .status,
        401
    );
    let started = std::time::Instant::now();
    let r = login_from(&t, "127.0.0.3", USER, PASSWORD).await;
    assert_eq!(r.status, 303, "{}", r.body);
    assert!(r.session_cookie().is_some());
    assert!(
        started.elapsed()
            >= tokenwarden_server::ops::admins::username_delay(
                tokenwarden_server::ops::admins::MAX_FAILURES
            ),
        "a username with failures is checked after a delay"
    );
    // Growing waits for the attacker: 1 minute after its 5th failure, then 2 after the 6th.
    t.clock.advance(chrono::Duration::seconds(61));
    assert_eq!(login_from(&t, attacker, USER, "guess-6").await.status, 401);
    assert_eq!(login_from(&t, attacker, USER, "guess-7").await.status, 429);
    t.clock.advance(chrono::Duration::seconds(61));
    assert_eq!(login_from(&t, attacker, USER, "guess-7").await.status, 429);
    t.clock.advance(chrono::Duration::seconds(61));
    assert_eq!(login_from(&t, attacker, USER, "guess-7").await.status, 401);
    // Audited: the refusals and the failures.
    let events = t
        .ctx
        .store
        .list_audit(&AuditFilter {
            action: Some("auth.login".into()),
            limit: 1000,
            ..AuditFilter::default()
        })
        .await
        .unwrap();
    let count = |reason: &str| {
        events
            .iter()
            .filter(|e| e.detail["reason"].as_str() == Some(reason))
            .count()
    };
    assert_eq!(count("rate_limited"), 15 + 1 + 1 + 1);
    assert_eq!(count("wrong_password"), 5 + 1 + 2);
    assert!(
        events
            .iter()
            .any(|e| e.outcome == "ok" && e.detail["client"] == "127.0.0.3")
    );
}

/// Issue 9, bug 4: a burst of sign-ins with the right password from one address got 429 (a
/// refused hashing permit counted as a failure). Sign-ins wait for a permit; all get in, and
/// none counts against the address: five wrong passwords afterwards are each checked.
#[tokio::test]
async fn issue9_bug4_a_burst_of_right_passwords_all_get_in_and_counts_nothing() {
    let t = spawn(Db::Sqlite).await;
    make_admin(&t).await;
    let mut tasks = Vec::new();
    for _ in 0..12 {
        let url = t.url("/login");
        tasks.push(tokio::spawn(async move {
            done(client().post(url).form(&[
                ("username", USER),
                ("password", PASSWORD),
                ("next", "/apps"),
            ]))
            .await
            .status
        }));
    }
    for task in tasks {
        assert_eq!(task.await.unwrap(), 303);
    }
    for n in 1..=5 {
        assert_eq!(
            login(&t, USER, "wrong-password-123").await.status,
            401,
            "{n}"
        );
    }
    assert_eq!(login(&t, USER, PASSWORD).await.status, 429);
}

#[test]
fn issue9_bug4_throttle_delays_grow_and_are_capped() {
    use tokenwarden_server::ops::admins::{MAX_FAILURES, address_delay, username_delay};
    assert_eq!(address_delay(MAX_FAILURES - 1), chrono::Duration::zero());
    assert_eq!(username_delay(MAX_FAILURES - 1), std::time::Duration::ZERO);
    let waits: Vec<i64> = (0..8)
        .map(|n| address_delay(MAX_FAILURES + n).num_minutes())
        .collect();
    assert_eq!(waits, [1, 2, 4, 8, 15, 15, 15, 15]);
    let delays: Vec<u128> = (0..8)
        .map(|n| username_delay(MAX_FAILURES + n).as_millis())
        .collect();
    assert_eq!(delays, [250, 500, 1000, 2000, 4000, 4000, 4000, 4000]);
}

/// Issue 10, item 4: with thousands of tokens the tokens page answers one page (a server-side
/// keyset page, not every row), links the next page with the same filter, and the filter
/// (name text, provider, status) narrows the rows in the database.
#[tokio::test]
async fn issue10_tokens_page_answers_one_page_of_thousands_with_a_next_link_and_filters() {
    let t = spawn(Db::Sqlite).await;
    make_admin(&t).await;
    let b = sign_in(&t).await;
    let now = t.clock_now();
    for i in 0..2_500 {
        let status = if i % 10 == 0 {
            TokenStatus::NeedsReauthorization
        } else {
            TokenStatus::NotAuthorized
        };
        let provider = if i % 2 == 0 { "snowflake" } else { "github" };
        t.ctx
            .store
            .create_token(&tokenwarden_store::TokenRecord {
                id: TokenId(uuid::Uuid::new_v4()),
                name: tokenwarden_domain::TokenName::parse(&format!("bulk-{i:04}")).unwrap(),
                provider: tokenwarden_domain::ProviderId::parse(provider).unwrap(),
                grant: Default::default(),
                app_id: None,
                settings: Default::default(),
                client_id: None,
                client_secret: None,
                client_secret_2: None,
                client_auth: None,
                client_secret_expires_at: None,
                material: Default::default(),
                status,
                status_reason: None,
                version: 1,
                created_at: now,
                updated_at: now,
            })
            .await
            .unwrap();
    }
    let rows = |body: &str| {
        body.matches("href=\"/tokens/").count() - body.matches("href=\"/tokens/new\"").count()
    };
    let next_of = |body: &str| {
        let start = body.find("rel=\"next\" href=\"")? + 17;
        Some(
            body[start..start + body[start..].find('"')?]
                .replace("&#38;", "&")
                .replace("&amp;", "&"),
        )
    };

    let started = std::time::Instant::now();
    let first = b.get(&t, "/tokens").await;
    let took = started.elapsed();
    assert_eq!(first.status, 200);
    assert_eq!(rows(&first.body), 100, "the first page only");
    assert!(first.body.contains("bulk-0000") && !first.body.contains("bulk-0100"));
    assert!(took < std::time::Duration::from_secs(1), "{took:?}");
    let next = next_of(&first.body).expect("a next link");
    let second = b.get(&t, &next).await;
    assert_eq!(second.status, 200);
    assert_eq!(rows(&second.body), 100);
    assert!(
        second.body.contains("bulk-0100") && !second.body.contains("bulk-0099"),
        "{next}: {}",
        &second.body[second.body.len().saturating_sub(3000)..]
    );

    // The filter narrows server-side, and its next link keeps it.
    let f = b
        .get(
            &t,
            "/tokens?name=bulk-01&provider=snowflake&status=&limit=20",
        )
        .await;
    assert_eq!(f.status, 200);
    assert_eq!(
        rows(&f.body),
        20,
        "bulk-0100..bulk-0199, even ones: 50, 20 a page"
    );
    assert!(f.body.contains("bulk-0100") && !f.body.contains("bulk-0101"));
    let next = next_of(&f.body).expect("a next link");
    assert!(
        next.contains("name=bulk-01") && next.contains("provider=snowflake"),
        "{next}"
    );
    let f2 = b.get(&t, &next).await;
    assert_eq!(rows(&f2.body), 20);
    assert!(f2.body.contains("bulk-0140") && !f2.body.contains("bulk-0138"));
    let dead = b
        .get(&t, "/tokens?status=needs_reauthorization&limit=1000")
        .await;
    assert_eq!(rows(&dead.body), 250);
    assert!(
        next_of(&dead.body).is_none(),
        "the last page has no next link"
    );
    // A limit outside 1..=1000 or a cursor this list did not answer is refused.
    for bad in [
        "/tokens?limit=0",
        "/tokens?limit=1001",
        "/tokens?cursor=bm90LWEtY3Vyc29y",
    ] {
        let r = b.get(&t, bad).await;
        assert!((400..500).contains(&r.status), "{bad}: {}", r.status);
    }
}

/// The `rel` link of a page ("next" or "prev"), unescaped.
fn page_link(body: &str, rel: &str) -> Option<String> {
    let marker = format!("rel=\"{rel}\" href=\"");
    let start = body.find(&marker)? + marker.len();
    Some(
        body[start..start + body[start..].find('"')?]
            .replace("&#38;", "&")
            .replace("&amp;", "&"),
    )
}

/// Which of `names` a page shows in its rows (`row` makes a row's text of a name).
fn shown(body: &str, names: &[String], row: fn(&str) -> String) -> Vec<String> {
    names
        .iter()
        .filter(|n| body.contains(&row(n)))
        .cloned()
        .collect()
}

fn cell(name: &str) -> String {
    format!(">{name}<")
}

/// Walks a UI list of `names` (in the order the page sorts them), `limit` rows a page: page 1
/// shows the first `limit`, its next link the following ones, that page's previous link page 1
/// again; each link keeps `keep` (the filter).
async fn walk_pages(
    b: &Browser,
    t: &TestApp,
    first: &str,
    names: &[String],
    limit: usize,
    keep: &str,
    row: fn(&str) -> String,
) {
    let p1 = b.get(t, first).await;
    assert_eq!(p1.status, 200, "{first}");
    assert_eq!(
        shown(&p1.body, names, row),
        names[..limit],
        "{first}: page 1"
    );
    assert!(
        page_link(&p1.body, "prev").is_none(),
        "page 1 has no previous page"
    );
    let next = page_link(&p1.body, "next").expect("a next link");
    assert!(next.contains(keep), "{next} keeps {keep}");
    let p2 = b.get(t, &next).await;
    assert_eq!(p2.status, 200, "{next}");
    assert_eq!(
        shown(&p2.body, names, row),
        names[limit..2 * limit],
        "{next}: page 2"
    );
    let prev = page_link(&p2.body, "prev").expect("a previous link");
    assert!(prev.contains(keep), "{prev} keeps {keep}");
    let back = b.get(t, &prev).await;
    assert_eq!(
        shown(&back.body, names, row),
        names[..limit],
        "{prev}: page 1 again"
    );
    // The last page has no next link.
    let mut page = p2;
    let mut seen = 2 * limit;
    while let Some(next) = page_link(&page.body, "next") {
        page = b.get(t, &next).await;
        let rows = shown(&page.body, names, row);
        assert_eq!(rows, names[seen..(seen + limit).min(names.len())], "{next}");
        seen += rows.len();
    }
    assert_eq!(seen, names.len());
}

/// Issue 10 item 4: the apps page shows one page of apps (by name) with previous/next links.
#[tokio::test]
async fn issue10_apps_page_pages() {
    let t = spawn(Db::Sqlite).await;
    make_admin(&t).await;
    let b = sign_in(&t).await;
    let names: Vec<String> = (0..25).map(|i| format!("paged-app-{i:02}")).collect();
    for n in &names {
        tokenwarden_server::ops::apps::create(
            &t.ctx,
            "test",
            tokenwarden_server::ops::apps::NewApp {
                name: tokenwarden_domain::AppName::parse(n).unwrap(),
                tokens: vec![],
            },
        )
        .await
        .unwrap();
    }
    walk_pages(&b, &t, "/apps?limit=10", &names, 10, "limit=10", cell).await;
}

/// Issue 10 item 4: the audit log pages newest first, and its links keep the filter.
#[tokio::test]
async fn issue10_audit_page_pages_and_keeps_the_filter() {
    let t = spawn(Db::Sqlite).await;
    make_admin(&t).await;
    let b = sign_in(&t).await;
    let mut names: Vec<String> = (0..25).map(|i| format!("audited-app-{i:02}")).collect();
    for n in &names {
        t.clock.advance(chrono::Duration::seconds(1));
        tokenwarden_server::ops::apps::create(
            &t.ctx,
            "test",
            tokenwarden_server::ops::apps::NewApp {
                name: tokenwarden_domain::AppName::parse(n).unwrap(),
                tokens: vec![],
            },
        )
        .await
        .unwrap();
    }
    names.reverse(); // newest first
    // The audit row names the object ("app NAME"); the filter's app list names them all.
    walk_pages(
        &b,
        &t,
        "/audit?action=app.create&limit=10",
        &names,
        10,
        "action=app.create",
        |n| format!(">app {n}<"),
    )
    .await;
}

/// Issue 10 item 4: the notifications page lists one page of channels, oldest first.
#[tokio::test]
async fn issue10_channels_list_pages() {
    let t = spawn(Db::Sqlite).await;
    make_admin(&t).await;
    let b = sign_in(&t).await;
    let names: Vec<String> = (0..25).map(|i| format!("paged-channel-{i:02}")).collect();
    for n in &names {
        t.clock.advance(chrono::Duration::seconds(1));
        tokenwarden_server::ops::channels::create(
            &t.ctx,
            "test",
            tokenwarden_server::ops::channels::NewChannel {
                name: n.clone(),
                target: tokenwarden_server::ops::channels::Target::Webhook {
                    url: "http://127.0.0.1:9/hook".into(),
                },
                events: vec![],
                app: None,
                enabled: true,
            },
        )
        .await
        .unwrap();
    }
    walk_pages(
        &b,
        &t,
        "/notifications?limit=10",
        &names,
        10,
        "limit=10",
        cell,
    )
    .await;
}

/// Issue 10 item 4: a channel's delivery log pages, newest first.
#[tokio::test]
async fn issue10_channel_delivery_log_pages() {
    let t = spawn(Db::Sqlite).await;
    make_admin(&t).await;
    let b = sign_in(&t).await;
    let (channel, _) = tokenwarden_server::ops::channels::create(
        &t.ctx,
        "test",
        tokenwarden_server::ops::channels::NewChannel {
            name: "hook".into(),
            target: tokenwarden_server::ops::channels::Target::Webhook {
                url: "http://127.0.0.1:9/hook".into(),
            },
            events: vec![],
            app: None,
            enabled: true,
        },
    )
    .await
    .unwrap();
    let mut names: Vec<String> = (0..25).map(|i| format!("delivery-error-{i:02}")).collect();
    for n in &names {
        t.clock.advance(chrono::Duration::seconds(1));
        t.ctx
            .store
            .append_delivery(&tokenwarden_store::DeliveryRecord {
                id: uuid::Uuid::new_v4().to_string(),
                job_id: uuid::Uuid::new_v4().to_string(),
                channel_id: channel.id.clone(),
                event_id: uuid::Uuid::new_v4().to_string(),
                event_kind: "token.expiring".into(),
                attempt: 1,
                at: t.clock_now(),
                outcome: "failed".into(),
                status_code: Some(500),
                error: Some(n.clone()),
            })
            .await
            .unwrap();
    }
    names.reverse(); // newest first
    let first = format!("/notifications/{}?limit=10", channel.id);
    walk_pages(&b, &t, &first, &names, 10, "limit=10", cell).await;
}

// --- issue 11: the UI walk ------------------------------------------------------------------

/// The `next` a sign-in redirect carries, decoded, and whether it says the session ended.
fn login_target(location: &str) -> (String, bool) {
    assert!(location.starts_with("/login?"), "{location}");
    let q: Vec<(String, String)> =
        serde_urlencoded::from_str(&location["/login?".len()..]).unwrap();
    let next = q
        .iter()
        .find(|(k, _)| k == "next")
        .map(|(_, v)| v.clone())
        .unwrap_or_default();
    (next, q.iter().any(|(k, _)| k == "ended"))
}

#[tokio::test]
async fn issue11_item1_an_ended_session_says_so_and_signing_in_comes_back_to_the_page() {
    let t = spawn(Db::Sqlite).await;
    let (_, token) = t.seed().await;
    let id = token["id"].as_str().unwrap();
    make_admin(&t).await;
    let b = sign_in(&t).await;
    t.clock.advance(chrono::Duration::minutes(121)); // idle too long: the session has ended
    let form = format!("/tokens/{id}/edit");

    // "Test connection" (htmx) on a stale form: a 401 ui.js turns into a banner, pointing the
    // sign-in back at the form the request came from, never at the POST's own address.
    let r = done(
        client()
            .post(t.url(&format!("/tokens/{id}/test")))
            .header("cookie", &b.cookie)
            .header("hx-request", "true")
            .header("hx-current-url", t.url(&form))
            .header("x-csrf-token", &b.csrf),
    )
    .await;
    assert_eq!(r.status, 401);
    assert!(r.body.contains("session has ended"), "{}", r.body);
    assert_eq!(
        login_target(r.header("x-tokenwarden-login")),
        (form.clone(), true)
    );

    // "Get OAuth 2.0 Access Token" asks for JSON: it gets JSON, not a sign-in page.
    let r = done(
        client()
            .post(t.url(&format!("/tokens/{id}/authorize")))
            .header("cookie", &b.cookie)
            .header("accept", "application/json")
            .header("x-csrf-token", &b.csrf),
    )
    .await;
    assert_eq!(r.status, 401);
    let body: serde_json::Value = serde_json::from_str(&r.body).unwrap();
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("session has ended")
    );
    assert_eq!(
        login_target(body["login"].as_str().unwrap()),
        (format!("/tokens/{id}"), true)
    );

    // A plain form post ("Update"): back to the form's page, not to a POST-only address.
    let r = b.post(&t, &form, &[("client_id", "x")]).await;
    assert_eq!(r.status, 303);
    let location = r.header("location").to_owned();
    assert_eq!(login_target(&location), (form.clone(), true));
    for (post, page) in [
        (format!("/tokens/{id}/test"), format!("/tokens/{id}")),
        (
            format!("/tokens/{id}/client-secrets"),
            format!("/tokens/{id}"),
        ),
        ("/apps/x/keys/y/revoke".to_owned(), "/apps/x".to_owned()),
        (
            "/notifications/lead-times".to_owned(),
            "/notifications".to_owned(),
        ),
    ] {
        let r = b.post(&t, &post, &[]).await;
        assert_eq!(login_target(r.header("location")).0, page, "{post}");
    }

    // The sign-in page says the session ended, and signing in lands on the form, which answers.
    let page = done(client().get(t.url(&location))).await;
    assert_eq!(page.status, 200);
    assert!(
        page.body.contains("Your session has ended"),
        "{}",
        page.body
    );
    let r = done(client().post(t.url("/login")).form(&[
        ("username", USER),
        ("password", PASSWORD),
        ("next", form.as_str()),
    ]))
    .await;
    assert_eq!(r.status, 303);
    assert_eq!(r.header("location"), form);
    let (value, _) = r.session_cookie().unwrap();
    let back = done(
        client()
            .get(t.url(&form))
            .header("cookie", format!("tw_session={value}")),
    )
    .await;
    assert_eq!(back.status, 200);
    // Never signed in at all: no "ended" message.
    let r = done(client().get(t.url(&form))).await;
    assert_eq!(login_target(r.header("location")), (form.clone(), false));
    let page = done(client().get(t.url(r.header("location")))).await;
    assert!(!page.body.contains("Your session has ended"));
}

/// The key on a shown-once page.
fn secret_on(body: &str, prefix: &str) -> String {
    let start = body
        .find(prefix)
        .unwrap_or_else(|| panic!("no {prefix} in {body}"));
    body[start..start + body[start..].find('"').unwrap()].to_owned()
}

#[tokio::test]
async fn issue11_item2_shown_once_pages_are_post_redirect_get_and_a_reload_makes_nothing() {
    let t = spawn(Db::Sqlite).await;
    let (app, _) = t.seed().await;
    let app_id = app["id"].as_str().unwrap();
    let aid = tokenwarden_domain::AppId::parse(app_id);
    make_admin(&t).await;
    let b = sign_in(&t).await;
    let other = sign_in(&t).await;
    let keys = || async { t.ctx.store.list_api_keys(aid).await.unwrap().len() };
    let before = keys().await;

    let r = b
        .post(&t, &format!("/apps/{app_id}/keys"), &[("label", "ci")])
        .await;
    assert_eq!(r.status, 303);
    assert!(
        r.header("location")
            .starts_with("/shown-once?secret=api-key&of=")
    );
    assert!(!r.body.contains("tw_app_"));
    // Another session cannot open it, even with the cookie.
    let sealed = r
        .headers
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().split(';').next().unwrap().to_owned())
        .find(|c| c.starts_with("tw_shown_once="))
        .expect("the page travels in a cookie");
    assert!(!sealed.contains("tw_app_"), "sealed, not the key");
    let stolen = done(
        client()
            .get(t.url("/shown-once"))
            .header("cookie", format!("{}; {sealed}", other.cookie)),
    )
    .await;
    assert_eq!(stolen.status, 410);
    assert!(!stolen.body.contains("tw_app_"));
    let (page, with_it) = b.follow(&t, &r).await;
    assert_eq!(page.status, 200);
    assert_eq!(page.header("cache-control"), "no-store");
    let key = secret_on(&page.body, "tw_app_");
    // Reloading (the browser dropped the cookie) or replaying the cookie shows it no more and
    // makes no key.
    for _ in 0..3 {
        for again in [
            b.get(&t, "/shown-once").await,
            done(
                client()
                    .get(t.url("/shown-once"))
                    .header("cookie", &with_it),
            )
            .await,
        ] {
            assert_eq!(again.status, 410);
            assert!(!again.body.contains("tw_app_"), "{}", again.body);
            assert!(again.body.contains("shown once"));
            assert!(again.body.contains("not kept"));
        }
    }
    assert_eq!(keys().await, before + 1, "one POST, one key");
    // Reloaded at its address, the page says which secret it was and how to get another.
    let gone = b.get(&t, r.header("location")).await;
    assert_eq!(gone.status, 410);
    let app_name = app["name"].as_str().unwrap();
    assert!(
        gone.body
            .contains(&format!("The API key of app {app_name}</strong>"))
            && gone.body.contains("rotate it")
            && gone.body.contains(&format!(r#"href="/apps/{app_id}""#)),
        "{}",
        gone.body
    );
    assert!(!gone.body.contains("tw_app_"));
    let (s, _, _) = t
        .send(
            reqwest::Method::GET,
            &format!("/api/v1/apps/{app_id}"),
            Some(&key),
            None,
        )
        .await;
    assert_eq!(s, 200, "the key shown works");

    // A new app and a new webhook channel: the same.
    let r = b
        .post(&t, "/apps", &[("name", "billing"), ("tokens", "")])
        .await;
    assert_eq!(r.status, 303);
    let (page, with_it) = b.follow(&t, &r).await;
    assert!(page.body.contains("App billing created"));
    secret_on(&page.body, "tw_app_");
    assert_eq!(b.get(&t, "/shown-once").await.status, 410);
    let replay = done(
        client()
            .get(t.url("/shown-once"))
            .header("cookie", &with_it),
    )
    .await;
    assert_eq!(replay.status, 410);
    assert!(!replay.body.contains("tw_app_"));
    assert_eq!(t.ctx.store.list_apps().await.unwrap().len(), 2);

    let r = b
        .post(
            &t,
            "/notifications",
            &[
                ("name", "hook"),
                ("kind", "webhook"),
                ("url", "http://127.0.0.1:9/h"),
            ],
        )
        .await;
    assert_eq!(r.status, 303);
    let (page, with_it) = b.follow(&t, &r).await;
    assert!(page.body.contains("signing secret"));
    secret_on(&page.body, "whsec_");
    for again in [
        b.get(&t, "/shown-once").await,
        done(
            client()
                .get(t.url("/shown-once"))
                .header("cookie", &with_it),
        )
        .await,
    ] {
        assert_eq!(again.status, 410);
        assert!(!again.body.contains("whsec_"));
    }
    assert_eq!(t.ctx.store.list_channels().await.unwrap().len(), 1);
    let gone = b.get(&t, r.header("location")).await;
    assert_eq!(gone.status, 410);
    assert!(
        gone.body
            .contains("The signing secret of webhook channel hook</strong>")
            && gone.body.contains("delete the channel and create it again"),
        "{}",
        gone.body
    );
    assert!(!gone.body.contains("whsec_"));
}

/// A token of the seed made usable (or not) with the given status and expiries.
async fn set_token(t: &TestApp, id: &str, status: TokenStatus, refresh_days: i64, access_min: i64) {
    let tid = TokenId::parse(id).unwrap();
    let mut tok = t.ctx.store.get_token(tid).await.unwrap();
    let now = t.clock.now();
    tok.status = status;
    tok.material.refresh_expires_at = Some(now + chrono::Duration::days(refresh_days));
    tok.material.access_expires_at = Some(now + chrono::Duration::minutes(access_min));
    tok.material.issued_at = Some(now);
    t.ctx.store.update_token(&tok, now).await.unwrap();
}

/// The global token `name` (Microsoft, no secrets needed to exist).
async fn global_token(t: &TestApp, name: &str) -> String {
    let (s, token) = t
        .admin(
            reqwest::Method::POST,
            "/api/v1/tokens",
            Some(serde_json::json!({"name": name, "provider": "microsoft", "settings": {"tenant": "contoso.onmicrosoft.com"}})),
        )
        .await;
    assert_eq!(s, 201, "{token}");
    token["id"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn issue11_item3_sign_in_again_is_on_the_row_the_detail_and_the_form_with_one_update() {
    let t = spawn(Db::Sqlite).await;
    make_admin(&t).await;
    let dead = global_token(&t, "graph-dead").await;
    let fine = global_token(&t, "graph-fine").await;
    set_token(&t, &dead, TokenStatus::NeedsReauthorization, 30, 10).await;
    set_token(&t, &fine, TokenStatus::Healthy, 60, 10).await;
    let b = sign_in(&t).await;
    let signin_for = |id: &str| format!(r#"action="/tokens/{id}/authorize""#);

    let list = b.get(&t, "/tokens").await;
    assert!(
        list.body.contains(&signin_for(&dead)),
        "the row of the dead token"
    );
    assert!(
        !list.body.contains(&signin_for(&fine)),
        "not on a healthy one"
    );
    assert!(list.body.contains(">Re-authorize</button>"));

    let detail = b.get(&t, &format!("/tokens/{dead}")).await;
    let at = detail
        .body
        .find(&signin_for(&dead))
        .expect("on the detail page");
    assert!(
        at < detail.body.find("<h2>Status</h2>").unwrap(),
        "at the top, above the status"
    );
    assert!(
        !b.get(&t, &format!("/tokens/{fine}"))
            .await
            .body
            .contains(&signin_for(&fine))
    );

    let form = b.get(&t, &format!("/tokens/{dead}/edit")).await;
    assert_eq!(
        form.body.matches(">Save</button>").count(),
        1,
        "one Save button"
    );
    assert!(!form.body.contains("Update") && !form.body.contains(">Done<"));
    let bar = &form.body[form
        .body
        .find(r#"class="formbar""#)
        .expect("the sticky bar")..];
    let bar = &bar[..bar.find("</div>\n</div>").unwrap()];
    assert!(bar.contains(">Save</button>"));
    assert!(
        bar.contains(&signin_for(&dead)) && bar.contains(">Re-authorize</button>"),
        "{bar}"
    );
    assert!(bar.contains("Test connection"));
    assert_eq!(
        form.body.matches(&signin_for(&dead)).count(),
        1,
        "one sign-in button"
    );
    let fine_form = b.get(&t, &format!("/tokens/{fine}/edit")).await;
    assert!(
        fine_form
            .body
            .contains(">Get OAuth 2.0 Access Token</button>")
    );
    assert!(!fine_form.body.contains(">Re-authorize</button>"));
}

#[tokio::test]
async fn issue11_item4_wording_expired_not_expires_ago_one_label_for_a_missing_token_names_in_audit()
 {
    let t = spawn(Db::Sqlite).await;
    let (app, token) = t.seed().await;
    let id = token["id"].as_str().unwrap();
    make_admin(&t).await;
    set_token(&t, id, TokenStatus::Healthy, 30, -5 * 24 * 60).await;
    let b = sign_in(&t).await;
    // The app's page lists its own token with the access token's expiry.
    let app_id = app["id"].as_str().unwrap();
    let page = b.get(&t, &format!("/apps/{app_id}")).await;
    assert!(page.body.contains("expired 5 days ago"), "{}", page.body);
    assert!(!page.body.contains(">5 days ago<"), "the old wording");
    set_token(&t, id, TokenStatus::Healthy, 30, 40).await;
    let page = b.get(&t, &format!("/apps/{app_id}")).await;
    assert!(page.body.contains("expires in 40 minutes"), "{}", page.body);

    // An app using a token that does not exist: one label, not three.
    let r = b
        .post(
            &t,
            &format!("/apps/{app_id}"),
            &[("tokens", "snowflake-sales, ghost-token")],
        )
        .await;
    assert_eq!(r.status, 303);
    for (page, end) in [
        ("/apps".to_owned(), "</div>"),
        (format!("/apps/{app_id}"), "</tr>"),
    ] {
        let body = b.get(&t, &page).await.body;
        let at = body.find("ghost-token").unwrap();
        let row = &body[at..at + body[at..].find(end).unwrap()];
        assert!(row.contains("no such token"), "{page}: {row}");
        assert!(!row.contains("missing"), "{page}: {row}");
        assert!(!row.contains("not authorized yet"), "{page}: {row}");
    }

    // token.read rows name the token, like every other row (the reads an app made, counted in
    // memory on the read path, are written by the background pass).
    let tid = TokenId::parse(id).unwrap();
    t.ctx.reads.record(
        tid,
        tokenwarden_server::reads::ReadBy::App(tokenwarden_domain::AppId::parse(app_id).unwrap()),
        t.clock.now(),
    );
    t.pass().await;
    let reads = t
        .ctx
        .store
        .list_audit(&AuditFilter {
            action: Some("token.read".into()),
            limit: 10,
            ..AuditFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(reads.len(), 1, "{reads:?}");
    assert_eq!(reads[0].object_name.as_deref(), Some("snowflake-sales"));
    let audit = b.get(&t, "/audit?action=token.read").await;
    assert!(
        audit.body.contains("token snowflake-sales"),
        "{}",
        audit.body
    );
    assert!(!audit.body.contains(&format!("token {id}")));
}

#[tokio::test]
async fn issue11_item5_the_notifications_page_lists_reminders_to_come_and_sent_and_logs_test_sends()
{
    let t = spawn(Db::Sqlite).await;
    make_admin(&t).await;
    let id = global_token(&t, "graph-mail").await;
    set_token(&t, &id, TokenStatus::Healthy, 10, 30).await;
    let b = sign_in(&t).await;
    let leads = b
        .post(
            &t,
            "/notifications/lead-times",
            &[("lead_times", "14d, 7d, 1d")],
        )
        .await;
    assert_eq!(leads.status, 303);
    let page = b.get(&t, "/notifications").await.body;
    let coming = &page[page.find("Coming up").unwrap()..page.find(">Sent<").unwrap()];
    assert!(coming.contains("graph-mail"), "{coming}");
    assert!(
        coming.contains("7 days before expiry") && coming.contains("in 3 days"),
        "{coming}"
    );
    assert!(
        coming.contains("1 day before expiry") && coming.contains("in 9 days"),
        "{coming}"
    );
    assert!(
        coming.contains("at expiry") && coming.contains("in 10 days"),
        "{coming}"
    );
    assert!(
        !coming.contains("14 days before expiry"),
        "already due: {coming}"
    );
    assert!(page.contains("No reminder sent yet"));

    t.pass().await; // the 14-day reminder is due now
    let page = b.get(&t, "/notifications").await.body;
    let sent = &page[page.find(">Sent<").unwrap()..page.find("<h2>Channels</h2>").unwrap()];
    assert!(
        sent.contains("graph-mail") && sent.contains("14 days before expiry"),
        "{sent}"
    );

    // A test send shows in the channel's delivery log.
    let (s, ch) = t
        .admin(
            reqwest::Method::POST,
            "/api/v1/notification-channels",
            Some(serde_json::json!({"name": "ops", "kind": "webhook", "url": "http://127.0.0.1:9/hook"})),
        )
        .await;
    assert_eq!(s, 201, "{ch}");
    let cid = ch["id"].as_str().unwrap();
    let before = b.get(&t, &format!("/notifications/{cid}")).await.body;
    assert!(before.contains("Nothing delivered yet"));
    let r = done(
        client()
            .post(t.url(&format!("/notifications/{cid}/test")))
            .header("cookie", &b.cookie)
            .header("x-csrf-token", &b.csrf)
            .header("hx-request", "true"),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let log = b.get(&t, &format!("/notifications/{cid}")).await.body;
    assert!(!log.contains("Nothing delivered yet"), "{log}");
    assert!(log.contains(r#"<td data-label="Event">test</td>"#), "{log}");
}

#[tokio::test]
async fn issue11_item7_a_favicon_and_a_skip_link() {
    let t = spawn(Db::Sqlite).await;
    make_admin(&t).await;
    for path in ["/favicon.ico", "/favicon.svg"] {
        let r = done(client().get(t.url(path))).await;
        assert_eq!(r.status, 200, "{path}");
        assert_eq!(r.header("content-type"), "image/svg+xml");
        assert!(r.body.starts_with("<svg"));
    }
    let b = sign_in(&t).await;
    let page = b.get(&t, "/tokens").await.body;
    let skip = page
        .find(r##"<a class="skiplink" href="#content">Skip to content</a>"##)
        .expect("a skip link");
    assert!(skip < page.find("<nav").unwrap(), "before the navigation");
    assert!(page.contains(r#"id="content""#));
    assert!(page.contains(r#"rel="icon""#));
    let login = done(client().get(t.url("/login"))).await.body;
    assert!(login.contains(r#"rel="icon""#));
}
