use std::net::{Ipv4Addr, TcpListener};
use std::time::{Duration, Instant};

use tokenwarden_notify::{
    DeliveryOutcome, Mailer, SmtpSecurity, SmtpSettings, kinds, render_email,
};
use tokenwarden_testkit::smtp::SmtpSink;

use crate::sample_event;

fn settings(port: u16) -> SmtpSettings {
    SmtpSettings {
        host: "127.0.0.1".into(),
        port,
        security: SmtpSecurity::None,
        username: None,
        password: None,
        from: "tokenwarden <tokenwarden@example.com>".into(),
        timeout: Duration::from_secs(10),
    }
}

fn to(addresses: &[&str]) -> Vec<String> {
    addresses.iter().map(|a| (*a).to_owned()).collect()
}

#[tokio::test]
async fn an_email_reaches_the_sink() {
    let sink = SmtpSink::start().unwrap();
    let mailer = Mailer::new(settings(sink.port)).unwrap();
    let event = sample_event(kinds::TOKEN_EXPIRING, "snowflake-prod");

    let outcome = mailer
        .send(
            &to(&["ops@example.com", "Alice <alice@example.org>"]),
            &event,
        )
        .await;
    assert_eq!(outcome, DeliveryOutcome::Delivered { status: 250 });

    let mails = sink.wait_for(1, Duration::from_secs(60));
    assert_eq!(mails.len(), 1);
    let mail = &mails[0];
    assert_eq!(mail.from, "tokenwarden@example.com");
    assert_eq!(mail.to, ["ops@example.com", "alice@example.org"]);
    let (subject, body) = render_email(&event);
    assert_eq!(mail.subject().as_deref(), Some(subject.as_str()));
    assert!(subject.contains("before 2025-03-08 09:00 UTC"), "{subject}");
    // The SMTP transfer adds a line end before the final dot.
    assert_eq!(
        mail.body().replace("\r\n", "\n").trim_end(),
        body.trim_end()
    );
    assert!(mail.body().contains("snowflake-prod"));
    assert_eq!(
        mail.header("message-id").as_deref(),
        Some(format!("<{}@example.com>", event.id).as_str())
    );
    assert!(
        mail.header("date").unwrap().contains("1 Mar 2025 09:00:00"),
        "{:?}",
        mail.header("date")
    );
    assert!(
        mail.header("content-type")
            .unwrap()
            .starts_with("text/plain")
    );
}

#[tokio::test]
async fn non_ascii_names_survive() {
    let sink = SmtpSink::start().unwrap();
    let mailer = Mailer::new(settings(sink.port)).unwrap();
    let event = sample_event(kinds::TOKEN_EXPIRED, "Zürich-Lager ✓");
    let outcome = mailer.send(&to(&["ops@example.com"]), &event).await;
    assert!(outcome.is_delivered(), "{outcome:?}");
    let mail = sink.wait_for(1, Duration::from_secs(60)).remove(0);
    let (subject, _) = render_email(&event);
    assert_eq!(mail.subject().as_deref(), Some(subject.as_str()));
    assert!(mail.subject().unwrap().contains("Zürich-Lager ✓"));
    assert!(mail.body().contains("Zürich-Lager ✓"));
}

#[tokio::test]
async fn smtp_replies_map_to_failed_or_retry() {
    let sink = SmtpSink::start().unwrap();
    let mailer = Mailer::new(settings(sink.port)).unwrap();
    let event = sample_event(kinds::TEST, "t");

    sink.reject_recipients(Some((550, "5.1.1 no such user")));
    let outcome = mailer.send(&to(&["nobody@example.com"]), &event).await;
    let DeliveryOutcome::Failed { reason, status } = outcome else {
        panic!("{outcome:?}");
    };
    assert_eq!(status, Some(550));
    assert!(reason.contains("no such user"), "{reason}");

    sink.reject_recipients(Some((451, "4.3.0 try again later")));
    let outcome = mailer.send(&to(&["ops@example.com"]), &event).await;
    assert!(
        matches!(
            outcome,
            DeliveryOutcome::Retry {
                status: Some(451),
                ..
            }
        ),
        "{outcome:?}"
    );
    assert!(sink.messages().is_empty());
}

#[tokio::test]
async fn bad_recipients_fail_without_sending() {
    let sink = SmtpSink::start().unwrap();
    let mailer = Mailer::new(settings(sink.port)).unwrap();
    let event = sample_event(kinds::TEST, "t");
    for recipients in [
        to(&[]),
        to(&["not an address"]),
        to(&["a@example.com", "x@@y"]),
    ] {
        let outcome = mailer.send(&recipients, &event).await;
        assert!(
            matches!(outcome, DeliveryOutcome::Failed { status: None, .. }),
            "{recipients:?}: {outcome:?}"
        );
    }
    assert!(sink.messages().is_empty());
}

#[tokio::test]
async fn a_refused_connection_is_retried() {
    let port = tokenwarden_testkit::free_port();
    let mailer = Mailer::new(settings(port)).unwrap();
    let outcome = mailer
        .send(&to(&["ops@example.com"]), &sample_event(kinds::TEST, "t"))
        .await;
    assert!(
        matches!(outcome, DeliveryOutcome::Retry { status: None, .. }),
        "{outcome:?}"
    );
}

#[tokio::test]
async fn a_silent_server_is_retried_after_the_timeout() {
    // Accepts connections (the kernel does) but never says a word.
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    let port = listener.local_addr().unwrap().port();
    let mailer = Mailer::new(SmtpSettings {
        timeout: Duration::from_millis(500),
        ..settings(port)
    })
    .unwrap();
    // A silent server never answers: the send can only end by giving up at its own timeout
    // (the guard below is far from it).
    let start = Instant::now();
    let outcome = tokio::time::timeout(
        Duration::from_secs(120),
        mailer.send(&to(&["ops@example.com"]), &sample_event(kinds::TEST, "t")),
    )
    .await
    .expect("the SMTP timeout did not apply");
    let elapsed = start.elapsed();
    assert!(elapsed >= Duration::from_millis(450), "{elapsed:?}");
    assert!(outcome.is_retry(), "{outcome:?}");
    drop(listener);
}

#[tokio::test]
async fn starttls_to_a_server_without_it_is_not_sent_in_plain_text() {
    let sink = SmtpSink::start().unwrap();
    let mailer = Mailer::new(SmtpSettings {
        security: SmtpSecurity::StartTls,
        host: "localhost".into(),
        ..settings(sink.port)
    })
    .unwrap();
    let outcome = mailer
        .send(&to(&["ops@example.com"]), &sample_event(kinds::TEST, "t"))
        .await;
    assert!(!outcome.is_delivered(), "{outcome:?}");
    assert!(sink.messages().is_empty());
}
