//! The JSON API under `/api/v1`, documented by the handlers themselves (utoipa).

mod admins;
mod apps;
mod doc;
mod flow;
pub(crate) use flow::read_direct;
mod keys;
mod notifications;
mod schema;
mod tokens;

use crate::AppContext;
use crate::error::{ApiError, ErrorBody};
use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, Request};
use serde::de::DeserializeOwned;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "tokenwarden",
        description = "Self-hosted OAuth 2.0 access-token manager. Every /api/v1 route needs \
                       `Authorization: Bearer <admin token or app API key>`.",
        license(name = "Apache-2.0")
    ),
    modifiers(&BearerAuth),
    components(schemas(ErrorBody)),
    tags(
        (name = "apps", description = "Apps and the tokens they use"),
        (name = "tokens", description = "Global and app-level access tokens"),
        (name = "providers", description = "The provider catalog"),
        (name = "access tokens", description = "What apps read: current access tokens"),
        (name = "notifications", description = "Notification channels, delivery log, audit log"),
        (name = "admins", description = "Admins who sign in to the web UI, and admin tokens"),
    )
)]
struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// The generated document as served at `/api/openapi.json` by an instance with this provider
/// catalog, finished by [`doc::finish`].
pub fn document(
    generated: utoipa::openapi::OpenApi,
    catalog: &tokenwarden_oauth::Catalog,
) -> serde_json::Value {
    doc::finish(serde_json::to_value(generated).unwrap_or_default(), catalog)
}

pub fn router() -> OpenApiRouter<AppContext> {
    routes(true)
}

/// The read route alone (`GET /api/v1/access-tokens/{name}`, [`crate::access::READ_ROUTE`]): the
/// service merges it outside the layer that records the other routes' templates, so the hot
/// path pays for no per-route layer (see `tokenwarden_server::service`).
pub fn read_router() -> OpenApiRouter<AppContext> {
    OpenApiRouter::new().routes(routes!(flow::read_access_token))
}

/// Every route of the API but the read route.
pub fn router_without_read() -> OpenApiRouter<AppContext> {
    routes(false)
}

/// The one list of the API's routes (in the OpenAPI document's order), with or without the
/// read route.
fn routes(with_read: bool) -> OpenApiRouter<AppContext> {
    let api = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(apps::list_apps, apps::create_app))
        .routes(routes!(apps::get_app, apps::patch_app, apps::delete_app))
        .routes(routes!(apps::list_keys, apps::create_key))
        .routes(routes!(apps::revoke_key))
        .routes(routes!(tokens::list_tokens, tokens::create_token))
        .routes(routes!(
            tokens::get_token,
            tokens::patch_token,
            tokens::delete_token
        ))
        .routes(routes!(flow::setup))
        .routes(routes!(flow::paste_client_secrets))
        .routes(routes!(flow::authorize))
        .routes(routes!(flow::start_device, flow::device_status))
        .routes(routes!(flow::test_connection))
        .routes(routes!(keys::get_keys))
        .routes(routes!(keys::rotate_keys))
        .routes(routes!(keys::finish_rotation))
        .routes(routes!(keys::cancel_rotation))
        .routes(routes!(flow::list_providers));
    let api = if with_read {
        api.routes(routes!(flow::read_access_token))
    } else {
        api
    };
    api.routes(routes!(apps::stop_app))
        .routes(routes!(apps::start_app))
        .routes(routes!(
            notifications::list_channels,
            notifications::create_channel
        ))
        .routes(routes!(
            notifications::patch_channel,
            notifications::delete_channel
        ))
        .routes(routes!(notifications::test_channel))
        .routes(routes!(notifications::list_deliveries))
        .routes(routes!(notifications::list_audit))
        .routes(routes!(admins::list_admins, admins::create_admin))
        .routes(routes!(admins::get_admin, admins::delete_admin))
        .routes(routes!(admins::set_password))
        .routes(routes!(
            admins::list_admin_tokens,
            admins::create_admin_token
        ))
        .routes(routes!(admins::get_admin_token, admins::revoke_admin_token))
}

/// The query of every list: one page at a time (keyset: see `ops::lists`).
#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// Rows per page, 1 to 1000 (default 100); outside that range: 400 `invalid_request`.
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<i64>,
    /// The `next_cursor` the previous page answered (opaque); omit it for the first page. A
    /// cursor this list did not answer: 400 `invalid_request`.
    cursor: Option<String>,
}

impl From<PageQuery> for crate::ops::lists::PageParams {
    fn from(q: PageQuery) -> Self {
        Self {
            limit: q.limit,
            cursor: q.cursor,
        }
    }
}

/// A page of a list: `{"items": [...], "next_cursor": "..."}`; `next_cursor` is null on the
/// last page, else passed as `cursor` to fetch the next.
macro_rules! list_page {
    ($name:ident, $item:ty) => {
        #[derive(Debug, serde::Serialize, utoipa::ToSchema)]
        pub struct $name {
            items: Vec<$item>,
            /// Pass as `cursor` for the next page; null on the last page.
            #[schema(required = true)]
            next_cursor: Option<String>,
        }

        impl From<crate::ops::lists::Page<$item>> for $name {
            fn from(page: crate::ops::lists::Page<$item>) -> Self {
                Self {
                    items: page.items,
                    next_cursor: page.next_cursor,
                }
            }
        }
    };
}
pub(crate) use list_page;

/// `Json` whose rejections use the API's error shape: 400 `invalid_json` with the parser's
/// reason, 400 `invalid_name` with the rule when a name is refused, 413 when the body is over
/// the limit.
pub struct ApiJson<T>(pub T);

/// Is the request's content type JSON (`application/json` or `application/*+json`)?
fn json_content_type(headers: &axum::http::HeaderMap) -> bool {
    let Some(value) = headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let essence = value.split(';').next().unwrap_or_default().trim();
    let Some((kind, sub)) = essence.split_once('/') else {
        return false;
    };
    kind.eq_ignore_ascii_case("application")
        && (sub.eq_ignore_ascii_case("json")
            || sub.len() > 5 && sub[sub.len() - 5..].eq_ignore_ascii_case("+json"))
}

impl<T: DeserializeOwned> FromRequest<AppContext> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, ctx: &AppContext) -> Result<Self, ApiError> {
        if !json_content_type(req.headers()) {
            return Err(ApiError::InvalidJson(
                "send the body as JSON with `Content-Type: application/json`".into(),
            ));
        }
        let bytes = match axum::body::Bytes::from_request(req, ctx).await {
            Ok(b) => b,
            Err(e) if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE => {
                return Err(ApiError::PayloadTooLarge(ctx.settings.max_body_bytes));
            }
            Err(e) => {
                return Err(ApiError::InvalidJson(format!(
                    "the request body could not be read: {}",
                    e.body_text()
                )));
            }
        };
        parse_json(&bytes).map(ApiJson)
    }
}

/// Parses a JSON body: 400 `invalid_name` with the rule when a name is refused, else 400
/// `invalid_json` with the parser's reason.
pub(crate) fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    // Synchronous from here to the end: a name refused while parsing is this request's.
    let _ = tokenwarden_domain::take_refused_name();
    match axum::Json::<T>::from_bytes(bytes) {
        Ok(axum::Json(v)) => Ok(v),
        Err(e) => match tokenwarden_domain::take_refused_name() {
            Some(name) => Err(ApiError::InvalidName(name.to_string())),
            None => Err(json_rejection(&e)),
        },
    }
}

/// The parser's reason for a body that is not the JSON expected, without axum's preamble.
fn json_rejection(e: &JsonRejection) -> ApiError {
    let text = e.body_text();
    let reason = text
        .strip_prefix("Failed to deserialize the JSON body into the target type: ")
        .or_else(|| text.strip_prefix("Failed to parse the request body as JSON: "))
        .unwrap_or(&text);
    ApiError::InvalidJson(format!("the request body is not valid: {reason}"))
}

/// Common responses for the docs.
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)]
pub enum CommonErrors {
    /// Malformed JSON (`invalid_json`), a bad name (`invalid_name`) or bad fields (`invalid_request`).
    #[response(status = 400)]
    BadRequest(#[to_schema] ErrorBody),
    /// Missing or invalid credentials.
    #[response(status = 401)]
    Unauthorized(ErrorBody),
    /// The credential may not do this.
    #[response(status = 403)]
    Forbidden(ErrorBody),
    /// Body over the size limit.
    #[response(status = 413)]
    TooLarge(ErrorBody),
    /// The database cannot be reached right now (`unavailable`); retry.
    #[response(status = 503)]
    Unavailable(ErrorBody),
}
