use serde::{Deserialize, Serialize};
use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {what} {value:?}")]
pub struct ParseStateError {
    what: &'static str,
    value: String,
}

macro_rules! string_enum {
    ($(#[$m:meta])* $name:ident, $what:literal { $($(#[$vm:meta])* $variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[serde(rename_all = "snake_case")]
        pub enum $name { $($(#[$vm])* $variant),+ }

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
        /// The refresh token's own validity has run out.
        Expired = "expired",
    }
);

string_enum!(
    /// Whether an app may currently use its tokens.
    AppState, "app state" {
        Running = "running",
        Stopped = "stopped",
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
