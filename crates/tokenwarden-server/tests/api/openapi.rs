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
    assert_eq!(operations, 43);
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
    // A token is one of the catalog's providers (issue 15 item 4), each shape with the names.
    let token = request_schema(&doc, "/api/v1/tokens", "post");
    let variants = token["oneOf"].as_array().unwrap();
    assert_eq!(variants.len(), 6, "{token}");
    for v in variants {
        let v =
            &doc["components"]["schemas"][v["$ref"].as_str().unwrap().rsplit('/').next().unwrap()];
        assert_eq!(
            v["properties"]["name"]["pattern"],
            TokenName::PATTERN,
            "{v}"
        );
        let provider = v["properties"]["provider"]["enum"][0].as_str().unwrap();
        assert!(ProviderId::parse(provider).is_ok(), "{v}");
        assert_eq!(v["properties"]["app"]["pattern"], AppName::PATTERN);
    }
    let patch = request_schema(&doc, "/api/v1/tokens/{id}", "patch");
    assert_eq!(
        patch["properties"]["name"]["pattern"],
        TokenName::PATTERN,
        "{patch}"
    );
    // A channel is one of its kinds (issue 15 item 3), each with the event kinds and the name.
    let channel = request_schema(&doc, "/api/v1/notification-channels", "post");
    let mut kinds: Vec<&str> = ChannelKind::ALL.iter().map(|k| k.as_str()).collect();
    let mut documented: Vec<&str> = channel["discriminator"]["mapping"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    kinds.sort_unstable();
    documented.sort_unstable();
    assert_eq!(documented, kinds, "{channel}");
    let events: Vec<&str> = EventKind::ALL.iter().map(|k| k.as_str()).collect();
    for variant in ["CreateWebhookChannel", "CreateEmailChannel"] {
        let v = &doc["components"]["schemas"][variant];
        assert_eq!(
            v["properties"]["events"]["items"]["enum"],
            serde_json::json!(events),
            "{v}"
        );
        assert_eq!(v["properties"]["name"]["minLength"], 1, "{v}");
    }
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

/// The operations whose core function can answer 409, and why (derived from `ops`): a name
/// taken (`Conflict`), a stale `version` the client sent (`VersionMismatch`), a token that
/// cannot give an access token (`TokenUnusable`).
const ANSWERS_409: &[(&str, &str)] = &[
    ("post", "/api/v1/apps"),                        // name taken
    ("patch", "/api/v1/apps/{id}"),                  // name taken, stale version
    ("post", "/api/v1/apps/{id}/start"),             // a token it uses is dead
    ("post", "/api/v1/tokens"),                      // name taken
    ("patch", "/api/v1/tokens/{id}"),                // name taken, stale version
    ("patch", "/api/v1/notification-channels/{id}"), // stale version
    ("get", "/api/v1/access-tokens/{name}"),         // not authorized, needs reauthorization
    ("post", "/api/v1/admins"),                      // username taken
    ("delete", "/api/v1/admins/{id}"),               // the last admin
    ("delete", "/api/v1/admin-tokens/{id}"),         // the token the request is made with
];

/// Issue 15 item 3: each operation documents the errors it can really answer: 404 wherever
/// the path names an object, 409 exactly where the core can answer it. Then every operation is
/// called on real objects and on missing ones, with an empty, a wrong and an oversized body,
/// and every status it answers must be documented for it.
#[tokio::test]
async fn issue15_item3_every_operation_documents_the_statuses_it_answers() {
    let doc = serde_json::to_value(tokenwarden_server::openapi()).unwrap();
    let paths = doc["paths"].as_object().unwrap();
    for (path, item) in paths {
        for (method, op) in item.as_object().unwrap() {
            if path.contains('{') {
                assert!(
                    op["responses"]["404"].is_object(),
                    "{method} {path}: no 404"
                );
            }
            let conflict = ANSWERS_409.contains(&(method.as_str(), path.as_str()));
            assert_eq!(
                op["responses"]["409"].is_object(),
                conflict,
                "{method} {path}: 409 documented = {}, the core can answer it = {conflict}",
                op["responses"]["409"].is_object()
            );
        }
    }

    let t = spawn(Db::Sqlite).await;
    let (app, token) = t.seed().await;
    let (_, channel) = t
        .admin(
            reqwest::Method::POST,
            "/api/v1/notification-channels",
            Some(
                serde_json::json!({"name": "c", "kind": "webhook", "url": "http://127.0.0.1:9/h"}),
            ),
        )
        .await;
    let (_, key) = t
        .admin(
            reqwest::Method::POST,
            &format!("/api/v1/apps/{}/keys", app["id"].as_str().unwrap()),
            None,
        )
        .await;
    let oversized = serde_json::json!({"name": "x".repeat(70 * 1024)});
    let mut calls = 0;
    for (path, item) in paths {
        let real_id = if path.starts_with("/api/v1/apps") {
            &app["id"]
        } else if path.starts_with("/api/v1/tokens") {
            &token["id"]
        } else {
            &channel["id"]
        };
        for concrete in [
            path.replace("{id}", real_id.as_str().unwrap())
                .replace("{key_id}", key["id"].as_str().unwrap())
                .replace("{name}", "snowflake-sales"),
            path.replace("{id}", "00000000-0000-0000-0000-000000000000")
                .replace("{key_id}", "00000000-0000-0000-0000-000000000000")
                .replace("{name}", "no-such-token"),
        ] {
            for (method, op) in item.as_object().unwrap() {
                // Deletions last would be tidier; a deleted object answers 404, documented too.
                if method == "delete" {
                    continue;
                }
                let m = reqwest::Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
                for body in [
                    None,
                    Some(serde_json::json!({})),
                    Some(serde_json::json!({"version": 999})),
                    Some(oversized.clone()),
                ] {
                    let (status, answer, _) = t.send(m.clone(), &concrete, Some(ADMIN), body).await;
                    calls += 1;
                    assert!(
                        op["responses"][status.to_string()].is_object(),
                        "{method} {concrete} answered {status}, which it does not document: {answer}"
                    );
                    if status >= 400 {
                        assert!(answer["code"].is_string(), "{method} {concrete}: {answer}");
                    }
                }
            }
        }
    }
    assert!(calls > 150, "{calls}");
}

/// Issue 15 item 3: what the schema says about bodies is what the server does: the key body is
/// optional, a channel is a webhook (with its url) or an email channel (with recipients),
/// secrets have a minimum length, and each create links to the operations on what it made.
#[test]
fn issue15_item3_bodies_channel_kinds_secrets_and_links_are_documented() {
    let doc = serde_json::to_value(tokenwarden_server::openapi()).unwrap();
    let keys = &doc["paths"]["/api/v1/apps/{id}/keys"]["post"]["requestBody"];
    assert_eq!(keys["required"], false, "{keys}");

    let channel = request_schema(&doc, "/api/v1/notification-channels", "post");
    assert_eq!(
        channel["discriminator"]["propertyName"], "kind",
        "{channel}"
    );
    let schemas = &doc["components"]["schemas"];
    let webhook = &schemas["CreateWebhookChannel"];
    assert_eq!(
        webhook["properties"]["kind"]["enum"],
        serde_json::json!(["webhook"])
    );
    assert!(
        webhook["required"].to_string().contains("\"url\""),
        "{webhook}"
    );
    assert!(webhook["properties"]["to"].is_null(), "{webhook}");
    let email = &schemas["CreateEmailChannel"];
    assert_eq!(
        email["properties"]["kind"]["enum"],
        serde_json::json!(["email"])
    );
    assert_eq!(email["properties"]["to"]["minItems"], 1, "{email}");
    assert!(email["properties"]["url"].is_null(), "{email}");

    for (path, method) in [("/api/v1/tokens", "post"), ("/api/v1/tokens/{id}", "patch")] {
        let body = match method {
            // One shape per provider (issue 15 item 4): the secrets are the same in each.
            "post" => schemas["CreateToken_snowflake"].clone(),
            _ => request_schema(&doc, path, method),
        };
        for field in ["client_secret", "client_secret_2", "client_id"] {
            assert_eq!(
                body["properties"][field]["minLength"], 1,
                "{path} {field}: {body}"
            );
        }
        assert_eq!(
            body["properties"]["client_secret"]["writeOnly"], true,
            "{body}"
        );
    }

    for (create, target) in [
        ("/api/v1/apps", "get_app"),
        ("/api/v1/apps", "patch_app"),
        ("/api/v1/apps", "delete_app"),
        ("/api/v1/apps", "stop_app"),
        ("/api/v1/apps", "create_key"),
        ("/api/v1/tokens", "get_token"),
        ("/api/v1/tokens", "patch_token"),
        ("/api/v1/tokens", "delete_token"),
        ("/api/v1/tokens", "authorize"),
        ("/api/v1/notification-channels", "patch_channel"),
        ("/api/v1/notification-channels", "delete_channel"),
        ("/api/v1/notification-channels", "test_channel"),
        ("/api/v1/apps/{id}/keys", "revoke_key"),
        ("/api/v1/admins", "get_admin"),
        ("/api/v1/admins", "delete_admin"),
        ("/api/v1/admins", "set_password"),
        ("/api/v1/admin-tokens", "get_admin_token"),
        ("/api/v1/admin-tokens", "revoke_admin_token"),
    ] {
        let link = &doc["paths"][create]["post"]["responses"]["201"]["links"][target];
        assert_eq!(link["operationId"], target, "{create} -> {target}: {link}");
        assert!(
            link["parameters"]
                .to_string()
                .contains("$response.body#/id"),
            "{link}"
        );
    }
}

/// A JSON Schema check of what the document says about a string: its length in characters,
/// `pattern` (searched, as JSON Schema does), `not`, `anyOf`.
fn string_ok(schema: &serde_json::Value, s: &str) -> bool {
    let n = s.chars().count() as u64;
    if schema["maxLength"].as_u64().is_some_and(|m| n > m)
        || schema["minLength"].as_u64().is_some_and(|m| n < m)
    {
        return false;
    }
    if let Some(p) = schema["pattern"].as_str()
        && !regex_lite::Regex::new(p).unwrap().is_match(s)
    {
        return false;
    }
    if schema["not"].is_object() && string_ok(&schema["not"], s) {
        return false;
    }
    if let Some(any) = schema["anyOf"].as_array()
        && !any.iter().any(|b| string_ok(b, s))
    {
        return false;
    }
    true
}

/// Whether `settings` is what the document's settings schema admits.
fn settings_ok(
    schema: &serde_json::Value,
    settings: &serde_json::Map<String, serde_json::Value>,
) -> bool {
    let props = schema["properties"].as_object().unwrap();
    let required = schema["required"].as_array().cloned().unwrap_or_default();
    required
        .iter()
        .all(|r| settings.contains_key(r.as_str().unwrap()))
        && settings.iter().all(|(k, v)| {
            props
                .get(k)
                .is_some_and(|p| string_ok(p, v.as_str().unwrap()))
        })
}

/// Values to try in every setting: well-formed and not, for URLs, Snowflake accounts, roles,
/// numbers of seconds and names, with blanks, padding, control characters and over-long ones.
fn setting_samples() -> Vec<String> {
    let mut v: Vec<String> = [
        "",
        "   ",
        "x",
        "ANALYST",
        " analyst ",
        "\"My Role\"",
        "\"\"",
        "\"",
        "a\"b",
        "accountadmin",
        "\"AccountAdmin\"",
        " SECURITYADMIN",
        "orgadmin2",
        "xy12345",
        "xy12345.us-east-1",
        "myorg-my_account",
        "1abc",
        "a..b",
        ".a",
        "a.",
        "XY12345.snowflakecomputing.com",
        "https://xy12345.us-east-1.snowflakecomputing.com/console#/x",
        "xy.snowflakecomputing.cn",
        "snowflakecomputing",
        "app.snowflake.com",
        "a:1",
        "a/b",
        "https://xy12345",
        "http://xy12345",
        "http://127.0.0.1:9300",
        " http://localhost/x y ",
        "http://[::1]:8080",
        "http://127.0.0.01",
        "http://127.1.2.3",
        "https://auth.example.com/token",
        "https://auth.example.com/a b",
        "https://u@auth.example.com/t",
        "https://",
        "https:///x",
        "ftp://example.com",
        "http://example.com/t",
        "https://h?x",
        "HTTPS://h",
        "86400",
        "86399",
        "0086400",
        "157784630",
        "157784631",
        "7776000 ",
        "00000086400",
        "99999999999",
        "TW_SALES",
        "tw_1",
        "1TW",
        "COMPUTE_WH",
        "wh-1",
        "basic",
        "body",
        "Basic",
        "common",
        "contoso.onmicrosoft.com",
        "a b",
        "bell\u{7}",
        "tab\there",
        "\u{a0}ANALYST\u{3000}",
        "é",
        "openid offline_access",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    v.push("a".repeat(63));
    v.push("a".repeat(64));
    v.push("R".repeat(255));
    v.push("R".repeat(256));
    v.push(format!("https://h/{}", "é".repeat(2038)));
    v.push(format!("https://h/{}", "é".repeat(2039)));
    v
}

/// Issue 15 item 4: the settings each provider's token shape documents are exactly those the
/// server accepts (`ops::tokens::check_token`): Snowflake's account and role required and
/// parsed, `oauth2`'s endpoints required and https (http only to this machine), each value
/// checked as the server checks it, no unknown setting. Every sample is sent to the server;
/// the document must admit it exactly when the server creates the token.
#[tokio::test]
async fn issue15_item4_each_providers_settings_are_documented_as_the_server_checks_them() {
    let doc = serde_json::to_value(tokenwarden_server::openapi()).unwrap();
    let schemas = &doc["components"]["schemas"];
    let token = &schemas["CreateToken"];
    assert_eq!(
        token["discriminator"]["propertyName"], "provider",
        "{token}"
    );
    let catalog = tokenwarden_oauth::Catalog::built_in();
    let mut ids: Vec<&str> = token["discriminator"]["mapping"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    ids.sort_unstable();
    assert_eq!(ids, catalog.ids());
    for id in catalog.ids() {
        assert_eq!(
            schemas[format!("CreateToken_{id}")]["properties"]["settings"]["$ref"],
            format!("#/components/schemas/TokenSettings_{id}")
        );
    }
    assert_eq!(
        schemas["TokenSettings_snowflake"]["required"],
        serde_json::json!(["account", "role"])
    );
    assert_eq!(
        schemas["TokenSettings_oauth2"]["required"],
        serde_json::json!(["authorization_url", "token_url"])
    );
    assert!(schemas["TokenSettings_github"]["required"].is_null());

    let t = spawn(Db::Sqlite).await;
    let samples = setting_samples();
    let (mut n, mut accepted) = (0, 0);
    let mut disagreements = Vec::new();
    for id in catalog.ids() {
        let settings_schema = &schemas[format!("TokenSettings_{id}")];
        // Valid required settings: the documented example.
        let base = settings_schema["examples"][0]
            .as_object()
            .cloned()
            .unwrap_or_default();
        assert!(settings_ok(settings_schema, &base), "{id}: {base:?}");
        let mut cases = vec![base.clone(), serde_json::Map::new()];
        let mut unknown = base.clone();
        unknown.insert("acount".into(), "x".into());
        cases.push(unknown);
        for field in settings_schema["properties"].as_object().unwrap().keys() {
            let mut without = base.clone();
            without.remove(field);
            cases.push(without);
            for value in &samples {
                let mut s = base.clone();
                s.insert(field.clone(), value.clone().into());
                cases.push(s);
            }
        }
        for settings in cases {
            n += 1;
            let documented = settings_ok(settings_schema, &settings);
            let (status, body, _) = t
                .send(
                    reqwest::Method::POST,
                    "/api/v1/tokens",
                    Some(ADMIN),
                    Some(serde_json::json!({"name": format!("t{n}"), "provider": id, "settings": settings})),
                )
                .await;
            assert!(status == 201 || status == 400, "{status} {body}");
            accepted += usize::from(status == 201);
            if documented != (status == 201) {
                disagreements.push(format!(
                    "{id} {settings:?}: documented {documented}, server {status} {body}"
                ));
            }
        }
    }
    assert!(
        disagreements.is_empty(),
        "{} of {n}:\n{}",
        disagreements.len(),
        disagreements.join("\n")
    );
    assert!(
        accepted > 100 && accepted + 100 < n,
        "{accepted} of {n} accepted"
    );
}

/// Issue 15 item 4: the examples of the pasted Snowflake cell are cells the server takes, and
/// the new links carry a new app's name into the creation of its tokens and channels and a new
/// token's name into a read.
#[tokio::test]
async fn issue15_item4_pasted_cell_examples_are_accepted_and_links_carry_names() {
    let doc = serde_json::to_value(tokenwarden_server::openapi()).unwrap();
    let body = &doc["paths"]["/api/v1/tokens/{id}/client-secrets"]["post"]["requestBody"];
    let examples = body["content"]["text/plain"]["schema"]["examples"]
        .as_array()
        .unwrap()
        .clone();
    assert!(!examples.is_empty(), "{body}");
    let t = spawn(Db::Sqlite).await;
    let (_, token) = t.seed().await;
    for e in examples {
        let r = t
            .http
            .post(t.url(&format!(
                "/api/v1/tokens/{}/client-secrets",
                token["id"].as_str().unwrap()
            )))
            .bearer_auth(ADMIN)
            .header("content-type", "text/plain")
            .body(e.as_str().unwrap().to_owned())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{e}: {}", r.text().await.unwrap());
    }
    let links = &doc["paths"]["/api/v1/apps"]["post"]["responses"]["201"]["links"];
    for (name, target) in [
        ("create_app_token", "create_token"),
        ("create_app_channel", "create_channel"),
    ] {
        assert_eq!(links[name]["operationId"], target, "{links}");
        assert_eq!(links[name]["requestBody"]["app"], "$response.body#/name");
    }
    let read =
        &doc["paths"]["/api/v1/tokens"]["post"]["responses"]["201"]["links"]["read_access_token"];
    assert_eq!(read["parameters"]["name"], "$response.body#/name", "{read}");
}

/// Issue 15 item 3: a PATCH's `settings` is documented as any of the providers' shapes (or
/// null), since the request does not say the token's provider (see `api/doc.rs`); and the
/// server takes a PATCH's settings exactly when they fit the shape of the token's own
/// provider, which is one of those: whatever the server accepts, the document admits.
#[tokio::test]
async fn issue15_item3_patch_settings_are_any_of_the_providers_shapes_as_the_server_checks_them() {
    let doc = serde_json::to_value(tokenwarden_server::openapi()).unwrap();
    let schemas = &doc["components"]["schemas"];
    let catalog = tokenwarden_oauth::Catalog::built_in();
    let patch = &schemas["PatchToken"]["properties"]["settings"];
    let mut expected: Vec<serde_json::Value> = catalog
        .ids()
        .iter()
        .map(|id| serde_json::json!({"$ref": format!("#/components/schemas/TokenSettings_{id}")}))
        .collect();
    expected.push(serde_json::json!({"type": "null"}));
    let mut any_of = patch["anyOf"].as_array().cloned().unwrap_or_default();
    any_of.sort_by_key(|v| v.to_string());
    expected.sort_by_key(|v| v.to_string());
    assert_eq!(any_of, expected, "{patch}");
    // Stateful testing patches a new token with its own settings (the shape of its provider).
    let link = &doc["paths"]["/api/v1/tokens"]["post"]["responses"]["201"]["links"]["patch_token"];
    assert_eq!(
        link["requestBody"]["settings"], "$response.body#/settings",
        "{link}"
    );

    let t = spawn(Db::Sqlite).await;
    let samples = setting_samples();
    let (mut n, mut accepted) = (0, 0);
    let mut disagreements = Vec::new();
    for id in catalog.ids() {
        let shape = &schemas[format!("TokenSettings_{id}")];
        let base = shape["examples"][0]
            .as_object()
            .cloned()
            .unwrap_or_default();
        // No client secret: a change of destination then needs none (see
        // `ops::tokens::guard_destination_change`), so only the settings decide.
        let (s, token) = t
            .admin(
                reqwest::Method::POST,
                "/api/v1/tokens",
                Some(serde_json::json!({"name": format!("p-{id}"), "provider": id, "settings": base})),
            )
            .await;
        assert_eq!(s, 201, "{token}");
        let path = format!("/api/v1/tokens/{}", token["id"].as_str().unwrap());
        let mut cases = vec![base.clone(), serde_json::Map::new()];
        let mut unknown = base.clone();
        unknown.insert("acount".into(), "x".into());
        cases.push(unknown);
        for field in shape["properties"].as_object().unwrap().keys() {
            let mut without = base.clone();
            without.remove(field);
            cases.push(without);
            for value in samples.iter().step_by(2) {
                let mut s = base.clone();
                s.insert(field.clone(), value.clone().into());
                cases.push(s);
            }
        }
        for settings in cases {
            n += 1;
            let documented = settings_ok(shape, &settings);
            let (status, body) = t
                .admin(
                    reqwest::Method::PATCH,
                    &path,
                    Some(serde_json::json!({ "settings": settings })),
                )
                .await;
            assert!(status == 200 || status == 400, "{status} {body}");
            accepted += usize::from(status == 200);
            if documented != (status == 200) {
                disagreements.push(format!(
                    "{id} {settings:?}: documented {documented}, server {status} {body}"
                ));
            }
        }
    }
    assert!(
        disagreements.is_empty(),
        "{} of {n}:\n{}",
        disagreements.len(),
        disagreements.join("\n")
    );
    assert!(
        accepted > 50 && accepted + 50 < n,
        "{accepted} of {n} accepted"
    );
}
