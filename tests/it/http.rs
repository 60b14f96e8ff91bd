//! The HTTPS REST API with reqwest (and curl for a big streaming upload): round trips, ranges,
//! ETags, permissions, traversal, credentials and tokens across two server instances.

use reqwest::{Client, StatusCode, header};
use serde_json::Value;

use crate::harness::{HttpsUser, ReservedPort, TestServer, User, payload, sha256};

fn url(srv: &TestServer, path: &str) -> String {
    format!("https://localhost:{}{path}", srv.https.port())
}

async fn json(response: reqwest::Response) -> Value {
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_sessions_use_secure_cookies_with_csrf_and_the_api_is_described() {
    let srv = TestServer::start().await;
    srv.add_user(User::with_password("ui", "ui-pass-1")).await;
    let http = srv.https_client();

    let doc = json(http.get(url(&srv, "/api/v1/openapi.json")).send().await.unwrap()).await;
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    for path in ["/api/v1/files/{path}", "/api/v1/auth/token", "/api/v1/rename"] {
        assert!(doc["paths"][path].is_object(), "{path} documented");
    }
    let page = http.get(url(&srv, "/")).send().await.unwrap();
    assert!(page.headers()[header::CONTENT_TYPE].to_str().unwrap().starts_with("text/html"));

    let wrong = http
        .post(url(&srv, "/api/v1/auth/login"))
        .json(&serde_json::json!({"username": "ui", "password": "nope"}))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    let login = http
        .post(url(&srv, "/api/v1/auth/login"))
        .json(&serde_json::json!({"username": "ui", "password": "ui-pass-1"}))
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), StatusCode::OK);
    let cookies: Vec<String> =
        login.headers().get_all(header::SET_COOKIE).iter().map(|v| v.to_str().unwrap().to_string()).collect();
    let session = cookies.iter().find(|c| c.starts_with("ferry_session=")).expect("session cookie");
    for flag in ["HttpOnly", "Secure", "SameSite=Strict"] {
        assert!(session.contains(flag), "{session}");
    }
    let session_pair = session.split(';').next().unwrap().to_string();
    let csrf = json(login).await["csrf_token"].as_str().unwrap().to_string();

    let me = http.get(url(&srv, "/api/v1/me")).header(header::COOKIE, &session_pair).send().await.unwrap();
    assert_eq!(json(me).await["user"], "ui");
    let forged = http
        .put(url(&srv, "/api/v1/files/x.txt"))
        .header(header::COOKIE, &session_pair)
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), StatusCode::FORBIDDEN);
    assert_eq!(json(forged).await["code"], "csrf");
    assert!(!srv.home("ui").join("x.txt").exists());
    let put = http
        .put(url(&srv, "/api/v1/files/x.txt"))
        .header(header::COOKIE, &session_pair)
        .header("x-csrf-token", &csrf)
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), StatusCode::CREATED);
    let logout = http
        .post(url(&srv, "/api/v1/auth/logout"))
        .header(header::COOKIE, &session_pair)
        .header("x-csrf-token", &csrf)
        .send()
        .await
        .unwrap();
    assert_eq!(logout.status(), StatusCode::NO_CONTENT);
    let after = http.get(url(&srv, "/api/v1/me")).header(header::COOKIE, &session_pair).send().await.unwrap();
    assert_eq!(after.status(), StatusCode::UNAUTHORIZED);
}

/// schemathesis fuzzes every operation of the OpenAPI document: no 5xx, and every answer
/// (status, content type, headers, body) matches the document. `positive_data_acceptance` is
/// left out: it counts correct refusals of schema-valid input (a range past the end of a file is
/// 416, a path with NUL is 400) as failures.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schemathesis_finds_no_server_errors_and_no_schema_violations() {
    use crate::harness::{ok, python_tool, run};
    let srv = TestServer::start().await;
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

/// A real browser (Debian's chromium driven by Playwright) logs in, uploads with the file
/// picker, downloads and compares, renames, deletes and logs out; the screenshot of the file
/// list is kept under the test output (target/browser-screenshots).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_browser_manages_files_through_the_web_page() {
    use crate::harness::{ok, run};
    let srv = TestServer::start().await;
    srv.add_user(User::with_password("browser", "browser-pass-1")).await;
    let node_dir =
        std::env::var("FERRY_TEST_NODE").expect("FERRY_TEST_NODE: tests/run.sh installs playwright-core");
    let local = tempfile::tempdir().unwrap();
    let upload = local.path().join("hello report.bin");
    std::fs::write(&upload, payload(300_000, 77)).unwrap();
    let shots = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/browser-screenshots");
    std::fs::create_dir_all(&shots).unwrap();
    let shot = shots.join("file-list.png");
    // ES modules resolve packages next to the script: run a copy inside the node folder.
    let script = std::path::Path::new(&node_dir).join("ferry_browser_test.mjs");
    std::fs::copy(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/clients/browser_test.mjs"), &script).unwrap();
    let mut cmd = tokio::process::Command::new("node");
    cmd.arg(&script)
        .arg(format!("https://localhost:{}/", srv.https.port()))
        .args(["browser", "browser-pass-1"])
        .arg(&upload)
        .arg(&shot)
        .current_dir(&node_dir);
    let out = ok(&run(cmd, 180).await);
    assert!(out.trim_end().ends_with("ok"), "{out}");
    assert!(std::fs::metadata(&shot).unwrap().len() > 1000, "a screenshot was taken");
    // The browser renamed and then deleted the file: nothing is left.
    assert!(!srv.home("browser").join("hello report.bin").exists());
    assert!(!srv.home("browser").join("renamed-hello report.bin").exists());
}

/// An active browser session slides (a fresh cookie past half-life, same CSRF token); an idle
/// one expires. The optional plain-HTTP listener only redirects to HTTPS.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_sessions_slide_while_used_and_plain_http_redirects() {
    let redirect = ReservedPort::new();
    let port = redirect.port();
    let srv = TestServer::start_with(&format!(
        "[https]\ntoken_ttl = \"4s\"\nredirect_bind = \"127.0.0.1:{port}\"\n"
    ))
    .await;
    srv.add_user(User::with_password("slide", "slide-pass-1")).await;
    let http = srv.https_client();
    let session_of = |response: &reqwest::Response| {
        response
            .headers()
            .get_all(header::SET_COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find(|c| c.starts_with("ferry_session="))
            .map(|c| c.split(';').next().unwrap().to_string())
    };
    let login = http
        .post(url(&srv, "/api/v1/auth/login"))
        .json(&serde_json::json!({"username": "slide", "password": "slide-pass-1"}))
        .send()
        .await
        .unwrap();
    let first = session_of(&login).unwrap();
    let csrf = json(login).await["csrf_token"].as_str().unwrap().to_string();
    let early = http.get(url(&srv, "/api/v1/me")).header(header::COOKIE, &first).send().await.unwrap();
    assert!(session_of(&early).is_none(), "no refresh in the first half of its life");
    tokio::time::sleep(std::time::Duration::from_millis(2300)).await;
    let later = http.get(url(&srv, "/api/v1/me")).header(header::COOKIE, &first).send().await.unwrap();
    let second = session_of(&later).expect("a fresh session cookie past half-life");
    tokio::time::sleep(std::time::Duration::from_millis(2200)).await;
    let old = http.get(url(&srv, "/api/v1/me")).header(header::COOKIE, &first).send().await.unwrap();
    assert_eq!(old.status(), StatusCode::UNAUTHORIZED, "the first cookie expired");
    // The refreshed cookie works, with the CSRF token of the login.
    let put = http
        .put(url(&srv, "/api/v1/files/still.txt"))
        .header(header::COOKIE, &second)
        .header("x-csrf-token", &csrf)
        .body("here")
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), StatusCode::CREATED);

    let plain = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let redirected = plain.get(format!("http://localhost:{port}/api/v1/files?x=1")).send().await.unwrap();
    assert_eq!(redirected.status(), StatusCode::PERMANENT_REDIRECT);
    assert_eq!(
        redirected.headers()[header::LOCATION],
        format!("https://localhost:{}/api/v1/files?x=1", srv.https.port()).as_str()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_keys_are_created_shown_once_used_and_revoked() {
    let mut srv = TestServer::start().await;
    srv.add_user(User::with_password("prog", "prog-pass-1")).await;
    let http = srv.https_client();
    let prog = srv.https_as("prog", "prog-pass-1");
    let created = prog.post("/api/v1/keys").json(&serde_json::json!({"name": "nightly export"})).await;
    assert_eq!(created.status(), StatusCode::CREATED);
    let created = json(created).await;
    let key = created["key"].as_str().unwrap().to_string();
    let id = created["id"].as_str().unwrap().to_string();
    assert!(key.starts_with("ferry_k1_"));

    let by_header = http.get(url(&srv, "/api/v1/me")).header("x-api-key", &key).send().await.unwrap();
    assert_eq!(json(by_header).await["user"], "prog");
    let login = srv
        .expect_event(|e| e.event == "login.succeeded" && e.reason.as_deref() == Some("api_key via local"))
        .await;
    assert_eq!(login.user.as_deref(), Some("prog"));
    let by_bearer = http.get(url(&srv, "/api/v1/me")).bearer_auth(&key).send().await.unwrap();
    assert_eq!(by_bearer.status(), StatusCode::OK);
    let listed =
        json(http.get(url(&srv, "/api/v1/keys")).header("x-api-key", &key).send().await.unwrap()).await;
    assert_eq!(listed[0]["id"], id.as_str());
    assert_eq!(listed[0]["name"], "nightly export");
    assert!(listed[0]["last_used_at"].is_string());
    assert!(listed[0].get("key").is_none(), "the key is never shown again");

    let forged = key[..key.len() - 2].to_string() + "xx";
    let wrong = http.get(url(&srv, "/api/v1/me")).header("x-api-key", &forged).send().await.unwrap();
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    let revoked = prog.delete(&format!("/api/v1/keys/{id}")).await;
    assert_eq!(revoked.status(), StatusCode::NO_CONTENT);
    let after = http.get(url(&srv, "/api/v1/me")).header("x-api-key", &key).send().await.unwrap();
    assert_eq!(after.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admins_manage_users_and_others_are_refused() {
    let mut srv = TestServer::start().await;
    srv.add_user(User { admin: true, ..User::with_password("boss", "boss-pass-1") }).await;
    srv.add_user(User::with_password("plain", "plain-pass-1")).await;
    let http = srv.https_client();
    let health = json(http.get(url(&srv, "/api/v1/health")).send().await.unwrap()).await;
    assert_eq!(health["status"], "ok");

    let refused = srv.https_as("plain", "plain-pass-1").get("/api/v1/admin/users").await;
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    assert_eq!(json(refused).await["code"], "not_admin");

    let boss = srv.https_as("boss", "boss-pass-1");
    let created = boss
        .post("/api/v1/admin/users")
        .json(&serde_json::json!({"name": "partner", "password": "partner-pass-1", "rules": ["/=list,download"]}))
        .await;
    assert_eq!(created.status(), StatusCode::CREATED);
    let audited =
        srv.expect_event(|e| e.event == "user.created" && e.user.as_deref() == Some("partner")).await;
    assert_eq!(audited.user.as_deref(), Some("partner"));
    assert_eq!(audited.protocol.map(|p| p.as_str()), Some("https"));
    let again = boss
        .post("/api/v1/admin/users")
        .json(&serde_json::json!({"name": "partner", "password": "x-x-x-x-1"}))
        .await;
    assert_eq!(again.status(), StatusCode::CONFLICT);
    let bad_rule = boss
        .patch("/api/v1/admin/users/partner")
        .json(&serde_json::json!({"rules": ["/=fly"], "enabled": false}))
        .await;
    assert_eq!(bad_rule.status(), StatusCode::BAD_REQUEST);
    // Nothing changed by the refused update.
    let shown = json(boss.get("/api/v1/admin/users/partner").await).await;
    assert_eq!(shown["enabled"], true);
    assert_eq!(shown["rules"][0], "/=list,download");

    let partner = srv.https_as("partner", "partner-pass-1");
    // The new user logs in; their rule applies; disabling them stops them.
    let upload = partner.put("/api/v1/files/x.txt").body("x").await;
    assert_eq!(upload.status(), StatusCode::FORBIDDEN);
    let disabled =
        boss.patch("/api/v1/admin/users/partner").json(&serde_json::json!({"enabled": false})).await;
    assert_eq!(disabled.status(), StatusCode::OK);
    let blocked = partner.get("/api/v1/files").await;
    assert_eq!(blocked.status(), StatusCode::UNAUTHORIZED);

    let pubkey = std::fs::read_to_string(srv.key.with_extension("pub")).unwrap();
    let added = boss
        .post("/api/v1/admin/users/partner/keys")
        .json(&serde_json::json!({"public_key": pubkey.trim()}))
        .await;
    assert_eq!(added.status(), StatusCode::CREATED);
    let fingerprint = json(added).await["fingerprint"].as_str().unwrap().to_string();
    // Base64 fingerprints hold `/` and `+`: one path segment, percent-encoded.
    let fingerprint = fingerprint.replace('/', "%2F").replace('+', "%2B");
    let removed = boss.delete(&format!("/api/v1/admin/users/partner/keys/{fingerprint}")).await;
    assert_eq!(removed.status(), StatusCode::NO_CONTENT);
    let password = boss
        .put("/api/v1/admin/users/partner/password")
        .json(&serde_json::json!({"password": "new-partner-pass"}))
        .await;
    assert_eq!(password.status(), StatusCode::NO_CONTENT);
    let deleted = boss.delete("/api/v1/admin/users/partner").await;
    assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
    let gone = boss.get("/api/v1/admin/users/partner").await;
    assert_eq!(gone.status(), StatusCode::NOT_FOUND);
}

/// An administrator lists live connections of every protocol and ends an SFTP session in the
/// middle of a transfer: the client is disconnected and its partial upload is not kept.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admins_list_and_end_live_sessions() {
    use crate::harness::run;
    let srv = TestServer::start().await;
    srv.add_user(User { admin: true, ..User::with_password("boss", "boss-pass-1") }).await;
    srv.add_user(User::with_key("slow")).await;
    let local = tempfile::tempdir().unwrap();
    std::fs::write(local.path().join("big.bin"), payload(32 << 20, 3)).unwrap();
    // 32 MiB at 8 Mbit/s: half a minute, far longer than this test waits.
    let upload = srv.sftp_command("slow", local.path(), "put big.bin\n", &["-l", "8000"]);
    let upload = tokio::spawn(run(upload, 120));
    let mut target = None;
    let boss = srv.https_as("boss", "boss-pass-1");
    for _ in 0..100 {
        let sessions = json(boss.get("/api/v1/admin/sessions").await).await;
        target =
            sessions.as_array().unwrap().iter().find(|s| s["user"] == "slow").map(|s| {
                (s["id"].as_str().unwrap().to_string(), s["protocol"].as_str().unwrap().to_string())
            });
        if target.is_some() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let (id, protocol) = target.expect("the SFTP session is listed");
    assert_eq!(protocol, "ssh", "the connection is SSH; SFTP runs on a channel of it");
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let ended = boss.delete(&format!("/api/v1/admin/sessions/{id}")).await;
    assert_eq!(ended.status(), StatusCode::NO_CONTENT);
    let started = std::time::Instant::now();
    let out = upload.await.unwrap();
    assert!(!out.status.success(), "the client was cut off");
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
    assert!(!srv.home("slow").join("big.bin").exists(), "no partial file");
    let again = boss.delete(&format!("/api/v1/admin/sessions/{id}")).await;
    assert_eq!(again.status(), StatusCode::NOT_FOUND);
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

/// Failed logins over HTTPS and SFTP add up per address; past the limit the address is refused
/// everywhere, even with the right password, and the ban is audited.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_logins_from_any_protocol_ban_the_address() {
    use crate::harness::Python;
    let mut srv = TestServer::start_with("[auth]\nban_after_failures = 3\nban_time = \"1h\"\n").await;
    srv.add_user(User { password: Some("right-pass-1"), ..User::with_key("victim") }).await;
    for _ in 0..2 {
        let wrong = srv.https_as("victim", "wrong-pass").get("/api/v1/files").await;
        assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    }
    // The third failure comes over SFTP (paramiko, password).
    let script = "import paramiko, sys\nt = paramiko.Transport(('127.0.0.1', int(sys.argv[1])))\nt.start_client()\n\
                  try:\n    t.auth_password('victim', 'still-wrong')\nexcept paramiko.AuthenticationException:\n    print('refused')\n";
    let out = Python::inline(script).arg(srv.addr.port().to_string()).output(60).await;
    assert!(String::from_utf8_lossy(&out.stdout).contains("refused"));
    let ban = srv.expect_event(|e| e.event == "login.banned").await;
    assert_eq!(ban.peer.unwrap().to_string().split(':').next(), Some("127.0.0.1"));
    let right = srv.https_as("victim", "right-pass-1").get("/api/v1/files").await;
    assert_eq!(right.status(), StatusCode::UNAUTHORIZED, "banned even with the right password");
    let refused = srv
        .expect_event(|e| {
            e.event == "login.failed" && e.reason.as_deref().is_some_and(|r| r.contains("banned"))
        })
        .await;
    assert_eq!(refused.user.as_deref(), Some("victim"));
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
