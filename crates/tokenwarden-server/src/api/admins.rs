//! Admins (who sign in to the web UI) and admin tokens (API credentials): list, add, reset a
//! password, remove; create (answered once) and revoke. The rules are `ops::admins`'.

use super::{ApiJson, CommonErrors, PageQuery, list_page};
use crate::AppContext;
use crate::auth::Admin;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::ops::{self, admins::Asker};
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use chrono::{DateTime, Utc};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use tokenwarden_domain::KeyLabel;
use tokenwarden_store::{AdminRecord, ApiKeyRecord};
use utoipa::ToSchema;

#[derive(Debug, Serialize, ToSchema)]
pub struct AdminView {
    id: String,
    username: String,
    created_at: DateTime<Utc>,
    last_login_at: Option<DateTime<Utc>>,
}

impl From<&AdminRecord> for AdminView {
    fn from(a: &AdminRecord) -> Self {
        Self {
            id: a.id.clone(),
            username: a.username.clone(),
            created_at: a.created_at,
            last_login_at: a.last_login_at,
        }
    }
}

list_page!(AdminList, AdminView);

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateAdmin {
    #[schema(schema_with = super::schema::admin_username)]
    username: String,
    #[schema(schema_with = super::schema::admin_password)]
    password: SecretString,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetPassword {
    #[schema(schema_with = super::schema::admin_password)]
    password: SecretString,
}

/// List the admins who sign in to the web UI, by username, one page at a time.
#[utoipa::path(get, path = "/api/v1/admins", tag = "admins", security(("bearer" = [])),
    params(PageQuery), responses((status = 200, body = AdminList), CommonErrors))]
pub async fn list_admins(
    State(ctx): State<AppContext>,
    _: Admin,
    Query(page): Query<PageQuery>,
) -> ApiResult<Json<AdminList>> {
    let page = ops::lists::admins(&ctx, &page.into()).await?;
    Ok(Json(page.map(|a| AdminView::from(&a)).into()))
}

/// Add an admin who signs in to the web UI (the password: at least 12 characters).
#[utoipa::path(post, path = "/api/v1/admins", tag = "admins", security(("bearer" = [])),
    request_body = CreateAdmin,
    responses((status = 201, body = AdminView), (status = 409, description = "`conflict`: the username is taken", body = ErrorBody), CommonErrors))]
pub async fn create_admin(
    State(ctx): State<AppContext>,
    Admin(who): Admin,
    ApiJson(req): ApiJson<CreateAdmin>,
) -> ApiResult<(StatusCode, Json<AdminView>)> {
    let admin = ops::admins::create_admin(&ctx, &who.actor(), &req.username, req.password).await?;
    Ok((StatusCode::CREATED, Json(AdminView::from(&admin))))
}

/// Get one admin, by id or username.
#[utoipa::path(get, path = "/api/v1/admins/{id}", tag = "admins", security(("bearer" = [])),
    params(("id" = String, Path, description = "admin id or username")),
    responses((status = 200, body = AdminView), (status = 404, body = ErrorBody), CommonErrors))]
pub async fn get_admin(
    State(ctx): State<AppContext>,
    _: Admin,
    Path(id): Path<String>,
) -> ApiResult<Json<AdminView>> {
    let admin = ops::admins::find_admin(&ctx, &id).await?;
    Ok(Json(AdminView::from(&admin)))
}

/// Remove an admin: they can no longer sign in, their sessions end at once. The last admin
/// cannot be removed (409 `conflict`): add another first.
#[utoipa::path(delete, path = "/api/v1/admins/{id}", tag = "admins", security(("bearer" = [])),
    params(("id" = String, Path, description = "admin id or username")),
    responses((status = 204, description = "removed"), (status = 404, body = ErrorBody),
        (status = 409, description = "`conflict`: the last admin", body = ErrorBody), CommonErrors))]
pub async fn delete_admin(
    State(ctx): State<AppContext>,
    Admin(who): Admin,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let actor = who.actor();
    ops::admins::remove_admin(&ctx, Asker::credential(&actor), &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Reset an admin's password (at least 12 characters); every session of that admin ends.
#[utoipa::path(put, path = "/api/v1/admins/{id}/password", tag = "admins", security(("bearer" = [])),
    params(("id" = String, Path, description = "admin id or username")), request_body = SetPassword,
    responses((status = 200, body = AdminView), (status = 404, body = ErrorBody), CommonErrors))]
pub async fn set_password(
    State(ctx): State<AppContext>,
    Admin(who): Admin,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<SetPassword>,
) -> ApiResult<Json<AdminView>> {
    let actor = who.actor();
    let admin =
        ops::admins::set_password(&ctx, Asker::credential(&actor), &id, req.password, None).await?;
    Ok(Json(AdminView::from(&admin)))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AdminTokenView {
    id: uuid::Uuid,
    label: String,
    created_at: DateTime<Utc>,
    /// When it was revoked; null while it works.
    revoked_at: Option<DateTime<Utc>>,
}

impl From<&ApiKeyRecord> for AdminTokenView {
    fn from(k: &ApiKeyRecord) -> Self {
        Self {
            id: k.id.0,
            label: k.label.to_string(),
            created_at: k.created_at,
            revoked_at: k.revoked_at,
        }
    }
}

list_page!(AdminTokenList, AdminTokenView);

#[derive(Debug, Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct CreateAdminToken {
    /// A label to tell tokens apart, e.g. "deploy pipeline" (default `api`).
    #[schema(schema_with = super::schema::optional_key_label)]
    label: Option<KeyLabel>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedAdminToken {
    id: uuid::Uuid,
    label: String,
    /// The admin token. Shown this once: only its hash is kept.
    admin_token: String,
    created_at: DateTime<Utc>,
}

/// List admin tokens (never the tokens themselves), oldest first, one page at a time.
#[utoipa::path(get, path = "/api/v1/admin-tokens", tag = "admins", security(("bearer" = [])),
    params(PageQuery), responses((status = 200, body = AdminTokenList), CommonErrors))]
pub async fn list_admin_tokens(
    State(ctx): State<AppContext>,
    _: Admin,
    Query(page): Query<PageQuery>,
) -> ApiResult<Json<AdminTokenList>> {
    let page = ops::lists::admin_tokens(&ctx, &page.into()).await?;
    Ok(Json(page.map(|k| AdminTokenView::from(&k)).into()))
}

/// Create an admin token; answers it once.
#[utoipa::path(post, path = "/api/v1/admin-tokens", tag = "admins", security(("bearer" = [])),
    request_body = CreateAdminToken,
    responses((status = 201, body = CreatedAdminToken), CommonErrors))]
pub async fn create_admin_token(
    State(ctx): State<AppContext>,
    Admin(who): Admin,
    body: axum::body::Bytes,
) -> ApiResult<(StatusCode, Json<CreatedAdminToken>)> {
    // The body is optional: an empty POST makes a token labelled `api`.
    let req: CreateAdminToken = if body.iter().all(u8::is_ascii_whitespace) {
        CreateAdminToken::default()
    } else {
        serde_json::from_slice(&body)
            .map_err(|e| ApiError::InvalidJson(format!("the request body is not valid: {e}")))?
    };
    let label = match req.label {
        Some(l) => l,
        None => KeyLabel::parse("api").map_err(ApiError::internal)?,
    };
    let key = ops::admins::create_admin_token(&ctx, &who.actor(), label).await?;
    Ok((
        StatusCode::CREATED,
        Json(CreatedAdminToken {
            id: key.record.id.0,
            label: key.record.label.to_string(),
            admin_token: key.text.expose_secret().to_owned(),
            created_at: key.record.created_at,
        }),
    ))
}

/// Get one admin token (never the token itself).
#[utoipa::path(get, path = "/api/v1/admin-tokens/{id}", tag = "admins", security(("bearer" = [])),
    params(("id" = String, Path, description = "admin token id")),
    responses((status = 200, body = AdminTokenView), (status = 404, body = ErrorBody), CommonErrors))]
pub async fn get_admin_token(
    State(ctx): State<AppContext>,
    _: Admin,
    Path(id): Path<String>,
) -> ApiResult<Json<AdminTokenView>> {
    let key = ops::admins::get_admin_token(&ctx, &id).await?;
    Ok(Json(AdminTokenView::from(&key)))
}

/// Revoke an admin token; it stops working at once (other instances within 10 s). The token
/// this request is made with cannot revoke itself (409 `conflict`): use another.
#[utoipa::path(delete, path = "/api/v1/admin-tokens/{id}", tag = "admins", security(("bearer" = [])),
    params(("id" = String, Path, description = "admin token id")),
    responses((status = 204, description = "revoked"), (status = 404, body = ErrorBody),
        (status = 409, description = "`conflict`: the token this request was made with", body = ErrorBody), CommonErrors))]
pub async fn revoke_admin_token(
    State(ctx): State<AppContext>,
    Admin(who): Admin,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> ApiResult<StatusCode> {
    // An unknown or app key id is "not found" here, as on every other path.
    ops::admins::get_admin_token(&ctx, &id).await?;
    let presented = crate::auth::presented_admin_key(&headers);
    ops::admins::revoke_admin_token(&ctx, &who.actor(), &id, presented).await?;
    Ok(StatusCode::NO_CONTENT)
}
