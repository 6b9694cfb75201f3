//! Apps, the tokens they use (`app_tokens`), and API keys (app keys and admin tokens).
//!
//! An app is read with its bindings in one query: `apps LEFT JOIN app_tokens`, one row per
//! binding (or one row with no token for an app that uses none), folded back into records. So
//! listing apps is one query however many apps there are.

use super::{
    ms, name_after, opt_ms, opt_ts, parse, parse_id, parse_json, parse_opt_app_id, time_after, ts,
};
use crate::records::*;
use crate::{Result, StoreError};
use sqlx::{Any, AnyPool, Transaction};
use tokenwarden_domain::{ApiKeyId, AppId, AppName, AppState, KeyLabel, Timestamp, TokenName};

// --- apps -----------------------------------------------------------------------------------

/// The app's columns (prefixed `a.`) and its bindings' token name, for the queries below.
macro_rules! app_select {
    () => {
        "SELECT a.id, a.name, a.state, a.stop_reason, a.version, a.created_at, a.updated_at, \
         t.token_name FROM apps a LEFT JOIN app_tokens t ON t.app_id = a.id"
    };
}

#[derive(sqlx::FromRow)]
struct AppRow {
    id: String,
    name: String,
    state: String,
    stop_reason: Option<String>,
    version: i64,
    created_at: i64,
    updated_at: i64,
}

/// One app and one of its bindings (`None`: the app uses no token).
#[derive(sqlx::FromRow)]
struct AppBindingRow {
    #[sqlx(flatten)]
    app: AppRow,
    token_name: Option<String>,
}

/// The app without its bindings (`tokens` empty): they come from other rows.
impl TryFrom<AppRow> for AppRecord {
    type Error = StoreError;

    fn try_from(r: AppRow) -> Result<Self> {
        Ok(AppRecord {
            id: parse_id("apps.id", &r.id, AppId::parse)?,
            name: parse("apps.name", AppName::parse(&r.name))?,
            state: parse("apps.state", AppState::parse(&r.state))?,
            stop_reason: r
                .stop_reason
                .map(|j| parse_json("apps.stop_reason", &j))
                .transpose()?,
            tokens: Vec::new(),
            version: r.version,
            created_at: ts(r.created_at),
            updated_at: ts(r.updated_at),
        })
    }
}

/// Folds joined rows, ordered so that each app's rows are adjacent, into records with their
/// token names sorted (in Rust: the backends' collations need not agree).
fn fold_apps(rows: Vec<AppBindingRow>) -> Result<Vec<AppRecord>> {
    let mut apps: Vec<AppRecord> = Vec::new();
    let mut current_id: Option<String> = None;
    for row in rows {
        if current_id.as_deref() != Some(row.app.id.as_str()) {
            current_id = Some(row.app.id.clone());
            apps.push(row.app.try_into()?);
        }
        if let (Some(app), Some(name)) = (apps.last_mut(), row.token_name) {
            app.tokens
                .push(parse("app_tokens.token_name", TokenName::parse(&name))?);
        }
    }
    for app in &mut apps {
        app.tokens.sort();
    }
    Ok(apps)
}

fn stop_reason_json(app: &AppRecord) -> Option<String> {
    app.stop_reason
        .as_ref()
        .map(|r| serde_json::to_string(r).unwrap_or_default())
}

fn name_taken(app: &AppRecord) -> impl FnOnce(sqlx::Error) -> StoreError + '_ {
    move |e| match StoreError::from(e) {
        StoreError::Conflict(_) => {
            StoreError::Conflict(format!("an app named {} already exists", app.name))
        }
        other => other,
    }
}

pub(super) async fn create(
    pool: &AnyPool,
    app: &AppRecord,
    first_key: &ApiKeyRecord,
) -> Result<()> {
    let mut tx = pool.begin().await?;
    sqlx::query(
        "INSERT INTO apps (id, name, state, stop_reason, version, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(app.id.to_string())
    .bind(app.name.as_str())
    .bind(app.state.as_str())
    .bind(stop_reason_json(app))
    .bind(app.version)
    .bind(ms(app.created_at))
    .bind(ms(app.updated_at))
    .execute(&mut *tx)
    .await
    .map_err(name_taken(app))?;
    insert_bindings(&mut tx, app).await?;
    insert_key(&mut tx, first_key).await?;
    tx.commit().await?;
    Ok(())
}

pub(super) async fn get(pool: &AnyPool, id: AppId) -> Result<AppRecord> {
    let rows = sqlx::query_as::<_, AppBindingRow>(concat!(app_select!(), " WHERE a.id = $1"))
        .bind(id.to_string())
        .fetch_all(pool)
        .await?;
    fold_apps(rows)?.pop().ok_or(StoreError::NotFound("app"))
}

/// One row: the app, and its binding of `token` if it has one (the join on the binding's
/// primary key, `(app_id, token_name)`).
pub(super) async fn reading(pool: &AnyPool, id: AppId, token: &TokenName) -> Result<AppReading> {
    let row = sqlx::query_as::<_, AppBindingRow>(
        "SELECT a.id, a.name, a.state, a.stop_reason, a.version, a.created_at, a.updated_at, \
         t.token_name FROM apps a \
         LEFT JOIN app_tokens t ON t.app_id = a.id AND t.token_name = $2 WHERE a.id = $1",
    )
    .bind(id.to_string())
    .bind(token.as_str())
    .fetch_optional(pool)
    .await?
    .ok_or(StoreError::NotFound("app"))?;
    let uses = row.token_name.is_some();
    let app = AppRecord::try_from(row.app)?;
    Ok(AppReading {
        id: app.id,
        name: app.name,
        state: app.state,
        stop_reason: app.stop_reason,
        uses,
    })
}

pub(super) async fn get_by_name(pool: &AnyPool, name: &AppName) -> Result<AppRecord> {
    let rows = sqlx::query_as::<_, AppBindingRow>(concat!(app_select!(), " WHERE a.name = $1"))
        .bind(name.as_str())
        .fetch_all(pool)
        .await?;
    fold_apps(rows)?.pop().ok_or(StoreError::NotFound("app"))
}

pub(super) async fn list(pool: &AnyPool) -> Result<Vec<AppRecord>> {
    let rows = sqlx::query_as::<_, AppBindingRow>(concat!(app_select!(), " ORDER BY a.name, a.id"))
        .fetch_all(pool)
        .await?;
    fold_apps(rows)
}

/// Keyset page of apps by (name, id), each with all its bindings: the page's apps are chosen
/// in a subquery so the LIMIT counts apps, not bindings.
pub(super) async fn page(pool: &AnyPool, page: &PageRequest<NameKey>) -> Result<Vec<AppRecord>> {
    let (name, id, limit) = name_after(page);
    let rows = sqlx::query_as::<_, AppBindingRow>(concat!(
        app_select!(),
        " WHERE a.id IN (SELECT id FROM apps WHERE name > $1 OR (name = $1 AND id > $2) \
         ORDER BY name, id LIMIT $3) ORDER BY a.name, a.id"
    ))
    .bind(name)
    .bind(id)
    .bind(limit)
    .fetch_all(pool)
    .await?;
    fold_apps(rows)
}

/// Apps that use a token of this name, each with all its bindings.
pub(super) async fn using_token(pool: &AnyPool, name: &TokenName) -> Result<Vec<AppRecord>> {
    let rows = sqlx::query_as::<_, AppBindingRow>(concat!(
        app_select!(),
        " WHERE a.id IN (SELECT app_id FROM app_tokens WHERE token_name = $1) ORDER BY a.name, a.id"
    ))
    .bind(name.as_str())
    .fetch_all(pool)
    .await?;
    fold_apps(rows)
}

pub(super) async fn update(pool: &AnyPool, app: &AppRecord, now: Timestamp) -> Result<AppRecord> {
    let mut tx = pool.begin().await?;
    let done = sqlx::query(
        "UPDATE apps SET name = $1, state = $2, stop_reason = $3, version = $4, updated_at = $5 \
         WHERE id = $6 AND version = $7",
    )
    .bind(app.name.as_str())
    .bind(app.state.as_str())
    .bind(stop_reason_json(app))
    .bind(app.version + 1)
    .bind(ms(now))
    .bind(app.id.to_string())
    .bind(app.version)
    .execute(&mut *tx)
    .await
    .map_err(name_taken(app))?;
    if done.rows_affected() == 0 {
        tx.rollback().await?;
        get(pool, app.id).await?; // NotFound if it is gone
        return Err(StoreError::VersionMismatch("app"));
    }
    sqlx::query("DELETE FROM app_tokens WHERE app_id = $1")
        .bind(app.id.to_string())
        .execute(&mut *tx)
        .await?;
    insert_bindings(&mut tx, app).await?;
    tx.commit().await?;
    get(pool, app.id).await
}

/// Deletes the app; its app-level tokens, bindings, keys and channels go with it (ON DELETE
/// CASCADE).
pub(super) async fn delete(pool: &AnyPool, id: AppId) -> Result<()> {
    let done = sqlx::query("DELETE FROM apps WHERE id = $1")
        .bind(id.to_string())
        .execute(pool)
        .await?;
    if done.rows_affected() == 0 {
        return Err(StoreError::NotFound("app"));
    }
    Ok(())
}

/// Writes which tokens an app uses.
async fn insert_bindings(tx: &mut Transaction<'_, Any>, app: &AppRecord) -> Result<()> {
    for name in &app.tokens {
        sqlx::query("INSERT INTO app_tokens (app_id, token_name) VALUES ($1, $2)")
            .bind(app.id.to_string())
            .bind(name.as_str())
            .execute(&mut **tx)
            .await?;
    }
    Ok(())
}

// --- API keys -------------------------------------------------------------------------------

macro_rules! key_columns {
    () => {
        "id, kind, app_id, label, secret_hash, created_at, revoked_at"
    };
}

#[derive(sqlx::FromRow)]
struct ApiKeyRow {
    id: String,
    kind: String,
    app_id: Option<String>,
    label: String,
    secret_hash: Vec<u8>,
    created_at: i64,
    revoked_at: Option<i64>,
}

impl TryFrom<ApiKeyRow> for ApiKeyRecord {
    type Error = StoreError;

    fn try_from(r: ApiKeyRow) -> Result<Self> {
        let kind = match r.kind.as_str() {
            "app" => ApiKeyKind::App,
            "admin" => ApiKeyKind::Admin,
            other => return Err(super::corrupt("api_keys.kind", other)),
        };
        Ok(ApiKeyRecord {
            id: parse_id("api_keys.id", &r.id, ApiKeyId::parse)?,
            kind,
            app_id: parse_opt_app_id("api_keys.app_id", r.app_id)?,
            label: parse("api_keys.label", KeyLabel::parse(&r.label))?,
            secret_hash: r.secret_hash,
            created_at: ts(r.created_at),
            revoked_at: opt_ts(r.revoked_at),
        })
    }
}

async fn insert_key(tx: &mut Transaction<'_, Any>, key: &ApiKeyRecord) -> Result<()> {
    sqlx::query(concat!(
        "INSERT INTO api_keys (",
        key_columns!(),
        ") VALUES ($1, $2, $3, $4, $5, $6, $7)"
    ))
    .bind(key.id.to_string())
    .bind(key.kind.as_str())
    .bind(key.app_id.map(|a| a.to_string()))
    .bind(key.label.as_str())
    .bind(key.secret_hash.clone())
    .bind(ms(key.created_at))
    .bind(opt_ms(key.revoked_at))
    .execute(&mut **tx)
    .await?;
    Ok(())
}

pub(super) async fn create_api_key(pool: &AnyPool, key: &ApiKeyRecord) -> Result<()> {
    let mut tx = pool.begin().await?;
    insert_key(&mut tx, key).await?;
    tx.commit().await?;
    Ok(())
}

pub(super) async fn get_api_key(pool: &AnyPool, id: ApiKeyId) -> Result<ApiKeyRecord> {
    sqlx::query_as::<_, ApiKeyRow>(concat!(
        "SELECT ",
        key_columns!(),
        " FROM api_keys WHERE id = $1"
    ))
    .bind(id.to_string())
    .fetch_optional(pool)
    .await?
    .ok_or(StoreError::NotFound("API key"))?
    .try_into()
}

/// An app's keys, or with `None` the admin tokens.
pub(super) async fn list_api_keys(pool: &AnyPool, app: Option<AppId>) -> Result<Vec<ApiKeyRecord>> {
    let rows = match app {
        Some(a) => {
            sqlx::query_as::<_, ApiKeyRow>(concat!(
                "SELECT ",
                key_columns!(),
                " FROM api_keys WHERE app_id = $1 ORDER BY created_at, id"
            ))
            .bind(a.to_string())
            .fetch_all(pool)
            .await?
        }
        None => {
            sqlx::query_as::<_, ApiKeyRow>(concat!(
                "SELECT ",
                key_columns!(),
                " FROM api_keys WHERE kind = 'admin' ORDER BY created_at, id"
            ))
            .fetch_all(pool)
            .await?
        }
    };
    rows.into_iter().map(TryInto::try_into).collect()
}

/// Keyset page of an app's keys by (created_at, id).
pub(super) async fn page_api_keys(
    pool: &AnyPool,
    app: AppId,
    page: &PageRequest<TimeKey>,
) -> Result<Vec<ApiKeyRecord>> {
    let (at, id, limit) = time_after(page, false);
    sqlx::query_as::<_, ApiKeyRow>(concat!(
        "SELECT ",
        key_columns!(),
        " FROM api_keys WHERE app_id = $1 AND (created_at > $2 OR (created_at = $2 AND id > $3)) \
         ORDER BY created_at, id LIMIT $4"
    ))
    .bind(app.to_string())
    .bind(at)
    .bind(id)
    .bind(limit)
    .fetch_all(pool)
    .await?
    .into_iter()
    .map(TryInto::try_into)
    .collect()
}

/// Keyset page of the admin tokens by (created_at, id): an index range of
/// `api_keys_by_app_time` (admin tokens belong to no app).
pub(super) async fn page_admin_tokens(
    pool: &AnyPool,
    page: &PageRequest<TimeKey>,
) -> Result<Vec<ApiKeyRecord>> {
    let (at, id, limit) = time_after(page, false);
    sqlx::query_as::<_, ApiKeyRow>(concat!(
        "SELECT ",
        key_columns!(),
        " FROM api_keys WHERE app_id IS NULL AND kind = 'admin' \
         AND (created_at > $1 OR (created_at = $1 AND id > $2)) ORDER BY created_at, id LIMIT $3"
    ))
    .bind(at)
    .bind(id)
    .bind(limit)
    .fetch_all(pool)
    .await?
    .into_iter()
    .map(TryInto::try_into)
    .collect()
}

pub(super) async fn revoke_api_key(pool: &AnyPool, id: ApiKeyId, at: Timestamp) -> Result<()> {
    let done =
        sqlx::query("UPDATE api_keys SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL")
            .bind(ms(at))
            .bind(id.to_string())
            .execute(pool)
            .await?;
    if done.rows_affected() == 0 {
        get_api_key(pool, id).await?; // NotFound if it never existed; else already revoked
    }
    Ok(())
}
