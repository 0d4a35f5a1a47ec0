//! An operator creates users, keys, groups and policies with `bulwark admin`,
//! and every S3 request is then decided by those policies and the bucket's
//! policy, through the real server and the AWS SDK: a matrix of principals ×
//! operations, explicit deny, policy variables, anonymous access through a
//! bucket policy and PublicAccessBlock, the two protection policies from the
//! S3 documentation, presigned URLs that die with their key, per-key
//! DeleteObjects, copy sources, identity state surviving restarts and lost
//! drives, and a log of every decision without secrets.

use std::time::Duration;

use aws_sdk_s3::Client;
use aws_sdk_s3::presigning::PresigningConfig;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{Delete, ObjectIdentifier, PublicAccessBlockConfiguration};
use bulwark_e2e::{TestServer, create_bucket, error_code, get_bytes, http_status, put_bytes, raw_http, wipe_drive};

const BUCKET: &str = "shared";

async fn put_policy(server: &TestServer, name: &str, document: serde_json::Value) {
    server.put_policy(name, &document).await;
}

fn allow(actions: &[&str], resources: &[&str]) -> serde_json::Value {
    serde_json::json!({
        "Version": "2012-10-17",
        "Statement": [{ "Effect": "Allow", "Action": actions, "Resource": resources }]
    })
}

/// What one operation did: allowed (any answer but AccessDenied) or denied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Allowed,
    Denied,
}
use Outcome::{Allowed, Denied};

fn outcome<T, E: aws_sdk_s3::error::ProvideErrorMetadata + std::fmt::Debug>(
    result: Result<T, aws_sdk_s3::error::SdkError<E, aws_sdk_s3::config::http::HttpResponse>>,
) -> Outcome {
    match result {
        Ok(_) => Allowed,
        Err(e) => match (http_status(&e), error_code(&e).as_deref()) {
            // A HEAD response has no body, hence no code.
            (Some(403), Some("AccessDenied" | "InvalidAccessKeyId") | None) => Denied,
            (status, code) => panic!("unexpected failure {status:?} {code:?}: {e:?}"),
        },
    }
}

/// The operations of the matrix, run as `client`.
async fn run_operations(client: &Client, tag: &str) -> Vec<(&'static str, Outcome)> {
    let key = format!("written-by-{tag}");
    vec![
        ("ListBuckets", outcome(client.list_buckets().send().await)),
        ("ListObjectsV2", outcome(client.list_objects_v2().bucket(BUCKET).send().await)),
        ("GetObject", outcome(client.get_object().bucket(BUCKET).key("readme.txt").send().await)),
        ("HeadObject", outcome(client.head_object().bucket(BUCKET).key("readme.txt").send().await)),
        (
            "PutObject",
            outcome(client.put_object().bucket(BUCKET).key(&key).body(ByteStream::from_static(b"x")).send().await),
        ),
        ("DeleteObject", outcome(client.delete_object().bucket(BUCKET).key("scratch.txt").send().await)),
        ("CreateBucket", outcome(client.create_bucket().bucket(format!("new-{tag}")).send().await)),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_matrix_of_principals_and_operations_is_decided_by_policy() {
    let (server, root) = TestServer::start_with_bucket(BUCKET).await;
    put_bytes(&root, BUCKET, "readme.txt", b"hello".to_vec()).await;

    // reader: a user with a read-only identity policy on the bucket.
    let reader = server.create_user("reader").await;
    put_policy(
        &server,
        "shared-read",
        allow(&["s3:ListBucket", "s3:GetObject"], &["arn:aws:s3:::shared", "arn:aws:s3:::shared/*"]),
    )
    .await;
    server.attach_policy("shared-read", "--user", "reader").await;
    // nobody: a user without any policy.
    let nobody = server.create_user("nobody").await;
    // writer: gets everything from the group "writers".
    let writer = server.create_user("writer").await;
    server.admin_json(&["group", "create", "writers"]).await;
    server.admin_json(&["group", "add", "writers", "writer"]).await;
    put_policy(&server, "shared-write", allow(&["s3:*"], &["arn:aws:s3:::shared", "arn:aws:s3:::shared/*"])).await;
    server.attach_policy("shared-write", "--group", "writers").await;
    // revoked: had full access, then its key was disabled.
    let revoked = server.create_user("revoked").await;
    put_policy(&server, "everything", allow(&["*"], &["*"])).await;
    server.attach_policy("everything", "--user", "revoked").await;
    server.admin_json(&["key", "disable", &revoked.access_key]).await;

    let cases: Vec<(&str, Client, [Outcome; 7])> = vec![
        ("root", root.clone(), [Allowed, Allowed, Allowed, Allowed, Allowed, Allowed, Allowed]),
        ("reader", server.client_as(&reader), [Denied, Allowed, Allowed, Allowed, Denied, Denied, Denied]),
        ("nobody", server.client_as(&nobody), [Denied; 7]),
        ("writer", server.client_as(&writer), [Denied, Allowed, Allowed, Allowed, Allowed, Allowed, Denied]),
        ("revoked", server.client_as(&revoked), [Denied; 7]),
    ];
    for (name, client, expected) in cases {
        let got = run_operations(&client, name).await;
        for ((operation, outcome), want) in got.iter().zip(expected) {
            assert_eq!(*outcome, want, "{name} {operation}");
        }
    }

    // anonymous: unsigned requests, no bucket policy: nothing.
    for (method, path) in [("GET", "/"), ("GET", "/shared"), ("GET", "/shared/readme.txt"), ("PUT", "/shared/anon")] {
        let response = raw_http::send(method, &format!("{}{path}", server.endpoint()), &[], b"").await;
        assert_eq!(response.status, 403, "anonymous {method} {path}");
    }
    // Denied writes changed nothing.
    let listed = root.list_objects_v2().bucket(BUCKET).send().await.expect("list");
    let keys: Vec<&str> = listed.contents().iter().filter_map(|o| o.key()).collect();
    assert_eq!(keys, vec!["readme.txt", "written-by-root", "written-by-writer"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_explicit_deny_beats_any_allow() {
    let (server, root) = TestServer::start_with_bucket(BUCKET).await;
    put_bytes(&root, BUCKET, "keep.txt", b"precious".to_vec()).await;
    let user = server.create_user("careful").await;
    put_policy(
        &server,
        "all-but-delete",
        serde_json::json!({
            "Version": "2012-10-17",
            "Statement": [
                { "Sid": "Everything", "Effect": "Allow", "Action": "s3:*", "Resource": "*" },
                { "Sid": "NoDeletes", "Effect": "Deny", "Action": "s3:Delete*", "Resource": "arn:aws:s3:::shared/*" }
            ]
        }),
    )
    .await;
    server.attach_policy("all-but-delete", "--user", "careful").await;
    let client = server.client_as(&user);
    assert_eq!(get_bytes(&client, BUCKET, "keep.txt").await, b"precious");
    assert_eq!(outcome(client.delete_object().bucket(BUCKET).key("keep.txt").send().await), Denied);

    // A bucket policy Deny overrides the identity policy's Allow too.
    let policy = serde_json::json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Sid": "NoReadsForCareful", "Effect": "Deny",
            "Principal": { "AWS": "arn:aws:iam::000000000000:user/careful" },
            "Action": "s3:GetObject", "Resource": "arn:aws:s3:::shared/*"
        }]
    });
    root.put_bucket_policy().bucket(BUCKET).policy(policy.to_string()).send().await.expect("put bucket policy");
    assert_eq!(outcome(client.get_object().bucket(BUCKET).key("keep.txt").send().await), Denied);
    assert_eq!(get_bytes(&root, BUCKET, "keep.txt").await, b"precious");
    assert!(
        server.log().contains("explicit deny by bucket-policy:shared NoReadsForCareful"),
        "the log names the deciding statement"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policy_variables_give_every_user_a_home_prefix() {
    let (server, root) = TestServer::start_with_bucket(BUCKET).await;
    put_bytes(&root, BUCKET, "alice/notes.txt", b"a".to_vec()).await;
    put_bytes(&root, BUCKET, "bob/notes.txt", b"b".to_vec()).await;
    put_policy(
        &server,
        "home",
        serde_json::json!({
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow", "Action": "s3:ListBucket", "Resource": "arn:aws:s3:::shared",
                    "Condition": { "StringLike": { "s3:prefix": ["${aws:username}/*"] } }
                },
                { "Effect": "Allow", "Action": ["s3:GetObject", "s3:PutObject"], "Resource": "arn:aws:s3:::shared/${aws:username}/*" }
            ]
        }),
    )
    .await;
    server.admin_json(&["group", "create", "staff"]).await;
    server.attach_policy("home", "--group", "staff").await;
    let alice = server.create_user("alice").await;
    server.admin_json(&["group", "add", "staff", "alice"]).await;
    let client = server.client_as(&alice);

    assert_eq!(get_bytes(&client, BUCKET, "alice/notes.txt").await, b"a");
    assert_eq!(outcome(client.get_object().bucket(BUCKET).key("bob/notes.txt").send().await), Denied);
    put_bytes(&client, BUCKET, "alice/new.txt", b"n".to_vec()).await;
    assert_eq!(
        outcome(client.put_object().bucket(BUCKET).key("bob/new.txt").body(ByteStream::from_static(b"n")).send().await),
        Denied
    );
    let listed = client.list_objects_v2().bucket(BUCKET).prefix("alice/").send().await.expect("list own prefix");
    assert_eq!(listed.contents().len(), 2);
    assert_eq!(outcome(client.list_objects_v2().bucket(BUCKET).prefix("bob/").send().await), Denied);
    assert_eq!(outcome(client.list_objects_v2().bucket(BUCKET).send().await), Denied);

    // Leaving the group takes the permissions away.
    server.admin_json(&["group", "remove", "staff", "alice"]).await;
    assert_eq!(outcome(client.get_object().bucket(BUCKET).key("alice/notes.txt").send().await), Denied);
}

fn public_read_policy() -> String {
    serde_json::json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Sid": "PublicRead", "Effect": "Allow", "Principal": "*",
            "Action": "s3:GetObject", "Resource": "arn:aws:s3:::shared/site/*"
        }]
    })
    .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anonymous_access_only_where_a_bucket_policy_grants_it_and_public_access_block_can_forbid_it() {
    let (server, root) = TestServer::start_with_bucket(BUCKET).await;
    put_bytes(&root, BUCKET, "site/index.html", b"<h1>hi</h1>".to_vec()).await;
    put_bytes(&root, BUCKET, "private/secret.txt", b"no".to_vec()).await;
    let url = |key: &str| format!("{}/{BUCKET}/{key}", server.endpoint());
    assert_eq!(raw_http::send("GET", &url("site/index.html"), &[], b"").await.status, 403);

    let status = root.get_bucket_policy_status().bucket(BUCKET).send().await;
    assert_eq!(error_code(&status.expect_err("no policy yet")).as_deref(), Some("NoSuchBucketPolicy"));
    root.put_bucket_policy().bucket(BUCKET).policy(public_read_policy()).send().await.expect("put policy");
    let stored = root.get_bucket_policy().bucket(BUCKET).send().await.expect("get policy");
    assert_eq!(stored.policy(), Some(public_read_policy().as_str()));
    let status = root.get_bucket_policy_status().bucket(BUCKET).send().await.expect("policy status");
    assert_eq!(status.policy_status().and_then(|s| s.is_public()), Some(true));

    let page = raw_http::send("GET", &url("site/index.html"), &[], b"").await;
    assert_eq!((page.status, page.body.as_slice()), (200, b"<h1>hi</h1>".as_slice()));
    assert_eq!(raw_http::send("GET", &url("private/secret.txt"), &[], b"").await.status, 403);
    assert_eq!(raw_http::send("PUT", &url("site/defaced.html"), &[], b"x").await.status, 403);
    assert_eq!(raw_http::send("DELETE", &url("site/index.html"), &[], b"").await.status, 403);

    // RestrictPublicBuckets: the public policy no longer lets anyone in.
    let block = |restrict: bool, block_policy: bool| {
        PublicAccessBlockConfiguration::builder()
            .block_public_acls(true)
            .ignore_public_acls(true)
            .block_public_policy(block_policy)
            .restrict_public_buckets(restrict)
            .build()
    };
    root.put_public_access_block()
        .bucket(BUCKET)
        .public_access_block_configuration(block(true, false))
        .send()
        .await
        .expect("put public access block");
    let got = root.get_public_access_block().bucket(BUCKET).send().await.expect("get public access block");
    assert_eq!(got.public_access_block_configuration().and_then(|c| c.restrict_public_buckets()), Some(true));
    assert_eq!(raw_http::send("GET", &url("site/index.html"), &[], b"").await.status, 403);

    // BlockPublicPolicy: a public policy cannot be stored.
    root.put_public_access_block()
        .bucket(BUCKET)
        .public_access_block_configuration(block(true, true))
        .send()
        .await
        .expect("put public access block");
    root.delete_bucket_policy().bucket(BUCKET).send().await.expect("delete policy");
    let refused = root.put_bucket_policy().bucket(BUCKET).policy(public_read_policy()).send().await;
    assert_eq!(http_status(&refused.expect_err("public policy blocked")), Some(403));

    // Without the block, the public policy works again.
    root.delete_public_access_block().bucket(BUCKET).send().await.expect("delete public access block");
    let missing = root.get_public_access_block().bucket(BUCKET).send().await.expect_err("no block now");
    assert_eq!(error_code(&missing).as_deref(), Some("NoSuchPublicAccessBlockConfiguration"));
    root.put_bucket_policy().bucket(BUCKET).policy(public_read_policy()).send().await.expect("put policy again");
    assert_eq!(raw_http::send("GET", &url("site/index.html"), &[], b"").await.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_policies_are_refused_with_a_useful_message() {
    let (server, root) = TestServer::start_with_bucket(BUCKET).await;
    let cases = [
        ("not json", "{"),
        (
            "no principal",
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:GetObject","Resource":"arn:aws:s3:::shared/*"}]}"#,
        ),
        (
            "bad action",
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":"*","Action":"s3:Frobnicate","Resource":"arn:aws:s3:::shared/*"}]}"#,
        ),
        (
            "other bucket",
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::elsewhere/*"}]}"#,
        ),
        (
            "bad operator",
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::shared/*","Condition":{"StringEqualz":{"aws:username":"x"}}}]}"#,
        ),
    ];
    for (what, policy) in cases {
        let error = root.put_bucket_policy().bucket(BUCKET).policy(policy).send().await.expect_err(what);
        assert_eq!(
            (http_status(&error), error_code(&error).as_deref()),
            (Some(400), Some("MalformedPolicy")),
            "{what}"
        );
        let message = aws_sdk_s3::error::ProvideErrorMetadata::message(&error).unwrap_or_default().to_owned();
        assert!(!message.is_empty(), "{what}: the error says what is wrong");
    }
    let missing = root.get_bucket_policy().bucket(BUCKET).send().await.expect_err("nothing was stored");
    assert_eq!(error_code(&missing).as_deref(), Some("NoSuchBucketPolicy"));

    // The admin API refuses a malformed identity policy the same way.
    let path = server.scratch_dir().join("bad.json");
    std::fs::write(&path, r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:GetObject"}]}"#)
        .expect("write");
    let output = server.admin(&["policy", "put", "bad", path.to_str().expect("utf-8")]).await;
    assert!(!output.success);
    assert!(output.stderr.contains("MalformedPolicy"), "stderr: {}", output.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_owner_can_always_replace_a_bucket_policy_that_locks_everyone_out() {
    let (_server, root) = TestServer::start_with_bucket(BUCKET).await;
    put_bytes(&root, BUCKET, "a.txt", b"a".to_vec()).await;
    let lockout = serde_json::json!({
        "Version": "2012-10-17",
        "Statement": [{ "Effect": "Deny", "Principal": "*", "Action": "s3:*", "Resource": ["arn:aws:s3:::shared", "arn:aws:s3:::shared/*"] }]
    });
    root.put_bucket_policy().bucket(BUCKET).policy(lockout.to_string()).send().await.expect("put lockout");
    assert_eq!(outcome(root.get_object().bucket(BUCKET).key("a.txt").send().await), Denied);
    assert!(root.get_bucket_policy().bucket(BUCKET).send().await.is_ok());
    root.delete_bucket_policy().bucket(BUCKET).send().await.expect("the owner removes the lockout");
    assert_eq!(get_bytes(&root, BUCKET, "a.txt").await, b"a");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deny_put_without_server_side_encryption_as_the_s3_documentation_writes_it() {
    let (_server, root) = TestServer::start_with_bucket(BUCKET).await;
    // From "Protecting data with server-side encryption" (S3 User Guide).
    let policy = serde_json::json!({
        "Version": "2012-10-17",
        "Id": "PutObjectPolicy",
        "Statement": [
            {
                "Sid": "DenyIncorrectEncryptionHeader", "Effect": "Deny", "Principal": "*",
                "Action": "s3:PutObject", "Resource": "arn:aws:s3:::shared/*",
                "Condition": { "StringNotEquals": { "s3:x-amz-server-side-encryption": "AES256" } }
            },
            {
                "Sid": "DenyUnEncryptedObjectUploads", "Effect": "Deny", "Principal": "*",
                "Action": "s3:PutObject", "Resource": "arn:aws:s3:::shared/*",
                "Condition": { "Null": { "s3:x-amz-server-side-encryption": "true" } }
            }
        ]
    });
    root.put_bucket_policy().bucket(BUCKET).policy(policy.to_string()).send().await.expect("put policy");
    let plain = root.put_object().bucket(BUCKET).key("plain").body(ByteStream::from_static(b"x")).send().await;
    assert_eq!(outcome(plain), Denied);
    let wrong = root
        .put_object()
        .bucket(BUCKET)
        .key("kms")
        .server_side_encryption(aws_sdk_s3::types::ServerSideEncryption::AwsKms)
        .body(ByteStream::from_static(b"x"))
        .send()
        .await;
    assert_eq!(outcome(wrong), Denied);
    // With the header the policy lets the request through, and it is stored encrypted.
    let encrypted = root
        .put_object()
        .bucket(BUCKET)
        .key("encrypted")
        .server_side_encryption(aws_sdk_s3::types::ServerSideEncryption::Aes256)
        .body(ByteStream::from_static(b"x"))
        .send()
        .await;
    let encrypted = encrypted.expect("PUT with x-amz-server-side-encryption: AES256 is allowed");
    assert_eq!(encrypted.server_side_encryption(), Some(&aws_sdk_s3::types::ServerSideEncryption::Aes256));
    let listed = root.list_objects_v2().bucket(BUCKET).send().await.expect("list");
    assert!(listed.contents().iter().all(|o| o.key() != Some("plain") && o.key() != Some("kms")));
}

fn deny_insecure_transport() -> String {
    serde_json::json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Sid": "AllowSSLRequestsOnly", "Action": "s3:*", "Effect": "Deny", "Principal": "*",
            "Resource": ["arn:aws:s3:::shared", "arn:aws:s3:::shared/*"],
            "Condition": { "Bool": { "aws:SecureTransport": "false" } }
        }]
    })
    .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deny_insecure_transport_refuses_plain_http_and_admits_tls() {
    let (_plain, root) = TestServer::start_with_bucket(BUCKET).await;
    put_bytes(&root, BUCKET, "a.txt", b"a".to_vec()).await;
    root.put_bucket_policy().bucket(BUCKET).policy(deny_insecure_transport()).send().await.expect("put policy");
    assert_eq!(outcome(root.get_object().bucket(BUCKET).key("a.txt").send().await), Denied);
    assert_eq!(outcome(root.list_objects_v2().bucket(BUCKET).send().await), Denied);

    let tls = TestServer::start_tls().await;
    let client = tls.client();
    create_bucket(&client, BUCKET).await;
    put_bytes(&client, BUCKET, "a.txt", b"a".to_vec()).await;
    client.put_bucket_policy().bucket(BUCKET).policy(deny_insecure_transport()).send().await.expect("put policy");
    assert_eq!(get_bytes(&client, BUCKET, "a.txt").await, b"a");
    put_bytes(&client, BUCKET, "b.txt", b"b".to_vec()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presigned_urls_carry_the_signers_permissions_and_die_with_the_key() {
    let (server, root) = TestServer::start_with_bucket(BUCKET).await;
    put_bytes(&root, BUCKET, "public/a.txt", b"a".to_vec()).await;
    put_bytes(&root, BUCKET, "private/b.txt", b"b".to_vec()).await;
    let user = server.create_user("sharer").await;
    put_policy(&server, "public-prefix", allow(&["s3:GetObject"], &["arn:aws:s3:::shared/public/*"])).await;
    server.attach_policy("public-prefix", "--user", "sharer").await;
    let client = server.client_as(&user);
    let presign = |key: &'static str| {
        let client = client.clone();
        async move {
            let config = PresigningConfig::expires_in(Duration::from_secs(600)).expect("presigning config");
            client.get_object().bucket(BUCKET).key(key).presigned(config).await.expect("presign").uri().to_owned()
        }
    };
    let allowed = presign("public/a.txt").await;
    let denied = presign("private/b.txt").await;
    let get = |url: String| async move { raw_http::send("GET", &url, &[], b"").await };
    let ok = get(allowed.clone()).await;
    assert_eq!((ok.status, ok.body.as_slice()), (200, b"a".as_slice()));
    assert_eq!(get(denied).await.status, 403);

    server.admin_json(&["key", "disable", &user.access_key]).await;
    let revoked = get(allowed.clone()).await;
    assert_eq!(revoked.status, 403);
    assert!(String::from_utf8_lossy(&revoked.body).contains("InvalidAccessKeyId"));
    server.admin_json(&["key", "enable", &user.access_key]).await;
    assert_eq!(get(allowed.clone()).await.status, 200);
    server.admin_json(&["user", "disable", "sharer"]).await;
    assert_eq!(get(allowed.clone()).await.status, 403);
    server.admin_json(&["user", "enable", "sharer"]).await;
    server.admin_json(&["key", "delete", &user.access_key]).await;
    assert_eq!(get(allowed).await.status, 403);

    // Expiry is on time.
    let config = PresigningConfig::expires_in(Duration::from_secs(1)).expect("presigning config");
    let root_url = root.get_object().bucket(BUCKET).key("public/a.txt").presigned(config).await.expect("presign");
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let expired = get(root_url.uri().to_owned()).await;
    assert_eq!(expired.status, 403);
    assert!(String::from_utf8_lossy(&expired.body).contains("expired"), "{}", String::from_utf8_lossy(&expired.body));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_objects_and_copies_are_authorised_per_object() {
    let (server, root) = TestServer::start_with_bucket(BUCKET).await;
    for key in ["tmp/1", "keep/1", "src/x"] {
        put_bytes(&root, BUCKET, key, key.as_bytes().to_vec()).await;
    }
    let user = server.create_user("cleaner").await;
    put_policy(
        &server,
        "cleaner",
        allow(&["s3:DeleteObject", "s3:PutObject"], &["arn:aws:s3:::shared/tmp/*", "arn:aws:s3:::shared/dst/*"]),
    )
    .await;
    server.attach_policy("cleaner", "--user", "cleaner").await;
    let client = server.client_as(&user);
    let objects = ["tmp/1", "keep/1"].map(|k| ObjectIdentifier::builder().key(k).build().expect("identifier"));
    let result = client
        .delete_objects()
        .bucket(BUCKET)
        .delete(Delete::builder().set_objects(Some(objects.to_vec())).build().expect("delete"))
        .send()
        .await
        .expect("delete objects");
    let deleted: Vec<&str> = result.deleted().iter().filter_map(|d| d.key()).collect();
    let errors: Vec<(&str, &str)> =
        result.errors().iter().map(|e| (e.key().unwrap_or(""), e.code().unwrap_or(""))).collect();
    assert_eq!(deleted, vec!["tmp/1"]);
    assert_eq!(errors, vec![("keep/1", "AccessDenied")]);
    assert_eq!(get_bytes(&root, BUCKET, "keep/1").await, b"keep/1");

    // A copy needs read access to its source as well as write access to its destination.
    let copy = client.copy_object().bucket(BUCKET).key("dst/x").copy_source(format!("{BUCKET}/src/x")).send().await;
    assert_eq!(outcome(copy), Denied);
    put_policy(&server, "read-src", allow(&["s3:GetObject"], &["arn:aws:s3:::shared/src/*"])).await;
    server.attach_policy("read-src", "--user", "cleaner").await;
    client
        .copy_object()
        .bucket(BUCKET)
        .key("dst/x")
        .copy_source(format!("{BUCKET}/src/x"))
        .send()
        .await
        .expect("copy with both permissions");
    assert_eq!(get_bytes(&root, BUCKET, "dst/x").await, b"src/x");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_cli_manages_identities_and_shows_secrets_only_once() {
    let (server, _root) = TestServer::start_with_bucket(BUCKET).await;
    let user = server.create_user("ops").await;
    assert!(user.access_key.starts_with("BK") && user.access_key.len() == 20);
    assert_eq!(user.secret_key.len(), 40);
    let second = server.admin_json(&["key", "create", "ops"]).await;

    let users = server.admin_json(&["user", "list"]).await;
    let ops = users.as_array().expect("list").iter().find(|u| u["name"] == "ops").expect("ops listed");
    assert_eq!(ops["arn"], "arn:aws:iam::000000000000:user/ops");
    assert_eq!(ops["access_keys"].as_array().map(Vec::len), Some(2));
    let keys = server.admin_json(&["key", "list", "--user", "ops"]).await;
    let listing = keys.to_string();
    assert!(listing.contains(&user.access_key) && listing.contains(second["access_key"].as_str().expect("key")));
    assert!(!listing.contains(&user.secret_key), "key listings never contain secrets");

    // Human output too.
    let human = server.admin(&["user", "list"]).await;
    human.assert_success();
    assert!(human.stdout.contains("ops") && human.stdout.contains(&user.access_key));

    put_policy(&server, "p", allow(&["s3:GetObject"], &["*"])).await;
    server.attach_policy("p", "--user", "ops").await;
    let conflict = server.admin(&["policy", "delete", "p"]).await;
    assert!(!conflict.success && conflict.stderr.contains("DeleteConflict"), "{}", conflict.stderr);
    let got = server.admin_json(&["policy", "get", "p"]).await;
    assert_eq!(got["attached_to"], serde_json::json!(["user:ops"]));
    server.admin_json(&["policy", "detach", "p", "--user", "ops"]).await;
    server.admin_json(&["policy", "delete", "p"]).await;
    let duplicate = server.admin(&["user", "create", "ops"]).await;
    assert!(!duplicate.success && duplicate.stderr.contains("EntityAlreadyExists"), "{}", duplicate.stderr);
    let missing = server.admin(&["user", "info", "ghost"]).await;
    assert!(!missing.success && missing.stderr.contains("NoSuchEntity"), "{}", missing.stderr);

    // A non-root identity cannot use the admin API.
    let client = server.client_as(&user);
    assert_eq!(outcome(client.list_buckets().send().await), Denied);
    server.admin_json(&["user", "delete", "ops"]).await;
    let gone = server.admin_json(&["key", "list"]).await;
    assert_eq!(gone, serde_json::json!([]), "deleting a user deletes its keys");

    // Secrets never reach the log.
    assert!(!server.log().contains(&user.secret_key));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identities_survive_restarts_and_the_loss_of_any_facility() {
    let (mut server, root) = TestServer::start_with_bucket(BUCKET).await;
    put_bytes(&root, BUCKET, "a.txt", b"a".to_vec()).await;
    let user = server.create_user("durable").await;
    put_policy(&server, "read", allow(&["s3:GetObject"], &["arn:aws:s3:::shared/*"])).await;
    server.attach_policy("read", "--user", "durable").await;

    for facility in [1, 3, 2] {
        server.crash();
        for drive in server.facility_drives(facility) {
            wipe_drive(&drive);
        }
        server.start_again().await;
        let client = server.client_as(&user);
        assert_eq!(get_bytes(&client, BUCKET, "a.txt").await, b"a", "after losing facility {facility}");
        assert_eq!(
            outcome(client.delete_object().bucket(BUCKET).key("a.txt").send().await),
            Denied,
            "policies survive too (facility {facility})"
        );
        // Heal the wiped facility before losing the next one.
        server.admin(&["heal", "--wait"]).await.assert_success();
    }

    // The secret is sealed: it is on no drive in the clear.
    let found = server.drive_files_containing(user.secret_key.as_bytes());
    assert!(found.is_empty(), "secret access key in the clear in {found:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_access_decision_is_logged_with_who_what_and_why() {
    let (server, root) = TestServer::start_with_bucket(BUCKET).await;
    put_bytes(&root, BUCKET, "a.txt", b"a".to_vec()).await;
    let user = server.create_user("logged").await;
    put_policy(
        &server,
        "reads",
        serde_json::json!({
            "Version": "2012-10-17",
            "Statement": [{ "Sid": "ReadShared", "Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::shared/*" }]
        }),
    )
    .await;
    server.attach_policy("reads", "--user", "logged").await;
    let client = server.client_as(&user);
    get_bytes(&client, BUCKET, "a.txt").await;
    assert_eq!(outcome(client.delete_object().bucket(BUCKET).key("a.txt").send().await), Denied);
    let log = server.log();
    let lines: Vec<&str> = log.lines().filter(|l| l.contains("bulwark::access") && l.contains("user:logged")).collect();
    assert!(
        lines.iter().any(|l| l.contains("s3:GetObject")
            && l.contains("arn:aws:s3:::shared/a.txt")
            && l.contains("allow by user:logged/policy:reads ReadShared")),
        "allow decision logged: {lines:#?}"
    );
    assert!(
        lines.iter().any(|l| l.contains("s3:DeleteObject") && l.contains("deny") && l.contains("implicit deny")),
        "deny decision logged: {lines:#?}"
    );
    assert!(!log.contains(&user.secret_key));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn object_tags_round_trip_and_existing_object_tag_conditions_gate_reads() {
    use aws_sdk_s3::types::{Tag, Tagging};
    let (server, root) = TestServer::start_with_bucket(BUCKET).await;
    for (key, class) in [("doc", "public"), ("secret", "secret")] {
        root.put_object()
            .bucket(BUCKET)
            .key(key)
            .tagging(format!("classification={class}&owner=ops%20team"))
            .body(ByteStream::from_static(b"body"))
            .send()
            .await
            .expect("put with tags");
    }
    let tags = root.get_object_tagging().bucket(BUCKET).key("doc").send().await.expect("get tagging");
    let mut pairs: Vec<(&str, &str)> = tags.tag_set().iter().map(|t| (t.key(), t.value())).collect();
    pairs.sort();
    assert_eq!(pairs, vec![("classification", "public"), ("owner", "ops team")]);
    let got = root.get_object().bucket(BUCKET).key("doc").send().await.expect("get");
    assert_eq!(got.tag_count(), Some(2));
    let bad = root
        .put_object()
        .bucket(BUCKET)
        .key("bad")
        .tagging("aws:reserved=1")
        .body(ByteStream::from_static(b"x"))
        .send()
        .await
        .expect_err("reserved tag prefix");
    assert_eq!((http_status(&bad), error_code(&bad).as_deref()), (Some(400), Some("InvalidTag")));

    let user = server.create_user("tagged").await;
    put_policy(
        &server,
        "public-only",
        serde_json::json!({
            "Version": "2012-10-17",
            "Statement": [{
                "Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::shared/*",
                "Condition": { "StringEquals": { "s3:ExistingObjectTag/classification": "public" } }
            }]
        }),
    )
    .await;
    server.attach_policy("public-only", "--user", "tagged").await;
    let client = server.client_as(&user);
    assert_eq!(get_bytes(&client, BUCKET, "doc").await, b"body");
    assert_eq!(outcome(client.get_object().bucket(BUCKET).key("secret").send().await), Denied);

    let public = Tagging::builder()
        .tag_set(Tag::builder().key("classification").value("public").build().expect("tag"))
        .build()
        .expect("tagging");
    root.put_object_tagging().bucket(BUCKET).key("secret").tagging(public).send().await.expect("retag");
    assert_eq!(get_bytes(&client, BUCKET, "secret").await, b"body");
    root.delete_object_tagging().bucket(BUCKET).key("secret").send().await.expect("delete tagging");
    assert_eq!(outcome(client.get_object().bucket(BUCKET).key("secret").send().await), Denied);
    let none = root.get_object_tagging().bucket(BUCKET).key("secret").send().await.expect("get tagging");
    assert!(none.tag_set().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_objects_judges_each_key_by_its_own_tags_and_version_as_delete_object_does() {
    let (server, root) = TestServer::start_with_bucket(BUCKET).await;
    let enabled = aws_sdk_s3::types::VersioningConfiguration::builder()
        .status(aws_sdk_s3::types::BucketVersioningStatus::Enabled)
        .build();
    root.put_bucket_versioning().bucket(BUCKET).versioning_configuration(enabled).send().await.expect("versioning");
    let held = root
        .put_object()
        .bucket(BUCKET)
        .key("held")
        .tagging("hold=true")
        .body(ByteStream::from_static(b"keep me"))
        .send()
        .await
        .expect("put held");
    let free = root.put_object().bucket(BUCKET).key("free").body(ByteStream::from_static(b"x")).send().await;
    let (held_version, free_version) =
        (held.version_id().expect("version").to_owned(), free.expect("put free").version_id().expect("v").to_owned());

    // A user may delete anything, except versions under a legal-hold tag.
    let user = server.create_user("cleaner").await;
    put_policy(
        &server,
        "delete-unless-held",
        serde_json::json!({
            "Version": "2012-10-17",
            "Statement": [
                { "Effect": "Allow", "Action": ["s3:DeleteObject", "s3:DeleteObjectVersion"], "Resource": "arn:aws:s3:::shared/*" },
                {
                    "Effect": "Deny", "Action": "s3:DeleteObjectVersion", "Resource": "arn:aws:s3:::shared/*",
                    "Condition": { "StringEquals": { "s3:ExistingObjectTag/hold": "true" } }
                }
            ]
        }),
    )
    .await;
    server.attach_policy("delete-unless-held", "--user", "cleaner").await;
    let client = server.client_as(&user);

    let single = client.delete_object().bucket(BUCKET).key("held").version_id(&held_version).send().await;
    assert_eq!(outcome(single), Denied, "DeleteObject refuses the held version");
    let batch = Delete::builder()
        .objects(ObjectIdentifier::builder().key("held").version_id(&held_version).build().expect("id"))
        .objects(ObjectIdentifier::builder().key("free").version_id(&free_version).build().expect("id"))
        .build()
        .expect("delete");
    let answer = client.delete_objects().bucket(BUCKET).delete(batch).send().await.expect("delete objects");
    let refused: Vec<_> = answer.errors().iter().map(|e| (e.key(), e.code())).collect();
    assert_eq!(refused, vec![(Some("held"), Some("AccessDenied"))], "the held version is refused in a batch too");
    let deleted: Vec<_> = answer.deleted().iter().filter_map(|d| d.key()).collect();
    assert_eq!(deleted, vec!["free"]);
    let kept = root.get_object().bucket(BUCKET).key("held").version_id(&held_version).send().await;
    assert!(kept.is_ok(), "the held version is still there");
}
