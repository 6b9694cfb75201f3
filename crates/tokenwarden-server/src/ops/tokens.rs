//! Tokens: create, change (rename, settings, client credentials), delete; the pasted
//! Snowflake client-secrets cell; the Snowflake setup SQL. Every rule about what a token may
//! hold is here, applied to the token that results from a change, whoever asks.

use crate::AppContext;
use crate::ops::audit::{self, Action, Object, Outcome};
use crate::ops::{Error, Result, retrying};
use secrecy::{ExposeSecret, SecretString};
use std::collections::BTreeMap;
use tokenwarden_domain::{
    AppId, AppName, ClientAuthMethod, Grant, ProviderId, StopReason, Timestamp, TokenId, TokenName,
    TokenStatus,
};
use tokenwarden_oauth::snowflake::{self, IntegrationName};
use tokenwarden_store::{AppRecord, Sealed, SealedColumn, StoreError, TokenMaterial, TokenRecord};

/// A new token, as an admin describes it.
#[derive(Debug)]
pub struct NewToken {
    pub name: TokenName,
    pub provider: ProviderId,
    /// The owning app's name: `Some` = an app-level token, `None` = a global one.
    pub app: Option<AppName>,
    /// Connection settings; empty values are left out (the provider's defaults apply).
    pub settings: BTreeMap<String, String>,
    pub client_id: Option<String>,
    pub client_secret: Option<SecretString>,
    pub client_secret_2: Option<SecretString>,
    /// How the token gets its access tokens (fixed from now on); the provider must support it.
    pub grant: Grant,
    /// How the client authenticates at the token endpoint; `None`: the provider's default.
    pub client_auth: Option<ClientAuthMethod>,
    /// When the client secret expires at the provider, if known.
    pub client_secret_expires_at: Option<Timestamp>,
}

/// A change to a token; `None` fields stay as they are. The grant is not among them: a
/// different grant is a new token.
#[derive(Debug, Default)]
pub struct TokenChanges {
    pub name: Option<TokenName>,
    /// Replaces all connection settings.
    pub settings: Option<BTreeMap<String, String>>,
    /// `Some(None)` clears the client id.
    pub client_id: Option<Option<String>>,
    pub client_secret: Option<SecretString>,
    /// `Some(None)` clears the second slot.
    pub client_secret_2: Option<Option<SecretString>>,
    /// `Some(None)`: back to the provider's default.
    pub client_auth: Option<Option<ClientAuthMethod>>,
    /// `Some(None)` clears the client secret's expiry.
    pub client_secret_expires_at: Option<Option<Timestamp>>,
    /// Apply only if the token is still at this version; without it, the change applies to
    /// the current state (re-read and retried if a refresh commits meanwhile).
    pub version: Option<i64>,
    /// With a new `name`: the apps that use the token by its old name use it by the new one
    /// from now on (their bindings move with it; they must then fetch it by the new name).
    /// Without it, renaming a token that apps use is refused, naming them: their reads of the
    /// old name would stop working.
    pub rebind_apps: bool,
}

/// The token with this id.
pub async fn get(ctx: &AppContext, id: TokenId) -> Result<TokenRecord> {
    ctx.store
        .get_token(id)
        .await
        .map_err(Error::not_found_as(format!("token {:?}", id.to_string())))
}

/// The token whose id is this text (an unparsable id is simply not found).
pub async fn get_by_text(ctx: &AppContext, id: &str) -> Result<TokenRecord> {
    let tid = TokenId::parse(id).ok_or_else(|| Error::NotFound(format!("token {id:?}")))?;
    get(ctx, tid).await
}

/// Checks one connection setting of `provider` on its own: `Ok(Some(warning))` when it is
/// accepted with a warning. Used for the whole token, and by the UI as the admin types.
pub fn check_setting(
    ctx: &AppContext,
    provider: &str,
    name: &str,
    value: &str,
) -> Result<Option<String>, String> {
    let key_ok = !name.is_empty()
        && name.len() <= 64
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !key_ok {
        return Err(format!(
            "setting name {name:?} must be 1-64 ASCII letters, digits or '_'"
        ));
    }
    // Characters, as the message says and the document's `maxLength` counts.
    if value.chars().count() > tokenwarden_oauth::schema::VALUE_MAX
        || value.chars().any(char::is_control)
    {
        return Err("at most 2048 characters, without control characters".into());
    }
    let value = value.trim();
    if value.is_empty() {
        return Ok(None);
    }
    let single = BTreeMap::from([(name.to_owned(), value.to_owned())]);
    ctx.catalog
        .check_settings(provider, &single)
        .map_err(|e| e.to_string())?;
    if provider == "snowflake" {
        match name {
            "account" => {
                snowflake::SnowflakeAccount::parse(value).map_err(|e| e.0)?;
            }
            "role" => {
                snowflake::SnowflakeRole::parse(value).map_err(|e| e.0)?;
            }
            "integration_name" => {
                IntegrationName::parse(value).map_err(|e| e.0)?;
            }
            "refresh_token_validity" => {
                let v = value
                    .parse::<u64>()
                    .map_err(|_| "a number of seconds".to_owned())?;
                return snowflake::check_refresh_validity(v).map_err(|e| e.0);
            }
            _ => {}
        }
    }
    Ok(None)
}

fn check_settings(
    ctx: &AppContext,
    provider: &ProviderId,
    s: &BTreeMap<String, String>,
) -> Result<()> {
    check_provider(ctx, provider)?;
    for (k, v) in s {
        check_setting(ctx, provider.as_str(), k, v)
            .map_err(|e| Error::Invalid(format!("setting {k}: {e}")))?;
    }
    Ok(())
}

fn check_provider<'c>(
    ctx: &'c AppContext,
    provider: &ProviderId,
) -> Result<&'c tokenwarden_oauth::ProviderTemplate> {
    ctx.catalog.get(provider.as_str()).ok_or_else(|| {
        Error::Invalid(format!(
            "unknown provider {:?}; GET /api/v1/providers lists them",
            provider.as_str()
        ))
    })
}

/// A token's grant must be one its provider supports.
fn check_grant(ctx: &AppContext, provider: &ProviderId, grant: Grant) -> Result<()> {
    let p = check_provider(ctx, provider)?;
    if !p.supports(grant) {
        return Err(Error::Invalid(format!(
            "provider {} does not support the grant {grant}; it supports: {}",
            p.id,
            p.grants_text()
        )));
    }
    Ok(())
}

/// The rules of a whole token, the same at creation and after any change (issue 15 item 2):
/// every setting well-formed, and the provider's settings complete, so that the token could
/// be authorized (`oauth2` needs its authorization and token endpoints, Snowflake its account
/// and role). The message names what is missing.
fn check_token(ctx: &AppContext, t: &TokenRecord) -> Result<()> {
    check_settings(ctx, &t.provider, &t.settings)?;
    check_grant(ctx, &t.provider, t.grant)?;
    if t.grant == Grant::ClientCredentials {
        check_client_credentials(t).map_err(Error::Invalid)?;
    }
    if t.grant == Grant::SnowflakeKeypair
        && (t.client_secret.is_some() || t.client_secret_2.is_some())
    {
        return Err(Error::Invalid(
            "a Snowflake key-pair token signs its JWTs with its own key and holds no client secret"
                .into(),
        ));
    }
    ctx.catalog
        .resolve_for(t.provider.as_str(), &t.settings, t.grant)
        .map(|_| ())
        .map_err(|e| Error::Invalid(e.to_string()))
}

/// What client credentials need of a provider's settings (the provider's own rules for
/// app-only tokens).
fn check_client_credentials(t: &TokenRecord) -> Result<(), String> {
    let setting = |k: &str| {
        t.settings
            .get(k)
            .map(|v| v.trim())
            .filter(|v| !v.is_empty())
    };
    match t.provider.as_str() {
        "microsoft" => {
            let tenant = setting("tenant").unwrap_or("common");
            if ["common", "consumers", "organizations"]
                .iter()
                .any(|m| tenant.eq_ignore_ascii_case(m))
            {
                return Err(format!(
                    "Microsoft app-only tokens (client credentials) are issued by one directory: set the tenant to your directory (tenant) id or domain, e.g. contoso.onmicrosoft.com, not {tenant:?}"
                ));
            }
            if let Some(scope) = setting("scope")
                && !scope.split_whitespace().all(|s| s.ends_with("/.default"))
            {
                return Err(format!(
                    "Microsoft app-only tokens take the resource's .default scope (the application permissions granted to the app), e.g. https://graph.microsoft.com/.default, not {scope:?}"
                ));
            }
        }
        "salesforce" => {
            let login = setting("login_url").unwrap_or("https://login.salesforce.com");
            let host = login
                .split("://")
                .nth(1)
                .unwrap_or(login)
                .trim_end_matches('/')
                .to_ascii_lowercase();
            if host == "login.salesforce.com" || host == "test.salesforce.com" {
                return Err(
                    "Salesforce's client credentials flow works only on your My Domain: set login_url to it, e.g. https://mycompany.my.salesforce.com"
                        .into(),
                );
            }
        }
        _ => {}
    }
    Ok(())
}

/// A client secret's expiry as an admin types it: RFC 3339 (`2027-06-30T00:00:00Z`), or a
/// date and time without a zone, or a date alone, both read as UTC (what a browser's date
/// fields send); empty = unknown. The message says what is accepted.
pub fn parse_expiry(text: &str) -> Result<Option<Timestamp>, String> {
    let t = text.trim();
    if t.is_empty() {
        return Ok(None);
    }
    if let Ok(x) = chrono::DateTime::parse_from_rfc3339(t) {
        return Ok(Some(x.with_timezone(&chrono::Utc)));
    }
    for f in ["%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M"] {
        if let Ok(x) = chrono::NaiveDateTime::parse_from_str(t, f) {
            return Ok(Some(x.and_utc()));
        }
    }
    if let Ok(d) = chrono::NaiveDate::parse_from_str(t, "%Y-%m-%d") {
        return Ok(d.and_hms_opt(0, 0, 0).map(|x| x.and_utc()));
    }
    Err(format!(
        "{t:?} is not a date: write it as 2027-06-30, 2027-06-30T12:00 (UTC) or RFC 3339 (2027-06-30T12:00:00Z)"
    ))
}

/// The longest client id, in characters.
pub const CLIENT_ID_MAX: usize = 512;
/// The longest client secret, in characters.
pub const SECRET_MAX: usize = 4096;

fn check_client_id(id: &str) -> Result<()> {
    // Characters, as the message says and the API documents (`maxLength`), not bytes.
    if id.trim().is_empty()
        || id.chars().count() > CLIENT_ID_MAX
        || id.chars().any(char::is_control)
    {
        return Err(Error::Invalid(format!(
            "client_id must be 1-{CLIENT_ID_MAX} characters without control characters"
        )));
    }
    Ok(())
}

/// Checks a client secret without ever putting it in the message.
fn check_secret(field: &str, s: &SecretString) -> Result<()> {
    let v = s.expose_secret();
    if v.trim().is_empty() || v.chars().count() > SECRET_MAX || v.chars().any(char::is_control) {
        return Err(Error::Invalid(format!(
            "{field} must be 1-{SECRET_MAX} characters without control characters"
        )));
    }
    Ok(())
}

fn seal(ctx: &AppContext, id: TokenId, column: SealedColumn, s: &SecretString) -> Sealed {
    ctx.vault.seal(s, column, &id.to_string())
}

fn name_taken(name: &TokenName, app: Option<&AppName>) -> Error {
    Error::Conflict(match app {
        Some(a) => format!("a token named {name} already exists in app {a}"),
        None => format!("a token named {name} already exists among the global tokens"),
    })
}

/// Creates a token (`not_authorized` until someone signs in). Secrets are sealed.
pub async fn create(ctx: &AppContext, actor: &str, new: NewToken) -> Result<TokenRecord> {
    check_settings(ctx, &new.provider, &new.settings)?;
    check_grant(ctx, &new.provider, new.grant)?;
    if let Some(id) = &new.client_id {
        check_client_id(id)?;
    }
    for (field, s) in [
        ("client_secret", &new.client_secret),
        ("client_secret_2", &new.client_secret_2),
    ] {
        if let Some(s) = s {
            check_secret(field, s)?;
        }
    }
    let app_id = match &new.app {
        Some(name) => Some(
            ctx.store
                .get_app_by_name(name)
                .await
                .map_err(|e| match e {
                    StoreError::NotFound(_) => {
                        Error::Invalid(format!("there is no app named {name}; create it first"))
                    }
                    other => other.into(),
                })?
                .id,
        ),
        None => None,
    };
    let now = ctx.clock.now();
    let id = TokenId(uuid::Uuid::new_v4());
    let token = TokenRecord {
        id,
        name: new.name,
        provider: new.provider,
        grant: new.grant,
        app_id,
        settings: new.settings,
        client_id: new.client_id,
        client_secret: new
            .client_secret
            .as_ref()
            .map(|s| seal(ctx, id, SealedColumn::TokenClientSecret, s)),
        client_secret_2: new
            .client_secret_2
            .as_ref()
            .map(|s| seal(ctx, id, SealedColumn::TokenClientSecret2, s)),
        client_auth: new.client_auth,
        client_secret_expires_at: new.client_secret_expires_at,
        material: TokenMaterial::default(),
        status: TokenStatus::NotAuthorized,
        status_reason: None,
        version: 1,
        created_at: now,
        updated_at: now,
    };
    check_token(ctx, &token)?;
    if token.grant == Grant::SnowflakeKeypair {
        // The JWTs must name an account and a user: refused now, not at the first mint.
        crate::ops::grant::keypair::identity(&token)?;
    }
    ctx.store.create_token(&token).await.map_err(|e| match e {
        StoreError::Conflict(_) => name_taken(&token.name, new.app.as_ref()),
        other => other.into(),
    })?;
    // A key-pair token and a private_key_jwt client get their key now (shown with its SQL or
    // JWKS by GET /tokens/{id}/keys).
    let keypair = token.grant == Grant::SnowflakeKeypair;
    if (keypair || token.client_auth == Some(ClientAuthMethod::PrivateKeyJwt))
        && let Err(e) = crate::ops::grant::keypair::create_first_key(
            ctx,
            &token,
            tokenwarden_crypto::keypair::KeyAlgorithm::Rs256,
            keypair,
        )
        .await
    {
        let _ = ctx.store.delete_token(token.id).await;
        return Err(e);
    }
    audit::record(
        ctx,
        actor,
        Action::TokenCreate,
        Object::new("token", token.id, &token.name),
        Outcome::Ok,
        serde_json::json!({
            "provider": token.provider,
            "grant": token.grant,
            "app": new.app,
            "client_secret_set": token.client_secret.is_some(),
        }),
    )
    .await;
    Ok(obtain_if_ready(ctx, actor, token).await)
}

/// A token whose grant needs no sign-in (client credentials) becomes usable as soon as its
/// credentials are stored: fetch its access token now (through the same path as the refresh
/// engine). The outcome is on the token (its status, and the refresh bookkeeping's last error),
/// so the token is answered either way.
async fn obtain_if_ready(ctx: &AppContext, actor: &str, t: TokenRecord) -> TokenRecord {
    let ready = !t.grant.needs_sign_in()
        && crate::ops::grant::renewable(&t)
        && t.client_id.as_deref().is_some_and(|c| !c.is_empty());
    if !ready {
        return t;
    }
    match crate::ops::grant::refresh::obtain(ctx, t.id, actor).await {
        Ok(obtained) => obtained,
        Err(e) => {
            tracing::info!(token = %t.name, error = %e, "could not get the token's access token");
            ctx.store.get_token(t.id).await.unwrap_or(t)
        }
    }
}

/// Applies `changes` to the token: validated field by field, then the resulting token as a
/// whole (with the rules of creation). A change that sends the token to another server needs
/// the client secret again and drops the old material. Without a `version`, a concurrent
/// refresh is not a conflict: the change is re-applied to the newest state.
pub async fn update(
    ctx: &AppContext,
    actor: &str,
    id: TokenId,
    changes: TokenChanges,
) -> Result<TokenRecord> {
    if let Some(Some(c)) = &changes.client_id {
        check_client_id(c)?;
    }
    if let Some(s) = &changes.client_secret {
        check_secret("client_secret", s)?;
    }
    if let Some(Some(s)) = &changes.client_secret_2 {
        check_secret("client_secret_2", s)?;
    }
    // Seal once: a retry must not produce different ciphertexts for the same change.
    let secret = changes
        .client_secret
        .as_ref()
        .map(|s| seal(ctx, id, SealedColumn::TokenClientSecret, s));
    let secret_2 = changes.client_secret_2.as_ref().map(|s2| {
        s2.as_ref()
            .map(|s| seal(ctx, id, SealedColumn::TokenClientSecret2, s))
    });
    let (changes, secret, secret_2) = (&changes, &secret, &secret_2);
    let (updated, rebind) = retrying(changes.version, move || async move {
        let before = get(ctx, id).await?;
        if let Some(v) = changes.version
            && v != before.version
        {
            return Err(StoreError::VersionMismatch("token").into());
        }
        let mut t = before.clone();
        let mut changed = Vec::new();
        let mut rebind = Vec::new();
        if let Some(name) = &changes.name
            && *name != t.name
        {
            rebind = apps_to_rebind(ctx, &before, name, changes.rebind_apps).await?;
            t.name = name.clone();
            changed.push("name");
        }
        if let Some(s) = &changes.settings
            && *s != t.settings
        {
            t.settings = s.clone();
            changed.push("settings");
        }
        if let Some(c) = &changes.client_id
            && *c != t.client_id
        {
            t.client_id = c.clone();
            changed.push("client_id");
        }
        if let Some(s) = &secret {
            t.client_secret = Some(s.clone());
            changed.push("client_secret");
        }
        if let Some(s2) = &secret_2 {
            t.client_secret_2 = s2.clone();
            changed.push("client_secret_2");
        }
        if let Some(a) = changes.client_auth
            && a != t.client_auth
        {
            t.client_auth = a;
            changed.push("client_auth");
        }
        if let Some(e) = changes.client_secret_expires_at
            && e != t.client_secret_expires_at
        {
            t.client_secret_expires_at = e;
            changed.push("client_secret_expires_at");
        }
        let now = ctx.clock.now();
        if changed
            .iter()
            .any(|c| matches!(*c, "client_secret" | "client_secret_expires_at"))
        {
            secret_renewed(ctx, &before, &mut t, now);
        }
        if !changed.is_empty() {
            check_token(ctx, &t)?;
        }
        if guard_destination_change(ctx, &before, &mut t, secret.is_some())
            .map_err(Error::Invalid)?
        {
            changed.push("destination");
        }
        if changed.is_empty() {
            return Ok((before.clone(), (before, Vec::new(), Vec::new())));
        }
        // The store checks the version we read: a refresh that committed in between is never
        // reverted (R11); this edit is then applied again to what it wrote.
        let updated = match ctx.store.update_token(&t, ctx.clock.now()).await {
            Ok(u) => u,
            Err(StoreError::Conflict(_)) => {
                let app = match t.app_id {
                    Some(a) => Some(ctx.store.get_app(a).await?.name),
                    None => None,
                };
                return Err(name_taken(&t.name, app.as_ref()));
            }
            Err(e) => return Err(e.into()),
        };
        ctx.cache.clear_served();
        let rebound: Vec<&str> = rebind.iter().map(|a: &AppRecord| a.name.as_str()).collect();
        let mut detail = serde_json::json!({ "changed": changed });
        if changed.contains(&"name") {
            detail["name"] = serde_json::json!([before.name, updated.name]);
            detail["rebound_apps"] = serde_json::json!(rebound);
        }
        audit::record(
            ctx,
            actor,
            Action::TokenUpdate,
            Object::new("token", updated.id, &updated.name),
            Outcome::Ok,
            detail,
        )
        .await;
        let rebind: Vec<AppId> = rebind.iter().map(|a| a.id).collect();
        Ok((updated, (before, changed, rebind)))
    })
    .await?;
    let (before, changed, apps) = rebind;
    for app in apps {
        rebind_app(ctx, actor, app, &before.name, &updated.name).await?;
    }
    // A token switched to private_key_jwt gets its key now, as one created with it does (else
    // every token request would fail for want of a key to sign the assertion with).
    if changed.contains(&"client_auth")
        && updated.client_auth == Some(ClientAuthMethod::PrivateKeyJwt)
        && ctx
            .store
            .get_token_keys(updated.id)
            .await
            .map_err(Error::from)?
            .is_none()
    {
        crate::ops::grant::keypair::create_first_key(
            ctx,
            &updated,
            tokenwarden_crypto::keypair::KeyAlgorithm::Rs256,
            false,
        )
        .await?;
    }
    Ok(after_credentials_change(ctx, actor, &before, updated, &changed).await)
}

/// A new client secret, or a new expiry of it: a token that could serve gets its status from
/// its expiries again (no longer "expiring soon" for the old secret); one that expired with its
/// client secret is brought back if what it holds is still valid (its refresh token), and
/// [`after_credentials_change`] resumes its apps.
fn secret_renewed(ctx: &AppContext, before: &TokenRecord, t: &mut TokenRecord, now: Timestamp) {
    let first_lead = ctx.first_lead_time();
    if t.client_secret_expires_at.is_some_and(|e| e <= now) {
        return; // still (or again) expired: the background pass handles it
    }
    let died_of_secret = before.status == TokenStatus::Expired
        && before.client_secret_expires_at.is_some_and(|e| e <= now);
    let usable = matches!(t.status, TokenStatus::Healthy | TokenStatus::ExpiringSoon);
    let holds_material = t.material.access_token.is_some()
        && (!t.grant.renews_with_refresh_token()
            || (t.material.refresh_token.is_some()
                && t.material.refresh_expires_at.is_none_or(|e| e > now)));
    if usable || (died_of_secret && holds_material && t.grant.needs_sign_in()) {
        (t.status, t.status_reason) = crate::ops::grant::refresh::expiry_status(t, now, first_lead);
    }
}

/// After an edit: a token whose grant needs no sign-in gets a new access token with changed
/// credentials (which checks them, and brings back a token that needed new credentials or whose
/// secret expired: its apps resume); a token brought back by a new client secret
/// ([`secret_renewed`]) resumes its apps.
async fn after_credentials_change(
    ctx: &AppContext,
    actor: &str,
    before: &TokenRecord,
    updated: TokenRecord,
    changed: &[&str],
) -> TokenRecord {
    let credentials = changed.iter().any(|c| {
        matches!(
            *c,
            "client_secret" | "client_secret_2" | "client_id" | "client_auth" | "settings"
        )
    });
    let unusable = !matches!(
        updated.status,
        TokenStatus::Healthy | TokenStatus::ExpiringSoon
    );
    if !updated.grant.needs_sign_in() {
        if credentials || (unusable && changed.contains(&"client_secret_expires_at")) {
            return obtain_if_ready(ctx, actor, updated).await;
        }
        return updated;
    }
    if before.status.is_dead() && !unusable {
        crate::ops::lifecycle::token_authorized(ctx, &updated, before.status, actor).await;
    }
    updated
}

/// The apps whose reads of `before`'s name reach it (see `lifecycle::dependants`), when it is
/// renamed to `new`: refused while there are any unless `rebind` (the caller was shown them),
/// and refused when one of them already uses a token named `new` (the two would become one).
async fn apps_to_rebind(
    ctx: &AppContext,
    before: &TokenRecord,
    new: &TokenName,
    rebind: bool,
) -> Result<Vec<AppRecord>> {
    let users = crate::ops::lifecycle::dependants(ctx, before).await?;
    if users.is_empty() {
        return Ok(users);
    }
    let names = users
        .iter()
        .map(|a| a.name.as_str())
        .collect::<Vec<_>>()
        .join(", ");
    if !rebind {
        return Err(Error::Conflict(format!(
            "apps fetch token {} by that name: {names}. Renaming it to {new} would break their reads; to rename it and move those apps to the new name (they must then fetch {new}), ask for rebind_apps (\"rebind_apps\": true in the API, --rebind-apps in the CLI)",
            before.name
        )));
    }
    if let Some(clash) = users.iter().find(|a| a.tokens.contains(new)) {
        return Err(Error::Conflict(format!(
            "app {} already uses a token named {new}: rename this token to another name, or change the app's tokens first",
            clash.name
        )));
    }
    Ok(users)
}

/// Moves one app's binding from `old` to `new` (a rename of the token it uses), and an app
/// stopped while waiting for `old` now waits for `new` (so its re-authorization starts it).
async fn rebind_app(
    ctx: &AppContext,
    actor: &str,
    id: AppId,
    old: &TokenName,
    new: &TokenName,
) -> Result<()> {
    let app = retrying(None, move || async move {
        let mut app = ctx.store.get_app(id).await?;
        let Some(at) = app.tokens.iter().position(|t| t == old) else {
            return Ok(None);
        };
        app.tokens[at] = new.clone();
        app.tokens.sort();
        app.tokens.dedup();
        if let Some(StopReason::WaitingForToken { token }) = &mut app.stop_reason
            && *token == old.as_str()
        {
            *token = new.to_string();
        }
        Ok(Some(ctx.store.update_app(&app, ctx.clock.now()).await?))
    })
    .await;
    let app = match app {
        Ok(Some(app)) => app,
        Ok(None) | Err(Error::NotFound(_)) => return Ok(()), // changed or deleted meanwhile
        Err(e) => return Err(e),
    };
    ctx.cache.clear_served();
    audit::record(
        ctx,
        actor,
        Action::AppUpdate,
        Object::new("app", app.id, &app.name),
        Outcome::Ok,
        serde_json::json!({ "tokens": app.tokens, "token_renamed": [old, new] }),
    )
    .await;
    Ok(())
}

/// Deletes a token (apps that use it by name then find the global one, or none).
pub async fn delete(ctx: &AppContext, actor: &str, id: TokenId) -> Result<TokenRecord> {
    let t = get(ctx, id).await?;
    ctx.store.delete_token(t.id).await?;
    ctx.cache.clear_served();
    audit::record(
        ctx,
        actor,
        Action::TokenDelete,
        Object::new("token", t.id, &t.name),
        Outcome::Ok,
        serde_json::json!({}),
    )
    .await;
    Ok(t)
}

/// Stores pasted client credentials (Snowflake's `SYSTEM$SHOW_OAUTH_CLIENT_SECRETS` output
/// cell) in both slots, sealed. Anything that is not such a cell is refused and changes
/// nothing.
pub async fn paste_client_secrets(
    ctx: &AppContext,
    actor: &str,
    id: TokenId,
    pasted: &str,
) -> Result<TokenRecord> {
    let parsed = snowflake::parse_client_secrets(pasted).map_err(|e| Error::Invalid(e.0))?;
    let secret = seal(
        ctx,
        id,
        SealedColumn::TokenClientSecret,
        &parsed.client_secret,
    );
    let secret_2 = parsed
        .client_secret_2
        .as_ref()
        .map(|s| seal(ctx, id, SealedColumn::TokenClientSecret2, s));
    let (parsed, secret, secret_2) = (&parsed, &secret, &secret_2);
    let updated = retrying(None, move || async move {
        let mut t = get(ctx, id).await?;
        t.client_id = Some(parsed.client_id.clone());
        t.client_secret = Some(secret.clone());
        t.client_secret_2 = secret_2.clone();
        Ok(ctx.store.update_token(&t, ctx.clock.now()).await?)
    })
    .await?;
    ctx.cache.clear_served();
    audit::record(
        ctx,
        actor,
        Action::TokenClientSecrets,
        Object::new("token", updated.id, &updated.name),
        Outcome::Ok,
        serde_json::json!({"client_secret_2": updated.client_secret_2.is_some()}),
    )
    .await;
    Ok(updated)
}

/// The Snowflake setup for a token: the integration name (its setting, else `TW_` + the token
/// name), the refresh-token validity (its setting, else 90 days) and the SQL to run.
pub fn snowflake_setup(
    ctx: &AppContext,
    t: &TokenRecord,
) -> Result<
    (
        tokenwarden_oauth::snowflake::IntegrationName,
        u64,
        tokenwarden_oauth::snowflake::SetupSql,
    ),
    String,
> {
    use tokenwarden_oauth::snowflake::{self, IntegrationName};
    let setting = |k: &str| {
        t.settings
            .get(k)
            .map(|v| v.trim())
            .filter(|v| !v.is_empty())
    };
    let integration = match setting("integration_name") {
        Some(n) => IntegrationName::parse(n).map_err(|e| e.0)?,
        None => IntegrationName::for_token(t.name.as_str()),
    };
    let validity = match setting("refresh_token_validity") {
        Some(v) => v
            .parse()
            .map_err(|_| "refresh_token_validity must be a number of seconds".to_owned())?,
        None => snowflake::DEFAULT_REFRESH_VALIDITY,
    };
    let sql = snowflake::setup_sql(
        &integration,
        &ctx.settings.redirect_uri(),
        validity,
        &format!("tokenwarden token {}", t.name),
    )
    .map_err(|e| e.0)?;
    Ok((integration, validity, sql))
}

/// Where a token's secrets go: the token endpoint and the test URL its settings resolve to.
fn destinations(ctx: &AppContext, t: &TokenRecord) -> Option<(String, Option<String>)> {
    let p = ctx
        .catalog
        .resolve_for(t.provider.as_str(), &t.settings, t.grant)
        .ok()?;
    let probe = match p.probe {
        tokenwarden_oauth::Probe::SnowflakeSql { base_url, .. } => Some(base_url),
        tokenwarden_oauth::Probe::Url(u) => Some(u),
        tokenwarden_oauth::Probe::None => None,
    };
    Some((p.token_url, probe))
}

/// An edit that sends the token somewhere else (another token endpoint or test URL) must not
/// carry the stored secrets there: it needs the client secret again (`new_secret`), and the
/// token material, which belongs to the old server, is dropped (authorize again). Returns
/// whether the destination changed; `Err` with the reason when the secret is missing.
pub fn guard_destination_change(
    ctx: &AppContext,
    before: &TokenRecord,
    after: &mut TokenRecord,
    new_secret: bool,
) -> Result<bool, String> {
    let (Some(old), new) = (destinations(ctx, before), destinations(ctx, after)) else {
        return Ok(false); // nothing was ever sent anywhere
    };
    if new.as_ref() == Some(&old) {
        return Ok(false);
    }
    if !new_secret && (before.client_secret.is_some() || before.client_secret_2.is_some()) {
        return Err(format!(
            "this change sends the token to another server ({}); enter the client secret again with it, so the stored one never goes there",
            new.map(|n| n.0)
                .unwrap_or_else(|| "an unresolved endpoint".into())
        ));
    }
    if !new_secret {
        return Ok(true);
    }
    after.material = tokenwarden_store::TokenMaterial::default();
    after.status = TokenStatus::NotAuthorized;
    after.status_reason = Some("the provider settings changed: authorize again".into());
    if before.client_secret_2 == after.client_secret_2 {
        after.client_secret_2 = None;
    }
    Ok(true)
}
