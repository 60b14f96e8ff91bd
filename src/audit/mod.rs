//! Audit trail: typed events, chained per node (`chain.rs`), fanned out to sinks without ever
//! blocking a transfer (`lane.rs`, `sinks/`), and verifiable afterwards (`verify.rs`). Uses
//! `config`, `state`, `telemetry` and `types`.
//!
//! Emitting is synchronous and cheap: under one lock a record gets its chain position, is
//! serialised and hashed, and its line is offered to each sink's bounded queue. The lock keeps
//! the chain order and the order every sink sees the same.

pub mod chain;
mod event;
mod lane;
pub mod sinks;
pub mod verify;

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{broadcast, watch};
use tokio::task::JoinSet;

pub use event::{AuditRecord, Checkpoint, EventKind, LineView, Outcome};
pub use sinks::file::{ExportError, SegmentExport};

use self::chain::{Head, NodeKey};
use self::lane::Lane;
use crate::config::AuditConfig;
use crate::state::State;
use crate::types::{PeerAddr, Protocol, SessionId};

/// Fan-out handle; cheap to clone.
#[derive(Clone)]
pub struct Audit {
    inner: Arc<Inner>,
}

struct Inner {
    node: Arc<str>,
    chain: Mutex<ChainState>,
    lanes: Vec<Lane>,
    subscribers: broadcast::Sender<Arc<AuditRecord>>,
    key: Option<NodeKey>,
    checkpoint_every: u64,
    /// The chain head at each checkpoint, saved in the state database by a task, so a crash
    /// restarts from a signed position at worst.
    signed_head: watch::Sender<Option<(u64, String)>>,
}

struct ChainState {
    head: Head,
    /// Records since the last checkpoint.
    unsigned: u64,
    /// The final checkpoint is written: a record still emitted (a connection closing late)
    /// gets a checkpoint of its own, so a cleanly stopped trail always ends with one.
    closing: bool,
}

/// The fields an emitter fills in; the rest (id, time, node, chain) is stamped by `emit`.
#[derive(Debug, Clone, Default)]
pub struct Fields {
    pub session: Option<SessionId>,
    pub seq: Option<u64>,
    pub protocol: Option<Protocol>,
    pub user: Option<String>,
    /// The administrator acting on `user`, for changes made through the admin API.
    pub actor: Option<String>,
    pub peer: Option<PeerAddr>,
    pub path: Option<String>,
    pub target: Option<String>,
    pub bytes: Option<u64>,
    pub duration_ms: Option<u64>,
    pub reason: Option<String>,
}

/// The sink tasks of a started trail; `close` drains them.
pub struct AuditTasks {
    audit: Audit,
    stop: watch::Sender<bool>,
    tasks: JoinSet<()>,
    state: Option<State>,
}

/// Why the audit trail cannot start; names the key or the store at fault.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("audit.node_key: {0}")]
    NodeKey(#[source] chain::KeyError),
    #[error("audit state: {0}")]
    State(#[from] crate::state::StateError),
    #[error("audit.file.dir {}: {source}", dir.display())]
    FileDir { dir: std::path::PathBuf, source: std::io::Error },
    #[error("audit.syslog: {0}")]
    Syslog(String),
    #[error("audit.http: {0}")]
    Http(#[source] crate::clients::HttpClientError),
}

impl Audit {
    /// A trail with no sinks and no signing key: records reach subscribers only.
    #[cfg(test)]
    fn detached(node: &str) -> Self {
        Self::assemble(node, Vec::new(), None, u64::MAX, Head::genesis())
    }

    fn assemble(
        node: &str,
        lanes: Vec<Lane>,
        key: Option<NodeKey>,
        checkpoint_every: u64,
        head: Head,
    ) -> Self {
        let (subscribers, _) = broadcast::channel(4096);
        let checkpoint_every = checkpoint_every.max(1);
        Self {
            inner: Arc::new(Inner {
                node: Arc::from(node),
                // The first record of a run is checkpointed at once: records a crash left
                // unsigned are covered then, so checkpoints are never more than `every` apart.
                chain: Mutex::new(ChainState {
                    head,
                    unsigned: if key.is_some() { checkpoint_every - 1 } else { 0 },
                    closing: false,
                }),
                lanes,
                subscribers,
                key,
                checkpoint_every,
                signed_head: watch::channel(None).0,
            }),
        }
    }

    /// Starts the configured sinks and continues this node's chain from the last record any of
    /// them (or the state database) kept. Must run inside a tokio runtime.
    pub async fn start(
        config: &AuditConfig,
        node: &str,
        state: &State,
        export: Option<Arc<dyn SegmentExport>>,
    ) -> Result<(Audit, AuditTasks), StartError> {
        let key = NodeKey::load_or_create(&config.node_key).map_err(StartError::NodeKey)?;
        let mut head = Head::genesis();
        let mut consider = |found: Option<(u64, String)>| {
            if let Some((seq, hash)) = found
                && seq + 1 > head.next_seq
            {
                head = Head::after(seq, &hash);
            }
        };
        let saved = state.audit().node_head(node).await?;
        if let Some(saved) = saved {
            consider(saved.head);
            consider(saved.signed);
        }
        if config.database.enabled {
            consider(state.audit().last_of(node).await?);
        }
        if config.file.enabled {
            consider(sinks::file::last_head(&config.file_settings.dir, node));
        }
        // Each node (and a CLI's trail) spills into a folder of its own.
        let spool_dir = config.spool_dir.join(sinks::file::safe_name(node));
        // Records spilled before a crash were chained too: never reuse their positions.
        for entry in std::fs::read_dir(&spool_dir).into_iter().flatten().flatten() {
            consider(sinks::file::tail_record(&entry.path(), false));
        }
        state.audit().save_node(node, &key.public_hex(), None).await?;

        let (stop, stop_rx) = watch::channel(false);
        let mut lanes = Vec::new();
        let mut tasks = JoinSet::new();
        let mut add = |name: &'static str, sink: &crate::config::SinkConfig, built: Box<dyn sinks::Sink>| {
            let (lane, rx) = lane::lane(name, sink.queue_size, sink.on_full, spool_dir.clone());
            lanes.push(lane);
            tasks.spawn(sinks::run(rx, built, stop_rx.clone()));
        };
        if config.stdout.enabled {
            add("stdout", &config.stdout, Box::<sinks::stdout::Stdout>::default());
        }
        if config.file.enabled {
            let f = &config.file_settings;
            let sink = sinks::file::FileSink::new(f.clone(), node, export)
                .map_err(|source| StartError::FileDir { dir: f.dir.clone(), source })?;
            add("file", &config.file, Box::new(sink));
        }
        if config.database.enabled {
            let sink = sinks::database::DatabaseSink::new(state.clone(), config.database_retention);
            add("database", &config.database, Box::new(sink));
        }
        if config.syslog.enabled {
            let sink =
                sinks::syslog::SyslogSink::new(config.syslog_settings.clone()).map_err(StartError::Syslog)?;
            add("syslog", &config.syslog, Box::new(sink));
        }
        if config.http.enabled {
            let sink = sinks::http::HttpSink::new(config.http_settings.clone()).map_err(StartError::Http)?;
            add("http", &config.http, Box::new(sink));
        }
        let audit = Self::assemble(node, lanes, Some(key), config.checkpoint_every, head);
        tasks.spawn(checkpoints(audit.clone(), config.checkpoint_interval, stop_rx.clone()));
        // With the database sink, each checkpoint's head is saved with its row; without it, a
        // task saves the heads (subscribed here, so the run's first checkpoint is not missed).
        if !config.database.enabled {
            let heads = audit.inner.signed_head.subscribe();
            tasks.spawn(save_heads(audit.clone(), heads, state.clone(), stop_rx));
        }
        let handle = AuditTasks { audit: audit.clone(), stop, tasks, state: Some(state.clone()) };
        Ok((audit, handle))
    }

    /// The trail of one `ferry user …` command: its own chain, `<node>-cli` (a process of its
    /// own cannot continue the server's chain without forking it), into the database sink only.
    pub async fn start_cli(
        config: &AuditConfig,
        node: &str,
        state: &State,
    ) -> Result<(Audit, AuditTasks), StartError> {
        let mut cli = config.clone();
        cli.stdout.enabled = false;
        cli.file.enabled = false;
        cli.syslog.enabled = false;
        cli.http.enabled = false;
        Self::start(&cli, &format!("{node}-cli"), state, None).await
    }

    pub fn node(&self) -> &str {
        &self.inner.node
    }

    /// Records `kind`. Never waits: a full sink queue drops or spills as configured.
    pub fn emit(&self, kind: EventKind, outcome: Outcome, fields: Fields) {
        let mut chain = self.inner.chain.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let record = self.record(kind, outcome, fields, &chain.head);
        if let Err(e) = self.append(&mut chain, record) {
            // Nothing was sealed: the chain has no gap and no empty line, only a missing record.
            tracing::error!(event = kind.name(), error = %e, "audit record cannot be serialised; not recorded");
            return;
        }
        if self.inner.key.is_some() && (chain.unsigned >= self.inner.checkpoint_every || chain.closing) {
            self.checkpoint_locked(&mut chain);
        }
    }

    /// The final checkpoint of a stop: signs what is unsigned, and every record after it.
    fn finish(&self) -> Option<(u64, String)> {
        let mut chain = self.inner.chain.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        chain.closing = true;
        if chain.unsigned > 0 {
            self.checkpoint_locked(&mut chain);
        }
        chain.head.next_seq.checked_sub(1).map(|seq| (seq, chain.head.prev.clone()))
    }

    /// Signs the chain position reached, if anything was recorded since the last checkpoint.
    /// Returns the head after it.
    pub fn checkpoint(&self) -> Option<(u64, String)> {
        let mut chain = self.inner.chain.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if chain.unsigned > 0 {
            self.checkpoint_locked(&mut chain);
        }
        chain.head.next_seq.checked_sub(1).map(|seq| (seq, chain.head.prev.clone()))
    }

    /// Receives every record emitted from now on (tests, later the event-rules engine).
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<AuditRecord>> {
        self.inner.subscribers.subscribe()
    }

    fn record(&self, kind: EventKind, outcome: Outcome, fields: Fields, head: &Head) -> AuditRecord {
        AuditRecord {
            id: kind.id(),
            event: kind.name(),
            ts: chrono::Utc::now(),
            node: Arc::clone(&self.inner.node),
            session: fields.session,
            seq: fields.seq,
            protocol: fields.protocol,
            user: fields.user,
            actor: fields.actor,
            peer: fields.peer,
            path: fields.path,
            target: fields.target,
            bytes: fields.bytes,
            duration_ms: fields.duration_ms,
            outcome,
            reason: fields.reason,
            checkpoint: None,
            chain_seq: head.next_seq,
            prev: head.prev.clone(),
        }
    }

    /// Seals `record` onto the chain and hands it to every sink. A record that cannot be
    /// serialised is an error and leaves the chain as it was (never an empty sealed line).
    fn append(&self, chain: &mut ChainState, record: AuditRecord) -> Result<(), serde_json::Error> {
        let body = serde_json::to_string(&record)?;
        let (line, hash) = chain::seal(&body);
        chain.head = Head::after(record.chain_seq, &hash);
        chain.unsigned = chain.unsigned.saturating_add(1);
        let line: Arc<str> = Arc::from(line);
        for lane in &self.inner.lanes {
            lane.push(&line);
        }
        let _ = self.inner.subscribers.send(Arc::new(record));
        Ok(())
    }

    fn checkpoint_locked(&self, chain: &mut ChainState) {
        let Some(key) = &self.inner.key else {
            return;
        };
        let Some(seq) = chain.head.next_seq.checked_sub(1) else {
            return;
        };
        let hash = chain.head.prev.clone();
        let every = self.inner.checkpoint_every;
        let signature = key.sign(&chain::signed_message(&self.inner.node, seq, &hash, every));
        let mut record = self.record(EventKind::AuditCheckpoint, Outcome::Ok, Fields::default(), &chain.head);
        record.checkpoint = Some(Checkpoint { seq, hash, every, key: key.id(), signature });
        if let Err(e) = self.append(chain, record) {
            tracing::error!(error = %e, "audit checkpoint cannot be serialised; not recorded");
            return;
        }
        chain.unsigned = 0;
        let head = (chain.head.next_seq.saturating_sub(1), chain.head.prev.clone());
        self.inner.signed_head.send_replace(Some(head));
    }
}

/// Saves the head of each checkpoint (the latest, when several come quickly).
async fn save_heads(
    audit: Audit,
    mut heads: watch::Receiver<Option<(u64, String)>>,
    state: State,
    mut stop: watch::Receiver<bool>,
) {
    heads.mark_changed();
    loop {
        tokio::select! {
            changed = heads.changed() => {
                if changed.is_err() { return }
                let head = heads.borrow_and_update().clone();
                if let Some((seq, hash)) = head
                    && let Err(e) = state.audit().save_signed_head(audit.node(), seq, &hash).await
                {
                    tracing::warn!(error = %e, "could not save the audit chain head");
                }
            }
            changed = stop.changed() => if changed.is_err() || *stop.borrow() { return },
        }
    }
}

/// How long sinks may take to write what is queued at shutdown.
const DRAIN_TIME: Duration = Duration::from_secs(10);

/// Signs the chain every `interval` while records arrive.
async fn checkpoints(audit: Audit, interval: Duration, mut stop: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(interval.max(Duration::from_secs(1)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tokio::select! {
            _ = tick.tick() => { audit.checkpoint(); }
            changed = stop.changed() => if changed.is_err() || *stop.borrow() { return },
        }
    }
}

impl AuditTasks {
    /// Final checkpoint, then every sink drains its queue and spool (up to `DRAIN_TIME`), and
    /// the chain head is saved so the next start continues it.
    pub async fn close(mut self) {
        let grace = DRAIN_TIME;
        let head = self.audit.finish();
        let _ = self.stop.send(true);
        let drained =
            tokio::time::timeout(grace, async { while self.tasks.join_next().await.is_some() {} }).await;
        if drained.is_err() {
            // Spilled records stay in their spool; records still in a queue's memory are lost.
            tracing::error!(
                ?grace,
                "audit sinks did not drain in time; records still queued in memory are lost"
            );
        }
        if let (Some(state), Some((seq, hash)), Some(key)) = (&self.state, head, &self.audit.inner.key)
            && let Err(e) =
                state.audit().save_node(self.audit.node(), &key.public_hex(), Some((seq, &hash))).await
        {
            tracing::warn!(error = %e, "could not save the audit chain head");
        }
    }
}

/// Where `ferry audit` commands find a node's public key when none is given.
pub fn default_public_key(config: &AuditConfig) -> PathBuf {
    chain::public_key_path(&config.node_key)
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
    async fn records_reach_subscribers_with_stable_ids_and_a_chain() {
        let audit = Audit::detached("node-a");
        let mut rx = audit.subscribe();
        audit.emit(
            EventKind::FileDelete,
            Outcome::Ok,
            Fields { path: Some("/a".into()), ..Default::default() },
        );
        audit.emit(EventKind::DirCreate, Outcome::Ok, Fields::default());
        let first = rx.recv().await.unwrap();
        let second = rx.recv().await.unwrap();
        assert_eq!((first.id, first.event), (30003, "file.delete"));
        assert_eq!((first.chain_seq, first.prev.as_str()), (0, chain::GENESIS));
        assert_eq!(second.chain_seq, 1);
        let body = serde_json::to_string(first.as_ref()).unwrap();
        assert_eq!(second.prev, chain::sha256_hex(body.as_bytes()));
        let json = serde_json::to_value(first.as_ref()).unwrap();
        assert_eq!(json["path"], "/a");
        assert_eq!(json["node"], "node-a");
        assert_eq!(json["outcome"], "ok");
    }
}
