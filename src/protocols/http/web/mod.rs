//! The browser side: the embedded file manager page and its cookie session (login sets an
//! HttpOnly session cookie holding a bearer token plus a CSRF token the page sends back).

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

use super::AppState;
use super::auth::{Authed, CSRF_COOKIE, SESSION_COOKIE, csrf_token};
use super::error::ApiError;
use crate::session::{ConnectionInfo, Credentials, LoginError};
use crate::types::Secret;

const INDEX: &str = include_str!("index.html");
const APP_JS: &str = include_str!("app.js");
const APP_CSS: &str = include_str!("app.css");

fn asset(content_type: &'static str, body: &'static str) -> Response {
    ([(header::CONTENT_TYPE, content_type)], body).into_response()
}

pub async fn index() -> Response {
    asset("text/html; charset=utf-8", INDEX)
}

pub async fn app_js() -> Response {
    asset("text/javascript; charset=utf-8", APP_JS)
}

pub async fn app_css() -> Response {
    asset("text/css; charset=utf-8", APP_CSS)
}

#[derive(Deserialize, utoipa::ToSchema)]
pub struct Login {
    username: String,
    password: String,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct LoggedIn {
    user: String,
    csrf_token: String,
    expires_in: u64,
}

pub fn cookie_header(name: &str, value: &str, max_age: u64, http_only: bool) -> HeaderValue {
    let flags = if http_only { "; HttpOnly" } else { "" };
    HeaderValue::from_str(&format!(
        "{name}={value}; Path=/; Max-Age={max_age}; Secure; SameSite=Strict{flags}"
    ))
    .unwrap_or_else(|_| HeaderValue::from_static(""))
}

#[utoipa::path(post, path = "/api/v1/auth/login", tag = "auth", request_body = Login, security(),
    responses((status = 200, description = "Sets the session and CSRF cookies", body = LoggedIn),
        (status = 415, body = super::error::ErrorBody), (status = 422, body = super::error::ErrorBody),
        (status = 400, body = super::error::ErrorBody), (status = 401, body = super::error::ErrorBody)))]
pub async fn login(
    State(app): State<AppState>,
    axum::Extension(conn): axum::Extension<ConnectionInfo>,
    Json(body): Json<Login>,
) -> Result<Response, ApiError> {
    let credentials = Credentials::Password(Secret::new(body.password));
    let identity = match app.sessions.login(&conn, &body.username, &credentials).await {
        Ok(identity) => identity,
        Err(LoginError::Denied) => {
            return Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "wrong user name or password",
            ));
        }
        Err(LoginError::Unavailable) => {
            return Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "auth_unavailable",
                "try again shortly",
            ));
        }
        Err(LoginError::TooManySessions(_)) => {
            return Err(ApiError::new(StatusCode::TOO_MANY_REQUESTS, "session_limit", "too many sessions"));
        }
    };
    let issued = app.sessions.issue_token(&identity).ok_or_else(|| {
        ApiError::new(StatusCode::NOT_IMPLEMENTED, "unsupported", "sessions are not enabled")
    })?;
    let login_id = app.sessions.token_login_id(&issued.token).unwrap_or_default();
    let csrf = csrf_token(&login_id);
    let ttl = issued.expires_in.as_secs();
    let mut response =
        Json(LoggedIn { user: identity.user, csrf_token: csrf.clone(), expires_in: ttl }).into_response();
    let headers = response.headers_mut();
    headers.append(header::SET_COOKIE, cookie_header(SESSION_COOKIE, &issued.token, ttl, true));
    headers.append(header::SET_COOKIE, cookie_header(CSRF_COOKIE, &csrf, ttl, false));
    Ok(response)
}

#[utoipa::path(post, path = "/api/v1/auth/logout", tag = "auth",
    responses((status = 204, description = "Logged out; cookies cleared"), (status = 401, body = super::error::ErrorBody),
        (status = 403, body = super::error::ErrorBody)))]
pub async fn logout(State(app): State<AppState>, authed: Authed) -> Result<Response, ApiError> {
    if let Some(token) = &authed.token {
        app.sessions.revoke_token(token).await.map_err(|_| ApiError::unauthorized())?;
    }
    let mut headers = HeaderMap::new();
    headers.append(header::SET_COOKIE, cookie_header(SESSION_COOKIE, "", 0, true));
    headers.append(header::SET_COOKIE, cookie_header(CSRF_COOKIE, "", 0, false));
    Ok((StatusCode::NO_CONTENT, headers).into_response())
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct Me {
    user: String,
}

#[utoipa::path(get, path = "/api/v1/me", tag = "auth",
    responses((status = 200, body = Me), (status = 401, body = super::error::ErrorBody)))]
pub async fn me(authed: Authed) -> Json<Me> {
    Json(Me { user: authed.identity.user })
}
