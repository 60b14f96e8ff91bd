//! Local-disk backend with true random access. Every call starts from the root's directory
//! descriptor and never follows a symlink (`beneath.rs`), so what was checked is what is used
//! and nothing swapped in between leads outside the root (object_store's `LocalFileSystem`
//! follows links out; we must not). Links inside the root are followed by `resolve`, one
//! no-follow step at a time, for the session to judge its rules on where they lead. Uploads in
//! atomic mode go to a hidden `.ferry-part-*` sibling renamed on commit.

mod beneath;
mod handles;
#[cfg(test)]
mod tests;

use std::fs::{File, FileTimes};
use std::os::fd::OwnedFd;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use rustix::fs::{AtFlags, FileType, Mode, OFlags};

use super::{
    Capacity, DirLister, EntryKind, Key, LinkTarget, Metadata, ReadHandle, Result, Storage, StorageError,
    WriteHandle, WriteOptions,
};
use beneath::{Root, errno};
use handles::{LocalLister, LocalReader, open_writer};

/// Staged uploads carry this prefix; they are hidden from listings and unreachable by key.
pub const PART_PREFIX: &str = ".ferry-part-";

pub struct LocalStorage {
    root: Arc<Root>,
}

impl LocalStorage {
    /// Creates the root folder if needed and holds it open.
    pub fn new(root: &Path) -> std::io::Result<Self> {
        Ok(Self { root: Arc::new(Root::open(root)?) })
    }

    /// The canonical path of the root.
    pub fn root(&self) -> &Path {
        self.root.path()
    }

    async fn run<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Root) -> Result<T> + Send + 'static,
    {
        let root = Arc::clone(&self.root);
        blocking(move || f(&root)).await
    }
}

pub(super) async fn blocking<T, F>(f: F) -> Result<T>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T> + Send + 'static,
{
    tokio::task::spawn_blocking(f).await.unwrap_or_else(|e| Err(StorageError::Io(std::io::Error::other(e))))
}

fn time(secs: i64, nanos: u64) -> Option<SystemTime> {
    let nanos = u32::try_from(nanos).ok()?;
    match u64::try_from(secs) {
        Ok(secs) => UNIX_EPOCH.checked_add(Duration::new(secs, nanos)),
        Err(_) => UNIX_EPOCH
            .checked_sub(Duration::new(secs.unsigned_abs(), 0))?
            .checked_add(Duration::new(0, nanos)),
    }
}

/// Our metadata from a stat of the entry itself.
fn metadata_of(stat: &rustix::fs::Stat) -> Metadata {
    let kind = match FileType::from_raw_mode(stat.st_mode) {
        FileType::Symlink => EntryKind::Symlink,
        FileType::Directory => EntryKind::Dir,
        FileType::RegularFile => EntryKind::File,
        _ => EntryKind::Other,
    };
    #[allow(clippy::useless_conversion)] // the field types differ between architectures
    let (size, mtime, mtime_ns, atime, atime_ns) = (
        u64::try_from(stat.st_size).unwrap_or(0),
        i64::from(stat.st_mtime),
        u64::from(stat.st_mtime_nsec),
        i64::from(stat.st_atime),
        u64::from(stat.st_atime_nsec),
    );
    Metadata {
        kind,
        size,
        modified: time(mtime, mtime_ns),
        accessed: time(atime, atime_ns),
        mode: Some(stat.st_mode & 0o7777),
    }
}

/// The entry itself, never through a final link.
fn lstat(root: &Root, key: &Key) -> Result<Metadata> {
    let stat = if key.is_root() {
        rustix::fs::fstat(root.fd())
    } else {
        let (parent, name) = root.parent(key)?;
        rustix::fs::statat(&parent, name, AtFlags::SYMLINK_NOFOLLOW)
    };
    Ok(metadata_of(&stat.map_err(errno)?))
}

/// Opens the file or folder `key` names for attribute changes (a FIFO never blocks it).
fn open_entry(root: &Root, key: &Key) -> Result<File> {
    Ok(File::from(root.entry(key, OFlags::RDONLY | OFlags::NONBLOCK)?))
}

#[async_trait]
impl Storage for LocalStorage {
    fn scoped(&self, prefix: &Key) -> Result<Arc<dyn Storage>> {
        Ok(Arc::new(LocalStorage { root: Arc::new(self.root.scoped(prefix)?) }))
    }

    async fn resolve(&self, key: &Key, follow_final: bool) -> Result<Key> {
        let key = key.clone();
        self.run(move |root| root.resolve_links(&key, follow_final)).await
    }

    async fn stat(&self, key: &Key) -> Result<Metadata> {
        let key = key.clone();
        self.run(move |root| lstat(root, &root.resolve_links(&key, true)?)).await
    }

    async fn lstat(&self, key: &Key) -> Result<Metadata> {
        let key = key.clone();
        self.run(move |root| lstat(root, &key)).await
    }

    async fn list(&self, key: &Key) -> Result<Box<dyn DirLister>> {
        let key = key.clone();
        let dir = self
            .run(move |root| {
                let fd: OwnedFd = root.dir(&key)?;
                rustix::fs::Dir::new(fd).map_err(errno)
            })
            .await?;
        Ok(Box::new(LocalLister::new(dir)))
    }

    async fn open_read(&self, key: &Key) -> Result<Box<dyn ReadHandle>> {
        let key = key.clone();
        let file = self
            .run(move |root| {
                if key.is_root() {
                    return Err(StorageError::IsADirectory);
                }
                let file = File::from(root.entry(&key, OFlags::RDONLY | OFlags::NONBLOCK)?);
                if file.metadata()?.is_dir() {
                    return Err(StorageError::IsADirectory);
                }
                Ok(file)
            })
            .await?;
        Ok(Box::new(LocalReader::new(file)))
    }

    async fn open_write(&self, key: &Key, options: WriteOptions) -> Result<Box<dyn WriteHandle>> {
        let key = key.clone();
        let writer = self.run(move |root| open_writer(root, &key, options)).await?;
        Ok(Box::new(writer))
    }

    async fn mkdir(&self, key: &Key) -> Result<()> {
        let key = key.clone();
        self.run(move |root| {
            if key.is_root() {
                return Err(StorageError::AlreadyExists);
            }
            let (parent, name) = root.parent(&key)?;
            rustix::fs::mkdirat(&parent, name, Mode::from_raw_mode(0o777)).map_err(errno)
        })
        .await
    }

    async fn rmdir(&self, key: &Key) -> Result<()> {
        let key = key.clone();
        self.run(move |root| {
            if key.is_root() {
                return Err(StorageError::Unsupported);
            }
            let (parent, name) = root.parent(&key)?;
            rustix::fs::unlinkat(&parent, name, AtFlags::REMOVEDIR).map_err(errno)
        })
        .await
    }

    async fn remove(&self, key: &Key) -> Result<()> {
        let key = key.clone();
        self.run(move |root| {
            if key.is_root() {
                return Err(StorageError::IsADirectory);
            }
            let (parent, name) = root.parent(&key)?;
            let stat = rustix::fs::statat(&parent, name, AtFlags::SYMLINK_NOFOLLOW).map_err(errno)?;
            if FileType::from_raw_mode(stat.st_mode) == FileType::Directory {
                return Err(StorageError::IsADirectory);
            }
            rustix::fs::unlinkat(&parent, name, AtFlags::empty()).map_err(errno)
        })
        .await
    }

    async fn rename(&self, from: &Key, to: &Key) -> Result<()> {
        let (from, to) = (from.clone(), to.clone());
        self.run(move |root| {
            if from.is_root() || to.is_root() {
                return Err(StorageError::Unsupported);
            }
            let (from_dir, from_name) = root.parent(&from)?;
            let (to_dir, to_name) = root.parent(&to)?;
            rustix::fs::renameat(&from_dir, from_name, &to_dir, to_name).map_err(errno)
        })
        .await
    }

    async fn set_times(&self, key: &Key, accessed: SystemTime, modified: SystemTime) -> Result<()> {
        let key = key.clone();
        self.run(move |root| {
            let file = open_entry(root, &key)?;
            Ok(file.set_times(FileTimes::new().set_accessed(accessed).set_modified(modified))?)
        })
        .await
    }

    async fn set_mode(&self, key: &Key, mode: u32) -> Result<()> {
        let key = key.clone();
        self.run(move |root| {
            let file = open_entry(root, &key)?;
            // The server must keep reading and writing what it stores.
            let owner = if file.metadata()?.is_dir() { 0o700 } else { 0o600 };
            rustix::fs::fchmod(&file, Mode::from_raw_mode((mode & 0o777) | owner)).map_err(errno)
        })
        .await
    }

    async fn set_len(&self, key: &Key, len: u64) -> Result<()> {
        let key = key.clone();
        self.run(move |root| {
            if key.is_root() {
                return Err(StorageError::IsADirectory);
            }
            let file = File::from(root.entry(&key, OFlags::WRONLY | OFlags::NONBLOCK)?);
            Ok(file.set_len(len)?)
        })
        .await
    }

    async fn symlink(&self, target: &LinkTarget, link: &Key) -> Result<()> {
        let (target, link) = (target.clone(), link.clone());
        self.run(move |root| {
            if link.is_root() {
                return Err(StorageError::AlreadyExists);
            }
            root.symlink(&target, &link)
        })
        .await
    }

    async fn read_link(&self, key: &Key) -> Result<LinkTarget> {
        let key = key.clone();
        self.run(move |root| {
            if key.is_root() {
                return Err(StorageError::Unsupported);
            }
            root.read_link(&key)
        })
        .await
    }

    async fn hard_link(&self, existing: &Key, link: &Key) -> Result<()> {
        let (existing, link) = (existing.clone(), link.clone());
        self.run(move |root| {
            if existing.is_root() || link.is_root() {
                return Err(StorageError::Unsupported);
            }
            let (from_dir, from_name) = root.parent(&existing)?;
            let (to_dir, to_name) = root.parent(&link)?;
            rustix::fs::linkat(&from_dir, from_name, &to_dir, to_name, AtFlags::empty()).map_err(errno)
        })
        .await
    }

    async fn capacity(&self) -> Result<Capacity> {
        self.run(|root| {
            let s = rustix::fs::fstatvfs(root.fd()).map_err(errno)?;
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
