//! Who may call the webhook: an allow-list of source networks, and which proxies'
//! `X-Forwarded-For` is believed when finding the real client address.
//!
//! The vendor documents one public source address; a deployment can refuse everything
//! else before spending any work on authentication.

use std::net::IpAddr;

use actix_web::http::header::HeaderMap;
use ipnet::IpNet;

/// The allow-list and trusted proxies, from `BRIDGE_ALLOWED_SOURCES` and
/// `BRIDGE_TRUSTED_PROXIES`.
#[derive(Debug, Clone, Default)]
pub struct SourcePolicy {
    /// Empty: every source is allowed.
    pub allowed: Vec<IpNet>,
    /// Peers whose `X-Forwarded-For` is believed (load balancers, reverse proxies).
    pub trusted_proxies: Vec<IpNet>,
}

/// Why a request is refused before authentication (`403`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AccessError {
    #[error("requests from {0} are not allowed (BRIDGE_ALLOWED_SOURCES)")]
    NotAllowed(IpAddr),
    #[error("X-Forwarded-For from a trusted proxy is malformed")]
    MalformedForwardedFor,
}

impl SourcePolicy {
    /// The client's address: the peer, unless the peer is a trusted proxy, in which case
    /// the right-most `X-Forwarded-For` entry that is not itself a trusted proxy. Entries
    /// an untrusted peer sends are ignored, so they can't be spoofed.
    ///
    /// Only the entries read, from the right up to that one, must be addresses: what lies
    /// to its left was written by the client or its proxies (`unknown`, a port), can't be
    /// trusted anyway, and must not get a genuine sender refused.
    pub fn client_ip(&self, peer: IpAddr, headers: &HeaderMap) -> Result<IpAddr, AccessError> {
        if !self.is_trusted_proxy(Some(peer)) {
            return Ok(peer);
        }
        let mut hops = Vec::new();
        for value in headers.get_all("x-forwarded-for") {
            let text = value
                .to_str()
                .map_err(|_| AccessError::MalformedForwardedFor)?;
            hops.extend(text.split(',').map(str::trim).filter(|hop| !hop.is_empty()));
        }
        let mut client = peer;
        for hop in hops.into_iter().rev() {
            client = hop
                .parse::<IpAddr>()
                .map_err(|_| AccessError::MalformedForwardedFor)?;
            if !contains(&self.trusted_proxies, client) {
                break;
            }
        }
        Ok(client)
    }

    /// Whether `peer` is a trusted proxy: only then are headers it passes on about the
    /// client (`X-Forwarded-For`, `X-Request-Id`) believed.
    #[must_use]
    pub fn is_trusted_proxy(&self, peer: Option<IpAddr>) -> bool {
        peer.is_some_and(|peer| contains(&self.trusted_proxies, peer))
    }

    /// Whether the allow-list lets `ip` in (every address when no list is set).
    #[must_use]
    pub fn allows(&self, ip: IpAddr) -> bool {
        self.allowed.is_empty() || contains(&self.allowed, ip)
    }

    /// Checks a request's source; returns the client address for the logs.
    pub fn check(
        &self,
        peer: Option<IpAddr>,
        headers: &HeaderMap,
    ) -> Result<Option<IpAddr>, AccessError> {
        let Some(peer) = peer else {
            // No peer address (not TCP): only possible in tests; allowed when no list is set.
            return if self.allowed.is_empty() {
                Ok(None)
            } else {
                Err(AccessError::MalformedForwardedFor)
            };
        };
        let client = self.client_ip(peer, headers)?;
        if self.allows(client) {
            Ok(Some(client))
        } else {
            Err(AccessError::NotAllowed(client))
        }
    }
}

/// The address a per-source budget counts under: an IPv4 address (also one seen through
/// an IPv6 socket) as it is, an IPv6 address by its /64, which one host usually holds
/// whole.
#[must_use]
pub fn source_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let mut segments = v6.segments();
                segments[4..].fill(0);
                IpAddr::V6(segments.into())
            }
        },
        v4 @ IpAddr::V4(_) => v4,
    }
}

fn contains(networks: &[IpNet], ip: IpAddr) -> bool {
    let ip = match ip {
        // An IPv4 client seen through an IPv6 socket.
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 @ IpAddr::V4(_) => v4,
    };
    networks.iter().any(|n| n.contains(&ip))
}

/// Parses `10.0.0.0/8, 52.200.5.50` (a bare address is a single host).
pub fn parse_networks(list: &str) -> Result<Vec<IpNet>, String> {
    list.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse::<IpNet>()
                .or_else(|_| s.parse::<IpAddr>().map(IpNet::from))
                .map_err(|_| format!("`{s}` is not an IP address or CIDR network"))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::http::header::{HeaderName, HeaderValue};

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn xff(values: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(
                HeaderName::from_static("x-forwarded-for"),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    fn policy(allowed: &str, trusted: &str) -> SourcePolicy {
        SourcePolicy {
            allowed: parse_networks(allowed).unwrap(),
            trusted_proxies: parse_networks(trusted).unwrap(),
        }
    }

    #[test]
    fn forwarded_for_is_believed_only_from_trusted_proxies() {
        let p = policy("52.200.5.50", "10.0.0.0/8");
        // Through the load balancer: the vendor's address is found and allowed.
        assert_eq!(
            p.check(Some(ip("10.0.1.2")), &xff(&["52.200.5.50"])),
            Ok(Some(ip("52.200.5.50")))
        );
        // A client spoofing the header directly is judged by its own address.
        assert_eq!(
            p.check(Some(ip("203.0.113.9")), &xff(&["52.200.5.50"])),
            Err(AccessError::NotAllowed(ip("203.0.113.9")))
        );
        // Spoofed left-most entry behind a trusted proxy: the right-most untrusted hop counts.
        assert_eq!(
            p.check(Some(ip("10.0.1.2")), &xff(&["52.200.5.50, 203.0.113.9"])),
            Err(AccessError::NotAllowed(ip("203.0.113.9")))
        );
        // Several proxies, several headers.
        assert_eq!(
            p.client_ip(ip("10.0.1.2"), &xff(&["52.200.5.50", "10.0.9.9"])),
            Ok(ip("52.200.5.50"))
        );
        assert_eq!(
            p.check(Some(ip("10.0.1.2")), &xff(&["not-an-ip"])),
            Err(AccessError::MalformedForwardedFor)
        );
        // What lies left of the deciding entry is not read: a sender's own proxy writing
        // `unknown` does not get it refused.
        assert_eq!(
            p.check(Some(ip("10.0.1.2")), &xff(&["unknown, 52.200.5.50"])),
            Ok(Some(ip("52.200.5.50")))
        );
        assert_eq!(
            p.check(Some(ip("10.0.1.2")), &xff(&["52.200.5.50, 10.0.0.7:443"])),
            Err(AccessError::MalformedForwardedFor)
        );
    }

    #[test]
    fn empty_allow_list_allows_everyone_and_mapped_addresses_match() {
        let open = policy("", "");
        assert_eq!(
            open.check(Some(ip("198.51.100.1")), &HeaderMap::new()),
            Ok(Some(ip("198.51.100.1")))
        );
        let p = policy("127.0.0.0/8", "");
        assert!(
            p.check(Some(ip("::ffff:127.0.0.1")), &HeaderMap::new())
                .is_ok()
        );
        assert!(parse_networks("10.0.0.0/33").is_err());
        assert!(parse_networks("nope").is_err());
    }
}
