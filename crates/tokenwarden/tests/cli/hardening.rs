//! Issue 9 through the binary: a lost database is noticed at start, the admin token must be
//! strong, the data is the owner's alone.

use crate::{ADMIN, Http, cmd, serve, text};
use std::os::unix::fs::PermissionsExt;
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

/// Runs a command that must stop by itself (a start-up refusal); one still running after
/// 60 s is killed and the test fails, instead of hanging.
pub(crate) fn run_refused(dir: &std::path::Path, env: &[(&str, &str)], args: &[&str]) -> Output {
    let mut child = cmd(dir, env)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let o = child.wait_with_output().unwrap();
            panic!("{args:?} kept running: {:?}", text(&o));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.wait_with_output().unwrap()
}

fn mode(p: &std::path::Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

/// Issue 9 bug 5: the database deleted while the master key stays: the next start refuses,
/// naming the problem, instead of making a new empty database beside the old key.
#[test]
fn r21_issue9_bug5_a_start_over_a_missing_database_with_the_old_key_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let env = [("TOKENWARDEN_ADMIN_TOKEN", ADMIN)];
    let server = serve(dir.path(), &env, &[]);
    let (s, _) = Http::new().send("GET", &server.url("/readyz"), None, None);
    assert_eq!(s, 200);
    server.stop();
    let data = dir.path().join("tokenwarden-data");
    for f in ["tokenwarden.db", "tokenwarden.db-wal", "tokenwarden.db-shm"] {
        let _ = std::fs::remove_file(data.join(f));
    }
    let o = run_refused(dir.path(), &env, &["serve", "--listen", "127.0.0.1:0"]);
    let (_, err) = text(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.contains("holds no data")
            && err.contains("master.key")
            && err.contains("probably deleted"),
        "{err}"
    );
    // The key is left as it was; nothing new was set up over it.
    assert!(data.join("master.key").exists());
}

/// Issue 9 bug 9: a weak admin token stops start-up with a clear message.
#[test]
fn issue9_bug9_serve_refuses_a_short_admin_token() {
    let dir = tempfile::tempdir().unwrap();
    let o = run_refused(
        dir.path(),
        &[("TOKENWARDEN_ADMIN_TOKEN", "x")],
        &["serve", "--listen", "127.0.0.1:0"],
    );
    let (_, err) = text(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.contains("admin token") && err.contains("too weak"),
        "{err}"
    );
}

/// Issue 9 bug 9: the data folder is created 0700 and the database and key files 0600; looser
/// existing ones are tightened at start, with a warning.
#[test]
fn issue9_bug9_the_data_folder_and_files_are_private() {
    let dir = tempfile::tempdir().unwrap();
    let env = [("TOKENWARDEN_ADMIN_TOKEN", ADMIN)];
    let server = serve(dir.path(), &env, &[]);
    let data = dir.path().join("tokenwarden-data");
    assert_eq!(mode(&data), 0o700);
    assert_eq!(mode(&data.join("tokenwarden.db")), 0o600);
    assert_eq!(mode(&data.join("master.key")), 0o600);
    server.stop();
    // Opened up by someone: tightened at the next start, with a warning.
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755)).unwrap();
    for f in ["tokenwarden.db", "master.key"] {
        std::fs::set_permissions(data.join(f), std::fs::Permissions::from_mode(0o644)).unwrap();
    }
    let server = serve(dir.path(), &env, &[]);
    let log = server.stop();
    assert_eq!(mode(&data), 0o700);
    assert_eq!(mode(&data.join("tokenwarden.db")), 0o600);
    assert_eq!(mode(&data.join("master.key")), 0o600);
    assert!(
        log.contains("the data folder was open to other users")
            && log.contains("the database file was open to other users")
            && log.contains("the master key file was open to other users"),
        "{log}"
    );
}
