//! With versioning enabled no overwrite or delete destroys data (D5): a user
//! overwrites and deletes a key, lists its whole history — thousands of versions,
//! page by page — reads and restores every version, removes delete markers and
//! single versions on purpose, suspends versioning and gets S3's `null` version
//! semantics, and keeps every version through concurrent writers and a wiped drive.

use std::collections::{BTreeMap, BTreeSet};

use aws_sdk_s3::Client;
use aws_sdk_s3::error::DisplayErrorContext;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{
    BucketVersioningStatus, CompletedMultipartUpload, CompletedPart, Delete, ObjectIdentifier, VersioningConfiguration,
};
use bulwark_e2e::{
    PART_SIZE_MIN_BYTES, TestServer, assert_http_status, assert_s3_error, get_bytes, http_status, payload, put_bytes,
    read_all, send_signed, set_versioning, unplug_drive, wipe_drive,
};
use futures::StreamExt;

const BUCKET: &str = "versioned";
const KEY: &str = "doc";
/// Kept inline in the metadata store.
const SMALL_BYTES: usize = 1000;
/// Erasure-coded into shard files.
const CODED_BYTES: usize = 200 * 1024 + 3;
const VERSION_ID_HEX_LEN: usize = 32;
const MIB: usize = 1024 * 1024;

// ---------------------------------------------------------------------------
// Helpers

/// A server with [`BUCKET`] created and versioning enabled.
async fn enabled_bucket() -> (TestServer, Client) {
    let (server, client) = TestServer::start_with_bucket(BUCKET).await;
    set_versioning(&client, BUCKET, BucketVersioningStatus::Enabled).await;
    (server, client)
}

/// PUTs `data` and returns the version id the server gave it (if any).
async fn put_version(client: &Client, key: &str, data: &[u8]) -> Option<String> {
    client
        .put_object()
        .bucket(BUCKET)
        .key(key)
        .body(ByteStream::from(data.to_vec()))
        .send()
        .await
        .unwrap_or_else(|e| panic!("PUT {key}: {}", DisplayErrorContext(&e)))
        .version_id()
        .map(str::to_owned)
}

/// PUTs `data` in an Enabled bucket and returns its (required) version id.
async fn put_versioned(client: &Client, key: &str, data: &[u8]) -> String {
    let id = put_version(client, key, data).await.unwrap_or_else(|| panic!("PUT {key} returns x-amz-version-id"));
    assert_version_id_shape(&id);
    id
}

#[track_caller]
fn assert_version_id_shape(id: &str) {
    assert!(
        id.len() == VERSION_ID_HEX_LEN && id.bytes().all(|b| b.is_ascii_hexdigit()),
        "version id {id:?} is {VERSION_ID_HEX_LEN} hex digits"
    );
}

/// DELETEs `key` (no version id) and returns `(delete marker?, version id)`.
async fn delete_key(client: &Client, key: &str) -> (Option<bool>, Option<String>) {
    let output = client
        .delete_object()
        .bucket(BUCKET)
        .key(key)
        .send()
        .await
        .unwrap_or_else(|e| panic!("DELETE {key}: {}", DisplayErrorContext(&e)));
    (output.delete_marker(), output.version_id().map(str::to_owned))
}

async fn get_version(client: &Client, key: &str, version_id: &str) -> Vec<u8> {
    let output = client
        .get_object()
        .bucket(BUCKET)
        .key(key)
        .version_id(version_id)
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET {key} version {version_id}: {}", DisplayErrorContext(&e)));
    let named = output.version_id().unwrap_or("null");
    assert_eq!(named, version_id, "GET {key} by version id names that version");
    read_all(output.body).await
}

/// One version or delete marker of a ListObjectVersions response.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    key: String,
    version_id: String,
    is_latest: bool,
    delete_marker: bool,
}

/// The text of the first `<name>…</name>` in `xml`.
fn element<'a>(xml: &'a str, name: &str) -> Option<&'a str> {
    let open = format!("<{name}>");
    let start = xml.find(&open)? + open.len();
    let end = xml[start..].find(&format!("</{name}>"))? + start;
    Some(&xml[start..end])
}

/// Every `<Version>` and `<DeleteMarker>` of a ListObjectVersions body, in order.
fn parse_entries(xml: &str) -> Vec<Entry> {
    let mut entries = Vec::new();
    let mut rest = xml;
    loop {
        let version = rest.find("<Version>");
        let marker = rest.find("<DeleteMarker>");
        let (start, name) = match (version, marker) {
            (Some(v), Some(m)) if m < v => (m, "DeleteMarker"),
            (Some(v), _) => (v, "Version"),
            (None, Some(m)) => (m, "DeleteMarker"),
            (None, None) => return entries,
        };
        let close = format!("</{name}>");
        let end = rest[start..].find(&close).expect("a closed listing entry") + start;
        let body = &rest[start..end];
        entries.push(Entry {
            key: element(body, "Key").expect("an entry has a Key").to_owned(),
            version_id: element(body, "VersionId").expect("an entry has a VersionId").to_owned(),
            is_latest: element(body, "IsLatest") == Some("true"),
            delete_marker: name == "DeleteMarker",
        });
        rest = &rest[end + close.len()..];
    }
}

/// The whole history of `bucket` (one page; ≤ 1000 entries) as the SDK sees it:
/// versions and delete markers each in the server's order, which must be keys
/// ascending and, within a key, newest first (decreasing time-ordered ids); then
/// merged into one list in that order.
async fn list_history(client: &Client, bucket: &str) -> Vec<Entry> {
    let listing = client
        .list_object_versions()
        .bucket(bucket)
        .send()
        .await
        .unwrap_or_else(|e| panic!("ListObjectVersions: {}", DisplayErrorContext(&e)));
    assert_ne!(listing.is_truncated(), Some(true), "the history fits in one page");
    let versions: Vec<Entry> = listing
        .versions()
        .iter()
        .map(|v| Entry {
            key: v.key().unwrap_or_default().to_owned(),
            version_id: v.version_id().unwrap_or_default().to_owned(),
            is_latest: v.is_latest() == Some(true),
            delete_marker: false,
        })
        .collect();
    let markers: Vec<Entry> = listing
        .delete_markers()
        .iter()
        .map(|m| Entry {
            key: m.key().unwrap_or_default().to_owned(),
            version_id: m.version_id().unwrap_or_default().to_owned(),
            is_latest: m.is_latest() == Some(true),
            delete_marker: true,
        })
        .collect();
    for list in [&versions, &markers] {
        for pair in list.windows(2) {
            assert!(
                pair[0].key < pair[1].key || (pair[0].key == pair[1].key && newer(&pair[0], &pair[1])),
                "listed in order: {pair:?}"
            );
        }
    }
    let mut merged: Vec<Entry> = versions.into_iter().chain(markers).collect();
    merged.sort_by(|a, b| a.key.cmp(&b.key).then_with(|| newer(b, a).cmp(&newer(a, b))));
    merged
}

/// Whether `a` is a newer version of the same key than `b`: time-ordered ids;
/// the `null` version counts as newest, as in these tests it is always written
/// after the versions with ids.
fn newer(a: &Entry, b: &Entry) -> bool {
    a.version_id > b.version_id || (a.version_id == "null" && b.version_id != "null")
}

/// Every `<Version>` and `<DeleteMarker>` of a raw ListObjectVersions body, in
/// the order the server wrote them.
async fn raw_history(server: &TestServer, bucket: &str) -> Vec<Entry> {
    let response = send_signed(server, "GET", &format!("/{bucket}?versions"), &[], b"").await;
    assert_eq!(response.status, 200, "ListObjectVersions: {}", response.text());
    let text = response.text();
    assert_eq!(element(&text, "IsTruncated"), Some("false"), "the history fits in one page");
    parse_entries(&text)
}

/// Asserts that within each key the entries are newest first — strictly
/// decreasing (time-ordered) version ids — and that exactly the first is latest.
#[track_caller]
fn assert_newest_first_with_one_latest(entries: &[Entry]) {
    for pair in entries.windows(2) {
        if pair[0].key == pair[1].key {
            assert!(
                newer(&pair[0], &pair[1]),
                "versions of {} are newest first: {} listed before {}",
                pair[0].key,
                pair[0].version_id,
                pair[1].version_id
            );
        } else {
            assert!(pair[0].key < pair[1].key, "keys ascend: {} before {}", pair[0].key, pair[1].key);
        }
    }
    for (index, entry) in entries.iter().enumerate() {
        let first_of_key = index == 0 || entries[index - 1].key != entry.key;
        assert_eq!(entry.is_latest, first_of_key, "IsLatest of {} {}", entry.key, entry.version_id);
    }
}

/// The `x-amz-delete-marker` header of a failed request.
fn delete_marker_header<E>(
    error: &aws_sdk_s3::error::SdkError<E, aws_sdk_s3::config::http::HttpResponse>,
) -> Option<String> {
    error.raw_response().and_then(|r| r.headers().get("x-amz-delete-marker")).map(str::to_owned)
}

/// Three versions of [`KEY`] (inline, coded, inline) and a delete marker on top.
struct History {
    /// (version id, body), oldest first.
    versions: Vec<(String, Vec<u8>)>,
    marker: String,
}

async fn write_history(client: &Client) -> History {
    let mut versions = Vec::new();
    for (seed, size) in [(1, SMALL_BYTES), (2, CODED_BYTES), (3, SMALL_BYTES + 1)] {
        let data = payload(seed, size);
        versions.push((put_versioned(client, KEY, &data).await, data));
    }
    let (marker, marker_id) = delete_key(client, KEY).await;
    assert_eq!(marker, Some(true), "DELETE in an Enabled bucket answers x-amz-delete-marker: true");
    let marker_id = marker_id.expect("DELETE in an Enabled bucket returns the marker's version id");
    assert_version_id_shape(&marker_id);
    History { versions, marker: marker_id }
}

// ---------------------------------------------------------------------------
// Bucket configuration

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bucket_versioning_goes_from_unset_to_enabled_to_suspended_and_refuses_a_bad_status() {
    let (server, client) = TestServer::start_with_bucket(BUCKET).await;
    let fresh = client.get_bucket_versioning().bucket(BUCKET).send().await.expect("GetBucketVersioning");
    assert_eq!(fresh.status(), None, "a new bucket has no versioning status");
    assert_eq!(fresh.mfa_delete(), None, "a new bucket has no MFA delete status");

    for status in [BucketVersioningStatus::Enabled, BucketVersioningStatus::Suspended, BucketVersioningStatus::Enabled]
    {
        set_versioning(&client, BUCKET, status.clone()).await;
        let got = client.get_bucket_versioning().bucket(BUCKET).send().await.expect("GetBucketVersioning");
        assert_eq!(got.status(), Some(&status), "GetBucketVersioning after setting {status:?}");
    }

    let bad = client
        .put_bucket_versioning()
        .bucket(BUCKET)
        .versioning_configuration(
            VersioningConfiguration::builder().status(BucketVersioningStatus::from("Sometimes")).build(),
        )
        .send()
        .await;
    assert_s3_error(bad, 400, "MalformedXML");
    let document = "<VersioningConfiguration><Status>enabled</Status></VersioningConfiguration>";
    let md5 = base64_md5(document.as_bytes());
    let response = send_signed(
        &server,
        "PUT",
        &format!("/{BUCKET}?versioning"),
        &[("content-md5", md5.as_str())],
        document.as_bytes(),
    )
    .await;
    assert_eq!(
        (response.status, response.error_code().as_deref()),
        (400, Some("MalformedXML")),
        "a lower-case status is not a status: {}",
        response.text()
    );
    let got = client.get_bucket_versioning().bucket(BUCKET).send().await.expect("GetBucketVersioning");
    assert_eq!(got.status(), Some(&BucketVersioningStatus::Enabled), "a refused status changes nothing");
}

fn base64_md5(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bulwark_e2e::md5_bytes(bytes))
}

// ---------------------------------------------------------------------------
// An Enabled bucket

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_put_gets_a_new_time_ordered_version_id_and_a_delete_adds_a_latest_delete_marker() {
    let (_server, client) = enabled_bucket().await;
    let history = write_history(&client).await;
    let mut ids: Vec<&str> = history.versions.iter().map(|(id, _)| id.as_str()).collect();
    ids.push(&history.marker);
    for pair in ids.windows(2) {
        assert!(pair[0] < pair[1], "version ids increase with time: {} then {}", pair[0], pair[1]);
    }

    let get = client.get_object().bucket(BUCKET).key(KEY).send().await;
    let error = get.as_ref().expect_err("GET of a deleted key fails");
    assert_eq!(http_status(error), Some(404), "GET of a deleted key: {}", DisplayErrorContext(error));
    assert_eq!(delete_marker_header(error).as_deref(), Some("true"), "GET of a deleted key says x-amz-delete-marker");
    assert_s3_error(get, 404, "NoSuchKey");
    let head = client.head_object().bucket(BUCKET).key(KEY).send().await;
    let error = head.as_ref().expect_err("HEAD of a deleted key fails");
    assert_eq!(http_status(error), Some(404), "HEAD of a deleted key: {}", DisplayErrorContext(error));
    assert_eq!(delete_marker_header(error).as_deref(), Some("true"), "HEAD of a deleted key says x-amz-delete-marker");

    let listing = client.list_object_versions().bucket(BUCKET).send().await.expect("ListObjectVersions");
    assert_eq!(listing.versions().len(), 3, "three versions are listed");
    assert_eq!(listing.delete_markers().len(), 1, "one delete marker is listed");
    let latest_versions: Vec<_> = listing.versions().iter().filter(|v| v.is_latest() == Some(true)).collect();
    assert!(latest_versions.is_empty(), "no version is latest under a delete marker: {latest_versions:?}");
    let marker = &listing.delete_markers()[0];
    assert_eq!(marker.is_latest(), Some(true), "the delete marker is latest");
    assert_eq!(marker.version_id(), Some(history.marker.as_str()), "the marker is listed with its version id");

    let entries = list_history(&client, BUCKET).await;
    let listed: Vec<(&str, bool)> = entries.iter().map(|e| (e.version_id.as_str(), e.delete_marker)).collect();
    let mut expected: Vec<(&str, bool)> = history.versions.iter().map(|(id, _)| (id.as_str(), false)).collect();
    expected.push((&history.marker, true));
    expected.reverse();
    assert_eq!(listed, expected, "the history is listed newest first, marker on top");
    assert_newest_first_with_one_latest(&entries);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_version_reads_back_by_id_and_a_delete_marker_by_id_is_method_not_allowed() {
    let (_server, client) = enabled_bucket().await;
    let history = write_history(&client).await;
    for (id, data) in &history.versions {
        assert!(get_version(&client, KEY, id).await == *data, "version {id} reads back byte-identical");
        let head = client.head_object().bucket(BUCKET).key(KEY).version_id(id).send().await.expect("HEAD a version");
        assert_eq!(head.content_length(), Some(data.len() as i64), "HEAD version {id} size");
        assert_eq!(head.version_id(), Some(id.as_str()), "HEAD version {id} names it");
    }

    let get = client.get_object().bucket(BUCKET).key(KEY).version_id(&history.marker).send().await;
    let error = get.as_ref().expect_err("GET of a delete marker fails");
    assert_eq!(delete_marker_header(error).as_deref(), Some("true"), "GET of a marker says x-amz-delete-marker");
    assert_s3_error(get, 405, "MethodNotAllowed");
    let head = client.head_object().bucket(BUCKET).key(KEY).version_id(&history.marker).send().await;
    assert_http_status(head, 405);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copying_an_old_version_onto_its_own_key_restores_it_as_a_new_version() {
    let (_server, client) = enabled_bucket().await;
    let history = write_history(&client).await;
    let mut last = history.marker.clone();
    for (id, data) in &history.versions {
        let output = client
            .copy_object()
            .bucket(BUCKET)
            .key(KEY)
            .copy_source(format!("{BUCKET}/{KEY}?versionId={id}"))
            .send()
            .await
            .unwrap_or_else(|e| panic!("CopyObject from version {id}: {}", DisplayErrorContext(&e)));
        assert_eq!(output.copy_source_version_id(), Some(id.as_str()), "CopyObject names the source version");
        let restored = output.version_id().expect("CopyObject in an Enabled bucket returns a version id").to_owned();
        assert!(restored > last, "the restored copy {restored} is the newest version (after {last})");
        assert!(get_bytes(&client, BUCKET, KEY).await == *data, "the key reads as version {id} after restoring it");
        assert!(get_version(&client, KEY, &restored).await == *data, "the restored version {restored} holds {id}");
        last = restored;
    }
    let listing = client.list_object_versions().bucket(BUCKET).send().await.expect("ListObjectVersions");
    assert_eq!(
        (listing.versions().len(), listing.delete_markers().len()),
        (6, 1),
        "three versions, three restored copies and the marker remain"
    );
    for (id, data) in &history.versions {
        assert!(get_version(&client, KEY, id).await == *data, "version {id} is unchanged by restoring it");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_the_delete_marker_by_version_id_brings_the_latest_version_back() {
    let (_server, client) = enabled_bucket().await;
    let history = write_history(&client).await;
    let output = client
        .delete_object()
        .bucket(BUCKET)
        .key(KEY)
        .version_id(&history.marker)
        .send()
        .await
        .expect("DELETE the delete marker by its version id");
    assert_eq!(output.delete_marker(), Some(true), "deleting a marker answers x-amz-delete-marker: true");
    assert_eq!(output.version_id(), Some(history.marker.as_str()), "deleting a marker names it");

    let (latest_id, latest_data) = history.versions.last().expect("three versions");
    let got = client.get_object().bucket(BUCKET).key(KEY).send().await.expect("GET after removing the marker");
    assert_eq!(got.version_id(), Some(latest_id.as_str()), "the newest version is current again");
    assert!(read_all(got.body).await == *latest_data, "the key reads as its newest version again");
    let entries = list_history(&client, BUCKET).await;
    assert!(entries.iter().all(|e| !e.delete_marker), "no marker is left: {entries:?}");
    assert_eq!(entries.len(), 3, "the three versions remain: {entries:?}");
    assert_newest_first_with_one_latest(&entries);
    assert_eq!(entries[0].version_id, *latest_id, "the newest version is latest");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_specific_version_removes_it_for_good_and_leaves_the_others() {
    let (_server, client) = enabled_bucket().await;
    let history = write_history(&client).await;
    let (gone_id, _) = &history.versions[1];
    let output = client
        .delete_object()
        .bucket(BUCKET)
        .key(KEY)
        .version_id(gone_id)
        .send()
        .await
        .expect("DELETE a version by id");
    assert_eq!(output.version_id(), Some(gone_id.as_str()), "DELETE of a version names it");
    assert_ne!(output.delete_marker(), Some(true), "deleting a version is not deleting a marker");

    assert_s3_error(client.get_object().bucket(BUCKET).key(KEY).version_id(gone_id).send().await, 404, "NoSuchVersion");
    assert_http_status(client.head_object().bucket(BUCKET).key(KEY).version_id(gone_id).send().await, 404);
    for (index, (id, data)) in history.versions.iter().enumerate() {
        if index != 1 {
            assert!(get_version(&client, KEY, id).await == *data, "version {id} survives deleting another");
        }
    }
    let entries = list_history(&client, BUCKET).await;
    let listed: Vec<&str> = entries.iter().map(|e| e.version_id.as_str()).collect();
    let expected = [history.marker.as_str(), history.versions[2].0.as_str(), history.versions[0].0.as_str()];
    assert_eq!(listed, expected, "the deleted version is gone from the history");

    // Deleting the current version by id makes the previous one current.
    let bare = put_versioned(&client, "other", &payload(9, SMALL_BYTES)).await;
    let newer = put_versioned(&client, "other", &payload(10, CODED_BYTES)).await;
    client.delete_object().bucket(BUCKET).key("other").version_id(&newer).send().await.expect("DELETE the latest");
    let got = client.get_object().bucket(BUCKET).key("other").send().await.expect("GET after deleting the latest");
    assert_eq!(got.version_id(), Some(bare.as_str()), "the previous version is current");
    assert!(read_all(got.body).await == payload(9, SMALL_BYTES), "the key reads as the previous version");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_object_versions_lists_versions_and_delete_markers_each_in_history_order() {
    let (server, client) = enabled_bucket().await;
    let a1 = put_versioned(&client, "a", &payload(23, SMALL_BYTES)).await;
    let a_marker = delete_key(&client, "a").await.1.expect("a marker id");
    let b1 = put_versioned(&client, "b", &payload(24, SMALL_BYTES)).await;
    let b2 = put_versioned(&client, "b", &payload(25, SMALL_BYTES)).await;
    let c1 = put_versioned(&client, "c", &payload(26, SMALL_BYTES)).await;
    let c_marker = delete_key(&client, "c").await.1.expect("a marker id");
    let c2 = put_versioned(&client, "c", &payload(27, SMALL_BYTES)).await;

    let entries = raw_history(&server, BUCKET).await;
    let listed: Vec<(&str, &str, bool)> =
        entries.iter().map(|e| (e.key.as_str(), e.version_id.as_str(), e.delete_marker)).collect();
    let expected = [
        ("a", a_marker.as_str(), true),
        ("a", a1.as_str(), false),
        ("b", b2.as_str(), false),
        ("b", b1.as_str(), false),
        ("c", c2.as_str(), false),
        ("c", c_marker.as_str(), true),
        ("c", c1.as_str(), false),
    ];
    // Amazon S3 interleaves <Version> and <DeleteMarker> in one history order;
    // the pinned s3s 0.14.1 serializer writes all versions, then all markers.
    // SDKs read the two lists separately, so each list must be in history order.
    let versions: Vec<_> = listed.iter().filter(|e| !e.2).copied().collect();
    let markers: Vec<_> = listed.iter().filter(|e| e.2).copied().collect();
    let expected_versions: Vec<_> = expected.iter().filter(|e| !e.2).copied().collect();
    let expected_markers: Vec<_> = expected.iter().filter(|e| e.2).copied().collect();
    assert_eq!(versions, expected_versions, "the <Version> entries are in history order");
    assert_eq!(markers, expected_markers, "the <DeleteMarker> entries are in history order");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_objects_v1_and_v2_skip_keys_whose_latest_version_is_a_delete_marker() {
    let (_server, client) = enabled_bucket().await;
    for key in ["a", "b", "c", "d"] {
        put_versioned(&client, key, &payload(20, SMALL_BYTES)).await;
        put_versioned(&client, key, &payload(21, SMALL_BYTES)).await;
    }
    delete_key(&client, "b").await;
    delete_key(&client, "d").await;
    // A key deleted and written again is listed.
    delete_key(&client, "c").await;
    put_versioned(&client, "c", &payload(22, SMALL_BYTES)).await;

    let v2 = client.list_objects_v2().bucket(BUCKET).send().await.expect("ListObjectsV2");
    let v2_keys: Vec<&str> = v2.contents().iter().filter_map(|o| o.key()).collect();
    assert_eq!(v2_keys, ["a", "c"], "ListObjectsV2 lists only live keys");
    assert_eq!(v2.key_count(), Some(2), "ListObjectsV2 KeyCount");
    let v1 = client.list_objects().bucket(BUCKET).send().await.expect("ListObjects");
    let v1_keys: Vec<&str> = v1.contents().iter().filter_map(|o| o.key()).collect();
    assert_eq!(v1_keys, ["a", "c"], "ListObjects lists only live keys");
    let paged = client.list_objects_v2().bucket(BUCKET).max_keys(1).send().await.expect("ListObjectsV2 max-keys 1");
    let first: Vec<&str> = paged.contents().iter().filter_map(|o| o.key()).collect();
    assert_eq!(first, ["a"], "the first page of one key");
    let token = paged.next_continuation_token().expect("a second page follows");
    let rest = client
        .list_objects_v2()
        .bucket(BUCKET)
        .max_keys(1)
        .continuation_token(token)
        .send()
        .await
        .expect("ListObjectsV2 second page");
    let second: Vec<&str> = rest.contents().iter().filter_map(|o| o.key()).collect();
    assert_eq!(second, ["c"], "the second page skips the deleted key b");
}

// ---------------------------------------------------------------------------
// Suspended and unversioned buckets

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_suspended_bucket_keeps_one_null_version_per_key_beside_the_enabled_versions() {
    let (_server, client) = enabled_bucket().await;
    let first = payload(30, SMALL_BYTES);
    let second = payload(31, CODED_BYTES);
    let enabled_ids = [put_versioned(&client, KEY, &first).await, put_versioned(&client, KEY, &second).await];

    set_versioning(&client, BUCKET, BucketVersioningStatus::Suspended).await;
    let null_one = payload(32, CODED_BYTES);
    let id = put_version(&client, KEY, &null_one).await;
    assert!(matches!(id.as_deref(), None | Some("null")), "a PUT in a suspended bucket gets the null version: {id:?}");
    assert!(get_bytes(&client, BUCKET, KEY).await == null_one, "the null version is current");
    let null_two = payload(33, SMALL_BYTES);
    let id = put_version(&client, KEY, &null_two).await;
    assert!(matches!(id.as_deref(), None | Some("null")), "a second PUT gets the null version again: {id:?}");

    let entries = list_history(&client, BUCKET).await;
    let listed: Vec<&str> = entries.iter().map(|e| e.version_id.as_str()).collect();
    assert_eq!(
        listed,
        ["null", enabled_ids[1].as_str(), enabled_ids[0].as_str()],
        "the second suspended PUT replaced the null version; the enabled versions stay"
    );
    assert!(entries[0].is_latest && !entries[0].delete_marker, "the null version is latest: {entries:?}");
    assert!(get_version(&client, KEY, "null").await == null_two, "the null version holds the last suspended PUT");
    assert!(get_bytes(&client, BUCKET, KEY).await == null_two, "the key reads as the null version");

    let (marker, marker_id) = delete_key(&client, KEY).await;
    assert_eq!(marker, Some(true), "a DELETE in a suspended bucket adds a delete marker");
    assert!(matches!(marker_id.as_deref(), None | Some("null")), "the marker is the null version: {marker_id:?}");
    let entries = list_history(&client, BUCKET).await;
    let listed: Vec<(&str, bool)> = entries.iter().map(|e| (e.version_id.as_str(), e.delete_marker)).collect();
    assert_eq!(
        listed,
        [("null", true), (enabled_ids[1].as_str(), false), (enabled_ids[0].as_str(), false)],
        "the null delete marker replaced the null version's data"
    );
    assert_newest_first_with_one_latest(&entries);
    assert_s3_error(client.get_object().bucket(BUCKET).key(KEY).send().await, 404, "NoSuchKey");
    assert_s3_error(
        client.get_object().bucket(BUCKET).key(KEY).version_id("null").send().await,
        405,
        "MethodNotAllowed",
    );
    assert!(get_version(&client, KEY, &enabled_ids[0]).await == first, "the first enabled version is readable");
    assert!(get_version(&client, KEY, &enabled_ids[1]).await == second, "the second enabled version is readable");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unversioned_bucket_gives_no_version_ids_and_a_delete_removes_the_key() {
    let (_server, client) = TestServer::start_with_bucket(BUCKET).await;
    for (seed, size) in [(40, SMALL_BYTES), (41, CODED_BYTES)] {
        let id = put_version(&client, KEY, &payload(seed, size)).await;
        assert!(matches!(id.as_deref(), None | Some("null")), "an unversioned PUT has no version id: {id:?}");
    }
    let entries = list_history(&client, BUCKET).await;
    let listed: Vec<(&str, bool)> = entries.iter().map(|e| (e.version_id.as_str(), e.is_latest)).collect();
    assert_eq!(listed, [("null", true)], "an overwrite in an unversioned bucket keeps one null version");

    let (marker, id) = delete_key(&client, KEY).await;
    assert_ne!(marker, Some(true), "an unversioned DELETE adds no delete marker");
    assert!(matches!(id.as_deref(), None | Some("null")), "an unversioned DELETE has no version id: {id:?}");
    assert_s3_error(client.get_object().bucket(BUCKET).key(KEY).send().await, 404, "NoSuchKey");
    assert!(list_history(&client, BUCKET).await.is_empty(), "nothing is left of the key");
}

// ---------------------------------------------------------------------------
// Other writers of versions

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_objects_with_version_ids_removes_exactly_those_versions() {
    let (_server, client) = enabled_bucket().await;
    let mut written: BTreeMap<(String, String), Vec<u8>> = BTreeMap::new();
    for key in ["x", "y"] {
        for seed in 0..3 {
            let data = payload(50 + seed, if seed == 1 { CODED_BYTES } else { SMALL_BYTES });
            let id = put_versioned(&client, key, &data).await;
            written.insert((key.to_owned(), id), data);
        }
    }
    let ids: Vec<(String, String)> = written.keys().cloned().collect();
    // The oldest of x, the newest of y and the middle of y.
    let doomed = [ids[0].clone(), ids[5].clone(), ids[4].clone()];
    let objects: Vec<ObjectIdentifier> = doomed
        .iter()
        .map(|(key, id)| ObjectIdentifier::builder().key(key).version_id(id).build().expect("an object identifier"))
        .collect();
    let output = client
        .delete_objects()
        .bucket(BUCKET)
        .delete(Delete::builder().set_objects(Some(objects)).build().expect("a Delete document"))
        .send()
        .await
        .expect("DeleteObjects with version ids");
    assert!(output.errors().is_empty(), "DeleteObjects reports no errors: {:?}", output.errors());
    let mut deleted: Vec<(String, String)> = output
        .deleted()
        .iter()
        .map(|d| (d.key().unwrap_or_default().to_owned(), d.version_id().unwrap_or_default().to_owned()))
        .collect();
    deleted.sort();
    let mut expected = doomed.to_vec();
    expected.sort();
    assert_eq!(deleted, expected, "DeleteObjects reports each version it deleted");

    let entries = list_history(&client, BUCKET).await;
    assert!(entries.iter().all(|e| !e.delete_marker), "deleting by version id adds no marker: {entries:?}");
    let left: BTreeSet<(String, String)> = entries.iter().map(|e| (e.key.clone(), e.version_id.clone())).collect();
    let survivors: BTreeSet<(String, String)> = ids.iter().filter(|k| !doomed.contains(k)).cloned().collect();
    assert_eq!(left, survivors, "exactly the named versions are gone");
    assert_newest_first_with_one_latest(&entries);
    for (key, id) in &survivors {
        assert!(get_version(&client, key, id).await == written[&(key.clone(), id.clone())], "{key} {id} survives");
    }
    let y = client.get_object().bucket(BUCKET).key("y").send().await.expect("GET y");
    assert_eq!(y.version_id(), Some(ids[3].1.as_str()), "y falls back to its oldest version");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_multipart_upload_and_a_copy_in_an_enabled_bucket_add_new_versions() {
    let (_server, client) = enabled_bucket().await;
    let first = payload(60, SMALL_BYTES);
    let first_id = put_versioned(&client, KEY, &first).await;

    let parts = [payload(61, PART_SIZE_MIN_BYTES), payload(62, CODED_BYTES)];
    let upload = client.create_multipart_upload().bucket(BUCKET).key(KEY).send().await.expect("CreateMultipartUpload");
    let upload_id = upload.upload_id().expect("an upload id");
    let mut completed = Vec::new();
    for (index, data) in parts.iter().enumerate() {
        let number = index as i32 + 1;
        let output = client
            .upload_part()
            .bucket(BUCKET)
            .key(KEY)
            .upload_id(upload_id)
            .part_number(number)
            .body(ByteStream::from(data.clone()))
            .send()
            .await
            .expect("UploadPart");
        completed.push(CompletedPart::builder().part_number(number).e_tag(output.e_tag().expect("ETag")).build());
    }
    let output = client
        .complete_multipart_upload()
        .bucket(BUCKET)
        .key(KEY)
        .upload_id(upload_id)
        .multipart_upload(CompletedMultipartUpload::builder().set_parts(Some(completed)).build())
        .send()
        .await
        .expect("CompleteMultipartUpload");
    let multipart_id = output.version_id().expect("CompleteMultipartUpload returns a version id").to_owned();
    assert_version_id_shape(&multipart_id);
    assert!(multipart_id > first_id, "the multipart object is a newer version");

    put_bytes(&client, BUCKET, "source", payload(63, CODED_BYTES)).await;
    let output = client
        .copy_object()
        .bucket(BUCKET)
        .key(KEY)
        .copy_source(format!("{BUCKET}/source"))
        .send()
        .await
        .expect("CopyObject");
    let copy_id = output.version_id().expect("CopyObject returns a version id").to_owned();
    assert_version_id_shape(&copy_id);
    assert!(copy_id > multipart_id, "the copy is the newest version");

    let entries = list_history(&client, BUCKET).await;
    let doc: Vec<&str> = entries.iter().filter(|e| e.key == KEY).map(|e| e.version_id.as_str()).collect();
    assert_eq!(doc, [copy_id.as_str(), multipart_id.as_str(), first_id.as_str()], "three versions of {KEY}");
    assert!(get_version(&client, KEY, &first_id).await == first, "the first PUT survives");
    assert!(get_version(&client, KEY, &multipart_id).await == parts.concat(), "the multipart version survives");
    assert!(get_version(&client, KEY, &copy_id).await == payload(63, CODED_BYTES), "the copy is current");
}

// ---------------------------------------------------------------------------
// Scale, concurrency, faults

/// Versions of the hot key in the pagination test.
const HOT_VERSIONS: usize = 2500;
/// Other keys, half sorting before the hot key and half after.
const OTHER_KEYS: usize = 200;
const WRITE_CONCURRENCY: usize = 16;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_object_versions_pages_through_thousands_of_versions_each_exactly_once_in_order() {
    let (_server, client) = enabled_bucket().await;
    let mut writes: Vec<String> = vec!["m-hot".to_owned(); HOT_VERSIONS];
    for index in 0..OTHER_KEYS {
        let prefix = if index % 2 == 0 { "a" } else { "z" };
        for _ in 0..index % 4 + 1 {
            writes.push(format!("{prefix}-{index:03}"));
        }
    }
    let started = std::time::Instant::now();
    let written: Vec<(String, String)> = futures::stream::iter(writes.into_iter().enumerate())
        .map(|(index, key)| {
            let client = client.clone();
            async move {
                let body = format!("{key} #{index}").into_bytes();
                let id = put_versioned(&client, &key, &body).await;
                (key, id)
            }
        })
        .buffer_unordered(WRITE_CONCURRENCY)
        .collect()
        .await;
    eprintln!("wrote {} versions in {:?}", written.len(), started.elapsed());
    let mut expected = written.clone();
    // Keys ascending, versions newest first: time-ordered ids descending.
    expected.sort_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(&a.1)));
    let unique: BTreeSet<&(String, String)> = expected.iter().collect();
    assert_eq!(unique.len(), expected.len(), "every PUT got its own version id");

    for page_size in [1000, 333] {
        let mut listed: Vec<(String, String, bool)> = Vec::new();
        let mut key_marker: Option<String> = None;
        let mut version_marker: Option<String> = None;
        let mut pages = 0;
        loop {
            let page = client
                .list_object_versions()
                .bucket(BUCKET)
                .max_keys(page_size)
                .set_key_marker(key_marker.clone())
                .set_version_id_marker(version_marker.clone())
                .send()
                .await
                .unwrap_or_else(|e| panic!("ListObjectVersions page {pages}: {}", DisplayErrorContext(&e)));
            pages += 1;
            assert!(page.delete_markers().is_empty(), "no delete markers were written");
            assert!(page.versions().len() <= page_size as usize, "a page holds at most max-keys versions");
            listed.extend(page.versions().iter().map(|v| {
                (
                    v.key().unwrap_or_default().to_owned(),
                    v.version_id().unwrap_or_default().to_owned(),
                    v.is_latest() == Some(true),
                )
            }));
            if page.is_truncated() != Some(true) {
                break;
            }
            assert_eq!(page.versions().len(), page_size as usize, "a truncated page is full");
            key_marker = Some(page.next_key_marker().expect("a truncated page has NextKeyMarker").to_owned());
            version_marker = page.next_version_id_marker().map(str::to_owned);
            assert!(pages <= expected.len() / page_size as usize + 1, "paging ends");
        }
        assert_eq!(pages, expected.len().div_ceil(page_size as usize), "pages of {page_size}");
        let pairs: Vec<(String, String)> = listed.iter().map(|(k, v, _)| (k.clone(), v.clone())).collect();
        if pairs != expected {
            let position =
                pairs.iter().zip(&expected).position(|(a, b)| a != b).unwrap_or(pairs.len().min(expected.len()));
            panic!(
                "pages of {page_size}: {} versions listed, {} written; first difference at {position}: \
                 listed {:?}, expected {:?}",
                pairs.len(),
                expected.len(),
                pairs.get(position),
                expected.get(position)
            );
        }
        for (index, (key, id, is_latest)) in listed.iter().enumerate() {
            let first_of_key = index == 0 || listed[index - 1].0 != *key;
            assert_eq!(*is_latest, first_of_key, "pages of {page_size}: IsLatest of {key} {id}");
        }
    }
}

const BURST_TASKS: usize = 16;
const BURST_OPERATIONS: usize = 10;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_concurrent_puts_and_deletes_leaves_a_consistent_history() {
    let (_server, client) = enabled_bucket().await;
    let tasks: Vec<_> = (0..BURST_TASKS)
        .map(|task| {
            let client = client.clone();
            tokio::spawn(async move {
                let mut puts = Vec::new();
                let mut markers = Vec::new();
                for operation in 0..BURST_OPERATIONS {
                    if (task + operation) % 3 == 2 {
                        let (marker, id) = delete_key(&client, KEY).await;
                        assert_eq!(marker, Some(true), "a DELETE adds a marker");
                        markers.push(id.expect("a marker has a version id"));
                    } else {
                        let size = if operation == 0 { CODED_BYTES } else { 100 + task * 10 + operation };
                        let body = payload((task * BURST_OPERATIONS + operation) as u64, size);
                        puts.push((put_versioned(&client, KEY, &body).await, body));
                    }
                }
                (puts, markers)
            })
        })
        .collect();
    let mut puts: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    let mut markers: BTreeSet<String> = BTreeSet::new();
    for task in tasks {
        let (task_puts, task_markers) = task.await.expect("a writer task does not panic");
        puts.extend(task_puts);
        markers.extend(task_markers);
    }
    assert_eq!(puts.len() + markers.len(), BURST_TASKS * BURST_OPERATIONS, "every operation got its own version id");

    let first = list_history(&client, BUCKET).await;
    let second = list_history(&client, BUCKET).await;
    assert_eq!(first, second, "the history lists the same twice");
    assert_eq!(first.len(), BURST_TASKS * BURST_OPERATIONS, "every operation is in the history");
    assert_newest_first_with_one_latest(&first);
    for entry in &first {
        if entry.delete_marker {
            assert!(markers.contains(&entry.version_id), "marker {} was made by a DELETE", entry.version_id);
        } else {
            let body = puts.get(&entry.version_id).unwrap_or_else(|| panic!("{} was made by a PUT", entry.version_id));
            assert!(get_version(&client, KEY, &entry.version_id).await == *body, "{} reads back", entry.version_id);
        }
    }
    let latest = &first[0];
    let current = client.get_object().bucket(BUCKET).key(KEY).send().await;
    if latest.delete_marker {
        assert_s3_error(current, 404, "NoSuchKey");
    } else {
        let current = current.expect("GET the current version");
        assert_eq!(current.version_id(), Some(latest.version_id.as_str()), "GET serves the latest version");
    }
}

/// Every version of [`KEY`] reads back byte-identical by id, and the history
/// lists exactly these versions, newest first.
async fn assert_versions_intact(client: &Client, versions: &[(String, Vec<u8>)], when: &str) {
    for (id, data) in versions {
        let got = get_version(client, KEY, id).await;
        assert!(got == *data, "version {id} ({} bytes) reads back byte-identical {when}", data.len());
    }
    let entries = list_history(client, BUCKET).await;
    let listed: Vec<&str> = entries.iter().map(|e| e.version_id.as_str()).collect();
    let expected: Vec<&str> = versions.iter().rev().map(|(id, _)| id.as_str()).collect();
    assert_eq!(listed, expected, "every version is listed {when}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drive_wiped_in_the_middle_of_a_versioned_history_loses_no_version() {
    let (mut server, client) = enabled_bucket().await;
    let mut versions: Vec<(String, Vec<u8>)> = Vec::new();
    for (seed, size) in [(70, SMALL_BYTES), (71, CODED_BYTES), (72, MIB + 7), (73, 5000), (74, 129 * 1024)] {
        let data = payload(seed, size);
        versions.push((put_versioned(&client, KEY, &data).await, data));
    }

    server.crash();
    let drive = server.drive_path(3);
    wipe_drive(&drive);
    // A blank disk where the old one was.
    std::fs::create_dir_all(&drive).expect("recreate the wiped drive's directory");
    server.start_again().await;
    let client = server.client();
    for (seed, size) in [(75, CODED_BYTES + 1), (76, 10), (77, 2 * MIB + 1)] {
        let data = payload(seed, size);
        versions.push((put_versioned(&client, KEY, &data).await, data));
    }

    assert_versions_intact(&client, &versions, "after drive 3 was wiped between the fifth and sixth").await;
    // One more drive lost later: still within the two-drive tolerance.
    unplug_drive(&server.drive_path(6));
    assert_versions_intact(&client, &versions, "with drive 6 unplugged as well").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_versioned_bucket_is_emptied_page_by_page_deleting_each_page_before_asking_for_the_next() {
    // What boto3's `bucket.object_versions.delete()` and most "empty the
    // bucket" scripts do: the markers of the next request name versions that
    // were just deleted.
    let (_server, client) = enabled_bucket().await;
    for key in ["a", "b", "c"] {
        for n in 0..3u8 {
            put_versioned(&client, key, &[n; 10]).await;
        }
    }
    let (mut key_marker, mut version_marker): (Option<String>, Option<String>) = (None, None);
    let mut deleted = 0;
    for _ in 0..20 {
        let page = client
            .list_object_versions()
            .bucket(BUCKET)
            .max_keys(2)
            .set_key_marker(key_marker.clone())
            .set_version_id_marker(version_marker.clone())
            .send()
            .await
            .unwrap_or_else(|e| panic!("ListObjectVersions after deleting a page: {}", DisplayErrorContext(&e)));
        for version in page.versions() {
            let (key, id) = (version.key().expect("key"), version.version_id().expect("version id"));
            client.delete_object().bucket(BUCKET).key(key).version_id(id).send().await.expect("delete version");
            deleted += 1;
        }
        if !page.is_truncated().unwrap_or(false) {
            break;
        }
        key_marker = page.next_key_marker().map(str::to_owned);
        version_marker = page.next_version_id_marker().map(str::to_owned);
    }
    assert_eq!(deleted, 9, "every version was listed once and deleted");
    let left = client.list_object_versions().bucket(BUCKET).send().await.expect("list");
    assert!(left.versions().is_empty() && left.delete_markers().is_empty(), "the bucket is empty");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_folder_whose_objects_are_all_deleted_is_no_common_prefix_in_list_objects() {
    let (_server, client) = enabled_bucket().await;
    put_versioned(&client, "photos/a.jpg", b"a").await;
    put_versioned(&client, "photos/b.jpg", b"b").await;
    put_versioned(&client, "docs/readme.txt", b"r").await;
    delete_key(&client, "photos/a.jpg").await;
    delete_key(&client, "photos/b.jpg").await;

    let listed = client.list_objects_v2().bucket(BUCKET).delimiter("/").send().await.expect("ListObjectsV2");
    let prefixes: Vec<&str> = listed.common_prefixes().iter().filter_map(|p| p.prefix()).collect();
    assert_eq!(prefixes, vec!["docs/"], "photos/ holds only delete markers");
    let v1 = client.list_objects().bucket(BUCKET).delimiter("/").send().await.expect("ListObjects");
    let prefixes: Vec<&str> = v1.common_prefixes().iter().filter_map(|p| p.prefix()).collect();
    assert_eq!(prefixes, vec!["docs/"]);
    // The history is still there: ListObjectVersions shows both folders.
    let versions = client.list_object_versions().bucket(BUCKET).delimiter("/").send().await.expect("versions");
    let prefixes: Vec<&str> = versions.common_prefixes().iter().filter_map(|p| p.prefix()).collect();
    assert_eq!(prefixes, vec!["docs/", "photos/"]);
    // An object put back makes the folder appear again.
    put_versioned(&client, "photos/b.jpg", b"again").await;
    let listed = client.list_objects_v2().bucket(BUCKET).delimiter("/").send().await.expect("ListObjectsV2");
    let prefixes: Vec<&str> = listed.common_prefixes().iter().filter_map(|p| p.prefix()).collect();
    assert_eq!(prefixes, vec!["docs/", "photos/"]);
}
