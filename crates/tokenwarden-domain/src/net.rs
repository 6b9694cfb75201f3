//! Where plain http is allowed: only to this machine. The one place this rule lives; provider
//! endpoints, probe URLs and Snowflake account URLs all ask it.

use std::net::IpAddr;

/// Whether `host` (a URL's host, IPv6 in brackets or not) is this machine: an IP address in
/// 127.0.0.0/8, `::1`, or exactly `localhost`. Decided on the parsed address, never on a text
/// prefix (`127.evil.com` and `127.0.0.1.nip.io` are other machines).
pub fn is_loopback_host(host: &str) -> bool {
    let h = match host.strip_prefix('[') {
        Some(inner) => match inner.strip_suffix(']') {
            Some(v6) => v6,
            None => return false,
        },
        None => host,
    };
    if h.eq_ignore_ascii_case("localhost") {
        return true;
    }
    match h.parse::<IpAddr>() {
        Ok(IpAddr::V4(a)) => a.is_loopback(),
        Ok(IpAddr::V6(a)) => a.is_loopback(),
        Err(_) => false,
    }
}

/// Whether a URL authority (`host[:port]`, `[v6][:port]`) names this machine, with no
/// credentials (`user@`) and a numeric port if any.
pub fn is_loopback_authority(authority: &str) -> bool {
    if authority.contains('@') {
        return false;
    }
    let (host, port) = if authority.starts_with('[') {
        match authority.find(']') {
            Some(i) => (&authority[..=i], &authority[i + 1..]),
            None => return false,
        }
    } else {
        match authority.rsplit_once(':') {
            Some((h, _)) => (h, &authority[h.len()..]),
            None => (authority, ""),
        }
    };
    let port_ok = port.is_empty()
        || port
            .strip_prefix(':')
            .is_some_and(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
    port_ok && is_loopback_host(host)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 9, bug 2: loopback was decided by the text prefix `127.`.
    #[test]
    fn issue9_bug2_loopback_is_decided_on_the_parsed_address() {
        for ok in [
            "127.0.0.1",
            "127.8.9.10",
            "localhost",
            "LOCALHOST",
            "::1",
            "[::1]",
        ] {
            assert!(is_loopback_host(ok), "{ok} is loopback");
        }
        for bad in [
            "127.evil.com",
            "127.0.0.1.nip.io",
            "localhost.evil.com",
            "evil-localhost",
            "128.0.0.1",
            "10.0.0.1",
            "::2",
            "[::1",
            "",
        ] {
            assert!(!is_loopback_host(bad), "{bad} is not loopback");
        }
        for ok in ["127.0.0.1:8080", "[::1]:9000", "localhost", "[::1]"] {
            assert!(is_loopback_authority(ok), "{ok} is loopback");
        }
        for bad in [
            "127.evil.com:80",
            "127.0.0.1.nip.io:80",
            "user@127.0.0.1",
            "127.0.0.1:x",
            "127.0.0.1:",
            "[::1]x",
        ] {
            assert!(!is_loopback_authority(bad), "{bad} is not loopback");
        }
    }
}
