use std::time::{Duration, Instant};

use tokenwarden_notify::{
    DeliveryOutcome, ExposeSecret, SecretString, WebhookTarget, Webhooks, kinds,
    new_webhook_secret, verify, webhook_body,
};
use tokenwarden_testkit::webhook::WebhookReceiver;

use crate::sample_event;

const NOW: i64 = 1_740_819_600;

fn target(receiver: &WebhookReceiver) -> WebhookTarget {
    WebhookTarget {
        url: receiver.url(),
        secret: new_webhook_secret(),
    }
}

#[tokio::test]
async fn a_2xx_is_delivered_signed_the_standard_webhooks_way() {
    let receiver = WebhookReceiver::start().unwrap();
    let target = target(&receiver);
    let event = sample_event(kinds::TOKEN_EXPIRING, "snowflake-prod");
    let webhooks = Webhooks::new(Duration::from_secs(10));

    let outcome = webhooks.deliver(&target, &event, NOW).await;
    assert_eq!(outcome, DeliveryOutcome::Delivered { status: 200 });

    let requests = receiver.wait_for(1, Duration::from_secs(60));
    assert_eq!(requests.len(), 1);
    let r = &requests[0];
    assert_eq!(r.method, "POST");
    assert_eq!(r.path, "/hook");
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(r.header("webhook-id"), Some(event.id.as_str()));
    assert_eq!(
        r.header("webhook-timestamp"),
        Some(NOW.to_string().as_str())
    );
    assert_eq!(r.body, webhook_body(&event));
    let signature = r.header("webhook-signature").unwrap();
    assert!(signature.starts_with("v1,"), "{signature}");
    let headers = (event.id.as_str(), &*NOW.to_string(), signature);
    assert_eq!(
        verify(&target.secret, headers, &r.body, NOW + 5, 300),
        Ok(())
    );
    assert!(verify(&new_webhook_secret(), headers, &r.body, NOW, 300).is_err());

    let body: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(body["type"], "token.expiring");
    assert_eq!(body["timestamp"], "2025-03-01T09:00:00.000Z");
    assert_eq!(body["data"]["token"]["name"], "snowflake-prod");
    assert_eq!(body["data"]["summary"], event.summary.as_str());
    // The secret is nowhere in the request.
    let key = &target.secret.expose_secret()["whsec_".len()..];
    assert!(r.headers.iter().all(|(_, v)| !v.contains(key)));
    assert!(!r.body_text().contains(key));

    // A retry of the same event carries the same id.
    receiver.set_response(204);
    let again = webhooks.deliver(&target, &event, NOW + 60).await;
    assert_eq!(again, DeliveryOutcome::Delivered { status: 204 });
    let requests = receiver.wait_for(2, Duration::from_secs(60));
    assert_eq!(requests[1].header("webhook-id"), Some(event.id.as_str()));
    assert_eq!(
        requests[1].header("webhook-timestamp"),
        Some(&*(NOW + 60).to_string())
    );
}

#[tokio::test]
async fn statuses_map_to_retry_or_failed() {
    let receiver = WebhookReceiver::start().unwrap();
    let target = target(&receiver);
    let event = sample_event(kinds::TEST, "t");
    let webhooks = Webhooks::new(Duration::from_secs(10));
    for (status, retry) in [
        (500, true),
        (502, true),
        (503, true),
        (429, true),
        (408, true),
        (410, false),
        (400, false),
        (401, false),
        (404, false),
        (301, false),
        (307, false),
    ] {
        receiver.set_response(status);
        let outcome = webhooks.deliver(&target, &event, NOW).await;
        assert_eq!(outcome.status(), Some(status), "{outcome:?}");
        match outcome {
            DeliveryOutcome::Retry { reason, .. } if retry => {
                assert!(reason.starts_with(&format!("HTTP {status} ")), "{reason}");
            }
            DeliveryOutcome::Failed { reason, .. } if !retry => {
                assert!(reason.starts_with(&format!("HTTP {status} ")), "{reason}");
                if status / 100 == 3 {
                    assert!(reason.contains("redirects are not followed"), "{reason}");
                }
            }
            other => panic!("{status}: {other:?}"),
        }
    }
    // A redirect is not followed: one request per delivery.
    assert_eq!(receiver.requests().len(), 11);
}

#[tokio::test]
async fn a_refused_connection_is_retried_without_naming_the_url() {
    let port = tokenwarden_testkit::free_port();
    let target = WebhookTarget {
        url: format!("http://127.0.0.1:{port}/hook?token=query-secret-123"),
        secret: new_webhook_secret(),
    };
    let outcome = Webhooks::new(Duration::from_secs(10))
        .deliver(&target, &sample_event(kinds::TEST, "t"), NOW)
        .await;
    let DeliveryOutcome::Retry {
        reason,
        status: None,
    } = outcome
    else {
        panic!("{outcome:?}");
    };
    assert!(reason.starts_with("could not connect"), "{reason}");
    assert!(!reason.contains("query-secret-123"), "{reason}");
    // The URL is named in words, not left as reqwest's "for url ((url))".
    assert!(
        reason.contains("error sending request to the channel's URL"),
        "{reason}"
    );
    assert!(!reason.contains("(url)"), "{reason}");
}

#[tokio::test]
async fn a_slow_receiver_is_retried_after_the_timeout() {
    let receiver = WebhookReceiver::start().unwrap();
    // The receiver answers only after 5 minutes: the delivery can only end before that by
    // giving up at its own timeout (the bound below is a guard, far from both).
    receiver.set_delay(Duration::from_secs(300));
    let webhooks = Webhooks::new(Duration::from_millis(500));
    let start = Instant::now();
    let outcome = webhooks
        .deliver(&target(&receiver), &sample_event(kinds::TEST, "t"), NOW)
        .await;
    let elapsed = start.elapsed();
    assert!(elapsed >= Duration::from_millis(450), "{elapsed:?}");
    assert!(elapsed < Duration::from_secs(120), "{elapsed:?}");
    let DeliveryOutcome::Retry {
        reason,
        status: None,
    } = outcome
    else {
        panic!("{outcome:?}");
    };
    assert!(reason.starts_with("timed out"), "{reason}");
    // It did get the request.
    assert_eq!(receiver.wait_for(1, Duration::from_secs(60)).len(), 1);
}

#[tokio::test]
async fn bad_urls_and_secrets_fail_without_sending() {
    let receiver = WebhookReceiver::start().unwrap();
    let webhooks = Webhooks::new(Duration::from_secs(10));
    let event = sample_event(kinds::TEST, "t");

    let with_credentials = WebhookTarget {
        url: format!("http://user:pw-in-url@127.0.0.1:{}/hook", receiver.port),
        secret: new_webhook_secret(),
    };
    let outcome = webhooks.deliver(&with_credentials, &event, NOW).await;
    let DeliveryOutcome::Failed {
        reason,
        status: None,
    } = outcome
    else {
        panic!("{outcome:?}");
    };
    assert!(reason.contains("credentials"), "{reason}");
    assert!(!reason.contains("pw-in-url"), "{reason}");

    let bad_secret = WebhookTarget {
        url: receiver.url(),
        secret: SecretString::from("whsec_***not-base64-secret***".to_owned()),
    };
    let outcome = webhooks.deliver(&bad_secret, &event, NOW).await;
    let DeliveryOutcome::Failed {
        reason,
        status: None,
    } = outcome
    else {
        panic!("{outcome:?}");
    };
    assert!(reason.contains("secret"), "{reason}");
    assert!(!reason.contains("not-base64-secret"), "{reason}");

    let ftp = WebhookTarget {
        url: "ftp://127.0.0.1/hook".into(),
        secret: new_webhook_secret(),
    };
    assert!(matches!(
        webhooks.deliver(&ftp, &event, NOW).await,
        DeliveryOutcome::Failed { status: None, .. }
    ));
    assert!(receiver.requests().is_empty());
}

/// Issue 9 bug 6: a receiver answering an endless body is read only as far as the delivery
/// log's snippet needs; the delivery ends, with a short reason, long before the body would.
#[tokio::test]
async fn issue9_bug6_an_endless_error_body_is_read_only_as_far_as_the_snippet() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let sent = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let counter = sent.clone();
    let server = tokio::spawn(async move {
        let (mut sock, _) = listener.accept().await.unwrap();
        let mut buf = vec![0u8; 64 * 1024];
        let _ = sock.read(&mut buf).await;
        sock.write_all(
            b"HTTP/1.1 500 Internal Server Error\r\ncontent-type: text/plain\r\ncontent-length: 1073741824\r\n\r\n",
        )
        .await
        .unwrap();
        let chunk = vec![b'x'; 64 * 1024];
        // Up to 1 GiB; stops when the client hangs up.
        for _ in 0..16_384 {
            if sock.write_all(&chunk).await.is_err() {
                break;
            }
            counter.fetch_add(chunk.len() as u64, std::sync::atomic::Ordering::Relaxed);
        }
    });
    let target = WebhookTarget {
        url,
        secret: new_webhook_secret(),
    };
    let event = sample_event(kinds::TEST, "t");
    let outcome = Webhooks::new(Duration::from_secs(60))
        .deliver(&target, &event, NOW)
        .await;
    let DeliveryOutcome::Retry { reason, status } = outcome else {
        panic!("{outcome:?}");
    };
    assert_eq!(status, Some(500));
    assert!(reason.starts_with("HTTP 500 "), "{reason}");
    assert!(reason.chars().count() < 300, "{} characters", reason.len());
    server.await.unwrap();
    // The client hung up after the snippet: far less than the 1 GiB announced was ever sent
    // (socket buffers hold a few MiB at most).
    let total = sent.load(std::sync::atomic::Ordering::Relaxed);
    assert!(total < 64 * 1024 * 1024, "{total} bytes were sent");
}
