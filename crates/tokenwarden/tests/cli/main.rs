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
}

impl Server {
    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
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
        let _ = self.child.wait();
        std::fs::read_to_string(&self.log).unwrap_or_default()
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

/// Starts `tokenwarden serve` in `dir` on a free port and waits for /healthz.
fn serve(dir: &Path, env: &[(&str, &str)], extra: &[&str]) -> Server {
    let port = tokenwarden_testkit::free_port();
    let log = dir.join(format!("serve-{port}.log"));
    let mut c = cmd(dir, env);
    c.arg("serve")
        .arg("--listen")
        .arg(format!("127.0.0.1:{port}"))
        .args(extra);
    c.stdout(Stdio::from(
        std::fs::File::create(dir.join("stdout.log")).unwrap(),
    ));
    c.stderr(Stdio::from(std::fs::File::create(&log).unwrap()));
    let mut child = c.spawn().unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            panic!(
                "serve exited with {status}: {}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
        }
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            break;
        }
        assert!(Instant::now() < deadline, "serve did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    Server { child, base, log }
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

mod instances;
mod keys;
mod secrets;
mod usage;
