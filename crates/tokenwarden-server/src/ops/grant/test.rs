//! "Test connection".

use super::{resolve, usable_token};
use crate::AppContext;
use crate::ops::audit::{self, Action, Object, Outcome};
use tokenwarden_domain::Grant;
use tokenwarden_store::TokenRecord;

/// "Test connection": for Snowflake `SELECT CURRENT_USER()` through the SQL API, else the
/// provider's probe URL, with an access token refreshed if needed. Audited. Returns whether it
/// worked and what the provider said.
pub async fn test_connection(ctx: &AppContext, t: &TokenRecord, actor: &str) -> (bool, String) {
    let result = async {
        let provider = resolve(ctx, t).map_err(|e| e.to_string())?;
        if provider.probe == tokenwarden_oauth::Probe::None {
            return Err(
                "not available: this provider has no test endpoint (set probe_url)".to_owned(),
            );
        }
        let token = usable_token(ctx, t.clone(), 30)
            .await
            .map_err(|e| e.to_string())?;
        // How the access token is presented, by the token's grant.
        match t.grant {
            Grant::AuthorizationCode | Grant::ClientCredentials | Grant::DeviceCode => {
                ctx.oauth.test_connection(&provider, &token.access).await
            }
            Grant::SnowflakeKeypair => {
                ctx.oauth
                    .test_connection_typed(
                        &provider,
                        &token.access,
                        tokenwarden_oauth::snowflake_keypair::TOKEN_TYPE,
                    )
                    .await
            }
        }
    }
    .await;
    let (ok, message) = match result {
        Ok(m) => (true, m),
        Err(m) => (false, m),
    };
    audit::record(
        ctx,
        actor,
        Action::TokenTest,
        Object::new("token", t.id, &t.name),
        if ok { Outcome::Ok } else { Outcome::Failed },
        serde_json::json!({"message": message}),
    )
    .await;
    (ok, message)
}
