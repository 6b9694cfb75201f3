//! Global Access Tokens: the list, one token, and the token form that walks the two-way
//! exchange (settings -> redirect URI / Snowflake SQL -> client credentials -> sign-in popup).

use super::view::{self, Countdown, Layout, TokenRow};
use super::{AdminSession, UiError, UiResult, page, page_with, see_other};
use crate::AppContext;
use crate::error::ApiError;
use crate::ops::grant::{self};
use crate::ops::{self, tokens::NewToken, tokens::TokenChanges};
use askama::Template;
use axum::Json;
use axum::extract::{Extension, Form, Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use std::collections::BTreeMap;
use tokenwarden_domain::{AppName, ClientAuthMethod, Grant, ProviderId, TokenName, TokenStatus};
use tokenwarden_oauth::snowflake::{self};
use tokenwarden_store::{AppRecord, AuditFilter, TokenRecord};

/// The refresh-token validities offered for Snowflake, in seconds, and a note on the choice.
const VALIDITY_CHOICES: &[(u64, &str)] = &[
    (86_400, ""),
    (604_800, ""),
    (2_592_000, ""),
    (7_776_000, " (Snowflake's default maximum)"),
    (31_536_000, " (needs Snowflake Support to raise the limit)"),
    (157_784_630, " (the most Snowflake Support grants)"),
];

/// Snowflake's largest validity, 157784630 s, is five years of 365.24 days: said so, not as
/// "1826 days 2 hours 23 minutes 50 seconds".
const FIVE_YEARS: u64 = 157_784_630;

/// The settings held as a number of seconds, which the UI picks and shows as a length of time
/// ("90 days"), with the value used when none is set: Snowflake's refresh-token validity.
fn seconds_setting(provider: &str, name: &str) -> Option<u64> {
    (provider == "snowflake" && name == "refresh_token_validity")
        .then_some(snowflake::DEFAULT_REFRESH_VALIDITY)
}

/// A number of seconds in words ("90 days", [`view::duration`]); text that is not a number
/// stays as it is.
fn seconds_in_words(value: &str) -> String {
    match value.trim().parse::<u64>() {
        Ok(FIVE_YEARS) => "5 years".to_owned(),
        Ok(secs) => view::duration(chrono::Duration::seconds(
            i64::try_from(secs).unwrap_or(i64::MAX / 1000),
        )),
        Err(_) => value.to_owned(),
    }
}

/// A token's settings as the detail page shows them: each setting of its provider by its
/// label, lengths of time in words, "not set" (or the default used) for those left empty;
/// settings the provider does not list (a changed catalog) by their key.
fn settings_shown(ctx: &AppContext, t: &TokenRecord) -> Vec<(String, String)> {
    let provider = t.provider.as_str();
    let mut out = Vec::new();
    let fields = ctx
        .catalog
        .get(provider)
        .map(|p| p.fields.as_slice())
        .unwrap_or_default();
    for f in fields {
        let set = t.settings.get(&f.name).filter(|v| !v.trim().is_empty());
        // A setting of another grant is listed only when it holds something.
        if !f.applies_to(t.grant) && set.is_none() {
            continue;
        }
        let seconds = seconds_setting(provider, &f.name);
        let value = match (set, seconds) {
            (Some(v), Some(_)) => seconds_in_words(v),
            (Some(v), None) => v.clone(),
            (None, Some(default)) => {
                format!("{} (the default)", seconds_in_words(&default.to_string()))
            }
            (None, None) => match &f.default {
                Some(d) => format!("{d} (the default)"),
                None => "not set".to_owned(),
            },
        };
        out.push((f.label.clone(), value));
    }
    for (k, v) in &t.settings {
        if !fields.iter().any(|f| &f.name == k) {
            out.push((k.clone(), v.clone()));
        }
    }
    out
}

pub(super) async fn load(ctx: &AppContext, id: &str) -> UiResult<TokenRecord> {
    Ok(ops::tokens::get_by_text(ctx, id).await?)
}

// --- the list --------------------------------------------------------------------------

struct Group {
    provider: String,
    rows: Vec<TokenRow>,
}

#[derive(Template)]
#[template(path = "tokens.html")]
struct TokensPage {
    l: Layout,
    groups: Vec<Group>,
    /// The filter as sent, to show it again.
    q: TokensQuery,
    providers: Vec<String>,
    statuses: Vec<&'static str>,
    /// The links to the pages before and after (the same filter).
    pager: super::pager::Pager,
    attention: usize,
    dead: usize,
    /// The first reminder lead time, in words.
    lead: String,
}

/// The tokens list's query: a filter (text in the name, provider, status), a page size and
/// the cursor of the page to show.
#[derive(Debug, Default, Deserialize, serde::Serialize)]
pub struct TokensQuery {
    #[serde(default)]
    name: String,
    #[serde(default)]
    provider: String,
    #[serde(default)]
    status: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    limit: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    cursor: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    back: Option<String>,
}

/// One page of global tokens (server-side filter and keyset page: see `ops::lists`), grouped
/// by provider.
pub async fn list(
    State(ctx): State<AppContext>,
    Extension(s): Extension<AdminSession>,
    Query(q): Query<TokensQuery>,
) -> UiResult {
    let mut filter = ops::lists::token_filter(Some(&q.name), Some(&q.provider), Some(&q.status))?;
    filter.global_only = true;
    let at = super::pager::PageQuery {
        limit: q.limit,
        cursor: q.cursor.clone(),
        back: q.back.clone(),
    };
    let tokens = ops::lists::tokens(&ctx, &filter, &at.params()).await?;
    let pager = super::pager::Pager::new(
        "/tokens",
        &[
            ("name", q.name.as_str()),
            ("provider", q.provider.as_str()),
            ("status", q.status.as_str()),
        ],
        &at,
        tokens.next_cursor.as_deref(),
    );
    let apps = view::apps_of(&ctx, &tokens.items).await?;
    let mut by_provider: BTreeMap<String, Vec<TokenRow>> = BTreeMap::new();
    for t in &tokens.items {
        let row = view::token_row(&ctx, t, &apps);
        by_provider
            .entry(row.provider.clone())
            .or_default()
            .push(row);
    }
    let groups: Vec<Group> = by_provider
        .into_iter()
        .map(|(provider, mut rows)| {
            rows.sort_by(|a, b| a.name.cmp(&b.name));
            Group { provider, rows }
        })
        .collect();
    let attention = groups
        .iter()
        .flat_map(|g| &g.rows)
        .filter(|r| r.refresh.class == "warn")
        .count();
    let dead = groups
        .iter()
        .flat_map(|g| &g.rows)
        .filter(|r| r.refresh.class == "crit")
        .count();
    page(&TokensPage {
        l: Layout::new(&s, "tokens", "Global Access Tokens"),
        groups,
        q,
        providers: ctx.catalog.ids().into_iter().map(str::to_owned).collect(),
        statuses: TokenStatus::ALL.iter().map(|s| s.as_str()).collect(),
        pager,
        attention,
        dead,
        lead: view::lead_time(ctx.first_lead_time()),
    })
}

// --- settings fields -------------------------------------------------------------------

pub struct FieldView {
    pub name: String,
    pub label: String,
    pub help: String,
    pub required: bool,
    pub value: String,
    pub example: String,
    pub error: String,
    pub warning: String,
    /// (value, label, selected); empty = a text input.
    pub options: Vec<(String, String, bool)>,
}

/// Checks one setting as the admin types it: (error, warning), empty strings when fine. The
/// rule itself is the core's, the same one a save applies.
fn check_field(ctx: &AppContext, provider: &str, name: &str, value: &str) -> (String, String) {
    match ops::tokens::check_setting(ctx, provider, name, value) {
        Ok(warning) => (String::new(), warning.unwrap_or_default()),
        Err(e) => (e, String::new()),
    }
}

fn field_views(
    ctx: &AppContext,
    provider: &str,
    grant: Grant,
    values: &BTreeMap<String, String>,
    with_errors: bool,
) -> Vec<FieldView> {
    let Some(t) = ctx.catalog.get(provider) else {
        return Vec::new();
    };
    t.fields
        .iter()
        .filter(|f| f.applies_to(grant))
        .map(|f| {
            let value = values.get(&f.name).cloned().unwrap_or_default();
            let (error, warning) = if with_errors {
                check_field(ctx, provider, &f.name, &value)
            } else {
                (String::new(), String::new())
            };
            let options = if let Some(default) = seconds_setting(provider, &f.name) {
                let current = value.trim().parse::<u64>().unwrap_or(default);
                let mut o: Vec<(String, String, bool)> = VALIDITY_CHOICES
                    .iter()
                    .map(|(v, note)| {
                        let words = seconds_in_words(&v.to_string());
                        (v.to_string(), format!("{words}{note}"), *v == current)
                    })
                    .collect();
                if !VALIDITY_CHOICES.iter().any(|(v, _)| *v == current) {
                    o.push((
                        current.to_string(),
                        seconds_in_words(&current.to_string()),
                        true,
                    ));
                }
                o
            } else {
                Vec::new()
            };
            FieldView {
                name: f.name.clone(),
                label: f.label.clone(),
                help: f.help.clone(),
                required: f.required,
                value,
                example: placeholder(f),
                error,
                warning,
                options,
            }
        })
        .collect()
}

/// A setting's placeholder: a hint that cannot pass for a value typed ("e.g. ANALYST",
/// "default: common"), empty when the catalog gives neither.
fn placeholder(f: &tokenwarden_oauth::catalog::Field) -> String {
    match (&f.example, &f.default) {
        (_, Some(d)) => format!("default: {d}"),
        (Some(e), None) => format!("e.g. {e}"),
        (None, None) => String::new(),
    }
}

/// Settings from form pairs named `s_<setting>`; empty values are left out (defaults apply).
fn settings_from(pairs: &[(String, String)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .filter_map(|(k, v)| {
            k.strip_prefix("s_")
                .map(|n| (n.to_owned(), v.trim().to_owned()))
        })
        .filter(|(_, v)| !v.is_empty())
        .collect()
}

fn field(pairs: &[(String, String)], name: &str) -> String {
    pairs
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.clone())
        .unwrap_or_default()
}

#[derive(Template)]
#[template(path = "partials/provider_fields.html")]
struct FieldsPartial {
    fields: Vec<FieldView>,
    provider: String,
    form_id: &'static str,
    /// The provider's grants, swapped into the form's grant choice out of band.
    grants: Vec<(String, String, bool)>,
}

/// htmx: the settings fields of the provider (and grant) picked on the new-token form, keeping
/// the values typed so far (`s_<name>`) when only the grant changed.
pub async fn provider_fields(
    State(ctx): State<AppContext>,
    Query(pairs): Query<Vec<(String, String)>>,
) -> UiResult {
    let provider = field(&pairs, "provider");
    let grants = grant_choices(&ctx, &provider, &field(&pairs, "grant"));
    let grant = chosen_grant(&grants);
    page(&FieldsPartial {
        fields: field_views(&ctx, &provider, grant, &settings_from(&pairs), false),
        grants,
        provider,
        form_id: "token-form",
    })
}

/// The grant selected among the choices (the default when there are none).
fn chosen_grant(choices: &[(String, String, bool)]) -> Grant {
    choices
        .iter()
        .find(|c| c.2)
        .and_then(|c| Grant::parse(&c.0).ok())
        .unwrap_or_default()
}

/// htmx: the names a typed filter suggests (`<option>`s for its `<datalist>`): apps or tokens
/// whose name starts with the text typed (the value of the one query parameter), at most
/// `ops::lists::SUGGEST_MAX`.
pub async fn suggest(
    State(ctx): State<AppContext>,
    Path(list): Path<String>,
    Query(q): Query<Vec<(String, String)>>,
) -> UiResult {
    let typed = q.first().map(|(_, v)| v.as_str()).unwrap_or_default();
    let names = match list.as_str() {
        "apps" => ops::lists::apps_starting_with(&ctx, typed, ops::lists::SUGGEST_MAX)
            .await?
            .into_iter()
            .map(|a| a.name.to_string())
            .collect(),
        "tokens" => {
            ops::lists::token_names_starting_with(&ctx, typed, ops::lists::SUGGEST_MAX).await?
        }
        _ => return Err(UiError(ApiError::NotFound(format!("list {list:?}")))),
    };
    let body: String = names
        .iter()
        .map(|n| format!(r#"<option value="{}">"#, crate::pages::escape(n)))
        .collect();
    Ok(crate::pages::html(StatusCode::OK, body))
}

/// htmx: checks one setting as it is typed (`provider` and one `s_<name>` parameter).
pub async fn check_setting(
    State(ctx): State<AppContext>,
    Query(q): Query<Vec<(String, String)>>,
) -> UiResult {
    let provider = field(&q, "provider");
    let (error, warning) = q
        .iter()
        .find_map(|(k, v)| k.strip_prefix("s_").map(|n| (n, v)))
        .map(|(n, v)| check_field(&ctx, &provider, n, v))
        .unwrap_or_default();
    let body = if !error.is_empty() {
        format!(
            r#"<span class="bad">{}</span>"#,
            crate::pages::escape(&error)
        )
    } else if !warning.is_empty() {
        format!(
            r#"<span class="warnmsg">{}</span>"#,
            crate::pages::escape(&warning)
        )
    } else {
        r#"<span class="good">Looks right.</span>"#.to_owned()
    };
    Ok(crate::pages::html(StatusCode::OK, body))
}

// --- creating --------------------------------------------------------------------------

#[derive(Template)]
#[template(path = "token_new.html")]
struct NewTokenPage {
    l: Layout,
    name: String,
    providers: Vec<(String, String, bool)>,
    /// The owner typed (an app's name; empty: global) and the app names suggested.
    app: String,
    apps: Vec<String>,
    provider: String,
    fields: Vec<FieldView>,
    /// The provider's grants: (value, label, selected).
    grants: Vec<(String, String, bool)>,
    form_id: &'static str,
    error: String,
}

/// The grants `provider` supports, for the new-token form: (value, label, selected), the
/// `chosen` one selected (else the first).
fn grant_choices(ctx: &AppContext, provider: &str, chosen: &str) -> Vec<(String, String, bool)> {
    let Some(p) = ctx.catalog.get(provider) else {
        return Vec::new();
    };
    let chosen = if p.grants.iter().any(|g| g.as_str() == chosen) {
        chosen
    } else {
        p.grants.first().map_or("", |g| g.as_str())
    };
    p.grants
        .iter()
        .map(|g| {
            (
                g.as_str().to_owned(),
                g.label().to_owned(),
                g.as_str() == chosen,
            )
        })
        .collect()
}

#[derive(Deserialize)]
pub struct NewQuery {
    app: Option<String>,
    provider: Option<String>,
}

/// What the new-token form was filled with (empty on first show).
struct NewTokenInput<'a> {
    name: String,
    provider: String,
    app: String,
    values: &'a BTreeMap<String, String>,
    grant: &'a str,
}

async fn new_page(
    ctx: &AppContext,
    s: &AdminSession,
    input: NewTokenInput<'_>,
    error: String,
) -> UiResult<NewTokenPage> {
    let NewTokenInput {
        name,
        provider,
        app,
        values,
        grant,
    } = input;
    let apps = ops::lists::apps_starting_with(ctx, &app, ops::lists::SUGGEST_MAX).await?;
    let with_errors = !error.is_empty();
    let grants = grant_choices(ctx, &provider, grant);
    Ok(NewTokenPage {
        l: Layout::new(
            s,
            if app.is_empty() { "tokens" } else { "apps" },
            "New token",
        ),
        name,
        providers: ctx
            .catalog
            .all()
            .map(|p| (p.id.clone(), p.display_name.clone(), p.id == provider))
            .collect(),
        apps: apps.iter().map(|a| a.name.to_string()).collect(),
        app,
        fields: field_views(ctx, &provider, chosen_grant(&grants), values, with_errors),
        grants,
        provider,
        form_id: "token-form",
        error,
    })
}

pub async fn new_form(
    State(ctx): State<AppContext>,
    Extension(s): Extension<AdminSession>,
    Query(q): Query<NewQuery>,
) -> UiResult {
    let provider = q.provider.unwrap_or_else(|| "snowflake".into());
    let p = new_page(
        &ctx,
        &s,
        NewTokenInput {
            name: String::new(),
            provider,
            app: q.app.unwrap_or_default(),
            values: &BTreeMap::new(),
            grant: "",
        },
        String::new(),
    )
    .await?;
    page(&p)
}

pub async fn create(
    State(ctx): State<AppContext>,
    Extension(s): Extension<AdminSession>,
    Form(pairs): Form<Vec<(String, String)>>,
) -> UiResult {
    let name = field(&pairs, "name").trim().to_owned();
    let provider = field(&pairs, "provider");
    let app = field(&pairs, "app").trim().to_owned();
    let grant = field(&pairs, "grant");
    let settings = settings_from(&pairs);
    let result: Result<TokenRecord, String> = async {
        let token_name = TokenName::parse(&name).map_err(|e| format!("Name: {e}"))?;
        let provider_id = ProviderId::parse(&provider).map_err(|e| format!("Provider: {e}"))?;
        let app = if app.is_empty() {
            None
        } else {
            Some(AppName::parse(&app).map_err(|e| format!("App: {e}"))?)
        };
        let new = NewToken {
            name: token_name,
            provider: provider_id,
            app,
            settings: settings.clone(),
            client_id: None,
            client_secret: None,
            client_secret_2: None,
            grant: if grant.is_empty() {
                Grant::default()
            } else {
                Grant::parse(&grant).map_err(|e| format!("Grant: {e}"))?
            },
            client_auth: None,
            client_secret_expires_at: None,
        };
        ops::tokens::create(&ctx, &s.actor(), new)
            .await
            .map_err(|e| match e {
                ops::Error::Invalid(m) | ops::Error::Conflict(m) => sentence(&m),
                other => ApiError::from(other).to_string(),
            })
    }
    .await;
    match result {
        Ok(t) => Ok(see_other(&format!("/tokens/{}/edit", t.id))),
        Err(error) => {
            let input = NewTokenInput {
                name,
                provider,
                app,
                values: &settings,
                grant: &grant,
            };
            let p = new_page(&ctx, &s, input, error).await?;
            page_with(StatusCode::UNPROCESSABLE_ENTITY, &p)
        }
    }
}

// --- one token -------------------------------------------------------------------------

/// What the status box shows; refreshed by htmx after the sign-in popup finishes.
pub struct StatusView {
    pub token_id: String,
    pub status: &'static str,
    pub status_class: &'static str,
    pub reason: String,
    /// The access token's first characters, masked; empty if there is none.
    pub masked: String,
    pub access: String,
    pub access_abs: String,
    pub refresh: Countdown,
    pub authorized_at: String,
    /// Offer "Re-authorize" (see [`view::needs_signin`]).
    pub needs_signin: bool,
    /// Never signed in yet.
    pub never: bool,
    /// The grant signs in (authorization code, device code); else the token gets its access
    /// tokens with its credentials alone.
    pub sign_in: bool,
    /// The client secret's expiry, if the admin gave one.
    pub secret: Option<Countdown>,
}

async fn status_view(ctx: &AppContext, t: &TokenRecord) -> StatusView {
    let now = ctx.clock.now();
    let (status, status_class) = view::status_label(t.status);
    let masked = match &t.material.access_token {
        Some(sealed) => match grant::open_material(
            ctx,
            t,
            tokenwarden_store::SealedColumn::TokenAccessToken,
            sealed,
        )
        .await
        {
            Ok(tok) => {
                // The end tells tokens apart (Snowflake's all start alike); at most 4 characters.
                let chars: Vec<char> = tok.expose_secret().chars().collect();
                let from = chars.len().saturating_sub(4).max(chars.len() / 2);
                let tail: String = chars[from..].iter().collect();
                format!("••••••{tail}")
            }
            Err(_) => "(cannot be decrypted)".into(),
        },
        None => String::new(),
    };
    StatusView {
        token_id: t.id.to_string(),
        status,
        status_class,
        reason: t.status_reason.clone().unwrap_or_default(),
        masked,
        access: t
            .material
            .access_expires_at
            .map_or_else(|| "—".to_owned(), |e| view::expiry(now, e)),
        access_abs: view::fmt_time(t.material.access_expires_at),
        needs_signin: false,
        never: t.status == TokenStatus::NotAuthorized,
        sign_in: t.grant.needs_sign_in(),
        secret: t
            .client_secret_expires_at
            .map(|e| view::countdown(ctx, t.status, Some(e))),
        refresh: if t.grant.renews_with_refresh_token() {
            view::countdown(ctx, t.status, t.material.refresh_expires_at)
        } else {
            view::soonest_countdown(ctx, t)
        },
        authorized_at: view::fmt_time(t.material.issued_at),
    }
    .with_signin(t)
}

impl StatusView {
    fn with_signin(mut self, t: &TokenRecord) -> Self {
        self.needs_signin = t.grant.needs_sign_in() && view::needs_signin(t.status, &self.refresh);
        self
    }
}

#[derive(Template)]
#[template(path = "partials/status.html")]
struct StatusPartial {
    st: StatusView,
}

pub async fn status_partial(State(ctx): State<AppContext>, Path(id): Path<String>) -> UiResult {
    let t = load(&ctx, &id).await?;
    page(&StatusPartial {
        st: status_view(&ctx, &t).await,
    })
}

#[derive(Template)]
#[template(path = "token_detail.html")]
struct DetailPage {
    l: Layout,
    id: String,
    name: String,
    provider: String,
    /// The grant's label.
    grant: &'static str,
    client_auth: &'static str,
    app: Option<(String, String)>,
    users: Vec<(String, String)>,
    settings: Vec<(String, String)>,
    client_id: String,
    secret_set: bool,
    secret2_set: bool,
    st: StatusView,
    last_error: String,
    next_attempt: String,
    audit: Vec<view::ActivityRow>,
    /// Offer a device sign-in (RFC 8628).
    device_signin: bool,
    /// The signing key card (Snowflake key-pair, private_key_jwt): `partials/token_keys.html`.
    keys: Option<crate::ops::grant::keypair::KeysView>,
    keys_message: String,
    keys_ok: bool,
    /// The keys card is on the token's page, not its form.
    in_form: bool,
    /// A Snowflake key-pair token: no client id, secret or client authentication to show.
    keypair: bool,
}

async fn owner(ctx: &AppContext, t: &TokenRecord) -> UiResult<Option<AppRecord>> {
    Ok(match t.app_id {
        Some(id) => Some(ctx.store.get_app(id).await?),
        None => None,
    })
}

pub async fn detail(
    State(ctx): State<AppContext>,
    Extension(s): Extension<AdminSession>,
    Path(id): Path<String>,
) -> UiResult {
    let t = load(&ctx, &id).await?;
    let app = owner(&ctx, &t).await?;
    let apps = ctx.store.apps_using_token(&t.name).await?;
    let row = view::token_row(&ctx, &t, &apps);
    let health = ctx.store.get_token_health(t.id).await?;
    let mut audit = Vec::new();
    let mut names = view::ActorNames::default();
    for e in ctx
        .store
        .list_audit(&AuditFilter {
            object_id: Some(t.id.to_string()),
            limit: 10,
            ..AuditFilter::default()
        })
        .await?
    {
        audit.push(view::activity_row(&ctx, &mut names, e).await);
    }
    page(&DetailPage {
        l: Layout::new(
            &s,
            if app.is_some() { "apps" } else { "tokens" },
            t.name.to_string(),
        ),
        id: t.id.to_string(),
        name: t.name.to_string(),
        provider: row.provider.clone(),
        grant: t.grant.label(),
        client_auth: grant::client_auth(&ctx, &t).as_str(),
        app: app.map(|a| (a.id.to_string(), a.name.to_string())),
        users: row.apps,
        settings: settings_shown(&ctx, &t),
        client_id: t.client_id.clone().unwrap_or_default(),
        secret_set: t.client_secret.is_some(),
        secret2_set: t.client_secret_2.is_some(),
        st: status_view(&ctx, &t).await,
        last_error: health
            .as_ref()
            .and_then(|h| h.last_error.clone())
            .unwrap_or_default(),
        next_attempt: health
            .as_ref()
            .and_then(|h| h.next_attempt_at)
            .map(|t| view::fmt_time(Some(t)))
            .unwrap_or_default(),
        audit,
        device_signin: t.grant == tokenwarden_domain::Grant::DeviceCode,
        keys: grant::keypair::view(&ctx, &t).await?,
        keys_message: String::new(),
        keys_ok: true,
        in_form: false,
        keypair: t.grant == Grant::SnowflakeKeypair,
    })
}

// --- the token form --------------------------------------------------------------------

struct SnowflakePanel {
    integration: String,
    sql: String,
    alter_validity: String,
}

#[derive(Template)]
#[template(path = "token_edit.html")]
struct EditPage {
    l: Layout,
    id: String,
    name: String,
    provider: String,
    provider_name: String,
    app: Option<(String, String)>,
    fields: Vec<FieldView>,
    form_id: &'static str,
    client_id: String,
    client_id_error: String,
    secret_set: bool,
    secret2_set: bool,
    redirect_uri: String,
    snowflake: Option<SnowflakePanel>,
    warnings: Vec<String>,
    notice: String,
    error: String,
    paste_error: String,
    st: StatusView,
    /// Client authentication: (value, label, selected); the empty value is the provider's.
    client_auths: Vec<(String, String, bool)>,
    /// The client secret's expiry as typed or stored (RFC 3339), empty when unknown.
    secret_expires: String,
    /// A Snowflake key-pair token: step 2 is its key (the card `partials/token_keys.html`),
    /// and it has no client id or secret.
    keypair: bool,
    /// A device code token: it signs in with a code (no redirect URI, no pop-up).
    device: bool,
    keys: Option<crate::ops::grant::keypair::KeysView>,
    keys_message: String,
    keys_ok: bool,
    in_form: bool,
}

#[derive(Default)]
struct EditState {
    values: Option<BTreeMap<String, String>>,
    client_id: Option<String>,
    client_id_error: String,
    notice: String,
    error: String,
    paste_error: String,
    with_errors: bool,
    secret_expires: Option<String>,
}

async fn edit_page(
    ctx: &AppContext,
    s: &AdminSession,
    t: &TokenRecord,
    e: EditState,
) -> UiResult<EditPage> {
    let app = owner(ctx, t).await?;
    let provider = t.provider.to_string();
    let values = e.values.unwrap_or_else(|| t.settings.clone());
    let redirect_uri = ctx.settings.redirect_uri();
    let mut warnings = Vec::new();
    let keypair = t.grant == Grant::SnowflakeKeypair;
    let snowflake = if provider == "snowflake" && !keypair {
        match ops::tokens::snowflake_setup(ctx, t) {
            Ok((integration, _, sql)) => {
                warnings.extend(sql.warnings.iter().cloned());
                Some(SnowflakePanel {
                    integration: integration.as_str().to_owned(),
                    sql: format!("{}\n\n{}", sql.create, sql.show_secrets),
                    alter_validity: sql.alter_validity,
                })
            }
            Err(err) => {
                warnings.push(err);
                None
            }
        }
    } else {
        None
    };
    if let Err(err) = grant::resolve(ctx, t) {
        warnings.push(format!("Before signing in: {err}"));
    }
    Ok(EditPage {
        l: Layout::new(
            s,
            if app.is_some() { "apps" } else { "tokens" },
            format!("Edit {}", t.name),
        ),
        id: t.id.to_string(),
        name: t.name.to_string(),
        provider_name: ctx
            .catalog
            .get(&provider)
            .map_or_else(|| provider.clone(), |p| p.display_name.clone()),
        fields: field_views(ctx, &provider, t.grant, &values, e.with_errors),
        provider,
        app: app.map(|a| (a.id.to_string(), a.name.to_string())),
        form_id: "token-form",
        client_id: e
            .client_id
            .unwrap_or_else(|| t.client_id.clone().unwrap_or_default()),
        client_id_error: e.client_id_error,
        secret_set: t.client_secret.is_some(),
        secret2_set: t.client_secret_2.is_some(),
        redirect_uri,
        snowflake,
        notice: e.notice,
        error: e.error,
        paste_error: e.paste_error,
        client_auths: client_auth_choices(ctx, t),
        secret_expires: e.secret_expires.unwrap_or_else(|| {
            t.client_secret_expires_at
                .map(|e| tokenwarden_domain::Rfc3339(e).to_string())
                .unwrap_or_default()
        }),
        st: status_view(ctx, t).await,
        keypair,
        device: t.grant == Grant::DeviceCode,
        keys: if keypair {
            grant::keypair::view(ctx, t).await.unwrap_or_else(|e| {
                warnings.push(format!("The key cannot be shown: {e}"));
                None
            })
        } else {
            None
        },
        warnings,
        keys_message: String::new(),
        keys_ok: true,
        in_form: true,
    })
}

/// The client authentication choices of the token form: the provider's default first.
fn client_auth_choices(ctx: &AppContext, t: &TokenRecord) -> Vec<(String, String, bool)> {
    let default = ctx
        .catalog
        .resolve_for(t.provider.as_str(), &t.settings, t.grant)
        .map(|p| p.client_auth.method().as_str())
        .unwrap_or("client_secret_basic");
    let mut out = vec![(
        String::new(),
        format!("The provider's default ({default})"),
        t.client_auth.is_none(),
    )];
    for (m, label) in [
        (
            ClientAuthMethod::ClientSecretBasic,
            "client_secret_basic: HTTP Basic",
        ),
        (
            ClientAuthMethod::ClientSecretPost,
            "client_secret_post: in the form body",
        ),
        (
            ClientAuthMethod::PrivateKeyJwt,
            "private_key_jwt: a JWT signed by a key tokenwarden holds (no secret; its JWKS is on the token's page)",
        ),
    ] {
        out.push((
            m.as_str().to_owned(),
            label.to_owned(),
            t.client_auth == Some(m),
        ));
    }
    out
}

#[derive(Deserialize)]
pub struct EditQuery {
    done: Option<String>,
}

pub async fn edit_form(
    State(ctx): State<AppContext>,
    Extension(s): Extension<AdminSession>,
    Path(id): Path<String>,
    Query(q): Query<EditQuery>,
) -> UiResult {
    let t = load(&ctx, &id).await?;
    let notice = match q.done.as_deref() {
        Some("saved") => "Saved.",
        Some("cleared") => "The second client secret was cleared; the first one stays.",
        Some("filled") => {
            "The client id and secrets were filled from the pasted output. Next: Get OAuth 2.0 Access Token."
        }
        _ => "",
    };
    let p = edit_page(
        &ctx,
        &s,
        &t,
        EditState {
            notice: notice.into(),
            ..EditState::default()
        },
    )
    .await?;
    page(&p)
}

fn check_secret(s: &str) -> bool {
    !s.trim().is_empty() && s.len() <= 4096 && !s.chars().any(char::is_control)
}

/// "Save": settings, client id, and the client secrets only if new ones were typed.
pub async fn save(
    State(ctx): State<AppContext>,
    Extension(s): Extension<AdminSession>,
    Path(id): Path<String>,
    Form(pairs): Form<Vec<(String, String)>>,
) -> UiResult {
    let t = load(&ctx, &id).await?;
    let provider = t.provider.to_string();
    let settings = settings_from(&pairs);
    let client_id = field(&pairs, "client_id").trim().to_owned();
    let secret = field(&pairs, "client_secret");
    let secret2 = field(&pairs, "client_secret_2");
    let client_auth_text = field(&pairs, "client_auth");
    let expires_text = field(&pairs, "client_secret_expires_at").trim().to_owned();
    let mut bad = settings
        .iter()
        .any(|(k, v)| !check_field(&ctx, &provider, k, v).0.is_empty());
    let mut client_id_error = String::new();
    if client_id.len() > 512 || client_id.chars().any(char::is_control) {
        client_id_error = "at most 512 characters, without control characters".into();
        bad = true;
    }
    let mut error = String::new();
    for (label, v) in [
        ("client secret", &secret),
        ("second client secret", &secret2),
    ] {
        if !v.is_empty() && !check_secret(v) {
            error = format!("The {label} must be 1-4096 characters without control characters.");
            bad = true;
        }
    }
    let client_auth = if client_auth_text.is_empty() {
        None
    } else {
        match ClientAuthMethod::parse(&client_auth_text) {
            Ok(m) => Some(m),
            Err(e) => {
                error = format!("Client authentication: {e}.");
                bad = true;
                None
            }
        }
    };
    let secret_expires_at = match ops::tokens::parse_expiry(&expires_text) {
        Ok(e) => e,
        Err(e) => {
            error = format!("Client secret expires: {e}.");
            bad = true;
            None
        }
    };
    if bad {
        let p = edit_page(
            &ctx,
            &s,
            &t,
            EditState {
                values: Some(settings),
                client_id: Some(client_id),
                client_id_error,
                error: if error.is_empty() {
                    "Nothing was saved: fix the fields marked below.".into()
                } else {
                    error
                },
                with_errors: true,
                secret_expires: Some(expires_text),
                ..EditState::default()
            },
        )
        .await?;
        return page_with(StatusCode::UNPROCESSABLE_ENTITY, &p);
    }
    let changes = TokenChanges {
        settings: Some(settings),
        client_id: Some((!client_id.is_empty()).then_some(client_id)),
        client_secret: (!secret.is_empty()).then(|| SecretString::from(secret)),
        client_secret_2: (!secret2.is_empty()).then(|| Some(SecretString::from(secret2))),
        client_auth: Some(client_auth),
        client_secret_expires_at: Some(secret_expires_at),
        ..TokenChanges::default()
    };
    match ops::tokens::update(&ctx, &s.actor(), t.id, changes).await {
        Ok(_) => {}
        Err(ops::Error::Invalid(msg)) => {
            let p = edit_page(
                &ctx,
                &s,
                &t,
                EditState {
                    error: sentence(&msg),
                    ..EditState::default()
                },
            )
            .await?;
            return page_with(StatusCode::UNPROCESSABLE_ENTITY, &p);
        }
        Err(e) => return Err(e.into()),
    }
    Ok(see_other(&format!("/tokens/{}/edit?done=saved", t.id)))
}

#[derive(Deserialize)]
pub struct PasteForm {
    #[serde(default)]
    pasted: String,
}

/// The pasted `SYSTEM$SHOW_OAUTH_CLIENT_SECRETS` cell fills the client id and both secrets;
/// anything else is refused and changes nothing.
pub async fn paste_secrets(
    State(ctx): State<AppContext>,
    Extension(s): Extension<AdminSession>,
    Path(id): Path<String>,
    Form(f): Form<PasteForm>,
) -> UiResult {
    let t = load(&ctx, &id).await?;
    let updated = match ops::tokens::paste_client_secrets(&ctx, &s.actor(), t.id, &f.pasted).await {
        Ok(u) => u,
        Err(ops::Error::Invalid(e)) => {
            let p = edit_page(
                &ctx,
                &s,
                &t,
                EditState {
                    paste_error: e,
                    ..EditState::default()
                },
            )
            .await?;
            return page_with(StatusCode::UNPROCESSABLE_ENTITY, &p);
        }
        Err(e) => return Err(e.into()),
    };
    Ok(see_other(&format!(
        "/tokens/{}/edit?done=filled",
        updated.id
    )))
}

#[derive(Template)]
#[template(path = "authorize.html")]
struct AuthorizePage {
    l: Layout,
    name: String,
    url: String,
}

/// Starts the sign-in, bound to this session: the callback must come back with this session's
/// cookie. ui.js asks for JSON and sends the popup to the URL; without script, a page with the
/// link. (A POST, not a GET: starting an attempt writes a row.)
pub async fn authorize(
    State(ctx): State<AppContext>,
    Extension(s): Extension<AdminSession>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> UiResult {
    let t = load(&ctx, &id).await?;
    let wants_json = headers
        .get(axum::http::header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("application/json"));
    match grant::start(&ctx, &t, &s.actor(), Some(s.session_hash.clone())).await {
        Ok(grant::Started::Redirect { url, .. }) if wants_json => {
            Ok(Json(serde_json::json!({"url": url})).into_response())
        }
        Ok(grant::Started::Redirect { url, .. }) => page(&AuthorizePage {
            l: Layout::new(&s, "tokens", format!("Sign in for {}", t.name)),
            name: t.name.to_string(),
            url,
        }),
        // No sign-in: the token holds an access token now.
        Ok(grant::Started::Ready(token)) if wants_json => Ok(Json(
            serde_json::json!({"ready": true, "message": format!("token {} holds an access token now", token.name)}),
        )
        .into_response()),
        Ok(grant::Started::Ready(token)) => {
            Ok(see_other(&format!("/tokens/{}", token.id)))
        }
        // A device sign-in started: its page shows the code and the result.
        Ok(grant::Started::Device(_)) if wants_json => Ok(Json(
            serde_json::json!({"location": format!("/tokens/{}/device", t.id)}),
        )
        .into_response()),
        Ok(grant::Started::Device(_)) => Ok(see_other(&format!("/tokens/{}/device", t.id))),
        Err(e) if wants_json => {
            let message = e.to_string();
            Ok((
                ApiError::from(e).status(),
                Json(serde_json::json!({"error": message})),
            )
                .into_response())
        }
        // A refusal the admin can act on (Snowflake refused the key-pair JWT: the SQL was not
        // run; the provider refused the client's credentials): the token's form, which holds
        // what to fix, with the message on it.
        Err(
            e @ (ops::Error::Invalid(_)
            | ops::Error::TokenUnusable { .. }
            | ops::Error::ProviderUnavailable { .. }),
        ) => {
            let error = sentence(&e.to_string());
            let status = ApiError::from(e).status();
            let p = edit_page(
                &ctx,
                &s,
                &t,
                EditState {
                    error,
                    ..EditState::default()
                },
            )
            .await?;
            page_with(status, &p)
        }
        Err(e) => Err(e.into()),
    }
}

/// A device sign-in as the page shows it.
struct DeviceFlowShown {
    status: &'static str,
    user_code: String,
    verification_uri: String,
    /// Where the button goes: the page with the code filled in when the provider gives one.
    link: String,
    expires_at: String,
    error: String,
    done: bool,
}

impl From<grant::device::DeviceFlow> for DeviceFlowShown {
    fn from(f: grant::device::DeviceFlow) -> Self {
        Self {
            status: f.status.as_str(),
            link: f
                .verification_uri_complete
                .clone()
                .unwrap_or_else(|| f.verification_uri.clone()),
            user_code: f.user_code,
            verification_uri: f.verification_uri,
            expires_at: view::fmt_time(Some(f.expires_at)),
            error: f.error.unwrap_or_default(),
            done: f.status != tokenwarden_domain::DeviceFlowStatus::Pending,
        }
    }
}

#[derive(Template)]
#[template(path = "token_device.html")]
struct DevicePage {
    l: Layout,
    id: String,
    name: String,
    flow: Option<DeviceFlowShown>,
}

#[derive(Template)]
#[template(path = "partials/device_status.html")]
struct DeviceStatusPartial {
    id: String,
    flow: Option<DeviceFlowShown>,
}

/// Starts a device sign-in (RFC 8628) and shows its page (post/redirect/get).
pub async fn device_start(
    State(ctx): State<AppContext>,
    Extension(s): Extension<AdminSession>,
    Path(id): Path<String>,
) -> UiResult {
    let t = load(&ctx, &id).await?;
    grant::device::start(&ctx, &t, &s.actor()).await?;
    Ok(see_other(&format!("/tokens/{}/device", t.id)))
}

/// The device sign-in page: the code, large, with a copy button and the provider's link; the
/// result appears without a reload (htmx polls the status partial until the flow ends).
pub async fn device_page(
    State(ctx): State<AppContext>,
    Extension(s): Extension<AdminSession>,
    Path(id): Path<String>,
) -> UiResult {
    let t = load(&ctx, &id).await?;
    let flow = grant::device::status(&ctx, t.id).await?.map(Into::into);
    page(&DevicePage {
        l: Layout::new(&s, "tokens", format!("Sign in with a code for {}", t.name)),
        id: t.id.to_string(),
        name: t.name.to_string(),
        flow,
    })
}

/// The status box of the device sign-in page (polled by htmx while pending).
pub async fn device_status(State(ctx): State<AppContext>, Path(id): Path<String>) -> UiResult {
    let t = load(&ctx, &id).await?;
    let flow = grant::device::status(&ctx, t.id).await?.map(Into::into);
    page(&DeviceStatusPartial {
        id: t.id.to_string(),
        flow,
    })
}

#[derive(Template)]
#[template(path = "partials/result.html")]
pub struct ResultPartial {
    pub ok: bool,
    pub title: String,
    pub message: String,
}

/// Test connection: for Snowflake `SELECT CURRENT_USER()`, else the provider's probe URL.
pub async fn test(
    State(ctx): State<AppContext>,
    Extension(s): Extension<AdminSession>,
    Path(id): Path<String>,
) -> UiResult {
    let t = load(&ctx, &id).await?;
    let (ok, message) = run_test(&ctx, &t, &s.actor()).await;
    page(&ResultPartial {
        ok,
        title: if ok {
            "Connection works".into()
        } else {
            "Connection failed".into()
        },
        message,
    })
}

async fn run_test(ctx: &AppContext, t: &TokenRecord, actor: &str) -> (bool, String) {
    if t.status == TokenStatus::NotAuthorized {
        return (
            false,
            "Not authorized yet: click “Get OAuth 2.0 Access Token” first.".into(),
        );
    }
    grant::test_connection(ctx, t, actor).await
}

pub async fn delete(
    State(ctx): State<AppContext>,
    Extension(s): Extension<AdminSession>,
    Path(id): Path<String>,
) -> UiResult {
    let t = load(&ctx, &id).await?;
    let t = ops::tokens::delete(&ctx, &s.actor(), t.id).await?;
    Ok(see_other(&match t.app_id {
        Some(a) => format!("/apps/{a}"),
        None => "/tokens".into(),
    }))
}

/// Rows of an app's own tokens, for the app page.
pub fn rows_for(ctx: &AppContext, tokens: &[TokenRecord], apps: &[AppRecord]) -> Vec<TokenRow> {
    tokens
        .iter()
        .map(|t| view::token_row(ctx, t, apps))
        .collect()
}

/// A core message as a sentence for the page: capitalised, with a full stop.
pub(super) fn sentence(m: &str) -> String {
    let mut c = m.chars();
    let mut out: String = match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => String::new(),
    };
    if !out.ends_with('.') {
        out.push('.');
    }
    out
}

// --- renaming, clearing the second secret (issue 11 item 9) -------------------------------

#[derive(Template)]
#[template(path = "token_rename.html")]
struct RenamePage {
    l: Layout,
    id: String,
    name: String,
    app: Option<(String, String)>,
    /// Apps that fetch the token by its current name: (id, name).
    users: Vec<(String, String)>,
    new_name: String,
    error: String,
}

async fn rename_page(
    ctx: &AppContext,
    s: &AdminSession,
    t: &TokenRecord,
    new_name: String,
    error: String,
) -> UiResult<RenamePage> {
    let app = owner(ctx, t).await?;
    let users = ops::lifecycle::dependants(ctx, t)
        .await?
        .into_iter()
        .map(|a| (a.id.to_string(), a.name.to_string()))
        .collect();
    Ok(RenamePage {
        l: Layout::new(
            s,
            if app.is_some() { "apps" } else { "tokens" },
            format!("Rename {}", t.name),
        ),
        id: t.id.to_string(),
        name: t.name.to_string(),
        app: app.map(|a| (a.id.to_string(), a.name.to_string())),
        users,
        new_name,
        error,
    })
}

/// The rename form: names the apps that fetch the token by its current name, which move with
/// it (they must then fetch it by the new name).
pub async fn rename_form(
    State(ctx): State<AppContext>,
    Extension(s): Extension<AdminSession>,
    Path(id): Path<String>,
) -> UiResult {
    let t = load(&ctx, &id).await?;
    let p = rename_page(&ctx, &s, &t, t.name.to_string(), String::new()).await?;
    page(&p)
}

#[derive(Deserialize)]
pub struct RenameForm {
    #[serde(default)]
    name: String,
}

/// Renames the token; the apps the form listed move to the new name with it.
pub async fn rename(
    State(ctx): State<AppContext>,
    Extension(s): Extension<AdminSession>,
    Path(id): Path<String>,
    Form(f): Form<RenameForm>,
) -> UiResult {
    let t = load(&ctx, &id).await?;
    let wanted = f.name.trim().to_owned();
    let error = match TokenName::parse(&wanted) {
        Err(e) => format!("Name: {e}"),
        Ok(name) => {
            let changes = TokenChanges {
                name: Some(name),
                rebind_apps: true,
                ..TokenChanges::default()
            };
            match ops::tokens::update(&ctx, &s.actor(), t.id, changes).await {
                Ok(t) => return Ok(see_other(&format!("/tokens/{}", t.id))),
                Err(ops::Error::Invalid(m) | ops::Error::Conflict(m)) => sentence(&m),
                Err(e) => return Err(e.into()),
            }
        }
    };
    let p = rename_page(&ctx, &s, &t, wanted, error).await?;
    page_with(StatusCode::UNPROCESSABLE_ENTITY, &p)
}

/// Empties the second client-secret slot (after a rotation, once the provider no longer
/// accepts the old secret); the first stays.
pub async fn clear_secret_2(
    State(ctx): State<AppContext>,
    Extension(s): Extension<AdminSession>,
    Path(id): Path<String>,
) -> UiResult {
    let t = load(&ctx, &id).await?;
    let changes = TokenChanges {
        client_secret_2: Some(None),
        ..TokenChanges::default()
    };
    let t = ops::tokens::update(&ctx, &s.actor(), t.id, changes).await?;
    Ok(see_other(&format!("/tokens/{}/edit?done=cleared", t.id)))
}
