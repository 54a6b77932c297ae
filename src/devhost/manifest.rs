//! The function app as the Functions host sees it: `host.json` (which executable to start, with
//! which arguments) and `<Function>/function.json` (bindings). Read from the repository's real
//! files, so what runs locally is what gets deployed.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

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

#[derive(Debug, Clone)]
pub struct OutputBinding {
    pub name: String,
    pub target: OutputTarget,
}

#[derive(Debug, Clone)]
pub struct FunctionManifest {
    /// The folder name; the handler route and Event Grid's `functionName` (case-sensitive).
    pub name: String,
    /// The `eventGridTrigger` binding's name: the key of the event in `Data`.
    pub trigger: String,
    pub outputs: Vec<OutputBinding>,
}

#[derive(Debug, Clone)]
pub struct AppManifest {
    pub root: PathBuf,
    /// `customHandler.description.defaultExecutablePath`, as written.
    pub executable: String,
    pub arguments: Vec<String>,
    pub working_dir: PathBuf,
    pub functions: Vec<FunctionManifest>,
}

fn read_json(path: &Path) -> anyhow::Result<Value> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("failed to read {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("{} is not valid JSON", path.display()))
}

impl AppManifest {
    /// Reads `host.json` and every `*/function.json` under `root`. Functions without an
    /// `eventGridTrigger` are skipped with a warning: the stand-in serves Event Grid triggers only.
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
            let Some(trigger) = bindings.iter().find(|b| {
                b["type"]
                    .as_str()
                    .is_some_and(|t| t.eq_ignore_ascii_case("eventGridTrigger"))
            }) else {
                tracing::warn!(function = %name, "skipped: the host stand-in serves eventGridTrigger functions only");
                continue;
            };
            let trigger = trigger["name"]
                .as_str()
                .with_context(|| {
                    format!(
                        "{}: the eventGridTrigger binding has no name",
                        path.display()
                    )
                })?
                .to_owned();
            let mut outputs = Vec::new();
            for binding in bindings.iter().filter(|b| {
                b["type"]
                    .as_str()
                    .is_some_and(|t| t.eq_ignore_ascii_case("eventGrid"))
                    && b["direction"] == "out"
            }) {
                let binding_name = binding["name"].as_str().with_context(|| {
                    format!(
                        "{}: an eventGrid output binding has no name",
                        path.display()
                    )
                })?;
                let target = match (
                    binding["connection"].as_str(),
                    binding["topicEndpointUri"].as_str(),
                    binding["topicKeySetting"].as_str(),
                ) {
                    (Some(prefix), None, None) => OutputTarget::Connection {
                        prefix: prefix.to_owned(),
                    },
                    (None, Some(endpoint), Some(key)) => OutputTarget::Settings {
                        endpoint_setting: endpoint.to_owned(),
                        key_setting: key.to_owned(),
                    },
                    (Some(_), _, _) => bail!(
                        "{}: output {binding_name:?} sets both connection and topicEndpointUri/topicKeySetting; the host refuses that",
                        path.display()
                    ),
                    _ => bail!(
                        "{}: output {binding_name:?} needs either connection or topicEndpointUri and topicKeySetting",
                        path.display()
                    ),
                };
                outputs.push(OutputBinding {
                    name: binding_name.to_owned(),
                    target,
                });
            }
            functions.push(FunctionManifest {
                name,
                trigger,
                outputs,
            });
        }
        if functions.is_empty() {
            bail!(
                "no Event Grid triggered function (*/function.json) under {}",
                root.display()
            );
        }
        Ok(Self {
            root: root.to_owned(),
            executable,
            arguments,
            working_dir,
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
        assert_eq!(names, ["EmailNotifier", "OrderProcessor"]);
        let processor = app.function("OrderProcessor").unwrap();
        assert_eq!(processor.trigger, "event");
        assert_eq!(processor.outputs[0].name, "outputEvents");
        assert_eq!(
            processor.outputs[0].target,
            OutputTarget::Connection {
                prefix: "OrdersTopic".into()
            }
        );
        assert!(
            app.function("orderprocessor").is_none(),
            "function names are case-sensitive"
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
