//! Completions and copies that take long or whose reply is lost (issue 12, item 0): moto behind a
//! `Front` that stalls exactly those requests, driven by OpenSSH's sftp through a real server.
//! Everyday requests keep a short `request_timeout`, so a completion under it would fail.

use std::time::Duration;

use crate::emulators::{Emulator, Front, Kind, Stall};
use crate::harness::{TestServer, User, ok, payload, sha256, sha256_file};

/// A server on moto through `front`, everyday requests limited to 4 s.
async fn server(emulator: &Emulator, front: &Front, complete_timeout: &str) -> TestServer {
    let config = format!(
        "{}request_timeout = \"4s\"\ncomplete_timeout = \"{complete_timeout}\"\n",
        emulator.config_via("served", &front.endpoint)
    );
    let srv = TestServer::start_with(&config).await;
    srv.add_user(User::with_key("big")).await;
    srv
}

/// 12 MiB: three 5 MiB parts, one completion.
fn upload(dir: &std::path::Path) -> String {
    let data = payload(12 << 20, 17);
    std::fs::write(dir.join("up.bin"), &data).unwrap();
    sha256(&data)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_completion_slower_than_the_request_timeout_succeeds() {
    let emulator = Emulator::start(Kind::S3, "slow").await;
    // The store takes 10 s to answer each completion and copy, beyond the 4 s request timeout.
    let front = Front::start(&emulator, Stall::Reply(Duration::from_secs(10))).await;
    let srv = server(&emulator, &front, "10m").await;
    let local = tempfile::tempdir().unwrap();
    let want = upload(local.path());
    ok(&srv.sftp("big", local.path(), "put up.bin\nrename up.bin moved.bin\nget moved.bin back.bin\n").await);
    assert_eq!(sha256_file(&local.path().join("back.bin")), want);
    assert_eq!(front.completions(), 1, "completed once");
    assert_eq!(front.copies(), 1, "copied once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_completion_whose_reply_was_lost_is_found_by_head_and_not_repeated() {
    let emulator = Emulator::start(Kind::S3, "lost").await;
    // The store completes (and copies) but the reply never comes: after complete_timeout the
    // server must find the object by HEAD instead of failing the upload or completing again.
    let front = Front::start(&emulator, Stall::LoseReply).await;
    let srv = server(&emulator, &front, "6s").await;
    let local = tempfile::tempdir().unwrap();
    let want = upload(local.path());
    let out = ok(&srv
        .sftp("big", local.path(), "put up.bin\nrename up.bin moved.bin\nls -l\nget moved.bin back.bin\n")
        .await);
    let listing =
        out.split("sftp> ls -l").nth(1).and_then(|rest| rest.split("sftp> get").next()).unwrap_or("");
    assert!(listing.contains("moved.bin") && !listing.contains("up.bin"), "{out}");
    assert_eq!(sha256_file(&local.path().join("back.bin")), want);
    assert_eq!(front.completions(), 1, "the completion was not sent again");
    assert_eq!(front.copies(), 1, "the copy was not sent again");
}
