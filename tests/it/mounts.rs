//! Per-user mounts: one tree over several backends, with OpenSSH's sftp as the client.

use crate::harness::{TestServer, User, failed, ok, payload, sha256, sha256_file};
use ferry::audit::Outcome;

fn config(shared: &std::path::Path, rename: &str) -> String {
    format!(
        "[storage]\ncross_mount_rename = \"{rename}\"\n\
         [storages.bucket]\nbackend = \"memory\"\nprefix = \"tenants\"\n\
         [storages.shared]\nbackend = \"local\"\nroot = {root:?}\n",
        root = shared.display().to_string()
    )
}

const MOUNTS: &[&str] = &["/inbox=bucket:partners/acme", "/archive/2026=shared:mia"];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_tree_over_local_disk_an_object_store_and_a_second_disk() {
    let shared = tempfile::tempdir().unwrap();
    let mut srv = TestServer::start_with(&config(shared.path(), "copy")).await;
    srv.add_user(User { mounts: MOUNTS, ..User::with_key("mia") }).await;
    let local = tempfile::tempdir().unwrap();
    let data = payload(3 << 20, 71);
    std::fs::write(local.path().join("a.bin"), &data).unwrap();

    // The mount points show up in their parents even though no backend holds those folders.
    let root = ok(&srv.sftp("mia", local.path(), "ls -1\nls -1 archive\n").await);
    assert!(root.contains("inbox") && root.contains("2026"), "{root}");

    ok(&srv.sftp("mia", local.path(), "put a.bin inbox/a.bin\nput a.bin home.bin\n").await);
    assert!(!srv.home("mia").join("inbox").exists(), "the inbox lives in the object store");
    assert_eq!(sha256_file(&srv.home("mia").join("home.bin")), sha256(&data));

    // A rename across mounts copies then deletes.
    ok(&srv.sftp("mia", local.path(), "rename inbox/a.bin archive/2026/a.bin\n").await);
    assert_eq!(sha256_file(&shared.path().join("mia/a.bin")), sha256(&data));
    let renamed = srv.expect_event(|e| e.event == "file.rename").await;
    assert_eq!(renamed.path.as_deref(), Some("/inbox/a.bin"));
    assert_eq!(renamed.target.as_deref(), Some("/archive/2026/a.bin"));
    assert_eq!(renamed.outcome, Outcome::Ok);
    ok(&srv.sftp("mia", local.path(), "get archive/2026/a.bin back.bin\n").await);
    assert_eq!(sha256_file(&local.path().join("back.bin")), sha256(&data));
    let inbox = ok(&srv.sftp("mia", local.path(), "ls -1 inbox\n").await);
    assert!(!inbox.contains("a.bin"), "the original is gone: {inbox}");

    // Mount points are the tree's shape: not removable, not renamable.
    for cmd in ["rmdir inbox\n", "rename inbox elsewhere\n", "rename archive old\n", "rmdir archive/2026\n"] {
        let err = failed(&srv.sftp("mia", local.path(), cmd).await);
        assert!(err.contains("ermission denied"), "{cmd}: {err}");
    }
    // Links cannot join two mounts.
    let err = failed(&srv.sftp("mia", local.path(), "ln -s /home.bin inbox/link\n").await);
    assert!(err.to_lowercase().contains("unsupported") || err.contains("denied"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cross_mount_renames_can_be_refused_and_bad_mounts_fail_closed() {
    let shared = tempfile::tempdir().unwrap();
    let srv = TestServer::start_with(&config(shared.path(), "refuse")).await;
    srv.add_user(User { mounts: MOUNTS, ..User::with_key("mia") }).await;
    srv.add_user(User { mounts: &["/x=nowhere"], ..User::with_key("lost") }).await;
    let local = tempfile::tempdir().unwrap();
    std::fs::write(local.path().join("a.bin"), b"stay").unwrap();
    ok(&srv.sftp("mia", local.path(), "put a.bin inbox/a.bin\n").await);
    let err = failed(&srv.sftp("mia", local.path(), "rename inbox/a.bin archive/2026/a.bin\n").await);
    assert!(err.to_lowercase().contains("unsupported"), "{err}");
    ok(&srv.sftp("mia", local.path(), "get inbox/a.bin back.bin\n").await);
    assert_eq!(std::fs::read(local.path().join("back.bin")).unwrap(), b"stay");
    assert!(!shared.path().join("mia/a.bin").exists());
    // A mount naming a backend the configuration lacks: the session is refused, nothing served.
    let out = srv.sftp("lost", local.path(), "ls\n").await;
    assert!(!out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
    assert!(!srv.home("lost").exists(), "no home was created for a broken tree");
}
