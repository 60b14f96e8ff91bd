//! What counts as a login over HTTPS. Basic sends the password with every request, so each
//! request is a login and a session of its own; a bearer token or the browser's session cookie
//! continues the login that issued it, so its requests add no `login.succeeded` and no session.
//! The server runs as its own `ferry` process, so its metrics are its own and can be counted
//! exactly (in the test binary they are shared by every test).

use std::net::SocketAddr;
use std::process::Stdio;
use std::time::Duration;

use reqwest::{RequestBuilder, StatusCode, header};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Child;
use tokio::sync::mpsc;

use crate::ssh_limits::sample;

const USER: &str = "alice";
const PASSWORD: &str = "alice-pass-1";
/// Requests sent with each credential.
const N: usize = 5;

struct Ferry {
    _child: Child,
    https: SocketAddr,
    ops: String,
    client: reqwest::Client,
    /// The audit records ferry writes to stdout, in order.
    records: mpsc::UnboundedReceiver<Value>,
    _dir: tempfile::TempDir,
}

/// Starts `ferry serve` with HTTPS and ops on loopback, audit records on stdout and `alice` as
/// the bootstrap user.
async fn start() -> Ferry {
    let dir = tempfile::tempdir().unwrap();
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_ferry"))
        .arg("serve")
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("FERRY_DATA_DIR", dir.path())
        .env("FERRY_SFTP__BIND", "127.0.0.1:0")
        .env("FERRY_FTP__ENABLED", "false")
        .env("FERRY_FTPS__ENABLED", "false")
        .env("FERRY_HTTPS__BIND", "127.0.0.1:0")
        .env("FERRY_OPS__BIND", "127.0.0.1:0")
        .env("FERRY_AUTH__REJECTION_DELAY", "10ms")
        .env("FERRY_ADMIN_USER", USER)
        .env("FERRY_ADMIN_PASSWORD", PASSWORD)
        .env("FERRY_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("the ferry binary starts");
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let (mut https, mut ops) = (None, None);
    let addr =
        |line: &str| line.split("addr=").nth(1).and_then(|a| a.split_whitespace().next()).map(String::from);
    tokio::time::timeout(Duration::from_secs(60), async {
        while https.is_none() || ops.is_none() {
            let line = lines.next_line().await.unwrap().expect("ferry still running");
            if line.contains("HTTPS listening") {
                https = addr(&line);
            } else if line.contains("ops listening") {
                ops = addr(&line);
            }
        }
    })
    .await
    .expect("ferry listens");
    // Keep draining its log so it never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    let (tx, records) = mpsc::unbounded_channel();
    let mut stdout = BufReader::new(child.stdout.take().unwrap()).lines();
    tokio::spawn(async move {
        while let Ok(Some(line)) = stdout.next_line().await {
            if let Ok(record) = serde_json::from_str::<Value>(&line) {
                let _ = tx.send(record);
            }
        }
    });
    let https: SocketAddr = https.unwrap().parse().unwrap();
    let pem = std::fs::read(dir.path().join("tls/cert.pem")).expect("the generated certificate");
    let client = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&pem).unwrap())
        .resolve("localhost", https)
        .build()
        .unwrap();
    Ferry { _child: child, https, ops: ops.unwrap(), client, records, _dir: dir }
}

impl Ferry {
    fn get(&self, path: &str) -> RequestBuilder {
        self.client.get(format!("https://localhost:{}{path}", self.https.port()))
    }

    fn post(&self, path: &str) -> RequestBuilder {
        self.client.post(format!("https://localhost:{}{path}", self.https.port()))
    }

    async fn metric(&self, series: &str) -> f64 {
        let text = reqwest::get(format!("http://{}/metrics", self.ops)).await.unwrap().text().await.unwrap();
        sample(&text, series)
    }

    /// (HTTPS sessions opened, successful HTTPS password logins, successful token logins).
    async fn counts(&self) -> (f64, f64, f64) {
        let login = |method: &str| {
            format!(
                "ferry_logins_total{{backend=\"local\",method=\"{method}\",outcome=\"ok\",protocol=\"https\"}}"
            )
        };
        (
            self.metric("ferry_sessions_total{protocol=\"https\"}").await,
            self.metric(&login("password")).await,
            self.metric(&login("token")).await,
        )
    }

    /// Sends `N` requests for `/api/v1/me` and checks that each was served as alice.
    async fn me_n_times(&self, with: impl Fn(RequestBuilder) -> RequestBuilder) {
        for _ in 0..N {
            let response = with(self.get("/api/v1/me")).send().await.unwrap();
            assert_eq!(response.status(), StatusCode::OK);
            assert_eq!(response.json::<Value>().await.unwrap(), json!({"user": USER}));
        }
    }

    /// Every audit record up to the refused login of `marker` (records arrive in order, so
    /// that one comes after every record of the requests sent before it).
    async fn records_until_refused(&mut self, marker: &str) -> Vec<Value> {
        let refused = self.get("/api/v1/me").basic_auth(marker, Some("wrong")).send().await.unwrap();
        assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
        let mut seen = Vec::new();
        loop {
            let record = tokio::time::timeout(Duration::from_secs(60), self.records.recv())
                .await
                .expect("the marker's audit record arrives")
                .expect("ferry still running");
            if record["event"] == "login.failed" && record["user"] == marker {
                return seen;
            }
            seen.push(record);
        }
    }
}

fn logins(records: &[Value]) -> Vec<String> {
    records
        .iter()
        .filter(|r| r["event"] == "login.succeeded")
        .map(|r| r["reason"].as_str().unwrap_or_default().to_string())
        .collect()
}

/// N requests each with Basic, with a bearer token and with the browser cookie: Basic gives N
/// logins and N sessions; the token and the cookie give only the one login that issued them
/// (and the token, issued by a Basic request, its one session), however many requests use them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_basic_requests_are_logins_tokens_and_cookies_continue_theirs() {
    let mut ferry = start().await;
    assert_eq!(ferry.counts().await, (0.0, 0.0, 0.0));

    ferry.me_n_times(|r| r.basic_auth(USER, Some(PASSWORD))).await;
    assert_eq!(ferry.counts().await, (N as f64, N as f64, 0.0), "Basic: one login and session each");
    let basic = ferry.records_until_refused("marker-basic").await;
    assert_eq!(logins(&basic), vec!["password via local"; N]);

    let issued = ferry.post("/api/v1/auth/token").basic_auth(USER, Some(PASSWORD)).send().await.unwrap();
    assert_eq!(issued.status(), StatusCode::OK);
    let token = issued.json::<Value>().await.unwrap()["token"].as_str().unwrap().to_string();
    ferry.me_n_times(|r| r.bearer_auth(&token)).await;
    let expected = (N as f64 + 1.0, N as f64 + 1.0, 0.0);
    assert_eq!(ferry.counts().await, expected, "bearer token: only the Basic request that issued it");
    let bearer = ferry.records_until_refused("marker-bearer").await;
    assert_eq!(logins(&bearer), vec!["password via local"], "only the token's issue is a login");

    let login = ferry
        .post("/api/v1/auth/login")
        .json(&json!({"username": USER, "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), StatusCode::OK);
    let cookie = login
        .headers()
        .get_all(header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|c| c.starts_with("ferry_session="))
        .and_then(|c| c.split(';').next())
        .expect("a session cookie")
        .to_string();
    ferry.me_n_times(|r| r.header(header::COOKIE, &cookie)).await;
    // The browser login itself opens no file session.
    let expected = (N as f64 + 1.0, N as f64 + 2.0, 0.0);
    assert_eq!(ferry.counts().await, expected, "cookie: only the browser login");
    let browser = ferry.records_until_refused("marker-cookie").await;
    assert_eq!(logins(&browser), vec!["password via local"], "only the browser login is a login");
}
