//! The command line: clap's derive types, one variant per command.

use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

#[derive(Parser, Debug)]
#[command(
    name = "tokenwarden",
    version,
    about = "Self-hosted OAuth 2.0 access-token manager"
)]
pub(crate) struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Args, Debug)]
pub(crate) struct GlobalArgs {
    /// TOML configuration file (see `tokenwarden config default`).
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Data folder for the embedded SQLite database and a generated master key.
    #[arg(long, global = true, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// sqlite://PATH or postgres://... (default: SQLite in the data folder).
    #[arg(long, global = true, value_name = "URL")]
    pub database_url: Option<String>,
}

#[derive(Subcommand, Debug)]
pub(crate) enum Command {
    /// Run the service.
    Serve {
        /// Address to listen on (default 127.0.0.1:8420).
        #[arg(long, value_name = "ADDR")]
        listen: Option<String>,
    },
    /// Try the whole Snowflake workflow offline: the service with a built-in Snowflake emulator,
    /// a demo admin, and an app waiting for its token. Data lives in a temporary folder unless
    /// --data-dir is given.
    #[cfg(feature = "demo")]
    Demo {
        /// Address of the service (default 127.0.0.1:8420).
        #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8420")]
        listen: String,
        /// Address of the built-in Snowflake emulator.
        #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:9300")]
        emulator_listen: String,
        /// Snowflake access-token lifetime in the emulator, in seconds (real Snowflake: 600).
        #[arg(long, default_value_t = 600)]
        access_token_ttl: u64,
    },
    /// Apply database migrations and exit.
    Migrate,
    /// Manage the encryption keys that protect stored secrets.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// Manage apps.
    App {
        #[command(subcommand)]
        command: AppCommand,
    },
    /// Inspect tokens.
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
    /// Admin credentials.
    Admin {
        #[command(subcommand)]
        command: AdminCommand,
    },
    /// Configuration helpers.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
}

#[derive(Subcommand, Debug)]
pub(crate) enum KeysCommand {
    /// Add a new data key, make it active, and re-encrypt every stored secret with it (online).
    Rotate {
        /// Afterwards remove the keys no longer used. Only when no other instance still runs with
        /// the old keyring (instances reload it every minute).
        #[arg(long)]
        drop_old: bool,
    },
    /// List data keys and how many stored secrets each protects.
    List,
    /// Decrypt every stored secret and report any that fails.
    Verify,
    /// Remove a data key no stored secret uses any more.
    Drop { key_id: String },
}

#[derive(Subcommand, Debug)]
pub(crate) enum AppCommand {
    /// Create an app and print its API key (shown once).
    Create {
        name: String,
        /// A token the app uses (repeatable).
        #[arg(long = "token", value_name = "NAME")]
        tokens: Vec<String>,
    },
    /// List apps.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Delete an app: its API keys stop working at once, its app-level tokens and the
    /// notification channels only about it are deleted with it; global tokens stay.
    Delete {
        /// The app's name or id.
        app: String,
    },
}

#[derive(Subcommand, Debug)]
pub(crate) enum TokenCommand {
    /// List tokens.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Start the OAuth sign-in for a token and print the URL to open in any browser; the running
    /// service completes it at its callback.
    Authorize {
        /// The token's name.
        name: String,
        /// The owning app, for an app-level token (default: the global token of that name).
        #[arg(long)]
        app: Option<String>,
    },
}

#[derive(Subcommand, Debug)]
pub(crate) enum AdminCommand {
    /// Admin bearer tokens.
    Token {
        #[command(subcommand)]
        command: AdminTokenCommand,
    },
    /// Create an admin who signs in to the web UI. The password (at least 12 characters) is
    /// asked twice on a terminal, else read from standard input or from --password-file.
    Create {
        username: String,
        /// Read the password from this file (its first line).
        #[arg(long, value_name = "FILE")]
        password_file: Option<PathBuf>,
    },
    /// List the admins who sign in to the web UI.
    List,
    /// Set a new password for an admin (at least 12 characters; asked twice on a terminal,
    /// else read from standard input or --password-file). Their sessions end.
    Password {
        /// The admin's username.
        username: String,
        /// Read the password from this file (its first line).
        #[arg(long, value_name = "FILE")]
        password_file: Option<PathBuf>,
    },
    /// Remove an admin (their sessions end). The last admin cannot be removed.
    Remove {
        /// The admin's username.
        username: String,
    },
}

#[derive(Subcommand, Debug)]
pub(crate) enum AdminTokenCommand {
    /// Create an admin bearer token and print it (shown once).
    Create {
        #[arg(long, default_value = "cli")]
        label: String,
    },
    /// List admin bearer tokens (never the tokens themselves).
    List,
    /// Revoke an admin bearer token at once (running instances stop accepting it within 10 s).
    Revoke { id: String },
}

#[derive(Subcommand, Debug)]
pub(crate) enum ConfigCommand {
    /// Print the default configuration file.
    Default,
}
