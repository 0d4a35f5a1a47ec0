//! Runs the AWS CLI (v1, with boto3 and awscrt) against one [`TestServer`].
//!
//! Contract: every run is isolated from the configuration of the machine (its own
//! config and credentials files, no profile, no endpoint variables, no IMDS), signs
//! with the root credentials, and addresses buckets by path. A run that fails, or a
//! missing `aws`, panics with what the CLI said: the tests that use it do not skip.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::{ACCESS_KEY, REGION, SECRET_KEY, TestServer};

/// `aws` pointed at one server.
pub struct AwsCli {
    endpoint: String,
    config_file: PathBuf,
    credentials_file: PathBuf,
}

impl AwsCli {
    /// Writes the CLI's config and (empty) credentials files into `scratch`.
    pub fn new(server: &TestServer, scratch: &Path) -> AwsCli {
        let config_file = scratch.join("aws-config");
        std::fs::write(&config_file, format!("[default]\nregion = {REGION}\ns3 =\n    addressing_style = path\n"))
            .expect("write the CLI config");
        let credentials_file = scratch.join("aws-credentials");
        std::fs::write(&credentials_file, "").expect("write an empty credentials file");
        AwsCli { endpoint: server.endpoint(), config_file, credentials_file }
    }

    /// Runs `aws --endpoint-url … <args>` in `dir` and returns its stdout; panics
    /// with its output if it fails.
    pub async fn run(&self, dir: &Path, args: &[&str]) -> String {
        let mut command = Command::new("aws");
        command
            .arg("--endpoint-url")
            .arg(&self.endpoint)
            .args(args)
            .current_dir(dir)
            .env("AWS_ACCESS_KEY_ID", ACCESS_KEY)
            .env("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
            .env("AWS_DEFAULT_REGION", REGION)
            .env("AWS_CONFIG_FILE", &self.config_file)
            .env("AWS_SHARED_CREDENTIALS_FILE", &self.credentials_file)
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env("AWS_PAGER", "")
            .env_remove("AWS_PROFILE")
            .env_remove("AWS_SESSION_TOKEN")
            .env_remove("AWS_ENDPOINT_URL")
            .env_remove("AWS_ENDPOINT_URL_S3");
        let description = format!("aws {}", args.join(" "));
        let output = tokio::task::spawn_blocking(move || command.output())
            .await
            .expect("the CLI runner does not panic")
            .unwrap_or_else(|e| {
                if e.kind() == std::io::ErrorKind::NotFound {
                    panic!(
                        "the AWS CLI (`aws`) is not on PATH: install it with \
                         `pip install awscli boto3 awscrt`; this test does not skip without it"
                    )
                }
                panic!("run {description}: {e}")
            });
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        assert!(
            output.status.success(),
            "{description} failed with {}\n--- stdout ---\n{stdout}\n--- stderr ---\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
        stdout
    }

    /// Runs an `aws s3api …` command and parses its JSON output.
    pub async fn run_json(&self, dir: &Path, args: &[&str]) -> serde_json::Value {
        let stdout = self.run(dir, args).await;
        serde_json::from_str(&stdout)
            .unwrap_or_else(|e| panic!("aws {} printed no JSON ({e}): {stdout}", args.join(" ")))
    }
}
