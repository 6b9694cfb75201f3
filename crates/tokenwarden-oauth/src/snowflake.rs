//! Snowflake specifics: account identifiers, roles and scopes, the setup SQL an admin runs, and
//! the `SYSTEM$SHOW_OAUTH_CLIENT_SECRETS` output they paste back.
//! Facts from `shared/reference/snowflake-oauth.md`.

use secrecy::SecretString;
use std::fmt;

/// Roles Snowflake blocks for OAuth sessions by default.
pub const BLOCKED_ROLES: &[&str] = &[
    "ACCOUNTADMIN",
    "SECURITYADMIN",
    "ORGADMIN",
    "GLOBALORGADMIN",
];
/// `OAUTH_REFRESH_TOKEN_VALIDITY` bounds for custom clients, in seconds.
pub const MIN_REFRESH_VALIDITY: u64 = 86_400;
pub const DEFAULT_REFRESH_VALIDITY: u64 = 7_776_000;
/// The largest value vendors report Snowflake Support raising the limit to (5 years).
pub const SUPPORT_MAX_REFRESH_VALIDITY: u64 = 157_784_630;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct SnowflakeError(pub String);

fn err(msg: impl Into<String>) -> SnowflakeError {
    SnowflakeError(msg.into())
}

/// A Snowflake account, reduced to the base URL its endpoints hang off.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnowflakeAccount {
    /// `https://<identifier>.snowflakecomputing.com`, or a loopback `http://127.0.0.1:PORT`
    /// pointing at an emulator.
    pub base_url: String,
    /// What an admin would call the account, e.g. `xy12345.us-east-1` or `myorg-myaccount`.
    pub identifier: String,
}

const ACCOUNT_HELP: &str = "use the account identifier (e.g. myorg-myaccount or xy12345.us-east-1), \
     its host (xy12345.us-east-1.snowflakecomputing.com), or paste the URL of your Snowflake console";

impl SnowflakeAccount {
    pub fn parse(input: &str) -> Result<Self, SnowflakeError> {
        let s = input.trim();
        if s.is_empty() {
            return Err(err(format!(
                "the Snowflake account is empty: {ACCOUNT_HELP}"
            )));
        }
        // A loopback URL points the token at an emulator (development and tests).
        if let Some(rest) = s.strip_prefix("http://") {
            let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
            if tokenwarden_domain::is_loopback_authority(authority) {
                return Ok(Self {
                    base_url: format!("http://{authority}"),
                    identifier: authority.to_owned(),
                });
            }
            return Err(err(format!(
                "Snowflake is reached over https; an http:// account URL is accepted only for a local emulator on 127.0.0.1: {ACCOUNT_HELP}"
            )));
        }
        let without_scheme = s.strip_prefix("https://").unwrap_or(s);
        let (authority, path) = match without_scheme.find(['/', '?', '#']) {
            Some(i) => (&without_scheme[..i], &without_scheme[i..]),
            None => (without_scheme, ""),
        };
        let host = authority.to_ascii_lowercase();
        // Snowsight: https://app.snowflake.com/<org>/<account>/...
        if host == "app.snowflake.com" {
            let mut parts = path
                .split('/')
                .filter(|p| !p.is_empty() && !p.starts_with('#'));
            return match (parts.next(), parts.next()) {
                (Some(org), Some(acct)) => {
                    Self::from_identifier(&format!("{org}-{acct}"), ".snowflakecomputing.com")
                }
                _ => Err(err(format!(
                    "this Snowsight URL does not name an organization and account: {ACCOUNT_HELP}"
                ))),
            };
        }
        for suffix in [".snowflakecomputing.com", ".snowflakecomputing.cn"] {
            if let Some(id) = host.strip_suffix(suffix) {
                return Self::from_identifier(id, suffix);
            }
        }
        if host.contains("snowflakecomputing") || host.contains(':') || !path.is_empty() {
            return Err(err(format!(
                "{s:?} is not a Snowflake account: {ACCOUNT_HELP}"
            )));
        }
        Self::from_identifier(&host, ".snowflakecomputing.com")
    }

    fn from_identifier(id: &str, suffix: &str) -> Result<Self, SnowflakeError> {
        let id = id.to_ascii_lowercase();
        let parts: Vec<&str> = id.split('.').collect();
        let account_part = parts.first().copied().unwrap_or_default();
        if account_part.len() > 63 {
            return Err(err(format!(
                "the account part {account_part:?} is longer than 63 characters"
            )));
        }
        for p in &parts {
            if p.is_empty()
                || !p
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
            {
                return Err(err(format!(
                    "{id:?} is not a Snowflake account identifier (each dot-separated part may hold only letters, digits, '_' and '-'): {ACCOUNT_HELP}"
                )));
            }
        }
        if !account_part.starts_with(|c: char| c.is_ascii_alphabetic()) {
            return Err(err(format!(
                "the account identifier {id:?} must start with a letter: {ACCOUNT_HELP}"
            )));
        }
        // In host names '_' is written '-' (Snowflake accepts both; underscores break TLS names).
        let host_id = id.replace('_', "-");
        Ok(Self {
            base_url: format!("https://{host_id}{suffix}"),
            identifier: id,
        })
    }
}

/// A role to request with `session:role:`. Unquoted names are upper-cased as Snowflake does;
/// a name in double quotes is kept exactly.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnowflakeRole(String);

impl SnowflakeRole {
    pub fn parse(input: &str) -> Result<Self, SnowflakeError> {
        let s = input.trim();
        let name = if let Some(q) = s.strip_prefix('"').and_then(|r| r.strip_suffix('"')) {
            q.to_owned()
        } else {
            if s.contains('"') {
                return Err(err(
                    "a role name may be double-quoted as a whole, or not at all",
                ));
            }
            s.to_ascii_uppercase()
        };
        if name.is_empty() {
            return Err(err(
                "the role is empty: name the Snowflake role the token acts as, e.g. ANALYST",
            ));
        }
        if name.chars().count() > 255 || name.chars().any(char::is_control) {
            return Err(err(
                "the role must be at most 255 characters without control characters",
            ));
        }
        if BLOCKED_ROLES.contains(&name.to_ascii_uppercase().as_str()) {
            return Err(err(format!(
                "Snowflake blocks the role {name} for OAuth sessions ({} are blocked by default), so a token for it would be refused; use a role with only the privileges the apps need",
                BLOCKED_ROLES.join(", ")
            )));
        }
        Ok(Self(name))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// `session:role:<ROLE>`, or `session:role-encoded:<url-encoded>` for names with characters
    /// outside a plain identifier.
    pub fn scope(&self) -> String {
        let plain = self
            .0
            .starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
            && self
                .0
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '$');
        if plain {
            format!("session:role:{}", self.0)
        } else {
            format!("session:role-encoded:{}", urlencode(&self.0))
        }
    }
}

impl fmt::Display for SnowflakeRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// RFC 3986 percent-encoding of everything but unreserved characters.
pub fn urlencode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The scopes to request: always `refresh_token` (else no refresh token is issued) and the role;
/// never `offline_access`, which Snowflake refuses.
pub fn scopes(role: &SnowflakeRole) -> String {
    format!("refresh_token {}", role.scope())
}

/// A security-integration name: starts with a letter; letters, digits, underscores; upper case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IntegrationName(String);

impl IntegrationName {
    pub fn parse(input: &str) -> Result<Self, SnowflakeError> {
        let s = input.trim().to_ascii_uppercase();
        let ok = s.len() <= 255
            && s.starts_with(|c: char| c.is_ascii_alphabetic())
            && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !ok {
            return Err(err(format!(
                "integration name {input:?} must start with a letter and hold only letters, digits and '_'"
            )));
        }
        Ok(Self(s))
    }

    /// `TW_` + the token name, upper-cased, other characters as `_`.
    pub fn for_token(token_name: &str) -> Self {
        let body: String = token_name
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() {
                    c.to_ascii_uppercase()
                } else {
                    '_'
                }
            })
            .take(200)
            .collect();
        Self(format!("TW_{body}"))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A single-quoted SQL string literal: `'` doubled and `\` escaped, so no input can end the
/// literal (Snowflake treats backslash as an escape inside single quotes).
pub fn sql_literal(s: &str) -> String {
    let mut out = String::from("'");
    for c in s.chars() {
        match c {
            '\'' => out.push_str("''"),
            '\\' => out.push_str("\\\\"),
            '\n' | '\r' => out.push(' '),
            c => out.push(c),
        }
    }
    out.push('\'');
    out
}

/// Checks a chosen `OAUTH_REFRESH_TOKEN_VALIDITY`; returns a warning for values that need
/// Snowflake Support to raise the limit first.
pub fn check_refresh_validity(seconds: u64) -> Result<Option<String>, SnowflakeError> {
    if seconds < MIN_REFRESH_VALIDITY {
        return Err(err(format!(
            "refresh-token validity {seconds} s is below Snowflake's minimum of {MIN_REFRESH_VALIDITY} s (1 day)"
        )));
    }
    if seconds > SUPPORT_MAX_REFRESH_VALIDITY {
        return Err(err(format!(
            "refresh-token validity {seconds} s is above {SUPPORT_MAX_REFRESH_VALIDITY} s (5 years), the most Snowflake Support grants"
        )));
    }
    if seconds > DEFAULT_REFRESH_VALIDITY {
        return Ok(Some(format!(
            "{seconds} s is above Snowflake's default maximum of {DEFAULT_REFRESH_VALIDITY} s (90 days): ask Snowflake Support to raise the account's limit for OAUTH_REFRESH_TOKEN_VALIDITY first, or the CREATE statement fails"
        )));
    }
    Ok(None)
}

/// The SQL an admin runs in a Snowflake worksheet, and the statements for later changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetupSql {
    pub integration: IntegrationName,
    /// `CREATE SECURITY INTEGRATION ...;` then `SELECT SYSTEM$SHOW_OAUTH_CLIENT_SECRETS(...)`.
    pub create: String,
    pub show_secrets: String,
    pub alter_validity: String,
    pub rotate_secret_1: String,
    pub rotate_secret_2: String,
    pub warnings: Vec<String>,
}

pub fn setup_sql(
    integration: &IntegrationName,
    redirect_uri: &str,
    refresh_validity: u64,
    comment: &str,
) -> Result<SetupSql, SnowflakeError> {
    let mut warnings = Vec::new();
    if let Some(w) = check_refresh_validity(refresh_validity)? {
        warnings.push(w);
    }
    let non_tls = redirect_uri.starts_with("http://");
    let name = integration.as_str();
    let mut create = format!(
        "CREATE SECURITY INTEGRATION {name}\n  TYPE = OAUTH\n  OAUTH_CLIENT = CUSTOM\n  OAUTH_CLIENT_TYPE = 'CONFIDENTIAL'\n  OAUTH_REDIRECT_URI = {}\n  ENABLED = TRUE\n  OAUTH_ISSUE_REFRESH_TOKENS = TRUE\n  OAUTH_REFRESH_TOKEN_VALIDITY = {refresh_validity}\n  OAUTH_ENFORCE_PKCE = TRUE\n",
        sql_literal(redirect_uri)
    );
    if non_tls {
        create.push_str("  OAUTH_ALLOW_NON_TLS_REDIRECT_URI = TRUE\n");
        warnings.push(
            "the redirect URI is http://, so the integration must allow non-TLS redirects; serve tokenwarden over https (set public_url) in production".into(),
        );
    }
    create.push_str(&format!("  COMMENT = {};", sql_literal(comment)));
    let show_secrets = format!("SELECT SYSTEM$SHOW_OAUTH_CLIENT_SECRETS('{name}');");
    Ok(SetupSql {
        integration: integration.clone(),
        create,
        show_secrets,
        alter_validity: format!(
            "ALTER SECURITY INTEGRATION {name} SET OAUTH_REFRESH_TOKEN_VALIDITY = {refresh_validity};"
        ),
        rotate_secret_1: format!("ALTER SECURITY INTEGRATION {name} REFRESH OAUTH_CLIENT_SECRET;"),
        rotate_secret_2: format!(
            "ALTER SECURITY INTEGRATION {name} REFRESH OAUTH_CLIENT_SECRET_2;"
        ),
        warnings,
    })
}

/// What `SYSTEM$SHOW_OAUTH_CLIENT_SECRETS` gave.
pub struct ClientSecrets {
    pub client_id: String,
    pub client_secret: SecretString,
    pub client_secret_2: Option<SecretString>,
}

impl fmt::Debug for ClientSecrets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientSecrets")
            .field("client_id", &self.client_id)
            .finish_non_exhaustive()
    }
}

/// Parses the pasted output cell: the JSON object, with or without surrounding quotes or
/// whitespace, with or without doubled/backslashed inner quotes. Errors never quote the input.
pub fn parse_client_secrets(pasted: &str) -> Result<ClientSecrets, SnowflakeError> {
    const HINT: &str =
        "paste the whole cell returned by SELECT SYSTEM$SHOW_OAUTH_CLIENT_SECRETS('<NAME>');";
    let (start, end) = match (pasted.find('{'), pasted.rfind('}')) {
        (Some(s), Some(e)) if s < e => (s, e),
        _ => {
            return Err(err(format!(
                "no JSON object found in the pasted text: {HINT}"
            )));
        }
    };
    let body = &pasted[start..=end];
    let candidates = [
        body.to_owned(),
        body.replace("\"\"", "\""),
        body.replace("\\\"", "\""),
    ];
    let map = candidates
        .iter()
        .find_map(|c| serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(c).ok())
        .ok_or_else(|| {
            err(format!(
                "the pasted text is not the JSON object Snowflake prints: {HINT}"
            ))
        })?;
    let get = |k: &str| -> Result<Option<String>, SnowflakeError> {
        match map.get(k) {
            None | Some(serde_json::Value::Null) => Ok(None),
            Some(serde_json::Value::String(s)) if !s.trim().is_empty() => {
                Ok(Some(s.trim().to_owned()))
            }
            Some(_) => Err(err(format!(
                "{k} in the pasted text is not a non-empty string: {HINT}"
            ))),
        }
    };
    let client_id = get("OAUTH_CLIENT_ID")?.ok_or_else(|| {
        err(format!(
            "OAUTH_CLIENT_ID is missing from the pasted text: {HINT}"
        ))
    })?;
    let secret = get("OAUTH_CLIENT_SECRET")?.ok_or_else(|| {
        err(format!(
            "OAUTH_CLIENT_SECRET is missing from the pasted text: {HINT}"
        ))
    })?;
    Ok(ClientSecrets {
        client_id,
        client_secret: secret.into(),
        client_secret_2: get("OAUTH_CLIENT_SECRET_2")?.map(Into::into),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;

    #[test]
    fn account_identifier_forms_from_the_reference() {
        let cases = [
            ("xy12345", "https://xy12345.snowflakecomputing.com"),
            (
                "xy12345.us-east-1",
                "https://xy12345.us-east-1.snowflakecomputing.com",
            ),
            (
                "xy12345.east-us-2.azure",
                "https://xy12345.east-us-2.azure.snowflakecomputing.com",
            ),
            (
                "xy12345.fhplus.us-gov-west-1.aws",
                "https://xy12345.fhplus.us-gov-west-1.aws.snowflakecomputing.com",
            ),
            (
                "myorg-myaccount",
                "https://myorg-myaccount.snowflakecomputing.com",
            ),
            (
                "MyOrg-My_Account",
                "https://myorg-my-account.snowflakecomputing.com",
            ),
            (
                "myorg-myacct.privatelink",
                "https://myorg-myacct.privatelink.snowflakecomputing.com",
            ),
            (
                "xy12345.us-east-1.snowflakecomputing.com",
                "https://xy12345.us-east-1.snowflakecomputing.com",
            ),
            (
                "xy12345.cn-north-1.snowflakecomputing.cn",
                "https://xy12345.cn-north-1.snowflakecomputing.cn",
            ),
            (
                "https://xy12345.us-east-1.snowflakecomputing.com/console#/internal/worksheet",
                "https://xy12345.us-east-1.snowflakecomputing.com",
            ),
            (
                "  https://XY12345.snowflakecomputing.com/  ",
                "https://xy12345.snowflakecomputing.com",
            ),
            (
                "https://app.snowflake.com/myorg/myaccount/#/homepage",
                "https://myorg-myaccount.snowflakecomputing.com",
            ),
            ("http://127.0.0.1:9300", "http://127.0.0.1:9300"),
            ("http://localhost:9300/", "http://localhost:9300"),
        ];
        for (input, base) in cases {
            let a = SnowflakeAccount::parse(input).unwrap_or_else(|e| panic!("{input}: {e}"));
            assert_eq!(a.base_url, base, "{input}");
        }
    }

    #[test]
    fn bad_accounts_are_refused_with_help() {
        for bad in [
            "",
            "has space",
            "xy12345..us-east-1",
            "http://evil.example.com",
            "https://example.com/x",
            "1abc",
            "user@xy12345",
            "x;DROP",
            &"a".repeat(64),
        ] {
            let e = SnowflakeAccount::parse(bad).unwrap_err().to_string();
            assert!(
                e.contains("account") || e.contains("Snowflake"),
                "{bad:?}: {e}"
            );
        }
        let e = SnowflakeAccount::parse("http://evil.example.com")
            .unwrap_err()
            .to_string();
        assert!(e.contains("https"), "{e}");
    }

    #[test]
    fn roles_scopes_and_blocked_roles() {
        assert_eq!(
            scopes(&SnowflakeRole::parse("analyst").unwrap()),
            "refresh_token session:role:ANALYST"
        );
        assert_eq!(
            SnowflakeRole::parse("\"Mixed Case\"").unwrap().scope(),
            "session:role-encoded:Mixed%20Case"
        );
        assert_eq!(
            SnowflakeRole::parse("\"lower\"").unwrap().scope(),
            "session:role:lower"
        );
        for blocked in [
            "ACCOUNTADMIN",
            "securityadmin",
            "OrgAdmin",
            "GLOBALORGADMIN",
        ] {
            let e = SnowflakeRole::parse(blocked).unwrap_err().to_string();
            assert!(e.contains("blocks the role"), "{e}");
        }
        assert!(SnowflakeRole::parse("").is_err());
        assert!(!scopes(&SnowflakeRole::parse("R").unwrap()).contains("offline_access"));
    }

    #[test]
    fn setup_sql_has_every_required_clause_and_quotes_inputs() {
        let name = IntegrationName::for_token("snowflake-sales");
        assert_eq!(name.as_str(), "TW_SNOWFLAKE_SALES");
        let sql = setup_sql(
            &name,
            "http://127.0.0.1:8420/oauth/callback",
            7_776_000,
            "tokenwarden: it's",
        )
        .unwrap();
        for clause in [
            "CREATE SECURITY INTEGRATION TW_SNOWFLAKE_SALES",
            "TYPE = OAUTH",
            "OAUTH_CLIENT = CUSTOM",
            "OAUTH_CLIENT_TYPE = 'CONFIDENTIAL'",
            "OAUTH_REDIRECT_URI = 'http://127.0.0.1:8420/oauth/callback'",
            "ENABLED = TRUE",
            "OAUTH_ISSUE_REFRESH_TOKENS = TRUE",
            "OAUTH_REFRESH_TOKEN_VALIDITY = 7776000",
            "OAUTH_ENFORCE_PKCE = TRUE",
            "OAUTH_ALLOW_NON_TLS_REDIRECT_URI = TRUE",
            "COMMENT = 'tokenwarden: it''s';",
        ] {
            assert!(
                sql.create.contains(clause),
                "missing {clause} in\n{}",
                sql.create
            );
        }
        assert_eq!(
            sql.show_secrets,
            "SELECT SYSTEM$SHOW_OAUTH_CLIENT_SECRETS('TW_SNOWFLAKE_SALES');"
        );
        assert!(
            sql.rotate_secret_2
                .ends_with("REFRESH OAUTH_CLIENT_SECRET_2;")
        );
        let https = setup_sql(&name, "https://tw.example.com/oauth/callback", 86_400, "c").unwrap();
        assert!(!https.create.contains("NON_TLS"));
        assert!(https.warnings.is_empty());
        // Out of range, and above the default max with a warning.
        assert!(setup_sql(&name, "https://x/cb", 3_600, "c").is_err());
        assert!(setup_sql(&name, "https://x/cb", 157_784_631, "c").is_err());
        let raised = setup_sql(&name, "https://x/cb", 157_784_630, "c").unwrap();
        assert!(raised.warnings[0].contains("Snowflake Support"));
    }

    #[test]
    fn sql_literals_cannot_be_broken_out_of() {
        assert_eq!(sql_literal("a'b"), "'a''b'");
        assert_eq!(sql_literal("a\\'; DROP"), "'a\\\\''; DROP'");
        for evil in ["'; DROP TABLE x; --", "\\'", "x\\", "a\nb"] {
            let lit = sql_literal(evil);
            // Walk the literal as Snowflake would: it must end exactly at the last character.
            let inner: Vec<char> = lit[1..].chars().collect();
            let mut i = 0;
            let mut closed_at = None;
            while i < inner.len() {
                match inner[i] {
                    '\\' => i += 2,
                    '\'' if inner.get(i + 1) == Some(&'\'') => i += 2,
                    '\'' => {
                        closed_at = Some(i);
                        break;
                    }
                    _ => i += 1,
                }
            }
            assert_eq!(closed_at, Some(inner.len() - 1), "{evil:?} -> {lit}");
        }
        assert!(IntegrationName::parse("bad name; drop").is_err());
        assert_eq!(IntegrationName::parse("tw_x").unwrap().as_str(), "TW_X");
    }

    #[test]
    fn pasted_secrets_parse_in_every_shape_admins_paste() {
        let json = r#"{"OAUTH_CLIENT_SECRET_2":"pIl/ab+c=","OAUTH_CLIENT_SECRET":"vNy+/xyz=","OAUTH_CLIENT_ID":"kMoBQd6lZ0iRIB5W+LjzHc3CQqM="}"#;
        let shapes = [
            json.to_owned(),
            format!("  \n{json}\n "),
            format!("\"{}\"", json.replace('"', "\"\"")),
            format!("'{json}'"),
            format!("SYSTEM$SHOW_OAUTH_CLIENT_SECRETS('TW_X')\n{json}"),
            json.replace('"', "\\\""),
        ];
        for s in shapes {
            let c = parse_client_secrets(&s).unwrap_or_else(|e| panic!("{s}: {e}"));
            assert_eq!(c.client_id, "kMoBQd6lZ0iRIB5W+LjzHc3CQqM=");
            assert_eq!(c.client_secret.expose_secret(), "vNy+/xyz=");
            assert_eq!(c.client_secret_2.unwrap().expose_secret(), "pIl/ab+c=");
        }
    }

    #[test]
    fn garbage_pastes_get_a_clear_error_that_does_not_echo_the_input() {
        for bad in [
            "",
            "hello",
            "{not json}",
            r#"{"OAUTH_CLIENT_SECRET":"SECRET-SHOULD-NOT-ECHO"}"#,
            r#"{"OAUTH_CLIENT_ID":"id","OAUTH_CLIENT_SECRET":5}"#,
            r#"{"OAUTH_CLIENT_ID":"","OAUTH_CLIENT_SECRET":"SECRET-SHOULD-NOT-ECHO"}"#,
        ] {
            let e = parse_client_secrets(bad).unwrap_err().to_string();
            assert!(e.contains("SYSTEM$SHOW_OAUTH_CLIENT_SECRETS"), "{e}");
            assert!(!e.contains("SHOULD-NOT-ECHO"), "{e}");
        }
    }
}
