//! The fuzz harness's shared parts: the case budget and the seed corpora.
//!
//! The fuzz targets are proptest properties inside each crate's own tests (stable Rust, no
//! extra test binary). By default each runs [`DEFAULT_CASES`] cases, so the whole set stays
//! well under a minute in the test command; a long run sets [`CASES_ENV`]:
//!
//! ```text
//! TOKENWARDEN_FUZZ_CASES=100000 cargo test --workspace fuzz_
//! ```
//!
//! Each target also replays every file of `fuzz/corpus/<target>/` (real-shaped inputs kept in
//! the repository) before the generated cases.

use std::path::PathBuf;

/// The environment variable that sets the number of generated cases per fuzz target.
pub const CASES_ENV: &str = "TOKENWARDEN_FUZZ_CASES";
/// Cases per target when [`CASES_ENV`] is not set.
pub const DEFAULT_CASES: u32 = 256;

/// The number of generated cases per target: [`CASES_ENV`] if set to a number, else `default`.
///
/// # Panics
///
/// If [`CASES_ENV`] is set but is not a number (a long run that silently ran the default
/// budget would be worse).
#[must_use]
pub fn cases(default: u32) -> u32 {
    match std::env::var(CASES_ENV) {
        Ok(v) if !v.trim().is_empty() => v
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("{CASES_ENV}={v:?} is not a number of cases")),
        _ => default,
    }
}

/// The workspace's `fuzz/corpus/<target>/` folder.
#[must_use]
pub fn corpus_dir(target: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/corpus")
        .join(target)
}

/// Every seed input of `target` as (file name, bytes), sorted by name.
///
/// # Panics
///
/// If the folder is missing or empty: a target must have seeds.
#[must_use]
pub fn corpus(target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = corpus_dir(target);
    let mut seeds: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("the fuzz corpus {} cannot be read: {e}", dir.display()))
        .filter_map(Result::ok)
        .filter(|e| e.path().is_file())
        .map(|e| {
            let bytes = std::fs::read(e.path())
                .unwrap_or_else(|err| panic!("{}: {err}", e.path().display()));
            (e.file_name().to_string_lossy().into_owned(), bytes)
        })
        .collect();
    seeds.sort();
    assert!(
        !seeds.is_empty(),
        "the fuzz corpus {} has no seed inputs",
        dir.display()
    );
    seeds
}
