//! Who is calling: HTTP Basic (scripts; the listener is TLS-only) or a bearer token from
//! `POST /api/v1/auth/token`. Every request is checked by the session layer, so the same
//! authenticators, audit events and metrics apply as for SFTP and FTPS; a Basic request is a
//! login of its own, a token or cookie request continues the login that issued the token.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use super::AppState;
use super::error::ApiError;
use crate::session::{ConnectionInfo, Credentials, Identity, LoginError, Session, continues_a_login};
use crate::types::{Protocol, Secret};

/// An authenticated request with its file session.
pub struct Authed {
    pub session: Session,
    pub identity: Identity,
    /// The bearer token the request came with, for logout.
    pub token: Option<String>,
    /// Authenticated by an API key: such a request may not mint further credentials (keys,
    /// tokens), or a leaked key would outlive its own revocation.
    pub by_api_key: bool,
}

impl Authed {
    /// Refuses requests authenticated by an API key.
    pub fn not_by_api_key(&self) -> Result<(), ApiError> {
        if self.by_api_key {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "forbidden",
                "an API key cannot create credentials; log in with a password",
            ));
        }
        Ok(())
    }
}

/// Put into each request by the router: the session cookie, once it has authenticated the
/// request. Only that cookie may slide; a request authenticated by another credential (an API
/// key, Basic) never refreshes a cookie that came along with it.
#[derive(Clone, Default)]
pub struct CookieLogin(std::sync::Arc<std::sync::Mutex<Option<String>>>);

impl CookieLogin {
    fn set(&self, token: &str) {
        if let Ok(mut slot) = self.0.lock() {
            *slot = Some(token.to_string());
        }
    }

    /// The cookie that authenticated the request, if one did.
    pub fn take(&self) -> Option<String> {
        self.0.lock().ok().and_then(|mut slot| slot.take())
    }
}

/// What a request presented.
struct Presented {
    user: String,
    credentials: Credentials,
    token: Option<String>,
    from_cookie: bool,
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
fn credentials(parts: &Parts, app: &AppState) -> Result<Presented, ApiError> {
    let headers = &parts.headers;
    let api_key = |key: &str| Presented {
        user: String::new(),
        credentials: Credentials::ApiKey(Secret::new(key.trim().to_string())),
        token: None,
        from_cookie: false,
    };
    if let Some(key) = headers.get("x-api-key").and_then(|v| v.to_str().ok()) {
        return Ok(api_key(key));
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
        let credentials = Credentials::Token(Secret::new(token.clone()));
        return Ok(Presented { user, credentials, token: Some(token), from_cookie: true });
    };
    let (scheme, rest) = value.split_once(' ').ok_or_else(ApiError::unauthorized)?;
    if scheme.eq_ignore_ascii_case("basic") {
        let decoded = STANDARD.decode(rest.trim()).map_err(|_| ApiError::unauthorized())?;
        let text = String::from_utf8(decoded).map_err(|_| ApiError::unauthorized())?;
        let (user, password) = text.split_once(':').ok_or_else(ApiError::unauthorized)?;
        // Browsers send cached Basic credentials with any request, also a cross-site form.
        if !parts.method.is_safe() {
            refuse_cross_site(parts)?;
        }
        let credentials = Credentials::Password(Secret::new(password.to_string()));
        return Ok(Presented { user: user.to_string(), credentials, token: None, from_cookie: false });
    }
    if scheme.eq_ignore_ascii_case("bearer") && rest.trim().starts_with(crate::session::API_KEY_PREFIX) {
        return Ok(api_key(rest));
    }
    if scheme.eq_ignore_ascii_case("bearer") {
        let token = rest.trim().to_string();
        let user = app.sessions.token_subject(&token).ok_or_else(ApiError::unauthorized)?;
        let credentials = Credentials::Token(Secret::new(token.clone()));
        return Ok(Presented { user, credentials, token: Some(token), from_cookie: false });
    }
    Err(ApiError::unauthorized())
}

/// A state-changing request from another site (the browser says so in `Sec-Fetch-Site`, or
/// its `Origin` is not this server) is refused: its credentials were sent by the browser, not
/// by the person. Scripts (curl, SDKs) send neither header.
fn refuse_cross_site(parts: &Parts) -> Result<(), ApiError> {
    let headers = &parts.headers;
    let refused = || ApiError::new(StatusCode::FORBIDDEN, "cross_site", "cross-site request refused");
    let site = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok());
    if site.is_some_and(|s| !matches!(s, "same-origin" | "none")) {
        return Err(refused());
    }
    let Some(origin) = headers.get(header::ORIGIN) else { return Ok(()) };
    // HTTP/1.1 names the server in `Host`, HTTP/2 in the `:authority` of the URI.
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .or_else(|| parts.uri.authority().map(|a| a.as_str()));
    let origin_host = origin.to_str().ok().and_then(|o| o.strip_prefix("https://"));
    match (origin_host, host) {
        (Some(origin), Some(host)) if origin.eq_ignore_ascii_case(host) => Ok(()),
        _ => Err(refused()),
    }
}

impl FromRequestParts<AppState> for Authed {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, app: &AppState) -> Result<Self, ApiError> {
        let conn = parts.extensions.get::<ConnectionInfo>().copied().ok_or_else(|| {
            ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "connection details missing")
        })?;
        let Presented { user, credentials, token, from_cookie } = credentials(parts, app)?;
        let by_api_key = matches!(credentials, Credentials::ApiKey(_));
        let identity = match app.sessions.login(&conn, &user, &credentials).await {
            Ok(identity) => identity,
            // The refusal already took `auth.rejection_delay` (session::login's rule).
            Err(LoginError::Denied) => return Err(ApiError::unauthorized()),
            // HTTPS requests are not counted as sessions; kept for completeness.
            Err(LoginError::TooManySessions(_)) => {
                return Err(ApiError::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    "session_limit",
                    "too many sessions",
                ));
            }
            Err(LoginError::Unavailable) => {
                return Err(ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "auth_unavailable",
                    "authentication is unavailable; try again shortly",
                ));
            }
        };
        // Basic sends the password with every request: each is a login and a session of its
        // own. A token or cookie continues the login that issued it.
        let session = if continues_a_login(&credentials) {
            app.sessions.resume(&identity, &conn, Protocol::Https).await?
        } else {
            app.sessions.open(&identity, &conn, Protocol::Https).await?
        };
        if let (true, Some(token), Some(slot)) = (from_cookie, &token, parts.extensions.get::<CookieLogin>())
        {
            slot.set(token);
        }
        Ok(Self { session, identity, token, by_api_key })
    }
}
