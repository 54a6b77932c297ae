//! A real SMTP server for a test: `tests/support/smtp_sink.py` (aiosmtpd) under the test
//! environment's Python, storing each message it accepts as a `.eml` file in a maildir folder.

use std::path::{Path, PathBuf};

use crate::process::Process;
use crate::support_script;

/// A running SMTP sink; stopped when dropped (and when the test process dies: it stops when its
/// stdin closes).
pub struct SmtpSink {
    /// The port it listens on (on 127.0.0.1).
    pub port: u16,
    /// Where it stores the messages it accepts.
    pub maildir: PathBuf,
    _process: Process,
}

impl SmtpSink {
    /// Plain SMTP without authentication on `port` (0: a free one).
    pub fn start(maildir: &Path, port: u16) -> SmtpSink {
        Self::start_with(maildir, port, &[])
    }

    /// The sink on `port` (0: a free one) with `options` of `smtp_sink.py` (`--tls-mode`,
    /// `--cert`, `--key`, `--user`, `--password`).
    pub fn start_with(maildir: &Path, port: u16, options: &[&str]) -> SmtpSink {
        let mut args = vec![
            "--maildir".to_owned(),
            maildir.display().to_string(),
            "--port".to_owned(),
            port.to_string(),
        ];
        args.extend(options.iter().map(|o| (*o).to_owned()));
        let (process, port) = support_script("smtp_sink.py", &args);
        SmtpSink {
            port,
            maildir: maildir.to_owned(),
            _process: process,
        }
    }

    /// The messages it has stored so far, sorted.
    pub fn messages(&self) -> Vec<PathBuf> {
        crate::eml_files(&self.maildir)
    }
}
