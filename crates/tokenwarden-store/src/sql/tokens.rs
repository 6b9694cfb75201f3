//! Tokens, their authorization attempts (`oauth_states`), their refresh bookkeeping
//! (`token_health`) and the reminders sent about them (`reminders_sent`).

use super::{
    Backend, ms, name_after, opt_ms, opt_ts, parse, parse_id, parse_json, parse_opt_app_id, sealed,
    sealed_bytes, ts,
};
use crate::records::*;
use crate::{Result, StoreError};
use sqlx::AnyPool;
use tokenwarden_domain::{
    AppId, AppName, ClientAuthMethod, Expiring, Grant, ProviderId, Timestamp, TokenId, TokenName,
    TokenStatus,
};

// --- tokens ---------------------------------------------------------------------------------

macro_rules! token_columns {
    () => {
        "id, name, provider, app_id, settings, client_id, client_secret, client_secret_2, \
         access_token, refresh_token, token_type, scopes, access_expires_at, refresh_expires_at, \
         issued_at, status, status_reason, version, created_at, updated_at, grant_type, \
         client_auth, client_secret_expires_at"
    };
}

#[derive(sqlx::FromRow)]
struct TokenRow {
    id: String,
    name: String,
    provider: String,
    app_id: Option<String>,
    settings: String,
    client_id: Option<String>,
    client_secret: Option<Vec<u8>>,
    client_secret_2: Option<Vec<u8>>,
    access_token: Option<Vec<u8>>,
    refresh_token: Option<Vec<u8>>,
    token_type: Option<String>,
    scopes: Option<String>,
    access_expires_at: Option<i64>,
    refresh_expires_at: Option<i64>,
    issued_at: Option<i64>,
    status: String,
    status_reason: Option<String>,
    version: i64,
    created_at: i64,
    updated_at: i64,
    grant_type: String,
    client_auth: Option<String>,
    client_secret_expires_at: Option<i64>,
}

impl TryFrom<TokenRow> for TokenRecord {
    type Error = StoreError;

    fn try_from(r: TokenRow) -> Result<Self> {
        Ok(TokenRecord {
            id: parse_id("tokens.id", &r.id, TokenId::parse)?,
            name: parse("tokens.name", TokenName::parse(&r.name))?,
            provider: parse("tokens.provider", ProviderId::parse(&r.provider))?,
            grant: parse("tokens.grant_type", Grant::parse(&r.grant_type))?,
            app_id: parse_opt_app_id("tokens.app_id", r.app_id)?,
            settings: parse_json("tokens.settings", &r.settings)?,
            client_id: r.client_id,
            client_secret: sealed(r.client_secret),
            client_secret_2: sealed(r.client_secret_2),
            client_auth: r
                .client_auth
                .map(|a| parse("tokens.client_auth", ClientAuthMethod::parse(&a)))
                .transpose()?,
            client_secret_expires_at: opt_ts(r.client_secret_expires_at),
            material: TokenMaterial {
                access_token: sealed(r.access_token),
                refresh_token: sealed(r.refresh_token),
                token_type: r.token_type,
                scopes: r.scopes,
                access_expires_at: opt_ts(r.access_expires_at),
                refresh_expires_at: opt_ts(r.refresh_expires_at),
                issued_at: opt_ts(r.issued_at),
            },
            status: parse("tokens.status", TokenStatus::parse(&r.status))?,
            status_reason: r.status_reason,
            version: r.version,
            created_at: ts(r.created_at),
            updated_at: ts(r.updated_at),
        })
    }
}

fn settings_json(t: &TokenRecord) -> String {
    serde_json::to_string(&t.settings).unwrap_or_else(|_| "{}".into())
}

/// `tokens.scope_key`: '' for a global token, the owning app's id for an app-level one, so that
/// one UNIQUE (scope_key, name) makes names unique per scope on both backends.
fn scope_key(app: Option<AppId>) -> String {
    app.map(|a| a.to_string()).unwrap_or_default()
}

/// The conflict message for a token name taken in its scope.
fn name_taken(t: &TokenRecord) -> String {
    match t.app_id {
        None => format!("a global token named {} already exists", t.name),
        Some(_) => format!("this app already has a token named {}", t.name),
    }
}

pub(super) async fn create(pool: &AnyPool, t: &TokenRecord) -> Result<()> {
    sqlx::query(concat!(
        "INSERT INTO tokens (",
        token_columns!(),
        ", scope_key) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, \
         $15, $16, $17, $18, $19, $20, $21, $22, $23, $24)"
    ))
    .bind(t.id.to_string())
    .bind(t.name.as_str())
    .bind(t.provider.as_str())
    .bind(t.app_id.map(|a| a.to_string()))
    .bind(settings_json(t))
    .bind(t.client_id.clone())
    .bind(sealed_bytes(&t.client_secret))
    .bind(sealed_bytes(&t.client_secret_2))
    .bind(sealed_bytes(&t.material.access_token))
    .bind(sealed_bytes(&t.material.refresh_token))
    .bind(t.material.token_type.clone())
    .bind(t.material.scopes.clone())
    .bind(opt_ms(t.material.access_expires_at))
    .bind(opt_ms(t.material.refresh_expires_at))
    .bind(opt_ms(t.material.issued_at))
    .bind(t.status.as_str())
    .bind(t.status_reason.clone())
    .bind(t.version)
    .bind(ms(t.created_at))
    .bind(ms(t.updated_at))
    .bind(t.grant.as_str())
    .bind(t.client_auth.map(ClientAuthMethod::as_str))
    .bind(opt_ms(t.client_secret_expires_at))
    .bind(scope_key(t.app_id))
    .execute(pool)
    .await
    .map_err(|e| match StoreError::from(e) {
        StoreError::Conflict(_) => StoreError::Conflict(name_taken(t)),
        other => other,
    })?;
    Ok(())
}

pub(super) async fn get(pool: &AnyPool, id: TokenId) -> Result<TokenRecord> {
    sqlx::query_as::<_, TokenRow>(concat!(
        "SELECT ",
        token_columns!(),
        " FROM tokens WHERE id = $1"
    ))
    .bind(id.to_string())
    .fetch_optional(pool)
    .await?
    .ok_or(StoreError::NotFound("token"))?
    .try_into()
}

pub(super) async fn find(
    pool: &AnyPool,
    app: Option<AppId>,
    name: &TokenName,
) -> Result<TokenRecord> {
    sqlx::query_as::<_, TokenRow>(concat!(
        "SELECT ",
        token_columns!(),
        " FROM tokens WHERE scope_key = $1 AND name = $2"
    ))
    .bind(scope_key(app))
    .bind(name.as_str())
    .fetch_optional(pool)
    .await?
    .ok_or(StoreError::NotFound("token"))?
    .try_into()
}

pub(super) async fn list(pool: &AnyPool) -> Result<Vec<TokenRecord>> {
    sqlx::query_as::<_, TokenRow>(concat!(
        "SELECT ",
        token_columns!(),
        " FROM tokens ORDER BY provider, name, id"
    ))
    .fetch_all(pool)
    .await?
    .into_iter()
    .map(TryInto::try_into)
    .collect()
}

/// Writes `t` if the stored version is still `t.version` (and, with `lease`, while the lease is
/// held): one UPDATE, so the checks and the write are atomic on both backends.
/// Keyset page by (name, id); the name filter is a LIKE pattern with its wildcards escaped, on
/// the lower-cased name (token names are ASCII), so both backends match alike.
pub(super) async fn page(
    pool: &AnyPool,
    f: &TokenFilter,
    page: &PageRequest<NameKey>,
) -> Result<Vec<TokenRecord>> {
    let (name, id, limit) = name_after(page);
    let pattern = f.name_contains.as_deref().map_or_else(String::new, |text| {
        let mut p = String::from("%");
        for c in text.to_ascii_lowercase().chars() {
            if matches!(c, '%' | '_' | '\\') {
                p.push('\\');
            }
            p.push(c);
        }
        p.push('%');
        p
    });
    // One app's tokens: the range of UNIQUE (scope_key, name), never a scan of every token.
    let sql = if f.app.is_some() {
        concat!(
            "SELECT ",
            token_columns!(),
            " FROM tokens WHERE scope_key = $7 AND (name > $1 OR (name = $1 AND id > $2)) \
             AND ($3 = '' OR LOWER(name) LIKE $3 ESCAPE '\\') \
             AND ($4 = '' OR provider = $4) AND ($5 = '' OR status = $5) \
             AND ($6 = 0 OR app_id IS NULL) ORDER BY name, id LIMIT $8"
        )
    } else {
        concat!(
            "SELECT ",
            token_columns!(),
            " FROM tokens WHERE (name > $1 OR (name = $1 AND id > $2)) \
             AND ($3 = '' OR LOWER(name) LIKE $3 ESCAPE '\\') \
             AND ($4 = '' OR provider = $4) AND ($5 = '' OR status = $5) \
             AND ($6 = 0 OR app_id IS NULL) AND $7 = '' ORDER BY name, id LIMIT $8"
        )
    };
    sqlx::query_as::<_, TokenRow>(sql)
        .bind(name)
        .bind(id)
        .bind(pattern)
        .bind(f.provider.as_ref().map_or("", |p| p.as_str()))
        .bind(f.status.map_or("", TokenStatus::as_str))
        .bind(i64::from(f.global_only))
        .bind(f.app.map(|a| scope_key(Some(a))).unwrap_or_default())
        .bind(limit)
        .fetch_all(pool)
        .await?
        .into_iter()
        .map(TryInto::try_into)
        .collect()
}

/// The UPDATE that writes a token over the version read (and, with a lease, only while it is
/// held), making it due at once: one place for [`update`] and [`commit_refresh`].
/// What an update of a token is conditional on, besides its version.
#[derive(Clone, Copy)]
enum Guard<'q> {
    /// Nothing else (an admin's edit).
    None,
    /// The writer's lease is still held.
    Lease(&'q Lease),
    /// The lease, and the background pass's next check: stored in the same statement if the
    /// token's `check_seq` is still the one the pass read (nothing else wrote it since).
    LeaseScheduled(&'q Lease, i64, &'q TokenSchedule),
}

/// The UPDATE of a token over the version read, returning the row as stored (no read after).
/// Its parameters are `$1`..`$23`, `$24`..`$26` with a lease, `$27`..`$29` with a schedule
/// ([`update_params`] says how many).
fn update_sql(guard: &Guard<'_>) -> String {
    let (lease_cond, schedule) = match guard {
        Guard::None => ("", "next_check_at = 0"),
        Guard::Lease(_) => (LEASE_COND, "next_check_at = 0"),
        Guard::LeaseScheduled(..) => (
            LEASE_COND,
            "next_check_at = CASE WHEN check_seq = $27 THEN $28 ELSE 0 END, \
             ahead_at = CASE WHEN check_seq = $27 THEN $29 ELSE ahead_at END",
        ),
    };
    format!(
        "UPDATE tokens SET name = $1, provider = $2, scope_key = $3, settings = $4, \
         client_id = $5, client_secret = $6, client_secret_2 = $7, access_token = $8, \
         refresh_token = $9, token_type = $10, scopes = $11, access_expires_at = $12, \
         refresh_expires_at = $13, issued_at = $14, status = $15, status_reason = $16, \
         version = $17, app_id = $18, updated_at = $20, client_auth = $22, \
         client_secret_expires_at = $23, {schedule}, check_seq = check_seq + 1 \
         WHERE id = $19 AND version = $21{lease_cond} RETURNING {}",
        token_columns!()
    )
}

/// How many parameters [`update_sql`] takes.
fn update_params(guard: &Guard<'_>) -> usize {
    match guard {
        Guard::None => 23,
        Guard::Lease(_) => 26,
        Guard::LeaseScheduled(..) => 29,
    }
}

/// Binds [`update_sql`]'s parameters.
fn bind_update<'q, O>(
    q: sqlx::query::QueryAs<'q, sqlx::Any, O, sqlx::any::AnyArguments>,
    t: &'q TokenRecord,
    now: Timestamp,
    guard: &Guard<'q>,
) -> sqlx::query::QueryAs<'q, sqlx::Any, O, sqlx::any::AnyArguments> {
    let mut q = q
        .bind(t.name.as_str())
        .bind(t.provider.as_str())
        .bind(scope_key(t.app_id))
        .bind(settings_json(t))
        .bind(t.client_id.clone())
        .bind(sealed_bytes(&t.client_secret))
        .bind(sealed_bytes(&t.client_secret_2))
        .bind(sealed_bytes(&t.material.access_token))
        .bind(sealed_bytes(&t.material.refresh_token))
        .bind(t.material.token_type.clone())
        .bind(t.material.scopes.clone())
        .bind(opt_ms(t.material.access_expires_at))
        .bind(opt_ms(t.material.refresh_expires_at))
        .bind(opt_ms(t.material.issued_at))
        .bind(t.status.as_str())
        .bind(t.status_reason.clone())
        .bind(t.version + 1)
        .bind(t.app_id.map(|a| a.to_string()))
        .bind(t.id.to_string())
        .bind(ms(now))
        .bind(t.version)
        .bind(t.client_auth.map(ClientAuthMethod::as_str))
        .bind(opt_ms(t.client_secret_expires_at));
    if let Guard::Lease(l) | Guard::LeaseScheduled(l, ..) = guard {
        q = q.bind(l.name.clone()).bind(l.owner.clone()).bind(l.fencing);
    }
    if let Guard::LeaseScheduled(_, check_seq, s) = guard {
        q = q
            .bind(*check_seq)
            .bind(opt_ms(s.next_check_at))
            .bind(opt_ms(s.ahead_at));
    }
    q
}

fn update_query<'q>(
    t: &'q TokenRecord,
    now: Timestamp,
    guard: Guard<'q>,
) -> sqlx::query::QueryAs<'q, sqlx::Any, TokenRow, sqlx::any::AnyArguments> {
    // Audited: built only from the constant conditions in `update_sql`.
    let q = sqlx::query_as::<_, TokenRow>(sqlx::AssertSqlSafe(update_sql(&guard)));
    bind_update(q, t, now, &guard)
}

const LEASE_COND: &str = " AND EXISTS (SELECT 1 FROM leases WHERE name = $24 AND owner = $25 \
     AND fencing = $26 AND expires_at > $20)";

fn update_conflict(t: &TokenRecord, e: sqlx::Error) -> StoreError {
    match StoreError::from(e) {
        StoreError::Conflict(_) => StoreError::Conflict(format!(
            "a token named {} already exists {}",
            t.name,
            if t.app_id.is_some() {
                "for this app"
            } else {
                "among global tokens"
            }
        )),
        other => other,
    }
}

/// Why an update wrote no row: gone, changed by someone else, or lease lost.
async fn update_refused(pool: &AnyPool, t: &TokenRecord, lease: Option<&Lease>) -> StoreError {
    let current = match get(pool, t.id).await {
        Ok(current) => current,
        Err(e) => return e,
    };
    if current.version != t.version {
        return StoreError::VersionMismatch("token");
    }
    match lease {
        Some(l) => StoreError::LeaseLost(l.name.clone()),
        None => StoreError::VersionMismatch("token"),
    }
}

pub(super) async fn update(
    pool: &AnyPool,
    t: &TokenRecord,
    now: Timestamp,
    lease: Option<&Lease>,
) -> Result<TokenRecord> {
    let guard = lease.map_or(Guard::None, Guard::Lease);
    match update_query(t, now, guard)
        .fetch_optional(pool)
        .await
        .map_err(|e| update_conflict(t, e))?
    {
        Some(row) => row.try_into(),
        None => Err(update_refused(pool, t, lease).await),
    }
}

/// The bookkeeping of a successful refresh: `{before}` the token id and the success time twice,
/// `{after}`; read counts kept, the failure streak cleared.
macro_rules! refresh_success {
    ($before:literal, $after:literal) => {
        concat!(
            "(token_id, last_attempt_at, last_success_at, failures, next_attempt_at, last_error, \
             last_read_at, reads_total) ",
            $before,
            "0, NULL, NULL, NULL, 0",
            $after,
            " ON CONFLICT (token_id) DO UPDATE SET last_attempt_at = excluded.last_attempt_at, \
             last_success_at = excluded.last_success_at, failures = 0, next_attempt_at = NULL, \
             last_error = NULL"
        )
    };
}

/// A successful refresh in one transaction (so one commit, one fsync on SQLite, instead of
/// five): the token written under its lease, the bookkeeping's success, the audit record, the
/// lease released; and, when `c.schedule` is given and nothing else wrote the token since the
/// pass read it, its next check.
pub(super) async fn commit_refresh(
    pool: &AnyPool,
    backend: Backend,
    c: &RefreshCommit<'_>,
) -> Result<TokenRecord> {
    let t = c.token;
    let guard = match &c.schedule {
        Some((check_seq, s)) => Guard::LeaseScheduled(c.lease, *check_seq, s),
        None => Guard::Lease(c.lease),
    };
    if backend == Backend::Postgres {
        return commit_refresh_in_one_statement(pool, c, guard).await;
    }
    let mut tx = pool.begin().await?;
    let Some(stored) = update_query(t, c.now, guard)
        .fetch_optional(&mut *tx)
        .await
        .map_err(|e| update_conflict(t, e))?
    else {
        tx.rollback().await?;
        return Err(update_refused(pool, t, Some(c.lease)).await);
    };
    sqlx::query(concat!(
        "INSERT INTO token_health ",
        refresh_success!("VALUES ($1, $2, $2, ", ")")
    ))
    .bind(t.id.to_string())
    .bind(ms(c.succeeded_at))
    .execute(&mut *tx)
    .await?;
    super::audit::insert(&mut tx, c.audit).await?;
    super::leases::release_in(&mut tx, c.lease).await?;
    tx.commit().await?;
    stored.try_into()
}

/// [`commit_refresh`] on PostgreSQL: the same writes as one statement (data-modifying `WITH`
/// queries, one implicit transaction), so one round trip to the server instead of six; each
/// write after the token's happens only if the token's did (`FROM upd`).
async fn commit_refresh_in_one_statement(
    pool: &AnyPool,
    c: &RefreshCommit<'_>,
    guard: Guard<'_>,
) -> Result<TokenRecord> {
    let t = c.token;
    let n = update_params(&guard);
    let p = |i: usize| format!("${}", n + i);
    let health = format!(
        refresh_success!("SELECT {}, {}, {}, ", " FROM upd"),
        p(1),
        p(2),
        p(2)
    );
    let audit = (3..=11).map(&p).collect::<Vec<_>>().join(", ");
    let sql = format!(
        "WITH upd AS ({update}), \
         health AS (INSERT INTO token_health {health}), \
         audit AS (INSERT INTO audit_events ({columns}) SELECT {audit} FROM upd), \
         released AS (UPDATE leases SET expires_at = 0 \
           WHERE name = {l1} AND owner = {l2} AND fencing = {l3} AND EXISTS (SELECT 1 FROM upd)) \
         SELECT * FROM upd",
        update = update_sql(&guard),
        columns = audit_columns!(),
        l1 = p(12),
        l2 = p(13),
        l3 = p(14),
    );
    // Audited: built only from constant SQL and parameter numbers.
    let q = sqlx::query_as::<_, TokenRow>(sqlx::AssertSqlSafe(sql));
    let q = bind_update(q, t, c.now, &guard)
        .bind(t.id.to_string())
        .bind(ms(c.succeeded_at));
    let stored = bind_audit!(q, c.audit)
        .bind(&c.lease.name)
        .bind(&c.lease.owner)
        .bind(c.lease.fencing)
        .fetch_optional(pool)
        .await
        .map_err(|e| update_conflict(t, e))?;
    match stored {
        Some(row) => row.try_into(),
        None => Err(update_refused(pool, t, Some(c.lease)).await),
    }
}

pub(super) async fn delete(pool: &AnyPool, id: TokenId) -> Result<()> {
    let done = sqlx::query("DELETE FROM tokens WHERE id = $1")
        .bind(id.to_string())
        .execute(pool)
        .await?;
    if done.rows_affected() == 0 {
        return Err(StoreError::NotFound("token"));
    }
    Ok(())
}

// --- authorization attempts -----------------------------------------------------------------

macro_rules! state_columns {
    () => {
        "id, state_hash, token_id, started_by, session_hash, verifier, redirect_uri, created_at, \
         expires_at, used_at"
    };
}

#[derive(sqlx::FromRow)]
struct OAuthStateRow {
    id: String,
    state_hash: String,
    token_id: String,
    started_by: String,
    session_hash: Option<String>,
    verifier: Option<Vec<u8>>,
    redirect_uri: String,
    created_at: i64,
    expires_at: i64,
    used_at: Option<i64>,
}

impl TryFrom<OAuthStateRow> for OAuthStateRecord {
    type Error = StoreError;

    fn try_from(r: OAuthStateRow) -> Result<Self> {
        Ok(OAuthStateRecord {
            id: r.id,
            state_hash: r.state_hash,
            token_id: parse_id("oauth_states.token_id", &r.token_id, TokenId::parse)?,
            started_by: r.started_by,
            session_hash: r.session_hash,
            verifier: sealed(r.verifier),
            redirect_uri: r.redirect_uri,
            created_at: ts(r.created_at),
            expires_at: ts(r.expires_at),
            used_at: opt_ts(r.used_at),
        })
    }
}

pub(super) async fn create_oauth_state(pool: &AnyPool, st: &OAuthStateRecord) -> Result<()> {
    sqlx::query(concat!(
        "INSERT INTO oauth_states (",
        state_columns!(),
        ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
    ))
    .bind(&st.id)
    .bind(&st.state_hash)
    .bind(st.token_id.to_string())
    .bind(&st.started_by)
    .bind(st.session_hash.clone())
    .bind(sealed_bytes(&st.verifier))
    .bind(&st.redirect_uri)
    .bind(ms(st.created_at))
    .bind(ms(st.expires_at))
    .bind(opt_ms(st.used_at))
    .execute(pool)
    .await?;
    Ok(())
}

pub(super) async fn consume_oauth_state(
    pool: &AnyPool,
    state_hash: &str,
    now: Timestamp,
) -> Result<StateOutcome> {
    // One UPDATE marks it used only if unused and unexpired: of two racing callbacks, one wins.
    let consumed = sqlx::query_as::<_, OAuthStateRow>(concat!(
        "UPDATE oauth_states SET used_at = $1 \
         WHERE state_hash = $2 AND used_at IS NULL AND expires_at > $1 RETURNING ",
        state_columns!()
    ))
    .bind(ms(now))
    .bind(state_hash)
    .fetch_optional(pool)
    .await?;
    if let Some(row) = consumed {
        return Ok(StateOutcome::Consumed(row.try_into()?));
    }
    let seen = sqlx::query_as::<_, OAuthStateRow>(concat!(
        "SELECT ",
        state_columns!(),
        " FROM oauth_states WHERE state_hash = $1"
    ))
    .bind(state_hash)
    .fetch_optional(pool)
    .await?;
    Ok(match seen {
        None => StateOutcome::Unknown,
        Some(s) if s.used_at.is_some() => StateOutcome::AlreadyUsed,
        Some(_) => StateOutcome::Expired,
    })
}

pub(super) async fn purge_oauth_states(pool: &AnyPool, before: Timestamp) -> Result<u64> {
    let done = sqlx::query("DELETE FROM oauth_states WHERE expires_at < $1")
        .bind(ms(before))
        .execute(pool)
        .await?;
    Ok(done.rows_affected())
}

// --- refresh bookkeeping --------------------------------------------------------------------

macro_rules! health_columns {
    () => {
        "token_id, last_attempt_at, last_success_at, failures, next_attempt_at, last_error, \
         last_read_at, reads_total"
    };
}

#[derive(sqlx::FromRow)]
struct HealthRow {
    token_id: String,
    last_attempt_at: Option<i64>,
    last_success_at: Option<i64>,
    failures: i64,
    next_attempt_at: Option<i64>,
    last_error: Option<String>,
    last_read_at: Option<i64>,
    reads_total: i64,
}

impl TryFrom<HealthRow> for TokenHealth {
    type Error = StoreError;

    fn try_from(r: HealthRow) -> Result<Self> {
        Ok(TokenHealth {
            token_id: parse_id("token_health.token_id", &r.token_id, TokenId::parse)?,
            last_attempt_at: opt_ts(r.last_attempt_at),
            last_success_at: opt_ts(r.last_success_at),
            failures: r.failures,
            next_attempt_at: opt_ts(r.next_attempt_at),
            last_error: r.last_error,
            last_read_at: opt_ts(r.last_read_at),
            reads_total: r.reads_total,
        })
    }
}

pub(super) async fn get_health(pool: &AnyPool, id: TokenId) -> Result<Option<TokenHealth>> {
    sqlx::query_as::<_, HealthRow>(concat!(
        "SELECT ",
        health_columns!(),
        " FROM token_health WHERE token_id = $1"
    ))
    .bind(id.to_string())
    .fetch_optional(pool)
    .await?
    .map(TryInto::try_into)
    .transpose()
}

pub(super) async fn list_health(pool: &AnyPool) -> Result<Vec<TokenHealth>> {
    sqlx::query_as::<_, HealthRow>(concat!("SELECT ", health_columns!(), " FROM token_health"))
        .fetch_all(pool)
        .await?
        .into_iter()
        .map(TryInto::try_into)
        .collect()
}

pub(super) async fn put_health(pool: &AnyPool, h: &TokenHealth) -> Result<()> {
    sqlx::query(concat!(
        "INSERT INTO token_health (",
        health_columns!(),
        ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
         ON CONFLICT (token_id) DO UPDATE SET last_attempt_at = excluded.last_attempt_at, \
         last_success_at = excluded.last_success_at, failures = excluded.failures, \
         next_attempt_at = excluded.next_attempt_at, last_error = excluded.last_error, \
         last_read_at = excluded.last_read_at, reads_total = excluded.reads_total"
    ))
    .bind(h.token_id.to_string())
    .bind(opt_ms(h.last_attempt_at))
    .bind(opt_ms(h.last_success_at))
    .bind(h.failures)
    .bind(opt_ms(h.next_attempt_at))
    .bind(h.last_error.clone())
    .bind(opt_ms(h.last_read_at))
    .bind(h.reads_total)
    .execute(pool)
    .await?;
    make_due(pool, h.token_id).await
}

/// Puts a token back in the schedule at once: its state changed, so the next background pass
/// looks at it (and any time a pass computed from the older state is not stored).
async fn make_due(pool: &AnyPool, id: TokenId) -> Result<()> {
    sqlx::query("UPDATE tokens SET next_check_at = 0, check_seq = check_seq + 1 WHERE id = $1")
        .bind(id.to_string())
        .execute(pool)
        .await?;
    Ok(())
}

pub(super) async fn add_reads(
    pool: &AnyPool,
    id: TokenId,
    reads: i64,
    last_read_at: Timestamp,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO token_health (token_id, failures, last_read_at, reads_total) \
         VALUES ($1, 0, $2, $3) \
         ON CONFLICT (token_id) DO UPDATE SET \
           reads_total = token_health.reads_total + excluded.reads_total, \
           last_read_at = CASE WHEN token_health.last_read_at IS NULL \
                                 OR token_health.last_read_at < excluded.last_read_at \
                          THEN excluded.last_read_at ELSE token_health.last_read_at END",
    )
    .bind(id.to_string())
    .bind(ms(last_read_at))
    .bind(reads)
    .execute(pool)
    .await?;
    // A token in use is refreshed ahead: its next check comes forward to its refresh-ahead
    // time. `check_seq` moves too, so a pass that read the token before this read does not
    // store a later time computed as if it were idle.
    sqlx::query(
        "UPDATE tokens SET check_seq = check_seq + 1, next_check_at = CASE \
           WHEN ahead_at IS NOT NULL AND (next_check_at IS NULL OR ahead_at < next_check_at) \
           THEN ahead_at ELSE next_check_at END \
         WHERE id = $1",
    )
    .bind(id.to_string())
    .execute(pool)
    .await?;
    Ok(())
}

// --- the background pass's schedule ----------------------------------------------------------

#[derive(sqlx::FromRow)]
struct DueRow {
    #[sqlx(flatten)]
    token: TokenRow,
    next_check_at: i64,
    check_seq: i64,
    health_token_id: Option<String>,
    last_attempt_at: Option<i64>,
    last_success_at: Option<i64>,
    failures: Option<i64>,
    next_attempt_at: Option<i64>,
    last_error: Option<String>,
    last_read_at: Option<i64>,
    reads_total: Option<i64>,
}

impl TryFrom<DueRow> for DueToken {
    type Error = StoreError;

    fn try_from(r: DueRow) -> Result<Self> {
        let token: TokenRecord = r.token.try_into()?;
        let health = match r.health_token_id {
            None => None,
            Some(_) => Some(TokenHealth {
                token_id: token.id,
                last_attempt_at: opt_ts(r.last_attempt_at),
                last_success_at: opt_ts(r.last_success_at),
                failures: r.failures.unwrap_or(0),
                next_attempt_at: opt_ts(r.next_attempt_at),
                last_error: r.last_error,
                last_read_at: opt_ts(r.last_read_at),
                reads_total: r.reads_total.unwrap_or(0),
            }),
        };
        Ok(DueToken {
            cursor: DueCursor {
                next_check_at: ts(r.next_check_at),
                id: token.id,
            },
            token,
            health,
            check_seq: r.check_seq,
        })
    }
}

/// A token with its bookkeeping (if it has any) and its schedule, in one statement.
macro_rules! with_health_select {
    () => {
        concat!(
            "SELECT ",
            token_columns!(),
            ", next_check_at, check_seq, h.token_id AS health_token_id, h.last_attempt_at, \
             h.last_success_at, h.failures, h.next_attempt_at, h.last_error, h.last_read_at, \
             h.reads_total \
             FROM tokens LEFT JOIN token_health h ON h.token_id = tokens.id"
        )
    };
}

macro_rules! due_select {
    () => {
        concat!(with_health_select!(), " WHERE next_check_at <= $1")
    };
}

pub(super) async fn get_with_health(
    pool: &AnyPool,
    id: TokenId,
) -> Result<(TokenRecord, Option<TokenHealth>)> {
    let row = sqlx::query_as::<_, DueRow>(concat!(with_health_select!(), " WHERE tokens.id = $1"))
        .bind(id.to_string())
        .fetch_optional(pool)
        .await?
        .ok_or(StoreError::NotFound("token"))?;
    let due = DueToken::try_from(row)?;
    Ok((due.token, due.health))
}

pub(super) async fn due(
    pool: &AnyPool,
    now: Timestamp,
    after: Option<DueCursor>,
    limit: i64,
) -> Result<Vec<DueToken>> {
    let rows = match after {
        None => {
            sqlx::query_as::<_, DueRow>(concat!(
                due_select!(),
                " ORDER BY next_check_at, id LIMIT $2"
            ))
            .bind(ms(now))
            .bind(limit)
            .fetch_all(pool)
            .await?
        }
        Some(c) => {
            sqlx::query_as::<_, DueRow>(concat!(
                due_select!(),
                " AND (next_check_at > $2 OR (next_check_at = $2 AND id > $3)) \
                 ORDER BY next_check_at, id LIMIT $4"
            ))
            .bind(ms(now))
            .bind(ms(c.next_check_at))
            .bind(c.id.to_string())
            .bind(limit)
            .fetch_all(pool)
            .await?
        }
    };
    rows.into_iter().map(TryInto::try_into).collect()
}

pub(super) async fn schedule(
    pool: &AnyPool,
    id: TokenId,
    check_seq: i64,
    s: &TokenSchedule,
) -> Result<bool> {
    let done = sqlx::query(
        "UPDATE tokens SET next_check_at = $1, ahead_at = $2 WHERE id = $3 AND check_seq = $4",
    )
    .bind(opt_ms(s.next_check_at))
    .bind(opt_ms(s.ahead_at))
    .bind(id.to_string())
    .bind(check_seq)
    .execute(pool)
    .await?;
    Ok(done.rows_affected() == 1)
}

pub(super) async fn reschedule_all(pool: &AnyPool) -> Result<u64> {
    let done = sqlx::query(
        "UPDATE tokens SET next_check_at = 0, check_seq = check_seq + 1 \
         WHERE next_check_at IS NULL OR next_check_at > 0",
    )
    .execute(pool)
    .await?;
    Ok(done.rows_affected())
}

// --- reminders ------------------------------------------------------------------------------

#[derive(sqlx::FromRow)]
struct ReminderRow {
    refresh_expires_at: i64,
    lead: String,
    sent_at: i64,
}

pub(super) async fn record_reminder(
    pool: &AnyPool,
    token_id: TokenId,
    refresh_expires_at: Timestamp,
    lead: &str,
    sent_at: Timestamp,
) -> Result<bool> {
    let done = sqlx::query(
        "INSERT INTO reminders_sent (token_id, refresh_expires_at, lead, sent_at) \
         VALUES ($1, $2, $3, $4) \
         ON CONFLICT (token_id, refresh_expires_at, lead) DO NOTHING",
    )
    .bind(token_id.to_string())
    .bind(ms(refresh_expires_at))
    .bind(lead)
    .bind(ms(sent_at))
    .execute(pool)
    .await?;
    Ok(done.rows_affected() == 1)
}

pub(super) async fn list_reminders(
    pool: &AnyPool,
    token_id: TokenId,
) -> Result<Vec<(Timestamp, String, Timestamp)>> {
    Ok(sqlx::query_as::<_, ReminderRow>(
        "SELECT refresh_expires_at, lead, sent_at FROM reminders_sent \
         WHERE token_id = $1 ORDER BY sent_at, lead",
    )
    .bind(token_id.to_string())
    .fetch_all(pool)
    .await?
    .into_iter()
    .map(|r| (ts(r.refresh_expires_at), r.lead, ts(r.sent_at)))
    .collect())
}

#[derive(sqlx::FromRow)]
struct SentReminderRow {
    token_id: String,
    name: Option<String>,
    app_id: Option<String>,
    refresh_expires_at: i64,
    lead: String,
    sent_at: i64,
}

pub(super) async fn recent_reminders(pool: &AnyPool, limit: i64) -> Result<Vec<SentReminder>> {
    sqlx::query_as::<_, SentReminderRow>(
        "SELECT r.token_id, t.name, t.app_id, r.refresh_expires_at, r.lead, r.sent_at \
         FROM reminders_sent r LEFT JOIN tokens t ON t.id = r.token_id \
         ORDER BY r.sent_at DESC, r.token_id, r.lead LIMIT $1",
    )
    .bind(limit)
    .fetch_all(pool)
    .await?
    .into_iter()
    .map(|r| {
        Ok(SentReminder {
            token_id: parse_id("reminders_sent.token_id", &r.token_id, TokenId::parse)?,
            token_name: r.name,
            app_id: parse_opt_app_id("tokens.app_id", r.app_id)?,
            refresh_expires_at: ts(r.refresh_expires_at),
            lead: r.lead,
            sent_at: ts(r.sent_at),
        })
    })
    .collect()
}

/// Usable tokens (healthy or expiring soon): what has a refresh token (or a client secret)
/// worth watching. Written `status || ''` so that no index on status serves it: each expiry
/// query reads its expiry's index range. (SQLite, without statistics, would otherwise pick
/// `tokens_by_status` and sort every usable token: `the_expiry_queries_read_their_index`.)
macro_rules! usable {
    ($t:literal) => {
        concat!("(", $t, "status || '') IN ('healthy', 'expiring_soon')")
    };
}

/// The column of `what` in `tokens`, and a query over it: `$q!("refresh_expires_at")` for
/// each expiry, so every query stays one static string and one range of the expiry's index
/// (`tokens_by_refresh_expiry`, `tokens_by_client_secret_expiry`: (column, id)).
macro_rules! by_expiry {
    ($what:expr, $q:ident) => {
        match $what {
            Expiring::RefreshToken => $q!("refresh_expires_at"),
            Expiring::ClientSecret => $q!("client_secret_expires_at"),
        }
    };
}

/// A page of usable tokens by (expiry, id). `>= $1` first: one range of the index (column,
/// id) on both backends. $2: the bound is inclusive; $3: the id after which rows at exactly
/// $1 come ('' for none).
macro_rules! expiring_after_sql {
    ($col:literal) => {
        concat!(
            "SELECT ",
            token_columns!(),
            " FROM tokens WHERE ",
            $col,
            " >= $1 AND (",
            $col,
            " > $1 OR $2 = 1 OR ($3 <> '' AND id > $3)) AND ",
            usable!(""),
            " ORDER BY ",
            $col,
            ", id LIMIT $4"
        )
    };
}

/// The soonest expiry of a usable token: the first usable row of the index.
macro_rules! next_expiry_sql {
    ($col:literal) => {
        concat!(
            "SELECT ",
            $col,
            " FROM tokens WHERE ",
            $col,
            " IS NOT NULL AND ",
            usable!(""),
            " ORDER BY ",
            $col,
            " LIMIT 1"
        )
    };
}

/// How many usable tokens' expiries are before $1.
macro_rules! expiring_total_sql {
    ($col:literal) => {
        concat!(
            "SELECT COUNT(*) FROM tokens WHERE ",
            $col,
            " IS NOT NULL AND ",
            $col,
            " < $1 AND ",
            usable!("")
        )
    };
}

/// The soonest $2 of them before $1, with their app's name.
macro_rules! soonest_expiring_sql {
    ($col:literal) => {
        concat!(
            "SELECT t.name, a.name, t.provider, t.",
            $col,
            " FROM tokens t LEFT JOIN apps a ON a.id = t.app_id WHERE t.",
            $col,
            " IS NOT NULL AND t.",
            $col,
            " < $1 AND ",
            usable!("t."),
            " ORDER BY t.",
            $col,
            ", t.id LIMIT $2"
        )
    };
}

pub(super) async fn expiring_after(
    pool: &AnyPool,
    what: Expiring,
    bound: ExpiryBound,
    limit: i64,
) -> Result<Vec<TokenRecord>> {
    let (at, inclusive, after_id) = match bound {
        ExpiryBound::After(at) => (at, 0_i64, String::new()),
        ExpiryBound::From(at) => (at, 1, String::new()),
        ExpiryBound::AfterToken(at, id) => (at, 0, id.to_string()),
    };
    sqlx::query_as::<_, TokenRow>(by_expiry!(what, expiring_after_sql))
        .bind(ms(at))
        .bind(inclusive)
        .bind(after_id)
        .bind(limit)
        .fetch_all(pool)
        .await?
        .into_iter()
        .map(TryInto::try_into)
        .collect()
}

pub(super) async fn metric_counts(
    pool: &AnyPool,
    horizon: Timestamp,
    limit: i64,
) -> Result<MetricCounts> {
    // Each a scan of one index (tokens_by_status, apps_by_state, jobs_due, and each expiry's),
    // never of the token rows.
    let tokens_by_status: Vec<(String, i64)> =
        sqlx::query_as("SELECT status, COUNT(*) FROM tokens GROUP BY status ORDER BY status")
            .fetch_all(pool)
            .await?;
    let apps_by_state: Vec<(String, i64)> =
        sqlx::query_as("SELECT state, COUNT(*) FROM apps GROUP BY state ORDER BY state")
            .fetch_all(pool)
            .await?;
    let delivery_queue: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM jobs WHERE done_at IS NULL AND kind = 'deliver'")
            .fetch_one(pool)
            .await?;
    Ok(MetricCounts {
        tokens_by_status,
        apps_by_state,
        delivery_queue,
        refresh_token: expiry_counts(pool, Expiring::RefreshToken, horizon, limit).await?,
        client_secret: expiry_counts(pool, Expiring::ClientSecret, horizon, limit).await?,
    })
}

/// One expiry's counts for `/metrics`: the soonest of a usable token, how many are before
/// `horizon`, and the soonest `limit` of them with their names.
async fn expiry_counts(
    pool: &AnyPool,
    what: Expiring,
    horizon: Timestamp,
    limit: i64,
) -> Result<ExpiryCounts> {
    let next: Option<i64> = sqlx::query_scalar(by_expiry!(what, next_expiry_sql))
        .fetch_optional(pool)
        .await?;
    let total: i64 = sqlx::query_scalar(by_expiry!(what, expiring_total_sql))
        .bind(ms(horizon))
        .fetch_one(pool)
        .await?;
    let rows: Vec<(String, Option<String>, String, i64)> =
        sqlx::query_as(by_expiry!(what, soonest_expiring_sql))
            .bind(ms(horizon))
            .bind(limit)
            .fetch_all(pool)
            .await?;
    let expiring = rows
        .into_iter()
        .map(|(name, app, provider, at)| {
            Ok(ExpiringToken {
                name: parse("tokens.name", TokenName::parse(&name))?,
                app: app
                    .map(|a| parse("apps.name", AppName::parse(&a)))
                    .transpose()?,
                provider: parse("tokens.provider", ProviderId::parse(&provider))?,
                expires_at: ts(at),
            })
        })
        .collect::<Result<_>>()?;
    Ok(ExpiryCounts {
        next: opt_ts(next),
        expiring,
        total,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The plan SQLite makes for `sql` with `binds` (each query of an expiry in turn).
    async fn plan(pool: &AnyPool, sql: &'static str, binds: usize) -> String {
        let mut q = sqlx::query(sql);
        for i in 0..binds {
            q = if i == 2 { q.bind("") } else { q.bind(1_i64) };
        }
        q.fetch_all(pool)
            .await
            .unwrap()
            .iter()
            .map(|r| sqlx::Row::try_get::<String, _>(r, 3).unwrap())
            .collect::<Vec<_>>()
            .join("; ")
    }

    /// Work scales with what is due: each expiry query (the reminders coming up, `/metrics`)
    /// reads a range of its expiry's index in its order, not every usable token through
    /// `tokens_by_status` and a sort (what SQLite chose while the status test was indexable).
    #[tokio::test]
    async fn the_expiry_queries_read_their_index() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("tw.db").display());
        let epoch = chrono::DateTime::from_timestamp_millis(0).unwrap();
        let store = crate::SqlStore::open(&url, epoch).await.unwrap();
        for what in Expiring::ALL {
            let index = match what {
                Expiring::RefreshToken => "USING INDEX tokens_by_refresh_expiry ",
                Expiring::ClientSecret => "USING INDEX tokens_by_client_secret_expiry ",
            };
            macro_rules! after {
                ($col:literal) => {
                    concat!("EXPLAIN QUERY PLAN ", expiring_after_sql!($col))
                };
            }
            macro_rules! next {
                ($col:literal) => {
                    concat!("EXPLAIN QUERY PLAN ", next_expiry_sql!($col))
                };
            }
            macro_rules! total {
                ($col:literal) => {
                    concat!("EXPLAIN QUERY PLAN ", expiring_total_sql!($col))
                };
            }
            macro_rules! soonest {
                ($col:literal) => {
                    concat!("EXPLAIN QUERY PLAN ", soonest_expiring_sql!($col))
                };
            }
            for (sql, binds) in [
                (by_expiry!(what, after), 4),
                (by_expiry!(what, next), 0),
                (by_expiry!(what, total), 1),
                (by_expiry!(what, soonest), 2),
            ] {
                let p = plan(&store.pool, sql, binds).await;
                assert!(p.contains(index), "{what}: {p}\n{sql}");
                assert!(
                    !p.contains("tokens_by_status") && !p.contains("B-TREE"),
                    "{what}: {p}\n{sql}"
                );
            }
        }
    }

    #[test]
    fn a_corrupt_token_row_is_reported_with_its_column() {
        let row = TokenRow {
            id: "not-a-uuid".into(),
            name: "sf".into(),
            provider: "snowflake".into(),
            app_id: None,
            settings: "{}".into(),
            client_id: None,
            client_secret: None,
            client_secret_2: None,
            access_token: None,
            refresh_token: None,
            token_type: None,
            scopes: None,
            access_expires_at: None,
            refresh_expires_at: None,
            issued_at: None,
            status: "healthy".into(),
            status_reason: None,
            version: 1,
            created_at: 0,
            updated_at: 0,
            grant_type: "authorization_code".into(),
            client_auth: None,
            client_secret_expires_at: None,
        };
        let err = TokenRecord::try_from(row).unwrap_err();
        assert!(
            matches!(&err, StoreError::Corrupt(m) if m.starts_with("tokens.id")),
            "{err}"
        );
    }
}
