//! `snowflake-emulator --listen 127.0.0.1:8421 --user ADMIN:admin-pass:ACCOUNTADMIN ...`

use std::time::Duration;

use clap::Parser;
use snowflake_emulator::{Emulator, EmulatorConfig, UserSpec};

#[derive(Parser, Debug)]
#[command(
    name = "snowflake-emulator",
    about = "A local stand-in for Snowflake OAuth, worksheet and SQL API"
)]
struct Args {
    /// Address to listen on (port 0 picks a free port).
    #[arg(long, default_value = "127.0.0.1:8421")]
    listen: String,
    /// A user as NAME:PASSWORD[:ROLE] (role defaults to PUBLIC); repeat for more. Without
    /// any, ADMIN/admin-pass (ACCOUNTADMIN) and ALICE/alice-pass (ANALYST).
    #[arg(long = "user", value_parser = parse_user)]
    users: Vec<UserSpec>,
    /// Access-token lifetime in seconds when an integration sets no OAUTH_ACCESS_TOKEN_VALIDITY.
    #[arg(long, default_value_t = 600)]
    access_token_ttl: u64,
    /// Account name shown in pages and returned by CURRENT_ACCOUNT().
    #[arg(long, default_value = "EMU12345")]
    account: String,
    /// Largest OAUTH_REFRESH_TOKEN_VALIDITY accepted (Snowflake Support can raise it, e.g. 157784630).
    #[arg(long, default_value_t = 7_776_000)]
    max_refresh_token_validity: u64,
    /// Milliseconds each token request waits before it is answered (a provider far away).
    #[arg(long, env = "SNOWFLAKE_EMULATOR_TOKEN_LATENCY_MS", default_value_t = 0)]
    token_latency_ms: u64,
}

fn parse_user(s: &str) -> Result<UserSpec, String> {
    let mut parts = s.splitn(3, ':');
    let name = parts.next().unwrap_or_default();
    let password = parts.next().ok_or("expected NAME:PASSWORD[:ROLE]")?;
    let role = parts.next().unwrap_or("PUBLIC");
    if name.is_empty() || password.is_empty() || role.is_empty() {
        return Err("expected NAME:PASSWORD[:ROLE] with non-empty parts".to_string());
    }
    Ok(UserSpec::new(name.to_ascii_uppercase(), password, role))
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let args = Args::parse();
    let mut config = EmulatorConfig::default_for_tests();
    if !args.users.is_empty() {
        config.users = args.users;
    }
    config.access_token_ttl = Duration::from_secs(args.access_token_ttl);
    config.account = args.account;
    config.max_refresh_token_validity = args.max_refresh_token_validity;
    let users = config.users.clone();
    let running = Emulator::start(config, &args.listen).await?;
    running
        .emulator
        .set_token_latency(Duration::from_millis(args.token_latency_ms));
    println!("Snowflake emulator listening on {}", running.base_url());
    println!("  worksheet:  {}/console", running.base_url());
    println!("  authorize:  {}/oauth/authorize", running.base_url());
    println!("  token:      {}/oauth/token-request", running.base_url());
    println!("  SQL API:    {}/api/v2/statements", running.base_url());
    println!("Users:");
    for u in &users {
        println!(
            "  {} / {}  (default role {})",
            u.name, u.password, u.default_role
        );
    }
    tokio::signal::ctrl_c().await?;
    running.shutdown();
    Ok(())
}
