//! PROXY protocol v1 and v2 (HAProxy's spec; AWS NLB, Azure Private Link, ingress controllers):
//! the real client address of a connection that came through a load balancer. A header is read
//! only from a trusted address, only at the very start of the connection, with a deadline, and
//! by peeking first, so not one byte of the protocol behind it is consumed or buffered: the
//! stream handed on is the plain TCP stream, positioned just after the header.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use ipnet::IpNet;
use proxy_header::{ParseConfig, ProxyHeader};
use tokio::io::AsyncReadExt as _;
use tokio::net::TcpStream;
use tokio::time::Instant;

pub use crate::config::ProxyMode;
use crate::telemetry::metrics::metrics;

/// The largest header read. v2 allows 16 + 65,535 bytes, but real balancers send at most a few
/// hundred (addresses plus AWS's or Azure's TLVs); a peer announcing more is closed.
pub const MAX_HEADER: usize = 4096;
/// v1 starts with this, v2 with the 12-byte signature after it.
const V1_PREFIX: &[u8] = b"PROXY ";
const V2_SIGNATURE: &[u8] = b"\r\n\r\n\0\r\nQUIT\n";

/// How one listener treats PROXY headers.
#[derive(Clone, Debug)]
pub struct ProxyPolicy {
    mode: ProxyMode,
    trusted: Arc<[IpNet]>,
    timeout: Duration,
}

/// What to do with a new connection, from its TCP peer alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Plan {
    /// The TCP peer is the client: serve it as it is.
    Direct,
    /// A trusted proxy: read its header (within the deadline) first.
    ReadHeader,
    /// Not a trusted proxy on a listener that requires one: close it.
    Refuse,
}

/// Where a connection really comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Origin {
    /// The client (the header's source, or the TCP peer).
    pub peer: SocketAddr,
    /// The address the client connected to (the header's destination: the balancer's), or the
    /// socket's own local address.
    pub local: Option<SocketAddr>,
}

/// Why a trusted proxy's connection was closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum HeaderError {
    #[error("no PROXY protocol header")]
    Missing,
    #[error("malformed PROXY protocol header")]
    Malformed,
    #[error("PROXY protocol header too large")]
    Oversized,
    #[error("PROXY protocol header not received in time")]
    Timeout,
    #[error("connection closed before the PROXY protocol header ended")]
    Closed,
}

impl HeaderError {
    /// The metric label.
    pub fn label(self) -> &'static str {
        match self {
            HeaderError::Missing => "missing",
            HeaderError::Malformed => "malformed",
            HeaderError::Oversized => "oversized",
            HeaderError::Timeout => "timeout",
            HeaderError::Closed => "closed",
        }
    }
}

impl ProxyPolicy {
    /// Headers are never read.
    pub fn off() -> Self {
        Self { mode: ProxyMode::Off, trusted: Arc::from(Vec::new()), timeout: Duration::from_secs(5) }
    }

    pub fn new(mode: ProxyMode, trusted: &[IpNet], timeout: Duration) -> Self {
        Self { mode, trusted: Arc::from(trusted.to_vec()), timeout }
    }

    pub fn mode(&self) -> ProxyMode {
        self.mode
    }

    /// Decides from the TCP peer alone, without reading anything.
    pub fn plan(&self, peer: IpAddr) -> Plan {
        let peer = peer.to_canonical();
        let trusted = || self.trusted.iter().any(|net| net.contains(&peer));
        match self.mode {
            ProxyMode::Off => Plan::Direct,
            ProxyMode::Optional if trusted() => Plan::ReadHeader,
            ProxyMode::Optional => Plan::Direct,
            ProxyMode::Required if trusted() => Plan::ReadHeader,
            ProxyMode::Required => Plan::Refuse,
        }
    }

    /// Reads the header of a trusted proxy's connection and says where it really comes from;
    /// counts the outcome. `peer` is the TCP peer.
    pub async fn read(&self, stream: &mut TcpStream, peer: SocketAddr) -> Result<Origin, HeaderError> {
        let local = stream.local_addr().ok();
        let direct = Origin { peer, local };
        let outcome = read_header(stream, self.mode, Instant::now() + self.timeout).await;
        let label = match &outcome {
            Ok(Header::Proxied(_)) => "proxied",
            Ok(Header::Local) => "local",
            Ok(Header::Absent) => "absent",
            Err(e) => e.label(),
        };
        metrics().proxy_headers_total.with_label_values(&[label]).inc();
        match outcome? {
            Header::Proxied(origin) => Ok(origin),
            Header::Local | Header::Absent => Ok(direct),
        }
    }
}

/// What a trusted proxy sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Header {
    /// A proxied TCP connection.
    Proxied(Origin),
    /// The proxy's own connection (v2 `LOCAL`, v1 `UNKNOWN`: a health check): the TCP
    /// endpoints are the real ones.
    Local,
    /// No header (allowed under `optional` only).
    Absent,
}

/// Peeks until a whole header has arrived, then consumes exactly its bytes.
async fn read_header(
    stream: &mut TcpStream,
    mode: ProxyMode,
    deadline: Instant,
) -> Result<Header, HeaderError> {
    let mut buf = vec![0u8; MAX_HEADER];
    // A header comes in one segment from every real balancer; a trickle is polled, not spun on.
    let mut pause = Duration::from_millis(2);
    loop {
        let seen = match tokio::time::timeout_at(deadline, stream.peek(&mut buf)).await {
            Ok(Ok(0)) => return Err(HeaderError::Closed),
            Ok(Ok(n)) => n,
            Ok(Err(_)) => return Err(HeaderError::Closed),
            // Nothing at all under `optional`: a client of a server-first protocol (FTP) that
            // waits for the greeting, straight from the proxy's network.
            Err(_) if mode == ProxyMode::Optional => return Ok(Header::Absent),
            Err(_) => return Err(HeaderError::Timeout),
        };
        let bytes = &buf[..seen];
        if !could_be_header(bytes) {
            return if mode == ProxyMode::Optional { Ok(Header::Absent) } else { Err(HeaderError::Missing) };
        }
        match parse(bytes)? {
            Some((header, length)) => {
                stream.read_exact(&mut buf[..length]).await.map_err(|_| HeaderError::Closed)?;
                return Ok(header);
            }
            None if seen >= MAX_HEADER => return Err(HeaderError::Oversized),
            None => {
                if Instant::now() + pause >= deadline {
                    return Err(HeaderError::Timeout);
                }
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_millis(50));
            }
        }
    }
}

/// Whether `bytes` begin (or could still begin) one of the two signatures.
fn could_be_header(bytes: &[u8]) -> bool {
    let starts = |signature: &[u8]| {
        let n = bytes.len().min(signature.len());
        bytes[..n] == signature[..n]
    };
    starts(V1_PREFIX) || starts(V2_SIGNATURE)
}

/// A complete header and its length, `None` if more bytes are needed.
fn parse(bytes: &[u8]) -> Result<Option<(Header, usize)>, HeaderError> {
    // v2 says its length up front: refuse an oversized one before waiting for it, and parse
    // only that much (an address block shorter than its family needs is malformed, not short).
    let mut bytes = bytes;
    let mut whole = false;
    if bytes.len() >= 16 && bytes.starts_with(V2_SIGNATURE) {
        let length = 16 + usize::from(u16::from_be_bytes([bytes[14], bytes[15]]));
        if length > MAX_HEADER {
            return Err(HeaderError::Oversized);
        }
        if bytes.len() >= length {
            bytes = &bytes[..length];
            whole = true;
        }
    }
    let config = ParseConfig { include_tlvs: false, allow_v1: true, allow_v2: true };
    let (header, length) = match ProxyHeader::parse(bytes, config) {
        Ok(parsed) => parsed,
        Err(proxy_header::Error::BufferTooShort) if !whole => return Ok(None),
        Err(_) => return Err(HeaderError::Malformed),
    };
    let header = match header.proxied_address() {
        None => Header::Local,
        // A stream connection announced as a datagram one is a confused or hostile proxy.
        Some(address) if address.protocol != proxy_header::Protocol::Stream => {
            return Err(HeaderError::Malformed);
        }
        Some(address) => Header::Proxied(Origin {
            peer: canonical(address.source),
            local: Some(canonical(address.destination)),
        }),
    };
    Ok(Some((header, length)))
}

/// `::ffff:10.0.0.1` is `10.0.0.1`, as bans and limits count it.
fn canonical(addr: SocketAddr) -> SocketAddr {
    SocketAddr::new(addr.ip().to_canonical(), addr.port())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v2(command: u8, family: u8, body: &[u8]) -> Vec<u8> {
        let mut out = V2_SIGNATURE.to_vec();
        out.push(command);
        out.push(family);
        out.extend_from_slice(&(body.len() as u16).to_be_bytes());
        out.extend_from_slice(body);
        out
    }

    fn v2_tcp4(tlvs: &[u8]) -> Vec<u8> {
        let mut body = vec![192, 0, 2, 7, 10, 0, 0, 1, 0x30, 0x39, 0x00, 0x15];
        body.extend_from_slice(tlvs);
        v2(0x21, 0x11, &body)
    }

    #[test]
    fn v1_and_v2_give_the_client_and_the_destination() {
        let v1 = b"PROXY TCP4 192.0.2.7 10.0.0.1 12345 21\r\nUSER x";
        let (header, length) = parse(v1).unwrap().unwrap();
        assert_eq!(length, v1.len() - 6, "the protocol's bytes after the header stay unread");
        let expected =
            Origin { peer: "192.0.2.7:12345".parse().unwrap(), local: Some("10.0.0.1:21".parse().unwrap()) };
        assert_eq!(header, Header::Proxied(expected));

        let v6 = b"PROXY TCP6 2001:db8::7 2001:db8::1 40000 22\r\n";
        let (header, _) = parse(v6).unwrap().unwrap();
        assert!(matches!(header, Header::Proxied(o) if o.peer == "[2001:db8::7]:40000".parse().unwrap()));

        // Unknown TLVs (type 0xEE) are skipped, not refused.
        let bytes = v2_tcp4(&[0xEE, 0, 3, 1, 2, 3]);
        let (header, length) = parse(&bytes).unwrap().unwrap();
        assert_eq!((header, length), (Header::Proxied(expected), bytes.len()));
    }

    #[test]
    fn local_and_unknown_keep_the_tcp_endpoints() {
        assert_eq!(parse(&v2(0x20, 0x00, &[])).unwrap().unwrap().0, Header::Local);
        assert_eq!(parse(b"PROXY UNKNOWN\r\n").unwrap().unwrap().0, Header::Local);
    }

    #[test]
    fn partial_headers_wait_for_more_and_garbage_is_malformed() {
        let whole = v2_tcp4(&[]);
        for cut in 1..whole.len() {
            assert_eq!(parse(&whole[..cut]), Ok(None), "cut at {cut}");
        }
        assert_eq!(parse(b"PROXY TCP4 192.0.2.7"), Ok(None));
        for bad in [
            &b"PROXY TCP4 999.0.2.7 10.0.0.1 1 2\r\n"[..],
            b"PROXY TCP5 192.0.2.7 10.0.0.1 1 2\r\n",
            b"PROXY TCP4 2001:db8::1 10.0.0.1 1 2\r\n",
        ] {
            assert_eq!(parse(bad), Err(HeaderError::Malformed), "{}", String::from_utf8_lossy(bad));
        }
        // A v1 line that never ends.
        let mut endless = b"PROXY TCP4 ".to_vec();
        endless.resize(200, b'1');
        assert_eq!(parse(&endless), Err(HeaderError::Malformed));
        // Version 3, and UDP over a TCP connection.
        assert_eq!(parse(&v2(0x31, 0x11, &[0; 12])), Err(HeaderError::Malformed));
        assert_eq!(parse(&v2(0x21, 0x12, &[0; 12])), Err(HeaderError::Malformed));
        // A v2 address block shorter than its family needs.
        assert_eq!(parse(&v2(0x21, 0x11, &[0; 5])), Err(HeaderError::Malformed));
    }

    #[test]
    fn an_oversized_v2_header_is_refused_from_its_length_alone() {
        let mut head = V2_SIGNATURE.to_vec();
        head.extend_from_slice(&[0x21, 0x11, 0xFF, 0xFF]);
        assert_eq!(parse(&head), Err(HeaderError::Oversized));
    }

    #[test]
    fn only_the_signatures_count_as_the_start_of_a_header() {
        assert!(could_be_header(b"PRO"));
        assert!(could_be_header(b"\r\n\r\n"));
        assert!(!could_be_header(b"SSH-2.0-OpenSSH_9.2"));
        assert!(!could_be_header(b"\x16\x03\x01"), "a TLS ClientHello");
        assert!(!could_be_header(b"USER alice\r\n"));
    }

    #[test]
    fn plans_follow_the_mode_and_the_trusted_list() {
        let trusted: Vec<IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
        let (inside, outside): (IpAddr, IpAddr) = ("10.1.2.3".parse().unwrap(), "192.0.2.7".parse().unwrap());
        let mapped: IpAddr = "::ffff:10.1.2.3".parse().unwrap();
        let policy = |mode| ProxyPolicy::new(mode, &trusted, Duration::from_secs(1));
        assert_eq!(policy(ProxyMode::Off).plan(inside), Plan::Direct);
        assert_eq!(policy(ProxyMode::Optional).plan(inside), Plan::ReadHeader);
        assert_eq!(policy(ProxyMode::Optional).plan(outside), Plan::Direct);
        assert_eq!(policy(ProxyMode::Required).plan(mapped), Plan::ReadHeader);
        assert_eq!(policy(ProxyMode::Required).plan(outside), Plan::Refuse);
    }

    mod props {
        use proptest::prelude::*;

        use super::super::*;

        fn v2_stream(source: SocketAddr, destination: SocketAddr) -> Vec<u8> {
            let mut out = Vec::new();
            let header = ProxyHeader::with_address(proxy_header::ProxiedAddress::stream(source, destination));
            header.encode_v2(&mut out).unwrap();
            out
        }

        proptest! {
            #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

            /// Any bytes: an answer (a header, "more", or an error), never a panic, and never a
            /// length beyond what was given.
            #[test]
            fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600), v2 in any::<bool>()) {
                let mut input = if v2 { V2_SIGNATURE.to_vec() } else { b"PROXY ".to_vec() };
                input.extend_from_slice(&bytes);
                if let Ok(Some((_, length))) = parse(&input) {
                    prop_assert!(length <= input.len());
                }
                let _ = parse(&bytes);
            }

            /// A v2 header for any IPv4 or IPv6 pair gives that client back, consumes exactly the
            /// header and leaves what follows for the protocol; any cut of it asks for more.
            #[test]
            fn v2_headers_round_trip(
                v6 in any::<bool>(),
                a in any::<[u8; 16]>(),
                b in any::<[u8; 16]>(),
                ports in any::<(u16, u16)>(),
                after in proptest::collection::vec(any::<u8>(), 0..64),
                cut in any::<prop::sample::Index>(),
            ) {
                let ip = |bytes: [u8; 16]| -> IpAddr {
                    if v6 {
                        std::net::Ipv6Addr::from(bytes).into()
                    } else {
                        std::net::Ipv4Addr::new(bytes[0], bytes[1], bytes[2], bytes[3]).into()
                    }
                };
                let (source, destination) = (SocketAddr::new(ip(a), ports.0), SocketAddr::new(ip(b), ports.1));
                let header = v2_stream(source, destination);
                let mut input = header.clone();
                input.extend_from_slice(&after);
                let (parsed, length) = parse(&input).unwrap().unwrap();
                prop_assert_eq!(length, header.len());
                prop_assert_eq!(parsed, Header::Proxied(Origin { peer: canonical(source), local: Some(canonical(destination)) }));
                let cut = cut.index(header.len());
                prop_assert_eq!(parse(&header[..cut]), Ok(None));
            }
        }
    }
}
