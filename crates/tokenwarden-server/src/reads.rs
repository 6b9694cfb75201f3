//! Token reads are counted in memory, never written per read; the engine flushes the counts to
//! the database and the audit log periodically (aggregated per token and reader).

use std::collections::HashMap;
use std::sync::Mutex;
use tokenwarden_domain::{Timestamp, TokenId};

#[derive(Debug, Default)]
pub struct ReadCounter {
    pending: Mutex<HashMap<(TokenId, String), (i64, Timestamp)>>,
    last: Mutex<HashMap<TokenId, Timestamp>>,
}

impl ReadCounter {
    pub fn record(&self, token: TokenId, actor: &str, at: Timestamp) {
        let mut p = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        let entry = p.entry((token, actor.to_owned())).or_insert((0, at));
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
            .collect()
    }
}
