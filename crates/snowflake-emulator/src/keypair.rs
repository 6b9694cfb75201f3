//! Key-pair authentication: the public keys `ALTER USER ... SET RSA_PUBLIC_KEY[_2]` assigns,
//! and the check of a key-pair JWT presented to the SQL API.
//!
//! What Snowflake documents (docs/snowflake.md has the sources): the JWT is signed RS256 by the
//! private key of a public key assigned to the user; `iss` is
//! `ACCOUNT.USER.SHA256:<fingerprint>`, `sub` is `ACCOUNT.USER` (account and user upper-case, an
//! account locator without its region); `exp` is at most one hour after `iat`. A refused JWT is
//! answered `390144` "JWT token is invalid. [<uuid>]"; the UUID's details (the specific error)
//! are for an administrator through `SYSTEM$GET_LOGIN_FAILURE_DETAILS`.
//!
//! The signature is checked with the `rsa` crate, not with ring (which tokenwarden signs with),
//! so a bug in the signer is not hidden by the same bug in the verifier.

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use chrono::{DateTime, Utc};
use rsa::pkcs8::DecodePublicKey as _;
use rsa::signature::Verifier as _;
use rsa::traits::PublicKeyParts as _;
use sha2::{Digest as _, Sha256};

use crate::state::Inner;

/// Snowflake's minimum RSA key size for key-pair authentication.
const MIN_BITS: usize = 2048;
/// The longest a key-pair JWT may live (`exp - iat`).
pub(crate) const MAX_LIFETIME_SECS: i64 = 3600;
/// How far in the future `iat` may be (clock skew).
const SKEW_SECS: i64 = 60;

/// A public key assigned to a user.
#[derive(Clone)]
pub(crate) struct RegisteredKey {
    /// The base64 DER as assigned (whitespace removed).
    pub base64: String,
    /// `SHA256:` + base64 of the SHA-256 of the DER (`RSA_PUBLIC_KEY_FP`).
    pub fingerprint: String,
    key: rsa::PublicKey,
}

impl std::fmt::Debug for RegisteredKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RegisteredKey({})", self.fingerprint)
    }
}

impl RegisteredKey {
    /// The value of `RSA_PUBLIC_KEY`: base64 of a DER SubjectPublicKeyInfo holding an RSA key of
    /// at least 2048 bits, without the PEM delimiters (line breaks are ignored).
    pub fn parse(value: &str) -> Result<Self, String> {
        if value.contains("-----") {
            return Err(
                "the public key must be given without its -----BEGIN/END PUBLIC KEY----- delimiters"
                    .into(),
            );
        }
        let base64: String = value.chars().filter(|c| !c.is_whitespace()).collect();
        let der = STANDARD
            .decode(&base64)
            .map_err(|_| "the public key is not base64".to_string())?;
        let key = rsa::PublicKey::from_public_key_der(&der)
            .map_err(|_| "the public key is not an RSA SubjectPublicKeyInfo".to_string())?;
        if key.size() * 8 < MIN_BITS {
            return Err(format!(
                "the RSA key has {} bits; at least {MIN_BITS} are required",
                key.size() * 8
            ));
        }
        Ok(Self {
            fingerprint: format!("SHA256:{}", STANDARD.encode(Sha256::digest(&der))),
            base64,
            key,
        })
    }

    fn verifies(&self, signed: &[u8], signature: &[u8]) -> bool {
        let Ok(sig) = rsa::pkcs1v15::Signature::try_from(signature) else {
            return false;
        };
        rsa::pkcs1v15::VerifyingKey::<rsa::sha2::Sha256>::new(self.key.clone())
            .verify(signed, &sig)
            .is_ok()
    }
}

/// Why a key-pair login was refused: what `SYSTEM$GET_LOGIN_FAILURE_DETAILS` reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JwtRefusal {
    /// Not a JWT, not RS256, or a claim missing or of the wrong type.
    Invalid,
    /// The account in `sub`/`iss` is not this account.
    AccountMismatch,
    /// `iss` does not start with the `sub` (another account or user).
    IssuerMismatch,
    /// No such user.
    UnknownUser,
    /// The user has no public key assigned.
    NoPublicKey,
    /// The fingerprint in `iss` is neither `RSA_PUBLIC_KEY_FP` nor `RSA_PUBLIC_KEY_2_FP`.
    FingerprintMismatch,
    /// The signature does not verify with the key the fingerprint names.
    BadSignature,
    /// `exp - iat` is over an hour.
    LifetimeTooLong,
    /// `iat` is in the future.
    IssuedInFuture,
    /// `exp` has passed.
    Expired,
}

impl JwtRefusal {
    /// The error name (`errorCode` of `SYSTEM$GET_LOGIN_FAILURE_DETAILS`).
    pub fn error(self) -> &'static str {
        match self {
            JwtRefusal::Invalid => "JWT_TOKEN_INVALID",
            JwtRefusal::AccountMismatch => "JWT_TOKEN_ACCOUNT_MISMATCH",
            JwtRefusal::IssuerMismatch => "JWT_TOKEN_INVALID_USER_IN_ISSUER",
            JwtRefusal::UnknownUser => "JWT_TOKEN_INVALID_USER",
            JwtRefusal::NoPublicKey => "JWT_TOKEN_PUBLIC_KEY_NOT_SET",
            JwtRefusal::FingerprintMismatch => "JWT_TOKEN_INVALID_PUBLIC_KEY_FINGERPRINT_MISMATCH",
            JwtRefusal::BadSignature => "JWT_TOKEN_INVALID_SIGNATURE",
            JwtRefusal::LifetimeTooLong => "JWT_TOKEN_INVALID_EXPIRATION_TIME",
            JwtRefusal::IssuedInFuture => "JWT_TOKEN_INVALID_ISSUE_TIME",
            JwtRefusal::Expired => "JWT_TOKEN_EXPIRED",
        }
    }

    /// The numeric code of the error (394307 for the account mismatch, as Snowflake's
    /// troubleshooting table lists it; 390144 otherwise).
    pub fn code(self) -> &'static str {
        match self {
            JwtRefusal::AccountMismatch => "394307",
            _ => "390144",
        }
    }
}

/// A refused login, kept for `SYSTEM$GET_LOGIN_FAILURE_DETAILS`.
#[derive(Debug, Clone)]
pub(crate) struct LoginFailure {
    pub refusal: JwtRefusal,
    pub user: Option<String>,
    pub at: DateTime<Utc>,
}

impl LoginFailure {
    /// The JSON object `SYSTEM$GET_LOGIN_FAILURE_DETAILS` returns.
    pub fn details(&self) -> String {
        serde_json::json!({
            "clientIP": "127.0.0.1",
            "clientType": "OTHER",
            "clientVersion": "",
            "username": self.user,
            "errorCode": self.refusal.error(),
            "timestamp": self.at.timestamp(),
        })
        .to_string()
    }
}

/// The user a key-pair JWT authenticates, or why it is refused (with the user when known).
pub(crate) fn authenticate(
    inner: &Inner,
    jwt: &str,
) -> Result<String, (JwtRefusal, Option<String>)> {
    let invalid = |r| (r, None);
    let mut parts = jwt.split('.');
    let (Some(h), Some(c), Some(s), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(invalid(JwtRefusal::Invalid));
    };
    let decode = |p: &str| URL_SAFE_NO_PAD.decode(p.trim_end_matches('=')).ok();
    let json =
        |p: &str| decode(p).and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok());
    let (Some(header), Some(claims), Some(signature)) = (json(h), json(c), decode(s)) else {
        return Err(invalid(JwtRefusal::Invalid));
    };
    if header.get("alg").and_then(|a| a.as_str()) != Some("RS256") {
        return Err(invalid(JwtRefusal::Invalid));
    }
    let text = |k: &str| claims.get(k).and_then(|v| v.as_str());
    let number = |k: &str| claims.get(k).and_then(|v| v.as_i64());
    let (Some(iss), Some(sub), Some(iat), Some(exp)) =
        (text("iss"), text("sub"), number("iat"), number("exp"))
    else {
        return Err(invalid(JwtRefusal::Invalid));
    };
    let Some((account, user)) = sub.split_once('.') else {
        return Err(invalid(JwtRefusal::Invalid));
    };
    let Some((issuer_subject, fingerprint)) = iss.rsplit_once(".SHA256:") else {
        return Err(invalid(JwtRefusal::Invalid));
    };
    if account != inner.account.to_ascii_uppercase() {
        return Err(invalid(JwtRefusal::AccountMismatch));
    }
    if issuer_subject != sub {
        return Err(invalid(JwtRefusal::IssuerMismatch));
    }
    let Some(u) = inner.users.get(user) else {
        return Err(invalid(JwtRefusal::UnknownUser));
    };
    let known = Some(u.name.clone());
    let keys: Vec<&RegisteredKey> = [&u.rsa_public_key, &u.rsa_public_key_2]
        .into_iter()
        .flatten()
        .collect();
    if keys.is_empty() {
        return Err((JwtRefusal::NoPublicKey, known));
    }
    let fingerprint = format!("SHA256:{fingerprint}");
    let Some(key) = keys.into_iter().find(|k| k.fingerprint == fingerprint) else {
        return Err((JwtRefusal::FingerprintMismatch, known));
    };
    let signed = &jwt[..h.len() + 1 + c.len()];
    if !key.verifies(signed.as_bytes(), &signature) {
        return Err((JwtRefusal::BadSignature, known));
    }
    if exp - iat > MAX_LIFETIME_SECS {
        return Err((JwtRefusal::LifetimeTooLong, known));
    }
    let now = inner.now().timestamp();
    if iat > now + SKEW_SECS {
        return Err((JwtRefusal::IssuedInFuture, known));
    }
    if exp <= now {
        return Err((JwtRefusal::Expired, known));
    }
    Ok(u.name.clone())
}
