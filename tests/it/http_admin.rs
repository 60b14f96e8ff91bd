//! Administration over the HTTPS API: API keys, user management, live sessions of every
//! protocol, and bans after failed logins from any protocol.

use reqwest::StatusCode;

use crate::harness::{TestServer, User, payload};
use crate::http::{json, url};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_keys_are_created_shown_once_used_and_revoked() {
    let mut srv = TestServer::start().await;
    srv.add_user(User::with_password("prog", "prog-pass-1")).await;
    let http = srv.https_client();
    let prog = srv.https_as("prog", "prog-pass-1");
    let created = prog.post("/api/v1/keys").json(&serde_json::json!({"name": "nightly export"})).await;
    assert_eq!(created.status(), StatusCode::CREATED);
    let created = json(created).await;
    let key = created["key"].as_str().unwrap().to_string();
    let id = created["id"].as_str().unwrap().to_string();
    assert!(key.starts_with("ferry_k1_"));

    let by_header = http.get(url(&srv, "/api/v1/me")).header("x-api-key", &key).send().await.unwrap();
    assert_eq!(json(by_header).await["user"], "prog");
    let login = srv
        .expect_event(|e| e.event == "login.succeeded" && e.reason.as_deref() == Some("api_key via local"))
        .await;
    assert_eq!(login.user.as_deref(), Some("prog"));
    let by_bearer = http.get(url(&srv, "/api/v1/me")).bearer_auth(&key).send().await.unwrap();
    assert_eq!(by_bearer.status(), StatusCode::OK);
    let listed =
        json(http.get(url(&srv, "/api/v1/keys")).header("x-api-key", &key).send().await.unwrap()).await;
    assert_eq!(listed[0]["id"], id.as_str());
    assert_eq!(listed[0]["name"], "nightly export");
    assert!(listed[0]["last_used_at"].is_string());
    assert!(listed[0].get("key").is_none(), "the key is never shown again");

    let forged = key[..key.len() - 2].to_string() + "xx";
    let wrong = http.get(url(&srv, "/api/v1/me")).header("x-api-key", &forged).send().await.unwrap();
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    let revoked = prog.delete(&format!("/api/v1/keys/{id}")).await;
    assert_eq!(revoked.status(), StatusCode::NO_CONTENT);
    let after = http.get(url(&srv, "/api/v1/me")).header("x-api-key", &key).send().await.unwrap();
    assert_eq!(after.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admins_manage_users_and_others_are_refused() {
    let mut srv = TestServer::start().await;
    srv.add_user(User { admin: true, ..User::with_password("boss", "boss-pass-1") }).await;
    srv.add_user(User::with_password("plain", "plain-pass-1")).await;
    let http = srv.https_client();
    let health = json(http.get(url(&srv, "/api/v1/health")).send().await.unwrap()).await;
    assert_eq!(health["status"], "ok");

    let refused = srv.https_as("plain", "plain-pass-1").get("/api/v1/admin/users").await;
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    assert_eq!(json(refused).await["code"], "not_admin");

    let boss = srv.https_as("boss", "boss-pass-1");
    let created = boss
        .post("/api/v1/admin/users")
        .json(&serde_json::json!({"name": "partner", "password": "partner-pass-1", "rules": ["/=list,download"]}))
        .await;
    assert_eq!(created.status(), StatusCode::CREATED);
    let audited =
        srv.expect_event(|e| e.event == "user.created" && e.user.as_deref() == Some("partner")).await;
    assert_eq!(audited.user.as_deref(), Some("partner"));
    assert_eq!(audited.protocol.map(|p| p.as_str()), Some("https"));
    let again = boss
        .post("/api/v1/admin/users")
        .json(&serde_json::json!({"name": "partner", "password": "x-x-x-x-1"}))
        .await;
    assert_eq!(again.status(), StatusCode::CONFLICT);
    let bad_rule = boss
        .patch("/api/v1/admin/users/partner")
        .json(&serde_json::json!({"rules": ["/=fly"], "enabled": false}))
        .await;
    assert_eq!(bad_rule.status(), StatusCode::BAD_REQUEST);
    // Nothing changed by the refused update.
    let shown = json(boss.get("/api/v1/admin/users/partner").await).await;
    assert_eq!(shown["enabled"], true);
    assert_eq!(shown["rules"][0], "/=list,download");

    let partner = srv.https_as("partner", "partner-pass-1");
    // The new user logs in; their rule applies; disabling them stops them.
    let upload = partner.put("/api/v1/files/x.txt").body("x").await;
    assert_eq!(upload.status(), StatusCode::FORBIDDEN);
    let disabled =
        boss.patch("/api/v1/admin/users/partner").json(&serde_json::json!({"enabled": false})).await;
    assert_eq!(disabled.status(), StatusCode::OK);
    let blocked = partner.get("/api/v1/files").await;
    assert_eq!(blocked.status(), StatusCode::UNAUTHORIZED);

    let pubkey = std::fs::read_to_string(srv.key.with_extension("pub")).unwrap();
    let added = boss
        .post("/api/v1/admin/users/partner/keys")
        .json(&serde_json::json!({"public_key": pubkey.trim()}))
        .await;
    assert_eq!(added.status(), StatusCode::CREATED);
    let fingerprint = json(added).await["fingerprint"].as_str().unwrap().to_string();
    // Base64 fingerprints hold `/` and `+`: one path segment, percent-encoded.
    let fingerprint = fingerprint.replace('/', "%2F").replace('+', "%2B");
    let removed = boss.delete(&format!("/api/v1/admin/users/partner/keys/{fingerprint}")).await;
    assert_eq!(removed.status(), StatusCode::NO_CONTENT);
    let password = boss
        .put("/api/v1/admin/users/partner/password")
        .json(&serde_json::json!({"password": "new-partner-pass"}))
        .await;
    assert_eq!(password.status(), StatusCode::NO_CONTENT);
    let deleted = boss.delete("/api/v1/admin/users/partner").await;
    assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
    let gone = boss.get("/api/v1/admin/users/partner").await;
    assert_eq!(gone.status(), StatusCode::NOT_FOUND);
}

/// An administrator lists live connections of every protocol and ends an SFTP session in the
/// middle of a transfer: the client is disconnected and its partial upload is not kept.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admins_list_and_end_live_sessions() {
    use crate::harness::run;
    let srv = TestServer::start().await;
    srv.add_user(User { admin: true, ..User::with_password("boss", "boss-pass-1") }).await;
    srv.add_user(User::with_key("slow")).await;
    let local = tempfile::tempdir().unwrap();
    std::fs::write(local.path().join("big.bin"), payload(32 << 20, 3)).unwrap();
    // 32 MiB at 8 Mbit/s: half a minute, far longer than this test waits.
    let upload = srv.sftp_command("slow", local.path(), "put big.bin\n", &["-l", "8000"]);
    let upload = tokio::spawn(run(upload, 120));
    let mut target = None;
    let boss = srv.https_as("boss", "boss-pass-1");
    for _ in 0..100 {
        let sessions = json(boss.get("/api/v1/admin/sessions").await).await;
        target =
            sessions.as_array().unwrap().iter().find(|s| s["user"] == "slow").map(|s| {
                (s["id"].as_str().unwrap().to_string(), s["protocol"].as_str().unwrap().to_string())
            });
        if target.is_some() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let (id, protocol) = target.expect("the SFTP session is listed");
    assert_eq!(protocol, "ssh", "the connection is SSH; SFTP runs on a channel of it");
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let ended = boss.delete(&format!("/api/v1/admin/sessions/{id}")).await;
    assert_eq!(ended.status(), StatusCode::NO_CONTENT);
    let started = std::time::Instant::now();
    let out = upload.await.unwrap();
    assert!(!out.status.success(), "the client was cut off");
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
    assert!(!srv.home("slow").join("big.bin").exists(), "no partial file");
    let again = boss.delete(&format!("/api/v1/admin/sessions/{id}")).await;
    assert_eq!(again.status(), StatusCode::NOT_FOUND);
}

/// Failed logins over HTTPS and SFTP add up per address; past the limit the address is refused
/// everywhere, even with the right password, and the ban is audited.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_logins_from_any_protocol_ban_the_address() {
    use crate::harness::Python;
    let mut srv = TestServer::start_with("[auth]\nban_after_failures = 3\nban_time = \"1h\"\n").await;
    srv.add_user(User { password: Some("right-pass-1"), ..User::with_key("victim") }).await;
    // One client, so its connection (opened before the ban) is reused after it.
    let (client, base) = (srv.https_client(), format!("https://localhost:{}", srv.https.port()));
    let wrong = crate::harness::HttpsUser::new(client.clone(), &base, "victim", "wrong-pass");
    for _ in 0..2 {
        assert_eq!(wrong.get("/api/v1/files").await.status(), StatusCode::UNAUTHORIZED);
    }
    // The third failure comes over SFTP (paramiko, password).
    let script = "import paramiko, sys\nt = paramiko.Transport(('127.0.0.1', int(sys.argv[1])))\nt.start_client()\n\
                  try:\n    t.auth_password('victim', 'still-wrong')\nexcept paramiko.AuthenticationException:\n    print('refused')\n";
    let out = Python::inline(script).arg(srv.addr.port().to_string()).output(60).await;
    assert!(String::from_utf8_lossy(&out.stdout).contains("refused"));
    let ban = srv.expect_event(|e| e.event == "login.banned").await;
    assert_eq!(ban.peer.unwrap().to_string().split(':').next(), Some("127.0.0.1"));
    // On the connection opened before the ban: the login is refused, even with the right password.
    let right = crate::harness::HttpsUser::new(client, &base, "victim", "right-pass-1");
    assert_eq!(
        right.get("/api/v1/files").await.status(),
        StatusCode::UNAUTHORIZED,
        "banned even with the right password"
    );
    let refused = srv
        .expect_event(|e| {
            e.event == "login.failed" && e.reason.as_deref().is_some_and(|r| r.contains("banned"))
        })
        .await;
    assert_eq!(refused.user.as_deref(), Some("victim"));
    // New connections are closed at accept, on every listener, before TLS or SSH begins.
    let fresh = srv
        .https_client()
        .get(format!("{base}/api/v1/files"))
        .basic_auth("victim", Some("right-pass-1"))
        .send()
        .await;
    assert!(fresh.is_err(), "a new HTTPS connection from a banned address is closed: {fresh:?}");
    let mut ssh = tokio::net::TcpStream::connect(srv.addr).await.unwrap();
    let mut said = Vec::new();
    tokio::io::AsyncReadExt::read_to_end(&mut ssh, &mut said).await.unwrap_or_default();
    assert!(said.is_empty(), "no SSH banner for a banned address: {}", String::from_utf8_lossy(&said));
    let at_accept = srv
        .expect_event(|e| {
            e.event == "connection.refused" && e.reason.as_deref().is_some_and(|r| r.contains("banned"))
        })
        .await;
    assert_eq!(at_accept.peer.unwrap().to_string().split(':').next(), Some("127.0.0.1"));
    let text = reqwest::get(format!("http://{}/metrics", srv.ops)).await.unwrap().text().await.unwrap();
    assert!(
        crate::ssh_limits::sample(&text, "ferry_connections_refused_total{reason=\"banned\"}") >= 2.0,
        "{text}"
    );
}

/// `auth.allow_addresses` are never banned, however often they fail.
#[tokio::test]
async fn allowed_addresses_are_never_banned() {
    let mut srv = TestServer::start_with(
        "[auth]\nban_after_failures = 2\nban_time = \"1h\"\nallow_addresses = [\"127.0.0.0/24\"]\n",
    )
    .await;
    srv.add_user(User::with_password("ally", "right-pass-1")).await;
    for _ in 0..4 {
        let wrong = srv.https_as("ally", "wrong-pass").get("/api/v1/files").await;
        assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    }
    let right = srv.https_as("ally", "right-pass-1").get("/api/v1/files").await;
    assert_eq!(right.status(), StatusCode::OK, "never banned");
    // Every record up to that login: failures, and not one ban.
    let succeeded = srv
        .expect_event(|e| {
            assert_ne!(e.event, "login.banned", "an allowed address was banned");
            e.event == "login.succeeded"
        })
        .await;
    assert_eq!(succeeded.user.as_deref(), Some("ally"));
}
