//! The state store's contract, run against both stores: SQLite in a temp folder and a real
//! PostgreSQL. Each family is exercised through the same trait calls the server makes, so a
//! dialect difference shows as a failing assertion here, not as a replica misbehaving.

use chrono::{Duration as Span, Utc};
use ferry::config::{PostgresConfig, StateBackend, StateConfig};
use ferry::state::audit::{AuditQuery, AuditRow};
use ferry::state::{KeyRecord, NewUser, RuleRecord, State, StateError, UserChange};
use ferry::types::Secret;

use crate::postgres::Postgres;

fn pg_config(pg: &Postgres, db: &str) -> StateConfig {
    StateConfig {
        backend: StateBackend::Postgres(PostgresConfig {
            url: Secret::new(pg.url(db)),
            password_file: Some(pg.password_file()),
            pool_size: 4,
            connect_timeout: std::time::Duration::from_secs(30),
            sslmode: None,
            ca_file: None,
        }),
        sqlite_path: "/nonexistent/unused.db".into(),
    }
}

async fn stores() -> (Vec<(&'static str, State)>, Postgres, tempfile::TempDir) {
    let pg = Postgres::start();
    pg.create_db("conformance");
    let dir = tempfile::tempdir().unwrap();
    let sqlite = State::open_sqlite(&dir.path().join("s.db")).await.unwrap();
    let postgres = State::open(&pg_config(&pg, "conformance")).await.unwrap();
    (vec![("sqlite", sqlite), ("postgres", postgres)], pg, dir)
}

fn row(node: &str, seq: u64, user: &str, event: &str, ts: chrono::DateTime<Utc>) -> AuditRow {
    AuditRow {
        node: node.into(),
        chain_seq: seq,
        event_id: 30002,
        event: event.into(),
        ts,
        session: Some("s1".into()),
        protocol: Some("sftp".into()),
        user: Some(user.into()),
        peer: Some("127.0.0.2".into()),
        path: Some(format!("/f{seq}")),
        outcome: "ok".into(),
        hash: format!("h{seq}"),
        record: format!("{{\"seq\":{seq}}}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_stores_keep_the_same_contract() {
    let (stores, pg, dir) = stores().await;
    // Each store's export goes into an empty store of the other kind.
    pg.create_db("imported");
    let empty_sqlite = State::open_sqlite(&dir.path().join("imported.db")).await.unwrap();
    let empty_postgres = State::open(&pg_config(&pg, "imported")).await.unwrap();
    for (kind, state) in stores {
        users(kind, &state).await;
        keys_and_tokens(kind, &state).await;
        audit(kind, &state).await;
        let other = if kind == "sqlite" { &empty_postgres } else { &empty_sqlite };
        document_round_trip(kind, &state, other).await;
    }
}

async fn users(kind: &str, state: &State) {
    let users = state.users();
    let alice = NewUser {
        name: "alice".into(),
        password_hash: Some("$argon2id$x".into()),
        home: "/alice".into(),
        upload_mode: None,
        rules: vec![RuleRecord { path: "/**".into(), permissions: vec!["list".into()] }],
    };
    users.create(&alice).await.unwrap();
    assert!(matches!(users.create(&alice).await, Err(StateError::UserExists(n)) if n == "alice"), "{kind}");
    assert_eq!(users.count().await.unwrap(), 1, "{kind}");
    let found = users.get("alice").await.unwrap();
    assert!(found.enabled && !found.admin && found.has_password, "{kind}");
    assert_eq!(found.rules, alice.rules, "{kind}");
    assert!(users.find("nobody").await.unwrap().is_none(), "{kind}");
    let before = found.tokens_after;
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    let change = UserChange {
        home: Some("/a2".into()),
        enabled: Some(false),
        admin: Some(true),
        upload_mode: Some(Some(ferry::types::UploadMode::InPlace)),
        ..UserChange::default()
    };
    users.change("alice", &change).await.unwrap();
    let changed = users.get("alice").await.unwrap();
    assert_eq!(
        (changed.home.as_str(), changed.enabled, changed.admin, changed.upload_mode),
        ("/a2", false, true, Some(ferry::types::UploadMode::InPlace)),
        "{kind}"
    );
    assert!(changed.tokens_after > before, "{kind}: disabling voids tokens");
    assert!(matches!(users.change("ghost", &change).await, Err(StateError::UserNotFound(_))), "{kind}");
    users.set_password("alice", "$argon2id$y").await.unwrap();
    assert_eq!(users.get("alice").await.unwrap().password_hash.as_deref(), Some("$argon2id$y"), "{kind}");
    users.set_enabled("alice", true).await.unwrap();
    users.create(&NewUser { name: "bob".into(), ..alice.clone() }).await.unwrap();
    let names: Vec<String> = users.list().await.unwrap().into_iter().map(|u| u.name).collect();
    assert_eq!(names, ["alice", "bob"], "{kind}");
    users.remove("bob").await.unwrap();
    assert!(matches!(users.remove("bob").await, Err(StateError::UserNotFound(_))), "{kind}");
}

async fn keys_and_tokens(kind: &str, state: &State) {
    let key = KeyRecord { fingerprint: "SHA256:abc".into(), public_key: "ssh-ed25519 AAAA a".into() };
    state.users().add_key("alice", &key).await.unwrap();
    assert!(matches!(state.users().add_key("alice", &key).await, Err(StateError::KeyExists(_))), "{kind}");
    assert_eq!(state.users().get("alice").await.unwrap().keys, vec![key.clone()], "{kind}");
    state.users().remove_key("alice", "SHA256:abc").await.unwrap();
    assert!(matches!(state.users().remove_key("alice", "SHA256:abc").await, Err(StateError::KeyNotFound(_))));
    state.users().add_key("alice", &key).await.unwrap();

    let api = state.api_keys();
    api.create("alice", "k1", "ci", &[7u8; 32]).await.unwrap();
    assert!(matches!(api.create("ghost", "k2", "x", &[1u8; 32]).await, Err(StateError::UserNotFound(_))));
    assert_eq!(api.find("k1").await.unwrap(), Some(("alice".to_string(), vec![7u8; 32])), "{kind}");
    api.touch("k1").await.unwrap();
    let listed = api.list("alice").await.unwrap();
    assert_eq!(listed.len(), 1, "{kind}");
    assert!(listed[0].last_used_at.is_some(), "{kind}");

    let tokens = state.tokens();
    let first = tokens.secret("signing", b"fresh-1").await.unwrap();
    assert_eq!(first, b"fresh-1", "{kind}");
    assert_eq!(
        tokens.secret("signing", b"fresh-2").await.unwrap(),
        b"fresh-1",
        "{kind}: the first one stays"
    );
    let later = Utc::now().timestamp() + 3600;
    tokens.revoke("t1", later).await.unwrap();
    tokens.revoke("t1", later).await.unwrap();
    assert!(tokens.is_revoked("t1").await.unwrap(), "{kind}");
    assert!(!tokens.is_revoked("t2").await.unwrap(), "{kind}");
}

async fn audit(kind: &str, state: &State) {
    let log = state.audit();
    let base = Utc::now() - Span::hours(2);
    log.save_node("n1", "pk1", None).await.unwrap();
    // Fractions that sort wrongly as plain text (…:00Z after …:00.5Z) must not.
    let rows: Vec<AuditRow> = (1..=5)
        .map(|i| {
            row(
                "n1",
                i,
                if i % 2 == 0 { "bob" } else { "alice" },
                "file.upload",
                base + Span::milliseconds(500 * i as i64),
            )
        })
        .collect();
    log.append(&rows, Some(&rows[3])).await.unwrap();
    log.append(&[row("n2", 1, "alice", "file.download", base + Span::hours(1))], None).await.unwrap();
    let all = log.query(&AuditQuery { limit: 100, ..AuditQuery::default() }).await.unwrap();
    assert_eq!(all.len(), 6, "{kind}");
    let bob = log
        .query(&AuditQuery { user: Some("bob".into()), limit: 100, ..AuditQuery::default() })
        .await
        .unwrap();
    assert_eq!(
        bob.iter().map(|l| l.record.as_str()).collect::<Vec<_>>(),
        ["{\"seq\":2}", "{\"seq\":4}"],
        "{kind}"
    );
    let by_id = log
        .query(&AuditQuery { event: Some("30002".into()), limit: 100, ..AuditQuery::default() })
        .await
        .unwrap();
    assert_eq!(by_id.len(), 6, "{kind}");
    let window = AuditQuery {
        since: Some(base + Span::milliseconds(1000)),
        until: Some(base + Span::milliseconds(2000)),
        limit: 100,
        ..AuditQuery::default()
    };
    let in_window: Vec<String> = log.query(&window).await.unwrap().into_iter().map(|l| l.record).collect();
    assert_eq!(in_window, ["{\"seq\":2}", "{\"seq\":3}"], "{kind}: since inclusive, until exclusive");
    let page = log.query(&AuditQuery { limit: 2, ..AuditQuery::default() }).await.unwrap();
    let next =
        log.query(&AuditQuery { after: Some(page[1].row), limit: 2, ..AuditQuery::default() }).await.unwrap();
    assert_eq!(next[0].record, "{\"seq\":3}", "{kind}: paging continues after the cursor");
    assert_eq!(log.lines_of("n1", 0, 10).await.unwrap().len(), 5, "{kind}");
    assert_eq!(log.nodes().await.unwrap(), ["n1", "n2"], "{kind}");
    assert_eq!(log.last_of("n1").await.unwrap(), Some((5, "h5".to_string())), "{kind}");
    let head = log.node_head("n1").await.unwrap().unwrap();
    assert_eq!(
        (head.public_key.as_str(), head.signed, head.head),
        ("pk1", Some((4, "h4".to_string())), None)
    );
    log.save_node("n1", "pk1", Some((5, "h5"))).await.unwrap();
    log.save_signed_head("n1", 5, "h5").await.unwrap();
    let head = log.node_head("n1").await.unwrap().unwrap();
    assert_eq!((head.head, head.signed), (Some((5, "h5".into())), Some((5, "h5".into()))), "{kind}");
    assert_eq!(log.purge_before(&(base + Span::minutes(30))).await.unwrap(), 5, "{kind}");
    assert_eq!(log.query(&AuditQuery { limit: 100, ..AuditQuery::default() }).await.unwrap().len(), 1);
}

async fn document_round_trip(kind: &str, state: &State, empty: &State) {
    let doc = state.export().await.unwrap();
    assert_eq!(doc.users.len(), 1, "{kind}");
    assert_eq!(doc.users[0].api_keys.len(), 1, "{kind}");
    let refused = state.import(&doc).await;
    assert!(
        matches!(refused, Err(StateError::Document(ref m)) if m.contains("already has 1 users")),
        "{kind}"
    );
    // Into an empty store of the other kind: the documents match.
    assert_eq!(empty.import(&doc).await.unwrap(), 1, "{kind}");
    let again = empty.export().await.unwrap();
    assert_eq!(again.users, doc.users, "{kind}");
}

/// Replicas starting together on one new database: the advisory lock lets exactly one apply
/// each migration and every one of them opens.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_starting_together_migrate_once() {
    let pg = Postgres::start();
    pg.create_db("race");
    let config = pg_config(&pg, "race");
    let opens: Vec<_> = (0..6).map(|_| State::open(&config)).collect();
    for opened in futures::future::join_all(opens).await {
        opened.expect("every replica opens");
    }
    // The schema is whole after the race: a table of the last migration answers.
    let state = State::open(&config).await.unwrap();
    assert_eq!(state.users().count().await.unwrap(), 0);
}

/// A store migrated by a newer ferry is refused with a message naming both versions, on both
/// stores; a bad URL is refused without echoing it (it may hold a password).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_newer_schema_and_a_bad_url_are_refused_clearly() {
    let pg = Postgres::start();
    pg.create_db("newer");
    let config = pg_config(&pg, "newer");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("n.db");
    State::open_sqlite(&path).await.unwrap().close().await;
    State::open(&config).await.unwrap().close().await;
    let bump =
        "INSERT INTO schema_migrations (version, description, applied_at) VALUES (999, 'future', 'now')";
    {
        use sqlx::Connection;
        let mut conn =
            sqlx::SqliteConnection::connect(&format!("sqlite://{}", path.display())).await.unwrap();
        sqlx::query(bump).execute(&mut conn).await.unwrap();
        let url = format!(
            "postgres://{}:{}@127.0.0.1:{}/newer",
            crate::postgres::USER,
            crate::postgres::PASSWORD,
            pg.port
        );
        let mut conn = sqlx::PgConnection::connect(&url).await.unwrap();
        sqlx::query(bump).execute(&mut conn).await.unwrap();
    }
    for opened in [State::open_sqlite(&path).await, State::open(&config).await] {
        let err = opened.err().expect("refused").to_string();
        assert!(err.contains("schema is version 999, newer than this ferry knows"), "{err}");
    }
    let mut bad = config.clone();
    if let StateBackend::Postgres(pg) = &mut bad.backend {
        pg.url = Secret::new("postgres://u:hunter2-secret@127.0.0.1:notaport/db".into());
    }
    let err = State::open(&bad).await.err().expect("refused").to_string();
    assert!(err.contains("state.url") && !err.contains("hunter2"), "{err}");
}

/// PostgreSQL stopped under a running store: calls fail with a database error meanwhile, and
/// the same handle works again once it is back, without reopening.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_outage_fails_cleanly_and_recovers() {
    let pg = Postgres::start();
    pg.create_db("outage");
    let mut config = pg_config(&pg, "outage");
    if let StateBackend::Postgres(c) = &mut config.backend {
        c.connect_timeout = std::time::Duration::from_secs(3);
    }
    let state = State::open(&config).await.unwrap();
    state.ping().await.unwrap();
    pg.stop();
    assert!(matches!(state.ping().await, Err(StateError::Database(_))));
    assert!(state.users().find("x").await.is_err());
    pg.start_again();
    crate::ssh_limits::eventually("the store answers again", || async { state.ping().await.is_ok() }).await;
    assert!(state.users().find("x").await.unwrap().is_none());
}

/// A server on PostgreSQL while the database is stopped: `/readyz` turns 503 (so a balancer
/// sends new connections elsewhere), logins fail cleanly, and both recover once it is back,
/// without a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_without_its_database_is_unready_and_recovers() {
    let pg = Postgres::start();
    pg.create_db("serve");
    let extra = format!("{}connect_timeout = \"3s\"\n", pg.state_toml("serve"));
    let srv = crate::harness::TestServer::start_with(&extra).await;
    srv.add_user(crate::harness::User::with_key("dana")).await;
    let local = tempfile::tempdir().unwrap();
    crate::harness::ok(&srv.sftp("dana", local.path(), "pwd\n").await);
    let readyz = format!("http://{}/readyz", srv.ops);
    let status = || async { reqwest::get(&readyz).await.map(|r| r.status().as_u16()).unwrap_or(0) };
    assert_eq!(status().await, 200);
    pg.stop();
    crate::ssh_limits::eventually("/readyz answers 503 without the database", || async {
        status().await == 503
    })
    .await;
    let body = reqwest::get(&readyz).await.unwrap().text().await.unwrap();
    assert_eq!(body, "state store unavailable\n");
    let out = srv.sftp("dana", local.path(), "pwd\n").await;
    assert!(!out.status.success(), "no login without the user store");
    pg.start_again();
    crate::ssh_limits::eventually("/readyz answers 200 again", || async { status().await == 200 }).await;
    crate::harness::ok(&srv.sftp("dana", local.path(), "pwd\n").await);
}
