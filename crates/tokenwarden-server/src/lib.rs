//! tokenwarden's HTTP layer. [`service`] (and [`router`]) build the whole application from an
//! [`AppContext`];
//! [`serve`] runs it on a listener the caller bound (tests bind `127.0.0.1:0`).

pub mod access;
pub mod api;
pub mod auth;
pub mod cache;
#[cfg(feature = "demo")]
mod demo;
pub mod error;
pub mod life;
pub mod ops;
mod pages;
pub mod reads;
pub mod ui;
pub mod vault;

use axum::extract::{Request, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use secrecy::SecretString;
use std::sync::Arc;
use std::time::Duration;
use tokenwarden_domain::{Clock, LeadTime};
use tokenwarden_store::DynStore;

#[cfg(feature = "demo")]
pub use demo::DemoHooks;
pub use error::{ApiError, ApiResult, ErrorBody};
pub use vault::Vault;

/// Settings the HTTP layer needs. `Debug` redacts the admin token.
#[derive(Clone)]
pub struct ServerSettings {
    /// Public base URL, e.g. `http://127.0.0.1:8420`; the OAuth redirect URI hangs off it.
    pub public_url: String,
    /// `TOKENWARDEN_ADMIN_TOKEN`: a bootstrap admin credential.
    pub bootstrap_admin_token: Option<SecretString>,
    /// Largest accepted request body.
    pub max_body_bytes: usize,
    /// When to remind before a refresh token expires (default 14, 7, 3 and 1 days).
    pub reminder_lead_times: Vec<LeadTime>,
    /// How often [`serve`] runs a background pass ([`ENGINE_TICK`] by default); `None`: never by
    /// itself (tests drive the engine, e.g. with `engine::run_due_once`, or rely on reads only).
    pub engine_interval: Option<Duration>,
    /// How long audit records are kept ([`DEFAULT_AUDIT_RETENTION`] by default); older ones are
    /// pruned by the background pass.
    pub audit_retention: chrono::Duration,
    /// How many tokens one background pass works on at once (refreshes in flight at most),
    /// [`DEFAULT_REFRESH_CONCURRENCY`] by default.
    pub refresh_concurrency: usize,
    /// Who may scrape `GET /metrics` (`metrics_token`, `metrics_allow`); by default nobody
    /// (the route answers 404).
    pub metrics: ops::metrics::MetricsAccess,
    /// Reverse proxies whose `X-Forwarded-For` is believed (the client address keys the
    /// sign-in throttle); empty by default: forwarding headers are ignored.
    pub trusted_proxies: Vec<tokenwarden_domain::net::IpNet>,
}

/// Refreshes one background pass runs at once unless configured (`refresh_concurrency`).
pub const DEFAULT_REFRESH_CONCURRENCY: usize = 32;

/// Audit records are kept 90 days unless configured otherwise (`audit_retention`).
pub const DEFAULT_AUDIT_RETENTION: chrono::Duration = chrono::Duration::days(90);

/// The default reminder lead times: 14, 7, 3 and 1 days.
pub fn default_lead_times() -> Vec<LeadTime> {
    LeadTime::defaults()
}

impl std::fmt::Debug for ServerSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerSettings")
            .field("public_url", &self.public_url)
            .field(
                "bootstrap_admin_token",
                &self.bootstrap_admin_token.as_ref().map(|_| "[redacted]"),
            )
            .field("max_body_bytes", &self.max_body_bytes)
            .field("reminder_lead_times", &self.reminder_lead_times)
            .field("engine_interval", &self.engine_interval)
            .field("audit_retention", &self.audit_retention)
            .field("refresh_concurrency", &self.refresh_concurrency)
            .field("metrics", &self.metrics)
            .field("trusted_proxies", &self.trusted_proxies)
            .finish()
    }
}

impl ServerSettings {
    /// The redirect URI to register with providers.
    pub fn redirect_uri(&self) -> String {
        format!("{}/oauth/callback", self.public_url.trim_end_matches('/'))
    }
}

/// Everything a request handler may use: the [`ContextParts`] behind one `Arc`, so the clone
/// each extractor and layer makes per request is one reference count, not ~14 fields (issue
/// 10). Reads go through `Deref`; a field set on a context (`ctx.clock = ...`, tests and the
/// demo) changes that context only (copy on write, as when it was a plain struct).
#[derive(Debug, Clone)]
pub struct AppContext(Arc<ContextParts>);

impl std::ops::Deref for AppContext {
    type Target = ContextParts;
    fn deref(&self) -> &ContextParts {
        &self.0
    }
}

impl std::ops::DerefMut for AppContext {
    fn deref_mut(&mut self) -> &mut ContextParts {
        Arc::make_mut(&mut self.0)
    }
}

impl From<ContextParts> for AppContext {
    fn from(parts: ContextParts) -> Self {
        AppContext(Arc::new(parts))
    }
}

/// The fields of an [`AppContext`].
#[derive(Debug, Clone)]
pub struct ContextParts {
    pub store: DynStore,
    pub vault: Vault,
    pub clock: Arc<dyn Clock>,
    pub settings: Arc<ServerSettings>,
    pub catalog: Arc<tokenwarden_oauth::Catalog>,
    pub oauth: tokenwarden_oauth::OAuthClient,
    /// Names this process as a lease owner; unique per process.
    pub instance_id: String,
    pub reads: Arc<reads::ReadCounter>,
    /// Refused credentials, counted in memory and flushed as aggregated audit rows.
    pub denials: Arc<reads::DenialCounter>,
    pub cache: Arc<cache::ReadCache>,
    /// The Prometheus metrics (`ops::metrics`), counted by the core.
    pub metrics: Arc<ops::metrics::Metrics>,
    /// Reminder lead times in force: the configured ones, or what an admin set in the UI
    /// (kept in the database, so every instance follows; reloaded every background pass).
    pub lead_times: Arc<std::sync::RwLock<Vec<LeadTime>>>,
    /// Only in `tokenwarden demo`: moving time forward.
    #[cfg(feature = "demo")]
    pub demo: Option<Arc<DemoHooks>>,
    pub notifier: ops::delivery::Notifier,
    /// The admin UI's in-memory state (failed sign-in counters).
    pub ui: Arc<ui::UiState>,
    /// `/readyz`'s last write probe: when, and whether the database took the write.
    pub write_probe: Arc<std::sync::Mutex<Option<(tokenwarden_domain::Timestamp, bool)>>>,
    /// Stopping, and the settings a reload (SIGHUP) replaced.
    pub live: Arc<life::Live>,
}

impl ContextParts {
    /// The reminder lead times in force, longest first.
    pub fn lead_times(&self) -> Vec<LeadTime> {
        let set = self
            .lead_times
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let mut v = if set.is_empty() {
            self.live
                .configured_lead_times()
                .unwrap_or_else(|| self.settings.reminder_lead_times.clone())
        } else {
            set
        };
        v.sort_by(|a, b| b.cmp(a));
        v
    }

    /// The longest lead time in force: a token is `expiring_soon` from then on.
    pub fn first_lead_time(&self) -> LeadTime {
        self.lead_times()
            .first()
            .copied()
            .unwrap_or_else(|| LeadTime::days(14))
    }

    /// Picks up lead times an admin set in the UI (on any instance).
    pub async fn reload_lead_times(&self) {
        if let Ok(Some(json)) = self.store.get_meta(ops::channels::LEAD_TIMES_KEY).await
            && let Ok(labels) = serde_json::from_str::<Vec<String>>(&json)
        {
            let parsed: Vec<LeadTime> = labels
                .iter()
                .filter_map(|l| LeadTime::parse(l).ok())
                .collect();
            *self.lead_times.write().unwrap_or_else(|e| e.into_inner()) = parsed;
        }
    }
}

impl AppContext {
    /// A context with the built-in provider catalog and a fresh instance id.
    pub fn new(
        store: DynStore,
        vault: Vault,
        clock: Arc<dyn Clock>,
        settings: ServerSettings,
    ) -> Self {
        Self::from(ContextParts {
            store,
            vault,
            clock,
            settings: Arc::new(settings),
            catalog: Arc::new(tokenwarden_oauth::Catalog::built_in()),
            oauth: tokenwarden_oauth::OAuthClient::default(),
            instance_id: format!("{}-{}", std::process::id(), uuid::Uuid::new_v4().simple()),
            reads: Arc::new(reads::ReadCounter::default()),
            denials: Arc::new(reads::DenialCounter::default()),
            cache: Arc::new(cache::ReadCache::default()),
            metrics: Arc::new(ops::metrics::Metrics::new()),
            #[cfg(feature = "demo")]
            demo: None,
            lead_times: Arc::new(std::sync::RwLock::new(Vec::new())),
            notifier: ops::delivery::Notifier::default(),
            ui: Arc::new(ui::UiState::default()),
            write_probe: Arc::new(std::sync::Mutex::new(None)),
            live: Arc::new(life::Live::default()),
        })
    }
}

/// The whole application, as a `Router` (tests send requests to it with `oneshot`): the
/// [`service`] behind a fallback.
pub fn router(ctx: AppContext) -> axum::Router {
    axum::Router::new().fallback_service(service(ctx))
}

/// The whole application as one service: the routes, and around them, once, what every
/// request passes ([`guard`]: request id, span and access line, refusals, headers; the body
/// limit). [`Front`] wraps the routed service from outside instead of layers added with
/// `Router::layer`, which wraps every route on its own and boxes it (issue 10). What they do is
/// the same.
///
/// The one thing it cannot see from outside is the matched route (axum sets `MatchedPath`
/// inside the router), which the access line names: every route records it with
/// [`access::record_route`], added with `Router::layer` (so at that cost). The read route
/// (`GET /api/v1/access-tokens/{name}`, the hot path) does not go through the router at all:
/// [`Front`] recognises it by [`access::is_read`] and answers it with
/// [`api::read_direct`].
pub fn service(
    ctx: AppContext,
) -> Front<
    impl tower::Service<
        Request,
        Response = Response,
        Error = std::convert::Infallible,
        Future: Send + 'static,
    > + Clone
    + Send
    + Sync
    + 'static,
> {
    let (api, _doc) = api::router_without_read().split_for_parts();
    let (read, _doc) = api::read_router().split_for_parts();
    let limit = ctx.settings.max_body_bytes;
    let app = axum::Router::new()
        .route("/healthz", axum::routing::get(healthz))
        .route("/readyz", axum::routing::get(readyz))
        .route("/metrics", axum::routing::get(metrics))
        .route("/api/openapi.json", axum::routing::get(openapi_json));
    #[cfg(feature = "demo")]
    let app = app.merge(demo::router());
    let app = app
        .merge(pages::router())
        .merge(ui::router(&ctx))
        .merge(api)
        // The read route's other methods (HEAD; the others answer 405) and its documentation.
        .merge(read)
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::middleware::from_fn(access::record_route));
    let guard = Guard {
        https: ui::session::secure(&ctx),
        ctx: ctx.clone(),
        limit,
    };
    Front {
        guard,
        inner: tower::Layer::layer(
            &axum::extract::DefaultBodyLimit::max(limit),
            app.with_state(ctx),
        ),
        peer: None,
    }
}

/// What [`guard`] needs.
#[derive(Clone)]
struct Guard {
    ctx: AppContext,
    limit: usize,
    https: bool,
}

/// The front of the application ([`service`]): every request passes [`guard`]; the read route
/// is answered at once ([`api::read_direct`]), the others by the router (`inner`).
/// One per connection when served ([`serve_with`]), knowing its peer.
#[derive(Clone)]
pub struct Front<S> {
    guard: Guard,
    inner: S,
    /// The connection's peer, given to the routes as `ConnectInfo` (the UI's sign-in
    /// throttle, the metrics route's allow list); not to the read route, which needs none.
    peer: Option<std::net::SocketAddr>,
}

impl<S> Front<S> {
    /// This service for a connection from `peer`.
    pub fn with_peer(mut self, peer: std::net::SocketAddr) -> Self {
        self.peer = Some(peer);
        self
    }
}

impl<S> tower::Service<Request> for Front<S>
where
    S: tower::Service<Request, Response = Response, Error = std::convert::Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = std::convert::Infallible;
    type Future = std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<Response, std::convert::Infallible>> + Send>,
    >;

    fn poll_ready(
        &mut self,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        // The router is always ready; it is called through `oneshot`, which asks it.
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request) -> Self::Future {
        let front = self.clone();
        Box::pin(async move { Ok(guard(front, req).await) })
    }
}

/// [`serve_with`]'s connections: a [`Front`] per connection, knowing its peer.
#[derive(Clone)]
struct Connections<S>(Front<S>);

impl<'a, S: Clone> tower::Service<axum::serve::IncomingStream<'a, tokio::net::TcpListener>>
    for Connections<S>
{
    type Response = Front<S>;
    type Error = std::convert::Infallible;
    type Future = std::future::Ready<Result<Front<S>, std::convert::Infallible>>;

    fn poll_ready(
        &mut self,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(
        &mut self,
        conn: axum::serve::IncomingStream<'a, tokio::net::TcpListener>,
    ) -> Self::Future {
        std::future::ready(Ok(self.0.clone().with_peer(*conn.remote_addr())))
    }
}

/// Every request's checks and headers in one place (five `from_fn` layers before issue 10, each
/// boxing the request's future), in the order they had, outermost first:
/// [`strict_transport`], [`json_errors`], [`limit_body`], [`refuse_writes_without_storage`],
/// [`no_store`] (which marks what the routes answer, not these refusals).
///
/// Around them: the request id (taken from `X-Request-Id` when sane, else made; echoed in the
/// answer), a span carrying it for every line logged meanwhile, and the access line
/// ([`access::log`]). The read route's span is DEBUG (a span per request was 4% of the read
/// path, issue 10) and its line is written only when it fails (or at DEBUG).
async fn guard<S>(front: Front<S>, mut req: Request) -> Response
where
    S: tower::Service<Request, Response = Response, Error = std::convert::Infallible>,
{
    use tower::ServiceExt;
    use tracing::Instrument;
    let Front {
        guard: g,
        inner,
        peer,
    } = front;
    let started = std::time::Instant::now();
    let id = access::RequestId::of(req.headers());
    let method = req.method().clone();
    let read = access::is_read(&method, req.uri().path());
    let span = if read {
        tracing::debug_span!("request", request_id = %id)
    } else {
        tracing::info_span!("request", request_id = %id)
    };
    async move {
        let mut route = None;
        let res = if let Some(refused) = limit_body(g.limit, &req) {
            refused
        } else if let Some(refused) = refuse_writes_without_storage(&g.ctx, &req) {
            refused
        } else if read {
            no_store(api::read_direct(&g.ctx, req).await)
        } else {
            if let Some(peer) = peer {
                req.extensions_mut()
                    .insert(axum::extract::ConnectInfo(peer));
            }
            let mut res = match inner.oneshot(req).await {
                Ok(res) => res,
                Err(never) => match never {},
            };
            route = res.extensions_mut().remove::<access::Route>();
            no_store(res)
        };
        let mut res = strict_transport(g.https, json_errors(g.limit, res).await);
        res.headers_mut()
            .insert(access::REQUEST_ID, id.header_value());
        let template = match &route {
            Some(r) => r.as_str(),
            None if read => access::READ_ROUTE,
            None => access::UNMATCHED,
        };
        access::log(
            read,
            &method,
            template,
            res.status(),
            started.elapsed(),
            &id,
        );
        res
    }
    .instrument(span)
    .await
}

/// How often the background pass runs by default.
pub const ENGINE_TICK: Duration = Duration::from_secs(5);

/// How long [`serve`] lets requests and background work in flight finish after `shutdown`
/// (the `shutdown_grace` setting of `tokenwarden serve`).
pub const DEFAULT_SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// [`serve_with`] and [`DEFAULT_SHUTDOWN_GRACE`].
pub async fn serve(
    listener: tokio::net::TcpListener,
    ctx: AppContext,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    serve_with(listener, ctx, shutdown, DEFAULT_SHUTDOWN_GRACE).await
}

/// Serves until `shutdown` completes; runs the background engine meanwhile. Then, within
/// `grace`: stops accepting connections and lets the requests in flight finish (each refresh a
/// read started finishes with it), lets the background pass finish the tokens it is working on
/// and start no others; what is still running after `grace` is cut, and the refresh leases
/// this instance still holds are released (so another instance, or the next start, refreshes
/// at once instead of waiting for the lease to run out). Logs each step.
pub async fn serve_with(
    listener: tokio::net::TcpListener,
    ctx: AppContext,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    grace: Duration,
) -> std::io::Result<()> {
    // Pick up data keys added by `keys rotate` elsewhere.
    let vault = ctx.vault.clone();
    let reload = tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(60));
        tick.tick().await;
        loop {
            tick.tick().await;
            if let Err(e) = vault.reload().await {
                tracing::warn!(error = %e, "could not reload encryption keys");
            }
        }
    });
    let engine_ctx = ctx.clone();
    let engine_interval = ctx.settings.engine_interval;
    let mut engine = tokio::spawn(async move {
        let Some(every) = engine_interval else {
            tracing::info!("background passes are off (engine_interval)");
            return;
        };
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                () = engine_ctx.live.stopped() => return,
            }
            if engine_ctx.live.is_stopping() {
                return;
            }
            let report = ops::engine::run_due_once(&engine_ctx, engine_ctx.clock.now()).await;
            if report != ops::engine::PassReport::default() {
                tracing::info!(?report, "background pass");
            }
        }
    });
    // The peer address keys the UI's failed sign-in counter (R32).
    let app = Connections(service(ctx.clone()));
    let live = ctx.live.clone();
    let signalled = async move {
        shutdown.await;
        live.stop();
        tracing::info!(
            grace_seconds = grace.as_secs_f64(),
            "stopping: no new connections and no new background work; waiting for requests \
             and refreshes in flight"
        );
    };
    let server = axum::serve(listener, app).with_graceful_shutdown(signalled);
    let mut server = std::pin::pin!(server.into_future());
    let live = ctx.live.clone();
    // Serve until the signal; then at most `grace` more for requests and background work.
    let deadline = tokio::select! {
        r = &mut server => {
            finish(&ctx, reload, engine).await;
            return r;
        }
        () = live.stopped() => tokio::time::Instant::now() + grace,
    };
    let result = match tokio::time::timeout_at(deadline, &mut server).await {
        Ok(r) => {
            tracing::info!("requests in flight finished");
            r
        }
        Err(_) => {
            tracing::warn!(
                grace_seconds = grace.as_secs_f64(),
                "requests still in flight after the grace period: cut"
            );
            Ok(())
        }
    };
    match tokio::time::timeout_at(deadline, &mut engine).await {
        Ok(_) => tracing::info!("background work finished"),
        Err(_) => {
            engine.abort();
            let _ = (&mut engine).await;
            tracing::warn!(
                grace_seconds = grace.as_secs_f64(),
                "background work still running after the grace period: cut"
            );
        }
    }
    finish(&ctx, reload, engine).await;
    result
}

/// What [`serve_with`] does last, however it ended: the tasks stopped, the leases this
/// instance still holds released, the reads and denials counted in memory written.
async fn finish(
    ctx: &AppContext,
    reload: tokio::task::JoinHandle<()>,
    engine: tokio::task::JoinHandle<()>,
) {
    ctx.live.stop();
    reload.abort();
    engine.abort();
    match ctx.store.release_leases_of(&ctx.instance_id).await {
        Ok(0) => {}
        Ok(n) => tracing::warn!(leases = n, "released the leases of work that was cut"),
        Err(e) => tracing::warn!(error = %e, "could not release this instance's leases"),
    }
    ops::engine::flush_reads(ctx).await;
    ops::engine::flush_denials(ctx, None).await;
}

/// The OpenAPI document with the built-in provider catalog, generated from the handlers and
/// finished by `api::doc` (what the annotations cannot say: optional bodies, the channel kinds,
/// each provider's settings, links between operations).
pub fn openapi() -> serde_json::Value {
    openapi_for(&tokenwarden_oauth::Catalog::built_in())
}

/// The OpenAPI document of an instance with this provider catalog (its own templates too).
pub fn openapi_for(catalog: &tokenwarden_oauth::Catalog) -> serde_json::Value {
    api::document(api::router().split_for_parts().1, catalog)
}

async fn healthz() -> impl IntoResponse {
    axum::Json(serde_json::json!({ "status": "ok" }))
}

/// `GET /metrics`: the Prometheus text format, for a scraper with the metrics token or from an
/// allowed address (`ops::metrics::MetricsAccess`; not the API's credentials). Off (404)
/// unless configured; without the token 401, from an address not allowed (and no token
/// configured) 403. Refusals are counted with the API's (`reads::DenialCounter`).
async fn metrics(State(ctx): State<AppContext>, req: Request) -> Response {
    use ops::metrics::Refusal;
    let peer = req
        .extensions()
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|c| c.0.ip());
    let authorization = req.headers().get(header::AUTHORIZATION);
    match ctx
        .settings
        .metrics
        .check(peer, authorization.map(HeaderValue::as_bytes))
    {
        Ok(()) => {
            let text = ops::metrics::render(&ctx).await;
            (
                [(
                    header::CONTENT_TYPE,
                    prometheus_client::encoding::prometheus_text::CONTENT_TYPE,
                )],
                text,
            )
                .into_response()
        }
        Err(Refusal::Disabled) => ApiError::Rejected {
            status: axum::http::StatusCode::NOT_FOUND,
            message: "metrics are off: set metrics_token_file (a bearer token for the scraper) or metrics_allow (client addresses) in the config".into(),
        }
        .into_response(),
        Err(refusal) => {
            let (status, reason, message) = if refusal == Refusal::Unauthorized {
                (
                    axum::http::StatusCode::UNAUTHORIZED,
                    "unauthorized",
                    "missing or wrong metrics token: send `Authorization: Bearer <metrics token>`",
                )
            } else {
                (
                    axum::http::StatusCode::FORBIDDEN,
                    "forbidden",
                    "this client's address is not in metrics_allow",
                )
            };
            let credential = if authorization.is_some() { "bearer" } else { "none" };
            ctx.denials
                .record("GET /metrics".into(), credential, reason, ctx.clock.now());
            let mut res = ApiError::Rejected {
                status,
                message: message.into(),
            }
            .into_response();
            if refusal == Refusal::Unauthorized {
                res.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer realm=\"tokenwarden metrics\""),
                );
            }
            res
        }
    }
}

/// How often `/readyz` writes to the database to prove it can (at most).
pub const WRITE_PROBE_EVERY: chrono::Duration = chrono::Duration::seconds(5);
/// The metadata row `/readyz` writes.
const WRITE_PROBE_KEY: &str = "readyz_write_probe";

/// Ready: the database file is the one opened (SQLite), the database answers, and it takes a
/// write (a full disk does not: checked by a tiny upsert at most every [`WRITE_PROBE_EVERY`]).
async fn readyz(State(ctx): State<AppContext>) -> Response {
    if let Err(e) = ctx.store.check_storage() {
        tracing::error!(error = %e, "not ready");
        return ApiError::Unavailable.into_response();
    }
    match tokio::time::timeout(Duration::from_secs(2), ctx.store.ping()).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "not ready: database unreachable");
            return ApiError::Unavailable.into_response();
        }
        Err(_) => return ApiError::Unavailable.into_response(),
    }
    if !write_probe(&ctx).await {
        return ApiError::Unavailable.into_response();
    }
    axum::Json(serde_json::json!({ "status": "ready" })).into_response()
}

/// Whether the database takes a write: the last answer if recent, else a fresh upsert.
async fn write_probe(ctx: &AppContext) -> bool {
    let now = ctx.clock.now();
    let last = *ctx.write_probe.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((at, ok)) = last
        && now >= at
        && now - at < WRITE_PROBE_EVERY
    {
        return ok;
    }
    let stamp = now.timestamp_millis().to_string();
    let write = ctx.store.set_meta(WRITE_PROBE_KEY, &stamp);
    let ok = match tokio::time::timeout(Duration::from_secs(2), write).await {
        Ok(Ok(())) => true,
        Ok(Err(e)) => {
            tracing::error!(error = %e, "not ready: the database refuses writes");
            false
        }
        Err(_) => {
            tracing::error!("not ready: a write to the database did not finish in 2 s");
            false
        }
    };
    *ctx.write_probe.lock().unwrap_or_else(|e| e.into_inner()) = Some((now, ok));
    ok
}

/// Writes are refused (503 `unavailable`) once the database file was deleted or replaced under
/// the running server: acknowledging them would lose them.
fn refuse_writes_without_storage(ctx: &AppContext, req: &Request) -> Option<Response> {
    let safe = matches!(
        *req.method(),
        axum::http::Method::GET | axum::http::Method::HEAD | axum::http::Method::OPTIONS
    );
    if !safe && let Err(e) = ctx.store.check_storage() {
        tracing::error!(error = %e, "write refused");
        return Some(ApiError::Unavailable.into_response());
    }
    None
}

async fn openapi_json(
    axum::extract::State(ctx): axum::extract::State<AppContext>,
) -> impl IntoResponse {
    axum::Json(openapi_for(&ctx.catalog))
}

async fn not_found(uri: axum::http::Uri) -> ApiError {
    ApiError::NoRoute(uri.path().to_owned())
}

async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed
}

/// R24: API answers may carry secrets (an API key shown once, later access tokens); none may be
/// cached anywhere.
fn no_store(mut res: Response) -> Response {
    res.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}

/// Every error answer in the JSON shape with a stable code. Extractors and layers refuse in
/// `text/plain` (a query string that does not parse, a body without a length cut off at the
/// limit, a wrong content type); such answers are rewritten here. JSON answers and HTML pages
/// (the UI's error pages) pass unchanged.
async fn json_errors(limit: usize, res: Response) -> Response {
    let status = res.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return res;
    }
    let ctype = res
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if ctype.starts_with("application/json") || ctype.starts_with("text/html") {
        return res;
    }
    let (mut parts, body) = res.into_parts();
    let error = if status == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::PayloadTooLarge(limit)
    } else {
        // A rejection's text is a short sentence; read a bounded start of it.
        let text = axum::body::to_bytes(body, 1024)
            .await
            .map(|b| String::from_utf8_lossy(&b).trim().to_owned())
            .unwrap_or_default();
        ApiError::Rejected {
            status,
            message: if text.is_empty() {
                status.canonical_reason().unwrap_or("refused").to_owned()
            } else {
                text
            },
        }
    };
    let mut out = error.into_response();
    // Keep what else the refusal said (`Allow`, `Retry-After`, ...).
    parts.headers.remove(header::CONTENT_TYPE);
    parts.headers.remove(header::CONTENT_LENGTH);
    for (name, value) in parts.headers.iter() {
        out.headers_mut().insert(name.clone(), value.clone());
    }
    out
}

/// Behind https (the public URL's scheme: the same rule that makes the session cookie
/// `Secure`), browsers are told to use nothing else for a year.
fn strict_transport(https: bool, mut res: Response) -> Response {
    if https {
        res.headers_mut().insert(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static("max-age=31536000"),
        );
    }
    res
}

/// R28: a body declared larger than the limit is refused up front on every route, with the
/// JSON error shape; bodies without a length are cut off by `DefaultBodyLimit` in extractors.
fn limit_body(limit: usize, req: &Request) -> Option<Response> {
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    declared
        .is_some_and(|n| n > limit as u64)
        .then(|| ApiError::PayloadTooLarge(limit).into_response())
}
