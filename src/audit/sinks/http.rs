//! An HTTP collector: batches of lines POSTed as `application/x-ndjson`, with an optional
//! bearer secret. A failed POST (network error or non-2xx answer) is retried with backoff; the
//! lane's `on_full` policy decides what happens to new records meanwhile.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use super::Sink;
use crate::types::Secret;

#[derive(Debug, Clone)]
pub struct HttpSettings {
    pub url: String,
    pub bearer_secret: Option<Secret<String>>,
    pub timeout: Duration,
}

pub struct HttpSink {
    settings: HttpSettings,
    client: reqwest::Client,
}

impl HttpSink {
    pub fn new(settings: HttpSettings) -> Result<Self, String> {
        let client = reqwest::Client::builder()
            .timeout(settings.timeout)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| e.to_string())?;
        Ok(Self { settings, client })
    }
}

#[async_trait]
impl Sink for HttpSink {
    async fn write(&mut self, lines: &[Arc<str>]) -> Result<(), String> {
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
        if response.status().is_success() {
            Ok(())
        } else {
            Err(format!("collector answered {}", response.status()))
        }
    }

    fn retries(&self) -> bool {
        true
    }
}
