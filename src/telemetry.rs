//! Logging: structured JSON lines when not on a terminal (what the Functions host captures),
//! human-readable text on a terminal. INFO and below go to stdout; WARN and ERROR go to stderr,
//! which the host logs as warnings and errors and which survives a non-2xx answer (the host
//! drops the invocation's `Logs` then).

use std::collections::HashMap;
use std::io::IsTerminal;

use tracing_subscriber::fmt::writer::MakeWriterExt;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, fmt};

use crate::settings::{Reader, Setting};

pub const LOG: Setting = Setting::new(
    "ORDERGRID_LOG",
    "info",
    "log filter (`tracing` EnvFilter syntax: `info`, `ordergrid=debug`)",
);
pub const LOG_FORMAT: Setting = Setting::new(
    "ORDERGRID_LOG_FORMAT",
    "auto",
    "`json`, `text` or `auto` (JSON unless on a terminal)",
);
pub const SETTINGS: &[Setting] = &[LOG, LOG_FORMAT];

/// What the log lines are: JSON objects, one a line, or text for people.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Json,
    Text,
}

/// Installs the global subscriber. `format` is `json`, `text` or `auto`; `filter` uses
/// `EnvFilter` syntax (`info`, `ordergrid=debug`). Safe to call more than once (later calls
/// are ignored), so tests can call it freely. Returns the format chosen, so that what the
/// command line writes to stderr itself (its final error) matches the log lines around it.
pub fn init(format: &str, filter: &str) -> LogFormat {
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
    if json {
        LogFormat::Json
    } else {
        LogFormat::Text
    }
}

/// Installs logging from [`LOG`] and [`LOG_FORMAT`]. Logging comes before settings are
/// checked (so it can report them), so a bad value falls back to the default instead of failing.
pub fn init_from_env(env: &HashMap<String, String>) -> LogFormat {
    let r = Reader::new(env);
    init(&r.string(&LOG_FORMAT), &r.string(&LOG))
}
