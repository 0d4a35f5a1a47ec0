//! Acknowledged objects survive the loss of any two drives: deleted shard files,
//! bit-flipped shards, a whole facility wiped or unplugged across a restart. Writes
//! say how durable they are, and are refused when fewer than W = 5 drives can take
//! them.

use aws_sdk_s3::Client;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use bulwark_e2e::{
    DRIVE_COUNT, INLINE_SIZE_MAX_BYTES, PART_SIZE_MIN_BYTES, ResponseCapture, TestServer, corrupt_middle,
    create_bucket, error_code, get_bytes, http_status, md5_hex, payload, put_bytes, put_with_redundancy, read_all,
    shard_files_in_bucket, unplug_drive, wipe_drive,
};

const BUCKET: &str = "durable";
const MIB: usize = 1024 * 1024;

/// Every unordered pair of drives, (1,2) through (5,6).
fn drive_pairs() -> Vec<(usize, usize)> {
    let mut pairs = Vec::new();
    for a in 1..=DRIVE_COUNT {
        for b in a + 1..=DRIVE_COUNT {
            pairs.push((a, b));
        }
    }
    pairs
}

/// One object of a fault test, checked by regenerating its parts from their seeds.
#[derive(Debug, Clone)]
struct Stored {
    bucket: String,
    key: String,
    /// (seed, length) of each part; a single-part object has one.
    parts: Vec<(u64, usize)>,
}

impl Stored {
    fn new(bucket: &str, key: &str, seed: u64, len: usize) -> Stored {
        Stored { bucket: bucket.to_owned(), key: key.to_owned(), parts: vec![(seed, len)] }
    }

    fn part_data(&self, index: usize) -> Vec<u8> {
        let (seed, len) = self.parts[index];
        payload(seed, len)
    }

    fn data(&self) -> Vec<u8> {
        (0..self.parts.len()).flat_map(|i| self.part_data(i)).collect()
    }

    async fn put(&self, client: &Client) {
        if self.parts.len() == 1 {
            put_bytes(client, &self.bucket, &self.key, self.part_data(0)).await;
            return;
        }
        let upload = client
            .create_multipart_upload()
            .bucket(&self.bucket)
            .key(&self.key)
            .send()
            .await
            .expect("CreateMultipartUpload");
        let upload_id = upload.upload_id().expect("upload id");
        let mut completed = Vec::new();
        for index in 0..self.parts.len() {
            let number = index as i32 + 1;
            let output = client
                .upload_part()
                .bucket(&self.bucket)
                .key(&self.key)
                .upload_id(upload_id)
                .part_number(number)
                .body(ByteStream::from(self.part_data(index)))
                .send()
                .await
                .expect("UploadPart");
            completed.push(
                CompletedPart::builder().part_number(number).set_e_tag(output.e_tag().map(str::to_owned)).build(),
            );
        }
        client
            .complete_multipart_upload()
            .bucket(&self.bucket)
            .key(&self.key)
            .upload_id(upload_id)
            .multipart_upload(CompletedMultipartUpload::builder().set_parts(Some(completed)).build())
            .send()
            .await
            .expect("CompleteMultipartUpload");
    }

    /// GETs the object whole and by one range, and compares both with the original.
    async fn assert_intact(&self, client: &Client, when: &str) {
        let data = self.data();
        let len = data.len();
        let got = get_bytes(client, &self.bucket, &self.key).await;
        assert!(
            got.len() == len && md5_hex(&got) == md5_hex(&data),
            "{}/{} ({len} bytes) differs {when}",
            self.bucket,
            self.key,
        );
        let (first, last) = (len / 3, len / 3 + len / 4);
        let output = client
            .get_object()
            .bucket(&self.bucket)
            .key(&self.key)
            .range(format!("bytes={first}-{last}"))
            .send()
            .await
            .unwrap_or_else(|e| panic!("range GET {}/{} {when}: {e:?}", self.bucket, self.key));
        assert!(
            read_all(output.body).await == data[first..=last],
            "range {first}-{last} of {}/{} differs {when}",
            self.bucket,
            self.key
        );
    }
}

/// Writes one erasure-coded object per pair of drives, each in its own bucket, so
/// that its shard files can be found on every drive by bucket.
async fn one_object_per_drive_pair(client: &Client) -> Vec<((usize, usize), Stored)> {
    let mut stored = Vec::new();
    for (i, (a, b)) in drive_pairs().into_iter().enumerate() {
        let bucket = format!("pair-{a}-{b}");
        create_bucket(client, &bucket).await;
        let object = Stored::new(&bucket, "object", 100 + i as u64, MIB + 1000 * i + 7);
        object.put(client).await;
        stored.push(((a, b), object));
    }
    stored
}

/// A mix that covers every storage path: inline, single-part coded, multipart.
async fn mixed_objects(client: &Client) -> Vec<Stored> {
    let mut multipart = Stored::new(BUCKET, "multipart", 4, PART_SIZE_MIN_BYTES);
    multipart.parts.push((5, MIB + 1));
    let objects = vec![
        Stored::new(BUCKET, "inline", 1, 50_000),
        Stored::new(BUCKET, "one-mib", 2, MIB + 5),
        Stored::new(BUCKET, "three-mib", 3, 3 * MIB + 11),
        multipart,
    ];
    for object in &objects {
        object.put(client).await;
    }
    objects
}

async fn assert_all_intact(client: &Client, objects: &[Stored], when: &str) {
    for object in objects {
        object.assert_intact(client, when).await;
    }
}

#[track_caller]
fn assert_redundancy(receipt: Option<String>, expected: &str, what: &str) {
    assert_eq!(receipt.as_deref(), Some(expected), "x-bulwark-redundancy of {what}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn put_copy_and_complete_receipts_say_six_of_six_with_all_drives_up() {
    let (_server, client) = TestServer::start_with_bucket(BUCKET).await;
    let small = put_with_redundancy(&client, BUCKET, "small", payload(1, 1000)).await.expect("PUT small");
    assert_redundancy(small, "6/6", "an inline PUT");
    let large = put_with_redundancy(&client, BUCKET, "large", payload(2, MIB)).await.expect("PUT large");
    assert_redundancy(large, "6/6", "an erasure-coded PUT");

    let capture = ResponseCapture::new();
    client
        .copy_object()
        .bucket(BUCKET)
        .key("copy")
        .copy_source(format!("{BUCKET}/large"))
        .customize()
        .interceptor(capture.clone())
        .send()
        .await
        .expect("CopyObject");
    assert_redundancy(capture.redundancy(), "6/6", "CopyObject");

    let upload = client.create_multipart_upload().bucket(BUCKET).key("mp").send().await.expect("CreateMultipartUpload");
    let upload_id = upload.upload_id().expect("upload id");
    let part = client
        .upload_part()
        .bucket(BUCKET)
        .key("mp")
        .upload_id(upload_id)
        .part_number(1)
        .body(ByteStream::from(payload(3, MIB)))
        .send()
        .await
        .expect("UploadPart");
    let capture = ResponseCapture::new();
    client
        .complete_multipart_upload()
        .bucket(BUCKET)
        .key("mp")
        .upload_id(upload_id)
        .multipart_upload(
            CompletedMultipartUpload::builder()
                .parts(CompletedPart::builder().part_number(1).set_e_tag(part.e_tag().map(str::to_owned)).build())
                .build(),
        )
        .customize()
        .interceptor(capture.clone())
        .send()
        .await
        .expect("CompleteMultipartUpload");
    assert_redundancy(capture.redundancy(), "6/6", "CompleteMultipartUpload");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_objects_get_one_shard_file_per_drive_and_small_ones_none() {
    let (server, client) = TestServer::start_with_bucket("small").await;
    put_bytes(&client, "small", "inline", payload(1, INLINE_SIZE_MAX_BYTES)).await;
    create_bucket(&client, "large").await;
    put_bytes(&client, "large", "coded", payload(2, 2 * MIB)).await;

    let mut sizes = Vec::new();
    for drive in 1..=DRIVE_COUNT {
        let path = server.drive_path(drive);
        assert!(path.join(".bulwark/format.json").is_file(), "drive {drive} has .bulwark/format.json");
        assert!(
            shard_files_in_bucket(&path, "small").is_empty(),
            "an object of {INLINE_SIZE_MAX_BYTES} bytes is inline, yet drive {drive} has shards"
        );
        let files = shard_files_in_bucket(&path, "large");
        assert_eq!(files.len(), 1, "drive {drive} shard files: {files:?}");
        sizes.push(std::fs::metadata(&files[0]).expect("stat a shard").len());
    }
    assert!(sizes.iter().all(|s| *s == sizes[0]), "all shards of one object have one size: {sizes:?}");
    assert!(sizes[0] as usize >= 2 * MIB / 4, "a shard holds at least a quarter of the object: {sizes:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_survives_deleting_the_shard_files_of_any_two_drives() {
    let server = TestServer::start().await;
    let client = server.client();
    let stored = one_object_per_drive_pair(&client).await;

    for ((a, b), object) in &stored {
        for drive in [a, b] {
            let files = shard_files_in_bucket(&server.drive_path(*drive), &object.bucket);
            assert!(!files.is_empty(), "drive {drive} holds a shard of {}", object.bucket);
            for file in files {
                std::fs::remove_file(&file).expect("delete a shard file");
            }
        }
    }
    for ((a, b), object) in &stored {
        let when = format!("without the shards on drives {a} and {b}");
        object.assert_intact(&client, &when).await;
        // A second read, after whatever the first one triggered (a heal), too.
        object.assert_intact(&client, &when).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_survives_corrupting_the_shards_of_any_two_drives() {
    let server = TestServer::start().await;
    let client = server.client();
    let stored = one_object_per_drive_pair(&client).await;

    for ((a, b), object) in &stored {
        for drive in [a, b] {
            let files = shard_files_in_bucket(&server.drive_path(*drive), &object.bucket);
            assert!(!files.is_empty(), "drive {drive} holds a shard of {}", object.bucket);
            for file in files {
                corrupt_middle(&file);
            }
        }
    }
    for ((a, b), object) in &stored {
        let when = format!("with the shards on drives {a} and {b} corrupted");
        object.assert_intact(&client, &when).await;
        object.assert_intact(&client, &when).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_survives_wiping_any_one_facility() {
    for facility in 1..=3 {
        let (server, client) = TestServer::start_with_bucket(BUCKET).await;
        let objects = mixed_objects(&client).await;
        for drive in server.facility_drives(facility) {
            wipe_drive(&drive);
        }
        let when = format!("with facility {facility} wiped");
        assert_all_intact(&client, &objects, &when).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_survives_a_restart_with_a_facility_wiped_before_it() {
    let (mut server, client) = TestServer::start_with_bucket(BUCKET).await;
    let objects = mixed_objects(&client).await;

    server.crash();
    for drive in server.facility_drives(2) {
        wipe_drive(&drive);
    }
    server.start_again().await;
    let client = server.client();
    assert_all_intact(&client, &objects, "after a restart without facility 2").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_survives_two_drives_unplugged_while_running() {
    let (server, client) = TestServer::start_with_bucket(BUCKET).await;
    let objects = mixed_objects(&client).await;

    unplug_drive(&server.drive_path(2));
    unplug_drive(&server.drive_path(6));
    assert_all_intact(&client, &objects, "with drives 2 and 6 unplugged").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_survives_a_restart_with_two_drives_unplugged() {
    let (mut server, client) = TestServer::start_with_bucket(BUCKET).await;
    let objects = mixed_objects(&client).await;

    server.crash();
    unplug_drive(&server.drive_path(1));
    unplug_drive(&server.drive_path(4));
    server.start_again().await;
    let client = server.client();
    assert_all_intact(&client, &objects, "after a restart without drives 1 and 4").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_put_with_one_drive_gone_succeeds_and_its_receipt_says_five_of_six() {
    let (server, _client) = TestServer::start_with_bucket(BUCKET).await;
    let client = server.client_without_retries();
    wipe_drive(&server.drive_path(3));

    let data = payload(1, 2 * MIB);
    let receipt = put_with_redundancy(&client, BUCKET, "degraded", data.clone())
        .await
        .expect("a PUT with five of six drives is accepted");
    assert_redundancy(receipt, "5/6", "a PUT with drive 3 gone");
    assert!(get_bytes(&client, BUCKET, "degraded").await == data);
}

/// Asserts a PUT is refused with 503 ServiceUnavailable (or SlowDown).
async fn assert_put_refused(client: &Client, key: &str, len: usize, gone: &str) {
    let result = put_with_redundancy(client, BUCKET, key, payload(9, len)).await;
    let error = match result {
        Ok(receipt) => panic!("a PUT of {len} bytes with {gone} gone was accepted ({receipt:?})"),
        Err(error) => error,
    };
    let code = error_code(&error);
    assert!(
        http_status(&error) == Some(503) && matches!(code.as_deref(), Some("ServiceUnavailable" | "SlowDown")),
        "a PUT of {len} bytes with {gone} gone: expected 503 ServiceUnavailable, got {:?} {code:?}",
        http_status(&error)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn put_is_refused_with_503_when_three_drives_are_gone() {
    let (server, _client) = TestServer::start_with_bucket(BUCKET).await;
    let client = server.client_without_retries();
    for drive in [1, 3, 5] {
        wipe_drive(&server.drive_path(drive));
    }
    assert_put_refused(&client, "large", 2 * MIB, "drives 1, 3 and 5").await;
    assert_put_refused(&client, "small", 1000, "drives 1, 3 and 5").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn put_is_refused_with_503_when_a_facility_is_gone_because_write_quorum_is_five() {
    let (server, _client) = TestServer::start_with_bucket(BUCKET).await;
    let client = server.client_without_retries();
    for drive in server.facility_drives(3) {
        wipe_drive(&drive);
    }
    assert_put_refused(&client, "large", 2 * MIB, "facility 3").await;
}

/// GETs an object whose data cannot be rebuilt: the request must fail with a server
/// error, or its body must break off; what arrives must never pass for the object.
async fn assert_get_fails_rather_than_lies(client: &Client, object: &Stored, damage: &str) {
    let output = match client.get_object().bucket(&object.bucket).key(&object.key).send().await {
        Err(error) => {
            let status = http_status(&error);
            assert!(status.is_none_or(|s| s >= 500), "GET with {damage} failed with {status:?}, not a server error");
            return;
        }
        Ok(output) => output,
    };
    match output.body.collect().await {
        Err(_) => {}
        Ok(body) => {
            let got = body.into_bytes();
            let data = object.data();
            assert!(
                got.len() == data.len() && md5_hex(&got) == md5_hex(&data),
                "GET with {damage} served {} bytes that are not the object",
                got.len()
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_never_serves_wrong_bytes_when_three_shards_are_missing_or_corrupt() {
    let (server, client) = TestServer::start_with_bucket("missing").await;
    create_bucket(&client, "corrupt").await;
    let missing = Stored::new("missing", "object", 1, 2 * MIB + 3);
    let corrupt = Stored::new("corrupt", "object", 2, 2 * MIB + 5);
    missing.put(&client).await;
    corrupt.put(&client).await;

    for drive in [1, 3, 5] {
        let path = server.drive_path(drive);
        for file in shard_files_in_bucket(&path, "missing") {
            std::fs::remove_file(&file).expect("delete a shard file");
        }
        for file in shard_files_in_bucket(&path, "corrupt") {
            corrupt_middle(&file);
        }
    }
    assert_get_fails_rather_than_lies(&client, &missing, "three shards missing").await;
    assert_get_fails_rather_than_lies(&client, &corrupt, "three shards corrupt").await;
}
