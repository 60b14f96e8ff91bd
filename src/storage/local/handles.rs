//! Open files and listings of the local backend. A writer keeps its folder's descriptor, so
//! its staged file is created, renamed and removed in the folder it was opened in, whatever
//! happens to the names on the way there meanwhile.

use std::fs::{File, FileTimes};
use std::os::fd::OwnedFd;
use std::os::unix::fs::{FileExt, PermissionsExt};
use std::sync::Arc;
use std::time::SystemTime;

use async_trait::async_trait;
use bytes::Bytes;
use rustix::fs::{AtFlags, FileType, Mode, OFlags};
use rustix::io::Errno;

use super::beneath::{Root, errno};
use super::{PART_PREFIX, blocking, metadata_of};
use crate::storage::{
    DirEntry, DirLister, Key, Metadata, ReadHandle, Result, StorageError, WriteHandle, WriteOptions,
};

pub(super) fn open_writer(root: &Root, key: &Key, options: WriteOptions) -> Result<LocalWriter> {
    if key.is_root() {
        return Err(StorageError::IsADirectory);
    }
    let (parent, name) = root.parent(key)?;
    let existing = match rustix::fs::statat(&parent, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(stat) => match FileType::from_raw_mode(stat.st_mode) {
            FileType::Directory => return Err(StorageError::IsADirectory),
            // The session resolves links before writing: one here was swapped in since.
            FileType::Symlink => return Err(StorageError::Escapes),
            _ => Some(stat),
        },
        Err(Errno::NOENT) => None,
        Err(e) => return Err(errno(e)),
    };
    if existing.is_some() && (options.exclusive || !options.replace) {
        return Err(StorageError::AlreadyExists);
    }
    if existing.is_none() && !options.create {
        return Err(StorageError::NotFound);
    }
    let base = OFlags::RDWR | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let mode = Mode::from_raw_mode(0o666);
    // Staging only makes sense when the old content is discarded anyway; resuming or appending
    // to an existing file writes in place, as the file already has its final name.
    let stage = options.atomic && !options.append && (options.truncate || existing.is_none());
    if stage {
        let temp = format!("{PART_PREFIX}{}", uuid::Uuid::new_v4().simple());
        let fd = rustix::fs::openat(&parent, temp.as_str(), base | OFlags::CREATE | OFlags::EXCL, mode)
            .map_err(errno)?;
        let file = File::from(fd);
        if let Some(stat) = &existing {
            // Keep the replaced file's permissions.
            let _ = file.set_permissions(std::fs::Permissions::from_mode(stat.st_mode & 0o7777));
        }
        return Ok(LocalWriter::new(file, Some(temp), parent, name));
    }
    let mut flags = base;
    if options.create {
        flags |= OFlags::CREATE;
        if options.exclusive {
            flags |= OFlags::EXCL;
        }
    }
    if options.truncate {
        flags |= OFlags::TRUNC;
    }
    if options.append {
        flags |= OFlags::APPEND;
    }
    let file = File::from(rustix::fs::openat(&parent, name, flags, mode).map_err(errno)?);
    Ok(LocalWriter::new(file, None, parent, name))
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

pub(super) struct LocalReader {
    file: Arc<File>,
}

impl LocalReader {
    pub(super) fn new(file: File) -> Self {
        Self { file: Arc::new(file) }
    }
}

#[async_trait]
impl ReadHandle for LocalReader {
    async fn read_at(&self, offset: u64, len: usize) -> Result<Bytes> {
        read_file_at(&self.file, offset, len).await
    }

    async fn metadata(&self) -> Result<Metadata> {
        let file = Arc::clone(&self.file);
        blocking(move || Ok(metadata_of(&rustix::fs::fstat(&*file).map_err(errno)?))).await
    }
}

pub(super) struct LocalWriter {
    file: Arc<File>,
    /// The hidden staging file's name, while the upload is atomic and not yet committed.
    staged: Option<String>,
    /// The folder the file is in, held open from open to commit.
    dir: Arc<OwnedFd>,
    name: String,
}

impl LocalWriter {
    fn new(file: File, staged: Option<String>, dir: OwnedFd, name: &str) -> Self {
        Self { file: Arc::new(file), staged, dir: Arc::new(dir), name: name.to_string() }
    }
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
        blocking(move || Ok(metadata_of(&rustix::fs::fstat(&*file).map_err(errno)?))).await
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
        let (dir, name) = (Arc::clone(&self.dir), self.name.clone());
        blocking(move || {
            rustix::fs::renameat(&*dir, temp.as_str(), &*dir, name.as_str()).map_err(|e| {
                let _ = rustix::fs::unlinkat(&*dir, temp.as_str(), AtFlags::empty());
                errno(e)
            })
        })
        .await
    }

    async fn abort(mut self: Box<Self>) {
        if let Some(temp) = self.staged.take() {
            let dir = Arc::clone(&self.dir);
            let _ =
                blocking(move || rustix::fs::unlinkat(&*dir, temp.as_str(), AtFlags::empty()).map_err(errno))
                    .await;
        }
    }
}

impl Drop for LocalWriter {
    /// A handle dropped without commit (client vanished) leaves no staged file behind.
    fn drop(&mut self) {
        if let Some(temp) = self.staged.take() {
            let _ = rustix::fs::unlinkat(&*self.dir, temp.as_str(), AtFlags::empty());
        }
    }
}

pub(super) struct LocalLister {
    dir: Option<rustix::fs::Dir>,
}

impl LocalLister {
    pub(super) fn new(dir: rustix::fs::Dir) -> Self {
        Self { dir: Some(dir) }
    }
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
                let Some(entry) = dir.read() else {
                    done = true;
                    break;
                };
                let entry = entry.map_err(errno)?;
                let raw = entry.file_name().to_bytes();
                if raw == b"." || raw == b".." {
                    continue;
                }
                let Ok(name) = std::str::from_utf8(raw).map(String::from) else {
                    tracing::warn!(name = ?entry.file_name(), "skipping a name that is not UTF-8");
                    continue;
                };
                if name.starts_with(PART_PREFIX) {
                    continue;
                }
                // Entry vanished between readdir and stat: skip it.
                let Ok(stat) = rustix::fs::statat(
                    dir.fd().map_err(errno)?,
                    entry.file_name(),
                    AtFlags::SYMLINK_NOFOLLOW,
                ) else {
                    continue;
                };
                batch.push(DirEntry { name, meta: metadata_of(&stat) });
            }
            Ok((if done { None } else { Some(dir) }, batch))
        })
        .await?;
        self.dir = dir;
        Ok(batch)
    }
}
