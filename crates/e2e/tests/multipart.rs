//! A user uploads objects in parts — uploaded or copied from ranges of other
//! objects — lists and aborts uploads, is told which completions are invalid, and
//! reads a 105 MiB object back whole and by ranges that cross part boundaries.

use aws_sdk_s3::Client;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use bulwark_e2e::{
    PART_SIZE_MIN_BYTES, ResponseCapture, TestServer, assert_s3_error, etag_of, get_bytes, md5_bytes, md5_hex,
    md5_of_stream, multipart_etag, payload, put_bytes, read_all,
};
use futures::{StreamExt, TryStreamExt};
use md5::{Digest, Md5};

const BUCKET: &str = "multipart";
const MIB: usize = 1024 * 1024;

async fn create_upload(client: &Client, key: &str) -> String {
    client
        .create_multipart_upload()
        .bucket(BUCKET)
        .key(key)
        .send()
        .await
        .expect("CreateMultipartUpload")
        .upload_id()
        .expect("CreateMultipartUpload returns an upload id")
        .to_owned()
}

async fn upload_part(client: &Client, key: &str, upload_id: &str, number: i32, data: Vec<u8>) -> CompletedPart {
    let etag = client
        .upload_part()
        .bucket(BUCKET)
        .key(key)
        .upload_id(upload_id)
        .part_number(number)
        .body(ByteStream::from(data))
        .send()
        .await
        .unwrap_or_else(|e| panic!("UploadPart {number}: {e:?}"))
        .e_tag()
        .expect("UploadPart returns an ETag")
        .to_owned();
    CompletedPart::builder().part_number(number).e_tag(etag).build()
}

fn completion(parts: Vec<CompletedPart>) -> CompletedMultipartUpload {
    CompletedMultipartUpload::builder().set_parts(Some(parts)).build()
}

/// Uploads `parts` as parts 1..=N of a new upload and completes it; returns the ETag.
async fn upload_object(client: &Client, key: &str, parts: &[Vec<u8>]) -> String {
    let upload_id = create_upload(client, key).await;
    let mut completed = Vec::new();
    for (i, data) in parts.iter().enumerate() {
        completed.push(upload_part(client, key, &upload_id, i as i32 + 1, data.clone()).await);
    }
    client
        .complete_multipart_upload()
        .bucket(BUCKET)
        .key(key)
        .upload_id(&upload_id)
        .multipart_upload(completion(completed))
        .send()
        .await
        .expect("CompleteMultipartUpload")
        .e_tag()
        .expect("CompleteMultipartUpload returns an ETag")
        .to_owned()
}

fn three_parts(seed: u64) -> Vec<Vec<u8>> {
    vec![payload(seed, PART_SIZE_MIN_BYTES), payload(seed + 1, PART_SIZE_MIN_BYTES), payload(seed + 2, MIB + 3)]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_multipart_object_reads_back_whole_with_the_multipart_etag() {
    let (_server, client) = TestServer::start_with_bucket(BUCKET).await;
    let parts = three_parts(1);
    let etag = upload_object(&client, "mp", &parts).await;
    let whole = parts.concat();

    let md5s: Vec<[u8; 16]> = parts.iter().map(|p| md5_bytes(p)).collect();
    assert_eq!(etag, multipart_etag(&md5s), "ETag is md5-of-part-md5s-N");
    let head = client.head_object().bucket(BUCKET).key("mp").send().await.expect("HeadObject");
    assert_eq!(head.content_length(), Some(whole.len() as i64));
    assert_eq!(head.e_tag(), Some(etag.as_str()));
    let listed = client.list_objects_v2().bucket(BUCKET).send().await.expect("ListObjectsV2");
    let object = &listed.contents()[0];
    assert_eq!(object.size(), Some(whole.len() as i64));
    assert_eq!(object.e_tag(), Some(etag.as_str()));
    assert!(get_bytes(&client, BUCKET, "mp").await == whole, "bytes differ");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_part_number_returns_that_part_and_the_parts_count_and_beyond_is_invalid_part_number() {
    let (_server, client) = TestServer::start_with_bucket(BUCKET).await;
    let parts = three_parts(10);
    upload_object(&client, "mp", &parts).await;
    let total: usize = parts.iter().map(Vec::len).sum();

    let mut first = 0;
    for (i, part) in parts.iter().enumerate() {
        let number = i as i32 + 1;
        let capture = ResponseCapture::new();
        let output = client
            .get_object()
            .bucket(BUCKET)
            .key("mp")
            .part_number(number)
            .customize()
            .interceptor(capture.clone())
            .send()
            .await
            .unwrap_or_else(|e| panic!("GET partNumber={number}: {e:?}"));
        assert_eq!(capture.status(), Some(206), "status of part {number}");
        assert_eq!(output.parts_count(), Some(3), "x-amz-mp-parts-count");
        let last = first + part.len() - 1;
        assert_eq!(output.content_range(), Some(format!("bytes {first}-{last}/{total}").as_str()));
        assert!(read_all(output.body).await == *part, "bytes of part {number}");
        first = last + 1;
    }
    let beyond = client.get_object().bucket(BUCKET).key("mp").part_number(4).send().await;
    assert_s3_error(beyond, 416, "InvalidPartNumber");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_single_small_part_is_a_valid_upload() {
    let (_server, client) = TestServer::start_with_bucket(BUCKET).await;
    let parts = vec![payload(20, 1000)];
    let etag = upload_object(&client, "tiny", &parts).await;
    assert_eq!(etag, multipart_etag(&[md5_bytes(&parts[0])]));
    assert!(get_bytes(&client, BUCKET, "tiny").await == parts[0]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn completing_with_parts_out_of_order_is_invalid_part_order() {
    let (_server, client) = TestServer::start_with_bucket(BUCKET).await;
    let upload_id = create_upload(&client, "k").await;
    let one = upload_part(&client, "k", &upload_id, 1, payload(30, PART_SIZE_MIN_BYTES)).await;
    let two = upload_part(&client, "k", &upload_id, 2, payload(31, 1000)).await;

    let result = client
        .complete_multipart_upload()
        .bucket(BUCKET)
        .key("k")
        .upload_id(&upload_id)
        .multipart_upload(completion(vec![two, one]))
        .send()
        .await;
    assert_s3_error(result, 400, "InvalidPartOrder");
    let get = client.get_object().bucket(BUCKET).key("k").send().await;
    assert_s3_error(get, 404, "NoSuchKey");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn completing_with_a_missing_part_or_a_wrong_etag_is_invalid_part() {
    let (_server, client) = TestServer::start_with_bucket(BUCKET).await;
    let upload_id = create_upload(&client, "k").await;
    let one = upload_part(&client, "k", &upload_id, 1, payload(40, PART_SIZE_MIN_BYTES)).await;
    let two = upload_part(&client, "k", &upload_id, 2, payload(41, 1000)).await;

    let never_uploaded = CompletedPart::builder().part_number(3).e_tag(etag_of(b"never")).build();
    let wrong_etag = CompletedPart::builder().part_number(2).e_tag(etag_of(b"not the part")).build();
    for parts in [vec![one.clone(), never_uploaded], vec![one.clone(), wrong_etag]] {
        let result = client
            .complete_multipart_upload()
            .bucket(BUCKET)
            .key("k")
            .upload_id(&upload_id)
            .multipart_upload(completion(parts))
            .send()
            .await;
        assert_s3_error(result, 400, "InvalidPart");
    }
    // The upload survives a refused completion.
    client
        .complete_multipart_upload()
        .bucket(BUCKET)
        .key("k")
        .upload_id(&upload_id)
        .multipart_upload(completion(vec![one, two]))
        .send()
        .await
        .expect("a valid completion after refused ones");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn completing_with_a_small_part_before_the_last_is_entity_too_small() {
    let (_server, client) = TestServer::start_with_bucket(BUCKET).await;
    let upload_id = create_upload(&client, "k").await;
    let one = upload_part(&client, "k", &upload_id, 1, payload(50, MIB)).await;
    let two = upload_part(&client, "k", &upload_id, 2, payload(51, MIB)).await;

    let result = client
        .complete_multipart_upload()
        .bucket(BUCKET)
        .key("k")
        .upload_id(&upload_id)
        .multipart_upload(completion(vec![one, two]))
        .send()
        .await;
    assert_s3_error(result, 400, "EntityTooSmall");
    let get = client.get_object().bucket(BUCKET).key("k").send().await;
    assert_s3_error(get, 404, "NoSuchKey");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn completing_with_a_subset_of_the_parts_stores_only_those_parts() {
    let (_server, client) = TestServer::start_with_bucket(BUCKET).await;
    let upload_id = create_upload(&client, "k").await;
    let first = payload(60, PART_SIZE_MIN_BYTES);
    let third = payload(62, 2000);
    let one = upload_part(&client, "k", &upload_id, 1, first.clone()).await;
    upload_part(&client, "k", &upload_id, 2, payload(61, 3000)).await;
    let three = upload_part(&client, "k", &upload_id, 3, third.clone()).await;

    let etag = client
        .complete_multipart_upload()
        .bucket(BUCKET)
        .key("k")
        .upload_id(&upload_id)
        .multipart_upload(completion(vec![one, three]))
        .send()
        .await
        .expect("CompleteMultipartUpload with parts 1 and 3")
        .e_tag()
        .map(str::to_owned);
    assert_eq!(etag, Some(multipart_etag(&[md5_bytes(&first), md5_bytes(&third)])));
    assert!(get_bytes(&client, BUCKET, "k").await == [first, third].concat());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upload_part_copy_builds_an_object_from_ranges_of_others() {
    let (_server, client) = TestServer::start_with_bucket(BUCKET).await;
    let source = payload(70, PART_SIZE_MIN_BYTES + MIB + 100);
    put_bytes(&client, BUCKET, "source", source.clone()).await;
    let small = payload(71, 1000);
    put_bytes(&client, BUCKET, "small", small.clone()).await;
    // Every part but the last must be 5 MiB or more, copied or not.
    let offset = 1234;
    let middle = offset..offset + PART_SIZE_MIN_BYTES;

    let upload_id = create_upload(&client, "assembled").await;
    let mut parts = Vec::new();
    let ranges = [
        (1, "source", None, &source[..]),
        (2, "source", Some(format!("bytes={}-{}", middle.start, middle.end - 1)), &source[middle.clone()]),
        (3, "small", Some("bytes=100-999".to_owned()), &small[100..]),
    ];
    for (number, from, range, expected) in ranges {
        let output = client
            .upload_part_copy()
            .bucket(BUCKET)
            .key("assembled")
            .upload_id(&upload_id)
            .part_number(number)
            .copy_source(format!("{BUCKET}/{from}"))
            .set_copy_source_range(range)
            .send()
            .await
            .unwrap_or_else(|e| panic!("UploadPartCopy {number}: {e:?}"));
        let etag = output.copy_part_result().and_then(|r| r.e_tag()).expect("CopyPartResult has an ETag");
        assert_eq!(etag, etag_of(expected), "ETag of copied part {number}");
        parts.push(CompletedPart::builder().part_number(number).e_tag(etag).build());
    }
    client
        .complete_multipart_upload()
        .bucket(BUCKET)
        .key("assembled")
        .upload_id(&upload_id)
        .multipart_upload(completion(parts))
        .send()
        .await
        .expect("CompleteMultipartUpload of copied parts");
    let expected = [&source[..], &source[middle], &small[100..]].concat();
    assert!(get_bytes(&client, BUCKET, "assembled").await == expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_aborted_upload_is_gone_and_later_calls_are_no_such_upload() {
    let (_server, client) = TestServer::start_with_bucket(BUCKET).await;
    let upload_id = create_upload(&client, "k").await;
    let one = upload_part(&client, "k", &upload_id, 1, payload(80, MIB)).await;

    client
        .abort_multipart_upload()
        .bucket(BUCKET)
        .key("k")
        .upload_id(&upload_id)
        .send()
        .await
        .expect("AbortMultipartUpload");

    let part = client
        .upload_part()
        .bucket(BUCKET)
        .key("k")
        .upload_id(&upload_id)
        .part_number(2)
        .body(ByteStream::from(payload(81, 100)))
        .send()
        .await;
    assert_s3_error(part, 404, "NoSuchUpload");
    let complete = client
        .complete_multipart_upload()
        .bucket(BUCKET)
        .key("k")
        .upload_id(&upload_id)
        .multipart_upload(completion(vec![one]))
        .send()
        .await;
    assert_s3_error(complete, 404, "NoSuchUpload");
    let parts = client.list_parts().bucket(BUCKET).key("k").upload_id(&upload_id).send().await;
    assert_s3_error(parts, 404, "NoSuchUpload");
    let uploads = client.list_multipart_uploads().bucket(BUCKET).send().await.expect("ListMultipartUploads");
    assert!(uploads.uploads().is_empty(), "the aborted upload is not listed");
    let get = client.get_object().bucket(BUCKET).key("k").send().await;
    assert_s3_error(get, 404, "NoSuchKey");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_naming_an_unknown_upload_id_are_no_such_upload() {
    let (_server, client) = TestServer::start_with_bucket(BUCKET).await;
    let part = client
        .upload_part()
        .bucket(BUCKET)
        .key("k")
        .upload_id("no-such-upload-id")
        .part_number(1)
        .body(ByteStream::from(payload(90, 100)))
        .send()
        .await;
    assert_s3_error(part, 404, "NoSuchUpload");
    let abort = client.abort_multipart_upload().bucket(BUCKET).key("k").upload_id("no-such-upload-id").send().await;
    assert_s3_error(abort, 404, "NoSuchUpload");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_parts_reports_every_part_with_size_and_etag_and_pages() {
    let (_server, client) = TestServer::start_with_bucket(BUCKET).await;
    let upload_id = create_upload(&client, "k").await;
    let sizes = [PART_SIZE_MIN_BYTES, MIB, 1000];
    for (i, size) in sizes.into_iter().enumerate() {
        upload_part(&client, "k", &upload_id, i as i32 + 1, payload(100 + i as u64, size)).await;
    }
    // Uploading a part number again replaces that part.
    let replacement = payload(200, 2 * MIB);
    upload_part(&client, "k", &upload_id, 2, replacement.clone()).await;
    let expected = [
        (1, PART_SIZE_MIN_BYTES, etag_of(&payload(100, PART_SIZE_MIN_BYTES))),
        (2, 2 * MIB, etag_of(&replacement)),
        (3, 1000, etag_of(&payload(102, 1000))),
    ];

    let all = client.list_parts().bucket(BUCKET).key("k").upload_id(&upload_id).send().await.expect("ListParts");
    let got: Vec<(i32, usize, String)> = all
        .parts()
        .iter()
        .map(|p| {
            (
                p.part_number().unwrap_or_default(),
                p.size().unwrap_or_default() as usize,
                p.e_tag().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    assert_eq!(got, expected);
    assert_eq!(all.is_truncated(), Some(false));

    let first_page = client
        .list_parts()
        .bucket(BUCKET)
        .key("k")
        .upload_id(&upload_id)
        .max_parts(2)
        .send()
        .await
        .expect("ListParts max-parts=2");
    assert_eq!(first_page.parts().len(), 2);
    assert_eq!(first_page.is_truncated(), Some(true));
    let marker = first_page.next_part_number_marker().expect("a truncated page has a next part number marker");
    let second_page = client
        .list_parts()
        .bucket(BUCKET)
        .key("k")
        .upload_id(&upload_id)
        .part_number_marker(marker)
        .send()
        .await
        .expect("ListParts from the marker");
    let numbers: Vec<i32> = second_page.parts().iter().filter_map(|p| p.part_number()).collect();
    assert_eq!(numbers, [3]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_multipart_uploads_shows_uploads_until_completed_or_aborted() {
    let (_server, client) = TestServer::start_with_bucket(BUCKET).await;
    let a1 = create_upload(&client, "a/1").await;
    let a2 = create_upload(&client, "a/2").await;
    let b1 = create_upload(&client, "b/1").await;

    let uploads = |prefix: Option<&str>| {
        let request = client.list_multipart_uploads().bucket(BUCKET).set_prefix(prefix.map(str::to_owned));
        async move {
            let output = request.send().await.expect("ListMultipartUploads");
            output
                .uploads()
                .iter()
                .map(|u| (u.key().unwrap_or_default().to_owned(), u.upload_id().unwrap_or_default().to_owned()))
                .collect::<Vec<_>>()
        }
    };
    let pair = |key: &str, id: &str| (key.to_owned(), id.to_owned());
    assert_eq!(uploads(None).await, [pair("a/1", &a1), pair("a/2", &a2), pair("b/1", &b1)]);
    assert_eq!(uploads(Some("a/")).await, [pair("a/1", &a1), pair("a/2", &a2)]);

    let part = upload_part(&client, "a/1", &a1, 1, payload(300, 100)).await;
    client
        .complete_multipart_upload()
        .bucket(BUCKET)
        .key("a/1")
        .upload_id(&a1)
        .multipart_upload(completion(vec![part]))
        .send()
        .await
        .expect("CompleteMultipartUpload");
    client
        .abort_multipart_upload()
        .bucket(BUCKET)
        .key("b/1")
        .upload_id(&b1)
        .send()
        .await
        .expect("AbortMultipartUpload");
    assert_eq!(uploads(None).await, [pair("a/2", &a2)]);
}

/// Part `index` (0-based) of the big object.
fn big_part(index: usize) -> Vec<u8> {
    payload(1_000 + index as u64, PART_SIZE_MIN_BYTES)
}

/// Bytes `first..=last` of the big object, regenerated from its parts.
fn big_range(first: usize, last: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(last - first + 1);
    for index in first / PART_SIZE_MIN_BYTES..=last / PART_SIZE_MIN_BYTES {
        let part = big_part(index);
        let start = index * PART_SIZE_MIN_BYTES;
        let from = first.max(start) - start;
        let to = (last + 1).min(start + PART_SIZE_MIN_BYTES) - start;
        out.extend_from_slice(&part[from..to]);
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_105_mib_object_in_21_parts_reads_back_whole_and_across_part_boundaries() {
    const PARTS: usize = 21;
    const UPLOADS_IN_FLIGHT: usize = 2;
    let total = PARTS * PART_SIZE_MIN_BYTES;
    let (_server, client) = TestServer::start_with_bucket(BUCKET).await;

    let mut whole = Md5::new();
    let mut part_md5s = Vec::with_capacity(PARTS);
    for index in 0..PARTS {
        let part = big_part(index);
        whole.update(&part);
        part_md5s.push(md5_bytes(&part));
    }
    let whole_md5 = hex::encode(whole.finalize());

    let upload_id = create_upload(&client, "big").await;
    let completed: Vec<CompletedPart> = futures::stream::iter(0..PARTS)
        .map(|index| {
            let client = client.clone();
            let upload_id = upload_id.clone();
            async move { Ok::<_, ()>(upload_part(&client, "big", &upload_id, index as i32 + 1, big_part(index)).await) }
        })
        .buffered(UPLOADS_IN_FLIGHT)
        .try_collect()
        .await
        .expect("every part uploads");
    let etag = client
        .complete_multipart_upload()
        .bucket(BUCKET)
        .key("big")
        .upload_id(&upload_id)
        .multipart_upload(completion(completed))
        .send()
        .await
        .expect("CompleteMultipartUpload of 21 parts")
        .e_tag()
        .map(str::to_owned);
    assert_eq!(etag, Some(multipart_etag(&part_md5s)));

    let output = client.get_object().bucket(BUCKET).key("big").send().await.expect("GET the whole object");
    assert_eq!(output.content_length(), Some(total as i64));
    let (got_md5, got_len) = md5_of_stream(output.body).await;
    assert_eq!(got_len, total as u64, "length read back");
    assert_eq!(got_md5, whole_md5, "MD5 of the whole object read back");

    let boundary = PART_SIZE_MIN_BYTES;
    let ranges = [
        // Ten bytes either side of the first boundary.
        (boundary - 10, boundary + 9),
        // From inside part 3 to inside part 6, across three boundaries.
        (3 * boundary - MIB, 5 * boundary + MIB),
        // A range ending exactly on a boundary, and one starting on it.
        (7 * boundary - 100, 8 * boundary - 1),
        (8 * boundary, 8 * boundary + 4095),
        // The last boundary to the end.
        (total - boundary - 17, total - 1),
    ];
    for (first, last) in ranges {
        let output = client
            .get_object()
            .bucket(BUCKET)
            .key("big")
            .range(format!("bytes={first}-{last}"))
            .send()
            .await
            .unwrap_or_else(|e| panic!("GET bytes={first}-{last}: {e:?}"));
        assert_eq!(output.content_range(), Some(format!("bytes {first}-{last}/{total}").as_str()));
        let got = read_all(output.body).await;
        assert_eq!(got.len(), last - first + 1, "length of bytes={first}-{last}");
        assert_eq!(md5_hex(&got), md5_hex(&big_range(first, last)), "bytes={first}-{last}");
    }

    let suffix = client
        .get_object()
        .bucket(BUCKET)
        .key("big")
        .range(format!("bytes=-{}", boundary + 17))
        .send()
        .await
        .expect("GET a suffix range across the last boundary");
    let got = read_all(suffix.body).await;
    assert_eq!(md5_hex(&got), md5_hex(&big_range(total - boundary - 17, total - 1)));

    let last_part = client
        .get_object()
        .bucket(BUCKET)
        .key("big")
        .part_number(PARTS as i32)
        .send()
        .await
        .expect("GET partNumber=21");
    assert_eq!(last_part.parts_count(), Some(PARTS as i32));
    let got = read_all(last_part.body).await;
    assert_eq!(md5_hex(&got), hex::encode(part_md5s[PARTS - 1]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_bucket_discards_its_uploads_and_a_bucket_made_again_never_sees_them() {
    let (server, client) = TestServer::start_with_bucket(BUCKET).await;
    let upload_id = create_upload(&client, "unfinished").await;
    upload_part(&client, "unfinished", &upload_id, 1, payload(3, 2 * MIB)).await;
    let drive_files = || server.drive_files_containing(&payload(3, 2 * MIB)[..4096]).len();
    assert!(drive_files() >= 1, "the part's first data shard is on a drive");

    // Only objects keep a bucket (as S3 general-purpose buckets do): uploads in progress go with it.
    client.delete_bucket().bucket(BUCKET).send().await.expect("DeleteBucket with an upload in progress");
    client.create_bucket().bucket(BUCKET).send().await.expect("the name is free again");
    let listed = client.list_multipart_uploads().bucket(BUCKET).send().await.expect("ListMultipartUploads");
    assert!(listed.uploads().is_empty(), "the new bucket lists the old upload: {:?}", listed.uploads());
    let refused = client
        .upload_part()
        .bucket(BUCKET)
        .key("unfinished")
        .upload_id(&upload_id)
        .part_number(2)
        .body(ByteStream::from(payload(4, MIB)))
        .send()
        .await;
    assert_s3_error(refused, 404, "NoSuchUpload");
    let completed = client
        .complete_multipart_upload()
        .bucket(BUCKET)
        .key("unfinished")
        .upload_id(&upload_id)
        .multipart_upload(completion(Vec::new()))
        .send()
        .await;
    assert!(completed.is_err(), "the old upload cannot be completed into the new bucket");
    assert_eq!(drive_files(), 0, "its part's shards were removed from the drives");
}
