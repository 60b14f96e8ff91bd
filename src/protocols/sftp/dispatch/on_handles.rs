//! Requests on open handles: OPEN and OPENDIR create them, READ, WRITE, READDIR, FSTAT and
//! FSETSTAT use them, CLOSE ends them (draft-ietf-secsh-filexfer-02 sections 6.3 to 6.8).
//! READs and WRITEs run concurrently through `spawn`; FSTAT, FSETSTAT and CLOSE wait for the
//! handle's earlier requests through its order lock.

use std::sync::Arc;

use bytes::Bytes;
use russh_sftp::protocol::{
    Close, FSetStat, File, Fstat, Handle as HandleReply, Name, Open, OpenDir, OpenFlags, Packet, Read,
    ReadDir, StatusCode, Write,
};
use tokio::sync::Mutex;

use super::Dispatcher;
use crate::protocols::sftp::handles::{Entry, Handle};
use crate::protocols::sftp::ops::{listing_entry, set_attrs};
use crate::protocols::sftp::wire::{self, MAX_DATA};
use crate::session::{OpenWrite, SessionError};

/// Writes below this size run in the loop instead of on their own task.
const SHORT_WRITE: usize = 64 * 1024;

/// Entries per READDIR reply.
const DIR_BATCH: usize = 128;

impl Dispatcher {
    /// A READ runs concurrently with the others on its handle, after the requests that must
    /// precede it.
    pub(super) async fn read(&mut self, read: Read) {
        let Some(entry) = self.entry(&read.handle) else {
            return self.status(read.id, StatusCode::Failure, "invalid handle").await;
        };
        let guard = Arc::clone(&entry.order).read_owned().await;
        let len = (read.len as usize).min(MAX_DATA);
        self.spawn(
            guard,
            entry,
            move |entry| async move {
                // READ|WRITE handles (r+, w+, a+) are upload handles that read back.
                let data = match &entry.handle {
                    Handle::Read(file) => file.read_at(read.offset, len).await,
                    Handle::Write(file) => file.read_at(read.offset, len).await,
                    Handle::Dir(_) => {
                        return Err((StatusCode::Failure, "handle is a folder, not a file".into()));
                    }
                };
                match data {
                    Ok(data) if data.is_empty() => Err((StatusCode::Eof, String::new())),
                    Ok(data) => Ok(Some(wire::data_reply(read.id, &data))),
                    Err(e) => Err(((&e).into(), e.to_string())),
                }
            },
            read.id,
            false,
        )
        .await;
    }

    pub(super) async fn write(&mut self, write: Write) {
        let Some(entry) = self.entry(&write.handle) else {
            return self.status(write.id, StatusCode::Failure, "invalid handle").await;
        };
        let guard = Arc::clone(&entry.order).read_owned().await;
        // Append handles must write in arrival order. A short write is usually a whole
        // small file: doing it in the loop saves a task hand-off per file.
        let inline = entry.append || write.data.len() < SHORT_WRITE;
        self.spawn(
            guard,
            entry,
            move |entry| async move {
                let Handle::Write(file) = &entry.handle else {
                    return Err((StatusCode::Failure, "handle is not open for writing".into()));
                };
                match file.write_at(write.offset, Bytes::from(write.data)).await {
                    Ok(()) => Ok(None),
                    Err(e) => Err(((&e).into(), e.to_string())),
                }
            },
            write.id,
            inline,
        )
        .await;
    }

    /// Takes a handle slot first: the per-user and per-connection caps bound open files.
    pub(super) async fn open(&mut self, open: Open) {
        let slot = match self.caps.acquire(self.session.user()) {
            Ok(slot) => slot,
            Err(refused) => {
                return self.status(open.id, StatusCode::Failure, refused.message()).await;
            }
        };
        let flags = open.pflags;
        let result = match self.path(&open.filename) {
            Err(e) => Err(e),
            Ok(path) if flags.contains(OpenFlags::WRITE) => {
                let how = OpenWrite {
                    create: flags.contains(OpenFlags::CREATE),
                    truncate: flags.contains(OpenFlags::TRUNCATE),
                    exclusive: flags.contains(OpenFlags::EXCLUDE),
                    append: flags.contains(OpenFlags::APPEND),
                };
                if flags.contains(OpenFlags::READ) {
                    self.session.open_read_write(&path, how).await.map(Handle::Write)
                } else {
                    self.session.open_write(&path, how).await.map(Handle::Write)
                }
            }
            Ok(path) => self.session.open_read(&path).await.map(Handle::Read),
        };
        match result {
            Ok(handle) => {
                let append = flags.contains(OpenFlags::APPEND);
                let handle = self.handles.insert(handle, append, slot);
                self.send(Packet::Handle(HandleReply { id: open.id, handle })).await;
            }
            Err(e) => self.error(open.id, &e).await,
        }
    }

    pub(super) async fn close(&mut self, close: Close) {
        let Some(entry) = self.handles.remove(&close.handle) else {
            return self.status(close.id, StatusCode::Failure, "invalid handle").await;
        };
        let result = close_entry(entry).await;
        self.result(close.id, result).await;
    }

    pub(super) async fn open_dir(&mut self, open: OpenDir) {
        let slot = match self.caps.acquire(self.session.user()) {
            Ok(slot) => slot,
            Err(refused) => {
                return self.status(open.id, StatusCode::Failure, refused.message()).await;
            }
        };
        let listing = match self.path(&open.path) {
            Ok(path) => self.session.list(&path).await,
            Err(e) => Err(e),
        };
        match listing {
            Ok(listing) => {
                let dir = Handle::Dir(Mutex::new(Some(listing)));
                let handle = self.handles.insert(dir, false, slot);
                self.send(Packet::Handle(HandleReply { id: open.id, handle })).await;
            }
            Err(e) => self.error(open.id, &e).await,
        }
    }

    /// Up to `DIR_BATCH` entries per reply, then EOF once.
    pub(super) async fn read_dir(&mut self, read: ReadDir) {
        let Some(entry) = self.entry(&read.handle) else {
            return self.status(read.id, StatusCode::Failure, "invalid handle").await;
        };
        let Handle::Dir(listing) = &entry.handle else {
            return self.status(read.id, StatusCode::Failure, "not a folder handle").await;
        };
        let mut listing = listing.lock().await;
        let batch = match listing.as_mut() {
            None => Ok(Vec::new()),
            Some(l) => l.next_batch(DIR_BATCH).await,
        };
        match batch {
            Ok(batch) if batch.is_empty() => {
                *listing = None;
                self.status(read.id, StatusCode::Eof, "").await;
            }
            Ok(batch) => {
                let owner = self.session.user();
                let files: Vec<File> =
                    batch.into_iter().map(|(name, meta)| listing_entry(name, &meta, owner)).collect();
                self.send(Packet::Name(Name { id: read.id, files })).await;
            }
            Err(e) => self.error(read.id, &e).await,
        }
    }

    /// Waits for the handle's earlier READs and WRITEs, so the size includes them.
    pub(super) async fn fstat(&mut self, stat: Fstat) {
        let Some(entry) = self.entry(&stat.handle) else {
            return self.status(stat.id, StatusCode::Failure, "invalid handle").await;
        };
        let _exclusive = entry.order.write().await;
        let result = match &entry.handle {
            Handle::Read(file) => file.metadata().await,
            Handle::Write(file) => file.metadata().await,
            Handle::Dir(_) => Err(SessionError::Unsupported("fstat on a folder handle")),
        };
        self.attrs_reply(stat.id, result).await;
    }

    pub(super) async fn fsetstat(&mut self, set: FSetStat) {
        let Some(entry) = self.entry(&set.handle) else {
            return self.status(set.id, StatusCode::Failure, "invalid handle").await;
        };
        let _exclusive = entry.order.write().await;
        let result = match &entry.handle {
            // Part of the upload itself: times and mode land on the staged file.
            Handle::Write(file) => file.set_attrs(set_attrs(&set.attrs)).await,
            Handle::Read(file) => {
                let path = file.path().clone();
                self.session.set_attrs(&path, set_attrs(&set.attrs)).await
            }
            Handle::Dir(_) => Err(SessionError::Unsupported("fsetstat on a folder handle")),
        };
        self.result(set.id, result).await;
    }
}

/// Waits for the handle's in-flight requests, then closes it (publishing an upload).
async fn close_entry(entry: Arc<Entry>) -> Result<(), SessionError> {
    let order = Arc::clone(&entry.order);
    let _exclusive = order.write().await;
    let mut entry = entry;
    // In-flight tasks release their clone before their guard, so this settles at once.
    let entry = loop {
        match Arc::try_unwrap(entry) {
            Ok(entry) => break entry,
            Err(shared) => {
                entry = shared;
                tokio::task::yield_now().await;
            }
        }
    };
    match entry.handle {
        Handle::Write(file) => file.close().await,
        Handle::Read(_) | Handle::Dir(_) => Ok(()),
    }
}
