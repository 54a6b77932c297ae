//! The topics-and-subscriptions file, `infra/subscriptions.json`: the one definition of the
//! emulator's topics and event subscriptions, which the Bicep also reads (`loadJsonContent`).
//!
//! Responsibility: read the file and turn it into typed [`Topic`]s and [`Subscription`]s, applying
//! Azure's rules for `Microsoft.EventGrid/topics/eventSubscriptions`, so a file the emulator
//! accepts is one ARM accepts too (and a mistake shows up locally, not at deployment).
//!
//! Invariants:
//! - a [`SubscriptionsFile`] that exists satisfies every rule below; nothing downstream
//!   re-validates;
//! - every problem in the file is reported at once, one line each, naming the file, the topic,
//!   the subscription and the property path, and quoting the bad value;
//! - nothing in the file is ignored: an unknown property is an error (with a "did you mean"),
//!   and so is a property given twice.
//!
//! The file uses ARM's property names:
//! `{"topics": [{"name", "inputSchema", "subscriptions": [{"name", "destination", "filter",
//! "eventDeliverySchema", "retryPolicy", "deadLetter"}]}]}`. Rules and defaults, per Azure:
//! - topic names 3-50 and subscription names 3-64 characters, letters, digits and hyphens;
//!   subscription names unique per topic and topic names unique per file, ignoring case;
//! - `inputSchema` `EventGridSchema` (default) or `CloudEventSchemaV1_0`; `eventDeliverySchema`
//!   defaults to the input schema, and CloudEvents input cannot be delivered in the Event Grid
//!   schema (Azure's own message is used);
//! - `retryPolicy.maxDeliveryAttempts` 1-30 (default 30), `eventTimeToLiveInMinutes` 1-1440
//!   (default 1440);
//! - `destination.properties.maxEventsPerBatch` 1-5000 and `preferredBatchSizeInKilobytes`
//!   1-1024. Azure does not batch by default, and when one is set the other takes a default it
//!   does not document; this module uses 1 event and 64 KiB, the Azure portal's defaults (also
//!   what the sockerless simulator assumes). The preferred size is a target, not a limit;
//! - `deliveryAttributeMappings`: at most 10, header names valid HTTP tokens not starting with
//!   `aeg-` and (decided here) not repeated, static values at most 4096 bytes;
//! - `deadLetter.blobContainerName` follows Azure Storage's container naming rules;
//! - a `WebHook` destination's `endpointUrl` must be `https` in Azure; the emulator also accepts
//!   `http`, because local receivers rarely have certificates. An `AzureFunction` destination
//!   names the function by `functionName`, checked with the Functions host's own rule.

use std::fmt;
use std::path::Path;
use std::time::Duration;

use super::filter::Filter;
use crate::eventgrid::Schema;

/// Azure's `retryPolicy` limits.
pub const MAX_DELIVERY_ATTEMPTS: u32 = 30;
pub const MAX_EVENT_TIME_TO_LIVE_MINUTES: u64 = 1440;
/// Azure's output batching limits.
pub const MAX_EVENTS_PER_BATCH: u32 = 5000;
pub const MAX_PREFERRED_BATCH_KILOBYTES: u64 = 1024;
/// Custom delivery properties: "up to 10 headers", "each … 4,096 (4K) bytes".
pub const MAX_DELIVERY_ATTRIBUTES: usize = 10;
pub const MAX_DELIVERY_ATTRIBUTE_VALUE_BYTES: usize = 4096;

/// The whole file: every topic the emulator serves.
#[derive(Debug, Clone, PartialEq)]
pub struct SubscriptionsFile {
    pub topics: Vec<Topic>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Topic {
    pub name: TopicName,
    pub input_schema: Schema,
    pub subscriptions: Vec<Subscription>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Subscription {
    pub name: SubscriptionName,
    pub destination: Destination,
    pub filter: Filter,
    pub delivery_schema: Schema,
    pub retry: RetryPolicy,
    pub batching: Batching,
    pub dead_letter: Option<DeadLetter>,
    pub delivery_attributes: Vec<DeliveryAttribute>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Destination {
    /// Delivered through the Functions host's Event Grid endpoint
    /// (`/runtime/webhooks/eventgrid?functionName=…`).
    AzureFunction {
        function_name: String,
    },
    WebHook {
        endpoint_url: String,
    },
}

/// When delivery of an event gives up: whichever limit is reached first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    pub max_delivery_attempts: u32,
    pub event_time_to_live: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_delivery_attempts: MAX_DELIVERY_ATTEMPTS,
            event_time_to_live: Duration::from_secs(MAX_EVENT_TIME_TO_LIVE_MINUTES * 60),
        }
    }
}

/// Output batching. `max_events` is never exceeded; `preferred_bytes` is a target: a batch
/// closes once it would pass it, and one event bigger than it travels alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Batching {
    pub max_events: u32,
    pub preferred_bytes: usize,
}

impl Batching {
    /// The size default when only `maxEventsPerBatch` is set (Azure portal's default).
    pub const DEFAULT_PREFERRED_KILOBYTES: usize = 64;
}

impl Default for Batching {
    /// Azure's default: no batching, one event per delivery.
    fn default() -> Self {
        Self {
            max_events: 1,
            preferred_bytes: Self::DEFAULT_PREFERRED_KILOBYTES * 1024,
        }
    }
}

/// Where undeliverable events go: a blob container (in the emulator, its folder or Azurite twin).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    pub container: String,
}

/// A custom delivery property: one extra header on every delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeliveryAttribute {
    /// A fixed value; a secret one is never logged or shown.
    Static {
        name: String,
        value: String,
        secret: bool,
    },
    /// Taken from the event (`data.key1`, `subject`); only strings, numbers and bools qualify.
    Dynamic { name: String, source_field: String },
}

impl DeliveryAttribute {
    /// The header name.
    pub fn name(&self) -> &str {
        match self {
            Self::Static { name, .. } | Self::Dynamic { name, .. } => name,
        }
    }
}

/// A topic name: 3-50 characters, letters, digits and hyphens.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TopicName(String);

/// An event subscription name: 3-64 characters, letters, digits and hyphens.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SubscriptionName(String);

/// Why a name was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct NameError(String);

impl TopicName {
    pub fn parse(name: &str) -> Result<Self, NameError> {
        check_resource_name(name, 50).map(|()| Self(name.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl SubscriptionName {
    pub fn parse(name: &str) -> Result<Self, NameError> {
        check_resource_name(name, 64).map(|()| Self(name.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Upper-cased, as in dead-letter blob paths and the `aeg-subscription-name` header.
    pub fn upper(&self) -> String {
        self.0.to_ascii_uppercase()
    }
}

impl fmt::Display for TopicName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Display for SubscriptionName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn check_resource_name(name: &str, max: usize) -> Result<(), NameError> {
    let valid = (3..=max).contains(&name.len())
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
    if valid {
        Ok(())
    } else {
        Err(NameError(format!(
            "Azure requires 3 to {max} characters, each a letter, digit or hyphen"
        )))
    }
}

/// Everything wrong with the file.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("failed to read the subscriptions file {path}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{origin}: invalid JSON at line {line}, column {column}: {message}")]
    Syntax {
        origin: String,
        line: usize,
        column: usize,
        message: String,
    },
    /// One entry per problem, in file order.
    #[error("{}", lines(.0))]
    Invalid(Vec<Problem>),
}

impl ConfigError {
    /// The rule violations (empty for read and syntax errors).
    pub fn problems(&self) -> &[Problem] {
        match self {
            Self::Invalid(problems) => problems,
            _ => &[],
        }
    }
}

fn lines(problems: &[Problem]) -> String {
    problems
        .iter()
        .map(Problem::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}

/// One rule violation: `file: topic "t", subscription "s": path is value; rule`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub origin: String,
    /// `topic "orders", subscription "order-processor"`, or empty at the top level.
    pub context: String,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.context.is_empty() {
            write!(f, "{}: {}", self.origin, self.message)
        } else {
            write!(f, "{}: {}: {}", self.origin, self.context, self.message)
        }
    }
}

impl SubscriptionsFile {
    /// Reads and checks the file at `path`; messages name it as given.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let origin = path.display().to_string();
        let json = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: origin.clone(),
            source,
        })?;
        Self::parse(&json, &origin)
    }

    /// Checks the file's text; `origin` names it in messages.
    pub fn parse(json: &str, origin: &str) -> Result<Self, ConfigError> {
        let Strict(root) = serde_json::from_str(json).map_err(|e| ConfigError::Syntax {
            origin: origin.to_owned(),
            line: e.line(),
            column: e.column(),
            message: without_position(&e.to_string()),
        })?;
        let mut problems = Vec::new();
        let file = read_file(&root, origin, &mut problems);
        if problems.is_empty() {
            Ok(file)
        } else {
            Err(ConfigError::Invalid(problems))
        }
    }

    /// The topic with this name, ignoring case (Azure resource names are case-insensitive).
    pub fn topic(&self, name: &str) -> Option<&Topic> {
        self.topics
            .iter()
            .find(|topic| topic.name.as_str().eq_ignore_ascii_case(name))
    }
}

impl Topic {
    /// The subscription with this name, ignoring case.
    pub fn subscription(&self, name: &str) -> Option<&Subscription> {
        self.subscriptions
            .iter()
            .find(|subscription| subscription.name.as_str().eq_ignore_ascii_case(name))
    }
}

/// serde_json appends " at line L column C"; the message states the position itself.
fn without_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(at) => message[..at].to_owned(),
        None => message.to_owned(),
    }
}

mod destination;
mod reader;
#[cfg(test)]
mod tests;

use reader::{Strict, read_file};
