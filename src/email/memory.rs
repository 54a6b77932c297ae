//! The in-memory twin of a transport: records messages, or fails as told.

use std::sync::Mutex;

use async_trait::async_trait;

use super::{EmailTransport, OutgoingEmail, SendError};

#[derive(Default)]
pub struct MemoryTransport {
    sent: Mutex<Vec<OutgoingEmail>>,
    fail_with: Mutex<Option<SendError>>,
}

impl MemoryTransport {
    pub fn new() -> Self {
        Self::default()
    }

    /// Makes every following send fail with `error` (or succeed again with `None`).
    pub fn fail_with(&self, error: Option<SendError>) {
        *self.fail_with.lock().unwrap_or_else(|p| p.into_inner()) = error;
    }

    pub fn sent(&self) -> Vec<OutgoingEmail> {
        self.sent.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

#[async_trait]
impl EmailTransport for MemoryTransport {
    async fn send(&self, email: &OutgoingEmail) -> Result<(), SendError> {
        if let Some(error) = self
            .fail_with
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
        {
            return Err(error);
        }
        self.sent
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(email.clone());
        Ok(())
    }

    fn describe(&self) -> String {
        "memory".into()
    }
}
