//! Issue 15: concurrent writers over HTTP, and the rules of a whole token after a PATCH.
//!
//! A write that sends no `version` means "apply to the current state": however many writers
//! hit one object at once, none is answered 409 and none is lost. Only a client whose own
//! `version` is stale is told so (409 `version_mismatch`).

use crate::support::{Db, TestApp, spawn};
use reqwest::Method;
use serde_json::{Value, json};

on_both_databases!(
    threaded: issue15_item1_concurrent_writes_without_a_version_all_apply_and_a_stale_version_is_409,
);
on_both_databases!(
    issue15_item2_a_patch_that_leaves_a_token_incomplete_is_refused_and_changes_nothing,
    issue15_item2_each_providers_required_settings_survive_a_patch,
);

/// Sends all `requests` at once (each on its own task) and answers their statuses and bodies
/// in the order given.
async fn all_at_once(t: &TestApp, requests: Vec<(Method, String, Value)>) -> Vec<(u16, Value)> {
    let tasks: Vec<_> = requests
        .into_iter()
        .map(|(method, path, body)| {
            let (http, url) = (t.http.clone(), t.url(&path));
            tokio::spawn(async move {
                let res = http
                    .request(method, url)
                    .bearer_auth(crate::support::ADMIN)
                    .json(&body)
                    .send()
                    .await
                    .unwrap();
                let status = res.status().as_u16();
                (status, res.json::<Value>().await.unwrap_or(Value::Null))
            })
        })
        .collect();
    let mut out = Vec::new();
    for task in tasks {
        out.push(task.await.unwrap());
    }
    out
}

fn assert_all_ok(what: &str, answers: &[(u16, Value)]) {
    let refused: Vec<_> = answers.iter().filter(|(s, _)| *s != 200).collect();
    assert!(
        refused.is_empty(),
        "{what}: {} of {} refused: {refused:?}",
        refused.len(),
        answers.len()
    );
}

async fn issue15_item1_concurrent_writes_without_a_version_all_apply_and_a_stale_version_is_409(
    db: Db,
) {
    let t = spawn(db).await;
    let (app, token) = t.seed().await;
    let (s, channel) = t
        .admin(
            Method::POST,
            "/api/v1/notification-channels",
            Some(json!({"name": "ops-hook", "kind": "webhook", "url": "http://127.0.0.1:9/hook"})),
        )
        .await;
    assert_eq!(s, 201, "{channel}");
    assert_eq!(channel["version"], 1, "{channel}");
    let (app_id, token_id, channel_id) = (
        app["id"].as_str().unwrap(),
        token["id"].as_str().unwrap(),
        channel["id"].as_str().unwrap(),
    );

    // Apps: stop, start and PATCH (the tokens it uses) at once, 24 of them.
    let app_calls = (0..24)
        .map(|i| match i % 3 {
            0 => (
                Method::POST,
                format!("/api/v1/apps/{app_id}/stop"),
                json!({}),
            ),
            1 => (
                Method::POST,
                format!("/api/v1/apps/{app_id}/start"),
                json!({}),
            ),
            _ => (
                Method::PATCH,
                format!("/api/v1/apps/{app_id}"),
                json!({"tokens": ["snowflake-sales", format!("extra-{i}")]}),
            ),
        })
        .collect();
    assert_all_ok("apps", &all_at_once(&t, app_calls).await);

    // Tokens: 40 PATCHes of the client id at once (the issue's case), each a different value,
    // so each is a write: all apply, one after the other.
    let token_calls = (0..40)
        .map(|i| {
            (
                Method::PATCH,
                format!("/api/v1/tokens/{token_id}"),
                json!({"client_id": format!("client-{i}")}),
            )
        })
        .collect();
    assert_all_ok("tokens", &all_at_once(&t, token_calls).await);
    let (_, after) = t
        .admin(Method::GET, &format!("/api/v1/tokens/{token_id}"), None)
        .await;
    assert_eq!(after["version"], 41, "every edit applied once: {after}");

    // Channels: 20 PATCHes at once, of different fields; none may undo another.
    let channel_calls = (0..20)
        .map(|i| {
            let body = match i {
                0 => json!({"name": "renamed"}),
                1 => json!({"url": "http://127.0.0.1:9/other"}),
                2 => json!({"events": ["token.expiring"]}),
                _ => json!({"enabled": i % 2 == 0}),
            };
            (
                Method::PATCH,
                format!("/api/v1/notification-channels/{channel_id}"),
                body,
            )
        })
        .collect();
    assert_all_ok("channels", &all_at_once(&t, channel_calls).await);
    let (_, list) = t
        .admin(Method::GET, "/api/v1/notification-channels", None)
        .await;
    let after = list
        .as_array()
        .and_then(|l| l.iter().find(|c| c["id"] == channel_id))
        .or_else(|| {
            list["items"]
                .as_array()?
                .iter()
                .find(|c| c["id"] == channel_id)
        })
        .unwrap_or_else(|| panic!("channel not listed: {list}"))
        .clone();
    assert_eq!(after["name"], "renamed", "{after}");
    assert_eq!(after["url"], "http://127.0.0.1:9/other", "{after}");
    assert_eq!(after["events"], json!(["token.expiring"]), "{after}");
    assert_eq!(after["version"], 21, "every edit applied once: {after}");

    // A client that sends its own version, now stale, is told; nothing changes.
    for (path, body) in [
        (
            format!("/api/v1/apps/{app_id}"),
            json!({"name": "late", "version": 1}),
        ),
        (
            format!("/api/v1/tokens/{token_id}"),
            json!({"client_id": "late", "version": 1}),
        ),
        (
            format!("/api/v1/notification-channels/{channel_id}"),
            json!({"name": "late", "version": 1}),
        ),
    ] {
        let (s, e) = t.admin(Method::PATCH, &path, Some(body)).await;
        assert_eq!(
            (s, e["code"].as_str()),
            (409, Some("version_mismatch")),
            "{path}: {e}"
        );
    }
    // And one whose version is current applies.
    let (s, e) = t
        .admin(
            Method::PATCH,
            &format!("/api/v1/notification-channels/{channel_id}"),
            Some(json!({"name": "current", "version": 21})),
        )
        .await;
    assert_eq!((s, e["version"].as_i64()), (200, Some(22)), "{e}");
}

async fn issue15_item2_a_patch_that_leaves_a_token_incomplete_is_refused_and_changes_nothing(
    db: Db,
) {
    let t = spawn(db).await;
    let (s, tok) = t
        .admin(
            Method::POST,
            "/api/v1/tokens",
            Some(json!({"name": "generic", "provider": "oauth2",
                "settings": {"authorization_url": "https://auth.example.com/authorize",
                             "token_url": "https://auth.example.com/token"},
                "client_id": "c", "client_secret": "s3cret"})),
        )
        .await;
    assert_eq!(s, 201, "{tok}");
    let path = format!("/api/v1/tokens/{}", tok["id"].as_str().unwrap());
    // The issue's case: the settings emptied with a new secret.
    for body in [
        json!({"settings": {}, "client_secret": "another-secret"}),
        json!({"settings": {"authorization_url": "https://auth.example.com/authorize"}}),
    ] {
        let (s, e) = t.admin(Method::PATCH, &path, Some(body.clone())).await;
        assert_eq!(
            (s, e["code"].as_str()),
            (400, Some("invalid_request")),
            "{body}: {e}"
        );
        assert!(
            e["message"].as_str().unwrap().contains("token_url")
                || e["message"].as_str().unwrap().contains("authorization_url"),
            "{e}"
        );
    }
    let (_, now) = t.admin(Method::GET, &path, None).await;
    assert_eq!(now["settings"], tok["settings"], "nothing changed: {now}");
    assert_eq!(now["version"], tok["version"], "nothing changed: {now}");

    // Creation follows the same rule (issue 11 item 12): a Snowflake token needs its account
    // and role, an oauth2 token its endpoints.
    for body in [
        json!({"name": "sf", "provider": "snowflake"}),
        json!({"name": "sf", "provider": "snowflake", "settings": {"account": "xy12345.us-east-1"}}),
        json!({"name": "o", "provider": "oauth2", "client_secret": "s"}),
    ] {
        let (s, e) = t
            .admin(Method::POST, "/api/v1/tokens", Some(body.clone()))
            .await;
        assert_eq!(
            (s, e["code"].as_str()),
            (400, Some("invalid_request")),
            "{body}: {e}"
        );
    }
    let (_, list) = t.admin(Method::GET, "/api/v1/tokens", None).await;
    let names = list.to_string();
    assert!(
        !names.contains("\"sf\"") && !names.contains("\"o\""),
        "{list}"
    );
}

/// Issue 15 item 2, for every provider of the catalog: a PATCH keeps the provider's required
/// settings (those without a default). Emptying the settings, leaving one out or blanking it
/// is refused with the creation rule's message naming it, and changes nothing; a provider
/// without required settings takes `{}`.
async fn issue15_item2_each_providers_required_settings_survive_a_patch(db: Db) {
    let t = spawn(db).await;
    let catalog = tokenwarden_oauth::Catalog::built_in();
    let mut providers_with_required = 0;
    for (n, provider) in catalog.all().enumerate() {
        let needed: Vec<_> = provider
            .fields
            .iter()
            .filter(|f| f.required && f.default.is_none())
            .collect();
        let base: serde_json::Map<String, Value> = needed
            .iter()
            .map(|f| {
                let example = f.example.clone().unwrap_or_else(|| {
                    panic!("{}: {} has no example to create with", provider.id, f.name)
                });
                (f.name.clone(), Value::String(example))
            })
            .collect();
        let (s, tok) = t
            .admin(
                Method::POST,
                "/api/v1/tokens",
                Some(json!({"name": format!("t{n}"), "provider": provider.id,
                    "settings": base, "client_id": "c", "client_secret": "s3cret"})),
            )
            .await;
        assert_eq!(s, 201, "{}: {tok}", provider.id);
        let path = format!("/api/v1/tokens/{}", tok["id"].as_str().unwrap());

        let mut refused = vec![(
            json!({"settings": {}, "client_secret": "another-secret"}),
            needed.first().map(|f| f.name.clone()),
        )];
        for f in &needed {
            let mut without = base.clone();
            without.remove(&f.name);
            refused.push((json!({"settings": without}), Some(f.name.clone())));
            let mut blank = base.clone();
            blank.insert(f.name.clone(), "  ".into());
            refused.push((
                json!({"settings": blank, "client_id": "other"}),
                Some(f.name.clone()),
            ));
        }
        for (body, missing) in refused {
            let (s, e) = t.admin(Method::PATCH, &path, Some(body.clone())).await;
            match missing {
                Some(field) => {
                    assert_eq!(
                        (s, e["code"].as_str()),
                        (400, Some("invalid_request")),
                        "{}: {body}: {e}",
                        provider.id
                    );
                    assert!(
                        e["message"].as_str().unwrap().contains(&field),
                        "{}: {body}: the message names {field}: {e}",
                        provider.id
                    );
                }
                // Nothing required: `{}` is a complete set of settings.
                None => assert_eq!(s, 200, "{}: {body}: {e}", provider.id),
            }
        }
        let (_, now) = t.admin(Method::GET, &path, None).await;
        if !needed.is_empty() {
            providers_with_required += 1;
            assert_eq!(
                (&now["settings"], &now["version"], &now["client_id"]),
                (&tok["settings"], &tok["version"], &tok["client_id"]),
                "{}: nothing changed",
                provider.id
            );
        }
    }
    // Snowflake (account, role) and oauth2 (the two endpoints) at least.
    assert!(providers_with_required >= 2, "{providers_with_required}");
}
