//! Where audit lines go. Each sink runs on its own task behind its own lane (`lane.rs`) and
//! writes batches; a failed batch is retried with backoff by sinks that must lose nothing (the
//! queue fills meanwhile and its `on_full` policy applies), or dropped and counted by the others.

pub mod database;
pub mod file;
pub mod http;
pub mod stdout;
pub mod syslog;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::watch;

use super::lane::{LaneRx, Replay};
use crate::telemetry::metrics::metrics;

/// Lines taken from a lane per write.
const BATCH: usize = 512;

/// How long a sink waits after the first record of a batch for more to join it. A record reaches
/// its sinks at most this much later; in exchange a busy server pays one write (one database
/// transaction) per batch, not per record.
const LINGER: Duration = Duration::from_millis(50);

/// A failed write: worth retrying (the peer is down), or refused for good (the peer will never
/// take this batch: retrying it would stall the sink forever).
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error("{0}")]
    Transient(String),
    /// A stream (stdout) failed; worth retrying.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// A local file failed (the audit folder is full or gone); worth retrying.
    #[error("{}: {source}", path.display())]
    File {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The state database failed; worth retrying.
    #[error("{0}")]
    State(#[from] crate::state::StateError),
    #[error("refused for good: {0}")]
    Refused(String),
}

impl From<String> for WriteError {
    fn from(message: String) -> Self {
        WriteError::Transient(message)
    }
}

#[async_trait]
pub trait Sink: Send {
    /// Writes lines in order; an error means none of them may be assumed written.
    async fn write(&mut self, lines: &[Arc<str>]) -> Result<(), WriteError>;

    /// Periodic upkeep while idle (rotation by age, exports); every second.
    async fn tick(&mut self) {}

    /// Makes what was written durable before the process exits.
    async fn close(&mut self) {}

    /// Retry failed batches until they are written (true), or drop them (false).
    fn retries(&self) -> bool;
}

/// Runs `sink` until `stop` turns true, then drains what is queued and closes it.
pub async fn run(mut lane: LaneRx, mut sink: Box<dyn Sink>, mut stop: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // A batch a failing sink still held when the stop came; older than anything queued.
    let mut unsent: Vec<Arc<str>> = Vec::new();
    loop {
        if let Some(path) = lane.take_spool()
            && !replay(&lane, sink.as_mut(), &path, &stop, Replaying::UntilStopped).await
        {
            break;
        }
        tokio::select! {
            batch = lane.recv_batch(BATCH) => match batch {
                Some(mut batch) => {
                    // Let a busy moment gather into one write: one transaction or write call per
                    // LINGER instead of one per record.
                    if batch.len() < BATCH {
                        tokio::time::sleep(LINGER).await;
                        batch.extend(lane.try_batch(BATCH - batch.len()));
                    }
                    if !deliver(&lane, sink.as_mut(), &batch, &stop).await {
                        unsent = batch;
                        break;
                    }
                }
                None => break,
            },
            _ = tick.tick() => sink.tick().await,
            changed = stop.changed() => if changed.is_err() || *stop.borrow() { break },
        }
    }
    // Shutdown. Order on disk is: an interrupted replay, then what was queued, then what was
    // spilled; what the sink cannot take now keeps that order for the next start.
    loop {
        let batch = lane.try_batch(BATCH);
        if batch.is_empty() {
            break;
        }
        unsent.extend(batch);
    }
    let mut sent = 0;
    if !lane.replay_pending() {
        while sent < unsent.len() {
            let end = (sent + BATCH).min(unsent.len());
            if !deliver(&lane, sink.as_mut(), &unsent[sent..end], &stop).await {
                break;
            }
            sent = end;
        }
    }
    if sent < unsent.len() {
        lane.respool_front(&unsent[sent..]);
    } else if let Some(path) = lane.take_spool() {
        replay(&lane, sink.as_mut(), &path, &stop, Replaying::ToTheEnd).await;
    }
    sink.close().await;
}

/// Writes a spool file out; false when the sink failed at shutdown (the rest stays for the
/// next start, which resumes after the lines already written).
/// Whether a stop ends a replay between batches. While running it must: the queue, in memory,
/// is what a stop has to save. At shutdown, once the queue is handled, the replay goes on (its
/// progress is kept per batch, so a grace period running out loses nothing).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Replaying {
    UntilStopped,
    ToTheEnd,
}

async fn replay(
    lane: &LaneRx,
    sink: &mut dyn Sink,
    path: &std::path::Path,
    stop: &watch::Receiver<bool>,
    mode: Replaying,
) -> bool {
    let mut reader = match Replay::open(path) {
        Ok(reader) => reader,
        Err(e) => {
            tracing::error!(sink = lane.name, path = %path.display(), error = %e, "cannot read audit spool");
            return true;
        }
    };
    loop {
        if mode == Replaying::UntilStopped && *stop.borrow() {
            return false;
        }
        let batch = reader.next_batch(BATCH);
        if batch.is_empty() {
            break;
        }
        if !deliver(lane, sink, &batch, stop).await {
            return false;
        }
        reader.written();
    }
    reader.finish();
    true
}

/// Writes one batch; true when it was written (or dropped by a sink that does not retry),
/// false when a retrying sink still fails once the stop has come.
async fn deliver(
    lane: &LaneRx,
    sink: &mut dyn Sink,
    batch: &[Arc<str>],
    stop: &watch::Receiver<bool>,
) -> bool {
    let m = metrics();
    let mut backoff = Duration::from_millis(100);
    loop {
        match sink.write(batch).await {
            Ok(()) => {
                m.audit_written_total.with_label_values(&[lane.name]).inc_by(batch.len() as u64);
                return true;
            }
            Err(e) => {
                m.audit_sink_errors_total.with_label_values(&[lane.name]).inc();
                tracing::warn!(sink = lane.name, error = %e, records = batch.len(), "audit sink write failed");
                if !sink.retries() || matches!(e, WriteError::Refused(_)) {
                    m.audit_dropped_total.with_label_values(&[lane.name]).inc_by(batch.len() as u64);
                    return true;
                }
                if *stop.borrow() {
                    return false;
                }
                let mut stop = stop.clone();
                tokio::select! {
                    () = tokio::time::sleep(backoff) => {}
                    _ = stop.changed() => {}
                }
                backoff = (backoff * 2).min(Duration::from_secs(30));
            }
        }
    }
}
