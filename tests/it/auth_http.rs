//! The HTTP authentication service, played by a small axum app on a loopback port: logins over
//! HTTPS and SFTP go to it after the local users, its answers decide, and every way it can
//! misbehave (timeout, 500, redirect, garbage) fails closed.

use std::sync::{Arc, Mutex};

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::harness::{Python, TestServer, User, ok};

#[derive(Clone, Default)]
struct Service {
    seen: Arc<Mutex<Vec<Value>>>,
    /// The SSH key (`algorithm base64`) the service accepts for user `keyed`.
    key: Arc<Mutex<String>>,
    /// User `ext` was removed from the service's directory.
    ext_gone: Arc<std::sync::atomic::AtomicBool>,
}

async fn answer(State(service): State<Service>, headers: HeaderMap, Json(body): Json<Value>) -> Response {
    if headers.get("authorization").and_then(|v| v.to_str().ok()) != Some("Bearer svc-secret") {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    service.seen.lock().unwrap().push(body.clone());
    let allow_ext = json!({"allow": true, "home": "/partners/ext",
        "rules": [{"path": "/", "permissions": ["list", "download"]}]});
    if body["recheck"] == true {
        let gone = service.ext_gone.load(std::sync::atomic::Ordering::SeqCst);
        let still = body["username"] == "ext" && !gone && body.get("password").is_none();
        return Json(if still { allow_ext } else { json!({"allow": false}) }).into_response();
    }
    match body["username"].as_str().unwrap_or("") {
        "ext" if body["password"] == "ext-pass-1" => Json(allow_ext).into_response(),
        // Says yes to any name with this password and gives no home: ferry builds `/{user}`.
        _ if body["password"] == "any-pass-1" => Json(json!({"allow": true})).into_response(),
        // An answer that never ends, a little at a time, without a length.
        "flood" => {
            let chunks = futures::stream::unfold((), |()| async {
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
                Some((Ok::<_, std::convert::Infallible>(axum::body::Bytes::from(vec![b' '; 4096])), ()))
            });
            axum::body::Body::from_stream(chunks).into_response()
        }
        "keyed" if body["public_key"].as_str() == Some(service.key.lock().unwrap().as_str()) => {
            Json(json!({"allow": true})).into_response()
        }
        // Far longer than any slow machine needs for the rest of a login: an answer within
        // half of it can only come from ferry's own 1 s timeout.
        "slow" => {
            tokio::time::sleep(std::time::Duration::from_secs(120)).await;
            Json(json!({"allow": true})).into_response()
        }
        "garbage" => (StatusCode::OK, "this is not json").into_response(),
        "boom" => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
        "moved" => (StatusCode::FOUND, [("location", "http://127.0.0.1:1/")]).into_response(),
        "escaper" => Json(json!({"allow": true, "home": "/../../etc"})).into_response(),
        _ => Json(json!({"allow": false})).into_response(),
    }
}

async fn start_service() -> (String, Service) {
    let service = Service::default();
    let app = axum::Router::new().route("/auth", axum::routing::post(answer)).with_state(service.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/auth", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, service)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_http_service_decides_logins_and_fails_closed() {
    let (url, service) = start_service().await;
    let mut srv = TestServer::start_with(&format!(
        "[auth]\nchain = [\"local\", \"http\"]\n[auth.http]\nurl = \"{url}\"\ntimeout = \"1s\"\nbearer_secret = \"svc-secret\"\n"
    ))
    .await;
    srv.add_user(User::with_password("loc", "loc-pass-1")).await;
    let http = srv.https_client();
    let files = format!("https://localhost:{}/api/v1/files", srv.https.port());

    // Local users still log in first; the service vouches for its own users with their rules.
    assert_eq!(srv.https_as("loc", "loc-pass-1").get("/api/v1/files").await.status(), StatusCode::OK);
    let listed = srv.https_as("ext", "ext-pass-1").get("/api/v1/files").await;
    assert_eq!(listed.status(), StatusCode::OK);
    let denied = srv.https_as("ext", "ext-pass-1").put("/api/v1/files/x.txt").body("x").await;
    assert_eq!(denied.status(), StatusCode::FORBIDDEN, "the service's rules apply");
    assert!(srv.files.join("partners/ext").is_dir(), "the home the service gave");
    let login = srv.expect_event(|e| e.event == "login.succeeded" && e.user.as_deref() == Some("ext")).await;
    assert_eq!(login.reason.as_deref(), Some("password via http"));

    let wrong = srv.https_as("ext", "nope-nope").get("/api/v1/files").await;
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    let refused = srv
        .expect_event(|e| {
            e.event == "login.failed" && e.reason.as_deref().is_some_and(|r| r.contains("service"))
        })
        .await;
    assert_eq!(refused.user.as_deref(), Some("ext"));

    // Every misbehaviour fails closed, without waiting for the service, and is audited as the backend being unavailable.
    for user in ["slow", "garbage", "boom", "moved", "escaper"] {
        let started = std::time::Instant::now();
        let answer = srv.https_as(user, "whatever-1").get("/api/v1/files").await;
        assert_eq!(answer.status(), StatusCode::SERVICE_UNAVAILABLE, "{user}");
        assert!(
            started.elapsed() < std::time::Duration::from_secs(60),
            "{user} took {:?}",
            started.elapsed()
        );
        let failed = srv.expect_event(|e| e.event == "login.failed" && e.user.as_deref() == Some(user)).await;
        assert_eq!(failed.outcome, ferry::audit::Outcome::Failed, "{user}");
    }
    assert!(!srv.files.join("etc").exists());

    // Over SFTP too, with what the service learns about the login.
    let script = "import paramiko, sys\nt = paramiko.Transport(('127.0.0.1', int(sys.argv[1])))\n\
                  t.connect(username='ext', password='ext-pass-1')\ns = paramiko.SFTPClient.from_transport(t)\n\
                  print(s.listdir('.'))\n";
    Python::inline(script).arg(srv.addr.port().to_string()).stdout(60).await;
    let seen = service.seen.lock().unwrap().clone();
    let ssh =
        seen.iter().find(|b| b["protocol"] == "ssh" && b["username"] == "ext").expect("an SSH login asked");
    assert_eq!(ssh["peer_address"], "127.0.0.1");
    let https = seen.iter().find(|b| b["protocol"] == "https").expect("an HTTPS login asked");
    assert_eq!(https["password"], "ext-pass-1");
    assert!(seen.iter().all(|b| b["username"] != "loc"), "local users never reach the service");

    // A user of the service gets a bearer token that works (on any replica) until it expires,
    // carrying what the service said; and a browser session.
    let token: Value =
        srv.https_as("ext", "ext-pass-1").post("/api/v1/auth/token").await.json().await.unwrap();
    let asked = service.seen.lock().unwrap().len();
    let by_token = http.get(&files).bearer_auth(token["token"].as_str().unwrap()).send().await.unwrap();
    assert_eq!(by_token.status(), StatusCode::OK);
    let denied = http
        .put(format!("{files}/y.txt"))
        .bearer_auth(token["token"].as_str().unwrap())
        .body("y")
        .send()
        .await
        .unwrap();
    assert_eq!(denied.status(), StatusCode::FORBIDDEN, "the service's rules ride in the token");
    assert_eq!(service.seen.lock().unwrap().len(), asked, "token requests do not ask the service");

    // SSH key login for a user only the service knows.
    let public = std::fs::read_to_string(srv.key.with_extension("pub")).unwrap();
    let mut fields = public.split_whitespace();
    *service.key.lock().unwrap() = format!("{} {}", fields.next().unwrap(), fields.next().unwrap());
    let local = tempfile::tempdir().unwrap();
    ok(&srv.sftp("keyed", local.path(), "pwd\n").await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_logins_asks_the_service_once_with_the_cache_on() {
    let (url, service) = start_service().await;
    let srv = TestServer::start_with(&format!(
        "[auth]\nchain = [\"http\"]\ncache_ttl = \"1h\"\n[auth.http]\nurl = \"{url}\"\nbearer_secret = \"svc-secret\"\n"
    ))
    .await;
    for _ in 0..5 {
        let answer = srv.https_as("ext", "ext-pass-1").get("/api/v1/files").await;
        assert_eq!(answer.status(), StatusCode::OK);
    }
    for _ in 0..3 {
        let answer = srv.https_as("ext", "not-it").get("/api/v1/files").await;
        assert_eq!(answer.status(), StatusCode::UNAUTHORIZED);
    }
    let seen = service.seen.lock().unwrap().clone();
    assert_eq!(seen.iter().filter(|b| b["password"] == "ext-pass-1").count(), 1, "successes are cached");
    assert_eq!(seen.iter().filter(|b| b["password"] == "not-it").count(), 3, "denials are not");
    // Without local users, a local account does not log in.
    srv.admin
        .create_user(ferry::admin::UserSpec {
            name: "loc".into(),
            password: Some(ferry::types::Secret::new("loc-pass-1".into())),
            ..Default::default()
        })
        .await
        .unwrap();
    let local = srv.https_as("loc", "loc-pass-1").get("/api/v1/files").await;
    assert_eq!(local.status(), StatusCode::UNAUTHORIZED, "local users switched off");
}

fn http_chain(url: &str, extra: &str) -> String {
    format!(
        "[auth]\nchain = [\"local\", \"http\"]\n[auth.http]\nurl = \"{url}\"\nbearer_secret = \"svc-secret\"\n{extra}"
    )
}

/// A browser session of a service user is asked about again when it slides: the service sees
/// a re-check without credentials; once it no longer knows the user, the session is not
/// renewed and the login ends at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_users_session_is_checked_again_when_it_slides() {
    use std::sync::atomic::Ordering;
    let (url, service) = start_service().await;
    // Whole-second expiry: a 4 s token lives 3 to 4 s and is past half-life after 2 s.
    let mut srv = TestServer::start_with(&http_chain(&url, "[https]\ntoken_ttl = \"4s\"\n")).await;
    let http = srv.https_client();
    let base = format!("https://localhost:{}", srv.https.port());
    let session_of = |response: &reqwest::Response| {
        response
            .headers()
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find(|c| c.starts_with("ferry_session=") && !c.starts_with("ferry_session=;"))
            .map(|c| c.split(';').next().unwrap().to_string())
    };
    let login = http
        .post(format!("{base}/api/v1/auth/login"))
        .json(&json!({"username": "ext", "password": "ext-pass-1"}))
        .send()
        .await
        .unwrap();
    let first = session_of(&login).expect("a session");
    tokio::time::sleep(std::time::Duration::from_millis(2200)).await;
    let slid = http.get(format!("{base}/api/v1/me")).header("cookie", &first).send().await.unwrap();
    let second = session_of(&slid).expect("renewed while the service still knows the user");
    let rechecks: Vec<Value> =
        service.seen.lock().unwrap().iter().filter(|b| b["recheck"] == true).cloned().collect();
    assert_eq!(rechecks.len(), 1, "asked once, when the session slid");
    assert!(rechecks[0].get("password").is_none() && rechecks[0]["username"] == "ext");
    assert_eq!(rechecks[0]["peer_address"], "127.0.0.1");

    service.ext_gone.store(true, Ordering::SeqCst);
    tokio::time::sleep(std::time::Duration::from_millis(2200)).await;
    let last = http.get(format!("{base}/api/v1/me")).header("cookie", &second).send().await.unwrap();
    assert!(session_of(&last).is_none(), "not renewed for a user the service refuses");
    let ended = srv
        .expect_event(|e| {
            e.event == "login.failed" && e.reason.as_deref().is_some_and(|r| r.contains("not renewed"))
        })
        .await;
    assert_eq!(ended.user.as_deref(), Some("ext"));
    let after = http.get(format!("{base}/api/v1/me")).header("cookie", &second).send().await.unwrap();
    assert_eq!(after.status(), StatusCode::UNAUTHORIZED, "the login ended at once");
}

/// A name the service accepts but that cannot be one folder (`.`, `..`, empty) never gets
/// the storage root (or anything) as its home; an ordinary name gets `/{user}`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn names_that_are_no_folder_never_get_the_storage_root() {
    let (url, _service) = start_service().await;
    let srv = TestServer::start_with(&http_chain(&url, "")).await;
    std::fs::create_dir_all(&srv.files).unwrap();
    std::fs::write(srv.files.join("root-secret.txt"), b"s").unwrap();
    for name in [".", "..", ""] {
        let answer = srv.https_as(name, "any-pass-1").get("/api/v1/files").await;
        assert_eq!(answer.status(), StatusCode::UNAUTHORIZED, "`{name}`");
    }
    let fine = srv.https_as("fine", "any-pass-1").get("/api/v1/files").await;
    assert_eq!(fine.status(), StatusCode::OK);
    let listing = fine.text().await.unwrap();
    assert!(!listing.contains("root-secret"), "{listing}");
    assert!(srv.files.join("fine").is_dir());
}

/// An answer without a length is counted as it arrives and refused past 64 KiB, long before
/// the service timeout (reading it whole first would take until the timeout and all memory).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endless_chunked_answer_is_cut_at_64_kib() {
    let (url, _service) = start_service().await;
    let mut srv = TestServer::start_with(&http_chain(&url, "timeout = \"60s\"\n")).await;
    let answer = srv.https_as("flood", "whatever-1").get("/api/v1/files").await;
    assert_eq!(answer.status(), StatusCode::SERVICE_UNAVAILABLE);
    let failed = srv.expect_event(|e| e.event == "auth.backend_error").await;
    assert!(failed.reason.as_deref().is_some_and(|r| r.contains("larger than 64 KiB")), "{failed:?}");
}
