//! The accept path every listener shares (`listen`: one accept-and-drain loop; `proxy`: the
//! PROXY protocol; `filter`: allow and deny lists), connection limits (here) and the TLS
//! server config. Yields vetted streams; never calls a protocol. Uses `config`, `telemetry`,
//! `types`.

pub mod descriptors;
mod filter;
mod listen;
pub mod proxy;
mod refusals;
pub mod tls;

pub use filter::AddressFilter;
pub use listen::{Accepted, Admission, BanCheck, Connections, Phase, accept_from, accept_waiting, serve};
pub use proxy::ProxyPolicy;

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// Caps the connections one listener serves at once, in total and per client address.
#[derive(Clone)]
pub struct ConnectionLimit {
    max: usize,
    max_per_ip: usize,
    active: Arc<AtomicUsize>,
    per_ip: Arc<Mutex<HashMap<IpAddr, usize>>>,
}

/// Holds one connection's place until dropped.
pub struct ConnectionSlot {
    limit: ConnectionLimit,
    ip: IpAddr,
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        self.limit.active.fetch_sub(1, Ordering::SeqCst);
        if let Ok(mut per_ip) = self.limit.per_ip.lock()
            && let Some(count) = per_ip.get_mut(&self.ip)
        {
            *count = count.saturating_sub(1);
            if *count == 0 {
                per_ip.remove(&self.ip);
            }
        }
    }
}

impl ConnectionLimit {
    pub fn new(max: usize, max_per_ip: usize) -> Self {
        Self { max, max_per_ip, active: Arc::default(), per_ip: Arc::default() }
    }

    /// A place for a connection from `ip`, or why there is none.
    pub fn try_acquire(&self, ip: IpAddr) -> Result<ConnectionSlot, Refusal> {
        let mut per_ip = self.per_ip.lock().map_err(|_| Refusal::Limit)?;
        let from_ip = per_ip.get(&ip).copied().unwrap_or(0);
        if from_ip >= self.max_per_ip {
            return Err(Refusal::PerAddress);
        }
        if self.active.load(Ordering::SeqCst) >= self.max {
            return Err(Refusal::Limit);
        }
        // Only an admitted address gets an entry, so refusals leave nothing behind.
        per_ip.insert(ip, from_ip + 1);
        self.active.fetch_add(1, Ordering::SeqCst);
        Ok(ConnectionSlot { limit: self.clone(), ip })
    }

    pub fn active(&self) -> usize {
        self.active.load(Ordering::SeqCst)
    }

    /// Addresses with an entry in the per-address table (each holds a connection).
    pub fn tracked_addresses(&self) -> usize {
        self.per_ip.lock().map(|t| t.len()).unwrap_or(0)
    }
}

/// Why a connection was closed at accept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Refusal {
    Limit,
    PerAddress,
    Descriptors,
    /// Not in the listener's `allow` list, or in its `deny` list.
    AddressFilter,
    /// A listener with `proxy_protocol = "required"`, connected to from outside
    /// `server.trusted_proxies`.
    UntrustedProxy,
    /// A trusted proxy sent no header (where one is required), a bad one, or none in time.
    ProxyHeader,
    /// Too many PROXY headers being read at once.
    HeadersPending,
    /// Banned by the defender after repeated failed logins.
    Banned,
}

impl Refusal {
    /// The metric label.
    pub fn label(self) -> &'static str {
        match self {
            Refusal::Limit => "limit",
            Refusal::PerAddress => "per_address",
            Refusal::Descriptors => "descriptors",
            Refusal::AddressFilter => "address_filter",
            Refusal::UntrustedProxy => "untrusted_proxy",
            Refusal::ProxyHeader => "proxy_header",
            Refusal::HeadersPending => "proxy_headers_pending",
            Refusal::Banned => "banned",
        }
    }

    /// The reason recorded in the audit trail.
    pub fn reason(self) -> &'static str {
        match self {
            Refusal::Limit => "connection limit reached",
            Refusal::PerAddress => "per-address connection limit reached",
            Refusal::Descriptors => "file descriptor reserve reached",
            Refusal::AddressFilter => "address not allowed on this listener",
            Refusal::UntrustedProxy => "not from a trusted proxy",
            Refusal::ProxyHeader => "bad or missing PROXY protocol header",
            Refusal::HeadersPending => "too many PROXY protocol headers pending",
            Refusal::Banned => "address banned after repeated failed logins",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_count_in_total_and_per_address() {
        let limit = ConnectionLimit::new(3, 2);
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        let first = limit.try_acquire(a).unwrap();
        let _second = limit.try_acquire(a).unwrap();
        assert_eq!(limit.try_acquire(a).err(), Some(Refusal::PerAddress));
        let _third = limit.try_acquire(b).unwrap();
        assert_eq!(limit.try_acquire(b).err(), Some(Refusal::Limit));
        let c: IpAddr = "10.0.0.3".parse().unwrap();
        assert_eq!(limit.try_acquire(c).err(), Some(Refusal::Limit));
        assert!(!limit.per_ip.lock().unwrap().contains_key(&c), "a refused address leaves no entry");
        drop(first);
        assert!(limit.try_acquire(a).is_ok(), "a place freed by drop is reusable");
    }

    /// Refused addresses leave nothing behind: a flood from many addresses against a full
    /// listener cannot grow the table.
    #[test]
    fn a_refused_address_leaves_no_entry() {
        let limit = ConnectionLimit::new(1, 1);
        let held = limit.try_acquire("10.0.0.1".parse().unwrap()).unwrap();
        for n in 2..=200u8 {
            let ip: IpAddr = format!("10.0.1.{n}").parse().unwrap();
            assert_eq!(limit.try_acquire(ip).err(), Some(Refusal::Limit));
        }
        assert_eq!(limit.tracked_addresses(), 1, "only the address holding a connection");
        drop(held);
        assert_eq!(limit.tracked_addresses(), 0);
    }
}
