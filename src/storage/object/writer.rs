//! Uploads: in-order data streams into a multipart upload through a bounded reorder window;
//! early writes wait in memory within the backend's budget or in the upload's temporary file
//! beyond it; writes that are really random move the whole upload to that file.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::SystemTime;

use async_trait::async_trait;
use bytes::Bytes;
use object_store::path::Path;
use object_store::{ObjectStoreExt, PutPayload};
use tokio::sync::Mutex;

use super::budget::{Lease, ReorderBudget};
use super::parts::PartTable;
use super::spill::Spill;
use super::stores::Stores;
use super::{ObjectOptions, store_error};
use crate::storage::multipart::GrowingMultipart;
use crate::storage::{EntryKind, Metadata, Result, StorageError, WriteHandle};

#[derive(Default)]
struct WriteState {
    /// Started once more than one part's worth arrived; small files are a single PUT.
    upload: Option<GrowingMultipart>,
    /// In-order data not yet in an upload: a small file is one PUT of these.
    pending: Vec<Bytes>,
    pending_len: usize,
    /// Offset of the next byte expected in order.
    next: u64,
    /// Writes that arrived early, by offset; together at most `reorder_window` bytes.
    early: BTreeMap<u64, Early>,
    early_bytes: usize,
    /// Early writes that did not fit the budget, at their offsets.
    early_file: Option<Spill>,
    /// Random writes: everything goes to a temporary file, uploaded on commit.
    spill: Option<Spill>,
}

/// An early write, in memory (its bytes counted in the budget) or in `early_file`.
enum Early {
    Held(Bytes, Lease),
    InFile(usize),
}

impl Early {
    fn len(&self) -> usize {
        match self {
            Self::Held(data, _) => data.len(),
            Self::InFile(len) => *len,
        }
    }
}

pub struct ObjectWriter {
    pub stores: Stores,
    /// Where the data goes.
    pub path: Path,
    pub options: ObjectOptions,
    pub budget: Arc<ReorderBudget>,
    /// The e_tag `path` held when the upload began, to recognise a completion whose reply was lost.
    pub replaces: Option<String>,
    pub parts: PartTable,
    /// For a `*.filepart` upload written straight to its final key: its temporary path.
    pub temporary: Option<Path>,
    state: Mutex<WriteState>,
    /// Woken whenever the in-order position advances, for writes waiting beyond the window.
    progress: tokio::sync::Notify,
}

/// How long a write far ahead waits for the writes before it before the upload gives up.
const GAP_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

impl ObjectWriter {
    pub fn new(
        stores: Stores,
        path: Path,
        options: ObjectOptions,
        budget: Arc<ReorderBudget>,
        replaces: Option<String>,
        parts: PartTable,
        temporary: Option<Path>,
    ) -> Self {
        Self {
            stores,
            path,
            options,
            budget,
            replaces,
            parts,
            temporary,
            state: Mutex::new(WriteState::default()),
            progress: tokio::sync::Notify::new(),
        }
    }

    /// True when a write of `len` at `offset` lies beyond the reorder window.
    fn beyond_window(&self, state: &WriteState, offset: u64, len: usize) -> bool {
        let window = self.options.reorder_window;
        offset > state.next
            && ((offset - state.next).saturating_add(len as u64) > window as u64
                || state.early_bytes.saturating_add(len) > window)
    }

    /// Keeps an early write: in memory while the budget lasts, else in the temporary file.
    async fn hold_early(&self, state: &mut WriteState, offset: u64, data: Bytes) -> Result<()> {
        let (offset, data) = self.merge_overlapping(state, offset, data).await?;
        let len = data.len();
        let entry = match self.budget.try_take(len) {
            Some(lease) => Early::Held(data, lease),
            None => {
                if state.early_file.is_none() {
                    state.early_file = Some(Spill::create().await?);
                }
                if let Some(file) = state.early_file.as_mut() {
                    file.write_at(offset, data).await?;
                }
                Early::InFile(len)
            }
        };
        state.early_bytes += len;
        if let Some(replaced) = state.early.insert(offset, entry) {
            state.early_bytes -= replaced.len();
        }
        Ok(())
    }

    /// Hands on the early writes that are now in order.
    /// An early write that lies before `next` was partly overwritten by the in-order data that
    /// passed it (a later write): only its tail beyond `next`, if any, is still to come.
    async fn drain_early(&self, state: &mut WriteState) -> Result<()> {
        loop {
            let next = state.next;
            let Some((&at, _)) = state.early.first_key_value().filter(|(at, _)| **at <= next) else {
                return Ok(());
            };
            let Some(entry) = state.early.remove(&at) else { return Ok(()) };
            state.early_bytes -= entry.len();
            let skip = (next - at) as usize;
            if skip >= entry.len() {
                continue;
            }
            let chunk = self.early_data(state, at, entry).await?.slice(skip..);
            self.push(state, chunk).await?;
        }
    }

    /// The bytes of an early write taken out of `early`.
    async fn early_data(&self, state: &WriteState, at: u64, entry: Early) -> Result<Bytes> {
        match entry {
            Early::Held(chunk, _lease) => Ok(chunk),
            Early::InFile(len) => match state.early_file.as_ref() {
                Some(file) => file.read_at(at, len).await,
                None => Err(StorageError::Io(std::io::Error::other("early write lost"))),
            },
        }
    }

    /// Folds the early writes that `offset..` overlaps into one, the new data over the old as on
    /// a local file, so early writes never overlap and each is handed on whole.
    async fn merge_overlapping(
        &self,
        state: &mut WriteState,
        offset: u64,
        data: Bytes,
    ) -> Result<(u64, Bytes)> {
        let end = offset.saturating_add(data.len() as u64);
        // Early writes never overlap one another, so only the last one starting before
        // `offset` can reach into it; the rest start inside it.
        let reaching_in = state
            .early
            .range(..offset)
            .next_back()
            .filter(|(at, entry)| at.saturating_add(entry.len() as u64) > offset)
            .map(|(at, _)| *at);
        let overlapping: Vec<u64> =
            reaching_in.into_iter().chain(state.early.range(offset..end).map(|(at, _)| *at)).collect();
        if overlapping.is_empty() {
            return Ok((offset, data));
        }
        let mut pieces = Vec::with_capacity(overlapping.len());
        for at in overlapping {
            if let Some(entry) = state.early.remove(&at) {
                state.early_bytes -= entry.len();
                pieces.push((at, self.early_data(state, at, entry).await?));
            }
        }
        let start = pieces.iter().map(|(at, _)| *at).min().unwrap_or(offset).min(offset);
        let stop = pieces.iter().map(|(at, piece)| at + piece.len() as u64).max().unwrap_or(end).max(end);
        let mut merged = vec![0u8; (stop - start) as usize];
        for (at, piece) in pieces.iter().chain([(offset, data)].iter()) {
            let from = (at - start) as usize;
            merged[from..from + piece.len()].copy_from_slice(piece);
        }
        Ok((start, Bytes::from(merged)))
    }

    /// Hands in-order data on without copying it: to the multipart upload (which cuts parts of
    /// `part_size` from the chunks), or, until more than one part has arrived, to `pending`.
    async fn push(&self, state: &mut WriteState, data: Bytes) -> Result<()> {
        state.next += data.len() as u64;
        if let Some(upload) = state.upload.as_mut() {
            upload.wait_for_capacity(self.options.parts_in_flight).await.map_err(store_error)?;
            upload.put(data);
            return Ok(());
        }
        state.pending_len += data.len();
        state.pending.push(data);
        if state.pending_len > self.options.part_size {
            let mut upload = GrowingMultipart::start(
                self.stores.clone(),
                self.path.clone(),
                self.options.part_size,
                self.replaces.clone(),
            )
            .await
            .map_err(store_error)?;
            for chunk in std::mem::take(&mut state.pending) {
                upload.wait_for_capacity(self.options.parts_in_flight).await.map_err(store_error)?;
                upload.put(chunk);
            }
            state.pending_len = 0;
            state.upload = Some(upload);
        }
        Ok(())
    }
}

#[async_trait]
impl WriteHandle for ObjectWriter {
    async fn write_at(&self, offset: u64, data: Bytes) -> Result<()> {
        let waited_since = tokio::time::Instant::now();
        let mut state = loop {
            let state = self.state.lock().await;
            let ahead = self.beyond_window(&state, offset, data.len());
            // Far ahead of a stream that has been sequential so far: the writes before it are
            // most likely still in flight (tasks run in any order), so wait for them a while
            // rather than give up on an upload whose first parts have already left.
            if !(ahead && state.spill.is_none() && state.upload.is_some()) {
                break state;
            }
            if waited_since.elapsed() > GAP_WAIT {
                return Err(StorageError::Unsupported);
            }
            let progress = self.progress.notified();
            tokio::pin!(progress);
            progress.as_mut().enable();
            drop(state);
            let _ = tokio::time::timeout(GAP_WAIT, progress).await;
        };
        if let Some(spill) = state.spill.as_mut() {
            return spill.write_at(offset, data).await;
        }
        let out_of_window = offset < state.next || self.beyond_window(&state, offset, data.len());
        if out_of_window {
            // Not sequential after all. Before any part left, everything moves to a temporary
            // file (uploaded on commit); parts already sent cannot be rewritten.
            if state.upload.is_some() {
                return Err(StorageError::Unsupported);
            }
            // Early writes already in the file stay where they are.
            let mut spill = match state.early_file.take() {
                Some(file) => file,
                None => Spill::create().await?,
            };
            let mut at = state.next - state.pending_len as u64;
            for chunk in std::mem::take(&mut state.pending) {
                let len = chunk.len() as u64;
                spill.write_at(at, chunk).await?;
                at += len;
            }
            state.pending_len = 0;
            for (at, entry) in std::mem::take(&mut state.early) {
                if let Early::Held(chunk, _lease) = entry {
                    spill.write_at(at, chunk).await?;
                }
            }
            state.early_bytes = 0;
            // Replayed from the start on commit.
            state.next = 0;
            spill.write_at(offset, data).await?;
            state.spill = Some(spill);
            return Ok(());
        }
        if offset > state.next {
            return self.hold_early(&mut state, offset, data).await;
        }
        self.push(&mut state, data).await?;
        self.drain_early(&mut state).await?;
        self.progress.notify_waiters();
        Ok(())
    }

    async fn metadata(&self) -> Result<Metadata> {
        let state = self.state.lock().await;
        let size = state.spill.as_ref().map_or(state.next, |spill| spill.len);
        Ok(Metadata { kind: EntryKind::File, size, modified: None, accessed: None, mode: None })
    }

    async fn set_len(&self, _len: u64) -> Result<()> {
        Err(StorageError::Unsupported)
    }

    async fn sync(&self) -> Result<()> {
        Ok(())
    }

    async fn set_times(&self, _accessed: SystemTime, _modified: SystemTime) -> Result<()> {
        if self.options.ignore_attributes { Ok(()) } else { Err(StorageError::Unsupported) }
    }

    async fn set_mode(&self, _mode: u32) -> Result<()> {
        if self.options.ignore_attributes { Ok(()) } else { Err(StorageError::Unsupported) }
    }

    async fn commit(self: Box<Self>) -> Result<()> {
        let mut state = self.state.lock().await;
        if let Some(spill) = state.spill.take() {
            // Stream the temporary file through the same part logic.
            let mut at = 0;
            while at < spill.len {
                let len = (spill.len - at).min(self.options.part_size as u64) as usize;
                let chunk = spill.read_at(at, len).await?;
                self.push(&mut state, chunk).await?;
                at += len as u64;
            }
        }
        if !state.early.is_empty() {
            // A hole before the early writes: the object would be incomplete.
            if let Some(upload) = state.upload.take() {
                let _ = upload.abort().await;
            }
            return Err(StorageError::Unsupported);
        }
        match state.upload.take() {
            None => {
                let payload: PutPayload = std::mem::take(&mut state.pending).into_iter().collect();
                self.stores.store.put(&self.path, payload).await.map_err(store_error)?;
            }
            Some(upload) => {
                upload.finish().await.map_err(store_error)?;
            }
        }
        match &self.temporary {
            Some(temporary) => self.parts.insert(temporary.clone(), self.path.clone()),
            None => self.parts.superseded(&self.path),
        }
        Ok(())
    }

    async fn abort(self: Box<Self>) {
        let mut state = self.state.lock().await;
        if let Some(upload) = state.upload.take() {
            let _ = upload.abort().await;
        }
    }
}

impl Drop for ObjectWriter {
    /// Dropped without commit (client gone): abort the multipart upload so no parts linger.
    fn drop(&mut self) {
        let upload = self.state.get_mut().upload.take();
        if let (Some(upload), Ok(runtime)) = (upload, tokio::runtime::Handle::try_current()) {
            runtime.spawn(async move {
                let _ = upload.abort().await;
            });
        }
    }
}
