//! Snowflake key-pair tokens end to end against the emulator (issue 12 item 3): create → the
//! SQL shown → run it in "Snowflake" → test connection → an app reads JWTs the emulator accepts
//! across several lifetimes on the test clock → a key rotation without a failed read. And the
//! `private_key_jwt` client authentication against npm's oidc-provider (item 1).

use crate::support::{ADMIN, Db, TestApp, emulator, spawn};
use base64::Engine as _;
use reqwest::Method;
use serde_json::{Value, json};
use snowflake_emulator::Emulator;

on_both_databases!(
    a_keypair_token_serves_jwts_snowflake_accepts_across_lifetimes_and_a_rotation,
    a_private_key_jwt_client_signs_in_and_refreshes_at_oidc_provider,
    a_token_switched_to_private_key_jwt_gets_its_key,
);

/// The JWT's claims (unverified: the emulator verifies).
fn claims(jwt: &str) -> Value {
    let payload = jwt.split('.').nth(1).unwrap();
    serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .unwrap(),
    )
    .unwrap()
}

/// Runs `SELECT CURRENT_USER()` on the emulator's SQL API with a key-pair JWT.
async fn snowflake_accepts(http: &reqwest::Client, base: &str, jwt: &str) -> (u16, Value) {
    let res = http
        .post(format!("{base}/api/v2/statements"))
        .bearer_auth(jwt)
        .header("X-Snowflake-Authorization-Token-Type", "KEYPAIR_JWT")
        .json(&json!({"statement": "SELECT CURRENT_USER()"}))
        .send()
        .await
        .unwrap();
    (res.status().as_u16(), res.json().await.unwrap())
}

fn run_sql(e: &Emulator, sql: &str) {
    let out = e.run_sql_as("ADMIN", sql);
    assert!(out.is_ok(), "{sql}: {out:?}");
}

/// Moves the test clock and the emulator's clock together.
struct Clocks<'a> {
    t: &'a TestApp,
    e: &'a Emulator,
    offset: chrono::Duration,
}

impl<'a> Clocks<'a> {
    fn new(t: &'a TestApp, e: &'a Emulator) -> Self {
        let offset = t.clock_now() - e.now();
        e.set_clock_offset(offset);
        Clocks { t, e, offset }
    }

    fn advance(&mut self, by: chrono::Duration) {
        self.t.clock.advance(by);
        self.offset += by;
        self.e.set_clock_offset(self.offset);
    }
}

async fn read(t: &TestApp, key: &str) -> (u16, Value) {
    let (s, v, _) = t
        .send(
            Method::GET,
            "/api/v1/access-tokens/sf-keys",
            Some(key),
            None,
        )
        .await;
    (s, v)
}

async fn a_keypair_token_serves_jwts_snowflake_accepts_across_lifetimes_and_a_rotation(db: Db) {
    let t = spawn(db).await;
    let emu = emulator().await;
    let e = &emu.emulator;
    let mut clocks = Clocks::new(&t, e);
    let plain = reqwest::Client::new();

    let (s, app) = t
        .admin(
            Method::POST,
            "/api/v1/apps",
            Some(json!({"name": "loader", "tokens": ["sf-keys"]})),
        )
        .await;
    assert_eq!(s, 201, "{app}");
    let key = app["api_key"].as_str().unwrap().to_owned();

    // A key-pair token needs the Snowflake user; against an emulator URL also the account name.
    let body = |settings: Value| {
        json!({"name": "sf-keys", "provider": "snowflake", "grant": "snowflake_keypair",
               "settings": settings})
    };
    let (s, err) = t
        .admin(
            Method::POST,
            "/api/v1/tokens",
            Some(body(json!({"account": emu.base_url(), "role": "ANALYST", "account_identifier": "EMU12345"}))),
        )
        .await;
    assert_eq!(s, 400, "{err}");
    assert!(
        err["message"].as_str().unwrap().contains("settings.user"),
        "{err}"
    );
    let (s, tok) = t
        .admin(
            Method::POST,
            "/api/v1/tokens",
            Some(body(json!({"account": emu.base_url(), "role": "ANALYST",
                             "user": "alice", "account_identifier": "emu12345"}))),
        )
        .await;
    assert_eq!(s, 201, "{tok}");
    assert_eq!(tok["grant"], "snowflake_keypair");
    let id = tok["id"].as_str().unwrap().to_owned();

    // The key: its fingerprint and the SQL to run.
    let (s, keys) = t
        .admin(Method::GET, &format!("/api/v1/tokens/{id}/keys"), None)
        .await;
    assert_eq!(s, 200, "{keys}");
    let fp1 = keys["current"]["fingerprint"].as_str().unwrap().to_owned();
    let set1 = keys["current"]["set_sql"].as_str().unwrap().to_owned();
    assert!(fp1.starts_with("SHA256:"), "{keys}");
    assert!(
        set1.starts_with("ALTER USER \"ALICE\" SET RSA_PUBLIC_KEY = 'MII"),
        "{set1}"
    );
    assert!(keys.get("next").is_none(), "{keys}");

    // Not active yet: reads are refused clearly; activating before the SQL ran fails with
    // Snowflake's refusal and stores nothing.
    let (s, r) = read(&t, &key).await;
    assert_eq!(s, 409, "{r}");
    let (s, r) = t
        .admin(
            Method::POST,
            &format!("/api/v1/tokens/{id}/authorize"),
            None,
        )
        .await;
    assert_eq!(s, 400, "{r}");
    assert!(r["message"].as_str().unwrap().contains("390144"), "{r}");

    // The admin runs the SQL in Snowflake; DESC USER shows the fingerprint tokenwarden showed.
    run_sql(e, &set1);
    let desc = e.run_sql_as("ADMIN", "DESC USER alice");
    let rows = &desc.rows().unwrap().rows;
    assert!(
        rows.iter()
            .any(|r| r[0].as_deref() == Some("RSA_PUBLIC_KEY_FP")
                && r[1].as_deref() == Some(fp1.as_str())),
        "{rows:?}"
    );
    let (s, r) = t
        .admin(
            Method::POST,
            &format!("/api/v1/tokens/{id}/authorize"),
            None,
        )
        .await;
    assert_eq!(s, 200, "{r}");
    let (s, r) = t
        .admin(Method::POST, &format!("/api/v1/tokens/{id}/test"), None)
        .await;
    assert_eq!(s, 200);
    assert_eq!(r["ok"], true, "{r}");
    assert!(r["message"].as_str().unwrap().contains("ALICE"), "{r}");

    // An app reads a KEYPAIR_JWT that Snowflake accepts, across several JWT lifetimes.
    let mut seen = std::collections::BTreeSet::new();
    let logins_before = e.stats().counters.keypair_jwt_logins_ok;
    for round in 0..6 {
        let (s, r) = read(&t, &key).await;
        assert_eq!(s, 200, "round {round}: {r}");
        assert_eq!(r["token_type"], "KEYPAIR_JWT", "{r}");
        let jwt = r["access_token"].as_str().unwrap();
        let c = claims(jwt);
        assert_eq!(c["sub"], "EMU12345.ALICE");
        assert_eq!(c["iss"], format!("EMU12345.ALICE.{fp1}"));
        assert!(c["exp"].as_i64().unwrap() - c["iat"].as_i64().unwrap() <= 3600);
        let (s, body) = snowflake_accepts(&plain, &emu.base_url(), jwt).await;
        assert_eq!(s, 200, "round {round}: {body}");
        assert_eq!(body["data"][0][0], "ALICE");
        seen.insert(jwt.to_owned());
        // 50 minutes on (10 left of the hour, inside the last quarter): the background pass
        // mints the next JWT ahead of expiry (the token is in use).
        clocks.advance(chrono::Duration::minutes(50));
        t.pass().await;
    }
    assert_eq!(seen.len(), 6, "a new JWT per lifetime");
    assert!(e.stats().counters.keypair_jwt_logins_ok >= logins_before + 6);

    // Rotation: a new key is shown for RSA_PUBLIC_KEY_2; the old one signs on meanwhile.
    let (s, rot) = t
        .admin(
            Method::POST,
            &format!("/api/v1/tokens/{id}/keys/rotate"),
            None,
        )
        .await;
    assert_eq!(s, 200, "{rot}");
    let fp2 = rot["next"]["fingerprint"].as_str().unwrap().to_owned();
    let set2 = rot["next"]["set_sql"].as_str().unwrap().to_owned();
    assert_ne!(fp1, fp2);
    assert!(set2.contains("SET RSA_PUBLIC_KEY_2 = '"), "{set2}");
    assert_eq!(rot["current"]["fingerprint"], fp1.as_str());
    // Finishing before the SQL ran: Snowflake refuses the new key, the old one keeps signing.
    let (s, r) = t
        .admin(
            Method::POST,
            &format!("/api/v1/tokens/{id}/keys/rotate/finish"),
            Some(json!({})),
        )
        .await;
    assert_eq!(s, 400, "{r}");
    let (s, r) = read(&t, &key).await;
    assert_eq!(s, 200);
    assert_eq!(
        claims(r["access_token"].as_str().unwrap())["iss"],
        format!("EMU12345.ALICE.{fp1}")
    );
    run_sql(e, &set2);
    let (s, done) = t
        .admin(
            Method::POST,
            &format!("/api/v1/tokens/{id}/keys/rotate/finish"),
            Some(json!({})),
        )
        .await;
    assert_eq!(s, 200, "{done}");
    assert!(done["test"].as_str().unwrap().contains("ALICE"), "{done}");
    assert_eq!(done["keys"]["current"]["fingerprint"], fp2.as_str());
    let unset = done["keys"]["unset_old_sql"].as_str().unwrap().to_owned();
    assert_eq!(unset, "ALTER USER \"ALICE\" UNSET RSA_PUBLIC_KEY;");
    // Reads now get the new key's JWT at once; the old key can go without a failed read.
    let (s, r) = read(&t, &key).await;
    assert_eq!(s, 200, "{r}");
    let jwt = r["access_token"].as_str().unwrap().to_owned();
    assert_eq!(claims(&jwt)["iss"], format!("EMU12345.ALICE.{fp2}"));
    run_sql(e, &unset);
    for round in 0..3 {
        let (s, r) = read(&t, &key).await;
        assert_eq!(s, 200, "after rotation, round {round}: {r}");
        let (s, body) =
            snowflake_accepts(&plain, &emu.base_url(), r["access_token"].as_str().unwrap()).await;
        assert_eq!(s, 200, "after rotation, round {round}: {body}");
        clocks.advance(chrono::Duration::minutes(40));
        t.pass().await;
    }
    // The next rotation goes back to RSA_PUBLIC_KEY.
    let (s, rot) = t
        .admin(
            Method::POST,
            &format!("/api/v1/tokens/{id}/keys/rotate"),
            None,
        )
        .await;
    assert_eq!(s, 200);
    assert!(
        rot["next"]["set_sql"]
            .as_str()
            .unwrap()
            .contains("SET RSA_PUBLIC_KEY = '"),
        "{rot}"
    );
    let (s, _) = t
        .admin(
            Method::POST,
            &format!("/api/v1/tokens/{id}/keys/rotate/cancel"),
            None,
        )
        .await;
    assert_eq!(s, 200);
    // The private key is never shown, and it is sealed at rest.
    let (_, shown) = t
        .admin(Method::GET, &format!("/api/v1/tokens/{id}/keys"), None)
        .await;
    assert!(!shown.to_string().contains("PRIVATE KEY"), "{shown}");
    let _ = ADMIN;
}

async fn a_private_key_jwt_client_signs_in_and_refreshes_at_oidc_provider(db: Db) {
    use tokenwarden_testkit::oidc::{OidcProviderConfig, require_oidc_provider};
    let t = spawn(db).await;
    // The provider checks the client assertion's `iat`/`exp` against the real time.
    #[allow(clippy::disallowed_methods)]
    t.clock.set(chrono::DateTime::<chrono::Utc>::from(
        std::time::SystemTime::now(),
    ));
    // The token first: tokenwarden generates its key; its JWKS is registered at the provider.
    let (s, tok) = t
        .admin(
            Method::POST,
            "/api/v1/tokens",
            Some(json!({
                "name": "idp-jwt", "provider": "oauth2", "client_auth": "private_key_jwt",
                "settings": {"authorization_url": "http://127.0.0.1:9/auth", "token_url": "http://127.0.0.1:9/token",
                             "scope": "openid api:read"},
                "client_id": "tw-jwt-pkjwt"
            })),
        )
        .await;
    assert_eq!(s, 201, "{tok}");
    let id = tok["id"].as_str().unwrap().to_owned();
    let (s, keys) = t
        .admin(Method::GET, &format!("/api/v1/tokens/{id}/keys"), None)
        .await;
    assert_eq!(s, 200, "{keys}");
    assert!(keys["current"].get("set_sql").is_none());
    let jwks = keys["current"]["jwks"].to_string();
    assert_eq!(keys["current"]["jwks"]["keys"][0]["kty"], "RSA");

    let redirect_uri = format!("{}/oauth/callback", t.base);
    let op = tokio::task::spawn_blocking(move || {
        require_oidc_provider(OidcProviderConfig {
            client_id: "tw-jwt".into(),
            client_secret: "unused-secret".into(),
            redirect_uri,
            access_token_ttl_secs: 10,
            refresh_token_ttl_secs: 86_400,
            rotate_refresh_tokens: true,
            private_key_jwt_jwks: Some(jwks),
        })
    })
    .await
    .unwrap();
    let (s, r) = t
        .admin(
            Method::PATCH,
            &format!("/api/v1/tokens/{id}"),
            Some(json!({"settings": {
                "authorization_url": op.authorization_endpoint(), "token_url": op.token_endpoint(),
                "scope": "openid api:read", "issuer": op.issuer, "probe_url": op.userinfo_endpoint()}})),
        )
        .await;
    assert_eq!(s, 200, "{r}");

    // Sign in: the code exchange authenticates with a client assertion, no secret.
    let callback = t
        .follow_to_callback(&t.start_authorization(&id).await)
        .await;
    let res = t.http.get(&callback).send().await.unwrap();
    assert_eq!(res.status(), 200, "{}", res.text().await.unwrap());
    assert_eq!(op.token_requests("authorization_code").unwrap(), 1);
    let (s, r) = t
        .admin(Method::POST, &format!("/api/v1/tokens/{id}/test"), None)
        .await;
    assert_eq!(s, 200);
    assert_eq!(r["ok"], true, "{r}");

    // A refresh authenticates the same way (6 s on: within the provider's clock tolerance).
    t.clock.advance(chrono::Duration::seconds(6));
    let (s, r) = t
        .admin(
            Method::GET,
            "/api/v1/access-tokens/idp-jwt?min_validity=5",
            None,
        )
        .await;
    assert_eq!(s, 200, "{r}");
    assert_eq!(op.token_requests("refresh_token").unwrap(), 1);
}

/// A token made with a client secret and switched to `private_key_jwt` later (the token form's
/// "Client authentication") gets its key then, as one created with it does: its JWKS is shown,
/// and the token endpoint gets an assertion rather than "token has no signing key".
async fn a_token_switched_to_private_key_jwt_gets_its_key(db: Db) {
    let t = spawn(db).await;
    let (s, tok) = t
        .admin(
            Method::POST,
            "/api/v1/tokens",
            Some(json!({
                "name": "idp-later", "provider": "oauth2",
                "settings": {"authorization_url": "http://127.0.0.1:9/auth", "token_url": "http://127.0.0.1:9/token"},
                "client_id": "tw-later", "client_secret": "a-secret-for-now"
            })),
        )
        .await;
    assert_eq!(s, 201, "{tok}");
    let id = tok["id"].as_str().unwrap().to_owned();
    let (s, _) = t
        .admin(Method::GET, &format!("/api/v1/tokens/{id}/keys"), None)
        .await;
    assert_eq!(s, 404, "a client secret token has no key");
    let (s, r) = t
        .admin(
            Method::PATCH,
            &format!("/api/v1/tokens/{id}"),
            Some(json!({"client_auth": "private_key_jwt"})),
        )
        .await;
    assert_eq!(s, 200, "{r}");
    let (s, keys) = t
        .admin(Method::GET, &format!("/api/v1/tokens/{id}/keys"), None)
        .await;
    assert_eq!(s, 200, "{keys}");
    assert_eq!(keys["current"]["jwks"]["keys"][0]["kty"], "RSA");
    // Switching back and forth keeps the one key (registered at the provider already).
    for auth in ["client_secret_basic", "private_key_jwt"] {
        let (s, r) = t
            .admin(
                Method::PATCH,
                &format!("/api/v1/tokens/{id}"),
                Some(json!({"client_auth": auth})),
            )
            .await;
        assert_eq!(s, 200, "{r}");
    }
    let (_, again) = t
        .admin(Method::GET, &format!("/api/v1/tokens/{id}/keys"), None)
        .await;
    assert_eq!(
        again["current"]["fingerprint"],
        keys["current"]["fingerprint"]
    );
}
