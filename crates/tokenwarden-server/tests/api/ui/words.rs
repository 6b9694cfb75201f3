//! Issue 11, what a screenshot review of the UI found in its words: a setting's label and its
//! unit agree; a token's page shows its settings and activity as words, not keys, seconds and
//! JSON; the audit page says how long records are kept (the setting's value); the new-channel
//! form shows only the chosen kind's fields; the channel forms offer the same events; the
//! placeholders are hints ("e.g. …"), never values.

use super::{make_admin, sign_in};
use crate::support::{Db, spawn, spawn_with};
use reqwest::Method;
use serde_json::json;

/// The part of `body` from `from` to the next `to`.
fn between<'a>(body: &'a str, from: &str, to: &str) -> &'a str {
    let start = body
        .find(from)
        .unwrap_or_else(|| panic!("{from:?} in {body}"));
    let rest = &body[start..];
    &rest[..rest.find(to).unwrap_or(rest.len())]
}

/// The `value`s of the form's checkboxes named `events`.
fn event_values(form: &str) -> Vec<String> {
    form.split(r#"name="events" value=""#)
        .skip(1)
        .map(|s| s[..s.find('"').unwrap()].to_owned())
        .collect()
}

#[tokio::test]
async fn issue11_words_a_tokens_page_shows_labelled_settings_durations_and_readable_activity() {
    let t = spawn(Db::Sqlite).await;
    let (_, token) = t.seed().await;
    let id = token["id"].as_str().unwrap();
    make_admin(&t).await;
    let b = sign_in(&t).await;

    // The form: the validity is picked as a length of time, and its label names no unit.
    let form = b.get(&t, &format!("/tokens/{id}/edit")).await.body;
    let field = between(
        &form,
        r#"<label for="s_refresh_token_validity">"#,
        "</select>",
    );
    assert!(
        field.contains("Refresh-token validity</label>") && !field.contains("seconds)"),
        "{field}"
    );
    assert!(
        field.contains(r#"value="7776000" selected>90 days (Snowflake&#39;s default maximum)<"#),
        "the default, in days: {field}"
    );
    assert!(field.contains(">1 day<") && field.contains(">5 years (the most"));
    // Placeholders are hints, never values: "e.g. …" (or the default the empty field gets).
    assert!(
        form.contains(r#"placeholder="e.g. xy12345.us-east-1""#),
        "{form}"
    );
    assert!(!form.contains(r#"placeholder="ANALYST""#));
    assert!(
        !form.contains("••••• set"),
        "a stored secret does not look typed"
    );

    // A change of settings from the form (Save), then the token's page.
    let r = b
        .post(
            &t,
            &format!("/tokens/{id}/edit"),
            &[
                ("s_account", "xy12345.us-east-1"),
                ("s_role", "ANALYST"),
                ("s_refresh_token_validity", "3600"),
                ("client_id", "kMoBQd6lZ0iRIB5W+LjzHc3CQqM="),
            ],
        )
        .await;
    // 3600 s is below Snowflake's minimum of a day: refused, nothing saved.
    assert_eq!(r.status, 422, "{}", r.body);
    let r = b
        .post(
            &t,
            &format!("/tokens/{id}/edit"),
            &[
                ("s_account", "xy12345.us-east-1"),
                ("s_role", "ANALYST"),
                ("s_refresh_token_validity", "2592000"),
                ("client_id", "kMoBQd6lZ0iRIB5W+LjzHc3CQqM="),
            ],
        )
        .await;
    assert_eq!(r.status, 303, "{}", r.body);
    let page = b.get(&t, &format!("/tokens/{id}")).await.body;
    let settings = between(&page, "<h2>Settings</h2>", "</section>");
    assert!(
        settings.contains("<dt>Refresh-token validity</dt><dd>30 days</dd>"),
        "{settings}"
    );
    assert!(settings.contains("<dt>Account</dt><dd>xy12345.us-east-1</dd>"));
    assert!(
        settings.contains("<dt>Warehouse</dt><dd>not set</dd>"),
        "{settings}"
    );
    assert!(
        !settings.contains("refresh_token_validity") && !settings.contains("2592000"),
        "no raw key, no raw seconds: {settings}"
    );
    let activity = between(&page, "<h2>Recent activity</h2>", "</section>");
    assert!(activity.contains(">Token changed<"), "{activity}");
    assert!(activity.contains("Changed:</span> settings"), "{activity}");
    assert!(activity.contains(">Token created<"), "{activity}");
    assert!(
        !activity.contains("&quot;")
            && !activity.contains('{')
            && !activity.contains("token.update"),
        "no raw JSON nor action codes: {activity}"
    );
    assert!(
        !activity.contains("vNy-client-secret"),
        "never a secret: {activity}"
    );
}

#[tokio::test]
async fn issue11_words_the_audit_page_says_how_long_records_are_kept_from_the_setting() {
    let t = spawn(Db::Sqlite).await;
    make_admin(&t).await;
    let b = sign_in(&t).await;
    let page = b.get(&t, "/audit").await.body;
    assert!(page.contains("Records are kept 90 days"), "{page}");
    // The action field suggests every action there is, with its words.
    assert!(
        page.contains(r#"<option value="token.authorize" label="Authorized at the provider">"#)
    );
    assert!(
        !page.contains(r#"value="token.authorized""#),
        "not an audit action"
    );
    // An action's row: its words, with the code the filter takes.
    assert!(
        between(&page, "<tbody>", "</tbody>").contains("Signed in <code"),
        "{page}"
    );

    let t = spawn_with(Db::Sqlite, |s| {
        s.audit_retention = chrono::Duration::hours(36);
    })
    .await;
    make_admin(&t).await;
    let b = sign_in(&t).await;
    let page = b.get(&t, "/audit").await.body;
    assert!(page.contains("Records are kept 1 day 12 hours"), "{page}");
}

#[tokio::test]
async fn issue11_words_the_new_channel_form_shows_the_chosen_kinds_fields_and_both_forms_the_same_events()
 {
    let t = spawn(Db::Sqlite).await;
    make_admin(&t).await;
    let b = sign_in(&t).await;
    let new_form = |body: &str| {
        between(
            body,
            r#"<section class="card" id="new-channel""#,
            "</section>",
        )
        .to_owned()
    };

    let webhook = new_form(&b.get(&t, "/notifications").await.body);
    assert!(
        webhook.contains(r#"name="url""#) && !webhook.contains(r#"name="to""#),
        "{webhook}"
    );
    assert!(webhook.contains(r#"<input type="hidden" name="kind" value="webhook">"#));
    let email = new_form(&b.get(&t, "/notifications?kind=email").await.body);
    assert!(email.contains(r#"name="to""#), "{email}");
    assert!(
        !email.contains(r#"name="url""#) && !email.contains("Webhook URL"),
        "{email}"
    );
    assert!(email.contains(r#"<input type="hidden" name="kind" value="email">"#));
    assert!(email.contains(r#"placeholder="e.g. ops@example.com"#));
    // Without script: the server reads only the chosen kind's field.
    let r = b
        .post(
            &t,
            "/notifications",
            &[
                ("name", "mail ops"),
                ("kind", "email"),
                ("to", "ops@example.com"),
                ("url", "http://127.0.0.1:9/ignored"),
            ],
        )
        .await;
    assert_eq!(r.status, 303, "{}", r.body);
    // Refused input comes back as typed, on the form of its kind.
    let r = b
        .post(
            &t,
            "/notifications",
            &[
                ("name", "mail two"),
                ("kind", "email"),
                ("to", "not-an-address"),
                ("events", "token.expired"),
            ],
        )
        .await;
    assert_eq!(r.status, 422, "{}", r.body);
    let again = new_form(&r.body);
    assert!(
        again.contains(r#"value="mail two""#) && again.contains(r#"value="not-an-address""#),
        "{again}"
    );
    assert!(
        again.contains(r#"value="token.expired" checked"#),
        "{again}"
    );
    assert!(!again.contains(r#"name="url""#));

    // The same event choices on the new and the edit form (the test send reaches every channel
    // whatever it takes, so neither offers it as a subscription).
    let offered = event_values(&webhook);
    assert_eq!(offered, event_values(&email));
    assert!(
        offered.contains(&"token.expiring".to_owned()) && !offered.contains(&"test".to_owned()),
        "{offered:?}"
    );
    let (_, ch) = t
        .admin(
            Method::POST,
            "/api/v1/notification-channels",
            Some(json!({"name": "hook", "kind": "webhook", "url": "http://127.0.0.1:9/a", "events": ["app.stopped"]})),
        )
        .await;
    let edit = b
        .get(
            &t,
            &format!("/notifications/{}/edit", ch["id"].as_str().unwrap()),
        )
        .await
        .body;
    assert_eq!(
        event_values(&edit),
        offered,
        "the edit form offers the same events"
    );
    assert!(edit.contains(r#"value="app.stopped" checked"#));
    assert!(edit.contains("App stopped"), "the events in words");
    // A channel that holds the test kind (the API takes it) keeps it when saved from the form.
    let (_, ch) = t
        .admin(
            Method::POST,
            "/api/v1/notification-channels",
            Some(json!({"name": "tests", "kind": "webhook", "url": "http://127.0.0.1:9/b", "events": ["test", "token.expired"]})),
        )
        .await;
    let edit = b
        .get(
            &t,
            &format!("/notifications/{}/edit", ch["id"].as_str().unwrap()),
        )
        .await
        .body;
    assert!(edit.contains(r#"value="test" checked"#), "{edit}");
}

#[tokio::test]
async fn issue11_words_placeholders_are_hints_and_one_verb_per_action() {
    let t = spawn(Db::Sqlite).await;
    let (_, token) = t.seed().await;
    let id = token["id"].as_str().unwrap();
    make_admin(&t).await;
    let b = sign_in(&t).await;
    let (_, ch) = t
        .admin(
            Method::POST,
            "/api/v1/notification-channels",
            Some(json!({"name": "hook", "kind": "webhook", "url": "http://127.0.0.1:9/a"})),
        )
        .await;
    let ch = ch["id"].as_str().unwrap();
    for path in [
        "/apps".to_owned(),
        "/tokens/new".to_owned(),
        "/notifications".to_owned(),
        "/audit".to_owned(),
        "/admins".to_owned(),
        format!("/tokens/{id}"),
        format!("/tokens/{id}/edit"),
        format!("/notifications/{ch}"),
        format!("/notifications/{ch}/edit"),
    ] {
        let path = path.as_str();
        let page = b.get(&t, path).await.body;
        for p in page.split(r#"placeholder=""#).skip(1) {
            let hint = &p[..p.find('"').unwrap()];
            assert!(
                hint.starts_with("e.g. ")
                    || hint.starts_with("default: ")
                    || hint == "not set"
                    || hint == "set (hidden): type a new one to replace it",
                "{path}: a placeholder that looks like a value: {hint:?}"
            );
        }
        for old in [
            ">Update<",
            ">Done<",
            ">Add admin<",
            ">Add channel<",
            "Sign in again</button>",
            ">Clear second secret<",
            ">Delete</button>",
        ] {
            assert!(!page.contains(old), "{path}: {old}");
        }
    }
    let admins = b.get(&t, "/admins").await.body;
    assert!(admins.contains(">Create admin</button>"));
    let notes = b.get(&t, "/notifications").await.body;
    assert!(notes.contains(">Create channel</button>"));
    // Lead times in words everywhere they are shown (the field keeps its notation).
    assert!(
        notes.contains("gets a reminder 14 days, 7 days, 3 days, 1 day ahead"),
        "{notes}"
    );
    assert!(notes.contains(r#"value="14d, 7d, 3d, 1d""#));
    let tokens = b.get(&t, "/tokens").await.body;
    assert!(tokens.contains("turns amber inside 14 days"), "{tokens}");
}
