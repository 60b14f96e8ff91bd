//! One bounded queue per sink. Emitting never waits: a record either fits in the queue or the
//! sink's `on_full` policy decides. `drop` loses it (counted); `spill` appends it to a spool file
//! on local disk that the sink replays, in order, once it has caught up, so memory stays bounded
//! and nothing is lost while the disk has room.

use std::fs::File;
use std::io::{BufRead, BufReader, Seek, SeekFrom, Write};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use tokio::sync::mpsc;

pub use crate::config::OnFull;
use crate::telemetry::metrics::metrics;

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
    /// A spool an earlier run left: older than anything queued now, so it goes first whatever
    /// the sink's policy.
    left_over: bool,
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
            // One write per record, so a crash cannot glue two records together.
            let mut record = Vec::with_capacity(line.len() + 1);
            record.extend_from_slice(line.as_bytes());
            record.push(b'\n');
            file.write_all(&record)?;
        }
        self.pending += 1;
        Ok(())
    }
}

/// The spool, even after a panic elsewhere held its lock: its state is a file and a count.
fn lock(spool: &Mutex<Spool>) -> std::sync::MutexGuard<'_, Spool> {
    spool.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A queue of `capacity` records for sink `name`; `spool_dir` holds its spool file.
pub fn lane(name: &'static str, capacity: usize, policy: OnFull, spool_dir: PathBuf) -> (Lane, LaneRx) {
    let (tx, rx) = mpsc::channel(capacity.max(1));
    let path = spool_dir.join(format!("{name}.spool"));
    // A spool left by an earlier run is replayed before anything new.
    let left_over = path.exists();
    let pending = u64::from(left_over);
    let spool = Arc::new(Mutex::new(Spool { path, file: None, pending }));
    let m = metrics();
    m.audit_queue_capacity.with_label_values(&[name]).set(capacity as i64);
    (Lane { name, tx, policy, spool: Arc::clone(&spool) }, LaneRx { name, rx, spool, left_over })
}

impl Lane {
    /// Queues `line` without waiting.
    pub fn push(&self, line: &Arc<str>) {
        let m = metrics();
        let mut spool = lock(&self.spool);
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

    /// A replay was cut short and must finish before anything newer is written.
    pub fn replay_pending(&self) -> bool {
        let spool = lock(&self.spool);
        spool.replay_path().exists()
    }

    /// Puts lines a sink could not write at shutdown at the front of the spool (they are older
    /// than anything spilled), for the next start.
    pub fn respool_front(&self, lines: &[Arc<str>]) {
        let mut spool = lock(&self.spool);
        spool.file = None;
        let fresh = spool.path.with_extension("front");
        let written = (|| -> std::io::Result<()> {
            if let Some(parent) = spool.path.parent() {
                std::fs::create_dir_all(parent)?;
            }
            let mut out = std::io::BufWriter::new(File::create(&fresh)?);
            for line in lines {
                out.write_all(line.as_bytes())?;
                out.write_all(b"\n")?;
            }
            if let Ok(mut older) = File::open(&spool.path) {
                std::io::copy(&mut older, &mut out)?;
            }
            out.into_inner().map_err(|e| e.into_error())?.sync_all()?;
            std::fs::rename(&fresh, &spool.path)
        })();
        match written {
            Ok(()) => spool.pending += lines.len() as u64,
            Err(e) => {
                tracing::error!(sink = self.name, error = %e, "audit spool write failed; records lost");
                metrics().audit_dropped_total.with_label_values(&[self.name]).inc_by(lines.len() as u64);
            }
        }
    }

    /// When the queue is empty and records were spilled, hands over the spool file to replay
    /// (renamed, so new spills start a fresh one). Also picks up a replay a crash interrupted.
    pub fn take_spool(&mut self) -> Option<PathBuf> {
        let mut spool = lock(&self.spool);
        let replay = spool.replay_path();
        if replay.exists() {
            return Some(replay);
        }
        let left_over = std::mem::take(&mut self.left_over) && spool.path.exists();
        if !left_over && (spool.pending == 0 || !self.rx.is_empty()) {
            return None;
        }
        spool.file = None;
        spool.pending = 0;
        if std::fs::rename(&spool.path, &replay).is_ok() { Some(replay) } else { None }
    }
}

/// Reads a spool file back in batches. Progress is kept beside it (`.done`: the byte offset
/// written so far), so a replay cut short by a stop resumes where it was, without duplicates.
pub struct Replay {
    path: PathBuf,
    reader: BufReader<File>,
    /// Offset after the lines handed out, and after the lines known written.
    read: u64,
}

impl Replay {
    pub fn open(path: &std::path::Path) -> std::io::Result<Self> {
        let mut reader = BufReader::new(File::open(path)?);
        let done = std::fs::read_to_string(done_path(path)).ok().and_then(|t| t.trim().parse::<u64>().ok());
        let read = done.unwrap_or(0);
        if read > 0 {
            reader.seek(SeekFrom::Start(read))?;
        }
        Ok(Self { path: path.to_path_buf(), reader, read })
    }

    pub fn next_batch(&mut self, max: usize) -> Vec<Arc<str>> {
        let mut batch = Vec::new();
        let mut line = String::new();
        while batch.len() < max {
            line.clear();
            match self.reader.read_line(&mut line) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    self.read += n as u64;
                    let text = line.trim_end_matches('\n');
                    if !text.is_empty() {
                        batch.push(Arc::from(text));
                    }
                }
            }
        }
        batch
    }

    /// The lines handed out so far are written.
    pub fn written(&self) {
        // Replaced whole (write, then rename), so a crash leaves the old offset or the new one.
        let done = done_path(&self.path);
        let fresh = done.with_extension("done-new");
        if std::fs::write(&fresh, self.read.to_string()).is_ok() {
            let _ = std::fs::rename(&fresh, &done);
        }
    }

    /// Everything is written: the spool and its progress go.
    pub fn finish(self) {
        let _ = std::fs::remove_file(done_path(&self.path));
        let _ = std::fs::remove_file(&self.path);
    }
}

fn done_path(path: &std::path::Path) -> PathBuf {
    path.with_extension("done")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(items: &[&str]) -> Vec<Arc<str>> {
        items.iter().map(|s| Arc::from(*s)).collect()
    }

    fn texts(batch: &[Arc<str>]) -> Vec<String> {
        batch.iter().map(|l| l.to_string()).collect()
    }

    #[tokio::test]
    async fn a_full_queue_spills_in_order_and_the_spool_replays_after_it() {
        let dir = tempfile::tempdir().unwrap();
        let (lane, mut rx) = lane("t", 2, OnFull::Spill, dir.path().to_path_buf());
        for line in lines(&["a", "b", "c", "d"]) {
            lane.push(&line);
        }
        assert_eq!(rx.take_spool(), None, "nothing to replay while the queue holds older records");
        assert_eq!(texts(&rx.recv_batch(10).await.unwrap()), ["a", "b"]);
        // While records are spilled, new ones queue behind them even when there is room.
        lane.push(&Arc::from("e"));
        assert!(rx.rx.is_empty());
        let path = rx.take_spool().unwrap();
        let mut replay = Replay::open(&path).unwrap();
        assert_eq!(texts(&replay.next_batch(2)), ["c", "d"]);
        replay.written();
        // Cut short here: a new reader resumes after what was written.
        let mut resumed = Replay::open(&path).unwrap();
        assert_eq!(texts(&resumed.next_batch(10)), ["e"]);
        resumed.finish();
        assert!(!path.exists());
        lane.push(&Arc::from("f"));
        assert_eq!(texts(&rx.recv_batch(10).await.unwrap()), ["f"], "back to the queue once replayed");
    }

    #[tokio::test]
    async fn records_left_at_shutdown_go_before_the_spilled_ones() {
        let dir = tempfile::tempdir().unwrap();
        let (lane, mut rx) = lane("t", 1, OnFull::Spill, dir.path().to_path_buf());
        for line in lines(&["a", "b", "c"]) {
            lane.push(&line);
        }
        let queued = rx.try_batch(10);
        rx.respool_front(&queued);
        let path = rx.take_spool().unwrap();
        let mut replay = Replay::open(&path).unwrap();
        assert_eq!(texts(&replay.next_batch(10)), ["a", "b", "c"]);
    }

    #[tokio::test]
    async fn a_spool_left_by_an_earlier_run_goes_before_new_records_even_with_drop() {
        let dir = tempfile::tempdir().unwrap();
        {
            let (_lane, rx) = lane("left", 4, OnFull::Drop, dir.path().to_path_buf());
            rx.respool_front(&lines(&["old-1", "old-2"]));
        }
        let (lane, mut rx) = lane("left", 4, OnFull::Drop, dir.path().to_path_buf());
        lane.push(&Arc::from("new"));
        let path = rx.take_spool().expect("the old spool first, though the queue holds a record");
        assert_eq!(texts(&Replay::open(&path).unwrap().next_batch(10)), ["old-1", "old-2"]);
        assert_eq!(texts(&rx.recv_batch(10).await.unwrap()), ["new"]);
    }

    #[tokio::test]
    async fn a_full_queue_with_drop_loses_and_counts() {
        let dir = tempfile::tempdir().unwrap();
        let (lane, mut rx) = lane("drop-test", 1, OnFull::Drop, dir.path().to_path_buf());
        let before = metrics().audit_dropped_total.with_label_values(&["drop-test"]).get();
        for line in lines(&["a", "b", "c"]) {
            lane.push(&line);
        }
        assert_eq!(metrics().audit_dropped_total.with_label_values(&["drop-test"]).get() - before, 2);
        assert_eq!(texts(&rx.try_batch(10)), ["a"]);
        assert_eq!(rx.take_spool(), None);
    }
}
