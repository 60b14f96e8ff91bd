//! The `ferry` binary: config check, user commands against a running server's store.

use std::process::Command;

use crate::harness::{TestServer, User, ok};

fn ferry() -> Command {
    Command::new(env!("CARGO_BIN_EXE_ferry"))
}

#[test]
fn config_check_names_every_bad_key() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bad.toml");
    std::fs::write(
        &file,
        "colour = 1\n[sftp]\nbind = \":22x\"\nidle_timeout = \"5 fortnights\"\nciphers = [\"aes128-cbc\"]\n",
    )
    .unwrap();
    let out = ferry().args(["config", "check"]).arg(&file).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    for key in ["colour: unknown key", "sftp.bind:", "sftp.idle_timeout:", "sftp.ciphers:"] {
        assert!(text.contains(key), "{key} in {text}");
    }
    let good = dir.path().join("good.toml");
    std::fs::write(&good, "[sftp]\nbind = \"127.0.0.1:2222\"\nidle_timeout = \"30s\"\n").unwrap();
    let out = ferry().args(["config", "check"]).arg(&good).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
    let shipped = concat!(env!("CARGO_MANIFEST_DIR"), "/config/ferry.toml");
    let out = ferry().args(["config", "check", shipped]).output().unwrap();
    assert!(out.status.success(), "shipped config: {}", String::from_utf8_lossy(&out.stdout));
}

/// `ftp.max_login_attempts` still loads, as a deprecated alias of `auth.max_attempts`: the check
/// passes and warns, naming both keys; the shipped file warns of nothing.
#[test]
fn config_check_warns_of_the_deprecated_ftp_login_attempts() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("old.toml");
    std::fs::write(&file, "[ftp]\nmax_login_attempts = 2\n").unwrap();
    let out =
        ferry().args(["config", "check"]).arg(&file).env_remove("FERRY_AUTH__MAX_ATTEMPTS").output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    let warning = text.lines().find(|line| line.contains(": warning: ")).unwrap_or_default();
    assert!(warning.contains("ftp.max_login_attempts") && warning.contains("auth.max_attempts"), "{text}");
    assert!(text.lines().last().is_some_and(|line| line.ends_with(": ok")), "{text}");
    let shipped = concat!(env!("CARGO_MANIFEST_DIR"), "/config/ferry.toml");
    let out = ferry().args(["config", "check", shipped]).output().unwrap();
    assert!(
        !String::from_utf8_lossy(&out.stdout).contains("warning"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_commands_work_while_the_server_runs() {
    let srv = TestServer::start().await;
    srv.add_user(User::with_key("seed")).await;
    let data = srv.dir.path().join("data");
    let run = |args: &[&str], stdin: Option<&str>| {
        let mut cmd = ferry();
        cmd.args(args)
            .env("FERRY_DATA_DIR", &data)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        let mut child = cmd.spawn().unwrap();
        if let Some(input) = stdin {
            use std::io::Write;
            child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
        }
        child.wait_with_output().unwrap()
    };
    let pubkey = srv.key.with_extension("pub");
    let pubkey = pubkey.to_str().unwrap();
    ok(&run(&["user", "add", "carol", "--key", pubkey, "--rule", "/=list,download,upload"], None));
    let listed = ok(&run(&["user", "list"], None));
    assert!(listed.contains("carol") && listed.contains("seed"), "{listed}");
    let local = tempfile::tempdir().unwrap();
    std::fs::write(local.path().join("c.txt"), b"carol").unwrap();
    ok(&srv.sftp("carol", local.path(), "put c.txt\n").await);
    assert_eq!(std::fs::read(srv.home("carol").join("c.txt")).unwrap(), b"carol");
    let shown = ok(&run(&["user", "show", "carol"], None));
    let user: serde_json::Value = serde_json::from_str(&shown).unwrap();
    let fingerprint = user["keys"][0]["fingerprint"].as_str().unwrap().to_string();
    assert!(shown.find("password_hash").is_none(), "hashes never printed");
    ok(&run(&["user", "key-remove", "carol", &fingerprint], None));
    let out = srv.sftp("carol", local.path(), "pwd\n").await;
    assert!(!out.status.success(), "removed key no longer works");
    let out = run(&["user", "mounts", "carol", "--mount", "/in=nope:x"], None);
    assert!(String::from_utf8_lossy(&out.stderr).contains("no [storages.nope]"), "{out:?}");
    let out = run(&["user", "mounts", "carol", "--mount", "/in/../..=default:x"], None);
    assert!(String::from_utf8_lossy(&out.stderr).contains("invalid mount"), "{out:?}");
    ok(&run(&["user", "mounts", "carol", "--mount", "/in=default:shared/in"], None));
    let shown: serde_json::Value = serde_json::from_str(&ok(&run(&["user", "show", "carol"], None))).unwrap();
    assert_eq!(shown["mounts"][0]["prefix"], "shared/in");
    ok(&run(&["user", "passwd", "carol", "--password-stdin"], Some("new-password\n")));
    ok(&run(&["user", "remove", "carol"], None));
    let out = run(&["user", "show", "carol"], None);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not found"));

    // Each change is in the audit trail, on the CLI's own chain, and the chains verify.
    let trail = ok(&run(&["audit", "query", "--user", "carol", "--limit", "100"], None));
    let records: Vec<serde_json::Value> = trail.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let events: Vec<&str> =
        records.iter().filter_map(|r| r["event"].as_str()).filter(|e| e.starts_with("user.")).collect();
    assert_eq!(events.first(), Some(&"user.created"), "{trail}");
    assert_eq!(events.last(), Some(&"user.removed"), "{trail}");
    assert!(events.iter().filter(|e| **e == "user.updated").count() >= 3, "{trail}");
    let created = records.iter().find(|r| r["event"] == "user.created").unwrap();
    assert_eq!(created["protocol"], "cli");
    assert!(created["node"].as_str().unwrap().ends_with("-cli"), "{created}");
    // The server still runs, so its trail does not end with a checkpoint yet: `--running`
    // accepts that, and the heads it saved must still be in the trail. Without it, the open end
    // is reported; the CLI's chain, closed by each command, ends with one either way.
    let verified = ok(&run(&["audit", "verify", "--db", "--running"], None));
    assert!(
        verified.lines().count() >= 2 && verified.lines().all(|l| l.starts_with("ok node")),
        "{verified}"
    );
    assert!(verified.contains("named by the last checkpoint saved in the database"), "{verified}");
    let out = run(&["audit", "verify", "--db"], None);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains(": no final checkpoint: the trail ends at seq"), "{text}");
    assert!(text.lines().any(|l| l.starts_with("ok node") && l.contains("-cli:")), "{text}");
}
