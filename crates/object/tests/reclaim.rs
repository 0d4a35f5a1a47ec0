//! Orphan reclamation removes exactly the blob files no record names, once
//! they are old, and nothing while it cannot see every reference. Real local
//! drives in a temporary directory; nothing is mocked.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use bulwark_object::testing::{body, local_store, read_object, set_drive_online};
use bulwark_object::{
    CompletedPart, ORPHAN_GRACE, ObjectStore, PutOptions, VersionListParams, Versioning, WriteCondition,
};
use bulwark_storage::{Drive, MetaOp};

const BUCKET: &str = "bucket";
const MIB: usize = 1024 * 1024;

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
async fn old_blobs_no_record_names_are_removed_and_every_referenced_blob_stays() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (store, drives, pending) = populated_store(dir.path()).await;
    let a = orphan(&drives[0], BUCKET, 0xa1).await;
    let b = orphan(&drives[3], BUCKET, 0xb2).await;
    store.make_bucket("gone").await.expect("bucket");
    let c = orphan(&drives[5], "gone", 0xc3).await;
    store.delete_bucket("gone").await.expect("an empty bucket goes, its stray blob stays");
    let referenced = blob_files(dir.path()).len() - 3;

    // Young orphans wait: they may be a write whose records are being committed.
    let pass = store.reclaim_orphans(ORPHAN_GRACE, None).await;
    assert_eq!((pass.removed, pass.skipped), (0, 0));
    assert_eq!(blob_files(dir.path()).len(), referenced + 3);

    age_all_blobs(dir.path());
    let pass = store.reclaim_orphans(ORPHAN_GRACE, None).await;
    assert_eq!((pass.removed, pass.skipped), (3, 0), "exactly the three orphans");
    for (position, bucket, id) in [(0, BUCKET, a), (3, BUCKET, b), (5, "gone", c)] {
        assert!(!blob_path(dir.path(), position, bucket, id).exists(), "orphan {} left", hex::encode(id));
    }
    assert_eq!(blob_files(dir.path()).len(), referenced, "every referenced blob stays");
    assert_everything_reads_back(&store, &pending).await;
    assert_eq!(store.reclaim_orphans(ORPHAN_GRACE, None).await.removed, 0, "a second pass finds nothing");
    assert_eq!(store.status().orphan_blobs_removed, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_is_removed_while_a_drive_is_offline_or_a_record_cannot_be_read() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (store, drives, pending) = populated_store(dir.path()).await;
    let stray = orphan(&drives[1], BUCKET, 0x5e).await;
    age_all_blobs(dir.path());
    let files = blob_files(dir.path()).len();

    // An offline drive may hold the only record naming a blob elsewhere.
    set_drive_online(dir.path(), &drives[4], 4, false).await;
    let pass = store.reclaim_orphans(ORPHAN_GRACE, None).await;
    assert_eq!((pass.removed, pass.skipped), (0, 1));
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
    let pass = store.reclaim_orphans(ORPHAN_GRACE, None).await;
    assert_eq!((pass.removed, pass.skipped), (0, 1));
    assert_eq!(blob_files(dir.path()).len(), files, "not one file removed");
    assert!(blob_path(dir.path(), 1, BUCKET, stray).exists());

    let delete = MetaOp::DeleteVersion { bucket: BUCKET.into(), key: "mangled".into(), uid: [7; 16] };
    drives[2].commit(vec![delete]).await.expect("remove the planted record");
    let pass = store.reclaim_orphans(ORPHAN_GRACE, None).await;
    assert_eq!((pass.removed, pass.skipped), (1, 0), "with every reference visible the orphan goes");
    assert!(!blob_path(dir.path(), 1, BUCKET, stray).exists());
    assert_everything_reads_back(&store, &pending).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_scanner_pass_reclaims_and_reports_orphans() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (store, drives, pending) = populated_store(dir.path()).await;
    orphan(&drives[2], BUCKET, 0x77).await;
    age_all_blobs(dir.path());
    let scrub = store.scan_pass(true, 0, Some(BUCKET)).await;
    assert_eq!(scrub.orphans_removed, 0, "the scrub reads; only the scanner reclaims");
    let scan = store.scan_pass(false, 0, Some(BUCKET)).await;
    assert_eq!(scan.orphans_removed, 1);
    // Every blob directory is walked at most every few hours, not every pass.
    orphan(&drives[4], BUCKET, 0x78).await;
    age_all_blobs(dir.path());
    let soon_after = store.scan_pass(false, 0, Some(BUCKET)).await;
    assert_eq!(soon_after.orphans_removed, 0);
    assert_eq!(store.reclaim_orphans(ORPHAN_GRACE, Some(BUCKET)).await.removed, 1, "a direct pass still finds it");
    assert_everything_reads_back(&store, &pending).await;
}
