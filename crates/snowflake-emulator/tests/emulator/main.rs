//! Integration tests of the emulator, as one test binary (STYLE.md item 12).

mod common;
mod faults;
mod keypair;
mod oauth_flow;
mod refresh;
mod sql;
mod sql_api;
mod worksheet;
