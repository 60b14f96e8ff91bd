//! Metrics and traces with the real tools: `promtool check metrics` on what /metrics serves, a
//! real Prometheus scraping the ops listener and answering a query for a counter a transfer
//! moved, and an OTLP/HTTP receiver on loopback getting the spans of the `ferry` binary.

use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

use crate::harness::{HttpsUser, ReservedPort, TestServer, User, ok, payload};

fn sample(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|line| line.strip_prefix(series).and_then(|rest| rest.trim().parse().ok()))
        .unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_scrapes_the_ops_listener_and_sees_a_transfer() {
    let srv = TestServer::start().await;
    srv.add_user(User::with_key("pat")).await;
    let ops = format!("http://{}", srv.ops);
    let http = reqwest::Client::new();
    assert_eq!(http.get(format!("{ops}/healthz")).send().await.unwrap().status(), 200);
    assert_eq!(http.get(format!("{ops}/readyz")).send().await.unwrap().status(), 200);
    assert_eq!(http.get(format!("{ops}/nope")).send().await.unwrap().status(), 404);

    // One SSH connection accepted (its banner read), so the per-protocol connection gauge has
    // a series whichever tests ran before in this binary.
    let mut ssh = tokio::net::TcpStream::connect(srv.addr).await.unwrap();
    let mut banner = [0u8; 4];
    tokio::io::AsyncReadExt::read_exact(&mut ssh, &mut banner).await.unwrap();
    assert_eq!(&banner, b"SSH-");
    // The exposition passes promtool's checks (format and naming conventions).
    let text = http.get(format!("{ops}/metrics")).send().await.unwrap().text().await.unwrap();
    for name in [
        "ferry_build_info{",
        // Present, not its value: the gauge is process-wide, and every other test server that
        // shuts down in this binary sets it to 0 (this server's readiness is `/readyz` above).
        "ferry_ready ",
        "ferry_state_store_up ",
        "ferry_connections_active",
        "ferry_audit_queue_capacity{sink=\"database\"}",
    ] {
        assert!(text.contains(name), "{name} in /metrics");
    }
    let mut promtool = tokio::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool (apt-get install prometheus)");
    promtool.stdin.take().unwrap().write_all(text.as_bytes()).await.unwrap();
    let checked = promtool.wait_with_output().await.unwrap();
    assert!(
        checked.status.success(),
        "promtool: {}{}",
        String::from_utf8_lossy(&checked.stdout),
        String::from_utf8_lossy(&checked.stderr)
    );

    // A real Prometheus scraping every second.
    let dir = tempfile::tempdir().unwrap();
    let web = ReservedPort::new();
    let port = web.port();
    let config = dir.path().join("prometheus.yml");
    std::fs::write(
        &config,
        format!("global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: ferry\n    static_configs:\n      - targets: ['{}']\n", srv.ops),
    )
    .unwrap();
    let _prometheus = tokio::process::Command::new("prometheus")
        .arg(format!("--config.file={}", config.display()))
        .arg(format!("--storage.tsdb.path={}", dir.path().join("tsdb").display()))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("prometheus (apt-get install prometheus)");

    let series = "ferry_transfer_bytes_total{direction=\"upload\",protocol=\"sftp\"}";
    let before = sample(&text, series);
    let local = tempfile::tempdir().unwrap();
    std::fs::write(local.path().join("m.bin"), payload(1 << 20, 9)).unwrap();
    ok(&srv.sftp("pat", local.path(), "put m.bin\n").await);
    // The transfer moved the other families too (values are process-wide: other tests add).
    let after = http.get(format!("{ops}/metrics")).send().await.unwrap().text().await.unwrap();
    for series in [
        "ferry_auth_backend_duration_seconds_count{backend=\"local\",outcome=\"ok\"}",
        "ferry_logins_total{backend=\"local\",method=\"publickey\",outcome=\"ok\",protocol=\"ssh\"}",
        "ferry_sessions_total{protocol=\"sftp\"}",
        "ferry_transfer_duration_seconds_count{direction=\"upload\",protocol=\"sftp\"}",
        "ferry_storage_request_duration_seconds_count{backend=\"local\",op=\"write\"}",
        "ferry_audit_events_total{sink=\"database\"}",
    ] {
        assert!(sample(&after, series) >= 1.0, "{series} in /metrics");
    }

    let query = format!("http://127.0.0.1:{port}/api/v1/query");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(40);
    let mut seen = 0.0;
    while tokio::time::Instant::now() < deadline {
        let promql = "sum(ferry_transfer_bytes_total{job=\"ferry\",protocol=\"sftp\",direction=\"upload\"})";
        let encoded: String = promql.bytes().map(|b| format!("%{b:02X}")).collect();
        let answer = http.get(format!("{query}?query={encoded}")).send().await;
        if let Ok(answer) = answer
            && let Ok(body) = answer.json::<serde_json::Value>().await
            && let Some(value) = body["data"]["result"][0]["value"][1].as_str()
        {
            seen = value.parse().unwrap();
            if seen >= before + (1 << 20) as f64 {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(seen >= before + (1 << 20) as f64, "Prometheus saw {seen}, expected at least {before} + 1 MiB");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_otlp_receiver_gets_connection_session_and_transfer_spans() {
    let bodies = Arc::new(Mutex::new(Vec::<u8>::new()));
    let sink = Arc::clone(&bodies);
    let app = axum::Router::new().route(
        "/v1/traces",
        axum::routing::post(move |body: axum::body::Bytes| {
            let sink = Arc::clone(&sink);
            async move {
                sink.lock().unwrap().extend_from_slice(&body);
                axum::http::StatusCode::OK
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let collector = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });

    let dir = tempfile::tempdir().unwrap();
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_ferry"))
        .arg("serve")
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("FERRY_DATA_DIR", dir.path())
        .env("FERRY_SFTP__ENABLED", "false")
        .env("FERRY_FTP__ENABLED", "false")
        .env("FERRY_FTPS__ENABLED", "false")
        .env("FERRY_HTTPS__BIND", "127.0.0.1:0")
        .env("FERRY_OPS__BIND", "127.0.0.1:0")
        .env("FERRY_ADMIN_USER", "otel-admin")
        .env("FERRY_ADMIN_PASSWORD", "otel-pass-1")
        .env("FERRY_LOG", "info,ferry::session=debug")
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", format!("http://{collector}"))
        .env("OTEL_BSP_SCHEDULE_DELAY", "100")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let pid = child.id().unwrap();
    let stderr_lines = Arc::new(Mutex::new(Vec::<String>::new()));
    let (addr_tx, mut addr_rx) = tokio::sync::mpsc::channel::<String>(1);
    let mut stderr = BufReader::new(child.stderr.take().unwrap()).lines();
    let log = Arc::clone(&stderr_lines);
    tokio::spawn(async move {
        while let Ok(Some(line)) = stderr.next_line().await {
            if line.contains("HTTPS listening")
                && let Some(addr) = line.split("addr=").nth(1)
            {
                let _ = addr_tx.send(addr.split_whitespace().next().unwrap_or_default().to_string()).await;
            }
            log.lock().unwrap().push(line);
        }
    });
    let mut stdout = BufReader::new(child.stdout.take().unwrap()).lines();
    let addr = tokio::time::timeout(Duration::from_secs(20), addr_rx.recv())
        .await
        .expect("HTTPS listening")
        .unwrap();

    let pem = std::fs::read(dir.path().join("tls/cert.pem")).unwrap();
    let client = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&pem).unwrap())
        .build()
        .unwrap();
    let base = format!("https://{addr}").replace("127.0.0.1", "localhost");
    let admin = HttpsUser::new(client, &base, "otel-admin", "otel-pass-1");
    let put = admin.put("/api/v1/files/traced.bin").body(payload(70_000, 3)).await;
    assert!(put.status().is_success(), "{}", put.status());
    let made = admin.post("/api/v1/folders/made").await;
    assert!(made.status().is_success(), "{}", made.status());

    // The audit record names the session; the log line of the login carries the trace ID.
    let session = loop {
        let line = tokio::time::timeout(Duration::from_secs(10), stdout.next_line())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        let record: serde_json::Value = serde_json::from_str(&line).unwrap();
        if record["event"] == "file.upload" {
            break record["session"].as_str().unwrap().to_string();
        }
    };
    let trace_id = {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        loop {
            let found = stderr_lines.lock().unwrap().iter().find_map(|line| {
                (line.contains("login succeeded") && line.contains(&session))
                    .then(|| {
                        line.split("trace_id=").nth(1).map(|t| t.trim_start_matches('"')[..32].to_string())
                    })
                    .flatten()
            });
            if let Some(found) = found {
                break found;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "no login log line with a trace_id: {:?}",
                stderr_lines.lock().unwrap()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    // SIGTERM: a clean stop flushes the spans.
    assert!(std::process::Command::new("kill").args(["-TERM", &pid.to_string()]).status().unwrap().success());
    let status =
        tokio::time::timeout(Duration::from_secs(30), child.wait()).await.expect("ferry stops").unwrap();
    assert!(status.success(), "{status}");

    let body = bodies.lock().unwrap().clone();
    let has = |needle: &[u8]| body.windows(needle.len()).any(|w| w == needle);
    for name in ["connection", "login", "session", "transfer", "file_operation"] {
        assert!(has(name.as_bytes()), "span {name} exported");
    }
    for value in [session.as_str(), "otel-admin", "https", "/traced.bin"] {
        assert!(has(value.as_bytes()), "attribute value {value} exported");
    }
    let raw_trace_id: Vec<u8> =
        (0..16).map(|i| u8::from_str_radix(&trace_id[2 * i..2 * i + 2], 16).unwrap()).collect();
    assert!(has(&raw_trace_id), "the logged trace ID {trace_id} is the exported trace");
}
