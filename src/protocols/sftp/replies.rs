//! Replies in request order, and the budget that bounds what they hold. Every request takes a
//! ticket before it is served: one of `max_requests_in_flight` places on its channel, plus the
//! bytes of its READ reply or WRITE data on the channel and on the connection. The ticket is
//! given back when the reply has been handed to the channel, not when it was computed: a client
//! that keeps asking and never reads finds the budget spent and gets nothing more computed
//! (3,200 unread 255 KiB READs used to hold 800 MiB).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use bytes::Bytes;
use russh::ChannelWriteHalf;
use russh::server::Msg;
use tokio::sync::{Mutex, OwnedSemaphorePermit, Semaphore};

use crate::telemetry::metrics::metrics;

/// A byte budget shared by holders, with its size (larger asks are clamped to it).
#[derive(Clone)]
pub struct ByteBudget {
    pool: Arc<Pool>,
}

struct Pool {
    permits: Arc<Semaphore>,
    cap: usize,
    /// The most bytes ever held at once.
    high_water: AtomicUsize,
    /// Past this high water, the last holder to go gives freed memory back to the system.
    trim_after: usize,
}

impl Drop for Pool {
    fn drop(&mut self) {
        if *self.high_water.get_mut() >= self.trim_after {
            crate::telemetry::memory::release_freed_memory();
        }
    }
}

impl ByteBudget {
    pub fn new(cap: usize) -> Self {
        Self::trimming_after(cap, usize::MAX)
    }

    /// A budget that, once every holder and ticket of it is gone, returns the allocator's
    /// free pages to the system if it ever held `trim_after` bytes or more: replies freed
    /// below live allocations would otherwise stay resident (glibc keeps them in its arenas).
    pub fn trimming_after(cap: usize, trim_after: usize) -> Self {
        let cap = cap.clamp(1, Semaphore::MAX_PERMITS.min(u32::MAX as usize));
        let pool =
            Pool { permits: Arc::new(Semaphore::new(cap)), cap, high_water: AtomicUsize::new(0), trim_after };
        Self { pool: Arc::new(pool) }
    }

    async fn take(&self, bytes: usize) -> Option<OwnedSemaphorePermit> {
        if bytes == 0 {
            return None;
        }
        let pool = &self.pool;
        let n = bytes.min(pool.cap) as u32;
        let permit = Arc::clone(&pool.permits).acquire_many_owned(n).await.ok()?;
        let held = pool.cap.saturating_sub(pool.permits.available_permits());
        pool.high_water.fetch_max(held, Ordering::Relaxed);
        Some(permit)
    }
}

/// One channel's budget: request places and bytes, and the connection's bytes.
pub struct Budget {
    requests: Arc<Semaphore>,
    channel: ByteBudget,
    connection: ByteBudget,
}

/// What one request holds until its reply is written.
pub struct Ticket {
    _request: Option<OwnedSemaphorePermit>,
    _channel: Option<OwnedSemaphorePermit>,
    _connection: Option<OwnedSemaphorePermit>,
    /// Keeps the connection's budget alive until its last reply is freed (see `trimming_after`).
    _connection_budget: ByteBudget,
    bytes: usize,
}

impl Drop for Ticket {
    fn drop(&mut self) {
        if self.bytes > 0 {
            metrics().sftp_bytes_in_flight.with_label_values(&["replies"]).sub(self.bytes as i64);
        }
    }
}

impl Budget {
    pub fn new(max_requests: usize, channel_bytes: usize, connection: ByteBudget) -> Self {
        Self {
            requests: Arc::new(Semaphore::new(max_requests.max(1))),
            channel: ByteBudget::new(channel_bytes),
            connection,
        }
    }

    /// Waits for a place and `bytes` (channel first, then connection: one order, no deadlock).
    pub async fn ticket(&self, bytes: usize) -> Ticket {
        let request = Arc::clone(&self.requests).acquire_owned().await.ok();
        let channel = self.channel.take(bytes).await;
        let connection = self.connection.take(bytes).await;
        if bytes > 0 {
            metrics().sftp_bytes_in_flight.with_label_values(&["replies"]).add(bytes as i64);
        }
        Ticket {
            _request: request,
            _channel: channel,
            _connection: connection,
            _connection_budget: self.connection.clone(),
            bytes,
        }
    }
}

/// Writes replies to the channel in request order, from whichever task finishes the request
/// that is next in line (no extra writer task to hop through).
pub struct Replies {
    pub output: ChannelWriteHalf<Msg>,
    order: Mutex<Order>,
    /// True while a reply waits for the client to open its window (to read what it asked for).
    pub stalled: Arc<AtomicBool>,
}

#[derive(Default)]
struct Order {
    next: u64,
    /// Replies that finished before an earlier one, each with its ticket: at most
    /// `max_requests_in_flight`.
    waiting: BTreeMap<u64, (Bytes, Option<Ticket>)>,
    broken: bool,
}

impl Replies {
    pub fn new(output: ChannelWriteHalf<Msg>) -> Self {
        Self { output, order: Mutex::new(Order::default()), stalled: Arc::default() }
    }

    /// Sends reply number `seq` once every earlier one is out; its ticket is dropped after.
    pub async fn send(&self, seq: u64, bytes: Bytes, ticket: Option<Ticket>) {
        let mut order = self.order.lock().await;
        if order.broken {
            return;
        }
        order.waiting.insert(seq, (bytes, ticket));
        loop {
            let next = order.next;
            let Some((bytes, ticket)) = order.waiting.remove(&next) else {
                break;
            };
            order.next += 1;
            let written = self.write(bytes).await;
            drop(ticket);
            if written.is_err() {
                order.broken = true;
                order.waiting.clear();
                return;
            }
        }
    }

    /// Writes one reply in pieces the client's window takes now, flagging `stalled` while it
    /// has no room at all.
    async fn write(&self, mut bytes: Bytes) -> Result<(), russh::Error> {
        while !bytes.is_empty() {
            let room = self.output.writable_packet_size().await;
            if room == 0 {
                self.stalled.store(true, Ordering::SeqCst);
            }
            let piece = bytes.split_to(room.clamp(1, 32 * 1024).min(bytes.len()));
            let written = self.output.data_bytes(piece).await;
            self.stalled.store(false, Ordering::SeqCst);
            written?;
        }
        Ok(())
    }
}
