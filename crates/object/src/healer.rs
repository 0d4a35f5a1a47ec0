//! The background side of D2/D3: the heal queue and its worker, the drive
//! monitor, the scanner and the scrub.
//!
//! - Degraded writes are recorded (`heal/<uid>` in each drive's system
//!   table) on the drives that took the write, so the queue survives a
//!   restart; reads that find damage queue the object in memory.
//! - The worker heals queued versions one at a time; a version that cannot
//!   be completed because drives are offline is retried with a delay.
//! - The drive monitor re-checks drives every few seconds; a drive that comes
//!   back is used again and deferred heals are retried.
//! - The scanner walks every version of every bucket and queues what lacks a
//!   record or a full-length shard on some drive (cheap: metadata and file
//!   sizes). The scrub reads and verifies every piece, rate-limited.
//!
//! Every loop is bounded: the queue by `HEAL_QUEUE_MAX`, the scrub by bytes
//! per second, the scanner by its pace.

use std::collections::{HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bulwark_storage::{MetaOp, ScanFrom, VersionUid};
use bytes::Bytes;
use futures::future::join_all;
use serde::{Deserialize, Serialize};

use crate::Result;
use crate::heal::HealOutcome;
use crate::now_ns;
use crate::quorum::{self, Resolved};
use crate::read::{DamageSink, parse_blob_id};
use crate::set::ErasureSet;
use crate::store::ObjectStore;

/// Objects waiting for repair, at most.
const HEAL_QUEUE_MAX: usize = 1_000_000;
/// Versions healed concurrently: heals are I/O-bound (read every piece,
/// write the missing ones, re-read them), so a few in flight keep the drives
/// busy without starving foreground requests.
const HEAL_WORKERS: usize = 4;
/// Delay before a heal that failed (an error, not a deferral) is tried again.
const HEAL_RETRY_DELAY: Duration = Duration::from_secs(5);
/// Deferred heals (drives offline, or refusing a rebuilt shard) wait for a
/// drive to change state, or at most this long.
const PARKED_RETRY_INTERVAL: Duration = Duration::from_secs(300);
/// How often the drive monitor looks at every drive.
const DRIVE_CHECK_INTERVAL: Duration = Duration::from_secs(2);
/// Unrepairable versions remembered for the status report.
const UNREPAIRABLE_LIST_MAX: usize = 1000;
/// Version records fetched per drive per scanner step.
const SCAN_BATCH: usize = 1000;
const SYSTEM_HEAL_PREFIX: &str = "heal/";

/// (bucket, key, version uid) of a version to repair.
type HealEntry = (String, String, VersionUid);

#[derive(Default)]
pub struct HealQueue {
    inner: Mutex<(VecDeque<HealEntry>, HashSet<HealEntry>)>,
    notify: tokio::sync::Notify,
    in_flight: AtomicU64,
    /// Heals waiting for a timed retry (after an error).
    deferred: AtomicU64,
    /// Heals deferred until a drive changes state (or the parked interval).
    /// Retrying them at once would read every piece of every version again
    /// and again for as long as a drive is away. In the order they were
    /// parked, and as a set (parking is O(1)).
    parked: Mutex<(Vec<HealEntry>, HashSet<HealEntry>)>,
    /// Parked or queued versions whose only known shortfall is drives that
    /// were offline (set aside by the scanner or the scrub). When a drive
    /// comes back they are checked by records and shard lengths, not read
    /// piece by piece: a drive back from a reboot does not make heal read
    /// every object. Bit rot is the scrub's to find.
    awaiting_drives: Mutex<HashSet<HealEntry>>,
}

impl HealQueue {
    /// Queues a version found short of full redundancy, to be healed whole.
    pub fn push(&self, bucket: &str, key: &str, uid: VersionUid) {
        let entry = (bucket.to_owned(), key.to_owned(), uid);
        self.awaiting_drives.lock().unwrap_or_else(|e| e.into_inner()).remove(&entry);
        self.enqueue(entry);
    }

    fn enqueue(&self, entry: HealEntry) {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if inner.0.len() < HEAL_QUEUE_MAX && inner.1.insert(entry.clone()) {
            inner.0.push_back(entry);
            self.notify.notify_one();
        }
    }

    /// Parks a version whole on every online drive that lacks only what
    /// offline drives hold.
    fn park_awaiting_drives(&self, entry: HealEntry) {
        if self.park(entry.clone()) {
            self.awaiting_drives.lock().unwrap_or_else(|e| e.into_inner()).insert(entry);
        }
    }

    /// Whether `entry` was only waiting for drives (and forgets it).
    fn take_awaiting_drives(&self, entry: &HealEntry) -> bool {
        self.awaiting_drives.lock().unwrap_or_else(|e| e.into_inner()).remove(entry)
    }

    fn try_pop(&self) -> Option<HealEntry> {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let entry = inner.0.pop_front()?;
        inner.1.remove(&entry);
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        Some(entry)
    }

    async fn pop(&self) -> HealEntry {
        loop {
            let notified = self.notify.notified();
            if let Some(entry) = self.try_pop() {
                return entry;
            }
            notified.await;
        }
    }

    fn done(&self) {
        self.in_flight.fetch_sub(1, Ordering::AcqRel);
    }

    /// Queued plus being healed right now.
    pub fn len(&self) -> usize {
        let queued = self.inner.lock().map(|i| i.0.len()).unwrap_or(0);
        queued + self.in_flight.load(Ordering::Acquire) as usize
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Heals waiting: for a drive, or for a retry.
    pub fn deferred(&self) -> usize {
        let parked = self.parked.lock().unwrap_or_else(|e| e.into_inner()).0.len();
        self.deferred.load(Ordering::Acquire) as usize + parked
    }

    /// Sets a deferred heal aside until [`HealQueue::retry_parked`]; whether
    /// it is parked now (false when full).
    fn park(&self, entry: HealEntry) -> bool {
        let mut parked = self.parked.lock().unwrap_or_else(|e| e.into_inner());
        if parked.1.contains(&entry) {
            return true;
        }
        if parked.0.len() >= HEAL_QUEUE_MAX {
            return false;
        }
        parked.1.insert(entry.clone());
        parked.0.push(entry);
        true
    }

    /// Queues every parked heal again (the drive monitor does when a drive
    /// comes or goes, and every few minutes).
    pub fn retry_parked(&self) {
        let (parked, _) = std::mem::take(&mut *self.parked.lock().unwrap_or_else(|e| e.into_inner()));
        for entry in parked {
            self.enqueue(entry);
        }
    }
}

impl DamageSink for HealQueue {
    fn report(&self, bucket: &str, key: &str, uid: VersionUid, detail: &str) {
        tracing::warn!(%bucket, %key, uid = %hex::encode(uid), %detail, "object below full redundancy; queued for heal");
        self.push(bucket, key, uid);
    }
}

#[derive(Serialize, Deserialize)]
struct PersistedEntry {
    bucket: String,
    key: String,
}

/// Records a degraded write on the drives that have it.
pub(crate) async fn persist_entry(set: &ErasureSet, positions: &[usize], bucket: &str, key: &str, uid: VersionUid) {
    let Ok(value) = serde_json::to_vec(&PersistedEntry { bucket: bucket.to_owned(), key: key.to_owned() }) else {
        return;
    };
    let name = format!("{SYSTEM_HEAL_PREFIX}{}", hex::encode(uid));
    join_all(positions.iter().map(|&p| {
        set.drives[p].commit(vec![MetaOp::PutSystem { name: name.clone(), value: Bytes::from(value.clone()) }])
    }))
    .await;
}

async fn forget_entry(set: &ErasureSet, uid: VersionUid) {
    let name = format!("{SYSTEM_HEAL_PREFIX}{}", hex::encode(uid));
    let name = &name;
    join_all(set.online_positions().into_iter().map(|p| async move {
        let drive = &set.drives[p];
        if drive.get_system(name).await.ok().flatten().is_some() {
            let _ = drive.commit(vec![MetaOp::DeleteSystem { name: name.clone() }]).await;
        }
    }))
    .await;
}

/// Progress and findings of one scanner or scrub pass.
#[derive(Debug, Clone, Default, Serialize)]
pub struct PassReport {
    pub started_ns: i64,
    pub finished_ns: Option<i64>,
    pub versions_checked: u64,
    pub bytes_checked: u64,
    pub problems_found: u64,
}

/// Counters for status and metrics.
#[derive(Default)]
pub struct HealStats {
    pub healed: AtomicU64,
    pub shards_rebuilt: AtomicU64,
    pub records_restored: AtomicU64,
    pub removed: AtomicU64,
    /// Blob files no record named, removed by orphan reclamation.
    pub orphans_removed: AtomicU64,
    /// When the scanner last looked for orphan blobs.
    pub last_reclaim: Mutex<Option<Instant>>,
    /// Orphan blobs found and not yet removed (see `reclaim`).
    pub(crate) orphan_suspects: Mutex<crate::reclaim::Suspects>,
    pub unrepairable: Mutex<Vec<String>>,
    pub last_scan: Mutex<Option<PassReport>>,
    pub last_scrub: Mutex<Option<PassReport>>,
    pub scan_running: AtomicBool,
    pub scrub_running: AtomicBool,
    pub current: Mutex<Option<PassReport>>,
    /// Client requests being served, and when the last one began.
    pub foreground: Foreground,
}

/// Client requests being served right now, and when the last one began: the
/// scrub slows down while clients are served (see [`Pacer`]).
#[derive(Default)]
pub struct Foreground {
    in_flight: AtomicU64,
    last_started_ns: AtomicU64,
}

/// A client request in progress (see [`ObjectStore::foreground_request`]).
pub struct ForegroundRequest<'a>(&'a Foreground);

impl Drop for ForegroundRequest<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Foreground {
    fn begin(&self) -> ForegroundRequest<'_> {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        self.last_started_ns.store(u64::try_from(now_ns()).unwrap_or(0), Ordering::Release);
        ForegroundRequest(self)
    }

    /// Whether a request is in progress or one began within [`BUSY_AFTER_REQUEST`]
    /// (a GET's body is still being sent after its handler returns, and a
    /// client's next request follows closely).
    pub(crate) fn busy(&self) -> bool {
        let last = self.last_started_ns.load(Ordering::Acquire);
        self.in_flight.load(Ordering::Acquire) > 0
            || (last > 0
                && u64::try_from(now_ns()).unwrap_or(0).saturating_sub(last) < BUSY_AFTER_REQUEST.as_nanos() as u64)
    }
}

/// What a scan or scrub found of one version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Health {
    /// A record and a good shard on every drive.
    Whole,
    /// Something an online drive lacks (a record, a shard, a good block):
    /// heal can repair it now.
    Lacking,
    /// Whole on every online drive; only drives that are offline lack it.
    AwaitingDrives,
}

impl Health {
    /// The health of a version whose pieces on the `online` drives are
    /// `good`, out of `total`.
    pub(crate) fn of_online(good: bool, online: usize, total: usize) -> Health {
        match (good, online == total) {
            (false, _) => Health::Lacking,
            (true, true) => Health::Whole,
            (true, false) => Health::AwaitingDrives,
        }
    }
}

/// The periodic scanner's pace, as the scrub's: every version it checks
/// (records and shard sizes, no data) counts [`SCRUB_VERSION_COST_MIN`], so
/// it checks up to 4,096 versions a second, 512 while clients are served.
/// A pass asked for by an operator, or after a drive was replaced, runs
/// unpaced.
const SCAN_PACE_BYTES: u64 = 256 * 1024 * 1024;
/// How long after a client request began the server still counts as busy.
const BUSY_AFTER_REQUEST: Duration = Duration::from_secs(1);
/// What checking one version costs the scrub's pace at least, in bytes:
/// reading its records and opening its pieces on every drive costs CPU and
/// disk seeks whatever its size, so small objects are paced too.
const SCRUB_VERSION_COST_MIN: u64 = 64 * 1024;
/// While clients are being served the scrub reads at this fraction of its
/// rate: it shares the disks and CPU with them (as Ceph's scrub sleeps and
/// MinIO's scanner slows under load).
const SCRUB_FOREGROUND_SLOWDOWN: u64 = 8;
/// How far behind its pace the scrub may fall and then catch up at full
/// speed; beyond it, the time lost is forgiven rather than made up in a burst.
const SCRUB_CATCH_UP_MAX: Duration = Duration::from_secs(1);

/// The scrub's pace: every version is charged its bytes (at least
/// [`SCRUB_VERSION_COST_MIN`]), [`SCRUB_FOREGROUND_SLOWDOWN`] times that
/// while clients are served, at `rate_bytes` per second.
pub(crate) struct Pacer {
    rate_bytes: u64,
    started: Instant,
    /// The time since `started` at which the work charged so far is due.
    due: Duration,
}

impl Pacer {
    pub(crate) fn new(rate_bytes: u64, started: Instant) -> Pacer {
        Pacer { rate_bytes, started, due: Duration::ZERO }
    }

    /// Charges one version of `bytes` checked at `now`; returns how long to
    /// wait before the next (zero when the rate is unlimited or the pass is
    /// behind its pace).
    pub(crate) fn charge(&mut self, bytes: u64, busy: bool, now: Instant) -> Duration {
        if self.rate_bytes == 0 {
            return Duration::ZERO;
        }
        let cost = bytes.max(SCRUB_VERSION_COST_MIN) * if busy { SCRUB_FOREGROUND_SLOWDOWN } else { 1 };
        let elapsed = now.saturating_duration_since(self.started);
        self.due = self.due.max(elapsed.saturating_sub(SCRUB_CATCH_UP_MAX))
            + Duration::from_secs_f64(cost as f64 / self.rate_bytes as f64);
        self.due.saturating_sub(elapsed)
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct DriveStatus {
    pub set: usize,
    pub position: usize,
    pub label: String,
    pub facility: String,
    pub online: bool,
}

/// The admin status report.
#[derive(Debug, Clone, Serialize)]
pub struct Status {
    pub drives: Vec<DriveStatus>,
    /// Versions queued for healing or being healed now.
    pub heal_queue: usize,
    /// Versions whose heal waits for offline drives.
    pub heal_deferred: usize,
    pub healed: u64,
    pub shards_rebuilt: u64,
    pub records_restored: u64,
    pub garbage_removed: u64,
    pub orphan_blobs_removed: u64,
    pub unrepairable: Vec<String>,
    pub scan_running: bool,
    pub scrub_running: bool,
    pub last_scan: Option<PassReport>,
    pub last_scrub: Option<PassReport>,
    pub current_pass: Option<PassReport>,
}

/// Pace of the background work.
#[derive(Debug, Clone)]
pub struct HealerConfig {
    /// Time between the ends of two scanner passes.
    pub scan_interval: Duration,
    /// Time between the ends of two scrub passes.
    pub scrub_interval: Duration,
    /// Scrub read rate, bytes per second (0 = unlimited).
    pub scrub_rate_bytes: u64,
    /// Whether the periodic scrub runs at all.
    pub scrub_enabled: bool,
}

impl Default for HealerConfig {
    fn default() -> Self {
        HealerConfig {
            scan_interval: Duration::from_secs(15 * 60),
            scrub_interval: Duration::from_secs(24 * 3600),
            scrub_rate_bytes: 64 * 1024 * 1024,
            scrub_enabled: true,
        }
    }
}

impl ObjectStore {
    /// Starts the heal worker, the drive monitor, the scanner and the scrub.
    pub fn start_background(self: &Arc<Self>, config: HealerConfig) {
        let store = self.clone();
        tokio::spawn(async move { store.load_persisted_entries().await });
        for _ in 0..HEAL_WORKERS {
            let store = self.clone();
            tokio::spawn(async move { store.heal_worker().await });
        }
        let store = self.clone();
        tokio::spawn(async move { store.drive_monitor().await });
        let store = self.clone();
        let interval = config.scan_interval;
        tokio::spawn(async move {
            loop {
                store.scan_pass(false, SCAN_PACE_BYTES, None).await;
                // Blob files left by interrupted writes (every few hours: it
                // lists every blob file of every drive).
                store.reclaim_if_due().await;
                tokio::time::sleep(interval).await;
            }
        });
        if config.scrub_enabled {
            let store = self.clone();
            tokio::spawn(async move {
                // Let start-up heal first; then scrub at the configured rate.
                tokio::time::sleep(Duration::from_secs(60)).await;
                loop {
                    store.scan_pass(true, config.scrub_rate_bytes, None).await;
                    tokio::time::sleep(config.scrub_interval).await;
                }
            });
        }
    }

    /// Marks a client request in progress until the guard is dropped: the
    /// scrub slows down while clients are served.
    pub fn foreground_request(&self) -> ForegroundRequest<'_> {
        self.stats.foreground.begin()
    }

    pub fn heal_stats(&self) -> &HealStats {
        &self.stats
    }

    /// Everything an operator needs to know about redundancy right now.
    pub fn status(&self) -> Status {
        let mut drives = Vec::new();
        for (set_index, set) in self.sets().iter().enumerate() {
            for (position, drive) in set.drives().iter().enumerate() {
                drives.push(DriveStatus {
                    set: set_index,
                    position,
                    label: drive.info().label.clone(),
                    facility: drive.info().facility.clone(),
                    online: drive.is_online(),
                });
            }
        }
        let lock = |m: &Mutex<Option<PassReport>>| m.lock().unwrap_or_else(|e| e.into_inner()).clone();
        Status {
            drives,
            heal_queue: self.heal.len(),
            heal_deferred: self.heal.deferred(),
            healed: self.stats.healed.load(Ordering::Relaxed),
            shards_rebuilt: self.stats.shards_rebuilt.load(Ordering::Relaxed),
            records_restored: self.stats.records_restored.load(Ordering::Relaxed),
            garbage_removed: self.stats.removed.load(Ordering::Relaxed),
            orphan_blobs_removed: self.stats.orphans_removed.load(Ordering::Relaxed),
            unrepairable: self.stats.unrepairable.lock().unwrap_or_else(|e| e.into_inner()).clone(),
            scan_running: self.stats.scan_running.load(Ordering::Relaxed),
            scrub_running: self.stats.scrub_running.load(Ordering::Relaxed),
            last_scan: lock(&self.stats.last_scan),
            last_scrub: lock(&self.stats.last_scrub),
            current_pass: lock(&self.stats.current),
        }
    }

    /// Waits until nothing is queued or being healed (deferred heals waiting
    /// for offline drives excepted), or `timeout` passes. Returns whether idle.
    pub async fn wait_heal_idle(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            let offline = self.sets().iter().any(|s| s.online_positions().len() < s.total());
            if self.heal.is_empty() && (self.heal.deferred() == 0 || offline) {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn load_persisted_entries(&self) {
        for set in self.sets() {
            for position in set.online_positions() {
                let Ok(entries) = set.drives[position].list_system(SYSTEM_HEAL_PREFIX).await else { continue };
                for (name, value) in entries {
                    let uid = name.strip_prefix(SYSTEM_HEAL_PREFIX).and_then(parse_blob_id);
                    let entry: Option<PersistedEntry> = serde_json::from_slice(&value).ok();
                    if let (Some(uid), Some(entry)) = (uid, entry) {
                        self.heal.push(&entry.bucket, &entry.key, uid);
                    }
                }
            }
        }
    }

    async fn heal_worker(self: Arc<Self>) {
        loop {
            let entry = self.heal.pop().await;
            // Filed by heal_entry (counted, forgotten, parked or retried).
            let _ = self.heal_entry(entry).await;
            self.heal.done();
        }
    }

    /// Heals the next queued version, if any (what the heal workers do, for
    /// tests that run no background work); returns the outcome.
    pub async fn heal_next_queued(&self) -> Option<Result<HealOutcome>> {
        let entry = self.heal.try_pop()?;
        let outcome = self.heal_entry(entry).await;
        self.heal.done();
        Some(outcome)
    }

    /// Heals one version taken from the queue and files the outcome: counted,
    /// forgotten, parked, or retried later.
    async fn heal_entry(&self, entry: HealEntry) -> Result<HealOutcome> {
        let outcome = if self.heal.take_awaiting_drives(&entry) {
            self.recheck_awaiting_drives(&entry).await
        } else {
            self.heal_version(&entry.0, &entry.1, entry.2).await
        };
        let (bucket, key, uid) = entry;
        let set = self.set_for_key(&bucket, &key);
        match &outcome {
            Ok(HealOutcome::Healed { shards_rebuilt, records_restored }) => {
                self.stats.healed.fetch_add(1, Ordering::Relaxed);
                self.stats.shards_rebuilt.fetch_add(*shards_rebuilt as u64, Ordering::Relaxed);
                self.stats.records_restored.fetch_add(*records_restored as u64, Ordering::Relaxed);
                forget_entry(&set, uid).await;
            }
            Ok(HealOutcome::Healthy | HealOutcome::NotFound) => forget_entry(&set, uid).await,
            Ok(HealOutcome::Removed) => {
                self.stats.removed.fetch_add(1, Ordering::Relaxed);
                forget_entry(&set, uid).await;
            }
            Ok(HealOutcome::Unrepairable { detail }) => {
                let mut list = self.stats.unrepairable.lock().unwrap_or_else(|e| e.into_inner());
                if list.len() < UNREPAIRABLE_LIST_MAX {
                    list.push(format!("{bucket}/{key} (version {}): {detail}", hex::encode(uid)));
                }
            }
            Ok(HealOutcome::Deferred { .. }) => {
                self.heal.park((bucket, key, uid));
            }
            Err(_) => {
                let heal = self.heal.clone();
                heal.deferred.fetch_add(1, Ordering::AcqRel);
                tokio::spawn(async move {
                    tokio::time::sleep(HEAL_RETRY_DELAY).await;
                    heal.push(&bucket, &key, uid);
                    heal.deferred.fetch_sub(1, Ordering::AcqRel);
                });
            }
        }
        outcome
    }

    /// A version that lacked only what offline drives hold, back in the queue
    /// because a drive changed state: whole if every drive now holds its
    /// record and full-length shards (nothing is read piece by piece), still
    /// waiting if drives are still away, else healed.
    async fn recheck_awaiting_drives(&self, entry: &HealEntry) -> Result<HealOutcome> {
        let (bucket, key, uid) = entry;
        let set = self.set_for_key(bucket, key);
        let answers = self.fetch_versions_of(&set, bucket, key).await;
        if let Some(version) = quorum::resolve(&answers, set.data()).into_iter().find(|v| v.uid == *uid) {
            match self.quick_check(&set, bucket, &version).await {
                Health::Whole => return Ok(HealOutcome::Healthy),
                Health::AwaitingDrives => {
                    self.heal.park_awaiting_drives(entry.clone());
                    return Ok(HealOutcome::Deferred { offline: set.total() - set.online_positions().len() });
                }
                Health::Lacking => {}
            }
        }
        self.heal_version(bucket, key, *uid).await
    }

    async fn drive_monitor(self: Arc<Self>) {
        let mut parked_since = Instant::now();
        loop {
            tokio::time::sleep(DRIVE_CHECK_INTERVAL).await;
            let mut changed = false;
            for set in self.sets() {
                for drive in set.drives() {
                    let was = drive.is_online();
                    let now = drive.check_health().await;
                    if was != now {
                        tracing::warn!(drive = %drive.info().label, online = now, "drive state changed");
                        changed = true;
                    }
                }
            }
            // Deferred heals go again when a drive comes or goes, and now
            // and then (a drive that refused a shard may have room again).
            if changed || parked_since.elapsed() >= PARKED_RETRY_INTERVAL {
                self.heal.retry_parked();
                parked_since = Instant::now();
            }
        }
    }

    /// One pass over every version of every bucket (or one bucket). With
    /// `verify`, every piece is read and checked (scrub); otherwise only
    /// records and shard sizes are checked. Paced by [`Pacer`] at `rate_bytes`
    /// per second (0: unpaced). Whatever is short of full redundancy is
    /// queued for healing, or set aside while only offline drives lack it.
    pub async fn scan_pass(&self, verify: bool, rate_bytes: u64, only_bucket: Option<&str>) -> PassReport {
        let running = if verify { &self.stats.scrub_running } else { &self.stats.scan_running };
        running.store(true, Ordering::Release);
        let mut report = PassReport { started_ns: now_ns(), ..PassReport::default() };
        let mut pacer = Pacer::new(rate_bytes, Instant::now());
        // A replaced drive gets its bucket records back first.
        self.repair_bucket_records().await;
        let buckets: Vec<String> = self.list_buckets().into_iter().map(|b| b.name).collect();
        for bucket in buckets.iter().filter(|b| only_bucket.is_none_or(|only| only == b.as_str())) {
            for set in self.sets().to_vec() {
                self.scan_set(&set, bucket, verify, &mut pacer, &mut report).await;
            }
        }
        report.finished_ns = Some(now_ns());
        let slot = if verify { &self.stats.last_scrub } else { &self.stats.last_scan };
        *slot.lock().unwrap_or_else(|e| e.into_inner()) = Some(report.clone());
        running.store(false, Ordering::Release);
        tracing::info!(
            verify,
            versions = report.versions_checked,
            bytes = report.bytes_checked,
            problems = report.problems_found,
            "scan pass finished"
        );
        report
    }

    async fn scan_set(
        &self,
        set: &Arc<ErasureSet>,
        bucket: &str,
        verify: bool,
        pacer: &mut Pacer,
        report: &mut PassReport,
    ) {
        // Walk the keys of this set through its online drives; a drive that
        // is blank (replaced) simply contributes nothing.
        let mut from = ScanFrom::Start;
        loop {
            let scans = set.online_positions().into_iter().map(|p| {
                let drive = set.drives[p].clone();
                let from = from.clone();
                async move { drive.scan_versions(bucket, "", from, SCAN_BATCH).await.unwrap_or_default() }
            });
            let mut keys: Vec<String> = Vec::new();
            // Keys up to the smallest last key of a full batch are complete on
            // every drive; later ones are taken up in the next round.
            let mut bound: Option<String> = None;
            for rows in join_all(scans).await {
                if rows.len() == SCAN_BATCH
                    && let Some(last) = rows.last()
                    && bound.as_ref().is_none_or(|b| last.key < *b)
                {
                    bound = Some(last.key.clone());
                }
                keys.extend(rows.into_iter().map(|r| r.key));
            }
            keys.sort();
            keys.dedup();
            if let Some(bound) = &bound {
                keys.retain(|k| k <= bound);
            }
            if keys.is_empty() {
                break;
            }
            for key in &keys {
                let answers = self.fetch_versions_of(set, bucket, key).await;
                for version in quorum::resolve(&answers, set.data()) {
                    report.versions_checked += 1;
                    let (health, bytes) = if verify {
                        self.verify_version(bucket, key, version.uid).await.unwrap_or((Health::Lacking, 0))
                    } else {
                        (self.quick_check(set, bucket, &version).await, 0)
                    };
                    report.bytes_checked += bytes;
                    match health {
                        Health::Whole => {}
                        Health::Lacking => {
                            report.problems_found += 1;
                            self.heal.push(bucket, key, version.uid);
                        }
                        // Nothing to repair until a drive comes back: set it
                        // aside with the heals that wait for one, rather than
                        // have heal read every piece of it again each pass.
                        Health::AwaitingDrives => {
                            report.problems_found += 1;
                            self.heal.park_awaiting_drives((bucket.to_owned(), key.clone(), version.uid));
                        }
                    }
                    *self.stats.current.lock().unwrap_or_else(|e| e.into_inner()) = Some(report.clone());
                    let wait = pacer.charge(bytes, self.stats.foreground.busy(), Instant::now());
                    if !wait.is_zero() {
                        tokio::time::sleep(wait).await;
                    }
                }
                // Stale minority records (failed writes, superseded nulls) are
                // cleaned by healing them: queue every uid no quorum shows.
                let visible: HashSet<VersionUid> =
                    quorum::resolve(&answers, set.data()).into_iter().map(|v| v.uid).collect();
                for stored in answers.iter().flatten().flatten() {
                    if !visible.contains(&stored.uid) {
                        self.heal.push(bucket, key, stored.uid);
                    }
                }
            }
            match bound {
                Some(bound) => from = ScanFrom::AfterKey(bound),
                None => break,
            }
        }
    }

    /// Metadata on every online drive and every blob shard there at full
    /// length; whole if every drive is online too.
    async fn quick_check(&self, set: &ErasureSet, bucket: &str, version: &Resolved) -> Health {
        let online = set.online_positions();
        let waiting = Health::of_online(true, online.len(), set.total());
        if online.iter().any(|&p| !version.holders[p]) {
            return Health::Lacking;
        }
        let Some(layout) = version.record.layout.as_ref().filter(|l| !l.inline && version.record.size > 0) else {
            return waiting;
        };
        let Ok(geometry) = bulwark_erasure::Geometry::new(layout.data, layout.parity, layout.block_size) else {
            return Health::Lacking;
        };
        for part in &layout.parts {
            let Some(blob) = part.blob.as_deref().and_then(parse_blob_id) else { return Health::Lacking };
            let expected = geometry.shard_len(part.size);
            let checks = online.iter().map(|&p| {
                let drive = set.drives[p].clone();
                async move {
                    match drive.open_blob(bucket, blob).await {
                        Ok(reader) => reader.len() == expected,
                        Err(_) => false,
                    }
                }
            });
            if join_all(checks).await.into_iter().any(|ok| !ok) {
                return Health::Lacking;
            }
        }
        waiting
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_scrub_pays_each_version_its_bytes_and_small_ones_a_minimum() {
        let start = Instant::now();
        let mut pacer = Pacer::new(1 << 20, start);
        // 1 MiB at 1 MiB/s: due one second after the start.
        assert_eq!(pacer.charge(1 << 20, false, start), Duration::from_secs(1));
        // A 4 KiB version costs the minimum: 64 KiB = 1/16 s more.
        assert_eq!(pacer.charge(4096, false, start + Duration::from_secs(1)), Duration::from_micros(62_500));
        // Unlimited: never waits.
        assert_eq!(Pacer::new(0, start).charge(1 << 30, true, start), Duration::ZERO);
    }

    #[test]
    fn the_scrub_slows_down_while_clients_are_served_and_never_bursts_to_catch_up() {
        let start = Instant::now();
        let mut pacer = Pacer::new(1 << 20, start);
        assert_eq!(pacer.charge(1 << 20, true, start), Duration::from_secs(SCRUB_FOREGROUND_SLOWDOWN));
        // A pass that fell a minute behind (slow disks) is forgiven all but
        // SCRUB_CATCH_UP_MAX of it: it waits again after one more second's worth.
        let mut late = Pacer::new(1 << 20, start);
        let now = start + Duration::from_secs(60);
        assert_eq!(late.charge(1 << 20, false, now), Duration::ZERO, "within the catch-up allowance");
        assert_eq!(late.charge(1 << 20, false, now), Duration::from_secs(1));
    }

    #[test]
    fn the_server_is_busy_while_a_request_is_served_and_a_moment_after() {
        let foreground = Foreground::default();
        assert!(!foreground.busy(), "no request yet");
        let request = foreground.begin();
        assert!(foreground.busy());
        drop(request);
        assert!(foreground.busy(), "a request began less than a second ago");
        foreground.last_started_ns.store(1, Ordering::Release);
        assert!(!foreground.busy(), "the last request began long ago and none is in flight");
    }

    #[test]
    fn parked_heals_wait_outside_the_queue_until_unparked_and_count_as_deferred() {
        let queue = HealQueue::default();
        queue.park(("b".into(), "k".into(), [1; 16]));
        queue.park(("b".into(), "k".into(), [1; 16]));
        queue.park(("b".into(), "other".into(), [2; 16]));
        assert!(queue.is_empty(), "a parked heal is not retried by the workers");
        assert_eq!(queue.deferred(), 2, "each parked heal once");
        queue.retry_parked();
        assert_eq!((queue.len(), queue.deferred()), (2, 0), "back in the queue");
        assert_eq!(queue.try_pop().map(|(_, key, _)| key).as_deref(), Some("k"));
    }
}
