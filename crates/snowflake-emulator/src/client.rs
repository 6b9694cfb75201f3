//! Scripts the browser part of the code flow with plain HTTP (feature `client`).

/// The query of the final redirect to the client's redirect URI, parsed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuthorizeOutcome {
    pub code: Option<String>,
    pub state: Option<String>,
    pub scope: Option<String>,
    pub error: Option<String>,
    pub error_description: Option<String>,
}

impl AuthorizeOutcome {
    /// Parses `redirect_url`'s query (`code`, `state`, `scope`, `error`, `error_description`).
    pub fn parse(redirect_url: &str) -> Self {
        let query = redirect_url.split_once('?').map_or("", |(_, q)| q);
        let query = query.split_once('#').map_or(query, |(q, _)| q);
        let mut out = AuthorizeOutcome::default();
        for (k, v) in form_urlencoded::parse(query.as_bytes()) {
            let slot = match k.as_ref() {
                "code" => &mut out.code,
                "state" => &mut out.state,
                "scope" => &mut out.scope,
                "error" => &mut out.error,
                "error_description" => &mut out.error_description,
                _ => continue,
            };
            slot.get_or_insert_with(|| v.into_owned());
        }
        out
    }
}

/// Drives `GET authorize_url` -> sign-in form -> consent (Allow) like a browser would and
/// returns the final redirect URL (to the client's redirect URI, with `code&state&scope`,
/// or with `error&error_description&state` when Snowflake refuses).
///
/// `http` must not follow redirects (`reqwest::redirect::Policy::none()`). `Err` carries
/// the status and page text when the emulator shows a page instead of redirecting (bad
/// client_id or redirect_uri, wrong password, ...).
pub async fn sign_in_and_consent(
    http: &reqwest::Client,
    authorize_url: &str,
    user: &str,
    password: &str,
) -> Result<String, String> {
    sign_in_and_decide(http, authorize_url, user, password, true).await
}

/// As [`sign_in_and_consent`], answering the consent page with Allow (`allow`) or Deny.
pub async fn sign_in_and_decide(
    http: &reqwest::Client,
    authorize_url: &str,
    user: &str,
    password: &str,
    allow: bool,
) -> Result<String, String> {
    let base = authorize_url
        .split_once("/oauth/authorize")
        .map(|(b, _)| b.to_string())
        .ok_or_else(|| format!("not an /oauth/authorize URL: {authorize_url}"))?;

    let resp = http
        .get(authorize_url)
        .send()
        .await
        .map_err(|e| e.to_string())?;
    if let Some(loc) = redirect(&resp) {
        return Ok(loc);
    }
    if !resp.status().is_success() {
        return Err(describe(resp).await);
    }

    let resp = post_form(
        http,
        authorize_url,
        &[("username", user), ("password", password)],
    )
    .await?;
    if let Some(loc) = redirect(&resp) {
        return Ok(loc);
    }
    if !resp.status().is_success() {
        return Err(describe(resp).await);
    }
    let header_id = resp
        .headers()
        .get("x-emulator-consent-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let page = resp.text().await.map_err(|e| e.to_string())?;
    let consent_id = header_id
        .or_else(|| hidden_field(&page, "consent_id"))
        .ok_or_else(|| format!("no consent form in the page after sign-in: {page}"))?;

    let decision = if allow { "allow" } else { "deny" };
    let resp = post_form(
        http,
        &format!("{base}/oauth/authorize/consent"),
        &[("consent_id", consent_id.as_str()), ("decision", decision)],
    )
    .await?;
    match redirect(&resp) {
        Some(loc) => Ok(loc),
        None => Err(describe(resp).await),
    }
}

async fn post_form(
    http: &reqwest::Client,
    url: &str,
    fields: &[(&str, &str)],
) -> Result<reqwest::Response, String> {
    let mut ser = form_urlencoded::Serializer::new(String::new());
    for (k, v) in fields {
        ser.append_pair(k, v);
    }
    http.post(url)
        .header(
            reqwest::header::CONTENT_TYPE,
            "application/x-www-form-urlencoded",
        )
        .body(ser.finish())
        .send()
        .await
        .map_err(|e| e.to_string())
}

fn redirect(resp: &reqwest::Response) -> Option<String> {
    if !resp.status().is_redirection() {
        return None;
    }
    resp.headers()
        .get(reqwest::header::LOCATION)?
        .to_str()
        .ok()
        .map(str::to_string)
}

async fn describe(resp: reqwest::Response) -> String {
    let status = resp.status();
    let body = resp.text().await.unwrap_or_default();
    format!("HTTP {status}: {}", strip_tags(&body))
}

/// The text of a page, tags and the style sheet removed, whitespace collapsed.
fn strip_tags(html: &str) -> String {
    let html = match (html.find("<style>"), html.find("</style>")) {
        (Some(a), Some(b)) if b > a => format!("{}{}", &html[..a], &html[b + 8..]),
        _ => html.to_string(),
    };
    let mut out = String::new();
    let mut in_tag = false;
    for c in html.chars() {
        match c {
            '<' => {
                in_tag = true;
                out.push(' ');
            }
            '>' => in_tag = false,
            _ if !in_tag => out.push(c),
            _ => {}
        }
    }
    out.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn hidden_field(page: &str, name: &str) -> Option<String> {
    let marker = format!("name=\"{name}\" value=\"");
    let start = page.find(&marker)? + marker.len();
    let end = page[start..].find('"')?;
    Some(page[start..start + end].to_string())
}
