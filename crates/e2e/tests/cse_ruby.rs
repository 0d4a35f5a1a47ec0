//! Objects move between `bulwark cse` and the official AWS SDK for Ruby's
//! `Aws::S3::EncryptionV2::Client` (Debian `ruby-aws-sdk-s3`) in both directions,
//! with each key the Ruby client supports: an AES-256 master key (AES/GCM wrap),
//! an RSA key (RSA-OAEP-SHA1) and a KMS key (kms+context), the envelope in
//! object metadata or in an instruction file. The Ruby client reads only v2,
//! which is why `bulwark cse put` writes v2 unless told otherwise. Objects of
//! the legacy V1 Ruby client (AES-CBC, not authenticated) are refused unless
//! `--allow-legacy` is given.

use std::path::{Path, PathBuf};

use bulwark_e2e::TestServer;
use bulwark_e2e::cse::{run_ruby, run_ruby_expecting_failure};
use bulwark_e2e::payload;

const BUCKET: &str = "cse-ruby";

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    path
}

fn read(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

fn p(path: &Path) -> &str {
    path.to_str().expect("utf-8 path")
}

fn s3(key: &str) -> String {
    format!("s3://{BUCKET}/{key}")
}

/// Ruby writes `key` with `wrap`; bulwark reads it. Bulwark writes `key-back`;
/// Ruby reads it. `ruby_key` is what Ruby is given, `bulwark_key` what bulwark is.
async fn both_directions(server: &TestServer, wrap: &str, ruby_key: &str, bulwark_key: &[&str], location: &str) {
    let scratch = server.scratch_dir();
    let name = format!("{wrap}-{location}");
    let plaintext = payload(name.len() as u64 * 31 + 7, 200_003);
    let source = write(&scratch, &format!("{name}.plain"), &plaintext);

    run_ruby(server, &["put", wrap, BUCKET, &name, p(&source), ruby_key, location]).await;
    let out = scratch.join(format!("{name}.from-ruby"));
    let target = s3(&name);
    let mut args = vec!["get", &target as &str, p(&out)];
    args.extend_from_slice(bulwark_key);
    let get = server.cse(&args).await;
    get.assert_success();
    assert!(read(&out) == plaintext, "{name}: bulwark decrypted Ruby's object wrongly");

    let back = format!("{name}-back");
    let target = s3(&back);
    let mut args = vec!["put", p(&source), &target];
    args.extend_from_slice(bulwark_key);
    if location == "instruction" {
        args.push("--instruction-file");
    }
    server.cse(&args).await.assert_success();
    let out = scratch.join(format!("{name}.from-bulwark"));
    run_ruby(server, &["get", wrap, BUCKET, &back, p(&out), ruby_key, location]).await;
    assert!(read(&out) == plaintext, "{name}: Ruby decrypted bulwark's object wrongly");
}

#[tokio::test]
async fn aes_gcm_master_key_objects_move_both_ways_and_ruby_cannot_read_v3() {
    let (server, _client) = TestServer::start_with_bucket(BUCKET).await;
    let scratch = server.scratch_dir();
    let key = write(&scratch, "master.key", &payload(0xae5, 32));
    for location in ["metadata", "instruction"] {
        both_directions(&server, "aes", p(&key), &["--master-key", p(&key)], location).await;
    }

    // The interop finding behind the default format: this Ruby SDK reads v2 only.
    let source = write(&scratch, "v3.plain", b"committing format");
    server.cse(&["put", p(&source), &s3("v3"), "--master-key", p(&key), "--format", "v3"]).await.assert_success();
    let stderr =
        run_ruby_expecting_failure(&server, &["get", "aes", BUCKET, "v3", p(&scratch.join("v3.out")), p(&key)]).await;
    assert!(stderr.contains("unable to locate encryption envelope"), "Ruby's v3 failure: {stderr}");
}

#[tokio::test]
async fn rsa_oaep_objects_move_both_ways() {
    let (server, _client) = TestServer::start_with_bucket(BUCKET).await;
    let scratch = server.scratch_dir();
    let private = write(&scratch, "rsa.pem", include_bytes!("../../cse/testdata/rsa-2048.pkcs8.pem"));
    let public = write(&scratch, "rsa.pub.pem", include_bytes!("../../cse/testdata/rsa-2048.public.pem"));
    for location in ["metadata", "instruction"] {
        both_directions(&server, "rsa", p(&private), &["--rsa-key", p(&private)], location).await;
    }
    // bulwark encrypts with the public key alone; Ruby decrypts with the private key.
    let plaintext = payload(0x25a, 9_999);
    let source = write(&scratch, "public.plain", &plaintext);
    server.cse(&["put", p(&source), &s3("by-public"), "--rsa-key", p(&public)]).await.assert_success();
    let out = scratch.join("by-public.out");
    run_ruby(&server, &["get", "rsa", BUCKET, "by-public", p(&out), p(&private)]).await;
    assert_eq!(read(&out), plaintext);
}

#[tokio::test]
async fn kms_context_objects_move_both_ways() {
    let (server, _client) = TestServer::start_with_bucket(BUCKET).await;
    let key_id = server.create_kms_key().await;
    for location in ["metadata", "instruction"] {
        both_directions(&server, "kms", &key_id, &["--kms-key-id", &key_id], location).await;
    }
}

#[tokio::test]
async fn legacy_v1_objects_are_refused_unless_allowed() {
    let (server, client) = TestServer::start_with_bucket(BUCKET).await;
    let scratch = server.scratch_dir();
    let key = write(&scratch, "master.key", &payload(0x1e9, 32));
    let plaintext = payload(0x1e9a, 5_000);
    let source = write(&scratch, "v1.plain", &plaintext);
    run_ruby(&server, &["put", "aes-v1", BUCKET, "v1", p(&source), p(&key)]).await;
    let head = client.head_object().bucket(BUCKET).key("v1").send().await.expect("HEAD");
    let metadata = head.metadata().cloned().unwrap_or_default();
    assert!(metadata.contains_key("x-amz-key") && !metadata.contains_key("x-amz-key-v2"), "{metadata:?}");

    let out = scratch.join("v1.out");
    let refused = server.cse(&["get", &s3("v1"), p(&out), "--master-key", p(&key)]).await;
    refused.assert_failure_mentions("--allow-legacy");
    assert!(!out.exists());
    server.cse(&["get", &s3("v1"), p(&out), "--master-key", p(&key), "--allow-legacy"]).await.assert_success();
    assert_eq!(read(&out), plaintext);
}
