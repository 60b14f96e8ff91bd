//! The virtual filesystem a user sees: virtual paths mapped through a mount table to a backend
//! and key prefix. Today one mount (the user's home on the configured backend); object-store
//! mounts come with the object storage issue. Uses `storage`, `config`, `types`.

mod path;

use std::sync::Arc;

/// Backend types the session layer works with, re-exported so it depends on `vfs` only.
pub use crate::storage::{
    Capacity, DirLister, EntryKind, Key, Metadata, ReadHandle, Storage, StorageError, WriteHandle,
    WriteOptions,
};
pub use path::{PathError, VirtualPath};

/// One user's view: `/` is `home` on `storage`. The backend is scoped to the home, so
/// symlinks are judged against the user's jail, not the whole storage root.
#[derive(Clone)]
pub struct Vfs {
    storage: Arc<dyn Storage>,
}

impl Vfs {
    /// `home` is a virtual path inside the backend root (e.g. `/alice`); created if missing.
    pub fn new(storage: &dyn Storage, home: &VirtualPath) -> Result<Self, StorageError> {
        Ok(Self { storage: storage.scoped(&Key::from_segments(home.segments()))? })
    }

    pub fn storage(&self) -> &dyn Storage {
        self.storage.as_ref()
    }

    /// The backend key of a virtual path.
    pub fn key(&self, path: &VirtualPath) -> Key {
        Key::from_segments(path.segments())
    }

    /// The virtual path of a backend key.
    pub fn virtual_path(&self, key: &Key) -> Result<VirtualPath, PathError> {
        VirtualPath::parse(&format!("/{}", key.as_str()))
    }
}
