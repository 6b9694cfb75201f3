//! R28 and friends: bad input gets a clear error and changes nothing.

use crate::support::{ADMIN, Db, spawn};
use reqwest::Method;
use serde_json::json;

#[tokio::test]
async fn bad_fields_are_refused_with_a_reason_and_nothing_is_stored() {
    let t = spawn(Db::Sqlite).await;
    let cases = [
        (
            "/api/v1/apps",
            json!({"name": "has space"}),
            "may contain only",
        ),
        ("/api/v1/apps", json!({"name": ""}), "must not be empty"),
        (
            "/api/v1/apps",
            json!({"name": "ok", "tokens": ["bad/name"]}),
            "may contain only",
        ),
        (
            "/api/v1/apps",
            json!({"name": "ok", "colour": "red"}),
            "unknown field",
        ),
        (
            "/api/v1/apps",
            json!({"tokens": []}),
            "missing field `name`",
        ),
        (
            "/api/v1/tokens",
            json!({"name": "t", "provider": "myspace"}),
            "unknown provider",
        ),
        (
            "/api/v1/tokens",
            json!({"name": "t", "provider": "snowflake", "app": "ghost"}),
            "no app named ghost",
        ),
        (
            "/api/v1/tokens",
            json!({"name": "t", "provider": "snowflake", "client_secret": "  "}),
            "client_secret must be",
        ),
        (
            "/api/v1/tokens",
            json!({"name": "t", "provider": "snowflake", "client_id": ""}),
            "client_id must be",
        ),
        (
            "/api/v1/tokens",
            json!({"name": "t", "provider": "snowflake", "settings": {"bad key": "v"}}),
            "setting name",
        ),
        (
            "/api/v1/tokens",
            json!({"name": "t", "provider": "snowflake", "settings": {"account": 5}}),
            "invalid type",
        ),
    ];
    for (path, body, expect) in cases {
        let (s, res) = t.admin(Method::POST, path, Some(body.clone())).await;
        assert_eq!(s, 400, "{body} -> {res}");
        assert!(
            matches!(
                res["code"].as_str(),
                Some("invalid_request" | "invalid_json" | "invalid_name")
            ),
            "{res}"
        );
        let msg = res["message"].as_str().unwrap();
        assert!(msg.contains(expect), "{body}: {msg:?} lacks {expect:?}");
    }
    let (_, apps) = t.admin(Method::GET, "/api/v1/apps", None).await;
    let (_, tokens) = t.admin(Method::GET, "/api/v1/tokens", None).await;
    assert_eq!(
        (
            apps["items"].as_array().unwrap().len(),
            tokens["items"].as_array().unwrap().len()
        ),
        (0, 0)
    );
}

#[tokio::test]
async fn r28_malformed_json_and_wrong_content_type_get_400() {
    let t = spawn(Db::Sqlite).await;
    for (ctype, body) in [
        ("application/json", "{\"name\": "),
        ("application/json", "[1,2"),
        ("text/plain", "{\"name\":\"a\"}"),
    ] {
        let res = t
            .http
            .post(t.url("/api/v1/apps"))
            .bearer_auth(ADMIN)
            .header("content-type", ctype)
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 400, "{ctype} {body}");
        let j: serde_json::Value = res.json().await.unwrap();
        assert_eq!(j["code"], "invalid_json");
        assert!(!j["message"].as_str().unwrap().is_empty());
    }
}

#[tokio::test]
async fn r28_bodies_over_the_limit_get_413_on_every_route() {
    let t = spawn(Db::Sqlite).await;
    let big = "x".repeat(65 * 1024);
    for (m, path) in [
        (Method::POST, "/api/v1/apps"),
        (Method::POST, "/api/v1/tokens"),
        (
            Method::PATCH,
            "/api/v1/tokens/00000000-0000-0000-0000-000000000000",
        ),
        (Method::GET, "/healthz"),
        (Method::POST, "/no/such/route"),
    ] {
        let res = t
            .http
            .request(m.clone(), t.url(path))
            .bearer_auth(ADMIN)
            .header("content-type", "application/json")
            .body(format!("{{\"name\": \"{big}\"}}"))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 413, "{m} {path}");
        let j: serde_json::Value = res.json().await.unwrap();
        assert_eq!(j["code"], "payload_too_large");
    }
}

#[tokio::test]
async fn unknown_routes_and_methods_answer_json() {
    let t = spawn(Db::Sqlite).await;
    let (s, j, _) = t
        .send(Method::GET, "/api/v1/nothing", Some(ADMIN), None)
        .await;
    assert_eq!((s, j["code"].as_str()), (404, Some("no_route")));
    let (s, j, _) = t.send(Method::PUT, "/api/v1/apps", Some(ADMIN), None).await;
    assert_eq!((s, j["code"].as_str()), (405, Some("method_not_allowed")));
    let (s, j, _) = t
        .send(Method::GET, "/api/v1/tokens/not-a-uuid", Some(ADMIN), None)
        .await;
    assert_eq!((s, j["code"].as_str()), (404, Some("not_found")));
}

/// Issue 9, bug 2: plain http was allowed to any host whose name began with `127.`. Loopback
/// is decided on the parsed address (127.0.0.0/8, `::1`, `localhost`); everything else needs
/// https: provider endpoints, probe URLs, Snowflake account URLs. A real loopback still works.
#[tokio::test]
async fn issue9_bug2_http_only_to_a_loopback_address() {
    let t = spawn(Db::Sqlite).await;
    let oauth2 = |auth: &str, token: &str, probe: &str| {
        json!({"name": "t", "provider": "oauth2", "client_id": "c", "client_secret": "s",
            "settings": {"authorization_url": auth, "token_url": token, "probe_url": probe}})
    };
    let snowflake = |account: &str| json!({"name": "t", "provider": "snowflake", "settings": {"account": account, "role": "ANALYST"}});
    let ok = "http://127.0.0.1:4000/auth";
    for body in [
        oauth2("http://127.evil.com/auth", ok, ok),
        oauth2(ok, "http://127.0.0.1.nip.io/token", ok),
        oauth2(ok, ok, "http://localhost.evil.com/me"),
        oauth2(ok, "http://127.0.0.1@evil.com/token", ok),
        snowflake("http://127.0.0.1.nip.io"),
        snowflake("http://127.evil.com:9300"),
    ] {
        let (s, res) = t
            .admin(Method::POST, "/api/v1/tokens", Some(body.clone()))
            .await;
        assert_eq!(s, 400, "{body} -> {res}");
        assert_eq!(res["code"], "invalid_request", "{res}");
        assert!(
            res["message"].as_str().unwrap().contains("https"),
            "{body}: {res}"
        );
    }
    let (_, tokens) = t.admin(Method::GET, "/api/v1/tokens", None).await;
    assert_eq!(
        tokens["items"].as_array().unwrap().len(),
        0,
        "nothing stored"
    );

    for (i, body) in [
        oauth2(ok, "http://localhost:4000/token", "http://[::1]:4000/me"),
        snowflake("http://127.0.0.1:9300"),
    ]
    .into_iter()
    .enumerate()
    {
        let mut body = body;
        body["name"] = json!(format!("t{i}"));
        let (s, res) = t
            .admin(Method::POST, "/api/v1/tokens", Some(body.clone()))
            .await;
        assert_eq!(s, 201, "{body} -> {res}");
    }
}

/// Issue 9 bug 7 (R28): every refusal on every route answers the JSON error shape with a
/// stable code, including those made by extractors and layers (a query string that does not
/// parse, a path that does not decode, a body without a length cut off at the limit).
#[tokio::test]
async fn r28_issue9_bug7_every_error_answers_the_json_shape() {
    let t = spawn(Db::Sqlite).await;
    let (s, app) = t
        .admin(Method::POST, "/api/v1/apps", Some(json!({"name": "shape"})))
        .await;
    assert_eq!(s, 201, "{app}");
    let check = |what: &str, res: (u16, String, String), status: u16, code: &str| {
        let (s, ctype, text) = res;
        assert_eq!(s, status, "{what}: {text}");
        assert!(
            ctype.starts_with("application/json"),
            "{what}: {ctype} {text}"
        );
        let j: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(j["code"], code, "{what}: {text}");
        assert!(!j["message"].as_str().unwrap().is_empty(), "{what}");
    };
    let send = |m: Method, path: &str, ctype: Option<&str>, body: &str| {
        let mut req = t.http.request(m, t.url(path)).bearer_auth(ADMIN);
        if let Some(c) = ctype {
            req = req.header("content-type", c);
        }
        let req = req.body(body.to_owned());
        async move {
            let res = req.send().await.unwrap();
            let status = res.status().as_u16();
            let ctype = res
                .headers()
                .get("content-type")
                .map(|v| v.to_str().unwrap().to_owned())
                .unwrap_or_default();
            (status, ctype, res.text().await.unwrap())
        }
    };
    // Query strings that do not parse.
    check(
        "bad query",
        send(Method::GET, "/api/v1/audit?limit=abc", None, "").await,
        400,
        "invalid_request",
    );
    check(
        "bad query on the read path",
        send(
            Method::GET,
            "/api/v1/access-tokens/x?min_validity=-5",
            None,
            "",
        )
        .await,
        400,
        "invalid_request",
    );
    // A path segment that is not UTF-8.
    check(
        "bad path",
        send(Method::GET, "/api/v1/apps/%FF%FE", None, "").await,
        400,
        "invalid_request",
    );
    // Bad JSON and a wrong content type.
    check(
        "bad json",
        send(
            Method::POST,
            "/api/v1/apps",
            Some("application/json"),
            "{\"name\":",
        )
        .await,
        400,
        "invalid_json",
    );
    check(
        "wrong content type",
        send(Method::POST, "/api/v1/apps", Some("text/plain"), "{}").await,
        400,
        "invalid_json",
    );
    // Unknown routes and methods.
    check(
        "unknown route",
        send(Method::GET, "/api/v2/nothing", None, "").await,
        404,
        "no_route",
    );
    check(
        "method",
        send(Method::DELETE, "/api/v1/audit", None, "").await,
        405,
        "method_not_allowed",
    );
    // A chunked body (no Content-Length) over the limit, on a route that reads raw bytes.
    let id = app["id"].as_str().unwrap();
    let chunk = "x".repeat(16 * 1024);
    let mut raw = format!(
        "POST /api/v1/apps/{id}/keys HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer {ADMIN}\r\n\
         Content-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    );
    for _ in 0..5 {
        raw.push_str(&format!("{:x}\r\n{chunk}\r\n", chunk.len()));
    }
    raw.push_str("0\r\n\r\n");
    let addr = t.base.trim_start_matches("http://");
    let mut sock = tokio::net::TcpStream::connect(addr).await.unwrap();
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    // The server may answer and close before it has read everything: ignore a write error.
    let _ = sock.write_all(raw.as_bytes()).await;
    let mut answer = Vec::new();
    let _ = sock.read_to_end(&mut answer).await;
    let answer = String::from_utf8_lossy(&answer).to_string();
    let (head, body) = answer.split_once("\r\n\r\n").unwrap();
    let status: u16 = head.split(' ').nth(1).unwrap().parse().unwrap();
    let ctype = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-type: ")
                .map(str::to_owned)
        })
        .unwrap_or_default();
    check(
        "chunked body over the limit",
        (status, ctype, body.to_owned()),
        413,
        "payload_too_large",
    );
    // The UI keeps its HTML pages.
    let res = t
        .http
        .get(t.url("/tokens/not-a-uuid"))
        .send()
        .await
        .unwrap();
    let ctype = res.headers()["content-type"].to_str().unwrap().to_owned();
    assert!(!ctype.starts_with("application/json"), "{ctype}");
}

/// Issue 11 item 12: a name that breaks its rule is 400 `invalid_name` with the rule (which
/// says ASCII), not `invalid_json` with the parser's wording; nothing is stored.
#[tokio::test]
async fn issue11_item12_a_bad_name_is_invalid_name_with_the_rule() {
    let t = spawn(Db::Sqlite).await;
    let (s, app) = t
        .admin(Method::POST, "/api/v1/apps", Some(json!({"name": "good"})))
        .await;
    assert_eq!(s, 201, "{app}");
    let cases = [
        (
            Method::POST,
            "/api/v1/apps",
            json!({"name": "has space"}),
            "app name \"has space\" may contain only ASCII letters",
        ),
        (
            Method::POST,
            "/api/v1/apps",
            json!({"name": "café"}),
            "app name \"café\" may contain only ASCII letters",
        ),
        (
            Method::POST,
            "/api/v1/apps",
            json!({"name": ""}),
            "app name must not be empty",
        ),
        (
            Method::POST,
            "/api/v1/apps",
            json!({"name": "ok", "tokens": ["bad/name"]}),
            "token name \"bad/name\" may contain only ASCII",
        ),
        (
            Method::PATCH,
            "/api/v1/apps/good",
            json!({"name": "still bad"}),
            "app name \"still bad\"",
        ),
        (
            Method::POST,
            "/api/v1/tokens",
            json!({"name": "snowflake sales", "provider": "snowflake", "settings": {"account": "xy12345.us-east-1", "role": "ANALYST"}}),
            "token name \"snowflake sales\" may contain only ASCII",
        ),
        (
            Method::POST,
            "/api/v1/apps/good/keys",
            json!({"label": "bad/label"}),
            "key label \"bad/label\"",
        ),
    ];
    for (m, path, body, expect) in cases {
        let (s, res) = t.admin(m.clone(), path, Some(body.clone())).await;
        assert_eq!(
            (s, res["code"].as_str()),
            (400, Some("invalid_name")),
            "{m} {path} {body}: {res}"
        );
        let msg = res["message"].as_str().unwrap();
        assert!(msg.contains(expect), "{body}: {msg:?} lacks {expect:?}");
        for noise in ["deserialize", "line 1", "column", "target type"] {
            assert!(!msg.contains(noise), "{body}: {msg:?} has {noise:?}");
        }
    }
    // Malformed JSON is still `invalid_json`, and says why without axum's preamble.
    let (s, res) = t
        .admin(Method::POST, "/api/v1/apps", Some(json!({"name": 5})))
        .await;
    assert_eq!(
        (s, res["code"].as_str()),
        (400, Some("invalid_json")),
        "{res}"
    );
    assert!(
        !res["message"]
            .as_str()
            .unwrap()
            .contains("Failed to deserialize"),
        "{res}"
    );
    let (_, apps) = t.admin(Method::GET, "/api/v1/apps", None).await;
    assert_eq!(apps["items"].as_array().unwrap().len(), 1, "{apps}");
    let (_, tokens) = t.admin(Method::GET, "/api/v1/tokens", None).await;
    assert_eq!(tokens["items"].as_array().unwrap().len(), 0, "{tokens}");
}

/// Issue 11 item 13: every instant the API answers is RFC 3339 UTC with `Z` and milliseconds,
/// the same in the answer to the POST and in a later GET (the database keeps milliseconds).
#[tokio::test]
async fn issue11_item13_instants_read_the_same_from_post_and_get() {
    fn is_instant(v: &serde_json::Value) -> bool {
        let Some(s) = v.as_str() else { return false };
        let b = s.as_bytes();
        b.len() == 24
            && b.iter().enumerate().all(|(i, c)| match i {
                4 | 7 => *c == b'-',
                10 => *c == b'T',
                13 | 16 => *c == b':',
                19 => *c == b'.',
                23 => *c == b'Z',
                _ => c.is_ascii_digit(),
            })
    }
    let t = spawn(Db::Sqlite).await;
    let (s, app) = t
        .admin(Method::POST, "/api/v1/apps", Some(json!({"name": "times"})))
        .await;
    assert_eq!(s, 201, "{app}");
    let (_, got) = t.admin(Method::GET, "/api/v1/apps/times", None).await;
    assert!(is_instant(&app["created_at"]), "{app}");
    assert_eq!(app["created_at"], got["created_at"], "{app} / {got}");
    assert!(is_instant(&got["updated_at"]), "{got}");
    let (s, tok) = t
        .admin(
            Method::POST,
            "/api/v1/tokens",
            Some(
                json!({"name": "gh", "provider": "github", "client_id": "c", "client_secret": "s"}),
            ),
        )
        .await;
    assert_eq!(s, 201, "{tok}");
    let (_, got) = t
        .admin(
            Method::GET,
            &format!("/api/v1/tokens/{}", tok["id"].as_str().unwrap()),
            None,
        )
        .await;
    for field in ["created_at", "updated_at"] {
        assert!(is_instant(&tok[field]), "{field}: {tok}");
        assert_eq!(tok[field], got[field], "{field}: {tok} / {got}");
    }
    let (_, keys) = t.admin(Method::GET, "/api/v1/apps/times/keys", None).await;
    assert!(is_instant(&keys["items"][0]["created_at"]), "{keys}");
    let (_, audit) = t.admin(Method::GET, "/api/v1/audit?limit=5", None).await;
    assert!(is_instant(&audit["items"][0]["at"]), "{audit}");
}
