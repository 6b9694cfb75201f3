//! What the handlers' annotations cannot say, added to the generated OpenAPI document (issue 15
//! item 3), so that a generated client, and schemathesis, see the API as it really behaves:
//!
//! - `POST /apps/{id}/keys` takes its body optionally (an empty POST makes a key labelled
//!   `key`): the handler reads the bytes itself; so does `POST /admin-tokens`.
//! - a channel's settings depend on its kind: `oneOf` a webhook (with its `url`) or an email
//!   channel (with its recipients), told apart by `kind`, as `ops::channels::Target` holds them.
//! - a token's settings depend on its provider: `CreateToken` is `oneOf` one shape per provider
//!   of this instance's catalog (built-in and the admin's own templates), told apart by
//!   `provider`, each with exactly the settings that provider accepts and requires
//!   (`TokenSettings_<provider>`, from `tokenwarden_oauth::schema`, next to the rules
//!   `ops::tokens::check_token` applies).
//! - `PATCH /tokens/{id}`'s `settings` is `anyOf` those same shapes (or null). Why not one
//!   shape chosen by the provider, as at creation: the provider is not in the request. It is
//!   the token's (found by the path's `id`; it never changes), and JSON Schema can only choose
//!   a branch by what the instance itself holds. A discriminator would need a `provider` field
//!   in every PATCH that the server could only compare with the token's and refuse: an input
//!   that adds nothing but a way to be wrong. `anyOf` is as precise as the schema can be about
//!   a body alone: settings that fit no provider are refused for certain; settings that fit
//!   another provider than the token's are refused with 400 (documented), and the server
//!   checks the whole token that results, with the rules of creation (`check_token`). The link
//!   from a new token to its PATCH carries the token's own settings, so stateful testing
//!   sends settings of the right shape.
//! - the pasted Snowflake cell has an example the server accepts.
//! - `links` from each operation that creates an object to every operation on that object, by
//!   the `id` of the 201 answer, so stateful testing walks from creation to change and deletion;
//!   and from a new app to the creation of its own tokens and channels (by its name), from a
//!   new token to reading it by name.

use serde_json::{Map, Value, json};
use tokenwarden_oauth::Catalog;

/// Finishes the generated document for an instance with this provider catalog (see the
/// module's documentation).
pub fn finish(mut doc: Value, catalog: &Catalog) -> Value {
    if let Some(body) = doc
        .pointer_mut("/paths/~1api~1v1~1apps~1{id}~1keys/post/requestBody")
        .and_then(Value::as_object_mut)
    {
        body.insert("required".into(), Value::Bool(false));
    }
    if let Some(schema) = doc.pointer_mut(
        "/paths/~1api~1v1~1tokens~1{id}~1client-secrets/post/requestBody/content/text~1plain/schema",
    ) {
        schema["minLength"] = json!(1);
        schema["examples"] = json!([PASTED_CELL, format!("\"{}\"", PASTED_CELL.replace('"', "\"\""))]);
    }
    // Likewise `POST /admin-tokens` (an empty POST makes a token labelled `api`).
    if let Some(body) = doc
        .pointer_mut("/paths/~1api~1v1~1admin-tokens/post/requestBody")
        .and_then(Value::as_object_mut)
    {
        body.insert("required".into(), Value::Bool(false));
    }
    channel_kinds(&mut doc);
    token_providers(&mut doc, catalog);
    links(&mut doc);
    doc
}

/// What `SELECT SYSTEM$SHOW_OAUTH_CLIENT_SECRETS('...')` prints (made-up values).
const PASTED_CELL: &str = r#"{"OAUTH_CLIENT_SECRET_2":"kS9vLx2q4TnR7wZ1bYcM3dF6gH8jK0pA5sE9uV2xC4=","OAUTH_CLIENT_SECRET":"q7PzN3mW8rT1vB5yX2cL9kJ4hG6fD0sA3eR7uY1iO5=","OAUTH_CLIENT_ID":"kMoBQd6lZ0iRIB5W+LjzHc3CQqM="}"#;

/// `CreateToken` as one shape per provider of the catalog, by `provider`: each with that
/// provider's settings (`tokenwarden_oauth::schema::settings_schema`).
fn token_providers(doc: &mut Value, catalog: &Catalog) {
    let Some(schemas) = doc
        .pointer_mut("/components/schemas")
        .and_then(Value::as_object_mut)
    else {
        return;
    };
    let Some(Value::Object(flat)) = schemas.get("CreateToken").cloned() else {
        return;
    };
    let props = flat
        .get("properties")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    let mut variants = Vec::new();
    let mut mapping = Map::new();
    let mut shapes = Vec::new();
    for t in catalog.all() {
        let (settings, needed) = tokenwarden_oauth::schema::settings_schema(t);
        let settings_name = format!("TokenSettings_{}", t.id);
        let settings_ref = json!({"$ref": format!("#/components/schemas/{settings_name}")});
        schemas.insert(settings_name, settings);
        shapes.push(settings_ref.clone());
        let mut p = props.clone();
        p.insert(
            "provider".into(),
            json!({"type": "string", "enum": [t.id], "description": format!("`{}`: {}", t.id, t.display_name)}),
        );
        p.insert("settings".into(), settings_ref);
        let mut required = vec!["name", "provider"];
        if needed {
            required.push("settings");
        }
        let name = format!("CreateToken_{}", t.id);
        let reference = format!("#/components/schemas/{name}");
        schemas.insert(
            name,
            json!({
                "type": "object",
                "additionalProperties": false,
                "required": required,
                "properties": p,
            }),
        );
        variants.push(json!({"$ref": reference}));
        mapping.insert(t.id.clone(), Value::String(reference));
    }
    schemas.insert(
        "CreateToken".into(),
        json!({
            "description": "A token of one of the providers of `GET /api/v1/providers`, by \
                            `provider`, with that provider's settings: the required ones must \
                            be given (not blank), no others are accepted.",
            "oneOf": variants,
            "discriminator": {"propertyName": "provider", "mapping": mapping},
        }),
    );
    // A PATCH's settings: the shape of the token's own provider, which the request does not
    // name (see the module's documentation): any of the shapes, or null (no change).
    if let Some(settings) = schemas
        .get_mut("PatchToken")
        .and_then(|p| p.pointer_mut("/properties/settings"))
    {
        shapes.push(json!({"type": "null"}));
        *settings = json!({
            "description": "Replaces all connection settings, with the settings of the token's \
                            own provider (one of these shapes, the one of its `provider`: the \
                            required ones given, no others; 400 `invalid_request` naming what \
                            is wrong if they do not fit that provider). `null` or left out: \
                            unchanged.",
            "anyOf": shapes,
        });
    }
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

/// Request body fields a link to an operation on the new object carries (merged into what
/// the generator makes): a token's PATCH gets the token's own settings, the shape of its
/// provider (the document cannot tell which of the shapes it is: see the module's
/// documentation).
const LINK_BODIES: &[(&str, &[Param])] =
    &[("patch_token", &[("settings", "$response.body#/settings")])];

/// Links from a creating operation's 201 to an operation elsewhere. A new app's name makes
/// app-level tokens and a per-app channel; a new token is read by its name (as its app, for an
/// app-level one).
/// A link to an operation elsewhere (see [`ELSEWHERE`]).
struct Elsewhere {
    /// The path of the creating operation.
    from: &'static str,
    /// The target's operationId.
    target: &'static str,
    name: &'static str,
    params: &'static [Param],
    /// Request body fields, merged into what the generator makes.
    body: &'static [Param],
}

const ELSEWHERE: &[Elsewhere] = &[
    Elsewhere {
        from: "/api/v1/apps",
        target: "create_token",
        name: "create_app_token",
        params: &[],
        body: &[("app", "$response.body#/name")],
    },
    Elsewhere {
        from: "/api/v1/apps",
        target: "create_channel",
        name: "create_app_channel",
        params: &[],
        body: &[("app", "$response.body#/name")],
    },
    Elsewhere {
        from: "/api/v1/tokens",
        target: "read_access_token",
        name: "read_access_token",
        params: &[
            ("name", "$response.body#/name"),
            ("query.app", "$response.body#/app"),
        ],
        body: &[],
    },
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
                let parameters = to_map(params);
                let mut link = json!({
                    "operationId": id,
                    "parameters": parameters,
                    "description": format!("{} {path} on the object just created", method.to_uppercase()),
                });
                if let Some((_, body)) = LINK_BODIES.iter().find(|(target, _)| *target == id) {
                    link["requestBody"] = Value::Object(to_map(body));
                }
                links.insert(id.to_owned(), link);
            }
        }
        for Elsewhere {
            from,
            target,
            name,
            params,
            body,
        } in ELSEWHERE
        {
            if from != create {
                continue;
            }
            let mut link = json!({
                "operationId": target,
                "parameters": to_map(params),
                "description": format!("{target} with what was just created"),
            });
            if !body.is_empty() {
                link["requestBody"] = Value::Object(to_map(body));
            }
            links.insert((*name).to_owned(), link);
        }
        let pointer = format!("/paths/{}/post/responses/201", create.replace('/', "~1"));
        if let Some(created) = doc.pointer_mut(&pointer).and_then(Value::as_object_mut) {
            created.insert("links".into(), Value::Object(links));
        }
    }
}

fn to_map(params: &[Param]) -> Map<String, Value> {
    params
        .iter()
        .map(|(k, v)| ((*k).to_owned(), Value::String((*v).to_owned())))
        .collect()
}
