//! The Node scripts of `tests/support` run against a stack: the Playwright drivers of Debian's
//! Chromium and the official clients. Each asserts and prints one `{"ok": …}` line per check (and
//! `{"screenshot": path}` for each picture it kept); a test fails with the script's output, and
//! the stack's, unless the script exits with 0 after the expected number of checks.

use std::path::PathBuf;
use std::time::Instant;

use serde_json::Value;

use crate::helpers::{Stack, repo_root, test_python};

/// Debian's Chromium (`scripts/test` installs it: `scripts/apt-install chromium chromium`), or
/// `ORDERGRID_CHROMIUM`.
pub fn chromium() -> PathBuf {
    if let Some(path) = std::env::var_os("ORDERGRID_CHROMIUM") {
        return PathBuf::from(path);
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join("chromium"))
        .find(|candidate| candidate.is_file())
        .expect(
            "chromium is not on PATH: install Debian's with `scripts/apt-install chromium chromium` \
             (scripts/test does), or point ORDERGRID_CHROMIUM at a Chromium",
        )
}

/// `target/test-artifacts/<name>`, made if needed: where a test's screenshots are kept.
pub fn artifacts(name: &str) -> PathBuf {
    let dir = repo_root().join("target/test-artifacts").join(name);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Runs `node tests/support/<script> <args…> <config>`; fails the test with the script's output
/// unless it exits with 0 after printing `checks` ok lines. Returns its stdout.
pub async fn run(
    stack: &Stack,
    script: &str,
    args: &[&str],
    config: Value,
    checks: usize,
) -> String {
    let _ = test_python(); // installs tests/support/node_modules once, if needed
    let support = repo_root().join("tests/support");
    let started = Instant::now();
    let output = tokio::process::Command::new("node")
        .arg(support.join(script))
        .args(args)
        .arg(config.to_string())
        .current_dir(&support)
        .output()
        .await
        .expect("node runs (scripts/test-env installs tests/support/node_modules)");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let report = format!(
        "{script} {args:?} after {:?}\n--- stdout\n{stdout}--- stderr\n{}--- the stack\n{}",
        started.elapsed(),
        String::from_utf8_lossy(&output.stderr),
        stack.output.text()
    );
    assert!(output.status.success(), "{report}");
    let ok = stdout.lines().filter(|l| l.starts_with(r#"{"ok""#)).count();
    assert_eq!(ok, checks, "{report}");
    println!(
        "{script} {args:?} passed in {:?}:\n{stdout}",
        started.elapsed()
    );
    stdout
}

/// The screenshots a script kept, which must exist and be PNGs.
pub fn screenshots(stdout: &str) -> Vec<PathBuf> {
    let files: Vec<PathBuf> = stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter_map(|v| v["screenshot"].as_str().map(PathBuf::from))
        .collect();
    for file in &files {
        let bytes = std::fs::read(file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        assert!(
            bytes.starts_with(b"\x89PNG"),
            "{} is not a PNG",
            file.display()
        );
        println!("screenshot kept: {}", file.display());
    }
    files
}
