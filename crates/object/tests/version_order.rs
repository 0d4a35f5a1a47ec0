//! A version written while the clock is behind an older version's time is
//! still the newest: versions order by uid (UUIDv7, from the clock), and a
//! clock that went back must not hide an acknowledged write. Real local drives
//! in a temporary directory.

use bulwark_object::testing::{body, read_object};
use bulwark_object::{GetOptions, PutOptions, Versioning};
use bulwark_storage::MetaOp;

const BUCKET: &str = "bucket";
const A_DAY_MS: u64 = 86_400_000;

/// Moves the only version of `key` on every drive to a uid a day in the
/// future: as if it was written while the clock ran a day ahead.
async fn date_forward(drives: &[std::sync::Arc<dyn bulwark_storage::Drive>], key: &str) {
    for drive in drives {
        let versions = drive.get_versions(BUCKET, key).await.expect("versions");
        assert_eq!(versions.len(), 1, "one version of {key}");
        let stored = &versions[0];
        let mut uid = stored.uid;
        let millis = u64::from_be_bytes([0, 0, uid[0], uid[1], uid[2], uid[3], uid[4], uid[5]]) + A_DAY_MS;
        uid[..6].copy_from_slice(&millis.to_be_bytes()[2..]);
        let ops = vec![
            MetaOp::PutVersion {
                bucket: BUCKET.into(),
                key: key.into(),
                uid,
                record: stored.record.clone(),
                inline: None,
            },
            MetaOp::DeleteVersion { bucket: BUCKET.into(), key: key.into(), uid: stored.uid },
        ];
        drive.commit(ops).await.expect("move the record");
    }
}

/// Large enough to live in blobs, not inline under its uid.
/// A store on six local drives with `BUCKET` created and versioning enabled.
async fn versioned_store(
    dir: &std::path::Path,
) -> (bulwark_object::ObjectStore, Vec<std::sync::Arc<dyn bulwark_storage::Drive>>) {
    let (store, drives) = bulwark_object::testing::local_store(dir).await;
    store.make_bucket(BUCKET).await.expect("bucket");
    store.put_bucket_versioning(BUCKET, Versioning::Enabled).await.expect("versioning");
    (store, drives)
}

fn data(seed: u8) -> Vec<u8> {
    (0..1024 * 1024u32).map(|i| (i as u8).wrapping_mul(17).wrapping_add(seed)).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_overwrite_while_the_clock_is_behind_is_what_get_returns() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (store, drives) = bulwark_object::testing::local_store(dir.path()).await;
    store.make_bucket(BUCKET).await.expect("bucket");
    let (old, new) = (data(1), data(2));
    store
        .put_object(BUCKET, "key", body(old.clone()), Some(old.len() as u64), PutOptions::default())
        .await
        .expect("put");
    date_forward(&drives, "key").await;
    store
        .put_object(BUCKET, "key", body(new.clone()), Some(new.len() as u64), PutOptions::default())
        .await
        .expect("put");
    assert!(
        read_object(&store, BUCKET, "key", None).await.expect("get") == new,
        "GET returns the acknowledged overwrite"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_version_while_the_clock_is_behind_lists_first_and_keeps_its_own_id() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (store, drives) = versioned_store(dir.path()).await;
    let (old, new) = (data(3), data(4));
    store
        .put_object(BUCKET, "key", body(old.clone()), Some(old.len() as u64), PutOptions::default())
        .await
        .expect("put");
    date_forward(&drives, "key").await;
    let written = store
        .put_object(BUCKET, "key", body(new.clone()), Some(new.len() as u64), PutOptions::default())
        .await
        .expect("put");
    let version_id = written.version_id.expect("a version id");
    assert!(
        read_object(&store, BUCKET, "key", None).await.expect("get") == new,
        "the latest version is the one just written"
    );
    assert!(
        read_object(&store, BUCKET, "key", Some(&version_id)).await.expect("get") == new,
        "its returned version id reads it"
    );
    // A delete marker made now hides it, as a delete must.
    let deleted = store.delete_object(BUCKET, "key", None).await.expect("delete");
    assert!(deleted.delete_marker);
    assert!(store.get_object(BUCKET, "key", &GetOptions::default()).await.is_err(), "the marker is the latest");
}

/// More versions than a latest-version read looks at per drive.
const LONG_HISTORY: u8 = 80;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_with_a_long_history_reads_its_latest_and_its_oldest_version() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (store, _drives) = versioned_store(dir.path()).await;
    let mut ids = Vec::new();
    for seed in 0..LONG_HISTORY {
        // Small bodies: inline objects, so the history is cheap to write.
        let body_bytes = vec![seed; 100];
        let written =
            store.put_object(BUCKET, "status", body(body_bytes), Some(100), PutOptions::default()).await.expect("put");
        ids.push(written.version_id.expect("a version id"));
    }
    assert_eq!(
        read_object(&store, BUCKET, "status", None).await.expect("get"),
        vec![LONG_HISTORY - 1; 100],
        "the latest"
    );
    assert_eq!(
        read_object(&store, BUCKET, "status", Some(&ids[0])).await.expect("get"),
        vec![0; 100],
        "the first, far back"
    );
    let head = store.head_object(BUCKET, "status", &GetOptions::default()).await.expect("head");
    assert_eq!(head.0.version_id.as_deref(), ids.last().map(String::as_str));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_latest_version_is_found_behind_a_long_run_of_failed_writes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (store, drives) = bulwark_object::testing::local_store(dir.path()).await;
    store.make_bucket(BUCKET).await.expect("bucket");
    let current = data(5);
    store
        .put_object(BUCKET, "key", body(current.clone()), Some(current.len() as u64), PutOptions::default())
        .await
        .expect("put");
    // Failed writes newer than it, each on three drives only (below K = 4),
    // more of them than a latest-version read looks at per drive.
    let stored = drives[0].get_versions(BUCKET, "key").await.expect("versions").remove(0);
    for n in 0..u32::from(LONG_HISTORY) {
        let mut uid = stored.uid;
        let tail = u32::from_be_bytes(uid[12..].try_into().expect("4 bytes")) ^ n;
        uid[12..].copy_from_slice(&tail.to_be_bytes());
        let millis = u64::from_be_bytes([0, 0, uid[0], uid[1], uid[2], uid[3], uid[4], uid[5]]) + 1 + u64::from(n);
        uid[..6].copy_from_slice(&millis.to_be_bytes()[2..]);
        for drive in &drives[..3] {
            let op = MetaOp::PutVersion {
                bucket: BUCKET.into(),
                key: "key".into(),
                uid,
                record: stored.record.clone(),
                inline: None,
            };
            drive.commit(vec![op]).await.expect("a minority record");
        }
    }
    assert!(
        read_object(&store, BUCKET, "key", None).await.expect("get") == current,
        "the acknowledged version is still the latest"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_version_listing_resumed_after_the_null_version_does_not_list_a_second_one() {
    // Overwriting the null version leaves the old null record until an
    // asynchronous purge removes it. A listing shows only the newest null
    // version; one resumed page by page must not show the older one as well.
    let dir = tempfile::tempdir().expect("tempdir");
    let (store, drives) = versioned_store(dir.path()).await;
    let small = || body(b"versioned".to_vec());
    store.put_object(BUCKET, "k", small(), Some(9), PutOptions::default()).await.expect("put v1");
    store.put_bucket_versioning(BUCKET, Versioning::Suspended).await.expect("suspend versioning");
    store.put_object(BUCKET, "k", small(), Some(9), PutOptions::default()).await.expect("put null");
    // An older null record that the purge has not removed yet.
    for drive in &drives {
        let null = drive.get_versions(BUCKET, "k").await.expect("versions").remove(0);
        let op = MetaOp::PutVersion {
            bucket: BUCKET.into(),
            key: "k".into(),
            uid: [0x01; 16],
            record: null.record.clone(),
            inline: None,
        };
        drive.commit(vec![op]).await.expect("old null record");
    }

    let whole = store
        .list_object_versions(
            BUCKET,
            bulwark_object::VersionListParams {
                prefix: String::new(),
                delimiter: None,
                key_marker: None,
                version_id_marker: None,
                max_keys: 1000,
            },
        )
        .await
        .expect("list");
    let ids = |entries: &[bulwark_object::VersionEntry]| {
        entries.iter().map(|v| v.version_id.clone().unwrap_or_else(|| "null".into())).collect::<Vec<_>>()
    };
    assert_eq!(ids(&whole.versions).len(), 2, "one null version and v1: {:?}", ids(&whole.versions));

    let mut paged = Vec::new();
    let (mut key_marker, mut version_id_marker) = (None, None);
    loop {
        let page = store
            .list_object_versions(
                BUCKET,
                bulwark_object::VersionListParams {
                    prefix: String::new(),
                    delimiter: None,
                    key_marker: key_marker.clone(),
                    version_id_marker: version_id_marker.clone(),
                    max_keys: 1,
                },
            )
            .await
            .expect("list a page");
        paged.extend(ids(&page.versions));
        if !page.is_truncated {
            break;
        }
        (key_marker, version_id_marker) = (page.next_key_marker, page.next_version_id_marker);
        assert!(paged.len() <= 3, "the listing does not end: {paged:?}");
    }
    assert_eq!(paged, ids(&whole.versions), "page by page lists what one page does");
}
