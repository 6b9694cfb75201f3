//! What the store keeps. Secret fields are [`Sealed`]: ciphertext made by tokenwarden-crypto;
//! the store never sees plaintext.

use std::collections::BTreeMap;
use tokenwarden_domain::{
    ApiKeyId, AppId, AppName, AppState, ClientAuthMethod, Expiring, Grant, KeyLabel, ProviderId,
    StopReason, Timestamp, TokenId, TokenName, TokenStatus,
};

/// Ciphertext of a secret. Its `Debug` shows only its length.
#[derive(Clone, PartialEq, Eq)]
pub struct Sealed(pub Vec<u8>);

impl std::fmt::Debug for Sealed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Sealed({} bytes)", self.0.len())
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppRecord {
    pub id: AppId,
    pub name: AppName,
    pub state: AppState,
    pub stop_reason: Option<StopReason>,
    /// Names of the tokens the app uses, sorted.
    pub tokens: Vec<TokenName>,
    pub version: i64,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// What the read path needs of an app ([`crate::Store::app_reading`]): who it is, whether it
/// runs, and whether it uses one token name; not its whole list of tokens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppReading {
    pub id: AppId,
    pub name: AppName,
    pub state: AppState,
    pub stop_reason: Option<StopReason>,
    /// Whether the app uses a token of the name asked about.
    pub uses: bool,
}

/// The OAuth material obtained from the provider.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TokenMaterial {
    pub access_token: Option<Sealed>,
    pub refresh_token: Option<Sealed>,
    pub token_type: Option<String>,
    pub scopes: Option<String>,
    pub access_expires_at: Option<Timestamp>,
    pub refresh_expires_at: Option<Timestamp>,
    pub issued_at: Option<Timestamp>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRecord {
    pub id: TokenId,
    pub name: TokenName,
    pub provider: ProviderId,
    /// How the token gets its access tokens; fixed at creation (column `grant_type`).
    pub grant: Grant,
    /// `Some` for an app-level token, owned by that app; `None` for a global one.
    pub app_id: Option<AppId>,
    /// Connection settings (e.g. Snowflake `account`, `role`). Not secret.
    pub settings: BTreeMap<String, String>,
    pub client_id: Option<String>,
    pub client_secret: Option<Sealed>,
    pub client_secret_2: Option<Sealed>,
    /// How the client authenticates at the token endpoint; `None`: the provider's default.
    pub client_auth: Option<ClientAuthMethod>,
    /// When the client secret stops working at the provider (Azure secrets expire), if the
    /// admin said so: reminders and app stop as for a refresh token's expiry.
    pub client_secret_expires_at: Option<Timestamp>,
    pub material: TokenMaterial,
    pub status: TokenStatus,
    pub status_reason: Option<String>,
    pub version: i64,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

impl TokenRecord {
    /// When `what` expires on this token, if it does.
    pub fn expires_at(&self, what: Expiring) -> Option<Timestamp> {
        match what {
            Expiring::RefreshToken => self.material.refresh_expires_at,
            Expiring::ClientSecret => self.client_secret_expires_at,
        }
    }
}

/// Where a page of tokens by one expiry starts ([`crate::Store::tokens_expiring_after`]): a
/// bound on the key (expiry, id) of the expiry's index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExpiryBound {
    /// Expiries after this instant.
    After(Timestamp),
    /// Expiries at this instant or after.
    From(Timestamp),
    /// After this (expiry, token id): the key of a previous page's last row.
    AfterToken(Timestamp, TokenId),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApiKeyKind {
    /// An app's key: reads that app's tokens.
    App,
    /// An admin token: manages everything.
    Admin,
}

impl ApiKeyKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ApiKeyKind::App => "app",
            ApiKeyKind::Admin => "admin",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKeyRecord {
    pub id: ApiKeyId,
    pub kind: ApiKeyKind,
    pub app_id: Option<AppId>,
    pub label: KeyLabel,
    /// SHA-256 of the key's secret part.
    pub secret_hash: Vec<u8>,
    pub created_at: Timestamp,
    pub revoked_at: Option<Timestamp>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEvent {
    pub id: String,
    pub at: Timestamp,
    /// Who: `admin:<label>`, `app:<name>`, `system`, `anonymous`.
    pub actor: String,
    /// What: `app.create`, `token.update`, `auth.denied`, ...
    pub action: String,
    pub object_type: String,
    pub object_id: Option<String>,
    pub object_name: Option<String>,
    /// `ok` or `denied` / `failed`.
    pub outcome: String,
    /// Free-form JSON detail. Never a secret.
    pub detail: serde_json::Value,
}

/// One page of a keyset-paginated list: at most `limit` rows that come after `after` (the sort
/// key of the previous page's last row; `None` for the first page) in the list's order. Never an
/// offset: rows inserted or deleted between pages neither shift nor repeat the rest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageRequest<K> {
    pub after: Option<K>,
    pub limit: i64,
}

/// The sort key of the lists ordered by name (tokens, apps): names repeat across scopes, so the
/// id breaks ties.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct NameKey {
    pub name: String,
    pub id: String,
}

/// The sort key of the lists ordered by time (API keys and channels oldest first; deliveries
/// and audit newest first), the id breaking ties.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TimeKey {
    /// Epoch milliseconds, as stored.
    pub at: i64,
    pub id: String,
}

/// What the tokens list is narrowed to (server-side); a field left `None` matches everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TokenFilter {
    /// Names containing this text (case-insensitive on ASCII).
    pub name_contains: Option<String>,
    pub provider: Option<ProviderId>,
    pub status: Option<TokenStatus>,
    /// Global tokens only (no app-level ones).
    pub global_only: bool,
    /// Only this app's own (app-level) tokens.
    pub app: Option<AppId>,
}

#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    pub object_id: Option<String>,
    pub action: Option<String>,
    pub actor: Option<String>,
    pub limit: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredDataKey {
    pub key_id: String,
    pub wrapped: Vec<u8>,
    pub active: bool,
    pub created_at: Timestamp,
}

/// Every column that holds a [`Sealed`] value. Re-encryption walks exactly these.
///
/// [`SealedColumn::table`] and [`SealedColumn::column`] are also part of each value's
/// encryption context (its AAD, with the row id): they must never change, or the values
/// already stored stop opening.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SealedColumn {
    TokenClientSecret,
    TokenClientSecret2,
    TokenAccessToken,
    TokenRefreshToken,
    ChannelSecret,
    OAuthStateVerifier,
    /// RFC 8628's device code of a device sign-in, while it is being polled.
    DeviceFlowCode,
    /// A token's signing key (PKCS#8 PEM): [`TokenKeys::signing_key`].
    TokenSigningKey,
    /// A rotation's next signing key: [`TokenKeys::signing_key_next`].
    TokenSigningKeyNext,
}

impl SealedColumn {
    pub const ALL: [SealedColumn; 9] = [
        SealedColumn::TokenClientSecret,
        SealedColumn::TokenClientSecret2,
        SealedColumn::TokenAccessToken,
        SealedColumn::TokenRefreshToken,
        SealedColumn::ChannelSecret,
        SealedColumn::OAuthStateVerifier,
        SealedColumn::DeviceFlowCode,
        SealedColumn::TokenSigningKey,
        SealedColumn::TokenSigningKeyNext,
    ];

    /// The table holding the column (every one has a TEXT `id` primary key).
    pub fn table(self) -> &'static str {
        match self {
            SealedColumn::TokenClientSecret
            | SealedColumn::TokenClientSecret2
            | SealedColumn::TokenAccessToken
            | SealedColumn::TokenRefreshToken => "tokens",
            SealedColumn::ChannelSecret => "notification_channels",
            SealedColumn::OAuthStateVerifier => "oauth_states",
            SealedColumn::DeviceFlowCode => "device_flows",
            SealedColumn::TokenSigningKey | SealedColumn::TokenSigningKeyNext => "token_keys",
        }
    }

    pub fn column(self) -> &'static str {
        match self {
            SealedColumn::TokenClientSecret => "client_secret",
            SealedColumn::TokenClientSecret2 => "client_secret_2",
            SealedColumn::TokenAccessToken => "access_token",
            SealedColumn::TokenRefreshToken => "refresh_token",
            SealedColumn::ChannelSecret => "secret",
            SealedColumn::OAuthStateVerifier => "verifier",
            SealedColumn::DeviceFlowCode => "device_code",
            SealedColumn::TokenSigningKey => "signing_key",
            SealedColumn::TokenSigningKeyNext => "signing_key_next",
        }
    }
}

/// The signing keys tokenwarden generated for a token (table `token_keys`, one row per token):
/// a Snowflake key-pair token's RSA key, or a `private_key_jwt` client's key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenKeys {
    pub token_id: TokenId,
    /// The key signing now (sealed PKCS#8 PEM).
    pub signing_key: Sealed,
    /// A rotation's new key, not signing yet.
    pub signing_key_next: Option<Sealed>,
    /// Snowflake: which user property holds `signing_key`'s public key (`rsa_public_key` or
    /// `rsa_public_key_2`); `None` for `private_key_jwt`.
    pub slot: Option<String>,
    /// Bumped by every write; [`crate::Store::put_token_keys`] compares it.
    pub version: i64,
    pub updated_at: Timestamp,
}

/// One sealed value somewhere in the database, for re-encryption.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealedRef {
    pub column: SealedColumn,
    /// The `id` of the row in [`SealedColumn::table`].
    pub row_id: String,
    pub sealed: Sealed,
}

/// A held lease. `fencing` grows every time the lease changes owner, so a stale holder can be
/// told apart from the current one even if both use the same owner string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    pub name: String,
    pub owner: String,
    pub fencing: i64,
    pub expires_at: Timestamp,
}

/// One authorization attempt, found again by the hash of its `state`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuthStateRecord {
    pub id: String,
    /// SHA-256 (hex) of the state value: the value itself is never stored.
    pub state_hash: String,
    pub token_id: TokenId,
    /// The actor who started it (`admin:<label>`).
    pub started_by: String,
    /// Hash of the UI session that started it, which the callback must come back to.
    pub session_hash: Option<String>,
    pub verifier: Option<Sealed>,
    pub redirect_uri: String,
    pub created_at: Timestamp,
    pub expires_at: Timestamp,
    pub used_at: Option<Timestamp>,
}

/// A token's device sign-in (RFC 8628): at most one per token. The device code is sealed for
/// [`SealedColumn::DeviceFlowCode`] and this row's `id`, and cleared when the flow ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceFlowRecord {
    pub id: String,
    pub token_id: TokenId,
    pub device_code: Option<Sealed>,
    pub user_code: String,
    pub verification_uri: String,
    pub verification_uri_complete: Option<String>,
    /// Seconds between polls, grown by each `slow_down`.
    pub interval_secs: i64,
    pub status: tokenwarden_domain::DeviceFlowStatus,
    /// Why it ended, when it did not end authorized.
    pub error: Option<String>,
    /// The actor who started it (`admin:<label>`, `cli`).
    pub started_by: String,
    pub created_at: Timestamp,
    /// When the device code expires.
    pub expires_at: Timestamp,
    /// When it is polled next; `None` once it ended.
    pub next_poll_at: Option<Timestamp>,
    pub updated_at: Timestamp,
}

/// What happened to a presented state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StateOutcome {
    /// Valid: now marked used, so it cannot be used again.
    Consumed(OAuthStateRecord),
    Unknown,
    Expired,
    AlreadyUsed,
}

/// Refresh bookkeeping of one token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenHealth {
    pub token_id: TokenId,
    pub last_attempt_at: Option<Timestamp>,
    pub last_success_at: Option<Timestamp>,
    /// Consecutive transient failures (reset by a success).
    pub failures: i64,
    /// No refresh before this (backoff after failures).
    pub next_attempt_at: Option<Timestamp>,
    pub last_error: Option<String>,
    /// When an app last read the token (flushed from memory periodically).
    pub last_read_at: Option<Timestamp>,
    pub reads_total: i64,
}

impl TokenHealth {
    pub fn new(token_id: TokenId) -> Self {
        Self {
            token_id,
            last_attempt_at: None,
            last_success_at: None,
            failures: 0,
            next_attempt_at: None,
            last_error: None,
            last_read_at: None,
            reads_total: 0,
        }
    }
}

/// A token the background pass has to look at ([`crate::Store::due_tokens`]): the row, its
/// bookkeeping, and where it stands in the schedule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DueToken {
    pub token: TokenRecord,
    pub health: Option<TokenHealth>,
    /// Its place in the order of due tokens: the cursor for the next page.
    pub cursor: DueCursor,
    /// Bumped by every write that puts the token back in the schedule; hand it back to
    /// [`crate::Store::schedule_token`] so a time computed from older state is not stored.
    pub check_seq: i64,
}

/// A position in the due order `(next_check_at, id)`: the next page starts after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DueCursor {
    pub next_check_at: Timestamp,
    pub id: TokenId,
}

/// When the background pass next has to look at a token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenSchedule {
    /// `None`: not until the token is written again.
    pub next_check_at: Option<Timestamp>,
    /// When to refresh the access token ahead if it is in use: a flush of reads
    /// ([`crate::Store::add_token_reads`]) brings `next_check_at` forward to it.
    pub ahead_at: Option<Timestamp>,
}

/// A successful refresh, written by [`crate::Store::commit_refresh`] in one transaction.
#[derive(Debug, Clone)]
pub struct RefreshCommit<'a> {
    /// The token with its new material, over the version read.
    pub token: &'a TokenRecord,
    /// The refresh's lease: the write is refused once it is lost, and it is released.
    pub lease: &'a Lease,
    /// The write time (`updated_at`, and the lease check).
    pub now: Timestamp,
    /// When the provider's answer came (the bookkeeping's last attempt and success).
    pub succeeded_at: Timestamp,
    pub audit: &'a AuditEvent,
    /// The background pass's `check_seq` of the token and its next check after this refresh:
    /// stored too if nothing else wrote the token since the pass read it (else it stays due).
    pub schedule: Option<(i64, TokenSchedule)>,
}

/// A notification channel: a webhook or an email recipient list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelRecord {
    pub id: String,
    /// `None`: hears about everything; `Some(app)`: only about that app and the tokens it uses.
    pub app_id: Option<AppId>,
    /// `webhook` or `email`.
    pub kind: String,
    pub name: String,
    /// JSON: `{"url": ...}` or `{"to": [...]}`, and `"events": [...]` (empty = all).
    pub config: serde_json::Value,
    /// The webhook signing secret, sealed.
    pub secret: Option<Sealed>,
    pub enabled: bool,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    /// Incremented by every change; a change is written only over the version it read.
    pub version: i64,
}

/// A durable background job, claimed under a lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobRecord {
    pub id: String,
    pub kind: String,
    /// At most one not-yet-done job per key.
    pub dedupe_key: Option<String>,
    pub payload: serde_json::Value,
    pub run_at: Timestamp,
    pub attempts: i64,
    pub lease_owner: Option<String>,
    pub lease_expires_at: Option<Timestamp>,
    pub last_error: Option<String>,
    pub done_at: Option<Timestamp>,
    pub created_at: Timestamp,
}

/// A reminder that was sent, for the notifications page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SentReminder {
    pub token_id: TokenId,
    /// The token's name; `None` once the token is gone.
    pub token_name: Option<String>,
    pub app_id: Option<AppId>,
    pub refresh_expires_at: Timestamp,
    /// The lead time's label (`7d`), or `expired`.
    pub lead: String,
    pub sent_at: Timestamp,
}

/// One delivery attempt, for the delivery log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryRecord {
    pub id: String,
    pub job_id: String,
    pub channel_id: String,
    pub event_id: String,
    pub event_kind: String,
    pub attempt: i64,
    pub at: Timestamp,
    /// `delivered`, `retry` or `failed`.
    pub outcome: String,
    pub status_code: Option<i64>,
    pub error: Option<String>,
}

/// An admin who signs in to the web UI. `Debug` leaves out the password hash.
#[derive(Clone, PartialEq, Eq)]
pub struct AdminRecord {
    pub id: String,
    pub username: String,
    /// An argon2id PHC string (`$argon2id$v=19$...`), never the password.
    pub password_hash: String,
    pub created_at: Timestamp,
    pub last_login_at: Option<Timestamp>,
}

impl std::fmt::Debug for AdminRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminRecord")
            .field("id", &self.id)
            .field("username", &self.username)
            .field("created_at", &self.created_at)
            .field("last_login_at", &self.last_login_at)
            .finish_non_exhaustive()
    }
}

/// What [`crate::Store::delete_admin`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdminRemoval {
    Removed,
    /// Refused: the admin is the last one (nobody could sign in to the UI any more).
    LastAdmin,
}

/// A signed-in UI session. `id` is the SHA-256 (hex) of the cookie value: the value itself is
/// never stored. `Debug` leaves out the CSRF token.
#[derive(Clone, PartialEq, Eq)]
pub struct SessionRecord {
    pub id: String,
    pub admin_id: String,
    /// Random, per session; every state-changing UI request must carry it.
    pub csrf_token: String,
    pub created_at: Timestamp,
    /// The absolute end of the session.
    pub expires_at: Timestamp,
    /// For the idle timeout.
    pub last_seen_at: Timestamp,
}

impl std::fmt::Debug for SessionRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionRecord")
            .field("admin_id", &self.admin_id)
            .field("created_at", &self.created_at)
            .field("expires_at", &self.expires_at)
            .field("last_seen_at", &self.last_seen_at)
            .finish_non_exhaustive()
    }
}

/// What `/metrics` reads from the database ([`crate::Store::metric_counts`]).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MetricCounts {
    /// Tokens per status (`healthy`, ...); a status no token has is absent.
    pub tokens_by_status: Vec<(String, i64)>,
    /// Apps per state (`running`, `stopped`); a state no app is in is absent.
    pub apps_by_state: Vec<(String, i64)>,
    /// Notification deliveries queued and not finished (waiting, retrying or being sent).
    pub delivery_queue: i64,
    /// The usable tokens' refresh-token expiries.
    pub refresh_token: ExpiryCounts,
    /// The usable tokens' client-secret expiries.
    pub client_secret: ExpiryCounts,
}

impl MetricCounts {
    /// The counts of one expiry.
    pub fn expiry(&self, what: Expiring) -> &ExpiryCounts {
        match what {
            Expiring::RefreshToken => &self.refresh_token,
            Expiring::ClientSecret => &self.client_secret,
        }
    }
}

/// One expiry (a refresh token's, a client secret's) of the usable tokens (healthy or expiring
/// soon), as `/metrics` shows it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ExpiryCounts {
    /// The soonest.
    pub next: Option<Timestamp>,
    /// The tokens whose expiry is before the horizon asked for, soonest first, at most the
    /// limit asked for.
    pub expiring: Vec<ExpiringToken>,
    /// How many tokens' expiries are before the horizon (all of them, also those past the
    /// limit).
    pub total: i64,
}

/// A usable token with something expiring soon, as `/metrics` labels it.
#[derive(Debug, Clone, PartialEq)]
pub struct ExpiringToken {
    pub name: TokenName,
    /// The owning app's name for an app-level token; `None` for a global one.
    pub app: Option<AppName>,
    pub provider: ProviderId,
    pub expires_at: Timestamp,
}
