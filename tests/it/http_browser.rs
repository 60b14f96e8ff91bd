//! The browser side of the HTTPS server: secure session cookies with CSRF, sessions that slide
//! while used and expire when idle, the plain-HTTP redirect, and a real browser on the web page.

use reqwest::{StatusCode, header};

use crate::harness::{ReservedPort, TestServer, User, payload};
use crate::http::{json, url};

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
