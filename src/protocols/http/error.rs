//! `SessionError` → HTTP status and a JSON body `{code, message}`: the only place that decides.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::session::{PathError, SessionError};

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
}

#[derive(Serialize)]
struct Body<'a> {
    code: &'a str,
    message: &'a str,
}

/// Every error's body, for the OpenAPI document.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// Stable machine-readable code, e.g. `not_found`, `permission_denied`.
    pub code: String,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self { status, code, message: message.into() }
    }

    pub fn unauthorized() -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", "authentication required")
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }
}

impl From<SessionError> for ApiError {
    fn from(e: SessionError) -> Self {
        use StatusCode as S;
        let (status, code) = match &e {
            SessionError::NotFound(_) => (S::NOT_FOUND, "not_found"),
            SessionError::PermissionDenied { .. } => (S::FORBIDDEN, "permission_denied"),
            SessionError::Escapes(_) | SessionError::InvalidPath(PathError::Escapes) => {
                (S::FORBIDDEN, "outside_home")
            }
            SessionError::InvalidPath(_) => (S::BAD_REQUEST, "invalid_path"),
            SessionError::AlreadyExists(_) => (S::CONFLICT, "already_exists"),
            SessionError::NotADirectory(_) => (S::CONFLICT, "not_a_folder"),
            SessionError::IsADirectory(_) => (S::CONFLICT, "is_a_folder"),
            SessionError::NotEmpty(_) => (S::CONFLICT, "folder_not_empty"),
            SessionError::Unsupported(_) => (S::NOT_IMPLEMENTED, "unsupported"),
            SessionError::ShuttingDown => (S::SERVICE_UNAVAILABLE, "shutting_down"),
            SessionError::NoSpace => (S::INSUFFICIENT_STORAGE, "no_space"),
            SessionError::Storage(_) => (S::SERVICE_UNAVAILABLE, "storage_error"),
        };
        Self::new(status, code, e.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response =
            (self.status, Json(Body { code: self.code, message: &self.message })).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Basic realm=\"ferry\", Bearer"));
        }
        response
    }
}
