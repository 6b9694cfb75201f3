//! The core (`tokenwarden_server::ops`) called directly: the rules the API, the UI and the CLI
//! share are tested once here; the adapters' tests check only how they render them. Run on
//! both databases where the store's concurrency matters.

use crate::support::{Db, spawn};
use secrecy::SecretString;
use std::collections::BTreeMap;
use tokenwarden_domain::{AppName, EventKind, LeadTime, ProviderId, TokenName};
use tokenwarden_server::ops::apps::NewApp;
use tokenwarden_server::ops::channels::{ChannelChanges, NewChannel, Target};
use tokenwarden_server::ops::grant::read::Scope;
use tokenwarden_server::ops::tokens::{NewToken, TokenChanges};
use tokenwarden_server::ops::{self, Error};

fn snowflake(name: &str, app: Option<&str>) -> NewToken {
    NewToken {
        name: TokenName::parse(name).unwrap(),
        provider: ProviderId::parse("snowflake").unwrap(),
        app: app.map(|a| AppName::parse(a).unwrap()),
        settings: BTreeMap::from([
            ("account".to_owned(), "xy12345.us-east-1".to_owned()),
            ("role".to_owned(), "ANALYST".to_owned()),
        ]),
        client_id: Some("client".into()),
        client_secret: Some(SecretString::from("secret-1")),
        client_secret_2: None,
        grant: Default::default(),
        client_auth: None,
        client_secret_expires_at: None,
    }
}

#[tokio::test]
async fn a_setting_is_checked_the_same_way_whoever_sends_it() {
    let t = spawn(Db::Sqlite).await;
    // The UI's per-field Snowflake checks now hold for the API and the CLI too.
    let mut bad_role = snowflake("sf", None);
    bad_role
        .settings
        .insert("role".into(), "ACCOUNTADMIN".into());
    let e = ops::tokens::create(&t.ctx, "test", bad_role)
        .await
        .unwrap_err();
    assert!(matches!(&e, Error::Invalid(m) if m.contains("role")), "{e}");
    let mut bad_name = snowflake("sf", None);
    bad_name.settings.insert("no spaces".into(), "x".into());
    assert!(matches!(
        ops::tokens::create(&t.ctx, "test", bad_name).await,
        Err(Error::Invalid(_))
    ));
    // The UI's as-you-type check is the same function.
    assert!(ops::tokens::check_setting(&t.ctx, "snowflake", "role", "ACCOUNTADMIN").is_err());
    assert!(ops::tokens::check_setting(&t.ctx, "snowflake", "role", "ANALYST").is_ok());
    assert!(
        t.ctx.store.list_tokens().await.unwrap().is_empty(),
        "refused creations store nothing"
    );
}

#[tokio::test]
async fn a_taken_name_is_a_conflict_in_words_not_a_database_message() {
    let t = spawn(Db::Sqlite).await;
    ops::tokens::create(&t.ctx, "test", snowflake("sf", None))
        .await
        .unwrap();
    let e = ops::tokens::create(&t.ctx, "test", snowflake("sf", None))
        .await
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "a token named sf already exists among the global tokens"
    );
}

async fn concurrent_edits_without_a_version_all_apply(db: Db) {
    let t = spawn(db).await;
    let tok = ops::tokens::create(&t.ctx, "test", snowflake("sf", None))
        .await
        .unwrap();
    let edits: Vec<_> = (0..8)
        .map(|i| {
            let ctx = t.ctx.clone();
            tokio::spawn(async move {
                let changes = TokenChanges {
                    client_id: Some(Some(format!("client-{i}"))),
                    ..TokenChanges::default()
                };
                ops::tokens::update(&ctx, "test", tok.id, changes).await
            })
        })
        .collect();
    for e in edits {
        e.await.unwrap().unwrap();
    }
    // With a stale version, the caller is told.
    let stale = TokenChanges {
        client_id: Some(Some("late".into())),
        version: Some(tok.version),
        ..TokenChanges::default()
    };
    assert!(matches!(
        ops::tokens::update(&t.ctx, "test", tok.id, stale).await,
        Err(Error::VersionMismatch(_))
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_edits_without_a_version_all_apply_on_sqlite() {
    concurrent_edits_without_a_version_all_apply(Db::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_edits_without_a_version_all_apply_on_postgres() {
    concurrent_edits_without_a_version_all_apply(Db::Postgres).await;
}

#[tokio::test]
async fn an_apps_own_token_wins_over_the_global_one_of_that_name() {
    let t = spawn(Db::Sqlite).await;
    let name = TokenName::parse("sf").unwrap();
    let (a, _) = ops::apps::create(
        &t.ctx,
        "test",
        NewApp {
            name: AppName::parse("a").unwrap(),
            tokens: vec![name.clone()],
        },
    )
    .await
    .unwrap();
    let (b, _) = ops::apps::create(
        &t.ctx,
        "test",
        NewApp {
            name: AppName::parse("b").unwrap(),
            tokens: vec![name.clone()],
        },
    )
    .await
    .unwrap();
    assert!(
        ops::grant::resolve_token(&t.ctx, Some(a.id), &name)
            .await
            .unwrap()
            .is_none()
    );
    let global = ops::tokens::create(&t.ctx, "test", snowflake("sf", None))
        .await
        .unwrap();
    let own = ops::tokens::create(&t.ctx, "test", snowflake("sf", Some("a")))
        .await
        .unwrap();
    let (found, scope) = ops::grant::resolve_token(&t.ctx, Some(a.id), &name)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((found.id, scope), (own.id, Scope::App));
    let (found, scope) = ops::grant::resolve_token(&t.ctx, Some(b.id), &name)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (found.id, scope),
        (global.id, Scope::Global),
        "b never gets a's token"
    );
}

#[tokio::test]
async fn a_channel_keeps_its_kind_and_refuses_the_other_kinds_settings() {
    let t = spawn(Db::Sqlite).await;
    let (email, secret) = ops::channels::create(
        &t.ctx,
        "test",
        NewChannel {
            name: "ops".into(),
            target: Target::Email {
                to: vec!["ops@example.com".into()],
            },
            events: vec![EventKind::TokenExpiring],
            app: None,
            enabled: true,
        },
    )
    .await
    .unwrap();
    assert!(secret.is_none(), "only webhooks have a signing secret");
    let e = ops::channels::update(
        &t.ctx,
        "test",
        &email.id,
        ChannelChanges {
            url: Some("https://example.com/hook".into()),
            ..ChannelChanges::default()
        },
    )
    .await
    .unwrap_err();
    assert_eq!(e.to_string(), "only a webhook channel has a url");
    assert!(matches!(
        ops::channels::parse_events(&["token.expird"]),
        Err(Error::Invalid(m)) if m.contains("token.expiring")
    ));
    let stored = ops::channels::Channel::of(&ops::channels::get(&t.ctx, &email.id).await.unwrap());
    assert_eq!(stored.events, vec![EventKind::TokenExpiring]);
    assert_eq!(
        stored.target,
        Target::Email {
            to: vec!["ops@example.com".into()]
        }
    );
}

#[tokio::test]
async fn lead_times_are_one_to_ten_and_apply_at_once() {
    let t = spawn(Db::Sqlite).await;
    assert!(matches!(
        ops::channels::set_lead_times(&t.ctx, "test", Vec::new()).await,
        Err(Error::Invalid(_))
    ));
    let eleven = (1..=11).map(LeadTime::days).collect();
    assert!(matches!(
        ops::channels::set_lead_times(&t.ctx, "test", eleven).await,
        Err(Error::Invalid(_))
    ));
    ops::channels::set_lead_times(
        &t.ctx,
        "test",
        vec![
            LeadTime::days(2),
            LeadTime::parse("12h").unwrap(),
            LeadTime::days(30),
        ],
    )
    .await
    .unwrap();
    let now: Vec<String> = t.ctx.lead_times().iter().map(ToString::to_string).collect();
    assert_eq!(now, ["30d", "2d", "12h"], "longest first");
    assert_eq!(t.ctx.first_lead_time(), LeadTime::days(30));
}

#[tokio::test]
async fn every_operation_is_audited_with_its_typed_action() {
    let t = spawn(Db::Sqlite).await;
    let tok = ops::tokens::create(&t.ctx, "admin:test", snowflake("sf", None))
        .await
        .unwrap();
    ops::tokens::delete(&t.ctx, "admin:test", tok.id)
        .await
        .unwrap();
    let rows = t
        .ctx
        .store
        .list_audit(&tokenwarden_store::AuditFilter {
            object_id: Some(tok.id.to_string()),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    // Both at the same instant (the test clock stands still): compare as a set.
    let mut actions: Vec<&str> = rows.iter().map(|r| r.action.as_str()).collect();
    actions.sort_unstable();
    assert_eq!(actions, ["token.create", "token.delete"]);
    assert!(rows.iter().all(|r| r.actor == "admin:test"));
}

async fn concurrent_starts_and_stops_never_conflict(db: Db) {
    let t = spawn(db).await;
    let (app, _) = ops::apps::create(
        &t.ctx,
        "test",
        NewApp {
            name: AppName::parse("a").unwrap(),
            tokens: Vec::new(),
        },
    )
    .await
    .unwrap();
    let calls: Vec<_> = (0..8)
        .map(|i| {
            let ctx = t.ctx.clone();
            tokio::spawn(async move {
                if i % 2 == 0 {
                    ops::apps::stop(&ctx, "test", app.id).await
                } else {
                    ops::apps::start(&ctx, "test", app.id).await
                }
            })
        })
        .collect();
    for c in calls {
        c.await.unwrap().unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_starts_and_stops_never_conflict_on_sqlite() {
    concurrent_starts_and_stops_never_conflict(Db::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_starts_and_stops_never_conflict_on_postgres() {
    concurrent_starts_and_stops_never_conflict(Db::Postgres).await;
}
