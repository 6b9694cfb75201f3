//! Issue 11 item 5 and issue 10 item 4 in the web UI: what a page reads is what it shows.
//! The reminders coming up are read by reminder time, a page at a time; the audit filter, the
//! channel and token forms' app fields are typed (suggesting a bounded few names); the app
//! page pages its own tokens; the tokens page reads only the apps of the tokens it shows. The
//! reminders coming up include the client secrets' (issue 12's expiry, issue 13).
//!
//! "Reads only what it shows" is checked with a stored row the page does not show that cannot
//! be read (its state is not one tokenwarden knows): a page that read every row fails on it.

use super::{Browser, Res, make_admin, sign_in};
use crate::support::{Db, TestApp, spawn};
use reqwest::Method;
use serde_json::json;
use tokenwarden_domain::{Clock, Expiring, LeadTime, TokenId, TokenStatus};
use tokenwarden_server::ops;

async fn token(t: &TestApp, name: &str, app: Option<&str>) -> TokenId {
    let (s, tok) = t
        .admin(
            Method::POST,
            "/api/v1/tokens",
            Some(json!({"name": name, "provider": "microsoft", "app": app,
                "settings": {"tenant": "contoso.onmicrosoft.com"}})),
        )
        .await;
    assert_eq!(s, 201, "{tok}");
    TokenId::parse(tok["id"].as_str().unwrap()).unwrap()
}

/// Signed in, with a refresh token expiring `hours` from now.
async fn expiring(t: &TestApp, id: TokenId, hours: i64) {
    let mut tok = t.ctx.store.get_token(id).await.unwrap();
    let now = t.clock.now();
    tok.status = TokenStatus::Healthy;
    tok.material.refresh_expires_at = Some(now + chrono::Duration::hours(hours));
    tok.material.issued_at = Some(now);
    t.ctx.store.update_token(&tok, now).await.unwrap();
}

async fn app(t: &TestApp, name: &str, tokens: &[&str]) -> String {
    let (s, a) = t
        .admin(
            Method::POST,
            "/api/v1/apps",
            Some(json!({"name": name, "tokens": tokens})),
        )
        .await;
    assert_eq!(s, 201, "{a}");
    a["id"].as_str().unwrap().to_owned()
}

/// Makes app `zz-corrupt`'s own token `zz-corrupt` (and with `app`, the app itself) unreadable
/// (a state no version of tokenwarden writes): a page that reads every token (or every app)
/// fails on it; one that reads what it shows does not.
async fn corrupt_rows(t: &TestApp, app: bool) {
    let url = format!("sqlite://{}", t.sqlite_path().unwrap().display());
    let side = tokenwarden_store::SqlStore::connect(&url).await.unwrap();
    // An UPDATE returns no row: `diagnostic` says so after the statement ran.
    let _ = side
        .diagnostic("UPDATE tokens SET status = 'bogus' WHERE name = 'zz-corrupt'")
        .await;
    assert!(t.ctx.store.list_tokens().await.is_err());
    if app {
        let _ = side
            .diagnostic("UPDATE apps SET state = 'bogus' WHERE name = 'zz-corrupt'")
            .await;
        assert!(t.ctx.store.list_apps().await.is_err());
    }
}

/// The `<option value=...>`s of the datalist `id` on the page.
fn datalist(page: &str, id: &str) -> Vec<String> {
    let start = page
        .find(&format!(r#"<datalist id="{id}">"#))
        .unwrap_or_else(|| panic!("no datalist {id}"));
    let list = &page[start..start + page[start..].find("</datalist>").unwrap()];
    list.split(r#"<option value=""#)
        .skip(1)
        .map(|o| o[..o.find('"').unwrap()].to_owned())
        .collect()
}

fn next_link(page: &str) -> Option<String> {
    let at = page.find(r#"<a rel="next" href=""#)? + 20;
    Some(
        page[at..at + page[at..].find('"').unwrap()]
            .replace("&amp;", "&")
            .replace("&#38;", "&"),
    )
}

/// The token names of a reminders table, in order.
fn reminder_tokens(page: &str) -> Vec<(String, String)> {
    let body = &page[page.find("<tbody>").unwrap()..page.find("</tbody>").unwrap()];
    body.split("<tr>")
        .skip(1)
        .map(|row| {
            let link = row.find("<a href=").unwrap();
            let a = link + row[link..].find("\">").unwrap() + 2;
            let name = row[a..a + row[a..].find('<').unwrap()].to_owned();
            let cell = r#"<td data-label="Reminder">"#;
            let l = row.find(cell).unwrap() + cell.len();
            let lead = row[l..l + row[l..].find('<').unwrap()].to_owned();
            (name, lead)
        })
        .collect()
}

/// The issue's case: token A expires in 10 days with a 1-day lead (reminder in 9 days), token
/// B in 40 days with a 30-day lead (reminder in 10 days), and more tokens than a page expiring
/// between them whose next reminders come later. Before, only the 20 tokens expiring first
/// were looked at, so B's reminder (the second to come) was missing.
#[tokio::test]
async fn issue11_item5_reminders_coming_up_are_read_by_reminder_time_and_paged() {
    let t = spawn(Db::Sqlite).await;
    make_admin(&t).await;
    ops::channels::set_lead_times(&t.ctx, "test", vec![LeadTime::days(30), LeadTime::days(1)])
        .await
        .unwrap();
    let a = token(&t, "token-a", None).await;
    expiring(&t, a, 10 * 24).await;
    let b = token(&t, "token-b", None).await;
    expiring(&t, b, 40 * 24).await;
    // 25 tokens expiring in 12 to 28 days: their 30-day lead is past, their next reminder is
    // a day before they expire (11 to 27 days from now), after B's.
    for i in 0..25 {
        let id = token(&t, &format!("filler-{i:02}"), None).await;
        expiring(&t, id, 12 * 24 + i * 16).await;
    }
    let b_ = sign_in(&t).await;
    let page = b_.get(&t, "/notifications").await;
    assert_eq!(page.status, 200);
    let coming =
        &page.body[page.body.find("Coming up").unwrap()..page.body.find(">Sent<").unwrap()];
    let rows = reminder_tokens(coming);
    assert_eq!(rows.len(), 20, "one page: {rows:?}");
    assert_eq!(rows[0], ("token-a".into(), "1 day before expiry".into()));
    // B's reminder and A's expiry are both 10 days away.
    let mut second: Vec<_> = rows[1..3].to_vec();
    second.sort();
    assert_eq!(
        second,
        [
            ("token-a".into(), "at expiry".into()),
            ("token-b".into(), "30 days before expiry".into())
        ]
    );
    assert_eq!(rows[3], ("filler-00".into(), "1 day before expiry".into()));
    let at = coming
        .find(r#"href="/notifications/upcoming?"#)
        .expect("a link to the reminders after the first page")
        + 6;
    let more = coming[at..at + coming[at..].find('"').unwrap()]
        .replace("&amp;", "&")
        .replace("&#38;", "&");

    // Every reminder to come, page by page, each once, in order: A's 2, B's 3, 2 per filler.
    let mut all = rows.clone();
    let mut next = Some(more);
    let mut pages = 1;
    while let Some(link) = next {
        let p = b_.get(&t, &link).await;
        assert_eq!(p.status, 200, "{link}");
        all.extend(reminder_tokens(&p.body));
        next = next_link(&p.body);
        pages += 1;
        assert!(pages < 10);
    }
    assert_eq!(all.len(), 2 + 3 + 25 * 2, "{all:?}");
    let mut unique = all.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), all.len(), "no reminder twice");
    // In time order: the core's list, a page of 7 at a time, agrees and never goes back.
    let mut params = ops::lists::PageParams {
        limit: Some(7),
        cursor: None,
    };
    let mut times = Vec::new();
    loop {
        let page = ops::lists::upcoming_reminders(&t.ctx, &params)
            .await
            .unwrap();
        assert!(page.items.len() <= 7);
        times.extend(page.items.iter().map(|r| (r.at, r.token_name.clone())));
        match page.next_cursor {
            Some(c) => params.cursor = Some(c),
            None => break,
        }
    }
    assert_eq!(times.len(), all.len());
    assert!(times.windows(2).all(|w| w[0].0 <= w[1].0), "{times:?}");
    assert_eq!(
        times.iter().map(|(_, n)| n.as_str()).collect::<Vec<_>>(),
        all.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>()
    );
    assert_eq!(times[1].0, t.clock.now() + chrono::Duration::days(10));
    // A token the page does not show is not read.
    app(&t, "zz-corrupt", &[]).await;
    token(&t, "zz-corrupt", Some("zz-corrupt")).await;
    corrupt_rows(&t, false).await;
    assert_eq!(b_.get(&t, "/notifications").await.status, 200);
}

/// Issue 13 with issue 12's client-secret expiry: the reminders coming up list the client
/// secret's (saying so) among the refresh tokens', in time order, a page at a time. Token
/// `azure`'s refresh token and client secret expire at the same instant in 10 days (so
/// every page boundary below falls between two reminders at the same time); `graph` has only
/// a client secret, expiring in 5 days.
#[tokio::test]
async fn issue13_reminders_coming_up_list_client_secret_expiries_too() {
    let t = spawn(Db::Sqlite).await;
    make_admin(&t).await;
    ops::channels::set_lead_times(&t.ctx, "test", vec![LeadTime::days(7), LeadTime::days(1)])
        .await
        .unwrap();
    let now = t.clock.now();
    let azure = token(&t, "azure", None).await;
    expiring(&t, azure, 10 * 24).await;
    let graph = token(&t, "graph", None).await;
    for (id, days) in [(azure, 10), (graph, 5)] {
        let mut tok = t.ctx.store.get_token(id).await.unwrap();
        tok.status = TokenStatus::Healthy;
        tok.client_secret_expires_at = Some(now + chrono::Duration::days(days));
        t.ctx.store.update_token(&tok, now).await.unwrap();
    }
    let secret = |lead: &str| format!("{lead} of the client secret");
    let expected: Vec<(String, String)> = [
        ("azure", "7 days before expiry".to_owned()),
        ("azure", secret("7 days before expiry")),
        ("graph", secret("1 day before expiry")),
        ("graph", secret("at expiry")),
        ("azure", "1 day before expiry".to_owned()),
        ("azure", secret("1 day before expiry")),
        ("azure", "at expiry".to_owned()),
        ("azure", secret("at expiry")),
    ]
    .into_iter()
    .map(|(n, l)| (n.to_owned(), l))
    .collect();
    let b = sign_in(&t).await;
    let page = b.get(&t, "/notifications").await;
    assert_eq!(page.status, 200);
    let coming =
        &page.body[page.body.find("Coming up").unwrap()..page.body.find(">Sent<").unwrap()];
    assert_eq!(reminder_tokens(coming), expected);
    // Pages of 3 on the upcoming page, and of 1 from the core: each reminder once, in order.
    let mut all = Vec::new();
    let mut next = Some("/notifications/upcoming?limit=3".to_owned());
    let mut pages = 0;
    while let Some(link) = next {
        let p = b.get(&t, &link).await;
        assert_eq!(p.status, 200, "{link}");
        all.extend(reminder_tokens(&p.body));
        next = next_link(&p.body);
        pages += 1;
        assert!(pages < 5);
    }
    assert_eq!(pages, 3);
    assert_eq!(all, expected);
    let mut params = ops::lists::PageParams {
        limit: Some(1),
        cursor: None,
    };
    let mut seen = Vec::new();
    loop {
        let page = ops::lists::upcoming_reminders(&t.ctx, &params)
            .await
            .unwrap();
        seen.extend(
            page.items
                .iter()
                .map(|r| (r.token_name.clone(), r.what, r.lead, r.at, r.expires_at)),
        );
        match page.next_cursor {
            Some(c) => params.cursor = Some(c),
            None => break,
        }
    }
    let day = chrono::Duration::days(1);
    let (refresh, cs) = (Expiring::RefreshToken, Expiring::ClientSecret);
    let (d7, d1) = (Some(LeadTime::days(7)), Some(LeadTime::days(1)));
    assert_eq!(
        seen,
        [
            (
                "azure".to_owned(),
                refresh,
                d7,
                now + day * 3,
                now + day * 10
            ),
            ("azure".to_owned(), cs, d7, now + day * 3, now + day * 10),
            ("graph".to_owned(), cs, d1, now + day * 4, now + day * 5),
            ("graph".to_owned(), cs, None, now + day * 5, now + day * 5),
            (
                "azure".to_owned(),
                refresh,
                d1,
                now + day * 9,
                now + day * 10
            ),
            ("azure".to_owned(), cs, d1, now + day * 9, now + day * 10),
            (
                "azure".to_owned(),
                refresh,
                None,
                now + day * 10,
                now + day * 10
            ),
            ("azure".to_owned(), cs, None, now + day * 10, now + day * 10),
        ]
    );
}

async fn audit_page(t: &TestApp, b: &Browser, query: &str) -> Res {
    let r = b.get(t, &format!("/audit{query}")).await;
    assert_eq!(r.status, 200, "{query}: {}", r.body);
    r
}

/// The audit filter names a token and an app by typing (a few names suggested, more as one
/// types), not from a list of every token and app.
#[tokio::test]
async fn issue10_item4_the_audit_filter_is_typed_and_suggests_a_bounded_few() {
    let t = spawn(Db::Sqlite).await;
    make_admin(&t).await;
    for i in 0..25 {
        token(&t, &format!("tok-{i:02}"), None).await;
        app(&t, &format!("app-{i:02}"), &[]).await;
    }
    let own = app(&t, "owner", &["tok-07"]).await;
    token(&t, "tok-07", Some("owner")).await;
    app(&t, "zz-corrupt", &[]).await;
    token(&t, "zz-corrupt", Some("zz-corrupt")).await;
    let b = sign_in(&t).await;
    // The suggestions as one types: names starting with the text, at most 20.
    let s = b.get(&t, "/ui/suggest/tokens?token=tok-1").await.body;
    let names: Vec<&str> = s.split('"').skip(1).step_by(2).collect();
    assert_eq!(names.len(), 10, "{s}");
    assert!(names.iter().all(|n| n.starts_with("tok-1")), "{s}");
    let s = b.get(&t, "/ui/suggest/apps?app=app-2").await.body;
    assert_eq!(s.matches("<option").count(), 5, "{s}");
    let s = b.get(&t, "/ui/suggest/apps?app=").await.body;
    assert_eq!(s.matches("<option").count(), 20, "{s}");
    assert_eq!(b.get(&t, "/ui/suggest/admins?q=a").await.status, 404);

    corrupt_rows(&t, true).await;
    let page = audit_page(&t, &b, "").await.body;
    assert!(!page.contains(r#"<select name="token""#) && !page.contains(r#"<select name="app""#));
    let tokens = datalist(&page, "token-names");
    let apps = datalist(&page, "app-names");
    // The first 20 tokens by name (tok-07 twice: global and the owner's, suggested once).
    assert_eq!(tokens.first().map(String::as_str), Some("tok-00"));
    assert_eq!(tokens.len(), 19, "{tokens:?}");
    assert_eq!(apps.len(), 20, "{apps:?}");

    // Typed names narrow the log: the global token, or the app's own with the app.
    let global = audit_page(&t, &b, "?token=tok-07").await.body;
    assert!(global.contains("token tok-07") && !global.contains("token tok-08"));
    assert!(global.contains(r#"value="tok-07""#));
    let owns = audit_page(&t, &b, "?token=tok-07&app=owner").await.body;
    let own_id = t
        .ctx
        .store
        .find_token(
            tokenwarden_domain::AppId::parse(&own),
            &"tok-07".parse_name(),
        )
        .await
        .unwrap()
        .id;
    let rows = &owns[owns.find("<tbody>").unwrap()..];
    assert_eq!(rows.matches("token.create").count(), 1, "{rows}");
    // The token detail page's link (by id) shows the name and the owner back.
    let by_id = audit_page(&t, &b, &format!("?token={own_id}")).await.body;
    assert!(by_id.contains(r#"value="tok-07""#) && by_id.contains(r#"value="owner""#));
    let app_only = audit_page(&t, &b, "?app=app-24").await.body;
    assert!(app_only.contains("app app-24") && !app_only.contains("app app-23"));
    for (q, says) in [
        ("?token=nope", "no global token named nope"),
        ("?app=nope", "no app named nope"),
        (
            "?token=nope&app=app-01",
            "There is no token named nope: neither app app-01",
        ),
    ] {
        let r = audit_page(&t, &b, q).await.body;
        assert!(r.contains(says), "{q}: {r}");
        assert!(r.contains("Nothing matches"), "{q}");
    }
}

trait ParseName {
    fn parse_name(&self) -> tokenwarden_domain::TokenName;
}

impl ParseName for str {
    fn parse_name(&self) -> tokenwarden_domain::TokenName {
        tokenwarden_domain::TokenName::parse(self).unwrap()
    }
}

/// The notifications page's and the token form's app fields are typed (a datalist of a few
/// names, asking for more as one types); a channel for an app past the first names is made by
/// typing its name; the page does not read every app.
#[tokio::test]
async fn issue10_item4_app_fields_are_typed_and_pages_do_not_read_every_app() {
    let t = spawn(Db::Sqlite).await;
    make_admin(&t).await;
    for i in 0..25 {
        app(&t, &format!("app-{i:02}"), &["shared"]).await;
    }
    app(&t, "zz-corrupt", &[]).await;
    for name in ["shared", "solo", "third"] {
        token(&t, name, None).await;
    }
    token(&t, "zz-corrupt", Some("zz-corrupt")).await;
    corrupt_rows(&t, true).await;
    let b = sign_in(&t).await;
    for path in ["/notifications", "/tokens/new"] {
        let page = b.get(&t, path).await;
        assert_eq!(page.status, 200, "{path}: {}", page.body);
        assert!(
            !page.body.contains(r#"<select name="app""#)
                && !page.body.contains(r#"<select id="app""#)
        );
        assert_eq!(datalist(&page.body, "app-names").len(), 20, "{path}");
    }
    let r = b
        .post(
            &t,
            "/notifications",
            &[
                ("name", "late"),
                ("kind", "email"),
                ("to", "ops@example.com"),
                ("app", "app-24"),
            ],
        )
        .await;
    assert_eq!(r.status, 303, "{}", r.body);
    let r = b
        .post(
            &t,
            "/notifications",
            &[
                ("name", "none"),
                ("kind", "email"),
                ("to", "ops@example.com"),
                ("app", "app-99"),
            ],
        )
        .await;
    assert_eq!(r.status, 422);
    assert!(
        r.body.contains("There is no app named app-99."),
        "{}",
        r.body
    );

    // The tokens list, a page of 2: the apps using the tokens shown, even past the first
    // page of apps, and nothing else read.
    let page = b.get(&t, "/tokens?limit=2").await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.body.contains("app-24") && page.body.contains("shared"));
    assert!(next_link(&page.body).is_some());
    let detail = b
        .get(
            &t,
            &format!(
                "/tokens/{}",
                t.ctx
                    .store
                    .find_token(None, &"shared".parse_name())
                    .await
                    .unwrap()
                    .id
            ),
        )
        .await;
    assert_eq!(detail.status, 200, "{}", detail.body);
    assert!(detail.body.contains("app-24"));
}

/// The app page shows a page of its own tokens with links to the others; the audit page and
/// the app page never read tokens they do not show.
#[tokio::test]
async fn issue10_item4_the_app_page_pages_its_own_tokens() {
    let t = spawn(Db::Sqlite).await;
    make_admin(&t).await;
    let id = app(&t, "owner", &[]).await;
    for name in ["own-a", "own-b", "own-c"] {
        token(&t, name, Some("owner")).await;
    }
    token(&t, "global-x", None).await;
    app(&t, "zz-corrupt", &[]).await;
    token(&t, "zz-corrupt", Some("zz-corrupt")).await;
    corrupt_rows(&t, true).await;
    let b = sign_in(&t).await;
    let first = b.get(&t, &format!("/apps/{id}?limit=2")).await;
    assert_eq!(first.status, 200, "{}", first.body);
    let own = &first.body
        [first.body.find("App-level tokens").unwrap()..first.body.find("API keys").unwrap()];
    assert!(
        own.contains("own-a") && own.contains("own-b") && !own.contains("own-c"),
        "{own}"
    );
    assert!(!own.contains("global-x"));
    let next = next_link(own).expect("a next page");
    let second = b.get(&t, &next).await;
    assert_eq!(second.status, 200);
    let own = &second.body
        [second.body.find("App-level tokens").unwrap()..second.body.find("API keys").unwrap()];
    assert!(own.contains("own-c") && !own.contains("own-a"), "{own}");
    assert!(own.contains(r#"rel="prev""#));
    assert!(next_link(own).is_none());
    // Default page: all three (fewer than 100).
    let all = b.get(&t, &format!("/apps/{id}")).await.body;
    assert!(all.contains("own-a") && all.contains("own-c"));
}

/// Issue 11 item 9: a channel's scope (every app, or one app) is edited on its page, through
/// the core's channel change; an unknown app is refused on the form and changes nothing.
#[tokio::test]
async fn issue11_item9_a_channels_app_scope_is_edited_on_its_page() {
    let t = spawn(Db::Sqlite).await;
    make_admin(&t).await;
    app(&t, "sales", &[]).await;
    let (s, ch) = t
        .admin(
            Method::POST,
            "/api/v1/notification-channels",
            Some(json!({"name": "ops", "kind": "email", "to": ["ops@example.com"]})),
        )
        .await;
    assert_eq!(s, 201, "{ch}");
    let cid = ch["id"].as_str().unwrap();
    let b = sign_in(&t).await;
    let form = b.get(&t, &format!("/notifications/{cid}/edit")).await.body;
    assert!(form.contains(r#"name="app" value="""#), "{form}");
    let save = |app: &'static str| {
        let path = format!("/notifications/{cid}/edit");
        let b = &b;
        let t = &t;
        async move {
            b.post(
                t,
                &path,
                &[
                    ("name", "ops"),
                    ("to", "ops@example.com"),
                    ("enabled", "true"),
                    ("app", app),
                ],
            )
            .await
        }
    };
    let r = save("sales").await;
    assert_eq!(r.status, 303, "{}", r.body);
    let (_, v) = t
        .admin(Method::GET, "/api/v1/notification-channels", None)
        .await;
    assert_eq!(v["items"][0]["app"], "sales", "{v}");
    let form = b.get(&t, &format!("/notifications/{cid}/edit")).await.body;
    assert!(form.contains(r#"name="app" value="sales""#), "{form}");
    let r = save("nobody").await;
    assert_eq!(r.status, 422);
    assert!(
        r.body.contains("There is no app named nobody"),
        "{}",
        r.body
    );
    let (_, v) = t
        .admin(Method::GET, "/api/v1/notification-channels", None)
        .await;
    assert_eq!(v["items"][0]["app"], "sales", "unchanged: {v}");
    let r = save("").await;
    assert_eq!(r.status, 303);
    let (_, v) = t
        .admin(Method::GET, "/api/v1/notification-channels", None)
        .await;
    assert!(v["items"][0]["app"].is_null(), "global again: {v}");
    // The API changes it the same way.
    let (s, v) = t
        .admin(
            Method::PATCH,
            &format!("/api/v1/notification-channels/{cid}"),
            Some(json!({"app": "sales"})),
        )
        .await;
    assert_eq!((s, v["app"].as_str()), (200, Some("sales")), "{v}");
}
