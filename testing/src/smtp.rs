//! A real SMTP server for a test: `tests/support/smtp_sink.py` (aiosmtpd) under the test
//! environment's Python, storing each message it accepts as a `.eml` file in a maildir folder.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use crate::process::Process;
use crate::{repo_root, test_python};

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
        // It prints `READY <port>` once it listens.
        let (ready, first_line) = mpsc::channel();
        let process = Process::spawn_with_stdout(
            Command::new(test_python())
                .arg(repo_root().join("tests/support/smtp_sink.py"))
                .arg("--maildir")
                .arg(maildir)
                .args(["--port", &port.to_string()])
                .args(options)
                .stdin(Stdio::piped()),
            move |line| {
                let _ = ready.send(String::from_utf8_lossy(line).into_owned());
            },
        )
        .expect("failed to start the SMTP sink");
        let line = first_line
            .recv_timeout(Duration::from_secs(30))
            .unwrap_or_default();
        let port = line
            .strip_prefix("READY ")
            .and_then(|p| p.trim().parse().ok())
            .unwrap_or_else(|| {
                panic!(
                    "the SMTP sink did not start: {line:?}\n{}",
                    process.stderr.text()
                )
            });
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
