//! Runs rclone (Debian's `rclone` package) against one [`TestServer`].
//!
//! Contract: every run reads only its own configuration file, which names one
//! remote, `bulwark:`, of type `s3` with provider `Other` (path-style addressing,
//! the root credentials, no environment credentials). Retries are off, so a
//! failed request fails the command instead of being tried again. A run that
//! fails, or a missing `rclone`, panics with what rclone said: the tests that
//! use it do not skip.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::{ACCESS_KEY, REGION, SECRET_KEY, TestServer};

/// The remote every run's configuration names.
pub const REMOTE: &str = "bulwark";

/// `rclone` pointed at one server.
pub struct Rclone {
    config_file: PathBuf,
    ca_cert: Option<PathBuf>,
}

/// What one run printed.
pub struct RcloneOutput {
    /// Standard output as bytes (what `cat` printed).
    pub bytes: Vec<u8>,
    pub stdout: String,
    pub stderr: String,
}

impl Rclone {
    /// Writes rclone's configuration into `scratch`; a TLS server's certificate
    /// is passed as the only trusted CA.
    pub fn new(server: &TestServer, scratch: &Path) -> Rclone {
        let config_file = scratch.join("rclone.conf");
        std::fs::write(
            &config_file,
            format!(
                "[{REMOTE}]\ntype = s3\nprovider = Other\nenv_auth = false\naccess_key_id = {ACCESS_KEY}\n\
                 secret_access_key = {SECRET_KEY}\nregion = {REGION}\nendpoint = {}\nforce_path_style = true\n",
                server.endpoint()
            ),
        )
        .expect("write the rclone config");
        let ca_cert = server.is_tls().then(|| server.tls_cert_path());
        Rclone { config_file, ca_cert }
    }

    /// `bulwark:<path>`.
    pub fn remote(path: &str) -> String {
        format!("{REMOTE}:{path}")
    }

    /// Runs `rclone <args>` in `dir`; panics with its output if it fails.
    pub async fn run(&self, dir: &Path, args: &[&str]) -> RcloneOutput {
        let description = format!("rclone {}", args.join(" "));
        let output = self.output(dir, args).await;
        let printed = RcloneOutput {
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            bytes: output.stdout,
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        };
        assert!(
            output.status.success(),
            "{description} failed with {}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            output.status,
            printed.stdout,
            printed.stderr
        );
        printed
    }

    /// Runs an `rclone lsjson …` and parses what it printed.
    pub async fn run_json(&self, dir: &Path, args: &[&str]) -> serde_json::Value {
        let stdout = self.run(dir, args).await.stdout;
        serde_json::from_str(&stdout)
            .unwrap_or_else(|e| panic!("rclone {} printed no JSON ({e}): {stdout}", args.join(" ")))
    }

    async fn output(&self, dir: &Path, args: &[&str]) -> std::process::Output {
        let mut command = Command::new("rclone");
        command.arg("--config").arg(&self.config_file).args(["--retries", "1", "--low-level-retries", "1"]);
        if let Some(ca) = &self.ca_cert {
            command.arg("--ca-cert").arg(ca);
        }
        command
            .args(args)
            .current_dir(dir)
            // The AWS SDK for Go inside rclone refuses a CA bundle from the
            // environment when it does not build the HTTP transport itself;
            // the one CA it needs comes from --ca-cert.
            .env_remove("AWS_CA_BUNDLE")
            .env_remove("AWS_PROFILE")
            .env_remove("AWS_ACCESS_KEY_ID")
            .env_remove("AWS_SECRET_ACCESS_KEY")
            .env_remove("AWS_SESSION_TOKEN")
            .env_remove("RCLONE_CONFIG");
        let description = format!("rclone {}", args.join(" "));
        tokio::task::spawn_blocking(move || command.output())
            .await
            .expect("the rclone runner does not panic")
            .unwrap_or_else(|e| {
                if e.kind() == std::io::ErrorKind::NotFound {
                    panic!(
                        "rclone is not on PATH: install it with `apt-get install rclone` \
                         (.ci/run does); this test does not skip without it"
                    )
                }
                panic!("run {description}: {e}")
            })
    }
}
