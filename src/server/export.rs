//! The audit export: sealed audit segments copied into a storage backend
//! (`audit.file.export_storage`), once each, never overwriting.

use std::sync::Arc;

use crate::audit::{ExportError, SegmentExport};
use crate::storage;

/// Copies sealed audit segments into a storage backend, once each, never overwriting: with S3
/// Object Lock (default retention on the bucket) they cannot be changed or deleted after.
pub(super) struct StorageExport {
    pub(super) backend: Arc<dyn storage::Storage>,
    pub(super) prefix: String,
}

#[async_trait::async_trait]
impl SegmentExport for StorageExport {
    async fn export(&self, path: &std::path::Path, name: &str) -> Result<(), ExportError> {
        let segments: Vec<&str> =
            self.prefix.split('/').filter(|s| !s.is_empty() && *s != "." && *s != "..").collect();
        let key = storage::Key::from_segments(segments.iter().copied().chain([name]));
        let options = storage::WriteOptions {
            create: true,
            exclusive: true,
            atomic: true,
            ..storage::WriteOptions::default()
        };
        let mut opened = self.backend.open_write(&key, options).await;
        if matches!(opened, Err(storage::StorageError::NotFound)) {
            // A folder store (local disk) needs the folders first; object stores never get here,
            // so no folder markers end up in a locked bucket.
            for depth in 1..=segments.len() {
                let folder = storage::Key::from_segments(segments[..depth].iter().copied());
                match self.backend.mkdir(&folder).await {
                    Ok(()) | Err(storage::StorageError::AlreadyExists) => {}
                    Err(e) => {
                        return Err(ExportError::Store {
                            target: folder.as_str().to_string(),
                            source: e.into(),
                        });
                    }
                }
            }
            opened = self.backend.open_write(&key, options).await;
        }
        let handle = match opened {
            Ok(handle) => handle,
            // Exported before (the marker was lost): the copy there is the one that counts.
            Err(storage::StorageError::AlreadyExists) => return Ok(()),
            Err(e) => return Err(ExportError::Store { target: key.as_str().to_string(), source: e.into() }),
        };
        let file = tokio::fs::File::open(path).await?;
        match storage::copy(storage::StreamSource::new(file), handle).await {
            Ok(_) => Ok(()),
            Err(storage::CopyError::Read(e)) => Err(ExportError::Copy(e.into())),
            Err(storage::CopyError::Write(e)) => Err(ExportError::Copy(e.into())),
        }
    }
}
