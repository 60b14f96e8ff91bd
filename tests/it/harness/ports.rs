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
