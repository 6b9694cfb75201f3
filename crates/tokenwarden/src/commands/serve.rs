//! `tokenwarden serve`: the service until Ctrl-C or SIGTERM (a graceful stop, bounded by
//! `shutdown_grace`); SIGHUP reloads what can change without a restart.

use crate::bootstrap;
use crate::config::{self, Config};
use anyhow::{Context, Result};
use secrecy::ExposeSecret;
use tokenwarden_server::AppContext;

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
        pid = std::process::id(),
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
    let grace = cfg.shutdown_grace;
    let reloads = tokio::spawn(reload_on_sighup(ctx.clone(), cfg));
    let served =
        tokenwarden_server::serve_with(listener, ctx, bootstrap::shutdown_signal(), grace).await;
    reloads.abort();
    served?;
    tracing::info!("stopped");
    Ok(())
}

/// Reloads the configuration on every SIGHUP (see [`reload`]).
async fn reload_on_sighup(ctx: AppContext, mut cfg: Config) {
    #[cfg(unix)]
    {
        let Ok(mut hup) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        else {
            tracing::warn!("cannot listen for SIGHUP: the configuration cannot be reloaded");
            return;
        };
        while hup.recv().await.is_some() {
            reload(&ctx, &mut cfg);
        }
    }
    #[cfg(not(unix))]
    {
        let _ = (ctx, &mut cfg);
    }
}

/// What a reload found: the settings it applied, and those that changed but only take effect
/// after a restart.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Reload {
    pub applied: Vec<&'static str>,
    pub needs_restart: Vec<&'static str>,
}

/// The settings that differ between `old` and `new`, split into those a running service
/// takes ([`apply`]: `log`, `reminder_lead_times`, `[smtp]`) and the rest.
pub(crate) fn compare(old: &Config, new: &Config) -> Reload {
    let mut r = Reload::default();
    let mut differs = |name: &'static str, changed: bool, live: bool| {
        if changed {
            if live {
                r.applied.push(name);
            } else {
                r.needs_restart.push(name);
            }
        }
    };
    differs("log", old.log != new.log, true);
    differs(
        "reminder_lead_times",
        old.reminder_lead_times != new.reminder_lead_times,
        true,
    );
    differs("smtp", smtp_key(old) != smtp_key(new), true);
    differs("listen", old.listen != new.listen, false);
    differs("data_dir", old.data_dir != new.data_dir, false);
    differs(
        "database_url",
        old.database_url.expose_secret() != new.database_url.expose_secret(),
        false,
    );
    differs("public_url", old.public_url != new.public_url, false);
    differs(
        "master_key",
        master_key_key(old) != master_key_key(new),
        false,
    );
    differs(
        "admin_token",
        old.admin_token
            .as_ref()
            .map(|t| t.expose_secret().to_owned())
            != new
                .admin_token
                .as_ref()
                .map(|t| t.expose_secret().to_owned()),
        false,
    );
    differs(
        "max_body_bytes",
        old.max_body_bytes != new.max_body_bytes,
        false,
    );
    differs(
        "providers_dir",
        old.providers_dir != new.providers_dir,
        false,
    );
    differs(
        "engine_interval",
        old.engine_interval != new.engine_interval,
        false,
    );
    differs(
        "audit_retention",
        old.audit_retention != new.audit_retention,
        false,
    );
    differs(
        "refresh_concurrency",
        old.refresh_concurrency != new.refresh_concurrency,
        false,
    );
    differs("log_format", old.log_format != new.log_format, false);
    differs(
        "shutdown_grace",
        old.shutdown_grace != new.shutdown_grace,
        false,
    );
    differs(
        "trusted_proxies",
        old.trusted_proxies != new.trusted_proxies,
        false,
    );
    r
}

fn smtp_key(c: &Config) -> Option<String> {
    c.smtp.as_ref().map(|s| {
        format!(
            "{:?}|{}",
            s,
            s.password
                .as_ref()
                .map(|p| p.expose_secret().to_owned())
                .unwrap_or_default()
        )
    })
}

fn master_key_key(c: &Config) -> String {
    match &c.master_key {
        config::MasterKeySource::Value(v) => format!("value:{}", v.expose_secret()),
        config::MasterKeySource::File(p) => format!("file:{}", p.display()),
        config::MasterKeySource::DataDir(p) => format!("data:{}", p.display()),
    }
}

/// Loads the configuration again (the file as it is now, the same flags and environment) and
/// applies what can change while running: the log filter, the configured reminder lead times
/// (the next background pass reschedules the tokens), the email settings. Logs what it applied
/// and what changed but needs a restart; a configuration with an error changes nothing.
fn reload(ctx: &AppContext, cfg: &mut Config) {
    let env: std::collections::BTreeMap<String, String> = std::env::vars().collect();
    let new = match Config::load(&env, &cfg.flags) {
        Ok(new) => new,
        Err(e) => {
            tracing::error!(error = %format!("{e:#}"), "SIGHUP: the configuration has an error; nothing was reloaded");
            return;
        }
    };
    let found = compare(cfg, &new);
    // Check everything first: a reload applies all it can or nothing.
    if found.applied.contains(&"log")
        && let Err(e) = bootstrap::log_filter(&new.log)
    {
        tracing::error!(error = %format!("{e:#}"), "SIGHUP: nothing was reloaded");
        return;
    }
    let mailer = if found.applied.contains(&"smtp") {
        match bootstrap::mailer(new.smtp.as_ref()) {
            Ok(m) => Some(m),
            Err(e) => {
                tracing::error!(error = %format!("{e:#}"), "SIGHUP: nothing was reloaded");
                return;
            }
        }
    } else {
        None
    };
    if found.applied.contains(&"log")
        && let Err(e) = bootstrap::reload_log_filter(&new.log)
    {
        tracing::error!(error = %format!("{e:#}"), "SIGHUP: the log filter was not changed");
    }
    if found.applied.contains(&"reminder_lead_times") {
        ctx.live
            .set_configured_lead_times(new.reminder_lead_times.clone());
    }
    if let Some(m) = mailer {
        ctx.notifier.mailer.set(m);
    }
    for w in &new.warnings {
        tracing::warn!("{w}");
    }
    // WARN: an operator's action, shown whatever log filter it just set.
    tracing::warn!(
        reloaded = %list(&found.applied),
        needs_restart = %list(&found.needs_restart),
        log = %new.log,
        reminder_lead_times = %new
            .reminder_lead_times
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(","),
        "SIGHUP: configuration reloaded"
    );
    if !found.needs_restart.is_empty() {
        tracing::warn!(
            settings = %list(&found.needs_restart),
            "SIGHUP: these settings changed but take effect only after a restart"
        );
    }
    // What is in force now: the old values of what needs a restart stay.
    cfg.log = new.log;
    cfg.reminder_lead_times = new.reminder_lead_times;
    cfg.smtp = new.smtp;
}

fn list(names: &[&str]) -> String {
    if names.is_empty() {
        "none".to_owned()
    } else {
        names.join(",")
    }
}
