//! One login policy for every protocol: a refused password is answered no earlier than
//! `auth.rejection_delay` after the attempt started, over SFTP, FTPS and HTTPS alike.

use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use russh::client;
use russh::keys::PublicKeyOrCertificate;

use crate::harness::{TestServer, User};

/// Far longer than a password check takes here, so a missing delay shows.
const DELAY: Duration = Duration::from_millis(1500);

pub(crate) struct AcceptAny;

impl client::Handler for AcceptAny {
    type Error = russh::Error;

    async fn check_server_key(&mut self, _key: &PublicKeyOrCertificate) -> Result<bool, Self::Error> {
        Ok(true)
    }
}

/// An SSH connection to `srv`, not yet authenticated (russh client, any host key accepted).
pub(crate) async fn ssh_connect(srv: &TestServer) -> client::Handle<AcceptAny> {
    let config = Arc::new(client::Config::default());
    client::connect(config, srv.addr, AcceptAny).await.expect("connect")
}

/// Explicit FTPS to `srv` (AUTH TLS done, trusting its certificate), not yet logged in.
pub(crate) async fn ftps_connect(srv: &TestServer) -> suppaftp::tokio::AsyncRustlsFtpStream {
    let mut roots = rustls::RootCertStore::empty();
    let pem = std::fs::read(&srv.cert).unwrap();
    for cert in rustls::pki_types::pem::PemObject::pem_slice_iter(&pem) {
        roots.add(cert.unwrap()).unwrap();
    }
    let config =
        rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
    let connector =
        suppaftp::tokio::AsyncRustlsConnector::from(tokio_rustls::TlsConnector::from(Arc::new(config)));
    let ftp = suppaftp::tokio::AsyncRustlsFtpStream::connect(srv.ftp).await.unwrap();
    ftp.into_secure(connector, "127.0.0.1").await.unwrap()
}

async fn refused_over_sftp(srv: &TestServer) -> Duration {
    let mut handle = ssh_connect(srv).await;
    let started = Instant::now();
    let auth = handle.authenticate_password("timed", "wrong-password").await.expect("auth exchange");
    let took = started.elapsed();
    assert!(!auth.success(), "a wrong password is refused over SFTP");
    took
}

async fn refused_over_ftps(srv: &TestServer) -> Duration {
    let mut ftp = ftps_connect(srv).await;
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
    let http = srv.https_client();
    let url = format!("https://127.0.0.1:{}/api/v1/files", srv.https.port());
    let started = Instant::now();
    let response = http.get(url).basic_auth("timed", Some("wrong-password")).send().await.unwrap();
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
