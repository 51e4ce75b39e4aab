//! The DNS check of `doctor`: do the Cync cloud names resolve to this host? Name resolution and
//! "which addresses are mine" sit behind [`NetworkView`], so tests can play any network without
//! touching the machine's resolver.
//!
//! The check asks the resolver *this* host uses. Devices ask the one their DHCP hands out; the
//! two usually agree, and the advice says to verify with `dig` against the devices' server when
//! they may not.

use std::fmt::Write as _;
use std::io;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs, UdpSocket};

use super::{Finding, Status};

/// The names Cync devices look up for the cloud (`docs/protocol.md#transport-and-tls`); firmware picks one.
pub const CLOUD_HOSTS: [&str; 3] = [
    "cm.gelighting.com",
    "cm-sec.gelighting.com",
    "cm-ge.xlink.cn",
];

/// What the DNS check needs to know about the network, injectable for tests.
pub trait NetworkView: Send + Sync {
    /// Every address `host` resolves to here.
    fn resolve(&self, host: &str) -> io::Result<Vec<IpAddr>>;
    /// Whether `ip` belongs to one of this host's interfaces.
    fn is_local(&self, ip: IpAddr) -> bool;
    /// This host's address on its LAN (the one devices should be sent to), when known.
    fn lan_address(&self) -> Option<IpAddr>;
}

/// The real network: the system resolver and this host's interfaces.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemNetwork;

impl NetworkView for SystemNetwork {
    fn resolve(&self, host: &str) -> io::Result<Vec<IpAddr>> {
        let mut ips: Vec<IpAddr> = (host, 0u16)
            .to_socket_addrs()?
            .map(|a: SocketAddr| a.ip())
            .collect();
        ips.sort();
        ips.dedup();
        Ok(ips)
    }

    /// An address is ours exactly when a socket can be bound to it; this needs no interface
    /// enumeration API, which std lacks.
    fn is_local(&self, ip: IpAddr) -> bool {
        UdpSocket::bind(SocketAddr::new(ip, 0)).is_ok()
    }

    /// The source address of the default route: "connecting" a UDP socket picks the route and
    /// sends nothing. 192.0.2.1 is TEST-NET-1 (RFC 5737), never a real peer.
    fn lan_address(&self) -> Option<IpAddr> {
        let socket = UdpSocket::bind("0.0.0.0:0").ok()?;
        socket.connect("192.0.2.1:9").ok()?;
        let ip = socket.local_addr().ok()?.ip();
        (!ip.is_unspecified()).then_some(ip)
    }
}

/// One finding per cloud host name: PASS when every address it resolves to is `expect` (when
/// given) or a non-loopback address of this host.
pub fn dns_findings(network: &dyn NetworkView, expect: Option<IpAddr>) -> Vec<Finding> {
    let target = expect.or_else(|| network.lan_address());
    let target_text =
        target.map_or_else(|| "this host's LAN address".to_owned(), |ip| ip.to_string());
    CLOUD_HOSTS
        .iter()
        .map(|host| host_finding(network, host, expect, &target_text))
        .collect()
}

fn host_finding(
    network: &dyn NetworkView,
    host: &str,
    expect: Option<IpAddr>,
    target: &str,
) -> Finding {
    let check = format!("dns {host}");
    let redirect = format!("point {host} at {target} in your DNS server (docs/dns.md)");
    let ips = match network.resolve(host) {
        Ok(ips) if !ips.is_empty() => ips,
        Ok(_) => return Finding::new(Status::Fail, check, "has no address").advice(redirect),
        Err(e) => {
            return Finding::new(Status::Fail, check, format!("does not resolve: {e}"))
                .advice(redirect)
        }
    };
    let list = join(&ips);
    if let Some(expected) = expect {
        if ips.iter().all(|ip| *ip == expected) {
            return Finding::new(
                Status::Pass,
                check,
                format!("resolves to {list}, as expected"),
            );
        }
        return Finding::new(
            Status::Fail,
            check,
            format!(
                "resolves to {list}, not {expected}: devices asking this resolver go elsewhere"
            ),
        )
        .advice(redirect);
    }
    if let Some(lo) = ips.iter().find(|ip| ip.is_loopback()) {
        return Finding::new(
            Status::Fail,
            check,
            format!("resolves to {list}: {lo} is loopback (a hosts-file entry?), devices cannot reach it"),
        )
        .advice(redirect);
    }
    let foreign: Vec<IpAddr> = ips
        .iter()
        .copied()
        .filter(|ip| !network.is_local(*ip))
        .collect();
    if foreign.is_empty() {
        return Finding::new(
            Status::Pass,
            check,
            format!("resolves to {list}, this host"),
        );
    }
    Finding::new(
        Status::Fail,
        check,
        format!(
            "resolves to {list}; {} is not this host, so devices still reach the cloud",
            join(&foreign)
        ),
    )
    .advice(format!(
        "{redirect}; in a container or behind NAT, name the address devices should use with \
         --expect-ip"
    ))
}

fn join(ips: &[IpAddr]) -> String {
    let mut text = String::new();
    for (i, ip) in ips.iter().enumerate() {
        if i > 0 {
            text.push_str(", ");
        }
        let _ = write!(text, "{ip}");
    }
    text
}
