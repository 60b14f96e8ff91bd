//! Object-store backend (S3 and S3-compatible stores, GCS, Azure Blob, and object_store's
//! in-memory store for tests) behind the same `Storage` trait. Folders are prefixes, with an
//! empty `.ferry-dir` marker object for empty ones. Uploads stream into a multipart upload
//! through a bounded reorder window (SFTP's pipelined writes arrive slightly out of order) and
//! become visible only on commit; small files are one PUT. Reads are ranged GETs of a fixed
//! block size, so sequential readers touch the store once per block.
//!
//! File names are stored as they are (`names`); completions and copies have a client and a
//! timeout of their own (`stores`); early writes share a memory budget (`budget`).
//!
//! Not yet (documented in docs/storage.md): resume/append of existing objects, rewriting data
//! after a part has been sent, rename of objects above the store's copy limit (5 GiB on S3)
//! other than `*.filepart` uploads, times and modes.

mod budget;
mod lister;
pub mod names;
mod parts;
mod reader;
mod spill;
pub mod stores;
#[cfg(test)]
mod tests;
mod writer;

use std::sync::Arc;
use std::time::SystemTime;

use async_trait::async_trait;
use futures::{StreamExt, TryStreamExt};
use object_store::multipart::MultipartStore;
use object_store::path::Path;
use object_store::{ObjectMeta, ObjectStore, ObjectStoreExt, PutPayload};
use tokio::sync::Mutex;

pub use budget::ReorderBudget;
use lister::{ListState, ObjectLister};
pub use names::DIR_MARKER;
use parts::{PART_SUFFIX, PartTable};
use reader::{ObjectReader, ReadState};
use stores::Stores;
use writer::ObjectWriter;

use super::{
    Capacity, DirLister, EntryKind, Key, Metadata, ReadHandle, Result, Storage, StorageError, WriteHandle,
    WriteOptions,
};

/// Memory and concurrency bounds of one backend.
#[derive(Debug, Clone, Copy)]
pub struct ObjectOptions {
    /// Multipart part size; memory per upload is about `part_size × (parts_in_flight + 1)`
    /// plus what it holds of the reorder window.
    pub part_size: usize,
    pub parts_in_flight: usize,
    /// Bytes an upload may hold ahead of the next expected offset.
    pub reorder_window: usize,
    /// Bytes of early writes all uploads of the backend keep in memory together; beyond it they
    /// wait in the uploads' temporary files.
    pub reorder_budget: usize,
    /// Bytes fetched per ranged GET.
    pub read_block: usize,
    /// Accept time and mode changes without storing them (objects keep their upload time), so
    /// clients that preserve timestamps (WinSCP by default, `put -p`, `scp -p`) do not fail.
    pub ignore_attributes: bool,
}

impl Default for ObjectOptions {
    fn default() -> Self {
        Self {
            part_size: 8 << 20,
            parts_in_flight: 2,
            reorder_window: 16 << 20,
            reorder_budget: 256 << 20,
            read_block: 4 << 20,
            ignore_attributes: true,
        }
    }
}

#[derive(Clone)]
pub struct ObjectStorage {
    stores: Stores,
    /// Names of the view's root, from the configured prefix and `scoped`.
    root: Vec<String>,
    options: ObjectOptions,
    budget: Arc<ReorderBudget>,
    parts: PartTable,
}

fn store_error(e: object_store::Error) -> StorageError {
    match e {
        object_store::Error::NotFound { .. } => StorageError::NotFound,
        object_store::Error::AlreadyExists { .. } => StorageError::AlreadyExists,
        object_store::Error::NotSupported { .. } | object_store::Error::NotImplemented { .. } => {
            StorageError::Unsupported
        }
        // The store refused the credentials or the request: clients are told access was refused
        // (see `SessionError::Storage`), the store's own text stays in the log.
        denied @ (object_store::Error::PermissionDenied { .. }
        | object_store::Error::Unauthenticated { .. }) => {
            StorageError::Io(std::io::Error::new(std::io::ErrorKind::PermissionDenied, denied))
        }
        other => StorageError::Io(std::io::Error::other(other)),
    }
}

fn file_metadata(meta: &ObjectMeta) -> Metadata {
    Metadata {
        kind: EntryKind::File,
        size: meta.size,
        modified: Some(SystemTime::from(meta.last_modified)),
        accessed: None,
        mode: None,
    }
}

impl ObjectStorage {
    /// A backend on one client (object_store's in-memory store, tests).
    pub fn new<S: ObjectStore + MultipartStore>(
        store: Arc<S>,
        pages: Option<Arc<dyn object_store::list::PaginatedListStore>>,
        prefix: &str,
        options: ObjectOptions,
    ) -> Self {
        Self::with_stores(Stores { pages, ..Stores::single(store) }, prefix, options)
    }

    /// A backend whose long requests (completions, copies) have a client of their own.
    pub fn with_stores(stores: Stores, prefix: &str, options: ObjectOptions) -> Self {
        let root = prefix.split('/').filter(|s| !s.is_empty()).map(String::from).collect();
        let budget = ReorderBudget::new(options.reorder_budget);
        Self { stores, root, options, budget, parts: PartTable::default() }
    }

    /// The memory budget of early writes, shared by all uploads of this backend.
    pub fn reorder_budget(&self) -> &Arc<ReorderBudget> {
        &self.budget
    }

    fn store(&self) -> &Arc<dyn ObjectStore> {
        &self.stores.store
    }

    fn path(&self, key: &Key) -> Path {
        names::path(self.stores.naming, self.root.iter().map(String::as_str).chain(key.segments()))
    }

    fn marker(&self, key: &Key) -> Path {
        // The marker's name is stored as it is: `names` escapes a user's file of that name.
        self.path(key).join(DIR_MARKER)
    }

    /// The key holding a finished `*.filepart` upload's data, if `key` is one.
    fn part_target(&self, key: &Key) -> Option<Path> {
        self.parts.target(&self.path(key))
    }

    /// True when some object lives under `key/` (the folder exists).
    async fn is_dir(&self, key: &Key) -> Result<bool> {
        if key.is_root() {
            return Ok(true);
        }
        let prefix = self.path(key);
        let mut objects = self.store().list(Some(&prefix));
        match objects.next().await {
            Some(Ok(_)) => Ok(true),
            Some(Err(e)) => Err(store_error(e)),
            None => Ok(false),
        }
    }

    /// A time or mode change on an existing entry: accepted without effect, or refused.
    async fn accept_attributes(&self, key: &Key) -> Result<()> {
        if !self.options.ignore_attributes {
            return Err(StorageError::Unsupported);
        }
        if key.is_root() || self.file_meta(key).await?.is_some() || self.is_dir(key).await? {
            Ok(())
        } else {
            Err(StorageError::NotFound)
        }
    }

    /// The object a file name stands for, as the client sees it: a finished `*.filepart` upload
    /// answers from the key holding its data, and that key is no file of its own until renamed.
    async fn file_object(&self, key: &Key) -> Result<Option<ObjectMeta>> {
        if key.is_root() {
            return Ok(None);
        }
        let path = match self.part_target(key) {
            Some(target) => target,
            None if self.parts.is_hidden(&self.path(key)) => return Ok(None),
            None => self.path(key),
        };
        match self.store().head(&path).await {
            Ok(meta) => Ok(Some(meta)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(store_error(e)),
        }
    }

    async fn file_meta(&self, key: &Key) -> Result<Option<Metadata>> {
        Ok(self.file_object(key).await?.as_ref().map(file_metadata))
    }

    fn dir_meta() -> Metadata {
        Metadata { kind: EntryKind::Dir, size: 0, modified: None, accessed: None, mode: None }
    }

    /// Where an upload to `key` goes, and the temporary path to record if it is a `*.filepart`
    /// upload written straight to its final key (see `parts`).
    async fn upload_destination(&self, key: &Key) -> Result<(Path, Option<Path>)> {
        let path = self.path(key);
        let Some(name) = key.name().strip_suffix(PART_SUFFIX).filter(|name| !name.is_empty()) else {
            return Ok((path, None));
        };
        let parent = parent_of(key).unwrap_or_else(|| Key::from_segments([]));
        let final_key = Key::from_segments(parent.segments().chain([name]));
        if let Some(target) = self.parts.target(&path) {
            return Ok((target, Some(path)));
        }
        let real_part_exists = match self.store().head(&path).await {
            Ok(_) => true,
            Err(object_store::Error::NotFound { .. }) => false,
            Err(e) => return Err(store_error(e)),
        };
        if real_part_exists || self.file_meta(&final_key).await?.is_some() || self.is_dir(&final_key).await? {
            // Writing to the final key would replace a file the client still sees.
            return Ok((path, None));
        }
        Ok((self.path(&final_key), Some(path)))
    }

    /// Copy then delete; the copy under the long timeout, checked when its reply is lost.
    async fn move_object(&self, from: &Path, to: &Path) -> Result<()> {
        self.stores.copy(from, to).await.map_err(store_error)?;
        self.parts.superseded(to);
        self.store().delete(from).await.map_err(store_error)
    }
}

#[async_trait]
impl Storage for ObjectStorage {
    fn scoped(&self, prefix: &Key) -> Result<Arc<dyn Storage>> {
        let mut scoped = self.clone();
        scoped.root.extend(prefix.segments().map(String::from));
        Ok(Arc::new(scoped))
    }

    async fn stat(&self, key: &Key) -> Result<Metadata> {
        if let Some(meta) = self.file_meta(key).await? {
            return Ok(meta);
        }
        if self.is_dir(key).await? { Ok(Self::dir_meta()) } else { Err(StorageError::NotFound) }
    }

    async fn lstat(&self, key: &Key) -> Result<Metadata> {
        self.stat(key).await
    }

    async fn list(&self, key: &Key) -> Result<Box<dyn DirLister>> {
        if self.file_meta(key).await?.is_some() {
            return Err(StorageError::NotADirectory);
        }
        if !self.is_dir(key).await? {
            return Err(StorageError::NotFound);
        }
        let prefix = self.path(key);
        Ok(Box::new(ObjectLister {
            store: Arc::clone(self.store()),
            pages: self.stores.pages.clone(),
            prefix,
            state: ListState::Start,
            ready: Vec::new(),
            parts: self.parts.snapshot(self.stores.naming),
            naming: self.stores.naming,
        }))
    }

    async fn open_read(&self, key: &Key) -> Result<Box<dyn ReadHandle>> {
        let Some(object) = self.file_object(key).await? else {
            return Err(if self.is_dir(key).await? {
                StorageError::IsADirectory
            } else {
                StorageError::NotFound
            });
        };
        Ok(Box::new(ObjectReader {
            store: Arc::clone(self.store()),
            meta: file_metadata(&object),
            path: object.location,
            block: self.options.read_block as u64,
            state: Mutex::new(ReadState::default()),
        }))
    }

    async fn open_write(&self, key: &Key, options: WriteOptions) -> Result<Box<dyn WriteHandle>> {
        if key.is_root() || self.is_dir(key).await? {
            return Err(StorageError::IsADirectory);
        }
        let exists = self.file_meta(key).await?.is_some();
        if exists && (options.exclusive || !options.replace) {
            return Err(StorageError::AlreadyExists);
        }
        if !exists && !options.create {
            return Err(StorageError::NotFound);
        }
        // Objects cannot be written in place: only a whole new object is possible.
        if exists && (options.append || !options.truncate) {
            return Err(StorageError::Unsupported);
        }
        let (path, temporary) = self.upload_destination(key).await?;
        let replaces = self.stores.current_tag(&path).await.map_err(store_error)?;
        Ok(Box::new(ObjectWriter::new(
            self.stores.clone(),
            path,
            self.options,
            Arc::clone(&self.budget),
            replaces,
            self.parts.clone(),
            temporary,
        )))
    }

    async fn mkdir(&self, key: &Key) -> Result<()> {
        if key.is_root() || self.file_meta(key).await?.is_some() || self.is_dir(key).await? {
            return Err(StorageError::AlreadyExists);
        }
        if let Some(parent) = parent_of(key)
            && !self.is_dir(&parent).await?
        {
            return Err(StorageError::NotFound);
        }
        self.store().put(&self.marker(key), PutPayload::default()).await.map_err(store_error)?;
        Ok(())
    }

    async fn rmdir(&self, key: &Key) -> Result<()> {
        if key.is_root() {
            return Err(StorageError::Unsupported);
        }
        let prefix = self.path(key);
        let marker = self.marker(key);
        let first: Vec<_> =
            self.store().list(Some(&prefix)).take(2).try_collect().await.map_err(store_error)?;
        if first.is_empty() {
            return Err(if self.file_meta(key).await?.is_some() {
                StorageError::NotADirectory
            } else {
                StorageError::NotFound
            });
        }
        if first.iter().any(|meta| meta.location != marker) {
            return Err(StorageError::NotEmpty);
        }
        self.store().delete(&marker).await.map_err(store_error)
    }

    async fn remove(&self, key: &Key) -> Result<()> {
        let Some(object) = self.file_object(key).await? else {
            return Err(if self.is_dir(key).await? {
                StorageError::IsADirectory
            } else {
                StorageError::NotFound
            });
        };
        self.store().delete(&object.location).await.map_err(store_error)?;
        self.parts.forget(&self.path(key));
        Ok(())
    }

    /// Files: copy then delete. Folders: every object under the prefix, eight at a time; if it
    /// fails halfway, what was copied exists at both names and nothing is lost.
    async fn rename(&self, from: &Key, to: &Key) -> Result<()> {
        if from.is_root() || to.is_root() {
            return Err(StorageError::Unsupported);
        }
        if let Some(object) = self.file_object(from).await? {
            if self.is_dir(to).await? {
                return Err(StorageError::IsADirectory);
            }
            let temporary = self.path(from);
            let target = self.path(to);
            if self.parts.target(&temporary).is_some_and(|held| held == target) {
                // The upload already sits at its final key: renaming onto it is free.
                self.parts.forget(&temporary);
                return Ok(());
            }
            self.move_object(&object.location, &target).await?;
            self.parts.forget(&temporary);
            return Ok(());
        }
        if !self.is_dir(from).await? {
            return Err(StorageError::NotFound);
        }
        if self.file_meta(to).await?.is_some() || self.is_dir(to).await? {
            return Err(StorageError::AlreadyExists);
        }
        let source = self.path(from);
        let target = self.path(to);
        let source_parts = source.parts().count();
        let objects: Vec<_> = self.store().list(Some(&source)).try_collect().await.map_err(store_error)?;
        futures::stream::iter(objects)
            .map(|meta| {
                let target = Path::from_iter(target.parts().chain(meta.location.parts().skip(source_parts)));
                async move { self.move_object(&meta.location, &target).await }
            })
            .buffer_unordered(8)
            .try_collect::<Vec<_>>()
            .await?;
        Ok(())
    }

    async fn set_times(&self, key: &Key, _accessed: SystemTime, _modified: SystemTime) -> Result<()> {
        self.accept_attributes(key).await
    }

    async fn set_mode(&self, key: &Key, _mode: u32) -> Result<()> {
        self.accept_attributes(key).await
    }

    async fn set_len(&self, _key: &Key, _len: u64) -> Result<()> {
        Err(StorageError::Unsupported)
    }

    async fn symlink(&self, _target: &super::LinkTarget, _link: &Key) -> Result<()> {
        Err(StorageError::Unsupported)
    }

    async fn read_link(&self, _key: &Key) -> Result<super::LinkTarget> {
        Err(StorageError::Unsupported)
    }

    async fn hard_link(&self, _existing: &Key, _link: &Key) -> Result<()> {
        Err(StorageError::Unsupported)
    }

    async fn capacity(&self) -> Result<Capacity> {
        Err(StorageError::Unsupported)
    }
}

fn parent_of(key: &Key) -> Option<Key> {
    let segments: Vec<&str> = key.segments().collect();
    let (_, parent) = segments.split_last()?;
    Some(Key::from_segments(parent.iter().copied()))
}
