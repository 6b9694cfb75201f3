//! Sign-in, sign-out and the one-time setup of the first admin.

use super::session;
use super::{AdminSession, UiResult, cross_site, error_page, page_with, safe_next, see_other};
use crate::AppContext;
use crate::ops::admins::{self, LoginError};
use askama::Template;
use axum::Form;
use axum::extract::{ConnectInfo, Extension, FromRequestParts, Query, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use secrecy::SecretString;
use serde::Deserialize;

/// The client's address: the peer's, or, when the peer is one of the `trusted_proxies`, the
/// one its `X-Forwarded-For` names (`tokenwarden_domain::net::client_address`). Forwarding
/// headers from anyone else are ignored.
pub struct ClientAddr(pub String);

impl FromRequestParts<AppContext> for ClientAddr {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        ctx: &AppContext,
    ) -> Result<Self, Self::Rejection> {
        let Some(peer) = parts
            .extensions
            .get::<ConnectInfo<std::net::SocketAddr>>()
            .map(|c| c.0.ip())
        else {
            return Ok(ClientAddr("unknown".to_owned()));
        };
        let forwarded = parts
            .headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok());
        Ok(ClientAddr(
            tokenwarden_domain::net::client_address(peer, forwarded, &ctx.settings.trusted_proxies)
                .to_string(),
        ))
    }
}

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage {
    next: String,
    /// A session ended (rather than never existed): say so.
    ended: bool,
    username: String,
    error: String,
    no_admin: bool,
}

#[derive(Deserialize)]
pub struct NextQuery {
    next: Option<String>,
    ended: Option<String>,
}

pub async fn login_form(
    State(ctx): State<AppContext>,
    headers: HeaderMap,
    Query(q): Query<NextQuery>,
) -> UiResult {
    if let Some(v) = session::cookie_value(&ctx, &headers)
        && admins::lookup(&ctx, &v).await?.is_some()
    {
        return Ok(see_other(&safe_next(q.next.as_deref())));
    }
    page_with(
        StatusCode::OK,
        &LoginPage {
            next: safe_next(q.next.as_deref()),
            ended: q.ended.is_some(),
            username: String::new(),
            error: String::new(),
            no_admin: ctx.store.count_admins().await? == 0,
        },
    )
}

#[derive(Deserialize)]
pub struct LoginForm {
    username: String,
    password: SecretString,
    next: Option<String>,
}

fn with_cookie(mut res: Response, cookie: &str) -> Response {
    if let Ok(v) = HeaderValue::from_str(cookie) {
        res.headers_mut().append(header::SET_COOKIE, v);
    }
    res
}

pub async fn login(
    State(ctx): State<AppContext>,
    ClientAddr(client): ClientAddr,
    headers: HeaderMap,
    Form(f): Form<LoginForm>,
) -> UiResult {
    if cross_site(&headers) {
        return Ok(error_page(
            StatusCode::FORBIDDEN,
            "Sign-in forms from other sites are refused.",
        ));
    }
    let next = safe_next(f.next.as_deref());
    let username = f.username.trim().to_owned();
    let (status, error) = match admins::login(&ctx, &username, f.password, &client).await {
        Ok((_, s)) => {
            return Ok(with_cookie(
                see_other(&next),
                &session::set_cookie(&ctx, &s.cookie_value),
            ));
        }
        Err(LoginError::WrongCredentials) => (
            StatusCode::UNAUTHORIZED,
            "Wrong username or password.".to_owned(),
        ),
        Err(LoginError::RateLimited { retry_after }) => (
            StatusCode::TOO_MANY_REQUESTS,
            format!(
                "Too many failed sign-ins from this address. Wait {} and try again.",
                wait_text(retry_after)
            ),
        ),
        Err(LoginError::Busy) => (
            StatusCode::SERVICE_UNAVAILABLE,
            "Too many sign-ins at once. Try again in a moment.".to_owned(),
        ),
        Err(LoginError::Internal(e)) => return Err(e.into()),
    };
    page_with(
        status,
        &LoginPage {
            next,
            ended: false,
            username,
            error,
            no_admin: false,
        },
    )
}

/// "2 minutes", "45 seconds": how long to wait, rounded up.
fn wait_text(d: chrono::Duration) -> String {
    let secs = d.num_seconds().max(1);
    if secs > 90 {
        format!("{} minutes", (secs + 59) / 60)
    } else {
        format!("{secs} seconds")
    }
}

pub async fn logout(
    State(ctx): State<AppContext>,
    Extension(s): Extension<AdminSession>,
) -> Response {
    admins::logout(&ctx, &s).await;
    with_cookie(see_other("/login"), &session::clear_cookie(&ctx))
}

#[derive(Template)]
#[template(path = "setup.html")]
struct SetupPage {
    token: String,
    username: String,
    error: String,
}

#[derive(Deserialize)]
pub struct SetupQuery {
    token: Option<String>,
}

async fn setup_refusal(ctx: &AppContext, token: &str) -> UiResult<Option<Response>> {
    if ctx.store.count_admins().await? > 0 {
        return Ok(Some(error_page(
            StatusCode::GONE,
            "tokenwarden is already set up: sign in, or ask an admin to run `tokenwarden admin create NAME`.",
        )));
    }
    if !admins::setup_link_valid(ctx, token).await? {
        return Ok(Some(error_page(
            StatusCode::FORBIDDEN,
            "This setup link is not valid (it works once, for an hour). Restart tokenwarden for a new one (it is logged at start-up), or run `tokenwarden admin create NAME`.",
        )));
    }
    Ok(None)
}

pub async fn setup_form(State(ctx): State<AppContext>, Query(q): Query<SetupQuery>) -> UiResult {
    let token = q.token.unwrap_or_default();
    if let Some(refused) = setup_refusal(&ctx, &token).await? {
        return Ok(refused);
    }
    page_with(
        StatusCode::OK,
        &SetupPage {
            token,
            username: String::new(),
            error: String::new(),
        },
    )
}

#[derive(Deserialize)]
pub struct SetupForm {
    token: String,
    username: String,
    password: SecretString,
    password2: SecretString,
}

pub async fn setup(
    State(ctx): State<AppContext>,
    headers: HeaderMap,
    Form(f): Form<SetupForm>,
) -> UiResult {
    if cross_site(&headers) {
        return Ok(error_page(
            StatusCode::FORBIDDEN,
            "Setup forms from other sites are refused.",
        ));
    }
    if let Some(refused) = setup_refusal(&ctx, &f.token).await? {
        return Ok(refused);
    }
    use secrecy::ExposeSecret;
    let username = f.username.trim().to_owned();
    let again = |error: String| {
        page_with(
            StatusCode::BAD_REQUEST,
            &SetupPage {
                token: f.token.clone(),
                username: username.clone(),
                error,
            },
        )
    };
    if f.password.expose_secret() != f.password2.expose_secret() {
        return again("The two passwords differ.".into());
    }
    match admins::complete_setup(&ctx, &username, f.password).await {
        Ok(Some(admin)) => {
            let s = admins::start_session(&ctx, &admin).await?;
            Ok(with_cookie(
                see_other("/tokens"),
                &session::set_cookie(&ctx, &s.cookie_value),
            ))
        }
        Ok(None) => Ok(error_page(
            StatusCode::GONE,
            "tokenwarden is already set up: sign in.",
        )),
        Err(crate::ops::Error::Invalid(m)) => again(m),
        Err(e) => Err(e.into()),
    }
}
