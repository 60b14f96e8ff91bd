//! The temporary file that holds an upload whose writes are not sequential, or the early writes
//! that did not fit the reorder budget. Data sits at its offset in the object (holes read as
//! zeros); the file is private (0600) and removed on drop.

use std::sync::Arc;

use bytes::Bytes;

use crate::storage::{Result, StorageError};

pub struct Spill {
    file: Arc<std::fs::File>,
    path: std::path::PathBuf,
    /// End of the furthest write.
    pub len: u64,
}

impl Drop for Spill {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> std::io::Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .unwrap_or_else(|e| Err(std::io::Error::other(e)))
        .map_err(StorageError::from)
}

impl Spill {
    pub async fn create() -> Result<Self> {
        let path = std::env::temp_dir().join(format!(".ferry-spill-{}", uuid::Uuid::new_v4().simple()));
        let open = path.clone();
        let file = blocking(move || {
            use std::os::unix::fs::OpenOptionsExt;
            std::fs::OpenOptions::new().read(true).write(true).create_new(true).mode(0o600).open(open)
        })
        .await?;
        Ok(Self { file: Arc::new(file), path, len: 0 })
    }

    pub async fn write_at(&mut self, offset: u64, data: Bytes) -> Result<()> {
        use std::os::unix::fs::FileExt;
        let file = Arc::clone(&self.file);
        let end = offset.checked_add(data.len() as u64).ok_or(StorageError::Unsupported)?;
        blocking(move || file.write_all_at(&data, offset)).await?;
        self.len = self.len.max(end);
        Ok(())
    }

    pub async fn read_at(&self, offset: u64, len: usize) -> Result<Bytes> {
        use std::os::unix::fs::FileExt;
        let file = Arc::clone(&self.file);
        blocking(move || {
            let mut buf = vec![0u8; len];
            file.read_exact_at(&mut buf, offset)?;
            Ok(Bytes::from(buf))
        })
        .await
    }
}
