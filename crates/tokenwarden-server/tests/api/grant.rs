//! What we send to a provider's token endpoint and what we keep from its answers, against a
//! scripted token endpoint ([`Idp`]) that records every request and hands out single-use
//! refresh tokens: the stored redirect URI and verifier (R5), rotated refresh tokens (R10), an
//! `invalid_grant` after someone else rotated (R13), answers without `expires_in` (R17), and
//! every interleaving of two instances refreshing one token (R37), and an instance whose lease
//! ran out mid-call (R9).

use crate::support::{Db, TestApp, spawn};
use axum::extract::State;
use axum::http::StatusCode;
use base64::Engine as _;
use reqwest::Method;
use secrecy::ExposeSecret;
use serde_json::{Value, json};
use sha2::Digest;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use tokenwarden_domain::{TokenId, TokenStatus};
use tokenwarden_server::AppContext;
use tokenwarden_server::ops::grant::RefreshError;
use tokenwarden_store::{SealedColumn, TokenRecord};
use tokio::sync::{mpsc, oneshot};

on_both_databases!(
    r5_the_token_request_carries_exactly_the_redirect_uri_and_verifier_stored_for_its_state,
    r10_a_new_refresh_token_is_stored_with_its_access_token_and_an_answer_without_one_keeps_the_old,
    r13_invalid_grant_after_another_rotation_changes_nothing_and_a_real_refusal_keeps_the_credentials,
    r17_an_answer_without_expires_in_gets_the_configured_default_lifetime,
    r37_every_interleaving_of_two_instances_refreshing_persists_exactly_one_rotation,
    r9_an_instance_whose_lease_ran_out_during_its_call_never_overwrites_the_newer_tokens,
);

/// One token-endpoint request: its form fields.
type Form = HashMap<String, String>;

/// Where a gated refresh request waits; sending on it lets the request go on.
type Go = oneshot::Sender<()>;

#[derive(Default)]
struct IdpState {
    requests: Vec<Form>,
    /// Refresh tokens that still work; single use while `rotate` is on.
    live: HashSet<String>,
    issued: u64,
    rotate: bool,
    /// `expires_in` of the answers; `None` leaves the field out.
    expires_in: Option<u64>,
    refresh_grants: u64,
    /// While set, each refresh request waits twice: when it arrives (nothing granted yet) and
    /// when its answer is ready (granted, not yet sent).
    gate: Option<mpsc::UnboundedSender<Go>>,
}

/// A scripted OAuth 2.0 token endpoint on 127.0.0.1 (`{base}/token`).
#[derive(Clone)]
struct Idp {
    state: Arc<Mutex<IdpState>>,
    base: String,
}

impl Idp {
    async fn start(rotate: bool, expires_in: Option<u64>) -> Idp {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let idp = Idp {
            state: Arc::new(Mutex::new(IdpState {
                rotate,
                expires_in,
                ..IdpState::default()
            })),
            base: format!("http://{}", listener.local_addr().unwrap()),
        };
        let app = axum::Router::new()
            .route("/token", axum::routing::post(token_endpoint))
            .with_state(idp.clone());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        idp
    }

    fn with<R>(&self, f: impl FnOnce(&mut IdpState) -> R) -> R {
        f(&mut self.state.lock().unwrap())
    }

    /// Gates every refresh request from now on; the receiver gets one [`Go`] per wait.
    fn gate(&self) -> mpsc::UnboundedReceiver<Go> {
        let (tx, rx) = mpsc::unbounded_channel();
        self.with(|s| s.gate = Some(tx));
        rx
    }

    fn requests(&self) -> Vec<Form> {
        self.with(|s| s.requests.clone())
    }

    fn refresh_requests(&self) -> Vec<Form> {
        self.requests()
            .into_iter()
            .filter(|f| f["grant_type"] == "refresh_token")
            .collect()
    }

    /// The grant behind every refresh token issued so far is revoked.
    fn revoke_all(&self) {
        self.with(|s| s.live.clear());
    }
}

impl IdpState {
    fn issue(&mut self, with_refresh: bool) -> (StatusCode, axum::Json<Value>) {
        self.issued += 1;
        let n = self.issued;
        let mut body = json!({"access_token": format!("AT-{n}"), "token_type": "Bearer"});
        if let Some(e) = self.expires_in {
            body["expires_in"] = e.into();
        }
        if with_refresh {
            let rt = format!("RT-{n}");
            self.live.insert(rt.clone());
            body["refresh_token"] = rt.into();
        }
        (StatusCode::OK, axum::Json(body))
    }

    fn answer(&mut self, form: &Form) -> (StatusCode, axum::Json<Value>) {
        let refused = |error: &str| (StatusCode::BAD_REQUEST, axum::Json(json!({"error": error})));
        match form.get("grant_type").map(String::as_str) {
            Some("authorization_code") => self.issue(true),
            Some("refresh_token") => {
                let presented = form.get("refresh_token").cloned().unwrap_or_default();
                if !self.live.contains(&presented) {
                    return refused("invalid_grant");
                }
                if self.rotate {
                    self.live.remove(&presented);
                }
                self.refresh_grants += 1;
                self.issue(self.rotate)
            }
            _ => refused("unsupported_grant_type"),
        }
    }
}

async fn pause(gate: &Option<mpsc::UnboundedSender<Go>>) {
    if let Some(g) = gate {
        let (go, wait) = oneshot::channel();
        if g.send(go).is_ok() {
            let _ = wait.await;
        }
    }
}

async fn token_endpoint(
    State(idp): State<Idp>,
    axum::Form(form): axum::Form<Form>,
) -> (StatusCode, axum::Json<Value>) {
    let gate = idp.with(|s| {
        s.requests.push(form.clone());
        s.gate.clone()
    });
    let refresh = form.get("grant_type").map(String::as_str) == Some("refresh_token");
    if refresh {
        pause(&gate).await;
    }
    let answer = idp.with(|s| s.answer(&form));
    if refresh {
        pause(&gate).await;
    }
    answer
}

/// A global `oauth2` token `name` at the scripted provider; returns its id.
async fn idp_token(t: &TestApp, idp: &Idp, name: &str) -> String {
    let (s, tok) = t
        .admin(
            Method::POST,
            "/api/v1/tokens",
            Some(json!({
                "name": name, "provider": "oauth2",
                "settings": {
                    "authorization_url": format!("{}/authorize", idp.base),
                    "token_url": format!("{}/token", idp.base),
                    "scope": "api"
                },
                "client_id": "tw-client", "client_secret": "tw-client-secret"
            })),
        )
        .await;
    assert_eq!(s, 201, "{tok}");
    tok["id"].as_str().unwrap().to_owned()
}

fn param(url: &str, name: &str) -> String {
    reqwest::Url::parse(url)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == name)
        .unwrap_or_else(|| panic!("no {name} in {url}"))
        .1
        .into_owned()
}

/// The provider sends the browser back with `code` for the sign-in started at `authorize_url`.
async fn callback(t: &TestApp, authorize_url: &str, code: &str) -> (u16, String) {
    let url = reqwest::Url::parse_with_params(
        &t.url("/oauth/callback"),
        &[("code", code), ("state", &param(authorize_url, "state"))],
    )
    .unwrap();
    let res = t.http.get(url).send().await.unwrap();
    (res.status().as_u16(), res.text().await.unwrap())
}

async fn authorize(t: &TestApp, id: &str, code: &str) {
    let (s, page) = callback(t, &t.start_authorization(id).await, code).await;
    assert_eq!(s, 200, "{page}");
}

async fn row(t: &TestApp, id: &str) -> TokenRecord {
    t.ctx
        .store
        .get_token(TokenId::parse(id).unwrap())
        .await
        .unwrap()
}

/// The row's access and refresh token, opened.
async fn material(ctx: &AppContext, t: &TokenRecord) -> (Option<String>, Option<String>) {
    let open = |column, sealed: Option<tokenwarden_store::Sealed>| async move {
        match sealed {
            Some(s) => Some(
                ctx.vault
                    .open_secret(&s, column, &t.id.to_string())
                    .await
                    .unwrap()
                    .expose_secret()
                    .to_owned(),
            ),
            None => None,
        }
    };
    (
        open(
            SealedColumn::TokenAccessToken,
            t.material.access_token.clone(),
        )
        .await,
        open(
            SealedColumn::TokenRefreshToken,
            t.material.refresh_token.clone(),
        )
        .await,
    )
}

/// An app reading the token `name`; returns its key.
async fn reader(t: &TestApp, app: &str, name: &str) -> String {
    let (s, a) = t
        .admin(
            Method::POST,
            "/api/v1/apps",
            Some(json!({"name": app, "tokens": [name]})),
        )
        .await;
    assert_eq!(s, 201, "{a}");
    a["api_key"].as_str().unwrap().to_owned()
}

async fn read(t: &TestApp, key: &str, name: &str) -> (u16, Value) {
    let (s, v, _) = t
        .send(
            Method::GET,
            &format!("/api/v1/access-tokens/{name}"),
            Some(key),
            None,
        )
        .await;
    (s, v)
}

/// Two sign-ins of one token are started; each callback sends the provider the redirect URI
/// that sign-in started with and the verifier of that sign-in's challenge, whatever the order.
async fn r5_the_token_request_carries_exactly_the_redirect_uri_and_verifier_stored_for_its_state(
    db: Db,
) {
    let t = spawn(db).await;
    let idp = Idp::start(true, Some(300)).await;
    let id = idp_token(&t, &idp, "idp").await;
    let first = t.start_authorization(&id).await;
    let second = t.start_authorization(&id).await;
    assert_ne!(param(&first, "state"), param(&second, "state"));
    let mut verifiers = Vec::new();
    for (url, code) in [(&second, "code-2"), (&first, "code-1")] {
        let (s, page) = callback(&t, url, code).await;
        assert_eq!(s, 200, "{page}");
        let sent = idp.requests().pop().unwrap();
        assert_eq!(sent["grant_type"], "authorization_code");
        assert_eq!(sent["code"], code);
        assert_eq!(sent["redirect_uri"], param(url, "redirect_uri"));
        assert_eq!(sent["redirect_uri"], t.url("/oauth/callback"));
        let verifier = &sent["code_verifier"];
        assert!((43..=128).contains(&verifier.len()), "{verifier}");
        let challenge = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(sha2::Sha256::digest(verifier.as_bytes()));
        assert_eq!(challenge, param(url, "code_challenge"), "{code}");
        assert_eq!(param(url, "code_challenge_method"), "S256");
        verifiers.push(verifier.clone());
    }
    assert_ne!(verifiers[0], verifiers[1]);
    assert_eq!(idp.requests().len(), 2);
}

/// A refresh that rotates stores the new access and refresh token in one write; one whose
/// answer has no refresh token keeps the stored refresh token (and its expiry), which the next
/// refresh presents again.
async fn r10_a_new_refresh_token_is_stored_with_its_access_token_and_an_answer_without_one_keeps_the_old(
    db: Db,
) {
    let t = spawn(db).await;
    let idp = Idp::start(true, Some(300)).await;
    let id = idp_token(&t, &idp, "idp").await;
    authorize(&t, &id, "code-1").await;
    let key = reader(&t, "reader", "idp").await;
    let before = row(&t, &id).await;
    assert_eq!(
        material(&t.ctx, &before).await,
        (Some("AT-1".into()), Some("RT-1".into()))
    );

    t.clock.advance(chrono::Duration::seconds(301));
    let (s, v) = read(&t, &key, "idp").await;
    assert_eq!((s, v["access_token"].as_str()), (200, Some("AT-2")), "{v}");
    assert_eq!(
        idp.refresh_requests().last().unwrap()["refresh_token"],
        "RT-1"
    );
    let rotated = row(&t, &id).await;
    assert_eq!(
        material(&t.ctx, &rotated).await,
        (Some("AT-2".into()), Some("RT-2".into()))
    );
    assert_eq!(rotated.version, before.version + 1, "one write for both");

    // The provider stops rotating: the refresh token stored is kept and used again.
    idp.with(|s| s.rotate = false);
    for (round, access) in [(1, "AT-3"), (2, "AT-4")] {
        t.clock.advance(chrono::Duration::seconds(301));
        let (s, v) = read(&t, &key, "idp").await;
        assert_eq!((s, v["access_token"].as_str()), (200, Some(access)), "{v}");
        assert_eq!(
            idp.refresh_requests().last().unwrap()["refresh_token"],
            "RT-2",
            "round {round}"
        );
        let kept = row(&t, &id).await;
        assert_eq!(
            material(&t.ctx, &kept).await,
            (Some(access.into()), Some("RT-2".into()))
        );
        assert_eq!(
            kept.material.refresh_expires_at,
            rotated.material.refresh_expires_at
        );
        assert_eq!(kept.status, TokenStatus::Healthy);
    }
}

/// A refresh is in flight with RT-1 when the token is re-authorized (RT-2 stored); the provider
/// then refuses RT-1 with `invalid_grant`. The row is read again, seen changed, and left alone:
/// no `needs_reauthorization`. A refusal of the refresh token the row still holds marks the
/// token, and deletes none of its credentials.
async fn r13_invalid_grant_after_another_rotation_changes_nothing_and_a_real_refusal_keeps_the_credentials(
    db: Db,
) {
    let t = spawn(db).await;
    let idp = Idp::start(true, Some(300)).await;
    let id = idp_token(&t, &idp, "idp").await;
    authorize(&t, &id, "code-1").await;
    let key = reader(&t, "reader", "idp").await;
    let tid = TokenId::parse(&id).unwrap();

    t.clock.advance(chrono::Duration::seconds(301));
    let mut gate = idp.gate();
    let ctx = t.ctx.clone();
    let refreshing = tokio::spawn(async move {
        let until = ctx.clock.now() + chrono::Duration::seconds(60);
        tokenwarden_server::ops::grant::refresh(&ctx, tid, until)
            .await
            .map(|r| r.version)
    });
    let arrived = gate.recv().await.unwrap();
    // Meanwhile the token is signed in again (RT-2), and the provider revokes the older grant.
    authorize(&t, &id, "code-2").await;
    let reauthorized = row(&t, &id).await;
    assert_eq!(
        material(&t.ctx, &reauthorized).await,
        (Some("AT-2".into()), Some("RT-2".into()))
    );
    idp.with(|s| {
        s.live.remove("RT-1");
    });
    arrived.send(()).unwrap();
    gate.recv().await.unwrap().send(()).unwrap();
    let outcome = refreshing.await.unwrap();
    assert!(outcome.is_ok(), "{outcome:?}");
    assert_eq!(
        idp.refresh_requests().last().unwrap()["refresh_token"],
        "RT-1"
    );
    let after = row(&t, &id).await;
    assert_eq!(
        after.status,
        TokenStatus::Healthy,
        "{:?}",
        after.status_reason
    );
    assert_eq!(
        material(&t.ctx, &after).await,
        (Some("AT-2".into()), Some("RT-2".into()))
    );
    let (s, v) = read(&t, &key, "idp").await;
    assert_eq!((s, v["access_token"].as_str()), (200, Some("AT-2")), "{v}");
    drop(gate);
    idp.with(|s| s.gate = None);

    // The provider refuses the refresh token the row holds: needs re-authorization, and the
    // client secret, refresh token and access token all stay.
    idp.revoke_all();
    t.clock.advance(chrono::Duration::seconds(301));
    let (s, v) = read(&t, &key, "idp").await;
    assert_eq!(
        (s, v["code"].as_str()),
        (409, Some("token_needs_reauthorization")),
        "{v}"
    );
    let dead = row(&t, &id).await;
    assert_eq!(dead.status, TokenStatus::NeedsReauthorization);
    assert!(dead.client_secret.is_some());
    assert_eq!(
        material(&t.ctx, &dead).await,
        (Some("AT-2".into()), Some("RT-2".into()))
    );
}

/// Without `expires_in`, an access token lives the provider template's
/// `default_access_token_lifetime` (3600 s for `oauth2`; a template of one's own sets another),
/// counted from our receive time, and is refreshed once that has passed.
async fn r17_an_answer_without_expires_in_gets_the_configured_default_lifetime(db: Db) {
    let t = spawn(db).await;
    let idp = Idp::start(true, None).await;
    let id = idp_token(&t, &idp, "idp").await;
    authorize(&t, &id, "code-1").await;
    let key = reader(&t, "reader", "idp").await;
    let hour = chrono::Duration::seconds(3600);
    assert_eq!(
        row(&t, &id).await.material.access_expires_at,
        Some(t.clock_now() + hour)
    );
    let (s, v) = read(&t, &key, "idp").await;
    assert_eq!((s, v["expires_in"].as_i64()), (200, Some(3600)), "{v}");
    t.clock.advance(chrono::Duration::seconds(3601));
    let (s, v) = read(&t, &key, "idp").await;
    assert_eq!((s, v["access_token"].as_str()), (200, Some("AT-2")), "{v}");
    assert_eq!(idp.refresh_requests().len(), 1);
    assert_eq!(
        row(&t, &id).await.material.access_expires_at,
        Some(t.clock_now() + hour)
    );

    // The default is a setting of the provider template (a file in the providers folder).
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("short.toml"),
        format!(
            "id = \"short-lived\"\ndisplay_name = \"Short\"\nauthorization_url = \"{0}/authorize\"\n\
             token_url = \"{0}/token\"\ndefault_access_token_lifetime = 120\n",
            idp.base
        ),
    )
    .unwrap();
    let catalog = tokenwarden_oauth::Catalog::with_folder(dir.path()).unwrap();
    let provider = catalog.resolve("short-lived", &Default::default()).unwrap();
    assert_eq!(provider.default_access_token_lifetime, 120);
    let answer = tokenwarden_oauth::client::parse_token_response(
        200,
        r#"{"access_token":"AT-short","token_type":"Bearer"}"#,
        None,
    )
    .unwrap();
    assert_eq!(answer.expires_in, None);
    let received = t.clock_now();
    let stored = tokenwarden_server::ops::grant::refresh::store_response(
        &t.ctx,
        TokenId::parse(&id).unwrap(),
        &provider,
        &answer,
        received,
        false,
        None,
    )
    .await
    .unwrap();
    assert_eq!(
        stored.material.access_expires_at,
        Some(received + chrono::Duration::seconds(120))
    );
}

/// The 20 orders of two instances' steps (claim, call, commit), each instance's in its order.
fn interleavings() -> Vec<Vec<usize>> {
    fn go(a: usize, b: usize, prefix: &mut Vec<usize>, out: &mut Vec<Vec<usize>>) {
        if a == 0 && b == 0 {
            out.push(prefix.clone());
            return;
        }
        for (who, left) in [(0, a), (1, b)] {
            if left > 0 {
                prefix.push(who);
                let (na, nb) = if who == 0 { (a - 1, b) } else { (a, b - 1) };
                go(na, nb, prefix, out);
                prefix.pop();
            }
        }
    }
    let mut out = Vec::new();
    go(3, 3, &mut Vec::new(), &mut out);
    out
}

type Outcome = Result<TokenRecord, RefreshError>;

impl Instance {
    fn new(t: &TestApp, name: &str) -> Instance {
        Instance {
            ctx: AppContext::from(tokenwarden_server::ContextParts {
                instance_id: name.to_owned(),
                cache: Arc::new(tokenwarden_server::cache::ReadCache::default()),
                reads: Arc::new(tokenwarden_server::reads::ReadCounter::default()),
                ..(*t.ctx).clone()
            }),
            running: None,
            waiting: None,
            outcome: None,
        }
    }
}

/// One instance refreshing, driven step by step: `claim` runs the real refresh until its request
/// is at the provider (or it ends: lease busy, or someone else's fresh token found); `call` lets
/// the provider grant or refuse; `commit` lets the answer through and waits for the refresh to
/// finish (committing what it got under its lease).
struct Instance {
    ctx: AppContext,
    running: Option<tokio::task::JoinHandle<Outcome>>,
    waiting: Option<Go>,
    outcome: Option<Outcome>,
}

impl Instance {
    async fn claim(&mut self, id: TokenId, gate: &mut mpsc::UnboundedReceiver<Go>) {
        let ctx = self.ctx.clone();
        let mut task = tokio::spawn(async move {
            let until = ctx.clock.now() + chrono::Duration::seconds(60);
            tokenwarden_server::ops::grant::refresh(&ctx, id, until).await
        });
        tokio::select! {
            Some(go) = gate.recv() => {
                self.waiting = Some(go);
                self.running = Some(task);
            }
            done = &mut task => self.outcome = Some(done.unwrap()),
        }
    }

    async fn call(&mut self, gate: &mut mpsc::UnboundedReceiver<Go>) {
        if let Some(go) = self.waiting.take() {
            go.send(()).unwrap();
            self.waiting = Some(gate.recv().await.unwrap());
        }
    }

    async fn commit(&mut self) {
        if let Some(go) = self.waiting.take() {
            go.send(()).unwrap();
            self.outcome = Some(self.running.take().unwrap().await.unwrap());
        }
    }
}

/// Two instances (own ids and caches, one database) refresh one expired token whose provider
/// rotates single-use refresh tokens. For each of the 20 orders of their steps, on a token of
/// its own: the provider is asked once and grants once, the row holds exactly the tokens of
/// that grant, and both instances then serve them without asking again.
async fn r37_every_interleaving_of_two_instances_refreshing_persists_exactly_one_rotation(db: Db) {
    let t = spawn(db).await;
    let idp = Idp::start(true, Some(300)).await;
    let orders = interleavings();
    assert_eq!(orders.len(), 20);
    for (n, order) in orders.iter().enumerate() {
        let id = idp_token(&t, &idp, &format!("r37-{n}")).await;
        let tid = TokenId::parse(&id).unwrap();
        authorize(&t, &id, &format!("code-{n}")).await;
        t.clock.advance(chrono::Duration::seconds(301));
        let (_, presented) = material(&t.ctx, &row(&t, &id).await).await;
        let (requests, grants) = (idp.refresh_requests().len(), idp.with(|s| s.refresh_grants));
        let mut gate = idp.gate();
        let mut instances = [0, 1].map(|i| Instance::new(&t, &format!("r37-instance-{i}")));
        let mut steps = [0, 0];
        for &who in order {
            let i = &mut instances[who];
            match steps[who] {
                0 => i.claim(tid, &mut gate).await,
                1 => i.call(&mut gate).await,
                _ => i.commit().await,
            }
            steps[who] += 1;
        }
        idp.with(|s| s.gate = None);
        let what = format!("order {order:?}");
        assert_eq!(idp.refresh_requests().len(), requests + 1, "{what}");
        assert_eq!(idp.with(|s| s.refresh_grants), grants + 1, "{what}");
        assert_eq!(
            idp.refresh_requests().last().unwrap()["refresh_token"],
            presented.clone().unwrap(),
            "{what}"
        );
        // The grant's tokens: the newest the provider issued.
        let issued = idp.with(|s| s.issued);
        let winner = (format!("AT-{issued}"), format!("RT-{issued}"));
        let stored = row(&t, &id).await;
        assert_eq!(stored.status, TokenStatus::Healthy, "{what}");
        assert_eq!(
            material(&t.ctx, &stored).await,
            (Some(winner.0.clone()), Some(winner.1.clone())),
            "{what}"
        );
        assert!(idp.with(|s| s.live.contains(&winner.1)), "{what}");
        for (k, i) in instances.iter().enumerate() {
            match i.outcome.as_ref().unwrap() {
                Ok(r) => assert_eq!(r.id, tid),
                Err(RefreshError::Busy) => {}
                Err(e) => panic!("{what}: instance {k}: {e}"),
            }
            let until = t.clock_now() + chrono::Duration::seconds(60);
            let again = tokenwarden_server::ops::grant::refresh(&i.ctx, tid, until)
                .await
                .unwrap();
            assert_eq!(
                material(&i.ctx, &again).await.0.as_deref(),
                Some(winner.0.as_str()),
                "{what}"
            );
        }
        assert_eq!(idp.refresh_requests().len(), requests + 1, "{what}");
    }
}

/// R9 at the refresh level: instance A sends its refresh, then stays away past its lease (as if
/// SIGSTOPped); B takes over and commits. When A's answer finally comes, it never replaces B's
/// tokens: with rotation the provider refuses A (`invalid_grant`), A sees the row changed and
/// leaves it; without rotation A's grant is refused at commit (lease lost).
async fn r9_an_instance_whose_lease_ran_out_during_its_call_never_overwrites_the_newer_tokens(
    db: Db,
) {
    for rotate in [false, true] {
        let t = spawn(db).await;
        let idp = Idp::start(rotate, Some(300)).await;
        let id = idp_token(&t, &idp, "idp").await;
        let tid = TokenId::parse(&id).unwrap();
        authorize(&t, &id, "code-1").await;
        t.clock.advance(chrono::Duration::seconds(301));
        let mut gate = idp.gate();
        let (mut a, mut b) = (Instance::new(&t, "a"), Instance::new(&t, "b"));
        a.claim(tid, &mut gate).await;
        assert!(a.waiting.is_some(), "A's refresh is at the provider");
        t.clock.advance(chrono::Duration::seconds(31));
        b.claim(tid, &mut gate).await;
        b.call(&mut gate).await;
        b.commit().await;
        assert!(b.outcome.as_ref().unwrap().is_ok(), "{:?}", b.outcome);
        let newer = material(&t.ctx, &row(&t, &id).await).await;
        let expected_refresh = if rotate { "RT-2" } else { "RT-1" };
        assert_eq!(
            newer,
            (Some("AT-2".into()), Some(expected_refresh.into())),
            "rotate {rotate}"
        );
        a.call(&mut gate).await;
        a.commit().await;
        let last = row(&t, &id).await;
        assert_eq!(material(&t.ctx, &last).await, newer, "rotate {rotate}");
        assert_eq!(last.status, TokenStatus::Healthy, "rotate {rotate}");
        match a.outcome.unwrap() {
            Ok(r) => assert!(rotate && r.version == last.version),
            Err(e) => assert!(!rotate, "{e}"),
        }
        let sent: Vec<String> = idp
            .refresh_requests()
            .iter()
            .map(|f| f["refresh_token"].clone())
            .collect();
        assert_eq!(sent, ["RT-1", "RT-1"], "rotate {rotate}");
    }
}
