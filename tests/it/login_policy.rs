//! One login policy for every protocol: a refused password is answered no earlier than
//! `auth.rejection_delay` after the attempt started, over SFTP, FTPS and HTTPS alike.

use std::time::{Duration, Instant};

use reqwest::StatusCode;

use crate::harness::{TestServer, User};

/// Far longer than a password check takes here, so a missing delay shows.
const DELAY: Duration = Duration::from_millis(1500);

async fn refused_over_sftp(srv: &TestServer) -> Duration {
    let mut handle = srv.russh_unauthenticated().await;
    let started = Instant::now();
    let auth = handle.authenticate_password("timed", "wrong-password").await.expect("auth exchange");
    let took = started.elapsed();
    assert!(!auth.success(), "a wrong password is refused over SFTP");
    took
}

async fn refused_over_ftps(srv: &TestServer) -> Duration {
    let mut ftp = srv.suppaftp_unauthenticated().await;
    let started = Instant::now();
    let refused = ftp.login("timed", "wrong-password").await;
    let took = started.elapsed();
    match refused {
        Err(suppaftp::FtpError::UnexpectedResponse(reply)) => {
            assert_eq!(reply.status, suppaftp::Status::NotLoggedIn, "FTPS answers 530");
        }
        other => panic!("a wrong password is refused over FTPS with 530, got {other:?}"),
    }
    took
}

async fn refused_over_https(srv: &TestServer) -> Duration {
    let call = srv.https_as("timed", "wrong-password").get("/api/v1/files");
    let started = Instant::now();
    let response = call.send().await;
    let took = started.elapsed();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "HTTPS answers 401");
    took
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_protocol_waits_the_rejection_delay_from_the_start_of_the_attempt() {
    let srv = TestServer::start_with("[auth]\nrejection_delay = \"1500ms\"\n").await;
    srv.add_user(User::with_password("timed", "right-password-1")).await;
    for (protocol, took) in [
        ("sftp", refused_over_sftp(&srv).await),
        ("ftps", refused_over_ftps(&srv).await),
        ("https", refused_over_https(&srv).await),
    ] {
        assert!(took >= DELAY, "{protocol}: refused after {took:?}, before the {DELAY:?} rejection delay");
    }
}

/// Sends `lines` over a plain FTP control connection, one at a time, and returns each reply line.
async fn ftp_dialogue(srv: &TestServer, lines: &[&str]) -> Vec<String> {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    let stream = tokio::net::TcpStream::connect(srv.ftp).await.unwrap();
    let mut stream = BufReader::new(stream);
    let mut replies = Vec::new();
    let mut line = String::new();
    stream.read_line(&mut line).await.unwrap();
    assert!(line.starts_with("220"), "{line}");
    for command in lines {
        stream.get_mut().write_all(format!("{command}\r\n").as_bytes()).await.unwrap();
        line.clear();
        stream.read_line(&mut line).await.unwrap();
        replies.push(line.trim_end().to_string());
    }
    replies
}

/// `limits.max_sessions_per_user = 1`: while a user holds an SSH connection, their FTP and
/// further SSH logins are refused (530 naming the limit; OpenSSH's "Permission denied"), other
/// users and HTTPS requests are not affected, and the place is free again once they leave.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_session_per_user_holds_across_ssh_and_ftp() {
    let mut srv = TestServer::start_with("[limits]\nmax_sessions_per_user = 1\n[ftp]\nrequire_tls = false\ndangerous_allow_plaintext_login = true\n").await;
    srv.add_user(User { password: Some("solo-pass-1"), ..User::with_key("solo") }).await;
    srv.add_user(User::with_password("other", "other-pass-1")).await;
    let held = srv.russh("solo", "solo-pass-1").await;

    let replies = ftp_dialogue(&srv, &["USER solo", "PASS solo-pass-1"]).await;
    assert!(replies[1].starts_with("530 Sorry, the maximum number of sessions (1)"), "{replies:?}");
    let refused = srv.expect_event(|e| e.event == "login.failed").await;
    assert!(refused.reason.as_deref().is_some_and(|r| r.contains("max_sessions_per_user")), "{refused:?}");
    let local = tempfile::tempdir().unwrap();
    let second = srv.sftp("solo", local.path(), "ls\n").await;
    assert!(!second.status.success(), "a second SSH session of the same user is refused");

    let replies = ftp_dialogue(&srv, &["USER other", "PASS other-pass-1", "QUIT"]).await;
    assert!(replies[1].starts_with("230"), "another user is not affected: {replies:?}");
    let https = srv.https_as("solo", "solo-pass-1").get("/api/v1/files").await;
    assert_eq!(https.status(), StatusCode::OK, "HTTPS requests are not sessions");

    held.disconnect(russh::Disconnect::ByApplication, "bye", "en").await.unwrap();
    crate::ssh_limits::eventually("the place is free once the first session ends", || async {
        ftp_dialogue(&srv, &["USER solo", "PASS solo-pass-1", "QUIT"]).await[1].starts_with("230")
    })
    .await;
}
