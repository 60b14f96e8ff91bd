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
    user_commands_against("", &[]).await;
}

/// The same commands against a PostgreSQL store: the CLI finds it through `FERRY_STATE__*`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_commands_work_against_postgres() {
    let pg = crate::postgres::Postgres::start();
    pg.create_db("cli");
    let password_file = pg.password_file();
    let env = [
        ("FERRY_STATE__URL", pg.url("cli")),
        ("FERRY_STATE__PASSWORD_FILE", password_file.to_str().unwrap().to_string()),
    ];
    user_commands_against(&pg.state_toml("cli"), &env).await;
}

async fn user_commands_against(state_toml: &str, env: &[(&str, String)]) {
    let srv = TestServer::start_with(state_toml).await;
    srv.add_user(User::with_key("seed")).await;
    let data = srv.dir.path().join("data");
    let run = |args: &[&str], stdin: Option<&str>| {
        let mut cmd = ferry();
        cmd.args(args)
            .env("FERRY_DATA_DIR", &data)
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
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

/// `ferry state export` then `ferry state import` into another, empty store: the same users
/// (password, SSH key, rules, admin flag) and API keys serve the same logins from it; an import
/// into a store that has users is refused; a second export equals the first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_export_and_import_round_trip_into_an_empty_store() {
    use axum::http::StatusCode;
    let srv = TestServer::start().await;
    srv.add_user(User {
        password: Some("moved-pass-1"),
        rules: &["/=list,download"],
        admin: true,
        ..User::with_key("mover")
    })
    .await;
    let created = srv
        .https_as("mover", "moved-pass-1")
        .post("/api/v1/keys")
        .json(&serde_json::json!({"name": "job"}))
        .await;
    assert_eq!(created.status(), StatusCode::CREATED);
    let api_key = created.json::<serde_json::Value>().await.unwrap()["key"].as_str().unwrap().to_string();
    std::fs::create_dir_all(srv.home("mover")).unwrap();
    std::fs::write(srv.home("mover").join("kept.txt"), b"kept").unwrap();

    let dir = tempfile::tempdir().unwrap();
    let config = |data: &std::path::Path, name: &str| {
        let file = dir.path().join(name);
        std::fs::write(
            &file,
            format!("data_dir = {:?}\n[audit]\nstdout = false\n", data.display().to_string()),
        )
        .unwrap();
        file
    };
    let (from, into) = (config(&srv.data, "from.toml"), config(&dir.path().join("new"), "into.toml"));
    let exported = dir.path().join("state.json");
    let out =
        ferry().args(["state", "export", "--out"]).arg(&exported).arg("-c").arg(&from).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = std::fs::read_to_string(&exported).unwrap();
    assert!(!text.contains("moved-pass-1") && !text.contains(&api_key), "secrets stay hashed");
    let out = ferry().args(["state", "import"]).arg(&exported).arg("-c").arg(&into).output().unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "imported 1 users",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let again = ferry().args(["state", "import"]).arg(&exported).arg("-c").arg(&into).output().unwrap();
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("import only into an empty one"));

    // The new store serves the same logins, over another server whose files are the same folder.
    let moved = TestServer::start_with(&format!(
        "[state]\nsqlite_path = {:?}\n[storage]\nroot = {:?}\n",
        dir.path().join("new/ferry.db").display().to_string(),
        srv.files.display().to_string()
    ))
    .await;
    let listed = moved.https_as("mover", "moved-pass-1").get("/api/v1/files/").await;
    assert_eq!(listed.status(), StatusCode::OK);
    assert!(listed.text().await.unwrap().contains("kept.txt"));
    let upload = moved.https_as("mover", "moved-pass-1").put("/api/v1/files/new.txt").body("x").await;
    assert_eq!(upload.status(), StatusCode::FORBIDDEN, "the rules came along");
    let by_key = moved
        .https_client()
        .get(format!("https://localhost:{}/api/v1/files/", moved.https.port()))
        .header("x-api-key", &api_key)
        .send()
        .await
        .unwrap();
    assert_eq!(by_key.status(), StatusCode::OK, "the API key came along");
    let admin = moved.https_as("mover", "moved-pass-1").get("/api/v1/admin/users").await;
    assert_eq!(admin.status(), StatusCode::OK, "the admin flag came along");
    let local = tempfile::tempdir().unwrap();
    // The SSH key: the first server's client key, authorized for `mover` in the moved store.
    let first_key = srv.key.display().to_string();
    let sftp = moved.sftp_command("mover", local.path(), "get kept.txt\n", &["-i", &first_key]);
    ok(&crate::harness::run(sftp, 120).await);
    assert_eq!(std::fs::read(local.path().join("kept.txt")).unwrap(), b"kept");

    let into_again = ferry().args(["state", "export"]).arg("-c").arg(&into).output().unwrap();
    let mut first: serde_json::Value = serde_json::from_str(&text).unwrap();
    let mut second: serde_json::Value = serde_json::from_slice(&into_again.stdout).unwrap();
    first["exported_at"] = serde_json::Value::Null;
    second["exported_at"] = serde_json::Value::Null;
    assert_eq!(first, second, "a second export is the first");
}
