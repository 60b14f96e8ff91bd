//! LDAP against a real OpenLDAP slapd on loopback (tests/fixtures/ldap): both bind modes,
//! StartTLS and LDAPS with a test CA, group rules, SSH keys from the directory, injection
//! attempts, empty passwords, and the directory going away and coming back.

use reqwest::StatusCode;

use crate::harness::{HttpsUser, ReservedPort, TestServer, User, ok, run};

struct Slapd {
    dir: tempfile::TempDir,
    port: u16,
    tls_port: u16,
    /// Held for slapd's whole life, restarts included (slapd binds with SO_REUSEADDR).
    _reserved: [ReservedPort; 2],
}

impl Slapd {
    async fn start() -> Self {
        let reserved = [ReservedPort::new(), ReservedPort::new()];
        let (port, tls_port) = (reserved[0].port(), reserved[1].port());
        let slapd = Self { dir: tempfile::tempdir().unwrap(), port, tls_port, _reserved: reserved };
        slapd.run().await;
        slapd
    }

    async fn run(&self) {
        let mut cmd = tokio::process::Command::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/ldap/start-slapd.sh"
        ));
        cmd.arg(self.dir.path().join("slapd")).arg(self.port.to_string()).arg(self.tls_port.to_string());
        let out = ok(&run(cmd, 60).await);
        assert!(out.contains("ready"), "{out} (tests/run.sh installs slapd and ldap-utils)");
    }

    async fn stop(&self) {
        if let Ok(pid) = std::fs::read_to_string(self.dir.path().join("slapd/slapd.pid")) {
            let _ = tokio::process::Command::new("kill").arg(pid.trim()).status().await;
        }
        // Wait for the port to close (the process may linger as a zombie for a moment).
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        panic!("slapd did not stop");
    }

    fn ca(&self) -> String {
        self.dir.path().join("slapd/ca.pem").display().to_string()
    }
}

impl Drop for Slapd {
    fn drop(&mut self) {
        if let Ok(pid) = std::fs::read_to_string(self.dir.path().join("slapd/slapd.pid")) {
            let _ = std::process::Command::new("kill").arg(pid.trim()).status();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn directory_users_log_in_with_group_rules_keys_and_fail_closed() {
    let slapd = Slapd::start().await;
    let mut srv = TestServer::start_with(&format!(
        "[auth]\nchain = [\"local\", \"ldap\"]\n[auth.ldap]\nurl = \"ldap://127.0.0.1:{port}\"\nstarttls = true\n\
         ca_file = \"{ca}\"\ntimeout = \"2s\"\nservice_dn = \"cn=ferry-svc,dc=ferry,dc=test\"\nservice_password = \"svc-secret\"\n\
         base_dn = \"ou=people,dc=ferry,dc=test\"\ngroup_base_dn = \"ou=groups,dc=ferry,dc=test\"\n\
         group_rules = [\"partners: /=*\", \"readonly: /=list,download\"]\ndefault_rules = [\"/=list\"]\n\
         group_homes = [\"partners: /partners/{{user}}\"]\ngroup_mounts = [\"partners: /drop=shared:drop/{{user}}\"]\n\
         [storages.shared]\nbackend = \"memory\"\n",
        port = slapd.port,
        ca = slapd.ca()
    ))
    .await;
    srv.add_user(User::with_password("loc", "loc-pass-1")).await;
    // Built before the closure, which must not borrow `srv` (expect_event needs it mutably).
    let (http, base) = (srv.https_client(), format!("https://localhost:{}", srv.https.port()));
    let put = |user: &'static str, password: &'static str| {
        HttpsUser::new(http.clone(), &base, user, password)
            .put(&format!("/api/v1/files/{user}.txt"))
            .body("hello")
            .send()
    };

    // Group rules: partners may write, readonly may only read.
    // Group homes and mounts: partners live under /partners and get a /drop mount.
    assert_eq!(put("alice", "alice-pass-1").await.status(), StatusCode::CREATED);
    assert_eq!(std::fs::read(srv.files.join("partners/alice/alice.txt")).unwrap(), b"hello");
    let alice = srv.https_as("alice", "alice-pass-1");
    let root: serde_json::Value = alice.get("/api/v1/files").await.json().await.unwrap();
    assert!(root["entries"].as_array().unwrap().iter().any(|e| e["name"] == "drop"), "{root}");
    let dropped = alice.put("/api/v1/files/drop/in.txt").body("to the bucket").await;
    assert_eq!(dropped.status(), StatusCode::CREATED);
    assert!(!srv.files.join("partners/alice/drop").exists(), "the mount is on the other backend");
    let login =
        srv.expect_event(|e| e.event == "login.succeeded" && e.user.as_deref() == Some("alice")).await;
    assert_eq!(login.reason.as_deref(), Some("password via ldap"));
    assert_eq!(put("bob", "bob-pass-1").await.status(), StatusCode::FORBIDDEN);
    let listed = srv.https_as("bob", "bob-pass-1").get("/api/v1/files").await;
    assert_eq!(listed.status(), StatusCode::OK);

    // Wrong password, unknown user, empty password, injection attempts: all plain refusals.
    for (user, password) in [
        ("alice", "wrong-pass"),
        ("nobody", "whatever-1"),
        ("alice", ""),
        ("*)(uid=*", "alice-pass-1"),
        ("admin)(|(uid=*", "x"),
        ("*", "alice-pass-1"),
    ] {
        let answer = srv.https_as(user, password).get("/api/v1/files").await;
        assert_eq!(answer.status(), StatusCode::UNAUTHORIZED, "{user:?} / {password:?}");
    }

    // FTPS with directory credentials (curl, explicit TLS).
    let ftps = |user: &str, password: &str| {
        let mut cmd = tokio::process::Command::new("curl");
        cmd.args(["-sS", "--fail", "--ssl-reqd", "--cacert"])
            .arg(&srv.cert)
            .args(["-u", &format!("{user}:{password}"), "--list-only"])
            .arg(format!("ftp://localhost:{}/", srv.ftp.port()));
        cmd
    };
    let listed = ok(&run(ftps("alice", "alice-pass-1"), 60).await);
    assert!(listed.contains("alice.txt"), "{listed}");
    let refused = run(ftps("alice", "wrong-pass"), 60).await;
    assert!(!refused.status.success(), "a wrong directory password is refused over FTPS");

    // SSH key from the directory (sshPublicKey, openssh-lpk).
    let public = std::fs::read_to_string(srv.key.with_extension("pub")).unwrap();
    let ldif = format!(
        "dn: uid=carol,ou=people,dc=ferry,dc=test\nchangetype: modify\nadd: sshPublicKey\nsshPublicKey: {}\n",
        public.trim()
    );
    let ldif_file = slapd.dir.path().join("carol.ldif");
    std::fs::write(&ldif_file, ldif).unwrap();
    let mut modify = tokio::process::Command::new("ldapmodify");
    modify
        .args([
            "-x",
            "-H",
            &format!("ldap://127.0.0.1:{}", slapd.port),
            "-D",
            "cn=admin,dc=ferry,dc=test",
            "-w",
            "admin-secret",
            "-f",
        ])
        .arg(&ldif_file);
    ok(&run(modify, 30).await);
    let local = tempfile::tempdir().unwrap();
    ok(&srv.sftp("carol", local.path(), "pwd\n").await);

    // The directory goes away: directory users are refused (503, audited), local users go on.
    slapd.stop().await;
    let started = std::time::Instant::now();
    let away = alice.get("/api/v1/files").await;
    assert_eq!(away.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(started.elapsed() < std::time::Duration::from_secs(5), "no hang");
    let failed =
        srv.expect_event(|e| e.event == "login.failed" && e.outcome == ferry::audit::Outcome::Failed).await;
    assert_eq!(failed.user.as_deref(), Some("alice"));
    assert_eq!(srv.https_as("loc", "loc-pass-1").get("/api/v1/files").await.status(), StatusCode::OK);
    slapd.run().await;
    assert_eq!(alice.get("/api/v1/files").await.status(), StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn direct_bind_over_ldaps() {
    let slapd = Slapd::start().await;
    let srv = TestServer::start_with(&format!(
        "[auth]\nchain = [\"ldap\"]\n[auth.ldap]\nurl = \"ldaps://localhost:{port}\"\nca_file = \"{ca}\"\n\
         bind_dn = \"uid={{user}},ou=people,dc=ferry,dc=test\"\n",
        port = slapd.tls_port,
        ca = slapd.ca()
    ))
    .await;
    assert_eq!(srv.https_as("bob", "bob-pass-1").get("/api/v1/files").await.status(), StatusCode::OK);
    assert_eq!(
        srv.https_as("bob", "nope-nope").get("/api/v1/files").await.status(),
        StatusCode::UNAUTHORIZED
    );
    // A DN injection attempt binds as nobody.
    assert_eq!(
        srv.https_as("bob,ou=people", "bob-pass-1").get("/api/v1/files").await.status(),
        StatusCode::UNAUTHORIZED
    );
}
