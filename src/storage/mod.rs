//! Storage backends behind one streaming trait. Backends know keys, not users, permissions or
//! protocols. Shaped for object stores too: ranged reads, writes that commit on close,
//! listings fetched in batches. Uses `config` and `types`.

pub mod local;
mod metered;
mod multipart;
pub mod object;

use std::sync::Arc;
use std::time::SystemTime;

use async_trait::async_trait;
use bytes::Bytes;

pub use local::LocalStorage;
pub use object::{ObjectOptions, ObjectStorage};

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
    /// Creates `link` pointing at `target` (both keys inside the root).
    async fn symlink(&self, target: &Key, link: &Key) -> Result<()>;
    async fn read_link(&self, key: &Key) -> Result<Key>;
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

/// Opens the configured backend, its requests measured (`metered.rs`).
pub fn open(config: &crate::config::StorageConfig) -> std::result::Result<Arc<dyn Storage>, String> {
    use crate::config::Backend;
    let kind = match config.backend {
        Backend::Local => "local",
        Backend::Memory => "memory",
        Backend::S3 => "s3",
        Backend::Gcs => "gcs",
        Backend::Azure => "azure",
    };
    open_unmetered(config).map(|backend| metered::Metered::wrap(backend, kind))
}

fn open_unmetered(config: &crate::config::StorageConfig) -> std::result::Result<Arc<dyn Storage>, String> {
    use crate::config::Backend;
    use object_store::ObjectStore;
    use object_store::list::PaginatedListStore;

    let options = ObjectOptions {
        part_size: config.part_size,
        parts_in_flight: config.parts_in_flight,
        reorder_window: config.reorder_window,
        read_block: config.read_block,
        ignore_attributes: config.object_attributes == crate::config::ObjectAttributes::Ignore,
    };
    let object =
        |store: Arc<dyn ObjectStore>, pages: Option<Arc<dyn PaginatedListStore>>| -> Arc<dyn Storage> {
            Arc::new(ObjectStorage::new(store, pages, &config.prefix, options))
        };
    let build_error = |e: object_store::Error| format!("storage: {e}");
    let retry = object_store::RetryConfig {
        max_retries: config.max_retries,
        retry_timeout: config.retry_timeout,
        ..Default::default()
    };
    match config.backend {
        Backend::Local => LocalStorage::new(&config.root)
            .map(|s| Arc::new(s) as Arc<dyn Storage>)
            .map_err(|e| format!("storage.root {}: {e}", config.root.display())),
        Backend::Memory => Ok(object(Arc::new(object_store::memory::InMemory::new()), None)),
        Backend::S3 => {
            let mut builder = object_store::aws::AmazonS3Builder::from_env()
                .with_bucket_name(&config.bucket)
                .with_retry(retry)
                .with_allow_http(config.allow_http)
                .with_virtual_hosted_style_request(!config.path_style);
            if let Some(endpoint) = &config.endpoint {
                builder = builder.with_endpoint(endpoint);
            }
            if let Some(region) = &config.region {
                builder = builder.with_region(region);
            }
            if config.checksum_sha256 {
                // The checksum itself (x-amz-checksum-sha256), and the header SDKs send to announce
                // it, which some S3-compatible stores look for before accepting Object Lock writes.
                let mut headers = reqwest::header::HeaderMap::new();
                headers.insert(
                    "x-amz-sdk-checksum-algorithm",
                    reqwest::header::HeaderValue::from_static("SHA256"),
                );
                builder = builder
                    .with_checksum_algorithm(object_store::aws::Checksum::SHA256)
                    // Replaces the client options, so `allow_http` is set again here.
                    .with_client_options(
                        object_store::ClientOptions::new()
                            .with_allow_http(config.allow_http)
                            .with_default_headers(headers),
                    );
            }
            if let (Some(id), Some(secret)) = (&config.access_key_id, &config.secret_access_key) {
                builder = builder.with_access_key_id(id.expose()).with_secret_access_key(secret.expose());
            }
            let s3 = Arc::new(builder.build().map_err(build_error)?);
            Ok(object(s3.clone(), Some(s3)))
        }
        Backend::Gcs => {
            let mut builder = object_store::gcp::GoogleCloudStorageBuilder::from_env()
                .with_bucket_name(&config.bucket)
                .with_retry(retry);
            if let Some(file) = &config.service_account_file {
                builder = builder.with_service_account_path(file.to_string_lossy());
            }
            if let Some(endpoint) = &config.endpoint {
                builder = builder.with_base_url(endpoint);
            }
            let gcs = builder.build().map_err(build_error)?;
            let gcs = Arc::new(gcs);
            Ok(object(gcs.clone(), Some(gcs)))
        }
        Backend::Azure => {
            let mut builder = object_store::azure::MicrosoftAzureBuilder::from_env()
                .with_container_name(&config.bucket)
                .with_retry(retry)
                .with_allow_http(config.allow_http);
            if let Some(account) = &config.account {
                builder = builder.with_account(account);
            }
            if let Some(endpoint) = &config.endpoint {
                builder = builder.with_endpoint(endpoint.clone());
            }
            if let Some(key) = &config.secret_access_key {
                builder = builder.with_access_key(key.expose());
            }
            let azure = Arc::new(builder.build().map_err(build_error)?);
            Ok(object(azure.clone(), Some(azure)))
        }
    }
}
