//! The HTML worksheet, driven like a browser without JavaScript.

use crate::common::Env;

#[tokio::test]
async fn sign_in_run_create_and_show_secrets() {
    let env = Env::start().await;
    let page = env.http.get(env.url("/")).send().await.expect("get");
    assert_eq!(page.status(), 200);
    let html = page.text().await.expect("text");
    assert!(html.contains("name=\"username\"") && html.contains("action=\"/console/login\""));
    assert!(!html.contains("<script") && !html.contains("http://") && !html.contains("https://"));

    let bad = env
        .http
        .post(env.url("/console/login"))
        .form(&[("username", "admin"), ("password", "wrong")])
        .send()
        .await
        .expect("login");
    assert_eq!(bad.status(), 401);

    let resp = env
        .http
        .post(env.url("/console/login"))
        .form(&[("username", "admin"), ("password", "admin-pass")])
        .send()
        .await
        .expect("login");
    assert_eq!(resp.status(), 303);
    let cookie = resp.headers()["set-cookie"]
        .to_str()
        .expect("cookie")
        .to_string();
    assert!(cookie.contains("HttpOnly"));
    let cookie = cookie.split(';').next().expect("pair").to_string();

    let sql = "CREATE SECURITY INTEGRATION TW_SALES TYPE = OAUTH OAUTH_CLIENT = CUSTOM \
               OAUTH_CLIENT_TYPE = 'CONFIDENTIAL' OAUTH_REDIRECT_URI = 'https://tw.example/cb' ENABLED = TRUE;\n\
               SELECT SYSTEM$SHOW_OAUTH_CLIENT_SECRETS('TW_SALES');\nSELECT nonsense";
    let resp = env
        .http
        .post(env.url("/console/run"))
        .header("Cookie", &cookie)
        .form(&[("sql", sql)])
        .send()
        .await
        .expect("run");
    assert_eq!(resp.status(), 200);
    let html = resp.text().await.expect("text");
    assert!(html.contains("Integration TW_SALES successfully created."));
    assert!(html.contains("ACCOUNTADMIN"));
    let creds = env.emu().client_credentials("TW_SALES").expect("creds");
    // The secrets cell is a <pre>, the JSON string HTML-escaped.
    let expected = format!(
        "<pre title=\"Click to select\">{{&quot;OAUTH_CLIENT_SECRET_2&quot;:&quot;{}&quot;,&quot;OAUTH_CLIENT_SECRET&quot;:&quot;{}&quot;,&quot;OAUTH_CLIENT_ID&quot;:&quot;{}&quot;}}</pre>",
        creds.client_secret_2, creds.client_secret, creds.client_id
    );
    assert!(html.contains(&expected), "{html}");
    assert!(
        html.contains("001003"),
        "syntax error of the third statement shown"
    );
    assert!(html.contains("History"));

    let stats = env.emu().stats();
    assert_eq!(stats.counters.statements_run, 3);
}

#[tokio::test]
async fn non_admin_sees_snowflake_refusal() {
    let env = Env::start().await;
    let resp = env
        .http
        .post(env.url("/console/login"))
        .form(&[("username", "alice"), ("password", "alice-pass")])
        .send()
        .await
        .expect("login");
    let cookie = resp.headers()["set-cookie"]
        .to_str()
        .expect("cookie")
        .split(';')
        .next()
        .expect("pair")
        .to_string();
    let html = env
        .http
        .post(env.url("/console/run"))
        .header("Cookie", &cookie)
        .form(&[("sql", "CREATE SECURITY INTEGRATION X TYPE = OAUTH OAUTH_CLIENT = CUSTOM OAUTH_CLIENT_TYPE = 'PUBLIC' OAUTH_REDIRECT_URI = 'https://a/b'")])
        .send()
        .await
        .expect("run")
        .text()
        .await
        .expect("text");
    assert!(
        html.contains("Insufficient privileges to operate on account"),
        "{html}"
    );
    // Without the cookie: back to sign-in.
    let resp = env
        .http
        .post(env.url("/console/run"))
        .form(&[("sql", "SELECT 1")])
        .send()
        .await
        .expect("run");
    assert_eq!(resp.status(), 303);
}
