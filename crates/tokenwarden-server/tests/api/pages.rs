//! Issue 10, item 4: every list of the API answers one page, `{"items": [...],
//! "next_cursor": ...}`, with `limit` (1 to 1000, default 100) and an opaque `cursor`.

use crate::support::{Db, TestApp, spawn};
use reqwest::Method;
use serde_json::{Value, json};

async fn all_pages(t: &TestApp, path: &str) -> (Vec<Value>, usize) {
    let mut items = Vec::new();
    let mut pages = 0;
    let mut cursor: Option<String> = None;
    loop {
        let sep = if path.contains('?') { '&' } else { '?' };
        let url = match &cursor {
            Some(c) => format!("{path}{sep}cursor={c}"),
            None => path.to_owned(),
        };
        let (s, body) = t.admin(Method::GET, &url, None).await;
        assert_eq!(s, 200, "{url}: {body}");
        pages += 1;
        items.extend(body["items"].as_array().unwrap().iter().cloned());
        match body["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => {
                assert!(body["next_cursor"].is_null(), "{body}");
                return (items, pages);
            }
        }
    }
}

async fn issue10_api_lists_page_with_limit_and_cursor(db: Db) {
    let t = spawn(db).await;
    for i in 0..5 {
        let (s, b) = t
            .admin(
                Method::POST,
                "/api/v1/apps",
                Some(json!({"name": format!("app-{i}"), "tokens": []})),
            )
            .await;
        assert_eq!(s, 201, "{b}");
        let (s, b) = t
            .admin(
                Method::POST,
                "/api/v1/tokens",
                Some(json!({"name": format!("tok-{i}"), "provider": "github"})),
            )
            .await;
        assert_eq!(s, 201, "{b}");
    }
    let names = |items: &[Value]| -> Vec<String> {
        items
            .iter()
            .map(|i| i["name"].as_str().unwrap().to_owned())
            .collect()
    };
    let (apps, pages) = all_pages(&t, "/api/v1/apps?limit=2").await;
    assert_eq!(pages, 3);
    assert_eq!(names(&apps), ["app-0", "app-1", "app-2", "app-3", "app-4"]);
    let (tokens, pages) = all_pages(&t, "/api/v1/tokens?limit=4").await;
    assert_eq!((names(&tokens).len(), pages), (5, 2));
    let (one, _) = all_pages(&t, "/api/v1/tokens?name=K-3&provider=github").await;
    assert_eq!(names(&one), ["tok-3"]);
    for i in 0..3 {
        let (s, b) = t
            .admin(
                Method::POST,
                "/api/v1/apps/app-0/keys",
                Some(json!({"label": format!("k{i}")})),
            )
            .await;
        assert_eq!(s, 201, "{b}");
    }
    let (keys, pages) = all_pages(&t, "/api/v1/apps/app-0/keys?limit=1").await;
    assert_eq!((keys.len(), pages), (4, 4));
    let (audit, _) = all_pages(&t, "/api/v1/audit?limit=3&action=app.create").await;
    assert_eq!(audit.len(), 5);
    let (channels, pages) = all_pages(&t, "/api/v1/notification-channels").await;
    assert_eq!((channels.len(), pages), (0, 1));

    // Out of range, not a number, a tampered cursor, another list's cursor: 400.
    let (_, first) = t.admin(Method::GET, "/api/v1/apps?limit=1", None).await;
    let apps_cursor = first["next_cursor"].as_str().unwrap().to_owned();
    let mut tampered = apps_cursor.clone();
    tampered.insert(2, 'x');
    for bad in [
        "/api/v1/apps?limit=0".to_owned(),
        "/api/v1/apps?limit=1001".to_owned(),
        "/api/v1/audit?limit=-1".to_owned(),
        "/api/v1/tokens?limit=ten".to_owned(),
        format!("/api/v1/apps?cursor={tampered}"),
        format!("/api/v1/tokens?cursor={apps_cursor}"),
        "/api/v1/tokens?status=fine".to_owned(),
    ] {
        let (s, body) = t.admin(Method::GET, &bad, None).await;
        assert_eq!(
            (s, body["code"].as_str()),
            (400, Some("invalid_request")),
            "{bad}: {body}"
        );
    }
}

#[tokio::test]
async fn issue10_api_lists_page_with_limit_and_cursor_sqlite() {
    issue10_api_lists_page_with_limit_and_cursor(Db::Sqlite).await;
}

#[tokio::test]
async fn issue10_api_lists_page_with_limit_and_cursor_postgres() {
    issue10_api_lists_page_with_limit_and_cursor(Db::Postgres).await;
}
