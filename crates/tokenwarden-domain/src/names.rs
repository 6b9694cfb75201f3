use serde::{Deserialize, Serialize};
use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("{what} must not be empty")]
    Empty { what: &'static str },
    #[error("{what} is {len} characters long; at most {max} are allowed")]
    TooLong {
        what: &'static str,
        len: usize,
        max: usize,
    },
    #[error(
        "{what} {value:?} may contain only {allowed}, and must start with an ASCII letter or digit"
    )]
    BadCharacters {
        what: &'static str,
        value: String,
        allowed: &'static str,
    },
}

thread_local! {
    /// The name a deserialization on this thread refused last (see [`take_refused_name`]).
    static REFUSED: std::cell::RefCell<Option<NameError>> = const { std::cell::RefCell::new(None) };
}

/// Takes the [`NameError`] of the last name this thread refused while deserializing, if any.
/// serde reduces a refusal to text; an adapter that wants to answer a refused name as such
/// (the API's `invalid_name`) clears this before a synchronous deserialization and takes it
/// after a failed one.
pub fn take_refused_name() -> Option<NameError> {
    REFUSED.with(|r| r.borrow_mut().take())
}

fn check(
    what: &'static str,
    s: &str,
    max: usize,
    allowed: &'static str,
    ok: impl Fn(char) -> bool,
) -> Result<(), NameError> {
    if s.is_empty() {
        return Err(NameError::Empty { what });
    }
    let len = s.chars().count();
    if len > max {
        return Err(NameError::TooLong { what, len, max });
    }
    let first_ok = s.chars().next().is_some_and(|c| c.is_ascii_alphanumeric());
    if !first_ok || !s.chars().all(ok) {
        return Err(NameError::BadCharacters {
            what,
            value: s.chars().take(80).collect(),
            allowed,
        });
    }
    Ok(())
}

macro_rules! name_type {
    ($(#[$m:meta])* $name:ident, $what:literal, $max:literal, $allowed:literal, $pattern:literal, $ok:expr) => {
        $(#[$m])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// The longest value, in characters.
            pub const MAX_LEN: usize = $max;
            /// What `parse` accepts, as a regular expression (with [`Self::MAX_LEN`]), for the
            /// API's documentation: kept beside the check it describes, and tested against it.
            pub const PATTERN: &'static str = $pattern;

            pub fn parse(s: &str) -> Result<Self, NameError> {
                check($what, s, $max, $allowed, $ok)?;
                Ok(Self(s.to_owned()))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.pad(&self.0)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                Self::parse(&s).map_err(|e| {
                    let text = e.to_string();
                    REFUSED.with(|r| *r.borrow_mut() = Some(e));
                    serde::de::Error::custom(text)
                })
            }
        }
    };
}

fn name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')
}

name_type!(
    /// The name apps use to fetch a token, e.g. `snowflake-sales`. Unique among global tokens,
    /// and among one app's app-level tokens.
    TokenName, "token name", 100, "ASCII letters (A-Z, a-z), digits, '-', '_' and '.'",
    "^[A-Za-z0-9][A-Za-z0-9._-]*$", name_char
);
name_type!(
    /// An app's unique name, e.g. `sales-invoice`.
    AppName, "app name", 100, "ASCII letters (A-Z, a-z), digits, '-', '_' and '.'",
    "^[A-Za-z0-9][A-Za-z0-9._-]*$", name_char
);
name_type!(
    /// A provider template's id, e.g. `snowflake`, `oauth2`.
    ProviderId, "provider", 64, "ASCII lower-case letters (a-z), digits, '-' and '_'",
    "^[a-z0-9][a-z0-9_-]*$",
    |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '_')
);
name_type!(
    /// A human label for an API key or admin token.
    KeyLabel, "key label", 100, "ASCII letters (A-Z, a-z), digits, spaces, '-', '_' and '.'",
    "^[A-Za-z0-9][A-Za-z0-9._ -]*$",
    |c: char| name_char(c) || c == ' '
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refused_name_is_kept_for_the_adapter_once() {
        let _ = take_refused_name();
        let e = serde_json::from_str::<AppName>("\"bad name\"").unwrap_err();
        let refused = take_refused_name().expect("the refusal is kept");
        assert!(e.to_string().starts_with(&refused.to_string()), "{e}");
        assert!(matches!(
            refused,
            NameError::BadCharacters {
                what: "app name",
                ..
            }
        ));
        assert!(take_refused_name().is_none(), "taken once");
        assert!(serde_json::from_str::<AppName>("\"good\"").is_ok());
        assert!(take_refused_name().is_none(), "nothing refused");
    }

    #[test]
    fn token_names_accept_the_usual_forms() {
        for ok in ["snowflake-sales", "a", "Graph_OneDrive.v2", "x1"] {
            assert!(TokenName::parse(ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn token_names_refuse_bad_input_with_a_reason() {
        assert_eq!(
            TokenName::parse(""),
            Err(NameError::Empty { what: "token name" })
        );
        let long = "a".repeat(101);
        assert!(matches!(
            TokenName::parse(&long),
            Err(NameError::TooLong { len: 101, .. })
        ));
        for bad in [
            "-lead",
            "has space",
            "slash/",
            "ünï",
            "semi;colon",
            "../etc",
        ] {
            let err = TokenName::parse(bad).unwrap_err();
            assert!(err.to_string().contains("may contain only"), "{bad}: {err}");
            // Issue 15 item 3: "letters" alone reads as any alphabet's; the rule is ASCII.
            assert!(err.to_string().contains("ASCII letters"), "{bad}: {err}");
        }
    }

    #[test]
    fn provider_ids_are_lower_case() {
        assert!(ProviderId::parse("snowflake").is_ok());
        assert!(ProviderId::parse("Snowflake").is_err());
    }

    #[test]
    fn deserializing_validates() {
        let r: Result<AppName, _> = serde_json::from_str("\"bad name\"");
        assert!(r.is_err());
        let ok: AppName = serde_json::from_str("\"sales-invoice\"").unwrap();
        assert_eq!(ok.as_str(), "sales-invoice");
    }
}
