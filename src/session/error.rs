//! The one error every protocol maps to its own wire codes (in its own module, nowhere else).

use crate::vfs::StorageError;
use crate::vfs::{PathError, VirtualPath};

use crate::types::Op;

#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error("{0}: no such file or folder")]
    NotFound(VirtualPath),
    #[error("permission denied: {op} {path}")]
    PermissionDenied { op: Op, path: VirtualPath },
    #[error("{0}: already exists")]
    AlreadyExists(VirtualPath),
    #[error("{0}: not a folder")]
    NotADirectory(VirtualPath),
    #[error("{0}: is a folder")]
    IsADirectory(VirtualPath),
    #[error("{0}: folder not empty")]
    NotEmpty(VirtualPath),
    #[error("invalid path: {0}")]
    InvalidPath(#[from] PathError),
    #[error("{0}: leads outside the home folder")]
    Escapes(VirtualPath),
    #[error("not supported: {0}")]
    Unsupported(&'static str),
    #[error("the server is shutting down; try again shortly")]
    ShuttingDown,
    #[error("no space left on storage")]
    NoSpace,
    /// The storage itself failed. Clients get a fixed text per kind, never the store's own
    /// message (it names endpoints, buckets and keys); `cause` is for the log and audit.
    #[error("{}", storage_text(.0))]
    Storage(#[source] StorageError),
}

/// What a client is told about a storage failure.
fn storage_text(e: &StorageError) -> &'static str {
    use std::io::ErrorKind as K;
    match e {
        StorageError::Io(io) if io.kind() == K::PermissionDenied => "storage refused access",
        StorageError::Io(io) if io.kind() == K::TimedOut => "storage timed out; try again later",
        _ => "storage unavailable; try again later",
    }
}

impl SessionError {
    /// The whole cause, for the server log and the audit trail only: a storage failure's own
    /// message, which may name endpoints, buckets and keys.
    pub fn cause(&self) -> String {
        match self {
            Self::Storage(e) => e.to_string(),
            other => other.to_string(),
        }
    }

    /// Attaches the path to a storage error.
    pub(crate) fn from_storage(e: StorageError, path: &VirtualPath) -> Self {
        match e {
            StorageError::NotFound => Self::NotFound(path.clone()),
            StorageError::AlreadyExists => Self::AlreadyExists(path.clone()),
            StorageError::NotADirectory => Self::NotADirectory(path.clone()),
            StorageError::IsADirectory => Self::IsADirectory(path.clone()),
            StorageError::NotEmpty => Self::NotEmpty(path.clone()),
            StorageError::Escapes => Self::Escapes(path.clone()),
            StorageError::Unsupported => Self::Unsupported("operation not supported by storage"),
            StorageError::NoSpace => Self::NoSpace,
            other @ StorageError::Io(_) => Self::Storage(other),
        }
    }
}
