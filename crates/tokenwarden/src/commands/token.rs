//! `tokenwarden token`: listing, creating and renaming tokens, and starting a sign-in.

use crate::bootstrap;
use crate::cli::TokenCommand;
use crate::config::Config;
use anyhow::{Context, Result, bail};
use secrecy::SecretString;
use std::collections::BTreeMap;
use tokenwarden_domain::{AppName, DeviceFlowStatus, ProviderId, Rfc3339, TokenName};
use tokenwarden_server::ops;
use tokenwarden_server::ops::grant::device;
use tokenwarden_server::ops::grant::keypair::{self, KeysView, PublicKeyView};

/// The environment variable a client secret may come from.
const CLIENT_SECRET_ENV: &str = "TOKENWARDEN_CLIENT_SECRET";

fn client_secret(from_stdin: bool) -> Result<Option<SecretString>> {
    if from_stdin {
        let mut line = String::new();
        std::io::stdin()
            .read_line(&mut line)
            .context("cannot read the client secret from standard input")?;
        let line = line.trim_end_matches(['\r', '\n']).to_owned();
        if line.is_empty() {
            bail!("standard input held no client secret");
        }
        return Ok(Some(line.into()));
    }
    Ok(std::env::var(CLIENT_SECRET_ENV)
        .ok()
        .filter(|v| !v.is_empty())
        .map(Into::into))
}

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
                let app_flag = app
                    .as_deref()
                    .map(|a| format!(" --app {a}"))
                    .unwrap_or_default();
                print_keys(&view, test.as_deref(), &format!("{name}{app_flag}"));
            }
            Ok(())
        }
        TokenCommand::Create {
            name,
            provider,
            grant,
            app,
            settings,
            client_id,
            client_secret_stdin,
            client_auth,
            client_secret_expires_at,
            json,
        } => {
            let ctx = bootstrap::context(&cfg, bootstrap::Setup::Existing).await?;
            let mut pairs = BTreeMap::new();
            for s in &settings {
                let Some((k, v)) = s.split_once('=') else {
                    bail!("--setting {s:?}: write NAME=VALUE");
                };
                pairs.insert(k.trim().to_owned(), v.trim().to_owned());
            }
            let new = ops::tokens::NewToken {
                name: TokenName::parse(&name)?,
                provider: ProviderId::parse(&provider)?,
                app: app.as_deref().map(AppName::parse).transpose()?,
                settings: pairs,
                client_id,
                client_secret: client_secret(client_secret_stdin)?,
                client_secret_2: None,
                grant,
                client_auth,
                client_secret_expires_at: rfc3339(
                    "--client-secret-expires-at",
                    client_secret_expires_at.as_deref(),
                )?,
            };
            let token = ops::tokens::create(&ctx, "cli", new)
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&serde_json::json!({
                        "id": token.id, "name": token.name, "provider": token.provider,
                        "grant": token.grant, "status": token.status,
                        "status_reason": token.status_reason,
                        "client_secret_expires_at": token.client_secret_expires_at.map(tokenwarden_domain::Rfc3339),
                    }))?
                );
            } else {
                println!("{}", token.id);
            }
            eprintln!(
                "token {} ({}) created with the grant {}; status {}",
                token.name, token.id, token.grant, token.status
            );
            // What a new admin does next, by the grant (a healthy token needs nothing).
            let app_flag = app
                .as_deref()
                .map(|a| format!(" --app {a}"))
                .unwrap_or_default();
            let next = match token.grant {
                _ if token.status == tokenwarden_domain::TokenStatus::Healthy => None,
                tokenwarden_domain::Grant::SnowflakeKeypair => Some(format!(
                    "`tokenwarden token keys {name}{app_flag}` shows the ALTER USER SQL to run in Snowflake; then `tokenwarden token authorize {name}{app_flag}`",
                    name = token.name
                )),
                tokenwarden_domain::Grant::ClientCredentials => Some(format!(
                    "the first access token is fetched when the client id and secret are stored (the UI's token form, or PATCH /api/v1/tokens/{}); the token's status says what the provider answered",
                    token.id
                )),
                _ => Some(format!(
                    "`tokenwarden token authorize {}{app_flag}` once the client id (and the secret, if the provider needs one) are stored",
                    token.name
                )),
            };
            if let Some(n) = next {
                eprintln!("next: {n}");
            }
            Ok(())
        }
        TokenCommand::Authorize { name, app, no_wait } => {
            let ctx = bootstrap::context(&cfg, bootstrap::Setup::Existing).await?;
            let token = find(&ctx, &name, app.as_deref()).await?;
            match ops::grant::start(&ctx, &token, "cli", None)
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?
            {
                ops::grant::Started::Redirect { url, .. } => {
                    println!("{url}");
                    eprintln!(
                        "open the URL above in a browser within {} minutes and sign in; tokenwarden must be running at {} to receive the callback",
                        ops::grant::STATE_TTL_MINUTES,
                        ctx.settings.redirect_uri()
                    );
                }
                ops::grant::Started::Ready(t) => {
                    eprintln!("token {} holds an access token now ({})", t.name, t.status);
                }
                ops::grant::Started::Device(flow) => {
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
                        // The same poll as the service's background pass, under the same
                        // lease: one poll per interval whoever makes it.
                        let Some(flow) = device::poll_flow(&ctx, token.id)
                            .await
                            .map_err(|e| anyhow::anyhow!("{e}"))?
                        else {
                            bail!(
                                "the device sign-in of {name} was removed (the token was deleted?)"
                            );
                        };
                        if flow.is_done() {
                            return report(&name, &flow);
                        }
                    }
                }
            }
            Ok(())
        }
        TokenCommand::SetSecret {
            name,
            app,
            client_secret_stdin,
            expires_at,
        } => {
            let ctx = bootstrap::context(&cfg, bootstrap::Setup::Existing).await?;
            let token = find(&ctx, &name, app.as_deref()).await?;
            let Some(secret) = client_secret(client_secret_stdin)? else {
                bail!(
                    "no client secret: give it on standard input with --client-secret-stdin, or in {CLIENT_SECRET_ENV}"
                );
            };
            let changes = ops::tokens::TokenChanges {
                client_secret: Some(secret),
                client_secret_expires_at: Some(rfc3339("--expires-at", expires_at.as_deref())?),
                ..Default::default()
            };
            let t = ops::tokens::update(&ctx, "cli", token.id, changes)
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            eprintln!(
                "token {} has a new client secret{}; status {}",
                t.name,
                t.client_secret_expires_at
                    .map(|e| format!(" (expires {})", Rfc3339(e)))
                    .unwrap_or_default(),
                t.status
            );
            Ok(())
        }
        TokenCommand::Rename {
            old,
            new,
            app,
            rebind_apps,
        } => {
            let ctx = bootstrap::context(&cfg, bootstrap::Setup::Existing).await?;
            let token = find(&ctx, &old, app.as_deref()).await?;
            let changes = ops::tokens::TokenChanges {
                name: Some(TokenName::parse(&new)?),
                rebind_apps,
                ..Default::default()
            };
            let renamed = ops::tokens::update(&ctx, "cli", token.id, changes)
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            eprintln!("token {old} renamed to {}", renamed.name);
            Ok(())
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

/// An optional instant given as RFC 3339 on the command line (`flag` names it in the error).
fn rfc3339(flag: &str, value: Option<&str>) -> Result<Option<chrono::DateTime<chrono::Utc>>> {
    value
        .map(|t| {
            chrono::DateTime::parse_from_rfc3339(t)
                .map(|t| t.with_timezone(&chrono::Utc))
                .map_err(|e| anyhow::anyhow!("{flag} {t:?}: {e} (e.g. 2028-06-30T00:00:00Z)"))
        })
        .transpose()
}

/// The token named `name`: the app's own with `app`, else the global one.
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
/// `which`: the token as the commands name it (`NAME [--app APP]`).
pub(crate) fn print_keys(v: &KeysView, test: Option<&str>, which: &str) {
    if let Some(t) = test {
        println!("connection test with the new key: {t}");
    }
    print_key("signing key", &v.current);
    if let Some(next) = &v.next {
        print_key("next key (rotation in progress, not signing yet)", next);
        if next.set_sql.is_some() {
            println!(
                "  then: tokenwarden token keys {which} --finish (tests the new key with Snowflake first) or --finish --confirmed"
            );
        } else {
            println!(
                "  then, once the JWKS is registered: tokenwarden token keys {which} --finish --confirmed"
            );
        }
    }
    if let Some(sql) = &v.unset_old_sql {
        println!(
            "after a rotation (only then), once the old key's JWTs expired (an hour), remove the old key:\n  {sql}"
        );
    }
    if let Some(sql) = &v.describe_sql {
        println!("check the fingerprints in Snowflake with:\n  {sql}");
    }
}
