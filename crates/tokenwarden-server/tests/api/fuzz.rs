//! Fuzz target (R35): the OAuth callback's query, through the real router (`GET
//! /oauth/callback`) with the Snowflake emulator as the provider. Proptest with a fixed case
//! budget (`TOKENWARDEN_FUZZ_CASES` for a long run, see `tokenwarden_testkit::fuzz`); the seed
//! corpus is `fuzz/corpus/callback_query/` (`@STATE@` in a seed is replaced by a state
//! tokenwarden just issued).

use crate::support::{ADMIN, Db, TestApp, emulator, spawn};
use proptest::prelude::*;
use proptest::test_runner::{FileFailurePersistence, TestRunner};
use reqwest::Method;
use tokenwarden_testkit::fuzz;

/// Put into every generated value that ends up on the page: it must come back escaped.
const MARKUP: &str = "<i id=fuzz>";

/// The query parts to send: `(key, value)` pairs, already in their final (encoded or raw) form.
#[derive(Debug, Clone)]
enum Query {
    /// Arbitrary text after `?`, sent as the client encodes it.
    Raw(String),
    /// Known and unknown parameters; `state` is replaced by a fresh issued one when `real_state`.
    Pairs {
        pairs: Vec<(String, String)>,
        real_state: bool,
    },
    /// A real sign-in's callback (issued state, code from the emulator) with extra parameters.
    Valid { extra: Vec<(String, String)> },
}

fn encode(s: &str) -> String {
    tokenwarden_oauth::snowflake::urlencode(s)
}

fn value() -> impl Strategy<Value = String> {
    prop_oneof![
        ".{0,40}".prop_map(|v| format!("{v}{MARKUP}")),
        "[A-Za-z0-9_-]{0,64}",
        Just(String::new()),
        ".{600,700}",
    ]
}

fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => prop::sample::select(&["code", "state", "iss", "error", "error_description", "message", "scope"][..])
            .prop_map(str::to_owned),
        1 => ".{0,10}",
    ]
}

fn query() -> impl Strategy<Value = Query> {
    prop_oneof![
        prop_oneof![
            any::<String>(),
            "([a-z_]{0,8}=?(%[0-9A-Fa-f]{2}|%|[^&#]){0,12}&?){0,6}",
        ]
        .prop_map(Query::Raw),
        (prop::collection::vec((key(), value()), 0..7), any::<bool>())
            .prop_map(|(pairs, real_state)| Query::Pairs { pairs, real_state }),
        prop::collection::vec(("x_[a-z]{1,6}", value()), 0..3)
            .prop_map(|extra| Query::Valid { extra }),
    ]
}

fn state_of(url: &str) -> String {
    snowflake_emulator::AuthorizeOutcome::parse(url)
        .state
        .unwrap()
}

/// Sends `GET /oauth/callback?<query>`; answers (status, body). The server must answer.
async fn callback(t: &TestApp, query: &str) -> (u16, String) {
    let res = t
        .http
        .get(format!("{}?{query}", t.url("/oauth/callback")))
        .send()
        .await
        .unwrap_or_else(|e| panic!("the server did not answer ?{query}: {e}"));
    let status = res.status().as_u16();
    (status, res.text().await.unwrap_or_default())
}

/// What holds for any callback: one of the three answers, never a server error, and nothing
/// of the query reflected unescaped.
fn check_answer(query: &str, status: u16, body: &str) {
    assert!(
        matches!(status, 200 | 400 | 502),
        "?{query} answered {status}: {body}"
    );
    assert!(
        !body.contains(MARKUP),
        "?{query} reflected markup unescaped: {body}"
    );
}

async fn one_case(t: &TestApp, id: &str, q: &Query) -> Result<(), TestCaseError> {
    match q {
        Query::Raw(raw) => {
            let (s, b) = callback(t, raw).await;
            check_answer(raw, s, &b);
        }
        Query::Pairs { pairs, real_state } => {
            let state = if *real_state {
                Some(state_of(&t.start_authorization(id).await))
            } else {
                None
            };
            let (_, before) = t
                .admin(Method::GET, &format!("/api/v1/tokens/{id}"), None)
                .await;
            let query: Vec<String> = pairs
                .iter()
                .map(|(k, v)| match (&state, k.as_str()) {
                    (Some(st), "state") => format!("state={}", encode(st)),
                    _ => format!("{}={}", encode(k), encode(v)),
                })
                .chain(
                    state
                        .iter()
                        .filter(|_| !pairs.iter().any(|(k, _)| k == "state"))
                        .map(|st| format!("state={}", encode(st))),
                )
                .collect();
            let query = query.join("&");
            let (s, b) = callback(t, &query).await;
            check_answer(&query, s, &b);
            // A random code is never a token: the stored token stays as it was.
            prop_assert_ne!(s, 200, "?{} was accepted: {}", query, b);
            let (_, after) = t
                .admin(Method::GET, &format!("/api/v1/tokens/{id}"), None)
                .await;
            prop_assert_eq!(&before["version"], &after["version"], "?{}", query);
        }
        Query::Valid { extra } => {
            let url = t.start_authorization(id).await;
            let back = snowflake_emulator::sign_in_and_consent(
                &reqwest::Client::builder()
                    .redirect(reqwest::redirect::Policy::none())
                    .build()
                    .unwrap(),
                &url,
                "ALICE",
                "alice-pass",
            )
            .await
            .map_err(TestCaseError::fail)?;
            let (_, own) = back.split_once('?').unwrap();
            let query: Vec<String> = std::iter::once(own.to_owned())
                .chain(
                    extra
                        .iter()
                        .map(|(k, v)| format!("{}={}", encode(k), encode(v))),
                )
                .collect();
            let query = query.join("&");
            let (s, b) = callback(t, &query).await;
            check_answer(&query, s, &b);
            prop_assert_eq!(s, 200, "a real sign-in with extra parameters: {}", b);
            prop_assert!(b.contains("data-outcome=\"ok\""), "{}", b);
        }
    }
    Ok(())
}

/// A Snowflake token on the emulator, with its integration created and secrets pasted: ready
/// to be authorized. Returns its id.
async fn ready_token(t: &TestApp, emu: &snowflake_emulator::RunningEmulator) -> String {
    let (s, tok) = t
        .admin(
            Method::POST,
            "/api/v1/tokens",
            Some(
                serde_json::json!({"name": "fuzzed", "provider": "snowflake",
            "settings": {"account": emu.base_url(), "role": "ANALYST"}}),
            ),
        )
        .await;
    assert_eq!(s, 201, "{tok}");
    let id = tok["id"].as_str().unwrap().to_owned();
    let (_, setup) = t
        .admin(Method::GET, &format!("/api/v1/tokens/{id}/setup"), None)
        .await;
    let runs = emu
        .emulator
        .run_script_as("ADMIN", setup["snowflake"]["sql"].as_str().unwrap());
    let res = t
        .http
        .post(t.url(&format!("/api/v1/tokens/{id}/client-secrets")))
        .bearer_auth(ADMIN)
        .body(runs[1].outcome.first_value().unwrap().to_owned())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    id
}

#[test]
fn r35_fuzz_callback_query_through_the_router() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (t, emu, id) = rt.block_on(async {
        let t = spawn(Db::Sqlite).await;
        let emu = emulator().await;
        let id = ready_token(&t, &emu).await;
        (t, emu, id)
    });

    // The seeds first.
    let mut seeds = 0;
    for (name, bytes) in fuzz::corpus("callback_query") {
        let text = String::from_utf8_lossy(&bytes);
        let q = text.trim_end_matches('\n');
        rt.block_on(async {
            let q = if q.contains("@STATE@") {
                q.replace(
                    "@STATE@",
                    &encode(&state_of(&t.start_authorization(&id).await)),
                )
            } else {
                q.to_owned()
            };
            let (s, b) = callback(&t, &q).await;
            check_answer(&q, s, &b);
            if name.starts_with("bad-state-") {
                assert_eq!(s, 400, "{name}: {b}");
            } else if name.starts_with("refused-") {
                assert_eq!(s, 502, "{name}: {b}");
            }
        });
        seeds += 1;
    }

    let mut runner = TestRunner::new(ProptestConfig {
        cases: fuzz::cases(fuzz::DEFAULT_CASES),
        source_file: Some(file!()),
        failure_persistence: Some(Box::new(FileFailurePersistence::SourceParallel(
            "proptest-regressions",
        ))),
        ..ProptestConfig::default()
    });
    let result = runner.run(&query(), |q| rt.block_on(one_case(&t, &id, &q)));
    if let Err(e) = result {
        panic!("{e}");
    }
    // Still serving, and still able to complete a sign-in.
    rt.block_on(async {
        let (s, _, _) = t.send(Method::GET, "/healthz", None, None).await;
        assert_eq!(s, 200);
        one_case(&t, &id, &Query::Valid { extra: vec![] })
            .await
            .unwrap();
    });
    println!(
        "callback fuzz: {seeds} seeds and {} generated queries",
        runner.config().cases
    );
    emu.shutdown();
}
