//! Read-ahead of downloads: every read returns what a local file would, wherever it lands.

use super::*;
use crate::storage::ReadHandle;

/// What a local file of `data` answers to a read of `len` at `offset`.
fn expected(data: &[u8], offset: u64, len: usize) -> &[u8] {
    let start = usize::try_from(offset).unwrap_or(usize::MAX).min(data.len());
    let end = start.saturating_add(len).min(data.len());
    &data[start..end]
}

/// A 100-byte object (12.5 blocks of 8) opened for reading.
async fn opened(data: &[u8]) -> Box<dyn ReadHandle> {
    let (store, storage) = backend(small());
    put(&store, "object", data).await;
    storage.open_read(&key("object")).await.unwrap()
}

#[tokio::test]
async fn sequential_reads_return_the_exact_bytes() {
    let data = pattern(100, 11);
    for step in [1, 5, 8, 13, 100, 4096] {
        let handle = opened(&data).await;
        let mut out = Vec::new();
        loop {
            let chunk = handle.read_at(out.len() as u64, step).await.unwrap();
            if chunk.is_empty() {
                break;
            }
            assert!(chunk.len() <= step);
            out.extend_from_slice(&chunk);
        }
        assert_eq!(out, data, "reads of {step}");
    }
}

#[tokio::test]
async fn reads_anywhere_answer_as_a_local_file() {
    let data = pattern(100, 12);
    let handle = opened(&data).await;
    let reads: [(u64, usize); 14] = [
        (90, 8),  // far ahead first
        (0, 8),   // then back to the start
        (5, 20),  // spanning three blocks
        (7, 2),   // across one border
        (96, 4),  // the last, short block
        (95, 20), // past the end: what is there
        (99, 1),
        (100, 1),        // at the end
        (1_000, 10),     // far after it
        (u64::MAX, 10),  // where offset + len overflows
        (40, 0),         // nothing asked
        (0, 100),        // the whole object
        (0, usize::MAX), // more than all of it
        (48, 16),        // two whole blocks
    ];
    for (offset, len) in reads {
        let got = handle.read_at(offset, len).await.unwrap();
        assert_eq!(got.as_ref(), expected(&data, offset, len), "read of {len} at {offset}");
    }
    assert_eq!(handle.metadata().await.unwrap().size, 100);
}

#[tokio::test]
async fn pipelined_reads_on_one_handle_return_the_exact_bytes() {
    let data = pattern(100, 13);
    let handle = opened(&data).await;
    // Many reads at once, in a shuffled order, as an SFTP client pipelines them.
    let offsets: Vec<u64> = (0..25).map(|i| (i * 7 % 25) * 4).collect();
    let reads = offsets.iter().map(|&offset| {
        let handle = &handle;
        async move { (offset, handle.read_at(offset, 6).await) }
    });
    for (offset, got) in futures::future::join_all(reads).await {
        assert_eq!(got.unwrap().as_ref(), expected(&data, offset, 6), "read at {offset}");
    }
}

#[tokio::test]
async fn an_empty_object_reads_empty() {
    let handle = opened(b"").await;
    assert!(handle.read_at(0, 10).await.unwrap().is_empty());
    assert!(handle.read_at(5, 10).await.unwrap().is_empty());
}
