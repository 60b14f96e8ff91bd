//! Short-lived bearer tokens for the HTTPS API. Signed (HMAC-SHA256) with a key kept in the state
//! store, so every replica verifies what any replica issued: no sticky sessions, nothing bound
//! to a client address. A logout revokes a token everywhere through the same store.

use std::time::Duration;

use aws_lc_rs::hmac;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};

use super::Denial;
use crate::state::{State, StateError};

const PREFIX: &str = "ferry1.";
const KEY_NAME: &str = "token-signing-key";

/// What a token says: who, until when, and the login it belongs to (tokens refreshed from one
/// login share `sid`, and a logout revokes them all).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    pub sub: String,
    pub exp: i64,
    pub sid: String,
    /// For users vouched for by an external authenticator (HTTP service, directory): what it
    /// said at login, signed into the token, so any replica serves the token without asking
    /// again until it expires. Local users are read from the store on every use instead.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ext: Option<ExternalIdentity>,
    /// When the login began (Unix milliseconds), the same across refreshes: a login lives at
    /// most `max_life` from here, and a user's password change or disabling voids logins that
    /// began before it. 0 in tokens of older versions, which are never refreshed.
    #[serde(default)]
    pub login_at: i64,
}

impl Claims {
    /// The last second any token of this login may be valid.
    fn life_ends(&self, max_life: Duration) -> Option<i64> {
        (self.login_at > 0).then(|| self.login_at / 1000 + secs(max_life))
    }
}

fn secs(d: Duration) -> i64 {
    i64::try_from(d.as_secs()).unwrap_or(i64::MAX / 4)
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ExternalIdentity {
    pub source: String,
    pub home: String,
    pub rules: Vec<crate::state::RuleRecord>,
    pub mounts: Vec<crate::state::MountRecord>,
    pub upload_mode: crate::types::UploadMode,
    pub admin: bool,
}

impl ExternalIdentity {
    pub fn of(identity: &super::Identity) -> Option<Self> {
        (identity.source != "local").then(|| Self {
            source: identity.source.to_string(),
            home: identity.home.clone(),
            rules: identity.rules.records().to_vec(),
            mounts: identity.mounts.clone(),
            upload_mode: identity.upload_mode,
            admin: identity.admin,
        })
    }

    pub fn identity(self, user: &str) -> super::Identity {
        let source = match self.source.as_str() {
            "http" => "http",
            "ldap" => "ldap",
            _ => "external",
        };
        super::Identity {
            user: user.to_string(),
            home: self.home,
            rules: super::RuleSet::for_user(user, self.rules),
            mounts: self.mounts,
            admin: self.admin,
            upload_mode: self.upload_mode,
            source,
        }
    }
}

pub struct TokenKeys {
    key: hmac::Key,
    ttl: Duration,
    /// The longest a login lives, however often its session slides.
    max_life: Duration,
    state: State,
}

/// A login lives at most this long unless configured otherwise.
pub const DEFAULT_MAX_LIFE: Duration = Duration::from_secs(12 * 3600);

impl TokenKeys {
    /// Loads the shared signing key, creating it if this is the first replica to ask.
    pub async fn load(state: State, ttl: Duration) -> Result<Self, StateError> {
        let mut fresh = [0u8; 32];
        aws_lc_rs::rand::fill(&mut fresh).map_err(|_| StateError::Corrupt("no randomness".into()))?;
        let secret = state.tokens().secret(KEY_NAME, &fresh).await?;
        Ok(Self { key: hmac::Key::new(hmac::HMAC_SHA256, &secret), ttl, max_life: DEFAULT_MAX_LIFE, state })
    }

    /// Caps a login's total life (sliding refreshes never go past it).
    pub fn with_max_life(mut self, max_life: Duration) -> Self {
        self.max_life = max_life;
        self
    }

    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// A token for `identity`, valid for the configured time: a new login.
    pub fn issue(&self, identity: &super::Identity) -> (String, Claims) {
        let now = chrono::Utc::now();
        let ttl = secs(self.ttl).min(secs(self.max_life));
        self.sign(Claims {
            sub: identity.user.clone(),
            exp: now.timestamp().saturating_add(ttl),
            sid: uuid::Uuid::new_v4().simple().to_string(),
            ext: ExternalIdentity::of(identity),
            login_at: now.timestamp_millis(),
        })
    }

    /// Whether a verified token is past half its life, so that its session should slide.
    pub fn wants_refresh(&self, claims: &Claims) -> bool {
        let left = claims.exp - chrono::Utc::now().timestamp();
        claims.login_at > 0 && left > 0 && left <= secs(self.ttl) / 2
    }

    /// A fresh token for the same login (so an active browser session does not expire; an idle
    /// one does after `ttl`), carrying `identity` as its source says it is now, and never
    /// valid past the login's `max_life`. `claims` must come from `verify`.
    pub fn refresh(&self, claims: &Claims, identity: &super::Identity) -> Option<(String, Claims)> {
        if !self.wants_refresh(claims) || identity.user != claims.sub {
            return None;
        }
        let now = chrono::Utc::now().timestamp();
        let exp = now.saturating_add(secs(self.ttl)).min(claims.life_ends(self.max_life)?);
        (exp > claims.exp)
            .then(|| self.sign(Claims { exp, ext: ExternalIdentity::of(identity), ..claims.clone() }))
    }

    fn sign(&self, claims: Claims) -> (String, Claims) {
        let body = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims).unwrap_or_default());
        let tag = URL_SAFE_NO_PAD.encode(hmac::sign(&self.key, body.as_bytes()));
        (format!("{PREFIX}{body}.{tag}"), claims)
    }

    /// The claims of a token with a valid signature, not yet checked for expiry or revocation.
    pub fn decode(&self, token: &str) -> Result<Claims, Denial> {
        let rest = token.strip_prefix(PREFIX).ok_or(Denial::InvalidToken)?;
        let (body, tag) = rest.split_once('.').ok_or(Denial::InvalidToken)?;
        let tag = URL_SAFE_NO_PAD.decode(tag).map_err(|_| Denial::InvalidToken)?;
        hmac::verify(&self.key, body.as_bytes(), &tag).map_err(|_| Denial::InvalidToken)?;
        let json = URL_SAFE_NO_PAD.decode(body).map_err(|_| Denial::InvalidToken)?;
        serde_json::from_slice(&json).map_err(|_| Denial::InvalidToken)
    }

    /// Signature, expiry and revocation.
    pub async fn verify(&self, token: &str) -> Result<Claims, VerifyError> {
        let claims = self.decode(token).map_err(VerifyError::Denied)?;
        let now = chrono::Utc::now().timestamp();
        if claims.exp <= now || claims.life_ends(self.max_life).is_some_and(|end| end <= now) {
            return Err(VerifyError::Denied(Denial::ExpiredToken));
        }
        if self.state.tokens().is_revoked(&claims.sid).await.map_err(VerifyError::Store)? {
            return Err(VerifyError::Denied(Denial::RevokedToken));
        }
        Ok(claims)
    }

    /// Revokes a login (this token and every refresh of it) on every replica. The record
    /// outlives every token the login can have: none is valid past the login's `max_life`,
    /// nor past `ttl` from now (a refresh verifies revocation first, so none is issued later).
    pub async fn revoke(&self, token: &str) -> Result<(), VerifyError> {
        let claims = self.decode(token).map_err(VerifyError::Denied)?;
        self.revoke_login(&claims).await
    }

    pub async fn revoke_login(&self, claims: &Claims) -> Result<(), VerifyError> {
        let now = chrono::Utc::now().timestamp();
        let until = now
            .saturating_add(secs(self.ttl))
            .max(claims.exp)
            .max(claims.life_ends(self.max_life).unwrap_or(0));
        self.state.tokens().revoke(&claims.sid, until).await.map_err(VerifyError::Store)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error("{0}")]
    Denied(Denial),
    #[error("{0}")]
    Store(StateError),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn tokens_verify_across_instances_and_fail_when_tampered_expired_or_revoked() {
        let dir = tempfile_dir();
        let state = State::open_sqlite(&dir.join("t.db")).await.unwrap();
        let one = TokenKeys::load(state.clone(), Duration::from_secs(60)).await.unwrap();
        let two = TokenKeys::load(state.clone(), Duration::from_secs(60)).await.unwrap();
        let (token, claims) = one.issue(&local("alice"));
        assert_eq!(two.verify(&token).await.unwrap().sub, "alice", "a second instance accepts it");
        let forged = token.replace(&URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims).unwrap()), &{
            let other = Claims { sub: "root".into(), ..claims.clone() };
            URL_SAFE_NO_PAD.encode(serde_json::to_vec(&other).unwrap())
        });
        assert!(matches!(two.verify(&forged).await, Err(VerifyError::Denied(Denial::InvalidToken))));
        let expired = TokenKeys::load(state.clone(), Duration::ZERO).await.unwrap().issue(&local("alice")).0;
        assert!(matches!(one.verify(&expired).await, Err(VerifyError::Denied(Denial::ExpiredToken))));
        two.revoke(&token).await.unwrap();
        assert!(matches!(one.verify(&token).await, Err(VerifyError::Denied(Denial::RevokedToken))));
        let _ = std::fs::remove_dir_all(dir);
    }

    fn local(user: &str) -> crate::auth::Identity {
        crate::auth::Identity {
            user: user.into(),
            home: format!("/{user}"),
            rules: crate::auth::RuleSet::allow_all(),
            mounts: Vec::new(),
            admin: false,
            upload_mode: crate::types::UploadMode::Atomic,
            source: "local",
        }
    }

    fn tempfile_dir() -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("ferry-token-test-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }
}
