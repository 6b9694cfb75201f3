//! Snowflake key-pair authentication (docs/snowflake.md has the source of each rule): who a
//! key-pair JWT names (`iss` = `ACCOUNT.USER.SHA256:<fingerprint>`, `sub` = `ACCOUNT.USER`), its
//! lifetime (at most one hour), the SQL that assigns, rotates and removes the public key, and
//! the header the SQL API wants.

use std::fmt;

use tokenwarden_crypto::keypair::{KeyError, SigningKey};

use crate::snowflake::{SnowflakeAccount, SnowflakeError};

/// The longest a key-pair JWT may live (`exp - iat`), in seconds.
pub const MAX_JWT_LIFETIME_SECS: i64 = 3600;
/// The `token_type` a key-pair token is served with, and the value of the SQL API's
/// `X-Snowflake-Authorization-Token-Type` header for it.
pub const TOKEN_TYPE: &str = "KEYPAIR_JWT";
/// The SQL API header naming the kind of bearer token.
pub const TOKEN_TYPE_HEADER: &str = "X-Snowflake-Authorization-Token-Type";

fn err(msg: impl Into<String>) -> SnowflakeError {
    SnowflakeError(msg.into())
}

/// Which of the user's two public-key properties.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeySlot {
    /// `RSA_PUBLIC_KEY`.
    First,
    /// `RSA_PUBLIC_KEY_2`.
    Second,
}

impl KeySlot {
    pub fn property(self) -> &'static str {
        match self {
            KeySlot::First => "RSA_PUBLIC_KEY",
            KeySlot::Second => "RSA_PUBLIC_KEY_2",
        }
    }

    /// The other slot (where a rotation puts the new key).
    pub fn other(self) -> KeySlot {
        match self {
            KeySlot::First => KeySlot::Second,
            KeySlot::Second => KeySlot::First,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            KeySlot::First => "rsa_public_key",
            KeySlot::Second => "rsa_public_key_2",
        }
    }

    pub fn parse(s: &str) -> Option<KeySlot> {
        match s {
            "rsa_public_key" => Some(KeySlot::First),
            "rsa_public_key_2" => Some(KeySlot::Second),
            _ => None,
        }
    }
}

/// The account and user a key-pair JWT names, as Snowflake compares them: upper-case, the
/// account locator without region or cloud, `.` in an organization-account name written `-`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeypairIdentity {
    account: String,
    user: String,
}

impl KeypairIdentity {
    /// `account`: the token's Snowflake account. `account_identifier`: the account identifier
    /// to put in the JWT when `account` does not name one (an emulator URL on 127.0.0.1); it
    /// overrides the one derived from `account` otherwise. `user`: the Snowflake user.
    pub fn new(
        account: &SnowflakeAccount,
        account_identifier: Option<&str>,
        user: &str,
    ) -> Result<Self, SnowflakeError> {
        let account = match account_identifier.map(str::trim).filter(|s| !s.is_empty()) {
            Some(id) => jwt_account(id)?,
            None if account.base_url.starts_with("http://") => {
                return Err(err(
                    "the account is a local emulator URL, which does not name the Snowflake account: set account_identifier (e.g. EMU12345) for the key-pair JWT",
                ));
            }
            None => jwt_account(&account.identifier)?,
        };
        Ok(Self {
            account,
            user: jwt_user(user)?,
        })
    }

    pub fn account(&self) -> &str {
        &self.account
    }

    pub fn user(&self) -> &str {
        &self.user
    }

    /// `ACCOUNT.USER`: the JWT's `sub`.
    pub fn subject(&self) -> String {
        format!("{}.{}", self.account, self.user)
    }

    /// `ACCOUNT.USER.SHA256:<fingerprint>`: the JWT's `iss`. `fingerprint` is
    /// [`tokenwarden_crypto::keypair::PublicKey::fingerprint`] (with its `SHA256:` prefix).
    pub fn issuer(&self, fingerprint: &str) -> String {
        format!("{}.{fingerprint}", self.subject())
    }

    /// Signs a JWT issued at `now` (epoch seconds) that expires `lifetime` seconds later
    /// (clamped to 1..=3600). Returns the JWT and its `exp`.
    pub fn mint(
        &self,
        key: &SigningKey,
        now: i64,
        lifetime: i64,
    ) -> Result<(String, i64), KeyError> {
        let exp = now + lifetime.clamp(1, MAX_JWT_LIFETIME_SECS);
        let claims = serde_json::json!({
            "iss": self.issuer(&key.public_key().fingerprint()),
            "sub": self.subject(),
            "iat": now,
            "exp": exp,
        });
        Ok((key.sign_jwt(None, &claims)?, exp))
    }

    /// `ALTER USER "USER" SET RSA_PUBLIC_KEY[_2] = '<base64 DER>';`
    pub fn set_key_sql(&self, slot: KeySlot, public_key_base64: &str) -> String {
        format!(
            "ALTER USER {} SET {} = {};",
            quoted(&self.user),
            slot.property(),
            crate::snowflake::sql_literal(public_key_base64)
        )
    }

    /// `ALTER USER "USER" UNSET RSA_PUBLIC_KEY[_2];`
    pub fn unset_key_sql(&self, slot: KeySlot) -> String {
        format!(
            "ALTER USER {} UNSET {};",
            quoted(&self.user),
            slot.property()
        )
    }

    /// `DESC USER "USER";` (shows `RSA_PUBLIC_KEY_FP` and `RSA_PUBLIC_KEY_2_FP`).
    pub fn describe_sql(&self) -> String {
        format!("DESC USER {};", quoted(&self.user))
    }
}

impl fmt::Display for KeypairIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.subject())
    }
}

/// A double-quoted SQL identifier (the user name as stored, upper-case).
fn quoted(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// The account part of a key-pair JWT, upper-cased: an account locator loses its region and
/// cloud (`xy12345.us-east-2.aws` → `XY12345`), an organization-account name keeps its dash
/// (`myorg-myaccount` → `MYORG-MYACCOUNT`) and its `myorg.myaccount` form is written with a dash,
/// a connection suffix (`.privatelink`) is dropped.
pub fn jwt_account(identifier: &str) -> Result<String, SnowflakeError> {
    let id = identifier.trim();
    let id = id
        .strip_suffix(".snowflakecomputing.com")
        .or_else(|| id.strip_suffix(".snowflakecomputing.cn"))
        .unwrap_or(id);
    let account = match id.split_once('.') {
        // An organization-account name given with a dot (`myorg.myaccount`) is written with a
        // dash; an account locator (`xy12345.us-east-2.aws`) loses region and cloud. A locator
        // starts with letters and ends with digits; an organization name has no digits rule, so
        // tell them apart by what follows the dot: a known region/cloud/privatelink part.
        Some((first, rest)) if !looks_like_region(rest) => format!("{first}-{rest}"),
        Some((first, _)) => first.to_string(),
        None => id.to_string(),
    };
    let account = account.to_ascii_uppercase();
    if account.is_empty()
        || !account
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        return Err(err(format!(
            "{identifier:?} is not a Snowflake account identifier for a key-pair JWT (letters, digits, '_' and '-', e.g. MYORG-MYACCOUNT or XY12345)"
        )));
    }
    Ok(account)
}

/// Whether the part after an account's first `.` is a region, cloud, or connection suffix
/// (`us-east-2.aws`, `eu-central-1`, `privatelink`, `global`), not an account name.
fn looks_like_region(rest: &str) -> bool {
    let first = rest
        .split('.')
        .next()
        .unwrap_or_default()
        .to_ascii_lowercase();
    const PREFIXES: [&str; 12] = [
        "us-", "eu-", "ap-", "ca-", "sa-", "me-", "af-", "uk-", "cn-", "il-", "mx-", "jp-",
    ];
    const WORDS: [&str; 14] = [
        "privatelink",
        "global",
        "aws",
        "azure",
        "gcp",
        "fhplus",
        "east-us-2",
        "west-us-2",
        "central-us",
        "north-europe",
        "west-europe",
        "australia-east",
        "canada-central",
        "southeast-asia",
    ];
    PREFIXES.iter().any(|p| first.starts_with(p))
        || WORDS.contains(&first.as_str())
        || rest.contains('.')
}

/// The user part: a Snowflake login name, upper-cased.
pub fn jwt_user(user: &str) -> Result<String, SnowflakeError> {
    let u = user.trim();
    if u.is_empty() {
        return Err(err(
            "the Snowflake user is empty: name the user the key is assigned to (settings.user)",
        ));
    }
    if u.chars().count() > 255 || u.chars().any(|c| c.is_control() || c == '"') {
        return Err(err(
            "the Snowflake user must be at most 255 characters, without control characters or double quotes",
        ));
    }
    Ok(u.to_ascii_uppercase())
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine as _;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use tokenwarden_crypto::keypair::KeyAlgorithm;

    #[test]
    fn account_part_follows_snowflakes_rules() {
        let cases = [
            ("xy12345", "XY12345"),
            ("xy12345.us-east-2.aws", "XY12345"),
            ("xy12345.us-east-1", "XY12345"),
            ("xy12345.east-us-2.azure", "XY12345"),
            ("xy12345.fhplus.us-gov-west-1.aws", "XY12345"),
            ("myorg-myaccount", "MYORG-MYACCOUNT"),
            ("myorg.myaccount", "MYORG-MYACCOUNT"),
            ("MyOrg-My_Account", "MYORG-MY_ACCOUNT"),
            ("myorg-myacct.privatelink", "MYORG-MYACCT"),
            ("xy12345.us-east-2.aws.snowflakecomputing.com", "XY12345"),
            ("EMU12345", "EMU12345"),
        ];
        for (input, want) in cases {
            assert_eq!(jwt_account(input).as_deref(), Ok(want), "{input}");
        }
        assert!(jwt_account("").is_err());
        assert!(jwt_account("bad account!").is_err());
    }

    #[test]
    fn identity_from_a_token_s_settings() {
        let account =
            SnowflakeAccount::parse("https://xy12345.us-east-2.aws.snowflakecomputing.com")
                .expect("account");
        let id = KeypairIdentity::new(&account, None, "svc_loader").expect("identity");
        assert_eq!(id.subject(), "XY12345.SVC_LOADER");
        assert_eq!(id.issuer("SHA256:abc="), "XY12345.SVC_LOADER.SHA256:abc=");
        assert_eq!(
            id.set_key_sql(KeySlot::Second, "MIIB"),
            "ALTER USER \"SVC_LOADER\" SET RSA_PUBLIC_KEY_2 = 'MIIB';"
        );
        assert_eq!(
            id.unset_key_sql(KeySlot::First),
            "ALTER USER \"SVC_LOADER\" UNSET RSA_PUBLIC_KEY;"
        );
        // An emulator URL needs the account named.
        let emu = SnowflakeAccount::parse("http://127.0.0.1:9300").expect("emu");
        assert!(KeypairIdentity::new(&emu, None, "alice").is_err());
        let id = KeypairIdentity::new(&emu, Some("emu12345"), "alice").expect("emu id");
        assert_eq!(id.subject(), "EMU12345.ALICE");
        assert!(KeypairIdentity::new(&account, None, " ").is_err());
        assert!(KeypairIdentity::new(&account, None, "a\"b").is_err());
    }

    #[test]
    fn minted_jwt_has_snowflakes_claims_and_at_most_an_hour() {
        let account = SnowflakeAccount::parse("myorg-myaccount").expect("account");
        let id = KeypairIdentity::new(&account, None, "loader").expect("identity");
        let key = SigningKey::generate(KeyAlgorithm::Rs256).expect("key");
        let (jwt, exp) = id.mint(&key, 1_000_000, 7200).expect("mint");
        assert_eq!(exp, 1_000_000 + 3600);
        let claims: serde_json::Value = serde_json::from_slice(
            &URL_SAFE_NO_PAD
                .decode(jwt.split('.').nth(1).unwrap_or_default())
                .expect("b64"),
        )
        .expect("json");
        let fp = key.public_key().fingerprint();
        assert_eq!(
            claims,
            serde_json::json!({
                "iss": format!("MYORG-MYACCOUNT.LOADER.{fp}"),
                "sub": "MYORG-MYACCOUNT.LOADER",
                "iat": 1_000_000,
                "exp": 1_003_600,
            })
        );
    }
}
