//! A throwaway PostgreSQL cluster for one test: `initdb` into a temp folder (as the `postgres`
//! user when the tests run as root, since PostgreSQL refuses root), listening on a free
//! loopback port with password (SCRAM) logins only. Stopped when dropped.

use std::path::{Path, PathBuf};
use std::process::Command;

pub const USER: &str = "ferry";
pub const PASSWORD: &str = "pg-test-secret-1";

pub struct Postgres {
    dir: tempfile::TempDir,
    bin: PathBuf,
    /// The server options `pg_ctl start` passes.
    options: String,
    pub port: u16,
}

/// The server binaries: `FERRY_TEST_PG_BIN`, else the newest `/usr/lib/postgresql/*/bin`
/// (Debian's `postgresql` package), else `PATH`.
fn bin_dir() -> PathBuf {
    if let Ok(dir) = std::env::var("FERRY_TEST_PG_BIN") {
        return PathBuf::from(dir);
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| Some((e.file_name().to_str()?.parse().ok()?, e.path().join("bin"))))
        .filter(|(_, bin): &(u32, PathBuf)| bin.join("initdb").exists())
        .collect();
    versions.sort();
    versions.pop().map(|(_, bin)| bin).expect("PostgreSQL server binaries (apt-get install postgresql)")
}

fn is_root() -> bool {
    let out = Command::new("id").arg("-u").output().expect("id runs");
    String::from_utf8_lossy(&out.stdout).trim() == "0"
}

/// `program` from `bin` with `args`, as `postgres` when root.
fn run_as_owner(bin: &Path, program: &str, args: &[&str]) {
    let exe = bin.join(program);
    let out = if is_root() {
        Command::new("runuser").args(["-u", "postgres", "--"]).arg(&exe).args(args).output()
    } else {
        Command::new(&exe).args(args).output()
    }
    .unwrap_or_else(|e| panic!("{} runs: {e}", exe.display()));
    assert!(
        out.status.success(),
        "{program} {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Postgres {
    pub fn start() -> Self {
        let bin = bin_dir();
        let dir = tempfile::tempdir().expect("tempdir");
        let data = dir.path().join("data");
        let pwfile = dir.path().join("pw");
        std::fs::write(&pwfile, PASSWORD).unwrap();
        if is_root() {
            let status = Command::new("chown").args(["-R", "postgres:"]).arg(dir.path()).status().unwrap();
            assert!(status.success(), "chown to postgres");
        }
        let path = |p: &Path| p.to_str().unwrap().to_string();
        run_as_owner(
            &bin,
            "initdb",
            &[
                "-D",
                &path(&data),
                "-U",
                USER,
                "--pwfile",
                &path(&pwfile),
                "--auth",
                "scram-sha-256",
                "-E",
                "UTF8",
                "--locale",
                "C.UTF-8",
                "--no-sync",
            ],
        );
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let options = format!(
            "-c listen_addresses=127.0.0.1 -p {port} -k {} -c fsync=off -c max_connections=200",
            path(dir.path())
        );
        let pg = Self { dir, bin, options, port };
        pg.start_again();
        pg
    }

    /// Starts the initialised server (again, after `stop`).
    pub fn start_again(&self) {
        let log = self.dir.path().join("log").to_str().unwrap().to_string();
        run_as_owner(
            &self.bin,
            "pg_ctl",
            &["-D", &self.data(), "-o", &self.options, "-l", &log, "-w", "-t", "120", "start"],
        );
    }

    /// A URL for database `db` without the password (it comes from `password_file`).
    pub fn url(&self, db: &str) -> String {
        format!("postgres://{USER}@127.0.0.1:{}/{db}?sslmode=disable", self.port)
    }

    /// A file holding the password, for `[state] password_file`.
    pub fn password_file(&self) -> PathBuf {
        let file = self.dir.path().join("password");
        std::fs::write(&file, format!("{PASSWORD}\n")).unwrap();
        file
    }

    /// Creates database `name`.
    pub fn create_db(&self, name: &str) {
        let out = Command::new(self.bin.join("createdb"))
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string(), "-U", USER, name])
            .env("PGPASSWORD", PASSWORD)
            .output()
            .expect("createdb runs");
        assert!(out.status.success(), "createdb {name}: {}", String::from_utf8_lossy(&out.stderr));
    }

    /// `[state]` for database `db`.
    pub fn state_toml(&self, db: &str) -> String {
        format!("[state]\nurl = \"{}\"\npassword_file = {:?}\n", self.url(db), self.password_file())
    }

    fn data(&self) -> String {
        self.dir.path().join("data").to_str().unwrap().to_string()
    }

    /// Stops the server (its connections fail until `restart`).
    pub fn stop(&self) {
        run_as_owner(&self.bin, "pg_ctl", &["-D", &self.data(), "-m", "fast", "-w", "stop"]);
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let data = self.data();
        let exe = self.bin.join("pg_ctl");
        let args = ["-D", data.as_str(), "-m", "immediate", "-w", "stop"];
        let _ = if is_root() {
            Command::new("runuser").args(["-u", "postgres", "--"]).arg(&exe).args(args).output()
        } else {
            Command::new(&exe).args(args).output()
        };
    }
}
