//! The one copy loop: bytes from a source (a backend's read handle, or any byte stream such as
//! a local file) into a backend's write handle, one bounded chunk at a time, committed at the
//! end and aborted on any failure, so a half-copied file never becomes visible. Used by the
//! cross-mount rename and the audit segment export.

use std::future::Future;

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncReadExt};

use super::{ReadHandle, StorageError, WriteHandle};

/// The most a copy holds in memory at once.
pub const COPY_CHUNK: usize = 1 << 20;

/// Where `copy` takes its bytes from.
pub trait CopySource: Send {
    type Error;
    /// Up to `max` bytes starting at `offset` (the bytes copied so far); empty at the end.
    fn read_chunk(
        &mut self,
        offset: u64,
        max: usize,
    ) -> impl Future<Output = Result<Bytes, Self::Error>> + Send;
}

impl<H: ReadHandle + ?Sized> CopySource for &H {
    type Error = StorageError;

    async fn read_chunk(&mut self, offset: u64, max: usize) -> Result<Bytes, StorageError> {
        self.read_at(offset, max).await
    }
}

/// A byte stream read front to back (a local file, say) through a buffer of its own.
pub struct StreamSource<R> {
    reader: R,
    buffer: Vec<u8>,
}

impl<R> StreamSource<R> {
    pub fn new(reader: R) -> Self {
        Self { reader, buffer: vec![0; COPY_CHUNK] }
    }
}

impl<R: AsyncRead + Unpin + Send> CopySource for StreamSource<R> {
    type Error = std::io::Error;

    async fn read_chunk(&mut self, _offset: u64, max: usize) -> Result<Bytes, std::io::Error> {
        let room = max.min(self.buffer.len());
        let n = self.reader.read(&mut self.buffer[..room]).await?;
        Ok(Bytes::copy_from_slice(&self.buffer[..n]))
    }
}

/// Which side of a copy failed; the target has been aborted either way.
#[derive(Debug, thiserror::Error)]
pub enum CopyError<E> {
    #[error("{0}")]
    Read(E),
    /// Writing or committing the target.
    #[error("{0}")]
    Write(StorageError),
}

/// Copies everything `source` yields into `target` and commits it; answers the bytes copied.
pub async fn copy<S: CopySource>(
    mut source: S,
    target: Box<dyn WriteHandle>,
) -> Result<u64, CopyError<S::Error>> {
    let mut offset = 0u64;
    loop {
        let data = match source.read_chunk(offset, COPY_CHUNK).await {
            Ok(data) => data,
            Err(e) => {
                target.abort().await;
                return Err(CopyError::Read(e));
            }
        };
        if data.is_empty() {
            break;
        }
        let len = data.len() as u64;
        if let Err(e) = target.write_at(offset, data).await {
            target.abort().await;
            return Err(CopyError::Write(e));
        }
        offset = offset.saturating_add(len);
    }
    target.commit().await.map_err(CopyError::Write)?;
    Ok(offset)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::{Key, LocalStorage, Storage, WriteOptions};

    fn payload(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i % 251) as u8).collect()
    }

    fn options() -> WriteOptions {
        WriteOptions { create: true, atomic: true, ..WriteOptions::default() }
    }

    #[tokio::test]
    async fn copies_every_byte_of_a_stream_and_of_a_handle() {
        let dir = tempfile::tempdir().unwrap();
        let storage = LocalStorage::new(dir.path()).unwrap();
        let data = payload(2 * COPY_CHUNK + 12_345);
        let first = Key::from_segments(["a.bin"]);
        let target = storage.open_write(&first, options()).await.unwrap();
        assert_eq!(copy(StreamSource::new(&data[..]), target).await.unwrap(), data.len() as u64);
        assert_eq!(std::fs::read(dir.path().join("a.bin")).unwrap(), data);

        let source = storage.open_read(&first).await.unwrap();
        let target = storage.open_write(&Key::from_segments(["b.bin"]), options()).await.unwrap();
        assert_eq!(copy(&*source, target).await.unwrap(), data.len() as u64);
        assert_eq!(std::fs::read(dir.path().join("b.bin")).unwrap(), data);
    }

    /// Yields two chunks, then fails.
    struct Failing(u8);

    impl CopySource for Failing {
        type Error = &'static str;

        async fn read_chunk(&mut self, _offset: u64, _max: usize) -> Result<Bytes, &'static str> {
            if self.0 == 0 {
                return Err("source gone");
            }
            self.0 -= 1;
            Ok(Bytes::from(vec![7; 1000]))
        }
    }

    #[tokio::test]
    async fn a_failed_read_aborts_the_target_so_nothing_appears() {
        let dir = tempfile::tempdir().unwrap();
        let storage = LocalStorage::new(dir.path()).unwrap();
        let target = storage.open_write(&Key::from_segments(["c.bin"]), options()).await.unwrap();
        let failed = copy(Failing(2), target).await;
        assert!(matches!(failed, Err(CopyError::Read("source gone"))), "{failed:?}");
        let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert!(left.is_empty(), "an aborted copy leaves no file: {left:?}");
    }
}
