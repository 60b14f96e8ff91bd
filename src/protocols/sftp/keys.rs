//! SSH host keys: loaded from files (so every replica presents one identity) or generated once
//! into the data directory: one Ed25519 and one ECDSA P-256 key. No RSA host keys: the `rsa`
//! crate has an unpatched timing advisory for private-key operations.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use russh::keys::ssh_key::LineEnding;
use russh::keys::{Algorithm, EcdsaCurve, PrivateKey};

#[derive(Debug, thiserror::Error)]
pub enum HostKeyError {
    #[error("host key {path}: {message}")]
    Load { path: PathBuf, message: String },
    #[error("cannot write host key {path}: {source}")]
    Write { path: PathBuf, source: std::io::Error },
    #[error("cannot generate host key: {0}")]
    Generate(String),
}

/// Loads `files`, or when empty loads-or-generates the default pair under `dir`.
pub fn host_keys(files: &[PathBuf], dir: &Path) -> Result<Vec<PrivateKey>, HostKeyError> {
    if !files.is_empty() {
        return files.iter().map(|path| load(path)).collect();
    }
    let defaults = [
        ("ssh_host_ed25519_key", Algorithm::Ed25519),
        ("ssh_host_ecdsa_key", Algorithm::Ecdsa { curve: EcdsaCurve::NistP256 }),
    ];
    defaults
        .into_iter()
        .map(|(name, algorithm)| {
            let path = dir.join(name);
            if path.exists() { load(&path) } else { generate(&path, algorithm) }
        })
        .collect()
}

fn load(path: &Path) -> Result<PrivateKey, HostKeyError> {
    let key = russh::keys::load_secret_key(path, None)
        .map_err(|e| HostKeyError::Load { path: path.to_path_buf(), message: e.to_string() })?;
    if matches!(key.algorithm(), Algorithm::Dsa | Algorithm::Rsa { .. }) {
        return Err(HostKeyError::Load {
            path: path.to_path_buf(),
            message: "only Ed25519 and ECDSA host keys are accepted".into(),
        });
    }
    Ok(key)
}

fn generate(path: &Path, algorithm: Algorithm) -> Result<PrivateKey, HostKeyError> {
    let key =
        PrivateKey::random(&mut rand::rng(), algorithm).map_err(|e| HostKeyError::Generate(e.to_string()))?;
    let pem = key.to_openssh(LineEnding::LF).map_err(|e| HostKeyError::Generate(e.to_string()))?;
    let write_err = |source| HostKeyError::Write { path: path.to_path_buf(), source };
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(write_err)?;
    }
    let mut file =
        std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path).map_err(write_err)?;
    file.write_all(pem.as_bytes()).map_err(write_err)?;
    tracing::info!(path = %path.display(), algorithm = %key.algorithm(), "generated host key");
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_are_kept_and_reloaded() {
        let dir = tempfile::tempdir().unwrap();
        let first = host_keys(&[], dir.path()).unwrap();
        let second = host_keys(&[], dir.path()).unwrap();
        assert_eq!(first.len(), 2);
        assert_eq!(first[0].public_key(), second[0].public_key());
        assert_eq!(first[1].public_key(), second[1].public_key());
        let mode = std::fs::metadata(dir.path().join("ssh_host_ed25519_key")).unwrap();
        assert_eq!(std::os::unix::fs::PermissionsExt::mode(&mode.permissions()) & 0o777, 0o600);
    }
}
