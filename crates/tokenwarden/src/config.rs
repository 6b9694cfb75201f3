//! Layered configuration: built-in defaults, then a TOML file, then `TOKENWARDEN_*` environment
//! variables (secrets also as `*_FILE`), then command-line flags. Unknown keys in the file are an
//! error; unknown `TOKENWARDEN_*` variables are reported.

use anyhow::{Context, Result, bail};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use tokenwarden_domain::LeadTime;

pub const DEFAULT_LISTEN: &str = "127.0.0.1:8420";
pub const DEFAULT_DATA_DIR: &str = "./tokenwarden-data";
pub const DEFAULT_MAX_BODY_BYTES: usize = 1024 * 1024;
const DEFAULT_REFRESH_CONCURRENCY: usize = tokenwarden_server::DEFAULT_REFRESH_CONCURRENCY;
const ENGINE_INTERVAL_SECS: u64 = tokenwarden_server::ENGINE_TICK.as_secs();

/// The file's shape. Every key is optional; unknown keys are refused.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub listen: Option<String>,
    pub data_dir: Option<PathBuf>,
    pub database_url: Option<String>,
    pub public_url: Option<String>,
    pub master_key_file: Option<PathBuf>,
    pub admin_token_file: Option<PathBuf>,
    pub max_body_bytes: Option<usize>,
    pub log: Option<String>,
    pub providers_dir: Option<PathBuf>,
    pub reminder_lead_times: Option<Vec<String>>,
    /// Seconds between background passes, or `"off"` (see [`parse_engine_interval`]).
    pub engine_interval: Option<toml::Value>,
    /// How long audit records are kept, e.g. `90d` (see [`parse_retention`]).
    pub audit_retention: Option<String>,
    /// Tokens one background pass works on at once (see [`parse_refresh_concurrency`]).
    pub refresh_concurrency: Option<usize>,
    /// A file holding the bearer token Prometheus scrapes `/metrics` with.
    pub metrics_token_file: Option<PathBuf>,
    /// Client addresses that may scrape `/metrics` without the token (`127.0.0.1/32`, ...).
    pub metrics_allow: Option<Vec<String>>,
    /// `text` or `json` (see [`LogFormat`]).
    pub log_format: Option<String>,
    /// Seconds `serve` waits on SIGTERM for requests and refreshes in flight.
    pub shutdown_grace: Option<u64>,
    /// Reverse proxies whose `X-Forwarded-For` is believed: addresses or ADDRESS/PREFIX.
    pub trusted_proxies: Option<Vec<String>>,
    pub smtp: Option<FileSmtp>,
}

/// `[smtp]`: where email notifications are sent from.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileSmtp {
    pub host: Option<String>,
    pub port: Option<u16>,
    /// `none` (plain, local relays only), `starttls` or `tls`.
    pub security: Option<String>,
    pub username: Option<String>,
    pub password_file: Option<PathBuf>,
    pub from: Option<String>,
}

/// Resolved SMTP settings. `Debug` hides the password.
#[derive(Clone)]
pub struct Smtp {
    pub host: String,
    pub port: u16,
    pub security: String,
    pub username: Option<String>,
    pub password: Option<SecretString>,
    pub from: String,
}

impl std::fmt::Debug for Smtp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Smtp")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("security", &self.security)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "[redacted]"))
            .field("from", &self.from)
            .finish()
    }
}

/// Parses `14d`, `12h`, `90m` (the one lead-time parser, shared with the UI).
pub fn parse_lead_time(s: &str) -> Result<LeadTime> {
    LeadTime::parse(s).map_err(|e| anyhow::anyhow!("lead time: {e}"))
}

/// How log lines are written: `text` for people (the default), `json` (one object a line)
/// for log shippers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

impl LogFormat {
    pub fn parse(v: &str) -> Result<Self> {
        match v.trim().to_ascii_lowercase().as_str() {
            "text" => Ok(Self::Text),
            "json" => Ok(Self::Json),
            other => bail!("log format {other:?} must be text or json"),
        }
    }
}

/// How long `serve` waits on SIGTERM by default for requests and refreshes in flight.
pub const DEFAULT_SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(10);

/// Where the master key comes from.
#[derive(Clone)]
pub enum MasterKeySource {
    /// Given directly (`TOKENWARDEN_MASTER_KEY`).
    Value(SecretString),
    /// A file named by `TOKENWARDEN_MASTER_KEY_FILE` or `master_key_file`.
    File(PathBuf),
    /// Nothing configured: `<data_dir>/master.key`, generated on first `serve`.
    DataDir(PathBuf),
}

/// The resolved configuration. `Debug` never shows a secret.
#[derive(Clone)]
pub struct Config {
    pub listen: String,
    pub data_dir: PathBuf,
    pub database_url: SecretString,
    /// Which setting chose the database (`--data-dir`, `TOKENWARDEN_DATA_DIR`, the config
    /// file, the default...), for messages that say where a command looked.
    pub database_source: String,
    pub public_url: String,
    pub master_key: MasterKeySource,
    pub admin_token: Option<SecretString>,
    pub max_body_bytes: usize,
    pub log: String,
    /// `--log-format`, `TOKENWARDEN_LOG_FORMAT`, `log_format`.
    pub log_format: LogFormat,
    /// On SIGTERM: how long requests and refreshes in flight may take before they are cut.
    pub shutdown_grace: std::time::Duration,
    /// Reverse proxies whose `X-Forwarded-For` names the client (empty: ignored).
    pub trusted_proxies: Vec<tokenwarden_domain::net::IpNet>,
    /// The command-line flags it was loaded with: SIGHUP loads the configuration again with
    /// them (the file is read again; the environment is the process's, unchanged).
    pub flags: Overrides,
    /// A folder of the user's own provider templates (`*.toml`).
    pub providers_dir: Option<PathBuf>,
    /// When to remind before a refresh token expires.
    pub reminder_lead_times: Vec<LeadTime>,
    pub smtp: Option<Smtp>,
    /// Time between background passes; `None`: never by itself (`engine_interval = "off"`).
    pub engine_interval: Option<std::time::Duration>,
    /// How long audit records are kept before the background pass prunes them.
    pub audit_retention: chrono::Duration,
    /// Refreshes one background pass runs at once.
    pub refresh_concurrency: usize,
    /// The bearer token that may scrape `/metrics` (`metrics_token_file`,
    /// `TOKENWARDEN_METRICS_TOKEN` or `_FILE`).
    pub metrics_token: Option<SecretString>,
    /// Client addresses that may scrape `/metrics` without it (`metrics_allow`,
    /// `TOKENWARDEN_METRICS_ALLOW`).
    pub metrics_allow: Vec<tokenwarden_server::ops::metrics::AddrRange>,
    /// Problems worth a warning (unknown environment variables), reported once logging is up.
    pub warnings: Vec<String>,
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("listen", &self.listen)
            .field("data_dir", &self.data_dir)
            .field(
                "database_url",
                &redact_url(self.database_url.expose_secret()),
            )
            .field("public_url", &self.public_url)
            .field(
                "master_key",
                &match &self.master_key {
                    MasterKeySource::Value(_) => "[from TOKENWARDEN_MASTER_KEY]".to_owned(),
                    MasterKeySource::File(p) | MasterKeySource::DataDir(p) => {
                        p.display().to_string()
                    }
                },
            )
            .field(
                "admin_token",
                &self.admin_token.as_ref().map(|_| "[redacted]"),
            )
            .field("max_body_bytes", &self.max_body_bytes)
            .field("log", &self.log)
            .field("log_format", &self.log_format)
            .field("shutdown_grace", &self.shutdown_grace)
            .field("trusted_proxies", &self.trusted_proxies)
            .field("providers_dir", &self.providers_dir)
            .field("reminder_lead_times", &self.reminder_lead_times)
            .field("smtp", &self.smtp)
            .field("engine_interval", &self.engine_interval)
            .field("audit_retention", &self.audit_retention)
            .field("refresh_concurrency", &self.refresh_concurrency)
            .field(
                "metrics_token",
                &self.metrics_token.as_ref().map(|_| "[redacted]"),
            )
            .field("metrics_allow", &self.metrics_allow)
            .finish()
    }
}

/// `postgres://user:secret@host/db` -> `postgres://user:***@host/db`.
pub fn redact_url(url: &str) -> String {
    if let Some((scheme, rest)) = url.split_once("://")
        && let Some((auth, host)) = rest.split_once('@')
    {
        let user = auth.split(':').next().unwrap_or_default();
        return format!("{scheme}://{user}:***@{host}");
    }
    url.to_owned()
}

/// Flags given on the command line; they win over everything else.
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    pub config_file: Option<PathBuf>,
    pub data_dir: Option<PathBuf>,
    pub database_url: Option<String>,
    pub listen: Option<String>,
    pub log_format: Option<String>,
}

const KNOWN_ENV: &[&str] = &[
    "TOKENWARDEN_CONFIG",
    "TOKENWARDEN_LISTEN",
    "TOKENWARDEN_DATA_DIR",
    "TOKENWARDEN_DATABASE_URL",
    "TOKENWARDEN_DATABASE_URL_FILE",
    "TOKENWARDEN_PUBLIC_URL",
    "TOKENWARDEN_MASTER_KEY",
    "TOKENWARDEN_MASTER_KEY_FILE",
    "TOKENWARDEN_ADMIN_TOKEN",
    "TOKENWARDEN_ADMIN_TOKEN_FILE",
    "TOKENWARDEN_MAX_BODY_BYTES",
    "TOKENWARDEN_LOG",
    "TOKENWARDEN_LOG_FORMAT",
    "TOKENWARDEN_SHUTDOWN_GRACE",
    "TOKENWARDEN_TRUSTED_PROXIES",
    "TOKENWARDEN_PASSPHRASE",
    "TOKENWARDEN_CLIENT_SECRET",
    "TOKENWARDEN_PROVIDERS_DIR",
    "TOKENWARDEN_REMINDER_LEAD_TIMES",
    "TOKENWARDEN_ENGINE_INTERVAL",
    "TOKENWARDEN_AUDIT_RETENTION",
    "TOKENWARDEN_REFRESH_CONCURRENCY",
    "TOKENWARDEN_METRICS_TOKEN",
    "TOKENWARDEN_METRICS_TOKEN_FILE",
    "TOKENWARDEN_METRICS_ALLOW",
    "TOKENWARDEN_SMTP_HOST",
    "TOKENWARDEN_SMTP_PORT",
    "TOKENWARDEN_SMTP_SECURITY",
    "TOKENWARDEN_SMTP_USERNAME",
    "TOKENWARDEN_SMTP_PASSWORD",
    "TOKENWARDEN_SMTP_PASSWORD_FILE",
    "TOKENWARDEN_SMTP_FROM",
];

fn read_secret_file(path: &Path, what: &str) -> Result<SecretString> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the {what} file {}", path.display()))?;
    let trimmed = text.trim();
    if trimmed.is_empty() {
        bail!("the {what} file {} is empty", path.display());
    }
    Ok(SecretString::from(trimmed))
}

impl Config {
    /// Resolves the configuration from `env` (normally `std::env::vars()`) and `flags`.
    pub fn load(env: &BTreeMap<String, String>, flags: &Overrides) -> Result<Self> {
        let get = |k: &str| env.get(k).filter(|v| !v.is_empty()).cloned();
        let mut warnings = Vec::new();
        for k in env.keys().filter(|k| k.starts_with("TOKENWARDEN_")) {
            if !KNOWN_ENV.contains(&k.as_str()) && !k.starts_with("TOKENWARDEN_TEST_") {
                warnings.push(format!("unknown environment variable {k} is ignored"));
            }
        }
        let file_path = flags
            .config_file
            .clone()
            .or_else(|| get("TOKENWARDEN_CONFIG").map(PathBuf::from));
        let file: FileConfig = match &file_path {
            Some(p) => {
                let text = std::fs::read_to_string(p)
                    .with_context(|| format!("cannot read the config file {}", p.display()))?;
                let file: FileConfig = toml::from_str(&text)
                    .with_context(|| format!("invalid config file {}", p.display()))?;
                // Relative paths in the file are relative to the file's folder, so that
                // `--config /srv/tw/tokenwarden.toml` finds the same data from any folder.
                file.relative_to(p.parent().unwrap_or(Path::new("")))
            }
            None => FileConfig::default(),
        };
        let in_file = |key: &str| {
            file_path
                .as_ref()
                .map(|p| format!("{key} in the config file {}", p.display()))
                .unwrap_or_default()
        };

        let listen = flags
            .listen
            .clone()
            .or_else(|| get("TOKENWARDEN_LISTEN"))
            .or(file.listen)
            .unwrap_or_else(|| DEFAULT_LISTEN.to_owned());
        check_listen(&listen)?;
        let (data_dir, data_dir_source) = if let Some(d) = flags.data_dir.clone() {
            (d, "--data-dir".to_owned())
        } else if let Some(d) = get("TOKENWARDEN_DATA_DIR") {
            (PathBuf::from(d), "TOKENWARDEN_DATA_DIR".to_owned())
        } else if let Some(d) = file.data_dir {
            (d, in_file("data_dir"))
        } else {
            (
                PathBuf::from(DEFAULT_DATA_DIR),
                format!(
                    "the default data folder {DEFAULT_DATA_DIR} in the current folder{}",
                    std::env::current_dir()
                        .map(|d| format!(" {}", d.display()))
                        .unwrap_or_default()
                ),
            )
        };
        let (database_url, database_source) = match (
            flags.database_url.clone(),
            get("TOKENWARDEN_DATABASE_URL"),
            get("TOKENWARDEN_DATABASE_URL_FILE"),
        ) {
            (Some(u), _, _) => (SecretString::from(u), "--database-url".to_owned()),
            (None, Some(u), _) => (SecretString::from(u), "TOKENWARDEN_DATABASE_URL".to_owned()),
            (None, None, Some(f)) => (
                read_secret_file(Path::new(&f), "database URL")?,
                format!("TOKENWARDEN_DATABASE_URL_FILE {f}"),
            ),
            (None, None, None) => match file.database_url {
                Some(u) => (SecretString::from(u), in_file("database_url")),
                None => (
                    SecretString::from(format!(
                        "sqlite://{}",
                        data_dir.join("tokenwarden.db").display()
                    )),
                    if flags.data_dir.is_none()
                        && get("TOKENWARDEN_DATA_DIR").is_none()
                        && !data_dir_source.contains("config file")
                    {
                        data_dir_source.clone()
                    } else {
                        format!("the data folder, from {data_dir_source}")
                    },
                ),
            },
        };
        let public_url = get("TOKENWARDEN_PUBLIC_URL")
            .or(file.public_url)
            .unwrap_or_else(|| format!("http://{listen}"));
        if !(public_url.starts_with("http://") || public_url.starts_with("https://")) {
            bail!("public_url {public_url:?} must start with http:// or https://");
        }
        let master_key = match (
            get("TOKENWARDEN_MASTER_KEY"),
            get("TOKENWARDEN_MASTER_KEY_FILE"),
        ) {
            (Some(v), _) => MasterKeySource::Value(SecretString::from(v)),
            (None, Some(f)) => MasterKeySource::File(PathBuf::from(f)),
            (None, None) => match file.master_key_file {
                Some(f) => MasterKeySource::File(f),
                None => MasterKeySource::DataDir(data_dir.join("master.key")),
            },
        };
        let admin_token = match (
            get("TOKENWARDEN_ADMIN_TOKEN"),
            get("TOKENWARDEN_ADMIN_TOKEN_FILE"),
            file.admin_token_file,
        ) {
            (Some(v), _, _) => Some(SecretString::from(v)),
            (None, Some(f), _) => Some(read_secret_file(Path::new(&f), "admin token")?),
            (None, None, Some(f)) => Some(read_secret_file(&f, "admin token")?),
            (None, None, None) => None,
        };
        if let Some(t) = &admin_token {
            check_admin_token(t.expose_secret())?;
        }
        let max_body_bytes = match get("TOKENWARDEN_MAX_BODY_BYTES") {
            Some(v) => v.parse().with_context(|| {
                format!("TOKENWARDEN_MAX_BODY_BYTES={v:?} is not a number of bytes")
            })?,
            None => file.max_body_bytes.unwrap_or(DEFAULT_MAX_BODY_BYTES),
        };
        let log = get("TOKENWARDEN_LOG")
            .or(file.log)
            .unwrap_or_else(|| "info".to_owned());
        let log_format = match (
            flags.log_format.clone(),
            get("TOKENWARDEN_LOG_FORMAT"),
            file.log_format,
        ) {
            (Some(v), _, _) => LogFormat::parse(&v).context("--log-format")?,
            (None, Some(v), _) => LogFormat::parse(&v).context("TOKENWARDEN_LOG_FORMAT")?,
            (None, None, Some(v)) => {
                LogFormat::parse(&v).context("log_format in the config file")?
            }
            (None, None, None) => LogFormat::Text,
        };
        let shutdown_grace = match (get("TOKENWARDEN_SHUTDOWN_GRACE"), file.shutdown_grace) {
            (Some(v), _) => parse_shutdown_grace(&v)
                .with_context(|| format!("TOKENWARDEN_SHUTDOWN_GRACE={v:?}"))?,
            (None, Some(n)) => {
                parse_shutdown_grace(&n.to_string()).context("shutdown_grace in the config file")?
            }
            (None, None) => DEFAULT_SHUTDOWN_GRACE,
        };
        let trusted_proxies = match get("TOKENWARDEN_TRUSTED_PROXIES") {
            Some(v) => parse_trusted_proxies(v.split(','))
                .with_context(|| format!("TOKENWARDEN_TRUSTED_PROXIES={v:?}"))?,
            None => {
                parse_trusted_proxies(file.trusted_proxies.iter().flatten().map(String::as_str))
                    .context("trusted_proxies in the config file")?
            }
        };
        let providers_dir = get("TOKENWARDEN_PROVIDERS_DIR")
            .map(PathBuf::from)
            .or(file.providers_dir);
        let lead_texts: Vec<String> = match get("TOKENWARDEN_REMINDER_LEAD_TIMES") {
            Some(v) => v
                .split(',')
                .map(|x| x.trim().to_owned())
                .filter(|x| !x.is_empty())
                .collect(),
            None => file
                .reminder_lead_times
                .unwrap_or_else(|| vec!["14d".into(), "7d".into(), "3d".into(), "1d".into()]),
        };
        let mut reminder_lead_times = lead_texts
            .iter()
            .map(|t| parse_lead_time(t))
            .collect::<Result<Vec<_>>>()?;
        reminder_lead_times.sort_by(|a, b| b.cmp(a));
        reminder_lead_times.dedup();
        let engine_interval = match (get("TOKENWARDEN_ENGINE_INTERVAL"), file.engine_interval) {
            (Some(v), _) => parse_engine_interval(&v)
                .with_context(|| format!("TOKENWARDEN_ENGINE_INTERVAL={v:?}"))?,
            (None, Some(toml::Value::Integer(n))) => parse_engine_interval(&n.to_string())
                .context("engine_interval in the config file")?,
            (None, Some(toml::Value::String(v))) => {
                parse_engine_interval(&v).context("engine_interval in the config file")?
            }
            (None, Some(other)) => {
                bail!("engine_interval {other} must be a number of seconds or \"off\"")
            }
            (None, None) => Some(tokenwarden_server::ENGINE_TICK),
        };
        let audit_retention = match (get("TOKENWARDEN_AUDIT_RETENTION"), file.audit_retention) {
            (Some(v), _) => {
                parse_retention(&v).with_context(|| format!("TOKENWARDEN_AUDIT_RETENTION={v:?}"))?
            }
            (None, Some(v)) => parse_retention(&v).context("audit_retention in the config file")?,
            (None, None) => tokenwarden_server::DEFAULT_AUDIT_RETENTION,
        };
        let refresh_concurrency = match get("TOKENWARDEN_REFRESH_CONCURRENCY") {
            Some(v) => parse_refresh_concurrency(&v)
                .with_context(|| format!("TOKENWARDEN_REFRESH_CONCURRENCY={v:?}"))?,
            None => match file.refresh_concurrency {
                Some(n) => parse_refresh_concurrency(&n.to_string())
                    .context("refresh_concurrency in the config file")?,
                None => tokenwarden_server::DEFAULT_REFRESH_CONCURRENCY,
            },
        };
        let metrics_token = match (
            get("TOKENWARDEN_METRICS_TOKEN"),
            get("TOKENWARDEN_METRICS_TOKEN_FILE"),
            file.metrics_token_file,
        ) {
            (Some(v), _, _) => Some(SecretString::from(v)),
            (None, Some(f), _) => Some(read_secret_file(Path::new(&f), "metrics token")?),
            (None, None, Some(f)) => Some(read_secret_file(&f, "metrics token")?),
            (None, None, None) => None,
        };
        if let Some(t) = &metrics_token {
            check_secret_strength(
                t.expose_secret(),
                "metrics token (TOKENWARDEN_METRICS_TOKEN, its file or metrics_token_file)",
            )?;
        }
        let metrics_allow = match get("TOKENWARDEN_METRICS_ALLOW") {
            Some(v) => parse_metrics_allow(v.split(','))
                .with_context(|| format!("TOKENWARDEN_METRICS_ALLOW={v:?}"))?,
            None => parse_metrics_allow(file.metrics_allow.iter().flatten().map(String::as_str))
                .context("metrics_allow in the config file")?,
        };
        let fs = file.smtp.unwrap_or_default();
        let smtp_host = get("TOKENWARDEN_SMTP_HOST").or(fs.host);
        let smtp = match smtp_host {
            None => None,
            Some(host) => {
                let security = get("TOKENWARDEN_SMTP_SECURITY")
                    .or(fs.security)
                    .unwrap_or_else(|| "starttls".into());
                if !matches!(security.as_str(), "none" | "starttls" | "tls") {
                    bail!("smtp security {security:?} must be none, starttls or tls");
                }
                let port = match get("TOKENWARDEN_SMTP_PORT") {
                    Some(p) => p
                        .parse()
                        .with_context(|| format!("TOKENWARDEN_SMTP_PORT={p:?} is not a port"))?,
                    None => fs.port.unwrap_or(match security.as_str() {
                        "tls" => 465,
                        "none" => 25,
                        _ => 587,
                    }),
                };
                let password = match (
                    get("TOKENWARDEN_SMTP_PASSWORD"),
                    get("TOKENWARDEN_SMTP_PASSWORD_FILE"),
                    fs.password_file,
                ) {
                    (Some(p), _, _) => Some(SecretString::from(p)),
                    (None, Some(f), _) => Some(read_secret_file(Path::new(&f), "SMTP password")?),
                    (None, None, Some(f)) => Some(read_secret_file(&f, "SMTP password")?),
                    (None, None, None) => None,
                };
                let from = get("TOKENWARDEN_SMTP_FROM")
                    .or(fs.from)
                    .unwrap_or_else(|| format!("tokenwarden@{host}"));
                Some(Smtp {
                    host,
                    port,
                    security,
                    username: get("TOKENWARDEN_SMTP_USERNAME").or(fs.username),
                    password,
                    from,
                })
            }
        };
        Ok(Self {
            reminder_lead_times,
            smtp,
            engine_interval,
            audit_retention,
            refresh_concurrency,
            metrics_token,
            metrics_allow,
            listen,
            data_dir,
            database_url,
            database_source,
            public_url,
            master_key,
            admin_token,
            max_body_bytes,
            log,
            log_format,
            shutdown_grace,
            trusted_proxies,
            flags: flags.clone(),
            providers_dir,
            warnings,
        })
    }

    pub fn is_sqlite(&self) -> bool {
        self.database_url.expose_secret().starts_with("sqlite:")
    }
}

impl FileConfig {
    /// The file's relative paths (data folder, key and secret files, providers folder, a
    /// SQLite database) made relative to `base`, the file's own folder.
    fn relative_to(mut self, base: &Path) -> Self {
        if base.as_os_str().is_empty() {
            return self;
        }
        let rel = |p: PathBuf| {
            if p.is_absolute() {
                p
            } else {
                base.join(p.strip_prefix(".").unwrap_or(&p))
            }
        };
        self.data_dir = self.data_dir.map(rel);
        self.master_key_file = self.master_key_file.map(rel);
        self.admin_token_file = self.admin_token_file.map(rel);
        self.metrics_token_file = self.metrics_token_file.map(rel);
        self.providers_dir = self.providers_dir.map(rel);
        if let Some(smtp) = &mut self.smtp {
            smtp.password_file = smtp.password_file.take().map(rel);
        }
        if let Some(url) = &self.database_url
            && let Some(path) = tokenwarden_store::sqlite_path(url)
            && path.is_relative()
        {
            let query = url.split_once('?').map(|(_, q)| format!("?{q}"));
            self.database_url = Some(format!(
                "sqlite://{}{}",
                rel(path).display(),
                query.unwrap_or_default()
            ));
        }
        self
    }
}

/// The address to listen on must name a host and a port (`127.0.0.1:8420`, `0.0.0.0:8420`,
/// `[::1]:8420`, `localhost:8420`): a port alone is refused before anything starts.
pub fn check_listen(listen: &str) -> Result<()> {
    let hint = "write HOST:PORT, e.g. 127.0.0.1:8420 (this machine only) or 0.0.0.0:8420 (every interface)";
    if listen.trim().parse::<u16>().is_ok() {
        bail!("the listen address {listen:?} has no host: {hint}");
    }
    let Some((host, port)) = listen.rsplit_once(':') else {
        bail!("the listen address {listen:?} has no port: {hint}");
    };
    if host.is_empty() {
        bail!("the listen address {listen:?} has no host: {hint}");
    }
    if port.parse::<u16>().is_err() {
        bail!("the listen address {listen:?} has no valid port (0 to 65535): {hint}");
    }
    if host.contains(':') && !(host.starts_with('[') && host.ends_with(']')) {
        bail!(
            "the listen address {listen:?} is not HOST:PORT (an IPv6 host goes in brackets, e.g. [::1]:8420): {hint}"
        );
    }
    Ok(())
}

/// `engine_interval`: whole seconds between background passes; `0` or `off`: no passes by
/// themselves (tests that drive the engine; an instance that only serves reads).
pub fn parse_engine_interval(v: &str) -> Result<Option<std::time::Duration>> {
    let v = v.trim();
    if v.eq_ignore_ascii_case("off") {
        return Ok(None);
    }
    let secs: u64 = v
        .parse()
        .with_context(|| format!("{v:?} is not a number of seconds or \"off\""))?;
    Ok((secs > 0).then(|| std::time::Duration::from_secs(secs)))
}

/// `trusted_proxies`: addresses or ranges (`127.0.0.1`, `10.0.0.0/8`); blank entries skipped.
pub fn parse_trusted_proxies<'a>(
    entries: impl Iterator<Item = &'a str>,
) -> Result<Vec<tokenwarden_domain::net::IpNet>> {
    entries
        .map(str::trim)
        .filter(|e| !e.is_empty())
        .map(|e| tokenwarden_domain::net::IpNet::parse(e).map_err(|m| anyhow::anyhow!(m)))
        .collect()
}

/// `shutdown_grace`: whole seconds, 0 to 3600 (0: cut what is in flight at once).
pub fn parse_shutdown_grace(v: &str) -> Result<std::time::Duration> {
    let secs: u64 = v
        .trim()
        .parse()
        .with_context(|| format!("{v:?} is not a whole number of seconds"))?;
    if secs > 3600 {
        bail!("{secs} s is out of range: 0 to 3600 seconds");
    }
    Ok(std::time::Duration::from_secs(secs))
}

/// `refresh_concurrency`: how many tokens one background pass refreshes at once, 1 to 1024.
pub fn parse_refresh_concurrency(v: &str) -> Result<usize> {
    let n: usize = v
        .trim()
        .parse()
        .with_context(|| format!("{v:?} is not a whole number"))?;
    if !(1..=1024).contains(&n) {
        bail!("{n} is out of range: 1 to 1024 refreshes at once");
    }
    Ok(n)
}

/// `audit_retention`: `90d`, `12h`, `30m` (the lead-time notation), from an hour to 100 years.
pub fn parse_retention(v: &str) -> Result<chrono::Duration> {
    let t = v.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: i64 = num
        .parse()
        .ok()
        .filter(|n| *n <= 100 * 366 * 24 * 60)
        .with_context(|| {
            format!("{t:?} is not a retention: write a number and d, h or m, e.g. 90d")
        })?;
    let d = match unit {
        "d" => chrono::Duration::days(n),
        "h" => chrono::Duration::hours(n),
        "m" => chrono::Duration::minutes(n),
        _ => bail!("{t:?} is not a retention: write a number and d, h or m, e.g. 90d"),
    };
    if d < chrono::Duration::hours(1) || d > chrono::Duration::days(100 * 366) {
        bail!("the audit retention {t:?} must be from 1 hour to 100 years");
    }
    Ok(d)
}

/// `tokenwarden config default`: the defaults as a commented TOML file.
/// The fewest characters and distinct characters a bootstrap admin token must have: it opens
/// every route, so it must not be guessable (`openssl rand -hex 24` gives 48 characters).
pub const ADMIN_TOKEN_MIN_LEN: usize = 32;
const ADMIN_TOKEN_MIN_DISTINCT: usize = 8;

/// Refuses a weak bootstrap admin token (too short, or too few different characters). The
/// message never contains the token.
pub fn check_admin_token(token: &str) -> Result<()> {
    check_secret_strength(token, "admin token (TOKENWARDEN_ADMIN_TOKEN or its file)")
}

/// `metrics_allow`: address ranges (`127.0.0.1/32`, `10.0.0.0/8`, `::1/128`), blanks skipped.
pub fn parse_metrics_allow<'a>(
    items: impl Iterator<Item = &'a str>,
) -> Result<Vec<tokenwarden_server::ops::metrics::AddrRange>> {
    items
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            tokenwarden_server::ops::metrics::AddrRange::parse(s).map_err(|e| anyhow::anyhow!(e))
        })
        .collect()
}

/// A bearer secret given to the service (the admin token, the metrics token) must be long and
/// varied enough not to be guessed.
fn check_secret_strength(token: &str, what: &str) -> Result<()> {
    let distinct = token
        .bytes()
        .collect::<std::collections::BTreeSet<u8>>()
        .len();
    if token.len() < ADMIN_TOKEN_MIN_LEN || distinct < ADMIN_TOKEN_MIN_DISTINCT {
        bail!(
            "the {what} is too weak: it needs at least \
             {ADMIN_TOKEN_MIN_LEN} characters with at least {ADMIN_TOKEN_MIN_DISTINCT} different \
             ones (it has {} and {distinct}); make one with `openssl rand -hex 24`",
            token.len()
        );
    }
    Ok(())
}

pub fn default_toml() -> String {
    format!(
        r#"# tokenwarden configuration. Every key is optional; shown here with its default.
# Precedence: this file < TOKENWARDEN_* environment variables < command-line flags.

# Address to serve on, HOST:PORT (TOKENWARDEN_LISTEN, --listen); 0.0.0.0:8420 for every interface.
listen = "{DEFAULT_LISTEN}"

# Where the embedded SQLite database and a generated master key live (TOKENWARDEN_DATA_DIR, --data-dir).
# Relative paths in this file are relative to the folder this file is in.
data_dir = "{DEFAULT_DATA_DIR}"

# sqlite://PATH or postgres://USER:PASSWORD@HOST/DB (TOKENWARDEN_DATABASE_URL or _FILE, --database-url).
# Default: sqlite://<data_dir>/tokenwarden.db
# database_url = "postgres://tokenwarden@127.0.0.1/tokenwarden"

# Base URL browsers and providers reach this service at; the OAuth redirect URI is
# <public_url>/oauth/callback (TOKENWARDEN_PUBLIC_URL). Default: http://<listen>
# public_url = "https://tokens.example.com"

# The master key (32 bytes, base64) that encrypts every stored secret. Give it as
# TOKENWARDEN_MASTER_KEY, TOKENWARDEN_MASTER_KEY_FILE, or this file path. Default:
# <data_dir>/master.key, generated on the first `serve`; production keeps it elsewhere.
# master_key_file = "/run/secrets/tokenwarden-master-key"

# A file holding a bootstrap admin bearer token (or TOKENWARDEN_ADMIN_TOKEN / _FILE).
# admin_token_file = "/run/secrets/tokenwarden-admin-token"

# Largest accepted request body, in bytes (TOKENWARDEN_MAX_BODY_BYTES).
max_body_bytes = {DEFAULT_MAX_BODY_BYTES}

# Log filter, e.g. "info" or "tokenwarden=debug,info" (TOKENWARDEN_LOG). SIGHUP reloads it.
log = "info"

# "text" for people or "json" (one object a line) for log shippers (TOKENWARDEN_LOG_FORMAT,
# --log-format). Every request has an id (X-Request-Id, taken from the request when sane).
log_format = "text"

# On SIGTERM or Ctrl-C: seconds to let requests and refreshes in flight finish; then they
# are cut and their leases released (TOKENWARDEN_SHUTDOWN_GRACE).
shutdown_grace = 10

# Reverse proxies (addresses or ranges) whose X-Forwarded-For names the client, which keys
# the sign-in throttle (TOKENWARDEN_TRUSTED_PROXIES="127.0.0.1,10.0.0.0/8"). Empty: forwarding
# headers are ignored and the peer's address is the client's.
trusted_proxies = []

# A folder of your own provider templates, one *.toml each, like the built-in ones
# (TOKENWARDEN_PROVIDERS_DIR). See `GET /api/v1/providers` for the built-in catalog.
# providers_dir = "/etc/tokenwarden/providers"

# When to remind people before a refresh token expires (TOKENWARDEN_REMINDER_LEAD_TIMES="14d,7d,3d,1d").
# SIGHUP reloads them (lead times an admin set in the web UI still win).
reminder_lead_times = ["14d", "7d", "3d", "1d"]

# Seconds between background passes (refresh ahead, reminders, daily checks, notification
# delivery); 0 or "off": none (TOKENWARDEN_ENGINE_INTERVAL).
engine_interval = {ENGINE_INTERVAL_SECS}

# How long audit records are kept; older ones are deleted by the background pass
# (TOKENWARDEN_AUDIT_RETENTION), e.g. "90d", "365d".
audit_retention = "90d"

# How many due tokens one background pass refreshes at once; each refresh still holds its
# token's lease, so several instances split the work (TOKENWARDEN_REFRESH_CONCURRENCY, 1-1024).
refresh_concurrency = {DEFAULT_REFRESH_CONCURRENCY}

# Prometheus metrics at GET /metrics (off, answering 404, unless one of these is set; see
# "Metrics and alerts" in docs/operations.md). Not the API's credentials:
# - a file holding a bearer token for the scraper, at least 32 characters
#   (or TOKENWARDEN_METRICS_TOKEN / _FILE); a scrape without it gets 401;
# - client addresses that may scrape without the token (TOKENWARDEN_METRICS_ALLOW="127.0.0.1/32,::1/128");
#   checked against the TCP peer, so behind a reverse proxy list the proxy or use the token.
#   With only this list, other addresses get 403.
# metrics_token_file = "/run/secrets/tokenwarden-metrics-token"
# metrics_allow = ["127.0.0.1/32", "::1/128"]

# Email notifications (TOKENWARDEN_SMTP_HOST, _PORT, _SECURITY, _USERNAME, _PASSWORD or
# _PASSWORD_FILE, _FROM). Without a host, email channels wait until one is configured.
# SIGHUP reloads this section; the other settings need a restart.
# [smtp]
# host = "smtp.example.com"
# port = 587
# security = "starttls"          # none | starttls | tls
# username = "tokenwarden"
# password_file = "/run/secrets/smtp-password"
# from = "tokenwarden@example.com"
"#
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn defaults_without_anything() {
        let c = Config::load(&env(&[]), &Overrides::default()).unwrap();
        assert_eq!(c.listen, "127.0.0.1:8420");
        assert_eq!(c.data_dir, PathBuf::from("./tokenwarden-data"));
        assert_eq!(
            c.database_url.expose_secret(),
            "sqlite://./tokenwarden-data/tokenwarden.db"
        );
        assert_eq!(c.public_url, "http://127.0.0.1:8420");
        assert!(
            matches!(c.master_key, MasterKeySource::DataDir(ref p) if p.ends_with("master.key"))
        );
        assert!(c.admin_token.is_none());
    }

    #[test]
    fn layers_apply_in_order_file_env_flags() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("tw.toml");
        std::fs::write(
            &file,
            "listen = \"127.0.0.1:1111\"\ndata_dir = \"/from/file\"\nlog = \"debug\"\n",
        )
        .unwrap();
        let e = env(&[("TOKENWARDEN_LISTEN", "127.0.0.1:2222")]);
        let flags = Overrides {
            config_file: Some(file.clone()),
            ..Default::default()
        };
        let c = Config::load(&e, &flags).unwrap();
        assert_eq!(c.listen, "127.0.0.1:2222", "env beats file");
        assert_eq!(c.data_dir, PathBuf::from("/from/file"));
        assert_eq!(c.log, "debug");
        let flags = Overrides {
            config_file: Some(file),
            listen: Some("127.0.0.1:3333".into()),
            ..Default::default()
        };
        assert_eq!(
            Config::load(&e, &flags).unwrap().listen,
            "127.0.0.1:3333",
            "flag beats env"
        );
    }

    #[test]
    fn unknown_file_keys_are_errors_and_unknown_env_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("tw.toml");
        std::fs::write(&file, "lisen = \"x\"\n").unwrap();
        let flags = Overrides {
            config_file: Some(file),
            ..Default::default()
        };
        let err = format!("{:#}", Config::load(&env(&[]), &flags).unwrap_err());
        assert!(err.contains("lisen"), "{err}");
        let c = Config::load(&env(&[("TOKENWARDEN_LISTN", "x")]), &Overrides::default()).unwrap();
        assert_eq!(
            c.warnings,
            ["unknown environment variable TOKENWARDEN_LISTN is ignored"]
        );
    }

    #[test]
    fn secrets_come_from_files_and_never_show_in_debug() {
        let dir = tempfile::tempdir().unwrap();
        let tok = dir.path().join("admin");
        std::fs::write(&tok, "s3cr3t-admin-0123456789abcdefghij\n").unwrap();
        let e = env(&[
            ("TOKENWARDEN_ADMIN_TOKEN_FILE", tok.to_str().unwrap()),
            ("TOKENWARDEN_DATABASE_URL", "postgres://tw:pg-pass@db/tw"),
            ("TOKENWARDEN_MASTER_KEY", "bWFzdGVyLWtleS1zZWNyZXQ="),
        ]);
        let c = Config::load(&e, &Overrides::default()).unwrap();
        assert_eq!(
            c.admin_token.as_ref().unwrap().expose_secret(),
            "s3cr3t-admin-0123456789abcdefghij"
        );
        let dbg = format!("{c:?}");
        for secret in [
            "s3cr3t-admin-0123456789abcdefghij",
            "pg-pass",
            "bWFzdGVyLWtleS1zZWNyZXQ=",
        ] {
            assert!(!dbg.contains(secret), "{secret} leaked in {dbg}");
        }
        let missing = Config::load(
            &env(&[("TOKENWARDEN_ADMIN_TOKEN_FILE", "/nonexistent/x")]),
            &Overrides::default(),
        );
        assert!(format!("{:#}", missing.unwrap_err()).contains("/nonexistent/x"));
    }

    /// Issue 9 bug 9: a short or low-variety admin token is refused, naming the problem and
    /// never the token.
    #[test]
    fn issue9_bug9_weak_admin_tokens_are_refused() {
        for weak in [
            "x",
            "admin-secret-123456",
            "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
            "abababababababababababababababababab",
        ] {
            let err = Config::load(
                &env(&[("TOKENWARDEN_ADMIN_TOKEN", weak)]),
                &Overrides::default(),
            )
            .unwrap_err();
            let msg = format!("{err:#}");
            assert!(
                msg.contains("admin token") && msg.contains("too weak"),
                "{msg}"
            );
            // (A one-letter token may occur in any sentence.)
            assert!(weak.len() < 3 || !msg.contains(weak), "{msg}");
        }
        let strong = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822c";
        let c = Config::load(
            &env(&[("TOKENWARDEN_ADMIN_TOKEN", strong)]),
            &Overrides::default(),
        )
        .unwrap();
        assert_eq!(c.admin_token.unwrap().expose_secret(), strong);
    }

    /// Issue 11 item 10: `--config /srv/tw/tokenwarden.toml` finds the same data from any
    /// folder: the file's relative paths are relative to the file; the place is named.
    #[test]
    fn issue11_item10_relative_paths_in_the_file_are_relative_to_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("tw.toml");
        std::fs::write(
            &file,
            "data_dir = \"./data\"\nmaster_key_file = \"keys/master.key\"\nproviders_dir = \"/abs/providers\"\n",
        )
        .unwrap();
        let flags = Overrides {
            config_file: Some(file.clone()),
            ..Default::default()
        };
        let c = Config::load(&env(&[]), &flags).unwrap();
        assert_eq!(c.data_dir, dir.path().join("data"));
        assert_eq!(
            c.database_url.expose_secret(),
            &format!(
                "sqlite://{}",
                dir.path().join("data/tokenwarden.db").display()
            )
        );
        assert!(
            matches!(&c.master_key, MasterKeySource::File(p) if *p == dir.path().join("keys/master.key"))
        );
        assert_eq!(c.providers_dir, Some(PathBuf::from("/abs/providers")));
        assert!(
            c.database_source.contains("data_dir in the config file")
                && c.database_source.contains("tw.toml"),
            "{}",
            c.database_source
        );
        std::fs::write(&file, "database_url = \"sqlite://db/tw.db?mode=rwc\"\n").unwrap();
        let c = Config::load(&env(&[]), &flags).unwrap();
        assert_eq!(
            c.database_url.expose_secret(),
            &format!(
                "sqlite://{}?mode=rwc",
                dir.path().join("db/tw.db").display()
            )
        );
        // The flag and the environment are taken as given (relative to the current folder).
        let c = Config::load(&env(&[("TOKENWARDEN_DATA_DIR", "rel")]), &flags).unwrap();
        assert_eq!(c.data_dir, PathBuf::from("rel"));
        assert_eq!(
            c.database_source,
            format!("database_url in the config file {}", file.display())
        );
    }

    /// Issue 11 item 11: a listen address needs a host and a port, said before anything starts.
    #[test]
    fn issue11_item11_a_listen_address_needs_a_host_and_a_port() {
        for ok in [
            "127.0.0.1:8420",
            "0.0.0.0:0",
            "[::1]:8420",
            "localhost:8420",
        ] {
            assert!(check_listen(ok).is_ok(), "{ok}");
        }
        for (bad, says) in [
            ("8420", "has no host"),
            (":8420", "has no host"),
            ("127.0.0.1", "has no port"),
            ("127.0.0.1:http", "no valid port"),
            ("127.0.0.1:70000", "no valid port"),
            ("::1:8420", "IPv6"),
        ] {
            let e = check_listen(bad).unwrap_err().to_string();
            assert!(
                e.contains(says) && e.contains("127.0.0.1:8420"),
                "{bad}: {e}"
            );
        }
        let e = Config::load(
            &env(&[("TOKENWARDEN_LISTEN", "8420")]),
            &Overrides::default(),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("has no host"), "{e}");
    }

    #[test]
    fn the_printed_default_config_parses_and_matches_the_defaults() {
        let parsed: FileConfig = toml::from_str(&default_toml()).unwrap();
        assert_eq!(parsed.listen.as_deref(), Some(DEFAULT_LISTEN));
        assert_eq!(parsed.max_body_bytes, Some(DEFAULT_MAX_BODY_BYTES));
        let c = Config::load(&BTreeMap::new(), &Overrides::default()).unwrap();
        assert_eq!(c.reminder_lead_times, LeadTime::defaults());
        assert!(c.smtp.is_none());
        assert_eq!(
            parsed.engine_interval,
            Some(toml::Value::Integer(ENGINE_INTERVAL_SECS as i64))
        );
        assert_eq!(c.engine_interval, Some(tokenwarden_server::ENGINE_TICK));
        assert_eq!(parsed.audit_retention.as_deref(), Some("90d"));
        assert_eq!(
            c.audit_retention,
            tokenwarden_server::DEFAULT_AUDIT_RETENTION
        );
        assert_eq!(
            parsed.refresh_concurrency,
            Some(tokenwarden_server::DEFAULT_REFRESH_CONCURRENCY)
        );
        assert_eq!(
            c.refresh_concurrency,
            tokenwarden_server::DEFAULT_REFRESH_CONCURRENCY
        );
    }

    /// Issue 10, item 3: how many refreshes a pass runs at once, from the environment or the
    /// file, the environment winning; out of range is refused with the setting named.
    #[test]
    fn issue10_item3_refresh_concurrency_is_a_layered_setting() {
        let with = |v: &str| {
            Config::load(
                &env(&[("TOKENWARDEN_REFRESH_CONCURRENCY", v)]),
                &Overrides::default(),
            )
        };
        assert_eq!(with("4").unwrap().refresh_concurrency, 4);
        for bad in ["0", "1025", "many", "-1"] {
            let e = with(bad).unwrap_err();
            assert!(
                format!("{e:#}").contains("TOKENWARDEN_REFRESH_CONCURRENCY"),
                "{bad}: {e:#}"
            );
        }
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("c.toml");
        std::fs::write(&file, "refresh_concurrency = 32\n").unwrap();
        let flags = Overrides {
            config_file: Some(file),
            ..Overrides::default()
        };
        assert_eq!(
            Config::load(&env(&[]), &flags).unwrap().refresh_concurrency,
            32
        );
        assert_eq!(
            Config::load(&env(&[("TOKENWARDEN_REFRESH_CONCURRENCY", "8")]), &flags)
                .unwrap()
                .refresh_concurrency,
            8
        );
    }

    /// Issue 9, bug 3: how long audit records are kept, from the environment or the file.
    #[test]
    fn issue9_bug3_the_audit_retention_is_a_duration_setting() {
        let with = |v: &str| {
            Config::load(
                &env(&[("TOKENWARDEN_AUDIT_RETENTION", v)]),
                &Overrides::default(),
            )
        };
        assert_eq!(
            with("365d").unwrap().audit_retention,
            chrono::Duration::days(365)
        );
        assert_eq!(
            with("36h").unwrap().audit_retention,
            chrono::Duration::hours(36)
        );
        for bad in ["90", "0d", "30m", "90 days", "-1d", "999999999d"] {
            let e = with(bad).unwrap_err();
            assert!(
                format!("{e:#}").contains("TOKENWARDEN_AUDIT_RETENTION"),
                "{bad:?}: {e:#}"
            );
        }
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("tw.toml");
        std::fs::write(&file, "audit_retention = \"7d\"\n").unwrap();
        let flags = Overrides {
            config_file: Some(file),
            ..Overrides::default()
        };
        assert_eq!(
            Config::load(&env(&[]), &flags).unwrap().audit_retention,
            chrono::Duration::days(7)
        );
    }

    #[test]
    fn the_engine_interval_can_be_set_or_switched_off() {
        let with = |v: &str| {
            Config::load(
                &env(&[("TOKENWARDEN_ENGINE_INTERVAL", v)]),
                &Overrides::default(),
            )
        };
        assert_eq!(
            with("2").unwrap().engine_interval,
            Some(std::time::Duration::from_secs(2))
        );
        assert_eq!(with("off").unwrap().engine_interval, None);
        assert_eq!(with("0").unwrap().engine_interval, None);
        assert!(with("5s").is_err());
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("tw.toml");
        std::fs::write(&file, "engine_interval = \"off\"\n").unwrap();
        let flags = Overrides {
            config_file: Some(file),
            ..Default::default()
        };
        assert_eq!(
            Config::load(&env(&[]), &flags).unwrap().engine_interval,
            None
        );
    }
}

#[cfg(test)]
mod more_tests {
    use super::*;

    #[test]
    fn lead_times_and_smtp_from_the_environment() {
        let env: BTreeMap<String, String> = [
            ("TOKENWARDEN_REMINDER_LEAD_TIMES", "1d, 12h,30d"),
            ("TOKENWARDEN_SMTP_HOST", "127.0.0.1"),
            ("TOKENWARDEN_SMTP_SECURITY", "none"),
            ("TOKENWARDEN_SMTP_PASSWORD", "smtp-SECRET"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        let c = Config::load(&env, &Overrides::default()).unwrap();
        assert_eq!(
            c.reminder_lead_times
                .iter()
                .map(|l| l.duration())
                .collect::<Vec<_>>(),
            vec![
                chrono::Duration::days(30),
                chrono::Duration::days(1),
                chrono::Duration::hours(12)
            ]
        );
        let smtp = c.smtp.clone().unwrap();
        assert_eq!(
            (smtp.port, smtp.from.as_str()),
            (25, "tokenwarden@127.0.0.1")
        );
        assert!(!format!("{c:?}").contains("smtp-SECRET"));
        for bad in ["0d", "14", "2w", "-1d"] {
            assert!(parse_lead_time(bad).is_err(), "{bad}");
        }
    }
}
