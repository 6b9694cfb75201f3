//! Token reads and refused credentials are counted in memory, never written per request; the
//! engine flushes the counts to the database and the audit log periodically (reads aggregated
//! per token and reader, denials per minute, route, kind of credential and reason).

use std::collections::HashMap;
use std::sync::Mutex;
use tokenwarden_domain::{Timestamp, TokenId};

/// One token's uncounted reads per reader: how many, and the last.
type ByReader = HashMap<String, (i64, Timestamp)>;

#[derive(Debug, Default)]
pub struct ReadCounter {
    /// Reads per token, then per reader (so counting a reader seen before allocates nothing).
    pending: Mutex<HashMap<TokenId, ByReader>>,
    last: Mutex<HashMap<TokenId, Timestamp>>,
}

impl ReadCounter {
    pub fn record(&self, token: TokenId, actor: &str, at: Timestamp) {
        let mut p = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        let readers = p.entry(token).or_default();
        let entry = match readers.get_mut(actor) {
            Some(e) => e,
            None => readers.entry(actor.to_owned()).or_insert((0, at)),
        };
        entry.0 += 1;
        entry.1 = entry.1.max(at);
        drop(p);
        let mut l = self.last.lock().unwrap_or_else(|e| e.into_inner());
        let last = l.entry(token).or_insert(at);
        *last = (*last).max(at);
    }

    /// When this instance last served the token.
    pub fn last_read(&self, token: TokenId) -> Option<Timestamp> {
        self.last
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&token)
            .copied()
    }

    /// Takes the counts gathered since the last call.
    pub fn drain(&self) -> Vec<((TokenId, String), (i64, Timestamp))> {
        std::mem::take(&mut *self.pending.lock().unwrap_or_else(|e| e.into_inner()))
            .into_iter()
            .flat_map(|(token, readers)| {
                readers
                    .into_iter()
                    .map(move |(actor, count)| ((token, actor), count))
            })
            .collect()
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
