//! A user stores, reads, inspects, copies and deletes objects — small ones kept
//! inline and large erasure-coded ones — with ranges, conditions and metadata, and
//! gets the S3 error that names the problem when a request cannot be served.

use aws_sdk_s3::Client;
use aws_sdk_s3::primitives::{ByteStream, DateTime, DateTimeFormat};
use aws_sdk_s3::types::{Delete, MetadataDirective, ObjectIdentifier};
use bulwark_e2e::{
    ResponseCapture, TestServer, assert_http_status, assert_s3_error, create_bucket, etag_of, get_bytes, payload,
    put_bytes, read_all,
};

const BUCKET: &str = "objects";
/// Kept inline in the metadata store.
const SMALL_BYTES: usize = 10_000;
/// Erasure-coded into shard files, and not a multiple of any block size.
const LARGE_BYTES: usize = 1024 * 1024 + 12_345;

async fn last_modified(client: &Client, key: &str) -> DateTime {
    *client
        .head_object()
        .bucket(BUCKET)
        .key(key)
        .send()
        .await
        .expect("HeadObject")
        .last_modified()
        .expect("HeadObject returns Last-Modified")
}

fn seconds_before(time: &DateTime, seconds: i64) -> DateTime {
    DateTime::from_secs(time.secs() - seconds)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn objects_of_every_size_read_back_byte_identical_with_md5_etags() {
    let (_server, client) = TestServer::start_with_bucket(BUCKET).await;
    let sizes = [0, 1, SMALL_BYTES, 128 * 1024, 128 * 1024 + 1, LARGE_BYTES, 3 * 1024 * 1024 + 7];
    for (seed, size) in sizes.into_iter().enumerate() {
        let key = format!("size-{size}");
        let data = payload(seed as u64, size);
        let put_etag = put_bytes(&client, BUCKET, &key, data.clone()).await;
        assert_eq!(put_etag, etag_of(&data), "PUT ETag of {size} bytes");

        let output = client.get_object().bucket(BUCKET).key(&key).send().await.expect("GetObject");
        assert_eq!(output.e_tag(), Some(put_etag.as_str()), "GET ETag of {size} bytes");
        assert_eq!(output.content_length(), Some(size as i64));
        let got = read_all(output.body).await;
        assert!(got == data, "GET of {size} bytes returned different bytes");
    }
}

/// Concurrent large PUTs share the MD5 hashing threads, which hash the blocks
/// of several bodies side by side: each PUT still gets the MD5 of its own body
/// as ETag, a right Content-MD5 is accepted and a wrong one refused with
/// BadDigest (storing nothing), whatever else is being hashed at the time.
/// The metrics show that blocks were indeed hashed side by side.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_large_puts_each_get_the_md5_of_their_own_body() {
    use base64::Engine;
    let (server, client) = TestServer::start_with_bucket(BUCKET).await;
    let puts = (0..12u64).map(|n| {
        let client = client.clone();
        async move {
            // Several erasure blocks each, of different lengths.
            let data = payload(100 + n, 5 * 1024 * 1024 + n as usize * 4_099);
            let key = format!("concurrent-{n}");
            let md5 = base64::engine::general_purpose::STANDARD.encode(bulwark_e2e::md5_bytes(&data));
            let request = client.put_object().bucket(BUCKET).key(&key).body(ByteStream::from(data.clone()));
            if n % 3 == 2 {
                let wrong = base64::engine::general_purpose::STANDARD.encode(bulwark_e2e::md5_bytes(b"other"));
                assert_s3_error(request.content_md5(wrong).send().await, 400, "BadDigest");
                return (key, None);
            }
            let request = if n % 3 == 1 { request.content_md5(md5) } else { request };
            let output = request.send().await.expect("PutObject");
            assert_eq!(output.e_tag(), Some(etag_of(&data).as_str()), "PUT ETag of {key}");
            (key, Some(data))
        }
    });
    for (key, data) in futures::future::join_all(puts).await {
        match data {
            Some(data) => assert!(get_bytes(&client, BUCKET, &key).await == data, "{key} reads back"),
            None => {
                let result = client.head_object().bucket(BUCKET).key(&key).send().await;
                assert_http_status(result, 404);
            }
        }
    }
    let metrics = server.metrics().await;
    let shared = bulwark_e2e::metric_value(&metrics, "bulwark_md5_blocks_total{hashed=\"shared\"}");
    assert!(shared.is_some_and(|n| n > 0.0), "some blocks were hashed side by side:\n{metrics}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn head_object_reports_size_etag_and_last_modified() {
    let (_server, client) = TestServer::start_with_bucket(BUCKET).await;
    let data = payload(7, LARGE_BYTES);
    let etag = put_bytes(&client, BUCKET, "headed", data.clone()).await;

    let head = client.head_object().bucket(BUCKET).key("headed").send().await.expect("HeadObject");
    assert_eq!(head.content_length(), Some(LARGE_BYTES as i64));
    assert_eq!(head.e_tag(), Some(etag.as_str()));
    let modified = head.last_modified().expect("Last-Modified");
    let now = DateTime::from(std::time::SystemTime::now());
    assert!((now.secs() - modified.secs()).abs() < 300, "Last-Modified {modified} is not about now ({now})");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_metadata_and_content_headers_round_trip() {
    let (_server, client) = TestServer::start_with_bucket(BUCKET).await;
    let expires = DateTime::from_secs(2_139_722_880);
    for (key, size) in [("inline", SMALL_BYTES), ("coded", LARGE_BYTES)] {
        client
            .put_object()
            .bucket(BUCKET)
            .key(key)
            .body(ByteStream::from(payload(8, size)))
            .metadata("color", "blue")
            .metadata("Mixed-Case", "Value with spaces")
            .content_type("application/x-bulwark-test")
            .content_encoding("gzip")
            .content_disposition("attachment; filename=\"report.txt\"")
            .content_language("de-CH")
            .cache_control("max-age=60, private")
            .expires(expires)
            .send()
            .await
            .expect("PutObject with metadata");

        let head = client.head_object().bucket(BUCKET).key(key).send().await.expect("HeadObject");
        let get = client.get_object().bucket(BUCKET).key(key).send().await.expect("GetObject");
        let metadata = head.metadata().expect("HEAD returns user metadata");
        assert_eq!(metadata.get("color").map(String::as_str), Some("blue"));
        assert_eq!(
            metadata.get("mixed-case").map(String::as_str),
            Some("Value with spaces"),
            "user metadata names come back lower-cased: {metadata:?}"
        );
        assert_eq!(get.metadata(), head.metadata(), "GET and HEAD agree on metadata");
        for (what, head_value, get_value, expected) in [
            ("Content-Type", head.content_type(), get.content_type(), "application/x-bulwark-test"),
            ("Content-Encoding", head.content_encoding(), get.content_encoding(), "gzip"),
            (
                "Content-Disposition",
                head.content_disposition(),
                get.content_disposition(),
                "attachment; filename=\"report.txt\"",
            ),
            ("Content-Language", head.content_language(), get.content_language(), "de-CH"),
            ("Cache-Control", head.cache_control(), get.cache_control(), "max-age=60, private"),
        ] {
            assert_eq!(head_value, Some(expected), "HEAD {what} of {key}");
            assert_eq!(get_value, Some(expected), "GET {what} of {key}");
        }
        let expires_text = expires.fmt(DateTimeFormat::HttpDate).expect("format an HTTP date");
        assert_eq!(head.expires_string(), Some(expires_text.as_str()), "HEAD Expires");
        assert_eq!(get.expires_string(), Some(expires_text.as_str()), "GET Expires");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_and_head_of_a_missing_key_are_no_such_key_and_404() {
    let (_server, client) = TestServer::start_with_bucket(BUCKET).await;
    let get = client.get_object().bucket(BUCKET).key("absent").send().await;
    assert_s3_error(get, 404, "NoSuchKey");
    let head = client.head_object().bucket(BUCKET).key("absent").send().await;
    assert_http_status(head, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn range_gets_return_exactly_the_requested_bytes_with_206() {
    let (_server, client) = TestServer::start_with_bucket(BUCKET).await;
    for (key, size) in [("inline", SMALL_BYTES), ("coded", LARGE_BYTES)] {
        let data = payload(9, size);
        put_bytes(&client, BUCKET, key, data.clone()).await;
        let last = size - 1;
        // (Range header, first byte, last byte)
        let cases = [
            ("bytes=0-0".to_owned(), 0, 0),
            ("bytes=10-99".to_owned(), 10, 99),
            (format!("bytes={}-{}", size / 3, size / 2), size / 3, size / 2),
            (format!("bytes={}-", size - 777), size - 777, last),
            ("bytes=-500".to_owned(), size - 500, last),
            (format!("bytes={}-{}", size - 10, size + 1000), size - 10, last),
            (format!("bytes=-{}", size + 5), 0, last),
        ];
        for (range, first, end) in cases {
            let capture = ResponseCapture::new();
            let output = client
                .get_object()
                .bucket(BUCKET)
                .key(key)
                .range(&range)
                .customize()
                .interceptor(capture.clone())
                .send()
                .await
                .unwrap_or_else(|e| panic!("GET {key} {range}: {e:?}"));
            assert_eq!(capture.status(), Some(206), "status of {key} {range}");
            assert_eq!(
                output.content_range(),
                Some(format!("bytes {first}-{end}/{size}").as_str()),
                "Content-Range of {key} {range}"
            );
            assert_eq!(output.content_length(), Some((end - first + 1) as i64));
            let got = read_all(output.body).await;
            assert!(got == data[first..=end], "bytes of {key} {range} differ");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_range_starting_past_the_end_is_invalid_range_416() {
    let (_server, client) = TestServer::start_with_bucket(BUCKET).await;
    for (key, size) in [("inline", SMALL_BYTES), ("coded", LARGE_BYTES)] {
        put_bytes(&client, BUCKET, key, payload(10, size)).await;
        for range in [format!("bytes={size}-"), format!("bytes={}-{}", size + 10, size + 20)] {
            let result = client.get_object().bucket(BUCKET).key(key).range(&range).send().await;
            assert_s3_error(result, 416, "InvalidRange");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_if_match_serves_the_current_etag_and_refuses_another_with_412() {
    let (_server, client) = TestServer::start_with_bucket(BUCKET).await;
    let data = payload(11, LARGE_BYTES);
    let etag = put_bytes(&client, BUCKET, "k", data.clone()).await;

    let matching = client
        .get_object()
        .bucket(BUCKET)
        .key("k")
        .if_match(&etag)
        .send()
        .await
        .expect("GET If-Match with the current ETag");
    assert!(read_all(matching.body).await == data);
    let other =
        client.get_object().bucket(BUCKET).key("k").if_match("\"0123456789abcdef0123456789abcdef\"").send().await;
    assert_s3_error(other, 412, "PreconditionFailed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_if_none_match_with_the_current_etag_is_304_not_modified() {
    let (_server, client) = TestServer::start_with_bucket(BUCKET).await;
    let data = payload(12, SMALL_BYTES);
    let etag = put_bytes(&client, BUCKET, "k", data.clone()).await;

    let matching = client.get_object().bucket(BUCKET).key("k").if_none_match(&etag).send().await;
    assert_http_status(matching, 304);
    let other = client
        .get_object()
        .bucket(BUCKET)
        .key("k")
        .if_none_match("\"0123456789abcdef0123456789abcdef\"")
        .send()
        .await
        .expect("GET If-None-Match with another ETag");
    assert!(read_all(other.body).await == data);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_if_modified_since_is_304_for_an_unchanged_object_and_200_for_a_changed_one() {
    let (_server, client) = TestServer::start_with_bucket(BUCKET).await;
    let data = payload(13, LARGE_BYTES);
    put_bytes(&client, BUCKET, "k", data.clone()).await;
    let modified = last_modified(&client, "k").await;

    let unchanged = client.get_object().bucket(BUCKET).key("k").if_modified_since(modified).send().await;
    assert_http_status(unchanged, 304);
    let changed = client
        .get_object()
        .bucket(BUCKET)
        .key("k")
        .if_modified_since(seconds_before(&modified, 86_400))
        .send()
        .await
        .expect("GET If-Modified-Since a day before the write");
    assert!(read_all(changed.body).await == data);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_if_unmodified_since_is_412_for_a_changed_object_and_200_for_an_unchanged_one() {
    let (_server, client) = TestServer::start_with_bucket(BUCKET).await;
    let data = payload(14, SMALL_BYTES);
    put_bytes(&client, BUCKET, "k", data.clone()).await;
    let modified = last_modified(&client, "k").await;

    let changed =
        client.get_object().bucket(BUCKET).key("k").if_unmodified_since(seconds_before(&modified, 86_400)).send().await;
    assert_s3_error(changed, 412, "PreconditionFailed");
    let unchanged = client
        .get_object()
        .bucket(BUCKET)
        .key("k")
        .if_unmodified_since(modified)
        .send()
        .await
        .expect("GET If-Unmodified-Since the write");
    assert!(read_all(unchanged.body).await == data);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_holding_if_match_overrides_a_failing_if_unmodified_since_as_in_s3() {
    let (_server, client) = TestServer::start_with_bucket(BUCKET).await;
    let etag = put_bytes(&client, BUCKET, "k", payload(15, SMALL_BYTES)).await;
    let modified = last_modified(&client, "k").await;

    client
        .get_object()
        .bucket(BUCKET)
        .key("k")
        .if_match(&etag)
        .if_unmodified_since(seconds_before(&modified, 86_400))
        .send()
        .await
        .expect("If-Match true and If-Unmodified-Since false is served (RFC 7232 §6)");
    let not_modified = client
        .get_object()
        .bucket(BUCKET)
        .key("k")
        .if_none_match(&etag)
        .if_modified_since(seconds_before(&modified, 86_400))
        .send()
        .await;
    assert_http_status(not_modified, 304);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn response_overrides_replace_the_returned_headers() {
    let (_server, client) = TestServer::start_with_bucket(BUCKET).await;
    client
        .put_object()
        .bucket(BUCKET)
        .key("k")
        .body(ByteStream::from(payload(16, LARGE_BYTES)))
        .content_type("application/octet-stream")
        .send()
        .await
        .expect("PutObject");
    let expires = DateTime::from_secs(2_000_000_000);

    let output = client
        .get_object()
        .bucket(BUCKET)
        .key("k")
        .response_content_type("text/plain")
        .response_content_disposition("inline; filename=\"x.txt\"")
        .response_content_encoding("identity")
        .response_content_language("fr")
        .response_cache_control("no-store")
        .response_expires(expires)
        .send()
        .await
        .expect("GetObject with response-* overrides");
    assert_eq!(output.content_type(), Some("text/plain"));
    assert_eq!(output.content_disposition(), Some("inline; filename=\"x.txt\""));
    assert_eq!(output.content_encoding(), Some("identity"));
    assert_eq!(output.content_language(), Some("fr"));
    assert_eq!(output.cache_control(), Some("no-store"));
    let expires_text = expires.fmt(DateTimeFormat::HttpDate).expect("format an HTTP date");
    assert_eq!(output.expires_string(), Some(expires_text.as_str()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_object_is_gone_and_deleting_a_missing_key_succeeds() {
    let (_server, client) = TestServer::start_with_bucket(BUCKET).await;
    put_bytes(&client, BUCKET, "small", payload(17, SMALL_BYTES)).await;
    put_bytes(&client, BUCKET, "large", payload(18, LARGE_BYTES)).await;

    for key in ["small", "large", "never-existed"] {
        client
            .delete_object()
            .bucket(BUCKET)
            .key(key)
            .send()
            .await
            .unwrap_or_else(|e| panic!("DeleteObject {key}: {e:?}"));
        let get = client.get_object().bucket(BUCKET).key(key).send().await;
        assert_s3_error(get, 404, "NoSuchKey");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_objects_removes_every_key_and_quiet_mode_reports_no_successes() {
    let (_server, client) = TestServer::start_with_bucket(BUCKET).await;
    for (i, key) in ["a", "b", "c", "d"].into_iter().enumerate() {
        let size = if i % 2 == 0 { SMALL_BYTES } else { LARGE_BYTES };
        put_bytes(&client, BUCKET, key, payload(20 + i as u64, size)).await;
    }
    let ids = |keys: &[&str]| {
        keys.iter().map(|k| ObjectIdentifier::builder().key(*k).build().expect("object identifier")).collect::<Vec<_>>()
    };

    let loud = client
        .delete_objects()
        .bucket(BUCKET)
        .delete(Delete::builder().set_objects(Some(ids(&["a", "b", "missing"]))).build().expect("delete request"))
        .send()
        .await
        .expect("DeleteObjects");
    let mut deleted: Vec<&str> = loud.deleted().iter().filter_map(|d| d.key()).collect();
    deleted.sort_unstable();
    assert_eq!(deleted, ["a", "b", "missing"], "every key is reported deleted");
    assert!(loud.errors().is_empty(), "no errors: {:?}", loud.errors());

    let quiet = client
        .delete_objects()
        .bucket(BUCKET)
        .delete(Delete::builder().set_objects(Some(ids(&["c", "d"]))).quiet(true).build().expect("delete request"))
        .send()
        .await
        .expect("DeleteObjects quiet");
    assert!(quiet.deleted().is_empty(), "quiet mode lists no successes");
    assert!(quiet.errors().is_empty(), "no errors: {:?}", quiet.errors());

    let listed = client.list_objects_v2().bucket(BUCKET).send().await.expect("ListObjectsV2");
    assert!(listed.contents().is_empty(), "the bucket is empty");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copy_object_copies_bytes_and_metadata_by_default() {
    let (_server, client) = TestServer::start_with_bucket(BUCKET).await;
    create_bucket(&client, "elsewhere").await;
    for (key, size) in [("inline", SMALL_BYTES), ("coded", LARGE_BYTES)] {
        let data = payload(30, size);
        client
            .put_object()
            .bucket(BUCKET)
            .key(key)
            .body(ByteStream::from(data.clone()))
            .metadata("origin", "source")
            .content_type("image/png")
            .send()
            .await
            .expect("PutObject");

        for (bucket, target) in [(BUCKET, format!("{key}-copy")), ("elsewhere", key.to_owned())] {
            let copied = client
                .copy_object()
                .bucket(bucket)
                .key(&target)
                .copy_source(format!("{BUCKET}/{key}"))
                .send()
                .await
                .expect("CopyObject");
            let result = copied.copy_object_result().expect("CopyObjectResult");
            assert_eq!(result.e_tag(), Some(etag_of(&data).as_str()));
            assert!(result.last_modified().is_some(), "copy result has LastModified");

            let get = client.get_object().bucket(bucket).key(&target).send().await.expect("GET the copy");
            assert_eq!(get.content_type(), Some("image/png"));
            assert_eq!(get.metadata().and_then(|m| m.get("origin")).map(String::as_str), Some("source"));
            assert!(read_all(get.body).await == data, "copy {bucket}/{target} bytes");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copy_object_with_replace_directive_takes_the_new_metadata() {
    let (_server, client) = TestServer::start_with_bucket(BUCKET).await;
    let data = payload(31, LARGE_BYTES);
    client
        .put_object()
        .bucket(BUCKET)
        .key("source")
        .body(ByteStream::from(data.clone()))
        .metadata("old", "1")
        .content_type("image/png")
        .send()
        .await
        .expect("PutObject");

    client
        .copy_object()
        .bucket(BUCKET)
        .key("replaced")
        .copy_source(format!("{BUCKET}/source"))
        .metadata_directive(MetadataDirective::Replace)
        .metadata("new", "2")
        .content_type("text/csv")
        .send()
        .await
        .expect("CopyObject REPLACE");
    let get = client.get_object().bucket(BUCKET).key("replaced").send().await.expect("GET the copy");
    let metadata = get.metadata().cloned().unwrap_or_default();
    assert_eq!(metadata.get("new").map(String::as_str), Some("2"));
    assert!(!metadata.contains_key("old"), "old metadata was replaced: {metadata:?}");
    assert_eq!(get.content_type(), Some("text/csv"));
    assert!(read_all(get.body).await == data);

    // Copying an object onto itself is allowed only to replace its metadata.
    client
        .copy_object()
        .bucket(BUCKET)
        .key("source")
        .copy_source(format!("{BUCKET}/source"))
        .metadata_directive(MetadataDirective::Replace)
        .metadata("old", "rewritten")
        .send()
        .await
        .expect("CopyObject onto itself with REPLACE");
    let head = client.head_object().bucket(BUCKET).key("source").send().await.expect("HeadObject");
    assert_eq!(head.metadata().and_then(|m| m.get("old")).map(String::as_str), Some("rewritten"));
    assert!(get_bytes(&client, BUCKET, "source").await == data);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copy_source_conditions_that_fail_are_precondition_failed_and_copy_nothing() {
    let (_server, client) = TestServer::start_with_bucket(BUCKET).await;
    let etag = put_bytes(&client, BUCKET, "source", payload(32, LARGE_BYTES)).await;
    let modified = last_modified(&client, "source").await;
    let day_before = seconds_before(&modified, 86_400);
    let copy = || client.copy_object().bucket(BUCKET).key("target").copy_source(format!("{BUCKET}/source"));

    let cases = [
        ("if-match another etag", copy().copy_source_if_match("\"ffffffffffffffffffffffffffffffff\"")),
        ("if-none-match the etag", copy().copy_source_if_none_match(&etag)),
        ("if-unmodified-since before", copy().copy_source_if_unmodified_since(day_before)),
        ("if-modified-since the write", copy().copy_source_if_modified_since(modified)),
    ];
    for (what, request) in cases {
        let result = request.send().await;
        assert!(result.is_err(), "a copy with {what} must fail");
        assert_s3_error(result, 412, "PreconditionFailed");
    }
    let head = client.head_object().bucket(BUCKET).key("target").send().await;
    assert_http_status(head, 404);

    copy()
        .copy_source_if_match(&etag)
        .copy_source_if_modified_since(day_before)
        .send()
        .await
        .expect("copy whose conditions hold succeeds");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copy_from_a_missing_source_is_no_such_key() {
    let (_server, client) = TestServer::start_with_bucket(BUCKET).await;
    let result = client.copy_object().bucket(BUCKET).key("target").copy_source(format!("{BUCKET}/absent")).send().await;
    assert_s3_error(result, 404, "NoSuchKey");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn put_if_none_match_star_creates_once_then_is_precondition_failed() {
    let (_server, client) = TestServer::start_with_bucket(BUCKET).await;
    let first = payload(40, LARGE_BYTES);
    client
        .put_object()
        .bucket(BUCKET)
        .key("once")
        .body(ByteStream::from(first.clone()))
        .if_none_match("*")
        .send()
        .await
        .expect("If-None-Match: * on an absent key creates it");

    let second = client
        .put_object()
        .bucket(BUCKET)
        .key("once")
        .body(ByteStream::from(payload(41, SMALL_BYTES)))
        .if_none_match("*")
        .send()
        .await;
    assert_s3_error(second, 412, "PreconditionFailed");
    assert!(get_bytes(&client, BUCKET, "once").await == first, "the refused PUT changed nothing");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn put_if_match_replaces_only_the_version_it_names() {
    let (_server, client) = TestServer::start_with_bucket(BUCKET).await;
    let first = payload(42, SMALL_BYTES);
    let etag = put_bytes(&client, BUCKET, "k", first.clone()).await;

    let stale = client
        .put_object()
        .bucket(BUCKET)
        .key("k")
        .body(ByteStream::from(payload(43, LARGE_BYTES)))
        .if_match("\"0123456789abcdef0123456789abcdef\"")
        .send()
        .await;
    assert_s3_error(stale, 412, "PreconditionFailed");
    assert!(get_bytes(&client, BUCKET, "k").await == first, "the refused PUT changed nothing");

    let second = payload(44, LARGE_BYTES);
    client
        .put_object()
        .bucket(BUCKET)
        .key("k")
        .body(ByteStream::from(second.clone()))
        .if_match(&etag)
        .send()
        .await
        .expect("If-Match with the current ETag replaces the object");
    assert!(get_bytes(&client, BUCKET, "k").await == second);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overwriting_an_object_replaces_its_bytes_whatever_the_sizes() {
    let (_server, client) = TestServer::start_with_bucket(BUCKET).await;
    let sizes = [SMALL_BYTES, LARGE_BYTES, 2 * LARGE_BYTES, SMALL_BYTES, 0];
    for (seed, size) in sizes.into_iter().enumerate() {
        let data = payload(50 + seed as u64, size);
        put_bytes(&client, BUCKET, "k", data.clone()).await;
        assert!(get_bytes(&client, BUCKET, "k").await == data, "after overwriting with {size} bytes");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_with_spaces_symbols_and_unicode_round_trip() {
    let (_server, client) = TestServer::start_with_bucket(BUCKET).await;
    let keys = [
        "dir/sub dir/file name.txt",
        "plus+equals=ampersand&question?hash#percent%",
        "ünïcødé/漢字/emoji-🦀",
        "trailing/slash/",
        "a//double//slash",
        "tilde~star*(parens)!'quote",
    ];
    for (seed, key) in keys.into_iter().enumerate() {
        let data = payload(60 + seed as u64, SMALL_BYTES);
        put_bytes(&client, BUCKET, key, data.clone()).await;
        assert!(get_bytes(&client, BUCKET, key).await == data, "bytes of {key:?}");
    }
    let listed = client.list_objects_v2().bucket(BUCKET).send().await.expect("ListObjectsV2");
    let mut listed: Vec<&str> = listed.contents().iter().filter_map(|o| o.key()).collect();
    let mut expected = keys.to_vec();
    expected.sort_unstable();
    listed.sort_unstable();
    assert_eq!(listed, expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_part_number_one_of_a_single_part_object_is_the_whole_object() {
    let (_server, client) = TestServer::start_with_bucket(BUCKET).await;
    let data = payload(70, LARGE_BYTES);
    put_bytes(&client, BUCKET, "k", data.clone()).await;

    let output = client.get_object().bucket(BUCKET).key("k").part_number(1).send().await.expect("GET partNumber=1");
    assert_eq!(output.content_length(), Some(LARGE_BYTES as i64));
    assert!(read_all(output.body).await == data);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn objects_written_before_a_restart_read_back_after_it() {
    let (mut server, _client) = TestServer::start_with_bucket(BUCKET).await;
    let client = server.client();
    let small = payload(80, SMALL_BYTES);
    let large = payload(81, LARGE_BYTES);
    put_bytes(&client, BUCKET, "small", small.clone()).await;
    put_bytes(&client, BUCKET, "large", large.clone()).await;

    server.restart().await;
    let client = server.client();
    assert!(get_bytes(&client, BUCKET, "small").await == small);
    assert!(get_bytes(&client, BUCKET, "large").await == large);
}
