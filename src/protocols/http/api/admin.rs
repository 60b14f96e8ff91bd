//! `/api/v1/admin/…`: user management for users with the admin role, through `admin` (which
//! validates and audits every change), plus `/api/v1/health`.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};

use super::AppState;
use super::auth::Authed;
use super::error::ApiError;
use crate::admin::{AdminError, StateError, UserChange, UserRecord, UserSpec, parse_mount, parse_rule};
use crate::types::{Secret, UploadMode};

pub(super) fn require_admin(authed: &Authed) -> Result<(), ApiError> {
    if authed.identity.admin {
        Ok(())
    } else {
        Err(ApiError::new(StatusCode::FORBIDDEN, "not_admin", "this needs the admin role"))
    }
}

fn admin_error(e: AdminError) -> ApiError {
    use StatusCode as S;
    match e {
        AdminError::State(StateError::UserNotFound(name)) => {
            ApiError::new(S::NOT_FOUND, "not_found", format!("user `{name}` not found"))
        }
        AdminError::State(StateError::KeyNotFound(key)) => {
            ApiError::new(S::NOT_FOUND, "not_found", format!("no key {key}"))
        }
        AdminError::State(e @ (StateError::UserExists(_) | StateError::KeyExists(_))) => {
            ApiError::new(S::CONFLICT, "already_exists", e.to_string())
        }
        AdminError::State(e) => ApiError::new(S::SERVICE_UNAVAILABLE, "state_error", e.to_string()),
        other => ApiError::bad_request(other.to_string()),
    }
}

/// A user as the API shows it (no password hash).
#[derive(Serialize, utoipa::ToSchema)]
pub struct UserView {
    name: String,
    home: String,
    enabled: bool,
    admin: bool,
    has_password: bool,
    upload_mode: Option<String>,
    /// `PATH=perm,perm`
    rules: Vec<String>,
    /// `PATH=STORAGE[:PREFIX]`
    mounts: Vec<String>,
    /// SHA256 fingerprints of authorized SSH keys.
    keys: Vec<String>,
}

impl From<UserRecord> for UserView {
    fn from(u: UserRecord) -> Self {
        Self {
            rules: u.rules.iter().map(|r| format!("{}={}", r.path, r.permissions.join(","))).collect(),
            mounts: u
                .mounts
                .iter()
                .map(|m| {
                    if m.prefix.is_empty() {
                        format!("{}={}", m.path, m.storage)
                    } else {
                        format!("{}={}:{}", m.path, m.storage, m.prefix)
                    }
                })
                .collect(),
            keys: u.keys.iter().map(|k| k.fingerprint.clone()).collect(),
            upload_mode: u.upload_mode.map(|m| m.as_str().to_string()),
            name: u.name,
            home: u.home,
            enabled: u.enabled,
            admin: u.admin,
            has_password: u.has_password,
        }
    }
}

#[derive(Deserialize, utoipa::ToSchema)]
pub struct NewUser {
    name: String,
    password: Option<String>,
    home: Option<String>,
    #[serde(default)]
    rules: Vec<String>,
    #[serde(default)]
    mounts: Vec<String>,
    /// Authorized SSH public keys, one authorized_keys line each.
    #[serde(default)]
    keys: Vec<String>,
    upload_mode: Option<String>,
    #[serde(default)]
    admin: bool,
}

/// Fields to change; absent ones stay as they are.
#[derive(Deserialize, utoipa::ToSchema)]
pub struct UserChanges {
    home: Option<String>,
    enabled: Option<bool>,
    admin: Option<bool>,
    rules: Option<Vec<String>>,
    mounts: Option<Vec<String>>,
    upload_mode: Option<String>,
}

#[derive(Deserialize, utoipa::ToSchema)]
pub struct NewPassword {
    password: String,
}

#[derive(Deserialize, utoipa::ToSchema)]
pub struct NewSshKey {
    public_key: String,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct AddedSshKey {
    fingerprint: String,
}

fn upload_mode(raw: Option<&str>) -> Result<Option<UploadMode>, ApiError> {
    raw.map(|m| UploadMode::parse(m).ok_or_else(|| ApiError::bad_request("upload_mode: atomic or in_place")))
        .transpose()
}

#[utoipa::path(get, path = "/api/v1/admin/users", tag = "admin",
    responses((status = 200, body = Vec<UserView>), (status = 401, body = super::error::ErrorBody),
        (status = 403, body = super::error::ErrorBody)))]
pub async fn list_users(
    State(app): State<AppState>,
    authed: Authed,
) -> Result<Json<Vec<UserView>>, ApiError> {
    require_admin(&authed)?;
    let users = app.admin.list_users().await.map_err(admin_error)?;
    Ok(Json(users.into_iter().map(UserView::from).collect()))
}

#[utoipa::path(post, path = "/api/v1/admin/users", tag = "admin", request_body = NewUser,
    responses((status = 201, body = UserView), (status = 400, body = super::error::ErrorBody),
        (status = 401, body = super::error::ErrorBody), (status = 403, body = super::error::ErrorBody),
        (status = 409, body = super::error::ErrorBody), (status = 415, body = super::error::ErrorBody),
        (status = 422, body = super::error::ErrorBody)))]
pub async fn create_user(
    State(app): State<AppState>,
    authed: Authed,
    Json(body): Json<NewUser>,
) -> Result<(StatusCode, Json<UserView>), ApiError> {
    require_admin(&authed)?;
    if body.password.is_none() && body.keys.is_empty() {
        return Err(ApiError::bad_request("a user needs a password or an SSH key"));
    }
    let spec = UserSpec {
        name: body.name.clone(),
        password: body.password.map(Secret::new),
        home: body.home,
        keys: body.keys,
        rules: body.rules.iter().map(|r| parse_rule(r)).collect::<Result<_, _>>().map_err(admin_error)?,
        mounts: body.mounts.iter().map(|m| parse_mount(m)).collect::<Result<_, _>>().map_err(admin_error)?,
        upload_mode: upload_mode(body.upload_mode.as_deref())?,
        admin: body.admin,
    };
    app.admin.acting_as(&authed.identity.user).create_user(spec).await.map_err(admin_error)?;
    let user = app.admin.user(&body.name).await.map_err(admin_error)?;
    Ok((StatusCode::CREATED, Json(user.into())))
}

#[utoipa::path(get, path = "/api/v1/admin/users/{name}", tag = "admin", params(("name" = String, Path)),
    responses((status = 200, body = UserView), (status = 401, body = super::error::ErrorBody),
        (status = 403, body = super::error::ErrorBody), (status = 404, body = super::error::ErrorBody)))]
pub async fn get_user(
    State(app): State<AppState>,
    authed: Authed,
    Path(name): Path<String>,
) -> Result<Json<UserView>, ApiError> {
    require_admin(&authed)?;
    Ok(Json(app.admin.user(&name).await.map_err(admin_error)?.into()))
}

#[utoipa::path(patch, path = "/api/v1/admin/users/{name}", tag = "admin", params(("name" = String, Path)),
    request_body = UserChanges,
    responses((status = 200, body = UserView), (status = 400, body = super::error::ErrorBody),
        (status = 401, body = super::error::ErrorBody), (status = 403, body = super::error::ErrorBody),
        (status = 404, body = super::error::ErrorBody), (status = 415, body = super::error::ErrorBody),
        (status = 422, body = super::error::ErrorBody)))]
pub async fn update_user(
    State(app): State<AppState>,
    authed: Authed,
    Path(name): Path<String>,
    Json(body): Json<UserChanges>,
) -> Result<Json<UserView>, ApiError> {
    require_admin(&authed)?;
    // Check everything first, so a bad field changes nothing.
    let rules = body
        .rules
        .as_ref()
        .map(|rules| rules.iter().map(|r| parse_rule(r)).collect::<Result<Vec<_>, _>>())
        .transpose()
        .map_err(admin_error)?;
    let mounts = body
        .mounts
        .as_ref()
        .map(|mounts| mounts.iter().map(|m| parse_mount(m)).collect::<Result<Vec<_>, _>>())
        .transpose()
        .map_err(admin_error)?;
    let mode = upload_mode(body.upload_mode.as_deref())?;
    let change = UserChange {
        home: body.home.clone(),
        rules,
        mounts,
        upload_mode: body.upload_mode.is_some().then_some(mode),
        enabled: body.enabled,
        admin: body.admin,
    };
    let admin = app.admin.acting_as(&authed.identity.user);
    admin.change_user(&name, change).await.map_err(admin_error)?;
    Ok(Json(admin.user(&name).await.map_err(admin_error)?.into()))
}

#[utoipa::path(delete, path = "/api/v1/admin/users/{name}", tag = "admin", params(("name" = String, Path)),
    responses((status = 204, description = "Removed (files stay)"), (status = 401, body = super::error::ErrorBody),
        (status = 403, body = super::error::ErrorBody), (status = 404, body = super::error::ErrorBody)))]
pub async fn delete_user(
    State(app): State<AppState>,
    authed: Authed,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    require_admin(&authed)?;
    app.admin.acting_as(&authed.identity.user).remove_user(&name).await.map_err(admin_error)?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(put, path = "/api/v1/admin/users/{name}/password", tag = "admin", params(("name" = String, Path)),
    request_body = NewPassword,
    responses((status = 204, description = "Changed"), (status = 400, body = super::error::ErrorBody),
        (status = 401, body = super::error::ErrorBody), (status = 403, body = super::error::ErrorBody),
        (status = 404, body = super::error::ErrorBody), (status = 415, body = super::error::ErrorBody),
        (status = 422, body = super::error::ErrorBody)))]
pub async fn set_password(
    State(app): State<AppState>,
    authed: Authed,
    Path(name): Path<String>,
    Json(body): Json<NewPassword>,
) -> Result<StatusCode, ApiError> {
    require_admin(&authed)?;
    app.admin.user(&name).await.map_err(admin_error)?;
    app.admin
        .acting_as(&authed.identity.user)
        .set_password(&name, Secret::new(body.password))
        .await
        .map_err(admin_error)?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(post, path = "/api/v1/admin/users/{name}/keys", tag = "admin", params(("name" = String, Path)),
    request_body = NewSshKey,
    responses((status = 201, body = AddedSshKey), (status = 400, body = super::error::ErrorBody),
        (status = 401, body = super::error::ErrorBody), (status = 403, body = super::error::ErrorBody),
        (status = 404, body = super::error::ErrorBody), (status = 409, body = super::error::ErrorBody),
        (status = 415, body = super::error::ErrorBody), (status = 422, body = super::error::ErrorBody)))]
pub async fn add_ssh_key(
    State(app): State<AppState>,
    authed: Authed,
    Path(name): Path<String>,
    Json(body): Json<NewSshKey>,
) -> Result<(StatusCode, Json<AddedSshKey>), ApiError> {
    require_admin(&authed)?;
    let fingerprint = app
        .admin
        .acting_as(&authed.identity.user)
        .add_key(&name, &body.public_key)
        .await
        .map_err(admin_error)?;
    Ok((StatusCode::CREATED, Json(AddedSshKey { fingerprint })))
}

#[utoipa::path(delete, path = "/api/v1/admin/users/{name}/keys/{fingerprint}", tag = "admin",
    params(("name" = String, Path), ("fingerprint" = String, Path, description = "SHA256:…")),
    responses((status = 204, description = "Removed"), (status = 400, body = super::error::ErrorBody),
        (status = 401, body = super::error::ErrorBody), (status = 403, body = super::error::ErrorBody),
        (status = 404, body = super::error::ErrorBody)))]
pub async fn remove_ssh_key(
    State(app): State<AppState>,
    authed: Authed,
    Path((name, fingerprint)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    require_admin(&authed)?;
    if !fingerprint.starts_with("SHA256:") {
        return Err(ApiError::bad_request("give the key's SHA256: fingerprint"));
    }
    app.admin.acting_as(&authed.identity.user).remove_key(&name, &fingerprint).await.map_err(admin_error)?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct Health {
    status: &'static str,
    version: &'static str,
}

/// Liveness for load balancers that can only speak HTTPS (no credentials needed).
#[utoipa::path(get, path = "/api/v1/health", tag = "admin", security(), responses((status = 200, body = Health)))]
pub async fn health() -> Json<Health> {
    Json(Health { status: "ok", version: env!("CARGO_PKG_VERSION") })
}

/// One live connection on this replica.
#[derive(Serialize, utoipa::ToSchema)]
pub struct SessionView {
    id: String,
    protocol: String,
    peer: String,
    user: Option<String>,
    since: String,
}

#[utoipa::path(get, path = "/api/v1/admin/sessions", tag = "admin",
    responses((status = 200, body = Vec<SessionView>), (status = 401, body = super::error::ErrorBody),
        (status = 403, body = super::error::ErrorBody)))]
pub async fn list_sessions(
    State(app): State<AppState>,
    authed: Authed,
) -> Result<Json<Vec<SessionView>>, ApiError> {
    require_admin(&authed)?;
    Ok(Json(
        app.sessions
            .live_sessions()
            .into_iter()
            .map(|s| SessionView {
                id: s.id.to_string(),
                protocol: s.protocol.as_str().to_string(),
                peer: s.peer.to_string(),
                user: s.user,
                since: s.since.to_rfc3339(),
            })
            .collect(),
    ))
}

#[utoipa::path(delete, path = "/api/v1/admin/sessions/{id}", tag = "admin", params(("id" = String, Path)),
    responses((status = 204, description = "The connection is being closed"),
        (status = 401, body = super::error::ErrorBody), (status = 403, body = super::error::ErrorBody),
        (status = 404, body = super::error::ErrorBody)))]
pub async fn end_session(
    State(app): State<AppState>,
    authed: Authed,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    require_admin(&authed)?;
    if app.sessions.terminate(&id, &authed.identity.user) {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::new(StatusCode::NOT_FOUND, "not_found", format!("no live session {id} on this server")))
    }
}
