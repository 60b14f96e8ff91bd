//! Object-store backend (S3 and S3-compatible stores, GCS, Azure Blob, and object_store's
//! in-memory store for tests) behind the same `Storage` trait. Folders are prefixes, with an
//! empty `.ferry-dir` marker object for empty ones. Uploads stream into a multipart upload
//! through a bounded reorder window (SFTP's pipelined writes arrive slightly out of order) and
//! become visible only on commit; small files are one PUT. Reads are ranged GETs of a fixed
//! block size, so sequential readers touch the store once per block.
//!
//! Not yet (documented in docs/storage.md): resume/append of existing objects, rewriting data
//! after a part has been sent, rename of objects above the store's copy limit (5 GiB on S3)
//! other than `*.filepart` uploads, times and modes.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::SystemTime;

use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use futures::{StreamExt, TryStreamExt};
use object_store::list::{PaginatedListOptions, PaginatedListStore};
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};

use super::multipart::GrowingMultipart;
use tokio::sync::Mutex;

use super::{
    Capacity, DirEntry, DirLister, EntryKind, Key, Metadata, ReadHandle, Result, Storage, StorageError,
    WriteHandle, WriteOptions,
};

/// The empty object that keeps an otherwise empty folder.
pub const DIR_MARKER: &str = ".ferry-dir";

/// Memory and concurrency bounds of one backend.
#[derive(Debug, Clone, Copy)]
pub struct ObjectOptions {
    /// Multipart part size; memory per upload is about `part_size × (parts_in_flight + 1)`
    /// plus the reorder window.
    pub part_size: usize,
    pub parts_in_flight: usize,
    /// Bytes an upload may hold ahead of the next expected offset.
    pub reorder_window: usize,
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
            read_block: 4 << 20,
            ignore_attributes: true,
        }
    }
}

#[derive(Clone)]
pub struct ObjectStorage {
    store: Arc<dyn ObjectStore>,
    /// Stateless paged listing (S3, GCS, Azure); `None` falls back to one delimiter listing.
    pages: Option<Arc<dyn PaginatedListStore>>,
    root: Vec<String>,
    options: ObjectOptions,
    /// Finished `*.filepart` uploads, written straight to their final key: temporary path →
    /// final path, until the client's rename (a no-op then) or removal.
    parts: PartTable,
}

/// Temporary path → final path of finished `*.filepart` uploads, shared by scoped views.
type PartTable = Arc<std::sync::Mutex<std::collections::HashMap<Path, Path>>>;

/// The temporary suffix WinSCP uploads under before renaming to the final name. Objects are
/// written straight to the final key instead, so the rename costs no server-side copy (S3's
/// CopyObject also stops at 5 GiB).
pub const PART_SUFFIX: &str = ".filepart";

fn store_error(e: object_store::Error) -> StorageError {
    match e {
        object_store::Error::NotFound { .. } => StorageError::NotFound,
        object_store::Error::AlreadyExists { .. } => StorageError::AlreadyExists,
        object_store::Error::NotSupported { .. } | object_store::Error::NotImplemented { .. } => {
            StorageError::Unsupported
        }
        other => StorageError::Io(std::io::Error::other(other)),
    }
}

impl ObjectStorage {
    pub fn new(
        store: Arc<dyn ObjectStore>,
        pages: Option<Arc<dyn PaginatedListStore>>,
        prefix: &str,
        options: ObjectOptions,
    ) -> Self {
        let root = prefix.split('/').filter(|s| !s.is_empty()).map(String::from).collect();
        Self { store, pages, root, options, parts: Arc::default() }
    }

    fn path(&self, key: &Key) -> Path {
        Path::from_iter(self.root.iter().map(String::as_str).chain(key.segments()))
    }

    /// The final path of a finished `*.filepart` upload, if `key` is one.
    fn part_target(&self, key: &Key) -> Option<Path> {
        self.parts.lock().ok()?.get(&self.path(key)).cloned()
    }

    fn forget_part(&self, key: &Key) {
        if let Ok(mut parts) = self.parts.lock() {
            parts.remove(&self.path(key));
        }
    }

    fn marker(&self, key: &Key) -> Path {
        self.path(key).clone().join(DIR_MARKER)
    }

    /// True when some object lives under `key/` (the folder exists).
    async fn is_dir(&self, key: &Key) -> Result<bool> {
        if key.is_root() {
            return Ok(true);
        }
        let prefix = self.path(key);
        let mut objects = self.store.list(Some(&prefix));
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

    async fn file_meta(&self, key: &Key) -> Result<Option<Metadata>> {
        if key.is_root() {
            return Ok(None);
        }
        match self.store.head(&self.path(key)).await {
            Ok(meta) => Ok(Some(Metadata {
                kind: EntryKind::File,
                size: meta.size,
                modified: Some(SystemTime::from(meta.last_modified)),
                accessed: None,
                mode: None,
            })),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(store_error(e)),
        }
    }

    fn dir_meta() -> Metadata {
        Metadata { kind: EntryKind::Dir, size: 0, modified: None, accessed: None, mode: None }
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
        if let Some(target) = self.part_target(key) {
            let meta = self.store.head(&target).await.map_err(store_error)?;
            return Ok(Metadata {
                kind: EntryKind::File,
                size: meta.size,
                modified: Some(SystemTime::from(meta.last_modified)),
                accessed: None,
                mode: None,
            });
        }
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
            store: Arc::clone(&self.store),
            pages: self.pages.clone(),
            prefix,
            state: ListState::Start,
            ready: Vec::new(),
        }))
    }

    async fn open_read(&self, key: &Key) -> Result<Box<dyn ReadHandle>> {
        let Some(meta) = self.file_meta(key).await? else {
            return Err(if self.is_dir(key).await? {
                StorageError::IsADirectory
            } else {
                StorageError::NotFound
            });
        };
        Ok(Box::new(ObjectReader {
            store: Arc::clone(&self.store),
            path: self.path(key),
            meta,
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
        let path = self.path(key);
        let part = key.name().strip_suffix(PART_SUFFIX).filter(|name| !name.is_empty()).map(|name| {
            let parent = parent_of(key).unwrap_or_else(|| Key::from_segments([]));
            (path.clone(), self.path(&Key::from_segments(parent.segments().chain([name]))))
        });
        Ok(Box::new(ObjectWriter {
            store: Arc::clone(&self.store),
            path: part.as_ref().map_or(path, |(_, target)| target.clone()),
            options: self.options,
            state: Mutex::new(WriteState::default()),
            part: part.map(|(temporary, _)| (temporary, Arc::clone(&self.parts))),
            progress: tokio::sync::Notify::new(),
        }))
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
        self.store.put(&self.marker(key), PutPayload::default()).await.map_err(store_error)?;
        Ok(())
    }

    async fn rmdir(&self, key: &Key) -> Result<()> {
        if key.is_root() {
            return Err(StorageError::Unsupported);
        }
        let prefix = self.path(key);
        let marker = self.marker(key);
        let first: Vec<_> =
            self.store.list(Some(&prefix)).take(2).try_collect().await.map_err(store_error)?;
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
        self.store.delete(&marker).await.map_err(store_error)
    }

    async fn remove(&self, key: &Key) -> Result<()> {
        // Clients without an overwriting rename delete the old file before renaming NAME.filepart
        // onto it; the old version is already replaced, and deleting NAME would lose the upload.
        let path = self.path(key);
        if self.parts.lock().map(|parts| parts.values().any(|target| *target == path)).unwrap_or(false) {
            return Ok(());
        }
        if let Some(target) = self.part_target(key) {
            self.forget_part(key);
            return self.store.delete(&target).await.map_err(store_error);
        }
        if self.file_meta(key).await?.is_none() {
            return Err(if self.is_dir(key).await? {
                StorageError::IsADirectory
            } else {
                StorageError::NotFound
            });
        }
        self.store.delete(&self.path(key)).await.map_err(store_error)
    }

    /// Files: copy then delete. Folders: every object under the prefix, eight at a time; if it
    /// fails halfway, what was copied exists at both names and nothing is lost.
    async fn rename(&self, from: &Key, to: &Key) -> Result<()> {
        if from.is_root() || to.is_root() {
            return Err(StorageError::Unsupported);
        }
        if let Some(target) = self.part_target(from) {
            // The upload already sits at its final key: renaming onto it is free.
            self.forget_part(from);
            if target == self.path(to) {
                return Ok(());
            }
            self.store.copy(&target, &self.path(to)).await.map_err(store_error)?;
            return self.store.delete(&target).await.map_err(store_error);
        }
        if self.file_meta(from).await?.is_some() {
            if self.is_dir(to).await? {
                return Err(StorageError::IsADirectory);
            }
            let (source, target) = (self.path(from), self.path(to));
            self.store.copy(&source, &target).await.map_err(store_error)?;
            return self.store.delete(&source).await.map_err(store_error);
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
        let objects: Vec<_> = self.store.list(Some(&source)).try_collect().await.map_err(store_error)?;
        futures::stream::iter(objects)
            .map(|meta| {
                let target = Path::from_iter(target.parts().chain(meta.location.parts().skip(source_parts)));
                let store = Arc::clone(&self.store);
                async move {
                    store.copy(&meta.location, &target).await?;
                    store.delete(&meta.location).await
                }
            })
            .buffer_unordered(8)
            .try_collect::<Vec<_>>()
            .await
            .map_err(store_error)?;
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

enum ListState {
    Start,
    Page(String),
    Done,
}

struct ObjectLister {
    store: Arc<dyn ObjectStore>,
    pages: Option<Arc<dyn PaginatedListStore>>,
    prefix: Path,
    state: ListState,
    ready: Vec<DirEntry>,
}

impl ObjectLister {
    fn entries(&self, result: object_store::ListResult) -> Vec<DirEntry> {
        let mut entries = Vec::new();
        for dir in result.common_prefixes {
            if let Some(name) = dir.filename() {
                entries.push(DirEntry { name: name.to_string(), meta: ObjectStorage::dir_meta() });
            }
        }
        for object in result.objects {
            let Some(name) = object.location.filename() else { continue };
            if name == DIR_MARKER || object.location == self.prefix {
                continue;
            }
            entries.push(DirEntry {
                name: name.to_string(),
                meta: Metadata {
                    kind: EntryKind::File,
                    size: object.size,
                    modified: Some(SystemTime::from(object.last_modified)),
                    accessed: None,
                    mode: None,
                },
            });
        }
        entries
    }

    /// Fetches the next page (or, without paging support, the whole listing once).
    async fn fetch(&mut self) -> Result<()> {
        let token = match std::mem::replace(&mut self.state, ListState::Done) {
            ListState::Done => return Ok(()),
            ListState::Start => None,
            ListState::Page(token) => Some(token),
        };
        let Some(pages) = &self.pages else {
            let result = self.store.list_with_delimiter(Some(&self.prefix)).await.map_err(store_error)?;
            self.ready = self.entries(result);
            return Ok(());
        };
        let prefix =
            if self.prefix.as_ref().is_empty() { String::new() } else { format!("{}/", self.prefix) };
        let options = PaginatedListOptions {
            delimiter: Some("/".into()),
            page_token: token,
            max_keys: Some(1000),
            ..PaginatedListOptions::default()
        };
        let page = pages
            .list_paginated((!prefix.is_empty()).then_some(prefix.as_str()), options)
            .await
            .map_err(store_error)?;
        if let Some(token) = page.page_token {
            self.state = ListState::Page(token);
        }
        self.ready = self.entries(page.result);
        Ok(())
    }
}

#[async_trait]
impl DirLister for ObjectLister {
    async fn next_batch(&mut self, max: usize) -> Result<Vec<DirEntry>> {
        while self.ready.is_empty() && !matches!(self.state, ListState::Done) {
            self.fetch().await?;
        }
        let take = self.ready.len().min(max);
        Ok(self.ready.drain(..take).collect())
    }
}

struct ObjectReader {
    store: Arc<dyn ObjectStore>,
    path: Path,
    meta: Metadata,
    block: u64,
    state: Mutex<ReadState>,
}

/// A sequential reader is fed by one ranged GET from its position to the end, cut into aligned
/// blocks: the store's latency is paid once per run of sequential reads, not once per block.
#[derive(Default)]
struct ReadState {
    /// Blocks already taken from the stream, newest last: pipelined reads that arrive a little
    /// late (SFTP serves many at once) are answered from here.
    recent: std::collections::VecDeque<(u64, Bytes)>,
    stream: Option<BlockStream>,
}

/// Blocks the GET has delivered but the reader has not taken yet, at most `READ_AHEAD`.
struct BlockStream {
    /// Start of the next block `rx` yields.
    next: u64,
    rx: tokio::sync::mpsc::Receiver<Result<Bytes>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for BlockStream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Blocks queued ahead of the reader, and blocks kept behind it. Memory per open download is
/// about `(READ_AHEAD + KEEP_RECENT + 1) × read_block`.
const READ_AHEAD: usize = 2;
const KEEP_RECENT: usize = 2;

impl ObjectReader {
    /// Starts a GET of `start..` (aligned) that cuts the body into blocks.
    fn open_stream(&self, start: u64) -> BlockStream {
        let (tx, rx) = tokio::sync::mpsc::channel(READ_AHEAD);
        let (store, path, block, size) =
            (Arc::clone(&self.store), self.path.clone(), self.block, self.meta.size);
        let task = tokio::spawn(async move {
            let options =
                object_store::GetOptions { range: Some((start..size).into()), ..Default::default() };
            let mut body = match store.get_opts(&path, options).await {
                Ok(result) => result.into_stream(),
                Err(e) => {
                    let _ = tx.send(Err(store_error(e))).await;
                    return;
                }
            };
            let mut buffer = BytesMut::new();
            while let Some(chunk) = body.next().await {
                match chunk {
                    Ok(chunk) => buffer.extend_from_slice(&chunk),
                    Err(e) => {
                        let _ = tx.send(Err(store_error(e))).await;
                        return;
                    }
                }
                while buffer.len() as u64 >= block {
                    if tx.send(Ok(buffer.split_to(block as usize).freeze())).await.is_err() {
                        return;
                    }
                }
            }
            if !buffer.is_empty() {
                let _ = tx.send(Ok(buffer.freeze())).await;
            }
        });
        BlockStream { next: start, rx, task }
    }

    /// The aligned block that starts at `start`.
    async fn block_at(&self, state: &mut ReadState, start: u64) -> Result<Bytes> {
        if let Some((_, block)) = state.recent.iter().find(|(at, _)| *at == start) {
            return Ok(block.clone());
        }
        // A broken stream (the store dropped the connection while the client paused) is
        // reopened once from where the reader is.
        for attempt in 0..2 {
            let reusable = state
                .stream
                .as_ref()
                .is_some_and(|s| s.next <= start && start - s.next <= READ_AHEAD as u64 * self.block);
            if !reusable {
                state.stream = Some(self.open_stream(start));
            }
            let Some(stream) = state.stream.as_mut() else { continue };
            loop {
                let at = stream.next;
                let block = match stream.rx.recv().await {
                    Some(Ok(block)) => block,
                    Some(Err(e)) if attempt == 1 => {
                        state.stream = None;
                        return Err(e);
                    }
                    Some(Err(_)) | None => {
                        state.stream = None;
                        break;
                    }
                };
                stream.next += block.len() as u64;
                state.recent.push_back((at, block.clone()));
                if state.recent.len() > KEEP_RECENT {
                    state.recent.pop_front();
                }
                if at == start {
                    return Ok(block);
                }
            }
        }
        Err(StorageError::Io(std::io::Error::other("the store ended the download early")))
    }

    /// The part of `offset..end` inside the block that holds `offset`.
    async fn read_in_block(&self, state: &mut ReadState, offset: u64, end: u64) -> Result<Bytes> {
        let start = offset - offset % self.block;
        let block = self.block_at(state, start).await?;
        let from = (offset - start) as usize;
        let to = ((end - start) as usize).min(block.len());
        Ok(if to > from { block.slice(from..to) } else { Bytes::new() })
    }
}

#[async_trait]
impl ReadHandle for ObjectReader {
    async fn read_at(&self, offset: u64, len: usize) -> Result<Bytes> {
        let size = self.meta.size;
        if offset >= size || len == 0 {
            return Ok(Bytes::new());
        }
        let end = (offset + len as u64).min(size);
        let mut state = self.state.lock().await;
        let first = self.read_in_block(&mut state, offset, end).await?;
        if first.len() as u64 == end - offset {
            return Ok(first);
        }
        // The read spans blocks: assemble it, so callers get the whole range.
        let mut out = BytesMut::with_capacity((end - offset) as usize);
        out.extend_from_slice(&first);
        while (out.len() as u64) < end - offset {
            let piece = self.read_in_block(&mut state, offset + out.len() as u64, end).await?;
            if piece.is_empty() {
                break;
            }
            out.extend_from_slice(&piece);
        }
        Ok(out.freeze())
    }

    async fn metadata(&self) -> Result<Metadata> {
        Ok(self.meta.clone())
    }
}

#[derive(Default)]
struct WriteState {
    /// Started once more than one part's worth arrived; small files are a single PUT.
    upload: Option<GrowingMultipart>,
    /// Data in order, not yet handed to a part (or the whole small file).
    /// In-order data not yet in an upload: a small file is one PUT of these.
    pending: Vec<Bytes>,
    pending_len: usize,
    /// Offset of the next byte expected in order.
    next: u64,
    /// Writes that arrived early, by offset; bounded by `reorder_window`.
    early: BTreeMap<u64, Bytes>,
    early_bytes: usize,
    /// Random writes: everything goes to a temporary file, uploaded on commit.
    spill: Option<Spill>,
}

/// A temporary file holding an upload whose writes were not sequential; removed on drop.
struct Spill {
    file: Arc<std::fs::File>,
    path: std::path::PathBuf,
    len: u64,
}

impl Drop for Spill {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> std::io::Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .unwrap_or_else(|e| Err(std::io::Error::other(e)))
        .map_err(StorageError::from)
}

impl Spill {
    async fn create() -> Result<Self> {
        let path = std::env::temp_dir().join(format!(".ferry-spill-{}", uuid::Uuid::new_v4().simple()));
        let open = path.clone();
        let file = blocking(move || {
            use std::os::unix::fs::OpenOptionsExt;
            std::fs::OpenOptions::new().read(true).write(true).create_new(true).mode(0o600).open(open)
        })
        .await?;
        Ok(Self { file: Arc::new(file), path, len: 0 })
    }

    async fn write_at(&mut self, offset: u64, data: Bytes) -> Result<()> {
        use std::os::unix::fs::FileExt;
        let file = Arc::clone(&self.file);
        let end = offset + data.len() as u64;
        blocking(move || file.write_all_at(&data, offset)).await?;
        self.len = self.len.max(end);
        Ok(())
    }

    async fn read_at(&self, offset: u64, len: usize) -> Result<Bytes> {
        use std::os::unix::fs::FileExt;
        let file = Arc::clone(&self.file);
        blocking(move || {
            let mut buf = vec![0u8; len];
            file.read_exact_at(&mut buf, offset)?;
            Ok(Bytes::from(buf))
        })
        .await
    }
}

struct ObjectWriter {
    store: Arc<dyn ObjectStore>,
    path: Path,
    options: ObjectOptions,
    state: Mutex<WriteState>,
    /// For a `*.filepart` upload: its temporary path and the table that maps it to `path`.
    part: Option<(Path, PartTable)>,
    /// Woken whenever the in-order position advances, for writes waiting beyond the window.
    progress: tokio::sync::Notify,
}

/// How long a write far ahead waits for the writes before it before the upload gives up.
const GAP_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

impl ObjectWriter {
    /// Hands in-order data on without copying it: to the multipart upload (which cuts parts of
    /// `part_size` from the chunks), or, until more than one part has arrived, to `pending`.
    async fn push(&self, state: &mut WriteState, data: Bytes) -> Result<()> {
        state.next += data.len() as u64;
        if let Some(upload) = state.upload.as_mut() {
            upload.wait_for_capacity(self.options.parts_in_flight).await.map_err(store_error)?;
            upload.put(data);
            return Ok(());
        }
        state.pending_len += data.len();
        state.pending.push(data);
        if state.pending_len > self.options.part_size {
            let upload = self.store.put_multipart(&self.path).await.map_err(store_error)?;
            let mut upload = GrowingMultipart::new(upload, self.options.part_size);
            for chunk in std::mem::take(&mut state.pending) {
                upload.wait_for_capacity(self.options.parts_in_flight).await.map_err(store_error)?;
                upload.put(chunk);
            }
            state.pending_len = 0;
            state.upload = Some(upload);
        }
        Ok(())
    }
}

#[async_trait]
impl WriteHandle for ObjectWriter {
    async fn write_at(&self, offset: u64, data: Bytes) -> Result<()> {
        let waited_since = tokio::time::Instant::now();
        let mut state = loop {
            let state = self.state.lock().await;
            let ahead = offset > state.next
                && ((offset - state.next) as usize + data.len() > self.options.reorder_window
                    || state.early_bytes + data.len() > self.options.reorder_window);
            // Far ahead of a stream that has been sequential so far: the writes before it are
            // most likely still in flight (tasks run in any order), so wait for them a while
            // rather than give up on an upload whose first parts have already left.
            if !(ahead && state.spill.is_none() && state.upload.is_some()) {
                break state;
            }
            if waited_since.elapsed() > GAP_WAIT {
                return Err(StorageError::Unsupported);
            }
            let progress = self.progress.notified();
            tokio::pin!(progress);
            progress.as_mut().enable();
            drop(state);
            let _ = tokio::time::timeout(GAP_WAIT, progress).await;
        };
        if let Some(spill) = state.spill.as_mut() {
            return spill.write_at(offset, data).await;
        }
        let out_of_window = offset < state.next
            || (offset > state.next
                && ((offset - state.next) as usize + data.len() > self.options.reorder_window
                    || state.early_bytes + data.len() > self.options.reorder_window));
        if out_of_window {
            // Not sequential after all. Before any part left, everything moves to a temporary
            // file (uploaded on commit); parts already sent cannot be rewritten.
            if state.upload.is_some() {
                return Err(StorageError::Unsupported);
            }
            let mut spill = Spill::create().await?;
            let mut at = state.next - state.pending_len as u64;
            for chunk in std::mem::take(&mut state.pending) {
                let len = chunk.len() as u64;
                spill.write_at(at, chunk).await?;
                at += len;
            }
            state.pending_len = 0;
            for (at, chunk) in std::mem::take(&mut state.early) {
                spill.write_at(at, chunk).await?;
            }
            state.early_bytes = 0;
            // Replayed from the start on commit.
            state.next = 0;
            spill.write_at(offset, data).await?;
            state.spill = Some(spill);
            return Ok(());
        }
        if offset > state.next {
            state.early_bytes += data.len();
            state.early.insert(offset, data);
            return Ok(());
        }
        self.push(&mut state, data).await?;
        loop {
            let next = state.next;
            let Some(chunk) = state.early.remove(&next) else { break };
            state.early_bytes -= chunk.len();
            self.push(&mut state, chunk).await?;
        }
        self.progress.notify_waiters();
        Ok(())
    }

    async fn metadata(&self) -> Result<Metadata> {
        let state = self.state.lock().await;
        let size = state.spill.as_ref().map_or(state.next, |spill| spill.len);
        Ok(Metadata { kind: EntryKind::File, size, modified: None, accessed: None, mode: None })
    }

    async fn set_len(&self, _len: u64) -> Result<()> {
        Err(StorageError::Unsupported)
    }

    async fn sync(&self) -> Result<()> {
        Ok(())
    }

    async fn set_times(&self, _accessed: SystemTime, _modified: SystemTime) -> Result<()> {
        if self.options.ignore_attributes { Ok(()) } else { Err(StorageError::Unsupported) }
    }

    async fn set_mode(&self, _mode: u32) -> Result<()> {
        if self.options.ignore_attributes { Ok(()) } else { Err(StorageError::Unsupported) }
    }

    async fn commit(self: Box<Self>) -> Result<()> {
        let mut state = self.state.lock().await;
        if let Some(spill) = state.spill.take() {
            // Stream the temporary file through the same part logic.
            let mut at = 0;
            while at < spill.len {
                let len = (spill.len - at).min(self.options.part_size as u64) as usize;
                let chunk = spill.read_at(at, len).await?;
                self.push(&mut state, chunk).await?;
                at += len as u64;
            }
        }
        if !state.early.is_empty() {
            // A hole before the early writes: the object would be incomplete.
            if let Some(upload) = state.upload.take() {
                let _ = upload.abort().await;
            }
            return Err(StorageError::Unsupported);
        }
        match state.upload.take() {
            None => {
                let payload: PutPayload = std::mem::take(&mut state.pending).into_iter().collect();
                self.store.put(&self.path, payload).await.map_err(store_error)?;
            }
            Some(upload) => {
                upload.finish().await.map_err(store_error)?;
            }
        }
        if let Some((temporary, parts)) = &self.part
            && let Ok(mut parts) = parts.lock()
        {
            parts.insert(temporary.clone(), self.path.clone());
        }
        Ok(())
    }

    async fn abort(self: Box<Self>) {
        let mut state = self.state.lock().await;
        if let Some(upload) = state.upload.take() {
            let _ = upload.abort().await;
        }
    }
}

impl Drop for ObjectWriter {
    /// Dropped without commit (client gone): abort the multipart upload so no parts linger.
    fn drop(&mut self) {
        let upload = self.state.get_mut().upload.take();
        if let (Some(upload), Ok(runtime)) = (upload, tokio::runtime::Handle::try_current()) {
            runtime.spawn(async move {
                let _ = upload.abort().await;
            });
        }
    }
}
