//! Reading the file's JSON the way ARM does: a strict parse that refuses duplicate properties,
//! then each topic and subscription property checked against Azure's rules, with every problem
//! collected and given its context (file, topic, subscription, property path).

use std::time::Duration;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

use super::destination::read_destination;
use super::*;
use crate::emulator::arm_json::{check_properties, describe, join, quote};
use crate::emulator::filter::Filter;
use crate::eventgrid::Schema;

/// Problems found while reading one topic or subscription, before they get their context.
pub(super) type Found = Vec<String>;

pub(super) fn read_file(
    root: &Value,
    origin: &str,
    problems: &mut Vec<Problem>,
) -> SubscriptionsFile {
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

pub(super) fn read_required_string<'v>(
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
pub(super) fn read_integer(
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
pub(super) fn check_container_name(name: &str) -> Result<(), &'static str> {
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

/// A JSON value read like `serde_json::Value`, except that an object with the same property
/// twice is an error (serde_json keeps the last one silently, hiding an edit that had no effect).
pub(super) struct Strict(pub(super) Value);

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
