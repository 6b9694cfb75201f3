use super::apps::find_app;
use super::{ApiJson, CommonErrors};
use crate::AppContext;
use crate::audit::{self, Object};
use crate::auth::Admin;
use crate::error::{ApiError, ApiResult, ErrorBody};
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Deserializer, Serialize};
use std::collections::BTreeMap;
use tokenwarden_domain::{AppName, ProviderId, TokenId, TokenName, TokenStatus};
use tokenwarden_store::{Sealed, StoreError, TokenMaterial, TokenRecord};
use utoipa::ToSchema;

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateToken {
    /// The name apps fetch the token by, e.g. `snowflake-sales`.
    #[schema(value_type = String, example = "snowflake-sales")]
    name: TokenName,
    /// Provider id from `GET /api/v1/providers`: snowflake, microsoft, google, salesforce,
    /// github, oauth2, or one of your own templates.
    #[schema(value_type = String, example = "snowflake")]
    provider: ProviderId,
    /// Owning app's name: present = an app-level token, absent = a global token.
    #[schema(value_type = Option<String>, example = "sales-invoice")]
    app: Option<AppName>,
    /// Connection settings, e.g. `{"account": "xy12345.us-east-1", "role": "ANALYST"}`.
    #[serde(default)]
    settings: BTreeMap<String, String>,
    client_id: Option<String>,
    /// Write-only: never returned.
    #[schema(value_type = Option<String>, write_only)]
    client_secret: Option<SecretString>,
    /// A second client secret, tried after the first (rotation without downtime). Write-only.
    #[schema(value_type = Option<String>, write_only)]
    client_secret_2: Option<SecretString>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PatchToken {
    #[schema(value_type = Option<String>)]
    name: Option<TokenName>,
    /// Replaces all connection settings.
    settings: Option<BTreeMap<String, String>>,
    client_id: Option<String>,
    /// Write-only.
    #[schema(value_type = Option<String>, write_only)]
    client_secret: Option<SecretString>,
    /// Write-only; `null` clears the second slot.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>, write_only)]
    client_secret_2: Option<Option<SecretString>>,
    /// If given, the change applies only if the token is still at this version.
    version: Option<i64>,
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
    #[schema(value_type = String, example = "not_authorized")]
    status: TokenStatus,
    status_reason: Option<String>,
    /// Register this with the provider.
    redirect_uri: String,
    access_token_expires_at: Option<DateTime<Utc>>,
    refresh_token_expires_at: Option<DateTime<Utc>>,
    authorized_at: Option<DateTime<Utc>>,
    scopes: Option<String>,
    version: i64,
    created_at: DateTime<Utc>,
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
        scope: if t.app_id.is_some() { "app" } else { "global" },
        app,
        app_id: t.app_id.map(|a| a.0),
        settings: t.settings.clone(),
        client_id: t.client_id.clone(),
        client_secret_set: t.client_secret.is_some(),
        client_secret_2_set: t.client_secret_2.is_some(),
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

fn check_provider_settings(
    ctx: &AppContext,
    p: &ProviderId,
    settings: &BTreeMap<String, String>,
) -> ApiResult<()> {
    ctx.catalog
        .check_settings(p.as_str(), settings)
        .map_err(|e| ApiError::InvalidRequest(e.to_string()))
}

fn check_settings(s: &BTreeMap<String, String>) -> ApiResult<()> {
    for (k, v) in s {
        let key_ok = !k.is_empty()
            && k.len() <= 64
            && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !key_ok {
            return Err(ApiError::InvalidRequest(format!(
                "setting name {k:?} must be 1-64 letters, digits or '_'"
            )));
        }
        if v.len() > 2048 || v.chars().any(char::is_control) {
            return Err(ApiError::InvalidRequest(format!(
                "setting {k:?} must be at most 2048 characters without control characters"
            )));
        }
    }
    Ok(())
}

fn check_client_id(id: &str) -> ApiResult<()> {
    if id.trim().is_empty() || id.len() > 512 || id.chars().any(char::is_control) {
        return Err(ApiError::InvalidRequest(
            "client_id must be 1-512 characters without control characters".into(),
        ));
    }
    Ok(())
}

/// Checks a client secret without ever putting it in the message.
fn check_secret(field: &str, s: &SecretString) -> ApiResult<()> {
    let v = s.expose_secret();
    if v.trim().is_empty() || v.len() > 4096 || v.chars().any(char::is_control) {
        return Err(ApiError::InvalidRequest(format!(
            "{field} must be 1-4096 characters without control characters"
        )));
    }
    Ok(())
}

fn seal(ctx: &AppContext, id: TokenId, column: &str, s: &SecretString) -> Sealed {
    ctx.vault.seal(s, "tokens", column, &id.to_string())
}

fn parse_id(id: &str) -> ApiResult<TokenId> {
    TokenId::parse(id).ok_or_else(|| ApiError::NotFound(format!("token {id:?}")))
}

pub(crate) async fn load(ctx: &AppContext, id: &str) -> ApiResult<TokenRecord> {
    ctx.store
        .get_token(parse_id(id)?)
        .await
        .map_err(|e| match e {
            StoreError::NotFound(_) => ApiError::NotFound(format!("token {id:?}")),
            other => other.into(),
        })
}

/// List tokens, global and app-level.
#[utoipa::path(get, path = "/api/v1/tokens", tag = "tokens", security(("bearer" = [])),
    responses((status = 200, body = Vec<TokenView>), CommonErrors))]
pub async fn list_tokens(
    State(ctx): State<AppContext>,
    _: Admin,
) -> ApiResult<Json<Vec<TokenView>>> {
    let mut out = Vec::new();
    for t in ctx.store.list_tokens().await? {
        out.push(view(&ctx, &t).await?);
    }
    Ok(Json(out))
}

/// Create a token. Client secrets are stored encrypted and never returned.
#[utoipa::path(post, path = "/api/v1/tokens", tag = "tokens", security(("bearer" = [])),
    request_body = CreateToken,
    responses((status = 201, body = TokenView), (status = 409, body = ErrorBody), CommonErrors))]
pub async fn create_token(
    State(ctx): State<AppContext>,
    Admin(who): Admin,
    ApiJson(req): ApiJson<CreateToken>,
) -> ApiResult<(StatusCode, Json<TokenView>)> {
    check_settings(&req.settings)?;
    check_provider_settings(&ctx, &req.provider, &req.settings)?;
    if let Some(id) = &req.client_id {
        check_client_id(id)?;
    }
    for (field, s) in [
        ("client_secret", &req.client_secret),
        ("client_secret_2", &req.client_secret_2),
    ] {
        if let Some(s) = s {
            check_secret(field, s)?;
        }
    }
    let app_id = match &req.app {
        Some(name) => Some(
            find_app(&ctx, name.as_str())
                .await
                .map_err(|e| match e {
                    ApiError::NotFound(_) => ApiError::InvalidRequest(format!(
                        "no app named {name}; create it first with POST /api/v1/apps"
                    )),
                    other => other,
                })?
                .id,
        ),
        None => None,
    };
    let now = ctx.clock.now();
    let id = TokenId(uuid::Uuid::new_v4());
    let token = TokenRecord {
        id,
        name: req.name,
        provider: req.provider,
        app_id,
        settings: req.settings,
        client_id: req.client_id,
        client_secret: req
            .client_secret
            .as_ref()
            .map(|s| seal(&ctx, id, "client_secret", s)),
        client_secret_2: req
            .client_secret_2
            .as_ref()
            .map(|s| seal(&ctx, id, "client_secret_2", s)),
        material: TokenMaterial::default(),
        status: TokenStatus::NotAuthorized,
        status_reason: None,
        version: 1,
        created_at: now,
        updated_at: now,
    };
    ctx.store.create_token(&token).await?;
    audit::record(
        &ctx,
        &who.actor(),
        "token.create",
        Object::new("token", token.id, &token.name),
        "ok",
        serde_json::json!({
            "provider": token.provider,
            "app": req.app,
            "client_secret_set": token.client_secret.is_some(),
        }),
    )
    .await;
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

/// Change a token's name, settings, client id or client secrets.
#[utoipa::path(patch, path = "/api/v1/tokens/{id}", tag = "tokens", security(("bearer" = [])),
    params(("id" = String, Path, description = "token id")), request_body = PatchToken,
    responses((status = 200, body = TokenView), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), CommonErrors))]
pub async fn patch_token(
    State(ctx): State<AppContext>,
    Admin(who): Admin,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<PatchToken>,
) -> ApiResult<Json<TokenView>> {
    if let Some(s) = &req.settings {
        check_settings(s)?;
    }
    if let Some(c) = &req.client_id {
        check_client_id(c)?;
    }
    if let Some(s) = &req.client_secret {
        check_secret("client_secret", s)?;
    }
    if let Some(Some(s)) = &req.client_secret_2 {
        check_secret("client_secret_2", s)?;
    }
    let mut t = load(&ctx, &id).await?;
    if let Some(s) = &req.settings {
        check_provider_settings(&ctx, &t.provider, s)?;
    }
    if let Some(v) = req.version
        && v != t.version
    {
        return Err(StoreError::VersionMismatch("token").into());
    }
    let before = t.clone();
    let mut changed = Vec::new();
    if let Some(name) = req.name {
        t.name = name;
        changed.push("name");
    }
    if let Some(s) = req.settings {
        t.settings = s;
        changed.push("settings");
    }
    if let Some(c) = req.client_id {
        t.client_id = Some(c);
        changed.push("client_id");
    }
    if let Some(s) = &req.client_secret {
        t.client_secret = Some(seal(&ctx, t.id, "client_secret", s));
        changed.push("client_secret");
    }
    if let Some(s2) = &req.client_secret_2 {
        t.client_secret_2 = s2.as_ref().map(|s| seal(&ctx, t.id, "client_secret_2", s));
        changed.push("client_secret_2");
    }
    if crate::grant::guard_destination_change(&ctx, &before, &mut t, req.client_secret.is_some())
        .map_err(ApiError::InvalidRequest)?
    {
        changed.push("destination");
    }
    // The store checks the version we read: a refresh that committed in between wins, and this
    // edit is refused rather than reverting its token material (R11).
    let updated = ctx.store.update_token(&t, ctx.clock.now()).await?;
    ctx.cache.clear_served();
    audit::record(
        &ctx,
        &who.actor(),
        "token.update",
        Object::new("token", updated.id, &updated.name),
        "ok",
        serde_json::json!({ "changed": changed }),
    )
    .await;
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
    let t = load(&ctx, &id).await?;
    ctx.store.delete_token(t.id).await?;
    ctx.cache.clear_served();
    audit::record(
        &ctx,
        &who.actor(),
        "token.delete",
        Object::new("token", t.id, &t.name),
        "ok",
        serde_json::json!({}),
    )
    .await;
    Ok(StatusCode::NO_CONTENT)
}
