//! Our SFTP v3 loop on russh-sftp's protocol types (its bundled loop answers one request at a
//! time and never closes the channel). Many READs and WRITEs per handle run concurrently, up to
//! a bound; replies carry the request id; operations that must see earlier ones on the same
//! handle (FSTAT, FSETSTAT, CLOSE) wait for them through a per-handle lock taken in arrival
//! order. Replies leave in request order even when the work finished out of order: OpenSSH's
//! client tracks upload progress assuming in-order acknowledgements (its `scp` truncates to
//! that mark), as every sequential server gives them. When the client ends the subsystem we
//! send exit-status, EOF and CLOSE at once.

mod extended;
mod on_handles;
mod on_paths;

use std::sync::Arc;

use bytes::Bytes;
use russh::Channel;
use russh::server::Msg;
use russh_sftp::protocol::{Attrs, File, FileAttributes, Name, Packet, StatusCode, Version};
use tokio::sync::OwnedRwLockReadGuard;
use tokio::task::JoinSet;

use super::handles::{Entry, HandleCaps, Table};
use super::idle::Activity;
use super::intake::{self, End, Queued};
use super::ops::{attrs, status_message};
use super::replies::{Budget, ByteBudget, Replies, Ticket};
use super::wire::{self, MAX_DATA};
use crate::session::{Session, SessionError, VirtualPath};

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
            for (name, revision) in extended::OFFERED {
                version.extensions.insert(name.to_string(), revision.to_string());
            }
            self.send(Packet::Version(version)).await;
            return Ok(());
        }
        self.request(packet).await;
        Ok(())
    }

    /// One reply per request, from the handler of its kind.
    async fn request(&mut self, packet: Packet) {
        match packet {
            Packet::Read(read) => self.read(read).await,
            Packet::Write(write) => self.write(write).await,
            Packet::Open(open) => self.open(open).await,
            Packet::Close(close) => self.close(close).await,
            Packet::OpenDir(open) => self.open_dir(open).await,
            Packet::ReadDir(read) => self.read_dir(read).await,
            Packet::Fstat(stat) => self.fstat(stat).await,
            Packet::FSetStat(set) => self.fsetstat(set).await,
            Packet::Stat(stat) => self.stat(stat).await,
            Packet::Lstat(stat) => self.lstat(stat).await,
            Packet::SetStat(set) => self.setstat(set).await,
            Packet::Remove(remove) => self.remove(remove).await,
            Packet::MkDir(mkdir) => self.mkdir(mkdir).await,
            Packet::RmDir(rmdir) => self.rmdir(rmdir).await,
            Packet::RealPath(real) => self.realpath(real).await,
            Packet::Rename(rename) => self.rename(rename).await,
            Packet::ReadLink(read) => self.readlink(read).await,
            Packet::Symlink(link) => self.symlink(link).await,
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
}

/// A STATUS reply with OpenSSH's text for `code`, then ferry's detail, if any.
fn status_bytes(id: u32, code: StatusCode, detail: &str) -> Bytes {
    wire::status_reply(id, code as u32, &status_message(code, detail))
}
