//! Settings from environment variables (app settings in Azure, `local.settings.json` under Core
//! Tools), on the ground floor: each wing declares its own [`Setting`]s beside the code they
//! configure (`functions::settings`, `emulator::settings`, `store::settings`,
//! `email::settings`, `telemetry`) and reads them with a [`Reader`].
//!
//! Invariants:
//! - a setting is declared once: its name, its default (as people read it, and as it is parsed
//!   when the variable is unset) and one line of documentation; the same declaration drives the
//!   parsing, the CLI help, the check of `local.settings.json.example` and the README's tables;
//! - reading collects every problem before failing, each naming the setting and quoting its value,
//!   except for secrets, which are never quoted.
//!
//! This module imports nothing else of ordergrid's.

use std::collections::HashMap;
use std::fmt;
use std::time::Duration;

/// One setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Setting {
    /// The environment variable.
    pub name: &'static str,
    /// The default: what is used when the variable is unset. Parsed like a value when it is
    /// one; otherwise it describes what happens (`generated`, `set by the host`).
    pub default: &'static str,
    /// What it is for, in one line.
    pub doc: &'static str,
    /// Its value is never quoted in a message.
    pub secret: bool,
}

impl Setting {
    pub const fn new(name: &'static str, default: &'static str, doc: &'static str) -> Self {
        Self {
            name,
            default,
            doc,
            secret: false,
        }
    }

    pub const fn secret(name: &'static str, default: &'static str, doc: &'static str) -> Self {
        Self {
            name,
            default,
            doc,
            secret: true,
        }
    }

    /// The text `--help` shows for a flag that sets this setting.
    pub fn help(&self) -> String {
        let default = if self.default.is_empty() {
            String::new()
        } else {
            format!(", default {}", self.default)
        };
        format!("{} [env: {}{default}]", self.doc, self.name)
    }
}

/// Every setting that was wrong, one line each.
#[derive(Debug)]
pub struct SettingsError(pub Vec<String>);

impl fmt::Display for SettingsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "invalid settings:")?;
        for line in &self.0 {
            writeln!(f, "  {line}")?;
        }
        Ok(())
    }
}

impl std::error::Error for SettingsError {}

/// Reads settings from a map (the process environment, or a test's own map), collecting
/// problems.
pub struct Reader<'a> {
    env: &'a HashMap<String, String>,
    errors: Vec<String>,
}

impl<'a> Reader<'a> {
    pub fn new(env: &'a HashMap<String, String>) -> Self {
        Self {
            env,
            errors: Vec::new(),
        }
    }

    /// The environment being read (for settings read by name, like a connection's parts).
    pub fn env(&self) -> &'a HashMap<String, String> {
        self.env
    }

    /// The value set for `setting`, trimmed; `None` when unset or blank.
    pub fn raw(&self, setting: &Setting) -> Option<&'a str> {
        self.env
            .get(setting.name)
            .map(|v| v.trim())
            .filter(|v| !v.is_empty())
    }

    /// The value, or the default.
    pub fn string(&self, setting: &Setting) -> String {
        self.raw(setting).unwrap_or(setting.default).to_owned()
    }

    /// The value (or the default) parsed by `parse`; `what` says what it must be.
    pub fn parse<T>(
        &mut self,
        setting: &Setting,
        what: &str,
        parse: impl Fn(&str) -> Option<T>,
    ) -> Option<T> {
        let text = self.raw(setting).unwrap_or(setting.default);
        let parsed = parse(text);
        if parsed.is_none() {
            self.problem(setting, text, what);
        }
        parsed
    }

    /// The value parsed by `parse`, or `None` when unset (the default describes what happens).
    pub fn optional<T>(
        &mut self,
        setting: &Setting,
        what: &str,
        parse: impl Fn(&str) -> Option<T>,
    ) -> Option<T> {
        let text = self.raw(setting)?;
        let parsed = parse(text);
        if parsed.is_none() {
            self.problem(setting, text, what);
        }
        parsed
    }

    /// A duration (`500ms`, `15s`, `2m`, `1h`, or seconds).
    pub fn duration(&mut self, setting: &Setting) -> Duration {
        self.parse(
            setting,
            "not a duration (examples: 500ms, 15s, 2m, 1h)",
            parse_duration,
        )
        .unwrap_or_default()
    }

    /// A port number (0 picks one); 0 when it is not one, with the problem recorded.
    pub fn port(&mut self, setting: &Setting) -> u16 {
        self.parse(setting, "not a port number (0-65535)", parse_port)
            .unwrap_or_default()
    }

    /// `true` or `false`.
    pub fn flag(&mut self, setting: &Setting) -> bool {
        self.parse(setting, "must be true or false", |s| s.parse().ok())
            .unwrap_or_default()
    }

    /// Records a problem with a setting's value (quoted unless it is a secret).
    pub fn problem(&mut self, setting: &Setting, value: &str, what: &str) {
        self.errors.push(if setting.secret {
            format!("{}: {what}", setting.name)
        } else {
            format!("{}={value:?}: {what}", setting.name)
        });
    }

    /// Records a problem in the reader's own words.
    pub fn error(&mut self, message: impl Into<String>) {
        self.errors.push(message.into());
    }

    /// Records problems found elsewhere (a connection's parts).
    pub fn errors(&mut self, messages: impl IntoIterator<Item = String>) {
        self.errors.extend(messages);
    }

    /// `value` if nothing was wrong, else every problem.
    pub fn finish<T>(self, value: T) -> Result<T, SettingsError> {
        if self.errors.is_empty() {
            Ok(value)
        } else {
            Err(SettingsError(self.errors))
        }
    }
}

/// An environment with some settings replaced (command-line flags, what the local stack wires
/// up) or defaulted (the stack's folders), so each app still has one constructor reading one
/// map, and a flag is checked exactly like its environment variable.
#[derive(Debug, Clone)]
pub struct Layered(HashMap<String, String>);

impl Layered {
    pub fn over(env: &HashMap<String, String>) -> Self {
        Self(env.clone())
    }

    /// `setting` is `value`, whatever the environment says.
    pub fn set(mut self, setting: &Setting, value: impl fmt::Display) -> Self {
        self.0.insert(setting.name.to_owned(), value.to_string());
        self
    }

    /// [`Layered::set`] when there is a value (a flag that was given).
    pub fn set_some(self, setting: &Setting, value: Option<impl fmt::Display>) -> Self {
        match value {
            Some(value) => self.set(setting, value),
            None => self,
        }
    }

    /// `setting` is `value` unless the environment sets it.
    pub fn or(self, setting: &Setting, value: impl fmt::Display) -> Self {
        let unset = self.0.get(setting.name).is_none_or(|v| v.trim().is_empty());
        if unset {
            self.set(setting, value)
        } else {
            self
        }
    }

    pub fn env(&self) -> &HashMap<String, String> {
        &self.0
    }
}

/// `250ms`, `15s`, `2m`, `1h`, or a bare number of seconds.
pub fn parse_duration(raw: &str) -> Option<Duration> {
    let raw = raw.trim();
    let split = raw
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(raw.len());
    let (number, unit) = raw.split_at(split);
    let value: f64 = number.parse().ok()?;
    let seconds = match unit.trim() {
        "ms" => value / 1000.0,
        "" | "s" => value,
        "m" => value * 60.0,
        "h" => value * 3600.0,
        _ => return None,
    };
    (seconds.is_finite() && seconds >= 0.0).then(|| Duration::from_secs_f64(seconds))
}

/// A port number (0 picks a free one).
pub fn parse_port(raw: &str) -> Option<u16> {
    raw.parse().ok()
}

/// The README's table of `settings`.
pub fn markdown_table(settings: &[Setting]) -> String {
    let mut out = String::from("| Setting | Default | Meaning |\n|---|---|---|\n");
    for s in settings {
        let default = match s.default {
            "" => "—".to_owned(),
            value => format!("`{value}`"),
        };
        out += &format!("| `{}` | {default} | {} |\n", s.name, s.doc);
    }
    out
}

/// An environment of `pairs`, for tests.
#[cfg(test)]
pub(crate) fn env_of(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::env_of as env;

    const PORT: Setting = Setting::new("TEST_PORT", "7080", "a port");
    const WAIT: Setting = Setting::new("TEST_WAIT", "2m", "a wait");
    const KEY: Setting = Setting::secret("TEST_KEY", "", "a key");

    #[test]
    fn defaults_are_parsed_like_values() {
        let env = env(&[]);
        let mut r = Reader::new(&env);
        assert_eq!(r.parse(&PORT, "a port", parse_port), Some(7080));
        assert_eq!(r.duration(&WAIT), Duration::from_secs(120));
        assert!(r.finish(()).is_ok());
    }

    #[test]
    fn every_problem_is_named_and_secrets_are_not_quoted() {
        let env = env(&[
            ("TEST_PORT", "http"),
            ("TEST_WAIT", "soon"),
            ("TEST_KEY", "hunter2"),
        ]);
        let mut r = Reader::new(&env);
        r.parse(&PORT, "not a port", parse_port);
        r.duration(&WAIT);
        let key = r.raw(&KEY).unwrap();
        r.problem(&KEY, key, "not base64");
        let text = r.finish(()).unwrap_err().to_string();
        assert!(text.contains("TEST_PORT=\"http\": not a port"), "{text}");
        assert!(text.contains("TEST_WAIT=\"soon\""), "{text}");
        assert!(
            text.contains("TEST_KEY: not base64") && !text.contains("hunter2"),
            "{text}"
        );
    }

    #[test]
    fn durations_read_as_people_write_them() {
        assert_eq!(parse_duration("250ms"), Some(Duration::from_millis(250)));
        assert_eq!(parse_duration("1.5s"), Some(Duration::from_millis(1500)));
        assert_eq!(parse_duration("2m"), Some(Duration::from_secs(120)));
        assert_eq!(parse_duration("30"), Some(Duration::from_secs(30)));
        assert_eq!(parse_duration("soon"), None);
        assert_eq!(parse_duration("-1s"), None);
    }

    #[test]
    fn flags_replace_and_stack_defaults_fill_in() {
        let env = env(&[("TEST_PORT", "1"), ("TEST_WAIT", " ")]);
        let layered = Layered::over(&env)
            .set_some(&PORT, Some(2))
            .or(&WAIT, "5s")
            .or(&KEY, "k")
            .or(&PORT, 3);
        let r = Reader::new(layered.env());
        assert_eq!(r.string(&PORT), "2");
        assert_eq!(r.string(&WAIT), "5s");
        assert_eq!(r.string(&KEY), "k");
    }

    #[test]
    fn the_readme_table_and_the_help_come_from_the_declaration() {
        assert_eq!(
            markdown_table(&[PORT, KEY]),
            "| Setting | Default | Meaning |\n|---|---|---|\n| `TEST_PORT` | `7080` | a port |\n| `TEST_KEY` | — | a key |\n"
        );
        assert_eq!(PORT.help(), "a port [env: TEST_PORT, default 7080]");
    }
}
