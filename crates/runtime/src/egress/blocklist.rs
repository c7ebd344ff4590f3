//! Addresses an adapter must never reach: the IANA special-purpose
//! registries for both families (loopback, private, shared, link-local and
//! cloud metadata, documentation, benchmarking, multicast, reserved), with
//! IPv4 addresses embedded in IPv6 forms (mapped, NAT64, 6to4) judged as the
//! IPv4 address they carry.
//!
//! Sources: IANA IPv4 and IPv6 Special-Purpose Address Registries
//! (<https://www.iana.org/assignments/iana-ipv4-special-registry/>,
//! <https://www.iana.org/assignments/iana-ipv6-special-registry/>), RFC 6052
//! (NAT64 well-known prefix), RFC 3056 (6to4).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::{Ipv4Net, Ipv6Net};

/// IPv4 ranges and why each is refused.
const V4: &[(&str, &str)] = &[
    ("0.0.0.0/8", "\"this network\" (not routable)"),
    ("10.0.0.0/8", "a private network"),
    ("100.64.0.0/10", "shared address space (carrier-grade NAT)"),
    ("127.0.0.0/8", "loopback"),
    ("169.254.0.0/16", "link-local (cloud metadata)"),
    ("172.16.0.0/12", "a private network"),
    ("192.0.0.0/24", "IETF protocol assignments"),
    ("192.0.2.0/24", "documentation (TEST-NET-1)"),
    ("192.88.99.0/24", "6to4 relay anycast"),
    ("192.168.0.0/16", "a private network"),
    ("198.18.0.0/15", "benchmarking"),
    ("198.51.100.0/24", "documentation (TEST-NET-2)"),
    ("203.0.113.0/24", "documentation (TEST-NET-3)"),
    ("224.0.0.0/4", "multicast"),
    ("240.0.0.0/4", "reserved (and broadcast)"),
];

/// IPv6 ranges refused outright, and why.
const V6: &[(&str, &str)] = &[
    ("::/128", "unspecified"),
    ("::1/128", "loopback"),
    ("::/96", "IPv4-compatible (deprecated)"),
    ("64:ff9b:1::/48", "local-use NAT64"),
    ("100::/64", "discard-only"),
    (
        "2001::/23",
        "IETF protocol assignments (Teredo, benchmarking, ORCHID)",
    ),
    ("2001:db8::/32", "documentation"),
    ("3fff::/20", "documentation"),
    ("5f00::/16", "segment routing (SRv6) identifiers"),
    ("fc00::/7", "a private network (unique local)"),
    ("fe80::/10", "link-local"),
    ("fec0::/10", "site-local (deprecated)"),
    ("ff00::/8", "multicast"),
];

/// Why `ip` must not be reached from an adapter, or `None` when it may.
pub fn blocked_ip(ip: IpAddr) -> Option<String> {
    match ip {
        IpAddr::V4(v4) => blocked_v4(v4).map(str::to_owned),
        IpAddr::V6(v6) => blocked_v6(v6),
    }
}

fn blocked_v4(ip: Ipv4Addr) -> Option<&'static str> {
    V4.iter()
        .find(|(net, _)| net.parse::<Ipv4Net>().is_ok_and(|net| net.contains(&ip)))
        .map(|(_, why)| *why)
}

fn blocked_v6(ip: Ipv6Addr) -> Option<String> {
    if let Some((form, v4)) = embedded_v4(ip) {
        return blocked_v4(v4).map(|why| format!("{why}, as the IPv4 address {v4} in {form} form"));
    }
    V6.iter()
        .find(|(net, _)| net.parse::<Ipv6Net>().is_ok_and(|net| net.contains(&ip)))
        .map(|(_, why)| (*why).to_owned())
}

/// The IPv4 address an IPv6 address carries to the same host: mapped
/// (`::ffff:a.b.c.d`), the NAT64 well-known prefix (`64:ff9b::a.b.c.d`) or
/// 6to4 (`2002:AABB:CCDD::`).
fn embedded_v4(ip: Ipv6Addr) -> Option<(&'static str, Ipv4Addr)> {
    let octets = ip.octets();
    let last = Ipv4Addr::new(octets[12], octets[13], octets[14], octets[15]);
    if let Some(v4) = ip.to_ipv4_mapped() {
        return Some(("IPv4-mapped", v4));
    }
    let segments = ip.segments();
    if segments[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        return Some(("NAT64", last));
    }
    if segments[0] == 0x2002 {
        return Some((
            "6to4",
            Ipv4Addr::new(octets[2], octets[3], octets[4], octets[5]),
        ));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn blocked(text: &str) -> Option<String> {
        blocked_ip(text.parse().expect("an address"))
    }

    #[test]
    fn every_special_purpose_range_is_refused() {
        for address in [
            "0.0.0.0",
            "0.1.2.3",
            "10.1.2.3",
            "100.64.0.1",
            "100.127.255.254",
            "127.0.0.1",
            "127.255.0.1",
            "169.254.169.254",
            "172.16.5.4",
            "172.31.255.255",
            "192.0.0.170",
            "192.0.2.1",
            "192.88.99.1",
            "192.168.0.1",
            "198.18.0.1",
            "198.19.255.255",
            "198.51.100.7",
            "203.0.113.9",
            "224.0.0.1",
            "239.255.255.250",
            "240.0.0.1",
            "255.255.255.255",
            "::",
            "::1",
            "::127.0.0.1",
            "64:ff9b:1::1",
            "100::1",
            "2001::1",
            "2001:db8::1",
            "3fff::1",
            "fc00::1",
            "fd12:3456::1",
            "fe80::1",
            "fec0::1",
            "ff02::1",
        ] {
            assert!(blocked(address).is_some(), "{address} must be refused");
        }
    }

    #[test]
    fn ipv4_inside_ipv6_is_judged_as_ipv4() {
        let mapped = blocked("::ffff:127.0.0.1").expect("mapped loopback refused");
        assert!(
            mapped.contains("loopback") && mapped.contains("IPv4-mapped"),
            "{mapped}"
        );
        let nat64 = blocked("64:ff9b::a9fe:a9fe").expect("NAT64 metadata refused");
        assert!(
            nat64.contains("169.254.169.254") && nat64.contains("NAT64"),
            "{nat64}"
        );
        let six_to_four = blocked("2002:7f00:1::1").expect("6to4 loopback refused");
        assert!(
            six_to_four.contains("127.0.0.1") && six_to_four.contains("6to4"),
            "{six_to_four}"
        );
        // Public IPv4 addresses in the same forms stay reachable.
        assert_eq!(blocked("::ffff:157.240.1.1"), None);
        assert_eq!(blocked("64:ff9b::9df0:101"), None);
        assert_eq!(blocked("2002:9df0:101::1"), None);
    }

    #[test]
    fn public_addresses_are_allowed() {
        for address in [
            "157.240.1.1",
            "8.8.8.8",
            "100.128.0.1",
            "172.32.0.1",
            "2a03:2880::1",
        ] {
            assert_eq!(blocked(address), None, "{address}");
        }
    }
}
