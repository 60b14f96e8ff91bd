//! `/api/v1/files/…` and friends: listings, streaming downloads with `Range` and `ETag`,
//! streaming uploads (resumable with `Content-Range`), folders, rename, copy, delete. Every call
//! is one session operation, so rules, jail and audit are those of SFTP and FTPS.

use std::time::{SystemTime, UNIX_EPOCH};

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, Query};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures::StreamExt;
use serde::{Deserialize, Serialize};

use super::auth::Authed;
use super::error::ApiError;
use super::range::{self, Ranged};
use crate::session::{EntryKind, Metadata, OpenWrite, ReadFile, Session, VirtualPath};

/// Listings are sorted and paged in memory, so one is capped; a bigger folder answers 413.
const MAX_LISTING: usize = 100_000;
const DEFAULT_PAGE: usize = 1_000;
/// Bytes read from storage per downloaded chunk.
const CHUNK: usize = 256 << 10;

fn resolve(session: &Session, raw: &str) -> Result<VirtualPath, ApiError> {
    Ok(session.resolve(&VirtualPath::root(), raw)?)
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    #[param(nullable = false, maximum = 2147483647)]
    offset: Option<u32>,
    #[param(nullable = false, minimum = 1, maximum = 10000)]
    limit: Option<u16>,
    #[param(nullable = false)]
    sort: Option<SortBy>,
    #[param(nullable = false)]
    order: Option<SortOrder>,
}

impl ListQuery {
    /// Bounds serde cannot express; checked for files too, so a bad query is never ignored.
    fn check(&self) -> Result<(), ApiError> {
        if self.offset.is_some_and(|o| o > i32::MAX as u32) {
            return Err(ApiError::bad_request("offset: at most 2147483647"));
        }
        if self.limit.is_some_and(|l| !(1..=10_000).contains(&l)) {
            return Err(ApiError::bad_request("limit: 1 to 10000"));
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Copy, Default, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum SortBy {
    #[default]
    Name,
    Size,
    Modified,
}

#[derive(Debug, Clone, Copy, Default, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum SortOrder {
    #[default]
    Asc,
    Desc,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct Entry {
    name: String,
    /// `file`, `folder`, `symlink` or `other`.
    #[serde(rename = "type")]
    #[schema(value_type = String)]
    kind: &'static str,
    size: u64,
    modified: Option<String>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct ListingPage {
    path: String,
    total: usize,
    offset: usize,
    entries: Vec<Entry>,
    next_offset: Option<usize>,
}

fn kind_name(kind: EntryKind) -> &'static str {
    match kind {
        EntryKind::File => "file",
        EntryKind::Dir => "folder",
        EntryKind::Symlink => "symlink",
        EntryKind::Other => "other",
    }
}

fn rfc3339(time: Option<SystemTime>) -> Option<String> {
    crate::types::calendar_time(time?).map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
}

#[utoipa::path(get, path = "/api/v1/files", tag = "files", params(ListQuery),
    responses((status = 200, description = "The home folder's entries", body = ListingPage),
        (status = 400, body = super::error::ErrorBody),
        (status = 401, body = super::error::ErrorBody), (status = 403, body = super::error::ErrorBody),
        (status = 413, body = super::error::ErrorBody)))]
pub async fn get_root(
    authed: Authed,
    query: Query<ListQuery>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    get_path(authed, Path(String::new()), query, headers).await
}

/// A folder answers its listing, a file its content.
#[utoipa::path(get, path = "/api/v1/files/{path}", tag = "files",
    params(("path" = String, Path, description = "Virtual path inside the home"), ListQuery,
        ("Range" = Option<String>, Header, nullable = false, description = "One byte range, e.g. bytes=0-1023")),
    responses((status = 200, description = "Folder listing (JSON) or file content (octet-stream)",
            content((ListingPage = "application/json"), (Vec<u8> = "application/octet-stream"))),
        (status = 206, description = "Part of a file", content_type = "application/octet-stream", body = Vec<u8>),
        (status = 400, body = super::error::ErrorBody), (status = 304, description = "Not modified (If-None-Match)"),
        (status = 401, body = super::error::ErrorBody), (status = 403, body = super::error::ErrorBody),
        (status = 404, body = super::error::ErrorBody), (status = 413, body = super::error::ErrorBody),
        (status = 416, body = super::error::ErrorBody)))]
pub async fn get_path(
    authed: Authed,
    Path(raw): Path<String>,
    Query(query): Query<ListQuery>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    query.check()?;
    let session = &authed.session;
    let path = resolve(session, &raw)?;
    let meta = session.stat(&path).await?;
    if meta.kind == EntryKind::Dir {
        return list(session, &path, query).await.map(IntoResponse::into_response);
    }
    download(session.open_read(&path).await?, &path, &headers).await
}

async fn list(
    session: &Session,
    path: &VirtualPath,
    query: ListQuery,
) -> Result<Json<ListingPage>, ApiError> {
    let mut listing = session.list(path).await?;
    let mut entries = Vec::new();
    loop {
        let batch = listing.next_batch(1_000).await?;
        if batch.is_empty() {
            break;
        }
        entries.extend(batch);
        if entries.len() > MAX_LISTING {
            return Err(ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "listing_too_large",
                format!("{path} has more than {MAX_LISTING} entries; use SFTP or FTP to list it"),
            ));
        }
    }
    match query.sort.unwrap_or_default() {
        SortBy::Name => entries.sort_by(|a, b| a.0.cmp(&b.0)),
        SortBy::Size => entries.sort_by(|a, b| a.1.size.cmp(&b.1.size).then_with(|| a.0.cmp(&b.0))),
        SortBy::Modified => {
            entries.sort_by(|a, b| a.1.modified.cmp(&b.1.modified).then_with(|| a.0.cmp(&b.0)))
        }
    }
    if let Some(SortOrder::Desc) = query.order {
        entries.reverse();
    }
    let total = entries.len();
    let offset = (query.offset.unwrap_or(0) as usize).min(total);
    let limit = query.limit.map_or(DEFAULT_PAGE, usize::from).clamp(1, 10_000);
    let end = offset.saturating_add(limit).min(total);
    let page = entries
        .drain(offset..end)
        .map(|(name, meta)| Entry {
            name,
            kind: kind_name(meta.kind),
            size: meta.size,
            modified: rfc3339(meta.modified),
        })
        .collect();
    Ok(Json(ListingPage {
        path: path.to_string(),
        total,
        offset,
        entries: page,
        next_offset: (end < total).then_some(end),
    }))
}

fn etag(meta: &Metadata) -> String {
    let nanos = meta.modified.and_then(|t| t.duration_since(UNIX_EPOCH).ok()).map_or(0, |d| d.as_nanos());
    format!("\"{:x}-{:x}\"", meta.size, nanos)
}

/// `attachment; filename*=UTF-8''…` with RFC 5987 encoding, so any name survives.
fn content_disposition(name: &str) -> HeaderValue {
    let mut encoded = String::new();
    for byte in name.bytes() {
        if byte.is_ascii_alphanumeric() || b"!#$&+-.^_`|~".contains(&byte) {
            encoded.push(byte as char);
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    HeaderValue::from_str(&format!("attachment; filename*=UTF-8''{encoded}"))
        .unwrap_or_else(|_| HeaderValue::from_static("attachment"))
}

async fn download(file: ReadFile, path: &VirtualPath, headers: &HeaderMap) -> Result<Response, ApiError> {
    let meta = file.metadata().await?;
    let tag = etag(&meta);
    let header_text = |name| headers.get(name).and_then(|v: &HeaderValue| v.to_str().ok());
    if header_text(header::IF_NONE_MATCH)
        .is_some_and(|v| v.split(',').any(|t| t.trim() == tag || t.trim() == "*"))
    {
        return Ok((StatusCode::NOT_MODIFIED, [(header::ETAG, tag)]).into_response());
    }
    // A range applies only to the version the client has (If-Range), else the whole file.
    let range_header = match header_text(header::IF_RANGE) {
        Some(if_range) if if_range != tag => None,
        _ => header_text(header::RANGE),
    };
    let (status, range) = match range::parse(range_header, meta.size) {
        Ranged::Whole => (StatusCode::OK, 0..meta.size),
        Ranged::Part(range) => (StatusCode::PARTIAL_CONTENT, range),
        Ranged::Unsatisfiable => {
            let mut response = ApiError::new(
                StatusCode::RANGE_NOT_SATISFIABLE,
                "range_not_satisfiable",
                format!("{path} has {} bytes", meta.size),
            )
            .into_response();
            if let Ok(value) = HeaderValue::from_str(&format!("bytes */{}", meta.size)) {
                response.headers_mut().insert(header::CONTENT_RANGE, value);
            }
            return Ok(response);
        }
    };
    let mut response = Response::new(Body::from_stream(file_stream(file, range.clone())));
    *response.status_mut() = status;
    let h = response.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/octet-stream"));
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(range.end - range.start));
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    h.insert(header::CONTENT_DISPOSITION, content_disposition(path.name()));
    if let Ok(value) = HeaderValue::from_str(&tag) {
        h.insert(header::ETAG, value);
    }
    if let Some(modified) = meta.modified.and_then(crate::types::calendar_time) {
        let text = modified.format("%a, %d %b %Y %H:%M:%S GMT").to_string();
        if let Ok(value) = HeaderValue::from_str(&text) {
            h.insert(header::LAST_MODIFIED, value);
        }
    }
    if status == StatusCode::PARTIAL_CONTENT
        && let Ok(value) = HeaderValue::from_str(&format!(
            "bytes {}-{}/{}",
            range.start,
            range.end.saturating_sub(1),
            meta.size
        ))
    {
        h.insert(header::CONTENT_RANGE, value);
    }
    Ok(response)
}

/// The file's bytes in `range`, read in chunks as the client takes them (never the whole file).
fn file_stream(
    file: ReadFile,
    range: std::ops::Range<u64>,
) -> impl futures::Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static {
    let sending = Sending { file, start: range.start, at: range.start, end: range.end };
    futures::stream::unfold(sending, |mut sending| async move {
        if sending.at >= sending.end {
            return None;
        }
        let len = ((sending.end - sending.at) as usize).min(CHUNK);
        match sending.file.read_at(sending.at, len).await {
            Ok(data) if data.is_empty() => None,
            Ok(data) => {
                sending.at += data.len() as u64;
                Some((Ok(data), sending))
            }
            Err(e) => {
                sending.at = sending.end;
                Some((Err(std::io::Error::other(e.to_string())), sending))
            }
        }
    })
}

/// A download body in flight. Dropped before its end (the client went away, HTTP/2 reset the
/// stream), it tells the session the client did not get the whole file.
struct Sending {
    file: ReadFile,
    start: u64,
    at: u64,
    end: u64,
}

impl Drop for Sending {
    fn drop(&mut self) {
        if self.at < self.end {
            self.file.interrupted(self.at - self.start, "the client went away before the end");
        }
    }
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct Written {
    path: String,
    size: u64,
}

/// `Content-Range: bytes START-END/TOTAL` (or `bytes START-*/*`) of a resumed upload. START is
/// digits only and must fit a file offset; END and TOTAL, when given, must be consistent.
fn upload_offset(headers: &HeaderMap) -> Result<Option<u64>, ApiError> {
    let Some(value) = headers.get(header::CONTENT_RANGE) else { return Ok(None) };
    let bad = || ApiError::bad_request("Content-Range: expected `bytes START-END/TOTAL`");
    let text = value.to_str().map_err(|_| ApiError::bad_request("Content-Range is not text"))?;
    let (range, total) =
        text.trim().strip_prefix("bytes ").and_then(|rest| rest.split_once('/')).ok_or_else(bad)?;
    let (start, end) = range.split_once('-').ok_or_else(bad)?;
    let number = |text: &str| -> Result<Option<u64>, ApiError> {
        match text {
            "*" => Ok(None),
            digits if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) => {
                digits.parse::<u64>().ok().filter(|&n| n <= i64::MAX as u64).map(Some).ok_or_else(|| {
                    ApiError::bad_request("Content-Range: a position past the largest file offset")
                })
            }
            _ => Err(bad()),
        }
    };
    let start = number(start)?.ok_or_else(bad)?;
    let (end, total) = (number(end)?, number(total)?);
    if end.is_some_and(|end| end < start) || matches!((end, total), (Some(end), Some(total)) if end >= total)
    {
        return Err(ApiError::bad_request("Content-Range: END must lie between START and TOTAL"));
    }
    Ok(Some(start))
}

fn too_large() -> ApiError {
    ApiError::bad_request("upload larger than the largest file offset")
}

#[utoipa::path(put, path = "/api/v1/files/{path}", tag = "files",
    params(("path" = String, Path), ("Content-Range" = Option<String>, Header, nullable = false, description = "bytes START-END/TOTAL to resume",
        pattern = r"^bytes [0-9]{1,19}-([0-9]{1,19}|\*)/([0-9]{1,19}|\*)$")),
    request_body(content = Vec<u8>, content_type = "application/octet-stream"),
    responses((status = 201, body = Written), (status = 400, body = super::error::ErrorBody),
        (status = 401, body = super::error::ErrorBody),
        (status = 403, body = super::error::ErrorBody), (status = 404, body = super::error::ErrorBody),
        (status = 409, body = super::error::ErrorBody), (status = 416, body = super::error::ErrorBody),
        (status = 501, body = super::error::ErrorBody), (status = 507, body = super::error::ErrorBody)))]
/// Streams the request body into the file. Without `Content-Range` the file is replaced (and
/// appears only when complete, in atomic upload mode); with it the data goes at that offset.
pub async fn put_path(
    authed: Authed,
    Path(raw): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<(StatusCode, Json<Written>), ApiError> {
    let session = &authed.session;
    let path = resolve(session, &raw)?;
    let offset = upload_offset(&headers)?;
    if let Some(start) = offset {
        // Resuming: the new data must join what is there (no holes).
        let size = match session.stat(&path).await {
            Ok(meta) => meta.size,
            Err(crate::session::SessionError::NotFound(_)) => 0,
            Err(e) => return Err(e.into()),
        };
        if start > size {
            return Err(ApiError::new(
                StatusCode::RANGE_NOT_SATISFIABLE,
                "range_not_satisfiable",
                format!("{path} has {size} bytes; a resumed upload starts at or before that"),
            ));
        }
    }
    let how = OpenWrite { create: true, truncate: offset.is_none(), ..OpenWrite::default() };
    let file = session.open_write(&path, how).await?;
    let mut at = offset.unwrap_or(0);
    let mut stream = body.into_data_stream();
    while let Some(chunk) = stream.next().await {
        // A client that goes away mid-upload: the file is dropped unfinished and discarded.
        let chunk = chunk.map_err(super::deadlines::upload_error)?;
        let next = at.checked_add(chunk.len() as u64).ok_or_else(too_large)?;
        file.write_at(at, chunk).await?;
        at = next;
    }
    file.close().await?;
    Ok((StatusCode::CREATED, Json(Written { path: path.to_string(), size: at })))
}

#[utoipa::path(delete, path = "/api/v1/files/{path}", tag = "files", params(("path" = String, Path)),
    responses((status = 204, description = "Deleted"), (status = 400, body = super::error::ErrorBody), (status = 401, body = super::error::ErrorBody),
        (status = 403, body = super::error::ErrorBody), (status = 404, body = super::error::ErrorBody),
        (status = 409, body = super::error::ErrorBody)))]
pub async fn delete_path(authed: Authed, Path(raw): Path<String>) -> Result<StatusCode, ApiError> {
    let session = &authed.session;
    let path = resolve(session, &raw)?;
    if session.lstat(&path).await?.kind == EntryKind::Dir {
        session.rmdir(&path).await?;
    } else {
        session.remove(&path).await?;
    }
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(post, path = "/api/v1/folders/{path}", tag = "files", params(("path" = String, Path)),
    responses((status = 201, description = "Created"), (status = 400, body = super::error::ErrorBody), (status = 401, body = super::error::ErrorBody),
        (status = 403, body = super::error::ErrorBody), (status = 404, body = super::error::ErrorBody),
        (status = 409, body = super::error::ErrorBody)))]
pub async fn make_folder(authed: Authed, Path(raw): Path<String>) -> Result<StatusCode, ApiError> {
    let path = resolve(&authed.session, &raw)?;
    authed.session.mkdir(&path).await?;
    Ok(StatusCode::CREATED)
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct Move {
    from: String,
    to: String,
    /// Replace an existing file at `to` (needs the overwrite permission).
    #[serde(default)]
    replace: bool,
}

#[utoipa::path(post, path = "/api/v1/rename", tag = "files", request_body = Move,
    responses((status = 415, body = super::error::ErrorBody), (status = 422, body = super::error::ErrorBody),(status = 204, description = "Renamed"), (status = 400, body = super::error::ErrorBody),
        (status = 401, body = super::error::ErrorBody), (status = 403, body = super::error::ErrorBody),
        (status = 404, body = super::error::ErrorBody), (status = 409, body = super::error::ErrorBody)))]
pub async fn rename(authed: Authed, Json(body): Json<Move>) -> Result<StatusCode, ApiError> {
    let session = &authed.session;
    let (from, to) = (resolve(session, &body.from)?, resolve(session, &body.to)?);
    session.rename(&from, &to, body.replace).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Copies a file through the session: a download of `from` and an upload to `to`, each
/// checked and audited as such.
#[utoipa::path(post, path = "/api/v1/copy", tag = "files", request_body = Move,
    responses((status = 415, body = super::error::ErrorBody), (status = 422, body = super::error::ErrorBody),(status = 201, body = Written), (status = 400, body = super::error::ErrorBody),
        (status = 401, body = super::error::ErrorBody), (status = 403, body = super::error::ErrorBody),
        (status = 404, body = super::error::ErrorBody), (status = 409, body = super::error::ErrorBody)))]
pub async fn copy(authed: Authed, Json(body): Json<Move>) -> Result<(StatusCode, Json<Written>), ApiError> {
    let session = &authed.session;
    let (from, to) = (resolve(session, &body.from)?, resolve(session, &body.to)?);
    if session.stat(&from).await?.kind != EntryKind::File {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "is_a_folder",
            format!("{from}: only files are copied"),
        ));
    }
    if !body.replace && session.stat(&to).await.is_ok() {
        return Err(ApiError::new(StatusCode::CONFLICT, "already_exists", format!("{to}: already exists")));
    }
    let reader = session.open_read(&from).await?;
    let writer =
        session.open_write(&to, OpenWrite { create: true, truncate: true, ..OpenWrite::default() }).await?;
    let mut at = 0u64;
    loop {
        let data = reader.read_at(at, CHUNK).await?;
        if data.is_empty() {
            break;
        }
        let next = at.checked_add(data.len() as u64).ok_or_else(too_large)?;
        writer.write_at(at, data).await?;
        at = next;
    }
    writer.close().await?;
    Ok((StatusCode::CREATED, Json(Written { path: to.to_string(), size: at })))
}

/// `multipart/form-data` uploads into a folder (browsers' forms, `curl -F`): every part with a
/// file name becomes `FOLDER/NAME`, streamed like a `PUT`.
#[utoipa::path(post, path = "/api/v1/files/{path}", tag = "files",
    params(("path" = String, Path, description = "The folder to upload into")),
    request_body(content = String, content_type = "multipart/form-data"),
    responses((status = 201, body = Vec<Written>), (status = 400, body = super::error::ErrorBody),
        (status = 401, body = super::error::ErrorBody), (status = 403, body = super::error::ErrorBody),
        (status = 404, body = super::error::ErrorBody), (status = 409, body = super::error::ErrorBody),
        (status = 415, body = super::error::ErrorBody), (status = 507, body = super::error::ErrorBody)))]
pub async fn post_form(
    authed: Authed,
    Path(raw): Path<String>,
    multipart: axum::extract::Multipart,
) -> Result<(StatusCode, Json<Vec<Written>>), ApiError> {
    upload_form(&authed.session, &raw, multipart).await
}

#[utoipa::path(post, path = "/api/v1/files", tag = "files",
    request_body(content = String, content_type = "multipart/form-data"),
    responses((status = 201, body = Vec<Written>), (status = 400, body = super::error::ErrorBody),
        (status = 401, body = super::error::ErrorBody), (status = 403, body = super::error::ErrorBody),
        (status = 409, body = super::error::ErrorBody), (status = 415, body = super::error::ErrorBody),
        (status = 507, body = super::error::ErrorBody)))]
pub async fn post_form_root(
    authed: Authed,
    multipart: axum::extract::Multipart,
) -> Result<(StatusCode, Json<Vec<Written>>), ApiError> {
    upload_form(&authed.session, "", multipart).await
}

async fn upload_form(
    session: &Session,
    raw: &str,
    mut multipart: axum::extract::Multipart,
) -> Result<(StatusCode, Json<Vec<Written>>), ApiError> {
    let folder = resolve(session, raw)?;
    if session.stat(&folder).await?.kind != EntryKind::Dir {
        return Err(ApiError::new(StatusCode::CONFLICT, "not_a_folder", format!("{folder}: not a folder")));
    }
    let bad_form = |e: axum::extract::multipart::MultipartError| ApiError::bad_request(format!("form: {e}"));
    let mut written = Vec::new();
    while let Some(mut field) = multipart.next_field().await.map_err(bad_form)? {
        let Some(name) = field.file_name().map(str::to_string) else { continue };
        // A file name, never a path: browsers send base names; anything else is refused.
        if name.is_empty() || name == "." || name == ".." || name.contains(['/', '\\', '\0']) {
            return Err(ApiError::bad_request(format!("file name `{name}` is not a plain name")));
        }
        let path = folder.join(&name);
        let file = session
            .open_write(&path, OpenWrite { create: true, truncate: true, ..OpenWrite::default() })
            .await?;
        let mut at = 0u64;
        while let Some(chunk) = field.chunk().await.map_err(bad_form)? {
            let next = at.checked_add(chunk.len() as u64).ok_or_else(too_large)?;
            file.write_at(at, chunk).await?;
            at = next;
        }
        file.close().await?;
        written.push(Written { path: path.to_string(), size: at });
    }
    if written.is_empty() {
        return Err(ApiError::bad_request("the form has no file"));
    }
    Ok((StatusCode::CREATED, Json(written)))
}
