//! A failing object store tells clients what failed, never the store's own words: its endpoint,
//! bucket and key names stay in the server's log and audit trail.

use reqwest::StatusCode;

use crate::emulators::{Emulator, Kind};
use crate::harness::{TestServer, User, open_sftp};

const BUCKET: &str = "ferrybucketq7";
const PREFIX: &str = "homesprefixz9";

/// No client-facing text may name where the data lives.
fn assert_clean(protocol: &str, text: &str, s3: &Emulator) {
    let endpoint = s3.endpoint();
    let port = endpoint.rsplit(':').next().unwrap_or_default().to_string();
    for internal in [BUCKET, PREFIX, endpoint.as_str(), "http://", "127.0.0.1", port.as_str()] {
        assert!(!text.contains(internal), "{protocol} leaks `{internal}`: {text}");
    }
    assert!(text.contains("storage unavailable"), "{protocol} says what failed: {text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_store_is_named_to_clients_without_its_urls_buckets_or_keys() {
    let mut s3 = Emulator::start(Kind::S3, BUCKET).await;
    let srv = TestServer::start_with(&s3.config(PREFIX)).await;
    srv.add_user(User::with_password("leaky", "leaky-pass-1")).await;

    // Logged in over SFTP and FTPS while the store is up; then it goes away.
    let ssh = srv.russh("leaky", "leaky-pass-1").await;
    let sftp = open_sftp(&ssh).await;
    let mut ftp = srv.suppaftp("leaky", "leaky-pass-1").await;
    s3.stop().await;

    let status = match sftp.metadata("report.csv").await {
        Err(russh_sftp::client::error::Error::Status(status)) => status,
        other => panic!("SFTP stat on a dead store: {other:?}"),
    };
    assert_eq!(status.status_code, russh_sftp::protocol::StatusCode::Failure);
    assert_clean("SFTP", &status.error_message, &s3);

    let reply = match ftp.size("report.csv").await {
        Err(suppaftp::FtpError::UnexpectedResponse(reply)) => reply,
        other => panic!("FTPS SIZE on a dead store: {other:?}"),
    };
    assert_eq!(reply.status, suppaftp::Status::ActionAborted, "451");
    assert_clean("FTPS", &String::from_utf8_lossy(&reply.body), &s3);

    let response = srv.https_as("leaky", "leaky-pass-1").get("/api/v1/files").send().await;
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    let body = response.text().await.unwrap();
    assert!(body.contains("storage_error"), "{body}");
    assert_clean("HTTPS", &body, &s3);
}
