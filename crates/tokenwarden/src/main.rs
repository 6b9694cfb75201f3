//! The `tokenwarden` command.

mod config;

use anyhow::{Context, Result, bail};
use clap::{Args, Parser, Subcommand};
use config::{Config, MasterKeySource, Overrides};
use secrecy::ExposeSecret;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokenwarden_crypto::MasterKey;
use tokenwarden_domain::{AppName, Clock, KeyLabel, SystemClock, TokenName};
use tokenwarden_server::{AppContext, ServerSettings, Vault};
use tokenwarden_store::{DynStore, SqlStore};

#[derive(Parser, Debug)]
#[command(
    name = "tokenwarden",
    version,
    about = "Self-hosted OAuth 2.0 access-token manager"
)]
struct Cli {
    #[command(flatten)]
    global: GlobalArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Args, Debug)]
struct GlobalArgs {
    /// TOML configuration file (see `tokenwarden config default`).
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Data folder for the embedded SQLite database and a generated master key.
    #[arg(long, global = true, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// sqlite://PATH or postgres://... (default: SQLite in the data folder).
    #[arg(long, global = true, value_name = "URL")]
    database_url: Option<String>,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the service.
    Serve {
        /// Address to listen on (default 127.0.0.1:8420).
        #[arg(long, value_name = "ADDR")]
        listen: Option<String>,
    },
    /// Try the whole Snowflake workflow offline: the service with a built-in Snowflake emulator,
    /// a demo admin, and an app waiting for its token. Data lives in a temporary folder unless
    /// --data-dir is given.
    Demo {
        /// Address of the service (default 127.0.0.1:8420).
        #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8420")]
        listen: String,
        /// Address of the built-in Snowflake emulator.
        #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:9300")]
        emulator_listen: String,
        /// Snowflake access-token lifetime in the emulator, in seconds (real Snowflake: 600).
        #[arg(long, default_value_t = 600)]
        access_token_ttl: u64,
    },
    /// Apply database migrations and exit.
    Migrate,
    /// Manage the encryption keys that protect stored secrets.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// Manage apps.
    App {
        #[command(subcommand)]
        command: AppCommand,
    },
    /// Inspect tokens.
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
    /// Admin credentials.
    Admin {
        #[command(subcommand)]
        command: AdminCommand,
    },
    /// Configuration helpers.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
}

#[derive(Subcommand, Debug)]
enum KeysCommand {
    /// Add a new data key, make it active, and re-encrypt every stored secret with it (online).
    Rotate {
        /// Afterwards remove the keys no longer used. Only when no other instance still runs with
        /// the old keyring (instances reload it every minute).
        #[arg(long)]
        drop_old: bool,
    },
    /// List data keys and how many stored secrets each protects.
    List,
    /// Decrypt every stored secret and report any that fails.
    Verify,
    /// Remove a data key no stored secret uses any more.
    Drop { key_id: String },
}

#[derive(Subcommand, Debug)]
enum AppCommand {
    /// Create an app and print its API key (shown once).
    Create {
        name: String,
        /// A token the app uses (repeatable).
        #[arg(long = "token", value_name = "NAME")]
        tokens: Vec<String>,
    },
    /// List apps.
    List {
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand, Debug)]
enum TokenCommand {
    /// List tokens.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Start the OAuth sign-in for a token and print the URL to open in any browser; the running
    /// service completes it at its callback.
    Authorize {
        /// The token's name.
        name: String,
        /// The owning app, for an app-level token (default: the global token of that name).
        #[arg(long)]
        app: Option<String>,
    },
}

#[derive(Subcommand, Debug)]
enum AdminCommand {
    /// Admin bearer tokens.
    Token {
        #[command(subcommand)]
        command: AdminTokenCommand,
    },
    /// Create an admin who signs in to the web UI. The password (at least 12 characters) is
    /// asked twice on a terminal, else read from standard input or from --password-file.
    Create {
        username: String,
        /// Read the password from this file (its first line).
        #[arg(long, value_name = "FILE")]
        password_file: Option<PathBuf>,
    },
}

#[derive(Subcommand, Debug)]
enum AdminTokenCommand {
    /// Create an admin bearer token and print it (shown once).
    Create {
        #[arg(long, default_value = "cli")]
        label: String,
    },
    /// List admin bearer tokens (never the tokens themselves).
    List,
    /// Revoke an admin bearer token at once (running instances stop accepting it within 10 s).
    Revoke { id: String },
}

#[derive(Subcommand, Debug)]
enum ConfigCommand {
    /// Print the default configuration file.
    Default,
}

fn main() {
    let cli = Cli::parse();
    if let Err(e) = run(cli) {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

fn run(cli: Cli) -> Result<()> {
    if let Command::Config {
        command: ConfigCommand::Default,
    } = cli.command
    {
        print!("{}", config::default_toml());
        return Ok(());
    }
    if let Command::Demo {
        listen,
        emulator_listen,
        access_token_ttl,
    } = &cli.command
    {
        return demo(
            cli.global.data_dir.clone(),
            listen,
            emulator_listen,
            *access_token_ttl,
        );
    }
    let listen = match &cli.command {
        Command::Serve { listen } => listen.clone(),
        _ => None,
    };
    let overrides = Overrides {
        config_file: cli.global.config.clone(),
        data_dir: cli.global.data_dir.clone(),
        database_url: cli.global.database_url.clone(),
        listen,
    };
    let env: std::collections::BTreeMap<String, String> = std::env::vars().collect();
    let cfg = Config::load(&env, &overrides)?;
    init_logging(&cfg.log);
    for w in &cfg.warnings {
        tracing::warn!("{w}");
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(dispatch(cli.command, cfg))
}

fn init_logging(filter: &str) {
    let filter = tracing_subscriber::EnvFilter::try_new(format!("{filter},sqlx=warn"))
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,sqlx=warn"));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr())
        && std::env::var_os("NO_COLOR").is_none();
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(ansi)
        .init();
}

async fn open_store(cfg: &Config, clock: &dyn Clock) -> Result<DynStore> {
    if cfg.is_sqlite() {
        std::fs::create_dir_all(&cfg.data_dir)
            .with_context(|| format!("cannot create the data folder {}", cfg.data_dir.display()))?;
    }
    let store = SqlStore::open(cfg.database_url.expose_secret(), clock.now())
        .await
        .with_context(|| {
            format!(
                "cannot open the database {}",
                config::redact_url(cfg.database_url.expose_secret())
            )
        })?;
    Ok(Arc::new(store))
}

fn read_key_file(path: &Path) -> Result<MasterKey> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the master key file {}", path.display()))?;
    warn_if_readable_by_others(path);
    MasterKey::parse(&text)
        .with_context(|| format!("the master key file {} is malformed", path.display()))
}

#[cfg(unix)]
fn warn_if_readable_by_others(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(meta) = std::fs::metadata(path)
        && meta.permissions().mode() & 0o077 != 0
    {
        tracing::warn!(path = %path.display(), "the master key file is readable by other users; chmod 600 it");
    }
}

#[cfg(not(unix))]
fn warn_if_readable_by_others(_: &Path) {}

fn write_new_key(path: &Path, key: &MasterKey) -> Result<()> {
    use std::io::Write;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    let mut f = opts
        .open(path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    writeln!(f, "{}", key.to_base64().expose_secret())?;
    f.sync_all()?;
    Ok(())
}

/// Finds the master key and opens the vault. On a database never used before, with no key
/// configured, generates one into the data folder.
async fn open_vault(cfg: &Config, store: &DynStore, clock: &dyn Clock) -> Result<Vault> {
    let initialised = tokenwarden_server::vault::is_initialised(store).await?;
    let key = match &cfg.master_key {
        MasterKeySource::Value(v) => {
            MasterKey::parse(v.expose_secret()).context("TOKENWARDEN_MASTER_KEY is malformed")?
        }
        MasterKeySource::File(p) => read_key_file(p)?,
        MasterKeySource::DataDir(p) if p.exists() => read_key_file(p)?,
        MasterKeySource::DataDir(_) if initialised => {
            bail!(tokenwarden_server::vault::VaultError::MissingMasterKey)
        }
        MasterKeySource::DataDir(p) => {
            std::fs::create_dir_all(&cfg.data_dir)?;
            let key = MasterKey::generate();
            write_new_key(p, &key)?;
            tracing::warn!(
                path = %p.display(),
                "generated a new master key next to the data; production keeps it elsewhere \
                 (TOKENWARDEN_MASTER_KEY_FILE or a secret manager) and backs it up: without it \
                 no stored secret can be read"
            );
            key
        }
    };
    Ok(Vault::open(store.clone(), key, clock.now()).await?)
}

async fn context(cfg: &Config) -> Result<AppContext> {
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let store = open_store(cfg, clock.as_ref()).await?;
    let vault = open_vault(cfg, &store, clock.as_ref()).await?;
    let mut ctx = AppContext::new(
        store,
        vault,
        clock,
        ServerSettings {
            public_url: cfg.public_url.clone(),
            bootstrap_admin_token: cfg.admin_token.clone(),
            max_body_bytes: cfg.max_body_bytes,
            reminder_lead_times: cfg.reminder_lead_times.clone(),
            engine_interval: cfg.engine_interval,
        },
    );
    if let Some(smtp) = &cfg.smtp {
        let security = match smtp.security.as_str() {
            "none" => tokenwarden_notify::SmtpSecurity::None,
            "tls" => tokenwarden_notify::SmtpSecurity::Tls,
            _ => tokenwarden_notify::SmtpSecurity::StartTls,
        };
        let mailer = tokenwarden_notify::Mailer::new(tokenwarden_notify::SmtpSettings {
            host: smtp.host.clone(),
            port: smtp.port,
            security,
            username: smtp.username.clone(),
            password: smtp.password.clone(),
            from: smtp.from.clone(),
            timeout: std::time::Duration::from_secs(20),
        })
        .map_err(|e| anyhow::anyhow!("SMTP settings: {e}"))?;
        ctx.notifier.mailer = Some(Arc::new(mailer));
    }
    if let Some(dir) = &cfg.providers_dir {
        ctx.catalog = Arc::new(tokenwarden_oauth::Catalog::with_folder(dir)?);
    }
    Ok(ctx)
}

async fn dispatch(command: Command, cfg: Config) -> Result<()> {
    match command {
        Command::Config { .. } => Ok(()),
        Command::Serve { .. } => serve(cfg).await,
        Command::Demo { .. } => Ok(()),
        Command::Migrate => {
            let ctx = context(&cfg).await?;
            println!("database is up to date ({:?})", ctx.store.backend());
            Ok(())
        }
        Command::Keys { command } => keys(command, cfg).await,
        Command::App { command } => app(command, cfg).await,
        Command::Token {
            command: TokenCommand::List { json },
        } => {
            let ctx = context(&cfg).await?;
            let tokens = ctx.store.list_tokens().await?;
            let apps = ctx.store.list_apps().await?;
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
                            "refresh_token_expires_at": t.material.refresh_expires_at,
                        })
                    })
                    .collect();
                println!("{}", serde_json::to_string_pretty(&rows)?);
            } else {
                println!(
                    "{:<36}  {:<24}  {:<10}  {:<16}  {:<22}  REFRESH TOKEN EXPIRES",
                    "ID", "NAME", "PROVIDER", "SCOPE", "STATUS"
                );
                for t in &tokens {
                    let scope = t
                        .app_id
                        .map_or_else(|| "global".to_owned(), |a| format!("app:{}", app_name(a)));
                    let exp = t
                        .material
                        .refresh_expires_at
                        .map_or_else(|| "-".to_owned(), |e| e.to_rfc3339());
                    println!(
                        "{:<36}  {:<24}  {:<10}  {:<16}  {:<22}  {exp}",
                        t.id, t.name, t.provider, scope, t.status
                    );
                }
            }
            Ok(())
        }
        Command::Token {
            command: TokenCommand::Authorize { name, app },
        } => {
            let ctx = context(&cfg).await?;
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
        Command::Admin {
            command:
                AdminCommand::Token {
                    command: AdminTokenCommand::Create { label },
                },
        } => {
            let ctx = context(&cfg).await?;
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
        Command::Admin {
            command:
                AdminCommand::Token {
                    command: AdminTokenCommand::List,
                },
        } => {
            let ctx = context(&cfg).await?;
            println!("{:<36}  {:<24}  {:<26}  REVOKED", "ID", "LABEL", "CREATED");
            for k in tokenwarden_server::ops::admins::list_admin_tokens(&ctx).await? {
                let revoked = k
                    .revoked_at
                    .map_or_else(|| "-".to_owned(), |r| r.to_rfc3339());
                println!(
                    "{:<36}  {:<24}  {:<26}  {revoked}",
                    k.id,
                    k.label,
                    k.created_at.to_rfc3339()
                );
            }
            Ok(())
        }
        Command::Admin {
            command:
                AdminCommand::Token {
                    command: AdminTokenCommand::Revoke { id },
                },
        } => {
            let ctx = context(&cfg).await?;
            tokenwarden_server::ops::admins::revoke_admin_token(&ctx, "cli", &id).await?;
            println!("revoked admin token {id}");
            Ok(())
        }
        Command::Admin {
            command:
                AdminCommand::Create {
                    username,
                    password_file,
                },
        } => {
            tokenwarden_server::ops::admins::check_username(&username)
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            let password = read_new_password(password_file.as_deref())?;
            let ctx = context(&cfg).await?;
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
fn prompt_hidden(prompt: &str) -> Result<String> {
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

async fn keys(command: KeysCommand, cfg: Config) -> Result<()> {
    let ctx = context(&cfg).await?;
    match command {
        KeysCommand::Rotate { drop_old } => {
            let r = tokenwarden_server::ops::keys::rotate(&ctx, "cli", drop_old).await?;
            println!("new active key: {}", r.new_key_id);
            println!("re-encrypted {} stored secrets", r.resealed);
            if r.skipped > 0 {
                println!(
                    "{} secrets changed while rotating; run `tokenwarden keys rotate` again",
                    r.skipped
                );
            }
            if drop_old {
                println!(
                    "removed keys: {}",
                    if r.retired_keys.is_empty() {
                        "none".into()
                    } else {
                        r.retired_keys.join(", ")
                    }
                );
            } else {
                println!(
                    "old keys are kept; remove them with `tokenwarden keys drop KEY_ID` once every instance has reloaded (within a minute)"
                );
            }
        }
        KeysCommand::List => {
            let sealed = ctx.store.sealed_values().await?;
            println!("{:<8}  {:<7}  {:<26}  SECRETS", "KEY", "ACTIVE", "CREATED");
            for k in ctx.store.list_data_keys().await? {
                let uses = sealed
                    .iter()
                    .filter(|v| {
                        tokenwarden_crypto::key_id_of(&v.sealed.0).is_ok_and(|id| id == k.key_id)
                    })
                    .count();
                println!(
                    "{:<8}  {:<7}  {:<26}  {uses}",
                    k.key_id,
                    if k.active { "yes" } else { "no" },
                    k.created_at.to_rfc3339()
                );
            }
        }
        KeysCommand::Verify => {
            let (ok, failed) = ctx.vault.verify_all().await?;
            for f in &failed {
                eprintln!("cannot decrypt {f}");
            }
            if !failed.is_empty() {
                bail!(
                    "{} of {} stored secrets cannot be decrypted",
                    failed.len(),
                    ok + failed.len()
                );
            }
            println!("all {ok} stored secrets decrypt with the current keys");
        }
        KeysCommand::Drop { key_id } => {
            tokenwarden_server::ops::keys::drop_key(&ctx, "cli", &key_id).await?;
            println!("removed key {key_id}");
        }
    }
    Ok(())
}

async fn app(command: AppCommand, cfg: Config) -> Result<()> {
    let ctx = context(&cfg).await?;
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
            let apps = ctx.store.list_apps().await?;
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
                println!("{:<36}  {:<24}  {:<30}  TOKENS", "ID", "NAME", "STATE");
                for a in &apps {
                    let state = match &a.stop_reason {
                        Some(r) => format!("{} ({r})", a.state),
                        None => a.state.to_string(),
                    };
                    let tokens: Vec<_> = a.tokens.iter().map(ToString::to_string).collect();
                    println!(
                        "{:<36}  {:<24}  {:<30}  {}",
                        a.id,
                        a.name,
                        state,
                        tokens.join(", ")
                    );
                }
            }
        }
    }
    Ok(())
}

async fn serve(cfg: Config) -> Result<()> {
    let ctx = context(&cfg).await?;
    let listener = tokio::net::TcpListener::bind(&cfg.listen)
        .await
        .with_context(|| format!("cannot listen on {}", cfg.listen))?;
    let addr = listener.local_addr()?;
    tracing::info!(
        address = %format!("http://{addr}"),
        database = %config::redact_url(cfg.database_url.expose_secret()),
        redirect_uri = %ctx.settings.redirect_uri(),
        admin_token = cfg.admin_token.is_some(),
        "tokenwarden is listening"
    );
    if cfg
        .admin_token
        .as_ref()
        .is_some_and(|t| t.expose_secret().len() < 16)
    {
        tracing::warn!(
            "TOKENWARDEN_ADMIN_TOKEN is shorter than 16 characters; use a long random value outside tests"
        );
    }
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
    tokenwarden_server::serve(listener, ctx, shutdown_signal()).await?;
    tracing::info!("stopped");
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        {
            s.recv().await;
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { () = ctrl_c => {}, () = term => {} }
}

const DEMO_ADMIN: &str = "admin";
const DEMO_PASSWORD: &str = "tokenwarden-demo";

/// `tokenwarden demo`: the emulator in this process, then `serve` on a demo data folder.
fn demo(data_dir: Option<PathBuf>, listen: &str, emulator_listen: &str, ttl: u64) -> Result<()> {
    let temp = match &data_dir {
        Some(_) => None,
        None => Some(
            tempfile::Builder::new()
                .prefix("tokenwarden-demo-")
                .tempdir()?,
        ),
    };
    let dir = data_dir.unwrap_or_else(|| {
        temp.as_ref()
            .map(|t| t.path().to_path_buf())
            .unwrap_or_default()
    });
    let env: std::collections::BTreeMap<String, String> = std::env::vars()
        .filter(|(k, _)| k == "TOKENWARDEN_LOG")
        .collect();
    let overrides = Overrides {
        data_dir: Some(dir.clone()),
        listen: Some(listen.to_owned()),
        ..Default::default()
    };
    let mut cfg = Config::load(&env, &overrides)?;
    init_logging(&cfg.log);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        // Bound first: with `--listen 127.0.0.1:0` the system picks the port, and the demo's
        // public URL (never configured: only TOKENWARDEN_LOG is read) is where it really listens.
        let listener = tokio::net::TcpListener::bind(&cfg.listen).await.with_context(|| format!("cannot listen on {}", cfg.listen))?;
        let addr = listener.local_addr()?;
        cfg.public_url = format!("http://{addr}");
        let emulator = snowflake_emulator::Emulator::start(
            snowflake_emulator::EmulatorConfig {
                access_token_ttl: std::time::Duration::from_secs(ttl.max(1)),
                ..snowflake_emulator::EmulatorConfig::default_for_tests()
            },
            emulator_listen,
        )
        .await
        .with_context(|| format!("cannot start the Snowflake emulator on {emulator_listen}"))?;
        let mut ctx = context(&cfg).await?;
        let clock = Arc::new(tokenwarden_domain::OffsetClock::default());
        let emu_handle = emulator.emulator.clone();
        ctx.clock = clock.clone();
        ctx.demo = Some(Arc::new(tokenwarden_server::DemoHooks {
            clock,
            on_advance: Box::new(move |offset| emu_handle.set_clock_offset(offset)),
        }));
        if ctx.store.count_admins().await? == 0 {
            tokenwarden_server::ops::admins::create_admin(&ctx, "demo", DEMO_ADMIN, DEMO_PASSWORD.into())
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            let app = AppName::parse("sales-invoice")?;
            if ctx.store.get_app_by_name(&app).await.is_err() {
                tokenwarden_server::ops::apps::create(&ctx, "demo", tokenwarden_server::ops::apps::NewApp { name: app, tokens: vec![TokenName::parse("snowflake-sales")?] })
                    .await
                    .map_err(|e| anyhow::anyhow!("{e}"))?;
            }
        }
        let emu = emulator.base_url();
        println!(
            "\ntokenwarden demo\n\n  Open      http://{addr}/   sign in as {DEMO_ADMIN} / {DEMO_PASSWORD}\n  \
             Snowflake {emu}/console   (emulator: ADMIN / admin-pass runs the SQL, ALICE / alice-pass signs in)\n\n  \
             1. Global Access Tokens > New token: provider Snowflake, account {emu}, role ANALYST, name snowflake-sales.\n  \
             2. Copy the SQL from the setup panel, run it in the Snowflake worksheet as ADMIN.\n  \
             3. Paste the SYSTEM$SHOW_OAUTH_CLIENT_SECRETS output into the token form.\n  \
             4. Get OAuth 2.0 Access Token: sign in as ALICE in the popup, Allow.\n  \
             5. Update, then Test connection. The app sales-invoice reads the token with its API key.\n\n  \
             Fast-forward time (both clocks):  curl -X POST http://{addr}/_demo/clock -d '{{\"seconds\": 6912000}}'\n\n  \
             Data: {} ({}). Ctrl-C stops.\n",
            dir.display(),
            if temp.is_some() { "deleted when the demo stops" } else { "kept" }
        );
        tokenwarden_server::serve(listener, ctx, shutdown_signal()).await?;
        emulator.shutdown();
        drop(temp);
        Ok(())
    })
}
