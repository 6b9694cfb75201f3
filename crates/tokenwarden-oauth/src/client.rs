//! Talking to a provider: the authorization URL, the token endpoint (code exchange and refresh),
//! and the connection test. Every failure is classified: permanent provider refusals (the token
//! needs re-authorization) apart from transient trouble (retry later, keep what we have).

use crate::catalog::{ClientAuth, Probe, ResolvedProvider};
use crate::snowflake::urlencode;
use base64::Engine as _;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use sha2::Digest;
use std::fmt;
use std::time::Duration;

/// A PKCE pair (RFC 7636): a verifier of 32 random bytes and its S256 challenge.
pub struct Pkce {
    pub verifier: SecretString,
    pub challenge: String,
}

impl Pkce {
    pub fn generate() -> Self {
        let bytes: [u8; 32] = tokenwarden_crypto::random_bytes();
        let verifier = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
        let challenge = challenge_for(&verifier);
        Self {
            verifier: verifier.into(),
            challenge,
        }
    }
}

pub fn challenge_for(verifier: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(sha2::Sha256::digest(verifier.as_bytes()))
}

/// A fresh `state` value: 32 random bytes, URL-safe.
pub fn new_state() -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(tokenwarden_crypto::random_bytes::<32>())
}

/// The URL to send the admin's browser to.
pub fn authorization_url(
    p: &ResolvedProvider,
    client_id: &str,
    redirect_uri: &str,
    state: &str,
    challenge: Option<&str>,
) -> String {
    let mut params: Vec<(String, String)> = vec![
        ("response_type".into(), "code".into()),
        ("client_id".into(), client_id.into()),
        ("redirect_uri".into(), redirect_uri.into()),
        ("state".into(), state.into()),
    ];
    if !p.scopes.is_empty() {
        params.push(("scope".into(), p.scopes.clone()));
    }
    if let Some(c) = challenge {
        params.push(("code_challenge".into(), c.into()));
        params.push(("code_challenge_method".into(), "S256".into()));
    }
    for (k, v) in &p.extra_authorization_params {
        params.push((k.clone(), v.clone()));
    }
    let query: Vec<String> = params
        .iter()
        .map(|(k, v)| format!("{}={}", urlencode(k), urlencode(v)))
        .collect();
    let sep = if p.authorization_url.contains('?') {
        '&'
    } else {
        '?'
    };
    format!("{}{sep}{}", p.authorization_url, query.join("&"))
}

/// A successful token response. `Debug` hides the tokens.
pub struct TokenResponse {
    pub access_token: SecretString,
    pub refresh_token: Option<SecretString>,
    pub token_type: String,
    pub expires_in: Option<u64>,
    /// Snowflake: seconds left on the refresh token.
    pub refresh_token_expires_in: Option<u64>,
    pub scope: Option<String>,
    /// Snowflake: the user the token acts as.
    pub username: Option<String>,
}

impl fmt::Debug for TokenResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenResponse")
            .field(
                "refresh_token",
                &self.refresh_token.as_ref().map(|_| "[redacted]"),
            )
            .field("token_type", &self.token_type)
            .field("expires_in", &self.expires_in)
            .field("refresh_token_expires_in", &self.refresh_token_expires_in)
            .field("scope", &self.scope)
            .finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
struct RawTokenResponse {
    access_token: Option<String>,
    refresh_token: Option<String>,
    token_type: Option<String>,
    expires_in: Option<NumberOrString>,
    refresh_token_expires_in: Option<NumberOrString>,
    scope: Option<String>,
    username: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
    message: Option<String>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum NumberOrString {
    N(u64),
    F(f64),
    S(String),
}

impl NumberOrString {
    fn seconds(&self) -> Option<u64> {
        match self {
            NumberOrString::N(n) => Some(*n),
            NumberOrString::F(f) if *f >= 0.0 => Some(*f as u64),
            NumberOrString::S(s) => s.trim().parse().ok(),
            NumberOrString::F(_) => None,
        }
    }
}

/// Why a token request failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// The provider refused, for good: the grant, client or redirect is not accepted.
    #[error("the provider refused: {error}{}", describe(.description, .message))]
    Refused {
        status: u16,
        error: String,
        description: Option<String>,
        message: Option<String>,
    },
    /// Worth retrying: network trouble, timeouts, 5xx, 429, or an answer that is not a token.
    #[error("{0}")]
    Transient(String),
}

fn describe(description: &Option<String>, message: &Option<String>) -> String {
    let mut out = String::new();
    for part in [description, message].into_iter().flatten() {
        if !part.is_empty() && !out.contains(part.as_str()) {
            out.push_str(" — ");
            out.push_str(part);
        }
    }
    out
}

impl TokenError {
    /// `invalid_grant`, `invalid_client`, `unauthorized_client` and friends: the stored grant
    /// cannot be used again; the token needs re-authorization.
    pub fn is_permanent(&self) -> bool {
        matches!(self, TokenError::Refused { error, .. }
            if matches!(error.as_str(), "invalid_grant" | "invalid_client" | "unauthorized_client" | "invalid_scope" | "unsupported_grant_type" | "access_denied"))
    }
}

/// The client secrets to try, in order (rotation without downtime).
pub struct ClientCredentials<'a> {
    pub client_id: &'a str,
    pub secrets: Vec<SecretString>,
}

pub enum Grant<'a> {
    AuthorizationCode {
        code: &'a str,
        redirect_uri: &'a str,
        verifier: Option<&'a SecretString>,
    },
    Refresh {
        refresh_token: &'a SecretString,
    },
    /// RFC 6749 4.4: the client's own credentials get an access token (the scopes the
    /// provider resolved to, if any).
    ClientCredentials,
    /// RFC 8628 section 3.4: one poll of the token endpoint with the device code.
    DeviceCode {
        device_code: &'a SecretString,
    },
}

/// An HTTP client for provider calls, with bounded timeouts.
#[derive(Clone, Debug)]
pub struct OAuthClient {
    http: reqwest::Client,
}

impl Default for OAuthClient {
    fn default() -> Self {
        Self::new(Duration::from_secs(15))
    }
}

/// Installs rustls' `ring` crypto provider for the process (idempotent). Anything that builds a
/// reqwest client in this workspace needs it first.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

impl OAuthClient {
    pub fn new(timeout: Duration) -> Self {
        install_crypto_provider();
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(Duration::from_secs(10))
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("tokenwarden/", env!("CARGO_PKG_VERSION")))
            .build()
            .unwrap_or_else(|_| reqwest::Client::new());
        Self { http }
    }

    /// Calls the token endpoint, trying each client secret in order while the provider answers
    /// `invalid_client`. No secret at all means a public client (RFC 6749 section 2.1, e.g. a
    /// device-flow client at Microsoft or GitHub): its `client_id` goes in the form, alone. The
    /// core refuses to start an authorization-code sign-in without a secret, so only tokens
    /// that may be public get here without one.
    pub async fn token(
        &self,
        p: &ResolvedProvider,
        creds: &ClientCredentials<'_>,
        grant: &Grant<'_>,
    ) -> Result<TokenResponse, TokenError> {
        if creds.secrets.is_empty() {
            return self.token_once(p, creds.client_id, None, grant).await;
        }
        let mut last = None;
        for secret in &creds.secrets {
            match self
                .token_once(p, creds.client_id, Some(secret), grant)
                .await
            {
                Err(TokenError::Refused {
                    error,
                    status,
                    description,
                    message,
                }) if error == "invalid_client" => {
                    last = Some(TokenError::Refused {
                        error,
                        status,
                        description,
                        message,
                    });
                }
                other => return other,
            }
        }
        Err(last.unwrap_or_else(|| TokenError::Transient("no answer".into())))
    }

    async fn token_once(
        &self,
        p: &ResolvedProvider,
        client_id: &str,
        secret: Option<&SecretString>,
        grant: &Grant<'_>,
    ) -> Result<TokenResponse, TokenError> {
        let mut form: Vec<(&str, String)> = Vec::new();
        match grant {
            Grant::AuthorizationCode {
                code,
                redirect_uri,
                verifier,
            } => {
                form.push(("grant_type", "authorization_code".into()));
                form.push(("code", (*code).into()));
                form.push(("redirect_uri", (*redirect_uri).into()));
                if let Some(v) = verifier {
                    form.push(("code_verifier", v.expose_secret().into()));
                }
            }
            Grant::Refresh { refresh_token } => {
                form.push(("grant_type", "refresh_token".into()));
                form.push(("refresh_token", refresh_token.expose_secret().into()));
            }
            Grant::ClientCredentials => {
                form.push(("grant_type", "client_credentials".into()));
                if !p.scopes.is_empty() {
                    form.push(("scope", p.scopes.clone()));
                }
            }
            Grant::DeviceCode { device_code } => {
                form.push(("grant_type", crate::device::GRANT_TYPE.into()));
                form.push(("device_code", device_code.expose_secret().into()));
            }
        }
        let res = self
            .post_form(&p.token_url, p.client_auth, client_id, secret, form)
            .await
            .map_err(|e| TokenError::Transient(describe_reqwest(&e, &p.token_url)))?;
        let status = res.status().as_u16();
        let retry_after = res
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let body = read_capped(res, MAX_TOKEN_RESPONSE)
            .await
            .map_err(|e| TokenError::Transient(e.describe("the token endpoint")))?;
        parse_token_response(
            status,
            &String::from_utf8_lossy(&body),
            retry_after.as_deref(),
        )
    }

    /// POSTs a form to a provider endpoint with the client's authentication: HTTP Basic or
    /// `client_id` + `client_secret` in the form; a public client (no secret) sends its
    /// `client_id` in the form only. Always asks for JSON (GitHub answers form-encoded without).
    pub(crate) async fn post_form(
        &self,
        url: &str,
        auth: ClientAuth,
        client_id: &str,
        secret: Option<&SecretString>,
        mut form: Vec<(&str, String)>,
    ) -> Result<reqwest::Response, reqwest::Error> {
        let mut req = self.http.post(url).header("Accept", "application/json");
        match (auth, secret) {
            (_, None) => form.push(("client_id", client_id.into())),
            (ClientAuth::Basic, Some(secret)) => {
                // RFC 6749 2.3.1 (and Snowflake's docs): URL-encode each part first.
                let raw = format!(
                    "{}:{}",
                    form_urlencode(client_id),
                    form_urlencode(secret.expose_secret())
                );
                let b64 = base64::engine::general_purpose::STANDARD.encode(raw.as_bytes());
                req = req.header("Authorization", format!("Basic {b64}"));
            }
            (ClientAuth::Body, Some(secret)) => {
                form.push(("client_id", client_id.into()));
                form.push(("client_secret", secret.expose_secret().into()));
            }
            (ClientAuth::PrivateKeyJwt, Some(assertion)) => {
                // RFC 7523 2.2: the "secret" is a client assertion the caller signed with the
                // token's key ([`client_assertion`]), fresh for this request.
                form.push(("client_id", client_id.into()));
                form.push(("client_assertion_type", CLIENT_ASSERTION_TYPE.into()));
                form.push(("client_assertion", assertion.expose_secret().into()));
            }
        }
        let body: String = form
            .iter()
            .map(|(k, v)| format!("{}={}", form_urlencode(k), form_urlencode(v)))
            .collect::<Vec<_>>()
            .join("&");
        req.header("Content-Type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await
    }

    /// Checks a token against the provider: Snowflake runs `SELECT CURRENT_USER()`, others GET
    /// the probe URL. Answers who the token acts as, or the provider's exact complaint.
    pub async fn test_connection(
        &self,
        p: &ResolvedProvider,
        access_token: &SecretString,
    ) -> Result<String, String> {
        self.test_connection_typed(p, access_token, "OAUTH").await
    }

    /// [`OAuthClient::test_connection`] with the Snowflake SQL API's
    /// `X-Snowflake-Authorization-Token-Type` chosen: `OAUTH`, or `KEYPAIR_JWT` for a key-pair
    /// JWT.
    pub async fn test_connection_typed(
        &self,
        p: &ResolvedProvider,
        access_token: &SecretString,
        snowflake_token_type: &str,
    ) -> Result<String, String> {
        match &p.probe {
            Probe::None => Err(
                "not available: this provider has no test endpoint configured (set probe_url)"
                    .into(),
            ),
            Probe::Url(url) => {
                let res = self
                    .http
                    .get(url)
                    .bearer_auth(access_token.expose_secret())
                    .header("Accept", "application/json")
                    .send()
                    .await
                    .map_err(|e| describe_reqwest(&e, url))?;
                let status = res.status();
                let body = read_capped(res, MAX_PROBE_RESPONSE)
                    .await
                    .map_err(|e| e.describe(url))?;
                let text = String::from_utf8_lossy(&body);
                if status.is_success() {
                    Ok(format!("{url} answered {status}"))
                } else {
                    Err(format!("{url} answered {status}: {}", truncate(&text, 300)))
                }
            }
            Probe::SnowflakeSql {
                base_url,
                role,
                warehouse,
            } => {
                let url = format!("{base_url}/api/v2/statements");
                let mut body = serde_json::json!({"statement": "SELECT CURRENT_USER()", "timeout": 60, "role": role});
                if let Some(w) = warehouse {
                    body["warehouse"] = serde_json::Value::String(w.clone());
                }
                let res = self
                    .http
                    .post(&url)
                    .bearer_auth(access_token.expose_secret())
                    .header("X-Snowflake-Authorization-Token-Type", snowflake_token_type)
                    .header("Accept", "application/json")
                    .json(&body)
                    .send()
                    .await
                    .map_err(|e| describe_reqwest(&e, &url))?;
                let status = res.status();
                let body = read_capped(res, MAX_PROBE_RESPONSE)
                    .await
                    .map_err(|e| format!("Snowflake answered {status}: {}", e.describe(&url)))?;
                let v: serde_json::Value = serde_json::from_slice(&body).map_err(|_| {
                    format!("Snowflake answered {status} with a body that is not JSON")
                })?;
                if status.is_success() {
                    let user = v["data"][0][0].as_str().ok_or_else(|| {
                        format!("Snowflake answered {status} without a result row")
                    })?;
                    Ok(format!("connected as {user}"))
                } else {
                    let code = v["code"].as_str().unwrap_or_default();
                    let msg = v["message"].as_str().unwrap_or("no message");
                    Err(format!(
                        "Snowflake answered {status}: {msg}{}",
                        if code.is_empty() {
                            String::new()
                        } else {
                            format!(" (code {code})")
                        }
                    ))
                }
            }
        }
    }
}

/// `client_assertion_type` for a JWT client assertion (RFC 7523 section 2.2).
pub const CLIENT_ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// How long a client assertion is valid.
pub const CLIENT_ASSERTION_LIFETIME_SECS: i64 = 300;

/// A `private_key_jwt` client assertion (RFC 7523 section 3, OpenID Connect Core section 9):
/// `iss` = `sub` = `client_id`, `aud` = the token endpoint, a random `jti`, `iat` = `now` (epoch
/// seconds), `exp` five minutes later; the header names the key by its JWK thumbprint (`kid`),
/// as in the JWKS shown to the admin.
pub fn client_assertion(
    key: &tokenwarden_crypto::keypair::SigningKey,
    client_id: &str,
    token_url: &str,
    now: i64,
) -> Result<String, tokenwarden_crypto::keypair::KeyError> {
    let jti = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(tokenwarden_crypto::random_bytes::<18>());
    let claims = serde_json::json!({
        "iss": client_id,
        "sub": client_id,
        "aud": token_url,
        "jti": jti,
        "iat": now,
        "exp": now + CLIENT_ASSERTION_LIFETIME_SECS,
    });
    key.sign_jwt(Some(&key.public_key().thumbprint()), &claims)
}

/// The largest token endpoint answer accepted: a real one is a few kilobytes.
pub const MAX_TOKEN_RESPONSE: usize = 1024 * 1024;
/// The largest probe answer read ("Test connection").
pub const MAX_PROBE_RESPONSE: usize = 1024 * 1024;

/// Why a response body could not be read.
#[derive(Debug)]
pub(crate) enum BodyError {
    /// Larger than the limit (declared or as read).
    TooLarge(usize),
    Read,
}

impl BodyError {
    pub(crate) fn describe(&self, whose: &str) -> String {
        match self {
            BodyError::TooLarge(limit) => format!(
                "the answer of {whose} is larger than {} KiB; refused, nothing was kept",
                limit / 1024
            ),
            BodyError::Read => format!("reading the answer of {whose} failed"),
        }
    }
}

/// Reads a response body chunk by chunk, refusing it as soon as it passes `limit` bytes (or
/// declares more): a provider's answer is never buffered whole before its size is known.
pub(crate) async fn read_capped(
    mut res: reqwest::Response,
    limit: usize,
) -> Result<Vec<u8>, BodyError> {
    if res.content_length().is_some_and(|n| n > limit as u64) {
        return Err(BodyError::TooLarge(limit));
    }
    let mut body = Vec::new();
    while let Some(chunk) = res.chunk().await.map_err(|_| BodyError::Read)? {
        if body.len() + chunk.len() > limit {
            return Err(BodyError::TooLarge(limit));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_owned()
    } else {
        format!("{}…", s.chars().take(n).collect::<String>())
    }
}

pub(crate) fn describe_reqwest(e: &reqwest::Error, url: &str) -> String {
    // Never include the request (it may carry secrets); name the endpoint and the kind of failure.
    let base = url.split('?').next().unwrap_or(url);
    if e.is_timeout() {
        format!("{base} did not answer in time")
    } else if e.is_connect() {
        format!("cannot connect to {base}")
    } else {
        format!("request to {base} failed")
    }
}

/// `application/x-www-form-urlencoded` encoding of one value.
pub fn form_urlencode(s: &str) -> String {
    urlencode(s)
}

/// Reads a token endpoint answer. Public for the fuzz target and tests.
pub fn parse_token_response(
    status: u16,
    body: &str,
    retry_after: Option<&str>,
) -> Result<TokenResponse, TokenError> {
    let parsed: Option<RawTokenResponse> = serde_json::from_str(body).ok();
    if status == 429 || status >= 500 {
        let hint = retry_after
            .map(|r| format!(" (retry after {r})"))
            .unwrap_or_default();
        let detail = parsed
            .as_ref()
            .and_then(|r| r.error.clone())
            .map(|e| format!(": {e}"))
            .unwrap_or_default();
        return Err(TokenError::Transient(format!(
            "the token endpoint answered HTTP {status}{detail}{hint}"
        )));
    }
    let Some(raw) = parsed else {
        return Err(TokenError::Transient(format!(
            "the token endpoint answered HTTP {status} with a body that is not JSON"
        )));
    };
    if let Some(error) = raw.error.filter(|e| !e.is_empty()) {
        return Err(TokenError::Refused {
            status,
            error,
            description: raw.error_description,
            message: raw.message,
        });
    }
    if !(200..300).contains(&status) {
        return Err(TokenError::Refused {
            status,
            error: format!("http_{status}"),
            description: raw.error_description,
            message: raw.message,
        });
    }
    let access_token = raw.access_token.filter(|t| !t.is_empty()).ok_or_else(|| {
        TokenError::Transient("the token endpoint answered without an access_token".into())
    })?;
    Ok(TokenResponse {
        access_token: access_token.into(),
        refresh_token: raw.refresh_token.filter(|t| !t.is_empty()).map(Into::into),
        token_type: raw.token_type.unwrap_or_else(|| "Bearer".into()),
        expires_in: raw.expires_in.and_then(|e| e.seconds()),
        refresh_token_expires_in: raw.refresh_token_expires_in.and_then(|e| e.seconds()),
        scope: raw.scope,
        username: raw.username,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_assertion_names_the_client_and_the_token_endpoint_and_is_fresh() {
        use tokenwarden_crypto::keypair::{KeyAlgorithm, SigningKey};
        let key = SigningKey::generate(KeyAlgorithm::Es256).expect("key");
        let decode = |jwt: &str, part: usize| -> serde_json::Value {
            let b = base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(jwt.split('.').nth(part).unwrap_or_default())
                .expect("base64url");
            serde_json::from_slice(&b).expect("json")
        };
        let a =
            client_assertion(&key, "my-client", "https://idp.example/token", 1_000).expect("sign");
        let b =
            client_assertion(&key, "my-client", "https://idp.example/token", 1_000).expect("sign");
        let (header, claims) = (decode(&a, 0), decode(&a, 1));
        assert_eq!(header["alg"], "ES256");
        assert_eq!(header["kid"], key.public_key().thumbprint());
        assert_eq!(claims["iss"], "my-client");
        assert_eq!(claims["sub"], "my-client");
        assert_eq!(claims["aud"], "https://idp.example/token");
        assert_eq!(claims["iat"], 1_000);
        assert_eq!(claims["exp"], 1_000 + CLIENT_ASSERTION_LIFETIME_SECS);
        // A new jti every time (RFC 7523 3: the server may refuse a replayed one).
        assert_ne!(claims["jti"], decode(&b, 1)["jti"]);
        assert!(claims["jti"].as_str().is_some_and(|j| j.len() >= 22));
    }

    #[test]
    fn r1_pkce_verifier_has_32_random_bytes_and_s256_challenge() {
        let a = Pkce::generate();
        let b = Pkce::generate();
        assert_ne!(a.verifier.expose_secret(), b.verifier.expose_secret());
        assert_eq!(a.verifier.expose_secret().len(), 43);
        // RFC 7636 appendix B.
        assert_eq!(
            challenge_for("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
        assert_eq!(new_state().len(), 43);
    }

    #[test]
    fn snowflake_code_exchange_response_parses() {
        let body = r#"{"access_token":"ver:1-hint:abc","refresh_token":"ver:2-hint:def","token_type":"Bearer","username":"USER","scope":"refresh_token session:role:PUBLIC","refresh_token_expires_in":86399,"idpInitiated":false,"expires_in":600}"#;
        let r = parse_token_response(200, body, None).unwrap();
        assert_eq!(r.access_token.expose_secret(), "ver:1-hint:abc");
        assert_eq!(r.refresh_token.unwrap().expose_secret(), "ver:2-hint:def");
        assert_eq!(
            (r.expires_in, r.refresh_token_expires_in),
            (Some(600), Some(86399))
        );
        assert_eq!(r.username.as_deref(), Some("USER"));
        let refresh = parse_token_response(200, r#"{"access_token":"ACCESS-SECRET","token_type":"Bearer","idpInitiated":false,"expires_in":600}"#, None).unwrap();
        assert!(refresh.refresh_token.is_none());
        assert!(!format!("{refresh:?}").contains("ACCESS-SECRET"));
    }

    #[test]
    fn errors_are_classified() {
        let e = parse_token_response(400, r#"{"data":null,"message":"This is an invalid client.","code":null,"success":false,"error":"invalid_client"}"#, None).unwrap_err();
        assert!(e.is_permanent());
        assert!(
            e.to_string().contains("invalid_client")
                && e.to_string().contains("This is an invalid client."),
            "{e}"
        );
        let e = parse_token_response(
            400,
            r#"{"error":"invalid_grant","error_description":"Unknown or invalid refresh token."}"#,
            None,
        )
        .unwrap_err();
        assert!(e.is_permanent());
        for (status, body) in [
            (503, "<html>down</html>"),
            (429, "{}"),
            (200, "not json"),
            (200, r#"{"token_type":"Bearer"}"#),
            (502, r#"{"error":"x"}"#),
        ] {
            let e = parse_token_response(status, body, Some("30")).unwrap_err();
            assert!(
                matches!(e, TokenError::Transient(_)),
                "{status} {body}: {e:?}"
            );
            assert!(!e.is_permanent());
        }
        let e = parse_token_response(401, "{}", None).unwrap_err();
        assert!(matches!(e, TokenError::Refused { .. }));
    }

    #[test]
    fn authorization_url_carries_every_parameter_encoded() {
        let p = crate::Catalog::built_in()
            .resolve(
                "snowflake",
                &[
                    ("account".to_owned(), "http://127.0.0.1:9300".to_owned()),
                    ("role".to_owned(), "ANALYST".to_owned()),
                ]
                .into(),
            )
            .unwrap();
        let url = authorization_url(
            &p,
            "kMo+B/=",
            "http://127.0.0.1:8420/oauth/callback",
            "st",
            Some("ch"),
        );
        assert_eq!(
            url,
            "http://127.0.0.1:9300/oauth/authorize?response_type=code&client_id=kMo%2BB%2F%3D&redirect_uri=http%3A%2F%2F127.0.0.1%3A8420%2Foauth%2Fcallback&state=st&scope=refresh_token%20session%3Arole%3AANALYST&code_challenge=ch&code_challenge_method=S256"
        );
    }
}
