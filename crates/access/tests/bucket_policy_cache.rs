//! The parsed bucket policy is cached per bucket record; a bucket deleted and
//! created again starts its generations over, and must not be handed the
//! policy parsed for the bucket that had its name before. Real local drives.

use std::sync::Arc;

use bulwark_access::{Authorizer, BucketView, Identities, Root};
use bulwark_crypto::Key32;
use bulwark_object::meta::BucketRecord;

const ACCOUNT: &str = "123456789012";

fn public_read() -> String {
    r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::reborn/*"}]}"#.to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bucket_created_again_at_the_same_generation_gets_its_own_policy_not_the_cached_one() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Arc::new(bulwark_object::testing::local_store(dir.path()).await.0);
    let root = Root { access_key: "ROOTKEY".into(), secret_key: "rootsecret".into() };
    let sealing = bulwark_crypto::derive_key(&Key32::from_bytes([7; 32]), b"iam/secret-keys");
    let identities = Identities::open(store, sealing, root, ACCOUNT.into()).await.expect("identities");
    let authorizer = Authorizer::new(Arc::new(identities));

    let record = |created_ns: i64, policy: Option<String>| BucketRecord {
        created_ns,
        versioning: bulwark_object::Versioning::Unversioned,
        generation: 2,
        policy,
        public_access_block: None,
        default_encryption: None,
    };
    let old = record(1_000, Some(public_read()));
    assert!(authorizer.bucket_policy(BucketView { name: "reborn", record: &old }).is_some(), "the old bucket's policy");
    // Deleted, created again and changed once: generation 2 again, no policy.
    let new = record(2_000, None);
    assert!(
        authorizer.bucket_policy(BucketView { name: "reborn", record: &new }).is_none(),
        "the new bucket has no policy"
    );
}
