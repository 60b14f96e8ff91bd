//! Ranged, read-ahead downloads of one object.

use std::sync::Arc;

use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use futures::StreamExt;
use object_store::ObjectStore;
use object_store::path::Path;
use tokio::sync::Mutex;

use super::store_error;
use crate::storage::{Metadata, ReadHandle, Result, StorageError};

pub struct ObjectReader {
    pub store: Arc<dyn ObjectStore>,
    pub path: Path,
    pub meta: Metadata,
    pub block: u64,
    pub state: Mutex<ReadState>,
}

/// A sequential reader is fed by one ranged GET from its position to the end, cut into aligned
/// blocks: the store's latency is paid once per run of sequential reads, not once per block.
#[derive(Default)]
pub struct ReadState {
    /// Blocks already taken from the stream, newest last: pipelined reads that arrive a little
    /// late (SFTP serves many at once) are answered from here.
    recent: std::collections::VecDeque<(u64, Bytes)>,
    stream: Option<BlockStream>,
}

/// Blocks the GET has delivered but the reader has not taken yet, at most `READ_AHEAD`.
struct BlockStream {
    /// Start of the next block `rx` yields.
    next: u64,
    rx: tokio::sync::mpsc::Receiver<Result<Bytes>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for BlockStream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Blocks queued ahead of the reader, and blocks kept behind it. Memory per open download is
/// about `(READ_AHEAD + KEEP_RECENT + 1) × read_block`.
const READ_AHEAD: usize = 2;
const KEEP_RECENT: usize = 2;

impl ObjectReader {
    /// Starts a GET of `start..` (aligned) that cuts the body into blocks.
    fn open_stream(&self, start: u64) -> BlockStream {
        let (tx, rx) = tokio::sync::mpsc::channel(READ_AHEAD);
        let (store, path, block, size) =
            (Arc::clone(&self.store), self.path.clone(), self.block, self.meta.size);
        let task = tokio::spawn(async move {
            let options =
                object_store::GetOptions { range: Some((start..size).into()), ..Default::default() };
            let mut body = match store.get_opts(&path, options).await {
                Ok(result) => result.into_stream(),
                Err(e) => {
                    let _ = tx.send(Err(store_error(e))).await;
                    return;
                }
            };
            let mut buffer = BytesMut::new();
            while let Some(chunk) = body.next().await {
                match chunk {
                    Ok(chunk) => buffer.extend_from_slice(&chunk),
                    Err(e) => {
                        let _ = tx.send(Err(store_error(e))).await;
                        return;
                    }
                }
                while buffer.len() as u64 >= block {
                    if tx.send(Ok(buffer.split_to(block as usize).freeze())).await.is_err() {
                        return;
                    }
                }
            }
            if !buffer.is_empty() {
                let _ = tx.send(Ok(buffer.freeze())).await;
            }
        });
        BlockStream { next: start, rx, task }
    }

    /// The aligned block that starts at `start`.
    async fn block_at(&self, state: &mut ReadState, start: u64) -> Result<Bytes> {
        if let Some((_, block)) = state.recent.iter().find(|(at, _)| *at == start) {
            return Ok(block.clone());
        }
        // A broken stream (the store dropped the connection while the client paused) is
        // reopened once from where the reader is.
        for attempt in 0..2 {
            let reusable = state
                .stream
                .as_ref()
                .is_some_and(|s| s.next <= start && start - s.next <= READ_AHEAD as u64 * self.block);
            if !reusable {
                state.stream = Some(self.open_stream(start));
            }
            let Some(stream) = state.stream.as_mut() else { continue };
            loop {
                let at = stream.next;
                let block = match stream.rx.recv().await {
                    Some(Ok(block)) => block,
                    Some(Err(e)) if attempt == 1 => {
                        state.stream = None;
                        return Err(e);
                    }
                    Some(Err(_)) | None => {
                        state.stream = None;
                        break;
                    }
                };
                stream.next += block.len() as u64;
                state.recent.push_back((at, block.clone()));
                if state.recent.len() > KEEP_RECENT {
                    state.recent.pop_front();
                }
                if at == start {
                    return Ok(block);
                }
            }
        }
        Err(StorageError::Io(std::io::Error::other("the store ended the download early")))
    }

    /// The part of `offset..end` inside the block that holds `offset`.
    async fn read_in_block(&self, state: &mut ReadState, offset: u64, end: u64) -> Result<Bytes> {
        let start = offset - offset % self.block;
        let block = self.block_at(state, start).await?;
        let from = (offset - start) as usize;
        let to = ((end - start) as usize).min(block.len());
        Ok(if to > from { block.slice(from..to) } else { Bytes::new() })
    }
}

#[async_trait]
impl ReadHandle for ObjectReader {
    async fn read_at(&self, offset: u64, len: usize) -> Result<Bytes> {
        let size = self.meta.size;
        if offset >= size || len == 0 {
            return Ok(Bytes::new());
        }
        let end = (offset + len as u64).min(size);
        let mut state = self.state.lock().await;
        let first = self.read_in_block(&mut state, offset, end).await?;
        if first.len() as u64 == end - offset {
            return Ok(first);
        }
        // The read spans blocks: assemble it, so callers get the whole range.
        let mut out = BytesMut::with_capacity((end - offset) as usize);
        out.extend_from_slice(&first);
        while (out.len() as u64) < end - offset {
            let piece = self.read_in_block(&mut state, offset + out.len() as u64, end).await?;
            if piece.is_empty() {
                break;
            }
            out.extend_from_slice(&piece);
        }
        Ok(out.freeze())
    }

    async fn metadata(&self) -> Result<Metadata> {
        Ok(self.meta.clone())
    }
}
