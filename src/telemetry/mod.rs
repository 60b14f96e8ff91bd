//! Logging, traces and the metrics registry. Leaf room: uses `config` and `types`.
//!
//! Logs go to stderr (stdout carries audit records). Traces are exported over OTLP/HTTP
//! (protobuf) when the standard variables ask for it: `OTEL_EXPORTER_OTLP_ENDPOINT` or
//! `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` set, or `OTEL_TRACES_EXPORTER=otlp`; never when
//! `OTEL_SDK_DISABLED=true` or `OTEL_TRACES_EXPORTER=none`. The exporter reads the rest
//! (`OTEL_EXPORTER_OTLP_HEADERS`, `…_TIMEOUT`, `OTEL_SERVICE_NAME`, `OTEL_RESOURCE_ATTRIBUTES`,
//! `OTEL_TRACES_SAMPLER`, `OTEL_BSP_*`) itself.

pub mod memory;
pub mod metrics;

use opentelemetry::trace::{TraceContextExt as _, TracerProvider as _};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing::Level;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::Layer as _;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;

use crate::config::{LogConfig, LogFormat};

/// The trace pipeline, to flush on exit.
pub struct Tracing {
    provider: Option<SdkTracerProvider>,
}

impl Tracing {
    /// Exports the spans still batched. Blocks up to a few seconds: call it off the runtime.
    pub fn shutdown(self) {
        if let Some(provider) = self.provider
            && let Err(e) = provider.shutdown()
        {
            eprintln!("ferry: trace export shutdown: {e}");
        }
    }
}

/// Whether the `OTEL_*` variables ask for trace export.
fn otlp_wanted(var: impl Fn(&str) -> Option<String>) -> bool {
    let set = |name: &str| var(name).is_some_and(|v| !v.trim().is_empty());
    if var("OTEL_SDK_DISABLED").is_some_and(|v| v.trim().eq_ignore_ascii_case("true")) {
        return false;
    }
    match var("OTEL_TRACES_EXPORTER").map(|v| v.trim().to_ascii_lowercase()) {
        Some(v) if v == "none" => false,
        Some(v) if v == "otlp" => true,
        _ => set("OTEL_EXPORTER_OTLP_ENDPOINT") || set("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"),
    }
}

fn provider() -> Result<SdkTracerProvider, String> {
    let exporter =
        opentelemetry_otlp::SpanExporter::builder().with_http().build().map_err(|e| e.to_string())?;
    let mut resource = Resource::builder();
    // The environment's service name wins over ours.
    let named_by_attributes = std::env::var("OTEL_RESOURCE_ATTRIBUTES")
        .is_ok_and(|a| a.split(',').any(|kv| kv.trim().starts_with("service.name=")));
    if std::env::var_os("OTEL_SERVICE_NAME").is_none() && !named_by_attributes {
        resource = resource.with_service_name("ferry");
    }
    let resource = resource
        .with_attribute(opentelemetry::KeyValue::new("service.version", env!("CARGO_PKG_VERSION")))
        .build();
    Ok(SdkTracerProvider::builder().with_resource(resource).with_batch_exporter(exporter).build())
}

/// Installs the global subscriber: logs on stderr, and OTLP traces when configured.
pub fn init(log: &LogConfig) -> Tracing {
    let filter = EnvFilter::try_from_env("FERRY_LOG")
        .or_else(|_| EnvFilter::try_new(&log.level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let provider = if otlp_wanted(|name| std::env::var(name).ok()) {
        match provider() {
            Ok(provider) => Some(provider),
            Err(e) => {
                eprintln!("ferry: traces disabled: {e}");
                None
            }
        }
    } else {
        None
    };
    // Each output has its own filter: a quiet log level (`warn`) must not switch off the spans
    // traces are made of, and traces need no debug logging.
    let spans = Targets::new().with_target("ferry", Level::INFO);
    let otel = provider
        .as_ref()
        .map(|p| tracing_opentelemetry::layer().with_tracer(p.tracer("ferry")).with_filter(spans));
    // Colours only for a person at a terminal, never for a log collector.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let logs = match log.format {
        LogFormat::Text => {
            tracing_subscriber::fmt::layer().with_ansi(ansi).with_writer(std::io::stderr).boxed()
        }
        LogFormat::Json => tracing_subscriber::fmt::layer().json().with_writer(std::io::stderr).boxed(),
    };
    // A second init (tests start several servers in one process) is not an error.
    let _ = tracing_subscriber::registry().with(otel).with(logs.with_filter(filter)).try_init();
    Tracing { provider }
}

/// The OpenTelemetry trace ID of `span` (32 hex digits), when traces are exported.
pub fn trace_id(span: &tracing::Span) -> Option<String> {
    let context = span.context();
    let otel = context.span();
    let span_context = otel.span_context();
    span_context.is_valid().then(|| span_context.trace_id().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |name| pairs.iter().find(|(k, _)| *k == name).map(|(_, v)| v.to_string())
    }

    #[test]
    fn standard_variables_switch_traces_on_and_off() {
        assert!(!otlp_wanted(vars(&[])));
        assert!(otlp_wanted(vars(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318")])));
        assert!(otlp_wanted(vars(&[("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://c/v1/traces")])));
        assert!(otlp_wanted(vars(&[("OTEL_TRACES_EXPORTER", "otlp")])));
        assert!(!otlp_wanted(vars(&[
            ("OTEL_TRACES_EXPORTER", "none"),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://x")
        ])));
        assert!(!otlp_wanted(vars(&[
            ("OTEL_SDK_DISABLED", "true"),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://x")
        ])));
    }
}
