//! Token reads and refused credentials are counted in memory, never written per request; the
//! engine flushes the counts to the database and the audit log periodically (reads aggregated
//! per token and reader, denials per minute, route, kind of credential and reason).

use std::collections::HashMap;
use std::sync::Mutex;
use tokenwarden_domain::{AppId, Timestamp, TokenId};

/// Who read a token, as counted: borrowed, so that counting a read builds no actor string
/// (the audit's `app:<id>` / `admin:<label>` is made once per flush, in [`ReadCounter::drain`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadBy<'a> {
    App(AppId),
    /// An admin, by label.
    Admin(&'a str),
}

impl ReadBy<'_> {
    /// How the reader appears in the audit log (as `auth::Principal::actor`).
    pub fn actor(&self) -> String {
        match self {
            ReadBy::App(id) => format!("app:{id}"),
            ReadBy::Admin(label) => format!("admin:{label}"),
        }
    }
}

/// A count of reads and the last one.
type Count = (i64, Timestamp);

/// One token's reads: the last one served here, and the uncounted reads per reader.
#[derive(Debug)]
struct TokenReads {
    last: Timestamp,
    apps: HashMap<AppId, Count>,
    admins: HashMap<Box<str>, Count>,
}

#[derive(Debug, Default)]
pub struct ReadCounter {
    /// Per token (so counting a reader seen before allocates nothing, under one lock).
    tokens: Mutex<HashMap<TokenId, TokenReads>>,
}

impl ReadCounter {
    pub fn record(&self, token: TokenId, by: ReadBy<'_>, at: Timestamp) {
        let mut map = self.tokens.lock().unwrap_or_else(|e| e.into_inner());
        let reads = map.entry(token).or_insert_with(|| TokenReads {
            last: at,
            apps: HashMap::new(),
            admins: HashMap::new(),
        });
        reads.last = reads.last.max(at);
        let count = match by {
            ReadBy::App(app) => reads.apps.entry(app).or_insert((0, at)),
            ReadBy::Admin(label) => match reads.admins.get_mut(label) {
                Some(c) => c,
                None => reads.admins.entry(label.into()).or_insert((0, at)),
            },
        };
        count.0 += 1;
        count.1 = count.1.max(at);
    }

    /// When this instance last served the token.
    pub fn last_read(&self, token: TokenId) -> Option<Timestamp> {
        self.tokens
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&token)
            .map(|r| r.last)
    }

    /// Takes the counts gathered since the last call, per token and actor (`app:<id>`,
    /// `admin:<label>`).
    pub fn drain(&self) -> Vec<((TokenId, String), Count)> {
        let mut map = self.tokens.lock().unwrap_or_else(|e| e.into_inner());
        let mut out = Vec::new();
        for (token, reads) in map.iter_mut() {
            for (app, count) in reads.apps.drain() {
                out.push(((*token, ReadBy::App(app).actor()), count));
            }
            for (label, count) in reads.admins.drain() {
                out.push(((*token, ReadBy::Admin(&label).actor()), count));
            }
        }
        out
    }
}

/// What an aggregated denial is about: the minute (since the epoch), the route (method and
/// route pattern, never the concrete path or query), the kind of credential presented
/// (`none`, `tw_app_`, `tw_adm_`, `bearer`, `other`, `query`) and the reason (an error code).
pub type DenialKey = (i64, String, &'static str, &'static str);

/// Distinct denial rows kept per flush at most; beyond, routes are counted as `(other)`.
const MAX_DENIAL_KEYS: usize = 10_000;

/// Refused credentials, counted per minute, route, credential kind and reason: a flood of bad
/// requests costs an in-memory increment each and becomes one audit row per key and minute
/// (issue 9, bug 3: a row per denial let anyone fill the disk).
#[derive(Debug, Default)]
pub struct DenialCounter {
    pending: Mutex<HashMap<DenialKey, (i64, Timestamp)>>,
}

impl DenialCounter {
    pub fn record(
        &self,
        route: String,
        credential: &'static str,
        reason: &'static str,
        at: Timestamp,
    ) {
        let minute = at.timestamp().div_euclid(60);
        let mut p = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        let mut key = (minute, route, credential, reason);
        if p.len() >= MAX_DENIAL_KEYS && !p.contains_key(&key) {
            key.1 = "(other)".to_owned();
        }
        let entry = p.entry(key).or_insert((0, at));
        entry.0 += 1;
        entry.1 = entry.1.max(at);
    }

    /// Takes the counts of the minutes that ended before `now` (all of them with `now` =
    /// `None`, at shutdown): a minute still running is flushed once it is over, in one row.
    pub fn drain(&self, now: Option<Timestamp>) -> Vec<(DenialKey, (i64, Timestamp))> {
        let current = now.map_or(i64::MAX, |n| n.timestamp().div_euclid(60));
        let mut p = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        let due: Vec<DenialKey> = p.keys().filter(|k| k.0 < current).cloned().collect();
        due.into_iter().filter_map(|k| p.remove_entry(&k)).collect()
    }
}
