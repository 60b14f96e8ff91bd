//! Changes made through the HTTPS admin API: a user PATCH is one transaction with one audit
//! record, and every record names the administrator who acted as well as the account changed.

use ferry::audit::{EventKind, Fields, Outcome};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::harness::{TestServer, User};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_patch_is_one_change_audited_with_the_acting_admin() {
    let mut srv = TestServer::start().await;
    srv.add_user(User { admin: true, ..User::with_password("boss", "boss-pass-1") }).await;
    srv.add_user(User::with_password("partner", "partner-pass-1")).await;
    let boss = srv.https_as("boss", "boss-pass-1");
    let user_url = "/api/v1/admin/users/partner";

    // A bad field anywhere in the body changes nothing.
    let refused = boss
        .patch(user_url)
        .json(&json!({"enabled": false, "rules": ["/=list"], "home": "../elsewhere"}))
        .await;
    assert_eq!(refused.status(), StatusCode::BAD_REQUEST);

    let patched = boss
        .patch(user_url)
        .json(&json!({"home": "/partners/p1", "rules": ["/=list,download"], "enabled": false, "upload_mode": "in_place"}))
        .await;
    assert_eq!(patched.status(), StatusCode::OK);
    let shown: Value = patched.json().await.unwrap();
    assert_eq!(shown["home"], "/partners/p1");
    assert_eq!(shown["rules"], json!(["/=list,download"]));
    assert_eq!(shown["enabled"], false);
    assert_eq!(shown["upload_mode"], "in_place");

    // Every record up to a marker emitted after the answer: exactly one change of `partner`.
    srv.audit.emit(
        EventKind::ConfigLoaded,
        Outcome::Ok,
        Fields { reason: Some("marker".into()), ..Fields::default() },
    );
    let mut updates = Vec::new();
    loop {
        let record = srv.expect_event(|_| true).await;
        if record.event == "config.loaded" && record.reason.as_deref() == Some("marker") {
            break;
        }
        if record.event == "user.updated" {
            updates.push(record);
        }
    }
    assert_eq!(updates.len(), 1, "one PATCH, one record: {updates:?}");
    let update = &updates[0];
    assert_eq!(update.user.as_deref(), Some("partner"), "the account changed");
    assert_eq!(update.actor.as_deref(), Some("boss"), "the administrator who changed it");
    assert_eq!(update.protocol.map(|p| p.as_str()), Some("https"));
    let reason = update.reason.as_deref().unwrap_or_default();
    for what in ["home", "rules", "upload mode", "disabled"] {
        assert!(reason.contains(what), "`{what}` in {reason}");
    }

    // Disabled in the same change: the user can no longer log in.
    let blocked = srv.https_as("partner", "partner-pass-1").get("/api/v1/files").await;
    assert_eq!(blocked.status(), StatusCode::UNAUTHORIZED);
}
