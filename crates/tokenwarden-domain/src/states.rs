use serde::{Deserialize, Serialize};
use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {what} {value:?}")]
pub struct ParseStateError {
    pub(crate) what: &'static str,
    pub(crate) value: String,
}

macro_rules! string_enum {
    ($(#[$m:meta])* $name:ident, $what:literal { $($(#[$vm:meta])* $variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        pub enum $name { $($(#[$vm])* #[serde(rename = $text)] $variant),+ }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }

            pub fn parse(s: &str) -> Result<Self, ParseStateError> {
                match s {
                    $($text => Ok($name::$variant),)+
                    _ => Err(ParseStateError { what: $what, value: s.to_owned() }),
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.pad(self.as_str())
            }
        }
    };
}
pub(crate) use string_enum;

string_enum!(
    /// Where a token stands. `healthy` and `expiring_soon` can serve reads.
    TokenStatus, "token status" {
        /// Created, but no sign-in has happened yet.
        NotAuthorized = "not_authorized",
        /// Holds a usable refresh token.
        Healthy = "healthy",
        /// The refresh token dies within the first reminder lead time.
        ExpiringSoon = "expiring_soon",
        /// The provider refused the refresh token (revoked, rotated elsewhere, client changed).
        NeedsReauthorization = "needs_reauthorization",
        /// The refresh token's own validity (or the client secret's) has run out.
        Expired = "expired",
        /// The provider refused the client's credentials (`invalid_client`): store a new client
        /// secret (or key) and the token is usable again.
        NeedsCredentials = "needs_credentials",
    }
);

impl TokenStatus {
    /// Dead: cannot serve until an admin signs in again (the apps using it stop).
    pub fn is_dead(self) -> bool {
        matches!(
            self,
            TokenStatus::NeedsReauthorization
                | TokenStatus::Expired
                | TokenStatus::NeedsCredentials
        )
    }

    /// Can serve reads (refreshing as needed).
    pub fn can_serve(self) -> bool {
        matches!(self, TokenStatus::Healthy | TokenStatus::ExpiringSoon)
    }

    /// The status a token holding material should have, from its refresh token's expiry:
    /// `expiring_soon` from the first reminder lead time before it on. The one place that
    /// rule lives (the background pass, a refresh, a sign-in and the UI's colours use it).
    pub fn from_refresh_expiry(
        refresh_expires_at: Option<crate::Timestamp>,
        now: crate::Timestamp,
        first_lead: crate::LeadTime,
    ) -> TokenStatus {
        match refresh_expires_at {
            Some(exp) if exp <= now + first_lead.duration() => TokenStatus::ExpiringSoon,
            _ => TokenStatus::Healthy,
        }
    }

    /// [`TokenStatus::from_refresh_expiry`] over everything that expires on a token: its
    /// refresh token and its client secret, the sooner counting.
    pub fn from_expiries(
        refresh_expires_at: Option<crate::Timestamp>,
        client_secret_expires_at: Option<crate::Timestamp>,
        now: crate::Timestamp,
        first_lead: crate::LeadTime,
    ) -> TokenStatus {
        let soonest = match (refresh_expires_at, client_secret_expires_at) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        TokenStatus::from_refresh_expiry(soonest, now, first_lead)
    }
}

string_enum!(
    /// Whether an app may currently use its tokens.
    AppState, "app state" {
        Running = "running",
        Stopped = "stopped",
    }
);

string_enum!(
    /// Where a device sign-in (RFC 8628) stands.
    DeviceFlowStatus, "device sign-in status" {
        /// Waiting for the person to enter the code and approve; being polled.
        Pending = "pending",
        /// Approved: the token holds the provider's answer.
        Authorized = "authorized",
        /// The person refused (`access_denied`).
        Denied = "denied",
        /// The code expired before anyone approved (`expired_token`, or its time ran out).
        Expired = "expired",
        /// The provider refused the poll for another reason (`invalid_client`, ...).
        Failed = "failed",
    }
);

/// Why an app is stopped. Apps stopped for a token resume by themselves once it is
/// re-authorized; apps an admin stopped stay stopped.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum StopReason {
    /// Stopped by an admin.
    Admin,
    /// Stopped because a token it uses can no longer be refreshed.
    WaitingForToken { token: String },
}

impl fmt::Display for StopReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StopReason::Admin => f.write_str("stopped by an admin"),
            StopReason::WaitingForToken { token } => write!(f, "waiting for token {token}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_round_trip_through_text() {
        for s in TokenStatus::ALL {
            assert_eq!(TokenStatus::parse(s.as_str()), Ok(*s));
        }
        assert!(TokenStatus::parse("fine").is_err());
    }
}

string_enum!(
    /// What an audit record says was done. Stored as its text (`token.update`).
    AuditAction, "audit action" {
        TokenCreate = "token.create",
        TokenUpdate = "token.update",
        TokenDelete = "token.delete",
        TokenClientSecrets = "token.client_secrets",
        TokenAuthorizeStart = "token.authorize_start",
        /// A device sign-in (RFC 8628) was started; its end is a `token.authorize` record.
        TokenDeviceStart = "token.device_start",
        TokenAuthorize = "token.authorize",
        TokenRefresh = "token.refresh",
        TokenRefreshFailed = "token.refresh_failed",
        TokenNeedsReauthorization = "token.needs_reauthorization",
        TokenNeedsCredentials = "token.needs_credentials",
        TokenExpired = "token.expired",
        TokenStatus = "token.status",
        TokenTest = "token.test",
        /// A signing key's rotation started, finished or was cancelled (detail `step`).
        TokenKeyRotate = "token.key_rotate",
        TokenRead = "token.read",
        AppCreate = "app.create",
        AppUpdate = "app.update",
        AppDelete = "app.delete",
        AppStart = "app.start",
        AppStop = "app.stop",
        AppStarted = "app.started",
        AppStopped = "app.stopped",
        AppKeyCreate = "app.key_create",
        AppKeyRevoke = "app.key_revoke",
        ChannelCreate = "channel.create",
        ChannelUpdate = "channel.update",
        ChannelDelete = "channel.delete",
        ChannelTest = "channel.test",
        SettingsLeadTimes = "settings.lead_times",
        AdminCreate = "admin.create",
        AdminPassword = "admin.password",
        AdminRemove = "admin.remove",
        AdminTokenCreate = "admin_token.create",
        AdminTokenRevoke = "admin_token.revoke",
        KeysRotate = "keys.rotate",
        KeysDrop = "keys.drop",
        ConfigExport = "config.export",
        AuthLogin = "auth.login",
        AuthLogout = "auth.logout",
        AuthDenied = "auth.denied",
        AuthForbidden = "auth.forbidden",
        AuthCsrfRefused = "auth.csrf_refused",
    }
);

string_enum!(
    /// How an audited action ended.
    AuditOutcome, "audit outcome" {
        Ok = "ok",
        Denied = "denied",
        Failed = "failed",
    }
);

string_enum!(
    /// What a notification is about; channels can subscribe to some kinds only.
    EventKind, "event kind" {
        TokenAuthorized = "token.authorized",
        TokenRefreshFailed = "token.refresh_failed",
        TokenNeedsReauthorization = "token.needs_reauthorization",
        /// The provider refused the client's credentials: store a new client secret.
        TokenNeedsCredentials = "token.needs_credentials",
        TokenExpiring = "token.expiring",
        TokenExpired = "token.expired",
        TokenRestored = "token.restored",
        AppStopped = "app.stopped",
        AppStarted = "app.started",
        /// A test send: every channel gets it, whatever it subscribes to.
        Test = "test",
    }
);

string_enum!(
    /// How a notification channel delivers.
    ChannelKind, "channel kind" {
        /// A signed HTTP POST (Standard Webhooks).
        Webhook = "webhook",
        /// An email to a list of recipients.
        Email = "email",
    }
);

string_enum!(
    /// What expires on a token, each with its own countdown, reminders, "expired" (the
    /// background pass), index (the reminders coming up) and gauges (`/metrics`).
    Expiring, "expiry" {
        /// The refresh token's validity (an admin signs in again before it).
        RefreshToken = "refresh_token",
        /// The client secret's validity at the provider (an admin stores a new secret before it).
        ClientSecret = "client_secret",
    }
);

impl Expiring {
    /// The prefix of the client secret's reminder keys in `reminders_sent.lead`.
    pub const SECRET_PREFIX: &'static str = "client_secret:";

    /// In words: "refresh token", "client secret".
    pub fn what(self) -> &'static str {
        match self {
            Expiring::RefreshToken => "refresh token",
            Expiring::ClientSecret => "client secret",
        }
    }

    /// The reminder's key in `reminders_sent.lead`: the lead time (`7d`) or `expired`, and
    /// for the client secret with a `client_secret:` prefix, so each is recorded once.
    pub fn reminder_key(self, lead: &str) -> String {
        match self {
            Expiring::RefreshToken => lead.to_owned(),
            Expiring::ClientSecret => format!("{}{lead}", Expiring::SECRET_PREFIX),
        }
    }

    /// What a reminder key names: the expiry and the lead time (or `expired`);
    /// [`Expiring::reminder_key`] read back.
    pub fn of_reminder_key(key: &str) -> (Expiring, &str) {
        match key.strip_prefix(Expiring::SECRET_PREFIX) {
            Some(lead) => (Expiring::ClientSecret, lead),
            None => (Expiring::RefreshToken, key),
        }
    }
}

/// How long before a refresh token (or a client secret) expires a reminder goes out: `14d`,
/// `12h`, `90m`; positive, at most a year. Written and read as that text everywhere (the
/// configuration file, the environment, the UI, the reminders sent).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LeadTime(chrono::Duration);

impl LeadTime {
    /// Parses `14d`, `12h`, `90m`.
    pub fn parse(s: &str) -> Result<LeadTime, String> {
        let t = s.trim();
        let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
        let (num, unit) = t.split_at(split);
        let bad = || format!("{t:?} is not a lead time: write a number and d, h or m, e.g. 14d");
        let n: i64 = num.parse().map_err(|_| bad())?;
        if n > 366 * 24 * 60 {
            return Err(format!("{t:?} must be positive and at most a year"));
        }
        let d = match unit {
            "d" => chrono::Duration::days(n),
            "h" => chrono::Duration::hours(n),
            "m" => chrono::Duration::minutes(n),
            _ => return Err(bad()),
        };
        LeadTime::new(d).ok_or_else(|| format!("{t:?} must be positive and at most a year"))
    }

    /// A lead time of `d`, if positive and at most a year.
    pub fn new(d: chrono::Duration) -> Option<LeadTime> {
        (d > chrono::Duration::zero() && d <= chrono::Duration::days(365)).then_some(LeadTime(d))
    }

    pub fn days(n: i64) -> LeadTime {
        LeadTime(chrono::Duration::days(n.clamp(1, 365)))
    }

    pub fn duration(self) -> chrono::Duration {
        self.0
    }

    /// The default reminders: 14, 7, 3 and 1 days before.
    pub fn defaults() -> Vec<LeadTime> {
        [14, 7, 3, 1].into_iter().map(LeadTime::days).collect()
    }
}

impl fmt::Display for LeadTime {
    /// `14d`, `12h`, `90m`: the largest unit that is exact.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let d = self.0;
        if d.num_days() > 0 && d == chrono::Duration::days(d.num_days()) {
            write!(f, "{}d", d.num_days())
        } else if d.num_hours() > 0 && d == chrono::Duration::hours(d.num_hours()) {
            write!(f, "{}h", d.num_hours())
        } else {
            write!(f, "{}m", d.num_minutes())
        }
    }
}

#[cfg(test)]
mod typed_tests {
    use super::*;

    #[test]
    fn reminder_keys_read_back() {
        for what in Expiring::ALL {
            for lead in ["14d", "expired"] {
                assert_eq!(
                    Expiring::of_reminder_key(&what.reminder_key(lead)),
                    (*what, lead)
                );
            }
        }
        assert_eq!(
            Expiring::ClientSecret.reminder_key("7d"),
            "client_secret:7d"
        );
    }

    #[test]
    fn lead_times_parse_and_print_alike() {
        for (text, d) in [
            ("14d", chrono::Duration::days(14)),
            ("12h", chrono::Duration::hours(12)),
            ("90m", chrono::Duration::minutes(90)),
            (" 1d ", chrono::Duration::days(1)),
        ] {
            let l = LeadTime::parse(text).unwrap();
            assert_eq!(l.duration(), d);
            assert_eq!(l.to_string(), text.trim());
        }
        for bad in ["", "0d", "-1d", "14", "14w", "366d", "d", "99999999999d"] {
            assert!(LeadTime::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn audit_actions_and_event_kinds_round_trip_as_their_text() {
        for a in AuditAction::ALL {
            assert_eq!(AuditAction::parse(a.as_str()).unwrap(), *a);
            assert_eq!(serde_json::to_value(a).unwrap(), a.as_str());
        }
        for k in EventKind::ALL {
            assert_eq!(EventKind::parse(k.as_str()).unwrap(), *k);
        }
        assert!(EventKind::parse("token.expird").is_err());
    }

    #[test]
    fn expiring_soon_from_the_first_lead_time_on() {
        let now = chrono::DateTime::from_timestamp(1_700_000_000, 0).unwrap();
        let lead = LeadTime::days(14);
        let at = |d: i64| Some(now + chrono::Duration::days(d));
        assert_eq!(
            TokenStatus::from_refresh_expiry(at(15), now, lead),
            TokenStatus::Healthy
        );
        assert_eq!(
            TokenStatus::from_refresh_expiry(at(14), now, lead),
            TokenStatus::ExpiringSoon
        );
        assert_eq!(
            TokenStatus::from_refresh_expiry(None, now, lead),
            TokenStatus::Healthy
        );
        assert!(TokenStatus::Expired.is_dead() && !TokenStatus::ExpiringSoon.is_dead());
        assert!(TokenStatus::NeedsCredentials.is_dead());
        assert_eq!(
            TokenStatus::from_expiries(at(90), at(3), now, lead),
            TokenStatus::ExpiringSoon
        );
        assert_eq!(
            TokenStatus::from_expiries(None, at(14), now, lead),
            TokenStatus::ExpiringSoon
        );
        assert_eq!(
            TokenStatus::from_expiries(at(30), at(15), now, lead),
            TokenStatus::Healthy
        );
    }
}
