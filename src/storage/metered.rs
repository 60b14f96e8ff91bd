//! Times every storage request and counts the failures (not "not found", "exists" and the other
//! answers a healthy backend gives) by backend kind and operation, for
//! `ferry_storage_request_duration_seconds` and `ferry_storage_errors_total`. Wraps any backend
//! and the handles it opens.

use std::future::Future;
use std::sync::Arc;
use std::time::SystemTime;

use async_trait::async_trait;
use bytes::Bytes;
use tokio::time::Instant;

use super::{
    Capacity, DirEntry, DirLister, Key, LinkTarget, Metadata, ReadHandle, Result, Storage, StorageError,
    WriteHandle, WriteOptions,
};
use crate::telemetry::metrics;

/// A backend whose requests are measured under the label `kind` (local, s3, gcs, azure, memory).
pub struct Metered {
    inner: Arc<dyn Storage>,
    kind: &'static str,
}

impl Metered {
    pub fn wrap(inner: Arc<dyn Storage>, kind: &'static str) -> Arc<dyn Storage> {
        Arc::new(Self { inner, kind })
    }
}

fn is_failure(error: &StorageError) -> bool {
    matches!(error, StorageError::Io(_) | StorageError::NoSpace)
}

async fn timed<T>(kind: &'static str, op: &'static str, work: impl Future<Output = Result<T>>) -> Result<T> {
    let started = Instant::now();
    let result = work.await;
    let failed = result.as_ref().err().is_some_and(is_failure);
    metrics::storage_request(kind, op, started.elapsed(), failed);
    result
}

#[async_trait]
impl Storage for Metered {
    fn scoped(&self, prefix: &Key) -> Result<Arc<dyn Storage>> {
        Ok(Self::wrap(self.inner.scoped(prefix)?, self.kind))
    }
    async fn resolve(&self, key: &Key, follow_final: bool) -> Result<Key> {
        timed(self.kind, "stat", self.inner.resolve(key, follow_final)).await
    }
    async fn stat(&self, key: &Key) -> Result<Metadata> {
        timed(self.kind, "stat", self.inner.stat(key)).await
    }
    async fn lstat(&self, key: &Key) -> Result<Metadata> {
        timed(self.kind, "stat", self.inner.lstat(key)).await
    }
    async fn list(&self, key: &Key) -> Result<Box<dyn DirLister>> {
        let inner = timed(self.kind, "list", self.inner.list(key)).await?;
        Ok(Box::new(MeteredLister { inner, kind: self.kind }))
    }
    async fn open_read(&self, key: &Key) -> Result<Box<dyn ReadHandle>> {
        let inner = timed(self.kind, "open", self.inner.open_read(key)).await?;
        Ok(Box::new(MeteredRead { inner, kind: self.kind }))
    }
    async fn open_write(&self, key: &Key, options: WriteOptions) -> Result<Box<dyn WriteHandle>> {
        let inner = timed(self.kind, "open", self.inner.open_write(key, options)).await?;
        Ok(Box::new(MeteredWrite { inner, kind: self.kind }))
    }
    async fn mkdir(&self, key: &Key) -> Result<()> {
        timed(self.kind, "mkdir", self.inner.mkdir(key)).await
    }
    async fn rmdir(&self, key: &Key) -> Result<()> {
        timed(self.kind, "rmdir", self.inner.rmdir(key)).await
    }
    async fn remove(&self, key: &Key) -> Result<()> {
        timed(self.kind, "delete", self.inner.remove(key)).await
    }
    async fn rename(&self, from: &Key, to: &Key) -> Result<()> {
        timed(self.kind, "rename", self.inner.rename(from, to)).await
    }
    async fn set_times(&self, key: &Key, accessed: SystemTime, modified: SystemTime) -> Result<()> {
        timed(self.kind, "setstat", self.inner.set_times(key, accessed, modified)).await
    }
    async fn set_mode(&self, key: &Key, mode: u32) -> Result<()> {
        timed(self.kind, "setstat", self.inner.set_mode(key, mode)).await
    }
    async fn set_len(&self, key: &Key, len: u64) -> Result<()> {
        timed(self.kind, "setstat", self.inner.set_len(key, len)).await
    }
    async fn symlink(&self, target: &LinkTarget, link: &Key) -> Result<()> {
        timed(self.kind, "link", self.inner.symlink(target, link)).await
    }
    async fn read_link(&self, key: &Key) -> Result<LinkTarget> {
        timed(self.kind, "stat", self.inner.read_link(key)).await
    }
    async fn hard_link(&self, existing: &Key, link: &Key) -> Result<()> {
        timed(self.kind, "link", self.inner.hard_link(existing, link)).await
    }
    async fn capacity(&self) -> Result<Capacity> {
        timed(self.kind, "stat", self.inner.capacity()).await
    }
}

struct MeteredLister {
    inner: Box<dyn DirLister>,
    kind: &'static str,
}

#[async_trait]
impl DirLister for MeteredLister {
    async fn next_batch(&mut self, max: usize) -> Result<Vec<DirEntry>> {
        timed(self.kind, "list", self.inner.next_batch(max)).await
    }
}

struct MeteredRead {
    inner: Box<dyn ReadHandle>,
    kind: &'static str,
}

#[async_trait]
impl ReadHandle for MeteredRead {
    async fn read_at(&self, offset: u64, len: usize) -> Result<Bytes> {
        timed(self.kind, "read", self.inner.read_at(offset, len)).await
    }
    async fn metadata(&self) -> Result<Metadata> {
        timed(self.kind, "stat", self.inner.metadata()).await
    }
}

struct MeteredWrite {
    inner: Box<dyn WriteHandle>,
    kind: &'static str,
}

#[async_trait]
impl WriteHandle for MeteredWrite {
    async fn write_at(&self, offset: u64, data: Bytes) -> Result<()> {
        timed(self.kind, "write", self.inner.write_at(offset, data)).await
    }
    async fn read_at(&self, offset: u64, len: usize) -> Result<Bytes> {
        timed(self.kind, "read", self.inner.read_at(offset, len)).await
    }
    async fn metadata(&self) -> Result<Metadata> {
        timed(self.kind, "stat", self.inner.metadata()).await
    }
    async fn set_len(&self, len: u64) -> Result<()> {
        timed(self.kind, "setstat", self.inner.set_len(len)).await
    }
    async fn sync(&self) -> Result<()> {
        timed(self.kind, "write", self.inner.sync()).await
    }
    async fn set_times(&self, accessed: SystemTime, modified: SystemTime) -> Result<()> {
        timed(self.kind, "setstat", self.inner.set_times(accessed, modified)).await
    }
    async fn set_mode(&self, mode: u32) -> Result<()> {
        timed(self.kind, "setstat", self.inner.set_mode(mode)).await
    }
    async fn commit(self: Box<Self>) -> Result<()> {
        let kind = self.kind;
        timed(kind, "commit", self.inner.commit()).await
    }
    async fn abort(self: Box<Self>) {
        self.inner.abort().await;
    }
}
