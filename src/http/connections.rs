//! Connections, as they are accepted and before any byte of a request is read: the cap
//! on open connections per source address (`BRIDGE_MAX_CONNECTIONS_PER_SOURCE`) and,
//! with `BRIDGE_ALLOWED_SOURCES` set and no trusted proxy, the allow-list.
//!
//! Each connection can make the HTTP layer buffer up to 128 KiB of request head before
//! a single check runs, so what one address may open bounds what it can make the bridge
//! hold. A refused connection is shut down at once: its first read ends it.
//! Connections from `BRIDGE_TRUSTED_PROXIES` are not capped (every client comes through
//! them); the allow-list then needs `X-Forwarded-For` and is checked per request
//! (`access`).

use std::any::Any;
use std::collections::HashMap;
use std::net::{IpAddr, Shutdown};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use actix_web::dev::Extensions;
use actix_web::rt::net::TcpStream;

use super::access::SourcePolicy;
use crate::telemetry::metric;

/// Shared by every worker.
pub struct ConnectionGate {
    policy: SourcePolicy,
    max_per_source: u32,
    per_source: Mutex<HashMap<IpAddr, u32>>,
    open: AtomicUsize,
}

/// Why a connection was closed as it was accepted (the metric's `reason`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refusal {
    NotAllowed,
    PerSourceLimit,
}

impl Refusal {
    fn label(self) -> &'static str {
        match self {
            Self::NotAllowed => "not_allowed",
            Self::PerSourceLimit => "per_source_limit",
        }
    }
}

impl ConnectionGate {
    #[must_use]
    pub fn new(policy: SourcePolicy, max_per_source: u32) -> Self {
        Self {
            policy,
            max_per_source,
            per_source: Mutex::new(HashMap::new()),
            open: AtomicUsize::new(0),
        }
    }

    /// For actix's `on_connect`: admits the connection (its guard lives in the
    /// connection's extensions, dropped when it closes) or shuts it down.
    pub fn on_connect(self: &Arc<Self>, io: &dyn Any, extensions: &mut Extensions) {
        let Some(stream) = tcp_stream(io) else {
            return;
        };
        let Ok(peer) = stream.peer_addr() else {
            return;
        };
        match self.admit(peer.ip()) {
            Ok(guard) => {
                extensions.insert(guard);
            }
            Err(refusal) => {
                metrics::counter!(metric::CONNECTIONS_REFUSED, "reason" => refusal.label())
                    .increment(1);
                // A request already received may still be read: it is refused too
                // (`handlers` checks this mark first).
                extensions.insert(Refused);
                let _ = socket2::SockRef::from(stream).shutdown(Shutdown::Both);
            }
        }
    }

    fn admit(self: &Arc<Self>, ip: IpAddr) -> Result<Guard, Refusal> {
        let ip = super::access::source_key(ip);
        let behind_proxy = !self.policy.trusted_proxies.is_empty();
        if self.policy.is_trusted_proxy(Some(ip)) {
            self.open.fetch_add(1, Ordering::Relaxed);
            return Ok(Guard {
                gate: Arc::clone(self),
                source: None,
            });
        }
        // Loopback is the host itself (the container's health check): let its request
        // meet the per-request check.
        if !behind_proxy && !ip.is_loopback() && !self.policy.allows(ip) {
            return Err(Refusal::NotAllowed);
        }
        let mut per_source = self.per_source.lock().expect("connection counts");
        let count = per_source.entry(ip).or_insert(0);
        if *count >= self.max_per_source {
            return Err(Refusal::PerSourceLimit);
        }
        *count += 1;
        self.open.fetch_add(1, Ordering::Relaxed);
        Ok(Guard {
            gate: Arc::clone(self),
            source: Some(ip),
        })
    }

    /// Connections open now (for `/metrics`).
    #[must_use]
    pub fn open(&self) -> usize {
        self.open.load(Ordering::Relaxed)
    }
}

/// Marks a connection refused as it was accepted.
#[derive(Debug, Clone, Copy)]
pub struct Refused;

/// One admitted connection; gives its place back when the connection closes.
struct Guard {
    gate: Arc<ConnectionGate>,
    source: Option<IpAddr>,
}

impl Drop for Guard {
    fn drop(&mut self) {
        self.gate.open.fetch_sub(1, Ordering::Relaxed);
        if let Some(ip) = self.source {
            let mut per_source = self.gate.per_source.lock().expect("connection counts");
            if let Some(count) = per_source.get_mut(&ip) {
                *count -= 1;
                if *count == 0 {
                    per_source.remove(&ip);
                }
            }
        }
    }
}

/// The TCP stream under what actix hands `on_connect`: plain, or inside TLS.
fn tcp_stream(io: &dyn Any) -> Option<&TcpStream> {
    io.downcast_ref::<TcpStream>().or_else(|| {
        io.downcast_ref::<actix_tls::accept::rustls_0_23::TlsStream<TcpStream>>()
            .map(|tls| (**tls).get_ref().0)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gate(allowed: &str, proxies: &str, max: u32) -> Arc<ConnectionGate> {
        Arc::new(ConnectionGate::new(
            SourcePolicy {
                allowed: super::super::access::parse_networks(allowed).unwrap(),
                trusted_proxies: super::super::access::parse_networks(proxies).unwrap(),
            },
            max,
        ))
    }

    #[test]
    fn one_source_holds_at_most_its_cap_and_gets_places_back_as_connections_close() {
        let gate = gate("", "", 2);
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        let first = gate.admit(a).unwrap();
        let _second = gate.admit(a).unwrap();
        assert_eq!(gate.admit(a).err(), Some(Refusal::PerSourceLimit));
        assert!(gate.admit(b).is_ok(), "another source is not affected");
        drop(first);
        let _third = gate.admit(a).unwrap();
        assert_eq!(gate.open(), 2);
    }

    #[test]
    fn the_allow_list_closes_others_at_accept_unless_behind_a_proxy() {
        let direct = gate("203.0.113.7", "", 10);
        assert!(direct.admit("203.0.113.7".parse().unwrap()).is_ok());
        assert_eq!(
            direct.admit("198.51.100.1".parse().unwrap()).err(),
            Some(Refusal::NotAllowed)
        );
        // Behind a proxy the client is known only from X-Forwarded-For, per request.
        let proxied = gate("203.0.113.7", "10.0.0.0/8", 1);
        let _held: Vec<Guard> = (0..5)
            .map(|_| proxied.admit("10.0.0.5".parse().unwrap()).unwrap())
            .collect();
        assert!(proxied.admit("198.51.100.1".parse().unwrap()).is_ok());
    }
}
