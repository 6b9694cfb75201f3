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
