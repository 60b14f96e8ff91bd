//! The audit event catalogue: every event has a stable numeric ID and a dotted name. IDs are
//! never reused; docs/audit-events.md lists them.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::types::{PeerAddr, Protocol, SessionId};

macro_rules! catalogue {
    ($($variant:ident = $id:literal, $name:literal, $doc:literal;)*) => {
        /// What happened.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum EventKind { $(#[doc = $doc] $variant,)* }

        impl EventKind {
            pub const ALL: &'static [EventKind] = &[$(EventKind::$variant,)*];

            pub fn id(self) -> u32 {
                match self { $(EventKind::$variant => $id,)* }
            }

            pub fn name(self) -> &'static str {
                match self { $(EventKind::$variant => $name,)* }
            }

            pub fn description(self) -> &'static str {
                match self { $(EventKind::$variant => $doc,)* }
            }
        }
    };
}

catalogue! {
    ServerStarted = 10001, "server.started", "The server started and its listeners are bound.";
    ServerStopping = 10002, "server.stopping", "Shutdown began; no new connections are accepted.";
    ConfigLoaded = 10003, "config.loaded", "The configuration was loaded and validated; `reason` names its source and digest.";
    AuditCheckpoint = 10004, "audit.checkpoint", "A checkpoint of this node's hash chain, signed by the node key; `checkpoint` holds what was signed.";
    ConnectionOpened = 11001, "connection.opened", "A client connected.";
    ConnectionClosed = 11002, "connection.closed", "A client connection ended.";
    ConnectionRefused = 11003, "connection.refused", "A connection was closed at accept (limit reached).";
    LoginSucceeded = 20001, "login.succeeded", "A user authenticated.";
    LoginFailed = 20002, "login.failed", "An authentication attempt failed; `reason` says why.";
    AddressBanned = 20003, "login.banned", "An address failed to log in too often and is refused for `auth.ban_time`.";
    FileDownload = 30001, "file.download", "A file was read; bytes and duration are set.";
    FileUpload = 30002, "file.upload", "A file was written; bytes and duration are set.";
    FileDelete = 30003, "file.delete", "A file was removed.";
    FileRename = 30004, "file.rename", "A file or folder was renamed; `target` is the new path.";
    DirCreate = 30005, "dir.create", "A folder was created.";
    DirRemove = 30006, "dir.remove", "A folder was removed.";
    DirList = 30007, "dir.list", "A folder was listed.";
    FileSetStat = 30008, "file.setstat", "Times, permissions or size were changed.";
    FileSymlink = 30009, "file.symlink", "A symbolic link was created; `target` is what it points to.";
    FileLink = 30010, "file.link", "A hard link was created; `target` is the new name.";
    UserCreated = 40001, "user.created", "An administrator created a user.";
    UserUpdated = 40002, "user.updated", "An administrator changed a user (password, keys, rules).";
    UserRemoved = 40003, "user.removed", "An administrator removed a user.";
    SessionTerminated = 40004, "session.terminated", "An administrator ended a live session; `session` is the one ended.";
    StorageError = 50001, "storage.error", "A storage request failed (not a missing file or a refusal); `reason` carries the backend's error.";
    AuthBackendError = 50002, "auth.backend_error", "An authentication backend (LDAP directory, HTTP service) could not answer; `reason` says which and why.";
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Ok,
    Denied,
    Failed,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Denied => "denied",
            Outcome::Failed => "failed",
        }
    }
}

/// One audit record, written as one JSON line.
#[derive(Debug, Clone, Serialize)]
pub struct AuditRecord {
    pub id: u32,
    pub event: &'static str,
    pub ts: DateTime<Utc>,
    pub node: Arc<str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub session: Option<SessionId>,
    /// Per-session sequence number, so gaps and reordering show.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seq: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub protocol: Option<Protocol>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// The administrator who made a change to `user` (admin API changes).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub actor: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub peer: Option<PeerAddr>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bytes: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<u64>,
    pub outcome: Outcome,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Set on `audit.checkpoint` records only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub checkpoint: Option<Checkpoint>,
    /// Position in this node's hash chain: one more than the record before.
    pub chain_seq: u64,
    /// Hash of the record before in this node's chain (hex SHA-256; 64 zeros for the first).
    pub prev: String,
}

/// What a checkpoint signs: the chain position and hash of the record just before it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    pub seq: u64,
    pub hash: String,
    /// The next checkpoint comes within this many records (`audit.checkpoint_every`), so a
    /// verifier can tell checkpoints that were removed from ones not yet made.
    pub every: u64,
    /// Names the node key: the first 16 hex digits of the SHA-256 of its public key.
    pub key: String,
    /// Ed25519 signature (hex) over `chain::signed_message(node, seq, hash, every)`.
    pub signature: String,
}

impl AuditRecord {
    pub fn kind(&self) -> Option<EventKind> {
        EventKind::ALL.iter().copied().find(|k| k.id() == self.id)
    }
}

/// The fields sinks index or route by, read back from a written line.
#[derive(Debug, Clone, Deserialize)]
pub struct LineView {
    pub id: u32,
    pub event: String,
    pub ts: DateTime<Utc>,
    pub node: String,
    pub session: Option<String>,
    pub protocol: Option<String>,
    pub user: Option<String>,
    pub peer: Option<String>,
    pub path: Option<String>,
    pub outcome: Outcome,
    pub chain_seq: u64,
    pub hash: String,
}

impl LineView {
    pub fn parse(line: &str) -> Option<Self> {
        serde_json::from_str(line).ok()
    }
}
