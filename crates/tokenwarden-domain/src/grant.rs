//! How a token gets and renews its access token (the OAuth grant), and how the client proves
//! who it is at the token endpoint. Fixed at creation: a different grant is a different token.

use crate::states::ParseStateError;
use serde::{Deserialize, Serialize};
use std::fmt;

crate::states::string_enum!(
    /// The way a token obtains its access tokens. `authorization_code` is the default.
    Grant, "grant" {
        /// An admin signs in once (RFC 6749 4.1, with PKCE); the refresh token renews it.
        AuthorizationCode = "authorization_code",
        /// Machine to machine (RFC 6749 4.4): the client id and secret alone get a new access
        /// token; no sign-in, no refresh token.
        ClientCredentials = "client_credentials",
        /// Device authorization grant (RFC 8628): an admin enters a code on another device.
        DeviceCode = "device_code",
        /// Snowflake key-pair authentication: tokenwarden signs short-lived JWTs with a key
        /// whose public half is set on the Snowflake user.
        SnowflakeKeypair = "snowflake_keypair",
    }
);

// Not derived: `string_enum!` declares the enum, so `#[default]` has no variant to sit on.
#[allow(clippy::derivable_impls)]
impl Default for Grant {
    fn default() -> Self {
        Grant::AuthorizationCode
    }
}

impl std::str::FromStr for Grant {
    type Err = ParseStateError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Grant::parse(s)
    }
}

impl Grant {
    /// Whether an admin has to sign in (in a browser, or on another device) before the token
    /// can serve; the other grants become usable as soon as their credentials are stored.
    pub fn needs_sign_in(self) -> bool {
        matches!(self, Grant::AuthorizationCode | Grant::DeviceCode)
    }

    /// Whether the access token is renewed with a stored refresh token (else the grant's own
    /// credentials get a new one each time).
    pub fn renews_with_refresh_token(self) -> bool {
        matches!(self, Grant::AuthorizationCode | Grant::DeviceCode)
    }

    /// A short human description, for forms and lists.
    pub fn label(self) -> &'static str {
        match self {
            Grant::AuthorizationCode => "Authorization code (an admin signs in)",
            Grant::ClientCredentials => "Client credentials (machine to machine, no sign-in)",
            Grant::DeviceCode => "Device code (sign in on another device)",
            Grant::SnowflakeKeypair => "Snowflake key pair (no sign-in, ever)",
        }
    }
}

crate::states::string_enum!(
    /// How the client authenticates at the token endpoint (the `token_endpoint_auth_method`
    /// names of RFC 7591). A token without one uses its provider's default.
    ClientAuthMethod, "client authentication" {
        /// HTTP Basic with the URL-encoded id and secret (RFC 6749 2.3.1).
        ClientSecretBasic = "client_secret_basic",
        /// `client_id` and `client_secret` in the form body.
        ClientSecretPost = "client_secret_post",
        /// A JWT signed with a key tokenwarden generated (RFC 7523 2.2).
        PrivateKeyJwt = "private_key_jwt",
    }
);

impl std::str::FromStr for ClientAuthMethod {
    type Err = ParseStateError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ClientAuthMethod::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grants_and_client_auth_round_trip_through_text() {
        for g in Grant::ALL {
            assert_eq!(g.as_str().parse::<Grant>(), Ok(*g));
            assert_eq!(serde_json::to_value(g).unwrap(), g.as_str());
        }
        assert_eq!(Grant::default(), Grant::AuthorizationCode);
        assert!("client-credentials".parse::<Grant>().is_err());
        for m in ClientAuthMethod::ALL {
            assert_eq!(m.as_str().parse::<ClientAuthMethod>(), Ok(*m));
        }
        assert!("basic".parse::<ClientAuthMethod>().is_err());
    }
}
