use super::{ApiJson, CommonErrors, PageQuery, list_page};
use crate::AppContext;
use crate::auth::Admin;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::ops::{self, tokens::NewToken, tokens::TokenChanges};
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use secrecy::SecretString;
use serde::{Deserialize, Deserializer, Serialize};
use std::collections::BTreeMap;
use tokenwarden_domain::{
    AppName, ClientAuthMethod, Grant, ProviderId, TokenId, TokenName, TokenStatus,
};
use tokenwarden_store::TokenRecord;
use utoipa::{IntoParams, ToSchema};

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateToken {
    #[schema(schema_with = super::schema::token_name)]
    name: TokenName,
    #[schema(schema_with = super::schema::provider_id)]
    provider: ProviderId,
    #[schema(schema_with = super::schema::owning_app)]
    app: Option<AppName>,
    /// Connection settings, e.g. `{"account": "xy12345.us-east-1", "role": "ANALYST"}`.
    #[serde(default)]
    settings: BTreeMap<String, String>,
    #[schema(schema_with = super::schema::client_id)]
    client_id: Option<String>,
    /// Write-only: never returned.
    #[schema(schema_with = super::schema::client_secret)]
    client_secret: Option<SecretString>,
    /// A second client secret, tried after the first (rotation without downtime). Write-only.
    #[schema(schema_with = super::schema::client_secret)]
    client_secret_2: Option<SecretString>,
    #[serde(default)]
    #[schema(schema_with = super::schema::grant)]
    grant: Grant,
    #[schema(schema_with = super::schema::client_auth)]
    client_auth: Option<ClientAuthMethod>,
    #[schema(schema_with = super::schema::client_secret_expires_at)]
    client_secret_expires_at: Option<DateTime<Utc>>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PatchToken {
    #[schema(schema_with = super::schema::optional_token_name)]
    name: Option<TokenName>,
    /// Replaces all connection settings.
    settings: Option<BTreeMap<String, String>>,
    #[schema(schema_with = super::schema::client_id)]
    client_id: Option<String>,
    /// Write-only.
    #[schema(schema_with = super::schema::client_secret)]
    client_secret: Option<SecretString>,
    /// Write-only; `null` clears the second slot.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(schema_with = super::schema::client_secret)]
    client_secret_2: Option<Option<SecretString>>,
    /// `null`: back to the provider's default.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(schema_with = super::schema::client_auth)]
    client_auth: Option<Option<ClientAuthMethod>>,
    /// `null` clears it. Replacing the client secret with a new expiry brings a token whose
    /// secret expired back.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(schema_with = super::schema::client_secret_expires_at)]
    client_secret_expires_at: Option<Option<DateTime<Utc>>>,
    /// If given, the change applies only if the token is still at this version (409
    /// `version_mismatch` if not); without it, the change applies to the current state.
    version: Option<i64>,
    /// With a new `name`: move the apps that use the token by its old name to the new one
    /// (they must then fetch it by the new name). Without it, renaming a token that apps use
    /// answers 409 `conflict` naming them.
    #[serde(default)]
    rebind_apps: bool,
}

/// Distinguishes a missing field (`None`) from an explicit `null` (`Some(None)`).
fn double_option<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TokenView {
    id: uuid::Uuid,
    name: String,
    provider: String,
    #[schema(schema_with = super::schema::grant)]
    grant: Grant,
    /// `global` or `app`.
    scope: &'static str,
    /// Owning app's name, for an app-level token.
    app: Option<String>,
    app_id: Option<uuid::Uuid>,
    settings: BTreeMap<String, String>,
    client_id: Option<String>,
    /// Whether a client secret is stored (its value is never returned).
    client_secret_set: bool,
    client_secret_2_set: bool,
    /// How the client authenticates at the token endpoint (the provider's default unless the
    /// token chose one).
    #[schema(value_type = String, example = "client_secret_basic")]
    client_auth: ClientAuthMethod,
    /// Whether the token chose its client authentication (else it follows the provider).
    client_auth_set: bool,
    #[serde(serialize_with = "tokenwarden_domain::clock::rfc3339_opt")]
    client_secret_expires_at: Option<DateTime<Utc>>,
    #[schema(value_type = String, example = "not_authorized")]
    status: TokenStatus,
    status_reason: Option<String>,
    /// Register this with the provider.
    redirect_uri: String,
    #[serde(serialize_with = "tokenwarden_domain::clock::rfc3339_opt")]
    access_token_expires_at: Option<DateTime<Utc>>,
    #[serde(serialize_with = "tokenwarden_domain::clock::rfc3339_opt")]
    refresh_token_expires_at: Option<DateTime<Utc>>,
    #[serde(serialize_with = "tokenwarden_domain::clock::rfc3339_opt")]
    authorized_at: Option<DateTime<Utc>>,
    scopes: Option<String>,
    version: i64,
    #[serde(serialize_with = "tokenwarden_domain::clock::rfc3339")]
    created_at: DateTime<Utc>,
    #[serde(serialize_with = "tokenwarden_domain::clock::rfc3339")]
    updated_at: DateTime<Utc>,
}

pub(crate) async fn view(ctx: &AppContext, t: &TokenRecord) -> ApiResult<TokenView> {
    let app = match t.app_id {
        Some(id) => Some(ctx.store.get_app(id).await?.name.to_string()),
        None => None,
    };
    Ok(TokenView {
        id: t.id.0,
        name: t.name.to_string(),
        provider: t.provider.to_string(),
        grant: t.grant,
        scope: if t.app_id.is_some() { "app" } else { "global" },
        app,
        app_id: t.app_id.map(|a| a.0),
        settings: t.settings.clone(),
        client_id: t.client_id.clone(),
        client_secret_set: t.client_secret.is_some(),
        client_secret_2_set: t.client_secret_2.is_some(),
        client_auth: ops::grant::client_auth(ctx, t),
        client_auth_set: t.client_auth.is_some(),
        client_secret_expires_at: t.client_secret_expires_at,
        status: t.status,
        status_reason: t.status_reason.clone(),
        redirect_uri: ctx.settings.redirect_uri(),
        access_token_expires_at: t.material.access_expires_at,
        refresh_token_expires_at: t.material.refresh_expires_at,
        authorized_at: t.material.issued_at,
        scopes: t.material.scopes.clone(),
        version: t.version,
        created_at: t.created_at,
        updated_at: t.updated_at,
    })
}

pub(crate) async fn load(ctx: &AppContext, id: &str) -> ApiResult<TokenRecord> {
    Ok(ops::tokens::get_by_text(ctx, id).await?)
}

fn token_id(id: &str) -> ApiResult<TokenId> {
    TokenId::parse(id).ok_or_else(|| ApiError::NotFound(format!("token {id:?}")))
}

list_page!(TokenList, TokenView);

/// What the tokens list is narrowed to; each left out matches everything.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct TokenQuery {
    /// Tokens whose name contains this text (ASCII case-insensitive).
    name: Option<String>,
    /// Tokens of this provider, e.g. `snowflake`.
    provider: Option<String>,
    /// Tokens in this status, e.g. `healthy`, `needs_reauthorization`.
    status: Option<String>,
}

/// List tokens, global and app-level, by name, one page at a time.
#[utoipa::path(get, path = "/api/v1/tokens", tag = "tokens", security(("bearer" = [])),
    params(TokenQuery, PageQuery), responses((status = 200, body = TokenList), CommonErrors))]
pub async fn list_tokens(
    State(ctx): State<AppContext>,
    _: Admin,
    Query(q): Query<TokenQuery>,
    Query(page): Query<PageQuery>,
) -> ApiResult<Json<TokenList>> {
    let filter = ops::lists::token_filter(
        q.name.as_deref(),
        q.provider.as_deref(),
        q.status.as_deref(),
    )?;
    let page = ops::lists::tokens(&ctx, &filter, &page.into()).await?;
    let mut items = Vec::with_capacity(page.items.len());
    for t in &page.items {
        items.push(view(&ctx, t).await?);
    }
    Ok(Json(TokenList {
        items,
        next_cursor: page.next_cursor,
    }))
}

/// Create a token. Client secrets are stored encrypted and never returned.
#[utoipa::path(post, path = "/api/v1/tokens", tag = "tokens", security(("bearer" = [])),
    request_body = CreateToken,
    responses((status = 201, body = TokenView), (status = 409, description = "`conflict`: the name is taken", body = ErrorBody), CommonErrors))]
pub async fn create_token(
    State(ctx): State<AppContext>,
    Admin(who): Admin,
    ApiJson(req): ApiJson<CreateToken>,
) -> ApiResult<(StatusCode, Json<TokenView>)> {
    let token = ops::tokens::create(
        &ctx,
        &who.actor(),
        NewToken {
            name: req.name,
            provider: req.provider,
            app: req.app,
            settings: req.settings,
            client_id: req.client_id,
            client_secret: req.client_secret,
            client_secret_2: req.client_secret_2,
            grant: req.grant,
            client_auth: req.client_auth,
            client_secret_expires_at: req.client_secret_expires_at,
        },
    )
    .await?;
    Ok((StatusCode::CREATED, Json(view(&ctx, &token).await?)))
}

/// Get one token. Never includes secrets.
#[utoipa::path(get, path = "/api/v1/tokens/{id}", tag = "tokens", security(("bearer" = [])),
    params(("id" = String, Path, description = "token id")),
    responses((status = 200, body = TokenView), (status = 404, body = ErrorBody), CommonErrors))]
pub async fn get_token(
    State(ctx): State<AppContext>,
    _: Admin,
    Path(id): Path<String>,
) -> ApiResult<Json<TokenView>> {
    let t = load(&ctx, &id).await?;
    Ok(Json(view(&ctx, &t).await?))
}

/// Change a token's name, settings, client id or client secrets (`client_secret_2: null`
/// clears the second slot). Renaming a token that apps use by name needs `rebind_apps`.
#[utoipa::path(patch, path = "/api/v1/tokens/{id}", tag = "tokens", security(("bearer" = [])),
    params(("id" = String, Path, description = "token id")), request_body = PatchToken,
    responses((status = 200, body = TokenView), (status = 404, body = ErrorBody),
        (status = 409, description = "`conflict`: the name is taken, or apps use the token by its old name and `rebind_apps` was not sent; `version_mismatch`: the `version` sent is stale (never without one)", body = ErrorBody),
        CommonErrors))]
pub async fn patch_token(
    State(ctx): State<AppContext>,
    Admin(who): Admin,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<PatchToken>,
) -> ApiResult<Json<TokenView>> {
    let updated = ops::tokens::update(
        &ctx,
        &who.actor(),
        token_id(&id)?,
        TokenChanges {
            name: req.name,
            settings: req.settings,
            client_id: req.client_id.map(Some),
            client_secret: req.client_secret,
            client_secret_2: req.client_secret_2,
            client_auth: req.client_auth,
            client_secret_expires_at: req.client_secret_expires_at,
            version: req.version,
            rebind_apps: req.rebind_apps,
        },
    )
    .await?;
    Ok(Json(view(&ctx, &updated).await?))
}

/// Delete a token.
#[utoipa::path(delete, path = "/api/v1/tokens/{id}", tag = "tokens", security(("bearer" = [])),
    params(("id" = String, Path, description = "token id")),
    responses((status = 204, description = "deleted"), (status = 404, body = ErrorBody), CommonErrors))]
pub async fn delete_token(
    State(ctx): State<AppContext>,
    Admin(who): Admin,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    ops::tokens::delete(&ctx, &who.actor(), token_id(&id)?).await?;
    Ok(StatusCode::NO_CONTENT)
}
