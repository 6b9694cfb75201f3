//! Encryption at rest for every secret tokenwarden stores.
//!
//! Envelope encryption: a *master key* (from `TOKENWARDEN_MASTER_KEY` or a key file, never in the
//! database) wraps *data keys*, which live in the database wrapped. Secrets are sealed with the
//! active data key: AES-256-GCM, a random 96-bit nonce, and associated data binding the
//! ciphertext to its table, column, row and key id, so a ciphertext copied elsewhere does not
//! decrypt. Each sealed value carries its key id, so old and new keys coexist during rotation.
//!
//! Sealed layout: `0x01 | key-id length (1 byte) | key id (ASCII) | nonce (12) | ciphertext+tag`.

pub mod keypair;

use aes_gcm::aead::{Aead, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine as _;
use hmac::{KeyInit as _, Mac};
use secrecy::{ExposeSecret, SecretString};
use std::collections::BTreeMap;
use std::fmt;
use zeroize::Zeroizing;

const FORMAT_VERSION: u8 = 1;
const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CryptoError {
    #[error("the master key is malformed: {0}")]
    MalformedMasterKey(String),
    #[error("sealed value is malformed ({0})")]
    Malformed(&'static str),
    #[error("sealed value uses key {0:?}, which is not in the keyring")]
    UnknownKey(String),
    #[error(
        "decryption failed: the value was altered, belongs to another row or column, or the key is wrong"
    )]
    Authentication,
    #[error("decrypted value is not valid UTF-8")]
    NotUtf8,
    #[error("the passphrase is too short: at least {0} characters")]
    WeakPassphrase(usize),
    #[error("key id {0:?} is invalid: 1-32 ASCII letters, digits, '-' or '_'")]
    BadKeyId(String),
}

/// 32 secret bytes, wiped on drop, never printed.
#[derive(Clone)]
struct KeyBytes(Zeroizing<[u8; 32]>);

impl KeyBytes {
    fn random() -> Self {
        let mut k = Zeroizing::new([0u8; 32]);
        fill_random(k.as_mut_slice());
        Self(k)
    }

    fn cipher(&self) -> Aes256Gcm {
        // A 32-byte array is always a valid AES-256 key.
        Aes256Gcm::new(
            self.0
                .as_slice()
                .try_into()
                .unwrap_or_else(|_| unreachable!()),
        )
    }
}

fn fill_random(buf: &mut [u8]) {
    // The operating system's CSPRNG; failing it is not recoverable for a secrets store.
    if let Err(e) = getrandom::fill(buf) {
        panic!("the operating system's random number generator failed: {e}");
    }
}

/// Random bytes from the OS CSPRNG (for API keys, nonces, PKCE verifiers).
pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut b = [0u8; N];
    fill_random(&mut b);
    b
}

/// The key-encryption key. Its `Debug` is redacted.
#[derive(Clone)]
pub struct MasterKey(KeyBytes);

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MasterKey([redacted])")
    }
}

impl MasterKey {
    pub fn generate() -> Self {
        Self(KeyBytes::random())
    }

    /// Accepts 32 bytes written as base64 (standard or URL-safe, padding optional) or as 64 hex
    /// digits; surrounding whitespace is ignored.
    pub fn parse(text: &str) -> Result<Self, CryptoError> {
        let t = text.trim();
        if t.is_empty() {
            return Err(CryptoError::MalformedMasterKey("it is empty".into()));
        }
        let bytes: Zeroizing<Vec<u8>> = if t.len() == 64 && t.chars().all(|c| c.is_ascii_hexdigit())
        {
            Zeroizing::new(
                (0..32)
                    .map(|i| u8::from_str_radix(&t[2 * i..2 * i + 2], 16).unwrap_or(0))
                    .collect(),
            )
        } else {
            let engines = [
                &base64::engine::general_purpose::STANDARD,
                &base64::engine::general_purpose::STANDARD_NO_PAD,
                &base64::engine::general_purpose::URL_SAFE,
                &base64::engine::general_purpose::URL_SAFE_NO_PAD,
            ];
            let decoded = engines.iter().find_map(|e| e.decode(t).ok()).ok_or_else(|| {
                CryptoError::MalformedMasterKey(
                    "it is neither base64 nor 64 hex digits (make one with `openssl rand -base64 32`)"
                        .into(),
                )
            })?;
            Zeroizing::new(decoded)
        };
        let arr: [u8; 32] = bytes.as_slice().try_into().map_err(|_| {
            CryptoError::MalformedMasterKey(format!(
                "it decodes to {} bytes; exactly 32 are needed",
                bytes.len()
            ))
        })?;
        Ok(Self(KeyBytes(Zeroizing::new(arr))))
    }

    /// The key as base64, for writing a generated key to its file.
    pub fn to_base64(&self) -> SecretString {
        base64::engine::general_purpose::STANDARD
            .encode(self.0.0.as_slice())
            .into()
    }

    /// A key check value: identifies the key without revealing it, so that starting with another
    /// key is detected before anything is written. HMAC-SHA256 of a fixed label, first 16 bytes, hex.
    pub fn check_value(&self) -> String {
        let mut mac = <hmac::Hmac<sha2::Sha256>>::new_from_slice(self.0.0.as_slice())
            .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
        mac.update(b"tokenwarden master key check v1");
        let out = mac.finalize().into_bytes();
        out[..16].iter().map(|b| format!("{b:02x}")).collect()
    }

    /// Wraps a data key for storage in the database.
    pub fn wrap_key(&self, key: &DataKey) -> Vec<u8> {
        seal_with(&self.0, "master", key.key.0.as_slice(), &wrap_aad(&key.id))
    }

    /// Unwraps a data key read from the database; fails if the master key is not the one that
    /// wrapped it or the stored bytes were altered.
    pub fn unwrap_key(&self, key_id: &str, wrapped: &[u8]) -> Result<DataKey, CryptoError> {
        let id = check_key_id(key_id)?;
        let (kid, nonce, ct) = split(wrapped)?;
        if kid != "master" {
            return Err(CryptoError::Malformed(
                "wrapped data key not sealed by the master key",
            ));
        }
        let plain = Zeroizing::new(open_with(&self.0, nonce, ct, &wrap_aad(&id))?);
        let arr: [u8; 32] = plain
            .as_slice()
            .try_into()
            .map_err(|_| CryptoError::Malformed("wrapped data key has the wrong length"))?;
        Ok(DataKey {
            id,
            key: KeyBytes(Zeroizing::new(arr)),
        })
    }
}

fn wrap_aad(key_id: &str) -> Vec<u8> {
    format!("tokenwarden:v1|encryption_keys|key|{key_id}").into_bytes()
}

fn check_key_id(id: &str) -> Result<String, CryptoError> {
    let ok = !id.is_empty()
        && id.len() <= 32
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if ok {
        Ok(id.to_owned())
    } else {
        Err(CryptoError::BadKeyId(id.to_owned()))
    }
}

/// A data-encryption key with its id. `Debug` shows only the id.
#[derive(Clone)]
pub struct DataKey {
    id: String,
    key: KeyBytes,
}

impl DataKey {
    pub fn generate(id: &str) -> Result<Self, CryptoError> {
        Ok(Self {
            id: check_key_id(id)?,
            key: KeyBytes::random(),
        })
    }

    pub fn id(&self) -> &str {
        &self.id
    }
}

impl fmt::Debug for DataKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DataKey({:?}, [redacted])", self.id)
    }
}

/// Where a sealed value lives. The three parts and the key id are bound into the ciphertext.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Aad<'a> {
    pub table: &'a str,
    pub column: &'a str,
    pub row: &'a str,
}

impl<'a> Aad<'a> {
    pub fn new(table: &'a str, column: &'a str, row: &'a str) -> Self {
        Self { table, column, row }
    }

    fn bytes(&self, key_id: &str) -> Vec<u8> {
        // Length-prefixed so that no choice of parts can collide with another.
        let mut v = b"tokenwarden:v1".to_vec();
        for part in [self.table, self.column, self.row, key_id] {
            v.extend_from_slice(&(part.len() as u32).to_be_bytes());
            v.extend_from_slice(part.as_bytes());
        }
        v
    }
}

/// The data keys in use: one active key seals, every key opens what it sealed.
#[derive(Clone)]
pub struct Keyring {
    keys: BTreeMap<String, DataKey>,
    active: String,
}

impl fmt::Debug for Keyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Keyring")
            .field("active", &self.active)
            .field("keys", &self.keys.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl Keyring {
    /// A keyring whose active key is `active`; `others` may still open older values.
    pub fn new(active: DataKey, others: impl IntoIterator<Item = DataKey>) -> Self {
        let mut keys: BTreeMap<String, DataKey> =
            others.into_iter().map(|k| (k.id.clone(), k)).collect();
        let active_id = active.id.clone();
        keys.insert(active_id.clone(), active);
        Self {
            keys,
            active: active_id,
        }
    }

    /// A keyring with one random key, for tests.
    pub fn for_tests() -> Self {
        Self::new(
            DataKey::generate("test").unwrap_or_else(|_| unreachable!()),
            [],
        )
    }

    pub fn active_key_id(&self) -> &str {
        &self.active
    }

    pub fn key_ids(&self) -> impl Iterator<Item = &str> {
        self.keys.keys().map(String::as_str)
    }

    pub fn contains(&self, key_id: &str) -> bool {
        self.keys.contains_key(key_id)
    }

    /// Seals `plaintext` with the active key for the place `aad` names.
    pub fn seal(&self, plaintext: &[u8], aad: Aad<'_>) -> Vec<u8> {
        let key = &self.keys[&self.active];
        seal_with(&key.key, &key.id, plaintext, &aad.bytes(&key.id))
    }

    /// Seals a secret string.
    pub fn seal_str(&self, secret: &SecretString, aad: Aad<'_>) -> Vec<u8> {
        self.seal(secret.expose_secret().as_bytes(), aad)
    }

    /// Opens a sealed value; fails (never panics) on any alteration, on a value from another
    /// place, or on an unknown key.
    pub fn open(&self, sealed: &[u8], aad: Aad<'_>) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
        let (kid, nonce, ct) = split(sealed)?;
        let key = self
            .keys
            .get(kid)
            .ok_or_else(|| CryptoError::UnknownKey(kid.to_owned()))?;
        open_with(&key.key, nonce, ct, &aad.bytes(kid)).map(Zeroizing::new)
    }

    /// Opens a sealed UTF-8 secret.
    pub fn open_str(&self, sealed: &[u8], aad: Aad<'_>) -> Result<SecretString, CryptoError> {
        let bytes = self.open(sealed, aad)?;
        let s = std::str::from_utf8(&bytes).map_err(|_| CryptoError::NotUtf8)?;
        Ok(SecretString::from(s))
    }

    /// Re-seals a value under the active key (a no-op copy when it already uses it).
    pub fn reseal(&self, sealed: &[u8], aad: Aad<'_>) -> Result<Vec<u8>, CryptoError> {
        if key_id_of(sealed)? == self.active {
            return Ok(sealed.to_vec());
        }
        let plain = self.open(sealed, aad)?;
        Ok(self.seal(&plain, aad))
    }
}

/// The id of the key that sealed a value.
pub fn key_id_of(sealed: &[u8]) -> Result<&str, CryptoError> {
    split(sealed).map(|(kid, _, _)| kid)
}

fn seal_with(key: &KeyBytes, key_id: &str, plaintext: &[u8], aad: &[u8]) -> Vec<u8> {
    let nonce_bytes: [u8; NONCE_LEN] = random_bytes();
    let nonce = Nonce::from(nonce_bytes);
    let ct = key
        .cipher()
        .encrypt(
            &nonce,
            Payload {
                msg: plaintext,
                aad,
            },
        )
        .unwrap_or_else(|_| unreachable!("AES-GCM encryption of a bounded message cannot fail"));
    let mut out = Vec::with_capacity(2 + key_id.len() + NONCE_LEN + ct.len());
    out.push(FORMAT_VERSION);
    out.push(key_id.len() as u8);
    out.extend_from_slice(key_id.as_bytes());
    out.extend_from_slice(&nonce_bytes);
    out.extend_from_slice(&ct);
    out
}

fn split(sealed: &[u8]) -> Result<(&str, &[u8], &[u8]), CryptoError> {
    let (&version, rest) = sealed
        .split_first()
        .ok_or(CryptoError::Malformed("empty"))?;
    if version != FORMAT_VERSION {
        return Err(CryptoError::Malformed("unknown format version"));
    }
    let (&kid_len, rest) = rest
        .split_first()
        .ok_or(CryptoError::Malformed("truncated"))?;
    let kid_len = usize::from(kid_len);
    if rest.len() < kid_len + NONCE_LEN + TAG_LEN {
        return Err(CryptoError::Malformed("truncated"));
    }
    let (kid, rest) = rest.split_at(kid_len);
    let kid = std::str::from_utf8(kid).map_err(|_| CryptoError::Malformed("key id is not text"))?;
    let (nonce, ct) = rest.split_at(NONCE_LEN);
    Ok((kid, nonce, ct))
}

fn open_with(key: &KeyBytes, nonce: &[u8], ct: &[u8], aad: &[u8]) -> Result<Vec<u8>, CryptoError> {
    let nonce: [u8; NONCE_LEN] = nonce
        .try_into()
        .map_err(|_| CryptoError::Malformed("bad nonce length"))?;
    key.cipher()
        .decrypt(&Nonce::from(nonce), Payload { msg: ct, aad })
        .map_err(|_| CryptoError::Authentication)
}

/// A value sealed with a key derived from a passphrase (the `export --with-secrets` document):
/// argon2id over the passphrase and a random 16-byte salt gives a 32-byte AES-256-GCM key; the
/// cost parameters travel with the value so that a later version may raise them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PassphraseSealed {
    pub m_cost_kib: u32,
    pub t_cost: u32,
    pub p_cost: u32,
    pub salt: Vec<u8>,
    /// `nonce (12) | ciphertext+tag`.
    pub sealed: Vec<u8>,
}

/// argon2id's memory cost for new values: 64 MiB, 3 passes (a passphrase is usually weaker than
/// a password stored as a hash, and this runs once per export or import).
const PASSPHRASE_M_COST: u32 = 64 * 1024;
const PASSPHRASE_T_COST: u32 = 3;
/// Refused when opening: a document may not make the importer spend more than 1 GiB or 20 passes.
const PASSPHRASE_M_MAX: u32 = 1024 * 1024;
const PASSPHRASE_T_MAX: u32 = 20;
/// The shortest passphrase accepted for sealing.
pub const PASSPHRASE_MIN_CHARS: usize = 12;

fn passphrase_key(
    passphrase: &SecretString,
    salt: &[u8],
    m: u32,
    t: u32,
    p: u32,
) -> Result<KeyBytes, CryptoError> {
    if m > PASSPHRASE_M_MAX || t > PASSPHRASE_T_MAX || p == 0 || p > 16 || salt.len() < 16 {
        return Err(CryptoError::Malformed(
            "key-derivation parameters out of range",
        ));
    }
    let params = argon2::Params::new(m, t, p, Some(32))
        .map_err(|_| CryptoError::Malformed("key-derivation parameters out of range"))?;
    let kdf = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
    let mut key = Zeroizing::new([0u8; 32]);
    kdf.hash_password_into(
        passphrase.expose_secret().as_bytes(),
        salt,
        key.as_mut_slice(),
    )
    .map_err(|_| CryptoError::Malformed("key derivation failed"))?;
    Ok(KeyBytes(key))
}

fn passphrase_aad(context: &str) -> Vec<u8> {
    format!("tokenwarden:passphrase-v1|{context}").into_bytes()
}

/// Seals `plaintext` under a key derived from `passphrase` (argon2id); `context` (e.g. the
/// document format) is bound in as associated data. Refuses a passphrase shorter than
/// [`PASSPHRASE_MIN_CHARS`].
pub fn seal_with_passphrase(
    passphrase: &SecretString,
    plaintext: &[u8],
    context: &str,
) -> Result<PassphraseSealed, CryptoError> {
    if passphrase.expose_secret().chars().count() < PASSPHRASE_MIN_CHARS {
        return Err(CryptoError::WeakPassphrase(PASSPHRASE_MIN_CHARS));
    }
    let salt: [u8; 16] = random_bytes();
    let key = passphrase_key(passphrase, &salt, PASSPHRASE_M_COST, PASSPHRASE_T_COST, 1)?;
    let nonce_bytes: [u8; NONCE_LEN] = random_bytes();
    let ct = key
        .cipher()
        .encrypt(
            &Nonce::from(nonce_bytes),
            Payload {
                msg: plaintext,
                aad: &passphrase_aad(context),
            },
        )
        .unwrap_or_else(|_| unreachable!("AES-GCM encryption of a bounded message cannot fail"));
    let mut sealed = nonce_bytes.to_vec();
    sealed.extend_from_slice(&ct);
    Ok(PassphraseSealed {
        m_cost_kib: PASSPHRASE_M_COST,
        t_cost: PASSPHRASE_T_COST,
        p_cost: 1,
        salt: salt.to_vec(),
        sealed,
    })
}

/// Opens what [`seal_with_passphrase`] sealed; a wrong passphrase, another `context` or any
/// alteration is [`CryptoError::Authentication`].
pub fn open_with_passphrase(
    passphrase: &SecretString,
    value: &PassphraseSealed,
    context: &str,
) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
    let key = passphrase_key(
        passphrase,
        &value.salt,
        value.m_cost_kib,
        value.t_cost,
        value.p_cost,
    )?;
    if value.sealed.len() < NONCE_LEN + TAG_LEN {
        return Err(CryptoError::Malformed("truncated"));
    }
    let (nonce, ct) = value.sealed.split_at(NONCE_LEN);
    open_with(&key, nonce, ct, &passphrase_aad(context)).map(Zeroizing::new)
}

#[cfg(test)]
mod tests;
