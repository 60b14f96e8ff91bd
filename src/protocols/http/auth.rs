//! Who is calling: HTTP Basic (scripts; the listener is TLS-only) or a bearer token from
//! `POST /api/v1/auth/token`. Every request logs in through the session layer, so the same
//! authenticators, audit events and metrics apply as for SFTP and FTPS.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use super::AppState;
use super::error::ApiError;
use crate::session::{ConnectionInfo, Credentials, Identity, LoginError, Session};
use crate::types::{Protocol, Secret};

/// An authenticated request with its file session.
pub struct Authed {
    pub session: Session,
    pub identity: Identity,
    /// The bearer token the request came with, for logout.
    pub token: Option<String>,
}

/// The browser session cookie (a bearer token, HttpOnly).
pub const SESSION_COOKIE: &str = "ferry_session";
/// The CSRF token, readable by the page's script, sent back in `X-CSRF-Token`.
pub const CSRF_COOKIE: &str = "ferry_csrf";
pub const CSRF_HEADER: &str = "x-csrf-token";

/// The CSRF token of a browser login: derived from its random login id (the same for every
/// refreshed session token), so nothing is stored and any replica can check it.
pub fn csrf_token(login_id: &str) -> String {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, format!("csrf:{login_id}").as_bytes());
    digest.as_ref()[..16].iter().map(|b| format!("{b:02x}")).collect()
}

pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value)
}

/// The user and credentials of a request: the `Authorization` header, else the session cookie
/// (whose unsafe requests must carry the matching CSRF token).
fn credentials(parts: &Parts, app: &AppState) -> Result<(String, Credentials, Option<String>), ApiError> {
    let headers = &parts.headers;
    if let Some(key) = headers.get("x-api-key").and_then(|v| v.to_str().ok()) {
        return Ok((String::new(), Credentials::ApiKey(Secret::new(key.trim().to_string())), None));
    }
    let Some(value) = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()) else {
        let token = cookie(headers, SESSION_COOKIE).ok_or_else(ApiError::unauthorized)?.to_string();
        if !parts.method.is_safe() {
            let sent = headers.get(CSRF_HEADER).and_then(|v| v.to_str().ok()).unwrap_or("");
            let expected = app.sessions.token_login_id(&token).map(|id| csrf_token(&id));
            if sent.is_empty() || expected.as_deref() != Some(sent) {
                return Err(ApiError::new(StatusCode::FORBIDDEN, "csrf", "missing or wrong X-CSRF-Token"));
            }
        }
        let user = app.sessions.token_subject(&token).ok_or_else(ApiError::unauthorized)?;
        return Ok((user, Credentials::Token(Secret::new(token.clone())), Some(token)));
    };
    let (scheme, rest) = value.split_once(' ').ok_or_else(ApiError::unauthorized)?;
    if scheme.eq_ignore_ascii_case("basic") {
        let decoded = STANDARD.decode(rest.trim()).map_err(|_| ApiError::unauthorized())?;
        let text = String::from_utf8(decoded).map_err(|_| ApiError::unauthorized())?;
        let (user, password) = text.split_once(':').ok_or_else(ApiError::unauthorized)?;
        return Ok((user.to_string(), Credentials::Password(Secret::new(password.to_string())), None));
    }
    if scheme.eq_ignore_ascii_case("bearer") && rest.trim().starts_with(crate::session::API_KEY_PREFIX) {
        return Ok((String::new(), Credentials::ApiKey(Secret::new(rest.trim().to_string())), None));
    }
    if scheme.eq_ignore_ascii_case("bearer") {
        let token = rest.trim().to_string();
        let user = app.sessions.token_subject(&token).ok_or_else(ApiError::unauthorized)?;
        return Ok((user, Credentials::Token(Secret::new(token.clone())), Some(token)));
    }
    Err(ApiError::unauthorized())
}

impl FromRequestParts<AppState> for Authed {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, app: &AppState) -> Result<Self, ApiError> {
        let conn = parts.extensions.get::<ConnectionInfo>().copied().ok_or_else(|| {
            ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "connection details missing")
        })?;
        let credentials = credentials(parts, app);
        let (user, credentials, token) = match credentials {
            Ok(found) => found,
            Err(e) => return Err(e),
        };
        let identity = match app.sessions.login(&conn, &user, &credentials).await {
            Ok(identity) => identity,
            Err(LoginError::Denied) => {
                // Every refusal costs the same time, whatever the reason.
                tokio::time::sleep(app.settings.rejection_delay).await;
                return Err(ApiError::unauthorized());
            }
            Err(LoginError::Unavailable) => {
                return Err(ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "auth_unavailable",
                    "authentication is unavailable; try again shortly",
                ));
            }
        };
        let session = app.sessions.open(&identity, &conn, Protocol::Https).await?;
        Ok(Self { session, identity, token })
    }
}
