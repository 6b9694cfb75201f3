//! One module per command; each parses its arguments, calls `tokenwarden_server::ops` and
//! prints the answer. None writes through the store directly: reads for printing only.

pub(crate) mod admin;
pub(crate) mod app;
pub(crate) mod backup;
pub(crate) mod config;
#[cfg(feature = "demo")]
pub(crate) mod demo;
pub(crate) mod keys;
pub(crate) mod migrate;
pub(crate) mod serve;
pub(crate) mod token;
pub(crate) mod transfer;

use tokenwarden_domain::{Rfc3339, Timestamp};

/// An instant in a table or a message: the one format (RFC 3339, UTC, `Z`, milliseconds).
pub(crate) fn when(t: Timestamp) -> String {
    Rfc3339(t).to_string()
}

/// An optional instant; `-` when there is none.
pub(crate) fn when_opt(t: Option<Timestamp>) -> String {
    t.map_or_else(|| "-".to_owned(), when)
}

/// Prints a table whose columns are as wide as their widest cell, two spaces apart; the last
/// column is not padded.
pub(crate) fn print_table(headers: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: &mut dyn Iterator<Item = &str>| {
        let mut out = String::new();
        let cells: Vec<&str> = cells.collect();
        for (i, cell) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                out.push_str(cell);
            } else {
                out.push_str(cell);
                let pad = widths[i].saturating_sub(cell.chars().count()) + 2;
                out.extend(std::iter::repeat_n(' ', pad));
            }
        }
        println!("{}", out.trim_end());
    };
    line(&mut headers.iter().copied());
    for row in rows {
        line(&mut row.iter().map(String::as_str));
    }
}
