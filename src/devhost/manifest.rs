//! The function app as the Functions host sees it: `host.json` (which executable to start, with
//! which arguments, `functionTimeout`) and `<Function>/function.json` (bindings). Read from the
//! repository's real files, so what runs locally is what gets deployed.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use serde_json::Value;

pub use super::bindings::{
    HttpTrigger, InputBinding, InputKind, OutputBinding, OutputKind, OutputTarget, TriggerKind,
    WebPubSubBinding,
};
use super::http::route::RouteTemplate;
use crate::webpubsub::{DEFAULT_CONNECTION_SETTING, WebPubSubConnection};

/// The app setting the Web PubSub extension reads a hub from when a binding names none
/// (`Constants.cs` of Microsoft.Azure.WebJobs.Extensions.WebPubSub).
pub const WEBPUBSUB_HUB_SETTING: &str = "WebPubSubHub";

#[derive(Debug, Clone)]
pub struct FunctionManifest {
    /// The folder name; the handler route and Event Grid's `functionName` (case-sensitive).
    pub name: String,
    /// The trigger binding's name: the key of the event (or request) in `Data`.
    pub trigger: String,
    pub kind: TriggerKind,
    /// `"cardinality": "many"`: one invocation gets every event of a delivery.
    pub many: bool,
    pub inputs: Vec<InputBinding>,
    pub outputs: Vec<OutputBinding>,
    /// The HTTP route template (prefix included) of an HTTP-triggered function, or why it cannot
    /// be served.
    pub route: Option<Result<RouteTemplate, String>>,
    /// Bindings the stand-in cannot serve.
    pub unsupported: Vec<String>,
}

impl FunctionManifest {
    /// What keeps the function from loading with these app settings, as the host's indexing
    /// finds it: every output binding's settings must exist, and an endpoint must be an absolute
    /// URL (the Event Grid extension's validators); a Web PubSub binding needs a connection
    /// (`<connection>` or `<connection>__serviceUri`) and a hub (the Web PubSub extension's
    /// `ValidateWebPubSubConnectionCore`); a route must be one the stand-in can serve. A function
    /// whose bindings fail them is not loaded.
    pub fn load_error(&self, settings: &HashMap<String, String>) -> Option<String> {
        if let Some(why) = self.unsupported.first() {
            return Some(why.clone());
        }
        if let Some(Err(why)) = &self.route {
            return Some(why.clone());
        }
        let web_pubsub = self
            .inputs
            .iter()
            .map(|b| match &b.kind {
                InputKind::WebPubSubConnection { service, .. } => (service, "WebPubSubConnection"),
            })
            .chain(self.outputs.iter().filter_map(|b| match &b.kind {
                OutputKind::WebPubSub(service) => Some((service, "WebPubSub")),
                _ => None,
            }));
        for (service, extension) in web_pubsub {
            if let Err(why) = web_pubsub_service(service, extension, settings) {
                return Some(why);
            }
        }
        for binding in &self.outputs {
            let OutputKind::EventGrid(target) = &binding.kind else {
                continue;
            };
            let (endpoint, key) = match target {
                OutputTarget::Connection { prefix } => {
                    (format!("{prefix}__topicEndpointUri"), None)
                }
                OutputTarget::Settings {
                    endpoint_setting,
                    key_setting,
                } => (endpoint_setting.clone(), Some(key_setting.clone())),
            };
            for setting in std::iter::once(&endpoint).chain(key.as_ref()) {
                if settings.get(setting).is_none_or(|v| v.trim().is_empty()) {
                    return Some(format!(
                        "output binding {:?}: the '{setting}' setting does not exist",
                        binding.name
                    ));
                }
            }
            let url = &settings[&endpoint];
            if !(url.starts_with("https://") || url.starts_with("http://")) {
                return Some(format!(
                    "output binding {:?}: '{endpoint}' must be a valid absolute Uri, got {url:?}",
                    binding.name
                ));
            }
        }
        None
    }

    /// The `http` output binding, if the function has one.
    pub fn http_output(&self) -> Option<&str> {
        self.outputs
            .iter()
            .find(|b| b.kind == OutputKind::Http)
            .map(|b| b.name.as_str())
    }
}

/// The service and hub a Web PubSub binding resolves to with `settings`, or the extension's
/// validation message. `%name%` in the hub is an app setting, as the host's name resolver reads it.
pub fn web_pubsub_service(
    binding: &WebPubSubBinding,
    extension: &str,
    settings: &HashMap<String, String>,
) -> Result<(WebPubSubConnection, String), String> {
    let setting = binding
        .connection
        .as_deref()
        .unwrap_or(DEFAULT_CONNECTION_SETTING);
    let connection = match WebPubSubConnection::from_settings(settings, setting) {
        Ok(Some(connection)) => connection,
        Ok(None) => {
            return Err(format!(
                "Connection must be specified through one of the following: \
                 * Set '{extension}.Connection' property to the name of a config section that contains a Web PubSub connection. \
                 * Set a Web PubSub connection under '{DEFAULT_CONNECTION_SETTING}'. (looked for '{setting}' and '{setting}__serviceUri')"
            ));
        }
        Err(why) => return Err(format!("{extension}: {why}")),
    };
    let hub = match &binding.hub {
        Some(hub) => resolve_settings(hub, settings)?,
        None => settings
            .get(WEBPUBSUB_HUB_SETTING)
            .filter(|h| !h.trim().is_empty())
            .cloned()
            .ok_or_else(|| format!("Resolved 'Hub' value is null for extension '{extension}'."))?,
    };
    Ok((connection, hub))
}

/// `%name%` replaced by the app setting `name`; an unknown one fails, as the host's
/// `INameResolver` fails indexing ("'%name%' does not resolve to a value").
pub fn resolve_settings(text: &str, settings: &HashMap<String, String>) -> Result<String, String> {
    let mut out = String::new();
    let mut rest = text;
    while let Some(start) = rest.find('%') {
        let Some(len) = rest[start + 1..].find('%') else {
            break;
        };
        let name = &rest[start + 1..start + 1 + len];
        out.push_str(&rest[..start]);
        out.push_str(
            settings
                .get(name)
                .ok_or_else(|| format!("'%{name}%' does not resolve to a value."))?,
        );
        rest = &rest[start + len + 2..];
    }
    out.push_str(rest);
    Ok(out)
}

#[derive(Debug, Clone)]
pub struct AppManifest {
    pub root: PathBuf,
    /// `customHandler.description.defaultExecutablePath`, as written.
    pub executable: String,
    pub arguments: Vec<String>,
    pub working_dir: PathBuf,
    /// `functionTimeout`; `None` for `-1` (no limit).
    pub function_timeout: Option<Duration>,
    /// host.json `extensions.http.routePrefix` (default `api`; may be empty).
    pub route_prefix: String,
    pub functions: Vec<FunctionManifest>,
}

/// The route prefix unless host.json sets `extensions.http.routePrefix`
/// (`WebFunctionsManager.GetRoutePrefix`, `HttpOptions`).
pub const DEFAULT_ROUTE_PREFIX: &str = "api";

/// The host's `functionTimeout` default locally and on Flex Consumption
/// (`ScriptJobHostOptionsSetup`: 30 minutes everywhere but the Consumption plan).
pub const DEFAULT_FUNCTION_TIMEOUT: Duration = Duration::from_secs(30 * 60);

/// A .NET `TimeSpan` as host.json writes it: `[d.]hh:mm:ss[.fffffff]`.
fn parse_timespan(text: &str) -> Option<Duration> {
    let (days, clock) = match text.split_once('.') {
        Some((d, rest)) if rest.contains(':') && !d.contains(':') => (d.parse::<u64>().ok()?, rest),
        _ => (0, text),
    };
    let parts: Vec<&str> = clock.split(':').collect();
    let [hours, minutes, seconds] = parts.as_slice() else {
        return None;
    };
    let (hours, minutes): (u64, u64) = (hours.parse().ok()?, minutes.parse().ok()?);
    let seconds: f64 = seconds.parse().ok()?;
    if minutes >= 60 || !(0.0..60.0).contains(&seconds) {
        return None;
    }
    Some(
        Duration::from_secs(days * 86_400 + hours * 3600 + minutes * 60)
            + Duration::from_secs_f64(seconds),
    )
}

/// `functionTimeout` from host.json, checked as the host checks it (at least one second; `-1`
/// for none).
fn function_timeout(host: &Value) -> anyhow::Result<Option<Duration>> {
    match host.get("functionTimeout") {
        None | Some(Value::Null) => Ok(Some(DEFAULT_FUNCTION_TIMEOUT)),
        Some(Value::String(text)) if text.trim() == "-1" => Ok(None),
        Some(Value::String(text)) => match parse_timespan(text.trim()) {
            Some(timeout) if timeout >= Duration::from_secs(1) => Ok(Some(timeout)),
            _ => bail!(
                "host.json: functionTimeout {text:?} is not a time span of at least 00:00:01 \
                 (hh:mm:ss), or -1 for no limit"
            ),
        },
        Some(other) => {
            bail!("host.json: functionTimeout must be a string like \"00:30:00\", got {other}")
        }
    }
}

fn read_json(path: &Path) -> anyhow::Result<Value> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("failed to read {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("{} is not valid JSON", path.display()))
}

impl AppManifest {
    /// Reads `host.json` and every `*/function.json` under `root`. Functions without an
    /// `eventGridTrigger` or `httpTrigger` are skipped with a warning: the stand-in serves those
    /// triggers only.
    pub fn load(root: &Path) -> anyhow::Result<Self> {
        let host = read_json(&root.join("host.json"))?;
        let description = host
            .pointer("/customHandler/description")
            .or_else(|| host.pointer("/httpWorker/description"))
            .context("host.json has no customHandler.description")?;
        let executable = description["defaultExecutablePath"]
            .as_str()
            .filter(|s| !s.is_empty())
            .context("host.json: customHandler.description.defaultExecutablePath is empty")?
            .to_owned();
        let arguments = description["arguments"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        let working_dir = match description["workingDirectory"]
            .as_str()
            .filter(|s| !s.is_empty())
        {
            Some(dir) => root.join(dir),
            None => root.to_owned(),
        };
        let route_prefix = match host.pointer("/extensions/http/routePrefix") {
            None | Some(Value::Null) => DEFAULT_ROUTE_PREFIX.to_owned(),
            Some(Value::String(prefix)) => prefix.trim_matches('/').to_owned(),
            Some(other) => {
                bail!("host.json: extensions.http.routePrefix must be a string, got {other}")
            }
        };
        // Forwarding hands an HTTP-in-and-out function the raw request instead of the envelope
        // (`DefaultHttpWorkerService.InvokeAsync`); the stand-in only builds envelopes.
        let forwarding = ["enableForwardingHttpRequest", "enableProxyingHttpRequest"]
            .into_iter()
            .find(|flag| host["customHandler"][flag] == true);
        let mut functions = Vec::new();
        let mut entries: Vec<PathBuf> = std::fs::read_dir(root)
            .with_context(|| format!("failed to list {}", root.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.join("function.json").is_file())
            .collect();
        entries.sort();
        for dir in entries {
            let name = dir
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or_default()
                .to_owned();
            let path = dir.join("function.json");
            let manifest = read_json(&path)?;
            let bindings = manifest["bindings"].as_array().cloned().unwrap_or_default();
            let Some(mut read) = super::bindings::read(&path, &bindings)? else {
                tracing::warn!(function = %name, "skipped: the host stand-in serves eventGridTrigger and httpTrigger functions only");
                continue;
            };
            let route = match &read.trigger {
                TriggerKind::Http(http) => Some(RouteTemplate::parse(
                    &route_prefix,
                    http.route.as_deref().unwrap_or(&name),
                )),
                TriggerKind::EventGrid { .. } => None,
            };
            let http_in_and_out = route.is_some()
                && read.inputs.is_empty()
                && read.outputs.iter().all(|o| o.kind == OutputKind::Http);
            if let (true, Some(flag)) = (http_in_and_out, forwarding) {
                read.unsupported.push(format!(
                    "host.json sets customHandler.{flag}, so the host would forward this HTTP-only function's request as it is; the stand-in does not"
                ));
            }
            functions.push(FunctionManifest {
                name,
                trigger: read.trigger_name,
                many: matches!(read.trigger, TriggerKind::EventGrid { many: true }),
                kind: read.trigger,
                inputs: read.inputs,
                outputs: read.outputs,
                route,
                unsupported: read.unsupported,
            });
        }
        if functions.is_empty() {
            bail!(
                "no Event Grid or HTTP triggered function (*/function.json) under {}",
                root.display()
            );
        }
        Ok(Self {
            root: root.to_owned(),
            executable,
            arguments,
            working_dir,
            function_timeout: function_timeout(&host)?,
            route_prefix,
            functions,
        })
    }

    pub fn function(&self, name: &str) -> Option<&FunctionManifest> {
        self.functions.iter().find(|f| f.name == name)
    }

    /// The executable as the host resolves it: `<root>/<path>` if that exists, else a command on
    /// `PATH`. The stand-in adds one rule: if the name is this very program (`ordergrid`), the
    /// running binary is used, so `cargo run -- dev` needs no copy at the root.
    pub fn resolve_executable(&self) -> anyhow::Result<PathBuf> {
        let at_root = self.root.join(&self.executable);
        if at_root.is_file() {
            return Ok(at_root);
        }
        if let Ok(current) = std::env::current_exe()
            && current.file_name().and_then(|n| n.to_str())
                == Path::new(&self.executable)
                    .file_name()
                    .and_then(|n| n.to_str())
        {
            return Ok(current);
        }
        for dir in std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default()) {
            let candidate = dir.join(&self.executable);
            if candidate.is_file() {
                return Ok(candidate);
            }
        }
        bail!(
            "host.json names {:?}, which is neither at {} nor on PATH",
            self.executable,
            self.root.display()
        )
    }

    /// Arguments with `%SETTING%` replaced by app settings (unknown names are left as they are).
    pub fn expanded_arguments(&self, settings: &HashMap<String, String>) -> Vec<String> {
        self.arguments
            .iter()
            .map(|arg| {
                let mut out = String::new();
                let mut rest = arg.as_str();
                while let Some(start) = rest.find('%') {
                    let Some(len) = rest[start + 1..].find('%') else {
                        break;
                    };
                    let name = &rest[start + 1..start + 1 + len];
                    out.push_str(&rest[..start]);
                    match settings.get(name) {
                        Some(value) => out.push_str(value),
                        None => out.push_str(&rest[start..start + len + 2]),
                    }
                    rest = &rest[start + len + 2..];
                }
                out.push_str(rest);
                out
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_repositorys_own_manifests() {
        let app = AppManifest::load(Path::new(env!("CARGO_MANIFEST_DIR"))).unwrap();
        assert_eq!(app.executable, "ordergrid");
        assert_eq!(app.arguments, ["serve"]);
        let names: Vec<&str> = app.functions.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "EmailNotifier",
                "OrderProcessor",
                "OrderStatusFeed",
                "negotiate",
                "orderStatus",
                "recentOrders",
                "web"
            ]
        );
        let processor = app.function("OrderProcessor").unwrap();
        assert_eq!(processor.trigger, "event");
        assert_eq!(processor.outputs[0].name, "outputEvents");
        assert_eq!(
            processor.outputs[0].kind,
            OutputKind::EventGrid(OutputTarget::Connection {
                prefix: "OrdersTopic".into()
            })
        );
        assert!(
            app.function("orderprocessor").is_none(),
            "function names are case-sensitive"
        );
        assert_eq!(app.function_timeout, Some(DEFAULT_FUNCTION_TIMEOUT));
        assert!(!processor.many);
    }

    #[test]
    fn function_timeouts_read_as_the_host_reads_them() {
        let read = |value: Value| function_timeout(&serde_json::json!({"functionTimeout": value}));
        assert_eq!(
            read("00:00:01".into()).unwrap(),
            Some(Duration::from_secs(1))
        );
        assert_eq!(
            read("01:02:03.5".into()).unwrap(),
            Some(Duration::from_millis(3_723_500))
        );
        assert_eq!(
            read("1.00:00:00".into()).unwrap(),
            Some(Duration::from_secs(86_400))
        );
        assert_eq!(read("-1".into()).unwrap(), None);
        for bad in ["00:00:00.5", "5m", "00:61:00", ""] {
            assert!(read(bad.into()).is_err(), "{bad}");
        }
        assert!(read(300.into()).is_err());
    }

    #[test]
    fn an_output_binding_without_its_settings_keeps_the_function_from_loading() {
        let function = FunctionManifest {
            name: "F".into(),
            trigger: "event".into(),
            many: false,
            kind: TriggerKind::EventGrid { many: false },
            inputs: vec![],
            outputs: vec![OutputBinding {
                name: "outputEvents".into(),
                kind: OutputKind::EventGrid(OutputTarget::Connection {
                    prefix: "OrdersTopic".into(),
                }),
            }],
            route: None,
            unsupported: vec![],
        };
        let settings = |pairs: &[(&str, &str)]| -> HashMap<String, String> {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        let missing = function.load_error(&settings(&[])).unwrap();
        assert!(
            missing.contains("'OrdersTopic__topicEndpointUri' setting does not exist"),
            "{missing}"
        );
        let relative = function
            .load_error(&settings(&[(
                "OrdersTopic__topicEndpointUri",
                "orders/api/events",
            )]))
            .unwrap();
        assert!(relative.contains("valid absolute Uri"), "{relative}");
        assert_eq!(
            function.load_error(&settings(&[(
                "OrdersTopic__topicEndpointUri",
                "https://orders.westus2-1.eventgrid.azure.net/api/events"
            )])),
            None
        );
    }

    #[test]
    fn arguments_expand_app_settings() {
        let app = AppManifest {
            root: PathBuf::new(),
            executable: "x".into(),
            arguments: vec![
                "--db".into(),
                "%DB%".into(),
                "a%X%b%Y%".into(),
                "100%".into(),
            ],
            working_dir: PathBuf::new(),
            function_timeout: None,
            route_prefix: DEFAULT_ROUTE_PREFIX.into(),
            functions: vec![],
        };
        let settings = HashMap::from([
            ("DB".to_owned(), "conn".to_owned()),
            ("X".to_owned(), "1".to_owned()),
        ]);
        assert_eq!(
            app.expanded_arguments(&settings),
            ["--db", "conn", "a1b%Y%", "100%"]
        );
    }
}
