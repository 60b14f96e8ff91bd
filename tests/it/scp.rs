//! OpenSSH `scp`: the legacy protocol (`scp -O`) and the SFTP-based default.

use std::os::unix::fs::MetadataExt;

use crate::harness::{TestServer, User, failed, ok, payload, run, sha256, sha256_file};

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
    let mut srv = TestServer::start().await;
    srv.add_user(User::with_key("alice")).await;
    let local = tempfile::tempdir().unwrap();
    std::fs::write(local.path().join("m.bin"), payload(2 << 20, 5)).unwrap();
    ok(&srv.scp(local.path(), &args(&["m.bin", "alice@127.0.0.1:/m.bin"])).await);
    // Without -O, scp speaks SFTP: the audit trail says so (legacy SCP records `scp`).
    let up = srv.expect_event(|r| r.event == "file.upload").await;
    assert_eq!(up.protocol.map(|p| p.as_str()), Some("sftp"), "{up:?}");
    assert_eq!((up.path.as_deref(), up.bytes), (Some("/m.bin"), Some(2 << 20)));
    ok(&srv.scp(local.path(), &args(&["alice@127.0.0.1:/m.bin", "m2.bin"])).await);
    let down = srv.expect_event(|r| r.event == "file.download").await;
    assert_eq!(down.protocol.map(|p| p.as_str()), Some("sftp"), "{down:?}");
    assert_eq!(down.path.as_deref(), Some("/m.bin"));
    assert_eq!(sha256_file(&local.path().join("m2.bin")), sha256(&payload(2 << 20, 5)));
}

/// `curl -T`/`curl scp://` (libssh2): libssh2 closes the channel right after a file's data
/// without waiting for the last answer, so every upload that arrived whole must be committed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curl_libssh2_uploads_are_committed_and_downloads_work() {
    let mut srv = TestServer::start().await;
    srv.add_user(User::with_password("carl", "carl-pass-1")).await;
    let local = tempfile::tempdir().unwrap();
    let port = srv.port();
    let curl = |args: &[&str], target: &str| {
        let mut cmd = tokio::process::Command::new("curl");
        cmd.args(["-sS", "--insecure", "-u", "carl:carl-pass-1"])
            .args(args)
            .arg(format!("scp://127.0.0.1:{port}{target}"))
            .current_dir(local.path());
        cmd
    };
    for (i, size) in [0usize, 1, 100_000, (6 << 20) + 3].into_iter().enumerate() {
        let name = format!("up{i}.bin");
        let data = payload(size, i as u64);
        std::fs::write(local.path().join(&name), &data).unwrap();
        ok(&run(curl(&["-T", &name], &format!("/{name}")), 120).await);
        let record = srv
            .expect_event(|r| r.event == "file.upload" && r.path.as_deref() == Some(&format!("/{name}")))
            .await;
        assert_eq!(record.outcome, ferry::audit::Outcome::Ok, "{size} bytes: {:?}", record.reason);
        assert_eq!(record.bytes, Some(size as u64));
        assert_eq!(sha256_file(&srv.home("carl").join(&name)), sha256(&data), "{size} bytes");

        let back = format!("back{i}.bin");
        ok(&run(curl(&["-o", &back], &format!("/{name}")), 120).await);
        assert_eq!(sha256_file(&local.path().join(&back)), sha256(&data), "{size} bytes back");
    }
}

/// Raw scp protocol from a hostile or broken peer, through OpenSSH's `ssh` (stdin is sent as is,
/// stdout is what the server answered): (exit code, answer).
async fn raw_scp(srv: &TestServer, command: &str, input: &[u8]) -> (Option<i32>, Vec<u8>) {
    use tokio::io::AsyncWriteExt;
    let mut cmd = tokio::process::Command::new("ssh");
    cmd.args(srv.ssh_args())
        .arg("alice@127.0.0.1")
        .arg(command)
        .kill_on_drop(true)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(input).await.unwrap();
    drop(stdin);
    let out = tokio::time::timeout(std::time::Duration::from_secs(60), child.wait_with_output())
        .await
        .expect("the server ends the channel with an exit status")
        .unwrap();
    (out.status.code(), out.stdout)
}

/// An upload cut short leaves nothing; hostile numbers get the protocol's error lines and an
/// exit status (a `T` line of 2^64-1 seconds used to panic the task and leave the channel open).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn short_uploads_are_discarded_and_hostile_numbers_answered() {
    let mut srv = TestServer::start().await;
    srv.add_user(User::with_key("alice")).await;
    let home = srv.home("alice");

    let mut short = b"C0644 1000 short.bin\n".to_vec();
    short.extend_from_slice(&payload(500, 1));
    let (code, answer) = raw_scp(&srv, "scp -t /", &short).await;
    assert_eq!(code, Some(1));
    assert!(
        String::from_utf8_lossy(&answer)
            .contains("\x02scp: protocol error: connection ended mid-file: 500 of 1000 bytes arrived"),
        "{answer:?}"
    );
    let record =
        srv.expect_event(|r| r.event == "file.upload" && r.path.as_deref() == Some("/short.bin")).await;
    assert_eq!(record.outcome, ferry::audit::Outcome::Failed);
    assert!(!home.join("short.bin").exists(), "a short upload leaves nothing");

    // All announced bytes and then the end of the channel, without the `\0`: complete.
    let (code, _) = raw_scp(&srv, "scp -t /", b"C0644 5 whole.txt\nhello").await;
    assert_eq!(code, Some(0));
    assert_eq!(std::fs::read(home.join("whole.txt")).unwrap(), b"hello");

    // Times out of range: a warning (\x01), the entry skipped, the session goes on.
    let mut input = b"T18446744073709551615 0 18446744073709551615 0\n".to_vec();
    input.extend_from_slice(b"C0644 5 after.txt\nworld\0");
    let (code, answer) = raw_scp(&srv, "scp -p -t /", &input).await;
    assert_eq!(code, Some(1), "a refused entry makes the exit status 1");
    let text = String::from_utf8_lossy(&answer).into_owned();
    assert!(
        text.starts_with(
            "\0\x01scp: time 18446744073709551615 out of range (at most 253402300799, the end of year 9999)\n"
        ),
        "{text:?}"
    );
    assert_eq!(std::fs::read(home.join("after.txt")).unwrap(), b"world", "later entries still land");

    // A size past any file offset: refused; malformed numbers end the session with \x02.
    for (line, expected, fatal) in [
        (&b"C0644 18446744073709551615 big\n"[..], "\x01scp: big: size out of range", false),
        (b"C0644 99999999999999999999999999 big\n", "\x01scp: big: size out of range", false),
        (b"C0644 +5 plus\nhello\0", "\x02scp: protocol error: bad size in `C0644 +5 plus`", true),
        (b"C99999999999 5 mode\nhello\0", "\x02scp: protocol error: bad mode", true),
        (b"T1 1000000 1 0\n", "\x02scp: protocol error: malformed time line", true),
        (b"C0644 5 ../up\nhello\0", "\x02scp: protocol error: invalid file name `../up`", true),
    ] {
        let (code, answer) = raw_scp(&srv, "scp -t /", line).await;
        let text = String::from_utf8_lossy(&answer).into_owned();
        assert_eq!(code, Some(1), "{text:?}");
        assert!(text.contains(expected), "{expected:?} in {text:?}");
        assert_eq!(text.contains('\x02'), fatal, "{text:?}");
    }
    for name in ["big", "plus", "mode", "up"] {
        assert!(!home.join(name).exists(), "{name}");
    }
}
