//! What a client can make the SSH server hold: memory for pipelined READs that are never read,
//! and file descriptors for handles. The server runs as its own `ferry` process so that its
//! RSS (from /proc/PID/status), its descriptor limit and its metrics are its own, not the test
//! runner's.

use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Child;

use crate::ssh_limits::{Driven, eventually, sample};

/// Bytes of one READ: the largest ferry serves (MAX_DATA).
const READ_LEN: usize = 261_120;
const READS: usize = 3_200;
const MIB: u64 = 1 << 20;

struct Process {
    child: Child,
    sftp: String,
    ops: String,
    _dir: tempfile::TempDir,
}

/// Starts `ferry serve` with SFTP and ops on loopback and a bootstrap user, under
/// `RLIMIT_NOFILE = nofile` when given (util-linux `prlimit`).
async fn start(nofile: Option<u32>, extra_env: &[(&str, &str)]) -> Process {
    let dir = tempfile::tempdir().unwrap();
    let mut command = match nofile {
        Some(n) => {
            let mut c = tokio::process::Command::new("prlimit");
            c.arg(format!("--nofile={n}:{n}")).arg("--").arg(env!("CARGO_BIN_EXE_ferry"));
            c
        }
        None => tokio::process::Command::new(env!("CARGO_BIN_EXE_ferry")),
    };
    let mut child = command
        .arg("serve")
        .env_clear()
        .envs(extra_env.iter().copied())
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("FERRY_DATA_DIR", dir.path())
        .env("FERRY_SFTP__BIND", "127.0.0.1:0")
        .env("FERRY_FTP__ENABLED", "false")
        .env("FERRY_FTPS__ENABLED", "false")
        .env("FERRY_HTTPS__ENABLED", "false")
        .env("FERRY_OPS__BIND", "127.0.0.1:0")
        .env("FERRY_AUTH__REJECTION_DELAY", "10ms")
        .env("FERRY_ADMIN_USER", "reader")
        .env("FERRY_ADMIN_PASSWORD", "reader-pass-1")
        .env("FERRY_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let (mut sftp, mut ops) = (None, None);
    let addr =
        |line: &str| line.split("addr=").nth(1).and_then(|a| a.split_whitespace().next()).map(String::from);
    tokio::time::timeout(Duration::from_secs(60), async {
        while sftp.is_none() || ops.is_none() {
            let line = lines.next_line().await.unwrap().expect("ferry still running");
            if line.contains("SFTP/SCP listening") {
                sftp = addr(&line);
            } else if line.contains("ops listening") {
                ops = addr(&line);
            }
        }
    })
    .await
    .expect("ferry listens");
    // Keep draining its log so it never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    Process { child, sftp: sftp.unwrap(), ops: ops.unwrap(), _dir: dir }
}

impl Process {
    fn rss(&self) -> u64 {
        let pid = self.child.id().expect("running");
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        let kib: u64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .expect("VmRSS");
        kib * 1024
    }

    async fn metric(&self, series: &str) -> f64 {
        let text = reqwest::get(format!("http://{}/metrics", self.ops)).await.unwrap().text().await.unwrap();
        sample(&text, series)
    }

    fn port(&self) -> String {
        self.sftp.rsplit(':').next().unwrap().to_string()
    }
}

/// One hostile connection: READS unread READs; returns the server's RSS while they are held.
async fn unread_reads(server: &Process) -> u64 {
    let mut client = Driven::start(&[
        "unread".into(),
        server.port(),
        "reader".into(),
        "reader-pass-1".into(),
        READS.to_string(),
        READ_LEN.to_string(),
    ]);
    assert_eq!(client.answer().await["sent"], READS as u64);
    // The server has computed all it may: the channel's byte budget (8 MiB) is spent.
    let full = (8 * MIB) as f64 - READ_LEN as f64;
    eventually("the READ budget is spent", || async {
        server.metric("ferry_sftp_bytes_in_flight{kind=\"replies\"}").await >= full
    })
    .await;
    let during = server.rss();
    client.end().await;
    eventually("everything the connection held is freed", || async {
        server.metric("ferry_sftp_bytes_in_flight{kind=\"replies\"}").await == 0.0
            && server.metric("ferry_sftp_bytes_in_flight{kind=\"queued\"}").await == 0.0
            && server.metric("ferry_sessions_active{protocol=\"sftp\"}").await == 0.0
    })
    .await;
    during
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unread_pipelined_reads_hold_bounded_memory_and_free_it_on_disconnect() {
    // One hashing thread: its argon2 buffer (19 MiB, kept for good) is then allocated by the
    // warm-up login below, not by whichever hostile connection reaches a second thread first.
    let server = start(None, &[("FERRY_AUTH__HASH_THREADS", "1")]).await;
    // One login first: what the first session allocates for good (argon2's reusable buffer,
    // the state database's pages) is not what the hostile connections leave behind.
    let mut warm_up = Driven::start(&["hold".into(), server.port(), "reader".into(), "reader-pass-1".into()]);
    assert!(warm_up.ask("stat /").await["size"].is_u64());
    warm_up.end().await;
    let baseline = server.rss();
    let first = unread_reads(&server).await;
    let after_first = server.rss();
    let second = unread_reads(&server).await;
    let after_second = server.rss();
    let grew = |rss: u64| rss.saturating_sub(baseline) / MIB;
    eprintln!(
        "RSS baseline {} MiB; +{} MiB during the first, +{} after; +{} during the second, +{} after",
        baseline / MIB,
        grew(first),
        grew(after_first),
        grew(second),
        grew(after_second)
    );
    // Before the bound, each such connection added over 800 MiB that stayed. A debug build's
    // allocator keeps freed pages and spreads them over per-thread arenas, so this in-suite
    // check allows 128 MiB; the figure (under 64 MiB, release build) is measured by
    // tests/bench/unread_reads.py and recorded in docs/benchmarks.md.
    for (what, rss) in [("first", first), ("second", second), ("after both", after_second)] {
        assert!(grew(rss) < 128, "{what}: RSS grew {} MiB over the baseline", grew(rss));
    }
    // Freed is not enough: glibc keeps pages freed below live blocks, so the server hands them
    // back (malloc_trim) once a connection that held this much is gone. Measured on a debug
    // server: 8 to 11 MiB stayed without the trim, 2 to 3 MiB with it.
    eventually("the freed replies are given back to the system", || async { grew(server.rss()) < 6 }).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_descriptor_reserve_keeps_the_listener_answering_when_handles_pile_up() {
    // 400 descriptors: the reserve is 64 (handles stop there), connections use half of it.
    let env =
        [("FERRY_SFTP__MAX_HANDLES_PER_CONNECTION", "5000"), ("FERRY_SFTP__MAX_HANDLES_PER_USER", "5000")];
    let server = start(Some(400), &env).await;
    let args = || vec!["hold".to_string(), server.port(), "reader".into(), "reader-pass-1".into()];
    let mut hoarder = Driven::start(&args());
    let v = hoarder.ask("open f 1000").await;
    let opened = v["opened"].as_u64().unwrap();
    // How many descriptors the process already holds depends on the machine (listeners,
    // database, audit files); what matters is that handles stop short of the limit.
    assert!((50..400).contains(&opened), "{v}");
    assert_eq!(v["error"], "Failure: the server is short of file descriptors; try again later", "{v}");
    // The listener still accepts, authenticates and serves a new client.
    let mut other = Driven::start(&args());
    assert!(other.ask("stat /").await["size"].is_u64(), "a new client is still served");
    assert_eq!(server.metric("ferry_sftp_handles_refused_total{reason=\"descriptors\"}").await, 1.0);
    // Closing frees descriptors for handles again.
    assert_eq!(hoarder.ask("close 10").await["open"], opened - 10);
    assert_eq!(other.ask("open g 2").await["opened"], 2);
    other.end().await;
    hoarder.end().await;
}
