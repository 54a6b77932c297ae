//! A subscription's `destination`: a webhook (its URL, batching and delivery attributes, the
//! custom headers Event Grid adds) or an Azure Function, read with Azure's rules.

use serde_json::Value;

use super::reader::{Found, read_integer, read_required_string};
use super::*;
use crate::emulator::arm_json::{check_properties, describe, join, quote};
use crate::eventgrid::protocol;

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

pub(super) fn read_destination(
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
pub(super) fn check_webhook_url(url: &str) -> Result<(), String> {
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
