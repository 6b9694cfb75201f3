//! What a provider's connection settings accept, as JSON Schema, for the OpenAPI document
//! (issue 15): written next to the rules it describes (`Catalog::check_settings` and
//! `Catalog::resolve`, the Snowflake parsers), so that a generated request is accepted exactly
//! when the server accepts it. The server trims each value, refuses control characters and more
//! than [`VALUE_MAX`] characters, skips a blank optional value, and needs the required ones
//! non-blank; the patterns below say the same. Tested against the server in
//! `tests/api/openapi.rs` (`issue15_item4_*`).
//!
//! Where the document is narrower than the server (on purpose, to keep the patterns readable):
//! a Snowflake account given as the URL of a Snowsight console page, and loopback IPv6
//! addresses spelled other than `[::1]` or with all eight groups, are accepted but not described.

use crate::catalog::{Field, ProviderTemplate};
use crate::snowflake::{BLOCKED_ROLES, MIN_REFRESH_VALIDITY, SUPPORT_MAX_REFRESH_VALIDITY};
use serde_json::{Map, Value, json};

/// The longest setting value, in characters.
pub const VALUE_MAX: usize = 2048;

/// Control characters (`char::is_control`): refused anywhere in a value.
const CTRL: &str = r"\u0000-\u001F\u007F-\u009F";
/// What `str::trim` removes that is not a control character (`char::is_whitespace`).
const WS: &str = r" \u00A0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000";

/// A value the server takes as it is (no pattern, no kind): any text without control
/// characters; a required one must not be blank.
fn free(required: bool) -> String {
    if required {
        format!("^[^{CTRL}]*[^{CTRL}{WS}][^{CTRL}]*$")
    } else {
        format!("^[^{CTRL}]*$")
    }
}

/// `rule` matched by the trimmed value (blank allowed when the setting is optional).
fn trimmed(rule: &str, required: bool) -> String {
    if required {
        format!("^[{WS}]*(?:{rule})[{WS}]*$")
    } else {
        format!("^[{WS}]*(?:(?:{rule})[{WS}]*)?$")
    }
}

/// ASCII letters in either case, as the server compares them (`eq_ignore_ascii_case`,
/// `to_ascii_lowercase`); `.` is escaped.
fn ci(word: &str) -> String {
    word.chars()
        .map(|c| {
            if c.is_ascii_alphabetic() {
                format!("[{}{}]", c.to_ascii_uppercase(), c.to_ascii_lowercase())
            } else if c == '.' {
                r"\.".to_owned()
            } else {
                c.to_string()
            }
        })
        .collect()
}

/// A loopback authority (`tokenwarden_domain::is_loopback_authority`): `localhost`, an IPv4
/// address in 127.0.0.0/8, `[::1]`, with an optional numeric port.
fn loopback_authority() -> String {
    let octet = "(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])";
    format!(
        r"(?:{}|127\.{octet}\.{octet}\.{octet}|\[::1\]|\[(?:0{{1,4}}:){{7}}0{{0,3}}1\])(?::[0-9]+)?",
        ci("localhost")
    )
}

/// An endpoint (`catalog::check_endpoint`): https with a host and no credentials, or http to a
/// loopback authority; no whitespace anywhere.
fn endpoint() -> String {
    let rest = format!("(?:[/?#][^{CTRL}{WS}]*)?");
    format!(
        "https://[^/?#@{CTRL}{WS}]+{rest}|http://{}{rest}",
        loopback_authority()
    )
}

/// A Snowflake account identifier (`SnowflakeAccount::from_identifier`): dot-separated parts
/// of ASCII letters, digits, `_` and `-`, the first starting with a letter, at most 63 long.
fn snowflake_identifier() -> &'static str {
    r"[A-Za-z][A-Za-z0-9_-]{0,62}(?:\.[A-Za-z0-9_-]+)*"
}

/// The Snowflake account, as `SnowflakeAccount::parse` takes it: its identifier, its host
/// (with `https://` and a path if pasted from a browser), or a loopback emulator URL.
fn snowflake_account(required: bool) -> Value {
    let id = snowflake_identifier();
    let suffix = format!(
        r"\.(?:{}|{})",
        ci("snowflakecomputing.com"),
        ci("snowflakecomputing.cn")
    );
    let host = format!("(?:https://)?{id}{suffix}(?:[/?#][^{CTRL}]*)?");
    let emulator = format!("http://{}(?:[/?#][^{CTRL}]*)?", loopback_authority());
    // A bare identifier: not one that names Snowflake's domain or Snowsight's host.
    let bare = format!("(?:https://)?{id}");
    let not_bare = format!(
        "^[{WS}]*(?:https://)?(?:[^/?#]*{}[^/?#]*|{})[{WS}]*$",
        ci("snowflakecomputing"),
        ci("app.snowflake.com")
    );
    json!({
        "anyOf": [
            {"pattern": trimmed(&format!("{host}|{emulator}"), required)},
            {"pattern": trimmed(&bare, required), "not": {"pattern": not_bare}},
        ]
    })
}

/// A Snowflake role (`SnowflakeRole::parse`): a name of up to 255 characters, or one in double
/// quotes kept exactly; never a role Snowflake blocks for OAuth.
fn snowflake_role(required: bool) -> Value {
    let plain = format!("[^\"{CTRL}{WS}](?:[^\"{CTRL}]{{0,253}}[^\"{CTRL}{WS}])?");
    let quoted = format!("\"[^{CTRL}]{{1,255}}\"");
    let blocked = BLOCKED_ROLES
        .iter()
        .map(|r| ci(r))
        .collect::<Vec<_>>()
        .join("|");
    json!({
        "pattern": trimmed(&format!("{plain}|{quoted}"), required),
        "not": {"pattern": format!("^[{WS}]*(?:{blocked}|\"(?:{blocked})\")[{WS}]*$")},
    })
}

/// The decimal numbers from `lo` to `hi` (same number of digits), as alternatives.
fn digits_between(lo: &[u8], hi: &[u8]) -> Vec<String> {
    // Every number of that many digits: one class, not one alternative per digit (a short
    // pattern is also one a generator draws from quickly).
    if !lo.is_empty() && lo.iter().all(|&d| d == b'0') && hi.iter().all(|&d| d == b'9') {
        return vec![format!("[0-9]{{{}}}", lo.len())];
    }
    let Some((&l, lo_rest)) = lo.split_first() else {
        return vec![String::new()];
    };
    let (&h, hi_rest) = hi.split_first().unwrap_or((&b'9', &[]));
    let digit = |d: u8| char::from(d).to_string();
    if l == h {
        return digits_between(lo_rest, hi_rest)
            .into_iter()
            .map(|t| format!("{}{t}", digit(l)))
            .collect();
    }
    let nines = vec![b'9'; lo_rest.len()];
    let zeros = vec![b'0'; hi_rest.len()];
    let mut out: Vec<String> = digits_between(lo_rest, &nines)
        .into_iter()
        .map(|t| format!("{}{t}", digit(l)))
        .collect();
    if h - l > 1 {
        let any = if lo_rest.is_empty() {
            String::new()
        } else {
            format!("[0-9]{{{}}}", lo_rest.len())
        };
        out.push(format!("[{}-{}]{any}", digit(l + 1), digit(h - 1)));
    }
    out.extend(
        digits_between(&zeros, hi_rest)
            .into_iter()
            .map(|t| format!("{}{t}", digit(h))),
    );
    out
}

/// A whole number of seconds from `lo` to `hi`, written with at most `max_digits` digits
/// (leading zeros allowed, as `u64::from_str` takes them).
fn seconds_between(lo: u64, hi: u64, max_digits: usize) -> String {
    let mut alternatives = Vec::new();
    for len in lo.to_string().len()..=hi.to_string().len() {
        let floor = 10u64.pow(len as u32 - 1).max(lo);
        let ceil = (10u64.pow(len as u32) - 1).min(hi);
        let zeros = max_digits.saturating_sub(len);
        for t in digits_between(floor.to_string().as_bytes(), ceil.to_string().as_bytes()) {
            alternatives.push(format!("0{{0,{zeros}}}{t}"));
        }
    }
    alternatives.join("|")
}

/// A field's own pattern, as a part to embed (its `^`/`$` anchors removed).
fn unanchored(pattern: &str) -> Option<&str> {
    pattern.strip_prefix('^')?.strip_suffix('$')
}

/// The schema of one setting's value.
fn field_schema(provider: &str, f: &Field) -> Value {
    // A blank value counts as left out: the default applies, or it is missing.
    let must = needed(f);
    let mut schema = match (provider, f.name.as_str()) {
        ("snowflake", "account") => snowflake_account(must),
        ("snowflake", "role") => snowflake_role(must),
        ("snowflake", "refresh_token_validity") => json!({"pattern": trimmed(
            &seconds_between(MIN_REFRESH_VALIDITY, SUPPORT_MAX_REFRESH_VALIDITY, 10),
            must
        )}),
        _ if f.kind.as_deref() == Some("url") => {
            json!({"pattern": trimmed(&endpoint(), must)})
        }
        _ => match f.pattern.as_deref() {
            Some(p) => match unanchored(p) {
                Some(inner) => json!({"pattern": trimmed(inner, must)}),
                // A pattern the template does not anchor is searched for, as JSON Schema does.
                None => json!({"pattern": p}),
            },
            None => json!({"pattern": free(must)}),
        },
    };
    let mut description = format!("{}: {}", f.label, f.help);
    if let Some(d) = &f.default {
        description.push_str(&format!(" Default: {d}."));
    }
    if !f.grants.is_empty() {
        let grants: Vec<&str> = f.grants.iter().map(|g| g.as_str()).collect();
        description.push_str(&format!(" Only for the grant {}.", grants.join(", ")));
    }
    let o = schema.as_object_mut().expect("a schema object");
    o.insert("type".into(), json!("string"));
    o.insert("maxLength".into(), json!(VALUE_MAX));
    if must {
        o.insert("minLength".into(), json!(1));
    }
    o.insert("description".into(), json!(description));
    if let Some(e) = &f.example {
        o.insert("examples".into(), json!([e]));
    }
    schema
}

/// Whether a setting must be given (required, and no default).
fn needed(f: &Field) -> bool {
    f.required && f.default.is_none()
}

/// The `settings` object a provider accepts: its fields and nothing else; the required ones
/// (those without a default) must be given. The flag says whether any is required (else the
/// object itself may be left out).
pub fn settings_schema(t: &ProviderTemplate) -> (Value, bool) {
    let mut properties = Map::new();
    let mut required = Vec::new();
    for f in &t.fields {
        properties.insert(f.name.clone(), field_schema(&t.id, f));
        if needed(f) {
            required.push(f.name.clone());
        }
    }
    let mut schema = json!({
        "type": "object",
        "additionalProperties": false,
        "properties": properties,
        "description": format!("{} connection settings (`GET /api/v1/providers` describes them).", t.display_name),
    });
    let needed = !required.is_empty();
    if needed {
        schema["required"] = json!(required);
    }
    if let Some(example) = example_settings(t) {
        schema["examples"] = json!([example]);
    }
    (schema, needed)
}

/// The template's examples of its required settings, when it gives one for each.
fn example_settings(t: &ProviderTemplate) -> Option<Value> {
    let mut example = Map::new();
    for f in t.fields.iter().filter(|f| needed(f)) {
        example.insert(f.name.clone(), json!(f.example.clone()?));
    }
    (!example.is_empty()).then_some(Value::Object(example))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn number_ranges_are_exact() {
        let re = regex_lite::Regex::new(&format!(
            "^(?:{})$",
            seconds_between(86_400, 157_784_630, 10)
        ))
        .unwrap();
        for (s, ok) in [
            ("86400", true),
            ("86399", false),
            ("0086400", true),
            ("00000086400", false),
            ("157784630", true),
            ("157784631", false),
            ("7776000", true),
            ("99999", true),
            ("100000", true),
            ("999999999", false),
            ("1", false),
        ] {
            assert_eq!(re.is_match(s), ok, "{s}");
        }
        for n in (0..200_000_000u64).step_by(999_983) {
            let s = n.to_string();
            assert_eq!(re.is_match(&s), (86_400..=157_784_630).contains(&n), "{s}");
        }
    }
}
