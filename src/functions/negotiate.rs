//! negotiate: hands a browser its Web PubSub client URL, scoped to what it may see.
//!
//! - `GET /api/negotiate?orderId=<id>`: a token whose only group is `order-<id>` (the id checked
//!   as [`OrderId`], as OrderProcessor checks it) and no roles: that order's updates, nothing else;
//! - `GET /api/negotiate?board=true`: the group `operators` (every order's updates), for an
//!   operator only ([`Operators`]), else 403.
//!
//! Answer: `200 {"url": "<baseUrl>?access_token=<token>"}`, `Cache-Control: no-store`. The base
//! URL is the `webPubSubConnection` input's `baseUrl` (where the binding says clients connect),
//! or, without it, the configured endpoint's `/client/hubs/orders`. The binding's own token is not
//! used: it cannot carry groups (Microsoft's docs point to a server SDK for that), so the token
//! is made here ([`ClientTokens`]).
//!
//! Invariants: bad input is refused before anything is signed; the token and the URL never reach
//! a log.

use serde::Deserialize;
use serde_json::json;
use serde_json::value::RawValue;

use super::Services;
use super::feed::{HUB, OPERATORS_GROUP, order_group};
use super::http::{HttpError, no_store};
use super::operators::PRINCIPAL_NAME_HEADER;
use super::settings::{OPERATORS, WEBPUBSUB, WEBPUBSUB_SERVICE_URI};
use crate::domain::OrderId;
use crate::invocation::http::{HttpRequestData, HttpResponseData};

/// What a client asked to follow.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Scope {
    Order(OrderId),
    Board,
}

impl Scope {
    fn of(req: &HttpRequestData) -> Result<Self, HttpError> {
        match (req.query("orderId"), req.query("board")) {
            (Some(_), Some(_)) => Err(HttpError::bad_request(
                "AmbiguousScope",
                "pass either ?orderId=<id> (one order) or ?board=true (the operators' board), not both",
            )),
            (Some(raw), None) => OrderId::parse(raw).map(Scope::Order).map_err(|e| {
                HttpError::bad_request("InvalidOrderId", format!("orderId {raw:?} {e}"))
            }),
            (None, Some(board)) if board.eq_ignore_ascii_case("true") => Ok(Scope::Board),
            (None, Some(board)) => Err(HttpError::bad_request(
                "InvalidBoard",
                format!("board={board:?}: only board=true opens the operators' board"),
            )),
            (None, None) => Err(HttpError::bad_request(
                "MissingScope",
                "pass ?orderId=<id> to follow one order, or ?board=true for the operators' board",
            )),
        }
    }

    fn group(&self) -> String {
        match self {
            Scope::Order(id) => order_group(id),
            Scope::Board => OPERATORS_GROUP.to_owned(),
        }
    }
}

/// The `webPubSubConnection` input's value: `{"baseUrl", "url", "accessToken"}` (camelCase, as
/// the extension serializes `WebPubSubConnection`). Only `baseUrl` is read.
#[derive(Deserialize)]
struct ConnectionInput {
    #[serde(rename = "baseUrl", alias = "BaseUrl", default)]
    base_url: Option<String>,
}

fn base_url_of(input: Option<&RawValue>) -> Option<String> {
    let text = input?.get();
    // The host hands an object; a JSON string holding it is read too.
    let parsed: ConnectionInput = serde_json::from_str(text).ok().or_else(|| {
        serde_json::from_str::<String>(text)
            .ok()
            .and_then(|inner| serde_json::from_str(&inner).ok())
    })?;
    let base = parsed.base_url?.trim().to_owned();
    if base.starts_with("wss://") || base.starts_with("ws://") {
        Some(base)
    } else {
        tracing::warn!(base_url = %base, "the webPubSubConnection input's baseUrl is not a ws(s) URL; using the configured endpoint");
        None
    }
}

/// Refuses (403, saying how to become one) a request whose principal is not an operator: what
/// the board's token and its list of recent orders require.
pub(super) fn require_operator(
    services: &Services,
    req: &HttpRequestData,
) -> Result<(), HttpError> {
    let principal = req.header(PRINCIPAL_NAME_HEADER);
    if services.operators.admits(principal) {
        return Ok(());
    }
    Err(HttpError::Forbidden(match principal {
        Some(name) => format!(
            "{name:?} is not an operator: only the principals {} names may open the board",
            OPERATORS.name
        ),
        None => format!(
            "the board is for operators: sign in (App Service Authentication) as a principal {} names",
            OPERATORS.name
        ),
    }))
}

pub async fn handle(
    services: &Services,
    req: &HttpRequestData,
    connection: Option<&RawValue>,
) -> Result<HttpResponseData, HttpError> {
    let scope = Scope::of(req)?;
    if scope == Scope::Board {
        require_operator(services, req)?;
    }
    let tokens = services.client_tokens.as_ref().ok_or_else(|| {
        HttpError::NotConfigured(format!(
            "the live feed is not set up here: set {} (or {})",
            WEBPUBSUB.name, WEBPUBSUB_SERVICE_URI.name
        ))
    })?;
    let group = scope.group();
    let token = tokens.issue(HUB, vec![group.clone()]).await.map_err(|e| {
        HttpError::unavailable("could not get a client token from Web PubSub; try again", e)
    })?;
    let base = base_url_of(connection).unwrap_or_else(|| tokens.connection().client_base_url(HUB));
    tracing::info!(group = %group, "client URL handed out");
    Ok(no_store(HttpResponseData::json(
        200,
        &json!({"url": format!("{base}?access_token={token}")}),
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(text: &str) -> Box<RawValue> {
        RawValue::from_string(text.to_owned()).unwrap()
    }

    #[test]
    fn the_binding_base_url_is_read_as_an_object_or_a_json_string() {
        let object = raw(
            r#"{"baseUrl":"wss://x.webpubsub.azure.com/client/hubs/orders","url":"u","accessToken":"t"}"#,
        );
        assert_eq!(
            base_url_of(Some(&object)).as_deref(),
            Some("wss://x.webpubsub.azure.com/client/hubs/orders")
        );
        let string = raw(&serde_json::to_string(object.get()).unwrap());
        assert_eq!(base_url_of(Some(&string)), base_url_of(Some(&object)));
        assert_eq!(base_url_of(Some(&raw(r#"{"baseUrl":"https://x"}"#))), None);
        assert_eq!(base_url_of(Some(&raw("null"))), None);
        assert_eq!(base_url_of(None), None);
    }
}
