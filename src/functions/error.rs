//! The one error type of the handler's HTTP surface, and its mapping to responses.
//!
//! Every non-2xx answer is also logged (WARN or ERROR, so it reaches stderr): the host discards
//! the body and `Logs` of a failed invocation, so the log line is what an operator sees.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::invocation::RequestError;

#[derive(Debug, thiserror::Error)]
pub enum InvocationError {
    #[error("the request body is not JSON: {0}")]
    NotJson(String),
    #[error("the request body is not an invocation envelope: {0}")]
    BadEnvelope(String),
    #[error("the request body is larger than {limit} bytes")]
    TooLarge { limit: usize },
    /// The host would never: a client other than the host, or one that stalled.
    #[error("{0}")]
    BodyTimedOut(String),
    #[error("no function named {0:?} here (names are case-sensitive); this handler serves {list}", list = super::FUNCTIONS.map(|f| f.name).join(", "))]
    UnknownFunction(String),
    #[error(
        "{function}: the invocation has no {binding:?} binding in Data (found {present:?}); \
         function.json and the handler disagree on the trigger's binding name"
    )]
    MissingBinding {
        function: &'static str,
        binding: String,
        present: Vec<String>,
    },
    #[error("the trigger value is not an Event Grid event: {0}")]
    BadEvent(String),
    /// Worth retrying: the store is unreachable, the SMTP server is down, another delivery of the
    /// same order is mid-send.
    #[error("{0:#}")]
    Transient(anyhow::Error),
    #[error("{0:#}")]
    Internal(anyhow::Error),
}

impl InvocationError {
    /// A request that is not `function`'s invocation.
    pub fn of_request(function: &'static str, error: RequestError) -> Self {
        match error {
            RequestError::NotJson(e) => Self::NotJson(e),
            RequestError::NotAnEnvelope(e) => Self::BadEnvelope(e),
            RequestError::MissingBinding { binding, present } => Self::MissingBinding {
                function,
                binding,
                present,
            },
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            Self::NotJson(_)
            | Self::BadEnvelope(_)
            | Self::MissingBinding { .. }
            | Self::BadEvent(_) => StatusCode::BAD_REQUEST,
            Self::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::BodyTimedOut(_) => StatusCode::REQUEST_TIMEOUT,
            Self::UnknownFunction(_) => StatusCode::NOT_FOUND,
            Self::Transient(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            Self::NotJson(_) => "InvalidJson",
            Self::BadEnvelope(_) => "InvalidEnvelope",
            Self::TooLarge { .. } => "PayloadTooLarge",
            Self::BodyTimedOut(_) => "RequestTimeout",
            Self::UnknownFunction(_) => "FunctionNotFound",
            Self::MissingBinding { .. } => "BindingNotFound",
            Self::BadEvent(_) => "InvalidEvent",
            Self::Transient(_) => "TransientFailure",
            Self::Internal(_) => "InternalError",
        }
    }

    /// Logs the failure once, at a level matching its cause.
    pub fn log(&self) {
        let status = self.status().as_u16();
        match self {
            Self::Transient(_) => {
                tracing::warn!(status, code = self.code(), error = %self, "invocation failed; Event Grid will retry");
            }
            Self::Internal(_) => {
                tracing::error!(status, code = self.code(), error = %self, "invocation failed; Event Grid will retry");
            }
            _ => {
                tracing::error!(status, code = self.code(), error = %self, "invocation refused; Event Grid will retry it and then dead-letter it");
            }
        }
    }
}

impl IntoResponse for InvocationError {
    fn into_response(self) -> Response {
        let message = match &self {
            // The cause chain of an unexpected error stays in the log.
            Self::Internal(_) => "internal error; see the handler's log".to_owned(),
            other => other.to_string(),
        };
        let body = json!({"error": {"code": self.code(), "message": message}});
        (self.status(), Json(body)).into_response()
    }
}
