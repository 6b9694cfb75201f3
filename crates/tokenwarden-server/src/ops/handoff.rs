//! Secrets shown once (a new app's API key, a new API key, a webhook channel's signing secret)
//! handed from the request that made them to the one page that shows them: post/redirect/get.
//! The POST leaves the secret here under a random handle bound to the admin's session and
//! answers a redirect; the GET takes it out, so a reload, the back button or another session
//! finds nothing and nothing new is made. Kept in this process's memory only (never in the
//! database, never logged), for [`HANDOFF_TTL`] at most.

use crate::AppContext;
use secrecy::SecretString;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long a secret waits for its page (real time: the demo's fast-forward does not age it).
pub const HANDOFF_TTL: Duration = Duration::from_secs(300);
/// At most this many secrets wait at once; the oldest give way.
const MAX_WAITING: usize = 256;

/// What was made, for the page to say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ShownKind {
    /// A new app and its first API key.
    NewApp,
    /// Another API key of an app; `label` is the key's.
    NewAppKey { label: String },
    /// A new webhook channel's signing secret.
    WebhookSecret,
}

/// A secret to show once, with what it belongs to.
#[derive(Debug)]
pub struct ShownSecret {
    pub kind: ShownKind,
    /// The app's or channel's id and name.
    pub owner_id: String,
    pub owner_name: String,
    pub secret: SecretString,
}

struct Waiting {
    session: String,
    at: Instant,
    shown: ShownSecret,
}

/// The secrets waiting for their page.
#[derive(Default)]
pub struct Handoffs(Mutex<HashMap<String, Waiting>>);

impl std::fmt::Debug for Handoffs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Handoffs(..)")
    }
}

/// Leaves `shown` for the session `session_hash`; answers the handle its page is found by.
pub fn leave(ctx: &AppContext, session_hash: &str, shown: ShownSecret) -> String {
    let handle = crate::ops::admins::random_handle();
    let mut map = ctx.ui.handoffs.0.lock().unwrap_or_else(|e| e.into_inner());
    let now = Instant::now();
    map.retain(|_, w| now.duration_since(w.at) < HANDOFF_TTL);
    while map.len() >= MAX_WAITING {
        let oldest = map.iter().min_by_key(|(_, w)| w.at).map(|(k, _)| k.clone());
        match oldest {
            Some(k) => map.remove(&k),
            None => break,
        };
    }
    map.insert(
        handle.clone(),
        Waiting {
            session: session_hash.to_owned(),
            at: now,
            shown,
        },
    );
    handle
}

/// Takes the secret left under `handle` for this session: the first call answers it, every
/// later one (and any other session, or after [`HANDOFF_TTL`]) answers `None`.
pub fn take(ctx: &AppContext, session_hash: &str, handle: &str) -> Option<ShownSecret> {
    let mut map = ctx.ui.handoffs.0.lock().unwrap_or_else(|e| e.into_inner());
    match map.get(handle) {
        Some(w) if w.session == session_hash && w.at.elapsed() < HANDOFF_TTL => {
            map.remove(handle).map(|w| w.shown)
        }
        Some(w) if w.at.elapsed() >= HANDOFF_TTL => {
            map.remove(handle);
            None
        }
        _ => None,
    }
}
