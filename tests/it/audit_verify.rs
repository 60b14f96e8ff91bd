//! `ferry audit verify` on untouched and tampered trails: every kind of edit a forger could
//! make, and a tail cut off the end (caught by the final checkpoint and by the saved heads).

use std::path::Path;

use ferry::audit::{EventKind, Fields, Outcome};
use serde_json::Value;

use crate::audit::{FILE_SINK, chain_seq, ferry, keep, trail, trail_dir, verify};
use crate::harness::TestServer;

/// Writes `lines` as one segment in a fresh folder.
fn segment(lines: &[String]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("n-00000000000000000000.jsonl"), lines.join("\n") + "\n").unwrap();
    dir
}

/// Recomputes the hash of `line` after an edit, as a forger would.
fn rehash(line: &str) -> String {
    let cut = line.rfind(",\"hash\":\"").unwrap();
    let body = format!("{}}}", &line[..cut]);
    let (sealed, _) = ferry::audit::chain::seal(&body);
    sealed
}

fn set_prev(line: &str, prev: &str) -> String {
    let mut value: Value = serde_json::from_str(line).unwrap();
    let hash = value.as_object_mut().unwrap().remove("hash");
    assert!(hash.is_some());
    value["prev"] = Value::String(prev.to_string());
    let (sealed, _) = ferry::audit::chain::seal(&serde_json::to_string(&value).unwrap());
    sealed
}

fn hash_of(line: &str) -> String {
    let value: Value = serde_json::from_str(line).unwrap();
    value["hash"].as_str().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_finds_each_kind_of_tampering() {
    let mut srv = TestServer::start_with(FILE_SINK).await;
    for i in 0..40 {
        let fields =
            Fields { user: Some(format!("u{i}")), path: Some(format!("/f{i}")), ..Fields::default() };
        srv.audit.emit(EventKind::FileDelete, Outcome::Ok, fields);
    }
    let (data, dir) = (srv.data.clone(), trail_dir(&srv));
    let _kept = keep(&mut srv);
    srv.stop().await;
    let lines = trail(&dir);
    assert!(lines.len() > 45, "{}", lines.len());
    let key = data.join("audit/node.pub");
    let key = key.to_str().unwrap();
    let check = |tampered: Vec<String>| {
        let folder = segment(&tampered);
        verify(&[folder.path().to_str().unwrap(), "--public-key", key], &data)
    };
    let (passed, text) = check(lines.clone());
    assert!(passed, "{text}");
    // The position of a plain record in the middle.
    let mid = (20..lines.len())
        .find(|&i| lines[i].contains("file.delete") && lines[i + 1].contains("file.delete"))
        .unwrap();
    let seq = |i: usize| serde_json::from_str::<Value>(&lines[i]).unwrap()["chain_seq"].as_u64().unwrap();

    let mut removed = lines.clone();
    removed.remove(mid);
    let (passed, text) = check(removed);
    assert!(!passed && text.contains(&format!("removed record: seq {} is missing", seq(mid))), "{text}");

    let mut altered = lines.clone();
    altered[mid] = altered[mid].replace("\"user\":\"u", "\"user\":\"x");
    let (passed, text) = check(altered);
    assert!(!passed && text.contains("altered record") && text.contains("does not match its hash"), "{text}");

    let mut inserted = lines.clone();
    let forged =
        set_prev(&lines[mid].replace("\"user\":\"u", "\"user\":\"intruder"), &hash_of(&lines[mid - 1]));
    inserted.insert(mid, forged);
    let (passed, text) = check(inserted);
    assert!(!passed && text.contains("inserted record"), "{text}");

    let mut reordered = lines.clone();
    reordered.swap(mid, mid + 1);
    let (passed, text) = check(reordered);
    assert!(
        !passed
            && text.contains("reordered records at")
            && text.contains(&format!("found seq {} where seq {} belongs", seq(mid + 1), seq(mid))),
        "{text}"
    );

    // A forger who alters a record and rehashes the rest of the chain still fails the
    // checkpoint signed before the edit was made.
    let mut rewritten = lines.clone();
    rewritten[mid] = rehash(&rewritten[mid].replace("\"user\":\"u", "\"user\":\"x"));
    for i in mid + 1..rewritten.len() {
        rewritten[i] = set_prev(&rewritten[i], &hash_of(&rewritten[i - 1]));
    }
    let (passed, text) = check(rewritten);
    assert!(!passed && text.contains("the checkpoint signed seq"), "{text}");

    // Nor does hiding the checkpoints after the edit: each one promised the next within
    // `checkpoint_every` records.
    let mut hidden = lines.clone();
    hidden[mid] = rehash(&hidden[mid].replace("\"user\":\"u", "\"user\":\"x"));
    for i in mid + 1..hidden.len() {
        if hidden[i].contains("\"event\":\"audit.checkpoint\"") {
            let mut value: Value = serde_json::from_str(&hidden[i]).unwrap();
            let object = value.as_object_mut().unwrap();
            object.remove("checkpoint");
            object.insert("id".into(), 30003.into());
            object.insert("event".into(), "file.delete".into());
            hidden[i] = serde_json::to_string(&value).unwrap();
        }
        hidden[i] = set_prev(&hidden[i], &hash_of(&hidden[i - 1]));
    }
    let (passed, text) = check(hidden);
    assert!(!passed && text.contains("no checkpoint within the 7 records"), "{text}");

    // A checkpoint signed with another key.
    let other = tempfile::tempdir().unwrap();
    let other_key = ferry::audit::chain::NodeKey::load_or_create(&other.path().join("k")).unwrap();
    let folder = segment(&lines);
    let (passed, text) =
        verify(&[folder.path().to_str().unwrap(), "--public-key", &other_key.public_hex()], &data);
    assert!(!passed && text.contains("bad checkpoint signature"), "{text}");

    // Records cut off the end of the database are caught by the saved chain head.
    let config = data.parent().unwrap().join("audit.toml");
    std::fs::write(&config, format!("data_dir = {:?}\n", data.display().to_string())).unwrap();
    let (passed, text) = verify(&["--db", "-c", config.to_str().unwrap()], &data);
    assert!(passed, "{text}");
    assert_eq!(delete_last_row(&data.join("ferry.db")).await, 1);
    let (passed, text) = verify(&["--db", "-c", config.to_str().unwrap()], &data);
    assert!(
        !passed && text.contains("missing (at the end, by the head saved at the last clean stop (database))"),
        "{text}"
    );
}

/// `ferry audit verify` with its exit code and everything it printed.
fn verify_code(args: &[&str], dir: &Path) -> (Option<i32>, String) {
    let out = ferry().args(["audit", "verify"]).args(args).current_dir(dir).output().unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.code(), text)
}

/// A clean stop ends the trail with a checkpoint: cutting records off the end is reported,
/// by the missing final checkpoint, and by the heads the database saved or the caller gives.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_reports_a_cut_tail_and_a_missing_final_checkpoint() {
    let mut srv = TestServer::start_with(FILE_SINK).await;
    for i in 0..30 {
        srv.audit.emit(
            EventKind::FileDelete,
            Outcome::Ok,
            Fields { path: Some(format!("/t{i}")), ..Fields::default() },
        );
    }
    let (data, dir) = (srv.data.clone(), trail_dir(&srv));
    let _kept = keep(&mut srv);
    srv.stop().await;
    let lines = trail(&dir);
    let is_checkpoint = |line: &String| line.contains("\"event\":\"audit.checkpoint\"");
    let last = lines.len() - 1;
    assert!(is_checkpoint(&lines[last]), "a clean stop ends with a checkpoint: {}", lines[last]);
    let node = serde_json::from_str::<Value>(&lines[0]).unwrap()["node"].as_str().unwrap().to_string();
    let key = data.join("audit/node.pub");
    let key = key.to_str().unwrap();
    let config = data.parent().unwrap().join("audit.toml");
    std::fs::write(&config, format!("data_dir = {:?}\n", data.display().to_string())).unwrap();
    let config = config.to_str().unwrap();
    // Verifies `kept` as a trail of its own, with the state database when `with_db`.
    let check = |kept: &[String], with_db: bool, extra: &[&str]| {
        let folder = segment(kept);
        let mut args = vec![folder.path().to_str().unwrap(), "--public-key", key];
        if with_db {
            args.extend(["-c", config]);
        }
        args.extend(extra);
        verify_code(&args, &data)
    };

    // Intact: ok, with and without the saved heads.
    let (code, text) = check(&lines, false, &[]);
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("ends with a checkpoint"), "{text}");
    let (code, text) = check(&lines, true, &[]);
    assert_eq!(code, Some(0), "{text}");
    assert!(
        text.contains(&format!(
            "holds seq {} named by the head saved at the last clean stop (database)",
            chain_seq(&lines[last])
        )),
        "{text}"
    );

    // Only the final checkpoint cut off.
    let (code, text) = check(&lines[..last], false, &[]);
    assert_eq!(code, Some(1), "{text}");
    let at = format!("n-00000000000000000000.jsonl:{last})");
    assert!(
        text.contains(&format!(
            "FAILED node {node}: no final checkpoint: the trail ends at seq {} (",
            chain_seq(&lines[last - 1])
        )) && text.contains(&at),
        "{text}"
    );
    let (code, text) = check(&lines[..last], true, &[]);
    assert_eq!(code, Some(1), "{text}");
    assert!(
        text.contains(&format!(
            "FAILED node {node}: removed record: seq {} is missing (at the end, by the head saved at the last clean stop (database))",
            chain_seq(&lines[last])
        )),
        "{text}"
    );

    // The tail cut back to an earlier checkpoint: only a head kept elsewhere shows it.
    let earlier = (0..last - 1).rev().find(|&i| is_checkpoint(&lines[i])).unwrap();
    let cut = &lines[..=earlier];
    let (code, text) = check(cut, true, &[]);
    assert_eq!(code, Some(1), "{text}");
    assert!(
        text.contains(&format!(
            "removed records: seq {} to {} are missing (at the end, by the head saved at the last clean stop (database))",
            chain_seq(&lines[earlier + 1]),
            chain_seq(&lines[last])
        )),
        "{text}"
    );
    let head = format!("{}:{}", chain_seq(&lines[last]), hash_of(&lines[last]));
    let (code, text) = check(cut, false, &["--expect-head", &head]);
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains(&format!("missing (at the end, by --expect-head {head})")), "{text}");

    // A running node: the tail after the last checkpoint is accepted, the head must be there.
    let (code, text) = check(&lines[..last], false, &["--running"]);
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("the end is NOT checked (--running without an expected head)"), "{text}");
    let within = format!("{node}={}:{}", chain_seq(&lines[last - 2]), hash_of(&lines[last - 2]));
    let (code, text) = check(&lines[..last], false, &["--running", "--expect-head", &within]);
    assert_eq!(code, Some(0), "{text}");
    assert!(
        text.contains(&format!("holds seq {} named by --expect-head {within}", chain_seq(&lines[last - 2]))),
        "{text}"
    );
    let (code, text) = check(&lines[..last - 3], false, &["--running", "--expect-head", &within]);
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("missing (at the end, by --expect-head"), "{text}");
    // A head whose hash the trail does not hold: the end was rewritten.
    let forged = format!("{}:{}", chain_seq(&lines[last - 2]), hash_of(&lines[last - 3]));
    let (code, text) = check(&lines, false, &["--expect-head", &forged]);
    assert_eq!(code, Some(1), "{text}");
    assert!(
        text.contains(&format!(
            "seq {} is not the record --expect-head {forged} names",
            chain_seq(&lines[last - 2])
        )),
        "{text}"
    );
    // A head for another node is not applied here; a malformed one is refused.
    let (code, text) =
        check(&lines[..last], false, &["--running", "--expect-head", &format!("other={head}")]);
    assert_eq!(code, Some(0), "{text}");
    let (code, text) = check(&lines, false, &["--expect-head", "12:nothex"]);
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("--expect-head `12:nothex`: the hash must be 64 hex digits"), "{text}");

    // The database trail: its saved heads, and --running.
    let (code, text) = verify_code(&["--db", "-c", config], &data);
    assert_eq!(code, Some(0), "{text}");
    assert_eq!(delete_last_row(&data.join("ferry.db")).await, 1);
    let (code, text) = verify_code(&["--db", "-c", config, "--running"], &data);
    assert_eq!(code, Some(1), "the saved head still catches the cut: {text}");
}

/// Deletes the newest audit row, as someone with write access to the database could.
async fn delete_last_row(db: &Path) -> u64 {
    let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", db.display())).await.unwrap();
    let done = sqlx::query("DELETE FROM audit_events WHERE row = (SELECT MAX(row) FROM audit_events)")
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;
    done.rows_affected()
}
