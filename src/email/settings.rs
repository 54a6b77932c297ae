//! How confirmations are sent, from the environment: the outbox folder (the default, for local
//! runs) or an SMTP server, and the sender.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use lettre::message::Mailbox;

use super::{EmailTransport, OutboxTransport, SmtpSettings, SmtpTls, SmtpTransport};
use crate::settings::{Reader, Setting};

pub const TRANSPORT: Setting = Setting::new(
    "ORDERGRID_EMAIL_TRANSPORT",
    "outbox",
    "`outbox` (`.eml` files) or `smtp`",
);
pub const OUTBOX_PATH: Setting = Setting::new(
    "ORDERGRID_OUTBOX_PATH",
    ".ordergrid/outbox",
    "outbox folder",
);
pub const FROM: Setting = Setting::new(
    "ORDERGRID_EMAIL_FROM",
    "ordergrid <orders@ordergrid.example>",
    "sender of confirmations",
);
pub const SMTP_HOST: Setting = Setting::new(
    "ORDERGRID_SMTP_HOST",
    "",
    "SMTP server (required for `smtp`)",
);
pub const SMTP_PORT: Setting = Setting::new(
    "ORDERGRID_SMTP_PORT",
    "",
    "SMTP port; 587, 465 or 25 by TLS mode when unset",
);
pub const SMTP_TLS: Setting = Setting::new(
    "ORDERGRID_SMTP_TLS",
    "starttls",
    "`starttls`, `implicit` or `none`",
);
pub const SMTP_USERNAME: Setting = Setting::new("ORDERGRID_SMTP_USERNAME", "", "SMTP AUTH user");
pub const SMTP_PASSWORD: Setting = Setting::secret(
    "ORDERGRID_SMTP_PASSWORD",
    "",
    "SMTP AUTH password (a Key Vault reference in Azure)",
);
pub const SMTP_CA_CERT: Setting = Setting::new(
    "ORDERGRID_SMTP_CA_CERT",
    "",
    "extra CA certificate (PEM file) to trust",
);
pub const SMTP_TIMEOUT: Setting = Setting::new(
    "ORDERGRID_SMTP_TIMEOUT",
    "15s",
    "SMTP connect and command timeout",
);

/// The email settings, in the order the README lists them.
pub const SETTINGS: &[Setting] = &[
    TRANSPORT,
    OUTBOX_PATH,
    FROM,
    SMTP_HOST,
    SMTP_PORT,
    SMTP_TLS,
    SMTP_USERNAME,
    SMTP_PASSWORD,
    SMTP_CA_CERT,
    SMTP_TIMEOUT,
];

#[derive(Debug, Clone)]
pub struct EmailSettings {
    pub transport: TransportSettings,
    pub from: Mailbox,
}

#[derive(Debug, Clone)]
pub enum TransportSettings {
    Outbox { path: PathBuf },
    Smtp(SmtpSettings),
}

impl EmailSettings {
    /// Reads the email settings, recording problems in `r`.
    pub fn read(r: &mut Reader<'_>) -> Self {
        let transport = match r.string(&TRANSPORT).as_str() {
            "outbox" => TransportSettings::Outbox {
                path: r.string(&OUTBOX_PATH).into(),
            },
            "smtp" => TransportSettings::Smtp(read_smtp(r)),
            other => {
                r.problem(&TRANSPORT, other, "must be outbox or smtp");
                TransportSettings::Outbox {
                    path: PathBuf::new(),
                }
            }
        };
        let from = r
            .parse(
                &FROM,
                "not a mailbox (examples: orders@shop.example, Shop <orders@shop.example>)",
                |s| s.parse().ok(),
            )
            .unwrap_or_else(|| Mailbox::new(None, "orders@ordergrid.example".parse().unwrap()));
        Self { transport, from }
    }

    /// The SMTP timeout, when email goes by SMTP.
    pub fn smtp_timeout(&self) -> Option<Duration> {
        match &self.transport {
            TransportSettings::Smtp(smtp) => Some(smtp.timeout),
            TransportSettings::Outbox { .. } => None,
        }
    }

    /// The transport these settings name.
    pub fn open(&self) -> anyhow::Result<Arc<dyn EmailTransport>> {
        Ok(match &self.transport {
            TransportSettings::Outbox { path } => Arc::new(
                OutboxTransport::new(path.clone())
                    .with_context(|| format!("failed to create the outbox {}", path.display()))?,
            ),
            TransportSettings::Smtp(smtp) => {
                Arc::new(SmtpTransport::new(smtp).map_err(anyhow::Error::msg)?)
            }
        })
    }
}

fn read_smtp(r: &mut Reader<'_>) -> SmtpSettings {
    let timeout = r.duration(&SMTP_TIMEOUT);
    let tls = r
        .parse(&SMTP_TLS, "must be starttls, implicit or none", |s| match s
            .to_ascii_lowercase()
            .as_str()
        {
            "starttls" => Some(SmtpTls::StartTls),
            "implicit" | "tls" | "smtps" => Some(SmtpTls::Implicit),
            "none" => Some(SmtpTls::None),
            _ => None,
        })
        .unwrap_or(SmtpTls::StartTls);
    let host = r.string(&SMTP_HOST);
    if host.is_empty() {
        r.error(format!(
            "{} is not set: it is required when {}=smtp",
            SMTP_HOST.name, TRANSPORT.name
        ));
    }
    let port = r
        .optional(&SMTP_PORT, "not a port number (1-65535)", |s| {
            s.parse().ok().filter(|p| *p > 0)
        })
        .unwrap_or(tls.default_port());
    let username = r.raw(&SMTP_USERNAME).map(str::to_owned);
    let password = r.raw(&SMTP_PASSWORD).map(str::to_owned);
    if username.is_some() != password.is_some() {
        r.error(format!(
            "{} and {} must be set together (or neither)",
            SMTP_USERNAME.name, SMTP_PASSWORD.name
        ));
    }
    if username.is_some() && tls == SmtpTls::None && host != "localhost" && host != "127.0.0.1" {
        r.error(format!(
            "{}=none with credentials would send the password in clear to {host}; use starttls \
             or implicit",
            SMTP_TLS.name
        ));
    }
    let ca_cert = r.raw(&SMTP_CA_CERT).map(PathBuf::from);
    if let Some(path) = &ca_cert
        && !path.is_file()
    {
        r.problem(&SMTP_CA_CERT, &path.display().to_string(), "no such file");
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
