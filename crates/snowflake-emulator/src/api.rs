//! `POST /api/v2/statements`: the SQL API, authenticated by an OAuth access token
//! (or, as an emulator-only convenience, HTTP Basic user:password).

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::Deserialize;
use serde_json::json;

use crate::Emulator;
use crate::sql::{SqlOutcome, SqlSession, execute_script, parse_count};
use crate::state::Inner;

pub(crate) fn routes() -> Router<Emulator> {
    Router::new().route("/api/v2/statements", post(statements))
}

#[derive(Deserialize)]
struct StatementRequest {
    statement: Option<String>,
    role: Option<String>,
    #[serde(default)]
    parameters: serde_json::Map<String, serde_json::Value>,
}

/// A refused login: Snowflake's code and message (the request id is appended when sent), and for
/// a key-pair JWT why it was refused (kept under that id for `SYSTEM$GET_LOGIN_FAILURE_DETAILS`).
struct Unauthorized {
    code: &'static str,
    message: String,
    failure: Option<(crate::keypair::JwtRefusal, Option<String>)>,
}

fn unauthorized(code: &'static str, message: &str) -> Unauthorized {
    Unauthorized {
        code,
        message: message.to_string(),
        failure: None,
    }
}

/// The session of a user who logged in, in the role asked for (granted) or their default one.
fn session_for(
    inner: &Inner,
    user: &str,
    requested_role: Option<&str>,
) -> Result<SqlSession, Unauthorized> {
    let Some(u) = inner.users.get(user) else {
        return Err(unauthorized(
            "390100",
            "Incorrect username or password was specified.",
        ));
    };
    let role = match requested_role {
        Some(r) if u.roles.iter().any(|g| g == r) => r.to_string(),
        Some(r) => {
            return Err(unauthorized(
                "390189",
                &format!("Role '{r}' specified in the request is not granted to user {user}."),
            ));
        }
        None => u.default_role.clone(),
    };
    Ok(SqlSession {
        user: user.to_string(),
        role,
    })
}

fn unauthorized_response(inner: &mut Inner, err: Unauthorized) -> Response {
    let Unauthorized {
        code,
        message,
        failure,
    } = err;
    inner.counters.sql_api_auth_failures += 1;
    let request_id = uuid::Uuid::new_v4();
    if let Some((refusal, user)) = failure {
        let at = inner.now();
        inner.login_failures.insert(
            request_id.to_string(),
            crate::keypair::LoginFailure { refusal, user, at },
        );
    }
    (
        StatusCode::UNAUTHORIZED,
        axum::Json(json!({"code": code, "message": format!("{message} [{request_id}]")})),
    )
        .into_response()
}

/// Who the request runs as, or the 401 to send.
fn authenticate(
    inner: &mut Inner,
    headers: &HeaderMap,
    requested_role: Option<&str>,
) -> Result<SqlSession, Unauthorized> {
    let auth = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .trim();
    let (scheme, credential) = auth.split_once(' ').unwrap_or((auth, ""));
    let credential = credential.trim();
    if scheme.eq_ignore_ascii_case("basic") {
        // Emulator convenience, not real Snowflake: user:password.
        let decoded = STANDARD
            .decode(credential)
            .ok()
            .and_then(|d| String::from_utf8(d).ok());
        let Some((user, password)) = decoded.as_deref().and_then(|d| d.split_once(':')) else {
            return Err(unauthorized(
                "390100",
                "Incorrect username or password was specified.",
            ));
        };
        let user = user.to_ascii_uppercase();
        if inner
            .users
            .get(&user)
            .is_none_or(|u| u.password != password)
        {
            return Err(unauthorized(
                "390100",
                "Incorrect username or password was specified.",
            ));
        }
        return session_for(inner, &user, requested_role);
    }
    if !scheme.eq_ignore_ascii_case("bearer") || credential.is_empty() {
        return Err(unauthorized(
            "390303",
            "Invalid OAuth access token. Send Authorization: Bearer <access token>.",
        ));
    }
    let token_type = headers
        .get("x-snowflake-authorization-token-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if !token_type.eq_ignore_ascii_case("OAUTH") {
        // KEYPAIR_JWT, or no header: the emulator takes the bearer token for a key-pair JWT
        // (an OAuth token sent without the header is refused like a bad JWT).
        return match crate::keypair::authenticate(inner, credential) {
            Ok(user) => {
                inner.counters.keypair_jwt_logins_ok += 1;
                session_for(inner, &user, requested_role)
            }
            Err((refusal, user)) => Err(Unauthorized {
                code: "390144",
                message: "JWT token is invalid.".to_string(),
                failure: Some((refusal, user)),
            }),
        };
    }
    let now = inner.now();
    let Some(entry) = inner.access_tokens.get(credential).cloned() else {
        return Err(unauthorized("390303", "Invalid OAuth access token."));
    };
    let grant_ok = entry.grant.is_none_or(|g| {
        inner.grants.get(&g).is_some_and(|grant| {
            !grant.revoked
                && inner
                    .integration_by_client_id(&grant.client_id)
                    .is_some_and(|i| i.enabled)
        })
    });
    if !entry.valid || !grant_ok {
        return Err(unauthorized("390303", "Invalid OAuth access token."));
    }
    if now >= entry.expires_at {
        return Err(unauthorized("390318", "OAuth access token expired."));
    }
    if let Some(r) = requested_role
        && !r.eq_ignore_ascii_case(&entry.role)
    {
        return Err(unauthorized(
            "390186",
            &format!(
                "The role requested ('{r}') differs from the role of the OAuth access token ('{}').",
                entry.role
            ),
        ));
    }
    Ok(SqlSession {
        user: entry.user,
        role: entry.role,
    })
}

fn sql_error(
    status: StatusCode,
    code: &str,
    sql_state: &str,
    message: &str,
    handle: &str,
) -> Response {
    (
        status,
        axum::Json(json!({
            "code": code,
            "message": message,
            "sqlState": sql_state,
            "statementHandle": handle,
        })),
    )
        .into_response()
}

async fn statements(State(emu): State<Emulator>, headers: HeaderMap, body: Bytes) -> Response {
    let request: Result<StatementRequest, _> = serde_json::from_slice(&body);
    let mut inner = emu.lock();
    let role = request
        .as_ref()
        .ok()
        .and_then(|r| r.role.clone())
        .filter(|r| !r.is_empty());
    let mut session = match authenticate(&mut inner, &headers, role.as_deref()) {
        Ok(s) => s,
        Err(err) => return unauthorized_response(&mut inner, err),
    };
    let handle = uuid::Uuid::new_v4().to_string();
    let request = match request {
        Ok(r) => r,
        Err(e) => {
            return sql_error(
                StatusCode::BAD_REQUEST,
                "391902",
                "",
                &format!("Unable to parse the request body as JSON: {e}"),
                &handle,
            );
        }
    };
    let Some(statement) = request.statement.filter(|s| !s.trim().is_empty()) else {
        return sql_error(
            StatusCode::BAD_REQUEST,
            "391903",
            "",
            "Missing 'statement' in the request body.",
            &handle,
        );
    };
    let wanted = request
        .parameters
        .get("MULTI_STATEMENT_COUNT")
        .and_then(|v| {
            v.as_u64()
                .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
        })
        .unwrap_or(1);
    let actual = parse_count(&statement);
    if wanted != 0 && actual as u64 != wanted {
        return sql_error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "000008",
            "0A000",
            &format!(
                "Actual statement count {actual} did not match the desired statement count {wanted}."
            ),
            &handle,
        );
    }
    let runs = execute_script(&mut inner, &mut session, &statement);
    // Multi-statement requests answer with the last statement's result (real Snowflake
    // returns child handles; the emulator keeps it simple).
    let Some(last) = runs.iter().find(|r| !r.outcome.is_ok()).or(runs.last()) else {
        return sql_error(
            StatusCode::BAD_REQUEST,
            "391903",
            "",
            "Empty statement.",
            &handle,
        );
    };
    match &last.outcome {
        SqlOutcome::Error(e) => sql_error(
            StatusCode::UNPROCESSABLE_ENTITY,
            &e.code,
            &e.sql_state,
            &e.message,
            &handle,
        ),
        SqlOutcome::Rows(rs) => {
            let created_on = inner.now().timestamp_millis();
            let row_type: Vec<_> = rs
                .columns
                .iter()
                .map(|c| {
                    json!({
                        "name": c.name, "database": "", "schema": "", "table": "",
                        "type": c.type_name, "nullable": true, "length": 16_777_216,
                        "byteLength": 16_777_216, "precision": null, "scale": null, "collation": null,
                    })
                })
                .collect();
            let request_id = uuid::Uuid::new_v4();
            let body = json!({
                "resultSetMetaData": {
                    "numRows": rs.rows.len(),
                    "format": "jsonv2",
                    "partitionInfo": [{"rowCount": rs.rows.len(), "uncompressedSize": 0}],
                    "rowType": row_type,
                },
                "data": rs.rows,
                "code": "090001",
                "statementStatusUrl": format!("/api/v2/statements/{handle}?requestId={request_id}"),
                "requestId": request_id.to_string(),
                "sqlState": "00000",
                "statementHandle": handle,
                "message": "Statement executed successfully.",
                "createdOn": created_on,
            });
            (StatusCode::OK, axum::Json(body)).into_response()
        }
    }
}
