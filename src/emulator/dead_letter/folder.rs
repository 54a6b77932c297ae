//! Dead letters in a local folder laid out like the blob container:
//! `<root>/<container>/<SUB>/<yyyy>/<M>/<d>/<H>/<guid>.json`.
//!
//! Invariant: a `.json` file is complete and flushed (written under a temporary name, flushed,
//! renamed, folder flushed) before `write` returns.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use time::OffsetDateTime;

use super::{DeadLetterBlob, DeadLetterSink, SinkError, blob_name};

pub struct FolderSink {
    root: PathBuf,
}

impl FolderSink {
    pub fn new(root: PathBuf) -> Self {
        Self { root }
    }

    fn path(&self, container: &str, name: &str) -> Result<PathBuf, SinkError> {
        let safe = |s: &str| {
            !s.is_empty()
                && s.split('/')
                    .all(|seg| !seg.is_empty() && seg != "." && seg != "..")
        };
        if !safe(container) || container.contains('/') || !safe(name) {
            return Err(SinkError::Invalid(format!(
                "invalid dead-letter blob {container}/{name}"
            )));
        }
        Ok(self.root.join(container).join(name))
    }
}

fn write_durably(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(dir)?;
    let tmp = dir.join(format!(".{}.tmp", uuid::Uuid::new_v4()));
    let result = (|| {
        let mut file = fs::File::create(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        fs::rename(&tmp, path)?;
        fs::File::open(dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

fn walk(dir: &Path, found: &mut Vec<PathBuf>) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            walk(&path, found);
        } else if path.extension().is_some_and(|e| e == "json") {
            found.push(path);
        }
    }
}

#[async_trait]
impl DeadLetterSink for FolderSink {
    async fn write(
        &self,
        container: &str,
        subscription_upper: &str,
        events: &[bytes::Bytes],
        at: OffsetDateTime,
    ) -> Result<String, SinkError> {
        let name = blob_name(subscription_upper, at, uuid::Uuid::new_v4());
        let path = self.path(container, &name)?;
        let bytes = super::blob_bytes(events);
        tokio::task::spawn_blocking(move || {
            // Even a missing folder is transient here: it is created on the next try.
            write_durably(&path, &bytes).map_err(|e| {
                SinkError::Transient(format!("failed to write {}: {e}", path.display()))
            })
        })
        .await
        .map_err(|e| SinkError::Transient(e.to_string()))??;
        Ok(name)
    }

    async fn list(&self) -> Result<Vec<DeadLetterBlob>, SinkError> {
        let root = self.root.clone();
        let mut found = vec![];
        walk(&root, &mut found);
        let mut blobs: Vec<DeadLetterBlob> = found
            .into_iter()
            .filter_map(|path| {
                let relative = path.strip_prefix(&root).ok()?.to_str()?.to_owned();
                let (container, name) = relative.split_once('/')?;
                let subscription = name.split('/').next()?.to_owned();
                let written_at = fs::metadata(&path)
                    .and_then(|m| m.modified())
                    .ok()
                    .and_then(|t| super::rfc3339(t.into()));
                Some(DeadLetterBlob {
                    container: container.to_owned(),
                    name: name.to_owned(),
                    subscription,
                    written_at,
                })
            })
            .collect();
        blobs.sort_by(|a, b| (&a.container, &a.name).cmp(&(&b.container, &b.name)));
        Ok(blobs)
    }

    async fn read(&self, container: &str, name: &str) -> Result<bytes::Bytes, SinkError> {
        let path = self.path(container, name)?;
        fs::read(&path)
            .map(bytes::Bytes::from)
            .map_err(|e| SinkError::io(format!("failed to read {}", path.display()), &e))
    }

    async fn delete(&self, container: &str, name: &str) -> Result<(), SinkError> {
        let path = self.path(container, name)?;
        fs::remove_file(&path)
            .map_err(|e| SinkError::io(format!("failed to delete {}", path.display()), &e))
    }

    fn describe(&self) -> String {
        format!("folder {}", self.root.display())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[tokio::test]
    async fn blobs_are_written_listed_read_and_deleted() {
        let dir = tempfile::tempdir().unwrap();
        let sink = FolderSink::new(dir.path().to_owned());
        let at = OffsetDateTime::now_utc();
        let event = bytes::Bytes::from_static(br#"{"id":"1"}"#);
        let name = sink
            .write(
                "dead-letters",
                "ORDER-PROCESSOR",
                std::slice::from_ref(&event),
                at,
            )
            .await
            .unwrap();
        assert!(name.starts_with(&format!("ORDER-PROCESSOR/{}/", at.year())));
        let mut listed = sink.list().await.unwrap();
        assert!(listed[0].written_at.take().is_some(), "{listed:?}");
        assert_eq!(
            listed,
            [DeadLetterBlob {
                container: "dead-letters".into(),
                name: name.clone(),
                subscription: "ORDER-PROCESSOR".into(),
                written_at: None,
            }]
        );
        let read: serde_json::Value =
            serde_json::from_slice(&sink.read("dead-letters", &name).await.unwrap()).unwrap();
        assert_eq!(read, json!([{"id": "1"}]));
        sink.delete("dead-letters", &name).await.unwrap();
        assert!(sink.list().await.unwrap().is_empty());
        assert!(sink.read("dead-letters", "../../etc/passwd").await.is_err());
    }
}
