//! Getting and keeping token material, one job per module: [`authorize`] (start a sign-in,
//! complete the callback; [`start`] dispatches on the token's grant), [`device`] (the device
//! grant, RFC 8628: start, poll, status), [`refresh`] (under an owner-checked lease, with backoff and health),
//! [`read`] (the usable token an app reads), [`test`] (the connection test). What they share
//! is here: the provider a token resolves to, and opening its sealed secrets.

pub mod authorize;
pub mod device;
pub mod keypair;
pub mod read;
pub mod refresh;
pub mod test;

pub use authorize::{
    CallbackQuery, CallbackResult, STATE_TTL_MINUTES, complete_callback, start_authorization,
};
pub use read::{resolve_token, usable_token};
pub use refresh::{RefreshError, backoff, refresh};
pub use test::test_connection;

use crate::AppContext;
use crate::ops::{Error, Result};
use secrecy::SecretString;
use tokenwarden_domain::{Grant, Timestamp};
use tokenwarden_oauth::ResolvedProvider;
use tokenwarden_store::{Sealed, SealedColumn, TokenRecord};

/// Resolves the token's provider with its settings (and the token's own client
/// authentication, if it chose one); the error names what is missing.
pub fn resolve(ctx: &AppContext, t: &TokenRecord) -> Result<ResolvedProvider> {
    let mut p = ctx
        .catalog
        .resolve_for(t.provider.as_str(), &t.settings, t.grant)
        .map_err(|e| Error::Invalid(e.to_string()))?;
    if let Some(m) = t.client_auth {
        p.client_auth = m.into();
    }
    // Client credentials ask for the scopes the settings name, else the template's app-only
    // ones (never the delegated defaults, such as offline_access).
    if t.grant == Grant::ClientCredentials
        && t.settings.get("scope").is_none_or(|s| s.trim().is_empty())
    {
        p.scopes = ctx
            .catalog
            .get(t.provider.as_str())
            .and_then(|tpl| tpl.client_credentials_scopes.clone())
            .unwrap_or_default();
    }
    Ok(p)
}

/// The client authentication a token uses: its own choice, else its provider's default (the
/// `basic`/`body` of the template; `client_secret_basic` when the settings do not resolve yet).
pub fn client_auth(ctx: &AppContext, t: &TokenRecord) -> tokenwarden_domain::ClientAuthMethod {
    t.client_auth.unwrap_or_else(|| {
        ctx.catalog
            .resolve_for(t.provider.as_str(), &t.settings, t.grant)
            .map(|p| p.client_auth.method())
            .unwrap_or(tokenwarden_domain::ClientAuthMethod::ClientSecretBasic)
    })
}

/// What starting to obtain a token's access token answered ([`start`]).
#[derive(Debug)]
pub enum Started {
    /// Authorization code: open this URL in a browser and sign in before `expires_at`.
    Redirect { url: String, expires_at: Timestamp },
    /// The token holds a usable access token now (no sign-in needed).
    Ready(Box<TokenRecord>),
    /// Device code: show the code and the page to the person who signs in; the flow is polled
    /// until it ends (`device::status`).
    Device(Box<device::DeviceFlow>),
}

/// Starts getting a token's first access token, the way its grant does it: the dispatch point
/// of "Get an access token" / "Sign in again" (UI), `POST /tokens/{id}/authorize` (API) and
/// `token authorize` (CLI). `session_hash` binds a browser sign-in to the UI session.
pub async fn start(
    ctx: &AppContext,
    t: &TokenRecord,
    actor: &str,
    session_hash: Option<String>,
) -> Result<Started> {
    match t.grant {
        Grant::AuthorizationCode => {
            let url = start_authorization(ctx, t, actor, session_hash).await?;
            Ok(Started::Redirect {
                url,
                expires_at: ctx.clock.now() + chrono::Duration::minutes(STATE_TTL_MINUTES),
            })
        }
        Grant::ClientCredentials => {
            let token = refresh::obtain(ctx, t.id, actor)
                .await
                .map_err(|e| obtain_error(t, e))?;
            Ok(Started::Ready(Box::new(token)))
        }
        Grant::DeviceCode => Ok(Started::Device(Box::new(
            device::start(ctx, t, actor).await?,
        ))),
        Grant::SnowflakeKeypair => Ok(Started::Ready(Box::new(
            keypair::activate(ctx, t, actor).await?,
        ))),
    }
}

/// What an admin is told when getting an access token with the stored credentials failed.
fn obtain_error(t: &TokenRecord, e: RefreshError) -> Error {
    match e {
        RefreshError::NeedsCredentials(m) | RefreshError::NeedsReauthorization(m) => {
            Error::TokenUnusable {
                code: "token_needs_credentials",
                message: format!(
                    "token {} could not get an access token: {m}. Store the right client id and secret (or client authentication) and try again",
                    t.name
                ),
            }
        }
        RefreshError::Unavailable(m) => Error::ProviderUnavailable {
            message: format!(
                "token {} could not get an access token right now: {m}",
                t.name
            ),
            retry_after: 30,
        },
        RefreshError::Busy => Error::ProviderUnavailable {
            message: "the token is being renewed right now; retry shortly".into(),
            retry_after: 5,
        },
        RefreshError::Core(e) => e,
    }
}

/// Whether the refresh engine can renew the token's access token by itself (ahead of expiry,
/// and as the daily health check): with its refresh token, or with the grant's own
/// credentials. The dispatch point the background pass (`engine`) asks.
pub fn renewable(t: &TokenRecord) -> bool {
    match t.grant {
        Grant::AuthorizationCode | Grant::DeviceCode => t.material.refresh_token.is_some(),
        Grant::ClientCredentials => {
            t.client_secret.is_some()
                || t.client_secret_2.is_some()
                || t.client_auth == Some(tokenwarden_domain::ClientAuthMethod::PrivateKeyJwt)
        }
        // A key-pair token mints its JWT from its key: renewable once activated.
        Grant::SnowflakeKeypair => t.material.access_token.is_some(),
    }
}

/// The stored client secrets, opened, in the order they are tried. For a token that
/// authenticates with `private_key_jwt`: one fresh client assertion (RFC 7523) signed with the
/// token's key, what the token endpoint gets instead of a secret.
pub async fn client_secrets(ctx: &AppContext, t: &TokenRecord) -> Result<Vec<SecretString>> {
    if t.client_auth == Some(tokenwarden_domain::ClientAuthMethod::PrivateKeyJwt) {
        let provider = resolve(ctx, t)?;
        let key = keypair::client_key(ctx, t).await?;
        let assertion = tokenwarden_oauth::client::client_assertion(
            &key,
            t.client_id.as_deref().unwrap_or_default(),
            &provider.token_url,
            ctx.clock.now().timestamp(),
        )
        .map_err(Error::internal)?;
        return Ok(vec![SecretString::from(assertion)]);
    }
    let mut out = Vec::new();
    for (column, sealed) in [
        (SealedColumn::TokenClientSecret, &t.client_secret),
        (SealedColumn::TokenClientSecret2, &t.client_secret_2),
    ] {
        if let Some(s) = sealed {
            out.push(
                ctx.vault
                    .open_secret(s, column, &t.id.to_string())
                    .await
                    .map_err(Error::internal)?,
            );
        }
    }
    Ok(out)
}

/// Opens a sealed token value of a row.
pub async fn open_material(
    ctx: &AppContext,
    t: &TokenRecord,
    column: SealedColumn,
    sealed: &Sealed,
) -> Result<SecretString> {
    ctx.vault
        .open_secret(sealed, column, &t.id.to_string())
        .await
        .map_err(Error::internal)
}
