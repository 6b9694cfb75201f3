//! `tokenwarden serve`: the service until Ctrl-C or SIGTERM.

use crate::bootstrap;
use crate::config::{self, Config};
use anyhow::{Context, Result};
use secrecy::ExposeSecret;

/// Binds first and takes the SQLite lock, then opens (and migrates) the database and finds or
/// makes the master key: an address in use or a second `serve` on one SQLite folder touches no
/// data.
pub(crate) async fn run(cfg: Config) -> Result<()> {
    let listener = tokio::net::TcpListener::bind(&cfg.listen)
        .await
        .with_context(|| format!("cannot listen on {}", cfg.listen))?;
    let _lock = bootstrap::lock_sqlite(&cfg)?;
    let ctx = bootstrap::context(&cfg, bootstrap::Setup::Create).await?;
    let addr = listener.local_addr()?;
    tracing::info!(
        address = %format!("http://{addr}"),
        database = %config::redact_url(cfg.database_url.expose_secret()),
        redirect_uri = %ctx.settings.redirect_uri(),
        admin_token = cfg.admin_token.is_some(),
        "tokenwarden is listening"
    );
    if cfg.admin_token.is_none() {
        tracing::warn!(
            "no TOKENWARDEN_ADMIN_TOKEN set: create an admin token with `tokenwarden admin token create`"
        );
    }
    match tokenwarden_server::ops::admins::setup_link(&ctx).await {
        Ok(Some(url)) => tracing::warn!(
            "no admin yet: open {url} to create one (the link works once, for an hour), or run `tokenwarden admin create NAME`"
        ),
        Ok(None) => {}
        Err(e) => tracing::warn!(error = %e, "could not make the one-time setup link"),
    }
    tokenwarden_server::serve(listener, ctx, bootstrap::shutdown_signal()).await?;
    tracing::info!("stopped");
    Ok(())
}
