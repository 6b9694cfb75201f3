//! "Previous page / Next page" of the UI's lists. Each list page reads one keyset page through
//! `ops::lists` (never every row); its links keep the page's filter and size. Keyset cursors
//! only go forward, so a page's link carries the cursors of the pages before it (`back`), and
//! "previous" goes back one of them.

use crate::ops::lists::PageParams;
use serde::Deserialize;

/// The paging part of a list page's query string.
#[derive(Debug, Default, Clone, Deserialize)]
pub struct PageQuery {
    /// Rows per page (1 to 1000, default 100: the rules of `ops::lists`).
    pub limit: Option<i64>,
    /// The cursor of this page; none for the first.
    pub cursor: Option<String>,
    /// The cursors of the pages before this one, `.`-separated, [`FIRST`] for the first page.
    pub back: Option<String>,
}

/// Stands for the first page (which has no cursor) in `back`.
const FIRST: &str = "~";
/// The most earlier pages a link remembers; "previous" from further on goes to the first page.
const BACK_MAX: usize = 50;

impl PageQuery {
    pub fn params(&self) -> PageParams {
        PageParams {
            limit: self.limit,
            cursor: self.cursor.clone().filter(|c| !c.is_empty()),
        }
    }
}

/// The links to the pages around the one shown.
#[derive(Debug, Default)]
pub struct Pager {
    pub prev: Option<String>,
    pub next: Option<String>,
}

impl Pager {
    /// For the page `q` of the list at `path`, narrowed by `keep` (name, value; empty values
    /// are left out of the links), whose next page starts at `next_cursor`.
    pub fn new(
        path: &str,
        keep: &[(&str, &str)],
        q: &PageQuery,
        next_cursor: Option<&str>,
    ) -> Self {
        let url = |cursor: Option<&str>, back: &[&str]| {
            let mut pairs: Vec<(&str, String)> = keep
                .iter()
                .filter(|(_, v)| !v.is_empty())
                .map(|(k, v)| (*k, (*v).to_owned()))
                .collect();
            if let Some(l) = q.limit {
                pairs.push(("limit", l.to_string()));
            }
            if let Some(c) = cursor {
                pairs.push(("cursor", c.to_owned()));
            }
            if !back.is_empty() {
                pairs.push(("back", back.join(".")));
            }
            match serde_urlencoded::to_string(&pairs).unwrap_or_default() {
                qs if qs.is_empty() => path.to_owned(),
                qs => format!("{path}?{qs}"),
            }
        };
        let current = q.cursor.as_deref().filter(|c| !c.is_empty());
        let back: Vec<&str> = q
            .back
            .as_deref()
            .map(|b| b.split('.').filter(|s| !s.is_empty()).collect())
            .unwrap_or_default();
        let prev = current.map(|_| match back.split_last() {
            Some((last, rest)) => url((*last != FIRST).then_some(*last), rest),
            None => url(None, &[]),
        });
        let next = next_cursor.map(|c| {
            let mut b = back.clone();
            b.push(current.unwrap_or(FIRST));
            let skip = b.len().saturating_sub(BACK_MAX);
            url(Some(c), &b[skip..])
        });
        Self { prev, next }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(cursor: Option<&str>, back: Option<&str>) -> PageQuery {
        PageQuery {
            limit: Some(20),
            cursor: cursor.map(str::to_owned),
            back: back.map(str::to_owned),
        }
    }

    #[test]
    fn issue10_links_walk_forward_and_back_keeping_the_filter() {
        let keep = [("action", "token.create"), ("token", "")];
        let first = Pager::new("/audit", &keep, &q(None, None), Some("c2"));
        assert_eq!(first.prev, None);
        assert_eq!(
            first.next.as_deref(),
            Some("/audit?action=token.create&limit=20&cursor=c2&back=%7E")
        );
        let second = Pager::new("/audit", &keep, &q(Some("c2"), Some("~")), Some("c3"));
        assert_eq!(
            second.prev.as_deref(),
            Some("/audit?action=token.create&limit=20")
        );
        assert_eq!(
            second.next.as_deref(),
            Some("/audit?action=token.create&limit=20&cursor=c3&back=%7E.c2")
        );
        let third = Pager::new("/audit", &keep, &q(Some("c3"), Some("~.c2")), None);
        assert_eq!(
            third.prev.as_deref(),
            Some("/audit?action=token.create&limit=20&cursor=c2&back=%7E")
        );
        assert_eq!(third.next, None);
        // A page reached without its trail goes back to the first.
        let lost = Pager::new(
            "/apps",
            &[],
            &PageQuery {
                cursor: Some("c9".into()),
                ..Default::default()
            },
            None,
        );
        assert_eq!(lost.prev.as_deref(), Some("/apps"));
    }
}
