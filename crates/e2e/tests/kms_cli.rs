//! A user of the AWS CLI (v1) manages keys of the built-in KMS and uses them as
//! with AWS KMS: creates a key and an alias, makes a data key through the alias,
//! encrypts and decrypts a file under an encryption context (and is refused
//! without it), rotates the key on demand and lists the rotation, still decrypts
//! what was encrypted before, disables the key and is refused a data key with
//! `DisabledException`, and schedules the key for deletion.
//!
//! Every run names the endpoint (`--endpoint-url`), the region (`--region
//! us-east-1`) and the output format (`--output json`) and gets the root
//! credentials from `AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY`, isolated from the
//! machine's AWS configuration. The CLI must be installed (`pip install awscli`);
//! without it these tests fail.

use std::path::PathBuf;
use std::process::{Command, Output};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use bulwark_e2e::kms::{alias_arn, key_arn};
use bulwark_e2e::{ACCESS_KEY, REGION, SECRET_KEY, TestServer};

/// `aws … kms …` pointed at one server, run in a scratch directory (so
/// `fileb://name` refers to a file there).
struct KmsCli {
    endpoint: String,
    dir: PathBuf,
    config_file: PathBuf,
    credentials_file: PathBuf,
}

impl KmsCli {
    fn new(server: &TestServer) -> KmsCli {
        let dir = server.scratch_dir();
        // Empty files: nothing from the machine's ~/.aws applies.
        let config_file = dir.join("aws-kms-config");
        let credentials_file = dir.join("aws-kms-credentials");
        std::fs::write(&config_file, "").expect("write an empty CLI config");
        std::fs::write(&credentials_file, "").expect("write an empty credentials file");
        KmsCli { endpoint: server.endpoint(), dir, config_file, credentials_file }
    }

    async fn output(&self, args: &[&str]) -> Output {
        let mut command = Command::new("aws");
        command
            .arg("--endpoint-url")
            .arg(&self.endpoint)
            .args(["--region", REGION, "--output", "json"])
            .args(args)
            .current_dir(&self.dir)
            .env("AWS_ACCESS_KEY_ID", ACCESS_KEY)
            .env("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
            .env("AWS_CONFIG_FILE", &self.config_file)
            .env("AWS_SHARED_CREDENTIALS_FILE", &self.credentials_file)
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env("AWS_PAGER", "")
            .env_remove("AWS_PROFILE")
            .env_remove("AWS_SESSION_TOKEN")
            .env_remove("AWS_DEFAULT_REGION")
            .env_remove("AWS_REGION")
            .env_remove("AWS_ENDPOINT_URL")
            .env_remove("AWS_ENDPOINT_URL_KMS");
        let description = format!("aws {}", args.join(" "));
        tokio::task::spawn_blocking(move || command.output())
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
            })
    }

    /// Runs `aws kms <args>`, which must succeed, and parses its JSON output
    /// (`null` for commands that print nothing).
    async fn run(&self, args: &[&str]) -> serde_json::Value {
        let output = self.output(args).await;
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        assert!(
            output.status.success(),
            "aws {} failed with {}\n--- stdout ---\n{stdout}\n--- stderr ---\n{}",
            args.join(" "),
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
        if stdout.trim().is_empty() {
            return serde_json::Value::Null;
        }
        serde_json::from_str(&stdout)
            .unwrap_or_else(|e| panic!("aws {} printed no JSON ({e}): {stdout}", args.join(" ")))
    }

    /// Runs `aws kms <args>`, which must fail, and returns what it said on stderr.
    async fn run_failing(&self, args: &[&str]) -> String {
        let output = self.output(args).await;
        assert!(
            !output.status.success(),
            "aws {} succeeded but should have failed:\n{}",
            args.join(" "),
            String::from_utf8_lossy(&output.stdout)
        );
        String::from_utf8_lossy(&output.stderr).into_owned()
    }

    fn write(&self, name: &str, bytes: &[u8]) -> String {
        std::fs::write(self.dir.join(name), bytes).unwrap_or_else(|e| panic!("write {name}: {e}"));
        format!("fileb://{name}")
    }
}

fn text<'a>(value: &'a serde_json::Value, field: &str) -> &'a str {
    value[field].as_str().unwrap_or_else(|| panic!("no string {field} in {value}"))
}

fn blob(value: &serde_json::Value, field: &str) -> Vec<u8> {
    BASE64.decode(text(value, field)).unwrap_or_else(|e| panic!("{field} is base64 ({e}): {value}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aws_cli_makes_data_keys_and_encrypts_and_decrypts_under_an_encryption_context() {
    let server = TestServer::start().await;
    let cli = KmsCli::new(&server);
    let created = cli.run(&["kms", "create-key", "--description", "cli data keys"]).await;
    let meta = &created["KeyMetadata"];
    let key_id = text(meta, "KeyId").to_owned();
    assert_eq!(text(meta, "Arn"), key_arn(&key_id));
    assert_eq!(
        (text(meta, "KeyState"), text(meta, "KeyUsage"), text(meta, "KeySpec")),
        ("Enabled", "ENCRYPT_DECRYPT", "SYMMETRIC_DEFAULT")
    );
    cli.run(&["kms", "create-alias", "--alias-name", "alias/cli-data", "--target-key-id", &key_id]).await;
    let aliases = cli.run(&["kms", "list-aliases", "--key-id", &key_id]).await;
    let listed = aliases["Aliases"].as_array().expect("Aliases");
    assert!(
        listed.iter().any(|a| a["AliasName"] == "alias/cli-data" && a["AliasArn"] == alias_arn("alias/cli-data")),
        "list-aliases lists the alias: {aliases}"
    );

    let data_key = cli.run(&["kms", "generate-data-key", "--key-id", "alias/cli-data", "--key-spec", "AES_256"]).await;
    assert_eq!(text(&data_key, "KeyId"), key_arn(&key_id), "generate-data-key answers with the key ARN");
    let plaintext_key = blob(&data_key, "Plaintext");
    assert_eq!(plaintext_key.len(), 32, "an AES_256 data key has 32 bytes");
    let wrapped = cli.write("data-key.bin", &blob(&data_key, "CiphertextBlob"));
    let opened = cli.run(&["kms", "decrypt", "--ciphertext-blob", &wrapped]).await;
    assert_eq!(blob(&opened, "Plaintext"), plaintext_key, "decrypt gives back the data key");
    assert_eq!(text(&opened, "KeyId"), key_arn(&key_id));

    let secret = b"the launch code is 0000, as always\n";
    let plaintext_file = cli.write("note.txt", secret);
    let context = r#"{"purpose":"e2e","team":"storage"}"#;
    let sealed = cli
        .run(&[
            "kms",
            "encrypt",
            "--key-id",
            "alias/cli-data",
            "--plaintext",
            &plaintext_file,
            "--encryption-context",
            context,
        ])
        .await;
    assert_eq!(text(&sealed, "KeyId"), key_arn(&key_id));
    let ciphertext = blob(&sealed, "CiphertextBlob");
    assert!(!ciphertext.windows(secret.len()).any(|w| w == secret), "the ciphertext hides the note");
    let sealed_file = cli.write("note.sealed", &ciphertext);
    let reordered = r#"{"team":"storage","purpose":"e2e"}"#;
    let opened =
        cli.run(&["kms", "decrypt", "--ciphertext-blob", &sealed_file, "--encryption-context", reordered]).await;
    assert_eq!(blob(&opened, "Plaintext"), secret, "decrypt under the same context gives back the note");

    let refused = cli.run_failing(&["kms", "decrypt", "--ciphertext-blob", &sealed_file]).await;
    assert!(refused.contains("InvalidCiphertextException"), "decrypt without the context: {refused}");
    let refused = cli
        .run_failing(&[
            "kms",
            "decrypt",
            "--ciphertext-blob",
            &sealed_file,
            "--encryption-context",
            r#"{"purpose":"e2e","team":"billing"}"#,
        ])
        .await;
    assert!(refused.contains("InvalidCiphertextException"), "decrypt under another context: {refused}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aws_cli_rotates_disables_and_schedules_deletion_of_a_key() {
    let server = TestServer::start().await;
    let cli = KmsCli::new(&server);
    let created = cli.run(&["kms", "create-key", "--description", "cli lifecycle"]).await;
    let key_id = text(&created["KeyMetadata"], "KeyId").to_owned();
    let arn = key_arn(&key_id);
    cli.run(&["kms", "create-alias", "--alias-name", "alias/cli-life", "--target-key-id", &key_id]).await;

    let plaintext_file = cli.write("before.txt", b"encrypted before the rotation");
    let sealed = cli
        .run(&[
            "kms",
            "encrypt",
            "--key-id",
            "alias/cli-life",
            "--plaintext",
            &plaintext_file,
            "--encryption-context",
            r#"{"stage":"before"}"#,
        ])
        .await;
    let before = cli.write("before.sealed", &blob(&sealed, "CiphertextBlob"));

    let rotated = cli.run(&["kms", "rotate-key-on-demand", "--key-id", &key_id]).await;
    assert!(text(&rotated, "KeyId").contains(&key_id), "rotate-key-on-demand names the key: {rotated}");
    let rotations = cli.run(&["kms", "list-key-rotations", "--key-id", &key_id]).await;
    let rotations = rotations["Rotations"].as_array().unwrap_or_else(|| panic!("Rotations: {rotations}"));
    assert_eq!(rotations.len(), 1, "one on-demand rotation: {rotations:?}");
    assert_eq!(rotations[0]["RotationType"], "ON_DEMAND");
    let opened = cli
        .run(&["kms", "decrypt", "--ciphertext-blob", &before, "--encryption-context", r#"{"stage":"before"}"#])
        .await;
    assert_eq!(blob(&opened, "Plaintext"), b"encrypted before the rotation", "old ciphertexts decrypt after rotation");

    cli.run(&["kms", "disable-key", "--key-id", &key_id]).await;
    let described = cli.run(&["kms", "describe-key", "--key-id", "alias/cli-life"]).await;
    assert_eq!(described["KeyMetadata"]["KeyState"], "Disabled");
    let refused =
        cli.run_failing(&["kms", "generate-data-key", "--key-id", "alias/cli-life", "--key-spec", "AES_256"]).await;
    assert!(refused.contains("DisabledException"), "generate-data-key with a disabled key: {refused}");
    assert!(refused.contains(&format!("{arn} is disabled.")), "the CLI shows AWS's message: {refused}");

    let scheduled =
        cli.run(&["kms", "schedule-key-deletion", "--key-id", &key_id, "--pending-window-in-days", "7"]).await;
    assert_eq!(text(&scheduled, "KeyId"), arn);
    assert_eq!(text(&scheduled, "KeyState"), "PendingDeletion");
    assert_eq!(scheduled["PendingWindowInDays"], 7);
    assert!(scheduled["DeletionDate"].is_number() || scheduled["DeletionDate"].is_string(), "{scheduled}");
    let described = cli.run(&["kms", "describe-key", "--key-id", &key_id]).await;
    assert_eq!(described["KeyMetadata"]["KeyState"], "PendingDeletion");
    let refused = cli.run_failing(&["kms", "generate-data-key", "--key-id", &key_id, "--key-spec", "AES_256"]).await;
    assert!(refused.contains("KMSInvalidStateException"), "generate-data-key with a key pending deletion: {refused}");
    assert!(refused.contains(&format!("{arn} is pending deletion.")), "the CLI shows AWS's message: {refused}");
}
