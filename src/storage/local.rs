//! Local-disk backend with true random access. Every key resolves inside the canonical root:
//! the parent is canonicalised and must stay under the root, and a final symlink is followed
//! only when its target does too (object_store's `LocalFileSystem` follows links out; we
//! must not). Uploads in atomic mode go to a hidden `.ferry-part-*` sibling renamed on commit.

use std::fs::{File, FileTimes, OpenOptions};
use std::os::unix::fs::{FileExt, MetadataExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use async_trait::async_trait;
use bytes::Bytes;

use super::{
    Capacity, DirEntry, DirLister, EntryKind, Key, Metadata, ReadHandle, Result, Storage, StorageError,
    WriteHandle, WriteOptions,
};

/// Staged uploads carry this prefix; they are hidden from listings and unreachable by key.
pub const PART_PREFIX: &str = ".ferry-part-";

pub struct LocalStorage {
    root: Arc<PathBuf>,
}

impl LocalStorage {
    /// Creates the root folder if needed and pins its canonical form.
    pub fn new(root: &Path) -> std::io::Result<Self> {
        std::fs::create_dir_all(root)?;
        Ok(Self { root: Arc::new(std::fs::canonicalize(root)?) })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    async fn run<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Path) -> Result<T> + Send + 'static,
    {
        let root = Arc::clone(&self.root);
        blocking(move || f(&root)).await
    }
}

async fn blocking<T, F>(f: F) -> Result<T>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T> + Send + 'static,
{
    tokio::task::spawn_blocking(f).await.unwrap_or_else(|e| Err(StorageError::Io(std::io::Error::other(e))))
}

/// Maps `key` to a path under `root`. `follow` resolves a final symlink (refusing one that
/// leads out); without it the link itself is addressed.
fn resolve(root: &Path, key: &Key, follow: bool) -> Result<PathBuf> {
    if key.is_root() {
        return Ok(root.to_path_buf());
    }
    if key.segments().any(|s| s.starts_with(PART_PREFIX)) {
        return Err(StorageError::NotFound);
    }
    let segments: Vec<&str> = key.segments().collect();
    let Some((last, parents)) = segments.split_last() else {
        return Ok(root.to_path_buf());
    };
    let mut parent = root.to_path_buf();
    parent.extend(parents);
    let parent = std::fs::canonicalize(&parent)?;
    if !parent.starts_with(root) {
        return Err(StorageError::Escapes);
    }
    let full = parent.join(last);
    if follow
        && let Ok(meta) = std::fs::symlink_metadata(&full)
        && meta.file_type().is_symlink()
    {
        let target = std::fs::canonicalize(&full)?;
        if !target.starts_with(root) {
            return Err(StorageError::Escapes);
        }
        return Ok(target);
    }
    Ok(full)
}

fn metadata_of(meta: &std::fs::Metadata) -> Metadata {
    let file_type = meta.file_type();
    let kind = if file_type.is_symlink() {
        EntryKind::Symlink
    } else if file_type.is_dir() {
        EntryKind::Dir
    } else if file_type.is_file() {
        EntryKind::File
    } else {
        EntryKind::Other
    };
    Metadata {
        kind,
        size: meta.len(),
        modified: meta.modified().ok(),
        accessed: meta.accessed().ok(),
        mode: Some(meta.mode() & 0o7777),
    }
}

#[async_trait]
impl Storage for LocalStorage {
    fn scoped(&self, prefix: &Key) -> Result<Arc<dyn Storage>> {
        let mut path = self.root.to_path_buf();
        path.extend(prefix.segments());
        let scoped = LocalStorage::new(&path)?;
        // A home that is (or passes through) a symlink leading out is refused.
        if !scoped.root.starts_with(self.root.as_path()) {
            return Err(StorageError::Escapes);
        }
        Ok(Arc::new(scoped))
    }

    async fn stat(&self, key: &Key) -> Result<Metadata> {
        let key = key.clone();
        self.run(move |root| {
            let path = resolve(root, &key, true)?;
            Ok(metadata_of(&std::fs::metadata(path)?))
        })
        .await
    }

    async fn lstat(&self, key: &Key) -> Result<Metadata> {
        let key = key.clone();
        self.run(move |root| {
            let path = resolve(root, &key, false)?;
            Ok(metadata_of(&std::fs::symlink_metadata(path)?))
        })
        .await
    }

    async fn list(&self, key: &Key) -> Result<Box<dyn DirLister>> {
        let key = key.clone();
        let dir = self
            .run(move |root| {
                let path = resolve(root, &key, true)?;
                if !std::fs::metadata(&path)?.is_dir() {
                    return Err(StorageError::NotADirectory);
                }
                Ok(std::fs::read_dir(path)?)
            })
            .await?;
        Ok(Box::new(LocalLister { dir: Some(dir) }))
    }

    async fn open_read(&self, key: &Key) -> Result<Box<dyn ReadHandle>> {
        let key = key.clone();
        let file = self
            .run(move |root| {
                let path = resolve(root, &key, true)?;
                let file = File::open(&path)?;
                if file.metadata()?.is_dir() {
                    return Err(StorageError::IsADirectory);
                }
                Ok(file)
            })
            .await?;
        Ok(Box::new(LocalReader { file: Arc::new(file) }))
    }

    async fn open_write(&self, key: &Key, options: WriteOptions) -> Result<Box<dyn WriteHandle>> {
        let key = key.clone();
        let writer = self.run(move |root| open_writer(root, &key, options)).await?;
        Ok(Box::new(writer))
    }

    async fn mkdir(&self, key: &Key) -> Result<()> {
        let key = key.clone();
        self.run(move |root| Ok(std::fs::create_dir(resolve(root, &key, false)?)?)).await
    }

    async fn rmdir(&self, key: &Key) -> Result<()> {
        let key = key.clone();
        self.run(move |root| {
            if key.is_root() {
                return Err(StorageError::Unsupported);
            }
            Ok(std::fs::remove_dir(resolve(root, &key, false)?)?)
        })
        .await
    }

    async fn remove(&self, key: &Key) -> Result<()> {
        let key = key.clone();
        self.run(move |root| {
            let path = resolve(root, &key, false)?;
            if std::fs::symlink_metadata(&path)?.is_dir() {
                return Err(StorageError::IsADirectory);
            }
            Ok(std::fs::remove_file(path)?)
        })
        .await
    }

    async fn rename(&self, from: &Key, to: &Key) -> Result<()> {
        let (from, to) = (from.clone(), to.clone());
        self.run(move |root| {
            if from.is_root() || to.is_root() {
                return Err(StorageError::Unsupported);
            }
            Ok(std::fs::rename(resolve(root, &from, false)?, resolve(root, &to, false)?)?)
        })
        .await
    }

    async fn set_times(&self, key: &Key, accessed: SystemTime, modified: SystemTime) -> Result<()> {
        let key = key.clone();
        self.run(move |root| {
            let file = File::open(resolve(root, &key, true)?)?;
            Ok(file.set_times(FileTimes::new().set_accessed(accessed).set_modified(modified))?)
        })
        .await
    }

    async fn set_mode(&self, key: &Key, mode: u32) -> Result<()> {
        let key = key.clone();
        self.run(move |root| {
            let path = resolve(root, &key, true)?;
            // The server must keep reading and writing what it stores.
            let owner = if std::fs::metadata(&path)?.is_dir() { 0o700 } else { 0o600 };
            let mode = (mode & 0o777) | owner;
            Ok(std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))?)
        })
        .await
    }

    async fn set_len(&self, key: &Key, len: u64) -> Result<()> {
        let key = key.clone();
        self.run(move |root| {
            let file = OpenOptions::new().write(true).open(resolve(root, &key, true)?)?;
            Ok(file.set_len(len)?)
        })
        .await
    }

    async fn symlink(&self, target: &Key, link: &Key) -> Result<()> {
        let (target, link) = (target.clone(), link.clone());
        self.run(move |root| {
            let mut target_path = root.to_path_buf();
            target_path.extend(target.segments());
            Ok(std::os::unix::fs::symlink(target_path, resolve(root, &link, false)?)?)
        })
        .await
    }

    async fn read_link(&self, key: &Key) -> Result<Key> {
        let key = key.clone();
        self.run(move |root| {
            let path = resolve(root, &key, false)?;
            let target = std::fs::read_link(&path)?;
            let absolute =
                if target.is_absolute() { target } else { path.parent().unwrap_or(root).join(target) };
            key_under(root, &absolute)
        })
        .await
    }

    async fn hard_link(&self, existing: &Key, link: &Key) -> Result<()> {
        let (existing, link) = (existing.clone(), link.clone());
        self.run(move |root| {
            Ok(std::fs::hard_link(resolve(root, &existing, true)?, resolve(root, &link, false)?)?)
        })
        .await
    }

    async fn capacity(&self) -> Result<Capacity> {
        self.run(|root| {
            let s = rustix::fs::statvfs(root).map_err(std::io::Error::from)?;
            Ok(Capacity {
                block_size: s.f_bsize,
                fragment_size: s.f_frsize,
                blocks: s.f_blocks,
                blocks_free: s.f_bfree,
                blocks_available: s.f_bavail,
                files: s.f_files,
                files_free: s.f_ffree,
                files_available: s.f_favail,
                max_name_len: s.f_namemax,
            })
        })
        .await
    }
}

/// Lexically normalises `path` and expresses it as a key under `root`.
fn key_under(root: &Path, path: &Path) -> Result<Key> {
    let mut parts: Vec<String> = Vec::new();
    for component in path.components() {
        match component {
            Component::RootDir | Component::Prefix(_) => parts.clear(),
            Component::CurDir => {}
            Component::ParentDir => {
                parts.pop();
            }
            Component::Normal(s) => parts.push(s.to_str().ok_or(StorageError::Escapes)?.to_string()),
        }
    }
    let root_parts: Vec<String> = root
        .components()
        .filter_map(|c| match c {
            Component::Normal(s) => s.to_str().map(String::from),
            _ => None,
        })
        .collect();
    if parts.len() < root_parts.len() || parts[..root_parts.len()] != root_parts[..] {
        return Err(StorageError::Escapes);
    }
    Ok(Key::from_segments(parts[root_parts.len()..].iter().map(String::as_str)))
}

fn open_writer(root: &Path, key: &Key, options: WriteOptions) -> Result<LocalWriter> {
    if key.is_root() {
        return Err(StorageError::IsADirectory);
    }
    let final_path = resolve(root, key, true)?;
    let existing = match std::fs::metadata(&final_path) {
        Ok(meta) if meta.is_dir() => return Err(StorageError::IsADirectory),
        Ok(meta) => Some(meta),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(e.into()),
    };
    if existing.is_some() && (options.exclusive || !options.replace) {
        return Err(StorageError::AlreadyExists);
    }
    if existing.is_none() && !options.create {
        return Err(StorageError::NotFound);
    }
    // Staging only makes sense when the old content is discarded anyway; resuming or appending
    // to an existing file writes in place, as the file already has its final name.
    let stage = options.atomic && !options.append && (options.truncate || existing.is_none());
    if stage {
        let parent = final_path.parent().ok_or(StorageError::NotFound)?;
        let temp = parent.join(format!("{PART_PREFIX}{}", uuid::Uuid::new_v4().simple()));
        let file = OpenOptions::new().write(true).read(true).create_new(true).open(&temp)?;
        if let Some(meta) = &existing {
            // Keep the replaced file's permissions.
            let _ = file.set_permissions(meta.permissions());
        }
        return Ok(LocalWriter { file: Arc::new(file), staged: Some(temp), final_path });
    }
    let file = OpenOptions::new()
        .write(true)
        .read(true)
        .create(options.create)
        .truncate(options.truncate)
        .append(options.append)
        .open(&final_path)?;
    Ok(LocalWriter { file: Arc::new(file), staged: None, final_path })
}

struct LocalReader {
    file: Arc<File>,
}

/// Up to `len` bytes at `offset` of `file`; fewer only at its end.
async fn read_file_at(file: &Arc<File>, offset: u64, len: usize) -> Result<Bytes> {
    let file = Arc::clone(file);
    blocking(move || {
        let mut buf = vec![0u8; len];
        let mut filled = 0;
        while filled < len {
            match file.read_at(&mut buf[filled..], offset + filled as u64) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e.into()),
            }
        }
        buf.truncate(filled);
        Ok(Bytes::from(buf))
    })
    .await
}

#[async_trait]
impl ReadHandle for LocalReader {
    async fn read_at(&self, offset: u64, len: usize) -> Result<Bytes> {
        read_file_at(&self.file, offset, len).await
    }

    async fn metadata(&self) -> Result<Metadata> {
        let file = Arc::clone(&self.file);
        blocking(move || Ok(metadata_of(&file.metadata()?))).await
    }
}

struct LocalWriter {
    file: Arc<File>,
    /// The hidden staging file, while the upload is atomic and not yet committed.
    staged: Option<PathBuf>,
    final_path: PathBuf,
}

#[async_trait]
impl WriteHandle for LocalWriter {
    async fn write_at(&self, offset: u64, data: Bytes) -> Result<()> {
        let file = Arc::clone(&self.file);
        blocking(move || Ok(file.write_all_at(&data, offset)?)).await
    }

    /// The file is open for reading too (staged or in place), so `r+`/`w+`/`a+` read back.
    async fn read_at(&self, offset: u64, len: usize) -> Result<Bytes> {
        read_file_at(&self.file, offset, len).await
    }

    async fn metadata(&self) -> Result<Metadata> {
        let file = Arc::clone(&self.file);
        blocking(move || Ok(metadata_of(&file.metadata()?))).await
    }

    async fn set_len(&self, len: u64) -> Result<()> {
        let file = Arc::clone(&self.file);
        blocking(move || Ok(file.set_len(len)?)).await
    }

    async fn sync(&self) -> Result<()> {
        let file = Arc::clone(&self.file);
        blocking(move || Ok(file.sync_all()?)).await
    }

    async fn set_times(&self, accessed: SystemTime, modified: SystemTime) -> Result<()> {
        let file = Arc::clone(&self.file);
        blocking(move || Ok(file.set_times(FileTimes::new().set_accessed(accessed).set_modified(modified))?))
            .await
    }

    async fn set_mode(&self, mode: u32) -> Result<()> {
        let file = Arc::clone(&self.file);
        blocking(move || Ok(file.set_permissions(std::fs::Permissions::from_mode((mode & 0o777) | 0o600))?))
            .await
    }

    async fn commit(mut self: Box<Self>) -> Result<()> {
        let Some(temp) = self.staged.take() else {
            return Ok(());
        };
        let final_path = self.final_path.clone();

        blocking(move || {
            std::fs::rename(&temp, &final_path).map_err(|e| {
                let _ = std::fs::remove_file(&temp);
                StorageError::from(e)
            })
        })
        .await
    }

    async fn abort(mut self: Box<Self>) {
        if let Some(temp) = self.staged.take() {
            let _ = blocking(move || Ok(std::fs::remove_file(temp)?)).await;
        }
    }
}

impl Drop for LocalWriter {
    /// A handle dropped without commit (client vanished) leaves no staged file behind.
    fn drop(&mut self) {
        if let Some(temp) = self.staged.take() {
            let _ = std::fs::remove_file(temp);
        }
    }
}

struct LocalLister {
    dir: Option<std::fs::ReadDir>,
}

#[async_trait]
impl DirLister for LocalLister {
    async fn next_batch(&mut self, max: usize) -> Result<Vec<DirEntry>> {
        let Some(mut dir) = self.dir.take() else {
            return Ok(Vec::new());
        };
        let (dir, batch) = blocking(move || {
            let mut batch = Vec::new();
            let mut done = false;
            while batch.len() < max {
                let Some(entry) = dir.next() else {
                    done = true;
                    break;
                };
                let entry = entry?;
                let Some(name) = entry.file_name().to_str().map(String::from) else {
                    tracing::warn!(path = ?entry.path(), "skipping a name that is not UTF-8");
                    continue;
                };
                if name.starts_with(PART_PREFIX) {
                    continue;
                }
                // Entry vanished between readdir and stat: skip it.
                let Ok(meta) = entry.metadata() else { continue };
                batch.push(DirEntry { name, meta: metadata_of(&meta) });
            }
            Ok((if done { None } else { Some(dir) }, batch))
        })
        .await?;
        self.dir = dir;
        Ok(batch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(s: &str) -> Key {
        Key::from_segments(s.split('/').filter(|s| !s.is_empty()))
    }

    #[tokio::test]
    async fn atomic_write_is_invisible_until_commit_and_gone_on_drop() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStorage::new(dir.path()).unwrap();
        let options = WriteOptions { create: true, truncate: true, atomic: true, ..Default::default() };
        let w = store.open_write(&key("a.bin"), options).await.unwrap();
        w.write_at(0, Bytes::from_static(b"hello")).await.unwrap();
        assert!(matches!(store.stat(&key("a.bin")).await, Err(StorageError::NotFound)));
        w.commit().await.unwrap();
        assert_eq!(store.stat(&key("a.bin")).await.unwrap().size, 5);

        let w = store.open_write(&key("b.bin"), options).await.unwrap();
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
        assert!(matches!(store.stat(&key("etc/passwd")).await, Err(StorageError::Escapes)));
        assert!(matches!(store.open_read(&key("passwd")).await, Err(StorageError::Escapes)));
        assert!(matches!(store.list(&key("etc")).await, Err(StorageError::Escapes)));
        // The link itself may be seen and removed.
        assert_eq!(store.lstat(&key("passwd")).await.unwrap().kind, EntryKind::Symlink);
        store.remove(&key("passwd")).await.unwrap();
    }

    #[test]
    fn key_under_refuses_paths_outside_the_root() {
        let root = Path::new("/srv/files");
        assert_eq!(key_under(root, Path::new("/srv/files/a/../b")).unwrap().as_str(), "b");
        assert!(key_under(root, Path::new("/srv/other")).is_err());
        assert!(key_under(root, Path::new("/srv/files/../../etc")).is_err());
    }
}
