//! `/api/v1/keys`: a user's own API keys (create, list, revoke). Programs then send
//! `X-API-Key: ferry_k1_…` (or `Authorization: Bearer ferry_k1_…`).

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};

use super::AppState;
use super::auth::Authed;
use super::error::ApiError;
use crate::admin::AdminError;

#[derive(Deserialize, utoipa::ToSchema)]
pub struct NewKey {
    /// What the key is for, e.g. "nightly export".
    name: String,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct CreatedKey {
    id: String,
    name: String,
    /// The key itself: shown once, stored only as a hash.
    key: String,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct KeyInfo {
    id: String,
    name: String,
    created_at: String,
    last_used_at: Option<String>,
}

fn admin_error(e: AdminError) -> ApiError {
    match e {
        AdminError::InvalidKey(why) => ApiError::bad_request(why),
        other => ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "state_error", other.to_string()),
    }
}

#[utoipa::path(post, path = "/api/v1/keys", tag = "keys", request_body = NewKey,
    responses((status = 201, body = CreatedKey), (status = 400, body = super::error::ErrorBody),
        (status = 401, body = super::error::ErrorBody), (status = 403, body = super::error::ErrorBody),
        (status = 415, body = super::error::ErrorBody),
        (status = 422, body = super::error::ErrorBody)))]
pub async fn create(
    State(app): State<AppState>,
    authed: Authed,
    Json(body): Json<NewKey>,
) -> Result<(StatusCode, Json<CreatedKey>), ApiError> {
    authed.not_by_api_key()?;
    let (id, key) = app.admin.create_api_key(&authed.identity.user, &body.name).await.map_err(admin_error)?;
    Ok((StatusCode::CREATED, Json(CreatedKey { id, name: body.name.trim().to_string(), key })))
}

#[utoipa::path(get, path = "/api/v1/keys", tag = "keys",
    responses((status = 200, body = Vec<KeyInfo>), (status = 401, body = super::error::ErrorBody)))]
pub async fn list(State(app): State<AppState>, authed: Authed) -> Result<Json<Vec<KeyInfo>>, ApiError> {
    let keys = app.admin.api_keys(&authed.identity.user).await.map_err(admin_error)?;
    Ok(Json(
        keys.into_iter()
            .map(|k| KeyInfo {
                id: k.id,
                name: k.name,
                created_at: k.created_at,
                last_used_at: k.last_used_at,
            })
            .collect(),
    ))
}

#[utoipa::path(delete, path = "/api/v1/keys/{id}", tag = "keys", params(("id" = String, Path)),
    responses((status = 204, description = "Revoked"), (status = 401, body = super::error::ErrorBody),
        (status = 404, body = super::error::ErrorBody)))]
pub async fn revoke(
    State(app): State<AppState>,
    authed: Authed,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    if app.admin.revoke_api_key(&authed.identity.user, &id).await.map_err(admin_error)? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::new(StatusCode::NOT_FOUND, "not_found", format!("no API key {id}")))
    }
}
