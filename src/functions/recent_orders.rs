//! recentOrders: `GET /api/orders/recent?limit=N` (default 100, at most 200), the most recently
//! changed orders' current statuses, newest first, as the [`super::feed::StatusUpdate`]s the live
//! feed sends: what the operators' board shows when it opens and after a reconnect, before the
//! feed updates the rows in place. Every order's status is what only operators may see, so it
//! asks what the board's negotiate asks (403 otherwise).

use super::http::{HttpError, no_store};
use super::negotiate::require_operator;
use super::{Services, order_status};
use crate::invocation::http::{HttpRequestData, HttpResponseData};

pub const DEFAULT_LIMIT: usize = 100;
pub const MAX_LIMIT: usize = 200;

pub async fn handle(
    services: &Services,
    req: &HttpRequestData,
) -> Result<HttpResponseData, HttpError> {
    require_operator(services, req)?;
    let limit = match req.query("limit") {
        None => DEFAULT_LIMIT,
        Some(raw) => raw
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=MAX_LIMIT).contains(n))
            .ok_or_else(|| {
                HttpError::bad_request(
                    "InvalidLimit",
                    format!("limit {raw:?} is not a whole number from 1 to {MAX_LIMIT}"),
                )
            })?,
    };
    let orders = order_status::recent(services.store.as_ref(), limit)
        .await
        .map_err(|e| HttpError::unavailable("the order store is unavailable; try again", e))?;
    Ok(no_store(HttpResponseData::json(
        200,
        &serde_json::json!({ "orders": orders }),
    )))
}
