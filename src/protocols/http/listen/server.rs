//! The HTTPS listener: the shared accept path (PROXY header, address filter, limits), TLS with ALPN, then HTTP/1.1 or HTTP/2
//! through hyper, with a deadline for request headers against slow clients.

use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;
use tracing::Instrument as _;

use super::{AppState, deadlines, forwarded, router};
use crate::net::{self, Admission};
use crate::protocols::Phase;
use crate::session::ConnectionInfo;
use crate::types::{Protocol, SessionId};

/// How long an idle connection told to close may take to say goodbye (HTTP/2 GOAWAY).
const CLOSE_GRACE: Duration = Duration::from_secs(5);

pub async fn serve(
    listener: TcpListener,
    admission: Admission,
    tls: Arc<rustls::ServerConfig>,
    app: AppState,
    phase: watch::Receiver<Phase>,
) -> std::io::Result<()> {
    let settings = Arc::clone(&app.settings);
    let mut tls = (*tls).clone();
    tls.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    let acceptor = TlsAcceptor::from(Arc::new(tls));
    let router = router::router(app.clone());
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
    let refused = |peer, why| app.sessions.connection_refused(peer, Protocol::Https, why);
    let handle = |net::Accepted { stream, peer, slot, .. }| {
        let info = ConnectionInfo { session_id: SessionId::new(), peer, protocol: Protocol::Https };
        let (acceptor, builder, sessions) = (acceptor.clone(), Arc::clone(&builder), app.sessions.clone());
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
            let Ok(Ok(tls)) = tokio::time::timeout(handshake_deadline, acceptor.accept(stream)).await else {
                return;
            };
            let mut live = sessions.connection_opened(&info);
            // Requests of the connection run inside its span (and trace).
            let span = live.span.clone();
            async {
                let connection = builder.serve_connection_with_upgrades(TokioIo::new(tls), service);
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
                        // Quiet for too long: close (HTTP/2 with GOAWAY) once nothing runs.
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
