//! Data connections (RFC 959 §3.2, RFC 2428): passive listeners from the configured port range
//! that accept only the control connection's client address, active connections only back to
//! that address (no FTP bounce, RFC 2577), TLS when PROT P is in force (RFC 4217 §9), resuming
//! the control connection's TLS session through the shared server configuration.

use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use rustls::HandshakeKind;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::TlsAcceptor;

use super::passive::PassiveListener;
use super::tls_owner::SessionOwners;
use super::tls_sessions::{DataConfigs, Handshake, Tracked};
use crate::net;

/// A byte stream for data: plain TCP or TLS over it.
pub trait Io: AsyncRead + AsyncWrite + Unpin + Send + Sync {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send + Sync> Io for T {}

pub type DataStream = Box<dyn Io>;

/// How the next transfer gets its data connection.
pub enum Plan {
    /// PASV/EPSV: we listen, the client connects.
    Passive(PassiveListener),
    /// PORT/EPRT: we connect to the client.
    Active(SocketAddr),
    /// Accepted before the 1xx reply, TLS not started yet (see `open_early`).
    Accepted(TcpStream),
    /// Opened, TLS included, before the 1xx reply (see `open_early`).
    Opened(Result<DataStream, ConnectError>),
}

/// Which way a transfer's data goes. Data going to the client is read by it to the end, so its
/// connection may carry a TLS 1.3 ticket (see `DataConfigs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    /// A download or a listing.
    ToClient,
    /// An upload.
    FromClient,
}

/// TLS for a protected data connection, and whose sessions it may resume.
pub struct DataTls {
    pub configs: DataConfigs,
    pub owners: Arc<SessionOwners>,
    /// The login of the control connection.
    pub user: String,
    /// Refuse a fresh handshake too (`ftp.require_tls_session_reuse`).
    pub require_reuse: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// The handshake did not resume a session of this login's control connections.
    #[error("the data connection's TLS session was not resumed from this login's control connection")]
    NotResumed,
}

fn timed_out() -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::TimedOut, "no data connection in time")
}

/// Opens a protected passive data connection before the 1xx reply when the client has
/// connected and already sent its TLS ClientHello (curl starts the handshake without waiting
/// for 150). The handshake then ends, with a session ticket even on an upload, before the 150
/// goes out: curl looks for that ticket once, right after writing an upload, and resumes with it
/// on its next data connection (its TLS 1.3 tickets are single-use). A client that waits for
/// the 150 before its handshake (Python's ftplib, Go's) has sent nothing, so nothing waits
/// here, and its upload gets no ticket it would leave unread.
pub async fn open_early(plan: Plan, client_ip: IpAddr, tls: Option<&DataTls>, timeout: Duration) -> Plan {
    let (Plan::Passive(passive), Some(tls)) = (&plan, tls) else { return plan };
    // Only a connection already waiting (and from the client: anyone else is dropped, and the
    // transfer waits for the client as usual).
    let stream = match net::accept_waiting(&passive.listener, client_ip, &passive.proxy).await {
        None => return plan,
        Some(Ok(stream)) => stream,
        Some(Err(e)) => return Plan::Opened(Err(e.into())),
    };
    let mut first = [0u8; 1];
    let sent = rustix::net::recv(
        &stream,
        &mut first,
        rustix::net::RecvFlags::PEEK | rustix::net::RecvFlags::DONTWAIT,
    );
    if !matches!(sent, Ok((n, _)) if n > 0) {
        return Plan::Accepted(stream);
    }
    Plan::Opened(secure(stream, Some(tls), true, tokio::time::Instant::now() + timeout).await)
}

/// Opens the data connection of `plan` for a client at `client_ip`, within `timeout`.
pub async fn connect(
    plan: Plan,
    client_ip: IpAddr,
    tls: Option<&DataTls>,
    flow: Flow,
    timeout: Duration,
) -> Result<DataStream, ConnectError> {
    let deadline = tokio::time::Instant::now() + timeout;
    let tcp = match plan {
        Plan::Opened(opened) => return opened,
        Plan::Accepted(tcp) => tcp,
        // The listener, and the port it holds, go as soon as the connection is accepted.
        Plan::Passive(passive) => {
            tokio::time::timeout_at(deadline, net::accept_from(&passive.listener, client_ip, &passive.proxy))
                .await
                .map_err(|_| timed_out())??
        }
        Plan::Active(addr) => {
            tokio::time::timeout_at(deadline, TcpStream::connect(addr)).await.map_err(|_| timed_out())??
        }
    };
    secure(tcp, tls, flow == Flow::ToClient, deadline).await
}

/// Sets up the socket of a data connection and, under PROT P, runs its TLS handshake (sending a
/// TLS 1.3 ticket when `ticket`: the client will read the connection) and checks whose session
/// it resumed.
async fn secure(
    tcp: TcpStream,
    tls: Option<&DataTls>,
    ticket: bool,
    deadline: tokio::time::Instant,
) -> Result<DataStream, ConnectError> {
    let _ = tcp.set_nodelay(true);
    let tcp = AckNow(tcp);
    let Some(tls) = tls else { return Ok(Box::new(tcp)) };
    let handshake = Handshake::data();
    let config = if ticket { &tls.configs.ticketed } else { &tls.configs.quiet };
    let accept = Tracked::new(TlsAcceptor::from(Arc::clone(config)).accept(tcp), Arc::clone(&handshake));
    let stream = tokio::time::timeout_at(deadline, accept).await.map_err(|_| timed_out())??;
    let (_, conn) = stream.get_ref();
    let resumed = conn.handshake_kind() == Some(HandshakeKind::Resumed);
    // A sibling control connection of the client may still be logging in; wait for it within
    // the data connection's time (after that, the session counts as nobody's).
    let owner = match handshake.resumed().filter(|_| resumed) {
        Some(token) => {
            tokio::time::timeout_at(deadline, tls.owners.owner_when_known(&token)).await.ok().flatten()
        }
        None => None,
    };
    // Resumed from a session of this login's control connections; or, where the configuration
    // allows it, a fresh handshake or a session nobody is known to own (never another login's).
    let allowed = match &owner {
        Some(owner) => *owner == tls.user,
        None => !tls.require_reuse,
    };
    if allowed {
        return Ok(Box::new(stream));
    }
    tracing::warn!(user = %tls.user, resumed, "protected data connection without a session of this login refused");
    Err(ConnectError::NotResumed)
}

/// A data socket that acknowledges what it reads at once. Clients leave Nagle's algorithm on
/// for data connections, so the small TLS close_notify behind the last data record waits for
/// that record's ACK; with the kernel's delayed ACK (40 ms) that cost every FTPS upload 40 ms.
struct AckNow(TcpStream);

impl AsyncRead for AckNow {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.0).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            // Linux clears quick-ACK mode again on its own; set it after every read.
            let _ = rustix::net::sockopt::set_tcp_quickack(&self.0, true);
        }
        polled
    }
}

impl AsyncWrite for AckNow {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

/// Parses a PORT argument `h1,h2,h3,h4,p1,p2`.
pub fn parse_port(arg: &str) -> Option<SocketAddr> {
    let nums: Vec<u8> = arg.trim().split(',').map(|n| n.trim().parse().ok()).collect::<Option<_>>()?;
    let [a, b, c, d, p1, p2] = nums[..] else { return None };
    Some(SocketAddr::from(([a, b, c, d], u16::from(p1) << 8 | u16::from(p2))))
}

/// Parses an EPRT argument `|1|132.235.1.2|6275|` or `|2|::1|6275|`.
pub fn parse_eprt(arg: &str) -> Option<SocketAddr> {
    let arg = arg.trim();
    let delimiter = arg.chars().next()?;
    let parts: Vec<&str> = arg.split(delimiter).collect();
    let [_, proto, host, port, _] = parts[..] else { return None };
    let ip: IpAddr = host.parse().ok()?;
    match (proto, ip) {
        ("1", IpAddr::V4(_)) | ("2", IpAddr::V6(_)) => Some(SocketAddr::new(ip, port.parse().ok()?)),
        _ => None,
    }
}

/// The PASV reply text for `ip:port` (IPv4 only).
pub fn pasv_reply(ip: std::net::Ipv4Addr, port: u16) -> String {
    let [a, b, c, d] = ip.octets();
    format!("Entering Passive Mode ({a},{b},{c},{d},{},{})", port >> 8, port & 0xff)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocols::ftp::passive::PassivePorts;

    #[test]
    fn port_and_eprt_arguments() {
        assert_eq!(parse_port("127,0,0,1,195,80"), Some("127.0.0.1:50000".parse().unwrap()));
        assert_eq!(parse_port("127,0,0,1,195"), None);
        assert_eq!(parse_port("300,0,0,1,1,1"), None);
        assert_eq!(parse_eprt("|1|10.0.0.1|6275|"), Some("10.0.0.1:6275".parse().unwrap()));
        assert_eq!(parse_eprt("|2|::1|21|"), Some("[::1]:21".parse().unwrap()));
        assert_eq!(parse_eprt("|1|::1|21|"), None);
        assert_eq!(
            pasv_reply("127.0.0.1".parse().unwrap(), 50000),
            "Entering Passive Mode (127,0,0,1,195,80)"
        );
    }

    #[tokio::test]
    async fn passive_listener_refuses_other_addresses_and_times_out() {
        let ports = PassivePorts::new(4);
        let expected: IpAddr = "127.0.0.2".parse().unwrap();
        let passive = ports
            .bind(expected, "127.0.0.1".parse().unwrap(), (40000, 40999), crate::net::ProxyPolicy::off())
            .await
            .unwrap();
        let addr = passive.listener.local_addr().unwrap();
        assert!((40000..=40999).contains(&addr.port()));
        // The expected client is 127.0.0.2, so a connection from 127.0.0.1 is refused.
        let _intruder = TcpStream::connect(addr).await.unwrap();
        let result =
            connect(Plan::Passive(passive), expected, None, Flow::ToClient, Duration::from_millis(300)).await;
        assert!(
            matches!(&result, Err(ConnectError::Io(e)) if e.kind() == std::io::ErrorKind::TimedOut),
            "{:?}",
            result.err()
        );
        assert_eq!(ports.held_by(expected), 0, "the port is given back");
    }
}
