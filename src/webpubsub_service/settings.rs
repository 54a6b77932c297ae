//! The local Web PubSub service's settings: where it listens, its access key, and how long a
//! reliable client's messages wait for it to come back.
//!
//! `ordergrid webpubsub`'s flags and what `ordergrid dev` wires up reach
//! [`ServiceSettings::from_env`] as settings layered over the environment, like the emulator's.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use crate::http_server::HttpLimits;
use crate::local_guard::LocalGuard;
use crate::settings::{Reader, Setting, SettingsError};
use crate::webpubsub::AccessKey;

pub const PORT: Setting = Setting::new(
    "ORDERGRID_WEBPUBSUB_PORT",
    "7090",
    "the local Web PubSub service's port on 127.0.0.1 (`0` picks one)",
);
pub const DATA: Setting = Setting::new(
    "ORDERGRID_WEBPUBSUB_DATA",
    ".ordergrid/webpubsub",
    "data folder: the access key (`access-key`), kept so connection strings survive restarts",
);
pub const KEY: Setting = Setting::secret(
    "ORDERGRID_WEBPUBSUB_KEY",
    "generated",
    "use this access key instead of the one generated into the data folder",
);
/// How long Azure keeps a dropped reliable session is not documented; the official client
/// (`webPubSubClient.ts`) gives up recovering after 30 s, so waiting longer would help nobody.
pub const RECOVERY_WINDOW: Setting = Setting::new(
    "ORDERGRID_WEBPUBSUB_RECOVERY_WINDOW",
    "30s",
    "how long a reliable client's dropped connection keeps its groups and unacknowledged messages for a reconnect",
);
pub const MAX_UNACKED: Setting = Setting::new(
    "ORDERGRID_WEBPUBSUB_MAX_UNACKED",
    "1000",
    "messages a reliable connection may leave unacknowledged before it is dropped as a slow client",
);

/// The service's settings, in the README's order.
pub const SETTINGS: &[Setting] = &[
    PORT,
    DATA,
    KEY,
    RECOVERY_WINDOW,
    MAX_UNACKED,
    crate::local_guard::ALLOWED_HOSTS,
    crate::http_server::HEADER_TIMEOUT,
    crate::http_server::BODY_TIMEOUT,
    crate::http_server::MAX_CONNECTIONS,
];

#[derive(Debug, Clone)]
pub struct ServiceSettings {
    /// 0 picks a free port.
    pub port: u16,
    pub data_dir: PathBuf,
    /// Use this key instead of the one kept in the data folder.
    pub key: Option<AccessKey>,
    pub recovery_window: Duration,
    pub max_unacked: usize,
    pub guard: LocalGuard,
    pub http: HttpLimits,
}

impl ServiceSettings {
    pub fn from_env(env: &HashMap<String, String>) -> Result<Self, SettingsError> {
        let mut r = Reader::new(env);
        let port = r.port(&PORT);
        let data_dir = PathBuf::from(r.string(&DATA));
        let key = r.raw(&KEY).map(AccessKey::new);
        let recovery_window = r.duration(&RECOVERY_WINDOW);
        let max_unacked = r
            .parse(&MAX_UNACKED, "must be a whole number from 1", |s| {
                s.parse().ok().filter(|n| *n > 0)
            })
            .unwrap_or(1);
        let guard = LocalGuard::read(&r);
        let http = HttpLimits::read(&mut r);
        r.finish(Self {
            port,
            data_dir,
            key,
            recovery_window,
            max_unacked,
            guard,
            http,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::env_of;

    #[test]
    fn defaults_are_the_declared_ones() {
        let s = ServiceSettings::from_env(&HashMap::new()).unwrap();
        assert_eq!(s.port, 7090);
        assert_eq!(s.recovery_window, Duration::from_secs(30));
        assert_eq!(s.max_unacked, 1000);
        assert!(s.key.is_none());
    }

    #[test]
    fn every_bad_value_is_reported() {
        let err = ServiceSettings::from_env(&env_of(&[
            (PORT.name, "70000"),
            (RECOVERY_WINDOW.name, "soon"),
            (MAX_UNACKED.name, "0"),
        ]))
        .unwrap_err();
        assert_eq!(err.0.len(), 3, "{err:?}");
    }
}
