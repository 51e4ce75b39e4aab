//! Source networks for the device listener's allow list, in CIDR form.
//!
//! Kept here rather than taken from a crate because of one rule a general-purpose CIDR type does
//! not apply: a dual-stack listener reports IPv4 clients as IPv4-mapped IPv6 addresses, and those
//! must match an IPv4 network.

use std::fmt;
use std::net::IpAddr;

/// A source network in CIDR form; a bare address is a /32 (IPv4) or /128 (IPv6).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct IpNet {
    addr: IpAddr,
    prefix: u8,
}

impl IpNet {
    /// Parses `"192.168.1.0/24"`, `"10.0.0.7"`, `"fd00::/8"`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let (addr_text, prefix_text) = match text.trim().split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (text.trim(), None),
        };
        let addr: IpAddr = addr_text.parse().map_err(|_| {
            format!("{text:?} is not an IP address or network (e.g. \"192.168.1.0/24\")")
        })?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix_text {
            None => max,
            Some(p) => p
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| format!("{text:?} has a prefix length outside 0..={max}"))?,
        };
        Ok(IpNet { addr, prefix })
    }

    /// True when `ip` lies in this network. IPv4-mapped IPv6 addresses (`::ffff:a.b.c.d`, what a
    /// dual-stack listener reports for IPv4 clients) are compared as IPv4.
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr.to_canonical(), ip.to_canonical()) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                prefix_eq(&net.octets(), &ip.octets(), self.prefix)
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                prefix_eq(&net.octets(), &ip.octets(), self.prefix)
            }
            _ => false,
        }
    }
}

impl fmt::Display for IpNet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

fn prefix_eq(a: &[u8], b: &[u8], prefix: u8) -> bool {
    let full = usize::from(prefix / 8);
    let rest = prefix % 8;
    if a[..full] != b[..full] {
        return false;
    }
    if rest == 0 {
        return true;
    }
    let mask = 0xFFu8 << (8 - rest);
    (a[full] & mask) == (b[full] & mask)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn networks_match_by_prefix_and_see_through_ipv4_mapped_addresses() {
        let lan = IpNet::parse("192.168.1.0/24").unwrap();
        assert!(lan.contains("192.168.1.77".parse().unwrap()));
        assert!(lan.contains("::ffff:192.168.1.77".parse().unwrap()));
        assert!(!lan.contains("192.168.2.1".parse().unwrap()));
        let odd = IpNet::parse("10.0.0.0/13").unwrap();
        assert!(odd.contains("10.7.255.255".parse().unwrap()));
        assert!(!odd.contains("10.8.0.0".parse().unwrap()));
        assert!(IpNet::parse("0.0.0.0/0")
            .unwrap()
            .contains("8.8.8.8".parse().unwrap()));
        assert!(IpNet::parse("10.0.0.1")
            .unwrap()
            .contains("10.0.0.1".parse().unwrap()));
        assert!(IpNet::parse("10.0.0.0/33").is_err());
        assert!(IpNet::parse("lan").is_err());
    }
}
