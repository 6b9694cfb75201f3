//! The service's Prometheus metrics (`GET /metrics`, issue 13): one [`Metrics`] handle in the
//! context, incremented by the core functions where things happen (the read path, a refresh's
//! provider call, a delivery, a refresh lease taken by someone else), and the counts read from
//! the database at scrape time ([`render`], cached [`COUNTS_TTL`]). Who may scrape:
//! [`MetricsAccess`].
//!
//! The read path's counters are resolved once, at start: one `Counter` per [`ReadOutcome`]
//! (an atomic add each) and a [`Histogram`] of atomic buckets, so a read takes no lock and
//! allocates nothing for its metrics (`prometheus_client`'s own histogram takes a mutex per
//! observation, and a `Family` lookup a read lock and a label set).
//!
//! No label carries a secret, an id or a raw path. Token and app names are bounded by what
//! admins create, and only the tokens whose refresh token (or client secret) expires within
//! [`EXPIRY_WINDOW_DAYS`] (at most [`EXPIRY_SERIES_MAX`] per expiry, the soonest first) get a
//! series of their own; [`render`] also exports how many there are in all. The refresh token's
//! and the client secret's gauges are one code path over [`Expiring`] ([`expiry_metrics`]).

use crate::AppContext;
use crate::ops::{Error, Result};
use prometheus_client::encoding::{EncodeMetric, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::{MetricType, TypedMetric};
use prometheus_client::registry::{Registry, Unit};
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use subtle::ConstantTimeEq;
use tokenwarden_domain::{AppState, Expiring, Timestamp, TokenStatus};
use tokenwarden_store::{ExpiryCounts, MetricCounts};

/// How long the counts read from the database are reused: scrapes from several Prometheus
/// servers within this long cost one set of queries.
pub const COUNTS_TTL: chrono::Duration = chrono::Duration::seconds(5);

/// Tokens whose refresh token (client secret) expires within this many days get a series of
/// their own in `tokenwarden_token_refresh_expiry_seconds`
/// (`tokenwarden_token_client_secret_expiry_seconds`).
pub const EXPIRY_WINDOW_DAYS: i64 = 30;

/// At most this many tokens (the soonest to expire) get a series of their own, per expiry.
pub const EXPIRY_SERIES_MAX: i64 = 500;

/// Read latency buckets, in microseconds: a cached read takes tens of microseconds, one that
/// refreshes first takes the provider's time.
const READ_BUCKETS_US: &[u64] = &[
    50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000,
    1_000_000, 2_500_000, 5_000_000, 10_000_000,
];

/// Refresh latency buckets, in microseconds (a provider's token endpoint: 10 ms to a minute).
const REFRESH_BUCKETS_US: &[u64] = &[
    10_000, 25_000, 50_000, 100_000, 250_000, 500_000, 1_000_000, 2_500_000, 5_000_000, 10_000_000,
    30_000_000, 60_000_000,
];

macro_rules! outcomes {
    ($(#[$m:meta])* $name:ident { $($(#[$vm:meta])* $variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum $name { $($(#[$vm])* $variant),+ }
        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }
        }
    };
}

outcomes! {
    /// How a read of an access token ended (`tokenwarden_reads_total{outcome}`).
    ReadOutcome {
        /// An access token was served.
        Ok = "ok",
        /// A bad `min_validity`.
        Invalid = "invalid",
        /// No such token, or the app does not use it.
        NotFound = "not_found",
        /// The token is not authorized, needs re-authorization or has expired.
        Unusable = "unusable",
        /// The reading app is stopped.
        AppStopped = "app_stopped",
        /// The token needed a refresh and the provider could not give one.
        ProviderUnavailable = "provider_unavailable",
        /// The database is down and nothing valid was cached.
        Unavailable = "unavailable",
        /// Anything else (an internal error).
        Error = "error",
    }
}

impl ReadOutcome {
    /// The outcome of a read's answer.
    pub fn of<T>(answer: &Result<T>) -> Self {
        match answer {
            Ok(_) => ReadOutcome::Ok,
            Err(Error::Invalid(_)) => ReadOutcome::Invalid,
            Err(Error::NotFound(_)) => ReadOutcome::NotFound,
            Err(Error::TokenUnusable {
                code: "app_stopped",
                ..
            }) => ReadOutcome::AppStopped,
            Err(Error::TokenUnusable { .. }) => ReadOutcome::Unusable,
            Err(Error::ProviderUnavailable { .. }) => ReadOutcome::ProviderUnavailable,
            Err(Error::Unavailable) => ReadOutcome::Unavailable,
            Err(_) => ReadOutcome::Error,
        }
    }
}

outcomes! {
    /// What the provider answered a refresh (`tokenwarden_refreshes_total{outcome}`).
    RefreshOutcome {
        /// A new access token, stored.
        Ok = "ok",
        /// Refused for good: the token needs re-authorization.
        Refused = "refused",
        /// A transient failure (the provider down, a timeout, a refusal worth retrying).
        Failed = "failed",
    }
}

outcomes! {
    /// What became of one attempt to deliver a queued notification
    /// (`tokenwarden_notification_deliveries_total{outcome}`).
    DeliveryResult {
        Delivered = "delivered",
        /// Not delivered; tried again later.
        Retry = "retry",
        /// Not delivered and given up.
        Failed = "failed",
    }
}

outcomes! {
    /// Which lease another owner held (`tokenwarden_lease_contention_total{lease}`).
    LeaseKind {
        /// A token's refresh lease (`refresh:<id>`): another instance or reader refreshes it.
        Refresh = "refresh",
    }
}

/// A latency histogram of atomic buckets: an observation is two relaxed atomic adds, no lock
/// and no allocation. Encoded as a Prometheus histogram in seconds.
#[derive(Debug, Clone)]
pub struct Histogram(Arc<HistogramInner>);

#[derive(Debug)]
struct HistogramInner {
    /// Upper bounds in microseconds, ascending; `counts` has one more slot (`+Inf`).
    bounds_us: &'static [u64],
    counts: Box<[AtomicU64]>,
    sum_us: AtomicU64,
}

impl Histogram {
    fn new(bounds_us: &'static [u64]) -> Self {
        Histogram(Arc::new(HistogramInner {
            bounds_us,
            counts: (0..=bounds_us.len()).map(|_| AtomicU64::new(0)).collect(),
            sum_us: AtomicU64::new(0),
        }))
    }

    pub fn observe(&self, took: Duration) {
        let us = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        let slot = self.0.bounds_us.partition_point(|b| *b < us);
        if let Some(c) = self.0.counts.get(slot) {
            c.fetch_add(1, Ordering::Relaxed);
        }
        self.0.sum_us.fetch_add(us, Ordering::Relaxed);
    }
}

impl TypedMetric for Histogram {
    const TYPE: MetricType = MetricType::Histogram;
}

impl EncodeMetric for Histogram {
    fn encode(&self, mut encoder: MetricEncoder) -> std::result::Result<(), std::fmt::Error> {
        let counts: Vec<u64> = self
            .0
            .counts
            .iter()
            .map(|c| c.load(Ordering::Relaxed))
            .collect();
        let buckets: Vec<(f64, u64)> = self
            .0
            .bounds_us
            .iter()
            .map(|b| *b as f64 / 1e6)
            .chain(std::iter::once(f64::INFINITY))
            .zip(counts.iter().copied())
            .collect();
        let sum = self.0.sum_us.load(Ordering::Relaxed) as f64 / 1e6;
        encoder.encode_histogram::<NoLabelSet>(sum, counts.iter().sum(), &buckets, None)
    }

    fn metric_type(&self) -> MetricType {
        MetricType::Histogram
    }
}

type Static1 = [(&'static str, &'static str); 1];
type Provider = [(&'static str, String); 1];
type ProviderOutcome = [(&'static str, String); 2];

/// The service's metrics: counters and histograms in memory (one per process), and the counts
/// from the database cached for [`COUNTS_TTL`].
pub struct Metrics {
    registry: Registry,
    /// Indexed by `ReadOutcome as usize`: resolved once, so a read does no label lookup.
    reads: Box<[Counter]>,
    read_latency: Histogram,
    read_cache_hits: Counter,
    refreshes: Family<ProviderOutcome, Counter>,
    refresh_latency: Family<Provider, Histogram, fn() -> Histogram>,
    deliveries: Box<[Counter]>,
    lease_contention: Box<[Counter]>,
    counts: tokio::sync::Mutex<Option<(Timestamp, Arc<MetricCounts>)>>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

/// One counter per outcome of a family, resolved now.
fn per_outcome(
    family: &Family<Static1, Counter>,
    label: &'static str,
    all: &[&'static str],
) -> Box<[Counter]> {
    all.iter()
        .map(|v| family.get_or_create_owned(&[(label, *v)]))
        .collect()
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("tokenwarden");
        let reads = Family::<Static1, Counter>::default();
        registry.register(
            "reads",
            "Reads of an access token (GET /api/v1/access-tokens/{name}), by outcome",
            reads.clone(),
        );
        let outcomes: Vec<&'static str> = ReadOutcome::ALL.iter().map(|o| o.as_str()).collect();
        let reads = per_outcome(&reads, "outcome", &outcomes);
        let read_latency = Histogram::new(READ_BUCKETS_US);
        registry.register_with_unit(
            "read_duration",
            "Time to answer a read of an access token, in the core (from memory, the database or after a refresh)",
            Unit::Seconds,
            read_latency.clone(),
        );
        let read_cache_hits = Counter::default();
        registry.register(
            "read_cache_hits",
            "Reads answered from memory without the database",
            read_cache_hits.clone(),
        );
        let refreshes = Family::<ProviderOutcome, Counter>::default();
        registry.register(
            "refreshes",
            "Calls to a provider's token endpoint to refresh a token, by provider and outcome (ok, refused: needs re-authorization, failed: transient)",
            refreshes.clone(),
        );
        let refresh_latency: Family<Provider, Histogram, fn() -> Histogram> =
            Family::new_with_constructor(|| Histogram::new(REFRESH_BUCKETS_US));
        registry.register_with_unit(
            "refresh_duration",
            "Time of a refresh: the provider's answer and storing it, by provider",
            Unit::Seconds,
            refresh_latency.clone(),
        );
        let deliveries = Family::<Static1, Counter>::default();
        registry.register(
            "notification_deliveries",
            "Attempts to deliver a queued notification, by outcome (delivered, retry, failed: given up)",
            deliveries.clone(),
        );
        let outcomes: Vec<&'static str> = DeliveryResult::ALL.iter().map(|o| o.as_str()).collect();
        let deliveries = per_outcome(&deliveries, "outcome", &outcomes);
        let leases = Family::<Static1, Counter>::default();
        registry.register(
            "lease_contention",
            "Leases not acquired because another owner held them (refresh: the token was being refreshed by another reader or instance)",
            leases.clone(),
        );
        let kinds: Vec<&'static str> = LeaseKind::ALL.iter().map(|o| o.as_str()).collect();
        let lease_contention = per_outcome(&leases, "lease", &kinds);
        Metrics {
            registry,
            reads,
            read_latency,
            read_cache_hits,
            refreshes,
            refresh_latency,
            deliveries,
            lease_contention,
            counts: tokio::sync::Mutex::new(None),
        }
    }

    /// A read and how long it took: two atomic adds and a histogram slot; no lock, no
    /// allocation (the read path is sacred).
    pub fn read(&self, outcome: ReadOutcome, took: Duration) {
        if let Some(c) = self.reads.get(outcome as usize) {
            c.inc();
        }
        self.read_latency.observe(took);
    }

    /// A read answered from memory.
    pub fn read_cache_hit(&self) {
        self.read_cache_hits.inc();
    }

    /// A refresh's provider call (off the hot path: a label lookup under the family's lock).
    pub fn refresh(&self, provider: &str, outcome: RefreshOutcome, took: Duration) {
        self.refreshes
            .get_or_create(&[
                ("provider", provider.to_owned()),
                ("outcome", outcome.as_str().to_owned()),
            ])
            .inc();
        self.refresh_latency
            .get_or_create(&[("provider", provider.to_owned())])
            .observe(took);
    }

    pub fn delivery(&self, result: DeliveryResult) {
        if let Some(c) = self.deliveries.get(result as usize) {
            c.inc();
        }
    }

    pub fn lease_contended(&self, lease: LeaseKind) {
        if let Some(c) = self.lease_contention.get(lease as usize) {
            c.inc();
        }
    }

    /// The counts from the database, reused for [`COUNTS_TTL`] (on the service's clock);
    /// concurrent scrapes wait for one set of queries.
    async fn counts(&self, ctx: &AppContext, now: Timestamp) -> Result<Arc<MetricCounts>> {
        let mut cached = self.counts.lock().await;
        if let Some((at, counts)) = cached.as_ref()
            && now >= *at
            && now - *at < COUNTS_TTL
        {
            return Ok(Arc::clone(counts));
        }
        let horizon = now + chrono::Duration::days(EXPIRY_WINDOW_DAYS);
        let counts = Arc::new(ctx.store.metric_counts(horizon, EXPIRY_SERIES_MAX).await?);
        *cached = Some((now, Arc::clone(&counts)));
        Ok(counts)
    }
}

/// The metrics in the Prometheus text format (version 0.0.4): the counters in memory, then the
/// counts from the database (cached). While the database cannot be read, the counters are
/// still served, with `tokenwarden_metrics_database_ok 0` and without the counts.
pub async fn render(ctx: &AppContext) -> String {
    let now = ctx.clock.now();
    let mut out = String::with_capacity(8 * 1024);
    // Writing into a String cannot fail.
    let _ = prometheus_client::encoding::prometheus_text::encode(&mut out, &ctx.metrics.registry);
    let counts = ctx.metrics.counts(ctx, now).await;
    let scrape = scrape_registry(counts.as_deref().ok(), now);
    let _ = prometheus_client::encoding::prometheus_text::encode(&mut out, &scrape);
    out
}

/// The metrics computed at scrape time: from the database's counts (when read), and the
/// database errors counted by the store.
fn scrape_registry(counts: Option<&MetricCounts>, now: Timestamp) -> Registry {
    let mut r = Registry::with_prefix("tokenwarden");
    let errors = tokenwarden_store::database_errors();
    let family = Family::<Static1, Counter>::default();
    family
        .get_or_create(&[("kind", "unavailable")])
        .inc_by(errors.unavailable);
    family
        .get_or_create(&[("kind", "other")])
        .inc_by(errors.other);
    r.register(
        "database_errors",
        "Errors from the database driver in this process (unavailable: no connection, I/O, shutdown; other: failed queries, corrupt rows)",
        family,
    );
    let ok = Gauge::<i64>::default();
    ok.set(i64::from(counts.is_some()));
    r.register(
        "metrics_database_ok",
        "1 when this scrape could read the counts from the database, 0 when it could not (they are missing then)",
        ok,
    );
    let Some(c) = counts else {
        return r;
    };
    let count_of = |list: &[(String, i64)], key: &str| {
        list.iter().find(|(k, _)| k == key).map_or(0, |(_, n)| *n)
    };
    let tokens = Family::<Static1, Gauge>::default();
    for s in TokenStatus::ALL {
        tokens
            .get_or_create(&[("status", s.as_str())])
            .set(count_of(&c.tokens_by_status, s.as_str()));
    }
    r.register("tokens", "Tokens by status", tokens);
    let apps = Family::<Static1, Gauge>::default();
    for s in AppState::ALL {
        apps.get_or_create(&[("state", s.as_str())])
            .set(count_of(&c.apps_by_state, s.as_str()));
    }
    r.register("apps", "Apps by state", apps);
    let queue = Gauge::<i64>::default();
    queue.set(c.delivery_queue);
    r.register(
        "notification_queue_depth",
        "Notification deliveries queued and not finished (waiting, being sent or to be retried)",
        queue,
    );
    for what in Expiring::ALL {
        expiry_metrics(&mut r, *what, c.expiry(*what), now);
    }
    r
}

/// The part of the metrics' names that says what expires: `tokenwarden_next_{it}_expiry_seconds`,
/// `tokenwarden_tokens_{it}_expiring`, `tokenwarden_token_{it}_expiry_seconds`.
fn expiry_name(what: Expiring) -> &'static str {
    match what {
        Expiring::RefreshToken => "refresh",
        Expiring::ClientSecret => "client_secret",
    }
}

/// One expiry's metrics: the soonest, how many expire within [`EXPIRY_WINDOW_DAYS`], and a
/// series per token for the soonest [`EXPIRY_SERIES_MAX`] of them.
fn expiry_metrics(r: &mut Registry, what: Expiring, c: &ExpiryCounts, now: Timestamp) {
    let (it, words) = (expiry_name(what), what.what());
    let seconds = |at: Timestamp| (at - now).num_seconds();
    if let Some(next) = c.next {
        let g = Gauge::<i64>::default();
        g.set(seconds(next));
        r.register_with_unit(
            format!("next_{it}_expiry"),
            format!("Seconds until the soonest {words} expiry of a usable token (negative: past)"),
            Unit::Seconds,
            g,
        );
    }
    let total = Gauge::<i64>::default();
    total.set(c.total);
    r.register(
        format!("tokens_{it}_expiring"),
        format!(
            "Usable tokens whose {words} expires within {EXPIRY_WINDOW_DAYS} days (all of them; at most {EXPIRY_SERIES_MAX} get a series in tokenwarden_token_{it}_expiry_seconds)"
        ),
        total,
    );
    let per_token = Family::<[(&'static str, String); 3], Gauge>::default();
    for t in &c.expiring {
        per_token
            .get_or_create(&[
                ("token", t.name.to_string()),
                (
                    "app",
                    t.app.as_ref().map(ToString::to_string).unwrap_or_default(),
                ),
                ("provider", t.provider.to_string()),
            ])
            .set(seconds(t.expires_at));
    }
    r.register_with_unit(
        format!("token_{it}_expiry"),
        format!(
            "Seconds until a usable token's {words} expires, for the tokens whose {words} expires within {EXPIRY_WINDOW_DAYS} days (the soonest {EXPIRY_SERIES_MAX}); app is empty for a global token"
        ),
        Unit::Seconds,
        per_token,
    );
}

/// Who may scrape `/metrics`: a bearer token of its own (`metrics_token`, kept as its SHA-256
/// and compared in constant time) or a client address in an allow-list (`metrics_allow`).
/// Neither configured: metrics are off. Independent of the API's credentials. `Debug` shows
/// no token.
#[derive(Clone, Default)]
pub struct MetricsAccess {
    token_sha256: Option<[u8; 32]>,
    allow: Vec<AddrRange>,
}

impl std::fmt::Debug for MetricsAccess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MetricsAccess")
            .field("token", &self.token_sha256.map(|_| "[redacted]"))
            .field("allow", &self.allow)
            .finish()
    }
}

/// Why a scrape was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Neither a metrics token nor an allow-list is configured: 404.
    Disabled,
    /// A metrics token is configured and the request did not carry it (or carried another): 401.
    Unauthorized,
    /// Only an allow-list is configured and the client's address is not in it: 403.
    Forbidden,
}

impl MetricsAccess {
    pub fn new(token: Option<&SecretString>, allow: Vec<AddrRange>) -> Self {
        MetricsAccess {
            token_sha256: token.map(|t| Sha256::digest(t.expose_secret().as_bytes()).into()),
            allow,
        }
    }

    pub fn enabled(&self) -> bool {
        self.token_sha256.is_some() || !self.allow.is_empty()
    }

    /// Whether a scrape from `peer` (the TCP peer: a proxy in front is what is seen) with
    /// this `Authorization` header value may read the metrics.
    pub fn check(
        &self,
        peer: Option<IpAddr>,
        authorization: Option<&[u8]>,
    ) -> std::result::Result<(), Refusal> {
        if !self.enabled() {
            return Err(Refusal::Disabled);
        }
        if let Some(ip) = peer
            && self.allow.iter().any(|r| r.contains(ip))
        {
            return Ok(());
        }
        let Some(expected) = &self.token_sha256 else {
            return Err(Refusal::Forbidden);
        };
        let presented = authorization
            .and_then(|h| h.strip_prefix(b"Bearer "))
            .map(|t| <[u8; 32]>::from(Sha256::digest(t.trim_ascii())));
        match presented {
            Some(p) if bool::from(p[..].ct_eq(&expected[..])) => Ok(()),
            _ => Err(Refusal::Unauthorized),
        }
    }
}

/// An address range of `metrics_allow`: `127.0.0.1/32`, `10.0.0.0/8`, `::1/128`, or a bare
/// address (the whole address).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AddrRange {
    network: IpAddr,
    prefix: u8,
}

impl AddrRange {
    pub fn parse(text: &str) -> std::result::Result<Self, String> {
        let bad = || {
            format!(
                "{text:?} is not an address range: write an address with a prefix length, e.g. 127.0.0.1/32, 10.0.0.0/8 or ::1/128"
            )
        };
        let (addr, prefix) = match text.trim().split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (text.trim(), None),
        };
        let network: IpAddr = addr.parse().map_err(|_| bad())?;
        let max = if network.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(p) if !p.is_empty() && p.bytes().all(|c| c.is_ascii_digit()) => {
                p.parse::<u8>().ok().filter(|p| *p <= max).ok_or_else(bad)?
            }
            Some(_) => return Err(bad()),
            None => max,
        };
        let range = AddrRange { network, prefix };
        if range.masked(network) != Some(bits(network)) {
            return Err(format!(
                "{text:?} has host bits set past its /{prefix}: write the network, e.g. {}/{prefix}",
                range.network_text()
            ));
        }
        Ok(range)
    }

    fn network_text(&self) -> String {
        let b = self.masked(self.network).unwrap_or(0);
        match self.network {
            IpAddr::V4(_) => std::net::Ipv4Addr::from(u32::try_from(b).unwrap_or(0)).to_string(),
            IpAddr::V6(_) => std::net::Ipv6Addr::from(b).to_string(),
        }
    }

    /// `ip`'s bits under this range's mask, when it is of the same family.
    fn masked(&self, ip: IpAddr) -> Option<u128> {
        let width = match (self.network, ip) {
            (IpAddr::V4(_), IpAddr::V4(_)) => 32,
            (IpAddr::V6(_), IpAddr::V6(_)) => 128,
            _ => return None,
        };
        let host = u32::from(width - self.prefix);
        let mask = if host >= 128 {
            0
        } else {
            (u128::MAX << host) & (u128::MAX >> (128 - width))
        };
        Some(bits(ip) & mask)
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        // An IPv4 client on a dual-stack listener appears as ::ffff:a.b.c.d.
        let ip = ip.to_canonical();
        self.masked(ip) == Some(bits(self.network))
    }
}

fn bits(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(v4) => u128::from(u32::from(v4)),
        IpAddr::V6(v6) => u128::from(v6),
    }
}

impl std::fmt::Display for AddrRange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn address_ranges_parse_and_match() {
        let r = AddrRange::parse("127.0.0.1/32").unwrap();
        assert!(r.contains("127.0.0.1".parse().unwrap()));
        assert!(r.contains("::ffff:127.0.0.1".parse().unwrap()));
        assert!(!r.contains("127.0.0.2".parse().unwrap()));
        let net = AddrRange::parse("10.0.0.0/8").unwrap();
        assert!(net.contains("10.200.3.4".parse().unwrap()));
        assert!(!net.contains("11.0.0.1".parse().unwrap()));
        assert!(!net.contains("::1".parse().unwrap()));
        let all = AddrRange::parse("0.0.0.0/0").unwrap();
        assert!(all.contains("8.8.8.8".parse().unwrap()));
        let v6 = AddrRange::parse("fd00::/8").unwrap();
        assert!(v6.contains("fd12::1".parse().unwrap()));
        assert!(
            AddrRange::parse("::1")
                .unwrap()
                .contains("::1".parse().unwrap())
        );
        for bad in [
            "",
            "localhost",
            "10.0.0.0/33",
            "10.0.0.1/8",
            "10.0.0.0/-1",
            "::/129",
            "1.2.3.4/ 8",
        ] {
            assert!(AddrRange::parse(bad).is_err(), "{bad}");
        }
        assert!(
            AddrRange::parse("10.0.0.1/8")
                .unwrap_err()
                .contains("10.0.0.0/8")
        );
    }

    #[test]
    fn access_is_by_token_or_address() {
        let token = SecretString::from("metrics-secret-0123456789abcdef");
        let local = "127.0.0.1".parse().ok();
        let other = "192.0.2.7".parse().ok();
        let off = MetricsAccess::default();
        assert_eq!(off.check(local, None), Err(Refusal::Disabled));
        let by_token = MetricsAccess::new(Some(&token), vec![]);
        assert_eq!(by_token.check(local, None), Err(Refusal::Unauthorized));
        assert_eq!(
            by_token.check(local, Some(b"Bearer wrong")),
            Err(Refusal::Unauthorized)
        );
        assert_eq!(
            by_token.check(other, Some(b"Bearer metrics-secret-0123456789abcdef")),
            Ok(())
        );
        assert!(!format!("{by_token:?}").contains("metrics-secret"));
        let by_addr = MetricsAccess::new(None, vec![AddrRange::parse("127.0.0.1/32").unwrap()]);
        assert_eq!(by_addr.check(local, None), Ok(()));
        assert_eq!(by_addr.check(other, None), Err(Refusal::Forbidden));
        assert_eq!(by_addr.check(None, None), Err(Refusal::Forbidden));
    }

    #[test]
    fn the_histogram_counts_each_observation_in_one_bucket() {
        let h = Histogram::new(READ_BUCKETS_US);
        h.observe(Duration::from_micros(40));
        h.observe(Duration::from_micros(50));
        h.observe(Duration::from_millis(3));
        h.observe(Duration::from_secs(60));
        let counts: Vec<u64> =
            h.0.counts
                .iter()
                .map(|c| c.load(Ordering::Relaxed))
                .collect();
        assert_eq!(counts[0], 2, "<= 50 us");
        assert_eq!(counts[6], 1, "<= 5 ms");
        assert_eq!(*counts.last().unwrap(), 1, "+Inf");
        assert_eq!(counts.iter().sum::<u64>(), 4);
    }
}
