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
