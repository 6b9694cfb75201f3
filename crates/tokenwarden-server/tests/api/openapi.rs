//! The OpenAPI document is generated from the handlers, snapshot-tested, and matches the router.

use crate::support::{ADMIN, Db, spawn};

#[test]
fn openapi_document_snapshot() {
    // A change to the API shows up here as a snapshot diff to review
    // (`cargo insta review`, or INSTA_UPDATE=always to accept).
    let doc = serde_json::to_value(tokenwarden_server::openapi()).unwrap();
    insta::assert_json_snapshot!("openapi", doc);
}

#[tokio::test]
async fn every_documented_operation_is_routed_and_served_at_api_openapi_json() {
    let t = spawn(Db::Sqlite).await;
    let (s, served, _) = t
        .send(reqwest::Method::GET, "/api/openapi.json", None, None)
        .await;
    assert_eq!(s, 200);
    assert_eq!(
        served,
        serde_json::to_value(tokenwarden_server::openapi()).unwrap()
    );
    let paths = served["paths"].as_object().unwrap();
    assert!(paths.len() >= 4, "{paths:?}");
    let mut operations = 0;
    for (path, item) in paths {
        let concrete = path
            .replace("{id}", "00000000-0000-0000-0000-000000000000")
            .replace("{key_id}", "00000000-0000-0000-0000-000000000000")
            .replace("{name}", "no-such-token");
        for method in item.as_object().unwrap().keys() {
            let m = reqwest::Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let (status, body, _) = t
                .send(m, &concrete, Some(ADMIN), Some(serde_json::json!({})))
                .await;
            assert!(
                status != 405 && body["code"] != "no_route",
                "{method} {path} is documented but not routed ({status} {body})"
            );
            operations += 1;
        }
    }
    assert_eq!(operations, 28);
    // Every operation declares the bearer requirement.
    for item in paths.values() {
        for op in item.as_object().unwrap().values() {
            assert!(op["security"].to_string().contains("bearer"), "{op}");
        }
    }
}

/// The request schema of `method path` (resolving one `$ref`).
fn request_schema(doc: &serde_json::Value, path: &str, method: &str) -> serde_json::Value {
    let schema =
        &doc["paths"][path][method]["requestBody"]["content"]["application/json"]["schema"];
    match schema["$ref"].as_str() {
        Some(r) => doc["components"]["schemas"][r.rsplit('/').next().unwrap()].clone(),
        None => schema.clone(),
    }
}

/// Issue 9 item 11 (R36), found by schemathesis: the request bodies documented names as bare
/// strings and kinds as free text, so most generated bodies were refused at validation and the
/// operations behind it went untested. Names now carry the pattern and lengths of the parser
/// that checks them, kinds and event kinds their enums.
#[test]
fn issue9_r36_request_schemas_carry_the_name_rules_and_enums() {
    use tokenwarden_domain::{AppName, ChannelKind, EventKind, ProviderId, TokenName};
    let doc = serde_json::to_value(tokenwarden_server::openapi()).unwrap();
    let app = request_schema(&doc, "/api/v1/apps", "post");
    assert_eq!(
        app["properties"]["name"]["pattern"],
        AppName::PATTERN,
        "{app}"
    );
    assert_eq!(app["properties"]["name"]["minLength"], 1);
    assert_eq!(app["properties"]["name"]["maxLength"], AppName::MAX_LEN);
    assert_eq!(
        app["properties"]["tokens"]["items"]["pattern"],
        TokenName::PATTERN,
        "{app}"
    );
    let patch = request_schema(&doc, "/api/v1/apps/{id}", "patch");
    assert_eq!(
        patch["properties"]["name"]["pattern"],
        AppName::PATTERN,
        "{patch}"
    );
    let token = request_schema(&doc, "/api/v1/tokens", "post");
    assert_eq!(
        token["properties"]["name"]["pattern"],
        TokenName::PATTERN,
        "{token}"
    );
    assert_eq!(
        token["properties"]["provider"]["pattern"],
        ProviderId::PATTERN
    );
    assert_eq!(token["properties"]["app"]["pattern"], AppName::PATTERN);
    let patch = request_schema(&doc, "/api/v1/tokens/{id}", "patch");
    assert_eq!(
        patch["properties"]["name"]["pattern"],
        TokenName::PATTERN,
        "{patch}"
    );
    let channel = request_schema(&doc, "/api/v1/notification-channels", "post");
    let kinds: Vec<&str> = ChannelKind::ALL.iter().map(|k| k.as_str()).collect();
    assert_eq!(
        channel["properties"]["kind"]["enum"],
        serde_json::json!(kinds),
        "{channel}"
    );
    let events: Vec<&str> = EventKind::ALL.iter().map(|k| k.as_str()).collect();
    assert_eq!(
        channel["properties"]["events"]["items"]["enum"],
        serde_json::json!(events),
        "{channel}"
    );
    assert_eq!(channel["properties"]["name"]["minLength"], 1, "{channel}");
    let key = request_schema(&doc, "/api/v1/apps/{id}/keys", "post");
    assert!(key["properties"]["label"]["pattern"].is_string(), "{key}");
}

/// The patterns in the document say exactly what the parsers accept (with the length limit).
#[test]
fn issue9_r36_documented_name_patterns_agree_with_the_parsers() {
    use tokenwarden_domain::{AppName, KeyLabel, ProviderId, TokenName};
    let long = "a".repeat(101);
    let samples = [
        "a",
        "snowflake-sales",
        "Graph_OneDrive.v2",
        "x1",
        "-lead",
        ".dot",
        "has space",
        "slash/",
        "ünï",
        "semi;colon",
        "../etc",
        "",
        "UPPER",
        "tab\there",
        "new\nline",
        "trailing\n",
        "a b.c_d-e",
        long.as_str(),
    ];
    fn agree(pattern: &str, max: usize, parse: impl Fn(&str) -> bool, samples: &[&str]) {
        let re = regex_lite::Regex::new(pattern).unwrap();
        for s in samples {
            let documented = re.is_match(s) && s.chars().count() <= max;
            assert_eq!(documented, parse(s), "{pattern} vs the parser on {s:?}");
        }
    }
    agree(
        TokenName::PATTERN,
        TokenName::MAX_LEN,
        |s| TokenName::parse(s).is_ok(),
        &samples,
    );
    agree(
        AppName::PATTERN,
        AppName::MAX_LEN,
        |s| AppName::parse(s).is_ok(),
        &samples,
    );
    agree(
        ProviderId::PATTERN,
        ProviderId::MAX_LEN,
        |s| ProviderId::parse(s).is_ok(),
        &samples,
    );
    agree(
        KeyLabel::PATTERN,
        KeyLabel::MAX_LEN,
        |s| KeyLabel::parse(s).is_ok(),
        &samples,
    );
}

/// Every operation documents the answers any route may give: 400, 401, 403, 413, and 503 when
/// the database cannot be reached (schemathesis' status-code conformance).
#[test]
fn issue9_r36_every_operation_documents_the_common_error_statuses() {
    let doc = serde_json::to_value(tokenwarden_server::openapi()).unwrap();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            for status in ["400", "401", "403", "413", "503"] {
                assert!(
                    op["responses"][status].is_object(),
                    "{method} {path} does not document {status}"
                );
            }
        }
    }
}

/// A channel name is limited to 100 characters, as documented (`maxLength`) and as the error
/// says; it was 100 bytes, so a name of 100 accented letters was refused.
#[tokio::test]
async fn issue9_r36_channel_names_are_limited_in_characters_not_bytes() {
    let t = spawn(Db::Sqlite).await;
    let name = "é".repeat(100);
    let (s, body, _) = t
        .send(
            reqwest::Method::POST,
            "/api/v1/notification-channels",
            Some(ADMIN),
            Some(serde_json::json!({"name": name, "kind": "webhook", "url": "https://hooks.example.com/x"})),
        )
        .await;
    assert_eq!(s, 201, "{body}");
    let (s, body, _) = t
        .send(
            reqwest::Method::POST,
            "/api/v1/notification-channels",
            Some(ADMIN),
            Some(serde_json::json!({"name": "é".repeat(101), "kind": "webhook", "url": "https://hooks.example.com/x"})),
        )
        .await;
    assert_eq!(s, 400, "{body}");
}
