//! Early writes of many uploads share one memory budget (issue 12, item 18).

use std::sync::Arc;

use bytes::Bytes;
use ferry::storage::{ObjectOptions, ObjectStorage, Storage};

use super::{new_file, read_all};
use crate::harness::payload;

const UPLOADS: usize = 32;
const CHUNK: usize = 256 << 10;
/// Chunks per window: each upload holds 15 chunks (3.75 MiB) early at a time.
const WINDOW: usize = 16;
const SIZE: usize = 3 * WINDOW * CHUNK;

/// 32 uploads each hold 3.75 MiB of early writes at the same moment (120 MiB together, against
/// an 8 MiB budget): the early bytes in memory never exceed the budget, the rest waits on disk,
/// and every object is byte-identical.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn early_writes_of_many_uploads_stay_within_one_budget() {
    let memory = Arc::new(object_store::memory::InMemory::new());
    let options = ObjectOptions {
        part_size: 1 << 20,
        parts_in_flight: 2,
        reorder_window: 4 << 20,
        reorder_budget: 8 << 20,
        ..ObjectOptions::default()
    };
    let store = Arc::new(ObjectStorage::new(memory, None, "", options));
    let budget = Arc::clone(store.reorder_budget());
    let together = Arc::new(tokio::sync::Barrier::new(UPLOADS));
    let mut tasks = Vec::new();
    for upload in 0..UPLOADS {
        let (store, together) = (Arc::clone(&store), Arc::clone(&together));
        tasks.push(tokio::spawn(async move {
            let data = Bytes::from(payload(SIZE, 200 + upload as u64));
            let name = format!("u{upload}.bin");
            let w = store.open_write(&super::key(&name), new_file()).await.unwrap();
            for window in 0..SIZE / (WINDOW * CHUNK) {
                let first = window * WINDOW;
                // The window backwards: every chunk but the first arrives early.
                for chunk in (first + 1..first + WINDOW).rev() {
                    w.write_at((chunk * CHUNK) as u64, data.slice(chunk * CHUNK..(chunk + 1) * CHUNK))
                        .await
                        .unwrap();
                }
                // All uploads hold their early chunks at once before any fills its gap.
                together.wait().await;
                w.write_at((first * CHUNK) as u64, data.slice(first * CHUNK..(first + 1) * CHUNK))
                    .await
                    .unwrap();
            }
            w.commit().await.unwrap();
            (name, data)
        }));
    }
    for task in tasks {
        let (name, data) = task.await.unwrap();
        assert!(read_all(store.as_ref(), &name).await == data, "{name} is byte-identical");
    }
    assert!(budget.peak() <= budget.limit(), "peak {} over the budget {}", budget.peak(), budget.limit());
    assert!(budget.peak() > budget.limit() - CHUNK, "the budget was used up (peak {})", budget.peak());
    assert_eq!(budget.in_use(), 0, "every early byte was given back");
}
