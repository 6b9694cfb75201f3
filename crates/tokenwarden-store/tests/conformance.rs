//! R33: one storage conformance suite, run against SQLite and PostgreSQL.
//! The PostgreSQL run starts its own throwaway cluster (tokenwarden-testkit) unless
//! TOKENWARDEN_TEST_POSTGRES_URL names one; it fails, never skips, when PostgreSQL is missing.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::sync::Arc;
use tokenwarden_domain::{
    ApiKeyId, AppId, AppName, AppState, Clock, Expiring, KeyLabel, ManualClock, ProviderId,
    StopReason, Timestamp, TokenId, TokenName, TokenStatus,
};
use tokenwarden_store::*;

struct Ctx {
    store: Arc<SqlStore>,
    clock: ManualClock,
    _dir: Option<tempfile::TempDir>,
}

async fn sqlite() -> Ctx {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("tw.db").display());
    let clock = ManualClock::at_epoch();
    let store = SqlStore::open(&url, clock.now()).await.unwrap();
    Ctx {
        store: Arc::new(store),
        clock,
        _dir: Some(dir),
    }
}

async fn postgres() -> Ctx {
    let pg = tokenwarden_testkit::require_postgres();
    let clock = ManualClock::at_epoch();
    let store = SqlStore::open(&pg.url, clock.now()).await.unwrap();
    Ctx {
        store: Arc::new(store),
        clock,
        _dir: None,
    }
}

macro_rules! conformance {
    ($($name:ident),+ $(,)?) => {
        mod sqlite_backend {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() { super::$name(super::sqlite().await).await }) +
        }
        mod postgres_backend {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() { super::$name(super::postgres().await).await }) +
        }
    };
}

conformance!(
    migrations_are_idempotent_and_safe_concurrently,
    app_crud_round_trips,
    app_names_are_unique,
    token_crud_round_trips_with_sealed_bytes,
    token_names_are_unique_per_scope,
    stale_versions_are_refused,
    failed_transaction_leaves_nothing,
    deleting_an_app_removes_its_tokens_and_keys,
    api_keys_create_list_revoke,
    lease_is_exclusive_and_owner_checked,
    lease_under_contention_has_one_winner,
    issue13_release_leases_of_an_owner_frees_only_its_own,
    commit_under_lost_lease_is_refused,
    issue10_a_refresh_commits_token_bookkeeping_audit_lease_and_schedule_at_once,
    data_keys_and_sealed_values,
    audit_events_filter_and_order,
    issue9_bug3_audit_prune_deletes_only_what_is_due_in_bounded_batches,
    meta_set_if_absent,
    oauth_state_is_single_use,
    device_flows_one_per_token_due_by_index_and_compare_and_set,
    token_health_and_read_counts,
    reminders_are_recorded_once,
    issue11_item5_upcoming_and_recent_reminders_are_bounded_lists,
    issue13_metric_counts_are_bounded_and_by_status,
    issue13_tokens_by_client_secret_expiry_are_keyset_pages_of_their_index,
    channels_crud,
    jobs_are_claimed_once_and_survive_a_dead_holder,
    deliveries_are_logged,
    admins_and_sessions,
    list_apps_returns_every_apps_bindings,
    a_closed_store_is_unavailable,
    token_keys_are_written_compare_and_set_and_go_with_the_token,
    issue10_item2_the_due_query_returns_only_due_tokens_in_bounded_pages,
    issue10_token_pages_cover_every_row_once_and_stay_stable_under_inserts,
    issue10_token_pages_filter_by_name_provider_and_status,
    issue10_app_key_channel_delivery_and_audit_pages_cover_every_row_once,
    issue11_admins_page_change_password_and_are_never_all_removed,
    issue11_admin_token_pages_hold_only_admin_tokens,
);

/// A database nothing has been done to yet, for the migration tests.
struct Fresh {
    url: String,
    backend: Backend,
    clock: ManualClock,
    _dir: Option<tempfile::TempDir>,
}

fn fresh_sqlite() -> Fresh {
    let dir = tempfile::tempdir().unwrap();
    Fresh {
        url: format!("sqlite://{}", dir.path().join("tw.db").display()),
        backend: Backend::Sqlite,
        clock: ManualClock::at_epoch(),
        _dir: Some(dir),
    }
}

fn fresh_postgres() -> Fresh {
    Fresh {
        url: tokenwarden_testkit::require_postgres().url,
        backend: Backend::Postgres,
        clock: ManualClock::at_epoch(),
        _dir: None,
    }
}

macro_rules! on_fresh_databases {
    ($($name:ident),+ $(,)?) => {
        mod sqlite_fresh {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() { super::$name(super::fresh_sqlite()).await }) +
        }
        mod postgres_fresh {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() { super::$name(super::fresh_postgres()).await }) +
        }
    };
}

on_fresh_databases!(
    old_migrator_databases_are_adopted,
    an_older_old_migrator_database_is_adopted_and_completed,
    an_old_migrator_database_newer_than_this_binary_is_refused,
);

fn app(ctx: &Ctx, name: &str, tokens: &[&str]) -> AppRecord {
    let now = ctx.clock.now();
    AppRecord {
        id: AppId::new_v7(now),
        name: AppName::parse(name).unwrap(),
        state: AppState::Running,
        stop_reason: None,
        tokens: tokens
            .iter()
            .map(|t| TokenName::parse(t).unwrap())
            .collect(),
        version: 1,
        created_at: now,
        updated_at: now,
    }
}

fn key_for(ctx: &Ctx, app: Option<AppId>) -> ApiKeyRecord {
    ApiKeyRecord {
        id: ApiKeyId(uuid::Uuid::new_v4()),
        kind: if app.is_some() {
            ApiKeyKind::App
        } else {
            ApiKeyKind::Admin
        },
        app_id: app,
        label: KeyLabel::parse("first key").unwrap(),
        secret_hash: vec![7; 32],
        created_at: ctx.clock.now(),
        revoked_at: None,
    }
}

fn token(ctx: &Ctx, name: &str, app: Option<AppId>) -> TokenRecord {
    let now = ctx.clock.now();
    TokenRecord {
        id: TokenId(uuid::Uuid::new_v4()),
        name: TokenName::parse(name).unwrap(),
        provider: ProviderId::parse("snowflake").unwrap(),
        grant: tokenwarden_domain::Grant::AuthorizationCode,
        app_id: app,
        settings: BTreeMap::from([
            ("account".into(), "xy12345.us-east-1".into()),
            ("role".into(), "ANALYST".into()),
        ]),
        client_id: Some("client-id".into()),
        client_secret: Some(Sealed(vec![1, 2, 3, 0, 255])),
        client_secret_2: None,
        client_auth: None,
        client_secret_expires_at: None,
        material: TokenMaterial::default(),
        status: TokenStatus::NotAuthorized,
        status_reason: None,
        version: 1,
        created_at: now,
        updated_at: now,
    }
}

async fn token_keys_are_written_compare_and_set_and_go_with_the_token(ctx: Ctx) {
    let s = &ctx.store;
    let t = token(&ctx, "keypair", None);
    s.create_token(&t).await.unwrap();
    assert_eq!(s.get_token_keys(t.id).await.unwrap(), None);
    let keys = TokenKeys {
        token_id: t.id,
        signing_key: Sealed(vec![9, 0, 255]),
        signing_key_next: None,
        slot: Some("rsa_public_key".into()),
        version: 0,
        updated_at: ctx.clock.now(),
    };
    let stored = s
        .put_token_keys(&keys, None, ctx.clock.now())
        .await
        .unwrap();
    assert_eq!(stored.version, 1);
    assert_eq!(s.get_token_keys(t.id).await.unwrap(), Some(stored.clone()));
    // A second create is a conflict; a stale version is refused.
    assert!(matches!(
        s.put_token_keys(&keys, None, ctx.clock.now()).await,
        Err(StoreError::Conflict(_))
    ));
    let mut next = stored.clone();
    next.signing_key_next = Some(Sealed(vec![1; 40]));
    let v2 = s
        .put_token_keys(&next, Some(1), ctx.clock.now())
        .await
        .unwrap();
    assert_eq!(v2.version, 2);
    assert!(matches!(
        s.put_token_keys(&next, Some(1), ctx.clock.now()).await,
        Err(StoreError::VersionMismatch(_))
    ));
    assert_eq!(
        s.get_token_keys(t.id)
            .await
            .unwrap()
            .unwrap()
            .signing_key_next,
        Some(Sealed(vec![1; 40]))
    );
    // The keys are sealed values like the others (re-encryption walks them).
    let refs = s.sealed_values().await.unwrap();
    assert!(
        refs.iter()
            .any(|r| r.column == SealedColumn::TokenSigningKeyNext && r.row_id == t.id.to_string())
    );
    // Deleting the token deletes its keys.
    s.delete_token(t.id).await.unwrap();
    assert_eq!(s.get_token_keys(t.id).await.unwrap(), None);
}

async fn migrations_are_idempotent_and_safe_concurrently(ctx: Ctx) {
    assert_eq!(ctx.store.migrate(ctx.clock.now()).await.unwrap(), 0);
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let s = ctx.store.clone();
        let now = ctx.clock.now();
        tasks.push(tokio::spawn(async move { s.migrate(now).await }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap().unwrap(), 0);
    }
    ctx.store.ping().await.unwrap();
}

async fn app_crud_round_trips(ctx: Ctx) {
    let s = &ctx.store;
    let a = app(&ctx, "sales-invoice", &["snowflake-sales", "graph"]);
    s.create_app(&a, &key_for(&ctx, Some(a.id))).await.unwrap();
    let mut got = s.get_app(a.id).await.unwrap();
    assert_eq!(
        got.tokens,
        vec![
            TokenName::parse("graph").unwrap(),
            TokenName::parse("snowflake-sales").unwrap()
        ]
    );
    assert_eq!(got.name, a.name);
    assert_eq!(s.get_app_by_name(&a.name).await.unwrap().id, a.id);
    assert_eq!(s.list_apps().await.unwrap().len(), 1);

    ctx.clock.advance(chrono::Duration::seconds(5));
    got.state = AppState::Stopped;
    got.stop_reason = Some(StopReason::WaitingForToken {
        token: "graph".into(),
    });
    got.tokens = vec![TokenName::parse("graph").unwrap()];
    let updated = s.update_app(&got, ctx.clock.now()).await.unwrap();
    assert_eq!(updated.version, 2);
    assert_eq!(updated.state, AppState::Stopped);
    assert_eq!(updated.stop_reason, got.stop_reason);
    assert_eq!(updated.tokens.len(), 1);
    assert_eq!(updated.updated_at, ctx.clock.now());
    let users = s
        .apps_using_token(&TokenName::parse("graph").unwrap())
        .await
        .unwrap();
    assert_eq!(users.len(), 1);
    assert!(
        s.apps_using_token(&TokenName::parse("snowflake-sales").unwrap())
            .await
            .unwrap()
            .is_empty()
    );

    s.delete_app(a.id).await.unwrap();
    assert!(matches!(
        s.get_app(a.id).await,
        Err(StoreError::NotFound("app"))
    ));
    assert!(matches!(
        s.delete_app(a.id).await,
        Err(StoreError::NotFound(_))
    ));
}

async fn app_names_are_unique(ctx: Ctx) {
    let a = app(&ctx, "dup", &[]);
    ctx.store
        .create_app(&a, &key_for(&ctx, Some(a.id)))
        .await
        .unwrap();
    let b = app(&ctx, "dup", &[]);
    let err = ctx
        .store
        .create_app(&b, &key_for(&ctx, Some(b.id)))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, StoreError::Conflict(m) if m.contains("dup")),
        "{err}"
    );
    // Renaming another app onto a taken name is refused too.
    let c = app(&ctx, "other", &[]);
    ctx.store
        .create_app(&c, &key_for(&ctx, Some(c.id)))
        .await
        .unwrap();
    let mut c2 = ctx.store.get_app(c.id).await.unwrap();
    c2.name = AppName::parse("dup").unwrap();
    assert!(matches!(
        ctx.store.update_app(&c2, ctx.clock.now()).await,
        Err(StoreError::Conflict(_))
    ));
}

async fn token_crud_round_trips_with_sealed_bytes(ctx: Ctx) {
    let s = &ctx.store;
    let t = token(&ctx, "snowflake-sales", None);
    s.create_token(&t).await.unwrap();
    assert_eq!(s.get_token(t.id).await.unwrap(), t);
    assert_eq!(s.find_token(None, &t.name).await.unwrap().id, t.id);

    let mut t2 = t.clone();
    ctx.clock.advance(chrono::Duration::minutes(1));
    let now = ctx.clock.now();
    t2.material = TokenMaterial {
        access_token: Some(Sealed(vec![9; 40])),
        refresh_token: Some(Sealed(vec![8; 40])),
        token_type: Some("Bearer".into()),
        scopes: Some("refresh_token session:role:ANALYST".into()),
        access_expires_at: Some(now + chrono::Duration::minutes(10)),
        refresh_expires_at: Some(now + chrono::Duration::days(90)),
        issued_at: Some(now),
    };
    t2.status = TokenStatus::Healthy;
    let stored = s.update_token(&t2, now).await.unwrap();
    assert_eq!(stored.version, 2);
    assert_eq!(stored.material, t2.material);
    assert_eq!(stored.updated_at, now);
    assert_eq!(s.list_tokens().await.unwrap(), vec![stored.clone()]);

    s.delete_token(t.id).await.unwrap();
    assert!(matches!(
        s.get_token(t.id).await,
        Err(StoreError::NotFound("token"))
    ));
    assert!(matches!(
        s.find_token(None, &t.name).await,
        Err(StoreError::NotFound(_))
    ));
}

async fn token_names_are_unique_per_scope(ctx: Ctx) {
    let s = &ctx.store;
    let a = app(&ctx, "a", &[]);
    let b = app(&ctx, "b", &[]);
    s.create_app(&a, &key_for(&ctx, Some(a.id))).await.unwrap();
    s.create_app(&b, &key_for(&ctx, Some(b.id))).await.unwrap();
    s.create_token(&token(&ctx, "sf", None)).await.unwrap();
    let dup = s.create_token(&token(&ctx, "sf", None)).await.unwrap_err();
    assert!(
        matches!(&dup, StoreError::Conflict(m) if m.contains("global token named sf")),
        "{dup}"
    );
    // The same name app-level, once per app, is fine.
    s.create_token(&token(&ctx, "sf", Some(a.id)))
        .await
        .unwrap();
    s.create_token(&token(&ctx, "sf", Some(b.id)))
        .await
        .unwrap();
    assert!(matches!(
        s.create_token(&token(&ctx, "sf", Some(a.id))).await,
        Err(StoreError::Conflict(_))
    ));
    let own = s
        .find_token(Some(a.id), &TokenName::parse("sf").unwrap())
        .await
        .unwrap();
    assert_eq!(own.app_id, Some(a.id));
    assert_eq!(s.list_tokens().await.unwrap().len(), 3);
}

async fn stale_versions_are_refused(ctx: Ctx) {
    // R11: an admin edit and a refresh racing on the same row never revert each other.
    let s = &ctx.store;
    let t = token(&ctx, "sf", None);
    s.create_token(&t).await.unwrap();
    let mut by_refresh = t.clone();
    by_refresh.material.access_token = Some(Sealed(vec![1; 10]));
    let mut by_admin = t.clone();
    by_admin.client_id = Some("new-client".into());
    s.update_token(&by_refresh, ctx.clock.now()).await.unwrap();
    let err = s
        .update_token(&by_admin, ctx.clock.now())
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::VersionMismatch("token")), "{err}");
    let now = s.get_token(t.id).await.unwrap();
    assert_eq!(now.material.access_token, Some(Sealed(vec![1; 10])));
    assert_eq!(now.client_id.as_deref(), Some("client-id"));

    // Many concurrent writers on one version: exactly one wins.
    let mut tasks = Vec::new();
    for i in 0..8u8 {
        let s = ctx.store.clone();
        let mut mine = now.clone();
        mine.material.access_token = Some(Sealed(vec![i; 4]));
        let at = ctx.clock.now();
        tasks.push(tokio::spawn(async move { s.update_token(&mine, at).await }));
    }
    let mut wins = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(_) => wins += 1,
            Err(StoreError::VersionMismatch(_)) => {}
            Err(e) => panic!("unexpected {e}"),
        }
    }
    assert_eq!(wins, 1);

    let mut a = app(&ctx, "x", &[]);
    s.create_app(&a, &key_for(&ctx, Some(a.id))).await.unwrap();
    s.update_app(&a, ctx.clock.now()).await.unwrap();
    a.state = AppState::Stopped;
    assert!(matches!(
        s.update_app(&a, ctx.clock.now()).await,
        Err(StoreError::VersionMismatch("app"))
    ));
    assert_eq!(s.get_app(a.id).await.unwrap().state, AppState::Running);
}

async fn failed_transaction_leaves_nothing(ctx: Ctx) {
    // create_app writes the app, its bindings and its first key in one transaction: a key whose
    // id already exists makes the last insert fail, and the app must not exist afterwards.
    let s = &ctx.store;
    let a = app(&ctx, "first", &[]);
    let key = key_for(&ctx, Some(a.id));
    s.create_app(&a, &key).await.unwrap();
    let b = app(&ctx, "second", &["sf"]);
    let mut reused = key.clone();
    reused.app_id = Some(b.id);
    assert!(s.create_app(&b, &reused).await.is_err());
    assert!(matches!(
        s.get_app_by_name(&b.name).await,
        Err(StoreError::NotFound(_))
    ));
    assert!(
        s.apps_using_token(&TokenName::parse("sf").unwrap())
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(s.list_apps().await.unwrap().len(), 1);
}

async fn deleting_an_app_removes_its_tokens_and_keys(ctx: Ctx) {
    let s = &ctx.store;
    let a = app(&ctx, "gone", &["sf"]);
    let key = key_for(&ctx, Some(a.id));
    s.create_app(&a, &key).await.unwrap();
    let own = token(&ctx, "sf", Some(a.id));
    let global = token(&ctx, "sf", None);
    s.create_token(&own).await.unwrap();
    s.create_token(&global).await.unwrap();
    s.delete_app(a.id).await.unwrap();
    assert!(matches!(
        s.get_token(own.id).await,
        Err(StoreError::NotFound(_))
    ));
    assert!(
        s.get_token(global.id).await.is_ok(),
        "global tokens outlive apps"
    );
    assert!(matches!(
        s.get_api_key(key.id).await,
        Err(StoreError::NotFound(_))
    ));
}

async fn api_keys_create_list_revoke(ctx: Ctx) {
    let s = &ctx.store;
    let a = app(&ctx, "k", &[]);
    let first = key_for(&ctx, Some(a.id));
    s.create_app(&a, &first).await.unwrap();
    let second = key_for(&ctx, Some(a.id));
    s.create_api_key(&second).await.unwrap();
    let admin = key_for(&ctx, None);
    s.create_api_key(&admin).await.unwrap();
    assert_eq!(s.list_api_keys(Some(a.id)).await.unwrap().len(), 2);
    assert_eq!(s.list_api_keys(None).await.unwrap(), vec![admin.clone()]);
    s.revoke_api_key(second.id, ctx.clock.now()).await.unwrap();
    assert_eq!(
        s.get_api_key(second.id).await.unwrap().revoked_at,
        Some(ctx.clock.now())
    );
    assert!(s.get_api_key(first.id).await.unwrap().revoked_at.is_none());
    assert!(matches!(
        s.revoke_api_key(ApiKeyId(uuid::Uuid::new_v4()), ctx.clock.now())
            .await,
        Err(StoreError::NotFound(_))
    ));
}

async fn lease_is_exclusive_and_owner_checked(ctx: Ctx) {
    let s = &ctx.store;
    let ttl = chrono::Duration::seconds(30);
    let a = s
        .acquire_lease("refresh:t1", "inst-a", ttl, ctx.clock.now())
        .await
        .unwrap()
        .unwrap();
    assert!(
        s.acquire_lease("refresh:t1", "inst-b", ttl, ctx.clock.now())
            .await
            .unwrap()
            .is_none()
    );
    // Other names are independent.
    assert!(
        s.acquire_lease("refresh:t2", "inst-b", ttl, ctx.clock.now())
            .await
            .unwrap()
            .is_some()
    );
    // The holder can renew; the fencing value does not change.
    let a = s
        .renew_lease(&a, ttl, ctx.clock.now())
        .await
        .unwrap()
        .unwrap();
    ctx.clock.advance(chrono::Duration::seconds(31));
    // Expired: another owner takes it with a higher fencing value; the old holder can neither
    // renew nor release it.
    let b = s
        .acquire_lease("refresh:t1", "inst-b", ttl, ctx.clock.now())
        .await
        .unwrap()
        .unwrap();
    assert!(b.fencing > a.fencing);
    assert!(
        s.renew_lease(&a, ttl, ctx.clock.now())
            .await
            .unwrap()
            .is_none()
    );
    assert!(!s.release_lease(&a).await.unwrap());
    assert!(s.release_lease(&b).await.unwrap());
    // Released: free at once.
    let c = s
        .acquire_lease("refresh:t1", "inst-a", ttl, ctx.clock.now())
        .await
        .unwrap()
        .unwrap();
    assert!(c.fencing > b.fencing);
}

/// Issue 13: an instance stopping with work cut gives up what it holds, and only that.
async fn issue13_release_leases_of_an_owner_frees_only_its_own(ctx: Ctx) {
    let s = &ctx.store;
    let ttl = chrono::Duration::seconds(30);
    let now = ctx.clock.now();
    let a1 = s
        .acquire_lease("refresh:t1", "inst-a", ttl, now)
        .await
        .unwrap()
        .unwrap();
    s.acquire_lease("refresh:t2", "inst-a", ttl, now)
        .await
        .unwrap()
        .unwrap();
    s.acquire_lease("refresh:t3", "inst-b", ttl, now)
        .await
        .unwrap()
        .unwrap();
    // One refresh attempt of inst-a (ops::grant::refresh owns a lease as `instance:attempt`),
    // and one of another instance whose id only starts like it.
    s.acquire_lease("refresh:t4", "inst-a:0f3c", ttl, now)
        .await
        .unwrap()
        .unwrap();
    s.acquire_lease("refresh:t5", "inst-ab:0f3c", ttl, now)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(s.release_leases_of("inst-a").await.unwrap(), 3);
    assert_eq!(s.release_leases_of("inst-a").await.unwrap(), 0);
    // Free at once for another owner, with a higher fencing value; inst-b's still held.
    let b1 = s
        .acquire_lease("refresh:t1", "inst-b", ttl, now)
        .await
        .unwrap()
        .unwrap();
    assert!(b1.fencing > a1.fencing);
    assert!(
        s.acquire_lease("refresh:t2", "inst-c", ttl, now)
            .await
            .unwrap()
            .is_some()
    );
    assert!(
        s.acquire_lease("refresh:t3", "inst-c", ttl, now)
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        s.acquire_lease("refresh:t5", "inst-c", ttl, now)
            .await
            .unwrap()
            .is_none(),
        "inst-ab's lease is not inst-a's"
    );
}

async fn lease_under_contention_has_one_winner(ctx: Ctx) {
    let mut tasks = Vec::new();
    for i in 0..20 {
        let s = ctx.store.clone();
        let now = ctx.clock.now();
        tasks.push(tokio::spawn(async move {
            s.acquire_lease(
                "job:x",
                &format!("owner-{i}"),
                chrono::Duration::seconds(60),
                now,
            )
            .await
        }));
    }
    let mut winners = 0;
    for t in tasks {
        if t.await.unwrap().unwrap().is_some() {
            winners += 1;
        }
    }
    assert_eq!(winners, 1);
}

async fn commit_under_lost_lease_is_refused(ctx: Ctx) {
    // R9: a holder paused past its lease never overwrites what the new holder wrote.
    let s = &ctx.store;
    let t = token(&ctx, "sf", None);
    s.create_token(&t).await.unwrap();
    let ttl = chrono::Duration::seconds(30);
    let stale = s
        .acquire_lease("refresh:sf", "inst-a", ttl, ctx.clock.now())
        .await
        .unwrap()
        .unwrap();
    ctx.clock.advance(chrono::Duration::seconds(40));
    let fresh = s
        .acquire_lease("refresh:sf", "inst-b", ttl, ctx.clock.now())
        .await
        .unwrap()
        .unwrap();

    let mut from_a = t.clone();
    from_a.material.refresh_token = Some(Sealed(b"A".to_vec()));
    let err = s
        .update_token_under_lease(&from_a, &stale, ctx.clock.now())
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::LeaseLost(_)), "{err}");

    let mut from_b = t.clone();
    from_b.material.refresh_token = Some(Sealed(b"B".to_vec()));
    let stored = s
        .update_token_under_lease(&from_b, &fresh, ctx.clock.now())
        .await
        .unwrap();
    assert_eq!(stored.material.refresh_token, Some(Sealed(b"B".to_vec())));
    // And once the lease expires, even the last holder cannot commit.
    ctx.clock.advance(chrono::Duration::seconds(31));
    let err = s
        .update_token_under_lease(&stored, &fresh, ctx.clock.now())
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::LeaseLost(_)));
}

/// Issue 10, item 3: a successful refresh is one transaction: the token under its lease, the
/// bookkeeping's success (read counts kept, failures cleared), the audit record, the lease
/// released, and the pass's next check only if nothing else wrote the token since the pass read
/// it. Under a lost lease nothing of it is written.
async fn issue10_a_refresh_commits_token_bookkeeping_audit_lease_and_schedule_at_once(ctx: Ctx) {
    let s = &ctx.store;
    let now = ctx.clock.now();
    let hour = chrono::Duration::hours(1);
    let t = token(&ctx, "sf", None);
    s.create_token(&t).await.unwrap();
    s.add_token_reads(t.id, 5, now).await.unwrap();
    let mut h = s.get_token_health(t.id).await.unwrap().unwrap();
    h.failures = 3;
    h.last_error = Some("earlier".into());
    h.next_attempt_at = Some(now - hour);
    s.put_token_health(&h).await.unwrap();
    let check_seq = all_due(s, now, 10).await[0].check_seq;
    let audit = |id: &str| AuditEvent {
        id: id.into(),
        at: now,
        actor: "system".into(),
        action: "token.refresh".into(),
        object_type: "token".into(),
        object_id: Some(t.id.to_string()),
        object_name: None,
        outcome: "ok".into(),
        detail: serde_json::json!({}),
    };
    let later = TokenSchedule {
        next_check_at: Some(now + hour),
        ahead_at: Some(now + hour / 2),
    };
    let ttl = chrono::Duration::seconds(30);

    // Lost lease: nothing written, not even the audit record; the lease stays the new owner's.
    let stale = s
        .acquire_lease("refresh:sf", "inst-a", ttl, now)
        .await
        .unwrap()
        .unwrap();
    ctx.clock.advance(chrono::Duration::seconds(40));
    let fresh = s
        .acquire_lease("refresh:sf", "inst-b", ttl, ctx.clock.now())
        .await
        .unwrap()
        .unwrap();
    let mut from_a = t.clone();
    from_a.material.refresh_token = Some(Sealed(b"A".to_vec()));
    let lost = RefreshCommit {
        token: &from_a,
        lease: &stale,
        now: ctx.clock.now(),
        succeeded_at: ctx.clock.now(),
        audit: &audit("a"),
        schedule: Some((check_seq, later)),
    };
    let err = s.commit_refresh(&lost).await.unwrap_err();
    assert!(matches!(err, StoreError::LeaseLost(_)), "{err}");
    assert_eq!(s.get_token(t.id).await.unwrap().version, t.version);
    assert_eq!(s.get_token_health(t.id).await.unwrap().unwrap().failures, 3);
    assert!(
        s.list_audit(&AuditFilter::default())
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        s.acquire_lease("refresh:sf", "inst-c", ttl, ctx.clock.now())
            .await
            .unwrap()
            .is_none(),
        "B still holds the lease"
    );

    // The holder commits: everything at once, the lease free, and not due until `later`.
    let mut from_b = t.clone();
    from_b.material.refresh_token = Some(Sealed(b"B".to_vec()));
    let at = ctx.clock.now();
    let stored = s
        .commit_refresh(&RefreshCommit {
            token: &from_b,
            lease: &fresh,
            now: at,
            succeeded_at: at,
            audit: &audit("b"),
            schedule: Some((check_seq, later)),
        })
        .await
        .unwrap();
    assert_eq!(stored.material.refresh_token, Some(Sealed(b"B".to_vec())));
    assert_eq!(stored.version, t.version + 1);
    assert_eq!(
        stored,
        s.get_token(t.id).await.unwrap(),
        "returns the row as stored"
    );
    let h = s.get_token_health(t.id).await.unwrap().unwrap();
    assert_eq!(
        (h.last_success_at, h.last_attempt_at, h.failures),
        (Some(at), Some(at), 0)
    );
    assert_eq!((h.next_attempt_at, h.last_error), (None, None));
    assert_eq!(
        (h.reads_total, h.last_read_at),
        (5, Some(now)),
        "reads kept"
    );
    let audited = s.list_audit(&AuditFilter::default()).await.unwrap();
    assert_eq!(
        audited.iter().map(|e| e.id.as_str()).collect::<Vec<_>>(),
        ["b"]
    );
    assert!(
        all_due(s, at, 10).await.is_empty(),
        "scheduled with the refresh"
    );
    assert_eq!(all_due(s, now + hour, 10).await.len(), 1);
    let next = s
        .acquire_lease("refresh:sf", "inst-c", ttl, at)
        .await
        .unwrap()
        .expect("released with the commit");

    // Written by someone else since the pass read it: the token stays due.
    s.add_token_reads(t.id, 1, at).await.unwrap();
    let mut again = stored.clone();
    again.material.refresh_token = Some(Sealed(b"C".to_vec()));
    let due = all_due(s, now + hour, 10).await;
    let read_seq = due[0].check_seq;
    s.add_token_reads(t.id, 1, at).await.unwrap();
    s.commit_refresh(&RefreshCommit {
        token: &again,
        lease: &next,
        now: at,
        succeeded_at: at,
        audit: &audit("c"),
        schedule: Some((read_seq, later)),
    })
    .await
    .unwrap();
    assert_eq!(
        all_due(s, at, 10).await.len(),
        1,
        "a schedule computed before another write is not stored"
    );
}

async fn data_keys_and_sealed_values(ctx: Ctx) {
    let s = &ctx.store;
    let k = |id: &str, active| StoredDataKey {
        key_id: id.into(),
        wrapped: vec![1, 2, 3],
        active,
        created_at: ctx.clock.now(),
    };
    s.insert_data_key(&k("k1", true)).await.unwrap();
    ctx.clock.advance(chrono::Duration::seconds(1));
    s.insert_data_key(&k("k2", true)).await.unwrap();
    let keys = s.list_data_keys().await.unwrap();
    assert_eq!(
        keys.iter()
            .filter(|k| k.active)
            .map(|k| k.key_id.as_str())
            .collect::<Vec<_>>(),
        ["k2"]
    );
    assert!(matches!(
        s.insert_data_key(&k("k2", false)).await,
        Err(StoreError::Conflict(_))
    ));

    let mut t = token(&ctx, "sf", None);
    t.client_secret = Some(Sealed(b"\x01\x02k1rest-of-ciphertext".to_vec()));
    s.create_token(&t).await.unwrap();
    let sealed = s.sealed_values().await.unwrap();
    assert_eq!(sealed.len(), 1);
    assert_eq!(sealed[0].column, SealedColumn::TokenClientSecret);
    assert_eq!(sealed[0].row_id, t.id.to_string());

    // k1 is still used by that value, k2 is active: neither may go.
    assert!(
        matches!(s.delete_data_key("k1").await, Err(StoreError::Conflict(m)) if m.contains("1 sealed"))
    );
    assert!(matches!(
        s.delete_data_key("k2").await,
        Err(StoreError::Conflict(_))
    ));
    // Compare-and-swap: a stale expected value is not replaced.
    let moved = Sealed(b"\x01\x02k2new".to_vec());
    let mut stale = sealed[0].clone();
    stale.sealed = Sealed(b"other".to_vec());
    assert!(!s.replace_sealed(&stale, &moved).await.unwrap());
    assert!(s.replace_sealed(&sealed[0], &moved).await.unwrap());
    assert_eq!(s.get_token(t.id).await.unwrap().client_secret, Some(moved));
    s.delete_data_key("k1").await.unwrap();
    assert_eq!(s.list_data_keys().await.unwrap().len(), 1);
    assert!(matches!(
        s.delete_data_key("k1").await,
        Err(StoreError::NotFound(_))
    ));
}

async fn audit_events_filter_and_order(ctx: Ctx) {
    let s = &ctx.store;
    for (i, action) in ["app.create", "token.create", "token.update"]
        .iter()
        .enumerate()
    {
        ctx.clock.advance(chrono::Duration::seconds(1));
        s.append_audit(&AuditEvent {
            id: format!("e{i}"),
            at: ctx.clock.now(),
            actor: "admin:bootstrap".into(),
            action: (*action).into(),
            object_type: "token".into(),
            object_id: Some(if i == 0 { "app1".into() } else { "tok1".into() }),
            object_name: None,
            outcome: "ok".into(),
            detail: serde_json::json!({"n": i}),
        })
        .await
        .unwrap();
    }
    let all = s.list_audit(&AuditFilter::default()).await.unwrap();
    assert_eq!(
        all.iter().map(|e| e.id.as_str()).collect::<Vec<_>>(),
        ["e2", "e1", "e0"]
    );
    assert_eq!(all[0].detail, serde_json::json!({"n": 2}));
    let by_obj = s
        .list_audit(&AuditFilter {
            object_id: Some("tok1".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(by_obj.len(), 2);
    let by_action = s
        .list_audit(&AuditFilter {
            action: Some("app.create".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(by_action.len(), 1);
    let limited = s
        .list_audit(&AuditFilter {
            limit: 1,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(limited.len(), 1);
}

/// Issue 9, bug 3: the audit log is pruned by age, at most `limit` rows per call, oldest
/// first; newer rows stay.
async fn issue9_bug3_audit_prune_deletes_only_what_is_due_in_bounded_batches(ctx: Ctx) {
    let s = &ctx.store;
    let start = ctx.clock.now();
    for i in 0..7 {
        s.append_audit(&AuditEvent {
            id: format!("p{i}"),
            at: start + chrono::Duration::seconds(i),
            actor: "system".into(),
            action: "token.refresh".into(),
            object_type: "token".into(),
            object_id: None,
            object_name: None,
            outcome: "ok".into(),
            detail: serde_json::json!({}),
        })
        .await
        .unwrap();
    }
    let cut = start + chrono::Duration::seconds(5); // p0..p4 are older
    assert_eq!(s.prune_audit(cut, 0).await.unwrap(), 0);
    assert_eq!(s.prune_audit(cut, 3).await.unwrap(), 3);
    let left: Vec<String> = s
        .list_audit(&AuditFilter::default())
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.id)
        .collect();
    assert_eq!(left, ["p6", "p5", "p4", "p3"], "the oldest went first");
    assert_eq!(s.prune_audit(cut, 3).await.unwrap(), 2);
    assert_eq!(s.prune_audit(cut, 3).await.unwrap(), 0);
    assert_eq!(
        s.list_audit(&AuditFilter::default()).await.unwrap().len(),
        2
    );
}

async fn meta_set_if_absent(ctx: Ctx) {
    let s = &ctx.store;
    assert_eq!(s.get_meta("master_key_check").await.unwrap(), None);
    assert!(
        s.set_meta_if_absent("master_key_check", "abc")
            .await
            .unwrap()
    );
    assert!(
        !s.set_meta_if_absent("master_key_check", "def")
            .await
            .unwrap()
    );
    s.set_meta("reminder_lead_times", "[\"7d\"]").await.unwrap();
    s.set_meta("reminder_lead_times", "[\"3d\"]").await.unwrap();
    assert_eq!(
        s.get_meta("reminder_lead_times").await.unwrap().as_deref(),
        Some("[\"3d\"]")
    );
    assert_eq!(
        s.get_meta("master_key_check").await.unwrap().as_deref(),
        Some("abc")
    );
}

#[tokio::test]
async fn sqlite_runs_wal_with_synchronous_full() {
    // R34's settings.
    let ctx = sqlite().await;
    assert_eq!(
        ctx.store.diagnostic("PRAGMA journal_mode").await.unwrap(),
        "wal"
    );
    assert_eq!(
        ctx.store.diagnostic("PRAGMA synchronous").await.unwrap(),
        "2"
    );
    assert_eq!(
        ctx.store.diagnostic("PRAGMA foreign_keys").await.unwrap(),
        "1"
    );
}

#[test]
fn unknown_url_schemes_are_refused_without_echoing_credentials() {
    let err = Backend::from_url("mysql://user:hunter2@host/db")
        .unwrap_err()
        .to_string();
    assert!(err.contains("mysql"), "{err}");
    assert!(!err.contains("hunter2"), "{err}");
    assert_eq!(
        Backend::from_url("postgresql://x").unwrap(),
        Backend::Postgres
    );
    assert_eq!(
        Backend::from_url("sqlite:///tmp/x.db").unwrap(),
        Backend::Sqlite
    );
}

async fn device_flows_one_per_token_due_by_index_and_compare_and_set(ctx: Ctx) {
    use tokenwarden_domain::DeviceFlowStatus;
    let s = &ctx.store;
    let (a, b) = (token(&ctx, "dev-a", None), token(&ctx, "dev-b", None));
    s.create_token(&a).await.unwrap();
    s.create_token(&b).await.unwrap();
    let now = ctx.clock.now();
    let flow = |t: &TokenRecord, poll_in: i64| DeviceFlowRecord {
        id: uuid::Uuid::new_v4().to_string(),
        token_id: t.id,
        device_code: Some(Sealed(vec![9, 8, 7])),
        user_code: "WDJB-MJHT".into(),
        verification_uri: "https://example.com/device".into(),
        verification_uri_complete: None,
        interval_secs: 5,
        status: DeviceFlowStatus::Pending,
        error: None,
        started_by: "cli".into(),
        created_at: now,
        expires_at: now + chrono::Duration::minutes(15),
        next_poll_at: Some(now + chrono::Duration::seconds(poll_in)),
        updated_at: now,
    };
    assert_eq!(s.get_device_flow(a.id).await.unwrap(), None);
    let first = flow(&a, 5);
    s.start_device_flow(&first).await.unwrap();
    assert_eq!(s.get_device_flow(a.id).await.unwrap(), Some(first.clone()));
    // A new start replaces the token's flow; the old one can no longer be written.
    let second = flow(&a, 5);
    s.start_device_flow(&second).await.unwrap();
    assert_eq!(
        s.get_device_flow(a.id).await.unwrap().map(|f| f.id),
        Some(second.id.clone())
    );
    assert!(!s.update_device_flow(&first).await.unwrap());
    s.start_device_flow(&flow(&b, 10)).await.unwrap();
    // Only what is due, earliest first, within the limit.
    assert!(s.due_device_flows(now, 10).await.unwrap().is_empty());
    let due = s
        .due_device_flows(now + chrono::Duration::seconds(5), 10)
        .await
        .unwrap();
    assert_eq!(due.iter().map(|f| f.token_id).collect::<Vec<_>>(), [a.id]);
    let due = s
        .due_device_flows(now + chrono::Duration::seconds(60), 1)
        .await
        .unwrap();
    assert_eq!(due.len(), 1);
    // Ending a flow clears its code and takes it out of the due range; an ended flow is not
    // written again.
    let mut ended = second.clone();
    ended.status = DeviceFlowStatus::Denied;
    ended.error = Some("access_denied".into());
    ended.device_code = None;
    ended.next_poll_at = None;
    assert!(s.update_device_flow(&ended).await.unwrap());
    assert!(!s.update_device_flow(&ended).await.unwrap());
    assert_eq!(s.get_device_flow(a.id).await.unwrap(), Some(ended));
    let due = s
        .due_device_flows(now + chrono::Duration::hours(1), 10)
        .await
        .unwrap();
    assert_eq!(due.iter().map(|f| f.token_id).collect::<Vec<_>>(), [b.id]);
    // The sealed code is re-encrypted with the others, and goes with its token.
    assert!(
        s.sealed_values()
            .await
            .unwrap()
            .iter()
            .any(|r| r.column == SealedColumn::DeviceFlowCode)
    );
    s.delete_token(b.id).await.unwrap();
    assert_eq!(s.get_device_flow(b.id).await.unwrap(), None);
}

async fn oauth_state_is_single_use(ctx: Ctx) {
    // R2's storage half: a state is consumed once, atomically; expired and unknown are told apart.
    let s = &ctx.store;
    let t = token(&ctx, "sf", None);
    s.create_token(&t).await.unwrap();
    let now = ctx.clock.now();
    let rec = |hash: &str, ttl_min: i64| OAuthStateRecord {
        id: uuid::Uuid::new_v4().to_string(),
        state_hash: hash.into(),
        token_id: t.id,
        started_by: "admin:bootstrap".into(),
        session_hash: None,
        verifier: Some(Sealed(vec![1, 2, 3])),
        redirect_uri: "http://127.0.0.1:8420/oauth/callback".into(),
        created_at: now,
        expires_at: now + chrono::Duration::minutes(ttl_min),
        used_at: None,
    };
    s.create_oauth_state(&rec("h1", 10)).await.unwrap();
    s.create_oauth_state(&rec("h2", 10)).await.unwrap();
    assert!(matches!(
        s.create_oauth_state(&rec("h1", 10)).await,
        Err(StoreError::Conflict(_))
    ));
    match s.consume_oauth_state("h1", now).await.unwrap() {
        StateOutcome::Consumed(r) => {
            assert_eq!(r.token_id, t.id);
            assert_eq!(r.verifier, Some(Sealed(vec![1, 2, 3])));
            assert_eq!(r.used_at, Some(now));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        s.consume_oauth_state("h1", now).await.unwrap(),
        StateOutcome::AlreadyUsed
    );
    assert_eq!(
        s.consume_oauth_state("nope", now).await.unwrap(),
        StateOutcome::Unknown
    );
    ctx.clock.advance(chrono::Duration::minutes(11));
    assert_eq!(
        s.consume_oauth_state("h2", ctx.clock.now()).await.unwrap(),
        StateOutcome::Expired
    );

    // Ten concurrent callbacks with one fresh state: exactly one consumes it.
    s.create_oauth_state(&rec("h3", 30)).await.unwrap();
    let mut tasks = Vec::new();
    for _ in 0..10 {
        let st = ctx.store.clone();
        let at = ctx.clock.now();
        tasks.push(tokio::spawn(async move {
            st.consume_oauth_state("h3", at).await.unwrap()
        }));
    }
    let mut won = 0;
    for task in tasks {
        if matches!(task.await.unwrap(), StateOutcome::Consumed(_)) {
            won += 1;
        }
    }
    assert_eq!(won, 1);
    assert_eq!(
        s.purge_oauth_states(ctx.clock.now() + chrono::Duration::hours(1))
            .await
            .unwrap(),
        3
    );
    // Deleting the token removes its attempts too.
    s.create_oauth_state(&rec("h4", 10)).await.unwrap();
    s.delete_token(t.id).await.unwrap();
    assert_eq!(
        s.consume_oauth_state("h4", ctx.clock.now()).await.unwrap(),
        StateOutcome::Unknown
    );
}

async fn token_health_and_read_counts(ctx: Ctx) {
    let s = &ctx.store;
    let t = token(&ctx, "sf", None);
    s.create_token(&t).await.unwrap();
    assert_eq!(s.get_token_health(t.id).await.unwrap(), None);
    assert_eq!(
        s.get_token_with_health(t.id).await.unwrap(),
        (s.get_token(t.id).await.unwrap(), None),
        "no bookkeeping before the first attempt"
    );
    let now = ctx.clock.now();
    s.add_token_reads(t.id, 5, now).await.unwrap();
    s.add_token_reads(t.id, 3, now - chrono::Duration::seconds(10))
        .await
        .unwrap();
    let h = s.get_token_health(t.id).await.unwrap().unwrap();
    assert_eq!(
        (h.reads_total, h.last_read_at),
        (8, Some(now)),
        "older flush does not move last_read_at back"
    );
    let mut h2 = h.clone();
    h2.failures = 3;
    h2.next_attempt_at = Some(now + chrono::Duration::minutes(5));
    h2.last_error = Some("HTTP 503".into());
    s.put_token_health(&h2).await.unwrap();
    assert_eq!(s.get_token_health(t.id).await.unwrap().unwrap(), h2);
    assert_eq!(
        s.get_token_with_health(t.id).await.unwrap(),
        (s.get_token(t.id).await.unwrap(), Some(h2)),
        "read together as stored apart"
    );
    assert_eq!(s.list_token_health().await.unwrap().len(), 1);
    s.delete_token(t.id).await.unwrap();
    assert_eq!(s.get_token_health(t.id).await.unwrap(), None);
    assert!(matches!(
        s.get_token_with_health(t.id).await,
        Err(StoreError::NotFound(_))
    ));
}

/// Every due token, page by page (pages of `limit`), checking each page is bounded.
async fn all_due(s: &SqlStore, now: tokenwarden_domain::Timestamp, limit: i64) -> Vec<DueToken> {
    let mut out = Vec::new();
    let mut after = None;
    loop {
        let page = s.due_tokens(now, after, limit).await.unwrap();
        assert!(
            page.len() as i64 <= limit,
            "a page holds at most `limit` rows"
        );
        after = page.last().map(|d| d.cursor);
        let last = (page.len() as i64) < limit;
        out.extend(page);
        if last {
            return out;
        }
    }
}

fn ids(due: &[DueToken]) -> std::collections::BTreeSet<TokenId> {
    due.iter().map(|d| d.token.id).collect()
}

/// Issue 10, item 2: the background pass selects only the due tokens (next_check_at <= now), in
/// pages of a bounded size with a cursor; every write that changes what is due puts the token
/// back in the schedule, and a schedule computed from older state is not stored.
async fn issue10_item2_the_due_query_returns_only_due_tokens_in_bounded_pages(ctx: Ctx) {
    let s = &ctx.store;
    let now = ctx.clock.now();
    let hour = chrono::Duration::hours(1);
    let mut all = Vec::new();
    for i in 0..7 {
        let t = token(&ctx, &format!("t{i}"), None);
        s.create_token(&t).await.unwrap();
        all.push(t);
    }
    // New tokens are due at once, and come with their bookkeeping (none yet).
    let due = all_due(s, now, 2).await;
    assert_eq!(due.len(), 7, "no row twice, none left out across pages");
    assert_eq!(ids(&due).len(), 7);
    assert!(due.iter().all(|d| d.health.is_none()));
    let seq = |id: TokenId| due.iter().find(|d| d.token.id == id).unwrap().check_seq;

    // Two later, one never (until written again): the rest stay due.
    let later = TokenSchedule {
        next_check_at: Some(now + hour),
        ahead_at: Some(now + hour * 3),
    };
    let never = TokenSchedule {
        next_check_at: None,
        ahead_at: None,
    };
    for t in &all[..2] {
        assert!(s.schedule_token(t.id, seq(t.id), &later).await.unwrap());
    }
    assert!(
        s.schedule_token(all[2].id, seq(all[2].id), &never)
            .await
            .unwrap()
    );
    let due = all_due(s, now, 2).await;
    assert_eq!(
        ids(&due),
        all[3..].iter().map(|t| t.id).collect(),
        "only the due rows"
    );
    let due_later = all_due(s, now + hour, 3).await;
    assert_eq!(
        due_later.len(),
        6,
        "at their time the later ones are due too"
    );
    assert!(
        !ids(&due_later).contains(&all[2].id),
        "never due until written"
    );
    // In the order (next_check_at, id).
    let order: Vec<_> = due_later
        .iter()
        .map(|d| (d.cursor.next_check_at, d.token.id))
        .collect();
    let mut sorted = order.clone();
    sorted.sort();
    assert_eq!(order, sorted);

    // A write in between: the schedule computed from the older row is not stored.
    let stale = seq(all[3].id);
    let mut edited = s.get_token(all[3].id).await.unwrap();
    edited.status_reason = Some("edited".into());
    s.update_token(&edited, now).await.unwrap();
    assert!(!s.schedule_token(all[3].id, stale, &later).await.unwrap());
    assert!(ids(&all_due(s, now, 10).await).contains(&all[3].id));

    // Writes that change what is due: a token write, its bookkeeping, a flush of reads.
    let mut t0 = s.get_token(all[0].id).await.unwrap();
    t0.status_reason = Some("signed in again".into());
    s.update_token(&t0, now).await.unwrap();
    s.put_token_health(&TokenHealth::new(all[1].id))
        .await
        .unwrap();
    s.update_token(&s.get_token(all[2].id).await.unwrap(), now)
        .await
        .unwrap();
    let due = all_due(s, now, 10).await;
    assert_eq!(due.len(), 7, "every written token is due again");
    assert!(
        due.iter()
            .any(|d| d.token.id == all[1].id && d.health.is_some())
    );
    for d in &due {
        assert!(
            s.schedule_token(d.token.id, d.check_seq, &later)
                .await
                .unwrap()
        );
    }
    assert!(
        all_due(s, now, 10).await.is_empty(),
        "nothing due: no row read"
    );
    // A read brings the next check forward to the refresh-ahead time, never back.
    let idle = TokenSchedule {
        next_check_at: Some(now + hour * 5),
        ahead_at: Some(now + hour * 2),
    };
    let seq4 = due
        .iter()
        .find(|d| d.token.id == all[4].id)
        .unwrap()
        .check_seq;
    assert!(s.schedule_token(all[4].id, seq4, &idle).await.unwrap());
    let due_at = |at| async move { ids(&all_due(s, at, 10).await) };
    assert!(!due_at(now + hour * 2).await.contains(&all[4].id));
    s.add_token_reads(all[4].id, 1, now).await.unwrap();
    assert!(
        due_at(now + hour * 2).await.contains(&all[4].id),
        "in use: due at its refresh-ahead time"
    );
    s.add_token_reads(all[5].id, 1, now).await.unwrap();
    assert!(
        due_at(now).await.is_empty(),
        "a read never makes a token due earlier than its ahead time"
    );
    // Lead times changed: everything is due once more.
    assert_eq!(s.reschedule_all_tokens().await.unwrap(), 7);
    assert_eq!(all_due(s, now, 10).await.len(), 7);
    s.delete_token(all[5].id).await.unwrap();
    assert_eq!(all_due(s, now, 10).await.len(), 6);
}

async fn reminders_are_recorded_once(ctx: Ctx) {
    // R39's storage half: ten instances racing to send the same reminder: one sends it.
    let t = token(&ctx, "sf", None);
    ctx.store.create_token(&t).await.unwrap();
    let exp = ctx.clock.now() + chrono::Duration::days(14);
    let mut tasks = Vec::new();
    for _ in 0..10 {
        let st = ctx.store.clone();
        let now = ctx.clock.now();
        tasks.push(tokio::spawn(async move {
            st.record_reminder(t.id, exp, "14d", now).await.unwrap()
        }));
    }
    let mut sent = 0;
    for task in tasks {
        sent += i32::from(task.await.unwrap());
    }
    assert_eq!(sent, 1);
    // Another lead time, or the same lead for a new expiry (re-authorized), is a new reminder.
    assert!(
        ctx.store
            .record_reminder(t.id, exp, "7d", ctx.clock.now())
            .await
            .unwrap()
    );
    assert!(
        ctx.store
            .record_reminder(
                t.id,
                exp + chrono::Duration::days(90),
                "14d",
                ctx.clock.now()
            )
            .await
            .unwrap()
    );
    assert_eq!(ctx.store.list_reminders(t.id).await.unwrap().len(), 3);
}

async fn issue11_item5_upcoming_and_recent_reminders_are_bounded_lists(ctx: Ctx) {
    // The notifications page: tokens by refresh-token expiry (only usable ones, only future
    // expiries, soonest first, at most `limit`), and the latest reminders sent with names.
    let s = &ctx.store;
    let now = ctx.clock.now();
    let day = chrono::Duration::days(1);
    let mut made = Vec::new();
    for (name, days, status) in [
        ("in-5", 5, TokenStatus::Healthy),
        ("in-2", 2, TokenStatus::ExpiringSoon),
        ("in-9", 9, TokenStatus::Healthy),
        ("dead", 3, TokenStatus::NeedsReauthorization),
        ("past", -1, TokenStatus::Healthy),
    ] {
        let mut t = token(&ctx, name, None);
        t.status = status;
        t.material.refresh_expires_at = Some(now + day * days);
        s.create_token(&t).await.unwrap();
        made.push(t);
    }
    let mut never = token(&ctx, "never", None);
    never.status = TokenStatus::Healthy;
    s.create_token(&never).await.unwrap();
    let names = |v: Vec<TokenRecord>| {
        v.into_iter()
            .map(|t| t.name.to_string())
            .collect::<Vec<_>>()
    };
    use ExpiryBound::{After, AfterToken};
    let refresh = Expiring::RefreshToken;
    assert_eq!(
        names(
            s.tokens_expiring_after(refresh, After(now), 10)
                .await
                .unwrap()
        ),
        ["in-2", "in-5", "in-9"]
    );
    assert_eq!(
        names(
            s.tokens_expiring_after(refresh, After(now), 2)
                .await
                .unwrap()
        ),
        ["in-2", "in-5"]
    );
    // The next page starts after the last row's (expiry, id); a second token expiring at the
    // same instant comes after it by id, not skipped.
    let mut twin = token(&ctx, "twin-2", None);
    twin.status = TokenStatus::Healthy;
    twin.material.refresh_expires_at = made[1].material.refresh_expires_at;
    s.create_token(&twin).await.unwrap();
    let two = made[1].material.refresh_expires_at.unwrap();
    let (first, second) = if made[1].id.to_string() < twin.id.to_string() {
        (&made[1], &twin)
    } else {
        (&twin, &made[1])
    };
    assert_eq!(
        names(
            s.tokens_expiring_after(refresh, AfterToken(two, first.id), 10)
                .await
                .unwrap()
        ),
        [second.name.to_string(), "in-5".into(), "in-9".into()]
    );
    assert_eq!(
        names(
            s.tokens_expiring_after(refresh, After(two), 10)
                .await
                .unwrap()
        ),
        ["in-5", "in-9"]
    );
    s.delete_token(twin.id).await.unwrap();
    assert!(s.recent_reminders(10).await.unwrap().is_empty());
    s.record_reminder(made[0].id, now + day * 5, "14d", now)
        .await
        .unwrap();
    s.record_reminder(
        made[1].id,
        now + day * 2,
        "3d",
        now + chrono::Duration::minutes(1),
    )
    .await
    .unwrap();
    s.record_reminder(
        made[2].id,
        now + day * 9,
        "14d",
        now + chrono::Duration::minutes(2),
    )
    .await
    .unwrap();
    let recent = s.recent_reminders(2).await.unwrap();
    assert_eq!(recent.len(), 2, "{recent:?}");
    assert_eq!(recent[0].token_name.as_deref(), Some("in-9"));
    assert_eq!(recent[1].token_name.as_deref(), Some("in-2"));
    assert_eq!(recent[1].lead, "3d");
    assert_eq!(recent[1].refresh_expires_at, now + day * 2);
    assert_eq!(recent[1].token_id, made[1].id);
}

async fn issue13_metric_counts_are_bounded_and_by_status(ctx: Ctx) {
    // `/metrics`' counts: tokens per status, apps per state, the delivery queue, and the usable
    // tokens whose refresh token expires before the horizon (soonest first, at most `limit`,
    // and how many in all), with the owning app's name.
    let s = &ctx.store;
    let now = ctx.clock.now();
    let day = chrono::Duration::days(1);
    let empty = s.metric_counts(now + day * 30, 10).await.unwrap();
    assert_eq!(empty, MetricCounts::default());
    let a = app(&ctx, "billing", &[]);
    s.create_app(&a, &key_for(&ctx, Some(a.id))).await.unwrap();
    let mut stopped = app(&ctx, "stopped-one", &[]);
    stopped.state = AppState::Stopped;
    s.create_app(&stopped, &key_for(&ctx, Some(stopped.id)))
        .await
        .unwrap();
    for (name, owner, days, status) in [
        ("in-5", Some(a.id), Some(5), TokenStatus::ExpiringSoon),
        ("in-2", None, Some(2), TokenStatus::ExpiringSoon),
        ("in-40", None, Some(40), TokenStatus::Healthy),
        ("dead", None, Some(3), TokenStatus::NeedsReauthorization),
        ("never", None, None, TokenStatus::Healthy),
        ("new", None, None, TokenStatus::NotAuthorized),
    ] {
        let mut t = token(&ctx, name, owner);
        t.status = status;
        t.material.refresh_expires_at = days.map(|d| now + day * d);
        s.create_token(&t).await.unwrap();
    }
    let c = s.metric_counts(now + day * 30, 1).await.unwrap();
    let pairs = |v: &[(&str, i64)]| {
        v.iter()
            .map(|(k, n)| ((*k).to_owned(), *n))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        c.tokens_by_status,
        pairs(&[
            ("expiring_soon", 2),
            ("healthy", 2),
            ("needs_reauthorization", 1),
            ("not_authorized", 1)
        ])
    );
    assert_eq!(c.apps_by_state, pairs(&[("running", 1), ("stopped", 1)]));
    assert_eq!(c.delivery_queue, 0);
    let r = &c.refresh_token;
    assert_eq!(r.next, Some(now + day * 2));
    assert_eq!(r.total, 2, "in-2 and in-5; not dead, not past the horizon");
    assert_eq!(r.expiring.len(), 1, "the limit");
    assert_eq!(r.expiring[0].name.as_str(), "in-2");
    assert_eq!(r.expiring[0].app, None);
    assert_eq!(
        c.client_secret,
        ExpiryCounts::default(),
        "no client secret expires"
    );
    let c = s.metric_counts(now + day * 30, 10).await.unwrap();
    let r = &c.refresh_token;
    let names: Vec<_> = r.expiring.iter().map(|t| t.name.to_string()).collect();
    assert_eq!(names, ["in-2", "in-5"]);
    assert_eq!(
        r.expiring[1].app.as_ref().map(|n| n.as_str()),
        Some("billing")
    );
    assert_eq!(r.expiring[1].provider.as_str(), "snowflake");
    assert_eq!(r.expiring[1].expires_at, now + day * 5);
    assert_eq!(c.expiry(Expiring::RefreshToken), r);

    // Client secrets, counted apart from the refresh tokens, by the same rules: only usable
    // tokens, the soonest `limit` before the horizon, and how many.
    for (name, owner, days, status) in [
        ("secret-10", Some(a.id), 10, TokenStatus::Healthy),
        ("secret-4", None, 4, TokenStatus::ExpiringSoon),
        ("secret-60", None, 60, TokenStatus::Healthy),
        ("secret-dead", None, 1, TokenStatus::NeedsCredentials),
    ] {
        let mut t = token(&ctx, name, owner);
        t.status = status;
        t.client_secret_expires_at = Some(now + day * days);
        s.create_token(&t).await.unwrap();
    }
    let c = s.metric_counts(now + day * 30, 1).await.unwrap();
    assert_eq!(
        c.refresh_token.total, 2,
        "the refresh tokens' counts unchanged"
    );
    let cs = c.expiry(Expiring::ClientSecret);
    assert_eq!(cs.next, Some(now + day * 4));
    assert_eq!(cs.total, 2, "secret-4 and secret-10");
    assert_eq!(cs.expiring.len(), 1, "the limit");
    assert_eq!(cs.expiring[0].name.as_str(), "secret-4");
    let c = s.metric_counts(now + day * 30, 10).await.unwrap();
    let cs = &c.client_secret;
    let names: Vec<_> = cs.expiring.iter().map(|t| t.name.to_string()).collect();
    assert_eq!(names, ["secret-4", "secret-10"]);
    assert_eq!(
        cs.expiring[1].app.as_ref().map(|n| n.as_str()),
        Some("billing")
    );
    assert_eq!(cs.expiring[1].expires_at, now + day * 10);
}

async fn issue13_tokens_by_client_secret_expiry_are_keyset_pages_of_their_index(ctx: Ctx) {
    // The reminders coming up about client secrets: usable tokens by (client-secret expiry,
    // id), pages of the index 0013 made, apart from the refresh tokens'.
    let s = &ctx.store;
    let now = ctx.clock.now();
    let day = chrono::Duration::days(1);
    let index = match s
        .diagnostic(
            "SELECT COUNT(*) FROM sqlite_master \
             WHERE type = 'index' AND name = 'tokens_by_client_secret_expiry'",
        )
        .await
    {
        Ok(n) => n,
        Err(_) => s
            .diagnostic(
                "SELECT COUNT(*) FROM pg_indexes \
                 WHERE indexname = 'tokens_by_client_secret_expiry'",
            )
            .await
            .unwrap(),
    };
    assert_eq!(index, "1", "migration 0013's index");
    let mut made = Vec::new();
    for (name, secret_days, refresh_days, status) in [
        ("cs-5", Some(5), None, TokenStatus::Healthy),
        ("cs-2", Some(2), Some(1), TokenStatus::ExpiringSoon),
        ("cs-9", Some(9), None, TokenStatus::Healthy),
        ("cs-dead", Some(3), None, TokenStatus::NeedsCredentials),
        ("cs-past", Some(-1), None, TokenStatus::Healthy),
        ("refresh-only", None, Some(4), TokenStatus::Healthy),
    ] {
        let mut t = token(&ctx, name, None);
        t.status = status;
        t.client_secret_expires_at = secret_days.map(|d| now + day * d);
        t.material.refresh_expires_at = refresh_days.map(|d| now + day * d);
        s.create_token(&t).await.unwrap();
        made.push(t);
    }
    let page = |what: Expiring, bound: ExpiryBound, limit: i64| async move {
        s.tokens_expiring_after(what, bound, limit)
            .await
            .unwrap()
            .into_iter()
            .map(|t| t.name.to_string())
            .collect::<Vec<_>>()
    };
    let secret = Expiring::ClientSecret;
    assert_eq!(
        page(secret, ExpiryBound::After(now), 10).await,
        ["cs-2", "cs-5", "cs-9"]
    );
    assert_eq!(
        page(secret, ExpiryBound::After(now), 2).await,
        ["cs-2", "cs-5"]
    );
    assert_eq!(
        page(Expiring::RefreshToken, ExpiryBound::After(now), 10).await,
        ["cs-2", "refresh-only"],
        "the refresh tokens' list is its own"
    );
    // At the same instant: `After` leaves it out, `From` takes every token, `AfterToken` the
    // ones after that token's id.
    let mut twin = token(&ctx, "cs-twin", None);
    twin.status = TokenStatus::Healthy;
    twin.client_secret_expires_at = made[1].client_secret_expires_at;
    s.create_token(&twin).await.unwrap();
    let two = now + day * 2;
    let (first, second) = if made[1].id.to_string() < twin.id.to_string() {
        (&made[1], &twin)
    } else {
        (&twin, &made[1])
    };
    assert_eq!(
        page(secret, ExpiryBound::After(two), 10).await,
        ["cs-5", "cs-9"]
    );
    assert_eq!(
        page(secret, ExpiryBound::From(two), 10).await,
        [
            first.name.to_string(),
            second.name.to_string(),
            "cs-5".into(),
            "cs-9".into()
        ]
    );
    assert_eq!(
        page(secret, ExpiryBound::AfterToken(two, first.id), 10).await,
        [second.name.to_string(), "cs-5".into(), "cs-9".into()]
    );
    // A token whose secret expiry is cleared leaves the list.
    let mut cleared = s.get_token(made[2].id).await.unwrap();
    cleared.client_secret_expires_at = None;
    s.update_token(&cleared, now).await.unwrap();
    assert_eq!(
        page(secret, ExpiryBound::From(two + day), 10).await,
        ["cs-5"]
    );
}

async fn channels_crud(ctx: Ctx) {
    let s = &ctx.store;
    let now = ctx.clock.now();
    let mut c = ChannelRecord {
        id: "ch1".into(),
        app_id: None,
        kind: "webhook".into(),
        name: "ops".into(),
        config: serde_json::json!({"url": "http://127.0.0.1:9/hook", "events": []}),
        secret: Some(Sealed(vec![1, 2])),
        enabled: true,
        created_at: now,
        updated_at: now,
        version: 1,
    };
    s.create_channel(&c).await.unwrap();
    assert_eq!(s.get_channel("ch1").await.unwrap(), c);
    let stale = c.clone();
    c.enabled = false;
    c.name = "ops-2".into();
    let stored = s.update_channel(&c).await.unwrap();
    c.version = 2;
    assert_eq!(stored, c);
    assert_eq!(s.list_channels().await.unwrap(), vec![c.clone()]);
    // Issue 15: a write over a version someone else has changed since is refused, unwritten.
    assert!(matches!(
        s.update_channel(&stale).await,
        Err(StoreError::VersionMismatch(_))
    ));
    assert_eq!(s.get_channel("ch1").await.unwrap(), c);
    s.delete_channel("ch1").await.unwrap();
    assert!(matches!(
        s.get_channel("ch1").await,
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        s.delete_channel("ch1").await,
        Err(StoreError::NotFound(_))
    ));
}

fn job(ctx: &Ctx, id: &str, dedupe: Option<&str>) -> JobRecord {
    JobRecord {
        id: id.into(),
        kind: "deliver".into(),
        dedupe_key: dedupe.map(Into::into),
        payload: serde_json::json!({"n": id}),
        run_at: ctx.clock.now(),
        attempts: 0,
        lease_owner: None,
        lease_expires_at: None,
        last_error: None,
        done_at: None,
        created_at: ctx.clock.now(),
    }
}

async fn jobs_are_claimed_once_and_survive_a_dead_holder(ctx: Ctx) {
    let s = &ctx.store;
    for i in 0..10 {
        assert!(
            s.enqueue_job(&job(&ctx, &format!("j{i}"), None))
                .await
                .unwrap()
        );
    }
    assert!(
        s.enqueue_job(&job(&ctx, "d1", Some("refresh:t1")))
            .await
            .unwrap()
    );
    assert!(
        !s.enqueue_job(&job(&ctx, "d2", Some("refresh:t1")))
            .await
            .unwrap(),
        "deduplicated"
    );
    // Five workers race: every job is claimed exactly once.
    let mut tasks = Vec::new();
    for w in 0..5 {
        let st = ctx.store.clone();
        let now = ctx.clock.now();
        tasks.push(tokio::spawn(async move {
            st.claim_jobs(
                "deliver",
                &format!("w{w}"),
                now,
                chrono::Duration::seconds(30),
                100,
            )
            .await
            .unwrap()
        }));
    }
    let mut ids = Vec::new();
    for t in tasks {
        ids.extend(t.await.unwrap().into_iter().map(|j| j.id));
    }
    ids.sort();
    assert_eq!(ids.len(), 11, "{ids:?}");
    ids.dedup();
    assert_eq!(ids.len(), 11);
    // Nothing left to claim while the leases hold.
    assert!(
        s.claim_jobs(
            "deliver",
            "w9",
            ctx.clock.now(),
            chrono::Duration::seconds(30),
            100
        )
        .await
        .unwrap()
        .is_empty()
    );
    // A holder "killed -9": its lease runs out and another instance claims its jobs again.
    ctx.clock.advance(chrono::Duration::seconds(31));
    let again = s
        .claim_jobs(
            "deliver",
            "w9",
            ctx.clock.now(),
            chrono::Duration::seconds(30),
            100,
        )
        .await
        .unwrap();
    assert_eq!(again.len(), 11);
    assert!(
        again
            .iter()
            .all(|j| j.attempts == 2 && j.lease_owner.as_deref() == Some("w9"))
    );
    // Only the holder can finish a job.
    assert!(!s.complete_job("j0", "w0", ctx.clock.now()).await.unwrap());
    assert!(s.complete_job("j0", "w9", ctx.clock.now()).await.unwrap());
    assert!(
        s.retry_job(
            "j1",
            "w9",
            ctx.clock.now() + chrono::Duration::minutes(5),
            "HTTP 503"
        )
        .await
        .unwrap()
    );
    assert!(
        s.abandon_job("j2", "w9", ctx.clock.now(), "gave up")
            .await
            .unwrap()
    );
    // The finished dedupe key frees up.
    assert!(s.complete_job("d1", "w9", ctx.clock.now()).await.unwrap());
    assert!(
        s.enqueue_job(&job(&ctx, "d3", Some("refresh:t1")))
            .await
            .unwrap()
    );
    ctx.clock.advance(chrono::Duration::seconds(31));
    let due: Vec<String> = s
        .claim_jobs(
            "deliver",
            "w1",
            ctx.clock.now(),
            chrono::Duration::seconds(30),
            100,
        )
        .await
        .unwrap()
        .into_iter()
        .map(|j| j.id)
        .collect();
    assert!(
        !due.contains(&"j0".to_string())
            && !due.contains(&"j2".to_string())
            && !due.contains(&"j1".to_string()),
        "{due:?}"
    );
    assert!(due.contains(&"d3".to_string()));
    let open = s.list_jobs("deliver", false, 100).await.unwrap();
    let j1 = open.iter().find(|j| j.id == "j1").unwrap();
    assert_eq!(j1.last_error.as_deref(), Some("HTTP 503"));
    let all = s.list_jobs("deliver", true, 100).await.unwrap();
    assert_eq!(
        all.iter()
            .find(|j| j.id == "j2")
            .unwrap()
            .last_error
            .as_deref(),
        Some("gave up")
    );
}

async fn deliveries_are_logged(ctx: Ctx) {
    let s = &ctx.store;
    for (i, outcome) in ["retry", "delivered"].iter().enumerate() {
        ctx.clock.advance(chrono::Duration::seconds(1));
        s.append_delivery(&DeliveryRecord {
            id: format!("d{i}"),
            job_id: "j".into(),
            channel_id: "ch".into(),
            event_id: "evt".into(),
            event_kind: "token.expiring".into(),
            attempt: i as i64 + 1,
            at: ctx.clock.now(),
            outcome: (*outcome).into(),
            status_code: Some(if i == 0 { 503 } else { 200 }),
            error: None,
        })
        .await
        .unwrap();
    }
    let log = s.list_deliveries(Some("ch"), 10).await.unwrap();
    assert_eq!(
        log.iter().map(|d| d.outcome.as_str()).collect::<Vec<_>>(),
        ["delivered", "retry"]
    );
    assert_eq!(s.list_deliveries(None, 10).await.unwrap().len(), 2);
    assert!(
        s.list_deliveries(Some("other"), 10)
            .await
            .unwrap()
            .is_empty()
    );
}

async fn admins_and_sessions(ctx: Ctx) {
    let s = &ctx.store;
    let now = ctx.clock.now();
    let admin = |id: &str, name: &str| AdminRecord {
        id: id.into(),
        username: name.into(),
        password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".into(),
        created_at: now,
        last_login_at: None,
    };
    assert_eq!(s.count_admins().await.unwrap(), 0);
    // The one-time setup adds the first admin once, even when raced.
    let mut tasks = Vec::new();
    for i in 0..4 {
        let st = s.clone();
        let a = admin(&format!("a{i}"), &format!("first{i}"));
        tasks.push(tokio::spawn(async move { st.create_first_admin(&a).await }));
    }
    let mut won = 0;
    for t in tasks {
        if t.await.unwrap().unwrap() {
            won += 1;
        }
    }
    assert_eq!(won, 1);
    assert_eq!(s.count_admins().await.unwrap(), 1);
    assert!(!s.create_first_admin(&admin("late", "late")).await.unwrap());

    s.create_admin(&admin("b", "bob")).await.unwrap();
    assert!(matches!(
        s.create_admin(&admin("c", "bob")).await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(s.count_admins().await.unwrap(), 2);
    let bob = s.get_admin_by_username("bob").await.unwrap();
    assert_eq!(bob, admin("b", "bob"));
    assert!(!format!("{bob:?}").contains("argon2id"));
    let later = now + chrono::Duration::minutes(5);
    s.record_admin_login("b", later).await.unwrap();
    assert_eq!(s.get_admin("b").await.unwrap().last_login_at, Some(later));
    assert!(matches!(
        s.get_admin_by_username("nobody").await,
        Err(StoreError::NotFound(_))
    ));

    let session = SessionRecord {
        id: "f".repeat(64),
        admin_id: "b".into(),
        csrf_token: "csrf-value".into(),
        created_at: now,
        expires_at: now + chrono::Duration::hours(12),
        last_seen_at: now,
    };
    s.create_session(&session).await.unwrap();
    assert_eq!(s.get_session(&session.id).await.unwrap(), session);
    s.touch_session(&session.id, later).await.unwrap();
    assert_eq!(
        s.get_session(&session.id).await.unwrap().last_seen_at,
        later
    );
    let old = SessionRecord {
        id: "e".repeat(64),
        expires_at: now + chrono::Duration::hours(1),
        ..session.clone()
    };
    s.create_session(&old).await.unwrap();
    assert_eq!(
        s.purge_sessions(now + chrono::Duration::hours(2))
            .await
            .unwrap(),
        1
    );
    assert!(matches!(
        s.get_session(&old.id).await,
        Err(StoreError::NotFound(_))
    ));
    assert!(s.delete_session(&session.id).await.unwrap());
    assert!(!s.delete_session(&session.id).await.unwrap());

    s.set_meta("setup", "one").await.unwrap();
    s.set_meta("setup", "two").await.unwrap();
    assert_eq!(s.get_meta("setup").await.unwrap().as_deref(), Some("two"));
    assert!(s.delete_meta("setup").await.unwrap());
    assert_eq!(s.get_meta("setup").await.unwrap(), None);
}

async fn list_apps_returns_every_apps_bindings(ctx: Ctx) {
    // Bindings are read for all apps at once: each app must get exactly its own, sorted.
    let s = &ctx.store;
    let apps = [
        app(&ctx, "gamma", &["graph"]),
        app(&ctx, "alpha", &["snowflake-sales", "graph"]),
        app(&ctx, "delta", &["y", "x-1", "x"]),
        app(&ctx, "beta", &[]),
    ];
    for a in &apps {
        s.create_app(a, &key_for(&ctx, Some(a.id))).await.unwrap();
    }
    fn names(tokens: &[TokenName]) -> Vec<&str> {
        tokens.iter().map(|t| t.as_str()).collect()
    }
    let listed = s.list_apps().await.unwrap();
    assert_eq!(
        listed
            .iter()
            .map(|a| (a.name.as_str(), names(&a.tokens)))
            .collect::<Vec<_>>(),
        [
            ("alpha", vec!["graph", "snowflake-sales"]),
            ("beta", vec![]),
            ("delta", vec!["x", "x-1", "y"]),
            ("gamma", vec!["graph"]),
        ]
    );
    for a in &listed {
        assert_eq!(s.get_app(a.id).await.unwrap(), *a);
        assert_eq!(s.get_app_by_name(&a.name).await.unwrap(), *a);
    }
    // Issue 10: the read path asks about one binding, not the whole list.
    for a in &listed {
        for name in ["graph", "snowflake-sales", "x", "x-1", "y", "nope"] {
            let name = TokenName::parse(name).unwrap();
            let r = s.app_reading(a.id, &name).await.unwrap();
            assert_eq!(
                (r.id, &r.name, r.state, &r.stop_reason),
                (a.id, &a.name, a.state, &a.stop_reason)
            );
            assert_eq!(r.uses, a.tokens.contains(&name), "{} {name}", a.name);
        }
    }
    assert!(matches!(
        s.app_reading(
            tokenwarden_domain::AppId(uuid::Uuid::new_v4()),
            &TokenName::parse("graph").unwrap()
        )
        .await,
        Err(StoreError::NotFound("app"))
    ));
    // The apps using a token come with all their bindings, not only that one.
    let users = s
        .apps_using_token(&TokenName::parse("graph").unwrap())
        .await
        .unwrap();
    assert_eq!(
        users
            .iter()
            .map(|a| (a.name.as_str(), names(&a.tokens)))
            .collect::<Vec<_>>(),
        [
            ("alpha", vec!["graph", "snowflake-sales"]),
            ("gamma", vec!["graph"]),
        ]
    );
}

async fn a_closed_store_is_unavailable(ctx: Ctx) {
    // The HTTP layer answers 503 for `Unavailable`; the driver's error type stays inside.
    let s = &ctx.store;
    s.ping().await.unwrap();
    s.close().await;
    let err = s.ping().await.unwrap_err();
    assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
    let err = s.list_apps().await.unwrap_err();
    assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
}

/// The migrations written after the former migrator was replaced (it knew 1-4).
const NEWER_THAN_OLD_MIGRATOR: &[i64] = &[5, 6, 7, 8, 9, 10, 11, 12, 13];

fn all_versions() -> Vec<i64> {
    [1, 2, 3, 4]
        .iter()
        .chain(NEWER_THAN_OLD_MIGRATOR)
        .copied()
        .collect()
}

/// The former migrator's files, as it applied them.
fn old_migrations(backend: Backend) -> [(i64, &'static str, &'static str); 4] {
    match backend {
        Backend::Sqlite => [
            (
                1,
                "initial",
                include_str!("../migrations/sqlite/0001_initial.sql"),
            ),
            (
                2,
                "oauth_states",
                include_str!("../migrations/sqlite/0002_oauth_states.sql"),
            ),
            (
                3,
                "health_and_deliveries",
                include_str!("../migrations/sqlite/0003_health_and_deliveries.sql"),
            ),
            (
                4,
                "admins_sessions",
                include_str!("../migrations/sqlite/0004_admins_sessions.sql"),
            ),
        ],
        Backend::Postgres => [
            (
                1,
                "initial",
                include_str!("../migrations/postgres/0001_initial.sql"),
            ),
            (
                2,
                "oauth_states",
                include_str!("../migrations/postgres/0002_oauth_states.sql"),
            ),
            (
                3,
                "health_and_deliveries",
                include_str!("../migrations/postgres/0003_health_and_deliveries.sql"),
            ),
            (
                4,
                "admins_sessions",
                include_str!("../migrations/postgres/0004_admins_sessions.sql"),
            ),
        ],
    }
}

/// A raw connection pool to `db`, beside the store (`mode=rwc` creates a SQLite file).
async fn raw_pool(db: &Fresh) -> sqlx::AnyPool {
    sqlx::any::install_default_drivers();
    let url = match db.backend {
        Backend::Sqlite => format!("{}?mode=rwc", db.url),
        Backend::Postgres => db.url.clone(),
    };
    sqlx::AnyPool::connect(&url).await.unwrap()
}

/// Makes `db` what the former migrator (table `schema_migrations`) left after applying
/// migrations 1..=`up_to`.
async fn old_migrator_database(db: &Fresh, up_to: i64) {
    let pool = raw_pool(db).await;
    sqlx::raw_sql(
        "CREATE TABLE IF NOT EXISTS schema_migrations \
         (version BIGINT PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL)",
    )
    .execute(&pool)
    .await
    .unwrap();
    for (version, name, sql) in old_migrations(db.backend) {
        if version > up_to {
            break;
        }
        let mut tx = pool.begin().await.unwrap();
        sqlx::raw_sql(sql).execute(&mut *tx).await.unwrap();
        sqlx::query(
            "INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)",
        )
        .bind(version)
        .bind(name)
        .bind(1_700_000_000_000i64)
        .execute(&mut *tx)
        .await
        .unwrap();
        tx.commit().await.unwrap();
    }
    pool.close().await;
}

async fn recorded_versions(db: &Fresh) -> Vec<i64> {
    let pool = raw_pool(db).await;
    let versions = sqlx::query_scalar("SELECT version FROM _sqlx_migrations ORDER BY version")
        .fetch_all(&pool)
        .await
        .unwrap();
    pool.close().await;
    versions
}

async fn has_old_table(db: &Fresh) -> bool {
    let pool = raw_pool(db).await;
    let found = sqlx::query("SELECT version FROM schema_migrations")
        .fetch_all(&pool)
        .await
        .is_ok();
    pool.close().await;
    found
}

async fn old_migrator_databases_are_adopted(db: Fresh) {
    old_migrator_database(&db, 4).await;
    // Data written before the upgrade.
    let old = SqlStore::connect(&db.url).await.unwrap();
    let a = AppRecord {
        id: AppId::new_v7(db.clock.now()),
        name: AppName::parse("kept").unwrap(),
        state: AppState::Running,
        stop_reason: None,
        tokens: vec![TokenName::parse("sf").unwrap()],
        version: 1,
        created_at: db.clock.now(),
        updated_at: db.clock.now(),
    };
    let key = ApiKeyRecord {
        id: ApiKeyId(uuid::Uuid::new_v4()),
        kind: ApiKeyKind::App,
        app_id: Some(a.id),
        label: KeyLabel::parse("first key").unwrap(),
        secret_hash: vec![7; 32],
        created_at: db.clock.now(),
        revoked_at: None,
    };
    old.create_app(&a, &key).await.unwrap();
    old.close().await;

    let store = SqlStore::connect(&db.url).await.unwrap();
    assert_eq!(
        store.migrate(db.clock.now()).await.unwrap(),
        NEWER_THAN_OLD_MIGRATOR.len(),
        "nothing re-applied; only the migrations written since"
    );
    assert_eq!(recorded_versions(&db).await, all_versions());
    assert!(
        !has_old_table(&db).await,
        "schema_migrations is dropped once adopted"
    );
    assert_eq!(store.get_app(a.id).await.unwrap(), a);
    store.close().await;
    // Opened again: the recorded checksums match the embedded files.
    let again = SqlStore::open(&db.url, db.clock.now()).await.unwrap();
    assert_eq!(again.migrate(db.clock.now()).await.unwrap(), 0);
    assert_eq!(again.count_admins().await.unwrap(), 0);
}

async fn an_older_old_migrator_database_is_adopted_and_completed(db: Fresh) {
    old_migrator_database(&db, 2).await;
    let store = SqlStore::connect(&db.url).await.unwrap();
    assert_eq!(
        store.migrate(db.clock.now()).await.unwrap(),
        2 + NEWER_THAN_OLD_MIGRATOR.len(),
        "3, 4 and the later ones applied"
    );
    assert_eq!(recorded_versions(&db).await, all_versions());
    assert_eq!(store.count_admins().await.unwrap(), 0);
    assert_eq!(store.list_token_health().await.unwrap(), vec![]);
}

async fn an_old_migrator_database_newer_than_this_binary_is_refused(db: Fresh) {
    old_migrator_database(&db, 4).await;
    let pool = raw_pool(&db).await;
    sqlx::query(
        "INSERT INTO schema_migrations (version, name, applied_at) VALUES (999, 'future', 0)",
    )
    .execute(&pool)
    .await
    .unwrap();
    pool.close().await;
    let store = SqlStore::connect(&db.url).await.unwrap();
    let err = store.migrate(db.clock.now()).await.unwrap_err();
    assert!(
        matches!(&err, StoreError::Migration { version: 999, message } if message.contains("newer")),
        "{err}"
    );
    // Nothing was adopted: the old record is left as it was.
    assert!(has_old_table(&db).await);
    assert_eq!(recorded_versions(&db).await, Vec::<i64>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_instances_starting_at_once_apply_each_migration_once() {
    // sqlx's migration lock (an advisory lock) serialises them. SQLite has one process.
    let db = fresh_postgres();
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let url = db.url.clone();
        let now = db.clock.now();
        tasks.push(tokio::spawn(async move {
            SqlStore::connect(&url).await?.migrate(now).await
        }));
    }
    let mut applied = 0;
    for t in tasks {
        applied += t.await.unwrap().unwrap();
    }
    assert_eq!(applied, all_versions().len());
    assert_eq!(recorded_versions(&db).await, all_versions());
}

// --- issue 10: keyset pagination -------------------------------------------------------------

fn name_key(name: &str, id: impl ToString) -> NameKey {
    NameKey {
        name: name.to_owned(),
        id: id.to_string(),
    }
}

fn time_key(at: Timestamp, id: impl ToString) -> TimeKey {
    TimeKey {
        at: at.timestamp_millis(),
        id: id.to_string(),
    }
}

/// Every page of a tokens listing, by `limit`, with `between` run after each page.
async fn all_token_pages(
    s: &SqlStore,
    filter: &TokenFilter,
    limit: i64,
    mut between: impl AsyncFnMut(usize),
) -> Vec<Vec<TokenRecord>> {
    let mut pages = Vec::new();
    let mut after = None;
    loop {
        let page = s
            .page_tokens(filter, &PageRequest { after, limit })
            .await
            .unwrap();
        assert!(page.len() as i64 <= limit);
        let Some(last) = page.last() else { break };
        after = Some(name_key(last.name.as_str(), last.id));
        pages.push(page);
        between(pages.len()).await;
    }
    pages
}

async fn issue10_token_pages_cover_every_row_once_and_stay_stable_under_inserts(ctx: Ctx) {
    let s = &ctx.store;
    let a = app(&ctx, "pager", &[]);
    s.create_app(&a, &key_for(&ctx, Some(a.id))).await.unwrap();
    let mut expected = Vec::new();
    // Names that repeat across scopes (one global, one of the app's): the id breaks the tie.
    for i in 0..23 {
        let t = token(&ctx, &format!("tok-{i:02}"), None);
        s.create_token(&t).await.unwrap();
        expected.push(t.id);
        if i % 5 == 0 {
            let t = token(&ctx, &format!("tok-{i:02}"), Some(a.id));
            s.create_token(&t).await.unwrap();
            expected.push(t.id);
        }
    }
    // Inserted between pages: one sorting before the pages already read (not seen), one after
    // (seen once); neither shifts or repeats the rest, as an offset would.
    let pages = all_token_pages(s, &TokenFilter::default(), 4, async |n| {
        if n == 2 {
            s.create_token(&token(&ctx, "aaa-before", None))
                .await
                .unwrap();
            let late = token(&ctx, "zzz-after", None);
            s.create_token(&late).await.unwrap();
        }
    })
    .await;
    let seen: Vec<_> = pages.iter().flatten().collect();
    let names: Vec<_> = seen
        .iter()
        .map(|t| (t.name.as_str(), t.id.to_string()))
        .collect();
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(names, sorted, "pages come in (name, id) order");
    let ids: std::collections::BTreeSet<_> = seen.iter().map(|t| t.id).collect();
    assert_eq!(ids.len(), seen.len(), "no row twice");
    for id in &expected {
        assert!(ids.contains(id), "every row present at the start is seen");
    }
    assert!(seen.iter().any(|t| t.name.as_str() == "zzz-after"));
    assert!(!seen.iter().any(|t| t.name.as_str() == "aaa-before"));
    assert_eq!(seen.len(), expected.len() + 1);
    assert!(pages[..pages.len() - 1].iter().all(|p| p.len() == 4));
    // A limit of 0 answers nothing; a page after the last row is empty.
    let none = s
        .page_tokens(
            &TokenFilter::default(),
            &PageRequest {
                after: None,
                limit: 0,
            },
        )
        .await
        .unwrap();
    assert!(none.is_empty());
    let end = s
        .page_tokens(
            &TokenFilter::default(),
            &PageRequest {
                after: Some(name_key("zzz-after", "ffffffff")),
                limit: 10,
            },
        )
        .await
        .unwrap();
    assert!(end.is_empty());
}

async fn issue10_token_pages_filter_by_name_provider_and_status(ctx: Ctx) {
    let s = &ctx.store;
    for (name, provider, status) in [
        ("sales-eu", "snowflake", TokenStatus::Healthy),
        ("sales_us", "snowflake", TokenStatus::NotAuthorized),
        ("salesxus", "github", TokenStatus::Healthy),
        ("ops", "github", TokenStatus::Expired),
    ] {
        let mut t = token(&ctx, name, None);
        t.provider = ProviderId::parse(provider).unwrap();
        t.status = status;
        s.create_token(&t).await.unwrap();
    }
    let names = async |f: TokenFilter| -> Vec<String> {
        all_token_pages(s, &f, 1, async |_| {})
            .await
            .into_iter()
            .flatten()
            .map(|t| t.name.to_string())
            .collect()
    };
    let by_name = |n: &str| TokenFilter {
        name_contains: Some(n.into()),
        ..Default::default()
    };
    assert_eq!(
        names(by_name("SALES")).await,
        ["sales-eu", "sales_us", "salesxus"]
    );
    assert_eq!(names(by_name("les-")).await, ["sales-eu"]);
    // `_` and `%` are text, not wildcards.
    assert_eq!(names(by_name("s_u")).await, ["sales_us"]);
    assert!(names(by_name("%")).await.is_empty());
    assert_eq!(
        names(TokenFilter {
            provider: Some(ProviderId::parse("github").unwrap()),
            ..Default::default()
        })
        .await,
        ["ops", "salesxus"]
    );
    assert_eq!(
        names(TokenFilter {
            name_contains: Some("sales".into()),
            status: Some(TokenStatus::Healthy),
            ..Default::default()
        })
        .await,
        ["sales-eu", "salesxus"]
    );
    let a = app(&ctx, "owner", &[]);
    s.create_app(&a, &key_for(&ctx, Some(a.id))).await.unwrap();
    s.create_token(&token(&ctx, "sales-app", Some(a.id)))
        .await
        .unwrap();
    assert_eq!(
        names(by_name("sales")).await,
        ["sales-app", "sales-eu", "sales_us", "salesxus"]
    );
    assert_eq!(
        names(TokenFilter {
            global_only: true,
            ..by_name("sales")
        })
        .await,
        ["sales-eu", "sales_us", "salesxus"]
    );
}

async fn issue10_app_key_channel_delivery_and_audit_pages_cover_every_row_once(ctx: Ctx) {
    let s = &ctx.store;
    // Apps, with bindings: the limit counts apps, not joined rows.
    let mut app_ids = Vec::new();
    for i in 0..7 {
        let a = app(&ctx, &format!("app-{i}"), &["one", "two", "three"]);
        s.create_app(&a, &key_for(&ctx, Some(a.id))).await.unwrap();
        app_ids.push(a.id);
    }
    let mut seen = Vec::new();
    let mut after = None;
    loop {
        let page = s.page_apps(&PageRequest { after, limit: 3 }).await.unwrap();
        assert!(page.len() <= 3);
        assert!(page.iter().all(|a| a.tokens.len() == 3), "bindings kept");
        let Some(last) = page.last() else { break };
        after = Some(name_key(last.name.as_str(), last.id));
        seen.extend(page.iter().map(|a| a.id));
    }
    assert_eq!(seen, app_ids);

    // API keys of one app, oldest first, several in the same millisecond.
    let a = app_ids[0];
    let mut keys = s.list_api_keys(Some(a)).await.unwrap();
    for _ in 0..4 {
        let k = key_for(&ctx, Some(a));
        s.create_api_key(&k).await.unwrap();
        keys.push(k);
    }
    keys.sort_by_key(|k| (k.created_at, k.id.0.to_string()));
    let mut seen = Vec::new();
    let mut after = None;
    loop {
        let page = s
            .page_api_keys(a, &PageRequest { after, limit: 2 })
            .await
            .unwrap();
        let Some(last) = page.last() else { break };
        after = Some(time_key(last.created_at, last.id.0));
        seen.extend(page.into_iter().map(|k| k.id));
    }
    assert_eq!(seen, keys.iter().map(|k| k.id).collect::<Vec<_>>());

    // Channels, oldest first.
    let mut channel_ids = Vec::new();
    for i in 0..5 {
        if i % 2 == 0 {
            ctx.clock.advance(chrono::Duration::seconds(1));
        }
        let now = ctx.clock.now();
        let c = ChannelRecord {
            id: format!("ch{i}"),
            app_id: None,
            kind: "webhook".into(),
            name: format!("c{i}"),
            config: serde_json::json!({"url": "http://127.0.0.1:9/hook", "events": []}),
            secret: None,
            enabled: true,
            created_at: now,
            updated_at: now,
            version: 1,
        };
        s.create_channel(&c).await.unwrap();
        channel_ids.push(c.id);
    }
    let mut seen = Vec::new();
    let mut after = None;
    loop {
        let page = s
            .page_channels(&PageRequest { after, limit: 2 })
            .await
            .unwrap();
        let Some(last) = page.last() else { break };
        after = Some(time_key(last.created_at, &last.id));
        seen.extend(page.into_iter().map(|c| c.id));
    }
    assert_eq!(seen, channel_ids);

    // Deliveries of one channel and the audit log, newest first; a row appended between pages
    // (newer than all) is not seen and shifts nothing.
    for i in 0..9 {
        if i % 3 == 0 {
            ctx.clock.advance(chrono::Duration::seconds(1));
        }
        for channel in ["ch0", "ch1"] {
            s.append_delivery(&DeliveryRecord {
                id: format!("{channel}-d{i}"),
                job_id: "j".into(),
                channel_id: channel.into(),
                event_id: format!("evt{i}"),
                event_kind: "token.expiring".into(),
                attempt: 1,
                at: ctx.clock.now(),
                outcome: "delivered".into(),
                status_code: Some(200),
                error: None,
            })
            .await
            .unwrap();
        }
        s.append_audit(&AuditEvent {
            id: format!("a{i}"),
            at: ctx.clock.now(),
            actor: if i % 2 == 0 { "system" } else { "cli" }.into(),
            action: "token.refresh".into(),
            object_type: "token".into(),
            object_id: None,
            object_name: None,
            outcome: "ok".into(),
            detail: serde_json::json!({}),
        })
        .await
        .unwrap();
    }
    let mut seen = Vec::new();
    let mut after = None;
    loop {
        let page = s
            .page_deliveries("ch0", &PageRequest { after, limit: 4 })
            .await
            .unwrap();
        let Some(last) = page.last() else { break };
        after = Some(time_key(last.at, &last.id));
        seen.extend(page.into_iter().map(|d| d.id));
        ctx.clock.advance(chrono::Duration::seconds(1));
        s.append_delivery(&DeliveryRecord {
            id: format!("ch0-late{}", seen.len()),
            job_id: "j".into(),
            channel_id: "ch0".into(),
            event_id: "late".into(),
            event_kind: "token.expiring".into(),
            attempt: 1,
            at: ctx.clock.now(),
            outcome: "delivered".into(),
            status_code: Some(200),
            error: None,
        })
        .await
        .unwrap();
    }
    let mut want: Vec<_> = (0..9).map(|i| format!("ch0-d{i}")).collect();
    want.sort_by(|x, y| {
        let at = |s: &str| s.trim_start_matches("ch0-d").parse::<i32>().unwrap() / 3;
        at(y).cmp(&at(x)).then(y.cmp(x))
    });
    assert_eq!(seen, want);

    let audit_ids = async |filter: AuditFilter| {
        let mut seen = Vec::new();
        let mut after = None;
        loop {
            let page = s
                .page_audit(&filter, &PageRequest { after, limit: 2 })
                .await
                .unwrap();
            let Some(last) = page.last() else { break };
            after = Some(time_key(last.at, &last.id));
            seen.extend(page.into_iter().map(|e| e.id));
        }
        seen
    };
    let all = audit_ids(AuditFilter::default()).await;
    let mut want = all.clone();
    want.sort_by(|x, y| {
        let n = |s: &str| s[1..].parse::<i32>().unwrap();
        (n(y) / 3).cmp(&(n(x) / 3)).then(y.cmp(x))
    });
    assert_eq!(all.len(), 9);
    assert_eq!(all, want);
    let by_cli = audit_ids(AuditFilter {
        actor: Some("cli".into()),
        ..Default::default()
    })
    .await;
    assert_eq!(by_cli, ["a7", "a5", "a3", "a1"]);
}

async fn issue11_admins_page_change_password_and_are_never_all_removed(ctx: Ctx) {
    let s = &ctx.store;
    let now = ctx.clock.now();
    let admin = |id: &str, name: &str| AdminRecord {
        id: id.into(),
        username: name.into(),
        password_hash: format!("hash-of-{name}"),
        created_at: now,
        last_login_at: None,
    };
    for (id, name) in [
        ("i3", "carol"),
        ("i1", "alice"),
        ("i2", "bob"),
        ("i4", "dave"),
    ] {
        s.create_admin(&admin(id, name)).await.unwrap();
    }
    // Pages by username, each row once.
    let mut seen = Vec::new();
    let mut after = None;
    loop {
        let page = s
            .page_admins(&PageRequest {
                after: after.clone(),
                limit: 3,
            })
            .await
            .unwrap();
        let Some(last) = page.last() else { break };
        after = Some(NameKey {
            name: last.username.clone(),
            id: last.id.clone(),
        });
        seen.extend(page.iter().map(|a| a.username.clone()));
    }
    assert_eq!(seen, ["alice", "bob", "carol", "dave"]);

    // A new password ends every session of that admin but the one kept.
    let session = |id: char, admin: &str| SessionRecord {
        id: id.to_string().repeat(64),
        admin_id: admin.into(),
        csrf_token: "csrf".into(),
        created_at: now,
        expires_at: now + chrono::Duration::hours(12),
        last_seen_at: now,
    };
    for (c, a) in [('a', "i1"), ('b', "i1"), ('c', "i2")] {
        s.create_session(&session(c, a)).await.unwrap();
    }
    s.set_admin_password("i1", "new-hash", Some(&"a".repeat(64)))
        .await
        .unwrap();
    assert_eq!(s.get_admin("i1").await.unwrap().password_hash, "new-hash");
    assert!(s.get_session(&"a".repeat(64)).await.is_ok());
    assert!(s.get_session(&"b".repeat(64)).await.is_err());
    assert!(s.get_session(&"c".repeat(64)).await.is_ok(), "bob's stays");
    s.set_admin_password("i2", "other", None).await.unwrap();
    assert!(s.get_session(&"c".repeat(64)).await.is_err());
    assert!(matches!(
        s.set_admin_password("gone", "x", None).await,
        Err(StoreError::NotFound(_))
    ));

    // Removing: sessions go too; the last admin stays, even when every removal races.
    assert_eq!(s.delete_admin("i1").await.unwrap(), AdminRemoval::Removed);
    assert!(s.get_session(&"a".repeat(64)).await.is_err());
    assert!(matches!(
        s.delete_admin("i1").await,
        Err(StoreError::NotFound(_))
    ));
    let mut tasks = Vec::new();
    for id in ["i2", "i3", "i4"] {
        let st = s.clone();
        tasks.push(tokio::spawn(async move { st.delete_admin(id).await }));
    }
    let mut removed = 0;
    for t in tasks {
        match t.await.unwrap().unwrap() {
            AdminRemoval::Removed => removed += 1,
            AdminRemoval::LastAdmin => {}
        }
    }
    assert_eq!(removed, 2);
    assert_eq!(s.count_admins().await.unwrap(), 1);
    let last = s
        .page_admins(&PageRequest {
            after: None,
            limit: 10,
        })
        .await
        .unwrap();
    assert_eq!(
        s.delete_admin(&last[0].id).await.unwrap(),
        AdminRemoval::LastAdmin
    );
    assert_eq!(s.count_admins().await.unwrap(), 1);
}

async fn issue11_admin_token_pages_hold_only_admin_tokens(ctx: Ctx) {
    let s = &ctx.store;
    let a = app(&ctx, "keys-app", &[]);
    s.create_app(&a, &key_for(&ctx, Some(a.id))).await.unwrap();
    let mut admin_ids = Vec::new();
    for i in 0..5 {
        ctx.clock.advance(chrono::Duration::seconds(1));
        let k = key_for(&ctx, None);
        s.create_api_key(&k).await.unwrap();
        admin_ids.push(k.id);
        if i % 2 == 0 {
            s.create_api_key(&key_for(&ctx, Some(a.id))).await.unwrap();
        }
    }
    let mut seen = Vec::new();
    let mut after = None;
    loop {
        let page = s
            .page_admin_tokens(&PageRequest {
                after: after.clone(),
                limit: 2,
            })
            .await
            .unwrap();
        let Some(last) = page.last() else { break };
        after = Some(TimeKey {
            at: last.created_at.timestamp_millis(),
            id: last.id.to_string(),
        });
        assert!(page.iter().all(|k| k.kind == ApiKeyKind::Admin));
        seen.extend(page.iter().map(|k| k.id));
    }
    assert_eq!(seen, admin_ids, "oldest first, each once, no app key");
}
