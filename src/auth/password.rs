//! argon2id password hashes (PHC strings) with OWASP's default cost, verified off the async
//! threads. Unknown users are checked against a dummy hash so they cost the same work.

use std::sync::{Condvar, LazyLock, Mutex};

use argon2::password_hash::{Output, PasswordHash, PasswordHasher, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};

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

/// Verifications that run at once. Each needs the hash's whole memory cost (19 MiB by default);
/// the buffers are allocated once and reused, so a burst of logins (or a password-spraying
/// attack) neither grows the heap by 19 MiB per thread nor runs away with memory.
const CONCURRENT_VERIFICATIONS: usize = 2;

struct MemoryPool {
    free: Mutex<(usize, Vec<Vec<Block>>)>,
    returned: Condvar,
}

static POOL: LazyLock<MemoryPool> =
    LazyLock::new(|| MemoryPool { free: Mutex::new((0, Vec::new())), returned: Condvar::new() });

impl MemoryPool {
    /// Runs `work` with a buffer of at least `blocks` blocks, waiting for one if all are busy.
    fn with<T>(&self, blocks: usize, work: impl FnOnce(&mut [Block]) -> T) -> Option<T> {
        let mut buffer = {
            let mut state = self.free.lock().ok()?;
            loop {
                if let Some(buffer) = state.1.pop() {
                    break buffer;
                }
                if state.0 < CONCURRENT_VERIFICATIONS {
                    state.0 += 1;
                    break Vec::new();
                }
                state = self.returned.wait(state).ok()?;
            }
        };
        if buffer.len() < blocks {
            buffer.resize(blocks, Block::default());
        }
        let result = work(&mut buffer[..blocks]);
        if let Ok(mut state) = self.free.lock() {
            state.1.push(buffer);
        }
        self.returned.notify_one();
        Some(result)
    }
}

/// Verifies `password` against `stored`, or against the dummy hash when there is none, so the
/// work is the same either way. Blocking: call from `spawn_blocking`.
pub fn verify(stored: Option<&str>, password: &str) -> bool {
    let target = stored.unwrap_or(DUMMY.as_str());
    let ok = verify_pooled(target, password).unwrap_or(false);
    ok && stored.is_some()
}

fn verify_pooled(phc: &str, password: &str) -> Option<bool> {
    let parsed = PasswordHash::new(phc).ok()?;
    let expected = parsed.hash?;
    let params = Params::try_from(&parsed).ok()?;
    let algorithm = Algorithm::try_from(parsed.algorithm).ok()?;
    let version = parsed.version.map(Version::try_from).transpose().ok()?.unwrap_or_default();
    let mut salt = [0u8; 64];
    let salt = parsed.salt?.decode_b64(&mut salt).ok()?;
    let argon = Argon2::new(algorithm, version, params.clone());
    let mut out = vec![0u8; expected.len()];
    let hashed = POOL.with(params.block_count(), |memory| {
        argon.hash_password_into_with_memory(password.as_bytes(), salt, &mut out, memory).is_ok()
    })?;
    // `Output` compares in constant time.
    Some(hashed && Output::new(&out).ok()? == expected)
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
        // Many verifications at once share the bounded pool and all get the right answer.
        let handles: Vec<_> = (0..6)
            .map(|i| {
                let a = a.clone();
                std::thread::spawn(move || {
                    verify(Some(&a), if i % 2 == 0 { "correct horse" } else { "nope" })
                })
            })
            .collect();
        let results: Vec<bool> = handles.into_iter().map(|h| h.join().unwrap()).collect();
        assert_eq!(results, [true, false, true, false, true, false]);
    }
}
