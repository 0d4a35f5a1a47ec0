//! A user encrypts objects with their own key (SSE-C) over HTTPS: every object
//! operation that takes a customer key round-trips and echoes the algorithm and
//! the key's MD5; a 55 MiB multipart object reads back whole and by ranges across
//! part and 64 KiB package boundaries; a copy re-keys, decrypts or encrypts; every
//! mistake gets S3's exact status and code; plain HTTP is refused; and no drive file
//! (shards or the metadata store) nor the log holds the plaintext or the key.

use std::path::PathBuf;
use std::process::Command;

use aws_sdk_s3::Client;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart, ServerSideEncryption};
use base64::Engine;
use bulwark_e2e::{
    ACCESS_KEY, DRIVE_COUNT, INLINE_SIZE_MAX_BYTES, PART_SIZE_MIN_BYTES, REGION, ResponseCapture, SECRET_KEY,
    TestServer, assert_http_status, assert_s3_error, create_bucket, etag_of, get_bytes, md5_hex, md5_of_stream,
    payload, put_bytes, read_all, shard_files_in_bucket,
};

const BUCKET: &str = "sse-c";
const AES256: &str = "AES256";
const KIB: usize = 1024;
const MIB: usize = 1024 * KIB;
/// Size of an encryption package: the unit a range GET decrypts.
const PACKAGE_BYTES: usize = 64 * KIB;

/// A customer key as a user holds it: 32 raw bytes, and the base64 strings of the
/// key and of its MD5 that go into the headers.
#[derive(Clone)]
struct CustomerKey {
    raw: Vec<u8>,
    base64: String,
    md5: String,
}

impl CustomerKey {
    fn new(seed: u64) -> CustomerKey {
        CustomerKey::from_raw(payload(0x5ec0_0000 + seed, 32))
    }

    /// A "key" of any length, with its true MD5, to test the length check.
    fn from_raw(raw: Vec<u8>) -> CustomerKey {
        let b64 = base64::engine::general_purpose::STANDARD;
        let base64 = b64.encode(&raw);
        let md5 = b64.encode(bulwark_e2e::md5_bytes(&raw));
        CustomerKey { raw, base64, md5 }
    }
}

/// Adds `x-amz-server-side-encryption-customer-{algorithm,key,key-MD5}` to a request.
macro_rules! with_key {
    ($request:expr, $key:expr) => {
        $request
            .sse_customer_algorithm(AES256)
            .sse_customer_key($key.base64.clone())
            .sse_customer_key_md5($key.md5.clone())
    };
}

/// Adds `x-amz-copy-source-server-side-encryption-customer-*` to a copy.
macro_rules! with_source_key {
    ($request:expr, $key:expr) => {
        $request
            .copy_source_sse_customer_algorithm(AES256)
            .copy_source_sse_customer_key($key.base64.clone())
            .copy_source_sse_customer_key_md5($key.md5.clone())
    };
}

/// Asserts that an output echoes the algorithm and `key`'s MD5.
macro_rules! assert_echoes {
    ($output:expr, $key:expr, $what:expr) => {
        assert_eq!(
            ($output.sse_customer_algorithm(), $output.sse_customer_key_md5()),
            (Some(AES256), Some($key.md5.as_str())),
            "{} echoes the SSE-C algorithm and key MD5",
            $what
        )
    };
}

async fn start() -> (TestServer, Client) {
    let server = TestServer::start_tls().await;
    let client = server.client();
    create_bucket(&client, BUCKET).await;
    (server, client)
}

async fn put_encrypted(client: &Client, bucket: &str, key: &str, body: Vec<u8>, customer: &CustomerKey) -> String {
    let output = with_key!(client.put_object().bucket(bucket).key(key).body(ByteStream::from(body)), customer)
        .send()
        .await
        .unwrap_or_else(|e| panic!("SSE-C PUT {bucket}/{key}: {}", aws_sdk_s3::error::DisplayErrorContext(&e)));
    assert_echoes!(output, customer, format!("PUT {key}"));
    output.e_tag().expect("PutObject returns an ETag").to_owned()
}

async fn get_encrypted(client: &Client, key: &str, customer: &CustomerKey) -> Vec<u8> {
    let output = with_key!(client.get_object().bucket(BUCKET).key(key), customer)
        .send()
        .await
        .unwrap_or_else(|e| panic!("SSE-C GET {key}: {}", aws_sdk_s3::error::DisplayErrorContext(&e)));
    assert_echoes!(output, customer, format!("GET {key}"));
    read_all(output.body).await
}

/// Asserts that `key` does not exist (HEAD is 404).
async fn assert_absent(client: &Client, key: &str) {
    assert_http_status(client.head_object().bucket(BUCKET).key(key).send().await, 404);
}

async fn get_range(client: &Client, key: &str, customer: &CustomerKey, range: &str) -> (Option<String>, Vec<u8>) {
    let capture = ResponseCapture::new();
    let output = with_key!(client.get_object().bucket(BUCKET).key(key).range(range), customer)
        .customize()
        .interceptor(capture.clone())
        .send()
        .await
        .unwrap_or_else(|e| panic!("SSE-C GET {key} {range}: {}", aws_sdk_s3::error::DisplayErrorContext(&e)));
    assert_eq!(capture.status(), Some(206), "status of {key} {range}");
    assert_echoes!(output, customer, format!("GET {key} {range}"));
    let content_range = output.content_range().map(str::to_owned);
    (content_range, read_all(output.body).await)
}

/// Reads `ranges` (first, last inclusive; `None` first means a suffix of `last` bytes)
/// of `key` and compares each with the same bytes of `plaintext`.
async fn check_ranges(client: &Client, key: &str, customer: &CustomerKey, plaintext: &[u8], ranges: &[Range]) {
    let total = plaintext.len();
    for range in ranges {
        let (header, first, last) = match *range {
            Range::Bytes(first, last) => (format!("bytes={first}-{last}"), first, last),
            Range::From(first) => (format!("bytes={first}-"), first, total - 1),
            Range::Suffix(len) => (format!("bytes=-{len}"), total - len, total - 1),
        };
        let (content_range, bytes) = get_range(client, key, customer, &header).await;
        assert_eq!(
            content_range.as_deref(),
            Some(format!("bytes {first}-{last}/{total}").as_str()),
            "Content-Range of {header}"
        );
        assert!(bytes == plaintext[first..=last], "bytes of {header} differ from the plaintext");
    }
}

#[derive(Debug, Clone, Copy)]
enum Range {
    /// `bytes=first-last`
    Bytes(usize, usize),
    /// `bytes=first-`
    From(usize),
    /// `bytes=-len`
    Suffix(usize),
}

fn completion(parts: Vec<CompletedPart>) -> CompletedMultipartUpload {
    CompletedMultipartUpload::builder().set_parts(Some(parts)).build()
}

/// Starts an SSE-C upload. Whether the response echoes the key is the subject of
/// its own test, so that the multipart tests show what else works either way.
async fn create_encrypted_upload(client: &Client, key: &str, customer: &CustomerKey) -> String {
    let output = with_key!(client.create_multipart_upload().bucket(BUCKET).key(key), customer)
        .send()
        .await
        .unwrap_or_else(|e| panic!("SSE-C CreateMultipartUpload {key}: {e:?}"));
    output.upload_id().expect("an upload id").to_owned()
}

async fn upload_encrypted_part(
    client: &Client,
    key: &str,
    upload_id: &str,
    number: i32,
    data: Vec<u8>,
    customer: &CustomerKey,
) -> CompletedPart {
    let output = with_key!(
        client
            .upload_part()
            .bucket(BUCKET)
            .key(key)
            .upload_id(upload_id)
            .part_number(number)
            .body(ByteStream::from(data)),
        customer
    )
    .send()
    .await
    .unwrap_or_else(|e| panic!("SSE-C UploadPart {number}: {}", aws_sdk_s3::error::DisplayErrorContext(&e)));
    assert_echoes!(output, customer, format!("UploadPart {number}"));
    CompletedPart::builder().part_number(number).e_tag(output.e_tag().expect("UploadPart returns an ETag")).build()
}

/// Completes an SSE-C upload, sending the key as S3 accepts it on this operation.
/// The response is not checked for an echo of the key: S3's API model has no SSE-C
/// response headers for CompleteMultipartUpload (the SDK cannot read them).
async fn complete_encrypted_upload(
    client: &Client,
    key: &str,
    upload_id: &str,
    parts: Vec<CompletedPart>,
    customer: &CustomerKey,
) {
    with_key!(
        client
            .complete_multipart_upload()
            .bucket(BUCKET)
            .key(key)
            .upload_id(upload_id)
            .multipart_upload(completion(parts)),
        customer
    )
    .send()
    .await
    .unwrap_or_else(|e| panic!("SSE-C CompleteMultipartUpload {key}: {}", aws_sdk_s3::error::DisplayErrorContext(&e)));
}

// ---------------------------------------------------------------------------
// Round trips

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn put_get_and_head_with_a_customer_key_round_trip_and_echo_the_algorithm_and_key_md5() {
    let (_server, client) = start().await;
    let customer = CustomerKey::new(1);
    for (key, size) in [("empty", 0), ("inline", 10 * KIB + 7), ("blob", 2 * MIB + 3 * PACKAGE_BYTES + 11)] {
        let body = payload(100 + size as u64, size);
        put_encrypted(&client, BUCKET, key, body.clone(), &customer).await;

        assert!(get_encrypted(&client, key, &customer).await == body, "GET {key} returns the plaintext");
        let head = with_key!(client.head_object().bucket(BUCKET).key(key), &customer)
            .send()
            .await
            .unwrap_or_else(|e| panic!("SSE-C HEAD {key}: {e:?}"));
        assert_echoes!(head, customer, format!("HEAD {key}"));
        assert_eq!(head.content_length(), Some(size as i64), "HEAD {key} reports the plaintext size");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_etag_of_an_sse_c_object_is_not_the_md5_of_its_plaintext() {
    let (_server, client) = start().await;
    let customer = CustomerKey::new(2);
    for (key, size) in [("inline", 20 * KIB), ("blob", MIB + 5)] {
        let body = payload(200 + size as u64, size);
        let etag = put_encrypted(&client, BUCKET, key, body.clone(), &customer).await;

        assert_ne!(etag, etag_of(&body), "the ETag of SSE-C {key} is the MD5 of its plaintext");
        let hex = etag.trim_matches('"');
        assert!(hex.len() == 32 && hex.chars().all(|c| c.is_ascii_hexdigit()), "ETag {etag} is 32 hex digits");
        let head = with_key!(client.head_object().bucket(BUCKET).key(key), &customer).send().await.expect("HEAD");
        assert_eq!(head.e_tag(), Some(etag.as_str()), "HEAD {key} gives the PUT's ETag");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn range_gets_of_a_single_part_sse_c_object_return_the_plaintext_across_package_boundaries() {
    let (_server, client) = start().await;
    let customer = CustomerKey::new(3);
    let size = 3 * MIB + 12_345;
    let body = payload(300, size);
    put_encrypted(&client, BUCKET, "blob", body.clone(), &customer).await;
    let inline = payload(301, 100 * KIB);
    put_encrypted(&client, BUCKET, "inline", inline.clone(), &customer).await;

    let p = PACKAGE_BYTES;
    let blob_ranges = [
        Range::Bytes(0, 0),
        Range::Bytes(p - 1, p),
        Range::Bytes(p, 2 * p - 1),
        Range::Bytes(5 * p - 7, 9 * p + 7),
        Range::Bytes(MIB - 1, 2 * MIB + 1),
        Range::Suffix(10),
        Range::Suffix(size % p + 1),
        Range::From(size - p - 3),
    ];
    check_ranges(&client, "blob", &customer, &body, &blob_ranges).await;
    let inline_ranges = [Range::Bytes(p - 1, p), Range::Bytes(17, 99), Range::Suffix(p + 1)];
    check_ranges(&client, "inline", &customer, &inline, &inline_ranges).await;
}

// ---------------------------------------------------------------------------
// Copies

/// S3 allows a copy onto itself when the encryption changes: this is how a user
/// rotates an SSE-C key without moving the object.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copying_an_object_onto_itself_with_a_new_key_rotates_it_so_only_the_new_key_reads_it() {
    let (_server, client) = start().await;
    let (k1, k2) = (CustomerKey::new(10), CustomerKey::new(11));
    for (key, size) in [("inline", 30 * KIB), ("blob", 2 * MIB + 1)] {
        let body = payload(1000 + size as u64, size);
        put_encrypted(&client, BUCKET, key, body.clone(), &k1).await;

        let copy = with_source_key!(
            with_key!(client.copy_object().bucket(BUCKET).key(key).copy_source(format!("{BUCKET}/{key}")), &k2),
            &k1
        )
        .send()
        .await
        .unwrap_or_else(|e| panic!("re-key {key} by copy: {}", aws_sdk_s3::error::DisplayErrorContext(&e)));
        assert_echoes!(copy, k2, format!("CopyObject {key} to the new key"));

        assert!(get_encrypted(&client, key, &k2).await == body, "the new key reads {key}");
        let old = with_key!(client.get_object().bucket(BUCKET).key(key), &k1).send().await;
        assert_s3_error(old, 403, "AccessDenied");
        let old_head = with_key!(client.head_object().bucket(BUCKET).key(key), &k1).send().await;
        assert_http_status(old_head, 403);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copying_an_sse_c_object_without_a_destination_key_stores_a_plain_copy() {
    let (_server, client) = start().await;
    let customer = CustomerKey::new(12);
    for (key, size) in [("inline", 40 * KIB), ("blob", MIB + 77)] {
        let body = payload(1200 + size as u64, size);
        put_encrypted(&client, BUCKET, key, body.clone(), &customer).await;
        let plain = format!("{key}-decrypted");

        let copy = with_source_key!(
            client.copy_object().bucket(BUCKET).key(&plain).copy_source(format!("{BUCKET}/{key}")),
            &customer
        )
        .send()
        .await
        .unwrap_or_else(|e| panic!("copy to decrypt {key}: {}", aws_sdk_s3::error::DisplayErrorContext(&e)));
        assert_eq!(copy.sse_customer_algorithm(), None, "a copy without a destination key is not SSE-C");

        assert!(get_bytes(&client, BUCKET, &plain).await == body, "{plain} reads without a key");
        let head = client.head_object().bucket(BUCKET).key(&plain).send().await.expect("HEAD of the plain copy");
        assert_eq!((head.sse_customer_algorithm(), head.sse_customer_key_md5()), (None, None), "HEAD {plain}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copying_a_plain_object_with_a_destination_key_stores_an_encrypted_copy() {
    let (_server, client) = start().await;
    let customer = CustomerKey::new(13);
    for (key, size) in [("inline", 50 * KIB), ("blob", MIB + 99)] {
        let body = payload(1300 + size as u64, size);
        put_bytes(&client, BUCKET, key, body.clone()).await;
        let encrypted = format!("{key}-encrypted");

        let copy = with_key!(
            client.copy_object().bucket(BUCKET).key(&encrypted).copy_source(format!("{BUCKET}/{key}")),
            &customer
        )
        .send()
        .await
        .unwrap_or_else(|e| panic!("copy to encrypt {key}: {}", aws_sdk_s3::error::DisplayErrorContext(&e)));
        assert_echoes!(copy, customer, format!("CopyObject {key} to SSE-C"));

        assert!(get_encrypted(&client, &encrypted, &customer).await == body, "{encrypted} reads with the key");
        let without_key = client.get_object().bucket(BUCKET).key(&encrypted).send().await;
        assert_s3_error(without_key, 400, "InvalidRequest");
    }
}

// ---------------------------------------------------------------------------
// Multipart

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_multipart_upload_with_a_customer_key_echoes_the_algorithm_and_key_md5() {
    let (_server, client) = start().await;
    let customer = CustomerKey::new(19);
    let output = with_key!(client.create_multipart_upload().bucket(BUCKET).key("k"), &customer)
        .send()
        .await
        .unwrap_or_else(|e| panic!("SSE-C CreateMultipartUpload: {}", aws_sdk_s3::error::DisplayErrorContext(&e)));
    assert_echoes!(output, customer, "CreateMultipartUpload");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_55_mib_sse_c_multipart_object_reads_back_whole_and_by_ranges_across_part_and_package_boundaries() {
    const PARTS: usize = 11;
    let (_server, client) = start().await;
    let customer = CustomerKey::new(20);
    let parts: Vec<Vec<u8>> = (0..PARTS).map(|i| payload(2000 + i as u64, PART_SIZE_MIN_BYTES)).collect();
    let whole = parts.concat();
    assert!(whole.len() >= 55 * MIB);

    let upload_id = create_encrypted_upload(&client, "big", &customer).await;
    let mut completed = Vec::new();
    for (i, part) in parts.iter().enumerate() {
        completed.push(upload_encrypted_part(&client, "big", &upload_id, i as i32 + 1, part.clone(), &customer).await);
    }
    complete_encrypted_upload(&client, "big", &upload_id, completed, &customer).await;

    let output = with_key!(client.get_object().bucket(BUCKET).key("big"), &customer)
        .send()
        .await
        .unwrap_or_else(|e| panic!("SSE-C GET big: {}", aws_sdk_s3::error::DisplayErrorContext(&e)));
    assert_echoes!(output, customer, "GET of the multipart object");
    assert_eq!(md5_of_stream(output.body).await, (md5_hex(&whole), whole.len() as u64), "whole object MD5 and size");

    let (part, package) = (PART_SIZE_MIN_BYTES, PACKAGE_BYTES);
    let ranges = [
        Range::Bytes(part - 10, part + 10),
        Range::Bytes(package - 1, package),
        Range::Bytes(2 * part - 1, 2 * part),
        Range::Bytes(3 * part + package - 5, 3 * part + 2 * package + 5),
        Range::Bytes(4 * part - package - 1, 6 * part + package + 1),
        Range::Suffix(package + 10),
        Range::From(10 * part - 3),
    ];
    check_ranges(&client, "big", &customer, &whole, &ranges).await;

    let capture = ResponseCapture::new();
    let third = with_key!(client.get_object().bucket(BUCKET).key("big").part_number(3), &customer)
        .customize()
        .interceptor(capture.clone())
        .send()
        .await
        .unwrap_or_else(|e| panic!("SSE-C GET partNumber=3: {}", aws_sdk_s3::error::DisplayErrorContext(&e)));
    assert_eq!(capture.status(), Some(206), "status of partNumber=3");
    assert_eq!(third.parts_count(), Some(PARTS as i32));
    assert_eq!(third.content_range(), Some(format!("bytes {}-{}/{}", 2 * part, 3 * part - 1, whole.len()).as_str()));
    assert!(read_all(third.body).await == parts[2], "partNumber=3 returns the third part");

    let without_key = client.get_object().bucket(BUCKET).key("big").send().await;
    assert_s3_error(without_key, 400, "InvalidRequest");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upload_part_copy_with_customer_keys_echoes_the_destination_algorithm_and_key_md5() {
    let (_server, client) = start().await;
    let (source_key, upload_key) = (CustomerKey::new(23), CustomerKey::new(24));
    put_encrypted(&client, BUCKET, "source", payload(2300, 1000), &source_key).await;
    let upload_id = create_encrypted_upload(&client, "k", &upload_key).await;

    let output = with_source_key!(
        with_key!(
            client
                .upload_part_copy()
                .bucket(BUCKET)
                .key("k")
                .upload_id(&upload_id)
                .part_number(1)
                .copy_source(format!("{BUCKET}/source")),
            &upload_key
        ),
        &source_key
    )
    .send()
    .await
    .unwrap_or_else(|e| panic!("UploadPartCopy: {}", aws_sdk_s3::error::DisplayErrorContext(&e)));
    assert_echoes!(output, upload_key, "UploadPartCopy");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upload_part_copy_moves_ranges_of_sse_c_and_plain_objects_into_an_upload_under_another_key() {
    let (_server, client) = start().await;
    let (source_key, upload_key) = (CustomerKey::new(21), CustomerKey::new(22));
    let source = payload(2100, PART_SIZE_MIN_BYTES + MIB + 333);
    put_encrypted(&client, BUCKET, "source", source.clone(), &source_key).await;
    let plain = payload(2101, 3000);
    put_bytes(&client, BUCKET, "plain", plain.clone()).await;
    // Starts inside the second package of the source, so the copy decrypts from the middle.
    let offset = PACKAGE_BYTES + 17;
    let copied = &source[offset..offset + PART_SIZE_MIN_BYTES];

    let upload_id = create_encrypted_upload(&client, "assembled", &upload_key).await;
    let from_encrypted = with_source_key!(
        with_key!(
            client
                .upload_part_copy()
                .bucket(BUCKET)
                .key("assembled")
                .upload_id(&upload_id)
                .part_number(1)
                .copy_source(format!("{BUCKET}/source"))
                .copy_source_range(format!("bytes={offset}-{}", offset + PART_SIZE_MIN_BYTES - 1)),
            &upload_key
        ),
        &source_key
    )
    .send()
    .await
    .unwrap_or_else(|e| panic!("UploadPartCopy from SSE-C: {}", aws_sdk_s3::error::DisplayErrorContext(&e)));
    let from_plain = with_key!(
        client
            .upload_part_copy()
            .bucket(BUCKET)
            .key("assembled")
            .upload_id(&upload_id)
            .part_number(2)
            .copy_source(format!("{BUCKET}/plain")),
        &upload_key
    )
    .send()
    .await
    .unwrap_or_else(|e| panic!("UploadPartCopy from plain: {}", aws_sdk_s3::error::DisplayErrorContext(&e)));
    let etag = |output: Option<&aws_sdk_s3::types::CopyPartResult>| {
        output.and_then(|r| r.e_tag()).expect("UploadPartCopy returns an ETag").to_owned()
    };
    let parts = vec![
        CompletedPart::builder().part_number(1).e_tag(etag(from_encrypted.copy_part_result())).build(),
        CompletedPart::builder().part_number(2).e_tag(etag(from_plain.copy_part_result())).build(),
    ];
    complete_encrypted_upload(&client, "assembled", &upload_id, parts, &upload_key).await;

    let expected = [copied, &plain[..]].concat();
    assert!(get_encrypted(&client, "assembled", &upload_key).await == expected, "the assembled object differs");
    let with_source_key = with_key!(client.get_object().bucket(BUCKET).key("assembled"), &source_key).send().await;
    assert_s3_error(with_source_key, 403, "AccessDenied");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upload_part_copy_from_an_sse_c_object_without_the_source_key_is_400_invalid_request() {
    let (_server, client) = start().await;
    let (source_key, upload_key) = (CustomerKey::new(25), CustomerKey::new(26));
    put_encrypted(&client, BUCKET, "source", payload(2500, 1000), &source_key).await;
    let upload_id = create_encrypted_upload(&client, "k", &upload_key).await;

    let copy = with_key!(
        client
            .upload_part_copy()
            .bucket(BUCKET)
            .key("k")
            .upload_id(&upload_id)
            .part_number(1)
            .copy_source(format!("{BUCKET}/source")),
        &upload_key
    )
    .send()
    .await;
    assert_s3_error(copy, 400, "InvalidRequest");
}

// ---------------------------------------------------------------------------
// S3's error matrix

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_and_head_of_an_sse_c_object_without_the_key_are_400_invalid_request() {
    let (_server, client) = start().await;
    let customer = CustomerKey::new(30);
    put_encrypted(&client, BUCKET, "inline", payload(3000, 1000), &customer).await;
    put_encrypted(&client, BUCKET, "blob", payload(3001, MIB), &customer).await;

    for key in ["inline", "blob"] {
        assert_s3_error(client.get_object().bucket(BUCKET).key(key).send().await, 400, "InvalidRequest");
        assert_http_status(client.head_object().bucket(BUCKET).key(key).send().await, 400);
        let ranged = client.get_object().bucket(BUCKET).key(key).range("bytes=0-9").send().await;
        assert_s3_error(ranged, 400, "InvalidRequest");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_and_head_with_the_wrong_key_are_403_access_denied() {
    let (_server, client) = start().await;
    let (right, wrong) = (CustomerKey::new(31), CustomerKey::new(32));
    put_encrypted(&client, BUCKET, "inline", payload(3100, 1000), &right).await;
    put_encrypted(&client, BUCKET, "blob", payload(3101, MIB), &right).await;

    for key in ["inline", "blob"] {
        let get = with_key!(client.get_object().bucket(BUCKET).key(key), &wrong).send().await;
        assert_s3_error(get, 403, "AccessDenied");
        let head = with_key!(client.head_object().bucket(BUCKET).key(key), &wrong).send().await;
        assert_http_status(head, 403);
    }
}

/// REFERENCE §2: a wrong key on GET is 403 whatever its length.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_with_a_key_of_the_wrong_length_is_403_access_denied_like_any_wrong_key() {
    let (_server, client) = start().await;
    put_encrypted(&client, BUCKET, "k", payload(3200, 1000), &CustomerKey::new(33)).await;

    let short = CustomerKey::from_raw(payload(3201, 16));
    let get = with_key!(client.get_object().bucket(BUCKET).key("k"), &short).send().await;
    assert_s3_error(get, 403, "AccessDenied");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_md5_that_does_not_match_the_key_is_400_invalid_argument_and_stores_nothing() {
    let (_server, client) = start().await;
    let customer = CustomerKey::new(34);
    let mismatched = CustomerKey { md5: CustomerKey::new(35).md5, ..customer.clone() };

    let put = with_key!(client.put_object().bucket(BUCKET).key("k").body(ByteStream::from_static(b"x")), &mismatched)
        .send()
        .await;
    assert_s3_error(put, 400, "InvalidArgument");
    assert_absent(&client, "k").await;

    put_encrypted(&client, BUCKET, "stored", payload(3400, 1000), &customer).await;
    let get = with_key!(client.get_object().bucket(BUCKET).key("stored"), &mismatched).send().await;
    assert_s3_error(get, 400, "InvalidArgument");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_that_is_not_32_bytes_is_400_invalid_argument_and_stores_nothing() {
    let (_server, client) = start().await;
    for len in [0, 16, 31, 33, 64] {
        let key = CustomerKey::from_raw(payload(3500 + len as u64, len));
        let object = format!("key-of-{len}-bytes");
        let put = with_key!(client.put_object().bucket(BUCKET).key(&object).body(ByteStream::from_static(b"x")), &key)
            .send()
            .await;
        assert_s3_error(put, 400, "InvalidArgument");
        assert_absent(&client, &object).await;
    }
    let not_base64 = CustomerKey { base64: "not base64 at all!".to_owned(), ..CustomerKey::new(36) };
    let put = with_key!(client.put_object().bucket(BUCKET).key("k").body(ByteStream::from_static(b"x")), &not_base64)
        .send()
        .await;
    assert_s3_error(put, 400, "InvalidArgument");
    assert_absent(&client, "k").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_algorithm_other_than_aes256_is_400_invalid_encryption_algorithm_error_and_stores_nothing() {
    let (_server, client) = start().await;
    let customer = CustomerKey::new(37);
    for algorithm in ["AES128", "aes256", "aws:kms"] {
        let put = client
            .put_object()
            .bucket(BUCKET)
            .key("k")
            .body(ByteStream::from_static(b"x"))
            .sse_customer_algorithm(algorithm)
            .sse_customer_key(customer.base64.clone())
            .sse_customer_key_md5(customer.md5.clone())
            .send()
            .await;
        assert_s3_error(put, 400, "InvalidEncryptionAlgorithmError");
        assert_absent(&client, "k").await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_key_or_algorithm_is_400_invalid_argument_and_stores_nothing() {
    let (_server, client) = start().await;
    let customer = CustomerKey::new(38);
    let no_key = client
        .put_object()
        .bucket(BUCKET)
        .key("k")
        .body(ByteStream::from_static(b"x"))
        .sse_customer_algorithm(AES256)
        .sse_customer_key_md5(customer.md5.clone())
        .send()
        .await;
    assert_s3_error(no_key, 400, "InvalidArgument");
    let no_algorithm = client
        .put_object()
        .bucket(BUCKET)
        .key("k")
        .body(ByteStream::from_static(b"x"))
        .sse_customer_key(customer.base64.clone())
        .sse_customer_key_md5(customer.md5.clone())
        .send()
        .await;
    assert_s3_error(no_algorithm, 400, "InvalidArgument");
    assert_absent(&client, "k").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sse_c_together_with_x_amz_server_side_encryption_is_400_invalid_argument_and_stores_nothing() {
    let (_server, client) = start().await;
    let customer = CustomerKey::new(39);
    for method in [ServerSideEncryption::Aes256, ServerSideEncryption::AwsKms] {
        let put = with_key!(
            client
                .put_object()
                .bucket(BUCKET)
                .key("k")
                .body(ByteStream::from_static(b"x"))
                .server_side_encryption(method.clone()),
            &customer
        )
        .send()
        .await;
        assert_s3_error(put, 400, "InvalidArgument");
        assert_absent(&client, "k").await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upload_part_without_the_initiates_key_or_with_another_key_is_400_invalid_request() {
    let (_server, client) = start().await;
    let (customer, other) = (CustomerKey::new(40), CustomerKey::new(41));
    let upload_id = create_encrypted_upload(&client, "k", &customer).await;

    let without = client
        .upload_part()
        .bucket(BUCKET)
        .key("k")
        .upload_id(&upload_id)
        .part_number(1)
        .body(ByteStream::from(payload(4000, 1000)))
        .send()
        .await;
    assert_s3_error(without, 400, "InvalidRequest");
    let with_other = with_key!(
        client
            .upload_part()
            .bucket(BUCKET)
            .key("k")
            .upload_id(&upload_id)
            .part_number(1)
            .body(ByteStream::from(payload(4001, 1000))),
        &other
    )
    .send()
    .await;
    assert_s3_error(with_other, 400, "InvalidRequest");

    // Neither refused part was kept: the upload has no parts yet.
    let listed = client.list_parts().bucket(BUCKET).key("k").upload_id(&upload_id).send().await.expect("ListParts");
    assert!(listed.parts().is_empty(), "refused parts were stored: {:?}", listed.parts());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_and_head_of_a_plain_object_with_sse_c_headers_are_400_invalid_request() {
    let (_server, client) = start().await;
    let customer = CustomerKey::new(42);
    put_bytes(&client, BUCKET, "inline", payload(4200, 1000)).await;
    put_bytes(&client, BUCKET, "blob", payload(4201, MIB)).await;

    for key in ["inline", "blob"] {
        let get = with_key!(client.get_object().bucket(BUCKET).key(key), &customer).send().await;
        assert_s3_error(get, 400, "InvalidRequest");
        let head = with_key!(client.head_object().bucket(BUCKET).key(key), &customer).send().await;
        assert_http_status(head, 400);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copying_an_sse_c_object_without_the_source_key_is_400_invalid_request_and_copies_nothing() {
    let (_server, client) = start().await;
    let customer = CustomerKey::new(43);
    put_encrypted(&client, BUCKET, "source", payload(4300, MIB), &customer).await;

    let copy = client.copy_object().bucket(BUCKET).key("copy").copy_source(format!("{BUCKET}/source")).send().await;
    assert_s3_error(copy, 400, "InvalidRequest");
    let re_encrypted =
        with_key!(client.copy_object().bucket(BUCKET).key("copy").copy_source(format!("{BUCKET}/source")), &customer)
            .send()
            .await;
    assert_s3_error(re_encrypted, 400, "InvalidRequest");
    assert_absent(&client, "copy").await;
}

// ---------------------------------------------------------------------------
// Plain HTTP

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sse_c_over_plain_http_is_refused_with_invalid_request_and_nothing_is_stored() {
    let (server, client) = TestServer::start_with_bucket(BUCKET).await;
    assert!(server.endpoint().starts_with("http://"), "a plain HTTP server");
    let customer = CustomerKey::new(50);

    for (key, size) in [("inline", 1000), ("blob", MIB)] {
        let put = with_key!(
            client.put_object().bucket(BUCKET).key(key).body(ByteStream::from(payload(5000, size))),
            &customer
        )
        .send()
        .await;
        assert_s3_error(put, 400, "InvalidRequest");
        assert_absent(&client, key).await;
    }
    let create = with_key!(client.create_multipart_upload().bucket(BUCKET).key("mp"), &customer).send().await;
    assert_s3_error(create, 400, "InvalidRequest");
    let uploads = client.list_multipart_uploads().bucket(BUCKET).send().await.expect("ListMultipartUploads");
    assert!(uploads.uploads().is_empty(), "a refused initiate left an upload: {:?}", uploads.uploads());
    put_bytes(&client, BUCKET, "plain", b"plain".to_vec()).await;
    let get = with_key!(client.get_object().bucket(BUCKET).key("plain"), &customer).send().await;
    assert_s3_error(get, 400, "InvalidRequest");
}

// ---------------------------------------------------------------------------
// At rest

const MARKER: &[u8] = b"BULWARK-PLAINTEXT-MARKER-7f3a9c-at-rest-search";
const INLINE_BUCKET: &str = "at-rest-inline";
const BLOB_BUCKET: &str = "at-rest-blob";

/// A plaintext of `len` bytes that repeats the marker, the raw customer key and its
/// base64 string, so that each is a needle the at-rest search can look for.
fn marked_plaintext(customer: &CustomerKey, len: usize) -> Vec<u8> {
    let unit = [MARKER, &customer.raw, b" ", customer.base64.as_bytes(), b"\n"].concat();
    unit.iter().copied().cycle().take(len).collect()
}

/// Writes an inline-sized and a few-MiB marked object, in buckets of their own,
/// encrypted with `customer` or not; checks that they read back.
async fn write_marked_objects(server: &TestServer, customer: &CustomerKey, encrypted: bool) {
    let client = server.client();
    for (bucket, size) in [(INLINE_BUCKET, INLINE_SIZE_MAX_BYTES - 28 * KIB), (BLOB_BUCKET, 3 * MIB + 5)] {
        create_bucket(&client, bucket).await;
        let body = marked_plaintext(customer, size);
        if encrypted {
            put_encrypted(&client, bucket, "marked", body.clone(), customer).await;
            let output = with_key!(client.get_object().bucket(bucket).key("marked"), customer)
                .send()
                .await
                .unwrap_or_else(|e| panic!("GET {bucket}/marked: {e:?}"));
            assert!(read_all(output.body).await == body, "{bucket}/marked reads back");
        } else {
            put_bytes(&client, bucket, "marked", body.clone()).await;
            assert!(get_bytes(&client, bucket, "marked").await == body, "{bucket}/marked reads back");
        }
    }
    // The inline object lives in the metadata store only; the blob has shard files.
    for drive in 1..=DRIVE_COUNT {
        assert!(shard_files_in_bucket(&server.drive_path(drive), INLINE_BUCKET).is_empty(), "inline object sharded");
    }
    let sharded = (1..=DRIVE_COUNT).filter(|d| !shard_files_in_bucket(&server.drive_path(*d), BLOB_BUCKET).is_empty());
    assert!(sharded.count() > 0, "the blob object has no shard files");
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    let Some((&first, rest)) = needle.split_first() else { return true };
    let mut at = 0;
    while let Some(offset) = haystack[at..].iter().position(|&b| b == first) {
        let start = at + offset;
        if haystack[start + 1..].starts_with(rest) {
            return true;
        }
        at = start + 1;
    }
    false
}

/// Every file under the data directory (all drives, their metadata stores and
/// shard files, and anything else) that contains each needle, by needle name.
/// Also checks that the search covered every drive's `.bulwark/meta.redb`.
fn files_containing(server: &TestServer, needles: &[(&str, &[u8])]) -> Vec<(String, Vec<PathBuf>)> {
    let files = bulwark_e2e::files_under(&server.data_dir());
    for drive in 1..=DRIVE_COUNT {
        let store = server.drive_path(drive).join(".bulwark").join("meta.redb");
        assert!(files.contains(&store), "the search covers {}; files: {files:#?}", store.display());
    }
    let contents: Vec<(PathBuf, Vec<u8>)> = files
        .into_iter()
        .map(|path| {
            let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
            (path, bytes)
        })
        .collect();
    needles
        .iter()
        .map(|(name, needle)| {
            let hits = contents.iter().filter(|(_, bytes)| contains(bytes, needle)).map(|(p, _)| p.clone()).collect();
            ((*name).to_owned(), hits)
        })
        .collect()
}

fn needles(customer: &CustomerKey) -> Vec<(&'static str, Vec<u8>)> {
    vec![("marker", MARKER.to_vec()), ("raw key", customer.raw.clone()), ("base64 key", customer.base64.clone().into())]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_drive_file_and_no_log_line_holds_the_plaintext_or_the_customer_key_of_sse_c_objects() {
    let server = TestServer::start_tls().await;
    let customer = CustomerKey::new(60);
    write_marked_objects(&server, &customer, true).await;

    let needles = needles(&customer);
    let borrowed: Vec<(&str, &[u8])> = needles.iter().map(|(n, b)| (*n, b.as_slice())).collect();
    for (name, hits) in files_containing(&server, &borrowed) {
        assert!(hits.is_empty(), "the {name} of an SSE-C object is on disk in {hits:#?}");
    }
    let log = server.log();
    for (name, needle) in &borrowed {
        assert!(!contains(log.as_bytes(), needle), "the {name} is in the server log");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_at_rest_search_finds_the_marker_and_the_key_bytes_of_unencrypted_objects() {
    let server = TestServer::start_tls().await;
    let customer = CustomerKey::new(61);
    write_marked_objects(&server, &customer, false).await;

    let needles = needles(&customer);
    let borrowed: Vec<(&str, &[u8])> = needles.iter().map(|(n, b)| (*n, b.as_slice())).collect();
    for (name, hits) in files_containing(&server, &borrowed) {
        let in_store = hits.iter().filter(|p| p.ends_with(".bulwark/meta.redb")).count();
        let in_shards = hits.iter().filter(|p| p.components().any(|c| c.as_os_str() == BLOB_BUCKET)).count();
        assert!(in_store > 0, "the search finds the {name} of the plain inline object in a meta.redb: {hits:#?}");
        assert!(in_shards > 0, "the search finds the {name} of the plain blob object in a shard file: {hits:#?}");
    }
}

// ---------------------------------------------------------------------------
// boto3

const BOTO3_SCRIPT: &str = r#"
import json, os, sys
try:
    import boto3
    from botocore.config import Config
except ImportError as e:
    print(f"IMPORT-FAILED: {e}", file=sys.stderr)
    sys.exit(3)
s3 = boto3.client(
    "s3",
    endpoint_url=os.environ["E2E_ENDPOINT"],
    aws_access_key_id=os.environ["E2E_ACCESS_KEY"],
    aws_secret_access_key=os.environ["E2E_SECRET_KEY"],
    region_name=os.environ["E2E_REGION"],
    verify=os.environ["E2E_CA"],
    config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}),
)
bucket = os.environ["E2E_BUCKET"]
key = bytes.fromhex(os.environ["E2E_KEY_HEX"])
body = bytes.fromhex(os.environ["E2E_BODY_HEX"])
# The boto3 trap: pass the raw 32 bytes; botocore base64-encodes them and adds the MD5.
put = s3.put_object(Bucket=bucket, Key="from-boto3", Body=body, SSECustomerAlgorithm="AES256", SSECustomerKey=key)
got = s3.get_object(Bucket=bucket, Key="from-boto3", SSECustomerAlgorithm="AES256", SSECustomerKey=key)
read_back = got["Body"].read()
other = s3.get_object(Bucket=bucket, Key="from-rust", SSECustomerAlgorithm="AES256", SSECustomerKey=key)
print(json.dumps({
    "put_algorithm": put.get("SSECustomerAlgorithm"),
    "put_key_md5": put.get("SSECustomerKeyMD5"),
    "get_algorithm": got.get("SSECustomerAlgorithm"),
    "get_key_md5": got.get("SSECustomerKeyMD5"),
    "read_back_hex": read_back.hex(),
    "from_rust_hex": other["Body"].read().hex(),
}))
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn boto3_puts_and_gets_an_sse_c_object_over_tls_and_each_client_reads_what_the_other_wrote() {
    let (server, client) = start().await;
    let customer = CustomerKey::new(70);
    let from_boto3 = payload(7000, 10 * KIB);
    let from_rust = payload(7001, 5 * KIB);
    put_encrypted(&client, BUCKET, "from-rust", from_rust.clone(), &customer).await;
    let scratch = server.scratch_dir();

    let mut command = Command::new("python3");
    command
        .arg("-c")
        .arg(BOTO3_SCRIPT)
        .env("E2E_ENDPOINT", server.endpoint())
        .env("E2E_ACCESS_KEY", ACCESS_KEY)
        .env("E2E_SECRET_KEY", SECRET_KEY)
        .env("E2E_REGION", REGION)
        .env("E2E_CA", server.tls_cert_path())
        .env("E2E_BUCKET", BUCKET)
        .env("E2E_KEY_HEX", hex::encode(&customer.raw))
        .env("E2E_BODY_HEX", hex::encode(&from_boto3))
        .env("AWS_CONFIG_FILE", scratch.join("no-aws-config"))
        .env("AWS_SHARED_CREDENTIALS_FILE", scratch.join("no-aws-credentials"))
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env_remove("AWS_PROFILE")
        .env_remove("AWS_ENDPOINT_URL")
        .env_remove("AWS_ENDPOINT_URL_S3")
        .env_remove("AWS_CA_BUNDLE");
    let output = tokio::task::spawn_blocking(move || command.output())
        .await
        .expect("the python runner does not panic")
        .unwrap_or_else(|e| panic!("run python3 (needed for the boto3 test; this test does not skip): {e}"));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        !stderr.contains("IMPORT-FAILED"),
        "python3 cannot import boto3 ({}): install it with `pip install awscli boto3 awscrt`; \
         this test does not skip without it",
        stderr.trim()
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "the boto3 script failed with {}\n--- stdout ---\n{stdout}\n--- stderr ---\n{stderr}",
        output.status
    );
    let report: serde_json::Value = serde_json::from_str(stdout.trim())
        .unwrap_or_else(|e| panic!("the boto3 script printed no JSON ({e}): {stdout}"));

    for (field, expected) in [
        ("put_algorithm", AES256.to_owned()),
        ("put_key_md5", customer.md5.clone()),
        ("get_algorithm", AES256.to_owned()),
        ("get_key_md5", customer.md5.clone()),
        ("read_back_hex", hex::encode(&from_boto3)),
        ("from_rust_hex", hex::encode(&from_rust)),
    ] {
        assert_eq!(report[field].as_str(), Some(expected.as_str()), "boto3 {field}");
    }
    assert!(get_encrypted(&client, "from-boto3", &customer).await == from_boto3, "the SDK reads boto3's object");
}
