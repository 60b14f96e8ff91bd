//! TLS settings shared by FTPS and HTTPS: one rustls `ServerConfig` with the aws-lc-rs
//! provider, the configured versions (1.2 and 1.3 by default; older never) and cipher-suite
//! allow-list, the certificate from PEM files or a self-signed one generated once into the
//! data directory, and session resumption (FTPS data channels resume the control session).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::config::{TlsConfig, TlsVersion};

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("tls.cert_file {path}: {message}")]
    Certificate { path: PathBuf, message: String },
    #[error("tls.key_file {path}: {message}")]
    Key { path: PathBuf, message: String },
    #[error("tls.cipher_suites: {0}")]
    CipherSuites(String),
    #[error("cannot generate a self-signed certificate: {0}")]
    Generate(String),
    #[error("TLS configuration refused: {0}")]
    Rustls(#[from] rustls::Error),
}

/// Builds the server configuration; `data_dir` holds the generated certificate when no files
/// are configured.
pub fn server_config(tls: &TlsConfig, data_dir: &Path) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let (cert_path, key_path) = match (&tls.cert_file, &tls.key_file) {
        (Some(cert), Some(key)) => (cert.clone(), key.clone()),
        _ => self_signed(&data_dir.join("tls"))?,
    };
    let certs = CertificateDer::pem_file_iter(&cert_path)
        .and_then(|iter| iter.collect::<Result<Vec<_>, _>>())
        .map_err(|e| TlsError::Certificate { path: cert_path.clone(), message: e.to_string() })?;
    if certs.is_empty() {
        return Err(TlsError::Certificate { path: cert_path, message: "no certificate found".into() });
    }
    let key = PrivateKeyDer::from_pem_file(&key_path)
        .map_err(|e| TlsError::Key { path: key_path.clone(), message: e.to_string() })?;

    let mut provider = rustls::crypto::aws_lc_rs::default_provider();
    if !tls.cipher_suites.is_empty() {
        let known: Vec<String> =
            provider.cipher_suites.iter().filter_map(|s| s.suite().as_str().map(String::from)).collect();
        for name in &tls.cipher_suites {
            if !known.contains(name) {
                return Err(TlsError::CipherSuites(format!(
                    "`{name}` unknown; choose from {}",
                    known.join(", ")
                )));
            }
        }
        provider
            .cipher_suites
            .retain(|s| s.suite().as_str().is_some_and(|n| tls.cipher_suites.iter().any(|c| c == n)));
    }
    let versions: Vec<&'static rustls::SupportedProtocolVersion> =
        [(TlsVersion::Tls12, &rustls::version::TLS12), (TlsVersion::Tls13, &rustls::version::TLS13)]
            .into_iter()
            .filter(|(v, _)| (tls.min_version..=tls.max_version).contains(v))
            .map(|(_, v)| v)
            .collect();
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(provider))
        .with_protocol_versions(&versions)?
        .with_no_client_auth()
        .with_single_cert(certs, key)?;
    resume_on_its_own(&mut config)?;
    Ok(Arc::new(config))
}

/// The same settings and certificate with a session cache and ticket key of its own, so that
/// one listener's clients (HTTPS) never evict another's sessions (FTPS data channels).
pub fn with_own_resumption(shared: &rustls::ServerConfig) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let mut config = shared.clone();
    resume_on_its_own(&mut config)?;
    Ok(Arc::new(config))
}

/// Resumption by session ID (TLS 1.2) and by ticket (TLS 1.3): FileZilla and lftp insist that
/// FTPS data connections resume the control connection's session.
fn resume_on_its_own(config: &mut rustls::ServerConfig) -> Result<(), TlsError> {
    config.session_storage = rustls::server::ServerSessionMemoryCache::new(4096);
    config.ticketer = rustls::crypto::aws_lc_rs::Ticketer::new()?;
    config.send_tls13_tickets = 2;
    Ok(())
}

/// Loads or generates `dir/cert.pem` and `dir/key.pem` (a self-signed certificate for
/// localhost, kept so that clients can pin it).
fn self_signed(dir: &Path) -> Result<(PathBuf, PathBuf), TlsError> {
    let cert_path = dir.join("cert.pem");
    let key_path = dir.join("key.pem");
    if cert_path.exists() && key_path.exists() {
        return Ok((cert_path, key_path));
    }
    let names = vec!["localhost".to_string(), "127.0.0.1".to_string(), "::1".to_string()];
    let generated =
        rcgen::generate_simple_self_signed(names).map_err(|e| TlsError::Generate(e.to_string()))?;
    let write = |path: &Path, text: String, mode: u32| -> Result<(), TlsError> {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let err = |e: std::io::Error| TlsError::Generate(format!("{}: {e}", path.display()));
        std::fs::create_dir_all(dir).map_err(err)?;
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(mode)
            .open(path)
            .map_err(err)?;
        file.write_all(text.as_bytes()).map_err(err)
    };
    write(&key_path, generated.signing_key.serialize_pem(), 0o600)?;
    write(&cert_path, generated.cert.pem(), 0o644)?;
    tracing::info!(path = %cert_path.display(), "generated a self-signed TLS certificate");
    Ok((cert_path, key_path))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> TlsConfig {
        TlsConfig {
            cert_file: None,
            key_file: None,
            min_version: TlsVersion::Tls12,
            max_version: TlsVersion::Tls13,
            cipher_suites: Vec::new(),
        }
    }

    #[test]
    fn self_signed_certificate_is_generated_once_and_suites_are_checked() {
        let dir = tempfile::tempdir().unwrap();
        server_config(&config(), dir.path()).unwrap();
        let first = std::fs::read(dir.path().join("tls/cert.pem")).unwrap();
        server_config(&config(), dir.path()).unwrap();
        assert_eq!(std::fs::read(dir.path().join("tls/cert.pem")).unwrap(), first);
        let mut only13 = config();
        only13.cipher_suites = vec!["TLS13_AES_128_GCM_SHA256".into()];
        server_config(&only13, dir.path()).unwrap();
        let mut bogus = config();
        bogus.cipher_suites = vec!["TLS_RSA_WITH_RC4_128_MD5".into()];
        assert!(matches!(server_config(&bogus, dir.path()), Err(TlsError::CipherSuites(_))));
    }
}
