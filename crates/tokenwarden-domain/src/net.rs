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

/// An address range of `trusted_proxies`: `10.0.0.0/8`, `fd00::/8`, or one address (`127.0.0.1`,
/// a /32 or /128).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpNet {
    addr: IpAddr,
    prefix: u8,
}

impl IpNet {
    /// `ADDRESS` or `ADDRESS/PREFIX`; the address bits past the prefix must be zero.
    pub fn parse(s: &str) -> Result<Self, String> {
        let s = s.trim();
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr: IpAddr = addr
            .parse()
            .map_err(|_| format!("{s:?} is not an IP address or ADDRESS/PREFIX range"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => p
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| format!("{s:?}: the prefix must be 0 to {max}"))?,
        };
        let net = Self { addr, prefix };
        if !net.contains(addr) || net.masked(addr) != bits(addr) {
            return Err(format!(
                "{s:?}: the address has bits set past the /{prefix} prefix"
            ));
        }
        Ok(net)
    }

    fn masked(&self, ip: IpAddr) -> u128 {
        let width = if ip.is_ipv4() { 32 } else { 128 };
        let shift = width - u32::from(self.prefix);
        if shift >= 128 {
            0
        } else {
            (bits(ip) >> shift) << shift
        }
    }

    /// Whether `ip` is in the range (an IPv4-mapped IPv6 address counts as its IPv4 address).
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        if ip.is_ipv4() != self.addr.is_ipv4() {
            return false;
        }
        self.masked(ip) == self.masked(self.addr)
    }
}

impl std::fmt::Display for IpNet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

fn bits(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(a) => u128::from(u32::from(a)),
        IpAddr::V6(a) => u128::from(a),
    }
}

/// The client's address: the peer's, unless the peer is one of the `trusted` proxies; then
/// the nearest address in `X-Forwarded-For` (`forwarded`: the header's values in order) that
/// is not a trusted proxy, read from the right (entries further left were written by the
/// client and prove nothing). An entry that is not an address stops the walk at the last
/// trusted hop. With nothing trusted (the default) forwarding headers are ignored.
pub fn client_address<'a>(
    peer: IpAddr,
    forwarded: impl DoubleEndedIterator<Item = &'a str>,
    trusted: &[IpNet],
) -> IpAddr {
    let is_trusted = |ip: IpAddr| trusted.iter().any(|n| n.contains(ip));
    let mut client = peer;
    if !is_trusted(peer) {
        return client;
    }
    for value in forwarded.rev() {
        for entry in value.rsplit(',') {
            let entry = entry.trim();
            let entry = entry
                .strip_prefix('[')
                .and_then(|e| e.split_once(']').map(|(a, _)| a))
                .unwrap_or(entry);
            let Ok(ip) = entry.parse::<IpAddr>() else {
                return client;
            };
            client = ip;
            if !is_trusted(ip) {
                return client;
            }
        }
    }
    client
}

#[cfg(test)]
mod proxy_tests {
    use super::*;

    fn nets(v: &[&str]) -> Vec<IpNet> {
        v.iter().map(|s| IpNet::parse(s).unwrap()).collect()
    }

    #[test]
    fn ranges_parse_and_contain() {
        let n = IpNet::parse("10.0.0.0/8").unwrap();
        assert!(n.contains("10.1.2.3".parse().unwrap()));
        assert!(n.contains("::ffff:10.1.2.3".parse().unwrap()));
        assert!(!n.contains("11.0.0.1".parse().unwrap()));
        assert!(
            IpNet::parse("127.0.0.1")
                .unwrap()
                .contains("127.0.0.1".parse().unwrap())
        );
        assert!(
            !IpNet::parse("127.0.0.1")
                .unwrap()
                .contains("127.0.0.2".parse().unwrap())
        );
        assert!(
            IpNet::parse("fd00::/8")
                .unwrap()
                .contains("fd12::1".parse().unwrap())
        );
        assert!(
            IpNet::parse("0.0.0.0/0")
                .unwrap()
                .contains("8.8.8.8".parse().unwrap())
        );
        for bad in ["10.0.0.1/8", "10.0.0.0/33", "nope", "10.0.0.0/x", ""] {
            assert!(IpNet::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn forwarded_for_is_believed_only_from_trusted_proxies() {
        let trusted = nets(&["127.0.0.1", "10.0.0.0/8"]);
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        // Not from a proxy: the header is ignored.
        assert_eq!(
            client_address(ip("203.0.113.5"), ["198.51.100.1"].into_iter(), &trusted),
            ip("203.0.113.5")
        );
        // From the proxy: the nearest untrusted entry, not the client-written left end.
        assert_eq!(
            client_address(
                ip("127.0.0.1"),
                ["1.1.1.1, 198.51.100.7", "10.0.0.3"].into_iter(),
                &trusted
            ),
            ip("198.51.100.7")
        );
        // Garbage stops the walk at the last trusted hop.
        assert_eq!(
            client_address(ip("127.0.0.1"), ["evil, 10.0.0.3"].into_iter(), &trusted),
            ip("10.0.0.3")
        );
        // No header: the proxy itself.
        assert_eq!(
            client_address(ip("127.0.0.1"), std::iter::empty(), &trusted),
            ip("127.0.0.1")
        );
        // Nothing trusted: the peer, always.
        assert_eq!(
            client_address(ip("127.0.0.1"), ["198.51.100.7"].into_iter(), &[]),
            ip("127.0.0.1")
        );
    }
}
