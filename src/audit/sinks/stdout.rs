//! JSON lines on standard output (logs go to standard error, so the two never mix).

use std::sync::Arc;

use async_trait::async_trait;
use tokio::io::AsyncWriteExt;

use super::Sink;

pub struct Stdout {
    out: tokio::io::BufWriter<tokio::io::Stdout>,
}

impl Default for Stdout {
    fn default() -> Self {
        Self { out: tokio::io::BufWriter::with_capacity(64 * 1024, tokio::io::stdout()) }
    }
}

#[async_trait]
impl Sink for Stdout {
    async fn write(&mut self, lines: &[Arc<str>]) -> Result<(), String> {
        for line in lines {
            self.out.write_all(line.as_bytes()).await.map_err(|e| e.to_string())?;
            self.out.write_all(b"\n").await.map_err(|e| e.to_string())?;
        }
        self.out.flush().await.map_err(|e| e.to_string())
    }

    async fn close(&mut self) {
        let _ = self.out.flush().await;
    }

    fn retries(&self) -> bool {
        false
    }
}
