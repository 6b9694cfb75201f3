//! Signing keys tokenwarden generates and keeps: an RSA 2048 key (RS256) or a P-256 key (ES256),
//! their public half as SubjectPublicKeyInfo DER / PEM / JWK, the SHA-256 fingerprint Snowflake
//! shows as `RSA_PUBLIC_KEY_FP`, and compact JWS (JWT) signing.
//!
//! Generation of RSA keys uses the `rsa` crate (ring cannot generate RSA keys); everything else
//! (P-256 generation, both signatures) uses ring. The private key is kept as PKCS#8: the text
//! [`SigningKey::to_pkcs8_pem`] is what the vault seals; [`SigningKey::from_pkcs8_pem`] opens it
//! again. Neither the key nor its PEM is ever printed by `Debug`.

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use ring::rand::SystemRandom;
use ring::signature::{self, EcdsaKeyPair, KeyPair as _, RsaKeyPair, RsaPublicKeyComponents};
use secrecy::SecretString;
use sha2::{Digest as _, Sha256};
use std::fmt;
use std::str::FromStr;
use zeroize::Zeroizing;

/// The RSA modulus size tokenwarden generates (Snowflake's minimum, RFC 7518's minimum for RS256).
pub const RSA_BITS: usize = 2048;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum KeyError {
    #[error("the private key is not a PKCS#8 PEM tokenwarden can use (RSA 2048-8192 or P-256)")]
    Unreadable,
    #[error("key generation failed: {0}")]
    Generation(String),
    #[error("signing failed")]
    Signing,
    #[error("the claims are not a JSON object")]
    Claims,
}

/// The JWS algorithm of a key (RFC 7518 names).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyAlgorithm {
    /// RSASSA-PKCS1-v1_5 with SHA-256 over an RSA key.
    Rs256,
    /// ECDSA P-256 with SHA-256.
    Es256,
}

impl KeyAlgorithm {
    pub const ALL: [KeyAlgorithm; 2] = [KeyAlgorithm::Rs256, KeyAlgorithm::Es256];

    pub fn as_str(self) -> &'static str {
        match self {
            KeyAlgorithm::Rs256 => "RS256",
            KeyAlgorithm::Es256 => "ES256",
        }
    }

    /// The JWK `kty`.
    pub fn key_type(self) -> &'static str {
        match self {
            KeyAlgorithm::Rs256 => "RSA",
            KeyAlgorithm::Es256 => "EC",
        }
    }
}

impl fmt::Display for KeyAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for KeyAlgorithm {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_uppercase().as_str() {
            "RS256" | "RSA" => Ok(KeyAlgorithm::Rs256),
            "ES256" | "EC" | "P-256" => Ok(KeyAlgorithm::Es256),
            _ => Err(format!(
                "{s:?} is not a key algorithm: RS256 (RSA 2048) or ES256 (P-256)"
            )),
        }
    }
}

/// The operating system's CSPRNG for the `rsa` crate's key generation (through getrandom, as
/// every other random value tokenwarden makes).
struct OsRng;

impl rsa::rand_core::TryRng for OsRng {
    type Error = getrandom::Error;

    fn try_next_u32(&mut self) -> Result<u32, Self::Error> {
        let mut b = [0u8; 4];
        getrandom::fill(&mut b)?;
        Ok(u32::from_le_bytes(b))
    }

    fn try_next_u64(&mut self) -> Result<u64, Self::Error> {
        let mut b = [0u8; 8];
        getrandom::fill(&mut b)?;
        Ok(u64::from_le_bytes(b))
    }

    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Self::Error> {
        getrandom::fill(dst)
    }
}

impl rsa::rand_core::TryCryptoRng for OsRng {}

enum Inner {
    Rsa(RsaKeyPair),
    Ec(EcdsaKeyPair),
}

/// A private signing key. `Debug` shows only its algorithm and fingerprint.
pub struct SigningKey {
    pkcs8: Zeroizing<Vec<u8>>,
    inner: Inner,
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "SigningKey({}, {}, [redacted])",
            self.algorithm(),
            self.public_key().fingerprint()
        )
    }
}

impl SigningKey {
    /// A new random key: RSA 2048 for RS256, P-256 for ES256.
    pub fn generate(alg: KeyAlgorithm) -> Result<Self, KeyError> {
        let pkcs8: Zeroizing<Vec<u8>> = match alg {
            KeyAlgorithm::Rs256 => {
                use rsa::pkcs8::EncodePrivateKey as _;
                let mut rng = OsRng;
                let key = rsa::PrivateKey::new(&mut rng, RSA_BITS)
                    .map_err(|e| KeyError::Generation(e.to_string()))?;
                let doc = key
                    .to_pkcs8_der()
                    .map_err(|e| KeyError::Generation(e.to_string()))?;
                Zeroizing::new(doc.as_bytes().to_vec())
            }
            KeyAlgorithm::Es256 => {
                let rng = SystemRandom::new();
                let doc =
                    EcdsaKeyPair::generate_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
                        .map_err(|_| KeyError::Generation("P-256 key generation failed".into()))?;
                Zeroizing::new(doc.as_ref().to_vec())
            }
        };
        Self::from_pkcs8_der(pkcs8)
    }

    fn from_pkcs8_der(pkcs8: Zeroizing<Vec<u8>>) -> Result<Self, KeyError> {
        let inner = if let Ok(k) = RsaKeyPair::from_pkcs8(&pkcs8) {
            Inner::Rsa(k)
        } else {
            let rng = SystemRandom::new();
            let k =
                EcdsaKeyPair::from_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, &pkcs8, &rng)
                    .map_err(|_| KeyError::Unreadable)?;
            Inner::Ec(k)
        };
        Ok(Self { pkcs8, inner })
    }

    /// Opens the text [`SigningKey::to_pkcs8_pem`] wrote (a `PRIVATE KEY` PEM block).
    pub fn from_pkcs8_pem(pem: &str) -> Result<Self, KeyError> {
        let body: String = pem
            .trim()
            .strip_prefix("-----BEGIN PRIVATE KEY-----")
            .and_then(|s| s.trim_end().strip_suffix("-----END PRIVATE KEY-----"))
            .ok_or(KeyError::Unreadable)?
            .chars()
            .filter(|c| !c.is_ascii_whitespace())
            .collect();
        let body = Zeroizing::new(body);
        let der = STANDARD
            .decode(body.as_bytes())
            .map_err(|_| KeyError::Unreadable)?;
        Self::from_pkcs8_der(Zeroizing::new(der))
    }

    /// The private key as an unencrypted PKCS#8 PEM (what the vault seals).
    pub fn to_pkcs8_pem(&self) -> SecretString {
        SecretString::from(pem("PRIVATE KEY", &self.pkcs8))
    }

    pub fn algorithm(&self) -> KeyAlgorithm {
        match self.inner {
            Inner::Rsa(_) => KeyAlgorithm::Rs256,
            Inner::Ec(_) => KeyAlgorithm::Es256,
        }
    }

    pub fn public_key(&self) -> PublicKey {
        match &self.inner {
            Inner::Rsa(k) => {
                let components = RsaPublicKeyComponents::<Vec<u8>>::from(k.public());
                // SubjectPublicKeyInfo { AlgorithmIdentifier { rsaEncryption, NULL },
                // BIT STRING { RSAPublicKey } } (RFC 3279 section 2.3.1).
                let mut bits = vec![0u8];
                bits.extend_from_slice(k.public().as_ref());
                let algorithm = der(
                    0x30,
                    &[
                        &[
                            0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01,
                        ][..],
                        &[0x05, 0x00][..],
                    ]
                    .concat(),
                );
                let spki = der(0x30, &[algorithm, der(0x03, &bits)].concat());
                PublicKey {
                    alg: KeyAlgorithm::Rs256,
                    spki,
                    jwk_members: JwkMembers::Rsa {
                        n: components.n,
                        e: components.e,
                    },
                }
            }
            Inner::Ec(k) => {
                // The uncompressed point 0x04 | x | y (65 bytes).
                let point = k.public_key().as_ref().to_vec();
                const PREFIX: [u8; 26] = [
                    0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01,
                    0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
                ];
                let spki = [&PREFIX[..], &point].concat();
                let (x, y) = point.get(1..).unwrap_or_default().split_at(32);
                PublicKey {
                    alg: KeyAlgorithm::Es256,
                    spki,
                    jwk_members: JwkMembers::Ec {
                        x: x.to_vec(),
                        y: y.to_vec(),
                    },
                }
            }
        }
    }

    /// A compact JWS over `claims` (a JSON object): header `{"alg", "typ": "JWT"}` plus `kid`
    /// when given.
    pub fn sign_jwt(
        &self,
        kid: Option<&str>,
        claims: &serde_json::Value,
    ) -> Result<String, KeyError> {
        if !claims.is_object() {
            return Err(KeyError::Claims);
        }
        let mut header = serde_json::json!({"alg": self.algorithm().as_str(), "typ": "JWT"});
        if let Some(kid) = kid {
            header["kid"] = serde_json::Value::String(kid.to_string());
        }
        let mut jwt = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let rng = SystemRandom::new();
        let sig = match &self.inner {
            Inner::Rsa(k) => {
                let mut sig = vec![0u8; k.public().modulus_len()];
                k.sign(&signature::RSA_PKCS1_SHA256, &rng, jwt.as_bytes(), &mut sig)
                    .map_err(|_| KeyError::Signing)?;
                sig
            }
            Inner::Ec(k) => k
                .sign(&rng, jwt.as_bytes())
                .map_err(|_| KeyError::Signing)?
                .as_ref()
                .to_vec(),
        };
        jwt.push('.');
        jwt.push_str(&URL_SAFE_NO_PAD.encode(sig));
        Ok(jwt)
    }
}

#[derive(Clone, PartialEq, Eq)]
enum JwkMembers {
    Rsa { n: Vec<u8>, e: Vec<u8> },
    Ec { x: Vec<u8>, y: Vec<u8> },
}

/// The public half of a [`SigningKey`].
#[derive(Clone, PartialEq, Eq)]
pub struct PublicKey {
    alg: KeyAlgorithm,
    spki: Vec<u8>,
    jwk_members: JwkMembers,
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({}, {})", self.alg, self.fingerprint())
    }
}

impl PublicKey {
    pub fn algorithm(&self) -> KeyAlgorithm {
        self.alg
    }

    /// The DER SubjectPublicKeyInfo.
    pub fn der(&self) -> &[u8] {
        &self.spki
    }

    /// The DER SubjectPublicKeyInfo in standard base64 on one line: what
    /// `ALTER USER ... SET RSA_PUBLIC_KEY = '...'` takes.
    pub fn base64(&self) -> String {
        STANDARD.encode(&self.spki)
    }

    /// A `PUBLIC KEY` PEM block (64-character lines).
    pub fn pem(&self) -> String {
        pem("PUBLIC KEY", &self.spki)
    }

    /// `SHA256:` + base64 of the SHA-256 of the DER SubjectPublicKeyInfo: Snowflake's
    /// `RSA_PUBLIC_KEY_FP` and the fingerprint part of a key-pair JWT's `iss`.
    pub fn fingerprint(&self) -> String {
        format!("SHA256:{}", STANDARD.encode(Sha256::digest(&self.spki)))
    }

    /// The RFC 7638 JWK thumbprint (SHA-256, base64url): the `kid` tokenwarden gives the key.
    pub fn thumbprint(&self) -> String {
        // Required members only, in lexicographic order, no whitespace (RFC 7638 section 3).
        let canonical = match &self.jwk_members {
            JwkMembers::Rsa { n, e } => format!(
                r#"{{"e":"{}","kty":"RSA","n":"{}"}}"#,
                URL_SAFE_NO_PAD.encode(e),
                URL_SAFE_NO_PAD.encode(n)
            ),
            JwkMembers::Ec { x, y } => format!(
                r#"{{"crv":"P-256","kty":"EC","x":"{}","y":"{}"}}"#,
                URL_SAFE_NO_PAD.encode(x),
                URL_SAFE_NO_PAD.encode(y)
            ),
        };
        URL_SAFE_NO_PAD.encode(Sha256::digest(canonical.as_bytes()))
    }

    /// The public key as a JWK (RFC 7517) with `kid` (the thumbprint), `use: sig` and `alg`.
    pub fn jwk(&self) -> serde_json::Value {
        let mut jwk = match &self.jwk_members {
            JwkMembers::Rsa { n, e } => serde_json::json!({
                "kty": "RSA",
                "n": URL_SAFE_NO_PAD.encode(n),
                "e": URL_SAFE_NO_PAD.encode(e),
            }),
            JwkMembers::Ec { x, y } => serde_json::json!({
                "kty": "EC",
                "crv": "P-256",
                "x": URL_SAFE_NO_PAD.encode(x),
                "y": URL_SAFE_NO_PAD.encode(y),
            }),
        };
        jwk["kid"] = self.thumbprint().into();
        jwk["use"] = "sig".into();
        jwk["alg"] = self.alg.as_str().into();
        jwk
    }

    /// `{"keys": [jwk]}`: what a provider's "JWKS" field takes.
    pub fn jwks(&self) -> serde_json::Value {
        serde_json::json!({ "keys": [self.jwk()] })
    }
}

/// One DER TLV.
fn der(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let len = content.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes: Vec<u8> = len
            .to_be_bytes()
            .into_iter()
            .skip_while(|b| *b == 0)
            .collect();
        out.push(0x80 | bytes.len() as u8);
        out.extend(bytes);
    }
    out.extend_from_slice(content);
    out
}

fn pem(label: &str, der: &[u8]) -> String {
    let b64 = Zeroizing::new(STANDARD.encode(der));
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(line).unwrap_or_default());
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret as _;

    fn verify_rs256(public: &PublicKey, jwt: &str) -> bool {
        // Independent check with the rsa crate (not ring, which signed).
        use rsa::pkcs8::DecodePublicKey as _;
        use rsa::signature::Verifier as _;
        let (signed, sig) = jwt.rsplit_once('.').unwrap_or_default();
        let Ok(sig) = URL_SAFE_NO_PAD.decode(sig) else {
            return false;
        };
        let Ok(key) = rsa::PublicKey::from_public_key_der(public.der()) else {
            return false;
        };
        let vk = rsa::pkcs1v15::VerifyingKey::<rsa::sha2::Sha256>::new(key);
        let Ok(sig) = rsa::pkcs1v15::Signature::try_from(sig.as_slice()) else {
            return false;
        };
        vk.verify(signed.as_bytes(), &sig).is_ok()
    }

    #[test]
    fn rsa_key_round_trips_signs_and_verifies_with_another_implementation() {
        let key = SigningKey::generate(KeyAlgorithm::Rs256).expect("generate");
        assert_eq!(key.algorithm(), KeyAlgorithm::Rs256);
        let public = key.public_key();
        // The SPKI parses with the rsa crate and has a 2048-bit modulus.
        use rsa::pkcs8::DecodePublicKey as _;
        use rsa::traits::PublicKeyParts as _;
        let parsed = rsa::PublicKey::from_public_key_der(public.der()).expect("spki");
        assert_eq!(parsed.size() * 8, RSA_BITS);

        let pem = key.to_pkcs8_pem();
        assert!(
            pem.expose_secret()
                .starts_with("-----BEGIN PRIVATE KEY-----\n")
        );
        let again = SigningKey::from_pkcs8_pem(pem.expose_secret()).expect("reopen");
        assert_eq!(again.public_key(), public);

        let claims = serde_json::json!({"iss": "A.B.SHA256:x", "sub": "A.B", "iat": 1, "exp": 2});
        let jwt = again.sign_jwt(None, &claims).expect("sign");
        assert!(verify_rs256(&public, &jwt));
        let mut parts: Vec<&str> = jwt.split('.').collect();
        let header: serde_json::Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[0]).expect("b64")).expect("json");
        assert_eq!(header, serde_json::json!({"alg": "RS256", "typ": "JWT"}));
        // Altering the claims breaks the signature.
        let other = URL_SAFE_NO_PAD.encode(r#"{"sub":"OTHER"}"#);
        parts[1] = &other;
        assert!(!verify_rs256(&public, &parts.join(".")));
        // Another key's signature does not verify.
        let stranger = SigningKey::generate(KeyAlgorithm::Es256).expect("ec");
        assert_ne!(stranger.public_key().fingerprint(), public.fingerprint());
    }

    #[test]
    fn fingerprint_is_sha256_of_the_spki_in_base64_as_snowflake_shows_it() {
        let key = SigningKey::generate(KeyAlgorithm::Es256).expect("generate");
        let public = key.public_key();
        let fp = public.fingerprint();
        let expected = STANDARD.encode(Sha256::digest(public.der()));
        assert_eq!(fp, format!("SHA256:{expected}"));
        assert_eq!(fp.len(), "SHA256:".len() + 44);
        assert!(!public.base64().contains('\n'));
        assert!(public.pem().starts_with("-----BEGIN PUBLIC KEY-----\n"));
    }

    #[test]
    fn ec_key_signs_es256_verifiable_from_its_jwk() {
        let key = SigningKey::generate(KeyAlgorithm::Es256).expect("generate");
        let public = key.public_key();
        let jwk = public.jwk();
        assert_eq!(jwk["kty"], "EC");
        assert_eq!(jwk["crv"], "P-256");
        assert_eq!(jwk["alg"], "ES256");
        assert_eq!(jwk["kid"], public.thumbprint());
        let claims = serde_json::json!({"iss": "client", "sub": "client"});
        let jwt = key
            .sign_jwt(Some(&public.thumbprint()), &claims)
            .expect("sign");
        let (signed, sig) = jwt.rsplit_once('.').expect("three parts");
        let sig = URL_SAFE_NO_PAD.decode(sig).expect("b64");
        assert_eq!(sig.len(), 64, "JWS ES256 is r||s");
        let point = [
            &[4u8][..],
            &URL_SAFE_NO_PAD
                .decode(jwk["x"].as_str().unwrap_or_default())
                .expect("x"),
            &URL_SAFE_NO_PAD
                .decode(jwk["y"].as_str().unwrap_or_default())
                .expect("y"),
        ]
        .concat();
        let verifier =
            signature::UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, &point);
        assert!(verifier.verify(signed.as_bytes(), &sig).is_ok());
        assert!(verifier.verify(b"something else", &sig).is_err());
        // The SPKI ends with the same point.
        assert!(public.der().ends_with(&point));
    }

    #[test]
    fn rfc7638_thumbprint_of_the_rfc_example_key() {
        // RFC 7638 section 3.1: the example RSA key's thumbprint.
        let n = URL_SAFE_NO_PAD.decode("0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw").expect("n");
        let e = URL_SAFE_NO_PAD.decode("AQAB").expect("e");
        let public = PublicKey {
            alg: KeyAlgorithm::Rs256,
            spki: Vec::new(),
            jwk_members: JwkMembers::Rsa { n, e },
        };
        assert_eq!(
            public.thumbprint(),
            "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
        );
    }

    #[test]
    fn unreadable_pem_is_refused_and_debug_is_redacted() {
        assert_eq!(
            SigningKey::from_pkcs8_pem(
                "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----"
            )
            .err(),
            Some(KeyError::Unreadable)
        );
        assert_eq!(
            SigningKey::from_pkcs8_pem("not a pem").err(),
            Some(KeyError::Unreadable)
        );
        let key = SigningKey::generate(KeyAlgorithm::Es256).expect("generate");
        let shown = format!("{key:?}");
        assert!(shown.contains("redacted") && !shown.contains("BEGIN"));
        assert!("rs256".parse::<KeyAlgorithm>().is_ok());
        assert!("HS256".parse::<KeyAlgorithm>().is_err());
    }
}
