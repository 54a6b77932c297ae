//! `GET /identity/token?resource=…&api-version=2019-08-01`: a managed-identity token endpoint
//! speaking App Service's protocol, so SDK clients set up with `IDENTITY_ENDPOINT` and
//! `IDENTITY_HEADER` get tokens the emulator accepts (see `entra`). The caller must present the
//! secret in `X-IDENTITY-HEADER`, which a web page cannot (a custom header needs a CORS preflight
//! this endpoint never grants).

use std::collections::HashMap;
use std::sync::Arc;

use axum::Json;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use time::OffsetDateTime;

use super::ApiState;
use crate::emulator::entra::IDENTITY_API_VERSION;

fn refuse(status: StatusCode, message: String) -> Response {
    (
        status,
        Json(json!({"error": "invalid_request", "error_description": message})),
    )
        .into_response()
}

pub async fn token(
    State(api): State<Arc<ApiState>>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let presented = headers
        .get("x-identity-header")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !api.identity.admits(presented) {
        return refuse(
            StatusCode::UNAUTHORIZED,
            "X-IDENTITY-HEADER is missing or wrong; send the IDENTITY_HEADER the stack printed"
                .into(),
        );
    }
    if query.get("api-version").map(String::as_str) != Some(IDENTITY_API_VERSION) {
        return refuse(
            StatusCode::BAD_REQUEST,
            format!("api-version must be {IDENTITY_API_VERSION}"),
        );
    }
    let Some(resource) = query.get("resource").filter(|r| !r.is_empty()) else {
        return refuse(
            StatusCode::BAD_REQUEST,
            "the resource query parameter is required".into(),
        );
    };
    let minted = api.identity.mint(resource, OffsetDateTime::now_utc());
    Json(json!({
        "access_token": minted.access_token,
        "expires_on": minted.expires_on.to_string(),
        "resource": resource,
        "token_type": "Bearer",
    }))
    .into_response()
}
