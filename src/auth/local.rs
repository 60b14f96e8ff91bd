//! Local users from the state store.

use async_trait::async_trait;

use std::sync::Arc;

use super::token::{TokenKeys, VerifyError};
use super::{AuthContext, AuthError, Authenticator, Credentials, Denial, Identity, password};
use crate::state::State;
use crate::types::UploadMode;

pub struct LocalAuthenticator {
    state: State,
    default_upload_mode: UploadMode,
    tokens: Option<Arc<TokenKeys>>,
    /// Answers bearer tokens only: local users are switched off, but tokens issued to users of
    /// other authenticators must still work.
    tokens_only: bool,
}

impl LocalAuthenticator {
    pub fn new(state: State, default_upload_mode: UploadMode) -> Self {
        Self { state, default_upload_mode, tokens: None, tokens_only: false }
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
        let found = keys.find(id).await.map_err(|e| AuthError::Unavailable(e.to_string()))?;
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
        // An external user's token carries what their authenticator said at login.
        if let (Credentials::Token(token), Some(tokens)) = (credentials, &self.tokens) {
            match tokens.verify(token.expose()).await {
                Ok(claims) if claims.sub == user => {
                    if let Some(ext) = claims.ext {
                        return Ok(ext.identity(user));
                    }
                }
                Ok(_) => return Err(AuthError::Denied(Denial::UnknownUser)),
                Err(VerifyError::Denied(denial)) => return Err(AuthError::Denied(denial)),
                Err(VerifyError::Store(e)) => return Err(AuthError::Unavailable(e.to_string())),
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
        let record =
            self.state.users().find(user).await.map_err(|e| AuthError::Unavailable(e.to_string()))?;
        match credentials {
            Credentials::Password(secret) => {
                if secret.expose().is_empty() {
                    return Err(AuthError::Denied(Denial::EmptyPassword));
                }
                let stored = record.as_ref().and_then(|r| r.password_hash.clone());
                let password = secret.expose().clone();
                // Same argon2 work whether the user exists or not.
                let ok = tokio::task::spawn_blocking(move || password::verify(stored.as_deref(), &password))
                    .await
                    .unwrap_or(false);
                match (&record, ok) {
                    (None, _) => return Err(AuthError::Denied(Denial::UnknownUser)),
                    (Some(_), false) => return Err(AuthError::Denied(Denial::WrongPassword)),
                    (Some(_), true) => {}
                }
            }
            // Verified above (signature, expiry, revocation, subject); a local user's token
            // then stands or falls with the user's record.
            Credentials::Token(_) if self.tokens.is_some() => {}
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
            user: record.name,
            home: record.home,
            rules: record.rules,
            mounts: record.mounts,
            admin: record.admin,
            upload_mode: record.upload_mode.unwrap_or(self.default_upload_mode),
            source: "local",
        })
    }
}
