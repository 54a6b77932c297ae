//! Logging: structured JSON lines when not on a terminal (what the Functions host captures),
//! human-readable text on a terminal. INFO and below go to stdout; WARN and ERROR go to stderr,
//! which the host logs as warnings and errors and which survives a non-2xx answer (the host
//! drops the invocation's `Logs` then).

use std::io::IsTerminal;

use tracing_subscriber::fmt::writer::MakeWriterExt;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, fmt};

/// Installs the global subscriber. `format` is `json`, `text` or `auto`; `filter` uses
/// `EnvFilter` syntax (`info`, `ordergrid=debug`). Safe to call more than once (later calls
/// are ignored), so tests can call it freely.
pub fn init(format: &str, filter: &str) {
    let filter = EnvFilter::try_new(filter).unwrap_or_else(|_| EnvFilter::new("info"));
    let json = match format {
        "json" => true,
        "text" => false,
        _ => !std::io::stdout().is_terminal(),
    };
    let writer = std::io::stderr
        .with_max_level(tracing::Level::WARN)
        .or_else(std::io::stdout);
    let registry = tracing_subscriber::registry().with(filter);
    let _ = if json {
        registry
            .with(
                fmt::layer()
                    .json()
                    .flatten_event(true)
                    .with_current_span(true)
                    .with_span_list(false)
                    .with_writer(writer),
            )
            .try_init()
    } else {
        registry
            .with(fmt::layer().with_target(false).with_writer(writer))
            .try_init()
    };
}

/// Installs logging from `ORDERGRID_LOG` / `ORDERGRID_LOG_FORMAT`.
pub fn init_from_env() {
    let filter = std::env::var("ORDERGRID_LOG").unwrap_or_else(|_| "info".into());
    let format = std::env::var("ORDERGRID_LOG_FORMAT").unwrap_or_else(|_| "auto".into());
    init(&format, &filter);
}
