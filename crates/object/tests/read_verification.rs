//! The read path checks the object's stored checksum, not only the shard
//! checksums: an object whose shards all verify but whose content does not
//! match its checksum is refused and queued for repair (issue 3, item 6).
//! Real local drives in a temporary directory; nothing is mocked.

use std::sync::Arc;

use bulwark_object::{GetOptions, ObjectStore, PutOptions};
use bulwark_storage::{Drive, MetaOp};
use bytes::Bytes;
use futures::StreamExt;

async fn store(dir: &std::path::Path) -> (ObjectStore, Vec<Arc<dyn Drive>>) {
    bulwark_object::testing::local_store(dir).await
}

fn body(data: Vec<u8>) -> bulwark_object::ByteStream {
    Box::pin(futures::stream::once(async move { Ok(Bytes::from(data)) }))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn content_that_contradicts_its_stored_checksum_is_refused_and_queued_for_repair() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (store, drives) = store(dir.path()).await;
    store.make_bucket("bucket").await.expect("bucket");
    let data: Vec<u8> = (0..3 * 1024 * 1024u32).map(|i| (i * 7 + 1) as u8).collect();
    store
        .put_object("bucket", "key", body(data.clone()), Some(data.len() as u64), PutOptions::default())
        .await
        .expect("put");

    // Sanity: the object reads back whole.
    let outcome = store.get_object("bucket", "key", &GetOptions::default()).await.expect("get");
    let mut read = Vec::new();
    let mut stream = outcome.body;
    while let Some(chunk) = stream.next().await {
        read.extend_from_slice(&chunk.expect("chunk"));
    }
    assert_eq!(read, data);
    assert_eq!(store.heal_queue().len(), 0);

    // Every shard still verifies, but the record now claims another checksum:
    // exactly the situation of data that was wrong before it was coded.
    for drive in &drives {
        let versions = drive.get_versions("bucket", "key").await.expect("versions");
        let stored = &versions[0];
        let mut record: bulwark_object::meta::VersionRecord =
            bulwark_object::meta::decode("version", &stored.record).expect("decode");
        let layout = record.layout.as_mut().expect("layout");
        layout.parts[0].checksum = Some("AAAAAAAAAAA=".into());
        let op = MetaOp::PutVersion {
            bucket: "bucket".into(),
            key: "key".into(),
            uid: stored.uid,
            record: bulwark_object::meta::encode(&record),
            inline: None,
        };
        drive.commit(vec![op]).await.expect("rewrite record");
    }
    let outcome = store.get_object("bucket", "key", &GetOptions::default()).await.expect("headers are sent");
    let mut stream = outcome.body;
    let mut served = 0usize;
    let mut failed = false;
    while let Some(chunk) = stream.next().await {
        match chunk {
            Ok(chunk) => served += chunk.len(),
            Err(_) => {
                failed = true;
                break;
            }
        }
    }
    assert!(failed, "the read fails loudly");
    assert!(served < data.len(), "the last block is held back until the checksum matched");
    assert_eq!(store.heal_queue().len(), 1, "the object is queued for repair");
}
