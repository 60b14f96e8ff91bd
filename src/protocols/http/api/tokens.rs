//! `POST /api/v1/auth/token` (log in, get a bearer token) and `DELETE` (log out everywhere).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Serialize;

use super::AppState;
use super::auth::Authed;
use super::error::ApiError;

#[derive(Serialize, utoipa::ToSchema)]
pub struct TokenReply {
    token: String,
    token_type: &'static str,
    expires_in: u64,
}

#[utoipa::path(post, path = "/api/v1/auth/token", tag = "auth", security(("basic" = [])),
    responses((status = 200, body = TokenReply), (status = 401, body = super::error::ErrorBody),
        (status = 403, body = super::error::ErrorBody)))]
pub async fn issue(State(app): State<AppState>, authed: Authed) -> Result<Json<TokenReply>, ApiError> {
    // A token minted with a key would outlive the key's revocation.
    authed.not_by_api_key()?;
    let issued = app.sessions.issue_token(&authed.identity).ok_or_else(|| {
        ApiError::new(StatusCode::NOT_IMPLEMENTED, "unsupported", "tokens are not enabled on this server")
    })?;
    Ok(Json(TokenReply {
        token: issued.token,
        token_type: "Bearer",
        expires_in: issued.expires_in.as_secs(),
    }))
}

#[utoipa::path(delete, path = "/api/v1/auth/token", tag = "auth", security(("bearer" = [])),
    responses((status = 204, description = "Revoked on every replica"), (status = 400, body = super::error::ErrorBody),
        (status = 401, body = super::error::ErrorBody)))]
pub async fn revoke(State(app): State<AppState>, authed: Authed) -> Result<StatusCode, ApiError> {
    // Only the token itself can log itself out; Basic credentials have nothing to revoke.
    let token = authed.token.ok_or_else(ApiError::unauthorized)?;
    app.sessions.revoke_token(&token).await.map_err(|_| ApiError::unauthorized())?;
    Ok(StatusCode::NO_CONTENT)
}
