//! Objects move between `bulwark cse` and the official AWS S3 Encryption Client
//! for Python (`amazon-s3-encryption-client-python`, KMS keyring, kms+context)
//! in both directions and in both formats: v2 (AES-GCM) and v3 (the committing
//! suite 0x0073), through the built-in KMS, with and without an encryption
//! context. The Python client's own HKDF derivation gives the same v3 content
//! key and commitment as the vector the `bulwark-cse` unit tests pin.

use std::path::{Path, PathBuf};

use bulwark_e2e::TestServer;
use bulwark_e2e::cse::run_python;
use bulwark_e2e::payload;

const BUCKET: &str = "cse-python";

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

#[tokio::test]
async fn python_derives_the_same_v3_keys_as_bulwark() {
    let server = TestServer::start().await;
    let data_key: String = (0u8..32).map(|b| format!("{b:02x}")).collect();
    let message_id: String = (0u8..28).map(|b| format!("{:02x}", 0xa0 + b)).collect();
    let printed = run_python(&server, &["derive", &data_key, &message_id]).await;
    // The vector of bulwark-cse's suite::tests::commitment_derivation_follows_the_spec.
    assert_eq!(
        printed.split_whitespace().collect::<Vec<_>>(),
        vec![
            "a8e0c7c35a41d8aaf9ef82a872f31b9e996b7ff6318c3772987ee5470cf89946",
            "c14b6f5ff01354a12d08225323f8bb6a482599d178c7bc3660be7a3b",
        ]
    );
}

#[tokio::test]
async fn python_objects_decrypt_with_bulwark_and_bulwark_objects_with_python() {
    let (server, client) = TestServer::start_with_bucket(BUCKET).await;
    let scratch = server.scratch_dir();
    let key_id = server.create_kms_key().await;
    for (format, context) in
        [("v2", None), ("v3", None), ("v2", Some("project=apollo")), ("v3", Some("project=apollo"))]
    {
        let name = format!("{format}-{}", if context.is_some() { "context" } else { "plain" });
        let plaintext = payload(name.len() as u64 * 101, 150_017);
        let source = write(&scratch, &format!("{name}.plain"), &plaintext);

        let mut args = vec!["put", format, &key_id, BUCKET, &name, p(&source)];
        args.extend(context);
        run_python(&server, &args).await;
        let head = client.head_object().bucket(BUCKET).key(&name).send().await.expect("HEAD");
        let metadata = head.metadata().cloned().unwrap_or_default();
        let version_key = if format == "v2" { "x-amz-key-v2" } else { "x-amz-3" };
        assert!(metadata.contains_key(version_key), "Python wrote {metadata:?}");

        let out = scratch.join(format!("{name}.from-python"));
        let target = format!("s3://{BUCKET}/{name}");
        let mut get = vec!["get", &target as &str, p(&out), "--kms-key-id", &key_id];
        if let Some(context) = context {
            get.extend(["--context", context]);
        }
        server.cse(&get).await.assert_success();
        assert!(read(&out) == plaintext, "{name}: bulwark decrypted Python's object wrongly");

        let back = format!("{name}-back");
        let target = format!("s3://{BUCKET}/{back}");
        let mut put = vec!["put", p(&source), &target as &str, "--kms-key-id", &key_id, "--format", format];
        if let Some(context) = context {
            put.extend(["--context", context]);
        }
        server.cse(&put).await.assert_success();
        let out = scratch.join(format!("{name}.from-bulwark"));
        let mut args = vec!["get", format, &key_id, BUCKET, &back, p(&out)];
        args.extend(context);
        run_python(&server, &args).await;
        assert!(read(&out) == plaintext, "{name}: Python decrypted bulwark's object wrongly");
    }
}

#[tokio::test]
async fn a_python_v3_object_with_an_altered_commitment_is_refused() {
    let (server, client) = TestServer::start_with_bucket(BUCKET).await;
    let scratch = server.scratch_dir();
    let key_id = server.create_kms_key().await;
    let source = write(&scratch, "plain", &payload(77, 1000));
    run_python(&server, &["put", "v3", &key_id, BUCKET, "obj", p(&source)]).await;
    let object = client.get_object().bucket(BUCKET).key("obj").send().await.expect("GET");
    let mut metadata = object.metadata().cloned().unwrap_or_default();
    let body = object.body.collect().await.expect("body").into_bytes();
    let commitment = metadata.get("x-amz-d").expect("x-amz-d").clone();
    // Change one base64 digit in the middle (the value stays 28 bytes).
    let mut chars: Vec<char> = commitment.chars().collect();
    chars[10] = if chars[10] == 'A' { 'B' } else { 'A' };
    metadata.insert("x-amz-d".into(), chars.into_iter().collect());
    client
        .put_object()
        .bucket(BUCKET)
        .key("obj")
        .set_metadata(Some(metadata))
        .body(aws_sdk_s3::primitives::ByteStream::from(body))
        .send()
        .await
        .expect("PUT");
    let out_dir = scratch.join("out");
    std::fs::create_dir_all(&out_dir).expect("mkdir");
    let get =
        server.cse(&["get", &format!("s3://{BUCKET}/obj"), p(&out_dir.join("file")), "--kms-key-id", &key_id]).await;
    get.assert_failure_mentions("key commitment mismatch");
    assert_eq!(std::fs::read_dir(&out_dir).expect("dir").count(), 0, "a failed get left files");
}
