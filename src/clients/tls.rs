//! The rustls client config for outbound TLS (LDAP, syslog over TLS): the certificates of a CA
//! file when one is configured, else the platform's roots (rustls-native-certs).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

/// A CA file that cannot be used; the caller names the config key.
#[derive(Debug, thiserror::Error)]
#[error("{}: {message}", path.display())]
pub struct ClientTlsError {
    pub path: PathBuf,
    pub message: String,
}

/// The certificates of the PEM file at `path`.
pub fn ca_certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, ClientTlsError> {
    let failed = |message: String| ClientTlsError { path: path.to_path_buf(), message };
    let pem = std::fs::read(path).map_err(|e| failed(e.to_string()))?;
    CertificateDer::pem_slice_iter(&pem).map(|cert| cert.map_err(|e| failed(e.to_string()))).collect()
}

/// A client config trusting the CA file at `ca_file`, or the platform's roots without one.
pub fn client_config(ca_file: Option<&Path>) -> Result<Arc<rustls::ClientConfig>, ClientTlsError> {
    let mut roots = rustls::RootCertStore::empty();
    match ca_file {
        Some(path) => {
            for cert in ca_certificates(path)? {
                roots
                    .add(cert)
                    .map_err(|e| ClientTlsError { path: path.to_path_buf(), message: e.to_string() })?;
            }
        }
        None => {
            for cert in rustls_native_certs::load_native_certs().certs {
                let _ = roots.add(cert);
            }
        }
    }
    Ok(Arc::new(rustls::ClientConfig::builder().with_root_certificates(roots).with_no_client_auth()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ca_file_is_read_and_a_bad_one_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let generated = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
        let ca = dir.path().join("ca.pem");
        std::fs::write(&ca, generated.cert.pem()).unwrap();
        assert_eq!(ca_certificates(&ca).unwrap().len(), 1);
        client_config(Some(&ca)).unwrap();
        client_config(None).unwrap();
        let missing = dir.path().join("missing.pem");
        let error = client_config(Some(&missing)).unwrap_err();
        assert!(error.to_string().starts_with(&format!("{}: ", missing.display())), "{error}");
    }
}
