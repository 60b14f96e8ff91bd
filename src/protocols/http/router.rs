//! The routes and the headers every response carries.

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

use super::api::{admin, audit, files, keys, openapi, tokens};
use super::error::ApiError;
use super::listen::deadlines;
use super::{AppState, auth, web};
use crate::session::ConnectionInfo;

/// JSON bodies are small; uploads stream and are not limited by this.
pub(super) const JSON_LIMIT: usize = 64 << 10;

pub fn router(app: AppState) -> Router {
    Router::new()
        // File bodies stream and are not bound by the JSON limit.
        .route(
            "/api/v1/files",
            get(files::get_root).post(files::post_form_root).layer(DefaultBodyLimit::disable()),
        )
        .route(
            "/api/v1/files/",
            get(files::get_root).post(files::post_form_root).layer(DefaultBodyLimit::disable()),
        )
        .route(
            "/api/v1/files/{*path}",
            get(files::get_path)
                .put(files::put_path)
                .post(files::post_form)
                .delete(files::delete_path)
                .layer(DefaultBodyLimit::disable()),
        )
        .route("/api/v1/folders/{*path}", post(files::make_folder))
        .route("/api/v1/rename", post(files::rename))
        .route("/api/v1/copy", post(files::copy))
        .route("/api/v1/auth/token", post(tokens::issue).delete(tokens::revoke))
        .route("/api/v1/auth/login", post(web::login))
        .route("/api/v1/auth/logout", post(web::logout))
        .route("/api/v1/me", get(web::me))
        .route("/api/v1/keys", get(keys::list).post(keys::create))
        .route("/api/v1/health", get(admin::health))
        .route("/api/v1/admin/users", get(admin::list_users).post(admin::create_user))
        .route(
            "/api/v1/admin/users/{name}",
            get(admin::get_user).patch(admin::update_user).delete(admin::delete_user),
        )
        .route("/api/v1/admin/users/{name}/password", axum::routing::put(admin::set_password))
        .route("/api/v1/admin/sessions", get(admin::list_sessions))
        .route("/api/v1/audit", get(audit::query))
        .route("/api/v1/admin/sessions/{id}", axum::routing::delete(admin::end_session))
        .route("/api/v1/admin/users/{name}/keys", post(admin::add_ssh_key))
        .route("/api/v1/admin/users/{name}/keys/{fingerprint}", axum::routing::delete(admin::remove_ssh_key))
        .route("/api/v1/keys/{id}", axum::routing::delete(keys::revoke))
        .route("/api/v1/openapi.json", get(openapi::document))
        .route("/", get(web::index))
        .route("/assets/app.js", get(web::app_js))
        .route("/assets/app.css", get(web::app_css))
        .fallback(|| async { ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such endpoint") })
        .layer(DefaultBodyLimit::max(JSON_LIMIT))
        .layer(axum::middleware::from_fn_with_state(app.clone(), deadlines::body_deadlines))
        .layer(axum::middleware::from_fn(json_errors))
        .layer(axum::middleware::map_response(security_headers))
        .layer(axum::middleware::from_fn(no_basic_prompt_for_the_page))
        .layer(axum::middleware::from_fn_with_state(app.clone(), refresh_browser_session))
        .with_state(app)
}

/// Sliding expiry for the browser: a successful request authenticated by its session cookie,
/// past half the cookie's life, gets a fresh one (same login, same CSRF token). A request
/// authenticated by anything else refreshes nothing. An idle session expires after
/// `token_ttl`; an active one at the login's `session_max_life`.
async fn refresh_browser_session(
    axum::extract::State(app): axum::extract::State<AppState>,
    mut request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let used = auth::CookieLogin::default();
    request.extensions_mut().insert(used.clone());
    let conn = request.extensions().get::<ConnectionInfo>().copied();
    let mut response = next.run(request).await;
    let cookie = used.take().filter(|_| response.status().is_success());
    let fresh = match (cookie, conn) {
        (Some(cookie), Some(conn)) => app.sessions.refresh_token(&cookie, &conn).await,
        _ => None,
    };
    if let Some(issued) = fresh {
        let ttl = issued.expires_in.as_secs();
        let cookie = web::cookie_header(auth::SESSION_COOKIE, &issued.token, ttl, true);
        response.headers_mut().append(header::SET_COOKIE, cookie);
    }
    response
}

/// The page's own requests (`X-Requested-With`) get no Basic challenge on 401: browsers would
/// answer it with their login popup instead of letting the page show its login form.
async fn no_basic_prompt_for_the_page(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let from_page = request.headers().contains_key("x-requested-with");
    let mut response = next.run(request).await;
    if from_page && response.headers().contains_key(header::WWW_AUTHENTICATE) {
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer realm=\"ferry\""));
    }
    response
}

/// Rejections from axum's extractors (bad JSON, wrong content type, bad query) arrive as plain
/// text: give them the same JSON `{code, message}` as every other error.
async fn json_errors(request: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let response = next.run(request).await;
    let plain = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/plain"));
    let status = response.status();
    if !plain || !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    let body = axum::body::to_bytes(response.into_body(), 16 << 10).await.unwrap_or_default();
    let code = match status {
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
        StatusCode::UNPROCESSABLE_ENTITY => "invalid_body",
        StatusCode::PAYLOAD_TOO_LARGE => "too_large",
        s if s.is_server_error() => "internal",
        _ => "bad_request",
    };
    let mut error = ApiError::bad_request(String::from_utf8_lossy(&body).into_owned());
    error.status = status;
    error.code = code;
    error.into_response()
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
