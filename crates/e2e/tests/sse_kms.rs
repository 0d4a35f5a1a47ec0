//! SSE-S3 and SSE-KMS with the built-in KMS, through the real server: objects
//! are encrypted at rest under a fresh key sealed by a KMS data key, read
//! back whole, in ranges and across multipart parts; copies change their
//! encryption; a disabled or deleted key stops reads and writes with S3's
//! `KMS.*` errors and re-enabling brings them back; key rotation keeps old
//! objects readable and `bulwark admin rewrap` re-seals them; reading an
//! SSE-KMS object needs permission to decrypt with its key; bucket default
//! encryption applies to writes that name none. KMS keys are managed with the
//! AWS CLI (`aws kms …`) against the same endpoint; objects with aws-sdk-s3
//! and the AWS CLI (`aws s3 cp --sse`).

use std::path::Path;

use aws_sdk_s3::Client;
use aws_sdk_s3::operation::RequestId as _;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{
    CompletedMultipartUpload, CompletedPart, ServerSideEncryption, ServerSideEncryptionByDefault,
    ServerSideEncryptionConfiguration, ServerSideEncryptionRule,
};
use bulwark_e2e::aws_cli::AwsCli;
use bulwark_e2e::{TestServer, error_code, get_bytes, http_status, md5_hex, payload};

const BUCKET: &str = "vault";
const MIB: usize = 1024 * 1024;
/// A byte string that must never appear on a drive in the clear.
const MARKER: &[u8] = b"BULWARK-SSE-KMS-PLAINTEXT-MARKER-7f3a";

async fn create_key(cli: &AwsCli, dir: &Path) -> (String, String) {
    let created = cli.run_json(dir, &["kms", "create-key", "--description", "e2e"]).await;
    let meta = &created["KeyMetadata"];
    (meta["KeyId"].as_str().expect("KeyId").to_owned(), meta["Arn"].as_str().expect("Arn").to_owned())
}

fn marked(len: usize, seed: u64) -> Vec<u8> {
    let mut body = payload(seed, len);
    for at in (0..len.saturating_sub(MARKER.len())).step_by(64 * 1024) {
        body[at..at + MARKER.len()].copy_from_slice(MARKER);
    }
    body
}

async fn put_kms(
    client: &Client,
    key: &str,
    body: Vec<u8>,
    kms_key: Option<&str>,
) -> aws_sdk_s3::operation::put_object::PutObjectOutput {
    let mut request = client
        .put_object()
        .bucket(BUCKET)
        .key(key)
        .server_side_encryption(ServerSideEncryption::AwsKms)
        .body(ByteStream::from(body));
    if let Some(kms_key) = kms_key {
        request = request.ssekms_key_id(kms_key);
    }
    request.send().await.unwrap_or_else(|e| panic!("put {key} with SSE-KMS: {e:?}"))
}

async fn get_range(client: &Client, key: &str, first: usize, last: usize) -> Vec<u8> {
    let out = client
        .get_object()
        .bucket(BUCKET)
        .key(key)
        .range(format!("bytes={first}-{last}"))
        .send()
        .await
        .unwrap_or_else(|e| panic!("range get {key}: {e:?}"));
    out.body.collect().await.expect("read the body").into_bytes().to_vec()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sse_s3_objects_are_encrypted_at_rest_and_read_back_whole_and_in_ranges() {
    let (server, client) = TestServer::start_with_bucket(BUCKET).await;
    let small = marked(40 * 1024, 1);
    let large = marked(3 * MIB + 12_345, 2);
    for (key, body) in [("small", &small), ("large", &large)] {
        let put = client
            .put_object()
            .bucket(BUCKET)
            .key(key)
            .server_side_encryption(ServerSideEncryption::Aes256)
            .body(ByteStream::from(body.clone()))
            .send()
            .await
            .expect("put with SSE-S3");
        assert_eq!(put.server_side_encryption(), Some(&ServerSideEncryption::Aes256));
        // S3: the ETag of a single-part SSE-S3 object is the MD5 of its data.
        assert_eq!(put.e_tag(), Some(format!("\"{}\"", md5_hex(body)).as_str()));
        let head = client.head_object().bucket(BUCKET).key(key).send().await.expect("head");
        assert_eq!(head.server_side_encryption(), Some(&ServerSideEncryption::Aes256));
        let got = client.get_object().bucket(BUCKET).key(key).send().await.expect("get");
        assert_eq!(got.server_side_encryption(), Some(&ServerSideEncryption::Aes256));
        assert_eq!(got.body.collect().await.expect("body").into_bytes().as_ref(), body.as_slice());
    }
    // Ranges that cross the 64 KiB encryption packages and the 1 MiB blocks.
    for (first, last) in [(0, 0), (65_530, 65_545), (MIB - 3, MIB + 70_000), (large.len() - 10, large.len() - 1)] {
        assert_eq!(get_range(&client, "large", first, last).await, &large[first..=last], "bytes {first}-{last}");
    }
    assert!(server.drive_files_containing(MARKER).is_empty(), "plaintext on a drive");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sse_kms_uses_the_named_key_an_alias_or_the_aws_s3_default_and_echoes_its_arn() {
    let (server, client) = TestServer::start_with_bucket(BUCKET).await;
    let dir = server.scratch_dir();
    let cli = AwsCli::new(&server, &dir);
    let (key_id, key_arn) = create_key(&cli, &dir).await;
    cli.run(&dir, &["kms", "create-alias", "--alias-name", "alias/photos", "--target-key-id", &key_id]).await;

    let body = marked(200 * 1024, 3);
    for (object, named) in [("by-id", key_id.as_str()), ("by-arn", key_arn.as_str()), ("by-alias", "alias/photos")] {
        let put = put_kms(&client, object, body.clone(), Some(named)).await;
        assert_eq!(put.server_side_encryption(), Some(&ServerSideEncryption::AwsKms));
        assert_eq!(put.ssekms_key_id(), Some(key_arn.as_str()), "{object}: the response names the key's ARN");
        assert_ne!(put.e_tag(), Some(format!("\"{}\"", md5_hex(&body)).as_str()), "SSE-KMS ETag is not the MD5");
        let got = client.get_object().bucket(BUCKET).key(object).send().await.expect("get");
        assert_eq!(got.ssekms_key_id(), Some(key_arn.as_str()));
        assert_eq!(got.body.collect().await.expect("body").into_bytes().as_ref(), body.as_slice());
    }
    // No key named: the AWS-managed aws/s3 key.
    let put = put_kms(&client, "default-key", body.clone(), None).await;
    let default_arn = put.ssekms_key_id().expect("the default key's ARN").to_owned();
    assert_ne!(default_arn, key_arn);
    let aliases = cli.run_json(&dir, &["kms", "list-aliases"]).await;
    let aws_s3 = aliases["Aliases"]
        .as_array()
        .expect("aliases")
        .iter()
        .find(|a| a["AliasName"] == "alias/aws/s3")
        .expect("alias/aws/s3 exists after first use");
    assert!(default_arn.ends_with(aws_s3["TargetKeyId"].as_str().expect("target")));
    assert_eq!(get_bytes(&client, BUCKET, "default-key").await, body);

    // An encryption context is bound to the data key and echoed on the PUT.
    let context = base64_json(r#"{"project":"apollo"}"#);
    let put = client
        .put_object()
        .bucket(BUCKET)
        .key("with-context")
        .server_side_encryption(ServerSideEncryption::AwsKms)
        .ssekms_key_id(&key_id)
        .ssekms_encryption_context(&context)
        .body(ByteStream::from(body.clone()))
        .send()
        .await
        .expect("put with context");
    assert_eq!(put.ssekms_encryption_context(), Some(context.as_str()));
    let got = client.get_object().bucket(BUCKET).key("with-context").send().await.expect("get with context");
    let get_id = got.request_id().expect("x-amz-request-id").to_owned();
    assert_eq!(got.body.collect().await.expect("body").into_bytes().as_ref(), body.as_slice());
    // The KMS audit records of an S3 request carry that request's id.
    let audit = std::fs::read_to_string(server.kms_audit_log_path()).expect("the KMS audit log");
    let records: Vec<serde_json::Value> =
        audit.lines().map(|l| serde_json::from_str(l).expect("an audit record")).collect();
    for (id, operation) in [(put.request_id().expect("x-amz-request-id"), "GenerateDataKey"), (&get_id, "Decrypt")] {
        let record = records
            .iter()
            .find(|r| r["request_id"] == id)
            .unwrap_or_else(|| panic!("no audit record of request {id}: {audit}"));
        assert_eq!((record["operation"].as_str(), record["source"].as_str()), (Some(operation), Some("sse-kms")));
    }
    assert!(server.drive_files_containing(MARKER).is_empty(), "plaintext on a drive");

    // Unknown keys and malformed combinations are refused, and store nothing.
    let unknown = client
        .put_object()
        .bucket(BUCKET)
        .key("unknown-key")
        .server_side_encryption(ServerSideEncryption::AwsKms)
        .ssekms_key_id("alias/does-not-exist")
        .body(ByteStream::from_static(b"x"))
        .send()
        .await
        .expect_err("unknown key");
    assert_eq!((http_status(&unknown), error_code(&unknown).as_deref()), (Some(400), Some("KMS.NotFoundException")));
    let without_kms = client
        .put_object()
        .bucket(BUCKET)
        .key("no-sse")
        .ssekms_key_id(&key_id)
        .body(ByteStream::from_static(b"x"))
        .send()
        .await
        .expect_err("key id without aws:kms");
    assert_eq!(error_code(&without_kms).as_deref(), Some("InvalidArgument"));
    for refused in ["unknown-key", "no-sse"] {
        assert!(client.head_object().bucket(BUCKET).key(refused).send().await.is_err(), "{refused} was stored");
    }
}

fn base64_json(json: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(json)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_disabled_or_deleted_key_stops_reads_and_writes_and_re_enabling_restores_them() {
    let (server, client) = TestServer::start_with_bucket(BUCKET).await;
    let dir = server.scratch_dir();
    let cli = AwsCli::new(&server, &dir);
    let (key_id, key_arn) = create_key(&cli, &dir).await;
    let body = marked(100 * 1024, 4);
    put_kms(&client, "doc", body.clone(), Some(&key_id)).await;

    cli.run(&dir, &["kms", "disable-key", "--key-id", &key_id]).await;
    let get = client.get_object().bucket(BUCKET).key("doc").send().await.expect_err("disabled key");
    assert_eq!((http_status(&get), error_code(&get).as_deref()), (Some(400), Some("KMS.DisabledException")));
    let message = aws_sdk_s3::error::ProvideErrorMetadata::message(&get).unwrap_or_default().to_owned();
    assert_eq!(message, format!("{key_arn} is disabled."));
    let put = client
        .put_object()
        .bucket(BUCKET)
        .key("doc2")
        .server_side_encryption(ServerSideEncryption::AwsKms)
        .ssekms_key_id(&key_id)
        .body(ByteStream::from_static(b"x"))
        .send()
        .await
        .expect_err("disabled key");
    assert_eq!(error_code(&put).as_deref(), Some("KMS.DisabledException"));

    cli.run(&dir, &["kms", "enable-key", "--key-id", &key_id]).await;
    assert_eq!(get_bytes(&client, BUCKET, "doc").await, body);

    cli.run(&dir, &["kms", "schedule-key-deletion", "--key-id", &key_id, "--pending-window-in-days", "7"]).await;
    let get = client.get_object().bucket(BUCKET).key("doc").send().await.expect_err("pending deletion");
    assert_eq!((http_status(&get), error_code(&get).as_deref()), (Some(400), Some("KMS.KMSInvalidStateException")));
    cli.run(&dir, &["kms", "cancel-key-deletion", "--key-id", &key_id]).await;
    cli.run(&dir, &["kms", "enable-key", "--key-id", &key_id]).await;
    assert_eq!(get_bytes(&client, BUCKET, "doc").await, body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn objects_written_before_a_rotation_stay_readable_and_rewrap_reseals_them() {
    let (server, client) = TestServer::start_with_bucket(BUCKET).await;
    let dir = server.scratch_dir();
    let cli = AwsCli::new(&server, &dir);
    let (key_id, _) = create_key(&cli, &dir).await;
    let mut written = Vec::new();
    for i in 0..6u64 {
        let body = payload(100 + i, 10_000 + i as usize);
        let key = format!("old/{i}");
        if i % 2 == 0 {
            put_kms(&client, &key, body.clone(), Some(&key_id)).await;
        } else {
            client
                .put_object()
                .bucket(BUCKET)
                .key(&key)
                .server_side_encryption(ServerSideEncryption::Aes256)
                .body(ByteStream::from(body.clone()))
                .send()
                .await
                .expect("put SSE-S3");
        }
        written.push((key, body));
    }
    client.put_object().bucket(BUCKET).key("plain").body(ByteStream::from_static(b"p")).send().await.expect("put");

    cli.run(&dir, &["kms", "rotate-key-on-demand", "--key-id", &key_id]).await;
    server.admin(&["rotate-sse-s3"]).await.assert_success();
    let rotations = cli.run_json(&dir, &["kms", "list-key-rotations", "--key-id", &key_id]).await;
    assert_eq!(rotations["Rotations"].as_array().map(Vec::len), Some(1));
    for (key, body) in &written {
        assert_eq!(&get_bytes(&client, BUCKET, key).await, body, "{key} after rotation");
    }

    // Every data key is now under an old version of its key (the customer key
    // and the SSE-S3 master key both rotated).
    let first = server.admin(&["--json", "rewrap"]).await;
    first.assert_success();
    let report: serde_json::Value = serde_json::from_str(&first.stdout).expect("rewrap JSON");
    assert_eq!(report["scanned"], 7);
    assert_eq!(report["rewrapped"], 6, "{report}");
    assert_eq!(report["already_current"], 0, "{report}");
    assert_eq!(report["failed"], 0, "{report}");
    for (key, body) in &written {
        assert_eq!(&get_bytes(&client, BUCKET, key).await, body, "{key} after rewrap");
    }
    let again = server.admin(&["--json", "rewrap", "--bucket", BUCKET]).await;
    again.assert_success();
    let report: serde_json::Value = serde_json::from_str(&again.stdout).expect("rewrap JSON");
    assert_eq!((report["rewrapped"].as_u64(), report["already_current"].as_u64()), (Some(0), Some(6)), "{report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reading_an_sse_kms_object_needs_permission_to_decrypt_with_its_key() {
    let (server, root) = TestServer::start_with_bucket(BUCKET).await;
    let dir = server.scratch_dir();
    let cli = AwsCli::new(&server, &dir);
    let (key_id, key_arn) = create_key(&cli, &dir).await;
    put_kms(&root, "secret", b"classified".to_vec(), Some(&key_id)).await;
    root.put_object().bucket(BUCKET).key("open").body(ByteStream::from_static(b"open")).send().await.expect("put");

    let key = server.create_user("reader").await;
    let s3_read = serde_json::json!({
        "Version": "2012-10-17",
        "Statement": [{ "Effect": "Allow", "Action": ["s3:GetObject", "s3:PutObject"], "Resource": "arn:aws:s3:::vault/*" }]
    });
    server.put_policy("s3-read", &s3_read).await;
    server.attach_policy("s3-read", "--user", "reader").await;
    let reader = server.client_as(&key);
    assert_eq!(get_bytes(&reader, BUCKET, "open").await, b"open");
    let denied = reader.get_object().bucket(BUCKET).key("secret").send().await.expect_err("no kms:Decrypt");
    assert_eq!((http_status(&denied), error_code(&denied).as_deref()), (Some(403), Some("AccessDenied")));
    let denied = reader
        .put_object()
        .bucket(BUCKET)
        .key("mine")
        .server_side_encryption(ServerSideEncryption::AwsKms)
        .ssekms_key_id(&key_id)
        .body(ByteStream::from_static(b"x"))
        .send()
        .await
        .expect_err("no kms:GenerateDataKey");
    assert_eq!(http_status(&denied), Some(403));

    let kms_use = serde_json::json!({
        "Version": "2012-10-17",
        "Statement": [{ "Effect": "Allow", "Action": ["kms:Decrypt", "kms:GenerateDataKey"], "Resource": key_arn }]
    });
    server.put_policy("kms-use", &kms_use).await;
    server.attach_policy("kms-use", "--user", "reader").await;
    assert_eq!(get_bytes(&reader, BUCKET, "secret").await, b"classified");
    put_kms(&reader, "mine", b"x".to_vec(), Some(&key_id)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bucket_default_encryption_applies_to_writes_that_name_none() {
    let (server, client) = TestServer::start_with_bucket(BUCKET).await;
    let dir = server.scratch_dir();
    let cli = AwsCli::new(&server, &dir);
    let (key_id, key_arn) = create_key(&cli, &dir).await;

    let missing = client.get_bucket_encryption().bucket(BUCKET).send().await.expect_err("no default yet");
    assert_eq!(error_code(&missing).as_deref(), Some("ServerSideEncryptionConfigurationNotFoundError"));
    let rule = |algorithm: ServerSideEncryption, key: Option<&str>| {
        ServerSideEncryptionConfiguration::builder()
            .rules(
                ServerSideEncryptionRule::builder()
                    .apply_server_side_encryption_by_default(
                        ServerSideEncryptionByDefault::builder()
                            .sse_algorithm(algorithm)
                            .set_kms_master_key_id(key.map(str::to_owned))
                            .build()
                            .expect("default"),
                    )
                    .bucket_key_enabled(true)
                    .build(),
            )
            .build()
            .expect("configuration")
    };
    let bad = client
        .put_bucket_encryption()
        .bucket(BUCKET)
        .server_side_encryption_configuration(rule(ServerSideEncryption::Aes256, Some(&key_id)))
        .send()
        .await
        .expect_err("a key id with AES256");
    assert_eq!(error_code(&bad).as_deref(), Some("InvalidArgument"));
    client
        .put_bucket_encryption()
        .bucket(BUCKET)
        .server_side_encryption_configuration(rule(ServerSideEncryption::AwsKms, Some(&key_id)))
        .send()
        .await
        .expect("put bucket encryption");
    let got = client.get_bucket_encryption().bucket(BUCKET).send().await.expect("get bucket encryption");
    let by_default = got
        .server_side_encryption_configuration()
        .and_then(|c| c.rules().first())
        .and_then(|r| r.apply_server_side_encryption_by_default())
        .expect("a default rule");
    assert_eq!(by_default.sse_algorithm(), &ServerSideEncryption::AwsKms);
    assert_eq!(by_default.kms_master_key_id(), Some(key_id.as_str()));

    let put = client.put_object().bucket(BUCKET).key("auto").body(ByteStream::from(MARKER.to_vec())).send().await;
    let put = put.expect("put without encryption headers");
    assert_eq!(put.server_side_encryption(), Some(&ServerSideEncryption::AwsKms));
    assert_eq!(put.ssekms_key_id(), Some(key_arn.as_str()));
    assert_eq!(put.bucket_key_enabled(), Some(true));
    // An explicit request still wins over the default.
    let explicit = client
        .put_object()
        .bucket(BUCKET)
        .key("explicit")
        .server_side_encryption(ServerSideEncryption::Aes256)
        .body(ByteStream::from_static(b"x"))
        .send()
        .await
        .expect("put SSE-S3");
    assert_eq!(explicit.server_side_encryption(), Some(&ServerSideEncryption::Aes256));
    assert_eq!(get_bytes(&client, BUCKET, "auto").await, MARKER);
    assert!(server.drive_files_containing(MARKER).is_empty(), "plaintext on a drive");

    client.delete_bucket_encryption().bucket(BUCKET).send().await.expect("delete bucket encryption");
    let plain = client.put_object().bucket(BUCKET).key("plain").body(ByteStream::from_static(b"x")).send().await;
    assert_eq!(plain.expect("put").server_side_encryption(), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multipart_uploads_and_copies_change_encryption_as_asked() {
    let (server, client) = TestServer::start_with_bucket(BUCKET).await;
    let dir = server.scratch_dir();
    let cli = AwsCli::new(&server, &dir);
    let (key_id, key_arn) = create_key(&cli, &dir).await;
    let parts = [marked(5 * MIB, 10), marked(5 * MIB, 11), marked(1234, 12)];
    let upload = client
        .create_multipart_upload()
        .bucket(BUCKET)
        .key("big")
        .server_side_encryption(ServerSideEncryption::AwsKms)
        .ssekms_key_id(&key_id)
        .send()
        .await
        .expect("create upload");
    assert_eq!(upload.ssekms_key_id(), Some(key_arn.as_str()));
    let upload_id = upload.upload_id().expect("upload id").to_owned();
    let mut completed = Vec::new();
    for (i, part) in parts.iter().enumerate() {
        let number = i as i32 + 1;
        let out = client
            .upload_part()
            .bucket(BUCKET)
            .key("big")
            .upload_id(&upload_id)
            .part_number(number)
            .body(ByteStream::from(part.clone()))
            .send()
            .await
            .expect("upload part");
        assert_eq!(out.server_side_encryption(), Some(&ServerSideEncryption::AwsKms));
        completed.push(CompletedPart::builder().part_number(number).set_e_tag(out.e_tag().map(str::to_owned)).build());
    }
    let done = client
        .complete_multipart_upload()
        .bucket(BUCKET)
        .key("big")
        .upload_id(&upload_id)
        .multipart_upload(CompletedMultipartUpload::builder().set_parts(Some(completed)).build())
        .send()
        .await
        .expect("complete");
    assert_eq!(done.ssekms_key_id(), Some(key_arn.as_str()));
    let whole: Vec<u8> = parts.concat();
    assert_eq!(get_bytes(&client, BUCKET, "big").await, whole);
    let boundary = 5 * MIB;
    assert_eq!(
        get_range(&client, "big", boundary - 100, boundary + 100).await,
        &whole[boundary - 100..=boundary + 100]
    );

    // Copy to SSE-S3, to plaintext, and to SSE-KMS again.
    let to_s3 = client
        .copy_object()
        .bucket(BUCKET)
        .key("copy-s3")
        .copy_source(format!("{BUCKET}/big"))
        .server_side_encryption(ServerSideEncryption::Aes256)
        .send()
        .await
        .expect("copy to SSE-S3");
    assert_eq!(to_s3.server_side_encryption(), Some(&ServerSideEncryption::Aes256));
    let to_plain = client
        .copy_object()
        .bucket(BUCKET)
        .key("copy-plain")
        .copy_source(format!("{BUCKET}/copy-s3"))
        .send()
        .await
        .expect("copy to plaintext");
    assert_eq!(to_plain.server_side_encryption(), None);
    let to_kms = client
        .copy_object()
        .bucket(BUCKET)
        .key("copy-plain")
        .copy_source(format!("{BUCKET}/copy-plain"))
        .server_side_encryption(ServerSideEncryption::AwsKms)
        .ssekms_key_id(&key_id)
        .send()
        .await
        .expect("copy onto itself to encrypt");
    assert_eq!(to_kms.ssekms_key_id(), Some(key_arn.as_str()));
    for key in ["copy-s3", "copy-plain"] {
        assert_eq!(get_bytes(&client, BUCKET, key).await, whole, "{key}");
    }
    assert!(server.drive_files_containing(MARKER).is_empty(), "plaintext on a drive");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_aws_cli_writes_and_reads_sse_s3_and_sse_kms_objects() {
    let (server, client) = TestServer::start_with_bucket(BUCKET).await;
    let dir = server.scratch_dir();
    let cli = AwsCli::new(&server, &dir);
    let (key_id, key_arn) = create_key(&cli, &dir).await;
    let body = marked(9 * MIB, 20);
    std::fs::write(dir.join("in.bin"), &body).expect("write the input");
    cli.run(&dir, &["s3", "cp", "in.bin", "s3://vault/cli-s3", "--sse", "AES256"]).await;
    cli.run(&dir, &["s3", "cp", "in.bin", "s3://vault/cli-kms", "--sse", "aws:kms", "--sse-kms-key-id", &key_id]).await;
    let head = cli.run_json(&dir, &["s3api", "head-object", "--bucket", BUCKET, "--key", "cli-kms"]).await;
    assert_eq!(head["ServerSideEncryption"], "aws:kms");
    assert_eq!(head["SSEKMSKeyId"], key_arn.as_str());
    for key in ["cli-s3", "cli-kms"] {
        cli.run(&dir, &["s3", "cp", &format!("s3://vault/{key}"), &format!("{key}.out")]).await;
        assert_eq!(std::fs::read(dir.join(format!("{key}.out"))).expect("read back"), body, "{key}");
    }
    assert_eq!(get_bytes(&client, BUCKET, "cli-kms").await, body);
    assert!(server.drive_files_containing(MARKER).is_empty(), "plaintext on a drive");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bucket_can_block_sse_c_writes_with_blocked_encryption_types() {
    use aws_sdk_s3::types::{BlockedEncryptionTypes, EncryptionType};
    use base64::Engine;
    let server = TestServer::start_tls().await;
    let client = server.client();
    bulwark_e2e::create_bucket(&client, BUCKET).await;
    let configuration = ServerSideEncryptionConfiguration::builder()
        .rules(
            ServerSideEncryptionRule::builder()
                .apply_server_side_encryption_by_default(
                    ServerSideEncryptionByDefault::builder()
                        .sse_algorithm(ServerSideEncryption::Aes256)
                        .build()
                        .expect("default"),
                )
                .blocked_encryption_types(
                    BlockedEncryptionTypes::builder().encryption_type(EncryptionType::SseC).build(),
                )
                .build(),
        )
        .build()
        .expect("configuration");
    client
        .put_bucket_encryption()
        .bucket(BUCKET)
        .server_side_encryption_configuration(configuration)
        .send()
        .await
        .expect("put bucket encryption with BlockedEncryptionTypes");
    let got = client.get_bucket_encryption().bucket(BUCKET).send().await.expect("get bucket encryption");
    let rule = got.server_side_encryption_configuration().and_then(|c| c.rules().first()).expect("a rule");
    assert_eq!(
        rule.blocked_encryption_types().map(|b| b.encryption_type().to_vec()),
        Some(vec![EncryptionType::SseC]),
        "GetBucketEncryption reports the blocked types"
    );
    let key = [9u8; 32];
    let b64 = base64::engine::general_purpose::STANDARD;
    let key_md5 = {
        use md5::Digest;
        b64.encode(md5::Md5::digest(key))
    };
    let refused = client
        .put_object()
        .bucket(BUCKET)
        .key("customer")
        .sse_customer_algorithm("AES256")
        .sse_customer_key(b64.encode(key))
        .sse_customer_key_md5(key_md5)
        .body(ByteStream::from_static(b"x"))
        .send()
        .await
        .expect_err("SSE-C is blocked");
    assert_eq!((http_status(&refused), error_code(&refused).as_deref()), (Some(403), Some("AccessDenied")));
    assert!(client.head_object().bucket(BUCKET).key("customer").send().await.is_err(), "nothing stored");
    let plain = client.put_object().bucket(BUCKET).key("plain").body(ByteStream::from_static(b"x")).send().await;
    assert_eq!(plain.expect("put").server_side_encryption(), Some(&ServerSideEncryption::Aes256));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_data_key_or_key_material_reaches_a_drive_or_the_audit_log_in_the_clear() {
    use base64::Engine;
    let (server, client) = TestServer::start_with_bucket(BUCKET).await;
    let dir = server.scratch_dir();
    let cli = AwsCli::new(&server, &dir);
    let (key_id, _) = create_key(&cli, &dir).await;
    let generated =
        cli.run_json(&dir, &["kms", "generate-data-key", "--key-id", &key_id, "--key-spec", "AES_256"]).await;
    let plaintext = base64::engine::general_purpose::STANDARD
        .decode(generated["Plaintext"].as_str().expect("Plaintext"))
        .expect("base64");
    assert_eq!(plaintext.len(), 32);
    put_kms(&client, "a", MARKER.to_vec(), Some(&key_id)).await;
    client
        .put_object()
        .bucket(BUCKET)
        .key("b")
        .server_side_encryption(ServerSideEncryption::Aes256)
        .body(ByteStream::from(MARKER.to_vec()))
        .send()
        .await
        .expect("put SSE-S3");
    assert!(server.drive_files_containing(&plaintext).is_empty(), "a data key in the clear on a drive");
    assert!(server.drive_files_containing(MARKER).is_empty(), "plaintext on a drive");
    // The root key seals everything; it must not be on the drives either.
    let root_key_text =
        std::fs::read_to_string(server.data_dir().join("kms-root.key")).expect("the generated root key");
    let root_key = base64::engine::general_purpose::STANDARD.decode(root_key_text.trim()).expect("base64 root key");
    assert!(server.drive_files_containing(&root_key).is_empty(), "the root key on a drive");
    let audit = std::fs::read(server.data_dir().join("kms-audit.log")).expect("the audit log");
    let b64 = generated["Plaintext"].as_str().expect("Plaintext").as_bytes().to_vec();
    for secret in [&plaintext, &b64, &root_key] {
        assert!(!audit.windows(secret.len()).any(|w| w == secret.as_slice()), "a secret in the audit log");
    }
}
