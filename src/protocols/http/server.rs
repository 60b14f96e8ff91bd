//! The HTTPS listener: the shared accept path (limits), TLS with ALPN, then HTTP/1.1 or HTTP/2
//! through hyper, with a deadline for request headers against slow clients.

use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;
use tracing::Instrument as _;

use super::{AppState, router};
use crate::net::{self, ConnectionLimit};
use crate::protocols::Phase;
use crate::session::ConnectionInfo;
use crate::types::{Protocol, SessionId};

pub async fn serve(
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    app: AppState,
    mut phase: watch::Receiver<Phase>,
) -> std::io::Result<()> {
    let settings = Arc::clone(&app.settings);
    let limit = ConnectionLimit::new(settings.max_connections, settings.max_connections_per_ip);
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
    builder.http2().timer(TokioTimer::new()).max_header_list_size(64 << 10);
    let builder = Arc::new(builder);
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            changed = phase.changed() => {
                if changed.is_err() || *phase.borrow() >= Phase::Draining { break; }
            }
            accepted = net::accept(&listener, &limit, |peer, why| app.sessions.connection_refused(peer, Protocol::Https, why)) => {
                let net::Accepted { stream, peer, slot } = accepted?;
                let info = ConnectionInfo { session_id: SessionId::new(), peer, protocol: Protocol::Https };
                let (acceptor, builder, sessions) = (acceptor.clone(), Arc::clone(&builder), app.sessions.clone());
                let service = TowerToHyperService::new(router.clone().layer(axum::Extension(info)));
                let handshake_deadline = settings.header_timeout;
                connections.spawn(async move {
                    let Ok(Ok(tls)) = tokio::time::timeout(handshake_deadline, acceptor.accept(stream)).await else {
                        return;
                    };
                    let mut live = sessions.connection_opened(&info);
                    // Requests of the connection run inside its span (and trace).
                    let span = live.span.clone();
                    async {
                        tokio::select! {
                            served = builder.serve_connection_with_upgrades(TokioIo::new(tls), service) => {
                                if let Err(e) = served {
                                    tracing::debug!(error = %e, peer = %info.peer, "https connection ended with an error");
                                }
                            }
                            () = live.terminated() => {}
                        }
                    }
                    .instrument(span)
                    .await;
                    sessions.connection_closed(&info);
                    drop(slot);
                });
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    drop(listener);
    // Requests already running may finish until the server closes.
    while *phase.borrow() < Phase::Closing {
        if phase.changed().await.is_err() {
            break;
        }
    }
    connections.abort_all();
    let _ = tokio::time::timeout(Duration::from_secs(2), async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    Ok(())
}
