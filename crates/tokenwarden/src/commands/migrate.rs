//! `tokenwarden migrate`: opening the database applies its migrations.

use crate::bootstrap;
use crate::config::Config;
use anyhow::Result;

pub(crate) async fn run(cfg: Config) -> Result<()> {
    let ctx = bootstrap::context(&cfg, bootstrap::Setup::Create).await?;
    println!("database is up to date ({:?})", ctx.store.backend());
    Ok(())
}
