//! What the handlers' annotations cannot say, added to the generated OpenAPI document (issue 15
//! item 3), so that a generated client, and schemathesis, see the API as it really behaves:
//!
//! - `POST /apps/{id}/keys` takes its body optionally (an empty POST makes a key labelled
//!   `key`): the handler reads the bytes itself; so does `POST /admin-tokens`.
//! - a channel's settings depend on its kind: `oneOf` a webhook (with its `url`) or an email
//!   channel (with its recipients), told apart by `kind`, as `ops::channels::Target` holds them.
//! - `links` from each operation that creates an object to every operation on that object, by
//!   the `id` of the 201 answer, so stateful testing walks from creation to change and deletion.

use serde_json::{Map, Value, json};

/// Finishes the generated document (see the module's documentation).
pub fn finish(mut doc: Value) -> Value {
    if let Some(body) = doc
        .pointer_mut("/paths/~1api~1v1~1apps~1{id}~1keys/post/requestBody")
        .and_then(Value::as_object_mut)
    {
        body.insert("required".into(), Value::Bool(false));
    }
    // Likewise `POST /admin-tokens` (an empty POST makes a token labelled `api`).
    if let Some(body) = doc
        .pointer_mut("/paths/~1api~1v1~1admin-tokens/post/requestBody")
        .and_then(Value::as_object_mut)
    {
        body.insert("required".into(), Value::Bool(false));
    }
    channel_kinds(&mut doc);
    links(&mut doc);
    doc
}

/// `CreateChannel` as the two shapes the server accepts, by `kind`.
fn channel_kinds(doc: &mut Value) {
    let Some(schemas) = doc
        .pointer_mut("/components/schemas")
        .and_then(Value::as_object_mut)
    else {
        return;
    };
    let Some(Value::Object(flat)) = schemas.get("CreateChannel").cloned() else {
        return;
    };
    let props = flat
        .get("properties")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    let variant = |kind: &str, drop: &str, required: &[&str]| {
        let mut p: Map<String, Value> = props.clone();
        p.remove(drop);
        p.insert(
            "kind".into(),
            json!({"type": "string", "enum": [kind], "description": format!("`{kind}`")}),
        );
        json!({
            "type": "object",
            "additionalProperties": false,
            "required": required,
            "properties": p,
        })
    };
    let mut webhook = variant("webhook", "to", &["name", "kind", "url"]);
    webhook["properties"]["url"] = json!({
        "type": "string", "format": "uri", "minLength": 1, "maxLength": 2048,
        // Generated URLs are then http(s) with a host, as the server requires (most generated
        // `uri`s were other schemes, so most generated channels were refused).
        "pattern": r"^https?://[a-z0-9][a-z0-9.-]{0,60}(:[1-9][0-9]{0,3})?(/[A-Za-z0-9._~-]{0,40}){0,4}$",
        "description": "Where to POST events: an absolute http or https URL, without credentials.",
        "examples": ["https://hooks.example.com/tokenwarden"]});
    let mut email = variant("email", "url", &["name", "kind", "to"]);
    email["properties"]["to"] = json!({
        "type": "array", "minItems": 1,
        "items": {"type": "string", "format": "email", "minLength": 3, "maxLength": 254},
        "description": "The recipients: at least one address.",
        "examples": [["ops@example.com"]]});
    schemas.insert("CreateWebhookChannel".into(), webhook);
    schemas.insert("CreateEmailChannel".into(), email);
    schemas.insert(
        "CreateChannel".into(),
        json!({
            "description": "A webhook channel (signed the Standard Webhooks way; its signing \
                            secret is answered once) or an email channel, by `kind`.",
            "oneOf": [
                {"$ref": "#/components/schemas/CreateWebhookChannel"},
                {"$ref": "#/components/schemas/CreateEmailChannel"},
            ],
            "discriminator": {
                "propertyName": "kind",
                "mapping": {
                    "webhook": "#/components/schemas/CreateWebhookChannel",
                    "email": "#/components/schemas/CreateEmailChannel",
                },
            },
        }),
    );
}

/// A path parameter of the operations on a new object, and where its value comes from (a
/// runtime expression: the 201 answer's body, or the creating request's path).
type Param = (&'static str, &'static str);

/// The operations that create an object: (path, the path of the new object, the parameters
/// the operations on it take).
const CREATES: &[(&str, &str, &[Param])] = &[
    (
        "/api/v1/apps",
        "/api/v1/apps/{id}",
        &[("id", "$response.body#/id")],
    ),
    (
        "/api/v1/tokens",
        "/api/v1/tokens/{id}",
        &[("id", "$response.body#/id")],
    ),
    (
        "/api/v1/notification-channels",
        "/api/v1/notification-channels/{id}",
        &[("id", "$response.body#/id")],
    ),
    (
        "/api/v1/apps/{id}/keys",
        "/api/v1/apps/{id}/keys/{key_id}",
        &[("id", "$request.path.id"), ("key_id", "$response.body#/id")],
    ),
    (
        "/api/v1/admins",
        "/api/v1/admins/{id}",
        &[("id", "$response.body#/id")],
    ),
    (
        "/api/v1/admin-tokens",
        "/api/v1/admin-tokens/{id}",
        &[("id", "$response.body#/id")],
    ),
];

/// Links from each creating operation's 201 to every operation under the object it made.
fn links(doc: &mut Value) {
    let Some(paths) = doc.get("paths").and_then(Value::as_object).cloned() else {
        return;
    };
    for (create, object, params) in CREATES {
        let mut links = Map::new();
        for (path, item) in &paths {
            let under = path == object
                || path
                    .strip_prefix(object)
                    .is_some_and(|rest| rest.starts_with('/') && !rest.contains('{'));
            if !under {
                continue;
            }
            for (method, op) in item.as_object().into_iter().flatten() {
                let Some(id) = op.get("operationId").and_then(Value::as_str) else {
                    continue;
                };
                let parameters: Map<String, Value> = params
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), Value::String((*v).to_owned())))
                    .collect();
                links.insert(
                    id.to_owned(),
                    json!({
                        "operationId": id,
                        "parameters": parameters,
                        "description": format!("{} {path} on the object just created", method.to_uppercase()),
                    }),
                );
            }
        }
        let pointer = format!("/paths/{}/post/responses/201", create.replace('/', "~1"));
        if let Some(created) = doc.pointer_mut(&pointer).and_then(Value::as_object_mut) {
            created.insert("links".into(), Value::Object(links));
        }
    }
}
