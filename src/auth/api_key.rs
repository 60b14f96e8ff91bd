//! API keys: `ferry_k1_<id>_<secret>`. The id finds the row; only a SHA-256 of the 256-bit
//! random secret is stored (a slow hash adds nothing to a secret that cannot be guessed).

use aws_lc_rs::{constant_time, digest, rand};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

pub const PREFIX: &str = "ferry_k1_";

/// A new key: (id, the full key to show once, the hash to store).
pub fn generate() -> (String, String, Vec<u8>) {
    let mut id = [0u8; 8];
    let mut secret = [0u8; 32];
    let _ = rand::fill(&mut id);
    let _ = rand::fill(&mut secret);
    let id: String = id.iter().map(|b| format!("{b:02x}")).collect();
    let secret = URL_SAFE_NO_PAD.encode(secret);
    let hash = digest::digest(&digest::SHA256, secret.as_bytes()).as_ref().to_vec();
    (id.clone(), format!("{PREFIX}{id}_{secret}"), hash)
}

/// The id and secret of a presented key.
pub fn split(key: &str) -> Option<(&str, &str)> {
    let rest = key.strip_prefix(PREFIX)?;
    let (id, secret) = rest.split_once('_')?;
    (id.len() == 16 && id.chars().all(|c| c.is_ascii_hexdigit()) && !secret.is_empty())
        .then_some((id, secret))
}

/// Whether `secret` hashes to `stored`, in constant time.
pub fn matches(secret: &str, stored: &[u8]) -> bool {
    let hash = digest::digest(&digest::SHA256, secret.as_bytes());
    constant_time::verify_slices_are_equal(hash.as_ref(), stored).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_split_and_match_only_their_own_hash() {
        let (id, key, hash) = generate();
        let (got_id, secret) = split(&key).unwrap();
        assert_eq!(got_id, id);
        assert!(matches(secret, &hash));
        assert!(!matches("guess", &hash));
        assert!(split("ferry_k1_xyz_abc").is_none());
        assert!(split("other").is_none());
    }
}
