//! A minimal HTTP/1.1 server for tests that records every request: a webhook receiver.
//!
//! [`WebhookReceiver::start`] listens on a free port on 127.0.0.1 and serves each connection on
//! its own thread: it reads one request (body by `Content-Length`, or chunked; `Expect:
//! 100-continue` is honoured), records it as a [`ReceivedRequest`], waits for the configured
//! delay ([`WebhookReceiver::set_delay`]) and answers with the configured status
//! ([`WebhookReceiver::set_response`], 200 at first), a short text body and `Connection:
//! close`. Malformed requests get `400` and are not recorded.
//!
//! Dropping the [`WebhookReceiver`] stops it from accepting connections and cuts short the
//! delays of requests in progress. Only std is used, so it works from plain `#[test]`s and from
//! `#[tokio::test]`s alike.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU16, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// A connection that sends nothing for this long is closed.
const IDLE_TIMEOUT: Duration = Duration::from_secs(30);
/// The largest request head and body accepted.
const MAX_HEAD: usize = 64 * 1024;
const MAX_BODY: usize = 16 * 1024 * 1024;

/// One request the receiver got.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceivedRequest {
    /// `POST`, `GET`, ...
    pub method: String,
    /// The request target as sent, e.g. `/hook?x=1`.
    pub path: String,
    /// Every header in order, names lower-cased, values trimmed.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl ReceivedRequest {
    /// The value of the first header named `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body as UTF-8 (lossy).
    pub fn body_text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// A running webhook receiver; see the module documentation.
pub struct WebhookReceiver {
    /// The port on 127.0.0.1 it listens on.
    pub port: u16,
    shared: Arc<Shared>,
    acceptor: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for WebhookReceiver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookReceiver")
            .field("port", &self.port)
            .finish_non_exhaustive()
    }
}

struct Shared {
    requests: Mutex<Vec<ReceivedRequest>>,
    arrived: Condvar,
    status: AtomicU16,
    delay_ms: AtomicU64,
    stop: AtomicBool,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl WebhookReceiver {
    /// Starts the receiver on a free port on 127.0.0.1, answering 200 without delay.
    ///
    /// # Errors
    ///
    /// If no socket can be bound or the thread cannot be started.
    pub fn start() -> Result<Self, String> {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .map_err(|e| format!("could not bind the webhook receiver on 127.0.0.1:0: {e}"))?;
        let port = listener
            .local_addr()
            .map_err(|e| format!("could not read the webhook receiver's address: {e}"))?
            .port();
        let shared = Arc::new(Shared {
            requests: Mutex::new(Vec::new()),
            arrived: Condvar::new(),
            status: AtomicU16::new(200),
            delay_ms: AtomicU64::new(0),
            stop: AtomicBool::new(false),
        });
        let accept_shared = Arc::clone(&shared);
        let acceptor = std::thread::Builder::new()
            .name(format!("webhook-receiver-{port}"))
            .spawn(move || {
                for stream in listener.incoming() {
                    if accept_shared.stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(stream) = stream else { continue };
                    let conn_shared = Arc::clone(&accept_shared);
                    let _ = std::thread::Builder::new()
                        .name(format!("webhook-receiver-{port}-conn"))
                        .spawn(move || {
                            let _ = serve(stream, &conn_shared);
                        });
                }
            })
            .map_err(|e| format!("could not start the webhook receiver thread: {e}"))?;
        Ok(Self {
            port,
            shared,
            acceptor: Some(acceptor),
        })
    }

    /// `http://127.0.0.1:PORT/hook` (any path is accepted).
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/hook", self.port)
    }

    /// The status of the following responses (100..=999; 200 at first).
    pub fn set_response(&self, status: u16) {
        self.shared
            .status
            .store(status.clamp(100, 999), Ordering::SeqCst);
    }

    /// How long to wait, after reading a request, before answering it (0 at first).
    pub fn set_delay(&self, d: Duration) {
        let ms = u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        self.shared.delay_ms.store(ms, Ordering::SeqCst);
    }

    /// Every request recorded so far, oldest first.
    pub fn requests(&self) -> Vec<ReceivedRequest> {
        lock(&self.shared.requests).clone()
    }

    /// Waits until at least `n` requests were recorded or `timeout` passed, and returns all
    /// requests recorded so far (fewer than `n` if the time ran out).
    pub fn wait_for(&self, n: usize, timeout: Duration) -> Vec<ReceivedRequest> {
        let deadline = Instant::now() + timeout;
        let mut requests = lock(&self.shared.requests);
        while requests.len() < n {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            requests = self
                .shared
                .arrived
                .wait_timeout(requests, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        requests.clone()
    }
}

impl Drop for WebhookReceiver {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        // Wake the acceptor so that it sees the flag.
        let _ = TcpStream::connect((Ipv4Addr::LOCALHOST, self.port));
        if let Some(acceptor) = self.acceptor.take() {
            let _ = acceptor.join();
        }
    }
}

fn serve(stream: TcpStream, shared: &Shared) -> std::io::Result<()> {
    stream.set_read_timeout(Some(IDLE_TIMEOUT))?;
    stream.set_write_timeout(Some(IDLE_TIMEOUT))?;
    let mut out = stream.try_clone()?;
    let mut input = BufReader::new(stream);
    let request = match read_request(&mut input, &mut out) {
        Ok(Some(request)) => request,
        Ok(None) => return Ok(()),
        Err(e) => {
            let _ = respond(&mut out, 400, &format!("bad request: {e}\n"));
            return Ok(());
        }
    };
    lock(&shared.requests).push(request);
    shared.arrived.notify_all();

    let delay = Duration::from_millis(shared.delay_ms.load(Ordering::SeqCst));
    let until = Instant::now() + delay;
    while Instant::now() < until && !shared.stop.load(Ordering::SeqCst) {
        std::thread::sleep(
            until
                .saturating_duration_since(Instant::now())
                .min(Duration::from_millis(20)),
        );
    }
    let status = shared.status.load(Ordering::SeqCst);
    respond(&mut out, status, &format!("{}\n", reason(status)))
}

fn respond(out: &mut TcpStream, status: u16, body: &str) -> std::io::Result<()> {
    let response = format!(
        "HTTP/1.1 {status} {}\r\nContent-Type: text/plain; charset=utf-8\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        reason(status),
        body.len()
    );
    out.write_all(response.as_bytes())?;
    out.flush()?;
    let _ = out.shutdown(Shutdown::Write);
    Ok(())
}

fn invalid(why: &str) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, why.to_owned())
}

/// One request; `None` if the connection closed before sending anything.
fn read_request(
    input: &mut BufReader<TcpStream>,
    out: &mut TcpStream,
) -> std::io::Result<Option<ReceivedRequest>> {
    let mut head = Vec::new();
    loop {
        let mut line = Vec::new();
        let n = input
            .by_ref()
            .take((MAX_HEAD + 1 - head.len().min(MAX_HEAD)) as u64)
            .read_until(b'\n', &mut line)?;
        if n == 0 {
            if head.is_empty() {
                return Ok(None);
            }
            return Err(invalid("connection closed in the request head"));
        }
        head.extend_from_slice(&line);
        if head.len() > MAX_HEAD {
            return Err(invalid("request head too large"));
        }
        if line == b"\r\n" || line == b"\n" {
            break;
        }
    }
    let head = String::from_utf8(head).map_err(|_| invalid("request head is not UTF-8"))?;
    let mut lines = head.lines();
    let request_line = lines.next().unwrap_or_default();
    let mut parts = request_line.split(' ');
    let (Some(method), Some(path), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(invalid("malformed request line"));
    };
    if method.is_empty() || path.is_empty() || !version.starts_with("HTTP/1.") {
        return Err(invalid("malformed request line"));
    }
    let mut headers = Vec::new();
    for line in lines.filter(|l| !l.is_empty()) {
        let (name, value) = line
            .split_once(':')
            .ok_or_else(|| invalid("malformed header line"))?;
        headers.push((name.trim().to_ascii_lowercase(), value.trim().to_owned()));
    }
    let mut request = ReceivedRequest {
        method: method.to_owned(),
        path: path.to_owned(),
        headers,
        body: Vec::new(),
    };
    if request
        .header("expect")
        .is_some_and(|v| v.eq_ignore_ascii_case("100-continue"))
    {
        out.write_all(b"HTTP/1.1 100 Continue\r\n\r\n")?;
    }
    let chunked = request
        .header("transfer-encoding")
        .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"));
    request.body = if chunked {
        read_chunked(input)?
    } else {
        let length = match request.header("content-length") {
            Some(v) => v
                .parse::<usize>()
                .map_err(|_| invalid("malformed Content-Length"))?,
            None => 0,
        };
        if length > MAX_BODY {
            return Err(invalid("body too large"));
        }
        let mut body = vec![0; length];
        input.read_exact(&mut body)?;
        body
    };
    Ok(Some(request))
}

fn read_chunked(input: &mut BufReader<TcpStream>) -> std::io::Result<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let mut line = String::new();
        input.by_ref().take(1024).read_line(&mut line)?;
        let size = line.trim().split(';').next().unwrap_or_default();
        let size = usize::from_str_radix(size, 16).map_err(|_| invalid("malformed chunk size"))?;
        if size == 0 {
            // Trailers, up to the blank line.
            loop {
                line.clear();
                if input.by_ref().take(8192).read_line(&mut line)? == 0 || line.trim().is_empty() {
                    return Ok(body);
                }
            }
        }
        if body.len() + size > MAX_BODY {
            return Err(invalid("body too large"));
        }
        let start = body.len();
        body.resize(start + size, 0);
        input.read_exact(&mut body[start..])?;
        let mut crlf = [0; 2];
        input.read_exact(&mut crlf)?;
        if &crlf != b"\r\n" {
            return Err(invalid("malformed chunk"));
        }
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        204 => "No Content",
        301 => "Moved Permanently",
        302 => "Found",
        307 => "Temporary Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        408 => "Request Timeout",
        410 => "Gone",
        413 => "Content Too Large",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Status",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Sends `raw` and returns the whole response.
    fn exchange(port: u16, raw: &[u8]) -> String {
        let mut stream = TcpStream::connect((Ipv4Addr::LOCALHOST, port)).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        stream.write_all(raw).unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).unwrap();
        response
    }

    #[test]
    fn records_a_raw_request_and_answers() {
        let receiver = WebhookReceiver::start().unwrap();
        assert_eq!(
            receiver.url(),
            format!("http://127.0.0.1:{}/hook", receiver.port)
        );
        let response = exchange(
            receiver.port,
            b"POST /hook?x=1 HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n\
              Webhook-Id: evt_1\r\nContent-Length: 13\r\n\r\n{\"type\":\"t\"}\n",
        );
        assert!(response.starts_with("HTTP/1.1 200 OK\r\n"), "{response}");
        assert!(response.contains("\r\nConnection: close\r\n"), "{response}");
        let requests = receiver.wait_for(1, Duration::from_secs(5));
        assert_eq!(requests.len(), 1);
        let r = &requests[0];
        assert_eq!(r.method, "POST");
        assert_eq!(r.path, "/hook?x=1");
        assert_eq!(r.header("webhook-id"), Some("evt_1"));
        assert_eq!(r.header("WEBHOOK-ID"), Some("evt_1"));
        assert_eq!(
            r.headers[1],
            ("content-type".into(), "application/json".into())
        );
        assert_eq!(r.body, b"{\"type\":\"t\"}\n");
        assert_eq!(r.body_text(), "{\"type\":\"t\"}\n");
        assert_eq!(receiver.requests(), requests);
    }

    #[test]
    fn answers_the_configured_status_after_the_delay() {
        let receiver = WebhookReceiver::start().unwrap();
        receiver.set_response(410);
        receiver.set_delay(Duration::from_millis(300));
        let start = Instant::now();
        let response = exchange(receiver.port, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
        assert!(start.elapsed() >= Duration::from_millis(300));
        assert!(response.starts_with("HTTP/1.1 410 Gone\r\n"), "{response}");
        receiver.set_response(503);
        receiver.set_delay(Duration::ZERO);
        let response = exchange(receiver.port, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
        assert!(response.starts_with("HTTP/1.1 503 "), "{response}");
        assert_eq!(receiver.requests().len(), 2);
        assert!(receiver.requests()[0].body.is_empty());
    }

    #[test]
    fn reads_chunked_bodies_and_expect_continue() {
        let receiver = WebhookReceiver::start().unwrap();
        let response = exchange(
            receiver.port,
            b"POST /c HTTP/1.1\r\nTransfer-Encoding: chunked\r\nExpect: 100-continue\r\n\r\n\
              5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\n\r\n",
        );
        assert!(response.starts_with("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK"));
        let requests = receiver.wait_for(1, Duration::from_secs(5));
        assert_eq!(requests[0].body, b"hello world");
    }

    #[test]
    fn malformed_requests_get_400_and_are_not_recorded() {
        let receiver = WebhookReceiver::start().unwrap();
        for raw in [
            &b"NONSENSE\r\n\r\n"[..],
            b"POST / HTTP/1.1\r\nContent-Length: nope\r\n\r\n",
            b"POST / HTTP/1.1\r\nno colon here\r\n\r\n",
        ] {
            let response = exchange(receiver.port, raw);
            assert!(response.starts_with("HTTP/1.1 400 "), "{response}");
        }
        assert!(receiver.requests().is_empty());
    }

    #[test]
    fn wait_for_gives_up_after_the_timeout() {
        let receiver = WebhookReceiver::start().unwrap();
        assert!(receiver.wait_for(1, Duration::from_millis(100)).is_empty());
    }

    #[test]
    fn stops_when_dropped_even_while_delaying() {
        let receiver = WebhookReceiver::start().unwrap();
        // Answers after 10 minutes unless stopped: the guard below is far from both.
        receiver.set_delay(Duration::from_secs(600));
        let port = receiver.port;
        let client =
            std::thread::spawn(move || exchange(port, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"));
        assert_eq!(receiver.wait_for(1, Duration::from_secs(60)).len(), 1);
        let start = Instant::now();
        drop(receiver);
        let response = client.join().unwrap();
        assert!(start.elapsed() < Duration::from_secs(120));
        assert!(response.starts_with("HTTP/1.1 200 "), "{response}");
        assert!(TcpStream::connect((Ipv4Addr::LOCALHOST, port)).is_err());
    }
}
