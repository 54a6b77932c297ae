//! `POST /v1/traces`: an OTLP/HTTP receiver (protobuf), keeping spans for the dashboard's
//! waterfall when traces are kept (`ORDERGRID_EMULATOR_TRACES`; `ordergrid dev` points the host
//! stand-in and the handler here with `ORDERGRID_TRACE_SINK`).
//!
//! Answers as the OTLP/HTTP specification asks: 200 with an empty `ExportTraceServiceResponse`
//! (zero bytes of protobuf) on success; 400 for a body that is not one; 415 for another content
//! type (JSON is not read: the protobuf encoding is the one every exporter offers, and a browser
//! page cannot send it without a CORS preflight, which this server never grants). Errors are
//! plain text, not the `google.rpc.Status` a collector sends: an exporter only logs them.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::ApiState;
use crate::trace::SpanSink;
use crate::trace::otlp::{self, CONTENT_TYPE_PROTOBUF};

pub async fn traces(State(api): State<Arc<ApiState>>, headers: HeaderMap, body: Bytes) -> Response {
    let Some(store) = &api.traces else {
        return (
            StatusCode::NOT_FOUND,
            "traces are not kept: set ORDERGRID_EMULATOR_TRACES=true (ordergrid dev does)\n",
        )
            .into_response();
    };
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !content_type
        .split(';')
        .next()
        .is_some_and(|t| t.trim().eq_ignore_ascii_case(CONTENT_TYPE_PROTOBUF))
    {
        return (
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!("send OTLP as {CONTENT_TYPE_PROTOBUF} (got {content_type:?})\n"),
        )
            .into_response();
    }
    match otlp::decode(&body) {
        Ok(spans) => {
            store.accept(spans);
            (
                [(header::CONTENT_TYPE, CONTENT_TYPE_PROTOBUF)],
                Bytes::new(),
            )
                .into_response()
        }
        Err(e) => (
            StatusCode::BAD_REQUEST,
            format!("not an OTLP ExportTraceServiceRequest: {e}\n"),
        )
            .into_response(),
    }
}
