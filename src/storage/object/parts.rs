//! WinSCP's `NAME.filepart` uploads without a server-side copy. An upload of `NAME.filepart` while
//! `NAME` does not exist is written straight to the key `NAME`, so the client's final rename onto
//! `NAME` costs nothing (S3's CopyObject also stops at 5 GiB). Until that rename the view stays
//! what the client did: `NAME.filepart` exists (listed, read, removed, renamed from the key
//! `NAME`) and `NAME` does not. When `NAME` exists, the upload is an ordinary object under its own
//! name, so uploading `NAME.filepart` never touches `NAME`.
//!
//! The table lives in the process: after a restart between the upload and the rename, the file is
//! complete under `NAME`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use object_store::path::Path;

/// The temporary suffix WinSCP uploads under before renaming to the final name.
pub const PART_SUFFIX: &str = crate::types::filepart::SUFFIX;

/// Finished `*.filepart` uploads: temporary path → the key that holds the data. Shared by all
/// scoped views of a backend.
#[derive(Clone, Default)]
pub struct PartTable(Arc<Mutex<HashMap<Path, Path>>>);

impl PartTable {
    /// The key holding the data of the temporary path `temporary`, if it is a finished upload.
    pub fn target(&self, temporary: &Path) -> Option<Path> {
        self.0.lock().ok()?.get(temporary).cloned()
    }

    /// True when `path` holds a finished upload's data and is therefore not a file of its own yet.
    pub fn is_hidden(&self, path: &Path) -> bool {
        self.0.lock().map(|parts| parts.values().any(|target| target == path)).unwrap_or(false)
    }

    pub fn insert(&self, temporary: Path, target: Path) {
        if let Ok(mut parts) = self.0.lock() {
            parts.insert(temporary, target);
        }
    }

    pub fn forget(&self, temporary: &Path) {
        if let Ok(mut parts) = self.0.lock() {
            parts.remove(temporary);
        }
    }

    /// Something else was written to `target`: the upload whose data it held is gone.
    pub fn superseded(&self, target: &Path) {
        if let Ok(mut parts) = self.0.lock() {
            parts.retain(|_, held| held != target);
        }
    }

    /// Target → temporary file name of the finished uploads, for a listing.
    pub fn snapshot(&self, naming: super::names::Naming) -> HashMap<Path, String> {
        let Ok(parts) = self.0.lock() else { return HashMap::new() };
        parts
            .iter()
            .filter_map(|(temporary, target)| {
                Some((target.clone(), super::names::decode(naming, temporary.filename()?).into_owned()))
            })
            .collect()
    }
}
