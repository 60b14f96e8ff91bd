//! File names on object storage (issue 12, item 17): every name a local filesystem allows (but NUL
//! and `/`) is listed and opened exactly as it was written, the folder-marker name is a file like
//! any other, and `NAME.filepart` uploads never make an answer untrue.

use std::sync::Arc;

use bytes::Bytes;
use ferry::storage::{EntryKind, Key, LocalStorage, ObjectStorage, Storage, StorageError};

use super::new_file;
use crate::emulators::{Emulator, Kind};

/// Names that encodings get wrong.
pub fn hostile() -> Vec<String> {
    let mut names: Vec<String> = [
        "naïve café.txt",
        "日本語 ファイル.bin",
        "emoji 🚀.dat",
        "report #3.txt",
        "100%.txt",
        "%41",
        "%2F%2e%2E",
        "a+b=c&d",
        "what?.txt",
        "back\\slash",
        " leading space",
        "trailing space ",
        "trailing dot.",
        "tab\there",
        "new\nline",
        "\u{7f}del",
        "quotes \"'`",
        "<>|*{}[]^~",
        ".ferry-dir",
        ".hidden",
        "-dash",
    ]
    .map(String::from)
    .into();
    // 255 bytes, a local filesystem's longest name.
    names.push(format!("{}é", "long-".repeat(50)).chars().chain("xyz".chars()).collect());
    assert!(names.last().is_some_and(|n| n.len() == 255));
    names
}

fn key(segments: &[&str]) -> Key {
    Key::from_segments(segments.iter().copied())
}

fn content(name: &str) -> Vec<u8> {
    format!("content of {name:?}").into_bytes()
}

async fn listed(store: &dyn Storage, at: &Key) -> Vec<(String, EntryKind)> {
    let mut lister = store.list(at).await.unwrap();
    let mut out = Vec::new();
    loop {
        let batch = lister.next_batch(100).await.unwrap();
        if batch.is_empty() {
            break;
        }
        out.extend(batch.into_iter().map(|e| (e.name, e.meta.kind)));
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

async fn read(store: &dyn Storage, at: &Key) -> Vec<u8> {
    let r = store.open_read(at).await.unwrap();
    r.read_at(0, 1 << 20).await.unwrap().to_vec()
}

/// Files and folders of every hostile name: listed, read back, removed, exactly.
async fn names_round_trip(store: Arc<dyn Storage>) {
    let store = store.as_ref();
    store.mkdir(&key(&["n"])).await.unwrap();
    let names = hostile();
    for name in &names {
        let w = store.open_write(&key(&["n", name]), new_file()).await.unwrap();
        w.write_at(0, Bytes::from(content(name))).await.unwrap();
        w.commit().await.unwrap();
    }
    let folder = "dir #%41 ünï ";
    store.mkdir(&key(&["n", folder])).await.unwrap();
    let inner = store.open_write(&key(&["n", folder, "%E6 inner?"]), new_file()).await.unwrap();
    inner.write_at(0, Bytes::from_static(b"inner")).await.unwrap();
    inner.commit().await.unwrap();

    let mut want: Vec<(String, EntryKind)> = names.iter().map(|n| (n.clone(), EntryKind::File)).collect();
    want.push((folder.to_string(), EntryKind::Dir));
    want.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(listed(store, &key(&["n"])).await, want);
    assert_eq!(listed(store, &key(&["n", folder])).await, [("%E6 inner?".to_string(), EntryKind::File)]);
    for name in &names {
        assert_eq!(read(store, &key(&["n", name])).await, content(name), "{name:?}");
        assert_eq!(store.stat(&key(&["n", name])).await.unwrap().size, content(name).len() as u64);
    }
    // The marker name is an ordinary file: the folder with it is not empty, and removing it
    // removes the file, not the folder's marker.
    assert!(matches!(store.rmdir(&key(&["n"])).await, Err(StorageError::NotEmpty)));
    store.rename(&key(&["n", "%41"]), &key(&["n", "renamed %41 ü"])).await.unwrap();
    assert_eq!(read(store, &key(&["n", "renamed %41 ü"])).await, content("%41"));
    assert!(matches!(store.stat(&key(&["n", "%41"])).await, Err(StorageError::NotFound)));
    assert!(matches!(store.stat(&key(&["n", "A"])).await, Err(StorageError::NotFound)));
    for name in names.iter().filter(|n| *n != "%41").chain([&"renamed %41 ü".to_string()]) {
        store.remove(&key(&["n", name])).await.unwrap();
    }
    store.remove(&key(&["n", folder, "%E6 inner?"])).await.unwrap();
    store.rmdir(&key(&["n", folder])).await.unwrap();
    assert!(listed(store, &key(&["n"])).await.is_empty());
    store.rmdir(&key(&["n"])).await.unwrap();
    assert!(matches!(store.stat(&key(&["n"])).await, Err(StorageError::NotFound)));
}

#[tokio::test]
async fn hostile_names_round_trip_on_local_disk() {
    let dir = tempfile::tempdir().unwrap();
    names_round_trip(Arc::new(LocalStorage::new(dir.path()).unwrap())).await;
}

#[tokio::test]
async fn hostile_names_round_trip_in_memory() {
    let memory = Arc::new(object_store::memory::InMemory::new());
    names_round_trip(Arc::new(ObjectStorage::new(memory, None, "pre fix/ü", Default::default()))).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_names_round_trip_on_the_s3_emulator() {
    names_round_trip(Emulator::start(Kind::S3, "names").await.storage("ferry")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_names_round_trip_on_the_azure_emulator() {
    names_round_trip(Emulator::start(Kind::Azure, "names").await.storage("ferry")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_names_round_trip_on_the_gcs_emulator() {
    names_round_trip(Emulator::start(Kind::Gcs, "names").await.storage("ferry")).await;
}

/// paramiko over SFTP on moto: each hostile name uploaded, listed, read back byte for byte; and
/// WinSCP's `.filepart` steps with and without an existing file, every answer checked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paramiko_names_and_fileparts_round_trip_on_s3() {
    use crate::harness::{Python, TestServer, User};
    let emulator = Emulator::start(Kind::S3, "paramiko").await;
    let srv = TestServer::start_with(&emulator.config("served")).await;
    srv.add_user(User::with_password("names", "names-pass-1")).await;
    let script = r#"
import json, paramiko, sys
names = json.loads(sys.argv[2])
t = paramiko.Transport(("127.0.0.1", int(sys.argv[1])))
t.connect(username="names", password="names-pass-1")
s = paramiko.SFTPClient.from_transport(t)
s.mkdir("n")
for name in names:
    with s.open("n/" + name, "wb") as f:
        f.write(("content of " + name).encode())
listed = sorted(s.listdir("n"))
back = {}
for name in listed:
    with s.open("n/" + name, "rb") as f:
        back[name] = f.read().decode()
def outcome(step):
    try:
        step()
        return "ok"
    except IOError as e:
        return "error %s" % e.errno
def put(name, data):
    with s.open(name, "wb") as f:
        f.write(data)
def get(name):
    with s.open(name, "rb") as f:
        return f.read().decode()
steps = {}
# An existing keep.txt is untouched by uploading keep.txt.filepart.
put("keep.txt", b"old")
put("keep.txt.filepart", b"new")
steps["both"] = sorted(x for x in s.listdir(".") if x.startswith("keep"))
steps["old kept"] = get("keep.txt")
steps["remove keep"] = outcome(lambda: s.remove("keep.txt"))
steps["after remove"] = sorted(x for x in s.listdir(".") if x.startswith("keep"))
steps["stat removed"] = outcome(lambda: s.stat("keep.txt"))
steps["rename keep"] = outcome(lambda: s.rename("keep.txt.filepart", "keep.txt"))
steps["keep now"] = get("keep.txt")
# A fresh.txt.filepart without fresh.txt: only the temporary name exists until the rename.
put("fresh.txt.filepart", b"fresh" * 1000)
steps["fresh listed"] = sorted(x for x in s.listdir(".") if x.startswith("fresh"))
steps["stat fresh"] = outcome(lambda: s.stat("fresh.txt"))
steps["remove fresh"] = outcome(lambda: s.remove("fresh.txt"))
steps["part size"] = s.stat("fresh.txt.filepart").st_size
steps["rename fresh"] = outcome(lambda: s.rename("fresh.txt.filepart", "fresh.txt"))
steps["fresh after"] = sorted(x for x in s.listdir(".") if x.startswith("fresh"))
steps["fresh size"] = s.stat("fresh.txt").st_size
# A removed pending .filepart is gone under both names.
put("gone.txt.filepart", b"x")
steps["remove part"] = outcome(lambda: s.remove("gone.txt.filepart"))
steps["gone after"] = sorted(x for x in s.listdir(".") if x.startswith("gone"))
print(json.dumps({"listed": listed, "back": back, "steps": steps}))
"#;
    let names = hostile();
    let out = Python::inline(script)
        .arg(srv.addr.port().to_string())
        .arg(serde_json::to_string(&names).unwrap())
        .json(120)
        .await;
    let mut want = names.clone();
    want.sort();
    assert_eq!(out["listed"], serde_json::json!(want));
    for name in &names {
        assert_eq!(out["back"][name], format!("content of {name}"), "{name:?}");
    }
    let steps = &out["steps"];
    let expect = serde_json::json!({
        "both": ["keep.txt", "keep.txt.filepart"],
        "old kept": "old",
        "remove keep": "ok",
        "after remove": ["keep.txt.filepart"],
        "stat removed": "error 2",
        "rename keep": "ok",
        "keep now": "new",
        "fresh listed": ["fresh.txt.filepart"],
        "stat fresh": "error 2",
        "remove fresh": "error 2",
        "part size": 5000,
        "rename fresh": "ok",
        "fresh after": ["fresh.txt"],
        "fresh size": 5000,
        "remove part": "ok",
        "gone after": [],
    });
    assert_eq!(*steps, expect);
}
