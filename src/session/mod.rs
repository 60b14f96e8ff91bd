//! The one file API every protocol calls. Each operation resolves the virtual path inside the
//! user's jail, checks the most specific permission rule, calls the vfs, emits one audit event
//! with its outcome and counts the metric. Protocols translate; this room decides.
//! Uses `vfs`, `auth`, `audit`, `state` and the leaves.

mod defender;
mod error;
mod files;
mod links;
mod live;
mod login;
mod transfers;

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::SystemTime;

use tokio::time::Instant;
use tracing::Instrument as _;

pub use crate::auth::RuleSet;
pub use crate::auth::api_key::PREFIX as API_KEY_PREFIX;
pub use crate::auth::{Credentials, Identity};
pub use crate::types::Op;
pub use crate::vfs::{Capacity, EntryKind, Metadata, PathError, VirtualPath};
pub use defender::DefenderSettings;
pub use error::SessionError;
pub use files::{ReadFile, WriteFile};
pub use live::{LiveConnection, LiveSession};
pub use login::{ConnectionInfo, IssuedToken, LoginError, SessionFactory, continues_a_login};
pub use transfers::Transfers;

use crate::audit::{Audit, EventKind, Fields, Outcome};
use crate::config::CrossMountRename;
use crate::telemetry::metrics;
use crate::types::{PeerAddr, Protocol, SessionId, UploadMode, filepart};
use crate::vfs::{self, CopyError, DirLister, Located, Resolved, StorageError, Vfs, WriteOptions};

/// Who is acting, for audit records and metrics.
pub(crate) struct Context {
    /// The session's trace span (child of the connection's); file operations are its children.
    span: tracing::Span,
    audit: Audit,
    protocol: Protocol,
    session_id: SessionId,
    peer: PeerAddr,
    user: String,
    seq: AtomicU64,
}

impl Drop for Context {
    fn drop(&mut self) {
        metrics::metrics().sessions_active.with_label_values(&[self.protocol.as_str()]).dec();
    }
}

impl Context {
    /// A failure of the storage itself (not a refusal or a missing file) is its own event, so
    /// operators can alert on backend trouble apart from users' mistakes.
    fn storage_failure(&self, path: &VirtualPath, error: &SessionError) {
        if matches!(error, SessionError::Storage(_) | SessionError::NoSpace) {
            let cause = error.cause();
            tracing::warn!(session_id = %self.session_id, path = %path, %cause, "storage failure");
            let mut fields = self.fields(path);
            fields.reason = Some(cause);
            self.audit.emit(EventKind::StorageError, Outcome::Failed, fields);
        }
    }

    /// `storage_failure` for the first failure of an open file only (`failed` is its flag), so
    /// a storage outage mid-transfer is one record, not one per chunk.
    fn first_storage_failure(&self, failed: &AtomicBool, path: &VirtualPath, error: &SessionError) {
        if !failed.swap(true, Ordering::Relaxed) {
            self.storage_failure(path, error);
        }
    }

    fn fields(&self, path: &VirtualPath) -> Fields {
        Fields {
            session: Some(self.session_id),
            seq: Some(self.seq.fetch_add(1, Ordering::Relaxed)),
            protocol: Some(self.protocol),
            user: Some(self.user.clone()),
            peer: Some(self.peer),
            path: Some(path.to_string()),
            ..Fields::default()
        }
    }
}

/// How a write opens its file.
#[derive(Debug, Clone, Copy, Default)]
pub struct OpenWrite {
    pub create: bool,
    pub truncate: bool,
    pub exclusive: bool,
    pub append: bool,
}

/// Attribute changes; `None` leaves a field alone.
#[derive(Debug, Clone, Copy, Default)]
pub struct SetAttrs {
    pub size: Option<u64>,
    pub mode: Option<u32>,
    pub times: Option<(SystemTime, SystemTime)>,
}

/// A folder listing read in batches.
pub struct Listing {
    lister: Box<dyn DirLister>,
}

impl Listing {
    /// Up to `max` entries; empty when done.
    pub async fn next_batch(&mut self, max: usize) -> Result<Vec<(String, Metadata)>, SessionError> {
        let batch = self
            .lister
            .next_batch(max)
            .await
            .map_err(|e| SessionError::from_storage(e, &VirtualPath::root()))?;
        Ok(batch.into_iter().map(|e| (e.name, e.meta)).collect())
    }
}

/// An authenticated user's file session.
pub struct Session {
    ctx: Arc<Context>,
    vfs: Vfs,
    permissions: RuleSet,
    upload_mode: UploadMode,
    cross_mount_rename: CrossMountRename,
    transfers: Arc<Transfers>,
}

impl Session {
    pub fn user(&self) -> &str {
        &self.ctx.user
    }

    pub fn id(&self) -> SessionId {
        self.ctx.session_id
    }

    /// Resolves a client-supplied path against `cwd` inside the jail; `..` at the top stays
    /// at the top, as under OpenSSH's or vsftpd's chroot.
    pub fn resolve(&self, cwd: &VirtualPath, raw: &str) -> Result<VirtualPath, SessionError> {
        Ok(cwd.navigate(raw)?)
    }

    fn check(&self, op: Op, path: &VirtualPath) -> Result<(), SessionError> {
        if self.permissions.allows(op, path.as_str()) {
            Ok(())
        } else {
            Err(SessionError::PermissionDenied { op, path: path.clone() })
        }
    }

    /// Runs one operation and records it: one audit event, one metric.
    async fn audited<T>(
        &self,
        kind: EventKind,
        op: &'static str,
        path: &VirtualPath,
        target: Option<&VirtualPath>,
        work: impl Future<Output = Result<T, SessionError>>,
    ) -> Result<T, SessionError> {
        let started = Instant::now();
        let span = tracing::info_span!(parent: &self.ctx.span, "file_operation", op, path = path.as_str());
        let result = work.instrument(span).await;
        let (outcome, reason) = match &result {
            Ok(_) => (Outcome::Ok, None),
            Err(e @ SessionError::PermissionDenied { .. }) => (Outcome::Denied, Some(e.to_string())),
            Err(e) => (Outcome::Failed, Some(e.to_string())),
        };
        if let Err(e) = &result {
            self.ctx.storage_failure(path, e);
        }
        let mut fields = self.ctx.fields(path);
        fields.target = target.map(ToString::to_string);
        fields.reason = reason;
        fields.duration_ms = Some(started.elapsed().as_millis() as u64);
        self.ctx.audit.emit(kind, outcome, fields);
        metrics::file_op(self.ctx.protocol, op, outcome.as_str());
        result
    }

    fn transfer_span(&self, direction: &'static str, path: &VirtualPath) -> tracing::Span {
        tracing::info_span!(
            parent: &self.ctx.span,
            "transfer",
            direction,
            path = path.as_str(),
            bytes = tracing::field::Empty,
        )
    }

    fn storage_err(path: &VirtualPath) -> impl Fn(StorageError) -> SessionError + '_ {
        move |e| SessionError::from_storage(e, path)
    }

    /// Looking at an entry is part of listing its folder: metadata of anything but the home
    /// itself needs the list permission on the parent.
    fn check_visible(&self, path: &VirtualPath) -> Result<(), SessionError> {
        if path.is_root() { Ok(()) } else { self.check(Op::List, &path.parent()) }
    }

    /// Follows a final symlink (inside the jail only).
    pub async fn stat(&self, path: &VirtualPath) -> Result<Metadata, SessionError> {
        let entry = self.reach_visible(path, true).await?;
        self.vfs.stat(&entry).await.map_err(Self::storage_err(path))
    }

    pub async fn lstat(&self, path: &VirtualPath) -> Result<Metadata, SessionError> {
        let entry = self.reach_visible(path, false).await?;
        self.vfs.stat(&entry).await.map_err(Self::storage_err(path))
    }

    /// Mount points and the folders leading to them are part of the tree's shape, not the
    /// user's files: they cannot be removed or renamed.
    fn check_not_mount(&self, op: Op, path: &VirtualPath) -> Result<(), SessionError> {
        if path.is_root() || self.vfs.holds_mount(path) {
            Err(SessionError::PermissionDenied { op, path: path.clone() })
        } else {
            Ok(())
        }
    }

    pub async fn list(&self, path: &VirtualPath) -> Result<Listing, SessionError> {
        self.audited(EventKind::DirList, "list", path, None, async {
            let entry = self.reach(Op::List, path, true).await?;
            let lister = self.vfs.list(&entry).await.map_err(Self::storage_err(path))?;
            Ok(Listing { lister })
        })
        .await
    }

    pub async fn open_read(&self, path: &VirtualPath) -> Result<ReadFile, SessionError> {
        let started = Instant::now();
        let opened = async {
            if self.transfers.is_draining() {
                return Err(SessionError::ShuttingDown);
            }
            let entry = self.reach(Op::Download, path, true).await?;
            entry.at.storage.open_read(&entry.at.key).await.map_err(Self::storage_err(path))
        }
        .await;
        match opened {
            Ok(handle) => Ok(ReadFile {
                ctx: Arc::clone(&self.ctx),
                path: path.clone(),
                handle,
                bytes: AtomicU64::new(0),
                failed: Default::default(),
                cut_short: Default::default(),
                started,
                span: self.transfer_span("download", path),
                _guard: self.transfers.begin(),
            }),
            // A download that never started is still one audited operation.
            Err(e) => self.audited(EventKind::FileDownload, "download", path, None, async { Err(e) }).await,
        }
    }

    pub async fn open_write(&self, path: &VirtualPath, how: OpenWrite) -> Result<WriteFile, SessionError> {
        let started = Instant::now();
        let opened = async {
            if self.transfers.is_draining() {
                return Err(SessionError::ShuttingDown);
            }
            if path.is_root() {
                return Err(SessionError::IsADirectory(path.clone()));
            }
            // Writing through a link writes where it leads, so the rules of both places hold.
            let entry = self.reach(Op::Upload, path, true).await?;
            // An object backend writes `NAME.filepart` straight to `NAME` (no copy on the
            // client's final rename), so such an upload needs NAME's permissions too.
            if let Some(name) = filepart::final_name(entry.path.name()) {
                let target = entry.path.parent().join(name);
                self.check(Op::Upload, &target)?;
                self.check(Op::Rename, &target)?;
                let exists = match self.vfs.resolve(&target, true).await {
                    Ok(found) => self.vfs.stat(&found).await.is_ok(),
                    Err(_) => false,
                };
                if exists {
                    self.check(Op::Overwrite, &target)?;
                }
            }
            let options = WriteOptions {
                create: how.create,
                truncate: how.truncate,
                exclusive: how.exclusive,
                append: how.append,
                atomic: self.upload_mode == UploadMode::Atomic,
                replace: self.permissions.allows(Op::Overwrite, path.as_str())
                    && self.permissions.allows(Op::Overwrite, entry.path.as_str()),
            };
            let opened = entry.at.storage.open_write(&entry.at.key, options).await;
            match opened {
                Err(StorageError::AlreadyExists) if !how.exclusive => {
                    Err(SessionError::PermissionDenied { op: Op::Overwrite, path: path.clone() })
                }
                other => other.map_err(Self::storage_err(path)),
            }
        }
        .await;
        match opened {
            Ok(handle) => Ok(WriteFile {
                ctx: Arc::clone(&self.ctx),
                path: path.clone(),
                handle: Some(handle),
                bytes: AtomicU64::new(0),
                failed: Default::default(),
                started,
                span: self.transfer_span("upload", path),
                _guard: self.transfers.begin(),
            }),
            Err(e) => self.audited(EventKind::FileUpload, "upload", path, None, async { Err(e) }).await,
        }
    }

    /// Opens for reading and writing (SFTP `READ|WRITE`: `r+`, `w+`, `a+`): an upload handle
    /// that also reads back, so it needs the download right as well.
    pub async fn open_read_write(
        &self,
        path: &VirtualPath,
        how: OpenWrite,
    ) -> Result<WriteFile, SessionError> {
        if let Err(e) = self.check(Op::Download, path) {
            return self.audited(EventKind::FileDownload, "download", path, None, async { Err(e) }).await;
        }
        self.open_write(path, how).await
    }

    pub async fn mkdir(&self, path: &VirtualPath) -> Result<(), SessionError> {
        self.audited(EventKind::DirCreate, "mkdir", path, None, async {
            let entry = self.reach(Op::Mkdir, path, false).await?;
            entry.at.storage.mkdir(&entry.at.key).await.map_err(Self::storage_err(path))
        })
        .await
    }

    pub async fn rmdir(&self, path: &VirtualPath) -> Result<(), SessionError> {
        self.audited(EventKind::DirRemove, "rmdir", path, None, async {
            let entry = self.reach(Op::Rmdir, path, false).await?;
            self.check_not_mount(Op::Rmdir, path)?;
            self.check_not_mount(Op::Rmdir, &entry.path)?;
            entry.at.storage.rmdir(&entry.at.key).await.map_err(Self::storage_err(path))
        })
        .await
    }

    pub async fn remove(&self, path: &VirtualPath) -> Result<(), SessionError> {
        self.audited(EventKind::FileDelete, "delete", path, None, async {
            let entry = self.reach(Op::Delete, path, false).await?;
            self.check_not_mount(Op::Delete, path)?;
            self.check_not_mount(Op::Delete, &entry.path)?;
            entry.at.storage.remove(&entry.at.key).await.map_err(Self::storage_err(path))
        })
        .await
    }

    /// Renames `from` to `to`. Without `replace` an existing `to` is refused (SFTP v3 rename);
    /// with it an existing file is replaced, which needs the overwrite permission.
    pub async fn rename(
        &self,
        from: &VirtualPath,
        to: &VirtualPath,
        replace: bool,
    ) -> Result<(), SessionError> {
        self.audited(EventKind::FileRename, "rename", from, Some(to), async {
            let source_entry = self.reach(Op::Rename, from, false).await?;
            let target_entry = self.reach(Op::Rename, to, false).await?;
            for path in [from, to, &source_entry.path, &target_entry.path] {
                self.check_not_mount(Op::Rename, path)?;
            }
            // Finishing a `NAME.filepart` upload: an object backend already wrote NAME (and made
            // a delete of the old NAME a no-op), so the rename replaces whatever NAME shows.
            let finishes_part =
                from.parent() == to.parent() && filepart::final_name(from.name()) == Some(to.name());
            let replace = replace || finishes_part;
            let (source, target) = (&source_entry.at, &target_entry.at);
            let meta = source.storage.lstat(&source.key).await.map_err(Self::storage_err(from))?;
            match target.storage.lstat(&target.key).await {
                Ok(_) if !replace => return Err(SessionError::AlreadyExists(to.clone())),
                Ok(_) => self.check_both(Op::Overwrite, to, &target_entry)?,
                Err(StorageError::NotFound) => {}
                Err(e) => return Err(SessionError::from_storage(e, to)),
            }
            if source.same_mount(target) {
                return source.storage.rename(&source.key, &target.key).await.map_err(Self::storage_err(to));
            }
            self.rename_across_mounts(source, target, &meta, from, to).await
        })
        .await
    }

    pub async fn set_attrs(&self, path: &VirtualPath, attrs: SetAttrs) -> Result<(), SessionError> {
        self.audited(EventKind::FileSetStat, "setstat", path, None, async {
            let entry = self.reach(Op::SetStat, path, true).await?;
            if attrs.size.is_some() {
                self.check_both(Op::Overwrite, path, &entry)?;
            }
            let (storage, key) = (entry.at.storage, &entry.at.key);
            if let Some(size) = attrs.size {
                storage.set_len(key, size).await.map_err(Self::storage_err(path))?;
            }
            if let Some(mode) = attrs.mode {
                storage.set_mode(key, mode).await.map_err(Self::storage_err(path))?;
            }
            if let Some((accessed, modified)) = attrs.times {
                storage.set_times(key, accessed, modified).await.map_err(Self::storage_err(path))?;
            }
            Ok(())
        })
        .await
    }

    pub async fn capacity(&self) -> Result<Capacity, SessionError> {
        self.vfs.root_storage().capacity().await.map_err(Self::storage_err(&VirtualPath::root()))
    }

    /// A rename between mounts cannot be one backend call: as configured, refuse it or copy the
    /// file (visible at `to` only when complete) and then delete the original. Folders are
    /// refused: copying a tree between backends is a job for a transfer rule, not a rename.
    async fn rename_across_mounts(
        &self,
        source: &Located<'_>,
        target: &Located<'_>,
        meta: &Metadata,
        from: &VirtualPath,
        to: &VirtualPath,
    ) -> Result<(), SessionError> {
        if self.cross_mount_rename == CrossMountRename::Refuse {
            return Err(SessionError::Unsupported("a rename from one mount to another"));
        }
        if meta.kind != EntryKind::File {
            return Err(SessionError::Unsupported("renaming a folder from one mount to another"));
        }
        let reader = source.storage.open_read(&source.key).await.map_err(Self::storage_err(from))?;
        let options =
            WriteOptions { create: true, truncate: true, atomic: true, replace: true, ..Default::default() };
        let writer = target.storage.open_write(&target.key, options).await.map_err(Self::storage_err(to))?;
        match vfs::copy(&*reader, writer).await {
            Ok(_) => {}
            Err(CopyError::Read(e)) => return Err(SessionError::from_storage(e, from)),
            Err(CopyError::Write(e)) => return Err(SessionError::from_storage(e, to)),
        }
        source.storage.remove(&source.key).await.map_err(Self::storage_err(from))
    }
}
