//! `tokenwarden admin`: admin bearer tokens and admins who sign in to the web UI (create,
//! list, set a password, remove).

use crate::bootstrap;
use crate::cli::{AdminCommand, AdminTokenCommand};
use crate::config::Config;
use anyhow::{Context, Result, bail};
use secrecy::ExposeSecret;
use std::path::Path;
use tokenwarden_domain::KeyLabel;
use tokenwarden_server::ops::admins::Asker;

pub(crate) async fn run(command: AdminCommand, cfg: Config) -> Result<()> {
    match command {
        AdminCommand::Token {
            command: AdminTokenCommand::Create { label },
        } => {
            let ctx = bootstrap::context(&cfg, bootstrap::Setup::Existing).await?;
            let label = KeyLabel::parse(&label)?;
            let key =
                tokenwarden_server::ops::admins::create_admin_token(&ctx, "cli", label).await?;
            println!("{}", key.text.expose_secret());
            eprintln!(
                "admin token {} created; it is shown only this once",
                key.record.id
            );
            Ok(())
        }
        AdminCommand::Token {
            command: AdminTokenCommand::List,
        } => {
            let ctx = bootstrap::context(&cfg, bootstrap::Setup::Existing).await?;
            let rows: Vec<Vec<String>> = tokenwarden_server::ops::admins::list_admin_tokens(&ctx)
                .await?
                .iter()
                .map(|k| {
                    vec![
                        k.id.to_string(),
                        k.label.to_string(),
                        super::when(k.created_at),
                        super::when_opt(k.revoked_at),
                    ]
                })
                .collect();
            super::print_table(&["ID", "LABEL", "CREATED", "REVOKED"], &rows);
            Ok(())
        }
        AdminCommand::Token {
            command: AdminTokenCommand::Revoke { id },
        } => {
            let ctx = bootstrap::context(&cfg, bootstrap::Setup::Existing).await?;
            tokenwarden_server::ops::admins::revoke_admin_token(&ctx, "cli", &id, None).await?;
            println!("revoked admin token {id}");
            Ok(())
        }
        AdminCommand::List => {
            let ctx = bootstrap::context(&cfg, bootstrap::Setup::Existing).await?;
            println!(
                "{:<36}  {:<24}  {:<26}  LAST SIGN-IN",
                "ID", "USERNAME", "CREATED"
            );
            for a in tokenwarden_server::ops::lists::all_admins(&ctx).await? {
                let last = a
                    .last_login_at
                    .map_or_else(|| "-".to_owned(), |t| t.to_rfc3339());
                println!(
                    "{:<36}  {:<24}  {:<26}  {last}",
                    a.id,
                    a.username,
                    a.created_at.to_rfc3339()
                );
            }
            Ok(())
        }
        AdminCommand::Password {
            username,
            password_file,
        } => {
            let password = read_new_password(password_file.as_deref())?;
            let ctx = bootstrap::context(&cfg, bootstrap::Setup::Existing).await?;
            let admin = tokenwarden_server::ops::admins::set_password(
                &ctx,
                Asker::credential("cli"),
                &username,
                password,
                None,
            )
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
            eprintln!(
                "password of admin {} changed; their sessions ended",
                admin.username
            );
            Ok(())
        }
        AdminCommand::Remove { username } => {
            let ctx = bootstrap::context(&cfg, bootstrap::Setup::Existing).await?;
            let admin = tokenwarden_server::ops::admins::remove_admin(
                &ctx,
                Asker::credential("cli"),
                &username,
            )
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
            eprintln!("admin {} removed", admin.username);
            Ok(())
        }
        AdminCommand::Create {
            username,
            password_file,
        } => {
            tokenwarden_server::ops::admins::check_username(&username)
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            let password = read_new_password(password_file.as_deref())?;
            let ctx = bootstrap::context(&cfg, bootstrap::Setup::Existing).await?;
            let admin =
                tokenwarden_server::ops::admins::create_admin(&ctx, "cli", &username, password)
                    .await
                    .map_err(|e| anyhow::anyhow!("{e}"))?;
            eprintln!(
                "admin {} created; sign in at {}/login",
                admin.username,
                ctx.settings.public_url.trim_end_matches('/')
            );
            Ok(())
        }
    }
}

/// Reads a line from the terminal without echoing it.
pub(crate) fn prompt_hidden(prompt: &str) -> Result<String> {
    use std::io::Write;
    eprint!("{prompt}");
    std::io::stderr().flush()?;
    let stty = |arg: &str| {
        std::process::Command::new("stty")
            .arg(arg)
            .stdin(std::process::Stdio::inherit())
            .status()
    };
    let hidden = stty("-echo").is_ok_and(|s| s.success());
    let mut line = String::new();
    let read = std::io::stdin().read_line(&mut line);
    if hidden {
        let _ = stty("echo");
    }
    eprintln!();
    read?;
    Ok(line.trim_end_matches(['\n', '\r']).to_owned())
}

/// The new admin's password: from the file, the terminal (twice), or standard input.
fn read_new_password(file: Option<&Path>) -> Result<secrecy::SecretString> {
    use std::io::{IsTerminal, Read};
    let password = if let Some(path) = file {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the password file {}", path.display()))?;
        text.lines().next().unwrap_or_default().to_owned()
    } else if std::io::stdin().is_terminal() {
        let first = prompt_hidden("Password (at least 12 characters): ")?;
        let second = prompt_hidden("Password again: ")?;
        if first != second {
            bail!("the two passwords differ");
        }
        first
    } else {
        let mut text = String::new();
        std::io::stdin().read_to_string(&mut text)?;
        text.lines().next().unwrap_or_default().to_owned()
    };
    tokenwarden_server::ops::admins::check_password(&password)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(password.into())
}
