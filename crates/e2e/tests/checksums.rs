//! A user's bytes are checked on the wire: every S3 checksum algorithm — sent as a
//! header or an aws-chunked trailer, single-part or multipart (composite or full
//! object) — is verified before anything is stored and returned on GET and HEAD,
//! and a wrong checksum, Content-MD5 or payload hash stores nothing and leaves
//! what was stored before untouched. The AWS CLI agrees with the Rust SDK.
//!
//! The expected checksums are computed here, independently of the server and the
//! SDK, and checked against the published check values first.

use aws_sdk_s3::Client;
use aws_sdk_s3::error::DisplayErrorContext;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{
    BucketVersioningStatus, ChecksumAlgorithm, ChecksumMode, ChecksumType, CompletedMultipartUpload, CompletedPart,
    ObjectAttributes, StorageClass, VersioningConfiguration,
};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use bulwark_e2e::aws_cli::AwsCli;
use bulwark_e2e::raw_http::Response;
use bulwark_e2e::{
    ClientOptions, PART_SIZE_MIN_BYTES, TestServer, assert_s3_error, create_bucket, get_bytes, http_status, md5_bytes,
    payload, put_bytes, read_all, send_signed, send_signed_by_hand, write_file,
};
use md5::Digest;

const BUCKET: &str = "checksums";
const MIB: usize = 1024 * 1024;
/// Kept inline in the metadata store.
const SMALL_BYTES: usize = 1000;
/// Erasure-coded into shard files.
const CODED_BYTES: usize = 300 * 1024 + 17;
/// The CLI's default multipart threshold and part size are both 8 MiB.
const CLI_PART_BYTES: usize = 8 * MIB;
const CHECK_INPUT: &[u8] = b"123456789";

// ---------------------------------------------------------------------------
// Reference checksums, computed here

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Algorithm {
    Crc32,
    Crc32c,
    Crc64nvme,
    Sha1,
    Sha256,
}

use Algorithm::{Crc32, Crc32c, Crc64nvme, Sha1, Sha256};

const ALL: [Algorithm; 5] = [Crc32, Crc32c, Crc64nvme, Sha1, Sha256];

impl Algorithm {
    fn sdk(self) -> ChecksumAlgorithm {
        match self {
            Crc32 => ChecksumAlgorithm::Crc32,
            Crc32c => ChecksumAlgorithm::Crc32C,
            Crc64nvme => ChecksumAlgorithm::Crc64Nvme,
            Sha1 => ChecksumAlgorithm::Sha1,
            Sha256 => ChecksumAlgorithm::Sha256,
        }
    }

    /// The name on the wire and in the CLI: `CRC32`, `CRC64NVME`, …
    fn name(self) -> &'static str {
        match self {
            Crc32 => "CRC32",
            Crc32c => "CRC32C",
            Crc64nvme => "CRC64NVME",
            Sha1 => "SHA1",
            Sha256 => "SHA256",
        }
    }

    fn header(self) -> String {
        format!("x-amz-checksum-{}", self.name().to_ascii_lowercase())
    }

    /// The raw digest of `data`; CRCs big-endian, as S3 encodes them.
    fn digest(self, data: &[u8]) -> Vec<u8> {
        match self {
            Crc32 => (crc_reflected(0xEDB8_8320, 32, data) as u32).to_be_bytes().to_vec(),
            Crc32c => (crc_reflected(0x82F6_3B78, 32, data) as u32).to_be_bytes().to_vec(),
            Crc64nvme => crc_reflected(0x9A6C_9329_AC4B_C9B5, 64, data).to_be_bytes().to_vec(),
            Sha1 => sha1::Sha1::digest(data).to_vec(),
            Sha256 => sha2::Sha256::digest(data).to_vec(),
        }
    }

    /// The base64 checksum of `data`, as in `x-amz-checksum-*`.
    fn of(self, data: &[u8]) -> String {
        BASE64.encode(self.digest(data))
    }

    /// A well-formed checksum that is not the checksum of the test data.
    fn wrong(self) -> String {
        BASE64.encode(vec![0u8; self.digest(b"").len()])
    }

    /// S3's composite checksum of a multipart object: the checksum of the
    /// concatenated raw part checksums, then `-<part count>`.
    fn composite(self, parts: &[Vec<u8>]) -> String {
        let joined: Vec<u8> = parts.iter().flat_map(|p| self.digest(p)).collect();
        format!("{}-{}", self.of(&joined), parts.len())
    }
}

/// A reflected CRC with all-ones initial value and final XOR (CRC-32/ISO-HDLC,
/// CRC-32C and CRC-64/NVME are all of this kind), table-driven.
fn crc_reflected(poly: u64, width_bits: u32, data: &[u8]) -> u64 {
    let mask = if width_bits == 64 { u64::MAX } else { (1u64 << width_bits) - 1 };
    let mut table = [0u64; 256];
    for (i, entry) in table.iter_mut().enumerate() {
        let mut crc = i as u64;
        for _ in 0..8 {
            crc = if crc & 1 == 1 { (crc >> 1) ^ poly } else { crc >> 1 };
        }
        *entry = crc;
    }
    let mut crc = mask;
    for &byte in data {
        crc = table[((crc ^ u64::from(byte)) & 0xFF) as usize] ^ (crc >> 8);
    }
    crc ^ mask
}

/// The `x-amz-checksum-*` value of `algorithm` in an SDK output (or part) type.
macro_rules! checksum_in {
    ($output:expr, $algorithm:expr) => {
        match $algorithm {
            Crc32 => $output.checksum_crc32(),
            Crc32c => $output.checksum_crc32_c(),
            Crc64nvme => $output.checksum_crc64_nvme(),
            Sha1 => $output.checksum_sha1(),
            Sha256 => $output.checksum_sha256(),
        }
    };
}

/// Every algorithm whose checksum an SDK output (or part) carries.
macro_rules! checksums_present {
    ($output:expr) => {
        ALL.into_iter().filter(|a| checksum_in!($output, *a).is_some()).collect::<Vec<Algorithm>>()
    };
}

/// Sets the checksum of `algorithm` on an SDK builder.
macro_rules! with_checksum {
    ($builder:expr, $algorithm:expr, $value:expr) => {
        match $algorithm {
            Crc32 => $builder.checksum_crc32($value),
            Crc32c => $builder.checksum_crc32_c($value),
            Crc64nvme => $builder.checksum_crc64_nvme($value),
            Sha1 => $builder.checksum_sha1($value),
            Sha256 => $builder.checksum_sha256($value),
        }
    };
}

// ---------------------------------------------------------------------------
// Requests

/// HEADs `key` with checksum mode and returns `(checksum of algorithm, type)`.
async fn head_checksum(client: &Client, key: &str, algorithm: Algorithm) -> (Option<String>, Option<ChecksumType>) {
    let head = client
        .head_object()
        .bucket(BUCKET)
        .key(key)
        .checksum_mode(ChecksumMode::Enabled)
        .send()
        .await
        .unwrap_or_else(|e| panic!("HEAD {key} with checksum mode: {e:?}"));
    (checksum_in!(head, algorithm).map(str::to_owned), head.checksum_type().cloned())
}

/// GETs `key` whole with checksum mode: `(bytes, checksum of algorithm, type)`.
async fn get_with_checksum(
    client: &Client,
    key: &str,
    algorithm: Algorithm,
) -> (Vec<u8>, Option<String>, Option<ChecksumType>) {
    let output = client
        .get_object()
        .bucket(BUCKET)
        .key(key)
        .checksum_mode(ChecksumMode::Enabled)
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET {key} with checksum mode: {e:?}"));
    let checksum = checksum_in!(output, algorithm).map(str::to_owned);
    let checksum_type = output.checksum_type().cloned();
    (read_all(output.body).await, checksum, checksum_type)
}

/// Asserts that `key` holds exactly `data`, with the checksum it was stored with.
async fn assert_unchanged(client: &Client, key: &str, data: &[u8], algorithm: Algorithm, what: &str) {
    let (got, checksum, _) = get_with_checksum(client, key, algorithm).await;
    assert!(got == data, "{key} changed after {what}");
    assert_eq!(checksum, Some(algorithm.of(data)), "the {} of {key} changed after {what}", algorithm.name());
}

async fn assert_absent(client: &Client, key: &str, what: &str) {
    match client.head_object().bucket(BUCKET).key(key).send().await {
        Ok(head) => panic!("{key} exists after {what}: {head:?}"),
        Err(e) => assert_eq!(http_status(&e), Some(404), "HEAD {key} after {what}: {}", DisplayErrorContext(&e)),
    }
}

async fn put_with_algorithm(client: &Client, key: &str, data: &[u8], algorithm: Algorithm) {
    client
        .put_object()
        .bucket(BUCKET)
        .key(key)
        .body(ByteStream::from(data.to_vec()))
        .checksum_algorithm(algorithm.sdk())
        .send()
        .await
        .unwrap_or_else(|e| panic!("PUT {key} with {}: {e:?}", algorithm.name()));
}

#[track_caller]
fn assert_refused(response: &Response, status: u16, code: &str, what: &str) {
    assert_eq!(
        (response.status, response.error_code().as_deref()),
        (status, Some(code)),
        "{what}: unexpected response {} {}",
        response.status,
        response.text()
    );
}

/// PUTs `data` as `STREAMING-UNSIGNED-PAYLOAD-TRAILER`: aws-chunked, 64 KiB
/// chunks, then the trailer `<trailer_name>:<trailer_value>`, signed by hand.
async fn put_with_trailer(
    server: &TestServer,
    key: &str,
    data: &[u8],
    trailer_name: &str,
    trailer_value: &str,
) -> Response {
    let mut body = Vec::with_capacity(data.len() + 256);
    for chunk in data.chunks(64 * 1024) {
        body.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        body.extend_from_slice(chunk);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("0\r\n{trailer_name}:{trailer_value}\r\n\r\n").as_bytes());
    let decoded_len = data.len().to_string();
    let encoded_len = body.len().to_string();
    let headers = [
        ("content-encoding", "aws-chunked"),
        ("content-length", encoded_len.as_str()),
        ("x-amz-decoded-content-length", decoded_len.as_str()),
        ("x-amz-trailer", trailer_name),
    ];
    send_signed_by_hand(
        server,
        "PUT",
        &format!("/{BUCKET}/{key}"),
        &headers,
        "STREAMING-UNSIGNED-PAYLOAD-TRAILER",
        &body,
    )
    .await
}

async fn version_count(client: &Client, bucket: &str) -> usize {
    let listing = client.list_object_versions().bucket(bucket).send().await.expect("ListObjectVersions");
    listing.versions().len() + listing.delete_markers().len()
}

// ---------------------------------------------------------------------------
// Tests

#[test]
fn the_reference_checksums_match_the_published_check_values_of_123456789() {
    assert_eq!(Crc32.of(CHECK_INPUT), "y/Q5Jg==");
    assert_eq!(Crc32c.of(CHECK_INPUT), "4waSgw==");
    assert_eq!(Crc64nvme.of(CHECK_INPUT), "rosUhgp5mIg=");
    assert_eq!(hex::encode(Sha1.digest(CHECK_INPUT)), "f7c3bc1d808e04732adf679965ccc34ca7ae3441");
    assert_eq!(
        hex::encode(Sha256.digest(CHECK_INPUT)),
        "15e2b0d3c33891ebb0f1ef609ec419420c20e320ce94c65fbc8c3312448eb225"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_put_with_each_algorithm_returns_that_full_object_checksum_on_put_get_and_head() {
    let (server, client) = TestServer::start_with_bucket(BUCKET).await;
    let scratch = server.scratch_dir();
    for (index, algorithm) in ALL.into_iter().enumerate() {
        for (size_name, size) in [("inline", SMALL_BYTES), ("coded", CODED_BYTES)] {
            let data = payload(index as u64 * 10 + size as u64, size);
            let expected = algorithm.of(&data);
            // An in-memory body and a streamed file: the SDK sends the checksum of
            // the first in a header, of the second in a signed aws-chunked trailer.
            let file = scratch.join(format!("{}-{size_name}", algorithm.name()));
            std::fs::write(&file, &data).expect("write the body file");
            for (body_name, body) in [
                ("memory", ByteStream::from(data.clone())),
                ("file", ByteStream::from_path(&file).await.expect("open the body file")),
            ] {
                let key = format!("{}-{size_name}-{body_name}", algorithm.name());
                let put = client
                    .put_object()
                    .bucket(BUCKET)
                    .key(&key)
                    .body(body)
                    .checksum_algorithm(algorithm.sdk())
                    .send()
                    .await
                    .unwrap_or_else(|e| panic!("PUT {key}: {e:?}"));
                assert_eq!(checksum_in!(put, algorithm), Some(expected.as_str()), "PUT {key} returns the checksum");

                let (got, checksum, checksum_type) = get_with_checksum(&client, &key, algorithm).await;
                assert!(got == data, "GET {key} returns the bytes written");
                assert_eq!(checksum.as_deref(), Some(expected.as_str()), "GET {key} checksum");
                assert_eq!(checksum_type, Some(ChecksumType::FullObject), "GET {key} checksum type");
                let (checksum, checksum_type) = head_checksum(&client, &key, algorithm).await;
                assert_eq!(checksum.as_deref(), Some(expected.as_str()), "HEAD {key} checksum");
                assert_eq!(checksum_type, Some(ChecksumType::FullObject), "HEAD {key} checksum type");

                let head = client.head_object().bucket(BUCKET).key(&key).checksum_mode(ChecksumMode::Enabled);
                let head = head.send().await.expect("HEAD with checksum mode");
                assert_eq!(checksums_present!(head), [algorithm], "HEAD {key} returns one checksum only");
            }
        }
    }
}

/// Starts a multipart upload with checksums of `algorithm` and `checksum_type`
/// and uploads `parts`, checking UploadPart's and ListParts' checksums on the
/// way; returns the upload id and the parts to complete it with.
async fn upload_parts_with_checksums(
    client: &Client,
    key: &str,
    parts: &[Vec<u8>],
    algorithm: Algorithm,
    checksum_type: ChecksumType,
) -> (String, Vec<CompletedPart>) {
    let upload = client
        .create_multipart_upload()
        .bucket(BUCKET)
        .key(key)
        .checksum_algorithm(algorithm.sdk())
        .checksum_type(checksum_type.clone())
        .send()
        .await
        .unwrap_or_else(|e| panic!("CreateMultipartUpload {key}: {e:?}"));
    assert_eq!(upload.checksum_algorithm(), Some(&algorithm.sdk()), "CreateMultipartUpload {key} algorithm");
    let upload_id = upload.upload_id().expect("CreateMultipartUpload returns an upload id").to_owned();
    let mut completed = Vec::new();
    for (index, data) in parts.iter().enumerate() {
        let number = index as i32 + 1;
        let output = client
            .upload_part()
            .bucket(BUCKET)
            .key(key)
            .upload_id(&upload_id)
            .part_number(number)
            .checksum_algorithm(algorithm.sdk())
            .body(ByteStream::from(data.clone()))
            .send()
            .await
            .unwrap_or_else(|e| panic!("UploadPart {number} of {key}: {e:?}"));
        let expected = algorithm.of(data);
        assert_eq!(checksum_in!(output, algorithm), Some(expected.as_str()), "UploadPart {number} of {key}");
        let part = CompletedPart::builder().part_number(number).e_tag(output.e_tag().expect("UploadPart ETag"));
        completed.push(with_checksum!(part, algorithm, expected).build());
    }

    let listed = client
        .list_parts()
        .bucket(BUCKET)
        .key(key)
        .upload_id(&upload_id)
        .send()
        .await
        .unwrap_or_else(|e| panic!("ListParts {key}: {e:?}"));
    assert_eq!(listed.checksum_algorithm(), Some(&algorithm.sdk()), "ListParts {key} algorithm");
    assert_eq!(listed.checksum_type(), Some(&checksum_type), "ListParts {key} checksum type");
    assert_eq!(listed.parts().len(), parts.len(), "ListParts {key} lists every part");
    for (part, data) in listed.parts().iter().zip(parts) {
        assert_eq!(
            checksum_in!(part, algorithm),
            Some(algorithm.of(data).as_str()),
            "ListParts {key} part {:?} checksum",
            part.part_number()
        );
    }
    (upload_id, completed)
}

/// Completes an upload with `parts`; returns the checksum of `algorithm` and the
/// checksum type CompleteMultipartUpload reported.
async fn complete_upload(
    client: &Client,
    key: &str,
    upload_id: &str,
    parts: Vec<CompletedPart>,
    algorithm: Algorithm,
) -> (Option<String>, Option<ChecksumType>) {
    let completed = client
        .complete_multipart_upload()
        .bucket(BUCKET)
        .key(key)
        .upload_id(upload_id)
        .multipart_upload(CompletedMultipartUpload::builder().set_parts(Some(parts)).build())
        .send()
        .await
        .unwrap_or_else(|e| panic!("CompleteMultipartUpload {key}: {e:?}"));
    (checksum_in!(completed, algorithm).map(str::to_owned), completed.checksum_type().cloned())
}

/// Checks what a completed multipart object reports about its checksums, whole
/// and by part number.
async fn assert_multipart_checksums(
    client: &Client,
    key: &str,
    parts: &[Vec<u8>],
    algorithm: Algorithm,
    checksum_type: ChecksumType,
    expected: &str,
) {
    let whole: Vec<u8> = parts.concat();
    let (got, checksum, got_type) = get_with_checksum(client, key, algorithm).await;
    assert!(got == whole, "GET {key} returns the parts in order");
    assert_eq!(checksum.as_deref(), Some(expected), "GET {key} checksum");
    assert_eq!(got_type.as_ref(), Some(&checksum_type), "GET {key} checksum type");
    let (checksum, got_type) = head_checksum(client, key, algorithm).await;
    assert_eq!(checksum.as_deref(), Some(expected), "HEAD {key} checksum");
    assert_eq!(got_type.as_ref(), Some(&checksum_type), "HEAD {key} checksum type");

    for (index, data) in parts.iter().enumerate() {
        let number = index as i32 + 1;
        let output = client
            .get_object()
            .bucket(BUCKET)
            .key(key)
            .part_number(number)
            .checksum_mode(ChecksumMode::Enabled)
            .send()
            .await
            .unwrap_or_else(|e| panic!("GET {key} part {number}: {e:?}"));
        assert_eq!(
            checksum_in!(output, algorithm),
            Some(algorithm.of(data).as_str()),
            "GET {key} partNumber={number} returns the part's checksum"
        );
        assert!(read_all(output.body).await == *data, "GET {key} partNumber={number} returns the part");
    }
}

fn two_parts(seed: u64) -> Vec<Vec<u8>> {
    vec![payload(seed, PART_SIZE_MIN_BYTES), payload(seed + 1, CODED_BYTES)]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_composite_multipart_object_has_the_checksum_of_its_part_checksums_and_reports_each_part() {
    let (_server, client) = TestServer::start_with_bucket(BUCKET).await;
    for (index, algorithm) in [Crc32, Crc32c, Sha1, Sha256].into_iter().enumerate() {
        let key = format!("composite-{}", algorithm.name());
        let parts = two_parts(100 + index as u64 * 2);
        let expected = algorithm.composite(&parts);
        let (upload_id, completed) =
            upload_parts_with_checksums(&client, &key, &parts, algorithm, ChecksumType::Composite).await;
        let (checksum, checksum_type) = complete_upload(&client, &key, &upload_id, completed, algorithm).await;
        assert_eq!(checksum.as_deref(), Some(expected.as_str()), "CompleteMultipartUpload {key} checksum");
        assert_eq!(checksum_type, Some(ChecksumType::Composite), "CompleteMultipartUpload {key} checksum type");
        assert_multipart_checksums(&client, &key, &parts, algorithm, ChecksumType::Composite, &expected).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_object_multipart_object_has_the_crc_of_all_its_bytes_and_reports_each_part() {
    let (_server, client) = TestServer::start_with_bucket(BUCKET).await;
    for (index, algorithm) in [Crc32, Crc32c, Crc64nvme].into_iter().enumerate() {
        let key = format!("full-{}", algorithm.name());
        let parts = two_parts(200 + index as u64 * 2);
        let expected = algorithm.of(&parts.concat());
        let (upload_id, completed) =
            upload_parts_with_checksums(&client, &key, &parts, algorithm, ChecksumType::FullObject).await;
        let (checksum, checksum_type) = complete_upload(&client, &key, &upload_id, completed, algorithm).await;
        assert_eq!(checksum.as_deref(), Some(expected.as_str()), "CompleteMultipartUpload {key} checksum");
        assert_eq!(checksum_type, Some(ChecksumType::FullObject), "CompleteMultipartUpload {key} checksum type");
        assert_multipart_checksums(&client, &key, &parts, algorithm, ChecksumType::FullObject, &expected).await;
    }
}

/// Checks what GetObjectAttributes reports about a multipart object: its size,
/// storage class, parts with their checksums, checksum type, checksum and ETag.
async fn assert_object_attributes(
    client: &Client,
    key: &str,
    parts: &[Vec<u8>],
    algorithm: Algorithm,
    checksum_type: ChecksumType,
    expected: &str,
) {
    let attributes = client
        .get_object_attributes()
        .bucket(BUCKET)
        .key(key)
        .object_attributes(ObjectAttributes::Etag)
        .object_attributes(ObjectAttributes::Checksum)
        .object_attributes(ObjectAttributes::ObjectParts)
        .object_attributes(ObjectAttributes::ObjectSize)
        .object_attributes(ObjectAttributes::StorageClass)
        .send()
        .await
        .unwrap_or_else(|e| panic!("GetObjectAttributes {key}: {e:?}"));
    let size: usize = parts.iter().map(Vec::len).sum();
    assert_eq!(attributes.object_size(), Some(size as i64), "GetObjectAttributes {key} ObjectSize");
    assert_eq!(attributes.storage_class(), Some(&StorageClass::Standard), "GetObjectAttributes {key} StorageClass");
    let object_parts = attributes.object_parts().unwrap_or_else(|| panic!("GetObjectAttributes {key} has ObjectParts"));
    assert_eq!(object_parts.total_parts_count(), Some(parts.len() as i32), "GetObjectAttributes {key} parts count");
    let listed: Vec<(Option<i32>, Option<i64>, Option<String>)> = object_parts
        .parts()
        .iter()
        .map(|p| (p.part_number(), p.size(), checksum_in!(p, algorithm).map(str::to_owned)))
        .collect();
    let wanted: Vec<(Option<i32>, Option<i64>, Option<String>)> = parts
        .iter()
        .enumerate()
        .map(|(i, p)| (Some(i as i32 + 1), Some(p.len() as i64), Some(algorithm.of(p))))
        .collect();
    assert_eq!(listed, wanted, "GetObjectAttributes {key} ObjectParts (number, size, checksum)");
    let checksum = attributes.checksum().unwrap_or_else(|| panic!("GetObjectAttributes {key} has a Checksum"));
    assert_eq!(checksum.checksum_type(), Some(&checksum_type), "GetObjectAttributes {key} ChecksumType");
    // S3 gives a composite checksum here without the `-N` suffix of GET and HEAD.
    let bare = expected.split('-').next().expect("split yields one item");
    assert_eq!(checksum_in!(checksum, algorithm), Some(bare), "GetObjectAttributes {key} Checksum");
    // S3 gives the ETag here without quotes; the pinned s3s 0.14.1 serializer
    // always quotes ETags, so compare the value inside the quotes.
    let part_md5s: Vec<[u8; 16]> = parts.iter().map(|p| md5_bytes(p)).collect();
    let etag = bulwark_e2e::multipart_etag(&part_md5s);
    assert_eq!(
        attributes.e_tag().map(|e| e.trim_matches('"')),
        Some(etag.trim_matches('"')),
        "GetObjectAttributes {key} ETag"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_object_attributes_reports_size_storage_class_parts_checksum_and_etag_of_a_multipart_object() {
    let (_server, client) = TestServer::start_with_bucket(BUCKET).await;
    let cases =
        [(Crc64nvme, ChecksumType::FullObject), (Crc32, ChecksumType::FullObject), (Sha256, ChecksumType::Composite)];
    for (index, (algorithm, checksum_type)) in cases.into_iter().enumerate() {
        let key = format!("attributes-{}", algorithm.name());
        let parts = two_parts(260 + index as u64 * 2);
        let expected = match checksum_type {
            ChecksumType::Composite => algorithm.composite(&parts),
            _ => algorithm.of(&parts.concat()),
        };
        let (upload_id, completed) =
            upload_parts_with_checksums(&client, &key, &parts, algorithm, checksum_type.clone()).await;
        complete_upload(&client, &key, &upload_id, completed, algorithm).await;
        assert_object_attributes(&client, &key, &parts, algorithm, checksum_type, &expected).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn complete_multipart_upload_checks_the_full_object_checksum_the_client_states() {
    let (_server, client) = TestServer::start_with_bucket(BUCKET).await;
    for (index, algorithm) in [Crc32, Crc64nvme].into_iter().enumerate() {
        let key = format!("stated-{}", algorithm.name());
        let parts = two_parts(250 + index as u64 * 2);
        let whole = algorithm.of(&parts.concat());
        let (upload_id, completed) =
            upload_parts_with_checksums(&client, &key, &parts, algorithm, ChecksumType::FullObject).await;
        let complete = |stated: String| {
            let request = client
                .complete_multipart_upload()
                .bucket(BUCKET)
                .key(&key)
                .upload_id(&upload_id)
                .checksum_type(ChecksumType::FullObject)
                .multipart_upload(CompletedMultipartUpload::builder().set_parts(Some(completed.clone())).build());
            with_checksum!(request, algorithm, stated).send()
        };
        assert_s3_error(complete(algorithm.wrong()).await, 400, "BadDigest");
        assert_absent(&client, &key, "a completion stating a wrong full-object checksum").await;
        let output = complete(whole.clone())
            .await
            .unwrap_or_else(|e| panic!("CompleteMultipartUpload {key} stating its {}: {e:?}", algorithm.name()));
        assert_eq!(checksum_in!(output, algorithm), Some(whole.as_str()), "CompleteMultipartUpload {key} checksum");
        let (got, checksum, _) = get_with_checksum(&client, &key, algorithm).await;
        assert!(got == parts.concat(), "GET {key} returns the parts in order");
        assert_eq!(checksum, Some(whole), "GET {key} checksum");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_object_sha256_multipart_upload_is_invalid_request() {
    let (_server, client) = TestServer::start_with_bucket(BUCKET).await;
    for algorithm in [Sha1, Sha256] {
        let result = client
            .create_multipart_upload()
            .bucket(BUCKET)
            .key("full-sha")
            .checksum_algorithm(algorithm.sdk())
            .checksum_type(ChecksumType::FullObject)
            .send()
            .await;
        assert_s3_error(result, 400, "InvalidRequest");
    }
    let uploads = client.list_multipart_uploads().bucket(BUCKET).send().await.expect("ListMultipartUploads");
    assert!(uploads.uploads().is_empty(), "a refused CreateMultipartUpload leaves no upload: {uploads:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_checksum_header_is_bad_digest_and_leaves_the_stored_object_unchanged() {
    let (_server, client) = TestServer::start_with_bucket(BUCKET).await;
    for (index, algorithm) in ALL.into_iter().enumerate() {
        for size in [SMALL_BYTES, CODED_BYTES] {
            let key = format!("{}-{size}", algorithm.name());
            let stored = payload(300 + index as u64, size);
            put_with_algorithm(&client, &key, &stored, algorithm).await;

            let replacement = payload(400 + index as u64, size);
            let put = client.put_object().bucket(BUCKET).key(&key).body(ByteStream::from(replacement));
            let result = with_checksum!(put, algorithm, algorithm.wrong()).send().await;
            assert_s3_error(result, 400, "BadDigest");
            assert_unchanged(&client, &key, &stored, algorithm, "a PUT with a wrong checksum header").await;

            let fresh = format!("{key}-fresh");
            let put = client.put_object().bucket(BUCKET).key(&fresh).body(ByteStream::from(stored.clone()));
            let result = with_checksum!(put, algorithm, algorithm.wrong()).send().await;
            assert_s3_error(result, 400, "BadDigest");
            assert_absent(&client, &fresh, "a PUT with a wrong checksum header").await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_put_refused_for_its_checksum_adds_no_version_to_a_versioned_bucket() {
    let server = TestServer::start().await;
    let client = server.client();
    create_bucket(&client, BUCKET).await;
    client
        .put_bucket_versioning()
        .bucket(BUCKET)
        .versioning_configuration(VersioningConfiguration::builder().status(BucketVersioningStatus::Enabled).build())
        .send()
        .await
        .expect("PutBucketVersioning Enabled");
    let stored = payload(500, CODED_BYTES);
    put_with_algorithm(&client, "k", &stored, Crc32).await;
    put_with_algorithm(&client, "k", &stored, Crc32).await;
    assert_eq!(version_count(&client, BUCKET).await, 2, "two PUTs make two versions");

    let header = client.put_object().bucket(BUCKET).key("k").body(ByteStream::from(payload(501, CODED_BYTES)));
    assert_s3_error(header.checksum_crc32(Crc32.wrong()).send().await, 400, "BadDigest");
    let trailer = put_with_trailer(&server, "k", &payload(502, CODED_BYTES), &Crc32.header(), &Crc32.wrong()).await;
    assert_refused(&trailer, 400, "BadDigest", "a wrong CRC32 trailer");
    let md5 = client
        .put_object()
        .bucket(BUCKET)
        .key("k")
        .body(ByteStream::from(payload(503, SMALL_BYTES)))
        .content_md5(BASE64.encode(md5_bytes(b"other bytes")));
    assert_s3_error(md5.send().await, 400, "BadDigest");

    assert_eq!(version_count(&client, BUCKET).await, 2, "refused PUTs add no version");
    assert_unchanged(&client, "k", &stored, Crc32, "refused PUTs in a versioned bucket").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_checksum_in_an_aws_chunked_trailer_is_bad_digest_and_leaves_the_stored_object_unchanged() {
    let (server, client) = TestServer::start_with_bucket(BUCKET).await;
    for (index, algorithm) in ALL.into_iter().enumerate() {
        for size in [SMALL_BYTES, CODED_BYTES] {
            let key = format!("{}-{size}", algorithm.name());
            let stored = payload(600 + index as u64, size);
            put_with_algorithm(&client, &key, &stored, algorithm).await;

            let replacement = payload(700 + index as u64, size);
            let response = put_with_trailer(&server, &key, &replacement, &algorithm.header(), &algorithm.wrong()).await;
            assert_refused(&response, 400, "BadDigest", &format!("a wrong {} trailer", algorithm.name()));
            assert_unchanged(&client, &key, &stored, algorithm, "a PUT with a wrong checksum trailer").await;

            let fresh = format!("{key}-fresh");
            let response = put_with_trailer(&server, &fresh, &stored, &algorithm.header(), &algorithm.wrong()).await;
            assert_refused(&response, 400, "BadDigest", &format!("a wrong {} trailer", algorithm.name()));
            assert_absent(&client, &fresh, "a PUT with a wrong checksum trailer").await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_aws_chunked_upload_with_a_correct_checksum_trailer_is_stored_with_that_checksum() {
    let (server, client) = TestServer::start_with_bucket(BUCKET).await;
    for (index, algorithm) in ALL.into_iter().enumerate() {
        for size in [0, SMALL_BYTES, CODED_BYTES] {
            let key = format!("{}-{size}", algorithm.name());
            let data = payload(800 + index as u64, size);
            let expected = algorithm.of(&data);
            let response = put_with_trailer(&server, &key, &data, &algorithm.header(), &expected).await;
            assert_eq!(response.status, 200, "PUT {key} with a correct trailer: {}", response.text());
            assert_eq!(response.header(&algorithm.header()), Some(expected.as_str()), "PUT {key} returns the checksum");
            let (got, checksum, checksum_type) = get_with_checksum(&client, &key, algorithm).await;
            assert!(got == data, "GET {key} returns the decoded body");
            assert_eq!(checksum.as_deref(), Some(expected.as_str()), "GET {key} checksum");
            assert_eq!(checksum_type, Some(ChecksumType::FullObject), "GET {key} checksum type");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_content_md5_is_bad_digest_and_a_malformed_one_invalid_digest_and_neither_stores_anything() {
    let (_server, client) = TestServer::start_with_bucket(BUCKET).await;
    let stored = payload(900, CODED_BYTES);
    put_with_algorithm(&client, "existing", &stored, Crc64nvme).await;
    let wrong = BASE64.encode(md5_bytes(b"not the body"));
    for (content_md5, code) in
        [(wrong.as_str(), "BadDigest"), ("not-an-md5", "InvalidDigest"), ("AAAA", "InvalidDigest")]
    {
        for size in [SMALL_BYTES, CODED_BYTES] {
            let body = payload(901, size);
            let what = format!("Content-MD5 {content_md5:?} on {size} bytes");
            let result = client
                .put_object()
                .bucket(BUCKET)
                .key("fresh")
                .body(ByteStream::from(body.clone()))
                .content_md5(content_md5)
                .send()
                .await;
            assert_s3_error(result, 400, code);
            assert_absent(&client, "fresh", &what).await;

            let result = client
                .put_object()
                .bucket(BUCKET)
                .key("existing")
                .body(ByteStream::from(body))
                .content_md5(content_md5)
                .send()
                .await;
            assert_s3_error(result, 400, code);
            assert_unchanged(&client, "existing", &stored, Crc64nvme, &what).await;
        }
    }
    let right = payload(902, SMALL_BYTES);
    client
        .put_object()
        .bucket(BUCKET)
        .key("fresh")
        .body(ByteStream::from(right.clone()))
        .content_md5(BASE64.encode(md5_bytes(&right)))
        .send()
        .await
        .expect("PUT with the right Content-MD5");
    assert!(get_bytes(&client, BUCKET, "fresh").await == right, "the right Content-MD5 stores the body");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delete_objects_request_with_a_wrong_content_md5_is_bad_digest_and_deletes_nothing() {
    let (server, client) = TestServer::start_with_bucket(BUCKET).await;
    for key in ["a", "b"] {
        put_bytes(&client, BUCKET, key, payload(1000, SMALL_BYTES)).await;
    }
    let document = "<Delete><Object><Key>a</Key></Object><Object><Key>b</Key></Object></Delete>";
    let wrong = BASE64.encode(md5_bytes(b"<Delete></Delete>"));
    let headers = [("content-type", "application/xml"), ("content-md5", wrong.as_str())];
    let response = send_signed(&server, "POST", &format!("/{BUCKET}?delete"), &headers, document.as_bytes()).await;
    assert_refused(&response, 400, "BadDigest", "DeleteObjects with a wrong Content-MD5");
    for key in ["a", "b"] {
        assert!(get_bytes(&client, BUCKET, key).await == payload(1000, SMALL_BYTES), "{key} is still there");
    }

    let wrong_crc = Crc32.wrong();
    let header = Crc32.header();
    let headers = [("content-type", "application/xml"), (header.as_str(), wrong_crc.as_str())];
    let response = send_signed(&server, "POST", &format!("/{BUCKET}?delete"), &headers, document.as_bytes()).await;
    assert_refused(&response, 400, "BadDigest", "DeleteObjects with a wrong x-amz-checksum-crc32");
    for key in ["a", "b"] {
        assert!(get_bytes(&client, BUCKET, key).await == payload(1000, SMALL_BYTES), "{key} is still there");
    }

    let right = BASE64.encode(md5_bytes(document.as_bytes()));
    let headers = [("content-type", "application/xml"), ("content-md5", right.as_str())];
    let response = send_signed(&server, "POST", &format!("/{BUCKET}?delete"), &headers, document.as_bytes()).await;
    assert_eq!(response.status, 200, "DeleteObjects with the right Content-MD5: {}", response.text());
    let left = client.list_objects_v2().bucket(BUCKET).send().await.expect("ListObjectsV2");
    assert!(left.contents().is_empty(), "the right Content-MD5 deletes both keys");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_payload_hash_that_does_not_match_the_body_is_x_amz_content_sha256_mismatch_and_stores_nothing() {
    let (server, client) = TestServer::start_with_bucket(BUCKET).await;
    let stored = payload(1100, CODED_BYTES);
    put_with_algorithm(&client, "existing", &stored, Sha256).await;
    for size in [SMALL_BYTES, CODED_BYTES] {
        let body = payload(1101, size);
        let other_hash = hex::encode(Sha256.digest(b"some other body"));
        for key in ["existing", "fresh"] {
            let response =
                send_signed_by_hand(&server, "PUT", &format!("/{BUCKET}/{key}"), &[], &other_hash, &body).await;
            assert_refused(&response, 400, "XAmzContentSHA256Mismatch", &format!("PUT {key} of {size} bytes"));
        }
        assert_absent(&client, "fresh", "a PUT with a wrong payload hash").await;
        assert_unchanged(&client, "existing", &stored, Sha256, "a PUT with a wrong payload hash").await;
    }
    let body = payload(1102, SMALL_BYTES);
    let response = send_signed(&server, "PUT", &format!("/{BUCKET}/fresh"), &[], &body).await;
    assert_eq!(response.status, 200, "PUT with the right payload hash: {}", response.text());
    assert!(get_bytes(&client, BUCKET, "fresh").await == body, "the right payload hash stores the body");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_different_checksum_headers_at_once_are_invalid_request_and_store_nothing() {
    let (server, client) = TestServer::start_with_bucket(BUCKET).await;
    let body = payload(1200, SMALL_BYTES);
    let (crc32, sha256) = (Crc32.of(&body), Sha256.of(&body));
    let (crc32_header, sha256_header) = (Crc32.header(), Sha256.header());
    let path = format!("/{BUCKET}/k");

    let two = [(crc32_header.as_str(), crc32.as_str()), (sha256_header.as_str(), sha256.as_str())];
    let response = send_signed(&server, "PUT", &path, &two, &body).await;
    assert_refused(&response, 400, "InvalidRequest", "two x-amz-checksum-* headers");
    assert_absent(&client, "k", "a PUT with two checksum headers").await;

    let one = [("x-amz-sdk-checksum-algorithm", "SHA256"), (sha256_header.as_str(), sha256.as_str())];
    let response = send_signed(&server, "PUT", &path, &one, &body).await;
    assert_eq!(response.status, 200, "PUT with one checksum header: {}", response.text());
    assert_unchanged(&client, "k", &body, Sha256, "a PUT with one checksum header").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_md5_or_unknown_sdk_checksum_algorithm_is_invalid_request_and_stores_nothing() {
    let (server, client) = TestServer::start_with_bucket(BUCKET).await;
    let body = payload(1201, SMALL_BYTES);
    for name in ["MD5", "CRC128"] {
        let declared = [("x-amz-sdk-checksum-algorithm", name)];
        let response = send_signed(&server, "PUT", &format!("/{BUCKET}/{name}"), &declared, &body).await;
        assert_refused(&response, 400, "InvalidRequest", &format!("x-amz-sdk-checksum-algorithm: {name}"));
        assert_absent(&client, name, &format!("a PUT declaring {name} as its checksum algorithm")).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copy_object_with_a_sha256_checksum_algorithm_gives_the_copy_that_sha256() {
    let (_server, client) = TestServer::start_with_bucket(BUCKET).await;
    for size in [SMALL_BYTES, CODED_BYTES] {
        let data = payload(1300, size);
        let source = format!("source-{size}");
        put_with_algorithm(&client, &source, &data, Crc32).await;
        let copy = format!("copy-{size}");
        let output = client
            .copy_object()
            .bucket(BUCKET)
            .key(&copy)
            .copy_source(format!("{BUCKET}/{source}"))
            .checksum_algorithm(ChecksumAlgorithm::Sha256)
            .send()
            .await
            .unwrap_or_else(|e| panic!("CopyObject {source} with SHA256: {e:?}"));
        let expected = Sha256.of(&data);
        let (got, checksum, checksum_type) = get_with_checksum(&client, &copy, Sha256).await;
        assert!(got == data, "the copy of {size} bytes reads back identical");
        assert_eq!(checksum.as_deref(), Some(expected.as_str()), "GET {copy} ChecksumSHA256");
        assert_eq!(checksum_type, Some(ChecksumType::FullObject), "GET {copy} checksum type");
        let head = client.head_object().bucket(BUCKET).key(&copy).checksum_mode(ChecksumMode::Enabled);
        let head = head.send().await.expect("HEAD the copy");
        assert_eq!(checksums_present!(head), [Sha256], "the copy carries the SHA256 only");
        let result = output.copy_object_result().expect("CopyObject returns a CopyObjectResult");
        assert_eq!(result.checksum_sha256(), Some(expected.as_str()), "CopyObjectResult ChecksumSHA256");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_whole_object_get_with_checksum_mode_returns_the_checksum_of_the_bytes_it_serves() {
    let server = TestServer::start().await;
    // No client checksum at all: the server picks CRC64NVME, as S3 does.
    let client = server.client_with(ClientOptions { checksums_when_supported: false, ..ClientOptions::default() });
    create_bucket(&client, BUCKET).await;
    for (index, size) in [0, SMALL_BYTES, 128 * 1024 + 1, MIB + 7, 3 * MIB + 5].into_iter().enumerate() {
        let key = format!("plain-{size}");
        put_bytes(&client, BUCKET, &key, payload(1400 + index as u64, size)).await;
        let (got, checksum, checksum_type) = get_with_checksum(&client, &key, Crc64nvme).await;
        assert_eq!(got.len(), size, "GET {key} length");
        assert_eq!(checksum, Some(Crc64nvme.of(&got)), "GET {key} checksum is the CRC64NVME of the bytes served");
        assert_eq!(checksum_type, Some(ChecksumType::FullObject), "GET {key} checksum type");
        assert!(got == payload(1400 + index as u64, size), "GET {key} serves the bytes written");
    }

    let parts = two_parts(1500);
    let upload = client.create_multipart_upload().bucket(BUCKET).key("plain-multipart").send().await;
    let upload_id = upload.expect("CreateMultipartUpload").upload_id().expect("upload id").to_owned();
    let mut completed = Vec::new();
    for (index, data) in parts.iter().enumerate() {
        let number = index as i32 + 1;
        let output = client
            .upload_part()
            .bucket(BUCKET)
            .key("plain-multipart")
            .upload_id(&upload_id)
            .part_number(number)
            .body(ByteStream::from(data.clone()))
            .send()
            .await
            .expect("UploadPart");
        completed.push(CompletedPart::builder().part_number(number).e_tag(output.e_tag().expect("ETag")).build());
    }
    client
        .complete_multipart_upload()
        .bucket(BUCKET)
        .key("plain-multipart")
        .upload_id(&upload_id)
        .multipart_upload(CompletedMultipartUpload::builder().set_parts(Some(completed)).build())
        .send()
        .await
        .expect("CompleteMultipartUpload");
    let (got, checksum, checksum_type) = get_with_checksum(&client, "plain-multipart", Crc64nvme).await;
    assert!(got == parts.concat(), "GET plain-multipart serves the parts in order");
    assert_eq!(checksum, Some(Crc64nvme.of(&got)), "a multipart object without checksums gets a full-object CRC64NVME");
    assert_eq!(checksum_type, Some(ChecksumType::FullObject), "GET plain-multipart checksum type");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_range_get_with_checksum_mode_returns_no_whole_object_checksum() {
    let (_server, client) = TestServer::start_with_bucket(BUCKET).await;
    for size in [SMALL_BYTES, CODED_BYTES] {
        let key = format!("ranged-{size}");
        let data = payload(1600, size);
        put_with_algorithm(&client, &key, &data, Sha256).await;
        let output = client
            .get_object()
            .bucket(BUCKET)
            .key(&key)
            .range("bytes=10-99")
            .checksum_mode(ChecksumMode::Enabled)
            .send()
            .await
            .unwrap_or_else(|e| panic!("range GET {key} with checksum mode: {e:?}"));
        assert_eq!(checksums_present!(output), [], "a range GET of {key} carries no checksum");
        assert!(read_all(output.body).await == data[10..=99], "range GET {key} serves the range");
    }
}

/// The string field `name` of a CLI JSON output.
fn json_field<'a>(json: &'a serde_json::Value, name: &str) -> Option<&'a str> {
    json.get(name).and_then(serde_json::Value::as_str)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_aws_cli_puts_with_each_checksum_algorithm_and_heads_back_the_same_checksum() {
    let (server, client) = TestServer::start_with_bucket(BUCKET).await;
    let scratch = server.scratch_dir();
    let cli = AwsCli::new(&server, &scratch);
    for (index, algorithm) in ALL.into_iter().enumerate() {
        let key = format!("cli-{}", algorithm.name());
        let data = payload(1700 + index as u64, CODED_BYTES);
        let expected = algorithm.of(&data);
        let field = format!("Checksum{}", algorithm.name());
        write_file(&scratch.join(&key), &data);
        let put = cli
            .run_json(
                &scratch,
                &["s3api", "put-object", "--bucket", BUCKET, "--key", &key, "--body", &key, "--checksum-algorithm"]
                    .into_iter()
                    .chain([algorithm.name()])
                    .collect::<Vec<_>>(),
            )
            .await;
        assert_eq!(json_field(&put, &field), Some(expected.as_str()), "put-object {key} said: {put}");
        let head = cli
            .run_json(
                &scratch,
                &["s3api", "head-object", "--bucket", BUCKET, "--key", &key, "--checksum-mode", "ENABLED"],
            )
            .await;
        assert_eq!(json_field(&head, &field), Some(expected.as_str()), "head-object {key} said: {head}");
        assert_eq!(json_field(&head, "ChecksumType"), Some("FULL_OBJECT"), "head-object {key} said: {head}");
        let (sdk_checksum, _) = head_checksum(&client, &key, algorithm).await;
        assert_eq!(sdk_checksum, Some(expected), "the SDK reads the checksum the CLI stored for {key}");
        assert!(get_bytes(&client, BUCKET, &key).await == data, "{key} reads back identical");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_aws_cli_uploads_20_mib_in_parts_with_sha256_and_reads_it_back_identical() {
    let (server, client) = TestServer::start_with_bucket(BUCKET).await;
    let scratch = server.scratch_dir();
    let cli = AwsCli::new(&server, &scratch);
    let data = payload(1800, 20 * MIB);
    write_file(&scratch.join("big.bin"), &data);
    let target = format!("s3://{BUCKET}/big.bin");
    let said = cli.run(&scratch, &["s3", "cp", "big.bin", &target, "--checksum-algorithm", "SHA256"]).await;
    assert!(said.contains("upload:"), "cp said: {said}");

    let parts: Vec<Vec<u8>> = data.chunks(CLI_PART_BYTES).map(<[u8]>::to_vec).collect();
    let (checksum, checksum_type) = head_checksum(&client, "big.bin", Sha256).await;
    assert_eq!(checksum, Some(Sha256.composite(&parts)), "the CLI's three SHA256 parts make a composite checksum");
    assert_eq!(checksum_type, Some(ChecksumType::Composite), "the CLI's multipart upload is composite");

    let said = cli.run(&scratch, &["s3", "cp", &target, "big.down", "--checksum-mode", "ENABLED"]).await;
    assert!(said.contains("download:"), "cp down said: {said}");
    let downloaded = std::fs::read(scratch.join("big.down")).expect("read the downloaded file");
    assert!(downloaded == data, "the 20 MiB file downloads byte-identical");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_put_with_content_md5_and_a_checksum_header_streams_instead_of_being_refused() {
    // Regression: PutObject (which the Rust SDK sends as `?x-id=PutObject`)
    // carrying digest headers must stream to the object layer, not be taken
    // for a small configuration document and refused for its size.
    let (_server, client) = TestServer::start_with_bucket(BUCKET).await;
    let body = payload(4242, 24 * MIB + 5);
    let md5 = BASE64.encode(md5::Md5::digest(&body));
    let put = client
        .put_object()
        .bucket(BUCKET)
        .key("large")
        .content_md5(&md5)
        .checksum_crc64_nvme(Crc64nvme.of(&body))
        .body(ByteStream::from(body.clone()))
        .send()
        .await
        .unwrap_or_else(|e| panic!("a 24 MiB PUT with Content-MD5 and a checksum header: {}", DisplayErrorContext(e)));
    assert_eq!(put.checksum_crc64_nvme(), Some(Crc64nvme.of(&body).as_str()));
    let got = client.get_object().bucket(BUCKET).key("large").send().await.expect("GET");
    let bytes = got.body.collect().await.expect("body").into_bytes();
    assert!(bytes.as_ref() == body.as_slice(), "the large object reads back byte-identical");
}
