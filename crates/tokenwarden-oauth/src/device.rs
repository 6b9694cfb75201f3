//! The device authorization grant (RFC 8628): asking the provider for a device code and a user
//! code, and what each poll of the token endpoint means for the next one. No storage and no
//! timers here: the core keeps the flow's state and decides when to poll, by [`PollSchedule`].
//!
//! Provider quirks handled here:
//! - GitHub answers `application/x-www-form-urlencoded` unless asked for JSON; the client always
//!   sends `Accept: application/json`, and a form-encoded answer is read too.
//! - Google names the field `verification_url` (RFC 8628 says `verification_uri`); both are read.
//! - GitHub answers its errors (`authorization_pending`, `slow_down`, ...) with HTTP 200 and an
//!   `error` field; RFC 8628 servers answer HTTP 400. Both are read by the `error` field.

use crate::catalog::ResolvedProvider;
use crate::client::{
    BodyError, ClientCredentials, MAX_TOKEN_RESPONSE, OAuthClient, TokenError, TokenResponse,
    describe_reqwest, read_capped,
};
use secrecy::SecretString;
use serde::Deserialize;
use std::fmt;

/// RFC 8628 section 3.4's `grant_type`.
pub const GRANT_TYPE: &str = "urn:ietf:params:oauth:grant-type:device_code";
/// RFC 8628 section 3.2: the interval to use when the provider names none.
pub const DEFAULT_INTERVAL_SECS: u64 = 5;
/// RFC 8628 section 3.5: `slow_down` adds 5 seconds to the interval, for this and every later
/// poll.
pub const SLOW_DOWN_STEP_SECS: u64 = 5;
/// The longest interval accepted from a provider (or reached by `slow_down`s).
pub const MAX_INTERVAL_SECS: u64 = 300;
/// The longest lifetime accepted for a device code: providers give 15 minutes (Microsoft,
/// GitHub) to 30 minutes; a flow is never polled for longer than this.
pub const MAX_EXPIRES_IN_SECS: u64 = 3600;
/// Used when the provider's answer has no `expires_in` (it is required; 15 minutes is what
/// Microsoft and GitHub give).
pub const DEFAULT_EXPIRES_IN_SECS: u64 = 900;

/// What the device authorization endpoint answered. `Debug` hides the device code.
pub struct DeviceAuthorization {
    /// The secret the token endpoint is polled with: sealed if stored, never shown or logged.
    pub device_code: SecretString,
    /// What the person types at `verification_uri`.
    pub user_code: String,
    pub verification_uri: String,
    /// The same page with the code filled in, when the provider gives one.
    pub verification_uri_complete: Option<String>,
    /// Seconds the codes stay valid (capped at [`MAX_EXPIRES_IN_SECS`]).
    pub expires_in: u64,
    /// Seconds between polls (at least 1, capped at [`MAX_INTERVAL_SECS`]).
    pub interval: u64,
}

impl fmt::Debug for DeviceAuthorization {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DeviceAuthorization")
            .field("device_code", &"[redacted]")
            .field("user_code", &self.user_code)
            .field("verification_uri", &self.verification_uri)
            .field("verification_uri_complete", &self.verification_uri_complete)
            .field("expires_in", &self.expires_in)
            .field("interval", &self.interval)
            .finish()
    }
}

#[derive(Deserialize)]
struct RawDeviceAuthorization {
    device_code: Option<String>,
    user_code: Option<String>,
    #[serde(alias = "verification_url")]
    verification_uri: Option<String>,
    verification_uri_complete: Option<String>,
    expires_in: Option<serde_json::Value>,
    interval: Option<serde_json::Value>,
    error: Option<String>,
    error_description: Option<String>,
}

fn seconds(v: Option<&serde_json::Value>) -> Option<u64> {
    match v? {
        serde_json::Value::Number(n) => n.as_u64(),
        serde_json::Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// Reads a body as JSON, else as a form (GitHub without `Accept: application/json`).
fn json_or_form(body: &str) -> Option<serde_json::Value> {
    if let Ok(v) = serde_json::from_str::<serde_json::Value>(body) {
        return v.is_object().then_some(v);
    }
    let trimmed = body.trim();
    if trimmed.is_empty() || trimmed.starts_with('<') || !trimmed.contains('=') {
        return None;
    }
    let mut map = serde_json::Map::new();
    for pair in trimmed.split('&') {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        map.insert(form_decode(k), serde_json::Value::String(form_decode(v)));
    }
    Some(serde_json::Value::Object(map))
}

fn form_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                match std::str::from_utf8(&bytes[i + 1..i + 3])
                    .ok()
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                {
                    Some(b) => {
                        out.push(b);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Reads the device authorization endpoint's answer. Public for the tests.
pub fn parse_device_authorization(
    status: u16,
    body: &str,
) -> Result<DeviceAuthorization, TokenError> {
    if status == 429 || status >= 500 {
        return Err(TokenError::Transient(format!(
            "the device authorization endpoint answered HTTP {status}"
        )));
    }
    let Some(value) = json_or_form(body) else {
        return Err(TokenError::Transient(format!(
            "the device authorization endpoint answered HTTP {status} with a body that is neither JSON nor a form"
        )));
    };
    let raw: RawDeviceAuthorization = serde_json::from_value(value).map_err(|_| {
        TokenError::Transient(format!(
            "the device authorization endpoint answered HTTP {status} with fields of the wrong type"
        ))
    })?;
    if let Some(error) = raw.error.filter(|e| !e.is_empty()) {
        return Err(TokenError::Refused {
            status,
            error,
            description: raw.error_description,
            message: None,
        });
    }
    if !(200..300).contains(&status) {
        return Err(TokenError::Refused {
            status,
            error: format!("http_{status}"),
            description: raw.error_description,
            message: None,
        });
    }
    let missing = |what: &str| {
        TokenError::Transient(format!(
            "the device authorization endpoint answered without {what}"
        ))
    };
    let device_code = raw
        .device_code
        .filter(|c| !c.is_empty())
        .ok_or_else(|| missing("a device_code"))?;
    let user_code = raw
        .user_code
        .filter(|c| !c.is_empty() && c.len() <= 64)
        .ok_or_else(|| missing("a user_code"))?;
    let verification_uri = raw
        .verification_uri
        .filter(|u| u.starts_with("https://") || u.starts_with("http://"))
        .ok_or_else(|| missing("an http(s) verification_uri"))?;
    let verification_uri_complete = raw
        .verification_uri_complete
        .filter(|u| u.starts_with("https://") || u.starts_with("http://"));
    Ok(DeviceAuthorization {
        device_code: device_code.into(),
        user_code,
        verification_uri,
        verification_uri_complete,
        expires_in: seconds(raw.expires_in.as_ref())
            .unwrap_or(DEFAULT_EXPIRES_IN_SECS)
            .clamp(1, MAX_EXPIRES_IN_SECS),
        interval: seconds(raw.interval.as_ref())
            .unwrap_or(DEFAULT_INTERVAL_SECS)
            .clamp(1, MAX_INTERVAL_SECS),
    })
}

impl OAuthClient {
    /// RFC 8628 section 3.1: asks the provider for a device code and a user code, with the
    /// provider's scopes. The client authenticates as it does at the token endpoint (no secret:
    /// a public client, its `client_id` in the form).
    pub async fn device_authorization(
        &self,
        p: &ResolvedProvider,
        creds: &ClientCredentials<'_>,
    ) -> Result<DeviceAuthorization, TokenError> {
        let Some(url) = p.device_authorization_url.as_deref() else {
            return Err(TokenError::Refused {
                status: 0,
                error: "unsupported_grant_type".into(),
                description: Some(format!(
                    "provider {} has no device authorization endpoint",
                    p.id
                )),
                message: None,
            });
        };
        let mut form: Vec<(&str, String)> = Vec::new();
        if !p.scopes.is_empty() {
            form.push(("scope", p.scopes.clone()));
        }
        let res = self
            .post_form(
                url,
                p.client_auth,
                creds.client_id,
                creds.secrets.first(),
                form,
            )
            .await
            .map_err(|e| TokenError::Transient(describe_reqwest(&e, url)))?;
        let status = res.status().as_u16();
        let body = read_capped(res, MAX_TOKEN_RESPONSE)
            .await
            .map_err(|e: BodyError| {
                TokenError::Transient(e.describe("the device authorization endpoint"))
            })?;
        parse_device_authorization(status, &String::from_utf8_lossy(&body))
    }
}

/// What one poll of the token endpoint means (RFC 8628 section 3.5).
#[derive(Debug)]
pub enum PollAnswer {
    /// The person approved: the tokens.
    Tokens(TokenResponse),
    /// `authorization_pending`: not yet; poll again after the interval.
    Pending,
    /// `slow_down`: poll again after the interval plus 5 seconds, from now on.
    SlowDown,
    /// `access_denied`: the person refused.
    Denied(String),
    /// `expired_token`: the codes expired before the person approved.
    Expired(String),
    /// Any other refusal (`invalid_client`, `invalid_grant`, ...): the flow cannot succeed.
    Failed(String),
    /// Network trouble, 5xx, 429: poll again after the interval.
    Transient(String),
}

impl PollAnswer {
    pub fn from_result(result: Result<TokenResponse, TokenError>) -> Self {
        let e = match result {
            Ok(tokens) => return PollAnswer::Tokens(tokens),
            Err(TokenError::Transient(m)) => return PollAnswer::Transient(m),
            Err(e) => e,
        };
        let error = match &e {
            TokenError::Refused { error, .. } => error.as_str(),
            TokenError::Transient(_) => "",
        };
        match error {
            "authorization_pending" => PollAnswer::Pending,
            "slow_down" => PollAnswer::SlowDown,
            "access_denied" => PollAnswer::Denied(e.to_string()),
            "expired_token" => PollAnswer::Expired(e.to_string()),
            _ => PollAnswer::Failed(e.to_string()),
        }
    }
}

/// When a flow is polled next, and when it stops: the one place RFC 8628's timing rules live.
/// Instants are seconds on any clock (the core passes its injected clock's epoch seconds), so
/// a test can run a whole flow without waiting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PollSchedule {
    /// Seconds between polls, grown by `slow_down`.
    pub interval: u64,
    /// When the device code expires: no poll at or after it.
    pub expires_at: i64,
}

/// What to do after a poll's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Poll again at this instant.
    PollAt(i64),
    /// Stop: the flow ended (approved, denied, expired or failed) or the code expires before
    /// the next poll would be allowed.
    Stop,
}

impl PollSchedule {
    pub fn new(now: i64, auth: &DeviceAuthorization) -> Self {
        Self {
            interval: auth.interval,
            expires_at: now.saturating_add(i64::try_from(auth.expires_in).unwrap_or(i64::MAX)),
        }
    }

    /// The first poll: one interval after the codes were issued.
    pub fn first_poll(&self, now: i64) -> Next {
        self.at(now)
    }

    /// Applies a poll's answer (received at `now`): `slow_down` grows the interval by 5 s for
    /// good; pending and transient trouble wait one interval; anything else stops.
    pub fn after(&mut self, answer: &PollAnswer, now: i64) -> Next {
        match answer {
            PollAnswer::SlowDown => {
                self.interval = (self.interval + SLOW_DOWN_STEP_SECS).min(MAX_INTERVAL_SECS);
                self.at(now)
            }
            PollAnswer::Pending | PollAnswer::Transient(_) => self.at(now),
            PollAnswer::Tokens(_)
            | PollAnswer::Denied(_)
            | PollAnswer::Expired(_)
            | PollAnswer::Failed(_) => Next::Stop,
        }
    }

    fn at(&self, now: i64) -> Next {
        let next = now.saturating_add(i64::try_from(self.interval).unwrap_or(i64::MAX));
        if next >= self.expires_at {
            Next::Stop
        } else {
            Next::PollAt(next)
        }
    }

    /// Whether the code has expired at `now`.
    pub fn expired(&self, now: i64) -> bool {
        now >= self.expires_at
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;

    fn auth(interval: u64, expires_in: u64) -> DeviceAuthorization {
        DeviceAuthorization {
            device_code: "dc".to_owned().into(),
            user_code: "ABCD-EFGH".into(),
            verification_uri: "https://example.com/device".into(),
            verification_uri_complete: None,
            expires_in,
            interval,
        }
    }

    fn refused(error: &str) -> Result<TokenResponse, TokenError> {
        Err(TokenError::Refused {
            status: 400,
            error: error.into(),
            description: Some("said the provider".into()),
            message: None,
        })
    }

    #[test]
    fn rfc8628_answers_of_microsoft_github_google_and_a_form_parse() {
        // Microsoft (learn.microsoft.com v2-oauth2-device-code): JSON, verification_uri.
        let ms = parse_device_authorization(200, r#"{"user_code":"FGHJ-KLMN","device_code":"DAQABAAEAAAD","verification_uri":"https://microsoft.com/devicelogin","expires_in":"900","interval":"5","message":"To sign in, use a web browser"}"#).unwrap();
        assert_eq!(ms.user_code, "FGHJ-KLMN");
        assert_eq!(ms.device_code.expose_secret(), "DAQABAAEAAAD");
        assert_eq!((ms.expires_in, ms.interval), (900, 5));
        // Google names it verification_url.
        let g = parse_device_authorization(200, r#"{"device_code":"4/4-GMMhm","user_code":"GQVQ-JKEC","verification_url":"https://www.google.com/device","expires_in":1800,"interval":5}"#).unwrap();
        assert_eq!(g.verification_uri, "https://www.google.com/device");
        assert_eq!(g.expires_in, 1800);
        // GitHub without Accept: application/json answers a form.
        let gh = parse_device_authorization(200, "device_code=3584d83530557fdd1f46af8289938c8ef79f9dc5&expires_in=900&interval=5&user_code=WDJB-MJHT&verification_uri=https%3A%2F%2Fgithub.com%2Flogin%2Fdevice").unwrap();
        assert_eq!(gh.verification_uri, "https://github.com/login/device");
        assert_eq!(gh.user_code, "WDJB-MJHT");
        // RFC 8628's example, with verification_uri_complete; no interval means 5 s.
        let rfc = parse_device_authorization(200, r#"{"device_code":"GmRhmhcxhwAzkoEqiMEg_DnyEysNkuNhszIySk9eS","user_code":"WDJB-MJHT","verification_uri":"https://example.com/device","verification_uri_complete":"https://example.com/device?user_code=WDJB-MJHT","expires_in":1800}"#).unwrap();
        assert_eq!(rfc.interval, DEFAULT_INTERVAL_SECS);
        assert_eq!(
            rfc.verification_uri_complete.as_deref(),
            Some("https://example.com/device?user_code=WDJB-MJHT")
        );
        assert!(
            !format!("{rfc:?}").contains("GmRhmhcx"),
            "Debug hides the device code"
        );
        // Absurd values are capped.
        let capped = parse_device_authorization(200, r#"{"device_code":"d","user_code":"u","verification_uri":"https://x/d","expires_in":99999999,"interval":0}"#).unwrap();
        assert_eq!(
            (capped.expires_in, capped.interval),
            (MAX_EXPIRES_IN_SECS, 1)
        );
    }

    #[test]
    fn device_authorization_errors_are_classified() {
        let e = parse_device_authorization(
            400,
            r#"{"error":"invalid_client","error_description":"no such client"}"#,
        )
        .unwrap_err();
        assert!(
            e.is_permanent() && e.to_string().contains("no such client"),
            "{e}"
        );
        // GitHub: HTTP 200 with an error, form-encoded.
        let e = parse_device_authorization(
            200,
            "error=device_flow_disabled&error_description=Device+Flow+must+be+explicitly+enabled",
        )
        .unwrap_err();
        assert!(
            e.to_string().contains("device_flow_disabled")
                && e.to_string()
                    .contains("Device Flow must be explicitly enabled"),
            "{e}"
        );
        for (status, body) in [
            (503, "down"),
            (200, "<html>"),
            (200, r#"{"device_code":"d"}"#),
            (
                200,
                r#"{"device_code":"d","user_code":"u","verification_uri":"javascript:alert(1)"}"#,
            ),
        ] {
            assert!(
                matches!(
                    parse_device_authorization(status, body),
                    Err(TokenError::Transient(_))
                ),
                "{status} {body}"
            );
        }
    }

    #[test]
    fn poll_answers_are_told_apart() {
        assert!(matches!(
            PollAnswer::from_result(refused("authorization_pending")),
            PollAnswer::Pending
        ));
        assert!(matches!(
            PollAnswer::from_result(refused("slow_down")),
            PollAnswer::SlowDown
        ));
        assert!(matches!(
            PollAnswer::from_result(refused("access_denied")),
            PollAnswer::Denied(m) if m.contains("said the provider")
        ));
        assert!(matches!(
            PollAnswer::from_result(refused("expired_token")),
            PollAnswer::Expired(_)
        ));
        assert!(matches!(
            PollAnswer::from_result(refused("invalid_client")),
            PollAnswer::Failed(_)
        ));
        assert!(matches!(
            PollAnswer::from_result(Err(TokenError::Transient("x".into()))),
            PollAnswer::Transient(_)
        ));
        // GitHub's HTTP 200 with an error field is the same refusal.
        let gh = crate::client::parse_token_response(
            200,
            r#"{"error":"slow_down","error_description":"Too many requests","interval":10}"#,
            None,
        );
        assert!(matches!(PollAnswer::from_result(gh), PollAnswer::SlowDown));
    }

    /// The poll loop against a scripted provider on a fake clock: the times of the polls show
    /// the interval, `slow_down`'s lasting +5 s, and the stop at expiry.
    #[test]
    fn rfc8628_poll_loop_honours_interval_slow_down_and_expiry() {
        fn run(script: &[&str], interval: u64, expires_in: u64) -> (Vec<i64>, &'static str) {
            let start = 1_000;
            let mut schedule = PollSchedule::new(start, &auth(interval, expires_in));
            let mut polls = Vec::new();
            let mut next = schedule.first_poll(start);
            let mut answers = script.iter();
            loop {
                let Next::PollAt(now) = next else {
                    return (polls, "stopped at expiry");
                };
                polls.push(now - start);
                let answer = match answers.next() {
                    Some(&"tokens") => {
                        PollAnswer::from_result(crate::client::parse_token_response(
                            200,
                            r#"{"access_token":"a","token_type":"Bearer"}"#,
                            None,
                        ))
                    }
                    Some(e) => PollAnswer::from_result(refused(e)),
                    None => PollAnswer::Pending,
                };
                let outcome = match &answer {
                    PollAnswer::Tokens(_) => "tokens",
                    PollAnswer::Denied(_) => "denied",
                    PollAnswer::Expired(_) => "expired",
                    PollAnswer::Failed(_) => "failed",
                    _ => "",
                };
                next = schedule.after(&answer, now);
                if next == Next::Stop && !outcome.is_empty() {
                    return (polls, outcome);
                }
            }
        }
        // Pending waits one interval; each slow_down adds 5 s for good (5, then 10, then 15).
        assert_eq!(
            run(
                &[
                    "authorization_pending",
                    "slow_down",
                    "authorization_pending",
                    "slow_down",
                    "tokens"
                ],
                5,
                900
            ),
            (vec![5, 10, 20, 30, 45], "tokens")
        );
        assert_eq!(
            run(&["authorization_pending", "access_denied"], 5, 900),
            (vec![5, 10], "denied")
        );
        assert_eq!(run(&["expired_token"], 7, 900), (vec![7], "expired"));
        assert_eq!(run(&["invalid_client"], 5, 900), (vec![5], "failed"));
        // Never answered: polled every 5 s, never at or after the expiry (22 s).
        assert_eq!(run(&[], 5, 22), (vec![5, 10, 15, 20], "stopped at expiry"));
    }
}
