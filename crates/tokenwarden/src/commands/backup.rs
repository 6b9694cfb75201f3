//! `tokenwarden backup` and `tokenwarden restore`: a consistent snapshot of the whole database
//! taken while `serve` runs, and putting one back into an empty data folder or database.
//!
//! A backup file is one header line of JSON ([`Header`]: the format, the backend, the schema
//! version and the master key's check value, which identifies the key without revealing it),
//! then the backend's own snapshot:
//! - SQLite: the database file written by `VACUUM INTO` (one read transaction: writers carry on,
//!   and the copy is the state at one instant);
//! - PostgreSQL: `pg_dump`'s plain SQL (`pg_dump` reads in one repeatable-read snapshot), put
//!   back with `psql --single-transaction`.
//!
//! The snapshot holds what the database holds: secrets sealed, data keys wrapped by the master
//! key. The master key is never in it: a restore needs the same key, and refuses another one
//! before writing anything, as it refuses a newer schema or a target that holds anything.
//! To move between backends, use `export --with-secrets` and `import`.

use crate::bootstrap;
use crate::config::{self, Config};
use anyhow::{Context, Result, bail};
use secrecy::ExposeSecret;
use std::io::{BufRead, Read, Write};
use std::path::{Path, PathBuf};
use tokenwarden_crypto::MasterKey;
use tokenwarden_store::{Backend, SqlStore, Store};

/// What the first line of a backup file says.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct Header {
    /// Always [`FORMAT`].
    format: String,
    /// Of the header and what follows it.
    version: u32,
    /// `sqlite` (the database file follows) or `postgres` (pg_dump's SQL follows).
    backend: String,
    /// The newest migration applied to the database backed up.
    schema_version: i64,
    /// The master key's check value (HMAC of a constant under the key): a restore refuses a
    /// key whose check value differs.
    master_key_check: String,
    created_at: String,
    tokenwarden_version: String,
}

const FORMAT: &str = "tokenwarden-backup";
const VERSION: u32 = 1;
/// The longest header line read (the header is about 300 bytes).
const HEADER_MAX: usize = 4096;

fn backend_name(b: Backend) -> &'static str {
    match b {
        Backend::Sqlite => "sqlite",
        Backend::Postgres => "postgres",
    }
}

/// A new file readable by its owner only, refusing to overwrite one.
fn create_private_file(path: &Path) -> Result<std::fs::File> {
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    opts.open(path)
        .with_context(|| format!("cannot create {}", path.display()))
}

/// `path` with `suffix` added to its file name.
fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

/// `tokenwarden backup --output FILE`.
pub(crate) async fn backup(cfg: Config, output: PathBuf) -> Result<()> {
    if output.exists() {
        bail!(
            "{} already exists; choose a new file name (a backup never overwrites)",
            output.display()
        );
    }
    // Opening the context checks the configured master key against the database's.
    let ctx = bootstrap::context(&cfg, bootstrap::Setup::Existing).await?;
    let check = tokenwarden_server::vault::master_key_check(&ctx.store)
        .await?
        .context("the database has no master key check value yet")?;
    let url = cfg.database_url.expose_secret();
    let store = SqlStore::connect(url).await?;
    let partial = with_suffix(&output, ".partial");
    let _ = std::fs::remove_file(&partial);
    let result = async {
        match store.backend() {
            Backend::Sqlite => backup_sqlite(&store, &check, &output, &partial).await,
            Backend::Postgres => backup_postgres(&store, url, &check, &partial).await,
        }
    }
    .await;
    store.close().await;
    if result.is_err() {
        let _ = std::fs::remove_file(&partial);
    }
    let header = result?;
    std::fs::rename(&partial, &output)
        .with_context(|| format!("cannot move the backup to {}", output.display()))?;
    let size = std::fs::metadata(&output).map(|m| m.len()).unwrap_or(0);
    println!(
        "backup written to {} ({} bytes; {} schema version {}; master key check value {})",
        output.display(),
        size,
        header.backend,
        header.schema_version,
        header.master_key_check
    );
    eprintln!(
        "keep the master key apart from the backup: restoring needs it (`tokenwarden restore {} --data-dir NEW`)",
        output.display()
    );
    Ok(())
}

fn header(backend: Backend, schema_version: i64, check: &str) -> Header {
    Header {
        format: FORMAT.into(),
        version: VERSION,
        backend: backend_name(backend).into(),
        schema_version,
        master_key_check: check.to_owned(),
        created_at: tokenwarden_domain::Clock::now(&tokenwarden_domain::SystemClock).to_rfc3339(),
        tokenwarden_version: env!("CARGO_PKG_VERSION").into(),
    }
}

fn write_header(out: &mut impl Write, h: &Header) -> Result<()> {
    serde_json::to_writer(&mut *out, h)?;
    out.write_all(b"\n")?;
    Ok(())
}

async fn backup_sqlite(
    store: &SqlStore,
    check: &str,
    output: &Path,
    partial: &Path,
) -> Result<Header> {
    let snapshot = with_suffix(output, ".snapshot");
    let _ = std::fs::remove_file(&snapshot);
    let result = async {
        store
            .vacuum_into(&snapshot)
            .await
            .context("VACUUM INTO failed")?;
        // The schema version of the copy itself, not of the live database a moment later.
        // (Opened read-write: the store's connection set-up switches to WAL, which a
        // read-only connection cannot; closing checkpoints it back into the one file.)
        let copy = SqlStore::connect(&format!("sqlite://{}", snapshot.display())).await?;
        let schema_version = copy.schema_version().await;
        copy.close().await;
        let h = header(Backend::Sqlite, schema_version?, check);
        let mut out = std::io::BufWriter::new(create_private_file(partial)?);
        write_header(&mut out, &h)?;
        let mut from = std::fs::File::open(&snapshot)?;
        std::io::copy(&mut from, &mut out)?;
        out.into_inner()
            .map_err(|e| e.into_error())?
            .sync_all()
            .context("cannot write the backup")?;
        Ok(h)
    }
    .await;
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(with_suffix(&snapshot, suffix));
    }
    result
}

/// A `postgres://` URL without its password, and the password (for `PGPASSWORD`): a password
/// on a command line shows in `ps`.
fn split_password(url: &str) -> (String, Option<String>) {
    let Some(scheme_end) = url.find("://").map(|i| i + 3) else {
        return (url.to_owned(), None);
    };
    let rest = &url[scheme_end..];
    let authority = &rest[..rest.find(['/', '?', '#']).unwrap_or(rest.len())];
    match (authority.rfind('@'), authority.find(':')) {
        (Some(at), Some(colon)) if colon < at => {
            let password = &authority[colon + 1..at];
            let decoded = percent_decode(password);
            (
                format!(
                    "{}{}{}",
                    &url[..scheme_end],
                    &authority[..colon],
                    &url[scheme_end + at..]
                ),
                Some(decoded),
            )
        }
        _ => (url.to_owned(), None),
    }
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && i + 2 < b.len()
            && b[i + 1].is_ascii_hexdigit()
            && b[i + 2].is_ascii_hexdigit()
        {
            out.push(u8::from_str_radix(&s[i + 1..i + 3], 16).unwrap_or(b'%'));
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `pg_dump` or `psql` for `url`, the password passed in the environment.
fn pg_command(program: &str, url: &str) -> std::process::Command {
    let (url, password) = split_password(url);
    let mut c = std::process::Command::new(program);
    c.arg("-d").arg(url);
    if let Some(p) = password {
        c.env("PGPASSWORD", p);
    }
    if std::env::var_os("PGCONNECT_TIMEOUT").is_none() {
        c.env("PGCONNECT_TIMEOUT", "10");
    }
    c
}

async fn backup_postgres(
    store: &SqlStore,
    url: &str,
    check: &str,
    partial: &Path,
) -> Result<Header> {
    let before = store.schema_version().await?;
    let h = header(Backend::Postgres, before, check);
    let mut out = create_private_file(partial)?;
    write_header(&mut out, &h)?;
    out.flush()?;
    let mut dump = pg_command("pg_dump", url);
    dump.args(["--no-owner", "--no-privileges", "--format=plain"])
        .stdout(out.try_clone()?)
        .stderr(std::process::Stdio::piped());
    let done = tokio::task::spawn_blocking(move || dump.output())
        .await?
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => anyhow::anyhow!(
                "pg_dump was not found on PATH: install PostgreSQL's client programs (the same \
                 major version as the server, or newer) to back up a PostgreSQL database"
            ),
            _ => anyhow::anyhow!("cannot run pg_dump: {e}"),
        })?;
    if !done.status.success() {
        bail!(
            "pg_dump failed ({}): {}",
            done.status,
            String::from_utf8_lossy(&done.stderr).trim()
        );
    }
    out.sync_all()?;
    if store.schema_version().await? != before {
        bail!("the database was migrated while the backup ran; run the backup again");
    }
    Ok(h)
}

/// Reads the header line; the reader is left at the first byte of the snapshot.
fn read_header(r: &mut impl BufRead, file: &Path) -> Result<Header> {
    let mut line = Vec::new();
    r.take(HEADER_MAX as u64).read_until(b'\n', &mut line)?;
    let not_backup = || {
        anyhow::anyhow!(
            "{} is not a tokenwarden backup (made by `tokenwarden backup --output FILE`)",
            file.display()
        )
    };
    if line.last() != Some(&b'\n') {
        return Err(not_backup());
    }
    let h: Header = serde_json::from_slice(&line).map_err(|_| not_backup())?;
    if h.format != FORMAT {
        return Err(not_backup());
    }
    if h.version > VERSION {
        bail!(
            "{} is a backup of format version {}, newer than this tokenwarden reads ({VERSION}): restore it with tokenwarden {} or newer",
            file.display(),
            h.version,
            h.tokenwarden_version
        );
    }
    Ok(h)
}

/// `tokenwarden restore FILE`: into the configured database, which must be empty (a data
/// folder that does not exist or is empty, or a PostgreSQL database without tables).
pub(crate) async fn restore(
    cfg: Config,
    file: PathBuf,
    master_key_file: Option<PathBuf>,
) -> Result<()> {
    let f = std::fs::File::open(&file)
        .with_context(|| format!("cannot open the backup {}", file.display()))?;
    let mut reader = std::io::BufReader::new(f);
    let h = read_header(&mut reader, &file)?;
    let url = cfg.database_url.expose_secret().to_owned();
    let target = Backend::from_url(&url)?;
    if backend_name(target) != h.backend {
        bail!(
            "{} is a {} backup and the target is a {} database: a backup restores into the same \
             kind of database; to move between them use `tokenwarden export --with-secrets` and \
             `tokenwarden import`",
            file.display(),
            h.backend,
            backend_name(target)
        );
    }
    let known = tokenwarden_store::latest_schema_version(target);
    if h.schema_version > known {
        bail!(
            "the backup's schema version is {} and this tokenwarden knows versions up to {known}: \
             it was made by a newer tokenwarden ({}); restore it with that version or newer",
            h.schema_version,
            h.tokenwarden_version
        );
    }
    // The key: the file given, else the configured one. Checked before anything is written.
    let key = match &master_key_file {
        Some(p) => Some(bootstrap::read_key_file(p)?),
        None => bootstrap::configured_master_key(&cfg)?,
    };
    let Some(key) = key else {
        bail!(
            "restoring needs the master key the backup was made with (check value {}): give it \
             with --master-key-file FILE, TOKENWARDEN_MASTER_KEY_FILE or TOKENWARDEN_MASTER_KEY",
            h.master_key_check
        );
    };
    check_key(&key, &h)?;
    match target {
        Backend::Sqlite => restore_sqlite(&cfg, &url, &mut reader, &h).await?,
        Backend::Postgres => restore_postgres(&url, reader).await?,
    }
    // A key given as a file for a data folder with no key configured goes next to the data,
    // where `serve --data-dir` looks for it.
    if let (Some(_), config::MasterKeySource::DataDir(p)) = (&master_key_file, &cfg.master_key)
        && !p.exists()
    {
        bootstrap::write_new_key(p, &key)?;
    }
    // Opening migrates the restored schema forward and checks the key once more.
    let ctx = bootstrap::context(&cfg, bootstrap::Setup::Existing).await?;
    let (ok, failed) = ctx.vault.verify_all().await?;
    if !failed.is_empty() {
        for f in &failed {
            eprintln!("cannot decrypt {f}");
        }
        bail!(
            "restored, but {} of {} stored secrets cannot be decrypted",
            failed.len(),
            ok + failed.len()
        );
    }
    let tokens = tokenwarden_server::ops::lists::all_tokens(&ctx, &Default::default()).await?;
    let apps = tokenwarden_server::ops::lists::all_apps(&ctx).await?;
    println!(
        "restored {} into {} (schema version {} of {}): {} tokens, {} apps; all {ok} stored secrets decrypt",
        file.display(),
        config::redact_url(&url),
        h.schema_version,
        h.created_at,
        tokens.len(),
        apps.len()
    );
    Ok(())
}

fn check_key(key: &MasterKey, h: &Header) -> Result<()> {
    let actual = key.check_value();
    if actual != h.master_key_check {
        bail!(
            "wrong master key: the backup was made with the key whose check value is {}, the \
             given key's is {actual}; nothing was restored",
            h.master_key_check
        );
    }
    Ok(())
}

async fn restore_sqlite(cfg: &Config, url: &str, reader: &mut impl Read, h: &Header) -> Result<()> {
    let db = tokenwarden_store::sqlite_path(url)
        .context("cannot restore into an in-memory SQLite database")?;
    // The target holds nothing: the data folder is new or empty, and the database file is not
    // there (it may be configured outside the data folder).
    if let Ok(mut entries) = std::fs::read_dir(&cfg.data_dir)
        && entries.next().is_some()
    {
        bail!(
            "the data folder {} is not empty: restore into a new or empty folder (nothing was \
             changed)",
            cfg.data_dir.display()
        );
    }
    if db.exists() {
        bail!(
            "the database {} already exists: restore into a new file (nothing was changed)",
            db.display()
        );
    }
    bootstrap::create_private_dir(&cfg.data_dir)?;
    if let Some(parent) = db.parent().filter(|p| !p.as_os_str().is_empty()) {
        bootstrap::create_private_dir(parent)?;
    }
    let partial = with_suffix(&db, ".restoring");
    let result = async {
        let mut out = create_private_file(&partial)?;
        std::io::copy(reader, &mut out)?;
        out.sync_all()?;
        drop(out);
        // The copy must be a database made with this key, whatever its header says.
        let copy = SqlStore::connect(&format!("sqlite://{}", partial.display()))
            .await
            .context("the backup's database does not open")?;
        let stored = copy.get_meta("master_key_check").await;
        copy.close().await;
        let stored = stored.context("the backup's database does not open")?;
        if stored.as_deref() != Some(h.master_key_check.as_str()) {
            bail!("the backup is damaged: its database does not match its header");
        }
        Ok(())
    }
    .await;
    if let Err(e) = result {
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(with_suffix(&partial, suffix));
        }
        return Err(e);
    }
    std::fs::rename(&partial, &db)?;
    Ok(())
}

async fn restore_postgres(url: &str, mut reader: impl Read + Send + 'static) -> Result<()> {
    let store = SqlStore::connect(url).await?;
    let tables = store.table_count().await;
    store.close().await;
    if tables? > 0 {
        bail!(
            "the database {} holds tables: restore into a new, empty database (nothing was changed)",
            config::redact_url(url)
        );
    }
    let mut psql = pg_command("psql", url);
    psql.args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "--single-transaction"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped());
    let out = tokio::task::spawn_blocking(move || -> std::io::Result<std::process::Output> {
        let mut child = psql.spawn()?;
        if let Some(mut stdin) = child.stdin.take() {
            std::io::copy(&mut reader, &mut stdin)?;
        }
        child.wait_with_output()
    })
    .await?
    .map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => anyhow::anyhow!(
            "psql was not found on PATH: install PostgreSQL's client programs to restore a \
             PostgreSQL backup"
        ),
        _ => anyhow::anyhow!("cannot run psql: {e}"),
    })?;
    if !out.status.success() {
        bail!(
            "psql failed ({}); nothing was restored: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issue13_the_password_leaves_the_url_for_the_environment() {
        let (url, pw) = split_password("postgres://tw:s%40cret@db:5432/tw?sslmode=require");
        assert_eq!(url, "postgres://tw@db:5432/tw?sslmode=require");
        assert_eq!(pw.as_deref(), Some("s@cret"));
        let (url, pw) = split_password("postgres://tw@db/tw");
        assert_eq!((url.as_str(), pw), ("postgres://tw@db/tw", None));
    }
}
