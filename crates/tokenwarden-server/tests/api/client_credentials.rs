//! Client credentials (RFC 6749 4.4, issue 12) against a real OAuth 2.0 server: npm's
//! oidc-provider with its `clientCredentials` feature, on separate clients (`-cc`, `-cc-post`).
//! No sign-in: the token is usable once its client secret is stored; renewed with the client's
//! credentials like a refresh; a refused secret stops the apps until a new one is stored.

use crate::support::{Db, TestApp, spawn};
use reqwest::Method;
use serde_json::json;
use tokenwarden_testkit::oidc::OidcProvider;

on_both_databases!(
    a_client_credentials_token_serves_at_once_and_is_renewed_across_lifetimes,
    a_refused_secret_stops_the_apps_and_a_new_one_resumes_them,
    client_authentication_is_chosen_per_token,
);

const SECRET: &str = "tw-cc-secret+/=";

async fn provider_for(t: &TestApp) -> OidcProvider {
    crate::support::oidc_provider(t, "tw", SECRET).await
}

fn requests(op: &OidcProvider) -> u64 {
    op.token_requests("client_credentials").unwrap()
}

/// The create body of a client credentials token on the provider's `-cc` client.
fn cc_token(op: &OidcProvider, name: &str, secret: &str) -> serde_json::Value {
    json!({
        "name": name, "provider": "oauth2", "grant": "client_credentials",
        "settings": {"token_url": op.token_endpoint(), "scope": "api:read"},
        "client_id": op.cc_client_id(), "client_secret": secret
    })
}

/// An app that uses `tokens`; returns its API key.
async fn app(t: &TestApp, name: &str, tokens: &[&str]) -> String {
    let (s, app) = t
        .admin(
            Method::POST,
            "/api/v1/apps",
            Some(json!({"name": name, "tokens": tokens})),
        )
        .await;
    assert_eq!(s, 201, "{app}");
    app["api_key"].as_str().unwrap().to_owned()
}

async fn read(t: &TestApp, key: &str, name: &str) -> (u16, serde_json::Value) {
    let (s, body, _) = t
        .send(
            Method::GET,
            &format!("/api/v1/access-tokens/{name}"),
            Some(key),
            None,
        )
        .await;
    (s, body)
}

async fn token(t: &TestApp, id: &str) -> serde_json::Value {
    t.admin(Method::GET, &format!("/api/v1/tokens/{id}"), None)
        .await
        .1
}

async fn app_view(t: &TestApp, name: &str) -> serde_json::Value {
    t.admin(Method::GET, &format!("/api/v1/apps/{name}"), None)
        .await
        .1
}

async fn a_client_credentials_token_serves_at_once_and_is_renewed_across_lifetimes(db: Db) {
    let t = spawn(db).await;
    let op = provider_for(&t).await;
    let key = app(&t, "m2m", &["api"]).await;

    // Created with its secret: the first access token is fetched at once, no sign-in.
    let (s, tok) = t
        .admin(
            Method::POST,
            "/api/v1/tokens",
            Some(cc_token(&op, "api", SECRET)),
        )
        .await;
    assert_eq!(s, 201, "{tok}");
    assert_eq!(tok["grant"], "client_credentials", "{tok}");
    assert_eq!(tok["status"], "healthy", "{tok}");
    assert!(tok["access_token_expires_at"].is_string(), "{tok}");
    assert!(tok["refresh_token_expires_at"].is_null(), "{tok}");
    assert_eq!(tok["client_auth"], "client_secret_basic", "{tok}");
    assert_eq!(requests(&op), 1);
    let id = tok["id"].as_str().unwrap().to_owned();

    // The app reads it; reads within the lifetime go to no provider.
    let (s, first) = read(&t, &key, "api").await;
    assert_eq!(s, 200, "{first}");
    assert!(first["expires_in"].as_i64().unwrap() > 250, "{first}");
    for _ in 0..3 {
        assert_eq!(
            read(&t, &key, "api").await.1["access_token"],
            first["access_token"]
        );
    }
    assert_eq!(requests(&op), 1);

    // Several lifetimes on our clock: past each expiry a read renews it once, with the
    // client's credentials (the provider's access tokens really are new ones).
    let mut seen = vec![first["access_token"].as_str().unwrap().to_owned()];
    for round in 1..=3u64 {
        t.clock.advance(chrono::Duration::seconds(301));
        let (s, body) = read(&t, &key, "api").await;
        assert_eq!(s, 200, "{body}");
        let access = body["access_token"].as_str().unwrap().to_owned();
        assert!(!seen.contains(&access), "round {round}: a new access token");
        seen.push(access);
        assert_eq!(requests(&op), 1 + round);
    }

    // The background pass renews a token in use ahead of its expiry (a quarter of its
    // lifetime before), once, and the app then reads the renewed one without a provider call.
    t.clock.advance(chrono::Duration::seconds(240));
    let report = t.pass().await;
    assert_eq!(report.refreshed, 1, "{report:?}");
    assert_eq!(requests(&op), 5);
    let (s, body) = read(&t, &key, "api").await;
    assert_eq!(s, 200, "{body}");
    assert!(body["expires_in"].as_i64().unwrap() > 250, "{body}");
    assert!(!seen.contains(&body["access_token"].as_str().unwrap().to_owned()));
    assert_eq!(t.pass().await.refreshed, 0, "nothing due right after");
    assert_eq!(requests(&op), 5);

    // Renewals are recorded like refreshes; the secret never shows.
    let view = token(&t, &id).await;
    assert_eq!(view["status"], "healthy");
    assert!(!view.to_string().contains(SECRET), "{view}");
    let (_, audit) = t
        .admin(
            Method::GET,
            &format!("/api/v1/audit?object_id={id}&limit=100"),
            None,
        )
        .await;
    let audit = audit.to_string();
    assert!(
        audit.contains("token.refresh") && audit.contains("token.authorize"),
        "{audit}"
    );
    assert!(!audit.contains(SECRET));
}

async fn a_refused_secret_stops_the_apps_and_a_new_one_resumes_them(db: Db) {
    let t = spawn(db).await;
    let op = provider_for(&t).await;
    let key = app(&t, "m2m", &["api"]).await;
    let (s, tok) = t
        .admin(
            Method::POST,
            "/api/v1/tokens",
            Some(cc_token(&op, "api", SECRET)),
        )
        .await;
    assert_eq!((s, tok["status"].as_str()), (201, Some("healthy")), "{tok}");
    let id = tok["id"].as_str().unwrap().to_owned();
    assert_eq!(read(&t, &key, "api").await.0, 200);

    // The provider stops accepting the stored secret (rotated there): the next renewal is
    // refused with invalid_client. Simulated by sealing another secret into the row, as the
    // provider's side cannot be changed while it runs.
    let mut row = t
        .ctx
        .store
        .get_token(tokenwarden_domain::TokenId::parse(&id).unwrap())
        .await
        .unwrap();
    row.client_secret = Some(t.ctx.vault.seal(
        &secrecy::SecretString::from("rotated-away"),
        tokenwarden_store::SealedColumn::TokenClientSecret,
        &id,
    ));
    t.ctx.store.update_token(&row, t.clock_now()).await.unwrap();
    t.clock.advance(chrono::Duration::seconds(301));
    let (s, body) = read(&t, &key, "api").await;
    assert_eq!(
        (s, body["code"].as_str()),
        (409, Some("token_needs_credentials")),
        "{body}"
    );
    assert!(
        body["message"].as_str().unwrap().contains("invalid_client"),
        "{body}"
    );
    let view = token(&t, &id).await;
    assert_eq!(view["status"], "needs_credentials", "{view}");
    assert!(
        view["status_reason"]
            .as_str()
            .unwrap()
            .contains("invalid_client"),
        "{view}"
    );
    let stopped = app_view(&t, "m2m").await;
    assert_eq!(stopped["state"], "stopped", "{stopped}");
    assert_eq!(stopped["stop_reason"], "waiting for token api");
    // A dead token is not hammered: reads and passes send nothing more.
    let before = requests(&op);
    assert_eq!(read(&t, &key, "api").await.0, 409);
    t.pass().await;
    assert_eq!(requests(&op), before);
    // Starting the app is refused, saying what to do.
    let (s, body) = t.admin(Method::POST, "/api/v1/apps/m2m/start", None).await;
    assert_eq!(
        (s, body["code"].as_str()),
        (409, Some("token_needs_credentials"))
    );

    // A wrong secret typed in: fetched at once, refused, still needs credentials.
    let (s, view) = t
        .admin(
            Method::PATCH,
            &format!("/api/v1/tokens/{id}"),
            Some(json!({"client_secret": "still-wrong"})),
        )
        .await;
    assert_eq!(
        (s, view["status"].as_str()),
        (200, Some("needs_credentials")),
        "{view}"
    );
    assert_eq!(app_view(&t, "m2m").await["state"], "stopped");

    // The right secret: usable again at once, and the app resumes by itself.
    let (s, view) = t
        .admin(
            Method::PATCH,
            &format!("/api/v1/tokens/{id}"),
            Some(json!({"client_secret": SECRET})),
        )
        .await;
    assert_eq!(
        (s, view["status"].as_str()),
        (200, Some("healthy")),
        "{view}"
    );
    let resumed = app_view(&t, "m2m").await;
    assert_eq!(resumed["state"], "running", "{resumed}");
    assert!(resumed["stop_reason"].is_null(), "{resumed}");
    let (s, body) = read(&t, &key, "api").await;
    assert_eq!(s, 200, "{body}");

    // A token created with a wrong secret needs credentials from the start, and says so.
    let (s, bad) = t
        .admin(
            Method::POST,
            "/api/v1/tokens",
            Some(cc_token(&op, "bad", "not-the-secret")),
        )
        .await;
    assert_eq!(s, 201, "{bad}");
    assert_eq!(bad["status"], "needs_credentials", "{bad}");
    // "Get an access token" again with the stored (wrong) secret: refused, with the reason.
    let (s, body) = t
        .admin(
            Method::POST,
            &format!("/api/v1/tokens/{}/authorize", bad["id"].as_str().unwrap()),
            None,
        )
        .await;
    assert_eq!(
        (s, body["code"].as_str()),
        (409, Some("token_needs_credentials")),
        "{body}"
    );
    assert!(!body.to_string().contains("not-the-secret"));
}

async fn client_authentication_is_chosen_per_token(db: Db) {
    let t = spawn(db).await;
    let op = provider_for(&t).await;
    // The -cc-post client only accepts its id and secret in the form (the test server holds
    // each client to its registered method).
    let body = |name: &str, auth: Option<&str>| {
        let mut b = json!({
            "name": name, "provider": "oauth2", "grant": "client_credentials",
            "settings": {"token_url": op.token_endpoint()},
            "client_id": op.cc_post_client_id(), "client_secret": SECRET
        });
        if let Some(a) = auth {
            b["client_auth"] = json!(a);
        }
        b
    };
    let (s, post) = t
        .admin(
            Method::POST,
            "/api/v1/tokens",
            Some(body("post", Some("client_secret_post"))),
        )
        .await;
    assert_eq!(s, 201, "{post}");
    assert_eq!(
        (post["status"].as_str(), post["client_auth"].as_str()),
        (Some("healthy"), Some("client_secret_post")),
        "{post}"
    );
    // The provider's default (HTTP Basic for oauth2) is refused by this client...
    let (s, basic) = t
        .admin(Method::POST, "/api/v1/tokens", Some(body("basic", None)))
        .await;
    assert_eq!(s, 201, "{basic}");
    assert_eq!(basic["status"], "needs_credentials", "{basic}");
    assert_eq!(basic["client_auth_set"], false);
    // ...and choosing client_secret_post on the token fixes it: fetched again at once.
    let (s, fixed) = t
        .admin(
            Method::PATCH,
            &format!("/api/v1/tokens/{}", basic["id"].as_str().unwrap()),
            Some(json!({"client_auth": "client_secret_post"})),
        )
        .await;
    assert_eq!(s, 200, "{fixed}");
    assert_eq!(fixed["status"], "healthy", "{fixed}");
    assert_eq!(fixed["client_auth"], "client_secret_post");
    // Back to the provider's default with null.
    let (s, back) = t
        .admin(
            Method::PATCH,
            &format!("/api/v1/tokens/{}", basic["id"].as_str().unwrap()),
            Some(json!({"client_auth": null})),
        )
        .await;
    assert_eq!(s, 200, "{back}");
    assert_eq!(
        (
            back["client_auth"].as_str(),
            back["client_auth_set"].as_bool()
        ),
        (Some("client_secret_basic"), Some(false))
    );
    // An unknown method is a clear 4xx and changes nothing.
    let (s, body) = t
        .admin(
            Method::PATCH,
            &format!("/api/v1/tokens/{}", post["id"].as_str().unwrap()),
            Some(json!({"client_auth": "client_secret_jwt"})),
        )
        .await;
    assert!((400..500).contains(&s), "{s} {body}");
    assert_eq!(
        token(&t, post["id"].as_str().unwrap()).await["client_auth"],
        "client_secret_post"
    );
}

/// What a provider supports and needs for client credentials is checked when the token is
/// created (by the core, so the UI and the CLI get the same answers); the grant is fixed.
#[tokio::test]
async fn grant_rules_are_checked_at_creation_and_the_grant_is_fixed() {
    let t = spawn(Db::Sqlite).await;
    let create = |body: serde_json::Value| t.admin(Method::POST, "/api/v1/tokens", Some(body));
    // A grant the provider does not support: named, with the ones it does.
    let (s, body) =
        create(json!({"name": "g", "provider": "google", "grant": "client_credentials"})).await;
    assert_eq!(s, 400, "{body}");
    let m = body["message"].as_str().unwrap();
    assert!(
        m.contains("client_credentials") && m.contains("authorization_code"),
        "{m}"
    );
    // Microsoft app-only tokens need a directory, not a multi-tenant alias.
    for tenant in [
        None,
        Some("common"),
        Some("consumers"),
        Some("organizations"),
    ] {
        let mut settings = json!({});
        if let Some(x) = tenant {
            settings["tenant"] = json!(x);
        }
        let (s, body) = create(json!({"name": "ms", "provider": "microsoft",
            "grant": "client_credentials", "settings": settings}))
        .await;
        assert_eq!(s, 400, "{tenant:?}: {body}");
        assert!(
            body["message"].as_str().unwrap().contains("tenant"),
            "{body}"
        );
    }
    let (s, body) = create(
        json!({"name": "ms", "provider": "microsoft", "grant": "client_credentials",
        "settings": {"tenant": "contoso.onmicrosoft.com", "scope": "User.Read offline_access"}}),
    )
    .await;
    assert_eq!(s, 400, "{body}");
    assert!(
        body["message"].as_str().unwrap().contains(".default"),
        "{body}"
    );
    // With a tenant: created, waiting for its secret (nothing is sent anywhere without one).
    let (s, ms) = create(
        json!({"name": "ms", "provider": "microsoft", "grant": "client_credentials",
        "settings": {"tenant": "contoso.onmicrosoft.com"}, "client_id": "app-id"}),
    )
    .await;
    assert_eq!(s, 201, "{ms}");
    assert_eq!(
        (ms["status"].as_str(), ms["grant"].as_str()),
        (Some("not_authorized"), Some("client_credentials"))
    );
    let id = ms["id"].as_str().unwrap();
    let row = t
        .ctx
        .store
        .get_token(tokenwarden_domain::TokenId::parse(id).unwrap())
        .await
        .unwrap();
    let p = tokenwarden_server::ops::grant::resolve(&t.ctx, &row).unwrap();
    assert_eq!(p.scopes, "https://graph.microsoft.com/.default");
    assert_eq!(
        p.token_url,
        "https://login.microsoftonline.com/contoso.onmicrosoft.com/oauth2/v2.0/token"
    );
    // Reads say what is missing: the secret, not a sign-in.
    let (s, body) = t.admin(Method::GET, "/api/v1/access-tokens/ms", None).await;
    assert_eq!(
        (s, body["code"].as_str()),
        (409, Some("token_not_authorized")),
        "{body}"
    );
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("client id and secret"),
        "{body}"
    );
    // Salesforce's client credentials flow runs on My Domain only.
    let (s, body) =
        create(json!({"name": "sf", "provider": "salesforce", "grant": "client_credentials"}))
            .await;
    assert_eq!(s, 400, "{body}");
    assert!(
        body["message"].as_str().unwrap().contains("My Domain"),
        "{body}"
    );
    let (s, _) = create(
        json!({"name": "sf", "provider": "salesforce", "grant": "client_credentials",
        "settings": {"login_url": "https://acme.my.salesforce.com"}}),
    )
    .await;
    assert_eq!(s, 201);
    // Unknown grants are refused; a PATCH cannot change the grant.
    let (s, body) = create(json!({"name": "x", "provider": "oauth2", "grant": "password"})).await;
    assert!((400..500).contains(&s), "{body}");
    let (s, body) = t
        .admin(
            Method::PATCH,
            &format!("/api/v1/tokens/{id}"),
            Some(json!({"grant": "authorization_code"})),
        )
        .await;
    assert!((400..500).contains(&s), "{body}");
    assert_eq!(
        t.admin(Method::GET, &format!("/api/v1/tokens/{id}"), None)
            .await
            .1["grant"],
        "client_credentials"
    );
    // Without a grant: the authorization code, as before.
    let (s, body) = create(json!({"name": "plain", "provider": "github"})).await;
    assert_eq!(
        (s, body["grant"].as_str()),
        (201, Some("authorization_code")),
        "{body}"
    );
    // The catalog lists each provider's grants.
    let (_, providers) = t.admin(Method::GET, "/api/v1/providers", None).await;
    let ms = providers
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["id"] == "microsoft")
        .unwrap();
    assert_eq!(
        ms["grants"],
        json!(["authorization_code", "client_credentials", "device_code"])
    );
}
