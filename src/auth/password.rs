//! argon2id password hashes (PHC strings) with OWASP's default cost, verified off the async
//! threads. Unknown users are checked against a dummy hash so they cost the same work.

use std::sync::LazyLock;

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};

#[derive(Debug, thiserror::Error)]
pub enum HashError {
    #[error("passwords may not be empty")]
    Empty,
    #[error("cannot hash password: {0}")]
    Hash(String),
}

pub fn hash(password: &str) -> Result<String, HashError> {
    if password.is_empty() {
        return Err(HashError::Empty);
    }
    let salt_bytes: [u8; 16] = rand::random();
    let salt = SaltString::encode_b64(&salt_bytes).map_err(|e| HashError::Hash(e.to_string()))?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| HashError::Hash(e.to_string()))
}

/// A hash of a random password nobody knows, for unknown users.
static DUMMY: LazyLock<String> = LazyLock::new(|| {
    let secret: [u8; 16] = rand::random();
    hash(&format!("{secret:?}")).unwrap_or_default()
});

/// Verifies `password` against `stored`, or against the dummy hash when there is none, so the
/// work is the same either way. Blocking: call from `spawn_blocking`.
pub fn verify(stored: Option<&str>, password: &str) -> bool {
    let target = stored.unwrap_or(DUMMY.as_str());
    let ok = match PasswordHash::new(target) {
        Ok(parsed) => Argon2::default().verify_password(password.as_bytes(), &parsed).is_ok(),
        Err(_) => false,
    };
    ok && stored.is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_verify_and_differ_by_salt() {
        let a = hash("correct horse").unwrap();
        let b = hash("correct horse").unwrap();
        assert!(a.starts_with("$argon2id$"));
        assert_ne!(a, b);
        assert!(verify(Some(&a), "correct horse"));
        assert!(!verify(Some(&a), "wrong"));
        assert!(!verify(None, "correct horse"));
        assert!(matches!(hash(""), Err(HashError::Empty)));
    }
}
