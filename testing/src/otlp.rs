//! A real OTLP/HTTP traces receiver for a test: `tests/support/otlp_receiver.py`, which decodes
//! what it gets with the OpenTelemetry project's own protobuf messages and keeps every span as a
//! JSON line.

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::process::Process;
use crate::support_script;

/// A running receiver; stopped when dropped.
pub struct OtlpReceiver {
    /// Its base URL, for `OTEL_EXPORTER_OTLP_ENDPOINT`.
    pub endpoint: String,
    spans: PathBuf,
    _process: Process,
}

impl OtlpReceiver {
    /// A receiver keeping its spans in `dir`.
    pub fn start(dir: &Path) -> OtlpReceiver {
        let spans = dir.join("spans.jsonl");
        let (process, port) = support_script(
            "otlp_receiver.py",
            &["--out".to_owned(), spans.display().to_string()],
        );
        OtlpReceiver {
            endpoint: format!("http://127.0.0.1:{port}"),
            spans,
            _process: process,
        }
    }

    /// The spans received so far: `{traceId, spanId, parentSpanId, name, kind, service,
    /// attributes, error}`.
    pub fn spans(&self) -> Vec<Value> {
        std::fs::read_to_string(&self.spans)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }
}
