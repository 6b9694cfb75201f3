//! The authorization-code flow: starting a sign-in (one-time state, PKCE) and completing the
//! provider's callback.

use super::refresh::{record_success, store_response};
use super::{client_secrets, resolve};
use crate::AppContext;
use crate::ops::audit::{self, Action, Object, Outcome};
use crate::ops::{Error, Result};
use sha2::{Digest, Sha256};
use tokenwarden_domain::TokenId;
use tokenwarden_oauth::client::{self, ClientCredentials, Grant, Pkce};
use tokenwarden_store::SealedColumn;
use tokenwarden_store::{OAuthStateRecord, StateOutcome, TokenRecord};

/// How long a started authorization stays valid.
pub const STATE_TTL_MINUTES: i64 = 10;

pub fn hash_state(state: &str) -> String {
    Sha256::digest(state.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Starts the authorization-code flow for a token: a one-time state bound to the token and to
/// whoever asked, a fresh PKCE verifier, and the URL to open.
pub async fn start_authorization(
    ctx: &AppContext,
    t: &TokenRecord,
    actor: &str,
    session_hash: Option<String>,
) -> Result<String> {
    let provider = resolve(ctx, t)?;
    let client_id = t.client_id.as_deref().filter(|c| !c.is_empty()).ok_or_else(|| {
        Error::Invalid("this token has no client_id yet: set it (or paste the client secrets output) first".into())
    })?;
    // A private_key_jwt client proves itself with its key, not a secret.
    let signs = t.client_auth == Some(tokenwarden_domain::ClientAuthMethod::PrivateKeyJwt);
    if !signs && t.client_secret.is_none() && t.client_secret_2.is_none() {
        return Err(Error::Invalid("this token has no client secret yet: set it (or paste the client secrets output) first".into()));
    }
    let now = ctx.clock.now();
    let state = client::new_state();
    let pkce = provider.pkce.then(Pkce::generate);
    let id = uuid::Uuid::new_v4().to_string();
    let redirect_uri = ctx.settings.redirect_uri();
    let record = OAuthStateRecord {
        id: id.clone(),
        state_hash: hash_state(&state),
        token_id: t.id,
        started_by: actor.to_owned(),
        session_hash,
        verifier: pkce.as_ref().map(|p| {
            ctx.vault
                .seal(&p.verifier, SealedColumn::OAuthStateVerifier, &id)
        }),
        redirect_uri: redirect_uri.clone(),
        created_at: now,
        expires_at: now + chrono::Duration::minutes(STATE_TTL_MINUTES),
        used_at: None,
    };
    ctx.store.create_oauth_state(&record).await?;
    let _ = ctx
        .store
        .purge_oauth_states(now - chrono::Duration::days(1))
        .await;
    audit::record(
        ctx,
        actor,
        Action::TokenAuthorizeStart,
        Object::new("token", t.id, &t.name),
        Outcome::Ok,
        serde_json::json!({"provider": t.provider}),
    )
    .await;
    Ok(client::authorization_url(
        &provider,
        client_id,
        &redirect_uri,
        &state,
        pkce.as_ref().map(|p| p.challenge.as_str()),
    ))
}

/// The query of a callback.
#[derive(Debug, Default, serde::Deserialize)]
pub struct CallbackQuery {
    pub code: Option<String>,
    pub state: Option<String>,
    pub iss: Option<String>,
    pub error: Option<String>,
    pub error_description: Option<String>,
    pub message: Option<String>,
}

/// What the callback page tells the admin.
#[derive(Debug)]
pub enum CallbackResult {
    Authorized {
        token: Box<TokenRecord>,
        detail: String,
    },
    /// The state is missing, unknown, expired, used, or from another session: nothing was sent
    /// to the provider.
    BadState(String),
    /// The provider refused, or the exchange failed; the token is unchanged.
    Failed {
        token_name: String,
        token_id: TokenId,
        message: String,
    },
}

pub async fn complete_callback(
    ctx: &AppContext,
    q: &CallbackQuery,
    session_hash: Option<&str>,
) -> CallbackResult {
    let now = ctx.clock.now();
    let Some(state) = q
        .state
        .as_deref()
        .filter(|s| !s.is_empty() && s.len() <= 512)
    else {
        return CallbackResult::BadState(
            "the callback has no state parameter: start the authorization again from tokenwarden"
                .into(),
        );
    };
    let st = match ctx.store.consume_oauth_state(&hash_state(state), now).await {
        Ok(StateOutcome::Consumed(st)) => st,
        Ok(StateOutcome::Unknown) => {
            return CallbackResult::BadState(
                "this sign-in was not started by tokenwarden (unknown state): start it again"
                    .into(),
            );
        }
        Ok(StateOutcome::Expired) => {
            return CallbackResult::BadState(format!(
                "this sign-in took longer than {STATE_TTL_MINUTES} minutes and expired: start it again"
            ));
        }
        Ok(StateOutcome::AlreadyUsed) => {
            return CallbackResult::BadState(
                "this sign-in was already completed (the state was used): start it again".into(),
            );
        }
        Err(e) => {
            return CallbackResult::BadState(format!(
                "the sign-in could not be checked: {}",
                Error::from(e)
            ));
        }
    };
    if let Some(expected) = &st.session_hash
        && session_hash != Some(expected.as_str())
    {
        return CallbackResult::BadState("this sign-in was started from another session: finish it in the browser window that started it".into());
    }
    let t = match ctx.store.get_token(st.token_id).await {
        Ok(t) => t,
        Err(_) => {
            return CallbackResult::BadState(
                "the token this sign-in was for no longer exists".into(),
            );
        }
    };
    let fail = |message: String| CallbackResult::Failed {
        token_name: t.name.to_string(),
        token_id: t.id,
        message,
    };
    if let Some(error) = &q.error {
        let mut message = format!("the provider answered {error}");
        for extra in [&q.error_description, &q.message].into_iter().flatten() {
            message.push_str(": ");
            message.push_str(extra);
        }
        audit::record(
            ctx,
            &st.started_by,
            Action::TokenAuthorize,
            Object::new("token", t.id, &t.name),
            Outcome::Failed,
            serde_json::json!({"error": error}),
        )
        .await;
        return fail(message);
    }
    let provider = match resolve(ctx, &t) {
        Ok(p) => p,
        Err(e) => return fail(e.to_string()),
    };
    // RFC 9207: with a known issuer, the response must name it.
    if let Some(issuer) = &provider.issuer
        && q.iss.as_deref() != Some(issuer.as_str())
    {
        audit::record(
            ctx,
            &st.started_by,
            Action::TokenAuthorize,
            Object::new("token", t.id, &t.name),
            Outcome::Failed,
            serde_json::json!({"error": "issuer_mismatch"}),
        )
        .await;
        return fail(format!(
            "the response's issuer {:?} is not the configured issuer {issuer:?}: possible mix-up attack; nothing was stored",
            q.iss.as_deref().unwrap_or("(none)")
        ));
    }
    let Some(code) = q.code.as_deref().filter(|c| !c.is_empty()) else {
        return fail("the provider sent neither a code nor an error".into());
    };
    let verifier = match &st.verifier {
        Some(v) => match ctx
            .vault
            .open_secret(v, SealedColumn::OAuthStateVerifier, &st.id)
            .await
        {
            Ok(v) => Some(v),
            Err(e) => return fail(Error::internal(e).to_string()),
        },
        None => None,
    };
    let secrets = match client_secrets(ctx, &t).await {
        Ok(s) => s,
        Err(e) => return fail(e.to_string()),
    };
    let creds = ClientCredentials {
        client_id: t.client_id.as_deref().unwrap_or_default(),
        secrets,
    };
    let grant = Grant::AuthorizationCode {
        code,
        redirect_uri: &st.redirect_uri,
        verifier: verifier.as_ref(),
    };
    let resp = match ctx.oauth.token(&provider, &creds, &grant).await {
        Ok(r) => r,
        Err(e) => {
            audit::record(
                ctx,
                &st.started_by,
                Action::TokenAuthorize,
                Object::new("token", t.id, &t.name),
                Outcome::Failed,
                serde_json::json!({"error": e.to_string()}),
            )
            .await;
            return fail(format!("exchanging the code failed: {e}"));
        }
    };
    match signed_in(ctx, &t, &provider, &resp, &st.started_by).await {
        Ok(token) => {
            let detail = resp
                .username
                .as_ref()
                .map(|u| format!("signed in as {u}"))
                .unwrap_or_default();
            CallbackResult::Authorized {
                token: Box::new(token),
                detail,
            }
        }
        Err(e) => fail(format!("the token could not be stored: {e}")),
    }
}

/// A sign-in ended well: stores the provider's answer as a new grant (access and refresh
/// token, expiries from our receive time), records the refresh health, resumes the apps that
/// waited for the token and writes the `token.authorize` audit record. The one way every
/// sign-in ends (the authorization-code callback, the device grant).
pub(crate) async fn signed_in(
    ctx: &AppContext,
    t: &TokenRecord,
    provider: &tokenwarden_oauth::ResolvedProvider,
    resp: &tokenwarden_oauth::TokenResponse,
    actor: &str,
) -> Result<TokenRecord, tokenwarden_store::StoreError> {
    let received_at = ctx.clock.now();
    let was = t.status;
    let token = store_response(ctx, t.id, provider, resp, received_at, true, None).await?;
    record_success(ctx, &token, received_at).await;
    crate::ops::lifecycle::token_authorized(ctx, &token, was, actor).await;
    audit::record(
        ctx,
        actor,
        Action::TokenAuthorize,
        Object::new("token", token.id, &token.name),
        Outcome::Ok,
        serde_json::json!({"scopes": token.material.scopes, "refresh_token_expires_at": token.material.refresh_expires_at.map(tokenwarden_domain::Rfc3339)}),
    )
    .await;
    Ok(token)
}
