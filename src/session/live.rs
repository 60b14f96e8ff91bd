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
    /// The connection's trace span: sessions and file operations are its children.
    span: tracing::Span,
}

#[derive(Default, Clone)]
pub(crate) struct LiveRegistry {
    entries: Arc<Mutex<HashMap<SessionId, Entry>>>,
}

/// Held by a protocol for the life of a connection.
pub struct LiveConnection {
    ended: watch::Receiver<bool>,
    /// The connection's span; FTP and HTTPS run their connection task inside it (SSH work
    /// runs on russh's tasks, so its log lines carry the span of the login or operation).
    pub span: tracing::Span,
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
        let span = tracing::info_span!(
            "connection",
            session_id = %info.session_id,
            protocol = info.protocol.as_str(),
            peer = %info.peer,
            user = tracing::field::Empty,
            trace_id = tracing::field::Empty,
        );
        // Log lines inside the connection carry the trace ID, to find the trace from a log.
        if let Some(trace_id) = crate::telemetry::trace_id(&span) {
            span.record("trace_id", trace_id.as_str());
        }
        let session = LiveSession {
            id: info.session_id,
            protocol: info.protocol,
            peer: info.peer,
            user: None,
            since: chrono::Utc::now(),
        };
        if let Ok(mut entries) = self.entries.lock() {
            entries.insert(info.session_id, Entry { session, end, span: span.clone() });
        }
        LiveConnection { ended, span }
    }

    pub fn close(&self, id: SessionId) {
        if let Ok(mut entries) = self.entries.lock() {
            entries.remove(&id);
        }
    }

    /// The connection's span (a disabled span for a connection not registered).
    pub fn span(&self, id: SessionId) -> tracing::Span {
        self.entries
            .lock()
            .ok()
            .and_then(|entries| entries.get(&id).map(|e| e.span.clone()))
            .unwrap_or_else(tracing::Span::none)
    }

    /// Names `user` as the one logged in on connection `id`, unless that would give them more
    /// than `limit` SSH or FTP connections (0: no limit); false then, and nothing changes.
    /// Counted and claimed under one lock, so two logins at once cannot both take the last place.
    /// HTTPS requests are not sessions: each one is a login of its own, and a browser opens several
    /// connections.
    pub fn claim(&self, id: SessionId, user: &str, protocol: Protocol, limit: usize) -> bool {
        let counted = |p: Protocol| {
            matches!(p, Protocol::Ssh | Protocol::Sftp | Protocol::Scp | Protocol::Ftp | Protocol::Ftps)
        };
        let Ok(mut entries) = self.entries.lock() else { return false };
        if limit > 0 && counted(protocol) {
            let held = entries
                .iter()
                .filter(|(other, e)| {
                    **other != id && counted(e.session.protocol) && e.session.user.as_deref() == Some(user)
                })
                .count();
            if held >= limit {
                return false;
            }
        }
        if let Some(entry) = entries.get_mut(&id) {
            entry.span.record("user", user);
            entry.session.user = Some(user.to_string());
            entry.session.protocol = protocol;
        }
        true
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

#[cfg(test)]
mod tests {
    use super::*;

    fn connection(registry: &LiveRegistry, protocol: Protocol) -> (SessionId, LiveConnection) {
        let info = ConnectionInfo { session_id: SessionId::new(), peer: PeerAddr(None), protocol };
        (info.session_id, registry.open(&info))
    }

    #[test]
    fn a_user_claims_at_most_the_limit_of_ssh_and_ftp_connections() {
        let registry = LiveRegistry::default();
        let (ssh, _a) = connection(&registry, Protocol::Ssh);
        let (ftp, _b) = connection(&registry, Protocol::Ftp);
        let (https, _c) = connection(&registry, Protocol::Https);
        let (other, _d) = connection(&registry, Protocol::Ftp);
        assert!(registry.claim(ssh, "solo", Protocol::Ssh, 1));
        assert!(registry.claim(ssh, "solo", Protocol::Sftp, 1), "claiming again on the same connection");
        assert!(!registry.claim(ftp, "solo", Protocol::Ftp, 1), "a second place");
        assert!(registry.claim(https, "solo", Protocol::Https, 1), "HTTPS is not counted");
        assert!(registry.claim(other, "bob", Protocol::Ftp, 1), "another user");
        assert!(registry.claim(ftp, "solo", Protocol::Ftp, 0), "0 is no limit");
        registry.close(ssh);
        registry.close(ftp);
        let (again, _e) = connection(&registry, Protocol::Ftps);
        assert!(registry.claim(again, "solo", Protocol::Ftps, 1), "a place freed by a close");
    }
}
