//! A token's signing keys (issue 12): the public key, its fingerprint and the Snowflake SQL
//! (or the JWKS for `private_key_jwt`), and the key rotation. Adapters of
//! `ops::grant::keypair`.

use super::tokens::load;
use super::{ApiJson, CommonErrors};
use crate::AppContext;
use crate::auth::Admin;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::ops::grant::keypair::{self, KeysView, RotationDone};
use axum::Json;
use axum::extract::{Path, State};
use serde::Deserialize;
use utoipa::ToSchema;

/// The token's public key(s): fingerprint, base64/PEM/JWKS, and for Snowflake the
/// `ALTER USER ... SET RSA_PUBLIC_KEY[_2]` SQL to run.
#[utoipa::path(get, path = "/api/v1/tokens/{id}/keys", tag = "tokens", security(("bearer" = [])),
    params(("id" = String, Path, description = "token id")),
    responses((status = 200, body = KeysView), (status = 404, description = "no such token, or it has no signing key", body = ErrorBody), CommonErrors))]
pub async fn get_keys(
    State(ctx): State<AppContext>,
    _: Admin,
    Path(id): Path<String>,
) -> ApiResult<Json<KeysView>> {
    let t = load(&ctx, &id).await?;
    match keypair::view(&ctx, &t).await? {
        Some(v) => Ok(Json(v)),
        // Only Snowflake key-pair tokens and private_key_jwt clients have one.
        None => Err(ApiError::from(crate::ops::Error::NotFound(format!(
            "a signing key of token {}",
            t.name
        )))),
    }
}

/// Start a key rotation: a new key is generated and shown (for Snowflake with
/// `ALTER USER ... SET RSA_PUBLIC_KEY_2`); the current key keeps signing until the rotation is
/// finished. Calling it again during a rotation answers the same new key.
#[utoipa::path(post, path = "/api/v1/tokens/{id}/keys/rotate", tag = "tokens", security(("bearer" = [])),
    params(("id" = String, Path, description = "token id")),
    responses((status = 200, body = KeysView), (status = 404, body = ErrorBody), CommonErrors))]
pub async fn rotate_keys(
    State(ctx): State<AppContext>,
    Admin(who): Admin,
    Path(id): Path<String>,
) -> ApiResult<Json<KeysView>> {
    let t = load(&ctx, &id).await?;
    Ok(Json(keypair::rotate(&ctx, &t, &who.actor()).await?))
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FinishRotation {
    /// `true`: the admin assigned the new key (no test). `false` (default): a connection test
    /// with the new key must succeed first (Snowflake).
    #[serde(default)]
    confirmed: bool,
}

/// Finish a rotation: the new key signs from now on (a JWT of it is stored at once) and the
/// old slot's `UNSET` SQL is offered. Without `confirmed`, a Snowflake connection test with the
/// new key must pass first; a refusal keeps the old key signing (422).
#[utoipa::path(post, path = "/api/v1/tokens/{id}/keys/rotate/finish", tag = "tokens", security(("bearer" = [])),
    params(("id" = String, Path, description = "token id")),
    request_body = FinishRotation,
    responses((status = 200, body = RotationDone), (status = 404, body = ErrorBody), CommonErrors))]
pub async fn finish_rotation(
    State(ctx): State<AppContext>,
    Admin(who): Admin,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<FinishRotation>,
) -> ApiResult<Json<RotationDone>> {
    let t = load(&ctx, &id).await?;
    Ok(Json(
        keypair::finish_rotation(&ctx, &t, &who.actor(), body.confirmed).await?,
    ))
}

/// Abandon a rotation in progress: the new key is discarded.
#[utoipa::path(post, path = "/api/v1/tokens/{id}/keys/rotate/cancel", tag = "tokens", security(("bearer" = [])),
    params(("id" = String, Path, description = "token id")),
    responses((status = 200, body = KeysView), (status = 404, body = ErrorBody), CommonErrors))]
pub async fn cancel_rotation(
    State(ctx): State<AppContext>,
    Admin(who): Admin,
    Path(id): Path<String>,
) -> ApiResult<Json<KeysView>> {
    let t = load(&ctx, &id).await?;
    Ok(Json(
        keypair::cancel_rotation(&ctx, &t, &who.actor()).await?,
    ))
}
