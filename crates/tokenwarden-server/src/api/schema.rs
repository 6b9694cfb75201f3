//! What the request bodies accept, in the OpenAPI document: each from the rule it describes
//! (the domain's name types, its enums), so the document and the checks cannot drift apart.
//! Found by schemathesis (issue 9, item 11): with bare `string`s it generated mostly bodies the
//! API refuses, and so hardly tested anything past the validation.

use tokenwarden_domain::{
    AppName, ChannelKind, ClientAuthMethod, EventKind, Grant, KeyLabel, ProviderId, TokenName,
};
use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, Type};
use utoipa::openapi::{Array, Object};

/// A name type: its pattern and length limits.
fn name(pattern: &str, max: usize, description: &str, example: &str) -> Object {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .pattern(Some(pattern))
        .min_length(Some(1))
        .max_length(Some(max))
        .description(Some(description))
        .examples([example])
        .build()
}

fn nullable(o: ObjectBuilder) -> Object {
    o.schema_type(utoipa::openapi::schema::SchemaType::from_iter([
        Type::String,
        Type::Null,
    ]))
    .build()
}

fn name_builder(pattern: &str, max: usize) -> ObjectBuilder {
    ObjectBuilder::new()
        .pattern(Some(pattern))
        .min_length(Some(1))
        .max_length(Some(max))
}

pub fn token_name() -> Object {
    name(
        TokenName::PATTERN,
        TokenName::MAX_LEN,
        "The name apps fetch the token by: ASCII letters (A-Z, a-z), digits, `-`, `_`, `.`, \
         starting with an ASCII letter or digit.",
        "snowflake-sales",
    )
}

pub fn optional_token_name() -> Object {
    nullable(name_builder(TokenName::PATTERN, TokenName::MAX_LEN))
}

/// An app's tokens.
pub fn token_names() -> Array {
    ArrayBuilder::new()
        .items(name_builder(TokenName::PATTERN, TokenName::MAX_LEN).schema_type(Type::String))
        .description(Some(
            "Names of the tokens the app uses (its own app-level token of that name, else the \
             global one). They need not exist yet.",
        ))
        .examples([serde_json::json!(["snowflake-sales"])])
        .build()
}

pub fn optional_token_names() -> Array {
    ArrayBuilder::new()
        .schema_type(utoipa::openapi::schema::SchemaType::from_iter([
            Type::Array,
            Type::Null,
        ]))
        .items(name_builder(TokenName::PATTERN, TokenName::MAX_LEN).schema_type(Type::String))
        .build()
}

pub fn app_name() -> Object {
    name(
        AppName::PATTERN,
        AppName::MAX_LEN,
        "Unique app name: ASCII letters (A-Z, a-z), digits, `-`, `_`, `.`, starting with an \
         ASCII letter or digit.",
        "sales-invoice",
    )
}

pub fn optional_app_name() -> Object {
    nullable(name_builder(AppName::PATTERN, AppName::MAX_LEN))
}

/// A token's owning app.
pub fn owning_app() -> Object {
    nullable(
        name_builder(AppName::PATTERN, AppName::MAX_LEN)
            .description(Some(
                "Owning app's name: present = an app-level token, absent = a global token.",
            ))
            .examples(["sales-invoice"]),
    )
}

/// A per-app channel's app.
pub fn channel_app() -> Object {
    nullable(
        name_builder(AppName::PATTERN, AppName::MAX_LEN).description(Some(
            "Only events about this app and the tokens it uses (a per-app channel).",
        )),
    )
}

pub fn provider_id() -> Object {
    name(
        ProviderId::PATTERN,
        ProviderId::MAX_LEN,
        "Provider id from `GET /api/v1/providers`: snowflake, microsoft, google, salesforce, \
         github, oauth2, or one of your own templates.",
        "snowflake",
    )
}

pub fn optional_key_label() -> Object {
    nullable(
        name_builder(KeyLabel::PATTERN, KeyLabel::MAX_LEN)
            .description(Some("A label to tell keys apart, e.g. \"production\"."))
            .examples(["production"]),
    )
}

/// A channel's name: 1-100 characters (after trimming), no control characters: the rule of
/// `ops::channels` (`NAME_MAX`, `is_control`).
const CHANNEL_NAME: &str = r"^[^\u0000-\u001F\u007F-\u009F]*[^\s\u0000-\u001F\u007F-\u009F][^\u0000-\u001F\u007F-\u009F]*$";

pub fn channel_name() -> Object {
    name_builder(CHANNEL_NAME, crate::ops::channels::NAME_MAX)
        .schema_type(Type::String)
        .examples(["ops-alerts"])
        .build()
}

pub fn optional_channel_name() -> Object {
    nullable(name_builder(CHANNEL_NAME, crate::ops::channels::NAME_MAX))
}

/// A client secret: 1-4096 characters, not only spaces, no control characters (the rule of
/// `ops::tokens::check_secret`). Write-only.
pub fn client_secret() -> Object {
    nullable(
        name_builder(CHANNEL_NAME, crate::ops::tokens::SECRET_MAX)
            .write_only(true)
            .description(Some("Write-only: never returned.")),
    )
}

/// A client id: 1-512 characters, not only spaces, no control characters (the rule of
/// `ops::tokens::check_client_id`).
pub fn client_id() -> Object {
    nullable(name_builder(
        CHANNEL_NAME,
        crate::ops::tokens::CLIENT_ID_MAX,
    ))
}

/// A channel's kind: `webhook` or `email`.
pub fn channel_kind() -> Object {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .description(Some("`webhook` or `email`."))
        .enum_values(Some(ChannelKind::ALL.iter().map(|k| k.as_str())))
        .build()
}

fn event_kind() -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some(EventKind::ALL.iter().map(|k| k.as_str())))
}

/// Event kinds to send; empty = all.
pub fn event_kinds() -> Array {
    ArrayBuilder::new()
        .items(event_kind())
        .description(Some("Event kinds to send; empty = all."))
        .build()
}

pub fn optional_event_kinds() -> Array {
    ArrayBuilder::new()
        .schema_type(utoipa::openapi::schema::SchemaType::from_iter([
            Type::Array,
            Type::Null,
        ]))
        .items(event_kind())
        .build()
}

/// An admin's username: the rule of `ops::admins::check_username`.
pub fn admin_username() -> Object {
    name(
        r"^[A-Za-z0-9._@-]{1,64}$",
        64,
        "1-64 ASCII letters (A-Z, a-z), digits or `.` `_` `-` `@`.",
        "alice",
    )
}

/// An admin's password: at least `ops::admins::MIN_PASSWORD` characters (at most 1024 bytes).
/// Write-only.
pub fn admin_password() -> Object {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .min_length(Some(crate::ops::admins::MIN_PASSWORD))
        .max_length(Some(256))
        .write_only(true)
        .description(Some(
            "At least 12 characters (at most 1024 bytes). Write-only: never returned.",
        ))
        .build()
}

/// A token's grant: how it gets its access tokens (`tokenwarden_domain::Grant`).
pub fn grant() -> Object {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .description(Some(
            "How the token gets its access tokens: `authorization_code` (an admin signs in; \
             the default), `client_credentials` (machine to machine), `device_code` (sign in on \
             another device), `snowflake_keypair`. The provider must support it (`grants` in \
             `GET /api/v1/providers`); fixed at creation.",
        ))
        .enum_values(Some(Grant::ALL.iter().map(|g| g.as_str())))
        .default(Some(serde_json::json!(Grant::AuthorizationCode.as_str())))
        .build()
}

/// Where a device sign-in stands (`tokenwarden_domain::DeviceFlowStatus`).
pub fn device_flow_status() -> Object {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .description(Some(
            "`pending` (waiting for the person to enter the code; tokenwarden polls the \
             provider), `authorized` (the token holds an access token, apps waiting for it \
             resumed), `denied` (refused at the provider), `expired` (the code expired before \
             anyone approved it: start again), `failed` (the provider refused for another \
             reason, see `error`).",
        ))
        .enum_values(Some(
            tokenwarden_domain::DeviceFlowStatus::ALL
                .iter()
                .map(|s| s.as_str()),
        ))
        .build()
}

fn client_auth_builder() -> ObjectBuilder {
    ObjectBuilder::new()
        .description(Some(
            "How the client authenticates at the token endpoint: `client_secret_basic` (HTTP \
             Basic), `client_secret_post` (in the form), `private_key_jwt` (RFC 7523). Absent or \
             null: the provider's default.",
        ))
        .enum_values(Some(
            ClientAuthMethod::ALL
                .iter()
                .map(|m| serde_json::Value::from(m.as_str()))
                .chain([serde_json::Value::Null]),
        ))
}

/// A token's client authentication method, or null for the provider's default.
pub fn client_auth() -> Object {
    nullable(client_auth_builder())
}

/// An RFC 3339 instant, or null.
pub fn client_secret_expires_at() -> Object {
    nullable(
        ObjectBuilder::new()
            .format(Some(utoipa::openapi::SchemaFormat::KnownFormat(
                utoipa::openapi::KnownFormat::DateTime,
            )))
            .description(Some(
                "When the client secret expires at the provider (RFC 3339), e.g. an Azure \
                 secret's end date: reminders go out before it and the apps using the token \
                 stop at it. Null: unknown or never.",
            ))
            .examples(["2027-06-30T00:00:00Z"]),
    )
}
