//! One module per command; each parses its arguments, calls `tokenwarden_server::ops` and
//! prints the answer. None writes through the store directly: reads for printing only.

pub(crate) mod admin;
pub(crate) mod app;
pub(crate) mod backup;
pub(crate) mod config;
#[cfg(feature = "demo")]
pub(crate) mod demo;
pub(crate) mod keys;
pub(crate) mod migrate;
pub(crate) mod serve;
pub(crate) mod token;
pub(crate) mod transfer;
