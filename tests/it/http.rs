//! The HTTPS REST API with reqwest (and curl for a big streaming upload): round trips, ranges,
//! ETags, permissions, traversal, credentials and tokens across two server instances. Browser
//! sessions are in `http_browser`, administration in `http_admin`.

use reqwest::{Client, StatusCode, header};
use serde_json::Value;

use crate::harness::{HttpsUser, TestServer, User, payload, sha256};

pub(crate) fn url(srv: &TestServer, path: &str) -> String {
    format!("https://localhost:{}{path}", srv.https.port())
}

pub(crate) async fn json(response: reqwest::Response) -> Value {
    response.json().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_round_trip_with_ranges_etags_and_listings() {
    let srv = TestServer::start().await;
    srv.add_user(User::with_password("web", "web-pass-1")).await;
    let data = payload((3 << 20) + 7, 5);

    let web = srv.https_as("web", "web-pass-1");
    let put = web.put("/api/v1/files/docs/report%20%C3%A9.bin").body(data.clone()).await;
    // The parent does not exist yet.
    assert_eq!(put.status(), StatusCode::NOT_FOUND, "{:?}", put.text().await);
    let mkdir = web.post("/api/v1/folders/docs").await;
    assert_eq!(mkdir.status(), StatusCode::CREATED);
    let put = web.put("/api/v1/files/docs/report%20%C3%A9.bin").body(data.clone()).await;
    assert_eq!(put.status(), StatusCode::CREATED);
    assert_eq!(json(put).await["size"], data.len());
    assert_eq!(std::fs::read(srv.home("web").join("docs/report é.bin")).unwrap(), data);

    let got = web.get("/api/v1/files/docs/report%20%C3%A9.bin").await;
    assert_eq!(got.status(), StatusCode::OK);
    assert_eq!(got.version(), reqwest::Version::HTTP_2, "HTTP/2 by ALPN");
    let headers = got.headers().clone();
    assert_eq!(headers[header::CONTENT_LENGTH], data.len().to_string().as_str());
    assert!(headers[header::CONTENT_DISPOSITION].to_str().unwrap().contains("report%20%C3%A9.bin"));
    assert_eq!(headers["x-content-type-options"], "nosniff");
    assert!(headers["strict-transport-security"].to_str().unwrap().starts_with("max-age="));
    assert!(headers["content-security-policy"].to_str().unwrap().contains("frame-ancestors 'none'"));
    assert_eq!(sha256(&got.bytes().await.unwrap()), sha256(&data));
    let etag = headers[header::ETAG].to_str().unwrap().to_string();

    let ranged =
        web.get("/api/v1/files/docs/report%20%C3%A9.bin").header(header::RANGE, "bytes=1000-1999").await;
    assert_eq!(ranged.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(
        ranged.headers()[header::CONTENT_RANGE].to_str().unwrap(),
        format!("bytes 1000-1999/{}", data.len())
    );
    assert_eq!(ranged.bytes().await.unwrap(), &data[1000..2000]);
    let tail = web.get("/api/v1/files/docs/report%20%C3%A9.bin").header(header::RANGE, "bytes=-7").await;
    assert_eq!(tail.bytes().await.unwrap(), &data[data.len() - 7..]);
    let past = web
        .get("/api/v1/files/docs/report%20%C3%A9.bin")
        .header(header::RANGE, format!("bytes={}-", data.len()))
        .await;
    assert_eq!(past.status(), StatusCode::RANGE_NOT_SATISFIABLE);
    let cached = web.get("/api/v1/files/docs/report%20%C3%A9.bin").header(header::IF_NONE_MATCH, &etag).await;
    assert_eq!(cached.status(), StatusCode::NOT_MODIFIED);

    // Resume: the second half of a file with Content-Range.
    let first = web.put("/api/v1/files/docs/part.bin").body(data[..1 << 20].to_vec()).await;
    assert_eq!(first.status(), StatusCode::CREATED);
    let rest = web
        .put("/api/v1/files/docs/part.bin")
        .header(header::CONTENT_RANGE, format!("bytes {}-{}/{}", 1 << 20, data.len() - 1, data.len()))
        .body(data[1 << 20..].to_vec())
        .await;
    assert_eq!(rest.status(), StatusCode::CREATED);
    assert_eq!(std::fs::read(srv.home("web").join("docs/part.bin")).unwrap(), data);

    // Listing: paged and sorted.
    for name in ["b.txt", "a.txt", "c.txt"] {
        let put = web.put(&format!("/api/v1/files/docs/{name}")).body(name.repeat(10)).await;
        assert_eq!(put.status(), StatusCode::CREATED);
    }
    let page = json(web.get("/api/v1/files/docs?limit=2&sort=name&order=desc").await).await;
    assert_eq!(page["total"], 5);
    let names: Vec<&str> =
        page["entries"].as_array().unwrap().iter().map(|e| e["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["report é.bin", "part.bin"]);
    assert_eq!(page["next_offset"], 2);
    let root = json(web.get("/api/v1/files").await).await;
    assert_eq!(root["entries"][0]["name"], "docs");
    assert_eq!(root["entries"][0]["type"], "folder");

    // Rename, copy, delete; a non-empty folder is refused with 409.
    let moved = web
        .post("/api/v1/rename")
        .json(&serde_json::json!({"from": "/docs/a.txt", "to": "/docs/z.txt"}))
        .await;
    assert_eq!(moved.status(), StatusCode::NO_CONTENT);
    let taken = web
        .post("/api/v1/rename")
        .json(&serde_json::json!({"from": "/docs/b.txt", "to": "/docs/z.txt"}))
        .await;
    assert_eq!(taken.status(), StatusCode::CONFLICT);
    assert_eq!(json(taken).await["code"], "already_exists");
    let copied = web
        .post("/api/v1/copy")
        .json(&serde_json::json!({"from": "/docs/part.bin", "to": "/copy.bin"}))
        .await;
    assert_eq!(copied.status(), StatusCode::CREATED);
    assert_eq!(std::fs::read(srv.home("web").join("copy.bin")).unwrap(), data);
    let not_empty = web.delete("/api/v1/files/docs").await;
    assert_eq!(not_empty.status(), StatusCode::CONFLICT);
    let gone = web.delete("/api/v1/files/copy.bin").await;
    assert_eq!(gone.status(), StatusCode::NO_CONTENT);
    assert!(!srv.home("web").join("copy.bin").exists());
    let missing = web.get("/api/v1/files/copy.bin").await;
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    assert_eq!(json(missing).await["code"], "not_found");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn permissions_traversal_and_credentials_are_enforced() {
    let mut srv = TestServer::start().await;
    srv.add_user(User { rules: &["/=*", "/ro=list,download"], ..User::with_password("web", "web-pass-1") })
        .await;
    srv.add_user(User::with_password("other", "other-pass-1")).await;
    std::fs::create_dir_all(srv.home("web").join("ro")).unwrap();
    std::fs::write(srv.home("web").join("ro/keep.txt"), b"keep").unwrap();
    std::fs::create_dir_all(srv.home("other")).unwrap();
    std::fs::write(srv.home("other").join("secret.txt"), b"CONTENT-OF-OTHER-42").unwrap();
    let http = srv.https_client();

    let web = srv.https_as("web", "web-pass-1");
    let denied = web.put("/api/v1/files/ro/new.txt").body("x").await;
    assert_eq!(denied.status(), StatusCode::FORBIDDEN);
    assert_eq!(json(denied).await["code"], "permission_denied");
    let denied = web.delete("/api/v1/files/ro/keep.txt").await;
    assert_eq!(denied.status(), StatusCode::FORBIDDEN);
    assert!(srv.home("web").join("ro/keep.txt").exists());

    // Traversal in every encoding never reaches another user's files.
    for path in [
        "/api/v1/files/%2e%2e/other/secret.txt",
        "/api/v1/files/..%2fother%2fsecret.txt",
        "/api/v1/files/%252e%252e/other/secret.txt",
        "/api/v1/files/..%5cother%5csecret.txt",
        "/api/v1/files/ro/%2e%2e/%2e%2e/other/secret.txt",
        "/api/v1/files/%2fetc%2fpasswd",
    ] {
        let response = web.get(path).await;
        let status = response.status();
        let body = response.bytes().await.unwrap();
        assert!(
            matches!(status, StatusCode::FORBIDDEN | StatusCode::NOT_FOUND | StatusCode::BAD_REQUEST),
            "{path}: {status}"
        );
        let text = String::from_utf8_lossy(&body);
        assert!(!text.contains("CONTENT-OF-OTHER-42") && !text.contains("root:"), "{path}: {text}");
    }

    // Wrong password, unknown user, no credentials: 401 with WWW-Authenticate, audited.
    let wrong = srv.https_as("web", "nope-nope").get("/api/v1/files").await;
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    assert!(wrong.headers()[header::WWW_AUTHENTICATE].to_str().unwrap().contains("Basic"));
    let failed = srv.expect_event(|e| e.event == "login.failed").await;
    assert_eq!(failed.user.as_deref(), Some("web"));
    assert_eq!(failed.protocol.map(|p| p.as_str()), Some("https"));
    let unknown = srv.https_as("ghost", "x-x-x-x").get("/api/v1/files").await;
    assert_eq!(unknown.status(), StatusCode::UNAUTHORIZED);
    let none = http.get(url(&srv, "/api/v1/files")).send().await.unwrap();
    assert_eq!(none.status(), StatusCode::UNAUTHORIZED);
    let garbage = http
        .get(url(&srv, "/api/v1/files"))
        .header(header::AUTHORIZATION, "Bearer ferry1.abc.def")
        .send()
        .await
        .unwrap();
    assert_eq!(garbage.status(), StatusCode::UNAUTHORIZED);
    let endpoint = http.get(url(&srv, "/nothing/here")).send().await.unwrap();
    assert_eq!(endpoint.status(), StatusCode::NOT_FOUND);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_work_on_a_second_instance_and_stop_at_logout_or_expiry() {
    let srv = TestServer::start_with("[https]\ntoken_ttl = \"2s\"\n").await;
    srv.add_user(User::with_password("tok", "tok-pass-1")).await;
    let http = srv.https_client();
    let tok = srv.https_as("tok", "tok-pass-1");
    let issued = json(tok.post("/api/v1/auth/token").await).await;
    let token = issued["token"].as_str().unwrap().to_string();
    assert_eq!(issued["token_type"], "Bearer");

    // A second server on the same state store (another replica) accepts the token.
    let data = srv.dir.path().join("data");
    let second = ferry::config::Config::from_table(
        format!(
            "data_dir = {data:?}\n[sftp]\nenabled = false\n[ftp]\nenabled = false\n[ftps]\nenabled = false\n\
             [https]\nbind = \"127.0.0.1:0\"\n[audit]\nstdout = false\n",
            data = data.display().to_string()
        )
        .parse()
        .unwrap(),
        Vec::new(),
    )
    .unwrap();
    let (stop, rx) = tokio::sync::watch::channel(false);
    let replica = ferry::server::start(second, None, rx).await.unwrap();
    let replica_url = format!("https://localhost:{}/api/v1/files", replica.https_addr.unwrap().port());
    let listed = http.get(&replica_url).bearer_auth(&token).send().await.unwrap();
    assert_eq!(listed.status(), StatusCode::OK);

    // Logging out on the first revokes it on the second.
    let logout = http.delete(url(&srv, "/api/v1/auth/token")).bearer_auth(&token).send().await.unwrap();
    assert_eq!(logout.status(), StatusCode::NO_CONTENT);
    let revoked = http.get(&replica_url).bearer_auth(&token).send().await.unwrap();
    assert_eq!(revoked.status(), StatusCode::UNAUTHORIZED);

    // Tokens expire.
    let short = json(tok.post("/api/v1/auth/token").await).await;
    let short = short["token"].as_str().unwrap().to_string();
    assert_eq!(
        http.get(url(&srv, "/api/v1/files")).bearer_auth(&short).send().await.unwrap().status(),
        StatusCode::OK
    );
    tokio::time::sleep(std::time::Duration::from_millis(3100)).await;
    let expired = http.get(url(&srv, "/api/v1/files")).bearer_auth(&short).send().await.unwrap();
    assert_eq!(expired.status(), StatusCode::UNAUTHORIZED);
    let _ = stop.send(true);
}

/// A 1 GiB upload streams: curl sends it, the server's memory stays bounded, the bytes arrive.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gigabyte_upload_streams_in_bounded_memory() {
    use crate::harness::{ok, run, sha256_file};
    let srv = TestServer::start().await;
    srv.add_user(User::with_password("big", "big-pass-1")).await;
    let local = tempfile::tempdir().unwrap();
    let file = local.path().join("big.bin");
    {
        use std::io::Write;
        let mut out = std::io::BufWriter::new(std::fs::File::create(&file).unwrap());
        let block = payload(8 << 20, 9);
        for _ in 0..128 {
            out.write_all(&block).unwrap();
        }
    }
    let rss_before = rss_kib();
    let mut curl = tokio::process::Command::new("curl");
    curl.args(["-sS", "--fail", "--cacert"])
        .arg(&srv.cert)
        .args(["-u", "big:big-pass-1", "-T"])
        .arg(&file)
        .arg(url(&srv, "/api/v1/files/big.bin"));
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sampler = tokio::spawn({
        let done = std::sync::Arc::clone(&done);
        async move {
            let mut peak = 0;
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                peak = peak.max(rss_kib());
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
            peak
        }
    });
    ok(&run(curl, 300).await);
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    let peak = sampler.await.unwrap();
    assert_eq!(sha256_file(&srv.home("big").join("big.bin")), sha256_file(&file));
    // The test process holds the server (and other tests running beside this one); a buffered
    // upload would add at least 1 GiB.
    assert!(peak.saturating_sub(rss_before) < 512 * 1024, "RSS grew {} KiB", peak.saturating_sub(rss_before));
}

/// Resident memory of this test process (which runs the server).
fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// schemathesis fuzzes every operation of the OpenAPI document: no 5xx, and every answer
/// (status, content type, headers, body) matches the document. `positive_data_acceptance` is
/// left out: it counts correct refusals of schema-valid input (a range past the end of a file is
/// 416, a path with NUL is 400) as failures.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schemathesis_finds_no_server_errors_and_no_schema_violations() {
    use crate::harness::{ok, python_tool, run};
    // The fuzzer's deliberate bad credentials would get its address banned (and then refused
    // at accept); the defender is not what this test is about.
    let srv = TestServer::start_with("[auth]\nban_after_failures = 0\n").await;
    srv.add_user(User::with_password("fuzz", "fuzz-pass-1")).await;
    let bin = python_tool("schemathesis");
    assert!(bin.exists(), "{}: tests/run.sh installs schemathesis", bin.display());
    use base64::Engine;
    let basic = base64::engine::general_purpose::STANDARD.encode("fuzz:fuzz-pass-1");
    let mut cmd = tokio::process::Command::new(bin);
    cmd.arg("run")
        .arg(url(&srv, "/api/v1/openapi.json"))
        .args(["--checks", "all", "--exclude-checks", "positive_data_acceptance", "--tls-verify", "false"])
        .args(["--max-examples", "40", "--seed", "20261125", "--no-color"])
        .arg("-H")
        .arg(format!("Authorization: Basic {basic}"))
        .current_dir(srv.dir.path());
    // schemathesis exits non-zero on any failure; the summary also says so.
    let out = ok(&run(cmd, 600).await);
    let summary = out.lines().find(|l| l.contains(" generated, ")).unwrap_or_default();
    let counts: Vec<&str> = summary.split_whitespace().collect();
    assert!(counts.len() >= 4 && counts[0] == counts[2] && counts[3].starts_with("passed"), "{out}");
    assert!(!out.contains('❌'), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn form_uploads_stream_each_file_into_the_folder() {
    use crate::harness::{failed, ok, run};
    let srv = TestServer::start().await;
    srv.add_user(User::with_password("form", "form-pass-1")).await;
    std::fs::create_dir_all(srv.home("form").join("in")).unwrap();
    let local = tempfile::tempdir().unwrap();
    let big = payload(3 << 20, 12);
    std::fs::write(local.path().join("a.bin"), &big).unwrap();
    std::fs::write(local.path().join("b.txt"), b"bee").unwrap();
    let curl = |args: &[&str], target: &str| {
        let mut cmd = tokio::process::Command::new("curl");
        cmd.args(["-sS", "--fail-with-body", "--cacert"])
            .arg(&srv.cert)
            .args(["-u", "form:form-pass-1"])
            .args(args)
            .arg(url(&srv, target))
            .current_dir(local.path());
        cmd
    };
    let out =
        ok(&run(curl(&["-F", "one=@a.bin", "-F", "two=@b.txt", "-F", "note=hello"], "/api/v1/files/in"), 60)
            .await);
    let written: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(written[0]["path"], "/in/a.bin");
    assert_eq!(written[1]["size"], 3);
    assert_eq!(std::fs::read(srv.home("form").join("in/a.bin")).unwrap(), big);
    assert_eq!(std::fs::read(srv.home("form").join("in/b.txt")).unwrap(), b"bee");
    // A part whose file name is a path is refused.
    let err = failed(&run(curl(&["-F", "x=@b.txt;filename=../../escape.txt"], "/api/v1/files/in"), 60).await);
    assert!(err.contains("400") || err.contains("error"), "{err}");
    assert!(!srv.home("form").join("escape.txt").exists() && !srv.files.join("escape.txt").exists());
}

/// A client that connects and then sends nothing (or dribbles) is cut off after
/// `header_timeout`; HTTP/1.1 works beside HTTP/2.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_clients_are_cut_off_and_http1_is_served() {
    use tokio::io::AsyncReadExt;
    let srv = TestServer::start_with("[https]\nheader_timeout = \"1s\"\n").await;
    srv.add_user(User::with_password("h1", "h1-pass-1")).await;
    let started = std::time::Instant::now();
    let mut idle = tokio::net::TcpStream::connect(srv.https).await.unwrap();
    let mut buf = [0u8; 64];
    let read = tokio::time::timeout(std::time::Duration::from_secs(5), idle.read(&mut buf)).await;
    assert!(matches!(read, Ok(Ok(0)) | Ok(Err(_))), "closed, not left hanging: {read:?}");
    assert!(started.elapsed() < std::time::Duration::from_secs(4));

    let pem = std::fs::read(&srv.cert).unwrap();
    let h1 = Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&pem).unwrap())
        .http1_only()
        .build()
        .unwrap();
    let answer = HttpsUser::new(h1, &url(&srv, ""), "h1", "h1-pass-1").get("/api/v1/files").await;
    assert_eq!(answer.version(), reqwest::Version::HTTP_11);
    assert_eq!(answer.status(), StatusCode::OK);
}

/// One raw HTTP/1.1 request over TLS, as a hostile client writes it: (status, headers, body).
async fn raw_get(srv: &TestServer, path: &str, auth: &str, range: &str) -> (u16, String, Vec<u8>) {
    use base64::Engine;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let config = crate::harness::tls_client_config(&srv.cert);
    let tcp = tokio::net::TcpStream::connect(srv.https).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let mut tls =
        tokio_rustls::TlsConnector::from(std::sync::Arc::new(config)).connect(name, tcp).await.unwrap();
    let basic = base64::engine::general_purpose::STANDARD.encode(auth);
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nAuthorization: Basic {basic}\r\nRange: {range}\r\nConnection: close\r\n\r\n"
    );
    tls.write_all(request.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    // A dropped connection (the defect) ends in an error or an empty answer, both caught below.
    let _ = tls.read_to_end(&mut answer).await;
    let split = answer.windows(4).position(|w| w == b"\r\n\r\n").unwrap_or_else(|| {
        panic!("no HTTP response to `Range: {range}`: {:?}", String::from_utf8_lossy(&answer))
    });
    let head = String::from_utf8_lossy(&answer[..split]).into_owned();
    let status = head.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    (status, head.to_ascii_lowercase(), answer[split + 4..].to_vec())
}

/// Hostile numbers in `Range` get an answer (206, 200 or 416 as RFC 9110 says), never a
/// dropped connection: a last position past the end means "to the end".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_ranges_are_answered_by_the_rfc() {
    let srv = TestServer::start().await;
    srv.add_user(User::with_password("web", "web-pass-1")).await;
    let data = payload(100_000, 9);
    std::fs::create_dir_all(srv.home("web")).unwrap();
    std::fs::write(srv.home("web").join("r.bin"), &data).unwrap();
    let n = data.len();
    let huge = "9".repeat(3000);
    let cases: Vec<(String, u16, Option<std::ops::Range<usize>>)> = vec![
        ("bytes=5-18446744073709551615".into(), 206, Some(5..n)),
        ("bytes=5-99999999999999999999999999".into(), 206, Some(5..n)),
        (format!("bytes=7-{huge}"), 206, Some(7..n)),
        ("bytes=-18446744073709551615".into(), 206, Some(0..n)),
        (format!("bytes=-{huge}"), 206, Some(0..n)),
        ("bytes=18446744073709551615-".into(), 416, None),
        ("bytes=18446744073709551615-18446744073709551615".into(), 416, None),
        (format!("bytes={huge}-"), 416, None),
        ("bytes=-0".into(), 416, None),
        ("bytes=0-1,5-18446744073709551615".into(), 200, Some(0..n)),
        ("bytes=+1-2".into(), 200, Some(0..n)),
        ("bytes=-1-2".into(), 200, Some(0..n)),
        ("bytes=9-3".into(), 200, Some(0..n)),
        ("bytes=".into(), 200, Some(0..n)),
        (format!("bytes={}", vec!["1-1"; 500].join(",")), 200, Some(0..n)),
    ];
    for (range, status, body) in cases {
        let (got, head, bytes) = raw_get(&srv, "/api/v1/files/r.bin", "web:web-pass-1", &range).await;
        let shown = &range[..range.len().min(60)];
        assert_eq!(got, status, "{shown}: {head}");
        match body {
            Some(part) => {
                assert_eq!(sha256(&bytes), sha256(&data[part.clone()]), "{shown}");
                if status == 206 {
                    let want = format!("content-range: bytes {}-{}/{n}", part.start, part.end - 1);
                    assert!(head.contains(&want), "{shown}: {head}");
                }
            }
            None => assert!(head.contains(&format!("content-range: bytes */{n}")), "{shown}: {head}"),
        }
    }

    // curl, the client that found it.
    let out = srv.dir.path().join("rest.bin");
    let mut curl = tokio::process::Command::new("curl");
    curl.args(["-sS", "--cacert"])
        .arg(&srv.cert)
        .args([
            "-u",
            "web:web-pass-1",
            "-H",
            "Range: bytes=5-18446744073709551615",
            "-w",
            "%{http_code}",
            "-o",
        ])
        .arg(&out)
        .arg(url(&srv, "/api/v1/files/r.bin"));
    let code = crate::harness::ok(&crate::harness::run(curl, 60).await);
    assert_eq!(code, "206");
    assert_eq!(sha256(&std::fs::read(&out).unwrap()), sha256(&data[5..]));

    // Resumed uploads: hostile Content-Range numbers are refused with 400, nothing written.
    for bad in
        ["bytes 18446744073709551615-*/*", "bytes 9-3/20", "bytes 5-25/20", "bytes +5-9/20", "bytes 5-9"]
    {
        let put = srv
            .https_as("web", "web-pass-1")
            .put("/api/v1/files/r.bin")
            .header(header::CONTENT_RANGE, bad)
            .body(vec![0u8; 5])
            .await;
        assert_eq!(put.status(), StatusCode::BAD_REQUEST, "{bad}");
    }
    assert_eq!(std::fs::read(srv.home("web").join("r.bin")).unwrap(), data, "unchanged");
}
