//! Issue 9 bug 6: answers from providers and probes are read with a cap.

use secrecy::SecretString;
use std::collections::BTreeMap;
use tokenwarden_oauth::{
    ClientAuth, ClientCredentials, Grant, OAuthClient, Probe, ResolvedProvider, TokenError,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A little HTTP server answering every request 200 with a JSON body of `size` bytes: sent
/// chunked (no length) or, with `declared`, with a `Content-Length`. Returns its base URL.
async fn answering(size: usize, declared: bool) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        loop {
            let Ok((mut sock, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                // Read the request head and the body it declares.
                let mut req = Vec::new();
                let mut buf = [0u8; 4096];
                let body_start = loop {
                    let Ok(n) = sock.read(&mut buf).await else {
                        return;
                    };
                    if n == 0 {
                        return;
                    }
                    req.extend_from_slice(&buf[..n]);
                    if let Some(i) = req.windows(4).position(|w| w == b"\r\n\r\n") {
                        break i + 4;
                    }
                };
                let head = String::from_utf8_lossy(&req[..body_start]).to_ascii_lowercase();
                let want: usize = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length: "))
                    .and_then(|v| v.trim().parse().ok())
                    .unwrap_or(0);
                while req.len() - body_start < want {
                    match sock.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => req.extend_from_slice(&buf[..n]),
                    }
                }
                let token = "a".repeat(size.saturating_sub(64));
                let body = format!(
                    "{{\"access_token\":\"{token}\",\"token_type\":\"Bearer\",\"expires_in\":3600}}"
                );
                let head = if declared {
                    format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                        body.len()
                    )
                } else {
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n".to_owned()
                };
                if sock.write_all(head.as_bytes()).await.is_err() {
                    return;
                }
                if declared {
                    let _ = sock.write_all(body.as_bytes()).await;
                } else {
                    for part in body.as_bytes().chunks(64 * 1024) {
                        let mut c = format!("{:x}\r\n", part.len()).into_bytes();
                        c.extend_from_slice(part);
                        c.extend_from_slice(b"\r\n");
                        if sock.write_all(&c).await.is_err() {
                            return;
                        }
                    }
                    let _ = sock.write_all(b"0\r\n\r\n").await;
                }
                let _ = sock.shutdown().await;
            });
        }
    });
    base
}

fn provider(base: &str) -> ResolvedProvider {
    ResolvedProvider {
        id: "oauth2".into(),
        authorization_url: format!("{base}/authorize"),
        token_url: format!("{base}/token"),
        device_authorization_url: None,
        revocation_url: None,
        issuer: None,
        scopes: String::new(),
        pkce: false,
        client_auth: ClientAuth::Body,
        extra_authorization_params: BTreeMap::new(),
        default_access_token_lifetime: 3600,
        refresh_token_validity: None,
        probe: Probe::Url(format!("{base}/probe")),
    }
}

async fn refresh_against(base: &str) -> Result<tokenwarden_oauth::TokenResponse, TokenError> {
    let refresh_token = SecretString::from("rt");
    OAuthClient::default()
        .token(
            &provider(base),
            &ClientCredentials {
                client_id: "c",
                secrets: vec![SecretString::from("s")],
            },
            &Grant::Refresh {
                refresh_token: &refresh_token,
            },
        )
        .await
}

/// Issue 9 bug 6: a token endpoint answering 2 MiB (with or without a declared length) is
/// refused with a clear provider error and nothing is returned to store; an answer just under
/// the limit still works.
#[tokio::test]
async fn r14_issue9_bug6_token_responses_over_1_mib_are_refused() {
    for declared in [false, true] {
        let big = answering(2 * 1024 * 1024, declared).await;
        match refresh_against(&big).await {
            Err(TokenError::Transient(m)) => assert!(
                m.contains("larger than 1024 KiB") && m.contains("token endpoint"),
                "{m}"
            ),
            other => panic!("declared {declared}: {other:?}"),
        }
        let fine = answering(1000 * 1024, declared).await;
        let ok = refresh_against(&fine).await.unwrap();
        assert_eq!(ok.expires_in, Some(3600));
    }
}

/// Issue 9 bug 6: a probe URL answering 2 MiB is read with the same cap.
#[tokio::test]
async fn r14_issue9_bug6_probe_answers_over_the_limit_are_refused() {
    for declared in [false, true] {
        let big = answering(2 * 1024 * 1024, declared).await;
        let p = provider(&big);
        let err = OAuthClient::default()
            .test_connection(&p, &SecretString::from("at"))
            .await
            .unwrap_err();
        assert!(err.contains("larger than 1024 KiB"), "{err}");
        let small = answering(100, declared).await;
        let ok = OAuthClient::default()
            .test_connection(&provider(&small), &SecretString::from("at"))
            .await
            .unwrap();
        assert!(ok.contains("200"), "{ok}");
    }
}
