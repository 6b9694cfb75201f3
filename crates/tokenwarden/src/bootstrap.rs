//! Building what the commands run with: the configuration, logging, the runtime, the store, the
//! vault and the [`AppContext`].

use crate::cli::GlobalArgs;
use crate::config::{self, Config, LogFormat, MasterKeySource, Overrides};
use anyhow::{Context, Result, bail};
use secrecy::ExposeSecret;
use std::path::Path;
use std::sync::Arc;
use tokenwarden_crypto::MasterKey;
use tokenwarden_domain::{Clock, SystemClock};
use tokenwarden_server::{AppContext, ServerSettings, Vault};
use tokenwarden_store::{DynStore, SqlStore, Store};

/// The configuration from the flags and the environment (and the file they name); starts
/// logging and reports what the configuration warned about.
pub(crate) fn load_config(global: &GlobalArgs, listen: Option<String>) -> Result<Config> {
    let overrides = Overrides {
        config_file: global.config.clone(),
        data_dir: global.data_dir.clone(),
        database_url: global.database_url.clone(),
        listen,
        log_format: global.log_format.clone(),
    };
    let env: std::collections::BTreeMap<String, String> = std::env::vars().collect();
    let cfg = Config::load(&env, &overrides)?;
    init_logging(&cfg.log, cfg.log_format);
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

/// The log filter `log` (`TOKENWARDEN_LOG`) names, with sqlx's statements kept quiet.
pub(crate) fn log_filter(filter: &str) -> Result<tracing_subscriber::EnvFilter> {
    tracing_subscriber::EnvFilter::try_new(format!("{filter},sqlx=warn"))
        .with_context(|| format!("the log filter {filter:?} does not parse"))
}

/// Changes the log filter of the running process (SIGHUP); set once by [`init_logging`].
static LOG_FILTER: std::sync::OnceLock<
    tracing_subscriber::reload::Handle<tracing_subscriber::EnvFilter, tracing_subscriber::Registry>,
> = std::sync::OnceLock::new();

/// Replaces the log filter in force (SIGHUP's reload of `log`).
pub(crate) fn reload_log_filter(filter: &str) -> Result<()> {
    let new = log_filter(filter)?;
    let handle = LOG_FILTER
        .get()
        .context("logging was not started with a reloadable filter")?;
    handle
        .reload(new)
        .map_err(|e| anyhow::anyhow!("cannot change the log filter: {e}"))
}

/// Logs to stderr as text (ANSI colours on a terminal unless NO_COLOR) or as JSON lines, with
/// a filter SIGHUP can change.
pub(crate) fn init_logging(filter: &str, format: LogFormat) {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let filter =
        log_filter(filter).unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,sqlx=warn"));
    let (filter, handle) = tracing_subscriber::reload::Layer::new(filter);
    let _ = LOG_FILTER.set(handle);
    let registry = tracing_subscriber::registry().with(filter);
    match format {
        LogFormat::Text => {
            let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr())
                && std::env::var_os("NO_COLOR").is_none();
            registry
                .with(
                    tracing_subscriber::fmt::layer()
                        .with_writer(std::io::stderr)
                        .with_ansi(ansi),
                )
                .init();
        }
        LogFormat::Json => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .flatten_event(true)
                    .with_current_span(true)
                    .with_span_list(false)
                    .with_writer(std::io::stderr),
            )
            .init(),
    }
}

/// Whether a command may set up what is missing (a new database, a new master key) or works on
/// existing data only.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Setup {
    /// `serve`, `demo`, `migrate`: create the database and a master key when there are none.
    Create,
    /// Every other command: a missing database is refused, saying where the command looked.
    Existing,
}

/// `path` made absolute against the current folder, for messages.
fn shown_path(path: &Path) -> String {
    std::path::absolute(path)
        .unwrap_or_else(|_| path.to_owned())
        .display()
        .to_string()
}

/// Refuses a data folder (or database folder) that exists as something else than a folder.
fn check_is_folder(dir: &Path, what: &str) -> Result<()> {
    if dir.exists() && !dir.is_dir() {
        bail!(
            "{what} {} is a file, not a folder: remove or rename the file, or name another \
             folder with --data-dir DIR (or TOKENWARDEN_DATA_DIR)",
            shown_path(dir)
        );
    }
    Ok(())
}

/// What a command that needs existing data says when there is none.
fn no_database(cfg: &Config, at: &str) -> anyhow::Error {
    anyhow::anyhow!(
        "no tokenwarden database at {at} (the place comes from {}). Run this command with the \
         data `tokenwarden serve` uses: in its folder, or with --data-dir DIR, \
         TOKENWARDEN_DATA_DIR, --config FILE or --database-url URL. `tokenwarden serve` and \
         `tokenwarden migrate` create a new database; this command does not",
        cfg.database_source
    )
}

/// Opens the database for a command. With [`Setup::Existing`] a database that is not there
/// (no SQLite file, or a PostgreSQL database without tokenwarden's tables) is refused before
/// anything is created; with [`Setup::Create`] the data folder and the database are made.
async fn open_store(cfg: &Config, clock: &dyn Clock, setup: Setup) -> Result<DynStore> {
    let url = cfg.database_url.expose_secret();
    let shown = config::redact_url(url);
    if cfg.is_sqlite() {
        check_is_folder(&cfg.data_dir, "the data folder")?;
        let db = tokenwarden_store::sqlite_path(url);
        if let Some(parent) = db.as_deref().and_then(Path::parent) {
            check_is_folder(parent, "the database's folder")?;
        }
        match (setup, &db) {
            (Setup::Create, _) => create_private_dir(&cfg.data_dir)?,
            (Setup::Existing, Some(db)) if !db.exists() => {
                return Err(no_database(cfg, &shown_path(db)));
            }
            (Setup::Existing, _) => {}
        }
        make_private(&cfg.data_dir, 0o700, "the data folder");
        if let Some(db) = &db {
            for suffix in ["", "-wal", "-shm"] {
                let mut name = db.clone().into_os_string();
                name.push(suffix);
                make_private(Path::new(&name), 0o600, "the database file");
            }
            // SQLite says only "unable to open database file": the system's reason (permission
            // denied, no such folder) is worth more, with the path. A new file is made 0600.
            let mut opts = std::fs::OpenOptions::new();
            opts.read(true).write(true);
            if setup == Setup::Create {
                opts.create(true);
                #[cfg(unix)]
                std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
            }
            opts.open(db)
                .with_context(|| format!("cannot open the database file {}", shown_path(db)))?;
        }
    }
    let store = SqlStore::connect(url)
        .await
        .with_context(|| format!("cannot open the database {shown}"))?;
    if setup == Setup::Existing && !has_tables(&store).await? {
        return Err(no_database(cfg, &shown));
    }
    store
        .migrate(clock.now())
        .await
        .with_context(|| format!("cannot update the database {shown}"))?;
    Ok(Arc::new(store))
}

/// Has tokenwarden ever set this database up (its migrations table is there)?
async fn has_tables(store: &SqlStore) -> Result<bool> {
    let sql = match store.backend() {
        tokenwarden_store::Backend::Sqlite => {
            "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' \
             AND name IN ('_sqlx_migrations', 'schema_migrations')"
        }
        tokenwarden_store::Backend::Postgres => {
            "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = current_schema() \
             AND table_name IN ('_sqlx_migrations', 'schema_migrations')"
        }
    };
    Ok(store.diagnostic(sql).await? != "0")
}

/// Holds the one-`serve`-per-SQLite-database lock until dropped.
pub(crate) struct ServeLock {
    _file: Option<std::fs::File>,
}

/// On SQLite, takes the lock file beside the database (`tokenwarden.db.lock`) for this process,
/// or refuses: two `serve` processes on one SQLite database would each run the background work
/// and cache what the other changed. Several instances share a PostgreSQL database instead.
pub(crate) fn lock_sqlite(cfg: &Config) -> Result<ServeLock> {
    let Some(db) = tokenwarden_store::sqlite_path(cfg.database_url.expose_secret())
        .filter(|_| cfg.is_sqlite())
    else {
        return Ok(ServeLock { _file: None });
    };
    check_is_folder(&cfg.data_dir, "the data folder")?;
    create_private_dir(&cfg.data_dir)?;
    let mut name = db.clone().into_os_string();
    name.push(".lock");
    let path = std::path::PathBuf::from(name);
    let mut opts = std::fs::OpenOptions::new();
    opts.read(true).write(true).create(true).truncate(false);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    let mut file = opts
        .open(&path)
        .with_context(|| format!("cannot open the lock file {}", shown_path(&path)))?;
    match file.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            let pid = std::fs::read_to_string(&path).unwrap_or_default();
            let pid = pid.trim();
            bail!(
                "another tokenwarden{} is already serving the SQLite database {} (it holds {}): \
                 SQLite is for one process. Stop the other one first; to run several instances, \
                 give them one PostgreSQL database (--database-url postgres://... or \
                 TOKENWARDEN_DATABASE_URL)",
                if pid.is_empty() {
                    String::new()
                } else {
                    format!(" (process {pid})")
                },
                shown_path(&db),
                shown_path(&path)
            );
        }
        Err(std::fs::TryLockError::Error(e)) => {
            return Err(e).with_context(|| format!("cannot lock {}", shown_path(&path)));
        }
    }
    use std::io::Write;
    file.set_len(0)?;
    writeln!(file, "{}", std::process::id())?;
    Ok(ServeLock { _file: Some(file) })
}

/// Creates the data folder (and its parents) readable by its owner only.
pub(crate) fn create_private_dir(dir: &Path) -> Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    check_is_folder(dir, "the data folder")?;
    builder
        .create(dir)
        .with_context(|| format!("cannot create the data folder {}", shown_path(dir)))
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
/// configured, generates one into the data folder (only with [`Setup::Create`]).
async fn open_vault(
    cfg: &Config,
    store: &DynStore,
    clock: &dyn Clock,
    setup: Setup,
) -> Result<Vault> {
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
        MasterKeySource::DataDir(p) if initialised => {
            bail!(tokenwarden_server::vault::VaultError::MissingMasterKey {
                looked_at: shown_path(p)
            })
        }
        MasterKeySource::DataDir(p) if setup == Setup::Existing => bail!(
            "the database {} has no encryption set up yet and there is no master key at {}: \
             start `tokenwarden serve` (or run `tokenwarden migrate`) once with this data to set \
             it up",
            config::redact_url(cfg.database_url.expose_secret()),
            shown_path(p)
        ),
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
pub(crate) async fn context(cfg: &Config, setup: Setup) -> Result<AppContext> {
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let store = open_store(cfg, clock.as_ref(), setup).await?;
    let vault = open_vault(cfg, &store, clock.as_ref(), setup).await?;
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
            metrics: tokenwarden_server::ops::metrics::MetricsAccess::new(
                cfg.metrics_token.as_ref(),
                cfg.metrics_allow.clone(),
            ),
            trusted_proxies: cfg.trusted_proxies.clone(),
        },
    );
    ctx.notifier.mailer.set(mailer(cfg.smtp.as_ref())?);
    if let Some(dir) = &cfg.providers_dir {
        ctx.catalog = Arc::new(tokenwarden_oauth::Catalog::with_folder(dir)?);
    }
    Ok(ctx)
}

/// The email sender the `[smtp]` settings describe (none without a host).
pub(crate) fn mailer(
    smtp: Option<&config::Smtp>,
) -> Result<Option<Arc<tokenwarden_notify::Mailer>>> {
    let Some(smtp) = smtp else { return Ok(None) };
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
    Ok(Some(Arc::new(mailer)))
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
