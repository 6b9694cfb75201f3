//! `tokenwarden keys`: rotating, listing, verifying and dropping data keys.

use crate::bootstrap;
use crate::cli::KeysCommand;
use crate::config::Config;
use anyhow::{Result, bail};

pub(crate) async fn run(command: KeysCommand, cfg: Config) -> Result<()> {
    let ctx = bootstrap::context(&cfg, bootstrap::Setup::Existing).await?;
    match command {
        KeysCommand::Rotate { drop_old } => {
            let r = tokenwarden_server::ops::keys::rotate(&ctx, "cli", drop_old).await?;
            println!("new active key: {}", r.new_key_id);
            println!("re-encrypted {} stored secrets", r.resealed);
            if r.skipped > 0 {
                println!(
                    "{} secrets changed while rotating; run `tokenwarden keys rotate` again",
                    r.skipped
                );
            }
            if drop_old {
                println!(
                    "removed keys: {}",
                    if r.retired_keys.is_empty() {
                        "none".into()
                    } else {
                        r.retired_keys.join(", ")
                    }
                );
            } else {
                println!(
                    "old keys are kept; remove them with `tokenwarden keys drop KEY_ID` once every instance has reloaded (within a minute)"
                );
            }
        }
        KeysCommand::List => {
            let sealed = ctx.store.sealed_values().await?;
            let rows: Vec<Vec<String>> = ctx
                .store
                .list_data_keys()
                .await?
                .iter()
                .map(|k| {
                    let uses = sealed
                        .iter()
                        .filter(|v| {
                            tokenwarden_crypto::key_id_of(&v.sealed.0)
                                .is_ok_and(|id| id == k.key_id)
                        })
                        .count();
                    vec![
                        k.key_id.clone(),
                        if k.active { "yes" } else { "no" }.to_owned(),
                        super::when(k.created_at),
                        uses.to_string(),
                    ]
                })
                .collect();
            super::print_table(&["KEY", "ACTIVE", "CREATED", "SECRETS"], &rows);
        }
        KeysCommand::Verify => {
            let (ok, failed) = ctx.vault.verify_all().await?;
            for f in &failed {
                eprintln!("cannot decrypt {f}");
            }
            if !failed.is_empty() {
                bail!(
                    "{} of {} stored secrets cannot be decrypted",
                    failed.len(),
                    ok + failed.len()
                );
            }
            println!("all {ok} stored secrets decrypt with the current keys");
        }
        KeysCommand::Drop { key_id } => {
            tokenwarden_server::ops::keys::drop_key(&ctx, "cli", &key_id).await?;
            println!("removed key {key_id}");
        }
    }
    Ok(())
}
