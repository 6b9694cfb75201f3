//! The "Worksheet": sign in, run SQL, see results and a short history.

use std::collections::HashMap;

use axum::Router;
use axum::extract::{Form, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use axum::routing::{get, post};

use crate::html::{esc, page, respond, see_other};
use crate::sql::{SqlOutcome, SqlSession, StatementRun, execute_script};
use crate::state::{ConsoleSession, Inner};
use crate::{Emulator, random};

const COOKIE: &str = "snowflake_emulator_session";
const HISTORY_RUNS: usize = 10;

pub(crate) fn routes() -> Router<Emulator> {
    Router::new()
        .route("/", get(show))
        .route("/console", get(show))
        .route("/console/login", post(login))
        .route("/console/run", post(run))
        .route("/console/logout", post(logout))
}

fn session_id(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == COOKIE)
        .map(|(_, v)| v.to_string())
}

async fn show(State(emu): State<Emulator>, headers: HeaderMap) -> Response {
    let inner = emu.lock();
    match session_id(&headers).and_then(|id| inner.sessions.get(&id)) {
        Some(s) => worksheet(&inner, s),
        None => login_page(&inner, None),
    }
}

fn login_page(inner: &Inner, error: Option<&str>) -> Response {
    let err = error
        .map(|e| format!("<div class=\"error\">{}</div>", esc(e)))
        .unwrap_or_default();
    let body = format!(
        "<div class=\"card narrow\"><h1>Sign in to Snowflake</h1>\
         <p class=\"sub\">Account <b>{account}</b></p>{err}\
         <form method=\"post\" action=\"/console/login\">\
         <label for=\"username\">Username</label><input type=\"text\" id=\"username\" name=\"username\" autocomplete=\"username\" autofocus required>\
         <label for=\"password\">Password</label><input type=\"password\" id=\"password\" name=\"password\" autocomplete=\"current-password\" required>\
         <div class=\"actions\"><button type=\"submit\">Sign in</button></div></form></div>",
        account = esc(&inner.account),
    );
    let status = if error.is_some() {
        StatusCode::UNAUTHORIZED
    } else {
        StatusCode::OK
    };
    respond(status, page("Sign in", &inner.account, None, &body))
}

async fn login(State(emu): State<Emulator>, Form(form): Form<HashMap<String, String>>) -> Response {
    let mut inner = emu.lock();
    let username = form
        .get("username")
        .map(|u| u.trim().to_ascii_uppercase())
        .unwrap_or_default();
    let password = form.get("password").cloned().unwrap_or_default();
    let Some(user) = inner
        .users
        .get(&username)
        .filter(|u| u.password == password)
        .cloned()
    else {
        return login_page(
            &inner,
            Some("Incorrect username or password was specified."),
        );
    };
    let id = random::id();
    inner.sessions.insert(
        id.clone(),
        ConsoleSession {
            user: user.name,
            role: user.default_role,
            last_sql: String::new(),
            history: Vec::new(),
        },
    );
    let mut resp = see_other("/console");
    if let Ok(v) = HeaderValue::from_str(&format!("{COOKIE}={id}; HttpOnly; Path=/; SameSite=Lax"))
    {
        resp.headers_mut().insert(header::SET_COOKIE, v);
    }
    resp
}

async fn run(
    State(emu): State<Emulator>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let mut inner = emu.lock();
    let Some(id) = session_id(&headers).filter(|id| inner.sessions.contains_key(id)) else {
        return see_other("/console");
    };
    let sql = form.get("sql").cloned().unwrap_or_default();
    let Some(s) = inner.sessions.get(&id) else {
        return see_other("/console");
    };
    let mut sql_session = SqlSession {
        user: s.user.clone(),
        role: s.role.clone(),
    };
    let runs = if sql.trim().is_empty() {
        Vec::new()
    } else {
        execute_script(&mut inner, &mut sql_session, &sql)
    };
    let now = inner.now();
    let Some(s) = inner.sessions.get_mut(&id) else {
        return see_other("/console");
    };
    s.role = sql_session.role;
    s.last_sql = sql;
    if !runs.is_empty() {
        s.history.insert(0, (now, runs));
        s.history.truncate(HISTORY_RUNS);
    }
    let s = s.clone();
    worksheet(&inner, &s)
}

async fn logout(State(emu): State<Emulator>, headers: HeaderMap) -> Response {
    if let Some(id) = session_id(&headers) {
        emu.lock().sessions.remove(&id);
    }
    let mut resp = see_other("/console");
    resp.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_static(
            "snowflake_emulator_session=; HttpOnly; Path=/; Max-Age=0; SameSite=Lax",
        ),
    );
    resp
}

const PLACEHOLDER: &str = "CREATE SECURITY INTEGRATION TW_SALES\n  TYPE = OAUTH\n  OAUTH_CLIENT = CUSTOM\n  \
OAUTH_CLIENT_TYPE = 'CONFIDENTIAL'\n  OAUTH_REDIRECT_URI = 'https://tokenwarden.example.com/oauth/callback'\n  \
ENABLED = TRUE\n  OAUTH_ISSUE_REFRESH_TOKENS = TRUE\n  OAUTH_REFRESH_TOKEN_VALIDITY = 7776000;\n\
SELECT SYSTEM$SHOW_OAUTH_CLIENT_SECRETS('TW_SALES');";

fn worksheet(inner: &Inner, s: &ConsoleSession) -> Response {
    let who = format!(
        "<span>{}</span><span class=\"role\">{}</span>\
         <form method=\"post\" action=\"/console/logout\"><button type=\"submit\">Sign out</button></form>",
        esc(&s.user),
        esc(&s.role)
    );
    let mut body = format!(
        "<div class=\"card\"><h1>Worksheet</h1>\
         <p class=\"sub\">Runs as <b>{user}</b> with role <span class=\"role\">{role}</span>. \
         Separate statements with <code>;</code> &mdash; each one runs and shows its own result.</p>\
         <form method=\"post\" action=\"/console/run\">\
         <textarea class=\"sql\" name=\"sql\" spellcheck=\"false\" placeholder=\"{placeholder}\">\n{sql}</textarea>\
         <div class=\"actions\"><button type=\"submit\">Run</button></div></form></div>",
        user = esc(&s.user),
        role = esc(&s.role),
        placeholder = esc(PLACEHOLDER),
        sql = esc(&s.last_sql),
    );
    if let Some((_, runs)) = s.history.first() {
        body.push_str("<div class=\"card\"><h2>Results</h2>");
        for r in runs {
            body.push_str(&render_run(r));
        }
        body.push_str("</div>");
    }
    if !s.history.is_empty() {
        body.push_str("<div class=\"card\"><h2>History</h2><ul class=\"hist\">");
        for (at, runs) in &s.history {
            for r in runs {
                let status = match &r.outcome {
                    SqlOutcome::Rows(rs) => {
                        format!(
                            "<span class=\"ok\">{} row{}</span>",
                            rs.rows.len(),
                            if rs.rows.len() == 1 { "" } else { "s" }
                        )
                    }
                    SqlOutcome::Error(e) => format!(
                        "<span style=\"color:#8a1c1c\">error {}</span>",
                        esc(&e.code)
                    ),
                };
                let mut snippet: String = r.sql.split_whitespace().collect::<Vec<_>>().join(" ");
                if snippet.chars().count() > 110 {
                    snippet = snippet.chars().take(110).collect::<String>() + "…";
                }
                body.push_str(&format!(
                    "<li><span class=\"meta\">{}</span> <code>{}</code> {status}</li>",
                    at.format("%H:%M:%S"),
                    esc(&snippet)
                ));
            }
        }
        body.push_str("</ul></div>");
    }
    respond(
        StatusCode::OK,
        page("Worksheet", &inner.account, Some(&who), &body),
    )
}

fn render_run(r: &StatementRun) -> String {
    let mut out = format!("<div class=\"stmt\">{}</div>", esc(&r.sql));
    match &r.outcome {
        SqlOutcome::Error(e) => {
            out.push_str(&format!(
                "<div class=\"error\">{} ({}): {}</div>",
                esc(&e.code),
                esc(&e.sql_state),
                esc(&e.message)
            ));
        }
        SqlOutcome::Rows(rs) => {
            out.push_str("<table><thead><tr>");
            for c in &rs.columns {
                out.push_str(&format!("<th>{}</th>", esc(&c.name)));
            }
            out.push_str("</tr></thead><tbody>");
            for row in &rs.rows {
                out.push_str("<tr>");
                for (i, cell) in row.iter().enumerate() {
                    let copyable = rs
                        .columns
                        .get(i)
                        .is_some_and(|c| c.name.to_ascii_uppercase().starts_with("SYSTEM$"));
                    match cell {
                        None => out.push_str("<td><span class=\"meta\">NULL</span></td>"),
                        Some(v) if copyable || v.len() > 80 => out.push_str(&format!(
                            "<td><pre title=\"Click to select\">{}</pre></td>",
                            esc(v)
                        )),
                        Some(v) => out.push_str(&format!("<td>{}</td>", esc(v))),
                    }
                }
                out.push_str("</tr>");
            }
            out.push_str(&format!(
                "</tbody></table><p class=\"meta\">{} row{}</p>",
                rs.rows.len(),
                if rs.rows.len() == 1 { "" } else { "s" }
            ));
        }
    }
    out
}
