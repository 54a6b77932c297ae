//! EmailNotifier: on `OrderAccepted`, sends the order's one confirmation email and emits
//! `OrderConfirmationSent` (or, when the mail server refuses it for good,
//! `OrderConfirmationFailed`) through its `outputEvents` binding.
//!
//! The email confirms exactly the order OrderProcessor recorded: `OrderAccepted` carries that
//! order (and is emitted for nothing else), and it is read as recorded, not validated again.
//!
//! The email ledger entry `email-ledger/<orderId>` makes sending exactly-once across duplicate
//! and racing deliveries (and, with Blob Storage, across processes):
//!
//! ```text
//! (none) --create--> sending{lease} --SMTP ok--> sent
//!                        |  --SMTP 4xx/down--> (deleted: the retry claims afresh)
//!                        |  --SMTP 5xx refusal--> failed (acknowledged, never retried)
//!                        '--lease expired (sender crashed)--> taken over by the next delivery
//! ```
//! A delivery that finds a live `sending` claim answers non-2xx (retry later), so it neither
//! sends a second email nor acknowledges an email that might still fail. The one live claim it
//! takes back at once is this process's own, left by a send that failed while the store could
//! not delete the claim either (a full disk fails the outbox and the folder store together):
//! this process knows nothing was sent under it ([`UnreleasedClaims`]).
//!
//! A store that cannot be written after the server accepted the message (down for longer than
//! `settle` retries) does not lead to a second email: the process remembers what it sent
//! ([`SentUnrecorded`]), and the next delivery for the order records that instead of sending.
//!
//! The one window left is inherent to SMTP (RFC 1047): a crash of the sender after the server
//! accepted the message and before `sent` is recorded leads to one more send once the claim
//! expires. The message carries a Message-ID derived from the order so mail systems can drop that
//! duplicate.
//!
//! The confirmation event is built from the ledger entry (its id from the order id, its time and
//! trace context the entry's), so a redelivery that finds the email `sent` or `failed` emits the
//! same event again, in case the earlier answer was lost.

use std::collections::HashMap;
use std::sync::Mutex;

use anyhow::{Context, anyhow};
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::emit::{derived_id, emit, recorded_event, subject};
use super::{
    EMAIL_NOTIFIER, InvocationError, ORDER_CONFIRMATION_FAILED, ORDER_CONFIRMATION_SENT, Services,
};
use crate::domain::{NewOrder, OrderId};
use crate::email::SendError;
use crate::eventgrid::InboundEvent;
use crate::invocation::InvocationResponse;
use crate::store::{Collection, Created, Deleted, ETag, RecordKey, Replaced};
use crate::trace::{Kind, Span, TraceParent};

/// A ledger entry.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(
    tag = "state",
    rename_all = "camelCase",
    rename_all_fields = "camelCase"
)]
pub enum LedgerEntry {
    Sending {
        event_id: String,
        #[serde(with = "time::serde::rfc3339")]
        claimed_at: OffsetDateTime,
        #[serde(with = "time::serde::rfc3339")]
        lease_until: OffsetDateTime,
    },
    Sent {
        event_id: String,
        message_id: String,
        #[serde(with = "time::serde::rfc3339")]
        sent_at: OffsetDateTime,
        /// The context of the invocation that sent it, when it had one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        traceparent: Option<String>,
    },
    Failed {
        event_id: String,
        reason: String,
        #[serde(with = "time::serde::rfc3339")]
        failed_at: OffsetDateTime,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        traceparent: Option<String>,
    },
}

/// How many times a lost race for the ledger entry is re-evaluated before giving up (retried).
const MAX_CLAIM_ROUNDS: usize = 4;

/// Orders a [`ByOrder`] remembers, at most; past it an outage costs what the memory would have
/// saved (a resend, or a wait for a lease), as after a restart.
const MAX_REMEMBERED: usize = 100_000;

/// What this process knows of some orders' emails that the store could not be told, by order id,
/// until a later delivery in this process uses it. Lost with the process; bounded, so a long
/// outage cannot grow it without limit.
pub struct ByOrder<V>(Mutex<HashMap<OrderId, V>>);

impl<V> Default for ByOrder<V> {
    fn default() -> Self {
        Self(Mutex::default())
    }
}

impl<V: Clone> ByOrder<V> {
    fn entries(&self) -> std::sync::MutexGuard<'_, HashMap<OrderId, V>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn remember(&self, order_id: &OrderId, value: &V) {
        let mut entries = self.entries();
        if entries.len() < MAX_REMEMBERED {
            entries.insert(order_id.clone(), value.clone());
        }
    }

    fn get(&self, order_id: &OrderId) -> Option<V> {
        self.entries().get(order_id).cloned()
    }

    fn forget(&self, order_id: &OrderId) {
        self.entries().remove(order_id);
    }
}

/// The `sent` entries of emails this process sent while the store could not record them; the
/// next delivery records them instead of sending again (a crash loses them and resends, as
/// above).
pub type SentUnrecorded = ByOrder<LedgerEntry>;

/// This process's own `sending` claims, by the version it wrote, that it could not release after
/// a send that did not go out (the store failed with the send: a full disk fails the outbox and the
/// folder store at once). A retry in this process takes such a claim back at once, as it would
/// have claimed afresh had the release worked; any other process waits for the lease, as it cannot
/// know that nothing was sent.
pub type UnreleasedClaims = ByOrder<ETag>;

pub async fn handle(
    services: &Services,
    event: &InboundEvent,
    span: &mut Span,
) -> Result<InvocationResponse, InvocationError> {
    // OrderProcessor wrote this; if it does not read back, the two disagree on the contract (a
    // deployment problem): fail, so the event is retried and finally dead-lettered, not lost.
    let order = NewOrder::parse_recorded(event.data_text()).map_err(|rejection| {
        InvocationError::BadEvent(format!(
            "the OrderAccepted event's data is not an order as OrderProcessor records it: {}",
            rejection.summary()
        ))
    })?;
    let order_id = order.order_id();
    tracing::Span::current().record("order_id", order_id.as_str());
    span.set("order.id", order_id.to_string());
    let trace = span.traceparent();
    let key = RecordKey::new(Collection::EmailLedger, order_id.as_str())
        .map_err(|e| InvocationError::Internal(e.into()))?;

    for _ in 0..MAX_CLAIM_ROUNDS {
        // Sent by this process earlier, while the store was down: record it, do not send again.
        let remembered = services.sent_unrecorded.get(order_id);
        let claim = match &remembered {
            Some(sent) => Bytes::from(
                serde_json::to_vec(sent).map_err(|e| InvocationError::Internal(e.into()))?,
            ),
            None => sending(services, event),
        };
        let created = services
            .store
            .create(&key, claim.clone())
            .await
            .with_context(|| format!("failed to claim the confirmation email of order {order_id}"))
            .map_err(InvocationError::Transient)?;
        let (etag, existing) = match (created, &remembered) {
            (Created::Created(_), Some(sent)) => return recorded_late(services, &order, sent),
            (Created::Created(etag), None) => {
                return send_and_settle(services, event, &order, &key, etag, trace).await;
            }
            (Created::Exists(record), _) => (record.etag, record.body),
        };
        let entry: LedgerEntry = serde_json::from_slice(&existing)
            .with_context(|| format!("the email ledger entry of order {order_id} is not readable"))
            .map_err(InvocationError::Internal)?;
        if let (LedgerEntry::Sending { .. }, Some(sent)) = (&entry, &remembered) {
            let replaced = services
                .store
                .replace(&key, claim, &etag)
                .await
                .with_context(|| format!("failed to record the sent email of order {order_id}"))
                .map_err(InvocationError::Transient)?;
            if let Replaced::Replaced(_) = replaced {
                return recorded_late(services, &order, sent);
            }
            continue;
        }
        services.sent_unrecorded.forget(order_id);
        let own_unreleased = services.unreleased_claims.get(order_id).as_ref() == Some(&etag);
        match &entry {
            LedgerEntry::Sent {
                sent_at, event_id, ..
            } => {
                let summary = format!(
                    "confirmation for order {order_id} was already sent at {} (event {event_id}); not sending again, OrderConfirmationSent emitted again (same id)",
                    rfc3339(*sent_at)
                );
                tracing::info!(outcome = "duplicate", "{summary}");
                return confirmation(&order, &entry, summary);
            }
            LedgerEntry::Failed { reason, .. } => {
                let summary = format!(
                    "confirmation for order {order_id} failed permanently earlier ({reason}); not retrying, OrderConfirmationFailed emitted again (same id)"
                );
                tracing::info!(outcome = "duplicate", "{summary}");
                return confirmation(&order, &entry, summary);
            }
            LedgerEntry::Sending {
                lease_until,
                claimed_at,
                ..
            } if *lease_until > OffsetDateTime::now_utc() && !own_unreleased => {
                return Err(InvocationError::Transient(anyhow!(
                    "the confirmation for order {order_id} is being sent by another delivery (claimed at {}); retry later",
                    rfc3339(*claimed_at)
                )));
            }
            LedgerEntry::Sending { claimed_at, .. } => {
                // The claimant crashed or hung, or it is this process's own claim that a failed
                // send could not release: take over, unless someone else just did.
                let takeover = services
                    .store
                    .replace(&key, sending(services, event), &etag)
                    .await
                    .with_context(|| {
                        format!("failed to take over the email claim of order {order_id}")
                    })
                    .map_err(InvocationError::Transient)?;
                if let Replaced::Replaced(etag) = takeover {
                    services.unreleased_claims.forget(order_id);
                    if own_unreleased {
                        tracing::info!(
                            claimed_at = %rfc3339(*claimed_at),
                            "took back this process's email claim of order {order_id}, which a failed send could not release; nothing was sent under it"
                        );
                    } else {
                        tracing::warn!(
                            claimed_at = %rfc3339(*claimed_at),
                            "took over an expired email claim; the earlier delivery may have sent it already (same Message-ID)"
                        );
                    }
                    return send_and_settle(services, event, &order, &key, etag, trace).await;
                }
            }
        }
    }
    Err(InvocationError::Transient(anyhow!(
        "the email ledger entry of order {order_id} kept changing under this delivery; retry later"
    )))
}

fn sending(services: &Services, event: &InboundEvent) -> Bytes {
    let now = OffsetDateTime::now_utc();
    let entry = LedgerEntry::Sending {
        event_id: event.id.clone(),
        claimed_at: now,
        lease_until: now + services.email_claim_timeout,
    };
    Bytes::from(serde_json::to_vec(&entry).unwrap_or_default())
}

async fn send_and_settle(
    services: &Services,
    event: &InboundEvent,
    order: &NewOrder,
    key: &RecordKey,
    etag: ETag,
    trace: Option<TraceParent>,
) -> Result<InvocationResponse, InvocationError> {
    let order_id = order.order_id();
    let mut send = services.tracer.start("send email", Kind::Client, trace);
    send.set("email.transport", services.email.describe());
    let trace = send.traceparent();
    let email = match services.renderer.render(order, trace) {
        Ok(email) => email,
        Err(e) => {
            release(services, key, &etag, order_id).await;
            return Err(InvocationError::Internal(anyhow!(e)));
        }
    };
    let sent = services.email.send(&email).await;
    if let Err(e) = &sent {
        send.fail(e.to_string());
    }
    send.end();
    let traceparent = trace.map(|tp| tp.to_string());
    match sent {
        Ok(()) => {
            let entry = LedgerEntry::Sent {
                event_id: event.id.clone(),
                message_id: email.message_id.clone(),
                sent_at: OffsetDateTime::now_utc(),
                traceparent,
            };
            services.sent_unrecorded.remember(order_id, &entry);
            let entry = settle(services, key, &etag, entry, order_id).await?;
            services.sent_unrecorded.forget(order_id);
            let summary = format!(
                "confirmation for order {order_id} sent to {} via {}; OrderConfirmationSent emitted",
                order.customer_email(),
                services.email.describe()
            );
            tracing::info!(outcome = "sent", message_id = %email.message_id, "{summary}");
            confirmation(order, &entry, summary)
        }
        Err(SendError::Transient(reason)) => {
            release(services, key, &etag, order_id).await;
            Err(InvocationError::Transient(anyhow!(
                "the confirmation for order {order_id} could not be sent: {reason}"
            )))
        }
        Err(SendError::Permanent(reason)) => {
            let entry = LedgerEntry::Failed {
                event_id: event.id.clone(),
                reason: reason.clone(),
                failed_at: OffsetDateTime::now_utc(),
                traceparent,
            };
            let entry = settle(services, key, &etag, entry, order_id).await?;
            let summary = format!(
                "confirmation for order {order_id} refused permanently, not retrying: {reason}; OrderConfirmationFailed emitted"
            );
            tracing::warn!(outcome = "failed", "{summary}");
            confirmation(order, &entry, summary)
        }
    }
}

/// `OrderConfirmationSent` or `OrderConfirmationFailed` for a settled ledger entry: the same
/// event however often it is emitted.
fn confirmation(
    order: &NewOrder,
    entry: &LedgerEntry,
    summary: String,
) -> Result<InvocationResponse, InvocationError> {
    let order_id = order.order_id();
    let (event_type, time, mut data, traceparent) = match entry {
        LedgerEntry::Sent {
            event_id,
            message_id,
            sent_at,
            traceparent,
        } => (
            ORDER_CONFIRMATION_SENT,
            *sent_at,
            serde_json::json!({
                "orderId": order_id,
                "customerEmail": order.customer_email(),
                "messageId": message_id,
                "acceptedEventId": event_id,
            }),
            traceparent,
        ),
        LedgerEntry::Failed {
            event_id,
            reason,
            failed_at,
            traceparent,
        } => (
            ORDER_CONFIRMATION_FAILED,
            *failed_at,
            serde_json::json!({
                "orderId": order_id,
                "customerEmail": order.customer_email(),
                "reason": reason,
                "acceptedEventId": event_id,
            }),
            traceparent,
        ),
        LedgerEntry::Sending { .. } => {
            return Err(InvocationError::Internal(anyhow!(
                "the email of order {order_id} is not settled"
            )));
        }
    };
    if let Some(tp) = traceparent {
        data[crate::trace::TRACEPARENT] = tp.clone().into();
    }
    let event = recorded_event(
        &derived_id(event_type, order_id.as_str()),
        event_type,
        subject(Some(order_id)),
        &rfc3339(time),
        &data,
    )?;
    emit(&EMAIL_NOTIFIER, event, summary)
}

/// Records the final state and returns the entry that stands. Only this delivery holds the
/// claim, so a conflict means the lease expired mid-send and another delivery took over; the
/// entry it recorded (or, if that one has not settled yet, this one) is what is reported.
async fn settle(
    services: &Services,
    key: &RecordKey,
    etag: &ETag,
    entry: LedgerEntry,
    order_id: &OrderId,
) -> Result<LedgerEntry, InvocationError> {
    let body =
        Bytes::from(serde_json::to_vec(&entry).map_err(|e| InvocationError::Internal(e.into()))?);
    // The email is out; a failed write here would lead to a second email once the claim expires,
    // so it is retried, backing off from 50 ms, for up to half the claim's lease: a store that
    // is down for a few seconds (the torture test cuts Azurite) costs a wait, not a resend.
    let give_up = tokio::time::Instant::now() + services.email_claim_timeout / 2;
    let mut delay = std::time::Duration::from_millis(50);
    loop {
        match services.store.replace(key, body.clone(), etag).await {
            Ok(Replaced::Replaced(_)) => return Ok(entry),
            Ok(Replaced::Conflict(current)) => {
                tracing::warn!(
                    "the email claim of order {order_id} was taken over while sending; the other delivery records the outcome"
                );
                let settled = current
                    .and_then(|record| serde_json::from_slice::<LedgerEntry>(&record.body).ok())
                    .filter(|current| !matches!(current, LedgerEntry::Sending { .. }));
                return Ok(settled.unwrap_or(entry));
            }
            Err(e) if tokio::time::Instant::now() + delay > give_up => {
                return Err(InvocationError::Transient(anyhow!(
                    "the confirmation for order {order_id} was sent but could not be recorded: {e}"
                )));
            }
            Err(_) => {}
        }
        tokio::time::sleep(delay).await;
        delay *= 2;
    }
}

/// The answer once a remembered `sent` entry is recorded.
fn recorded_late(
    services: &Services,
    order: &NewOrder,
    sent: &LedgerEntry,
) -> Result<InvocationResponse, InvocationError> {
    let order_id = order.order_id();
    services.sent_unrecorded.forget(order_id);
    let summary = format!(
        "confirmation for order {order_id} was sent by an earlier delivery whose record failed; recorded now, not sending again; OrderConfirmationSent emitted"
    );
    tracing::info!(outcome = "recorded", "{summary}");
    confirmation(order, sent, summary)
}

/// Gives the claim up after a failed send so the retry can claim it at once; if the store fails
/// now too, remembers it ([`UnreleasedClaims`]) so that a retry in this process can.
async fn release(services: &Services, key: &RecordKey, etag: &ETag, order_id: &OrderId) {
    match services.store.delete(key, etag).await {
        Ok(Deleted::Deleted | Deleted::Conflict(_)) => {}
        Err(e) => {
            services.unreleased_claims.remember(order_id, etag);
            tracing::warn!(
                error = %e,
                "could not release the email claim of order {order_id}; a retry in this process takes it back, another process waits for it to expire"
            );
        }
    }
}

fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}
