//! `ordergrid emulator status|deliveries|retries|dead-letters|redeliver`: the admin API, as
//! text, read through [`AdminClient`].

use anyhow::Context;

use super::table::{optional, table};
use crate::emulator::admin::{AdminClient, PendingAction, RedeliverRequest, Validation};

pub async fn status(admin: &AdminClient) -> anyhow::Result<String> {
    let health = admin.health().await?;
    let topics = admin.topics().await?;
    let subscriptions = admin.subscriptions().await?;
    let mut out = format!("emulator at {}: {}\n\n", admin.base(), health.status);
    out += &table(
        &["TOPIC", "SCHEMA", "ENDPOINT"],
        topics
            .into_iter()
            .map(|t| vec![t.name, t.input_schema, t.endpoint])
            .collect(),
    );
    out += "\n";
    out += &table(
        &[
            "SUBSCRIPTION",
            "DESTINATION",
            "VALIDATION",
            "MATCHED",
            "DELIVERED",
            "RETRIED",
            "DEAD-LETTERED",
            "DROPPED",
            "PENDING",
        ],
        subscriptions
            .into_iter()
            .map(|s| {
                let c = s.counters;
                vec![
                    format!("{}/{}", s.topic, s.name),
                    s.destination.describe(),
                    validation(&s.validation),
                    c.matched.to_string(),
                    c.delivered.to_string(),
                    c.retried.to_string(),
                    c.dead_lettered.to_string(),
                    c.dropped.to_string(),
                    s.pending.to_string(),
                ]
            })
            .collect(),
    );
    Ok(out)
}

/// The state as the admin API names it (`succeeded`, `failed: <reason>`).
fn validation(v: &Validation) -> String {
    match v {
        Validation::Failed { reason } => format!("{}: {reason}", v.state()),
        _ => v.state().to_owned(),
    }
}

pub async fn deliveries(admin: &AdminClient, limit: usize) -> anyhow::Result<String> {
    let records = admin.deliveries(None, limit).await?;
    Ok(table(
        &[
            "AT",
            "SUBSCRIPTION",
            "EVENTS",
            "ATTEMPT",
            "STATUS",
            "OUTCOME",
            "MS",
            "NEXT",
        ],
        records
            .into_iter()
            .map(|d| {
                vec![
                    d.at,
                    d.subscription,
                    d.event_ids.join(","),
                    d.attempt.to_string(),
                    optional(d.status),
                    d.outcome,
                    format!("{:.1}", d.duration_ms),
                    d.next,
                ]
            })
            .collect(),
    ))
}

pub async fn retries(admin: &AdminClient) -> anyhow::Result<String> {
    let pending = admin.retries().await?;
    Ok(table(
        &["SUBSCRIPTION", "EVENT", "ATTEMPTS", "DUE", "ACTION", "LAST"],
        pending
            .into_iter()
            .map(|p| {
                let action = match p.action {
                    PendingAction::Deliver => "deliver".to_owned(),
                    PendingAction::DeadLetter { reason } => format!("deadLetter ({reason})"),
                };
                vec![
                    p.subscription,
                    optional(p.event_id),
                    p.attempts.to_string(),
                    p.due,
                    action,
                    format!("{} {}", optional(p.last_status), optional(p.last_outcome)),
                ]
            })
            .collect(),
    ))
}

pub async fn dead_letters(admin: &AdminClient) -> anyhow::Result<String> {
    let blobs = admin.dead_letters().await?;
    Ok(table(
        &["CONTAINER", "BLOB"],
        blobs
            .into_iter()
            .map(|b| vec![b.container, b.name])
            .collect(),
    ))
}

/// Every dead letter of `subscription`, or one `blob` (`<container>/<name>`).
pub async fn redeliver(
    admin: &AdminClient,
    subscription: Option<&str>,
    blob: Option<&str>,
) -> anyhow::Result<String> {
    let request = match blob {
        Some(path) => {
            let (container, name) = path
                .split_once('/')
                .context("--blob takes <container>/<blob name>")?;
            RedeliverRequest {
                container: Some(container.into()),
                name: Some(name.into()),
                subscription: None,
            }
        }
        None => RedeliverRequest {
            subscription: subscription.map(str::to_owned),
            ..RedeliverRequest::default()
        },
    };
    let answer = admin
        .redeliver(&request)
        .await
        .context("redelivery refused")?;
    Ok(table(
        &["SUBSCRIPTION", "EVENTS", "BLOB"],
        answer
            .redelivered
            .into_iter()
            .map(|r| {
                vec![
                    r.subscription,
                    r.events.to_string(),
                    format!("{}/{}", r.container, r.name),
                ]
            })
            .collect(),
    ))
}
