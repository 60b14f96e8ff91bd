//! Links never widen a rule (issue 12, item 7): a symlink to `/`, to a read-only folder, or a
//! hard link to a read-only file is judged where it leads, over OpenSSH sftp and HTTPS; links
//! that stay within the rules keep working.

use reqwest::StatusCode;

use crate::harness::{TestServer, User, failed, ok};

const RULES: [&str; 3] = ["/=*", "/secret=", "/ro=list,download"];

async fn server() -> TestServer {
    let srv = TestServer::start().await;
    srv.add_user(User { rules: &RULES, password: Some("link-pass-1"), ..User::with_key("lin") }).await;
    let home = srv.home("lin");
    std::fs::create_dir_all(home.join("secret")).unwrap();
    std::fs::create_dir_all(home.join("ro")).unwrap();
    std::fs::write(home.join("secret/s.txt"), b"TOP-SECRET-7").unwrap();
    std::fs::write(home.join("ro/r.txt"), b"read-only original").unwrap();
    srv
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_symlink_to_the_top_does_not_open_a_denied_folder_over_sftp_or_https() {
    let srv = server().await;
    let home = srv.home("lin");
    let local = tempfile::tempdir().unwrap();
    // The user may make links and download from `/`, so the link itself is allowed.
    ok(&srv.sftp("lin", local.path(), "ln -s / up\n").await);
    assert_eq!(std::fs::read_link(home.join("up")).unwrap(), home.canonicalize().unwrap());
    // Allowed places stay reachable through it.
    ok(&srv.sftp("lin", local.path(), "get up/ro/r.txt via-link.txt\n").await);
    assert_eq!(std::fs::read(local.path().join("via-link.txt")).unwrap(), b"read-only original");

    for attempt in ["get up/secret/s.txt", "ls up/secret", "get up/up/up/secret/s.txt"] {
        let err = failed(&srv.sftp("lin", local.path(), &format!("{attempt}\n")).await);
        assert!(err.contains("Permission denied") || err.contains("not found"), "{attempt}: {err}");
    }
    assert!(!local.path().join("s.txt").exists());

    let lin = srv.https_as("lin", "link-pass-1");
    for path in
        ["/api/v1/files/up/secret/s.txt", "/api/v1/files/up/secret", "/api/v1/files/up/up/secret/s.txt"]
    {
        let response = lin.get(path).await;
        assert_eq!(response.status(), StatusCode::FORBIDDEN, "{path}");
        let body = response.text().await.unwrap();
        assert!(!body.contains("TOP-SECRET-7") && !body.contains("s.txt"), "{path}: {body}");
    }
    let response = lin.get("/api/v1/files/up/ro/r.txt").await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.text().await.unwrap(), "read-only original");

    // A link planted on disk by someone else is judged the same way.
    std::os::unix::fs::symlink(home.join("secret"), home.join("planted")).unwrap();
    let err = failed(&srv.sftp("lin", local.path(), "get planted/s.txt\n").await);
    assert!(err.contains("Permission denied") || err.contains("not found"), "{err}");
    let response = lin.get("/api/v1/files/planted/s.txt").await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_symlink_to_a_read_only_folder_does_not_make_it_writable() {
    let srv = server().await;
    let home = srv.home("lin");
    let local = tempfile::tempdir().unwrap();
    std::fs::write(local.path().join("x.txt"), b"intruder").unwrap();
    ok(&srv.sftp("lin", local.path(), "ln -s ro rw\nput x.txt mine.txt\n").await);
    assert_eq!(std::fs::read_link(home.join("rw")).unwrap(), std::path::Path::new("ro"), "kept as written");

    for attempt in [
        "put x.txt rw/x.txt",
        "put x.txt rw/r.txt",
        "rename mine.txt rw/mine.txt",
        "rm rw/r.txt",
        "mkdir rw/sub",
        "chmod 600 rw/r.txt",
    ] {
        let err = failed(&srv.sftp("lin", local.path(), &format!("{attempt}\n")).await);
        assert!(err.contains("Permission denied"), "{attempt}: {err}");
    }
    let names: Vec<_> = std::fs::read_dir(home.join("ro")).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(names, ["r.txt"]);
    assert_eq!(std::fs::read(home.join("ro/r.txt")).unwrap(), b"read-only original");

    let response = srv.https_as("lin", "link-pass-1").put("/api/v1/files/rw/web.txt").body("intruder").await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    assert!(!home.join("ro/web.txt").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hard_link_needs_the_rights_to_rewrite_the_original() {
    let srv = server().await;
    let home = srv.home("lin");
    let local = tempfile::tempdir().unwrap();
    std::fs::write(local.path().join("x.txt"), b"rewritten!").unwrap();
    let err = failed(&srv.sftp("lin", local.path(), "ln ro/r.txt mine.txt\n").await);
    assert!(err.contains("Permission denied"), "{err}");
    assert!(!home.join("mine.txt").exists());
    let err = failed(&srv.sftp("lin", local.path(), "ln secret/s.txt peek.txt\n").await);
    assert!(err.contains("Permission denied"), "{err}");
    assert!(!home.join("peek.txt").exists());
    assert_eq!(std::fs::read(home.join("ro/r.txt")).unwrap(), b"read-only original");

    // A file the user may rewrite anyway can be linked, and the link shares its data.
    ok(&srv.sftp("lin", local.path(), "put x.txt own.txt\nln own.txt twin.txt\n").await);
    use std::os::unix::fs::MetadataExt;
    let (own, twin) = (home.join("own.txt").metadata().unwrap(), home.join("twin.txt").metadata().unwrap());
    assert_eq!((own.ino(), own.nlink()), (twin.ino(), 2));
}
