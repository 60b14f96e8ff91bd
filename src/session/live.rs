//! The connections this replica serves right now: who, from where, since when, and a way for an
//! administrator to end one. Protocols hold a `LiveConnection` for as long as a client is
//! connected and stop when it says so.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use serde::Serialize;
use tokio::sync::watch;

use super::ConnectionInfo;
use crate::types::{PeerAddr, Protocol, SessionId};

/// One connection as the admin API lists it.
#[derive(Debug, Clone, Serialize)]
pub struct LiveSession {
    pub id: SessionId,
    pub protocol: Protocol,
    pub peer: PeerAddr,
    pub user: Option<String>,
    pub since: chrono::DateTime<chrono::Utc>,
}

struct Entry {
    session: LiveSession,
    end: watch::Sender<bool>,
}

#[derive(Default, Clone)]
pub(crate) struct LiveRegistry {
    entries: Arc<Mutex<HashMap<SessionId, Entry>>>,
}

/// Held by a protocol for the life of a connection.
pub struct LiveConnection {
    ended: watch::Receiver<bool>,
}

impl LiveConnection {
    /// Resolves when an administrator ends this connection.
    pub async fn terminated(&mut self) {
        while !*self.ended.borrow() {
            if self.ended.changed().await.is_err() {
                // The registry entry is gone: the connection is closing anyway.
                std::future::pending::<()>().await;
            }
        }
    }
}

impl LiveRegistry {
    pub fn open(&self, info: &ConnectionInfo) -> LiveConnection {
        let (end, ended) = watch::channel(false);
        let session = LiveSession {
            id: info.session_id,
            protocol: info.protocol,
            peer: info.peer,
            user: None,
            since: chrono::Utc::now(),
        };
        if let Ok(mut entries) = self.entries.lock() {
            entries.insert(info.session_id, Entry { session, end });
        }
        LiveConnection { ended }
    }

    pub fn close(&self, id: SessionId) {
        if let Ok(mut entries) = self.entries.lock() {
            entries.remove(&id);
        }
    }

    pub fn set_user(&self, id: SessionId, user: &str, protocol: Protocol) {
        if let Ok(mut entries) = self.entries.lock()
            && let Some(entry) = entries.get_mut(&id)
        {
            entry.session.user = Some(user.to_string());
            entry.session.protocol = protocol;
        }
    }

    pub fn list(&self) -> Vec<LiveSession> {
        let mut sessions: Vec<LiveSession> = self
            .entries
            .lock()
            .map(|entries| entries.values().map(|e| e.session.clone()).collect())
            .unwrap_or_default();
        sessions.sort_by_key(|s| s.since);
        sessions
    }

    /// Tells the connection `id` to end; false if there is none.
    pub fn terminate(&self, id: &str) -> bool {
        let Ok(id) = uuid::Uuid::parse_str(id) else { return false };
        self.entries
            .lock()
            .ok()
            .and_then(|entries| entries.get(&SessionId(id)).map(|e| e.end.send(true).is_ok()))
            .unwrap_or(false)
    }
}
