//! The repository's Functions manifests agree with what the handler serves.

use std::collections::BTreeSet;
use std::path::Path;

use ordergrid::functions::settings::{PORT, WEBPUBSUB, handler_settings};
use ordergrid::functions::{FUNCTIONS, Trigger, feed};
use serde_json::{Value, json};

use crate::helpers::repo_root;

fn read_json(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display()))
}

/// Every `*/function.json` at the root, by folder name.
fn function_manifests() -> Vec<(String, Value)> {
    let mut found = vec![];
    for entry in std::fs::read_dir(repo_root()).unwrap() {
        let dir = entry.unwrap().path();
        let manifest = dir.join("function.json");
        if manifest.is_file() {
            found.push((
                dir.file_name().unwrap().to_string_lossy().into_owned(),
                read_json(&manifest),
            ));
        }
    }
    found.sort_by(|a, b| a.0.cmp(&b.0));
    found
}

#[test]
fn every_function_json_matches_a_route_and_binding_the_handler_serves() {
    let manifests = function_manifests();
    let on_disk: BTreeSet<&str> = manifests.iter().map(|(name, _)| name.as_str()).collect();
    let served: BTreeSet<&str> = FUNCTIONS.iter().map(|f| f.name).collect();
    assert_eq!(
        on_disk, served,
        "function folders and handler routes differ"
    );

    for (name, manifest) in &manifests {
        let spec = FUNCTIONS.iter().find(|f| f.name == name).unwrap();
        let bindings = manifest["bindings"]
            .as_array()
            .unwrap_or_else(|| panic!("{name}: no bindings array"));
        let triggers: Vec<&Value> = bindings
            .iter()
            .filter(|b| b["type"].as_str().is_some_and(|t| t.ends_with("Trigger")))
            .collect();
        assert_eq!(triggers.len(), 1, "{name}: exactly one trigger");
        let trigger = triggers[0];
        assert_eq!(trigger["direction"], "in", "{name}");
        // The bindings besides the trigger (and an HTTP trigger's http output): (type, name, out).
        let mut expected: BTreeSet<(String, String, bool)> = spec
            .bindings
            .iter()
            .map(|b| (b.kind.to_owned(), b.name.to_owned(), b.output))
            .collect();
        match spec.trigger {
            Trigger::EventGrid { binding, .. } => {
                assert_eq!(trigger["type"], "eventGridTrigger", "{name}");
                assert_eq!(trigger["name"], binding, "{name}: trigger binding name");
            }
            Trigger::Http {
                binding,
                route,
                response,
            } => {
                assert_eq!(trigger["type"], "httpTrigger", "{name}");
                assert_eq!(trigger["name"], binding, "{name}: trigger binding name");
                assert_eq!(trigger["route"], route, "{name}: route");
                assert_eq!(trigger["methods"], json!(["get"]), "{name}: GET only");
                assert_eq!(
                    trigger["authLevel"], "anonymous",
                    "{name}: a browser calls it"
                );
                expected.insert(("http".to_owned(), response.to_owned(), true));
            }
        }
        let declared: BTreeSet<(String, String, bool)> = bindings
            .iter()
            .filter(|b| !std::ptr::eq(*b, trigger))
            .map(|b| {
                (
                    b["type"].as_str().unwrap_or_default().to_owned(),
                    b["name"].as_str().unwrap_or_default().to_owned(),
                    b["direction"] == "out",
                )
            })
            .collect();
        assert_eq!(declared, expected, "{name}: bindings");

        for binding in bindings {
            match binding["type"].as_str().unwrap_or_default() {
                "eventGrid" => {
                    // Identity-based connection: a setting prefix, never a literal URI or key.
                    let connection = binding["connection"]
                        .as_str()
                        .unwrap_or_else(|| panic!("{name}: output needs `connection`"));
                    assert!(
                        !connection.contains("://"),
                        "{name}: connection names a setting prefix"
                    );
                }
                "webPubSub" | "webPubSubConnection" => {
                    assert_eq!(binding["hub"], feed::HUB, "{name}: the feed's hub");
                    assert_eq!(
                        binding["connection"], WEBPUBSUB.name,
                        "{name}: the connection setting negotiate signs with"
                    );
                }
                _ => {}
            }
        }
    }
}

#[test]
fn host_json_starts_the_binary_cargo_builds_with_serve() {
    let host = read_json(&repo_root().join("host.json"));
    assert_eq!(host["version"], "2.0");
    assert_eq!(
        host["extensionBundle"]["id"],
        "Microsoft.Azure.Functions.ExtensionBundle"
    );
    // 4.33.0 is the first bundle whose Web PubSub extension (1.10.0) takes identity-based
    // connections, which the live feed uses on Azure (infra/tests/test_web_pubsub.py).
    assert_eq!(host["extensionBundle"]["version"], "[4.33.0, 5.0.0)");
    let description = &host["customHandler"]["description"];
    let executable = description["defaultExecutablePath"].as_str().unwrap();
    let built = Path::new(env!("CARGO_BIN_EXE_ordergrid"));
    assert_eq!(
        Path::new(executable).file_name(),
        built.file_name(),
        "host.json must name the cargo binary"
    );
    assert_eq!(description["arguments"], serde_json::json!(["serve"]));
    assert!(
        host.get("httpWorker").is_none(),
        "the legacy httpWorker section must not be used"
    );
}

#[test]
fn local_settings_example_lists_every_setting_the_app_reads() {
    let example = read_json(&repo_root().join("local.settings.json.example"));
    let values = example["Values"].as_object().unwrap();
    assert_eq!(values["FUNCTIONS_WORKER_RUNTIME"], "custom");
    assert_eq!(values["AzureWebJobsStorage"], "UseDevelopmentStorage=true");
    for setting in handler_settings() {
        if setting == PORT {
            continue; // set by the host, never by the app's settings
        }
        assert!(
            values.contains_key(setting.name),
            "{} is missing from local.settings.json.example",
            setting.name
        );
    }
    assert!(
        values.contains_key("OrdersTopic__topicEndpointUri"),
        "the output binding's connection setting"
    );
}

/// The README's settings tables are the declarations' (`ordergrid::settings::markdown_table`):
/// a setting added, renamed or given a new default fails here until the README says so.
#[test]
fn the_readme_settings_tables_are_the_declared_settings() {
    let readme = std::fs::read_to_string(repo_root().join("README.md")).unwrap();
    for (name, settings) in [
        ("handler", handler_settings()),
        ("emulator", ordergrid::emulator::settings::SETTINGS.to_vec()),
        (
            "webpubsub",
            ordergrid::webpubsub_service::settings::SETTINGS.to_vec(),
        ),
    ] {
        let start = format!("<!-- settings: {name} -->\n");
        let table = readme
            .split_once(&start)
            .and_then(|(_, rest)| rest.split_once("<!-- /settings -->"))
            .map(|(table, _)| table)
            .unwrap_or_else(|| panic!("README.md has no {start:?} section"));
        let expected = ordergrid::settings::markdown_table(&settings);
        assert_eq!(
            table, expected,
            "README.md's {name} settings table differs from the declarations; it should read:\n{expected}"
        );
    }
}

/// With the example's settings every function loads (the output bindings find
/// their settings, as the host's indexing checks), and the identity-based output binding can get
/// and send a token: an https endpoint, and the managed identity the emulator serves.
#[test]
fn local_settings_example_lets_every_function_load_with_an_identity() {
    let example = read_json(&repo_root().join("local.settings.json.example"));
    let settings: std::collections::HashMap<String, String> = example["Values"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
        .collect();
    let app = ordergrid::devhost::manifest::AppManifest::load(repo_root()).unwrap();
    for function in &app.functions {
        assert_eq!(function.load_error(&settings), None, "{}", function.name);
        let spec = FUNCTIONS.iter().find(|f| f.name == function.name).unwrap();
        let emits = function.outputs.iter().any(|o| {
            matches!(
                o.kind,
                ordergrid::devhost::bindings::OutputKind::EventGrid(_)
            )
        });
        assert_eq!(
            emits,
            spec.output("eventGrid").is_some(),
            "{} emits its events",
            function.name
        );
    }
    assert!(settings["OrdersTopic__topicEndpointUri"].starts_with("https://"));
    assert!(settings["IDENTITY_ENDPOINT"].ends_with("/identity/token"));
}

#[test]
fn funcignore_keeps_sources_out_of_the_package() {
    let ignore = std::fs::read_to_string(repo_root().join(".funcignore")).unwrap();
    for entry in ["target", "src", "local.settings.json"] {
        assert!(
            ignore.lines().any(|l| l.trim() == entry),
            "{entry} should be in .funcignore"
        );
    }
}
