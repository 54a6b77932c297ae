//! A function's bindings as `function.json` declares them, read once into types: its trigger
//! (`eventGridTrigger` or `httpTrigger`), its inputs (`webPubSubConnection`) and its outputs
//! (`eventGrid`, `http`, `webPubSub`). Binding types are matched ignoring case, as the host's
//! binding providers do; binding names are kept exactly as written (the host matches them
//! case-sensitively against `Outputs`).
//!
//! Which settings a binding needs, and so whether its function loads, is decided by
//! [`FunctionManifest::load_error`](super::manifest::FunctionManifest::load_error), as the
//! extensions' validators decide it when the host indexes functions.

use anyhow::{Context, bail};
use serde_json::Value;

/// Where an `eventGrid` output binding publishes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OutputTarget {
    /// Identity-based: app setting `<prefix>__topicEndpointUri`. The stand-in publishes to the
    /// local emulator with the key in `<prefix>__topicKey` (a stand-in-only setting: the real host
    /// would use a managed identity here).
    Connection { prefix: String },
    /// Key-based: the names of the app settings holding the endpoint and the key.
    Settings {
        endpoint_setting: String,
        key_setting: String,
    },
}

/// A `webPubSub` output or `webPubSubConnection` input binding's service and hub, as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebPubSubBinding {
    /// The app setting (section) naming the service; `None` means the extension's default,
    /// `WebPubSubConnectionString`.
    pub connection: Option<String>,
    /// `hub`; `None` falls back to the `WebPubSubHub` app setting, as the extension's options do.
    pub hub: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OutputKind {
    EventGrid(OutputTarget),
    /// `http`: the trigger's response.
    Http,
    WebPubSub(WebPubSubBinding),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputBinding {
    pub name: String,
    pub kind: OutputKind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InputKind {
    /// `webPubSubConnection`: a client URL and token for the hub. `user_id` may be a binding
    /// expression (`{query.userid}`).
    WebPubSubConnection {
        service: WebPubSubBinding,
        user_id: Option<String>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputBinding {
    pub name: String,
    pub kind: InputKind,
}

/// An `httpTrigger` binding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpTrigger {
    /// `route` as written; `None` means the function's name (the host's default).
    pub route: Option<String>,
    /// `methods`, upper-cased; `None` (absent, null or empty) allows every method.
    pub methods: Option<Vec<String>>,
    /// `authLevel` as written (default `function`). Not enforced: Core Tools disables
    /// authorization locally ("When running locally, authorization is disabled regardless of the
    /// specified authLevel", functions-bindings-http-webhook-trigger), and so does the stand-in.
    pub auth_level: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TriggerKind {
    /// `eventGridTrigger`; `many` for `"cardinality": "many"` (one invocation gets every event of
    /// a delivery).
    EventGrid {
        many: bool,
    },
    Http(HttpTrigger),
}

/// What a function's `bindings` hold.
#[derive(Debug, Clone)]
pub struct Bindings {
    /// The trigger binding's name: its key in `Data`.
    pub trigger_name: String,
    pub trigger: TriggerKind,
    pub inputs: Vec<InputBinding>,
    pub outputs: Vec<OutputBinding>,
    /// Bindings the stand-in cannot serve: the function does not load, saying why.
    pub unsupported: Vec<String>,
}

fn is(binding: &Value, kind: &str) -> bool {
    binding["type"]
        .as_str()
        .is_some_and(|t| t.eq_ignore_ascii_case(kind))
}

fn text(binding: &Value, key: &str) -> Option<String> {
    binding[key].as_str().map(str::to_owned)
}

/// Reads `bindings` of the function at `path`. `Ok(None)`: no trigger the stand-in serves.
/// `Err`: a binding the host would refuse outright.
pub fn read(path: &std::path::Path, bindings: &[Value]) -> anyhow::Result<Option<Bindings>> {
    let name_of = |binding: &Value, what: &str| -> anyhow::Result<String> {
        text(binding, "name")
            .with_context(|| format!("{}: a {what} binding has no name", path.display()))
    };
    let mut trigger = None;
    let mut inputs = Vec::new();
    let mut outputs = Vec::new();
    let mut unsupported = Vec::new();
    for binding in bindings {
        if is(binding, "eventGridTrigger") {
            let many = binding["cardinality"]
                .as_str()
                .is_some_and(|c| c.eq_ignore_ascii_case("many"));
            trigger = Some((
                name_of(binding, "eventGridTrigger")?,
                TriggerKind::EventGrid { many },
            ));
        } else if is(binding, "httpTrigger") {
            let methods = binding["methods"]
                .as_array()
                .map(|m| {
                    m.iter()
                        .filter_map(Value::as_str)
                        .map(str::to_ascii_uppercase)
                        .collect::<Vec<_>>()
                })
                .filter(|m| !m.is_empty());
            trigger = Some((
                name_of(binding, "httpTrigger")?,
                TriggerKind::Http(HttpTrigger {
                    route: text(binding, "route").filter(|r| !r.is_empty()),
                    methods,
                    auth_level: text(binding, "authLevel").unwrap_or_else(|| "function".into()),
                }),
            ));
        } else if is(binding, "http") {
            outputs.push(OutputBinding {
                name: name_of(binding, "http")?,
                kind: OutputKind::Http,
            });
        } else if is(binding, "eventGrid") && binding["direction"] == "out" {
            let name = name_of(binding, "eventGrid")?;
            let target = match (
                text(binding, "connection"),
                text(binding, "topicEndpointUri"),
                text(binding, "topicKeySetting"),
            ) {
                (Some(prefix), None, None) => OutputTarget::Connection { prefix },
                (None, Some(endpoint_setting), Some(key_setting)) => OutputTarget::Settings {
                    endpoint_setting,
                    key_setting,
                },
                (Some(_), _, _) => bail!(
                    "{}: output {name:?} sets both connection and topicEndpointUri/topicKeySetting; the host refuses that",
                    path.display()
                ),
                _ => bail!(
                    "{}: output {name:?} needs either connection or topicEndpointUri and topicKeySetting",
                    path.display()
                ),
            };
            outputs.push(OutputBinding {
                name,
                kind: OutputKind::EventGrid(target),
            });
        } else if is(binding, "webPubSub") && binding["direction"] == "out" {
            outputs.push(OutputBinding {
                name: name_of(binding, "webPubSub")?,
                kind: OutputKind::WebPubSub(web_pubsub(binding)),
            });
        } else if is(binding, "webPubSubConnection") {
            // `clientProtocol: mqtt` (the MQTT client endpoint) is not served by the stand-in.
            if text(binding, "clientProtocol").is_some_and(|p| !p.eq_ignore_ascii_case("default")) {
                unsupported.push(format!(
                    "webPubSubConnection {} asks for clientProtocol {}; the stand-in serves the default protocol only",
                    binding["name"], binding["clientProtocol"]
                ));
            }
            inputs.push(InputBinding {
                name: name_of(binding, "webPubSubConnection")?,
                kind: InputKind::WebPubSubConnection {
                    service: web_pubsub(binding),
                    user_id: text(binding, "userId").filter(|u| !u.is_empty()),
                },
            });
        } else {
            unsupported.push(format!(
                "the binding {} (type {}) is not one the host stand-in supports (eventGridTrigger, httpTrigger, http, eventGrid, webPubSub, webPubSubConnection)",
                binding["name"], binding["type"]
            ));
        }
    }
    Ok(trigger.map(|(trigger_name, trigger)| Bindings {
        trigger_name,
        trigger,
        inputs,
        outputs,
        unsupported,
    }))
}

fn web_pubsub(binding: &Value) -> WebPubSubBinding {
    WebPubSubBinding {
        connection: text(binding, "connection").filter(|c| !c.is_empty()),
        hub: text(binding, "hub").filter(|h| !h.is_empty()),
    }
}
