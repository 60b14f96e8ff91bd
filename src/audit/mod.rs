//! Audit trail: typed events fanned out to sinks without ever blocking a transfer. Today the
//! sink is JSON lines on stdout plus in-process subscribers; files, syslog, the database and
//! HTTP come later. Uses `telemetry` and `types`.

mod event;

use std::sync::Arc;
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::sync::{broadcast, mpsc};

pub use event::{AuditRecord, EventKind, Outcome};

use crate::telemetry::metrics::metrics;
use crate::types::{PeerAddr, Protocol, SessionId};

/// Fan-out handle; cheap to clone.
#[derive(Clone)]
pub struct Audit {
    node: Arc<str>,
    stdout: Option<mpsc::Sender<Arc<AuditRecord>>>,
    subscribers: broadcast::Sender<Arc<AuditRecord>>,
}

/// The fields an emitter fills in; the rest (id, time, node) is stamped by `Audit::emit`.
#[derive(Debug, Clone, Default)]
pub struct Fields {
    pub session: Option<SessionId>,
    pub seq: Option<u64>,
    pub protocol: Option<Protocol>,
    pub user: Option<String>,
    pub peer: Option<PeerAddr>,
    pub path: Option<String>,
    pub target: Option<String>,
    pub bytes: Option<u64>,
    pub duration_ms: Option<u64>,
    pub reason: Option<String>,
}

impl Audit {
    /// Starts the stdout writer when `stdout` is set. Must run inside a tokio runtime.
    pub fn new(node: &str, stdout: bool, queue_size: usize) -> Self {
        let (subscribers, _) = broadcast::channel(1024);
        let stdout = stdout.then(|| {
            let (tx, rx) = mpsc::channel(queue_size);
            tokio::spawn(write_lines(rx));
            tx
        });
        Self { node: Arc::from(node), stdout, subscribers }
    }

    /// Records `kind`; drops (and counts) it rather than wait when a sink is full.
    pub fn emit(&self, kind: EventKind, outcome: Outcome, fields: Fields) {
        let record = Arc::new(AuditRecord {
            id: kind.id(),
            event: kind.name(),
            ts: chrono::Utc::now(),
            node: Arc::clone(&self.node),
            session: fields.session,
            seq: fields.seq,
            protocol: fields.protocol,
            user: fields.user,
            peer: fields.peer,
            path: fields.path,
            target: fields.target,
            bytes: fields.bytes,
            duration_ms: fields.duration_ms,
            outcome,
            reason: fields.reason,
        });
        if let Some(tx) = &self.stdout
            && tx.try_send(Arc::clone(&record)).is_err()
        {
            metrics().audit_dropped_total.with_label_values(&["stdout"]).inc();
        }
        let _ = self.subscribers.send(record);
    }

    /// Receives every record emitted from now on (tests, later the event-rules engine).
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<AuditRecord>> {
        self.subscribers.subscribe()
    }
}

/// How often the stdout sink writes what has queued: batching keeps a busy server from paying
/// a wake-up and a write per event; an event waits at most this long.
const FLUSH_EVERY: Duration = Duration::from_millis(50);

async fn write_lines(mut rx: mpsc::Receiver<Arc<AuditRecord>>) {
    let mut out = tokio::io::BufWriter::with_capacity(64 * 1024, tokio::io::stdout());
    let mut tick = tokio::time::interval(FLUSH_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let mut closed = false;
        loop {
            match rx.try_recv() {
                Ok(record) => {
                    let mut line = serde_json::to_vec(record.as_ref()).unwrap_or_default();
                    line.push(b'\n');
                    if out.write_all(&line).await.is_err() {
                        return;
                    }
                }
                Err(mpsc::error::TryRecvError::Empty) => break,
                Err(mpsc::error::TryRecvError::Disconnected) => {
                    closed = true;
                    break;
                }
            }
        }
        if out.flush().await.is_err() || closed {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catalogue_ids_and_names_are_unique() {
        let mut ids: Vec<_> = EventKind::ALL.iter().map(|k| k.id()).collect();
        let mut names: Vec<_> = EventKind::ALL.iter().map(|k| k.name()).collect();
        ids.sort();
        ids.dedup();
        names.sort();
        names.dedup();
        assert_eq!(ids.len(), EventKind::ALL.len());
        assert_eq!(names.len(), EventKind::ALL.len());
    }

    #[tokio::test]
    async fn records_reach_subscribers_with_stable_ids() {
        let audit = Audit::new("node-a", false, 16);
        let mut rx = audit.subscribe();
        audit.emit(
            EventKind::FileDelete,
            Outcome::Ok,
            Fields { path: Some("/a".into()), ..Default::default() },
        );
        let record = rx.recv().await.unwrap();
        assert_eq!((record.id, record.event), (30003, "file.delete"));
        let json = serde_json::to_value(record.as_ref()).unwrap();
        assert_eq!(json["path"], "/a");
        assert_eq!(json["node"], "node-a");
        assert_eq!(json["outcome"], "ok");
    }
}
