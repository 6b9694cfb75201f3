//! `tokenwarden export` and `tokenwarden import`: the configuration as one JSON document
//! (`tokenwarden_server::ops::transfer`), and applying one to this instance.

use crate::bootstrap;
use crate::config::Config;
use anyhow::{Context, Result, bail};
use secrecy::{ExposeSecret, SecretString};
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use tokenwarden_server::ops::transfer;

/// The environment variable a passphrase may come from (never a command-line value: those show
/// in `ps`).
const PASSPHRASE_ENV: &str = "TOKENWARDEN_PASSPHRASE";

/// The passphrase: from the file, the environment, or the terminal (twice when `confirm`).
fn passphrase(file: Option<&Path>, confirm: bool) -> Result<SecretString> {
    if let Some(f) = file {
        let text = std::fs::read_to_string(f)
            .with_context(|| format!("cannot read the passphrase file {}", f.display()))?;
        let line = text.lines().next().unwrap_or_default().to_owned();
        if line.is_empty() {
            bail!("the passphrase file {} is empty", f.display());
        }
        return Ok(line.into());
    }
    if let Ok(v) = std::env::var(PASSPHRASE_ENV)
        && !v.is_empty()
    {
        return Ok(v.into());
    }
    if !std::io::stdin().is_terminal() {
        bail!(
            "a passphrase is needed: set {PASSPHRASE_ENV}, give --passphrase-file FILE, or run \
             on a terminal to be asked"
        );
    }
    let first = crate::commands::admin::prompt_hidden("passphrase: ")?;
    if confirm {
        let again = crate::commands::admin::prompt_hidden("passphrase again: ")?;
        if again != first {
            bail!("the passphrases differ");
        }
    }
    Ok(first.into())
}

pub(crate) async fn export(
    cfg: Config,
    output: Option<PathBuf>,
    with_secrets: bool,
    passphrase_file: Option<PathBuf>,
) -> Result<()> {
    let pass = if with_secrets {
        Some(passphrase(passphrase_file.as_deref(), true)?)
    } else {
        if passphrase_file.is_some() {
            bail!("--passphrase-file is for --with-secrets");
        }
        None
    };
    if let Some(p) = &output
        && p.exists()
    {
        bail!("{} already exists; choose a new file name", p.display());
    }
    let ctx = bootstrap::context(&cfg, bootstrap::Setup::Existing).await?;
    let doc = transfer::export(&ctx, "cli", pass.as_ref()).await?;
    let mut json = serde_json::to_vec_pretty(&doc)?;
    json.push(b'\n');
    match &output {
        Some(p) => {
            let mut opts = std::fs::OpenOptions::new();
            opts.write(true).create_new(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
            let mut f = opts
                .open(p)
                .with_context(|| format!("cannot create {}", p.display()))?;
            f.write_all(&json)?;
            f.sync_all()?;
            eprintln!(
                "exported {} apps, {} tokens, {} channels to {}{}",
                doc.apps.len(),
                doc.tokens.len(),
                doc.channels.len(),
                p.display(),
                if doc.secrets.is_some() {
                    " (secrets sealed with the passphrase)"
                } else {
                    " (no secrets)"
                }
            );
        }
        None => std::io::stdout().write_all(&json)?,
    }
    Ok(())
}

pub(crate) async fn import(
    cfg: Config,
    file: PathBuf,
    dry_run: bool,
    passphrase_file: Option<PathBuf>,
) -> Result<()> {
    let text = std::fs::read(&file).with_context(|| format!("cannot read {}", file.display()))?;
    let doc: transfer::Document = serde_json::from_slice(&text)
        .with_context(|| format!("{} is not a tokenwarden export document", file.display()))?;
    let pass = if doc.secrets.is_some() {
        Some(passphrase(passphrase_file.as_deref(), false)?)
    } else {
        None
    };
    let ctx = bootstrap::context(&cfg, bootstrap::Setup::Existing).await?;
    let report = transfer::import(&ctx, "cli", &doc, pass.as_ref(), dry_run).await?;
    for change in &report.changes {
        println!("{}{change}", if dry_run { "would " } else { "" });
    }
    for (app, key) in &report.new_api_keys {
        println!("API key of app {app} (shown once): {}", key.expose_secret());
    }
    if report.changes.is_empty() {
        eprintln!("nothing to change: this instance already matches the document");
    } else if dry_run {
        eprintln!(
            "{} changes would be made (dry run: nothing was changed)",
            report.changes.len()
        );
    } else {
        eprintln!("{} changes made", report.changes.len());
    }
    Ok(())
}
