//! Heal removes only what is garbage: a version record that lost drives is an
//! object waiting for them, not a failed write. Real local drives in a
//! temporary directory; nothing is mocked.

use bulwark_object::testing::{body, read_object};
use std::sync::Arc;

use bulwark_object::HealOutcome;
use bulwark_object::PutOptions;
use bulwark_storage::{Drive, MetaOp};
use bytes::Bytes;

const BUCKET: &str = "bucket";
/// Older than any grace period a failed write is given.
const AN_HOUR_NS: i64 = 3600 * 1_000_000_000;

/// Rewrites the version record of `key` on every drive as written an hour ago.
async fn age_records(drives: &[Arc<dyn Drive>], key: &str) -> [u8; 16] {
    let mut uid = None;
    for drive in drives {
        let versions = drive.get_versions(BUCKET, key).await.expect("versions");
        let stored = &versions[0];
        let mut record: bulwark_object::meta::VersionRecord =
            bulwark_object::meta::decode("version", &stored.record).expect("decode");
        record.mod_time_ns -= AN_HOUR_NS;
        let op = MetaOp::PutVersion {
            bucket: BUCKET.into(),
            key: key.into(),
            uid: stored.uid,
            record: bulwark_object::meta::encode(&record),
            inline: None,
        };
        drive.commit(vec![op]).await.expect("rewrite record");
        uid = Some(stored.uid);
    }
    uid.expect("a drive holds the record")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heal_keeps_an_object_whose_drives_are_offline_and_it_reads_back_when_they_return() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (store, drives) = bulwark_object::testing::local_store(dir.path()).await;
    store.make_bucket(BUCKET).await.expect("bucket");
    let data: Vec<u8> = (0..3 * 1024 * 1024u32).map(|i| (i * 13 + 5) as u8).collect();
    store
        .put_object(BUCKET, "key", body(data.clone()), Some(data.len() as u64), PutOptions::default())
        .await
        .expect("put");
    let uid = age_records(&drives, "key").await;

    // Three drives of the 4+2 set go away (a facility and one more): the
    // object cannot be read, but it is not garbage.
    for position in [0, 1, 2] {
        bulwark_object::testing::set_drive_online(dir.path(), &drives[position], position, false).await;
    }
    assert!(read_object(&store, BUCKET, "key", None).await.is_err(), "3 of 6 drives cannot serve a 4+2 object");
    let outcome = store.heal_version(BUCKET, "key", uid).await.expect("heal");
    assert!(
        matches!(outcome, HealOutcome::Deferred { offline: 3 }),
        "heal must wait for the offline drives, not remove the object: {outcome:?}"
    );

    for position in [0, 1, 2] {
        bulwark_object::testing::set_drive_online(dir.path(), &drives[position], position, true).await;
    }
    assert_eq!(read_object(&store, BUCKET, "key", None).await.expect("get after the drives return"), data);
    let outcome = store.heal_version(BUCKET, "key", uid).await.expect("heal");
    assert!(matches!(outcome, HealOutcome::Healthy), "all six drives hold it again: {outcome:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heal_removes_an_old_failed_write_that_no_drive_can_complete() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (store, drives) = bulwark_object::testing::local_store(dir.path()).await;
    store.make_bucket(BUCKET).await.expect("bucket");
    let data = vec![7u8; 1024 * 1024];
    store
        .put_object(BUCKET, "key", body(data.clone()), Some(data.len() as u64), PutOptions::default())
        .await
        .expect("put");
    let uid = age_records(&drives, "key").await;
    // A write that reached only three drives, all of which answer: it can never
    // be read, and is removed.
    for drive in &drives[..3] {
        let op = MetaOp::DeleteVersion { bucket: BUCKET.into(), key: "key".into(), uid };
        drive.commit(vec![op]).await.expect("drop the record");
    }
    let outcome = store.heal_version(BUCKET, "key", uid).await.expect("heal");
    assert!(matches!(outcome, HealOutcome::Removed), "a failed write is garbage: {outcome:?}");
    for drive in &drives {
        assert!(drive.get_versions(BUCKET, "key").await.expect("versions").is_empty(), "no record is left");
    }
}

/// Every file under `dir` (a drive's blobs for one bucket).
/// Puts `data` (large enough to be a blob) at `key`.
async fn put_blob(store: &bulwark_object::ObjectStore, key: &str, data: &[u8]) {
    store
        .put_object(BUCKET, key, body(data.to_vec()), Some(data.len() as u64), PutOptions::default())
        .await
        .expect("put");
}

fn files_under(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(files_under(&path));
        } else {
            out.push(path);
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drive_that_refuses_a_rebuilt_shard_does_not_keep_heal_from_rebuilding_the_others() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (store, drives) =
        bulwark_object::testing::local_store_with(dir.path(), bulwark_object::testing::FaultyDrive::wrap).await;
    store.make_bucket(BUCKET).await.expect("bucket");
    let data: Vec<u8> = (0..3 * 1024 * 1024u32).map(|i| (i * 11 + 3) as u8).collect();
    store
        .put_object(BUCKET, "key", body(data.clone()), Some(data.len() as u64), PutOptions::default())
        .await
        .expect("put");
    let uid = drives[0].get_versions(BUCKET, "key").await.expect("versions")[0].uid;
    // Drives 2 and 5 lose their shards; drive 5 cannot take new blobs (full).
    let shards = |position: usize| files_under(&dir.path().join(format!("drive-{position}")).join("data").join(BUCKET));
    for position in [2, 5] {
        let lost = shards(position);
        assert_eq!(lost.len(), 1, "one shard file on drive {position}");
        std::fs::remove_file(&lost[0]).expect("lose the shard");
    }
    drives[5].fail_blob_writes(true);

    let outcome = store.heal_version(BUCKET, "key", uid).await.expect("heal");
    assert!(
        matches!(outcome, HealOutcome::Deferred { offline: 1 }),
        "drive 5 waits, it does not make the version unrepairable: {outcome:?}"
    );
    assert_eq!(shards(2).len(), 1, "drive 2's shard is rebuilt meanwhile");
    assert!(shards(5).is_empty());

    drives[5].fail_blob_writes(false);
    let outcome = store.heal_version(BUCKET, "key", uid).await.expect("heal");
    assert!(matches!(outcome, HealOutcome::Healed { shards_rebuilt: 1, .. }), "{outcome:?}");
    assert_eq!(read_object(&store, BUCKET, "key", None).await.expect("read"), data);
    let outcome = store.heal_version(BUCKET, "key", uid).await.expect("heal");
    assert!(matches!(outcome, HealOutcome::Healthy), "{outcome:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_version_record_nobody_can_decode_is_reported_unrepairable_not_retried_for_ever() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (store, drives) = bulwark_object::testing::local_store(dir.path()).await;
    store.make_bucket(BUCKET).await.expect("bucket");
    let uid = [7u8; 16];
    for drive in &drives {
        let op = MetaOp::PutVersion {
            bucket: BUCKET.into(),
            key: "key".into(),
            uid,
            record: Bytes::from_static(b"not a version record"),
            inline: None,
        };
        drive.commit(vec![op]).await.expect("write the record");
    }
    let outcome = store.heal_version(BUCKET, "key", uid).await.expect("heal answers");
    assert!(matches!(outcome, HealOutcome::Unrepairable { .. }), "{outcome:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drive_whose_record_copy_differs_from_the_majority_is_found_by_the_scanner_and_repaired() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (store, drives) = bulwark_object::testing::local_store(dir.path()).await;
    store.make_bucket(BUCKET).await.expect("bucket");
    let data = vec![9u8; 1024 * 1024];
    store
        .put_object(BUCKET, "key", body(data.clone()), Some(data.len() as u64), PutOptions::default())
        .await
        .expect("put");
    let stored = drives[0].get_versions(BUCKET, "key").await.expect("versions").remove(0);
    // Drive 0 keeps a stale variant of the record (it missed an update).
    let mut stale: bulwark_object::meta::VersionRecord =
        bulwark_object::meta::decode("version", &stored.record).expect("decode");
    stale.user_meta.insert("stale".into(), "yes".into());
    let op = MetaOp::PutVersion {
        bucket: BUCKET.into(),
        key: "key".into(),
        uid: stored.uid,
        record: bulwark_object::meta::encode(&stale),
        inline: None,
    };
    drives[0].commit(vec![op]).await.expect("stale copy");

    store.scan_pass(false, 0, Some(BUCKET)).await;
    assert_eq!(store.heal_queue().len(), 1, "the scanner queues the version whose copy differs");
    let outcome = store.heal_version(BUCKET, "key", stored.uid).await.expect("heal");
    assert!(matches!(outcome, HealOutcome::Healed { records_restored: 1, .. }), "{outcome:?}");
    let repaired = drives[0].get_versions(BUCKET, "key").await.expect("versions").remove(0);
    assert_eq!(repaired.record, stored.record, "drive 0 holds the majority's bytes again");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn while_a_drive_is_away_the_scanner_sets_aside_what_only_it_lacks_and_queues_what_an_online_drive_lacks() {
    // With a drive offline every version lacks its shard there. Queuing them
    // all would have heal read every piece of every object each pass, for as
    // long as the drive is away, to find nothing it can do.
    let dir = tempfile::tempdir().expect("tempdir");
    let (store, drives) = bulwark_object::testing::local_store(dir.path()).await;
    store.make_bucket(BUCKET).await.expect("bucket");
    let data = vec![3u8; 3 * 1024 * 1024];
    for key in ["whole", "damaged"] {
        put_blob(&store, key, &data).await;
    }
    bulwark_object::testing::set_drive_online(dir.path(), &drives[5], 5, false).await;
    // An online drive loses the record of one of them.
    let lost = drives[0].get_versions(BUCKET, "damaged").await.expect("versions").remove(0);
    let op = MetaOp::DeleteVersion { bucket: BUCKET.into(), key: "damaged".into(), uid: lost.uid };
    drives[0].commit(vec![op]).await.expect("delete the record");

    let pass = store.scan_pass(false, 0, Some(BUCKET)).await;
    assert_eq!(pass.problems_found, 2, "both are short of full redundancy");
    assert_eq!(store.heal_queue().len(), 1, "only the version an online drive lacks is queued");
    assert_eq!(store.heal_queue().deferred(), 1, "the other waits for the drive");
    let outcome = store.heal_version(BUCKET, "damaged", lost.uid).await.expect("heal");
    assert!(matches!(outcome, HealOutcome::Deferred { offline: 1 }), "{outcome:?}");
    assert_eq!(drives[0].get_versions(BUCKET, "damaged").await.expect("versions").len(), 1, "record restored");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drive_back_from_an_absence_gets_what_it_missed_without_every_object_being_read_whole() {
    // While a drive is away the scanner sets every object aside for it. When
    // it returns, an object it holds whole is checked by its record and shard
    // lengths, not read piece by piece (a reboot must not make heal read the
    // whole store); what was written while it was away is rebuilt onto it;
    // bit rot elsewhere is left to the scrub, which finds it.
    let dir = tempfile::tempdir().expect("tempdir");
    let (store, drives) = bulwark_object::testing::local_store(dir.path()).await;
    store.make_bucket(BUCKET).await.expect("bucket");
    let data = vec![5u8; 3 * 1024 * 1024];
    put_blob(&store, "before", &data).await;
    bulwark_object::testing::set_drive_online(dir.path(), &drives[5], 5, false).await;
    put_blob(&store, "during", &data).await;
    let pass = store.scan_pass(false, 0, Some(BUCKET)).await;
    assert_eq!(pass.problems_found, 2, "both lack drive 5");
    // Bit rot in drive 0's shard of the object written before the absence.
    let record = drives[0].get_versions(BUCKET, "before").await.expect("versions").remove(0).record;
    let record: bulwark_object::meta::VersionRecord = bulwark_object::meta::decode("version", &record).expect("decode");
    let blob = record.layout.expect("layout").parts[0].blob.clone().expect("a blob");
    let shard = files_under(&dir.path().join("drive-0"))
        .into_iter()
        .find(|path| path.to_string_lossy().contains(&blob))
        .expect("drive 0's shard of `before`");
    let mut bytes = std::fs::read(&shard).expect("read the shard");
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x40;
    std::fs::write(&shard, bytes).expect("rot one byte");

    bulwark_object::testing::set_drive_online(dir.path(), &drives[5], 5, true).await;
    store.heal_queue().retry_parked();
    while let Some(outcome) = store.heal_next_queued().await {
        outcome.expect("heal answers");
    }
    assert_eq!(drives[5].get_versions(BUCKET, "during").await.expect("versions").len(), 1, "drive 5 got `during`");
    let rebuilt = || store.heal_stats().shards_rebuilt.load(std::sync::atomic::Ordering::Relaxed);
    assert_eq!(rebuilt(), 1, "only drive 5's shard of `during`: `before` was not read piece by piece");

    let scrub = store.scan_pass(true, 0, Some(BUCKET)).await;
    assert_eq!(scrub.problems_found, 1, "the scrub finds the rot");
    while let Some(outcome) = store.heal_next_queued().await {
        outcome.expect("heal answers");
    }
    assert_eq!(rebuilt(), 2, "and heal rebuilds drive 0's shard of `before`");
    assert_eq!(read_object(&store, BUCKET, "before", None).await.expect("read"), data);
}
