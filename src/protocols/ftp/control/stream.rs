//! The control connection's byte stream, plain or TLS after AUTH TLS (RFC 4217 §4), read as
//! CRLF-terminated lines of bounded length (RFC 959 §4.1 Telnet lines).

use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;

/// Longest command line accepted (a 4 KiB path plus verb and slack).
const MAX_LINE: usize = 8192;

pub(super) enum Control {
    Plain(BufReader<TcpStream>),
    Tls(Box<BufReader<TlsStream<TcpStream>>>),
    /// Between taking the plain stream for a TLS handshake and putting the TLS one back.
    Closed,
}

pub(super) enum Line {
    Complete,
    TooLong,
    Eof,
}

/// Reads one line into `buf` (without CR LF). Cancel-safe: bytes read so far stay in `buf`.
async fn read_line<R: AsyncBufRead + Unpin>(
    reader: &mut R,
    buf: &mut Vec<u8>,
    discarding: &mut bool,
) -> std::io::Result<Line> {
    loop {
        let available = reader.fill_buf().await?;
        if available.is_empty() {
            return Ok(Line::Eof);
        }
        if let Some(end) = available.iter().position(|&b| b == b'\n') {
            if !*discarding {
                buf.extend_from_slice(&available[..end]);
            }
            reader.consume(end + 1);
            if std::mem::take(discarding) {
                buf.clear();
                return Ok(Line::TooLong);
            }
            if buf.last() == Some(&b'\r') {
                buf.pop();
            }
            return Ok(Line::Complete);
        }
        let n = available.len();
        if !*discarding {
            buf.extend_from_slice(available);
        }
        reader.consume(n);
        if buf.len() > MAX_LINE {
            buf.clear();
            *discarding = true;
        }
    }
}

impl Control {
    pub(super) async fn read_line(
        &mut self,
        buf: &mut Vec<u8>,
        discarding: &mut bool,
    ) -> std::io::Result<Line> {
        match self {
            Control::Plain(r) => read_line(r, buf, discarding).await,
            Control::Tls(r) => read_line(r.as_mut(), buf, discarding).await,
            Control::Closed => Ok(Line::Eof),
        }
    }

    pub(super) async fn write(&mut self, text: &str) -> std::io::Result<()> {
        match self {
            Control::Plain(r) => {
                r.get_mut().write_all(text.as_bytes()).await?;
                r.get_mut().flush().await
            }
            Control::Tls(r) => {
                r.get_mut().write_all(text.as_bytes()).await?;
                r.get_mut().flush().await
            }
            Control::Closed => Err(std::io::ErrorKind::NotConnected.into()),
        }
    }

    pub(super) async fn shutdown(&mut self) {
        let _ = match self {
            Control::Plain(r) => r.get_mut().shutdown().await,
            Control::Tls(r) => r.get_mut().shutdown().await,
            Control::Closed => Ok(()),
        };
    }
}
