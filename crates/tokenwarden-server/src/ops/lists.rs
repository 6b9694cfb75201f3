//! Pages of every list (tokens, apps, API keys, channels, deliveries, audit, admins, admin
//! tokens): the limit rules and the opaque cursor live here, once. The JSON API, the UI and
//! the CLI parse a [`PageParams`], call one function, and render its [`Page`].
//!
//! Keyset pagination: a cursor is the sort key of the previous page's last row (base64url of a
//! small JSON object naming its list), never an offset, so rows added or removed between pages
//! neither repeat nor shift the rest. A cursor that does not decode, or names another list, is
//! [`Error::Invalid`].

use super::{Error, Result};
use crate::AppContext;
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use tokenwarden_domain::AppId;
use tokenwarden_store::{
    AdminRecord, ApiKeyRecord, AppRecord, AuditEvent, AuditFilter, ChannelRecord, DeliveryRecord,
    NameKey, PageRequest, TimeKey, TokenFilter, TokenRecord,
};

/// Rows per page when the caller names no limit.
pub const DEFAULT_LIMIT: i64 = 100;
/// The most rows a page holds.
pub const MAX_LIMIT: i64 = 1000;

/// What a caller asked for: a limit (default [`DEFAULT_LIMIT`], 1 to [`MAX_LIMIT`]) and the
/// cursor a previous page answered.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PageParams {
    pub limit: Option<i64>,
    pub cursor: Option<String>,
}

/// One page, and the cursor of the next (`None` on the last page).
#[derive(Debug, Clone, PartialEq)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_cursor: Option<String>,
}

impl<T> Page<T> {
    pub fn map<U>(self, f: impl FnMut(T) -> U) -> Page<U> {
        Page {
            items: self.items.into_iter().map(f).collect(),
            next_cursor: self.next_cursor,
        }
    }
}

/// The lists, named in their cursors so that one list's cursor is refused by another.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum List {
    Tokens,
    Apps,
    ApiKeys,
    Channels,
    Deliveries,
    Audit,
    Admins,
    AdminTokens,
    Reminders,
}

#[derive(Serialize, Deserialize)]
struct Cursor<K> {
    list: List,
    after: K,
}

fn limit(params: &PageParams) -> Result<i64> {
    match params.limit {
        None => Ok(DEFAULT_LIMIT),
        Some(n) if (1..=MAX_LIMIT).contains(&n) => Ok(n),
        Some(n) => Err(Error::Invalid(format!(
            "limit must be between 1 and {MAX_LIMIT} (got {n})"
        ))),
    }
}

fn encode<K: Serialize>(list: List, after: K) -> String {
    let json = serde_json::to_vec(&Cursor { list, after }).unwrap_or_default();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(json)
}

fn decode<K: for<'de> Deserialize<'de>>(list: List, cursor: &str) -> Result<K> {
    let invalid = || Error::Invalid("the cursor is not one this list answered".into());
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(cursor)
        .map_err(|_| invalid())?;
    let c: Cursor<K> = serde_json::from_slice(&bytes).map_err(|_| invalid())?;
    if c.list != list {
        return Err(invalid());
    }
    Ok(c.after)
}

/// The store request for `params` (one row more than the limit, to learn whether a next page
/// exists) and the limit itself.
fn request<K: for<'de> Deserialize<'de>>(
    list: List,
    params: &PageParams,
) -> Result<(PageRequest<K>, usize)> {
    let limit = limit(params)?;
    let after = params
        .cursor
        .as_deref()
        .map(|c| decode(list, c))
        .transpose()?;
    Ok((
        PageRequest {
            after,
            limit: limit + 1,
        },
        usize::try_from(limit).unwrap_or(0),
    ))
}

fn page<T, K: Serialize>(
    list: List,
    mut rows: Vec<T>,
    limit: usize,
    key: impl Fn(&T) -> K,
) -> Page<T> {
    let next_cursor = if rows.len() > limit {
        rows.truncate(limit);
        rows.last().map(|last| encode(list, key(last)))
    } else {
        None
    };
    Page {
        items: rows,
        next_cursor,
    }
}

fn name_key(name: &str, id: impl ToString) -> NameKey {
    NameKey {
        name: name.to_owned(),
        id: id.to_string(),
    }
}

fn time_key(at: tokenwarden_domain::Timestamp, id: impl ToString) -> TimeKey {
    TimeKey {
        at: at.timestamp_millis(),
        id: id.to_string(),
    }
}

/// The tokens filter from what a form or a query string sent: text in the name, a provider id, a
/// status; an empty or missing value matches everything.
pub fn token_filter(
    name: Option<&str>,
    provider: Option<&str>,
    status: Option<&str>,
) -> Result<TokenFilter> {
    fn given(v: Option<&str>) -> Option<&str> {
        v.map(str::trim).filter(|v| !v.is_empty())
    }
    Ok(TokenFilter {
        name_contains: given(name).map(str::to_owned),
        provider: given(provider)
            .map(|p| {
                tokenwarden_domain::ProviderId::parse(p)
                    .map_err(|e| Error::Invalid(format!("provider: {e}")))
            })
            .transpose()?,
        status: given(status)
            .map(|s| {
                tokenwarden_domain::TokenStatus::parse(s)
                    .map_err(|e| Error::Invalid(format!("status: {e}")))
            })
            .transpose()?,
        global_only: false,
        app: None,
    })
}

/// Tokens, global and app-level, by name; narrowed by `filter`.
pub async fn tokens(
    ctx: &AppContext,
    filter: &TokenFilter,
    params: &PageParams,
) -> Result<Page<TokenRecord>> {
    let (req, limit) = request(List::Tokens, params)?;
    let rows = ctx.store.page_tokens(filter, &req).await?;
    Ok(page(List::Tokens, rows, limit, |t| {
        name_key(t.name.as_str(), t.id)
    }))
}

/// Apps by name, with their bindings.
pub async fn apps(ctx: &AppContext, params: &PageParams) -> Result<Page<AppRecord>> {
    let (req, limit) = request(List::Apps, params)?;
    let rows = ctx.store.page_apps(&req).await?;
    Ok(page(List::Apps, rows, limit, |a| {
        name_key(a.name.as_str(), a.id)
    }))
}

/// An app's API keys, oldest first.
pub async fn api_keys(
    ctx: &AppContext,
    app: AppId,
    params: &PageParams,
) -> Result<Page<ApiKeyRecord>> {
    let (req, limit) = request(List::ApiKeys, params)?;
    let rows = ctx.store.page_api_keys(app, &req).await?;
    Ok(page(List::ApiKeys, rows, limit, |k| {
        time_key(k.created_at, k.id.0)
    }))
}

/// Notification channels, oldest first.
pub async fn channels(ctx: &AppContext, params: &PageParams) -> Result<Page<ChannelRecord>> {
    let (req, limit) = request(List::Channels, params)?;
    let rows = ctx.store.page_channels(&req).await?;
    Ok(page(List::Channels, rows, limit, |c| {
        time_key(c.created_at, &c.id)
    }))
}

/// A channel's delivery log, newest first.
pub async fn deliveries(
    ctx: &AppContext,
    channel_id: &str,
    params: &PageParams,
) -> Result<Page<DeliveryRecord>> {
    let (req, limit) = request(List::Deliveries, params)?;
    let rows = ctx.store.page_deliveries(channel_id, &req).await?;
    Ok(page(List::Deliveries, rows, limit, |d| {
        time_key(d.at, &d.id)
    }))
}

/// The audit log, newest first, narrowed by `filter` (its `limit` is not used: the page's is).
pub async fn audit(
    ctx: &AppContext,
    filter: &AuditFilter,
    params: &PageParams,
) -> Result<Page<AuditEvent>> {
    let (req, limit) = request(List::Audit, params)?;
    let rows = ctx.store.page_audit(filter, &req).await?;
    Ok(page(List::Audit, rows, limit, |e| time_key(e.at, &e.id)))
}

/// The sort key of the reminders coming up: the reminder's time, what expires and the token.
#[derive(Serialize, Deserialize)]
struct ReminderKey {
    /// Epoch milliseconds.
    at: i64,
    /// Absent in the cursors answered before client secrets were listed: the refresh token.
    #[serde(default = "refresh_token")]
    what: tokenwarden_domain::Expiring,
    id: String,
}

fn refresh_token() -> tokenwarden_domain::Expiring {
    tokenwarden_domain::Expiring::RefreshToken
}

/// The reminders still to come, soonest first (`channels::upcoming_reminders`: the rule of
/// what comes when); the cursor is the last reminder's time, expiry and token.
pub async fn upcoming_reminders(
    ctx: &AppContext,
    params: &PageParams,
) -> Result<Page<super::channels::UpcomingReminder>> {
    let (req, limit) = request::<ReminderKey>(List::Reminders, params)?;
    let after = match req.after {
        None => None,
        Some(k) => {
            let invalid = || Error::Invalid("the cursor is not one this list answered".into());
            let at = chrono::DateTime::from_timestamp_millis(k.at).ok_or_else(invalid)?;
            let id = tokenwarden_domain::TokenId::parse(&k.id).ok_or_else(invalid)?;
            Some((at, k.what, id))
        }
    };
    let rows = super::channels::upcoming_reminders(ctx, after, limit + 1).await?;
    Ok(page(List::Reminders, rows, limit, |r| ReminderKey {
        at: r.at.timestamp_millis(),
        what: r.what,
        id: r.token_id.to_string(),
    }))
}

/// The most names a typed filter suggests at once.
pub const SUGGEST_MAX: i64 = 20;

/// The page of rows whose name is `prefix` or sorts after it (one range of the name index).
fn from_name(prefix: &str, limit: i64) -> PageRequest<NameKey> {
    PageRequest {
        after: Some(NameKey {
            name: prefix.to_owned(),
            id: String::new(),
        }),
        limit: limit.clamp(1, SUGGEST_MAX),
    }
}

/// Up to `limit` (at most [`SUGGEST_MAX`]) apps whose name starts with `prefix`, by name: what
/// a typed app filter suggests (a bounded read, whatever the number of apps).
pub async fn apps_starting_with(
    ctx: &AppContext,
    prefix: &str,
    limit: i64,
) -> Result<Vec<AppRecord>> {
    let prefix = prefix.trim();
    let rows = ctx.store.page_apps(&from_name(prefix, limit)).await?;
    Ok(rows
        .into_iter()
        .filter(|a| a.name.as_str().starts_with(prefix))
        .collect())
}

/// Up to `limit` (at most [`SUGGEST_MAX`]) distinct token names (global and app-level) that
/// start with `prefix`, by name: what a typed token filter suggests.
pub async fn token_names_starting_with(
    ctx: &AppContext,
    prefix: &str,
    limit: i64,
) -> Result<Vec<String>> {
    let prefix = prefix.trim();
    let rows = ctx
        .store
        .page_tokens(&TokenFilter::default(), &from_name(prefix, limit))
        .await?;
    let mut names: Vec<String> = rows
        .into_iter()
        .map(|t| t.name.to_string())
        .filter(|n| n.starts_with(prefix))
        .collect();
    names.dedup();
    Ok(names)
}

/// Admins (who sign in to the UI) by username.
pub async fn admins(ctx: &AppContext, params: &PageParams) -> Result<Page<AdminRecord>> {
    let (req, limit) = request(List::Admins, params)?;
    let rows = ctx.store.page_admins(&req).await?;
    Ok(page(List::Admins, rows, limit, |a| {
        name_key(&a.username, &a.id)
    }))
}

/// Admin tokens (API credentials), oldest first, revoked ones too.
pub async fn admin_tokens(ctx: &AppContext, params: &PageParams) -> Result<Page<ApiKeyRecord>> {
    let (req, limit) = request(List::AdminTokens, params)?;
    let rows = ctx.store.page_admin_tokens(&req).await?;
    Ok(page(List::AdminTokens, rows, limit, |k| {
        time_key(k.created_at, k.id.0)
    }))
}

/// Every admin token, a page of [`MAX_LIMIT`] at a time (the CLI's `admin token list`).
pub async fn all_admin_tokens(ctx: &AppContext) -> Result<Vec<ApiKeyRecord>> {
    let mut all = Vec::new();
    let mut params = PageParams {
        limit: Some(MAX_LIMIT),
        cursor: None,
    };
    loop {
        let page = admin_tokens(ctx, &params).await?;
        all.extend(page.items);
        match page.next_cursor {
            Some(c) => params.cursor = Some(c),
            None => return Ok(all),
        }
    }
}

/// Every admin, a page of [`MAX_LIMIT`] at a time (the CLI's `admin list`).
pub async fn all_admins(ctx: &AppContext) -> Result<Vec<AdminRecord>> {
    let mut all = Vec::new();
    let mut params = PageParams {
        limit: Some(MAX_LIMIT),
        cursor: None,
    };
    loop {
        let page = admins(ctx, &params).await?;
        all.extend(page.items);
        match page.next_cursor {
            Some(c) => params.cursor = Some(c),
            None => return Ok(all),
        }
    }
}

/// Every token matching `filter`, read a page of [`MAX_LIMIT`] at a time (the CLI's `token
/// list` prints the whole list).
pub async fn all_tokens(ctx: &AppContext, filter: &TokenFilter) -> Result<Vec<TokenRecord>> {
    let mut all = Vec::new();
    let mut params = PageParams {
        limit: Some(MAX_LIMIT),
        cursor: None,
    };
    loop {
        let page = tokens(ctx, filter, &params).await?;
        all.extend(page.items);
        match page.next_cursor {
            Some(c) => params.cursor = Some(c),
            None => return Ok(all),
        }
    }
}

/// Every app, a page of [`MAX_LIMIT`] at a time (the CLI's `app list`).
pub async fn all_apps(ctx: &AppContext) -> Result<Vec<AppRecord>> {
    let mut all = Vec::new();
    let mut params = PageParams {
        limit: Some(MAX_LIMIT),
        cursor: None,
    };
    loop {
        let page = apps(ctx, &params).await?;
        all.extend(page.items);
        match page.next_cursor {
            Some(c) => params.cursor = Some(c),
            None => return Ok(all),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issue10_limits_outside_1_to_1000_are_invalid() {
        let p = |limit| PageParams {
            limit,
            cursor: None,
        };
        assert_eq!(limit(&p(None)).unwrap(), 100);
        assert_eq!(limit(&p(Some(1))).unwrap(), 1);
        assert_eq!(limit(&p(Some(1000))).unwrap(), 1000);
        for bad in [0, -1, 1001, i64::MAX] {
            assert!(
                matches!(limit(&p(Some(bad))), Err(Error::Invalid(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn issue10_cursors_round_trip_and_refuse_tampering_or_another_list() {
        let key = name_key("sales", "0192");
        let c = encode(List::Tokens, key.clone());
        assert_eq!(decode::<NameKey>(List::Tokens, &c).unwrap(), key);
        assert!(matches!(
            decode::<NameKey>(List::Apps, &c),
            Err(Error::Invalid(_))
        ));
        let mut tampered = c.clone();
        tampered.insert(3, '!');
        for bad in [tampered.as_str(), "", "e30", &c[..c.len() - 4]] {
            assert!(
                matches!(decode::<NameKey>(List::Tokens, bad), Err(Error::Invalid(_))),
                "{bad}"
            );
        }
        // A cursor of the time-ordered lists does not decode as a name key.
        let t = encode(List::Tokens, time_key(chrono::DateTime::UNIX_EPOCH, "x"));
        assert!(decode::<NameKey>(List::Tokens, &t).is_err());
    }

    #[test]
    fn issue10_a_page_holding_more_rows_than_the_limit_answers_a_cursor() {
        let last = page(List::Apps, vec![1, 2, 3], 3, |n| name_key("a", n));
        assert_eq!(last.next_cursor, None);
        let more = page(List::Apps, vec![1, 2, 3, 4], 3, |n| name_key("a", n));
        assert_eq!(more.items, [1, 2, 3]);
        let next: NameKey = decode(List::Apps, more.next_cursor.as_deref().unwrap()).unwrap();
        assert_eq!(next, name_key("a", 3));
    }
}
