//! A version written while the clock is behind an older version's time is
//! still the newest: versions order by uid (UUIDv7, from the clock), and a
//! clock that went back must not hide an acknowledged write. Real local drives
//! in a temporary directory.

use bulwark_object::{GetOptions, ObjectStore, PutOptions, Versioning};
use bulwark_storage::MetaOp;
use bytes::Bytes;
use futures::StreamExt;

const BUCKET: &str = "bucket";
const A_DAY_MS: u64 = 86_400_000;

fn body(data: Vec<u8>) -> bulwark_object::ByteStream {
    Box::pin(futures::stream::once(async move { Ok(Bytes::from(data)) }))
}

async fn read_all(store: &ObjectStore, key: &str, version_id: Option<&str>) -> Vec<u8> {
    let opts = GetOptions { version_id: version_id.map(str::to_owned), ..GetOptions::default() };
    let outcome = store.get_object(BUCKET, key, &opts).await.expect("get");
    let mut read = Vec::new();
    let mut stream = outcome.body;
    while let Some(chunk) = stream.next().await {
        read.extend_from_slice(&chunk.expect("chunk"));
    }
    read
}

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
    assert!(read_all(&store, "key", None).await == new, "GET returns the acknowledged overwrite");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_version_while_the_clock_is_behind_lists_first_and_keeps_its_own_id() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (store, drives) = bulwark_object::testing::local_store(dir.path()).await;
    store.make_bucket(BUCKET).await.expect("bucket");
    store.put_bucket_versioning(BUCKET, Versioning::Enabled).await.expect("versioning");
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
    assert!(read_all(&store, "key", None).await == new, "the latest version is the one just written");
    assert!(read_all(&store, "key", Some(&version_id)).await == new, "its returned version id reads it");
    // A delete marker made now hides it, as a delete must.
    let deleted = store.delete_object(BUCKET, "key", None).await.expect("delete");
    assert!(deleted.delete_marker);
    assert!(store.get_object(BUCKET, "key", &GetOptions::default()).await.is_err(), "the marker is the latest");
}
