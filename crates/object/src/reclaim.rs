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
//! - an earlier pass, at least [`ORPHAN_CONFIRM_DELAY`] before (on the
//!   monotonic clock), found it an orphan too: a step of the wall clock can
//!   make a blob look old in the moment between its commit and its record's,
//!   never for two passes;
//! - every drive of its set is online and answered every listing, so the
//!   references seen are all there are (records of one object may be missing
//!   on some drives: the union over all drives is what counts);
//! - no record on any drive of the set names it: neither a multipart part of
//!   an upload in progress nor a part of any version, current or not. Parts
//!   are listed before versions, so an upload completed during the pass is
//!   seen either as parts or as the version that took them over;
//! - every record listed could be decoded (one that cannot might name it).
//!
//! Memory: the ids the records name (16 bytes each, one sorted list per
//! bucket), and one fan-out directory's listing at a time. While clients are
//! being served the pass pauses between listings.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::time::{Duration, Instant, SystemTime};

use bulwark_storage::{BlobId, ScanFrom};
use futures::future::join_all;

use crate::meta::{self, PartRecord, VersionRecord};
use crate::read::parse_blob_id;
use crate::set::ErasureSet;
use crate::store::{ObjectStore, all_uploads_on};

/// How old an unreferenced blob must be before it is removed.
pub const ORPHAN_GRACE: Duration = Duration::from_secs(24 * 3600);

/// How long after it was first found an orphan may be removed (by a later pass).
pub const ORPHAN_CONFIRM_DELAY: Duration = Duration::from_secs(600);

/// Least time between two reclamation passes of the scanner (each lists
/// every blob file of every drive).
pub const RECLAIM_INTERVAL: Duration = Duration::from_secs(6 * 3600);

/// Rows per listing call.
const LISTING_BATCH: usize = 1000;

/// Pause after each listing call while clients are being served.
const BUSY_PAUSE: Duration = Duration::from_millis(20);

/// What one reclamation pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ReclaimReport {
    /// Blob files removed (one per drive and blob).
    pub removed: u64,
    /// Orphans found for the first time, or too recently: a later pass removes them.
    pub suspected: u64,
    /// Bucket directories of a set left alone because a drive was offline or
    /// a listing failed.
    pub skipped: u64,
}

/// Orphans found and not yet removed, by (set, drive position, bucket), with
/// when each was first found.
pub(crate) type Suspects = HashMap<(usize, usize, String), HashMap<BlobId, Instant>>;

/// Why the references of a bucket could not all be seen.
struct Incomplete;

impl ObjectStore {
    /// Removes, on every set, the blobs no record names that are older than
    /// `grace` and were already found orphaned by a pass at least
    /// `confirm_after` ago (see the module documentation for the conditions).
    /// `only_bucket` limits the pass to one bucket's directory.
    pub async fn reclaim_orphans(
        &self,
        grace: Duration,
        confirm_after: Duration,
        only_bucket: Option<&str>,
    ) -> ReclaimReport {
        let mut report = ReclaimReport::default();
        let Some(before) = SystemTime::now().checked_sub(grace) else {
            return report;
        };
        for (set_index, set) in self.sets().to_vec().into_iter().enumerate() {
            if !fully_online(&set) {
                tracing::debug!(set_index, "orphan reclamation skips a set with a drive offline");
                report.skipped += 1;
                continue;
            }
            let Some(buckets) = blob_buckets(&set).await else {
                report.skipped += 1;
                continue;
            };
            for bucket in buckets.iter().filter(|b| only_bucket.is_none_or(|only| only == b.as_str())) {
                match self.reclaim_bucket(set_index, &set, bucket, before, confirm_after).await {
                    Ok((removed, suspected)) => {
                        report.removed += removed;
                        report.suspected += suspected;
                    }
                    Err(Incomplete) => report.skipped += 1,
                }
            }
        }
        if report.removed > 0 {
            self.stats.orphans_removed.fetch_add(report.removed, std::sync::atomic::Ordering::Relaxed);
        }
        report
    }

    /// The scanner's reclamation: a pass with the standard grace and
    /// confirmation delay if the last one is [`RECLAIM_INTERVAL`] old (or
    /// there was none), else nothing.
    pub async fn reclaim_if_due(&self) -> Option<ReclaimReport> {
        {
            let mut last = self.stats.last_reclaim.lock().unwrap_or_else(|e| e.into_inner());
            if last.is_some_and(|at| at.elapsed() < RECLAIM_INTERVAL) {
                return None;
            }
            *last = Some(Instant::now());
        }
        let report = self.reclaim_orphans(ORPHAN_GRACE, ORPHAN_CONFIRM_DELAY, None).await;
        tracing::info!(
            removed = report.removed,
            suspected = report.suspected,
            skipped = report.skipped,
            "orphan blob reclamation finished"
        );
        Some(report)
    }

    async fn pause_if_busy(&self) {
        if self.stats.foreground.busy() {
            tokio::time::sleep(BUSY_PAUSE).await;
        }
    }

    /// `(removed, suspected)` in one bucket directory of one set.
    async fn reclaim_bucket(
        &self,
        set_index: usize,
        set: &ErasureSet,
        bucket: &str,
        before: SystemTime,
        confirm_after: Duration,
    ) -> Result<(u64, u64), Incomplete> {
        let referenced = self.references(set, bucket).await?;
        let (mut removed, mut suspected) = (0, 0);
        for (position, drive) in set.drives().iter().enumerate() {
            let mut orphans = Vec::new();
            for fan_out in 0..=u8::MAX {
                let listed = drive.blobs_modified_before(bucket, fan_out, before).await.map_err(|_| Incomplete)?;
                orphans.extend(listed.into_iter().filter(|b| referenced.binary_search(b).is_err()));
                self.pause_if_busy().await;
            }
            // First sightings wait for a later pass; ones seen long enough ago go.
            let now = Instant::now();
            let confirmed: Vec<BlobId> = {
                let mut suspects = self.stats.orphan_suspects.lock().unwrap_or_else(|e| e.into_inner());
                let seen = suspects.entry((set_index, position, bucket.to_owned())).or_default();
                let current: HashSet<BlobId> = orphans.iter().copied().collect();
                seen.retain(|blob, _| current.contains(blob));
                let mut confirmed = Vec::new();
                for blob in orphans {
                    let first = *seen.entry(blob).or_insert(now);
                    if now.duration_since(first) >= confirm_after && first < now {
                        confirmed.push(blob);
                    } else {
                        suspected += 1;
                    }
                }
                confirmed
            };
            if confirmed.is_empty() {
                continue;
            }
            if !fully_online(set) {
                return Err(Incomplete);
            }
            tracing::warn!(
                drive = %drive.info().label, bucket, count = confirmed.len(),
                "removing blobs no record refers to (left by an interrupted write)"
            );
            match drive.delete_blobs(bucket, confirmed.clone()).await {
                Ok(()) => {
                    removed += confirmed.len() as u64;
                    let mut suspects = self.stats.orphan_suspects.lock().unwrap_or_else(|e| e.into_inner());
                    if let Some(seen) = suspects.get_mut(&(set_index, position, bucket.to_owned())) {
                        confirmed.iter().for_each(|blob| {
                            seen.remove(blob);
                        });
                    }
                }
                Err(e) => tracing::warn!(drive = %drive.info().label, bucket, error = %e, "orphan blobs not removed"),
            }
        }
        Ok((removed, suspected))
    }

    /// Every blob id a record on any drive of the set names for `bucket`,
    /// sorted: the parts of every upload in progress first (an upload known
    /// to any drive is asked of every drive), then the parts of every version.
    async fn references(&self, set: &ErasureSet, bucket: &str) -> Result<Vec<BlobId>, Incomplete> {
        let mut uploads = BTreeSet::new();
        for drive in set.drives() {
            let listed = all_uploads_on(drive.as_ref(), bucket).await.map_err(|_| Incomplete)?;
            uploads.extend(listed.into_iter().map(|(_, upload_id)| upload_id));
            self.pause_if_busy().await;
        }
        let mut referenced = Vec::new();
        for upload_id in &uploads {
            for drive in set.drives() {
                for (_, raw) in drive.list_parts(upload_id).await.map_err(|_| Incomplete)? {
                    let record = meta::decode::<PartRecord>("part", &raw).map_err(|_| Incomplete)?;
                    referenced.push(parse_blob_id(&record.blob).ok_or(Incomplete)?);
                }
            }
        }
        for drive in set.drives() {
            let mut from = ScanFrom::Start;
            loop {
                let rows = drive.scan_versions(bucket, "", from, LISTING_BATCH).await.map_err(|_| Incomplete)?;
                for row in &rows {
                    let record = meta::decode::<VersionRecord>("version", &row.record).map_err(|_| Incomplete)?;
                    for part in record.layout.iter().flat_map(|layout| &layout.parts) {
                        if let Some(blob) = &part.blob {
                            referenced.push(parse_blob_id(blob).ok_or(Incomplete)?);
                        }
                    }
                }
                self.pause_if_busy().await;
                match rows.last() {
                    Some(last) if rows.len() == LISTING_BATCH => {
                        from = ScanFrom::AfterVersion(last.key.clone(), last.uid);
                    }
                    _ => break,
                }
            }
        }
        referenced.sort_unstable();
        referenced.dedup();
        Ok(referenced)
    }
}

fn fully_online(set: &ErasureSet) -> bool {
    set.drives().iter().all(|drive| drive.is_online())
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
