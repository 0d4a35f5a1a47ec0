//! Multipart uploads never acknowledge an object without its data: Complete,
//! Abort and part uploads of the same upload are serialised, and Complete
//! counts only drives that hold every part. Real local drives in a temporary
//! directory.

use bulwark_object::testing::{body, read_object};
use bulwark_object::{CompletedPart, ObjectStore, PutOptions, WriteCondition};
use bytes::Bytes;
use futures::StreamExt;

const BUCKET: &str = "bucket";
/// Each race is run this many times: interleavings differ from run to run.
const ROUNDS: usize = 12;

/// Starts an upload of `key` with one part; returns the upload id, the part
/// list for Complete and the object's bytes.
async fn upload_with_a_part(store: &ObjectStore, key: &str, seed: u8) -> (String, Vec<CompletedPart>, Vec<u8>) {
    let upload_id = store.create_multipart_upload(BUCKET, key, PutOptions::default(), None).await.expect("create");
    let data: Vec<u8> = (0..1024 * 1024u32).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed)).collect();
    let part = store
        .upload_part(BUCKET, key, &upload_id, 1, body(data.clone()), Some(data.len() as u64), PutOptions::default())
        .await
        .expect("upload part");
    (upload_id, vec![CompletedPart { number: 1, etag: part.etag, checksum: None }], data)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_abort_racing_a_complete_either_wins_and_a_completed_object_reads_back_whole() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (store, _drives) = bulwark_object::testing::local_store(dir.path()).await;
    store.make_bucket(BUCKET).await.expect("bucket");
    for round in 0..ROUNDS {
        let key = format!("race-{round}");
        let (upload_id, parts, data) = upload_with_a_part(&store, &key, round as u8).await;
        let (completed, aborted) = tokio::join!(
            store.complete_multipart_upload(BUCKET, &key, &upload_id, &parts, None, &WriteCondition::None),
            store.abort_multipart_upload(BUCKET, &key, &upload_id),
        );
        match (&completed, &aborted) {
            (Ok(_), Err(_)) => {
                assert_eq!(
                    read_object(&store, BUCKET, &key, None).await.expect("the completed object reads"),
                    data,
                    "round {round}"
                )
            }
            (Err(_), Ok(())) => {
                assert!(read_object(&store, BUCKET, &key, None).await.is_err(), "round {round}: aborted, no object")
            }
            _ => panic!("round {round}: exactly one of Complete and Abort must win: {completed:?} / {aborted:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_completes_of_one_upload_make_one_object_that_reads_back_whole() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (store, _drives) = bulwark_object::testing::local_store(dir.path()).await;
    store.make_bucket(BUCKET).await.expect("bucket");
    for round in 0..ROUNDS {
        let key = format!("twice-{round}");
        let (upload_id, parts, data) = upload_with_a_part(&store, &key, round as u8).await;
        // A client that retries Complete while the first is still running.
        let (first, second) = tokio::join!(
            store.complete_multipart_upload(BUCKET, &key, &upload_id, &parts, None, &WriteCondition::None),
            store.complete_multipart_upload(BUCKET, &key, &upload_id, &parts, None, &WriteCondition::None),
        );
        let won = [&first, &second].iter().filter(|r| r.is_ok()).count();
        assert_eq!(won, 1, "round {round}: one Complete makes the object, the other finds no upload");
        let lost = if first.is_ok() { &second } else { &first };
        assert!(
            matches!(lost, Err(bulwark_object::Error::NoSuchUpload)),
            "round {round}: the later Complete gets NoSuchUpload: {lost:?}"
        );
        assert_eq!(read_object(&store, BUCKET, &key, None).await.expect("the object reads"), data, "round {round}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn complete_counts_only_drives_that_hold_every_part_toward_the_write_quorum() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (store, drives) = bulwark_object::testing::local_store(dir.path()).await;
    store.make_bucket(BUCKET).await.expect("bucket");
    // The part is written while drive 0 is away: it lands on five drives (W = 5).
    bulwark_object::testing::set_drive_online(dir.path(), &drives[0], 0, false).await;
    let (upload_id, parts, data) = upload_with_a_part(&store, "key", 9).await;
    bulwark_object::testing::set_drive_online(dir.path(), &drives[0], 0, true).await;
    // Now drive 1 is away: five drives answer, but only four hold the part.
    bulwark_object::testing::set_drive_online(dir.path(), &drives[1], 1, false).await;
    let refused = store.complete_multipart_upload(BUCKET, "key", &upload_id, &parts, None, &WriteCondition::None).await;
    assert!(
        matches!(refused, Err(bulwark_object::Error::InsufficientDrives { .. })),
        "four drives with the data are below W = 5: {refused:?}"
    );
    assert!(read_object(&store, BUCKET, "key", None).await.is_err(), "a refused Complete makes no object");
    // With drive 1 back, five drives hold everything: the upload completes.
    bulwark_object::testing::set_drive_online(dir.path(), &drives[1], 1, true).await;
    let done = store
        .complete_multipart_upload(BUCKET, "key", &upload_id, &parts, None, &WriteCondition::None)
        .await
        .expect("complete with five drives holding every part");
    assert_eq!((done.redundancy.durable, done.redundancy.total), (5, 6), "the receipt counts drives with every part");
    assert_eq!(read_object(&store, BUCKET, "key", None).await.expect("the object reads"), data);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_part_whose_record_misses_the_write_quorum_is_listed_nowhere() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (store, drives) = bulwark_object::testing::local_store(dir.path()).await;
    store.make_bucket(BUCKET).await.expect("bucket");
    let upload_id = store.create_multipart_upload(BUCKET, "key", PutOptions::default(), None).await.expect("create");
    // The body pauses halfway; meanwhile two drives go away, so the part's
    // shards reach all six drives but its record only four (W = 5).
    // Past the first block (BLOCK_SIZE_BYTES), so every drive's shard file is open.
    let data = vec![3u8; 3 * bulwark_object::BLOCK_SIZE_BYTES];
    let middle = data.len() / 2;
    let (first, second) = (Bytes::copy_from_slice(&data[..middle]), Bytes::copy_from_slice(&data[middle..]));
    let (halfway, reached) = tokio::sync::oneshot::channel::<()>();
    let (resume, go) = tokio::sync::oneshot::channel::<()>();
    let paused: bulwark_object::ByteStream =
        Box::pin(futures::stream::iter([Ok(first)]).chain(futures::stream::once(async move {
            let _ = halfway.send(());
            let _ = go.await;
            Ok(second)
        })));
    let upload =
        store.upload_part(BUCKET, "key", &upload_id, 1, paused, Some(data.len() as u64), PutOptions::default());
    let interfere = async {
        reached.await.expect("the body reached its middle");
        for position in [4, 5] {
            bulwark_object::testing::set_drive_online(dir.path(), &drives[position], position, false).await;
        }
        resume.send(()).expect("resume the body");
    };
    let (uploaded, ()) = tokio::join!(upload, interfere);
    assert!(
        matches!(uploaded, Err(bulwark_object::Error::InsufficientDrives { .. })),
        "four part records are below W = 5: {uploaded:?}"
    );
    for position in [4, 5] {
        bulwark_object::testing::set_drive_online(dir.path(), &drives[position], position, true).await;
    }
    let (_, parts, _) = store.list_parts(BUCKET, "key", &upload_id).await.expect("list parts");
    assert!(parts.is_empty(), "the failed part is rolled back on every drive, not listed: {parts:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_complete_that_misses_the_write_quorum_leaves_the_upload_to_complete_again() {
    use bulwark_object::testing::{FaultyDrive, local_store_with};
    let dir = tempfile::tempdir().expect("tempdir");
    let (store, drives) = local_store_with(dir.path(), FaultyDrive::wrap).await;
    store.make_bucket(BUCKET).await.expect("bucket");
    let (upload_id, parts, data) = upload_with_a_part(&store, "key", 3).await;

    // Two drives refuse the Complete's commit: four are below W = 5, so the
    // version is taken back where it landed, and so must the upload's removal be.
    drives[4].fail_commits(true);
    drives[5].fail_commits(true);
    let refused = store.complete_multipart_upload(BUCKET, "key", &upload_id, &parts, None, &WriteCondition::None).await;
    assert!(matches!(refused, Err(bulwark_object::Error::InsufficientDrives { .. })), "{refused:?}");
    drives[4].fail_commits(false);
    drives[5].fail_commits(false);
    assert!(read_object(&store, BUCKET, "key", None).await.is_err(), "a refused Complete makes no object");

    let (_, listed, _) = store.list_parts(BUCKET, "key", &upload_id).await.expect("the upload is still there");
    assert_eq!(listed.len(), 1, "with its part");
    let done = store
        .complete_multipart_upload(BUCKET, "key", &upload_id, &parts, None, &WriteCondition::None)
        .await
        .expect("the retried Complete succeeds");
    assert_eq!((done.redundancy.durable, done.redundancy.total), (6, 6));
    assert_eq!(read_object(&store, BUCKET, "key", None).await.expect("the object reads"), data);
}
