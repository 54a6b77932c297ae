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

/// Every dead letter, oldest blob name first: when it was written, why, which event and order,
/// and the `<container>/<blob>` that `--show` and `redeliver --blob` take.
pub async fn dead_letters(admin: &AdminClient) -> anyhow::Result<String> {
    let dead = admin.dead_letters().await?;
    Ok(table(
        &[
            "DEAD-LETTERED AT",
            "SUBSCRIPTION",
            "REASON",
            "EVENT",
            "ORDER",
            "BLOB",
        ],
        dead.into_iter()
            .map(|d| {
                vec![
                    optional(d.blob.written_at.clone()),
                    d.blob.subscription.clone(),
                    optional(d.reason.clone()),
                    optional(d.event_id.clone()),
                    optional(d.order_id.clone()),
                    d.path(),
                ]
            })
            .collect(),
    ))
}

/// One dead letter in full (`<container>/<blob>`): its events as stored, with Azure's
/// dead-letter properties.
pub async fn dead_letter(admin: &AdminClient, path: &str) -> anyhow::Result<String> {
    let (container, name) = blob_path(path, "--show")?;
    let content = admin.dead_letter_at(container, name).await.map_err(|e| {
        if e.is_not_found() {
            anyhow::anyhow!(
                "no dead letter {path} at {}; `ordergrid emulator dead-letters` lists them",
                admin.base()
            )
        } else {
            e.into()
        }
    })?;
    Ok(serde_json::to_string_pretty(&content)? + "\n")
}

/// `<container>/<name>`, split at the first `/`.
fn blob_path<'a>(path: &'a str, flag: &str) -> anyhow::Result<(&'a str, &'a str)> {
    path.split_once('/')
        .filter(|(c, n)| !c.is_empty() && !n.is_empty())
        .with_context(|| {
            format!("{flag} {path:?}: expected <container>/<blob name>, as `dead-letters` lists it")
        })
}

/// Every dead letter of `subscription`, or one `blob` (`<container>/<name>`); says "nothing to
/// redeliver" for a subscription without dead letters, and names what does not exist.
pub async fn redeliver(
    admin: &AdminClient,
    subscription: Option<&str>,
    blob: Option<&str>,
) -> anyhow::Result<String> {
    let request = match blob {
        Some(path) => {
            let (container, name) = blob_path(path, "--blob")?;
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
    let answer = match admin.redeliver(&request).await {
        Ok(answer) => answer,
        Err(e) if e.is_not_found() => {
            return Err(match (blob, subscription) {
                (Some(path), _) => anyhow::anyhow!(
                    "no dead letter {path}: `ordergrid emulator dead-letters` lists them"
                ),
                (None, Some(name)) => {
                    let known = admin
                        .subscriptions()
                        .await
                        .map(|all| {
                            all.into_iter()
                                .map(|s| s.name)
                                .collect::<Vec<_>>()
                                .join(", ")
                        })
                        .unwrap_or_default();
                    anyhow::anyhow!("no subscription named {name} (the subscriptions: {known})")
                }
                (None, None) => anyhow::Error::new(e).context("redelivery refused"),
            });
        }
        Err(e) => return Err(anyhow::Error::new(e).context("redelivery refused")),
    };
    if answer.redelivered.is_empty() {
        return Ok(match subscription {
            Some(name) => {
                format!("nothing to redeliver: subscription {name} has no dead letters\n")
            }
            None => "nothing to redeliver: there are no dead letters\n".to_owned(),
        });
    }
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
