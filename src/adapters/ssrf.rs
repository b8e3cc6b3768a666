//! The SSRF guard: which addresses Aurora may fetch from. Everything that is not a public
//! unicast address is refused — loopback, private, link-local, unique-local, shared (CGNAT),
//! cloud metadata, multicast, reserved — unless its host or network is on the allow-list from
//! `fetch.allow_private`. Checked on resolved addresses, for every hop of a redirect chain.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use ipnet::IpNet;

/// Hosts and networks let through although they are not public.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AllowList {
    hosts: Vec<String>,
    nets: Vec<IpNet>,
}

impl AllowList {
    /// `"127.0.0.1, 10.0.0.0/8, intranet.example"`: IPs, CIDRs and host names, comma-separated.
    pub fn parse(spec: &str) -> Result<Self, String> {
        let mut list = Self::default();
        for entry in spec.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            if let Ok(ip) = entry.parse::<IpAddr>() {
                list.nets.push(IpNet::from(ip));
            } else if entry.contains('/') {
                let net = entry
                    .parse::<IpNet>()
                    .map_err(|e| format!("`{entry}` is not a valid CIDR: {e}"))?;
                list.nets.push(net);
            } else if entry
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
            {
                list.hosts.push(entry.to_ascii_lowercase());
            } else {
                return Err(format!(
                    "`{entry}` is neither an IP, a CIDR nor a host name"
                ));
            }
        }
        Ok(list)
    }

    pub fn allows_host(&self, host: &str) -> bool {
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        self.hosts.contains(&host)
    }

    /// `Err(reason)` when `ip` may not be fetched from.
    pub fn check_ip(&self, ip: IpAddr) -> Result<(), &'static str> {
        if self.nets.iter().any(|net| net.contains(&ip)) {
            return Ok(());
        }
        match non_public_reason(ip) {
            Some(reason) => Err(reason),
            None => Ok(()),
        }
    }
}

/// A destination the guard refused, with the address that made it refuse.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{host} resolves to {ip}, which is {reason}; allow it with fetch.allow_private")]
pub struct Refused {
    pub host: String,
    pub ip: IpAddr,
    pub reason: &'static str,
}

/// Resolves `host` and keeps the addresses the guard allows: every one when the host itself is
/// allow-listed, else the public ones (and allow-listed networks). `Err(Refused)` when every
/// address was refused; an IP literal is judged as itself.
pub async fn resolve_allowed(
    allow: &AllowList,
    host: &str,
    port: u16,
) -> Result<Vec<SocketAddr>, ResolveError> {
    let literal = host.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = literal.parse::<IpAddr>() {
        return match allow.check_ip(ip) {
            Ok(()) => Ok(vec![SocketAddr::new(ip, port)]),
            Err(reason) => Err(ResolveError::Refused(Refused {
                host: host.to_string(),
                ip,
                reason,
            })),
        };
    }
    let resolved: Vec<SocketAddr> = tokio::net::lookup_host((host, port))
        .await
        .map_err(ResolveError::Lookup)?
        .collect();
    if allow.allows_host(host) {
        return Ok(resolved);
    }
    let mut refused = None;
    let allowed: Vec<SocketAddr> = resolved
        .into_iter()
        .filter(|addr| match allow.check_ip(addr.ip()) {
            Ok(()) => true,
            Err(reason) => {
                refused.get_or_insert((addr.ip(), reason));
                false
            }
        })
        .collect();
    match (allowed.is_empty(), refused) {
        (true, Some((ip, reason))) => Err(ResolveError::Refused(Refused {
            host: host.to_string(),
            ip,
            reason,
        })),
        _ => Ok(allowed),
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    #[error(transparent)]
    Refused(Refused),
    #[error("could not resolve the host: {0}")]
    Lookup(std::io::Error),
}

/// Why `ip` is not a public unicast address, or `None` when it is.
pub fn non_public_reason(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => v4_reason(v4),
        IpAddr::V6(v6) => v6_reason(v6),
    }
}

fn v4_reason(ip: Ipv4Addr) -> Option<&'static str> {
    let [a, b, c, _] = ip.octets();
    Some(match (a, b, c) {
        _ if ip == Ipv4Addr::new(169, 254, 169, 254) => "a cloud metadata address",
        _ if ip == Ipv4Addr::new(100, 100, 100, 200) => "a cloud metadata address",
        (0, ..) => "an unspecified address",
        (127, ..) => "a loopback address",
        (10, ..) | (192, 168, _) => "a private address",
        (172, 16..=31, _) => "a private address",
        (169, 254, _) => "a link-local address",
        (100, 64..=127, _) => "a shared (carrier-grade NAT) address",
        (192, 0, 0) => "an IETF protocol assignment",
        (192, 0, 2) | (198, 51, 100) | (203, 0, 113) => "a documentation address",
        (198, 18..=19, _) => "a benchmarking address",
        (224..=239, ..) => "a multicast address",
        (240..=255, ..) => "a reserved or broadcast address",
        _ => return None,
    })
}

fn v6_reason(ip: Ipv6Addr) -> Option<&'static str> {
    // IPv4 carried inside IPv6 is judged as the IPv4 address it reaches.
    if let Some(v4) = ip.to_ipv4_mapped() {
        return v4_reason(v4);
    }
    let s = ip.segments();
    if s[0] == 0x64 && s[1] == 0xff9b && s[2..6] == [0, 0, 0, 0] {
        return v4_reason(Ipv4Addr::from(((s[6] as u32) << 16) | s[7] as u32));
    }
    if s[0] == 0x2002 {
        return v4_reason(Ipv4Addr::from(((s[1] as u32) << 16) | s[2] as u32));
    }
    Some(match s[0] {
        _ if ip == Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254) => "a cloud metadata address",
        _ if ip.is_loopback() => "a loopback address",
        _ if ip.is_unspecified() => "an unspecified address",
        0x0000 if s[1..6] == [0, 0, 0, 0, 0] => "an IPv4-compatible address",
        0xfc00..=0xfdff => "a unique-local address",
        0xfe80..=0xfebf => "a link-local address",
        0xfec0..=0xfeff => "a site-local address",
        0xff00..=0xffff => "a multicast address",
        0x2001 if s[1] == 0x0db8 => "a documentation address",
        0x0100 if s[1..4] == [0, 0, 0] => "a discard-only address",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reason(ip: &str) -> Option<&'static str> {
        non_public_reason(ip.parse().unwrap())
    }

    #[test]
    fn refuses_every_non_public_range() {
        for (ip, expected) in [
            ("127.0.0.1", "a loopback address"),
            ("127.8.9.10", "a loopback address"),
            ("10.1.2.3", "a private address"),
            ("172.16.0.1", "a private address"),
            ("172.31.255.255", "a private address"),
            ("192.168.1.1", "a private address"),
            ("169.254.169.254", "a cloud metadata address"),
            ("169.254.1.1", "a link-local address"),
            ("100.64.0.1", "a shared (carrier-grade NAT) address"),
            ("100.100.100.200", "a cloud metadata address"),
            ("0.0.0.0", "an unspecified address"),
            ("224.0.0.1", "a multicast address"),
            ("255.255.255.255", "a reserved or broadcast address"),
            ("::1", "a loopback address"),
            ("::", "an unspecified address"),
            ("fd00:ec2::254", "a cloud metadata address"),
            ("fc00::1", "a unique-local address"),
            ("fe80::1", "a link-local address"),
            ("ff02::1", "a multicast address"),
            ("::ffff:10.0.0.1", "a private address"),
            ("::ffff:169.254.169.254", "a cloud metadata address"),
            ("64:ff9b::7f00:1", "a loopback address"),
            ("2002:c0a8:0101::1", "a private address"),
        ] {
            assert_eq!(reason(ip), Some(expected), "{ip}");
        }
    }

    #[test]
    fn lets_public_addresses_through() {
        for ip in [
            "93.184.216.34",
            "8.8.8.8",
            "172.32.0.1",
            "2606:4700::1111",
            "::ffff:1.1.1.1",
        ] {
            assert_eq!(reason(ip), None, "{ip}");
        }
    }

    #[test]
    fn allow_list_entries() {
        let list = AllowList::parse(" 127.0.0.1, 10.0.0.0/8 ,Intranet.Example ").unwrap();
        assert!(list.check_ip("127.0.0.1".parse().unwrap()).is_ok());
        assert!(list.check_ip("127.0.0.2".parse().unwrap()).is_err());
        assert!(list.check_ip("10.9.9.9".parse().unwrap()).is_ok());
        assert!(list.check_ip("192.168.0.1".parse().unwrap()).is_err());
        assert!(list.allows_host("intranet.example."));
        assert!(!list.allows_host("example"));
        assert!(AllowList::parse("10.0.0.0/33").is_err());
        assert!(AllowList::parse("not a host!").is_err());
        assert_eq!(AllowList::parse("").unwrap(), AllowList::default());
    }
}
