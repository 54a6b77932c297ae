//! The file outbox: each email becomes `<outbox>/<order-id>.eml`, the embedded default for local
//! runs. Open one in any mail client.
//!
//! Invariant: a file named `*.eml` is complete and flushed; it is written under a temporary name,
//! flushed, then renamed, and the folder is flushed so the name survives a crash.

use std::fs::{self, File};
use std::io::Write;
use std::path::PathBuf;

use async_trait::async_trait;

use super::{EmailTransport, OutgoingEmail, SendError};

pub struct OutboxTransport {
    dir: PathBuf,
}

impl OutboxTransport {
    pub fn new(dir: PathBuf) -> std::io::Result<Self> {
        fs::create_dir_all(&dir)?;
        Ok(Self { dir })
    }
}

#[async_trait]
impl EmailTransport for OutboxTransport {
    async fn send(&self, email: &OutgoingEmail) -> Result<(), SendError> {
        let dir = self.dir.clone();
        let name = format!("{}.eml", email.order_id);
        let bytes = email.message.formatted();
        tokio::task::spawn_blocking(move || {
            let tmp = dir.join(format!(".{name}.{}.tmp", uuid::Uuid::new_v4()));
            let result = (|| {
                let mut file = File::create(&tmp)?;
                file.write_all(&bytes)?;
                file.sync_all()?;
                fs::rename(&tmp, dir.join(&name))?;
                File::open(&dir)?.sync_all()
            })();
            if result.is_err() {
                let _ = fs::remove_file(&tmp);
            }
            result.map_err(|e| {
                SendError::Transient(format!("failed to write {name} to {}: {e}", dir.display()))
            })
        })
        .await
        .map_err(|e| SendError::Transient(format!("the outbox writer failed: {e}")))?
    }

    fn describe(&self) -> String {
        format!("outbox {}", self.dir.display())
    }
}
