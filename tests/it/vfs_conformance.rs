//! One behaviour for every storage backend: the same checks run against the local disk and the
//! object-store backend (object_store's in-memory store here).

use std::sync::Arc;

use bytes::Bytes;
use ferry::storage::{
    EntryKind, Key, LocalStorage, ObjectOptions, ObjectStorage, Storage, StorageError, WriteOptions,
};

use crate::harness::payload;

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
            read_block: 1 << 20,
        },
    );
    let w = small.open_write(&key("z.bin"), new_file()).await.unwrap();
    w.write_at(0, Bytes::from(payload(6 << 20, 3))).await.unwrap();
    assert!(matches!(w.write_at(0, Bytes::from_static(b"again")).await, Err(StorageError::Unsupported)));
    drop(w);
    assert!(matches!(small.stat(&key("z.bin")).await, Err(StorageError::NotFound)));
    assert_eq!(read_all(&store, "x.bin").await, b"0123456789");
}

#[tokio::test]
async fn filepart_uploads_land_at_the_final_key_without_a_copy() {
    let memory = Arc::new(object_store::memory::InMemory::new());
    let store = ObjectStorage::new(memory, None, "", ObjectOptions::default());
    store.mkdir(&key("d")).await.unwrap();
    write(&store, "d/report.csv", b"old").await;
    let w = store.open_write(&key("d/report.csv.filepart"), new_file()).await.unwrap();
    w.write_at(0, Bytes::from_static(b"new content")).await.unwrap();
    // Until it is complete, neither name shows the new data.
    assert_eq!(read_all(&store, "d/report.csv").await, b"old");
    w.commit().await.unwrap();
    // The data already sits at the final key; the temporary name answers for it until renamed.
    assert_eq!(names(&store, "d").await, ["report.csv"]);
    assert_eq!(store.stat(&key("d/report.csv.filepart")).await.unwrap().size, 11);
    // A client that deletes the old file before renaming must not lose the upload.
    store.remove(&key("d/report.csv")).await.unwrap();
    store.rename(&key("d/report.csv.filepart"), &key("d/report.csv")).await.unwrap();
    assert_eq!(read_all(&store, "d/report.csv").await, b"new content");
    assert!(matches!(store.stat(&key("d/report.csv.filepart")).await, Err(StorageError::NotFound)));
    // A dropped .filepart upload leaves the old file alone.
    let w = store.open_write(&key("d/report.csv.filepart"), new_file()).await.unwrap();
    w.write_at(0, Bytes::from_static(b"partial")).await.unwrap();
    drop(w);
    assert_eq!(read_all(&store, "d/report.csv").await, b"new content");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sftp_and_ftps_serve_files_from_object_storage() {
    use crate::harness::{TestServer, User, ok, run, sha256, sha256_file};
    let srv = TestServer::start_with("[storage]\nbackend = \"memory\"\nprefix = \"ferry\"\n").await;
    srv.add_user(User { password: Some("obj-pass-1"), ..User::with_key("obj") }).await;
    let local = tempfile::tempdir().unwrap();
    // 20 MiB: several multipart parts, written by OpenSSH's pipelined, reordered WRITEs.
    std::fs::write(local.path().join("big.bin"), payload(20 << 20, 31)).unwrap();
    let out = ok(&srv
        .sftp(
            "obj",
            local.path(),
            "mkdir in\nput big.bin in/big.bin\nrename in out\nls -l out\nget out/big.bin back.bin\n",
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
    ok(&srv.sftp("obj", local.path(), "get out/part.bin again.bin\n").await);
    assert_eq!(std::fs::read(local.path().join("again.bin")).unwrap(), &payload(20 << 20, 31)[..1 << 20]);
}

/// A moto S3 server on a loopback port for one test, stopped on drop.
struct Moto {
    child: tokio::process::Child,
    endpoint: String,
}

impl Moto {
    async fn start(bucket: &str) -> Self {
        let python = std::env::var("FERRY_TEST_PYTHON").unwrap_or_else(|_| "python3".into());
        let bin = std::path::Path::new(&python).with_file_name("moto_server");
        assert!(
            bin.exists(),
            "{} missing: tests/run.sh installs moto[server] next to FERRY_TEST_PYTHON",
            bin.display()
        );
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let child = tokio::process::Command::new(&bin)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let endpoint = format!("http://127.0.0.1:{port}");
        // Create the bucket (moto does not check signatures), retrying until the server is up.
        for attempt in 0.. {
            assert!(attempt < 100, "moto did not start");
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            let Ok(mut stream) = tokio::net::TcpStream::connect(("127.0.0.1", port)).await else { continue };
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            let request = format!(
                "PUT /{bucket} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            );
            if stream.write_all(request.as_bytes()).await.is_err() {
                continue;
            }
            let mut reply = String::new();
            let _ = stream.read_to_string(&mut reply).await;
            if reply.starts_with("HTTP/1.1 200") {
                break;
            }
        }
        Self { child, endpoint }
    }

    fn config(&self, bucket: &str) -> String {
        format!(
            "[storage]\nbackend = \"s3\"\nbucket = \"{bucket}\"\nprefix = \"ferry\"\nendpoint = \"{}\"\n\
             region = \"us-east-1\"\nallow_http = true\npath_style = true\naccess_key_id = \"test\"\n\
             secret_access_key = \"test\"\npart_size = \"5MiB\"\n",
            self.endpoint
        )
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_emulator_conforms() {
    let moto = Moto::start("conformance").await;
    let table: toml::Table = moto.config("conformance").parse().unwrap();
    let config = ferry::config::Config::from_table(table, Vec::new()).unwrap();
    conformance(ferry::storage::open(&config.storage).unwrap()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sftp_and_ftps_over_the_s3_emulator() {
    use crate::harness::{TestServer, User, ok, sha256, sha256_file};
    let moto = Moto::start("transfers").await;
    let srv = TestServer::start_with(&moto.config("transfers")).await;
    srv.add_user(User::with_key("s3user")).await;
    let local = tempfile::tempdir().unwrap();
    // 23 MiB: five multipart parts of 5 MiB from pipelined SFTP writes.
    std::fs::write(local.path().join("big.bin"), payload(23 << 20, 41)).unwrap();
    ok(&srv
        .sftp(
            "s3user",
            local.path(),
            "mkdir d\nput big.bin d/big.bin\nrename d e\nget e/big.bin back.bin\nls -l e\n",
        )
        .await);
    assert_eq!(sha256_file(&local.path().join("back.bin")), sha256(&payload(23 << 20, 41)));
    assert!(!srv.files.join("s3user").exists(), "nothing on local disk");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn winscp_style_filepart_uploads_over_sftp_on_object_storage() {
    use crate::harness::{TestServer, User, ok, run};
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
    let python = std::env::var("FERRY_TEST_PYTHON").unwrap_or_else(|_| "python3".into());
    let mut cmd = tokio::process::Command::new(python);
    cmd.arg("-c").arg(script).arg(srv.addr.port().to_string());
    let out = ok(&run(cmd, 60).await);
    assert_eq!(out.trim(), "300000 new ['report.csv']");
}

/// An azurite Blob emulator on a loopback port for one test, with a container, stopped on drop.
struct Azurite {
    child: tokio::process::Child,
    endpoint: String,
}

/// azurite's well-known development account key (public, documented by Microsoft).
const AZURITE_KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

impl Azurite {
    async fn start(container: &str) -> Self {
        let bin =
            std::env::var("FERRY_TEST_AZURITE").expect("FERRY_TEST_AZURITE: tests/run.sh installs azurite");
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let child = tokio::process::Command::new(bin)
            .args(["--blobHost", "127.0.0.1", "--blobPort", &port.to_string()])
            .args(["--inMemoryPersistence", "--skipApiVersionCheck", "--silent"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let endpoint = format!("http://127.0.0.1:{port}/devstoreaccount1");
        let python = std::env::var("FERRY_TEST_PYTHON").unwrap_or_else(|_| "python3".into());
        let script = format!(
            "from azure.storage.blob import BlobServiceClient\n\
             c = 'DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey={AZURITE_KEY};BlobEndpoint={endpoint};'\n\
             BlobServiceClient.from_connection_string(c).create_container('{container}')\n"
        );
        for attempt in 0.. {
            assert!(attempt < 50, "azurite did not start");
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            let out = tokio::process::Command::new(&python).arg("-c").arg(&script).output().await.unwrap();
            if out.status.success() {
                break;
            }
        }
        Self { child, endpoint }
    }

    fn config(&self, container: &str) -> String {
        format!(
            "[storage]\nbackend = \"azure\"\nbucket = \"{container}\"\nprefix = \"ferry\"\naccount = \"devstoreaccount1\"\n\
             endpoint = \"{}\"\nallow_http = true\nsecret_access_key = \"{AZURITE_KEY}\"\npart_size = \"5MiB\"\n",
            self.endpoint
        )
    }
}

impl Drop for Azurite {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn azure_emulator_conforms_and_serves_sftp() {
    use crate::harness::{TestServer, User, ok, sha256, sha256_file};
    let azurite = Azurite::start("conformance").await;
    let table: toml::Table = azurite.config("conformance").parse().unwrap();
    let config = ferry::config::Config::from_table(table, Vec::new()).unwrap();
    conformance(ferry::storage::open(&config.storage).unwrap()).await;

    let srv = TestServer::start_with(
        &azurite.config("conformance").replace("prefix = \"ferry\"", "prefix = \"served\""),
    )
    .await;
    srv.add_user(User::with_key("azuser")).await;
    let local = tempfile::tempdir().unwrap();
    std::fs::write(local.path().join("big.bin"), payload(12 << 20, 51)).unwrap();
    ok(&srv
        .sftp("azuser", local.path(), "mkdir d\nput big.bin d/big.bin\nrename d e\nget e/big.bin back.bin\n")
        .await);
    assert_eq!(sha256_file(&local.path().join("back.bin")), sha256(&payload(12 << 20, 51)));
}
