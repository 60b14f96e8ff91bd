//! Syslog, RFC 5424 messages over UDP (RFC 5426, one message per datagram), TCP (RFC 6587
//! octet counting) or TLS (RFC 5425). The structured data carries the fields a SIEM routes on;
//! the message is the audit line itself, so nothing is lost in translation.

use std::sync::Arc;

use async_trait::async_trait;
use chrono::SecondsFormat;
use rustls::pki_types::ServerName;
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

use super::{Sink, WriteError};
use crate::audit::event::{LineView, Outcome};
use crate::clients;
use crate::config::{AuditSyslogConfig, SyslogTransport};

/// How long a connect or a batch may take before the connection is dropped and retried.
const IO_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Our structured-data ID. 32473 is the private enterprise number RFC 5612 reserves for
/// documentation; operators who route on it may keep it.
const SD_ID: &str = "ferry@32473";

enum Connection {
    Udp(UdpSocket),
    Stream(Box<dyn AsyncWrite + Send + Sync + Unpin>),
}

pub struct SyslogSink {
    settings: AuditSyslogConfig,
    connection: Option<Connection>,
    tls: Option<tokio_rustls::TlsConnector>,
    procid: String,
}

impl SyslogSink {
    pub fn new(settings: AuditSyslogConfig) -> Result<Self, String> {
        let tls = match settings.transport {
            SyslogTransport::Tls => Some(tokio_rustls::TlsConnector::from(
                clients::client_config(settings.ca_file.as_deref()).map_err(|e| e.to_string())?,
            )),
            _ => None,
        };
        Ok(Self { settings, connection: None, tls, procid: std::process::id().to_string() })
    }

    async fn connect(&self) -> Result<Connection, String> {
        let address = &self.settings.address;
        match self.settings.transport {
            SyslogTransport::Udp => {
                let target = tokio::net::lookup_host(address)
                    .await
                    .map_err(|e| format!("{address}: {e}"))?
                    .next()
                    .ok_or_else(|| format!("{address}: no address"))?;
                let local = if target.is_ipv4() { "0.0.0.0:0" } else { "[::]:0" };
                let socket = UdpSocket::bind(local).await.map_err(|e| e.to_string())?;
                socket.connect(target).await.map_err(|e| format!("{address}: {e}"))?;
                Ok(Connection::Udp(socket))
            }
            SyslogTransport::Tcp => {
                let stream = TcpStream::connect(address).await.map_err(|e| format!("{address}: {e}"))?;
                let _ = stream.set_nodelay(true);
                Ok(Connection::Stream(Box::new(tokio::io::BufWriter::new(stream))))
            }
            SyslogTransport::Tls => {
                let stream = TcpStream::connect(address).await.map_err(|e| format!("{address}: {e}"))?;
                let _ = stream.set_nodelay(true);
                let host = self.settings.server_name.clone().unwrap_or_else(|| host_of(address).to_string());
                let name =
                    ServerName::try_from(host.clone()).map_err(|_| format!("bad server name `{host}`"))?;
                let connector = self.tls.as_ref().ok_or("no TLS configuration")?;
                let tls =
                    connector.connect(name, stream).await.map_err(|e| format!("{address}: TLS: {e}"))?;
                Ok(Connection::Stream(Box::new(tokio::io::BufWriter::new(tls))))
            }
        }
    }

    async fn send(&mut self, lines: &[Arc<str>]) -> Result<(), String> {
        if self.connection.is_none() {
            self.connection = Some(self.connect().await?);
        }
        match self.connection.as_mut() {
            Some(Connection::Udp(socket)) => {
                let mut result = Ok(());
                for line in lines {
                    let message = format_message(line, &self.settings, &self.procid);
                    if let Err(e) = socket.send(message.as_bytes()).await {
                        result = Err(e.to_string());
                        break;
                    }
                }
                result
            }
            Some(Connection::Stream(stream)) => {
                let mut result = Ok(());
                for line in lines {
                    let message = format_message(line, &self.settings, &self.procid);
                    let frame = format!("{} {message}", message.len());
                    if let Err(e) = stream.write_all(frame.as_bytes()).await {
                        result = Err(e.to_string());
                        break;
                    }
                }
                match result {
                    Ok(()) => stream.flush().await.map_err(|e| e.to_string()),
                    err => err,
                }
            }
            None => Err("not connected".into()),
        }
    }
}

#[async_trait]
impl Sink for SyslogSink {
    async fn write(&mut self, lines: &[Arc<str>]) -> Result<(), WriteError> {
        // A receiver that stops reading (or answering) must not hold the sink forever.
        let sent = match tokio::time::timeout(IO_TIMEOUT, self.send(lines)).await {
            Ok(sent) => sent,
            Err(_) => Err(format!("{}: no progress for {IO_TIMEOUT:?}", self.settings.address)),
        };
        if sent.is_err() {
            // Reconnect on the next attempt.
            self.connection = None;
        }
        sent.map_err(WriteError::Transient)
    }

    async fn close(&mut self) {
        if let Some(Connection::Stream(stream)) = self.connection.as_mut() {
            let _ = stream.flush().await;
            let _ = stream.shutdown().await;
        }
    }

    fn retries(&self) -> bool {
        // A datagram lost is lost; streams reconnect and resend the batch.
        self.settings.transport != SyslogTransport::Udp
    }
}

/// One RFC 5424 message: `<PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID [SD] BOM MSG`.
pub fn format_message(line: &str, settings: &AuditSyslogConfig, procid: &str) -> String {
    let view = LineView::parse(line);
    let severity = match view.as_ref().map(|v| v.outcome) {
        Some(Outcome::Ok) => 6,
        Some(Outcome::Denied) => 5,
        Some(Outcome::Failed) | None => 4,
    };
    let pri = u16::from(settings.facility) * 8 + severity;
    let Some(view) = view else {
        return format!(
            "<{pri}>1 - - {} {} - - \u{feff}{line}",
            header_field(&settings.app_name, 48),
            procid
        );
    };
    let mut sd = format!("[{SD_ID} id=\"{}\"", view.id);
    for (name, value) in [
        ("session", view.session.as_deref()),
        ("protocol", view.protocol.as_deref()),
        ("user", view.user.as_deref()),
        ("peer", view.peer.as_deref()),
        ("path", view.path.as_deref()),
    ] {
        if let Some(value) = value {
            sd.push_str(&format!(" {name}=\"{}\"", param_value(value)));
        }
    }
    sd.push_str(&format!(" outcome=\"{}\" chain_seq=\"{}\"]", outcome_name(view.outcome), view.chain_seq));
    format!(
        "<{pri}>1 {ts} {host} {app} {procid} {msgid} {sd} \u{feff}{line}",
        ts = view.ts.to_rfc3339_opts(SecondsFormat::Micros, true),
        host = header_field(&view.node, 255),
        app = header_field(&settings.app_name, 48),
        procid = header_field(procid, 128),
        msgid = header_field(&view.event, 32),
    )
}

fn outcome_name(outcome: Outcome) -> &'static str {
    match outcome {
        Outcome::Ok => "ok",
        Outcome::Denied => "denied",
        Outcome::Failed => "failed",
    }
}

/// Header fields are printable US-ASCII without spaces, of bounded length, or `-`.
fn header_field(value: &str, max: usize) -> String {
    let clean: String = value.chars().filter(|c| c.is_ascii_graphic()).take(max).collect();
    if clean.is_empty() { "-".to_string() } else { clean }
}

/// PARAM-VALUE escaping (RFC 5424 section 6.3.3): `"`, `\` and `]` get a backslash.
fn param_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        if matches!(c, '"' | '\\' | ']') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

fn host_of(address: &str) -> &str {
    let host = address.rsplit_once(':').map_or(address, |(host, _)| host);
    host.trim_start_matches('[').trim_end_matches(']')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_follow_rfc_5424() {
        let line = r#"{"id":30002,"event":"file.upload","ts":"2026-12-01T10:00:00.123456789Z","node":"n 1","session":"s","protocol":"sftp","user":"a\"]b","path":"/x","outcome":"denied","chain_seq":7,"prev":"00","hash":"ab"}"#;
        let settings = AuditSyslogConfig {
            transport: SyslogTransport::Udp,
            address: "127.0.0.1:514".into(),
            server_name: None,
            ca_file: None,
            facility: 13,
            app_name: "ferry".into(),
        };
        let message = format_message(line, &settings, "42");
        let expected = format!(
            "<109>1 2026-12-01T10:00:00.123456Z n1 ferry 42 file.upload [ferry@32473 id=\"30002\" \
             session=\"s\" protocol=\"sftp\" user=\"a\\\"\\]b\" path=\"/x\" outcome=\"denied\" \
             chain_seq=\"7\"] \u{feff}{line}"
        );
        assert_eq!(message, expected);
    }
}
