//! Shared helpers: a started emulator, an integration, PKCE, token requests.

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde_json::Value;
use sha2::{Digest, Sha256};
use snowflake_emulator::{
    AuthorizeOutcome, ClientCredentials, Emulator, EmulatorConfig, RunningEmulator,
    sign_in_and_consent,
};

pub const REDIRECT: &str = "http://127.0.0.1:9/oauth/callback";
pub const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk-long-enough-verifier";

pub struct Env {
    pub running: RunningEmulator,
    pub http: reqwest::Client,
}

impl Env {
    pub async fn start() -> Env {
        Env::start_with(EmulatorConfig::default_for_tests()).await
    }

    pub async fn start_with(config: EmulatorConfig) -> Env {
        let running = Emulator::start(config, "127.0.0.1:0")
            .await
            .expect("start emulator");
        // The workspace builds reqwest with rustls but no crypto provider (tokenwarden installs
        // ring's); a test client needs one too when the whole workspace is built together.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("client");
        Env { running, http }
    }

    pub fn emu(&self) -> &Emulator {
        &self.running.emulator
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.running.base_url())
    }

    /// Creates integration `name` as ADMIN with `extra` parameters and returns its credentials.
    pub fn create_integration(&self, name: &str, extra: &str) -> ClientCredentials {
        let sql = format!(
            "CREATE SECURITY INTEGRATION {name} TYPE = OAUTH OAUTH_CLIENT = CUSTOM \
             OAUTH_CLIENT_TYPE = 'CONFIDENTIAL' OAUTH_REDIRECT_URI = '{REDIRECT}' \
             OAUTH_ALLOW_NON_TLS_REDIRECT_URI = TRUE ENABLED = TRUE OAUTH_ISSUE_REFRESH_TOKENS = TRUE {extra}"
        );
        let out = self.emu().run_sql_as("ADMIN", &sql);
        assert!(out.is_ok(), "{out:?}");
        self.emu().client_credentials(name).expect("credentials")
    }

    pub fn authorize_url(&self, client_id: &str, scope: &str, extra: &[(&str, &str)]) -> String {
        let mut ser = form_urlencoded::Serializer::new(String::new());
        ser.append_pair("client_id", client_id)
            .append_pair("response_type", "code")
            .append_pair("redirect_uri", REDIRECT)
            .append_pair("state", "st-123")
            .append_pair("scope", scope);
        for (k, v) in extra {
            ser.append_pair(k, v);
        }
        self.url(&format!("/oauth/authorize?{}", ser.finish()))
    }

    /// Authorize with PKCE (S256 of [`VERIFIER`]), sign in, allow; returns the code.
    pub async fn code_for(
        &self,
        creds: &ClientCredentials,
        user: &str,
        password: &str,
        scope: &str,
    ) -> String {
        let url = self.authorize_url(&creds.client_id, scope, &pkce_params());
        let redirect = sign_in_and_consent(&self.http, &url, user, password)
            .await
            .expect("flow");
        assert!(redirect.starts_with(REDIRECT), "{redirect}");
        let outcome = AuthorizeOutcome::parse(&redirect);
        assert_eq!(outcome.state.as_deref(), Some("st-123"));
        outcome
            .code
            .unwrap_or_else(|| panic!("no code in {redirect}"))
    }

    /// POST /oauth/token-request with documented (URL-encoded) Basic client auth.
    pub async fn token(&self, creds: &ClientCredentials, fields: &[(&str, &str)]) -> (u16, Value) {
        self.token_with_auth(
            Some(basic_encoded(&creds.client_id, &creds.client_secret)),
            fields,
        )
        .await
    }

    pub async fn token_with_auth(
        &self,
        authorization: Option<String>,
        fields: &[(&str, &str)],
    ) -> (u16, Value) {
        let mut req = self
            .http
            .post(self.url("/oauth/token-request"))
            .form(fields);
        if let Some(a) = authorization {
            req = req.header("Authorization", a);
        }
        let resp = req.send().await.expect("token request");
        let status = resp.status().as_u16();
        let text = resp.text().await.expect("body");
        let json = serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text}"));
        (status, json)
    }

    /// Code flow with refresh_token scope for ALICE; returns the code-exchange JSON.
    pub async fn tokens_for_alice(
        &self,
        creds: &ClientCredentials,
        extra: &[(&str, &str)],
    ) -> Value {
        let code = self
            .code_for(
                creds,
                "alice",
                "alice-pass",
                "refresh_token session:role:ANALYST",
            )
            .await;
        let mut fields = vec![
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", REDIRECT),
            ("code_verifier", VERIFIER),
        ];
        fields.extend_from_slice(extra);
        let (status, body) = self.token(creds, &fields).await;
        assert_eq!(status, 200, "{body}");
        body
    }

    /// POST /api/v2/statements with an OAuth bearer token.
    pub async fn sql_api(&self, access_token: &str, statement: &str) -> (u16, Value) {
        let resp = self
            .http
            .post(self.url("/api/v2/statements"))
            .bearer_auth(access_token)
            .header("X-Snowflake-Authorization-Token-Type", "OAUTH")
            .json(&serde_json::json!({"statement": statement, "timeout": 60}))
            .send()
            .await
            .expect("sql api");
        let status = resp.status().as_u16();
        (status, resp.json().await.expect("json"))
    }
}

pub fn pkce_params() -> Vec<(&'static str, &'static str)> {
    let challenge: &'static str = Box::leak(challenge(VERIFIER).into_boxed_str());
    vec![
        ("code_challenge", challenge),
        ("code_challenge_method", "S256"),
    ]
}

pub fn challenge(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

pub fn pct(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// `Basic base64(urlencode(id):urlencode(secret))`: the documented form.
pub fn basic_encoded(id: &str, secret: &str) -> String {
    format!(
        "Basic {}",
        STANDARD.encode(format!("{}:{}", pct(id), pct(secret)))
    )
}

/// `Basic base64(id:secret)`: what the Python connector sends.
pub fn basic_raw(id: &str, secret: &str) -> String {
    format!("Basic {}", STANDARD.encode(format!("{id}:{secret}")))
}

pub fn str_of<'a>(v: &'a Value, key: &str) -> &'a str {
    v[key]
        .as_str()
        .unwrap_or_else(|| panic!("no string {key} in {v}"))
}
