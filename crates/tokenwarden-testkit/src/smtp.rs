//! A minimal SMTP server for tests: it accepts every message and keeps it in memory.
//!
//! [`SmtpSink::start`] listens on a free port on 127.0.0.1 and serves each connection on its own
//! thread: a `220` greeting, `EHLO` (answered with `250-localhost` and `250 8BITMIME`, no
//! `STARTTLS`, no `AUTH`) or `HELO`, `MAIL FROM`, `RCPT TO`, `DATA` (ended by `CRLF.CRLF`,
//! dot-unstuffed), `RSET`, `NOOP`, `VRFY` (252) and `QUIT`; anything else gets `502`. Commands
//! out of order get `503`. Messages are kept as [`ReceivedMail`]s, read with
//! [`SmtpSink::messages`] or [`SmtpSink::wait_for`]. [`SmtpSink::reject_recipients`] makes it
//! refuse `RCPT TO` with a given reply, to test how a client takes 4xx and 5xx replies.
//!
//! Dropping the [`SmtpSink`] stops it from accepting connections. Only std is used, so it works
//! from plain `#[test]`s and from `#[tokio::test]`s alike.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// A connection idle for this long is closed.
const IDLE_TIMEOUT: Duration = Duration::from_secs(30);
/// The longest command line or message accepted.
const MAX_LINE: usize = 64 * 1024;
const MAX_MESSAGE: usize = 32 * 1024 * 1024;

/// One message the sink accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceivedMail {
    /// The `MAIL FROM` address, without the angle brackets.
    pub from: String,
    /// The `RCPT TO` addresses, without the angle brackets.
    pub to: Vec<String>,
    /// What came after `DATA` (headers, blank line, body), dot-unstuffed, lines ending in CRLF,
    /// without the final `.` line.
    pub data: String,
}

impl ReceivedMail {
    /// The first header named `name` (case-insensitive), unfolded, with RFC 2047 encoded words
    /// (`=?utf-8?b?...?=`, `=?utf-8?q?...?=`) decoded.
    pub fn header(&self, name: &str) -> Option<String> {
        let (head, _) = split_message(&self.data);
        let mut value: Option<String> = None;
        for line in head.split("\r\n") {
            if let Some(v) = value.as_mut() {
                if line.starts_with([' ', '\t']) {
                    v.push_str(line);
                    continue;
                }
                break;
            }
            if let Some((n, v)) = line.split_once(':')
                && n.trim().eq_ignore_ascii_case(name)
            {
                value = Some(v.to_owned());
            }
        }
        value.map(|v| decode_encoded_words(v.trim()))
    }

    /// The decoded `Subject` header.
    pub fn subject(&self) -> Option<String> {
        self.header("subject")
    }

    /// The body (after the first blank line), decoded from the `Content-Transfer-Encoding`
    /// (`base64` or `quoted-printable`; anything else as is), as UTF-8 with CRLF line ends.
    /// Meant for single-part text messages.
    pub fn body(&self) -> String {
        let (_, body) = split_message(&self.data);
        let encoding = self
            .header("content-transfer-encoding")
            .unwrap_or_default()
            .trim()
            .to_ascii_lowercase();
        match encoding.as_str() {
            "base64" => String::from_utf8_lossy(&decode_base64(body)).into_owned(),
            "quoted-printable" => {
                String::from_utf8_lossy(&decode_quoted_printable(body, false)).into_owned()
            }
            _ => body.to_owned(),
        }
    }
}

/// A running SMTP sink; see the module documentation.
pub struct SmtpSink {
    /// The port on 127.0.0.1 it listens on.
    pub port: u16,
    shared: Arc<Shared>,
    acceptor: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for SmtpSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpSink")
            .field("port", &self.port)
            .finish_non_exhaustive()
    }
}

#[derive(Default)]
struct Shared {
    mails: Mutex<Vec<ReceivedMail>>,
    arrived: Condvar,
    stop: AtomicBool,
    rcpt_reply: Mutex<Option<(u16, String)>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl SmtpSink {
    /// Starts the sink on a free port on 127.0.0.1.
    ///
    /// # Errors
    ///
    /// If no socket can be bound or the thread cannot be started.
    pub fn start() -> Result<SmtpSink, String> {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .map_err(|e| format!("could not bind the SMTP sink on 127.0.0.1:0: {e}"))?;
        let port = listener
            .local_addr()
            .map_err(|e| format!("could not read the SMTP sink's address: {e}"))?
            .port();
        let shared = Arc::new(Shared::default());
        let accept_shared = Arc::clone(&shared);
        let acceptor = std::thread::Builder::new()
            .name(format!("smtp-sink-{port}"))
            .spawn(move || {
                for stream in listener.incoming() {
                    if accept_shared.stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(stream) = stream else { continue };
                    let conn_shared = Arc::clone(&accept_shared);
                    let _ = std::thread::Builder::new()
                        .name(format!("smtp-sink-{port}-conn"))
                        .spawn(move || {
                            let _ = serve(stream, &conn_shared);
                        });
                }
            })
            .map_err(|e| format!("could not start the SMTP sink thread: {e}"))?;
        Ok(SmtpSink {
            port,
            shared,
            acceptor: Some(acceptor),
        })
    }

    /// Every message accepted so far, oldest first.
    pub fn messages(&self) -> Vec<ReceivedMail> {
        lock(&self.shared.mails).clone()
    }

    /// Waits until at least `n` messages were accepted or `timeout` passed, and returns all
    /// messages accepted so far (fewer than `n` if the time ran out).
    pub fn wait_for(&self, n: usize, timeout: Duration) -> Vec<ReceivedMail> {
        let deadline = Instant::now() + timeout;
        let mut mails = lock(&self.shared.mails);
        while mails.len() < n {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            mails = self
                .shared
                .arrived
                .wait_timeout(mails, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        mails.clone()
    }

    /// From now on, answers every `RCPT TO` with `code text` (e.g. `550` or `451`) instead of
    /// accepting the recipient; `None` goes back to accepting.
    pub fn reject_recipients(&self, reply: Option<(u16, &str)>) {
        *lock(&self.shared.rcpt_reply) = reply.map(|(code, text)| (code, text.to_owned()));
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        // Wake the acceptor so that it sees the flag.
        let _ = TcpStream::connect((Ipv4Addr::LOCALHOST, self.port));
        if let Some(acceptor) = self.acceptor.take() {
            let _ = acceptor.join();
        }
    }
}

/// The state of one SMTP conversation.
#[derive(Default)]
struct Transaction {
    from: Option<String>,
    to: Vec<String>,
}

fn serve(stream: TcpStream, shared: &Shared) -> std::io::Result<()> {
    stream.set_read_timeout(Some(IDLE_TIMEOUT))?;
    stream.set_write_timeout(Some(IDLE_TIMEOUT))?;
    let mut out = stream.try_clone()?;
    let mut input = BufReader::new(stream);
    out.write_all(b"220 localhost ESMTP tokenwarden-testkit sink\r\n")?;
    let mut tx = Transaction::default();
    let mut line = Vec::new();
    loop {
        if shared.stop.load(Ordering::SeqCst) {
            out.write_all(b"421 localhost closing\r\n")?;
            break;
        }
        line.clear();
        if read_line(&mut input, &mut line, MAX_LINE)? == 0 {
            break;
        }
        let text = String::from_utf8_lossy(&line);
        let text = text.trim_end_matches(['\r', '\n']);
        let (verb, arg) = text.split_once(' ').unwrap_or((text, ""));
        let reply: String = match verb.to_ascii_uppercase().as_str() {
            "EHLO" => {
                tx = Transaction::default();
                "250-localhost\r\n250 8BITMIME".into()
            }
            "HELO" => {
                tx = Transaction::default();
                "250 localhost".into()
            }
            "MAIL" => match address_after(arg, "FROM:") {
                Some(from) => {
                    tx = Transaction {
                        from: Some(from),
                        to: Vec::new(),
                    };
                    "250 OK".into()
                }
                None => "501 Syntax: MAIL FROM:<address>".into(),
            },
            "RCPT" => match (&tx.from, address_after(arg, "TO:")) {
                (None, _) => "503 MAIL first".into(),
                (Some(_), None) => "501 Syntax: RCPT TO:<address>".into(),
                (Some(_), Some(to)) => match lock(&shared.rcpt_reply).clone() {
                    Some((code, text)) => format!("{code} {text}"),
                    None => {
                        tx.to.push(to);
                        "250 OK".into()
                    }
                },
            },
            "DATA" => {
                if tx.from.is_none() || tx.to.is_empty() {
                    "503 RCPT first".into()
                } else {
                    out.write_all(b"354 End data with <CR><LF>.<CR><LF>\r\n")?;
                    let Some(data) = read_data(&mut input)? else {
                        break;
                    };
                    let mail = ReceivedMail {
                        from: tx.from.take().unwrap_or_default(),
                        to: std::mem::take(&mut tx.to),
                        data,
                    };
                    let n = {
                        let mut mails = lock(&shared.mails);
                        mails.push(mail);
                        mails.len()
                    };
                    shared.arrived.notify_all();
                    format!("250 OK queued as {n}")
                }
            }
            "RSET" => {
                tx = Transaction::default();
                "250 OK".into()
            }
            "NOOP" => "250 OK".into(),
            "VRFY" => "252 Cannot VRFY user".into(),
            "QUIT" => {
                out.write_all(b"221 localhost closing\r\n")?;
                break;
            }
            "" => "500 Empty command".into(),
            _ => "502 Command not implemented".into(),
        };
        out.write_all(reply.as_bytes())?;
        out.write_all(b"\r\n")?;
    }
    let _ = out.shutdown(Shutdown::Both);
    Ok(())
}

/// Reads one line (up to and including `\n`) of at most `max` bytes; 0 at end of input.
fn read_line(input: &mut impl BufRead, line: &mut Vec<u8>, max: usize) -> std::io::Result<usize> {
    let n = input.by_ref().take(max as u64).read_until(b'\n', line)?;
    if n == max && !line.ends_with(b"\n") {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "line too long",
        ));
    }
    Ok(n)
}

/// The message after `354`, up to the `.` line, dot-unstuffed; `None` if the input ended first.
fn read_data(input: &mut impl BufRead) -> std::io::Result<Option<String>> {
    let mut data = Vec::new();
    let mut line = Vec::new();
    loop {
        line.clear();
        if read_line(input, &mut line, MAX_LINE)? == 0 {
            return Ok(None);
        }
        if line == b".\r\n" || line == b".\n" {
            return Ok(Some(String::from_utf8_lossy(&data).into_owned()));
        }
        let unstuffed = line.strip_prefix(b".").unwrap_or(&line);
        data.extend_from_slice(unstuffed);
        if data.len() > MAX_MESSAGE {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                "message too large",
            ));
        }
    }
}

/// The address in `FROM:<a@b> PARAMS` (prefix case-insensitive), without the brackets.
fn address_after(arg: &str, prefix: &str) -> Option<String> {
    let arg = arg.trim_start();
    let head = arg.get(..prefix.len())?;
    if !head.eq_ignore_ascii_case(prefix) {
        return None;
    }
    let rest = arg[prefix.len()..].trim_start();
    let address = match rest.strip_prefix('<') {
        Some(inner) => inner.split_once('>')?.0,
        None => rest.split_whitespace().next()?,
    };
    Some(address.to_owned())
}

/// Headers and body of a message (split at the first blank line).
fn split_message(data: &str) -> (&str, &str) {
    data.split_once("\r\n\r\n")
        .or_else(|| data.split_once("\n\n"))
        .unwrap_or((data, ""))
}

/// Decodes RFC 2047 encoded words in UTF-8 or US-ASCII; whitespace between two encoded words
/// is dropped, as the RFC says. Anything it does not understand is kept as is.
fn decode_encoded_words(s: &str) -> String {
    let mut out = String::new();
    let mut pending: Vec<u8> = Vec::new(); // bytes of a run of adjacent encoded words
    let mut gap = String::new(); // whitespace after the last encoded word
    let mut rest = s;
    while !rest.is_empty() {
        if let Some((bytes, len)) = encoded_word(rest) {
            gap.clear(); // whitespace between encoded words does not count
            pending.extend(bytes);
            rest = &rest[len..];
            continue;
        }
        let c = rest.chars().next().unwrap_or(' ');
        if !pending.is_empty() && c.is_whitespace() {
            gap.push(c);
        } else {
            if !pending.is_empty() {
                out.push_str(&String::from_utf8_lossy(&pending));
                pending.clear();
            }
            out.push_str(&gap);
            gap.clear();
            out.push(c);
        }
        rest = &rest[c.len_utf8()..];
    }
    out.push_str(&String::from_utf8_lossy(&pending));
    out.push_str(&gap);
    out
}

/// One encoded word at the start of `s`: its bytes and its length in `s`.
fn encoded_word(s: &str) -> Option<(Vec<u8>, usize)> {
    let inner = s.strip_prefix("=?")?;
    let (charset, rest) = inner.split_once('?')?;
    let (encoding, rest) = rest.split_once('?')?;
    let (text, _) = rest.split_once("?=")?;
    let charset = charset.split('*').next()?.to_ascii_lowercase();
    if !matches!(charset.as_str(), "utf-8" | "us-ascii") || text.contains(char::is_whitespace) {
        return None;
    }
    let bytes = match encoding {
        "b" | "B" => decode_base64(text),
        "q" | "Q" => decode_quoted_printable(text, true),
        _ => return None,
    };
    let len = 2 + charset.len() + 1 + encoding.len() + 1 + text.len() + 2;
    Some((bytes, len))
}

/// Base64 (standard alphabet); whitespace and padding are skipped, other bytes ignored.
fn decode_base64(s: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let mut acc: u32 = 0;
    let mut bits = 0;
    for b in s.bytes() {
        let v = match b {
            b'A'..=b'Z' => b - b'A',
            b'a'..=b'z' => b - b'a' + 26,
            b'0'..=b'9' => b - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => continue,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push(((acc >> bits) & 0xff) as u8);
        }
    }
    out
}

/// Quoted-printable (`=XX`, `=` at the end of a line is a soft break); in headers (`q_word`)
/// `_` is a space.
fn decode_quoted_printable(s: &str, q_word: bool) -> Vec<u8> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'=' if bytes[i + 1..].starts_with(b"\r\n") => i += 3,
            b'=' if bytes[i + 1..].starts_with(b"\n") => i += 2,
            b'=' => {
                let hex = bytes.get(i + 1..i + 3).and_then(|h| {
                    std::str::from_utf8(h)
                        .ok()
                        .and_then(|h| u8::from_str_radix(h, 16).ok())
                });
                match hex {
                    Some(b) => {
                        out.push(b);
                        i += 3;
                    }
                    None => {
                        out.push(b'=');
                        i += 1;
                    }
                }
            }
            b'_' if q_word => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Client {
        input: BufReader<TcpStream>,
        out: TcpStream,
    }

    impl Client {
        fn connect(port: u16) -> Client {
            let stream = TcpStream::connect((Ipv4Addr::LOCALHOST, port)).unwrap();
            stream
                .set_read_timeout(Some(Duration::from_secs(10)))
                .unwrap();
            let out = stream.try_clone().unwrap();
            Client {
                input: BufReader::new(stream),
                out,
            }
        }

        /// Reads one reply (all its lines).
        fn reply(&mut self) -> String {
            let mut all = String::new();
            loop {
                let mut line = String::new();
                self.input.read_line(&mut line).unwrap();
                assert!(line.ends_with("\r\n"), "{line:?}");
                all.push_str(&line);
                if line.as_bytes().get(3) != Some(&b'-') {
                    return all;
                }
            }
        }

        fn send(&mut self, line: &str) -> String {
            self.out.write_all(line.as_bytes()).unwrap();
            self.out.write_all(b"\r\n").unwrap();
            self.reply()
        }
    }

    #[test]
    fn a_raw_conversation_delivers_a_message() {
        let sink = SmtpSink::start().unwrap();
        let mut c = Client::connect(sink.port);
        assert!(c.reply().starts_with("220 "));
        assert_eq!(
            c.send("EHLO client.test"),
            "250-localhost\r\n250 8BITMIME\r\n"
        );
        assert!(c.send("DATA").starts_with("503 "));
        assert!(c.send("RCPT TO:<a@example.com>").starts_with("503 "));
        assert!(
            c.send("MAIL FROM:<tw@example.com> BODY=8BITMIME")
                .starts_with("250 ")
        );
        assert!(c.send("RCPT TO:<a@example.com>").starts_with("250 "));
        assert!(c.send("rcpt to: <b@example.com>").starts_with("250 "));
        assert!(c.send("NOOP").starts_with("250 "));
        assert!(c.send("DATA").starts_with("354 "));
        c.out
            .write_all(
                b"From: tw@example.com\r\nSubject: Hello\r\n\r\nline one\r\n..leading dot\r\n.\r\n",
            )
            .unwrap();
        assert!(c.reply().starts_with("250 "));
        assert!(c.send("STARTTLS").starts_with("502 "));
        assert!(c.send("VRFY x").starts_with("252 "));
        assert!(c.send("QUIT").starts_with("221 "));
        // The server closed the connection.
        let mut rest = String::new();
        c.input.read_to_string(&mut rest).unwrap();
        assert_eq!(rest, "");

        let mails = sink.wait_for(1, Duration::from_secs(5));
        assert_eq!(mails.len(), 1);
        let mail = &mails[0];
        assert_eq!(mail.from, "tw@example.com");
        assert_eq!(mail.to, ["a@example.com", "b@example.com"]);
        assert_eq!(
            mail.data,
            "From: tw@example.com\r\nSubject: Hello\r\n\r\nline one\r\n.leading dot\r\n"
        );
        assert_eq!(mail.subject().as_deref(), Some("Hello"));
        assert_eq!(mail.body(), "line one\r\n.leading dot\r\n");
        assert_eq!(sink.messages(), mails);
    }

    #[test]
    fn rset_and_helo_reset_the_transaction_and_several_messages_are_kept() {
        let sink = SmtpSink::start().unwrap();
        let mut c = Client::connect(sink.port);
        c.reply();
        assert_eq!(c.send("HELO x"), "250 localhost\r\n");
        c.send("MAIL FROM:<a@x>");
        c.send("RCPT TO:<b@x>");
        assert!(c.send("RSET").starts_with("250 "));
        assert!(c.send("DATA").starts_with("503 "));
        for n in 1..=2 {
            c.send("MAIL FROM:<>");
            c.send(&format!("RCPT TO:<r{n}@x>"));
            c.send("DATA");
            c.out.write_all(b"Subject: n\r\n\r\nbody\r\n.\r\n").unwrap();
            assert!(c.reply().starts_with(&format!("250 OK queued as {n}")));
        }
        c.send("QUIT");
        let mails = sink.wait_for(2, Duration::from_secs(5));
        assert_eq!(mails.len(), 2);
        assert_eq!(mails[0].from, "");
        assert_eq!(mails[1].to, ["r2@x"]);
    }

    #[test]
    fn recipients_can_be_rejected() {
        let sink = SmtpSink::start().unwrap();
        sink.reject_recipients(Some((550, "5.1.1 no such user")));
        let mut c = Client::connect(sink.port);
        c.reply();
        c.send("EHLO x");
        c.send("MAIL FROM:<a@x>");
        assert_eq!(c.send("RCPT TO:<b@x>"), "550 5.1.1 no such user\r\n");
        sink.reject_recipients(None);
        assert!(c.send("RCPT TO:<b@x>").starts_with("250 "));
    }

    #[test]
    fn wait_for_gives_up_after_the_timeout() {
        let sink = SmtpSink::start().unwrap();
        let start = Instant::now();
        assert!(sink.wait_for(1, Duration::from_millis(200)).is_empty());
        assert!(start.elapsed() >= Duration::from_millis(200));
    }

    #[test]
    fn stops_when_dropped() {
        let sink = SmtpSink::start().unwrap();
        let port = sink.port;
        drop(sink);
        assert!(TcpStream::connect((Ipv4Addr::LOCALHOST, port)).is_err());
    }

    #[test]
    fn decodes_encoded_headers_and_bodies() {
        let mail = ReceivedMail {
            from: String::new(),
            to: Vec::new(),
            data: "Subject: =?utf-8?b?W3Rva2Vud2FyZGVuXSBUb2tlbiAi?=\r\n \
                   =?utf-8?b?w6nDqSIgZXhwaXJlZA==?=\r\n\
                   X-Q: =?UTF-8?Q?caf=C3=A9_ok?= plain\r\n\
                   Content-Transfer-Encoding: quoted-printable\r\n\
                   \r\n\
                   caf=C3=A9 is a lo=\r\nng line\r\n"
                .into(),
        };
        assert_eq!(
            mail.subject().as_deref(),
            Some("[tokenwarden] Token \"éé\" expired")
        );
        assert_eq!(mail.header("x-q").as_deref(), Some("café ok plain"));
        assert_eq!(mail.header("missing"), None);
        assert_eq!(mail.body(), "café is a long line\r\n");

        let b64 = ReceivedMail {
            data: "Content-Transfer-Encoding: base64\r\n\r\nw6nDqSBvaw==\r\n".into(),
            ..mail
        };
        assert_eq!(b64.body(), "éé ok");
        assert_eq!(
            decode_encoded_words("=?iso-8859-1?q?x?= y"),
            "=?iso-8859-1?q?x?= y"
        );
    }
}
