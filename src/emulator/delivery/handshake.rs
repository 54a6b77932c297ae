//! Validating webhook endpoints before anything is delivered to them, as Event Grid does when a
//! subscription is created:
//! - Event Grid schema: a `Microsoft.EventGrid.SubscriptionValidationEvent` POSTed with
//!   `aeg-event-type: SubscriptionValidation`; the endpoint answers 200 with
//!   `{"validationResponse": "<validationCode>"}`, or answers 200 without it and later GETs the
//!   event's `validationUrl` (manual validation, within 5 minutes);
//! - CloudEvents: the abuse-protection `OPTIONS` request with
//!   `WebHook-Request-Origin: eventgrid.azure.net`, answered with a matching (or `*`)
//!   `WebHook-Allowed-Origin`.
//!
//! Unreachable endpoints are tried a few times, 5 s apart (scaled), then the subscription is
//! `Failed` with the reason, and receives nothing until it validates (restart, or the admin API's
//! re-validation). Azure Function destinations need no handshake.

use std::time::Duration;

use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::manual::{ManualValidation, constant_time_eq};
use super::webhook::{self, CONTENT_TYPE_EVENTGRID, ORIGIN};
use super::{SubscriptionRuntime, Validation};
use crate::emulator::settings::DeliverySettings;
use crate::emulator::subscriptions::Destination;
use crate::eventgrid::{Schema, protocol};

pub const VALIDATION_EVENT_TYPE: &str = "Microsoft.EventGrid.SubscriptionValidationEvent";
const ATTEMPTS: u32 = 3;

/// Runs the handshake for a webhook subscription and records the outcome in its runtime.
pub async fn validate(
    rt: &SubscriptionRuntime,
    sender: &webhook::Sender,
    settings: &DeliverySettings,
    emulator_base_url: &str,
) {
    let Destination::WebHook { endpoint_url } = &rt.subscription.destination else {
        rt.validation.send_replace(Validation::NotRequired);
        return;
    };
    rt.validation.send_replace(Validation::Validating);
    // Azure's documentation does not say which handshake failures it retries, or how often:
    // every failure is tried ATTEMPTS times, 5 s (scaled) apart.
    let mut reason = String::new();
    for attempt in 0..ATTEMPTS {
        if attempt > 0 {
            tokio::time::sleep(settings.scaled(Duration::from_secs(5))).await;
        }
        let outcome = match rt.subscription.delivery_schema {
            Schema::EventGrid => {
                event_grid_handshake(rt, sender, endpoint_url, emulator_base_url).await
            }
            Schema::CloudEvents => cloud_events_handshake(sender, endpoint_url).await,
        };
        match outcome {
            Ok(state) => {
                if let Validation::AwaitingManualAction { validation_url } = &state {
                    tracing::warn!(
                        subscription = %rt.key,
                        validation_url = %validation_url,
                        "the endpoint answered the validation without the code; GET the validation URL within 5 minutes (scaled) to validate it"
                    );
                    let deadline = settings.scaled(Duration::from_secs(5 * 60));
                    rt.validation.send_replace(state);
                    let mut watch = rt.validation.subscribe();
                    let expired = tokio::time::timeout(deadline, async {
                        while watch.changed().await.is_ok() {
                            if !matches!(*watch.borrow(), Validation::AwaitingManualAction { .. }) {
                                return;
                            }
                        }
                    })
                    .await
                    .is_err();
                    if expired {
                        fail(
                            rt,
                            "manual validation was not completed in time (5 minutes, scaled)"
                                .into(),
                        );
                    }
                } else {
                    tracing::info!(subscription = %rt.key, "endpoint validated");
                    rt.validation.send_replace(state);
                }
                return;
            }
            Err(why) => {
                tracing::info!(subscription = %rt.key, error = %why, attempt = attempt + 1, "validation handshake failed");
                reason = why.to_string();
            }
        }
    }
    fail(rt, reason);
}

/// Why a handshake failed.
#[derive(Debug, thiserror::Error)]
pub enum HandshakeError {
    /// No answer: refused, reset, timed out, or TLS failed.
    #[error("the {request} to {url} failed: {error}")]
    Unreachable {
        request: &'static str,
        url: String,
        error: String,
    },
    /// The endpoint answered the validation event with something other than 200.
    #[error(
        "the endpoint answered the validation request with {0}; Event Grid needs 200 with {{\"validationResponse\": \"<code>\"}} (202 is not accepted)"
    )]
    Status(u16),
    #[error("the endpoint answered the validation with a wrong validationResponse")]
    WrongCode,
    /// The CloudEvents abuse-protection answer did not allow Event Grid.
    #[error(
        "the endpoint answered the CloudEvents OPTIONS handshake with {status} and WebHook-Allowed-Origin {allowed:?}; it must allow {ORIGIN:?} or \"*\""
    )]
    OriginNotAllowed {
        status: u16,
        allowed: Option<String>,
    },
}

fn fail(rt: &SubscriptionRuntime, reason: String) {
    tracing::error!(subscription = %rt.key, reason = %reason, "endpoint validation failed; nothing will be delivered to this subscription");
    rt.validation.send_replace(Validation::Failed { reason });
}

async fn event_grid_handshake(
    rt: &SubscriptionRuntime,
    sender: &webhook::Sender,
    endpoint_url: &str,
    emulator_base_url: &str,
) -> Result<Validation, HandshakeError> {
    let code = uuid::Uuid::new_v4().to_string();
    let token = uuid::Uuid::new_v4().simple().to_string();
    let now = OffsetDateTime::now_utc()
        .format(&Rfc3339)
        .unwrap_or_default();
    let validation_url = format!(
        "{}/eventsubscriptions/{}/validate?id={code}&t={now}&apiVersion=2018-05-01-preview&token={token}",
        emulator_base_url.trim_end_matches('/'),
        rt.subscription.name
    );
    *rt.manual.lock().unwrap_or_else(|p| p.into_inner()) = Some(ManualValidation {
        code: code.clone(),
        token,
    });
    let event = json!([{
        "id": uuid::Uuid::new_v4().to_string(),
        "topic": protocol::topic_resource_id(&rt.topic),
        "subject": "",
        "data": {"validationCode": code, "validationUrl": validation_url},
        "eventType": VALIDATION_EVENT_TYPE,
        "eventTime": now,
        "metadataVersion": "1",
        "dataVersion": "1"
    }]);
    let response = sender
        .client()
        .post(endpoint_url)
        .header("content-type", CONTENT_TYPE_EVENTGRID)
        .header(protocol::EVENT_TYPE, protocol::SUBSCRIPTION_VALIDATION)
        .header(protocol::SUBSCRIPTION_NAME, rt.subscription.name.upper())
        .header(protocol::DELIVERY_COUNT, "0")
        .header(protocol::DATA_VERSION, "1")
        .header(protocol::METADATA_VERSION, "1")
        .body(event.to_string())
        .send()
        .await
        .map_err(|e| HandshakeError::Unreachable {
            request: "validation request",
            url: endpoint_url.to_owned(),
            error: error_chain(&e),
        })?;
    let status = response.status().as_u16();
    if status != 200 {
        return Err(HandshakeError::Status(status));
    }
    let body: Value = response
        .bytes()
        .await
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or(Value::Null);
    let answered = body
        .as_object()
        .and_then(|o| {
            o.iter()
                .find(|(k, _)| k.eq_ignore_ascii_case("validationResponse"))
        })
        .and_then(|(_, v)| v.as_str())
        .map(str::to_owned);
    match answered {
        Some(answer) if constant_time_eq(answer.as_bytes(), code.as_bytes()) => {
            Ok(Validation::Succeeded)
        }
        Some(_) => Err(HandshakeError::WrongCode),
        None => Ok(Validation::AwaitingManualAction { validation_url }),
    }
}

async fn cloud_events_handshake(
    sender: &webhook::Sender,
    endpoint_url: &str,
) -> Result<Validation, HandshakeError> {
    let response = sender
        .client()
        .request(reqwest::Method::OPTIONS, endpoint_url)
        .header("webhook-request-origin", ORIGIN)
        .send()
        .await
        .map_err(|e| HandshakeError::Unreachable {
            request: "abuse-protection OPTIONS request",
            url: endpoint_url.to_owned(),
            error: error_chain(&e),
        })?;
    let status = response.status().as_u16();
    let allowed = response
        .headers()
        .get("webhook-allowed-origin")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .map(str::to_owned);
    match allowed {
        Some(origin)
            if (200..300).contains(&status)
                && (origin == "*" || origin.eq_ignore_ascii_case(ORIGIN)) =>
        {
            Ok(Validation::Succeeded)
        }
        _ => Err(HandshakeError::OriginNotAllowed { status, allowed }),
    }
}

fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
