//! The client's address, and when to believe `X-Forwarded-For`.
//!
//! Only a connection from a trusted proxy (`limits.trusted_proxies`) gets its
//! `X-Forwarded-For` read, and then from the right: each hop appends the address it saw,
//! so the first entry from the right that is not itself a trusted proxy is the client.
//! Entries further left were written by the client and prove nothing. Anything
//! unparsable stops the walk at the last trustworthy address.

use std::net::IpAddr;

/// An address range like `10.0.0.0/8`, `::1/128` or a bare address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    net: IpAddr,
    prefix: u8,
}

impl Cidr {
    pub fn parse(raw: &str) -> Option<Cidr> {
        let (addr, prefix) = match raw.trim().split_once('/') {
            Some((a, p)) => (a.parse::<IpAddr>().ok()?, Some(p.parse::<u8>().ok()?)),
            None => (raw.trim().parse::<IpAddr>().ok()?, None),
        };
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = prefix.unwrap_or(max);
        (prefix <= max).then_some(Cidr { net: addr, prefix })
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        match (canonical(self.net), ip) {
            (IpAddr::V4(n), IpAddr::V4(a)) => {
                masked(u32::from(n).into(), a.to_bits().into(), self.prefix, 32)
            }
            (IpAddr::V6(n), IpAddr::V6(a)) => masked(n.to_bits(), a.to_bits(), self.prefix, 128),
            _ => false,
        }
    }
}

fn masked(net: u128, addr: u128, prefix: u8, bits: u8) -> bool {
    if prefix == 0 {
        return true;
    }
    let shift = u32::from(bits - prefix);
    (net >> shift) == (addr >> shift)
}

/// IPv4-mapped IPv6 addresses (`::ffff:1.2.3.4`, what dual-stack sockets report) as IPv4.
pub fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    }
}

/// The key an address is counted under: an IPv4 address as is, an IPv6 address by its
/// /64 (one host commonly holds a whole /64, so counting single IPv6 addresses would give
/// one attacker 2^64 allowances).
pub fn limit_key(ip: IpAddr) -> String {
    match canonical(ip) {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => {
            let s = v6.segments();
            format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
        }
    }
}

/// The client address for a connection from `peer` carrying `forwarded_for` (every
/// `X-Forwarded-For` value, in order).
pub fn client_ip<'a>(
    peer: IpAddr,
    forwarded_for: impl DoubleEndedIterator<Item = &'a str>,
    trusted: &[Cidr],
) -> IpAddr {
    let peer = canonical(peer);
    let is_trusted = |ip: IpAddr| trusted.iter().any(|c| c.contains(ip));
    if !is_trusted(peer) {
        return peer;
    }
    let mut client = peer;
    for value in forwarded_for.rev() {
        for hop in value.rsplit(',') {
            let Ok(ip) = hop.trim().parse::<IpAddr>() else {
                return client;
            };
            client = canonical(ip);
            if !is_trusted(client) {
                return client;
            }
        }
    }
    client
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn ranges_match_by_prefix() {
        let c = Cidr::parse("10.0.0.0/8").unwrap();
        assert!(c.contains(ip("10.200.1.1")) && !c.contains(ip("11.0.0.1")));
        assert!(c.contains(ip("::ffff:10.1.2.3")), "mapped IPv4");
        assert!(Cidr::parse("::1").unwrap().contains(ip("::1")));
        assert!(Cidr::parse("0.0.0.0/0").unwrap().contains(ip("8.8.8.8")));
        for bad in ["10.0.0.0/33", "nope", "10.0.0.0/x", ""] {
            assert!(Cidr::parse(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn ipv6_addresses_count_by_their_64_prefix() {
        assert_eq!(limit_key(ip("203.0.113.9")), "203.0.113.9");
        assert_eq!(
            limit_key(ip("2001:db8:1:2::1")),
            limit_key(ip("2001:db8:1:2:ffff::9"))
        );
        assert_ne!(
            limit_key(ip("2001:db8:1:2::1")),
            limit_key(ip("2001:db8:1:3::1"))
        );
        assert_eq!(limit_key(ip("::ffff:10.0.0.1")), "10.0.0.1");
    }

    #[test]
    fn forwarded_for_is_believed_only_from_trusted_proxies() {
        let trusted = [
            Cidr::parse("127.0.0.1").unwrap(),
            Cidr::parse("10.0.0.0/8").unwrap(),
        ];
        // Untrusted peer: its header is ignored.
        assert_eq!(
            client_ip(ip("203.0.113.9"), ["1.2.3.4"].into_iter(), &trusted),
            ip("203.0.113.9")
        );
        // Trusted peer: the rightmost untrusted hop is the client; the forged left part is ignored.
        assert_eq!(
            client_ip(
                ip("127.0.0.1"),
                ["6.6.6.6, 198.51.100.7, 10.1.1.1"].into_iter(),
                &trusted
            ),
            ip("198.51.100.7")
        );
        // Several header lines are one list.
        assert_eq!(
            client_ip(
                ip("127.0.0.1"),
                ["6.6.6.6", "198.51.100.7"].into_iter(),
                &trusted
            ),
            ip("198.51.100.7")
        );
        // Garbage stops the walk at the last address we could trust.
        assert_eq!(
            client_ip(ip("127.0.0.1"), ["junk, 10.1.1.1"].into_iter(), &trusted),
            ip("10.1.1.1")
        );
        // No header: the proxy itself.
        assert_eq!(
            client_ip(ip("127.0.0.1"), std::iter::empty(), &trusted),
            ip("127.0.0.1")
        );
    }
}
