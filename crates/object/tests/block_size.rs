//! The block size is recorded per object, and a multipart upload keeps the
//! geometry it began with: parts uploaded after the server's block size
//! changed are coded like the parts before them, so the completed object has
//! one layout and reads back. Real local drives; nothing is mocked.

use bulwark_object::meta::{self, UploadRecord, VersionRecord};
use bulwark_object::{BLOCK_SIZE_BYTES, CompletedPart, GetOptions, PutOptions};
use bulwark_storage::MetaOp;
use bytes::Bytes;
use futures::StreamExt;

const MIB: usize = 1024 * 1024;

fn body(data: &[u8]) -> bulwark_object::ByteStream {
    let data = Bytes::copy_from_slice(data);
    Box::pin(futures::stream::once(async move { Ok(data) }))
}

fn pattern(len: usize, seed: u32) -> Vec<u8> {
    (0..len as u32).map(|i| (i.wrapping_mul(31).wrapping_add(seed) >> 3) as u8).collect()
}

async fn read_all(store: &bulwark_object::ObjectStore, key: &str) -> Vec<u8> {
    let outcome = store.get_object("bucket", key, &GetOptions::default()).await.expect("get");
    let mut stream = outcome.body;
    let mut read = Vec::new();
    while let Some(chunk) = stream.next().await {
        read.extend_from_slice(&chunk.expect("chunk"));
    }
    read
}

async fn block_size_of(drives: &[std::sync::Arc<dyn bulwark_storage::Drive>], key: &str) -> usize {
    let versions = drives[0].get_versions("bucket", key).await.expect("versions");
    let record: VersionRecord = meta::decode("version", &versions[0].record).expect("decode");
    record.layout.expect("layout").block_size
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_object_records_the_block_size_it_was_coded_with() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (store, drives) = bulwark_object::testing::local_store(dir.path()).await;
    store.make_bucket("bucket").await.expect("bucket");
    let data = pattern(3 * BLOCK_SIZE_BYTES + 12_345, 1);
    store.put_object("bucket", "key", body(&data), Some(data.len() as u64), PutOptions::default()).await.expect("put");
    assert_eq!(block_size_of(&drives, "key").await, BLOCK_SIZE_BYTES);
    assert_eq!(read_all(&store, "key").await, data);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parts_are_coded_with_the_geometry_their_upload_began_with() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (store, drives) = bulwark_object::testing::local_store(dir.path()).await;
    store.make_bucket("bucket").await.expect("bucket");
    let upload_id =
        store.create_multipart_upload("bucket", "key", PutOptions::default(), None).await.expect("create upload");

    // As if the upload had begun under a release with another block size.
    let older = if BLOCK_SIZE_BYTES == MIB { 2 * MIB } else { MIB };
    for drive in &drives {
        let raw = drive.get_upload("bucket", "key", &upload_id).await.expect("get upload").expect("upload");
        let mut record: UploadRecord = meta::decode("upload", &raw).expect("decode");
        record.block_size = older;
        let op = MetaOp::PutUpload {
            bucket: "bucket".into(),
            key: "key".into(),
            upload_id: upload_id.clone(),
            record: meta::encode(&record),
        };
        drive.commit(vec![op]).await.expect("rewrite upload");
    }

    let first = pattern(5 * MIB + 4_321, 2);
    let last = pattern(3 * MIB + 17, 3);
    let mut parts = Vec::new();
    for (number, data) in [(1, &first), (2, &last)] {
        let outcome = store
            .upload_part(
                "bucket",
                "key",
                &upload_id,
                number,
                body(data),
                Some(data.len() as u64),
                PutOptions::default(),
            )
            .await
            .expect("upload part");
        parts.push(CompletedPart { number, etag: outcome.etag, checksum: None });
    }
    store
        .complete_multipart_upload("bucket", "key", &upload_id, &parts, None, &Default::default())
        .await
        .expect("complete");

    assert_eq!(block_size_of(&drives, "key").await, older, "the object keeps its upload's block size");
    let whole: Vec<u8> = first.iter().chain(last.iter()).copied().collect();
    assert_eq!(read_all(&store, "key").await, whole, "every part reads back with that geometry");
}
