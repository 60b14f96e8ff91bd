//! Plain-HTTP/1.1 listeners that answer every request from a function: the redirect to HTTPS
//! and the ops listener, through the shared accept loop (open: no limits; the PROXY header and the address filter as configured). Each connection gets
//! 10 s to send a request's headers.

use std::convert::Infallible;
use std::time::Duration;

use axum::http::{Request, Response};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::net::{self, Admission};
use crate::protocols::Phase;

/// Serves `answer(request, phase now)` on `listener` until the server reaches `until`.
pub async fn serve<F>(
    listener: TcpListener,
    admission: Admission,
    phase: watch::Receiver<Phase>,
    until: Phase,
    answer: F,
) -> std::io::Result<()>
where
    F: Fn(&Request<Incoming>, Phase) -> Response<String> + Clone + Send + Sync + 'static,
{
    let handle = |net::Accepted { stream, .. }| {
        let (phase, answer) = (phase.clone(), answer.clone());
        async move {
            let service = hyper::service::service_fn(move |request: Request<Incoming>| {
                let response = answer(&request, *phase.borrow());
                async move { Ok::<_, Infallible>(response) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(Duration::from_secs(10))
                .serve_connection(TokioIo::new(stream), service)
                .await;
        }
    };
    let nobody = |_, _: &str| {};
    let open = net::serve(listener, admission, nobody, phase.clone(), until, handle).await?;
    // Answers under way finish on their own.
    open.detach();
    Ok(())
}
