//! Email over SMTP (lettre with rustls and ring) and the text of the emails.

use std::fmt;
use std::fmt::Write as _;
use std::time::{Duration, SystemTime};

use chrono::{DateTime, Utc};
use lettre::message::header::ContentType;
use lettre::message::{Mailbox, Message};
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;

use crate::{DeliveryOutcome, Event, NotifyError, kinds};

/// How the connection to the SMTP server is secured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpSecurity {
    /// Plain text, no TLS: only for a relay on the same host or a local test sink.
    None,
    /// Connect in plain text, then upgrade with `STARTTLS` (required: no fallback to plain text).
    /// Usually port 587.
    StartTls,
    /// TLS from the first byte ("implicit TLS", SMTPS). Usually port 465.
    Tls,
}

/// Where and how to send email. Its `Debug` redacts the password.
#[derive(Clone)]
pub struct SmtpSettings {
    pub host: String,
    pub port: u16,
    pub security: SmtpSecurity,
    /// Log in with this user (and `password`); `None`: no authentication.
    pub username: Option<String>,
    pub password: Option<SecretString>,
    /// The sender, `tokenwarden@example.com` or `tokenwarden <tokenwarden@example.com>`.
    pub from: String,
    /// The longest one delivery may take, from connecting to the server's last reply.
    pub timeout: Duration,
}

impl fmt::Debug for SmtpSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SmtpSettings")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("security", &self.security)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "[redacted]"))
            .field("from", &self.from)
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// Sends event emails through one SMTP server (a new connection per [`Mailer::send`]).
#[derive(Clone)]
pub struct Mailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    settings: SmtpSettings,
}

impl fmt::Debug for Mailer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Mailer")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl Mailer {
    /// Checks the settings and prepares the transport; connects to nothing yet.
    ///
    /// # Errors
    ///
    /// [`NotifyError::Smtp`] if the host is empty, `from` is not an email address, a password
    /// is given without a user name, or the TLS setup fails.
    pub fn new(settings: SmtpSettings) -> Result<Self, NotifyError> {
        let bad = |why: &str| NotifyError::Smtp(why.to_owned());
        let host = settings.host.trim();
        if host.is_empty() || host.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(bad("the host must be a host name or an IP address"));
        }
        if settings.port == 0 {
            return Err(bad("the port must not be 0"));
        }
        if settings.timeout.is_zero() {
            return Err(bad("the timeout must be more than 0"));
        }
        let from: Mailbox = settings
            .from
            .parse()
            .map_err(|_| bad("the from address is not a valid email address"))?;
        if settings.password.is_some() && settings.username.is_none() {
            return Err(bad("a password was given without a user name"));
        }
        // lettre uses the process default provider when there is one, ring otherwise.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let builder = match settings.security {
            SmtpSecurity::None => AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host),
            SmtpSecurity::StartTls => AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(host)
                .map_err(|e| NotifyError::Smtp(format!("TLS setup failed: {e}")))?,
            SmtpSecurity::Tls => AsyncSmtpTransport::<Tokio1Executor>::relay(host)
                .map_err(|e| NotifyError::Smtp(format!("TLS setup failed: {e}")))?,
        };
        let mut builder = builder.port(settings.port).timeout(Some(settings.timeout));
        if let Some(user) = &settings.username {
            let password = settings
                .password
                .as_ref()
                .map(|p| p.expose_secret().to_owned())
                .unwrap_or_default();
            builder = builder.credentials(Credentials::new(user.clone(), password));
        }
        Ok(Self {
            transport: builder.build(),
            from,
            settings,
        })
    }

    /// Sends the email of `event` ([`render_email`]) to every address in `to`, in one message.
    /// Never takes longer than the settings' timeout.
    ///
    /// The message's `Message-ID` is made from [`Event::id`] (the same on every retry) and its
    /// `Date` is [`Event::at`]. Outcome: `Delivered` with the server's reply code; `Retry` on a
    /// 4xx reply, a network or TLS error or a timeout; `Failed` on a 5xx reply (e.g. unknown
    /// recipient, authentication refused), a bad address or an empty `to`.
    pub async fn send(&self, to: &[String], event: &Event) -> DeliveryOutcome {
        let outcome = match self.message(to, event) {
            Ok(message) => self.deliver(message).await,
            Err(reason) => DeliveryOutcome::Failed {
                reason,
                status: None,
            },
        };
        tracing::debug!(event_id = %event.id, kind = %event.kind, ?outcome, "email delivery");
        outcome
    }

    fn message(&self, to: &[String], event: &Event) -> Result<Message, String> {
        if to.is_empty() {
            return Err("no recipients".to_owned());
        }
        let (subject, body) = render_email(event);
        let mut builder = Message::builder()
            .from(self.from.clone())
            .subject(subject)
            .date(SystemTime::from(event.at))
            .message_id(Some(format!("<{}@{}>", event.id, self.from.email.domain())))
            .header(ContentType::TEXT_PLAIN);
        for address in to {
            let mailbox: Mailbox = address
                .trim()
                .parse()
                .map_err(|_| format!("invalid recipient address: {address:?}"))?;
            builder = builder.to(mailbox);
        }
        builder
            .body(body)
            .map_err(|e| format!("could not build the message: {e}"))
    }

    async fn deliver(&self, message: Message) -> DeliveryOutcome {
        let sent = tokio::time::timeout(self.settings.timeout, self.transport.send(message)).await;
        match sent {
            Err(_) => DeliveryOutcome::Retry {
                reason: format!("timed out after {:?}", self.settings.timeout),
                status: None,
            },
            Ok(Ok(response)) => DeliveryOutcome::Delivered {
                status: u16::from(response.code()),
            },
            Ok(Err(e)) => {
                let status = e.status().map(u16::from);
                let reason = format!("SMTP: {}", error_chain(&e));
                if e.is_permanent() || e.is_client() {
                    DeliveryOutcome::Failed { reason, status }
                } else {
                    DeliveryOutcome::Retry { reason, status }
                }
            }
        }
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !out.contains(&text) {
            let _ = write!(out, ": {text}");
        }
        source = s.source();
    }
    out.chars()
        .take(300)
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// The subject and plain-text body of the email for `event`, for a busy admin: what happened,
/// to which token or app, what to do and by when.
///
/// Subjects start with `[tokenwarden]`; those that need someone to act say `Action needed`.
/// The body is the summary, a "What to do" line, then the details found in [`Event::data`]
/// (token, app, refresh-token expiry, error, stopped apps, a link) and the event id.
pub fn render_email(event: &Event) -> (String, String) {
    let facts = Facts::of(event);
    let token = facts.token_name.as_deref().unwrap_or("(unknown)");
    let app = facts.app_name.as_deref().unwrap_or("(unknown)");
    let expires = facts.expires.as_deref();

    let (subject, todo) = match event.kind.as_str() {
        kinds::TOKEN_AUTHORIZED => (
            format!("Token \"{token}\" authorized"),
            match expires {
                Some(at) => format!(
                    "Nothing to do now. Its refresh token expires at {at}; \
                     tokenwarden will remind you before then."
                ),
                None => "Nothing to do.".to_owned(),
            },
        ),
        kinds::TOKEN_REFRESH_FAILED => (
            format!("Refreshing token \"{token}\" failed"),
            "Nothing yet: tokenwarden keeps retrying, and apps keep the current access token \
             while it is valid. If this goes on, check the provider and the token's client \
             credentials in tokenwarden."
                .to_owned(),
        ),
        kinds::TOKEN_NEEDS_REAUTHORIZATION => (
            format!("Action needed: re-authorize token \"{token}\""),
            format!(
                "Re-authorize token \"{token}\" in tokenwarden now. Until then it cannot be \
                 refreshed, and the apps that use it fail once the current access token expires."
            ),
        ),
        kinds::TOKEN_EXPIRING => match expires {
            Some(at) => (
                format!("Action needed: re-authorize token \"{token}\" before {at}"),
                format!(
                    "Re-authorize token \"{token}\" in tokenwarden before {at}. After that its \
                     refresh token is dead and the apps that depend on it are stopped."
                ),
            ),
            None => (
                format!("Action needed: re-authorize token \"{token}\" soon"),
                format!(
                    "Re-authorize token \"{token}\" in tokenwarden soon: its refresh token is \
                     about to expire, and then the apps that depend on it are stopped."
                ),
            ),
        },
        kinds::TOKEN_EXPIRED => (
            format!("Action needed: token \"{token}\" expired"),
            format!(
                "Re-authorize token \"{token}\" in tokenwarden, then start the apps that were \
                 stopped."
            ),
        ),
        kinds::TOKEN_RESTORED => (
            format!("Token \"{token}\" works again"),
            "Nothing to do.".to_owned(),
        ),
        kinds::APP_STOPPED => (
            format!("App \"{app}\" was stopped"),
            match &facts.token_name {
                Some(t) => format!(
                    "Fix token \"{t}\" (re-authorize it if needed), then start app \"{app}\" \
                     in tokenwarden."
                ),
                None => format!("Fix the cause, then start app \"{app}\" in tokenwarden."),
            },
        ),
        kinds::APP_STARTED => (
            format!("App \"{app}\" started"),
            "Nothing to do.".to_owned(),
        ),
        kinds::TEST => (
            "Test notification".to_owned(),
            "Nothing to do: this message shows that this email channel works.".to_owned(),
        ),
        other => (
            format!("Notification: {}", clean(other, 60)),
            "See the details below.".to_owned(),
        ),
    };

    let mut body = String::new();
    let _ = writeln!(body, "{}", wrap(&clean(&event.summary, 1000), 72));
    let _ = writeln!(body);
    let _ = writeln!(body, "{}", wrap(&format!("What to do: {todo}"), 72));
    let _ = writeln!(body);
    let _ = writeln!(body, "Details");
    let _ = writeln!(body, "  Event: {}", clean(&event.kind, 60));
    let _ = writeln!(body, "  When: {}", human_time(event.at));
    if let Some(line) = &facts.token_line {
        let _ = writeln!(body, "  Token: {line}");
    }
    if let Some(line) = &facts.app_line {
        let _ = writeln!(body, "  App: {line}");
    }
    if let Some(at) = expires {
        match &facts.lead {
            Some(lead) => {
                let _ = writeln!(
                    body,
                    "  Refresh token expires: {at} (reminder {lead} ahead)"
                );
            }
            None => {
                let _ = writeln!(body, "  Refresh token expires: {at}");
            }
        }
    }
    if let Some(reason) = &facts.stop_reason {
        let _ = writeln!(body, "  Stop reason: {reason}");
    }
    if let Some(error) = &facts.error {
        let _ = writeln!(body, "  Error: {error}");
    }
    if !facts.stopped_apps.is_empty() {
        let _ = writeln!(body, "  Stopped apps: {}", facts.stopped_apps.join(", "));
    }
    if let Some(url) = &facts.url {
        let _ = writeln!(body, "  Open: {url}");
    }
    let _ = writeln!(body);
    let _ = writeln!(body, "-- ");
    let _ = writeln!(
        body,
        "Sent by tokenwarden (event {}).",
        clean(&event.id, 80)
    );

    (format!("[tokenwarden] {subject}"), body)
}

/// What the email says about an event, taken from its data.
struct Facts {
    token_name: Option<String>,
    token_line: Option<String>,
    app_name: Option<String>,
    app_line: Option<String>,
    expires: Option<String>,
    lead: Option<String>,
    error: Option<String>,
    stop_reason: Option<String>,
    stopped_apps: Vec<String>,
    url: Option<String>,
}

impl Facts {
    fn of(event: &Event) -> Self {
        let d = &event.data;
        let token = d.get("token");
        let app = d.get("app");
        let token_name = name_of(token);
        let app_name = name_of(app);
        let token_line = token_name.as_ref().map(|name| {
            described(
                name,
                token,
                &[
                    ("id", "id"),
                    ("provider", "provider"),
                    ("scope", "scope"),
                    ("app", "app"),
                ],
            )
        });
        let app_line = app_name
            .as_ref()
            .map(|name| described(name, app, &[("id", "id"), ("state", "state")]));
        let expires = text(d.get("refresh_token_expires_at")).map(|s| {
            DateTime::parse_from_rfc3339(&s)
                .map(|t| human_time(t.with_timezone(&Utc)))
                .unwrap_or(s)
        });
        let stopped_apps = d
            .get("stopped_apps")
            .and_then(Value::as_array)
            .map(|apps| {
                apps.iter()
                    .filter_map(|a| text(Some(a)).or_else(|| name_of(Some(a))))
                    .collect()
            })
            .unwrap_or_default();
        Self {
            token_name,
            token_line,
            app_name,
            app_line,
            expires,
            lead: text(d.get("lead")).or_else(|| text(d.get("lead_time"))),
            error: text(d.get("error")),
            stop_reason: text(app.and_then(|a| a.get("stop_reason")))
                .or_else(|| text(d.get("stop_reason"))),
            stopped_apps,
            url: text(d.get("url")),
        }
    }
}

/// The `name` (or else the `id`) of a token or app object; a bare string is the name.
fn name_of(v: Option<&Value>) -> Option<String> {
    let v = v?;
    text(Some(v)).or_else(|| text(v.get("name")).or_else(|| text(v.get("id"))))
}

/// `name (id x, provider y)` with the fields that are there.
fn described(name: &str, v: Option<&Value>, fields: &[(&str, &str)]) -> String {
    let parts: Vec<String> = fields
        .iter()
        .filter_map(|(key, label)| {
            let value = text(v.and_then(|v| v.get(*key)))
                .or_else(|| name_of(v.and_then(|v| v.get(*key)).filter(|x| x.is_object())))?;
            (value != name).then(|| format!("{label} {value}"))
        })
        .collect();
    if parts.is_empty() {
        name.to_owned()
    } else {
        format!("{name} ({})", parts.join(", "))
    }
}

/// A string or number as one clean line; `None` for other values and empty strings.
fn text(v: Option<&Value>) -> Option<String> {
    let s = match v? {
        Value::String(s) => clean(s, 300),
        Value::Number(n) => n.to_string(),
        Value::Array(items) => {
            let words: Vec<String> = items.iter().filter_map(|i| text(Some(i))).collect();
            clean(&words.join(" "), 300)
        }
        _ => return None,
    };
    (!s.is_empty()).then_some(s)
}

/// One line: control characters (newlines included) become spaces, cut to `max` characters.
fn clean(s: &str, max: usize) -> String {
    let mut out: String = s
        .trim()
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(max)
        .collect();
    if s.trim().chars().count() > max {
        out.push('…');
    }
    out
}

/// Breaks `s` into lines of at most `width` characters at spaces (longer words stay whole).
fn wrap(s: &str, width: usize) -> String {
    let mut out = String::new();
    let mut line_len = 0;
    for word in s.split(' ').filter(|w| !w.is_empty()) {
        let len = word.chars().count();
        if line_len > 0 && line_len + 1 + len > width {
            out.push('\n');
            line_len = 0;
        } else if line_len > 0 {
            out.push(' ');
            line_len += 1;
        }
        out.push_str(word);
        line_len += len;
    }
    out
}

fn human_time(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M UTC").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn event(kind: &str) -> Event {
        Event {
            id: "evt_0123".into(),
            kind: kind.into(),
            at: at("2025-03-01T09:00:00Z"),
            summary: format!("Something about {kind}."),
            data: serde_json::json!({
                "token": {"id": "tok_9", "name": "snowflake-prod", "provider": "snowflake",
                          "scope": "session:role:ANALYST"},
                "app": {"id": "app_3", "name": "nightly-etl", "state": "stopped",
                        "stop_reason": "token expired"},
                "refresh_token_expires_at": "2025-03-08T09:00:00Z",
                "lead": "7d",
                "error": "invalid_grant: refresh token revoked",
            }),
        }
    }

    #[test]
    fn every_kind_names_the_token_and_the_app() {
        for kind in kinds::ALL {
            let (subject, body) = render_email(&event(kind));
            assert!(subject.starts_with("[tokenwarden] "), "{kind}: {subject}");
            assert!(!subject.contains('\n'), "{kind}");
            let all = format!("{subject}\n{body}");
            assert!(all.contains("snowflake-prod"), "{kind}: {all}");
            assert!(all.contains("nightly-etl"), "{kind}: {all}");
            assert!(body.contains("What to do: "), "{kind}");
            assert!(body.contains("2025-03-01 09:00 UTC"), "{kind}: when");
            assert!(body.contains("evt_0123"), "{kind}");
            assert!(body.contains(&format!("Something about {kind}.")), "{kind}");
        }
    }

    #[test]
    fn token_kinds_put_the_token_in_the_subject_and_app_kinds_the_app() {
        for kind in kinds::ALL.iter().filter(|k| k.starts_with("token.")) {
            let (subject, _) = render_email(&event(kind));
            assert!(subject.contains("\"snowflake-prod\""), "{kind}: {subject}");
        }
        for kind in kinds::ALL.iter().filter(|k| k.starts_with("app.")) {
            let (subject, _) = render_email(&event(kind));
            assert!(subject.contains("\"nightly-etl\""), "{kind}: {subject}");
        }
    }

    #[test]
    fn expiring_says_what_to_do_by_when() {
        let (subject, body) = render_email(&event(kinds::TOKEN_EXPIRING));
        assert_eq!(
            subject,
            "[tokenwarden] Action needed: re-authorize token \"snowflake-prod\" before \
             2025-03-08 09:00 UTC"
        );
        assert!(
            body.replace('\n', " ").contains(
                "What to do: Re-authorize token \"snowflake-prod\" in tokenwarden before \
                 2025-03-08 09:00 UTC."
            ),
            "{body}"
        );
        assert!(
            body.lines().take(4).all(|l| l.chars().count() <= 72),
            "{body}"
        );
        assert!(body.contains("(reminder 7d ahead)"), "{body}");
        assert!(
            body.contains(
                "Token: snowflake-prod (id tok_9, provider snowflake, scope session:role:ANALYST)"
            ),
            "{body}"
        );
    }

    #[test]
    fn stopped_apps_say_which_token_to_fix() {
        let (subject, body) = render_email(&event(kinds::APP_STOPPED));
        assert_eq!(subject, "[tokenwarden] App \"nightly-etl\" was stopped");
        assert!(body.contains("Fix token \"snowflake-prod\""), "{body}");
        assert!(body.contains("Stop reason: token expired"), "{body}");
    }

    #[test]
    fn sparse_and_hostile_data_still_render() {
        let mut e = event(kinds::TOKEN_EXPIRED);
        e.data = serde_json::json!({"token": "bare\r\nBcc: evil@example.com"});
        let (subject, body) = render_email(&e);
        assert!(
            !subject.contains('\n') && !subject.contains('\r'),
            "{subject}"
        );
        assert!(subject.contains("bare  Bcc"), "{subject}");
        assert!(!body.contains("Refresh token expires"), "{body}");

        e.data = serde_json::Value::Null;
        let (subject, _) = render_email(&e);
        assert!(subject.contains("(unknown)"), "{subject}");

        e.kind = "something.new".into();
        let (subject, _) = render_email(&e);
        assert_eq!(subject, "[tokenwarden] Notification: something.new");

        e.kind = kinds::TOKEN_EXPIRING.into();
        e.data = serde_json::json!({"token": {"id": "tok_only"}});
        let (subject, _) = render_email(&e);
        assert!(subject.contains("\"tok_only\" soon"), "{subject}");
    }

    #[test]
    fn wraps_at_spaces() {
        assert_eq!(wrap("aa bb cc", 5), "aa bb\ncc");
        assert_eq!(wrap("a verylongword b", 4), "a\nverylongword\nb");
        assert_eq!(wrap("", 4), "");
    }

    #[test]
    fn settings_debug_redacts_the_password() {
        let settings = SmtpSettings {
            host: "smtp.example.com".into(),
            port: 587,
            security: SmtpSecurity::StartTls,
            username: Some("alerts".into()),
            password: Some(SecretString::from("hunter2-very-secret".to_owned())),
            from: "tokenwarden@example.com".into(),
            timeout: Duration::from_secs(10),
        };
        let shown = format!("{settings:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("[redacted]"), "{shown}");
        let mailer = Mailer::new(settings).unwrap();
        assert!(!format!("{mailer:?}").contains("hunter2"));
    }

    #[test]
    fn bad_settings_are_refused() {
        let good = SmtpSettings {
            host: "127.0.0.1".into(),
            port: 25,
            security: SmtpSecurity::None,
            username: None,
            password: None,
            from: "tokenwarden <tw@example.com>".into(),
            timeout: Duration::from_secs(5),
        };
        assert!(Mailer::new(good.clone()).is_ok());
        let cases = [
            SmtpSettings {
                host: " ".into(),
                ..good.clone()
            },
            SmtpSettings {
                from: "not an address".into(),
                ..good.clone()
            },
            SmtpSettings {
                password: Some(SecretString::from("pw-secret".to_owned())),
                ..good.clone()
            },
            SmtpSettings {
                timeout: Duration::ZERO,
                ..good.clone()
            },
            SmtpSettings { port: 0, ..good },
        ];
        for settings in cases {
            let err = Mailer::new(settings).unwrap_err().to_string();
            assert!(err.starts_with("invalid SMTP settings"), "{err}");
            assert!(!err.contains("pw-secret"), "{err}");
        }
    }
}
