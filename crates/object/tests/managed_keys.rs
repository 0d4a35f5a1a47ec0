//! SSE-S3/SSE-KMS in the object layer, independent of the KMS: an object
//! written with a managed data key reads back only through an unwrapper that
//! returns that key; a refusal by the key service surfaces as
//! `KeyUnavailable` with its code; rewrapping finds the managed versions and
//! swaps only the stored wrapped key. Real local drives; the "KMS" here is a
//! table from wrapped bytes to keys, which is all the object layer sees.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use bulwark_crypto::Key32;
use bulwark_object::{
    Encryption, GetOptions, KeyUnwrapper, ManagedKey, ManagedScheme, ObjectStore, PutOptions, Unwrapper, WrappedKey,
};
use bytes::Bytes;
use futures::StreamExt;

async fn store(dir: &std::path::Path) -> ObjectStore {
    bulwark_object::testing::local_store(dir).await.0
}

fn body(data: Vec<u8>) -> bulwark_object::ByteStream {
    Box::pin(futures::stream::once(async move { Ok(Bytes::from(data)) }))
}

/// Wrapped bytes → data key; records what it was asked to open.
#[derive(Default)]
struct Table {
    keys: Mutex<HashMap<Vec<u8>, [u8; 32]>>,
    asked: Mutex<Vec<(String, Option<String>)>>,
    refuse: Mutex<Option<&'static str>>,
}

#[async_trait::async_trait]
impl KeyUnwrapper for Table {
    async fn unwrap(&self, wrapped: WrappedKey<'_>) -> bulwark_object::Result<Key32> {
        self.asked.lock().expect("lock").push((wrapped.key.to_owned(), wrapped.context.map(str::to_owned)));
        if let Some(code) = *self.refuse.lock().expect("lock") {
            return Err(bulwark_object::Error::KeyUnavailable { code: code.into(), message: "refused".into() });
        }
        let keys = self.keys.lock().expect("lock");
        keys.get(wrapped.wrapped).map(|k| Key32::from_bytes(*k)).ok_or(bulwark_object::Error::KeyUnavailable {
            code: "KMS.InvalidCiphertextException".into(),
            message: "unknown".into(),
        })
    }
}

async fn read(store: &ObjectStore, key: &str, unwrapper: Option<Unwrapper>) -> bulwark_object::Result<Vec<u8>> {
    let opts = GetOptions { unwrapper, ..GetOptions::default() };
    let mut stream = store.get_object("bkt", key, &opts).await?.body;
    let mut out = Vec::new();
    while let Some(chunk) = stream.next().await {
        out.extend_from_slice(&chunk.map_err(bulwark_object::Error::Body)?);
    }
    Ok(out)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn managed_objects_open_only_with_their_data_key_and_rewrap_swaps_the_wrapped_key() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = store(dir.path()).await;
    store.make_bucket("bkt").await.expect("bucket");
    let table = Arc::new(Table::default());
    let data_key = [7u8; 32];
    table.keys.lock().expect("lock").insert(b"wrapped-v1".to_vec(), data_key);
    let data: Vec<u8> = (0..2 * 1024 * 1024 + 99u32).map(|i| (i * 13 + 5) as u8).collect();
    let managed = |scheme| {
        Encryption::Managed(ManagedKey {
            scheme,
            data_key: Key32::from_bytes(data_key),
            wrapped: b"wrapped-v1".to_vec(),
            key_arn: Some("arn:aws:kms:us-east-1:000000000000:key/k".into()),
            context: Some("e30=".into()),
            bucket_key: false,
        })
    };
    for (key, scheme) in [("kms", ManagedScheme::SseKms), ("s3", ManagedScheme::SseS3)] {
        let opts = PutOptions { encryption: Some(managed(scheme)), ..PutOptions::default() };
        let put = store.put_object("bkt", key, body(data.clone()), Some(data.len() as u64), opts).await.expect("put");
        assert_eq!(put.sse.as_ref().map(|s| s.scheme), Some(scheme));
    }
    store.put_object("bkt", "plain", body(b"p".to_vec()), Some(1), PutOptions::default()).await.expect("put");

    let unwrapper = Unwrapper(table.clone());
    assert_eq!(read(&store, "kms", Some(unwrapper.clone())).await.expect("read"), data);
    assert_eq!(read(&store, "s3", Some(unwrapper.clone())).await.expect("read"), data);
    assert!(table.asked.lock().expect("lock").contains(&("kms".to_owned(), Some("e30=".to_owned()))));
    // Without a key service, or when it refuses, nothing is served.
    assert!(matches!(read(&store, "kms", None).await, Err(bulwark_object::Error::Internal(_))));
    *table.refuse.lock().expect("lock") = Some("KMS.DisabledException");
    match read(&store, "kms", Some(unwrapper.clone())).await {
        Err(bulwark_object::Error::KeyUnavailable { code, .. }) => assert_eq!(code, "KMS.DisabledException"),
        other => panic!("expected KeyUnavailable, got {:?}", other.map(|v| v.len())),
    }
    *table.refuse.lock().expect("lock") = None;
    // A wrong data key does not open the sealed object key.
    table.keys.lock().expect("lock").insert(b"wrapped-v1".to_vec(), [8u8; 32]);
    assert!(read(&store, "kms", Some(unwrapper.clone())).await.is_err());
    table.keys.lock().expect("lock").insert(b"wrapped-v1".to_vec(), data_key);

    // Rewrap: the managed versions are found, and swapping the wrapped key
    // leaves the object readable under the new one only.
    let page = store.managed_versions("bkt", None, 100).await.expect("managed versions");
    assert_eq!(page.scanned, 3);
    let found: Vec<&str> = page.versions.iter().map(|v| v.key.as_str()).collect();
    assert_eq!(found, vec!["kms", "s3"]);
    let kms = &page.versions[0];
    let updated = store.replace_wrapped_key("bkt", "kms", kms.uid, b"wrapped-v1", b"wrapped-v2").await.expect("swap");
    assert_eq!(updated, 6);
    let stale = store.replace_wrapped_key("bkt", "kms", kms.uid, b"wrapped-v1", b"wrapped-v3").await.expect("no-op");
    assert_eq!(stale, 0, "only a record still holding the old value is changed");
    table.keys.lock().expect("lock").remove(b"wrapped-v1".as_slice());
    assert!(read(&store, "kms", Some(unwrapper.clone())).await.is_err());
    table.keys.lock().expect("lock").insert(b"wrapped-v2".to_vec(), data_key);
    assert_eq!(read(&store, "kms", Some(unwrapper)).await.expect("read after rewrap"), data);
}
