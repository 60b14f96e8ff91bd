//! The routes and the headers every response carries.

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use axum::routing::{get, post};

use super::error::ApiError;
use super::{AppState, browser, files, openapi, tokens};

/// JSON bodies are small; uploads stream and are not limited by this.
const JSON_LIMIT: usize = 64 << 10;

pub fn router(app: AppState) -> Router {
    Router::new()
        .route("/api/v1/files", get(files::get_root))
        .route("/api/v1/files/", get(files::get_root))
        .route("/api/v1/files/{*path}", get(files::get_path).put(files::put_path).delete(files::delete_path))
        .route("/api/v1/folders/{*path}", post(files::make_folder))
        .route("/api/v1/rename", post(files::rename))
        .route("/api/v1/copy", post(files::copy))
        .route("/api/v1/auth/token", post(tokens::issue).delete(tokens::revoke))
        .route("/api/v1/auth/login", post(browser::login))
        .route("/api/v1/auth/logout", post(browser::logout))
        .route("/api/v1/me", get(browser::me))
        .route("/api/v1/openapi.json", get(openapi::document))
        .route("/", get(browser::index))
        .route("/assets/app.js", get(browser::app_js))
        .route("/assets/app.css", get(browser::app_css))
        .fallback(|| async { ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such endpoint") })
        .layer(DefaultBodyLimit::max(JSON_LIMIT))
        .layer(axum::middleware::map_response(security_headers))
        .with_state(app)
}

/// HSTS, a CSP that allows only our own resources, no framing, no sniffing, no caching of API
/// answers.
async fn security_headers(mut response: Response) -> Response {
    let h = response.headers_mut();
    let set = [
        (header::STRICT_TRANSPORT_SECURITY, "max-age=31536000; includeSubDomains"),
        (
            header::CONTENT_SECURITY_POLICY,
            "default-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'; object-src 'none'",
        ),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::REFERRER_POLICY, "no-referrer"),
        (header::CACHE_CONTROL, "no-store"),
    ];
    for (name, value) in set {
        h.insert(name, HeaderValue::from_static(value));
    }
    response
}
