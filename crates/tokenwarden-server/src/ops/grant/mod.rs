//! Getting and keeping token material, one job per module: [`authorize`] (start a sign-in,
//! complete the callback), [`refresh`] (under an owner-checked lease, with backoff and health),
//! [`read`] (the usable token an app reads), [`test`] (the connection test). What they share
//! is here: the provider a token resolves to, and opening its sealed secrets.

pub mod authorize;
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
use tokenwarden_oauth::ResolvedProvider;
use tokenwarden_store::{Sealed, SealedColumn, TokenRecord};

/// Resolves the token's provider with its settings; the error names what is missing.
pub fn resolve(ctx: &AppContext, t: &TokenRecord) -> Result<ResolvedProvider> {
    ctx.catalog
        .resolve(t.provider.as_str(), &t.settings)
        .map_err(|e| Error::Invalid(e.to_string()))
}

/// The stored client secrets, opened, in the order they are tried.
pub async fn client_secrets(ctx: &AppContext, t: &TokenRecord) -> Result<Vec<SecretString>> {
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
