//! `tokenwarden token`: listing tokens and starting a sign-in.

use crate::bootstrap;
use crate::cli::TokenCommand;
use crate::config::Config;
use anyhow::{Context, Result};
use tokenwarden_domain::{AppName, DeviceFlowStatus, Rfc3339, TokenName};
use tokenwarden_server::ops;
use tokenwarden_server::ops::grant::device;

pub(crate) async fn run(command: TokenCommand, cfg: Config) -> Result<()> {
    match command {
        TokenCommand::List { json } => {
            let ctx = bootstrap::context(&cfg, bootstrap::Setup::Existing).await?;
            // The whole list, read a page at a time through the core.
            let tokens = ops::lists::all_tokens(&ctx, &Default::default()).await?;
            let apps = ops::lists::all_apps(&ctx).await?;
            let app_name = |id| {
                apps.iter()
                    .find(|a| a.id == id)
                    .map(|a| a.name.to_string())
                    .unwrap_or_default()
            };
            if json {
                let rows: Vec<_> = tokens
                    .iter()
                    .map(|t| {
                        serde_json::json!({
                            "id": t.id, "name": t.name, "provider": t.provider,
                            "app": t.app_id.map(app_name), "status": t.status,
                            "refresh_token_expires_at": t.material.refresh_expires_at.map(tokenwarden_domain::Rfc3339),
                        })
                    })
                    .collect();
                println!("{}", serde_json::to_string_pretty(&rows)?);
            } else {
                let rows: Vec<Vec<String>> = tokens
                    .iter()
                    .map(|t| {
                        let scope = t.app_id.map_or_else(
                            || "global".to_owned(),
                            |a| format!("app:{}", app_name(a)),
                        );
                        vec![
                            t.id.to_string(),
                            t.name.to_string(),
                            t.provider.to_string(),
                            scope,
                            t.status.to_string(),
                            super::when_opt(t.material.refresh_expires_at),
                        ]
                    })
                    .collect();
                super::print_table(
                    &[
                        "ID",
                        "NAME",
                        "PROVIDER",
                        "SCOPE",
                        "STATUS",
                        "REFRESH TOKEN EXPIRES",
                    ],
                    &rows,
                );
            }
            Ok(())
        }
        TokenCommand::Authorize { name, app } => {
            let ctx = bootstrap::context(&cfg, bootstrap::Setup::Existing).await?;
            let token = find(&ctx, &name, app.as_deref()).await?;
            let url =
                tokenwarden_server::ops::grant::start_authorization(&ctx, &token, "cli", None)
                    .await
                    .map_err(|e| anyhow::anyhow!("{e}"))?;
            println!("{url}");
            eprintln!(
                "open the URL above in a browser within {} minutes and sign in; tokenwarden must be running at {} to receive the callback",
                tokenwarden_server::ops::grant::STATE_TTL_MINUTES,
                ctx.settings.redirect_uri()
            );
            Ok(())
        }
        TokenCommand::DeviceStart { name, app, no_wait } => {
            let ctx = bootstrap::context(&cfg, bootstrap::Setup::Existing).await?;
            let token = find(&ctx, &name, app.as_deref()).await?;
            let flow = device::start(&ctx, &token, "cli")
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            println!("code: {}", flow.user_code);
            println!("open: {}", flow.verification_uri);
            if let Some(complete) = &flow.verification_uri_complete {
                println!("or:   {complete}");
            }
            eprintln!(
                "on any device, open the page above, enter the code and sign in as the user the apps act as (valid until {})",
                Rfc3339(flow.expires_at)
            );
            if no_wait {
                eprintln!(
                    "not waiting: a running tokenwarden service polls the provider; see `tokenwarden token device-status {name}`"
                );
                return Ok(());
            }
            eprintln!(
                "waiting for the provider's answer (Ctrl-C stops waiting; the service keeps polling)..."
            );
            loop {
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                // The same poll as the service's background pass, under the same lease: one
                // poll per interval whoever makes it.
                let Some(flow) = device::poll_flow(&ctx, token.id)
                    .await
                    .map_err(|e| anyhow::anyhow!("{e}"))?
                else {
                    anyhow::bail!(
                        "the device sign-in of {name} was removed (the token was deleted?)"
                    );
                };
                if flow.is_done() {
                    return report(&name, &flow);
                }
            }
        }
        TokenCommand::DeviceStatus { name, app } => {
            let ctx = bootstrap::context(&cfg, bootstrap::Setup::Existing).await?;
            let token = find(&ctx, &name, app.as_deref()).await?;
            let flow = device::status(&ctx, token.id)
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?
                .with_context(|| format!("no device sign-in was started for {name}"))?;
            if !flow.is_done() {
                println!(
                    "pending: enter {} at {} (valid until {})",
                    flow.user_code,
                    flow.verification_uri,
                    Rfc3339(flow.expires_at)
                );
                return Ok(());
            }
            report(&name, &flow)
        }
    }
}

/// Prints how a device sign-in ended; an error unless it was approved.
fn report(name: &str, flow: &device::DeviceFlow) -> Result<()> {
    let why = flow.error.as_deref().unwrap_or_default();
    match flow.status {
        DeviceFlowStatus::Authorized => {
            println!("authorized: {name} holds an access token");
            Ok(())
        }
        DeviceFlowStatus::Pending => Ok(()),
        other => anyhow::bail!("{other}: {why}"),
    }
}

/// The global token of that name, or the app's own with `app`.
async fn find(
    ctx: &tokenwarden_server::AppContext,
    name: &str,
    app: Option<&str>,
) -> Result<tokenwarden_store::TokenRecord> {
    let token_name = TokenName::parse(name)?;
    let owner = match app {
        Some(a) => Some(
            ctx.store
                .get_app_by_name(&AppName::parse(a)?)
                .await
                .with_context(|| format!("no app named {a}"))?
                .id,
        ),
        None => None,
    };
    ctx.store
        .find_token(owner, &token_name)
        .await
        .with_context(|| match app {
            Some(a) => format!("app {a} has no token named {name}"),
            None => {
                format!("there is no global token named {name} (use --app for an app-level token)")
            }
        })
}
