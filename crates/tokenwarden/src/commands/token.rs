//! `tokenwarden token`: listing tokens and starting a sign-in.

use crate::bootstrap;
use crate::cli::TokenCommand;
use crate::config::Config;
use anyhow::{Context, Result};
use tokenwarden_domain::{AppName, TokenName};
use tokenwarden_server::ops;
use tokenwarden_server::ops::grant::keypair::{self, KeysView, PublicKeyView};

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
        TokenCommand::Keys {
            name,
            app,
            rotate,
            finish,
            confirmed,
            cancel,
            json,
        } => {
            let ctx = bootstrap::context(&cfg, bootstrap::Setup::Existing).await?;
            let token = find(&ctx, &name, app.as_deref()).await?;
            let err = |e: ops::Error| anyhow::anyhow!("{e}");
            let (view, test) = if rotate {
                (
                    keypair::rotate(&ctx, &token, "cli").await.map_err(err)?,
                    None,
                )
            } else if finish {
                let done = keypair::finish_rotation(&ctx, &token, "cli", confirmed)
                    .await
                    .map_err(err)?;
                (done.keys, done.test)
            } else if cancel {
                (
                    keypair::cancel_rotation(&ctx, &token, "cli")
                        .await
                        .map_err(err)?,
                    None,
                )
            } else {
                let view = keypair::view(&ctx, &token).await.map_err(err)?.with_context(|| {
                    format!(
                        "token {name} has no signing key (only Snowflake key-pair tokens and private_key_jwt clients have one)"
                    )
                })?;
                (view, None)
            };
            if json {
                println!("{}", serde_json::to_string_pretty(&view)?);
            } else {
                print_keys(&view, test.as_deref());
            }
            Ok(())
        }
        TokenCommand::Authorize { name, app } => {
            let ctx = bootstrap::context(&cfg, bootstrap::Setup::Existing).await?;
            let token_name = TokenName::parse(&name)?;
            let owner = match &app {
                Some(a) => Some(
                    ctx.store
                        .get_app_by_name(&AppName::parse(a)?)
                        .await
                        .with_context(|| format!("no app named {a}"))?
                        .id,
                ),
                None => None,
            };
            let token = ctx
                .store
                .find_token(owner, &token_name)
                .await
                .with_context(|| match &app {
                    Some(a) => format!("app {a} has no token named {name}"),
                    None => format!(
                        "there is no global token named {name} (use --app for an app-level token)"
                    ),
                })?;
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
    }
}

/// A token by name: the app's own with `app`, else the global one.
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

fn print_key(title: &str, k: &PublicKeyView) {
    println!("{title} ({}): {}", k.algorithm, k.fingerprint);
    match &k.set_sql {
        Some(sql) => println!("  run in Snowflake:\n  {sql}"),
        None => println!("  JWKS to register at the provider:\n  {}", k.jwks),
    }
}

/// The keys as text: what to run or paste, and the fingerprints to compare with
/// `DESC USER` (`RSA_PUBLIC_KEY_FP`).
pub(crate) fn print_keys(v: &KeysView, test: Option<&str>) {
    if let Some(t) = test {
        println!("connection test with the new key: {t}");
    }
    print_key("signing key", &v.current);
    if let Some(next) = &v.next {
        print_key("next key (rotation in progress, not signing yet)", next);
        println!(
            "  then: tokenwarden token keys NAME --finish (tests the new key) or --finish --confirmed"
        );
    }
    if let Some(sql) = &v.unset_old_sql {
        println!(
            "after a rotation, once the old key's JWTs expired (an hour), remove the old key:\n  {sql}"
        );
    }
    if let Some(sql) = &v.describe_sql {
        println!("check the fingerprints in Snowflake with:\n  {sql}");
    }
}
