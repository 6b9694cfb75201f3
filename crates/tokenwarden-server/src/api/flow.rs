//! Getting a token: the provider catalog, Snowflake setup help, pasted client secrets,
//! starting the authorization, testing the connection, and the apps' read path.

use super::CommonErrors;
use super::tokens::{TokenView, load, view};
use crate::AppContext;
use crate::auth::{Admin, Principal};
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::ops;
use crate::ops::grant::{self, read::Reader};
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tokenwarden_oauth::snowflake::{self};
use utoipa::{IntoParams, ToSchema};

#[derive(Debug, Serialize, ToSchema)]
pub struct ProviderView {
    id: String,
    display_name: String,
    description: String,
    /// `built-in` or the file it came from.
    source: String,
    pkce: bool,
    client_auth: String,
    /// The grants tokens of this provider may use.
    #[schema(value_type = Vec<String>, example = json!(["authorization_code", "client_credentials"]))]
    grants: Vec<tokenwarden_domain::Grant>,
    default_scopes: String,
    docs_url: Option<String>,
    /// The connection settings this provider takes.
    #[schema(value_type = Vec<Object>)]
    settings: Vec<tokenwarden_oauth::catalog::Field>,
}

/// The provider catalog with each provider's settings.
#[utoipa::path(get, path = "/api/v1/providers", tag = "providers", security(("bearer" = [])),
    responses((status = 200, body = Vec<ProviderView>), CommonErrors))]
pub async fn list_providers(State(ctx): State<AppContext>, _: Admin) -> Json<Vec<ProviderView>> {
    Json(
        ctx.catalog
            .all()
            .map(|t| ProviderView {
                id: t.id.clone(),
                display_name: t.display_name.clone(),
                description: t.description.clone(),
                source: t.source.clone(),
                pkce: t.pkce,
                client_auth: t.client_auth.clone(),
                grants: t.grants.clone(),
                default_scopes: t.default_scopes.clone(),
                docs_url: t.docs_url.clone(),
                settings: t.fields.clone(),
            })
            .collect(),
    )
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SnowflakeSetup {
    /// The security integration's name.
    integration: String,
    /// Run this in a Snowflake worksheet as ACCOUNTADMIN (or a role with CREATE INTEGRATION):
    /// the CREATE statement, then the SELECT that shows the client id and secrets.
    sql: String,
    create_integration: String,
    show_client_secrets: String,
    /// To change the refresh-token validity later.
    alter_refresh_token_validity: String,
    /// To rotate one client secret (the other keeps working meanwhile).
    rotate_client_secret: String,
    rotate_client_secret_2: String,
    refresh_token_validity: u64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SetupView {
    /// Register this redirect URI with the provider.
    redirect_uri: String,
    provider: String,
    /// What to do, in order.
    steps: Vec<String>,
    warnings: Vec<String>,
    /// For Snowflake tokens: the SQL to run.
    snowflake: Option<SnowflakeSetup>,
}

/// Setup help for the two-way exchange: our redirect URI and, for Snowflake, the SQL to run.
#[utoipa::path(get, path = "/api/v1/tokens/{id}/setup", tag = "tokens", security(("bearer" = [])),
    params(("id" = String, Path, description = "token id")),
    responses((status = 200, body = SetupView), (status = 404, body = ErrorBody), CommonErrors))]
pub async fn setup(
    State(ctx): State<AppContext>,
    _: Admin,
    Path(id): Path<String>,
) -> ApiResult<Json<SetupView>> {
    let t = load(&ctx, &id).await?;
    let redirect_uri = ctx.settings.redirect_uri();
    let mut warnings = Vec::new();
    if t.provider.as_str() != "snowflake" {
        let steps = vec![
            format!("Register {redirect_uri} as a redirect URI of your OAuth client at the provider."),
            "Copy the client id and secret from the provider into this token (PATCH client_id and client_secret).".into(),
            format!("Authorize: POST /api/v1/tokens/{}/authorize and open the URL it answers.", t.id),
        ];
        if let Err(e) = grant::resolve(&ctx, &t) {
            warnings.push(format!("before authorizing: {e}"));
        }
        return Ok(Json(SetupView {
            redirect_uri,
            provider: t.provider.to_string(),
            steps,
            warnings,
            snowflake: None,
        }));
    }
    let (integration, validity, sql) =
        ops::tokens::snowflake_setup(&ctx, &t).map_err(ApiError::InvalidRequest)?;
    warnings.extend(sql.warnings.iter().cloned());
    if let Some(role) = t.settings.get("role")
        && let Err(e) = snowflake::SnowflakeRole::parse(role)
    {
        warnings.push(e.0);
    }
    if let Err(e) = grant::resolve(&ctx, &t) {
        warnings.push(format!("before authorizing: {e}"));
    }
    let steps = vec![
        "In Snowflake, open a worksheet as ACCOUNTADMIN (or a role granted CREATE INTEGRATION).".into(),
        "Run the SQL below: it creates the security integration with our redirect URI, then shows its client id and secrets.".into(),
        format!("Copy the whole output cell of SYSTEM$SHOW_OAUTH_CLIENT_SECRETS and paste it here (POST /api/v1/tokens/{}/client-secrets).", t.id),
        format!("Authorize: POST /api/v1/tokens/{}/authorize, open the URL, sign in to Snowflake as the user the apps act as.", t.id),
    ];
    Ok(Json(SetupView {
        redirect_uri,
        provider: "snowflake".into(),
        steps,
        warnings,
        snowflake: Some(SnowflakeSetup {
            integration: integration.as_str().to_owned(),
            sql: format!("{}\n\n{}", sql.create, sql.show_secrets),
            create_integration: sql.create,
            show_client_secrets: sql.show_secrets,
            alter_refresh_token_validity: sql.alter_validity,
            rotate_client_secret: sql.rotate_secret_1,
            rotate_client_secret_2: sql.rotate_secret_2,
            refresh_token_validity: validity,
        }),
    }))
}

/// Paste the output of `SELECT SYSTEM$SHOW_OAUTH_CLIENT_SECRETS(...)` (as `text/plain`): fills the
/// client id and both client secrets. Garbage is refused and changes nothing.
#[utoipa::path(post, path = "/api/v1/tokens/{id}/client-secrets", tag = "tokens", security(("bearer" = [])),
    params(("id" = String, Path, description = "token id")),
    request_body(content = String, content_type = "text/plain", description = "the pasted output cell"),
    responses((status = 200, body = TokenView), (status = 404, body = ErrorBody), CommonErrors))]
pub async fn paste_client_secrets(
    State(ctx): State<AppContext>,
    Admin(who): Admin,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> ApiResult<Json<TokenView>> {
    let text = std::str::from_utf8(&body)
        .map_err(|_| ApiError::InvalidRequest("the pasted text is not UTF-8".into()))?;
    let t = load(&ctx, &id).await?;
    let updated = ops::tokens::paste_client_secrets(&ctx, &who.actor(), t.id, text).await?;
    Ok(Json(view(&ctx, &updated).await?))
}

/// What starting to get a token's access token answered, by its grant.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuthorizeView {
    #[schema(schema_with = super::schema::grant)]
    grant: tokenwarden_domain::Grant,
    /// Authorization code: open this in a browser and sign in; the provider sends the browser
    /// back to our callback.
    #[serde(skip_serializing_if = "Option::is_none")]
    authorization_url: Option<String>,
    /// The attempt is valid until then (10 minutes for a sign-in).
    #[serde(
        serialize_with = "tokenwarden_domain::clock::rfc3339_opt",
        skip_serializing_if = "Option::is_none"
    )]
    expires_at: Option<DateTime<Utc>>,
    /// Grants without a sign-in: the token, which holds an access token now.
    #[serde(skip_serializing_if = "Option::is_none")]
    token: Option<TokenView>,
    /// Device code: the code to show and the page where it is entered; poll
    /// `GET /api/v1/tokens/{id}/device-authorization` for the result.
    #[serde(skip_serializing_if = "Option::is_none")]
    device: Option<DeviceFlowView>,
}

/// Start getting the token's access token, the way its grant does: the authorization-code
/// flow answers the URL to sign in at (PKCE S256, one-time state bound to this token); the
/// device code grant answers the code to enter and the page (RFC 8628); client credentials
/// fetch an access token at once and answer the token.
#[utoipa::path(post, path = "/api/v1/tokens/{id}/authorize", tag = "tokens", security(("bearer" = [])),
    params(("id" = String, Path, description = "token id")),
    responses((status = 200, body = AuthorizeView), (status = 404, body = ErrorBody), CommonErrors))]
pub async fn authorize(
    State(ctx): State<AppContext>,
    Admin(who): Admin,
    Path(id): Path<String>,
) -> ApiResult<Json<AuthorizeView>> {
    let t = load(&ctx, &id).await?;
    let mut answer = AuthorizeView {
        grant: t.grant,
        authorization_url: None,
        expires_at: None,
        token: None,
        device: None,
    };
    match grant::start(&ctx, &t, &who.actor(), None).await? {
        grant::Started::Redirect { url, expires_at } => {
            answer.authorization_url = Some(url);
            answer.expires_at = Some(expires_at);
        }
        grant::Started::Ready(token) => answer.token = Some(view(&ctx, &token).await?),
        grant::Started::Device(flow) => answer.device = Some((*flow).into()),
    }
    Ok(Json(answer))
}

/// A device sign-in (RFC 8628): show `user_code` and `verification_uri` to the person who
/// signs in, on any device; tokenwarden polls the provider until it ends.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "status": "pending",
    "user_code": "WDJB-MJHT",
    "verification_uri": "https://microsoft.com/devicelogin",
    "verification_uri_complete": null,
    "started_at": "2026-12-01T09:00:00.000Z",
    "expires_at": "2026-12-01T09:15:00.000Z",
    "interval": 5,
    "error": null
}))]
pub struct DeviceFlowView {
    #[schema(schema_with = super::schema::device_flow_status)]
    status: tokenwarden_domain::DeviceFlowStatus,
    /// What the person types at `verification_uri`.
    user_code: String,
    /// The page where the person signs in and types the code.
    verification_uri: String,
    /// The same page with the code filled in, when the provider gives one.
    verification_uri_complete: Option<String>,
    #[serde(serialize_with = "tokenwarden_domain::clock::rfc3339")]
    started_at: DateTime<Utc>,
    /// The codes are valid until then; a pending flow is `expired` afterwards.
    #[serde(serialize_with = "tokenwarden_domain::clock::rfc3339")]
    expires_at: DateTime<Utc>,
    /// Seconds between polls of the provider (grown by its `slow_down`).
    interval: i64,
    /// Why it ended, when it ended other than `authorized`.
    error: Option<String>,
}

impl From<grant::device::DeviceFlow> for DeviceFlowView {
    fn from(f: grant::device::DeviceFlow) -> Self {
        Self {
            status: f.status,
            user_code: f.user_code,
            verification_uri: f.verification_uri,
            verification_uri_complete: f.verification_uri_complete,
            started_at: f.started_at,
            expires_at: f.expires_at,
            interval: f.interval_secs,
            error: f.error,
        }
    }
}

/// Start a device sign-in (RFC 8628) for a token whose provider offers it (Microsoft, GitHub,
/// Google, `oauth2` with `device_authorization_url`): answers the code to show and the page to
/// open. Starting again replaces the token's earlier device sign-in. Poll
/// `GET /api/v1/tokens/{id}/device-authorization` for the result.
#[utoipa::path(post, path = "/api/v1/tokens/{id}/device-authorization", tag = "tokens", security(("bearer" = [])),
    params(("id" = String, Path, description = "token id")),
    responses(
        (status = 200, body = DeviceFlowView),
        (status = 404, body = ErrorBody),
        (status = 503, description = "provider_unavailable: the provider's device endpoint did not answer", body = ErrorBody),
        CommonErrors))]
pub async fn start_device(
    State(ctx): State<AppContext>,
    Admin(who): Admin,
    Path(id): Path<String>,
) -> ApiResult<Json<DeviceFlowView>> {
    let t = load(&ctx, &id).await?;
    let flow = grant::device::start(&ctx, &t, &who.actor()).await?;
    Ok(Json(flow.into()))
}

/// Where the token's device sign-in stands: `pending` until the person approves (then
/// `authorized`), refuses (`denied`) or the code expires (`expired`). 404 when none was started.
#[utoipa::path(get, path = "/api/v1/tokens/{id}/device-authorization", tag = "tokens", security(("bearer" = [])),
    params(("id" = String, Path, description = "token id")),
    responses(
        (status = 200, body = DeviceFlowView, example = json!({
            "status": "authorized",
            "user_code": "WDJB-MJHT",
            "verification_uri": "https://github.com/login/device",
            "verification_uri_complete": null,
            "started_at": "2026-12-01T09:00:00.000Z",
            "expires_at": "2026-12-01T09:15:00.000Z",
            "interval": 10,
            "error": null
        })),
        (status = 404, body = ErrorBody),
        CommonErrors))]
pub async fn device_status(
    State(ctx): State<AppContext>,
    _: Admin,
    Path(id): Path<String>,
) -> ApiResult<Json<DeviceFlowView>> {
    let t = load(&ctx, &id).await?;
    let flow = grant::device::status(&ctx, t.id).await?.ok_or_else(|| {
        ApiError::NotFound(format!("device sign-in of token {:?}", t.name.as_str()))
    })?;
    Ok(Json(flow.into()))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TestView {
    ok: bool,
    /// Who the token acts as, or exactly what the provider said.
    message: String,
}

/// Test the connection: for Snowflake, `SELECT CURRENT_USER()` through the SQL API.
#[utoipa::path(post, path = "/api/v1/tokens/{id}/test", tag = "tokens", security(("bearer" = [])),
    params(("id" = String, Path, description = "token id")),
    responses((status = 200, body = TestView), (status = 404, body = ErrorBody), CommonErrors))]
pub async fn test_connection(
    State(ctx): State<AppContext>,
    Admin(who): Admin,
    Path(id): Path<String>,
) -> ApiResult<Json<TestView>> {
    let t = load(&ctx, &id).await?;
    let (ok, message) = grant::test_connection(&ctx, &t, &who.actor()).await;
    Ok(Json(TestView { ok, message }))
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct ReadParams {
    /// Seconds the token must stay valid, 0 to 86400 (default 60); when the provider's tokens
    /// live shorter, the freshest one is returned with its true `expires_in`.
    #[param(minimum = 0, maximum = 86400)]
    min_validity: Option<i64>,
    /// Admins only: read as this app (its app-level token of that name, else the global one).
    app: Option<String>,
}

// The read route's answer, for the OpenAPI document: the answer itself is written from the
// bytes the read cache keeps (`cache::Served::answer_body`; a unit test holds it to this shape).
#[derive(Debug, Serialize, ToSchema)]
pub struct AccessTokenView<'a> {
    access_token: &'a str,
    token_type: &'a str,
    #[serde(serialize_with = "tokenwarden_domain::clock::rfc3339")]
    expires_at: DateTime<Utc>,
    /// Seconds until `expires_at`.
    expires_in: i64,
}

/// Read a current access token by name. An app gets its own app-level token of that name, else
/// the global one — only if the app uses that token. Admins may read any.
//
// A `GET` does not reach this handler: the front service answers it without the router
// (`read_direct`, issue 10); the route stays for `HEAD`, the method-not-allowed answers and the
// OpenAPI document. Both call `read_answer`.
#[utoipa::path(get, path = "/api/v1/access-tokens/{name}", tag = "access tokens", security(("bearer" = [])),
    params(("name" = String, Path, description = "token name"), ReadParams),
    responses(
        (status = 200, body = AccessTokenView),
        CommonErrors,
        (status = 404, body = ErrorBody),
        (status = 409, description = "token_not_authorized, token_needs_reauthorization or token_needs_credentials", body = ErrorBody),
        (status = 503, description = "provider_unavailable, with Retry-After; or unavailable (the database)", body = ErrorBody)))]
pub async fn read_access_token(
    State(ctx): State<AppContext>,
    who: Principal,
    Path(name): Path<String>,
    Query(params): Query<ReadParams>,
) -> ApiResult<Response> {
    read_answer(&ctx, &who, &name, &params).await
}

/// `GET /api/v1/access-tokens/{name}` ([`crate::access::is_read`]) answered without the
/// router: the same extractions in the same order as [`read_access_token`]'s (credentials,
/// then the name, then the query), without what routing costs per request (issue 10: the
/// matched route's and the URL parameters' extensions, the boxed route, handler and response
/// futures, the name's copy, and the request extensions they need: 17 of the read's 27
/// allocations, measured by `ALLOC_STACKS=… bench/allocs_per_read`; 9 are left).
pub async fn read_direct(ctx: &AppContext, req: axum::extract::Request) -> Response {
    use axum::extract::FromRequestParts;
    let (mut parts, _body) = req.into_parts();
    let who = match Principal::from_request_parts(&mut parts, ctx).await {
        Ok(who) => who,
        Err(e) => return e.into_response(),
    };
    let raw = parts
        .uri
        .path()
        .strip_prefix(crate::access::READ_PREFIX)
        .unwrap_or_default();
    // As the router's `Path` decodes it; borrowed unless it holds an escape.
    let Ok(name) = percent_encoding::percent_decode_str(raw).decode_utf8() else {
        return ApiError::Rejected {
            status: axum::http::StatusCode::BAD_REQUEST,
            message: "Invalid URL: the token name is not UTF-8".into(),
        }
        .into_response();
    };
    let params = match Query::<ReadParams>::try_from_uri(&parts.uri) {
        Ok(Query(params)) => params,
        Err(rejection) => return rejection.into_response(),
    };
    read_answer(ctx, &who, &name, &params).await.into_response()
}

/// The read: the core's answer for this caller, written as JSON.
pub async fn read_answer(
    ctx: &AppContext,
    who: &Principal,
    name: &str,
    params: &ReadParams,
) -> ApiResult<Response> {
    let reader = match who {
        Principal::App { app_id, .. } => Reader::App(*app_id),
        Principal::Admin { label } => Reader::Admin {
            label,
            as_app: params.app.as_deref(),
        },
    };
    let served =
        grant::read::read_access_token(ctx, reader, name, params.min_validity.unwrap_or(60))
            .await?;
    let body = served.answer_body(ctx.clock.now());
    let mut res = Response::new(axum::body::Body::from(body));
    res.headers_mut().insert(
        axum::http::header::CONTENT_TYPE,
        axum::http::HeaderValue::from_static("application/json"),
    );
    Ok(res)
}
