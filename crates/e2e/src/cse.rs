//! Client-side encryption (`tests/cse*.rs`): runs `bulwark cse …`, the official
//! AWS S3 Encryption Client for Python (`amazon-s3-encryption-client-python`)
//! and the AWS SDK for Ruby's `Aws::S3::EncryptionV2::Client` against one
//! [`TestServer`].
//!
//! Contract:
//! - Every process signs with the root credentials, region us-east-1, path-style
//!   addressing, and sees no configuration of the machine (its own empty AWS
//!   config and credentials files, no profile, no endpoint variables, no IMDS).
//! - [`TestServer::cse`] returns what `bulwark cse` printed and whether it
//!   succeeded: the tamper tests need the failures.
//! - [`run_python`] and [`run_ruby`] run one of the scripts below with
//!   arguments and panic with the script's output if it fails: they are the
//!   other side of an interop test, whose failure is the test's failure. A
//!   missing interpreter or library panics with how to install it (`.ci/run`
//!   does); the tests never skip.
//! - Python is `$BULWARK_E2E_PYTHON`, else `python3` on PATH (`.ci/run` puts the
//!   venv first); Ruby is `ruby` on PATH (Debian's `ruby-aws-sdk-s3`/`-kms`).

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use crate::aws_cli::AwsCli;
use crate::{ACCESS_KEY, REGION, SECRET_KEY, TestServer, bulwark_binary};

/// What one `bulwark cse …` run printed and how it ended.
#[derive(Debug, Clone)]
pub struct CseOutput {
    pub command: String,
    pub success: bool,
    pub stdout: String,
    pub stderr: String,
}

impl CseOutput {
    #[track_caller]
    pub fn assert_success(&self) {
        assert!(
            self.success,
            "`bulwark cse {}` failed\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.command, self.stdout, self.stderr
        );
    }

    /// Asserts that the run failed and that stderr says `needle` (case-insensitive).
    #[track_caller]
    pub fn assert_failure_mentions(&self, needle: &str) {
        assert!(!self.success, "`bulwark cse {}` succeeded but should have failed\n{}", self.command, self.stdout);
        assert!(
            self.stderr.to_lowercase().contains(&needle.to_lowercase()),
            "`bulwark cse {}` failed without saying {needle:?}:\n{}",
            self.command,
            self.stderr
        );
    }
}

/// Environment shared by every process: root credentials, region, isolation.
fn isolate(command: &mut Command, scratch: &Path) {
    let config = scratch.join("cse-aws-config");
    let credentials = scratch.join("cse-aws-credentials");
    if !config.exists() {
        std::fs::write(&config, format!("[default]\nregion = {REGION}\n")).expect("write the AWS config file");
        std::fs::write(&credentials, "").expect("write an empty AWS credentials file");
    }
    command
        .env("AWS_ACCESS_KEY_ID", ACCESS_KEY)
        .env("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
        .env("AWS_DEFAULT_REGION", REGION)
        .env("AWS_REGION", REGION)
        .env("AWS_CONFIG_FILE", &config)
        .env("AWS_SHARED_CREDENTIALS_FILE", &credentials)
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("BULWARK_LOG", "warn")
        .env_remove("AWS_PROFILE")
        .env_remove("AWS_SESSION_TOKEN")
        .env_remove("AWS_ENDPOINT_URL")
        .env_remove("AWS_ENDPOINT_URL_S3")
        .env_remove("AWS_ENDPOINT_URL_KMS")
        .env_remove("AWS_CA_BUNDLE")
        .stdin(Stdio::null());
}

async fn output_of(mut command: Command, description: String, install_hint: &'static str) -> Output {
    tokio::task::spawn_blocking(move || command.output())
        .await
        .expect("the process runner does not panic")
        .unwrap_or_else(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                panic!("{description}: not found on PATH; {install_hint}; this test does not skip without it")
            }
            panic!("run {description}: {e}")
        })
}

impl TestServer {
    /// Runs `bulwark cse --endpoint <this server> <args…>` in the scratch directory.
    pub async fn cse(&self, args: &[&str]) -> CseOutput {
        let scratch = self.scratch_dir();
        let mut command = Command::new(bulwark_binary());
        command.arg("cse").args(args).arg("--endpoint").arg(self.endpoint()).current_dir(&scratch);
        if self.is_tls() {
            command.arg("--ca-cert").arg(self.tls_cert_path());
        }
        isolate(&mut command, &scratch);
        let output = output_of(command, format!("bulwark cse {}", args.join(" ")), "build the workspace").await;
        CseOutput {
            command: args.join(" "),
            success: output.status.success(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    /// Creates a symmetric KMS key with `aws kms create-key` and returns its id.
    pub async fn create_kms_key(&self) -> String {
        let scratch = self.scratch_dir();
        let cli = AwsCli::new(self, &scratch);
        let created = cli.run_json(&scratch, &["kms", "create-key", "--description", "cse e2e"]).await;
        created["KeyMetadata"]["KeyId"]
            .as_str()
            .unwrap_or_else(|| panic!("aws kms create-key printed no KeyId: {created}"))
            .to_owned()
    }
}

fn python_binary() -> PathBuf {
    std::env::var_os("BULWARK_E2E_PYTHON").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("python3"))
}

/// One of the interop scripts, and how to get its interpreter.
struct Script {
    interpreter: &'static str,
    binary: fn() -> PathBuf,
    file: &'static str,
    text: &'static str,
    install_hint: &'static str,
}

const PYTHON: Script = Script {
    interpreter: "python3",
    binary: python_binary,
    file: "s3ec.py",
    text: PYTHON_S3EC,
    install_hint: "install it with `pip install amazon-s3-encryption-client-python boto3` (as .ci/run does)",
};

const RUBY: Script = Script {
    interpreter: "ruby",
    binary: || PathBuf::from("ruby"),
    file: "s3ec.rb",
    text: RUBY_S3EC,
    install_hint: "install it with `apt-get install ruby ruby-aws-sdk-s3 ruby-aws-sdk-kms` (as .ci/run does)",
};

/// Runs `script` with `args` against `server`; its output and a description.
async fn run_script(server: &TestServer, script: &Script, args: &[&str]) -> (Output, String) {
    let scratch = server.scratch_dir();
    let path = scratch.join(script.file);
    std::fs::write(&path, script.text).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    let mut command = Command::new((script.binary)());
    command.arg(&path).args(args).env("S3_ENDPOINT", server.endpoint()).current_dir(&scratch);
    isolate(&mut command, &scratch);
    let description = format!("{} {} {}", script.interpreter, script.file, args.join(" "));
    (output_of(command, description.clone(), script.install_hint).await, description)
}

/// Runs [`PYTHON_S3EC`] with `args` against `server`; returns its stdout.
pub async fn run_python(server: &TestServer, args: &[&str]) -> String {
    let (output, description) = run_script(server, &PYTHON, args).await;
    checked(output, &description)
}

/// Runs [`RUBY_S3EC`] with `args` against `server`; returns its stdout.
pub async fn run_ruby(server: &TestServer, args: &[&str]) -> String {
    let (output, description) = run_script(server, &RUBY, args).await;
    checked(output, &description)
}

/// Like [`run_ruby`], but returns the failure's stderr instead of panicking;
/// panics if the script succeeds.
pub async fn run_ruby_expecting_failure(server: &TestServer, args: &[&str]) -> String {
    let (output, description) = run_script(server, &RUBY, args).await;
    assert!(!output.status.success(), "{description} succeeded but should have failed");
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn checked(output: Output, description: &str) -> String {
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "{description} failed with {}\n--- stdout ---\n{stdout}\n--- stderr ---\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

/// The official AWS S3 Encryption Client for Python (KMS keyring).
///
/// `put|get FORMAT KMS_KEY_ID BUCKET KEY FILE [K=V …]` — FORMAT `v2` writes
/// suite 0x0072 (policy FORBID_ENCRYPT_ALLOW_DECRYPT), `v3` the committing
/// suite; `get` reads either (REQUIRE_ENCRYPT_ALLOW_DECRYPT). `derive DK_HEX
/// MESSAGE_ID_HEX` prints the client's own v3 key derivation. Each
/// S3EncryptionClient gets its own boto3 client (hooks live on the client).
pub const PYTHON_S3EC: &str = r#"
import os, sys
import boto3
from botocore.config import Config
from s3_encryption import S3EncryptionClient, S3EncryptionClientConfig
from s3_encryption.materials import KmsKeyring, AlgorithmSuite, CommitmentPolicy
from s3_encryption.key_derivation import derive_keys

def clients():
    common = dict(endpoint_url=os.environ["S3_ENDPOINT"], region_name="us-east-1")
    s3 = boto3.client("s3", config=Config(s3={"addressing_style": "path"}), **common)
    kms = boto3.client("kms", **common)
    return s3, kms

def encryption_client(format, key_id):
    s3, kms = clients()
    keyring = KmsKeyring(kms_client=kms, kms_key_id=key_id)
    if format == "v2":
        config = S3EncryptionClientConfig(
            keyring=keyring,
            encryption_algorithm=AlgorithmSuite.ALG_AES_256_GCM_IV12_TAG16_NO_KDF,
            commitment_policy=CommitmentPolicy.FORBID_ENCRYPT_ALLOW_DECRYPT)
    elif format == "v3":
        config = S3EncryptionClientConfig(
            keyring=keyring,
            encryption_algorithm=AlgorithmSuite.ALG_AES_256_GCM_HKDF_SHA512_COMMIT_KEY,
            commitment_policy=CommitmentPolicy.REQUIRE_ENCRYPT_ALLOW_DECRYPT)
    else:
        raise SystemExit("format must be v2 or v3")
    return S3EncryptionClient(wrapped_s3_client=s3, config=config)

def main(argv):
    if argv[0] == "derive":
        keys = derive_keys(bytes.fromhex(argv[1]), bytes.fromhex(argv[2]),
                           AlgorithmSuite.ALG_AES_256_GCM_HKDF_SHA512_COMMIT_KEY)
        print(keys[0].hex(), keys[1].hex())
        return
    op, format, key_id, bucket, key, path = argv[:6]
    context = dict(pair.split("=", 1) for pair in argv[6:])
    client = encryption_client(format, key_id)
    extra = {"EncryptionContext": context} if context else {}
    if op == "put":
        with open(path, "rb") as f:
            client.put_object(Bucket=bucket, Key=key, Body=f.read(), **extra)
    elif op == "get":
        body = client.get_object(Bucket=bucket, Key=key, **extra)["Body"].read()
        with open(path, "wb") as f:
            f.write(body)
    else:
        raise SystemExit("unknown operation " + op)
    print("ok")

main(sys.argv[1:])
"#;

/// The AWS SDK for Ruby's encryption clients.
///
/// `put|get WRAP BUCKET KEY FILE [KEY_MATERIAL] [metadata|instruction]`:
/// WRAP `aes` (EncryptionV2, :aes_gcm; KEY_MATERIAL = file of 32 raw bytes),
/// `rsa` (:rsa_oaep_sha1; a PEM private key), `kms` (:kms_context; a KMS key
/// id), or `aes-v1` (the legacy Encryption::Client: AES/ECB key wrap, AES-CBC).
pub const RUBY_S3EC: &str = r#"
require 'aws-sdk-s3'
require 'aws-sdk-kms'
require 'openssl'

op, wrap, bucket, key, path, material, location = ARGV
credentials = Aws::Credentials.new(ENV['AWS_ACCESS_KEY_ID'], ENV['AWS_SECRET_ACCESS_KEY'])
common = { endpoint: ENV['S3_ENDPOINT'], region: 'us-east-1', credentials: credentials }
s3 = Aws::S3::Client.new(**common, force_path_style: true)
envelope_location = location == 'instruction' ? :instruction_file : :metadata

client =
  case wrap
  when 'aes'
    Aws::S3::EncryptionV2::Client.new(client: s3, encryption_key: File.binread(material),
      key_wrap_schema: :aes_gcm, content_encryption_schema: :aes_gcm_no_padding,
      security_profile: :v2, envelope_location: envelope_location)
  when 'rsa'
    Aws::S3::EncryptionV2::Client.new(client: s3, encryption_key: OpenSSL::PKey::RSA.new(File.read(material)),
      key_wrap_schema: :rsa_oaep_sha1, content_encryption_schema: :aes_gcm_no_padding,
      security_profile: :v2, envelope_location: envelope_location)
  when 'kms'
    kms = Aws::KMS::Client.new(**common, validate_params: false)
    Aws::S3::EncryptionV2::Client.new(client: s3, kms_key_id: material, kms_client: kms,
      key_wrap_schema: :kms_context, content_encryption_schema: :aes_gcm_no_padding,
      security_profile: :v2, envelope_location: envelope_location)
  when 'aes-v1'
    Aws::S3::Encryption::Client.new(client: s3, encryption_key: File.binread(material),
      envelope_location: envelope_location)
  else
    abort "unknown wrap #{wrap}"
  end

case op
when 'put'
  params = { bucket: bucket, key: key, body: File.binread(path) }
  params[:kms_encryption_context] = {} if wrap == 'kms'
  client.put_object(**params)
when 'get'
  params = { bucket: bucket, key: key }
  params[:kms_encryption_context] = {} if wrap == 'kms'
  File.binwrite(path, client.get_object(**params).body.read)
else
  abort "unknown operation #{op}"
end
puts 'ok'
"#;
