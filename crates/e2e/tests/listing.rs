//! A user lists a bucket with ListObjects v1 and v2: prefixes, delimiters and common
//! prefixes, pages of max-keys with markers and continuation tokens, start-after,
//! owners on request and URL-encoded keys.

use aws_sdk_s3::Client;
use aws_sdk_s3::types::EncodingType;
use bulwark_e2e::raw_http::percent_decode;
use bulwark_e2e::{TestServer, etag_of, payload, put_bytes};

const BUCKET: &str = "listing";
/// Needs URL encoding: a `%` and a non-ASCII letter.
const ENCODED_KEY: &str = "enc/100%é.txt";
/// The keys of [`filled_bucket`], in listing (byte) order.
const KEYS: [&str; 7] = ["a.txt", "dir1/sub/z", "dir1/x", "dir1/y", "dir2/w", ENCODED_KEY, "z"];
/// Stored as shards rather than inline, so listing sizes cover both kinds.
const LARGE_KEY: &str = "dir1/y";
const LARGE_BYTES: usize = 300 * 1024;

fn size_of(key: &str) -> usize {
    if key == LARGE_KEY { LARGE_BYTES } else { 100 + key.len() }
}

fn seed_of(key: &str) -> u64 {
    KEYS.iter().position(|k| *k == key).expect("a known key") as u64
}

async fn filled_bucket() -> (TestServer, Client) {
    let (server, client) = TestServer::start_with_bucket(BUCKET).await;
    // Written out of order: the listing must sort.
    for key in KEYS.iter().rev() {
        put_bytes(&client, BUCKET, key, payload(seed_of(key), size_of(key))).await;
    }
    (server, client)
}

fn keys_of(contents: &[aws_sdk_s3::types::Object]) -> Vec<String> {
    contents.iter().map(|o| o.key().expect("every listed object has a key").to_owned()).collect()
}

fn prefixes_of(prefixes: &[aws_sdk_s3::types::CommonPrefix]) -> Vec<String> {
    prefixes.iter().map(|p| p.prefix().expect("every common prefix has a prefix").to_owned()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_v2_returns_every_key_in_order_with_its_size_and_etag() {
    let (_server, client) = filled_bucket().await;
    let listed = client.list_objects_v2().bucket(BUCKET).send().await.expect("ListObjectsV2");

    assert_eq!(keys_of(listed.contents()), KEYS);
    assert_eq!(listed.key_count(), Some(KEYS.len() as i32));
    assert_eq!(listed.is_truncated(), Some(false));
    for object in listed.contents() {
        let key = object.key().expect("key");
        let data = payload(seed_of(key), size_of(key));
        assert_eq!(object.size(), Some(data.len() as i64), "size of {key}");
        assert_eq!(object.e_tag(), Some(etag_of(&data).as_str()), "ETag of {key}");
        assert!(object.last_modified().is_some(), "LastModified of {key}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_v2_with_a_prefix_returns_only_the_keys_under_it() {
    let (_server, client) = filled_bucket().await;
    let dir1 =
        client.list_objects_v2().bucket(BUCKET).prefix("dir1/").send().await.expect("ListObjectsV2 prefix=dir1/");
    assert_eq!(keys_of(dir1.contents()), ["dir1/sub/z", "dir1/x", "dir1/y"]);
    assert_eq!(dir1.prefix(), Some("dir1/"));

    let none = client
        .list_objects_v2()
        .bucket(BUCKET)
        .prefix("no-such-prefix")
        .send()
        .await
        .expect("ListObjectsV2 prefix=no-such-prefix");
    assert!(none.contents().is_empty());
    assert_eq!(none.key_count(), Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_v2_with_a_delimiter_rolls_keys_up_into_common_prefixes() {
    let (_server, client) = filled_bucket().await;
    let top = client.list_objects_v2().bucket(BUCKET).delimiter("/").send().await.expect("ListObjectsV2 delimiter=/");
    assert_eq!(keys_of(top.contents()), ["a.txt", "z"]);
    assert_eq!(prefixes_of(top.common_prefixes()), ["dir1/", "dir2/", "enc/"]);
    assert_eq!(top.key_count(), Some(5), "KeyCount counts keys and common prefixes");

    let dir1 = client
        .list_objects_v2()
        .bucket(BUCKET)
        .prefix("dir1/")
        .delimiter("/")
        .send()
        .await
        .expect("ListObjectsV2 prefix=dir1/ delimiter=/");
    assert_eq!(keys_of(dir1.contents()), ["dir1/x", "dir1/y"]);
    assert_eq!(prefixes_of(dir1.common_prefixes()), ["dir1/sub/"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_v2_pages_through_max_keys_with_continuation_tokens() {
    let (_server, client) = filled_bucket().await;
    let mut seen = Vec::new();
    let mut token: Option<String> = None;
    let mut pages = 0;
    loop {
        let page = client
            .list_objects_v2()
            .bucket(BUCKET)
            .max_keys(2)
            .set_continuation_token(token.clone())
            .send()
            .await
            .expect("ListObjectsV2 max-keys=2");
        pages += 1;
        assert!(pages <= KEYS.len(), "paging does not end");
        assert_eq!(page.max_keys(), Some(2));
        assert_eq!(page.continuation_token(), token.as_deref(), "the token is echoed");
        let keys = keys_of(page.contents());
        let truncated = page.is_truncated() == Some(true);
        seen.extend(keys.iter().cloned());
        if truncated {
            assert_eq!(keys.len(), 2, "a truncated page is full");
            token = Some(
                page.next_continuation_token().expect("a truncated page has a next continuation token").to_owned(),
            );
        } else {
            assert!(page.next_continuation_token().is_none());
            break;
        }
    }
    assert_eq!(seen, KEYS, "the pages together are the whole listing, once");
    assert_eq!(pages, KEYS.len().div_ceil(2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_v2_pages_count_common_prefixes_toward_max_keys() {
    let (_server, client) = filled_bucket().await;
    let mut seen = Vec::new();
    let mut token: Option<String> = None;
    for _ in 0..KEYS.len() {
        let page = client
            .list_objects_v2()
            .bucket(BUCKET)
            .delimiter("/")
            .max_keys(2)
            .set_continuation_token(token.clone())
            .send()
            .await
            .expect("ListObjectsV2 delimiter=/ max-keys=2");
        let mut entries = keys_of(page.contents());
        entries.extend(prefixes_of(page.common_prefixes()));
        assert!(entries.len() <= 2, "page has more than max-keys entries: {entries:?}");
        entries.sort();
        seen.extend(entries);
        token = page.next_continuation_token().map(str::to_owned);
        if page.is_truncated() != Some(true) {
            break;
        }
        assert!(token.is_some(), "a truncated page has a next continuation token");
    }
    assert_eq!(seen, ["a.txt", "dir1/", "dir2/", "enc/", "z"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_v2_start_after_skips_every_key_up_to_and_including_it() {
    let (_server, client) = filled_bucket().await;
    for (start_after, expected) in [("dir1/x", &KEYS[3..]), ("dir1/t", &KEYS[2..]), ("", &KEYS[..]), ("zz", &[][..])] {
        let listed = client
            .list_objects_v2()
            .bucket(BUCKET)
            .start_after(start_after)
            .send()
            .await
            .expect("ListObjectsV2 start-after");
        assert_eq!(keys_of(listed.contents()), expected, "start-after {start_after:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_v2_includes_owners_only_when_fetch_owner_is_set() {
    let (_server, client) = filled_bucket().await;
    let with_owner =
        client.list_objects_v2().bucket(BUCKET).fetch_owner(true).send().await.expect("ListObjectsV2 fetch-owner=true");
    assert!(!with_owner.contents().is_empty());
    for object in with_owner.contents() {
        let owner = object.owner().expect("fetch-owner=true lists the owner");
        assert!(owner.id().is_some_and(|id| !id.is_empty()), "owner has an id");
    }

    let without = client.list_objects_v2().bucket(BUCKET).send().await.expect("ListObjectsV2");
    assert!(without.contents().iter().all(|o| o.owner().is_none()), "ListObjectsV2 omits owners unless asked");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_v2_with_encoding_type_url_percent_encodes_keys() {
    let (_server, client) = filled_bucket().await;
    let listed = client
        .list_objects_v2()
        .bucket(BUCKET)
        .prefix("enc/")
        .encoding_type(EncodingType::Url)
        .send()
        .await
        .expect("ListObjectsV2 encoding-type=url");
    assert_eq!(listed.encoding_type(), Some(&EncodingType::Url));
    let keys = keys_of(listed.contents());
    assert_eq!(keys.len(), 1, "one key under enc/: {keys:?}");
    let encoded = &keys[0];
    assert!(encoded.is_ascii() && encoded.as_str() != ENCODED_KEY, "{encoded:?} is not URL-encoded");
    assert_eq!(percent_decode(encoded), ENCODED_KEY.as_bytes(), "{encoded:?} decodes to the key");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_v1_pages_with_markers_cover_every_key_once() {
    let (_server, client) = filled_bucket().await;
    let mut seen = Vec::new();
    let mut marker: Option<String> = None;
    for _ in 0..KEYS.len() {
        let page = client
            .list_objects()
            .bucket(BUCKET)
            .max_keys(3)
            .set_marker(marker.clone())
            .send()
            .await
            .expect("ListObjects max-keys=3");
        assert_eq!(page.marker().unwrap_or_default(), marker.as_deref().unwrap_or_default());
        let keys = keys_of(page.contents());
        assert!(keys.len() <= 3);
        seen.extend(keys.iter().cloned());
        if page.is_truncated() != Some(true) {
            break;
        }
        // Without a delimiter S3 may omit NextMarker; the last key is the marker then.
        marker = page.next_marker().map(str::to_owned).or_else(|| keys.last().cloned());
    }
    assert_eq!(seen, KEYS);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_v1_with_a_delimiter_returns_common_prefixes_and_a_next_marker() {
    let (_server, client) = filled_bucket().await;
    let first = client
        .list_objects()
        .bucket(BUCKET)
        .delimiter("/")
        .max_keys(2)
        .send()
        .await
        .expect("ListObjects delimiter=/ max-keys=2");
    assert_eq!(first.is_truncated(), Some(true));
    assert_eq!(keys_of(first.contents()), ["a.txt"]);
    assert_eq!(prefixes_of(first.common_prefixes()), ["dir1/"]);
    assert_eq!(first.next_marker(), Some("dir1/"), "NextMarker is the last entry");

    let rest = client
        .list_objects()
        .bucket(BUCKET)
        .delimiter("/")
        .marker("dir1/")
        .send()
        .await
        .expect("ListObjects delimiter=/ marker=dir1/");
    assert_eq!(rest.is_truncated(), Some(false));
    assert_eq!(keys_of(rest.contents()), ["z"]);
    assert_eq!(prefixes_of(rest.common_prefixes()), ["dir2/", "enc/"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_v1_with_a_prefix_and_marker_skips_keys_up_to_the_marker() {
    let (_server, client) = filled_bucket().await;
    let listed = client
        .list_objects()
        .bucket(BUCKET)
        .prefix("dir")
        .marker("dir1/x")
        .send()
        .await
        .expect("ListObjects prefix=dir marker=dir1/x");
    assert_eq!(keys_of(listed.contents()), ["dir1/y", "dir2/w"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_bucket_lists_nothing_and_is_not_truncated() {
    let (_server, client) = TestServer::start_with_bucket(BUCKET).await;
    let v2 = client.list_objects_v2().bucket(BUCKET).send().await.expect("ListObjectsV2");
    assert!(v2.contents().is_empty());
    assert_eq!(v2.key_count(), Some(0));
    assert_eq!(v2.is_truncated(), Some(false));
    let v1 = client.list_objects().bucket(BUCKET).send().await.expect("ListObjects");
    assert!(v1.contents().is_empty());
    assert_eq!(v1.is_truncated(), Some(false));
}
