//! Orphan reclamation removes exactly the blob files no record names, once
//! they are old, and nothing while it cannot see every reference. Real local
//! drives in a temporary directory; nothing is mocked.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bulwark_object::testing::{body, local_store, read_object, set_drive_online};
use bulwark_object::{
    CompletedPart, ORPHAN_GRACE, ObjectStore, PutOptions, ReclaimReport, VersionListParams, Versioning, WriteCondition,
};
use bulwark_storage::{Drive, MetaOp};

const BUCKET: &str = "bucket";
const MIB: usize = 1024 * 1024;

/// One pass that confirms at once what an earlier pass found.
async fn pass(store: &ObjectStore) -> ReclaimReport {
    store.reclaim_orphans(ORPHAN_GRACE, Duration::ZERO, None).await
}

/// Every blob file of every drive under `dir`.
fn blob_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(path) = stack.pop() {
        for entry in std::fs::read_dir(&path).expect("read dir") {
            let entry = entry.expect("entry");
            let path = entry.path();
            if entry.file_type().expect("type").is_dir() {
                if !path.ends_with(".bulwark") {
                    stack.push(path);
                }
            } else if path.components().any(|c| c.as_os_str() == "data") {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

/// Makes every blob file under `dir` look last written two days ago.
fn age_all_blobs(dir: &Path) {
    let then = SystemTime::now() - 2 * ORPHAN_GRACE;
    for path in blob_files(dir) {
        std::fs::File::options()
            .write(true)
            .open(&path)
            .and_then(|file| file.set_modified(then))
            .unwrap_or_else(|e| panic!("age {}: {e}", path.display()));
    }
}

/// What an interrupted write leaves: a committed blob that no record names.
async fn orphan(drive: &Arc<dyn Drive>, bucket: &str, seed: u8) -> [u8; 16] {
    let id = [seed; 16];
    let mut writer = drive.create_blob(bucket, id).await.expect("create blob");
    writer.write(vec![bytes::Bytes::from(vec![seed; 70_000])]).await.expect("write blob");
    writer.commit().await.expect("commit blob");
    id
}

fn blob_path(dir: &Path, position: usize, bucket: &str, id: [u8; 16]) -> PathBuf {
    let hex = hex::encode(id);
    dir.join(format!("drive-{position}")).join("data").join(bucket).join(&hex[..2]).join(hex)
}

/// A store with a current object, an overwritten (noncurrent) version, a
/// multipart upload in progress and a completed multipart object.
async fn populated_store(dir: &Path) -> (ObjectStore, Vec<Arc<dyn Drive>>, String) {
    let (store, drives) = local_store(dir).await;
    store.make_bucket(BUCKET).await.expect("bucket");
    store.put_bucket_versioning(BUCKET, Versioning::Enabled).await.expect("versioning");
    for (key, seed) in [("overwritten", 1u8), ("overwritten", 2), ("current", 3)] {
        let data = vec![seed; 3 * MIB];
        store.put_object(BUCKET, key, body(data), Some(3 * MIB as u64), PutOptions::default()).await.expect("put");
    }
    let completed = store.create_multipart_upload(BUCKET, "assembled", PutOptions::default(), None).await.expect("mpu");
    let mut parts = Vec::new();
    for number in 1..=2u32 {
        let data = vec![number as u8; 5 * MIB];
        let put = store
            .upload_part(
                BUCKET,
                "assembled",
                &completed,
                number,
                body(data),
                Some(5 * MIB as u64),
                PutOptions::default(),
            )
            .await
            .expect("part");
        parts.push(CompletedPart { number, etag: put.etag, checksum: None });
    }
    store
        .complete_multipart_upload(BUCKET, "assembled", &completed, &parts, None, &WriteCondition::None)
        .await
        .expect("complete");
    let pending = store.create_multipart_upload(BUCKET, "pending", PutOptions::default(), None).await.expect("mpu");
    store
        .upload_part(
            BUCKET,
            "pending",
            &pending,
            1,
            body(vec![9; 5 * MIB]),
            Some(5 * MIB as u64),
            PutOptions::default(),
        )
        .await
        .expect("pending part");
    (store, drives, pending)
}

async fn assert_everything_reads_back(store: &ObjectStore, pending: &str) {
    assert_eq!(read_object(store, BUCKET, "current", None).await.expect("current"), vec![3u8; 3 * MIB]);
    assert_eq!(read_object(store, BUCKET, "overwritten", None).await.expect("overwritten"), vec![2u8; 3 * MIB]);
    let params = VersionListParams {
        prefix: "overwritten".into(),
        delimiter: None,
        key_marker: None,
        version_id_marker: None,
        max_keys: 10,
    };
    let versions = store.list_object_versions(BUCKET, params).await.expect("versions");
    let old = versions.versions.iter().find(|v| !v.is_latest).expect("the noncurrent version");
    let old_id = old.version_id.clone().expect("a version id");
    assert_eq!(read_object(store, BUCKET, "overwritten", Some(&old_id)).await.expect("old"), vec![1u8; 3 * MIB]);
    let assembled = read_object(store, BUCKET, "assembled", None).await.expect("assembled");
    assert_eq!(assembled.len(), 10 * MIB);
    assert!(assembled[..5 * MIB].iter().all(|&b| b == 1) && assembled[5 * MIB..].iter().all(|&b| b == 2));
    let (_, parts, _) = store.list_parts(BUCKET, "pending", pending).await.expect("the upload goes on");
    assert_eq!(parts.len(), 1, "the pending upload keeps its part");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn old_blobs_no_record_names_are_removed_on_a_second_sighting_and_every_referenced_blob_stays() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (store, drives, pending) = populated_store(dir.path()).await;
    let a = orphan(&drives[0], BUCKET, 0xa1).await;
    let b = orphan(&drives[3], BUCKET, 0xb2).await;
    store.make_bucket("gone").await.expect("bucket");
    let c = orphan(&drives[5], "gone", 0xc3).await;
    store.delete_bucket("gone").await.expect("an empty bucket goes, its stray blob stays");
    let referenced = blob_files(dir.path()).len() - 3;

    // Young orphans wait: they may be a write whose records are being committed.
    for _ in 0..2 {
        assert_eq!(pass(&store).await, ReclaimReport::default());
    }
    assert_eq!(blob_files(dir.path()).len(), referenced + 3);

    age_all_blobs(dir.path());
    let first = pass(&store).await;
    assert_eq!((first.removed, first.suspected, first.skipped), (0, 3, 0), "a first sighting only suspects");
    let second = pass(&store).await;
    assert_eq!((second.removed, second.suspected, second.skipped), (3, 0, 0), "exactly the three orphans");
    for (position, bucket, id) in [(0, BUCKET, a), (3, BUCKET, b), (5, "gone", c)] {
        assert!(!blob_path(dir.path(), position, bucket, id).exists(), "orphan {} left", hex::encode(id));
    }
    assert_eq!(blob_files(dir.path()).len(), referenced, "every referenced blob stays");
    assert_everything_reads_back(&store, &pending).await;
    assert_eq!(pass(&store).await, ReclaimReport::default(), "a third pass finds nothing");
    assert_eq!(store.status().orphan_blobs_removed, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_orphan_is_removed_only_once_its_first_sighting_is_old_enough() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (store, drives, _) = populated_store(dir.path()).await;
    let stray = orphan(&drives[2], BUCKET, 0x3c).await;
    age_all_blobs(dir.path());
    for _ in 0..3 {
        let report = store.reclaim_orphans(ORPHAN_GRACE, Duration::from_secs(3600), None).await;
        assert_eq!((report.removed, report.suspected), (0, 1), "seen again too soon");
    }
    assert!(blob_path(dir.path(), 2, BUCKET, stray).exists());
    assert_eq!(pass(&store).await.removed, 1, "confirmed once the delay has passed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_is_removed_while_a_drive_is_offline_or_a_record_cannot_be_read() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (store, drives, pending) = populated_store(dir.path()).await;
    let stray = orphan(&drives[1], BUCKET, 0x5e).await;
    age_all_blobs(dir.path());
    let files = blob_files(dir.path()).len();
    assert_eq!(pass(&store).await.suspected, 1);

    // An offline drive may hold the only record naming a blob elsewhere.
    set_drive_online(dir.path(), &drives[4], 4, false).await;
    let report = pass(&store).await;
    assert_eq!((report.removed, report.skipped), (0, 1));
    set_drive_online(dir.path(), &drives[4], 4, true).await;

    // A record that cannot be decoded might name any blob.
    let unreadable = MetaOp::PutVersion {
        bucket: BUCKET.into(),
        key: "mangled".into(),
        uid: [7; 16],
        record: bytes::Bytes::from_static(b"not a record"),
        inline: None,
    };
    drives[2].commit(vec![unreadable]).await.expect("plant a record");
    let report = pass(&store).await;
    assert_eq!((report.removed, report.skipped), (0, 1));
    assert_eq!(blob_files(dir.path()).len(), files, "not one file removed");
    assert!(blob_path(dir.path(), 1, BUCKET, stray).exists());

    let delete = MetaOp::DeleteVersion { bucket: BUCKET.into(), key: "mangled".into(), uid: [7; 16] };
    drives[2].commit(vec![delete]).await.expect("remove the planted record");
    let report = pass(&store).await;
    assert_eq!((report.removed, report.skipped), (1, 0), "with every reference visible the orphan goes");
    assert!(!blob_path(dir.path(), 1, BUCKET, stray).exists());
    assert_everything_reads_back(&store, &pending).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_orphan_named_again_before_its_confirmation_is_kept() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (store, drives, _) = populated_store(dir.path()).await;
    // A blob and, committed only after the first sighting, the record naming
    // it: what a write caught by a step of the wall clock looks like.
    let data = vec![4u8; 2 * MIB];
    store
        .put_object(BUCKET, "late", body(data.clone()), Some(2 * MIB as u64), PutOptions::default())
        .await
        .expect("put");
    let records: Vec<_> = futures::future::join_all(drives.iter().map(|d| d.get_versions(BUCKET, "late"))).await;
    for (drive, versions) in drives.iter().zip(&records) {
        let uid = versions.as_ref().expect("versions")[0].uid;
        let delete = MetaOp::DeleteVersion { bucket: BUCKET.into(), key: "late".into(), uid };
        drive.commit(vec![delete]).await.expect("hide the record");
    }
    age_all_blobs(dir.path());
    assert_eq!(pass(&store).await.suspected, 6, "one blob per drive, no record yet");
    for (drive, versions) in drives.iter().zip(records) {
        let stored = versions.expect("versions").remove(0);
        let put = MetaOp::PutVersion {
            bucket: BUCKET.into(),
            key: "late".into(),
            uid: stored.uid,
            record: stored.record,
            inline: None,
        };
        drive.commit(vec![put]).await.expect("the record lands");
    }
    assert_eq!(pass(&store).await, ReclaimReport::default(), "named now: nothing removed, nothing suspected");
    assert_eq!(read_object(&store, BUCKET, "late", None).await.expect("late"), data);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_scanner_reclaims_at_most_every_few_hours() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (store, drives, pending) = populated_store(dir.path()).await;
    orphan(&drives[2], BUCKET, 0x77).await;
    age_all_blobs(dir.path());
    let first = store.reclaim_if_due().await.expect("the first pass is due");
    assert_eq!(first.suspected, 1);
    assert!(store.reclaim_if_due().await.is_none(), "the next one waits for RECLAIM_INTERVAL");
    assert_everything_reads_back(&store, &pending).await;
}
