//! A short positive cache in front of an external authenticator, so a partner's burst of
//! connections does not hammer the directory or the service. Only successes are kept, keyed by
//! the user and a hash of the credential; a denial is always asked again. A password changed
//! at the source takes effect within the TTL.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use aws_lc_rs::digest;
use tokio::time::Instant;

use super::{AuthContext, AuthError, Authenticator, Credentials, Identity};

const MAX_ENTRIES: usize = 10_000;

pub struct Cached {
    inner: Arc<dyn Authenticator>,
    ttl: Duration,
    entries: Mutex<HashMap<Vec<u8>, (Instant, Identity)>>,
}

impl Cached {
    pub fn new(inner: Arc<dyn Authenticator>, ttl: Duration) -> Self {
        Self { inner, ttl, entries: Mutex::new(HashMap::new()) }
    }

    /// SHA-256 of the protocol, the peer address, the user and the credential (the HTTP
    /// service receives both and may decide by them): the cache never holds a password.
    fn key(user: &str, credentials: &Credentials, context: &AuthContext) -> Option<Vec<u8>> {
        let secret = match credentials {
            Credentials::Password(p) => format!("p\0{}", p.expose()),
            Credentials::PublicKey(k) => format!("k\0{k}"),
            Credentials::Token(_) | Credentials::ApiKey(_) => return None,
        };
        let peer = context.peer.0.map(|a| a.ip().to_string()).unwrap_or_default();
        let text = format!("{}\0{peer}\0{user}\0{secret}", context.protocol.as_str());
        Some(digest::digest(&digest::SHA256, text.as_bytes()).as_ref().to_vec())
    }
}

#[async_trait]
impl Authenticator for Cached {
    async fn authenticate(
        &self,
        user: &str,
        credentials: &Credentials,
        context: &AuthContext,
    ) -> Result<Identity, AuthError> {
        let key = Self::key(user, credentials, context);
        let now = Instant::now();
        if let Some(key) = &key
            && let Ok(entries) = self.entries.lock()
            && let Some((until, identity)) = entries.get(key)
            && *until > now
        {
            return Ok(identity.clone());
        }
        let result = self.inner.authenticate(user, credentials, context).await;
        if let (Some(key), Ok(identity)) = (key, &result)
            && let Ok(mut entries) = self.entries.lock()
        {
            if entries.len() >= MAX_ENTRIES {
                entries.retain(|_, (until, _)| *until > now);
            }
            if entries.len() < MAX_ENTRIES {
                entries.insert(key, (now + self.ttl, identity.clone()));
            }
        } else if let Some(key) = Self::key(user, credentials, context)
            && let Ok(mut entries) = self.entries.lock()
        {
            // Refused now: forget an older success with the same credential.
            entries.remove(&key);
        }
        result
    }

    /// Never from the cache: a re-check exists to hear what the source says now.
    async fn recheck(&self, identity: &Identity, context: &AuthContext) -> Result<Identity, AuthError> {
        self.inner.recheck(identity, context).await
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;
    use crate::auth::{Denial, Identity};
    use crate::types::{PeerAddr, Protocol, Secret, UploadMode};

    struct Counting {
        calls: AtomicU32,
        allow: std::sync::atomic::AtomicBool,
    }

    #[async_trait]
    impl Authenticator for Counting {
        async fn authenticate(
            &self,
            user: &str,
            _: &Credentials,
            _: &AuthContext,
        ) -> Result<Identity, AuthError> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            if self.allow.load(Ordering::SeqCst) {
                Ok(Identity {
                    user: user.into(),
                    home: "/x".into(),
                    rules: crate::auth::RuleSet::allow_all(),
                    mounts: Vec::new(),
                    admin: false,
                    upload_mode: UploadMode::Atomic,
                    source: "http",
                })
            } else {
                Err(AuthError::Denied(Denial::RefusedByService))
            }
        }
    }

    #[tokio::test(start_paused = true)]
    async fn successes_are_kept_for_the_ttl_and_denials_never() {
        let inner = Arc::new(Counting { calls: AtomicU32::new(0), allow: true.into() });
        let cache = Cached::new(inner.clone(), Duration::from_secs(30));
        let context = AuthContext { protocol: Protocol::Ssh, peer: PeerAddr(None) };
        let right = Credentials::Password(Secret::new("right".into()));
        let wrong = Credentials::Password(Secret::new("wrong".into()));
        assert!(cache.authenticate("u", &right, &context).await.is_ok());
        assert!(cache.authenticate("u", &right, &context).await.is_ok());
        assert_eq!(inner.calls.load(Ordering::SeqCst), 1, "the second login came from the cache");
        inner.allow.store(false, Ordering::SeqCst);
        assert!(cache.authenticate("u", &wrong, &context).await.is_err());
        assert!(cache.authenticate("u", &wrong, &context).await.is_err());
        assert_eq!(inner.calls.load(Ordering::SeqCst), 3, "denials are asked every time");
        assert!(cache.authenticate("u", &right, &context).await.is_ok(), "still cached");
        tokio::time::advance(Duration::from_secs(31)).await;
        assert!(
            cache.authenticate("u", &right, &context).await.is_err(),
            "the source decides again after the TTL"
        );
    }

    /// The HTTP service is told the peer address and may decide by it: a success for one
    /// address is never reused for another.
    #[tokio::test(start_paused = true)]
    async fn the_peer_address_is_part_of_the_key() {
        let inner = Arc::new(Counting { calls: AtomicU32::new(0), allow: true.into() });
        let cache = Cached::new(inner.clone(), Duration::from_secs(30));
        let from = |ip: &str| AuthContext {
            protocol: Protocol::Ssh,
            peer: PeerAddr(Some(format!("{ip}:2222").parse().unwrap())),
        };
        let right = Credentials::Password(Secret::new("right".into()));
        assert!(cache.authenticate("u", &right, &from("192.0.2.1")).await.is_ok());
        assert!(cache.authenticate("u", &right, &from("192.0.2.1")).await.is_ok());
        assert_eq!(inner.calls.load(Ordering::SeqCst), 1);
        inner.allow.store(false, Ordering::SeqCst);
        assert!(
            cache.authenticate("u", &right, &from("198.51.100.9")).await.is_err(),
            "another address is asked, and the service refuses it"
        );
        assert_eq!(inner.calls.load(Ordering::SeqCst), 2);
    }
}
