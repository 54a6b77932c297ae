//! Traces across the pipeline: OpenTelemetry spans for what each part does with an order
//! (publish, each delivery attempt, the host's invocation, the handler's function, the record it
//! writes, the email it sends), joined into one trace per order by W3C trace context
//! ([`context`]), and exported over OTLP/HTTP (protobuf) when an endpoint is set.
//!
//! Where spans go, each a setting:
//! - [`OTLP_ENDPOINT`] (the standard `OTEL_EXPORTER_OTLP_ENDPOINT`, or
//!   `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`): any OpenTelemetry collector, Jaeger, the .NET Aspire
//!   dashboard. The other standard variables apply as the OpenTelemetry SDK reads them
//!   (`OTEL_EXPORTER_OTLP_HEADERS`, `OTEL_BSP_SCHEDULE_DELAY`, `OTEL_SERVICE_NAME`,
//!   `OTEL_TRACES_SAMPLER`, …);
//! - [`TRACE_SINK`]: a second endpoint, which `ordergrid dev` points at its dashboard's receiver
//!   so the dashboard can draw an order's trace;
//! - a [`SpanSink`] in the same process (the emulator's own spans, for its own dashboard).
//!
//! Invariants:
//! - with neither set (the default, and so on Azure unless configured) no tracer exists: a
//!   [`Span`] is a value holding its parent's context, nothing is recorded, no thread or
//!   connection is made, and what a part forwards is the context it received, so a trace
//!   continued elsewhere never points at a span nobody recorded;
//! - a part's spans are exported by a batch processor in its own thread, so a slow or absent
//!   collector delays no request; [`Telemetry::shutdown`] flushes what is left on a clean exit.

pub mod context;
pub mod otlp;

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::SystemTime;

use anyhow::Context as _;
use opentelemetry::trace::{
    Span as _, SpanKind, Status, TraceContextExt, Tracer as _, TracerProvider as _,
};
use opentelemetry::{Context, KeyValue};
use opentelemetry_otlp::{Protocol, WithExportConfig};
use opentelemetry_proto::transform::common::tonic::ResourceAttributesWithSchema;
use opentelemetry_proto::transform::trace::tonic::group_spans_by_resource_and_scope;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{SdkTracer, SdkTracerProvider, SpanData, SpanExporter};

pub use context::{Carried, TRACEPARENT, TraceParent, invocation_parent};

use crate::settings::{Reader, Setting};

pub const OTLP_ENDPOINT: Setting = Setting::new(
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "",
    "OpenTelemetry collector to export spans to over OTLP/HTTP (protobuf), `/v1/traces` appended (`OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` is taken whole); unset: no spans are recorded. The SDK's other `OTEL_*` variables apply",
);
pub const OTLP_TRACES_ENDPOINT: Setting = Setting::new(
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    "",
    "the full OTLP/HTTP traces URL, instead of `OTEL_EXPORTER_OTLP_ENDPOINT` + `/v1/traces`",
);
pub const TRACE_SINK: Setting = Setting::new(
    "ORDERGRID_TRACE_SINK",
    "",
    "a second OTLP/HTTP endpoint for spans (`/v1/traces` appended); `ordergrid dev` sets it to its dashboard, which draws each order's trace",
);
pub const SETTINGS: &[Setting] = &[OTLP_ENDPOINT, OTLP_TRACES_ENDPOINT, TRACE_SINK];

/// One part's span pipeline (its service name, its exporters); cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Telemetry {
    /// No tracer: spans only carry context.
    pub fn off() -> Self {
        Self::default()
    }

    /// The pipeline `export` asks for, for the part named `service` (unless `OTEL_SERVICE_NAME`
    /// names it), also handing every span to `local` when given: off when there is neither an
    /// endpoint nor `local`.
    pub fn start(
        export: &TraceExport,
        service: &'static str,
        local: Option<Arc<dyn SpanSink>>,
    ) -> anyhow::Result<Self> {
        if export.urls.is_empty() && local.is_none() {
            return Ok(Self::off());
        }
        let mut resource = Resource::builder();
        if !export.service_named {
            resource = resource.with_service_name(service);
        }
        let mut builder = SdkTracerProvider::builder().with_resource(resource.build());
        for url in &export.urls {
            let exporter = opentelemetry_otlp::SpanExporter::builder()
                .with_http()
                .with_protocol(Protocol::HttpBinary)
                .with_endpoint(url.clone())
                .build()
                .with_context(|| format!("cannot export spans to {url}"))?;
            builder = builder.with_batch_exporter(exporter);
        }
        if let Some(sink) = local {
            builder = builder.with_batch_exporter(LocalExporter {
                sink,
                resource: ResourceAttributesWithSchema::from(&Resource::builder_empty().build()),
            });
        }
        Ok(Self {
            provider: Some(builder.build()),
        })
    }

    pub fn tracer(&self) -> Tracer {
        Tracer {
            inner: self
                .provider
                .as_ref()
                .map(|p| p.tracer(env!("CARGO_PKG_NAME"))),
        }
    }

    /// Exports what is still buffered; for a clean exit.
    pub fn shutdown(&self) {
        if let Some(provider) = &self.provider
            && let Err(e) = provider.shutdown()
        {
            tracing::warn!(error = %e, "spans could not all be exported");
        }
    }
}

/// Where a part's spans are exported ([`OTLP_ENDPOINT`], [`OTLP_TRACES_ENDPOINT`],
/// [`TRACE_SINK`]), as read from its settings.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TraceExport {
    /// OTLP/HTTP traces URLs.
    pub urls: Vec<String>,
    /// `OTEL_SERVICE_NAME` is set (the SDK reads it then).
    pub service_named: bool,
}

impl TraceExport {
    pub fn read(r: &Reader) -> Self {
        let nonempty = |s: &Setting| r.raw(s).map(str::trim).filter(|v| !v.is_empty());
        let mut urls = Vec::new();
        if let Some(url) = nonempty(&OTLP_TRACES_ENDPOINT) {
            urls.push(url.to_owned());
        } else if let Some(base) = nonempty(&OTLP_ENDPOINT) {
            urls.push(traces_url(base));
        }
        if let Some(base) = nonempty(&TRACE_SINK) {
            urls.push(traces_url(base));
        }
        Self {
            urls,
            service_named: r
                .env()
                .get("OTEL_SERVICE_NAME")
                .is_some_and(|v| !v.trim().is_empty()),
        }
    }

    pub fn from_env(env: &HashMap<String, String>) -> Self {
        Self::read(&Reader::new(env))
    }
}

/// Where a process keeps spans for itself (the emulator's dashboard).
pub trait SpanSink: Send + Sync + std::fmt::Debug + 'static {
    fn accept(&self, spans: Vec<otlp::SpanRecord>);
}

/// Hands batches to a [`SpanSink`], converted as an OTLP exporter converts them.
#[derive(Debug)]
struct LocalExporter {
    sink: Arc<dyn SpanSink>,
    resource: ResourceAttributesWithSchema,
}

impl SpanExporter for LocalExporter {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        self.sink
            .accept(otlp::records(group_spans_by_resource_and_scope(
                batch,
                &self.resource,
            )));
        Ok(())
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.resource = ResourceAttributesWithSchema::from(resource);
    }
}

fn traces_url(base: &str) -> String {
    format!("{}/v1/traces", base.trim_end_matches('/'))
}

/// Starts spans; off when its [`Telemetry`] is.
#[derive(Debug, Clone, Default)]
pub struct Tracer {
    inner: Option<SdkTracer>,
}

/// What a span is, in OpenTelemetry's terms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Serves a request: the host's and the handler's invocations.
    Server,
    /// Calls out: a delivery attempt, an SMTP send, a store write.
    Client,
    /// Hands a message to a broker: a publish.
    Producer,
}

impl Tracer {
    pub fn off() -> Self {
        Self::default()
    }

    pub fn is_on(&self) -> bool {
        self.inner.is_some()
    }

    /// A span named `name` under `parent` (a new trace when `None`), started now.
    pub fn start(
        &self,
        name: impl Into<Cow<'static, str>>,
        kind: Kind,
        parent: Option<TraceParent>,
    ) -> Span {
        let Some(tracer) = &self.inner else {
            return Span {
                inner: None,
                parent,
            };
        };
        let cx = match parent {
            Some(p) => Context::new().with_remote_span_context(p.span_context()),
            None => Context::new(),
        };
        let span = tracer
            .span_builder(name)
            .with_kind(match kind {
                Kind::Server => SpanKind::Server,
                Kind::Client => SpanKind::Client,
                Kind::Producer => SpanKind::Producer,
            })
            .with_start_time(SystemTime::now())
            .start_with_context(tracer, &cx);
        Span {
            inner: Some(span),
            parent,
        }
    }
}

/// A span being recorded, or (tracer off) its parent's context alone. Ends when dropped.
#[derive(Debug)]
pub struct Span {
    inner: Option<opentelemetry_sdk::trace::Span>,
    parent: Option<TraceParent>,
}

impl Span {
    /// The context to forward: this span's when it is recorded, else the one it received.
    pub fn traceparent(&self) -> Option<TraceParent> {
        self.inner
            .as_ref()
            .and_then(|s| TraceParent::of(s.span_context()))
            .filter(|tp| tp.sampled)
            .or(self.parent)
    }

    pub fn set(&mut self, key: &'static str, value: impl Into<opentelemetry::Value>) {
        if let Some(span) = &mut self.inner {
            span.set_attribute(KeyValue::new(key, value));
        }
    }

    /// Marks the span failed, with why.
    pub fn fail(&mut self, message: impl Into<Cow<'static, str>>) {
        if let Some(span) = &mut self.inner {
            span.set_status(Status::error(message));
        }
    }

    pub fn end(self) {}
}
