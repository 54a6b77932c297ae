//! The function app `ordergrid dev` runs: a folder with `host.json`, at least one function folder
//! (`<Function>/function.json`) and the subscriptions file (`infra/subscriptions.json` unless
//! `ORDERGRID_EMULATOR_SUBSCRIPTIONS` names another).
//!
//! Invariant: the folder is checked before the stack creates anything (its data folder
//! included), so starting from the wrong folder leaves nothing behind and says what was missing
//! and where it was looked for.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};

use crate::emulator::settings as emulator;
use crate::settings::Reader;

/// What `ordergrid dev` needs from a folder and did not find there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotAnApp {
    /// The folder, as given (`--app`, default `.`), made absolute.
    pub folder: PathBuf,
    /// Each missing piece, described with the path it was looked for at.
    pub missing: Vec<String>,
}

impl fmt::Display for NotAnApp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} is not a function app: {}; run `ordergrid dev` in the app's folder (the \
             repository's root) or name it with --app <folder>",
            self.folder.display(),
            self.missing.join(", ")
        )
    }
}

impl std::error::Error for NotAnApp {}

/// Checks that `root` holds a function app, reading nothing but file names.
pub fn check(root: &Path, env: &HashMap<String, String>) -> Result<(), NotAnApp> {
    let folder = std::path::absolute(root).unwrap_or_else(|_| root.to_owned());
    let mut missing = Vec::new();
    let host = folder.join("host.json");
    if !host.is_file() {
        missing.push(format!("no host.json (looked for {})", host.display()));
    }
    let has_function = std::fs::read_dir(&folder).is_ok_and(|entries| {
        entries
            .filter_map(Result::ok)
            .any(|e| e.path().join("function.json").is_file())
    });
    if !has_function {
        missing.push(format!(
            "no function folder (looked for {})",
            folder.join("*/function.json").display()
        ));
    }
    let subscriptions = match Reader::new(env).raw(&emulator::SUBSCRIPTIONS) {
        Some(path) => std::path::absolute(path).unwrap_or_else(|_| PathBuf::from(path)),
        None => folder.join(emulator::SUBSCRIPTIONS.default),
    };
    if !subscriptions.is_file() {
        missing.push(format!(
            "no subscriptions file (looked for {})",
            subscriptions.display()
        ));
    }
    if missing.is_empty() {
        Ok(())
    } else {
        Err(NotAnApp { folder, missing })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_folder_is_missing_every_piece_each_with_where_it_was_looked_for() {
        let dir = tempfile::tempdir().unwrap();
        let err = check(dir.path(), &HashMap::new()).unwrap_err();
        assert_eq!(err.missing.len(), 3, "{err}");
        let text = err.to_string();
        for looked_for in ["host.json", "*/function.json", "infra/subscriptions.json"] {
            assert!(text.contains(looked_for), "{text}");
        }
        assert!(text.contains("--app"), "{text}");
    }

    #[test]
    fn the_repository_is_an_app() {
        check(Path::new(env!("CARGO_MANIFEST_DIR")), &HashMap::new()).unwrap();
    }
}
