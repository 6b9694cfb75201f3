//! `tokenwarden config`: configuration helpers.

use crate::cli::ConfigCommand;

/// Runs before any configuration is loaded: it must work with a broken one.
pub(crate) fn run(command: &ConfigCommand) {
    match command {
        ConfigCommand::Default => print!("{}", crate::config::default_toml()),
    }
}
