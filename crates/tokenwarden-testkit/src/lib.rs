//! Test helpers for tokenwarden: a throwaway PostgreSQL database per test.
//!
//! This crate is meant to be used only as a dev-dependency.
//!
//! [`test_postgres`] (or [`require_postgres`], which panics instead of returning an
//! error) hands each caller a brand-new, empty database:
//!
//! - If the environment variable [`EXTERNAL_URL_ENV`] (`TOKENWARDEN_TEST_POSTGRES_URL`)
//!   is set, a uniquely named database is created on that server with `psql`.
//! - Otherwise a throwaway cluster is started once per process (lazily, on first use)
//!   with `initdb` and `pg_ctl`, in a temporary directory, listening on a free TCP port
//!   on 127.0.0.1 with `trust` authentication. Each call creates a new database on it.
//!
//! Everything is done by running the PostgreSQL command-line programs as subprocesses;
//! there is no Rust PostgreSQL client here. The functions are synchronous and may be
//! called from plain `#[test]`s and from `#[tokio::test]`s alike (they block for the
//! time it takes to start the cluster on first use, then for one `psql` run).
//!
//! PostgreSQL refuses to run as root: when the test process is root, the cluster is run
//! as the OS user `postgres`, which must exist.
//!
//! The throwaway cluster is stopped (immediate shutdown, as by `pg_ctl stop -m immediate`)
//! and its directory removed when the test process exits, however it exits: a small
//! watchdog shell process, started before the cluster, waits for end-of-file on a pipe
//! whose only writer is the test process. Nothing is dropped per test: databases live as
//! long as the cluster does (on an external server, they stay until someone drops them;
//! they are all named `tw_test_*`).

use std::hash::{BuildHasher, Hasher, RandomState};
use std::net::{Ipv4Addr, TcpListener};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{ChildStdin, Command, Output, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

pub mod fuzz;
pub mod oidc;
pub mod smtp;
pub mod webhook;

/// Environment variable naming an existing PostgreSQL server to create test databases on,
/// as a URL such as `postgres://postgres@127.0.0.1:5432/postgres`. The user in it must be
/// allowed to `CREATE DATABASE`.
pub const EXTERNAL_URL_ENV: &str = "TOKENWARDEN_TEST_POSTGRES_URL";

/// The superuser of the throwaway cluster.
const SUPERUSER: &str = "postgres";
/// The OS user that runs the throwaway cluster when the test process is root.
const SERVER_OS_USER: &str = "postgres";
/// How many times to try another port when the one picked was taken meanwhile.
const PORT_ATTEMPTS: usize = 5;
/// How long to wait for the started server to accept connections.
const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// A PostgreSQL database for one test.
///
/// Dropping it drops nothing on a shared server; the shared cluster lives for the whole
/// test process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestPostgres {
    /// `postgres://user@127.0.0.1:PORT/dbname` of a brand-new empty database (with
    /// `TOKENWARDEN_TEST_POSTGRES_URL` set: that URL with its database replaced).
    pub url: String,
}

/// Creates a brand-new empty database and returns its URL
/// (`postgres://user@127.0.0.1:PORT/dbname`).
///
/// If the environment variable `TOKENWARDEN_TEST_POSTGRES_URL` is set (and not empty), the
/// database (`tw_test_<pid>_<counter>_<random>`) is created on that server and the URL
/// returned is that one with its database path replaced.
///
/// Otherwise a throwaway cluster is started on first use (once per process; concurrent
/// callers wait for it) and a new database is created on it for each call. If starting the
/// cluster failed, every later call returns the same error without trying again.
///
/// # Errors
///
/// A message that says what failed: which command, its exit status and its output.
pub fn test_postgres() -> Result<TestPostgres, String> {
    let name = unique_database_name();
    match std::env::var(EXTERNAL_URL_ENV) {
        Ok(url) if !url.trim().is_empty() => create_on_server(url.trim(), &name),
        Ok(_) | Err(std::env::VarError::NotPresent) => {
            static CLUSTER: OnceLock<Result<Cluster, String>> = OnceLock::new();
            let cluster = CLUSTER
                .get_or_init(Cluster::start)
                .as_ref()
                .map_err(|e| format!("starting a throwaway PostgreSQL cluster failed: {e}"))?;
            create_on_server(&cluster.admin_url(), &name)
        }
        Err(std::env::VarError::NotUnicode(_)) => {
            Err(format!("{EXTERNAL_URL_ENV} is set but is not valid UTF-8"))
        }
    }
}

/// Like [`test_postgres`], for tests: returns the database or panics with a clear message.
///
/// It never skips: when `CI=true` a test that needs PostgreSQL must fail if there is none,
/// and outside CI it fails too, so that a missing PostgreSQL is noticed rather than hidden.
///
/// # Panics
///
/// If no database could be created (see [`test_postgres`]).
#[track_caller]
#[must_use]
pub fn require_postgres() -> TestPostgres {
    match test_postgres() {
        Ok(db) => db,
        Err(e) if is_ci() => panic!(
            "CI=true: this test needs PostgreSQL and must not be skipped, \
             but no test database could be created: {e}"
        ),
        Err(e) => panic!(
            "this test needs PostgreSQL, but no test database could be created: {e}\n\
             hint: install the PostgreSQL server (initdb, pg_ctl) and client (psql), \
             or set {EXTERNAL_URL_ENV}=postgres://USER@HOST:PORT/postgres"
        ),
    }
}

/// Returns a TCP port on 127.0.0.1 that was free a moment ago (bound to port 0, then
/// released). Another process may take it before it is used.
///
/// # Panics
///
/// If no socket can be bound on 127.0.0.1 at all; see [`try_free_port`] for the
/// non-panicking form.
#[track_caller]
#[must_use]
pub fn free_port() -> u16 {
    match try_free_port() {
        Ok(port) => port,
        Err(e) => panic!("{e}"),
    }
}

/// Like [`free_port`], returning an error instead of panicking.
///
/// # Errors
///
/// If binding or inspecting a socket on 127.0.0.1 fails.
pub fn try_free_port() -> Result<u16, String> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .map_err(|e| format!("could not bind a TCP socket on 127.0.0.1:0: {e}"))?;
    let addr = listener
        .local_addr()
        .map_err(|e| format!("could not read the address of a socket bound on 127.0.0.1:0: {e}"))?;
    Ok(addr.port())
}

fn is_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v.eq_ignore_ascii_case("true") || v == "1")
}

/// A database name unique on any server: process id, a per-process counter and a random
/// part (for processes with the same id on different hosts sharing one server).
fn unique_database_name() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let pid = std::process::id();
    let mut hasher = RandomState::new().build_hasher();
    hasher.write_u64(n);
    hasher.write_u32(pid);
    format!("tw_test_{pid}_{n}_{:016x}", hasher.finish())
}

/// Creates database `name` on the server of `url` (a URL the user in it can connect to)
/// and returns the URL of the new database.
fn create_on_server(url: &str, name: &str) -> Result<TestPostgres, String> {
    let new_url = with_database(url, name)?;
    let psql = find_program("psql")?;
    let mut cmd = psql_command(&psql, url);
    cmd.arg("-c").arg(format!("CREATE DATABASE \"{name}\""));
    run(&mut cmd).map_err(|e| format!("creating database {name} failed: {e}"))?;
    Ok(TestPostgres { url: new_url })
}

/// Every row of the database at `url` as `pg_dump` prints it (plain SQL, data and schema):
/// for tests that look through what a database holds.
///
/// # Errors
///
/// If `pg_dump` is missing or fails.
pub fn pg_dump(url: &str) -> Result<Vec<u8>, String> {
    let pg_dump = find_program("pg_dump")?;
    let out = Command::new(pg_dump)
        .args(["--no-owner", "--no-privileges", "-d", url])
        .env("PGCONNECT_TIMEOUT", "10")
        .output()
        .map_err(|e| format!("running pg_dump failed: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "pg_dump failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(out.stdout)
}

/// `psql` connecting to `url`, quiet, stopping at the first error, ignoring `~/.psqlrc`.
fn psql_command(psql: &Path, url: &str) -> Command {
    let mut cmd = Command::new(psql);
    cmd.args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", url]);
    if std::env::var_os("PGCONNECT_TIMEOUT").is_none() {
        cmd.env("PGCONNECT_TIMEOUT", "10");
    }
    cmd
}

/// Replaces the database (path) part of a `postgres://` or `postgresql://` URL, keeping
/// the scheme, user, password, host, port and query.
fn with_database(url: &str, database: &str) -> Result<String, String> {
    let scheme_end = ["postgres://", "postgresql://"]
        .iter()
        .find(|scheme| url.starts_with(*scheme))
        .map(|scheme| scheme.len())
        .ok_or_else(|| {
            format!(
                "not a postgres:// or postgresql:// URL: {}",
                redact_password(url)
            )
        })?;
    let (scheme, rest) = url.split_at(scheme_end);
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, after_authority) = rest.split_at(authority_end);
    let path_end = after_authority
        .find(['?', '#'])
        .unwrap_or(after_authority.len());
    let query = &after_authority[path_end..];
    Ok(format!("{scheme}{authority}/{database}{query}"))
}

/// The URL with any password replaced by `***`, for error messages.
fn redact_password(url: &str) -> String {
    let Some(scheme_end) = url.find("://").map(|i| i + 3) else {
        return url.to_owned();
    };
    let rest = &url[scheme_end..];
    let authority = &rest[..rest.find(['/', '?', '#']).unwrap_or(rest.len())];
    match (authority.rfind('@'), authority.find(':')) {
        (Some(at), Some(colon)) if colon < at => format!(
            "{}{}:***{}",
            &url[..scheme_end],
            &authority[..colon],
            &url[scheme_end + at..]
        ),
        _ => url.to_owned(),
    }
}

/// A PostgreSQL server of one test's own, which the test may stop and start again (to see
/// what a service does while its database is down). Like the shared cluster it listens on
/// 127.0.0.1 with `trust` authentication, and is stopped and removed when the test process
/// exits, however it exits. It always starts a cluster of its own with `initdb`, even when
/// `TOKENWARDEN_TEST_POSTGRES_URL` names a server (that server must not be stopped).
pub struct OwnPostgres {
    cluster: Cluster,
    /// `postgres://postgres@127.0.0.1:PORT/dbname` of a brand-new empty database on it.
    pub url: String,
}

impl OwnPostgres {
    /// Starts the cluster and creates a database on it.
    ///
    /// # Errors
    ///
    /// A message naming the command that failed and its output.
    pub fn start() -> Result<Self, String> {
        let cluster = Cluster::start()?;
        let db = create_on_server(&cluster.admin_url(), &unique_database_name())?;
        Ok(OwnPostgres {
            cluster,
            url: db.url,
        })
    }

    /// Stops the server (`pg_ctl stop -m fast`: open connections are cut) and waits until it
    /// is down.
    ///
    /// # Errors
    ///
    /// A message naming the command that failed and its output.
    pub fn stop(&self) -> Result<(), String> {
        let mut pg_ctl = server_command(
            &self.cluster.bins.pg_ctl,
            &self.cluster.dir,
            self.cluster.account,
        );
        pg_ctl
            .arg("-D")
            .arg(self.cluster.dir.join("data"))
            .args(["-w", "-t", "60", "-m", "fast", "stop"]);
        run(&mut pg_ctl).map(|_| ())
    }

    /// Starts the stopped server again on the same port and waits until it accepts
    /// connections.
    ///
    /// # Errors
    ///
    /// A message naming the command that failed and its output.
    pub fn start_again(&self) -> Result<(), String> {
        self.cluster.pg_ctl_start(self.cluster.port)?;
        self.cluster.wait_until_ready(&self.cluster.bins.psql)
    }
}

/// A throwaway cluster: the shared one of this process, or a test's [`OwnPostgres`].
struct Cluster {
    port: u16,
    bins: PgBins,
    account: Option<Account>,
    /// Holds `data/` (the cluster) and `postgres.log`.
    dir: PathBuf,
    /// Write end of the watchdog's stdin: held (never written) until the process exits;
    /// the watchdog then reads end-of-file, stops the server and removes the directory.
    _watchdog: ChildStdin,
}

impl Cluster {
    fn admin_url(&self) -> String {
        format!("postgres://{SUPERUSER}@127.0.0.1:{}/postgres", self.port)
    }

    fn start() -> Result<Self, String> {
        let bins = PgBins::locate()?;
        let account = server_account()?;

        let tmp = tempfile::Builder::new()
            .prefix("tokenwarden-testkit-pg-")
            .tempdir()
            .map_err(|e| {
                format!(
                    "could not create a temporary directory under {}: {e}",
                    std::env::temp_dir().display()
                )
            })?;
        if let Some(account) = account {
            std::os::unix::fs::chown(tmp.path(), Some(account.uid), Some(account.gid)).map_err(
                |e| {
                    format!(
                        "could not give {} to the OS user {SERVER_OS_USER}: {e}",
                        tmp.path().display()
                    )
                },
            )?;
        }
        let data = tmp.path().join("data");
        // From here on the watchdog removes the directory when the process exits.
        let watchdog = spawn_watchdog(&data, tmp.path())?;
        let dir = tmp.keep();
        let log = dir.join("postgres.log");

        let mut initdb = server_command(&bins.initdb, &dir, account);
        initdb
            .arg("-D")
            .arg(&data)
            .args(["-A", "trust", "-U", SUPERUSER, "--no-sync", "-E", "UTF8"])
            .arg("--locale=C");
        run(&mut initdb).map_err(|e| {
            let mut message = format!("initdb failed: {e}");
            if account.is_some() {
                message.push_str(&format!(
                    "\nhint: the OS user {SERVER_OS_USER} must be able to reach {} \
                     (every parent directory needs o+x); set TMPDIR to change it",
                    dir.display()
                ));
            }
            message
        })?;

        let mut cluster = Cluster {
            port: 0,
            bins,
            account,
            dir,
            _watchdog: watchdog,
        };
        let mut attempt = 1;
        cluster.port = loop {
            let port = try_free_port()?;
            match cluster.pg_ctl_start(port) {
                Ok(()) => break port,
                Err(e) => {
                    let log_tail = tail(&log, 20);
                    let port_taken = log_tail.contains("Address already in use");
                    if !port_taken || attempt == PORT_ATTEMPTS {
                        return Err(format!(
                            "pg_ctl start failed: {e}\n--- {} (last lines) ---\n{log_tail}",
                            log.display()
                        ));
                    }
                    attempt += 1;
                }
            }
        };

        cluster.wait_until_ready(&cluster.bins.psql)?;
        Ok(cluster)
    }

    /// `pg_ctl start` on `port`, waiting for the server to be up.
    fn pg_ctl_start(&self, port: u16) -> Result<(), String> {
        let options = format!(
            "-p {port} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200",
            shell_quote(&self.dir.to_string_lossy())
        );
        let mut pg_ctl = server_command(&self.bins.pg_ctl, &self.dir, self.account);
        pg_ctl
            .arg("-D")
            .arg(self.dir.join("data"))
            .arg("-l")
            .arg(self.dir.join("postgres.log"))
            .args(["-w", "-t", "60", "-o", &options, "start"]);
        run(&mut pg_ctl).map(|_| ())
    }

    /// `pg_ctl -w` already waits for the server; this also checks that it accepts
    /// connections over TCP as the superuser.
    fn wait_until_ready(&self, psql: &Path) -> Result<(), String> {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            let mut cmd = psql_command(psql, &self.admin_url());
            cmd.args(["-c", "SELECT 1"]);
            match run(&mut cmd) {
                Ok(_) => return Ok(()),
                Err(e) if Instant::now() >= deadline => {
                    return Err(format!(
                        "the server started but did not accept connections within {}s: {e}",
                        READY_TIMEOUT.as_secs()
                    ));
                }
                Err(_) => std::thread::sleep(Duration::from_millis(100)),
            }
        }
    }
}

/// The OS user and group to run the server as, when it cannot run as this process's user.
#[derive(Debug, Clone, Copy)]
struct Account {
    uid: u32,
    gid: u32,
}

/// `None` when the process is not root (the server runs as the current user); otherwise the
/// `postgres` OS user, since PostgreSQL refuses to run as root.
fn server_account() -> Result<Option<Account>, String> {
    if effective_uid()? != 0 {
        return Ok(None);
    }
    let id = |flag: &str| -> Result<u32, String> {
        let out = run(Command::new("id").args([flag, SERVER_OS_USER])).map_err(|e| {
            format!(
                "this process is root, which PostgreSQL refuses to run as, and the OS user \
                 {SERVER_OS_USER} to run it as was not found: {e}"
            )
        })?;
        parse_u32(&out.stdout, &format!("id {flag} {SERVER_OS_USER}"))
    };
    Ok(Some(Account {
        uid: id("-u")?,
        gid: id("-g")?,
    }))
}

fn effective_uid() -> Result<u32, String> {
    // "Uid:	real	effective	saved	filesystem"
    let from_proc = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            let line = status.lines().find(|l| l.starts_with("Uid:"))?;
            line.split_whitespace().nth(2)?.parse().ok()
        });
    match from_proc {
        Some(uid) => Ok(uid),
        None => parse_u32(&run(Command::new("id").arg("-u"))?.stdout, "id -u"),
    }
}

fn parse_u32(stdout: &[u8], what: &str) -> Result<u32, String> {
    let text = String::from_utf8_lossy(stdout);
    text.trim()
        .parse()
        .map_err(|e| format!("`{what}` printed {:?}, not a number: {e}", text.trim()))
}

/// A command for a PostgreSQL server program: run as `account` if any, from `dir` (a
/// directory that user can enter, unlike perhaps the test's working directory).
fn server_command(program: &Path, dir: &Path, account: Option<Account>) -> Command {
    let mut cmd = Command::new(program);
    cmd.current_dir(dir);
    if let Some(account) = account {
        // std drops the supplementary groups too when switching from root.
        cmd.gid(account.gid).uid(account.uid);
    }
    // Settings that would otherwise leak into the server from the environment.
    for var in [
        "PGDATA",
        "PGPORT",
        "PGHOST",
        "PGOPTIONS",
        "PGUSER",
        "PGDATABASE",
    ] {
        cmd.env_remove(var);
    }
    cmd
}

/// Starts a watchdog: `sh`, as this process's user, in its own process group so that a
/// Ctrl-C to the test run does not reach it. It waits for end-of-file on its stdin, whose
/// write end only this process holds (std opens pipes close-on-exec, so no other child
/// inherits it), i.e. for this process to exit however it exits. It then stops the server
/// the way `pg_ctl stop -m immediate` does, with SIGQUIT to the postmaster (pg_ctl itself
/// refuses to run as root), waits for it to remove its `postmaster.pid` as it exits (as
/// `pg_ctl` does; `kill -0` would also see a zombie not yet reaped) and removes the directory.
fn spawn_watchdog(data: &Path, dir: &Path) -> Result<ChildStdin, String> {
    const SCRIPT: &str = r#"trap '' INT HUP
while read -r line; do :; done
pid=$(head -n 1 "$1/postmaster.pid" 2>/dev/null)
if [ -n "$pid" ] && kill -QUIT "$pid" 2>/dev/null; then
  i=0
  while [ -e "$1/postmaster.pid" ] && [ "$i" -lt 300 ]; do sleep 0.1; i=$((i + 1)); done
fi
rm -rf -- "$2""#;
    let mut cmd = Command::new("/bin/sh");
    cmd.arg("-c")
        .arg(SCRIPT)
        .arg("tokenwarden-testkit-watchdog")
        .arg(data)
        .arg(dir)
        .current_dir("/")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0);
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("could not start the cleanup watchdog (/bin/sh): {e}"))?;
    // `child` is not waited for: the watchdog outlives this process and is reparented.
    child
        .stdin
        .take()
        .ok_or_else(|| "the cleanup watchdog has no stdin pipe".to_owned())
}

/// Runs a command to completion, with stdin closed, and returns its output if it
/// succeeded; otherwise an error naming the command, its exit status and its output.
fn run(cmd: &mut Command) -> Result<Output, String> {
    let output = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("could not run `{}`: {e}", describe(cmd)))?;
    if output.status.success() {
        return Ok(output);
    }
    let mut message = format!("`{}` failed ({})", describe(cmd), output.status);
    for stream in [&output.stderr, &output.stdout] {
        let text = String::from_utf8_lossy(stream);
        if !text.trim().is_empty() {
            message.push_str(":\n");
            message.push_str(text.trim_end());
        }
    }
    Err(message)
}

fn describe(cmd: &Command) -> String {
    std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .map(|arg| redact_password(&arg.to_string_lossy()))
        .collect::<Vec<_>>()
        .join(" ")
}

/// The last `lines` lines of a file, or a note that it could not be read.
fn tail(path: &Path, lines: usize) -> String {
    match std::fs::read(path) {
        Ok(bytes) => {
            let text = String::from_utf8_lossy(&bytes);
            let all: Vec<&str> = text.lines().collect();
            all[all.len().saturating_sub(lines)..].join("\n")
        }
        Err(e) => format!("(could not read it: {e})"),
    }
}

/// Single-quotes a string for `sh` (pg_ctl passes `-o` options through the shell).
fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// The PostgreSQL programs of one installation.
struct PgBins {
    initdb: PathBuf,
    pg_ctl: PathBuf,
    psql: PathBuf,
}

impl PgBins {
    /// Finds `initdb`, then takes `pg_ctl` and `psql` from the same directory when they are
    /// there, so that all three are of the same version.
    fn locate() -> Result<Self, String> {
        let initdb = find_program("initdb")?;
        let initdb = std::fs::canonicalize(&initdb).unwrap_or(initdb);
        let sibling = |name: &str| -> Result<PathBuf, String> {
            match initdb.parent().map(|dir| dir.join(name)) {
                Some(path) if is_executable(&path) => Ok(path),
                _ => find_program(name),
            }
        };
        Ok(PgBins {
            pg_ctl: sibling("pg_ctl")?,
            psql: sibling("psql")?,
            initdb,
        })
    }
}

/// Looks for `name` on `PATH`, then in `/usr/lib/postgresql/<version>/bin` (newest first,
/// where Debian and Ubuntu put the server programs) and `/usr/local/pgsql/bin`.
fn find_program(name: &str) -> Result<PathBuf, String> {
    let mut dirs: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|path| std::env::split_paths(&path).collect())
        .unwrap_or_default();
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let version = entry.file_name().to_string_lossy().parse().ok()?;
            Some((version, entry.path().join("bin")))
        })
        .collect();
    versions.sort_by_key(|(version, _)| std::cmp::Reverse(*version));
    dirs.extend(versions.into_iter().map(|(_, dir)| dir));
    dirs.push(PathBuf::from("/usr/local/pgsql/bin"));
    dirs.iter()
        .map(|dir| dir.join(name))
        .find(|path| is_executable(path))
        .ok_or_else(|| {
            format!(
                "PostgreSQL program `{name}` not found on PATH, in /usr/lib/postgresql/*/bin \
                 or in /usr/local/pgsql/bin"
            )
        })
}

fn is_executable(path: &Path) -> bool {
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    /// Runs `sql` on the database of `url` and returns what it printed (unaligned, tuples
    /// only).
    fn query(url: &str, sql: &str) -> String {
        let psql = find_program("psql").unwrap();
        let mut cmd = psql_command(&psql, url);
        cmd.args(["-A", "-t", "-c", sql]);
        let out = run(&mut cmd).unwrap();
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    }

    fn database_of(url: &str) -> &str {
        url.rsplit('/').next().unwrap()
    }

    #[test]
    fn two_databases_are_reachable_and_distinct() {
        let start = Instant::now();
        let a = require_postgres();
        let b = require_postgres();
        eprintln!(
            "two databases in {:?}: {} {}",
            start.elapsed(),
            a.url,
            b.url
        );
        assert_ne!(a, b);
        assert_eq!(query(&a.url, "select 1"), "1");
        assert_eq!(query(&b.url, "select 1"), "1");
        assert_eq!(
            query(&a.url, "select current_database()"),
            database_of(&a.url)
        );
        assert_eq!(
            query(&b.url, "select current_database()"),
            database_of(&b.url)
        );

        // Brand-new and empty, and a table made in one is not seen in the other.
        let tables = "select count(*) from pg_tables where schemaname = 'public'";
        assert_eq!(query(&a.url, tables), "0");
        query(&a.url, "create table only_in_a (id int)");
        assert_eq!(query(&a.url, tables), "1");
        assert_eq!(query(&b.url, tables), "0");
    }

    #[test]
    fn concurrent_calls_get_distinct_databases() {
        let handles: Vec<_> = (0..16)
            .map(|_| std::thread::spawn(require_postgres))
            .collect();
        let urls: HashSet<String> = handles.into_iter().map(|h| h.join().unwrap().url).collect();
        assert_eq!(urls.len(), 16);
        for url in &urls {
            assert_eq!(query(url, "select current_database()"), database_of(url));
        }
    }

    #[test]
    fn creates_databases_on_a_server_given_by_url() {
        // The path used for TOKENWARDEN_TEST_POSTGRES_URL, against the test server.
        let server = require_postgres();
        let name = unique_database_name();
        let db = create_on_server(&server.url, &name).unwrap();
        assert_eq!(database_of(&db.url), name);
        assert_eq!(query(&db.url, "select current_database()"), name);

        let err = create_on_server(&server.url, &name).unwrap_err();
        assert!(err.contains("already exists"), "{err}");
        assert!(err.contains("psql"), "{err}");
    }

    #[test]
    fn replaces_the_database_of_a_url() {
        let cases = [
            ("postgres://u@h:5432/postgres", "postgres://u@h:5432/x"),
            ("postgres://u@h:5432", "postgres://u@h:5432/x"),
            ("postgres://u@h:5432/", "postgres://u@h:5432/x"),
            (
                "postgresql://u:p%2Fw@h/db?sslmode=disable",
                "postgresql://u:p%2Fw@h/x?sslmode=disable",
            ),
            (
                "postgres://h?sslmode=require",
                "postgres://h/x?sslmode=require",
            ),
            (
                "postgres:///db?host=/var/run/postgresql",
                "postgres:///x?host=/var/run/postgresql",
            ),
        ];
        for (url, expected) in cases {
            assert_eq!(with_database(url, "x").unwrap(), expected, "{url}");
        }
        let err = with_database("mysql://u:secret@h/db", "x").unwrap_err();
        assert!(!err.contains("secret"), "{err}");
    }

    #[test]
    fn redacts_passwords() {
        assert_eq!(
            redact_password("postgres://u:secret@h:1/db"),
            "postgres://u:***@h:1/db"
        );
        assert_eq!(
            redact_password("postgres://u@h:1/db"),
            "postgres://u@h:1/db"
        );
        assert_eq!(redact_password("-c"), "-c");
    }

    #[test]
    fn database_names_are_unique_and_valid() {
        let names: HashSet<String> = (0..1000).map(|_| unique_database_name()).collect();
        assert_eq!(names.len(), 1000);
        for name in &names {
            assert!(name.len() <= 63, "{name}");
            assert!(
                name.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'),
                "{name}"
            );
        }
    }

    #[test]
    fn free_port_can_be_bound() {
        let port = free_port();
        assert_ne!(port, 0);
        TcpListener::bind((Ipv4Addr::LOCALHOST, port)).unwrap();
    }

    #[test]
    fn failures_name_the_command_and_its_output() {
        let err = run(Command::new("sh").args(["-c", "echo oops >&2; exit 3"])).unwrap_err();
        assert!(err.contains("sh -c"), "{err}");
        assert!(err.contains("exit status: 3"), "{err}");
        assert!(err.contains("oops"), "{err}");
    }

    #[test]
    fn shell_quoting() {
        assert_eq!(shell_quote("/tmp/a b"), "'/tmp/a b'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
    }
}
