//! Several authenticators asked in order (e.g. local, then the HTTP service). The first
//! definitive answer wins: an identity, or a refusal of a user the backend knows. "Unknown user"
//! passes to the next; a backend that cannot answer makes the login fail closed unless a later
//! backend vouches for the user.

use std::sync::Arc;

use async_trait::async_trait;

use super::{AuthContext, AuthError, Authenticator, Credentials, Denial, Identity};

pub struct Chain {
    backends: Vec<Arc<dyn Authenticator>>,
}

impl Chain {
    pub fn new(backends: Vec<Arc<dyn Authenticator>>) -> Self {
        Self { backends }
    }
}

#[async_trait]
impl Authenticator for Chain {
    async fn authenticate(
        &self,
        user: &str,
        credentials: &Credentials,
        context: &AuthContext,
    ) -> Result<Identity, AuthError> {
        let mut unavailable = None;
        for backend in &self.backends {
            match backend.authenticate(user, credentials, context).await {
                Ok(identity) => return Ok(identity),
                Err(AuthError::Denied(Denial::UnknownUser)) => continue,
                Err(AuthError::Unavailable(why)) => {
                    unavailable.get_or_insert(why);
                }
                Err(denied) => return Err(denied),
            }
        }
        Err(match unavailable {
            Some(why) => AuthError::Unavailable(why),
            None => AuthError::Denied(Denial::UnknownUser),
        })
    }

    async fn recheck(&self, identity: &Identity, context: &AuthContext) -> Result<Identity, AuthError> {
        for backend in &self.backends {
            match backend.recheck(identity, context).await {
                Err(AuthError::Denied(Denial::UnknownUser)) => continue,
                answer => return answer,
            }
        }
        Err(AuthError::Denied(Denial::UnknownUser))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::{PeerAddr, Protocol, Secret};

    struct Fixed(fn() -> Result<Identity, AuthError>);

    #[async_trait]
    impl Authenticator for Fixed {
        async fn authenticate(
            &self,
            _: &str,
            _: &Credentials,
            _: &AuthContext,
        ) -> Result<Identity, AuthError> {
            (self.0)()
        }
    }

    fn unknown() -> Result<Identity, AuthError> {
        Err(AuthError::Denied(Denial::UnknownUser))
    }
    fn wrong() -> Result<Identity, AuthError> {
        Err(AuthError::Denied(Denial::WrongPassword))
    }
    fn away() -> Result<Identity, AuthError> {
        Err(AuthError::Unavailable(crate::auth::Unavailable::Directory("away".into())))
    }
    fn known() -> Result<Identity, AuthError> {
        Ok(Identity {
            user: "u".into(),
            home: "/u".into(),
            rules: crate::auth::RuleSet::allow_all(),
            mounts: Vec::new(),
            admin: false,
            upload_mode: crate::types::UploadMode::Atomic,
            source: "test",
        })
    }

    async fn ask(chain: Vec<fn() -> Result<Identity, AuthError>>) -> Result<Identity, AuthError> {
        let backends = chain.into_iter().map(|f| Arc::new(Fixed(f)) as Arc<dyn Authenticator>).collect();
        let context = AuthContext { protocol: Protocol::Ssh, peer: PeerAddr(None) };
        Chain::new(backends)
            .authenticate("u", &Credentials::Password(Secret::new("p".into())), &context)
            .await
    }

    #[tokio::test]
    async fn the_first_definitive_answer_wins_and_an_absent_backend_fails_closed() {
        assert!(ask(vec![unknown, known]).await.is_ok());
        assert!(matches!(ask(vec![wrong, known]).await, Err(AuthError::Denied(Denial::WrongPassword))));
        assert!(ask(vec![away, known]).await.is_ok(), "a later backend may vouch");
        assert!(matches!(ask(vec![away, unknown]).await, Err(AuthError::Unavailable(_))));
        assert!(matches!(ask(vec![unknown, unknown]).await, Err(AuthError::Denied(Denial::UnknownUser))));
    }
}
