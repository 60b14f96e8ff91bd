//! The HTTPS handshake gate: a few TLS handshakes per core in progress at once on a listener,
//! and at most `PER_ADDRESS` of those turns held or awaited by one client address. A flood of
//! new connections then waits for a turn (within the handshake deadline) instead of filling the
//! runtime's queues with handshakes that every other protocol's tasks would wait behind; and
//! because the flood's addresses queue for their own places first, a client from any other
//! address waits behind a handful of handshakes, not behind the whole flood.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Turns one address may hold or wait for in the shared queue at once.
const PER_ADDRESS: usize = 2;

pub struct HandshakeGate {
    turns: Arc<Semaphore>,
    per_address: Mutex<HashMap<IpAddr, Arc<Semaphore>>>,
}

/// A turn to handshake; the places go back when it is dropped, and the address's entry with
/// them once nobody else from it holds or waits for one.
pub struct Turn {
    permits: Option<(OwnedSemaphorePermit, OwnedSemaphorePermit)>,
    _entry: Entry,
}

impl Drop for Turn {
    fn drop(&mut self) {
        // The places first: the entry below is forgotten only when nobody holds one.
        drop(self.permits.take());
    }
}

/// One waiter's or holder's hold on its address's entry; dropping the last one (a turn handed
/// back, or a wait given up at the handshake deadline) removes the entry.
struct Entry {
    gate: Arc<HandshakeGate>,
    ip: IpAddr,
    own: Option<Arc<Semaphore>>,
}

impl Drop for Entry {
    fn drop(&mut self) {
        drop(self.own.take());
        self.gate.forget_idle(self.ip);
    }
}

impl HandshakeGate {
    /// `turns` handshakes at once in all.
    pub fn new(turns: usize) -> Self {
        Self { turns: Arc::new(Semaphore::new(turns.max(1))), per_address: Mutex::default() }
    }

    /// A few per core.
    pub fn for_this_machine() -> Self {
        Self::new(std::thread::available_parallelism().map_or(2, usize::from).saturating_mul(4).max(4))
    }

    /// Waits for a turn for a client at `ip`: first one of its address's places, then a shared
    /// one. `None` only if the gate is closed (never, in practice).
    pub async fn turn(self: &Arc<Self>, ip: IpAddr) -> Option<Turn> {
        let entry = Entry { gate: Arc::clone(self), ip, own: Some(self.address(ip)) };
        let own = Arc::clone(entry.own.as_ref()?).acquire_owned().await.ok()?;
        let shared = Arc::clone(&self.turns).acquire_owned().await.ok()?;
        Some(Turn { permits: Some((shared, own)), _entry: entry })
    }

    fn address(&self, ip: IpAddr) -> Arc<Semaphore> {
        let mut table = self.per_address.lock().unwrap_or_else(PoisonError::into_inner);
        Arc::clone(table.entry(ip.to_canonical()).or_insert_with(|| Arc::new(Semaphore::new(PER_ADDRESS))))
    }

    /// Drops the entries nobody holds or waits for, so the table holds only busy addresses.
    fn forget_idle(&self, ip: IpAddr) {
        let mut table = self.per_address.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(own) = table.get(&ip.to_canonical())
            && Arc::strong_count(own) == 1
            && own.available_permits() == PER_ADDRESS
        {
            table.remove(&ip.to_canonical());
        }
    }

    #[cfg(test)]
    fn tracked(&self) -> usize {
        self.per_address.lock().unwrap_or_else(PoisonError::into_inner).len()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn one_address_cannot_take_every_turn_and_idle_addresses_are_forgotten() {
        let gate = Arc::new(HandshakeGate::new(3));
        let (flood, other): (IpAddr, IpAddr) = ("192.0.2.1".parse().unwrap(), "192.0.2.2".parse().unwrap());
        let a = gate.turn(flood).await.unwrap();
        let b = gate.turn(flood).await.unwrap();
        // A third turn from the same address waits, though a shared place is free...
        let third = tokio::time::timeout(Duration::from_millis(50), gate.turn(flood)).await;
        assert!(third.is_err(), "an address holds at most {PER_ADDRESS} turns");
        // ...which another address gets at once.
        let c = tokio::time::timeout(Duration::from_secs(5), gate.turn(other)).await.unwrap().unwrap();
        drop((a, b, c));
        let again = tokio::time::timeout(Duration::from_secs(5), gate.turn(flood)).await.unwrap();
        assert_eq!(gate.tracked(), 1, "only the address holding a turn");
        drop(again);
        assert_eq!(gate.tracked(), 0, "entries go once their turns are handed back");
        // A wait given up (the handshake deadline) leaves nothing behind either.
        let (x, y) = (gate.turn(flood).await.unwrap(), gate.turn(flood).await.unwrap());
        let z = gate.turn(other).await.unwrap();
        let given_up = tokio::time::timeout(Duration::from_millis(50), gate.turn(other)).await;
        assert!(given_up.is_err(), "every shared place is taken: it waits, and gives up");
        let only_waited: IpAddr = "192.0.2.3".parse().unwrap();
        let gave_up = tokio::time::timeout(Duration::from_millis(50), gate.turn(only_waited)).await;
        assert!(gave_up.is_err());
        drop((x, y, z));
        assert_eq!(gate.tracked(), 0, "a cancelled wait removed its entry");
    }
}
