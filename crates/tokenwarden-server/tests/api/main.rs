//! The HTTP API end to end: a real router on 127.0.0.1:0, a real database, HTTP requests.
//! One test binary for the crate (STYLE item 12); modules below group the cases.

#![allow(clippy::unwrap_used)]

mod support {
    use secrecy::SecretString;
    use std::sync::Arc;
    use tokenwarden_crypto::MasterKey;
    use tokenwarden_domain::{Clock, ManualClock};
    use tokenwarden_server::{AppContext, ServerSettings, Vault};
    use tokenwarden_store::{DynStore, SqlStore};

    pub const ADMIN: &str = "test-admin-token-0123456789";

    pub struct TestApp {
        pub base: String,
        pub http: reqwest::Client,
        pub ctx: AppContext,
        pub clock: ManualClock,
        pub master: MasterKey,
        _dir: Option<tempfile::TempDir>,
        _server: tokio::task::JoinHandle<()>,
    }

    /// npm's oidc-provider for one test (tests/oidc-provider), its clients named after
    /// `client_id` (`-post`, `-cc`, `-device`, ...) with `client_secret`, sending the browser
    /// back to this app's callback; access tokens live 5 minutes, refresh tokens a day, rotated.
    pub async fn oidc_provider(
        t: &TestApp,
        client_id: &str,
        client_secret: &str,
    ) -> tokenwarden_testkit::oidc::OidcProvider {
        let config = tokenwarden_testkit::oidc::OidcProviderConfig {
            client_id: client_id.into(),
            client_secret: client_secret.into(),
            redirect_uri: format!("{}/oauth/callback", t.base),
            access_token_ttl_secs: 300,
            refresh_token_ttl_secs: 86_400,
            rotate_refresh_tokens: true,
            private_key_jwt_jwks: None,
        };
        tokio::task::spawn_blocking(move || {
            tokenwarden_testkit::oidc::require_oidc_provider(config)
        })
        .await
        .unwrap()
    }

    /// A Snowflake emulator for one test, on a port of its own.
    pub async fn emulator() -> snowflake_emulator::RunningEmulator {
        snowflake_emulator::Emulator::start(
            snowflake_emulator::EmulatorConfig::default_for_tests(),
            "127.0.0.1:0",
        )
        .await
        .unwrap()
    }

    #[derive(Clone, Copy, Debug)]
    pub enum Db {
        Sqlite,
        Postgres,
    }

    pub async fn spawn(db: Db) -> TestApp {
        spawn_with(db, |_| {}).await
    }

    /// [`spawn`] with settings changed by `change` (e.g. who may scrape `/metrics`).
    pub async fn spawn_with(db: Db, change: impl FnOnce(&mut ServerSettings)) -> TestApp {
        let (url, dir) = match db {
            Db::Sqlite => {
                let dir = tempfile::tempdir().unwrap();
                (
                    format!("sqlite://{}", dir.path().join("tw.db").display()),
                    Some(dir),
                )
            }
            Db::Postgres => (tokenwarden_testkit::require_postgres().url, None),
        };
        let clock = ManualClock::at_epoch();
        let store: DynStore = Arc::new(SqlStore::open(&url, clock.now()).await.unwrap());
        let master = MasterKey::generate();
        let vault = Vault::open(store.clone(), master.clone(), clock.now())
            .await
            .unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let ctx = AppContext::new(
            store,
            vault,
            Arc::new(clock.clone()),
            ServerSettings {
                public_url: format!("http://{addr}"),
                bootstrap_admin_token: Some(SecretString::from(ADMIN)),
                max_body_bytes: 64 * 1024,
                reminder_lead_times: tokenwarden_server::default_lead_times(),
                // No pass runs by itself: a test runs one where it means to (`TestApp::pass`),
                // so none can run at a moment the test did not choose.
                engine_interval: None,
                audit_retention: tokenwarden_server::DEFAULT_AUDIT_RETENTION,
                refresh_concurrency: tokenwarden_server::DEFAULT_REFRESH_CONCURRENCY,
                metrics: Default::default(),
                trusted_proxies: Vec::new(),
            },
        );
        let mut ctx = ctx;
        change(Arc::make_mut(&mut ctx.settings));
        let served = ctx.clone();
        let server = tokio::spawn(async move {
            let _ = tokenwarden_server::serve(listener, served, std::future::pending()).await;
        });
        TestApp {
            base: format!("http://{addr}"),
            http: reqwest::Client::new(),
            ctx,
            clock,
            master,
            _dir: dir,
            _server: server,
        }
    }

    impl TestApp {
        /// One background pass at the test clock's now. The one place tests call the engine
        /// directly (its module path may move).
        pub async fn pass(&self) -> tokenwarden_server::ops::engine::PassReport {
            tokenwarden_server::ops::engine::run_due_once(&self.ctx, self.clock.now()).await
        }

        /// The SQLite database file (`None` on PostgreSQL).
        pub fn sqlite_path(&self) -> Option<std::path::PathBuf> {
            self._dir.as_ref().map(|d| d.path().join("tw.db"))
        }

        pub fn clock_now(&self) -> tokenwarden_domain::Timestamp {
            self.clock.now()
        }

        pub fn url(&self, path: &str) -> String {
            format!("{}{path}", self.base)
        }

        pub async fn send(
            &self,
            method: reqwest::Method,
            path: &str,
            bearer: Option<&str>,
            body: Option<serde_json::Value>,
        ) -> (u16, serde_json::Value, reqwest::header::HeaderMap) {
            let mut req = self.http.request(method, self.url(path));
            if let Some(b) = bearer {
                req = req.bearer_auth(b);
            }
            if let Some(body) = body {
                req = req.json(&body);
            }
            let res = req.send().await.unwrap();
            let status = res.status().as_u16();
            let headers = res.headers().clone();
            let text = res.text().await.unwrap();
            let json = if text.is_empty() {
                serde_json::Value::Null
            } else {
                serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text))
            };
            (status, json, headers)
        }

        pub async fn admin(
            &self,
            method: reqwest::Method,
            path: &str,
            body: Option<serde_json::Value>,
        ) -> (u16, serde_json::Value) {
            let (s, j, _) = self.send(method, path, Some(ADMIN), body).await;
            (s, j)
        }

        /// Follows the provider's redirects from `url` (as a browser would, signing in where the
        /// provider signs in by itself) until it redirects to our callback; returns that URL.
        pub async fn follow_to_callback(&self, url: &str) -> String {
            let http = reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap();
            let callback = self.url("/oauth/callback");
            let mut next = url.to_owned();
            for _ in 0..10 {
                if next.starts_with(&callback) {
                    return next;
                }
                let res = http.get(&next).send().await.unwrap();
                let loc = res
                    .headers()
                    .get("location")
                    .unwrap_or_else(|| panic!("no redirect from {next}: {}", res.status()))
                    .to_str()
                    .unwrap()
                    .to_owned();
                next = if loc.starts_with("http") {
                    loc
                } else {
                    format!("{}{}", &next[..next[8..].find('/').unwrap() + 8], loc)
                };
            }
            panic!("too many redirects, last {next}");
        }

        /// Starts a sign-in for the token (`POST /api/v1/tokens/{id}/authorize`, which must
        /// answer 200); returns the provider's authorization URL.
        pub async fn start_authorization(&self, id: &str) -> String {
            let (s, a) = self
                .admin(
                    reqwest::Method::POST,
                    &format!("/api/v1/tokens/{id}/authorize"),
                    None,
                )
                .await;
            assert_eq!(s, 200, "{a}");
            a["authorization_url"].as_str().unwrap().to_owned()
        }

        /// Starts the token's authorization, signs in to the emulator as ALICE, allows, and
        /// follows the provider back to our callback (which must answer 200).
        pub async fn sign_in(&self, id: &str) {
            let url = self.start_authorization(id).await;
            let no_redirects = reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap();
            let back =
                snowflake_emulator::sign_in_and_consent(&no_redirects, &url, "ALICE", "alice-pass")
                    .await
                    .unwrap();
            let res = self.http.get(&back).send().await.unwrap();
            assert_eq!(res.status(), 200, "{}", res.text().await.unwrap());
        }

        /// Creates a Snowflake token on the emulator `emu` (`extra` fields added to the create
        /// body: `app`, ...), runs its setup SQL there, pastes the secrets and signs in as
        /// ALICE. Returns the token's id.
        pub async fn authorized_snowflake_token(
            &self,
            emu: &snowflake_emulator::RunningEmulator,
            name: &str,
            extra: serde_json::Value,
        ) -> String {
            let mut body = serde_json::json!({"name": name, "provider": "snowflake",
                "settings": {"account": emu.base_url(), "role": "ANALYST"}});
            if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
                b.extend(e.clone());
            }
            let (s, tok) = self
                .admin(reqwest::Method::POST, "/api/v1/tokens", Some(body))
                .await;
            assert_eq!(s, 201, "{tok}");
            let id = tok["id"].as_str().unwrap().to_owned();
            let (_, setup) = self
                .admin(
                    reqwest::Method::GET,
                    &format!("/api/v1/tokens/{id}/setup"),
                    None,
                )
                .await;
            let runs = emu
                .emulator
                .run_script_as("ADMIN", setup["snowflake"]["sql"].as_str().unwrap());
            assert!(runs[0].outcome.is_ok(), "{:?}", runs[0].outcome);
            let res = self
                .http
                .post(self.url(&format!("/api/v1/tokens/{id}/client-secrets")))
                .bearer_auth(ADMIN)
                .body(runs[1].outcome.first_value().unwrap().to_owned())
                .send()
                .await
                .unwrap();
            assert_eq!(res.status(), 200);
            self.sign_in(&id).await;
            id
        }

        /// Creates the example app and app-level token; returns (app json, token json).
        pub async fn seed(&self) -> (serde_json::Value, serde_json::Value) {
            let (s, app) = self
                .admin(
                    reqwest::Method::POST,
                    "/api/v1/apps",
                    Some(
                        serde_json::json!({"name": "sales-invoice", "tokens": ["snowflake-sales"]}),
                    ),
                )
                .await;
            assert_eq!(s, 201, "{app}");
            let (s, token) = self
                .admin(
                    reqwest::Method::POST,
                    "/api/v1/tokens",
                    Some(serde_json::json!({
                        "name": "snowflake-sales", "provider": "snowflake", "app": "sales-invoice",
                        "settings": {"account": "xy12345.us-east-1", "role": "ANALYST"},
                        "client_id": "kMoBQd6lZ0iRIB5W+LjzHc3CQqM=", "client_secret": "vNy-client-secret-SEEDED-1"
                    })),
                )
                .await;
            assert_eq!(s, 201, "{token}");
            (app, token)
        }
    }
}

/// For each `name` (an `async fn name(db: Db)` of the module), a module `name` with two tests,
/// `sqlite` and `postgres`: the same case on both databases.
macro_rules! on_both_databases {
    // On a multi-threaded runtime: the server's handlers (and the test's clients) run on
    // several threads at once, for tests of concurrent writers.
    (threaded: $($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn sqlite() {
                    super::$name(crate::support::Db::Sqlite).await;
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn postgres() {
                    super::$name(crate::support::Db::Postgres).await;
                }
            }
        )*
    };
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[tokio::test]
                async fn sqlite() {
                    super::$name(crate::support::Db::Sqlite).await;
                }

                #[tokio::test]
                async fn postgres() {
                    super::$name(crate::support::Db::Postgres).await;
                }
            }
        )*
    };
}

mod admins;
mod auth;
mod channels;
mod client_credentials;
mod concurrency;
mod core;
mod device;
mod encryption;
mod engine;
mod flows;
mod fuzz;
mod grant;
mod hardening;
mod keypair;
mod limits;
mod metrics;
mod oidc;
mod openapi;
mod pages;
mod reads;
mod setup;
mod snowflake;
mod ui;
mod validation;
