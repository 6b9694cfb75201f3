//! The `tokenwarden` binary as a user runs it: real processes, real files, real HTTP.

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_tokenwarden");
const ADMIN: &str = "admin-SEEDED-bootstrap-token-0001";

struct Server {
    child: Child,
    base: String,
    log: PathBuf,
    /// Copies the child's stderr into `log`; ends when the child exits.
    tee: Option<std::thread::JoinHandle<()>>,
}

impl Server {
    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Waits for the child (already exited or signalled) and for its log to be complete.
    fn reap(&mut self) -> std::process::ExitStatus {
        let status = self.child.wait().unwrap();
        if let Some(tee) = self.tee.take() {
            let _ = tee.join();
        }
        status
    }

    /// Stops with SIGTERM (graceful) and returns everything it logged.
    fn stop(mut self) -> String {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if self.child.try_wait().unwrap().is_some() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        self.reap();
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

/// Starts `c` (a `tokenwarden serve` command; `--listen 127.0.0.1:0` is added) with its stderr
/// appended to `log`, and returns once it has said which address it listens on: the port is
/// chosen by the system when the child binds, so no other process can take it meanwhile.
fn spawn_listening(mut c: Command, log: &Path) -> Server {
    use std::io::{BufRead, Write};
    c.arg("--listen").arg("127.0.0.1:0").stderr(Stdio::piped());
    let mut child = c.spawn().unwrap();
    let stderr = child.stderr.take().unwrap();
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let tee = std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            let _ = writeln!(file, "{line}");
            if line.contains("tokenwarden is listening")
                && let Some(at) = line.find("address=http://")
            {
                let rest = &line[at + "address=".len()..];
                let _ = tx.send(rest.split_whitespace().next().unwrap_or(rest).to_owned());
            } else if line.contains("tokenwarden is listening")
                && let Some(at) = line.find("\"address\":\"http://")
            {
                // --log-format json
                let rest = &line[at + "\"address\":\"".len()..];
                let _ = tx.send(rest.split('"').next().unwrap_or(rest).to_owned());
            }
        }
    });
    // A guard only: the address comes as soon as the child has bound its port.
    match rx.recv_timeout(Duration::from_secs(120)) {
        Ok(base) => Server {
            child,
            base,
            log: log.to_owned(),
            tee: Some(tee),
        },
        Err(e) => {
            let _ = child.kill();
            let status = child.wait().unwrap();
            let _ = tee.join();
            panic!(
                "serve never said where it listens ({e}; {status}): {}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
        }
    }
}

fn cmd(dir: &Path, env: &[(&str, &str)]) -> Command {
    let mut c = Command::new(BIN);
    c.current_dir(dir)
        .env_remove("TOKENWARDEN_MASTER_KEY")
        .env_remove("TOKENWARDEN_ADMIN_TOKEN")
        .env("NO_COLOR", "1");
    for (k, v) in env {
        c.env(k, v);
    }
    c
}

fn run(dir: &Path, env: &[(&str, &str)], args: &[&str]) -> Output {
    cmd(dir, env).args(args).output().unwrap()
}

fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// Starts `tokenwarden serve` in `dir` on a port of the system's choosing; returns once it
/// listens.
fn serve(dir: &Path, env: &[(&str, &str)], extra: &[&str]) -> Server {
    static STARTS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = STARTS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let log = dir.join(format!("serve-{n}.log"));
    let mut c = cmd(dir, env);
    c.arg("serve").args(extra);
    c.stdout(Stdio::from(
        std::fs::File::create(dir.join("stdout.log")).unwrap(),
    ));
    spawn_listening(c, &log)
}

/// A small synchronous HTTP client so the tests read top to bottom.
struct Http {
    rt: tokio::runtime::Runtime,
    inner: reqwest::Client,
}

impl Http {
    fn new() -> Self {
        tokenwarden_oauth::client::install_crypto_provider();
        Self {
            rt: tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap(),
            inner: reqwest::Client::new(),
        }
    }

    fn send(
        &self,
        method: &str,
        url: &str,
        bearer: Option<&str>,
        body: Option<serde_json::Value>,
    ) -> (u16, serde_json::Value) {
        self.rt.block_on(async {
            let mut req = self.inner.request(method.parse().unwrap(), url);
            if let Some(b) = bearer {
                req = req.bearer_auth(b);
            }
            if let Some(body) = body {
                req = req.json(&body);
            }
            let res = req.send().await.unwrap();
            let status = res.status().as_u16();
            let text = res.text().await.unwrap();
            (
                status,
                serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text)),
            )
        })
    }
}

mod backup;
mod crash;
mod hardening;
mod instances;
mod keypair;
mod keys;
mod life;
mod secrets;
mod startup;
mod usage;
