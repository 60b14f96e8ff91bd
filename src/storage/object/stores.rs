//! The clients of one object store: everyday requests under `request_timeout`, and the requests
//! that take as long as the object is big (completing a multipart upload, server-side copies) on
//! a second client under `complete_timeout`. S3 can spend minutes assembling or copying a large
//! object, answering with whitespace meanwhile; a 30 s limit made a 6 GiB upload fail.
//!
//! Those long requests are not retried blindly: an attempt that fails is first checked with a
//! HEAD (is the object there, with the expected size, and not the object that was there before?),
//! and only then asked again. Completing the same upload twice with the same parts is harmless
//! (one object results, or the store says the upload is gone and the HEAD decides), and an upload
//! whose completion is uncertain is never aborted, so it cannot be lost by the retry.

use std::sync::Arc;

use object_store::MultipartId;
use object_store::list::PaginatedListStore;
use object_store::multipart::{MultipartStore, PartId};
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};

/// Attempts of a completion or copy before the client gets the error.
const LONG_ATTEMPTS: usize = 3;

#[derive(Clone)]
pub struct Stores {
    pub store: Arc<dyn ObjectStore>,
    pub multipart: Arc<dyn MultipartStore>,
    /// Stateless paged listing (S3, GCS, Azure); `None` falls back to one delimiter listing.
    pub pages: Option<Arc<dyn PaginatedListStore>>,
    /// The same store under the long timeout, without object_store's own retries (ours check
    /// first).
    pub long: Arc<dyn ObjectStore>,
    pub long_multipart: Arc<dyn MultipartStore>,
    pub naming: super::names::Naming,
}

/// What a finished long request must have left at its path, to tell a lost reply from a failure.
#[derive(Debug, Clone)]
pub struct Expected {
    pub size: u64,
    /// The e_tag of the object the path held before the request (`None`: nothing was there).
    pub replaces: Option<String>,
}

impl Stores {
    /// One client for both, for stores without timeouts (in-memory).
    pub fn single<S: ObjectStore + MultipartStore>(store: Arc<S>) -> Self {
        Self {
            store: store.clone(),
            multipart: store.clone(),
            pages: None,
            long: store.clone(),
            long_multipart: store,
            naming: super::names::Naming::Raw,
        }
    }

    /// True when `path` now holds what the request was to leave there.
    async fn landed(&self, path: &Path, expected: &Expected) -> bool {
        match self.store.head(path).await {
            Ok(meta) => {
                meta.size == expected.size && (expected.replaces.is_none() || meta.e_tag != expected.replaces)
            }
            Err(_) => false,
        }
    }

    /// The e_tag of what `path` holds now, for `Expected::replaces`.
    pub async fn current_tag(&self, path: &Path) -> object_store::Result<Option<String>> {
        match self.store.head(path).await {
            Ok(meta) => Ok(Some(meta.e_tag.unwrap_or_default())),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Completes a multipart upload under the long timeout (see the module doc).
    pub async fn complete(
        &self,
        path: &Path,
        id: &MultipartId,
        parts: Vec<PartId>,
        expected: &Expected,
    ) -> object_store::Result<()> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let error = match self.long_multipart.complete_multipart(path, id, parts.clone()).await {
                Ok(_) => return Ok(()),
                Err(e) => e,
            };
            if self.landed(path, expected).await {
                tracing::info!(%path, "multipart completion answered with an error but the object is complete");
                return Ok(());
            }
            if attempt >= LONG_ATTEMPTS || !uncertain(&error) {
                return Err(error);
            }
            tracing::warn!(%path, attempt, "multipart completion failed, asking again: {error}");
        }
    }

    /// Copies `from` to `to` inside the store under the long timeout, checked like `complete`.
    pub async fn copy(&self, from: &Path, to: &Path) -> object_store::Result<()> {
        let source = self.store.head(from).await?;
        let expected = Expected { size: source.size, replaces: self.current_tag(to).await? };
        let mut attempt = 0;
        loop {
            attempt += 1;
            let error = match self.long.copy(from, to).await {
                Ok(()) => return Ok(()),
                Err(e) => e,
            };
            if self.landed(to, &expected).await {
                tracing::info!(%to, "copy answered with an error but the object is complete");
                return Ok(());
            }
            if attempt >= LONG_ATTEMPTS || !uncertain(&error) {
                return Err(error);
            }
            tracing::warn!(%to, attempt, "copy failed, asking again: {error}");
        }
    }
}

/// Errors that do not say the store refused: a timeout, a lost connection, a server error.
fn uncertain(error: &object_store::Error) -> bool {
    !matches!(
        error,
        object_store::Error::NotFound { .. }
            | object_store::Error::AlreadyExists { .. }
            | object_store::Error::Precondition { .. }
            | object_store::Error::NotModified { .. }
            | object_store::Error::NotSupported { .. }
            | object_store::Error::NotImplemented { .. }
            | object_store::Error::PermissionDenied { .. }
            | object_store::Error::Unauthenticated { .. }
    )
}
