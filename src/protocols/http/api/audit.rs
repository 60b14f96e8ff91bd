//! `GET /api/v1/audit`: the audit trail as the database sink stored it, for administrators,
//! filtered and paged by a cursor (`next`), oldest first.

use axum::Json;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};

use super::AppState;
use super::auth::Authed;
use super::error::ApiError;
use crate::admin::AuditQuery;

#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct AuditParams {
    /// User name.
    user: Option<String>,
    /// Event name (`file.upload`) or ID (`30002`).
    event: Option<String>,
    node: Option<String>,
    /// RFC 3339 time or a duration before now (`2h`).
    since: Option<String>,
    until: Option<String>,
    /// The `next` of the previous page.
    after: Option<i64>,
    /// Records per page, 1-1000 (default 100).
    limit: Option<u32>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AuditPage {
    /// Audit records exactly as written (see docs/audit-events.md).
    #[schema(value_type = Vec<Object>)]
    records: Vec<serde_json::Value>,
    /// Cursor for the next page; absent on the last.
    next: Option<i64>,
}

#[utoipa::path(get, path = "/api/v1/audit", tag = "admin", params(AuditParams),
    responses((status = 200, body = AuditPage),
        (status = 400, body = super::error::ErrorBody), (status = 401, body = super::error::ErrorBody),
        (status = 403, body = super::error::ErrorBody), (status = 503, body = super::error::ErrorBody)))]
pub async fn query(
    State(app): State<AppState>,
    authed: Authed,
    Query(params): Query<AuditParams>,
) -> Result<Json<AuditPage>, ApiError> {
    super::admin::require_admin(&authed)?;
    let limit = params.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::new(StatusCode::BAD_REQUEST, "bad_request", "limit must be 1-1000"));
    }
    let time = |raw: Option<String>| {
        raw.map(|r| crate::admin::parse_audit_time(&r))
            .transpose()
            .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "bad_request", e.to_string()))
    };
    let query = AuditQuery {
        user: params.user,
        event: params.event,
        node: params.node,
        since: time(params.since)?,
        until: time(params.until)?,
        after: params.after,
        limit: limit + 1,
    };
    let mut lines = app.admin.audit_records(&query).await.map_err(|e| {
        tracing::error!(error = %e, "audit query failed");
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", "the audit store cannot answer")
    })?;
    let more = lines.len() > limit as usize;
    lines.truncate(limit as usize);
    let next = if more { lines.last().map(|l| l.row) } else { None };
    let records = lines.into_iter().filter_map(|l| serde_json::from_str(&l.record).ok()).collect();
    Ok(Json(AuditPage { records, next }))
}
