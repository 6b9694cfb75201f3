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
                Some("invalid_request" | "invalid_json")
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
            apps.as_array().unwrap().len(),
            tokens.as_array().unwrap().len()
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
    assert_eq!(tokens.as_array().unwrap().len(), 0, "nothing stored");

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
