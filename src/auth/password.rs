//! argon2id password hashes (PHC strings) with OWASP's default cost. Verifications run on a
//! bounded pool of their own OS threads (`Hasher`), never on tokio's blocking pool: that pool
//! serves every local-disk operation, and a flood of logins parked on it starved transfers.
//! Unknown users are checked against a dummy hash on the same pool, so they cost the same work.

use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, LazyLock, Mutex};

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

/// The pool's queue is full: the attempt is refused at once instead of waiting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("too many password checks in progress")]
pub struct Busy;

/// One unit of work for a hashing thread; it gets the thread's own argon2 memory.
type Job = Box<dyn FnOnce(&mut Vec<Block>) + Send>;

/// Verifies passwords on `threads` dedicated OS threads (at a lower CPU priority) fed by a
/// queue of `queue` waiting checks. Each thread keeps one argon2 buffer (19 MiB at the default cost) for its whole
/// life, so memory is `threads` × the cost however many logins arrive. The threads end when
/// the last handle is dropped.
pub struct Hasher {
    jobs: SyncSender<Job>,
}

impl Hasher {
    pub fn new(threads: usize, queue: usize) -> Arc<Self> {
        let (jobs, receiver) = sync_channel::<Job>(queue);
        let receiver = Arc::new(Mutex::new(receiver));
        for n in 0..threads.max(1) {
            let receiver = Arc::clone(&receiver);
            let spawned =
                std::thread::Builder::new().name(format!("ferry-argon2-{n}")).spawn(move || work(&receiver));
            if let Err(e) = spawned {
                tracing::error!(error = %e, "cannot start a password hashing thread");
            }
        }
        Arc::new(Self { jobs })
    }

    /// Runs `job` on the pool and waits for its answer without holding any thread; `Busy` at
    /// once when the queue is full.
    pub async fn run<T: Send + 'static>(
        &self,
        job: impl FnOnce(&mut Vec<Block>) -> T + Send + 'static,
    ) -> Result<T, Busy> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move |memory| {
            let _ = reply.send(job(memory));
        });
        match self.jobs.try_send(job) {
            Ok(()) => {}
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                crate::telemetry::metrics::password_check_refused();
                return Err(Busy);
            }
        }
        answer.await.map_err(|_| Busy)
    }

    /// Verifies `password` against `stored`, or against the dummy hash when there is none, so
    /// the work is the same either way.
    pub async fn verify(&self, stored: Option<String>, password: String) -> Result<bool, Busy> {
        self.run(move |memory| verify_with(stored.as_deref(), &password, memory)).await
    }
}

/// Nice value of the hashing threads: when transfers and logins compete for the CPU, the
/// transfers win (Linux nice values are per thread).
const HASHING_NICE: i32 = 10;

fn work(receiver: &Mutex<Receiver<Job>>) {
    #[cfg(target_os = "linux")]
    if let Err(e) = rustix::process::setpriority_process(Some(rustix::thread::gettid()), HASHING_NICE) {
        tracing::debug!(error = %e, "cannot lower the priority of a password hashing thread");
    }
    let mut memory = Vec::new();
    loop {
        let job = match receiver.lock() {
            Ok(receiver) => receiver.recv(),
            Err(_) => return,
        };
        match job {
            Ok(job) => job(&mut memory),
            // Every sender is gone: the server stopped.
            Err(_) => return,
        }
    }
}

/// The check itself, with the calling thread's reusable memory. Blocking.
fn verify_with(stored: Option<&str>, password: &str, memory: &mut Vec<Block>) -> bool {
    let target = stored.unwrap_or(DUMMY.as_str());
    let ok = verify_phc(target, password, memory).unwrap_or(false);
    ok && stored.is_some()
}

fn verify_phc(phc: &str, password: &str, memory: &mut Vec<Block>) -> Option<bool> {
    let parsed = PasswordHash::new(phc).ok()?;
    let expected = parsed.hash?;
    let params = Params::try_from(&parsed).ok()?;
    let algorithm = Algorithm::try_from(parsed.algorithm).ok()?;
    let version = parsed.version.map(Version::try_from).transpose().ok()?.unwrap_or_default();
    let mut salt = [0u8; 64];
    let salt = parsed.salt?.decode_b64(&mut salt).ok()?;
    let argon = Argon2::new(algorithm, version, params.clone());
    let mut out = vec![0u8; expected.len()];
    let blocks = params.block_count();
    if memory.len() < blocks {
        memory.resize(blocks, Block::default());
    }
    let memory = memory.get_mut(..blocks)?;
    let hashed = argon.hash_password_into_with_memory(password.as_bytes(), salt, &mut out, memory).is_ok();
    // `Output` compares in constant time.
    Some(hashed && Output::new(&out).ok()? == expected)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn hashes_verify_and_differ_by_salt() {
        let a = hash("correct horse").unwrap();
        let b = hash("correct horse").unwrap();
        assert!(a.starts_with("$argon2id$"));
        assert_ne!(a, b);
        let hasher = Hasher::new(2, 16);
        assert!(hasher.verify(Some(a.clone()), "correct horse".into()).await.unwrap());
        assert!(!hasher.verify(Some(a.clone()), "wrong".into()).await.unwrap());
        assert!(!hasher.verify(None, "correct horse".into()).await.unwrap());
        assert!(matches!(hash(""), Err(HashError::Empty)));
        // Several checks at once share the two threads and all get the right answer.
        let checks =
            (0..6).map(|i| {
                let (hasher, a) = (Arc::clone(&hasher), a.clone());
                async move {
                    hasher.verify(Some(a), (if i % 2 == 0 { "correct horse" } else { "nope" }).into()).await
                }
            });
        let results: Vec<bool> =
            futures::future::join_all(checks).await.into_iter().map(Result::unwrap).collect();
        assert_eq!(results, [true, false, true, false, true, false]);
    }

    /// With every thread busy and the queue full, a check is refused at once (and counted),
    /// instead of waiting; once the pool drains it accepts work again.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_full_queue_refuses_at_once_and_counts_it() {
        let hasher = Hasher::new(1, 1);
        let (release, gate) = std::sync::mpsc::channel::<()>();
        let gate = Arc::new(Mutex::new(gate));
        let (started_tx, started) = tokio::sync::oneshot::channel();
        let blocked = {
            let (hasher, gate) = (Arc::clone(&hasher), Arc::clone(&gate));
            tokio::spawn(async move {
                hasher
                    .run(move |_| {
                        let _ = started_tx.send(());
                        let _ = gate.lock().unwrap().recv();
                    })
                    .await
            })
        };
        started.await.unwrap();
        // The only thread is held; this job takes the queue's one place.
        let (queued_ran, queued_done) = std::sync::mpsc::channel::<()>();
        assert!(
            hasher
                .jobs
                .try_send(Box::new(move |_: &mut Vec<Block>| {
                    let _ = queued_ran.send(());
                }))
                .is_ok()
        );
        let before = crate::telemetry::metrics::metrics().password_checks_refused.get();
        let refused =
            tokio::time::timeout(std::time::Duration::from_secs(10), hasher.verify(None, "y".into()))
                .await
                .expect("refused without waiting for the pool");
        assert_eq!(refused, Err(Busy));
        assert!(crate::telemetry::metrics::metrics().password_checks_refused.get() > before, "counted");
        release.send(()).unwrap();
        blocked.await.unwrap().unwrap();
        // The queued job leaves the queue once the thread is free again.
        tokio::task::spawn_blocking(move || queued_done.recv()).await.unwrap().unwrap();
        assert!(!hasher.verify(None, "z".into()).await.expect("accepted again once drained"));
    }
}
