//! Passive data ports, counted per client address. A port is pending from the PASV/EPSV reply
//! until its data connection arrives; one address may hold at most `max_passive_ports_per_ip`
//! of them, so clients behind one address (or one hostile client with many control connections)
//! cannot take the whole `passive_ports` range. A control connection holds at most one: a new
//! PASV/EPSV releases the port of the previous one.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::net::TcpListener;

use crate::net::ProxyPolicy;

/// Pending passive ports per client address.
pub struct PassivePorts {
    per_ip: usize,
    held: Mutex<HashMap<IpAddr, usize>>,
}

/// A bound passive listener; its port counts against the client's address until dropped.
pub struct PassiveListener {
    pub listener: TcpListener,
    /// PROXY headers on data connections, as on the control connection's listener.
    pub proxy: ProxyPolicy,
    _lease: Lease,
}

struct Lease {
    ports: Arc<PassivePorts>,
    ip: IpAddr,
}

impl Drop for Lease {
    fn drop(&mut self) {
        let mut held = self.ports.held.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(count) = held.get_mut(&self.ip) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                held.remove(&self.ip);
            }
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PassiveError {
    #[error("your address already holds {0} passive ports")]
    AddressFull(usize),
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

impl PassivePorts {
    pub fn new(per_ip: usize) -> Arc<Self> {
        Arc::new(Self { per_ip, held: Mutex::new(HashMap::new()) })
    }

    /// Ports `client` holds now.
    #[cfg(test)]
    pub fn held_by(&self, client: IpAddr) -> usize {
        let held = self.held.lock().unwrap_or_else(PoisonError::into_inner);
        held.get(&client.to_canonical()).copied().unwrap_or(0)
    }

    /// Binds a listener on `local_ip` at a free port of `range` for `client`, unless that
    /// address already holds its share; its data connection is read for a PROXY header as
    /// `proxy` says (the control connection's listener's policy).
    pub async fn bind(
        self: &Arc<Self>,
        client: IpAddr,
        local_ip: IpAddr,
        range: (u16, u16),
        proxy: ProxyPolicy,
    ) -> Result<PassiveListener, PassiveError> {
        let ip = client.to_canonical();
        {
            let mut held = self.held.lock().unwrap_or_else(PoisonError::into_inner);
            let count = held.entry(ip).or_insert(0);
            if *count >= self.per_ip {
                return Err(PassiveError::AddressFull(self.per_ip));
            }
            *count += 1;
        }
        // From here the lease gives the slot back on every path, the failed bind included.
        let lease = Lease { ports: Arc::clone(self), ip };
        let listener = bind_in_range(local_ip, range).await?;
        Ok(PassiveListener { listener, proxy, _lease: lease })
    }
}

/// Binds on `local_ip` at a free port of `range`, starting at a random point so concurrent
/// sessions spread over the range.
async fn bind_in_range(local_ip: IpAddr, range: (u16, u16)) -> std::io::Result<TcpListener> {
    let span = u32::from(range.1.saturating_sub(range.0)) + 1;
    let start = rand::random::<u32>() % span;
    for i in 0..span {
        let Some(port) = u16::try_from((start + i) % span).ok().and_then(|o| range.0.checked_add(o)) else {
            continue;
        };
        match TcpListener::bind((local_ip, port)).await {
            Ok(listener) => return Ok(listener),
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => continue,
            Err(e) => return Err(e),
        }
    }
    Err(std::io::Error::new(std::io::ErrorKind::AddrInUse, "no free port in ftp.passive_ports"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_address_holds_at_most_its_share_and_gets_it_back() {
        let ports = PassivePorts::new(2);
        let local: IpAddr = "127.0.0.1".parse().unwrap();
        let client: IpAddr = "127.0.0.7".parse().unwrap();
        let a = ports.bind(client, local, (41000, 41999), ProxyPolicy::off()).await.unwrap();
        let b = ports.bind(client, local, (41000, 41999), ProxyPolicy::off()).await.unwrap();
        assert!((41000..=41999).contains(&a.listener.local_addr().unwrap().port()));
        assert!(matches!(
            ports.bind(client, local, (41000, 41999), ProxyPolicy::off()).await,
            Err(PassiveError::AddressFull(2))
        ));
        // Another address is not affected; IPv4-mapped IPv6 is the same address.
        let other = ports
            .bind("127.0.0.8".parse().unwrap(), local, (41000, 41999), ProxyPolicy::off())
            .await
            .unwrap();
        assert_eq!(ports.held_by("::ffff:127.0.0.7".parse().unwrap()), 2);
        drop(a);
        assert_eq!(ports.held_by(client), 1);
        let c = ports.bind(client, local, (41000, 41999), ProxyPolicy::off()).await.unwrap();
        drop((b, c, other));
        assert_eq!(ports.held_by(client), 0);
        assert!(ports.held.lock().unwrap().is_empty(), "no entry left for addresses holding nothing");
    }
}
