//! `doctor`'s DNS check over a scripted network: each cloud name is judged on every address it
//! resolves to, against this host's addresses or the one named with `--expect-ip`.

use std::collections::HashMap;
use std::io;
use std::net::IpAddr;

use cync_bridge::cli::doctor::{dns_findings, Finding, NetworkView, Status, CLOUD_HOSTS};

const LAN: &str = "192.168.1.10";
const CLOUD: &str = "35.172.20.3";

/// A network where each name has a scripted answer and `local` are this host's addresses.
struct Scripted {
    answers: HashMap<&'static str, Vec<IpAddr>>,
    local: Vec<IpAddr>,
}

impl Scripted {
    /// This host is 192.168.1.10; every cloud name resolves to `ip`.
    fn all_to(ip: &str) -> Scripted {
        let ip: IpAddr = ip.parse().unwrap();
        Scripted {
            answers: CLOUD_HOSTS.iter().map(|h| (*h, vec![ip])).collect(),
            local: vec![LAN.parse().unwrap(), "127.0.0.1".parse().unwrap()],
        }
    }
}

impl NetworkView for Scripted {
    fn resolve(&self, host: &str) -> io::Result<Vec<IpAddr>> {
        self.answers
            .get(host)
            .cloned()
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "Name or service not known"))
    }
    fn is_local(&self, ip: IpAddr) -> bool {
        self.local.contains(&ip)
    }
    fn lan_address(&self) -> Option<IpAddr> {
        self.local.first().copied()
    }
}

fn statuses(findings: &[Finding]) -> Vec<Status> {
    findings.iter().map(|f| f.status).collect()
}

#[test]
fn every_cloud_name_pointing_at_this_host_passes_one_line_each() {
    let findings = dns_findings(&Scripted::all_to(LAN), None);
    assert_eq!(statuses(&findings), vec![Status::Pass; 3]);
    let checks: Vec<&str> = findings.iter().map(|f| f.check.as_str()).collect();
    assert_eq!(
        checks,
        vec![
            "dns cm.gelighting.com",
            "dns cm-sec.gelighting.com",
            "dns cm-ge.xlink.cn"
        ]
    );
    assert_eq!(
        findings[0].to_string(),
        "PASS dns cm.gelighting.com: resolves to 192.168.1.10, this host"
    );
}

#[test]
fn a_name_still_pointing_at_the_cloud_fails_and_says_where_to_point_it() {
    let mut network = Scripted::all_to(LAN);
    network
        .answers
        .insert("cm-ge.xlink.cn", vec![CLOUD.parse().unwrap()]);
    let findings = dns_findings(&network, None);
    assert_eq!(
        statuses(&findings),
        vec![Status::Pass, Status::Pass, Status::Fail]
    );
    let advice = findings[2].advice.as_deref().unwrap();
    assert!(
        advice.contains("point cm-ge.xlink.cn at 192.168.1.10"),
        "{advice}"
    );
    assert!(findings[2].message.contains(CLOUD), "{}", findings[2]);
}

#[test]
fn one_cloud_address_among_local_ones_still_fails() {
    let mut network = Scripted::all_to(LAN);
    network.answers.insert(
        "cm.gelighting.com",
        vec![LAN.parse().unwrap(), CLOUD.parse().unwrap()],
    );
    let findings = dns_findings(&network, None);
    assert_eq!(findings[0].status, Status::Fail, "{}", findings[0]);
}

#[test]
fn unresolvable_names_fail_with_the_resolver_error() {
    let network = Scripted {
        answers: HashMap::new(),
        local: vec![LAN.parse().unwrap()],
    };
    let findings = dns_findings(&network, None);
    assert_eq!(statuses(&findings), vec![Status::Fail; 3]);
    assert!(
        findings[1]
            .to_string()
            .starts_with("FAIL dns cm-sec.gelighting.com: does not resolve: Name or service"),
        "{}",
        findings[1]
    );
}

#[test]
fn a_hosts_file_entry_to_loopback_fails_because_devices_cannot_use_it() {
    let findings = dns_findings(&Scripted::all_to("127.0.0.1"), None);
    assert_eq!(statuses(&findings), vec![Status::Fail; 3]);
    assert!(findings[0].message.contains("loopback"), "{}", findings[0]);
}

#[test]
fn expect_ip_judges_against_the_named_address_for_containers() {
    // In a container the host's LAN address is not an interface address here.
    let mut network = Scripted::all_to(LAN);
    network.local = vec!["172.17.0.2".parse().unwrap()];
    let without = dns_findings(&network, None);
    assert_eq!(statuses(&without), vec![Status::Fail; 3]);
    assert!(
        without[0]
            .advice
            .as_deref()
            .unwrap()
            .contains("--expect-ip"),
        "{}",
        without[0]
    );

    let with = dns_findings(&network, Some(LAN.parse().unwrap()));
    assert_eq!(statuses(&with), vec![Status::Pass; 3]);

    let elsewhere = dns_findings(&network, Some("192.168.1.99".parse().unwrap()));
    assert_eq!(statuses(&elsewhere), vec![Status::Fail; 3]);
    assert!(elsewhere[0].message.contains("not 192.168.1.99"));
}
