//! The SSH listener under clients that mistype, linger, hoard or never read: OpenSSH with an
//! askpass script and paramiko (tests/clients/ssh_limits.py, raw SFTP packets where only a
//! hostile peer would send them) against a real ferry.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::net::TcpStream;
use tokio::process::{Child, ChildStdin, ChildStdout};
use tokio::time::Instant;

use crate::harness::{Python, TestServer, User, ok};

async fn limits_client(args: &[String]) -> serde_json::Value {
    Python::client("ssh_limits.py").args(args).json(180).await
}

/// A client driven line by line over stdin (modes `hold` and `unread`).
pub struct Driven {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: Lines<BufReader<ChildStdout>>,
}

impl Driven {
    pub fn start(args: &[String]) -> Self {
        let mut child = Python::client("ssh_limits.py")
            .args(args)
            .command()
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("python starts");
        let stdin = child.stdin.take();
        let stdout = BufReader::new(child.stdout.take().expect("stdout")).lines();
        Self { child, stdin, stdout }
    }

    pub async fn answer(&mut self) -> serde_json::Value {
        let line = tokio::time::timeout(Duration::from_secs(120), self.stdout.next_line())
            .await
            .expect("client answered in time")
            .expect("client output readable")
            .expect("client still running");
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("client line {line}: {e}"))
    }

    pub async fn ask(&mut self, command: &str) -> serde_json::Value {
        let stdin = self.stdin.as_mut().expect("stdin open");
        stdin.write_all(format!("{command}\n").as_bytes()).await.unwrap();
        stdin.flush().await.unwrap();
        self.answer().await
    }

    /// Ends the client abruptly (its connection drops without a goodbye).
    pub async fn end(mut self) {
        drop(self.stdin.take());
        let _ = tokio::time::timeout(Duration::from_secs(60), self.child.wait()).await;
    }
}

/// Polls `check` until it holds, failing after a generous deadline.
pub async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(90);
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

pub fn sample(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|line| line.strip_prefix(series).and_then(|rest| rest.trim().parse().ok()))
        .unwrap_or(0.0)
}

async fn metrics(srv: &TestServer) -> String {
    reqwest::get(format!("http://{}/metrics", srv.ops)).await.unwrap().text().await.unwrap()
}

/// Reads the SSH version line a server sends first (`None`: closed without one).
async fn banner(stream: &mut TcpStream) -> Option<String> {
    let mut line = Vec::new();
    let mut byte = [0u8; 1];
    loop {
        match tokio::time::timeout(Duration::from_secs(60), stream.read(&mut byte)).await {
            Ok(Ok(1)) => {
                line.push(byte[0]);
                if byte[0] == b'\n' {
                    return Some(String::from_utf8_lossy(&line).trim().to_string());
                }
            }
            Ok(_) => return None,
            Err(_) => panic!("neither a banner nor a close within 60 s"),
        }
    }
}

/// Reads until the server closes the connection; how long that took.
async fn closed_after(stream: &mut TcpStream, started: Instant) -> Duration {
    let mut sink = [0u8; 4096];
    loop {
        match tokio::time::timeout(Duration::from_secs(90), stream.read(&mut sink)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return started.elapsed(),
            Ok(Ok(_)) => continue,
            Err(_) => panic!("connection still open 90 s after the login grace time"),
        }
    }
}

/// paramiko sends SERVICE_REQUEST again before every authentication attempt; upstream russh
/// 0.65 drops it once authentication has begun, so the second attempt hung. Our patched copy
/// (vendor/russh) answers it: each attempt gets its answer, up to `auth.max_attempts`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paramiko_wrong_passwords_are_each_answered_up_to_max_attempts() {
    let srv = TestServer::start_with("[auth]\nmax_attempts = 3\n").await;
    srv.add_user(User::with_password("typo", "right-password-1")).await;
    let port = srv.port().to_string();
    let attempts = |wrong: u32| {
        let args: Vec<String> = vec![
            "attempts".into(),
            port.clone(),
            "typo".into(),
            "right-password-1".into(),
            wrong.to_string(),
        ];
        async move { limits_client(&args).await }
    };
    // Two mistakes, then the right password, on one connection.
    let v = attempts(2).await;
    assert_eq!(v["answers"], serde_json::json!(["denied", "denied", "ok"]), "{v}");
    // The third failure reaches max_attempts: answered, then the connection is closed with a
    // reason, so the right password comes too late.
    let v = attempts(3).await;
    let answers = v["answers"].as_array().cloned().unwrap_or_default();
    assert!(answers.len() >= 3 && answers[..3].iter().all(|a| a == "denied"), "{v}");
    // The disconnect may reach paramiko while it waits for its fourth answer, which it then
    // reports as a failed attempt: either way the right password never gets in.
    assert!(answers.get(3).is_some_and(|a| a == "closed" || a == "denied"), "{v}");
    assert_eq!(v["active"], serde_json::json!(false), "{v}");
    let said = v["disconnect"].to_string();
    assert!(said.contains("Too many authentication failures"), "{v}");
    let text = metrics(&srv).await;
    assert!(sample(&text, "ferry_ssh_disconnects_total{reason=\"auth_attempts\"}") >= 1.0);
}

/// An askpass script that answers `wrong` wrong passwords, then the right one, counting calls.
fn askpass(dir: &std::path::Path, wrong: u32, right: &str) -> (PathBuf, PathBuf) {
    let counter = dir.join("askpass-calls");
    let script = dir.join("askpass.sh");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\nn=$(cat {c} 2>/dev/null || echo 0)\nn=$((n+1))\necho $n > {c}\n\
             if [ $n -le {wrong} ]; then echo wrong-$n; else echo '{right}'; fi\n",
            c = counter.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    (script, counter)
}

async fn openssh_password_sftp(
    srv: &TestServer,
    user: &str,
    askpass: &PathBuf,
    prompts: u32,
) -> std::process::Output {
    let mut cmd = tokio::process::Command::new("sftp");
    cmd.args(["-P", &srv.port().to_string(), "-F", "/dev/null"])
        .args(["-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null"])
        .args(["-o", "PubkeyAuthentication=no", "-o", "KbdInteractiveAuthentication=no"])
        .args(["-o", "PasswordAuthentication=yes", "-o", "BatchMode=no"])
        .args(["-o", &format!("NumberOfPasswordPrompts={prompts}")])
        .arg(format!("{user}@127.0.0.1"))
        .env("SSH_ASKPASS", askpass)
        .env("SSH_ASKPASS_REQUIRE", "force")
        .env("DISPLAY", ":0")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = cmd.spawn().expect("sftp starts");
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(b"pwd\nbye\n").await.unwrap();
    drop(stdin);
    tokio::time::timeout(Duration::from_secs(120), child.wait_with_output())
        .await
        .expect("sftp finished: a password attempt was left unanswered")
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openssh_asks_again_after_a_mistyped_password() {
    let srv = TestServer::start_with("[auth]\nmax_attempts = 3\n").await;
    srv.add_user(User::with_password("typist", "the-right-one-1")).await;
    let dir = tempfile::tempdir().unwrap();
    let (script, counter) = askpass(dir.path(), 2, "the-right-one-1");
    let out = openssh_password_sftp(&srv, "typist", &script, 3).await;
    let stdout = ok(&out);
    assert!(stdout.contains("Remote working directory: /"), "{stdout}");
    assert_eq!(std::fs::read_to_string(&counter).unwrap().trim(), "3", "asked three times");

    // Past max_attempts the client is told why and stops.
    let dir = tempfile::tempdir().unwrap();
    let (script, counter) = askpass(dir.path(), 10, "the-right-one-1");
    let out = openssh_password_sftp(&srv, "typist", &script, 10).await;
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("Too many authentication failures"), "{stderr}");
    // The third failure is answered and then the connection is closed; the client may already
    // have asked for a fourth password by the time the disconnect arrives (sshd sends the
    // disconnect instead of the third failure), but it is never checked.
    let asked = std::fs::read_to_string(&counter).unwrap().trim().to_string();
    assert!(asked == "3" || asked == "4", "asked {asked} times");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logins_that_take_longer_than_the_grace_time_are_cut() {
    // Long enough for a real paramiko login on a slow, busy machine: the session that logs in
    // must never be the one cut.
    let srv = TestServer::start_with("[sftp]\nlogin_grace_time = \"20s\"\n").await;
    srv.add_user(User::with_password("slow", "slow-pass-1")).await;
    // Authenticated before the grace time: the session outlives it.
    let mut held =
        Driven::start(&["hold".into(), srv.port().to_string(), "slow".into(), "slow-pass-1".into()]);
    assert_eq!(held.ask("stat /").await["error"], serde_json::Value::Null);

    // Never sends a version line.
    let started = Instant::now();
    let mut silent = TcpStream::connect(srv.addr).await.unwrap();
    assert!(banner(&mut silent).await.unwrap().starts_with("SSH-2.0-ferry"));
    // Sends its version and stops in the key exchange.
    let mut stalled = TcpStream::connect(srv.addr).await.unwrap();
    assert!(banner(&mut stalled).await.is_some());
    stalled.write_all(b"SSH-2.0-stalled_0.1\r\n").await.unwrap();
    let silent_for = closed_after(&mut silent, started).await;
    let stalled_for = closed_after(&mut stalled, started).await;
    assert!(silent_for >= Duration::from_millis(19_900), "closed before the grace time: {silent_for:?}");
    assert!(stalled_for >= Duration::from_millis(19_900), "closed before the grace time: {stalled_for:?}");

    let v = held.ask("stat /").await;
    assert_eq!(v["error"], serde_json::Value::Null, "the authenticated session is still served: {v}");
    held.end().await;
    let text = metrics(&srv).await;
    assert!(sample(&text, "ferry_ssh_disconnects_total{reason=\"login_grace\"}") >= 2.0, "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ssh_connections_are_capped_per_address_and_refusals_counted() {
    let srv = TestServer::start_with("[sftp]\nmax_connections_per_ip = 3\n").await;
    let before = sample(&metrics(&srv).await, "ferry_connections_refused_total{reason=\"per_address\"}");
    let mut held = Vec::new();
    for _ in 0..3 {
        let mut stream = TcpStream::connect(srv.addr).await.unwrap();
        assert!(banner(&mut stream).await.is_some(), "within the cap: a banner");
        held.push(stream);
    }
    let mut fourth = TcpStream::connect(srv.addr).await.unwrap();
    assert_eq!(banner(&mut fourth).await, None, "over the cap: closed without a banner");
    let after = sample(&metrics(&srv).await, "ferry_connections_refused_total{reason=\"per_address\"}");
    assert!(after >= before + 1.0, "refusal counted: {before} -> {after}");

    // A place freed is a place for the next one.
    drop(held.pop());
    eventually("a freed place admits a new connection", || async {
        let mut stream = TcpStream::connect(srv.addr).await.unwrap();
        banner(&mut stream).await.is_some()
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_handles_are_capped_per_connection_and_per_user() {
    let srv =
        TestServer::start_with("[sftp]\nmax_handles_per_connection = 6\nmax_handles_per_user = 8\n").await;
    srv.add_user(User::with_password("hoard", "hoard-pass-1")).await;
    let args = || vec!["hold".to_string(), srv.port().to_string(), "hoard".into(), "hoard-pass-1".into()];
    let mut a = Driven::start(&args());
    let mut b = Driven::start(&args());

    let v = a.ask("open a 10").await;
    assert_eq!(v["opened"], 6, "{v}");
    assert_eq!(v["error"], "Failure: too many open handles on this connection; close some first");
    let v = b.ask("open b 10").await;
    assert_eq!(v["opened"], 2, "{v}");
    assert_eq!(v["error"], "Failure: too many open handles for this user; close some first");

    // Closing frees places, across connections.
    assert_eq!(a.ask("close 2").await["open"], 4);
    let v = b.ask("open b 10").await;
    assert_eq!(v["opened"], 2, "{v}");

    // A connection that goes away gives back every handle it held.
    a.end().await;
    let deadline = Instant::now() + Duration::from_secs(90);
    while b.ask("open b 1").await["opened"] != 1 {
        assert!(Instant::now() < deadline, "the ended connection's handles were never freed");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let v = b.ask("open b 10").await;
    assert_eq!(b.ask("close 0").await["open"], 6, "{v}");
    assert_eq!(v["error"], "Failure: too many open handles on this connection; close some first");
    b.end().await;
    let text = metrics(&srv).await;
    assert!(sample(&text, "ferry_sftp_handles_refused_total{reason=\"user\"}") >= 1.0);
    assert!(sample(&text, "ferry_sftp_handles_refused_total{reason=\"connection\"}") >= 2.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sftp_status_messages_start_with_openssh_wording() {
    let srv = TestServer::start().await;
    srv.add_user(User {
        rules: &["/=*", "/ro=list,download"],
        ..User::with_password("words", "words-pass-1")
    })
    .await;
    std::fs::create_dir_all(srv.home("words").join("ro")).unwrap();
    let v =
        limits_client(&["statuses".into(), srv.port().to_string(), "words".into(), "words-pass-1".into()])
            .await;
    let text = |name: &str| v[name]["text"].as_str().unwrap_or_default().to_string();
    assert_eq!(v["no_such_file"]["errno"], 2, "{v}");
    assert!(text("no_such_file").starts_with("No such file: "), "{v}");
    assert_eq!(v["permission_denied"]["errno"], 13, "{v}");
    assert!(text("permission_denied").starts_with("Permission denied: "), "{v}");
    assert!(text("failure").starts_with("Failure: "), "{v}");
    assert!(text("unsupported").starts_with("Operation unsupported: "), "{v}");
    assert!(text("bad_message").starts_with("Bad message: "), "{v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_write_handles_read_back_and_their_writes_land() {
    let srv = TestServer::start().await;
    srv.add_user(User::with_password("both", "both-pass-1")).await;
    let v = limits_client(&["readwrite".into(), srv.port().to_string(), "both".into(), "both-pass-1".into()])
        .await;
    assert_eq!(v["r+"], "01ab456789", "{v}");
    assert_eq!(v["a+"], "start-end", "{v}");
    assert_eq!(v["w+"], "res", "{v}");
    let home = srv.home("both");
    for (name, want) in [("rplus.txt", "01ab456789"), ("aplus.txt", "start-end"), ("wplus.txt", "fresh")] {
        assert_eq!(v[format!("after {name}")], want, "{v}");
        assert_eq!(std::fs::read_to_string(home.join(name)).unwrap(), want, "{name} on disk");
    }
}
