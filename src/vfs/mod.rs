//! The virtual filesystem a user sees: virtual paths mapped through a mount table to a backend
//! and key prefix (`/` on the home, `/inbox` on an S3 prefix, `/archive` on Azure). Folders that
//! lead to a mount point exist even where no backend holds them. Uses `storage`, `config`, `types`.

mod mounts;
mod path;
#[cfg(test)]
mod path_props;

use std::collections::HashMap;
use std::sync::Arc;

/// Backend types the session layer works with, re-exported so it depends on `vfs` only.
pub use crate::storage::{
    Capacity, CopyError, DirEntry, DirLister, EntryKind, Key, LinkTarget, Metadata, ReadHandle, Storage,
    StorageError, WriteHandle, WriteOptions, copy,
};
pub use mounts::{Located, MountSpec, Resolved, Vfs};
pub use path::{PathError, VirtualPath};

/// The configured backends by name: `default` is `[storage]`, the others `[storages.NAME]`.
#[derive(Clone)]
pub struct Backends {
    by_name: HashMap<String, Arc<dyn Storage>>,
}

impl Backends {
    pub fn new(default: Arc<dyn Storage>) -> Self {
        let mut by_name = HashMap::new();
        by_name.insert(crate::config::DEFAULT_STORAGE.to_string(), default);
        Self { by_name }
    }

    pub fn insert(&mut self, name: &str, storage: Arc<dyn Storage>) {
        self.by_name.insert(name.to_string(), storage);
    }

    pub fn get(&self, name: &str) -> Option<&Arc<dyn Storage>> {
        self.by_name.get(name)
    }

    pub fn default_storage(&self) -> &Arc<dyn Storage> {
        &self.by_name[crate::config::DEFAULT_STORAGE]
    }
}
