//! The KMS against a real object store on local drives in a temporary
//! directory, with a manual clock: the stories of issue 8 told through the
//! JSON API and the SSE interface, and the audit log checked after each.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use bulwark_access::{Attachment, Authorizer, Caller, Identities, Root};
use bulwark_crypto::Key32;
use bulwark_object::ObjectStore;
use serde_json::{Value, json};

use crate::audit::{self, AuditRecord};
use crate::{Clock, DAY_MS, EncryptionContext, Kms, KmsConfig, KmsError, KmsOptions, ManualClock};

const ACCOUNT: &str = "000000000000";
const REGION: &str = "eu-test-1";
const DAY: Duration = Duration::from_millis(DAY_MS as u64);

struct Fixture {
    dir: tempfile::TempDir,
    store: Arc<ObjectStore>,
    identities: Arc<Identities>,
    authorizer: Arc<Authorizer>,
    clock: Arc<ManualClock>,
    root_key: Key32,
}

async fn fixture() -> Fixture {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Arc::new(bulwark_object::testing::local_store(dir.path()).await.0);
    let root_key = Key32::from_bytes([42; 32]);
    let root = Root { access_key: "ROOTKEY".into(), secret_key: "rootsecret".into() };
    let sealing = bulwark_crypto::derive_key(&root_key, b"iam/secret-keys");
    let identities =
        Arc::new(Identities::open(store.clone(), sealing, root, ACCOUNT.into()).await.expect("identities"));
    let authorizer = Arc::new(Authorizer::new(identities.clone()));
    Fixture { dir, store, identities, authorizer, clock: Arc::new(ManualClock::new(1_750_000_000_000)), root_key }
}

impl Fixture {
    async fn open_with_key(&self, root_key: &Key32) -> Result<Kms, KmsError> {
        let config = KmsConfig {
            region: REGION.into(),
            account: ACCOUNT.into(),
            audit_path: self.audit_path(),
            sse_s3_rotation_days: 365,
        };
        let options = KmsOptions { clock: self.clock.clone(), day_ms: DAY_MS };
        Kms::open_with(self.store.clone(), root_key, self.authorizer.clone(), config, options).await
    }

    async fn kms(&self) -> Kms {
        self.open_with_key(&self.root_key).await.expect("kms")
    }

    fn audit_path(&self) -> std::path::PathBuf {
        self.dir.path().join("state").join("kms-audit.log")
    }

    fn audit(&self) -> Vec<AuditRecord> {
        audit::verify(&self.audit_path(), &self.root_key).expect("the audit log verifies");
        audit::read_records(&self.audit_path()).expect("read").0
    }

    /// A user with an identity policy of these statements (none: no policy).
    async fn user(&self, name: &str, statements: &str) -> Caller {
        self.identities.create_user(name).await.expect("user");
        if !statements.is_empty() {
            let document = format!(r#"{{"Version": "2012-10-17", "Statement": [{statements}]}}"#);
            self.identities.put_policy(&format!("{name}-kms"), &document).await.expect("policy");
            self.identities.attach(&format!("{name}-kms"), &Attachment::User(name.into()), true).await.expect("attach");
        }
        Caller::User { name: name.into(), groups: Vec::new() }
    }
}

async fn call(kms: &Kms, operation: &str, request: Value, caller: &Caller) -> (u16, Value) {
    let (status, body) = kms.handle_api(operation, request.to_string().as_bytes(), caller, "req-test").await;
    let value = if body.is_empty() { Value::Null } else { serde_json::from_slice(&body).expect("JSON answer") };
    (status, value)
}

async fn ok(kms: &Kms, operation: &str, request: Value) -> Value {
    let (status, value) = call(kms, operation, request, &Caller::Root).await;
    assert_eq!(status, 200, "{operation}: {value}");
    value
}

/// Asserts an error answer: status 400, the exception name and (when given) the message.
async fn refused(kms: &Kms, operation: &str, request: Value, caller: &Caller, name: &str, message: Option<&str>) {
    let (status, value) = call(kms, operation, request, caller).await;
    assert_eq!((status, value["__type"].as_str()), (400, Some(name)), "{operation}: {value}");
    match message {
        Some(message) => assert_eq!(value["message"].as_str(), Some(message), "{operation}: {value}"),
        None => assert!(value.get("message").is_none(), "{operation}: {value}"),
    }
}

/// Asserts an error answer by status and exception name, with some message.
async fn refused_any(kms: &Kms, operation: &str, request: Value, caller: &Caller, name: &str) {
    let (status, value) = call(kms, operation, request, caller).await;
    assert_eq!((status, value["__type"].as_str()), (400, Some(name)), "{operation}: {value}");
    assert!(value["message"].as_str().is_some_and(|m| !m.is_empty()), "{operation}: {value}");
}

async fn create_key(kms: &Kms) -> (String, String) {
    let created = ok(kms, "CreateKey", json!({ "Description": "test key" })).await;
    let meta = &created["KeyMetadata"];
    (meta["KeyId"].as_str().expect("id").to_owned(), meta["Arn"].as_str().expect("arn").to_owned())
}

fn b64(data: &[u8]) -> String {
    BASE64.encode(data)
}

fn context(pairs: &[(&str, &str)]) -> EncryptionContext {
    pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
}

async fn encrypt(kms: &Kms, key: &str, plaintext: &[u8], ctx: Value) -> String {
    let answer =
        ok(kms, "Encrypt", json!({ "KeyId": key, "Plaintext": b64(plaintext), "EncryptionContext": ctx })).await;
    answer["CiphertextBlob"].as_str().expect("blob").to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_key_still_decrypts_what_its_old_versions_sealed() {
    let f = fixture().await;
    let kms = f.kms().await;
    let (id, arn) = create_key(&kms).await;
    let before = ok(&kms, "DescribeKey", json!({ "KeyId": id })).await["KeyMetadata"]["CurrentKeyMaterialId"].clone();
    let old = encrypt(&kms, &id, b"written before rotation", json!({})).await;
    assert_eq!(ok(&kms, "RotateKeyOnDemand", json!({ "KeyId": id })).await, json!({ "KeyId": arn }));
    let new = encrypt(&kms, &arn, b"written after rotation", json!({})).await;
    let version = |blob: &str| crate::ciphertext::parse(&BASE64.decode(blob).expect("b64")).expect("parse").key_version;
    assert_eq!((version(&old), version(&new)), (1, 2));
    for (blob, plaintext) in [(&old, &b"written before rotation"[..]), (&new, &b"written after rotation"[..])] {
        let answer = ok(&kms, "Decrypt", json!({ "CiphertextBlob": blob })).await;
        assert_eq!(answer["Plaintext"], json!(b64(plaintext)));
        assert_eq!(answer["KeyId"], json!(arn));
    }
    let after = ok(&kms, "DescribeKey", json!({ "KeyId": id })).await["KeyMetadata"]["CurrentKeyMaterialId"].clone();
    assert_ne!(before, after);
    let rotations = ok(&kms, "ListKeyRotations", json!({ "KeyId": id })).await;
    assert_eq!(rotations["Rotations"].as_array().map(Vec::len), Some(1));
    assert_eq!(rotations["Rotations"][0]["RotationType"], json!("ON_DEMAND"));
    assert_eq!(rotations["Rotations"][0]["KeyMaterialState"], json!("CURRENT"));

    // ReEncrypt moves the old ciphertext onto the newest version.
    let moved = ok(&kms, "ReEncrypt", json!({ "CiphertextBlob": old, "DestinationKeyId": id })).await;
    assert_eq!(version(moved["CiphertextBlob"].as_str().expect("blob")), 2);
    assert_eq!(moved["SourceKeyId"], json!(arn));
    let records = f.audit();
    assert!(
        records
            .iter()
            .any(|r| r.operation == "ReEncrypt" && r.key_version == Some(1) && r.target_key_version == Some(2))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ciphertext_opens_only_with_its_context_and_its_key() {
    let f = fixture().await;
    let kms = f.kms().await;
    let (id, _) = create_key(&kms).await;
    let (other, _) = create_key(&kms).await;
    let blob = encrypt(&kms, &id, b"secret", json!({ "bucket": "photos", "team": "red" })).await;
    let decrypt = |ctx: Value| json!({ "CiphertextBlob": blob, "EncryptionContext": ctx });
    let answer = ok(&kms, "Decrypt", decrypt(json!({ "team": "red", "bucket": "photos" }))).await;
    assert_eq!(answer["Plaintext"], json!(b64(b"secret")));
    for wrong in [json!({}), json!({ "bucket": "photos" }), json!({ "bucket": "photos", "team": "Red" })] {
        refused(&kms, "Decrypt", decrypt(wrong), &Caller::Root, "InvalidCiphertextException", None).await;
    }
    let mut with_key = decrypt(json!({ "team": "red", "bucket": "photos" }));
    with_key["KeyId"] = json!(other);
    let message = "The key ID in the request does not identify a CMK that can perform this operation.";
    refused(&kms, "Decrypt", with_key, &Caller::Root, "IncorrectKeyException", Some(message)).await;
    let garbage = json!({ "CiphertextBlob": b64(b"not a ciphertext at all, but long enough to parse maybe") });
    refused(&kms, "Decrypt", garbage, &Caller::Root, "InvalidCiphertextException", None).await;

    // The SSE-KMS path binds the context the same way.
    let ctx = context(&[("aws:s3:arn", "arn:aws:s3:::photos/cat.jpg")]);
    let key = kms.generate_data_key(Some(&id), &ctx, &Caller::Root, "r1").await.expect("data key");
    let wrong = context(&[("aws:s3:arn", "arn:aws:s3:::photos/dog.jpg")]);
    assert!(matches!(
        kms.decrypt_data_key(&key.ciphertext, &wrong, &Caller::Root, "r2").await,
        Err(KmsError::InvalidCiphertext)
    ));
    let opened = kms.decrypt_data_key(&key.ciphertext, &ctx, &Caller::Root, "r3").await.expect("open");
    assert_eq!(opened.plaintext.expose(), key.plaintext.expose());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disabled_and_pending_deletion_keys_refuse_use_with_the_aws_messages() {
    let f = fixture().await;
    let kms = f.kms().await;
    let (id, arn) = create_key(&kms).await;
    let blob = encrypt(&kms, &id, b"x", json!({})).await;
    let ctx = EncryptionContext::new();
    let data_key = kms.generate_data_key(Some(&id), &ctx, &Caller::Root, "r").await.expect("data key");

    ok(&kms, "DisableKey", json!({ "KeyId": id })).await;
    let disabled = format!("{arn} is disabled.");
    let encrypt_request = json!({ "KeyId": id, "Plaintext": b64(b"y") });
    refused(&kms, "Encrypt", encrypt_request.clone(), &Caller::Root, "DisabledException", Some(&disabled)).await;
    refused(&kms, "Decrypt", json!({ "CiphertextBlob": blob }), &Caller::Root, "DisabledException", Some(&disabled))
        .await;
    match kms.decrypt_data_key(&data_key.ciphertext, &ctx, &Caller::Root, "r").await {
        Err(e @ KmsError::Disabled(_)) => assert_eq!(e.to_string(), disabled),
        other => panic!("expected DisabledException, got {other:?}"),
    }
    let meta = ok(&kms, "DescribeKey", json!({ "KeyId": id })).await["KeyMetadata"].clone();
    assert_eq!((meta["KeyState"].as_str(), meta["Enabled"].as_bool()), (Some("Disabled"), Some(false)));
    ok(&kms, "EnableKey", json!({ "KeyId": id })).await;
    ok(&kms, "Encrypt", encrypt_request.clone()).await;

    let scheduled = ok(&kms, "ScheduleKeyDeletion", json!({ "KeyId": id, "PendingWindowInDays": 7 })).await;
    assert_eq!(scheduled["KeyState"], json!("PendingDeletion"));
    assert_eq!(scheduled["PendingWindowInDays"], json!(7));
    let pending = format!("{arn} is pending deletion.");
    refused(&kms, "Encrypt", encrypt_request, &Caller::Root, "KMSInvalidStateException", Some(&pending)).await;
    refused(&kms, "EnableKey", json!({ "KeyId": id }), &Caller::Root, "KMSInvalidStateException", Some(&pending)).await;
    match kms.decrypt_data_key(&data_key.ciphertext, &ctx, &Caller::Root, "r").await {
        Err(e @ KmsError::InvalidState(_)) => assert_eq!(e.to_string(), pending),
        other => panic!("expected KMSInvalidStateException, got {other:?}"),
    }
    assert_eq!(ok(&kms, "CancelKeyDeletion", json!({ "KeyId": id })).await, json!({ "KeyId": arn }));
    let meta = ok(&kms, "DescribeKey", json!({ "KeyId": id })).await["KeyMetadata"].clone();
    assert_eq!(meta["KeyState"], json!("Disabled"));
    assert!(meta.get("DeletionDate").is_none());
    let not_pending = format!("{arn} is not pending deletion.");
    refused(
        &kms,
        "CancelKeyDeletion",
        json!({ "KeyId": id }),
        &Caller::Root,
        "KMSInvalidStateException",
        Some(&not_pending),
    )
    .await;
    let outcomes: Vec<String> = f.audit().into_iter().map(|r| r.outcome).collect();
    assert!(outcomes.contains(&"DisabledException".to_owned()));
    assert!(outcomes.contains(&"KMSInvalidStateException".to_owned()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_is_deleted_for_good_once_its_waiting_period_has_passed() {
    let f = fixture().await;
    let kms = f.kms().await;
    let (id, arn) = create_key(&kms).await;
    ok(&kms, "CreateAlias", json!({ "AliasName": "alias/doomed", "TargetKeyId": id })).await;
    let blob = encrypt(&kms, &id, b"x", json!({})).await;
    let scheduled = ok(&kms, "ScheduleKeyDeletion", json!({ "KeyId": id, "PendingWindowInDays": 7 })).await;
    let deletion = scheduled["DeletionDate"].as_f64().expect("date");
    let now = f.clock.now_ms() as f64 / 1000.0;
    assert!((deletion - now - 7.0 * 86_400.0).abs() < 1.0, "deletion in 7 days: {deletion} vs {now}");

    f.clock.advance(DAY * 7 - Duration::from_secs(1));
    kms.run_maintenance().await.expect("maintenance");
    ok(&kms, "DescribeKey", json!({ "KeyId": id })).await;

    f.clock.advance(Duration::from_secs(2));
    kms.run_maintenance().await.expect("maintenance");
    let gone = format!("Key '{arn}' does not exist");
    refused(&kms, "DescribeKey", json!({ "KeyId": id }), &Caller::Root, "NotFoundException", Some(&gone)).await;
    refused(&kms, "Decrypt", json!({ "CiphertextBlob": blob }), &Caller::Root, "NotFoundException", Some(&gone)).await;
    let alias_gone = format!("Alias arn:aws:kms:{REGION}:{ACCOUNT}:alias/doomed is not found.");
    refused(
        &kms,
        "DescribeKey",
        json!({ "KeyId": "alias/doomed" }),
        &Caller::Root,
        "NotFoundException",
        Some(&alias_gone),
    )
    .await;
    // Deleted for good: a restart does not bring it back.
    drop(kms);
    let kms = f.kms().await;
    refused(&kms, "DescribeKey", json!({ "KeyId": arn }), &Caller::Root, "NotFoundException", Some(&gone)).await;
    let records = f.audit();
    assert!(records.iter().any(|r| r.operation == "DeleteKey" && r.principal == "service:kms" && r.outcome == "ok"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_keystore_survives_a_restart_and_refuses_another_root_key() {
    let f = fixture().await;
    let kms = f.kms().await;
    let (id, _) = create_key(&kms).await;
    let blob = encrypt(&kms, &id, b"kept", json!({})).await;
    drop(kms);
    let kms = f.kms().await;
    assert_eq!(ok(&kms, "Decrypt", json!({ "CiphertextBlob": blob })).await["Plaintext"], json!(b64(b"kept")));
    drop(kms);
    let error = f.open_with_key(&Key32::from_bytes([7; 32])).await.err().expect("another root key is refused");
    assert!(error.to_string().contains("root key"), "{error}");
    // The stored document holds no key material in the clear.
    let doc = f.store.load_document("kms").await.expect("load").expect("stored");
    assert!(!String::from_utf8_lossy(&doc.body).contains("material"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_needs_kms_decrypt_to_open_a_data_key() {
    let f = fixture().await;
    let kms = f.kms().await;
    let (id, arn) = create_key(&kms).await;
    let writer = f.user("writer", r#"{"Effect": "Allow", "Action": "kms:GenerateDataKey", "Resource": "*"}"#).await;
    let reader = f.user("reader", r#"{"Effect": "Allow", "Action": ["kms:Decrypt"], "Resource": "*"}"#).await;
    let nobody = f.user("nobody", "").await;
    let ctx = context(&[("aws:s3:arn", "arn:aws:s3:::b/k")]);
    let key = kms.generate_data_key(Some(&id), &ctx, &writer, "r").await.expect("writer may generate");
    assert_eq!(key.key_arn, arn);
    match kms.decrypt_data_key(&key.ciphertext, &ctx, &writer, "r").await {
        Err(KmsError::AccessDenied(message)) => {
            assert!(
                message.contains("user/writer") && message.contains("kms:Decrypt") && message.contains(&arn),
                "{message}"
            )
        }
        other => panic!("expected AccessDenied, got {other:?}"),
    }
    assert!(matches!(kms.generate_data_key(Some(&id), &ctx, &nobody, "r").await, Err(KmsError::AccessDenied(_))));
    let opened = kms.decrypt_data_key(&key.ciphertext, &ctx, &reader, "r").await.expect("reader may decrypt");
    assert_eq!(opened.plaintext.expose(), key.plaintext.expose());

    // A key policy Deny beats the identity policy's Allow.
    let policy = json!({
        "Version": "2012-10-17",
        "Statement": [
            {"Sid": "Enable IAM User Permissions", "Effect": "Allow",
             "Principal": {"AWS": format!("arn:aws:iam::{ACCOUNT}:root")}, "Action": "kms:*", "Resource": "*"},
            {"Sid": "NoReader", "Effect": "Deny", "Principal": {"AWS": format!("arn:aws:iam::{ACCOUNT}:user/reader")},
             "Action": "kms:Decrypt", "Resource": "*"}
        ]
    });
    ok(&kms, "PutKeyPolicy", json!({ "KeyId": id, "PolicyName": "default", "Policy": policy.to_string() })).await;
    assert!(matches!(kms.decrypt_data_key(&key.ciphertext, &ctx, &reader, "r").await, Err(KmsError::AccessDenied(_))));

    // Conditions see the encryption context.
    let scoped = f
        .user(
            "scoped",
            r#"{"Effect": "Allow", "Action": "kms:Decrypt", "Resource": "*",
                "Condition": {"StringEquals": {"kms:EncryptionContext:aws:s3:arn": "arn:aws:s3:::b/k"}}}"#,
        )
        .await;
    kms.decrypt_data_key(&key.ciphertext, &ctx, &scoped, "r").await.expect("condition holds");
    let other_ctx = context(&[("aws:s3:arn", "arn:aws:s3:::b/other")]);
    let other = kms.generate_data_key(Some(&id), &other_ctx, &Caller::Root, "r").await.expect("root");
    assert!(matches!(
        kms.decrypt_data_key(&other.ciphertext, &other_ctx, &scoped, "r").await,
        Err(KmsError::AccessDenied(_))
    ));

    // The API answers AccessDeniedException with status 400.
    refused_any(&kms, "DescribeKey", json!({ "KeyId": id }), &nobody, "AccessDeniedException").await;
    let records = f.audit();
    assert!(records.iter().any(|r| r.principal == format!("arn:aws:iam::{ACCOUNT}:user/writer")
        && r.operation == "Decrypt"
        && r.outcome == "AccessDeniedException"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_aws_s3_key_is_created_on_first_use_and_serves_every_account_user_through_s3() {
    let f = fixture().await;
    let kms = f.kms().await;
    let user = f.user("plain", "").await;
    let ctx = context(&[("aws:s3:arn", "arn:aws:s3:::b/k")]);
    let key = kms.generate_data_key(None, &ctx, &user, "r").await.expect("aws/s3 through S3");
    assert_eq!(kms.key_arn(None).await.expect("arn"), key.key_arn);
    assert_eq!(kms.key_arn(Some("alias/aws/s3")).await.expect("arn"), key.key_arn);
    kms.decrypt_data_key(&key.ciphertext, &ctx, &user, "r").await.expect("decrypt through S3");
    // Not directly, though: the key policy only allows use via S3.
    let blob = BASE64.encode(&key.ciphertext);
    let request = json!({ "CiphertextBlob": blob, "EncryptionContext": { "aws:s3:arn": "arn:aws:s3:::b/k" } });
    let (status, answer) = call(&kms, "Decrypt", request, &user).await;
    assert_eq!((status, answer["__type"].as_str()), (400, Some("AccessDeniedException")), "{answer}");
    let meta = ok(&kms, "DescribeKey", json!({ "KeyId": "alias/aws/s3" })).await["KeyMetadata"].clone();
    assert_eq!(meta["KeyManager"], json!("AWS"));
    let id = meta["KeyId"].as_str().expect("id");
    refused_any(&kms, "DisableKey", json!({ "KeyId": id }), &Caller::Root, "UnsupportedOperationException").await;
    let aliases = ok(&kms, "ListAliases", json!({})).await;
    assert_eq!(aliases["Aliases"][0]["AliasName"], json!("alias/aws/s3"));
    assert_eq!(f.audit().iter().filter(|r| r.operation == "CreateKey").count(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sse_s3_keys_rotate_and_stay_readable_and_rewrap_moves_them_forward() {
    let f = fixture().await;
    let kms = f.kms().await;
    let ctx = context(&[("aws:s3:arn", "arn:aws:s3:::b/k")]);
    let first = kms.sse_s3_generate(&ctx, "r").await.expect("generate");
    assert!(matches!(kms.rewrap(&first.ciphertext, &ctx, "r").await, Ok(None)), "already current");
    kms.rotate_sse_s3().await.expect("rotate");
    let opened = kms.sse_s3_decrypt(&first.ciphertext, &ctx, "r").await.expect("old version opens");
    assert_eq!(opened.plaintext.expose(), first.plaintext.expose());
    let rewrapped = kms.rewrap(&first.ciphertext, &ctx, "r").await.expect("rewrap").expect("moved");
    assert_eq!(crate::ciphertext::parse(&rewrapped).expect("parse").key_version, 2);
    let again = kms.sse_s3_decrypt(&rewrapped, &ctx, "r").await.expect("new version opens");
    assert_eq!(again.plaintext.expose(), first.plaintext.expose());

    // The service key and client keys do not open each other's ciphertexts.
    assert!(matches!(
        kms.decrypt_data_key(&first.ciphertext, &ctx, &Caller::Root, "r").await,
        Err(KmsError::InvalidCiphertext)
    ));
    let (id, _) = create_key(&kms).await;
    let customer = kms.generate_data_key(Some(&id), &ctx, &Caller::Root, "r").await.expect("customer");
    assert!(matches!(kms.sse_s3_decrypt(&customer.ciphertext, &ctx, "r").await, Err(KmsError::InvalidCiphertext)));
    // The service key is not listed.
    let keys = ok(&kms, "ListKeys", json!({})).await;
    assert_eq!(keys["Keys"].as_array().map(Vec::len), Some(1));

    // Automatic rotation of the master key after sse_s3_rotation_days.
    f.clock.advance(DAY * 366);
    kms.run_maintenance().await.expect("maintenance");
    let third = kms.sse_s3_generate(&ctx, "r").await.expect("generate");
    assert_eq!(crate::ciphertext::parse(&third.ciphertext).expect("parse").key_version, 3);
    let records = f.audit();
    assert!(records.iter().filter(|r| r.operation != "ListKeys").all(|r| r.key_id.is_some()), "records name their key");
    assert!(records.iter().any(|r| r.operation == "RotateKey" && r.source == "background" && r.key_version == Some(3)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn automatic_rotation_happens_when_its_period_is_due() {
    let f = fixture().await;
    let kms = f.kms().await;
    let (id, arn) = create_key(&kms).await;
    let status = ok(&kms, "GetKeyRotationStatus", json!({ "KeyId": id })).await;
    assert_eq!(status, json!({ "KeyRotationEnabled": false, "KeyId": arn }));
    ok(&kms, "EnableKeyRotation", json!({ "KeyId": id, "RotationPeriodInDays": 90 })).await;
    let status = ok(&kms, "GetKeyRotationStatus", json!({ "KeyId": id })).await;
    assert_eq!(status["RotationPeriodInDays"], json!(90));
    f.clock.advance(DAY * 89);
    kms.run_maintenance().await.expect("maintenance");
    assert_eq!(ok(&kms, "ListKeyRotations", json!({ "KeyId": id })).await["Rotations"], json!([]));
    f.clock.advance(DAY * 2);
    kms.run_maintenance().await.expect("maintenance");
    let rotations =
        ok(&kms, "ListKeyRotations", json!({ "KeyId": id, "IncludeKeyMaterial": "ALL_KEY_MATERIAL" })).await;
    assert_eq!(rotations["Rotations"].as_array().map(Vec::len), Some(2));
    assert_eq!(rotations["Rotations"][1]["RotationType"], json!("AUTOMATIC"));
    ok(&kms, "DisableKeyRotation", json!({ "KeyId": id })).await;
    f.clock.advance(DAY * 200);
    kms.run_maintenance().await.expect("maintenance");
    let rotations = ok(&kms, "ListKeyRotations", json!({ "KeyId": id })).await;
    assert_eq!(rotations["Rotations"].as_array().map(Vec::len), Some(1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_are_validated_with_the_aws_names_and_messages() {
    let f = fixture().await;
    let kms = f.kms().await;
    let (id, arn) = create_key(&kms).await;
    let root = Caller::Root;
    let cases: Vec<(&str, Value, &str, Option<String>)> = vec![
        ("GenerateRandom", json!({}), "ValidationException", Some("NumberOfBytes is required.".into())),
        ("DescribeKey", json!({ "KeyId": "x" }), "NotFoundException", Some("Invalid keyId 'x'".into())),
        (
            "DescribeKey",
            json!({ "KeyId": "6f1c3a4e-0000-4000-8000-000000000001" }),
            "NotFoundException",
            Some(format!("Key 'arn:aws:kms:{REGION}:{ACCOUNT}:key/6f1c3a4e-0000-4000-8000-000000000001' does not exist")),
        ),
        (
            "CreateAlias",
            json!({ "AliasName": "nope", "TargetKeyId": id }),
            "ValidationException",
            Some("Alias must start with the prefix \"alias/\". Please see https://docs.aws.amazon.com/kms/latest/developerguide/kms-alias.html".into()),
        ),
        ("TagResource", json!({ "KeyId": id, "Tags": [{ "TagKey": "aws:x", "TagValue": "v" }] }), "TagException", Some("Tags beginning with aws: are reserved".into())),
        ("ScheduleKeyDeletion", json!({ "KeyId": id, "PendingWindowInDays": 5 }), "ValidationException", None),
        ("EnableKeyRotation", json!({ "KeyId": id, "RotationPeriodInDays": 80 }), "ValidationException", None),
        ("GenerateDataKey", json!({ "KeyId": id, "KeySpec": "AES_256", "NumberOfBytes": 32 }), "ValidationException", None),
        ("GenerateDataKey", json!({ "KeyId": id }), "ValidationException", None),
        ("Encrypt", json!({ "KeyId": id, "Plaintext": b64(&[0; 4097]) }), "ValidationException", None),
        ("PutKeyPolicy", json!({ "KeyId": id, "Policy": "{\"Statement\": []}" }), "MalformedPolicyDocumentException", None),
        ("Frobnicate", json!({}), "UnknownOperationException", None),
        ("Encrypt", json!({ "KeyId": 5 }), "SerializationException", None),
    ];
    for (operation, request, name, message) in cases {
        let (status, answer) = call(&kms, operation, request, &root).await;
        assert_eq!((status, answer["__type"].as_str()), (400, Some(name)), "{operation}: {answer}");
        if let Some(message) = message {
            assert_eq!(answer["message"].as_str(), Some(message.as_str()), "{operation}");
        }
    }
    // Good requests of the same operations, for contrast.
    let random = ok(&kms, "GenerateRandom", json!({ "NumberOfBytes": 16 })).await;
    assert_eq!(BASE64.decode(random["Plaintext"].as_str().expect("b64")).expect("bytes").len(), 16);
    let data_key = ok(&kms, "GenerateDataKey", json!({ "KeyId": arn, "NumberOfBytes": 7 })).await;
    assert_eq!(BASE64.decode(data_key["Plaintext"].as_str().expect("b64")).expect("bytes").len(), 7);
    let without = ok(&kms, "GenerateDataKeyWithoutPlaintext", json!({ "KeyId": id, "KeySpec": "AES_128" })).await;
    assert!(without.get("Plaintext").is_none());
    let opened = ok(&kms, "Decrypt", json!({ "CiphertextBlob": without["CiphertextBlob"] })).await;
    assert_eq!(BASE64.decode(opened["Plaintext"].as_str().expect("b64")).expect("bytes").len(), 16);
    ok(&kms, "TagResource", json!({ "KeyId": id, "Tags": [{ "TagKey": "team", "TagValue": "red" }] })).await;
    let tags = ok(&kms, "ListResourceTags", json!({ "KeyId": id })).await;
    assert_eq!(tags["Tags"], json!([{ "TagKey": "team", "TagValue": "red" }]));
    let policy = ok(&kms, "GetKeyPolicy", json!({ "KeyId": id, "PolicyName": "default" })).await;
    assert!(policy["Policy"].as_str().expect("policy").contains("Enable IAM User Permissions"));
    let dry = json!({ "KeyId": id, "Plaintext": b64(b"x"), "DryRun": true });
    refused_any(&kms, "Encrypt", dry, &root, "DryRunOperationException").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aliases_name_keys_in_every_form_aws_accepts() {
    let f = fixture().await;
    let kms = f.kms().await;
    let (id, arn) = create_key(&kms).await;
    ok(&kms, "CreateAlias", json!({ "AliasName": "alias/app", "TargetKeyId": arn })).await;
    let alias_arn = format!("arn:aws:kms:{REGION}:{ACCOUNT}:alias/app");
    for key_id in [id.as_str(), arn.as_str(), "alias/app", alias_arn.as_str()] {
        let meta = ok(&kms, "DescribeKey", json!({ "KeyId": key_id })).await;
        assert_eq!(meta["KeyMetadata"]["KeyId"], json!(id), "{key_id}");
    }
    let exists = format!("An alias with the name {alias_arn} already exists");
    refused(
        &kms,
        "CreateAlias",
        json!({ "AliasName": "alias/app", "TargetKeyId": id }),
        &Caller::Root,
        "AlreadyExistsException",
        Some(&exists),
    )
    .await;
    let listed = ok(&kms, "ListAliases", json!({ "KeyId": id })).await;
    assert_eq!(listed["Aliases"][0]["AliasArn"], json!(alias_arn));
    assert_eq!(listed["Truncated"], json!(false));
    ok(&kms, "DeleteAlias", json!({ "AliasName": "alias/app" })).await;
    let missing = format!("Alias {alias_arn} is not found.");
    refused(
        &kms,
        "DeleteAlias",
        json!({ "AliasName": "alias/app" }),
        &Caller::Root,
        "NotFoundException",
        Some(&missing),
    )
    .await;
    // Paging through keys.
    for _ in 0..2 {
        create_key(&kms).await;
    }
    let first = ok(&kms, "ListKeys", json!({ "Limit": 2 })).await;
    assert_eq!((first["Keys"].as_array().map(Vec::len), first["Truncated"].as_bool()), (Some(2), Some(true)));
    let rest = ok(&kms, "ListKeys", json!({ "Limit": 2, "Marker": first["NextMarker"] })).await;
    assert_eq!((rest["Keys"].as_array().map(Vec::len), rest["Truncated"].as_bool()), (Some(1), Some(false)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_operation_is_audited_without_any_secret() {
    let f = fixture().await;
    let kms = f.kms().await;
    let (id, _) = create_key(&kms).await;
    let plaintext = b"the plaintext that must never be logged";
    let blob = encrypt(&kms, &id, plaintext, json!({ "purpose": "audit" })).await;
    let opened =
        ok(&kms, "Decrypt", json!({ "CiphertextBlob": blob, "EncryptionContext": { "purpose": "audit" } })).await;
    let data_key = ok(&kms, "GenerateDataKey", json!({ "KeyId": id, "KeySpec": "AES_256" })).await;
    refused(&kms, "Decrypt", json!({ "CiphertextBlob": blob }), &Caller::Root, "InvalidCiphertextException", None)
        .await;
    kms.audit_rejected("Decrypt", "AKIDEXAMPLE", "InvalidSignatureException", "req-bad").await;
    let records = f.audit();
    let operations: Vec<(&str, &str)> = records.iter().map(|r| (r.operation.as_str(), r.outcome.as_str())).collect();
    assert_eq!(
        operations,
        [
            ("CreateKey", "ok"),
            ("Encrypt", "ok"),
            ("Decrypt", "ok"),
            ("GenerateDataKey", "ok"),
            ("Decrypt", "InvalidCiphertextException"),
            ("Decrypt", "InvalidSignatureException"),
        ]
    );
    assert_eq!(records[1].context.get("purpose").map(String::as_str), Some("audit"));
    assert_eq!((records[1].key_id.as_deref(), records[1].key_version), (Some(id.as_str()), Some(1)));
    assert_eq!(records[1].principal, "root");
    assert_eq!(records[5].principal, "unauthenticated:AKIDEXAMPLE");
    let log = std::fs::read_to_string(f.audit_path()).expect("log");
    let secrets = [
        b64(plaintext),
        opened["Plaintext"].as_str().expect("p").to_owned(),
        data_key["Plaintext"].as_str().expect("p").to_owned(),
        hex::encode(BASE64.decode(data_key["Plaintext"].as_str().expect("p")).expect("b64")),
    ];
    for secret in secrets {
        assert!(!log.contains(&secret), "the log holds a secret");
    }
    assert!(!log.contains("the plaintext"));
}
