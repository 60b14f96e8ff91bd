//! Storage backends behind one streaming trait. Backends know keys, not users, permissions or
//! protocols. Shaped for object stores too: ranged reads, writes that commit on close,
//! listings fetched in batches. Uses `config` and `types`.

pub mod copy;
pub mod local;
mod metered;
mod multipart;
pub mod object;
mod open;

use std::sync::Arc;
use std::time::SystemTime;

use async_trait::async_trait;
use bytes::Bytes;

pub use copy::{CopyError, CopySource, StreamSource, copy};
pub use local::LocalStorage;
pub use object::{ObjectOptions, ObjectStorage, ReorderBudget};
pub use open::{OpenError, open};

/// A backend-relative key: `/`-separated, no leading slash, no `.`/`..`; "" is the root.
/// Only `vfs` builds keys, after normalising the virtual path.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Key(String);

impl Key {
    /// Joins already-normalised segments. Callers (vfs) guarantee no segment is `.`, `..`,
    /// empty or contains `/` or NUL.
    pub fn from_segments<'a>(segments: impl IntoIterator<Item = &'a str>) -> Self {
        Self(segments.into_iter().collect::<Vec<_>>().join("/"))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn is_root(&self) -> bool {
        self.0.is_empty()
    }

    /// Last segment, or "" for the root.
    pub fn name(&self) -> &str {
        self.0.rsplit('/').next().unwrap_or("")
    }

    pub fn segments(&self) -> impl Iterator<Item = &str> {
        self.0.split('/').filter(|s| !s.is_empty())
    }
}

/// What a symlink holds, in the backend's terms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkTarget {
    /// An absolute target inside the root (kept on disk as the absolute path under the root).
    Key(Key),
    /// A target relative to the link's folder, kept as written (so readlink answers what the
    /// link says, as OpenSSH does).
    Relative(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryKind {
    File,
    Dir,
    Symlink,
    Other,
}

#[derive(Debug, Clone)]
pub struct Metadata {
    pub kind: EntryKind,
    pub size: u64,
    pub modified: Option<SystemTime>,
    pub accessed: Option<SystemTime>,
    /// Unix permission bits where the backend has them.
    pub mode: Option<u32>,
}

#[derive(Debug, Clone)]
pub struct DirEntry {
    pub name: String,
    pub meta: Metadata,
}

/// How a write handle treats the existing object.
#[derive(Debug, Clone, Copy, Default)]
pub struct WriteOptions {
    pub create: bool,
    pub truncate: bool,
    pub exclusive: bool,
    pub append: bool,
    /// Stage the data under a temporary name and publish it on commit.
    pub atomic: bool,
    /// An existing file may be written (else `AlreadyExists`, decided in the same step that
    /// opens the file, so no second lookup is needed).
    pub replace: bool,
}

/// Filesystem capacity as statvfs reports it.
#[derive(Debug, Clone, Copy, Default)]
pub struct Capacity {
    pub block_size: u64,
    pub fragment_size: u64,
    pub blocks: u64,
    pub blocks_free: u64,
    pub blocks_available: u64,
    pub files: u64,
    pub files_free: u64,
    pub files_available: u64,
    pub max_name_len: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("not found")]
    NotFound,
    #[error("already exists")]
    AlreadyExists,
    #[error("not a directory")]
    NotADirectory,
    #[error("is a directory")]
    IsADirectory,
    #[error("directory not empty")]
    NotEmpty,
    #[error("leads outside the storage root")]
    Escapes,
    #[error("not supported by this backend")]
    Unsupported,
    #[error("no space left")]
    NoSpace,
    #[error("storage I/O error: {0}")]
    Io(#[source] std::io::Error),
}

impl From<std::io::Error> for StorageError {
    fn from(e: std::io::Error) -> Self {
        use std::io::ErrorKind as K;
        match e.kind() {
            K::NotFound => Self::NotFound,
            K::AlreadyExists => Self::AlreadyExists,
            K::NotADirectory => Self::NotADirectory,
            K::IsADirectory => Self::IsADirectory,
            K::DirectoryNotEmpty => Self::NotEmpty,
            K::StorageFull | K::QuotaExceeded => Self::NoSpace,
            _ => Self::Io(e),
        }
    }
}

pub type Result<T> = std::result::Result<T, StorageError>;

#[async_trait]
pub trait Storage: Send + Sync + 'static {
    /// A view of this backend rooted at `prefix` (created if missing): keys, symlink checks
    /// and listings of the view never reach outside it.
    fn scoped(&self, prefix: &Key) -> Result<Arc<dyn Storage>>;
    /// `key` with the symlinks on its way followed inside the root (the final one too when
    /// `follow_final`): where the data really is, for the session to judge rules on. The other
    /// calls never follow a link on the way (a backend with links refuses one with `Escapes`),
    /// so they must be given resolved keys. Backends without links answer `key`.
    async fn resolve(&self, key: &Key, _follow_final: bool) -> Result<Key> {
        Ok(key.clone())
    }
    /// Follows a final symlink (but never out of the root).
    async fn stat(&self, key: &Key) -> Result<Metadata>;
    /// Does not follow a final symlink.
    async fn lstat(&self, key: &Key) -> Result<Metadata>;
    async fn list(&self, key: &Key) -> Result<Box<dyn DirLister>>;
    async fn open_read(&self, key: &Key) -> Result<Box<dyn ReadHandle>>;
    async fn open_write(&self, key: &Key, options: WriteOptions) -> Result<Box<dyn WriteHandle>>;
    async fn mkdir(&self, key: &Key) -> Result<()>;
    async fn rmdir(&self, key: &Key) -> Result<()>;
    async fn remove(&self, key: &Key) -> Result<()>;
    /// Replaces an existing file at `to`.
    async fn rename(&self, from: &Key, to: &Key) -> Result<()>;
    async fn set_times(&self, key: &Key, accessed: SystemTime, modified: SystemTime) -> Result<()>;
    async fn set_mode(&self, key: &Key, mode: u32) -> Result<()>;
    async fn set_len(&self, key: &Key, len: u64) -> Result<()>;
    /// Creates `link` pointing at `target` (which the caller has checked stays inside the root).
    async fn symlink(&self, target: &LinkTarget, link: &Key) -> Result<()>;
    /// What the link says; a target leading out of the root is refused.
    async fn read_link(&self, key: &Key) -> Result<LinkTarget>;
    async fn hard_link(&self, existing: &Key, link: &Key) -> Result<()>;
    async fn capacity(&self) -> Result<Capacity>;
}

/// A directory listing fetched in batches, so a huge folder is never held whole.
#[async_trait]
pub trait DirLister: Send {
    /// Up to `max` entries; empty when the listing is done.
    async fn next_batch(&mut self, max: usize) -> Result<Vec<DirEntry>>;
}

/// Random-access reads; concurrent calls are allowed.
#[async_trait]
pub trait ReadHandle: Send + Sync {
    /// Up to `len` bytes at `offset`; fewer only at end of file, empty past it.
    async fn read_at(&self, offset: u64, len: usize) -> Result<Bytes>;
    async fn metadata(&self) -> Result<Metadata>;
}

/// Writes that become visible under the final name only on `commit` (when atomic).
#[async_trait]
pub trait WriteHandle: Send + Sync {
    async fn write_at(&self, offset: u64, data: Bytes) -> Result<()>;
    /// Reads back what the handle holds (a file opened for reading and writing). Backends
    /// that stage uploads elsewhere than a file cannot: `Unsupported`.
    async fn read_at(&self, _offset: u64, _len: usize) -> Result<Bytes> {
        Err(StorageError::Unsupported)
    }
    async fn metadata(&self) -> Result<Metadata>;
    async fn set_len(&self, len: u64) -> Result<()>;
    async fn sync(&self) -> Result<()>;
    async fn set_times(&self, accessed: SystemTime, modified: SystemTime) -> Result<()>;
    async fn set_mode(&self, mode: u32) -> Result<()>;
    /// Publishes the data under the final name.
    async fn commit(self: Box<Self>) -> Result<()>;
    /// Discards staged data; the final name keeps what it had.
    async fn abort(self: Box<Self>);
}
