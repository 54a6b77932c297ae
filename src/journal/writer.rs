//! The writer thread: owns the active segment and is the only code that appends to it. It
//! takes appends as they come, writes a batch of them, flushes once (group commit), then runs
//! their completions in order.

use super::*;

/// The writer side: owns the active segment and is the only code that appends to it.
pub(super) struct Writer {
    pub(super) dir: PathBuf,
    pub(super) options: JournalOptions,
    pub(super) active: u32,
    pub(super) active_len: u64,
    pub(super) poisoned: Option<String>,
}

impl Writer {
    pub(super) fn run_until_closed(
        mut self,
        requests: mpsc::Receiver<Request>,
        shared: Arc<Shared>,
    ) {
        while let Ok(first) = requests.recv() {
            let mut batch: Vec<Request> = vec![first];
            let mut bytes: usize = batch[0].payloads.iter().map(|p| p.len() + HEADER_LEN).sum();
            while bytes < self.options.max_batch_bytes {
                match requests.try_recv() {
                    Ok(next) => {
                        bytes += next
                            .payloads
                            .iter()
                            .map(|p| p.len() + HEADER_LEN)
                            .sum::<usize>();
                        batch.push(next);
                    }
                    Err(_) => break,
                }
            }
            let wants_roll = batch.iter().any(|r| r.roll);
            let result = self.write_batch(&batch, &shared, wants_roll);
            match result {
                Ok(positions) => {
                    let mut offset = 0;
                    for request in &mut batch {
                        let n = request.payloads.len();
                        if let Some(before) = request.before_visible.take() {
                            before(&positions[offset..offset + n]);
                        }
                        offset += n;
                    }
                    let end = Position {
                        segment: self.active,
                        offset: self.active_len,
                    };
                    shared.durable_end.send_replace(end);
                    let mut offset = 0;
                    for request in batch {
                        let n = request.payloads.len();
                        (request.done)(Ok(&positions[offset..offset + n]));
                        offset += n;
                    }
                }
                Err(error) => {
                    tracing::error!(error = %error, "journal write failed");
                    for request in batch {
                        (request.done)(Err(&error));
                    }
                }
            }
        }
    }

    fn write_batch(
        &mut self,
        batch: &[Request],
        shared: &Shared,
        roll_after: bool,
    ) -> Result<Vec<Position>, JournalError> {
        if let Some(why) = &self.poisoned {
            return Err(JournalError::new(format!(
                "the journal refuses writes after an unrecoverable I/O error: {why}"
            )));
        }
        if self.active_len >= self.options.segment_bytes {
            self.roll(shared)?;
        }
        let file = shared
            .segments
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&self.active)
            .cloned()
            .ok_or_else(|| JournalError::new("the active segment is not open"))?;
        let mut buf = Vec::new();
        let mut positions = Vec::new();
        for request in batch {
            for payload in &request.payloads {
                positions.push(Position {
                    segment: self.active,
                    offset: self.active_len + buf.len() as u64,
                });
                encode_frame(&mut buf, payload);
            }
        }
        let frames = positions.len() as u64;
        if !buf.is_empty() {
            let start = self.active_len;
            let written = file
                .write_all_at(&buf, start)
                .and_then(|()| file.sync_data());
            if let Err(e) = written {
                let message = format!(
                    "failed to write to {}: {e}",
                    segment_path(&self.dir, self.active).display()
                );
                if let Err(cut) = file.set_len(start).and_then(|()| file.sync_data()) {
                    self.poisoned = Some(format!(
                        "{message}; then failed to cut the batch off: {cut}"
                    ));
                }
                return Err(JournalError::new(message));
            }
            self.active_len += buf.len() as u64;
            shared.flushes.fetch_add(1, Ordering::Relaxed);
            shared.frames.fetch_add(frames, Ordering::Relaxed);
        }
        if roll_after {
            self.roll(shared)?;
        }
        Ok(positions)
    }

    fn roll(&mut self, shared: &Shared) -> Result<(), JournalError> {
        let next = self.active + 1;
        let file = create_segment(&self.dir, next)?;
        shared
            .segments
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(next, Arc::new(file));
        self.active = next;
        self.active_len = 0;
        Ok(())
    }
}
