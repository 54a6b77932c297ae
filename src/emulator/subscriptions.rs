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

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

use super::filter::{Filter, check_properties, describe, join, quote};
use crate::eventgrid::{Schema, protocol};

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

/// Problems found while reading one topic or subscription, before they get their context.
type Found = Vec<String>;

fn read_file(root: &Value, origin: &str, problems: &mut Vec<Problem>) -> SubscriptionsFile {
    let mut report = |context: String, found: Found| {
        problems.extend(found.into_iter().map(|message| Problem {
            origin: origin.to_owned(),
            context: context.clone(),
            message,
        }));
    };
    let mut file = SubscriptionsFile { topics: Vec::new() };
    let mut found = Found::new();
    let Some(object) = root.as_object() else {
        found.push(format!(
            "the file is {}; expected an object {{\"topics\": [...]}}",
            describe(root)
        ));
        report(String::new(), found);
        return file;
    };
    check_properties(object, &["topics"], "", &mut found);
    let topics = match object.get("topics") {
        None => {
            found.push("topics is missing".to_owned());
            &[][..]
        }
        Some(Value::Array(topics)) => topics.as_slice(),
        Some(other) => {
            found.push(format!("topics is {}; expected a list", describe(other)));
            &[][..]
        }
    };
    report(String::new(), found);

    for (i, value) in topics.iter().enumerate() {
        let label = label(value, "topic", &format!("topics[{i}]"));
        let topic = read_topic(
            value,
            &file.topics,
            &mut |context: Option<String>, found| {
                let context = match context {
                    Some(subscription) => format!("{label}, {subscription}"),
                    None => label.clone(),
                };
                report(context, found);
            },
        );
        file.topics.extend(topic);
    }
    file
}

/// `topic "orders"`, or `topics[1]` when the entry has no usable name.
fn label(value: &Value, kind: &str, fallback: &str) -> String {
    match value.get("name").and_then(Value::as_str) {
        Some(name) => format!("{kind} {}", quote(name)),
        None => fallback.to_owned(),
    }
}

/// Reads one topic; `report(None, …)` takes the topic's own problems, `report(Some(label), …)`
/// each subscription's, in file order.
fn read_topic(
    value: &Value,
    earlier: &[Topic],
    report: &mut dyn FnMut(Option<String>, Found),
) -> Option<Topic> {
    let mut found = Found::new();
    let Some(object) = value.as_object() else {
        found.push(format!(
            "the topic is {}; expected an object",
            describe(value)
        ));
        report(None, found);
        return None;
    };
    check_properties(
        object,
        &["name", "inputSchema", "subscriptions"],
        "",
        &mut found,
    );
    let name = read_name(object, TopicName::parse, &mut found);
    if let Some(name) = &name
        && let Some(first) = earlier
            .iter()
            .find(|t| t.name.as_str().eq_ignore_ascii_case(name.as_str()))
    {
        found.push(format!(
            "name \"{name}\" repeats topic \"{}\"; topic names must be unique, ignoring case",
            first.name
        ));
    }
    let input_schema = match object.get("inputSchema") {
        None => Some(Schema::EventGrid),
        Some(value) => read_schema(value, "inputSchema", &mut found),
    };
    let entries = match object.get("subscriptions") {
        None => &[][..],
        Some(Value::Array(entries)) => entries.as_slice(),
        Some(other) => {
            found.push(format!(
                "subscriptions is {}; expected a list",
                describe(other)
            ));
            &[][..]
        }
    };
    report(None, found);

    let mut subscriptions: Vec<Subscription> = Vec::new();
    for (j, value) in entries.iter().enumerate() {
        let mut found = Found::new();
        let subscription = read_subscription(value, input_schema, &mut found);
        if let Some(subscription) = &subscription
            && let Some(first) = subscriptions.iter().find(|s| {
                s.name
                    .as_str()
                    .eq_ignore_ascii_case(subscription.name.as_str())
            })
        {
            found.push(format!(
                "name \"{}\" repeats subscription \"{}\"; subscription names must be unique \
                 within a topic, ignoring case",
                subscription.name, first.name
            ));
        }
        let label = label(value, "subscription", &format!("subscriptions[{j}]"));
        report(Some(label), found);
        subscriptions.extend(subscription);
    }
    Some(Topic {
        name: name?,
        input_schema: input_schema?,
        subscriptions,
    })
}

fn read_name<T>(
    object: &Map<String, Value>,
    parse: fn(&str) -> Result<T, NameError>,
    found: &mut Found,
) -> Option<T> {
    match object.get("name") {
        None => {
            found.push("name is missing".to_owned());
            None
        }
        Some(Value::String(text)) => match parse(text) {
            Ok(name) => Some(name),
            Err(e) => {
                found.push(format!("name is {}; {e}", quote(text)));
                None
            }
        },
        Some(other) => {
            found.push(format!("name is {}; expected a string", describe(other)));
            None
        }
    }
}

const SCHEMAS: &str = "EventGridSchema, CloudEventSchemaV1_0";

fn schema_name(schema: Schema) -> &'static str {
    match schema {
        Schema::EventGrid => "EventGridSchema",
        Schema::CloudEvents => "CloudEventSchemaV1_0",
    }
}

fn read_schema(value: &Value, path: &str, found: &mut Found) -> Option<Schema> {
    match value.as_str() {
        Some("EventGridSchema") => Some(Schema::EventGrid),
        Some("CloudEventSchemaV1_0") => Some(Schema::CloudEvents),
        Some(custom @ ("CustomEventSchema" | "CustomInputSchema")) => {
            found.push(format!(
                "{path} is \"{custom}\"; the emulator has no custom schema mapping, use one of {SCHEMAS}"
            ));
            None
        }
        _ => {
            found.push(format!(
                "{path} is {}; valid values are {SCHEMAS}",
                describe(value)
            ));
            None
        }
    }
}

const SUBSCRIPTION_PROPERTIES: &[&str] = &[
    "name",
    "destination",
    "filter",
    "eventDeliverySchema",
    "retryPolicy",
    "deadLetter",
];

fn read_subscription(
    value: &Value,
    input_schema: Option<Schema>,
    found: &mut Found,
) -> Option<Subscription> {
    let Some(object) = value.as_object() else {
        found.push(format!(
            "the subscription is {}; expected an object",
            describe(value)
        ));
        return None;
    };
    check_properties(object, SUBSCRIPTION_PROPERTIES, "", found);
    let name = read_name(object, SubscriptionName::parse, found);

    let destination = match object.get("destination") {
        None => {
            found.push("destination is missing".to_owned());
            None
        }
        Some(value) => read_destination(value, found),
    };

    let filter = match object.get("filter") {
        None | Some(Value::Null) => Some(Filter::default()),
        Some(value) => match Filter::from_json(value) {
            Ok(filter) => Some(filter),
            Err(e) => {
                found.extend(e.problems);
                None
            }
        },
    };

    let delivery_schema = match object.get("eventDeliverySchema") {
        None | Some(Value::Null) => input_schema,
        Some(value) => {
            let delivery = read_schema(value, "eventDeliverySchema", found);
            if input_schema == Some(Schema::CloudEvents) && delivery == Some(Schema::EventGrid) {
                // Azure's own wording (InvalidRequest), so a search for it finds the docs.
                found.push(format!(
                    "The specified EventDeliverySchema value \"{}\" cannot be used in \
                     combination with the topic's input schema of {}",
                    schema_name(Schema::EventGrid),
                    schema_name(Schema::CloudEvents)
                ));
            }
            delivery
        }
    };

    let retry = read_retry(object.get("retryPolicy"), found);

    let dead_letter = match object.get("deadLetter") {
        None | Some(Value::Null) => None,
        Some(value) => read_dead_letter(value, found),
    };

    let (destination, batching, delivery_attributes) = destination?;
    Some(Subscription {
        name: name?,
        destination,
        filter: filter?,
        delivery_schema: delivery_schema?,
        retry,
        batching,
        dead_letter,
        delivery_attributes,
    })
}

const FUNCTION_PROPERTIES: &[&str] = &[
    "functionName",
    "maxEventsPerBatch",
    "preferredBatchSizeInKilobytes",
    "deliveryAttributeMappings",
];
const WEBHOOK_PROPERTIES: &[&str] = &[
    "endpointUrl",
    "maxEventsPerBatch",
    "preferredBatchSizeInKilobytes",
    "deliveryAttributeMappings",
];

fn read_destination(
    value: &Value,
    found: &mut Found,
) -> Option<(Destination, Batching, Vec<DeliveryAttribute>)> {
    let Some(object) = value.as_object() else {
        found.push(format!(
            "destination is {}; expected an object",
            describe(value)
        ));
        return None;
    };
    check_properties(
        object,
        &["endpointType", "properties"],
        "destination",
        found,
    );
    let endpoint_type = match object.get("endpointType") {
        None => {
            found.push("destination.endpointType is missing".to_owned());
            return None;
        }
        Some(Value::String(text)) if text == "AzureFunction" || text == "WebHook" => text.as_str(),
        Some(other) => {
            found.push(format!(
                "destination.endpointType is {}; the emulator delivers to AzureFunction and WebHook",
                describe(other)
            ));
            return None;
        }
    };
    let path = "destination.properties";
    let properties = match object.get("properties") {
        Some(Value::Object(properties)) => properties,
        None => {
            found.push(format!("{path} is missing"));
            return None;
        }
        Some(other) => {
            found.push(format!("{path} is {}; expected an object", describe(other)));
            return None;
        }
    };

    let destination = if endpoint_type == "AzureFunction" {
        check_properties(properties, FUNCTION_PROPERTIES, path, found);
        read_required_string(properties, "functionName", path, found).and_then(|name| {
            match check_function_name(name) {
                Ok(()) => Some(Destination::AzureFunction {
                    function_name: name.to_owned(),
                }),
                Err(reason) => {
                    found.push(format!("{path}.functionName is {}; {reason}", quote(name)));
                    None
                }
            }
        })
    } else {
        check_properties(properties, WEBHOOK_PROPERTIES, path, found);
        read_required_string(properties, "endpointUrl", path, found).and_then(|url| {
            match check_webhook_url(url) {
                Ok(()) => Some(Destination::WebHook {
                    endpoint_url: url.to_owned(),
                }),
                Err(reason) => {
                    found.push(format!("{path}.endpointUrl is {}; {reason}", quote(url)));
                    None
                }
            }
        })
    };

    let max_events = read_integer(
        properties,
        "maxEventsPerBatch",
        path,
        1,
        MAX_EVENTS_PER_BATCH.into(),
        found,
    );
    let preferred_kb = read_integer(
        properties,
        "preferredBatchSizeInKilobytes",
        path,
        1,
        MAX_PREFERRED_BATCH_KILOBYTES,
        found,
    );
    let defaults = Batching::default();
    let batching = Batching {
        max_events: max_events
            .and_then(|n| u32::try_from(n).ok())
            .unwrap_or(defaults.max_events),
        preferred_bytes: preferred_kb
            .and_then(|kb| usize::try_from(kb * 1024).ok())
            .unwrap_or(defaults.preferred_bytes),
    };

    let attributes = match properties.get("deliveryAttributeMappings") {
        None | Some(Value::Null) => Vec::new(),
        Some(value) => {
            read_delivery_attributes(value, &join(path, "deliveryAttributeMappings"), found)
        }
    };
    Some((destination?, batching, attributes))
}

fn read_required_string<'v>(
    object: &'v Map<String, Value>,
    name: &str,
    path: &str,
    found: &mut Found,
) -> Option<&'v str> {
    match object.get(name) {
        None => {
            found.push(format!("{} is missing", join(path, name)));
            None
        }
        Some(Value::String(text)) => Some(text),
        Some(other) => {
            found.push(format!(
                "{} is {}; expected a string",
                join(path, name),
                describe(other)
            ));
            None
        }
    }
}

/// An optional whole number within `min..=max`; `None` when absent or invalid (then reported).
fn read_integer(
    object: &Map<String, Value>,
    name: &str,
    path: &str,
    min: u64,
    max: u64,
    found: &mut Found,
) -> Option<u64> {
    let value = object.get(name)?;
    let path = join(path, name);
    match value.as_u64() {
        Some(n) if (min..=max).contains(&n) => Some(n),
        Some(_) => {
            found.push(format!("{path} is {value}; Azure allows {min} to {max}"));
            None
        }
        None if value.is_number() => {
            found.push(format!(
                "{path} is {value}; Azure allows whole numbers from {min} to {max}"
            ));
            None
        }
        None => {
            found.push(format!(
                "{path} is {}; expected a whole number from {min} to {max}",
                describe(value)
            ));
            None
        }
    }
}

/// The Functions host's rule: `^[a-z][a-z0-9_\-]{0,127}$`, ignoring case, and not `host`.
fn check_function_name(name: &str) -> Result<(), &'static str> {
    let mut chars = name.chars();
    let starts_with_letter = chars.next().is_some_and(|c| c.is_ascii_alphabetic());
    let rest_valid = chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if starts_with_letter && rest_valid && name.len() <= 128 && !name.eq_ignore_ascii_case("host") {
        Ok(())
    } else {
        Err(
            "a function name is a letter followed by up to 127 letters, digits, '_' or '-' \
             (and not \"host\")",
        )
    }
}

/// A minimal URL check, enough to catch typos: http(s), a host, an optional numeric port.
fn check_webhook_url(url: &str) -> Result<(), String> {
    if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("a URL must not contain spaces or control characters".to_owned());
    }
    let Some((scheme, rest)) = url.split_once("://") else {
        return Err("expected an absolute URL like \"https://host/path\"".to_owned());
    };
    if !(scheme.eq_ignore_ascii_case("https") || scheme.eq_ignore_ascii_case("http")) {
        return Err(format!(
            "the scheme is {}; Azure requires https (the emulator also allows http \
             for local receivers)",
            quote(scheme)
        ));
    }
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, hp)| hp);
    let (host, port) = if let Some(bracketed) = host_port.strip_prefix('[') {
        // An IPv6 literal: [::1]:8080
        match bracketed.split_once(']') {
            Some((ip, after)) => (ip, after.strip_prefix(':')),
            None => return Err("the IPv6 host is missing its closing ']'".to_owned()),
        }
    } else {
        match host_port.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (host_port, None),
        }
    };
    if host.is_empty() {
        return Err("the URL has no host".to_owned());
    }
    if !host
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_' | ':'))
    {
        return Err(format!(
            "the host {} has characters a host name cannot have",
            quote(host)
        ));
    }
    if let Some(port) = port
        && !(!port.is_empty()
            && port.bytes().all(|b| b.is_ascii_digit())
            && port.parse::<u16>().is_ok())
    {
        return Err(format!(
            "the port {} is not a number from 0 to 65535",
            quote(port)
        ));
    }
    Ok(())
}

fn read_retry(value: Option<&Value>, found: &mut Found) -> RetryPolicy {
    let mut retry = RetryPolicy::default();
    let object = match value {
        None | Some(Value::Null) => return retry,
        Some(Value::Object(object)) => object,
        Some(other) => {
            found.push(format!(
                "retryPolicy is {}; expected an object",
                describe(other)
            ));
            return retry;
        }
    };
    check_properties(
        object,
        &["maxDeliveryAttempts", "eventTimeToLiveInMinutes"],
        "retryPolicy",
        found,
    );
    if let Some(attempts) = read_integer(
        object,
        "maxDeliveryAttempts",
        "retryPolicy",
        1,
        MAX_DELIVERY_ATTEMPTS.into(),
        found,
    ) && let Ok(attempts) = u32::try_from(attempts)
    {
        retry.max_delivery_attempts = attempts;
    }
    if let Some(minutes) = read_integer(
        object,
        "eventTimeToLiveInMinutes",
        "retryPolicy",
        1,
        MAX_EVENT_TIME_TO_LIVE_MINUTES,
        found,
    ) {
        retry.event_time_to_live = Duration::from_secs(minutes * 60);
    }
    retry
}

fn read_dead_letter(value: &Value, found: &mut Found) -> Option<DeadLetter> {
    let Some(object) = value.as_object() else {
        found.push(format!(
            "deadLetter is {}; expected an object {{\"blobContainerName\": ...}} or null",
            describe(value)
        ));
        return None;
    };
    check_properties(object, &["blobContainerName"], "deadLetter", found);
    let name = read_required_string(object, "blobContainerName", "deadLetter", found)?;
    match check_container_name(name) {
        Ok(()) => Some(DeadLetter {
            container: name.to_owned(),
        }),
        Err(reason) => {
            found.push(format!(
                "deadLetter.blobContainerName is {}; {reason}",
                quote(name)
            ));
            None
        }
    }
}

/// Azure Storage container names: 3-63 characters of lowercase letters, digits and hyphens,
/// starting and ending with a letter or digit, with no two hyphens in a row.
fn check_container_name(name: &str) -> Result<(), &'static str> {
    let valid = (3..=63).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-')
        && !name.contains("--");
    if valid {
        Ok(())
    } else {
        Err(
            "Azure requires 3 to 63 lowercase letters, digits and hyphens, starting and ending \
             with a letter or digit, with no two hyphens in a row",
        )
    }
}

fn read_delivery_attributes(
    value: &Value,
    path: &str,
    found: &mut Found,
) -> Vec<DeliveryAttribute> {
    let Some(entries) = value.as_array() else {
        found.push(format!("{path} is {}; expected a list", describe(value)));
        return Vec::new();
    };
    if entries.len() > MAX_DELIVERY_ATTRIBUTES {
        found.push(format!(
            "{path} has {} headers; Azure allows at most {MAX_DELIVERY_ATTRIBUTES}",
            entries.len()
        ));
    }
    let mut attributes: Vec<DeliveryAttribute> = Vec::new();
    for (i, entry) in entries.iter().enumerate() {
        let entry_path = format!("{path}[{i}]");
        let Some(attribute) = read_delivery_attribute(entry, &entry_path, found) else {
            continue;
        };
        if let Some(earlier) = attributes
            .iter()
            .find(|a| a.name().eq_ignore_ascii_case(attribute.name()))
        {
            // Header names ignore case; two mappings for one header would race.
            found.push(format!(
                "{entry_path}.name is \"{}\"; header \"{}\" is already mapped",
                attribute.name(),
                earlier.name()
            ));
            continue;
        }
        attributes.push(attribute);
    }
    attributes
}

fn read_delivery_attribute(
    value: &Value,
    path: &str,
    found: &mut Found,
) -> Option<DeliveryAttribute> {
    let Some(object) = value.as_object() else {
        found.push(format!("{path} is {}; expected an object", describe(value)));
        return None;
    };
    check_properties(object, &["name", "type", "properties"], path, found);
    let name =
        read_required_string(object, "name", path, found).and_then(|name| match check_header_name(
            name,
        ) {
            Ok(()) => Some(name.to_owned()),
            Err(reason) => {
                found.push(format!("{path}.name is {}; {reason}", quote(name)));
                None
            }
        });
    let kind = match object.get("type") {
        None => {
            found.push(format!("{path}.type is missing"));
            return None;
        }
        Some(Value::String(kind)) if kind == "Static" || kind == "Dynamic" => kind.as_str(),
        Some(other) => {
            found.push(format!(
                "{path}.type is {}; valid values are Static, Dynamic",
                describe(other)
            ));
            return None;
        }
    };
    let properties_path = join(path, "properties");
    let properties = match object.get("properties") {
        Some(Value::Object(properties)) => properties,
        None => {
            found.push(format!("{properties_path} is missing"));
            return None;
        }
        Some(other) => {
            found.push(format!(
                "{properties_path} is {}; expected an object",
                describe(other)
            ));
            return None;
        }
    };

    if kind == "Static" {
        check_properties(properties, &["value", "isSecret"], &properties_path, found);
        let secret = match properties.get("isSecret") {
            None | Some(Value::Null) => false,
            Some(Value::Bool(secret)) => *secret,
            Some(other) => {
                found.push(format!(
                    "{properties_path}.isSecret is {}; expected true or false",
                    describe(other)
                ));
                false
            }
        };
        let value = read_required_string(properties, "value", &properties_path, found)?;
        // Never quote a secret's value back.
        let shown = if secret {
            "the secret value".to_owned()
        } else {
            format!("{properties_path}.value")
        };
        if value.len() > MAX_DELIVERY_ATTRIBUTE_VALUE_BYTES {
            found.push(format!(
                "{shown} is {} bytes long; Azure allows at most {MAX_DELIVERY_ATTRIBUTE_VALUE_BYTES}",
                value.len()
            ));
            return None;
        }
        if value.chars().any(|c| c.is_control() && c != '\t') {
            found.push(format!(
                "{shown} contains a control character (such as a line break), which a header \
                 value cannot carry"
            ));
            return None;
        }
        Some(DeliveryAttribute::Static {
            name: name?,
            value: value.to_owned(),
            secret,
        })
    } else {
        check_properties(properties, &["sourceField"], &properties_path, found);
        let field = read_required_string(properties, "sourceField", &properties_path, found)?;
        if field.is_empty() || field.split('.').any(str::is_empty) {
            found.push(format!(
                "{properties_path}.sourceField is {}; expected an event field like \
                 \"data.key1\" or \"subject\"",
                quote(field)
            ));
            return None;
        }
        Some(DeliveryAttribute::Dynamic {
            name: name?,
            source_field: field.to_owned(),
        })
    }
}

/// An HTTP header name (an RFC 9110 token) that Event Grid leaves to subscribers.
fn check_header_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("a header name must not be empty".to_owned());
    }
    if let Some(bad) = name
        .chars()
        .find(|&c| !(c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c)))
    {
        return Err(format!("{bad:?} cannot appear in an HTTP header name"));
    }
    if name
        .get(..4)
        .is_some_and(|prefix| prefix.eq_ignore_ascii_case(protocol::RESERVED_HEADER_PREFIX))
    {
        return Err("the aeg- prefix is reserved for Event Grid's own headers".to_owned());
    }
    Ok(())
}

/// A JSON value read like `serde_json::Value`, except that an object with the same property
/// twice is an error (serde_json keeps the last one silently, hiding an edit that had no effect).
struct Strict(Value);

impl<'de> Deserialize<'de> for Strict {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(StrictVisitor).map(Strict)
    }
}

struct StrictVisitor;

impl<'de> Visitor<'de> for StrictVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, b: bool) -> Result<Value, E> {
        Ok(Value::Bool(b))
    }

    fn visit_i64<E>(self, n: i64) -> Result<Value, E> {
        Ok(Value::from(n))
    }

    fn visit_u64<E>(self, n: u64) -> Result<Value, E> {
        Ok(Value::from(n))
    }

    fn visit_f64<E>(self, n: f64) -> Result<Value, E> {
        // JSON has no NaN or infinity, so `from` never produces null here.
        Ok(Value::from(n))
    }

    fn visit_str<E>(self, text: &str) -> Result<Value, E> {
        Ok(Value::String(text.to_owned()))
    }

    fn visit_string<E>(self, text: String) -> Result<Value, E> {
        Ok(Value::String(text))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(Strict(item)) = seq.next_element()? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut object = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if object.contains_key(&key) {
                return Err(de::Error::custom(format!(
                    "property {} appears twice in one object",
                    quote(&key)
                )));
            }
            let Strict(value) = map.next_value()?;
            object.insert(key, value);
        }
        Ok(Value::Object(object))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ORIGIN: &str = "infra/subscriptions.json";

    fn repo_file() -> SubscriptionsFile {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("infra/subscriptions.json");
        SubscriptionsFile::load(&path).unwrap_or_else(|e| panic!("{e}"))
    }

    /// A valid file with one topic "orders" and one subscription "order-processor" whose
    /// JSON is `subscription` merged over a minimal valid one.
    fn with_subscription(subscription: serde_json::Value) -> String {
        let mut base = serde_json::json!({
            "name": "order-processor",
            "destination": {
                "endpointType": "AzureFunction",
                "properties": { "functionName": "OrderProcessor" }
            }
        });
        if let (Some(base), Some(extra)) = (base.as_object_mut(), subscription.as_object()) {
            for (k, v) in extra {
                base.insert(k.clone(), v.clone());
            }
        }
        serde_json::json!({
            "topics": [{ "name": "orders", "inputSchema": "EventGridSchema", "subscriptions": [base] }]
        })
        .to_string()
    }

    fn lines_of(json: &str) -> Vec<String> {
        match SubscriptionsFile::parse(json, ORIGIN) {
            Ok(file) => panic!("expected errors, got {file:#?}"),
            Err(e) => e.to_string().lines().map(str::to_owned).collect(),
        }
    }

    fn one_line(json: &str) -> String {
        let mut all = lines_of(json);
        assert_eq!(all.len(), 1, "expected one problem, got {all:#?}");
        all.remove(0)
    }

    const SUB: &str =
        "infra/subscriptions.json: topic \"orders\", subscription \"order-processor\": ";

    #[test]
    fn the_repository_file_loads_with_both_subscriptions() {
        let file = repo_file();
        assert_eq!(file.topics.len(), 1);
        let orders = file.topic("orders").expect("topic orders");
        assert_eq!(orders.input_schema, Schema::EventGrid);
        let names: Vec<&str> = orders
            .subscriptions
            .iter()
            .map(|s| s.name.as_str())
            .collect();
        assert_eq!(names, ["order-processor", "email-notifier"]);

        let functions: Vec<&Destination> = orders
            .subscriptions
            .iter()
            .map(|s| &s.destination)
            .collect();
        assert_eq!(
            functions,
            [
                &Destination::AzureFunction {
                    function_name: "OrderProcessor".into()
                },
                &Destination::AzureFunction {
                    function_name: "EmailNotifier".into()
                },
            ]
        );
        // The choreography: each function gets its trigger's type only.
        let types: Vec<&[String]> = orders
            .subscriptions
            .iter()
            .map(|s| s.filter.included_event_types())
            .collect();
        assert_eq!(
            types,
            [
                &["NewOrder".to_owned()][..],
                &["OrderAccepted".to_owned()][..]
            ]
        );
        for subscription in &orders.subscriptions {
            assert_eq!(subscription.delivery_schema, Schema::EventGrid);
            assert_eq!(
                subscription.dead_letter,
                Some(DeadLetter {
                    container: "dead-letters".into()
                })
            );
            assert_eq!(subscription.retry.max_delivery_attempts, 30);
            assert_eq!(
                subscription.retry.event_time_to_live,
                Duration::from_secs(24 * 60 * 60)
            );
            assert_eq!(
                subscription.batching,
                Batching {
                    max_events: 1,
                    preferred_bytes: 64 * 1024
                }
            );
            assert!(subscription.delivery_attributes.is_empty());
        }
    }

    #[test]
    fn the_repository_filter_lets_new_orders_through_and_nothing_else() {
        let file = repo_file();
        let subscription = file
            .topic("ORDERS")
            .and_then(|t| t.subscription("Order-Processor"))
            .expect("lookups ignore case");
        let event = |event_type: &str| {
            serde_json::json!({"id": "1", "eventType": event_type, "subject": "orders/1",
                "eventTime": "2024-01-01T00:00:00Z", "data": {}, "dataVersion": "1.0"})
        };
        assert!(subscription.filter.matches(
            &crate::json::Json::from(&event("NewOrder")),
            Schema::EventGrid
        ));
        assert!(!subscription.filter.matches(
            &crate::json::Json::from(&event("OrderAccepted")),
            Schema::EventGrid
        ));
    }

    #[test]
    fn a_missing_file_names_the_path() {
        let error = SubscriptionsFile::load(Path::new("no/such/subscriptions.json")).unwrap_err();
        assert_eq!(
            error.to_string(),
            "failed to read the subscriptions file no/such/subscriptions.json"
        );
        assert!(std::error::Error::source(&error).is_some());
    }

    #[test]
    fn a_json_syntax_error_names_line_and_column() {
        let error = SubscriptionsFile::parse(
            "{\n  \"topics\": [\n    {\"name\": \"orders\",}\n  ]\n}",
            ORIGIN,
        )
        .unwrap_err();
        match &error {
            ConfigError::Syntax { line, column, .. } => assert_eq!((*line, *column), (3, 23)),
            other => panic!("expected a syntax error, got {other:?}"),
        }
        assert_eq!(
            error.to_string(),
            "infra/subscriptions.json: invalid JSON at line 3, column 23: trailing comma"
        );
    }

    #[test]
    fn a_property_given_twice_is_an_error_with_its_position() {
        let error =
            SubscriptionsFile::parse("{\"topics\": [], \"topics\": []}", ORIGIN).unwrap_err();
        let text = error.to_string();
        assert!(
            text.starts_with("infra/subscriptions.json: invalid JSON at line 1, column "),
            "{text}"
        );
        assert!(
            text.ends_with("property \"topics\" appears twice in one object"),
            "{text}"
        );
    }

    #[test]
    fn minimal_subscriptions_take_azures_defaults() {
        let file = SubscriptionsFile::parse(&with_subscription(serde_json::json!({})), ORIGIN)
            .unwrap_or_else(|e| panic!("{e}"));
        let subscription = &file.topics[0].subscriptions[0];
        assert_eq!(subscription.retry, RetryPolicy::default());
        assert_eq!(subscription.retry.max_delivery_attempts, 30);
        assert_eq!(
            subscription.retry.event_time_to_live,
            Duration::from_secs(1440 * 60)
        );
        assert_eq!(subscription.batching, Batching::default());
        assert_eq!(subscription.batching.max_events, 1);
        assert_eq!(subscription.dead_letter, None);
        assert_eq!(subscription.filter, Filter::default());
        assert_eq!(subscription.delivery_schema, Schema::EventGrid);
        assert!(subscription.delivery_attributes.is_empty());
    }

    #[test]
    fn a_topic_without_input_schema_or_subscriptions_is_an_event_grid_topic_with_none() {
        let file = SubscriptionsFile::parse(r#"{"topics": [{"name": "orders"}]}"#, ORIGIN)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(file.topics[0].input_schema, Schema::EventGrid);
        assert!(file.topics[0].subscriptions.is_empty());
    }

    #[test]
    fn delivery_schema_defaults_to_the_topics_input_schema() {
        let json = with_subscription(serde_json::json!({}))
            .replace("EventGridSchema", "CloudEventSchemaV1_0");
        let file = SubscriptionsFile::parse(&json, ORIGIN).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(file.topics[0].input_schema, Schema::CloudEvents);
        assert_eq!(
            file.topics[0].subscriptions[0].delivery_schema,
            Schema::CloudEvents
        );
    }

    #[test]
    fn event_grid_input_may_be_delivered_as_cloud_events() {
        let json =
            with_subscription(serde_json::json!({"eventDeliverySchema": "CloudEventSchemaV1_0"}));
        let file = SubscriptionsFile::parse(&json, ORIGIN).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            file.topics[0].subscriptions[0].delivery_schema,
            Schema::CloudEvents
        );
    }

    #[test]
    fn cloud_events_input_cannot_be_delivered_in_the_event_grid_schema() {
        let json = with_subscription(serde_json::json!({"eventDeliverySchema": "EventGridSchema"}))
            .replacen(
                "\"inputSchema\":\"EventGridSchema\"",
                "\"inputSchema\":\"CloudEventSchemaV1_0\"",
                1,
            );
        assert_eq!(
            one_line(&json),
            format!(
                "{SUB}The specified EventDeliverySchema value \"EventGridSchema\" cannot be used \
                 in combination with the topic's input schema of CloudEventSchemaV1_0"
            )
        );
    }

    #[test]
    fn batching_settings_are_read_and_the_missing_one_defaults() {
        let read = |properties: serde_json::Value| {
            let mut props = serde_json::json!({"functionName": "OrderProcessor"});
            if let (Some(p), Some(extra)) = (props.as_object_mut(), properties.as_object()) {
                p.extend(extra.clone());
            }
            let json = with_subscription(serde_json::json!({
                "destination": {"endpointType": "AzureFunction", "properties": props}
            }));
            SubscriptionsFile::parse(&json, ORIGIN)
                .unwrap_or_else(|e| panic!("{e}"))
                .topics[0]
                .subscriptions[0]
                .batching
        };
        assert_eq!(
            read(
                serde_json::json!({"maxEventsPerBatch": 10, "preferredBatchSizeInKilobytes": 128})
            ),
            Batching {
                max_events: 10,
                preferred_bytes: 128 * 1024
            }
        );
        assert_eq!(
            read(serde_json::json!({"maxEventsPerBatch": 5000})),
            Batching {
                max_events: 5000,
                preferred_bytes: 64 * 1024
            }
        );
        assert_eq!(
            read(serde_json::json!({"preferredBatchSizeInKilobytes": 1024})),
            Batching {
                max_events: 1,
                preferred_bytes: 1024 * 1024
            }
        );
    }

    #[test]
    fn retry_policy_limits_are_enforced() {
        let json = with_subscription(serde_json::json!({
            "retryPolicy": {"maxDeliveryAttempts": 31, "eventTimeToLiveInMinutes": 0}
        }));
        assert_eq!(
            lines_of(&json),
            [
                format!("{SUB}retryPolicy.maxDeliveryAttempts is 31; Azure allows 1 to 30"),
                format!("{SUB}retryPolicy.eventTimeToLiveInMinutes is 0; Azure allows 1 to 1440"),
            ]
        );
        let json = with_subscription(serde_json::json!({
            "retryPolicy": {"maxDeliveryAttempts": "30", "eventTimeToLiveInMinutes": 1440.5}
        }));
        assert_eq!(
            lines_of(&json),
            [
                format!(
                    "{SUB}retryPolicy.maxDeliveryAttempts is \"30\"; expected a whole number from 1 to 30"
                ),
                format!(
                    "{SUB}retryPolicy.eventTimeToLiveInMinutes is 1440.5; Azure allows whole numbers from 1 to 1440"
                ),
            ]
        );
    }

    #[test]
    fn retry_policy_extremes_are_accepted() {
        let json = with_subscription(serde_json::json!({
            "retryPolicy": {"maxDeliveryAttempts": 1, "eventTimeToLiveInMinutes": 1}
        }));
        let file = SubscriptionsFile::parse(&json, ORIGIN).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            file.topics[0].subscriptions[0].retry,
            RetryPolicy {
                max_delivery_attempts: 1,
                event_time_to_live: Duration::from_secs(60)
            }
        );
    }

    #[test]
    fn batching_limits_are_enforced() {
        let json = with_subscription(serde_json::json!({
            "destination": {"endpointType": "AzureFunction", "properties": {
                "functionName": "OrderProcessor", "maxEventsPerBatch": 5001, "preferredBatchSizeInKilobytes": 0
            }}
        }));
        assert_eq!(
            lines_of(&json),
            [
                format!(
                    "{SUB}destination.properties.maxEventsPerBatch is 5001; Azure allows 1 to 5000"
                ),
                format!(
                    "{SUB}destination.properties.preferredBatchSizeInKilobytes is 0; Azure allows 1 to 1024"
                ),
            ]
        );
    }

    #[test]
    fn names_must_follow_azures_rules() {
        let json = r#"{"topics": [
            {"name": "or", "subscriptions": [
                {"name": "a_b", "destination": {"endpointType": "AzureFunction", "properties": {"functionName": "F"}}}
            ]},
            {"name": "this-topic-name-is-far-too-long-for-azure-to-accept-it", "subscriptions": []},
            {"subscriptions": [
                {"destination": {"endpointType": "AzureFunction", "properties": {"functionName": "F"}}}
            ]}
        ]}"#;
        assert_eq!(
            lines_of(json),
            [
                "infra/subscriptions.json: topic \"or\": name is \"or\"; Azure requires 3 to 50 characters, each a letter, digit or hyphen",
                "infra/subscriptions.json: topic \"or\", subscription \"a_b\": name is \"a_b\"; Azure requires 3 to 64 characters, each a letter, digit or hyphen",
                "infra/subscriptions.json: topic \"this-topic-name-is-far-too-long-for-azure-to-accept-it\": name is \"this-topic-name-is-far-too-long-for-azure-to-accept-it\"; Azure requires 3 to 50 characters, each a letter, digit or hyphen",
                "infra/subscriptions.json: topics[2]: name is missing",
                "infra/subscriptions.json: topics[2], subscriptions[0]: name is missing",
            ]
        );
    }

    #[test]
    fn subscription_names_are_unique_per_topic_ignoring_case() {
        let json = r#"{"topics": [{"name": "orders", "subscriptions": [
            {"name": "order-processor", "destination": {"endpointType": "AzureFunction", "properties": {"functionName": "F"}}},
            {"name": "Order-Processor", "destination": {"endpointType": "AzureFunction", "properties": {"functionName": "F"}}}
        ]}, {"name": "other", "subscriptions": [
            {"name": "order-processor", "destination": {"endpointType": "AzureFunction", "properties": {"functionName": "F"}}}
        ]}]}"#;
        assert_eq!(
            one_line(json),
            "infra/subscriptions.json: topic \"orders\", subscription \"Order-Processor\": name \"Order-Processor\" repeats subscription \"order-processor\"; subscription names must be unique within a topic, ignoring case"
        );
    }

    #[test]
    fn topic_names_are_unique_ignoring_case() {
        let json = r#"{"topics": [{"name": "orders"}, {"name": "ORDERS"}]}"#;
        assert_eq!(
            one_line(json),
            "infra/subscriptions.json: topic \"ORDERS\": name \"ORDERS\" repeats topic \"orders\"; topic names must be unique, ignoring case"
        );
    }

    #[test]
    fn unknown_properties_are_named_wherever_they_are() {
        let json = r#"{"topic": [], "topics": [{"name": "orders", "inputschema": "EventGridSchema", "subscriptions": [
            {"name": "order-processor",
             "destination": {"endpointType": "AzureFunction", "properties": {"functionName": "F", "maxEventPerBatch": 5}},
             "retryPolicy": {"maxDeliveryAttempts": 3, "ttl": 5},
             "deadLetter": {"blobContainerName": "dead-letters", "resourceId": "x"},
             "labels": []}
        ]}]}"#;
        let all = lines_of(json);
        let expected_starts = [
            "infra/subscriptions.json: unknown property \"topic\" (did you mean \"topics\"?); known properties are topics",
            "infra/subscriptions.json: topic \"orders\": unknown property \"inputschema\" (did you mean \"inputSchema\"?)",
            "infra/subscriptions.json: topic \"orders\", subscription \"order-processor\": unknown property \"labels\"; known properties are name, destination, filter, eventDeliverySchema, retryPolicy, deadLetter",
            "infra/subscriptions.json: topic \"orders\", subscription \"order-processor\": unknown property \"maxEventPerBatch\" in destination.properties (did you mean \"maxEventsPerBatch\"?)",
            "infra/subscriptions.json: topic \"orders\", subscription \"order-processor\": unknown property \"ttl\" in retryPolicy; known properties are maxDeliveryAttempts, eventTimeToLiveInMinutes",
            "infra/subscriptions.json: topic \"orders\", subscription \"order-processor\": unknown property \"resourceId\" in deadLetter; known properties are blobContainerName",
        ];
        assert_eq!(all.len(), expected_starts.len(), "{all:#?}");
        for (line, start) in all.iter().zip(expected_starts) {
            assert!(
                line.starts_with(start),
                "\n{line}\ndoes not start with\n{start}"
            );
        }
    }

    #[test]
    fn every_problem_in_the_file_is_reported_at_once() {
        let json = r#"{"topics": [{"name": "orders", "inputSchema": "CloudEventSchemaV1_0", "subscriptions": [
            {"name": "order-processor",
             "destination": {"endpointType": "WebHook", "properties": {"endpointUrl": "ftp://example.com/x", "maxEventsPerBatch": 0}},
             "filter": {"advancedFilters": [{"operatorType": "NumberLessThen", "key": "data.total", "value": 5}]},
             "eventDeliverySchema": "EventGridSchema",
             "retryPolicy": {"maxDeliveryAttempts": 31},
             "deadLetter": {"blobContainerName": "Dead_Letters"}},
            {"name": "email-notifier",
             "destination": {"endpointType": "AzureFunction", "properties": {"functionName": ""}}}
        ]}]}"#;
        let all = lines_of(json);
        let email = "infra/subscriptions.json: topic \"orders\", subscription \"email-notifier\": ";
        let expected = [
            format!(
                "{SUB}destination.properties.endpointUrl is \"ftp://example.com/x\"; the scheme is \"ftp\"; Azure requires https (the emulator also allows http for local receivers)"
            ),
            format!("{SUB}destination.properties.maxEventsPerBatch is 0; Azure allows 1 to 5000"),
            format!(
                "{SUB}filter.advancedFilters[0].operatorType is \"NumberLessThen\"; valid operators are NumberIn, NumberNotIn, NumberLessThan, NumberGreaterThan, NumberLessThanOrEquals, NumberGreaterThanOrEquals, NumberInRange, NumberNotInRange, BoolEquals, StringIn, StringNotIn, StringBeginsWith, StringNotBeginsWith, StringEndsWith, StringNotEndsWith, StringContains, StringNotContains, IsNullOrUndefined, IsNotNull"
            ),
            format!(
                "{SUB}The specified EventDeliverySchema value \"EventGridSchema\" cannot be used in combination with the topic's input schema of CloudEventSchemaV1_0"
            ),
            format!("{SUB}retryPolicy.maxDeliveryAttempts is 31; Azure allows 1 to 30"),
            format!(
                "{SUB}deadLetter.blobContainerName is \"Dead_Letters\"; Azure requires 3 to 63 lowercase letters, digits and hyphens, starting and ending with a letter or digit, with no two hyphens in a row"
            ),
            format!(
                "{email}destination.properties.functionName is \"\"; a function name is a letter followed by up to 127 letters, digits, '_' or '-' (and not \"host\")"
            ),
        ];
        assert_eq!(all, expected);
        match SubscriptionsFile::parse(json, ORIGIN) {
            Err(e) => assert_eq!(e.problems().len(), 7),
            Ok(_) => unreachable!(),
        }
    }

    #[test]
    fn schemas_must_be_known_values() {
        let json =
            with_subscription(serde_json::json!({"eventDeliverySchema": "CustomInputSchema"}))
                .replacen(
                    "\"inputSchema\":\"EventGridSchema\"",
                    "\"inputSchema\":\"eventgridschema\"",
                    1,
                );
        assert_eq!(
            lines_of(&json),
            [
                "infra/subscriptions.json: topic \"orders\": inputSchema is \"eventgridschema\"; valid values are EventGridSchema, CloudEventSchemaV1_0".to_owned(),
                format!("{SUB}eventDeliverySchema is \"CustomInputSchema\"; the emulator has no custom schema mapping, use one of EventGridSchema, CloudEventSchemaV1_0"),
            ]
        );
    }

    #[test]
    fn destinations_must_be_function_or_webhook_with_their_properties() {
        let bad = |destination: serde_json::Value| {
            one_line(&with_subscription(
                serde_json::json!({"destination": destination}),
            ))
        };
        assert_eq!(
            bad(serde_json::json!({"endpointType": "ServiceBusQueue", "properties": {}})),
            format!(
                "{SUB}destination.endpointType is \"ServiceBusQueue\"; the emulator delivers to AzureFunction and WebHook"
            )
        );
        assert_eq!(
            bad(serde_json::json!({"endpointType": "WebHook", "properties": {}})),
            format!("{SUB}destination.properties.endpointUrl is missing")
        );
        assert_eq!(
            bad(serde_json::json!({"endpointType": "AzureFunction"})),
            format!("{SUB}destination.properties is missing")
        );
        assert_eq!(
            bad(
                serde_json::json!({"endpointType": "AzureFunction", "properties": {"functionName": "Order Processor"}})
            ),
            format!(
                "{SUB}destination.properties.functionName is \"Order Processor\"; a function name is a letter followed by up to 127 letters, digits, '_' or '-' (and not \"host\")"
            )
        );
        assert_eq!(
            bad(
                serde_json::json!({"endpointType": "AzureFunction", "properties": {"functionName": "host"}})
            ),
            format!(
                "{SUB}destination.properties.functionName is \"host\"; a function name is a letter followed by up to 127 letters, digits, '_' or '-' (and not \"host\")"
            )
        );
        assert_eq!(
            one_line(&with_subscription(serde_json::json!({"destination": null}))),
            format!("{SUB}destination is null; expected an object")
        );
    }

    #[test]
    fn webhook_urls_need_http_or_https_and_a_host() {
        let check = |url: &str| check_webhook_url(url).err();
        assert_eq!(
            check("https://receiver.example.com/api/events?code=abc"),
            None
        );
        assert_eq!(
            check("http://127.0.0.1:7071/runtime/webhooks/eventgrid"),
            None
        );
        assert_eq!(check("http://[::1]:8080/x"), None);
        assert_eq!(check("HTTPS://user:pw@example.com"), None);
        assert_eq!(check("http://localhost"), None);
        assert_eq!(
            check("example.com/x"),
            Some("expected an absolute URL like \"https://host/path\"".to_owned())
        );
        assert_eq!(check("https:///x"), Some("the URL has no host".to_owned()));
        assert_eq!(
            check("https://host:99999/"),
            Some("the port \"99999\" is not a number from 0 to 65535".to_owned())
        );
        assert_eq!(
            check("https://host:/"),
            Some("the port \"\" is not a number from 0 to 65535".to_owned())
        );
        assert_eq!(
            check("https://exa mple.com"),
            Some("a URL must not contain spaces or control characters".to_owned())
        );
        assert_eq!(
            check("https://ex<ample.com"),
            Some("the host \"ex<ample.com\" has characters a host name cannot have".to_owned())
        );
        assert_eq!(
            check("http://[::1/x"),
            Some("the IPv6 host is missing its closing ']'".to_owned())
        );
    }

    #[test]
    fn a_valid_webhook_destination_is_read() {
        let json = with_subscription(serde_json::json!({
            "destination": {"endpointType": "WebHook", "properties": {"endpointUrl": "http://127.0.0.1:9000/hook"}}
        }));
        let file = SubscriptionsFile::parse(&json, ORIGIN).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            file.topics[0].subscriptions[0].destination,
            Destination::WebHook {
                endpoint_url: "http://127.0.0.1:9000/hook".into()
            }
        );
    }

    #[test]
    fn dead_letter_container_names_follow_storage_rules() {
        for good in ["dead-letters", "abc", "a1-b2", &"a".repeat(63)] {
            assert_eq!(check_container_name(good), Ok(()), "{good}");
        }
        for bad in [
            "ab",
            "Dead",
            "-abc",
            "abc-",
            "a--b",
            "a_b",
            "a.b",
            &"a".repeat(64),
        ] {
            assert!(check_container_name(bad).is_err(), "{bad}");
        }
        assert_eq!(
            one_line(&with_subscription(serde_json::json!({"deadLetter": {}}))),
            format!("{SUB}deadLetter.blobContainerName is missing")
        );
        assert_eq!(
            one_line(&with_subscription(
                serde_json::json!({"deadLetter": "dead-letters"})
            )),
            format!(
                "{SUB}deadLetter is \"dead-letters\"; expected an object {{\"blobContainerName\": ...}} or null"
            )
        );
        let file = SubscriptionsFile::parse(
            &with_subscription(serde_json::json!({"deadLetter": null})),
            ORIGIN,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(file.topics[0].subscriptions[0].dead_letter, None);
    }

    fn with_mappings(mappings: serde_json::Value) -> String {
        with_subscription(serde_json::json!({
            "destination": {"endpointType": "WebHook", "properties": {
                "endpointUrl": "https://example.com/hook", "deliveryAttributeMappings": mappings
            }}
        }))
    }

    #[test]
    fn delivery_attribute_mappings_are_read() {
        let json = with_mappings(serde_json::json!([
            {"name": "x-api-key", "type": "Static", "properties": {"value": "s3cret", "isSecret": true}},
            {"name": "x-tenant", "type": "Static", "properties": {"value": "contoso"}},
            {"name": "x-order", "type": "Dynamic", "properties": {"sourceField": "data.orderId"}},
        ]));
        let file = SubscriptionsFile::parse(&json, ORIGIN).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            file.topics[0].subscriptions[0].delivery_attributes,
            [
                DeliveryAttribute::Static {
                    name: "x-api-key".into(),
                    value: "s3cret".into(),
                    secret: true
                },
                DeliveryAttribute::Static {
                    name: "x-tenant".into(),
                    value: "contoso".into(),
                    secret: false
                },
                DeliveryAttribute::Dynamic {
                    name: "x-order".into(),
                    source_field: "data.orderId".into()
                },
            ]
        );
    }

    #[test]
    fn delivery_attribute_mappings_follow_azures_rules() {
        let p = "destination.properties.deliveryAttributeMappings";
        let json = with_mappings(serde_json::json!([
            {"name": "aeg-custom", "type": "Static", "properties": {"value": "x"}},
            {"name": "AEG-Other", "type": "Dynamic", "properties": {"sourceField": "subject"}},
            {"name": "bad header", "type": "Static", "properties": {"value": "x"}},
            {"name": "x-big", "type": "Static", "properties": {"value": "v".repeat(4097)}},
            {"name": "x-key", "type": "Static", "properties": {"value": "k".repeat(4097), "isSecret": true}},
            {"name": "x-nl", "type": "Static", "properties": {"value": "a\r\nb"}},
            {"name": "x-field", "type": "Dynamic", "properties": {"sourceField": "data..id"}},
            {"name": "x-kind", "type": "Computed", "properties": {}},
            {"name": "x-dup", "type": "Dynamic", "properties": {"sourceField": "id"}},
            {"name": "X-Dup", "type": "Dynamic", "properties": {"sourceField": "id"}},
            {"name": "x-11", "type": "Dynamic", "properties": {"sourceField": "id"}},
        ]));
        assert_eq!(
            lines_of(&json),
            [
                format!("{SUB}{p} has 11 headers; Azure allows at most 10"),
                format!(
                    "{SUB}{p}[0].name is \"aeg-custom\"; the aeg- prefix is reserved for Event Grid's own headers"
                ),
                format!(
                    "{SUB}{p}[1].name is \"AEG-Other\"; the aeg- prefix is reserved for Event Grid's own headers"
                ),
                format!(
                    "{SUB}{p}[2].name is \"bad header\"; ' ' cannot appear in an HTTP header name"
                ),
                format!(
                    "{SUB}{p}[3].properties.value is 4097 bytes long; Azure allows at most 4096"
                ),
                format!("{SUB}the secret value is 4097 bytes long; Azure allows at most 4096"),
                format!(
                    "{SUB}{p}[5].properties.value contains a control character (such as a line break), which a header value cannot carry"
                ),
                format!(
                    "{SUB}{p}[6].properties.sourceField is \"data..id\"; expected an event field like \"data.key1\" or \"subject\""
                ),
                format!("{SUB}{p}[7].type is \"Computed\"; valid values are Static, Dynamic"),
                format!("{SUB}{p}[9].name is \"X-Dup\"; header \"x-dup\" is already mapped"),
            ]
        );
    }

    #[test]
    fn a_secret_value_is_never_quoted_back() {
        let json = with_mappings(serde_json::json!([
            {"name": "x-key", "type": "Static", "properties": {"value": "hunter2\n", "isSecret": true}},
        ]));
        let all = lines_of(&json).join("\n");
        assert!(!all.contains("hunter2"), "{all}");
    }

    #[test]
    fn filter_problems_carry_the_subscription_context() {
        let json = with_subscription(serde_json::json!({
            "filter": {"advancedFilters": [{"operatorType": "StringIn", "key": "data.a", "values": ["x".repeat(513)]}]}
        }));
        let line = one_line(&json);
        assert!(
            line.starts_with(&format!(
                "{SUB}filter.advancedFilters[0].values[0] is \"xxx"
            )),
            "{line}"
        );
        assert!(
            line.ends_with("(513 characters); Azure allows at most 512"),
            "{line}"
        );
    }

    #[test]
    fn the_file_must_be_an_object_with_a_topics_list() {
        assert_eq!(
            lines_of("[]"),
            ["infra/subscriptions.json: the file is []; expected an object {\"topics\": [...]}"]
        );
        assert_eq!(
            lines_of("{}"),
            ["infra/subscriptions.json: topics is missing"]
        );
        assert_eq!(
            lines_of(r#"{"topics": {}}"#),
            ["infra/subscriptions.json: topics is {}; expected a list"]
        );
    }

    #[test]
    fn resource_names_are_checked_by_their_newtypes() {
        assert!(TopicName::parse("orders").is_ok());
        assert!(TopicName::parse(&"a".repeat(51)).is_err());
        assert!(SubscriptionName::parse(&"a".repeat(64)).is_ok());
        assert!(SubscriptionName::parse(&"a".repeat(65)).is_err());
        assert!(SubscriptionName::parse("ab").is_err());
        assert!(SubscriptionName::parse("über-sub").is_err());
        let name = SubscriptionName::parse("order-processor").unwrap();
        assert_eq!(name.upper(), "ORDER-PROCESSOR");
        assert_eq!(name.to_string(), "order-processor");
    }
}
