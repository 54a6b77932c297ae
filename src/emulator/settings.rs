//! The emulator's settings: where it listens and keeps its state, where dead letters go, and
//! every Azure duration of delivery (Azure's values by default, scaled by one factor).
//!
//! `ordergrid emulator`'s flags and what `ordergrid dev` wires up reach [`EmulatorSettings::from_env`]
//! as settings layered over the environment ([`crate::settings::Layered`]), so each is checked
//! the same way whichever way it came.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use super::dead_letter::DeadLetterStorage;
use super::entra::EntraMode;
use crate::blob::BlobConnection;
use crate::eventgrid::sas::TopicKey;
use crate::http_server::HttpLimits;
use crate::local_guard::LocalGuard;
use crate::settings::{Reader, Setting, SettingsError, parse_port};
use crate::trace::TraceExport;

pub const PORT: Setting = Setting::new(
    "ORDERGRID_EMULATOR_PORT",
    "7080",
    "the emulator's port on 127.0.0.1 (`0` picks one)",
);
pub const SUBSCRIPTIONS: Setting = Setting::new(
    "ORDERGRID_EMULATOR_SUBSCRIPTIONS",
    "infra/subscriptions.json",
    "the topics and subscriptions file",
);
pub const DATA: Setting = Setting::new(
    "ORDERGRID_EMULATOR_DATA",
    ".ordergrid/emulator",
    "data folder: spool, delivery state, topic keys (`topic-keys.json`)",
);
pub const DEAD_LETTERS: Setting = Setting::new(
    "ORDERGRID_EMULATOR_DEAD_LETTERS",
    "<data>/dead-letters",
    "dead-letter folder, laid out like the blob container",
);
/// A connection named like the handler's store (`ORDERGRID_STORAGE`), identity-based parts too.
pub const DEAD_LETTER_STORAGE: Setting = Setting::secret(
    "ORDERGRID_EMULATOR_DEAD_LETTER_STORAGE",
    "",
    "a storage connection string: dead letters go to blob containers of that account instead of the folder",
);
pub const KEY: Setting = Setting::secret(
    "ORDERGRID_EMULATOR_KEY",
    "generated",
    "use this access key (base64) as key1 of every topic",
);
pub const FUNCTIONS_BASE_URL: Setting = Setting::new(
    "ORDERGRID_FUNCTIONS_BASE_URL",
    "http://localhost:7071",
    "Functions host for `AzureFunction` destinations",
);
pub const TIME_SCALE: Setting = Setting::new(
    "ORDERGRID_EMULATOR_TIME_SCALE",
    "1",
    "multiplies Azure's retry schedule, time to live and dead-letter delay",
);
pub const DELIVERY_TIMEOUT: Setting = Setting::new(
    "ORDERGRID_EMULATOR_DELIVERY_TIMEOUT",
    "30s",
    "Event Grid's response timeout",
);
pub const DEAD_LETTER_DELAY: Setting = Setting::new(
    "ORDERGRID_EMULATOR_DEAD_LETTER_DELAY",
    "5m",
    "wait before a dead letter is written (then scaled)",
);
pub const CONCURRENCY: Setting = Setting::new(
    "ORDERGRID_EMULATOR_CONCURRENCY",
    "64",
    "deliveries in flight per subscription",
);
pub const MAX_IN_FLIGHT: Setting = Setting::new(
    "ORDERGRID_EMULATOR_MAX_IN_FLIGHT",
    "64",
    "deliveries in flight across all subscriptions, each also within its own ORDERGRID_EMULATOR_CONCURRENCY (more costs CPU per delivery: bench/emulator.sh ONLY=scaling)",
);
pub const MAX_PENDING: Setting = Setting::new(
    "ORDERGRID_EMULATOR_MAX_PENDING",
    "10000",
    "retries a subscription may hold before it stops taking new events",
);
pub const PUBLISH_BUFFER: Setting = Setting::new(
    "ORDERGRID_EMULATOR_PUBLISH_BUFFER",
    "64MiB",
    "request bodies the publish API reads and stores at once, by their declared size; more wait their turn (memory stays bounded under bursts)",
);
pub const SIMPLE_PUBLISH: Setting = Setting::new(
    "ORDERGRID_EMULATOR_SIMPLE_PUBLISH",
    "true",
    "serve a key-less `POST /publish` taking `{eventType, data}` (the seed's curl command); not an Azure API",
);
/// The former name of [`SIMPLE_PUBLISH`], still read (with a warning) when the new one is unset.
pub const SIMPLE_PUBLISH_DEPRECATED: Setting = Setting::new(
    "ORDERGRID_EMULATOR_SEED_COMPAT",
    "true",
    "deprecated: the former name of `ORDERGRID_EMULATOR_SIMPLE_PUBLISH`",
);
pub const HTTPS_PORT: Setting = Setting::new(
    "ORDERGRID_EMULATOR_HTTPS_PORT",
    "7443",
    "also serve the emulator's API over HTTPS here (`0` picks a port, `off` none), with a development CA made in `<data>/tls`",
);
pub const ENTRA: Setting = Setting::new(
    "ORDERGRID_EMULATOR_ENTRA",
    "local",
    "`local`: accept Microsoft Entra ID bearer tokens over HTTPS by form, audience and expiry, not signature; `off`: refuse them",
);

pub const TRACES: Setting = Setting::new(
    "ORDERGRID_EMULATOR_TRACES",
    "false",
    "keep traces for the dashboard's waterfall: a span per delivery attempt of an event that carries trace context, and the spans OTLP exporters send to `/v1/traces` (in memory, the newest 20,000); `ordergrid dev` turns it on",
);

/// The emulator's settings, in the README's order.
pub const SETTINGS: &[Setting] = &[
    PORT,
    SUBSCRIPTIONS,
    DATA,
    DEAD_LETTERS,
    DEAD_LETTER_STORAGE,
    KEY,
    FUNCTIONS_BASE_URL,
    TIME_SCALE,
    DELIVERY_TIMEOUT,
    DEAD_LETTER_DELAY,
    CONCURRENCY,
    MAX_IN_FLIGHT,
    MAX_PENDING,
    PUBLISH_BUFFER,
    SIMPLE_PUBLISH,
    HTTPS_PORT,
    ENTRA,
    TRACES,
    crate::local_guard::ALLOWED_HOSTS,
    crate::http_server::HEADER_TIMEOUT,
    crate::http_server::BODY_TIMEOUT,
    crate::http_server::MAX_CONNECTIONS,
];

#[derive(Debug, Clone)]
pub struct EmulatorSettings {
    /// 0 picks a free port.
    pub port: u16,
    pub subscriptions_file: PathBuf,
    /// Spool, state and keys live here.
    pub data_dir: PathBuf,
    pub dead_letters: DeadLetterStorage,
    /// Use this access key (key1) for every topic instead of the generated ones.
    pub key: Option<TopicKey>,
    pub delivery: DeliverySettings,
    /// Serve the key-less `POST /publish`.
    pub simple_publish: bool,
    /// Also serve the API over HTTPS on this port (0 picks one), with the development
    /// certificate in `<data_dir>/tls`.
    pub https_port: Option<u16>,
    pub entra: EntraMode,
    /// Keep traces for the dashboard ([`TRACES`]).
    pub traces: bool,
    /// Where the emulator's own spans are exported, besides the dashboard.
    pub trace_export: TraceExport,
    /// Bytes of request bodies the publish API holds at once ([`PUBLISH_BUFFER`]).
    pub publish_buffer: usize,
    /// What the API refuses from hostile pages.
    pub guard: LocalGuard,
    /// Timeouts and the connection cap of its HTTP and HTTPS listeners.
    pub http: HttpLimits,
}

/// Durations and limits of delivery. Azure's durations are multiplied by `time_scale`.
#[derive(Debug, Clone)]
pub struct DeliverySettings {
    /// 1.0 is Azure's timing; 0.001 turns the 10 s first retry into 10 ms.
    pub time_scale: f64,
    /// How long an attempt may take before it counts as timed out (Azure: 30 s). Not scaled.
    pub delivery_timeout: Duration,
    /// Wait between the end of delivery and the dead-letter write (Azure: about 5 min). Scaled.
    pub dead_letter_delay: Duration,
    /// Requests in flight per subscription.
    pub concurrency: usize,
    /// Requests in flight across all subscriptions (see [`webhook::Sender::permit`]).
    ///
    /// [`webhook::Sender::permit`]: super::delivery::webhook::Sender::permit
    pub max_in_flight: usize,
    /// Retries a subscription may have waiting before it stops taking new events (back-pressure).
    pub max_pending: usize,
    /// Base URL of the Functions host (`func start` or the stand-in) for AzureFunction destinations.
    pub functions_base_url: String,
    /// How often progress (the watermark) is written. Not scaled, not a setting: it bounds how
    /// much is delivered again after a crash, not anything Azure does.
    pub watermark_interval: Duration,
}

impl EmulatorSettings {
    pub fn from_env(env: &HashMap<String, String>) -> Result<Self, SettingsError> {
        let mut r = Reader::new(env);
        let port = r.port(&PORT);
        let data_dir = PathBuf::from(r.string(&DATA));
        let key = r.raw(&KEY).and_then(|raw| match TopicKey::parse(raw) {
            Ok(key) => Some(key),
            Err(e) => {
                r.error(format!("{}: {e}", KEY.name));
                None
            }
        });
        let delivery = DeliverySettings::read(&mut r);
        let simple_publish =
            if r.raw(&SIMPLE_PUBLISH).is_none() && r.raw(&SIMPLE_PUBLISH_DEPRECATED).is_some() {
                tracing::warn!(
                    "{} is deprecated: set {} instead",
                    SIMPLE_PUBLISH_DEPRECATED.name,
                    SIMPLE_PUBLISH.name
                );
                r.flag(&SIMPLE_PUBLISH_DEPRECATED)
            } else {
                r.flag(&SIMPLE_PUBLISH)
            };
        let https_port = r
            .parse(
                &HTTPS_PORT,
                "not a port number (0-65535) or off",
                |s| match s {
                    "off" => Some(None),
                    port => parse_port(port).map(Some),
                },
            )
            .flatten();
        let entra = r
            .parse(&ENTRA, "must be local or off", |s| match s {
                "local" => Some(EntraMode::Local),
                "off" => Some(EntraMode::Off),
                _ => None,
            })
            .unwrap_or(EntraMode::Local);
        let traces = r.flag(&TRACES);
        let trace_export = TraceExport::read(&r);
        let guard = LocalGuard::read(&r);
        let http = HttpLimits::read(&mut r);
        let publish_buffer = r
            .parse(&PUBLISH_BUFFER, "a size of 1MiB or more, like 64MiB", |s| {
                let (number, unit) =
                    s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
                let unit = match unit.trim() {
                    "" | "B" => 1,
                    "KiB" => 1024,
                    "MiB" => 1024 * 1024,
                    "GiB" => 1024 * 1024 * 1024,
                    _ => return None,
                };
                number
                    .parse::<usize>()
                    .ok()?
                    .checked_mul(unit)
                    .filter(|n| *n >= 1024 * 1024)
            })
            .unwrap_or(64 * 1024 * 1024);
        let subscriptions_file = PathBuf::from(r.string(&SUBSCRIPTIONS));
        let dead_letters = match BlobConnection::from_env(env, DEAD_LETTER_STORAGE.name) {
            Ok(Some(connection)) => DeadLetterStorage::Blob(connection),
            Ok(None) => DeadLetterStorage::Folder(
                r.raw(&DEAD_LETTERS)
                    .map(PathBuf::from)
                    .unwrap_or_else(|| data_dir.join("dead-letters")),
            ),
            Err(errors) => {
                r.errors(errors);
                DeadLetterStorage::Folder(PathBuf::new())
            }
        };
        r.finish(Self {
            port,
            subscriptions_file,
            data_dir,
            dead_letters,
            key,
            delivery,
            simple_publish,
            https_port,
            entra,
            traces,
            trace_export,
            guard,
            http,
            publish_buffer,
        })
    }
}

impl DeliverySettings {
    fn read(r: &mut Reader<'_>) -> Self {
        let functions_base_url = r.string(&FUNCTIONS_BASE_URL);
        if !(functions_base_url.starts_with("http://")
            || functions_base_url.starts_with("https://"))
        {
            r.problem(
                &FUNCTIONS_BASE_URL,
                &functions_base_url,
                "must be an http(s) URL",
            );
        }
        Self {
            time_scale: r
                .parse(
                    &TIME_SCALE,
                    "not a positive number (1 is Azure's timing, 0.001 makes a 10 s retry take 10 ms)",
                    |s| s.parse::<f64>().ok().filter(|f| f.is_finite() && *f > 0.0),
                )
                .unwrap_or(1.0),
            delivery_timeout: r.duration(&DELIVERY_TIMEOUT),
            dead_letter_delay: r.duration(&DEAD_LETTER_DELAY),
            concurrency: r
                .parse(&CONCURRENCY, "not a number from 1 to 10000", |s| {
                    s.parse().ok().filter(|n| (1..=10_000).contains(n))
                })
                .unwrap_or(1),
            max_in_flight: r
                .parse(&MAX_IN_FLIGHT, "not a number from 1 to 100000", |s| {
                    s.parse().ok().filter(|n| (1..=100_000).contains(n))
                })
                .unwrap_or(1),
            max_pending: r
                .parse(&MAX_PENDING, "not a number from 1 to 10000000", |s| {
                    s.parse().ok().filter(|n| (1..=10_000_000).contains(n))
                })
                .unwrap_or(1),
            functions_base_url,
            watermark_interval: Duration::from_millis(50),
        }
    }

    pub fn scaled(&self, azure: Duration) -> Duration {
        azure.mul_f64(self.time_scale)
    }
}

/// The declared defaults: Azure's timing.
impl Default for DeliverySettings {
    fn default() -> Self {
        let unset = HashMap::new();
        let mut r = Reader::new(&unset);
        let defaults = Self::read(&mut r);
        r.finish(defaults).expect("the declared defaults parse")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::Layered;
    use crate::settings::env_of as env;

    #[test]
    fn emulator_settings_default_to_azures_timing_and_name_bad_values() {
        let s = EmulatorSettings::from_env(&env(&[])).unwrap();
        assert_eq!(s.port, 7080);
        assert_eq!(s.https_port, Some(7443));
        assert!(s.simple_publish);
        assert_eq!(s.delivery.time_scale, 1.0);
        assert_eq!(s.delivery.delivery_timeout, Duration::from_secs(30));
        assert_eq!(s.delivery.dead_letter_delay, Duration::from_secs(300));
        assert_eq!(s.delivery.functions_base_url, "http://localhost:7071");
        let err = EmulatorSettings::from_env(&env(&[
            ("ORDERGRID_EMULATOR_TIME_SCALE", "0"),
            ("ORDERGRID_EMULATOR_KEY", "not base64!"),
            ("ORDERGRID_FUNCTIONS_BASE_URL", "localhost:7071"),
        ]))
        .unwrap_err()
        .to_string();
        assert!(err.contains("ORDERGRID_EMULATOR_TIME_SCALE=\"0\""), "{err}");
        assert!(
            err.contains("ORDERGRID_EMULATOR_KEY:") && !err.contains("not base64!"),
            "{err}"
        );
        assert!(err.contains("ORDERGRID_FUNCTIONS_BASE_URL"), "{err}");
        let flags = Layered::over(&env(&[("ORDERGRID_EMULATOR_PORT", "9")]))
            .set(&PORT, 0)
            .set(&TIME_SCALE, 0.001)
            .set(&HTTPS_PORT, "off");
        let overridden = EmulatorSettings::from_env(flags.env()).unwrap();
        assert_eq!(
            (
                overridden.port,
                overridden.delivery.time_scale,
                overridden.https_port
            ),
            (0, 0.001, None)
        );
    }

    #[test]
    fn emulator_dead_letters_go_to_blob_storage_when_a_connection_is_named() {
        let s = EmulatorSettings::from_env(&env(&[("ORDERGRID_EMULATOR_DATA", "d")])).unwrap();
        assert!(
            matches!(&s.dead_letters, DeadLetterStorage::Folder(path) if path == &PathBuf::from("d/dead-letters"))
        );
        let s = EmulatorSettings::from_env(&env(&[(
            DEAD_LETTER_STORAGE.name,
            "UseDevelopmentStorage=true",
        )]))
        .unwrap();
        assert!(matches!(s.dead_letters, DeadLetterStorage::Blob(_)));
        let err = EmulatorSettings::from_env(&env(&[(DEAD_LETTER_STORAGE.name, "hunter2")]))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("ORDERGRID_EMULATOR_DEAD_LETTER_STORAGE: not a connection string")
                && !err.contains("hunter2"),
            "{err}"
        );
    }

    #[test]
    fn the_simple_publish_endpoint_still_answers_to_its_old_setting() {
        let on = |pairs: &[(&str, &str)]| {
            EmulatorSettings::from_env(&env(pairs))
                .unwrap()
                .simple_publish
        };
        assert!(!on(&[(SIMPLE_PUBLISH_DEPRECATED.name, "false")]));
        assert!(on(&[(SIMPLE_PUBLISH_DEPRECATED.name, "true")]));
        assert!(on(&[
            (SIMPLE_PUBLISH_DEPRECATED.name, "false"),
            (SIMPLE_PUBLISH.name, "true")
        ]));
        assert!(!on(&[(SIMPLE_PUBLISH.name, "false")]));
        let err = EmulatorSettings::from_env(&env(&[(SIMPLE_PUBLISH_DEPRECATED.name, "yes")]))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("ORDERGRID_EMULATOR_SEED_COMPAT=\"yes\""),
            "{err}"
        );
    }
}
