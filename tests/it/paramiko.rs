//! Python paramiko (password auth, plain SFTP v3 rename, symlinks, setstat).

use crate::harness::{Python, TestServer, User};

async fn paramiko(args: &[String]) -> serde_json::Value {
    Python::client("paramiko_client.py").args(args).json(120).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paramiko_session_behaves_like_openssh_sftp_server() {
    let srv = TestServer::start().await;
    srv.add_user(User::with_password("pat", "correct horse battery")).await;
    let work = tempfile::tempdir().unwrap();
    let v = paramiko(&[
        srv.port().to_string(),
        "pat".into(),
        "correct horse battery".into(),
        work.path().display().to_string(),
    ])
    .await;
    assert_eq!(v["roundtrip"], true, "{v}");
    assert_eq!(v["stat_size"], 3 * 1024 * 1024 + 17);
    assert_eq!(v["listdir"], serde_json::json!(["one"]));
    assert_eq!(v["rename_over_existing"], "error", "SFTP v3 rename must not replace");
    assert_eq!(v["after_posix_rename"], "x");
    // `../../etc/passwd` from `/` is `/etc/passwd` inside the jail, which does not exist.
    assert_eq!(v["escape"], "notfound");
    assert_eq!(v["realpath_above_root"], "/");
    assert_eq!(v["cwd_after_cd_up"], "/");
    assert_eq!(v["realpath_up_and_down"], "/t.txt");
    assert_eq!(v["readlink"], "t.txt", "what the link says, as OpenSSH answers");
    assert_eq!(v["readlink_absolute"], "/t.txt");
    assert_eq!(v["read_through_link"], "x");
    // A relative target climbing above the jail is refused when the link is made.
    assert_eq!(v["bad_symlink"], "error");
    assert_eq!(v["mtime"], 1_500_000_000);
    assert_eq!(v["mode"], "0o640");
    assert_eq!(v["final_listing"], serde_json::json!(["p.bin"]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_password_unknown_user_and_empty_password_look_alike() {
    let mut srv = TestServer::start().await;
    srv.add_user(User::with_password("pat", "right-password")).await;
    let port = srv.port().to_string();
    let login =
        |user: &str, password: &str| paramiko_login(port.clone(), user.to_string(), password.to_string());
    assert_eq!(login("pat", "right-password").await, "ok");
    assert_eq!(login("pat", "wrong-password").await, "denied");
    let record = srv.expect_event(|e| e.event == "login.failed").await;
    assert_eq!(record.reason.as_deref(), Some("password: wrong password"));
    assert_eq!(login("nobody", "right-password").await, "denied");
    let record = srv.expect_event(|e| e.event == "login.failed").await;
    assert_eq!(record.reason.as_deref(), Some("password: unknown user"));
    assert_eq!(record.user.as_deref(), Some("nobody"));
    assert_eq!(login("pat", "").await, "denied");
    srv.admin.set_enabled("pat", false).await.unwrap();
    assert_eq!(login("pat", "right-password").await, "denied");
    let record = srv
        .expect_event(|e| {
            e.event == "login.failed" && e.reason.as_deref() != Some("password: empty password")
        })
        .await;
    assert_eq!(record.reason.as_deref(), Some("password: account disabled"));
    srv.admin.set_enabled("pat", true).await.unwrap();
    assert_eq!(login("pat", "right-password").await, "ok");
}

async fn paramiko_login(port: String, user: String, password: String) -> String {
    let v = paramiko(&["login".into(), port, user, password]).await;
    v["login"].as_str().unwrap_or_default().to_string()
}
