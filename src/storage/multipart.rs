//! A multipart upload fed with owned chunks (no copies), with a bounded number of parts in
//! flight and parts that grow as the upload grows, so the stores' 10,000-part limit is never
//! reached without knowing the size in advance (SFTP and FTP do not announce it). Parts go
//! through the everyday client; the completion through the long one (`object::stores`).

use bytes::Bytes;
use object_store::multipart::PartId;
use object_store::path::Path;
use object_store::{MultipartId, PutPayload, PutPayloadMut};
use tokio::task::JoinSet;

use super::object::stores::{Expected, Stores};

/// Parts are `part_size` for the first 1,000, then twice that for the next 1,000, and so on:
/// with 8 MiB parts 10,000 parts hold ~8 TB, beyond S3's 5 TiB object limit.
const PARTS_PER_SIZE: usize = 1000;
/// S3's largest part.
const MAX_PART: usize = 5 << 30;

pub struct GrowingMultipart {
    stores: Stores,
    path: Path,
    id: MultipartId,
    in_flight: JoinSet<object_store::Result<(usize, PartId)>>,
    /// Finished parts by index.
    done: Vec<Option<PartId>>,
    part: PutPayloadMut,
    parts_started: usize,
    base: usize,
    bytes: u64,
    /// The e_tag the path held when the upload began (see `Expected`).
    replaces: Option<String>,
}

impl GrowingMultipart {
    pub async fn start(
        stores: Stores,
        path: Path,
        part_size: usize,
        replaces: Option<String>,
    ) -> object_store::Result<Self> {
        let id = stores.multipart.create_multipart(&path).await?;
        Ok(Self {
            stores,
            path,
            id,
            in_flight: JoinSet::new(),
            done: Vec::new(),
            part: PutPayloadMut::new(),
            parts_started: 0,
            base: part_size,
            bytes: 0,
            replaces,
        })
    }

    /// The size of the part being filled.
    pub fn part_size(&self) -> usize {
        let doublings = (self.parts_started / PARTS_PER_SIZE).min(16) as u32;
        self.base.saturating_mul(1 << doublings).min(MAX_PART)
    }

    /// Waits until fewer than `max` parts are uploading; fails with the first failed part.
    pub async fn wait_for_capacity(&mut self, max: usize) -> object_store::Result<()> {
        while self.in_flight.len() >= max {
            self.join_one().await?;
        }
        Ok(())
    }

    async fn join_one(&mut self) -> object_store::Result<()> {
        let (index, part) = match self.in_flight.join_next().await {
            Some(Ok(result)) => result?,
            Some(Err(e)) => {
                return Err(object_store::Error::Generic { store: "multipart", source: Box::new(e) });
            }
            None => return Ok(()),
        };
        if self.done.len() <= index {
            self.done.resize(index + 1, None);
        }
        self.done[index] = Some(part);
        Ok(())
    }

    /// Adds data; every full part starts uploading at once (callers bound that with
    /// `wait_for_capacity`).
    pub fn put(&mut self, mut data: Bytes) {
        self.bytes += data.len() as u64;
        while !data.is_empty() {
            let room = self.part_size() - self.part.content_length();
            if data.len() < room {
                self.part.push(data);
                return;
            }
            self.part.push(data.split_to(room));
            self.start_part();
        }
    }

    fn start_part(&mut self) {
        let payload: PutPayload = std::mem::take(&mut self.part).freeze();
        let index = self.parts_started;
        self.parts_started += 1;
        let (multipart, path, id) = (self.stores.multipart.clone(), self.path.clone(), self.id.clone());
        self.in_flight.spawn(async move {
            multipart.put_part(&path, &id, index, payload).await.map(|part| (index, part))
        });
    }

    /// Uploads the rest and completes: the object appears now, whole. A failed part aborts the
    /// upload; a failed completion does not (it may still be running in the store).
    pub async fn finish(mut self) -> object_store::Result<()> {
        if !self.part.is_empty() || self.parts_started == 0 {
            self.start_part();
        }
        while !self.in_flight.is_empty() {
            if let Err(e) = self.join_one().await {
                let _ = self.abort().await;
                return Err(e);
            }
        }
        let parts: Option<Vec<PartId>> = std::mem::take(&mut self.done).into_iter().collect();
        let Some(parts) = parts else {
            let _ = self.abort().await;
            return Err(object_store::Error::Generic {
                store: "multipart",
                source: "a part of the upload is missing".into(),
            });
        };
        let expected = Expected { size: self.bytes, replaces: self.replaces.clone() };
        self.stores.complete(&self.path, &self.id, parts, &expected).await
    }

    pub async fn abort(mut self) -> object_store::Result<()> {
        self.in_flight.shutdown().await;
        self.stores.multipart.abort_multipart(&self.path, &self.id).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use object_store::ObjectStoreExt;
    use object_store::memory::InMemory;
    use std::sync::Arc;

    #[tokio::test]
    async fn parts_grow_and_the_object_is_whole() {
        let store = Arc::new(InMemory::new());
        let path = Path::from("big");
        let mut multipart =
            GrowingMultipart::start(Stores::single(store.clone()), path.clone(), 10, None).await.unwrap();
        assert_eq!(multipart.part_size(), 10);
        let data: Vec<u8> = (0..30_000u32).map(|i| (i % 251) as u8).collect();
        for chunk in data.chunks(7) {
            multipart.wait_for_capacity(2).await.unwrap();
            multipart.put(Bytes::copy_from_slice(chunk));
        }
        // 10,000 bytes in 1,000 parts of 10, then parts of 20 and 40.
        assert_eq!(multipart.part_size(), 40);
        multipart.finish().await.unwrap();
        let stored = store.get(&path).await.unwrap().bytes().await.unwrap();
        assert_eq!(stored, data);
    }
}
