//! Object-store emulators on loopback ports, one per test, each with a bucket ready: moto and
//! s3s-fs (S3; s3s-fs is fast enough for gigabytes), moto behind tests/clients/gcs_emulator.py
//! (GCS's XML API) and azurite (Azure Blob). A missing
//! emulator fails the test; tests/run.sh installs them. Stopped on drop; `stop`/`restart` make
//! a storage outage.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use tokio::process::{Child, Command};

use crate::harness::{Python, ReservedPort, python_tool};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    S3,
    /// s3s-fs: S3 over a local folder, in Rust.
    S3Fs,
    Gcs,
    Azure,
}

pub struct Emulator {
    kind: Kind,
    port: u16,
    bucket: String,
    child: Option<Child>,
    /// Holds the GCS service-account file.
    dir: tempfile::TempDir,
    /// Held while the emulator lives, restarts included (each binds with SO_REUSEADDR).
    _reserved: ReservedPort,
}

/// azurite's well-known development account key (public, documented by Microsoft).
const AZURITE_KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

fn venv_bin(name: &str) -> PathBuf {
    let bin = python_tool(name);
    assert!(bin.exists(), "{} missing: tests/run.sh installs it next to FERRY_TEST_PYTHON", bin.display());
    bin
}

impl Emulator {
    pub async fn start(kind: Kind, bucket: &str) -> Self {
        let reserved = ReservedPort::new();
        let port = reserved.port();
        let mut emulator = Self {
            kind,
            port,
            bucket: bucket.into(),
            child: None,
            dir: tempfile::tempdir().unwrap(),
            _reserved: reserved,
        };
        emulator.restart().await;
        emulator
    }

    /// Stops the emulator (TERM, so azurite saves its blob index first): every request fails
    /// until `restart`.
    pub async fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            if let Some(pid) = child.id() {
                let _ = Command::new("kill").args(["-TERM", &pid.to_string()]).status().await;
            }
            if tokio::time::timeout(Duration::from_secs(10), child.wait()).await.is_err() {
                let _ = child.kill().await;
            }
        }
    }

    /// Starts the emulator on the same port with the bucket (azurite keeps its blobs on disk; the
    /// moto-based ones start empty).
    pub async fn restart(&mut self) {
        self.stop().await;
        let port = self.port.to_string();
        let mut cmd = match self.kind {
            Kind::S3 => {
                let mut cmd = Command::new(venv_bin("moto_server"));
                cmd.args(["-H", "127.0.0.1", "-p", &port]);
                cmd
            }
            Kind::S3Fs => {
                let bin =
                    std::env::var("FERRY_TEST_S3S").expect("FERRY_TEST_S3S: tests/run.sh installs s3s-fs");
                let root = self.dir.path().join("s3s");
                std::fs::create_dir_all(root.join(&self.bucket)).unwrap();
                let mut cmd = Command::new(bin);
                cmd.args([
                    "--host",
                    "127.0.0.1",
                    "--port",
                    &port,
                    "--access-key",
                    "test",
                    "--secret-key",
                    "test",
                ])
                .arg(root);
                cmd
            }
            Kind::Gcs => Python::client("gcs_emulator.py").args([&port, &self.bucket]).command(),
            Kind::Azure => {
                let bin = std::env::var("FERRY_TEST_AZURITE")
                    .expect("FERRY_TEST_AZURITE: tests/run.sh installs azurite");
                let mut cmd = Command::new(bin);
                // On disk, so that a stopped azurite comes back with its blobs (an outage, not a loss).
                cmd.args(["--blobHost", "127.0.0.1", "--blobPort", &port, "--location"])
                    .arg(self.dir.path().join("azurite"))
                    .args(["--skipApiVersionCheck", "--silent"]);
                cmd
            }
        };
        let child = cmd.stdout(Stdio::null()).stderr(Stdio::null()).kill_on_drop(true).spawn().unwrap();
        self.child = Some(child);
        // A Python or Node emulator can take long to start on a slow, busy machine.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(180);
        loop {
            assert!(tokio::time::Instant::now() < deadline, "{:?} emulator did not start", self.kind);
            tokio::time::sleep(Duration::from_millis(150)).await;
            if self.create_bucket().await {
                break;
            }
        }
    }

    /// One attempt at creating the bucket; false while the emulator is not up yet.
    async fn create_bucket(&self) -> bool {
        let (bucket, port) = (&self.bucket, self.port);
        match self.kind {
            Kind::S3 | Kind::Gcs => {
                use tokio::io::{AsyncReadExt, AsyncWriteExt};
                let Ok(mut stream) = tokio::net::TcpStream::connect(("127.0.0.1", port)).await else {
                    return false;
                };
                let request = format!(
                    "PUT /{bucket} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: Bearer emulator\r\n\
                     Content-Length: 0\r\nConnection: close\r\n\r\n"
                );
                if stream.write_all(request.as_bytes()).await.is_err() {
                    return false;
                }
                let mut reply = String::new();
                let _ = stream.read_to_string(&mut reply).await;
                // The GCS emulator creates its bucket itself, so a second PUT may be a conflict.
                reply.starts_with("HTTP/1.1 200") || reply.starts_with("HTTP/1.1 409")
            }
            // The bucket is a folder made before the start; wait for the port.
            Kind::S3Fs => tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_ok(),
            Kind::Azure => {
                let script = format!(
                    "from azure.storage.blob import BlobServiceClient\n\
                     c = 'DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey={AZURITE_KEY};BlobEndpoint={}/devstoreaccount1;'\n\
                     from azure.core.exceptions import ResourceExistsError\n\
                     try: BlobServiceClient.from_connection_string(c).create_container('{bucket}')\n\
                     except ResourceExistsError: pass\n",
                    self.endpoint()
                );
                Python::inline(&script).command().output().await.unwrap().status.success()
            }
        }
    }

    /// The emulator's own folder (s3s-fs keeps its objects under `s3s/BUCKET/KEY`).
    pub fn dir(&self) -> &std::path::Path {
        self.dir.path()
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// A `[storage]` section for this emulator with homes under `prefix`.
    pub fn config(&self, prefix: &str) -> String {
        self.config_via(prefix, &self.endpoint())
    }

    /// The same, reaching the emulator through `endpoint` (a `Front`).
    pub fn config_via(&self, prefix: &str, endpoint: &str) -> String {
        let bucket = &self.bucket;
        let common = format!(
            "[storage]\nbucket = \"{bucket}\"\nprefix = \"{prefix}\"\npart_size = \"5MiB\"\n\
             max_retries = 2\nretry_timeout = \"3s\"\n"
        );
        match self.kind {
            Kind::S3 | Kind::S3Fs => format!(
                "{common}backend = \"s3\"\nendpoint = \"{endpoint}\"\nregion = \"us-east-1\"\nallow_http = true\n\
                 path_style = true\naccess_key_id = \"test\"\nsecret_access_key = \"test\"\n"
            ),
            Kind::Gcs => {
                // `disable_oauth`: object_store sends an empty bearer token instead of asking Google.
                let account = self.dir.path().join("service-account.json");
                std::fs::write(
                    &account,
                    r#"{"disable_oauth": true, "client_email": "", "private_key": "", "private_key_id": ""}"#,
                )
                .unwrap();
                format!(
                    "{common}backend = \"gcs\"\nendpoint = \"{endpoint}\"\nservice_account_file = {:?}\n",
                    account.display().to_string()
                )
            }
            Kind::Azure => format!(
                "{common}backend = \"azure\"\naccount = \"devstoreaccount1\"\nendpoint = \"{endpoint}/devstoreaccount1\"\n\
                 allow_http = true\nsecret_access_key = \"{AZURITE_KEY}\"\n"
            ),
        }
    }

    /// The backend itself, for storage-level tests.
    pub fn storage(&self, prefix: &str) -> std::sync::Arc<dyn ferry::storage::Storage> {
        let table: toml::Table = self.config(prefix).parse().unwrap();
        let config = ferry::config::Config::from_table(table, Vec::new()).unwrap();
        ferry::storage::open("storage", &config.storage).unwrap()
    }
}

/// What a `Front` does to the store's long requests (multipart completions and copies).
#[derive(Debug, Clone, Copy)]
pub enum Stall {
    /// Forwards the request, then holds the reply this long: a store assembling a large object.
    Reply(Duration),
    /// Forwards the request and never answers: the reply is lost, the store did the work.
    LoseReply,
}

/// An HTTP front on a loopback port that forwards everything to an emulator and stalls the long
/// requests as `Stall` says, counting those that reached the store. Stopped on drop.
pub struct Front {
    pub endpoint: String,
    completions: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    copies: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

#[derive(Clone)]
struct FrontState {
    upstream: String,
    stall: Stall,
    client: reqwest::Client,
    completions: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    copies: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl Front {
    pub async fn start(emulator: &Emulator, stall: Stall) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let state = FrontState {
            upstream: emulator.endpoint(),
            stall,
            client: reqwest::Client::new(),
            completions: Default::default(),
            copies: Default::default(),
        };
        let (completions, copies) = (state.completions.clone(), state.copies.clone());
        let app = axum::Router::new().fallback(forward).with_state(state);
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self { endpoint, completions, copies, task }
    }

    /// CompleteMultipartUpload requests that reached the store.
    pub fn completions(&self) -> usize {
        self.completions.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// CopyObject requests that reached the store.
    pub fn copies(&self) -> usize {
        self.copies.load(std::sync::atomic::Ordering::SeqCst)
    }
}

impl Drop for Front {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn forward(
    axum::extract::State(front): axum::extract::State<FrontState>,
    request: axum::extract::Request,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    use std::sync::atomic::Ordering;
    let (parts, body) = request.into_parts();
    let Ok(body) = axum::body::to_bytes(body, 256 << 20).await else {
        return reqwest::StatusCode::BAD_REQUEST.into_response();
    };
    let query = parts.uri.query().unwrap_or("");
    let completion = parts.method == reqwest::Method::POST && query.contains("uploadId=");
    let copy = parts.headers.contains_key("x-amz-copy-source");
    let url = format!("{}{}", front.upstream, parts.uri.path_and_query().map_or("/", |p| p.as_str()));
    let mut headers = parts.headers.clone();
    for hop in ["host", "content-length", "connection", "transfer-encoding"] {
        headers.remove(hop);
    }
    let reply = front.client.request(parts.method, url).headers(headers).body(body).send().await;
    let Ok(reply) = reply else { return reqwest::StatusCode::BAD_GATEWAY.into_response() };
    let status = reply.status();
    // Content-Length stays: a HEAD's tells the object's size.
    let mut headers = reply.headers().clone();
    for hop in ["connection", "transfer-encoding"] {
        headers.remove(hop);
    }
    let Ok(bytes) = reply.bytes().await else { return reqwest::StatusCode::BAD_GATEWAY.into_response() };
    if completion || copy {
        (if completion { &front.completions } else { &front.copies }).fetch_add(1, Ordering::SeqCst);
        match front.stall {
            Stall::Reply(delay) => tokio::time::sleep(delay).await,
            Stall::LoseReply => std::future::pending::<()>().await,
        }
    }
    (status, headers, bytes).into_response()
}
