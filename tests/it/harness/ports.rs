//! Ports for servers that take a port number rather than a listener (slapd, the storage
//! emulators, Prometheus, ferry's plain-HTTP redirect listener). Binding port 0, dropping the
//! socket and passing the number on is a race: anything on the machine may be handed that
//! number in between. A `ReservedPort` keeps it bound until the server takes it.

use std::net::{Ipv4Addr, SocketAddr};

/// A loopback port held bound (SO_REUSEADDR, never listening) for as long as this value lives.
///
/// While it is held, the kernel hands the number to no ephemeral `bind(0)` or outgoing
/// `connect`, and a plain `bind` of it fails; a server that binds it with SO_REUSEADDR (tokio,
/// Go, libuv, Python's `http.server`, slapd all do) takes it over and listens as usual, and can
/// stop and come back on it. Keep it alive as long as the server runs, restarts included.
pub struct ReservedPort {
    _socket: tokio::net::TcpSocket,
    port: u16,
}

impl ReservedPort {
    pub fn new() -> Self {
        let socket = tokio::net::TcpSocket::new_v4().expect("a TCP socket");
        socket.set_reuseaddr(true).expect("SO_REUSEADDR");
        socket.bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0))).expect("a loopback port");
        let port = socket.local_addr().expect("bound address").port();
        Self { _socket: socket, port }
    }

    pub fn port(&self) -> u16 {
        self.port
    }
}

/// The guarantee the servers rely on: others are refused the port, a SO_REUSEADDR listener
/// (tokio's, like ferry's own) takes it, and takes it again after a restart.
#[tokio::test]
async fn a_reserved_port_is_refused_to_others_and_taken_by_a_reuseaddr_server() {
    let reserved = ReservedPort::new();
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, reserved.port()));
    let plain = tokio::net::TcpSocket::new_v4().unwrap();
    let refused = plain.bind(addr).expect_err("a bind without SO_REUSEADDR is refused");
    assert_eq!(refused.kind(), std::io::ErrorKind::AddrInUse);
    for _restart in 0..2 {
        let listener = tokio::net::TcpListener::bind(addr).await.expect("a SO_REUSEADDR server takes it");
        let client = tokio::net::TcpStream::connect(addr).await.expect("it listens");
        let (accepted, _) = listener.accept().await.unwrap();
        assert_eq!(accepted.peer_addr().unwrap(), client.local_addr().unwrap());
    }
}
