//! Reads an SFTP channel on its own task, cuts the stream into packets and queues them for
//! the dispatcher. It never stops reading: russh hands channel data over with a blocking send,
//! so a reader that paused while replies wait for the client's window would stall the whole
//! SSH connection, including the window adjustments and the close that would free it. Queued
//! requests are bounded per connection instead: at the bound the reader waits while replies
//! flow (plain backpressure), but a client that overruns it while leaving its replies unread
//! sends far more than it reads, and its channel is abandoned.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use russh::{ChannelMsg, ChannelReadHalf};
use tokio::sync::{Notify, mpsc, watch};

use super::idle::Activity;
use super::wire::MAX_PACKET;
use crate::telemetry::metrics::metrics;

/// Bookkeeping per queued request, on top of its bytes (so tiny requests count too).
const OVERHEAD: usize = 64;

/// Request bytes one SSH connection may have queued (all channels): far more than any client
/// that reads its replies keeps outstanding (OpenSSH: 64 requests of 32 KiB).
pub const QUEUE_CAP: usize = 16 << 20;

/// How often a reader waiting at the bound looks again whether replies still flow.
const RECHECK: Duration = Duration::from_millis(50);

/// Request bytes queued and not yet served, for one SSH connection (all channels).
#[derive(Clone)]
pub struct Queued {
    bytes: Arc<AtomicUsize>,
    cap: usize,
    freed: Arc<Notify>,
}

impl Queued {
    pub fn new(cap: usize) -> Self {
        Self { bytes: Arc::default(), cap, freed: Arc::default() }
    }

    /// Waits for room for `n` bytes while replies flow; `None` once the client leaves its
    /// replies unread (`stalled`) with the bound reached.
    async fn add(&self, n: usize, stalled: &AtomicBool) -> Option<QueuedBytes> {
        loop {
            let freed = self.freed.notified();
            if let Some(share) = self.try_add(n) {
                return Some(share);
            }
            if stalled.load(Ordering::SeqCst) {
                return None;
            }
            let _ = tokio::time::timeout(RECHECK, freed).await;
        }
    }

    fn try_add(&self, n: usize) -> Option<QueuedBytes> {
        self.bytes
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |held| {
                held.checked_add(n).filter(|total| *total <= self.cap)
            })
            .ok()?;
        metrics().sftp_bytes_in_flight.with_label_values(&["queued"]).add(n as i64);
        Some(QueuedBytes { bytes: Arc::clone(&self.bytes), n, freed: Arc::clone(&self.freed) })
    }
}

/// A queued request's share of the bound, given back when the request is dropped.
pub struct QueuedBytes {
    bytes: Arc<AtomicUsize>,
    n: usize,
    freed: Arc<Notify>,
}

impl Drop for QueuedBytes {
    fn drop(&mut self) {
        self.bytes.fetch_sub(self.n, Ordering::SeqCst);
        self.freed.notify_waiters();
        metrics().sftp_bytes_in_flight.with_label_values(&["queued"]).sub(self.n as i64);
    }
}

/// One packet body (type byte first).
pub struct Request {
    pub body: Bytes,
    _queued: QueuedBytes,
}

/// Why the channel's requests ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// Still running.
    Open,
    /// The client closed the channel or the connection, or overran the queue: nobody will read
    /// replies, so in-flight work is dropped at once.
    Abandoned,
}

pub struct Intake {
    pub requests: mpsc::UnboundedReceiver<Request>,
    pub end: watch::Receiver<End>,
}

/// Starts reading `input`. The request stream ends at EOF or at a malformed length (the
/// dispatcher then finishes what it has); `end` turns `Abandoned` when nobody is left to answer.
pub fn start(
    mut input: ChannelReadHalf,
    queued: Queued,
    stalled: Arc<AtomicBool>,
    activity: Activity,
) -> Intake {
    let (tx, requests) = mpsc::unbounded_channel();
    let (end_tx, end) = watch::channel(End::Open);
    tokio::spawn(async move {
        let mut tx = Some(tx);
        let mut buffer = BytesMut::new();
        while let Some(message) = input.wait().await {
            match message {
                ChannelMsg::Data { data } if tx.is_some() => buffer.extend_from_slice(&data),
                ChannelMsg::Eof => tx = None,
                ChannelMsg::Close => break,
                _ => continue,
            }
            while let Some(sender) = &tx {
                match next_packet(&mut buffer) {
                    Ok(None) => break,
                    Ok(Some(body)) => {
                        activity.touch();
                        let Some(share) = queued.add(body.len() + OVERHEAD, &stalled).await else {
                            tracing::warn!(
                                "SFTP client sends far more than it reads; abandoning the channel"
                            );
                            let _ = end_tx.send(End::Abandoned);
                            tx = None;
                            break;
                        };
                        if sender.send(Request { body, _queued: share }).is_err() {
                            tx = None;
                        }
                    }
                    Err(len) => {
                        tracing::warn!(len, "SFTP packet length out of range; closing the channel");
                        tx = None;
                    }
                }
            }
            if tx.is_none() {
                buffer = BytesMut::new();
            }
        }
        let _ = end_tx.send(End::Abandoned);
    });
    Intake { requests, end }
}

/// Cuts one packet off the front of `buffer`; `Err` with the length when it is out of range.
fn next_packet(buffer: &mut BytesMut) -> Result<Option<Bytes>, usize> {
    let Some(&[a, b, c, d]) = buffer.get(..4) else {
        return Ok(None);
    };
    let len = u32::from_be_bytes([a, b, c, d]) as usize;
    if len == 0 || len > MAX_PACKET + 1024 {
        return Err(len);
    }
    if buffer.len() < 4 + len {
        return Ok(None);
    }
    buffer.advance(4);
    Ok(Some(buffer.split_to(len).freeze()))
}

/// Resolves once the channel is abandoned (or its reader is gone).
pub async fn abandoned(end: &mut watch::Receiver<End>) {
    let _ = end.wait_for(|e| *e == End::Abandoned).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packets_are_cut_by_their_length_prefix() {
        let mut buffer = BytesMut::from(&[0, 0, 0, 2, 7, 8, 0, 0, 0, 3, 1][..]);
        assert_eq!(next_packet(&mut buffer).unwrap().as_deref(), Some(&[7u8, 8][..]));
        assert_eq!(next_packet(&mut buffer).unwrap(), None, "second packet incomplete");
        let mut bad = BytesMut::from(&[0xff, 0, 0, 0, 1][..]);
        assert!(next_packet(&mut bad).is_err());
    }

    #[test]
    fn the_queue_bound_refuses_and_releases() {
        let queued = Queued::new(100);
        let a = queued.try_add(60).unwrap();
        assert!(queued.try_add(60).is_none());
        drop(a);
        assert!(queued.try_add(60).is_some());
    }
}
