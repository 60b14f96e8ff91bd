//! One behaviour for every storage backend: the same checks run against the local disk,
//! object_store's in-memory store and the S3, GCS and Azure emulators, then real clients through
//! each emulator.

use std::sync::Arc;

use bytes::Bytes;
use ferry::storage::{
    EntryKind, Key, LocalStorage, ObjectOptions, ObjectStorage, Storage, StorageError, WriteOptions,
};

use crate::emulators::{Emulator, Kind};
use crate::harness::payload;

mod budget;
mod long_requests;
mod names;

fn key(path: &str) -> Key {
    Key::from_segments(path.split('/').filter(|s| !s.is_empty()))
}

fn new_file() -> WriteOptions {
    WriteOptions { create: true, truncate: true, atomic: true, replace: true, ..WriteOptions::default() }
}

async fn write(store: &dyn Storage, path: &str, data: &[u8]) {
    let w = store.open_write(&key(path), new_file()).await.unwrap();
    w.write_at(0, Bytes::copy_from_slice(data)).await.unwrap();
    w.commit().await.unwrap();
}

async fn read_all(store: &dyn Storage, path: &str) -> Vec<u8> {
    let r = store.open_read(&key(path)).await.unwrap();
    let mut out = Vec::new();
    loop {
        let chunk = r.read_at(out.len() as u64, 100_000).await.unwrap();
        if chunk.is_empty() {
            return out;
        }
        out.extend_from_slice(&chunk);
    }
}

async fn names(store: &dyn Storage, path: &str) -> Vec<String> {
    let mut lister = store.list(&key(path)).await.unwrap();
    let mut names = Vec::new();
    loop {
        let batch = lister.next_batch(100).await.unwrap();
        if batch.is_empty() {
            break;
        }
        names.extend(batch.into_iter().map(|e| e.name));
    }
    names.sort();
    names
}

async fn conformance(store: Arc<dyn Storage>) {
    let store = store.as_ref();
    // Uploads are invisible until committed, and gone when dropped.
    let w = store.open_write(&key("a.bin"), new_file()).await.unwrap();
    let data = payload(3 << 20, 1);
    // Pipelined writes arrive out of order within the window.
    w.write_at(1 << 20, Bytes::copy_from_slice(&data[1 << 20..2 << 20])).await.unwrap();
    w.write_at(0, Bytes::copy_from_slice(&data[..1 << 20])).await.unwrap();
    w.write_at(2 << 20, Bytes::copy_from_slice(&data[2 << 20..])).await.unwrap();
    assert!(matches!(store.stat(&key("a.bin")).await, Err(StorageError::NotFound)));
    w.commit().await.unwrap();
    assert_eq!(store.stat(&key("a.bin")).await.unwrap().size, 3 << 20);
    assert_eq!(read_all(store, "a.bin").await, data);
    let r = store.open_read(&key("a.bin")).await.unwrap();
    assert_eq!(r.read_at(100, 10).await.unwrap(), Bytes::copy_from_slice(&data[100..110]));
    assert!(r.read_at(3 << 20, 10).await.unwrap().is_empty(), "past the end");
    // Random access after sequential reads, and a read across a block boundary.
    let across = (1 << 20) - 5;
    assert_eq!(
        r.read_at(across, 10).await.unwrap(),
        Bytes::copy_from_slice(&data[across as usize..across as usize + 10])
    );
    assert_eq!(r.read_at(5, 3).await.unwrap(), Bytes::copy_from_slice(&data[5..8]));
    assert_eq!(r.read_at((3 << 20) - 4, 100).await.unwrap(), Bytes::copy_from_slice(&data[(3 << 20) - 4..]));
    let dropped = store.open_write(&key("dropped.bin"), new_file()).await.unwrap();
    dropped.write_at(0, Bytes::from_static(b"half")).await.unwrap();
    drop(dropped);
    assert!(matches!(store.stat(&key("dropped.bin")).await, Err(StorageError::NotFound)));
    // An existing file is refused without `replace`.
    let keep = WriteOptions { replace: false, ..new_file() };
    assert!(matches!(store.open_write(&key("a.bin"), keep).await, Err(StorageError::AlreadyExists)));

    // Folders.
    store.mkdir(&key("d")).await.unwrap();
    assert_eq!(store.stat(&key("d")).await.unwrap().kind, EntryKind::Dir);
    assert!(matches!(store.mkdir(&key("d")).await, Err(StorageError::AlreadyExists)));
    assert!(matches!(store.mkdir(&key("missing/child")).await, Err(StorageError::NotFound)));
    assert_eq!(names(store, "").await, ["a.bin", "d"]);
    assert!(names(store, "d").await.is_empty(), "an empty folder lists empty");
    write(store, "d/inner.txt", b"inner").await;
    store.mkdir(&key("d/sub")).await.unwrap();
    write(store, "d/sub/deep.txt", b"deep").await;
    assert!(matches!(store.rmdir(&key("d")).await, Err(StorageError::NotEmpty)));
    assert!(matches!(store.list(&key("a.bin")).await, Err(StorageError::NotADirectory)));
    assert!(matches!(store.open_read(&key("d")).await, Err(StorageError::IsADirectory)));
    assert!(matches!(store.remove(&key("d")).await, Err(StorageError::IsADirectory)));

    // Renames: a file over an existing one, and a whole folder.
    write(store, "b.bin", b"bee").await;
    store.rename(&key("b.bin"), &key("a.bin")).await.unwrap();
    assert_eq!(read_all(store, "a.bin").await, b"bee");
    assert!(matches!(store.stat(&key("b.bin")).await, Err(StorageError::NotFound)));
    store.rename(&key("d"), &key("e")).await.unwrap();
    assert_eq!(read_all(store, "e/sub/deep.txt").await, b"deep");
    assert_eq!(names(store, "e").await, ["inner.txt", "sub"]);
    assert!(matches!(store.stat(&key("d")).await, Err(StorageError::NotFound)));

    // Removal.
    store.remove(&key("e/sub/deep.txt")).await.unwrap();
    store.rmdir(&key("e/sub")).await.unwrap();
    store.remove(&key("e/inner.txt")).await.unwrap();
    store.rmdir(&key("e")).await.unwrap();
    assert!(matches!(store.remove(&key("nope")).await, Err(StorageError::NotFound)));
    assert_eq!(names(store, "").await, ["a.bin"]);

    // A big folder is listed completely, in batches.
    store.mkdir(&key("many")).await.unwrap();
    for i in 0..2500 {
        write(store, &format!("many/f{i:04}"), b"x").await;
    }
    let listed = names(store, "many").await;
    assert_eq!(listed.len(), 2500);
    assert_eq!(listed[2499], "f2499");

    // A scoped view sees only its prefix.
    let scoped = store.scoped(&key("many")).unwrap();
    assert_eq!(read_all(scoped.as_ref(), "f0001").await, b"x");
    assert!(matches!(scoped.stat(&key("a.bin")).await, Err(StorageError::NotFound)));
}

#[tokio::test]
async fn local_disk_conforms() {
    let dir = tempfile::tempdir().unwrap();
    conformance(Arc::new(LocalStorage::new(dir.path()).unwrap())).await;
}

#[tokio::test]
async fn object_store_conforms() {
    let options = ObjectOptions {
        part_size: 1 << 20,
        parts_in_flight: 2,
        reorder_window: 2 << 20,
        read_block: 1 << 20,
        ..ObjectOptions::default()
    };
    let memory = Arc::new(object_store::memory::InMemory::new());
    conformance(Arc::new(ObjectStorage::new(memory, None, "tenant/files", options))).await;
}

#[tokio::test]
async fn object_store_refuses_what_objects_cannot_do() {
    let memory = Arc::new(object_store::memory::InMemory::new());
    let store = ObjectStorage::new(
        memory,
        None,
        "",
        ObjectOptions { reorder_window: 1 << 20, ..ObjectOptions::default() },
    );
    write(&store, "x.bin", b"0123456789").await;
    // Times and modes: accepted without effect by default, refused when so configured.
    let now = std::time::SystemTime::now();
    store.set_times(&key("x.bin"), now, now).await.unwrap();
    store.set_mode(&key("x.bin"), 0o600).await.unwrap();
    assert!(matches!(store.set_times(&key("nope.bin"), now, now).await, Err(StorageError::NotFound)));
    assert!(matches!(store.set_len(&key("x.bin"), 3).await, Err(StorageError::Unsupported)));
    // Resume or append to an existing object: refused with a clear error, nothing changed.
    let resume = WriteOptions { create: true, truncate: false, replace: true, ..WriteOptions::default() };
    assert!(matches!(store.open_write(&key("x.bin"), resume).await, Err(StorageError::Unsupported)));
    let append = WriteOptions { append: true, ..resume };
    assert!(matches!(store.open_write(&key("x.bin"), append).await, Err(StorageError::Unsupported)));
    // Writes far outside the reorder window (a client writing the end first) spill to a
    // temporary file and upload on commit; holes read as zeros, as on a disk.
    let w = store.open_write(&key("y.bin"), new_file()).await.unwrap();
    w.write_at(3 << 20, Bytes::from_static(b"tail")).await.unwrap();
    w.write_at(0, Bytes::from_static(b"head")).await.unwrap();
    w.write_at(2, Bytes::from_static(b"AD")).await.unwrap();
    assert_eq!(w.metadata().await.unwrap().size, (3 << 20) + 4);
    w.commit().await.unwrap();
    let y = read_all(&store, "y.bin").await;
    assert_eq!(y.len(), (3 << 20) + 4);
    assert_eq!(&y[..4], b"heAD");
    assert!(y[4..3 << 20].iter().all(|&b| b == 0));
    assert_eq!(&y[3 << 20..], b"tail");
    // Once parts have left, rewriting earlier data is refused.
    let small = ObjectStorage::new(
        Arc::new(object_store::memory::InMemory::new()),
        None,
        "",
        ObjectOptions {
            part_size: 5 << 20,
            parts_in_flight: 1,
            reorder_window: 1 << 20,
            reorder_budget: 16 << 20,
            read_block: 1 << 20,
            ignore_attributes: false,
        },
    );
    assert!(matches!(small.set_times(&key("none"), now, now).await, Err(StorageError::Unsupported)));
    let w = small.open_write(&key("z.bin"), new_file()).await.unwrap();
    w.write_at(0, Bytes::from(payload(6 << 20, 3))).await.unwrap();
    assert!(matches!(w.write_at(0, Bytes::from_static(b"again")).await, Err(StorageError::Unsupported)));
    drop(w);
    assert!(matches!(small.stat(&key("z.bin")).await, Err(StorageError::NotFound)));
    assert_eq!(read_all(&store, "x.bin").await, b"0123456789");

    // Once parts have left, a write beyond the window waits for the writes before it (a client
    // with more in flight than the window) instead of failing the upload.
    let w = Arc::new(small.open_write(&key("w.bin"), new_file()).await.unwrap());
    let data = Bytes::from(payload(9 << 20, 4));
    w.write_at(0, data.slice(..6 << 20)).await.unwrap();
    let far = tokio::spawn({
        let (w, data) = (Arc::clone(&w), data.clone());
        async move { w.write_at(8 << 20, data.slice(8 << 20..)).await }
    });
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert!(!far.is_finished(), "the far write waits");
    w.write_at(6 << 20, data.slice(6 << 20..8 << 20)).await.unwrap();
    far.await.unwrap().unwrap();
    Arc::into_inner(w).expect("one owner left").commit().await.unwrap();
    assert_eq!(read_all(&small, "w.bin").await, data);
}

#[tokio::test]
async fn filepart_uploads_land_at_the_final_key_without_a_copy() {
    let memory = Arc::new(object_store::memory::InMemory::new());
    let store = ObjectStorage::new(memory.clone(), None, "", ObjectOptions::default());
    store.mkdir(&key("d")).await.unwrap();
    let w = store.open_write(&key("d/report.csv.filepart"), new_file()).await.unwrap();
    w.write_at(0, Bytes::from_static(b"new content")).await.unwrap();
    w.commit().await.unwrap();
    // The data sits at the final key, but until the rename only the temporary name exists.
    use object_store::ObjectStoreExt;
    assert!(memory.head(&object_store::path::Path::from("d/report.csv")).await.is_ok());
    assert_eq!(names(&store, "d").await, ["report.csv.filepart"]);
    assert_eq!(store.stat(&key("d/report.csv.filepart")).await.unwrap().size, 11);
    assert_eq!(read_all(&store, "d/report.csv.filepart").await, b"new content");
    assert!(matches!(store.stat(&key("d/report.csv")).await, Err(StorageError::NotFound)));
    assert!(matches!(store.remove(&key("d/report.csv")).await, Err(StorageError::NotFound)));
    store.rename(&key("d/report.csv.filepart"), &key("d/report.csv")).await.unwrap();
    assert_eq!(read_all(&store, "d/report.csv").await, b"new content");
    assert_eq!(names(&store, "d").await, ["report.csv"]);
    assert!(matches!(store.stat(&key("d/report.csv.filepart")).await, Err(StorageError::NotFound)));
    // With the final name present, NAME.filepart is a file of its own: NAME keeps its data, and
    // removing NAME removes it (WinSCP without an overwriting rename), then the rename copies.
    let w = store.open_write(&key("d/report.csv.filepart"), new_file()).await.unwrap();
    w.write_at(0, Bytes::from_static(b"newer")).await.unwrap();
    w.commit().await.unwrap();
    assert_eq!(names(&store, "d").await, ["report.csv", "report.csv.filepart"]);
    assert_eq!(read_all(&store, "d/report.csv").await, b"new content");
    store.remove(&key("d/report.csv")).await.unwrap();
    assert_eq!(names(&store, "d").await, ["report.csv.filepart"]);
    store.rename(&key("d/report.csv.filepart"), &key("d/report.csv")).await.unwrap();
    assert_eq!(read_all(&store, "d/report.csv").await, b"newer");
    // A dropped .filepart upload leaves the old file alone.
    let w = store.open_write(&key("d/report.csv.filepart"), new_file()).await.unwrap();
    w.write_at(0, Bytes::from_static(b"partial")).await.unwrap();
    drop(w);
    assert_eq!(read_all(&store, "d/report.csv").await, b"newer");
    assert_eq!(names(&store, "d").await, ["report.csv"]);
    // A pending upload removed under its temporary name is gone under both.
    let w = store.open_write(&key("d/gone.txt.filepart"), new_file()).await.unwrap();
    w.write_at(0, Bytes::from_static(b"x")).await.unwrap();
    w.commit().await.unwrap();
    store.remove(&key("d/gone.txt.filepart")).await.unwrap();
    assert_eq!(names(&store, "d").await, ["report.csv"]);
    assert!(memory.head(&object_store::path::Path::from("d/gone.txt")).await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sftp_and_ftps_serve_files_from_object_storage() {
    use crate::harness::{Python, TestServer, User, ok, run, sha256, sha256_file};
    let srv = TestServer::start_with("[storage]\nbackend = \"memory\"\nprefix = \"ferry\"\n").await;
    srv.add_user(User { password: Some("obj-pass-1"), ..User::with_key("obj") }).await;
    let local = tempfile::tempdir().unwrap();
    // 20 MiB: several multipart parts, written by OpenSSH's pipelined, reordered WRITEs.
    std::fs::write(local.path().join("big.bin"), payload(20 << 20, 31)).unwrap();
    let out = ok(&srv
        .sftp(
            "obj",
            local.path(),
            "mkdir in\nput -p big.bin in/big.bin\nrename in out\nls -l out\nget out/big.bin back.bin\n",
        )
        .await);
    assert!(out.contains("big.bin"), "{out}");
    assert_eq!(sha256_file(&local.path().join("back.bin")), sha256(&payload(20 << 20, 31)));
    assert!(!srv.home("obj").join("out").exists(), "nothing went to the local disk");

    let ftps = format!("ftps://127.0.0.1:{}/out/big.bin", srv.ftps.port());
    let via_ftps = local.path().join("via-ftps.bin");
    let mut curl = tokio::process::Command::new("curl");
    curl.args(["-sS", "--cacert"])
        .arg(&srv.cert)
        .args(["-u", "obj:obj-pass-1", "-o"])
        .arg(&via_ftps)
        .arg(&ftps);
    ok(&run(curl, 120).await);
    assert_eq!(sha256_file(&via_ftps), sha256(&payload(20 << 20, 31)));
    // Resuming an upload over an existing object is refused clearly, the object unchanged.
    std::fs::write(local.path().join("head.bin"), &payload(20 << 20, 31)[..1 << 20]).unwrap();
    ok(&srv.sftp("obj", local.path(), "put head.bin out/part.bin\n").await);
    let err = crate::harness::failed(&srv.sftp("obj", local.path(), "reput big.bin out/part.bin\n").await);
    assert!(err.contains("nsupported"), "{err}");
    // Over FTPS: APPE (curl --append) and REST+STOR (ftplib) are refused with 504.
    let mut curl = tokio::process::Command::new("curl");
    curl.args(["-sS", "--cacert"])
        .arg(&srv.cert)
        .args(["-u", "obj:obj-pass-1", "--append", "-T"])
        .arg(local.path().join("head.bin"))
        .arg(format!("ftps://127.0.0.1:{}/out/part.bin", srv.ftps.port()));
    let err = crate::harness::failed(&run(curl, 60).await);
    assert!(err.contains("504"), "{err}");
    let script = r#"
import ftplib, io, ssl, sys
ftp = ftplib.FTP_TLS(context=ssl.create_default_context(cafile=sys.argv[2]))
ftp.connect("127.0.0.1", int(sys.argv[1]))
ftp.login("obj", "obj-pass-1")
ftp.prot_p()
try:
    ftp.storbinary("STOR out/part.bin", io.BytesIO(b"more"), rest=100)
except ftplib.error_perm as e:
    print(e)
"#;
    let out = Python::inline(script).arg(srv.ftp.port().to_string()).arg(&srv.cert).stdout(60).await;
    assert!(out.starts_with("504"), "{out}");
    ok(&srv.sftp("obj", local.path(), "get out/part.bin again.bin\n").await);
    assert_eq!(std::fs::read(local.path().join("again.bin")).unwrap(), &payload(20 << 20, 31)[..1 << 20]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn winscp_style_filepart_uploads_over_sftp_on_object_storage() {
    use crate::harness::{Python, TestServer, User};
    let srv = TestServer::start_with("[storage]\nbackend = \"memory\"\n").await;
    srv.add_user(User::with_password("win", "win-pass-1")).await;
    // WinSCP's sequence with a plain SFTP v3 rename: upload NAME.filepart, delete NAME, rename.
    let script = r#"
import paramiko, sys
t = paramiko.Transport(("127.0.0.1", int(sys.argv[1])))
t.connect(username="win", password="win-pass-1")
s = paramiko.SFTPClient.from_transport(t)
with s.open("report.csv", "wb") as f:
    f.write(b"old")
with s.open("report.csv.filepart", "wb") as f:
    f.write(b"new" * 100000)
s.remove("report.csv")
s.rename("report.csv.filepart", "report.csv")
with s.open("report.csv", "rb") as f:
    data = f.read()
print(len(data), data[:3].decode(), sorted(s.listdir(".")))
"#;
    let out = Python::inline(script).arg(srv.addr.port().to_string()).stdout(60).await;
    assert_eq!(out.trim(), "300000 new ['report.csv']");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_emulator_conforms() {
    conformance(Emulator::start(Kind::S3, "conformance").await.storage("ferry")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gcs_emulator_conforms() {
    conformance(Emulator::start(Kind::Gcs, "conformance").await.storage("ferry")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn azure_emulator_conforms() {
    conformance(Emulator::start(Kind::Azure, "conformance").await.storage("ferry")).await;
}

/// SFTP (OpenSSH) and FTPS (curl) in both directions through one emulator, 0 B to 1 GiB, each
/// file read back by the other protocol and compared by sha256. `one_way_from` limits files of
/// that size and up to SFTP up, FTPS down (the moto-based GCS emulator moves ~10 MB/s).
async fn round_trips(kind: Kind, one_way_from: usize) {
    use crate::harness::{TestServer, User, ok, run, sha256_file};
    let emulator = Emulator::start(kind, "transfers").await;
    let srv = TestServer::start_with(&emulator.config("served")).await;
    srv.add_user(User { password: Some("obj-pass-1"), ..User::with_key("obj") }).await;
    let local = tempfile::tempdir().unwrap();
    let curl = |args: &[&str]| {
        let mut cmd = tokio::process::Command::new("curl");
        cmd.args(["-sS", "--fail", "--cacert"]).arg(&srv.cert).args(["-u", "obj:obj-pass-1"]).args(args);
        cmd
    };
    for (i, size) in [0usize, 1, (5 << 20) + 1, 1 << 30].into_iter().enumerate() {
        let name = format!("f{size}.bin");
        let path = local.path().join(&name);
        write_payload(&path, size, 60 + i as u64);
        let want = sha256_file(&path);
        // SFTP up, FTPS down.
        ok(&srv.sftp("obj", local.path(), &format!("put {name} up-{name}\n")).await);
        let url = format!("ftps://127.0.0.1:{}/up-{name}", srv.ftps.port());
        let down = local.path().join(format!("down-{name}"));
        ok(&run(curl(&["-o", down.to_str().unwrap(), &url]), 600).await);
        assert_eq!(sha256_file(&down), want, "{kind:?} {size} B: SFTP up, FTPS down");
        std::fs::remove_file(&down).unwrap();
        if size >= one_way_from {
            continue;
        }
        // FTPS up, SFTP down.
        let url = format!("ftps://127.0.0.1:{}/ftps-{name}", srv.ftps.port());
        ok(&run(curl(&["-T", path.to_str().unwrap(), &url]), 600).await);
        ok(&srv.sftp("obj", local.path(), &format!("get ftps-{name} back-{name}\n")).await);
        assert_eq!(
            sha256_file(&local.path().join(format!("back-{name}"))),
            want,
            "{kind:?} {size} B: FTPS up, SFTP down"
        );
        std::fs::remove_file(local.path().join(format!("back-{name}"))).unwrap();
    }
    assert!(!srv.files.join("obj").exists(), "nothing went to the local disk");
}

/// Writes `size` bytes of the test payload to `path` without holding them all in memory.
fn write_payload(path: &std::path::Path, size: usize, seed: u64) {
    use std::io::Write;
    let mut file = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    let block = payload(8 << 20, seed);
    let mut left = size;
    while left > 0 {
        let n = left.min(block.len());
        file.write_all(&block[..n]).unwrap();
        left -= n;
    }
    file.flush().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sftp_and_ftps_round_trips_over_the_s3_emulator() {
    round_trips(Kind::S3Fs, usize::MAX).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sftp_and_ftps_round_trips_over_the_gcs_emulator() {
    round_trips(Kind::Gcs, 1 << 30).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sftp_and_ftps_round_trips_over_the_azure_emulator() {
    round_trips(Kind::Azure, usize::MAX).await;
}

/// Azure storage goes away in the middle of an SFTP upload: the client gets an error within the
/// retry budget, the failure is audited, no partial blob is visible when storage returns, and
/// the server serves again without a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_storage_outage_mid_upload_fails_cleanly_and_service_resumes() {
    use crate::harness::{TestServer, User, failed, ok, run};
    use ferry::audit::Outcome;
    let mut emulator = Emulator::start(Kind::Azure, "outage").await;
    let mut srv = TestServer::start_with(&emulator.config("served")).await;
    srv.add_user(User::with_key("out")).await;
    let local = tempfile::tempdir().unwrap();
    std::fs::write(local.path().join("keep.bin"), b"kept").unwrap();
    write_payload(&local.path().join("big.bin"), 64 << 20, 81);
    ok(&srv.sftp("out", local.path(), "put keep.bin\n").await);

    // 64 MiB at 40 Mbit/s takes ~13 s: storage stops 3 s in.
    let upload = srv.sftp_command("out", local.path(), "put big.bin\n", &["-l", "40000"]);
    let upload = tokio::spawn(run(upload, 120));
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    emulator.stop().await;
    let started = std::time::Instant::now();
    let err = failed(&upload.await.unwrap());
    assert!(started.elapsed() < std::time::Duration::from_secs(60), "error came in time");
    // OpenSSH reports the failed WRITE or CLOSE ("close remote: Failure").
    assert!(err.contains("remote") || err.contains("big.bin"), "{err}");
    let record =
        srv.expect_event(|e| e.event == "file.upload" && e.path.as_deref() == Some("/big.bin")).await;
    assert_eq!(record.outcome, Outcome::Failed, "{record:?}");

    emulator.restart().await;
    let listing = ok(&srv.sftp("out", local.path(), "ls -1\nget keep.bin again.bin\n").await);
    assert!(!listing.contains("big.bin"), "no partial object: {listing}");
    assert_eq!(std::fs::read(local.path().join("again.bin")).unwrap(), b"kept");
    ok(&srv.sftp("out", local.path(), "put big.bin\n").await);
    let listing = ok(&srv.sftp("out", local.path(), "ls -l big.bin\n").await);
    assert!(listing.contains(&(64u64 << 20).to_string()), "{listing}");
}

/// WinSCP's `NAME.filepart` pattern at 6 GiB on S3: above CopyObject's 5 GiB limit, so the final
/// rename must not copy. The upload is written straight to the key `NAME` (s3s-fs keeps one file
/// per object: the same inode before and after the rename proves nothing was copied).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn six_gib_filepart_upload_is_renamed_without_a_copy() {
    use std::io::{Read, Seek, SeekFrom, Write};
    use std::os::unix::fs::MetadataExt;

    use crate::harness::{TestServer, User, ok};
    const SIZE: u64 = 6 << 30;
    let emulator = Emulator::start(Kind::S3Fs, "big").await;
    let srv = TestServer::start_with(&emulator.config("served")).await;
    srv.add_user(User::with_key("win")).await;
    let local = tempfile::tempdir().unwrap();
    // Sparse, with real data at the start, across the 5 GiB mark and at the end.
    let marks = [0, (5 << 30) - 3, SIZE - (1 << 20)];
    let mut file = std::fs::File::create(local.path().join("big.iso")).unwrap();
    file.set_len(SIZE).unwrap();
    for (i, at) in marks.iter().enumerate() {
        file.seek(SeekFrom::Start(*at)).unwrap();
        file.write_all(&payload(1 << 20, 90 + i as u64)).unwrap();
    }
    drop(file);

    ok(&srv.sftp("win", local.path(), "put big.iso big.iso.filepart\n").await);
    let object = emulator.dir().join("s3s/big/served/win/big.iso");
    let before = std::fs::metadata(&object).expect("the upload went straight to the final key");
    assert_eq!(before.len(), SIZE);
    let started = std::time::Instant::now();
    let out = ok(&srv.sftp("win", local.path(), "rename big.iso.filepart big.iso\nls -l\n").await);
    assert!(started.elapsed() < std::time::Duration::from_secs(10), "no 6 GiB copy");
    let listing = out.split("sftp> ls -l").nth(1).unwrap_or_default();
    assert!(listing.contains(&format!("{SIZE} ")) && !listing.contains("filepart"), "{out}");
    assert_eq!(std::fs::metadata(&object).unwrap().ino(), before.ino(), "the object was not copied");
    let mut stored = std::fs::File::open(&object).unwrap();
    for (i, at) in marks.iter().enumerate() {
        let mut got = vec![0; 1 << 20];
        stored.seek(SeekFrom::Start(*at)).unwrap();
        stored.read_exact(&mut got).unwrap();
        assert!(got == payload(1 << 20, 90 + i as u64), "data at {at}");
    }
}
