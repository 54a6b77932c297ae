//! Child processes for the tests and the load generators: `ordergrid serve`, `ordergrid
//! emulator`, `ordergrid dev`, Azurite, the SMTP sink. Their output is read line by line on
//! threads of their own (a pipe nobody drains would stall the child), the port a JSON log line
//! names is picked up on the way, and a [`Process`] is killed (SIGKILL) and reaped when dropped,
//! so nothing outlives the test or run that started it.

use std::ffi::OsStr;
use std::io::{self, BufRead, BufReader, Read};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use anyhow::bail;

/// Calls `each` with every line of `pipe` (without its newline) on a thread of its own, until
/// the pipe closes.
pub fn each_line(pipe: impl Read + Send + 'static, mut each: impl FnMut(&[u8]) + Send + 'static) {
    std::thread::spawn(move || {
        for line in BufReader::new(pipe).split(b'\n').map_while(Result::ok) {
            each(&line);
        }
    });
}

/// Lines a child printed, in the order they arrived; clones share them.
#[derive(Clone, Default, Debug)]
pub struct Lines(Arc<Mutex<Vec<String>>>);

impl Lines {
    /// Appends every line of `pipe` as it arrives (several pipes may feed one `Lines`).
    pub fn gather(&self, pipe: impl Read + Send + 'static) {
        let lines = self.clone();
        each_line(pipe, move |line| lines.push(line));
    }

    fn push(&self, line: &[u8]) {
        let line = String::from_utf8_lossy(line).into_owned();
        self.0.lock().unwrap().push(line);
    }

    /// Every line so far.
    pub fn all(&self) -> Vec<String> {
        self.0.lock().unwrap().clone()
    }

    /// Every line so far, joined with newlines.
    pub fn text(&self) -> String {
        self.0.lock().unwrap().join("\n")
    }

    pub fn len(&self) -> usize {
        self.0.lock().unwrap().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The first of `find`'s answers over the lines so far.
    pub fn find_map<T>(&self, find: impl FnMut(&String) -> Option<T>) -> Option<T> {
        self.0.lock().unwrap().iter().find_map(find)
    }

    /// Whether a line so far contains `text`.
    pub fn contains(&self, text: &str) -> bool {
        self.find_map(|line| line.contains(text).then_some(()))
            .is_some()
    }
}

/// The port a JSON log line names at its top level (`{"port": 8080, …}`): how `ordergrid serve`
/// and `ordergrid emulator` say where they listen when given port 0.
pub fn logged_port(line: &[u8]) -> Option<u16> {
    const KEY: &[u8] = b"\"port\"";
    if !line.starts_with(b"{") || !line.windows(KEY.len()).any(|w| w == KEY) {
        return None;
    }
    let json: serde_json::Value = serde_json::from_slice(line).ok()?;
    json["port"].as_u64().and_then(|p| u16::try_from(p).ok())
}

/// `<binary> <subcommand>` as the tests and the load generators start ordergrid: a clean
/// environment, JSON logs, stdin closed.
pub fn ordergrid(binary: impl AsRef<OsStr>, subcommand: &str) -> Command {
    let mut command = Command::new(binary);
    command
        .arg(subcommand)
        .env_clear()
        .env("ORDERGRID_LOG_FORMAT", "json")
        .stdin(Stdio::null());
    command
}

/// A running child: its stdout and stderr read on threads, killed (SIGKILL) and reaped when
/// dropped. Its stdin is what the command set (`Stdio::null()`, or `piped()` for a child that
/// stops when the pipe closes).
#[derive(Debug)]
pub struct Process {
    pub child: Child,
    /// What it printed on stdout (empty with [`Process::spawn_with_stdout`]).
    pub stdout: Lines,
    /// What it printed on stderr (the same [`Lines`] as `stdout` with [`Process::spawn_merged`]).
    pub stderr: Lines,
    stdout_lines: Arc<AtomicU64>,
    port: Arc<OnceLock<u16>>,
}

impl Process {
    /// Starts `command` with its stdout and stderr gathered, each on its own.
    pub fn spawn(command: &mut Command) -> io::Result<Self> {
        let stdout = Lines::default();
        let gathered = stdout.clone();
        Self::start(command, stdout, Lines::default(), move |line| {
            gathered.push(line)
        })
    }

    /// Starts `command` with its stdout and stderr gathered into one [`Lines`], in the order
    /// the lines arrived.
    pub fn spawn_merged(command: &mut Command) -> io::Result<Self> {
        let output = Lines::default();
        let gathered = output.clone();
        Self::start(command, output.clone(), output, move |line| {
            gathered.push(line)
        })
    }

    /// Starts `command` with every stdout line handed to `each` and counted, not kept (for a
    /// process under load, which prints more than is worth keeping); stderr is gathered.
    pub fn spawn_with_stdout(
        command: &mut Command,
        each: impl FnMut(&[u8]) + Send + 'static,
    ) -> io::Result<Self> {
        Self::start(command, Lines::default(), Lines::default(), each)
    }

    fn start(
        command: &mut Command,
        stdout: Lines,
        stderr: Lines,
        mut each: impl FnMut(&[u8]) + Send + 'static,
    ) -> io::Result<Self> {
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()?;
        let stdout_lines = Arc::new(AtomicU64::new(0));
        let port = Arc::new(OnceLock::new());
        let (count, logged) = (stdout_lines.clone(), port.clone());
        each_line(child.stdout.take().expect("stdout is piped"), move |line| {
            count.fetch_add(1, Ordering::Relaxed);
            if logged.get().is_none()
                && let Some(port) = logged_port(line)
            {
                let _ = logged.set(port);
            }
            each(line);
        });
        stderr.gather(child.stderr.take().expect("stderr is piped"));
        Ok(Self {
            child,
            stdout,
            stderr,
            stdout_lines,
            port,
        })
    }

    /// Starts `command` (an ordergrid server told to listen on port 0) with its output gathered
    /// and waits for the port it logs: the process and `http://127.0.0.1:<port>`.
    pub async fn spawn_listening(
        command: &mut Command,
        within: Duration,
    ) -> anyhow::Result<(Self, String)> {
        let mut process = Self::spawn(command)?;
        let port = process.wait_for_port(within).await?;
        Ok((process, format!("http://127.0.0.1:{port}")))
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// How many lines it printed on stdout so far.
    pub fn stdout_lines(&self) -> u64 {
        self.stdout_lines.load(Ordering::Relaxed)
    }

    /// The port of the first JSON log line on stdout that names one ([`logged_port`]).
    pub fn port(&self) -> Option<u16> {
        self.port.get().copied()
    }

    /// Waits until it has logged its port; an error, with its stderr, if it exits first or
    /// `within` passes.
    pub async fn wait_for_port(&mut self, within: Duration) -> anyhow::Result<u16> {
        let Self { child, port, .. } = self;
        let found = crate::poll(within, async || match (port.get(), child.try_wait()) {
            (Some(port), _) => Some(Ok(*port)),
            (None, Ok(Some(status))) => Some(Err(status.to_string())),
            (None, Err(e)) => Some(Err(e.to_string())),
            (None, Ok(None)) => None,
        })
        .await;
        match found {
            Some(Ok(port)) => Ok(port),
            Some(Err(exit)) => bail!(
                "it exited ({exit}) before logging its port:\n{}",
                self.stderr.text()
            ),
            None => bail!(
                "it logged no port within {within:?}:\n{}",
                self.stderr.text()
            ),
        }
    }

    /// Sends `signal` (`INT` as Ctrl-C does, `TERM`, …) with kill(1).
    pub fn signal(&self, signal: &str) -> io::Result<()> {
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.pid().to_string())
            .status()?;
        if status.success() {
            Ok(())
        } else {
            Err(io::Error::other(format!("kill -{signal} failed: {status}")))
        }
    }

    /// SIGKILL: no shutdown, nothing flushed that was not already; then reaps it.
    pub fn kill(&mut self) -> io::Result<ExitStatus> {
        self.child.kill()?;
        self.child.wait()
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
