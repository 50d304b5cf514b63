//! Which addresses `web_fetch` may connect to: public unicast only.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Why `ip` must not be fetched from, or `None` for a public unicast address.
/// IPv6 forms that embed an IPv4 address (mapped, compatible, translated, NAT64, 6to4) are
/// judged by the IPv4 address they carry.
pub fn forbidden_reason(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => v4_reason(v4),
        IpAddr::V6(v6) => v6_reason(v6),
    }
}

fn in_v4(ip: u32, net: [u8; 4], prefix: u32) -> bool {
    let mask = if prefix == 0 {
        0
    } else {
        u32::MAX << (32 - prefix)
    };
    ip & mask == u32::from_be_bytes(net) & mask
}

fn v4_reason(ip: Ipv4Addr) -> Option<&'static str> {
    let n = u32::from(ip);
    let table: &[([u8; 4], u32, &'static str)] = &[
        ([0, 0, 0, 0], 32, "an unspecified address"),
        ([0, 0, 0, 0], 8, "a 'this network' address (0.0.0.0/8)"),
        ([10, 0, 0, 0], 8, "a private address"),
        ([100, 64, 0, 0], 10, "a shared (CGNAT) address"),
        ([127, 0, 0, 0], 8, "a loopback address"),
        (
            [169, 254, 169, 254],
            32,
            "a link-local address (cloud metadata)",
        ),
        ([169, 254, 0, 0], 16, "a link-local address"),
        ([172, 16, 0, 0], 12, "a private address"),
        ([192, 0, 0, 0], 24, "an IETF protocol assignment address"),
        ([192, 0, 2, 0], 24, "a documentation address"),
        ([192, 88, 99, 0], 24, "a reserved (6to4 relay) address"),
        ([192, 168, 0, 0], 16, "a private address"),
        ([198, 18, 0, 0], 15, "a benchmarking address"),
        ([198, 51, 100, 0], 24, "a documentation address"),
        ([203, 0, 113, 0], 24, "a documentation address"),
        ([224, 0, 0, 0], 4, "a multicast address"),
        ([255, 255, 255, 255], 32, "a broadcast address"),
        ([240, 0, 0, 0], 4, "a reserved address"),
    ];
    table
        .iter()
        .find(|(net, prefix, _)| in_v4(n, *net, *prefix))
        .map(|(_, _, reason)| *reason)
}

fn in_v6(ip: u128, net: u128, prefix: u32) -> bool {
    let mask = if prefix == 0 {
        0
    } else {
        u128::MAX << (128 - prefix)
    };
    ip & mask == net & mask
}

fn v6_reason(ip: Ipv6Addr) -> Option<&'static str> {
    let n = u128::from(ip);
    let low_v4 = Ipv4Addr::from((n & 0xffff_ffff) as u32);
    if ip.is_unspecified() {
        return Some("an unspecified address");
    }
    if ip.is_loopback() {
        return Some("a loopback address");
    }
    // ::ffff:a.b.c.d (mapped) and ::ffff:0:a.b.c.d (translated).
    if in_v6(n, 0xffff_0000_0000u128, 96) || in_v6(n, 0xffff_0000_0000_0000u128, 96) {
        return v4_reason(low_v4);
    }
    // ::a.b.c.d (deprecated IPv4-compatible): never legitimately routed.
    if in_v6(n, 0, 96) {
        return v4_reason(low_v4).or(Some("an IPv4-compatible address (deprecated)"));
    }
    // NAT64 well-known prefix: the gateway's NAT64 would connect to the embedded address.
    if in_v6(n, 0x0064_ff9bu128 << 96, 96) {
        return v4_reason(low_v4);
    }
    if in_v6(n, 0x0064_ff9b_0001u128 << 80, 48) {
        return Some("a private address (local-use NAT64)");
    }
    if in_v6(n, 0x0100u128 << 112, 64) {
        return Some("a discard-only address");
    }
    if in_v6(n, 0xfc00u128 << 112, 7) {
        return Some("a unique local address");
    }
    if in_v6(n, 0xfe80u128 << 112, 10) {
        return Some("a link-local address");
    }
    if in_v6(n, 0xfec0u128 << 112, 10) {
        return Some("a site-local address (deprecated)");
    }
    if in_v6(n, 0xff00u128 << 112, 8) {
        return Some("a multicast address");
    }
    // Outside 2000::/3 nothing is allocated for global unicast.
    if !in_v6(n, 0x2000u128 << 112, 3) {
        return Some("a reserved address");
    }
    if in_v6(n, 0x2001_0db8u128 << 96, 32) || in_v6(n, 0x3fffu128 << 112, 20) {
        return Some("a documentation address");
    }
    if in_v6(n, 0x2001_0002u128 << 96, 48) {
        return Some("a benchmarking address");
    }
    if in_v6(n, 0x2001_0000u128 << 96, 32) {
        return Some("a Teredo address");
    }
    if in_v6(n, 0x2001_0000u128 << 96, 23) {
        return Some("an IETF protocol assignment address");
    }
    // 6to4: 2002:AABB:CCDD::/48 carries AA.BB.CC.DD.
    if in_v6(n, 0x2002u128 << 112, 16) {
        return v4_reason(Ipv4Addr::from(((n >> 80) & 0xffff_ffff) as u32));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::forbidden_reason;
    use std::net::IpAddr;

    #[test]
    fn classifies_address_table() {
        let table: &[(&str, Option<&str>)] = &[
            ("127.0.0.1", Some("a loopback address")),
            ("127.255.0.9", Some("a loopback address")),
            ("::1", Some("a loopback address")),
            ("::ffff:127.0.0.1", Some("a loopback address")),
            ("::ffff:0:127.0.0.1", Some("a loopback address")),
            (
                "169.254.169.254",
                Some("a link-local address (cloud metadata)"),
            ),
            (
                "::ffff:169.254.169.254",
                Some("a link-local address (cloud metadata)"),
            ),
            (
                "64:ff9b::a9fe:a9fe",
                Some("a link-local address (cloud metadata)"),
            ),
            ("64:ff9b::10.1.2.3", Some("a private address")),
            (
                "2002:a9fe:a9fe::1",
                Some("a link-local address (cloud metadata)"),
            ),
            ("169.254.1.1", Some("a link-local address")),
            ("fe80::1", Some("a link-local address")),
            ("0.0.0.0", Some("an unspecified address")),
            ("0.1.2.3", Some("a 'this network' address (0.0.0.0/8)")),
            ("::", Some("an unspecified address")),
            ("::10.0.0.1", Some("a private address")),
            ("::8.8.8.8", Some("an IPv4-compatible address (deprecated)")),
            ("10.0.0.1", Some("a private address")),
            ("172.16.0.1", Some("a private address")),
            ("172.31.255.255", Some("a private address")),
            ("192.168.1.1", Some("a private address")),
            ("100.64.0.1", Some("a shared (CGNAT) address")),
            ("100.127.255.254", Some("a shared (CGNAT) address")),
            ("192.0.0.170", Some("an IETF protocol assignment address")),
            ("192.0.2.1", Some("a documentation address")),
            ("198.51.100.7", Some("a documentation address")),
            ("203.0.113.9", Some("a documentation address")),
            ("2001:db8::1", Some("a documentation address")),
            ("198.18.0.1", Some("a benchmarking address")),
            ("198.19.255.1", Some("a benchmarking address")),
            ("224.0.0.1", Some("a multicast address")),
            ("ff02::1", Some("a multicast address")),
            ("255.255.255.255", Some("a broadcast address")),
            ("240.0.0.1", Some("a reserved address")),
            ("fd00::1", Some("a unique local address")),
            ("fc00::1", Some("a unique local address")),
            ("fd00:ec2::254", Some("a unique local address")),
            ("fec0::1", Some("a site-local address (deprecated)")),
            ("64:ff9b:1::1", Some("a private address (local-use NAT64)")),
            ("100::1", Some("a discard-only address")),
            ("2001::1", Some("a Teredo address")),
            ("4000::1", Some("a reserved address")),
            // Allowed.
            ("93.184.216.34", None),
            ("8.8.8.8", None),
            ("1.1.1.1", None),
            ("172.32.0.1", None),
            ("100.128.0.1", None),
            ("169.253.255.255", None),
            ("2606:4700::1111", None),
            ("2a00:1450:4001::200e", None),
            ("::ffff:93.184.216.34", None),
            ("64:ff9b::5db8:d822", None),
            ("2002:5db8:d822::1", None),
        ];
        for (text, want) in table {
            let ip: IpAddr = match text.parse() {
                Ok(ip) => ip,
                Err(e) => panic!("bad test address {text}: {e}"),
            };
            assert_eq!(forbidden_reason(ip), *want, "address {text}");
        }
    }
}
