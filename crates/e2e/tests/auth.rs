//! Only correctly signed requests touch data: a user shares objects with presigned
//! URLs that expire, and requests with a wrong secret, an unknown key, a tampered
//! URL or no signature at all are refused and leave nothing behind.

use std::time::Duration;

use aws_sdk_s3::presigning::PresigningConfig;
use aws_sdk_s3::primitives::ByteStream;
use bulwark_e2e::raw_http::{self, Response};
use bulwark_e2e::{
    ACCESS_KEY, ChunkTampering, ClientOptions, SECRET_KEY, TestServer, assert_http_status, assert_s3_error, etag_of,
    get_bytes, payload, presign_url_by_hand, put_bytes, put_signed_aws_chunked,
};

const BUCKET: &str = "guarded";
const WRONG_SECRET: &str = "not-the-secret-not-the-secret-not-the-se";
const UNKNOWN_ACCESS_KEY: &str = "AKIAIOSFODNN7UNKNOWN";
const SEVEN_DAYS: Duration = Duration::from_secs(7 * 24 * 3600);
/// Long enough for two small PUTs on a busy machine, short enough to wait out.
const PRESIGNED_PUT_LIFETIME: Duration = Duration::from_secs(4);

fn presigning(expires_in: Duration) -> PresigningConfig {
    PresigningConfig::expires_in(expires_in).expect("a valid presigning expiry")
}

async fn fetch(method: &str, url: &str, headers: &[(&str, &str)], body: &[u8]) -> Response {
    raw_http::send(method, url, headers, body).await
}

#[track_caller]
fn assert_refused(response: &Response, status: u16, code: &str) {
    assert_eq!(
        (response.status, response.error_code().as_deref()),
        (status, Some(code)),
        "unexpected response: {} {}",
        response.status,
        response.text()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_presigned_get_url_downloads_the_object_without_credentials() {
    let (_server, client) = TestServer::start_with_bucket(BUCKET).await;
    let data = payload(1, 700 * 1024);
    put_bytes(&client, BUCKET, "shared file.bin", data.clone()).await;

    let presigned = client
        .get_object()
        .bucket(BUCKET)
        .key("shared file.bin")
        .presigned(presigning(Duration::from_secs(600)))
        .await
        .expect("presign GetObject");
    let headers: Vec<(&str, &str)> = presigned.headers().collect();
    let response = fetch("GET", presigned.uri(), &headers, b"").await;
    assert_eq!(response.status, 200, "{}", response.text());
    assert!(response.body == data, "presigned GET returned different bytes");
    assert_eq!(response.header("etag"), Some(etag_of(&data).as_str()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_presigned_put_url_uploads_an_object_without_credentials() {
    let (server, client) = TestServer::start_with_bucket(BUCKET).await;
    // A client that adds no checksum of its own, so the URL carries none either.
    let presigner = server.client_with(ClientOptions { checksums_when_supported: false, ..ClientOptions::default() });
    let data = payload(2, 600 * 1024);

    let presigned = presigner
        .put_object()
        .bucket(BUCKET)
        .key("uploaded")
        .presigned(presigning(Duration::from_secs(600)))
        .await
        .expect("presign PutObject");
    let headers: Vec<(&str, &str)> = presigned.headers().collect();
    let response = fetch("PUT", presigned.uri(), &headers, &data).await;
    assert_eq!(response.status, 200, "{}", response.text());
    assert_eq!(response.header("etag"), Some(etag_of(&data).as_str()));
    assert!(get_bytes(&client, BUCKET, "uploaded").await == data);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_presigned_url_is_access_denied() {
    let (_server, client) = TestServer::start_with_bucket(BUCKET).await;
    put_bytes(&client, BUCKET, "k", payload(3, 1000)).await;
    let presigned = client
        .get_object()
        .bucket(BUCKET)
        .key("k")
        .presigned(presigning(Duration::from_secs(1)))
        .await
        .expect("presign GetObject");

    tokio::time::sleep(Duration::from_secs(2)).await;
    let headers: Vec<(&str, &str)> = presigned.headers().collect();
    let response = fetch("GET", presigned.uri(), &headers, b"").await;
    assert_refused(&response, 403, "AccessDenied");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_presigned_url_may_be_valid_for_seven_days_but_not_longer() {
    let (server, client) = TestServer::start_with_bucket(BUCKET).await;
    let data = payload(4, 1000);
    put_bytes(&client, BUCKET, "k", data.clone()).await;

    let week = presign_url_by_hand(&server, "GET", BUCKET, "k", SEVEN_DAYS);
    let response = fetch("GET", &week, &[], b"").await;
    assert_eq!(response.status, 200, "a 7-day URL works: {}", response.text());
    assert!(response.body == data);

    let longer = presign_url_by_hand(&server, "GET", BUCKET, "k", SEVEN_DAYS + Duration::from_secs(1));
    let response = fetch("GET", &longer, &[], b"").await;
    assert_refused(&response, 400, "AuthorizationQueryParametersError");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_presigned_url_does_not_open_another_key_or_survive_tampering() {
    let (_server, client) = TestServer::start_with_bucket(BUCKET).await;
    put_bytes(&client, BUCKET, "public", payload(5, 1000)).await;
    put_bytes(&client, BUCKET, "secret", payload(6, 1000)).await;
    let presigned = client
        .get_object()
        .bucket(BUCKET)
        .key("public")
        .presigned(presigning(Duration::from_secs(600)))
        .await
        .expect("presign GetObject");
    let url = presigned.uri().to_owned();

    let other_key = url.replacen("/public?", "/secret?", 1);
    assert_ne!(other_key, url);
    let response = fetch("GET", &other_key, &[], b"").await;
    assert_refused(&response, 403, "SignatureDoesNotMatch");

    let signature_at = url.find("X-Amz-Signature=").expect("URL has a signature") + 16;
    let mut tampered = url.clone().into_bytes();
    tampered[signature_at] = if tampered[signature_at] == b'0' { b'1' } else { b'0' };
    let tampered = String::from_utf8(tampered).expect("ASCII URL");
    let response = fetch("GET", &tampered, &[], b"").await;
    assert_refused(&response, 403, "SignatureDoesNotMatch");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_secret_is_signature_does_not_match() {
    let (server, _client) = TestServer::start_with_bucket(BUCKET).await;
    let intruder = server.client_with_credentials(ACCESS_KEY, WRONG_SECRET);
    assert_s3_error(intruder.list_buckets().send().await, 403, "SignatureDoesNotMatch");
    let get = intruder.get_object().bucket(BUCKET).key("k").send().await;
    assert_s3_error(get, 403, "SignatureDoesNotMatch");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_access_key_is_invalid_access_key_id() {
    let (server, _client) = TestServer::start_with_bucket(BUCKET).await;
    let stranger = server.client_with_credentials(UNKNOWN_ACCESS_KEY, SECRET_KEY);
    assert_s3_error(stranger.list_buckets().send().await, 403, "InvalidAccessKeyId");
    let put = stranger.put_object().bucket(BUCKET).key("k").body(ByteStream::from(payload(7, 100))).send().await;
    assert_s3_error(put, 403, "InvalidAccessKeyId");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_with_a_failing_signature_create_change_and_delete_nothing() {
    let (server, client) = TestServer::start_with_bucket(BUCKET).await;
    let kept = payload(8, 400 * 1024);
    put_bytes(&client, BUCKET, "kept", kept.clone()).await;
    let intruder = server.client_with(ClientOptions {
        secret_key: WRONG_SECRET.to_owned(),
        retries: false,
        ..ClientOptions::default()
    });

    let bucket = intruder.create_bucket().bucket("ghost-bucket").send().await;
    assert_s3_error(bucket, 403, "SignatureDoesNotMatch");
    assert_http_status(client.head_bucket().bucket("ghost-bucket").send().await, 404);

    // Refused before their bodies are read, whatever their size: the client
    // must get the 403, not a connection reset while it is still sending.
    for (key, size) in [("ghost-small", 1000), ("ghost-large", 2 * 1024 * 1024), ("ghost-huge", 12 * 1024 * 1024)] {
        let put = intruder.put_object().bucket(BUCKET).key(key).body(ByteStream::from(payload(9, size))).send().await;
        assert_s3_error(put, 403, "SignatureDoesNotMatch");
        let get = client.get_object().bucket(BUCKET).key(key).send().await;
        assert_s3_error(get, 404, "NoSuchKey");
    }

    let overwrite =
        intruder.put_object().bucket(BUCKET).key("kept").body(ByteStream::from(payload(10, 1000))).send().await;
    assert_s3_error(overwrite, 403, "SignatureDoesNotMatch");
    let delete = intruder.delete_object().bucket(BUCKET).key("kept").send().await;
    assert_s3_error(delete, 403, "SignatureDoesNotMatch");
    let delete_bucket = intruder.delete_bucket().bucket(BUCKET).send().await;
    assert_s3_error(delete_bucket, 403, "SignatureDoesNotMatch");
    let upload = intruder.create_multipart_upload().bucket(BUCKET).key("ghost-upload").send().await;
    assert_s3_error(upload, 403, "SignatureDoesNotMatch");

    assert!(get_bytes(&client, BUCKET, "kept").await == kept, "the object is unchanged");
    let listed = client.list_objects_v2().bucket(BUCKET).send().await.expect("ListObjectsV2");
    let keys: Vec<&str> = listed.contents().iter().filter_map(|o| o.key()).collect();
    assert_eq!(keys, ["kept"]);
    let uploads = client.list_multipart_uploads().bucket(BUCKET).send().await.expect("ListMultipartUploads");
    assert!(uploads.uploads().is_empty(), "no upload was started");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anonymous_requests_are_access_denied_and_store_nothing() {
    let (server, client) = TestServer::start_with_bucket(BUCKET).await;
    put_bytes(&client, BUCKET, "k", payload(11, 1000)).await;
    let endpoint = server.endpoint();

    let get = fetch("GET", &format!("{endpoint}/{BUCKET}/k"), &[], b"").await;
    assert_refused(&get, 403, "AccessDenied");
    let list = fetch("GET", &format!("{endpoint}/"), &[], b"").await;
    assert_refused(&list, 403, "AccessDenied");
    let put = fetch("PUT", &format!("{endpoint}/{BUCKET}/anonymous"), &[], &payload(12, 1000)).await;
    assert_refused(&put, 403, "AccessDenied");
    let create = fetch("PUT", &format!("{endpoint}/anonymous-bucket"), &[], b"").await;
    assert_refused(&create, 403, "AccessDenied");

    let absent = client.get_object().bucket(BUCKET).key("anonymous").send().await;
    assert_s3_error(absent, 404, "NoSuchKey");
    assert_http_status(client.head_bucket().bucket("anonymous-bucket").send().await, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_presigned_put_url_can_be_reused_until_it_expires_and_not_after() {
    let (server, client) = TestServer::start_with_bucket(BUCKET).await;
    let presigner = server.client_with(ClientOptions { checksums_when_supported: false, ..ClientOptions::default() });
    let presigned = presigner
        .put_object()
        .bucket(BUCKET)
        .key("twice")
        .presigned(presigning(PRESIGNED_PUT_LIFETIME))
        .await
        .expect("presign PutObject");
    let headers: Vec<(&str, &str)> = presigned.headers().collect();

    let first = payload(13, 1000);
    let response = fetch("PUT", presigned.uri(), &headers, &first).await;
    assert_eq!(response.status, 200, "{}", response.text());
    let second = payload(14, 1000);
    let response = fetch("PUT", presigned.uri(), &headers, &second).await;
    assert_eq!(response.status, 200, "{}", response.text());
    assert!(get_bytes(&client, BUCKET, "twice").await == second);

    tokio::time::sleep(PRESIGNED_PUT_LIFETIME + Duration::from_secs(1)).await;
    let response = fetch("PUT", presigned.uri(), &headers, &payload(15, 1000)).await;
    assert_refused(&response, 403, "AccessDenied");
    assert!(get_bytes(&client, BUCKET, "twice").await == second, "the expired PUT stored nothing");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signed_aws_chunked_upload_stores_the_decoded_body() {
    let (server, client) = TestServer::start_with_bucket(BUCKET).await;
    let data = payload(16, 300 * 1024 + 5);

    let response = put_signed_aws_chunked(&server, BUCKET, "chunked", &data, 64 * 1024, ChunkTampering::None)
        .await
        .expect("the server answers");
    assert_eq!(response.status, 200, "{}", response.text());
    assert_eq!(response.header("etag"), Some(etag_of(&data).as_str()));
    assert!(get_bytes(&client, BUCKET, "chunked").await == data);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_aws_chunked_upload_with_a_tampered_chunk_is_refused_and_stores_nothing() {
    let (server, client) = TestServer::start_with_bucket(BUCKET).await;
    let original = payload(17, 1000);
    put_bytes(&client, BUCKET, "existing", original.clone()).await;

    for key in ["fresh", "existing"] {
        let data = payload(18, 300 * 1024);
        let response =
            put_signed_aws_chunked(&server, BUCKET, key, &data, 64 * 1024, ChunkTampering::FlipByteInSecondChunk)
                .await
                .expect("the server answers");
        assert_refused(&response, 403, "SignatureDoesNotMatch");
    }
    let fresh = client.get_object().bucket(BUCKET).key("fresh").send().await;
    assert_s3_error(fresh, 404, "NoSuchKey");
    assert!(get_bytes(&client, BUCKET, "existing").await == original, "the refused upload did not overwrite");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signature_version_2_and_browser_form_posts_are_refused_and_store_nothing() {
    let (server, client) = TestServer::start_with_bucket(BUCKET).await;
    put_bytes(&client, BUCKET, "k", payload(13, 1000)).await;
    let endpoint = server.endpoint();
    let v2 = format!("AWS {ACCESS_KEY}:bWFkZS11cC1zaWduYXR1cmU=");
    let date = "Fri, 27 Nov 2026 12:00:00 GMT";

    // Signature Version 2, in the header and in a query string: refused before
    // anything is read, whatever the signature.
    let get = fetch("GET", &format!("{endpoint}/{BUCKET}/k"), &[("authorization", &v2), ("date", date)], b"").await;
    assert_refused(&get, 400, "InvalidRequest");
    let put =
        fetch("PUT", &format!("{endpoint}/{BUCKET}/v2"), &[("authorization", &v2), ("date", date)], &payload(14, 1000))
            .await;
    assert_refused(&put, 400, "InvalidRequest");
    let query = format!("AWSAccessKeyId={ACCESS_KEY}&Expires=4102444800&Signature=bWFkZS11cA%3D%3D");
    let presigned = fetch("GET", &format!("{endpoint}/{BUCKET}/k?{query}"), &[], b"").await;
    assert_refused(&presigned, 400, "InvalidRequest");

    // A browser form upload (POST Object) is not served: the form is not read.
    let boundary = "bulwarkboundary";
    let form = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"key\"\r\n\r\nform\r\n\
         --{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"f\"\r\n\r\nform body\r\n\
         --{boundary}--\r\n"
    );
    let content_type = format!("multipart/form-data; boundary={boundary}");
    let post =
        fetch("POST", &format!("{endpoint}/{BUCKET}"), &[("content-type", &content_type)], form.as_bytes()).await;
    assert_refused(&post, 501, "NotImplemented");

    for key in ["v2", "form"] {
        let absent = client.get_object().bucket(BUCKET).key(key).send().await;
        assert_s3_error(absent, 404, "NoSuchKey");
    }
}

/// With `BULWARK_METRICS_TOKEN` set, `GET /metrics` needs `Authorization:
/// Bearer <token>` (what Prometheus sends); without the token, or with another,
/// it is 401 and shows nothing. S3 requests are signed as before, and a signed
/// `GET /metrics` is still S3 (a bucket named `metrics`).
#[tokio::test]
async fn metrics_need_the_bearer_token_when_one_is_set() {
    const TOKEN: &str = "metrics-token-0123456789abcdef";
    let server = TestServer::start_with_env(&[("BULWARK_METRICS_TOKEN", TOKEN)]).await;
    let url = format!("{}/metrics", server.endpoint());
    let shorter = format!("Bearer {}", &TOKEN[..TOKEN.len() - 1]);
    let headers_refused = [
        vec![],
        vec![("Authorization", "Bearer not-the-token")],
        vec![("Authorization", "Bearer")],
        vec![("Authorization", shorter.as_str())],
    ];
    for headers in headers_refused {
        let refused = fetch("GET", &url, &headers, b"").await;
        assert_eq!(refused.status, 401, "{headers:?}: {}", refused.text());
        assert_eq!(refused.header("www-authenticate"), Some("Bearer realm=\"metrics\""));
        assert!(!refused.text().contains("bulwark_"), "no figures without the token: {}", refused.text());
        assert!(!refused.text().contains(TOKEN), "the token is never echoed");
    }
    for scheme in ["Bearer", "bearer"] {
        let bearer = format!("{scheme} {TOKEN}");
        let served = fetch("GET", &url, &[("Authorization", &bearer)], b"").await;
        assert_eq!(served.status, 200, "{}", served.text());
        assert!(served.text().contains("bulwark_drive_online{"), "{}", served.text());
    }
    // Signed S3 requests are untouched, including one for a bucket named `metrics`.
    let client = server.client();
    client.create_bucket().bucket("metrics").send().await.expect("create bucket metrics");
    put_bytes(&client, "metrics", "k", b"v".to_vec()).await;
    let listed = client.list_objects_v2().bucket("metrics").send().await.expect("list bucket metrics");
    assert_eq!(listed.contents().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signature_that_does_not_cover_the_host_is_refused() {
    // The host names the bucket of a virtual-hosted request: unsigned, it could
    // be changed to send the request on to another bucket.
    let (server, client) = TestServer::start_with_bucket(BUCKET).await;
    put_bytes(&client, BUCKET, "k", payload(7, 100)).await;
    let presigned = client
        .get_object()
        .bucket(BUCKET)
        .key("k")
        .presigned(presigning(Duration::from_secs(600)))
        .await
        .expect("presign GetObject");
    let url = presigned.uri().to_owned();
    assert_eq!(fetch("GET", &url, &[], b"").await.status, 200, "the URL as signed works");
    assert!(url.contains("X-Amz-SignedHeaders=host"), "{url}");
    let without_host = url.replacen("X-Amz-SignedHeaders=host", "X-Amz-SignedHeaders=x-amz-date", 1);
    assert_refused(&fetch("GET", &without_host, &[], b"").await, 400, "AuthorizationQueryParametersError");

    let signature = "0".repeat(64);
    let authorization = format!(
        "AWS4-HMAC-SHA256 Credential={ACCESS_KEY}/20261128/us-east-1/s3/aws4_request, \
         SignedHeaders=x-amz-content-sha256;x-amz-date, Signature={signature}"
    );
    let headers = [
        ("authorization", authorization.as_str()),
        ("x-amz-date", "20261128T000000Z"),
        ("x-amz-content-sha256", "UNSIGNED-PAYLOAD"),
    ];
    let response = fetch("GET", &format!("{}/{BUCKET}/k", server.endpoint()), &headers, b"").await;
    assert_refused(&response, 400, "AuthorizationHeaderMalformed");
}
