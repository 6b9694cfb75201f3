//! `tokenwarden config`: configuration helpers.

use crate::cli::ConfigCommand;

/// Runs before any configuration is loaded: it must work with a broken one.
pub(crate) fn run(command: &ConfigCommand) {
    match command {
        ConfigCommand::Default => print!("{}", crate::config::default_toml()),
        // Handled by [`check`], which needs the global flags.
        ConfigCommand::Check => {}
    }
}

/// `tokenwarden config check`: the configuration `serve` would run with, loaded the same way
/// (flags, environment, file), printed with its secrets hidden; an error names what is wrong.
/// Opens no database and no key: it checks the settings, not the data.
pub(crate) fn check(global: &crate::cli::GlobalArgs) -> anyhow::Result<()> {
    let overrides = crate::config::Overrides {
        config_file: global.config.clone(),
        data_dir: global.data_dir.clone(),
        database_url: global.database_url.clone(),
        listen: None,
        log_format: global.log_format.clone(),
    };
    let env: std::collections::BTreeMap<String, String> = std::env::vars().collect();
    let cfg = crate::config::Config::load(&env, &overrides)?;
    crate::bootstrap::log_filter(&cfg.log)?;
    for w in &cfg.warnings {
        eprintln!("warning: {w}");
    }
    println!("{cfg:#?}");
    println!("configuration ok");
    Ok(())
}
