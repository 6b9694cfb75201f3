//! The provider catalog: TOML templates compiled into the binary, plus a folder of the user's own.

use crate::snowflake::{self, SnowflakeAccount, SnowflakeRole};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;
use tokenwarden_domain::Grant;

const BUILT_IN: &[(&str, &str)] = &[
    (
        "snowflake.toml",
        include_str!("../providers/snowflake.toml"),
    ),
    (
        "microsoft.toml",
        include_str!("../providers/microsoft.toml"),
    ),
    ("google.toml", include_str!("../providers/google.toml")),
    (
        "salesforce.toml",
        include_str!("../providers/salesforce.toml"),
    ),
    ("github.toml", include_str!("../providers/github.toml")),
    ("oauth2.toml", include_str!("../providers/oauth2.toml")),
];

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct CatalogError(pub String);

fn err(msg: impl Into<String>) -> CatalogError {
    CatalogError(msg.into())
}

/// One connection setting a provider takes.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Field {
    pub name: String,
    pub label: String,
    pub help: String,
    #[serde(default)]
    pub required: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub example: Option<String>,
    /// A regular expression the value must match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pattern: Option<String>,
    /// `url`: must be https (http only for loopback hosts).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// The grants this setting is for (empty: every grant). The UI's token forms show it only
    /// for those (e.g. Snowflake's `user` for key pairs, its integration's refresh-token
    /// validity for the authorization code).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub grants: Vec<Grant>,
}

impl Field {
    /// Whether the setting is for tokens of `grant`.
    pub fn applies_to(&self, grant: Grant) -> bool {
        self.grants.is_empty() || self.grants.contains(&grant)
    }
}

/// A provider template. URL fields may hold `{setting}` placeholders.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ProviderTemplate {
    pub id: String,
    pub display_name: String,
    #[serde(default)]
    pub description: String,
    pub authorization_url: String,
    pub token_url: String,
    /// RFC 8628's device authorization endpoint, for the device grant (sign-in on another
    /// device, no redirect).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_authorization_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revocation_url: Option<String>,
    /// RFC 9207: when it resolves to a value, the callback's `iss` must equal it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer: Option<String>,
    #[serde(default = "yes")]
    pub pkce: bool,
    /// `basic` or `body` (or a `{setting}` resolving to one).
    #[serde(default = "basic")]
    pub client_auth: String,
    #[serde(default)]
    pub default_scopes: String,
    /// The scopes a client credentials token asks for when its settings name none (Microsoft:
    /// `https://graph.microsoft.com/.default`); absent: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_credentials_scopes: Option<String>,
    /// Access-token lifetime assumed when a response has no `expires_in` (R17).
    #[serde(default = "hour")]
    pub default_access_token_lifetime: u64,
    /// Refresh-token validity assumed when the provider does not report it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_refresh_token_validity: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub probe_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub docs_url: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub extra_authorization_params: BTreeMap<String, String>,
    #[serde(default)]
    pub fields: Vec<Field>,
    /// The grants a token of this provider may use (the first is offered first); a template
    /// that lists none supports `authorization_code` only.
    #[serde(default = "authorization_code_only")]
    pub grants: Vec<Grant>,
    /// `built-in` or the file it came from.
    #[serde(default, skip_deserializing)]
    pub source: String,
}

fn yes() -> bool {
    true
}
fn basic() -> String {
    "basic".into()
}
fn hour() -> u64 {
    3600
}
fn authorization_code_only() -> Vec<Grant> {
    vec![Grant::AuthorizationCode]
}

impl ProviderTemplate {
    /// Whether tokens of this provider may use `grant`.
    pub fn supports(&self, grant: Grant) -> bool {
        self.grants.contains(&grant)
    }

    /// The grants, as text, for messages: `authorization_code, client_credentials`.
    pub fn grants_text(&self) -> String {
        self.grants
            .iter()
            .map(|g| g.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ClientAuth {
    /// HTTP Basic with URL-encoded id and secret (RFC 6749 2.3.1).
    Basic,
    /// `client_id` and `client_secret` in the form body.
    Body,
    /// A client assertion JWT signed with the token's key (RFC 7523 2.2).
    PrivateKeyJwt,
}

impl From<tokenwarden_domain::ClientAuthMethod> for ClientAuth {
    fn from(m: tokenwarden_domain::ClientAuthMethod) -> Self {
        use tokenwarden_domain::ClientAuthMethod as M;
        match m {
            M::ClientSecretBasic => ClientAuth::Basic,
            M::ClientSecretPost => ClientAuth::Body,
            M::PrivateKeyJwt => ClientAuth::PrivateKeyJwt,
        }
    }
}

impl ClientAuth {
    /// The RFC 7591 name of this method.
    pub fn method(self) -> tokenwarden_domain::ClientAuthMethod {
        use tokenwarden_domain::ClientAuthMethod as M;
        match self {
            ClientAuth::Basic => M::ClientSecretBasic,
            ClientAuth::Body => M::ClientSecretPost,
            ClientAuth::PrivateKeyJwt => M::PrivateKeyJwt,
        }
    }
}

/// How "Test connection" checks a token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Probe {
    /// Run `SELECT CURRENT_USER()` through Snowflake's SQL API.
    SnowflakeSql {
        base_url: String,
        role: String,
        warehouse: Option<String>,
    },
    /// GET this URL with the token; 2xx means it works.
    Url(String),
    None,
}

/// A template filled with one token's settings: everything the OAuth flow needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedProvider {
    pub id: String,
    pub authorization_url: String,
    pub token_url: String,
    /// RFC 8628: where the device grant starts; `None` when the provider (or the token's
    /// settings) has none.
    pub device_authorization_url: Option<String>,
    pub revocation_url: Option<String>,
    pub issuer: Option<String>,
    pub scopes: String,
    pub pkce: bool,
    pub client_auth: ClientAuth,
    pub extra_authorization_params: BTreeMap<String, String>,
    pub default_access_token_lifetime: u64,
    pub refresh_token_validity: Option<u64>,
    pub probe: Probe,
}

#[derive(Debug, Clone)]
pub struct Catalog {
    providers: BTreeMap<String, ProviderTemplate>,
}

/// http is allowed only for loopback hosts (development, tests, emulators).
pub fn check_endpoint(what: &str, url: &str) -> Result<(), CatalogError> {
    let rest = if let Some(r) = url.strip_prefix("https://") {
        r
    } else if let Some(r) = url.strip_prefix("http://") {
        let authority = r.split(['/', '?', '#']).next().unwrap_or_default();
        if !tokenwarden_domain::is_loopback_authority(authority) {
            return Err(err(format!(
                "{what} {url:?} must use https (http is allowed only on 127.0.0.1/localhost)"
            )));
        }
        r
    } else {
        return Err(err(format!("{what} {url:?} must be an https:// URL")));
    };
    let host = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if host.is_empty()
        || host.contains('@')
        || url.chars().any(|c| c.is_whitespace() || c.is_control())
    {
        return Err(err(format!("{what} {url:?} is not a valid URL")));
    }
    Ok(())
}

impl Catalog {
    /// The built-in templates.
    pub fn built_in() -> Self {
        let mut providers = BTreeMap::new();
        for (file, text) in BUILT_IN {
            // Built-in templates are tested; a broken one is a build defect.
            let mut t: ProviderTemplate = toml::from_str(text)
                .unwrap_or_else(|e| panic!("built-in provider template {file} is invalid: {e}"));
            t.source = "built-in".into();
            providers.insert(t.id.clone(), t);
        }
        Self { providers }
    }

    /// Built-ins plus every `*.toml` in `dir`. A template that does not parse, or reuses a
    /// built-in id, is an error naming the file.
    pub fn with_folder(dir: &Path) -> Result<Self, CatalogError> {
        let mut cat = Self::built_in();
        let entries = std::fs::read_dir(dir).map_err(|e| {
            err(format!(
                "cannot read the providers folder {}: {e}",
                dir.display()
            ))
        })?;
        let mut files: Vec<_> = entries.filter_map(Result::ok).map(|e| e.path()).collect();
        files.sort();
        for path in files
            .into_iter()
            .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        {
            let text = std::fs::read_to_string(&path)
                .map_err(|e| err(format!("cannot read {}: {e}", path.display())))?;
            let mut t: ProviderTemplate = toml::from_str(&text).map_err(|e| {
                err(format!(
                    "provider template {} is invalid: {e}",
                    path.display()
                ))
            })?;
            tokenwarden_domain::ProviderId::parse(&t.id)
                .map_err(|e| err(format!("provider template {}: {e}", path.display())))?;
            if cat
                .providers
                .get(&t.id)
                .is_some_and(|p| p.source == "built-in")
            {
                return Err(err(format!(
                    "provider template {} reuses the built-in id {:?}; choose another",
                    path.display(),
                    t.id
                )));
            }
            t.source = path.display().to_string();
            cat.providers.insert(t.id.clone(), t);
        }
        Ok(cat)
    }

    pub fn get(&self, id: &str) -> Option<&ProviderTemplate> {
        self.providers.get(id)
    }

    pub fn all(&self) -> impl Iterator<Item = &ProviderTemplate> {
        self.providers.values()
    }

    pub fn ids(&self) -> Vec<&str> {
        self.providers.keys().map(String::as_str).collect()
    }

    fn template(&self, id: &str) -> Result<&ProviderTemplate, CatalogError> {
        self.get(id).ok_or_else(|| {
            err(format!(
                "unknown provider {id:?}; known providers: {}",
                self.ids().join(", ")
            ))
        })
    }

    /// Checks the settings given so far: no unknown names, every given value well-formed.
    /// Missing required settings are allowed here (they are needed only to authorize).
    pub fn check_settings(
        &self,
        provider: &str,
        settings: &BTreeMap<String, String>,
    ) -> Result<(), CatalogError> {
        let t = self.template(provider)?;
        for (name, value) in settings {
            let field = t.fields.iter().find(|f| &f.name == name).ok_or_else(|| {
                let known: Vec<_> = t.fields.iter().map(|f| f.name.as_str()).collect();
                err(format!(
                    "unknown setting {name:?} for provider {}; its settings are: {}",
                    t.id,
                    known.join(", ")
                ))
            })?;
            if value.trim().is_empty() {
                continue;
            }
            check_field(&t.id, field, value.trim())?;
        }
        Ok(())
    }

    /// Fills the template with the token's settings; fails, naming the setting, if anything
    /// needed to authorize is missing or malformed.
    pub fn resolve(
        &self,
        provider: &str,
        settings: &BTreeMap<String, String>,
    ) -> Result<ResolvedProvider, CatalogError> {
        self.resolve_for(provider, settings, Grant::AuthorizationCode)
    }

    /// [`Catalog::resolve`] for a token of `grant`: a grant that never sends a browser to the
    /// authorization endpoint (client credentials, key pair) does not need it, nor the
    /// settings only it uses (its `authorization_url` is then empty when they are missing).
    pub fn resolve_for(
        &self,
        provider: &str,
        settings: &BTreeMap<String, String>,
        grant: Grant,
    ) -> Result<ResolvedProvider, CatalogError> {
        let t = self.template(provider)?;
        // Only the authorization-code grant sends a browser to the authorization endpoint.
        let browser = grant == Grant::AuthorizationCode;
        // A setting only the authorization endpoint uses.
        let authorization_only = |name: &str| {
            let var = format!("{{{name}}}");
            t.authorization_url.contains(&var) && !t.token_url.contains(&var)
        };
        self.check_settings(provider, settings)?;
        let mut vars: BTreeMap<String, String> = BTreeMap::new();
        for f in &t.fields {
            let v = settings
                .get(&f.name)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
                .or_else(|| f.default.clone());
            match v {
                Some(v) => {
                    vars.insert(f.name.clone(), v);
                }
                None if f.required && (browser || !authorization_only(&f.name)) => {
                    return Err(err(format!(
                        "the setting {:?} ({}) is required for {}: {}",
                        f.name, f.label, t.display_name, f.help
                    )));
                }
                None => {}
            }
        }
        let mut scopes = vars
            .get("scope")
            .cloned()
            .unwrap_or_else(|| t.default_scopes.clone());
        let mut refresh_token_validity = t.default_refresh_token_validity;
        let mut probe = Probe::None;
        if t.id == "snowflake" {
            let account = SnowflakeAccount::parse(vars.get("account").map_or("", String::as_str))
                .map_err(|e| err(e.0))?;
            let role = SnowflakeRole::parse(vars.get("role").map_or("", String::as_str))
                .map_err(|e| err(e.0))?;
            scopes = snowflake::scopes(&role);
            if let Some(v) = vars.get("refresh_token_validity") {
                let secs: u64 = v
                    .parse()
                    .map_err(|_| err("refresh_token_validity must be a number of seconds"))?;
                snowflake::check_refresh_validity(secs).map_err(|e| err(e.0))?;
                refresh_token_validity = Some(secs);
            }
            probe = Probe::SnowflakeSql {
                base_url: account.base_url.clone(),
                role: role.as_str().to_owned(),
                warehouse: vars.get("warehouse").cloned(),
            };
            vars.insert("base_url".into(), account.base_url);
        }
        let fill = |template: &str| -> String {
            let mut out = template.to_owned();
            for (k, v) in &vars {
                out = out.replace(&format!("{{{k}}}"), v);
            }
            out
        };
        let optional =
            |template: &Option<String>, what: &str| -> Result<Option<String>, CatalogError> {
                match template.as_deref().map(fill) {
                    Some(v) if !v.is_empty() && !v.contains('{') => {
                        check_endpoint(what, &v)?;
                        Ok(Some(v))
                    }
                    _ => Ok(None),
                }
            };
        let mut authorization_url = fill(&t.authorization_url);
        let token_url = fill(&t.token_url);
        if browser || !authorization_url.contains('{') {
            check_endpoint("the authorization endpoint", &authorization_url)?;
        } else {
            authorization_url = String::new();
        }
        check_endpoint("the token endpoint", &token_url)?;
        if probe == Probe::None
            && let Some(u) = optional(&t.probe_url, "the test URL")?
        {
            probe = Probe::Url(u);
        }
        let client_auth = match fill(&t.client_auth).as_str() {
            "basic" => ClientAuth::Basic,
            "body" => ClientAuth::Body,
            other => {
                return Err(err(format!(
                    "client_auth must be basic or body, not {other:?}"
                )));
            }
        };
        let device_authorization_url = optional(
            &t.device_authorization_url,
            "the device authorization endpoint",
        )?;
        if grant == Grant::DeviceCode && device_authorization_url.is_none() {
            return Err(err(if t.device_authorization_url.is_some() {
                format!(
                    "the device_code grant needs the setting \"device_authorization_url\" (the provider's RFC 8628 endpoint) for {}",
                    t.display_name
                )
            } else {
                format!("{} has no device authorization endpoint", t.display_name)
            }));
        }
        Ok(ResolvedProvider {
            id: t.id.clone(),
            authorization_url,
            token_url,
            device_authorization_url,
            revocation_url: optional(&t.revocation_url, "the revocation endpoint")?,
            issuer: t
                .issuer
                .as_deref()
                .map(fill)
                .filter(|v| !v.is_empty() && !v.contains('{')),
            scopes: scopes.split_whitespace().collect::<Vec<_>>().join(" "),
            pkce: t.pkce,
            client_auth,
            extra_authorization_params: t.extra_authorization_params.clone(),
            default_access_token_lifetime: t.default_access_token_lifetime,
            refresh_token_validity,
            probe,
        })
    }
}

fn check_field(provider: &str, f: &Field, value: &str) -> Result<(), CatalogError> {
    // Characters, as the message says and the document's `maxLength` counts.
    if value.chars().count() > crate::schema::VALUE_MAX || value.chars().any(char::is_control) {
        return Err(err(format!(
            "setting {:?} must be at most 2048 characters without control characters",
            f.name
        )));
    }
    if f.kind.as_deref() == Some("url") {
        check_endpoint(&format!("setting {:?}", f.name), value)?;
    }
    if let Some(p) = &f.pattern {
        let re = regex_lite::Regex::new(p).map_err(|e| {
            err(format!(
                "provider {provider}: bad pattern for {}: {e}",
                f.name
            ))
        })?;
        if !re.is_match(value) {
            let example = f
                .example
                .as_deref()
                .map(|e| format!(", e.g. {e}"))
                .unwrap_or_default();
            return Err(err(format!(
                "setting {:?} is not valid for {provider}: {}{example}",
                f.name, f.help
            )));
        }
    }
    if provider == "snowflake" {
        match f.name.as_str() {
            "account" => {
                SnowflakeAccount::parse(value).map_err(|e| err(e.0))?;
            }
            "role" => {
                SnowflakeRole::parse(value).map_err(|e| err(e.0))?;
            }
            "refresh_token_validity" => {
                let secs: u64 = value
                    .parse()
                    .map_err(|_| err("refresh_token_validity must be a number of seconds"))?;
                snowflake::check_refresh_validity(secs).map_err(|e| err(e.0))?;
            }
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn every_built_in_template_parses_and_lists_its_fields() {
        let c = Catalog::built_in();
        assert_eq!(
            c.ids(),
            [
                "github",
                "google",
                "microsoft",
                "oauth2",
                "salesforce",
                "snowflake"
            ]
        );
        for t in c.all() {
            for f in &t.fields {
                if let Some(p) = &f.pattern {
                    regex_lite::Regex::new(p).unwrap();
                }
            }
        }
    }

    #[test]
    fn providers_list_their_grants() {
        let c = Catalog::built_in();
        let grants = |id: &str| c.get(id).unwrap().grants.clone();
        use Grant::*;
        assert_eq!(
            grants("microsoft"),
            [AuthorizationCode, ClientCredentials, DeviceCode]
        );
        assert_eq!(grants("salesforce"), [AuthorizationCode, ClientCredentials]);
        assert_eq!(
            grants("oauth2"),
            [AuthorizationCode, ClientCredentials, DeviceCode]
        );
        assert_eq!(grants("snowflake"), [AuthorizationCode, SnowflakeKeypair]);
        assert!(c.all().all(|p| p.supports(AuthorizationCode)));
        assert!(!c.get("google").unwrap().supports(ClientCredentials));
        let user: ProviderTemplate = toml::from_str(
            "id = \"acme\"\ndisplay_name = \"Acme\"\nauthorization_url = \"https://a\"\ntoken_url = \"https://b\"\n",
        )
        .unwrap();
        assert_eq!(user.grants, [AuthorizationCode]);
        assert!(
            toml::from_str::<ProviderTemplate>(
                "id = \"acme\"\ndisplay_name = \"Acme\"\nauthorization_url = \"https://a\"\ntoken_url = \"https://b\"\ngrants = [\"implicit\"]\n",
            )
            .is_err()
        );
    }

    #[test]
    fn grants_without_a_sign_in_need_no_authorization_endpoint() {
        let c = Catalog::built_in();
        let only_token = s(&[("token_url", "https://auth.example.com/token")]);
        let e = c.resolve("oauth2", &only_token).unwrap_err().to_string();
        assert!(e.contains("authorization_url"), "{e}");
        let r = c
            .resolve_for("oauth2", &only_token, Grant::ClientCredentials)
            .unwrap();
        assert_eq!(r.authorization_url, "");
        assert_eq!(r.token_url, "https://auth.example.com/token");
        // The token endpoint stays required.
        let e = c
            .resolve_for("oauth2", &s(&[]), Grant::ClientCredentials)
            .unwrap_err()
            .to_string();
        assert!(e.contains("token_url"), "{e}");
    }

    #[test]
    fn snowflake_resolves_from_account_and_role() {
        let c = Catalog::built_in();
        let r = c
            .resolve(
                "snowflake",
                &s(&[("account", "xy12345.us-east-1"), ("role", "analyst")]),
            )
            .unwrap();
        assert_eq!(
            r.authorization_url,
            "https://xy12345.us-east-1.snowflakecomputing.com/oauth/authorize"
        );
        assert_eq!(
            r.token_url,
            "https://xy12345.us-east-1.snowflakecomputing.com/oauth/token-request"
        );
        assert_eq!(r.scopes, "refresh_token session:role:ANALYST");
        assert_eq!(r.client_auth, ClientAuth::Basic);
        assert_eq!(r.refresh_token_validity, Some(7_776_000));
        assert!(r.pkce);
        let emu = c
            .resolve(
                "snowflake",
                &s(&[
                    ("account", "http://127.0.0.1:9300"),
                    ("role", "R"),
                    ("refresh_token_validity", "86400"),
                ]),
            )
            .unwrap();
        assert_eq!(emu.token_url, "http://127.0.0.1:9300/oauth/token-request");
        assert_eq!(emu.refresh_token_validity, Some(86_400));
        let e = c
            .resolve("snowflake", &s(&[("account", "xy12345")]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("\"role\"") && e.contains("required"), "{e}");
        let e = c
            .resolve(
                "snowflake",
                &s(&[("account", "xy12345"), ("role", "ACCOUNTADMIN")]),
            )
            .unwrap_err()
            .to_string();
        assert!(e.contains("blocks"), "{e}");
    }

    #[test]
    fn generic_oauth2_takes_its_endpoints_from_settings_and_insists_on_https() {
        let c = Catalog::built_in();
        let r = c
            .resolve(
                "oauth2",
                &s(&[
                    ("authorization_url", "https://auth.example.com/authorize"),
                    ("token_url", "https://auth.example.com/token"),
                    ("scope", "openid  api"),
                    ("client_auth", "body"),
                    ("issuer", "https://auth.example.com"),
                ]),
            )
            .unwrap();
        assert_eq!(r.scopes, "openid api");
        assert_eq!(r.client_auth, ClientAuth::Body);
        assert_eq!(r.issuer.as_deref(), Some("https://auth.example.com"));
        assert_eq!(r.revocation_url, None);
        let e = c
            .resolve(
                "oauth2",
                &s(&[
                    ("authorization_url", "http://auth.example.com/a"),
                    ("token_url", "https://x/t"),
                ]),
            )
            .unwrap_err()
            .to_string();
        assert!(e.contains("https"), "{e}");
        let local = c.resolve(
            "oauth2",
            &s(&[
                ("authorization_url", "http://127.0.0.1:4000/auth"),
                ("token_url", "http://localhost:4000/token"),
            ]),
        );
        assert!(local.is_ok());
        let e = c
            .resolve(
                "oauth2",
                &s(&[
                    ("authorization_url", "https://a/x"),
                    ("token_url", "https://a/t"),
                    ("client_auth", "jwt"),
                ]),
            )
            .unwrap_err();
        assert!(e.to_string().contains("client_auth"), "{e}");
    }

    #[test]
    fn unknown_settings_and_providers_are_named() {
        let c = Catalog::built_in();
        let e = c
            .check_settings("snowflake", &s(&[("acount", "x")]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("acount") && e.contains("account, role"), "{e}");
        let e = c
            .check_settings("myspace", &s(&[]))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("unknown provider") && e.contains("snowflake"),
            "{e}"
        );
        // Partial settings are fine until authorization.
        assert!(
            c.check_settings("snowflake", &s(&[("account", "xy12345")]))
                .is_ok()
        );
    }

    #[test]
    fn defaults_fill_templates() {
        let c = Catalog::built_in();
        let ms = c.resolve("microsoft", &s(&[])).unwrap();
        assert_eq!(
            ms.authorization_url,
            "https://login.microsoftonline.com/common/oauth2/v2.0/authorize"
        );
        assert!(ms.scopes.contains("offline_access"));
        let g = c.resolve("google", &s(&[])).unwrap();
        assert_eq!(
            g.extra_authorization_params
                .get("access_type")
                .map(String::as_str),
            Some("offline")
        );
        let sf = c
            .resolve(
                "salesforce",
                &s(&[("login_url", "https://test.salesforce.com")]),
            )
            .unwrap();
        assert_eq!(
            sf.token_url,
            "https://test.salesforce.com/services/oauth2/token"
        );
        assert_eq!(
            c.resolve("github", &s(&[])).unwrap().probe,
            Probe::Url("https://api.github.com/user".into())
        );
    }

    #[test]
    fn rfc8628_device_authorization_endpoints_resolve_per_provider() {
        let c = Catalog::built_in();
        let device = |id: &str, settings: &[(&str, &str)]| {
            c.resolve(id, &s(settings))
                .unwrap()
                .device_authorization_url
        };
        assert_eq!(
            device("microsoft", &[("tenant", "contoso.onmicrosoft.com")]).as_deref(),
            Some(
                "https://login.microsoftonline.com/contoso.onmicrosoft.com/oauth2/v2.0/devicecode"
            )
        );
        assert_eq!(
            device("github", &[]).as_deref(),
            Some("https://github.com/login/device/code")
        );
        assert_eq!(
            device("google", &[]).as_deref(),
            Some("https://oauth2.googleapis.com/device/code")
        );
        let generic = [
            ("authorization_url", "https://a.example/authorize"),
            ("token_url", "https://a.example/token"),
        ];
        assert_eq!(
            device("oauth2", &generic),
            None,
            "no setting, no device flow"
        );
        let mut with = generic.to_vec();
        with.push(("device_authorization_url", "https://a.example/device"));
        assert_eq!(
            device("oauth2", &with).as_deref(),
            Some("https://a.example/device")
        );
        with.pop();
        with.push(("device_authorization_url", "http://a.example/device"));
        let e = c.resolve("oauth2", &s(&with)).unwrap_err().to_string();
        assert!(e.contains("https"), "{e}");
        assert_eq!(
            device("snowflake", &[("account", "xy12345"), ("role", "R")]),
            None
        );
        assert_eq!(device("salesforce", &[]), None);
    }

    #[test]
    fn user_templates_load_from_a_folder_and_errors_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("acme.toml"),
            "id = \"acme\"\ndisplay_name = \"Acme\"\nauthorization_url = \"https://acme.example/auth\"\ntoken_url = \"https://acme.example/token\"\n",
        )
        .unwrap();
        let c = Catalog::with_folder(dir.path()).unwrap();
        assert!(c.get("acme").is_some());
        assert_eq!(
            c.resolve("acme", &s(&[])).unwrap().client_auth,
            ClientAuth::Basic
        );
        std::fs::write(dir.path().join("bad.toml"), "id = \"bad\"\nnope = 1\n").unwrap();
        let e = Catalog::with_folder(dir.path()).unwrap_err().to_string();
        assert!(e.contains("bad.toml"), "{e}");
        std::fs::remove_file(dir.path().join("bad.toml")).unwrap();
        std::fs::write(dir.path().join("dup.toml"), "id = \"github\"\ndisplay_name = \"x\"\nauthorization_url = \"https://a\"\ntoken_url = \"https://b\"\n").unwrap();
        assert!(
            Catalog::with_folder(dir.path())
                .unwrap_err()
                .to_string()
                .contains("built-in")
        );
    }
}
