//! Confirmation emails: rendering from templates, and the transports that deliver them.
//!
//! A transport only delivers; *exactly once* is the caller's job (the email ledger in
//! `functions::email_notifier`). What a transport must get right is the classification of
//! failures, because it decides whether Event Grid retries:
//! - [`SendError::Transient`]: connection refused or reset, timeouts, TLS failures, 4xx replies,
//!   and authentication failures (a configuration problem that a fix makes succeed later);
//! - [`SendError::Permanent`]: a 5xx reply to the message itself (recipient rejected, message
//!   refused), which no retry will change.

mod memory;
mod outbox;
mod render;
pub mod settings;
mod smtp;

use async_trait::async_trait;

pub use memory::MemoryTransport;
pub use outbox::OutboxTransport;
pub use render::{ConfirmationRenderer, OutgoingEmail};
pub use smtp::{SmtpSettings, SmtpTls, SmtpTransport};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    #[error("{0}")]
    Transient(String),
    #[error("{0}")]
    Permanent(String),
}

#[async_trait]
pub trait EmailTransport: Send + Sync + 'static {
    /// Delivers the message; `Ok` once the server (or the outbox folder) has durably taken it.
    async fn send(&self, email: &OutgoingEmail) -> Result<(), SendError>;

    /// For start-up output and logs; never includes credentials.
    fn describe(&self) -> String;
}
