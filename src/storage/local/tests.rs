use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use bytes::Bytes;

use super::beneath::Root;
use super::*;

fn key(s: &str) -> Key {
    Key::from_segments(s.split('/').filter(|s| !s.is_empty()))
}

fn atomic() -> WriteOptions {
    WriteOptions { create: true, truncate: true, atomic: true, replace: true, ..Default::default() }
}

#[tokio::test]
async fn atomic_write_is_invisible_until_commit_and_gone_on_drop() {
    let dir = tempfile::tempdir().unwrap();
    let store = LocalStorage::new(dir.path()).unwrap();
    let w = store.open_write(&key("a.bin"), atomic()).await.unwrap();
    w.write_at(0, Bytes::from_static(b"hello")).await.unwrap();
    assert!(matches!(store.stat(&key("a.bin")).await, Err(StorageError::NotFound)));
    w.commit().await.unwrap();
    assert_eq!(store.stat(&key("a.bin")).await.unwrap().size, 5);

    let w = store.open_write(&key("b.bin"), atomic()).await.unwrap();
    w.write_at(0, Bytes::from_static(b"partial")).await.unwrap();
    drop(w);
    assert_eq!(std::fs::read_dir(store.root()).unwrap().count(), 1, "only a.bin remains");
}

#[tokio::test]
async fn symlinks_out_of_the_root_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    let store = LocalStorage::new(&root).unwrap();
    std::os::unix::fs::symlink("/etc", root.join("etc")).unwrap();
    std::os::unix::fs::symlink("/etc/passwd", root.join("passwd")).unwrap();
    std::os::unix::fs::symlink("../../../../../../etc", root.join("up")).unwrap();
    assert!(matches!(store.stat(&key("etc/passwd")).await, Err(StorageError::Escapes)));
    assert!(matches!(store.resolve(&key("passwd"), true).await, Err(StorageError::Escapes)));
    assert!(matches!(store.resolve(&key("up/passwd"), true).await, Err(StorageError::Escapes)));
    assert!(matches!(store.open_read(&key("passwd")).await, Err(StorageError::Escapes)));
    assert!(matches!(store.list(&key("etc")).await, Err(StorageError::Escapes)));
    assert!(matches!(store.read_link(&key("up")).await, Err(StorageError::Escapes)));
    // The link itself may be seen and removed.
    assert_eq!(store.lstat(&key("passwd")).await.unwrap().kind, EntryKind::Symlink);
    store.remove(&key("passwd")).await.unwrap();
}

#[tokio::test]
async fn links_inside_the_root_resolve_and_the_calls_themselves_never_follow_one() {
    let dir = tempfile::tempdir().unwrap();
    let store = LocalStorage::new(dir.path()).unwrap();
    let root = store.root().to_path_buf();
    std::fs::create_dir_all(root.join("a/b")).unwrap();
    std::fs::write(root.join("a/b/f.txt"), b"data").unwrap();
    std::os::unix::fs::symlink("a", root.join("rel")).unwrap();
    std::os::unix::fs::symlink(root.join("a/b"), root.join("abs")).unwrap();
    std::os::unix::fs::symlink("../a/b/f.txt", root.join("a/up")).unwrap();
    std::os::unix::fs::symlink("loop", root.join("loop")).unwrap();

    assert_eq!(store.resolve(&key("rel/b/f.txt"), true).await.unwrap(), key("a/b/f.txt"));
    assert_eq!(store.resolve(&key("abs/f.txt"), true).await.unwrap(), key("a/b/f.txt"));
    assert_eq!(store.resolve(&key("a/up"), true).await.unwrap(), key("a/b/f.txt"));
    assert_eq!(store.resolve(&key("a/up"), false).await.unwrap(), key("a/up"));
    assert_eq!(store.resolve(&key("rel/new/x"), true).await.unwrap(), key("a/new/x"), "missing names kept");
    assert!(matches!(store.resolve(&key("loop"), true).await, Err(StorageError::Io(_))));
    assert!(matches!(store.resolve(&key("a/b/f.txt/x"), true).await, Err(StorageError::NotADirectory)));
    assert_eq!(store.stat(&key("rel")).await.unwrap().kind, EntryKind::Dir);

    // Unresolved keys passing a link are refused by every call.
    assert!(matches!(store.open_read(&key("rel/b/f.txt")).await, Err(StorageError::Escapes)));
    assert!(matches!(store.open_read(&key("a/up")).await, Err(StorageError::Escapes)));
    assert!(matches!(store.open_write(&key("abs/n.txt"), atomic()).await, Err(StorageError::Escapes)));
    assert!(matches!(store.open_write(&key("a/up"), atomic()).await, Err(StorageError::Escapes)));
    assert!(matches!(store.mkdir(&key("rel/d")).await, Err(StorageError::Escapes)));
    assert!(matches!(store.rename(&key("a/b/f.txt"), &key("rel/g")).await, Err(StorageError::Escapes)));
    assert!(matches!(store.hard_link(&key("a/b/f.txt"), &key("abs/h")).await, Err(StorageError::Escapes)));
    assert!(matches!(store.set_len(&key("a/up"), 0).await, Err(StorageError::Escapes)));
    assert!(matches!(store.set_mode(&key("a/up"), 0o600).await, Err(StorageError::Escapes)));
    assert!(matches!(store.list(&key("rel")).await, Err(StorageError::Escapes)));
    assert_eq!(std::fs::read(root.join("a/b/f.txt")).unwrap(), b"data");

    // What a link says comes back as written.
    assert_eq!(store.read_link(&key("a/up")).await.unwrap(), LinkTarget::Relative("../a/b/f.txt".into()));
    assert_eq!(store.read_link(&key("abs")).await.unwrap(), LinkTarget::Key(key("a/b")));
    store.symlink(&LinkTarget::Relative("b/f.txt".into()), &key("a/made")).await.unwrap();
    assert_eq!(std::fs::read_link(root.join("a/made")).unwrap(), Path::new("b/f.txt"));
    store.symlink(&LinkTarget::Key(key("a/b")), &key("made-abs")).await.unwrap();
    assert_eq!(std::fs::read_link(root.join("made-abs")).unwrap(), root.join("a/b"));
}

#[tokio::test]
async fn a_scoped_view_follows_a_home_link_inside_the_root_only() {
    let dir = tempfile::tempdir().unwrap();
    let store = LocalStorage::new(&dir.path().join("root")).unwrap();
    let root = store.root().to_path_buf();
    std::fs::create_dir_all(root.join("real-home")).unwrap();
    std::os::unix::fs::symlink("real-home", root.join("alice")).unwrap();
    std::os::unix::fs::symlink(dir.path(), root.join("mallory")).unwrap();
    let alice = store.scoped(&key("alice")).unwrap();
    let w = alice.open_write(&key("x.txt"), atomic()).await.unwrap();
    w.write_at(0, Bytes::from_static(b"x")).await.unwrap();
    w.commit().await.unwrap();
    assert_eq!(std::fs::read(root.join("real-home/x.txt")).unwrap(), b"x");
    assert!(matches!(store.scoped(&key("mallory")), Err(StorageError::Escapes)));
    store.scoped(&key("new/deep/home")).unwrap();
    assert!(root.join("new/deep/home").is_dir());
}

#[test]
fn key_of_refuses_paths_outside_the_root() {
    let dir = tempfile::tempdir().unwrap();
    let root = Root::open(dir.path()).unwrap();
    let base = root.path().to_path_buf();
    assert_eq!(root.key_of(&base.join("a/../b")).unwrap().as_str(), "b");
    assert!(root.key_of(&base.join("../other")).is_err());
    assert!(root.key_of(&base.join("../../etc")).is_err());
}

/// Swaps `dir` for a symlink to `outside` and back, as fast as it can, until `stop`.
fn swap_in_a_loop(root: &Path, outside: &Path, stop: &AtomicBool) {
    let (dir, aside) = (root.join("dir"), root.join("dir-aside"));
    while !stop.load(Ordering::Relaxed) {
        let _ = std::fs::rename(&dir, &aside);
        let _ = std::os::unix::fs::symlink(outside, &dir);
        std::thread::yield_now();
        let _ = std::fs::remove_file(&dir);
        let _ = std::fs::rename(&aside, &dir);
    }
}

/// Uploads (staged and in place), creates, folders, renames and links race a folder being
/// swapped for a link to outside the root: nothing may ever land outside.
async fn race_swapped_folder(store: LocalStorage) {
    let outside = tempfile::tempdir().unwrap();
    let root = store.root().to_path_buf();
    std::fs::create_dir(root.join("dir")).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let swapper = {
        let (root, outside, stop) = (root.clone(), outside.path().to_path_buf(), Arc::clone(&stop));
        std::thread::spawn(move || swap_in_a_loop(&root, &outside, &stop))
    };
    let in_place = WriteOptions { create: true, truncate: true, replace: true, ..Default::default() };
    for i in 0..400 {
        for options in [atomic(), in_place] {
            if let Ok(w) = store.open_write(&key(&format!("dir/f{i}")), options).await {
                let _ = w.write_at(0, Bytes::from_static(b"payload")).await;
                let _ = w.commit().await;
            }
        }
        let _ = store.mkdir(&key(&format!("dir/d{i}"))).await;
        let _ = store.rename(&key(&format!("dir/f{i}")), &key(&format!("dir/r{i}"))).await;
        let _ = store.hard_link(&key(&format!("dir/r{i}")), &key(&format!("dir/h{i}"))).await;
        let _ = store.symlink(&LinkTarget::Relative("r0".into()), &key(&format!("dir/s{i}"))).await;
        let _ = store.set_len(&key(&format!("dir/h{i}")), 1).await;
        let _ = store.remove(&key(&format!("dir/h{i}"))).await;
    }
    stop.store(true, Ordering::Relaxed);
    swapper.join().unwrap();
    let landed: Vec<_> = std::fs::read_dir(outside.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert!(landed.is_empty(), "created outside the root: {landed:?}");
    // The storage still works once the folder stays put.
    let w = store.open_write(&key("dir/final"), atomic()).await.unwrap();
    w.write_at(0, Bytes::from_static(b"ok")).await.unwrap();
    w.commit().await.unwrap();
    assert_eq!(std::fs::read(root.join("dir/final")).unwrap(), b"ok");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_folder_swapped_for_a_link_never_redirects_writes_outside_with_openat2() {
    let dir = tempfile::tempdir().unwrap();
    race_swapped_folder(LocalStorage::new(dir.path()).unwrap()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_folder_swapped_for_a_link_never_redirects_writes_outside_with_the_walk() {
    let dir = tempfile::tempdir().unwrap();
    let store = LocalStorage { root: Arc::new(Root::open(dir.path()).unwrap().without_openat2()) };
    race_swapped_folder(store).await;
}
