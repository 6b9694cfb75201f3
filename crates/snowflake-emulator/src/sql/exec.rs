//! Runs parsed statements against the in-memory account.

use super::parse::{self, Expr, Prop, Stmt, Value};
use super::{ResultSet, SqlError, SqlOutcome, SqlSession, StatementRun};
use crate::random;
use crate::state::{
    ALWAYS_BLOCKED, ClientType, DEFAULT_REFRESH_VALIDITY, Inner, Integration, MIN_REFRESH_VALIDITY,
};

/// Runs every statement of `script`; a statement's error does not stop the next ones
/// (like running a whole worksheet). A script that does not lex yields one error.
pub(crate) fn execute_script(
    inner: &mut Inner,
    session: &mut SqlSession,
    script: &str,
) -> Vec<StatementRun> {
    let raws = match parse::split(script) {
        Ok(r) => r,
        Err(e) => {
            inner.counters.statements_run += 1;
            return vec![StatementRun {
                sql: script.trim().to_string(),
                outcome: SqlOutcome::Error(e),
            }];
        }
    };
    let mut out = Vec::new();
    for raw in raws {
        inner.counters.statements_run += 1;
        let outcome = match parse::parse(&raw) {
            Ok(stmt) => execute(inner, session, stmt).into(),
            Err(e) => SqlOutcome::Error(e),
        };
        out.push(StatementRun {
            sql: raw.text,
            outcome,
        });
    }
    out
}

fn execute(inner: &mut Inner, session: &mut SqlSession, stmt: Stmt) -> Result<ResultSet, SqlError> {
    let is_admin = session.role == "ACCOUNTADMIN";
    let deny = |inner: &Inner| SqlError::insufficient_privileges(&inner.account);
    match stmt {
        Stmt::Select { items } => {
            let mut rs = ResultSet::default();
            let mut row = Vec::new();
            for (expr, name) in items {
                let value = eval(inner, session, &expr)?;
                rs.columns.push(super::Column {
                    name,
                    type_name: "text".to_string(),
                });
                row.push(Some(value));
            }
            rs.rows.push(row);
            Ok(rs)
        }
        Stmt::UseRole { role } => {
            let granted = inner
                .users
                .get(&session.user)
                .is_some_and(|u| u.roles.contains(&role));
            if !granted {
                return Err(SqlError::new(
                    "003013",
                    "42501",
                    format!(
                        "SQL access control error:\nRole '{role}' specified in the USE ROLE command is not granted to user '{}'.",
                        session.user
                    ),
                ));
            }
            session.role = role;
            Ok(ResultSet::status("Statement executed successfully."))
        }
        Stmt::CreateIntegration {
            or_replace,
            if_not_exists,
            name,
            props,
        } => {
            if !is_admin {
                return Err(deny(inner));
            }
            if or_replace && if_not_exists {
                return Err(SqlError::syntax(
                    "OR REPLACE and IF NOT EXISTS are incompatible.".to_string(),
                ));
            }
            if inner.integrations.contains_key(&name) {
                if if_not_exists {
                    return Ok(ResultSet::status(format!(
                        "{name} already exists, statement succeeded."
                    )));
                }
                if !or_replace {
                    return Err(SqlError::already_exists(&name));
                }
            }
            let now = inner.now();
            let mut integ = Integration {
                name: name.clone(),
                client_type: ClientType::Confidential,
                redirect_uri: String::new(),
                alternate_redirect_uris: Vec::new(),
                // The docs say TRUE; real accounts show FALSE when ENABLED is omitted.
                enabled: false,
                allow_non_tls: false,
                enforce_pkce: false,
                issue_refresh_tokens: true,
                refresh_token_validity: DEFAULT_REFRESH_VALIDITY,
                single_use_refresh_tokens: false,
                access_token_validity: None,
                use_secondary_roles: "NONE".to_string(),
                pre_authorized_roles: Vec::new(),
                blocked_roles: Vec::new(),
                network_policy: None,
                comment: None,
                client_id: random::base64_with_specials::<20>(),
                secret: random::base64_with_specials::<32>(),
                secret_2: random::base64_with_specials::<32>(),
                created_on: now,
            };
            let mut seen_type = None;
            let mut seen_client = None;
            let mut seen_client_type = false;
            for prop in &props {
                match prop.name.as_str() {
                    "TYPE" => seen_type = Some(word(prop)?),
                    "OAUTH_CLIENT" => seen_client = Some(word(prop)?),
                    "OAUTH_CLIENT_TYPE" => {
                        seen_client_type = true;
                        apply(&mut integ, prop)?;
                    }
                    _ => apply(&mut integ, prop)?,
                }
            }
            match seen_type.as_deref() {
                Some("OAUTH") => {}
                Some(other) => {
                    return Err(SqlError::syntax(format!(
                        "The emulator supports only TYPE = OAUTH security integrations, not TYPE = {other}."
                    )));
                }
                None => return Err(missing("TYPE")),
            }
            match seen_client.as_deref() {
                Some("CUSTOM") => {}
                Some(other) => {
                    return Err(SqlError::syntax(format!(
                        "The emulator supports only OAUTH_CLIENT = CUSTOM, not OAUTH_CLIENT = {other}."
                    )));
                }
                None => return Err(missing("OAUTH_CLIENT")),
            }
            if !seen_client_type {
                return Err(missing("OAUTH_CLIENT_TYPE"));
            }
            if integ.redirect_uri.is_empty() {
                return Err(missing("OAUTH_REDIRECT_URI"));
            }
            validate(inner, &integ)?;
            inner.integrations.insert(name.clone(), integ);
            Ok(ResultSet::status(format!(
                "Integration {name} successfully created."
            )))
        }
        Stmt::AlterIntegrationSet {
            if_exists,
            name,
            props,
        } => {
            if !is_admin {
                return Err(deny(inner));
            }
            let Some(existing) = inner.integrations.get(&name) else {
                return if if_exists {
                    Ok(ResultSet::status("Statement executed successfully."))
                } else {
                    Err(SqlError::does_not_exist(&name))
                };
            };
            let mut integ = existing.clone();
            for prop in &props {
                if matches!(prop.name.as_str(), "TYPE" | "OAUTH_CLIENT") {
                    return Err(SqlError::invalid_value(format!(
                        "Property '{}' cannot be changed with ALTER; recreate the integration.",
                        prop.name
                    )));
                }
                apply(&mut integ, prop)?;
            }
            validate(inner, &integ)?;
            inner.integrations.insert(name, integ);
            Ok(ResultSet::status("Statement executed successfully."))
        }
        Stmt::AlterIntegrationRefreshSecret {
            if_exists,
            name,
            second,
        } => {
            if !is_admin {
                return Err(deny(inner));
            }
            let Some(integ) = inner.integrations.get_mut(&name) else {
                return if if_exists {
                    Ok(ResultSet::status("Statement executed successfully."))
                } else {
                    Err(SqlError::does_not_exist(&name))
                };
            };
            let fresh = random::base64_with_specials::<32>();
            if second {
                integ.secret_2 = fresh;
            } else {
                integ.secret = fresh;
            }
            Ok(ResultSet::status("Statement executed successfully."))
        }
        Stmt::DropIntegration { if_exists, name } => {
            if !is_admin {
                return Err(deny(inner));
            }
            if inner.integrations.remove(&name).is_some() {
                Ok(ResultSet::status(format!("{name} successfully dropped.")))
            } else if if_exists {
                Ok(ResultSet::status(format!(
                    "Drop statement executed successfully ({name} already dropped)."
                )))
            } else {
                Err(SqlError::does_not_exist(&name))
            }
        }
        Stmt::ShowIntegrations { like } => {
            let mut rs = ResultSet::new(&[
                ("name", "text"),
                ("type", "text"),
                ("category", "text"),
                ("enabled", "text"),
                ("comment", "text"),
                ("created_on", "text"),
            ]);
            // Only roles that can see integrations list them.
            if is_admin {
                for integ in inner.integrations.values() {
                    if let Some(pattern) = &like
                        && !like_match(pattern, &integ.name)
                    {
                        continue;
                    }
                    rs.rows.push(vec![
                        Some(integ.name.clone()),
                        Some("OAUTH - CUSTOM".to_string()),
                        Some("SECURITY".to_string()),
                        Some(integ.enabled.to_string()),
                        integ.comment.clone(),
                        Some(timestamp(integ.created_on)),
                    ]);
                }
            }
            Ok(rs)
        }
        Stmt::DescIntegration { name } => {
            if !is_admin {
                return Err(deny(inner));
            }
            let integ = inner
                .integrations
                .get(&name)
                .ok_or_else(|| SqlError::does_not_exist(&name))?;
            Ok(describe(inner, integ))
        }
        Stmt::RemoveDelegatedAuthorizations { user, integration } => {
            let allowed = is_admin || session.role == "SECURITYADMIN" || session.user == user;
            if !allowed {
                return Err(deny(inner));
            }
            if !inner.integrations.contains_key(&integration) {
                return Err(SqlError::does_not_exist(&integration));
            }
            if !inner.users.contains_key(&user) {
                return Err(SqlError::new(
                    "002003",
                    "02000",
                    format!(
                        "SQL compilation error:\nUser '{user}' does not exist or not authorized."
                    ),
                ));
            }
            inner.revoke(&user, &integration);
            Ok(ResultSet::status("Statement executed successfully."))
        }
        Stmt::AlterUserSet {
            if_exists,
            user,
            props,
        } => {
            if !manages_users(session) {
                return Err(deny(inner));
            }
            let mut keys = Vec::new();
            for prop in &props {
                let second = match prop.name.as_str() {
                    "RSA_PUBLIC_KEY" => false,
                    "RSA_PUBLIC_KEY_2" => true,
                    other => {
                        return Err(SqlError::syntax(format!(
                            "invalid property '{other}' for 'USER' (the emulator sets RSA_PUBLIC_KEY and RSA_PUBLIC_KEY_2)."
                        )));
                    }
                };
                let value = string(prop)?;
                let key = crate::keypair::RegisteredKey::parse(&value).map_err(|why| {
                    SqlError::invalid_value(format!(
                        "Invalid value for property '{}': {why}.",
                        prop.name
                    ))
                })?;
                keys.push((second, key));
            }
            let Some(u) = inner.users.get_mut(&user) else {
                return user_missing(&user, if_exists);
            };
            for (second, key) in keys {
                if second {
                    u.rsa_public_key_2 = Some(key);
                } else {
                    u.rsa_public_key = Some(key);
                }
            }
            Ok(ResultSet::status("Statement executed successfully."))
        }
        Stmt::AlterUserUnset {
            if_exists,
            user,
            names,
        } => {
            if !manages_users(session) {
                return Err(deny(inner));
            }
            for name in &names {
                if name != "RSA_PUBLIC_KEY" && name != "RSA_PUBLIC_KEY_2" {
                    return Err(SqlError::syntax(format!(
                        "invalid property '{name}' for 'USER' (the emulator unsets RSA_PUBLIC_KEY and RSA_PUBLIC_KEY_2)."
                    )));
                }
            }
            let Some(u) = inner.users.get_mut(&user) else {
                return user_missing(&user, if_exists);
            };
            for name in &names {
                if name == "RSA_PUBLIC_KEY_2" {
                    u.rsa_public_key_2 = None;
                } else {
                    u.rsa_public_key = None;
                }
            }
            Ok(ResultSet::status("Statement executed successfully."))
        }
        Stmt::DescUser { user } => {
            if !manages_users(session) && session.user != user {
                return Err(deny(inner));
            }
            let Some(u) = inner.users.get(&user) else {
                return user_missing(&user, false);
            };
            let mut rs = ResultSet::new(&[
                ("property", "text"),
                ("value", "text"),
                ("default", "text"),
                ("description", "text"),
            ]);
            let mut row = |p: &str, v: Option<String>, d: &str| {
                rs.rows.push(vec![
                    Some(p.to_string()),
                    Some(v.unwrap_or_else(|| "null".to_string())),
                    Some("null".to_string()),
                    Some(d.to_string()),
                ]);
            };
            row("NAME", Some(u.name.clone()), "Name");
            row("LOGIN_NAME", Some(u.name.clone()), "Login name of the user");
            row(
                "DEFAULT_ROLE",
                Some(u.default_role.clone()),
                "Primary principal of user session will be set to this role",
            );
            let key =
                |k: &Option<crate::keypair::RegisteredKey>| k.as_ref().map(|k| k.base64.clone());
            let fp = |k: &Option<crate::keypair::RegisteredKey>| {
                k.as_ref().map(|k| k.fingerprint.clone())
            };
            row(
                "RSA_PUBLIC_KEY",
                key(&u.rsa_public_key),
                "RSA public key of the user",
            );
            row(
                "RSA_PUBLIC_KEY_FP",
                fp(&u.rsa_public_key),
                "Fingerprint of user's RSA public key.",
            );
            row(
                "RSA_PUBLIC_KEY_2",
                key(&u.rsa_public_key_2),
                "Second RSA public key of the user",
            );
            row(
                "RSA_PUBLIC_KEY_2_FP",
                fp(&u.rsa_public_key_2),
                "Fingerprint of user's second RSA public key.",
            );
            Ok(rs)
        }
    }
}

/// ACCOUNTADMIN, SECURITYADMIN and USERADMIN manage users.
fn manages_users(session: &SqlSession) -> bool {
    matches!(
        session.role.as_str(),
        "ACCOUNTADMIN" | "SECURITYADMIN" | "USERADMIN"
    )
}

fn user_missing(user: &str, if_exists: bool) -> Result<ResultSet, SqlError> {
    if if_exists {
        return Ok(ResultSet::status("Statement executed successfully."));
    }
    Err(SqlError::new(
        "002003",
        "02000",
        format!("SQL compilation error:\nUser '{user}' does not exist or not authorized."),
    ))
}

fn eval(inner: &Inner, session: &SqlSession, expr: &Expr) -> Result<String, SqlError> {
    match expr {
        Expr::Str(s) => Ok(s.clone()),
        Expr::Num(n) => Ok(n.clone()),
        Expr::Call { name, args } => match (name.as_str(), args.as_slice()) {
            ("CURRENT_USER", []) => Ok(session.user.clone()),
            ("CURRENT_ROLE", []) => Ok(session.role.clone()),
            ("CURRENT_ACCOUNT", []) => Ok(inner.account.clone()),
            ("CURRENT_WAREHOUSE" | "CURRENT_DATABASE" | "CURRENT_SCHEMA", []) => Err(SqlError::syntax(
                format!("{name}() is not supported by the emulator (it has no warehouses or databases)."),
            )),
            ("SYSTEM$SHOW_OAUTH_CLIENT_SECRETS", [arg]) => {
                let arg = eval(inner, session, arg)?;
                if session.role != "ACCOUNTADMIN" {
                    return Err(SqlError::insufficient_privileges(&inner.account));
                }
                // The argument is case-sensitive: 'tw_sales' does not find TW_SALES.
                let integ = inner.integrations.get(&arg).ok_or_else(|| SqlError::does_not_exist(&arg))?;
                Ok(client_secrets_json(integ))
            }
            ("SYSTEM$GET_LOGIN_FAILURE_DETAILS", [arg]) => {
                let arg = eval(inner, session, arg)?;
                if session.role != "ACCOUNTADMIN" {
                    return Err(SqlError::insufficient_privileges(&inner.account));
                }
                Ok(inner
                    .login_failures
                    .get(arg.trim())
                    .map(|f| f.details())
                    .unwrap_or_else(|| "null".to_string()))
            }
            ("SYSTEM$SHOW_OAUTH_CLIENT_SECRETS", _) => Err(SqlError::syntax(
                "SYSTEM$SHOW_OAUTH_CLIENT_SECRETS takes one argument: the integration name in single quotes."
                    .to_string(),
            )),
            _ => Err(SqlError::new(
                "002140",
                "42601",
                format!("SQL compilation error:\nUnknown function {name}"),
            )),
        },
    }
}

/// Exactly the string real accounts return, keys in their order.
fn client_secrets_json(integ: &Integration) -> String {
    let q = |s: &str| serde_json::to_string(s).unwrap_or_default();
    format!(
        "{{\"OAUTH_CLIENT_SECRET_2\":{},\"OAUTH_CLIENT_SECRET\":{},\"OAUTH_CLIENT_ID\":{}}}",
        q(&integ.secret_2),
        q(&integ.secret),
        q(&integ.client_id)
    )
}

fn missing(prop: &str) -> SqlError {
    SqlError::syntax(format!(
        "Missing required property {prop} for a security integration of TYPE = OAUTH, OAUTH_CLIENT = CUSTOM."
    ))
}

fn word(prop: &Prop) -> Result<String, SqlError> {
    match &prop.value {
        Value::Word(w) => Ok(w.clone()),
        Value::Str(s) => Ok(s.to_ascii_uppercase()),
        _ => Err(bad_value(prop)),
    }
}

fn shown(value: &Value) -> String {
    match value {
        Value::Str(s) => format!("'{s}'"),
        Value::Num(n) => n.clone(),
        Value::Word(w) => w.clone(),
        Value::List(l) => format!(
            "({})",
            l.iter()
                .map(|r| format!("'{r}'"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

fn bad_value(prop: &Prop) -> SqlError {
    SqlError::invalid_value(format!(
        "invalid value [{}] for parameter '{}'",
        shown(&prop.value),
        prop.name
    ))
}

fn boolean(prop: &Prop) -> Result<bool, SqlError> {
    let w = match &prop.value {
        Value::Word(w) => w.clone(),
        Value::Str(s) => s.to_ascii_uppercase(),
        _ => return Err(bad_value(prop)),
    };
    match w.as_str() {
        "TRUE" => Ok(true),
        "FALSE" => Ok(false),
        _ => Err(bad_value(prop)),
    }
}

fn integer(prop: &Prop) -> Result<u64, SqlError> {
    match &prop.value {
        Value::Num(n) => n.parse().map_err(|_| bad_value(prop)),
        _ => Err(bad_value(prop)),
    }
}

fn string(prop: &Prop) -> Result<String, SqlError> {
    match &prop.value {
        Value::Str(s) => Ok(s.clone()),
        _ => Err(bad_value(prop)),
    }
}

fn list(prop: &Prop) -> Result<Vec<String>, SqlError> {
    match &prop.value {
        Value::List(l) => Ok(l.clone()),
        _ => Err(bad_value(prop)),
    }
}

fn apply(integ: &mut Integration, prop: &Prop) -> Result<(), SqlError> {
    match prop.name.as_str() {
        "ENABLED" => integ.enabled = boolean(prop)?,
        "OAUTH_CLIENT_TYPE" => {
            integ.client_type = match string(prop)?.to_ascii_uppercase().as_str() {
                "CONFIDENTIAL" => ClientType::Confidential,
                "PUBLIC" => ClientType::Public,
                _ => return Err(bad_value(prop)),
            }
        }
        "OAUTH_REDIRECT_URI" => integ.redirect_uri = string(prop)?,
        "OAUTH_ALTERNATE_REDIRECT_URIS" => integ.alternate_redirect_uris = list(prop)?,
        "OAUTH_ALLOW_NON_TLS_REDIRECT_URI" => integ.allow_non_tls = boolean(prop)?,
        "OAUTH_ENFORCE_PKCE" => integ.enforce_pkce = boolean(prop)?,
        "OAUTH_ISSUE_REFRESH_TOKENS" => integ.issue_refresh_tokens = boolean(prop)?,
        "OAUTH_REFRESH_TOKEN_VALIDITY" => integ.refresh_token_validity = integer(prop)?,
        "OAUTH_SINGLE_USE_REFRESH_TOKENS_REQUIRED" => {
            integ.single_use_refresh_tokens = boolean(prop)?
        }
        "OAUTH_ACCESS_TOKEN_VALIDITY" => integ.access_token_validity = Some(integer(prop)?),
        "OAUTH_USE_SECONDARY_ROLES" => {
            let w = word(prop)?;
            if w != "IMPLICIT" && w != "NONE" {
                return Err(bad_value(prop));
            }
            integ.use_secondary_roles = w;
        }
        "PRE_AUTHORIZED_ROLES_LIST" => integ.pre_authorized_roles = list(prop)?,
        "BLOCKED_ROLES_LIST" => integ.blocked_roles = list(prop)?,
        "NETWORK_POLICY" => integ.network_policy = Some(string(prop)?),
        "COMMENT" => integ.comment = Some(string(prop)?),
        "OAUTH_CLIENT_RSA_PUBLIC_KEY" | "OAUTH_CLIENT_RSA_PUBLIC_KEY_2" => {
            string(prop)?;
        }
        other => {
            return Err(SqlError::syntax(format!(
                "invalid property '{other}' for 'INTEGRATION' of type 'OAUTH'"
            )));
        }
    }
    Ok(())
}

fn validate(inner: &Inner, integ: &Integration) -> Result<(), SqlError> {
    for uri in std::iter::once(&integ.redirect_uri).chain(&integ.alternate_redirect_uris) {
        let lower = uri.to_ascii_lowercase();
        if lower.starts_with("http://") {
            if !integ.allow_non_tls {
                return Err(SqlError::invalid_value(format!(
                    "invalid value ['{uri}'] for parameter 'OAUTH_REDIRECT_URI': the redirect URI must use \
                     https (TLS). To allow a non-TLS redirect URI such as http://localhost, set \
                     OAUTH_ALLOW_NON_TLS_REDIRECT_URI = TRUE."
                )));
            }
        } else if !lower.starts_with("https://") || lower.len() <= "https://".len() {
            return Err(SqlError::invalid_value(format!(
                "invalid value ['{uri}'] for parameter 'OAUTH_REDIRECT_URI': expected an absolute https:// URI."
            )));
        }
    }
    let max = inner.max_refresh_token_validity;
    if !(MIN_REFRESH_VALIDITY..=max).contains(&integ.refresh_token_validity) {
        return Err(SqlError::invalid_value(format!(
            "invalid value [{}] for parameter 'OAUTH_REFRESH_TOKEN_VALIDITY': \
             OAUTH_REFRESH_TOKEN_VALIDITY must be between {MIN_REFRESH_VALIDITY} and {max}.",
            integ.refresh_token_validity
        )));
    }
    if let Some(v) = integ.access_token_validity
        && !(60..=3600).contains(&v)
    {
        return Err(SqlError::invalid_value(format!(
            "invalid value [{v}] for parameter 'OAUTH_ACCESS_TOKEN_VALIDITY': \
             OAUTH_ACCESS_TOKEN_VALIDITY must be between 60 and 3600."
        )));
    }
    if let Some(role) = integ
        .pre_authorized_roles
        .iter()
        .find(|r| integ.is_blocked(r))
    {
        return Err(SqlError::invalid_value(format!(
            "Role '{role}' is blocked for OAuth and cannot be in PRE_AUTHORIZED_ROLES_LIST."
        )));
    }
    Ok(())
}

fn describe(inner: &Inner, integ: &Integration) -> ResultSet {
    let mut rs = ResultSet::new(&[
        ("property", "text"),
        ("property_type", "text"),
        ("property_value", "text"),
        ("property_default", "text"),
    ]);
    let base = inner.base_url.clone().unwrap_or_default();
    let blocked: Vec<String> = ALWAYS_BLOCKED
        .iter()
        .map(|r| (*r).to_string())
        .chain(integ.blocked_roles.iter().cloned())
        .collect();
    let access_validity = integ
        .access_token_validity
        .unwrap_or(inner.access_token_ttl);
    let rows: Vec<(&str, &str, String, &str)> = vec![
        ("ENABLED", "Boolean", integ.enabled.to_string(), "false"),
        (
            "OAUTH_REDIRECT_URI",
            "String",
            integ.redirect_uri.clone(),
            "",
        ),
        (
            "OAUTH_ALTERNATE_REDIRECT_URIS",
            "List",
            integ.alternate_redirect_uris.join(","),
            "[]",
        ),
        (
            "OAUTH_CLIENT_TYPE",
            "String",
            integ.client_type.as_str().to_string(),
            "CONFIDENTIAL",
        ),
        (
            "OAUTH_ALLOW_NON_TLS_REDIRECT_URI",
            "Boolean",
            integ.allow_non_tls.to_string(),
            "false",
        ),
        (
            "OAUTH_ENFORCE_PKCE",
            "Boolean",
            integ.enforce_pkce.to_string(),
            "false",
        ),
        (
            "OAUTH_USE_SECONDARY_ROLES",
            "String",
            integ.use_secondary_roles.clone(),
            "NONE",
        ),
        (
            "PRE_AUTHORIZED_ROLES_LIST",
            "List",
            integ.pre_authorized_roles.join(","),
            "[]",
        ),
        (
            "BLOCKED_ROLES_LIST",
            "List",
            blocked.join(","),
            "ACCOUNTADMIN,SECURITYADMIN",
        ),
        (
            "OAUTH_ISSUE_REFRESH_TOKENS",
            "Boolean",
            integ.issue_refresh_tokens.to_string(),
            "true",
        ),
        (
            "OAUTH_REFRESH_TOKEN_VALIDITY",
            "Integer",
            integ.refresh_token_validity.to_string(),
            "7776000",
        ),
        (
            "OAUTH_SINGLE_USE_REFRESH_TOKENS_REQUIRED",
            "Boolean",
            integ.single_use_refresh_tokens.to_string(),
            "false",
        ),
        (
            "OAUTH_ACCESS_TOKEN_VALIDITY",
            "Integer",
            access_validity.to_string(),
            "600",
        ),
        (
            "NETWORK_POLICY",
            "String",
            integ.network_policy.clone().unwrap_or_default(),
            "",
        ),
        ("OAUTH_CLIENT_ID", "String", integ.client_id.clone(), ""),
        (
            "OAUTH_AUTHORIZATION_ENDPOINT",
            "String",
            format!("{base}/oauth/authorize"),
            "",
        ),
        (
            "OAUTH_TOKEN_ENDPOINT",
            "String",
            format!("{base}/oauth/token-request"),
            "",
        ),
        (
            "OAUTH_ALLOWED_AUTHORIZATION_ENDPOINTS",
            "List",
            String::new(),
            "[]",
        ),
        ("OAUTH_ALLOWED_TOKEN_ENDPOINTS", "List", String::new(), "[]"),
        (
            "COMMENT",
            "String",
            integ.comment.clone().unwrap_or_default(),
            "",
        ),
    ];
    for (p, t, v, d) in rows {
        rs.rows.push(vec![
            Some(p.to_string()),
            Some(t.to_string()),
            Some(v),
            Some(d.to_string()),
        ]);
    }
    rs
}

fn timestamp(t: chrono::DateTime<chrono::Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S%.3f +0000").to_string()
}

/// SQL LIKE, case-insensitive as SHOW ... LIKE is: `%` any run, `_` one character.
fn like_match(pattern: &str, text: &str) -> bool {
    fn go(p: &[char], t: &[char]) -> bool {
        match p.split_first() {
            None => t.is_empty(),
            Some(('%', rest)) => (0..=t.len()).any(|i| go(rest, &t[i..])),
            Some(('_', rest)) => !t.is_empty() && go(rest, &t[1..]),
            Some((c, rest)) => {
                t.first().is_some_and(|x| x.eq_ignore_ascii_case(c)) && go(rest, &t[1..])
            }
        }
    }
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    go(&p, &t)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::EmulatorConfig;

    fn admin() -> SqlSession {
        SqlSession {
            user: "ADMIN".into(),
            role: "ACCOUNTADMIN".into(),
        }
    }

    fn run(inner: &mut Inner, session: &mut SqlSession, sql: &str) -> SqlOutcome {
        execute_script(inner, session, sql)
            .pop()
            .map(|r| r.outcome)
            .unwrap_or_else(|| SqlOutcome::Error(SqlError::syntax("empty")))
    }

    const CREATE: &str = "create security integration tw_sales type = oauth oauth_client = custom \
        oauth_client_type = 'CONFIDENTIAL' oauth_redirect_uri = 'https://tw.example/cb' enabled = true";

    #[test]
    fn unquoted_names_are_upper_cased_and_quoted_kept() {
        let mut inner = Inner::new(&EmulatorConfig::default_for_tests());
        let mut s = admin();
        assert!(run(&mut inner, &mut s, CREATE).is_ok());
        assert!(inner.integrations.contains_key("TW_SALES"));
        let quoted = CREATE.replace("tw_sales", "\"Mixed\"");
        assert!(run(&mut inner, &mut s, &quoted).is_ok());
        assert!(inner.integrations.contains_key("Mixed"));
        let lower = run(
            &mut inner,
            &mut s,
            "select system$show_oauth_client_secrets('tw_sales')",
        );
        assert_eq!(lower.error().map(|e| e.code.as_str()), Some("002003"));
    }

    #[test]
    fn enabled_defaults_to_false_and_comments_and_quotes_parse() {
        let mut inner = Inner::new(&EmulatorConfig::default_for_tests());
        let mut s = admin();
        let sql = "-- make it\nCREATE SECURITY INTEGRATION X TYPE = OAUTH OAUTH_CLIENT = CUSTOM \
                   OAUTH_CLIENT_TYPE = 'PUBLIC' OAUTH_REDIRECT_URI = 'https://a/b' COMMENT = 'it''s mine';";
        assert!(run(&mut inner, &mut s, sql).is_ok());
        let integ = &inner.integrations["X"];
        assert!(!integ.enabled);
        assert_eq!(integ.comment.as_deref(), Some("it's mine"));
        assert_eq!(integ.client_type, ClientType::Public);
    }

    #[test]
    fn unknown_statement_is_a_syntax_error_with_position() {
        let mut inner = Inner::new(&EmulatorConfig::default_for_tests());
        let mut s = admin();
        let out = run(&mut inner, &mut s, "SELECT CURRENT_USER();\n  FROB x");
        let err = out.error().cloned().expect("error");
        assert_eq!(err.code, "001003");
        assert!(
            err.message
                .contains("line 2 at position 2 unexpected 'FROB'"),
            "{}",
            err.message
        );
    }

    #[test]
    fn like_is_case_insensitive_with_wildcards() {
        assert!(like_match("tw_%", "TW_SALES"));
        assert!(!like_match("TW", "TW_SALES"));
    }
}
