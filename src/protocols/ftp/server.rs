//! The FTP accept loop: one task per control connection, through the shared accept path.

use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tracing::Instrument as _;

use super::{FtpSettings, control};
use crate::net::{self, Admission};
use crate::protocols::Phase;
use crate::session::{ConnectionInfo, SessionFactory};
use crate::types::{Protocol, SessionId};

/// Serves FTP (`implicit = false`, AUTH TLS available) or implicit FTPS on `listener` until
/// `phase` reaches `Closing` and every connection has said goodbye.
pub async fn serve(
    listener: TcpListener,
    admission: Admission,
    settings: Arc<FtpSettings>,
    sessions: SessionFactory,
    implicit: bool,
    phase: watch::Receiver<Phase>,
) -> std::io::Result<()> {
    let protocol = if implicit { Protocol::Ftps } else { Protocol::Ftp };
    let refused = |peer, why: &str| sessions.connection_refused(peer, protocol, why);
    let data_proxy = admission.proxy().clone();
    let handle = |net::Accepted { stream, peer, local, slot }| {
        let info = ConnectionInfo { session_id: SessionId::new(), peer, protocol };
        let (settings, sessions, phase) = (Arc::clone(&settings), sessions.clone(), phase.clone());
        let link = control::Link { local, data_proxy: data_proxy.clone() };
        async move {
            let mut live = sessions.connection_opened(&info);
            // Log lines of the connection carry its span (and trace ID).
            let span = live.span.clone();
            async {
                tokio::select! {
                    () = control::run(stream, link, info, settings, sessions.clone(), implicit, phase) => {}
                    // An administrator ended it: dropping the session closes the sockets
                    // and discards an unfinished upload.
                    () = live.terminated() => {}
                }
            }
            .instrument(span)
            .await;
            sessions.connection_closed(&info);
            drop(slot);
        }
    };
    let mut open = net::serve(listener, admission, refused, phase.clone(), Phase::Draining, handle).await?;
    // Connections see `Closing` themselves; give them a moment to say 421 and go.
    open.wait(Duration::from_secs(2)).await;
    Ok(())
}
