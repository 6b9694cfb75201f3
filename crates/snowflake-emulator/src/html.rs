//! Server-rendered pages: one layout, inline CSS, no JavaScript, no external resources.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

pub(crate) fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

const CSS: &str = r#"
*{box-sizing:border-box}
body{margin:0;font:14px/1.45 -apple-system,"Segoe UI",Roboto,Helvetica,Arial,sans-serif;color:#1e252e;background:#f3f6f9}
header{background:#11567f;color:#fff;padding:10px 20px;display:flex;align-items:center;gap:16px}
header .logo{font-weight:700;font-size:17px;letter-spacing:.3px}
header .logo span{color:#29b5e8}
header .acct{opacity:.8;font-size:12px}
header .who{margin-left:auto;font-size:13px;display:flex;gap:12px;align-items:center}
header .who form{margin:0}
header .who button{background:transparent;color:#fff;border:1px solid rgba(255,255,255,.5);padding:3px 10px}
main{max-width:1100px;margin:24px auto;padding:0 20px}
.card{background:#fff;border:1px solid #dde3ea;border-radius:8px;padding:22px 26px;margin-bottom:18px}
.narrow{max-width:420px;margin:60px auto}
h1{font-size:20px;margin:0 0 6px}
h2{font-size:15px;margin:0 0 10px}
p.sub{color:#5b6b7c;margin:0 0 18px}
label{display:block;font-weight:600;font-size:12px;color:#4a5868;margin:12px 0 4px}
input[type=text],input[type=password]{width:100%;padding:9px 10px;border:1px solid #c5cfd9;border-radius:5px;font-size:14px}
textarea.sql{width:100%;min-height:170px;padding:10px;border:1px solid #c5cfd9;border-radius:5px;font:13px/1.5 ui-monospace,Menlo,Consolas,monospace}
button{background:#29b5e8;color:#fff;border:0;border-radius:5px;padding:9px 18px;font-size:14px;font-weight:600;cursor:pointer}
button.secondary{background:#fff;color:#11567f;border:1px solid #c5cfd9}
.actions{display:flex;gap:10px;margin-top:16px}
.error{background:#fdecec;border:1px solid #f3b7b7;color:#8a1c1c;border-radius:5px;padding:10px 12px;white-space:pre-wrap}
.ok{color:#1d6b3a}
table{border-collapse:collapse;width:100%;font-size:13px;margin-top:6px}
th,td{border:1px solid #e1e6ec;padding:6px 8px;text-align:left;vertical-align:top}
th{background:#f6f8fa;font-weight:600}
td pre{margin:0;white-space:pre-wrap;word-break:break-all;font:12px ui-monospace,Menlo,Consolas,monospace;user-select:all;background:#f6f8fa;padding:6px;border-radius:4px}
.stmt{font:12px ui-monospace,Menlo,Consolas,monospace;color:#4a5868;white-space:pre-wrap;margin:14px 0 4px}
.meta{color:#7a8897;font-size:12px}
ul.hist{margin:0;padding-left:18px}
ul.hist li{margin:3px 0}
code{font:12px ui-monospace,Menlo,Consolas,monospace;background:#f0f3f6;padding:1px 4px;border-radius:3px}
.role{display:inline-block;background:#e6f5fb;color:#11567f;border-radius:10px;padding:1px 9px;font-weight:600}
"#;

/// A whole page. `who` is the signed-in "USER (ROLE)" with a sign-out form, if any.
pub(crate) fn page(title: &str, account: &str, who: Option<&str>, body: &str) -> String {
    let who = who.unwrap_or_default();
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{title} - Snowflake</title><style>{CSS}</style></head><body>\
         <header><div class=\"logo\"><span>&#10052;</span> snowflake</div>\
         <div class=\"acct\">Account {account}</div><div class=\"who\">{who}</div></header>\
         <main>{body}</main></body></html>",
        title = esc(title),
        account = esc(account),
    )
}

pub(crate) fn respond(status: StatusCode, html: String) -> Response {
    let mut resp = (status, html).into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

/// `303 See Other` to `location`.
pub(crate) fn see_other(location: &str) -> Response {
    let mut resp = StatusCode::SEE_OTHER.into_response();
    if let Ok(v) = HeaderValue::from_str(location) {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    resp
}

/// `302 Found` to `location` (OAuth redirects back to the client).
pub(crate) fn found(location: &str) -> Response {
    let mut resp = StatusCode::FOUND.into_response();
    if let Ok(v) = HeaderValue::from_str(location) {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    resp
}
