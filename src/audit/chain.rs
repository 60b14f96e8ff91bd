//! The hash chain that makes each node's trail tamper-evident. Every record carries its position
//! (`chain_seq`) and the hash of the record before (`prev`); its own hash is the SHA-256 of its
//! JSON body (everything but the `hash` field, exactly as written), appended as the last field.
//! Checkpoints sign a chain position with the node's Ed25519 key, so a trail rewritten from
//! some point on (every hash recomputed) still fails verification.

use std::path::Path;

use aws_lc_rs::digest;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{self, Ed25519KeyPair, KeyPair};

/// `prev` of the first record a node ever writes.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// The suffix every written line ends with: `,"hash":"<64 hex>"}`.
const HASH_FIELD: &str = ",\"hash\":\"";

/// Where the next record goes: its sequence number and the hash it must link to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    pub next_seq: u64,
    pub prev: String,
}

impl Head {
    pub fn genesis() -> Self {
        Self { next_seq: 0, prev: GENESIS.to_string() }
    }

    /// The head after the record `(seq, hash)`.
    pub fn after(seq: u64, hash: &str) -> Self {
        Self { next_seq: seq + 1, prev: hash.to_string() }
    }
}

pub use crate::types::{hex, unhex};

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(digest::digest(&digest::SHA256, bytes).as_ref())
}

/// Seals a JSON body (an object) into the written line; returns the line and the hash.
pub fn seal(body: &str) -> (String, String) {
    let hash = sha256_hex(body.as_bytes());
    let open = body.strip_suffix('}').unwrap_or(body);
    let mut line = String::with_capacity(body.len() + HASH_FIELD.len() + 66);
    line.push_str(open);
    line.push_str(HASH_FIELD);
    line.push_str(&hash);
    line.push_str("\"}");
    (line, hash)
}

/// Splits a written line into its body (as it was hashed) and the hash it claims.
pub fn unseal(line: &str) -> Option<(String, &str)> {
    let cut = line.rfind(HASH_FIELD)?;
    let claimed = line.get(cut + HASH_FIELD.len()..)?.strip_suffix("\"}")?;
    if claimed.len() != 64 {
        return None;
    }
    let mut body = line.get(..cut)?.to_string();
    body.push('}');
    Some((body, claimed))
}

/// The bytes a checkpoint signature covers.
pub fn signed_message(node: &str, seq: u64, hash: &str, every: u64) -> Vec<u8> {
    format!("ferry-audit-checkpoint/1\n{node}\n{seq}\n{hash}\n{every}").into_bytes()
}

/// The node's signing key (Ed25519, PKCS#8 on disk, mode 0600).
pub struct NodeKey {
    pair: Ed25519KeyPair,
}

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("{path}: {source}")]
    Io { path: String, source: std::io::Error },
    #[error("{0}: not an Ed25519 PKCS#8 key")]
    Invalid(String),
}

impl NodeKey {
    /// Loads the key at `path`, generating it (and `PATH.pub`, the public key in hex) if missing.
    pub fn load_or_create(path: &Path) -> Result<Self, KeyError> {
        let io = |source| KeyError::Io { path: path.display().to_string(), source };
        if !path.exists() {
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent).map_err(io)?;
            }
            let document = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new())
                .map_err(|_| KeyError::Invalid(path.display().to_string()))?;
            write_private(path, document.as_ref()).map_err(io)?;
        }
        let der = std::fs::read(path).map_err(io)?;
        let pair =
            Ed25519KeyPair::from_pkcs8(&der).map_err(|_| KeyError::Invalid(path.display().to_string()))?;
        let key = Self { pair };
        let public = public_key_path(path);
        if !public.exists() {
            let _ = std::fs::write(&public, format!("{}\n", key.public_hex()));
        }
        Ok(key)
    }

    pub fn public_hex(&self) -> String {
        hex(self.pair.public_key().as_ref())
    }

    /// Short name of the key, carried by each checkpoint.
    pub fn id(&self) -> String {
        key_id(self.pair.public_key().as_ref())
    }

    pub fn sign(&self, message: &[u8]) -> String {
        hex(self.pair.sign(message).as_ref())
    }
}

/// Where the public key of the node key at `key` is written (hex): `node.key` → `node.pub`.
pub fn public_key_path(key: &Path) -> std::path::PathBuf {
    key.with_extension("pub")
}

pub fn key_id(public: &[u8]) -> String {
    let mut id = sha256_hex(public);
    id.truncate(16);
    id
}

/// Checks an Ed25519 signature (hex) with a public key (raw 32 bytes).
pub fn verify_signature(public: &[u8], message: &[u8], signature_hex: &str) -> bool {
    let Some(signature) = unhex(signature_hex) else {
        return false;
    };
    signature::UnparsedPublicKey::new(&signature::ED25519, public).verify(message, &signature).is_ok()
}

#[cfg(unix)]
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

#[cfg(not(unix))]
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    std::fs::write(path, bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_and_unseal_round_trip_and_detect_edits() {
        let (line, hash) = seal(r#"{"id":1,"prev":"00"}"#);
        assert!(line.ends_with(&format!(",\"hash\":\"{hash}\"}}")));
        let (body, claimed) = unseal(&line).unwrap();
        assert_eq!(body, r#"{"id":1,"prev":"00"}"#);
        assert_eq!(claimed, hash);
        let edited = line.replace("\"id\":1", "\"id\":2");
        let (body, claimed) = unseal(&edited).unwrap();
        assert_ne!(sha256_hex(body.as_bytes()), claimed);
    }

    #[test]
    fn signatures_verify_only_with_the_signing_key() {
        let dir = tempfile::tempdir().unwrap();
        let key = NodeKey::load_or_create(&dir.path().join("node.key")).unwrap();
        let again = NodeKey::load_or_create(&dir.path().join("node.key")).unwrap();
        assert_eq!(key.public_hex(), again.public_hex(), "the key is kept, not regenerated");
        let other = NodeKey::load_or_create(&dir.path().join("other.key")).unwrap();
        let message = signed_message("n1", 7, GENESIS, 10);
        let signature = key.sign(&message);
        let public = unhex(&key.public_hex()).unwrap();
        assert!(verify_signature(&public, &message, &signature));
        assert!(!verify_signature(&public, &signed_message("n1", 8, GENESIS, 10), &signature));
        assert!(!verify_signature(&unhex(&other.public_hex()).unwrap(), &message, &signature));
    }
}
