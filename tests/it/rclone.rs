//! rclone, a client many operators script with, over SFTP and explicit FTPS.

use std::path::Path;

use crate::harness::{TestServer, User, ok, payload, run};

fn rclone(srv: &TestServer, password: &str, args: &[&str]) -> tokio::process::Command {
    let obscured = std::process::Command::new("rclone").args(["obscure", password]).output().unwrap();
    let obscured = String::from_utf8(obscured.stdout).unwrap().trim().to_string();
    let mut cmd = tokio::process::Command::new("rclone");
    cmd.env("RCLONE_CONFIG", "/dev/null")
        .env("RCLONE_CONFIG_S_TYPE", "sftp")
        .env("RCLONE_CONFIG_S_HOST", "127.0.0.1")
        .env("RCLONE_CONFIG_S_PORT", srv.addr.port().to_string())
        .env("RCLONE_CONFIG_S_USER", "rc")
        .env("RCLONE_CONFIG_S_PASS", &obscured)
        .env("RCLONE_CONFIG_S_SHELL_TYPE", "none")
        .env("RCLONE_CONFIG_F_TYPE", "ftp")
        .env("RCLONE_CONFIG_F_HOST", "127.0.0.1")
        .env("RCLONE_CONFIG_F_PORT", srv.ftp.port().to_string())
        .env("RCLONE_CONFIG_F_USER", "rc")
        .env("RCLONE_CONFIG_F_PASS", &obscured)
        .env("RCLONE_CONFIG_F_EXPLICIT_TLS", "true")
        .env("RCLONE_CONFIG_F_NO_CHECK_CERTIFICATE", "true")
        .args(args);
    cmd
}

fn tree(root: &Path) {
    std::fs::create_dir_all(root.join("a/b")).unwrap();
    std::fs::write(root.join("top.txt"), b"top").unwrap();
    std::fs::write(root.join("a/b/data.bin"), payload(3 << 20, 21)).unwrap();
    std::fs::write(root.join("a/ünï code.txt"), b"u").unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rclone_copies_and_checks_over_sftp_and_ftps() {
    let srv = TestServer::start().await;
    srv.add_user(User::with_password("rc", "rclone-pass-1")).await;
    let local = tempfile::tempdir().unwrap();
    let source = local.path().join("src");
    tree(&source);
    let src = source.to_str().unwrap();
    for (remote, folder) in [("S", "via-sftp"), ("F", "via-ftps")] {
        let target = format!("{remote}:{folder}");
        ok(&run(rclone(&srv, "rclone-pass-1", &["copy", src, &target]), 120).await);
        ok(&run(rclone(&srv, "rclone-pass-1", &["check", "--size-only", src, &target]), 120).await);
        let back = local.path().join(format!("back-{folder}"));
        ok(&run(rclone(&srv, "rclone-pass-1", &["copy", &target, back.to_str().unwrap()]), 120).await);
        let diff = std::process::Command::new("diff").arg("-r").arg(&source).arg(&back).output().unwrap();
        assert!(diff.status.success(), "{remote}: {}", String::from_utf8_lossy(&diff.stdout));
        let stored = std::process::Command::new("diff")
            .arg("-r")
            .arg(&source)
            .arg(srv.home("rc").join(folder))
            .output()
            .unwrap();
        assert!(stored.status.success(), "{remote} stored: {}", String::from_utf8_lossy(&stored.stdout));
        ok(&run(rclone(&srv, "rclone-pass-1", &["purge", &target]), 120).await);
        assert!(!srv.home("rc").join(folder).exists(), "{remote}: purge removed the tree");
    }
}
