//! Helpers for the tests of the built-in KMS (`tests/kms.rs`, `tests/kms_cli.rs`)
//! that the AWS SDK and CLI cannot provide.
//!
//! Contract:
//! - [`TestServer::start_with_env`] (in the harness) starts a server with
//!   test-only knobs such as `BULWARK_KMS_DELETION_WINDOW_SCALE_SECS`.
//! - [`send_kms_request`] sends one AWS JSON 1.1 KMS request over the raw client,
//!   unsigned or signed by hand with SigV4 for whatever service name a test
//!   chooses, so a test can send what the SDK never would (a signature scoped to
//!   `s3`, a wrong secret) and see the exact status and body.
//! - [`kms_audit`] runs `bulwark kms audit …` on a server's data directory, the
//!   way an operator checks the audit log, and returns what it printed.
//!
//! The SDK clients live in the test files: `aws-sdk-kms` is a dev-dependency.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::SystemTime;

use crate::{ACCESS_KEY, REGION, SECRET_KEY, TestServer, bulwark_binary, raw_http};

/// The account every key ARN of the built-in KMS names.
pub const ACCOUNT_ID: &str = "000000000000";

/// The audit log the server appends a record to for every KMS operation.
pub const AUDIT_LOG_FILE: &str = "kms-audit.log";

impl TestServer {
    /// `<data>/kms-audit.log`.
    pub fn kms_audit_log_path(&self) -> PathBuf {
        self.data_dir().join(AUDIT_LOG_FILE)
    }
}

/// The ARN of the key with id `key_id`.
pub fn key_arn(key_id: &str) -> String {
    format!("arn:aws:kms:{REGION}:{ACCOUNT_ID}:key/{key_id}")
}

/// The ARN of the alias `alias_name` (`alias/…`).
pub fn alias_arn(alias_name: &str) -> String {
    format!("arn:aws:kms:{REGION}:{ACCOUNT_ID}:{alias_name}")
}

/// How a hand-made KMS request is signed.
#[derive(Debug, Clone, Copy)]
pub struct HandSigning<'a> {
    pub access_key: &'a str,
    pub secret_key: &'a str,
    /// The SigV4 service name in the credential scope (`kms` for KMS).
    pub service: &'a str,
}

impl HandSigning<'static> {
    /// The root credentials, scoped to `service`.
    pub fn root(service: &'static str) -> HandSigning<'static> {
        HandSigning { access_key: ACCESS_KEY, secret_key: SECRET_KEY, service }
    }
}

/// Sends `POST /` with `X-Amz-Target: TrentService.<operation>` and the JSON
/// `body`, signed as `signing` says (SigV4 header auth, no `x-amz-content-sha256`,
/// as the SDKs sign KMS requests) or unsigned when it is `None`.
pub async fn send_kms_request(
    server: &TestServer,
    operation: &str,
    body: &serde_json::Value,
    signing: Option<HandSigning<'_>>,
) -> raw_http::Response {
    use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
    use aws_sigv4::sign::v4;

    let url = format!("{}/", server.endpoint());
    let host = server.host();
    let target = format!("TrentService.{operation}");
    let body = body.to_string();
    let headers =
        [("host", host.as_str()), ("content-type", "application/x-amz-json-1.1"), ("x-amz-target", target.as_str())];
    let mut all: Vec<(String, String)> =
        headers.iter().filter(|(n, _)| *n != "host").map(|(n, v)| ((*n).to_owned(), (*v).to_owned())).collect();
    if let Some(signing) = signing {
        let identity =
            aws_credential_types::Credentials::new(signing.access_key, signing.secret_key, None, None, "bulwark-e2e")
                .into();
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region(REGION)
            .name(signing.service)
            .time(SystemTime::now())
            .settings(SigningSettings::default())
            .build()
            .expect("valid signing parameters")
            .into();
        let request = SignableRequest::new("POST", &url, headers.iter().copied(), SignableBody::Bytes(body.as_bytes()))
            .expect("signable request");
        let (instructions, _signature) = sign(request, &params).expect("sign the request").into_parts();
        all.extend(instructions.headers().map(|(n, v)| (n.to_owned(), v.to_owned())));
    }
    let borrowed: Vec<(&str, &str)> = all.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
    raw_http::send("POST", &url, &borrowed, body.as_bytes()).await
}

/// The exception name of a KMS JSON error body (`__type`, without a
/// `namespace#` prefix), if the body is one.
pub fn kms_error_type(response: &raw_http::Response) -> Option<String> {
    let body: serde_json::Value = serde_json::from_slice(&response.body).ok()?;
    let name = body.get("__type")?.as_str()?;
    Some(name.rsplit('#').next().unwrap_or(name).to_owned())
}

/// What one `bulwark kms audit …` run printed and how it ended.
#[derive(Debug, Clone)]
pub struct AuditOutput {
    /// The command line after `bulwark`, for messages.
    pub command: String,
    pub success: bool,
    pub stdout: String,
    pub stderr: String,
}

impl AuditOutput {
    /// Panics with everything the command printed unless it exited with 0.
    #[track_caller]
    pub fn assert_success(&self) {
        assert!(
            self.success,
            "`bulwark {}` failed\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.command, self.stdout, self.stderr
        );
    }

    /// Stdout and stderr together, for searching what it said.
    pub fn all_output(&self) -> String {
        format!("{}\n{}", self.stdout, self.stderr)
    }
}

/// Runs `bulwark kms audit <args…> --data <server's data directory>` with the
/// root credentials in the environment (as the server has them) and waits for it.
pub async fn kms_audit(server: &TestServer, args: &[&str]) -> AuditOutput {
    let binary = bulwark_binary();
    let mut command = Command::new(&binary);
    command
        .args(["kms", "audit"])
        .args(args)
        .arg("--data")
        .arg(server.data_dir())
        .env("BULWARK_ROOT_USER", ACCESS_KEY)
        .env("BULWARK_ROOT_PASSWORD", SECRET_KEY)
        .env("BULWARK_LOG", "warn")
        .stdin(Stdio::null());
    let description = format!("kms audit {} --data {}", args.join(" "), server.data_dir().display());
    let output = tokio::task::spawn_blocking(move || command.output())
        .await
        .expect("the audit runner does not panic")
        .unwrap_or_else(|e| panic!("run {} {description}: {e}", binary.display()));
    AuditOutput {
        command: description,
        success: output.status.success(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}
