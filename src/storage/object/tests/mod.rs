//! Unit tests of the upload reorder window and the read-ahead against object_store's in-memory
//! store, through `ObjectStorage` with parts, window and blocks of a few bytes so they run in
//! milliseconds. Every check compares the exact bytes the store ends up holding.

mod errors;
mod read;
mod reorder;

use std::sync::Arc;

use bytes::Bytes;
use object_store::ObjectStoreExt;
use object_store::memory::InMemory;
use object_store::path::Path;

use super::{ObjectOptions, ObjectStorage};
use crate::storage::{Key, Storage, WriteHandle, WriteOptions};

/// Small knobs: parts of 16 bytes, a window of 64, a shared budget of 48, blocks of 8.
fn small() -> ObjectOptions {
    ObjectOptions {
        part_size: 16,
        parts_in_flight: 2,
        reorder_window: 64,
        reorder_budget: 48,
        read_block: 8,
        ignore_attributes: true,
    }
}

fn backend(options: ObjectOptions) -> (Arc<InMemory>, ObjectStorage) {
    let store = Arc::new(InMemory::new());
    let storage = ObjectStorage::new(Arc::clone(&store), None, "prefix", options);
    (store, storage)
}

fn key(name: &str) -> Key {
    Key::from_segments([name])
}

/// `len` bytes that differ from their neighbours, so a misplaced block shows.
fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len).map(|i| (i as u32).wrapping_mul(31).wrapping_add(u32::from(seed)) as u8).collect()
}

async fn create(storage: &ObjectStorage, name: &str) -> Box<dyn WriteHandle> {
    let options = WriteOptions { create: true, truncate: true, replace: true, ..Default::default() };
    storage.open_write(&key(name), options).await.unwrap()
}

/// Writes `data` in blocks of `block` bytes, in the order of `order` (block indexes).
async fn write_blocks(handle: &dyn WriteHandle, data: &[u8], block: usize, order: &[usize]) {
    for &index in order {
        let start = index * block;
        let chunk = Bytes::copy_from_slice(&data[start..(start + block).min(data.len())]);
        handle.write_at(start as u64, chunk).await.unwrap();
    }
}

/// What the store holds under `name` in the backend's prefix.
async fn stored(store: &InMemory, name: &str) -> Vec<u8> {
    let path = Path::from_iter(["prefix", name]);
    store.get(&path).await.unwrap().bytes().await.unwrap().to_vec()
}

/// An object of `data` under `name`, put straight into the store.
async fn put(store: &InMemory, name: &str, data: &[u8]) {
    let path = Path::from_iter(["prefix", name]);
    store.put(&path, Bytes::copy_from_slice(data).into()).await.unwrap();
}
