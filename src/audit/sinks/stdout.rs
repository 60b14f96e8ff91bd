//! JSON lines on standard output (logs go to standard error, so the two never mix).

use std::sync::Arc;

use async_trait::async_trait;
use tokio::io::AsyncWriteExt;

use super::{Sink, WriteError};

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
    async fn write(&mut self, lines: &[Arc<str>]) -> Result<(), WriteError> {
        for line in lines {
            self.out.write_all(line.as_bytes()).await?;
            self.out.write_all(b"\n").await?;
        }
        Ok(self.out.flush().await?)
    }

    async fn close(&mut self) {
        let _ = self.out.flush().await;
    }

    fn retries(&self) -> bool {
        false
    }
}
