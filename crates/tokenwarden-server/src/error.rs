use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use tokenwarden_store::StoreError;
use utoipa::ToSchema;

/// The body of every error answer: a stable machine-readable `code` and a sentence for people.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// Stable identifier, e.g. `not_found`, `invalid_request`, `unauthorized`.
    pub code: &'static str,
    /// What went wrong, for a person.
    pub message: String,
}

/// Every way an API request can fail, each with its status and stable code.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    InvalidRequest(String),
    #[error("{0}")]
    InvalidJson(String),
    /// A name (app, token, provider, key label) that breaks its rule; the message is the rule.
    #[error("{0}")]
    InvalidName(String),
    #[error("the request body is larger than the limit of {0} bytes")]
    PayloadTooLarge(usize),
    #[error("credentials must be sent in the Authorization header, never in the query string")]
    CredentialsInQuery,
    #[error(
        "missing or invalid credentials: send `Authorization: Bearer <admin token or API key>`"
    )]
    Unauthorized,
    #[error("this credential may not do that")]
    Forbidden,
    #[error("{0} not found")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    VersionMismatch(String),
    #[error("no route for {0}")]
    NoRoute(String),
    #[error("method not allowed")]
    MethodNotAllowed,
    #[error("the database is unavailable; try again shortly")]
    Unavailable,
    /// The token exists but cannot give an access token: `token_not_authorized`,
    /// `token_needs_reauthorization`, `token_needs_credentials`, `token_expired`.
    #[error("{message}")]
    TokenUnusable { code: &'static str, message: String },
    /// The provider is down and no valid access token is left; retry after the given seconds.
    #[error("{message}")]
    ProviderUnavailable { message: String, retry_after: u64 },
    #[error("internal error; see the server log (reference {0})")]
    Internal(String),
    /// A refusal made outside the handlers (an extractor's rejection or a layer's answer: a bad
    /// query string, a body over the limit read in chunks, a wrong content type), put into the
    /// JSON shape with a stable code for its status.
    #[error("{message}")]
    Rejected { status: StatusCode, message: String },
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::InvalidRequest(_)
            | ApiError::InvalidJson(_)
            | ApiError::InvalidName(_)
            | ApiError::CredentialsInQuery => StatusCode::BAD_REQUEST,
            ApiError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) | ApiError::NoRoute(_) => StatusCode::NOT_FOUND,
            ApiError::Conflict(_) | ApiError::VersionMismatch(_) => StatusCode::CONFLICT,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Unavailable | ApiError::ProviderUnavailable { .. } => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            ApiError::TokenUnusable { .. } => StatusCode::CONFLICT,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            ApiError::Rejected { status, .. } => *status,
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            ApiError::InvalidRequest(_) => "invalid_request",
            ApiError::InvalidJson(_) => "invalid_json",
            ApiError::InvalidName(_) => "invalid_name",
            ApiError::PayloadTooLarge(_) => "payload_too_large",
            ApiError::CredentialsInQuery => "credentials_in_query",
            ApiError::Unauthorized => "unauthorized",
            ApiError::Forbidden => "forbidden",
            ApiError::NotFound(_) => "not_found",
            ApiError::NoRoute(_) => "no_route",
            ApiError::Conflict(_) => "conflict",
            ApiError::VersionMismatch(_) => "version_mismatch",
            ApiError::MethodNotAllowed => "method_not_allowed",
            ApiError::Unavailable => "unavailable",
            ApiError::TokenUnusable { code, .. } => code,
            ApiError::ProviderUnavailable { .. } => "provider_unavailable",
            ApiError::Internal(_) => "internal",
            ApiError::Rejected { status, .. } => match *status {
                StatusCode::BAD_REQUEST => "invalid_request",
                StatusCode::NOT_FOUND => "no_route",
                StatusCode::UNAUTHORIZED => "unauthorized",
                StatusCode::FORBIDDEN => "forbidden",
                StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed",
                StatusCode::PAYLOAD_TOO_LARGE => "payload_too_large",
                StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
                StatusCode::UNPROCESSABLE_ENTITY => "invalid_request",
                StatusCode::REQUEST_TIMEOUT => "timeout",
                StatusCode::SERVICE_UNAVAILABLE => "unavailable",
                s if s.is_server_error() => "internal",
                _ => "request_refused",
            },
        }
    }

    /// Logs the cause under a short reference and hides it from the client.
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        crate::ops::Error::internal(cause).into()
    }
}

impl From<crate::ops::Error> for ApiError {
    fn from(e: crate::ops::Error) -> Self {
        use crate::ops::Error as E;
        match e {
            E::Invalid(m) => ApiError::InvalidRequest(m),
            E::NotFound(what) => ApiError::NotFound(what),
            E::Conflict(m) => ApiError::Conflict(m),
            E::VersionMismatch(m) => ApiError::VersionMismatch(m),
            E::TokenUnusable { code, message } => ApiError::TokenUnusable { code, message },
            E::ProviderUnavailable {
                message,
                retry_after,
            } => ApiError::ProviderUnavailable {
                message,
                retry_after,
            },
            E::Unavailable => ApiError::Unavailable,
            E::Internal(reference) => ApiError::Internal(reference),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        crate::ops::Error::from(e).into()
    }
}

/// Is this store error "the database cannot be reached" (answered 503, not 500)?
pub(crate) fn store_unavailable(e: &StoreError) -> bool {
    matches!(e, StoreError::Unavailable(_))
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            code: self.code(),
            message: self.to_string(),
        };
        let mut res = (self.status(), axum::Json(body)).into_response();
        if let ApiError::ProviderUnavailable { retry_after, .. } = &self
            && let Ok(v) = axum::http::HeaderValue::from_str(&retry_after.to_string())
        {
            res.headers_mut().insert(axum::http::header::RETRY_AFTER, v);
        }
        res
    }
}

pub type ApiResult<T> = Result<T, ApiError>;
