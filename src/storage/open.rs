//! Opens a configured backend: local disk, memory, or the object_store clients of S3, GCS or
//! Azure. An object backend gets two clients: one for everyday requests (`request_timeout`,
//! object_store's retries) and one for completions and copies (`complete_timeout`, retried by
//! `object::stores` after a HEAD instead).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use object_store::aws::{AmazonS3, AmazonS3Builder, AmazonS3ConfigKey};
use object_store::azure::{AzureConfigKey, MicrosoftAzure, MicrosoftAzureBuilder};
use object_store::gcp::{GoogleCloudStorage, GoogleCloudStorageBuilder, GoogleConfigKey};
use object_store::list::PaginatedListStore;
use object_store::multipart::MultipartStore;
use object_store::{ClientConfigKey, ObjectStore, RetryConfig};

use super::object::names::Naming;
use super::object::stores::Stores;
use super::{LocalStorage, ObjectOptions, ObjectStorage, Storage, metered};
use crate::config::{
    AzureConfig, GcsConfig, ObjectAttributes, ObjectTuning, S3Config, StorageConfig, StoreClient,
};

/// Why a configured backend cannot be opened. `section` is where it is configured (`storage`
/// or `storages.NAME`), so the message names the key to fix.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// The local root cannot be created or opened.
    #[error("{section}.root {}: {source}", path.display())]
    LocalRoot {
        section: String,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// object_store refused the settings (an endpoint, region, account or credential file).
    #[error("{section}: cannot set up the {kind} client: {source}")]
    Client {
        section: String,
        kind: &'static str,
        #[source]
        source: object_store::Error,
    },
}

/// Opens the backend configured under `section`, its requests measured (`metered.rs`).
pub fn open(section: &str, config: &StorageConfig) -> Result<Arc<dyn Storage>, OpenError> {
    let client_error =
        |source| OpenError::Client { section: section.to_string(), kind: config.kind(), source };
    let backend: Arc<dyn Storage> = match config {
        StorageConfig::Local { root } => Arc::new(LocalStorage::new(root).map_err(|source| {
            OpenError::LocalRoot { section: section.to_string(), path: root.clone(), source }
        })?),
        StorageConfig::Memory(objects) => {
            object(Stores::single(Arc::new(object_store::memory::InMemory::new())), objects)
        }
        StorageConfig::S3(s3) => {
            object(clients(s3_builder(s3), &s3.client).map_err(client_error)?, &s3.objects)
        }
        StorageConfig::Gcs(gcs) => {
            object(clients(gcs_builder(gcs), &gcs.client).map_err(client_error)?, &gcs.objects)
        }
        StorageConfig::Azure(azure) => {
            object(clients(azure_builder(azure), &azure.client).map_err(client_error)?, &azure.objects)
        }
    };
    Ok(metered::Metered::wrap(backend, config.kind()))
}

fn object(stores: Stores, objects: &ObjectTuning) -> Arc<dyn Storage> {
    let options = ObjectOptions {
        part_size: objects.part_size,
        parts_in_flight: objects.parts_in_flight,
        reorder_window: objects.reorder_window,
        reorder_budget: objects.reorder_budget,
        read_block: objects.read_block,
        ignore_attributes: objects.object_attributes == ObjectAttributes::Ignore,
    };
    Arc::new(ObjectStorage::with_stores(stores, &objects.prefix, options))
}

/// A provider's builder, configured but for the retry policy and the request timeout that
/// tell its two clients apart.
trait ClientBuilder: Clone {
    type Store: ObjectStore + MultipartStore + PaginatedListStore;
    /// How the provider spells keys on the wire.
    const NAMING: Naming;
    fn build_with(self, retry: RetryConfig, timeout: String) -> object_store::Result<Self::Store>;
}

impl ClientBuilder for AmazonS3Builder {
    type Store = AmazonS3;
    const NAMING: Naming = Naming::Raw;
    fn build_with(self, retry: RetryConfig, timeout: String) -> object_store::Result<AmazonS3> {
        self.with_retry(retry)
            .with_config(AmazonS3ConfigKey::Client(ClientConfigKey::Timeout), timeout)
            .build()
    }
}

impl ClientBuilder for GoogleCloudStorageBuilder {
    type Store = GoogleCloudStorage;
    const NAMING: Naming = Naming::Raw;
    fn build_with(self, retry: RetryConfig, timeout: String) -> object_store::Result<GoogleCloudStorage> {
        self.with_retry(retry).with_config(GoogleConfigKey::Client(ClientConfigKey::Timeout), timeout).build()
    }
}

impl ClientBuilder for MicrosoftAzureBuilder {
    type Store = MicrosoftAzure;
    const NAMING: Naming = Naming::Raw;
    fn build_with(self, retry: RetryConfig, timeout: String) -> object_store::Result<MicrosoftAzure> {
        self.with_retry(retry).with_config(AzureConfigKey::Client(ClientConfigKey::Timeout), timeout).build()
    }
}

/// The everyday and the long client of one backend, from one builder.
fn clients<B: ClientBuilder>(builder: B, client: &StoreClient) -> object_store::Result<Stores> {
    let retry = RetryConfig {
        max_retries: client.max_retries,
        retry_timeout: client.retry_timeout,
        ..Default::default()
    };
    // The long client retries nothing itself: a lost reply is first checked with a HEAD.
    let no_retry = RetryConfig { max_retries: 0, ..Default::default() };
    let store = Arc::new(builder.clone().build_with(retry, duration_text(client.request_timeout))?);
    let long = Arc::new(builder.build_with(no_retry, duration_text(client.complete_timeout))?);
    Ok(Stores {
        store: store.clone(),
        multipart: store.clone(),
        pages: Some(store),
        long: long.clone(),
        long_multipart: long,
        naming: B::NAMING,
    })
}

/// object_store reads durations in humantime's notation.
fn duration_text(duration: Duration) -> String {
    format!("{}ms", duration.as_millis())
}

fn s3_builder(config: &S3Config) -> AmazonS3Builder {
    let mut builder = AmazonS3Builder::from_env()
        .with_bucket_name(&config.client.bucket)
        .with_allow_http(config.allow_http)
        .with_virtual_hosted_style_request(!config.path_style);
    if let Some(endpoint) = &config.client.endpoint {
        builder = builder.with_endpoint(endpoint);
    }
    if let Some(region) = &config.region {
        builder = builder.with_region(region);
    }
    if config.checksum_sha256 {
        // The checksum itself (x-amz-checksum-sha256), and the header SDKs send to announce
        // it, which some S3-compatible stores look for before accepting Object Lock writes.
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert("x-amz-sdk-checksum-algorithm", reqwest::header::HeaderValue::from_static("SHA256"));
        builder = builder
            .with_checksum_algorithm(object_store::aws::Checksum::SHA256)
            // Replaces the client options, so `allow_http` is set again here.
            .with_client_options(
                object_store::ClientOptions::new()
                    .with_allow_http(config.allow_http)
                    .with_default_headers(headers),
            );
    }
    if let (Some(id), Some(secret)) = (&config.access_key_id, &config.secret_access_key) {
        builder = builder.with_access_key_id(id.expose()).with_secret_access_key(secret.expose());
    }
    builder
}

fn gcs_builder(config: &GcsConfig) -> GoogleCloudStorageBuilder {
    let mut builder = GoogleCloudStorageBuilder::from_env().with_bucket_name(&config.client.bucket);
    if let Some(file) = &config.service_account_file {
        builder = builder.with_service_account_path(file.to_string_lossy());
    }
    if let Some(endpoint) = &config.client.endpoint {
        builder = builder.with_base_url(endpoint);
    }
    builder
}

fn azure_builder(config: &AzureConfig) -> MicrosoftAzureBuilder {
    let mut builder = MicrosoftAzureBuilder::from_env()
        .with_container_name(&config.client.bucket)
        .with_allow_http(config.allow_http);
    if let Some(account) = &config.account {
        builder = builder.with_account(account);
    }
    if let Some(endpoint) = &config.client.endpoint {
        builder = builder.with_endpoint(endpoint.clone());
    }
    if let Some(key) = &config.access_key {
        builder = builder.with_access_key(key.expose());
    }
    builder
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_local_root_that_cannot_be_made_names_its_key() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("plain-file");
        std::fs::write(&file, b"x").unwrap();
        let config = StorageConfig::Local { root: file.join("below") };
        let Err(error) = open("storages.archive", &config) else { panic!("a root below a file opened") };
        assert!(matches!(error, OpenError::LocalRoot { .. }), "{error:?}");
        assert!(error.to_string().starts_with("storages.archive.root "), "{error}");
    }
}
