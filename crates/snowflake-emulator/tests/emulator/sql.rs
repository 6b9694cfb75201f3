//! The worksheet SQL: CREATE and its refusals, the client-secrets output, rotation.

use snowflake_emulator::{Emulator, EmulatorConfig};

fn emu() -> Emulator {
    Emulator::new(EmulatorConfig::default_for_tests())
}

const BASE: &str = "CREATE SECURITY INTEGRATION TW_SALES TYPE = OAUTH OAUTH_CLIENT = CUSTOM \
                    OAUTH_CLIENT_TYPE = 'CONFIDENTIAL'";

fn code_of(out: &snowflake_emulator::SqlOutcome) -> String {
    out.error()
        .map(|e| e.code.clone())
        .unwrap_or_else(|| "ok".to_string())
}

#[test]
fn create_then_show_secrets_gives_the_real_json_shape() {
    let emu = emu();
    let out = emu.run_sql_as(
        "ADMIN",
        &format!("{BASE} OAUTH_REDIRECT_URI = 'https://tw.example.com/cb' ENABLED = TRUE;"),
    );
    assert_eq!(
        out.first_value(),
        Some("Integration TW_SALES successfully created.")
    );
    let out = emu.run_sql_as(
        "ADMIN",
        "select SYSTEM$SHOW_OAUTH_CLIENT_SECRETS('TW_SALES')",
    );
    let rs = out.rows().expect("rows");
    assert_eq!(
        rs.columns[0].name,
        "SYSTEM$SHOW_OAUTH_CLIENT_SECRETS('TW_SALES')"
    );
    let value = out.first_value().expect("value");
    // Key order as real accounts return it.
    let i2 = value.find("\"OAUTH_CLIENT_SECRET_2\"").expect("secret 2");
    let i1 = value.find("\"OAUTH_CLIENT_SECRET\":").expect("secret");
    let iid = value.find("\"OAUTH_CLIENT_ID\"").expect("id");
    assert!(i2 < i1 && i1 < iid, "{value}");
    let parsed: serde_json::Value = serde_json::from_str(value).expect("json");
    let creds = emu.client_credentials("TW_SALES").expect("creds");
    assert_eq!(parsed["OAUTH_CLIENT_ID"], creds.client_id.as_str());
    assert_eq!(parsed["OAUTH_CLIENT_SECRET"], creds.client_secret.as_str());
    assert_eq!(
        parsed["OAUTH_CLIENT_SECRET_2"],
        creds.client_secret_2.as_str()
    );
    for v in [
        &creds.client_id,
        &creds.client_secret,
        &creds.client_secret_2,
    ] {
        assert!(
            v.contains('+') && v.contains('/') && v.ends_with('='),
            "{v}"
        );
    }
    assert_ne!(creds.client_secret, creds.client_secret_2);
    // The name is case-sensitive.
    let lower = emu.run_sql_as(
        "ADMIN",
        "SELECT SYSTEM$SHOW_OAUTH_CLIENT_SECRETS('tw_sales')",
    );
    assert_eq!(code_of(&lower), "002003");
}

#[test]
fn non_tls_redirect_needs_the_flag() {
    let emu = emu();
    let out = emu.run_sql_as(
        "ADMIN",
        &format!("{BASE} OAUTH_REDIRECT_URI = 'http://localhost:8420/cb' ENABLED = TRUE"),
    );
    let err = out.error().expect("refused");
    assert!(
        err.message.contains("https") && err.message.contains("OAUTH_ALLOW_NON_TLS_REDIRECT_URI"),
        "{err:?}"
    );
    assert!(emu.client_credentials("TW_SALES").is_none());
    let out = emu.run_sql_as(
        "ADMIN",
        &format!("{BASE} OAUTH_REDIRECT_URI = 'http://localhost:8420/cb' OAUTH_ALLOW_NON_TLS_REDIRECT_URI = TRUE"),
    );
    assert!(out.is_ok(), "{out:?}");
    // ENABLED omitted: FALSE, as on real accounts.
    assert!(!emu.stats().integrations[0].enabled);
}

#[test]
fn refresh_token_validity_bounds() {
    let emu = emu();
    for bad in ["86399", "7776001", "157784630"] {
        let out = emu.run_sql_as(
            "ADMIN",
            &format!("{BASE} OAUTH_REDIRECT_URI = 'https://a.example/cb' OAUTH_REFRESH_TOKEN_VALIDITY = {bad}"),
        );
        let err = out.error().unwrap_or_else(|| panic!("{bad} accepted"));
        assert!(
            err.message.contains("must be between 86400 and 7776000"),
            "{}",
            err.message
        );
    }
    let ok = emu.run_sql_as(
        "ADMIN",
        &format!("{BASE} OAUTH_REDIRECT_URI = 'https://a.example/cb' OAUTH_REFRESH_TOKEN_VALIDITY = 86400"),
    );
    assert!(ok.is_ok());
    // ALTER is validated the same way.
    let out = emu.run_sql_as(
        "ADMIN",
        "ALTER SECURITY INTEGRATION TW_SALES SET OAUTH_REFRESH_TOKEN_VALIDITY = 100",
    );
    assert!(!out.is_ok());
    let out = emu.run_sql_as(
        "ADMIN",
        "ALTER SECURITY INTEGRATION tw_sales SET OAUTH_REFRESH_TOKEN_VALIDITY = 7776000",
    );
    assert!(out.is_ok(), "{out:?}");
    assert_eq!(
        emu.stats().integrations[0].refresh_token_validity,
        7_776_000
    );

    // Support raised the limit: 5 years accepted.
    let mut config = EmulatorConfig::default_for_tests();
    config.max_refresh_token_validity = 157_784_630;
    let raised = Emulator::new(config);
    let out = raised.run_sql_as(
        "ADMIN",
        &format!("{BASE} OAUTH_REDIRECT_URI = 'https://a.example/cb' OAUTH_REFRESH_TOKEN_VALIDITY = 157784630"),
    );
    assert!(out.is_ok(), "{out:?}");
}

#[test]
fn access_token_validity_bounds() {
    let emu = emu();
    let out = emu.run_sql_as(
        "ADMIN",
        &format!(
            "{BASE} OAUTH_REDIRECT_URI = 'https://a.example/cb' OAUTH_ACCESS_TOKEN_VALIDITY = 3601"
        ),
    );
    assert!(
        out.error()
            .expect("refused")
            .message
            .contains("between 60 and 3600")
    );
}

#[test]
fn non_admin_role_is_refused() {
    let emu = emu();
    let out = emu.run_sql_as(
        "ALICE",
        &format!("{BASE} OAUTH_REDIRECT_URI = 'https://a.example/cb'"),
    );
    let err = out.error().expect("refused");
    assert_eq!(err.code, "003001");
    assert!(
        err.message
            .contains("Insufficient privileges to operate on account 'EMU12345'")
    );
    let out = emu.run_sql_as(
        "ALICE",
        "SELECT SYSTEM$SHOW_OAUTH_CLIENT_SECRETS('TW_SALES')",
    );
    assert_eq!(code_of(&out), "003001");
}

#[test]
fn duplicate_name_needs_or_replace_or_if_not_exists() {
    let emu = emu();
    let create = format!("{BASE} OAUTH_REDIRECT_URI = 'https://a.example/cb' ENABLED = TRUE");
    assert!(emu.run_sql_as("ADMIN", &create).is_ok());
    let first = emu.client_credentials("TW_SALES").expect("creds");
    let dup = emu.run_sql_as("ADMIN", &create);
    let err = dup.error().expect("refused");
    assert_eq!(err.code, "002002");
    assert!(err.message.contains("Object 'TW_SALES' already exists."));
    let out = emu.run_sql_as(
        "ADMIN",
        &create.replace(
            "CREATE SECURITY INTEGRATION",
            "CREATE SECURITY INTEGRATION IF NOT EXISTS",
        ),
    );
    assert!(out.is_ok());
    assert_eq!(emu.client_credentials("TW_SALES"), Some(first.clone()));
    let out = emu.run_sql_as("ADMIN", &create.replace("CREATE", "CREATE OR REPLACE"));
    assert!(out.is_ok());
    assert_ne!(
        emu.client_credentials("TW_SALES").expect("creds").client_id,
        first.client_id
    );
}

#[test]
fn refresh_secret_regenerates_one_slot_only() {
    let emu = emu();
    assert!(
        emu.run_sql_as(
            "ADMIN",
            &format!("{BASE} OAUTH_REDIRECT_URI = 'https://a.example/cb'")
        )
        .is_ok()
    );
    let before = emu.client_credentials("TW_SALES").expect("creds");
    assert!(
        emu.run_sql_as(
            "ADMIN",
            "ALTER SECURITY INTEGRATION TW_SALES REFRESH OAUTH_CLIENT_SECRET_2"
        )
        .is_ok()
    );
    let after = emu.client_credentials("TW_SALES").expect("creds");
    assert_eq!(after.client_secret, before.client_secret);
    assert_ne!(after.client_secret_2, before.client_secret_2);
    assert_eq!(after.client_id, before.client_id);
}

#[test]
fn show_desc_drop_and_unknown_statements() {
    let emu = emu();
    let script = format!(
        "{BASE} OAUTH_REDIRECT_URI = 'https://a.example/cb' ENABLED = TRUE \
         BLOCKED_ROLES_LIST = ('SYSADMIN') PRE_AUTHORIZED_ROLES_LIST = ('ANALYST') COMMENT = 'Sales';\n\
         SHOW INTEGRATIONS;\nDESC SECURITY INTEGRATION TW_SALES"
    );
    let runs = emu.run_script_as("ADMIN", &script);
    assert_eq!(runs.len(), 3);
    let show = runs[1].outcome.rows().expect("show");
    assert_eq!(show.get(0, "name"), Some("TW_SALES"));
    assert_eq!(show.get(0, "enabled"), Some("true"));
    assert_eq!(show.get(0, "comment"), Some("Sales"));
    let desc = runs[2].outcome.rows().expect("desc");
    let blocked = desc
        .rows
        .iter()
        .find(|r| r[0].as_deref() == Some("BLOCKED_ROLES_LIST"))
        .expect("row");
    assert!(
        blocked[2]
            .as_deref()
            .is_some_and(|v| v.contains("SYSADMIN") && v.contains("ACCOUNTADMIN"))
    );

    let garbage = emu.run_sql_as("ADMIN", "GRANT ROLE X TO USER Y");
    let err = garbage.error().expect("error");
    assert_eq!(err.code, "001003");
    assert!(
        err.message
            .starts_with("SQL compilation error:\nsyntax error"),
        "{}",
        err.message
    );

    assert!(
        emu.run_sql_as("ADMIN", "DROP SECURITY INTEGRATION TW_SALES")
            .is_ok()
    );
    let gone = emu.run_sql_as("ADMIN", "DROP SECURITY INTEGRATION TW_SALES");
    assert_eq!(
        gone.error().map(|e| e
            .message
            .contains("Integration 'TW_SALES' does not exist or not authorized.")),
        Some(true)
    );
    assert!(
        emu.run_sql_as("ADMIN", "DROP INTEGRATION IF EXISTS TW_SALES")
            .is_ok()
    );
}

#[test]
fn context_functions() {
    let emu = emu();
    let out = emu.run_sql_as(
        "alice",
        "SELECT CURRENT_USER(), CURRENT_ROLE(), CURRENT_ACCOUNT() AS acct",
    );
    let rs = out.rows().expect("rows");
    assert_eq!(
        rs.rows[0],
        vec![
            Some("ALICE".into()),
            Some("ANALYST".into()),
            Some("EMU12345".into())
        ]
    );
    assert_eq!(rs.columns[2].name, "ACCT");
    assert_eq!(rs.columns[0].name, "CURRENT_USER()");
}
