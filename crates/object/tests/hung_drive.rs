//! A drive that stops answering (a dying disk hangs rather than fails) holds
//! no request: each call on it has a deadline, writes go on with the other
//! drives and say so in their receipt, reads rebuild from parity, and the
//! drive is skipped until it answers again. Real local drives in a temporary
//! directory, one of which hangs on demand.

use bulwark_object::testing::{body, read_object};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bulwark_object::testing::{FaultyDrive, local_store_with};
use bulwark_object::{ObjectStore, PutOptions};
use bulwark_storage::Drive;
use bulwark_storage::timed::TimedDrive;

const BUCKET: &str = "bucket";
/// Deadline of one drive call in these tests (the server's default is 30 s).
const LIMIT: Duration = Duration::from_millis(300);
const COOLDOWN: Duration = Duration::from_millis(500);
/// A request that is not done by then is hanging on the drive.
const REQUEST_DEADLINE: Duration = Duration::from_secs(20);

fn data(seed: u8) -> Vec<u8> {
    (0..3 * 1024 * 1024u32).map(|i| (i as u8).wrapping_mul(29).wrapping_add(seed)).collect()
}

/// A store whose drives have deadlines; returns the fault switches too.
async fn store(dir: &std::path::Path) -> (ObjectStore, Vec<Arc<TimedDrive>>, Vec<Arc<FaultyDrive>>) {
    let faulty = Mutex::new(Vec::new());
    let (store, timed) = local_store_with(dir, |drive| {
        let switch = FaultyDrive::wrap(drive);
        faulty.lock().expect("lock").push(switch.clone());
        Arc::new(TimedDrive::with_cooldown(switch, LIMIT, COOLDOWN))
    })
    .await;
    store.make_bucket(BUCKET).await.expect("bucket");
    (store, timed, faulty.into_inner().expect("lock"))
}

async fn put(store: &ObjectStore, key: &str, data: &[u8]) -> bulwark_object::PutOutcome {
    let put = store.put_object(BUCKET, key, body(data.to_vec()), Some(data.len() as u64), PutOptions::default());
    tokio::time::timeout(REQUEST_DEADLINE, put).await.expect("the PUT does not hang on the drive").expect("put")
}

async fn get(store: &ObjectStore, key: &str) -> Vec<u8> {
    let read = read_object(store, BUCKET, key, None);
    tokio::time::timeout(REQUEST_DEADLINE, read).await.expect("the GET does not hang on the drive").expect("get")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_put_goes_on_without_a_drive_that_stops_answering_and_the_drive_returns_when_it_answers() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (store, timed, faulty) = store(dir.path()).await;
    faulty[2].hang(true);
    let first = data(1);
    let written = put(&store, "first", &first).await;
    assert_eq!((written.redundancy.durable, written.redundancy.total), (5, 6), "the receipt leaves out the hung drive");
    assert!(!timed[2].is_online(), "the drive that timed out is held offline");
    // Requests that follow skip it at once.
    let second = data(2);
    let written = put(&store, "second", &second).await;
    assert_eq!(written.redundancy.durable, 5);
    assert!(get(&store, "first").await == first, "read back from the five drives");

    // The disk answers again: after the cool-down a health check lets it back in.
    faulty[2].hang(false);
    tokio::time::sleep(COOLDOWN).await;
    assert!(timed[2].check_health().await, "the drive answers in time again");
    assert!(timed[2].is_online());
    let third = data(3);
    assert_eq!(put(&store, "third", &third).await.redundancy.durable, 6, "all six drives take writes again");
    assert!(get(&store, "second").await == second);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_get_rebuilds_from_parity_when_a_drive_with_data_stops_answering() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (store, timed, faulty) = store(dir.path()).await;
    let object = data(7);
    assert_eq!(put(&store, "key", &object).await.redundancy.durable, 6);
    // Every drive holds a shard of it; two of them stop answering mid-life.
    faulty[0].hang(true);
    faulty[3].hang(true);
    assert!(get(&store, "key").await == object, "rebuilt from the four drives that answer");
    assert!(!timed[0].is_online() && !timed[3].is_online(), "both are held offline after timing out");
    assert!(get(&store, "key").await == object, "and the next read does not wait for them");
}
