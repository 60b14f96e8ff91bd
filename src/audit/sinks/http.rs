//! An HTTP collector: batches of lines POSTed as `application/x-ndjson`, with an optional
//! bearer secret. A failed POST (network error, 5xx, 408, 429) is retried with backoff, and the
//! lane's `on_full` policy decides what happens to new records meanwhile; any other 4xx answer
//! refuses the batch for good, which is dropped and counted.

use std::sync::Arc;

use async_trait::async_trait;

use super::{Sink, WriteError};
use crate::clients::{self, HttpClient};
use crate::config::AuditHttpConfig;

pub struct HttpSink {
    settings: AuditHttpConfig,
    client: reqwest::Client,
}

impl HttpSink {
    pub fn new(settings: AuditHttpConfig) -> Result<Self, clients::HttpClientError> {
        let client = clients::http_client(HttpClient {
            timeout: settings.timeout,
            connect_timeout: None,
            ca_file: None,
        })?;
        Ok(Self { settings, client })
    }
}

#[async_trait]
impl Sink for HttpSink {
    async fn write(&mut self, lines: &[Arc<str>]) -> Result<(), WriteError> {
        let mut body = String::with_capacity(lines.iter().map(|l| l.len() + 1).sum());
        for line in lines {
            body.push_str(line);
            body.push('\n');
        }
        let mut request = self
            .client
            .post(&self.settings.url)
            .header(reqwest::header::CONTENT_TYPE, "application/x-ndjson")
            .body(body);
        if let Some(secret) = &self.settings.bearer_secret {
            request = request.bearer_auth(secret.expose());
        }
        let response = request.send().await.map_err(|e| e.without_url().to_string())?;
        let status = response.status();
        if status.is_success() {
            Ok(())
        } else if status.is_client_error() && !matches!(status.as_u16(), 408 | 429) {
            // 400, 401, 413, 422…: this batch will never be taken; dropping it (counted) keeps
            // the records after it flowing.
            Err(WriteError::Refused(format!("collector answered {status}")))
        } else {
            Err(WriteError::Transient(format!("collector answered {status}")))
        }
    }

    fn retries(&self) -> bool {
        true
    }
}
