//! `TestServer`: a real ferry on 127.0.0.1:0 over a temp directory (files + SQLite), with an
//! audit subscription and helpers that run real clients against it. Dropping it shuts it down.
//! The clients themselves live beside it: `https` (requests as a user), `python` (the scripts in
//! tests/clients/), `ssh` (russh), `ftps` (suppaftp), `tls`, and `ports` for servers started
//! outside the process.

mod ftps;
mod https;
mod ports;
mod python;
mod ssh;
mod tls;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::Arc;
use std::time::Duration;

use ferry::admin::{Admin, UserSpec, parse_mount, parse_rule};
use ferry::audit::{Audit, AuditRecord};
use ferry::config::Config;
use ferry::server::{self, Running};
use ferry::types::Secret;
use sha2::{Digest, Sha256};
use tempfile::TempDir;
use tokio::sync::{broadcast, watch};

pub use https::HttpsUser;
pub use ports::ReservedPort;
pub use python::{Python, python_tool};
pub use ssh::{SshConnection, open_sftp};
pub use tls::tls_client_config;

pub struct TestServer {
    pub dir: TempDir,
    pub addr: SocketAddr,
    /// FTP with AUTH TLS, and implicit FTPS.
    pub ftp: SocketAddr,
    pub ftps: SocketAddr,
    pub https: SocketAddr,
    /// The plain-HTTP listener for a TLS-terminating balancer, when `[http]` enables it.
    pub http: Option<SocketAddr>,
    /// The server's self-signed certificate (PEM), for clients that verify it.
    pub cert: PathBuf,
    pub admin: Admin,
    /// The storage root on disk.
    pub files: PathBuf,
    /// Client private key (ed25519) authorized for users added `with_key`.
    pub key: PathBuf,
    pub events: broadcast::Receiver<Arc<AuditRecord>>,
    /// The server's audit trail (to emit records directly in sink tests).
    pub audit: Audit,
    /// The ops listener (/metrics, /healthz, /readyz).
    pub ops: SocketAddr,
    /// The data directory (SQLite, audit trail, keys).
    pub data: PathBuf,
    shutdown: watch::Sender<bool>,
    running: Option<Running>,
}

pub struct User<'a> {
    pub name: &'a str,
    pub password: Option<&'a str>,
    pub key: bool,
    pub rules: &'a [&'a str],
    /// `PATH=STORAGE[:PREFIX]`, as `ferry user add --mount` takes them.
    pub mounts: &'a [&'a str],
    pub upload_mode: Option<&'a str>,
    /// May use the admin API.
    pub admin: bool,
}

impl<'a> User<'a> {
    pub fn with_key(name: &'a str) -> Self {
        Self { name, password: None, key: true, rules: &[], mounts: &[], upload_mode: None, admin: false }
    }

    pub fn with_password(name: &'a str, password: &'a str) -> Self {
        Self {
            name,
            password: Some(password),
            key: false,
            rules: &[],
            mounts: &[],
            upload_mode: None,
            admin: false,
        }
    }
}

impl TestServer {
    pub async fn start() -> Self {
        Self::start_with("").await
    }

    /// Starts with extra TOML appended to the test defaults.
    pub async fn start_with(extra: &str) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let data = dir.path().join("data");
        let toml = format!("data_dir = {data:?}\n{extra}\n", data = data.display().to_string(),);
        let mut table: toml::Table = toml.parse().expect("test config parses");
        let defaults: toml::Table = "[sftp]\nbind = \"127.0.0.1:0\"\n[auth]\nrejection_delay = \"50ms\"\n\
             [audit]\nstdout = false\n[server]\nshutdown_grace = \"5s\"\n\
             [ftp]\nbind = \"127.0.0.1:0\"\npassive_ports = \"20000-29999\"\n[ftps]\nbind = \"127.0.0.1:0\"\n\
             [https]\nbind = \"127.0.0.1:0\"\n[ops]\nbind = \"127.0.0.1:0\"\n"
            .parse()
            .expect("defaults parse");
        for (section, values) in defaults {
            let entry = table.entry(section).or_insert_with(|| toml::Value::Table(toml::Table::new()));
            if let (toml::Value::Table(target), toml::Value::Table(values)) = (entry, values) {
                for (k, v) in values {
                    target.entry(k).or_insert(v);
                }
            }
        }
        let config = Config::from_table(table, Vec::new()).expect("test config is valid");
        let files =
            config.storage.local_root().map_or_else(|| data.join("files"), std::path::Path::to_path_buf);
        let key = dir.path().join("id_ed25519");
        let status = std::process::Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-C", "test", "-f"])
            .arg(&key)
            .status()
            .expect("ssh-keygen runs (apt-get install openssh-client)");
        assert!(status.success());
        let (shutdown, rx) = watch::channel(false);
        let running = server::start(config, None, rx).await.expect("server starts");
        let addr = running.sftp_addr.expect("sftp enabled");
        let ftp = running.ftp_addr.expect("ftp enabled");
        let ftps = running.ftps_addr.expect("ftps enabled");
        let https = running.https_addr.expect("https enabled");
        let http = running.http_addr;
        let ops = running.ops_addr.expect("ops enabled");
        let cert = data.join("tls/cert.pem");
        let audit = running.audit.clone();
        let events = audit.subscribe();
        let admin = Admin::new(running.state.clone(), audit.clone());
        Self {
            dir,
            addr,
            ftp,
            ftps,
            https,
            http,
            cert,
            admin,
            files,
            key,
            events,
            audit,
            ops,
            data,
            shutdown,
            running: Some(running),
        }
    }

    /// A reqwest client that trusts this server's certificate (HTTPS tests).
    pub fn https_client(&self) -> reqwest::Client {
        let pem = std::fs::read(&self.cert).expect("server certificate");
        reqwest::Client::builder()
            .add_root_certificate(reqwest::Certificate::from_pem(&pem).expect("PEM certificate"))
            .build()
            .expect("client builds")
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    pub async fn add_user(&self, user: User<'_>) {
        let keys = if user.key {
            vec![std::fs::read_to_string(self.key.with_extension("pub")).expect("public key")]
        } else {
            Vec::new()
        };
        let spec = UserSpec {
            name: user.name.to_string(),
            password: user.password.map(|p| Secret::new(p.to_string())),
            home: None,
            keys,
            rules: user.rules.iter().map(|r| parse_rule(r).expect("valid rule")).collect(),
            mounts: user.mounts.iter().map(|m| parse_mount(m).expect("valid mount")).collect(),
            upload_mode: user.upload_mode.and_then(ferry::types::UploadMode::parse),
            admin: user.admin,
        };
        self.admin.create_user(spec).await.expect("user created");
    }

    /// The user's home folder on disk.
    pub fn home(&self, user: &str) -> PathBuf {
        self.files.join(user)
    }

    fn ssh_options(&self, port_flag: &str) -> Vec<String> {
        let mut args = vec![port_flag.to_string(), self.port().to_string()];
        for opt in [
            "IdentitiesOnly=yes",
            "StrictHostKeyChecking=no",
            "UserKnownHostsFile=/dev/null",
            "LogLevel=ERROR",
            "BatchMode=yes",
            "PasswordAuthentication=no",
            "KbdInteractiveAuthentication=no",
        ] {
            args.push("-o".into());
            args.push(opt.into());
        }
        args.push("-F".into());
        args.push("/dev/null".into());
        args.push("-i".into());
        args.push(self.key.display().to_string());
        args
    }

    /// Runs OpenSSH `sftp -b` with `batch` as `user` (key auth) in `cwd`.
    pub async fn sftp(&self, user: &str, cwd: &Path, batch: &str) -> Output {
        run(self.sftp_command(user, cwd, batch, &[]), 300).await
    }

    /// The `sftp -b` command with extra options (e.g. `-l` to limit its bandwidth), to spawn.
    pub fn sftp_command(
        &self,
        user: &str,
        cwd: &Path,
        batch: &str,
        extra: &[&str],
    ) -> tokio::process::Command {
        let batch_file = self.dir.path().join(format!("batch-{}", rand_suffix()));
        std::fs::write(&batch_file, batch).expect("batch file");
        let mut cmd = tokio::process::Command::new("sftp");
        cmd.args(self.ssh_options("-P"))
            .args(extra)
            .arg("-b")
            .arg(&batch_file)
            .arg(format!("{user}@127.0.0.1"))
            .current_dir(cwd);
        cmd
    }

    /// Runs OpenSSH `scp` with extra args (use `{remote}` as `user@127.0.0.1`).
    pub async fn scp(&self, cwd: &Path, args: &[String]) -> Output {
        let mut cmd = tokio::process::Command::new("scp");
        cmd.args(self.ssh_options("-P")).args(args).current_dir(cwd);
        run(cmd, 300).await
    }

    pub fn ssh_args(&self) -> Vec<String> {
        self.ssh_options("-p")
    }

    /// Waits for the first audit record matching `pred` (up to 5 s).
    pub async fn expect_event(&mut self, pred: impl Fn(&AuditRecord) -> bool) -> Arc<AuditRecord> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        loop {
            let record = tokio::time::timeout_at(deadline, self.events.recv())
                .await
                .expect("expected audit event did not arrive")
                .expect("audit channel open");
            if pred(&record) {
                return record;
            }
        }
    }

    pub async fn stop(mut self) {
        let _ = self.shutdown.send(true);
        if let Some(running) = self.running.take() {
            tokio::time::timeout(Duration::from_secs(15), running.wait())
                .await
                .expect("server stops within its grace period")
                .expect("server stops cleanly");
        }
    }

    pub fn signal_shutdown(&self) {
        let _ = self.shutdown.send(true);
    }

    pub fn take_running(&mut self) -> Running {
        self.running.take().expect("running")
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        let _ = self.shutdown.send(true);
    }
}

pub async fn run(mut cmd: tokio::process::Command, timeout_secs: u64) -> Output {
    cmd.kill_on_drop(true).stdin(std::process::Stdio::null());
    let child = cmd.output();
    tokio::time::timeout(Duration::from_secs(timeout_secs), child)
        .await
        .expect("client finished in time")
        .expect("client could be started")
}

pub fn rand_suffix() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// Deterministic pseudo-random bytes (so failures are reproducible).
pub fn payload(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407) | 1;
    let mut out = Vec::with_capacity(len);
    while out.len() < len {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        out.extend_from_slice(&state.to_le_bytes());
    }
    out.truncate(len);
    out
}

pub fn sha256(bytes: &[u8]) -> String {
    format!("{:x}", Sha256::digest(bytes))
}

pub fn sha256_file(path: &Path) -> String {
    sha256(&std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())))
}

pub fn ok(output: &Output) -> String {
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "client failed ({}):\nstdout:\n{stdout}\nstderr:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

pub fn failed(output: &Output) -> String {
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(
        !output.status.success(),
        "client should have failed:\n{}",
        String::from_utf8_lossy(&output.stdout)
    );
    stderr
}
