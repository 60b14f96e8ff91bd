//! The HTTP authentication service: each login is POSTed as JSON to a configured URL, and the
//! JSON answer allows it (with the user's home, rules, mounts) or refuses it. Anything else —
//! a timeout, a redirect, a status other than 200, a body that is not the documented JSON —
//! fails closed. The contract is docs/auth-http.md.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use super::{
    AuthContext, AuthError, Authenticator, Credentials, Denial, Identity, RuleSet, Unavailable,
    home_from_template, validate_home, validate_mount,
};
use crate::clients::{self, HttpClient, HttpClientError};
use crate::config::AuthHttpConfig;
use crate::state::{MountRecord, RuleRecord};
use crate::types::UploadMode;

/// Why `[auth.http]` cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum HttpConfigError {
    #[error("auth.http.ca_file {0}")]
    CaFile(#[source] crate::clients::ClientTlsError),
    #[error("auth.http: {0}")]
    Client(#[source] reqwest::Error),
}

pub struct HttpAuthenticator {
    client: reqwest::Client,
    url: String,
    bearer: Option<String>,
    default_upload_mode: UploadMode,
}

#[derive(Serialize)]
struct Request<'a> {
    username: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    password: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    public_key: Option<&'a str>,
    protocol: &'static str,
    peer_address: Option<String>,
    /// A browser session sliding: no credential, only "is this user still allowed, and as what?".
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    recheck: bool,
}

/// The largest answer read; the answer is a small JSON object.
const MAX_ANSWER: usize = 64 << 10;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Answer {
    allow: bool,
    home: Option<String>,
    #[serde(default)]
    rules: Vec<RuleRecord>,
    #[serde(default)]
    mounts: Vec<MountRecord>,
    upload_mode: Option<String>,
    #[serde(default)]
    admin: bool,
}

impl HttpAuthenticator {
    pub fn new(config: &AuthHttpConfig, default_upload_mode: UploadMode) -> Result<Self, HttpConfigError> {
        let client = clients::http_client(HttpClient {
            timeout: config.timeout,
            connect_timeout: Some(config.timeout),
            ca_file: config.ca_file.as_deref(),
        })
        .map_err(|e| match e {
            HttpClientError::CaFile(e) => HttpConfigError::CaFile(e),
            HttpClientError::Build(e) => HttpConfigError::Client(e),
        })?;
        Ok(Self {
            client,
            url: config.url.clone(),
            bearer: config.bearer_secret.as_ref().map(|s| s.expose().clone()),
            default_upload_mode,
        })
    }

    fn identity(&self, user: &str, answer: Answer) -> Result<Identity, AuthError> {
        let malformed = |why: String| AuthError::Unavailable(Unavailable::Service(why));
        for mount in &answer.mounts {
            validate_mount(mount).map_err(|e| malformed(e.to_string()))?;
        }
        // Without a home in the answer, `/{user}`: never the storage root for a name like `.`.
        let home = match answer.home {
            Some(home) => validate_home(&home).map(|()| home).map_err(&malformed)?,
            None => {
                home_from_template("/{user}", user).map_err(|_| AuthError::Denied(Denial::UnknownUser))?
            }
        };
        let upload_mode = match answer.upload_mode.as_deref() {
            None => self.default_upload_mode,
            Some(mode) => {
                UploadMode::parse(mode).ok_or_else(|| malformed(format!("upload_mode `{mode}`")))?
            }
        };
        // No rules in the answer: everything in the home (a new user's default).
        let rules = RuleSet::compile(answer.rules).map_err(|e| malformed(e.to_string()))?;
        Ok(Identity {
            user: user.to_string(),
            home,
            rules,
            mounts: answer.mounts,
            admin: answer.admin,
            upload_mode,
            source: "http",
        })
    }
}

#[async_trait]
impl Authenticator for HttpAuthenticator {
    async fn authenticate(
        &self,
        user: &str,
        credentials: &Credentials,
        context: &AuthContext,
    ) -> Result<Identity, AuthError> {
        let (password, public_key) = match credentials {
            Credentials::Password(secret) if secret.expose().is_empty() => {
                return Err(AuthError::Denied(Denial::EmptyPassword));
            }
            Credentials::Password(secret) => (Some(secret.expose().as_str()), None),
            Credentials::PublicKey(key) => (None, Some(key.as_str())),
            // Tokens and API keys are issued by this server for local users.
            Credentials::Token(_) | Credentials::ApiKey(_) => {
                return Err(AuthError::Denied(Denial::UnknownUser));
            }
        };
        let body = Request {
            username: user,
            password,
            public_key,
            protocol: context.protocol.as_str(),
            peer_address: context.peer.0.map(|a| a.ip().to_string()),
            recheck: false,
        };
        let answer = self.ask(&body).await?;
        if !answer.allow {
            return Err(AuthError::Denied(Denial::RefusedByService));
        }
        self.identity(user, answer)
    }

    async fn recheck(&self, identity: &Identity, context: &AuthContext) -> Result<Identity, AuthError> {
        if identity.source != "http" {
            return Err(AuthError::Denied(Denial::UnknownUser));
        }
        let body = Request {
            username: &identity.user,
            password: None,
            public_key: None,
            protocol: context.protocol.as_str(),
            peer_address: context.peer.0.map(|a| a.ip().to_string()),
            recheck: true,
        };
        let answer = self.ask(&body).await?;
        if !answer.allow {
            return Err(AuthError::Denied(Denial::RefusedByService));
        }
        self.identity(&identity.user, answer)
    }
}

impl HttpAuthenticator {
    /// POSTs one question and reads the answer, at most `MAX_ANSWER` bytes whatever the
    /// framing (a chunked body is counted as it arrives, never read whole first).
    async fn ask(&self, body: &Request<'_>) -> Result<Answer, AuthError> {
        let mut request = self.client.post(&self.url).json(body);
        if let Some(bearer) = &self.bearer {
            request = request.bearer_auth(bearer);
        }
        let unavailable = |why: String| AuthError::Unavailable(Unavailable::Service(why));
        let mut response = request.send().await.map_err(|e| {
            // Without the URL: it may carry credentials, and this text reaches the audit trail.
            unavailable(if e.is_timeout() {
                "timed out".into()
            } else {
                format!("unreachable: {}", e.without_url())
            })
        })?;
        if response.status() != reqwest::StatusCode::OK {
            return Err(unavailable(format!("answered {}", response.status())));
        }
        let too_large = || unavailable("answer larger than 64 KiB".into());
        if response.content_length().is_some_and(|len| len > MAX_ANSWER as u64) {
            return Err(too_large());
        }
        let mut bytes = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| unavailable(format!("reading the answer: {}", e.without_url())))?
        {
            if bytes.len().saturating_add(chunk.len()) > MAX_ANSWER {
                return Err(too_large());
            }
            bytes.extend_from_slice(&chunk);
        }
        serde_json::from_slice(&bytes).map_err(|e| unavailable(format!("malformed answer: {e}")))
    }
}
