//! Every metric ferry counts, registered once in one registry that the ops listener exports.
//! Labels are bounded enums (protocol, op, outcome, backend, sink), never user names or paths;
//! the one exception is the opt-in per-user transfer counter, capped in distinct users.

use std::collections::HashSet;
use std::sync::{LazyLock, Mutex};
use std::time::Duration;

use prometheus::{
    Gauge, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGaugeVec, Opts, Registry,
};

use crate::types::Protocol;

pub const BUILD_INFO: &str = "ferry_build_info";
pub const READY: &str = "ferry_ready";
pub const STATE_STORE_UP: &str = "ferry_state_store_up";
pub const CONNECTIONS_TOTAL: &str = "ferry_connections_total";
pub const CONNECTIONS_ACTIVE: &str = "ferry_connections_active";
pub const CONNECTIONS_REFUSED_TOTAL: &str = "ferry_connections_refused_total";
pub const PROXY_HEADERS_TOTAL: &str = "ferry_proxy_headers_total";
pub const SESSIONS_TOTAL: &str = "ferry_sessions_total";
pub const SESSIONS_ACTIVE: &str = "ferry_sessions_active";
pub const LOGINS_TOTAL: &str = "ferry_logins_total";
pub const AUTH_BACKEND_DURATION: &str = "ferry_auth_backend_duration_seconds";
pub const BANS_TOTAL: &str = "ferry_bans_total";
pub const PASSWORD_CHECKS_REFUSED_TOTAL: &str = "ferry_password_checks_refused_total";
pub const FILE_OPS_TOTAL: &str = "ferry_file_operations_total";
pub const BYTES_TOTAL: &str = "ferry_transfer_bytes_total";
pub const TRANSFER_DURATION: &str = "ferry_transfer_duration_seconds";
pub const STORAGE_REQUEST_DURATION: &str = "ferry_storage_request_duration_seconds";
pub const STORAGE_ERRORS_TOTAL: &str = "ferry_storage_errors_total";
pub const AUDIT_WRITTEN_TOTAL: &str = "ferry_audit_events_total";
pub const AUDIT_DROPPED_TOTAL: &str = "ferry_audit_events_dropped_total";
pub const AUDIT_QUEUE_DEPTH: &str = "ferry_audit_queue_depth";
pub const AUDIT_QUEUE_CAPACITY: &str = "ferry_audit_queue_capacity";
pub const AUDIT_SINK_ERRORS_TOTAL: &str = "ferry_audit_sink_errors_total";
pub const USER_BYTES_TOTAL: &str = "ferry_user_transfer_bytes_total";
pub const SFTP_HANDLES_REFUSED_TOTAL: &str = "ferry_sftp_handles_refused_total";
pub const SFTP_BYTES_IN_FLIGHT: &str = "ferry_sftp_bytes_in_flight";
pub const SSH_DISCONNECTS_TOTAL: &str = "ferry_ssh_disconnects_total";

/// The process-wide registry and its metrics.
pub struct Metrics {
    pub registry: Registry,
    pub ready: Gauge,
    /// 1 while the last round trip to the state store succeeded.
    pub state_store_up: Gauge,
    pub connections_total: IntCounterVec,
    pub connections_active: IntGaugeVec,
    pub connections_refused_total: IntCounterVec,
    pub proxy_headers_total: IntCounterVec,
    pub sessions_total: IntCounterVec,
    pub sessions_active: IntGaugeVec,
    pub logins_total: IntCounterVec,
    pub auth_backend_duration: HistogramVec,
    pub bans_total: IntCounter,
    pub password_checks_refused: IntCounter,
    pub file_ops_total: IntCounterVec,
    pub bytes_total: IntCounterVec,
    pub transfer_duration: HistogramVec,
    pub storage_request_duration: HistogramVec,
    pub storage_errors_total: IntCounterVec,
    pub audit_written_total: IntCounterVec,
    pub audit_dropped_total: IntCounterVec,
    pub audit_queue_depth: IntGaugeVec,
    pub audit_queue_capacity: IntGaugeVec,
    pub audit_sink_errors_total: IntCounterVec,
    pub user_bytes_total: IntCounterVec,
    pub sftp_handles_refused_total: IntCounterVec,
    pub sftp_bytes_in_flight: IntGaugeVec,
    pub ssh_disconnects_total: IntCounterVec,
    per_user: Mutex<PerUser>,
}

/// The opt-in per-user counter: off, or on with at most `max` distinct users (the rest are
/// counted as `_other`, so a flood of accounts cannot blow up the series count).
#[derive(Default)]
struct PerUser {
    max: usize,
    seen: HashSet<String>,
}

fn register<T: prometheus::core::Collector + Clone + 'static>(registry: &Registry, metric: T) -> T {
    // Names are unique consts in a fresh registry: registration cannot collide.
    let _ = registry.register(Box::new(metric.clone()));
    metric
}

fn counter(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let metric = IntCounterVec::new(Opts::new(name, help), labels)
        .unwrap_or_else(|e| unreachable!("metric {name} is well-formed: {e}"));
    register(registry, metric)
}

fn gauge(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
    let metric = IntGaugeVec::new(Opts::new(name, help), labels)
        .unwrap_or_else(|e| unreachable!("metric {name} is well-formed: {e}"));
    register(registry, metric)
}

fn histogram(
    registry: &Registry,
    name: &str,
    help: &str,
    labels: &[&str],
    buckets: Vec<f64>,
) -> HistogramVec {
    let metric = HistogramVec::new(HistogramOpts::new(name, help).buckets(buckets), labels)
        .unwrap_or_else(|e| unreachable!("metric {name} is well-formed: {e}"));
    register(registry, metric)
}

/// Request latencies: 0.5 ms to 30 s.
fn latency_buckets() -> Vec<f64> {
    vec![0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0]
}

/// Whole transfers: 10 ms to 1 hour.
fn transfer_buckets() -> Vec<f64> {
    vec![0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0]
}

static METRICS: LazyLock<Metrics> = LazyLock::new(|| {
    let r = Registry::new();
    let build_info =
        IntGaugeVec::new(Opts::new(BUILD_INFO, "Build of the running ferry (always 1)"), &["version"])
            .unwrap_or_else(|e| unreachable!("build info is well-formed: {e}"));
    register(&r, build_info.clone()).with_label_values(&[env!("CARGO_PKG_VERSION")]).set(1);
    let ready = register(
        &r,
        Gauge::new(READY, "1 when the node accepts connections, 0 while starting or draining")
            .unwrap_or_else(|e| unreachable!("ready gauge is well-formed: {e}")),
    );
    let state_store_up = register(
        &r,
        Gauge::new(STATE_STORE_UP, "1 while the state store answers, 0 after a round trip to it failed")
            .unwrap_or_else(|e| unreachable!("state store gauge is well-formed: {e}")),
    );
    state_store_up.set(1.0);
    let bans_total = register(
        &r,
        IntCounter::new(BANS_TOTAL, "Addresses banned after repeated failed logins")
            .unwrap_or_else(|e| unreachable!("bans counter is well-formed: {e}")),
    );
    let password_checks_refused = register(
        &r,
        IntCounter::new(
            PASSWORD_CHECKS_REFUSED_TOTAL,
            "Password logins refused at once because the hashing queue was full",
        )
        .unwrap_or_else(|e| unreachable!("password refusal counter is well-formed: {e}")),
    );
    Metrics {
        ready,
        state_store_up,
        password_checks_refused,
        connections_total: counter(
            &r,
            CONNECTIONS_TOTAL,
            "Client connections accepted, by protocol",
            &["protocol"],
        ),
        connections_active: gauge(
            &r,
            CONNECTIONS_ACTIVE,
            "Client connections open now, by protocol",
            &["protocol"],
        ),
        connections_refused_total: counter(
            &r,
            CONNECTIONS_REFUSED_TOTAL,
            "Connections closed at accept, by reason",
            &["reason"],
        ),
        proxy_headers_total: counter(
            &r,
            PROXY_HEADERS_TOTAL,
            "PROXY protocol headers read from trusted proxies, by outcome",
            &["outcome"],
        ),
        sessions_total: counter(
            &r,
            SESSIONS_TOTAL,
            "Authenticated file sessions opened, by protocol",
            &["protocol"],
        ),
        sessions_active: gauge(
            &r,
            SESSIONS_ACTIVE,
            "Authenticated file sessions open now, by protocol",
            &["protocol"],
        ),
        logins_total: counter(
            &r,
            LOGINS_TOTAL,
            "Login attempts by protocol, method, authentication backend and outcome",
            &["protocol", "method", "backend", "outcome"],
        ),
        auth_backend_duration: histogram(
            &r,
            AUTH_BACKEND_DURATION,
            "Time an authentication backend took to answer, by backend and outcome",
            &["backend", "outcome"],
            latency_buckets(),
        ),
        bans_total,
        file_ops_total: counter(
            &r,
            FILE_OPS_TOTAL,
            "File operations by protocol, operation and outcome",
            &["protocol", "op", "outcome"],
        ),
        bytes_total: counter(
            &r,
            BYTES_TOTAL,
            "Bytes transferred by protocol and direction",
            &["protocol", "direction"],
        ),
        transfer_duration: histogram(
            &r,
            TRANSFER_DURATION,
            "Duration of whole file transfers (open to close), by protocol and direction",
            &["protocol", "direction"],
            transfer_buckets(),
        ),
        storage_request_duration: histogram(
            &r,
            STORAGE_REQUEST_DURATION,
            "Latency of storage requests, by backend kind and operation",
            &["backend", "op"],
            latency_buckets(),
        ),
        storage_errors_total: counter(
            &r,
            STORAGE_ERRORS_TOTAL,
            "Storage requests that failed (not a missing file), by backend kind and operation",
            &["backend", "op"],
        ),
        audit_written_total: counter(&r, AUDIT_WRITTEN_TOTAL, "Audit records written, by sink", &["sink"]),
        audit_dropped_total: counter(
            &r,
            AUDIT_DROPPED_TOTAL,
            "Audit records lost: queue full with on_full = drop, or a failed write of a sink that does not retry",
            &["sink"],
        ),
        audit_queue_depth: gauge(&r, AUDIT_QUEUE_DEPTH, "Audit records waiting in a sink's queue", &["sink"]),
        audit_queue_capacity: gauge(&r, AUDIT_QUEUE_CAPACITY, "Size of a sink's audit queue", &["sink"]),
        audit_sink_errors_total: counter(
            &r,
            AUDIT_SINK_ERRORS_TOTAL,
            "Failed audit sink writes, by sink",
            &["sink"],
        ),
        user_bytes_total: counter(
            &r,
            USER_BYTES_TOTAL,
            "Bytes transferred per user (opt-in: ops.per_user_metrics; users past the cap count as _other)",
            &["user", "direction"],
        ),
        sftp_handles_refused_total: counter(
            &r,
            SFTP_HANDLES_REFUSED_TOTAL,
            "SFTP OPEN/OPENDIR refused by a handle cap, by cap (connection, user, descriptors)",
            &["reason"],
        ),
        sftp_bytes_in_flight: gauge(
            &r,
            SFTP_BYTES_IN_FLIGHT,
            "SFTP bytes held now: requests received and not yet served (queued), READ/WRITE payloads until their reply is written (replies)",
            &["kind"],
        ),
        ssh_disconnects_total: counter(
            &r,
            SSH_DISCONNECTS_TOTAL,
            "SSH connections ended by the server before authentication, by reason (login_grace, auth_attempts)",
            &["reason"],
        ),
        per_user: Mutex::new(PerUser::default()),
        registry: r,
    }
});

pub fn metrics() -> &'static Metrics {
    &METRICS
}

/// Turns the per-user transfer counter on with a cap of `max` distinct users (0: off).
pub fn enable_per_user(max: usize) {
    let mut per_user = metrics().per_user.lock().unwrap_or_else(|p| p.into_inner());
    per_user.max = max;
}

/// Counts one file operation.
pub fn file_op(protocol: Protocol, op: &'static str, outcome: &'static str) {
    metrics().file_ops_total.with_label_values(&[protocol.as_str(), op, outcome]).inc();
}

/// Counts bytes moved; `direction` is "upload" or "download".
pub fn bytes(protocol: Protocol, direction: &'static str, count: u64) {
    metrics().bytes_total.with_label_values(&[protocol.as_str(), direction]).inc_by(count);
}

/// Records a finished transfer: its duration, and its bytes per user when that is on.
pub fn transfer(protocol: Protocol, direction: &'static str, user: &str, count: u64, took: Duration) {
    let m = metrics();
    m.transfer_duration.with_label_values(&[protocol.as_str(), direction]).observe(took.as_secs_f64());
    let label = {
        let mut per_user = m.per_user.lock().unwrap_or_else(|p| p.into_inner());
        if per_user.max == 0 {
            return;
        }
        if per_user.seen.contains(user) {
            user.to_string()
        } else if per_user.seen.len() < per_user.max {
            per_user.seen.insert(user.to_string());
            user.to_string()
        } else {
            "_other".to_string()
        }
    };
    m.user_bytes_total.with_label_values(&[label.as_str(), direction]).inc_by(count);
}

pub fn login(protocol: Protocol, method: &'static str, backend: &str, outcome: &'static str) {
    metrics().logins_total.with_label_values(&[protocol.as_str(), method, backend, outcome]).inc();
}

/// Times one storage request; errors that are not "not found" count as storage errors.
pub fn storage_request(backend: &'static str, op: &'static str, took: Duration, failed: bool) {
    let m = metrics();
    m.storage_request_duration.with_label_values(&[backend, op]).observe(took.as_secs_f64());
    if failed {
        m.storage_errors_total.with_label_values(&[backend, op]).inc();
    }
}

/// A password check refused because the hashing pool's queue was full.
pub fn password_check_refused() {
    metrics().password_checks_refused.inc();
}

pub fn auth_backend(backend: &'static str, outcome: &'static str, took: Duration) {
    metrics().auth_backend_duration.with_label_values(&[backend, outcome]).observe(took.as_secs_f64());
}

/// The registry in Prometheus text format.
pub fn render() -> String {
    use prometheus::Encoder;
    let mut out = Vec::new();
    let _ = prometheus::TextEncoder::new().encode(&metrics().registry.gather(), &mut out);
    String::from_utf8(out).unwrap_or_default()
}
