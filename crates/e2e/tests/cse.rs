//! A user encrypts files on their own machine with `bulwark cse` before they go
//! to the server, and decrypts them after download: with an AES master key, an
//! RSA key (whose public half alone encrypts), or a KMS key; in the v2 and v3
//! formats; with the envelope in metadata or in an instruction file; large files
//! go up in parts. Whoever alters what the server holds — a ciphertext byte, the
//! encrypted data key, the key commitment — makes `get` fail loudly with no
//! output file at all, and no drive ever holds the plaintext.

use std::path::{Path, PathBuf};

use aws_sdk_s3::Client;
use aws_sdk_s3::primitives::ByteStream;
use bulwark_e2e::{TestServer, payload};

const BUCKET: &str = "cse";
const MIB: usize = 1024 * 1024;

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    path
}

fn master_key_file(dir: &Path, seed: u64) -> PathBuf {
    write(dir, &format!("master-{seed}.key"), &payload(0xc5e0_0000 + seed, 32))
}

fn rsa_files(dir: &Path) -> (PathBuf, PathBuf) {
    (
        write(dir, "rsa-private.pem", include_bytes!("../../cse/testdata/rsa-2048.pkcs1.pem")),
        write(dir, "rsa-public.pem", include_bytes!("../../cse/testdata/rsa-2048.public.pem")),
    )
}

fn s3(key: &str) -> String {
    format!("s3://{BUCKET}/{key}")
}

fn read(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

fn p(path: &Path) -> &str {
    path.to_str().expect("utf-8 path")
}

/// The object's raw (encrypted) body and user metadata, as the server holds them.
async fn raw_object(client: &Client, key: &str) -> (Vec<u8>, std::collections::HashMap<String, String>) {
    let object = client.get_object().bucket(BUCKET).key(key).send().await.expect("raw GetObject");
    let metadata = object.metadata().cloned().unwrap_or_default();
    let body = object.body.collect().await.expect("read the body").into_bytes().to_vec();
    (body, metadata)
}

async fn put_raw(client: &Client, key: &str, body: Vec<u8>, metadata: std::collections::HashMap<String, String>) {
    client
        .put_object()
        .bucket(BUCKET)
        .key(key)
        .set_metadata(Some(metadata))
        .body(ByteStream::from(body))
        .send()
        .await
        .expect("raw PutObject");
}

/// A fresh, empty directory for a `get` to write into.
fn output_dir(scratch: &Path, name: &str) -> PathBuf {
    let dir = scratch.join(name);
    std::fs::create_dir_all(&dir).expect("create the output directory");
    dir
}

#[track_caller]
fn assert_empty(dir: &Path) {
    let left: Vec<_> = std::fs::read_dir(dir).expect("read dir").map(|e| e.expect("entry").file_name()).collect();
    assert!(left.is_empty(), "a failed get left files behind in {}: {left:?}", dir.display());
}

#[tokio::test]
async fn master_key_objects_round_trip_in_v2_and_v3_from_metadata_and_instruction_files() {
    let (server, client) = TestServer::start_with_bucket(BUCKET).await;
    let scratch = server.scratch_dir();
    let key = master_key_file(&scratch, 1);
    let plaintext = payload(1, 300_000);
    let source = write(&scratch, "plain.bin", &plaintext);
    for (format, location) in [("v2", false), ("v3", false), ("v2", true), ("v3", true)] {
        let name = format!("{format}-{}", if location { "instruction" } else { "metadata" });
        let target = s3(&name);
        let mut args = vec!["put", p(&source), &target, "--master-key", p(&key), "--format", format];
        if location {
            args.push("--instruction-file");
        }
        let put = server.cse(&args).await;
        put.assert_success();
        assert!(put.stderr.contains("if it is lost, the data is lost"), "no lost-key warning: {}", put.stderr);

        let (body, metadata) = raw_object(&client, &name).await;
        assert_eq!(body.len(), plaintext.len() + 16, "{name}: ciphertext is plaintext + GCM tag");
        assert_ne!(&body[..64], &plaintext[..64], "{name}: the server holds ciphertext");
        let (key_name, alg_name) =
            if format == "v2" { ("x-amz-key-v2", "x-amz-wrap-alg") } else { ("x-amz-3", "x-amz-w") };
        assert_eq!(metadata.contains_key(key_name), !location, "{name}: metadata {metadata:?}");
        if location {
            let (instruction, instruction_metadata) = raw_object(&client, &format!("{name}.instruction")).await;
            let entries: serde_json::Value = serde_json::from_slice(&instruction).expect("instruction JSON");
            assert!(entries.get(key_name).is_some(), "{name}: instruction file {entries}");
            assert!(instruction_metadata.contains_key("x-amz-crypto-instr-file"));
            if format == "v3" {
                assert!(metadata.contains_key("x-amz-d") && metadata.contains_key("x-amz-i"));
                assert!(entries.get("x-amz-d").is_none(), "x-amz-d stays in object metadata");
            }
        } else {
            let expected = if format == "v2" { "AES/GCM" } else { "02" };
            assert_eq!(metadata.get(alg_name).map(String::as_str), Some(expected));
        }

        let out = scratch.join(format!("{name}.out"));
        server.cse(&["get", &target, p(&out), "--master-key", p(&key)]).await.assert_success();
        assert_eq!(read(&out), plaintext, "{name}: decrypted bytes");
    }

    let listing = server.cse(&["ls", &s3("")]).await;
    listing.assert_success();
    assert!(!listing.stdout.contains(".instruction"), "instruction files are not listed:\n{}", listing.stdout);
    let line = listing.stdout.lines().find(|l| l.ends_with("v3-instruction")).expect("v3-instruction listed");
    assert!(line.contains("300000") && line.contains("V3") && line.contains("(instr)"), "{line}");

    server.cse(&["rm", &s3("v2-instruction")]).await.assert_success();
    for gone in ["v2-instruction", "v2-instruction.instruction"] {
        let head = client.head_object().bucket(BUCKET).key(gone).send().await;
        assert!(head.is_err(), "{gone} still exists after cse rm");
    }
}

#[tokio::test]
async fn the_public_rsa_key_alone_encrypts_and_the_private_key_decrypts() {
    let (server, client) = TestServer::start_with_bucket(BUCKET).await;
    let scratch = server.scratch_dir();
    let (private, public) = rsa_files(&scratch);
    let plaintext = payload(2, 70_000);
    let source = write(&scratch, "plain.bin", &plaintext);
    for format in ["v2", "v3"] {
        let target = s3(&format!("rsa-{format}"));
        server.cse(&["put", p(&source), &target, "--rsa-key", p(&public), "--format", format]).await.assert_success();
        let (_, metadata) = raw_object(&client, &format!("rsa-{format}")).await;
        let wrap = metadata.get("x-amz-wrap-alg").or(metadata.get("x-amz-w")).cloned();
        assert_eq!(wrap.as_deref(), Some(if format == "v2" { "RSA-OAEP-SHA1" } else { "22" }));

        let out = scratch.join(format!("rsa-{format}.out"));
        server.cse(&["get", &target, p(&out), "--rsa-key", p(&public)]).await.assert_failure_mentions("private key");
        assert!(!out.exists());
        server.cse(&["get", &target, p(&out), "--rsa-key", p(&private)]).await.assert_success();
        assert_eq!(read(&out), plaintext);
    }
}

#[tokio::test]
async fn a_large_file_goes_up_in_parts_as_one_gcm_message() {
    let (server, client) = TestServer::start_with_bucket(BUCKET).await;
    let scratch = server.scratch_dir();
    let key = master_key_file(&scratch, 3);
    let plaintext = payload(3, 20 * MIB + 123);
    let source = write(&scratch, "large.bin", &plaintext);
    for format in ["v2", "v3"] {
        let name = format!("large-{format}");
        server
            .cse(&["put", p(&source), &s3(&name), "--master-key", p(&key), "--format", format])
            .await
            .assert_success();
        let head = client.head_object().bucket(BUCKET).key(&name).send().await.expect("HEAD");
        assert!(head.e_tag().unwrap_or_default().contains("-3"), "8 MiB parts give 3 parts: {:?}", head.e_tag());
        assert_eq!(head.content_length(), Some((plaintext.len() + 16) as i64));
        let out = scratch.join(format!("{name}.out"));
        server.cse(&["get", &s3(&name), p(&out), "--master-key", p(&key)]).await.assert_success();
        assert!(read(&out) == plaintext, "{name}: the large file came back different");
    }
}

#[tokio::test]
async fn a_flipped_ciphertext_byte_fails_the_get_and_writes_no_file() {
    let (server, client) = TestServer::start_with_bucket(BUCKET).await;
    let scratch = server.scratch_dir();
    let key = master_key_file(&scratch, 4);
    let source = write(&scratch, "plain.bin", &payload(4, 2 * MIB));
    for format in ["v2", "v3"] {
        let name = format!("flip-{format}");
        server
            .cse(&["put", p(&source), &s3(&name), "--master-key", p(&key), "--format", format])
            .await
            .assert_success();
        let (mut body, metadata) = raw_object(&client, &name).await;
        body[MIB + 17] ^= 0x01;
        put_raw(&client, &name, body, metadata).await;

        let out_dir = output_dir(&scratch, &format!("out-{name}"));
        let get = server.cse(&["get", &s3(&name), p(&out_dir.join("file")), "--master-key", p(&key)]).await;
        get.assert_failure_mentions("authentication failed");
        get.assert_failure_mentions("nothing was written");
        assert_empty(&out_dir);

        // An existing file of that name is left as it was.
        let existing = write(&out_dir, "existing", b"keep me");
        let get = server.cse(&["get", &s3(&name), p(&existing), "--master-key", p(&key)]).await;
        get.assert_failure_mentions("authentication failed");
        assert_eq!(read(&existing), b"keep me");
        assert_eq!(std::fs::read_dir(&out_dir).expect("dir").count(), 1, "only the old file remains");
    }
}

#[tokio::test]
async fn a_data_key_swapped_in_from_another_object_fails_the_get_and_writes_no_file() {
    let (server, client) = TestServer::start_with_bucket(BUCKET).await;
    let scratch = server.scratch_dir();
    let key = master_key_file(&scratch, 5);
    let victim = write(&scratch, "victim.bin", &payload(5, 100_000));
    let other = write(&scratch, "other.bin", &payload(6, 100_000));
    for (format, key_name, complaint) in
        [("v2", "x-amz-key-v2", "authentication failed"), ("v3", "x-amz-3", "key commitment mismatch")]
    {
        let (a, b) = (format!("victim-{format}"), format!("other-{format}"));
        server.cse(&["put", p(&victim), &s3(&a), "--master-key", p(&key), "--format", format]).await.assert_success();
        server.cse(&["put", p(&other), &s3(&b), "--master-key", p(&key), "--format", format]).await.assert_success();
        let (body, mut metadata) = raw_object(&client, &a).await;
        let (_, other_metadata) = raw_object(&client, &b).await;
        let swapped = other_metadata.get(key_name).expect("the other object's data key").clone();
        assert_ne!(metadata.get(key_name), Some(&swapped));
        metadata.insert(key_name.to_owned(), swapped);
        put_raw(&client, &a, body, metadata).await;

        let out_dir = output_dir(&scratch, &format!("out-{a}"));
        let get = server.cse(&["get", &s3(&a), p(&out_dir.join("file")), "--master-key", p(&key)]).await;
        get.assert_failure_mentions(complaint);
        assert_empty(&out_dir);
    }
}

#[tokio::test]
async fn a_changed_commitment_fails_the_get_and_writes_no_file() {
    let (server, client) = TestServer::start_with_bucket(BUCKET).await;
    let scratch = server.scratch_dir();
    let key = master_key_file(&scratch, 7);
    let source = write(&scratch, "plain.bin", &payload(7, 10_000));
    server
        .cse(&["put", p(&source), &s3("committed"), "--master-key", p(&key), "--format", "v3"])
        .await
        .assert_success();
    let (body, mut metadata) = raw_object(&client, "committed").await;
    let commitment = metadata.get("x-amz-d").expect("x-amz-d").clone();
    use base64::Engine;
    let mut bytes = base64::engine::general_purpose::STANDARD.decode(&commitment).expect("base64");
    assert_eq!(bytes.len(), 28);
    bytes[0] ^= 0x80;
    metadata.insert("x-amz-d".into(), base64::engine::general_purpose::STANDARD.encode(&bytes));
    put_raw(&client, "committed", body, metadata).await;

    let out_dir = output_dir(&scratch, "out-committed");
    let get = server.cse(&["get", &s3("committed"), p(&out_dir.join("file")), "--master-key", p(&key)]).await;
    get.assert_failure_mentions("key commitment mismatch");
    assert_empty(&out_dir);
}

#[tokio::test]
async fn wrong_keys_and_plain_objects_are_refused_with_a_clear_error() {
    let (server, client) = TestServer::start_with_bucket(BUCKET).await;
    let scratch = server.scratch_dir();
    let key = master_key_file(&scratch, 8);
    let wrong = master_key_file(&scratch, 9);
    let source = write(&scratch, "plain.bin", &payload(8, 1000));
    server.cse(&["put", p(&source), &s3("keyed"), "--master-key", p(&key)]).await.assert_success();
    let out = scratch.join("out.bin");
    server.cse(&["get", &s3("keyed"), p(&out), "--master-key", p(&wrong)]).await.assert_failure_mentions("wrong key");
    server.cse(&["get", &s3("keyed"), p(&out)]).await.assert_failure_mentions("--master-key");
    client
        .put_object()
        .bucket(BUCKET)
        .key("plain")
        .body(ByteStream::from_static(b"not encrypted"))
        .send()
        .await
        .expect("plain PUT");
    server
        .cse(&["get", &s3("plain"), p(&out), "--master-key", p(&key)])
        .await
        .assert_failure_mentions("not client-side encrypted");
    assert!(!out.exists());
}

#[tokio::test]
async fn the_server_sees_only_ciphertext() {
    let (server, client) = TestServer::start_with_bucket(BUCKET).await;
    let scratch = server.scratch_dir();
    let key = master_key_file(&scratch, 10);
    let marker = b"BULWARK-CSE-PLAINTEXT-MARKER-5d2f9e71";
    // Small (stored inline with the metadata) and large (erasure-coded shards).
    for (name, size) in [("small", 4 * 1024), ("large", 3 * MIB)] {
        let plaintext: Vec<u8> = marker.iter().copied().cycle().take(size).collect();
        let source = write(&scratch, &format!("{name}.bin"), &plaintext);
        for format in ["v2", "v3"] {
            let target = s3(&format!("{name}-{format}"));
            server
                .cse(&["put", p(&source), &target, "--master-key", p(&key), "--format", format])
                .await
                .assert_success();
        }
    }
    let found = server.drive_files_containing(marker);
    assert!(found.is_empty(), "plaintext found on the drives: {found:?}");
    let master = read(&key);
    assert!(server.drive_files_containing(&master).is_empty(), "the master key reached a drive");

    // The search does find plaintext that was stored unencrypted.
    let plaintext: Vec<u8> = marker.iter().copied().cycle().take(4 * 1024).collect();
    client.put_object().bucket(BUCKET).key("control").body(ByteStream::from(plaintext)).send().await.expect("PUT");
    assert!(!server.drive_files_containing(marker).is_empty(), "the search cannot see plaintext at all");
}

#[tokio::test]
async fn kms_context_objects_round_trip_through_the_built_in_kms() {
    let (server, client) = TestServer::start_with_bucket(BUCKET).await;
    let scratch = server.scratch_dir();
    let key_id = server.create_kms_key().await;
    let plaintext = payload(11, 50_000);
    let source = write(&scratch, "plain.bin", &plaintext);
    for format in ["v2", "v3"] {
        let name = format!("kms-{format}");
        let put = server
            .cse(&[
                "put",
                p(&source),
                &s3(&name),
                "--kms-key-id",
                &key_id,
                "--format",
                format,
                "--context",
                "team=blue",
            ])
            .await;
        put.assert_success();
        assert!(!put.stderr.contains("data is lost"), "no lost-key warning for KMS: {}", put.stderr);
        let (_, metadata) = raw_object(&client, &name).await;
        let context = metadata.get(if format == "v2" { "x-amz-matdesc" } else { "x-amz-t" }).expect("context");
        let context: serde_json::Value = serde_json::from_str(context).expect("context JSON");
        let reserved = if format == "v2" { "AES/GCM/NoPadding" } else { "115" };
        assert_eq!(context["aws:x-amz-cek-alg"], reserved);
        assert_eq!(context["team"], "blue");

        let out = scratch.join(format!("{name}.out"));
        server.cse(&["get", &s3(&name), p(&out), "--context", "team=red"]).await.assert_failure_mentions("context");
        assert!(!out.exists());
        server.cse(&["get", &s3(&name), p(&out), "--context", "team=blue"]).await.assert_success();
        assert_eq!(read(&out), plaintext);
        std::fs::remove_file(&out).expect("remove");
        server.cse(&["get", &s3(&name), p(&out)]).await.assert_success();
        assert_eq!(read(&out), plaintext);
    }
}
