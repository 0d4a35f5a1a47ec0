//! Orphan reclamation: blob files that no record refers to.
//!
//! A write commits its blobs (temp file, fsync, rename) and then its
//! records. A crash, or a drive failing between the two, leaves blobs that no
//! version or multipart part names; nothing reads them and, without this
//! pass, nothing would ever free their space. DESIGN §4: a crash leaves the
//! old state or the new one, and leftovers are removed.
//!
//! Deleting a blob that something still needs would lose a shard, so a blob
//! is removed only when all of these hold:
//! - it was last modified more than [`ORPHAN_GRACE`] ago (a write commits its
//!   records right after its blobs; the grace is far beyond any such gap);
//! - every drive of its set is online and answered every listing, so the
//!   references seen are all there are (records of one object may be missing
//!   on some drives: the union over all drives is what counts);
//! - no record on any drive of the set names it: neither a multipart part of
//!   an upload in progress nor a part of any version, current or not. Parts
//!   are listed before versions, so an upload completed during the pass is
//!   seen either as parts or as the version that took them over;
//! - every record listed could be decoded (one that cannot might name it).

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::time::{Duration, SystemTime};

use bulwark_storage::{BlobId, Drive, ScanFrom};
use futures::future::join_all;

use crate::meta::{self, PartRecord, VersionRecord};
use crate::read::parse_blob_id;
use crate::set::ErasureSet;
use crate::store::ObjectStore;

/// How old an unreferenced blob must be before it is removed.
pub const ORPHAN_GRACE: Duration = Duration::from_secs(24 * 3600);

/// Least time between two reclamation passes of the scanner (each lists
/// every blob file of every drive).
pub const RECLAIM_INTERVAL: Duration = Duration::from_secs(6 * 3600);

/// Rows per listing call.
const LISTING_BATCH: usize = 1000;

/// What one reclamation pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ReclaimReport {
    /// Blob files removed (one per drive and blob).
    pub removed: u64,
    /// Bucket directories of a set left alone because a drive was offline or
    /// a listing failed.
    pub skipped: u64,
}

/// Why the references of a bucket could not all be seen.
struct Incomplete;

impl ObjectStore {
    /// Removes, on every set, the blobs no record names that are older than
    /// `grace` (see the module documentation for the conditions). `only_bucket`
    /// limits the pass to one bucket's directory.
    pub async fn reclaim_orphans(&self, grace: Duration, only_bucket: Option<&str>) -> ReclaimReport {
        let mut report = ReclaimReport::default();
        let Some(before) = SystemTime::now().checked_sub(grace) else {
            return report;
        };
        for set in self.sets().to_vec() {
            if set.online_positions().len() < set.total() {
                tracing::debug!("orphan reclamation skips a set with a drive offline");
                report.skipped += 1;
                continue;
            }
            let Some(buckets) = blob_buckets(&set).await else {
                report.skipped += 1;
                continue;
            };
            for bucket in buckets.iter().filter(|b| only_bucket.is_none_or(|only| only == b.as_str())) {
                match reclaim_bucket(&set, bucket, before).await {
                    Ok(removed) => report.removed += removed,
                    Err(Incomplete) => report.skipped += 1,
                }
            }
        }
        if report.removed > 0 {
            self.heal_stats().orphans_removed.fetch_add(report.removed, std::sync::atomic::Ordering::Relaxed);
        }
        report
    }
}

/// Every bucket directory on any drive of the set; `None` if a drive failed to list.
async fn blob_buckets(set: &ErasureSet) -> Option<BTreeSet<String>> {
    let listed = join_all(set.drives().iter().map(|drive| drive.blob_buckets())).await;
    let mut buckets = BTreeSet::new();
    for answer in listed {
        buckets.extend(answer.ok()?);
    }
    Some(buckets)
}

async fn reclaim_bucket(set: &ErasureSet, bucket: &str, before: SystemTime) -> Result<u64, Incomplete> {
    // Candidates first, references after: a blob committed after its
    // listing is too young to be a candidate anyway.
    let listed = join_all(set.drives().iter().map(|drive| drive.blobs_modified_before(bucket, before))).await;
    let mut candidates: BTreeMap<usize, Vec<BlobId>> = BTreeMap::new();
    for (position, answer) in listed.into_iter().enumerate() {
        let blobs = answer.map_err(|_| Incomplete)?;
        if !blobs.is_empty() {
            candidates.insert(position, blobs);
        }
    }
    if candidates.is_empty() {
        return Ok(0);
    }
    let mut referenced = HashSet::new();
    for drive in set.drives() {
        part_references(drive.as_ref(), bucket, &mut referenced).await?;
    }
    for drive in set.drives() {
        version_references(drive.as_ref(), bucket, &mut referenced).await?;
    }
    let mut removed = 0;
    for (position, blobs) in candidates {
        let orphans: Vec<BlobId> = blobs.into_iter().filter(|b| !referenced.contains(b)).collect();
        if orphans.is_empty() {
            continue;
        }
        let drive = &set.drives()[position];
        tracing::warn!(
            drive = %drive.info().label, bucket, count = orphans.len(),
            "removing blobs no record refers to (left by an interrupted write)"
        );
        match drive.delete_blobs(bucket, orphans.clone()).await {
            Ok(()) => removed += orphans.len() as u64,
            Err(e) => tracing::warn!(drive = %drive.info().label, bucket, error = %e, "orphan blobs not removed"),
        }
    }
    Ok(removed)
}

/// Blobs of every part of every multipart upload of `bucket` on `drive`.
async fn part_references(drive: &dyn Drive, bucket: &str, referenced: &mut HashSet<BlobId>) -> Result<(), Incomplete> {
    let mut after = None;
    loop {
        let uploads = drive.list_uploads(bucket, "", after.clone(), LISTING_BATCH).await.map_err(|_| Incomplete)?;
        for (_, upload_id, _) in &uploads {
            for (_, raw) in drive.list_parts(upload_id).await.map_err(|_| Incomplete)? {
                let record = meta::decode::<PartRecord>("part", &raw).map_err(|_| Incomplete)?;
                referenced.insert(parse_blob_id(&record.blob).ok_or(Incomplete)?);
            }
        }
        match uploads.last() {
            Some((key, upload_id, _)) if uploads.len() == LISTING_BATCH => {
                after = Some((key.clone(), upload_id.clone()));
            }
            _ => return Ok(()),
        }
    }
}

/// Blobs of every part of every version of `bucket` on `drive`.
async fn version_references(
    drive: &dyn Drive,
    bucket: &str,
    referenced: &mut HashSet<BlobId>,
) -> Result<(), Incomplete> {
    let mut from = ScanFrom::Start;
    loop {
        let rows = drive.scan_versions(bucket, "", from, LISTING_BATCH).await.map_err(|_| Incomplete)?;
        for row in &rows {
            let record = meta::decode::<VersionRecord>("version", &row.record).map_err(|_| Incomplete)?;
            for part in record.layout.iter().flat_map(|layout| &layout.parts) {
                if let Some(blob) = &part.blob {
                    referenced.insert(parse_blob_id(blob).ok_or(Incomplete)?);
                }
            }
        }
        match rows.last() {
            Some(last) if rows.len() == LISTING_BATCH => from = ScanFrom::AfterVersion(last.key.clone(), last.uid),
            _ => return Ok(()),
        }
    }
}
