//! Local users from the state store.

use async_trait::async_trait;

use std::sync::Arc;

use super::token::{TokenKeys, VerifyError};
use super::{AuthContext, AuthError, Authenticator, Credentials, Denial, Identity, password};
use crate::state::State;
use crate::types::UploadMode;

pub struct LocalAuthenticator {
    state: State,
    hasher: Arc<password::Hasher>,
    default_upload_mode: UploadMode,
    tokens: Option<Arc<TokenKeys>>,
    /// Answers bearer tokens only: local users are switched off, but tokens issued to users of
    /// other authenticators must still work.
    tokens_only: bool,
}

impl LocalAuthenticator {
    /// Password checks run on `hasher`, shared by every authenticator of the server.
    pub fn new(state: State, hasher: Arc<password::Hasher>, default_upload_mode: UploadMode) -> Self {
        Self { state, hasher, default_upload_mode, tokens: None, tokens_only: false }
    }

    /// Only bearer tokens, for chains without local users.
    pub fn tokens_only(mut self) -> Self {
        self.tokens_only = true;
        self
    }

    /// Also accepts bearer tokens signed with `tokens`.
    pub fn with_tokens(mut self, tokens: Arc<TokenKeys>) -> Self {
        self.tokens = Some(tokens);
        self
    }
}

impl LocalAuthenticator {
    /// The owner of a valid API key.
    async fn api_key_user(&self, key: &str) -> Result<String, AuthError> {
        let (id, secret) = super::api_key::split(key).ok_or(AuthError::Denied(Denial::UnknownApiKey))?;
        let keys = self.state.api_keys();
        let found = keys.find(id).await.map_err(|e| AuthError::Unavailable(e.into()))?;
        match found {
            Some((user, hash)) if super::api_key::matches(secret, &hash) => {
                let _ = keys.touch(id).await;
                Ok(user)
            }
            _ => Err(AuthError::Denied(Denial::UnknownApiKey)),
        }
    }
}

/// `algorithm base64` of an authorized_keys line (drops options-free comment).
pub fn key_identity(line: &str) -> Option<String> {
    let mut fields = line.split_whitespace();
    Some(format!("{} {}", fields.next()?, fields.next()?))
}

#[async_trait]
impl Authenticator for LocalAuthenticator {
    async fn authenticate(
        &self,
        user: &str,
        credentials: &Credentials,
        _context: &AuthContext,
    ) -> Result<Identity, AuthError> {
        if self.tokens_only && !matches!(credentials, Credentials::Token(_)) {
            return Err(AuthError::Denied(Denial::UnknownUser));
        }
        // An external user's token carries what their authenticator said at login (checked
        // again when its session slides); a local user's stands or falls with the record.
        let mut login_at = None;
        if let (Credentials::Token(token), Some(tokens)) = (credentials, &self.tokens) {
            match tokens.verify(token.expose()).await {
                Ok(claims) if claims.sub == user => {
                    if let Some(ext) = claims.ext {
                        return Ok(ext.identity(user));
                    }
                    login_at = Some(claims.login_at);
                }
                Ok(_) => return Err(AuthError::Denied(Denial::UnknownUser)),
                Err(VerifyError::Denied(denial)) => return Err(AuthError::Denied(denial)),
                Err(VerifyError::Store(e)) => return Err(AuthError::Unavailable(e.into())),
            }
        }
        // An API key names its user: the key decides who this is.
        let api_key_user;
        let user = match credentials {
            Credentials::ApiKey(key) => {
                api_key_user = self.api_key_user(key.expose()).await?;
                api_key_user.as_str()
            }
            _ => user,
        };
        let record = self.state.users().find(user).await.map_err(|e| AuthError::Unavailable(e.into()))?;
        match credentials {
            Credentials::Password(secret) => {
                if secret.expose().is_empty() {
                    return Err(AuthError::Denied(Denial::EmptyPassword));
                }
                let stored = record.as_ref().and_then(|r| r.password_hash.clone());
                let password = secret.expose().clone();
                // Same argon2 work whether the user exists or not; a full queue refuses at once.
                let ok = self
                    .hasher
                    .verify(stored, password)
                    .await
                    .map_err(|password::Busy| AuthError::Denied(Denial::Busy))?;
                match (&record, ok) {
                    (None, _) => return Err(AuthError::Denied(Denial::UnknownUser)),
                    (Some(_), false) => return Err(AuthError::Denied(Denial::WrongPassword)),
                    (Some(_), true) => {}
                }
            }
            // Verified above (signature, expiry, revocation, subject); a login that began
            // before the user's last password change or disabling (or before this user was
            // created under the name) is void.
            Credentials::Token(_) if self.tokens.is_some() => {
                let voided = record.as_ref().is_some_and(|r| login_at.unwrap_or(0) <= r.tokens_after);
                if voided {
                    return Err(AuthError::Denied(Denial::RevokedToken));
                }
            }
            Credentials::Token(_) => return Err(AuthError::Denied(Denial::InvalidToken)),
            Credentials::ApiKey(_) => {}
            Credentials::PublicKey(offered) => {
                let Some(record) = &record else {
                    return Err(AuthError::Denied(Denial::UnknownUser));
                };
                let known = record
                    .keys
                    .iter()
                    .any(|k| key_identity(&k.public_key).as_deref() == Some(offered.as_str()));
                if !known {
                    return Err(AuthError::Denied(Denial::UnknownKey));
                }
            }
        }
        let Some(record) = record else {
            return Err(AuthError::Denied(Denial::UnknownUser));
        };
        if !record.enabled {
            return Err(AuthError::Denied(Denial::Disabled));
        }
        Ok(Identity {
            rules: super::RuleSet::for_user(&record.name, record.rules),
            user: record.name,
            home: record.home,
            mounts: record.mounts,
            admin: record.admin,
            upload_mode: record.upload_mode.unwrap_or(self.default_upload_mode),
            source: "local",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::NewUser;
    use crate::types::{PeerAddr, Protocol, Secret};

    /// With the hashing pool busy and its queue full, a password login is refused at once
    /// (an unknown user too: same path, same answer) instead of waiting; key logins never hash.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_full_hashing_queue_refuses_password_logins_at_once() {
        let dir = std::env::temp_dir().join(format!("ferry-local-test-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        let state = State::open_sqlite(&dir.join("t.db")).await.unwrap();
        let user = NewUser {
            name: "alice".into(),
            password_hash: Some(password::hash("alice-pass-1").unwrap()),
            home: "/alice".into(),
            upload_mode: None,
            rules: Vec::new(),
        };
        state.users().create(&user).await.unwrap();
        // One thread and one waiting place.
        let hasher = password::Hasher::new(1, 1);
        let auth = LocalAuthenticator::new(state, Arc::clone(&hasher), UploadMode::Atomic);
        let context = AuthContext { protocol: Protocol::Ssh, peer: PeerAddr(None) };
        let right = Credentials::Password(Secret::new("alice-pass-1".into()));
        assert!(auth.authenticate("alice", &right, &context).await.is_ok());

        let (release, gate) = std::sync::mpsc::channel::<()>();
        let (held_tx, held) = tokio::sync::oneshot::channel();
        let holder = {
            let hasher = Arc::clone(&hasher);
            tokio::spawn(async move {
                hasher
                    .run(move |_| {
                        let _ = held_tx.send(());
                        let _ = gate.recv();
                    })
                    .await
            })
        };
        held.await.unwrap();
        // The thread is held; this job takes the waiting place (polled once, then left queued).
        assert!(futures::FutureExt::now_or_never(hasher.run(|_| {})).is_none());
        for user in ["alice", "nobody"] {
            let answer = tokio::time::timeout(
                std::time::Duration::from_secs(10),
                auth.authenticate(user, &right, &context),
            )
            .await
            .expect("answered without waiting for the pool");
            assert!(matches!(answer, Err(AuthError::Denied(Denial::Busy))), "{user}: {answer:?}");
        }
        release.send(()).unwrap();
        holder.await.unwrap().unwrap();
        let _ = std::fs::remove_dir_all(dir);
    }
}
