//! The one accept-and-drain loop every listener runs (SFTP/SCP, FTP, FTPS, HTTPS, the redirect
//! and the ops listener), and the vetted accept of FTP passive data connections. A connection
//! passes, in order: the PROXY protocol header (from trusted proxies, where the listener
//! reads them) → the address filter → the defender's bans → file-descriptor reserve →
//! connection limits (total and per address) → the protocol's handler, as a task of the
//! listener. On shutdown the loop
//! stops accepting when the server reaches the listener's `stop_at` phase, waits for `Closing`
//! and hands the open connections back for the protocol's goodbye.

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;

use super::filter::AddressFilter;
use super::proxy::{self, Origin, ProxyPolicy};
use super::refusals::RefusalReports;
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
pub struct Admission {
    /// Connection limits and the descriptor reserve, for every listener that serves users;
    /// `None` for the ops listener (the platform's probes must get through a busy server) and
    /// the redirect to HTTPS, which hold no session.
    limit: Option<ConnectionLimit>,
    proxy: ProxyPolicy,
    filter: AddressFilter,
    /// Addresses banned now (the defender of the session room), refused before any protocol
    /// byte or TLS handshake is spent on them.
    banned: Option<BanCheck>,
}

/// Says whether an address is banned now.
pub type BanCheck = std::sync::Arc<dyn Fn(IpAddr) -> bool + Send + Sync>;

impl Admission {
    pub fn limited(limit: ConnectionLimit) -> Self {
        Self { limit: Some(limit), proxy: ProxyPolicy::off(), filter: AddressFilter::default(), banned: None }
    }

    pub fn open() -> Self {
        Self { limit: None, proxy: ProxyPolicy::off(), filter: AddressFilter::default(), banned: None }
    }

    pub fn with_proxy(mut self, proxy: ProxyPolicy) -> Self {
        self.proxy = proxy;
        self
    }

    pub fn with_filter(mut self, filter: AddressFilter) -> Self {
        self.filter = filter;
        self
    }

    /// Besides the filter, admits only addresses in `nets` (the plain-HTTP listener: trusted
    /// proxies only).
    pub fn only(mut self, nets: &[ipnet::IpNet]) -> Self {
        self.filter = self.filter.only(nets);
        self
    }

    pub fn with_bans(mut self, banned: BanCheck) -> Self {
        self.banned = Some(banned);
        self
    }

    /// The PROXY policy, for the FTP data connections of this listener's sessions.
    pub fn proxy(&self) -> &ProxyPolicy {
        &self.proxy
    }

    /// The checks on the real client address: the address filter, the bans, the descriptor
    /// reserve, the limits.
    fn admit(&self, stream: TcpStream, origin: Origin) -> Result<Accepted, (Refusal, SocketAddr)> {
        let peer = origin.peer;
        if !self.filter.permits(peer.ip()) {
            return Err((Refusal::AddressFilter, peer));
        }
        if self.banned.as_ref().is_some_and(|banned| banned(peer.ip())) {
            return Err((Refusal::Banned, peer));
        }
        let slot = match &self.limit {
            None => None,
            Some(_) if !descriptors::available(descriptors::Need::Connection) => {
                return Err((Refusal::Descriptors, peer));
            }
            Some(limit) => Some(limit.try_acquire(peer.ip()).map_err(|refusal| (refusal, peer))?),
        };
        // Interactive protocols: never wait for Nagle.
        let _ = stream.set_nodelay(true);
        Ok(Accepted { stream, peer: PeerAddr(Some(peer)), local: origin.local, slot })
    }
}

/// A connection that passed the accept path.
pub struct Accepted {
    /// Positioned after the PROXY header, if there was one; nothing else was read.
    pub stream: TcpStream,
    /// The client's address (from the PROXY header when a trusted proxy sent one).
    pub peer: PeerAddr,
    /// The address the client connected to: the balancer's from the PROXY header, else the
    /// socket's own.
    pub local: Option<SocketAddr>,
    /// The connection's place under the limits (`None` on an open listener): drop it when the
    /// connection ends.
    pub slot: Option<ConnectionSlot>,
}

/// PROXY headers being read at once on one listener; more connections from the proxies are
/// closed until some finish (each read ends within `server.proxy_header_timeout`).
const MAX_PENDING_HEADERS: usize = 1024;

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
/// open. PROXY headers are read by tasks of their own, so a slow one never holds up the accepts.
pub async fn serve<H, F>(
    listener: TcpListener,
    admission: Admission,
    refused: impl Fn(PeerAddr, &str),
    mut phase: watch::Receiver<Phase>,
    stop_at: Phase,
    mut handle: H,
) -> std::io::Result<Connections>
where
    H: FnMut(Accepted) -> F,
    F: Future<Output = ()> + Send + 'static,
{
    let mut connections = JoinSet::new();
    let mut headers: JoinSet<Result<(TcpStream, Origin), (Refusal, SocketAddr)>> = JoinSet::new();
    let mut reports = RefusalReports::default();
    let mut refuse = |(refusal, peer): (Refusal, SocketAddr)| {
        metrics().connections_refused_total.with_label_values(&[refusal.label()]).inc();
        let Some(left_out) = reports.report(peer.ip(), refusal, tokio::time::Instant::now()) else { return };
        let why = match left_out {
            0 => refusal.reason().to_string(),
            n => format!("{} ({n} more from this address since the last record)", refusal.reason()),
        };
        tracing::warn!(%peer, why, "closing connection");
        refused(PeerAddr(Some(peer)), &why);
    };
    // Already there (a listener spawned late): do not take one more connection.
    if *phase.borrow() < stop_at {
        loop {
            tokio::select! {
                changed = phase.changed() => {
                    if changed.is_err() || *phase.borrow() >= stop_at { break; }
                }
                accepted = accept(&listener) => {
                    let (mut stream, peer) = accepted?;
                    match admission.proxy.plan(peer.ip()) {
                        proxy::Plan::Direct => {
                            let origin = Origin { peer, local: stream.local_addr().ok() };
                            match admission.admit(stream, origin) {
                                Ok(accepted) => { connections.spawn(handle(accepted)); }
                                Err(refusal) => refuse(refusal),
                            }
                        }
                        proxy::Plan::Refuse => refuse((Refusal::UntrustedProxy, peer)),
                        proxy::Plan::ReadHeader if headers.len() >= MAX_PENDING_HEADERS => {
                            refuse((Refusal::HeadersPending, peer));
                        }
                        proxy::Plan::ReadHeader => {
                            let proxy = admission.proxy.clone();
                            headers.spawn(async move {
                                match proxy.read(&mut stream, peer).await {
                                    Ok(origin) => Ok((stream, origin)),
                                    Err(e) => {
                                        tracing::warn!(%peer, error = %e, "PROXY protocol header refused");
                                        Err((Refusal::ProxyHeader, peer))
                                    }
                                }
                            });
                        }
                    }
                }
                Some(read) = headers.join_next(), if !headers.is_empty() => {
                    let Ok(read) = read else { continue };
                    match read.and_then(|(stream, origin)| admission.admit(stream, origin)) {
                        Ok(accepted) => { connections.spawn(handle(accepted)); }
                        Err(refusal) => refuse(refusal),
                    }
                }
                // Reap the finished ones: the set holds only open connections.
                Some(_) = connections.join_next(), if !connections.is_empty() => {}
            }
        }
    }
    drop(listener);
    drop(headers);
    while *phase.borrow() < Phase::Closing {
        if phase.changed().await.is_err() {
            break;
        }
    }
    Ok(Connections(connections))
}

/// The next TCP connection; transient failures (out of descriptors, a reset before accept)
/// are waited out, not returned.
async fn accept(listener: &TcpListener) -> std::io::Result<(TcpStream, SocketAddr)> {
    loop {
        match listener.accept().await {
            Ok(accepted) => return Ok(accepted),
            Err(e) if is_transient(&e) => {
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => return Err(e),
        }
    }
}

/// Accepts the data connection of an FTP passive transfer: only from the control connection's
/// address (`client`, the real one); anyone else racing for the port is refused and the wait
/// goes on.
pub async fn accept_from(
    listener: &TcpListener,
    client: IpAddr,
    proxy: &ProxyPolicy,
) -> std::io::Result<TcpStream> {
    loop {
        let (stream, peer) = listener.accept().await?;
        if let Some(stream) = data_from(stream, peer, client, proxy).await {
            return Ok(stream);
        }
    }
}

/// The data connection already waiting in `listener`'s queue, if it comes from `client`; `None`
/// when none is waiting (or the one waiting was someone else's, and was dropped).
pub async fn accept_waiting(
    listener: &TcpListener,
    client: IpAddr,
    proxy: &ProxyPolicy,
) -> Option<std::io::Result<TcpStream>> {
    use futures::FutureExt as _;
    match listener.accept().now_or_never()? {
        Ok((stream, peer)) => data_from(stream, peer, client, proxy).await.map(Ok),
        Err(e) => Some(Err(e)),
    }
}

/// Keeps an accepted data connection if it comes from `client`, through a trusted proxy's
/// header where the listener reads them.
async fn data_from(
    mut stream: TcpStream,
    peer: SocketAddr,
    client: IpAddr,
    proxy: &ProxyPolicy,
) -> Option<TcpStream> {
    let origin = match proxy.plan(peer.ip()) {
        proxy::Plan::Direct => peer,
        proxy::Plan::Refuse => {
            tracing::warn!(%peer, "data connection not from a trusted proxy refused");
            return None;
        }
        proxy::Plan::ReadHeader => match proxy.read(&mut stream, peer).await {
            Ok(origin) => origin.peer,
            Err(e) => {
                tracing::warn!(%peer, error = %e, "data connection's PROXY protocol header refused");
                return None;
            }
        },
    };
    if origin.ip().to_canonical() == client.to_canonical() {
        return Some(stream);
    }
    tracing::warn!(peer = %origin, expected = %client, "data connection from a foreign address refused");
    None
}

fn is_transient(e: &std::io::Error) -> bool {
    use std::io::ErrorKind as K;
    matches!(e.kind(), K::ConnectionAborted | K::ConnectionReset | K::Interrupted | K::WouldBlock)
        || e.raw_os_error() == Some(24)
        || e.raw_os_error() == Some(23)
}
