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

/// One user's view: `/` is `home` on `storage`.
#[derive(Clone)]
pub struct Vfs {
    storage: Arc<dyn Storage>,
    home: Key,
}

impl Vfs {
    /// `home` is a virtual path inside the backend root (e.g. `/alice`).
    pub fn new(storage: Arc<dyn Storage>, home: &VirtualPath) -> Self {
        Self {
            storage,
            home: Key::from_segments(home.segments()),
        }
    }

    pub fn storage(&self) -> &dyn Storage {
        self.storage.as_ref()
    }

    pub fn home_key(&self) -> &Key {
        &self.home
    }

    /// The backend key of a virtual path.
    pub fn key(&self, path: &VirtualPath) -> Key {
        Key::from_segments(self.home.segments().chain(path.segments()))
    }

    /// The virtual path of a backend key, when it lies inside the home.
    pub fn virtual_path(&self, key: &Key) -> Result<VirtualPath, PathError> {
        let mut segments = key.segments();
        for expected in self.home.segments() {
            if segments.next() != Some(expected) {
                return Err(PathError::Escapes);
            }
        }
        let rest: Vec<&str> = segments.collect();
        VirtualPath::parse(&format!("/{}", rest.join("/")))
    }
}
