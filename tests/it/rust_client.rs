//! In-process Rust client (russh + russh-sftp), plus raw-channel checks that a library client
//! would hide: EOF/CLOSE on subsystem end, malformed packets, non-UTF-8 names.

use std::time::{Duration, Instant};

use russh::ChannelMsg;
use russh::client;

use crate::harness::{SshConnection, TestServer, User, open_sftp, payload};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn russh_sftp_client_round_trip() {
    let srv = TestServer::start().await;
    srv.add_user(User::with_password("rusty", "pw-rusty-1")).await;
    let handle = srv.russh("rusty", "pw-rusty-1").await;
    let sftp = open_sftp(&handle).await;
    let data = payload(1 << 20, 42);
    sftp.create_dir("in").await.unwrap();
    // russh-sftp's `write` closes the file from a background task; close explicitly so the
    // atomic upload is published before we read it back.
    let mut file = sftp.create("in/r.bin").await.unwrap();
    tokio::io::AsyncWriteExt::write_all(&mut file, &data).await.unwrap();
    tokio::io::AsyncWriteExt::shutdown(&mut file).await.unwrap();
    drop(file);
    assert_eq!(sftp.read("in/r.bin").await.unwrap(), data);
    assert_eq!(sftp.metadata("in/r.bin").await.unwrap().size, Some(1 << 20));
    let names: Vec<String> = sftp.read_dir("in").await.unwrap().map(|e| e.file_name()).collect();
    assert_eq!(names, ["r.bin"]);
    assert_eq!(sftp.canonicalize("in/../in/./r.bin").await.unwrap(), "/in/r.bin");
    sftp.remove_file("in/r.bin").await.unwrap();
    assert!(sftp.metadata("in/r.bin").await.is_err());
}

/// Opens a raw sftp channel and performs INIT/VERSION by hand.
async fn raw_sftp(srv: &TestServer) -> (SshConnection, russh::Channel<client::Msg>) {
    let handle = srv.russh("raw", "pw-raw-1").await;
    let mut channel = handle.channel_open_session().await.unwrap();
    channel.request_subsystem(true, "sftp").await.unwrap();
    channel.data_bytes(vec![0u8, 0, 0, 5, 1, 0, 0, 0, 3]).await.unwrap();
    let version = next_data(&mut channel).await;
    assert_eq!(version[4], 2, "VERSION reply");
    let text = String::from_utf8_lossy(&version);
    for ext in [
        "posix-rename@openssh.com",
        "statvfs@openssh.com",
        "fsync@openssh.com",
        "hardlink@openssh.com",
        "limits@openssh.com",
    ] {
        assert!(text.contains(ext), "{ext} advertised");
    }
    (handle, channel)
}

async fn next_data(channel: &mut russh::Channel<client::Msg>) -> Vec<u8> {
    loop {
        match tokio::time::timeout(Duration::from_secs(5), channel.wait()).await.expect("reply in time") {
            Some(ChannelMsg::Data { data }) => return data.to_vec(),
            Some(_) => continue,
            None => panic!("channel ended"),
        }
    }
}

/// Collects messages until the channel closes; returns what arrived and how long it took.
async fn until_closed(channel: &mut russh::Channel<client::Msg>) -> (Vec<String>, Duration) {
    let started = Instant::now();
    let mut seen = Vec::new();
    while let Ok(Some(msg)) = tokio::time::timeout(Duration::from_secs(5), channel.wait()).await {
        seen.push(match msg {
            ChannelMsg::Eof => "eof".to_string(),
            ChannelMsg::Close => "close".to_string(),
            ChannelMsg::ExitStatus { exit_status } => format!("exit-status {exit_status}"),
            other => format!("{other:?}").chars().take(20).collect(),
        });
        if seen.last().map(String::as_str) == Some("close") {
            break;
        }
    }
    (seen, started.elapsed())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closing_the_subsystem_gets_eof_and_close_at_once() {
    let srv = TestServer::start().await;
    srv.add_user(User::with_password("raw", "pw-raw-1")).await;
    let (_handle, mut channel) = raw_sftp(&srv).await;
    channel.eof().await.unwrap();
    let (seen, took) = until_closed(&mut channel).await;
    assert_eq!(seen, ["exit-status 0", "eof", "close"]);
    assert!(took < Duration::from_secs(1), "took {took:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_packets_get_clear_errors_or_a_clean_close() {
    let srv = TestServer::start().await;
    srv.add_user(User::with_password("raw", "pw-raw-1")).await;
    let (handle, mut channel) = raw_sftp(&srv).await;
    // STAT (17) id 9 of a name that is not UTF-8: a STATUS reply, the stream stays in sync.
    let name = [0xffu8, 0xfe, b'x'];
    let mut packet = vec![0, 0, 0, (1 + 4 + 4 + name.len()) as u8, 17, 0, 0, 0, 9, 0, 0, 0, name.len() as u8];
    packet.extend_from_slice(&name);
    channel.data_bytes(packet).await.unwrap();
    let reply = next_data(&mut channel).await;
    assert_eq!(reply[4], 101, "STATUS");
    assert_eq!(&reply[5..9], &[0, 0, 0, 9], "same request id");
    assert_eq!(&reply[9..13], &[0, 0, 0, 5], "SSH_FX_BAD_MESSAGE");
    // An unknown request type gets OP_UNSUPPORTED.
    channel.data_bytes(vec![0u8, 0, 0, 5, 77, 0, 0, 0, 10]).await.unwrap();
    let reply = next_data(&mut channel).await;
    assert_eq!((&reply[5..9], &reply[9..13]), (&[0u8, 0, 0, 10][..], &[0u8, 0, 0, 8][..]));
    // A packet claiming 16 MiB closes the channel cleanly.
    channel.data_bytes(vec![1u8, 0, 0, 0, 3]).await.unwrap();
    let (seen, _) = until_closed(&mut channel).await;
    assert_eq!(seen, ["exit-status 0", "eof", "close"]);
    // The connection itself survives: a new SFTP channel works.
    let sftp = open_sftp(&handle).await;
    let mut file = sftp.create("ok.txt").await.unwrap();
    tokio::io::AsyncWriteExt::write_all(&mut file, b"still serving").await.unwrap();
    tokio::io::AsyncWriteExt::shutdown(&mut file).await.unwrap();
    drop(file);
    assert_eq!(std::fs::read(srv.home("raw").join("ok.txt")).unwrap(), b"still serving");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_lets_a_running_transfer_finish() {
    // A grace far beyond what the steps below take on a slow machine: the test is about the
    // transfer finishing inside it, not about how fast the drain is seen (a 5 s grace ran out
    // on a cold CI machine and ended the session mid-test).
    let mut srv = TestServer::start_with("[server]\nshutdown_grace = \"120s\"\n").await;
    srv.add_user(User::with_password("raw", "pw-raw-1")).await;
    let handle = srv.russh("raw", "pw-raw-1").await;
    let sftp = open_sftp(&handle).await;
    let mut file = sftp.create("during.bin").await.unwrap();
    use tokio::io::AsyncWriteExt;
    file.write_all(&payload(1 << 20, 1)).await.unwrap();
    let running = srv.take_running();
    srv.signal_shutdown();
    // The balancer's health check fails at once, while the transfer still runs.
    let readyz = format!("http://{}/readyz", srv.ops);
    crate::ssh_limits::eventually("/readyz answers 503 while draining", || async {
        reqwest::get(&readyz).await.is_ok_and(|r| r.status() == 503)
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    // Draining: new connections are refused, the open transfer goes on.
    assert!(tokio::net::TcpStream::connect(srv.addr).await.is_err(), "listener closed");
    // New transfers are refused while draining.
    assert!(sftp.create("late.bin").await.is_err(), "no new uploads during shutdown");
    file.write_all(&payload(1 << 20, 2)).await.unwrap();
    file.shutdown().await.unwrap();
    drop(file);
    // The client leaves; the drain ends with its last session, long before the grace.
    drop(sftp);
    let _ = handle.disconnect(russh::Disconnect::ByApplication, "", "").await;
    tokio::time::timeout(Duration::from_secs(60), running.wait()).await.unwrap().unwrap();
    let stored = std::fs::read(srv.home("raw").join("during.bin")).unwrap();
    assert_eq!(stored.len(), 2 << 20);
    assert!(!srv.home("raw").join("late.bin").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_over_the_limit_are_closed_and_audited() {
    let mut srv = TestServer::start_with("[sftp]\nmax_connections = 1\n").await;
    srv.add_user(User::with_password("raw", "pw-raw-1")).await;
    let _first = srv.russh("raw", "pw-raw-1").await;
    let mut second = tokio::net::TcpStream::connect(srv.addr).await.unwrap();
    let mut buf = Vec::new();
    use tokio::io::AsyncReadExt;
    let read = tokio::time::timeout(Duration::from_secs(5), second.read_to_end(&mut buf)).await;
    assert!(matches!(read, Ok(Ok(0)) | Ok(Err(_))), "closed without a banner: {buf:?}");
    let record = srv.expect_event(|e| e.event == "connection.refused").await;
    assert_eq!(record.reason.as_deref(), Some("connection limit reached"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_sessions_are_closed_even_when_they_answer_keepalives() {
    let srv = TestServer::start_with("[sftp]\nidle_timeout = \"2s\"\nkeepalive_interval = \"500ms\"\n").await;
    srv.add_user(User::with_password("raw", "pw-raw-1")).await;
    let handle = srv.russh("raw", "pw-raw-1").await;
    let sftp = open_sftp(&handle).await;
    // In use: requests keep it open past the limit.
    for _ in 0..4 {
        tokio::time::sleep(Duration::from_millis(700)).await;
        sftp.canonicalize(".").await.unwrap();
    }
    assert!(!handle.is_closed(), "a session in use stays open");
    // Unused (the client still answers keepalives): closed after the limit.
    let started = Instant::now();
    while !handle.is_closed() {
        assert!(started.elapsed() < Duration::from_secs(6), "idle session was not closed");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(started.elapsed() >= Duration::from_millis(1500), "closed too early: {:?}", started.elapsed());
}
