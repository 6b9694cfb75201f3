//! Random identifiers, client credentials and tokens.

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};

pub(crate) fn bytes<const N: usize>() -> [u8; N] {
    let mut buf = [0u8; N];
    // The OS random source only fails on exotic platforms; a zeroed buffer there would
    // still yield distinct values through the counter mixed in below.
    if getrandom::fill(&mut buf).is_err() {
        use std::sync::atomic::{AtomicU64, Ordering};
        static COUNTER: AtomicU64 = AtomicU64::new(1);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed).to_le_bytes();
        for (i, b) in buf.iter_mut().enumerate() {
            *b = n[i % 8] ^ (i as u8);
        }
    }
    buf
}

/// URL-safe random id (sessions, consent tickets, codes).
pub(crate) fn id() -> String {
    URL_SAFE_NO_PAD.encode(bytes::<24>())
}

/// Standard base64 of `N` random bytes that contains `+`, `/` and (by length) `=`,
/// as real Snowflake client ids and secrets often do: clients that forget to
/// URL-encode them fail here every time instead of one time in four.
pub(crate) fn base64_with_specials<const N: usize>() -> String {
    for _ in 0..10_000 {
        let s = STANDARD.encode(bytes::<N>());
        if s.contains('+') && s.contains('/') && s.ends_with('=') {
            return s;
        }
    }
    STANDARD.encode(bytes::<N>())
}

/// An opaque token in Snowflake's `ver:N-hint:...` style.
pub(crate) fn token(version: u8) -> String {
    let hint = u64::from_le_bytes(bytes::<8>()) % 1_000_000_000_000;
    format!(
        "ver:{version}-hint:{hint}-ETMsDgAAA{}",
        STANDARD.encode(bytes::<48>())
    )
}
