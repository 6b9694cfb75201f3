//! `tokenwarden app`: creating, listing and deleting apps.

use crate::bootstrap;
use crate::cli::AppCommand;
use crate::config::Config;
use anyhow::Result;
use secrecy::ExposeSecret;
use tokenwarden_domain::{AppName, TokenName};
use tokenwarden_server::ops;

pub(crate) async fn run(command: AppCommand, cfg: Config) -> Result<()> {
    let ctx = bootstrap::context(&cfg, bootstrap::Setup::Existing).await?;
    match command {
        AppCommand::Create { name, tokens } => {
            let name = AppName::parse(&name)?;
            let tokens = tokens
                .iter()
                .map(|t| TokenName::parse(t))
                .collect::<Result<Vec<_>, _>>()?;
            let (app, key) = tokenwarden_server::ops::apps::create(
                &ctx,
                "cli",
                tokenwarden_server::ops::apps::NewApp { name, tokens },
            )
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
            println!("{}", key.text.expose_secret());
            eprintln!(
                "app {} ({}) created; its API key above is shown only this once",
                app.name, app.id
            );
        }
        AppCommand::List { json } => {
            // The whole list, read a page at a time through the core.
            let apps = ops::lists::all_apps(&ctx).await?;
            if json {
                let rows: Vec<_> = apps
                    .iter()
                    .map(|a| serde_json::json!({
                        "id": a.id, "name": a.name, "state": a.state,
                        "stop_reason": a.stop_reason.as_ref().map(ToString::to_string), "tokens": a.tokens,
                    }))
                    .collect();
                println!("{}", serde_json::to_string_pretty(&rows)?);
            } else {
                let rows: Vec<Vec<String>> = apps
                    .iter()
                    .map(|a| {
                        let state = match &a.stop_reason {
                            Some(r) => format!("{} ({r})", a.state),
                            None => a.state.to_string(),
                        };
                        let tokens: Vec<_> = a.tokens.iter().map(ToString::to_string).collect();
                        vec![
                            a.id.to_string(),
                            a.name.to_string(),
                            state,
                            tokens.join(", "),
                        ]
                    })
                    .collect();
                super::print_table(&["ID", "NAME", "STATE", "TOKENS"], &rows);
            }
        }
        AppCommand::Delete { app } => {
            let found = ops::apps::find(&ctx, &app)
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            let deleted = ops::apps::delete(&ctx, "cli", found.id)
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            eprintln!(
                "app {} deleted: its API keys no longer work; its app-level tokens and per-app channels are gone",
                deleted.name
            );
        }
    }
    Ok(())
}
