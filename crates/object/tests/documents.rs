//! Replicated documents (identities, the KMS keystore) keep the last write
//! that succeeded: a write that misses the quorum is put back on the drives
//! that took it, so it is never read later. Real local drives in a temporary
//! directory, two of which fail their metadata commits on demand.

use bulwark_object::Document;
use bulwark_object::testing::{FaultyDrive, local_store_with};
use bytes::Bytes;

fn doc(generation: u64, body: &'static str) -> Document {
    Document { generation, body: Bytes::from_static(body.as_bytes()) }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_document_write_that_misses_the_quorum_is_rolled_back_and_never_read() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (store, drives) = local_store_with(dir.path(), FaultyDrive::wrap).await;
    store.store_document("settings", &doc(1, "one")).await.expect("first write");

    // Two drives refuse commits: four copies are below W = 5.
    drives[4].fail_commits(true);
    drives[5].fail_commits(true);
    let failed = store.store_document("settings", &doc(2, "two")).await;
    assert!(matches!(failed, Err(bulwark_object::Error::InsufficientDrives { .. })), "{failed:?}");
    drives[4].fail_commits(false);
    drives[5].fail_commits(false);
    assert_eq!(
        store.load_document("settings").await.expect("load"),
        Some(doc(1, "one")),
        "the failed write was put back on the four drives that took it"
    );

    store.store_document("settings", &doc(3, "three")).await.expect("next write");
    assert_eq!(store.load_document("settings").await.expect("load"), Some(doc(3, "three")));
}
