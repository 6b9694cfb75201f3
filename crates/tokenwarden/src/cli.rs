//! The command line: clap's derive types, one variant per command.

use clap::builder::{PossibleValuesParser, TypedValueParser};
use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;
use tokenwarden_domain::{ClientAuthMethod, Grant};

/// `--grant`: the grants by name (clap lists them in the help and in its error).
fn grant_parser() -> impl TypedValueParser<Value = Grant> {
    PossibleValuesParser::new(Grant::ALL.iter().map(|g| g.as_str()))
        .map(|s| Grant::parse(&s).expect("one of Grant::ALL"))
}

/// `--client-auth`: the client authentication methods by name.
fn client_auth_parser() -> impl TypedValueParser<Value = ClientAuthMethod> {
    PossibleValuesParser::new(ClientAuthMethod::ALL.iter().map(|m| m.as_str()))
        .map(|s| ClientAuthMethod::parse(&s).expect("one of ClientAuthMethod::ALL"))
}

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
    /// Data folder for the embedded SQLite database and a generated master key (default
    /// ./tokenwarden-data; also TOKENWARDEN_DATA_DIR or data_dir in the config file). Only
    /// `serve`, `demo` and `migrate` create it; other commands need an existing database.
    #[arg(long, global = true, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// sqlite://PATH or postgres://... (default: SQLite in the data folder).
    #[arg(long, global = true, value_name = "URL")]
    pub database_url: Option<String>,
    /// How log lines are written: text (default) or json, one object a line for log shippers
    /// (also TOKENWARDEN_LOG_FORMAT or log_format in the config file).
    #[arg(long, global = true, value_name = "FORMAT", value_parser = ["text", "json"])]
    pub log_format: Option<String>,
}

#[derive(Subcommand, Debug)]
pub(crate) enum Command {
    /// Run the service (creating the database and a master key on the first start).
    Serve {
        /// Address to listen on, HOST:PORT (default 127.0.0.1:8420; also TOKENWARDEN_LISTEN).
        #[arg(long, value_name = "ADDR")]
        listen: Option<String>,
    },
    /// Try the whole Snowflake workflow offline: the service with a built-in Snowflake emulator,
    /// a demo admin, and an app waiting for its token. Data lives in a temporary folder unless
    /// --data-dir is given.
    #[cfg(feature = "demo")]
    Demo {
        /// Address of the service, HOST:PORT.
        #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8420")]
        listen: String,
        /// Address of the built-in Snowflake emulator, HOST:PORT.
        #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:9300")]
        emulator_listen: String,
        /// Snowflake access-token lifetime in the emulator, in seconds (real Snowflake: 600).
        #[arg(long, value_name = "SECONDS", default_value_t = 600)]
        access_token_ttl: u64,
    },
    /// Create or update the database (and a master key if none) and exit.
    Migrate,
    /// Manage the encryption keys that protect stored secrets.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// Create and list apps.
    App {
        #[command(subcommand)]
        command: AppCommand,
    },
    /// List, create and rename tokens, authorize or re-authorize them (by each token's grant);
    /// a device sign-in's status; a key-pair token's key and its rotation.
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
    /// Admin bearer tokens and admins who sign in to the web UI.
    Admin {
        #[command(subcommand)]
        command: AdminCommand,
    },
    /// Write a consistent snapshot of the database to FILE, safely while `serve` runs
    /// (SQLite: VACUUM INTO; PostgreSQL: pg_dump). The master key is not in it.
    Backup {
        /// The backup file to create (never overwritten).
        #[arg(long, short = 'o', value_name = "FILE")]
        output: PathBuf,
    },
    /// Put a backup back into an empty data folder (--data-dir NEW) or an empty PostgreSQL
    /// database (--database-url). Refuses another master key, a newer schema, or a target that
    /// holds anything.
    Restore {
        /// A file written by `tokenwarden backup`.
        file: PathBuf,
        /// The master key the backup was made with (else the configured one). With a data
        /// folder and no key configured, it is copied next to the restored data.
        #[arg(long, value_name = "FILE")]
        master_key_file: Option<PathBuf>,
    },
    /// Write providers, tokens, apps (with their token bindings) and notification channels as
    /// one JSON document. Secrets only with --with-secrets, sealed with a passphrase.
    Export {
        /// Write to FILE instead of standard output.
        #[arg(long, short = 'o', value_name = "FILE")]
        output: Option<PathBuf>,
        /// Include client secrets, token material, webhook signing secrets and app API keys,
        /// sealed with a key derived from a passphrase (TOKENWARDEN_PASSPHRASE,
        /// --passphrase-file, or asked on the terminal).
        #[arg(long)]
        with_secrets: bool,
        /// Read the passphrase from this file (its first line).
        #[arg(long, value_name = "FILE")]
        passphrase_file: Option<PathBuf>,
    },
    /// Apply a document from `tokenwarden export` to this instance: creates what is missing,
    /// updates what differs, changes nothing twice.
    Import {
        /// The export document.
        file: PathBuf,
        /// Only list what would change.
        #[arg(long)]
        dry_run: bool,
        /// Read the passphrase of a document with secrets from this file (else
        /// TOKENWARDEN_PASSPHRASE, else asked on the terminal).
        #[arg(long, value_name = "FILE")]
        passphrase_file: Option<PathBuf>,
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
    Drop {
        /// The key's id, as `keys list` shows it (e.g. k1).
        key_id: String,
    },
}

#[derive(Subcommand, Debug)]
pub(crate) enum AppCommand {
    /// Create an app and print its API key (shown once).
    Create {
        /// The app's name: ASCII letters, digits, '-', '_' and '.'.
        name: String,
        /// The name of a token the app uses (repeatable); it need not exist yet.
        #[arg(long = "token", value_name = "NAME")]
        tokens: Vec<String>,
    },
    /// List apps.
    List {
        /// Print JSON instead of a table.
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
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Create a token. The client secret comes from TOKENWARDEN_CLIENT_SECRET or, with
    /// --client-secret-stdin, the first line of standard input (never a command-line value:
    /// those show in `ps`). A grant without a sign-in (client_credentials) fetches its first
    /// access token at once when the client id and secret are given.
    Create {
        /// The token's name (apps fetch it by this name).
        name: String,
        /// The provider's id (`tokenwarden` lists them in GET /api/v1/providers).
        #[arg(long)]
        provider: String,
        /// How the token gets its access tokens: one its provider supports (docs/providers.md).
        #[arg(long, default_value = "authorization_code", value_parser = grant_parser())]
        grant: Grant,
        /// The owning app, for an app-level token (without it: a global token).
        #[arg(long, value_name = "APP")]
        app: Option<String>,
        /// A connection setting, NAME=VALUE; repeat for several (e.g. --setting tenant=contoso.com).
        #[arg(long = "setting", value_name = "NAME=VALUE")]
        settings: Vec<String>,
        /// The client id the provider gave the app registration.
        #[arg(long)]
        client_id: Option<String>,
        /// Read the client secret from the first line of standard input.
        #[arg(long)]
        client_secret_stdin: bool,
        /// How the client authenticates at the token endpoint (default: the provider's).
        #[arg(long, value_parser = client_auth_parser())]
        client_auth: Option<ClientAuthMethod>,
        /// When the client secret expires at the provider (RFC 3339, e.g. 2027-06-30T00:00:00Z):
        /// reminders before it, the apps using the token stop at it.
        #[arg(long, value_name = "RFC3339")]
        client_secret_expires_at: Option<String>,
        /// Print the token as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Authorize a token, or re-authorize it (when it needs re-authorization or its refresh token
    /// expires soon), the way its grant does: authorization_code prints the URL to open in any
    /// browser (the running service completes it at its callback); device_code prints a code and
    /// the page where a person enters it on any device, then waits for the provider's answer;
    /// client_credentials fetches an access token at once; snowflake_keypair checks its key with
    /// Snowflake (run the SQL of `token keys` first) and gets its first JWT.
    Authorize {
        /// The token's name.
        name: String,
        /// The owning app, for an app-level token (without it: the global token of that name).
        #[arg(long, value_name = "APP")]
        app: Option<String>,
        /// Device sign-in: print the code and return at once; a running tokenwarden service polls
        /// the provider and stores the token (see `token device-status`).
        #[arg(long)]
        no_wait: bool,
    },
    /// Store a new client secret (and its expiry at the provider), e.g. when an Azure secret is
    /// about to expire. The secret comes from TOKENWARDEN_CLIENT_SECRET or, with
    /// --client-secret-stdin, the first line of standard input. A client credentials token
    /// gets a new access token with it at once; apps stopped for the old secret resume.
    SetSecret {
        /// The token's name.
        name: String,
        /// The owning app, for an app-level token (without it: the global token of that name).
        #[arg(long, value_name = "APP")]
        app: Option<String>,
        /// Read the client secret from the first line of standard input.
        #[arg(long)]
        client_secret_stdin: bool,
        /// When the new secret expires at the provider (RFC 3339, e.g. 2028-06-30T00:00:00Z);
        /// without it the token keeps no expiry for the secret.
        #[arg(long, value_name = "RFC3339")]
        expires_at: Option<String>,
    },
    /// Rename a token. Apps that fetch it by its old name make the rename fail (they are
    /// named) unless --rebind-apps moves them to the new name.
    Rename {
        /// The token's current name.
        old: String,
        /// Its new name.
        new: String,
        /// The owning app, for an app-level token (without it: the global token of that name).
        #[arg(long, value_name = "APP")]
        app: Option<String>,
        /// Move the apps that fetch the token by its old name to the new one (they must then
        /// fetch it by the new name).
        #[arg(long)]
        rebind_apps: bool,
    },
    /// Show where a token's device sign-in stands: pending, authorized, denied, expired or failed.
    DeviceStatus {
        /// The token's name.
        name: String,
        /// The owning app, for an app-level token (without it: the global token of that name).
        #[arg(long, value_name = "APP")]
        app: Option<String>,
    },
    /// Show a token's signing key: its fingerprint and, for a Snowflake key-pair token, the
    /// `ALTER USER ... SET RSA_PUBLIC_KEY` SQL to run (for private_key_jwt, the JWKS to paste at
    /// the provider); or rotate it.
    Keys {
        /// The token's name.
        name: String,
        /// The owning app, for an app-level token (without it: the global token of that name).
        #[arg(long, value_name = "APP")]
        app: Option<String>,
        /// Start a rotation: a new key is generated and shown (the current one keeps signing).
        #[arg(long, conflicts_with_all = ["finish", "cancel"])]
        rotate: bool,
        /// Finish the rotation: test the new key with Snowflake (or, with --confirmed, take the
        /// admin's word that it is assigned), then sign with it.
        #[arg(long, conflicts_with = "cancel")]
        finish: bool,
        /// With --finish: the new key is assigned; skip the connection test.
        #[arg(long, requires = "finish")]
        confirmed: bool,
        /// Abandon a rotation in progress.
        #[arg(long)]
        cancel: bool,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
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
        /// The name the admin signs in with.
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
        /// A label to tell the token apart in `admin token list`.
        #[arg(long, default_value = "cli")]
        label: String,
    },
    /// List admin bearer tokens (never the tokens themselves).
    List,
    /// Revoke an admin bearer token at once (running instances stop accepting it within 10 s).
    Revoke {
        /// The token's id, as `admin token create` and `admin token list` show it.
        id: String,
    },
}

#[derive(Subcommand, Debug)]
pub(crate) enum ConfigCommand {
    /// Print the default configuration file.
    Default,
    /// Load the configuration (flags, environment, --config FILE) as `serve` would, say what is
    /// wrong or print the settings in force (secrets hidden), and exit; touches no data.
    Check,
}

#[cfg(test)]
mod tests {
    use super::Cli;
    use clap::CommandFactory;

    /// Issue 11 item 14: every command and argument says what it is, and a default is said
    /// once (clap shows `[default: ...]` by itself).
    #[test]
    fn issue11_item14_every_argument_is_described_and_no_default_is_said_twice() {
        fn walk(cmd: &clap::Command, path: &str, problems: &mut Vec<String>) {
            for arg in cmd.get_arguments() {
                let id = arg.get_id().as_str();
                if id == "help" || id == "version" {
                    continue;
                }
                let help = arg.get_help().map(ToString::to_string).unwrap_or_default();
                if help.trim().is_empty() {
                    problems.push(format!("{path}: {id} has no description"));
                }
                if !arg.get_default_values().is_empty() && help.contains("default") {
                    problems.push(format!("{path}: {id} says its default twice: {help}"));
                }
            }
            for sub in cmd.get_subcommands() {
                let p = format!("{path} {}", sub.get_name());
                if sub.get_about().is_none() {
                    problems.push(format!("{p} has no description"));
                }
                walk(sub, &p, problems);
            }
        }
        let mut problems = Vec::new();
        walk(&Cli::command(), "tokenwarden", &mut problems);
        assert!(problems.is_empty(), "{problems:#?}");
        let token = Cli::command();
        let about = token
            .find_subcommand("token")
            .and_then(clap::Command::get_about)
            .map(ToString::to_string)
            .unwrap_or_default();
        assert!(
            about.contains("List") && about.contains("re-authorize"),
            "{about}"
        );
    }
}
