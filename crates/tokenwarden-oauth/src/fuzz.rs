//! Fuzz targets (R35) for what providers and admins hand us: the token endpoint's answer, the
//! pasted `SYSTEM$SHOW_OAUTH_CLIENT_SECRETS` cell and the Snowflake account. Proptest properties
//! with a fixed case budget (`TOKENWARDEN_FUZZ_CASES` for a long run, see
//! `tokenwarden_testkit::fuzz`); each also replays its seed corpus `fuzz/corpus/<target>/`.
//! Failures proptest finds are saved under `proptest-regressions/` and replayed first.

use crate::client::{TokenError, parse_token_response};
use crate::snowflake::{SnowflakeAccount, parse_client_secrets};
use proptest::prelude::*;
use proptest::test_runner::FileFailurePersistence;
use secrecy::ExposeSecret;
use serde_json::{Map, Value, json};
use tokenwarden_testkit::fuzz;

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: fuzz::cases(fuzz::DEFAULT_CASES),
        failure_persistence: Some(Box::new(FileFailurePersistence::SourceParallel(
            "proptest-regressions",
        ))),
        ..ProptestConfig::default()
    }
}

/// Any JSON value, nested a little.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<u64>().prop_map(|n| json!(n)),
        any::<f64>().prop_map(|f| json!(f)),
        ".{0,40}".prop_map(Value::String),
        "[0-9 ]{1,25}".prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 24, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(".{0,10}", inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Random edits of a text: delete, insert, replace a character, or cut it short.
fn mutate(text: &str, edits: &[(prop::sample::Index, u8, char)]) -> String {
    let mut chars: Vec<char> = text.chars().collect();
    for (at, op, c) in edits {
        if chars.is_empty() {
            chars.push(*c);
            continue;
        }
        let i = at.index(chars.len());
        match op % 4 {
            0 => {
                chars.remove(i);
            }
            1 => chars.insert(i, *c),
            2 => chars[i] = *c,
            _ => chars.truncate(i),
        }
    }
    chars.into_iter().collect()
}

fn edits() -> impl Strategy<Value = Vec<(prop::sample::Index, u8, char)>> {
    prop::collection::vec(
        (
            any::<prop::sample::Index>(),
            any::<u8>(),
            prop_oneof![
                Just('"'),
                Just('\\'),
                Just('{'),
                Just('}'),
                Just(','),
                Just(':'),
                any::<char>()
            ],
        ),
        0..4,
    )
}

// ---- the token endpoint's answer ----

const TOKEN_FIELDS: &[&str] = &[
    "access_token",
    "refresh_token",
    "token_type",
    "expires_in",
    "refresh_token_expires_in",
    "scope",
    "username",
    "error",
    "error_description",
    "message",
    "idpInitiated",
    "id_token",
];

fn token_key() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => prop::sample::select(TOKEN_FIELDS).prop_map(str::to_owned),
        1 => ".{0,12}",
    ]
}

fn status() -> impl Strategy<Value = u16> {
    prop_oneof![
        3 => Just(200u16),
        1 => prop::sample::select(&[201u16, 204, 301, 400, 401, 403, 404, 429, 500, 502, 503][..]),
        1 => any::<u16>(),
    ]
}

/// Checks what holds for every answer: a success is a 2xx with a non-empty access token, and
/// the classification can always be asked.
fn check_token_answer(status: u16, body: &str, retry_after: Option<&str>) {
    match parse_token_response(status, body, retry_after) {
        Ok(t) => {
            assert!((200..300).contains(&status), "{status} accepted: {body:?}");
            assert!(!t.access_token.expose_secret().is_empty());
            assert!(
                t.refresh_token
                    .as_ref()
                    .is_none_or(|r| !r.expose_secret().is_empty())
            );
            let _ = format!("{t:?}");
        }
        Err(e) => {
            let _ = (e.is_permanent(), e.to_string());
        }
    }
}

/// The corpus file names start with the HTTP status: `200-snowflake-code-exchange.json`.
#[test]
fn r35_fuzz_token_response_corpus_replays() {
    for (name, bytes) in fuzz::corpus("token_response") {
        let status: u16 = name
            .split('-')
            .next()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("{name}: the name must start with the status"));
        let body = String::from_utf8_lossy(&bytes);
        check_token_answer(status, &body, Some("30"));
        // Every seed that looks like a success from a provider parses as one.
        if name.contains("-ok-") {
            assert!(
                parse_token_response(status, &body, None).is_ok(),
                "{name} must parse"
            );
        }
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn r35_fuzz_token_response_arbitrary_bytes(
        status in any::<u16>(),
        body in prop::collection::vec(any::<u8>(), 0..600),
        retry_after in proptest::option::of(".{0,20}"),
    ) {
        check_token_answer(status, &String::from_utf8_lossy(&body), retry_after.as_deref());
    }

    #[test]
    fn r35_fuzz_token_response_json_with_random_fields_and_types(
        status in status(),
        fields in prop::collection::btree_map(token_key(), json_value(), 0..10),
        edits in edits(),
    ) {
        let body = Value::Object(fields.clone().into_iter().collect::<Map<_, _>>()).to_string();
        check_token_answer(status, &body, None);
        check_token_answer(status, &mutate(&body, &edits), None);
    }

    /// A well-formed success with any extra fields of any type reads back the same values, and
    /// no answer, success or failure, shows the tokens in its `Debug` or error text (R23).
    #[test]
    fn r35_fuzz_token_response_round_trips_and_hides_tokens(
        access in "[A-Za-z0-9._~+/-]{16,64}",
        refresh in proptest::option::of("[A-Za-z0-9._~+/-]{16,64}"),
        expires_in in proptest::option::of(0u64..10_000_000),
        expires_as in 0u8..3,
        extra in prop::collection::btree_map("x_[a-z]{1,8}", json_value(), 0..5),
        status in status(),
    ) {
        let access = format!("AT-{access}");
        let refresh = refresh.map(|r| format!("RT-{r}"));
        let mut body: Map<String, Value> = extra.into_iter().collect();
        body.insert("access_token".into(), json!(access));
        body.insert("token_type".into(), json!("Bearer"));
        if let Some(r) = &refresh {
            body.insert("refresh_token".into(), json!(r));
        }
        if let Some(e) = expires_in {
            body.insert("expires_in".into(), match expires_as {
                0 => json!(e),
                1 => json!(e.to_string()),
                _ => json!(e as f64),
            });
        }
        let text = Value::Object(body).to_string();
        match parse_token_response(status, &text, None) {
            Ok(t) => {
                prop_assert!((200..300).contains(&status));
                prop_assert_eq!(t.access_token.expose_secret(), access.as_str());
                prop_assert_eq!(t.refresh_token.as_ref().map(|r| r.expose_secret().to_owned()), refresh.clone());
                prop_assert_eq!(t.expires_in, expires_in);
                let debug = format!("{t:?}");
                prop_assert!(!debug.contains(&access));
                prop_assert!(refresh.as_ref().is_none_or(|r| !debug.contains(r.as_str())));
            }
            Err(e) => {
                prop_assert!(!(200..300).contains(&status), "{}: {:?}", status, e);
                let shown = format!("{e} {e:?}");
                prop_assert!(!shown.contains(&access), "{}", shown);
                prop_assert!(refresh.as_ref().is_none_or(|r| !shown.contains(r.as_str())));
                let classified = matches!(e, TokenError::Refused { .. } | TokenError::Transient(_));
                prop_assert!(classified);
            }
        }
    }
}

// ---- the pasted SYSTEM$SHOW_OAUTH_CLIENT_SECRETS cell ----

fn check_paste(pasted: &str) {
    match parse_client_secrets(pasted) {
        Ok(c) => {
            assert!(!c.client_id.is_empty());
            assert!(!c.client_secret.expose_secret().is_empty());
            let _ = format!("{c:?}");
        }
        Err(e) => assert!(
            e.to_string().contains("SYSTEM$SHOW_OAUTH_CLIENT_SECRETS"),
            "every refusal says what to paste: {e}"
        ),
    }
}

#[test]
fn r35_fuzz_client_secrets_corpus_replays() {
    for (name, bytes) in fuzz::corpus("client_secrets") {
        let text = String::from_utf8_lossy(&bytes);
        check_paste(&text);
        if name.starts_with("ok-") {
            let c = parse_client_secrets(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert!(!c.client_id.is_empty(), "{name}");
        }
    }
}

/// Client ids and secrets as Snowflake prints them (base64), long enough to be unmistakable.
fn b64_value() -> impl Strategy<Value = String> {
    "[A-Za-z0-9+/]{12,44}={0,2}"
}

/// How admins paste the cell: as is, padded, quoted by a worksheet export, after the query.
fn pasted_shape(json: &str, shape: u8) -> String {
    match shape % 6 {
        0 => json.to_owned(),
        1 => format!("  \n{json}\n\t "),
        2 => format!("\"{}\"", json.replace('"', "\"\"")),
        3 => format!("'{json}'"),
        4 => format!("SYSTEM$SHOW_OAUTH_CLIENT_SECRETS('TW_X')\n{json}\n"),
        _ => json.replace('"', "\\\""),
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn r35_fuzz_client_secrets_arbitrary_text(text in any::<String>(), bytes in prop::collection::vec(any::<u8>(), 0..400)) {
        check_paste(&text);
        check_paste(&String::from_utf8_lossy(&bytes));
        check_paste(&format!("{{{text}}}"));
    }

    /// A generated cell in every pasted shape gives back its id and secrets; the same cell
    /// randomly edited never panics and a refusal never quotes a secret.
    #[test]
    fn r35_fuzz_client_secrets_round_trip_and_mutations(
        id in b64_value(),
        secret in b64_value(),
        secret_2 in proptest::option::of(b64_value()),
        extra in prop::collection::btree_map("[A-Z_]{1,12}", json_value(), 0..3),
        shape in any::<u8>(),
        edits in edits(),
    ) {
        let mut cell: Map<String, Value> = extra
            .into_iter()
            .filter(|(k, _)| !k.starts_with("OAUTH_CLIENT_"))
            .collect();
        cell.insert("OAUTH_CLIENT_ID".into(), json!(id));
        cell.insert("OAUTH_CLIENT_SECRET".into(), json!(secret));
        if let Some(s2) = &secret_2 {
            cell.insert("OAUTH_CLIENT_SECRET_2".into(), json!(s2));
        }
        let json = Value::Object(cell).to_string();
        // Extra values of any type may hold quotes that the quoted shapes cannot carry: the
        // round trip is checked on the plain shapes, and on every shape without extras.
        let pasted = pasted_shape(&json, shape);
        if let Ok(c) = parse_client_secrets(&pasted) {
            prop_assert_eq!(&c.client_id, &id);
            prop_assert_eq!(c.client_secret.expose_secret(), secret.as_str());
            prop_assert_eq!(c.client_secret_2.as_ref().map(|s| s.expose_secret().to_owned()), secret_2.clone());
        } else {
            prop_assert!(shape % 6 >= 2, "the plain shapes always parse: {}", pasted);
        }
        let mutated = mutate(&pasted, &edits);
        if let Err(e) = parse_client_secrets(&mutated) {
            let e = e.to_string();
            for s in [Some(&secret), secret_2.as_ref()].into_iter().flatten() {
                prop_assert!(!e.contains(s.as_str()), "the refusal quotes a secret: {}", e);
            }
        }
        check_paste(&mutated);
    }

    #[test]
    fn r35_fuzz_client_secrets_every_shape_of_a_plain_cell(
        id in b64_value(),
        secret in b64_value(),
        secret_2 in proptest::option::of(b64_value()),
        shape in any::<u8>(),
    ) {
        let mut cell = json!({"OAUTH_CLIENT_ID": id, "OAUTH_CLIENT_SECRET": secret});
        if let Some(s2) = &secret_2 {
            cell["OAUTH_CLIENT_SECRET_2"] = json!(s2);
        }
        let c = parse_client_secrets(&pasted_shape(&cell.to_string(), shape))
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(&c.client_id, &id);
        prop_assert_eq!(c.client_secret.expose_secret(), secret.as_str());
        prop_assert_eq!(c.client_secret_2.map(|s| s.expose_secret().to_owned()), secret_2);
    }
}

// ---- the Snowflake account ----

fn check_account(input: &str) {
    if let Ok(a) = SnowflakeAccount::parse(input) {
        let https = a.base_url.starts_with("https://")
            && (a.base_url.ends_with(".snowflakecomputing.com")
                || a.base_url.ends_with(".snowflakecomputing.cn"));
        assert!(
            https || a.base_url.starts_with("http://"),
            "{input:?} -> {a:?}"
        );
        let authority = a.base_url.split_once("://").map_or("", |(_, r)| r);
        assert!(
            !authority.contains(['@', '/', '?', '#']),
            "{input:?} -> {a:?}"
        );
        if https {
            assert!(
                authority
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.'),
                "{input:?} -> {a:?}"
            );
        }
        assert!(!a.identifier.is_empty());
        // What was accepted is accepted again as the same account.
        assert_eq!(
            SnowflakeAccount::parse(&a.base_url).map(|b| b.base_url),
            Ok(a.base_url.clone()),
            "{input:?}"
        );
    }
}

#[test]
fn r35_fuzz_snowflake_account_corpus_replays() {
    for (name, bytes) in fuzz::corpus("snowflake_account") {
        let text = String::from_utf8_lossy(&bytes);
        let input = text.trim_end_matches('\n');
        check_account(input);
        if name.starts_with("ok-") {
            assert!(SnowflakeAccount::parse(input).is_ok(), "{name}: {input:?}");
        } else if name.starts_with("bad-") {
            assert!(SnowflakeAccount::parse(input).is_err(), "{name}: {input:?}");
        }
    }
}

/// An account identifier in one of Snowflake's forms: `locator[.region[.cloud]]`,
/// `org-account[.privatelink]`.
fn identifier() -> impl Strategy<Value = String> {
    prop_oneof![
        (
            "[a-z][a-z0-9]{0,11}",
            prop::collection::vec("[a-z0-9][a-z0-9-]{0,11}", 0..3)
        )
            .prop_map(|(l, r)| std::iter::once(l).chain(r).collect::<Vec<_>>().join(".")),
        (
            "[a-z][a-z0-9]{0,11}-[a-z][a-z0-9_]{0,11}",
            proptest::option::of(Just("privatelink"))
        )
            .prop_map(|(o, p)| p.map_or(o.clone(), |p| format!("{o}.{p}"))),
    ]
}

fn mixed_case(s: &str, mask: u64) -> String {
    s.chars()
        .enumerate()
        .map(|(i, c)| {
            if mask >> (i % 64) & 1 == 1 {
                c.to_ascii_uppercase()
            } else {
                c
            }
        })
        .collect()
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn r35_fuzz_snowflake_account_arbitrary_text(text in any::<String>(), url_like in "(https?://)?[ -~]{0,40}") {
        check_account(&text);
        check_account(&url_like);
    }

    /// A generated account, written the ways admins paste it, parses to the same identifier
    /// and base URL.
    #[test]
    fn r35_fuzz_snowflake_account_round_trips(
        id in identifier(),
        mask in any::<u64>(),
        form in 0u8..6,
        cn in any::<bool>(),
    ) {
        let written = mixed_case(&id, mask);
        let suffix = if cn && form != 0 { ".snowflakecomputing.cn" } else { ".snowflakecomputing.com" };
        let input = match form {
            0 => written.clone(),
            1 => format!("{written}{suffix}"),
            2 => format!("https://{written}{suffix}"),
            3 => format!("https://{written}{suffix}/console#/internal/worksheet"),
            4 => format!("  https://{written}{suffix}/  \n"),
            _ => format!("\t{written}{suffix}?x=1"),
        };
        let a = SnowflakeAccount::parse(&input).map_err(|e| TestCaseError::fail(format!("{input:?}: {e}")))?;
        prop_assert_eq!(&a.identifier, &id, "{}", input);
        prop_assert_eq!(&a.base_url, &format!("https://{}{suffix}", id.replace('_', "-")), "{}", input);
        if suffix.ends_with(".com") {
            prop_assert_eq!(SnowflakeAccount::parse(&a.identifier), Ok(a.clone()));
        }
        check_account(&input);
    }

    #[test]
    fn r35_fuzz_snowflake_account_snowsight_and_emulator_urls(
        org in "[a-z][a-z0-9]{0,11}",
        acct in "[a-z0-9][a-z0-9_]{0,11}",
        port in 1u16..,
        host in prop::sample::select(&["127.0.0.1", "localhost"][..]),
    ) {
        let a = SnowflakeAccount::parse(&format!("https://app.snowflake.com/{org}/{acct}/#/homepage"))
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(a.identifier, format!("{org}-{acct}"));
        let local = SnowflakeAccount::parse(&format!("http://{host}:{port}/"))
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(local.base_url, format!("http://{host}:{port}"));
    }
}
