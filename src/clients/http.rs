//! The reqwest client for outbound HTTP (the authentication service, the audit HTTP sink, and
//! later webhooks): a whole-request timeout, no redirects (a redirect could carry credentials
//! elsewhere), and the CA file's certificates added to the roots when one is configured.

use std::path::Path;
use std::time::Duration;

use super::tls::{ClientTlsError, ca_certificates};

/// What differs between the users of an HTTP client.
#[derive(Debug, Clone, Copy)]
pub struct HttpClient<'a> {
    /// The whole request, connection included.
    pub timeout: Duration,
    /// Setting up the connection alone, when it needs a deadline of its own.
    pub connect_timeout: Option<Duration>,
    /// Extra roots to trust (a private CA), on top of the platform's.
    pub ca_file: Option<&'a Path>,
}

/// Why no client could be built.
#[derive(Debug, thiserror::Error)]
pub enum HttpClientError {
    #[error("{0}")]
    CaFile(#[from] ClientTlsError),
    #[error("{0}")]
    Build(#[from] reqwest::Error),
}

/// Builds the client `settings` describe.
pub fn http_client(settings: HttpClient<'_>) -> Result<reqwest::Client, HttpClientError> {
    let mut builder =
        reqwest::Client::builder().timeout(settings.timeout).redirect(reqwest::redirect::Policy::none());
    if let Some(connect) = settings.connect_timeout {
        builder = builder.connect_timeout(connect);
    }
    if let Some(path) = settings.ca_file {
        for cert in ca_certificates(path)? {
            let cert = reqwest::Certificate::from_der(&cert)
                .map_err(|e| ClientTlsError { path: path.to_path_buf(), message: e.to_string() })?;
            builder = builder.add_root_certificate(cert);
        }
    }
    Ok(builder.build()?)
}
