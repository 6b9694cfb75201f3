//! Issue 11 items 10-13 through the binary: commands other than `serve`/`demo`/`migrate` never
//! create a database and say where they looked; `serve` checks its address and binds before it
//! touches any data, and refuses a second `serve` on one SQLite folder; error messages name
//! the cause and the path; instants show in one format, in aligned tables.

use crate::hardening::run_refused;
use crate::{ADMIN, Http, run, serve, text};
use serde_json::json;

/// Every command that works on existing data, with its arguments.
const DATA_COMMANDS: &[&[&str]] = &[
    &["app", "list"],
    &["app", "create", "sales-invoice"],
    &["token", "list"],
    &["token", "authorize", "snowflake-sales"],
    &["admin", "token", "create"],
    &["admin", "token", "list"],
    &[
        "admin",
        "token",
        "revoke",
        "00000000-0000-0000-0000-000000000000",
    ],
    &["keys", "list"],
    &["keys", "verify"],
    &["keys", "rotate"],
    &["keys", "drop", "k1"],
];

fn is_instant(s: &str) -> bool {
    // 2026-12-01T05:21:37.123Z
    let b = s.as_bytes();
    b.len() == 24
        && b.iter().enumerate().all(|(i, c)| match i {
            4 | 7 => *c == b'-',
            10 => *c == b'T',
            13 | 16 => *c == b':',
            19 => *c == b'.',
            23 => *c == b'Z',
            _ => c.is_ascii_digit(),
        })
}

/// Item 10: from a folder with no data, every data command refuses, names the file it looked
/// for and the setting that chose it, and creates nothing (no folder, no database, no key).
#[test]
fn issue11_item10_data_commands_never_create_a_database_and_say_where_they_looked() {
    let dir = tempfile::tempdir().unwrap();
    let expected = dir.path().join("tokenwarden-data/tokenwarden.db");
    for args in DATA_COMMANDS {
        let o = run(dir.path(), &[], args);
        let (_, err) = text(&o);
        assert_eq!(o.status.code(), Some(1), "{args:?}: {err}");
        assert!(
            err.contains(&format!(
                "no tokenwarden database at {}",
                expected.display()
            )) && err.contains("the default data folder ./tokenwarden-data")
                && err.contains("--data-dir"),
            "{args:?}: {err}"
        );
        assert!(
            !dir.path().join("tokenwarden-data").exists(),
            "{args:?} created the data folder"
        );
    }
    // The setting that chose the place is named.
    let elsewhere = dir.path().join("elsewhere");
    let o = run(
        dir.path(),
        &[("TOKENWARDEN_DATA_DIR", elsewhere.to_str().unwrap())],
        &["app", "list"],
    );
    let (_, err) = text(&o);
    assert!(
        err.contains(&elsewhere.join("tokenwarden.db").display().to_string())
            && err.contains("TOKENWARDEN_DATA_DIR"),
        "{err}"
    );
    assert!(!elsewhere.exists());

    // `migrate` creates it; then the data is found from any folder, by every way of naming it.
    let data = dir.path().join("data");
    let o = run(
        dir.path(),
        &[],
        &["migrate", "--data-dir", data.to_str().unwrap()],
    );
    assert!(o.status.success(), "{:?}", text(&o));
    assert!(data.join("master.key").exists());
    let o = run(
        dir.path(),
        &[],
        &["--data-dir", data.to_str().unwrap(), "app", "create", "a1"],
    );
    assert!(o.status.success(), "{:?}", text(&o));
    std::fs::write(dir.path().join("tw.toml"), "data_dir = \"./data\"\n").unwrap();
    let other = tempfile::tempdir().unwrap();
    let config = dir.path().join("tw.toml");
    for (env, args) in [
        (
            vec![],
            vec!["app", "list", "--data-dir", data.to_str().unwrap()],
        ),
        (
            vec![("TOKENWARDEN_DATA_DIR", data.to_str().unwrap())],
            vec!["app", "list"],
        ),
        // Relative paths in the config file are relative to the file.
        (
            vec![],
            vec!["--config", config.to_str().unwrap(), "app", "list"],
        ),
        (
            vec![("TOKENWARDEN_CONFIG", config.to_str().unwrap())],
            vec!["app", "list"],
        ),
    ] {
        let o = run(other.path(), &env, &args);
        let (out, err) = text(&o);
        assert!(o.status.success(), "{env:?} {args:?}: {err}");
        assert!(out.contains("a1"), "{env:?} {args:?}: {out}");
    }
    assert!(
        std::fs::read_dir(other.path()).unwrap().next().is_none(),
        "nothing was created in the other folder"
    );
}

/// Item 10 on PostgreSQL: a database tokenwarden never set up is refused, and left empty.
#[test]
fn issue11_item10_an_empty_postgres_database_is_not_set_up_by_a_data_command() {
    let pg = tokenwarden_testkit::require_postgres();
    let dir = tempfile::tempdir().unwrap();
    let env = [
        ("TOKENWARDEN_DATABASE_URL", pg.url.as_str()),
        ("TOKENWARDEN_MASTER_KEY", crate::instances::MASTER_KEY),
    ];
    let o = run(dir.path(), &env, &["app", "list"]);
    let (_, err) = text(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.contains("no tokenwarden database at postgres://")
            && err.contains("TOKENWARDEN_DATABASE_URL"),
        "{err}"
    );
    let o = run(dir.path(), &env, &["migrate"]);
    assert!(o.status.success(), "{:?}", text(&o));
    let o = run(dir.path(), &env, &["app", "list"]);
    assert!(o.status.success(), "{:?}", text(&o));
}

/// Item 11: a listen address without a host and a port in use stop `serve` before it makes
/// the data folder, the database or a master key.
#[test]
fn issue11_item11_serve_checks_and_binds_its_address_before_touching_data() {
    let dir = tempfile::tempdir().unwrap();
    let o = run_refused(dir.path(), &[], &["serve", "--listen", "8420"]);
    let (_, err) = text(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.contains("\"8420\" has no host") && err.contains("127.0.0.1:8420"),
        "{err}"
    );
    assert!(!dir.path().join("tokenwarden-data").exists(), "{err}");

    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let o = run_refused(dir.path(), &[], &["serve", "--listen", &addr]);
    let (_, err) = text(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.contains(&format!("cannot listen on {addr}")) && err.contains("in use"),
        "{err}"
    );
    assert!(
        !dir.path().join("tokenwarden-data").exists(),
        "no database and no master key were made: {err}"
    );
    assert!(!err.contains("applied database migration"), "{err}");
}

/// Item 11: a second `serve` on one SQLite folder is refused, naming the other process and
/// pointing at PostgreSQL; once the first stops, the folder serves again.
#[test]
fn issue11_item11_a_second_serve_on_one_sqlite_folder_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let env = [("TOKENWARDEN_ADMIN_TOKEN", ADMIN)];
    let first = serve(dir.path(), &env, &[]);
    let pid = first.child.id();
    let o = run_refused(dir.path(), &env, &["serve", "--listen", "127.0.0.1:0"]);
    let (_, err) = text(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.contains(&format!(
            "another tokenwarden (process {pid}) is already serving"
        )) && err.contains("tokenwarden.db")
            && err.contains("PostgreSQL"),
        "{err}"
    );
    // The first one is unharmed.
    let (s, _) = Http::new().send("GET", &first.url("/readyz"), None, None);
    assert_eq!(s, 200);
    first.stop();
    let again = serve(dir.path(), &env, &[]);
    again.stop();
}

/// Item 12: a data folder that is a file, a database folder that is missing, a PostgreSQL
/// server that refuses connections: each said once, with the path or the address.
#[test]
fn issue11_item12_start_up_errors_name_the_cause_and_the_path_once() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("tokenwarden-data"), "not a folder").unwrap();
    for args in [
        &["migrate"][..],
        &["serve", "--listen", "127.0.0.1:0"],
        &["app", "list"],
    ] {
        let o = run_refused(dir.path(), &[], args);
        let (_, err) = text(&o);
        assert_eq!(o.status.code(), Some(1), "{args:?}: {err}");
        assert!(
            err.contains(&format!(
                "the data folder {} is a file, not a folder",
                dir.path().join("tokenwarden-data").display()
            )) && !err.contains("File exists"),
            "{args:?}: {err}"
        );
    }
    let missing = dir.path().join("no-such-folder/tokenwarden.db");
    let o = run(
        dir.path(),
        &[],
        &[
            "migrate",
            "--data-dir",
            "d",
            "--database-url",
            &format!("sqlite://{}", missing.display()),
        ],
    );
    let (_, err) = text(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.contains(&missing.display().to_string()) && err.contains("No such file or directory"),
        "{err}"
    );

    // A file that is not a database: SQLite's reason, once, not the pool's "timed out".
    let garbage = dir.path().join("garbage");
    std::fs::create_dir(&garbage).unwrap();
    std::fs::write(
        garbage.join("tokenwarden.db"),
        "this is not a database file, it is text\n".repeat(200),
    )
    .unwrap();
    let o = run(
        dir.path(),
        &[],
        &["app", "list", "--data-dir", garbage.to_str().unwrap()],
    );
    let (_, err) = text(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.contains("garbage/tokenwarden.db") && err.contains("file is not a database"),
        "{err}"
    );
    assert_eq!(err.matches("not a database").count(), 1, "said once: {err}");
    assert!(!err.contains("timed out"), "{err}");

    let port = tokenwarden_testkit::free_port();
    let url = format!("postgres://tokenwarden@127.0.0.1:{port}/tokenwarden");
    let o = run(dir.path(), &[], &["migrate", "--database-url", &url]);
    let (_, err) = text(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.contains(&format!("127.0.0.1:{port}")) && err.contains("refused"),
        "{err}"
    );
    assert_eq!(
        err.matches("refused").count(),
        1,
        "the cause is said once: {err}"
    );
}

/// Item 13: instants in the CLI's tables and JSON are RFC 3339 UTC with milliseconds, and the
/// columns line up whatever the labels' lengths.
#[test]
fn issue11_item13_cli_tables_show_one_instant_format_aligned() {
    let dir = tempfile::tempdir().unwrap();
    let o = run(dir.path(), &[], &["migrate"]);
    assert!(o.status.success(), "{:?}", text(&o));
    for label in ["a", "a-much-longer-label-than-the-column-was-before"] {
        let o = run(
            dir.path(),
            &[],
            &["admin", "token", "create", "--label", label],
        );
        assert!(o.status.success(), "{:?}", text(&o));
    }
    let o = run(dir.path(), &[], &["admin", "token", "list"]);
    let (out, _) = text(&o);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 3, "{out}");
    let at = lines[0].find("CREATED").unwrap();
    for line in &lines[1..] {
        assert!(is_instant(&line[at..at + 24]), "{out}");
        assert_eq!(&line[at + 24..at + 26], "  ", "{out}");
    }
    let at = lines[0].find("REVOKED").unwrap();
    assert!(lines[1..].iter().all(|l| &l[at..] == "-"), "{out}");
    let o = run(dir.path(), &[], &["keys", "list"]);
    let (out, _) = text(&o);
    let at = out.lines().next().unwrap().find("CREATED").unwrap();
    let row = out.lines().nth(1).unwrap();
    assert!(is_instant(&row[at..at + 24]), "{out}");

    // The API answers the same form, from the POST and from the GET.
    let server = serve(dir.path(), &[("TOKENWARDEN_ADMIN_TOKEN", ADMIN)], &[]);
    let http = Http::new();
    let (s, made) = http.send(
        "POST",
        &server.url("/api/v1/apps"),
        Some(ADMIN),
        Some(json!({"name": "times"})),
    );
    assert_eq!(s, 201, "{made}");
    let (_, read) = http.send("GET", &server.url("/api/v1/apps/times"), Some(ADMIN), None);
    server.stop();
    let created = made["created_at"].as_str().unwrap();
    assert!(is_instant(created), "{made}");
    assert_eq!(read["created_at"].as_str(), Some(created), "{read}");
}
