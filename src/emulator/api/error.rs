//! The publish API's one error type, in Azure's shape:
//! `{"error": {"code", "message", "details": [{"code", "message"}]}}`, where the message ends like
//! Azure's with `Report '<request id>:<M/d/yyyy h:mm:ss tt> (UTC)' to our forums for assistance
//! or raise a support ticket.`, and the response carries `x-ms-request-id`.

use axum::Json;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use time::OffsetDateTime;

#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub detail_code: &'static str,
    pub message: String,
}

impl ApiError {
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            code: "BadRequest",
            detail_code: "InputJsonInvalid",
            message: message.into(),
        }
    }

    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::UNAUTHORIZED,
            code: "Unauthorized",
            detail_code: "Unauthorized",
            message: message.into(),
        }
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::NOT_FOUND,
            code: "NotFound",
            detail_code: "ResourceNotFound",
            message: message.into(),
        }
    }

    pub fn too_large(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::PAYLOAD_TOO_LARGE,
            code: "RequestEntityTooLarge",
            detail_code: "RequestEntityTooLarge",
            message: message.into(),
        }
    }

    /// A body that did not arrive in time (`ORDERGRID_HTTP_BODY_TIMEOUT`). Azure's front end
    /// answers such a client too, but its answer is not documented: ordergrid's code name.
    pub fn request_timeout(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::REQUEST_TIMEOUT,
            code: "RequestTimeout",
            detail_code: "RequestTimeout",
            message: message.into(),
        }
    }

    /// `/publish` takes JSON only (not Azure's API: ordergrid's code names).
    pub fn unsupported_media_type(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::UNSUPPORTED_MEDIA_TYPE,
            code: "UnsupportedMediaType",
            detail_code: "UnsupportedMediaType",
            message: message.into(),
        }
    }

    pub fn unavailable(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::SERVICE_UNAVAILABLE,
            code: "ServiceUnavailable",
            detail_code: "ServiceUnavailable",
            message: message.into(),
        }
    }
}

/// `M/d/yyyy h:mm:ss tt`, as Azure's report suffix writes the time.
fn us_time(t: OffsetDateTime) -> String {
    let (hour, meridiem) = match t.hour() {
        0 => (12, "AM"),
        h @ 1..=11 => (h, "AM"),
        12 => (12, "PM"),
        h => (h - 12, "PM"),
    };
    format!(
        "{}/{}/{} {hour}:{:02}:{:02} {meridiem}",
        u8::from(t.month()),
        t.day(),
        t.year(),
        t.minute(),
        t.second()
    )
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let request_id = uuid::Uuid::new_v4().to_string();
        let message = format!(
            "{} Report '{request_id}:{} (UTC)' to our forums for assistance or raise a support ticket.",
            self.message.trim_end(),
            us_time(OffsetDateTime::now_utc())
        );
        tracing::info!(status = self.status.as_u16(), code = self.code, message = %self.message, "publish refused");
        let body = json!({"error": {
            "code": self.code,
            "message": message,
            "details": [{"code": self.detail_code, "message": message}]
        }});
        let mut response = (self.status, Json(body)).into_response();
        if let Ok(value) = HeaderValue::from_str(&request_id) {
            response.headers_mut().insert("x-ms-request-id", value);
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn times_are_written_the_way_azure_reports_them() {
        assert_eq!(
            us_time(datetime!(2021-03-10 21:02:56 UTC)),
            "3/10/2021 9:02:56 PM"
        );
        assert_eq!(
            us_time(datetime!(2021-01-29 00:05:00 UTC)),
            "1/29/2021 12:05:00 AM"
        );
        assert_eq!(
            us_time(datetime!(2021-01-29 12:00:09 UTC)),
            "1/29/2021 12:00:09 PM"
        );
    }
}
