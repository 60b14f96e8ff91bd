//! FTP, explicit FTPS and implicit FTPS with real clients: curl, lftp, Python ftplib and the
//! Rust suppaftp client, plus raw control-channel checks.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

use crate::harness::{Python, TestServer, User, failed, ok, payload, run, sha256, sha256_file};

fn curl(srv: &TestServer, args: &[&str]) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new("curl");
    cmd.args(["-sS", "--cacert"]).arg(&srv.cert).args(args);
    cmd
}

fn explicit(srv: &TestServer, path: &str) -> String {
    format!("ftp://127.0.0.1:{}/{path}", srv.ftp.port())
}

fn implicit(srv: &TestServer, path: &str) -> String {
    format!("ftps://127.0.0.1:{}/{path}", srv.ftps.port())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curl_round_trips_over_explicit_and_implicit_tls() {
    let srv = TestServer::start().await;
    srv.add_user(User::with_password("fred", "ftp-pass-1")).await;
    let local = tempfile::tempdir().unwrap();
    for (i, size) in [0usize, 1, 1 << 20, 100 << 20].into_iter().enumerate() {
        let name = format!("f{i}.bin");
        let src = local.path().join(&name);
        std::fs::write(&src, payload(size, i as u64)).unwrap();
        let up = explicit(&srv, &name);
        ok(&run(curl(&srv, &["--ssl-reqd", "-u", "fred:ftp-pass-1", "-T", src.to_str().unwrap(), &up]), 300)
            .await);
        let back = local.path().join(format!("back{i}"));
        let down = implicit(&srv, &name);
        ok(&run(curl(&srv, &["-u", "fred:ftp-pass-1", "-o", back.to_str().unwrap(), &down]), 300).await);
        let expected = sha256(&payload(size, i as u64));
        assert_eq!(sha256_file(&srv.home("fred").join(&name)), expected, "stored {name}");
        assert_eq!(sha256_file(&back), expected, "downloaded {name}");
    }
    let listing = ok(&run(curl(&srv, &["-u", "fred:ftp-pass-1", &implicit(&srv, "")]), 60).await);
    assert!(listing.lines().any(|l| l.starts_with("-rw") && l.ends_with(" f3.bin")), "{listing}");
    let names =
        ok(&run(curl(&srv, &["--ssl-reqd", "-l", "-u", "fred:ftp-pass-1", &explicit(&srv, "")]), 60).await);
    let mut names: Vec<&str> = names.lines().collect();
    names.sort();
    assert_eq!(names, ["f0.bin", "f1.bin", "f2.bin", "f3.bin"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curl_resumes_downloads_and_uploads() {
    let srv = TestServer::start().await;
    srv.add_user(User::with_password("fred", "ftp-pass-1")).await;
    let local = tempfile::tempdir().unwrap();
    let data = payload(3 << 20, 11);
    std::fs::create_dir_all(srv.home("fred")).unwrap();
    std::fs::write(srv.home("fred").join("whole.bin"), &data).unwrap();
    let partial = local.path().join("whole.bin");
    std::fs::write(&partial, &data[..1_000_000]).unwrap();
    let url = explicit(&srv, "whole.bin");
    ok(&run(
        curl(
            &srv,
            &["--ssl-reqd", "-u", "fred:ftp-pass-1", "-C", "-", "-o", partial.to_str().unwrap(), &url],
        ),
        60,
    )
    .await);
    assert_eq!(sha256_file(&partial), sha256(&data));

    std::fs::write(srv.home("fred").join("up.bin"), &data[..777_777]).unwrap();
    let full = local.path().join("full.bin");
    std::fs::write(&full, &data).unwrap();
    let url = explicit(&srv, "up.bin");
    ok(&run(
        curl(&srv, &["--ssl-reqd", "-u", "fred:ftp-pass-1", "-C", "-", "-T", full.to_str().unwrap(), &url]),
        60,
    )
    .await);
    assert_eq!(sha256_file(&srv.home("fred").join("up.bin")), sha256(&data));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curl_moves_many_files_through_one_ftps_session() {
    // The default configuration: every data connection must resume a TLS session of this
    // login. curl (OpenSSL) resumes a TLS 1.3 ticket only once, so each data connection has to
    // hand it a fresh one for the next, uploads included (curl starts their handshake before
    // the 150 and reads the ticket after writing).
    let srv = TestServer::start().await;
    srv.add_user(User::with_password("fred", "ftp-pass-1")).await;
    let local = tempfile::tempdir().unwrap();
    let src = local.path().join("src");
    std::fs::create_dir_all(&src).unwrap();
    const FILES: usize = 12;
    for i in 0..FILES {
        std::fs::write(src.join(format!("f{i:02}")), payload(4096 + i, 40 + i as u64)).unwrap();
    }
    let last = FILES - 1;
    let glob = format!("{}/f[00-{last:02}]", src.display());
    let up = explicit(&srv, "many/");
    ok(&run(
        curl(&srv, &["--ssl-reqd", "--ftp-create-dirs", "-u", "fred:ftp-pass-1", "-T", &glob, &up]),
        120,
    )
    .await);
    let back = local.path().join("back");
    std::fs::create_dir_all(&back).unwrap();
    let down = explicit(&srv, &format!("many/f[00-{last:02}]"));
    let out = format!("{}/f#1", back.display());
    ok(&run(curl(&srv, &["--ssl-reqd", "-u", "fred:ftp-pass-1", "-o", &out, &down]), 120).await);
    for i in 0..FILES {
        let expected = sha256(&payload(4096 + i, 40 + i as u64));
        let name = format!("f{i:02}");
        assert_eq!(sha256_file(&srv.home("fred").join("many").join(&name)), expected, "stored {name}");
        assert_eq!(sha256_file(&back.join(&name)), expected, "downloaded {name}");
    }
    assert_eq!(std::fs::read_dir(srv.home("fred").join("many")).unwrap().count(), FILES);
}

fn lftp_script(srv: &TestServer, url: &str, body: &str) -> tokio::process::Command {
    let script = format!(
        "set ssl:ca-file {}\nset ftp:ssl-force true\nset ftp:ssl-protect-data true\nset net:max-retries 1\n\
         set net:timeout 20\nopen -u lara,lftp-pass-1 {url}\n{body}\n",
        srv.cert.display()
    );
    let mut cmd = tokio::process::Command::new("lftp");
    cmd.arg("-c").arg(script);
    cmd
}

fn tree(root: &Path) {
    std::fs::create_dir_all(root.join("sub/deeper")).unwrap();
    std::fs::write(root.join("top.txt"), b"top").unwrap();
    std::fs::write(root.join("sub/mid.bin"), payload(300_000, 4)).unwrap();
    std::fs::write(root.join("sub/deeper/leaf name.txt"), "ünïcödé").unwrap();
    std::fs::write(root.join("sub/deeper/empty"), b"").unwrap();
}

fn same_tree(a: &Path, b: &Path) {
    let out = std::process::Command::new("diff").arg("-r").arg(a).arg(b).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lftp_mirrors_a_tree_both_ways() {
    let srv = TestServer::start().await;
    srv.add_user(User::with_password("lara", "lftp-pass-1")).await;
    let local = tempfile::tempdir().unwrap();
    let source = local.path().join("source");
    tree(&source);
    let url = format!("ftp://127.0.0.1:{}", srv.ftp.port());
    let body =
        format!("mirror -R {} /up\nmirror /up {}", source.display(), local.path().join("down").display());
    ok(&run(lftp_script(&srv, &url, &body), 120).await);
    same_tree(&source, &srv.home("lara").join("up"));
    same_tree(&source, &local.path().join("down"));

    let url = format!("ftps://127.0.0.1:{}", srv.ftps.port());
    let body =
        format!("mirror -R {} /up2\nmirror /up2 {}", source.display(), local.path().join("down2").display());
    ok(&run(lftp_script(&srv, &url, &body), 120).await);
    same_tree(&source, &srv.home("lara").join("up2"));
    same_tree(&source, &local.path().join("down2"));
}

async fn ftplib(srv: &TestServer, scenario: &str, user: &str, password: &str) -> serde_json::Value {
    Python::client("ftplib_client.py")
        .arg(scenario)
        .arg(srv.ftp.port().to_string())
        .arg(user)
        .arg(password)
        .arg(&srv.cert)
        .json(120)
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ftplib_session_covers_files_folders_rules_and_abort() {
    let srv = TestServer::start().await;
    srv.add_user(User { rules: &["/=*", "/ro=list,download"], ..User::with_password("pyftp", "py-pass-1") })
        .await;
    let home = srv.home("pyftp");
    std::fs::create_dir_all(home.join("many")).unwrap();
    std::fs::create_dir_all(home.join("ro")).unwrap();
    for i in 0..2000 {
        std::fs::write(home.join("many").join(format!("m{i:04}")), b"x").unwrap();
    }
    std::fs::write(home.join("big.bin"), payload(64 << 20, 5)).unwrap();
    let v = ftplib(&srv, "main", "pyftp", "py-pass-1").await;
    assert_eq!(v["roundtrip"], true, "{v}");
    assert_eq!(v["size"], 1024 * 1024 + 3);
    assert_eq!(v["mkd"], "/d1");
    assert_eq!(v["nlst_d1"], serde_json::json!(["b.bin"]));
    assert_eq!(v["rmd_nonempty"], "550");
    assert_eq!(v["rmd"], "250");
    assert_eq!(v["unicode_listed"], true);
    assert_eq!(v["mlsd_many"], 2000);
    assert_eq!(v["escape_retr"], "550");
    assert_eq!(v["abs_retr"], "550");
    // `..` at the top stays at the top, as under vsftpd's chroot.
    assert_eq!(v["cdup_root"], "ok");
    assert_eq!(v["pwd_after_cdup"], "/");
    assert_eq!(v["ro_upload"], "550");
    assert_eq!(v["ccc"], "534");
    assert_eq!(v["abor"], serde_json::json!(["426", "226"]));
    assert_eq!(v["after_abor"], "200");
    assert_eq!(v["tls_version"], "TLSv1.3");
    assert!(!home.join("ro/x.txt").exists());
    assert_eq!(std::fs::read(home.join("naïve café 日本.txt")).unwrap(), b"unicode");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_versions_are_negotiated_and_old_ones_refused() {
    let mut srv = TestServer::start().await;
    srv.add_user(User::with_password("pyftp", "py-pass-1")).await;
    std::fs::create_dir_all(srv.home("pyftp")).unwrap();
    std::fs::write(srv.home("pyftp").join("hello.txt"), b"hello").unwrap();
    let v = ftplib(&srv, "tls", "pyftp", "py-pass-1").await;
    assert_eq!(v["1.2"], serde_json::json!({"control": "TLSv1.2", "data": "hello"}), "{v}");
    assert_eq!(v["1.3"], serde_json::json!({"control": "TLSv1.3", "data": "hello"}), "{v}");
    let refused = v["1.1"].as_str().unwrap_or_default();
    assert!(
        refused.contains("PROTOCOL_VERSION") || refused.contains("alert"),
        "TLS 1.1 refused by the server: {refused}"
    );

    let v = ftplib(&srv, "resumption", "pyftp", "py-pass-1").await;
    for version in ["1.2", "1.3"] {
        assert_eq!(v[version]["reused"], serde_json::json!([true, true]), "TLS {version} data resumes: {v}");
        assert_eq!(v[version]["data"], "hellohello");
    }

    let v = ftplib(&srv, "plaintext", "pyftp", "py-pass-1").await;
    let login = v["login"].as_str().unwrap_or_default();
    assert!(login.starts_with("534") && login.contains("TLS required"), "{login}");

    let out = run(curl(&srv, &["--ssl-reqd", "-u", "pyftp:wrong", &explicit(&srv, "")]), 60).await;
    failed(&out);
    let record = srv.expect_event(|e| e.event == "login.failed").await;
    assert_eq!(record.protocol, Some(ferry::types::Protocol::Ftps));
    assert_eq!(record.reason.as_deref(), Some("password: wrong password"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_vanishing_mid_upload_leaves_no_file() {
    let mut srv = TestServer::start().await;
    srv.add_user(User::with_password("pyftp", "py-pass-1")).await;
    let v = ftplib(&srv, "vanish", "pyftp", "py-pass-1").await;
    assert_eq!(v["sent"], true);
    let record = srv.expect_event(|e| e.event == "file.upload").await;
    assert_eq!(record.outcome, ferry::audit::Outcome::Failed, "{record:?}");
    let home = srv.home("pyftp");
    assert_eq!(std::fs::read_dir(&home).unwrap().count(), 0, "no final file and no staged part");
    // Still serving.
    let local = tempfile::tempdir().unwrap();
    let src = local.path().join("after.txt");
    std::fs::write(&src, b"after").unwrap();
    ok(&run(
        curl(
            &srv,
            &[
                "--ssl-reqd",
                "-u",
                "pyftp:py-pass-1",
                "-T",
                src.to_str().unwrap(),
                &explicit(&srv, "after.txt"),
            ],
        ),
        60,
    )
    .await);
    assert_eq!(std::fs::read(home.join("after.txt")).unwrap(), b"after");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_closed_without_close_notify_is_discarded() {
    let mut srv = TestServer::start().await;
    srv.add_user(User::with_password("pyftp", "py-pass-1")).await;
    let v = ftplib(&srv, "no_close_notify", "pyftp", "py-pass-1").await;
    assert_eq!(v["cut"], "426", "a complete body without close_notify is not an upload: {v}");
    assert_eq!(v["listed"], serde_json::json!(["fine.bin"]), "{v}");
    let record = srv.expect_event(|e| e.event == "file.upload").await;
    assert_eq!(record.outcome, ferry::audit::Outcome::Failed, "{record:?}");
    let home = srv.home("pyftp");
    assert!(!home.join("cut.bin").exists());
    assert_eq!(std::fs::read(home.join("fine.bin")).unwrap(), b"fine");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_small_ftplib_uploads_resume_tls_and_arrive_intact() {
    let srv = TestServer::start().await;
    srv.add_user(User::with_password("pyftp", "py-pass-1")).await;
    let v = ftplib(&srv, "many", "pyftp", "py-pass-1").await;
    assert_eq!(v, serde_json::json!({"sent": 200, "same": 200, "all_resumed": true}));
    assert_eq!(std::fs::read_dir(srv.home("pyftp")).unwrap().count(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_data_connection_without_this_logins_tls_session_gets_nothing() {
    // With the default configuration (require_tls_session_reuse on).
    let srv = TestServer::start().await;
    srv.add_user(User::with_password("pyftp", "py-pass-1")).await;
    srv.add_user(User::with_password("thief", "py-pass-1")).await;
    let secret = payload(300_000, 31);
    std::fs::create_dir_all(srv.home("pyftp")).unwrap();
    std::fs::create_dir_all(srv.home("thief")).unwrap();
    std::fs::write(srv.home("pyftp").join("secret.bin"), &secret).unwrap();
    let v = ftplib(&srv, "steal", "pyftp", "py-pass-1").await;
    for race in ["fresh", "other_login", "unbound"] {
        assert_eq!(v[format!("{race}_150")], "150", "{race}: {v}");
        assert_eq!(v[format!("{race}_stolen_bytes")], 0, "{race}: {v}");
        assert_eq!(v[format!("{race}_victim")], "522", "{race}: {v}");
    }
    assert_eq!(v["fresh_resumed"], false, "{v}");
    assert_eq!(v["other_login_resumed"], true, "the thief's own session resumes, and is refused: {v}");
    assert_eq!(
        v["unbound_resumed"], true,
        "a never-logged-in connection's session resumes, and is refused: {v}"
    );
    assert_eq!(v["stor_victim"], "522", "{v}");
    assert!(!srv.home("pyftp").join("planted.bin").exists(), "nothing written through a stolen port");
    assert_eq!(v["victim_sha256"], sha256(&secret), "{v}");
    assert_eq!(v["victim_reused"], serde_json::json!([true]), "{v}");
    assert_eq!(v["stock"], "522", "stock ftplib.FTP_TLS does not resume: {v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fresh_data_handshakes_pass_when_session_reuse_is_not_required() {
    let srv = TestServer::start_with("[ftp]\nrequire_tls_session_reuse = false\n").await;
    srv.add_user(User::with_password("pyftp", "py-pass-1")).await;
    srv.add_user(User::with_password("thief", "py-pass-1")).await;
    std::fs::create_dir_all(srv.home("pyftp")).unwrap();
    std::fs::create_dir_all(srv.home("thief")).unwrap();
    std::fs::write(srv.home("pyftp").join("secret.bin"), payload(1000, 32)).unwrap();
    let v = ftplib(&srv, "steal", "pyftp", "py-pass-1").await;
    assert_eq!(v["stock"], "226", "stock ftplib.FTP_TLS works: {v}");
    // A session of another login is refused even so.
    assert_eq!(v["other_login_victim"], "522", "{v}");
    assert_eq!(v["other_login_stolen_bytes"], 0, "{v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rclone_parallel_ftps_transfers_resume_across_control_connections() {
    let srv = TestServer::start().await;
    srv.add_user(User::with_password("rc", "rclone-pass-1")).await;
    std::fs::create_dir_all(srv.home("rc")).unwrap();
    let local = tempfile::tempdir().unwrap();
    let source = local.path().join("src");
    std::fs::create_dir_all(&source).unwrap();
    for i in 0..32u8 {
        std::fs::write(source.join(format!("f{i:02}.bin")), payload(20_000 + usize::from(i), u64::from(i)))
            .unwrap();
    }
    let obscured = std::process::Command::new("rclone").args(["obscure", "rclone-pass-1"]).output().unwrap();
    let obscured = String::from_utf8(obscured.stdout).unwrap().trim().to_string();
    let remote = format!(
        ":ftp,host=127.0.0.1,port={},user=rc,pass={obscured},explicit_tls=true,no_check_certificate=true:par",
        srv.ftp.port()
    );
    let mut cmd = tokio::process::Command::new("rclone");
    cmd.env("RCLONE_CONFIG", "/dev/null").args(["copy", "--transfers", "8", "--checkers", "8"]);
    cmd.arg(&source).arg(&remote);
    ok(&run(cmd, 120).await);
    let diff =
        std::process::Command::new("diff").arg("-r").arg(&source).arg(srv.home("rc").join("par")).output();
    assert!(diff.unwrap().status.success(), "every file arrived intact");
    // And back down, eight data connections at a time (listings and downloads).
    let back = local.path().join("back");
    let mut cmd = tokio::process::Command::new("rclone");
    cmd.env("RCLONE_CONFIG", "/dev/null").args(["copy", "--transfers", "8", "--checkers", "8"]);
    cmd.arg(&remote).arg(&back);
    ok(&run(cmd, 120).await);
    let diff = std::process::Command::new("diff").arg("-r").arg(&source).arg(&back).output();
    assert!(diff.unwrap().status.success(), "every file came back intact");
}

/// Logs in a raw plain-FTP control connection.
async fn raw_login(srv: &TestServer) -> Raw {
    let mut raw = Raw::connect(srv.ftp).await;
    assert!(raw.send(b"USER raw").await.starts_with("331 "));
    assert!(raw.send(b"PASS raw-pass-1").await.starts_with("230 "));
    raw
}

/// The port of an EPSV reply `229 ... (|||port|)`.
fn epsv_port(reply: &str) -> u16 {
    assert!(reply.starts_with("229 "), "{reply}");
    reply.rsplit("|||").next().and_then(|p| p.trim_end_matches(['|', ')']).parse().ok()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passive_ports_are_capped_per_address_and_per_connection() {
    let srv = TestServer::start_with("[ftp]\nrequire_tls = false\nmax_passive_ports_per_ip = 2\n").await;
    srv.add_user(User::with_password("raw", "raw-pass-1")).await;
    let (mut a, mut b, mut c) = (raw_login(&srv).await, raw_login(&srv).await, raw_login(&srv).await);
    let first = epsv_port(&a.send(b"EPSV").await);
    // Per connection: a second EPSV replaces the first port, which closes.
    let second = epsv_port(&a.send(b"EPSV").await);
    assert_ne!(first, second);
    let refused = tokio::net::TcpStream::connect(("127.0.0.1", first)).await;
    assert_eq!(refused.err().map(|e| e.kind()), Some(std::io::ErrorKind::ConnectionRefused));
    assert!(b.send(b"PASV").await.starts_with("227 "));
    let full = c.send(b"EPSV").await;
    assert!(full.starts_with("425 ") && full.contains("passive ports"), "third port for the address: {full}");
    assert!(c.send(b"PASV").await.starts_with("425 "), "PASV counts the same");
    // ABOR gives a pending port back; then the third connection gets one.
    assert!(a.send(b"ABOR").await.starts_with("226 "));
    epsv_port(&c.send(b"EPSV").await);
    for raw in [&mut a, &mut b, &mut c] {
        assert!(raw.send(b"QUIT").await.starts_with("221 "));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_concurrent_suppaftp_sessions() {
    let srv = Arc::new(TestServer::start().await);
    srv.add_user(User::with_password("rusty", "rust-pass-1")).await;
    let mut tasks = Vec::new();
    for i in 0..20u64 {
        let srv = Arc::clone(&srv);
        tasks.push(tokio::spawn(async move {
            let mut ftp = srv.suppaftp("rusty", "rust-pass-1").await;
            ftp.transfer_type(suppaftp::types::FileType::Binary).await.unwrap();
            let data = payload(300_000, 200 + i);
            let name = format!("s{i}.bin");
            ftp.put_file(&name, &mut data.as_slice()).await.unwrap();
            let mut stream = ftp.retr_as_stream(&name).await.unwrap();
            let mut back = Vec::new();
            tokio::io::AsyncReadExt::read_to_end(&mut stream, &mut back).await.unwrap();
            stream.finish().await.unwrap();
            ftp.quit().await.unwrap();
            assert_eq!(back, data, "session {i}");
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    for i in 0..20u64 {
        assert_eq!(
            std::fs::read(srv.home("rusty").join(format!("s{i}.bin"))).unwrap(),
            payload(300_000, 200 + i)
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_cross_between_sftp_and_ftps() {
    let srv = TestServer::start().await;
    srv.add_user(User { password: Some("both-pass-1"), ..User::with_key("both") }).await;
    let local = tempfile::tempdir().unwrap();
    std::fs::write(local.path().join("via-sftp.bin"), payload(500_000, 8)).unwrap();
    ok(&srv.sftp("both", local.path(), "put via-sftp.bin\n").await);
    let back = local.path().join("via-sftp.back");
    ok(&run(
        curl(
            &srv,
            &["-u", "both:both-pass-1", "-o", back.to_str().unwrap(), &implicit(&srv, "via-sftp.bin")],
        ),
        60,
    )
    .await);
    assert_eq!(std::fs::read(&back).unwrap(), payload(500_000, 8));

    let src = local.path().join("via-ftps.bin");
    std::fs::write(&src, payload(600_000, 9)).unwrap();
    ok(&run(
        curl(&srv, &["-u", "both:both-pass-1", "-T", src.to_str().unwrap(), &implicit(&srv, "via-ftps.bin")]),
        60,
    )
    .await);
    ok(&srv.sftp("both", local.path(), "get via-ftps.bin via-ftps.back\n").await);
    assert_eq!(std::fs::read(local.path().join("via-ftps.back")).unwrap(), payload(600_000, 9));
}

/// A raw control connection for checking exact replies.
struct Raw {
    reader: BufReader<tokio::net::tcp::OwnedReadHalf>,
    writer: tokio::net::tcp::OwnedWriteHalf,
}

impl Raw {
    async fn connect(addr: std::net::SocketAddr) -> Self {
        let (read, writer) = tokio::net::TcpStream::connect(addr).await.unwrap().into_split();
        let mut raw = Self { reader: BufReader::new(read), writer };
        assert!(raw.reply().await.starts_with("220"));
        raw
    }

    /// The final line of the next reply.
    async fn reply(&mut self) -> String {
        loop {
            let mut line = String::new();
            tokio::time::timeout(Duration::from_secs(10), self.reader.read_line(&mut line))
                .await
                .unwrap()
                .unwrap();
            assert!(!line.is_empty(), "connection closed");
            if line.len() >= 4 && line.as_bytes()[3] == b' ' {
                return line.trim_end().to_string();
            }
        }
    }

    async fn send(&mut self, bytes: &[u8]) -> String {
        self.writer.write_all(bytes).await.unwrap();
        self.writer.write_all(b"\r\n").await.unwrap();
        self.reply().await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_and_bounce_attempts_get_the_right_replies() {
    let srv = TestServer::start_with("[ftp]\nrequire_tls = false\nactive_mode = true\n").await;
    srv.add_user(User::with_password("raw", "raw-pass-1")).await;
    let mut raw = Raw::connect(srv.ftp).await;
    assert!(raw.send(b"LIST").await.starts_with("530 "), "commands before login");
    assert!(raw.send(b"FROB x").await.starts_with("502 "), "unknown command");
    assert!(raw.send(b"STOR \xff\xfe").await.starts_with("501 "), "non-UTF-8");
    assert!(raw.send(&vec![b'A'; 20_000]).await.starts_with("500 "), "overlong line");
    assert!(raw.send(b"PASS nope").await.starts_with("503 "), "PASS before USER");
    assert!(raw.send(b"USER raw").await.starts_with("331 "));
    assert!(raw.send(b"PASS raw-pass-1").await.starts_with("230 "));
    assert!(raw.send(b"PORT 10,1,2,3,200,1").await.starts_with("504 "), "bounce to another host");
    assert!(raw.send(b"EPRT |1|192.0.2.7|50001|").await.starts_with("504 "), "bounce via EPRT");
    assert!(raw.send(b"PORT 127,0,0,1,0,21").await.starts_with("504 "), "privileged port");
    assert!(raw.send(b"PORT 127,0,0,1,200,1").await.starts_with("200 "), "own address is fine");
    assert!(raw.send(b"RETR ../../../etc/passwd").await.starts_with("550 "), "traversal");
    // `..` at the top stays at the top, as under vsftpd's chroot.
    assert!(raw.send(b"CDUP").await.starts_with("250 "), "CDUP at the top");
    assert!(raw.send(b"CWD ../../..").await.starts_with("250 "), "CWD above the top");
    assert!(raw.send(b"PWD").await.starts_with("257 \"/\""), "still at the top");
    assert!(raw.send(b"MODE B").await.starts_with("504 "));
    assert!(raw.send(b"TYPE X").await.starts_with("504 "));
    assert!(raw.send(b"REST abc").await.starts_with("501 "));
    assert!(raw.send(b"QUIT").await.starts_with("221 "));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn active_mode_transfers_when_enabled() {
    // lftp, not curl: curl 7.88 fails active-mode FTPS on its own side (inet_ntop errno 97).
    let srv = TestServer::start_with("[ftp]\nactive_mode = true\n").await;
    srv.add_user(User::with_password("lara", "lftp-pass-1")).await;
    let local = tempfile::tempdir().unwrap();
    let src = local.path().join("act.bin");
    std::fs::write(&src, payload(700_000, 12)).unwrap();
    let url = format!("ftp://127.0.0.1:{}", srv.ftp.port());
    let back = local.path().join("act.back");
    let body = format!(
        "set ftp:passive-mode off\nput {} -o act.bin\nget act.bin -o {}",
        src.display(),
        back.display()
    );
    ok(&run(lftp_script(&srv, &url, &body), 60).await);
    assert_eq!(std::fs::read(srv.home("lara").join("act.bin")).unwrap(), payload(700_000, 12));
    assert_eq!(std::fs::read(&back).unwrap(), payload(700_000, 12));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeated_failed_logins_close_the_connection() {
    let mut srv = TestServer::start_with("[ftp]\nrequire_tls = false\nmax_login_attempts = 2\n").await;
    srv.add_user(User::with_password("raw", "raw-pass-1")).await;
    let mut raw = Raw::connect(srv.ftp).await;
    assert!(raw.send(b"USER raw").await.starts_with("331 "));
    assert!(raw.send(b"PASS wrong-1").await.starts_with("530 "));
    assert!(raw.send(b"USER raw").await.starts_with("331 "));
    assert!(raw.send(b"PASS wrong-2").await.starts_with("421 "), "second failure closes");
    let mut rest = String::new();
    let read = tokio::time::timeout(Duration::from_secs(5), raw.reader.read_line(&mut rest)).await.unwrap();
    assert_eq!(read.unwrap(), 0, "connection closed");
    for _ in 0..2 {
        let record = srv.expect_event(|e| e.event == "login.failed").await;
        assert_eq!(record.protocol, Some(ferry::types::Protocol::Ftp));
    }
}
