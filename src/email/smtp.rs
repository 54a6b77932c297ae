//! SMTP delivery through lettre: STARTTLS (port 587, what Azure Communication Services and
//! SendGrid offer), implicit TLS (465) or plaintext (local sinks only), with optional AUTH.
//! Connections are pooled and shared by all invocations.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use async_trait::async_trait;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::transport::smtp::{self, PoolConfig};
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};

use super::{EmailTransport, OutgoingEmail, SendError};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpTls {
    /// Plain connection upgraded with STARTTLS, which is required (never falls back).
    StartTls,
    /// TLS from the first byte (SMTPS).
    Implicit,
    /// No TLS at all: only for a local SMTP sink.
    None,
}

impl SmtpTls {
    pub fn default_port(self) -> u16 {
        match self {
            SmtpTls::StartTls => 587,
            SmtpTls::Implicit => 465,
            SmtpTls::None => 25,
        }
    }
}

#[derive(Clone)]
pub struct SmtpSettings {
    pub host: String,
    pub port: u16,
    pub tls: SmtpTls,
    pub username: Option<String>,
    pub password: Option<String>,
    /// Extra root certificate (PEM) to trust, e.g. a corporate relay's or a test server's CA.
    pub ca_cert: Option<PathBuf>,
    pub timeout: Duration,
}

impl fmt::Debug for SmtpSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SmtpSettings")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("tls", &self.tls)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("ca_cert", &self.ca_cert)
            .field("timeout", &self.timeout)
            .finish()
    }
}

pub struct SmtpTransport {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    description: String,
}

impl SmtpTransport {
    pub fn new(settings: &SmtpSettings) -> Result<Self, String> {
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&settings.host)
            .port(settings.port)
            .timeout(Some(settings.timeout))
            .pool_config(
                PoolConfig::new()
                    .max_size(16)
                    .idle_timeout(Duration::from_secs(60)),
            );
        if settings.tls != SmtpTls::None {
            let mut params = TlsParameters::builder(settings.host.clone());
            if let Some(path) = &settings.ca_cert {
                let pem = std::fs::read(path)
                    .map_err(|e| format!("failed to read {}: {e}", path.display()))?;
                let cert = Certificate::from_pem(&pem)
                    .map_err(|e| format!("{} is not a PEM certificate: {e}", path.display()))?;
                params = params.add_root_certificate(cert);
            }
            let params = params
                .build_rustls()
                .map_err(|e| format!("failed to set up TLS for {}: {e}", settings.host))?;
            builder = builder.tls(match settings.tls {
                SmtpTls::StartTls => Tls::Required(params),
                _ => Tls::Wrapper(params),
            });
        }
        if let (Some(user), Some(password)) = (&settings.username, &settings.password) {
            builder = builder.credentials(Credentials::new(user.clone(), password.clone()));
        }
        let description = format!(
            "smtp {}:{} ({}{})",
            settings.host,
            settings.port,
            match settings.tls {
                SmtpTls::StartTls => "STARTTLS",
                SmtpTls::Implicit => "implicit TLS",
                SmtpTls::None => "no TLS",
            },
            if settings.username.is_some() {
                ", AUTH"
            } else {
                ""
            }
        );
        Ok(Self {
            transport: builder.build(),
            description,
        })
    }
}

/// Transient unless the server refused the message itself with a 5xx reply. Authentication
/// replies (530, 534, 535, 538) are 5xx too but mean "fix the settings", so they are retried.
fn classify(error: &smtp::Error) -> SendError {
    let code = error.status().map(|c| c.to_string());
    let message = error.to_string();
    match code.as_deref() {
        Some("530" | "534" | "535" | "538") => {
            SendError::Transient(format!("SMTP authentication failed: {message}"))
        }
        Some(code) if error.is_permanent() => SendError::Permanent(format!(
            "the SMTP server refused the message ({code}): {message}"
        )),
        _ => SendError::Transient(format!("SMTP delivery failed: {message}")),
    }
}

#[async_trait]
impl EmailTransport for SmtpTransport {
    async fn send(&self, email: &OutgoingEmail) -> Result<(), SendError> {
        self.transport
            .send(email.message.clone())
            .await
            .map(|_| ())
            .map_err(|e| classify(&e))
    }

    fn describe(&self) -> String {
        self.description.clone()
    }
}
