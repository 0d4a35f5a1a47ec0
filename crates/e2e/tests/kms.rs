//! The built-in KMS is an AWS KMS endpoint: a user of the AWS SDK for Rust
//! (`aws-sdk-kms`) creates symmetric keys, finds them by id, ARN, alias and alias
//! ARN, pages through them, names them with aliases, disables, rotates (every N
//! days or on demand) and schedules them for deletion, replaces their key policies
//! and tags them; makes data keys, encrypts, decrypts and re-encrypts under
//! encryption contexts; and gets random bytes. Every refusal is the exception AWS
//! gives, with AWS's message where AWS's message is known (REFERENCE.md §1).
//!
//! Identities are the server's own (`bulwark admin`): a user without any KMS
//! permission is denied, a user allowed to decrypt with one key can do exactly
//! that, a key policy can deny a user whom IAM allows everything, and requests
//! signed with a wrong secret, for the `s3` service or not at all are refused
//! without effect. With a scaled deletion window a scheduled key really
//! disappears. Every operation leaves a record in a hash-chained audit log that
//! `bulwark kms audit verify` checks and `bulwark kms audit show` lists, without
//! ever a plaintext data key, and editing or deleting a record is detected.

use std::collections::HashSet;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use aws_sdk_kms::Client;
use aws_sdk_kms::config::http::HttpResponse;
use aws_sdk_kms::config::retry::RetryConfig;
use aws_sdk_kms::config::timeout::TimeoutConfig;
use aws_sdk_kms::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_kms::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_kms::primitives::{Blob, DateTime};
use aws_sdk_kms::types::{
    DataKeySpec, EncryptionAlgorithmSpec, KeyManagerType, KeyMetadata, KeySpec, KeyState, KeyUsageType, OriginType,
    RotationType, Tag,
};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD_NO_PAD, URL_SAFE_NO_PAD};
use bulwark_e2e::iam::UserKey;
use bulwark_e2e::kms::{ACCOUNT_ID, HandSigning, alias_arn, key_arn, kms_audit, kms_error_type, send_kms_request};
use bulwark_e2e::{ACCESS_KEY, REGION, SECRET_KEY, TestServer};

const DAY_SECS: i64 = 24 * 60 * 60;
/// How far a server-reported date may be from the one the test computes.
const CLOCK_SLACK_SECS: i64 = 10 * 60;
const INCORRECT_KEY_MESSAGE: &str =
    "The key ID in the request does not identify a CMK that can perform this operation.";

// ---------------------------------------------------------------------------
// Clients, keys and errors

fn kms_client_as(server: &TestServer, access_key: &str, secret_key: &str) -> Client {
    let config = aws_sdk_kms::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .credentials_provider(Credentials::new(access_key, secret_key, None, None, "bulwark-e2e"))
        .region(Region::new(REGION))
        .endpoint_url(server.endpoint())
        // One attempt per request: every failure shows, and nothing is done twice.
        .retry_config(RetryConfig::disabled())
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(Duration::from_secs(5))
                .operation_timeout(Duration::from_secs(60))
                .build(),
        )
        .build();
    Client::from_conf(config)
}

/// A client signing as the root user, who may do everything.
fn root_kms(server: &TestServer) -> Client {
    kms_client_as(server, ACCESS_KEY, SECRET_KEY)
}

async fn create_key(kms: &Client, description: &str) -> KeyMetadata {
    let created = kms
        .create_key()
        .description(description)
        .send()
        .await
        .unwrap_or_else(|e| panic!("CreateKey {description}: {}", DisplayErrorContext(&e)));
    created.key_metadata.expect("CreateKey returns KeyMetadata")
}

/// Creates a key and returns its id (a UUID).
async fn create_key_id(kms: &Client, description: &str) -> String {
    create_key(kms, description).await.key_id().to_owned()
}

async fn describe(kms: &Client, key_id: &str) -> KeyMetadata {
    kms.describe_key()
        .key_id(key_id)
        .send()
        .await
        .unwrap_or_else(|e| panic!("DescribeKey {key_id}: {}", DisplayErrorContext(&e)))
        .key_metadata
        .expect("DescribeKey returns KeyMetadata")
}

/// Every key id ListKeys returns, following the markers.
async fn all_key_ids(kms: &Client) -> Vec<String> {
    let mut ids = Vec::new();
    let mut marker: Option<String> = None;
    loop {
        let page = kms
            .list_keys()
            .set_marker(marker.take())
            .send()
            .await
            .unwrap_or_else(|e| panic!("ListKeys: {}", DisplayErrorContext(&e)));
        ids.extend(page.keys().iter().map(|k| k.key_id().expect("ListKeys entry has a KeyId").to_owned()));
        match page.next_marker() {
            Some(next) if page.truncated() => marker = Some(next.to_owned()),
            _ => return ids,
        }
    }
}

async fn encrypt(kms: &Client, key_id: &str, plaintext: &[u8], context: &[(&str, &str)]) -> Vec<u8> {
    let mut request = kms.encrypt().key_id(key_id).plaintext(Blob::new(plaintext));
    for (name, value) in context {
        request = request.encryption_context(*name, *value);
    }
    let out = request.send().await.unwrap_or_else(|e| panic!("Encrypt with {key_id}: {}", DisplayErrorContext(&e)));
    out.ciphertext_blob().expect("Encrypt returns a CiphertextBlob").as_ref().to_vec()
}

/// Decrypts without naming a key (the ciphertext names it); returns the
/// plaintext and the key ARN the answer names.
async fn decrypt(kms: &Client, ciphertext: &[u8], context: &[(&str, &str)]) -> (Vec<u8>, String) {
    let out = decrypt_request(kms, ciphertext, context, None)
        .await
        .unwrap_or_else(|e| panic!("Decrypt: {}", DisplayErrorContext(&e)));
    (
        out.plaintext().expect("Decrypt returns a Plaintext").as_ref().to_vec(),
        out.key_id().expect("Decrypt returns a KeyId").to_owned(),
    )
}

async fn decrypt_request(
    kms: &Client,
    ciphertext: &[u8],
    context: &[(&str, &str)],
    key_id: Option<&str>,
) -> Result<
    aws_sdk_kms::operation::decrypt::DecryptOutput,
    SdkError<aws_sdk_kms::operation::decrypt::DecryptError, HttpResponse>,
> {
    let mut request = kms.decrypt().ciphertext_blob(Blob::new(ciphertext)).set_key_id(key_id.map(str::to_owned));
    for (name, value) in context {
        request = request.encryption_context(*name, *value);
    }
    request.send().await
}

/// Asserts that `result` is the KMS exception `code` (HTTP 400, as for every
/// client error of the KMS API) and returns its message.
#[track_caller]
fn expect_kms_error<T, E>(result: Result<T, SdkError<E, HttpResponse>>, code: &str) -> String
where
    T: std::fmt::Debug,
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    let error = match result {
        Ok(output) => panic!("expected {code}, got success: {output:?}"),
        Err(error) => error,
    };
    let status = error.raw_response().map(|r| r.status().as_u16());
    assert_eq!(
        (status, error.code()),
        (Some(400), Some(code)),
        "expected 400 {code}, got: {}",
        DisplayErrorContext(&error)
    );
    error.message().unwrap_or_default().to_owned()
}

fn tag(key: &str, value: &str) -> Tag {
    Tag::builder().tag_key(key).tag_value(value).build().expect("a tag has a key and a value")
}

fn now_secs() -> i64 {
    let secs = SystemTime::now().duration_since(UNIX_EPOCH).expect("the clock is after 1970").as_secs();
    i64::try_from(secs).expect("seconds since 1970 fit an i64")
}

/// Asserts that `date` is `expected_secs` give or take [`CLOCK_SLACK_SECS`].
#[track_caller]
fn assert_date_near(date: Option<&DateTime>, expected_secs: i64, what: &str) {
    let date = date.unwrap_or_else(|| panic!("{what}: no date"));
    assert!(
        (date.secs() - expected_secs).abs() <= CLOCK_SLACK_SECS,
        "{what} is {} s, expected about {expected_secs} s",
        date.secs()
    );
}

// ---------------------------------------------------------------------------
// Users and policies, through `bulwark admin`

/// Puts the IAM policy `document` as `name` and attaches it to user `user`.
async fn grant(server: &TestServer, user: &str, name: &str, document: serde_json::Value) {
    server.put_policy(name, &document).await;
    server.attach_policy(name, "--user", user).await;
}

fn user_client(server: &TestServer, user: &UserKey) -> Client {
    kms_client_as(server, &user.access_key, &user.secret_key)
}

fn user_arn(name: &str) -> String {
    format!("arn:aws:iam::{ACCOUNT_ID}:user/{name}")
}

fn root_principal() -> String {
    format!("arn:aws:iam::{ACCOUNT_ID}:root")
}

// ---------------------------------------------------------------------------
// Keys: create, describe, list

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_key_returns_the_metadata_of_an_enabled_symmetric_customer_key() {
    let server = TestServer::start().await;
    let kms = root_kms(&server);
    let before = now_secs();
    let created = kms
        .create_key()
        .description("payroll exports")
        .tags(tag("team", "finance"))
        .tags(tag("cost-center", "4711"))
        .send()
        .await
        .unwrap_or_else(|e| panic!("CreateKey: {}", DisplayErrorContext(&e)));
    let meta = created.key_metadata().expect("CreateKey returns KeyMetadata");

    let key_id = meta.key_id();
    assert_eq!(key_id.len(), 36, "a key id is a UUID: {key_id}");
    assert_eq!(key_id.matches('-').count(), 4, "a key id is a UUID: {key_id}");
    assert_eq!(meta.arn(), Some(key_arn(key_id).as_str()));
    assert_eq!(meta.aws_account_id(), Some(ACCOUNT_ID));
    assert!(meta.enabled(), "a new key is enabled");
    assert_eq!(meta.key_state(), Some(&KeyState::Enabled));
    assert_eq!(meta.key_usage(), Some(&KeyUsageType::EncryptDecrypt));
    assert_eq!(meta.key_spec(), Some(&KeySpec::SymmetricDefault));
    assert_eq!(meta.key_manager(), Some(&KeyManagerType::Customer));
    assert_eq!(meta.origin(), Some(&OriginType::AwsKms));
    assert_eq!(meta.description(), Some("payroll exports"));
    assert_eq!(meta.encryption_algorithms(), [EncryptionAlgorithmSpec::SymmetricDefault]);
    assert_eq!(meta.multi_region(), Some(false));
    assert_eq!(meta.deletion_date(), None, "a new key is not scheduled for deletion");
    assert_date_near(meta.creation_date(), before, "CreationDate");

    // Another key is another key.
    let other = create_key(&kms, "second").await;
    assert_ne!(other.key_id(), key_id);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn describe_key_finds_a_key_by_id_arn_alias_name_and_alias_arn() {
    let server = TestServer::start().await;
    let kms = root_kms(&server);
    let created = create_key(&kms, "found four ways").await;
    let key_id = created.key_id().to_owned();
    kms.create_alias()
        .alias_name("alias/four-ways")
        .target_key_id(&key_id)
        .send()
        .await
        .unwrap_or_else(|e| panic!("CreateAlias: {}", DisplayErrorContext(&e)));
    create_key(&kms, "a distractor").await;

    for reference in [key_id.clone(), key_arn(&key_id), "alias/four-ways".to_owned(), alias_arn("alias/four-ways")] {
        let found = describe(&kms, &reference).await;
        assert_eq!(found.key_id(), key_id, "DescribeKey {reference}");
        assert_eq!(found.arn(), Some(key_arn(&key_id).as_str()), "DescribeKey {reference}");
        assert_eq!(found.description(), Some("found four ways"), "DescribeKey {reference}");
        assert_eq!(found.key_state(), Some(&KeyState::Enabled), "DescribeKey {reference}");
        assert_eq!(found.creation_date(), created.creation_date(), "DescribeKey {reference}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_keys_pages_through_every_key_with_limit_and_marker() {
    let server = TestServer::start().await;
    let kms = root_kms(&server);
    let mut created = HashSet::new();
    for i in 0..5 {
        created.insert(create_key_id(&kms, &format!("paged {i}")).await);
    }
    let unpaged = kms.list_keys().send().await.unwrap_or_else(|e| panic!("ListKeys: {}", DisplayErrorContext(&e)));
    assert!(!unpaged.truncated(), "a default page holds a handful of keys");
    for entry in unpaged.keys() {
        let id = entry.key_id().expect("KeyId");
        assert_eq!(entry.key_arn(), Some(key_arn(id).as_str()), "ListKeys gives each key's ARN");
    }
    let unpaged: Vec<String> = unpaged.keys().iter().filter_map(|k| k.key_id()).map(str::to_owned).collect();
    let unpaged_set: HashSet<String> = unpaged.iter().cloned().collect();
    assert!(created.is_subset(&unpaged_set), "ListKeys lists every created key: {unpaged:?}");

    let mut paged = Vec::new();
    let mut marker: Option<String> = None;
    let mut pages = 0;
    loop {
        let page = kms
            .list_keys()
            .limit(2)
            .set_marker(marker.take())
            .send()
            .await
            .unwrap_or_else(|e| panic!("ListKeys page {pages}: {}", DisplayErrorContext(&e)));
        pages += 1;
        assert!(page.keys().len() <= 2, "Limit 2 gives at most two keys, got {:?}", page.keys());
        paged.extend(page.keys().iter().filter_map(|k| k.key_id()).map(str::to_owned));
        if !page.truncated() {
            assert_eq!(page.next_marker(), None, "the last page has no NextMarker");
            break;
        }
        assert_eq!(page.keys().len(), 2, "a truncated page is full");
        marker = Some(page.next_marker().expect("a truncated page has a NextMarker").to_owned());
        assert!(pages <= unpaged.len(), "the markers do not lead back");
    }
    assert!(pages >= 3, "five keys take at least three pages of two, took {pages}");
    let paged_set: HashSet<String> = paged.iter().cloned().collect();
    assert_eq!(paged.len(), paged_set.len(), "no key on two pages: {paged:?}");
    assert_eq!(paged_set, unpaged_set, "the pages hold exactly the keys of the unpaged listing");

    let bogus = kms.list_keys().limit(2).marker("not-a-marker-this-server-gave").send().await;
    expect_kms_error(bogus, "InvalidMarkerException");
}

// ---------------------------------------------------------------------------
// Aliases

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aliases_are_created_listed_resolved_and_deleted() {
    let server = TestServer::start().await;
    let kms = root_kms(&server);
    let first = create_key_id(&kms, "first").await;
    let second = create_key_id(&kms, "second").await;
    for (alias, target) in [("alias/reports", &first), ("alias/reports-archive", &first), ("alias/other", &second)] {
        kms.create_alias()
            .alias_name(alias)
            .target_key_id(target.as_str())
            .send()
            .await
            .unwrap_or_else(|e| panic!("CreateAlias {alias}: {}", DisplayErrorContext(&e)));
    }

    let listed = kms.list_aliases().send().await.unwrap_or_else(|e| panic!("ListAliases: {}", DisplayErrorContext(&e)));
    for (alias, target) in [("alias/reports", &first), ("alias/reports-archive", &first), ("alias/other", &second)] {
        let entry = listed
            .aliases()
            .iter()
            .find(|a| a.alias_name() == Some(alias))
            .unwrap_or_else(|| panic!("ListAliases lists {alias}: {:?}", listed.aliases()));
        assert_eq!(entry.alias_arn(), Some(alias_arn(alias).as_str()));
        assert_eq!(entry.target_key_id(), Some(target.as_str()));
    }
    let of_first = kms
        .list_aliases()
        .key_id(&first)
        .send()
        .await
        .unwrap_or_else(|e| panic!("ListAliases of a key: {}", DisplayErrorContext(&e)));
    let mut names: Vec<&str> = of_first.aliases().iter().filter_map(|a| a.alias_name()).collect();
    names.sort_unstable();
    assert_eq!(names, ["alias/reports", "alias/reports-archive"], "ListAliases with KeyId lists that key's aliases");

    // An alias works wherever a key id does.
    let ciphertext = encrypt(&kms, "alias/reports", b"quarterly", &[]).await;
    let (plaintext, used) = decrypt(&kms, &ciphertext, &[]).await;
    assert_eq!((plaintext.as_slice(), used), (&b"quarterly"[..], key_arn(&first)));

    kms.delete_alias()
        .alias_name("alias/reports")
        .send()
        .await
        .unwrap_or_else(|e| panic!("DeleteAlias: {}", DisplayErrorContext(&e)));
    expect_kms_error(kms.describe_key().key_id("alias/reports").send().await, "NotFoundException");
    let after = kms.list_aliases().send().await.unwrap_or_else(|e| panic!("ListAliases: {}", DisplayErrorContext(&e)));
    assert!(
        !after.aliases().iter().any(|a| a.alias_name() == Some("alias/reports")),
        "a deleted alias is not listed: {:?}",
        after.aliases()
    );
    assert_eq!(describe(&kms, &first).await.key_state(), Some(&KeyState::Enabled), "the key outlives its alias");
    assert_eq!(describe(&kms, "alias/reports-archive").await.key_id(), first, "the other alias still resolves");
    // The name is free again.
    kms.create_alias()
        .alias_name("alias/reports")
        .target_key_id(&second)
        .send()
        .await
        .unwrap_or_else(|e| panic!("CreateAlias again: {}", DisplayErrorContext(&e)));
    assert_eq!(describe(&kms, "alias/reports").await.key_id(), second);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_alias_refuses_names_without_the_prefix_duplicates_and_unknown_targets() {
    let server = TestServer::start().await;
    let kms = root_kms(&server);
    let key_id = create_key_id(&kms, "aliased").await;
    let other = create_key_id(&kms, "other").await;

    let message = expect_kms_error(
        kms.create_alias().alias_name("reports").target_key_id(&key_id).send().await,
        "ValidationException",
    );
    assert!(message.starts_with("Alias must start with the prefix \"alias/\"."), "message: {message}");
    expect_kms_error(
        kms.create_alias().alias_name("alias/no spaces!").target_key_id(&key_id).send().await,
        "ValidationException",
    );

    kms.create_alias()
        .alias_name("alias/taken")
        .target_key_id(&key_id)
        .send()
        .await
        .unwrap_or_else(|e| panic!("CreateAlias: {}", DisplayErrorContext(&e)));
    expect_kms_error(
        kms.create_alias().alias_name("alias/taken").target_key_id(&other).send().await,
        "AlreadyExistsException",
    );
    assert_eq!(describe(&kms, "alias/taken").await.key_id(), key_id, "a refused duplicate leaves the alias alone");

    let unknown = "3f1c2a9e-0b7d-4c55-9a1e-5d2b8c7f6e10";
    expect_kms_error(
        kms.create_alias().alias_name("alias/dangling").target_key_id(unknown).send().await,
        "NotFoundException",
    );
    expect_kms_error(kms.describe_key().key_id("alias/dangling").send().await, "NotFoundException");
    expect_kms_error(kms.delete_alias().alias_name("alias/never-made").send().await, "NotFoundException");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_and_malformed_key_ids_are_not_found() {
    let server = TestServer::start().await;
    let kms = root_kms(&server);
    let existing = create_key_id(&kms, "exists").await;
    let ciphertext = encrypt(&kms, &existing, b"x", &[]).await;
    let unknown = "0b6f9e3c-8a41-4d2e-b7c5-1f0e9d8c7b6a";
    let unknown_arn = key_arn(unknown);

    let message = expect_kms_error(kms.describe_key().key_id(unknown).send().await, "NotFoundException");
    assert_eq!(message, format!("Key '{unknown_arn}' does not exist"));
    let message = expect_kms_error(kms.describe_key().key_id(&unknown_arn).send().await, "NotFoundException");
    assert_eq!(message, format!("Key '{unknown_arn}' does not exist"));
    let message = expect_kms_error(kms.describe_key().key_id("x").send().await, "NotFoundException");
    assert_eq!(message, "Invalid keyId 'x'");
    expect_kms_error(kms.describe_key().key_id("alias/nobody-made-this").send().await, "NotFoundException");
    expect_kms_error(kms.describe_key().key_id(alias_arn("alias/nobody-made-this")).send().await, "NotFoundException");

    expect_kms_error(
        kms.generate_data_key().key_id(unknown).key_spec(DataKeySpec::Aes256).send().await,
        "NotFoundException",
    );
    expect_kms_error(
        kms.generate_data_key_without_plaintext().key_id(unknown).key_spec(DataKeySpec::Aes256).send().await,
        "NotFoundException",
    );
    expect_kms_error(kms.encrypt().key_id(unknown).plaintext(Blob::new("x")).send().await, "NotFoundException");
    expect_kms_error(
        kms.re_encrypt().ciphertext_blob(Blob::new(ciphertext)).destination_key_id(unknown).send().await,
        "NotFoundException",
    );
    expect_kms_error(kms.enable_key().key_id(unknown).send().await, "NotFoundException");
    expect_kms_error(kms.disable_key().key_id(unknown).send().await, "NotFoundException");
    expect_kms_error(kms.enable_key_rotation().key_id(unknown).send().await, "NotFoundException");
    expect_kms_error(kms.disable_key_rotation().key_id(unknown).send().await, "NotFoundException");
    expect_kms_error(kms.get_key_rotation_status().key_id(unknown).send().await, "NotFoundException");
    expect_kms_error(kms.rotate_key_on_demand().key_id(unknown).send().await, "NotFoundException");
    expect_kms_error(kms.list_key_rotations().key_id(unknown).send().await, "NotFoundException");
    expect_kms_error(
        kms.schedule_key_deletion().key_id(unknown).pending_window_in_days(7).send().await,
        "NotFoundException",
    );
    expect_kms_error(kms.cancel_key_deletion().key_id(unknown).send().await, "NotFoundException");
    expect_kms_error(kms.get_key_policy().key_id(unknown).policy_name("default").send().await, "NotFoundException");
    expect_kms_error(
        kms.put_key_policy()
            .key_id(unknown)
            .policy_name("default")
            .policy(default_like_policy().to_string())
            .send()
            .await,
        "NotFoundException",
    );
    expect_kms_error(kms.tag_resource().key_id(unknown).tags(tag("a", "b")).send().await, "NotFoundException");
}

// ---------------------------------------------------------------------------
// Enable and disable

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_disabled_key_refuses_cryptographic_operations_until_it_is_enabled_again() {
    let server = TestServer::start().await;
    let kms = root_kms(&server);
    let key_id = create_key_id(&kms, "switchable").await;
    let arn = key_arn(&key_id);
    let ciphertext = encrypt(&kms, &key_id, b"written while enabled", &[]).await;

    kms.disable_key()
        .key_id(&key_id)
        .send()
        .await
        .unwrap_or_else(|e| panic!("DisableKey: {}", DisplayErrorContext(&e)));
    let meta = describe(&kms, &key_id).await;
    assert_eq!((meta.enabled(), meta.key_state()), (false, Some(&KeyState::Disabled)));

    let disabled = format!("{arn} is disabled.");
    let message = expect_kms_error(
        kms.generate_data_key().key_id(&key_id).key_spec(DataKeySpec::Aes256).send().await,
        "DisabledException",
    );
    assert_eq!(message, disabled);
    let message = expect_kms_error(
        kms.generate_data_key_without_plaintext().key_id(&key_id).key_spec(DataKeySpec::Aes256).send().await,
        "DisabledException",
    );
    assert_eq!(message, disabled);
    let message =
        expect_kms_error(kms.encrypt().key_id(&key_id).plaintext(Blob::new("x")).send().await, "DisabledException");
    assert_eq!(message, disabled);
    let message = expect_kms_error(decrypt_request(&kms, &ciphertext, &[], None).await, "DisabledException");
    assert_eq!(message, disabled);
    let message = expect_kms_error(kms.rotate_key_on_demand().key_id(&key_id).send().await, "DisabledException");
    assert_eq!(message, disabled);
    // Disabling twice is harmless; describing still works.
    kms.disable_key()
        .key_id(&key_id)
        .send()
        .await
        .unwrap_or_else(|e| panic!("DisableKey again: {}", DisplayErrorContext(&e)));

    kms.enable_key().key_id(&key_id).send().await.unwrap_or_else(|e| panic!("EnableKey: {}", DisplayErrorContext(&e)));
    let meta = describe(&kms, &key_id).await;
    assert_eq!((meta.enabled(), meta.key_state()), (true, Some(&KeyState::Enabled)));
    assert_eq!(decrypt(&kms, &ciphertext, &[]).await.0, b"written while enabled");
    let fresh = encrypt(&kms, &key_id, b"written after", &[]).await;
    assert_eq!(decrypt(&kms, &fresh, &[]).await.0, b"written after");
}

// ---------------------------------------------------------------------------
// Rotation

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn automatic_rotation_is_enabled_with_a_period_reported_and_disabled() {
    let server = TestServer::start().await;
    let kms = root_kms(&server);
    let key_id = create_key_id(&kms, "rotating").await;
    let status = |kms: Client, key_id: String| async move {
        kms.get_key_rotation_status()
            .key_id(&key_id)
            .send()
            .await
            .unwrap_or_else(|e| panic!("GetKeyRotationStatus: {}", DisplayErrorContext(&e)))
    };

    assert!(!status(kms.clone(), key_id.clone()).await.key_rotation_enabled(), "a new key does not rotate");

    let enabled_at = now_secs();
    kms.enable_key_rotation()
        .key_id(&key_id)
        .rotation_period_in_days(90)
        .send()
        .await
        .unwrap_or_else(|e| panic!("EnableKeyRotation 90: {}", DisplayErrorContext(&e)));
    let got = status(kms.clone(), key_id.clone()).await;
    assert!(got.key_rotation_enabled());
    assert_eq!(got.rotation_period_in_days(), Some(90));
    assert_date_near(got.next_rotation_date(), enabled_at + 90 * DAY_SECS, "NextRotationDate");

    // Without a period, AWS's default of 365 days.
    kms.enable_key_rotation()
        .key_id(&key_id)
        .send()
        .await
        .unwrap_or_else(|e| panic!("EnableKeyRotation: {}", DisplayErrorContext(&e)));
    let got = status(kms.clone(), key_id.clone()).await;
    assert_eq!((got.key_rotation_enabled(), got.rotation_period_in_days()), (true, Some(365)));

    for days in [89, 2561] {
        expect_kms_error(
            kms.enable_key_rotation().key_id(&key_id).rotation_period_in_days(days).send().await,
            "ValidationException",
        );
    }
    let got = status(kms.clone(), key_id.clone()).await;
    assert_eq!(got.rotation_period_in_days(), Some(365), "a refused period changes nothing");

    kms.disable_key_rotation()
        .key_id(&key_id)
        .send()
        .await
        .unwrap_or_else(|e| panic!("DisableKeyRotation: {}", DisplayErrorContext(&e)));
    assert!(!status(kms.clone(), key_id.clone()).await.key_rotation_enabled());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotate_key_on_demand_is_listed_and_ciphertexts_from_before_still_decrypt() {
    let server = TestServer::start().await;
    let kms = root_kms(&server);
    let key_id = create_key_id(&kms, "rotated by hand").await;
    let context = [("purpose", "rotation")];
    let before = encrypt(&kms, &key_id, b"sealed under the first material", &context).await;
    let data_key = kms
        .generate_data_key()
        .key_id(&key_id)
        .key_spec(DataKeySpec::Aes256)
        .send()
        .await
        .unwrap_or_else(|e| panic!("GenerateDataKey: {}", DisplayErrorContext(&e)));
    let rotations = kms
        .list_key_rotations()
        .key_id(&key_id)
        .send()
        .await
        .unwrap_or_else(|e| panic!("ListKeyRotations: {}", DisplayErrorContext(&e)));
    assert!(rotations.rotations().is_empty(), "a new key has no rotations: {:?}", rotations.rotations());

    let rotated_at = now_secs();
    let rotated = kms
        .rotate_key_on_demand()
        .key_id(&key_id)
        .send()
        .await
        .unwrap_or_else(|e| panic!("RotateKeyOnDemand: {}", DisplayErrorContext(&e)));
    assert!(rotated.key_id().is_some_and(|k| k.contains(&key_id)), "RotateKeyOnDemand names the key: {rotated:?}");
    let rotations = kms
        .list_key_rotations()
        .key_id(&key_id)
        .send()
        .await
        .unwrap_or_else(|e| panic!("ListKeyRotations: {}", DisplayErrorContext(&e)));
    let [rotation] = rotations.rotations() else {
        panic!("one rotation after one on-demand rotation: {:?}", rotations.rotations())
    };
    assert_eq!(rotation.rotation_type(), Some(&RotationType::OnDemand));
    assert!(rotation.key_id().is_some_and(|k| k.contains(&key_id)), "the rotation names the key: {rotation:?}");
    assert_date_near(rotation.rotation_date(), rotated_at, "RotationDate");

    let after = encrypt(&kms, &key_id, b"sealed under the second material", &context).await;
    assert_eq!(decrypt(&kms, &before, &context).await.0, b"sealed under the first material");
    assert_eq!(decrypt(&kms, &after, &context).await.0, b"sealed under the second material");
    let old_data_key = decrypt(&kms, data_key.ciphertext_blob().expect("CiphertextBlob").as_ref(), &[]).await.0;
    assert_eq!(old_data_key, data_key.plaintext().expect("Plaintext").as_ref(), "an old data key still opens");

    kms.rotate_key_on_demand()
        .key_id(&key_id)
        .send()
        .await
        .unwrap_or_else(|e| panic!("RotateKeyOnDemand again: {}", DisplayErrorContext(&e)));
    let rotations = kms
        .list_key_rotations()
        .key_id(&key_id)
        .send()
        .await
        .unwrap_or_else(|e| panic!("ListKeyRotations: {}", DisplayErrorContext(&e)));
    assert_eq!(rotations.rotations().len(), 2, "two rotations: {:?}", rotations.rotations());
    assert!(rotations.rotations().iter().all(|r| r.rotation_type() == Some(&RotationType::OnDemand)));
    assert_eq!(decrypt(&kms, &before, &context).await.0, b"sealed under the first material");
    assert_eq!(decrypt(&kms, &after, &context).await.0, b"sealed under the second material");
}

// ---------------------------------------------------------------------------
// Data keys, Encrypt, Decrypt, ReEncrypt

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generate_data_key_gives_a_key_of_the_asked_size_whose_ciphertext_decrypts_under_its_context() {
    let server = TestServer::start().await;
    let kms = root_kms(&server);
    let key_id = create_key_id(&kms, "data keys").await;
    kms.create_alias()
        .alias_name("alias/data-keys")
        .target_key_id(&key_id)
        .send()
        .await
        .unwrap_or_else(|e| panic!("CreateAlias: {}", DisplayErrorContext(&e)));
    let context = [("bucket", "ledger"), ("object", "2026/q1.csv")];

    let mut seen = HashSet::new();
    for (spec, bytes) in [
        (Some(DataKeySpec::Aes256), None),
        (Some(DataKeySpec::Aes128), None),
        (None, Some(64)),
        (None, Some(1)),
        (None, Some(1024)),
    ] {
        let mut request =
            kms.generate_data_key().key_id("alias/data-keys").set_key_spec(spec.clone()).set_number_of_bytes(bytes);
        for (name, value) in context {
            request = request.encryption_context(name, value);
        }
        let out = request
            .send()
            .await
            .unwrap_or_else(|e| panic!("GenerateDataKey {spec:?} {bytes:?}: {}", DisplayErrorContext(&e)));
        let plaintext = out.plaintext().expect("GenerateDataKey returns a Plaintext").as_ref().to_vec();
        let expected_len = match (&spec, bytes) {
            (Some(DataKeySpec::Aes256), _) => 32,
            (Some(DataKeySpec::Aes128), _) => 16,
            (_, Some(n)) => usize::try_from(n).expect("a small size"),
            _ => unreachable!("every case names a size"),
        };
        assert_eq!(plaintext.len(), expected_len, "GenerateDataKey {spec:?} {bytes:?}");
        assert_eq!(out.key_id(), Some(key_arn(&key_id).as_str()), "GenerateDataKey answers with the key ARN");
        let ciphertext = out.ciphertext_blob().expect("GenerateDataKey returns a CiphertextBlob").as_ref();
        assert!(
            !ciphertext.windows(plaintext.len()).any(|w| w == plaintext.as_slice()) || plaintext.len() < 8,
            "the ciphertext does not contain the plaintext key"
        );
        let (opened, used) = decrypt(&kms, ciphertext, &context).await;
        assert_eq!(opened, plaintext, "Decrypt gives back the data key");
        assert_eq!(used, key_arn(&key_id));
        assert!(seen.insert(plaintext), "every data key is fresh");
    }

    let both = kms.generate_data_key().key_id(&key_id).key_spec(DataKeySpec::Aes256).number_of_bytes(32).send().await;
    expect_kms_error(both, "ValidationException");
    expect_kms_error(kms.generate_data_key().key_id(&key_id).send().await, "ValidationException");
    for bytes in [0, 1025] {
        expect_kms_error(
            kms.generate_data_key().key_id(&key_id).number_of_bytes(bytes).send().await,
            "ValidationException",
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn decrypt_refuses_a_missing_or_different_encryption_context_as_an_invalid_ciphertext() {
    let server = TestServer::start().await;
    let kms = root_kms(&server);
    let key_id = create_key_id(&kms, "context bound").await;
    let context = [("tenant", "acme"), ("purpose", "backup")];
    let data_key = {
        let mut request = kms.generate_data_key().key_id(&key_id).key_spec(DataKeySpec::Aes256);
        for (name, value) in context {
            request = request.encryption_context(name, value);
        }
        request.send().await.unwrap_or_else(|e| panic!("GenerateDataKey: {}", DisplayErrorContext(&e)))
    };
    let ciphertext = data_key.ciphertext_blob().expect("CiphertextBlob").as_ref().to_vec();
    let plaintext = data_key.plaintext().expect("Plaintext").as_ref().to_vec();

    // The context is a map: the order it is given in does not matter.
    let reordered = [("purpose", "backup"), ("tenant", "acme")];
    assert_eq!(decrypt(&kms, &ciphertext, &reordered).await.0, plaintext);

    let wrong_contexts: [&[(&str, &str)]; 5] = [
        &[],
        &[("tenant", "acme")],
        &[("tenant", "acme"), ("purpose", "restore")],
        &[("tenant", "ACME"), ("purpose", "backup")],
        &[("tenant", "acme"), ("purpose", "backup"), ("extra", "pair")],
    ];
    for wrong in wrong_contexts {
        let result = decrypt_request(&kms, &ciphertext, wrong, None).await;
        let message = expect_kms_error(result, "InvalidCiphertextException");
        assert!(!message.contains("acme"), "the message does not echo the context: {message}");
    }

    // The same holds for Encrypt, and a context given to a ciphertext made without one.
    let sealed = encrypt(&kms, &key_id, b"context free", &[]).await;
    expect_kms_error(decrypt_request(&kms, &sealed, &[("tenant", "acme")], None).await, "InvalidCiphertextException");
    assert_eq!(decrypt(&kms, &sealed, &[]).await.0, b"context free");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn decrypt_naming_another_key_is_an_incorrect_key() {
    let server = TestServer::start().await;
    let kms = root_kms(&server);
    let key_id = create_key_id(&kms, "the right key").await;
    let other = create_key_id(&kms, "the wrong key").await;
    kms.create_alias()
        .alias_name("alias/right")
        .target_key_id(&key_id)
        .send()
        .await
        .unwrap_or_else(|e| panic!("CreateAlias: {}", DisplayErrorContext(&e)));
    let ciphertext = encrypt(&kms, &key_id, b"for the right key", &[]).await;

    for wrong in [other.clone(), key_arn(&other)] {
        let message =
            expect_kms_error(decrypt_request(&kms, &ciphertext, &[], Some(&wrong)).await, "IncorrectKeyException");
        assert_eq!(message, INCORRECT_KEY_MESSAGE);
    }
    for right in [key_id.clone(), key_arn(&key_id), "alias/right".to_owned(), alias_arn("alias/right")] {
        let out = decrypt_request(&kms, &ciphertext, &[], Some(&right))
            .await
            .unwrap_or_else(|e| panic!("Decrypt naming {right}: {}", DisplayErrorContext(&e)));
        assert_eq!(out.plaintext().map(|p| p.as_ref()), Some(&b"for the right key"[..]), "Decrypt naming {right}");
        assert_eq!(out.key_id(), Some(key_arn(&key_id).as_str()));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generate_data_key_without_plaintext_returns_only_a_ciphertext_of_a_fresh_key() {
    let server = TestServer::start().await;
    let kms = root_kms(&server);
    let key_id = create_key_id(&kms, "no plaintext").await;
    let context = [("object", "big.bin")];

    let mut opened_keys = HashSet::new();
    for (spec, bytes, expected_len) in [(Some(DataKeySpec::Aes256), None, 32), (None, Some(48), 48)] {
        let mut request = kms
            .generate_data_key_without_plaintext()
            .key_id(&key_id)
            .set_key_spec(spec.clone())
            .set_number_of_bytes(bytes);
        for (name, value) in context {
            request = request.encryption_context(name, value);
        }
        let out = request.send().await.unwrap_or_else(|e| {
            panic!("GenerateDataKeyWithoutPlaintext {spec:?} {bytes:?}: {}", DisplayErrorContext(&e))
        });
        assert_eq!(out.key_id(), Some(key_arn(&key_id).as_str()));
        let ciphertext = out.ciphertext_blob().expect("CiphertextBlob").as_ref();
        let (opened, _) = decrypt(&kms, ciphertext, &context).await;
        assert_eq!(opened.len(), expected_len, "the data key has the asked size");
        assert!(opened_keys.insert(opened), "every data key is fresh");
    }
    let both = kms
        .generate_data_key_without_plaintext()
        .key_id(&key_id)
        .key_spec(DataKeySpec::Aes256)
        .number_of_bytes(32)
        .send()
        .await;
    expect_kms_error(both, "ValidationException");

    // The SDK would not show a Plaintext it does not model: look at the wire.
    let raw = send_kms_request(
        &server,
        "GenerateDataKeyWithoutPlaintext",
        &serde_json::json!({ "KeyId": key_id, "KeySpec": "AES_256" }),
        Some(HandSigning::root("kms")),
    )
    .await;
    assert_eq!(raw.status, 200, "GenerateDataKeyWithoutPlaintext by hand: {}", raw.text());
    let answer: serde_json::Value = serde_json::from_slice(&raw.body).expect("a JSON answer");
    assert!(answer["CiphertextBlob"].is_string(), "the answer has a CiphertextBlob: {answer}");
    assert!(answer.get("Plaintext").is_none(), "the answer has no Plaintext: {answer}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn encrypt_and_decrypt_round_trip_up_to_4096_bytes_and_refuse_damaged_ciphertexts() {
    let server = TestServer::start().await;
    let kms = root_kms(&server);
    let key_id = create_key_id(&kms, "direct").await;

    for len in [1, 100, 4096] {
        let plaintext = bulwark_e2e::payload(len as u64, len);
        let out = kms
            .encrypt()
            .key_id(&key_id)
            .plaintext(Blob::new(plaintext.clone()))
            .send()
            .await
            .unwrap_or_else(|e| panic!("Encrypt {len} bytes: {}", DisplayErrorContext(&e)));
        assert_eq!(out.key_id(), Some(key_arn(&key_id).as_str()));
        assert_eq!(out.encryption_algorithm(), Some(&EncryptionAlgorithmSpec::SymmetricDefault));
        let ciphertext = out.ciphertext_blob().expect("CiphertextBlob").as_ref().to_vec();
        assert!(ciphertext.len() > plaintext.len(), "the ciphertext carries more than the plaintext");
        let opened = decrypt_request(&kms, &ciphertext, &[], None)
            .await
            .unwrap_or_else(|e| panic!("Decrypt {len} bytes: {}", DisplayErrorContext(&e)));
        assert_eq!(opened.plaintext().map(|p| p.as_ref().to_vec()), Some(plaintext), "{len} bytes round trip");
        assert_eq!(opened.encryption_algorithm(), Some(&EncryptionAlgorithmSpec::SymmetricDefault));
    }
    let once = encrypt(&kms, &key_id, b"same words", &[]).await;
    let twice = encrypt(&kms, &key_id, b"same words", &[]).await;
    assert_ne!(once, twice, "encrypting the same plaintext twice gives two ciphertexts");

    expect_kms_error(
        kms.encrypt().key_id(&key_id).plaintext(Blob::new(vec![7u8; 4097])).send().await,
        "ValidationException",
    );

    let mut flipped_last = once.clone();
    *flipped_last.last_mut().expect("a ciphertext has bytes") ^= 0x01;
    let mut flipped_middle = once.clone();
    let middle = flipped_middle.len() / 2;
    flipped_middle[middle] ^= 0x80;
    let truncated = once[..once.len() - 1].to_vec();
    for (what, damaged) in [
        ("the last byte flipped", flipped_last),
        ("a middle byte flipped", flipped_middle),
        ("the last byte cut off", truncated),
        ("bytes that never were a ciphertext", b"definitely not a KMS ciphertext blob".to_vec()),
    ] {
        let result = decrypt_request(&kms, &damaged, &[], None).await;
        let error = result.expect_err(what);
        let code = error.code().map(str::to_owned);
        assert_eq!(
            (error.raw_response().map(|r| r.status().as_u16()), code.as_deref()),
            (Some(400), Some("InvalidCiphertextException")),
            "Decrypt of {what}: {}",
            DisplayErrorContext(&error)
        );
    }
    assert_eq!(decrypt(&kms, &once, &[]).await.0, b"same words", "the undamaged ciphertext still decrypts");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn re_encrypt_moves_a_ciphertext_to_another_key_and_context() {
    let server = TestServer::start().await;
    let kms = root_kms(&server);
    let source = create_key_id(&kms, "source").await;
    let destination = create_key_id(&kms, "destination").await;
    let source_context = [("stage", "old")];
    let destination_context = [("stage", "new")];
    let ciphertext = encrypt(&kms, &source, b"moving house", &source_context).await;

    let moved = kms
        .re_encrypt()
        .ciphertext_blob(Blob::new(ciphertext.clone()))
        .source_encryption_context("stage", "old")
        .destination_key_id(&destination)
        .destination_encryption_context("stage", "new")
        .send()
        .await
        .unwrap_or_else(|e| panic!("ReEncrypt: {}", DisplayErrorContext(&e)));
    assert_eq!(moved.source_key_id(), Some(key_arn(&source).as_str()));
    assert_eq!(moved.key_id(), Some(key_arn(&destination).as_str()));
    let moved = moved.ciphertext_blob().expect("ReEncrypt returns a CiphertextBlob").as_ref().to_vec();

    let (plaintext, used) = decrypt(&kms, &moved, &destination_context).await;
    assert_eq!((plaintext.as_slice(), used), (&b"moving house"[..], key_arn(&destination)));
    expect_kms_error(decrypt_request(&kms, &moved, &source_context, None).await, "InvalidCiphertextException");
    expect_kms_error(decrypt_request(&kms, &moved, &destination_context, Some(&source)).await, "IncorrectKeyException");
    assert_eq!(decrypt(&kms, &ciphertext, &source_context).await.0, b"moving house", "the source still decrypts");

    // The source side is checked like Decrypt.
    let wrong_context = kms
        .re_encrypt()
        .ciphertext_blob(Blob::new(ciphertext.clone()))
        .source_encryption_context("stage", "other")
        .destination_key_id(&destination)
        .send()
        .await;
    expect_kms_error(wrong_context, "InvalidCiphertextException");
    let wrong_source = kms
        .re_encrypt()
        .ciphertext_blob(Blob::new(ciphertext.clone()))
        .source_encryption_context("stage", "old")
        .source_key_id(&destination)
        .destination_key_id(&destination)
        .send()
        .await;
    expect_kms_error(wrong_source, "IncorrectKeyException");
    kms.disable_key()
        .key_id(&destination)
        .send()
        .await
        .unwrap_or_else(|e| panic!("DisableKey: {}", DisplayErrorContext(&e)));
    let to_disabled = kms
        .re_encrypt()
        .ciphertext_blob(Blob::new(ciphertext))
        .source_encryption_context("stage", "old")
        .destination_key_id(&destination)
        .send()
        .await;
    let message = expect_kms_error(to_disabled, "DisabledException");
    assert_eq!(message, format!("{} is disabled.", key_arn(&destination)));
}

// ---------------------------------------------------------------------------
// Deletion

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_scheduled_for_deletion_is_unusable_until_cancelled_which_leaves_it_disabled() {
    let server = TestServer::start().await;
    let kms = root_kms(&server);
    let key_id = create_key_id(&kms, "doomed").await;
    let arn = key_arn(&key_id);
    let ciphertext = encrypt(&kms, &key_id, b"last words", &[]).await;

    for days in [6, 31] {
        expect_kms_error(
            kms.schedule_key_deletion().key_id(&key_id).pending_window_in_days(days).send().await,
            "ValidationException",
        );
    }
    assert_eq!(describe(&kms, &key_id).await.key_state(), Some(&KeyState::Enabled), "a refused window changes nothing");

    let scheduled_at = now_secs();
    let scheduled = kms
        .schedule_key_deletion()
        .key_id(&key_id)
        .pending_window_in_days(7)
        .send()
        .await
        .unwrap_or_else(|e| panic!("ScheduleKeyDeletion: {}", DisplayErrorContext(&e)));
    assert_eq!(scheduled.key_id(), Some(arn.as_str()));
    assert_eq!(scheduled.key_state(), Some(&KeyState::PendingDeletion));
    assert_eq!(scheduled.pending_window_in_days(), Some(7));
    assert_date_near(scheduled.deletion_date(), scheduled_at + 7 * DAY_SECS, "DeletionDate");

    let meta = describe(&kms, &key_id).await;
    assert_eq!((meta.enabled(), meta.key_state()), (false, Some(&KeyState::PendingDeletion)));
    assert_eq!(meta.pending_deletion_window_in_days(), Some(7));
    assert_date_near(meta.deletion_date(), scheduled_at + 7 * DAY_SECS, "DescribeKey DeletionDate");

    let pending = format!("{arn} is pending deletion.");
    let message = expect_kms_error(
        kms.generate_data_key().key_id(&key_id).key_spec(DataKeySpec::Aes256).send().await,
        "KMSInvalidStateException",
    );
    assert_eq!(message, pending);
    let message = expect_kms_error(
        kms.encrypt().key_id(&key_id).plaintext(Blob::new("x")).send().await,
        "KMSInvalidStateException",
    );
    assert_eq!(message, pending);
    let message = expect_kms_error(decrypt_request(&kms, &ciphertext, &[], None).await, "KMSInvalidStateException");
    assert_eq!(message, pending);
    expect_kms_error(kms.enable_key().key_id(&key_id).send().await, "KMSInvalidStateException");
    expect_kms_error(
        kms.schedule_key_deletion().key_id(&key_id).pending_window_in_days(7).send().await,
        "KMSInvalidStateException",
    );

    let cancelled = kms
        .cancel_key_deletion()
        .key_id(&key_id)
        .send()
        .await
        .unwrap_or_else(|e| panic!("CancelKeyDeletion: {}", DisplayErrorContext(&e)));
    assert_eq!(cancelled.key_id(), Some(arn.as_str()));
    let meta = describe(&kms, &key_id).await;
    assert_eq!((meta.enabled(), meta.key_state()), (false, Some(&KeyState::Disabled)));
    assert_eq!(meta.deletion_date(), None, "a cancelled deletion has no date");
    let message = expect_kms_error(decrypt_request(&kms, &ciphertext, &[], None).await, "DisabledException");
    assert_eq!(message, format!("{arn} is disabled."));

    kms.enable_key().key_id(&key_id).send().await.unwrap_or_else(|e| panic!("EnableKey: {}", DisplayErrorContext(&e)));
    assert_eq!(decrypt(&kms, &ciphertext, &[]).await.0, b"last words");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_a_scaled_deletion_window_a_scheduled_key_is_gone_when_its_window_ends() {
    // One day of the window lasts one second: seven days are seven seconds.
    let server = TestServer::start_with_env(&[("BULWARK_KMS_DELETION_WINDOW_SCALE_SECS", "1")]).await;
    let kms = root_kms(&server);
    let doomed = create_key_id(&kms, "gone in seven").await;
    let slower = create_key_id(&kms, "gone in thirty").await;
    let ciphertext = encrypt(&kms, &doomed, b"soon unreadable", &[]).await;
    kms.create_alias()
        .alias_name("alias/doomed")
        .target_key_id(&doomed)
        .send()
        .await
        .unwrap_or_else(|e| panic!("CreateAlias: {}", DisplayErrorContext(&e)));

    let scheduled = Instant::now();
    for (key_id, days) in [(&doomed, 7), (&slower, 30)] {
        kms.schedule_key_deletion()
            .key_id(key_id.as_str())
            .pending_window_in_days(days)
            .send()
            .await
            .unwrap_or_else(|e| panic!("ScheduleKeyDeletion {days}: {}", DisplayErrorContext(&e)));
    }
    assert_eq!(describe(&kms, &doomed).await.key_state(), Some(&KeyState::PendingDeletion));

    let deadline = scheduled + Duration::from_secs(7 + 20);
    let gone_after = loop {
        match kms.describe_key().key_id(&doomed).send().await {
            Ok(out) => {
                let state = out.key_metadata().and_then(|m| m.key_state()).cloned();
                assert_eq!(state, Some(KeyState::PendingDeletion), "until it is gone the key is pending deletion");
            }
            Err(e) if e.code() == Some("NotFoundException") => break scheduled.elapsed(),
            Err(e) => panic!("DescribeKey while pending deletion: {}", DisplayErrorContext(&e)),
        }
        assert!(Instant::now() < deadline, "the key still exists 20 s after its 7-second window");
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    assert!(
        gone_after >= Duration::from_secs(6),
        "the key went after {gone_after:?}, before its 7-second window ended"
    );

    let message = expect_kms_error(kms.describe_key().key_id(&doomed).send().await, "NotFoundException");
    assert_eq!(message, format!("Key '{}' does not exist", key_arn(&doomed)));
    assert!(!all_key_ids(&kms).await.contains(&doomed), "ListKeys no longer lists a deleted key");
    let after = decrypt_request(&kms, &ciphertext, &[], None).await.expect_err("a deleted key decrypts nothing");
    assert_eq!(after.raw_response().map(|r| r.status().as_u16()), Some(400), "{}", DisplayErrorContext(&after));
    assert!(
        matches!(after.code(), Some("NotFoundException" | "InvalidCiphertextException")),
        "Decrypt under a deleted key: {}",
        DisplayErrorContext(&after)
    );
    expect_kms_error(kms.cancel_key_deletion().key_id(&doomed).send().await, "NotFoundException");
    expect_kms_error(kms.describe_key().key_id("alias/doomed").send().await, "NotFoundException");

    // The 30-day key keeps its longer window.
    assert_eq!(describe(&kms, &slower).await.key_state(), Some(&KeyState::PendingDeletion));
}

// ---------------------------------------------------------------------------
// Key policies and tags

fn default_like_policy() -> serde_json::Value {
    serde_json::json!({
        "Version": "2012-10-17",
        "Id": "e2e-policy",
        "Statement": [{
            "Sid": "Enable IAM User Permissions",
            "Effect": "Allow",
            "Principal": { "AWS": root_principal() },
            "Action": "kms:*",
            "Resource": "*"
        }]
    })
}

async fn key_policy(kms: &Client, key_id: &str) -> serde_json::Value {
    let out = kms
        .get_key_policy()
        .key_id(key_id)
        .policy_name("default")
        .send()
        .await
        .unwrap_or_else(|e| panic!("GetKeyPolicy: {}", DisplayErrorContext(&e)));
    let text = out.policy().expect("GetKeyPolicy returns a Policy");
    serde_json::from_str(text).unwrap_or_else(|e| panic!("the key policy is JSON ({e}): {text}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_policies_are_read_replaced_and_malformed_ones_refused() {
    let server = TestServer::start().await;
    let kms = root_kms(&server);
    let key_id = create_key_id(&kms, "with a policy").await;
    // AWS refuses key policies that name principals which do not exist.
    server.create_user("intern").await;

    // AWS's default key policy lets the account's IAM policies decide.
    let default = key_policy(&kms, &key_id).await;
    let statements = default["Statement"].as_array().expect("the default policy has a Statement list");
    assert!(
        statements
            .iter()
            .any(|s| s["Effect"] == "Allow" && s["Principal"]["AWS"] == root_principal() && s["Action"] == "kms:*"),
        "the default key policy allows kms:* to the account root: {default}"
    );

    let mut replacement = default_like_policy();
    replacement["Statement"].as_array_mut().expect("statements").push(serde_json::json!({
        "Sid": "NoDeletion",
        "Effect": "Deny",
        "Principal": { "AWS": user_arn("intern") },
        "Action": "kms:ScheduleKeyDeletion",
        "Resource": "*"
    }));
    kms.put_key_policy()
        .key_id(&key_id)
        .policy_name("default")
        .policy(replacement.to_string())
        .send()
        .await
        .unwrap_or_else(|e| panic!("PutKeyPolicy: {}", DisplayErrorContext(&e)));
    assert_eq!(key_policy(&kms, &key_id).await, replacement, "GetKeyPolicy returns the policy put");

    for malformed in [
        "this is not JSON".to_owned(),
        r#"{"Version":"2012-10-17","Statement":"#.to_owned(),
        serde_json::json!({"Version": "2012-10-17", "Statement": [{"Effect": "Perhaps", "Principal": {"AWS": root_principal()}, "Action": "kms:*", "Resource": "*"}]}).to_string(),
    ] {
        let result = kms.put_key_policy().key_id(&key_id).policy_name("default").policy(malformed.as_str()).send().await;
        expect_kms_error(result, "MalformedPolicyDocumentException");
        assert_eq!(key_policy(&kms, &key_id).await, replacement, "a refused policy leaves the old one: {malformed}");
    }

    // CreateKey takes a policy too, and refuses a malformed one without making a key.
    let with_policy = kms
        .create_key()
        .policy(replacement.to_string())
        .send()
        .await
        .unwrap_or_else(|e| panic!("CreateKey with a policy: {}", DisplayErrorContext(&e)));
    let with_policy = with_policy.key_metadata().expect("KeyMetadata").key_id().to_owned();
    assert_eq!(key_policy(&kms, &with_policy).await, replacement);
    let keys_before = all_key_ids(&kms).await.len();
    expect_kms_error(kms.create_key().policy("{ nope").send().await, "MalformedPolicyDocumentException");
    assert_eq!(all_key_ids(&kms).await.len(), keys_before, "a refused CreateKey makes no key");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_policy_deny_stops_a_user_whom_iam_allows_everything() {
    let server = TestServer::start().await;
    let kms = root_kms(&server);
    let fenced = create_key_id(&kms, "fenced").await;
    let open = create_key_id(&kms, "open").await;
    let mallory = server.create_user("mallory").await;
    grant(
        &server,
        "mallory",
        "kms-everything",
        serde_json::json!({
            "Version": "2012-10-17",
            "Statement": [{ "Effect": "Allow", "Action": "kms:*", "Resource": "*" }]
        }),
    )
    .await;
    let as_mallory = user_client(&server, &mallory);
    let before_fence = encrypt(&kms, &fenced, b"fenced secret", &[]).await;
    // Before the fence, IAM's allow is enough.
    assert_eq!(decrypt(&as_mallory, &before_fence, &[]).await.0, b"fenced secret");

    let mut fence = default_like_policy();
    fence["Statement"].as_array_mut().expect("statements").push(serde_json::json!({
        "Sid": "KeepMalloryOut",
        "Effect": "Deny",
        "Principal": { "AWS": user_arn("mallory") },
        "Action": "kms:*",
        "Resource": "*"
    }));
    kms.put_key_policy()
        .key_id(&fenced)
        .policy_name("default")
        .policy(fence.to_string())
        .send()
        .await
        .unwrap_or_else(|e| panic!("PutKeyPolicy: {}", DisplayErrorContext(&e)));

    expect_kms_error(decrypt_request(&as_mallory, &before_fence, &[], None).await, "AccessDeniedException");
    expect_kms_error(
        as_mallory.encrypt().key_id(&fenced).plaintext(Blob::new("x")).send().await,
        "AccessDeniedException",
    );
    expect_kms_error(
        as_mallory.generate_data_key().key_id(&fenced).key_spec(DataKeySpec::Aes256).send().await,
        "AccessDeniedException",
    );
    expect_kms_error(as_mallory.describe_key().key_id(&fenced).send().await, "AccessDeniedException");
    expect_kms_error(as_mallory.disable_key().key_id(&fenced).send().await, "AccessDeniedException");
    expect_kms_error(
        as_mallory
            .put_key_policy()
            .key_id(&fenced)
            .policy_name("default")
            .policy(default_like_policy().to_string())
            .send()
            .await,
        "AccessDeniedException",
    );
    assert_eq!(
        describe(&kms, &fenced).await.key_state(),
        Some(&KeyState::Enabled),
        "the denied DisableKey did nothing"
    );
    assert_eq!(key_policy(&kms, &fenced).await, fence, "the denied PutKeyPolicy did nothing");

    // The deny is about this key and this user.
    let elsewhere = encrypt(&as_mallory, &open, b"mallory's own", &[]).await;
    assert_eq!(decrypt(&as_mallory, &elsewhere, &[]).await.0, b"mallory's own");
    assert_eq!(decrypt(&kms, &before_fence, &[]).await.0, b"fenced secret", "root still uses the fenced key");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tags_are_accepted_but_the_reserved_aws_prefix_is_refused() {
    let server = TestServer::start().await;
    let kms = root_kms(&server);
    let key_id = create_key_id(&kms, "tagged").await;

    kms.tag_resource()
        .key_id(&key_id)
        .tags(tag("environment", "test"))
        .tags(tag("owner", ""))
        .send()
        .await
        .unwrap_or_else(|e| panic!("TagResource: {}", DisplayErrorContext(&e)));
    kms.tag_resource()
        .key_id(key_arn(&key_id))
        .tags(tag("environment", "staging"))
        .send()
        .await
        .unwrap_or_else(|e| panic!("TagResource by ARN: {}", DisplayErrorContext(&e)));

    let message = expect_kms_error(
        kms.tag_resource().key_id(&key_id).tags(tag("aws:createdBy", "me")).send().await,
        "TagException",
    );
    assert_eq!(message, "Tags beginning with aws: are reserved");

    let keys_before = all_key_ids(&kms).await;
    let message = expect_kms_error(
        kms.create_key().description("reserved tag").tags(tag("aws:owner", "me")).send().await,
        "TagException",
    );
    assert_eq!(message, "Tags beginning with aws: are reserved");
    assert_eq!(all_key_ids(&kms).await, keys_before, "a CreateKey refused for its tags makes no key");
}

// ---------------------------------------------------------------------------
// GenerateRandom

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generate_random_returns_the_asked_number_of_random_bytes() {
    let server = TestServer::start().await;
    let kms = root_kms(&server);
    let mut seen = HashSet::new();
    for bytes in [1, 16, 32, 1024] {
        let out = kms
            .generate_random()
            .number_of_bytes(bytes)
            .send()
            .await
            .unwrap_or_else(|e| panic!("GenerateRandom {bytes}: {}", DisplayErrorContext(&e)));
        let random = out.plaintext().expect("GenerateRandom returns a Plaintext").as_ref().to_vec();
        assert_eq!(random.len(), usize::try_from(bytes).expect("small"), "GenerateRandom {bytes}");
        if bytes >= 16 {
            assert!(seen.insert(random.clone()), "no repeats among random strings of {bytes} bytes");
            let distinct: HashSet<u8> = random.iter().copied().collect();
            assert!(distinct.len() > 4, "{bytes} random bytes are not nearly all alike: {random:?}");
        }
    }
    let a = kms.generate_random().number_of_bytes(32).send().await.expect("GenerateRandom 32");
    let b = kms.generate_random().number_of_bytes(32).send().await.expect("GenerateRandom 32");
    assert_ne!(a.plaintext(), b.plaintext(), "two calls give different bytes");

    let message = expect_kms_error(kms.generate_random().send().await, "ValidationException");
    assert_eq!(message, "NumberOfBytes is required.");
    for bytes in [0, 1025] {
        expect_kms_error(kms.generate_random().number_of_bytes(bytes).send().await, "ValidationException");
    }
}

// ---------------------------------------------------------------------------
// Identities and signatures

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_without_kms_permissions_is_denied_every_kms_operation() {
    let server = TestServer::start().await;
    let kms = root_kms(&server);
    let key_id = create_key_id(&kms, "not theirs").await;
    let ciphertext = encrypt(&kms, &key_id, b"not for nobody", &[]).await;
    let nobody = server.create_user("nobody").await;
    let as_nobody = user_client(&server, &nobody);
    let keys_before = all_key_ids(&kms).await;

    expect_kms_error(as_nobody.create_key().send().await, "AccessDeniedException");
    expect_kms_error(as_nobody.list_keys().send().await, "AccessDeniedException");
    expect_kms_error(as_nobody.list_aliases().send().await, "AccessDeniedException");
    expect_kms_error(as_nobody.describe_key().key_id(&key_id).send().await, "AccessDeniedException");
    expect_kms_error(
        as_nobody.encrypt().key_id(&key_id).plaintext(Blob::new("x")).send().await,
        "AccessDeniedException",
    );
    expect_kms_error(decrypt_request(&as_nobody, &ciphertext, &[], None).await, "AccessDeniedException");
    expect_kms_error(
        as_nobody.generate_data_key().key_id(&key_id).key_spec(DataKeySpec::Aes256).send().await,
        "AccessDeniedException",
    );
    expect_kms_error(
        as_nobody.create_alias().alias_name("alias/mine").target_key_id(&key_id).send().await,
        "AccessDeniedException",
    );
    expect_kms_error(as_nobody.disable_key().key_id(&key_id).send().await, "AccessDeniedException");
    expect_kms_error(
        as_nobody.schedule_key_deletion().key_id(&key_id).pending_window_in_days(7).send().await,
        "AccessDeniedException",
    );
    expect_kms_error(as_nobody.generate_random().number_of_bytes(16).send().await, "AccessDeniedException");

    // Nothing happened.
    assert_eq!(all_key_ids(&kms).await, keys_before, "no key was made");
    assert_eq!(describe(&kms, &key_id).await.key_state(), Some(&KeyState::Enabled), "the key was not touched");
    expect_kms_error(kms.describe_key().key_id("alias/mine").send().await, "NotFoundException");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_allowed_to_decrypt_with_one_key_can_do_that_and_nothing_else() {
    let server = TestServer::start().await;
    let kms = root_kms(&server);
    let allowed = create_key_id(&kms, "decryptable").await;
    let other = create_key_id(&kms, "off limits").await;
    let reader = server.create_user("reader").await;
    grant(
        &server,
        "reader",
        "decrypt-one-key",
        serde_json::json!({
            "Version": "2012-10-17",
            "Statement": [{ "Effect": "Allow", "Action": "kms:Decrypt", "Resource": key_arn(&allowed) }]
        }),
    )
    .await;
    let as_reader = user_client(&server, &reader);
    let context = [("document", "contract.pdf")];
    let readable = encrypt(&kms, &allowed, b"you may read this", &context).await;
    let unreadable = encrypt(&kms, &other, b"but not this", &context).await;

    let (plaintext, used) = decrypt(&as_reader, &readable, &context).await;
    assert_eq!((plaintext.as_slice(), used), (&b"you may read this"[..], key_arn(&allowed)));
    let named = decrypt_request(&as_reader, &readable, &context, Some(&key_arn(&allowed)))
        .await
        .unwrap_or_else(|e| panic!("Decrypt naming the allowed key: {}", DisplayErrorContext(&e)));
    assert_eq!(named.plaintext().map(|p| p.as_ref()), Some(&b"you may read this"[..]));

    expect_kms_error(decrypt_request(&as_reader, &unreadable, &context, None).await, "AccessDeniedException");
    expect_kms_error(
        as_reader.encrypt().key_id(&allowed).plaintext(Blob::new("x")).send().await,
        "AccessDeniedException",
    );
    expect_kms_error(
        as_reader.generate_data_key().key_id(&allowed).key_spec(DataKeySpec::Aes256).send().await,
        "AccessDeniedException",
    );
    expect_kms_error(
        as_reader
            .re_encrypt()
            .ciphertext_blob(Blob::new(readable.clone()))
            .source_encryption_context("document", "contract.pdf")
            .destination_key_id(&allowed)
            .send()
            .await,
        "AccessDeniedException",
    );
    expect_kms_error(as_reader.describe_key().key_id(&allowed).send().await, "AccessDeniedException");
    expect_kms_error(as_reader.disable_key().key_id(&allowed).send().await, "AccessDeniedException");
    expect_kms_error(as_reader.create_key().send().await, "AccessDeniedException");
    assert_eq!(describe(&kms, &allowed).await.key_state(), Some(&KeyState::Enabled));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_signed_with_a_wrong_secret_or_an_unknown_access_key_are_refused_without_effect() {
    let server = TestServer::start().await;
    let kms = root_kms(&server);
    let key_id = create_key_id(&kms, "target").await;
    let keys_before = all_key_ids(&kms).await;

    let wrong_secret = kms_client_as(&server, ACCESS_KEY, "wrong-secret-0123456789abcdefghijklmnopq");
    let unknown_key = kms_client_as(&server, "AKIANOBODYKNOWSTHIS0", SECRET_KEY);
    for (who, client) in [("a wrong secret", &wrong_secret), ("an unknown access key", &unknown_key)] {
        let created = client.create_key().description("forged").send().await.expect_err(who);
        assert_eq!(
            created.raw_response().map(|r| r.status().as_u16()),
            Some(400),
            "{who}: {}",
            DisplayErrorContext(&created)
        );
        assert!(
            matches!(created.code(), Some("UnrecognizedClientException" | "InvalidSignatureException")),
            "{who}: {}",
            DisplayErrorContext(&created)
        );
        let disabled = client.disable_key().key_id(&key_id).send().await.expect_err(who);
        assert_eq!(
            disabled.raw_response().map(|r| r.status().as_u16()),
            Some(400),
            "{who}: {}",
            DisplayErrorContext(&disabled)
        );
        assert!(
            matches!(disabled.code(), Some("UnrecognizedClientException" | "InvalidSignatureException")),
            "{who}: {}",
            DisplayErrorContext(&disabled)
        );
    }
    let unknown_key_error = unknown_key.list_keys().send().await.expect_err("an unknown access key");
    assert_eq!(
        unknown_key_error.code(),
        Some("UnrecognizedClientException"),
        "{}",
        DisplayErrorContext(&unknown_key_error)
    );

    assert_eq!(all_key_ids(&kms).await, keys_before, "no forged CreateKey made a key");
    assert_eq!(describe(&kms, &key_id).await.key_state(), Some(&KeyState::Enabled), "no forged DisableKey took effect");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_signed_for_s3_or_not_signed_at_all_are_refused_by_the_kms_api() {
    let server = TestServer::start().await;
    let kms = root_kms(&server);
    let body = serde_json::json!({ "Description": "hand made" });
    let keys_before = all_key_ids(&kms).await;

    // The control: the same request, signed for `kms`, is a CreateKey.
    let signed = send_kms_request(&server, "CreateKey", &body, Some(HandSigning::root("kms"))).await;
    assert_eq!(signed.status, 200, "a hand-signed CreateKey: {}", signed.text());
    let created: serde_json::Value = serde_json::from_slice(&signed.body).expect("CreateKey answers JSON");
    let control = created["KeyMetadata"]["KeyId"].as_str().expect("KeyMetadata.KeyId").to_owned();
    let mut keys_with_control = keys_before.clone();
    keys_with_control.push(control.clone());
    keys_with_control.sort();
    let listed = |mut ids: Vec<String>| {
        ids.sort();
        ids
    };
    assert_eq!(listed(all_key_ids(&kms).await), keys_with_control, "the hand-signed CreateKey made one key");

    let for_s3 = send_kms_request(&server, "CreateKey", &body, Some(HandSigning::root("s3"))).await;
    assert_eq!(for_s3.status, 400, "a KMS request signed for s3: {}", for_s3.text());
    assert!(kms_error_type(&for_s3).is_some(), "a KMS JSON error: {}", for_s3.text());

    let wrong_secret =
        HandSigning { secret_key: "not-the-secret-0123456789abcdefghijklmno", ..HandSigning::root("kms") };
    let forged = send_kms_request(&server, "CreateKey", &body, Some(wrong_secret)).await;
    assert_eq!(forged.status, 400, "a KMS request with a wrong secret: {}", forged.text());
    assert!(
        matches!(kms_error_type(&forged).as_deref(), Some("InvalidSignatureException" | "UnrecognizedClientException")),
        "a wrong secret: {}",
        forged.text()
    );

    let unsigned = send_kms_request(&server, "CreateKey", &body, None).await;
    assert_eq!(unsigned.status, 400, "an unsigned KMS request: {}", unsigned.text());
    assert!(kms_error_type(&unsigned).is_some(), "a KMS JSON error: {}", unsigned.text());
    let disable = serde_json::json!({ "KeyId": control });
    for signing in [Some(HandSigning::root("s3")), None] {
        let refused = send_kms_request(&server, "DisableKey", &disable, signing).await;
        assert_eq!(refused.status, 400, "DisableKey signed {signing:?}: {}", refused.text());
    }

    assert_eq!(listed(all_key_ids(&kms).await), keys_with_control, "only the control request made a key");
    assert_eq!(
        describe(&kms, &control).await.key_state(),
        Some(&KeyState::Enabled),
        "no refused DisableKey took effect"
    );
}

// ---------------------------------------------------------------------------
// The audit log

/// The records `bulwark kms audit show --json` printed: a JSON array, an object
/// with a `records` array, or one JSON object per line.
fn audit_records(stdout: &str) -> Vec<serde_json::Value> {
    match serde_json::from_str::<serde_json::Value>(stdout.trim()) {
        Ok(serde_json::Value::Array(records)) => return records,
        Ok(serde_json::Value::Object(object)) => {
            if let Some(serde_json::Value::Array(records)) = object.get("records") {
                return records.clone();
            }
        }
        _ => {}
    }
    stdout
        .lines()
        .filter(|line| !line.trim().is_empty())
        .map(|line| {
            serde_json::from_str(line).unwrap_or_else(|e| panic!("audit show printed a non-JSON line ({e}): {line}"))
        })
        .collect()
}

/// Every string anywhere in `value`.
fn strings_in(value: &serde_json::Value) -> Vec<&str> {
    match value {
        serde_json::Value::String(s) => vec![s.as_str()],
        serde_json::Value::Array(items) => items.iter().flat_map(strings_in).collect(),
        serde_json::Value::Object(fields) => fields.values().flat_map(strings_in).collect(),
        _ => Vec::new(),
    }
}

/// Whether `record` names the operation (`Decrypt`, `TrentService.Decrypt` or `kms:Decrypt`).
fn names_operation(record: &serde_json::Value, operation: &str) -> bool {
    strings_in(record)
        .iter()
        .any(|s| *s == operation || s.ends_with(&format!(".{operation}")) || s.ends_with(&format!(":{operation}")))
}

fn mentions(record: &serde_json::Value, text: &str) -> bool {
    strings_in(record).iter().any(|s| s.contains(text))
}

/// The records of `operation` on `key_id`.
fn records_of<'a>(records: &'a [serde_json::Value], operation: &str, key_id: &str) -> Vec<&'a serde_json::Value> {
    records.iter().filter(|r| names_operation(r, operation) && mentions(r, key_id)).collect()
}

/// The sequence number of a raw audit log line: its one field whose name has `seq` in it.
fn sequence_number(line: &str) -> u64 {
    let record: serde_json::Value =
        serde_json::from_str(line).unwrap_or_else(|e| panic!("an audit log line is JSON ({e}): {line}"));
    let fields = record.as_object().unwrap_or_else(|| panic!("an audit record is a JSON object: {line}"));
    fields
        .iter()
        .find(|(name, value)| name.to_ascii_lowercase().contains("seq") && value.is_u64())
        .and_then(|(_, value)| value.as_u64())
        .unwrap_or_else(|| panic!("an audit record has a sequence number field: {line}"))
}

/// Whether `text` holds `number` as a whole number (not as part of a longer one).
fn mentions_number(text: &str, number: u64) -> bool {
    let wanted = number.to_string();
    text.split(|c: char| !c.is_ascii_digit()).any(|token| token == wanted)
}

/// Makes a handful of audited operations on two keys; returns their ids.
async fn audited_operations(kms: &Client) -> (String, String) {
    let first = create_key_id(kms, "audited").await;
    let second = create_key_id(kms, "also audited").await;
    for i in 0..4 {
        let sealed = encrypt(kms, &first, format!("entry {i}").as_bytes(), &[("i", "x")]).await;
        decrypt(kms, &sealed, &[("i", "x")]).await;
    }
    encrypt(kms, &second, b"last", &[]).await;
    (first, second)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_audit_log_lists_operations_with_their_keys_and_outcomes_and_never_a_plaintext_key() {
    let server = TestServer::start().await;
    let kms = root_kms(&server);
    let key_id = create_key_id(&kms, "audited").await;
    let other = create_key_id(&kms, "bystander").await;
    let data_key = kms
        .generate_data_key()
        .key_id(&key_id)
        .key_spec(DataKeySpec::Aes256)
        .encryption_context("purpose", "audit")
        .send()
        .await
        .unwrap_or_else(|e| panic!("GenerateDataKey: {}", DisplayErrorContext(&e)));
    let plaintext = data_key.plaintext().expect("Plaintext").as_ref().to_vec();
    let ciphertext = data_key.ciphertext_blob().expect("CiphertextBlob").as_ref().to_vec();
    assert_eq!(decrypt(&kms, &ciphertext, &[("purpose", "audit")]).await.0, plaintext);
    expect_kms_error(
        decrypt_request(&kms, &ciphertext, &[("purpose", "audit")], Some(&other)).await,
        "IncorrectKeyException",
    );
    kms.disable_key()
        .key_id(&key_id)
        .send()
        .await
        .unwrap_or_else(|e| panic!("DisableKey: {}", DisplayErrorContext(&e)));
    expect_kms_error(kms.encrypt().key_id(&key_id).plaintext(Blob::new("x")).send().await, "DisabledException");
    let nobody = server.create_user("nobody").await;
    expect_kms_error(user_client(&server, &nobody).describe_key().key_id(&other).send().await, "AccessDeniedException");

    let verified = kms_audit(&server, &["verify"]).await;
    verified.assert_success();

    let shown = kms_audit(&server, &["show", "--json"]).await;
    shown.assert_success();
    let records = audit_records(&shown.stdout);
    let succeeded = |operation: &str, key: &str| {
        let found = records_of(&records, operation, key);
        assert!(!found.is_empty(), "no {operation} record names {key}:\n{}", shown.stdout);
        assert!(
            found.iter().any(|r| !mentions(r, "Exception")),
            "the {operation} record of {key} shows success: {found:?}"
        );
    };
    succeeded("CreateKey", &key_id);
    succeeded("CreateKey", &other);
    succeeded("GenerateDataKey", &key_id);
    succeeded("Decrypt", &key_id);
    succeeded("DisableKey", &key_id);
    // A refused request is recorded with its exception, under the key it named
    // or (for Decrypt) the key of its ciphertext.
    let failed = |operation: &str, keys: &[&str], exception: &str| {
        let found: Vec<&serde_json::Value> = keys.iter().flat_map(|key| records_of(&records, operation, key)).collect();
        assert!(
            found.iter().any(|r| mentions(r, exception)),
            "a {operation} record of {keys:?} shows {exception}: {found:?}\n{}",
            shown.stdout
        );
    };
    failed("Decrypt", &[&key_id, &other], "IncorrectKey");
    failed("Encrypt", &[&key_id], "Disabled");
    failed("DescribeKey", &[&other], "AccessDenied");

    // Filtered by key: only that key's records.
    let of_key = kms_audit(&server, &["show", "--json", "--key", &other]).await;
    of_key.assert_success();
    let of_key = audit_records(&of_key.stdout);
    assert!(!of_key.is_empty(), "show --key lists the key's records");
    assert!(of_key.iter().all(|r| mentions(r, &other)), "show --key lists only that key's records: {of_key:?}");

    // The plaintext data key is nowhere: not in what show prints, not in the log.
    let log = std::fs::read(server.kms_audit_log_path())
        .unwrap_or_else(|e| panic!("read {}: {e}", server.kms_audit_log_path().display()));
    let log = String::from_utf8_lossy(&log);
    // Unpadded base64 is a prefix of padded base64, so this finds both.
    let forms = [
        ("base64", STANDARD_NO_PAD.encode(&plaintext)),
        ("url-safe base64", URL_SAFE_NO_PAD.encode(&plaintext)),
        ("hex", hex::encode(&plaintext)),
    ];
    for (place, text) in [("audit show", shown.all_output()), ("kms-audit.log", log.to_string())] {
        for (form, secret) in &forms {
            let found = if *form == "hex" { text.to_lowercase().contains(secret) } else { text.contains(secret) };
            assert!(!found, "{place} contains the plaintext data key in {form}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_edited_audit_record_fails_verification_naming_its_sequence_number() {
    let mut server = TestServer::start().await;
    let kms = root_kms(&server);
    let (first, second) = audited_operations(&kms).await;
    // Stop the server so nothing is appended while the log is edited.
    server.crash();
    kms_audit(&server, &["verify"]).await.assert_success();

    let path = server.kms_audit_log_path();
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    assert!(lines.len() >= 5, "a dozen operations leave at least five records:\n{text}");
    // The record nearest the middle that names the first key, neither first nor last.
    let middle = lines.len() / 2;
    let edited = (1..lines.len() - 1)
        .filter(|&i| lines[i].contains(&first))
        .min_by_key(|&i| i.abs_diff(middle))
        .unwrap_or_else(|| panic!("a record in the middle names key {first}:\n{text}"));
    let sequence = sequence_number(&lines[edited]);
    // A credible forgery: the same record, claiming another key was used.
    lines[edited] = lines[edited].replace(&first, &second);
    serde_json::from_str::<serde_json::Value>(&lines[edited]).expect("the edited record is still JSON");
    std::fs::write(&path, lines.join("\n") + "\n").unwrap_or_else(|e| panic!("write {}: {e}", path.display()));

    let verified = kms_audit(&server, &["verify"]).await;
    assert!(!verified.success, "verify accepts an edited record (line {}):\n{}", edited + 1, verified.all_output());
    assert!(
        mentions_number(&verified.all_output(), sequence),
        "verify names the edited record's sequence number {sequence}:\n{}",
        verified.all_output()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_audit_record_fails_verification() {
    let mut server = TestServer::start().await;
    let kms = root_kms(&server);
    audited_operations(&kms).await;
    server.crash();
    kms_audit(&server, &["verify"]).await.assert_success();

    let path = server.kms_audit_log_path();
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    let mut lines: Vec<&str> = text.lines().collect();
    assert!(lines.len() >= 5, "a dozen operations leave at least five records:\n{text}");
    let removed = lines.remove(lines.len() / 2);
    std::fs::write(&path, lines.join("\n") + "\n").unwrap_or_else(|e| panic!("write {}: {e}", path.display()));

    let verified = kms_audit(&server, &["verify"]).await;
    assert!(!verified.success, "verify accepts a log missing the record {removed}:\n{}", verified.all_output());
}
