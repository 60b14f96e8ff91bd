//! The audit table: batched appends in chain order, filtered queries, per-node chain heads and
//! public keys, and retention.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;

use super::StateError;

/// One row to append; `record` is the exact line the hash chain covers.
#[derive(Debug, Clone)]
pub struct AuditRow {
    pub node: String,
    pub chain_seq: u64,
    pub event_id: u32,
    pub event: String,
    pub ts: DateTime<Utc>,
    pub session: Option<String>,
    pub protocol: Option<String>,
    pub user: Option<String>,
    pub peer: Option<String>,
    pub path: Option<String>,
    pub outcome: String,
    pub hash: String,
    pub record: String,
}

/// What to look for. Empty fields match everything.
#[derive(Debug, Clone, Default)]
pub struct AuditQuery {
    pub user: Option<String>,
    /// An event name (`file.upload`) or a numeric ID (`30002`).
    pub event: Option<String>,
    pub node: Option<String>,
    /// Inclusive `since`, exclusive `until`.
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
    /// Only rows after this cursor (a `row` value from a previous page).
    pub after: Option<i64>,
    pub limit: u32,
}

/// One stored record and its position, for paging.
#[derive(Debug, Clone, Serialize)]
pub struct StoredLine {
    pub row: i64,
    pub record: String,
}

/// A node's chain head and key as last saved.
#[derive(Debug, Clone)]
pub struct NodeHead {
    pub public_key: String,
    /// At the last clean shutdown.
    pub head: Option<(u64, String)>,
    /// At the last checkpoint.
    pub signed: Option<(u64, String)>,
}

/// The one form `ts` is stored and compared in: RFC 3339 in UTC with six fractional digits
/// always, so that text order is time order (`…:00Z` would sort after `…:00.5Z`).
pub(super) fn stored_time(time: &DateTime<Utc>) -> String {
    time.to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// The audit table and each node's chain head.
#[async_trait::async_trait]
pub trait AuditStore: Send + Sync {
    /// Appends rows in one transaction, in the order given; `signed` (a checkpoint among them)
    /// is saved as the node's signed head in the same transaction, never before its row.
    async fn append(&self, rows: &[AuditRow], signed: Option<&AuditRow>) -> Result<(), StateError>;
    async fn query(&self, q: &AuditQuery) -> Result<Vec<StoredLine>, StateError>;
    /// Every stored line of `node`, in the order written, a page at a time (for verification).
    async fn lines_of(&self, node: &str, after: i64, limit: u32) -> Result<Vec<StoredLine>, StateError>;
    async fn nodes(&self) -> Result<Vec<String>, StateError>;
    /// The last record of `node` stored here.
    async fn last_of(&self, node: &str) -> Result<Option<(u64, String)>, StateError>;
    async fn node_head(&self, node: &str) -> Result<Option<NodeHead>, StateError>;
    /// Records the chain position of the node's last checkpoint.
    async fn save_signed_head(&self, node: &str, seq: u64, hash: &str) -> Result<(), StateError>;
    /// Records the node's public key and, when given, its chain head.
    async fn save_node(
        &self,
        node: &str,
        public_key: &str,
        head: Option<(u64, &str)>,
    ) -> Result<(), StateError>;
    /// Deletes records older than `before`; returns how many.
    async fn purge_before(&self, before: &DateTime<Utc>) -> Result<u64, StateError>;
}

/// `AuditStore` for a store type with a `pool` on database `$db`. `"user"` and `"row"` are
/// quoted: PostgreSQL reserves the first.
macro_rules! impl_audit_store {
    ($store:ty, $db:ty) => {
        #[async_trait::async_trait]
        impl $crate::state::audit::AuditStore for $store {
            async fn append(
                &self,
                rows: &[$crate::state::audit::AuditRow],
                signed: Option<&$crate::state::audit::AuditRow>,
            ) -> Result<(), $crate::state::StateError> {
                use $crate::state::audit::stored_time;
                if rows.is_empty() {
                    return Ok(());
                }
                let mut tx = self.pool.begin().await?;
                // SQLite allows 32,766 bound values, PostgreSQL 65,535; 13 per row.
                for chunk in rows.chunks(1000) {
                    let mut insert: sqlx::QueryBuilder<$db> = sqlx::QueryBuilder::new(
                        "INSERT INTO audit_events (node, chain_seq, event_id, event, ts, session, protocol, \
                         \"user\", peer, path, outcome, hash, record) ",
                    );
                    insert.push_values(chunk, |mut b, row| {
                        b.push_bind(&row.node)
                            .push_bind(row.chain_seq as i64)
                            .push_bind(i64::from(row.event_id))
                            .push_bind(&row.event)
                            .push_bind(stored_time(&row.ts))
                            .push_bind(&row.session)
                            .push_bind(&row.protocol)
                            .push_bind(&row.user)
                            .push_bind(&row.peer)
                            .push_bind(&row.path)
                            .push_bind(&row.outcome)
                            .push_bind(&row.hash)
                            .push_bind(&row.record);
                    });
                    insert.build().execute(&mut *tx).await?;
                }
                if let Some(signed) = signed {
                    sqlx::query(
                        "UPDATE audit_nodes SET signed_seq = $1, signed_hash = $2, updated_at = $3 \
                         WHERE node = $4 AND (signed_seq IS NULL OR signed_seq < $1)",
                    )
                    .bind(signed.chain_seq as i64)
                    .bind(&signed.hash)
                    .bind(chrono::Utc::now().to_rfc3339())
                    .bind(&signed.node)
                    .execute(&mut *tx)
                    .await?;
                }
                tx.commit().await?;
                Ok(())
            }

            async fn query(
                &self,
                q: &$crate::state::audit::AuditQuery,
            ) -> Result<Vec<$crate::state::audit::StoredLine>, $crate::state::StateError> {
                use $crate::state::audit::stored_time;
                let mut sql: sqlx::QueryBuilder<$db> =
                    sqlx::QueryBuilder::new("SELECT \"row\", record FROM audit_events WHERE 1 = 1");
                if let Some(user) = &q.user {
                    sql.push(" AND \"user\" = ").push_bind(user.clone());
                }
                if let Some(event) = &q.event {
                    match event.parse::<i64>() {
                        Ok(id) => sql.push(" AND event_id = ").push_bind(id),
                        Err(_) => sql.push(" AND event = ").push_bind(event.clone()),
                    };
                }
                if let Some(node) = &q.node {
                    sql.push(" AND node = ").push_bind(node.clone());
                }
                if let Some(since) = &q.since {
                    sql.push(" AND ts >= ").push_bind(stored_time(since));
                }
                if let Some(until) = &q.until {
                    sql.push(" AND ts < ").push_bind(stored_time(until));
                }
                if let Some(after) = q.after {
                    sql.push(" AND \"row\" > ").push_bind(after);
                }
                sql.push(" ORDER BY \"row\" LIMIT ").push_bind(i64::from(q.limit.max(1)));
                let rows: Vec<(i64, String)> = sql.build_query_as().fetch_all(&self.pool).await?;
                Ok(rows.into_iter().map(|(row, record)| $crate::state::audit::StoredLine { row, record }).collect())
            }

            async fn lines_of(
                &self,
                node: &str,
                after: i64,
                limit: u32,
            ) -> Result<Vec<$crate::state::audit::StoredLine>, $crate::state::StateError> {
                let rows: Vec<(i64, String)> = sqlx::query_as(
                    "SELECT \"row\", record FROM audit_events WHERE node = $1 AND \"row\" > $2 ORDER BY \"row\" LIMIT $3",
                )
                .bind(node)
                .bind(after)
                .bind(i64::from(limit))
                .fetch_all(&self.pool)
                .await?;
                Ok(rows.into_iter().map(|(row, record)| $crate::state::audit::StoredLine { row, record }).collect())
            }

            async fn nodes(&self) -> Result<Vec<String>, $crate::state::StateError> {
                let rows: Vec<(String,)> =
                    sqlx::query_as("SELECT DISTINCT node FROM audit_events ORDER BY node").fetch_all(&self.pool).await?;
                Ok(rows.into_iter().map(|(n,)| n).collect())
            }

            async fn last_of(&self, node: &str) -> Result<Option<(u64, String)>, $crate::state::StateError> {
                let row: Option<(i64, String)> = sqlx::query_as(
                    "SELECT chain_seq, hash FROM audit_events WHERE node = $1 ORDER BY chain_seq DESC LIMIT 1",
                )
                .bind(node)
                .fetch_optional(&self.pool)
                .await?;
                Ok(row.map(|(seq, hash)| (seq as u64, hash)))
            }

            async fn node_head(
                &self,
                node: &str,
            ) -> Result<Option<$crate::state::audit::NodeHead>, $crate::state::StateError> {
                type Row = (String, Option<i64>, Option<String>, Option<i64>, Option<String>);
                let row: Option<Row> = sqlx::query_as(
                    "SELECT public_key, head_seq, head_hash, signed_seq, signed_hash FROM audit_nodes WHERE node = $1",
                )
                .bind(node)
                .fetch_optional(&self.pool)
                .await?;
                let pair = |seq: Option<i64>, hash: Option<String>| {
                    seq.zip(hash).map(|(seq, hash)| (seq as u64, hash))
                };
                Ok(row.map(|(public_key, seq, hash, signed_seq, signed_hash)| $crate::state::audit::NodeHead {
                    public_key,
                    head: pair(seq, hash),
                    signed: pair(signed_seq, signed_hash),
                }))
            }

            async fn save_signed_head(&self, node: &str, seq: u64, hash: &str) -> Result<(), $crate::state::StateError> {
                sqlx::query(
                    "UPDATE audit_nodes SET signed_seq = $1, signed_hash = $2, updated_at = $3 WHERE node = $4",
                )
                .bind(seq as i64)
                .bind(hash)
                .bind(chrono::Utc::now().to_rfc3339())
                .bind(node)
                .execute(&self.pool)
                .await?;
                Ok(())
            }

            async fn save_node(
                &self,
                node: &str,
                public_key: &str,
                head: Option<(u64, &str)>,
            ) -> Result<(), $crate::state::StateError> {
                sqlx::query(
                    "INSERT INTO audit_nodes (node, public_key, head_seq, head_hash, updated_at) \
                     VALUES ($1, $2, $3, $4, $5) ON CONFLICT(node) DO UPDATE SET public_key = excluded.public_key, \
                     head_seq = COALESCE(excluded.head_seq, audit_nodes.head_seq), \
                     head_hash = COALESCE(excluded.head_hash, audit_nodes.head_hash), updated_at = excluded.updated_at",
                )
                .bind(node)
                .bind(public_key)
                .bind(head.map(|(seq, _)| seq as i64))
                .bind(head.map(|(_, hash)| hash))
                .bind(chrono::Utc::now().to_rfc3339())
                .execute(&self.pool)
                .await?;
                Ok(())
            }

            async fn purge_before(&self, before: &chrono::DateTime<chrono::Utc>) -> Result<u64, $crate::state::StateError> {
                let done = sqlx::query("DELETE FROM audit_events WHERE ts < $1")
                    .bind($crate::state::audit::stored_time(before))
                    .execute(&self.pool)
                    .await?;
                Ok(done.rows_affected())
            }
        }
    };
}
pub(super) use impl_audit_store;
