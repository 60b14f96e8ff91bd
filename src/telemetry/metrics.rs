//! Every metric ferry counts, registered once. Labels are bounded enums (protocol, op,
//! outcome), never user names or paths. Exported over HTTP in a later issue.

use std::sync::LazyLock;

use prometheus::{IntCounterVec, IntGaugeVec, Opts, Registry};

use crate::types::Protocol;

pub const SESSIONS_TOTAL: &str = "ferry_sessions_total";
pub const SESSIONS_ACTIVE: &str = "ferry_sessions_active";
pub const LOGINS_TOTAL: &str = "ferry_logins_total";
pub const FILE_OPS_TOTAL: &str = "ferry_file_operations_total";
pub const BYTES_TOTAL: &str = "ferry_transfer_bytes_total";
pub const CONNECTIONS_REFUSED_TOTAL: &str = "ferry_connections_refused_total";
pub const AUDIT_DROPPED_TOTAL: &str = "ferry_audit_events_dropped_total";

/// The process-wide registry and its metrics.
pub struct Metrics {
    pub registry: Registry,
    pub sessions_total: IntCounterVec,
    pub sessions_active: IntGaugeVec,
    pub logins_total: IntCounterVec,
    pub file_ops_total: IntCounterVec,
    pub bytes_total: IntCounterVec,
    pub connections_refused_total: IntCounterVec,
    pub audit_dropped_total: IntCounterVec,
}

fn counter(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let metric = IntCounterVec::new(Opts::new(name, help), labels)
        .unwrap_or_else(|e| unreachable!("metric {name} is well-formed: {e}"));
    // Registering a fresh name in a fresh registry cannot collide.
    let _ = registry.register(Box::new(metric.clone()));
    metric
}

static METRICS: LazyLock<Metrics> = LazyLock::new(|| {
    let registry = Registry::new();
    let sessions_active =
        IntGaugeVec::new(Opts::new(SESSIONS_ACTIVE, "Sessions currently open, by protocol"), &["protocol"])
            .unwrap_or_else(|e| unreachable!("gauge is well-formed: {e}"));
    let _ = registry.register(Box::new(sessions_active.clone()));
    Metrics {
        sessions_total: counter(&registry, SESSIONS_TOTAL, "Sessions opened, by protocol", &["protocol"]),
        sessions_active,
        logins_total: counter(
            &registry,
            LOGINS_TOTAL,
            "Login attempts by protocol, method and outcome",
            &["protocol", "method", "outcome"],
        ),
        file_ops_total: counter(
            &registry,
            FILE_OPS_TOTAL,
            "File operations by protocol, operation and outcome",
            &["protocol", "op", "outcome"],
        ),
        bytes_total: counter(
            &registry,
            BYTES_TOTAL,
            "Bytes transferred by protocol and direction",
            &["protocol", "direction"],
        ),
        connections_refused_total: counter(
            &registry,
            CONNECTIONS_REFUSED_TOTAL,
            "Connections closed at accept, by reason",
            &["reason"],
        ),
        audit_dropped_total: counter(
            &registry,
            AUDIT_DROPPED_TOTAL,
            "Audit events dropped because a sink queue was full",
            &["sink"],
        ),
        registry,
    }
});

pub fn metrics() -> &'static Metrics {
    &METRICS
}

/// Counts one file operation.
pub fn file_op(protocol: Protocol, op: &'static str, outcome: &'static str) {
    metrics().file_ops_total.with_label_values(&[protocol.as_str(), op, outcome]).inc();
}

/// Counts bytes moved; `direction` is "upload" or "download".
pub fn bytes(protocol: Protocol, direction: &'static str, count: u64) {
    metrics().bytes_total.with_label_values(&[protocol.as_str(), direction]).inc_by(count);
}

pub fn login(protocol: Protocol, method: &'static str, outcome: &'static str) {
    metrics().logins_total.with_label_values(&[protocol.as_str(), method, outcome]).inc();
}
