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
use subtle::ConstantTimeEq;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::webhook::{self, CONTENT_TYPE_EVENTGRID, ORIGIN};
use super::{SubscriptionRuntime, Validation};
use crate::emulator::settings::DeliverySettings;
use crate::emulator::subscriptions::Destination;
use crate::eventgrid::{Schema, protocol};

pub const VALIDATION_EVENT_TYPE: &str = "Microsoft.EventGrid.SubscriptionValidationEvent";
const ATTEMPTS: u32 = 3;

/// A manual validation in progress: the code and token the validation URL carries.
#[derive(Debug, Clone)]
pub struct ManualValidation {
    pub code: String,
    pub token: String,
}

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
            Err(why) => reason = why,
        }
    }
    fail(rt, reason);
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
) -> Result<Validation, String> {
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
        .map_err(|e| {
            format!(
                "the validation request to {endpoint_url} failed: {}",
                error_chain(&e)
            )
        })?;
    let status = response.status().as_u16();
    if status != 200 {
        return Err(format!(
            "the endpoint answered the validation request with {status}; Event Grid needs 200 with {{\"validationResponse\": \"<code>\"}} (202 is not accepted)"
        ));
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
        Some(_) => {
            Err("the endpoint answered the validation with a wrong validationResponse".into())
        }
        None => Ok(Validation::AwaitingManualAction { validation_url }),
    }
}

async fn cloud_events_handshake(
    sender: &webhook::Sender,
    endpoint_url: &str,
) -> Result<Validation, String> {
    let response = sender
        .client()
        .request(reqwest::Method::OPTIONS, endpoint_url)
        .header("webhook-request-origin", ORIGIN)
        .send()
        .await
        .map_err(|e| {
            format!(
                "the abuse-protection OPTIONS request to {endpoint_url} failed: {}",
                error_chain(&e)
            )
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
        _ => Err(format!(
            "the endpoint answered the CloudEvents OPTIONS handshake with {status} and WebHook-Allowed-Origin {allowed:?}; it must allow {ORIGIN:?} or \"*\""
        )),
    }
}

/// Completes a manual validation from the `validationUrl` GET.
pub fn complete_manual(rt: &SubscriptionRuntime, id: &str, token: &str) -> Result<(), String> {
    if !matches!(
        *rt.validation.borrow(),
        Validation::AwaitingManualAction { .. }
    ) {
        return Err(format!(
            "subscription {} is not awaiting manual validation",
            rt.subscription.name
        ));
    }
    let expected = rt.manual.lock().unwrap_or_else(|p| p.into_inner()).clone();
    match expected {
        Some(m)
            if constant_time_eq(m.code.as_bytes(), id.as_bytes())
                && constant_time_eq(m.token.as_bytes(), token.as_bytes()) =>
        {
            rt.validation.send_replace(Validation::Succeeded);
            tracing::info!(subscription = %rt.key, "endpoint validated manually");
            Ok(())
        }
        _ => Err("the validation id or token does not match".into()),
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

/// Constant-time comparison of short secrets (validation codes and tokens).
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.ct_eq(b).into()
}
