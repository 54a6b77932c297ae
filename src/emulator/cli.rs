//! `ordergrid emulator status|deliveries|retries|dead-letters|redeliver`: the admin API, as text.
//! Each takes the emulator's base URL with or without a trailing `/`.

use std::fmt::Write as _;

use anyhow::{Context, bail};
use serde_json::{Value, json};

async fn get(url: &str) -> anyhow::Result<Value> {
    let response = reqwest::get(url)
        .await
        .with_context(|| format!("is the emulator running? {url} did not answer"))?;
    let status = response.status();
    let body: Value = serde_json::from_slice(&response.bytes().await?).unwrap_or(Value::Null);
    if !status.is_success() {
        bail!(
            "{url} answered {status}: {}",
            body["error"]["message"].as_str().unwrap_or("")
        );
    }
    Ok(body)
}

fn text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Null => "-".into(),
        other => other.to_string(),
    }
}

/// Renders rows as aligned columns.
fn table(head: &[&str], rows: Vec<Vec<String>>) -> String {
    let mut widths: Vec<usize> = head.iter().map(|h| h.len()).collect();
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let line = |out: &mut String, cells: Vec<String>| {
        let cells: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        let _ = writeln!(out, "{}", cells.join("  ").trim_end());
    };
    line(&mut out, head.iter().map(|h| h.to_string()).collect());
    if rows.is_empty() {
        let _ = writeln!(out, "(none)");
    }
    for row in rows {
        line(&mut out, row);
    }
    out
}

pub async fn status(base: &str) -> anyhow::Result<String> {
    let base = base.trim_end_matches('/');
    let health = get(&format!("{base}/health")).await?;
    let topics = get(&format!("{base}/emulator/topics")).await?;
    let subs = get(&format!("{base}/emulator/subscriptions")).await?;
    let mut out = format!("emulator at {base}: {}\n\n", text(&health["status"]));
    out += &table(
        &["TOPIC", "SCHEMA", "ENDPOINT"],
        topics
            .as_array()
            .into_iter()
            .flatten()
            .map(|t| {
                vec![
                    text(&t["name"]),
                    text(&t["inputSchema"]),
                    text(&t["endpoint"]),
                ]
            })
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
        subs.as_array()
            .into_iter()
            .flatten()
            .map(|s| {
                let destination = s["destination"]["functionName"]
                    .as_str()
                    .map(|f| format!("function {f}"))
                    .unwrap_or_else(|| text(&s["destination"]["endpointUrl"]));
                let validation = match s["validation"]["reason"].as_str() {
                    Some(reason) => format!("{}: {reason}", text(&s["validation"]["state"])),
                    None => text(&s["validation"]["state"]),
                };
                let c = &s["counters"];
                vec![
                    format!("{}/{}", text(&s["topic"]), text(&s["name"])),
                    destination,
                    validation,
                    text(&c["matched"]),
                    text(&c["delivered"]),
                    text(&c["retried"]),
                    text(&c["deadLettered"]),
                    text(&c["dropped"]),
                    text(&s["pending"]),
                ]
            })
            .collect(),
    );
    Ok(out)
}

pub async fn deliveries(base: &str, limit: usize) -> anyhow::Result<String> {
    let base = base.trim_end_matches('/');
    let records = get(&format!("{base}/emulator/deliveries?limit={limit}")).await?;
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
            .as_array()
            .into_iter()
            .flatten()
            .map(|d| {
                vec![
                    text(&d["at"]),
                    text(&d["subscription"]),
                    d["eventIds"]
                        .as_array()
                        .map(|ids| ids.iter().map(text).collect::<Vec<_>>().join(","))
                        .unwrap_or_default(),
                    text(&d["attempt"]),
                    text(&d["status"]),
                    text(&d["outcome"]),
                    format!("{:.1}", d["durationMs"].as_f64().unwrap_or(0.0)),
                    text(&d["next"]),
                ]
            })
            .collect(),
    ))
}

pub async fn retries(base: &str) -> anyhow::Result<String> {
    let base = base.trim_end_matches('/');
    let pending = get(&format!("{base}/emulator/retries")).await?;
    Ok(table(
        &["SUBSCRIPTION", "EVENT", "ATTEMPTS", "DUE", "ACTION", "LAST"],
        pending
            .as_array()
            .into_iter()
            .flatten()
            .map(|p| {
                let action = match p["action"]["reason"].as_str() {
                    Some(reason) => format!("{} ({reason})", text(&p["action"]["kind"])),
                    None => text(&p["action"]["kind"]),
                };
                vec![
                    text(&p["subscription"]),
                    text(&p["eventId"]),
                    text(&p["attempts"]),
                    text(&p["due"]),
                    action,
                    format!("{} {}", text(&p["lastStatus"]), text(&p["lastOutcome"])),
                ]
            })
            .collect(),
    ))
}

pub async fn dead_letters(base: &str) -> anyhow::Result<String> {
    let base = base.trim_end_matches('/');
    let blobs = get(&format!("{base}/emulator/dead-letters")).await?;
    Ok(table(
        &["CONTAINER", "BLOB"],
        blobs
            .as_array()
            .into_iter()
            .flatten()
            .map(|b| vec![text(&b["container"]), text(&b["name"])])
            .collect(),
    ))
}

pub async fn redeliver(
    base: &str,
    subscription: Option<&str>,
    blob: Option<&str>,
) -> anyhow::Result<String> {
    let base = base.trim_end_matches('/');
    let body = match blob {
        Some(path) => {
            let (container, name) = path
                .split_once('/')
                .context("--blob takes <container>/<blob name>")?;
            json!({"container": container, "name": name})
        }
        None => json!({"subscription": subscription}),
    };
    let response = reqwest::Client::new()
        .post(format!("{base}/emulator/dead-letters/redeliver"))
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .with_context(|| format!("is the emulator running? {base} did not answer"))?;
    let status = response.status();
    let answer: Value = serde_json::from_slice(&response.bytes().await?).unwrap_or(Value::Null);
    if !status.is_success() {
        bail!(
            "redelivery refused ({status}): {}",
            answer["error"]["message"].as_str().unwrap_or("")
        );
    }
    Ok(table(
        &["SUBSCRIPTION", "EVENTS", "BLOB"],
        answer["redelivered"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|r| {
                vec![
                    text(&r["subscription"]),
                    text(&r["events"]),
                    format!("{}/{}", text(&r["container"]), text(&r["name"])),
                ]
            })
            .collect(),
    ))
}
