//! The state database: every line with the columns `ferry audit query` and `GET /api/v1/audit`
//! filter on, appended in chain order, one transaction per batch.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use super::{Sink, WriteError};
use crate::audit::event::LineView;
use crate::state::State;
use crate::state::audit::AuditRow;

pub struct DatabaseSink {
    state: State,
    /// Rows older than this are purged (hourly); zero keeps them.
    retention: Duration,
    last_purge: Option<tokio::time::Instant>,
}

impl DatabaseSink {
    pub fn new(state: State, retention: Duration) -> Self {
        Self { state, retention, last_purge: None }
    }
}

/// The column form of a line; `None` for a line that is not a sealed record.
pub fn row(line: &str) -> Option<AuditRow> {
    let view = LineView::parse(line)?;
    Some(AuditRow {
        node: view.node,
        chain_seq: view.chain_seq,
        event_id: view.id,
        event: view.event,
        ts: view.ts,
        session: view.session,
        protocol: view.protocol,
        user: view.user,
        peer: view.peer,
        path: view.path,
        outcome: serde_json::to_value(view.outcome)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default(),
        hash: view.hash,
        record: line.to_string(),
    })
}

#[async_trait]
impl Sink for DatabaseSink {
    async fn write(&mut self, lines: &[Arc<str>]) -> Result<(), WriteError> {
        let rows: Vec<AuditRow> = lines.iter().filter_map(|line| row(line)).collect();
        // The newest checkpoint's head is saved with its row, never before it, so a verifier
        // reading the saved head always finds that record in the trail.
        let checkpoint = crate::audit::event::EventKind::AuditCheckpoint.id();
        let signed = rows.iter().rev().find(|row| row.event_id == checkpoint);
        self.state.audit().append(&rows, signed).await?;
        Ok(())
    }

    async fn tick(&mut self) {
        if self.retention.is_zero()
            || self.last_purge.is_some_and(|t| t.elapsed() < Duration::from_secs(3600))
        {
            return;
        }
        self.last_purge = Some(tokio::time::Instant::now());
        let Ok(retention) = chrono::Duration::from_std(self.retention) else {
            return;
        };
        // A retention longer than the calendar reaches back to nothing to purge.
        let Some(before) = chrono::Utc::now().checked_sub_signed(retention) else {
            return;
        };
        match self.state.audit().purge_before(&before).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(records = n, %before, "audit records purged by retention"),
            Err(e) => tracing::warn!(error = %e, "audit retention purge failed"),
        }
    }

    fn retries(&self) -> bool {
        true
    }
}
