//! The audit trail end to end: every protocol's operations read back from the file and database
//! sinks, syslog (RFC 5424) over UDP, TCP and TLS to receivers on loopback, and full sink queues
//! dropping or spilling as configured. `ferry audit verify` on tampered trails is in
//! `audit_verify`, which shares the helpers here.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ferry::audit::{EventKind, Fields, Outcome};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};

use crate::harness::{Python, TestServer, User, ok, payload, run};

pub(crate) fn ferry() -> Command {
    Command::new(env!("CARGO_BIN_EXE_ferry"))
}

pub(crate) fn trail_dir(srv: &TestServer) -> PathBuf {
    srv.data.join("audit/trail")
}

/// Every line of every segment, oldest first.
pub(crate) fn trail(dir: &Path) -> Vec<String> {
    let mut files: Vec<_> = std::fs::read_dir(dir).unwrap().flatten().map(|e| e.path()).collect();
    files.retain(|p| p.extension().is_some_and(|e| e == "jsonl"));
    files.sort();
    files
        .iter()
        .flat_map(|f| std::fs::read_to_string(f).unwrap().lines().map(String::from).collect::<Vec<_>>())
        .collect()
}

/// Takes the server's temporary folder so it outlives the server.
pub(crate) fn keep(srv: &mut TestServer) -> tempfile::TempDir {
    std::mem::replace(&mut srv.dir, tempfile::tempdir().unwrap())
}

fn records(lines: &[String]) -> Vec<Value> {
    lines.iter().map(|l| serde_json::from_str(l).unwrap()).collect()
}

fn find<'a>(records: &'a [Value], event: &str, protocol: &str, path: Option<&str>) -> &'a Value {
    records
        .iter()
        .find(|r| r["event"] == event && r["protocol"] == protocol && path.is_none_or(|p| r["path"] == p))
        .unwrap_or_else(|| panic!("no {event} over {protocol} for {path:?} in {records:#?}"))
}

pub(crate) fn verify(args: &[&str], dir: &Path) -> (bool, String) {
    let out = ferry().args(["audit", "verify"]).args(args).current_dir(dir).output().unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

pub(crate) fn chain_seq(line: &str) -> u64 {
    serde_json::from_str::<Value>(line).unwrap()["chain_seq"].as_u64().unwrap()
}

pub(crate) const FILE_SINK: &str =
    "[audit]\ncheckpoint_every = 7\n[audit.file]\nenabled = true\nrotate_size = \"8KiB\"\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_protocol_is_audited_in_the_file_and_database_sinks() {
    let mut srv = TestServer::start_with(FILE_SINK).await;
    srv.add_user(User::with_key("alice")).await;
    srv.add_user(User::with_password("fred", "ftp-pass-1")).await;
    srv.add_user(User::with_password("web", "web-pass-1")).await;
    let local = tempfile::tempdir().unwrap();
    std::fs::write(local.path().join("up.bin"), payload(300_000, 1)).unwrap();

    // SFTP (OpenSSH): upload, download, rename, mkdir, rmdir, delete, and a refused path.
    let batch =
        "put up.bin in.bin\nget in.bin back.bin\nrename in.bin moved.bin\nmkdir d\nrmdir d\nrm moved.bin\n";
    ok(&srv.sftp("alice", local.path(), batch).await);
    // FTPS (curl): upload and download.
    let url = format!("ftp://127.0.0.1:{}/f.bin", srv.ftp.port());
    let src = local.path().join("up.bin");
    let curl = |args: &[&str]| {
        let mut cmd = tokio::process::Command::new("curl");
        cmd.args(["-sS", "--ssl-reqd", "--cacert"]).arg(&srv.cert).args(args);
        cmd
    };
    ok(&run(curl(&["-u", "fred:ftp-pass-1", "-T", src.to_str().unwrap(), &url]), 60).await);
    ok(&run(curl(&["-u", "fred:ftp-pass-1", "-o", local.path().join("f.back").to_str().unwrap(), &url]), 60)
        .await);
    // HTTPS: upload, a wrong password.
    let put = srv.https_as("web", "web-pass-1").put("/api/v1/files/h.txt").body("hello").await;
    assert!(put.status().is_success(), "{}", put.status());
    let bad = srv.https_as("web", "wrong").get("/api/v1/files/h.txt").await;
    assert_eq!(bad.status(), 401);

    let data = srv.data.clone();
    let dir = trail_dir(&srv);
    let _kept = keep(&mut srv);
    srv.stop().await;

    let lines = trail(&dir);
    let all = records(&lines);
    let login = find(&all, "login.succeeded", "ssh", None);
    assert_eq!(login["user"], "alice");
    assert!(login["peer"].as_str().unwrap().starts_with("127.0.0.1:"));
    let session = login["session"].as_str().unwrap();
    let upload = find(&all, "file.upload", "sftp", Some("/in.bin"));
    assert_eq!((upload["bytes"].as_u64(), upload["outcome"].as_str()), (Some(300_000), Some("ok")));
    assert_eq!(upload["session"], session);
    assert_eq!(upload["user"], "alice");
    assert!(upload["duration_ms"].is_u64() && upload["ts"].is_string() && upload["node"].is_string());
    assert_eq!(find(&all, "file.download", "sftp", Some("/in.bin"))["bytes"], 300_000);
    assert_eq!(find(&all, "file.rename", "sftp", Some("/in.bin"))["target"], "/moved.bin");
    find(&all, "dir.create", "sftp", Some("/d"));
    find(&all, "dir.remove", "sftp", Some("/d"));
    find(&all, "file.delete", "sftp", Some("/moved.bin"));
    // Explicit FTPS (AUTH TLS on the FTP port) is recorded as ftps once the channel is protected.
    assert_eq!(find(&all, "file.upload", "ftps", Some("/f.bin"))["bytes"], 300_000);
    assert_eq!(find(&all, "file.download", "ftps", Some("/f.bin"))["user"], "fred");
    assert_eq!(find(&all, "file.upload", "https", Some("/h.txt"))["bytes"], 5);
    let denied = find(&all, "login.failed", "https", None);
    assert_eq!((denied["user"].as_str(), denied["outcome"].as_str()), (Some("web"), Some("denied")));
    assert_eq!(denied["reason"], "password: wrong password");
    for event in
        ["config.loaded", "server.started", "server.stopping", "connection.opened", "connection.closed"]
    {
        assert!(all.iter().any(|r| r["event"] == event), "{event} missing");
    }
    // One chain: positions without gaps, checkpoints along it, segments rotated at 8 KiB.
    let seqs: Vec<u64> = all.iter().map(|r| r["chain_seq"].as_u64().unwrap()).collect();
    assert_eq!(seqs, (seqs[0]..seqs[0] + seqs.len() as u64).collect::<Vec<_>>());
    assert!(all.iter().filter(|r| r["event"] == "audit.checkpoint").count() >= 3);
    assert!(std::fs::read_dir(&dir).unwrap().count() > 1, "rotation made several segments");

    // The database sink holds the same lines; `ferry audit query` filters them.
    let config = data.parent().unwrap().join("audit.toml");
    std::fs::write(&config, format!("data_dir = {:?}\n", data.display().to_string())).unwrap();
    let out = ferry()
        .args(["audit", "query", "-c"])
        .arg(&config)
        .args(["--user", "alice", "--event", "30002"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let queried: Vec<&str> = std::str::from_utf8(&out.stdout).unwrap().lines().collect();
    assert_eq!(
        queried,
        vec![
            lines
                .iter()
                .find(|l| l.contains("\"path\":\"/in.bin\"") && l.contains("file.upload"))
                .unwrap()
                .as_str()
        ]
    );
    let out = ferry()
        .args(["audit", "query", "-c"])
        .arg(&config)
        .args(["--since", "1h", "--limit", "100000"])
        .output()
        .unwrap();
    let stored: Vec<&str> = std::str::from_utf8(&out.stdout).unwrap().lines().collect();
    assert_eq!(stored, lines.iter().map(String::as_str).collect::<Vec<_>>(), "database and file sinks agree");

    // Untouched trails verify, from the file sink and from the database.
    let (passed, text) = verify(
        &[dir.to_str().unwrap(), "--public-key", data.join("audit/node.pub").to_str().unwrap()],
        &data,
    );
    assert!(passed && text.contains("with valid signatures"), "{text}");
    let (passed, text) = verify(&["--db", "-c", config.to_str().unwrap()], &data);
    assert!(passed && text.starts_with("ok node"), "{text}");
}

/// Parses one RFC 5424 message strictly; returns (pri, msgid, structured data, msg).
fn parse_5424(message: &str) -> (u16, String, String, String) {
    let rest = message.strip_prefix('<').expect("PRI opens with <");
    let (pri, rest) = rest.split_once('>').expect("PRI closes with >");
    let pri: u16 = pri.parse().expect("PRI is a number");
    assert!(pri <= 191);
    let rest = rest.strip_prefix("1 ").expect("VERSION 1");
    let mut parts = rest.splitn(6, ' ');
    let ts = parts.next().unwrap();
    chrono::DateTime::parse_from_rfc3339(ts).expect("TIMESTAMP is RFC 3339");
    assert!(ts.ends_with('Z') && ts.split('.').nth(1).is_none_or(|f| f.len() <= 7), "{ts}");
    for (field, max) in
        [(parts.next().unwrap(), 255), (parts.next().unwrap(), 48), (parts.next().unwrap(), 128)]
    {
        assert!(
            !field.is_empty() && field.len() <= max && field.chars().all(|c| c.is_ascii_graphic()),
            "{field}"
        );
    }
    let msgid = parts.next().unwrap().to_string();
    assert!(msgid.len() <= 32 && msgid.chars().all(|c| c.is_ascii_graphic()));
    let rest = parts.next().unwrap();
    assert!(rest.starts_with('['), "SD: {rest}");
    // The structured data ends at the first `]` not escaped by a backslash.
    let mut end = None;
    let mut escaped = false;
    for (i, c) in rest.char_indices() {
        match c {
            '\\' if !escaped => escaped = true,
            ']' if !escaped => {
                end = Some(i);
                break;
            }
            _ => escaped = false,
        }
    }
    let end = end.expect("SD closes");
    let sd = rest[..=end].to_string();
    let msg = rest[end + 1..].strip_prefix(" \u{feff}").expect("MSG is UTF-8 with a BOM").to_string();
    (pri, msgid, sd, msg)
}

fn check_syslog_message(message: &str) {
    let (pri, msgid, sd, msg) = parse_5424(message);
    let record: Value = serde_json::from_str(&msg).unwrap();
    assert_eq!(msgid, record["event"].as_str().unwrap());
    assert!(sd.starts_with(&format!("[ferry@32473 id=\"{}\"", record["id"])), "{sd}");
    assert_eq!(pri / 8, 16, "facility local0");
    let severity = match record["outcome"].as_str().unwrap() {
        "ok" => 6,
        "denied" => 5,
        _ => 4,
    };
    assert_eq!(pri % 8, severity);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn syslog_receivers_get_rfc_5424_over_udp_tcp_and_tls() {
    // UDP: one message per datagram.
    let udp = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let address = udp.local_addr().unwrap();
    let srv =
        TestServer::start_with(&format!("[audit.syslog]\nenabled = true\naddress = \"{address}\"\n")).await;
    srv.add_user(User::with_password("sam", "pw-123456")).await;
    assert_eq!(srv.https_as("sam", "nope").get("/api/v1/files/").await.status(), 401);
    let mut buf = vec![0u8; 65_536];
    let mut seen = Vec::new();
    while !seen.iter().any(|m: &String| m.contains("login.failed")) {
        let n = tokio::time::timeout(Duration::from_secs(5), udp.recv(&mut buf))
            .await
            .expect("datagram")
            .unwrap();
        let message = String::from_utf8(buf[..n].to_vec()).unwrap();
        check_syslog_message(&message);
        seen.push(message);
    }
    let failed = seen.iter().find(|m| m.contains("login.failed")).unwrap();
    assert!(failed.contains("user=\"sam\"") && failed.contains("outcome=\"denied\""), "{failed}");
    srv.stop().await;

    // TCP and TLS: octet-counted frames on one connection.
    for tls in [false, true] {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let certs = tempfile::tempdir().unwrap();
        let mut extra = format!(
            "[audit.syslog]\nenabled = true\ntransport = \"{}\"\naddress = \"{address}\"\n",
            if tls { "tls" } else { "tcp" }
        );
        let acceptor = tls.then(|| {
            let key = rcgen::KeyPair::generate().unwrap();
            let cert = rcgen::CertificateParams::new(vec!["localhost".to_string()])
                .unwrap()
                .self_signed(&key)
                .unwrap();
            let ca = certs.path().join("ca.pem");
            std::fs::write(&ca, cert.pem()).unwrap();
            extra.push_str(&format!(
                "server_name = \"localhost\"\nca_file = {:?}\n",
                ca.display().to_string()
            ));
            let der = rustls::pki_types::PrivateKeyDer::try_from(key.serialize_der()).unwrap();
            let config = rustls::ServerConfig::builder()
                .with_no_client_auth()
                .with_single_cert(vec![cert.der().clone()], der)
                .unwrap();
            tokio_rustls::TlsAcceptor::from(Arc::new(config))
        });
        let srv = TestServer::start_with(&extra).await;
        let (stream, _) = tokio::time::timeout(Duration::from_secs(5), listener.accept())
            .await
            .expect("sink connects")
            .unwrap();
        let mut reader: Box<dyn tokio::io::AsyncRead + Unpin + Send> = match &acceptor {
            Some(acceptor) => Box::new(acceptor.accept(stream).await.expect("TLS handshake")),
            None => Box::new(stream),
        };
        srv.audit.emit(
            EventKind::DirCreate,
            Outcome::Failed,
            Fields { path: Some("/x] \"y\\".into()), ..Fields::default() },
        );
        let mut reader = BufReader::new(&mut reader);
        let mut got = Vec::new();
        while !got.iter().any(|m: &String| m.contains("dir.create")) {
            let mut length = Vec::new();
            tokio::time::timeout(Duration::from_secs(5), reader.read_until(b' ', &mut length))
                .await
                .expect("frame")
                .unwrap();
            let length: usize = std::str::from_utf8(&length).unwrap().trim().parse().expect("octet count");
            let mut message = vec![0u8; length];
            reader.read_exact(&mut message).await.unwrap();
            let message = String::from_utf8(message).unwrap();
            check_syslog_message(&message);
            got.push(message);
        }
        let made = got.iter().find(|m| m.contains("dir.create")).unwrap();
        assert!(made.contains(r#"path="/x\] \"y\\""#), "escaped SD value: {made}");
        srv.stop().await;
    }
}

/// An HTTP collector that refuses (503) while `down` is set and records what it accepts.
async fn collector(down: Arc<Mutex<bool>>, got: Arc<Mutex<Vec<String>>>) -> std::net::SocketAddr {
    use axum::http::StatusCode;
    let app = axum::Router::new().route(
        "/audit",
        axum::routing::post(move |body: String| {
            let (down, got) = (Arc::clone(&down), Arc::clone(&got));
            async move {
                if *down.lock().unwrap() {
                    return StatusCode::SERVICE_UNAVAILABLE;
                }
                got.lock().unwrap().extend(body.lines().map(String::from));
                StatusCode::NO_CONTENT
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_sink_queue_drops_or_spills_as_configured() {
    for on_full in ["drop", "spill"] {
        let (down, got) = (Arc::new(Mutex::new(true)), Arc::new(Mutex::new(Vec::new())));
        let addr = collector(Arc::clone(&down), Arc::clone(&got)).await;
        let srv = TestServer::start_with(&format!(
            "[audit.http]\nenabled = true\nurl = \"http://{addr}/audit\"\nqueue_size = 16\non_full = \"{on_full}\"\n"
        ))
        .await;
        let dropped =
            || ferry::telemetry::metrics::metrics().audit_dropped_total.with_label_values(&["http"]).get();
        let before = dropped();
        let mut rx = srv.audit.subscribe();
        for i in 0..2000 {
            srv.audit.emit(
                EventKind::FileDelete,
                Outcome::Ok,
                Fields { path: Some(format!("/q{i}")), ..Fields::default() },
            );
        }
        let last = loop {
            let record = rx.recv().await.unwrap();
            if record.path.as_deref() == Some("/q1999") {
                break record.chain_seq;
            }
        };
        tokio::time::sleep(Duration::from_millis(300)).await;
        *down.lock().unwrap() = false;
        // Once the collector is back and the queue has room, new records get through.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        let arrived = |got: &Arc<Mutex<Vec<String>>>, path: &str| {
            got.lock().unwrap().iter().any(|l| l.contains(&format!("\"path\":\"{path}\"")))
        };
        let mut after = 0u64;
        while !arrived(&got, "/after") && tokio::time::Instant::now() < deadline {
            if on_full == "drop" || after == 0 {
                srv.audit.emit(
                    EventKind::DirCreate,
                    Outcome::Ok,
                    Fields { path: Some("/after".into()), ..Fields::default() },
                );
                after += 1;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        assert!(arrived(&got, "/after"), "{on_full}: the sink recovered");
        assert_eq!(arrived(&got, "/q1999"), on_full == "spill", "{on_full}: the last of the burst");
        let seqs: Vec<u64> = got
            .lock()
            .unwrap()
            .iter()
            .map(|l| serde_json::from_str::<Value>(l).unwrap()["chain_seq"].as_u64().unwrap())
            .collect();
        assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{on_full}: in chain order");
        if on_full == "drop" {
            assert!(dropped() - before >= 1000, "{on_full}: most records dropped ({})", dropped() - before);
            assert!(seqs.len() < 1000);
        } else {
            assert_eq!(dropped(), before, "spill loses nothing");
            let first = seqs[0];
            assert_eq!(
                seqs,
                (first..=last + after).collect::<Vec<_>>(),
                "spill delivers every record, in order"
            );
        }
        srv.stop().await;
    }
}

/// Runs a boto3 script against the S3 emulator at `endpoint`; returns its standard output.
async fn boto3(endpoint: &str, script: &str) -> String {
    let prelude = format!(
        "import boto3, sys\ns3 = boto3.client('s3', endpoint_url='{endpoint}', aws_access_key_id='test', \
         aws_secret_access_key='test', region_name='us-east-1')\n"
    );
    Python::inline(&format!("{prelude}{script}")).stdout(60).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sealed_segments_are_exported_once_to_an_object_locked_bucket() {
    use crate::emulators::{Emulator, Kind};
    let s3 = Emulator::start(Kind::S3, "files").await;
    let endpoint = s3.endpoint();
    // A bucket with S3 Object Lock and a default COMPLIANCE retention: nothing in it can be
    // overwritten or deleted for a day, by anyone.
    boto3(
        &endpoint,
        "s3.create_bucket(Bucket='worm', ObjectLockEnabledForBucket=True)\n\
         s3.put_object_lock_configuration(Bucket='worm', ObjectLockConfiguration={'ObjectLockEnabled': 'Enabled', \
         'Rule': {'DefaultRetention': {'Mode': 'COMPLIANCE', 'Days': 1}}})\n",
    )
    .await;
    let mut srv = TestServer::start_with(&format!(
        "[audit.file]\nenabled = true\nrotate_size = \"4KiB\"\nexport_storage = \"archive\"\nexport_prefix = \"audit/trail\"\n\
         [storages.archive]\nbackend = \"s3\"\nbucket = \"worm\"\nendpoint = \"{endpoint}\"\nregion = \"us-east-1\"\n\
         allow_http = true\npath_style = true\naccess_key_id = \"test\"\nsecret_access_key = \"test\"\nchecksum = \"sha256\"\n"
    ))
    .await;
    for i in 0..60 {
        srv.audit.emit(
            EventKind::DirCreate,
            Outcome::Ok,
            Fields { path: Some(format!("/w{i}")), ..Fields::default() },
        );
    }
    let (data, dir) = (srv.data.clone(), trail_dir(&srv));
    let _kept = keep(&mut srv);
    srv.stop().await;

    // Every sealed segment is in the bucket, byte for byte, and marked exported locally.
    let mut segments: Vec<PathBuf> = std::fs::read_dir(&dir).unwrap().flatten().map(|e| e.path()).collect();
    segments.retain(|p| p.extension().is_some_and(|e| e == "jsonl"));
    segments.sort();
    assert!(segments.len() >= 5, "{segments:?}");
    let listed = boto3(
        &endpoint,
        "for o in s3.list_objects_v2(Bucket='worm', Prefix='audit/trail/')['Contents']: print(o['Key'])\n",
    )
    .await;
    let copies = tempfile::tempdir().unwrap();
    for segment in &segments {
        let name = segment.file_name().unwrap().to_str().unwrap();
        assert!(listed.lines().any(|k| k == format!("audit/trail/{name}")), "{name} exported: {listed}");
        assert!(segment.with_extension("exported").exists());
        let copy = copies.path().join(name);
        boto3(
            &endpoint,
            &format!("s3.download_file('worm', 'audit/trail/{name}', {:?})\n", copy.display().to_string()),
        )
        .await;
        assert_eq!(std::fs::read(&copy).unwrap(), std::fs::read(segment).unwrap(), "{name}");
    }
    // The copies verify on their own, and the bucket refuses to let them go.
    let (passed, text) = verify(&[copies.path().to_str().unwrap()], &data);
    assert!(passed, "{text}");
    let first = segments[0].file_name().unwrap().to_str().unwrap();
    let refused = boto3(
        &endpoint,
        &format!(
            "key = 'audit/trail/{first}'\n\
             v = s3.list_object_versions(Bucket='worm', Prefix=key)['Versions'][0]['VersionId']\n\
             print(s3.head_object(Bucket='worm', Key=key)['ObjectLockMode'])\n\
             try:\n    s3.delete_object(Bucket='worm', Key=key, VersionId=v)\n    print('deleted')\n\
             except Exception as e:\n    print('refused', type(e).__name__)\n"
        ),
    )
    .await;
    assert_eq!(refused.lines().collect::<Vec<_>>(), ["COMPLIANCE", "refused AccessDenied"], "{refused}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admins_read_the_trail_over_https_and_others_are_refused() {
    let srv = TestServer::start().await;
    srv.add_user(User { admin: true, ..User::with_password("boss", "boss-pass-1") }).await;
    srv.add_user(User::with_password("web", "web-pass-1")).await;
    for name in ["a.txt", "b.txt"] {
        let put = srv.https_as("web", "web-pass-1").put(&format!("/api/v1/files/{name}")).body("x").await;
        assert!(put.status().is_success());
    }
    let get = |query: &str, user: &str, password: &str| {
        srv.https_as(user, password).get(&format!("/api/v1/audit?{query}")).send()
    };
    // The database sink writes in batches: wait for both uploads to be stored.
    let mut page = serde_json::Value::Null;
    // A deadline, not a count: the batch may be late on a slow machine.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while tokio::time::Instant::now() < deadline {
        page = get("user=web&event=file.upload", "boss", "boss-pass-1").await.json().await.unwrap();
        if page["records"].as_array().is_some_and(|r| r.len() == 2) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let paths: Vec<&str> =
        page["records"].as_array().unwrap().iter().map(|r| r["path"].as_str().unwrap()).collect();
    assert_eq!(paths, ["/a.txt", "/b.txt"]);
    assert!(page["next"].is_null());
    // Paged by a cursor, one at a time.
    let first: Value = get("user=web&event=30002&limit=1", "boss", "boss-pass-1").await.json().await.unwrap();
    assert_eq!(first["records"][0]["path"], "/a.txt");
    let next = first["next"].as_i64().unwrap();
    let second: Value = get(&format!("user=web&event=30002&limit=1&after={next}"), "boss", "boss-pass-1")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(second["records"][0]["path"], "/b.txt");
    let since: Value = get("user=web&since=1h&until=2099-01-01T00:00:00Z", "boss", "boss-pass-1")
        .await
        .json()
        .await
        .unwrap();
    assert!(since["records"].as_array().unwrap().len() >= 2);
    // Not for users without the admin role; bad parameters are named.
    assert_eq!(get("", "web", "web-pass-1").await.status(), 403);
    let bad = get("limit=5000", "boss", "boss-pass-1").await;
    assert_eq!(bad.status(), 400);
    let bad = get("since=yesterday", "boss", "boss-pass-1").await;
    assert_eq!(bad.status(), 400);
    let body: Value = bad.json().await.unwrap();
    assert!(body["message"].as_str().unwrap().contains("yesterday"), "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_download_the_client_abandons_is_recorded_as_failed() {
    let mut srv = TestServer::start().await;
    srv.add_user(User::with_password("web", "web-pass-1")).await;
    std::fs::create_dir_all(srv.home("web")).unwrap();
    std::fs::write(srv.home("web").join("big.bin"), payload(32 << 20, 4)).unwrap();
    let web = srv.https_as("web", "web-pass-1");
    // A whole download first: ok, every byte.
    let whole = web.get("/api/v1/files/big.bin").await;
    assert_eq!(whole.bytes().await.unwrap().len(), 32 << 20);
    let done = srv.expect_event(|r| r.event == "file.download").await;
    assert_eq!((done.outcome, done.bytes), (Outcome::Ok, Some(32 << 20)));
    // Then one the client drops after the first chunk.
    let mut partial = web.get("/api/v1/files/big.bin").await;
    assert!(partial.chunk().await.unwrap().is_some());
    drop(partial);
    let cut = srv.expect_event(|r| r.event == "file.download").await;
    assert_eq!(cut.outcome, Outcome::Failed);
    assert_eq!(cut.reason.as_deref(), Some("the client went away before the end"));
    assert!(cut.bytes.unwrap() < 32 << 20, "{:?}", cut.bytes);
}
