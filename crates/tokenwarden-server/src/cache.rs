//! The hot path's memory: recently served access tokens and API keys, so that an app's read is
//! answered without touching the database while it is fresh, and — when the database is
//! unreachable — while the cached access token is still valid (R16).

use secrecy::{ExposeSecret, SecretSlice, SecretString};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use tokenwarden_domain::{ApiKeyId, AppId, Timestamp, TokenId};
use tokenwarden_store::ApiKeyRecord;
use zeroize::Zeroizing;

/// How long a cached answer is used without asking the database again. Short, so that another
/// instance's refresh, an admin's edit or a revocation is seen within this time.
pub const FRESH_FOR: chrono::Duration = chrono::Duration::seconds(2);
/// How long a cached API key is trusted without asking the database again.
pub const KEY_FRESH_FOR: chrono::Duration = chrono::Duration::seconds(10);

/// An answer to a read, kept for the next reads of the same token by the same reader.
pub struct Served {
    pub token_id: TokenId,
    pub expires_at: Timestamp,
    /// The reading app is stopped: (app name, why).
    pub app_stopped: Option<(String, String)>,
    /// Valid for less than was asked, but the freshest there is (`ops::grant::usable_token`):
    /// served while valid, whatever validity a reader asks for.
    pub short: bool,
    pub fetched_at: Timestamp,
    /// The answer's JSON up to the value of `expires_in` (the only part that changes from one
    /// read to the next), written once when the answer is cached: a read copies these bytes
    /// and the seconds left instead of serializing (issue 10). Holds the access token, so it
    /// is a secret: zeroed when dropped, never logged.
    answer_prefix: SecretSlice<u8>,
}

/// The read route's JSON answer without `expires_in` (`api::flow::AccessTokenView` documents
/// the whole answer; a unit test holds [`Served::answer_body`] to it).
#[derive(serde::Serialize)]
struct AnswerStart<'a> {
    access_token: &'a str,
    token_type: &'a str,
    #[serde(serialize_with = "tokenwarden_domain::clock::rfc3339")]
    expires_at: Timestamp,
}

impl Served {
    pub fn new(
        token_id: TokenId,
        access: &SecretString,
        token_type: &str,
        expires_at: Timestamp,
        app_stopped: Option<(String, String)>,
        short: bool,
        fetched_at: Timestamp,
    ) -> Self {
        let access = access.expose_secret();
        // Sized so that serializing does not grow it (a grown vector would leave a copy of the
        // token behind, not zeroed).
        let mut json = Zeroizing::new(Vec::with_capacity(access.len() + token_type.len() + 128));
        let start = AnswerStart {
            access_token: access,
            token_type,
            expires_at,
        };
        // Writing a struct of strings and a time into a vector cannot fail.
        if serde_json::to_writer(&mut *json, &start).is_ok() && json.last() == Some(&b'}') {
            json.pop();
        }
        json.extend_from_slice(br#","expires_in":"#);
        Self {
            token_id,
            expires_at,
            app_stopped,
            short,
            fetched_at,
            answer_prefix: SecretSlice::from(json.to_vec()),
        }
    }

    /// The read route's answer at `now`: `{"access_token", "token_type", "expires_at",
    /// "expires_in"}`, `expires_in` being the whole seconds until `expires_at` (never
    /// negative). One allocation, exactly the answer's size (so `Bytes` takes it as it is).
    pub fn answer_body(&self, now: Timestamp) -> axum::body::Bytes {
        let prefix = self.answer_prefix.expose_secret();
        let mut left = u64::try_from((self.expires_at - now).num_seconds()).unwrap_or(0);
        let mut digits = [0u8; 20];
        let mut from = digits.len();
        loop {
            from -= 1;
            digits[from] = b'0' + (left % 10) as u8;
            left /= 10;
            if left == 0 {
                break;
            }
        }
        let mut body = Vec::with_capacity(prefix.len() + (digits.len() - from) + 1);
        body.extend_from_slice(prefix);
        body.extend_from_slice(&digits[from..]);
        body.push(b'}');
        axum::body::Bytes::from(body)
    }
}

/// Who a cached answer was for: the first half of its key, the token name being the second
/// (a map per reader, so a hit is looked up by `&str` without building a key string).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ReaderKey {
    App(AppId),
    /// An admin, reading as the app of that name (`None`: as nobody).
    Admin(Option<Box<str>>),
}

/// One reader's cached answers, by token name.
type ByName = HashMap<Box<str>, Arc<Served>>;

#[derive(Default)]
pub struct ReadCache {
    /// Answers per reader, then per token name; shared, not copied, on a hit.
    served: Mutex<HashMap<ReaderKey, ByName>>,
    /// How many answers `served` holds (it is cleared past 10,000).
    served_len: std::sync::atomic::AtomicUsize,
    /// Shared, not copied, on a hit (the record holds a label and a hash: two allocations).
    keys: Mutex<HashMap<ApiKeyId, (Arc<ApiKeyRecord>, Timestamp)>>,
    /// Cross-app denials per (app, token name): when one was last audited, and how many were
    /// refused since without a record of their own.
    denials: Mutex<HashMap<String, (Timestamp, u64)>>,
    /// R16: the database was unreachable at the last read that asked it.
    store_down: AtomicBool,
    /// While it is down, whether a reader is already trying it again.
    probing: AtomicBool,
}

/// What a reader whose answer is not in memory does about the database ([`ReadCache::store_gate`]).
#[derive(Debug)]
pub enum StoreGate<'a> {
    /// The database answered last time: ask it.
    Open,
    /// It was down; this reader tries it again (one at a time). Dropping the probe ends the try.
    Probe(Probe<'a>),
    /// It was down and another reader is trying it: serve what memory holds, do not wait for a
    /// connection that will not come.
    Skip,
}

/// The one reader trying an unreachable database again; ends the try when dropped (also when the
/// request is cancelled), so the next reader can try.
#[derive(Debug)]
pub struct Probe<'a>(&'a AtomicBool);

impl Drop for Probe<'_> {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}

/// A denial repeated within this time is counted into the next record, not written on its own.
pub const DENIAL_RECORD_EVERY: chrono::Duration = chrono::Duration::seconds(60);

impl std::fmt::Debug for ReadCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ReadCache")
    }
}

impl ReadCache {
    /// Whether a reader asks the database (R16). While it is known to be down, one reader at a
    /// time tries it again and the others are answered from memory at once, instead of each
    /// waiting for the connection pool's timeout. Two relaxed loads while the database is up.
    pub fn store_gate(&self) -> StoreGate<'_> {
        if !self.store_down.load(Ordering::Relaxed) {
            return StoreGate::Open;
        }
        if self.probing.swap(true, Ordering::AcqRel) {
            StoreGate::Skip
        } else {
            StoreGate::Probe(Probe(&self.probing))
        }
    }

    /// Records whether the database answered a reader (any answer but "unavailable" counts).
    pub fn store_answered(&self, reachable: bool) {
        if self.store_down.load(Ordering::Relaxed) == reachable {
            self.store_down.store(!reachable, Ordering::Relaxed);
        }
    }

    /// A cached answer still valid for `min_validity` (or still valid at all, when it was the
    /// freshest there is); only if fetched within [`FRESH_FOR`] unless `stale_ok` (the database
    /// is down: then always valid for `min_validity`).
    pub fn served(
        &self,
        reader: &ReaderKey,
        name: &str,
        now: Timestamp,
        min_validity: chrono::Duration,
        stale_ok: bool,
    ) -> Option<Arc<Served>> {
        let map = self.served.lock().unwrap_or_else(|e| e.into_inner());
        let s = map.get(reader)?.get(name)?;
        let fresh = stale_ok || now - s.fetched_at < FRESH_FOR;
        let long_enough =
            s.expires_at > now + min_validity || (s.short && !stale_ok && s.expires_at > now);
        (fresh && long_enough).then(|| Arc::clone(s))
    }

    pub fn put_served(&self, reader: ReaderKey, name: &str, served: Arc<Served>) {
        let mut map = self.served.lock().unwrap_or_else(|e| e.into_inner());
        if self.served_len.load(Ordering::Relaxed) > 10_000 {
            map.clear();
            self.served_len.store(0, Ordering::Relaxed);
        }
        if map
            .entry(reader)
            .or_default()
            .insert(name.into(), served)
            .is_none()
        {
            self.served_len.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Forgets every cached answer (an app or token changed here).
    pub fn clear_served(&self) {
        let mut map = self.served.lock().unwrap_or_else(|e| e.into_inner());
        map.clear();
        self.served_len.store(0, Ordering::Relaxed);
    }

    /// Forgets every answer about a token (it changed here: refreshed, edited, marked dead).
    pub fn forget_token(&self, token: TokenId) {
        let mut map = self.served.lock().unwrap_or_else(|e| e.into_inner());
        let mut removed = 0;
        for names in map.values_mut() {
            names.retain(|_, s| {
                let keep = s.token_id != token;
                removed += usize::from(!keep);
                keep
            });
        }
        map.retain(|_, names| !names.is_empty());
        self.served_len.fetch_sub(removed, Ordering::Relaxed);
    }

    pub fn key(&self, id: ApiKeyId, now: Timestamp, stale_ok: bool) -> Option<Arc<ApiKeyRecord>> {
        let map = self.keys.lock().unwrap_or_else(|e| e.into_inner());
        let (rec, at) = map.get(&id)?;
        (stale_ok || now - *at < KEY_FRESH_FOR).then(|| Arc::clone(rec))
    }

    pub fn put_key(&self, rec: Arc<ApiKeyRecord>, now: Timestamp) {
        let mut map = self.keys.lock().unwrap_or_else(|e| e.into_inner());
        if map.len() > 10_000 {
            map.clear();
        }
        map.insert(rec.id, (rec, now));
    }

    /// Counts a denial under `key`. Returns `Some(repeats)` when it must be audited now (the
    /// first one, or the first after [`DENIAL_RECORD_EVERY`]; `repeats` were refused since the
    /// last record), `None` when it was only counted: a caller repeating a refused request
    /// cannot grow the audit log by a row each time.
    pub fn count_denial(&self, key: String, now: Timestamp) -> Option<u64> {
        let mut map = self.denials.lock().unwrap_or_else(|e| e.into_inner());
        if map.len() > 10_000 {
            map.clear();
        }
        let entry = map.entry(key).or_insert((now - DENIAL_RECORD_EVERY, 0));
        if now - entry.0 >= DENIAL_RECORD_EVERY {
            let repeats = entry.1;
            *entry = (now, 0);
            Some(repeats)
        } else {
            entry.1 += 1;
            None
        }
    }

    pub fn forget_key(&self, id: ApiKeyId) {
        self.keys
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&id);
    }

    /// Forgets every cached key of an app (deleted with its keys): none of them authenticates
    /// again, not even while the database is down.
    pub fn forget_app_keys(&self, app: tokenwarden_domain::AppId) {
        self.keys
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|_, (rec, _)| rec.app_id != Some(app));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(token: TokenId, now: Timestamp) -> Arc<Served> {
        Arc::new(Served::new(
            token,
            &SecretString::from("a"),
            "Bearer",
            now + chrono::Duration::hours(1),
            None,
            false,
            now,
        ))
    }

    /// Issue 10: the answer written from the cached bytes is exactly what serializing the
    /// documented view gives (escapes included), `expires_in` counting down to 0 and no further.
    #[test]
    fn issue10_item1_the_cached_answer_is_the_documented_json() {
        let now: Timestamp = chrono::DateTime::from_timestamp(1_800_000_000, 0).expect("a time");
        let access = SecretString::from("ver:1-hint:2\"quoted\"\\ and \u{e9}\n");
        let expires_at = now + chrono::Duration::seconds(599) + chrono::Duration::milliseconds(900);
        let s = Served::new(
            TokenId(uuid::Uuid::new_v4()),
            &access,
            "Bearer",
            expires_at,
            None,
            false,
            now,
        );
        for (at, left) in [
            (now, 599),
            (now + chrono::Duration::seconds(590), 9),
            (now + chrono::Duration::seconds(599), 0),
            (now + chrono::Duration::hours(2), 0),
        ] {
            let body = s.answer_body(at);
            let want = serde_json::json!({
                "access_token": access.expose_secret(),
                "token_type": "Bearer",
                "expires_at": tokenwarden_domain::clock::Rfc3339(expires_at).to_string(),
                "expires_in": left,
            });
            let got: serde_json::Value = serde_json::from_slice(&body).expect("JSON");
            assert_eq!(got, want);
            let text = std::str::from_utf8(&body).expect("UTF-8");
            let at = |key: &str| text.find(&format!("\"{key}\":")).expect(key);
            assert!(text.starts_with(r#"{"access_token":"#), "{text}");
            assert!(at("token_type") < at("expires_at") && at("expires_at") < at("expires_in"));
        }
        assert_eq!(
            serde_json::from_slice::<serde_json::Value>(
                &s.answer_body(now - chrono::Duration::days(400))
            )
            .unwrap()["expires_in"],
            serde_json::json!(34_560_599u64)
        );
    }

    /// Issue 10 item 1: the served-answer cache, keyed by (reader, name) without key strings,
    /// keeps readers apart, shares the answer (no copy of the secret per hit), and forgetting a
    /// token drops its answers for every reader.
    #[test]
    fn issue10_item1_served_answers_are_per_reader_and_name_shared_and_forgotten_per_token() {
        let c = ReadCache::default();
        let now: Timestamp = chrono::DateTime::from_timestamp(1_800_000_000, 0).expect("a time");
        let min = chrono::Duration::seconds(60);
        let (t1, t2) = (TokenId(uuid::Uuid::new_v4()), TokenId(uuid::Uuid::new_v4()));
        let app = ReaderKey::App(AppId(uuid::Uuid::new_v4()));
        let admin = ReaderKey::Admin(None);
        let a1 = answer(t1, now);
        c.put_served(app.clone(), "sf", Arc::clone(&a1));
        c.put_served(admin.clone(), "sf", answer(t2, now));
        c.put_served(admin.clone(), "other", answer(t1, now));
        let hit = c.served(&app, "sf", now, min, false).expect("cached");
        assert!(Arc::ptr_eq(&hit, &a1));
        assert_eq!(
            c.served(&admin, "sf", now, min, false).unwrap().token_id,
            t2
        );
        assert!(
            c.served(&ReaderKey::Admin(Some("x".into())), "sf", now, min, false)
                .is_none()
        );
        c.forget_token(t1);
        assert!(c.served(&app, "sf", now, min, false).is_none());
        assert!(c.served(&admin, "other", now, min, false).is_none());
        assert!(c.served(&admin, "sf", now, min, false).is_some());
        assert_eq!(c.served_len.load(Ordering::Relaxed), 1);
        c.clear_served();
        assert!(c.served(&admin, "sf", now, min, false).is_none());
    }

    /// R16: while the database is down, one reader at a time tries it again and the others are
    /// answered from memory at once; a try that ends (answered, failed or cancelled) lets the
    /// next reader try; once it answers, every reader asks it again.
    #[test]
    fn r16_while_the_database_is_down_one_reader_tries_it_and_the_others_skip_it() {
        let c = ReadCache::default();
        assert!(matches!(c.store_gate(), StoreGate::Open));
        c.store_answered(true);
        assert!(matches!(c.store_gate(), StoreGate::Open));
        c.store_answered(false);
        let probe = c.store_gate();
        assert!(matches!(probe, StoreGate::Probe(_)));
        assert!(matches!(c.store_gate(), StoreGate::Skip));
        assert!(matches!(c.store_gate(), StoreGate::Skip));
        c.store_answered(false);
        drop(probe); // the try failed, or its request was cancelled
        let again = c.store_gate();
        assert!(matches!(again, StoreGate::Probe(_)));
        assert!(matches!(c.store_gate(), StoreGate::Skip));
        c.store_answered(true);
        drop(again);
        assert!(matches!(c.store_gate(), StoreGate::Open));
        assert!(matches!(c.store_gate(), StoreGate::Open));
    }
}
