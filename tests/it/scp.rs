//! OpenSSH `scp`: the legacy protocol (`scp -O`) and the SFTP-based default.

use std::os::unix::fs::MetadataExt;

use crate::harness::{TestServer, User, failed, ok, payload, sha256, sha256_file};

fn args(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn legacy_scp_recursive_with_times_both_ways() {
    let srv = TestServer::start().await;
    srv.add_user(User::with_key("alice")).await;
    let local = tempfile::tempdir().unwrap();
    let tree = local.path().join("tree");
    std::fs::create_dir_all(tree.join("sub/deeper")).unwrap();
    std::fs::write(tree.join("a.txt"), b"hello").unwrap();
    std::fs::write(tree.join("sub/b c.bin"), payload(5 << 20, 1)).unwrap();
    std::fs::write(tree.join("sub/deeper/empty"), b"").unwrap();
    let old = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_600_000_000);
    std::fs::File::options()
        .write(true)
        .open(tree.join("a.txt"))
        .unwrap()
        .set_times(std::fs::FileTimes::new().set_modified(old).set_accessed(old))
        .unwrap();

    ok(&srv.scp(local.path(), &args(&["-O", "-r", "-p", "tree", "alice@127.0.0.1:/up"])).await);
    let up = srv.home("alice").join("up");
    assert_eq!(std::fs::read(up.join("a.txt")).unwrap(), b"hello");
    assert_eq!(sha256_file(&up.join("sub/b c.bin")), sha256(&payload(5 << 20, 1)));
    assert_eq!(std::fs::metadata(up.join("sub/deeper/empty")).unwrap().len(), 0);
    assert_eq!(std::fs::metadata(up.join("a.txt")).unwrap().mtime(), 1_600_000_000, "-p keeps times");

    ok(&srv.scp(local.path(), &args(&["-O", "-r", "-p", "alice@127.0.0.1:/up", "down"])).await);
    let down = local.path().join("down");
    assert_eq!(sha256_file(&down.join("sub/b c.bin")), sha256(&payload(5 << 20, 1)));
    assert_eq!(std::fs::read(down.join("a.txt")).unwrap(), b"hello");
    assert_eq!(std::fs::metadata(down.join("a.txt")).unwrap().mtime(), 1_600_000_000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn legacy_scp_single_files_and_errors() {
    let srv = TestServer::start().await;
    srv.add_user(User { rules: &["/=*", "/ro=list,download"], ..User::with_key("alice") }).await;
    std::fs::create_dir_all(srv.home("alice").join("ro")).unwrap();
    let local = tempfile::tempdir().unwrap();
    std::fs::write(local.path().join("one.bin"), payload(100_000, 3)).unwrap();
    ok(&srv.scp(local.path(), &args(&["-O", "one.bin", "alice@127.0.0.1:renamed.bin"])).await);
    assert_eq!(std::fs::read(srv.home("alice").join("renamed.bin")).unwrap(), payload(100_000, 3));
    ok(&srv.scp(local.path(), &args(&["-O", "alice@127.0.0.1:renamed.bin", "again.bin"])).await);
    assert_eq!(std::fs::read(local.path().join("again.bin")).unwrap(), payload(100_000, 3));

    let err = failed(&srv.scp(local.path(), &args(&["-O", "one.bin", "alice@127.0.0.1:/ro/x.bin"])).await);
    assert!(err.contains("permission denied"), "{err}");
    assert!(!srv.home("alice").join("ro/x.bin").exists());
    let err = failed(&srv.scp(local.path(), &args(&["-O", "alice@127.0.0.1:../../etc/passwd", "p"])).await);
    // `..` at the top stays at the top (a chroot's answer): this is `/etc/passwd` in the home.
    assert!(err.contains("/etc/passwd: no such file"), "{err}");
    let err = failed(&srv.scp(local.path(), &args(&["-O", "alice@127.0.0.1:/missing", "m"])).await);
    assert!(err.contains("no such file"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn modern_scp_runs_over_sftp() {
    let srv = TestServer::start().await;
    srv.add_user(User::with_key("alice")).await;
    let local = tempfile::tempdir().unwrap();
    std::fs::write(local.path().join("m.bin"), payload(2 << 20, 5)).unwrap();
    ok(&srv.scp(local.path(), &args(&["m.bin", "alice@127.0.0.1:/m.bin"])).await);
    ok(&srv.scp(local.path(), &args(&["alice@127.0.0.1:/m.bin", "m2.bin"])).await);
    assert_eq!(sha256_file(&local.path().join("m2.bin")), sha256(&payload(2 << 20, 5)));
}
