//! Output bindings, carried out after the handler answered 2xx, in the order function.json lists
//! them, as the host's `FunctionBinding`s do it after the function returned. If one fails the
//! invocation fails ("Error while handling parameter … after function returned", webjobs-sdk
//! `FunctionExecutor`): an Event Grid delivery is answered 500 and redelivered, an HTTP request is
//! answered 500.
//!
//! - `eventGrid`: what the handler returned (an object, an array, or JSON text of either; null or
//!   `[]` sends nothing) is published in one request, the schema taken from the first event
//!   (`FunctionBinding.cs`, `EventGridAsyncCollector.FlushAsync`).
//! - `webPubSub`: an action object or an array of them, parsed as the extension parses them
//!   ([`crate::webpubsub::actions::parse`]); each action is one REST call to the binding's hub,
//!   in order, each awaited before the next (`WebPubSubAsyncCollector.AddAsync`). An action that
//!   does not parse fails the invocation before any is sent (the extension converts the whole
//!   `JArray` first).
//! - `http` is not handled here: it is the HTTP trigger's response (`super::http`).
//!
//! Output names are matched case-sensitively (`TryGetValue` in
//! `HttpScriptInvocationResultExtensions`): a value under another spelling is dropped, with a
//! warning here (the host drops it silently).

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::value::RawValue;

use super::HostState;
use super::manifest::{FunctionManifest, OutputKind, OutputTarget, WebPubSubBinding};
use super::webpubsub;
use crate::eventgrid::publisher::{PublishAuth, PublishError, PublisherClient};
use crate::eventgrid::sas::TopicKey;
use crate::eventgrid::{RawObject, Schema};

/// Why an output binding failed; either way the invocation fails (and Event Grid retries it), as
/// the real host does.
#[derive(Debug, thiserror::Error)]
pub enum OutputError {
    /// The handler's output or the binding's settings cannot work: a retry fails the same way
    /// until the handler or the settings change.
    #[error("{function}: {message}")]
    Unusable { function: String, message: String },
    /// The service refused or did not answer; a retry may succeed.
    #[error("{function}: sending its output failed: {message}")]
    Send {
        function: String,
        message: String,
        transient: bool,
    },
}

impl OutputError {
    pub fn unusable(function: &str, message: impl Into<String>) -> Self {
        Self::Unusable {
            function: function.to_owned(),
            message: message.into(),
        }
    }

    /// Whether a redelivery may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            Self::Send {
                transient: true,
                ..
            }
        )
    }
}

/// Carries out `function`'s output bindings (but `http`) with what the handler answered.
pub async fn apply(
    host: &HostState,
    function: &FunctionManifest,
    outputs: &BTreeMap<String, Box<RawValue>>,
    invocation_id: &str,
) -> Result<(), OutputError> {
    for name in outputs.keys() {
        if !function.outputs.iter().any(|b| &b.name == name) {
            tracing::warn!(
                function = %function.name,
                invocation_id,
                "Outputs has {name:?}, which names no output binding of {} (names are case-sensitive); the host drops it",
                function.name
            );
        }
    }
    for binding in &function.outputs {
        let Some(value) = outputs.get(&binding.name) else {
            continue;
        };
        match &binding.kind {
            OutputKind::Http => {}
            OutputKind::EventGrid(target) => {
                publish_events(host, &function.name, target, value).await?
            }
            OutputKind::WebPubSub(service) => {
                send_actions(host, &function.name, service, value, invocation_id).await?
            }
        }
    }
    Ok(())
}

async fn send_actions(
    host: &HostState,
    function: &str,
    service: &WebPubSubBinding,
    value: &RawValue,
    invocation_id: &str,
) -> Result<(), OutputError> {
    // A bare string: what the extension makes of it is not known here; the stand-in reads it as
    // it reads any other value, and `parse` refuses it.
    let value: serde_json::Value = serde_json::from_str(value.get())
        .map_err(|e| OutputError::unusable(function, e.to_string()))?;
    let actions = crate::webpubsub::actions::parse(&value)
        .map_err(|e| OutputError::unusable(function, format!("webPubSub output: {e}")))?;
    if actions.is_empty() {
        return Ok(());
    }
    let (client, hub) = webpubsub::client(host, service, "WebPubSub")
        .map_err(|e| OutputError::unusable(function, e))?;
    for (i, action) in actions.iter().enumerate() {
        client
            .apply(&hub, action)
            .await
            .map_err(|e| OutputError::Send {
                function: function.to_owned(),
                message: format!("webPubSub action {} of {}: {e}", i + 1, actions.len()),
                transient: e.is_transient(),
            })?;
    }
    tracing::info!(function, invocation_id, hub = %hub, actions = actions.len(), "webPubSub output sent");
    Ok(())
}

/// The events an `eventGrid` output holds: an object, an array of them, or JSON text of either.
/// `Err` says why they are not events.
fn output_events(value: &RawValue) -> Result<Vec<RawObject>, String> {
    let text = value.get().trim();
    let text = if text.starts_with('"') {
        serde_json::from_str::<String>(text)
            .map_err(|e| format!("the output is a string that is not JSON: {e}"))?
    } else {
        text.to_owned()
    };
    let items: Vec<Box<RawValue>> = match text.trim_start().as_bytes().first() {
        Some(b'[') => serde_json::from_str(&text).map_err(|e| e.to_string())?,
        Some(b'n') if text.trim() == "null" => vec![],
        _ => vec![RawValue::from_string(text).map_err(|e| e.to_string())?],
    };
    items
        .iter()
        .map(|item| {
            serde_json::from_str(item.get())
                .map_err(|e| format!("an output event is not a JSON object: {e}"))
        })
        .collect()
}

async fn publish_events(
    host: &HostState,
    function: &str,
    target: &OutputTarget,
    value: &RawValue,
) -> Result<(), OutputError> {
    let events = output_events(value).map_err(|e| OutputError::unusable(function, e))?;
    if events.is_empty() {
        return Ok(());
    }
    let (endpoint_setting, key_setting) = match target {
        OutputTarget::Connection { prefix } => (
            format!("{prefix}__topicEndpointUri"),
            format!("{prefix}__topicKey"),
        ),
        OutputTarget::Settings {
            endpoint_setting,
            key_setting,
        } => (endpoint_setting.clone(), key_setting.clone()),
    };
    // Checked when the function loaded.
    let endpoint = host
        .settings
        .get(&endpoint_setting)
        .cloned()
        .unwrap_or_default();
    let key = host
        .settings
        .get(&key_setting)
        .ok_or_else(|| OutputError::unusable(function, format!("the output binding needs the topic key in {key_setting} (the local stand-in publishes with a key)")))?;
    let key = TopicKey::parse(key)
        .map_err(|e| OutputError::unusable(function, format!("{key_setting}: {e}")))?;
    // The extension picks the schema from the first event, as the real one does.
    let schema = if events[0].contains_key("eventType") {
        Schema::EventGrid
    } else {
        Schema::CloudEvents
    };
    let client = cached_publisher(host, &endpoint_setting, &endpoint, key)
        .map_err(|e| OutputError::unusable(function, e.to_string()))?;
    client
        .publish(schema, &events)
        .await
        .map_err(|e| OutputError::Send {
            function: function.to_owned(),
            message: e.to_string(),
            transient: true,
        })?;
    tracing::info!(function, events = events.len(), endpoint = %endpoint, "output binding published");
    Ok(())
}

/// The publisher for one output target, built on first use and kept: building one loads the
/// platform's root certificates, far too slow to repeat per invocation. Keyed by the endpoint
/// setting: the host's settings are fixed for its lifetime, as the real host's are.
fn cached_publisher(
    host: &HostState,
    endpoint_setting: &str,
    endpoint: &str,
    key: TopicKey,
) -> Result<Arc<PublisherClient>, PublishError> {
    let mut publishers = host
        .publishers
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some(client) = publishers.get(endpoint_setting) {
        return Ok(client.clone());
    }
    let client = Arc::new(PublisherClient::new(endpoint, PublishAuth::Key(key))?);
    publishers.insert(endpoint_setting.to_owned(), client.clone());
    Ok(client)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw_value(text: &str) -> Box<RawValue> {
        RawValue::from_string(text.to_owned()).unwrap()
    }

    #[test]
    fn outputs_may_be_objects_arrays_or_json_text() {
        assert_eq!(output_events(&raw_value(r#"{"id":"1"}"#)).unwrap().len(), 1);
        assert_eq!(
            output_events(&raw_value(r#"[{"id":"1"},{"id":"2"}]"#))
                .unwrap()
                .len(),
            2
        );
        assert_eq!(
            output_events(&raw_value(r#""[{\"id\":\"1\"}]""#))
                .unwrap()
                .len(),
            1
        );
        assert!(output_events(&raw_value("null")).unwrap().is_empty());
        assert!(output_events(&raw_value("[1]")).is_err());
    }
}
