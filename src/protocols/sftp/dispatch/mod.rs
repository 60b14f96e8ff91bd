//! Our SFTP v3 loop on russh-sftp's protocol types (its bundled loop answers one request at a
//! time and never closes the channel). Many READs and WRITEs per handle run concurrently, up to
//! a bound; replies carry the request id; operations that must see earlier ones on the same
//! handle (FSTAT, FSETSTAT, CLOSE) wait for them through a per-handle lock taken in arrival
//! order. Replies leave in request order even when the work finished out of order: OpenSSH's
//! client tracks upload progress assuming in-order acknowledgements (its `scp` truncates to
//! that mark), as every sequential server gives them. When the client ends the subsystem we
//! send exit-status, EOF and CLOSE at once.

use std::sync::Arc;

use bytes::Bytes;
use russh::Channel;
use russh::server::Msg;
use russh_sftp::protocol::{
    Attrs, Extended, File, FileAttributes, Handle as HandleReply, Name, OpenFlags, Packet, StatusCode,
    Version,
};
use tokio::sync::{Mutex, OwnedRwLockReadGuard};
use tokio::task::JoinSet;

use super::handles::{Entry, Handle, HandleCaps, Table};
use super::idle::Activity;
use super::intake::{self, End, Queued};
use super::ops::{attrs, listing_entry, set_attrs, status_message};
use super::replies::{Budget, ByteBudget, Replies, Ticket};
use super::wire::{self, MAX_DATA, MAX_PACKET};
use crate::session::{OpenWrite, Session, SessionError, VirtualPath};

/// Per-channel bounds.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Requests served at once, each holding its place until its reply is written.
    pub max_in_flight: usize,
    /// READ reply and WRITE data bytes held until their reply is written.
    pub max_bytes: usize,
    /// Open handles per connection (reported by limits@openssh.com).
    pub max_handles: usize,
}

/// What the channels of one SSH connection share.
#[derive(Clone)]
pub struct PerConnection {
    pub bytes: ByteBudget,
    pub queued: Queued,
    pub handles: HandleCaps,
}

/// Writes below this size run in the loop instead of on their own task.
const SHORT_WRITE: usize = 64 * 1024;

/// Entries per READDIR reply.
const DIR_BATCH: usize = 128;

struct Dispatcher {
    session: Session,
    handles: Table,
    caps: HandleCaps,
    replies: Arc<Replies>,
    /// Arrival number of the request being handled; its reply carries it.
    seq: u64,
    next_seq: u64,
    budget: Budget,
    /// The ticket of the request being handled, until its reply is sent.
    ticket: Option<Ticket>,
    tasks: JoinSet<()>,
    initialized: bool,
    limits: Limits,
}

/// Why the loop stops early: the stream can no longer be trusted or answered.
struct Fatal(&'static str);

/// Serves one SFTP subsystem channel until the client ends it.
pub async fn serve(
    channel: Channel<Msg>,
    session: Session,
    limits: Limits,
    shared: PerConnection,
    activity: Activity,
) {
    let (input, output) = channel.split();
    let replies = Arc::new(Replies::new(output));
    let stalled = Arc::clone(&replies.stalled);
    let intake::Intake { mut requests, mut end } = intake::start(input, shared.queued, stalled, activity);
    let mut dispatcher = Dispatcher {
        session,
        handles: Table::new(),
        caps: shared.handles,
        replies: Arc::clone(&replies),
        seq: 0,
        next_seq: 0,
        budget: Budget::new(limits.max_in_flight, limits.max_bytes, shared.bytes),
        ticket: None,
        tasks: JoinSet::new(),
        initialized: false,
        limits,
    };
    // Requests in arrival order until the client stops sending or nobody is left to answer;
    // every wait here also watches for the latter, so nothing stays blocked on a gone client.
    let mut abandoned = loop {
        let request = tokio::select! {
            biased;
            () = intake::abandoned(&mut end) => break true,
            request = requests.recv() => request,
        };
        let Some(request) = request else { break false };
        let handled = tokio::select! {
            biased;
            () = intake::abandoned(&mut end) => break true,
            handled = dispatcher.handle(request.body.clone()) => handled,
        };
        drop(request);
        if let Err(Fatal(why)) = handled {
            tracing::warn!(why, "closing SFTP channel");
            break false;
        }
        while dispatcher.tasks.try_join_next().is_some() {}
    };
    if !abandoned {
        abandoned = tokio::select! {
            biased;
            () = intake::abandoned(&mut end) => true,
            () = async { while dispatcher.tasks.join_next().await.is_some() {} } => false,
        };
    }
    // Dropping the tasks frees their data and tickets; uploads never closed by the client are
    // dropped with the handles: staged data is discarded.
    dispatcher.tasks.abort_all();
    while dispatcher.tasks.join_next().await.is_some() {}
    drop(dispatcher);
    if *end.borrow() == End::Abandoned || abandoned {
        // The client is gone or does not read: a goodbye could wait forever for its window.
        let _ = tokio::time::timeout(std::time::Duration::from_secs(5), replies.output.close()).await;
        return;
    }
    let _ = replies.output.exit_status(0).await;
    let _ = replies.output.eof().await;
    let _ = replies.output.close().await;
}

impl Dispatcher {
    /// Sends the one reply of the current request.
    async fn send(&mut self, packet: Packet) {
        let id = packet.get_request_id();
        let bytes = Bytes::try_from(packet).unwrap_or_else(|e| {
            tracing::error!(error = %e, "cannot encode SFTP reply");
            status_bytes(id, StatusCode::Failure, "cannot encode reply")
        });
        self.send_bytes(bytes).await;
    }

    async fn send_bytes(&mut self, bytes: Bytes) {
        let ticket = self.ticket.take();
        self.replies.send(self.seq, bytes, ticket).await;
    }

    async fn status(&mut self, id: u32, code: StatusCode, message: &str) {
        self.send_bytes(status_bytes(id, code, message)).await;
    }

    async fn result(&mut self, id: u32, result: Result<(), SessionError>) {
        match result {
            Ok(()) => self.status(id, StatusCode::Ok, "").await,
            Err(e) => self.error(id, &e).await,
        }
    }

    async fn error(&mut self, id: u32, e: &SessionError) {
        self.status(id, StatusCode::from(e), &e.to_string()).await;
    }

    fn path(&self, raw: &str) -> Result<VirtualPath, SessionError> {
        self.session.resolve(&VirtualPath::root(), raw)
    }

    fn entry(&self, handle: &str) -> Option<Arc<Entry>> {
        self.handles.get(handle)
    }

    async fn handle(&mut self, body: Bytes) -> Result<(), Fatal> {
        let kind = body.first().copied().unwrap_or(0);
        let id = wire::request_id(&body);
        // Every request gets exactly one reply, sent in arrival order.
        self.seq = self.next_seq;
        self.next_seq += 1;
        let mut raw = body.clone();
        // russh-sftp decodes names lossily; a non-UTF-8 name must be refused, not mangled.
        let decoded = if wire::names_are_utf8(&body) {
            Packet::try_from(&mut raw).map_err(|e| e.to_string())
        } else {
            Err("file names must be UTF-8".to_string())
        };
        // The request's place and bytes, held until its reply is written.
        let charge = match &decoded {
            Ok(Packet::Read(read)) => (read.len as usize).min(MAX_DATA),
            Ok(Packet::Write(write)) => write.data.len(),
            _ => 0,
        };
        self.ticket = Some(self.budget.ticket(charge).await);
        let packet = match decoded {
            Ok(packet) => packet,
            Err(e) => {
                let Some(id) = id.filter(|_| self.initialized) else {
                    return Err(Fatal("undecodable packet before INIT"));
                };
                let known = (3..=20).contains(&kind) || kind == 200;
                let (code, message) = if known {
                    (StatusCode::BadMessage, format!("malformed request: {e}"))
                } else {
                    (StatusCode::OpUnsupported, format!("unsupported request type {kind}"))
                };
                self.status(id, code, &message).await;
                return Ok(());
            }
        };
        if !self.initialized {
            let Packet::Init(_) = packet else {
                return Err(Fatal("first packet was not INIT"));
            };
            self.initialized = true;
            let mut version = Version::new();
            for (name, revision) in [
                ("posix-rename@openssh.com", "1"),
                ("statvfs@openssh.com", "2"),
                ("fstatvfs@openssh.com", "2"),
                ("hardlink@openssh.com", "1"),
                ("fsync@openssh.com", "1"),
                ("limits@openssh.com", "1"),
            ] {
                version.extensions.insert(name.to_string(), revision.to_string());
            }
            self.send(Packet::Version(version)).await;
            return Ok(());
        }
        self.request(packet).await;
        Ok(())
    }

    async fn request(&mut self, packet: Packet) {
        match packet {
            Packet::Read(read) => {
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
            Packet::Write(write) => {
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
            Packet::Open(open) => {
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
            Packet::Close(close) => {
                let Some(entry) = self.handles.remove(&close.handle) else {
                    return self.status(close.id, StatusCode::Failure, "invalid handle").await;
                };
                let result = close_entry(entry).await;
                self.result(close.id, result).await;
            }
            Packet::OpenDir(open) => {
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
            Packet::ReadDir(read) => {
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
            Packet::Stat(stat) => {
                let result = match self.path(&stat.path) {
                    Ok(path) => self.session.stat(&path).await,
                    Err(e) => Err(e),
                };
                self.attrs_reply(stat.id, result).await;
            }
            Packet::Lstat(stat) => {
                let result = match self.path(&stat.path) {
                    Ok(path) => self.session.lstat(&path).await,
                    Err(e) => Err(e),
                };
                self.attrs_reply(stat.id, result).await;
            }
            Packet::Fstat(stat) => {
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
            Packet::SetStat(set) => {
                let result = match self.path(&set.path) {
                    Ok(path) => self.session.set_attrs(&path, set_attrs(&set.attrs)).await,
                    Err(e) => Err(e),
                };
                self.result(set.id, result).await;
            }
            Packet::FSetStat(set) => {
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
            Packet::Remove(remove) => {
                let result = match self.path(&remove.filename) {
                    Ok(path) => self.session.remove(&path).await,
                    Err(e) => Err(e),
                };
                self.result(remove.id, result).await;
            }
            Packet::MkDir(mkdir) => {
                let result = match self.path(&mkdir.path) {
                    Ok(path) => self.session.mkdir(&path).await,
                    Err(e) => Err(e),
                };
                self.result(mkdir.id, result).await;
            }
            Packet::RmDir(rmdir) => {
                let result = match self.path(&rmdir.path) {
                    Ok(path) => self.session.rmdir(&path).await,
                    Err(e) => Err(e),
                };
                self.result(rmdir.id, result).await;
            }
            Packet::RealPath(real) => match self.path(&real.path) {
                Ok(path) => self.name_reply(real.id, path.to_string()).await,
                Err(e) => self.error(real.id, &e).await,
            },
            Packet::Rename(rename) => {
                let result = match (self.path(&rename.oldpath), self.path(&rename.newpath)) {
                    (Ok(from), Ok(to)) => self.session.rename(&from, &to, false).await,
                    (Err(e), _) | (_, Err(e)) => Err(e),
                };
                self.result(rename.id, result).await;
            }
            Packet::ReadLink(read) => {
                let result = match self.path(&read.path) {
                    Ok(path) => self.session.read_link(&path).await,
                    Err(e) => Err(e),
                };
                match result {
                    Ok(target) => self.name_reply(read.id, target.to_string()).await,
                    Err(e) => self.error(read.id, &e).await,
                }
            }
            Packet::Symlink(link) => {
                // OpenSSH sends the target first and the new link second (the reverse of the
                // draft); every common client follows OpenSSH.
                let result = match self.path(&link.targetpath) {
                    Ok(link_path) => self.session.symlink(&link.linkpath, &link_path).await,
                    Err(e) => Err(e),
                };
                self.result(link.id, result).await;
            }
            Packet::Extended(extended) => self.extended(extended).await,
            other => {
                let id = other.get_request_id();
                self.status(id, StatusCode::OpUnsupported, "unexpected packet").await;
            }
        }
    }

    /// Runs a READ/WRITE; `work` yields the reply bytes, or none for STATUS OK. Concurrently,
    /// unless `inline`: then in the loop itself, which keeps arrival order and saves a task hop.
    async fn spawn<F, Fut>(
        &mut self,
        guard: OwnedRwLockReadGuard<()>,
        entry: Arc<Entry>,
        work: F,
        id: u32,
        inline: bool,
    ) where
        F: FnOnce(Arc<Entry>) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = Result<Option<Bytes>, (StatusCode, String)>> + Send,
    {
        let ticket = self.ticket.take();
        let replies = Arc::clone(&self.replies);
        let seq = self.seq;
        let task = async move {
            let reply = match work(entry).await {
                Ok(Some(bytes)) => bytes,
                Ok(None) => status_bytes(id, StatusCode::Ok, ""),
                Err((code, message)) => status_bytes(id, code, &message),
            };
            // The entry is dropped inside `work` before the guard is released here.
            drop(guard);
            replies.send(seq, reply, ticket).await;
        };
        if inline {
            task.await;
        } else {
            self.tasks.spawn(task);
        }
    }

    async fn attrs_reply(&mut self, id: u32, result: Result<crate::session::Metadata, SessionError>) {
        match result {
            Ok(meta) => self.send(Packet::Attrs(Attrs { id, attrs: attrs(&meta) })).await,
            Err(e) => self.error(id, &e).await,
        }
    }

    async fn name_reply(&mut self, id: u32, path: String) {
        let file = File { longname: path.clone(), filename: path, attrs: FileAttributes::empty() };
        self.send(Packet::Name(Name { id, files: vec![file] })).await;
    }

    async fn extended(&mut self, request: Extended) {
        let id = request.id;
        let mut data = request.data.as_slice();
        match request.request.as_str() {
            "posix-rename@openssh.com" | "hardlink@openssh.com" => {
                let (Some(from), Some(to)) = (wire::take_string(&mut data), wire::take_string(&mut data))
                else {
                    return self.status(id, StatusCode::BadMessage, "malformed request").await;
                };
                let result = match (self.path(&from), self.path(&to)) {
                    (Ok(from), Ok(to)) if request.request.starts_with("posix") => {
                        self.session.rename(&from, &to, true).await
                    }
                    (Ok(from), Ok(to)) => self.session.hard_link(&from, &to).await,
                    (Err(e), _) | (_, Err(e)) => Err(e),
                };
                self.result(id, result).await;
            }
            "statvfs@openssh.com" | "fstatvfs@openssh.com" => match self.session.capacity().await {
                Ok(c) => {
                    let values = [
                        c.block_size,
                        c.fragment_size,
                        c.blocks,
                        c.blocks_free,
                        c.blocks_available,
                        c.files,
                        c.files_free,
                        c.files_available,
                        0, // fsid: not disclosed
                        0, // flags
                        c.max_name_len,
                    ];
                    self.send_bytes(wire::extended_reply_u64s(id, &values)).await;
                }
                Err(e) => self.error(id, &e).await,
            },
            "fsync@openssh.com" => {
                let Some(handle) = wire::take_string(&mut data) else {
                    return self.status(id, StatusCode::BadMessage, "malformed request").await;
                };
                let Some(entry) = self.entry(&handle) else {
                    return self.status(id, StatusCode::Failure, "invalid handle").await;
                };
                let _exclusive = entry.order.write().await;
                let result = match &entry.handle {
                    Handle::Write(file) => file.sync().await,
                    _ => Ok(()),
                };
                self.result(id, result).await;
            }
            "limits@openssh.com" => {
                let values =
                    [MAX_PACKET as u64, MAX_DATA as u64, MAX_DATA as u64, self.limits.max_handles as u64];
                self.send_bytes(wire::extended_reply_u64s(id, &values)).await;
            }
            _ => self.status(id, StatusCode::OpUnsupported, "unsupported extension").await,
        }
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

/// A STATUS reply with OpenSSH's text for `code`, then ferry's detail, if any.
fn status_bytes(id: u32, code: StatusCode, detail: &str) -> Bytes {
    wire::status_reply(id, code as u32, &status_message(code, detail))
}
