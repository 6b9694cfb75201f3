//! `tokenwarden demo`: the service with a built-in Snowflake emulator, a demo admin and an app
//! waiting for its token.

use crate::bootstrap;
use crate::config::{Config, Overrides};
use anyhow::{Context, Result};
use secrecy::ExposeSecret;
use std::path::PathBuf;
use std::sync::Arc;
use tokenwarden_domain::{AppName, TokenName};

const DEMO_ADMIN: &str = "admin";
const DEMO_PASSWORD: &str = "tokenwarden-demo";

/// `tokenwarden demo`: the emulator in this process, then `serve` on a demo data folder.
pub(crate) fn run(
    data_dir: Option<PathBuf>,
    listen: &str,
    emulator_listen: &str,
    ttl: u64,
) -> Result<()> {
    let temp = match &data_dir {
        Some(_) => None,
        None => Some(
            tempfile::Builder::new()
                .prefix("tokenwarden-demo-")
                .tempdir()?,
        ),
    };
    // The throwaway folder is private from the start (the folder check would otherwise warn
    // about its mode on every demo start, a warning meant for production data).
    #[cfg(unix)]
    if let Some(t) = &temp {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(t.path(), std::fs::Permissions::from_mode(0o700))?;
    }
    let dir = data_dir.unwrap_or_else(|| {
        temp.as_ref()
            .map(|t| t.path().to_path_buf())
            .unwrap_or_default()
    });
    let env: std::collections::BTreeMap<String, String> = std::env::vars()
        .filter(|(k, _)| k == "TOKENWARDEN_LOG" || k == "TOKENWARDEN_LOG_FORMAT")
        .collect();
    let overrides = Overrides {
        data_dir: Some(dir.clone()),
        listen: Some(listen.to_owned()),
        ..Default::default()
    };
    let mut cfg = Config::load(&env, &overrides)?;
    if temp.is_some() {
        // A throwaway folder: its master key lives and dies with this process (no file, and
        // none of the production advice about keeping one elsewhere).
        cfg.master_key = crate::config::MasterKeySource::Value(
            tokenwarden_crypto::MasterKey::generate().to_base64(),
        );
    }
    bootstrap::init_logging(&cfg.log, cfg.log_format);
    bootstrap::runtime()?.block_on(async move {
        // Bound first: with `--listen 127.0.0.1:0` the system picks the port, and the demo's
        // public URL (never configured: only TOKENWARDEN_LOG is read) is where it really listens.
        let listener = tokio::net::TcpListener::bind(&cfg.listen).await.with_context(|| format!("cannot listen on {}", cfg.listen))?;
        let _lock = bootstrap::lock_sqlite(&cfg)?;
        let addr = listener.local_addr()?;
        cfg.public_url = format!("http://{addr}");
        let emulator = snowflake_emulator::Emulator::start(
            snowflake_emulator::EmulatorConfig {
                access_token_ttl: std::time::Duration::from_secs(ttl.max(1)),
                ..snowflake_emulator::EmulatorConfig::default_for_tests()
            },
            emulator_listen,
        )
        .await
        .with_context(|| format!("cannot start the Snowflake emulator on {emulator_listen}"))?;
        let mut ctx = bootstrap::context(&cfg, bootstrap::Setup::Create).await?;
        let clock = Arc::new(tokenwarden_domain::OffsetClock::default());
        let emu_handle = emulator.emulator.clone();
        ctx.clock = clock.clone();
        ctx.demo = Some(Arc::new(tokenwarden_server::DemoHooks {
            clock,
            on_advance: Box::new(move |offset| emu_handle.set_clock_offset(offset)),
        }));
        let mut api_key = None;
        if ctx.store.count_admins().await? == 0 {
            tokenwarden_server::ops::admins::create_admin(&ctx, "demo", DEMO_ADMIN, DEMO_PASSWORD.into())
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            let app = AppName::parse("sales-invoice")?;
            if ctx.store.get_app_by_name(&app).await.is_err() {
                let (_, key) = tokenwarden_server::ops::apps::create(&ctx, "demo", tokenwarden_server::ops::apps::NewApp { name: app, tokens: vec![TokenName::parse("snowflake-sales")?] })
                    .await
                    .map_err(|e| anyhow::anyhow!("{e}"))?;
                api_key = Some(key.text);
            }
        }
        let emu = emulator.base_url();
        // The app's API key exists only as a hash once printed: shown on the first start of a
        // data folder; a kept folder started again says where to make another.
        let key_line = match &api_key {
            Some(k) => format!(
                "API key   {}   (the app sales-invoice's; shown this once)\n  \
                 Read it   curl -H 'Authorization: Bearer {}' http://{addr}/api/v1/access-tokens/snowflake-sales",
                k.expose_secret(),
                k.expose_secret()
            ),
            None => "API key   made on the first start of this folder; Apps > sales-invoice > Create API key makes another".to_owned(),
        };
        println!(
            "\ntokenwarden demo\n\n  Open      http://{addr}/   sign in as {DEMO_ADMIN} / {DEMO_PASSWORD}\n  \
             {key_line}\n  \
             Snowflake {emu}/console   (emulator: ADMIN / admin-pass runs the SQL, ALICE / alice-pass signs in)\n\n  \
             1. Global Access Tokens > New token: provider Snowflake, account {emu}, role ANALYST, name snowflake-sales.\n  \
             2. Copy the SQL from the setup panel, run it in the Snowflake worksheet as ADMIN.\n  \
             3. Paste the SYSTEM$SHOW_OAUTH_CLIENT_SECRETS output into the token form.\n  \
             4. Get OAuth 2.0 Access Token: sign in as ALICE in the popup, Allow.\n  \
             5. Test connection. The app sales-invoice reads the token with its API key (the curl above).\n\n  \
             Or a key pair (no sign-in, ever): in step 1 pick \"Snowflake key pair\", user ALICE, account identifier EMU12345;\n  \
             run the ALTER USER SQL the token form shows as ADMIN, then Get a new access token.\n\n  \
             Fast-forward time (both clocks):  curl -X POST http://{addr}/_demo/clock -H 'Content-Type: application/json' -d '{{\"seconds\": 6912000}}'\n\n  \
             Data: {} ({}). Ctrl-C stops.\n",
            dir.display(),
            if temp.is_some() { "deleted when the demo stops" } else { "kept" }
        );
        tokenwarden_server::serve(listener, ctx, bootstrap::shutdown_signal()).await?;
        emulator.shutdown();
        drop(temp);
        Ok(())
    })
}
