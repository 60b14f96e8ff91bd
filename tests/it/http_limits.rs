//! HTTPS time limits after the headers, driven by a raw TLS socket that behaves like a slow or
//! idle peer: a dribbled login body gets 408 and the connection closed, an upload that stops
//! gets 408 and writes nothing, a slow but steady upload is not cut, and idle HTTP/1.1 and
//! HTTP/2 connections are closed (HTTP/2 with keep-alive pings and a GOAWAY).

use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine;
use rustls::pki_types::ServerName;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_rustls::client::TlsStream;

use crate::harness::{TestServer, User, payload, sha256, tls_client_config};

/// A TLS connection to the server offering `alpn`.
async fn connect(srv: &TestServer, alpn: &[u8]) -> TlsStream<tokio::net::TcpStream> {
    let mut config = tls_client_config(&srv.cert);
    config.alpn_protocols = vec![alpn.to_vec()];
    let tcp = tokio::net::TcpStream::connect(srv.https).await.unwrap();
    tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .unwrap()
}

/// Everything the server sends until it closes (or `limit` passes: then the test fails).
async fn read_to_close(tls: &mut TlsStream<tokio::net::TcpStream>, limit: Duration) -> String {
    let mut all = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = Instant::now() + limit;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, tls.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break,
            Ok(Ok(n)) => all.extend_from_slice(&buf[..n]),
            Err(_) => panic!("still open after {limit:?}; got {:?}", String::from_utf8_lossy(&all)),
        }
    }
    String::from_utf8_lossy(&all).into_owned()
}

fn basic(user: &str, password: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_bodies_are_cut_off_and_steady_uploads_are_not() {
    let srv = TestServer::start_with(
        "[https]\nheader_timeout = \"30s\"\nbody_timeout = \"2s\"\nupload_idle_timeout = \"2s\"\n",
    )
    .await;
    srv.add_user(User::with_password("slow", "slow-pass-1")).await;

    // A login body at one byte per 400 ms: 408 once body_timeout has passed, then closed.
    let mut tls = connect(&srv, b"http/1.1").await;
    let body = br#"{"username":"slow","password":"slow-pass-1"}"#;
    let head = format!(
        "POST /api/v1/auth/login HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\n\r\n",
        body.len()
    );
    tls.write_all(head.as_bytes()).await.unwrap();
    let started = Instant::now();
    let mut answer = Vec::new();
    for byte in body {
        if tls.write_all(&[*byte]).await.is_err() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(400)).await;
        let mut buf = [0u8; 1024];
        if let Ok(Ok(n)) = tokio::time::timeout(Duration::from_millis(1), tls.read(&mut buf)).await {
            answer.extend_from_slice(&buf[..n]);
            break;
        }
    }
    let rest = read_to_close(&mut tls, Duration::from_secs(20)).await;
    let answer = String::from_utf8_lossy(&answer).into_owned() + &rest;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(started.elapsed() < Duration::from_secs(body.len() as u64 * 2 / 5), "cut before the body ended");

    // An upload that stops: 408, and nothing under the final name.
    let mut tls = connect(&srv, b"http/1.1").await;
    let head = format!(
        "PUT /api/v1/files/stalled.bin HTTP/1.1\r\nHost: localhost\r\nAuthorization: Basic {}\r\n\
         Content-Length: 100000\r\n\r\n",
        basic("slow", "slow-pass-1")
    );
    tls.write_all(head.as_bytes()).await.unwrap();
    tls.write_all(&[7u8; 1000]).await.unwrap();
    let answer = read_to_close(&mut tls, Duration::from_secs(20)).await;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(!srv.home("slow").join("stalled.bin").exists());

    // Slow but steady: 40 pieces, 250 ms apart (10 s, well past both timeouts), all arrive.
    let data = payload(40 << 10, 3);
    let mut tls = connect(&srv, b"http/1.1").await;
    let head = format!(
        "PUT /api/v1/files/steady.bin HTTP/1.1\r\nHost: localhost\r\nAuthorization: Basic {}\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        basic("slow", "slow-pass-1"),
        data.len()
    );
    tls.write_all(head.as_bytes()).await.unwrap();
    for piece in data.chunks(1 << 10) {
        tls.write_all(piece).await.unwrap();
        tls.flush().await.unwrap();
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let answer = read_to_close(&mut tls, Duration::from_secs(30)).await;
    assert!(answer.starts_with("HTTP/1.1 201"), "{answer}");
    assert_eq!(sha256(&std::fs::read(srv.home("slow").join("steady.bin")).unwrap()), sha256(&data));
}

/// The HTTP/2 frame types the server sends until it closes (the test fails if it does not
/// within 20 s). The client sends its preface and empty settings, then nothing.
async fn h2_frames_until_closed(srv: &TestServer) -> Vec<u8> {
    let mut tls = connect(srv, b"h2").await;
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    tls.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n").await.unwrap();
    tls.write_all(&[0, 0, 0, 4, 0, 0, 0, 0, 0]).await.unwrap(); // empty SETTINGS
    let (mut frames, mut buf, mut chunk) = (Vec::new(), Vec::new(), [0u8; 4096]);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, tls.read(&mut chunk)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return frames,
            Ok(Ok(n)) => buf.extend_from_slice(&chunk[..n]),
            Err(_) => panic!("HTTP/2 connection still open; frames so far {frames:?}"),
        }
        // Frame header: 24-bit length, type, flags, 31-bit stream id.
        while buf.len() >= 9 {
            let len = u32::from_be_bytes([0, buf[0], buf[1], buf[2]]) as usize;
            if buf.len() < 9 + len {
                break;
            }
            frames.push(buf[3]);
            buf.drain(..9 + len);
        }
    }
}

const PING: u8 = 6;
const GOAWAY: u8 = 7;

/// After its request, a kept-alive HTTP/1.1 connection that sends nothing more is closed after
/// `idle_timeout` (not the much longer `header_timeout`); an idle HTTP/2 connection gets a
/// GOAWAY and is closed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_are_closed() {
    let srv = TestServer::start_with(
        "[https]\nheader_timeout = \"60s\"\nidle_timeout = \"1s\"\nkeepalive_interval = \"60s\"\n",
    )
    .await;
    let mut tls = connect(&srv, b"http/1.1").await;
    tls.write_all(b"GET /api/v1/health HTTP/1.1\r\nHost: localhost\r\n\r\n").await.unwrap();
    let answer = read_to_close(&mut tls, Duration::from_secs(20)).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let frames = h2_frames_until_closed(&srv).await;
    assert!(frames.contains(&GOAWAY), "a GOAWAY before closing: {frames:?}");
}

/// An HTTP/2 peer that stops answering keep-alive pings is dropped, long before the idle
/// timeout would.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_peers_that_stop_answering_pings_are_dropped() {
    let srv = TestServer::start_with("[https]\nidle_timeout = \"1h\"\nkeepalive_interval = \"1s\"\n").await;
    let frames = h2_frames_until_closed(&srv).await;
    assert!(frames.contains(&PING), "pinged before being dropped: {frames:?}");
}
