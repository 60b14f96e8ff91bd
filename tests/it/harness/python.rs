//! The Python clients (tests/clients/*.py, inline scripts) run with the interpreter that
//! tests/run.sh prepares (`FERRY_TEST_PYTHON`: a venv with paramiko, moto, boto3, schemathesis).

use std::ffi::OsStr;
use std::path::PathBuf;
use std::process::Output;

use super::{ok, run};

/// The test interpreter: `FERRY_TEST_PYTHON`, else `python3` from `PATH`.
pub fn python() -> String {
    std::env::var("FERRY_TEST_PYTHON").unwrap_or_else(|_| "python3".to_string())
}

/// A program installed beside the test interpreter (moto_server, schemathesis, ssh-audit).
pub fn python_tool(name: &str) -> PathBuf {
    PathBuf::from(python()).with_file_name(name)
}

/// One run of a Python client: a script from tests/clients/ or inline source, with arguments;
/// run to the end it reads no standard input (`command` gives the rest of `Command`).
pub struct Python {
    cmd: tokio::process::Command,
}

impl Python {
    /// `tests/clients/<script>`.
    pub fn client(script: &str) -> Self {
        let mut cmd = tokio::process::Command::new(python());
        cmd.arg(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/clients").join(script));
        Self { cmd }
    }

    /// Inline source (`python -c`); its arguments are `sys.argv[1:]`.
    pub fn inline(source: &str) -> Self {
        let mut cmd = tokio::process::Command::new(python());
        cmd.arg("-c").arg(source);
        Self { cmd }
    }

    pub fn arg(mut self, arg: impl AsRef<OsStr>) -> Self {
        self.cmd.arg(arg);
        self
    }

    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.cmd.args(args);
        self
    }

    /// The command, for a client that is spawned and driven (pipes) rather than run to the end.
    pub fn command(self) -> tokio::process::Command {
        self.cmd
    }

    /// Runs it to the end (at most `timeout_secs`), success or not.
    pub async fn output(self, timeout_secs: u64) -> Output {
        run(self.cmd, timeout_secs).await
    }

    /// Runs it to the end and returns its standard output; it must succeed.
    pub async fn stdout(self, timeout_secs: u64) -> String {
        ok(&self.output(timeout_secs).await)
    }

    /// Runs it to the end and parses the one JSON document it prints; it must succeed.
    pub async fn json(self, timeout_secs: u64) -> serde_json::Value {
        let out = self.stdout(timeout_secs).await;
        serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("client output {out}: {e}"))
    }
}
