//! Heal: bring one version of an object back to full redundancy, and prove it.
//!
//! Contract (DESIGN.md D2, D3): `heal_version` reads every piece of every
//! shard the version should have on every online drive, verifies each against
//! its checksum, rebuilds from the good ones whatever is missing, truncated or
//! corrupt, writes the rebuilt shards (same blob id, renamed over the bad
//! file), restores missing metadata records, and then re-reads every rebuilt
//! shard. Only when that second verification passes does it report `Healed`.
//! A version with fewer than K good pieces in some block is `Unrepairable`
//! and is named in the log — never silently dropped.
//!
//! The same verification pass, without the rebuild, is the scrub.

use std::collections::BTreeMap;
use std::sync::Arc;

use bulwark_erasure::{self as erasure, Geometry};
use bulwark_storage::{BlobReader, MetaOp, VersionUid};
use bytes::Bytes;
use futures::future::join_all;

use crate::healer::Health;
use crate::meta::{self, DataLayout, PartLayout, VersionRecord};
use crate::quorum;
use crate::read::parse_blob_id;
use crate::set::ErasureSet;
use crate::store::ObjectStore;
use crate::{Error, Result};

/// Records with fewer than K holders younger than this may be writes in
/// flight; older ones are leftovers of failed writes and are removed.
const DANGLING_AGE_NS_MIN: i64 = 10 * 60 * 1_000_000_000;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HealOutcome {
    /// Every online drive holds the record and a verified shard.
    Healthy,
    /// Shards and records were rebuilt and verified.
    Healed { shards_rebuilt: usize, records_restored: usize },
    /// Some drives are offline; what could be healed was, the rest waits.
    Deferred { offline: usize },
    /// Fewer than K good pieces remain for some block.
    Unrepairable { detail: String },
    /// The record was garbage (superseded, or a failed write) and was removed.
    Removed,
    /// No drive holds this version.
    NotFound,
}

/// What a verification pass found, per set position.
#[derive(Debug, Default, Clone)]
pub struct VerifyReport {
    /// Positions whose shard (for every part) verified completely.
    pub good: Vec<usize>,
    /// Positions with a missing, truncated or corrupt shard.
    pub bad: Vec<usize>,
    pub bytes_read: u64,
}

enum Source {
    Blob(Box<dyn BlobReader>),
    Inline(Bytes),
}

impl Source {
    async fn read(&self, offset: u64, len: usize) -> Option<Bytes> {
        match self {
            Source::Blob(reader) => reader.read_at(offset, len).await.ok(),
            Source::Inline(bytes) => bytes.get(offset as usize..offset as usize + len).map(Bytes::copy_from_slice),
        }
    }
}

/// Opens the shard of `part` on `position` (blob or inline), if present.
async fn open_source(
    set: &ErasureSet,
    bucket: &str,
    uid: VersionUid,
    layout: &DataLayout,
    part: &PartLayout,
    position: usize,
) -> Option<Source> {
    let drive = &set.drives[position];
    if layout.inline {
        return drive.get_inline(uid).await.ok().flatten().map(Source::Inline);
    }
    let blob = parse_blob_id(part.blob.as_deref()?)?;
    drive.open_blob(bucket, blob).await.ok().map(Source::Blob)
}

fn geometry_of(layout: &DataLayout) -> Result<Geometry> {
    Geometry::new(layout.data, layout.parity, layout.block_size)
        .map_err(|e| Error::Internal(format!("stored geometry invalid: {e}")))
}

/// Reads and verifies every piece of `part` on each of `positions`.
pub(crate) async fn verify_part(
    set: &ErasureSet,
    bucket: &str,
    uid: VersionUid,
    layout: &DataLayout,
    part: &PartLayout,
    positions: &[usize],
) -> Result<VerifyReport> {
    let geometry = geometry_of(layout)?;
    let checks = positions.iter().map(|&position| async move {
        let Some(source) = open_source(set, bucket, uid, layout, part, position).await else {
            return (position, false, 0u64);
        };
        let shard = layout.distribution[position];
        let mut bytes = 0u64;
        if let Source::Blob(reader) = &source
            && reader.len() != geometry.shard_len(part.size)
        {
            return (position, false, 0);
        }
        for block_index in 0..geometry.block_count(part.size) {
            let piece_len = geometry.piece_len(geometry.block_len(part.size, block_index));
            let framed_len = piece_len + erasure::HASH_LEN_BYTES;
            let Some(framed) = source.read(geometry.shard_offset(block_index), framed_len).await else {
                return (position, false, bytes);
            };
            bytes += framed_len as u64;
            if erasure::open_piece(shard, block_index, &framed, piece_len).is_err() {
                return (position, false, bytes);
            }
        }
        (position, true, bytes)
    });
    let mut report = VerifyReport::default();
    for (position, ok, bytes) in join_all(checks).await {
        report.bytes_read += bytes;
        if ok {
            report.good.push(position);
        } else {
            report.bad.push(position);
        }
    }
    Ok(report)
}

/// What [`rebuild_part`] did: each inline target's framed shard bytes (to be
/// committed with the record), and the targets whose drive refused the
/// rebuilt blob (they wait for a later heal; the others are rebuilt).
struct Rebuilt {
    inline: BTreeMap<usize, Vec<u8>>,
    unwritable: Vec<usize>,
}

/// Rebuilds the shards of `part` for `targets` from the other online drives.
/// For inline objects returns each target's framed shard bytes; for blobs
/// writes and commits the blob. Fails only when the pieces cannot be
/// reconstructed; a target that cannot be written is left out, not the rest.
async fn rebuild_part(
    set: &ErasureSet,
    bucket: &str,
    uid: VersionUid,
    layout: &DataLayout,
    part: &PartLayout,
    sources: &[usize],
    targets: &[usize],
) -> std::result::Result<Rebuilt, String> {
    let geometry = geometry_of(layout).map_err(|e| e.to_string())?;
    let n = geometry.total();
    let mut opened = Vec::new();
    for &position in sources {
        if let Some(source) = open_source(set, bucket, uid, layout, part, position).await {
            opened.push((position, source));
        }
    }
    let mut inline_out: BTreeMap<usize, Vec<u8>> = BTreeMap::new();
    let mut unwritable = Vec::new();
    let refused = |target: usize, what: &str, e: &dyn std::fmt::Display| {
        tracing::warn!(drive = %set.drives[target].info().label, error = %e, "heal cannot {what} a rebuilt shard; it waits");
    };
    let mut writers = BTreeMap::new();
    if !layout.inline {
        let blob = part.blob.as_deref().and_then(parse_blob_id).ok_or("record names no blob")?;
        for &target in targets {
            match set.drives[target].create_blob(bucket, blob).await {
                Ok(writer) => {
                    writers.insert(target, writer);
                }
                Err(e) => {
                    refused(target, "create", &e);
                    unwritable.push(target);
                }
            }
        }
    }
    for block_index in 0..geometry.block_count(part.size) {
        let block_len = geometry.block_len(part.size, block_index);
        let piece_len = geometry.piece_len(block_len);
        let offset = geometry.shard_offset(block_index);
        let reads = opened.iter().map(|(position, source)| async move {
            let framed = source.read(offset, piece_len + erasure::HASH_LEN_BYTES).await?;
            let shard = layout.distribution[*position];
            erasure::open_piece(shard, block_index, &framed, piece_len).ok().map(|p| (shard, p.to_vec()))
        });
        let mut pieces: Vec<Option<Vec<u8>>> = vec![None; n];
        for (shard, piece) in join_all(reads).await.into_iter().flatten() {
            pieces[shard] = Some(piece);
        }
        if let Err(e) = erasure::reconstruct(&geometry, &mut pieces) {
            for (_, writer) in writers {
                writer.abort().await;
            }
            return Err(format!("part {} block {block_index}: {e}", part.number));
        }
        for &target in targets {
            let shard = layout.distribution[target];
            let Some(piece) = &pieces[shard] else { continue };
            let mut framed = Vec::with_capacity(piece.len() + erasure::HASH_LEN_BYTES);
            erasure::frame_piece(shard, block_index, piece, &mut framed);
            if let Some(writer) = writers.get_mut(&target) {
                if let Err(e) = writer.write(vec![Bytes::from(framed)]).await {
                    refused(target, "write", &e);
                    unwritable.push(target);
                    if let Some(writer) = writers.remove(&target) {
                        writer.abort().await;
                    }
                }
            } else if layout.inline {
                inline_out.entry(target).or_default().extend_from_slice(&framed);
            }
        }
    }
    for (target, writer) in writers {
        if let Err(e) = writer.commit().await {
            refused(target, "commit", &e);
            unwritable.push(target);
        }
    }
    Ok(Rebuilt { inline: inline_out, unwritable })
}

impl ObjectStore {
    /// Heals one version (see the module docs). Safe to run concurrently
    /// with reads and writes of the same key.
    pub async fn heal_version(&self, bucket: &str, key: &str, uid: VersionUid) -> Result<HealOutcome> {
        // Under the key's lock, like every write and delete: a heal that read
        // the records while a delete was half done would "restore" the records
        // and shards the delete had just removed (and report a version whose
        // blobs vanished under it as unrepairable). With the lock it sees the
        // version whole or gone.
        let _guard = self.lock_key(bucket, key).await;
        let set = self.set_for_key(bucket, key);
        let n = set.total();
        let answers = self.fetch_versions_of(&set, bucket, key).await;
        let visible = quorum::resolve(&answers, set.data());
        let mut holders = vec![false; n];
        let mut votes: BTreeMap<Bytes, usize> = BTreeMap::new();
        for (position, answer) in answers.iter().enumerate() {
            for stored in answer.iter().flatten().filter(|s| s.uid == uid) {
                holders[position] = true;
                *votes.entry(stored.record.clone()).or_default() += 1;
            }
        }
        let Some((raw, _)) = votes.into_iter().max_by_key(|(_, count)| *count) else {
            return Ok(HealOutcome::NotFound);
        };
        // A record most drives hold but nobody can read cannot be healed by
        // trying again: report it instead of retrying it for ever.
        let record: VersionRecord = match meta::decode("version", &raw) {
            Ok(record) => record,
            Err(e) => {
                tracing::error!(%bucket, %key, uid = %hex::encode(uid), error = %e, "UNREPAIRABLE version record");
                return Ok(HealOutcome::Unrepairable { detail: format!("the version record does not decode: {e}") });
            }
        };
        if !visible.iter().any(|v| v.uid == uid) {
            let unanswered = answers.iter().filter(|answer| answer.is_none()).count();
            return self.remove_garbage(&set, bucket, key, uid, &record, &holders, unanswered).await;
        }
        let online = set.online_positions();
        let offline = n - online.len();
        // Drives whose copy of the record is missing or differs from the majority.
        let lacking: Vec<usize> = online
            .iter()
            .copied()
            .filter(|&p| !answers[p].iter().flatten().any(|s| s.uid == uid && s.record == raw))
            .collect();
        let mut shards_rebuilt = 0;
        let mut inline_shards: BTreeMap<usize, Vec<u8>> = BTreeMap::new();
        // Drives that refused a rebuilt shard: the version waits for them.
        let mut unwritable: Vec<usize> = Vec::new();
        if let Some(layout) = record.layout.as_ref().filter(|_| record.size > 0) {
            for part in &layout.parts {
                let report = verify_part(&set, bucket, uid, layout, part, &online).await?;
                if report.bad.is_empty() {
                    continue;
                }
                let rebuilt = rebuild_part(&set, bucket, uid, layout, part, &report.good, &report.bad).await;
                let rebuilt = match rebuilt {
                    Ok(rebuilt) => rebuilt,
                    Err(detail) => {
                        tracing::error!(%bucket, %key, uid = %hex::encode(uid), %detail, "UNREPAIRABLE object version");
                        return Ok(HealOutcome::Unrepairable { detail });
                    }
                };
                let written: Vec<usize> =
                    report.bad.iter().copied().filter(|p| !rebuilt.unwritable.contains(p)).collect();
                // Prove it: every rebuilt blob shard must now verify.
                if !layout.inline {
                    let check = verify_part(&set, bucket, uid, layout, part, &written).await?;
                    if !check.bad.is_empty() {
                        return Ok(HealOutcome::Unrepairable {
                            detail: format!("rebuilt shards on positions {:?} did not verify", check.bad),
                        });
                    }
                }
                shards_rebuilt += written.len();
                for position in rebuilt.unwritable {
                    if !unwritable.contains(&position) {
                        unwritable.push(position);
                    }
                }
                inline_shards.extend(rebuilt.inline);
            }
        }
        let mut targets: Vec<usize> = lacking.clone();
        targets.extend(inline_shards.keys().copied().filter(|p| !lacking.contains(p)));
        let mut records_restored = 0;
        if !targets.is_empty() {
            let commits = targets.iter().map(|&position| {
                let drive = set.drives[position].clone();
                let op = MetaOp::PutVersion {
                    bucket: bucket.to_owned(),
                    key: key.to_owned(),
                    uid,
                    record: raw.clone(),
                    inline: inline_shards.get(&position).map(|b| Bytes::from(b.clone())),
                };
                async move { drive.commit(vec![op]).await.is_ok() }
            });
            records_restored = join_all(commits).await.into_iter().filter(|ok| *ok).count();
            if let Some(layout) = record.layout.as_ref().filter(|l| l.inline && record.size > 0) {
                for part in &layout.parts {
                    let rebuilt: Vec<usize> = inline_shards.keys().copied().collect();
                    let check = verify_part(&set, bucket, uid, layout, part, &rebuilt).await?;
                    if !check.bad.is_empty() {
                        return Ok(HealOutcome::Unrepairable {
                            detail: format!("rebuilt inline shards on positions {:?} did not verify", check.bad),
                        });
                    }
                }
            }
        }
        if offline + unwritable.len() > 0 {
            if shards_rebuilt > 0 {
                tracing::info!(%bucket, %key, uid = %hex::encode(uid), shards_rebuilt, "healed in part");
            }
            return Ok(HealOutcome::Deferred { offline: offline + unwritable.len() });
        }
        if shards_rebuilt == 0 && lacking.is_empty() {
            return Ok(HealOutcome::Healthy);
        }
        tracing::info!(%bucket, %key, uid = %hex::encode(uid), shards_rebuilt, records_restored, "healed");
        Ok(HealOutcome::Healed { shards_rebuilt, records_restored: lacking.len().min(records_restored) })
    }

    /// Removes a version record that is not visible: superseded null
    /// versions at once, failed writes once they are old enough.
    ///
    /// A record below the read quorum is a failed write only if it can never
    /// reach the quorum: the `unanswered` drives (offline, or failing to read)
    /// may hold it. While they might, it is an object that lost drives, not
    /// garbage, and nothing is removed (with three drives of a 4+2 set down,
    /// every object is invisible, and none of them may be deleted).
    #[allow(clippy::too_many_arguments)]
    async fn remove_garbage(
        &self,
        set: &Arc<ErasureSet>,
        bucket: &str,
        key: &str,
        uid: VersionUid,
        record: &VersionRecord,
        holders: &[bool],
        unanswered: usize,
    ) -> Result<HealOutcome> {
        let count = holders.iter().filter(|h| **h).count();
        if count < set.data() {
            if count + unanswered >= set.data() {
                return Ok(HealOutcome::Deferred { offline: unanswered });
            }
            let age_ns = crate::now_ns() - record.mod_time_ns;
            if age_ns < DANGLING_AGE_NS_MIN {
                return Ok(HealOutcome::Deferred { offline: 0 });
            }
        }
        let positions: Vec<usize> = (0..holders.len()).filter(|&p| holders[p]).collect();
        let blobs: Vec<[u8; 16]> = record
            .layout
            .iter()
            .flat_map(|l| l.parts.iter())
            .filter_map(|p| p.blob.as_deref().and_then(parse_blob_id))
            .collect();
        for position in positions {
            let drive = &set.drives[position];
            let op = MetaOp::DeleteVersion { bucket: bucket.to_owned(), key: key.to_owned(), uid };
            if drive.commit(vec![op]).await.is_ok() && !blobs.is_empty() {
                let _ = drive.delete_blobs(bucket, blobs.clone()).await;
            }
        }
        tracing::info!(%bucket, %key, uid = %hex::encode(uid), holders = count, "removed an invisible version record");
        Ok(HealOutcome::Removed)
    }

    /// Verifies every shard of one version on the online drives without
    /// changing anything (scrub); returns what it found and the bytes read.
    pub(crate) async fn verify_version(&self, bucket: &str, key: &str, uid: VersionUid) -> Result<(Health, u64)> {
        let set = self.set_for_key(bucket, key);
        let answers = self.fetch_versions_of(&set, bucket, key).await;
        let versions = quorum::resolve(&answers, set.data());
        let Some(version) = versions.into_iter().find(|v| v.uid == uid) else {
            return Ok((Health::Whole, 0));
        };
        let online = set.online_positions();
        let mut healthy = online.iter().all(|&p| version.holders[p]);
        let mut bytes = 0;
        if let Some(layout) = version.record.layout.as_ref().filter(|_| version.record.size > 0) {
            for part in &layout.parts {
                let report = verify_part(&set, bucket, uid, layout, part, &online).await?;
                bytes += report.bytes_read;
                healthy &= report.bad.is_empty();
            }
        }
        Ok((Health::of_online(healthy, online.len(), set.total()), bytes))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use bulwark_storage::MetaOp;
    use bytes::Bytes;

    use super::HealOutcome;
    use crate::{Error, GetOptions, PutOptions};

    /// A heal waits while the key is locked (as by a delete in progress) and
    /// then finds the version gone: it neither restores what the delete
    /// removed nor calls it unrepairable.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_heal_waits_for_a_delete_in_progress_and_does_not_bring_the_version_back() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (store, drives) = crate::testing::local_store(dir.path()).await;
        let store = Arc::new(store);
        store.make_bucket("bucket").await.expect("bucket");
        let data = Bytes::from(vec![7u8; 3 * 1024 * 1024]);
        let body: crate::ByteStream = Box::pin(futures::stream::once(async move { Ok(data) }));
        store.put_object("bucket", "key", body, Some(3 * 1024 * 1024), PutOptions::default()).await.expect("put");
        let uid = drives[0].get_versions("bucket", "key").await.expect("versions")[0].uid;

        let guard = store.lock_key("bucket", "key").await;
        let healer = store.clone();
        let heal = tokio::spawn(async move { healer.heal_version("bucket", "key", uid).await });
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(!heal.is_finished(), "the heal must wait for the key's lock");
        // What a delete does under the lock: the records go from every drive.
        for drive in &drives {
            let op = MetaOp::DeleteVersion { bucket: "bucket".into(), key: "key".into(), uid };
            drive.commit(vec![op]).await.expect("delete record");
        }
        drop(guard);

        let outcome = heal.await.expect("heal task").expect("heal");
        assert_eq!(outcome, HealOutcome::NotFound);
        for drive in &drives {
            assert!(drive.get_versions("bucket", "key").await.expect("versions").is_empty(), "no record restored");
        }
        assert!(matches!(store.get_object("bucket", "key", &GetOptions::default()).await, Err(Error::NoSuchKey)));
    }
}
