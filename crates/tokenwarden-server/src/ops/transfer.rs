//! Export and import of the configuration: providers, tokens (settings, client ids), apps with
//! their token bindings, notification channels and the reminder lead times, as one versioned
//! JSON [`Document`]. Moving an instance (SQLite to PostgreSQL) is `export --with-secrets` on
//! the old one and `import` on the new one.
//!
//! Secrets (client secrets, each token's access and refresh token, webhook signing secrets,
//! app API keys as their hashes) are only in a document exported with a passphrase, sealed
//! together with a key derived from it by argon2id ([`tokenwarden_crypto::seal_with_passphrase`]).
//!
//! Export reads every list a page at a time ([`crate::ops::lists`]). Import matches objects by
//! name (apps; tokens by their app and name; channels by their app, kind and name), creates what
//! is missing and changes what differs through the same operations as any other door
//! ([`crate::ops::apps`], [`crate::ops::tokens`], [`crate::ops::channels`]), so validation and
//! audit records are theirs; importing the same document again changes nothing. With
//! `dry_run` it only lists what it would do.

use crate::AppContext;
use crate::ops::audit::{self, Action, Object, Outcome};
use crate::ops::lists::{self, MAX_LIMIT, PageParams};
use crate::ops::{Error, Result, apps, channels, retrying, tokens};
use base64::Engine as _;
use secrecy::{ExposeSecret, SecretString};
use std::collections::{BTreeMap, HashMap};
use tokenwarden_domain::clock::{from_millis, to_millis};
use tokenwarden_domain::{
    ApiKeyId, AppId, AppName, AppState, KeyLabel, LeadTime, ProviderId, StopReason, TokenName,
    TokenStatus,
};
use tokenwarden_store::{
    ApiKeyKind, ApiKeyRecord, AppRecord, ChannelRecord, Sealed, SealedColumn, StoreError,
    TokenFilter, TokenMaterial, TokenRecord,
};

/// The document's `format`.
pub const FORMAT: &str = "tokenwarden-export";
/// The document's `version`; a newer one is refused.
pub const VERSION: u32 = 1;
/// What the secrets are bound to when sealed (another document kind cannot take them).
const SEAL_CONTEXT: &str = "tokenwarden-export v1 secrets";

/// One export: everything an instance is configured with, secrets only sealed.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Document {
    pub format: String,
    pub version: u32,
    pub exported_at: String,
    /// The provider definitions the tokens use (the built-in ones and those of a providers
    /// folder), as the catalog describes them: an import refuses a document whose providers the
    /// target does not know (the definitions are there to copy into its providers folder).
    pub providers: Vec<serde_json::Value>,
    /// The reminder lead times an admin set (`None`: the configured defaults).
    #[serde(default)]
    pub reminder_lead_times: Option<Vec<String>>,
    pub apps: Vec<AppDoc>,
    pub tokens: Vec<TokenDoc>,
    pub channels: Vec<ChannelDoc>,
    /// Present with `--with-secrets`: [`Secrets`] sealed with the passphrase.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secrets: Option<SealedSecrets>,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppDoc {
    pub name: AppName,
    /// The token names it uses.
    pub tokens: Vec<TokenName>,
    /// Stopped by an admin (an app waiting for a token follows the token instead).
    #[serde(default)]
    pub stopped: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenDoc {
    pub name: TokenName,
    /// The owning app of an app-level token; `None` for a global one.
    #[serde(default)]
    pub app: Option<AppName>,
    pub provider: ProviderId,
    /// How the token gets its access tokens; absent in older documents (authorization code).
    #[serde(default)]
    pub grant: tokenwarden_domain::Grant,
    #[serde(default)]
    pub settings: BTreeMap<String, String>,
    #[serde(default)]
    pub client_id: Option<String>,
    /// The token's own client authentication; absent: the provider's default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_auth: Option<tokenwarden_domain::ClientAuthMethod>,
    /// When the client secret expires at the provider, if known (RFC 3339).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "tokenwarden_domain::clock::rfc3339_opt"
    )]
    pub client_secret_expires_at: Option<tokenwarden_domain::Timestamp>,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChannelDoc {
    pub name: String,
    /// `webhook` or `email`.
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<Vec<String>>,
    /// Event kinds it hears; empty = all.
    #[serde(default)]
    pub events: Vec<String>,
    /// Only about this app and the tokens it uses.
    #[serde(default)]
    pub app: Option<AppName>,
    pub enabled: bool,
}

/// [`Secrets`] as JSON, sealed with AES-256-GCM under a key derived from the passphrase by
/// argon2id with these parameters; binary fields base64.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SealedSecrets {
    /// Always `argon2id`.
    pub kdf: String,
    pub m_cost_kib: u32,
    pub t_cost: u32,
    pub p_cost: u32,
    pub salt: String,
    /// `nonce (12) | ciphertext+tag`.
    pub sealed: String,
}

/// The plaintext of [`SealedSecrets`]. Never logged (its `Debug` shows counts).
#[derive(Default, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Secrets {
    tokens: Vec<TokenSecrets>,
    channels: Vec<ChannelSecret>,
    api_keys: Vec<ApiKeyDoc>,
}

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Secrets({} tokens, {} channels, {} API keys)",
            self.tokens.len(),
            self.channels.len(),
            self.api_keys.len()
        )
    }
}

#[derive(Clone, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenSecrets {
    app: Option<AppName>,
    name: TokenName,
    client_secret: Option<String>,
    client_secret_2: Option<String>,
    access_token: Option<String>,
    refresh_token: Option<String>,
    token_type: Option<String>,
    scopes: Option<String>,
    /// Epoch milliseconds.
    access_expires_at: Option<i64>,
    refresh_expires_at: Option<i64>,
    issued_at: Option<i64>,
    status: TokenStatus,
    status_reason: Option<String>,
    /// The signing keys tokenwarden generated for the token (a Snowflake key-pair token, a
    /// `private_key_jwt` client), PKCS#8 PEM: without them the imported token would need its
    /// public key set at the provider again. Absent in documents from before issue 12.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    signing_keys: Option<SigningKeys>,
}

#[derive(Clone, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct SigningKeys {
    signing_key: String,
    signing_key_next: Option<String>,
    /// Snowflake: the user property holding `signing_key`'s public key.
    slot: Option<String>,
}

#[derive(Clone, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct ChannelSecret {
    app: Option<AppName>,
    kind: String,
    name: String,
    secret: String,
}

/// An app's API key as stored: its id (part of the key's text) and the SHA-256 of its secret
/// part, so that the apps' keys keep working on the new instance.
#[derive(Clone, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct ApiKeyDoc {
    app: AppName,
    id: ApiKeyId,
    label: KeyLabel,
    secret_hash: String,
    created_at: i64,
    revoked_at: Option<i64>,
}

/// What an import did (or, in a dry run, would do).
#[derive(Debug, Default)]
pub struct ImportReport {
    /// One line per change, e.g. `create app sales`, `update token sales/warehouse: settings`.
    pub changes: Vec<String>,
    /// The first API key of each app created by a document without its keys: shown once.
    pub new_api_keys: Vec<(AppName, SecretString)>,
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn unb64(what: &str, text: &str) -> Result<Vec<u8>> {
    base64::engine::general_purpose::STANDARD
        .decode(text)
        .map_err(|_| Error::Invalid(format!("{what} is not base64")))
}

/// Every page of a list, [`MAX_LIMIT`] rows at a time.
async fn all_pages<T, F: Future<Output = Result<lists::Page<T>>>>(
    mut page: impl FnMut(PageParams) -> F,
) -> Result<Vec<T>> {
    let mut all = Vec::new();
    let mut params = PageParams {
        limit: Some(MAX_LIMIT),
        cursor: None,
    };
    loop {
        let p = page(params.clone()).await?;
        all.extend(p.items);
        match p.next_cursor {
            Some(c) => params.cursor = Some(c),
            None => return Ok(all),
        }
    }
}

async fn open(
    ctx: &AppContext,
    sealed: &Option<Sealed>,
    column: SealedColumn,
    row: &str,
) -> Result<Option<String>> {
    match sealed {
        Some(s) => Ok(Some(
            ctx.vault
                .open_secret(s, column, row)
                .await
                .map_err(Error::internal)?
                .expose_secret()
                .to_owned(),
        )),
        None => Ok(None),
    }
}

/// The export document; with a passphrase, with the secrets sealed under it. `actor` is
/// recorded in the audit log (an export with secrets is worth knowing about).
pub async fn export(
    ctx: &AppContext,
    actor: &str,
    passphrase: Option<&SecretString>,
) -> Result<Document> {
    let app_records: Vec<AppRecord> =
        all_pages(|p| async move { lists::apps(ctx, &p).await }).await?;
    let app_names: HashMap<AppId, AppName> =
        app_records.iter().map(|a| (a.id, a.name.clone())).collect();
    let app_name = |id: Option<AppId>| -> Result<Option<AppName>> {
        id.map(|id| {
            app_names
                .get(&id)
                .cloned()
                .ok_or_else(|| Error::internal(format!("app {id} vanished while exporting")))
        })
        .transpose()
    };
    let filter = TokenFilter::default();
    let filter = &filter;
    let token_records: Vec<TokenRecord> =
        all_pages(|p| async move { lists::tokens(ctx, filter, &p).await }).await?;
    let channel_records: Vec<ChannelRecord> =
        all_pages(|p| async move { lists::channels(ctx, &p).await }).await?;

    let mut provider_ids: Vec<&ProviderId> = token_records.iter().map(|t| &t.provider).collect();
    provider_ids.sort();
    provider_ids.dedup();
    let providers = provider_ids
        .iter()
        .filter_map(|p| ctx.catalog.get(p.as_str()))
        .map(serde_json::to_value)
        .collect::<std::result::Result<_, _>>()
        .map_err(Error::internal)?;
    let reminder_lead_times = match ctx.store.get_meta(channels::LEAD_TIMES_KEY).await? {
        Some(json) => Some(serde_json::from_str(&json).map_err(Error::internal)?),
        None => None,
    };

    let mut doc = Document {
        format: FORMAT.into(),
        version: VERSION,
        exported_at: ctx.clock.now().to_rfc3339(),
        providers,
        reminder_lead_times,
        apps: app_records
            .iter()
            .map(|a| AppDoc {
                name: a.name.clone(),
                tokens: a.tokens.clone(),
                stopped: a.state == AppState::Stopped && a.stop_reason == Some(StopReason::Admin),
            })
            .collect(),
        tokens: Vec::with_capacity(token_records.len()),
        channels: Vec::with_capacity(channel_records.len()),
        secrets: None,
    };
    for t in &token_records {
        doc.tokens.push(TokenDoc {
            name: t.name.clone(),
            app: app_name(t.app_id)?,
            provider: t.provider.clone(),
            grant: t.grant,
            settings: t.settings.clone(),
            client_id: t.client_id.clone(),
            client_auth: t.client_auth,
            client_secret_expires_at: t.client_secret_expires_at,
        });
    }
    for c in &channel_records {
        let ch = channels::Channel::of(c);
        let (url, to) = match ch.target {
            channels::Target::Webhook { url } => (Some(url), None),
            channels::Target::Email { to } => (None, Some(to)),
        };
        doc.channels.push(ChannelDoc {
            name: c.name.clone(),
            kind: c.kind.clone(),
            url,
            to,
            events: ch.events.iter().map(|e| e.as_str().to_owned()).collect(),
            app: app_name(c.app_id)?,
            enabled: c.enabled,
        });
    }

    if let Some(pass) = passphrase {
        let mut secrets = Secrets::default();
        for t in &token_records {
            let row = t.id.to_string();
            let m = &t.material;
            secrets.tokens.push(TokenSecrets {
                app: app_name(t.app_id)?,
                name: t.name.clone(),
                client_secret: open(ctx, &t.client_secret, SealedColumn::TokenClientSecret, &row)
                    .await?,
                client_secret_2: open(
                    ctx,
                    &t.client_secret_2,
                    SealedColumn::TokenClientSecret2,
                    &row,
                )
                .await?,
                access_token: open(ctx, &m.access_token, SealedColumn::TokenAccessToken, &row)
                    .await?,
                refresh_token: open(ctx, &m.refresh_token, SealedColumn::TokenRefreshToken, &row)
                    .await?,
                token_type: m.token_type.clone(),
                scopes: m.scopes.clone(),
                access_expires_at: m.access_expires_at.map(to_millis),
                refresh_expires_at: m.refresh_expires_at.map(to_millis),
                issued_at: m.issued_at.map(to_millis),
                status: t.status,
                status_reason: t.status_reason.clone(),
                signing_keys: match ctx.store.get_token_keys(t.id).await? {
                    Some(k) => Some(SigningKeys {
                        signing_key: open(
                            ctx,
                            &Some(k.signing_key),
                            SealedColumn::TokenSigningKey,
                            &row,
                        )
                        .await?
                        .unwrap_or_default(),
                        signing_key_next: open(
                            ctx,
                            &k.signing_key_next,
                            SealedColumn::TokenSigningKeyNext,
                            &row,
                        )
                        .await?,
                        slot: k.slot,
                    }),
                    None => None,
                },
            });
        }
        for c in &channel_records {
            if let Some(secret) = open(ctx, &c.secret, SealedColumn::ChannelSecret, &c.id).await? {
                secrets.channels.push(ChannelSecret {
                    app: app_name(c.app_id)?,
                    kind: c.kind.clone(),
                    name: c.name.clone(),
                    secret,
                });
            }
        }
        for a in &app_records {
            let id = a.id;
            let keys: Vec<ApiKeyRecord> =
                all_pages(|p| async move { lists::api_keys(ctx, id, &p).await }).await?;
            for k in keys {
                secrets.api_keys.push(ApiKeyDoc {
                    app: a.name.clone(),
                    id: k.id,
                    label: k.label,
                    secret_hash: b64(&k.secret_hash),
                    created_at: to_millis(k.created_at),
                    revoked_at: k.revoked_at.map(to_millis),
                });
            }
        }
        let plain = zeroize::Zeroizing::new(serde_json::to_vec(&secrets).map_err(Error::internal)?);
        let sealed = tokenwarden_crypto::seal_with_passphrase(pass, &plain, SEAL_CONTEXT)
            .map_err(|e| Error::Invalid(e.to_string()))?;
        doc.secrets = Some(SealedSecrets {
            kdf: "argon2id".into(),
            m_cost_kib: sealed.m_cost_kib,
            t_cost: sealed.t_cost,
            p_cost: sealed.p_cost,
            salt: b64(&sealed.salt),
            sealed: b64(&sealed.sealed),
        });
    }
    audit::record(
        ctx,
        actor,
        Action::ConfigExport,
        Object::new("settings", "configuration", "configuration"),
        Outcome::Ok,
        serde_json::json!({
            "apps": doc.apps.len(), "tokens": doc.tokens.len(), "channels": doc.channels.len(),
            "with_secrets": doc.secrets.is_some(),
        }),
    )
    .await;
    Ok(doc)
}

fn open_secrets(doc: &Document, passphrase: Option<&SecretString>) -> Result<Option<Secrets>> {
    let Some(s) = &doc.secrets else {
        return Ok(None);
    };
    let Some(pass) = passphrase else {
        return Err(Error::Invalid(
            "the document holds sealed secrets: give the passphrase it was exported with".into(),
        ));
    };
    if s.kdf != "argon2id" {
        return Err(Error::Invalid(format!(
            "unknown key derivation {:?} (this version reads argon2id)",
            s.kdf
        )));
    }
    let sealed = tokenwarden_crypto::PassphraseSealed {
        m_cost_kib: s.m_cost_kib,
        t_cost: s.t_cost,
        p_cost: s.p_cost,
        salt: unb64("secrets.salt", &s.salt)?,
        sealed: unb64("secrets.sealed", &s.sealed)?,
    };
    let plain = tokenwarden_crypto::open_with_passphrase(pass, &sealed, SEAL_CONTEXT).map_err(
        |e| match e {
            tokenwarden_crypto::CryptoError::Authentication => Error::Invalid(
                "the passphrase is wrong, or the document's secrets were altered".into(),
            ),
            other => Error::Invalid(format!("the document's secrets: {other}")),
        },
    )?;
    serde_json::from_slice(&plain)
        .map(Some)
        .map_err(|e| Error::Invalid(format!("the document's secrets do not read: {e}")))
}

fn scope(app: Option<&AppName>, name: &str) -> String {
    match app {
        Some(a) => format!("{a}/{name}"),
        None => name.to_owned(),
    }
}

/// Applies `doc` (see the module's documentation); with `dry_run`, changes nothing and reports
/// what it would do.
pub async fn import(
    ctx: &AppContext,
    actor: &str,
    doc: &Document,
    passphrase: Option<&SecretString>,
    dry_run: bool,
) -> Result<ImportReport> {
    if doc.format != FORMAT {
        return Err(Error::Invalid(format!(
            "not a tokenwarden export (format {:?}, expected {FORMAT:?})",
            doc.format
        )));
    }
    if doc.version > VERSION {
        return Err(Error::Invalid(format!(
            "the document's version is {}, newer than this tokenwarden reads ({VERSION}): import it with a newer tokenwarden",
            doc.version
        )));
    }
    let missing: Vec<&str> = {
        let mut m: Vec<&str> = doc
            .tokens
            .iter()
            .map(|t| t.provider.as_str())
            .filter(|p| ctx.catalog.get(p).is_none())
            .collect();
        m.sort_unstable();
        m.dedup();
        m
    };
    if !missing.is_empty() {
        return Err(Error::Invalid(format!(
            "this instance does not know the provider(s) {}: add their definitions to its \
             providers folder (the document's `providers` holds them) and import again",
            missing.join(", ")
        )));
    }
    let secrets = open_secrets(doc, passphrase)?;
    let mut report = ImportReport::default();

    // Reminder lead times.
    if let Some(leads) = &doc.reminder_lead_times {
        let current: Option<Vec<String>> =
            match ctx.store.get_meta(channels::LEAD_TIMES_KEY).await? {
                Some(json) => serde_json::from_str(&json).ok(),
                None => None,
            };
        if current.as_ref() != Some(leads) {
            let parsed = leads
                .iter()
                .map(|l| {
                    LeadTime::parse(l)
                        .map_err(|e| Error::Invalid(format!("reminder_lead_times: {e}")))
                })
                .collect::<Result<Vec<_>>>()?;
            report
                .changes
                .push(format!("set reminder lead times {}", leads.join(", ")));
            if !dry_run {
                channels::set_lead_times(ctx, actor, parsed).await?;
            }
        }
    }

    // Apps and their bindings.
    let with_keys: std::collections::HashSet<&AppName> = secrets
        .as_ref()
        .map(|s| s.api_keys.iter().map(|k| &k.app).collect())
        .unwrap_or_default();
    let mut app_ids: HashMap<AppName, AppId> = HashMap::new();
    for a in &doc.apps {
        match ctx.store.get_app_by_name(&a.name).await {
            Ok(existing) => {
                app_ids.insert(a.name.clone(), existing.id);
                let mut wanted = a.tokens.clone();
                wanted.sort();
                wanted.dedup();
                if existing.tokens != wanted {
                    report
                        .changes
                        .push(format!("update app {}: tokens", a.name));
                    if !dry_run {
                        apps::update(
                            ctx,
                            actor,
                            existing.id,
                            apps::AppChanges {
                                tokens: Some(wanted),
                                ..Default::default()
                            },
                        )
                        .await?;
                    }
                }
                let stopped_by_admin = existing.state == AppState::Stopped
                    && existing.stop_reason == Some(StopReason::Admin);
                if a.stopped && existing.state == AppState::Running {
                    report.changes.push(format!("stop app {}", a.name));
                    if !dry_run {
                        apps::stop(ctx, actor, existing.id).await?;
                    }
                } else if !a.stopped && stopped_by_admin {
                    report.changes.push(format!("start app {}", a.name));
                    if !dry_run {
                        apps::start(ctx, actor, existing.id).await?;
                    }
                }
            }
            Err(StoreError::NotFound(_)) => {
                report.changes.push(format!("create app {}", a.name));
                if a.stopped {
                    report.changes.push(format!("stop app {}", a.name));
                }
                if dry_run {
                    continue;
                }
                let (app, key) = apps::create(
                    ctx,
                    actor,
                    apps::NewApp {
                        name: a.name.clone(),
                        tokens: a.tokens.clone(),
                    },
                )
                .await?;
                app_ids.insert(a.name.clone(), app.id);
                if with_keys.contains(&a.name) {
                    // Its keys come with the document: the new first key is not needed.
                    apps::revoke_key(ctx, actor, app.id, &key.record.id.to_string()).await?;
                } else {
                    report.new_api_keys.push((a.name.clone(), key.text));
                }
                if a.stopped {
                    apps::stop(ctx, actor, app.id).await?;
                }
            }
            Err(e) => return Err(e.into()),
        }
    }
    let app_id = |name: &Option<AppName>| -> Result<Option<AppId>> {
        match name {
            None => Ok(None),
            Some(n) => app_ids.get(n).copied().map(Some).ok_or_else(|| {
                Error::Invalid(format!(
                    "the document refers to app {n}, which it does not list"
                ))
            }),
        }
    };

    // Tokens, with their secrets when the document has them.
    let token_secrets: HashMap<(Option<&AppName>, &TokenName), &TokenSecrets> = secrets
        .as_ref()
        .map(|s| {
            s.tokens
                .iter()
                .map(|t| ((t.app.as_ref(), &t.name), t))
                .collect()
        })
        .unwrap_or_default();
    for t in &doc.tokens {
        let label = scope(t.app.as_ref(), t.name.as_str());
        let sec = token_secrets.get(&(t.app.as_ref(), &t.name)).copied();
        let secret = |s: &Option<String>| s.clone().map(SecretString::from);
        let owner = if dry_run && t.app.as_ref().is_some_and(|a| !app_ids.contains_key(a)) {
            // A dry run creates no app, so neither can a token of a new app exist.
            report.changes.push(format!("create token {label}"));
            continue;
        } else {
            app_id(&t.app)?
        };
        let found = match ctx.store.find_token(owner, &t.name).await {
            Ok(found) => Some(found),
            Err(StoreError::NotFound(_)) => None,
            Err(e) => return Err(e.into()),
        };
        let token = match found {
            None => {
                report.changes.push(format!("create token {label}"));
                if dry_run {
                    if sec.is_some_and(|s| s.signing_keys.is_some()) {
                        report
                            .changes
                            .push(format!("import signing key of token {label}"));
                    }
                    if sec.is_some_and(|s| s.refresh_token.is_some() || s.access_token.is_some()) {
                        report
                            .changes
                            .push(format!("import material of token {label}"));
                    }
                    continue;
                }
                tokens::create(
                    ctx,
                    actor,
                    tokens::NewToken {
                        name: t.name.clone(),
                        provider: t.provider.clone(),
                        app: t.app.clone(),
                        settings: t.settings.clone(),
                        client_id: t.client_id.clone(),
                        client_secret: sec.and_then(|s| secret(&s.client_secret)),
                        client_secret_2: sec.and_then(|s| secret(&s.client_secret_2)),
                        grant: t.grant,
                        client_auth: t.client_auth,
                        client_secret_expires_at: t.client_secret_expires_at,
                    },
                )
                .await?
            }
            Some(existing) => {
                if existing.provider != t.provider {
                    return Err(Error::Conflict(format!(
                        "token {label} uses provider {} here and {} in the document; delete or rename one first",
                        existing.provider, t.provider
                    )));
                }
                if existing.grant != t.grant {
                    return Err(Error::Conflict(format!(
                        "token {label} uses the grant {} here and {} in the document (a grant is fixed at creation); delete or rename one first",
                        existing.grant, t.grant
                    )));
                }
                let row = existing.id.to_string();
                let mut changes = tokens::TokenChanges::default();
                let mut what = Vec::new();
                if existing.settings != t.settings {
                    changes.settings = Some(t.settings.clone());
                    what.push("settings");
                }
                if existing.client_id != t.client_id {
                    changes.client_id = Some(t.client_id.clone());
                    what.push("client_id");
                }
                if existing.client_auth != t.client_auth {
                    changes.client_auth = Some(t.client_auth);
                    what.push("client_auth");
                }
                if existing.client_secret_expires_at != t.client_secret_expires_at {
                    changes.client_secret_expires_at = Some(t.client_secret_expires_at);
                    what.push("client_secret_expires_at");
                }
                if let Some(s) = sec {
                    let have = open(
                        ctx,
                        &existing.client_secret,
                        SealedColumn::TokenClientSecret,
                        &row,
                    )
                    .await?;
                    if s.client_secret.is_some() && have != s.client_secret {
                        changes.client_secret = secret(&s.client_secret);
                        what.push("client_secret");
                    }
                    let have2 = open(
                        ctx,
                        &existing.client_secret_2,
                        SealedColumn::TokenClientSecret2,
                        &row,
                    )
                    .await?;
                    if have2 != s.client_secret_2 {
                        changes.client_secret_2 = Some(secret(&s.client_secret_2));
                        what.push("client_secret_2");
                    }
                }
                if what.is_empty() {
                    existing
                } else {
                    report
                        .changes
                        .push(format!("update token {label}: {}", what.join(", ")));
                    if dry_run {
                        existing
                    } else {
                        tokens::update(ctx, actor, existing.id, changes).await?
                    }
                }
            }
        };
        if let Some(keys) = sec.and_then(|s| s.signing_keys.as_ref()) {
            let row = token.id.to_string();
            let have = match ctx.store.get_token_keys(token.id).await? {
                Some(k) => Some((
                    open(
                        ctx,
                        &Some(k.signing_key.clone()),
                        SealedColumn::TokenSigningKey,
                        &row,
                    )
                    .await?,
                    k,
                )),
                None => None,
            };
            if have.as_ref().map(|(pem, _)| pem.as_deref()) != Some(Some(keys.signing_key.as_str()))
            {
                report
                    .changes
                    .push(format!("import signing key of token {label}"));
                if !dry_run {
                    import_signing_keys(ctx, actor, &token, keys, have.map(|(_, k)| k.version))
                        .await?;
                }
            }
        }
        if let Some(s) = sec
            && (s.refresh_token.is_some() || s.access_token.is_some())
        {
            let row = token.id.to_string();
            let have_refresh = open(
                ctx,
                &token.material.refresh_token,
                SealedColumn::TokenRefreshToken,
                &row,
            )
            .await?;
            let have_access = open(
                ctx,
                &token.material.access_token,
                SealedColumn::TokenAccessToken,
                &row,
            )
            .await?;
            if have_refresh != s.refresh_token || have_access != s.access_token {
                report
                    .changes
                    .push(format!("import material of token {label}"));
                if !dry_run {
                    import_material(ctx, actor, &token, s).await?;
                }
            }
        }
    }

    // Notification channels, matched by app, kind and name.
    let existing_channels: Vec<ChannelRecord> =
        all_pages(|p| async move { lists::channels(ctx, &p).await }).await?;
    let channel_secrets: HashMap<(Option<&AppName>, &str, &str), &str> = secrets
        .as_ref()
        .map(|s| {
            s.channels
                .iter()
                .map(|c| {
                    (
                        (c.app.as_ref(), c.kind.as_str(), c.name.as_str()),
                        c.secret.as_str(),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    for c in &doc.channels {
        let label = scope(c.app.as_ref(), &c.name);
        let events = channels::parse_events(&c.events)?;
        let kind = channels::parse_kind(&c.kind)?;
        let target = match kind {
            tokenwarden_domain::ChannelKind::Webhook => channels::Target::Webhook {
                url: c.url.clone().ok_or_else(|| {
                    Error::Invalid(format!("channel {label}: a webhook needs a url"))
                })?,
            },
            tokenwarden_domain::ChannelKind::Email => channels::Target::Email {
                to: c.to.clone().ok_or_else(|| {
                    Error::Invalid(format!("channel {label}: an email channel needs `to`"))
                })?,
            },
        };
        let owner = match &c.app {
            Some(a) if !app_ids.contains_key(a) && dry_run => None,
            other => app_id(other)?,
        };
        let found = existing_channels
            .iter()
            .find(|e| e.app_id == owner && e.kind == c.kind && e.name == c.name);
        let secret = channel_secrets
            .get(&(c.app.as_ref(), c.kind.as_str(), c.name.as_str()))
            .copied();
        let rec = match found {
            None => {
                report.changes.push(format!("create channel {label}"));
                if dry_run {
                    if secret.is_some() {
                        report
                            .changes
                            .push(format!("import signing secret of channel {label}"));
                    }
                    continue;
                }
                channels::create(
                    ctx,
                    actor,
                    channels::NewChannel {
                        name: c.name.clone(),
                        target,
                        events,
                        app: c.app.as_ref().map(ToString::to_string),
                        enabled: c.enabled,
                    },
                )
                .await?
                .0
            }
            Some(e) => {
                let now = channels::Channel::of(e);
                let mut changes = channels::ChannelChanges::default();
                let mut what = Vec::new();
                match (&now.target, &target) {
                    (
                        channels::Target::Webhook { url: a },
                        channels::Target::Webhook { url: b },
                    ) if a != b => {
                        changes.url = Some(b.clone());
                        what.push("url");
                    }
                    (channels::Target::Email { to: a }, channels::Target::Email { to: b })
                        if a != b =>
                    {
                        changes.to = Some(b.clone());
                        what.push("to");
                    }
                    _ => {}
                }
                if now.events != events {
                    changes.events = Some(events);
                    what.push("events");
                }
                if e.enabled != c.enabled {
                    changes.enabled = Some(c.enabled);
                    what.push("enabled");
                }
                if what.is_empty() {
                    e.clone()
                } else {
                    report
                        .changes
                        .push(format!("update channel {label}: {}", what.join(", ")));
                    if dry_run {
                        e.clone()
                    } else {
                        channels::update(ctx, actor, &e.id, changes).await?
                    }
                }
            }
        };
        if let Some(secret) = secret {
            let have = open(ctx, &rec.secret, SealedColumn::ChannelSecret, &rec.id).await?;
            if have.as_deref() != Some(secret) {
                report
                    .changes
                    .push(format!("import signing secret of channel {label}"));
                if !dry_run {
                    import_channel_secret(ctx, actor, &rec.id, secret).await?;
                }
            }
        }
    }

    // The apps' API keys (documents with secrets).
    if let Some(s) = &secrets {
        for k in &s.api_keys {
            let Some(&app) = app_ids.get(&k.app) else {
                report
                    .changes
                    .push(format!("import API key {} of app {}", k.id, k.app));
                continue;
            };
            match ctx.store.get_api_key(k.id).await {
                Ok(have) => {
                    if have.app_id != Some(app)
                        || have.secret_hash != unb64("api key hash", &k.secret_hash)?
                    {
                        return Err(Error::Conflict(format!(
                            "API key {} exists here for something else; it was not imported",
                            k.id
                        )));
                    }
                    if k.revoked_at.is_some() && have.revoked_at.is_none() {
                        report
                            .changes
                            .push(format!("revoke API key {} of app {}", k.id, k.app));
                        if !dry_run {
                            apps::revoke_key(ctx, actor, app, &k.id.to_string()).await?;
                        }
                    }
                }
                Err(StoreError::NotFound(_)) => {
                    report
                        .changes
                        .push(format!("import API key {} of app {}", k.id, k.app));
                    if !dry_run {
                        import_api_key(ctx, actor, app, &k.app, k).await?;
                    }
                }
                Err(e) => return Err(e.into()),
            }
        }
    }
    Ok(report)
}

/// Puts a token's material (access and refresh token, expiries, status) from a document in
/// place, sealed for this row. Written over the version read, re-read on a concurrent write.
async fn import_material(
    ctx: &AppContext,
    actor: &str,
    token: &TokenRecord,
    s: &TokenSecrets,
) -> Result<()> {
    let id = token.id;
    let row = id.to_string();
    let seal = |v: &Option<String>, column| {
        v.as_ref()
            .map(|v| ctx.vault.seal(&SecretString::from(v.clone()), column, &row))
    };
    let material = TokenMaterial {
        access_token: seal(&s.access_token, SealedColumn::TokenAccessToken),
        refresh_token: seal(&s.refresh_token, SealedColumn::TokenRefreshToken),
        token_type: s.token_type.clone(),
        scopes: s.scopes.clone(),
        access_expires_at: s.access_expires_at.map(from_millis),
        refresh_expires_at: s.refresh_expires_at.map(from_millis),
        issued_at: s.issued_at.map(from_millis),
    };
    let (material, status, reason) = (&material, s.status, &s.status_reason);
    let updated = retrying(None, move || async move {
        let mut t = tokens::get(ctx, id).await?;
        t.material = material.clone();
        t.status = status;
        t.status_reason = reason.clone();
        Ok(ctx.store.update_token(&t, ctx.clock.now()).await?)
    })
    .await?;
    ctx.cache.clear_served();
    audit::record(
        ctx,
        actor,
        Action::TokenUpdate,
        Object::new("token", updated.id, &updated.name),
        Outcome::Ok,
        serde_json::json!({ "changed": ["material"], "status": updated.status, "via": "import" }),
    )
    .await;
    Ok(())
}

/// Puts a token's signing keys from a document in place (over the key its creation here may
/// have generated), sealed for this row.
async fn import_signing_keys(
    ctx: &AppContext,
    actor: &str,
    token: &TokenRecord,
    keys: &SigningKeys,
    version: Option<i64>,
) -> Result<()> {
    let row = token.id.to_string();
    let seal = |v: &str, column| {
        ctx.vault
            .seal(&SecretString::from(v.to_owned()), column, &row)
    };
    let record = tokenwarden_store::TokenKeys {
        token_id: token.id,
        signing_key: seal(&keys.signing_key, SealedColumn::TokenSigningKey),
        signing_key_next: keys
            .signing_key_next
            .as_deref()
            .map(|k| seal(k, SealedColumn::TokenSigningKeyNext)),
        slot: keys.slot.clone(),
        version: version.unwrap_or(0),
        updated_at: ctx.clock.now(),
    };
    ctx.store
        .put_token_keys(&record, version, ctx.clock.now())
        .await?;
    audit::record(
        ctx,
        actor,
        Action::TokenUpdate,
        Object::new("token", token.id, &token.name),
        Outcome::Ok,
        serde_json::json!({ "changed": ["signing_key"], "via": "import" }),
    )
    .await;
    Ok(())
}

/// Replaces a webhook channel's signing secret with the one from a document (receivers keep
/// verifying with the secret they have).
async fn import_channel_secret(
    ctx: &AppContext,
    actor: &str,
    id: &str,
    secret: &str,
) -> Result<()> {
    let sealed = ctx.vault.seal(
        &SecretString::from(secret.to_owned()),
        SealedColumn::ChannelSecret,
        id,
    );
    let sealed = &sealed;
    let c = retrying(None, move || async move {
        let mut c = channels::get(ctx, id).await?;
        c.secret = Some(sealed.clone());
        c.updated_at = ctx.clock.now();
        Ok(ctx.store.update_channel(&c).await?)
    })
    .await?;
    audit::record(
        ctx,
        actor,
        Action::ChannelUpdate,
        Object::new("channel", &c.id, &c.name),
        Outcome::Ok,
        serde_json::json!({ "changed": ["secret"], "via": "import" }),
    )
    .await;
    Ok(())
}

/// Adds an app's API key from a document (its id and hash: the app's key keeps working).
async fn import_api_key(
    ctx: &AppContext,
    actor: &str,
    app: AppId,
    app_name: &AppName,
    k: &ApiKeyDoc,
) -> Result<()> {
    let record = ApiKeyRecord {
        id: k.id,
        kind: ApiKeyKind::App,
        app_id: Some(app),
        label: k.label.clone(),
        secret_hash: unb64("api key hash", &k.secret_hash)?,
        created_at: from_millis(k.created_at),
        revoked_at: k.revoked_at.map(from_millis),
    };
    if record.secret_hash.len() != 32 {
        return Err(Error::Invalid(format!(
            "API key {}: the hash is not SHA-256",
            k.id
        )));
    }
    ctx.store.create_api_key(&record).await?;
    audit::record(
        ctx,
        actor,
        Action::AppKeyCreate,
        Object::new("app", app, app_name),
        Outcome::Ok,
        serde_json::json!({ "api_key_id": k.id, "label": k.label, "via": "import" }),
    )
    .await;
    Ok(())
}
