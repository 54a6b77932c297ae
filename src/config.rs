//! Settings from environment variables (app settings in Azure, `local.settings.json` under Core
//! Tools), validated once at start-up.
//!
//! Every problem is reported at once, each naming the setting and quoting its value (secrets
//! excepted), e.g. `ORDERGRID_SMTP_PORT="abc": not a port number (1-65535)`.

use std::collections::HashMap;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use lettre::message::Mailbox;
use rust_decimal::Decimal;

use crate::blob::{BlobConnection, BlobTiming};
use crate::domain::{Currency, OrderLimits};
use crate::email::{SmtpSettings, SmtpTls};
use crate::emulator::EmulatorSettings;
use crate::emulator::dead_letter::DeadLetterStorage;
use crate::emulator::delivery::DeliverySettings;
use crate::emulator::entra::EntraMode;
use crate::eventgrid::sas::TopicKey;

/// The port the Functions host tells a custom handler to listen on.
pub const PORT_SETTING: &str = "FUNCTIONS_CUSTOMHANDLER_PORT";

/// The connection (Functions conventions) the blob store uses: `ORDERGRID_STORAGE` (a connection
/// string) or `ORDERGRID_STORAGE__blobServiceUri` (+ `__credential`, `__clientId`).
pub const STORAGE_CONNECTION: &str = "ORDERGRID_STORAGE";

/// The emulator's dead-letter account: a connection named like the handler's.
pub const DEAD_LETTER_STORAGE_CONNECTION: &str = "ORDERGRID_EMULATOR_DEAD_LETTER_STORAGE";

/// Where records live.
#[derive(Debug, Clone)]
pub enum StoreSettings {
    Folder {
        path: PathBuf,
    },
    /// Blob containers `orders` and `email-ledger` of a Storage account.
    Blob {
        connection: BlobConnection,
        timing: BlobTiming,
    },
}

#[derive(Debug, Clone)]
pub enum EmailSettings {
    Outbox { path: PathBuf },
    Smtp(SmtpSettings),
}

/// Everything `ordergrid serve` reads.
#[derive(Debug, Clone)]
pub struct HandlerSettings {
    pub port: u16,
    pub store: StoreSettings,
    pub email: EmailSettings,
    pub email_from: Mailbox,
    /// How long a delivery holds the right to send an order's email before another may take over.
    pub email_claim_timeout: Duration,
    pub limits: OrderLimits,
    pub max_body_bytes: usize,
}

/// All the settings that were wrong, one line each.
#[derive(Debug)]
pub struct SettingsError(pub Vec<String>);

impl fmt::Display for SettingsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "invalid settings:")?;
        for line in &self.0 {
            writeln!(f, "  {line}")?;
        }
        Ok(())
    }
}

impl std::error::Error for SettingsError {}

/// The documented settings with their defaults; `local.settings.json.example` lists the same.
pub const SETTINGS: &[(&str, &str, &str)] = &[
    (
        PORT_SETTING,
        "",
        "port to listen on (set by the Functions host)",
    ),
    (
        "ORDERGRID_STORE",
        "folder",
        "where orders and the email ledger live: folder or blob",
    ),
    (
        "ORDERGRID_STORE_PATH",
        ".ordergrid/store",
        "folder of the folder store",
    ),
    (
        STORAGE_CONNECTION,
        "",
        "blob store: a storage connection string (UseDevelopmentStorage=true for Azurite)",
    ),
    (
        "ORDERGRID_STORAGE__blobServiceUri",
        "",
        "blob store, identity-based: https://<account>.blob.core.windows.net",
    ),
    (
        "ORDERGRID_STORAGE__credential",
        "",
        "managedidentity to insist on the managed identity",
    ),
    (
        "ORDERGRID_STORAGE__clientId",
        "",
        "client id of a user-assigned managed identity",
    ),
    (
        "ORDERGRID_STORE_TIMEOUT",
        "10s",
        "blob store: how long one request may take before it is retried",
    ),
    (
        "ORDERGRID_EMAIL_TRANSPORT",
        "outbox",
        "outbox (.eml files) or smtp",
    ),
    (
        "ORDERGRID_OUTBOX_PATH",
        ".ordergrid/outbox",
        "folder the outbox writes .eml files to",
    ),
    (
        "ORDERGRID_EMAIL_FROM",
        "ordergrid <orders@ordergrid.example>",
        "sender of confirmations",
    ),
    ("ORDERGRID_SMTP_HOST", "", "SMTP server (required for smtp)"),
    ("ORDERGRID_SMTP_PORT", "587/465/25 by TLS mode", "SMTP port"),
    (
        "ORDERGRID_SMTP_TLS",
        "starttls",
        "starttls, implicit or none",
    ),
    ("ORDERGRID_SMTP_USERNAME", "", "SMTP AUTH user"),
    (
        "ORDERGRID_SMTP_PASSWORD",
        "",
        "SMTP AUTH password (a Key Vault reference in Azure)",
    ),
    (
        "ORDERGRID_SMTP_CA_CERT",
        "",
        "extra CA certificate (PEM file) to trust",
    ),
    (
        "ORDERGRID_SMTP_TIMEOUT",
        "15s",
        "SMTP connect/command timeout",
    ),
    (
        "ORDERGRID_EMAIL_CLAIM_TIMEOUT",
        "2m",
        "how long a delivery holds an email before another may send it",
    ),
    (
        "ORDERGRID_MAX_ORDER_VALUE",
        "1000000",
        "orders above this are rejected as absurd",
    ),
    (
        "ORDERGRID_DEFAULT_CURRENCY",
        "USD",
        "currency of orders that name none",
    ),
    (
        "ORDERGRID_MAX_BODY_BYTES",
        "4194304",
        "largest invocation body accepted",
    ),
    (
        "ORDERGRID_LOG",
        "info",
        "log filter (tracing EnvFilter syntax)",
    ),
    (
        "ORDERGRID_LOG_FORMAT",
        "auto",
        "json, text, or auto (JSON unless on a terminal)",
    ),
];

/// The emulator's settings, with Azure's durations as defaults.
pub const EMULATOR_SETTINGS: &[(&str, &str, &str)] = &[
    ("ORDERGRID_EMULATOR_PORT", "7080", "port on 127.0.0.1"),
    (
        "ORDERGRID_EMULATOR_SUBSCRIPTIONS",
        "infra/subscriptions.json",
        "topics and subscriptions file",
    ),
    (
        "ORDERGRID_EMULATOR_DATA",
        ".ordergrid/emulator",
        "spool, delivery state and topic keys",
    ),
    (
        "ORDERGRID_EMULATOR_DEAD_LETTERS",
        "<data>/dead-letters",
        "dead-letter folder (laid out like the container)",
    ),
    (
        DEAD_LETTER_STORAGE_CONNECTION,
        "",
        "dead letters to blob containers of this storage account (a connection string) instead",
    ),
    (
        "ORDERGRID_EMULATOR_KEY",
        "generated",
        "access key (base64) to use as key1 of every topic",
    ),
    (
        "ORDERGRID_FUNCTIONS_BASE_URL",
        "http://localhost:7071",
        "Functions host for AzureFunction destinations",
    ),
    (
        "ORDERGRID_EMULATOR_TIME_SCALE",
        "1",
        "multiplies Azure's retry schedule, TTL and dead-letter delay",
    ),
    (
        "ORDERGRID_EMULATOR_DELIVERY_TIMEOUT",
        "30s",
        "how long a delivery may take",
    ),
    (
        "ORDERGRID_EMULATOR_DEAD_LETTER_DELAY",
        "5m",
        "wait before a dead letter is written (then scaled)",
    ),
    (
        "ORDERGRID_EMULATOR_CONCURRENCY",
        "64",
        "deliveries in flight per subscription",
    ),
    (
        "ORDERGRID_EMULATOR_MAX_PENDING",
        "10000",
        "retries per subscription before it stops taking new events",
    ),
    (
        "ORDERGRID_EMULATOR_SEED_COMPAT",
        "true",
        "serve the seed's key-less POST /publish",
    ),
    (
        "ORDERGRID_EMULATOR_HTTPS_PORT",
        "7443",
        "also serve over HTTPS here (off: not at all), with a local CA made in <data>/tls",
    ),
    (
        "ORDERGRID_EMULATOR_ENTRA",
        "local",
        "local: accept Entra ID bearer tokens by form, audience and expiry (not signature); off: refuse them",
    ),
];

/// Reads settings from a map (the process environment, or a test's own map).
struct Reader<'a> {
    env: &'a HashMap<String, String>,
    errors: Vec<String>,
}

impl Reader<'_> {
    fn raw(&self, name: &str) -> Option<&str> {
        self.env
            .get(name)
            .map(|v| v.trim())
            .filter(|v| !v.is_empty())
    }

    fn string(&self, name: &str, default: &str) -> String {
        self.raw(name).unwrap_or(default).to_owned()
    }

    fn parse<T>(&mut self, name: &str, default: T, what: &str, f: impl Fn(&str) -> Option<T>) -> T {
        let Some(raw) = self.raw(name).map(str::to_owned) else {
            return default;
        };
        f(&raw).unwrap_or_else(|| {
            self.errors.push(format!("{name}={raw:?}: {what}"));
            default
        })
    }

    fn duration(&mut self, name: &str, default: Duration) -> Duration {
        self.parse(
            name,
            default,
            "not a duration (examples: 500ms, 15s, 2m, 1h)",
            parse_duration,
        )
    }
}

/// `250ms`, `15s`, `2m`, `1h`, or a bare number of seconds.
pub fn parse_duration(raw: &str) -> Option<Duration> {
    let raw = raw.trim();
    let split = raw
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(raw.len());
    let (number, unit) = raw.split_at(split);
    let value: f64 = number.parse().ok()?;
    let seconds = match unit.trim() {
        "ms" => value / 1000.0,
        "" | "s" => value,
        "m" => value * 60.0,
        "h" => value * 3600.0,
        _ => return None,
    };
    (seconds.is_finite() && seconds >= 0.0).then(|| Duration::from_secs_f64(seconds))
}

impl HandlerSettings {
    pub fn from_process_env() -> Result<Self, SettingsError> {
        Self::from_env(&std::env::vars().collect())
    }

    /// `port_override` wins over `FUNCTIONS_CUSTOMHANDLER_PORT` (for `serve --port`).
    pub fn from_env(env: &HashMap<String, String>) -> Result<Self, SettingsError> {
        Self::from_env_with_port(env, None)
    }

    pub fn from_env_with_port(
        env: &HashMap<String, String>,
        port_override: Option<u16>,
    ) -> Result<Self, SettingsError> {
        let mut r = Reader {
            env,
            errors: vec![],
        };
        let port = match (port_override, r.raw(PORT_SETTING)) {
            (Some(port), _) => port,
            (None, None) => {
                r.errors.push(format!(
                    "{PORT_SETTING} is not set: the Functions host sets it; to run the handler on \
                     its own, set it or pass --port"
                ));
                0
            }
            (None, Some(_)) => r.parse(PORT_SETTING, 0, "not a port number (0-65535)", |s| {
                s.parse().ok()
            }),
        };
        let store = store_settings(&mut r);
        let smtp_timeout = r.duration("ORDERGRID_SMTP_TIMEOUT", Duration::from_secs(15));
        let email = match r.string("ORDERGRID_EMAIL_TRANSPORT", "outbox").as_str() {
            "outbox" => EmailSettings::Outbox {
                path: r
                    .string("ORDERGRID_OUTBOX_PATH", ".ordergrid/outbox")
                    .into(),
            },
            "smtp" => EmailSettings::Smtp(smtp_settings(&mut r, smtp_timeout)),
            other => {
                r.errors.push(format!(
                    "ORDERGRID_EMAIL_TRANSPORT={other:?}: must be outbox or smtp"
                ));
                EmailSettings::Outbox {
                    path: PathBuf::new(),
                }
            }
        };
        let default_from: Mailbox = "ordergrid <orders@ordergrid.example>"
            .parse()
            .expect("the default sender is a valid mailbox");
        let email_from = r.parse(
            "ORDERGRID_EMAIL_FROM",
            default_from,
            "not a mailbox (examples: orders@shop.example, Shop <orders@shop.example>)",
            |s| s.parse().ok(),
        );
        let email_claim_timeout =
            r.duration("ORDERGRID_EMAIL_CLAIM_TIMEOUT", Duration::from_secs(120));
        if let EmailSettings::Smtp(smtp) = &email
            && email_claim_timeout <= smtp.timeout
        {
            r.errors.push(format!(
                "ORDERGRID_EMAIL_CLAIM_TIMEOUT ({email_claim_timeout:?}) must be longer than \
                     ORDERGRID_SMTP_TIMEOUT ({:?}), or a slow send could be duplicated",
                smtp.timeout
            ));
        }
        let defaults = OrderLimits::default();
        let limits = OrderLimits {
            max_order_value: r.parse(
                "ORDERGRID_MAX_ORDER_VALUE",
                defaults.max_order_value,
                "not a positive decimal number",
                |s| s.parse::<Decimal>().ok().filter(|d| *d > Decimal::ZERO),
            ),
            default_currency: r.parse(
                "ORDERGRID_DEFAULT_CURRENCY",
                defaults.default_currency,
                "not an ISO 4217 currency code",
                Currency::parse,
            ),
            ..defaults
        };
        let max_body_bytes = r.parse(
            "ORDERGRID_MAX_BODY_BYTES",
            4 * 1024 * 1024,
            "not a number of bytes from 1024 to 104857600",
            |s| {
                s.parse()
                    .ok()
                    .filter(|n| (1024..=100 * 1024 * 1024).contains(n))
            },
        );
        if r.errors.is_empty() {
            Ok(Self {
                port,
                store,
                email,
                email_from,
                email_claim_timeout,
                limits,
                max_body_bytes,
            })
        } else {
            Err(SettingsError(r.errors))
        }
    }
}

/// Overrides from the command line; `None` keeps the environment's value.
#[derive(Debug, Clone, Default)]
pub struct EmulatorOverrides {
    pub port: Option<u16>,
    pub subscriptions_file: Option<PathBuf>,
    pub data_dir: Option<PathBuf>,
    pub functions_base_url: Option<String>,
    pub time_scale: Option<f64>,
    /// `Some(None)` turns HTTPS off.
    pub https_port: Option<Option<u16>>,
}

impl EmulatorOverrides {
    /// The emulator's settings, without where dead letters go (see [`EmulatorOverrides::load`]).
    pub fn settings(
        &self,
        env: &HashMap<String, String>,
    ) -> Result<EmulatorSettings, SettingsError> {
        self.load(env).map(|(settings, _)| settings)
    }

    /// The emulator's settings and where its dead letters go: the folder, or blob containers
    /// when `ORDERGRID_EMULATOR_DEAD_LETTER_STORAGE` names a storage account.
    pub fn load(
        &self,
        env: &HashMap<String, String>,
    ) -> Result<(EmulatorSettings, DeadLetterStorage), SettingsError> {
        let mut r = Reader {
            env,
            errors: vec![],
        };
        let port = r.parse(
            "ORDERGRID_EMULATOR_PORT",
            7080,
            "not a port number (0-65535)",
            |s| s.parse().ok(),
        );
        let data_dir: PathBuf = r
            .string("ORDERGRID_EMULATOR_DATA", ".ordergrid/emulator")
            .into();
        let data_dir = self.data_dir.clone().unwrap_or(data_dir);
        let key = match r.raw("ORDERGRID_EMULATOR_KEY").map(str::to_owned) {
            None => None,
            Some(raw) => match TopicKey::parse(&raw) {
                Ok(key) => Some(key),
                Err(e) => {
                    // The value is a secret: name the setting, never quote it.
                    r.errors.push(format!("ORDERGRID_EMULATOR_KEY: {e}"));
                    None
                }
            },
        };
        let functions_base_url = r.string("ORDERGRID_FUNCTIONS_BASE_URL", "http://localhost:7071");
        let functions_base_url = self
            .functions_base_url
            .clone()
            .unwrap_or(functions_base_url);
        if !(functions_base_url.starts_with("http://")
            || functions_base_url.starts_with("https://"))
        {
            r.errors.push(format!(
                "ORDERGRID_FUNCTIONS_BASE_URL={functions_base_url:?}: must be an http(s) URL"
            ));
        }
        let time_scale = r.parse(
            "ORDERGRID_EMULATOR_TIME_SCALE",
            1.0,
            "not a positive number (1 is Azure's timing, 0.001 makes a 10 s retry take 10 ms)",
            |s| s.parse::<f64>().ok().filter(|f| f.is_finite() && *f > 0.0),
        );
        let defaults = DeliverySettings::default();
        let delivery = DeliverySettings {
            time_scale: self.time_scale.unwrap_or(time_scale),
            delivery_timeout: r.duration(
                "ORDERGRID_EMULATOR_DELIVERY_TIMEOUT",
                defaults.delivery_timeout,
            ),
            dead_letter_delay: r.duration(
                "ORDERGRID_EMULATOR_DEAD_LETTER_DELAY",
                defaults.dead_letter_delay,
            ),
            concurrency: r.parse(
                "ORDERGRID_EMULATOR_CONCURRENCY",
                defaults.concurrency,
                "not a number from 1 to 10000",
                |s| s.parse().ok().filter(|n| (1..=10_000).contains(n)),
            ),
            max_pending: r.parse(
                "ORDERGRID_EMULATOR_MAX_PENDING",
                defaults.max_pending,
                "not a number from 1 to 10000000",
                |s| s.parse().ok().filter(|n| (1..=10_000_000).contains(n)),
            ),
            functions_base_url,
            watermark_interval: defaults.watermark_interval,
        };
        let seed_compat = r.parse(
            "ORDERGRID_EMULATOR_SEED_COMPAT",
            true,
            "must be true or false",
            |s| s.parse().ok(),
        );
        let https_port = r.parse(
            "ORDERGRID_EMULATOR_HTTPS_PORT",
            Some(7443),
            "not a port number (0-65535) or off",
            |s| match s {
                "off" => Some(None),
                port => port.parse().ok().map(Some),
            },
        );
        let entra = r.parse(
            "ORDERGRID_EMULATOR_ENTRA",
            EntraMode::Local,
            "must be local or off",
            |s| match s {
                "local" => Some(EntraMode::Local),
                "off" => Some(EntraMode::Off),
                _ => None,
            },
        );
        let subscriptions_file: PathBuf = r
            .string(
                "ORDERGRID_EMULATOR_SUBSCRIPTIONS",
                "infra/subscriptions.json",
            )
            .into();
        let dead_letter_dir = r.raw("ORDERGRID_EMULATOR_DEAD_LETTERS").map(PathBuf::from);
        let dead_letter_storage =
            match BlobConnection::from_env(env, DEAD_LETTER_STORAGE_CONNECTION) {
                Ok(Some(connection)) => DeadLetterStorage::Blob(connection),
                Ok(None) => DeadLetterStorage::Folder,
                Err(errors) => {
                    r.errors.extend(errors);
                    DeadLetterStorage::Folder
                }
            };
        if !r.errors.is_empty() {
            return Err(SettingsError(r.errors));
        }
        let settings = EmulatorSettings {
            port: self.port.unwrap_or(port),
            subscriptions_file: self
                .subscriptions_file
                .clone()
                .unwrap_or(subscriptions_file),
            data_dir,
            dead_letter_dir,
            key,
            delivery,
            seed_compat,
            https_port: self.https_port.unwrap_or(https_port),
            entra,
        };
        Ok((settings, dead_letter_storage))
    }
}

/// `ORDERGRID_STORE` and the settings of the store it names.
fn store_settings(r: &mut Reader<'_>) -> StoreSettings {
    let store_timeout = r.parse(
        "ORDERGRID_STORE_TIMEOUT",
        BlobTiming::default().try_timeout,
        "not a duration above zero (examples: 500ms, 10s)",
        |s| parse_duration(s).filter(|d| !d.is_zero()),
    );
    match r.string("ORDERGRID_STORE", "folder").as_str() {
        "folder" => StoreSettings::Folder {
            path: r.string("ORDERGRID_STORE_PATH", ".ordergrid/store").into(),
        },
        "blob" => match BlobConnection::from_env(r.env, STORAGE_CONNECTION) {
            Ok(Some(connection)) => StoreSettings::Blob {
                connection,
                timing: BlobTiming {
                    try_timeout: store_timeout,
                    ..BlobTiming::default()
                },
            },
            Ok(None) => {
                r.errors.push(format!(
                    "ORDERGRID_STORE=blob needs {STORAGE_CONNECTION} (a connection string; \
                     UseDevelopmentStorage=true for Azurite) or \
                     {STORAGE_CONNECTION}__blobServiceUri (identity-based, as in Azure)"
                ));
                StoreSettings::Folder {
                    path: PathBuf::new(),
                }
            }
            Err(errors) => {
                r.errors.extend(errors);
                StoreSettings::Folder {
                    path: PathBuf::new(),
                }
            }
        },
        other => {
            r.errors
                .push(format!("ORDERGRID_STORE={other:?}: must be folder or blob"));
            StoreSettings::Folder {
                path: PathBuf::new(),
            }
        }
    }
}

impl StoreSettings {
    /// Only the store's settings (for `ordergrid orders`, which reads what the handler wrote).
    pub fn from_env(env: &HashMap<String, String>) -> Result<Self, SettingsError> {
        let mut r = Reader {
            env,
            errors: vec![],
        };
        let store = store_settings(&mut r);
        if r.errors.is_empty() {
            Ok(store)
        } else {
            Err(SettingsError(r.errors))
        }
    }
}

fn smtp_settings(r: &mut Reader<'_>, timeout: Duration) -> SmtpSettings {
    let tls = r.parse(
        "ORDERGRID_SMTP_TLS",
        SmtpTls::StartTls,
        "must be starttls, implicit or none",
        |s| match s.to_ascii_lowercase().as_str() {
            "starttls" => Some(SmtpTls::StartTls),
            "implicit" | "tls" | "smtps" => Some(SmtpTls::Implicit),
            "none" => Some(SmtpTls::None),
            _ => None,
        },
    );
    let host = r.string("ORDERGRID_SMTP_HOST", "");
    if host.is_empty() {
        r.errors.push(
            "ORDERGRID_SMTP_HOST is not set: it is required when ORDERGRID_EMAIL_TRANSPORT=smtp"
                .into(),
        );
    }
    let port = r.parse(
        "ORDERGRID_SMTP_PORT",
        tls.default_port(),
        "not a port number (1-65535)",
        |s| s.parse().ok().filter(|p| *p > 0),
    );
    let username = r.raw("ORDERGRID_SMTP_USERNAME").map(str::to_owned);
    let password = r.raw("ORDERGRID_SMTP_PASSWORD").map(str::to_owned);
    if username.is_some() != password.is_some() {
        r.errors.push(
            "ORDERGRID_SMTP_USERNAME and ORDERGRID_SMTP_PASSWORD must be set together (or neither)"
                .into(),
        );
    }
    if username.is_some() && tls == SmtpTls::None && host != "localhost" && host != "127.0.0.1" {
        r.errors.push(format!(
            "ORDERGRID_SMTP_TLS=none with credentials would send the password in clear to {host}; \
             use starttls or implicit"
        ));
    }
    let ca_cert = r.raw("ORDERGRID_SMTP_CA_CERT").map(PathBuf::from);
    if let Some(path) = &ca_cert
        && !path.is_file()
    {
        r.errors.push(format!(
            "ORDERGRID_SMTP_CA_CERT={:?}: no such file",
            path.display().to_string()
        ));
    }
    SmtpSettings {
        host,
        port,
        tls,
        username,
        password,
        ca_cert,
        timeout,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn defaults_need_only_the_port() {
        let s = HandlerSettings::from_env(&env(&[(PORT_SETTING, "7072")])).unwrap();
        assert_eq!(s.port, 7072);
        assert!(matches!(s.email, EmailSettings::Outbox { .. }));
        assert_eq!(s.limits.default_currency.code(), "USD");
    }

    #[test]
    fn every_bad_setting_is_named_at_once() {
        let err = HandlerSettings::from_env(&env(&[
            (PORT_SETTING, "http"),
            ("ORDERGRID_EMAIL_TRANSPORT", "smtp"),
            ("ORDERGRID_SMTP_PORT", "abc"),
            ("ORDERGRID_SMTP_USERNAME", "u"),
            ("ORDERGRID_DEFAULT_CURRENCY", "dollars"),
            ("ORDERGRID_EMAIL_CLAIM_TIMEOUT", "soon"),
        ]))
        .unwrap_err();
        let text = err.to_string();
        for needle in [
            "FUNCTIONS_CUSTOMHANDLER_PORT=\"http\"",
            "ORDERGRID_SMTP_HOST is not set",
            "ORDERGRID_SMTP_PORT=\"abc\"",
            "must be set together",
            "ORDERGRID_DEFAULT_CURRENCY=\"dollars\"",
            "ORDERGRID_EMAIL_CLAIM_TIMEOUT=\"soon\"",
        ] {
            assert!(text.contains(needle), "{needle} missing in {text}");
        }
    }

    #[test]
    fn a_missing_port_says_who_sets_it() {
        let err = HandlerSettings::from_env(&env(&[])).unwrap_err();
        assert!(err.to_string().contains("the Functions host sets it"));
        assert!(HandlerSettings::from_env_with_port(&env(&[]), Some(0)).is_ok());
    }

    #[test]
    fn passwords_are_never_quoted() {
        let err = HandlerSettings::from_env(&env(&[
            (PORT_SETTING, "1"),
            ("ORDERGRID_EMAIL_TRANSPORT", "smtp"),
            ("ORDERGRID_SMTP_HOST", "smtp.example.com"),
            ("ORDERGRID_SMTP_TLS", "none"),
            ("ORDERGRID_SMTP_USERNAME", "u"),
            ("ORDERGRID_SMTP_PASSWORD", "hunter2"),
        ]))
        .unwrap_err();
        assert!(err.to_string().contains("password in clear"));
        assert!(!err.to_string().contains("hunter2"));
        let ok = HandlerSettings::from_env(&env(&[
            (PORT_SETTING, "1"),
            ("ORDERGRID_EMAIL_TRANSPORT", "smtp"),
            ("ORDERGRID_SMTP_HOST", "smtp.example.com"),
            ("ORDERGRID_SMTP_USERNAME", "u"),
            ("ORDERGRID_SMTP_PASSWORD", "hunter2"),
        ]))
        .unwrap();
        assert!(!format!("{ok:?}").contains("hunter2"));
    }

    #[test]
    fn emulator_settings_default_to_azures_timing_and_name_bad_values() {
        let s = EmulatorOverrides::default().settings(&env(&[])).unwrap();
        assert_eq!(s.port, 7080);
        assert_eq!(s.delivery.time_scale, 1.0);
        assert_eq!(s.delivery.delivery_timeout, Duration::from_secs(30));
        assert_eq!(s.delivery.dead_letter_delay, Duration::from_secs(300));
        let err = EmulatorOverrides::default()
            .settings(&env(&[
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
        let overridden = EmulatorOverrides {
            port: Some(0),
            time_scale: Some(0.001),
            ..Default::default()
        }
        .settings(&env(&[("ORDERGRID_EMULATOR_PORT", "9")]))
        .unwrap();
        assert_eq!(
            (overridden.port, overridden.delivery.time_scale),
            (0, 0.001)
        );
    }

    #[test]
    fn the_blob_store_reads_the_functions_style_connection_settings() {
        let port = (PORT_SETTING, "1");
        let blob = ("ORDERGRID_STORE", "blob");
        let err = HandlerSettings::from_env(&env(&[port, blob]))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("ORDERGRID_STORE=blob needs ORDERGRID_STORAGE"),
            "{err}"
        );
        let s = HandlerSettings::from_env(&env(&[
            port,
            blob,
            ("ORDERGRID_STORAGE", "UseDevelopmentStorage=true"),
            ("ORDERGRID_STORE_TIMEOUT", "2s"),
        ]))
        .unwrap();
        let StoreSettings::Blob { connection, timing } = s.store else {
            panic!("a blob store")
        };
        assert_eq!(
            connection.service_url().as_str(),
            "http://127.0.0.1:10000/devstoreaccount1"
        );
        assert_eq!(timing.try_timeout, Duration::from_secs(2));
        // What the Bicep sets in Azure, where the platform provides IDENTITY_ENDPOINT.
        let s = HandlerSettings::from_env(&env(&[
            port,
            blob,
            (
                "ORDERGRID_STORAGE__blobServiceUri",
                "https://acct.blob.core.windows.net",
            ),
            ("IDENTITY_ENDPOINT", "http://localhost:8081/msi/token"),
        ]))
        .unwrap();
        let StoreSettings::Blob { connection, .. } = s.store else {
            panic!("a blob store")
        };
        assert!(matches!(
            connection.auth(),
            crate::blob::BlobAuth::ManagedIdentity { client_id: None }
        ));
        let err = HandlerSettings::from_env(&env(&[
            port,
            blob,
            ("ORDERGRID_STORAGE", "AccountName=a;AccountKey=hunter2!"),
            ("ORDERGRID_STORE_TIMEOUT", "0s"),
        ]))
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("ORDERGRID_STORAGE: AccountKey is not base64"),
            "{err}"
        );
        assert!(err.contains("ORDERGRID_STORE_TIMEOUT=\"0s\""), "{err}");
        assert!(!err.contains("hunter2"), "{err}");
        let err = HandlerSettings::from_env(&env(&[port, ("ORDERGRID_STORE", "cosmos")]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("must be folder or blob"), "{err}");
    }

    #[test]
    fn emulator_dead_letters_go_to_blob_storage_when_a_connection_is_named() {
        let (_, storage) = EmulatorOverrides::default().load(&env(&[])).unwrap();
        assert!(matches!(storage, DeadLetterStorage::Folder));
        let (_, storage) = EmulatorOverrides::default()
            .load(&env(&[(
                DEAD_LETTER_STORAGE_CONNECTION,
                "UseDevelopmentStorage=true",
            )]))
            .unwrap();
        assert!(matches!(storage, DeadLetterStorage::Blob(_)));
        let err = EmulatorOverrides::default()
            .load(&env(&[(DEAD_LETTER_STORAGE_CONNECTION, "hunter2")]))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("ORDERGRID_EMULATOR_DEAD_LETTER_STORAGE: not a connection string")
                && !err.contains("hunter2"),
            "{err}"
        );
    }

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("250ms"), Some(Duration::from_millis(250)));
        assert_eq!(parse_duration("2m"), Some(Duration::from_secs(120)));
        assert_eq!(parse_duration("1.5s"), Some(Duration::from_millis(1500)));
        assert_eq!(parse_duration("10"), Some(Duration::from_secs(10)));
        assert_eq!(parse_duration("-1s"), None);
        assert_eq!(parse_duration("1d"), None);
    }
}
