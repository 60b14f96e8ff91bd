//! The accept path every listener shares. Today: connection limits and socket options; PROXY
//! protocol, IP filters and the defender join here later. Yields vetted streams; never calls a
//! protocol. Uses `config`, `telemetry`, `types`.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::net::{TcpListener, TcpStream};

use crate::telemetry::metrics::metrics;
use crate::types::PeerAddr;

/// Caps the connections one listener serves at once.
#[derive(Clone)]
pub struct ConnectionLimit {
    max: usize,
    active: Arc<AtomicUsize>,
}

/// Holds one connection's place until dropped.
pub struct ConnectionSlot(Arc<AtomicUsize>);

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl ConnectionLimit {
    pub fn new(max: usize) -> Self {
        Self {
            max,
            active: Arc::default(),
        }
    }

    pub fn try_acquire(&self) -> Option<ConnectionSlot> {
        let previous = self.active.fetch_add(1, Ordering::SeqCst);
        if previous >= self.max {
            self.active.fetch_sub(1, Ordering::SeqCst);
            return None;
        }
        Some(ConnectionSlot(Arc::clone(&self.active)))
    }

    pub fn active(&self) -> usize {
        self.active.load(Ordering::SeqCst)
    }
}

/// A connection that passed the accept path.
pub struct Accepted {
    pub stream: TcpStream,
    pub peer: PeerAddr,
    pub slot: ConnectionSlot,
}

/// Accepts the next connection that passes the limits; refused ones are closed, counted and
/// reported to `refused` (the protocol records them through the session layer).
pub async fn accept(
    listener: &TcpListener,
    limit: &ConnectionLimit,
    refused: impl Fn(PeerAddr, &'static str),
) -> std::io::Result<Accepted> {
    loop {
        let (stream, addr) = match listener.accept().await {
            Ok(accepted) => accepted,
            // Out of file descriptors or a connection reset before accept: keep serving.
            Err(e) if is_transient(&e) => {
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
            Err(e) => return Err(e),
        };
        let Some(slot) = limit.try_acquire() else {
            metrics()
                .connections_refused_total
                .with_label_values(&["limit"])
                .inc();
            tracing::warn!(peer = %addr, "connection limit reached; closing");
            drop(stream);
            refused(PeerAddr(Some(addr)), "connection limit reached");
            continue;
        };
        // Interactive protocols: never wait for Nagle.
        let _ = stream.set_nodelay(true);
        return Ok(Accepted {
            stream,
            peer: PeerAddr(Some(addr)),
            slot,
        });
    }
}

fn is_transient(e: &std::io::Error) -> bool {
    use std::io::ErrorKind as K;
    matches!(
        e.kind(),
        K::ConnectionAborted | K::ConnectionReset | K::Interrupted | K::WouldBlock
    ) || e.raw_os_error() == Some(24)
        || e.raw_os_error() == Some(23)
}
