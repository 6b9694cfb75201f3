//! The `tokenwarden` command: parses the command line and hands each command to its module in
//! [`commands`], with the context [`bootstrap`] builds.

mod bootstrap;
mod cli;
mod commands;
mod config;
#[cfg(test)]
mod config_fuzz;

#[cfg(feature = "mimalloc")]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use anyhow::Result;
use clap::Parser;
use cli::{Cli, Command};
use config::Config;

fn main() {
    let cli = Cli::parse();
    if let Err(e) = run(cli) {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Config {
            command: cli::ConfigCommand::Check,
        } => commands::config::check(&cli.global),
        // Before any configuration is loaded: these read their own (or none).
        Command::Config { command } => {
            commands::config::run(&command);
            Ok(())
        }
        #[cfg(feature = "demo")]
        Command::Demo {
            listen,
            emulator_listen,
            access_token_ttl,
        } => commands::demo::run(
            cli.global.data_dir,
            &listen,
            &emulator_listen,
            access_token_ttl,
        ),
        command => {
            let listen = match &command {
                Command::Serve { listen } => listen.clone(),
                _ => None,
            };
            let cfg = bootstrap::load_config(&cli.global, listen)?;
            bootstrap::runtime()?.block_on(dispatch(command, cfg))
        }
    }
}

async fn dispatch(command: Command, cfg: Config) -> Result<()> {
    match command {
        Command::Serve { .. } => commands::serve::run(cfg).await,
        Command::Migrate => commands::migrate::run(cfg).await,
        Command::Keys { command } => commands::keys::run(command, cfg).await,
        Command::App { command } => commands::app::run(command, cfg).await,
        Command::Token { command } => commands::token::run(command, cfg).await,
        Command::Admin { command } => commands::admin::run(command, cfg).await,
        Command::Backup { output } => commands::backup::backup(cfg, output).await,
        Command::Restore {
            file,
            master_key_file,
        } => commands::backup::restore(cfg, file, master_key_file).await,
        Command::Export {
            output,
            with_secrets,
            passphrase_file,
        } => commands::transfer::export(cfg, output, with_secrets, passphrase_file).await,
        Command::Import {
            file,
            dry_run,
            passphrase_file,
        } => commands::transfer::import(cfg, file, dry_run, passphrase_file).await,
        // Handled in `run`, before the configuration is loaded.
        Command::Config { .. } => Ok(()),
        #[cfg(feature = "demo")]
        Command::Demo { .. } => Ok(()),
    }
}
