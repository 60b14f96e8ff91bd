//! ssh-audit (https://github.com/jtesta/ssh-audit, installed by tests/run.sh) against the SSH
//! listener: the default algorithms must pass with no fail-level finding, and warn of nothing
//! but the lack of post-quantum protection in the classical key exchanges kept for old clients.

use crate::harness::{TestServer, python_tool, run};

fn ssh_audit() -> String {
    std::env::var("FERRY_TEST_SSH_AUDIT").unwrap_or_else(|_| {
        let beside = python_tool("ssh-audit");
        if beside.exists() { beside.display().to_string() } else { "ssh-audit".to_string() }
    })
}

/// Every finding at `level` ("fail" or "warn"), as "section algorithm: note".
async fn findings(srv: &TestServer, level: &str) -> (Vec<String>, serde_json::Value) {
    let mut cmd = tokio::process::Command::new(ssh_audit());
    cmd.args(["-j", "--skip-rate-test", "-p", &srv.port().to_string(), "127.0.0.1"]);
    let out = run(cmd, 120).await;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let report: serde_json::Value = serde_json::from_str(text.trim())
        .unwrap_or_else(|e| panic!("ssh-audit JSON ({e}): {text}\n{}", String::from_utf8_lossy(&out.stderr)));
    let mut found = Vec::new();
    for section in ["kex", "key", "enc", "mac"] {
        for item in report[section].as_array().into_iter().flatten() {
            for note in item["notes"][level].as_array().into_iter().flatten() {
                found.push(format!("{section} {}: {note}", item["algorithm"]));
            }
        }
    }
    (found, report)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn default_algorithms_pass_ssh_audit() {
    let srv = TestServer::start().await;
    let (fails, report) = findings(&srv, "fail").await;
    assert!(fails.is_empty(), "fail-level findings: {fails:#?}");
    // The one warning left is that classical key exchanges resist no quantum computer; they
    // stay for clients without mlkem768x25519-sha256 (OpenSSH before 9.9, paramiko, libssh2).
    let (warnings, _) = findings(&srv, "warn").await;
    // The encrypt-and-MAC MACs are offered last for libssh2 < 1.11 clients (Debian 12's curl).
    let encrypt_and_mac =
        |w: &str| w.starts_with("mac \"hmac-sha2-256\":") || w.starts_with("mac \"hmac-sha2-512\":");
    let others: Vec<_> =
        warnings.iter().filter(|w| !w.contains("post-quantum") && !encrypt_and_mac(w)).collect();
    assert!(others.is_empty(), "warnings: {others:#?}");
    let kex: Vec<&str> =
        report["kex"].as_array().unwrap().iter().filter_map(|k| k["algorithm"].as_str()).collect();
    assert!(kex.contains(&"mlkem768x25519-sha256") && kex.contains(&"curve25519-sha256"), "{kex:?}");
    let keys: Vec<&str> =
        report["key"].as_array().unwrap().iter().filter_map(|k| k["algorithm"].as_str()).collect();
    assert_eq!(keys.first(), Some(&"ssh-ed25519"), "{keys:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nist_curves_stay_available_by_configuration_and_ssh_audit_flags_them() {
    let srv = TestServer::start_with(
        "[sftp]\nkex = [\"curve25519-sha256\", \"ecdh-sha2-nistp256\"]\n\
         host_key_algorithms = [\"ssh-ed25519\", \"ecdsa-sha2-nistp256\"]\n",
    )
    .await;
    let (fails, _) = findings(&srv, "fail").await;
    assert!(fails.iter().any(|f| f.contains("ecdh-sha2-nistp256")), "{fails:#?}");
    assert!(fails.iter().any(|f| f.contains("ecdsa-sha2-nistp256")), "{fails:#?}");
}
