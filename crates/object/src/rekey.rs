//! Rewrapping: finding the SSE-S3/SSE-KMS versions of a bucket and
//! replacing the KMS ciphertext of their data key (after the KMS re-encrypted
//! it under the newest key version). Only that field of the version record
//! changes; the sealed object key and the object's data stay as they are.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use bulwark_storage::{MetaOp, ScanFrom, VersionUid};
use futures::future::join_all;

use crate::meta::{self, VersionRecord};
use crate::quorum;
use crate::store::ObjectStore;
use crate::{ManagedScheme, Result};

/// Keys visited per call of [`ObjectStore::managed_versions`].
const KEYS_PER_PAGE_MAX: usize = 1000;

/// One SSE-S3/SSE-KMS version and its wrapped data key.
#[derive(Debug, Clone)]
pub struct ManagedVersion {
    pub key: String,
    pub uid: VersionUid,
    pub scheme: ManagedScheme,
    pub wrapped: Vec<u8>,
    /// The client's encryption context (SSE-KMS), base64 JSON.
    pub context: Option<String>,
}

/// A page of [`ObjectStore::managed_versions`].
#[derive(Debug, Default)]
pub struct ManagedPage {
    pub versions: Vec<ManagedVersion>,
    /// Versions looked at (encrypted or not).
    pub scanned: u64,
    /// Where the next page starts (after this key); `None` when done.
    pub next_after: Option<String>,
}

impl ObjectStore {
    /// The managed-encrypted versions of up to `limit` keys of `bucket`
    /// after `after` (all sets), in key order, for a resumable walk.
    pub async fn managed_versions(&self, bucket: &str, after: Option<&str>, limit: usize) -> Result<ManagedPage> {
        self.bucket_config(bucket)?;
        let limit = limit.clamp(1, KEYS_PER_PAGE_MAX);
        // Every set's next keys; the page ends at the smallest last key of a
        // full batch, so no key of any set is skipped.
        let mut keys: Vec<String> = Vec::new();
        let mut bound: Option<String> = None;
        for set in self.sets() {
            let from = after.map_or(ScanFrom::Start, |k| ScanFrom::AfterKey(k.to_owned()));
            let scans = set.online_positions().into_iter().map(|p| {
                let drive = set.drives[p].clone();
                let from = from.clone();
                async move { drive.scan_versions(bucket, "", from, limit).await.unwrap_or_default() }
            });
            for rows in join_all(scans).await {
                if rows.len() == limit
                    && let Some(last) = rows.last()
                    && bound.as_ref().is_none_or(|b| last.key < *b)
                {
                    bound = Some(last.key.clone());
                }
                keys.extend(rows.into_iter().map(|r| r.key));
            }
        }
        keys.sort();
        keys.dedup();
        if let Some(bound) = &bound {
            keys.retain(|k| k <= bound);
        }
        let mut page = ManagedPage { next_after: keys.last().cloned(), ..ManagedPage::default() };
        for key in &keys {
            let set = self.set_for_key(bucket, key);
            let answers = self.fetch_versions_of(&set, bucket, key).await;
            for version in quorum::resolve(&answers, set.data()) {
                page.scanned += 1;
                let Some(record) = &version.record.encryption else { continue };
                let Some(scheme) = crate::sse::managed_scheme(record) else { continue };
                let Some(wrapped) = record.wrapped_key.as_deref().and_then(|w| B64.decode(w).ok()) else {
                    continue;
                };
                page.versions.push(ManagedVersion {
                    key: key.clone(),
                    uid: version.uid,
                    scheme,
                    wrapped,
                    context: record.kms_context.clone(),
                });
            }
        }
        Ok(page)
    }

    /// Replaces the wrapped data key of one version on every drive that
    /// holds it with `old` (a concurrent change wins: other values are left
    /// alone). Returns the number of drives updated.
    pub async fn replace_wrapped_key(
        &self,
        bucket: &str,
        key: &str,
        uid: VersionUid,
        old: &[u8],
        new: &[u8],
    ) -> Result<usize> {
        let set = self.set_for_key(bucket, key);
        let _guard = self.lock_key(bucket, key).await;
        let answers = self.fetch_versions_of(&set, bucket, key).await;
        let old = B64.encode(old);
        let new = B64.encode(new);
        let commits = answers.iter().enumerate().filter_map(|(position, answer)| {
            let stored = answer.as_ref()?.iter().find(|v| v.uid == uid)?;
            let mut record: VersionRecord = meta::decode("version", &stored.record).ok()?;
            let encryption = record.encryption.as_mut()?;
            if encryption.wrapped_key.as_deref() != Some(old.as_str()) {
                return None;
            }
            encryption.wrapped_key = Some(new.clone());
            let op = MetaOp::PutVersion {
                bucket: bucket.to_owned(),
                key: key.to_owned(),
                uid,
                record: meta::encode(&record),
                inline: None,
            };
            let drive = set.drives[position].clone();
            Some(async move { drive.commit(vec![op]).await.is_ok() })
        });
        Ok(join_all(commits).await.into_iter().filter(|ok| *ok).count())
    }
}
