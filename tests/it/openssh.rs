//! The real OpenSSH `sftp` client against ferry.

use std::time::Duration;

use crate::harness::{TestServer, User, failed, ok, payload, sha256, sha256_file};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn round_trips_keep_every_byte() {
    let srv = TestServer::start().await;
    srv.add_user(User::with_key("alice")).await;
    let local = tempfile::tempdir().unwrap();
    let sizes = [0usize, 1, 1 << 20, 100 << 20];
    let mut batch = String::new();
    for (i, size) in sizes.iter().enumerate() {
        std::fs::write(local.path().join(format!("f{i}.bin")), payload(*size, i as u64)).unwrap();
        batch.push_str(&format!("put f{i}.bin\nget f{i}.bin back{i}.bin\n"));
    }
    ok(&srv.sftp("alice", local.path(), &batch).await);
    for (i, size) in sizes.iter().enumerate() {
        let expected = sha256(&payload(*size, i as u64));
        assert_eq!(sha256_file(&srv.home("alice").join(format!("f{i}.bin"))), expected, "stored f{i}");
        assert_eq!(sha256_file(&local.path().join(format!("back{i}.bin"))), expected, "downloaded f{i}");
    }
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resume_continues_partial_transfers() {
    let srv = TestServer::start().await;
    srv.add_user(User::with_key("alice")).await;
    let local = tempfile::tempdir().unwrap();
    let data = payload(3 << 20, 7);
    std::fs::write(local.path().join("full.bin"), &data).unwrap();
    // A remote half file (an interrupted upload that an in-place user kept) is completed by reput.
    std::fs::create_dir_all(srv.home("alice")).unwrap();
    std::fs::write(srv.home("alice").join("full.bin"), &data[..1 << 20]).unwrap();
    // A local partial download is completed by reget.
    std::fs::write(srv.home("alice").join("remote.bin"), &data).unwrap();
    std::fs::write(local.path().join("remote.bin"), &data[..1_234_567]).unwrap();
    ok(&srv.sftp("alice", local.path(), "reput full.bin\nreget remote.bin\n").await);
    assert_eq!(sha256_file(&srv.home("alice").join("full.bin")), sha256(&data));
    assert_eq!(sha256_file(&local.path().join("remote.bin")), sha256(&data));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn folders_renames_and_removal() {
    let srv = TestServer::start().await;
    srv.add_user(User::with_key("alice")).await;
    let local = tempfile::tempdir().unwrap();
    std::fs::write(local.path().join("a.txt"), b"first").unwrap();
    std::fs::write(local.path().join("b.txt"), b"second").unwrap();
    let out = ok(&srv
        .sftp(
            "alice",
            local.path(),
            "mkdir dir\nmkdir dir/sub\nput a.txt dir/a.txt\nput b.txt dir/b.txt\n\
             rename dir/b.txt dir/a.txt\nls -1 dir\nrmdir dir/sub\nrm dir/a.txt\nrmdir dir\nls -1\n",
        )
        .await);
    // OpenSSH renames with posix-rename@openssh.com, which replaces the existing target.
    assert!(!srv.home("alice").join("dir").exists(), "{out}");
    let listing: Vec<&str> = out.lines().filter(|l| !l.starts_with("sftp>")).collect();
    assert_eq!(listing, ["dir/a.txt", "dir/sub"], "{out}");
    let home = srv.home("alice");
    std::fs::create_dir_all(home.join("full/x")).unwrap();
    let err = failed(&srv.sftp("alice", local.path(), "rmdir full\n").await);
    assert!(err.contains("Failure") || err.contains("failed"), "{err}");
    assert!(home.join("full/x").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rename_over_an_existing_file_replaces_it() {
    let srv = TestServer::start().await;
    srv.add_user(User::with_key("alice")).await;
    let home = srv.home("alice");
    std::fs::create_dir_all(&home).unwrap();
    std::fs::write(home.join("new.csv"), b"new").unwrap();
    std::fs::write(home.join("old.csv"), b"old").unwrap();
    let local = tempfile::tempdir().unwrap();
    ok(&srv.sftp("alice", local.path(), "rename new.csv old.csv\n").await);
    assert_eq!(std::fs::read(home.join("old.csv")).unwrap(), b"new");
    assert!(!home.join("new.csv").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lists_two_thousand_entries() {
    let srv = TestServer::start().await;
    srv.add_user(User::with_key("alice")).await;
    let dir = srv.home("alice").join("many");
    std::fs::create_dir_all(&dir).unwrap();
    for i in 0..2000 {
        std::fs::write(dir.join(format!("file-{i:04}.dat")), b"x").unwrap();
    }
    let local = tempfile::tempdir().unwrap();
    let out = ok(&srv.sftp("alice", local.path(), "ls -1 many\n").await);
    let mut names: Vec<&str> = out.lines().filter(|l| l.starts_with("many/")).collect();
    names.sort();
    assert_eq!(names.len(), 2000);
    assert_eq!(names[0], "many/file-0000.dat");
    assert_eq!(names[1999], "many/file-1999.dat");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unicode_and_space_names() {
    let srv = TestServer::start().await;
    srv.add_user(User::with_key("alice")).await;
    let local = tempfile::tempdir().unwrap();
    let names = ["naïve café.txt", "日本語 ファイル.bin", "with  two spaces.dat"];
    let mut batch = String::new();
    for (i, name) in names.iter().enumerate() {
        std::fs::write(local.path().join(name), payload(1000 + i, i as u64)).unwrap();
        batch.push_str(&format!("put \"{name}\"\n"));
    }
    batch.push_str("ls -1\n");
    let out = ok(&srv.sftp("alice", local.path(), &batch).await);
    for (i, name) in names.iter().enumerate() {
        assert_eq!(std::fs::read(srv.home("alice").join(name)).unwrap(), payload(1000 + i, i as u64));
        assert!(out.contains(name), "listing shows {name}: {out}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn permission_rules_are_enforced_per_path() {
    let mut srv = TestServer::start().await;
    let rules = ["/=*", "/ro=list,download", "/secret="];
    srv.add_user(User { rules: &rules, ..User::with_key("alice") }).await;
    let home = srv.home("alice");
    std::fs::create_dir_all(home.join("ro")).unwrap();
    std::fs::create_dir_all(home.join("secret")).unwrap();
    std::fs::write(home.join("ro/report.csv"), b"a,b").unwrap();
    std::fs::write(home.join("secret/key.pem"), b"nope").unwrap();
    let local = tempfile::tempdir().unwrap();
    std::fs::write(local.path().join("up.txt"), b"upload").unwrap();

    ok(&srv.sftp("alice", local.path(), "get ro/report.csv\nput up.txt ok.txt\n").await);
    assert_eq!(std::fs::read(local.path().join("report.csv")).unwrap(), b"a,b");
    assert!(home.join("ok.txt").exists());

    let err = failed(&srv.sftp("alice", local.path(), "put up.txt ro/up.txt\n").await);
    assert!(err.contains("Permission denied"), "{err}");
    assert!(!home.join("ro/up.txt").exists());
    let denied =
        srv.expect_event(|e| e.event == "file.upload" && e.path.as_deref() == Some("/ro/up.txt")).await;
    assert_eq!(denied.outcome, ferry::audit::Outcome::Denied);

    let err = failed(&srv.sftp("alice", local.path(), "rm ro/report.csv\n").await);
    assert!(err.contains("Permission denied"), "{err}");
    assert!(home.join("ro/report.csv").exists());
    // Even looking at entries under /secret is refused (OpenSSH words a refused stat as
    // "not found").
    let err = failed(&srv.sftp("alice", local.path(), "get secret/key.pem\n").await);
    assert!(err.contains("Permission denied") || err.contains("not found"), "{err}");
    let err = failed(&srv.sftp("alice", local.path(), "ls secret\n").await);
    assert!(err.contains("Permission denied"), "{err}");
    assert!(!local.path().join("key.pem").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traversal_attempts_stay_in_the_jail() {
    let srv = TestServer::start().await;
    srv.add_user(User::with_key("alice")).await;
    let home = srv.home("alice");
    std::fs::create_dir_all(&home).unwrap();
    std::fs::write(srv.files.join("bob-secret.txt"), b"bob's").unwrap();
    std::os::unix::fs::symlink("/etc", home.join("etc-link")).unwrap();
    std::os::unix::fs::symlink("/etc/passwd", home.join("passwd-link")).unwrap();
    // Planted by someone else: points into the storage root, outside alice's home.
    std::os::unix::fs::symlink(&srv.files, home.join("root-link")).unwrap();
    let local = tempfile::tempdir().unwrap();
    for attempt in [
        "get ../../etc/passwd",
        "get ../bob-secret.txt",
        "get /etc/passwd",
        "get etc-link/passwd",
        "get passwd-link",
        "get root-link/bob-secret.txt",
    ] {
        let out = srv.sftp("alice", local.path(), &format!("{attempt}\n")).await;
        let err = failed(&out);
        assert!(
            err.contains("Permission denied")
                || err.contains("No such file")
                || err.contains("outside")
                || err.contains("not found"),
            "{attempt}: {err}"
        );
    }
    assert_eq!(std::fs::read_dir(local.path()).unwrap().count(), 0, "nothing was downloaded");
    // The link itself is visible, never what it points to.
    let out = srv.sftp("alice", local.path(), "ls -l etc-link/\n").await;
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!text.contains("passwd") && !text.contains("hostname"), "{text}");
    let out = ok(&srv.sftp("alice", local.path(), "cd /\npwd\n").await);
    assert!(out.contains("Remote working directory: /"), "{out}");
    // `..` at the top stays at the top, as under OpenSSH's chroot.
    let out = ok(&srv.sftp("alice", local.path(), "cd ..\npwd\ncd ../../..\npwd\n").await);
    assert_eq!(out.matches("Remote working directory: /\n").count(), 2, "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_key_is_refused() {
    let mut srv = TestServer::start().await;
    srv.add_user(User::with_password("alice", "s3cret-pw")).await;
    let local = tempfile::tempdir().unwrap();
    let err = failed(&srv.sftp("alice", local.path(), "pwd\n").await);
    assert!(err.contains("Permission denied"), "{err}");
    let record = srv.expect_event(|e| e.event == "login.failed").await;
    assert_eq!(record.reason.as_deref(), Some("publickey: key not authorized"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_concurrent_sessions() {
    let srv = TestServer::start().await;
    srv.add_user(User::with_key("alice")).await;
    let local = tempfile::tempdir().unwrap();
    let batches: Vec<String> = (0..20u64)
        .map(|i| {
            std::fs::write(local.path().join(format!("c{i}.bin")), payload(256 << 10, 100 + i)).unwrap();
            format!("put c{i}.bin\nget c{i}.bin r{i}.bin\n")
        })
        .collect();
    let clients: Vec<_> = batches.iter().map(|batch| srv.sftp("alice", local.path(), batch)).collect();
    for out in futures::future::join_all(clients).await {
        ok(&out);
    }
    for i in 0..20u64 {
        let expected = sha256(&payload(256 << 10, 100 + i));
        assert_eq!(sha256_file(&srv.home("alice").join(format!("c{i}.bin"))), expected);
        assert_eq!(sha256_file(&local.path().join(format!("r{i}.bin"))), expected);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_killed_mid_upload_leaves_no_file() {
    let mut srv = TestServer::start().await;
    srv.add_user(User::with_key("alice")).await;
    let local = tempfile::tempdir().unwrap();
    std::fs::write(local.path().join("big.bin"), payload(64 << 20, 9)).unwrap();
    let batch = srv.dir.path().join("kill-batch");
    std::fs::write(&batch, "put big.bin\n").unwrap();
    // Rate-limited (8 Mbit/s) so the upload is surely in progress when the client dies.
    let mut child = tokio::process::Command::new("sftp")
        .args(srv.ssh_args().iter().map(|a| if a == "-p" { "-P".to_string() } else { a.clone() }))
        .args(["-l", "8192", "-b"])
        .arg(&batch)
        .arg("alice@127.0.0.1")
        .current_dir(local.path())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let home = srv.home("alice");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let staged = std::fs::read_dir(&home).map(|d| d.count()).unwrap_or(0);
        if staged > 0 {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "upload never started");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    child.kill().await.unwrap();
    let record = srv.expect_event(|e| e.event == "file.upload").await;
    assert_eq!(record.outcome, ferry::audit::Outcome::Failed);
    assert!(record.bytes.unwrap_or(0) > 0, "some bytes arrived before the kill");
    assert_eq!(std::fs::read_dir(&home).unwrap().count(), 0, "no final file and no staged part");
    // The server keeps serving.
    std::fs::write(local.path().join("small.bin"), b"after").unwrap();
    ok(&srv.sftp("alice", local.path(), "put small.bin\n").await);
    assert_eq!(std::fs::read(home.join("small.bin")).unwrap(), b"after");
}
