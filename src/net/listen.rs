//! The one accept-and-drain loop every listener runs (SFTP/SCP, FTP, FTPS, HTTPS, the redirect
//! and the ops listener), and the vetted accept of FTP passive data connections. A connection
//! passes, in order: [PROXY protocol: the next issue reads the header in `accept`, before
//! anything looks at the peer address] → file-descriptor reserve → connection limits (total
//! and per address) → the protocol's handler, as a task of the listener. On shutdown the loop
//! stops accepting when the server reaches the listener's `stop_at` phase, waits for `Closing`
//! and hands the open connections back for the protocol's goodbye.

use std::future::Future;
use std::net::IpAddr;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;

use super::{ConnectionLimit, ConnectionSlot, Refusal, descriptors};
use crate::telemetry::metrics::metrics;
use crate::types::PeerAddr;

/// Shutdown phases the composition root drives: running, then draining (no new connections,
/// transfers go on), then closing (every connection is ended).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Phase {
    Running,
    Draining,
    Closing,
}

/// How a listener vets a connection before its protocol sees it.
#[derive(Clone)]
pub enum Admission {
    /// Connection limits and the descriptor reserve: every listener that serves users.
    Limited(ConnectionLimit),
    /// Everyone: the ops listener (the platform's probes must get through a busy server) and
    /// the redirect to HTTPS, which hold no session.
    Open,
}

/// A connection that passed the accept path.
pub struct Accepted {
    pub stream: TcpStream,
    /// The client's address (from the PROXY header once that is read).
    pub peer: PeerAddr,
    /// The connection's place under the limits (`None` on an open listener): drop it when the
    /// connection ends.
    pub slot: Option<ConnectionSlot>,
}

/// The connections of a listener that stopped accepting, for the protocol's goodbye. Dropping
/// it aborts those still running.
pub struct Connections(JoinSet<()>);

impl Connections {
    /// Waits up to `grace` for every connection to end.
    pub async fn wait(&mut self, grace: Duration) {
        let _ = tokio::time::timeout(grace, async { while self.0.join_next().await.is_some() {} }).await;
    }

    /// Ends every connection at its next await point.
    pub fn abort_all(&mut self) {
        self.0.abort_all();
    }

    /// Leaves the connections still running to finish on their own.
    pub fn detach(mut self) {
        self.0.detach_all();
    }
}

/// Accepts on `listener` until the server reaches `stop_at`, running `handle` for each vetted
/// connection as a task of this listener (refused ones are closed, counted and reported to
/// `refused`); then drops the listener, waits for `Closing` and answers the connections still
/// open.
pub async fn serve<H, F>(
    listener: TcpListener,
    admission: Admission,
    refused: impl Fn(PeerAddr, &'static str),
    mut phase: watch::Receiver<Phase>,
    stop_at: Phase,
    mut handle: H,
) -> std::io::Result<Connections>
where
    H: FnMut(Accepted) -> F,
    F: Future<Output = ()> + Send + 'static,
{
    let mut connections = JoinSet::new();
    // Already there (a listener spawned late): do not take one more connection.
    if *phase.borrow() < stop_at {
        loop {
            tokio::select! {
                changed = phase.changed() => {
                    if changed.is_err() || *phase.borrow() >= stop_at { break; }
                }
                accepted = accept(&listener, &admission, &refused) => {
                    connections.spawn(handle(accepted?));
                }
                // Reap the finished ones: the set holds only open connections.
                Some(_) = connections.join_next(), if !connections.is_empty() => {}
            }
        }
    }
    drop(listener);
    while *phase.borrow() < Phase::Closing {
        if phase.changed().await.is_err() {
            break;
        }
    }
    Ok(Connections(connections))
}

/// Accepts the next connection that passes `admission`.
async fn accept(
    listener: &TcpListener,
    admission: &Admission,
    refused: &impl Fn(PeerAddr, &'static str),
) -> std::io::Result<Accepted> {
    loop {
        let (stream, addr) = match listener.accept().await {
            Ok(accepted) => accepted,
            // Out of file descriptors or a connection reset before accept: keep serving.
            Err(e) if is_transient(&e) => {
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
            Err(e) => return Err(e),
        };
        // PROXY protocol (next issue): read the header here, with a deadline, and take the
        // client's address from it before the limits and the protocol see `addr`.
        let limit = match admission {
            Admission::Limited(limit) => limit,
            Admission::Open => return Ok(Accepted { stream, peer: PeerAddr(Some(addr)), slot: None }),
        };
        let admitted = if descriptors::available(descriptors::Need::Connection) {
            limit.try_acquire(addr.ip())
        } else {
            Err(Refusal::Descriptors)
        };
        let slot = match admitted {
            Ok(slot) => slot,
            Err(refusal) => {
                metrics().connections_refused_total.with_label_values(&[refusal.label()]).inc();
                tracing::warn!(peer = %addr, why = refusal.reason(), "closing connection");
                drop(stream);
                refused(PeerAddr(Some(addr)), refusal.reason());
                continue;
            }
        };
        // Interactive protocols: never wait for Nagle.
        let _ = stream.set_nodelay(true);
        return Ok(Accepted { stream, peer: PeerAddr(Some(addr)), slot: Some(slot) });
    }
}

/// Accepts the data connection of an FTP passive transfer: only from the control connection's
/// address (`client`); anyone else racing for the port is refused and the wait goes on.
pub async fn accept_from(listener: &TcpListener, client: IpAddr) -> std::io::Result<TcpStream> {
    loop {
        let (stream, peer) = listener.accept().await?;
        if peer.ip().to_canonical() == client.to_canonical() {
            return Ok(stream);
        }
        tracing::warn!(%peer, expected = %client, "data connection from a foreign address refused");
    }
}

fn is_transient(e: &std::io::Error) -> bool {
    use std::io::ErrorKind as K;
    matches!(e.kind(), K::ConnectionAborted | K::ConnectionReset | K::Interrupted | K::WouldBlock)
        || e.raw_os_error() == Some(24)
        || e.raw_os_error() == Some(23)
}
