//! Building what the commands run with: the configuration, logging, the runtime, the store, the
//! vault and the [`AppContext`].

use crate::cli::GlobalArgs;
use crate::config::{self, Config, MasterKeySource, Overrides};
use anyhow::{Context, Result, bail};
use secrecy::ExposeSecret;
use std::path::Path;
use std::sync::Arc;
use tokenwarden_crypto::MasterKey;
use tokenwarden_domain::{Clock, SystemClock};
use tokenwarden_server::{AppContext, ServerSettings, Vault};
use tokenwarden_store::{DynStore, SqlStore};

/// The configuration from the flags and the environment (and the file they name); starts
/// logging and reports what the configuration warned about.
pub(crate) fn load_config(global: &GlobalArgs, listen: Option<String>) -> Result<Config> {
    let overrides = Overrides {
        config_file: global.config.clone(),
        data_dir: global.data_dir.clone(),
        database_url: global.database_url.clone(),
        listen,
    };
    let env: std::collections::BTreeMap<String, String> = std::env::vars().collect();
    let cfg = Config::load(&env, &overrides)?;
    init_logging(&cfg.log);
    for w in &cfg.warnings {
        tracing::warn!("{w}");
    }
    Ok(cfg)
}

/// The multi-threaded runtime the commands run on.
pub(crate) fn runtime() -> Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}

pub(crate) fn init_logging(filter: &str) {
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
        create_private_dir(&cfg.data_dir)?;
        make_private(&cfg.data_dir, 0o700, "the data folder");
        if let Some(db) = tokenwarden_store::sqlite_path(cfg.database_url.expose_secret()) {
            for suffix in ["", "-wal", "-shm"] {
                let mut name = db.clone().into_os_string();
                name.push(suffix);
                make_private(Path::new(&name), 0o600, "the database file");
            }
        }
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

/// Creates the data folder (and its parents) readable by its owner only.
pub(crate) fn create_private_dir(dir: &Path) -> Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder
        .create(dir)
        .with_context(|| format!("cannot create the data folder {}", dir.display()))
}

/// Tightens an existing file or folder that others may read or write to `mode` (0600 or 0700),
/// with a warning: the database and the master key must be the owner's alone.
#[cfg(unix)]
fn make_private(path: &Path, mode: u32, what: &str) {
    use std::os::unix::fs::PermissionsExt;
    let Ok(meta) = std::fs::metadata(path) else {
        return;
    };
    let was = meta.permissions().mode() & 0o777;
    if was & 0o077 == 0 {
        return;
    }
    match std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)) {
        Ok(()) => tracing::warn!(
            path = %path.display(),
            "{what} was open to other users (mode {was:o}); it is now {mode:o}"
        ),
        Err(e) => tracing::warn!(
            path = %path.display(), error = %e,
            "{what} is open to other users (mode {was:o}) and could not be changed to {mode:o}"
        ),
    }
}

#[cfg(not(unix))]
fn make_private(_: &Path, _: u32, _: &str) {}

pub(crate) fn read_key_file(path: &Path) -> Result<MasterKey> {
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

pub(crate) fn write_new_key(path: &Path, key: &MasterKey) -> Result<()> {
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

/// The master key the configuration names, if any (for `restore`, which must not generate one):
/// the value, the key file, or a key already in the data folder.
pub(crate) fn configured_master_key(cfg: &Config) -> Result<Option<MasterKey>> {
    Ok(match &cfg.master_key {
        MasterKeySource::Value(v) => Some(
            MasterKey::parse(v.expose_secret()).context("TOKENWARDEN_MASTER_KEY is malformed")?,
        ),
        MasterKeySource::File(p) => Some(read_key_file(p)?),
        MasterKeySource::DataDir(p) if p.exists() => Some(read_key_file(p)?),
        MasterKeySource::DataDir(_) => None,
    })
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
        MasterKeySource::DataDir(p) if p.exists() && !initialised => {
            // The key next to the data was made on the first start, with the database: a
            // database without encryption set up beside it was deleted or replaced. Starting
            // would make a new empty one and lose everything silently.
            make_private(p, 0o600, "the master key file");
            let key = read_key_file(p)?;
            bail!(
                "the database {} holds no data, but the master key {} (check value {}) was made \
                 for a database that did: the database was probably deleted, moved or replaced. \
                 Restore it from a backup; to start over with no data, move the master key away",
                config::redact_url(cfg.database_url.expose_secret()),
                p.display(),
                key.check_value()
            )
        }
        MasterKeySource::DataDir(p) if p.exists() => {
            make_private(p, 0o600, "the master key file");
            read_key_file(p)?
        }
        MasterKeySource::DataDir(_) if initialised => {
            bail!(tokenwarden_server::vault::VaultError::MissingMasterKey)
        }
        MasterKeySource::DataDir(p) => {
            create_private_dir(&cfg.data_dir)?;
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

/// The context every command runs with: the store, the vault, the settings, the mailer and the
/// provider catalog.
pub(crate) async fn context(cfg: &Config) -> Result<AppContext> {
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
            audit_retention: cfg.audit_retention,
            refresh_concurrency: cfg.refresh_concurrency,
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

/// Completes on Ctrl-C or SIGTERM.
pub(crate) async fn shutdown_signal() {
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
