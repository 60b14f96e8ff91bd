//! Open files. Each records its one audit event (bytes, duration, outcome) when it ends,
//! also when it is dropped because the client vanished.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use bytes::Bytes;
use tokio::time::Instant;

use super::transfers::TransferGuard;
use super::{Context, SessionError, SetAttrs};
use crate::audit::{EventKind, Outcome};
use crate::telemetry::metrics;
use crate::vfs::VirtualPath;
use crate::vfs::{Metadata, ReadHandle, WriteHandle};

pub struct ReadFile {
    pub(super) ctx: Arc<Context>,
    pub(super) path: VirtualPath,
    pub(super) handle: Box<dyn ReadHandle>,
    pub(super) bytes: AtomicU64,
    /// Set when a read failed, so the download is recorded as failed.
    pub(super) failed: AtomicBool,
    /// Set by the protocol when the client did not get the file: bytes delivered and why.
    pub(super) cut_short: std::sync::Mutex<Option<(u64, String)>>,
    pub(super) started: Instant,
    /// The transfer's trace span, open from open to close.
    pub(super) span: tracing::Span,
    pub(super) _guard: TransferGuard,
}

impl ReadFile {
    /// The client did not get the whole file it asked for (its connection failed, it refused
    /// the file): the download is recorded as failed, with the bytes it did get.
    pub fn interrupted(&self, delivered: u64, reason: &str) {
        if let Ok(mut cut) = self.cut_short.lock()
            && cut.is_none()
        {
            *cut = Some((delivered, reason.to_string()));
        }
    }

    pub fn path(&self) -> &VirtualPath {
        &self.path
    }

    /// Up to `len` bytes at `offset`; empty at end of file.
    pub async fn read_at(&self, offset: u64, len: usize) -> Result<Bytes, SessionError> {
        let data = self.handle.read_at(offset, len).await.map_err(|e| {
            let error = SessionError::from_storage(e, &self.path);
            self.ctx.first_storage_failure(&self.failed, &self.path, &error);
            error
        })?;
        self.bytes.fetch_add(data.len() as u64, Ordering::Relaxed);
        Ok(data)
    }

    pub async fn metadata(&self) -> Result<Metadata, SessionError> {
        self.handle.metadata().await.map_err(|e| SessionError::from_storage(e, &self.path))
    }
}

impl Drop for ReadFile {
    fn drop(&mut self) {
        let cut_short = self.cut_short.lock().ok().and_then(|mut cut| cut.take());
        let (bytes, result) = match cut_short {
            Some((delivered, reason)) => (delivered, Err(reason)),
            None if self.failed.load(Ordering::Relaxed) => (
                self.bytes.load(Ordering::Relaxed),
                Err("a read from storage failed during the download".to_string()),
            ),
            None => (self.bytes.load(Ordering::Relaxed), Ok(())),
        };
        self.span.record("bytes", bytes);
        metrics::bytes(self.ctx.protocol, "download", bytes);
        metrics::file_op(self.ctx.protocol, "download", if result.is_ok() { "ok" } else { "failed" });
        self.ctx.emit_transfer(EventKind::FileDownload, &self.path, bytes, self.started, result);
    }
}

pub struct WriteFile {
    pub(super) ctx: Arc<Context>,
    pub(super) path: VirtualPath,
    pub(super) handle: Option<Box<dyn WriteHandle>>,
    pub(super) bytes: AtomicU64,
    /// Set at the first failed write, so storage trouble is recorded once per upload.
    pub(super) failed: AtomicBool,
    pub(super) started: Instant,
    /// The transfer's trace span, open from open to close.
    pub(super) span: tracing::Span,
    pub(super) _guard: TransferGuard,
}

impl WriteFile {
    pub fn path(&self) -> &VirtualPath {
        &self.path
    }

    fn handle(&self) -> Result<&dyn WriteHandle, SessionError> {
        self.handle.as_deref().ok_or(SessionError::Unsupported("file already closed"))
    }

    pub async fn write_at(&self, offset: u64, data: Bytes) -> Result<(), SessionError> {
        let len = data.len() as u64;
        self.handle()?.write_at(offset, data).await.map_err(|e| {
            let error = SessionError::from_storage(e, &self.path);
            self.ctx.first_storage_failure(&self.failed, &self.path, &error);
            error
        })?;
        self.bytes.fetch_add(len, Ordering::Relaxed);
        Ok(())
    }

    pub async fn metadata(&self) -> Result<Metadata, SessionError> {
        self.handle()?.metadata().await.map_err(|e| SessionError::from_storage(e, &self.path))
    }

    /// Reads back from a file opened for reading and writing (`r+`, `w+`, `a+`): what it holds
    /// now, staged writes included. Object stores cannot read an upload in progress.
    pub async fn read_at(&self, offset: u64, len: usize) -> Result<Bytes, SessionError> {
        self.handle()?.read_at(offset, len).await.map_err(|e| match e {
            crate::vfs::StorageError::Unsupported => {
                SessionError::Unsupported("this storage cannot read a file while it is being written")
            }
            other => SessionError::from_storage(other, &self.path),
        })
    }

    pub async fn set_len(&self, len: u64) -> Result<(), SessionError> {
        self.handle()?.set_len(len).await.map_err(|e| SessionError::from_storage(e, &self.path))
    }

    pub async fn sync(&self) -> Result<(), SessionError> {
        self.handle()?.sync().await.map_err(|e| SessionError::from_storage(e, &self.path))
    }

    /// Attribute changes that belong to the upload itself (`put -p`): applied to the open
    /// file, so they survive the rename into place.
    pub async fn set_attrs(&self, attrs: SetAttrs) -> Result<(), SessionError> {
        let handle = self.handle()?;
        let result = async {
            if let Some(size) = attrs.size {
                handle.set_len(size).await?;
            }
            if let Some(mode) = attrs.mode {
                handle.set_mode(mode).await?;
            }
            if let Some((accessed, modified)) = attrs.times {
                handle.set_times(accessed, modified).await?;
            }
            Ok(())
        }
        .await
        .map_err(|e| SessionError::from_storage(e, &self.path));
        let (outcome, reason) = match &result {
            Ok(()) => (Outcome::Ok, None),
            Err(e) => (Outcome::Failed, Some(e.to_string())),
        };
        let mut fields = self.ctx.fields(&self.path);
        fields.reason = reason;
        self.ctx.audit.emit(EventKind::FileSetStat, outcome, fields);
        metrics::file_op(self.ctx.protocol, "setstat", outcome.as_str());
        result
    }

    /// Publishes the upload under its final name and records it.
    pub async fn close(mut self) -> Result<(), SessionError> {
        let Some(handle) = self.handle.take() else {
            return Ok(());
        };
        let result = handle.commit().await.map_err(|e| SessionError::from_storage(e, &self.path));
        if let Err(e) = &result {
            self.ctx.first_storage_failure(&self.failed, &self.path, e);
        }
        let bytes = self.bytes.load(Ordering::Relaxed);
        self.span.record("bytes", bytes);
        let outcome = if result.is_ok() { "ok" } else { "failed" };
        metrics::bytes(self.ctx.protocol, "upload", bytes);
        metrics::file_op(self.ctx.protocol, "upload", outcome);
        let reason = result.as_ref().map(|_| ()).map_err(|e| e.to_string());
        self.ctx.emit_transfer(EventKind::FileUpload, &self.path, bytes, self.started, reason);
        result
    }
}

impl Drop for WriteFile {
    /// Never closed: the client went away. Staged data is discarded by the handle's own drop.
    fn drop(&mut self) {
        if self.handle.take().is_some() {
            let bytes = self.bytes.load(Ordering::Relaxed);
            metrics::file_op(self.ctx.protocol, "upload", "failed");
            self.ctx.emit_transfer(
                EventKind::FileUpload,
                &self.path,
                bytes,
                self.started,
                Err("connection ended before the upload was closed".to_string()),
            );
        }
    }
}

impl Context {
    fn emit_transfer(
        &self,
        kind: EventKind,
        path: &VirtualPath,
        bytes: u64,
        started: Instant,
        result: Result<(), String>,
    ) {
        let (outcome, reason) = match result {
            Ok(()) => (Outcome::Ok, None),
            Err(reason) => (Outcome::Failed, Some(reason)),
        };
        let took = started.elapsed();
        let direction = if kind == EventKind::FileUpload { "upload" } else { "download" };
        metrics::transfer(self.protocol, direction, &self.user, bytes, took);
        let mut fields = self.fields(path);
        fields.bytes = Some(bytes);
        fields.duration_ms = Some(took.as_millis() as u64);
        fields.reason = reason;
        self.audit.emit(kind, outcome, fields);
    }
}
