//! Everything `ordergrid serve` reads: the port the host gives it, the store, email, the order
//! limits, the live feed (Web PubSub and who the operators are) and logging. Each part's `SETTINGS` list joins in [`handler_settings`], which
//! `local.settings.json.example` and the README's table must match (tests check both).

use std::collections::HashMap;
use std::time::Duration;

use rust_decimal::Decimal;

use crate::domain::{Currency, OrderLimits};
use crate::email::settings::{self as email, EmailSettings};
use crate::http_server::HttpLimits;
use crate::local_guard::LocalGuard;
use crate::settings::{Reader, Setting, SettingsError};
use crate::store::settings::{self as store, StoreSettings};
use crate::telemetry;
use crate::webpubsub::{DEFAULT_CONNECTION_SETTING, WebPubSubConnection};

use super::operators::{AUTH_ENABLED_VARIABLE, Operators, PRINCIPAL_NAME_HEADER};

/// Set by the Functions host: the port the custom handler listens on.
pub const PORT: Setting = Setting::new(
    "FUNCTIONS_CUSTOMHANDLER_PORT",
    "",
    "port on 127.0.0.1, set by the Functions host",
);
pub const EMAIL_CLAIM_TIMEOUT: Setting = Setting::new(
    "ORDERGRID_EMAIL_CLAIM_TIMEOUT",
    "2m",
    "how long a delivery holds an email before another may send it",
);
pub const MAX_ORDER_VALUE: Setting = Setting::new(
    "ORDERGRID_MAX_ORDER_VALUE",
    "1000000",
    "larger orders are rejected as absurd",
);
pub const DEFAULT_CURRENCY: Setting = Setting::new(
    "ORDERGRID_DEFAULT_CURRENCY",
    "USD",
    "currency of orders that name none",
);
pub const MAX_BODY_BYTES: Setting = Setting::new(
    "ORDERGRID_MAX_BODY_BYTES",
    "4194304",
    "largest invocation accepted",
);

pub const WEBPUBSUB: Setting = Setting::secret(
    DEFAULT_CONNECTION_SETTING,
    "",
    "the live feed's Web PubSub: `Endpoint=…;AccessKey=…;Version=1.0;`; negotiate signs browsers' tokens with the key (unset: negotiate answers 503)",
);
pub const WEBPUBSUB_SERVICE_URI: Setting = Setting::new(
    "WebPubSubConnectionString__serviceUri",
    "",
    "the live feed's Web PubSub, identity-based instead (Azure, local auth off): `https://<name>.webpubsub.azure.com`; tokens come from its token API with the managed identity",
);
pub const OPERATORS: Setting = Setting::new(
    "ORDERGRID_OPERATORS",
    "",
    "who may open the operators' board: `*` anyone, empty nobody, else comma-separated principal names matched ignoring case against `X-MS-CLIENT-PRINCIPAL-NAME`, trusted only with App Service Authentication on (`WEBSITE_AUTH_ENABLED=True`)",
);

/// Every setting the handler reads, in the README's order.
pub fn handler_settings() -> Vec<Setting> {
    let mut all = vec![PORT];
    all.extend_from_slice(store::SETTINGS);
    all.extend_from_slice(email::SETTINGS);
    all.extend_from_slice(&[
        EMAIL_CLAIM_TIMEOUT,
        MAX_ORDER_VALUE,
        DEFAULT_CURRENCY,
        MAX_BODY_BYTES,
        WEBPUBSUB,
        WEBPUBSUB_SERVICE_URI,
        OPERATORS,
        crate::local_guard::ALLOWED_HOSTS,
    ]);
    all.extend_from_slice(crate::http_server::SETTINGS);
    all.extend_from_slice(telemetry::SETTINGS);
    all.extend_from_slice(crate::trace::SETTINGS);
    all
}

#[derive(Debug, Clone)]
pub struct HandlerSettings {
    pub port: u16,
    pub store: StoreSettings,
    pub email: EmailSettings,
    /// How long a delivery holds the right to send an order's email before another may take over.
    pub email_claim_timeout: Duration,
    pub limits: OrderLimits,
    pub max_body_bytes: usize,
    /// The live feed's Web PubSub service; `None` when neither form of the setting is set.
    pub web_pubsub: Option<WebPubSubConnection>,
    pub operators: Operators,
    /// What the handler refuses from hostile pages (only the host calls it).
    pub guard: LocalGuard,
    /// Timeouts and the connection cap of its listener.
    pub http: HttpLimits,
}

impl HandlerSettings {
    /// Reads and checks every setting, reporting every problem at once. `serve --port` reaches
    /// this as [`PORT`] (see [`crate::settings::Layered`]).
    pub fn from_env(env: &HashMap<String, String>) -> Result<Self, SettingsError> {
        let mut r = Reader::new(env);
        let port = if r.raw(&PORT).is_none() {
            r.error(format!(
                "{} is not set: the Functions host sets it; to run the handler on its own, set \
                 it or pass --port",
                PORT.name
            ));
            0
        } else {
            r.port(&PORT)
        };
        let store = StoreSettings::read(&mut r);
        let email = EmailSettings::read(&mut r);
        let email_claim_timeout = r.duration(&EMAIL_CLAIM_TIMEOUT);
        if let Some(smtp_timeout) = email.smtp_timeout()
            && email_claim_timeout <= smtp_timeout
        {
            r.error(format!(
                "{} ({email_claim_timeout:?}) must be longer than {} ({smtp_timeout:?}), or a \
                 slow send could be duplicated",
                EMAIL_CLAIM_TIMEOUT.name,
                email::SMTP_TIMEOUT.name
            ));
        }
        let defaults = OrderLimits::default();
        let limits = OrderLimits {
            max_order_value: r
                .parse(&MAX_ORDER_VALUE, "not a positive decimal number", |s| {
                    s.parse::<Decimal>().ok().filter(|d| *d > Decimal::ZERO)
                })
                .unwrap_or(defaults.max_order_value),
            default_currency: r
                .parse(
                    &DEFAULT_CURRENCY,
                    "not an ISO 4217 currency code",
                    Currency::parse,
                )
                .unwrap_or(defaults.default_currency),
            ..defaults
        };
        let max_body_bytes = r
            .parse(
                &MAX_BODY_BYTES,
                "not a number of bytes from 1024 to 104857600",
                |s| {
                    s.parse()
                        .ok()
                        .filter(|n| (1024..=100 * 1024 * 1024).contains(n))
                },
            )
            .unwrap_or_default();
        let web_pubsub = WebPubSubConnection::from_settings(r.env(), WEBPUBSUB.name)
            .unwrap_or_else(|e| {
                r.error(e);
                None
            });
        let operators = r
            .raw(&OPERATORS)
            .map(|text| {
                Operators::parse(text).unwrap_or_else(|e| {
                    r.problem(
                        &OPERATORS,
                        text,
                        &format!("{e} (names are matched against {PRINCIPAL_NAME_HEADER})"),
                    );
                    Operators::default()
                })
            })
            .unwrap_or_default()
            .trusted(
                r.env()
                    .get(AUTH_ENABLED_VARIABLE)
                    .is_some_and(|v| v.trim().eq_ignore_ascii_case("true")),
            );
        let guard = LocalGuard::read(&r);
        let http = HttpLimits::read(&mut r);
        r.finish(Self {
            guard,
            http,
            port,
            store,
            email,
            email_claim_timeout,
            limits,
            max_body_bytes,
            web_pubsub,
            operators,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::email::settings::TransportSettings;
    use crate::settings::Layered;
    use crate::settings::env_of as env;

    #[test]
    fn defaults_need_only_the_port() {
        let s = HandlerSettings::from_env(&env(&[(PORT.name, "7072")])).unwrap();
        assert_eq!(s.port, 7072);
        assert!(matches!(
            s.email.transport,
            TransportSettings::Outbox { .. }
        ));
        assert_eq!(s.limits.default_currency.code(), "USD");
        // The declared defaults are the domain's, so the README cannot promise other limits.
        let defaults = OrderLimits::default();
        assert_eq!(s.limits.max_order_value, defaults.max_order_value);
        assert_eq!(s.limits.default_currency, defaults.default_currency);
    }

    #[test]
    fn every_bad_setting_is_named_at_once() {
        let err = HandlerSettings::from_env(&env(&[
            (PORT.name, "http"),
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
        let flag = Layered::over(&env(&[])).set(&PORT, 0);
        assert!(HandlerSettings::from_env(flag.env()).is_ok());
    }

    #[test]
    fn passwords_are_never_quoted() {
        let err = HandlerSettings::from_env(&env(&[
            (PORT.name, "1"),
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
            (PORT.name, "1"),
            ("ORDERGRID_EMAIL_TRANSPORT", "smtp"),
            ("ORDERGRID_SMTP_HOST", "smtp.example.com"),
            ("ORDERGRID_SMTP_USERNAME", "u"),
            ("ORDERGRID_SMTP_PASSWORD", "hunter2"),
        ]))
        .unwrap();
        assert!(!format!("{ok:?}").contains("hunter2"));
    }

    #[test]
    fn the_live_feed_is_off_without_web_pubsub_and_nobody_is_an_operator_by_default() {
        let s = HandlerSettings::from_env(&env(&[(PORT.name, "1")])).unwrap();
        assert!(s.web_pubsub.is_none());
        assert_eq!(s.operators, Operators::default());
        assert!(!s.operators.admits(Some("anyone")));
    }

    #[test]
    fn named_operators_count_only_with_app_service_authentication_on() {
        let named = [(PORT.name, "1"), (OPERATORS.name, "ops@shop.example")];
        let off = HandlerSettings::from_env(&env(&named)).unwrap();
        assert!(!off.operators.admits(Some("ops@shop.example")));
        let on =
            HandlerSettings::from_env(&env(&[named[0], named[1], (AUTH_ENABLED_VARIABLE, "True")]))
                .unwrap();
        assert!(on.operators.admits(Some("ops@shop.example")));
    }

    #[test]
    fn the_live_feed_settings_are_read_and_their_errors_named_without_the_key() {
        let s = HandlerSettings::from_env(&env(&[
            (PORT.name, "1"),
            (
                WEBPUBSUB.name,
                "Endpoint=http://127.0.0.1;Port=7090;AccessKey=hunter2;Version=1.0;",
            ),
            (OPERATORS.name, "*"),
        ]))
        .unwrap();
        assert_eq!(
            s.web_pubsub.unwrap().endpoint().as_str(),
            "http://127.0.0.1:7090/"
        );
        assert_eq!(s.operators, Operators::Anyone);
        let err = HandlerSettings::from_env(&env(&[
            (PORT.name, "1"),
            (
                WEBPUBSUB.name,
                "Endpoint=http://x;AccessKey=hunter2;Port=abc",
            ),
            (OPERATORS.name, "ops@shop.example, *"),
        ]))
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("WebPubSubConnectionString: Port=\"abc\""),
            "{err}"
        );
        assert!(
            err.contains("ORDERGRID_OPERATORS=\"ops@shop.example, *\""),
            "{err}"
        );
        assert!(!err.contains("hunter2"), "{err}");
    }

    #[test]
    fn every_declared_handler_setting_is_unique() {
        let all = handler_settings();
        let mut names: Vec<_> = all.iter().map(|s| s.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), all.len());
    }
}
