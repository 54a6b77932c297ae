//! `ordergrid publish`: sends events to any Event Grid topic endpoint, local or Azure, through
//! the azure_core pipeline ([`PublisherClient`]): a NewOrder built from flags, or events from a
//! JSON file or stdin, in the Event Grid or CloudEvents schema, with a key, a SAS token it signs,
//! or Microsoft Entra ID (managed identity where one is available, else developer credentials:
//! the Azure CLI or azd login).

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, bail};
use azure_core::credentials::TokenCredential;
use serde_json::value::{RawValue, to_raw_value};
use serde_json::{Value, json};

use crate::eventgrid::publisher::{PublishAuth, PublisherClient};
use crate::eventgrid::sas::TopicKey;
use crate::eventgrid::{RawObject, Schema, now_rfc3339};
use crate::stack::record;
use crate::trace::{Kind, Span, TRACEPARENT, Telemetry, TraceExport, TraceParent};

/// The topic the local stack's functions take orders from.
const LOCAL_TOPIC: &str = "orders";

/// Where to publish: `endpoint` when given, else the `orders` topic of the stack running for the
/// data folder `data` (over HTTPS for Microsoft Entra ID), found through its record; with the
/// emulator data folder whose topic keys and development CA go with it.
pub async fn target(
    endpoint: Option<String>,
    auth: AuthMode,
    data: &Path,
) -> anyhow::Result<Target> {
    if let Some(endpoint) = endpoint {
        return Ok(Target {
            endpoint,
            emulator_data: data.join("emulator"),
            trace_sink: None,
        });
    }
    let stack = record::find(data).await?;
    let https = auth == AuthMode::Entra;
    let endpoint = stack.topic_endpoint(LOCAL_TOPIC, https).with_context(|| {
        if https && stack.https_url.is_none() {
            format!(
                "the stack at {} serves no HTTPS (ORDERGRID_EMULATOR_HTTPS_PORT=off), which                  Microsoft Entra ID tokens need; publish with --auth key or sas",
                stack.emulator_url
            )
        } else {
            format!(
                "the stack at {} has no `{LOCAL_TOPIC}` topic; name one with --endpoint",
                stack.emulator_url
            )
        }
    })?;
    Ok(Target {
        endpoint,
        emulator_data: stack.emulator_data_dir,
        trace_sink: stack.trace_sink,
    })
}

/// Where `publish` sends events, and what goes with it.
#[derive(Debug, Clone)]
pub struct Target {
    pub endpoint: String,
    /// The emulator's data folder (topic keys, development CA).
    pub emulator_data: PathBuf,
    /// The stack's trace receiver, when it keeps traces: the publish span goes there too.
    pub trace_sink: Option<String>,
}

/// How `publish` authenticates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum AuthMode {
    /// The topic's access key, in `aeg-sas-key`.
    Key,
    /// A shared access signature signed with the key, in `aeg-sas-token`.
    Sas,
    /// A Microsoft Entra ID token (managed identity, else the Azure CLI or azd login).
    Entra,
}

#[derive(Debug, Clone, Default)]
pub struct NewOrderFlags {
    pub order_id: Option<String>,
    pub customer_id: Option<String>,
    pub value: Option<String>,
    pub currency: Option<String>,
    pub email: Option<String>,
    /// `sku:quantity:unitPrice[:name]`
    pub items: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct PublishRequest {
    /// The topic endpoint ([`target`] finds the local stack's).
    pub endpoint: String,
    pub auth: AuthMode,
    pub key: Option<String>,
    /// The local emulator's data folder: its topic keys (for a local endpoint without `--key`)
    /// and its development CA (trusted for a local https endpoint).
    pub emulator_data: PathBuf,
    pub schema: Schema,
    pub event_type: String,
    pub subject: Option<String>,
    /// `-` for stdin.
    pub file: Option<PathBuf>,
    pub order: NewOrderFlags,
    /// Where the publish span goes; with none, events carry no trace context.
    pub trace: TraceExport,
}

/// A JSON number as typed (`150.00` stays `150.00`), or the text as a JSON string.
fn literal(text: &str) -> Box<RawValue> {
    match serde_json::from_str::<Box<RawValue>>(text.trim()) {
        Ok(raw)
            if raw
                .get()
                .starts_with(|c: char| c == '-' || c.is_ascii_digit()) =>
        {
            raw
        }
        _ => to_raw_value(text).unwrap_or_default(),
    }
}

fn raw(value: impl serde::Serialize) -> Box<RawValue> {
    to_raw_value(&value).unwrap_or_default()
}

/// NewOrder `data` as raw JSON. Amounts are sent as JSON strings (`"150.00"`): the Functions host
/// reads every JSON number in an event as a double (`150.00` would reach the handler as `150.0`,
/// and digits past the 15th or so would be rounded), while a string reaches it unchanged.
/// Quantities are whole numbers, which the host keeps exactly.
fn new_order_data(flags: &NewOrderFlags) -> anyhow::Result<RawObject> {
    let required = |value: &Option<String>, flag: &str| {
        value
            .clone()
            .with_context(|| format!("--{flag} is required to build a NewOrder (or give --file)"))
    };
    let mut items = Vec::new();
    for item in &flags.items {
        let parts: Vec<&str> = item.splitn(4, ':').collect();
        let [sku, quantity, price, rest @ ..] = parts.as_slice() else {
            bail!("--item {item:?}: expected sku:quantity:unitPrice[:name]");
        };
        let mut entry = RawObject::new();
        entry.insert("sku".into(), raw(sku));
        entry.insert("quantity".into(), literal(quantity));
        entry.insert("unitPrice".into(), raw(price.trim()));
        if let Some(name) = rest.first() {
            entry.insert("name".into(), raw(name));
        }
        items.push(entry);
    }
    let mut data = RawObject::new();
    data.insert(
        "orderId".into(),
        raw(required(&flags.order_id, "order-id")?),
    );
    data.insert(
        "customerId".into(),
        raw(required(&flags.customer_id, "customer-id")?),
    );
    data.insert(
        "orderValue".into(),
        raw(required(&flags.value, "value")?.trim()),
    );
    data.insert(
        "customerEmail".into(),
        raw(required(&flags.email, "email")?),
    );
    if let Some(currency) = &flags.currency {
        data.insert("currency".into(), raw(currency));
    }
    if !items.is_empty() {
        data.insert("items".into(), raw(&items));
    }
    Ok(data)
}

/// The events to send: from the file/stdin as they are, or one NewOrder built from flags, which
/// carries `trace` in `data.traceparent` (see [`crate::trace::context`]).
pub fn events(
    request: &PublishRequest,
    trace: Option<TraceParent>,
) -> anyhow::Result<Vec<RawObject>> {
    if let Some(file) = &request.file {
        let text = if file == Path::new("-") {
            let mut text = String::new();
            std::io::stdin()
                .read_to_string(&mut text)
                .context("failed to read events from stdin")?;
            text
        } else {
            std::fs::read_to_string(file)
                .with_context(|| format!("failed to read {}", file.display()))?
        };
        let trimmed = text.trim_start();
        let events: Vec<RawObject> = if trimmed.starts_with('[') {
            serde_json::from_str(trimmed)
        } else {
            serde_json::from_str(trimmed).map(|e| vec![e])
        }
        .context("the events are not a JSON object or an array of objects")?;
        if events.is_empty() {
            bail!("no events to send");
        }
        return Ok(events);
    }
    let mut data = new_order_data(&request.order)?;
    if let Some(trace) = trace {
        data.insert(TRACEPARENT.into(), raw(trace.to_string()));
    }
    let order_id = request.order.order_id.clone().unwrap_or_default();
    let subject = request
        .subject
        .clone()
        .unwrap_or_else(|| format!("orders/{order_id}"));
    let envelope = match request.schema {
        Schema::EventGrid => json!({
            "id": uuid::Uuid::new_v4().to_string(), "eventType": request.event_type, "subject": subject,
            "eventTime": now_rfc3339(), "dataVersion": "1.0",
        }),
        Schema::CloudEvents => json!({
            "specversion": "1.0", "id": uuid::Uuid::new_v4().to_string(), "type": request.event_type,
            "source": "/ordergrid/publish", "subject": subject, "time": now_rfc3339(), "datacontenttype": "application/json",
        }),
    };
    let mut event: RawObject = serde_json::from_value(envelope)?;
    event.insert("data".into(), raw(&data));
    Ok(vec![event])
}

/// Whether `endpoint` is on this machine (the local stack).
fn is_local(endpoint: &str) -> bool {
    let rest = endpoint
        .strip_prefix("http://")
        .or_else(|| endpoint.strip_prefix("https://"))
        .unwrap_or("");
    ["127.0.0.1", "localhost", "[::1]"]
        .iter()
        .any(|host| rest.starts_with(host) && rest[host.len()..].starts_with([':', '/']))
}

/// The key: `--key`, else the local emulator's key1 when the endpoint is on this machine.
fn key(request: &PublishRequest, endpoint: &str) -> anyhow::Result<TopicKey> {
    if let Some(key) = &request.key {
        return TopicKey::parse(key).context("--key / ORDERGRID_TOPIC_KEY");
    }
    let local_keys = request.emulator_data.join("topic-keys.json");
    if is_local(endpoint) && local_keys.is_file() {
        let keys: Value = serde_json::from_slice(&std::fs::read(&local_keys)?)
            .with_context(|| format!("{} is not readable", local_keys.display()))?;
        let topic = endpoint
            .split('/')
            .rev()
            .nth(2)
            .filter(|t| keys.get(t).is_some())
            .or_else(|| {
                keys.as_object()
                    .and_then(|o| o.keys().next())
                    .map(String::as_str)
            })
            .unwrap_or("orders")
            .to_owned();
        if let Some(key) = keys[&topic][0].as_str() {
            return TopicKey::parse(key)
                .with_context(|| format!("the key of topic {topic} in {}", local_keys.display()));
        }
    }
    bail!("no key: pass --key (or set ORDERGRID_TOPIC_KEY), or use --auth entra for an Azure topic")
}

/// A managed identity where the environment offers one (App Service's `IDENTITY_ENDPOINT`, which
/// the local stack serves too), else the developer's `az login` / `azd auth login`.
fn credential(endpoint: &str) -> anyhow::Result<Arc<dyn TokenCredential>> {
    let managed = std::env::var_os("IDENTITY_ENDPOINT").is_some()
        || std::env::var_os("MSI_ENDPOINT").is_some();
    if !managed && is_local(endpoint) {
        bail!(
            "--auth entra against the local stack needs its managed identity: set IDENTITY_ENDPOINT and \
             IDENTITY_HEADER as `ordergrid dev` prints them (the \"managed identity\" line)"
        );
    }
    Ok(if managed {
        azure_identity::ManagedIdentityCredential::new(None)
            .context("failed to set up the managed identity")?
    } else {
        azure_identity::DeveloperToolsCredential::new(None)
            .context("failed to set up developer credentials (az login / azd auth login)")?
    })
}

/// Sends the events and describes what was accepted.
pub async fn run(request: PublishRequest) -> anyhow::Result<String> {
    let telemetry = Telemetry::start(&request.trace, "ordergrid-cli", None)?;
    let mut span = telemetry.tracer().start(
        format!("publish {}", request.event_type),
        Kind::Producer,
        None,
    );
    let published = publish(&request, &mut span).await;
    if let Err(e) = &published {
        span.fail(format!("{e:#}"));
    }
    span.end();
    telemetry.shutdown();
    published
}

async fn publish(request: &PublishRequest, span: &mut Span) -> anyhow::Result<String> {
    let trace = span.traceparent();
    let events = events(request, trace)?;
    let endpoint = request.endpoint.clone();
    let auth = match request.auth {
        AuthMode::Key => PublishAuth::Key(key(request, &endpoint)?),
        AuthMode::Sas => PublishAuth::Sas {
            key: key(request, &endpoint)?,
            ttl: std::time::Duration::from_secs(3600),
        },
        AuthMode::Entra => PublishAuth::Entra(credential(&endpoint)?),
    };
    // The local stack's HTTPS certificate is signed by its own development CA.
    let local_ca = request.emulator_data.join("tls/ca.pem");
    let ca = if endpoint.starts_with("https://") && is_local(&endpoint) && local_ca.is_file() {
        Some(
            std::fs::read(&local_ca)
                .with_context(|| format!("failed to read {}", local_ca.display()))?,
        )
    } else {
        None
    };
    let client = PublisherClient::with_ca(&endpoint, auth, ca.as_deref())?;
    let receipt = client.publish(request.schema, &events).await?;
    let mut out = format!(
        "accepted {} event(s) at {} (HTTP {}, x-ms-request-id {})\n",
        events.len(),
        client.endpoint(),
        receipt.status,
        receipt.request_id.as_deref().unwrap_or("-")
    );
    for event in &events {
        let field = |name: &str| field_of(event, name);
        let event_type = if request.schema == Schema::EventGrid {
            field("eventType")
        } else {
            field("type")
        };
        out += &format!(
            "  id={} type={} subject={}\n",
            field("id"),
            event_type,
            field("subject")
        );
    }
    if let Some(trace) = trace.filter(|_| request.file.is_none()) {
        span.set("event.id", field_of(&events[0], "id"));
        out += &format!("  trace {}\n", trace.trace_id_hex());
    }
    Ok(out)
}

/// A string member of an event, or empty.
fn field_of(event: &RawObject, name: &str) -> String {
    event
        .get(name)
        .and_then(|v| serde_json::from_str::<String>(v.get()).ok())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOCAL: &str = "http://127.0.0.1:7080/orders/api/events";

    fn request(order: NewOrderFlags) -> PublishRequest {
        PublishRequest {
            endpoint: LOCAL.into(),
            auth: AuthMode::Key,
            key: None,
            emulator_data: PathBuf::from("/nonexistent"),
            schema: Schema::EventGrid,
            event_type: "NewOrder".into(),
            subject: None,
            file: None,
            order,
            trace: TraceExport::default(),
        }
    }

    #[test]
    fn a_new_order_from_flags_keeps_the_amount_as_typed() {
        let events = events(
            &request(NewOrderFlags {
                order_id: Some("12345".into()),
                customer_id: Some("67890".into()),
                value: Some("150.00".into()),
                email: Some("customer@example.com".into()),
                items: vec!["MUG-1:2:75.00:Mug".into()],
                ..Default::default()
            }),
            TraceParent::parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
        )
        .unwrap();
        let event = serde_json::to_string(&events[0]).unwrap();
        assert!(
            event.contains(
                r#""traceparent":"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01""#
            ),
            "the order carries its trace context in data: {event}"
        );
        assert!(event.contains(r#""orderValue":"150.00""#), "{event}");
        assert!(event.contains(r#""unitPrice":"75.00""#), "{event}");
        assert!(event.contains(r#""subject":"orders/12345""#), "{event}");
        assert!(event.contains(r#""eventType":"NewOrder""#), "{event}");
    }

    #[test]
    fn missing_flags_are_named() {
        let err = events(
            &request(NewOrderFlags {
                order_id: Some("1".into()),
                ..Default::default()
            }),
            None,
        )
        .unwrap_err();
        assert!(err.to_string().contains("--customer-id"), "{err}");
        let err = events(
            &request(NewOrderFlags {
                order_id: Some("1".into()),
                customer_id: Some("c".into()),
                value: Some("1".into()),
                email: Some("a@b.co".into()),
                items: vec!["bad".into()],
                ..Default::default()
            }),
            None,
        )
        .unwrap_err();
        assert!(err.to_string().contains("sku:quantity:unitPrice"), "{err}");
    }

    #[test]
    fn without_a_key_the_error_says_where_to_get_one() {
        let err = key(&request(NewOrderFlags::default()), LOCAL).unwrap_err();
        assert!(err.to_string().contains("--key"), "{err}");
    }

    #[test]
    fn local_endpoints_are_recognised() {
        for local in [
            LOCAL,
            "https://localhost:7443/orders/api/events",
            "http://[::1]:7080/api/events",
            "http://localhost/orders/api/events",
        ] {
            assert!(is_local(local), "{local}");
        }
        for remote in [
            "https://orders.westus2-1.eventgrid.azure.net/api/events",
            "http://localhost.example.com/api/events",
            "http://127.0.0.10:7080/api/events",
        ] {
            assert!(!is_local(remote), "{remote}");
        }
    }
}
