//! Webhooks signed the [Standard Webhooks](https://www.standardwebhooks.com/) way.

use std::fmt::Write as _;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use hmac::{KeyInit as _, Mac};
use secrecy::zeroize::Zeroizing;
use secrecy::{ExposeSecret, SecretString};

use crate::{DeliveryOutcome, Event, NotifyError};

type HmacSha256 = hmac::Hmac<sha2::Sha256>;

/// The prefix of a webhook signing secret.
const SECRET_PREFIX: &str = "whsec_";
/// Random bytes in a new signing secret.
const SECRET_BYTES: usize = 32;
/// The longest webhook URL accepted, in bytes.
pub const MAX_WEBHOOK_URL_LEN: usize = 2048;
/// How much of a refusing receiver's response body goes into the outcome's reason.
const BODY_SNIPPET: usize = 200;
/// The longest connect phase, whatever the overall timeout.
const MAX_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Standard base64, accepting input with or without `=` padding.
const BASE64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Where to send webhooks, and the secret to sign them with.
#[derive(Debug, Clone)]
pub struct WebhookTarget {
    /// An `http` or `https` URL that passes [`check_webhook_url`].
    pub url: String,
    /// `whsec_` + base64 of the key (see [`new_webhook_secret`]). Its `Debug` is redacted.
    pub secret: SecretString,
}

/// A new signing secret: `whsec_` + base64 of 32 random bytes from the OS.
///
/// # Panics
///
/// If the operating system's random number generator fails.
pub fn new_webhook_secret() -> SecretString {
    let mut key = Zeroizing::new([0u8; SECRET_BYTES]);
    if let Err(e) = getrandom::fill(key.as_mut()) {
        panic!("the operating system's random number generator failed: {e}");
    }
    let mut secret = String::with_capacity(SECRET_PREFIX.len() + 44);
    secret.push_str(SECRET_PREFIX);
    base64::engine::general_purpose::STANDARD.encode_string(key.as_ref(), &mut secret);
    SecretString::from(secret)
}

/// The HMAC key of a secret: base64-decoded after the optional `whsec_` prefix.
fn signing_key(secret: &SecretString) -> Result<HmacSha256, NotifyError> {
    let text = secret.expose_secret().trim();
    let encoded = text.strip_prefix(SECRET_PREFIX).unwrap_or(text);
    let key = Zeroizing::new(
        BASE64
            .decode(encoded)
            .map_err(|_| NotifyError::InvalidSecret)?,
    );
    if key.is_empty() {
        return Err(NotifyError::InvalidSecret);
    }
    HmacSha256::new_from_slice(&key).map_err(|_| NotifyError::InvalidSecret)
}

fn mac_of(
    secret: &SecretString,
    id: &str,
    timestamp: &str,
    body: &[u8],
) -> Result<HmacSha256, NotifyError> {
    let mut mac = signing_key(secret)?;
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(body);
    Ok(mac)
}

/// The `webhook-signature` header value: `v1,` + base64(HMAC-SHA256(key, "{id}.{timestamp}.{body}")),
/// where the key is the base64-decoded part of `secret` after `whsec_`.
///
/// # Errors
///
/// [`NotifyError::InvalidSecret`] if the secret is not base64 of a non-empty key.
pub fn sign(
    secret: &SecretString,
    id: &str,
    timestamp: i64,
    body: &[u8],
) -> Result<String, NotifyError> {
    let mac = mac_of(secret, id, &timestamp.to_string(), body)?;
    let mut out = String::from("v1,");
    base64::engine::general_purpose::STANDARD.encode_string(mac.finalize().into_bytes(), &mut out);
    Ok(out)
}

/// Verifies a webhook as a receiver would: `headers` are the values of `webhook-id`,
/// `webhook-timestamp` and `webhook-signature`, `body` the raw request body.
///
/// The timestamp must be within `tolerance_secs` of `now_unix` (either way; 300 s is usual),
/// and one of the space-separated signatures in `webhook-signature` must be a matching `v1,...`
/// (other versions are ignored; several are sent while a secret is being rotated). The
/// comparison is in constant time.
///
/// # Errors
///
/// [`NotifyError::InvalidHeader`], [`NotifyError::TimestampOutOfTolerance`],
/// [`NotifyError::SignatureMismatch`] or [`NotifyError::InvalidSecret`].
pub fn verify(
    secret: &SecretString,
    headers: (&str, &str, &str),
    body: &[u8],
    now_unix: i64,
    tolerance_secs: i64,
) -> Result<(), NotifyError> {
    let (id, timestamp, signatures) = headers;
    if id.is_empty() {
        return Err(NotifyError::InvalidHeader("webhook-id"));
    }
    let ts: i64 = timestamp
        .parse()
        .map_err(|_| NotifyError::InvalidHeader("webhook-timestamp"))?;
    if now_unix.abs_diff(ts) > tolerance_secs.max(0).unsigned_abs() {
        return Err(NotifyError::TimestampOutOfTolerance);
    }
    if signatures.trim().is_empty() {
        return Err(NotifyError::InvalidHeader("webhook-signature"));
    }
    let mac = mac_of(secret, id, timestamp, body)?;
    let matched = signatures
        .split_whitespace()
        .filter_map(|s| s.strip_prefix("v1,"))
        .filter_map(|s| BASE64.decode(s).ok())
        .any(|sig| mac.clone().verify_slice(&sig).is_ok());
    if matched {
        Ok(())
    } else {
        Err(NotifyError::SignatureMismatch)
    }
}

/// The JSON body of the webhook for `event`:
///
/// ```json
/// {
///   "type": "token.expiring",
///   "timestamp": "2025-03-01T09:00:00.000Z",
///   "data": {
///     "summary": "The refresh token of token \"snowflake-prod\" expires in 7 days.",
///     "token": {"id": "...", "name": "snowflake-prod", "provider": "snowflake", ...},
///     "refresh_token_expires_at": "2025-03-08T09:00:00.000Z",
///     "lead": "7d"
///   }
/// }
/// ```
///
/// `type` is [`Event::kind`], `timestamp` is [`Event::at`] (RFC 3339, UTC) and `data` holds the
/// fields of [`Event::data`] plus `summary` (if `Event::data` is not a JSON object, it goes
/// under `data.details`). The event id is the `webhook-id` header.
pub fn webhook_body(event: &Event) -> Vec<u8> {
    let mut data = match &event.data {
        serde_json::Value::Object(map) => map.clone(),
        serde_json::Value::Null => serde_json::Map::new(),
        other => {
            let mut map = serde_json::Map::new();
            map.insert("details".into(), other.clone());
            map
        }
    };
    data.insert("summary".into(), event.summary.clone().into());
    let body = serde_json::json!({
        "type": event.kind,
        "timestamp": event.at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        "data": data,
    });
    // Serializing a `Value` cannot fail.
    serde_json::to_vec(&body).unwrap_or_default()
}

/// Checks a webhook URL: at most [`MAX_WEBHOOK_URL_LEN`] bytes, no whitespace or control
/// characters, an absolute `http` or `https` URL with a host, no credentials (`user:pass@`:
/// receivers authenticate tokenwarden by the signature), no fragment.
///
/// Plain `http` and private or loopback addresses are allowed: tokenwarden is self-hosted and
/// receivers often sit next to it.
///
/// # Errors
///
/// [`NotifyError::InvalidUrl`] saying which rule is broken (the URL itself is not repeated,
/// since its query may hold a token).
pub fn check_webhook_url(url: &str) -> Result<(), NotifyError> {
    let bad = |why: &str| Err(NotifyError::InvalidUrl(why.to_owned()));
    if url.is_empty() {
        return bad("it is empty");
    }
    if url.len() > MAX_WEBHOOK_URL_LEN {
        return Err(NotifyError::InvalidUrl(format!(
            "it is longer than {MAX_WEBHOOK_URL_LEN} bytes"
        )));
    }
    if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return bad("it contains whitespace or control characters");
    }
    let Ok(parsed) = reqwest::Url::parse(url) else {
        return bad("it is not an absolute URL");
    };
    if !matches!(parsed.scheme(), "http" | "https") {
        return bad("the scheme must be http or https");
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return bad("it has no host");
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return bad(
            "it must not contain credentials (user:password@); receivers check the signature",
        );
    }
    if parsed.fragment().is_some() {
        return bad("it must not contain a fragment (#...)");
    }
    Ok(())
}

/// Sends webhooks: an HTTP client with a timeout for the whole request that follows no
/// redirects.
#[derive(Debug, Clone)]
pub struct Webhooks {
    http: reqwest::Client,
    timeout: Duration,
}

impl Webhooks {
    /// A client whose every delivery takes at most `timeout` (10 s is a good value), from
    /// connecting to reading the response; connecting alone at most 10 s.
    ///
    /// Installs rustls' ring crypto provider as the process default if there is none yet.
    ///
    /// # Panics
    ///
    /// If the TLS backend cannot be initialised.
    pub fn new(timeout: Duration) -> Self {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(MAX_CONNECT_TIMEOUT))
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("tokenwarden-webhooks/", env!("CARGO_PKG_VERSION")))
            .build()
            .unwrap_or_else(|e| panic!("building the webhook HTTP client failed: {e}"));
        Self { http, timeout }
    }

    /// POSTs `event` to `target`, signed with `target.secret` at `now_unix`, and says what came
    /// of it. Never takes longer than the timeout given to [`Webhooks::new`].
    ///
    /// Headers: `content-type: application/json`, `webhook-id` ([`Event::id`], the same on
    /// every retry), `webhook-timestamp` (`now_unix`), `webhook-signature` ([`sign`]). Body:
    /// [`webhook_body`].
    pub async fn deliver(
        &self,
        target: &WebhookTarget,
        event: &Event,
        now_unix: i64,
    ) -> DeliveryOutcome {
        let outcome = self.try_deliver(target, event, now_unix).await;
        tracing::debug!(event_id = %event.id, kind = %event.kind, ?outcome, "webhook delivery");
        outcome
    }

    async fn try_deliver(
        &self,
        target: &WebhookTarget,
        event: &Event,
        now_unix: i64,
    ) -> DeliveryOutcome {
        if let Err(e) = check_webhook_url(&target.url) {
            return failed(e.to_string(), None);
        }
        let body = webhook_body(event);
        let signature = match sign(&target.secret, &event.id, now_unix, &body) {
            Ok(s) => s,
            Err(e) => return failed(e.to_string(), None),
        };
        let sent = self
            .http
            .post(&target.url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header("webhook-id", &event.id)
            .header("webhook-timestamp", now_unix.to_string())
            .header("webhook-signature", signature)
            .body(body)
            .send()
            .await;
        match sent {
            Ok(response) => outcome_of_response(response).await,
            Err(e) => self.outcome_of_error(&e),
        }
    }

    fn outcome_of_error(&self, e: &reqwest::Error) -> DeliveryOutcome {
        if e.is_builder() {
            return failed(format!("invalid request: {}", error_chain(e)), None);
        }
        let reason = if e.is_timeout() {
            format!("timed out after {:?}", self.timeout)
        } else if e.is_connect() {
            format!("could not connect: {}", error_chain(e))
        } else {
            format!("request failed: {}", error_chain(e))
        };
        DeliveryOutcome::Retry {
            reason,
            status: None,
        }
    }
}

async fn outcome_of_response(mut response: reqwest::Response) -> DeliveryOutcome {
    let status = response.status();
    let code = status.as_u16();
    if status.is_success() {
        return DeliveryOutcome::Delivered { status: code };
    }
    let mut reason = format!(
        "HTTP {code} {}",
        status.canonical_reason().unwrap_or("(unknown status)")
    );
    if let Some(after) = response
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
    {
        let _ = write!(reason, " (Retry-After: {})", printable(after, 64));
    }
    if status.is_redirection() {
        reason.push_str(": redirects are not followed; configure the final URL");
    } else if let Some(snippet) = body_snippet(&mut response).await {
        let _ = write!(reason, ": {snippet}");
    }
    let retry = status.is_server_error()
        || status == reqwest::StatusCode::TOO_MANY_REQUESTS
        || status == reqwest::StatusCode::REQUEST_TIMEOUT;
    if retry {
        DeliveryOutcome::Retry {
            reason,
            status: Some(code),
        }
    } else {
        failed(reason, Some(code))
    }
}

/// The start of the response body, for the delivery log; `None` if empty or unreadable.
async fn body_snippet(response: &mut reqwest::Response) -> Option<String> {
    let mut bytes = Vec::new();
    while bytes.len() < BODY_SNIPPET {
        match response.chunk().await {
            Ok(Some(chunk)) => bytes.extend_from_slice(&chunk),
            Ok(None) | Err(_) => break,
        }
    }
    let text = printable(&String::from_utf8_lossy(&bytes), BODY_SNIPPET);
    (!text.is_empty()).then_some(text)
}

/// `s` on one line, control characters replaced, cut to `max` characters.
fn printable(s: &str, max: usize) -> String {
    let mut out: String = s
        .trim()
        .chars()
        .take(max)
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if s.trim().chars().count() > max {
        out.push('…');
    }
    out
}

/// The error and its sources, without the URL.
fn error_chain(e: &reqwest::Error) -> String {
    let mut out = String::new();
    let mut current: Option<&dyn std::error::Error> = Some(e);
    let mut first = true;
    while let Some(err) = current {
        let text = if first {
            // reqwest's own message would name the URL.
            match e.url() {
                // "error sending request for url (URL)": the channel's URL, not shown.
                Some(url) => err
                    .to_string()
                    .replace(&format!("for url ({url})"), "to the channel's URL")
                    .replace(url.as_str(), "(the channel's URL)"),
                None => err.to_string(),
            }
        } else {
            err.to_string()
        };
        if !out.contains(&text) {
            if !first {
                out.push_str(": ");
            }
            out.push_str(&text);
        }
        first = false;
        current = err.source();
    }
    printable(&out, 300)
}

fn failed(reason: String, status: Option<u16>) -> DeliveryOutcome {
    DeliveryOutcome::Failed { reason, status }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{DateTime, Utc};

    fn secret(s: &str) -> SecretString {
        SecretString::from(s.to_owned())
    }

    /// The test vector of the Standard Webhooks reference libraries.
    const VECTOR_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const VECTOR_ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
    const VECTOR_TS: i64 = 1_614_265_330;
    const VECTOR_BODY: &[u8] = br#"{"test": 2432232314}"#;
    const VECTOR_SIG: &str = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";

    #[test]
    fn signs_the_standard_webhooks_test_vector() {
        let sig = sign(&secret(VECTOR_SECRET), VECTOR_ID, VECTOR_TS, VECTOR_BODY).unwrap();
        assert_eq!(sig, VECTOR_SIG);
        // The prefix is optional for the key.
        let bare = VECTOR_SECRET.trim_start_matches("whsec_");
        assert_eq!(
            sign(&secret(bare), VECTOR_ID, VECTOR_TS, VECTOR_BODY).unwrap(),
            VECTOR_SIG
        );
    }

    #[test]
    fn verifies_the_test_vector_and_refuses_tampering() {
        let s = secret(VECTOR_SECRET);
        let ts = VECTOR_TS.to_string();
        let ok = |headers: (&str, &str, &str), body: &[u8], now: i64| {
            verify(&s, headers, body, now, 300)
        };
        assert_eq!(
            ok((VECTOR_ID, &ts, VECTOR_SIG), VECTOR_BODY, VECTOR_TS),
            Ok(())
        );
        assert_eq!(
            ok((VECTOR_ID, &ts, VECTOR_SIG), VECTOR_BODY, VECTOR_TS + 300),
            Ok(())
        );
        assert_eq!(
            ok((VECTOR_ID, &ts, VECTOR_SIG), VECTOR_BODY, VECTOR_TS - 300),
            Ok(())
        );
        // Several signatures (rotation), unknown versions ignored.
        let several = format!("v2,abc v1,AAAA {VECTOR_SIG}");
        assert_eq!(
            ok((VECTOR_ID, &ts, &several), VECTOR_BODY, VECTOR_TS),
            Ok(())
        );

        let mismatch = Err(NotifyError::SignatureMismatch);
        assert_eq!(
            ok(
                (VECTOR_ID, &ts, VECTOR_SIG),
                br#"{"test": 2432232315}"#,
                VECTOR_TS
            ),
            mismatch
        );
        assert_eq!(
            ok(("msg_other", &ts, VECTOR_SIG), VECTOR_BODY, VECTOR_TS),
            mismatch
        );
        let ts2 = (VECTOR_TS + 1).to_string();
        assert_eq!(
            ok((VECTOR_ID, &ts2, VECTOR_SIG), VECTOR_BODY, VECTOR_TS),
            mismatch
        );
        let flipped = VECTOR_SIG.replace("g0hM", "g0hN");
        assert_eq!(
            ok((VECTOR_ID, &ts, &flipped), VECTOR_BODY, VECTOR_TS),
            mismatch
        );
        let unversioned = VECTOR_SIG.trim_start_matches("v1,");
        assert_eq!(
            ok((VECTOR_ID, &ts, unversioned), VECTOR_BODY, VECTOR_TS),
            mismatch
        );
        assert_eq!(
            verify(
                &secret("whsec_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"),
                (VECTOR_ID, &ts, VECTOR_SIG),
                VECTOR_BODY,
                VECTOR_TS,
                300
            ),
            mismatch
        );

        let out_of_time = Err(NotifyError::TimestampOutOfTolerance);
        assert_eq!(
            ok((VECTOR_ID, &ts, VECTOR_SIG), VECTOR_BODY, VECTOR_TS + 301),
            out_of_time
        );
        assert_eq!(
            ok((VECTOR_ID, &ts, VECTOR_SIG), VECTOR_BODY, VECTOR_TS - 301),
            out_of_time
        );
        assert_eq!(
            ok((VECTOR_ID, "soon", VECTOR_SIG), VECTOR_BODY, VECTOR_TS),
            Err(NotifyError::InvalidHeader("webhook-timestamp"))
        );
        assert_eq!(
            ok(("", &ts, VECTOR_SIG), VECTOR_BODY, VECTOR_TS),
            Err(NotifyError::InvalidHeader("webhook-id"))
        );
        assert_eq!(
            ok((VECTOR_ID, &ts, " "), VECTOR_BODY, VECTOR_TS),
            Err(NotifyError::InvalidHeader("webhook-signature"))
        );
        // Extreme values do not overflow.
        assert_eq!(
            ok(
                (VECTOR_ID, &i64::MIN.to_string(), VECTOR_SIG),
                VECTOR_BODY,
                i64::MAX
            ),
            out_of_time
        );
    }

    #[test]
    fn new_secrets_round_trip_and_differ() {
        let a = new_webhook_secret();
        let b = new_webhook_secret();
        assert_ne!(a.expose_secret(), b.expose_secret());
        let text = a.expose_secret();
        assert!(text.starts_with("whsec_"), "prefix");
        let key = BASE64.decode(&text[6..]).unwrap();
        assert_eq!(key.len(), 32);
        let sig = sign(&a, "evt_1", 1_700_000_000, b"{}").unwrap();
        assert_eq!(
            verify(&a, ("evt_1", "1700000000", &sig), b"{}", 1_700_000_010, 300),
            Ok(())
        );
        assert_eq!(
            verify(&b, ("evt_1", "1700000000", &sig), b"{}", 1_700_000_010, 300),
            Err(NotifyError::SignatureMismatch)
        );
        // Debug never shows the secret.
        assert!(!format!("{a:?}").contains(&text[6..]));
        let target = WebhookTarget {
            url: "https://example.com/hook".into(),
            secret: a.clone(),
        };
        assert!(!format!("{target:?}").contains(&text[6..]));
    }

    #[test]
    fn bad_secrets_are_refused_without_echoing_them() {
        for bad in ["whsec_", "whsec_not base64!!", "", "whsec_%%%%"] {
            let err = sign(&secret(bad), "evt_1", 1, b"{}").unwrap_err();
            assert_eq!(err, NotifyError::InvalidSecret, "{bad}");
            if bad.len() > 6 {
                assert!(!err.to_string().contains(&bad[6..]));
            }
        }
    }

    #[test]
    fn the_body_has_type_timestamp_and_data() {
        let at = DateTime::parse_from_rfc3339("2025-03-01T09:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let event = Event {
            id: "evt_1".into(),
            kind: "token.expiring".into(),
            at,
            summary: "Token \"prod\" must be re-authorized.".into(),
            data: serde_json::json!({"token": {"id": "tok_1", "name": "prod"}, "lead": "7d"}),
        };
        let body: serde_json::Value = serde_json::from_slice(&webhook_body(&event)).unwrap();
        assert_eq!(
            body,
            serde_json::json!({
                "type": "token.expiring",
                "timestamp": "2025-03-01T09:00:00.000Z",
                "data": {
                    "summary": "Token \"prod\" must be re-authorized.",
                    "token": {"id": "tok_1", "name": "prod"},
                    "lead": "7d",
                },
            })
        );
        let odd = Event {
            data: serde_json::json!([1, 2]),
            ..event.clone()
        };
        let body: serde_json::Value = serde_json::from_slice(&webhook_body(&odd)).unwrap();
        assert_eq!(body["data"]["details"], serde_json::json!([1, 2]));
        let empty = Event {
            data: serde_json::Value::Null,
            ..event
        };
        let body: serde_json::Value = serde_json::from_slice(&webhook_body(&empty)).unwrap();
        assert_eq!(body["data"].as_object().unwrap().len(), 1);
    }

    #[test]
    fn webhook_urls() {
        for ok in [
            "https://hooks.example.com/tokenwarden",
            "http://127.0.0.1:8080/hook?channel=ops",
            "http://[::1]:9000/",
            "https://receiver.internal",
        ] {
            assert_eq!(check_webhook_url(ok), Ok(()), "{ok}");
        }
        let long = format!("https://example.com/{}", "a".repeat(MAX_WEBHOOK_URL_LEN));
        for (bad, why) in [
            ("", "empty"),
            (long.as_str(), "longer"),
            ("ftp://example.com/x", "scheme"),
            ("file:///etc/passwd", "scheme"),
            ("javascript:alert(1)", "scheme"),
            ("example.com/hook", "absolute"),
            ("/hook", "absolute"),
            ("https://user:hunter2@example.com/", "credentials"),
            ("https://user@example.com/", "credentials"),
            ("https://example.com/ hook", "whitespace"),
            ("https://example.com/\nhook", "whitespace"),
            ("https://example.com/hook#x", "fragment"),
            ("http://", "absolute"),
        ] {
            let err = check_webhook_url(bad).unwrap_err().to_string();
            assert!(err.contains(why), "{bad:?}: {err}");
            assert!(!err.contains("hunter2"), "{err}");
        }
    }

    #[test]
    fn printable_cuts_and_flattens() {
        assert_eq!(printable(" a\r\nb ", 10), "a  b");
        assert_eq!(printable("abcdef", 3), "abc…");
    }
}
