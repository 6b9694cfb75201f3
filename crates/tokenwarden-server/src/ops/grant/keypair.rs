//! Signing keys tokenwarden generates for a token (issue 12), one rule each, used by the API,
//! the UI and the CLI alike:
//! - a **Snowflake key-pair** token (`Grant::SnowflakeKeypair`): an RSA 2048 key whose public
//!   half the admin assigns to the Snowflake user (`ALTER USER ... SET RSA_PUBLIC_KEY`); the
//!   refresh engine mints a JWT (`KEYPAIR_JWT`, at most an hour) ahead of expiry and stores it
//!   like a refreshed access token, so reads stay store/cache reads. Rotation through
//!   `RSA_PUBLIC_KEY_2`: a new key is generated and shown, the old one keeps signing until the
//!   admin confirms (or a connection test with the new key succeeds), then the token switches
//!   and mints at once, and the `UNSET` of the old slot is offered.
//! - a token authenticating its client with **`private_key_jwt`**: an RSA or EC key whose public
//!   half is shown as a JWKS to paste at the provider.
//!
//! The private keys are sealed by the vault (`SealedColumn::TokenSigningKey`,
//! `TokenSigningKeyNext`) in `token_keys`, one row per token.

use crate::AppContext;
use crate::ops::audit::{self, Action, Object, Outcome};
use crate::ops::{Error, Result};
use secrecy::{ExposeSecret as _, SecretString};
use serde::Serialize;
use tokenwarden_crypto::keypair::{KeyAlgorithm, SigningKey};
use tokenwarden_oauth::TokenResponse;
use tokenwarden_oauth::snowflake::SnowflakeAccount;
use tokenwarden_oauth::snowflake_keypair::{self, KeySlot, KeypairIdentity};
use tokenwarden_store::{SealedColumn, StoreError, TokenKeys, TokenRecord};

/// The settings a Snowflake key-pair token names its user and (for an emulator URL) its account
/// identifier with.
pub const USER_SETTING: &str = "user";
pub const ACCOUNT_IDENTIFIER_SETTING: &str = "account_identifier";

/// Who a Snowflake key-pair token's JWTs name, from its settings.
pub fn identity(t: &TokenRecord) -> Result<KeypairIdentity> {
    let account = t.settings.get("account").ok_or_else(|| {
        Error::Invalid("a Snowflake key-pair token needs settings.account".into())
    })?;
    let account = SnowflakeAccount::parse(account).map_err(|e| Error::Invalid(e.to_string()))?;
    let user = t.settings.get(USER_SETTING).ok_or_else(|| {
        Error::Invalid(
            "a Snowflake key-pair token needs settings.user: the Snowflake user the key is assigned to"
                .into(),
        )
    })?;
    KeypairIdentity::new(
        &account,
        t.settings
            .get(ACCOUNT_IDENTIFIER_SETTING)
            .map(String::as_str),
        user,
    )
    .map_err(|e| Error::Invalid(e.to_string()))
}

/// A public key as an admin sees it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct PublicKeyView {
    /// `RS256` or `ES256`.
    pub algorithm: String,
    /// `SHA256:` + base64 of the SHA-256 of the DER public key (Snowflake's `RSA_PUBLIC_KEY_FP`).
    pub fingerprint: String,
    /// The DER SubjectPublicKeyInfo, base64 on one line.
    pub public_key: String,
    /// The same as a `PUBLIC KEY` PEM block.
    pub public_key_pem: String,
    /// `{"keys": [jwk]}` to paste at an OAuth provider (`private_key_jwt`).
    #[schema(value_type = Object)]
    pub jwks: serde_json::Value,
    /// Snowflake: `ALTER USER ... SET RSA_PUBLIC_KEY[_2] = '...';` assigning this key.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub set_sql: Option<String>,
    /// Snowflake: which user property holds (or will hold) this key.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub slot: Option<String>,
}

/// A token's keys as an admin sees them (never the private keys).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct KeysView {
    /// The key signing now.
    pub current: PublicKeyView,
    /// A rotation in progress: the new key, to assign before confirming.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next: Option<PublicKeyView>,
    /// Snowflake: `ALTER USER ... UNSET <the other slot>;`, to run once a rotation is done and
    /// the JWTs signed by the old key have expired (an hour at most).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unset_old_sql: Option<String>,
    /// Snowflake: `DESC USER ...;` shows `RSA_PUBLIC_KEY_FP` / `RSA_PUBLIC_KEY_2_FP` to compare.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub describe_sql: Option<String>,
}

fn public_view(key: &SigningKey, snowflake: Option<(&KeypairIdentity, KeySlot)>) -> PublicKeyView {
    let public = key.public_key();
    PublicKeyView {
        algorithm: key.algorithm().as_str().to_string(),
        fingerprint: public.fingerprint(),
        public_key: public.base64(),
        public_key_pem: public.pem(),
        jwks: public.jwks(),
        set_sql: snowflake.map(|(id, slot)| id.set_key_sql(slot, &public.base64())),
        slot: snowflake.map(|(_, slot)| slot.as_str().to_string()),
    }
}

fn row(t: &TokenRecord) -> String {
    t.id.to_string()
}

async fn open_key(
    ctx: &AppContext,
    t: &TokenRecord,
    column: SealedColumn,
    sealed: &tokenwarden_store::Sealed,
) -> Result<SigningKey> {
    let pem = ctx
        .vault
        .open_secret(sealed, column, &row(t))
        .await
        .map_err(Error::internal)?;
    SigningKey::from_pkcs8_pem(pem.expose_secret()).map_err(Error::internal)
}

fn seal_key(
    ctx: &AppContext,
    t: &TokenRecord,
    column: SealedColumn,
    key: &SigningKey,
) -> tokenwarden_store::Sealed {
    ctx.vault.seal(&key.to_pkcs8_pem(), column, &row(t))
}

/// Key generation is CPU work (an RSA key takes a moment): off the async workers.
async fn generate(alg: KeyAlgorithm) -> Result<SigningKey> {
    tokio::task::spawn_blocking(move || SigningKey::generate(alg))
        .await
        .map_err(Error::internal)?
        .map_err(Error::internal)
}

fn slot_of(keys: &TokenKeys) -> Option<KeySlot> {
    keys.slot.as_deref().and_then(KeySlot::parse)
}

/// Gives a new token its first key (generated here): RSA for Snowflake (slot
/// `RSA_PUBLIC_KEY`), `alg` for `private_key_jwt`. Called by token creation.
pub async fn create_first_key(
    ctx: &AppContext,
    t: &TokenRecord,
    alg: KeyAlgorithm,
    snowflake: bool,
) -> Result<TokenKeys> {
    let key = generate(if snowflake { KeyAlgorithm::Rs256 } else { alg }).await?;
    let keys = TokenKeys {
        token_id: t.id,
        signing_key: seal_key(ctx, t, SealedColumn::TokenSigningKey, &key),
        signing_key_next: None,
        slot: snowflake.then(|| KeySlot::First.as_str().to_string()),
        version: 0,
        updated_at: ctx.clock.now(),
    };
    ctx.store
        .put_token_keys(&keys, None, ctx.clock.now())
        .await
        .map_err(Error::from)
}

async fn keys_of(ctx: &AppContext, t: &TokenRecord) -> Result<TokenKeys> {
    ctx.store
        .get_token_keys(t.id)
        .await
        .map_err(Error::from)?
        .ok_or_else(|| Error::Invalid(format!("token {} has no signing key", t.name)))
}

/// The token's keys as an admin sees them; `None` when it has none.
pub async fn view(ctx: &AppContext, t: &TokenRecord) -> Result<Option<KeysView>> {
    let Some(keys) = ctx.store.get_token_keys(t.id).await.map_err(Error::from)? else {
        return Ok(None);
    };
    view_of(ctx, t, &keys).await.map(Some)
}

async fn view_of(ctx: &AppContext, t: &TokenRecord, keys: &TokenKeys) -> Result<KeysView> {
    let current = open_key(ctx, t, SealedColumn::TokenSigningKey, &keys.signing_key).await?;
    let slot = slot_of(keys);
    let id = match slot {
        Some(_) => Some(identity(t)?),
        None => None,
    };
    let snowflake = |s: KeySlot| id.as_ref().map(|id| (id, s));
    let next = match &keys.signing_key_next {
        Some(sealed) => {
            let k = open_key(ctx, t, SealedColumn::TokenSigningKeyNext, sealed).await?;
            Some(public_view(&k, slot.and_then(|s| snowflake(s.other()))))
        }
        None => None,
    };
    Ok(KeysView {
        current: public_view(&current, slot.and_then(snowflake)),
        unset_old_sql: match (&id, slot, &next) {
            (Some(id), Some(s), None) => Some(id.unset_key_sql(s.other())),
            _ => None,
        },
        describe_sql: id.as_ref().map(|id| id.describe_sql()),
        next,
    })
}

/// Mints a key-pair JWT signed by the current key, as a token response the refresh path
/// stores (`token_type` `KEYPAIR_JWT`, `expires_in` the JWT's lifetime, no refresh token).
pub async fn mint(ctx: &AppContext, t: &TokenRecord) -> Result<TokenResponse> {
    let keys = keys_of(ctx, t).await?;
    let key = open_key(ctx, t, SealedColumn::TokenSigningKey, &keys.signing_key).await?;
    mint_with(ctx, t, &key)
}

fn mint_with(ctx: &AppContext, t: &TokenRecord, key: &SigningKey) -> Result<TokenResponse> {
    let id = identity(t)?;
    let now = ctx.clock.now().timestamp();
    let (jwt, exp) = id
        .mint(key, now, snowflake_keypair::MAX_JWT_LIFETIME_SECS)
        .map_err(Error::internal)?;
    Ok(TokenResponse {
        access_token: SecretString::from(jwt),
        refresh_token: None,
        token_type: snowflake_keypair::TOKEN_TYPE.to_string(),
        expires_in: Some((exp - now).max(0) as u64),
        refresh_token_expires_in: None,
        scope: None,
        username: Some(id.user().to_string()),
    })
}

/// The key signing a `private_key_jwt` client assertion for the token.
pub async fn client_key(ctx: &AppContext, t: &TokenRecord) -> Result<SigningKey> {
    let keys = keys_of(ctx, t).await?;
    open_key(ctx, t, SealedColumn::TokenSigningKey, &keys.signing_key).await
}

async fn write(ctx: &AppContext, keys: &TokenKeys) -> Result<TokenKeys> {
    match ctx
        .store
        .put_token_keys(keys, Some(keys.version), ctx.clock.now())
        .await
    {
        Err(StoreError::VersionMismatch(_)) => Err(Error::Conflict(
            "the token's keys changed meanwhile (another rotation?); reload and try again".into(),
        )),
        other => other.map_err(Error::from),
    }
}

/// Starts a rotation: generates the next key (a rotation already started keeps its key: the
/// admin may have assigned it already). The current key keeps signing.
pub async fn rotate(ctx: &AppContext, t: &TokenRecord, actor: &str) -> Result<KeysView> {
    let mut keys = keys_of(ctx, t).await?;
    if keys.signing_key_next.is_none() {
        let alg = open_key(ctx, t, SealedColumn::TokenSigningKey, &keys.signing_key)
            .await?
            .algorithm();
        let next = generate(alg).await?;
        keys.signing_key_next = Some(seal_key(ctx, t, SealedColumn::TokenSigningKeyNext, &next));
        keys = write(ctx, &keys).await?;
        let view = view_of(ctx, t, &keys).await?;
        audit::record(
            ctx,
            actor,
            Action::TokenKeyRotate,
            Object::new("token", t.id, &t.name),
            Outcome::Ok,
            serde_json::json!({
                "step": "start",
                "fingerprint": view.next.as_ref().map(|n| n.fingerprint.clone()),
            }),
        )
        .await;
        return Ok(view);
    }
    view_of(ctx, t, &keys).await
}

/// What finishing a rotation did.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct RotationDone {
    pub keys: KeysView,
    /// What the connection test with the new key said (`None` when the admin confirmed without
    /// a test).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub test: Option<String>,
}

/// Finishes a rotation: with `confirmed` the admin says the new key is assigned; otherwise a
/// connection test with a JWT of the new key must succeed first (for Snowflake, through the
/// SQL API). Then the new key signs, a JWT of it is minted and stored at once (reads never see a
/// gap), and the old slot's `UNSET` is offered.
pub async fn finish_rotation(
    ctx: &AppContext,
    t: &TokenRecord,
    actor: &str,
    confirmed: bool,
) -> Result<RotationDone> {
    let mut keys = keys_of(ctx, t).await?;
    let Some(sealed_next) = keys.signing_key_next.clone() else {
        return Err(Error::Invalid(
            "no rotation is in progress: start one first".into(),
        ));
    };
    let next = open_key(ctx, t, SealedColumn::TokenSigningKeyNext, &sealed_next).await?;
    let snowflake = slot_of(&keys).is_some();
    let mut test = None;
    if !confirmed {
        if !snowflake {
            return Err(Error::Invalid(
                "a private_key_jwt key cannot be tested before it signs: confirm that the new JWKS is registered at the provider"
                    .into(),
            ));
        }
        let provider = super::resolve(ctx, t)?;
        let jwt = mint_with(ctx, t, &next)?;
        match ctx
            .oauth
            .test_connection_typed(&provider, &jwt.access_token, snowflake_keypair::TOKEN_TYPE)
            .await
        {
            Ok(m) => test = Some(m),
            Err(m) => {
                audit::record(
                    ctx,
                    actor,
                    Action::TokenKeyRotate,
                    Object::new("token", t.id, &t.name),
                    Outcome::Failed,
                    serde_json::json!({"step": "finish", "message": m}),
                )
                .await;
                return Err(Error::Invalid(format!(
                    "Snowflake refused a JWT signed by the new key, so the old key keeps signing: {m}. Run the ALTER USER ... SET {} statement shown, then try again",
                    slot_of(&keys)
                        .map(|s| s.other().property())
                        .unwrap_or("RSA_PUBLIC_KEY_2")
                )));
            }
        }
    }
    // The new key becomes the signing key (re-sealed for its column).
    keys.signing_key = seal_key(ctx, t, SealedColumn::TokenSigningKey, &next);
    keys.signing_key_next = None;
    keys.slot = slot_of(&keys).map(|s| s.other().as_str().to_string());
    let keys = write(ctx, &keys).await?;
    if snowflake && t.material.access_token.is_some() {
        // Mint with the new key now: the stored JWT is the new key's before the admin is told
        // the old one may go.
        let provider = super::resolve(ctx, t)?;
        let resp = mint_with(ctx, t, &next)?;
        super::refresh::store_response(
            ctx,
            t.id,
            &keypair_provider(provider),
            &resp,
            ctx.clock.now(),
            false,
            None,
        )
        .await
        .map_err(Error::from)?;
    }
    let view = view_of(ctx, t, &keys).await?;
    audit::record(
        ctx,
        actor,
        Action::TokenKeyRotate,
        Object::new("token", t.id, &t.name),
        Outcome::Ok,
        serde_json::json!({
            "step": "finish",
            "fingerprint": view.current.fingerprint,
            "tested": test.is_some(),
        }),
    )
    .await;
    Ok(RotationDone { keys: view, test })
}

/// Abandons a rotation in progress (the new key is discarded; the current one signs on).
pub async fn cancel_rotation(ctx: &AppContext, t: &TokenRecord, actor: &str) -> Result<KeysView> {
    let mut keys = keys_of(ctx, t).await?;
    if keys.signing_key_next.is_some() {
        keys.signing_key_next = None;
        keys = write(ctx, &keys).await?;
        audit::record(
            ctx,
            actor,
            Action::TokenKeyRotate,
            Object::new("token", t.id, &t.name),
            Outcome::Ok,
            serde_json::json!({"step": "cancel"}),
        )
        .await;
    }
    view_of(ctx, t, &keys).await
}

/// Activates a Snowflake key-pair token ("obtain" for this grant): mints a JWT, checks it with
/// Snowflake through the SQL API (the admin ran the `ALTER USER` SQL), and stores it; the token
/// becomes usable and the apps that stopped for it resume. A refusal stores nothing and says
/// what Snowflake answered.
pub async fn activate(ctx: &AppContext, t: &TokenRecord, actor: &str) -> Result<TokenRecord> {
    let provider = super::resolve(ctx, t)?;
    let resp = mint(ctx, t).await?;
    if let Err(m) = ctx
        .oauth
        .test_connection_typed(&provider, &resp.access_token, snowflake_keypair::TOKEN_TYPE)
        .await
    {
        audit::record(
            ctx,
            actor,
            Action::TokenAuthorize,
            Object::new("token", t.id, &t.name),
            Outcome::Failed,
            serde_json::json!({"error": m}),
        )
        .await;
        let sql = view(ctx, t)
            .await?
            .and_then(|v| v.current.set_sql)
            .unwrap_or_default();
        return Err(Error::Invalid(format!(
            "Snowflake refused a JWT signed by the token's key: {m}. Run this in Snowflake first: {sql}"
        )));
    }
    let received_at = ctx.clock.now();
    let was = t.status;
    let token = super::refresh::store_response(
        ctx,
        t.id,
        &keypair_provider(provider),
        &resp,
        received_at,
        true,
        None,
    )
    .await
    .map_err(Error::from)?;
    super::refresh::record_success(ctx, &token, received_at).await;
    crate::ops::lifecycle::token_authorized(ctx, &token, was, actor).await;
    audit::record(
        ctx,
        actor,
        Action::TokenAuthorize,
        Object::new("token", token.id, &token.name),
        Outcome::Ok,
        serde_json::json!({"grant": "snowflake_keypair", "user": resp.username}),
    )
    .await;
    Ok(token)
}

/// The provider as the key-pair grant stores its answers: no refresh-token validity (a
/// key-pair token has no refresh token, so no expiry countdown or reminders) and no scopes.
pub fn keypair_provider(
    mut p: tokenwarden_oauth::ResolvedProvider,
) -> tokenwarden_oauth::ResolvedProvider {
    p.refresh_token_validity = None;
    p.scopes = String::new();
    p
}
