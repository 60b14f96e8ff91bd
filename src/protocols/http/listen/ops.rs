//! The ops listener: plain HTTP on its own port for the platform, never for users. `/metrics`
//! (Prometheus text format), `/healthz` (the process answers) and `/readyz` (it takes new
//! connections: 503 while draining, so a load balancer stops sending before shutdown, and while
//! the state store cannot be reached).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::http::{Method, Request, Response, StatusCode, header};
use hyper::body::Incoming;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::net::Admission;
use crate::protocols::Phase;
use crate::telemetry::metrics;

fn answer(request: &Request<Incoming>, phase: Phase, store_up: bool) -> Response<String> {
    let (status, content_type, body) = match (request.method(), request.uri().path()) {
        (&Method::GET | &Method::HEAD, "/metrics") => {
            (StatusCode::OK, "text/plain; version=0.0.4; charset=utf-8", metrics::render())
        }
        (&Method::GET | &Method::HEAD, "/healthz") => (StatusCode::OK, "text/plain", "ok\n".to_string()),
        (&Method::GET | &Method::HEAD, "/readyz") if phase != Phase::Running => {
            (StatusCode::SERVICE_UNAVAILABLE, "text/plain", "draining\n".to_string())
        }
        (&Method::GET | &Method::HEAD, "/readyz") if !store_up => {
            (StatusCode::SERVICE_UNAVAILABLE, "text/plain", "state store unavailable\n".to_string())
        }
        (&Method::GET | &Method::HEAD, "/readyz") => (StatusCode::OK, "text/plain", "ready\n".to_string()),
        (_, "/metrics" | "/healthz" | "/readyz") => {
            (StatusCode::METHOD_NOT_ALLOWED, "text/plain", "use GET\n".to_string())
        }
        _ => (StatusCode::NOT_FOUND, "text/plain", "not found: /metrics, /healthz, /readyz\n".to_string()),
    };
    let mut response = Response::new(body);
    *response.status_mut() = status;
    if let Ok(value) = header::HeaderValue::from_str(content_type) {
        response.headers_mut().insert(header::CONTENT_TYPE, value);
    }
    response
}

/// Serves until the server closes (it keeps answering while draining, with `/readyz` 503).
pub async fn serve(
    listener: TcpListener,
    admission: Admission,
    phase: watch::Receiver<Phase>,
    store_up: Arc<AtomicBool>,
) -> std::io::Result<()> {
    let answer =
        move |request: &Request<Incoming>, phase| answer(request, phase, store_up.load(Ordering::Relaxed));
    super::plain::serve(listener, admission, phase, Phase::Closing, answer).await
}
