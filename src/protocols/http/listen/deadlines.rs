//! Time limits on what a client sends after its headers, and on quiet connections: a request
//! body that is not a file upload (login, JSON) must arrive whole within `body_timeout`; an
//! upload may go as slowly as the client's link allows but may not pause longer than
//! `upload_idle_timeout` between two pieces; a connection with no request in progress for
//! `idle_timeout` is closed (HTTP/1.1 keep-alive and HTTP/2 alike).

use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode, Version, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use hyper::body::{Frame, SizeHint};
use tokio::time::{Instant, Sleep};

use super::AppState;
use super::error::ApiError;

/// Whether a request's body is a file upload (streamed, any size, any duration).
fn is_upload(method: &Method, path: &str) -> bool {
    matches!(*method, Method::PUT | Method::POST)
        && (path == "/api/v1/files" || path.starts_with("/api/v1/files/"))
}

/// Applies the body deadlines: small bodies are read here, whole, within `body_timeout`
/// (408 and the connection closed otherwise); uploads get an idle timer between pieces.
pub async fn body_deadlines(State(app): State<AppState>, request: Request, next: Next) -> Response {
    let settings = &app.settings;
    let (parts, body) = request.into_parts();
    if is_upload(&parts.method, parts.uri.path()) {
        let body = Body::new(IdleBody::new(body, settings.upload_idle_timeout));
        return next.run(Request::from_parts(parts, body)).await;
    }
    let version = parts.version;
    // One byte over the limit tells "too large" apart; the extractors apply the exact limit.
    let read = axum::body::to_bytes(body, super::router::JSON_LIMIT + 1);
    match tokio::time::timeout(settings.body_timeout, read).await {
        Ok(Ok(bytes)) => next.run(Request::from_parts(parts, Body::from(bytes))).await,
        Ok(Err(_)) => {
            ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "too_large", "request body too large or cut short")
                .into_response()
        }
        Err(_) => {
            let mut response =
                ApiError::new(StatusCode::REQUEST_TIMEOUT, "timeout", "the request body came too slowly")
                    .into_response();
            if version < Version::HTTP_2 {
                response.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
            }
            response
        }
    }
}

/// The error an upload body yields when the client paused too long.
#[derive(Debug, thiserror::Error)]
#[error("the upload paused for longer than {0:?}")]
pub struct UploadStalled(Duration);

/// Whether a body error is an upload that paused too long (answered 408).
fn is_stalled(error: &axum::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = source {
        if e.is::<UploadStalled>() {
            return true;
        }
        source = e.source();
    }
    false
}

/// The answer to an upload whose body failed: 408 when it paused too long, else 400.
pub fn upload_error(error: axum::Error) -> ApiError {
    if is_stalled(&error) {
        ApiError::new(StatusCode::REQUEST_TIMEOUT, "timeout", format!("upload stopped: {error}"))
    } else {
        ApiError::bad_request(format!("upload interrupted: {error}"))
    }
}

/// A request body that fails with `UploadStalled` when no piece arrives for `idle`.
struct IdleBody {
    inner: Body,
    idle: Duration,
    timer: Pin<Box<Sleep>>,
    failed: bool,
}

impl IdleBody {
    fn new(inner: Body, idle: Duration) -> Self {
        Self { inner, idle, timer: Box::pin(tokio::time::sleep(idle)), failed: false }
    }
}

impl hyper::body::Body for IdleBody {
    type Data = Bytes;
    type Error = axum::BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::BoxError>>> {
        if self.failed {
            return Poll::Ready(None);
        }
        match Pin::new(&mut self.inner).poll_frame(cx) {
            Poll::Ready(frame) => {
                let next = Instant::now() + self.idle;
                self.timer.as_mut().reset(next);
                Poll::Ready(frame.map(|f| f.map_err(axum::BoxError::from)))
            }
            Poll::Pending => match self.timer.as_mut().poll(cx) {
                Poll::Ready(()) => {
                    self.failed = true;
                    Poll::Ready(Some(Err(Box::new(UploadStalled(self.idle)))))
                }
                Poll::Pending => Poll::Pending,
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        self.failed || self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// What one connection is doing: requests in progress (until their response body is sent)
/// and when the last one began or ended.
#[derive(Clone)]
pub struct Activity {
    in_flight: Arc<AtomicUsize>,
    last: Arc<Mutex<Instant>>,
}

impl Default for Activity {
    fn default() -> Self {
        Self { in_flight: Arc::default(), last: Arc::new(Mutex::new(Instant::now())) }
    }
}

impl Activity {
    fn touch(&self) {
        if let Ok(mut last) = self.last.lock() {
            *last = Instant::now();
        }
    }

    fn begin(&self) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        self.touch();
        InFlight(self.clone())
    }

    /// Resolves once the connection has had no request in progress for `idle`.
    pub async fn idle_for(&self, idle: Duration) {
        loop {
            let last = self.last.lock().map(|l| *l).unwrap_or_else(|_| Instant::now());
            if self.in_flight.load(Ordering::SeqCst) == 0 && last.elapsed() >= idle {
                return;
            }
            tokio::time::sleep_until(last + idle.max(Duration::from_millis(10))).await;
            if self.in_flight.load(Ordering::SeqCst) > 0 {
                // Busy: look again after another full period.
                tokio::time::sleep(idle).await;
            }
        }
    }
}

/// One request in progress; ends when the response body has been sent or dropped.
struct InFlight(Activity);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
        self.0.touch();
    }
}

/// Counts the request as in progress until its response body is done.
pub async fn track(activity: Activity, request: Request, next: Next) -> Response {
    let in_flight = activity.begin();
    let response = next.run(request).await;
    response.map(|body| Body::new(TrackedBody { inner: body, _in_flight: in_flight }))
}

struct TrackedBody {
    inner: Body,
    _in_flight: InFlight,
}

impl hyper::body::Body for TrackedBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_connection_is_idle_only_without_requests_for_the_whole_period() {
        let activity = Activity::default();
        let busy = activity.begin();
        let idle = tokio::spawn({
            let activity = activity.clone();
            async move { activity.idle_for(Duration::from_secs(10)).await }
        });
        tokio::time::sleep(Duration::from_secs(25)).await;
        assert!(!idle.is_finished(), "a request in progress (a long download) is not idleness");
        drop(busy);
        tokio::time::sleep(Duration::from_secs(5)).await;
        assert!(!idle.is_finished(), "the period starts when the request ends");
        tokio::time::sleep(Duration::from_secs(30)).await;
        assert!(idle.is_finished());
    }
}
