//! The reorder window of uploads: early writes wait in memory within the shared budget or in the
//! upload's temporary file beyond it, and the committed object is exactly what a local file
//! written the same way would hold.

use bytes::Bytes;

use super::*;
use crate::storage::StorageError;

#[tokio::test]
async fn blocks_written_out_of_order_commit_to_the_exact_bytes() {
    let (store, storage) = backend(small());
    // 4 blocks of 10 (one PUT) and 8 blocks of 10 (a multipart upload of 16-byte parts).
    for (name, blocks, order) in
        [("small", 4, vec![2, 0, 3, 1]), ("multipart", 8, vec![2, 0, 3, 1, 5, 4, 7, 6])]
    {
        let data = pattern(blocks * 10, 7);
        let handle = create(&storage, name).await;
        write_blocks(handle.as_ref(), &data, 10, &order).await;
        assert_eq!(handle.metadata().await.unwrap().size, data.len() as u64);
        handle.commit().await.unwrap();
        assert_eq!(stored(&store, name).await, data, "{name}");
    }
    let budget = storage.reorder_budget();
    assert_eq!(budget.in_use(), 0);
    assert!(budget.peak() > 0 && budget.peak() <= budget.limit(), "peak {}", budget.peak());
}

#[tokio::test]
async fn early_writes_beyond_the_budget_wait_in_the_file_and_stay_exact() {
    // A budget of 15 holds one 10-byte block: the next early ones go to the temporary file.
    let (store, storage) = backend(ObjectOptions { reorder_budget: 15, ..small() });
    let data = pattern(60, 3);
    let handle = create(&storage, "spilled").await;
    write_blocks(handle.as_ref(), &data, 10, &[3, 2, 1, 5, 4]).await;
    assert_eq!(storage.reorder_budget().in_use(), 10);
    write_blocks(handle.as_ref(), &data, 10, &[0]).await;
    assert_eq!(storage.reorder_budget().in_use(), 0);
    handle.commit().await.unwrap();
    assert_eq!(stored(&store, "spilled").await, data);
    assert_eq!(storage.reorder_budget().peak(), 10);
}

#[tokio::test]
async fn uploads_share_one_budget_that_is_never_exceeded() {
    let (store, storage) = backend(small());
    let data: Vec<Vec<u8>> = (0..4).map(|seed| pattern(80, seed)).collect();
    let mut handles = Vec::new();
    for (index, _) in data.iter().enumerate() {
        handles.push(create(&storage, &format!("upload{index}")).await);
    }
    // Every upload holds 3 early blocks (30 bytes): together 120, more than the budget of 48.
    for (handle, data) in handles.iter().zip(&data) {
        write_blocks(handle.as_ref(), data, 10, &[3, 1, 2]).await;
        assert!(storage.reorder_budget().in_use() <= 48);
    }
    for (handle, data) in handles.iter().zip(&data) {
        write_blocks(handle.as_ref(), data, 10, &[0, 4, 5, 7, 6]).await;
    }
    for (index, handle) in handles.into_iter().enumerate() {
        handle.commit().await.unwrap();
        assert_eq!(stored(&store, &format!("upload{index}")).await, data[index]);
    }
    let budget = storage.reorder_budget();
    assert_eq!(budget.in_use(), 0);
    assert!(budget.peak() <= 48, "peak {}", budget.peak());
}

#[tokio::test]
async fn a_write_beyond_the_window_before_any_part_left_moves_the_upload_to_a_file() {
    // Parts of 256: nothing leaves before commit, so the far write makes the upload random.
    let (store, storage) = backend(ObjectOptions { part_size: 256, ..small() });
    let data = pattern(200, 9);
    let handle = create(&storage, "far").await;
    handle.write_at(0, Bytes::copy_from_slice(&data[..20])).await.unwrap();
    handle.write_at(30, Bytes::copy_from_slice(&data[30..40])).await.unwrap();
    // 180 is 160 bytes past the next expected offset (20), beyond the window of 64.
    handle.write_at(180, Bytes::copy_from_slice(&data[180..])).await.unwrap();
    handle.write_at(20, Bytes::copy_from_slice(&data[20..30])).await.unwrap();
    handle.write_at(40, Bytes::copy_from_slice(&data[40..180])).await.unwrap();
    assert_eq!(storage.reorder_budget().in_use(), 0);
    handle.commit().await.unwrap();
    assert_eq!(stored(&store, "far").await, data);
}

#[tokio::test]
async fn a_write_beyond_the_window_after_parts_left_waits_for_the_writes_before_it() {
    let (store, storage) = backend(small());
    let data = pattern(160, 5);
    let handle = create(&storage, "waits").await;
    // 40 bytes: parts of 16 have left, so the upload can no longer move to a file.
    handle.write_at(0, Bytes::copy_from_slice(&data[..40])).await.unwrap();
    let far = handle.write_at(120, Bytes::copy_from_slice(&data[120..]));
    let before = async {
        for start in (40..120).step_by(10) {
            handle.write_at(start as u64, Bytes::copy_from_slice(&data[start..start + 10])).await.unwrap();
        }
    };
    let (far, ()) = tokio::join!(far, before);
    far.unwrap();
    handle.commit().await.unwrap();
    assert_eq!(stored(&store, "waits").await, data);
    assert_eq!(storage.reorder_budget().in_use(), 0);
}

/// Virtual time: the write's wait for a gap that never fills ends without a real 10 s sleep.
#[tokio::test(start_paused = true)]
async fn a_gap_that_never_fills_after_parts_left_is_refused() {
    let (store, storage) = backend(small());
    let data = pattern(40, 1);
    let handle = create(&storage, "gap").await;
    handle.write_at(0, Bytes::copy_from_slice(&data)).await.unwrap();
    let refused = handle.write_at(200, Bytes::from_static(b"far ahead")).await;
    assert!(matches!(refused, Err(StorageError::Unsupported)), "{refused:?}");
    handle.abort().await;
    assert!(store.get(&Path::from_iter(["prefix", "gap"])).await.is_err());
    assert_eq!(storage.reorder_budget().in_use(), 0);
}

#[tokio::test]
async fn a_repeated_early_write_keeps_the_last_data() {
    let (store, storage) = backend(small());
    let mut data = pattern(40, 2);
    let handle = create(&storage, "repeated").await;
    handle.write_at(20, Bytes::from(vec![0xAA; 10])).await.unwrap();
    handle.write_at(10, Bytes::copy_from_slice(&data[10..20])).await.unwrap();
    handle.write_at(20, Bytes::copy_from_slice(&data[20..30])).await.unwrap();
    // The first copy's bytes went back to the budget when the second replaced it.
    assert_eq!(storage.reorder_budget().in_use(), 20);
    write_blocks(handle.as_ref(), &data, 10, &[3, 0]).await;
    handle.commit().await.unwrap();
    assert_eq!(stored(&store, "repeated").await, data);
    assert_eq!(storage.reorder_budget().in_use(), 0);
    // The same with the second copy different: it wins, as on a local file.
    data[20..30].fill(0x55);
    let handle = create(&storage, "repeated").await;
    handle.write_at(20, Bytes::from(vec![0xAA; 10])).await.unwrap();
    handle.write_at(20, Bytes::copy_from_slice(&data[20..30])).await.unwrap();
    write_blocks(handle.as_ref(), &data, 10, &[0, 1, 3]).await;
    handle.commit().await.unwrap();
    assert_eq!(stored(&store, "repeated").await, data);
}

#[tokio::test]
async fn rewriting_sent_data_before_any_part_left_keeps_the_last_data() {
    let (store, storage) = backend(ObjectOptions { part_size: 256, ..small() });
    let mut data = pattern(50, 4);
    let handle = create(&storage, "rewritten").await;
    handle.write_at(0, Bytes::copy_from_slice(&data[..30])).await.unwrap();
    data[10..20].copy_from_slice(b"0123456789");
    handle.write_at(10, Bytes::from_static(b"0123456789")).await.unwrap();
    handle.write_at(30, Bytes::copy_from_slice(&data[30..])).await.unwrap();
    handle.commit().await.unwrap();
    assert_eq!(stored(&store, "rewritten").await, data);
}

#[tokio::test]
async fn rewriting_data_after_its_part_left_is_refused_and_loses_nothing() {
    let (store, storage) = backend(small());
    put(&store, "kept", b"the old object").await;
    let handle = create(&storage, "kept").await;
    handle.write_at(0, Bytes::from(pattern(40, 6))).await.unwrap();
    let refused = handle.write_at(0, Bytes::from_static(b"again")).await;
    assert!(matches!(refused, Err(StorageError::Unsupported)), "{refused:?}");
    handle.abort().await;
    assert_eq!(stored(&store, "kept").await, b"the old object");
}

#[tokio::test]
async fn a_hole_fails_the_commit_and_returns_the_budget() {
    let (store, storage) = backend(small());
    let data = pattern(60, 8);
    let handle = create(&storage, "holed").await;
    write_blocks(handle.as_ref(), &data, 10, &[0, 1, 2, 4, 5]).await;
    assert_eq!(storage.reorder_budget().in_use(), 20);
    let refused = handle.commit().await;
    assert!(matches!(refused, Err(StorageError::Unsupported)), "{refused:?}");
    assert_eq!(storage.reorder_budget().in_use(), 0);
    assert!(store.get(&Path::from_iter(["prefix", "holed"])).await.is_err());
}

#[tokio::test]
async fn abort_and_drop_return_the_budget() {
    let (store, storage) = backend(small());
    let data = pattern(80, 0);
    let aborted = create(&storage, "aborted").await;
    let dropped = create(&storage, "dropped").await;
    write_blocks(aborted.as_ref(), &data, 10, &[0, 1, 2, 4, 6]).await;
    write_blocks(dropped.as_ref(), &data, 10, &[2, 3]).await;
    assert_eq!(storage.reorder_budget().in_use(), 40);
    aborted.abort().await;
    assert_eq!(storage.reorder_budget().in_use(), 20);
    drop(dropped);
    assert_eq!(storage.reorder_budget().in_use(), 0);
    for name in ["aborted", "dropped"] {
        assert!(store.get(&Path::from_iter(["prefix", name])).await.is_err(), "{name}");
    }
}

#[tokio::test]
async fn overlapping_writes_keep_the_last_data_as_a_local_file_does() {
    let (store, storage) = backend(small());
    let mut local = pattern(60, 10);
    let handle = create(&storage, "overlaps").await;
    // Early 20..30, then early 25..35 over it, then in-order 0..22 over its start.
    handle.write_at(20, Bytes::from(vec![0xA1; 10])).await.unwrap();
    handle.write_at(25, Bytes::from(vec![0xB2; 10])).await.unwrap();
    // A longer early write at 40, then a shorter one at the same offset.
    handle.write_at(40, Bytes::from(vec![0xC3; 10])).await.unwrap();
    handle.write_at(40, Bytes::from(vec![0xD4; 4])).await.unwrap();
    handle.write_at(0, Bytes::copy_from_slice(&local[..22])).await.unwrap();
    handle.write_at(35, Bytes::copy_from_slice(&local[35..40])).await.unwrap();
    handle.write_at(50, Bytes::copy_from_slice(&local[50..])).await.unwrap();
    local[22..25].fill(0xA1);
    local[25..35].fill(0xB2);
    local[40..44].fill(0xD4);
    local[44..50].fill(0xC3);
    handle.commit().await.unwrap();
    assert_eq!(stored(&store, "overlaps").await, local);
    assert_eq!(storage.reorder_budget().in_use(), 0);
}
