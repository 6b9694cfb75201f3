//! Fuzz target (R35) for the configuration loader: a TOML file and `TOKENWARDEN_*` variables,
//! layered. Proptest properties with a fixed case budget (`TOKENWARDEN_FUZZ_CASES` for a long
//! run, see `tokenwarden_testkit::fuzz`); the seed corpus is `fuzz/corpus/config/`.

use crate::config::{Config, Overrides};
use proptest::prelude::*;
use proptest::test_runner::FileFailurePersistence;
use secrecy::ExposeSecret;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use tokenwarden_testkit::fuzz;

fn config() -> ProptestConfig {
    ProptestConfig {
        // Each case writes a file: a quarter of the others' budget keeps the set fast.
        cases: fuzz::cases(fuzz::DEFAULT_CASES / 4).max(1),
        failure_persistence: Some(Box::new(FileFailurePersistence::SourceParallel(
            "proptest-regressions",
        ))),
        ..ProptestConfig::default()
    }
}

const FILE_KEYS: &[&str] = &[
    "listen",
    "data_dir",
    "database_url",
    "public_url",
    "master_key_file",
    "admin_token_file",
    "max_body_bytes",
    "log",
    "providers_dir",
    "reminder_lead_times",
    "engine_interval",
    "smtp",
];
const SMTP_KEYS: &[&str] = &[
    "host",
    "port",
    "security",
    "username",
    "password_file",
    "from",
];
/// The variables whose values are text (the `_FILE` ones name files: see [`file_value`]).
const TEXT_ENV: &[&str] = &[
    "TOKENWARDEN_LISTEN",
    "TOKENWARDEN_DATA_DIR",
    "TOKENWARDEN_DATABASE_URL",
    "TOKENWARDEN_PUBLIC_URL",
    "TOKENWARDEN_MASTER_KEY",
    "TOKENWARDEN_ADMIN_TOKEN",
    "TOKENWARDEN_MAX_BODY_BYTES",
    "TOKENWARDEN_LOG",
    "TOKENWARDEN_PROVIDERS_DIR",
    "TOKENWARDEN_REMINDER_LEAD_TIMES",
    "TOKENWARDEN_ENGINE_INTERVAL",
    "TOKENWARDEN_SMTP_HOST",
    "TOKENWARDEN_SMTP_PORT",
    "TOKENWARDEN_SMTP_SECURITY",
    "TOKENWARDEN_SMTP_USERNAME",
    "TOKENWARDEN_SMTP_PASSWORD",
    "TOKENWARDEN_SMTP_FROM",
];
const FILE_ENV: &[&str] = &[
    "TOKENWARDEN_DATABASE_URL_FILE",
    "TOKENWARDEN_MASTER_KEY_FILE",
    "TOKENWARDEN_ADMIN_TOKEN_FILE",
    "TOKENWARDEN_SMTP_PASSWORD_FILE",
];

/// A value for a `_FILE` setting: a file with a secret, an empty file, a folder, or nothing.
fn file_value(dir: &Path, pick: u8) -> String {
    let p = match pick % 4 {
        0 => {
            let p = dir.join("secret");
            std::fs::write(&p, "a-secret-from-a-file\n").unwrap();
            p
        }
        1 => {
            let p = dir.join("empty");
            std::fs::write(&p, "").unwrap();
            p
        }
        2 => dir.to_path_buf(),
        _ => dir.join("missing"),
    };
    p.display().to_string()
}

fn toml_value() -> impl Strategy<Value = toml::Value> {
    let leaf = prop_oneof![
        ".{0,30}".prop_map(toml::Value::String),
        prop::sample::select(
            &[
                "14d",
                "1h",
                "90m",
                "0d",
                "-1d",
                "off",
                "none",
                "tls",
                "starttls",
                "debug",
                "127.0.0.1:0",
                "http://x",
                "https://x",
                "sqlite://x.db"
            ][..]
        )
        .prop_map(|s| toml::Value::String(s.to_owned())),
        any::<i64>().prop_map(toml::Value::Integer),
        (0i64..100_000).prop_map(toml::Value::Integer),
        any::<f64>().prop_map(toml::Value::Float),
        any::<bool>().prop_map(toml::Value::Boolean),
    ];
    leaf.prop_recursive(2, 12, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(toml::Value::Array),
            prop::collection::btree_map(
                prop_oneof![
                    prop::sample::select(SMTP_KEYS).prop_map(str::to_owned),
                    "[a-z_]{1,8}"
                ],
                inner,
                0..4
            )
            .prop_map(|m| toml::Value::Table(m.into_iter().collect())),
        ]
    })
}

fn file_table() -> impl Strategy<Value = toml::Table> {
    prop::collection::btree_map(
        prop_oneof![
            5 => prop::sample::select(FILE_KEYS).prop_map(str::to_owned),
            1 => "[a-z_]{1,10}",
        ],
        toml_value(),
        0..8,
    )
    .prop_map(|m| m.into_iter().collect())
}

fn env_map() -> impl Strategy<Value = BTreeMap<String, String>> {
    prop::collection::btree_map(
        prop_oneof![
            6 => prop::sample::select(TEXT_ENV).prop_map(str::to_owned),
            1 => "TOKENWARDEN_[A-Z_]{0,12}",
        ],
        prop_oneof![
            any::<String>(),
            "[0-9]{0,22}",
            prop::sample::select(
                &["0", "off", "1d,7d", "none", "tls", "https://x", "25", "-1"][..]
            )
            .prop_map(str::to_owned),
        ],
        0..6,
    )
}

/// Loads with `file` as the config file's text (if any) and `env`; must never panic. What
/// loads has the shape every command relies on.
fn check_load(dir: &Path, file: Option<&str>, env: &BTreeMap<String, String>) {
    let config_file = file.map(|text| {
        let p = dir.join("tokenwarden.toml");
        std::fs::write(&p, text).unwrap();
        p
    });
    let flags = Overrides {
        config_file,
        ..Overrides::default()
    };
    match Config::load(env, &flags) {
        Ok(c) => {
            assert!(
                c.public_url.starts_with("http://") || c.public_url.starts_with("https://"),
                "{}",
                c.public_url
            );
            assert!(!c.database_url.expose_secret().is_empty());
            let mut sorted = c.reminder_lead_times.clone();
            sorted.sort_by(|a, b| b.cmp(a));
            sorted.dedup();
            assert_eq!(sorted, c.reminder_lead_times);
            if let Some(s) = &c.smtp {
                assert!(matches!(s.security.as_str(), "none" | "starttls" | "tls"));
            }
            let _ = format!("{c:?}");
        }
        Err(e) => {
            let _ = format!("{e:#}");
        }
    }
}

#[test]
fn r35_fuzz_config_corpus_replays() {
    let dir = tempfile::tempdir().unwrap();
    for (name, bytes) in fuzz::corpus("config") {
        let text = String::from_utf8_lossy(&bytes);
        check_load(dir.path(), Some(&text), &BTreeMap::new());
        if name.starts_with("ok-") {
            let flags = Overrides {
                config_file: Some(dir.path().join("tokenwarden.toml")),
                ..Overrides::default()
            };
            if let Err(e) = Config::load(&BTreeMap::new(), &flags) {
                panic!("{name}: {e:#}");
            }
        }
    }
    // The file `tokenwarden config default` prints is a seed too: it must stay one.
    let default = crate::config::default_toml();
    let seed = std::fs::read_to_string(fuzz::corpus_dir("config").join("ok-default.toml"))
        .unwrap_or_default();
    assert_eq!(
        seed, default,
        "fuzz/corpus/config/ok-default.toml is `tokenwarden config default`"
    );
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn r35_fuzz_config_arbitrary_file_text(text in any::<String>(), bytes in prop::collection::vec(any::<u8>(), 0..300)) {
        let dir = tempfile::tempdir().unwrap();
        check_load(dir.path(), Some(&text), &BTreeMap::new());
        check_load(dir.path(), Some(&String::from_utf8_lossy(&bytes)), &BTreeMap::new());
    }

    /// Known and unknown keys with values of every TOML type, under arbitrary variables and
    /// `_FILE` variables naming files, empty files, folders and nothing.
    #[test]
    fn r35_fuzz_config_file_and_environment_with_random_types(
        table in file_table(),
        mut env in env_map(),
        files in prop::collection::btree_map(prop::sample::select(FILE_ENV), any::<u8>(), 0..3),
        garble in proptest::option::of((any::<prop::sample::Index>(), any::<char>())),
    ) {
        let dir = tempfile::tempdir().unwrap();
        for (k, pick) in files {
            env.insert(k.to_owned(), file_value(dir.path(), pick));
        }
        let mut text = toml::to_string(&table).unwrap_or_default();
        if let Some((at, c)) = garble {
            let mut chars: Vec<char> = text.chars().collect();
            if !chars.is_empty() {
                let i = at.index(chars.len());
                chars[i] = c;
            }
            text = chars.into_iter().collect();
        }
        check_load(dir.path(), Some(&text), &env);
        check_load(dir.path(), None, &env);
    }

    /// Valid values written to the file, some overridden by variables: what loads is exactly
    /// the layering (variable over file over default).
    #[test]
    fn r35_fuzz_config_layers_round_trip(
        port in 0u16..,
        log in prop::sample::select(&["info", "debug", "tokenwarden=debug,info", "warn"][..]),
        max_body in 1usize..100_000_000,
        leads in prop::collection::vec(
            prop_oneof![
                (1u32..=365).prop_map(|n| format!("{n}d")),
                (1u32..=8_760).prop_map(|n| format!("{n}h")),
                (1u32..=525_600).prop_map(|n| format!("{n}m")),
            ],
            1..5,
        ),
        engine in 0u64..100_000,
        security in prop::sample::select(&["none", "starttls", "tls"][..]),
        smtp_port in 1u16..,
        env_listen_port in proptest::option::of(0u16..),
        env_engine in proptest::option::of(prop_oneof![Just("off".to_owned()), (1u64..1000).prop_map(|n| n.to_string())]),
        env_leads in proptest::option::of(Just("1d, 12h,30d".to_owned())),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let mut table = toml::Table::new();
        table.insert("listen".into(), format!("127.0.0.1:{port}").into());
        table.insert("log".into(), log.into());
        table.insert("max_body_bytes".into(), (max_body as i64).into());
        table.insert("reminder_lead_times".into(), toml::Value::Array(leads.iter().map(|l| l.clone().into()).collect()));
        table.insert("engine_interval".into(), (engine as i64).into());
        let mut smtp = toml::Table::new();
        smtp.insert("host".into(), "mail.example.com".into());
        smtp.insert("security".into(), security.into());
        smtp.insert("port".into(), i64::from(smtp_port).into());
        table.insert("smtp".into(), toml::Value::Table(smtp));
        let mut env = BTreeMap::new();
        if let Some(p) = env_listen_port {
            env.insert("TOKENWARDEN_LISTEN".to_owned(), format!("127.0.0.2:{p}"));
        }
        if let Some(e) = &env_engine {
            env.insert("TOKENWARDEN_ENGINE_INTERVAL".to_owned(), e.clone());
        }
        if let Some(l) = &env_leads {
            env.insert("TOKENWARDEN_REMINDER_LEAD_TIMES".to_owned(), l.clone());
        }
        let path: PathBuf = dir.path().join("tokenwarden.toml");
        std::fs::write(&path, toml::to_string(&table).unwrap()).unwrap();
        let c = Config::load(&env, &Overrides { config_file: Some(path), ..Overrides::default() })
            .map_err(|e| TestCaseError::fail(format!("{e:#}")))?;
        let listen = env_listen_port.map_or(format!("127.0.0.1:{port}"), |p| format!("127.0.0.2:{p}"));
        prop_assert_eq!(&c.listen, &listen);
        prop_assert_eq!(&c.public_url, &format!("http://{listen}"));
        prop_assert_eq!(c.log.as_str(), log);
        prop_assert_eq!(c.max_body_bytes, max_body);
        let lead_texts: Vec<String> = match &env_leads {
            Some(l) => l.split(',').map(|s| s.trim().to_owned()).collect(),
            None => leads.clone(),
        };
        let mut expected: Vec<_> = lead_texts.iter().map(|l| tokenwarden_domain::LeadTime::parse(l).unwrap()).collect();
        expected.sort_by(|a, b| b.cmp(a));
        expected.dedup();
        prop_assert_eq!(&c.reminder_lead_times, &expected);
        let interval = match env_engine.as_deref() {
            Some("off") => None,
            Some(n) => Some(std::time::Duration::from_secs(n.parse().unwrap())),
            None => (engine > 0).then(|| std::time::Duration::from_secs(engine)),
        };
        prop_assert_eq!(c.engine_interval, interval);
        let s = c.smtp.clone().unwrap();
        prop_assert_eq!((s.host.as_str(), s.security.as_str(), s.port), ("mail.example.com", security, smtp_port));
    }
}
