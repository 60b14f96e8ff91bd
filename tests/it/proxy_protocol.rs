//! The PROXY protocol on every listener, from raw sockets (headers a balancer would send, and
//! ones only a broken or hostile peer would), and `X-Forwarded-For` on HTTPS. The real HAProxy
//! in front of ferry is in `balancer.rs`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::ServerName;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpSocket, TcpStream};

use crate::harness::{TestServer, tls_client_config};
use crate::ssh_limits::sample;

/// The client a header claims (loopback, so nothing could ever be sent to it elsewhere).
const CLIENT: &str = "127.0.0.42";

fn v1(client_port: u16, server: SocketAddr) -> Vec<u8> {
    format!("PROXY TCP4 {CLIENT} {} {client_port} {}\r\n", server.ip(), server.port()).into_bytes()
}

fn v2(command: u8, family: u8, body: &[u8]) -> Vec<u8> {
    let mut out = b"\r\n\r\n\0\r\nQUIT\n".to_vec();
    out.extend_from_slice(&[command, family]);
    out.extend_from_slice(&u16::try_from(body.len()).unwrap().to_be_bytes());
    out.extend_from_slice(body);
    out
}

/// A v2 PROXY TCP4 header for `CLIENT:client_port` → `server`, with an unknown TLV (type 0xEE)
/// that must be skipped.
fn v2_tcp4(client_port: u16, server: SocketAddr) -> Vec<u8> {
    let SocketAddr::V4(server) = server else { panic!("IPv4 listener") };
    let mut body = CLIENT.parse::<std::net::Ipv4Addr>().unwrap().octets().to_vec();
    body.extend_from_slice(&server.ip().octets());
    body.extend_from_slice(&client_port.to_be_bytes());
    body.extend_from_slice(&server.port().to_be_bytes());
    body.extend_from_slice(&[0xEE, 0x00, 0x02, 0xAB, 0xCD]);
    v2(0x21, 0x11, &body)
}

/// Connects to `to` from the loopback address `from`.
async fn connect_from(from: &str, to: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(format!("{from}:0").parse().unwrap()).unwrap();
    socket.connect(to).await.unwrap()
}

/// What the server sends before it closes, up to `limit` bytes (never waits past 60 s).
async fn read_until_close(stream: &mut TcpStream, limit: usize) -> Vec<u8> {
    let mut got = Vec::new();
    let mut buf = [0u8; 512];
    while got.len() < limit {
        match tokio::time::timeout(Duration::from_secs(60), stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break,
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
            Err(_) => panic!("the server neither answered nor closed"),
        }
    }
    got
}

async fn expect_opened(srv: &mut TestServer, protocol: &str, peer: &str) {
    let record = srv
        .expect_event(|r| {
            r.event == "connection.opened" && r.protocol.is_some_and(|p| p.as_str() == protocol)
        })
        .await;
    let actual = record.peer.map(|p| p.to_string()).unwrap_or_default();
    // `peer` with its port, or an address whose port the client's kernel chose.
    assert!(
        actual == peer || actual.starts_with(&format!("{peer}:")),
        "{protocol} connection.opened: {actual}, not {peer}"
    );
}

async fn metrics(srv: &TestServer) -> String {
    reqwest::get(format!("http://{}/metrics", srv.ops)).await.unwrap().text().await.unwrap()
}

const REQUIRED: &str = "[server]\ntrusted_proxies = [\"127.0.0.1/32\"]\nproxy_header_timeout = \"2s\"\n\
    [sftp]\nproxy_protocol = \"required\"\n[ftp]\nproxy_protocol = \"required\"\nrequire_tls = false\n\
    [ftps]\nproxy_protocol = \"required\"\n[https]\nproxy_protocol = \"required\"\n";

#[tokio::test]
async fn a_trusted_proxys_header_names_the_client_on_every_listener() {
    let mut srv = TestServer::start_with(REQUIRED).await;

    // SSH, v2 with an unknown TLV: the banner follows, and the record names the header's client.
    let mut ssh = TcpStream::connect(srv.addr).await.unwrap();
    ssh.write_all(&v2_tcp4(4711, srv.addr)).await.unwrap();
    ssh.write_all(b"SSH-2.0-proxytest\r\n").await.unwrap();
    let mut banner = BufReader::new(ssh);
    let mut line = String::new();
    banner.read_line(&mut line).await.unwrap();
    assert!(line.starts_with("SSH-2.0-"), "SSH banner after the header: {line:?}");
    expect_opened(&mut srv, "ssh", &format!("{CLIENT}:4711")).await;

    // FTP, v1 and a command in the same segment: nothing of the command is lost to the header.
    let mut ftp = TcpStream::connect(srv.ftp).await.unwrap();
    let mut first = v1(4712, srv.ftp);
    first.extend_from_slice(b"NOOP\r\n");
    ftp.write_all(&first).await.unwrap();
    let mut ftp = BufReader::new(ftp);
    let (mut greeting, mut noop) = (String::new(), String::new());
    ftp.read_line(&mut greeting).await.unwrap();
    ftp.read_line(&mut noop).await.unwrap();
    assert!(greeting.starts_with("220"), "{greeting:?}");
    assert!(noop.starts_with("200"), "NOOP sent with the header is answered: {noop:?}");
    expect_opened(&mut srv, "ftp", &format!("{CLIENT}:4712")).await;

    // Implicit FTPS and HTTPS: the TLS handshake starts right after the header.
    let connector = tokio_rustls::TlsConnector::from(Arc::new(tls_client_config(&srv.cert)));
    let name = ServerName::try_from("localhost").unwrap();
    let mut tcp = TcpStream::connect(srv.ftps).await.unwrap();
    tcp.write_all(&v2_tcp4(4713, srv.ftps)).await.unwrap();
    let tls = connector.connect(name.clone(), tcp).await.expect("implicit FTPS handshake after the header");
    let mut tls = BufReader::new(tls);
    let mut greeting = String::new();
    tls.read_line(&mut greeting).await.unwrap();
    assert!(greeting.starts_with("220"), "{greeting:?}");
    expect_opened(&mut srv, "ftps", &format!("{CLIENT}:4713")).await;

    let mut tcp = TcpStream::connect(srv.https).await.unwrap();
    tcp.write_all(&v1(4714, srv.https)).await.unwrap();
    let mut tls = connector.connect(name, tcp).await.expect("HTTPS handshake after the header");
    tls.write_all(b"GET /api/v1/files/ HTTP/1.1\r\nHost: localhost\r\nAuthorization: Basic bm9ib2R5Ondyb25n\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut answer = Vec::new();
    let _ = tls.read_to_end(&mut answer).await;
    assert!(
        answer.starts_with(b"HTTP/1.1 401"),
        "{}",
        String::from_utf8_lossy(&answer[..answer.len().min(80)])
    );
    let failed = srv.expect_event(|r| r.event == "login.failed").await;
    assert_eq!(failed.peer.map(|p| p.to_string()), Some(format!("{CLIENT}:4714")));
}

#[tokio::test]
async fn bad_missing_slow_and_untrusted_headers_close_the_connection_and_are_counted() {
    let srv = TestServer::start_with(REQUIRED).await;
    let closes_without_banner = |mut stream: TcpStream| async move {
        let said = read_until_close(&mut stream, 4096).await;
        assert!(
            !said.starts_with(b"SSH-"),
            "no SSH banner for a bad header: {}",
            String::from_utf8_lossy(&said)
        );
    };

    // No header at all: an SSH client straight to a listener that requires one.
    let mut missing = TcpStream::connect(srv.addr).await.unwrap();
    missing.write_all(b"SSH-2.0-direct\r\n").await.unwrap();
    closes_without_banner(missing).await;

    // Malformed v1 (an address that is no address) and a v1 line that never ends.
    let mut endless = b"PROXY TCP4 ".to_vec();
    endless.resize(200, b'1');
    for bad in [b"PROXY TCP4 999.1.1.1 127.0.0.1 1 2\r\n".to_vec(), endless] {
        let mut stream = TcpStream::connect(srv.addr).await.unwrap();
        stream.write_all(&bad).await.unwrap();
        closes_without_banner(stream).await;
    }

    // v2 announcing 60,000 bytes of TLVs: refused from the length alone.
    let mut oversized = TcpStream::connect(srv.addr).await.unwrap();
    let mut head = b"\r\n\r\n\0\r\nQUIT\n".to_vec();
    head.extend_from_slice(&[0x21, 0x11]);
    head.extend_from_slice(&60_000u16.to_be_bytes());
    oversized.write_all(&head).await.unwrap();
    closes_without_banner(oversized).await;

    // A header that starts and never finishes: closed once `proxy_header_timeout` passes.
    let mut slow = TcpStream::connect(srv.addr).await.unwrap();
    slow.write_all(b"PROXY TCP4 127.0").await.unwrap();
    closes_without_banner(slow).await;

    // A perfect header from an address that is not a trusted proxy.
    let mut untrusted = connect_from("127.0.0.3", srv.addr).await;
    untrusted.write_all(&v2_tcp4(4715, srv.addr)).await.unwrap();
    closes_without_banner(untrusted).await;

    let text = metrics(&srv).await;
    for (series, at_least) in [
        ("ferry_proxy_headers_total{outcome=\"missing\"}", 1.0),
        ("ferry_proxy_headers_total{outcome=\"malformed\"}", 2.0),
        ("ferry_proxy_headers_total{outcome=\"oversized\"}", 1.0),
        ("ferry_proxy_headers_total{outcome=\"timeout\"}", 1.0),
        ("ferry_connections_refused_total{reason=\"proxy_header\"}", 5.0),
        ("ferry_connections_refused_total{reason=\"untrusted_proxy\"}", 1.0),
    ] {
        assert!(sample(&text, series) >= at_least, "{series} >= {at_least}:\n{text}");
    }
}

#[tokio::test]
async fn optional_headers_serve_direct_clients_and_health_checks_as_themselves() {
    let mut srv = TestServer::start_with(
        "[server]\ntrusted_proxies = [\"127.0.0.1/32\"]\n[sftp]\nproxy_protocol = \"optional\"\n",
    )
    .await;
    let to = srv.addr;
    let banner_after = |bytes: Vec<u8>, from: &'static str| async move {
        let mut stream = connect_from(from, to).await;
        stream.write_all(&bytes).await.unwrap();
        stream.write_all(b"SSH-2.0-optional\r\n").await.unwrap();
        let mut lines = BufReader::new(stream);
        let mut line = String::new();
        lines.read_line(&mut line).await.unwrap();
        assert!(line.starts_with("SSH-2.0-"), "{line:?}");
        lines
    };
    // Straight from the trusted network, no header.
    let _direct = banner_after(Vec::new(), "127.0.0.1").await;
    expect_opened(&mut srv, "ssh", "127.0.0.1").await;
    // The balancer's own health check: v2 LOCAL, the TCP endpoints are the real ones.
    let _check = banner_after(v2(0x20, 0x00, &[]), "127.0.0.1").await;
    expect_opened(&mut srv, "ssh", "127.0.0.1").await;
    // An untrusted address is served directly, without looking for a header.
    let _other = banner_after(Vec::new(), "127.0.0.4").await;
    expect_opened(&mut srv, "ssh", "127.0.0.4").await;
}

#[tokio::test]
async fn x_forwarded_for_is_believed_from_trusted_proxies_only() {
    let mut srv = TestServer::start_with("[server]\ntrusted_proxies = [\"127.0.0.1/32\"]\n").await;
    let pem = std::fs::read(&srv.cert).unwrap();
    let client = |from: &'static str| {
        reqwest::Client::builder()
            .add_root_certificate(reqwest::Certificate::from_pem(&pem).unwrap())
            .local_address(from.parse::<std::net::IpAddr>().unwrap())
            .build()
            .unwrap()
    };
    let url = format!("https://localhost:{}/api/v1/files/", srv.https.port());
    for (from, forwarded, expected) in
        [("127.0.0.1", "10.9.9.9, 127.0.0.43", "127.0.0.43:0"), ("127.0.0.5", "127.0.0.43", "127.0.0.5")]
    {
        let answer = client(from)
            .get(&url)
            .basic_auth("nobody", Some("wrong"))
            .header("X-Forwarded-For", forwarded)
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), 401);
        let failed = srv.expect_event(|r| r.event == "login.failed").await;
        let peer = failed.peer.map(|p| p.to_string()).unwrap_or_default();
        assert!(peer.starts_with(expected), "from {from} with X-Forwarded-For {forwarded}: peer {peer}");
    }
}

/// `[http]`: the same API over plain HTTP for a balancer that terminated TLS. Only trusted
/// proxies get in; a request the balancer says came over plain HTTP is refused; the client is the
/// one `X-Forwarded-For` names.
#[tokio::test]
async fn the_plain_http_listener_serves_trusted_proxies_only() {
    let mut srv = TestServer::start_with(
        "[server]\ntrusted_proxies = [\"127.0.0.1/32\"]\n[http]\nenabled = true\nbind = \"127.0.0.1:0\"\n",
    )
    .await;
    srv.add_user(crate::harness::User::with_password("lb", "behind-lb-1")).await;
    let url = format!("http://{}/api/v1/files/", srv.http.expect("http listener"));
    let client = |from: &str| {
        reqwest::Client::builder().local_address(from.parse::<std::net::IpAddr>().unwrap()).build().unwrap()
    };
    let through = client("127.0.0.1")
        .get(&url)
        .basic_auth("lb", Some("behind-lb-1"))
        .header("X-Forwarded-For", "127.0.0.44")
        .header("X-Forwarded-Proto", "https")
        .send()
        .await
        .unwrap();
    assert_eq!(through.status(), 200);
    let login = srv.expect_event(|r| r.event == "login.succeeded").await;
    assert_eq!(login.peer.map(|p| p.to_string()).as_deref(), Some("127.0.0.44:0"));

    let clear = client("127.0.0.1")
        .get(&url)
        .basic_auth("lb", Some("behind-lb-1"))
        .header("X-Forwarded-Proto", "http")
        .send()
        .await
        .unwrap();
    assert_eq!(clear.status(), 403, "a request that crossed the network in clear");

    let direct = client("127.0.0.6").get(&url).basic_auth("lb", Some("behind-lb-1")).send().await;
    assert!(direct.is_err(), "a client that is not a trusted proxy is closed at accept: {direct:?}");
    let refused = srv.expect_event(|r| r.event == "connection.refused").await;
    assert!(refused.peer.map(|p| p.to_string()).unwrap_or_default().starts_with("127.0.0.6:"));
}
