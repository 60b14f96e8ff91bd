//! Logging setup and the metrics registry. Leaf room: uses `config` and `types`.

pub mod metrics;

use tracing_subscriber::EnvFilter;

use crate::config::{LogConfig, LogFormat};

/// Installs the global tracing subscriber (logs go to stderr; stdout carries audit records).
pub fn init_logging(log: &LogConfig) {
    let filter = EnvFilter::try_from_env("FERRY_LOG")
        .or_else(|_| EnvFilter::try_new(&log.level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    // A second init (tests start several servers in one process) is not an error.
    let _ = match log.format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}
