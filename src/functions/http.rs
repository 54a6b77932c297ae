//! The one error type of the HTTP functions' surface (what a browser gets from `negotiate`,
//! `web` and `orderStatus`), and its mapping to `Outputs.res`.
//!
//! These answers travel inside a 2xx invocation: a 4xx or 5xx here is the caller's answer, not a
//! failed invocation (which the host would turn into an opaque 500). 4xx bodies say what was
//! wrong and quote the input; a 5xx says what is unavailable and keeps the cause chain for the
//! log. Every answer of these functions is `no-store`: they are per-request (tokens, live status).

use serde_json::json;

use crate::invocation::http::HttpResponseData;

#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    /// The request is wrong; `code` names what (`InvalidOrderId`, `MissingScope`).
    #[error("{message}")]
    BadRequest { code: &'static str, message: String },
    #[error("{0}")]
    Forbidden(String),
    #[error("{message}")]
    NotFound { code: &'static str, message: String },
    /// Not set up here (no Web PubSub configured).
    #[error("{0}")]
    NotConfigured(String),
    /// A dependency failed (store, Web PubSub's token API); trying again may help.
    #[error("{public}")]
    Unavailable {
        public: String,
        #[source]
        cause: anyhow::Error,
    },
}

impl HttpError {
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::BadRequest {
            code,
            message: message.into(),
        }
    }

    pub fn unavailable(public: impl Into<String>, cause: impl Into<anyhow::Error>) -> Self {
        Self::Unavailable {
            public: public.into(),
            cause: cause.into(),
        }
    }

    pub fn status(&self) -> u16 {
        match self {
            Self::BadRequest { .. } => 400,
            Self::Forbidden(_) => 403,
            Self::NotFound { .. } => 404,
            Self::NotConfigured(_) | Self::Unavailable { .. } => 503,
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            Self::BadRequest { code, .. } | Self::NotFound { code, .. } => code,
            Self::Forbidden(_) => "Forbidden",
            Self::NotConfigured(_) => "NotConfigured",
            Self::Unavailable { .. } => "ServiceUnavailable",
        }
    }

    /// Logs it once (5xx as warnings with the cause chain, 4xx at info) and makes the answer.
    pub fn into_response(self) -> HttpResponseData {
        let status = self.status();
        match &self {
            Self::Unavailable { cause, .. } => {
                tracing::warn!(status, code = self.code(), error = %self, cause = %format!("{cause:#}"), "request failed");
            }
            Self::NotConfigured(_) => {
                tracing::warn!(status, code = self.code(), error = %self, "request failed");
            }
            _ => tracing::info!(status, code = self.code(), error = %self, "request refused"),
        }
        no_store(HttpResponseData::json(
            status,
            &json!({"error": {"code": self.code(), "message": self.to_string()}}),
        ))
    }
}

/// Marks an answer as not to be cached or sniffed.
pub fn no_store(response: HttpResponseData) -> HttpResponseData {
    response
        .with_header("Cache-Control", "no-store")
        .with_header("X-Content-Type-Options", "nosniff")
}
