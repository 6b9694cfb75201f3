//! The CLI's other commands, as the README shows them.

use crate::{ADMIN, Http, run, serve, text};
use serde_json::json;

#[test]
fn app_create_prints_a_working_key_and_app_list_shows_it() {
    let dir = tempfile::tempdir().unwrap();
    // The CLI works on existing data only: `migrate` (or `serve`) makes it.
    assert!(run(dir.path(), &[], &["migrate"]).status.success());
    let o = run(
        dir.path(),
        &[],
        &[
            "app",
            "create",
            "sales-invoice",
            "--token",
            "snowflake-sales",
        ],
    );
    let (out, err) = text(&o);
    assert!(o.status.success(), "{err}");
    let key = out.trim().to_owned();
    assert!(key.starts_with("tw_app_"), "{out}");
    assert!(err.contains("shown only this once"), "{err}");
    let o = run(dir.path(), &[], &["app", "list", "--json"]);
    let apps: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(apps[0]["name"], "sales-invoice");
    assert_eq!(apps[0]["tokens"], json!(["snowflake-sales"]));
    let o = run(dir.path(), &[], &["app", "create", "sales-invoice"]);
    assert!(!o.status.success());
    assert!(text(&o).1.contains("already exists"), "{:?}", text(&o));
    let o = run(dir.path(), &[], &["app", "create", "bad name"]);
    assert!(text(&o).1.contains("may contain only"), "{:?}", text(&o));

    let o = run(
        dir.path(),
        &[],
        &["admin", "token", "create", "--label", "ops"],
    );
    let admin = String::from_utf8(o.stdout).unwrap().trim().to_owned();
    assert!(admin.starts_with("tw_adm_"));

    let server = serve(dir.path(), &[], &[]);
    let http = Http::new();
    assert_eq!(
        http.send(
            "GET",
            &server.url("/api/v1/apps/sales-invoice"),
            Some(&key),
            None
        )
        .0,
        200
    );
    assert_eq!(
        http.send("GET", &server.url("/api/v1/apps"), Some(&key), None)
            .0,
        403
    );
    let (s, b) = http.send(
        "POST",
        &server.url("/api/v1/tokens"),
        Some(&admin),
        Some(json!({"name": "snowflake-sales", "provider": "snowflake", "app": "sales-invoice", "settings": {"account": "xy12345.us-east-1", "role": "ANALYST"}})),
    );
    assert_eq!(s, 201, "{b}");
    server.stop();
    let o = run(dir.path(), &[], &["token", "list"]);
    let (out, _) = text(&o);
    assert!(
        out.contains("snowflake-sales")
            && out.contains("app:sales-invoice")
            && out.contains("not_authorized"),
        "{out}"
    );
}

/// `tokenwarden demo` exists only with the `demo` cargo feature (on by default). The default run
/// checks that it is there; `cargo test -p tokenwarden --no-default-features --test cli demo`
/// checks that it is not.
#[test]
fn the_demo_command_exists_only_with_the_demo_feature() {
    let dir = tempfile::tempdir().unwrap();
    let o = run(dir.path(), &[], &["--help"]);
    let (out, _) = text(&o);
    assert!(o.status.success(), "{:?}", text(&o));
    let listed = out.lines().any(|l| l.trim_start().starts_with("demo "));
    assert_eq!(listed, cfg!(feature = "demo"), "{out}");
    let o = run(dir.path(), &[], &["demo", "--help"]);
    if cfg!(feature = "demo") {
        assert!(o.status.success(), "{:?}", text(&o));
        assert!(text(&o).0.contains("--emulator-listen"), "{:?}", text(&o));
    } else {
        assert_eq!(o.status.code(), Some(2), "{:?}", text(&o));
        assert!(
            text(&o).1.contains("unrecognized subcommand 'demo'"),
            "{:?}",
            text(&o)
        );
    }
}

#[test]
fn config_default_prints_a_usable_file_and_unknown_keys_are_reported() {
    let dir = tempfile::tempdir().unwrap();
    let o = run(dir.path(), &[], &["config", "default"]);
    let (out, _) = text(&o);
    assert!(out.contains("listen = \"127.0.0.1:8420\""), "{out}");
    std::fs::write(dir.path().join("tw.toml"), &out).unwrap();
    let o = run(dir.path(), &[], &["--config", "tw.toml", "migrate"]);
    assert!(o.status.success(), "{:?}", text(&o));
    std::fs::write(
        dir.path().join("bad.toml"),
        "listen = \"127.0.0.1:1\"\nmaster_kee = \"x\"\n",
    )
    .unwrap();
    let o = run(dir.path(), &[], &["--config", "bad.toml", "migrate"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(text(&o).1.contains("master_kee"), "{:?}", text(&o));
    let o = run(dir.path(), &[("TOKENWARDEN_LISTN", "x")], &["migrate"]);
    assert!(
        text(&o)
            .1
            .contains("unknown environment variable TOKENWARDEN_LISTN"),
        "{:?}",
        text(&o)
    );
}

#[test]
fn serve_on_postgres_from_a_database_url() {
    let pg = tokenwarden_testkit::require_postgres();
    let dir = tempfile::tempdir().unwrap();
    let env = [
        ("TOKENWARDEN_ADMIN_TOKEN", ADMIN),
        ("TOKENWARDEN_DATABASE_URL", pg.url.as_str()),
    ];
    let server = serve(dir.path(), &env, &[]);
    let http = Http::new();
    assert_eq!(http.send("GET", &server.url("/readyz"), None, None).0, 200);
    let (s, _) = http.send(
        "POST",
        &server.url("/api/v1/apps"),
        Some(ADMIN),
        Some(json!({"name": "pg-app"})),
    );
    assert_eq!(s, 201);
    let log = server.stop();
    assert!(log.contains("postgres://"), "{log}");
    assert!(
        !dir.path().join("tokenwarden-data/tokenwarden.db").exists(),
        "no SQLite file on PostgreSQL"
    );
}

#[test]
fn admin_tokens_can_be_listed_and_revoked_from_the_cli() {
    let dir = tempfile::tempdir().unwrap();
    assert!(run(dir.path(), &[], &["migrate"]).status.success());
    let o = run(
        dir.path(),
        &[],
        &["admin", "token", "create", "--label", "ops"],
    );
    let (out, err) = text(&o);
    let admin = out.trim().to_owned();
    let line = err.lines().find(|l| l.starts_with("admin token ")).unwrap();
    let id = line.split_whitespace().nth(2).unwrap().to_owned();
    let o = run(dir.path(), &[], &["admin", "token", "list"]);
    let (out, _) = text(&o);
    assert!(out.contains(&id) && out.contains("ops"), "{out}");
    assert!(!out.contains(&admin), "the token itself is never listed");
    let server = serve(dir.path(), &[], &[]);
    let http = Http::new();
    assert_eq!(
        http.send("GET", &server.url("/api/v1/apps"), Some(&admin), None)
            .0,
        200
    );
    server.stop();
    let o = run(dir.path(), &[], &["admin", "token", "revoke", &id]);
    assert!(o.status.success(), "{:?}", text(&o));
    let o = run(dir.path(), &[], &["admin", "token", "revoke", "not-an-id"]);
    assert!(!o.status.success());
    let server = serve(dir.path(), &[], &[]);
    assert_eq!(
        http.send("GET", &server.url("/api/v1/apps"), Some(&admin), None)
            .0,
        401
    );
    server.stop();
}

/// Issue 11 item 9: admins are listed, get a new password and are removed from the CLI, but
/// never the last one; an app is deleted with its keys.
#[test]
fn issue11_admins_are_listed_reset_and_removed_but_never_the_last_and_apps_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let o = run(dir.path(), &[], &["migrate"]);
    assert!(o.status.success(), "{:?}", text(&o));
    let pw = dir.path().join("pw.txt");
    std::fs::write(&pw, "first password 123\n").unwrap();
    let pw_arg = pw.to_str().unwrap();
    for user in ["alice", "bob"] {
        let o = run(
            dir.path(),
            &[],
            &["admin", "create", user, "--password-file", pw_arg],
        );
        assert!(o.status.success(), "{:?}", text(&o));
    }
    let o = run(dir.path(), &[], &["admin", "list"]);
    let (out, err) = text(&o);
    assert!(o.status.success(), "{err}");
    assert!(out.contains("alice") && out.contains("bob"), "{out}");
    assert!(!out.contains("argon2"), "{out}");

    std::fs::write(&pw, "short\n").unwrap();
    let o = run(
        dir.path(),
        &[],
        &["admin", "password", "bob", "--password-file", pw_arg],
    );
    assert!(!o.status.success());
    assert!(
        text(&o).1.contains("at least 12 characters"),
        "{:?}",
        text(&o)
    );
    std::fs::write(&pw, "second password 456\n").unwrap();
    let o = run(
        dir.path(),
        &[],
        &["admin", "password", "bob", "--password-file", pw_arg],
    );
    assert!(o.status.success(), "{:?}", text(&o));
    let o = run(
        dir.path(),
        &[],
        &["admin", "password", "nobody", "--password-file", pw_arg],
    );
    assert!(!o.status.success());
    assert!(text(&o).1.contains("not found"), "{:?}", text(&o));

    let o = run(dir.path(), &[], &["admin", "remove", "alice"]);
    assert!(o.status.success(), "{:?}", text(&o));
    let o = run(dir.path(), &[], &["admin", "remove", "bob"]);
    assert!(!o.status.success());
    assert!(text(&o).1.contains("last admin"), "{:?}", text(&o));
    let o = run(dir.path(), &[], &["admin", "list"]);
    let (out, _) = text(&o);
    assert!(out.contains("bob") && !out.contains("alice"), "{out}");

    let o = run(dir.path(), &[], &["app", "create", "gone-soon"]);
    assert!(o.status.success(), "{:?}", text(&o));
    let key = text(&o).0.trim().to_owned();
    let o = run(dir.path(), &[], &["app", "delete", "gone-soon"]);
    assert!(o.status.success(), "{:?}", text(&o));
    let o = run(dir.path(), &[], &["app", "delete", "gone-soon"]);
    assert!(!o.status.success());
    let server = serve(dir.path(), &[], &[]);
    let http = Http::new();
    assert_eq!(
        http.send(
            "GET",
            &server.url("/api/v1/apps/gone-soon"),
            Some(&key),
            None
        )
        .0,
        401,
        "the deleted app's key no longer works"
    );
    server.stop();
}

/// Issue 11 item 9: `token rename OLD NEW` renames through the core; apps fetching the old
/// name make it fail (named) unless `--rebind-apps` moves them to the new name.
#[test]
fn issue11_token_rename_refuses_breaking_apps_unless_rebind_apps() {
    let dir = tempfile::tempdir().unwrap();
    assert!(run(dir.path(), &[], &["migrate"]).status.success());
    let o = run(
        dir.path(),
        &[],
        &["app", "create", "sales-invoice", "--token", "sales-sf"],
    );
    assert!(o.status.success(), "{:?}", text(&o));
    let o = run(
        dir.path(),
        &[],
        &["admin", "token", "create", "--label", "ops"],
    );
    let admin = String::from_utf8(o.stdout).unwrap().trim().to_owned();
    let server = serve(dir.path(), &[], &[]);
    let http = Http::new();
    for (name, app) in [("sales-sf", None), ("own", Some("sales-invoice"))] {
        let (s, b) = http.send(
            "POST",
            &server.url("/api/v1/tokens"),
            Some(&admin),
            Some(json!({"name": name, "provider": "snowflake", "app": app,
                "settings": {"account": "xy12345.us-east-1", "role": "ANALYST"}})),
        );
        assert_eq!(s, 201, "{b}");
    }
    server.stop();

    let o = run(
        dir.path(),
        &[],
        &["token", "rename", "sales-sf", "sales-snowflake"],
    );
    assert!(!o.status.success());
    let err = text(&o).1;
    assert!(
        err.contains("sales-invoice") && err.contains("--rebind-apps"),
        "{err}"
    );
    let o = run(
        dir.path(),
        &[],
        &[
            "token",
            "rename",
            "sales-sf",
            "sales-snowflake",
            "--rebind-apps",
        ],
    );
    assert!(o.status.success(), "{:?}", text(&o));
    assert!(text(&o).1.contains("renamed to sales-snowflake"));
    let o = run(dir.path(), &[], &["app", "list", "--json"]);
    let apps: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(apps[0]["tokens"], json!(["sales-snowflake"]));
    // An app-level token is named with --app; the old name is gone, a bad name refused.
    let o = run(dir.path(), &[], &["token", "rename", "own", "own-2"]);
    assert!(!o.status.success());
    assert!(
        text(&o).1.contains("no global token named own"),
        "{:?}",
        text(&o)
    );
    let o = run(
        dir.path(),
        &[],
        &["token", "rename", "own", "own-2", "--app", "sales-invoice"],
    );
    assert!(o.status.success(), "{:?}", text(&o));
    let o = run(dir.path(), &[], &["token", "rename", "sales-sf", "x"]);
    assert!(!o.status.success());
    let o = run(
        dir.path(),
        &[],
        &["token", "rename", "sales-snowflake", "bad name"],
    );
    assert!(!o.status.success());
    assert!(text(&o).1.contains("may contain only"), "{:?}", text(&o));
    let o = run(dir.path(), &[], &["token", "list", "--json"]);
    let tokens: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let mut names: Vec<&str> = tokens
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    names.sort_unstable();
    assert_eq!(names, ["own-2", "sales-snowflake"]);
}

/// `token create --grant client_credentials` (issue 12): against npm's oidc-provider, the token
/// gets its first access token at once (the secret read from standard input or the
/// environment, never an argument), and an app reads it from the running service.
#[test]
fn token_create_with_client_credentials_fetches_the_access_token_and_an_app_reads_it() {
    use std::io::Write;
    const SECRET: &str = "cli-cc-secret+/=";
    let dir = tempfile::tempdir().unwrap();
    assert!(run(dir.path(), &[], &["migrate"]).status.success());
    let op = tokenwarden_testkit::oidc::require_oidc_provider(
        tokenwarden_testkit::oidc::OidcProviderConfig {
            client_id: "cli".into(),
            client_secret: SECRET.into(),
            redirect_uri: "http://127.0.0.1:9/oauth/callback".into(),
            access_token_ttl_secs: 300,
            refresh_token_ttl_secs: 3600,
            rotate_refresh_tokens: true,
            private_key_jwt_jwks: None,
        },
    );
    let o = run(dir.path(), &[], &["app", "create", "m2m", "--token", "api"]);
    assert!(o.status.success(), "{:?}", text(&o));
    let key = text(&o).0.trim().to_owned();
    let token_url = format!("token_url={}", op.token_endpoint());
    let create = |name: &str, client_id: &str, extra: &[&str]| {
        let mut args = vec![
            "token",
            "create",
            name,
            "--provider",
            "oauth2",
            "--grant",
            "client_credentials",
            "--setting",
            &token_url,
            "--setting",
            "scope=api:read",
            "--client-id",
            client_id,
            "--json",
        ];
        args.extend_from_slice(extra);
        args.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>()
    };

    // The secret on standard input.
    let mut child = crate::cmd(dir.path(), &[])
        .args(create(
            "api",
            &op.cc_client_id(),
            &["--client-secret-stdin"],
        ))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    writeln!(child.stdin.take().unwrap(), "{SECRET}").unwrap();
    let o = child.wait_with_output().unwrap();
    let (out, err) = text(&o);
    assert!(o.status.success(), "{err}");
    let tok: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        (tok["grant"].as_str(), tok["status"].as_str()),
        (Some("client_credentials"), Some("healthy")),
        "{out}"
    );
    assert_eq!(op.token_requests("client_credentials").unwrap(), 1);
    assert!(!out.contains(SECRET) && !err.contains(SECRET));

    // The secret from the environment, client_secret_post chosen for the -cc-post client.
    let mut args = create(
        "api-post",
        &op.cc_post_client_id(),
        &[
            "--client-auth",
            "client_secret_post",
            "--client-secret-expires-at",
            "2099-01-01T00:00:00Z",
        ],
    );
    args.retain(|a| a != "--json");
    let o = crate::cmd(dir.path(), &[("TOKENWARDEN_CLIENT_SECRET", SECRET)])
        .args(&args)
        .output()
        .unwrap();
    let (out, err) = text(&o);
    assert!(o.status.success(), "{err}");
    assert!(err.contains("status healthy"), "{err}");
    assert!(!out.trim().is_empty(), "the id is printed: {out}");
    assert_eq!(op.token_requests("client_credentials").unwrap(), 2);

    // Bad input: clear messages, nothing created.
    let o = run(
        dir.path(),
        &[],
        &[
            "token",
            "create",
            "x",
            "--provider",
            "oauth2",
            "--grant",
            "password",
        ],
    );
    assert!(!o.status.success());
    assert!(text(&o).1.contains("client_credentials"), "{:?}", text(&o));
    let o = run(
        dir.path(),
        &[],
        &[
            "token",
            "create",
            "g",
            "--provider",
            "google",
            "--grant",
            "client_credentials",
        ],
    );
    assert!(!o.status.success());
    assert!(text(&o).1.contains("does not support"), "{:?}", text(&o));
    let o = run(dir.path(), &[], &["token", "list", "--json"]);
    let list: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(list.as_array().unwrap().len(), 2, "{list}");

    // A new secret later (`token set-secret`, from the environment or standard input): a
    // refused one marks the token as needing credentials, the right one with its new expiry
    // brings it back, each fetching an access token at once.
    let set = |secret: &str, extra: &[&str]| {
        let mut args = vec!["token", "set-secret", "api"];
        args.extend_from_slice(extra);
        crate::cmd(dir.path(), &[("TOKENWARDEN_CLIENT_SECRET", secret)])
            .args(&args)
            .output()
            .unwrap()
    };
    let o = set("not-the-secret", &[]);
    let (_, err) = text(&o);
    assert!(o.status.success(), "{err}");
    assert!(err.contains("status needs_credentials"), "{err}");
    assert!(!err.contains("not-the-secret"), "{err}");
    let o = set(SECRET, &["--expires-at", "2099-06-30T00:00:00Z"]);
    let (_, err) = text(&o);
    assert!(o.status.success(), "{err}");
    assert!(
        err.contains("expires 2099-06-30T00:00:00.000Z") && err.contains("status healthy"),
        "{err}"
    );
    let o = set(SECRET, &["--expires-at", "next tuesday"]);
    assert!(!o.status.success());
    assert!(text(&o).1.contains("--expires-at"), "{:?}", text(&o));
    let o = crate::cmd(dir.path(), &[])
        .args(["token", "set-secret", "api"])
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(text(&o).1.contains("no client secret"), "{:?}", text(&o));

    // The running service serves it to the app.
    let server = serve(dir.path(), &[], &[]);
    let http = Http::new();
    let (s, body) = http.send(
        "GET",
        &server.url("/api/v1/access-tokens/api"),
        Some(&key),
        None,
    );
    assert_eq!(s, 200, "{body}");
    assert_eq!(body["token_type"], "Bearer");
    server.stop();
}

/// `token authorize` on a `device_code` token (issue 12, RFC 8628), against npm's
/// oidc-provider: prints the code and the page, waits while the person approves on "another
/// device", and ends when the provider answers; `token device-status` then says authorized and
/// an app reads the token from the running service.
#[test]
fn token_authorize_on_a_device_code_token_prints_the_code_and_waits_for_the_approval() {
    use std::io::{BufRead, BufReader};
    let dir = tempfile::tempdir().unwrap();
    assert!(run(dir.path(), &[], &["migrate"]).status.success());
    let op = tokenwarden_testkit::oidc::require_oidc_provider(
        tokenwarden_testkit::oidc::OidcProviderConfig {
            client_id: "cli".into(),
            client_secret: "cli-secret".into(),
            redirect_uri: "http://127.0.0.1:9/oauth/callback".into(),
            access_token_ttl_secs: 300,
            refresh_token_ttl_secs: 3600,
            rotate_refresh_tokens: true,
            private_key_jwt_jwks: None,
        },
    );
    let o = run(
        dir.path(),
        &[],
        &["app", "create", "tv-app", "--token", "tv"],
    );
    assert!(o.status.success(), "{:?}", text(&o));
    let key = text(&o).0.trim().to_owned();
    let token_url = format!("token_url={}", op.token_endpoint());
    let device_url = format!(
        "device_authorization_url={}",
        op.device_authorization_endpoint()
    );
    let o = run(
        dir.path(),
        &[],
        &[
            "token",
            "create",
            "tv",
            "--provider",
            "oauth2",
            "--grant",
            "device_code",
            "--setting",
            &token_url,
            "--setting",
            &device_url,
            "--setting",
            "scope=openid",
            "--client-id",
            &op.device_client_id(),
        ],
    );
    let (_, err) = text(&o);
    assert!(o.status.success(), "{err}");
    assert!(
        err.contains("device_code") && err.contains("not_authorized"),
        "{err}"
    );

    // Before any sign-in: the status says so.
    let o = run(dir.path(), &[], &["token", "device-status", "tv"]);
    assert!(!o.status.success());
    assert!(text(&o).1.contains("no device sign-in"), "{:?}", text(&o));

    let mut child = crate::cmd(dir.path(), &[])
        .args(["token", "authorize", "tv"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let code_line = lines.next().unwrap().unwrap();
    let code = code_line
        .strip_prefix("code: ")
        .expect(&code_line)
        .to_owned();
    let open = lines.next().unwrap().unwrap();
    assert_eq!(open, format!("open: {}/device", op.issuer));
    // While it waits, the status is pending with the same code.
    let o = run(dir.path(), &[], &["token", "device-status", "tv"]);
    assert!(o.status.success(), "{:?}", text(&o));
    assert!(
        text(&o).0.starts_with(&format!("pending: enter {code}")),
        "{:?}",
        text(&o)
    );
    // The person approves on another device; the waiting command sees it at its next poll.
    op.complete_device_sign_in(&code, true).unwrap();
    let rest: Vec<String> = lines.map(Result::unwrap).collect();
    let status = child.wait().unwrap();
    assert!(status.success(), "{rest:?}");
    assert!(
        rest.iter()
            .any(|l| l == "authorized: tv holds an access token"),
        "{rest:?}"
    );
    let o = run(dir.path(), &[], &["token", "device-status", "tv"]);
    assert!(
        o.status.success() && text(&o).0.starts_with("authorized"),
        "{:?}",
        text(&o)
    );

    let server = serve(dir.path(), &[], &[]);
    let (s, body) = Http::new().send(
        "GET",
        &server.url("/api/v1/access-tokens/tv"),
        Some(&key),
        None,
    );
    assert_eq!(s, 200, "{body}");
    assert_eq!(body["token_type"], "Bearer");
    server.stop();
}
