//! Times each backend of the chain and labels the answer, for
//! `ferry_auth_backend_duration_seconds{backend, outcome}`: a slow or failing directory shows
//! apart from users typing wrong passwords.

use std::sync::Arc;

use async_trait::async_trait;
use tokio::time::Instant;

use super::{AuthContext, AuthError, Authenticator, Credentials, Denial, Identity};
use crate::telemetry::metrics;

pub struct Timed {
    inner: Arc<dyn Authenticator>,
    backend: &'static str,
}

impl Timed {
    /// `backend` is a bounded label: local, ldap or http.
    pub fn wrap(inner: Arc<dyn Authenticator>, backend: &'static str) -> Arc<dyn Authenticator> {
        Arc::new(Self { inner, backend })
    }
}

#[async_trait]
impl Authenticator for Timed {
    async fn authenticate(
        &self,
        user: &str,
        credentials: &Credentials,
        context: &AuthContext,
    ) -> Result<Identity, AuthError> {
        let started = Instant::now();
        let result = self.inner.authenticate(user, credentials, context).await;
        let outcome = match &result {
            Ok(_) => "ok",
            Err(AuthError::Denied(Denial::UnknownUser)) => "unknown_user",
            Err(AuthError::Denied(_)) => "denied",
            Err(AuthError::Unavailable(_)) => "error",
        };
        metrics::auth_backend(self.backend, outcome, started.elapsed());
        result
    }

    async fn recheck(&self, identity: &Identity, context: &AuthContext) -> Result<Identity, AuthError> {
        self.inner.recheck(identity, context).await
    }
}
