//! The `bulwark admin` commands, run as a child process: the benchmark measures what an
//! operator runs, and needs no copy of the admin API's signing.
//!
//! The child gets the benchmark's credentials as `BULWARK_ROOT_USER` /
//! `BULWARK_ROOT_PASSWORD`, so they must be the server's root credentials. Every call has
//! a timeout and the child is killed if it is exceeded. `bulwark admin` speaks plain HTTP
//! only, hence `--heal` needs an `http://` endpoint.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::Value;

/// Longest a `status` call may take.
const STATUS_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest a `--wait` pass may take (the server itself gives up waiting after 30 min).
const PASS_TIMEOUT: Duration = Duration::from_secs(40 * 60);

#[derive(Debug, Clone)]
pub struct Admin {
    pub binary: PathBuf,
    pub endpoint: String,
    pub access_key: String,
    pub secret_key: String,
}

/// What `bulwark admin heal|scrub --wait` printed, and how long it took.
#[derive(Debug, Clone)]
pub struct PassOutput {
    pub seconds: f64,
    /// The report's `name: value` lines (`bytes checked` → `3221225472`, …).
    pub fields: BTreeMap<String, String>,
}

impl PassOutput {
    pub fn number(&self, name: &str) -> Option<u64> {
        self.fields.get(name)?.parse().ok()
    }
}

/// `--bulwark-bin`, or `bulwark` next to this binary.
pub fn locate(explicit: Option<&Path>) -> Result<PathBuf, String> {
    if let Some(path) = explicit {
        return Ok(path.to_path_buf());
    }
    let this = std::env::current_exe().map_err(|e| format!("cannot find this binary's path: {e}"))?;
    let beside = this.with_file_name("bulwark");
    if beside.is_file() {
        Ok(beside)
    } else {
        Err(format!("no bulwark binary at {}: pass --bulwark-bin PATH", beside.display()))
    }
}

impl Admin {
    async fn run(&self, arguments: &[&str], timeout: Duration) -> Result<String, String> {
        let mut command = tokio::process::Command::new(&self.binary);
        command
            .arg("admin")
            .arg("--endpoint")
            .arg(&self.endpoint)
            .args(arguments)
            .env("BULWARK_ROOT_USER", &self.access_key)
            .env("BULWARK_ROOT_PASSWORD", &self.secret_key)
            .env("BULWARK_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let shown = format!("{} admin {}", self.binary.display(), arguments.join(" "));
        let child = command.spawn().map_err(|e| format!("cannot run {shown}: {e}"))?;
        let output = tokio::time::timeout(timeout, child.wait_with_output())
            .await
            .map_err(|_| format!("{shown}: no answer within {} s", timeout.as_secs()))?
            .map_err(|e| format!("{shown}: {e}"))?;
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        if !output.status.success() {
            let stderr = String::from_utf8_lossy(&output.stderr);
            return Err(format!("{shown} failed ({}): {} {}", output.status, stderr.trim(), stdout.trim()));
        }
        Ok(stdout)
    }

    /// `bulwark admin status --json`.
    pub async fn status(&self) -> Result<Value, String> {
        let text = self.run(&["status", "--json"], STATUS_TIMEOUT).await?;
        serde_json::from_str(&text).map_err(|e| format!("admin status: unexpected output: {e}"))
    }

    /// `bulwark admin <command> --bucket B --wait`, timed from spawn to exit.
    pub async fn pass_and_wait(&self, command: &str, bucket: &str) -> Result<PassOutput, String> {
        let start = Instant::now();
        let text = self.run(&[command, "--bucket", bucket, "--wait"], PASS_TIMEOUT).await?;
        Ok(PassOutput { seconds: start.elapsed().as_secs_f64(), fields: parse_fields(&text) })
    }

    /// `bulwark admin <command> --bucket B`: starts a pass and returns at once.
    pub async fn start_pass(&self, command: &str, bucket: &str) -> Result<(), String> {
        self.run(&[command, "--bucket", bucket], STATUS_TIMEOUT).await.map(|_| ())
    }
}

/// `  bytes checked:      123` lines into `bytes checked` → `123`.
fn parse_fields(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.trim().to_owned(), value.trim().to_owned()))
        .filter(|(name, value)| !name.is_empty() && !value.is_empty())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pass_reports_parse_into_fields() {
        let text = "scrub report (12.5s):\n  versions checked:   512\n  bytes checked:      3221225472\n  \
                    problems found:     0\n  still queued:       0\n";
        let output = PassOutput { seconds: 12.5, fields: parse_fields(text) };
        assert_eq!(output.number("bytes checked"), Some(3_221_225_472));
        assert_eq!(output.number("versions checked"), Some(512));
        assert_eq!(output.number("problems found"), Some(0));
        assert_eq!(output.number("healed (total)"), None);
    }
}
