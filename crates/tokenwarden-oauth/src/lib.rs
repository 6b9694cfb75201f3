//! tokenwarden's OAuth and provider logic: the provider catalog, Snowflake's specifics, and the
//! client for authorization, token and test endpoints. No storage, no HTTP server.

pub mod catalog;
pub mod client;
pub mod device;
pub mod schema;
pub mod snowflake;
pub mod snowflake_keypair;

pub use catalog::{Catalog, CatalogError, ClientAuth, Probe, ProviderTemplate, ResolvedProvider};
pub use client::{ClientCredentials, Grant, OAuthClient, Pkce, TokenError, TokenResponse};

#[cfg(test)]
mod fuzz;
