//! Crashes on either end of an upload. The server is killed with SIGKILL in the
//! middle of a stream of concurrent PUTs and overwrites: after a restart every
//! acknowledged write is there, byte for byte, and every object is some write in
//! full, never partial or corrupt. A client that dies mid-upload stores nothing.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_sdk_s3::Client;
use aws_sdk_s3::error::DisplayErrorContext;
use aws_sdk_s3::presigning::PresigningConfig;
use aws_sdk_s3::primitives::ByteStream;
use bulwark_e2e::{
    ChunkTampering, TestServer, assert_s3_error, error_code, etag_of, get_bytes, md5_hex, payload, put_bytes,
    put_signed_aws_chunked, raw_http, read_all,
};

const BUCKET: &str = "crash";
const WRITERS: usize = 8;
/// A bound on each writer, in case the server is much faster than expected.
const WRITES_PER_WRITER_MAX: u64 = 2_000;
const KILL_AFTER: Duration = Duration::from_secs(2);
const WRITERS_STOP_TIMEOUT: Duration = Duration::from_secs(60);
const OBJECT_BYTES_MIN: usize = 200 * 1024;
const OBJECT_BYTES_MAX: usize = 2 * 1024 * 1024;

/// One PUT a writer started: its payload is `payload(seed, len)`.
#[derive(Debug, Clone, Copy)]
struct Attempt {
    seed: u64,
    len: usize,
    acknowledged: bool,
}

/// Every attempt per key, in the order its (single) writer made them.
type Journal = Arc<Mutex<BTreeMap<String, Vec<Attempt>>>>;

fn splitmix64(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// Writes until its first failure (the server died) or until told to stop. Each key
/// is written twice, so that some overwrites are in flight at the kill too.
async fn writer(client: Client, index: usize, journal: Journal, stop: Arc<AtomicBool>) {
    for write in 0..WRITES_PER_WRITER_MAX {
        if stop.load(Ordering::Relaxed) {
            return;
        }
        let key = format!("writer-{index}/object-{:04}", write / 2);
        let seed = ((index as u64) << 32) | write;
        let span = (OBJECT_BYTES_MAX - OBJECT_BYTES_MIN + 1) as u64;
        let len = OBJECT_BYTES_MIN + (splitmix64(seed) % span) as usize;
        let slot = {
            let mut journal = journal.lock().expect("journal lock");
            let attempts = journal.entry(key.clone()).or_default();
            attempts.push(Attempt { seed, len, acknowledged: false });
            attempts.len() - 1
        };
        let result =
            client.put_object().bucket(BUCKET).key(&key).body(ByteStream::from(payload(seed, len))).send().await;
        match result {
            Ok(_) => {
                let mut journal = journal.lock().expect("journal lock");
                let attempts = journal.get_mut(&key).expect("journalled key");
                attempts[slot].acknowledged = true;
            }
            Err(_) => return,
        }
    }
}

/// Checks one key after the restart against what was attempted and acknowledged.
async fn assert_key_consistent(client: &Client, key: &str, attempts: &[Attempt]) {
    let last_acknowledged = attempts.iter().rposition(|a| a.acknowledged);
    // The last acknowledged write, or a later one that committed unacknowledged.
    let allowed = &attempts[last_acknowledged.unwrap_or(0)..];
    let output = match client.get_object().bucket(BUCKET).key(key).send().await {
        Ok(output) => output,
        Err(error) if error_code(&error).as_deref() == Some("NoSuchKey") => {
            assert!(last_acknowledged.is_none(), "{key}: an acknowledged write is lost ({attempts:?})");
            return;
        }
        Err(error) => panic!("GET {key} after the restart: {}", DisplayErrorContext(&error)),
    };
    let etag = output.e_tag().map(str::to_owned);
    let got = read_all(output.body).await;
    let got_md5 = md5_hex(&got);
    let matching = allowed.iter().find(|a| a.len == got.len() && md5_hex(&payload(a.seed, a.len)) == got_md5);
    let Some(attempt) = matching else {
        panic!(
            "{key}: {} bytes read back are none of the allowed writes {allowed:?} \
             (all attempts: {attempts:?})",
            got.len()
        );
    };
    assert_eq!(etag, Some(etag_of(&payload(attempt.seed, attempt.len))), "{key}: ETag of the object read back");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_during_concurrent_puts_loses_no_acknowledged_object_and_leaves_none_partial() {
    let (mut server, _client) = TestServer::start_with_bucket(BUCKET).await;
    let journal: Journal = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    // One attempt per request: a retry against the restarted server would blur
    // which writes the crash interrupted.
    let client = server.client_without_retries();
    let writers: Vec<_> =
        (0..WRITERS).map(|index| tokio::spawn(writer(client.clone(), index, journal.clone(), stop.clone()))).collect();

    tokio::time::sleep(KILL_AFTER).await;
    server.crash();
    stop.store(true, Ordering::Relaxed);
    for handle in writers {
        tokio::time::timeout(WRITERS_STOP_TIMEOUT, handle)
            .await
            .expect("a writer stops after the kill")
            .expect("a writer does not panic");
    }

    let journal = journal.lock().expect("journal lock").clone();
    let acknowledged = journal.values().flatten().filter(|a| a.acknowledged).count();
    let attempted: usize = journal.values().map(Vec::len).sum();
    eprintln!("{attempted} PUTs started, {acknowledged} acknowledged before the kill");
    assert!(acknowledged > 0, "no PUT was acknowledged in {KILL_AFTER:?}");
    assert!(attempted > acknowledged, "no PUT was in flight at the kill");

    server.start_again().await;
    let client = server.client();
    for (key, attempts) in &journal {
        assert_key_consistent(&client, key, attempts).await;
    }

    let mut pages = client.list_objects_v2().bucket(BUCKET).into_paginator().send();
    let mut listed = Vec::new();
    while let Some(page) = pages.next().await {
        let page = page.expect("ListObjectsV2 after the restart");
        listed.extend(page.contents().iter().cloned());
    }
    for object in &listed {
        let key = object.key().expect("listed key");
        let attempts = journal.get(key).unwrap_or_else(|| panic!("{key} is listed but was never written"));
        let size = object.size().unwrap_or_default() as usize;
        assert!(attempts.iter().any(|a| a.len == size), "{key} is listed with {size} bytes, which no write had");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_cut_off_mid_body_stores_nothing() {
    let (server, client) = TestServer::start_with_bucket(BUCKET).await;
    let original = payload(1, OBJECT_BYTES_MIN);
    put_bytes(&client, BUCKET, "existing", original.clone()).await;
    let data = payload(2, OBJECT_BYTES_MAX);

    for key in ["fresh-plain", "existing"] {
        // A presigned PUT announces the whole length and sends a third of it.
        let presigned = server
            .client_with(bulwark_e2e::ClientOptions {
                checksums_when_supported: false,
                ..bulwark_e2e::ClientOptions::default()
            })
            .put_object()
            .bucket(BUCKET)
            .key(key)
            .presigned(PresigningConfig::expires_in(Duration::from_secs(600)).expect("expiry"))
            .await
            .expect("presign PutObject");
        let length = data.len().to_string();
        let mut headers: Vec<(&str, &str)> = presigned.headers().collect();
        headers.push(("content-length", &length));
        let answer = raw_http::send_then_hang_up("PUT", presigned.uri(), &headers, &data[..data.len() / 3]).await;
        assert!(answer.as_ref().is_none_or(|r| r.status >= 400), "a cut-off PUT of {key} was answered {answer:?}");
    }
    let answer = put_signed_aws_chunked(
        &server,
        BUCKET,
        "fresh-chunked",
        &data,
        64 * 1024,
        ChunkTampering::HangUpAfterFirstChunk,
    )
    .await;
    assert!(answer.as_ref().is_none_or(|r| r.status >= 400), "a cut-off aws-chunked PUT was answered {answer:?}");

    // Give the server a moment to finish whatever it does with a broken request.
    tokio::time::sleep(Duration::from_millis(300)).await;
    for key in ["fresh-plain", "fresh-chunked"] {
        let result = client.get_object().bucket(BUCKET).key(key).send().await;
        assert_s3_error(result, 404, "NoSuchKey");
    }
    assert!(
        get_bytes(&client, BUCKET, "existing").await == original,
        "a cut-off overwrite left the old object in place"
    );
}
