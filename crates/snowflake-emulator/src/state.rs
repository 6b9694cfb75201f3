//! The emulator's in-memory account: users, integrations, codes, grants and tokens.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::sql::StatementRun;
use crate::{EmulatorConfig, Fault};

/// Roles no OAuth session may use, whatever BLOCKED_ROLES_LIST says.
pub(crate) const ALWAYS_BLOCKED: [&str; 4] = [
    "ACCOUNTADMIN",
    "SECURITYADMIN",
    "ORGADMIN",
    "GLOBALORGADMIN",
];

pub(crate) const MIN_REFRESH_VALIDITY: u64 = 86_400;
pub(crate) const DEFAULT_REFRESH_VALIDITY: u64 = 7_776_000;

#[derive(Debug, Clone)]
pub(crate) struct User {
    pub name: String,
    pub password: String,
    pub default_role: String,
    pub roles: Vec<String>,
    /// `RSA_PUBLIC_KEY` and `RSA_PUBLIC_KEY_2` (key-pair authentication).
    pub rsa_public_key: Option<crate::keypair::RegisteredKey>,
    pub rsa_public_key_2: Option<crate::keypair::RegisteredKey>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum ClientType {
    Confidential,
    Public,
}

impl ClientType {
    pub fn as_str(self) -> &'static str {
        match self {
            ClientType::Confidential => "CONFIDENTIAL",
            ClientType::Public => "PUBLIC",
        }
    }
}

/// A `TYPE = OAUTH OAUTH_CLIENT = CUSTOM` security integration.
#[derive(Debug, Clone)]
pub(crate) struct Integration {
    pub name: String,
    pub client_type: ClientType,
    pub redirect_uri: String,
    pub alternate_redirect_uris: Vec<String>,
    pub enabled: bool,
    pub allow_non_tls: bool,
    pub enforce_pkce: bool,
    pub issue_refresh_tokens: bool,
    pub refresh_token_validity: u64,
    pub single_use_refresh_tokens: bool,
    pub access_token_validity: Option<u64>,
    pub use_secondary_roles: String,
    pub pre_authorized_roles: Vec<String>,
    pub blocked_roles: Vec<String>,
    pub network_policy: Option<String>,
    pub comment: Option<String>,
    pub client_id: String,
    pub secret: String,
    pub secret_2: String,
    pub created_on: DateTime<Utc>,
}

impl Integration {
    pub fn is_blocked(&self, role: &str) -> bool {
        ALWAYS_BLOCKED.contains(&role) || self.blocked_roles.iter().any(|r| r == role)
    }

    pub fn redirect_allowed(&self, uri: &str) -> bool {
        self.redirect_uri == uri || self.alternate_redirect_uris.iter().any(|u| u == uri)
    }

    pub fn info(&self) -> IntegrationInfo {
        IntegrationInfo {
            name: self.name.clone(),
            enabled: self.enabled,
            client_type: self.client_type,
            client_id: self.client_id.clone(),
            redirect_uri: self.redirect_uri.clone(),
            alternate_redirect_uris: self.alternate_redirect_uris.clone(),
            allow_non_tls_redirect_uri: self.allow_non_tls,
            enforce_pkce: self.enforce_pkce,
            issue_refresh_tokens: self.issue_refresh_tokens,
            refresh_token_validity: self.refresh_token_validity,
            single_use_refresh_tokens_required: self.single_use_refresh_tokens,
            access_token_validity: self.access_token_validity,
            pre_authorized_roles: self.pre_authorized_roles.clone(),
            blocked_roles: self.blocked_roles.clone(),
            comment: self.comment.clone(),
            created_on: self.created_on,
        }
    }
}

/// An integration's settings as reported by [`crate::Emulator::stats`] (secrets left out).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IntegrationInfo {
    pub name: String,
    pub enabled: bool,
    pub client_type: ClientType,
    pub client_id: String,
    pub redirect_uri: String,
    pub alternate_redirect_uris: Vec<String>,
    pub allow_non_tls_redirect_uri: bool,
    pub enforce_pkce: bool,
    pub issue_refresh_tokens: bool,
    pub refresh_token_validity: u64,
    pub single_use_refresh_tokens_required: bool,
    /// `None`: not set, the emulator's configured default applies.
    pub access_token_validity: Option<u64>,
    pub pre_authorized_roles: Vec<String>,
    pub blocked_roles: Vec<String>,
    pub comment: Option<String>,
    pub created_on: DateTime<Utc>,
}

/// A validated `/oauth/authorize` request waiting for sign-in and consent.
#[derive(Debug, Clone)]
pub(crate) struct AuthRequest {
    pub client_id: String,
    pub integration: String,
    /// The effective redirect URI (the request's, or the integration's when omitted).
    pub redirect_uri: String,
    pub redirect_uri_sent: bool,
    pub state: Option<String>,
    pub wants_refresh_token: bool,
    /// Role named by a `session:role:` / `session:role-encoded:` scope.
    pub role: Option<String>,
    pub code_challenge: Option<String>,
}

#[derive(Debug, Clone)]
pub(crate) struct PendingConsent {
    pub request: AuthRequest,
    pub user: String,
    pub role: String,
    pub expires_at: DateTime<Utc>,
}

#[derive(Debug, Clone)]
pub(crate) struct CodeEntry {
    pub request: AuthRequest,
    pub user: String,
    pub role: String,
    pub expires_at: DateTime<Utc>,
    pub used: bool,
    pub grant: Option<u64>,
}

/// What one code exchange granted; every token issued from it points here.
#[derive(Debug, Clone)]
pub(crate) struct Grant {
    pub client_id: String,
    pub integration: String,
    pub user: String,
    pub role: String,
    pub refresh_expires_at: Option<DateTime<Utc>>,
    pub single_use: bool,
    pub revoked: bool,
}

#[derive(Debug, Clone)]
pub(crate) struct RefreshEntry {
    pub grant: u64,
    /// False once rotated away (single-use): presenting it again is reuse.
    pub current: bool,
}

#[derive(Debug, Clone)]
pub(crate) struct AccessEntry {
    /// `None` for nothing today; kept optional for tokens not tied to a grant.
    pub grant: Option<u64>,
    pub user: String,
    pub role: String,
    pub expires_at: DateTime<Utc>,
    pub valid: bool,
}

#[derive(Debug, Clone)]
pub(crate) struct ConsoleSession {
    pub user: String,
    pub role: String,
    pub last_sql: String,
    /// Most recent run first; each run is a list of statements.
    pub history: Vec<(DateTime<Utc>, Vec<StatementRun>)>,
}

/// Counters reported by [`crate::Emulator::stats`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Counters {
    /// Every POST /oauth/token-request, faulted ones included.
    pub token_requests: u64,
    /// Token requests answered by an injected fault.
    pub faulted_token_requests: u64,
    pub authorization_code_grants_ok: u64,
    pub authorization_code_grants_failed: u64,
    pub refresh_token_grants_ok: u64,
    pub refresh_token_grants_failed: u64,
    /// Statements run from the worksheet, the SQL API and `run_sql_as`.
    pub statements_run: u64,
    /// SQL API requests refused for a bad, expired or revoked token.
    pub sql_api_auth_failures: u64,
    /// SQL API requests authenticated by a key-pair JWT.
    pub keypair_jwt_logins_ok: u64,
}

pub(crate) struct Inner {
    pub account: String,
    pub users: BTreeMap<String, User>,
    pub access_token_ttl: u64,
    pub max_refresh_token_validity: u64,
    pub clock_offset: chrono::Duration,
    pub fault: Option<(Fault, u32)>,
    pub integrations: BTreeMap<String, Integration>,
    pub sessions: HashMap<String, ConsoleSession>,
    pub consents: HashMap<String, PendingConsent>,
    pub codes: HashMap<String, CodeEntry>,
    pub grants: HashMap<u64, Grant>,
    pub next_grant: u64,
    pub refresh_tokens: HashMap<String, RefreshEntry>,
    pub access_tokens: HashMap<String, AccessEntry>,
    pub counters: Counters,
    pub base_url: Option<String>,
    /// Armed by [`crate::Emulator::hold_next_refresh`]: the next refresh-token grant waits.
    pub refresh_hold: Option<crate::ArmedHold>,
    /// How long each `POST /oauth/token-request` takes before it is answered (a provider far
    /// away); zero by default.
    pub token_latency: std::time::Duration,
    /// Token requests being answered now, and the most there were at once.
    pub token_requests_in_flight: u32,
    pub token_requests_in_flight_max: u32,
    /// Refresh-token grant requests, by the refresh token presented (whatever the answer).
    pub refresh_requests_by_token: HashMap<String, u32>,
    /// Why each refused login failed, by the UUID its message carried
    /// (`SYSTEM$GET_LOGIN_FAILURE_DETAILS`).
    pub login_failures: HashMap<String, crate::keypair::LoginFailure>,
}

impl Inner {
    pub fn new(config: &EmulatorConfig) -> Self {
        let users = config
            .users
            .iter()
            .map(|u| {
                let name = u.name.to_ascii_uppercase();
                let default_role = u.default_role.clone();
                let mut roles = vec![default_role.clone()];
                if default_role == "ACCOUNTADMIN" {
                    // ACCOUNTADMIN sits atop the system-role hierarchy.
                    roles.extend(["SECURITYADMIN", "USERADMIN", "SYSADMIN"].map(String::from));
                }
                if !roles.iter().any(|r| r == "PUBLIC") {
                    roles.push("PUBLIC".to_string());
                }
                (
                    name.clone(),
                    User {
                        name,
                        password: u.password.clone(),
                        default_role,
                        roles,
                        rsa_public_key: None,
                        rsa_public_key_2: None,
                    },
                )
            })
            .collect();
        Inner {
            account: config.account.clone(),
            users,
            access_token_ttl: config.access_token_ttl.as_secs().max(1),
            max_refresh_token_validity: config.max_refresh_token_validity,
            clock_offset: chrono::Duration::zero(),
            fault: None,
            integrations: BTreeMap::new(),
            sessions: HashMap::new(),
            consents: HashMap::new(),
            codes: HashMap::new(),
            grants: HashMap::new(),
            next_grant: 1,
            refresh_tokens: HashMap::new(),
            access_tokens: HashMap::new(),
            counters: Counters::default(),
            base_url: None,
            refresh_hold: None,
            token_latency: std::time::Duration::ZERO,
            token_requests_in_flight: 0,
            token_requests_in_flight_max: 0,
            refresh_requests_by_token: HashMap::new(),
            login_failures: HashMap::new(),
        }
    }

    pub fn now(&self) -> DateTime<Utc> {
        crate::clock::real_now() + self.clock_offset
    }

    pub fn integration_by_client_id(&self, client_id: &str) -> Option<&Integration> {
        self.integrations
            .values()
            .find(|i| i.client_id == client_id)
    }

    /// `ALTER USER u REMOVE DELEGATED AUTHORIZATIONS FROM SECURITY INTEGRATION n`.
    /// Returns how many grants were revoked.
    pub fn revoke(&mut self, user: &str, integration: &str) -> usize {
        let mut n = 0;
        let mut revoked_ids = Vec::new();
        for (id, g) in self.grants.iter_mut() {
            if g.user == user && g.integration == integration && !g.revoked {
                g.revoked = true;
                revoked_ids.push(*id);
                n += 1;
            }
        }
        for a in self.access_tokens.values_mut() {
            if a.grant.is_some_and(|g| revoked_ids.contains(&g)) {
                a.valid = false;
            }
        }
        for c in self.codes.values_mut() {
            if c.user == user && c.request.integration == integration {
                c.used = true;
            }
        }
        n
    }

    /// Invalidates a grant and everything issued from it (reuse detection, code replay).
    pub fn revoke_grant(&mut self, grant: u64) {
        if let Some(g) = self.grants.get_mut(&grant) {
            g.revoked = true;
        }
        for a in self.access_tokens.values_mut() {
            if a.grant == Some(grant) {
                a.valid = false;
            }
        }
    }
}
