//! A user creates, inspects, lists and deletes buckets, and gets the S3 error that
//! names the problem when a bucket is missing, taken, misnamed or not empty.

use aws_sdk_s3::error::ProvideErrorMetadata as _;
use aws_sdk_s3::operation::RequestId as _;
use aws_sdk_s3::types::BucketLocationConstraint;
use bulwark_e2e::{
    TestServer, assert_http_status, assert_s3_error, create_bucket, get_bytes, payload, put_bytes, raw_http,
    set_versioning,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_created_bucket_answers_head_and_appears_in_list_buckets() {
    let server = TestServer::start().await;
    let client = server.client();
    create_bucket(&client, "alpha").await;
    create_bucket(&client, "beta").await;

    client.head_bucket().bucket("alpha").send().await.expect("HeadBucket of a created bucket succeeds");
    let listed = client.list_buckets().send().await.expect("ListBuckets");
    let names: Vec<&str> = listed.buckets().iter().filter_map(|b| b.name()).collect();
    assert_eq!(names, ["alpha", "beta"], "ListBuckets lists buckets by name");
    assert!(listed.buckets().iter().all(|b| b.creation_date().is_some()), "every bucket has a creation date");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn creating_an_existing_bucket_is_bucket_already_owned_by_you() {
    let server = TestServer::start().await;
    let client = server.client();
    create_bucket(&client, "taken").await;

    let again = client.create_bucket().bucket("taken").send().await;
    assert_s3_error(again, 409, "BucketAlreadyOwnedByYou");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_bucket_names_are_refused_with_invalid_bucket_name() {
    let server = TestServer::start().await;
    let client = server.client();
    for name in [
        "ab",
        "UpperCase",
        "under_score",
        "double..dot",
        "-leading-dash",
        "trailing-dash-",
        "192.168.5.4",
        &"x".repeat(64),
    ] {
        let result = client.create_bucket().bucket(name).send().await;
        let message = result.as_ref().err().and_then(|e| e.message()).unwrap_or_default().to_owned();
        assert_s3_error(result, 400, "InvalidBucketName");
        assert!(!message.is_empty(), "{name:?}: the error says why in a <Message>");
    }
    let listed = client.list_buckets().send().await.expect("ListBuckets");
    assert!(listed.buckets().is_empty(), "no invalid bucket was created");
}

/// S3's form of a request id: 16 upper-case hex digits.
fn is_request_id(id: &str) -> bool {
    id.len() == 16 && id.bytes().all(|b| b.is_ascii_digit() || (b'A'..=b'F').contains(&b))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_response_has_a_request_id_that_its_error_document_and_log_lines_repeat() {
    let (server, client) = TestServer::start_with_bucket("ids").await;
    let put = client.put_object().bucket("ids").key("k").body(payload(1, 100).into()).send().await.expect("PutObject");
    let put_id = put.request_id().expect("a PUT has x-amz-request-id").to_owned();
    assert!(is_request_id(&put_id), "{put_id:?}");
    let missing = client.get_object().bucket("ids").key("absent").send().await.expect_err("no such key");
    let get_id = missing.request_id().expect("an error has x-amz-request-id").to_owned();
    assert!(is_request_id(&get_id) && get_id != put_id, "{get_id:?} is fresh");
    let body = missing.raw_response().and_then(|r| r.body().bytes()).expect("the error document");
    let body = String::from_utf8_lossy(body);
    assert!(body.contains(&format!("<RequestId>{get_id}</RequestId>")), "the document repeats the header: {body}");
    assert!(body.contains("<Code>NoSuchKey</Code>"), "{body}");

    // Refused before any S3 handler runs (no signature): the same.
    let refused = raw_http::send("GET", &format!("{}/ids/k", server.endpoint()), &[], b"").await;
    assert_eq!(refused.status, 403);
    let id = refused.header("x-amz-request-id").expect("a refusal has x-amz-request-id").to_owned();
    assert!(is_request_id(&id), "{id:?}");
    assert!(refused.text().contains(&format!("<RequestId>{id}</RequestId>")), "{}", refused.text());

    // An error with headers of its own (a delete marker's) keeps its document and id.
    set_versioning(&client, "ids", aws_sdk_s3::types::BucketVersioningStatus::Enabled).await;
    client.delete_object().bucket("ids").key("k").send().await.expect("a delete marker");
    let marked = raw_http::send("GET", &format!("{}/ids/k", server.endpoint()), &[], b"").await;
    let signed = client.get_object().bucket("ids").key("k").send().await.expect_err("a delete marker");
    let raw = signed.raw_response().expect("a response");
    assert_eq!(raw.headers().get("x-amz-delete-marker"), Some("true"));
    let id = signed.request_id().expect("x-amz-request-id").to_owned();
    let body = String::from_utf8_lossy(raw.body().bytes().expect("a document")).into_owned();
    assert!(body.contains(&format!("<RequestId>{id}</RequestId>")), "{body}");
    assert_eq!(marked.status, 403, "unsigned: refused before the marker is seen");

    // A client's report leads to the server's log: the request's lines carry its id.
    let log = server.log();
    let line = log.lines().find(|l| l.contains(&put_id)).unwrap_or_else(|| panic!("no log line has {put_id}"));
    assert!(line.contains("s3:PutObject"), "the PUT's line: {line}");
    assert!(!log.contains('\u{1b}'), "a log file gets no terminal colours");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn head_of_a_missing_bucket_is_404() {
    let server = TestServer::start().await;
    let result = server.client().head_bucket().bucket("nowhere").send().await;
    assert_http_status(result, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_an_empty_bucket_removes_it() {
    let server = TestServer::start().await;
    let client = server.client();
    create_bucket(&client, "short-lived").await;

    client.delete_bucket().bucket("short-lived").send().await.expect("DeleteBucket of an empty bucket succeeds");
    assert_http_status(client.head_bucket().bucket("short-lived").send().await, 404);
    let listed = client.list_buckets().send().await.expect("ListBuckets");
    assert!(listed.buckets().is_empty(), "the deleted bucket is not listed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_bucket_with_objects_is_bucket_not_empty_and_keeps_them() {
    let server = TestServer::start().await;
    let client = server.client();
    create_bucket(&client, "full").await;
    put_bytes(&client, "full", "small", payload(1, 1000)).await;
    put_bytes(&client, "full", "large", payload(2, 300 * 1024)).await;

    let result = client.delete_bucket().bucket("full").send().await;
    assert_s3_error(result, 409, "BucketNotEmpty");
    let listed = client.list_objects_v2().bucket("full").send().await.expect("ListObjectsV2");
    assert_eq!(listed.key_count(), Some(2), "both objects are still there");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bucket_emptied_of_its_objects_can_be_deleted() {
    let server = TestServer::start().await;
    let client = server.client();
    create_bucket(&client, "emptied").await;
    put_bytes(&client, "emptied", "large", payload(3, 300 * 1024)).await;
    client.delete_object().bucket("emptied").key("large").send().await.expect("DeleteObject");

    client.delete_bucket().bucket("emptied").send().await.expect("DeleteBucket after the last object is deleted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_missing_bucket_is_no_such_bucket() {
    let server = TestServer::start().await;
    let result = server.client().delete_bucket().bucket("nowhere").send().await;
    assert_s3_error(result, 404, "NoSuchBucket");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn object_requests_to_a_missing_bucket_are_no_such_bucket() {
    let server = TestServer::start().await;
    let client = server.client();
    let put = client.put_object().bucket("nowhere").key("k").body(payload(4, 10).into()).send().await;
    assert_s3_error(put, 404, "NoSuchBucket");
    let get = client.get_object().bucket("nowhere").key("k").send().await;
    assert_s3_error(get, 404, "NoSuchBucket");
    let list = client.list_objects_v2().bucket("nowhere").send().await;
    assert_s3_error(list, 404, "NoSuchBucket");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_bucket_location_names_us_east_1() {
    let server = TestServer::start().await;
    let client = server.client();
    create_bucket(&client, "located").await;

    let location = client.get_bucket_location().bucket("located").send().await.expect("GetBucketLocation");
    // Amazon S3 answers an empty LocationConstraint for us-east-1; naming the
    // region explicitly is understood by every client too.
    let constraint = location.location_constraint().map(BucketLocationConstraint::as_str);
    assert!(matches!(constraint, None | Some("") | Some("us-east-1")), "unexpected location constraint {constraint:?}");
    let missing = client.get_bucket_location().bucket("nowhere").send().await;
    assert_s3_error(missing, 404, "NoSuchBucket");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn virtual_hosted_style_requests_name_the_bucket_in_the_host() {
    let server = TestServer::start().await;
    let hosted = server.virtual_hosted_client();
    let path_style = server.client();
    let bucket = "hosted";

    hosted.create_bucket().bucket(bucket).send().await.expect("CreateBucket as hosted.localhost");
    path_style.head_bucket().bucket(bucket).send().await.expect("the bucket exists for path-style requests");
    let body = payload(5, 300 * 1024);
    hosted
        .put_object()
        .bucket(bucket)
        .key("dir/object.bin")
        .body(body.clone().into())
        .send()
        .await
        .expect("PutObject virtual-hosted");
    assert_eq!(get_bytes(&path_style, bucket, "dir/object.bin").await, body, "one object, either addressing");
    assert_eq!(get_bytes(&hosted, bucket, "dir/object.bin").await, body);
    let listed = hosted.list_objects_v2().bucket(bucket).prefix("dir/").send().await.expect("ListObjectsV2");
    let keys: Vec<&str> = listed.contents().iter().filter_map(|o| o.key()).collect();
    assert_eq!(keys, ["dir/object.bin"]);

    // A key named like the server's own endpoints is the bucket's object.
    put_bytes(&hosted, bucket, "metrics", b"my metrics".to_vec()).await;
    assert_eq!(get_bytes(&hosted, bucket, "metrics").await, b"my metrics");

    // Bucket subresources, including the ones served beside the S3 protocol layer.
    set_versioning(&hosted, bucket, aws_sdk_s3::types::BucketVersioningStatus::Enabled).await;
    let versioning = path_style.get_bucket_versioning().bucket(bucket).send().await.expect("GetBucketVersioning");
    assert_eq!(versioning.status(), Some(&aws_sdk_s3::types::BucketVersioningStatus::Enabled));
    let rule = aws_sdk_s3::types::ServerSideEncryptionRule::builder()
        .apply_server_side_encryption_by_default(
            aws_sdk_s3::types::ServerSideEncryptionByDefault::builder()
                .sse_algorithm(aws_sdk_s3::types::ServerSideEncryption::Aes256)
                .build()
                .expect("a default"),
        )
        .build();
    hosted
        .put_bucket_encryption()
        .bucket(bucket)
        .server_side_encryption_configuration(
            aws_sdk_s3::types::ServerSideEncryptionConfiguration::builder().rules(rule).build().expect("a rule"),
        )
        .send()
        .await
        .expect("PutBucketEncryption virtual-hosted");
    let encryption = path_style.get_bucket_encryption().bucket(bucket).send().await.expect("GetBucketEncryption");
    let algorithm = encryption
        .server_side_encryption_configuration()
        .and_then(|c| c.rules().first())
        .and_then(|r| r.apply_server_side_encryption_by_default())
        .map(|d| d.sse_algorithm().clone());
    assert_eq!(algorithm, Some(aws_sdk_s3::types::ServerSideEncryption::Aes256));
    let got = hosted.get_bucket_encryption().bucket(bucket).send().await.expect("GetBucketEncryption virtual-hosted");
    assert!(got.server_side_encryption_configuration().is_some());

    // A bucket that does not exist, addressed by its host, is NoSuchBucket.
    let missing = hosted.get_object().bucket("nowhere").key("k").send().await;
    assert_s3_error(missing, 404, "NoSuchBucket");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn virtual_hosted_style_works_over_tls_under_a_configured_domain_with_a_wildcard_certificate() {
    // The domain comes from BULWARK_DOMAINS; the certificate names `*.s3.localhost`.
    let server = TestServer::start_tls_with_env(&[("BULWARK_DOMAINS", "s3.localhost")]).await;
    let hosted = server.virtual_hosted_client_at("s3.localhost");
    hosted.create_bucket().bucket("secure").send().await.expect("CreateBucket as secure.s3.localhost over TLS");
    put_bytes(&hosted, "secure", "k", b"over tls".to_vec()).await;
    assert_eq!(get_bytes(&server.client(), "secure", "k").await, b"over tls");
}
