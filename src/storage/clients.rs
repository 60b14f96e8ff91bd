//! Builds the object_store clients of an S3, GCS or Azure backend: one for everyday requests
//! (`request_timeout`, object_store's retries) and one for completions and copies
//! (`complete_timeout`, retried by `object::stores` after a HEAD instead).

use std::sync::Arc;
use std::time::Duration;

use object_store::list::PaginatedListStore;
use object_store::multipart::MultipartStore;
use object_store::{ClientConfigKey, ObjectStore, RetryConfig};

use super::object::names::Naming;
use super::object::stores::Stores;
use crate::config::{Backend, StorageConfig};

/// object_store reads durations in humantime's notation.
fn duration_text(duration: Duration) -> String {
    format!("{}ms", duration.as_millis())
}

/// The two clients of `config`'s backend (S3, GCS or Azure).
pub fn open(config: &StorageConfig) -> Result<Stores, String> {
    let retry = RetryConfig {
        max_retries: config.max_retries,
        retry_timeout: config.retry_timeout,
        ..Default::default()
    };
    // The long client retries nothing itself: a lost reply is first checked with a HEAD.
    let no_retry = RetryConfig { max_retries: 0, ..Default::default() };
    let everyday = (duration_text(config.request_timeout), retry);
    let long = (duration_text(config.complete_timeout), no_retry);
    let build_error = |e: object_store::Error| format!("storage: {e}");
    match config.backend {
        Backend::S3 => {
            use object_store::aws::AmazonS3ConfigKey as K;
            let builder = s3_builder(config);
            let build = |(timeout, retry): (String, RetryConfig)| {
                builder
                    .clone()
                    .with_retry(retry)
                    .with_config(K::Client(ClientConfigKey::Timeout), timeout)
                    .build()
            };
            Ok(stores(build(everyday).map_err(build_error)?, build(long).map_err(build_error)?, Naming::Raw))
        }
        Backend::Gcs => {
            use object_store::gcp::GoogleConfigKey as K;
            let mut builder =
                object_store::gcp::GoogleCloudStorageBuilder::from_env().with_bucket_name(&config.bucket);
            if let Some(file) = &config.service_account_file {
                builder = builder.with_service_account_path(file.to_string_lossy());
            }
            if let Some(endpoint) = &config.endpoint {
                builder = builder.with_base_url(endpoint);
            }
            let build = |(timeout, retry): (String, RetryConfig)| {
                builder
                    .clone()
                    .with_retry(retry)
                    .with_config(K::Client(ClientConfigKey::Timeout), timeout)
                    .build()
            };
            Ok(stores(
                build(everyday).map_err(build_error)?,
                build(long).map_err(build_error)?,
                Naming::UrlEncoded,
            ))
        }
        Backend::Azure => {
            use object_store::azure::AzureConfigKey as K;
            let mut builder = object_store::azure::MicrosoftAzureBuilder::from_env()
                .with_container_name(&config.bucket)
                .with_allow_http(config.allow_http);
            if let Some(account) = &config.account {
                builder = builder.with_account(account);
            }
            if let Some(endpoint) = &config.endpoint {
                builder = builder.with_endpoint(endpoint.clone());
            }
            if let Some(key) = &config.secret_access_key {
                builder = builder.with_access_key(key.expose());
            }
            let build = |(timeout, retry): (String, RetryConfig)| {
                builder
                    .clone()
                    .with_retry(retry)
                    .with_config(K::Client(ClientConfigKey::Timeout), timeout)
                    .build()
            };
            Ok(stores(build(everyday).map_err(build_error)?, build(long).map_err(build_error)?, Naming::Raw))
        }
        Backend::Local | Backend::Memory => Err("storage: not an object-store client backend".into()),
    }
}

fn stores<S: ObjectStore + MultipartStore + PaginatedListStore>(store: S, long: S, naming: Naming) -> Stores {
    let (store, long) = (Arc::new(store), Arc::new(long));
    Stores {
        store: store.clone(),
        multipart: store.clone(),
        pages: Some(store),
        long: long.clone(),
        long_multipart: long,
        naming,
    }
}

fn s3_builder(config: &StorageConfig) -> object_store::aws::AmazonS3Builder {
    let mut builder = object_store::aws::AmazonS3Builder::from_env()
        .with_bucket_name(&config.bucket)
        .with_allow_http(config.allow_http)
        .with_virtual_hosted_style_request(!config.path_style);
    if let Some(endpoint) = &config.endpoint {
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
