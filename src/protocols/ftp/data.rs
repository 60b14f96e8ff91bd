//! Data connections (RFC 959 §3.2, RFC 2428): passive listeners from the configured port range
//! that accept only the control connection's client address, active connections only back to
//! that address (no FTP bounce, RFC 2577), TLS when PROT P is in force (RFC 4217 §9), resuming
//! the control connection's TLS session through the shared server configuration.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;

/// A byte stream for data: plain TCP or TLS over it.
pub trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

pub type DataStream = Box<dyn Io>;

/// How the next transfer gets its data connection.
pub enum Plan {
    /// PASV/EPSV: we listen, the client connects.
    Passive(TcpListener),
    /// PORT/EPRT: we connect to the client.
    Active(SocketAddr),
}

/// Binds a passive listener on `local_ip` at a free port of `range`, starting at a random
/// point so concurrent sessions spread over the range.
pub async fn bind_passive(local_ip: IpAddr, range: (u16, u16)) -> std::io::Result<TcpListener> {
    let span = u32::from(range.1 - range.0) + 1;
    let start = rand::random::<u32>() % span;
    for i in 0..span {
        let port = range.0 + ((start + i) % span) as u16;
        match TcpListener::bind((local_ip, port)).await {
            Ok(listener) => return Ok(listener),
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => continue,
            Err(e) => return Err(e),
        }
    }
    Err(std::io::Error::new(std::io::ErrorKind::AddrInUse, "no free port in ftp.passive_ports"))
}

/// Opens the data connection of `plan` for a client at `client_ip`, within `timeout`.
pub async fn connect(
    plan: Plan,
    client_ip: IpAddr,
    tls: Option<&Arc<rustls::ServerConfig>>,
    timeout: Duration,
) -> std::io::Result<DataStream> {
    let deadline = tokio::time::Instant::now() + timeout;
    let timed_out = || std::io::Error::new(std::io::ErrorKind::TimedOut, "no data connection in time");
    let tcp = match plan {
        Plan::Passive(listener) => loop {
            let (stream, peer) =
                tokio::time::timeout_at(deadline, listener.accept()).await.map_err(|_| timed_out())??;
            if peer.ip().to_canonical() == client_ip.to_canonical() {
                break stream;
            }
            // Someone else raced for the port: refuse and keep waiting for our client.
            tracing::warn!(%peer, expected = %client_ip, "data connection from a foreign address refused");
        },
        Plan::Active(addr) => {
            tokio::time::timeout_at(deadline, TcpStream::connect(addr)).await.map_err(|_| timed_out())??
        }
    };
    let _ = tcp.set_nodelay(true);
    match tls {
        None => Ok(Box::new(tcp)),
        Some(config) => {
            let accept = TlsAcceptor::from(Arc::clone(config)).accept(tcp);
            let stream = tokio::time::timeout_at(deadline, accept).await.map_err(|_| timed_out())??;
            Ok(Box::new(stream))
        }
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
        let listener = bind_passive("127.0.0.1".parse().unwrap(), (40000, 40999)).await.unwrap();
        let addr = listener.local_addr().unwrap();
        assert!((40000..=40999).contains(&addr.port()));
        // The expected client is 127.0.0.2, so a connection from 127.0.0.1 is refused.
        let _intruder = TcpStream::connect(addr).await.unwrap();
        let result =
            connect(Plan::Passive(listener), "127.0.0.2".parse().unwrap(), None, Duration::from_millis(300))
                .await;
        assert_eq!(result.err().map(|e| e.kind()), Some(std::io::ErrorKind::TimedOut));
    }
}
