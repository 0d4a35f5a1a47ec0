//! Object tags: read and replaced in the version record on every drive that
//! holds it, under the key's lock, durable at write quorum like any record
//! change.

use std::collections::BTreeMap;

use bulwark_storage::MetaOp;
use futures::future::join_all;

use crate::Result;
use crate::meta::{self, VersionRecord};
use crate::store::ObjectStore;

impl ObjectStore {
    /// The tags of a version (latest by default) and its version id.
    pub async fn object_tags(
        &self,
        bucket: &str,
        key: &str,
        version_id: Option<&str>,
    ) -> Result<(Option<String>, BTreeMap<String, String>)> {
        let (_, record) = self.addressed_version(bucket, key, version_id).await?;
        Ok((record.version_id, record.tags))
    }

    /// Replaces the tags of a version; returns its version id.
    pub async fn set_object_tags(
        &self,
        bucket: &str,
        key: &str,
        version_id: Option<&str>,
        tags: BTreeMap<String, String>,
    ) -> Result<Option<String>> {
        let set = self.set_for_key(bucket, key);
        let _guard = self.lock_key(bucket, key).await;
        let (uid, record) = self.addressed_version(bucket, key, version_id).await?;
        let answers = self.fetch_versions_of(&set, bucket, key).await;
        let commits = answers.iter().enumerate().filter_map(|(position, answer)| {
            let stored = answer.as_ref()?.iter().find(|v| v.uid == uid)?;
            let mut held: VersionRecord = meta::decode("version", &stored.record).ok()?;
            held.tags = tags.clone();
            let op = MetaOp::PutVersion {
                bucket: bucket.to_owned(),
                key: key.to_owned(),
                uid,
                record: meta::encode(&held),
                inline: None,
            };
            let drive = set.drives[position].clone();
            Some(async move { drive.commit(vec![op]).await.is_ok().then_some(position) })
        });
        let ok: Vec<usize> = join_all(commits).await.into_iter().flatten().collect();
        set.require_writable(&ok)?;
        Ok(record.version_id)
    }

    /// The version a tagging request addresses (not a delete marker).
    async fn addressed_version(
        &self,
        bucket: &str,
        key: &str,
        version_id: Option<&str>,
    ) -> Result<(bulwark_storage::VersionUid, VersionRecord)> {
        self.bucket_config(bucket)?;
        let set = self.set_for_key(bucket, key);
        let versions = self.resolve_for(&set, bucket, key, version_id).await;
        // A delete marker is refused there (NoSuchKey / MethodNotAllowed).
        let resolved = Self::pick_version(&versions, version_id)?;
        Ok((resolved.uid, resolved.record))
    }
}
