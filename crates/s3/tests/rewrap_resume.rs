//! `bulwark admin rewrap` resumes an interrupted run: given the cursor an
//! earlier run left after a page, a new run continues after that key (and says
//! so), and the following run, started fresh, covers the rest. Real local
//! drives and the real KMS; only the interruption is staged, by writing the
//! cursor the way the rewrapper does.

use std::sync::Arc;
use std::time::Duration;

use bulwark_access::{Authorizer, Caller, Identities, Root};
use bulwark_crypto::Key32;
use bulwark_kms::{Kms, KmsConfig};
use bulwark_object::{Document, Encryption, ManagedKey, ManagedScheme, ObjectStore, PutOptions};
use bulwark_s3::rewrap::{Progress, Rewrapper};
use bytes::Bytes;

const BUCKET: &str = "vault";

async fn store(dir: &std::path::Path) -> Arc<ObjectStore> {
    Arc::new(bulwark_object::testing::local_store(dir).await.0)
}

async fn finished(rewrapper: &Rewrapper) -> Progress {
    for _ in 0..600 {
        let progress = rewrapper.progress();
        if !progress.running {
            return progress;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("rewrap did not finish: {:?}", rewrapper.progress());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_rewrap_continues_after_the_last_key_it_finished() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = store(dir.path()).await;
    store.make_bucket(BUCKET).await.expect("bucket");
    let root_key = Key32::from_bytes([5; 32]);
    let root = Root { access_key: "ROOT".into(), secret_key: "rootsecret".into() };
    let identities = Identities::open(
        store.clone(),
        bulwark_crypto::derive_key(&root_key, b"iam/secret-keys"),
        root,
        bulwark_access::ACCOUNT_ID.into(),
    )
    .await
    .expect("identities");
    let authorizer = Arc::new(Authorizer::new(Arc::new(identities)));
    let config = KmsConfig {
        region: "us-east-1".into(),
        account: bulwark_access::ACCOUNT_ID.into(),
        audit_path: dir.path().join("kms-audit.log"),
        sse_s3_rotation_days: 365,
    };
    let kms = Arc::new(Kms::open(store.clone(), &root_key, authorizer, config).await.expect("kms"));
    let (status, body) = kms.handle_api("CreateKey", b"{}", &Caller::Root, "t").await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let created: serde_json::Value = serde_json::from_slice(&body).expect("json");
    let key_id = created["KeyMetadata"]["KeyId"].as_str().expect("KeyId").to_owned();

    for i in 0..5 {
        let key = format!("k{i}");
        let context = bulwark_s3::managed::object_context(BUCKET, &key, None).expect("context");
        let data_key = kms.generate_data_key(Some(&key_id), &context, &Caller::Root, "t").await.expect("data key");
        let encryption = Encryption::Managed(ManagedKey {
            scheme: ManagedScheme::SseKms,
            data_key: data_key.plaintext,
            wrapped: data_key.ciphertext,
            key_arn: Some(data_key.key_arn),
            context: None,
            bucket_key: false,
        });
        let body: bulwark_object::ByteStream =
            Box::pin(futures::stream::once(async { Ok(Bytes::from_static(b"secret")) }));
        let opts = PutOptions { encryption: Some(encryption), ..PutOptions::default() };
        store.put_object(BUCKET, &key, body, Some(6), opts).await.expect("put");
    }
    let rotate = serde_json::json!({ "KeyId": key_id }).to_string();
    let (status, _) = kms.handle_api("RotateKeyOnDemand", rotate.as_bytes(), &Caller::Root, "t").await;
    assert_eq!(status, 200);

    // A run stopped after finishing k2 left this cursor behind.
    let cursor = serde_json::json!({ "only_bucket": null, "bucket": BUCKET, "after": "k2" });
    store
        .store_document("rewrap", &Document { generation: 1, body: Bytes::from(cursor.to_string()) })
        .await
        .expect("cursor");

    let rewrapper = Arc::new(Rewrapper::new(store.clone(), kms.clone()));
    rewrapper.start(None);
    let resumed = finished(&rewrapper).await;
    assert_eq!(resumed.error, None);
    assert_eq!(resumed.resumed_after.as_deref(), Some("vault/k2"));
    assert_eq!((resumed.scanned, resumed.rewrapped, resumed.failed), (2, 2, 0), "only k3 and k4: {resumed:?}");

    // The finished run cleared its cursor: the next one starts from the top
    // and finds k3, k4 already current.
    rewrapper.start(None);
    let fresh = finished(&rewrapper).await;
    assert_eq!(fresh.resumed_after, None);
    assert_eq!((fresh.scanned, fresh.rewrapped, fresh.already_current), (5, 3, 2), "{fresh:?}");
}
