//! The HTTPS listener, and its plain-HTTP twin for an L7 balancer that terminates TLS: the
//! shared accept path (PROXY header, address filter, bans, limits), TLS with ALPN (HTTPS only),
//! then HTTP/1.1 or HTTP/2 through hyper, with a deadline for request headers against slow
//! clients.

use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;
use tracing::Instrument as _;

use super::gate::HandshakeGate;
use super::{AppState, deadlines, forwarded, router};
use crate::net::{self, Admission};
use crate::protocols::Phase;
use crate::session::{ConnectionInfo, LiveConnection};
use crate::types::{Protocol, SessionId};

/// How long an idle connection told to close may take to say goodbye (HTTP/2 GOAWAY).
const CLOSE_GRACE: Duration = Duration::from_secs(5);

/// Serves HTTPS on `listener`.
pub async fn serve(
    listener: TcpListener,
    admission: Admission,
    tls: Arc<rustls::ServerConfig>,
    app: AppState,
    phase: watch::Receiver<Phase>,
) -> std::io::Result<()> {
    let mut tls = (*tls).clone();
    tls.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    serve_with(listener, admission, Some(TlsAcceptor::from(Arc::new(tls))), app, phase, false).await
}

/// Serves the same API and file manager over plain HTTP (`[http]`), for a balancer that has
/// terminated TLS in front of ferry; the accept path lets only trusted proxies in unless the
/// operator said otherwise.
///
/// With `refuse_plain`, a request the balancer says reached it over plain HTTP
/// (`X-Forwarded-Proto: http`) is refused with 403: the client must use HTTPS.
pub async fn serve_plain(
    listener: TcpListener,
    admission: Admission,
    app: AppState,
    refuse_plain: bool,
    phase: watch::Receiver<Phase>,
) -> std::io::Result<()> {
    serve_with(listener, admission, None, app, phase, refuse_plain).await
}

async fn serve_with(
    listener: TcpListener,
    admission: Admission,
    acceptor: Option<TlsAcceptor>,
    app: AppState,
    phase: watch::Receiver<Phase>,
    refuse_plain: bool,
) -> std::io::Result<()> {
    let settings = Arc::clone(&app.settings);
    let mut router = router::router(app.clone());
    if refuse_plain {
        router = router.layer(axum::middleware::from_fn(forwarded::require_https));
    }
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(settings.header_timeout)
        .max_buf_size(64 << 10);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(64 << 10)
        .keep_alive_interval(Some(settings.keepalive_interval))
        .keep_alive_timeout(settings.keepalive_interval);
    let builder = Arc::new(builder);
    let handshakes = Arc::new(HandshakeGate::for_this_machine());
    let refused = |peer, why: &str| app.sessions.connection_refused(peer, Protocol::Https, why);
    let handle = |net::Accepted { stream, peer, slot, .. }| {
        let info = ConnectionInfo { session_id: SessionId::new(), peer, protocol: Protocol::Https };
        let (acceptor, builder, sessions) = (acceptor.clone(), Arc::clone(&builder), app.sessions.clone());
        let handshakes = Arc::clone(&handshakes);
        let activity = deadlines::Activity::default();
        let tracked = activity.clone();
        let trusted = settings.trusted_proxies.clone();
        // Inside the extension layer: it sees the connection's info and may name the client.
        let routed = router
            .clone()
            .layer(axum::middleware::from_fn(move |request, next| {
                forwarded::apply(trusted.clone(), request, next)
            }))
            .layer(axum::Extension(info));
        let service =
            TowerToHyperService::new(routed.layer(axum::middleware::from_fn(move |request, next| {
                deadlines::track(tracked.clone(), request, next)
            })));
        let (handshake_deadline, idle_timeout) = (settings.header_timeout, settings.idle_timeout);
        async move {
            match acceptor {
                Some(acceptor) => {
                    // The deadline covers the wait for a turn and the handshake itself.
                    let handshake = async {
                        let ip = peer.0.map_or(std::net::IpAddr::from([0, 0, 0, 0]), |a| a.ip());
                        let _turn = handshakes.turn(ip).await?;
                        acceptor.accept(stream).await.ok()
                    };
                    let Ok(Some(tls)) = tokio::time::timeout(handshake_deadline, handshake).await else {
                        return;
                    };
                    let live = sessions.connection_opened(&info);
                    run(TokioIo::new(tls), live, &builder, service, &activity, idle_timeout, &info).await;
                }
                None => {
                    let live = sessions.connection_opened(&info);
                    run(TokioIo::new(stream), live, &builder, service, &activity, idle_timeout, &info).await;
                }
            }
            sessions.connection_closed(&info);
            drop(slot);
        }
    };
    // Requests already running may finish until the server closes.
    let mut open = net::serve(listener, admission, refused, phase, Phase::Draining, handle).await?;
    open.abort_all();
    open.wait(Duration::from_secs(2)).await;
    Ok(())
}

/// Serves one connection's requests until it ends, an administrator ends it, or it stays quiet
/// for `idle_timeout` (closed, HTTP/2 with a GOAWAY, once nothing runs).
async fn run<IO, S>(
    io: TokioIo<IO>,
    mut live: LiveConnection,
    builder: &auto::Builder<TokioExecutor>,
    service: S,
    activity: &deadlines::Activity,
    idle_timeout: Duration,
    info: &ConnectionInfo,
) where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    S: hyper::service::Service<
            hyper::Request<hyper::body::Incoming>,
            Response = axum::response::Response,
            Error = std::convert::Infallible,
        > + Send
        + 'static,
    S::Future: Send + 'static,
{
    // Requests of the connection run inside its span (and trace).
    let span = live.span.clone();
    async {
        let connection = builder.serve_connection_with_upgrades(io, service);
        tokio::pin!(connection);
        let mut closing = false;
        loop {
            tokio::select! {
                served = connection.as_mut() => {
                    if let Err(e) = served {
                        tracing::debug!(error = %e, peer = %info.peer, "https connection ended with an error");
                    }
                    break;
                }
                () = live.terminated() => break,
                () = activity.idle_for(idle_timeout), if !closing => {
                    closing = true;
                    connection.as_mut().graceful_shutdown();
                }
                () = tokio::time::sleep(CLOSE_GRACE), if closing => break,
            }
        }
    }
    .instrument(span)
    .await;
}
