//! `[storage]` and `[storages.NAME]`: one typed variant per backend, holding only the settings
//! that backend uses.
//!
//! Every key of every backend is still read and checked whatever `backend` says (one reference
//! file lists them all, and a typo must be reported even in a key the backend ignores); a
//! variant keeps only its own.

use std::path::{Path, PathBuf};
use std::time::Duration;

use toml::Table;

use super::reader::{KeyError, Reader};
use crate::types::Secret;

/// The name mounts use for `[storage]`.
pub const DEFAULT_STORAGE: &str = "default";

/// One backend.
#[derive(Debug, Clone)]
pub enum StorageConfig {
    /// Files under `root` on local disk; users' homes are inside it.
    Local {
        root: PathBuf,
    },
    /// Objects in this process's memory, lost at exit (tests, trials).
    Memory(ObjectTuning),
    S3(S3Config),
    Gcs(GcsConfig),
    Azure(AzureConfig),
}

impl StorageConfig {
    /// The `backend` value that selects this variant (also the metrics label).
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Local { .. } => "local",
            Self::Memory(_) => "memory",
            Self::S3(_) => "s3",
            Self::Gcs(_) => "gcs",
            Self::Azure(_) => "azure",
        }
    }

    /// The root folder of a local backend.
    pub fn local_root(&self) -> Option<&Path> {
        match self {
            Self::Local { root } => Some(root),
            _ => None,
        }
    }
}

/// How an object backend (memory included) lays out and moves objects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectTuning {
    /// Key prefix inside the bucket under which users' homes live.
    pub prefix: String,
    pub part_size: usize,
    pub parts_in_flight: usize,
    pub reorder_window: usize,
    /// Bytes of early writes all uploads of the backend hold in memory together.
    pub reorder_budget: usize,
    pub read_block: usize,
    /// Time and mode changes on object backends (which cannot store them).
    pub object_attributes: ObjectAttributes,
}

/// What every remote object store (S3, GCS, Azure) needs of its client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreClient {
    /// Bucket (S3, GCS) or container (Azure).
    pub bucket: String,
    /// S3-compatible or emulator endpoint (MinIO, moto, azurite); `None`: the provider's.
    pub endpoint: Option<String>,
    /// Retries of a failed store request, and how long retrying may take before the client gets
    /// an error (object_store's default is 3 minutes, which clients read as a hang).
    pub max_retries: usize,
    pub retry_timeout: Duration,
    /// Limit of one everyday store request (object_store's `timeout`).
    pub request_timeout: Duration,
    /// Limit of one multipart completion or server-side copy, which take as long as the object
    /// is big (S3 can spend minutes on one).
    pub complete_timeout: Duration,
}

#[derive(Debug, Clone)]
pub struct S3Config {
    pub objects: ObjectTuning,
    pub client: StoreClient,
    pub region: Option<String>,
    /// Plain-HTTP endpoints (emulators only).
    pub allow_http: bool,
    /// Path-style requests (most S3-compatible stores and emulators need them).
    pub path_style: bool,
    /// Send an x-amz-checksum-sha256 with every upload: buckets with Object Lock require an
    /// integrity checksum on writes (the audit trail's WORM export).
    pub checksum_sha256: bool,
    /// Static credentials; `None`: the environment or the platform (IMDSv2, IRSA, Pod
    /// Identity, ECS roles) through object_store.
    pub access_key_id: Option<Secret<String>>,
    pub secret_access_key: Option<Secret<String>>,
}

#[derive(Debug, Clone)]
pub struct GcsConfig {
    pub objects: ObjectTuning,
    pub client: StoreClient,
    /// Service account JSON; `None`: the environment or GKE workload identity.
    pub service_account_file: Option<PathBuf>,
}

#[derive(Debug, Clone)]
pub struct AzureConfig {
    pub objects: ObjectTuning,
    /// `bucket` is the container.
    pub client: StoreClient,
    /// Storage account.
    pub account: Option<String>,
    /// Plain-HTTP endpoints (azurite only).
    pub allow_http: bool,
    /// The account key (key `secret_access_key`); `None`: the environment or managed identity.
    pub access_key: Option<Secret<String>>,
}

/// Setstat of times and modes on an object backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ObjectAttributes {
    /// Succeed without effect: clients that preserve timestamps keep working.
    Ignore,
    /// Answer "unsupported".
    Refuse,
}

/// A rename between two mounts cannot be a backend rename.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CrossMountRename {
    /// Copy the file to the other mount, then delete the original.
    Copy,
    /// Refuse, as if the backend could not rename.
    Refuse,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Local,
    Memory,
    S3,
    Gcs,
    Azure,
}

/// `[storage]`: the default backend and what a rename across mounts does.
pub(super) fn parse_default(
    section: (&str, Table),
    data_dir: &Path,
    errors: &mut Vec<KeyError>,
) -> (StorageConfig, CrossMountRename) {
    let mut r = Reader::new(section.0, section.1, errors);
    let storage = parse_storage(&mut r, data_dir.join("files"));
    let cross_mount_rename = r.choice(
        "cross_mount_rename",
        CrossMountRename::Copy,
        &[("copy", CrossMountRename::Copy), ("refuse", CrossMountRename::Refuse)],
    );
    r.finish();
    (storage, cross_mount_rename)
}

/// The keys of one backend, shared by `[storage]` and each `[storages.NAME]`.
fn parse_storage(r: &mut Reader<'_>, default_root: PathBuf) -> StorageConfig {
    let kind = r.choice(
        "backend",
        Kind::Local,
        &[
            ("local", Kind::Local),
            ("memory", Kind::Memory),
            ("s3", Kind::S3),
            ("gcs", Kind::Gcs),
            ("azure", Kind::Azure),
        ],
    );
    let root = r.path("root", default_root);
    let bucket = r.string("bucket", "");
    let prefix = r.string("prefix", "");
    let endpoint = r.optional_string("endpoint");
    let region = r.optional_string("region");
    let allow_http = r.bool("allow_http", false);
    let path_style = r.bool("path_style", false);
    let checksum_sha256 = r.choice("checksum", false, &[("sha256", true), ("", false)]);
    let account = r.optional_string("account");
    let service_account_file = r.optional_path("service_account_file");
    let access_key_id = r.optional_secret("access_key_id");
    let secret_access_key = r.optional_secret("secret_access_key");
    let objects = ObjectTuning {
        prefix,
        part_size: r.size("part_size", 8 << 20, 5 << 20, 5 << 30) as usize,
        parts_in_flight: r.integer("parts_in_flight", 2, 1, 64) as usize,
        reorder_window: r.size("reorder_window", 16 << 20, 1 << 20, 1 << 30) as usize,
        reorder_budget: r.size("reorder_budget", 256 << 20, 0, 1 << 40) as usize,
        read_block: r.size("read_block", 4 << 20, 64 << 10, 256 << 20) as usize,
        object_attributes: r.choice(
            "object_attributes",
            ObjectAttributes::Ignore,
            &[("ignore", ObjectAttributes::Ignore), ("refuse", ObjectAttributes::Refuse)],
        ),
    };
    let client = StoreClient {
        bucket,
        endpoint,
        max_retries: r.integer("max_retries", 5, 0, 100) as usize,
        retry_timeout: r.duration("retry_timeout", Duration::from_secs(30)),
        request_timeout: r.duration("request_timeout", Duration::from_secs(30)),
        complete_timeout: r.duration("complete_timeout", Duration::from_secs(15 * 60)),
    };
    if client.request_timeout < Duration::from_secs(1) {
        r.fail("request_timeout", "at least 1s: a store request needs time to answer");
    }
    if client.complete_timeout < client.request_timeout {
        r.fail("complete_timeout", "at least request_timeout: completing a large upload takes longest");
    }
    if matches!(kind, Kind::S3 | Kind::Gcs | Kind::Azure) && client.bucket.is_empty() {
        r.fail("bucket", "an object backend needs a bucket (container for Azure)");
    }
    match kind {
        Kind::Local => StorageConfig::Local { root },
        Kind::Memory => StorageConfig::Memory(objects),
        Kind::S3 => StorageConfig::S3(S3Config {
            objects,
            client,
            region,
            allow_http,
            path_style,
            checksum_sha256,
            access_key_id,
            secret_access_key,
        }),
        Kind::Gcs => StorageConfig::Gcs(GcsConfig { objects, client, service_account_file }),
        Kind::Azure => StorageConfig::Azure(AzureConfig {
            objects,
            client,
            account,
            allow_http,
            access_key: secret_access_key,
        }),
    }
}

/// `[storages.NAME]` tables: further backends that users' mounts refer to by name.
pub(super) fn parse_named(
    section: (&str, Table),
    data_dir: &Path,
    errors: &mut Vec<KeyError>,
) -> Vec<(String, StorageConfig)> {
    let mut named = Vec::new();
    let mut r = Reader::new(section.0, section.1, errors);
    for name in r.keys() {
        let valid = !name.is_empty()
            && name != DEFAULT_STORAGE
            && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-');
        let table = r.section(&name);
        if !valid {
            r.fail(
                &name,
                format!(
                    "a storage name is lowercase letters, digits, `_` and `-`, and not `{DEFAULT_STORAGE}`"
                ),
            );
            continue;
        }
        let dotted = r.dotted(&name);
        let mut inner = Reader::new(&dotted, table, r.errors());
        let storage = parse_storage(&mut inner, data_dir.join(&name));
        inner.finish();
        named.push((name, storage));
    }
    r.finish();
    named
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> (StorageConfig, Vec<KeyError>) {
        let mut errors = Vec::new();
        let (storage, _) = parse_default(("storage", text.parse().unwrap()), Path::new("/d"), &mut errors);
        (storage, errors)
    }

    #[test]
    fn each_backend_keeps_only_its_own_settings() {
        let (s3, errors) = parse(
            "backend = \"s3\"\nbucket = \"b\"\nregion = \"eu-west-1\"\npath_style = true\n\
             account = \"ignored\"\nchecksum = \"sha256\"\n",
        );
        assert!(errors.is_empty(), "{errors:?}");
        let StorageConfig::S3(s3) = s3 else { panic!("expected s3, got {s3:?}") };
        assert_eq!((s3.client.bucket.as_str(), s3.region.as_deref()), ("b", Some("eu-west-1")));
        assert!(s3.path_style && s3.checksum_sha256);

        let (azure, _) = parse("backend = \"azure\"\nbucket = \"c\"\nsecret_access_key = \"k\"\n");
        let StorageConfig::Azure(azure) = azure else { panic!("expected azure, got {azure:?}") };
        assert_eq!(azure.access_key.as_ref().map(|k| k.expose().as_str()), Some("k"));

        let (local, _) = parse("bucket = \"unused\"\n");
        assert_eq!(local.local_root(), Some(Path::new("/d/files")));
    }

    #[test]
    fn enum_keys_name_their_accepted_values() {
        let (_, errors) = parse("backend = \"ftp\"\nchecksum = \"md5\"\nobject_attributes = \"keep\"\n");
        let messages: Vec<_> = errors.iter().map(ToString::to_string).collect();
        assert_eq!(
            messages,
            [
                "storage.backend: expected \"local\", \"memory\", \"s3\", \"gcs\" or \"azure\", found `ftp`",
                "storage.checksum: expected \"sha256\" or \"\" (none), found `md5`",
                "storage.object_attributes: expected \"ignore\" or \"refuse\", found `keep`",
            ]
        );
        let (_, errors) = parse("backend = \"gcs\"\n");
        assert_eq!(
            errors[0].to_string(),
            "storage.bucket: an object backend needs a bucket (container for Azure)"
        );
    }
}
