//! Encryption keys: rotating the data key (re-sealing every secret, online) and dropping an
//! old one. The vault does the cryptography; this is the operation, with its audit record.

use crate::AppContext;
use crate::ops::audit::{self, Action, Object, Outcome};
use crate::ops::{Error, Result};
use crate::vault::{RotationReport, VaultError};

fn vault_error(e: VaultError) -> Error {
    match e {
        VaultError::Store(s) => s.into(),
        other => Error::Conflict(other.to_string()),
    }
}

/// Adds a data key, makes it active and re-seals every stored secret with it; with
/// `drop_old`, removes the keys no longer used (only when no other instance runs).
pub async fn rotate(ctx: &AppContext, actor: &str, drop_old: bool) -> Result<RotationReport> {
    let report = ctx
        .vault
        .rotate(ctx.clock.now(), drop_old)
        .await
        .map_err(vault_error)?;
    audit::record(
        ctx,
        actor,
        Action::KeysRotate,
        Object::new("data_key", &report.new_key_id, &report.new_key_id),
        Outcome::Ok,
        serde_json::json!({"resealed": report.resealed, "skipped": report.skipped, "retired_keys": report.retired_keys}),
    )
    .await;
    Ok(report)
}

/// Removes an old data key; refused while any secret still uses it, or within two minutes of
/// a rotation (running instances reload their keys every minute).
pub async fn drop_key(ctx: &AppContext, actor: &str, key_id: &str) -> Result<()> {
    ctx.vault
        .drop_key(key_id, ctx.clock.now())
        .await
        .map_err(vault_error)?;
    audit::record(
        ctx,
        actor,
        Action::KeysDrop,
        Object::new("data_key", key_id, key_id),
        Outcome::Ok,
        serde_json::json!({}),
    )
    .await;
    Ok(())
}
