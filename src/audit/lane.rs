//! One bounded queue per sink. Emitting never waits: a record either fits in the queue or the
//! sink's `on_full` policy decides. `drop` loses it (counted); `spill` appends it to a spool file
//! on local disk that the sink replays, in order, once it has caught up, so memory stays bounded
//! and nothing is lost while the disk has room.

use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use tokio::sync::mpsc;

use crate::telemetry::metrics::metrics;

/// What a full queue does with the next record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnFull {
    Drop,
    Spill,
}

/// The sending side, held by `Audit`.
pub struct Lane {
    pub name: &'static str,
    tx: mpsc::Sender<Arc<str>>,
    policy: OnFull,
    spool: Arc<Mutex<Spool>>,
}

/// The receiving side, owned by the sink's task.
pub struct LaneRx {
    pub name: &'static str,
    rx: mpsc::Receiver<Arc<str>>,
    spool: Arc<Mutex<Spool>>,
}

/// Records that did not fit. While any are pending, new records go here too, so order holds.
struct Spool {
    path: PathBuf,
    file: Option<File>,
    pending: u64,
}

impl Spool {
    fn replay_path(&self) -> PathBuf {
        self.path.with_extension("replay")
    }

    fn append(&mut self, line: &str) -> std::io::Result<()> {
        if self.file.is_none() {
            if let Some(parent) = self.path.parent() {
                std::fs::create_dir_all(parent)?;
            }
            self.file = Some(std::fs::OpenOptions::new().create(true).append(true).open(&self.path)?);
        }
        if let Some(file) = self.file.as_mut() {
            file.write_all(line.as_bytes())?;
            file.write_all(b"\n")?;
        }
        self.pending += 1;
        Ok(())
    }
}

/// A queue of `capacity` records for sink `name`; `spool_dir` holds its spool file.
pub fn lane(name: &'static str, capacity: usize, policy: OnFull, spool_dir: PathBuf) -> (Lane, LaneRx) {
    let (tx, rx) = mpsc::channel(capacity.max(1));
    let path = spool_dir.join(format!("{name}.spool"));
    // A spool left by an earlier run is replayed before anything new.
    let pending = u64::from(path.exists());
    let spool = Arc::new(Mutex::new(Spool { path, file: None, pending }));
    let m = metrics();
    m.audit_queue_capacity.with_label_values(&[name]).set(capacity as i64);
    (Lane { name, tx, policy, spool: Arc::clone(&spool) }, LaneRx { name, rx, spool })
}

impl Lane {
    /// Queues `line` without waiting.
    pub fn push(&self, line: &Arc<str>) {
        let m = metrics();
        let mut spool = self.spool.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if spool.pending > 0 && self.policy == OnFull::Spill {
            if spool.append(line).is_err() {
                m.audit_dropped_total.with_label_values(&[self.name]).inc();
            }
            return;
        }
        match self.tx.try_send(Arc::clone(line)) {
            Ok(()) => m.audit_queue_depth.with_label_values(&[self.name]).inc(),
            Err(_) if self.policy == OnFull::Spill => {
                if let Err(e) = spool.append(line) {
                    tracing::error!(sink = self.name, error = %e, "audit spool write failed; record lost");
                    m.audit_dropped_total.with_label_values(&[self.name]).inc();
                }
            }
            Err(_) => m.audit_dropped_total.with_label_values(&[self.name]).inc(),
        }
    }
}

impl LaneRx {
    /// Waits for the next records (up to `max`). `None` when every sender is gone.
    pub async fn recv_batch(&mut self, max: usize) -> Option<Vec<Arc<str>>> {
        let mut batch = Vec::new();
        let got = self.rx.recv_many(&mut batch, max).await;
        metrics().audit_queue_depth.with_label_values(&[self.name]).sub(got as i64);
        (got > 0).then_some(batch)
    }

    /// Takes what is queued now, without waiting (used when draining at shutdown).
    pub fn try_batch(&mut self, max: usize) -> Vec<Arc<str>> {
        let mut batch = Vec::new();
        while batch.len() < max {
            match self.rx.try_recv() {
                Ok(line) => batch.push(line),
                Err(_) => break,
            }
        }
        metrics().audit_queue_depth.with_label_values(&[self.name]).sub(batch.len() as i64);
        batch
    }

    /// Puts lines a sink could not write at shutdown into the spool, for the next start.
    pub fn respool(&self, lines: &[Arc<str>]) {
        let mut spool = self.spool.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        for line in lines {
            if spool.append(line).is_err() {
                metrics().audit_dropped_total.with_label_values(&[self.name]).inc();
            }
        }
    }

    /// When the queue is empty and records were spilled, hands over the spool file to replay
    /// (renamed, so new spills start a fresh one). Also picks up a replay a crash interrupted.
    pub fn take_spool(&mut self) -> Option<PathBuf> {
        let mut spool = self.spool.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let replay = spool.replay_path();
        if replay.exists() {
            return Some(replay);
        }
        if spool.pending == 0 || !self.rx.is_empty() {
            return None;
        }
        spool.file = None;
        spool.pending = 0;
        if std::fs::rename(&spool.path, &replay).is_ok() { Some(replay) } else { None }
    }
}

/// Reads a spool file back in batches of `max` lines.
pub struct Replay {
    lines: std::io::Lines<BufReader<File>>,
}

impl Replay {
    pub fn open(path: &std::path::Path) -> std::io::Result<Self> {
        Ok(Self { lines: BufReader::new(File::open(path)?).lines() })
    }

    pub fn next_batch(&mut self, max: usize) -> Vec<Arc<str>> {
        self.lines.by_ref().take(max).map_while(Result::ok).filter(|l| !l.is_empty()).map(Arc::from).collect()
    }
}
