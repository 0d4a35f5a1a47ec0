//! The fault matrix of healing (D2, D3): shards deleted, bit-flipped or truncated,
//! a metadata store corrupted or deleted, a whole drive wiped, writes made while a
//! drive was away, and a heal killed halfway. After each fault the server is
//! healed (`bulwark admin heal --wait`, or `scrub --wait` for bit rot), and then:
//!
//! 1. nothing is below full redundancy: the heal queue is empty, nothing waits for
//!    drives, nothing is unrepairable, and another heal pass finds no problem;
//! 2. every object reads back byte-identical;
//! 3. the rebuilt shards are real: with the server stopped, two drives *other*
//!    than the damaged ones are removed, so only the rebuilt shards and the ones
//!    left can make up K = 4, and every object still reads back byte-identical.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use aws_sdk_s3::Client;
use aws_sdk_s3::error::DisplayErrorContext;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use bulwark_e2e::{
    AdminOutput, DRIVE_COUNT, INLINE_SIZE_MAX_BYTES, PART_SIZE_MIN_BYTES, ResponseCapture, TestServer, flip_bit,
    md5_hex, md5_of_stream, metric_value, payload, replug_drive, shard_files, shard_files_in_bucket, truncate_file,
    unplug_drive, wipe_drive,
};
use futures::StreamExt;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use serde_json::Value;

const BUCKET: &str = "heal";
const KIB: usize = 1024;
const MIB: usize = 1024 * KIB;
/// Requests in flight at once when writing or reading many objects.
const CONCURRENCY: usize = 16;
/// Length of one framed piece of a full 1 MiB block in a shard file: a quarter
/// of the block (K = 4) and its 32-byte BLAKE3 hash.
const FRAMED_PIECE_BYTES: u64 = (MIB / 4 + 32) as u64;
/// How long the drive monitor (every 2 s) may take to notice a drive come or go.
const DRIVE_STATE_TIMEOUT: Duration = Duration::from_secs(15);
/// How long the background heal may take to restore a returned drive on its own.
const AUTOMATIC_HEAL_TIMEOUT: Duration = Duration::from_secs(30);
const POLL_INTERVAL: Duration = Duration::from_millis(250);

// ---------------------------------------------------------------------------
// Objects

/// One object of a test, checked by regenerating its parts from their seeds.
#[derive(Debug, Clone)]
struct Stored {
    key: String,
    /// (seed, length) of each part; a single-part object has one.
    parts: Vec<(u64, usize)>,
}

impl Stored {
    fn new(key: String, seed: u64, len: usize) -> Stored {
        Stored { key, parts: vec![(seed, len)] }
    }

    fn is_blob(&self) -> bool {
        self.len() > INLINE_SIZE_MAX_BYTES
    }

    fn len(&self) -> usize {
        self.parts.iter().map(|(_, len)| len).sum()
    }

    fn part_data(&self, index: usize) -> Vec<u8> {
        let (seed, len) = self.parts[index];
        payload(seed, len)
    }

    fn md5(&self) -> String {
        let data: Vec<u8> = (0..self.parts.len()).flat_map(|i| self.part_data(i)).collect();
        md5_hex(&data)
    }

    /// PUTs the object (multipart if it has several parts) and returns the
    /// `x-bulwark-redundancy` receipt of the PUT or the CompleteMultipartUpload.
    async fn put(&self, client: &Client) -> Option<String> {
        let capture = ResponseCapture::new();
        if self.parts.len() == 1 {
            client
                .put_object()
                .bucket(BUCKET)
                .key(&self.key)
                .body(ByteStream::from(self.part_data(0)))
                .customize()
                .interceptor(capture.clone())
                .send()
                .await
                .unwrap_or_else(|e| panic!("PUT {}: {}", self.key, DisplayErrorContext(&e)));
            return capture.redundancy();
        }
        let upload = client
            .create_multipart_upload()
            .bucket(BUCKET)
            .key(&self.key)
            .send()
            .await
            .unwrap_or_else(|e| panic!("CreateMultipartUpload {}: {}", self.key, DisplayErrorContext(&e)));
        let upload_id = upload.upload_id().expect("upload id");
        let mut completed = Vec::new();
        for index in 0..self.parts.len() {
            let number = index as i32 + 1;
            let output = client
                .upload_part()
                .bucket(BUCKET)
                .key(&self.key)
                .upload_id(upload_id)
                .part_number(number)
                .body(ByteStream::from(self.part_data(index)))
                .send()
                .await
                .unwrap_or_else(|e| panic!("UploadPart {} #{number}: {}", self.key, DisplayErrorContext(&e)));
            completed.push(
                CompletedPart::builder().part_number(number).set_e_tag(output.e_tag().map(str::to_owned)).build(),
            );
        }
        client
            .complete_multipart_upload()
            .bucket(BUCKET)
            .key(&self.key)
            .upload_id(upload_id)
            .multipart_upload(CompletedMultipartUpload::builder().set_parts(Some(completed)).build())
            .customize()
            .interceptor(capture.clone())
            .send()
            .await
            .unwrap_or_else(|e| panic!("CompleteMultipartUpload {}: {}", self.key, DisplayErrorContext(&e)));
        capture.redundancy()
    }

    /// GETs the object and compares the MD5 of what arrives with the original's.
    async fn assert_identical(&self, client: &Client, when: &str) {
        let output = client
            .get_object()
            .bucket(BUCKET)
            .key(&self.key)
            .send()
            .await
            .unwrap_or_else(|e| panic!("GET {} {when}: {}", self.key, DisplayErrorContext(&e)));
        let (md5, len) = md5_of_stream(output.body).await;
        assert!(
            len == self.len() as u64 && md5 == self.md5(),
            "{} ({} bytes) reads back as {len} bytes with MD5 {md5}, not the original {}, {when}",
            self.key,
            self.len(),
            self.md5()
        );
    }
}

/// A blob object's size: 130–300 KiB, above the inline threshold, one block.
fn blob_size(seed: u64) -> usize {
    130 * KIB + (seed as usize * 7919) % (170 * KIB)
}

/// `count` objects of 130–300 KiB (erasure-coded, one shard file per drive).
fn blob_objects(prefix: &str, count: usize, first_seed: u64) -> Vec<Stored> {
    (0..count as u64)
        .map(|i| Stored::new(format!("{prefix}/blob-{i:04}"), first_seed + i, blob_size(first_seed + i)))
        .collect()
}

/// `count` objects mixing every storage path: empty, inline (up to exactly the
/// inline threshold), erasure-coded of one block, of several blocks (> 1 MiB),
/// and one multipart object of two parts.
fn mixed_objects(prefix: &str, count: usize, first_seed: u64) -> Vec<Stored> {
    assert!(count >= 10, "a mix needs room for its special objects");
    let mut objects = Vec::with_capacity(count);
    let seed = |i: usize| first_seed + i as u64;
    let key = |i: usize, kind: &str| format!("{prefix}/{i:04}-{kind}");
    objects.push(Stored::new(key(0, "empty"), seed(0), 0));
    objects.push(Stored::new(key(1, "inline-max"), seed(1), INLINE_SIZE_MAX_BYTES));
    objects.push(Stored::new(key(2, "two-blocks"), seed(2), MIB + 5));
    objects.push(Stored::new(key(3, "three-blocks"), seed(3), 2 * MIB + MIB / 2 + 3));
    objects.push(Stored {
        key: key(4, "multipart"),
        parts: vec![(seed(4), PART_SIZE_MIN_BYTES), (seed(4) + 1_000_000, MIB + 1)],
    });
    for i in 5..count {
        let object = if i % 3 == 0 {
            Stored::new(key(i, "inline"), seed(i), 1 + (seed(i) as usize * 4099) % INLINE_SIZE_MAX_BYTES)
        } else {
            Stored::new(key(i, "blob"), seed(i), blob_size(seed(i)))
        };
        objects.push(object);
    }
    objects
}

/// PUTs every object, `CONCURRENCY` at a time; returns (key, receipt) pairs.
async fn put_all(client: &Client, objects: &[Stored]) -> Vec<(String, Option<String>)> {
    futures::stream::iter(objects)
        .map(|object| async move { (object.key.clone(), object.put(client).await) })
        .buffer_unordered(CONCURRENCY)
        .collect()
        .await
}

/// PUTs every object and asserts that each receipt says `expected` (e.g. `6/6`).
async fn put_all_with_receipt(client: &Client, objects: &[Stored], expected: &str) {
    for (key, receipt) in put_all(client, objects).await {
        assert_eq!(receipt.as_deref(), Some(expected), "x-bulwark-redundancy of {key}");
    }
}

/// GETs every object, `CONCURRENCY` at a time, and compares it with the original.
async fn assert_all_identical(client: &Client, objects: &[Stored], when: &str) {
    futures::stream::iter(objects)
        .for_each_concurrent(CONCURRENCY, |object| object.assert_identical(client, when))
        .await;
}

fn blob_count(objects: &[Stored]) -> usize {
    objects.iter().filter(|o| o.is_blob()).count()
}

/// Shard files one drive holds for all of `objects`: one per part of each blob object.
fn shard_file_count(objects: &[Stored]) -> usize {
    objects.iter().filter(|o| o.is_blob()).map(|o| o.parts.len()).sum()
}

// ---------------------------------------------------------------------------
// Healing and its checks

/// Elapsed time of a test's phases, printed with `--nocapture`.
struct Phases {
    name: &'static str,
    started: Instant,
    last: Instant,
}

impl Phases {
    fn start(name: &'static str) -> Phases {
        let now = Instant::now();
        Phases { name, started: now, last: now }
    }

    fn done(&mut self, phase: &str) {
        let now = Instant::now();
        eprintln!(
            "[{}] {phase}: {:.1}s (total {:.1}s)",
            self.name,
            (now - self.last).as_secs_f64(),
            (now - self.started).as_secs_f64()
        );
        self.last = now;
    }
}

/// Runs `bulwark admin <command> --wait` and asserts it succeeded.
async fn admin_pass(server: &TestServer, command: &str) -> AdminOutput {
    let output = server.admin(&[command, "--wait"]).await;
    output.assert_success();
    output
}

/// The `problems found` figure of a heal or scrub report.
#[track_caller]
fn problems_found(report: &AdminOutput) -> u64 {
    report.report_number("problems found").unwrap_or_else(|| {
        panic!("`bulwark admin {}` printed no `problems found` line:\n{}", report.command, report.stdout)
    })
}

fn status_number(status: &Value, field: &str) -> u64 {
    status[field].as_u64().unwrap_or_else(|| panic!("status has no number `{field}`: {status:#}"))
}

/// Whether drive `drive` (1..=6) is online according to a status report.
fn drive_online(server: &TestServer, status: &Value, drive: usize) -> bool {
    let label = server.drive_path(drive).display().to_string();
    let entry = status["drives"]
        .as_array()
        .and_then(|drives| drives.iter().find(|d| d["label"].as_str() == Some(label.as_str())))
        .unwrap_or_else(|| panic!("status lists no drive labelled {label}: {status:#}"));
    entry["online"].as_bool().unwrap_or_else(|| panic!("drive {label} has no `online` flag: {status:#}"))
}

/// Polls the status until drive `drive` is online (or offline), or fails.
async fn wait_for_drive_state(server: &TestServer, drive: usize, online: bool) {
    let deadline = Instant::now() + DRIVE_STATE_TIMEOUT;
    loop {
        let status = server.admin_status().await;
        if drive_online(server, &status, drive) == online {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "drive {drive} is not {} after {DRIVE_STATE_TIMEOUT:?}: {status:#}",
            if online { "online" } else { "offline" }
        );
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}

/// Step 3 after healing: all drives online, nothing queued, nothing waiting for
/// drives, nothing unrepairable, and another heal pass finds no problem.
async fn assert_full_redundancy(server: &TestServer) {
    let status = server.admin_status().await;
    for drive in 1..=DRIVE_COUNT {
        assert!(drive_online(server, &status, drive), "drive {drive} is offline after healing: {status:#}");
    }
    assert_eq!(status_number(&status, "heal_queue"), 0, "heal_queue after healing: {status:#}");
    assert_eq!(status_number(&status, "heal_deferred"), 0, "heal_deferred after healing: {status:#}");
    assert_eq!(status["unrepairable"], serde_json::json!([]), "unrepairable after healing: {status:#}");
    let again = admin_pass(server, "heal").await;
    assert_eq!(problems_found(&again), 0, "a second `heal --wait` still finds problems:\n{}", again.stdout);
}

/// Every shard file on drive `drive`, by its path under `data/`, with `f` of its path.
fn shard_files_by_path<T>(server: &TestServer, drive: usize, f: impl Fn(&Path) -> T) -> BTreeMap<PathBuf, T> {
    let root = server.drive_path(drive).join("data");
    shard_files(&server.drive_path(drive))
        .into_iter()
        .map(|path| (path.strip_prefix(&root).expect("shard files lie under data/").to_path_buf(), f(&path)))
        .collect()
}

/// Asserts that drive `drive` holds the same shard files, of the same lengths,
/// as drive `reference`: every shard of every blob is there and complete.
fn assert_same_shard_files(server: &TestServer, drive: usize, reference: usize) {
    let len = |path: &Path| std::fs::metadata(path).map(|m| m.len()).unwrap_or_else(|e| panic!("stat {path:?}: {e}"));
    let (got, expected) = (shard_files_by_path(server, drive, len), shard_files_by_path(server, reference, len));
    let missing: Vec<_> = expected.iter().filter(|(p, l)| got.get(*p) != Some(*l)).take(5).collect();
    let extra: Vec<_> = got.keys().filter(|p| !expected.contains_key(*p)).take(5).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "drive {drive} holds {} shard files, drive {reference} {}; first missing or of another length on \
         drive {drive}: {missing:?}; first extra: {extra:?}",
        got.len(),
        expected.len()
    );
}

/// MD5 of every shard file on drive `drive`, by its path under `data/`.
fn shard_digests(server: &TestServer, drive: usize) -> BTreeMap<PathBuf, String> {
    shard_files_by_path(server, drive, |path| {
        md5_hex(&std::fs::read(path).unwrap_or_else(|e| panic!("read {path:?}: {e}")))
    })
}

/// Asserts that drive `drive` holds again exactly the shard files it held before
/// the fault, byte for byte: a rebuilt shard is the shard that was lost.
fn assert_shards_restored(server: &TestServer, drive: usize, before: &BTreeMap<PathBuf, String>) {
    let after = shard_digests(server, drive);
    let missing: Vec<_> = before.keys().filter(|p| !after.contains_key(*p)).collect();
    let differing: Vec<_> = before.iter().filter(|(p, md5)| after.get(*p).is_some_and(|m| m != *md5)).collect();
    let extra: Vec<_> = after.keys().filter(|p| !before.contains_key(*p)).collect();
    assert!(
        missing.is_empty() && differing.is_empty() && extra.is_empty(),
        "drive {drive} after healing: {} of {} shard files missing (first {:?}), {} differ from before the fault \
         (first {:?}), {} unexpected (first {:?})",
        missing.len(),
        before.len(),
        missing.first(),
        differing.len(),
        differing.first(),
        extra.len(),
        extra.first()
    );
}

/// Step 5: stops the server, removes two drives that were not damaged, starts it
/// again and reads every object: only the rebuilt shards and the two untouched
/// drives left can make up K = 4.
async fn assert_rebuilt_shards_serve_every_object(
    server: &mut TestServer,
    objects: &[Stored],
    damaged: &[usize],
    removed: [usize; 2],
) {
    for drive in removed {
        assert!(!damaged.contains(&drive), "drive {drive} was damaged; remove another one");
    }
    server.crash();
    for drive in removed {
        unplug_drive(&server.drive_path(drive));
    }
    server.start_again().await;
    let when = format!("with drives {removed:?} removed after drives {damaged:?} were healed");
    assert_all_identical(&server.client(), objects, &when).await;
}

/// Every block of every shard file on `drive`: (file, offset, framed length).
fn shard_blocks(drive: &Path) -> Vec<(PathBuf, u64, u64)> {
    let mut blocks = Vec::new();
    for file in shard_files_in_bucket(drive, BUCKET) {
        let len = std::fs::metadata(&file).expect("stat a shard file").len();
        let mut offset = 0;
        while offset < len {
            let framed = FRAMED_PIECE_BYTES.min(len - offset);
            blocks.push((file.clone(), offset, framed));
            offset += framed;
        }
    }
    blocks
}

// ---------------------------------------------------------------------------
// (a) shard files of two drives deleted

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heal_restores_the_shard_files_of_two_drives_deleted_for_a_thousand_objects() {
    let mut phases = Phases::start("a");
    let (mut server, client) = TestServer::start_with_bucket(BUCKET).await;
    let mut objects = blob_objects("a", 950, 1);
    objects.extend(mixed_objects("a-mixed", 50, 5000));
    assert_eq!(objects.len(), 1000);
    put_all_with_receipt(&client, &objects, "6/6").await;
    phases.done("write 1000 objects");

    // The fault, with the server running: every shard file of drives 1 and 4 gone.
    let damaged = [1, 4];
    let before: Vec<_> = damaged.iter().map(|&d| shard_digests(&server, d)).collect();
    for drive in damaged {
        let files = shard_files_in_bucket(&server.drive_path(drive), BUCKET);
        assert_eq!(files.len(), shard_file_count(&objects), "shard files on drive {drive}");
        for file in files {
            std::fs::remove_file(&file).unwrap_or_else(|e| panic!("rm {file:?}: {e}"));
        }
    }

    let heal = admin_pass(&server, "heal").await;
    phases.done("heal --wait");
    assert_eq!(problems_found(&heal) as usize, blob_count(&objects), "versions found damaged:\n{}", heal.stdout);
    let status = server.admin_status().await;
    assert!(
        status_number(&status, "shards_rebuilt") as usize >= 2 * shard_file_count(&objects),
        "every deleted shard is rebuilt: {status:#}"
    );
    assert_full_redundancy(&server).await;
    for (drive, before) in damaged.iter().zip(&before) {
        assert_shards_restored(&server, *drive, before);
    }
    phases.done("second heal and checks");

    assert_all_identical(&client, &objects, "after healing").await;
    phases.done("read 1000 objects");
    assert_rebuilt_shards_serve_every_object(&mut server, &objects, &damaged, [2, 6]).await;
    phases.done("read 1000 objects without drives 2 and 6");
}

// ---------------------------------------------------------------------------
// (b) bit flips

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scrub_finds_and_heals_bit_flips_in_one_percent_of_shard_blocks() {
    let mut phases = Phases::start("b");
    let (mut server, client) = TestServer::start_with_bucket(BUCKET).await;
    let objects = mixed_objects("b", 150, 1);
    put_all_with_receipt(&client, &objects, "6/6").await;
    phases.done("write");

    // The fault, with the server running: one bit flipped in 1% of all shard
    // blocks, all of them on drives 2 and 5 so that two other drives can go later.
    let damaged = [2, 5];
    let before: Vec<_> = damaged.iter().map(|&d| shard_digests(&server, d)).collect();
    let all_blocks: usize = (1..=DRIVE_COUNT).map(|d| shard_blocks(&server.drive_path(d)).len()).sum();
    let mut candidates: Vec<_> = damaged.iter().flat_map(|&d| shard_blocks(&server.drive_path(d))).collect();
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    candidates.shuffle(&mut rng);
    let flips = all_blocks.div_ceil(100);
    let mut flipped_files = BTreeSet::new();
    for (file, offset, len) in candidates.into_iter().take(flips) {
        flip_bit(&file, offset + rng.random_range(0..len), rng.random_range(0..8));
        flipped_files.insert(file);
    }
    eprintln!("[b] flipped one bit in {flips} of {all_blocks} shard blocks ({} files)", flipped_files.len());

    let scrub = admin_pass(&server, "scrub").await;
    phases.done("scrub --wait");
    let found = problems_found(&scrub) as usize;
    assert!(
        (1..=flipped_files.len()).contains(&found),
        "scrub found {found} damaged versions for {} damaged shard files:\n{}",
        flipped_files.len(),
        scrub.stdout
    );
    let status = server.admin_status().await;
    assert!(
        status_number(&status, "shards_rebuilt") as usize >= flipped_files.len(),
        "every bit-flipped shard is rebuilt: {status:#}"
    );
    assert_full_redundancy(&server).await;
    let again = admin_pass(&server, "scrub").await;
    assert_eq!(problems_found(&again), 0, "a second scrub still finds bit rot:\n{}", again.stdout);
    for (drive, before) in damaged.iter().zip(&before) {
        assert_shards_restored(&server, *drive, before);
    }
    phases.done("second heal and scrub");

    assert_all_identical(&client, &objects, "after scrubbing").await;
    assert_rebuilt_shards_serve_every_object(&mut server, &objects, &damaged, [1, 3]).await;
    phases.done("reads");
}

// ---------------------------------------------------------------------------
// (c) truncated shards

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heal_restores_truncated_shards() {
    let mut phases = Phases::start("c");
    let (mut server, client) = TestServer::start_with_bucket(BUCKET).await;
    let objects = mixed_objects("c", 100, 1);
    put_all_with_receipt(&client, &objects, "6/6").await;
    phases.done("write");

    // The fault, with the server running: every second shard file of drive 3 and
    // every third of drive 6 cut short — to nothing, by one byte, to half, to a
    // bare hash.
    let damaged = [3, 6];
    let before: Vec<_> = damaged.iter().map(|&d| shard_digests(&server, d)).collect();
    let mut truncated = 0;
    for (drive, every) in [(3, 2), (6, 3)] {
        for (index, file) in shard_files_in_bucket(&server.drive_path(drive), BUCKET).iter().enumerate() {
            if index % every != 0 {
                continue;
            }
            let len = std::fs::metadata(file).expect("stat a shard file").len();
            let cut = [0, len - 1, len / 2, 32][(index / every) % 4];
            truncate_file(file, cut);
            truncated += 1;
        }
    }

    let heal = admin_pass(&server, "heal").await;
    phases.done("heal --wait");
    assert!(problems_found(&heal) >= 1, "heal finds the truncated shards:\n{}", heal.stdout);
    let status = server.admin_status().await;
    assert!(status_number(&status, "shards_rebuilt") >= truncated, "every truncated shard is rebuilt: {status:#}");
    assert_full_redundancy(&server).await;
    for (drive, before) in damaged.iter().zip(&before) {
        assert_shards_restored(&server, *drive, before);
    }
    phases.done("second heal and checks");

    assert_all_identical(&client, &objects, "after healing").await;
    assert_rebuilt_shards_serve_every_object(&mut server, &objects, &damaged, [1, 4]).await;
    phases.done("reads");
}

// ---------------------------------------------------------------------------
// (d) metadata of one drive corrupt or missing

fn metadata_store(server: &TestServer, drive: usize) -> PathBuf {
    server.drive_path(drive).join(".bulwark").join("meta.redb")
}

/// Writes a mix, stops the server, damages drive 4's metadata store with
/// `damage`, restarts, heals, and checks the drive's records are restored.
async fn check_metadata_store_rebuilt(name: &'static str, damage: impl FnOnce(&Path)) {
    let mut phases = Phases::start(name);
    let (mut server, client) = TestServer::start_with_bucket(BUCKET).await;
    let objects = mixed_objects(name, 100, 1);
    put_all_with_receipt(&client, &objects, "6/6").await;
    phases.done("write");

    let damaged = [4];
    server.crash();
    damage(&metadata_store(&server, 4));
    server.start_again().await;
    phases.done("restart");

    admin_pass(&server, "heal").await;
    phases.done("heal --wait");
    let status = server.admin_status().await;
    assert!(
        status_number(&status, "records_restored") as usize >= objects.len(),
        "every record of drive 4 is restored: {status:#}"
    );
    assert_full_redundancy(&server).await;
    phases.done("second heal and checks");

    assert_all_identical(&server.client(), &objects, "after healing").await;
    drop(client);
    assert_rebuilt_shards_serve_every_object(&mut server, &objects, &damaged, [1, 2]).await;
    phases.done("reads");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heal_rebuilds_a_metadata_store_overwritten_with_garbage_in_the_middle() {
    check_metadata_store_rebuilt("d-garbage", |store| {
        let len = std::fs::metadata(store).expect("stat meta.redb").len();
        assert!(len >= 3 * 4096, "meta.redb is only {len} bytes");
        // The middle third of the file, in random bytes.
        let garbage = payload(99, (len / 3) as usize);
        use std::os::unix::fs::FileExt;
        let file = std::fs::OpenOptions::new().write(true).open(store).expect("open meta.redb");
        file.write_all_at(&garbage, len / 3).expect("overwrite the middle of meta.redb");
        file.sync_all().expect("sync meta.redb");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heal_rebuilds_a_deleted_metadata_store() {
    check_metadata_store_rebuilt("d-deleted", |store| {
        std::fs::remove_file(store).expect("delete meta.redb");
    })
    .await;
}

// ---------------------------------------------------------------------------
// (e) a whole drive wiped

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heal_rebuilds_a_drive_wiped_while_the_server_was_stopped() {
    let mut phases = Phases::start("e");
    let (mut server, client) = TestServer::start_with_bucket(BUCKET).await;
    let objects = mixed_objects("e", 100, 1);
    put_all_with_receipt(&client, &objects, "6/6").await;
    phases.done("write");

    let damaged = [5];
    let before = shard_digests(&server, 5);
    server.crash();
    wipe_drive(&server.drive_path(5));
    server.start_again().await;
    phases.done("restart");

    admin_pass(&server, "heal").await;
    phases.done("heal --wait");
    let status = server.admin_status().await;
    assert!(status_number(&status, "healed") as usize >= objects.len(), "every version is healed: {status:#}");
    assert_full_redundancy(&server).await;
    assert_shards_restored(&server, 5, &before);
    phases.done("second heal and checks");

    assert_all_identical(&server.client(), &objects, "after healing").await;
    drop(client);
    assert_rebuilt_shards_serve_every_object(&mut server, &objects, &damaged, [3, 6]).await;
    phases.done("reads");
}

// ---------------------------------------------------------------------------
// (f) writes while a drive is offline

/// Unplugs drive `drive` while the server runs, waits until the server sees it
/// offline, and writes `objects`, each acknowledged as 5/6.
async fn write_with_drive_unplugged(server: &TestServer, client: &Client, drive: usize, objects: &[Stored]) {
    unplug_drive(&server.drive_path(drive));
    wait_for_drive_state(server, drive, false).await;
    put_all_with_receipt(client, objects, "5/6").await;
    let status = server.admin_status().await;
    let below = status_number(&status, "heal_queue") + status_number(&status, "heal_deferred");
    assert!(below as usize >= objects.len(), "degraded writes wait for healing: {status:#}");
}

/// Polls the status, without asking for a heal, until nothing is queued or
/// deferred and at least `healed` versions were healed, or fails.
async fn wait_for_automatic_heal(server: &TestServer, healed: usize) {
    let deadline = Instant::now() + AUTOMATIC_HEAL_TIMEOUT;
    loop {
        let status = server.admin_status().await;
        let idle = status_number(&status, "heal_queue") == 0 && status_number(&status, "heal_deferred") == 0;
        if idle && status_number(&status, "healed") as usize >= healed {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the degraded writes are not healed {AUTOMATIC_HEAL_TIMEOUT:?} after the drive returned: {status:#}"
        );
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_made_while_a_drive_was_offline_are_healed_without_an_admin_command_when_it_returns() {
    let mut phases = Phases::start("f-running");
    let (mut server, client) = TestServer::start_with_bucket(BUCKET).await;
    let before = mixed_objects("f-before", 30, 1);
    put_all_with_receipt(&client, &before, "6/6").await;
    let degraded = mixed_objects("f-degraded", 60, 1000);
    write_with_drive_unplugged(&server, &client, 2, &degraded).await;
    phases.done("write, then write degraded");

    replug_drive(&server.drive_path(2));
    wait_for_drive_state(&server, 2, true).await;
    wait_for_automatic_heal(&server, degraded.len()).await;
    phases.done("automatic heal");
    assert_same_shard_files(&server, 2, 1);

    admin_pass(&server, "heal").await;
    assert_full_redundancy(&server).await;
    phases.done("heal and checks");

    let objects: Vec<Stored> = before.into_iter().chain(degraded).collect();
    assert_all_identical(&client, &objects, "after the drive returned").await;
    assert_rebuilt_shards_serve_every_object(&mut server, &objects, &[2], [4, 5]).await;
    phases.done("reads");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_made_while_a_drive_was_offline_are_healed_after_a_kill_and_a_restart_with_it_back() {
    let mut phases = Phases::start("f-restart");
    let (mut server, client) = TestServer::start_with_bucket(BUCKET).await;
    let before = mixed_objects("f-before", 30, 1);
    put_all_with_receipt(&client, &before, "6/6").await;
    let degraded = mixed_objects("f-degraded", 60, 1000);
    write_with_drive_unplugged(&server, &client, 2, &degraded).await;
    phases.done("write, then write degraded");

    server.crash();
    replug_drive(&server.drive_path(2));
    server.start_again().await;
    wait_for_automatic_heal(&server, degraded.len()).await;
    phases.done("restart and automatic heal");
    assert_same_shard_files(&server, 2, 1);

    admin_pass(&server, "heal").await;
    assert_full_redundancy(&server).await;
    phases.done("heal and checks");

    let objects: Vec<Stored> = before.into_iter().chain(degraded).collect();
    assert_all_identical(&server.client(), &objects, "after the restart").await;
    drop(client);
    assert_rebuilt_shards_serve_every_object(&mut server, &objects, &[2], [4, 5]).await;
    phases.done("reads");
}

// ---------------------------------------------------------------------------
// (g) kill -9 during a heal

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_heal_killed_halfway_completes_after_a_restart() {
    let mut phases = Phases::start("g");
    let (mut server, client) = TestServer::start_with_bucket(BUCKET).await;
    let mut objects = blob_objects("g", 300, 1);
    objects.extend(mixed_objects("g-mixed", 20, 1000));
    put_all_with_receipt(&client, &objects, "6/6").await;
    phases.done("write");

    // A blank disk in place of drive 6: formatted at start-up, then rebuilt.
    let damaged = [6];
    let before = shard_digests(&server, 6);
    server.crash();
    wipe_drive(&server.drive_path(6));
    std::fs::create_dir(server.drive_path(6)).expect("an empty directory for the new drive 6");
    server.start_again().await;
    // Start-up's scan starts healing at once; `heal --wait` joins in. The kill
    // comes about 0.5 s later, or as soon as half the objects are healed.
    let heal = server.admin_spawn(&["heal", "--wait"]);
    let kill_at = Instant::now() + Duration::from_millis(500);
    let healed = loop {
        let status = server.admin_status().await;
        let healed = status_number(&status, "healed") as usize;
        assert!(
            status_number(&status, "heal_queue") > 0,
            "the heal finished before the server could be killed; make the damage larger: {status:#}"
        );
        if healed > 0 && (Instant::now() >= kill_at || healed >= objects.len() / 2) {
            break healed;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    server.crash();
    phases.done(&format!("restart, heal, kill -9 after {healed} versions healed"));
    let interrupted = heal.finish().await;
    assert!(!interrupted.success, "`heal --wait` reported success although the server was killed:\n{interrupted:?}");

    server.start_again().await;
    admin_pass(&server, "heal").await;
    phases.done("restart and heal --wait");
    assert_full_redundancy(&server).await;
    assert_shards_restored(&server, 6, &before);
    for drive in 1..=DRIVE_COUNT {
        let tmp = server.drive_path(drive).join(".bulwark").join("tmp");
        let leftovers: Vec<_> = std::fs::read_dir(&tmp)
            .unwrap_or_else(|e| panic!("list {tmp:?}: {e}"))
            .flatten()
            .map(|e| e.file_name())
            .collect();
        assert!(leftovers.is_empty(), "drive {drive} keeps temporary files of the killed heal: {leftovers:?}");
    }
    phases.done("second heal and checks");

    assert_all_identical(&server.client(), &objects, "after the interrupted heal").await;
    drop(client);
    assert_rebuilt_shards_serve_every_object(&mut server, &objects, &damaged, [1, 3]).await;
    phases.done("reads");
}

// ---------------------------------------------------------------------------
// Metrics

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsigned_metrics_count_objects_below_full_redundancy_until_they_are_healed() {
    let (server, client) = TestServer::start_with_bucket(BUCKET).await;
    put_all_with_receipt(&client, &mixed_objects("m-before", 10, 1), "6/6").await;
    let degraded = mixed_objects("m-degraded", 12, 100);
    write_with_drive_unplugged(&server, &client, 3, &degraded).await;

    let drive_3 = format!("drive=\"{}\"", server.drive_path(3).display());
    let metrics = server.metrics().await;
    let below = metric_value(&metrics, "bulwark_objects_below_full_redundancy");
    assert!(below.is_some_and(|b| b >= degraded.len() as f64), "with drive 3 away:\n{metrics}");
    let offline: Vec<&str> =
        metrics.lines().filter(|l| l.starts_with("bulwark_drive_online{") && l.ends_with(" 0")).collect();
    assert!(offline.len() == 1 && offline[0].contains(&drive_3), "only drive 3 is offline:\n{metrics}");

    replug_drive(&server.drive_path(3));
    wait_for_drive_state(&server, 3, true).await;
    admin_pass(&server, "heal").await;
    let metrics = server.metrics().await;
    assert_eq!(metric_value(&metrics, "bulwark_objects_below_full_redundancy"), Some(0.0), "{metrics}");
    assert_eq!(metric_value(&metrics, "bulwark_unrepairable_objects"), Some(0.0), "{metrics}");
    let healed = metric_value(&metrics, "bulwark_healed_total").unwrap_or(0.0);
    assert!(healed >= degraded.len() as f64, "bulwark_healed_total {healed}:\n{metrics}");
    let online = metrics.lines().filter(|l| l.starts_with("bulwark_drive_online{") && l.ends_with(" 1")).count();
    assert_eq!(online, DRIVE_COUNT, "every drive is online again:\n{metrics}");
}
