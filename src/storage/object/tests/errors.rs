//! How the store's refusals reach the session: as "access refused", with the store's text kept
//! for the log only.

use std::io::ErrorKind;

use super::super::store_error;
use crate::storage::StorageError;

fn refusal(e: object_store::Error) -> (ErrorKind, String) {
    match store_error(e) {
        StorageError::Io(io) => (io.kind(), io.to_string()),
        other => panic!("not an I/O error: {other:?}"),
    }
}

#[test]
fn denied_and_unauthenticated_are_access_refused() {
    let source = || "403 Forbidden from https://bucket.example/key".into();
    let denied = object_store::Error::PermissionDenied { path: "prefix/file".into(), source: source() };
    let unauthenticated =
        object_store::Error::Unauthenticated { path: "prefix/file".into(), source: source() };
    for e in [denied, unauthenticated] {
        let (kind, cause) = refusal(e);
        assert_eq!(kind, ErrorKind::PermissionDenied);
        // The cause (for the log) still says what the store said.
        assert!(cause.contains("403 Forbidden"), "{cause}");
    }
    let generic = object_store::Error::Generic { store: "S3", source: source() };
    assert_eq!(refusal(generic).0, ErrorKind::Other);
}
