use super::{ApiJson, CommonErrors, PageQuery, list_page};
use crate::AppContext;
use crate::auth::{Admin, Principal};
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::ops::{self, apps::AppChanges, apps::NewApp};
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};
use tokenwarden_domain::{AppName, KeyLabel, TokenName};
use tokenwarden_store::AppRecord;
use utoipa::ToSchema;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateApp {
    #[schema(schema_with = super::schema::app_name)]
    name: AppName,
    /// Names of the tokens the app uses (its own app-level token of that name, else the global
    /// one). They need not exist yet.
    #[serde(default)]
    #[schema(schema_with = super::schema::token_names)]
    tokens: Vec<TokenName>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PatchApp {
    #[schema(schema_with = super::schema::optional_app_name)]
    name: Option<AppName>,
    #[schema(schema_with = super::schema::optional_token_names)]
    tokens: Option<Vec<TokenName>>,
    /// If given, the change applies only if the app is still at this version.
    version: Option<i64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AppView {
    id: uuid::Uuid,
    name: String,
    /// `running` or `stopped`.
    state: String,
    /// Why the app is stopped, e.g. "waiting for token snowflake-sales".
    stop_reason: Option<String>,
    tokens: Vec<String>,
    version: i64,
    #[serde(serialize_with = "tokenwarden_domain::clock::rfc3339")]
    created_at: DateTime<Utc>,
    #[serde(serialize_with = "tokenwarden_domain::clock::rfc3339")]
    updated_at: DateTime<Utc>,
}

impl From<&AppRecord> for AppView {
    fn from(a: &AppRecord) -> Self {
        Self {
            id: a.id.0,
            name: a.name.to_string(),
            state: a.state.to_string(),
            stop_reason: a.stop_reason.as_ref().map(ToString::to_string),
            tokens: a.tokens.iter().map(ToString::to_string).collect(),
            version: a.version,
            created_at: a.created_at,
            updated_at: a.updated_at,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedApp {
    id: uuid::Uuid,
    name: String,
    state: String,
    tokens: Vec<String>,
    /// The app's API key. Shown this once: only its hash is kept.
    api_key: String,
    api_key_id: uuid::Uuid,
    #[serde(serialize_with = "tokenwarden_domain::clock::rfc3339")]
    created_at: DateTime<Utc>,
}

/// Finds an app by id or by name.
pub(crate) async fn find_app(ctx: &AppContext, key: &str) -> ApiResult<AppRecord> {
    Ok(ops::apps::find(ctx, key).await?)
}

list_page!(AppList, AppView);

/// List apps by name, one page at a time.
#[utoipa::path(get, path = "/api/v1/apps", tag = "apps", security(("bearer" = [])),
    params(PageQuery), responses((status = 200, body = AppList), CommonErrors))]
pub async fn list_apps(
    State(ctx): State<AppContext>,
    _: Admin,
    Query(page): Query<PageQuery>,
) -> ApiResult<Json<AppList>> {
    let page = ops::lists::apps(&ctx, &page.into()).await?;
    Ok(Json(page.map(|a| AppView::from(&a)).into()))
}

/// Create an app; answers its API key once.
#[utoipa::path(post, path = "/api/v1/apps", tag = "apps", security(("bearer" = [])),
    request_body = CreateApp,
    responses((status = 201, body = CreatedApp), (status = 409, description = "name taken", body = ErrorBody), CommonErrors))]
pub async fn create_app(
    State(ctx): State<AppContext>,
    Admin(who): Admin,
    ApiJson(req): ApiJson<CreateApp>,
) -> ApiResult<(StatusCode, Json<CreatedApp>)> {
    let (app, key) = ops::apps::create(
        &ctx,
        &who.actor(),
        NewApp {
            name: req.name,
            tokens: req.tokens,
        },
    )
    .await?;
    let now = app.created_at;
    Ok((
        StatusCode::CREATED,
        Json(CreatedApp {
            id: app.id.0,
            name: app.name.to_string(),
            state: app.state.to_string(),
            tokens: app.tokens.iter().map(ToString::to_string).collect(),
            api_key: key.text.expose_secret().to_owned(),
            api_key_id: key.record.id.0,
            created_at: now,
        }),
    ))
}

/// Get one app, by id or name. An app's own key may read its own app.
#[utoipa::path(get, path = "/api/v1/apps/{id}", tag = "apps", security(("bearer" = [])),
    params(("id" = String, Path, description = "app id or name")),
    responses((status = 200, body = AppView), (status = 404, body = ErrorBody), CommonErrors))]
pub async fn get_app(
    State(ctx): State<AppContext>,
    who: Principal,
    Path(id): Path<String>,
) -> ApiResult<Json<AppView>> {
    let app = find_app(&ctx, &id).await?;
    if let Principal::App { app_id, .. } = who
        && app_id != app.id
    {
        // R26: another app's existence is not revealed.
        return Err(ApiError::NotFound(format!("app {id:?}")));
    }
    Ok(Json(AppView::from(&app)))
}

/// Rename an app or change the tokens it uses.
#[utoipa::path(patch, path = "/api/v1/apps/{id}", tag = "apps", security(("bearer" = [])),
    params(("id" = String, Path, description = "app id or name")), request_body = PatchApp,
    responses((status = 200, body = AppView), (status = 404, body = ErrorBody),
        (status = 409, description = "`conflict`: the name is taken; `version_mismatch`: the `version` sent is stale (never without one)", body = ErrorBody),
        CommonErrors))]
pub async fn patch_app(
    State(ctx): State<AppContext>,
    Admin(who): Admin,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<PatchApp>,
) -> ApiResult<Json<AppView>> {
    let app = find_app(&ctx, &id).await?;
    let updated = ops::apps::update(
        &ctx,
        &who.actor(),
        app.id,
        AppChanges {
            name: req.name,
            tokens: req.tokens,
            version: req.version,
        },
    )
    .await?;
    Ok(Json(AppView::from(&updated)))
}

/// Delete an app, its app-level tokens and its API keys.
#[utoipa::path(delete, path = "/api/v1/apps/{id}", tag = "apps", security(("bearer" = [])),
    params(("id" = String, Path, description = "app id or name")),
    responses((status = 204, description = "deleted"), (status = 404, body = ErrorBody), CommonErrors))]
pub async fn delete_app(
    State(ctx): State<AppContext>,
    Admin(who): Admin,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let app = find_app(&ctx, &id).await?;
    ops::apps::delete(&ctx, &who.actor(), app.id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct CreateKey {
    /// A label to tell keys apart, e.g. "production".
    #[schema(schema_with = super::schema::optional_key_label)]
    label: Option<KeyLabel>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct KeyView {
    id: uuid::Uuid,
    label: String,
    #[serde(serialize_with = "tokenwarden_domain::clock::rfc3339")]
    created_at: DateTime<Utc>,
    #[serde(serialize_with = "tokenwarden_domain::clock::rfc3339_opt")]
    revoked_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedKey {
    id: uuid::Uuid,
    label: String,
    /// The key. Shown this once: only its hash is kept.
    api_key: String,
    #[serde(serialize_with = "tokenwarden_domain::clock::rfc3339")]
    created_at: DateTime<Utc>,
}

/// List an app's API keys (never the keys themselves).
#[utoipa::path(get, path = "/api/v1/apps/{id}/keys", tag = "apps", security(("bearer" = [])),
    params(("id" = String, Path, description = "app id or name"), PageQuery),
    responses((status = 200, body = KeyList), (status = 404, body = ErrorBody), CommonErrors))]
pub async fn list_keys(
    State(ctx): State<AppContext>,
    _: Admin,
    Path(id): Path<String>,
    Query(page): Query<PageQuery>,
) -> ApiResult<Json<KeyList>> {
    let app = find_app(&ctx, &id).await?;
    let page = ops::lists::api_keys(&ctx, app.id, &page.into()).await?;
    Ok(Json(
        page.map(|k| KeyView {
            id: k.id.0,
            label: k.label.to_string(),
            created_at: k.created_at,
            revoked_at: k.revoked_at,
        })
        .into(),
    ))
}

list_page!(KeyList, KeyView);

/// Make another API key for an app (e.g. to rotate keys without downtime); answers it once.
#[utoipa::path(post, path = "/api/v1/apps/{id}/keys", tag = "apps", security(("bearer" = [])),
    params(("id" = String, Path, description = "app id or name")), request_body = CreateKey,
    responses((status = 201, body = CreatedKey), (status = 404, body = ErrorBody), CommonErrors))]
pub async fn create_key(
    State(ctx): State<AppContext>,
    Admin(who): Admin,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> ApiResult<(StatusCode, Json<CreatedKey>)> {
    // The body is optional here: an empty POST makes a key with the default label.
    let req: CreateKey = if body.iter().all(u8::is_ascii_whitespace) {
        CreateKey::default()
    } else {
        super::parse_json(&body)?
    };
    let app = find_app(&ctx, &id).await?;
    let (_, key) = ops::apps::create_key(&ctx, &who.actor(), app.id, req.label).await?;
    Ok((
        StatusCode::CREATED,
        Json(CreatedKey {
            id: key.record.id.0,
            label: key.record.label.to_string(),
            api_key: key.text.expose_secret().to_owned(),
            created_at: key.record.created_at,
        }),
    ))
}

/// Revoke one of an app's API keys; it stops working at once.
#[utoipa::path(delete, path = "/api/v1/apps/{id}/keys/{key_id}", tag = "apps", security(("bearer" = [])),
    params(("id" = String, Path, description = "app id or name"), ("key_id" = String, Path, description = "API key id")),
    responses((status = 204, description = "revoked"), (status = 404, body = ErrorBody), CommonErrors))]
pub async fn revoke_key(
    State(ctx): State<AppContext>,
    Admin(who): Admin,
    Path((id, key_id)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let app = find_app(&ctx, &id).await?;
    ops::apps::revoke_key(&ctx, &who.actor(), app.id, &key_id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Stop an app: its reads are refused until it is started again. It stays stopped until an
/// admin starts it (it does not resume by itself).
#[utoipa::path(post, path = "/api/v1/apps/{id}/stop", tag = "apps", security(("bearer" = [])),
    params(("id" = String, Path, description = "app id or name")),
    responses((status = 200, body = AppView), (status = 404, body = ErrorBody), CommonErrors))]
pub async fn stop_app(
    State(ctx): State<AppContext>,
    Admin(who): Admin,
    Path(id): Path<String>,
) -> ApiResult<Json<AppView>> {
    let app = find_app(&ctx, &id).await?;
    let app = ops::apps::stop(&ctx, &who.actor(), app.id).await?;
    Ok(Json(AppView::from(&app)))
}

/// Start an app. Refused, with the reason, while a token it uses needs re-authorization.
#[utoipa::path(post, path = "/api/v1/apps/{id}/start", tag = "apps", security(("bearer" = [])),
    params(("id" = String, Path, description = "app id or name")),
    responses((status = 200, body = AppView), (status = 404, body = ErrorBody), (status = 409, description = "a token it uses is dead", body = ErrorBody), CommonErrors))]
pub async fn start_app(
    State(ctx): State<AppContext>,
    Admin(who): Admin,
    Path(id): Path<String>,
) -> ApiResult<Json<AppView>> {
    let app = find_app(&ctx, &id).await?;
    let app = ops::apps::start(&ctx, &who.actor(), app.id).await?;
    Ok(Json(AppView::from(&app)))
}
