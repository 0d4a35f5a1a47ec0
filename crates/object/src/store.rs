//! The object store API used by the protocol layer.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex, RwLock};

use bulwark_crypto::Md5;
use bulwark_erasure::Geometry;
use bulwark_storage::{Drive, MetaOp, ScanFrom, StoredVersion, VersionUid};
use bytes::Bytes;
use futures::future::join_all;

use crate::checksum::{self, ChecksumAlgorithm, ChecksumType, StoredChecksum};
use crate::healer::HealQueue;
use crate::meta::{self, BucketRecord, DataLayout, PartLayout, PartRecord, UploadRecord, VersionRecord};
use crate::quorum::{self, Resolved};
use crate::read::{self, DamageSink, ReadContext};
use crate::set::ErasureSet;
use crate::write::{self, BlobWrite, BodyReader, StoredSource};
use crate::{
    BucketInfo, ByteRange, ByteStream, ContentHeaders, DeleteOutcome, Error, INLINE_SIZE_BYTES_MAX, LIST_KEYS_MAX,
    ListEntry, ListPage, ListParams, OBJECT_SIZE_BYTES_MAX, ObjectInfo, PART_NUMBER_MAX, PART_SIZE_BYTES_MIN, PartInfo,
    PartSummary, PutOptions, PutOutcome, Redundancy, Result, UploadInfo, UploadsPage, VersionEntry, VersionListParams,
    Versioning, VersionsPage, WriteCondition, now_ns,
};

/// Version records fetched per drive per listing round trip.
const LIST_BATCH: usize = 1000;

/// A requested byte range before it is resolved against the object size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RangeSpec {
    /// `bytes=first-` or `bytes=first-last`.
    FromTo { first: u64, last: Option<u64> },
    /// `bytes=-length`.
    Suffix { length: u64 },
}

/// HTTP conditional request headers (already parsed).
#[derive(Debug, Clone, Default)]
pub struct ReadConditions {
    pub if_match: Option<String>,
    pub if_none_match: Option<String>,
    pub if_modified_since_ns: Option<i64>,
    pub if_unmodified_since_ns: Option<i64>,
    /// For copy sources every failed condition is 412, never 304.
    pub copy_source: bool,
}

#[derive(Debug, Clone, Default)]
pub struct GetOptions {
    pub version_id: Option<String>,
    pub range: Option<RangeSpec>,
    pub part_number: Option<u32>,
    pub conditions: ReadConditions,
    /// The SSE-C key of the object, when it has one.
    pub encryption: Option<crate::Encryption>,
    /// Opens the object's data key if it is SSE-S3/SSE-KMS encrypted.
    pub unwrapper: Option<crate::Unwrapper>,
}

pub struct GetOutcome {
    pub info: ObjectInfo,
    /// The range served, when the request asked for one (or a part).
    pub range: Option<ByteRange>,
    pub body: ByteStream,
}

/// Objects that a read or write found short of full redundancy.
/// Serialises the commit step of writes to one key (condition check +
/// metadata commit), so conditional writes are atomic on this node.
#[derive(Default)]
struct KeyLocks {
    locks: Mutex<HashMap<(String, String), KeyLock>>,
}

type KeyLock = Arc<tokio::sync::Mutex<()>>;

impl KeyLocks {
    async fn lock(&self, bucket: &str, key: &str) -> KeyGuard<'_> {
        let lock = {
            let mut locks = self.locks.lock().unwrap_or_else(|e| e.into_inner());
            locks.entry((bucket.to_owned(), key.to_owned())).or_default().clone()
        };
        let guard = lock.clone().lock_owned().await;
        KeyGuard { locks: self, key: (bucket.to_owned(), key.to_owned()), _guard: guard }
    }
}

struct KeyGuard<'a> {
    locks: &'a KeyLocks,
    key: (String, String),
    _guard: tokio::sync::OwnedMutexGuard<()>,
}

impl Drop for KeyGuard<'_> {
    fn drop(&mut self) {
        let mut locks = self.locks.locks.lock().unwrap_or_else(|e| e.into_inner());
        // Two references: the map's and the one inside our guard.
        if locks.get(&self.key).is_some_and(|l| Arc::strong_count(l) <= 2) {
            locks.remove(&self.key);
        }
    }
}

pub struct ObjectStore {
    sets: Vec<Arc<ErasureSet>>,
    buckets: RwLock<BTreeMap<String, BucketRecord>>,
    bucket_lock: tokio::sync::Mutex<()>,
    locks: KeyLocks,
    pub(crate) heal: Arc<HealQueue>,
    pub(crate) stats: crate::healer::HealStats,
}

/// Records read per drive to find a key's latest version (see
/// [`ObjectStore::resolve_for`]).
const LATEST_WINDOW: usize = 64;

fn new_uid() -> VersionUid {
    *uuid::Uuid::now_v7().as_bytes()
}

/// The smallest UUIDv7-shaped uid above `uid`: its random tail plus one, or
/// when that is spent, the next `rand_a` (or millisecond) with a zero tail.
/// Versions order by uid, so a version committed while the clock is behind an
/// older version's takes this instead of a uid that would sort below it.
fn uid_after(uid: &VersionUid) -> VersionUid {
    const RAND_B: u64 = (1 << 62) - 1;
    const VARIANT: u64 = 0b10 << 62;
    let value = u128::from_be_bytes(*uid);
    let (high, low) = ((value >> 64) as u64, value as u64);
    let (high, low) = if low & RAND_B != RAND_B {
        (high, VARIANT | ((low & RAND_B) + 1))
    } else {
        let (millis, rand_a) = (high >> 16, high & 0x0FFF);
        let (millis, rand_a) = if rand_a < 0x0FFF { (millis, rand_a + 1) } else { (millis + 1, 0) };
        ((millis << 16) | 0x7000 | rand_a, VARIANT)
    };
    ((u128::from(high) << 64) | u128::from(low)).to_be_bytes()
}

impl ObjectStore {
    /// Opens the store over its sets and loads the bucket list (a bucket
    /// exists when at least K drives of the first set hold its record).
    pub async fn open(sets: Vec<ErasureSet>) -> Result<ObjectStore> {
        if sets.is_empty() {
            return Err(Error::InvalidArgument("at least one erasure set is needed".into()));
        }
        let sets: Vec<Arc<ErasureSet>> = sets.into_iter().map(Arc::new).collect();
        let store = ObjectStore {
            sets,
            buckets: RwLock::new(BTreeMap::new()),
            bucket_lock: tokio::sync::Mutex::new(()),
            locks: KeyLocks::default(),
            heal: Arc::new(HealQueue::default()),
            stats: crate::healer::HealStats::default(),
        };
        store.load_buckets().await?;
        Ok(store)
    }

    pub fn sets(&self) -> &[Arc<ErasureSet>] {
        &self.sets
    }

    pub fn heal_queue(&self) -> &HealQueue {
        &self.heal
    }

    async fn load_buckets(&self) -> Result<()> {
        let set = &self.sets[0];
        let answers = join_all(set.online_positions().into_iter().map(|p| {
            let drive = set.drives[p].clone();
            async move { drive.list_buckets().await }
        }))
        .await;
        // A bucket exists when K drives hold a record of it; when drives
        // disagree (one missed an update) the newest generation wins.
        let mut votes: BTreeMap<String, (usize, BucketRecord)> = BTreeMap::new();
        for answer in answers.into_iter().flatten() {
            for (name, raw) in answer {
                let record = match meta::decode::<BucketRecord>("bucket", &raw) {
                    Ok(record) => record,
                    Err(e) => {
                        tracing::error!(bucket = %name, error = %e, "bucket record unreadable");
                        continue;
                    }
                };
                match votes.get_mut(&name) {
                    Some((count, best)) => {
                        *count += 1;
                        if record.generation > best.generation {
                            *best = record;
                        }
                    }
                    None => {
                        votes.insert(name, (1, record));
                    }
                }
            }
        }
        {
            let mut buckets = self.buckets.write().unwrap_or_else(|e| e.into_inner());
            for (name, (count, record)) in votes {
                if count >= set.data() {
                    buckets.insert(name, record);
                }
            }
        }
        self.repair_bucket_records().await;
        Ok(())
    }

    /// A drive that came back blank (replaced) or missed an update gets the
    /// current bucket records back, and the replicated documents with them.
    pub(crate) async fn repair_bucket_records(&self) {
        let buckets: Vec<(String, BucketRecord)> = self.bucket_snapshot();
        for set in &self.sets {
            for p in set.online_positions() {
                let drive = &set.drives[p];
                let Ok(have) = drive.list_buckets().await else {
                    continue;
                };
                let current = |name: &str, record: &BucketRecord| {
                    have.iter().any(|(h, raw)| {
                        h == name
                            && meta::decode::<BucketRecord>("bucket", raw)
                                .is_ok_and(|held| held.generation >= record.generation)
                    })
                };
                let ops: Vec<MetaOp> = buckets
                    .iter()
                    .filter(|(name, record)| !current(name, record))
                    .map(|(name, record)| MetaOp::PutBucket { bucket: name.clone(), record: meta::encode(record) })
                    .collect();
                if !ops.is_empty() {
                    tracing::info!(drive = %drive.info().label, count = ops.len(), "restoring bucket records");
                    if let Err(e) = drive.commit(ops).await {
                        tracing::warn!(drive = %drive.info().label, error = %e, "could not restore bucket records");
                    }
                }
            }
        }
        self.repair_documents().await;
    }

    fn bucket_snapshot(&self) -> Vec<(String, BucketRecord)> {
        let buckets = self.buckets.read().unwrap_or_else(|e| e.into_inner());
        buckets.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
    }

    fn require_bucket(&self, bucket: &str) -> Result<BucketRecord> {
        let buckets = self.buckets.read().unwrap_or_else(|e| e.into_inner());
        buckets.get(bucket).cloned().ok_or_else(|| Error::NoSuchBucket(bucket.to_owned()))
    }

    /// Serialises changes to one key's records (writes take it too).
    pub(crate) async fn lock_key(&self, bucket: &str, key: &str) -> impl Drop + '_ {
        self.locks.lock(bucket, key).await
    }

    /// Serialises what changes one multipart upload: part commits, Complete and
    /// Abort. Without it an Abort could delete the parts of an upload that a
    /// concurrent Complete was turning into an object, or two Completes could
    /// make two versions share (and later free) the same part blobs. Its names
    /// live apart from object keys (no bucket name holds a `/`). Taken before a
    /// key lock, never after one.
    async fn lock_upload(&self, bucket: &str, upload_id: &str) -> impl Drop + '_ {
        self.locks.lock(&format!("{bucket}/uploads"), upload_id).await
    }

    pub(crate) fn set_for_key(&self, bucket: &str, key: &str) -> Arc<ErasureSet> {
        self.set_for(bucket, key)
    }

    fn set_for(&self, bucket: &str, key: &str) -> Arc<ErasureSet> {
        if self.sets.len() == 1 {
            return self.sets[0].clone();
        }
        let hash = blake3::hash(format!("{bucket}/{key}").as_bytes());
        let index = u64::from_le_bytes(hash.as_bytes()[8..16].try_into().unwrap_or([0; 8])) % self.sets.len() as u64;
        self.sets[index as usize].clone()
    }

    // ---- buckets -------------------------------------------------------

    pub async fn make_bucket(&self, bucket: &str) -> Result<()> {
        crate::validate_bucket_name(bucket)?;
        let _guard = self.bucket_lock.lock().await;
        if self.require_bucket(bucket).is_ok() {
            return Err(Error::BucketAlreadyOwnedByYou(bucket.to_owned()));
        }
        let record = BucketRecord {
            created_ns: now_ns(),
            versioning: Versioning::Unversioned,
            generation: 0,
            policy: None,
            public_access_block: None,
            default_encryption: None,
        };
        self.store_bucket_record(bucket, record).await
    }

    /// Writes a bucket record to every set at write quorum, then caches it.
    async fn store_bucket_record(&self, bucket: &str, mut record: BucketRecord) -> Result<()> {
        record.generation += 1;
        let raw = meta::encode(&record);
        for set in &self.sets {
            let positions = set.usable_positions().await;
            set.require_writable(&positions)?;
            let ok = commit_on(set, &positions, |_| {
                vec![MetaOp::PutBucket { bucket: bucket.to_owned(), record: raw.clone() }]
            })
            .await;
            set.require_writable(&ok)?;
        }
        self.buckets.write().unwrap_or_else(|e| e.into_inner()).insert(bucket.to_owned(), record);
        Ok(())
    }

    pub fn head_bucket(&self, bucket: &str) -> Result<BucketInfo> {
        let record = self.require_bucket(bucket)?;
        Ok(BucketInfo { name: bucket.to_owned(), created_ns: record.created_ns })
    }

    pub fn list_buckets(&self) -> Vec<BucketInfo> {
        self.bucket_snapshot()
            .into_iter()
            .map(|(name, record)| BucketInfo { name, created_ns: record.created_ns })
            .collect()
    }

    pub async fn delete_bucket(&self, bucket: &str) -> Result<()> {
        let _guard = self.bucket_lock.lock().await;
        self.require_bucket(bucket)?;
        // Any version or delete marker keeps a bucket from being deleted.
        let params = VersionListParams {
            prefix: String::new(),
            delimiter: None,
            key_marker: None,
            version_id_marker: None,
            max_keys: 1,
        };
        if !self.list_object_versions(bucket, params).await?.versions.is_empty() {
            return Err(Error::BucketNotEmpty(bucket.to_owned()));
        }
        for set in &self.sets {
            let positions = set.usable_positions().await;
            set.require_writable(&positions)?;
            // Uploads in progress go with the bucket, as S3 discards them: a
            // bucket of the same name made later must never see them.
            let uploads = join_all((0..set.total()).map(|p| uploads_on(set.drives[p].as_ref(), bucket))).await;
            let ok = commit_on(set, &positions, |position| {
                let mut ops: Vec<MetaOp> = uploads[position]
                    .iter()
                    .map(|(key, upload_id, _)| MetaOp::DeleteUpload {
                        bucket: bucket.to_owned(),
                        key: key.clone(),
                        upload_id: upload_id.clone(),
                    })
                    .collect();
                ops.push(MetaOp::DeleteBucket { bucket: bucket.to_owned() });
                ops
            })
            .await;
            set.require_writable(&ok)?;
            // Their parts' blobs are garbage now (orphan reclamation would
            // find them too, a day later).
            for &position in &ok {
                let blobs: Vec<[u8; 16]> =
                    uploads[position].iter().flat_map(|(_, _, blobs)| blobs.iter().copied()).collect();
                if !blobs.is_empty() {
                    let _ = set.drives[position].delete_blobs(bucket, blobs).await;
                }
            }
        }
        self.buckets.write().unwrap_or_else(|e| e.into_inner()).remove(bucket);
        Ok(())
    }

    // ---- reading metadata ----------------------------------------------

    /// Asks every online drive of the set for the versions of a key.
    pub(crate) async fn fetch_versions_of(
        &self,
        set: &ErasureSet,
        bucket: &str,
        key: &str,
    ) -> Vec<Option<Vec<StoredVersion>>> {
        self.fetch_versions(set, bucket, key).await
    }

    async fn fetch_versions(&self, set: &ErasureSet, bucket: &str, key: &str) -> Vec<Option<Vec<StoredVersion>>> {
        self.fetch_newest_versions(set, bucket, key, usize::MAX).await
    }

    /// The newest `limit` version records of `key` on each drive (`None`
    /// where a drive is offline or its read failed).
    async fn fetch_newest_versions(
        &self,
        set: &ErasureSet,
        bucket: &str,
        key: &str,
        limit: usize,
    ) -> Vec<Option<Vec<StoredVersion>>> {
        read_online_drives(set, |drive| async move { drive.get_newest_versions(bucket, key, limit).await }).await
    }

    /// The record of version `uid` on each drive (`Some(empty)` where a
    /// drive does not hold it; `None` where it is offline or its read failed).
    async fn fetch_version(
        &self,
        set: &ErasureSet,
        bucket: &str,
        key: &str,
        uid: VersionUid,
    ) -> Vec<Option<Vec<StoredVersion>>> {
        read_online_drives(set, |drive| async move {
            drive.get_version(bucket, key, uid).await.map(|stored| stored.into_iter().collect())
        })
        .await
    }

    pub(crate) async fn resolve_key(&self, set: &ErasureSet, bucket: &str, key: &str) -> Vec<Resolved> {
        let answers = self.fetch_versions(set, bucket, key).await;
        quorum::resolve(&answers, set.data())
    }

    /// The versions a read of `version_id` (`None`: the latest) needs. The
    /// latest is found among the newest [`LATEST_WINDOW`] records of each
    /// drive, so that a key with a long history is not read whole on every
    /// GET; only when no visible version is among them while a drive has
    /// more (a run of failed writes newer than the current version) is every
    /// version read.
    pub(crate) async fn resolve_for(
        &self,
        set: &ErasureSet,
        bucket: &str,
        key: &str,
        version_id: Option<&str>,
    ) -> Vec<Resolved> {
        if let Some(id) = version_id {
            // A version id is its uid in hex: that record alone, on every
            // drive, tells whether the version is there. The null version
            // has no id of its own and is found among them all.
            let uid = parse_version_id(id)
                .ok()
                .flatten()
                .and_then(|hex_id| hex::decode(hex_id).ok())
                .and_then(|bytes| VersionUid::try_from(bytes).ok());
            return match uid {
                Some(uid) => quorum::resolve(&self.fetch_version(set, bucket, key, uid).await, set.data()),
                None => self.resolve_key(set, bucket, key).await,
            };
        }
        let answers = self.fetch_newest_versions(set, bucket, key, LATEST_WINDOW).await;
        let resolved = quorum::resolve(&answers, set.data());
        let cut_short = answers.iter().flatten().any(|held| held.len() >= LATEST_WINDOW);
        if resolved.is_empty() && cut_short {
            return self.resolve_key(set, bucket, key).await;
        }
        resolved
    }

    /// The version a read addresses: latest, or by id ("null" is the null version).
    pub(crate) fn pick_version(versions: &[Resolved], version_id: Option<&str>) -> Result<Resolved> {
        match version_id {
            None => {
                let latest = versions.first().ok_or(Error::NoSuchKey)?;
                if latest.record.delete_marker {
                    return Err(Error::DeleteMarker {
                        version_id: latest.record.version_id.clone(),
                        by_version_id: false,
                    });
                }
                Ok(latest.clone())
            }
            Some(id) => {
                let wanted = parse_version_id(id)?;
                let found = versions
                    .iter()
                    .find(|v| v.record.version_id.as_deref() == wanted)
                    .cloned()
                    .ok_or(Error::NoSuchVersion)?;
                if found.record.delete_marker {
                    return Err(Error::DeleteMarker { version_id: found.record.version_id, by_version_id: true });
                }
                Ok(found)
            }
        }
    }

    fn info_of(bucket: &str, key: &str, resolved: &Resolved) -> ObjectInfo {
        let record = &resolved.record;
        let multipart = record.layout.as_ref().is_some_and(|l| l.multipart);
        let parts = match &record.layout {
            Some(layout) => layout
                .parts
                .iter()
                .map(|p| PartSummary {
                    number: p.number,
                    size: p.client_size(),
                    etag: p.etag.clone(),
                    checksum: p.checksum.clone(),
                })
                .collect(),
            None => Vec::new(),
        };
        ObjectInfo {
            bucket: bucket.to_owned(),
            key: key.to_owned(),
            version_id: record.version_id.clone(),
            size: record.size,
            etag: record.etag.clone(),
            mod_time_ns: record.mod_time_ns,
            headers: record.headers.clone(),
            user_meta: record.user_meta.clone(),
            delete_marker: record.delete_marker,
            parts_count: multipart.then_some(parts.len() as u32),
            parts,
            checksum: record.checksum.clone(),
            sse_c_key_md5: record.encryption.as_ref().and_then(|e| e.key_md5.clone()),
            sse: record.encryption.as_ref().and_then(crate::sse::summary),
            tag_count: record.tags.len(),
        }
    }

    pub async fn head_object(
        &self,
        bucket: &str,
        key: &str,
        opts: &GetOptions,
    ) -> Result<(ObjectInfo, Option<ByteRange>)> {
        self.require_bucket(bucket)?;
        let set = self.set_for(bucket, key);
        let versions = self.resolve_for(&set, bucket, key, opts.version_id.as_deref()).await;
        let resolved = Self::pick_version(&versions, opts.version_id.as_deref())?;
        match &resolved.record.encryption {
            Some(record) => crate::sse::check_customer_key(record, opts.encryption.as_ref())?,
            None => crate::sse::refuse_key_for_plain(opts.encryption.as_ref())?,
        }
        let info = Self::info_of(bucket, key, &resolved);
        check_conditions(&info, &opts.conditions)?;
        let range = resolve_range(&info, opts)?;
        Ok((info, range))
    }

    pub async fn get_object(&self, bucket: &str, key: &str, opts: &GetOptions) -> Result<GetOutcome> {
        self.require_bucket(bucket)?;
        let set = self.set_for(bucket, key);
        let versions = self.resolve_for(&set, bucket, key, opts.version_id.as_deref()).await;
        let resolved = Self::pick_version(&versions, opts.version_id.as_deref())?;
        let object_key = match &resolved.record.encryption {
            Some(record) => Some(
                crate::sse::open_any(record, bucket, key, opts.encryption.as_ref(), opts.unwrapper.as_ref()).await?,
            ),
            None => {
                crate::sse::refuse_key_for_plain(opts.encryption.as_ref())?;
                None
            }
        };
        let info = Self::info_of(bucket, key, &resolved);
        check_conditions(&info, &opts.conditions)?;
        let range = resolve_range(&info, opts)?;
        let body: ByteStream = match &resolved.record.layout {
            Some(layout) if info.size > 0 => {
                if resolved.holder_count() < set.total() {
                    self.heal.report(bucket, key, resolved.uid, "metadata missing on some drives");
                }
                let geometry = bulwark_erasure::Geometry::new(layout.data, layout.parity, layout.block_size)
                    .map_err(|e| Error::Internal(format!("stored geometry invalid: {e}")))?;
                let ctx = ReadContext {
                    set: set.clone(),
                    bucket: bucket.to_owned(),
                    key: key.to_owned(),
                    uid: resolved.uid,
                    layout: layout.clone(),
                    holders: resolved.holders.clone(),
                    geometry,
                    damage: self.heal.clone(),
                    checksum_algorithm: resolved.record.checksum.as_ref().map(|c| c.algorithm),
                };
                // Read the first block before answering, so that an object
                // that cannot be rebuilt gets an error status, not a 200 with
                // a body that breaks off.
                let mut body = match object_key {
                    Some(object_key) => read::stream_decrypted(ctx, range, info.size, object_key),
                    None => read::stream_range(ctx, range),
                };
                match futures::StreamExt::next(&mut body).await {
                    Some(Ok(first)) => {
                        Box::pin(futures::StreamExt::chain(futures::stream::once(async move { Ok(first) }), body))
                    }
                    Some(Err(e)) => {
                        return Err(Error::Unreadable {
                            bucket: bucket.to_owned(),
                            key: key.to_owned(),
                            detail: e.to_string(),
                        });
                    }
                    None => body,
                }
            }
            _ => Box::pin(futures::stream::empty()),
        };
        Ok(GetOutcome { info, range, body })
    }

    // ---- writing objects -----------------------------------------------

    /// Stores a new object from `body`. `size` is the declared length, when known.
    pub async fn put_object(
        &self,
        bucket: &str,
        key: &str,
        body: ByteStream,
        size: Option<u64>,
        opts: PutOptions,
    ) -> Result<PutOutcome> {
        self.require_bucket(bucket)?;
        crate::validate_object_key(key)?;
        if size.is_some_and(|s| s > OBJECT_SIZE_BYTES_MAX) {
            return Err(Error::EntityTooLarge);
        }
        let set = self.set_for(bucket, key);
        let positions = set.usable_positions().await;
        set.require_writable(&positions)?;
        let distribution = set.distribution(bucket, key);
        let primary = opts.checksum.algorithm.unwrap_or(DEFAULT_CHECKSUM);
        let mut algorithms = vec![primary];
        algorithms.extend(opts.checksum.also_verify.iter().map(|(a, _)| *a));
        // As S3: the ETag of an SSE-S3 object is its MD5; SSE-C and SSE-KMS
        // ETags are not (they would reveal a hash of the plaintext).
        let md5_etag = match &opts.encryption {
            None | Some(crate::Encryption::Managed(crate::ManagedKey { scheme: crate::ManagedScheme::SseS3, .. })) => {
                true
            }
            Some(_) => false,
        };
        let mut reader = BodyReader::new(
            body,
            size.unwrap_or(OBJECT_SIZE_BYTES_MAX),
            &algorithms,
            md5_etag || opts.content_md5.is_some(),
        );
        let sealed = match &opts.encryption {
            Some(request) => Some(crate::sse::new_object_key(request, bucket, key)?),
            None => None,
        };
        let base_nonce = bulwark_crypto::random_array::<12>().map_err(|e| Error::Internal(e.to_string()))?;
        let cipher = sealed.as_ref().map(|(_, object_key)| (object_key, base_nonce));
        let data =
            self.write_data(&set, set.geometry, bucket, &distribution, &positions, &mut reader, true, cipher).await?;
        let total = reader.total();
        let (md5, digest) = match finish_body(reader, size, &opts.content_md5, primary, &opts.checksum).await {
            Ok(done) => done,
            Err(e) => {
                data.discard(&set, bucket).await;
                return Err(e);
            }
        };
        let stored_checksum =
            StoredChecksum { algorithm: primary, kind: ChecksumType::FullObject, value: checksum::encode(&digest) };
        let encrypted = sealed.is_some();
        let etag = etag_of(md5_etag, md5)?;
        let mod_time_ns = now_ns();
        let uid = new_uid();
        let version_id = version_id_for(self.bucket_versioning(bucket)?, &uid);
        let stored_len = data.stored_len;
        let encryption = sealed.map(|(record, _)| record);
        let sse_c_key_md5 = encryption.as_ref().and_then(|e| e.key_md5.clone());
        let sse = encryption.as_ref().and_then(crate::sse::summary);
        let record = VersionRecord {
            version_id: version_id.clone(),
            mod_time_ns,
            delete_marker: false,
            size: total,
            etag: etag.clone(),
            headers: opts.headers,
            user_meta: opts.user_meta,
            layout: Some(DataLayout {
                data: set.data(),
                parity: set.total() - set.data(),
                block_size: set.geometry.block_size_bytes(),
                distribution: distribution.clone(),
                inline: data.inline.is_some(),
                parts: vec![PartLayout {
                    number: 1,
                    size: stored_len,
                    etag: etag.clone(),
                    blob: data.blob.map(hex::encode),
                    checksum: (!encrypted).then(|| stored_checksum.value.clone()),
                    plain_size: encrypted.then_some(total),
                    nonce: encrypted.then(|| hex::encode(base_nonce)),
                }],
                multipart: false,
            }),
            checksum: Some(stored_checksum.clone()),
            encryption,
            tags: opts.tags,
        };
        let (uid, committed) =
            self.commit_version(&set, bucket, key, uid, record, data, &opts.condition, Extra::default()).await?;
        let version_id = version_id.map(|_| hex::encode(uid));
        let durable = committed.len();
        Ok(PutOutcome {
            etag,
            size: total,
            version_id,
            redundancy: Redundancy { durable, total: set.total() },
            mod_time_ns,
            checksum: Some(stored_checksum),
            sse_c_key_md5,
            sse,
        })
    }

    /// Streams the body to the drives, coded with `geometry`: inline for
    /// small objects (when `allow_inline`), else as a blob. Returns where
    /// the data is durable.
    #[allow(clippy::too_many_arguments)]
    async fn write_data(
        &self,
        set: &Arc<ErasureSet>,
        geometry: Geometry,
        bucket: &str,
        distribution: &[usize],
        positions: &[usize],
        reader: &mut BodyReader,
        allow_inline: bool,
        cipher: Option<(&bulwark_crypto::Key32, [u8; 12])>,
    ) -> Result<WrittenData> {
        reader.lay_out_for_shards(&geometry);
        let mut source = StoredSource::new(reader, cipher);
        let block_size = geometry.block_size_bytes();
        let first = source.next(block_size).await?;
        let first_len = first.as_ref().map_or(0, |b| b.len() as u64);
        // A first block shorter than a block means the body has ended.
        if allow_inline && first_len <= INLINE_SIZE_BYTES_MAX {
            let shards = write::encode_inline(&geometry, first.as_deref().unwrap_or_default())?;
            return Ok(WrittenData {
                durable: positions.to_vec(),
                inline: Some(shards),
                blob: None,
                stored_len: first_len,
            });
        }
        let blob = write::new_blob_id();
        let mut sink = BlobWrite::start(set.clone(), geometry, bucket, blob, distribution.to_vec(), positions);
        let mut next = first;
        while let Some(block) = next {
            if let Err(e) = sink.write_block(&block).await {
                sink.abort().await;
                return Err(e);
            }
            next = match source.next(block_size).await {
                Ok(next) => next,
                Err(e) => {
                    sink.abort().await;
                    return Err(e);
                }
            };
        }
        let stored_len = source.stored();
        // The drives' final fsyncs and the hashing of the last blocks overlap.
        let (durable, ()) = tokio::join!(sink.commit(), source.settle_hashes());
        let written = WrittenData { durable, inline: None, blob: Some(blob), stored_len };
        if let Err(e) = set.require_writable(&written.durable) {
            written.discard(set, bucket).await;
            return Err(e);
        }
        Ok(written)
    }

    /// Commits a version record where its data is durable, under the key
    /// lock, after checking the write condition. Rolls back and fails if the
    /// write rule is not met. `extra` adds per-drive ops to the same atomic batch.
    /// Returns the uid committed: `uid`, or one above every version of the key
    /// when the clock has gone back (the record's version id follows it).
    #[allow(clippy::too_many_arguments)]
    async fn commit_version(
        &self,
        set: &Arc<ErasureSet>,
        bucket: &str,
        key: &str,
        uid: VersionUid,
        record: VersionRecord,
        data: WrittenData,
        condition: &WriteCondition,
        extra: Extra,
    ) -> Result<(VersionUid, Vec<usize>)> {
        let guard = self.locks.lock(bucket, key).await;
        // Every version is read when the write condition needs the current
        // one or an overwritten null version is to be purged; else only the
        // newest uid of each drive (a key may have millions of versions).
        let read_all = *condition != WriteCondition::None || record.version_id.is_none();
        let limit = if read_all { usize::MAX } else { 1 };
        let answers = self.fetch_newest_versions(set, bucket, key, limit).await;
        // Newest by uid is the current version: a clock that went back (a
        // host booted before its time was set) must not slip a new version in
        // under an older one, where it would be hidden and purged as superseded.
        let newest = answers.iter().flatten().flatten().map(|stored| stored.uid).max();
        let (uid, record) = match newest {
            Some(newest) if newest >= uid => {
                let uid = uid_after(&newest);
                let version_id = record.version_id.as_ref().map(|_| hex::encode(uid));
                (uid, VersionRecord { version_id, ..record })
            }
            _ => (uid, record),
        };
        if *condition != WriteCondition::None {
            let versions = quorum::resolve(&answers, set.data());
            let current = versions.first().filter(|v| !v.record.delete_marker);
            let failed = match (condition, current) {
                (WriteCondition::IfNoneMatchAny, Some(_)) => Some(Error::PreconditionFailed),
                (WriteCondition::IfMatch(_), None) => Some(Error::NoSuchKey),
                (WriteCondition::IfMatch(etag), Some(current)) if !etag_matches(etag, &current.record.etag) => {
                    Some(Error::PreconditionFailed)
                }
                _ => None,
            };
            if let Some(e) = failed {
                drop(guard);
                data.discard(set, bucket).await;
                return Err(e);
            }
        }
        let raw = meta::encode(&record);
        let distribution = record.layout.as_ref().map(|l| l.distribution.clone());
        let committed = commit_on(set, &data.durable, |position| {
            let inline = match (&data.inline, &distribution) {
                (Some(shards), Some(distribution)) => Some(Bytes::from(shards[distribution[position]].clone())),
                _ => None,
            };
            let mut ops = vec![MetaOp::PutVersion {
                bucket: bucket.to_owned(),
                key: key.to_owned(),
                uid,
                record: raw.clone(),
                inline,
            }];
            ops.extend(extra.ops.iter().cloned());
            ops
        })
        .await;
        if !set.write_satisfied(&committed) {
            // Undo where it landed: a minority record is invisible anyway, but
            // leave nothing behind that a later quorum could resurrect, and put
            // back what the batch's other ops changed there (a completed
            // upload's record and parts, so the client can complete it again).
            commit_on(set, &committed, |position| {
                let mut ops = vec![MetaOp::DeleteVersion { bucket: bucket.to_owned(), key: key.to_owned(), uid }];
                ops.extend(extra.undo.get(position).into_iter().flatten().cloned());
                ops
            })
            .await;
            drop(guard);
            data.discard(set, bucket).await;
            return Err(Error::InsufficientDrives { needed: set.config.write_quorum, available: committed.len() });
        }
        drop(guard);
        if committed.len() < set.total() {
            // The partial-write queue (D2): persisted on the drives that have
            // the write, so a restart does not forget it.
            crate::healer::persist_entry(set, &committed, bucket, key, uid).await;
            self.heal.report(bucket, key, uid, "degraded write");
        }
        // The overwritten null version goes. What each drive held was read
        // under the lock above; only drives that did not answer are read again.
        let older_null = |stored: &StoredVersion| {
            stored.uid < uid
                && meta::decode::<VersionRecord>("version", &stored.record).is_ok_and(|r| r.version_id.is_none())
        };
        let purge = || answers.iter().any(|answer| answer.as_ref().is_none_or(|held| held.iter().any(older_null)));
        if record.version_id.is_none() && purge() {
            let set = set.clone();
            let bucket = bucket.to_owned();
            let key = key.to_owned();
            tokio::spawn(async move { purge_null_versions(&set, &bucket, &key, Some(uid), answers).await });
        }
        Ok((uid, committed))
    }

    // ---- deleting objects ------------------------------------------------

    /// Deletes an object as S3 does: in an unversioned bucket the null version
    /// goes; in a versioned (or suspended) bucket a delete marker is added; with
    /// a version id exactly that version (or marker) is removed for good.
    /// Deleting a missing key succeeds.
    pub async fn delete_object(&self, bucket: &str, key: &str, version_id: Option<&str>) -> Result<DeleteOutcome> {
        let versioning = self.bucket_versioning(bucket)?;
        let set = self.set_for(bucket, key);
        let positions = set.usable_positions().await;
        set.require_writable(&positions)?;
        match version_id {
            Some(id) => {
                let wanted = parse_version_id(id)?;
                let _guard = self.locks.lock(bucket, key).await;
                let versions = self.resolve_key(&set, bucket, key).await;
                let marker = versions
                    .iter()
                    .find(|v| v.record.version_id.as_deref() == wanted)
                    .is_some_and(|v| v.record.delete_marker);
                let done = purge_versions(&set, bucket, key, |_, record| record.version_id.as_deref() == wanted).await;
                set.require_writable(&done)?;
                Ok(DeleteOutcome { delete_marker: marker, version_id: Some(id.to_owned()) })
            }
            None if versioning == Versioning::Unversioned => {
                let _guard = self.locks.lock(bucket, key).await;
                let done = purge_versions(&set, bucket, key, |_, record| record.version_id.is_none()).await;
                set.require_writable(&done)?;
                Ok(DeleteOutcome::default())
            }
            None => {
                let uid = new_uid();
                let version_id = version_id_for(versioning, &uid);
                let marker = VersionRecord {
                    version_id: version_id.clone(),
                    mod_time_ns: now_ns(),
                    delete_marker: true,
                    size: 0,
                    etag: String::new(),
                    headers: ContentHeaders::default(),
                    user_meta: BTreeMap::new(),
                    layout: None,
                    checksum: None,
                    encryption: None,
                    tags: BTreeMap::new(),
                };
                let data = WrittenData { durable: positions, inline: None, blob: None, stored_len: 0 };
                let (uid, _) = self
                    .commit_version(&set, bucket, key, uid, marker, data, &WriteCondition::None, Extra::default())
                    .await?;
                let version_id = version_id.map(|_| hex::encode(uid));
                Ok(DeleteOutcome { delete_marker: true, version_id: Some(version_id.unwrap_or_else(|| "null".into())) })
            }
        }
    }

    // ---- versioning ------------------------------------------------------

    pub fn bucket_versioning(&self, bucket: &str) -> Result<Versioning> {
        Ok(self.require_bucket(bucket)?.versioning)
    }

    /// Enables or suspends versioning; a bucket never returns to unversioned.
    pub async fn put_bucket_versioning(&self, bucket: &str, state: Versioning) -> Result<()> {
        if state == Versioning::Unversioned {
            return Err(Error::InvalidArgument("versioning can only be Enabled or Suspended".into()));
        }
        let _guard = self.bucket_lock.lock().await;
        let mut record = self.require_bucket(bucket)?;
        record.versioning = state;
        self.store_bucket_record(bucket, record).await
    }

    /// The bucket's full record: versioning, policy, public access block.
    pub fn bucket_config(&self, bucket: &str) -> Result<BucketRecord> {
        self.require_bucket(bucket)
    }

    /// Changes a bucket's configuration under the bucket lock and stores it
    /// at write quorum; `change` sees the current record and may refuse.
    pub async fn update_bucket_config(
        &self,
        bucket: &str,
        change: impl FnOnce(&mut BucketRecord) -> Result<()>,
    ) -> Result<()> {
        let _guard = self.bucket_lock.lock().await;
        let mut record = self.require_bucket(bucket)?;
        change(&mut record)?;
        self.store_bucket_record(bucket, record).await
    }

    /// Every version and delete marker, key by key, newest first within a key.
    pub async fn list_object_versions(&self, bucket: &str, params: VersionListParams) -> Result<VersionsPage> {
        self.require_bucket(bucket)?;
        let max_keys = params.max_keys.min(LIST_KEYS_MAX);
        let mut page = VersionsPage::default();
        if max_keys == 0 {
            return Ok(page);
        }
        let key_marker = params.key_marker.clone().filter(|m| !m.is_empty());
        let version_marker = params.version_id_marker.clone().filter(|m| !m.is_empty());
        // Where to resume: after a whole key, or after one version of it.
        let mut resume: Option<Resume> = None;
        let from = match (&key_marker, &version_marker) {
            (Some(key), Some(version)) => {
                let set = self.set_for(bucket, key);
                let versions = self.resolve_key(&set, bucket, key).await;
                let wanted = parse_version_id(version)?;
                // The marker's version may be gone (a client emptying a
                // bucket deletes each page before asking for the next): a
                // version id is its uid in hex, so the listing resumes where
                // it stood; a vanished null version resumes at the key's start.
                let found = versions.iter().find(|v| v.record.version_id.as_deref() == wanted).map(|v| v.uid);
                let uid = match (found, wanted) {
                    (Some(uid), _) => uid,
                    (None, Some(hex_id)) => hex::decode(hex_id)
                        .ok()
                        .and_then(|bytes| VersionUid::try_from(bytes).ok())
                        .ok_or_else(|| Error::InvalidArgument("Invalid version id specified".into()))?,
                    (None, None) => [0xFF; 16],
                };
                resume = Some(Resume {
                    key: key.clone(),
                    latest: versions.first().map(|v| v.uid),
                    // The key's null version, if it came at or before the marker:
                    // an older null record awaiting its purge is not shown either.
                    null_listed: versions.iter().any(|v| v.record.version_id.is_none() && v.uid >= uid),
                });
                ScanFrom::AfterVersion(key.clone(), uid)
            }
            (Some(key), None) if key.as_str() >= params.prefix.as_str() => ScanFrom::AfterKey(key.clone()),
            (None, Some(_)) => {
                return Err(Error::InvalidArgument(
                    "A version-id marker cannot be specified without a key marker.".into(),
                ));
            }
            _ => ScanFrom::Start,
        };
        let mut cursors = self.cursors(from);
        let mut count = 0;
        'keys: loop {
            let Some(key) = self.next_key(bucket, &params.prefix, &mut cursors).await else { break };
            if let Some(delimiter) = params.delimiter.as_deref().filter(|d| !d.is_empty())
                && let Some(index) = key[params.prefix.len()..].find(delimiter)
            {
                let common = key[..params.prefix.len() + index + delimiter.len()].to_owned();
                if key_marker.as_deref().is_some_and(|m| common.as_str() <= m) {
                    skip_prefix(&mut cursors, &common);
                    continue;
                }
                // A prefix holding only failed writes (minority records) is no folder.
                let shown = |versions: &[Resolved]| !versions.is_empty();
                let visible = self.prefix_has(bucket, &params.prefix, &common, key, &mut cursors, shown).await;
                skip_prefix(&mut cursors, &common);
                if !visible {
                    continue;
                }
                if count == max_keys {
                    page.is_truncated = true;
                    break;
                }
                count += 1;
                page.next_key_marker = Some(common.clone());
                page.next_version_id_marker = None;
                page.common_prefixes.push(common);
                continue;
            }
            let Some((set, answers)) = self.take_key(bucket, &params.prefix, &key, &mut cursors).await else {
                continue;
            };
            let versions = quorum::resolve(&answers, self.sets[set].data());
            let (latest, null_listed) = match &resume {
                Some(resumed) if resumed.key == key => (resumed.latest, resumed.null_listed),
                _ => (versions.first().map(|v| v.uid), false),
            };
            for version in versions {
                if null_listed && version.record.version_id.is_none() {
                    continue;
                }
                if count == max_keys {
                    page.is_truncated = true;
                    break 'keys;
                }
                count += 1;
                let version_id = version.record.version_id.clone();
                page.next_key_marker = Some(key.clone());
                page.next_version_id_marker = Some(version_id.clone().unwrap_or_else(|| "null".into()));
                page.versions.push(VersionEntry {
                    key: key.clone(),
                    version_id,
                    is_latest: Some(version.uid) == latest,
                    delete_marker: version.record.delete_marker,
                    size: version.record.size,
                    etag: version.record.etag.clone(),
                    mod_time_ns: version.record.mod_time_ns,
                });
            }
        }
        Ok(page)
    }

    // ---- listing ---------------------------------------------------------

    pub async fn list_objects(&self, bucket: &str, params: ListParams) -> Result<ListPage> {
        self.require_bucket(bucket)?;
        let max_keys = params.max_keys.min(LIST_KEYS_MAX);
        let mut page = ListPage::default();
        if max_keys == 0 {
            return Ok(page);
        }
        let from = match &params.start_after {
            Some(after) if after.as_str() >= params.prefix.as_str() => ScanFrom::AfterKey(after.clone()),
            _ => ScanFrom::Start,
        };
        let mut cursors = self.cursors(from);
        let mut count = 0;
        loop {
            let Some(key) = self.next_key(bucket, &params.prefix, &mut cursors).await else {
                break;
            };
            // Roll up keys that contain the delimiter after the prefix.
            if let Some(delimiter) = params.delimiter.as_deref().filter(|d| !d.is_empty())
                && let Some(index) = key[params.prefix.len()..].find(delimiter)
            {
                let common = key[..params.prefix.len() + index + delimiter.len()].to_owned();
                if params.start_after.as_deref().is_some_and(|after| common.as_str() <= after) {
                    skip_prefix(&mut cursors, &common);
                    continue;
                }
                // A prefix whose keys are all deleted (or only failed writes) is no folder.
                let shown = |versions: &[Resolved]| versions.first().is_some_and(|v| !v.record.delete_marker);
                let visible = self.prefix_has(bucket, &params.prefix, &common, key, &mut cursors, shown).await;
                skip_prefix(&mut cursors, &common);
                if !visible {
                    continue;
                }
                if count == max_keys {
                    page.is_truncated = true;
                    break;
                }
                count += 1;
                page.next_marker = Some(common.clone());
                page.common_prefixes.push(common);
                continue;
            }
            let per_set = self.take_key(bucket, &params.prefix, &key, &mut cursors).await;
            let Some(latest) =
                per_set.and_then(|(set, answers)| quorum::resolve(&answers, self.sets[set].data()).into_iter().next())
            else {
                continue;
            };
            if latest.record.delete_marker {
                continue;
            }
            if count == max_keys {
                page.is_truncated = true;
                break;
            }
            count += 1;
            page.next_marker = Some(key.clone());
            page.objects.push(ListEntry {
                key,
                size: latest.record.size,
                etag: latest.record.etag.clone(),
                mod_time_ns: latest.record.mod_time_ns,
                multipart_parts: latest.record.layout.as_ref().filter(|l| l.multipart).map(|l| l.parts.len() as u32),
            });
        }
        Ok(page)
    }

    /// Whether some key under `common`, from `first` (the key that revealed
    /// the prefix) on, has versions that `shown` accepts. The keys it looks at
    /// are taken from the cursors; it stops at the first one shown.
    async fn prefix_has(
        &self,
        bucket: &str,
        prefix: &str,
        common: &str,
        first: String,
        cursors: &mut [Cursor],
        shown: impl Fn(&[Resolved]) -> bool,
    ) -> bool {
        let mut next = Some(first);
        while let Some(key) = next.filter(|key| key.starts_with(common)) {
            if let Some((set, answers)) = self.take_key(bucket, prefix, &key, cursors).await
                && shown(&quorum::resolve(&answers, self.sets[set].data()))
            {
                return true;
            }
            next = self.next_key(bucket, prefix, cursors).await;
        }
        false
    }

    /// One listing cursor per online drive of every set.
    fn cursors(&self, from: ScanFrom) -> Vec<Cursor> {
        let mut cursors = Vec::new();
        for (set_index, set) in self.sets.iter().enumerate() {
            for position in set.online_positions() {
                cursors.push(Cursor {
                    set: set_index,
                    position,
                    buffer: VecDeque::new(),
                    from: from.clone(),
                    exhausted: false,
                    failed: false,
                });
            }
        }
        cursors
    }

    /// Fetches the next batch of a cursor's drive.
    async fn refill(&self, bucket: &str, prefix: &str, cursor: &mut Cursor) {
        let drive = self.sets[cursor.set].drives[cursor.position].clone();
        match drive.scan_versions(bucket, prefix, cursor.from.clone(), LIST_BATCH).await {
            Ok(rows) => {
                if rows.len() < LIST_BATCH {
                    cursor.exhausted = true;
                }
                if let Some(last) = rows.last() {
                    cursor.from = ScanFrom::AfterVersion(last.key.clone(), last.uid);
                }
                cursor.buffer.extend(rows);
            }
            Err(e) => {
                tracing::warn!(drive = %drive.info().label, error = %e, "listing scan failed");
                cursor.failed = true;
            }
        }
    }

    /// The smallest key at the front of any cursor, refilling as needed.
    async fn next_key(&self, bucket: &str, prefix: &str, cursors: &mut [Cursor]) -> Option<String> {
        let refills = cursors
            .iter_mut()
            .filter(|c| c.buffer.is_empty() && !c.exhausted && !c.failed)
            .map(|cursor| self.refill(bucket, prefix, cursor));
        join_all(refills).await;
        cursors.iter().filter_map(|c| c.buffer.front().map(|v| v.key.clone())).min()
    }

    /// Removes every version of `key` from the cursors (fetching further
    /// batches while a drive's batch ends inside the key) and groups them
    /// per set; `None` when no set holds anything of the key.
    async fn take_key(
        &self,
        bucket: &str,
        prefix: &str,
        key: &str,
        cursors: &mut [Cursor],
    ) -> Option<(usize, Vec<Option<Vec<StoredVersion>>>)> {
        let mut per_set: BTreeMap<usize, Vec<Option<Vec<StoredVersion>>>> = BTreeMap::new();
        for cursor in cursors.iter_mut() {
            let total = self.sets[cursor.set].total();
            let mut mine = Vec::new();
            loop {
                while cursor.buffer.front().is_some_and(|v| v.key == key) {
                    if let Some(v) = cursor.buffer.pop_front() {
                        mine.push(v);
                    }
                }
                if cursor.buffer.is_empty() && !cursor.exhausted && !cursor.failed {
                    self.refill(bucket, prefix, cursor).await;
                    continue;
                }
                break;
            }
            let answers = per_set.entry(cursor.set).or_insert_with(|| vec![None; total]);
            if !cursor.failed {
                answers[cursor.position] = Some(mine);
            }
        }
        per_set.into_iter().find(|(_, answers)| answers.iter().flatten().any(|a| !a.is_empty()))
    }

    // ---- multipart -------------------------------------------------------

    pub async fn create_multipart_upload(
        &self,
        bucket: &str,
        key: &str,
        opts: PutOptions,
        checksum_type: Option<ChecksumType>,
    ) -> Result<String> {
        self.require_bucket(bucket)?;
        crate::validate_object_key(key)?;
        let explicit = opts.checksum.algorithm.is_some();
        let algorithm = opts.checksum.algorithm.unwrap_or(DEFAULT_CHECKSUM);
        let checksum_type = match (checksum_type, algorithm) {
            (Some(ChecksumType::FullObject), a) if !a.is_crc() => {
                return Err(Error::InvalidChecksumRequest(format!(
                    "The FULL_OBJECT checksum type cannot be used with the {} checksum algorithm.",
                    a.as_str().to_ascii_lowercase()
                )));
            }
            (Some(ChecksumType::Composite), ChecksumAlgorithm::Crc64nvme) => {
                return Err(Error::InvalidChecksumRequest(
                    "The COMPOSITE checksum type cannot be used with the crc64nvme checksum algorithm.".into(),
                ));
            }
            (Some(kind), _) => kind,
            (None, ChecksumAlgorithm::Crc64nvme) => ChecksumType::FullObject,
            (None, _) => ChecksumType::Composite,
        };
        let set = self.set_for(bucket, key);
        let positions = set.usable_positions().await;
        set.require_writable(&positions)?;
        let upload_id = uuid::Uuid::new_v4().simple().to_string();
        let record = UploadRecord {
            initiated_ns: now_ns(),
            headers: opts.headers,
            user_meta: opts.user_meta,
            distribution: set.distribution(bucket, key),
            data: set.data(),
            parity: set.total() - set.data(),
            block_size: set.geometry.block_size_bytes(),
            checksum_algorithm: algorithm,
            checksum_type,
            checksum_explicit: explicit,
            encryption: match &opts.encryption {
                Some(request) => Some(crate::sse::new_object_key(request, bucket, key)?.0),
                None => None,
            },
            tags: opts.tags,
        };
        let raw = meta::encode(&record);
        let ok = commit_on(&set, &positions, |_| {
            vec![MetaOp::PutUpload {
                bucket: bucket.to_owned(),
                key: key.to_owned(),
                upload_id: upload_id.clone(),
                record: raw.clone(),
            }]
        })
        .await;
        set.require_writable(&ok)?;
        Ok(upload_id)
    }

    async fn get_upload(&self, set: &ErasureSet, bucket: &str, key: &str, upload_id: &str) -> Result<UploadRecord> {
        let answers = join_all(set.online_positions().into_iter().map(|p| {
            let drive = set.drives[p].clone();
            async move { drive.get_upload(bucket, key, upload_id).await.ok().flatten() }
        }))
        .await;
        let mut votes: BTreeMap<Bytes, usize> = BTreeMap::new();
        for raw in answers.into_iter().flatten() {
            *votes.entry(raw).or_default() += 1;
        }
        let (raw, count) = votes.into_iter().max_by_key(|(_, c)| *c).ok_or(Error::NoSuchUpload)?;
        if count < set.data() {
            return Err(Error::NoSuchUpload);
        }
        meta::decode("upload", &raw).map_err(|e| Error::Internal(e.to_string()))
    }

    /// Part records per drive: `parts[position]` maps part number → (raw, record).
    async fn fetch_parts(&self, set: &ErasureSet, upload_id: &str) -> Vec<Option<BTreeMap<u32, (Bytes, PartRecord)>>> {
        join_all((0..set.total()).map(|p| {
            let drive = set.drives[p].clone();
            async move {
                if !drive.is_online() {
                    return None;
                }
                let rows = drive.list_parts(upload_id).await.ok()?;
                Some(
                    rows.into_iter()
                        .filter_map(|(n, raw)| meta::decode::<PartRecord>("part", &raw).ok().map(|r| (n, (raw, r))))
                        .collect(),
                )
            }
        }))
        .await
    }

    /// Merges per-drive part records: for each number, the record most drives
    /// hold, with the positions holding it.
    fn merge_parts(parts: &[Option<BTreeMap<u32, (Bytes, PartRecord)>>]) -> BTreeMap<u32, (PartRecord, Vec<usize>)> {
        let mut votes: BTreeMap<u32, BTreeMap<Bytes, (PartRecord, Vec<usize>)>> = BTreeMap::new();
        for (position, answer) in parts.iter().enumerate() {
            for (number, (raw, record)) in answer.iter().flatten() {
                votes
                    .entry(*number)
                    .or_default()
                    .entry(raw.clone())
                    .or_insert_with(|| (record.clone(), Vec::new()))
                    .1
                    .push(position);
            }
        }
        votes
            .into_iter()
            .filter_map(|(number, variants)| {
                variants.into_values().max_by_key(|(_, holders)| holders.len()).map(|v| (number, v))
            })
            .collect()
    }

    #[allow(clippy::too_many_arguments)]
    pub async fn upload_part(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
        number: u32,
        body: ByteStream,
        size: Option<u64>,
        opts: PutOptions,
    ) -> Result<PutOutcome> {
        self.require_bucket(bucket)?;
        if !(1..=PART_NUMBER_MAX).contains(&number) {
            return Err(Error::InvalidArgument(format!(
                "part number must be an integer between 1 and {PART_NUMBER_MAX}"
            )));
        }
        if size.is_some_and(|s| s > OBJECT_SIZE_BYTES_MAX) {
            return Err(Error::EntityTooLarge);
        }
        let set = self.set_for(bucket, key);
        let upload = self.get_upload(&set, bucket, key, upload_id).await?;
        let primary = upload.checksum_algorithm;
        let mut request = opts.checksum.clone();
        match request.algorithm {
            Some(algorithm) if algorithm != primary && upload.checksum_explicit => {
                return Err(Error::InvalidChecksumRequest(format!(
                    "Checksum Type mismatch occurred, expected checksum Type: {}, actual checksum Type: {}",
                    primary.as_str().to_ascii_lowercase(),
                    algorithm.as_str().to_ascii_lowercase()
                )));
            }
            Some(algorithm) if algorithm != primary => {
                // The upload uses our default; verify the client's own checksum too.
                if let Some(expected) = request.expected.take() {
                    request.also_verify.push((algorithm, expected));
                }
                request.algorithm = Some(primary);
            }
            _ => {}
        }
        let positions = set.usable_positions().await;
        set.require_writable(&positions)?;
        let mut algorithms = vec![primary];
        algorithms.extend(request.also_verify.iter().map(|(a, _)| *a));
        let md5_etag = upload.encryption.as_ref().is_none_or(|r| r.scheme == crate::sse::SCHEME_SSE_S3);
        let mut reader = BodyReader::new(
            body,
            size.unwrap_or(OBJECT_SIZE_BYTES_MAX),
            &algorithms,
            md5_etag || opts.content_md5.is_some(),
        );
        // An upload started with SSE-C takes the same key on every part.
        let part_cipher = match (&upload.encryption, &opts.encryption) {
            (Some(record), provided) => {
                let object_key = crate::sse::open_any(record, bucket, key, provided.as_ref(), opts.unwrapper.as_ref())
                    .await
                    .map_err(|e| match e {
                    Error::SseCKeyRequired => Error::SseCNotApplicable(
                        "The multipart upload initiate requested encryption. Subsequent part requests must include the appropriate encryption parameters.".into(),
                    ),
                    Error::SseCKeyMismatch => Error::SseCNotApplicable(
                        "The provided encryption parameters did not match the ones used originally.".into(),
                    ),
                    other => other,
                })?;
                let nonce = bulwark_crypto::random_array::<12>().map_err(|e| Error::Internal(e.to_string()))?;
                Some((bulwark_crypto::part_key(&object_key, number), nonce))
            }
            (None, Some(_)) => {
                return Err(Error::SseCNotApplicable(
                    "The multipart upload initiate did not request encryption; parts may not carry encryption parameters.".into(),
                ));
            }
            (None, None) => None,
        };
        let cipher = part_cipher.as_ref().map(|(k, n)| (k, *n));
        // Coded as the upload recorded when it began, whatever the set's
        // geometry is now: the completed object has one layout for all parts.
        let geometry = Geometry::new(upload.data, upload.parity, upload.block_size)
            .map_err(|e| Error::Internal(format!("upload {upload_id} records an invalid geometry: {e}")))?;
        let data = self
            .write_data(&set, geometry, bucket, &upload.distribution, &positions, &mut reader, false, cipher)
            .await?;
        let total = reader.total();
        let (md5, digest) = match finish_body(reader, size, &opts.content_md5, primary, &request).await {
            Ok(done) => done,
            Err(e) => {
                data.discard(&set, bucket).await;
                return Err(e);
            }
        };
        let encrypted = part_cipher.is_some();
        let etag = etag_of(md5_etag, md5)?;
        let mod_time_ns = now_ns();
        let Some(blob) = data.blob else {
            return Err(Error::Internal("part written without a blob".into()));
        };
        let record = PartRecord {
            size: data.stored_len,
            etag: etag.clone(),
            blob: hex::encode(blob),
            mod_time_ns,
            checksum: checksum::encode(&digest),
            plain_size: encrypted.then_some(total),
            nonce: part_cipher.as_ref().map(|(_, n)| hex::encode(n)),
        };
        let raw = meta::encode(&record);
        let _guard = self.lock_upload(bucket, upload_id).await;
        // Aborted or completed while the data was written: the part has no home.
        if let Err(e) = self.get_upload(&set, bucket, key, upload_id).await {
            data.discard(&set, bucket).await;
            return Err(e);
        }
        let previous = self.fetch_parts(&set, upload_id).await;
        let committed = commit_on(&set, &data.durable, |_| {
            vec![MetaOp::PutPart { upload_id: upload_id.to_owned(), number, record: raw.clone() }]
        })
        .await;
        if !set.write_satisfied(&committed) {
            // Put back what each drive held before, so that no drive lists a
            // part whose shards are about to be deleted.
            let rollback = committed.iter().map(|&position| {
                let op = match previous[position].as_ref().and_then(|parts| parts.get(&number)) {
                    Some((old_raw, _)) => {
                        MetaOp::PutPart { upload_id: upload_id.to_owned(), number, record: old_raw.clone() }
                    }
                    None => MetaOp::DeletePart { upload_id: upload_id.to_owned(), number },
                };
                let drive = set.drives[position].clone();
                async move {
                    if let Err(e) = drive.commit(vec![op]).await {
                        tracing::warn!(drive = %drive.info().label, error = %e, "part record rollback failed");
                    }
                }
            });
            join_all(rollback).await;
            data.discard(&set, bucket).await;
            return Err(Error::InsufficientDrives { needed: set.config.write_quorum, available: committed.len() });
        }
        // A re-uploaded part replaces the old one: free the old blob.
        for (position, answer) in previous.iter().enumerate() {
            if let Some((_, old)) = answer.as_ref().and_then(|parts| parts.get(&number))
                && old.blob != record.blob
                && let Some(old_blob) = read::parse_blob_id(&old.blob)
            {
                let _ = set.drives[position].delete_blobs(bucket, vec![old_blob]).await;
            }
        }
        Ok(PutOutcome {
            etag,
            size: total,
            version_id: None,
            redundancy: Redundancy { durable: committed.len(), total: set.total() },
            mod_time_ns,
            checksum: Some(StoredChecksum {
                algorithm: primary,
                kind: ChecksumType::FullObject,
                value: record.checksum.clone(),
            }),
            sse_c_key_md5: upload.encryption.as_ref().and_then(|e| e.key_md5.clone()),
            sse: upload.encryption.as_ref().and_then(crate::sse::summary),
        })
    }

    pub async fn complete_multipart_upload(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
        requested: &[CompletedPart],
        full_checksum: Option<(ChecksumAlgorithm, String)>,
        condition: &WriteCondition,
    ) -> Result<PutOutcome> {
        self.require_bucket(bucket)?;
        let set = self.set_for(bucket, key);
        let _guard = self.lock_upload(bucket, upload_id).await;
        let upload = self.get_upload(&set, bucket, key, upload_id).await?;
        if requested.is_empty() {
            return Err(Error::InvalidArgument("you must specify at least one part".into()));
        }
        if requested.windows(2).any(|w| w[0].number >= w[1].number) {
            return Err(Error::InvalidPartOrder);
        }
        let algorithm = upload.checksum_algorithm;
        let per_drive = self.fetch_parts(&set, upload_id).await;
        let merged = Self::merge_parts(&per_drive);
        let mut layouts = Vec::with_capacity(requested.len());
        let mut md5_concat = Md5::new();
        let mut size = 0u64;
        let mut holders_all: Vec<bool> = vec![true; set.total()];
        let mut part_digests = Vec::with_capacity(requested.len());
        let mut full_crc: Option<Vec<u8>> = None;
        for (index, part) in requested.iter().enumerate() {
            let number = part.number;
            let Some((record, holders)) = merged.get(&number) else {
                return Err(Error::InvalidPart(format!("part {number} was not uploaded")));
            };
            if !etag_matches(&part.etag, &record.etag) {
                return Err(Error::InvalidPart(format!("part {number}: ETag does not match")));
            }
            if holders.len() < set.data() {
                return Err(Error::InvalidPart(format!("part {number} is not readable")));
            }
            if index + 1 < requested.len() && record.plain_size.unwrap_or(record.size) < PART_SIZE_BYTES_MIN {
                return Err(Error::EntityTooSmall { part: number });
            }
            let digest = checksum::decode(algorithm, &record.checksum)
                .ok_or_else(|| Error::Internal(format!("part {number} has an unreadable checksum")))?;
            if let Some((claimed_algorithm, claimed)) = &part.checksum
                && (*claimed_algorithm != algorithm || *claimed != digest)
            {
                return Err(Error::InvalidPart(format!(
                    "part {number}: the {} checksum does not match the uploaded part",
                    claimed_algorithm.as_str()
                )));
            }
            for (position, holds) in holders_all.iter_mut().enumerate() {
                *holds &= holders.contains(&position);
            }
            md5_concat.update(&hex::decode(&record.etag).map_err(|e| Error::Internal(e.to_string()))?);
            let plain_size = record.plain_size.unwrap_or(record.size);
            full_crc = match full_crc {
                None => Some(digest.clone()),
                Some(so_far) => checksum::combine_crc(algorithm, &so_far, &digest, plain_size),
            };
            part_digests.push(digest);
            size += plain_size;
            let encrypted = record.nonce.is_some();
            layouts.push(PartLayout {
                number,
                size: record.size,
                etag: record.etag.clone(),
                blob: Some(record.blob.clone()),
                // Stored bytes of encrypted parts are ciphertext; their
                // plaintext checksum is reported, not used to verify reads.
                checksum: Some(record.checksum.clone()),
                plain_size: encrypted.then_some(plain_size),
                nonce: record.nonce.clone(),
            });
        }
        let object_checksum = match upload.checksum_type {
            ChecksumType::Composite => StoredChecksum {
                algorithm,
                kind: ChecksumType::Composite,
                value: checksum::composite(algorithm, &part_digests),
            },
            ChecksumType::FullObject => StoredChecksum {
                algorithm,
                kind: ChecksumType::FullObject,
                value: checksum::encode(
                    &full_crc.ok_or_else(|| Error::Internal("full-object checksum needs a CRC".into()))?,
                ),
            },
        };
        if let Some((claimed_algorithm, claimed)) = &full_checksum {
            let matches = *claimed_algorithm == algorithm
                && (claimed == &object_checksum.value
                    || object_checksum.value.split('-').next() == Some(claimed.split('-').next().unwrap_or_default()));
            if !matches {
                return Err(Error::ChecksumMismatch(*claimed_algorithm));
            }
        }
        let etag = format!("{}-{}", hex::encode(md5_concat.finalize()), requested.len());
        let mod_time_ns = now_ns();
        let uid = new_uid();
        let version_id = version_id_for(self.bucket_versioning(bucket)?, &uid);
        let record = VersionRecord {
            version_id: version_id.clone(),
            mod_time_ns,
            delete_marker: false,
            size,
            etag: etag.clone(),
            headers: upload.headers.clone(),
            user_meta: upload.user_meta.clone(),
            layout: Some(DataLayout {
                data: upload.data,
                parity: upload.parity,
                block_size: upload.block_size,
                distribution: upload.distribution.clone(),
                inline: false,
                parts: layouts.clone(),
                multipart: true,
            }),
            checksum: Some(object_checksum.clone()),
            encryption: upload.encryption.clone(),
            tags: upload.tags.clone(),
        };
        let positions = set.usable_positions().await;
        // Durable where the record and every part's shard are: parts written
        // while a drive was away (or before it was replaced) are not on it.
        let complete: Vec<usize> = positions.iter().copied().filter(|&p| holders_all[p]).collect();
        set.require_writable(&complete)?;
        let data = WrittenData { durable: positions.clone(), inline: None, blob: None, stored_len: 0 };
        // The upload goes with the version's commit; where the commit has to
        // be undone, each drive gets back its own upload record and parts.
        let upload_raws = join_all(set.drives.iter().map(|drive| drive.get_upload(bucket, key, upload_id))).await;
        let undo = upload_raws
            .into_iter()
            .zip(&per_drive)
            .map(|(raw, parts)| {
                let Ok(Some(raw)) = raw else { return Vec::new() };
                let mut ops = vec![MetaOp::PutUpload {
                    bucket: bucket.to_owned(),
                    key: key.to_owned(),
                    upload_id: upload_id.to_owned(),
                    record: raw,
                }];
                ops.extend(parts.iter().flatten().map(|(&number, (raw, _))| MetaOp::PutPart {
                    upload_id: upload_id.to_owned(),
                    number,
                    record: raw.clone(),
                }));
                ops
            })
            .collect();
        let extra = Extra {
            ops: vec![MetaOp::DeleteUpload {
                bucket: bucket.to_owned(),
                key: key.to_owned(),
                upload_id: upload_id.to_owned(),
            }],
            undo,
        };
        let (uid, committed) = self.commit_version(&set, bucket, key, uid, record, data, condition, extra).await?;
        let version_id = version_id.map(|_| hex::encode(uid));
        // Parts uploaded but not used are garbage now.
        let used: Vec<&str> = layouts.iter().filter_map(|l| l.blob.as_deref()).collect();
        for (position, answer) in per_drive.iter().enumerate() {
            let unused: Vec<[u8; 16]> = answer
                .iter()
                .flatten()
                .filter(|(_, (_, r))| !used.contains(&r.blob.as_str()))
                .filter_map(|(_, (_, r))| read::parse_blob_id(&r.blob))
                .collect();
            if !unused.is_empty() {
                let _ = set.drives[position].delete_blobs(bucket, unused).await;
            }
        }
        // The receipt counts drives that hold the record and every part's shard.
        let durable = committed.iter().filter(|&&p| holders_all[p]).count();
        if durable < set.total() {
            self.heal.report(bucket, key, uid, "completed upload below full redundancy");
        }
        Ok(PutOutcome {
            etag,
            size,
            version_id,
            redundancy: Redundancy { durable, total: set.total() },
            mod_time_ns,
            checksum: Some(object_checksum),
            sse_c_key_md5: upload.encryption.as_ref().and_then(|e| e.key_md5.clone()),
            sse: upload.encryption.as_ref().and_then(crate::sse::summary),
        })
    }

    pub async fn abort_multipart_upload(&self, bucket: &str, key: &str, upload_id: &str) -> Result<()> {
        self.require_bucket(bucket)?;
        let set = self.set_for(bucket, key);
        let _guard = self.lock_upload(bucket, upload_id).await;
        self.get_upload(&set, bucket, key, upload_id).await?;
        let positions = set.usable_positions().await;
        set.require_writable(&positions)?;
        let per_drive = self.fetch_parts(&set, upload_id).await;
        let ok = commit_on(&set, &positions, |_| {
            vec![MetaOp::DeleteUpload {
                bucket: bucket.to_owned(),
                key: key.to_owned(),
                upload_id: upload_id.to_owned(),
            }]
        })
        .await;
        for (position, answer) in per_drive.iter().enumerate() {
            let blobs: Vec<[u8; 16]> =
                answer.iter().flatten().filter_map(|(_, (_, r))| read::parse_blob_id(&r.blob)).collect();
            if !blobs.is_empty() {
                let _ = set.drives[position].delete_blobs(bucket, blobs).await;
            }
        }
        set.require_writable(&ok)
    }

    /// The upload, its parts, and its checksum algorithm and type when the client chose one.
    pub async fn list_parts(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
    ) -> Result<(UploadInfo, Vec<PartInfo>, Option<(ChecksumAlgorithm, ChecksumType)>)> {
        self.require_bucket(bucket)?;
        let set = self.set_for(bucket, key);
        let upload = self.get_upload(&set, bucket, key, upload_id).await?;
        let merged = Self::merge_parts(&self.fetch_parts(&set, upload_id).await);
        let parts = merged
            .into_iter()
            .map(|(number, (record, _))| PartInfo {
                number,
                size: record.size,
                etag: record.etag,
                mod_time_ns: record.mod_time_ns,
                checksum: Some(StoredChecksum {
                    algorithm: upload.checksum_algorithm,
                    kind: ChecksumType::FullObject,
                    value: record.checksum,
                }),
            })
            .collect();
        let checksum = upload.checksum_explicit.then_some((upload.checksum_algorithm, upload.checksum_type));
        Ok((
            UploadInfo { key: key.to_owned(), upload_id: upload_id.to_owned(), initiated_ns: upload.initiated_ns },
            parts,
            checksum,
        ))
    }

    pub async fn list_multipart_uploads(
        &self,
        bucket: &str,
        prefix: &str,
        delimiter: Option<&str>,
        key_marker: Option<&str>,
        upload_id_marker: Option<&str>,
        max_uploads: usize,
    ) -> Result<UploadsPage> {
        self.require_bucket(bucket)?;
        let after = key_marker.map(|k| (k.to_owned(), upload_id_marker.unwrap_or("\u{10FFFF}").to_owned()));
        let mut votes: BTreeMap<(String, String), (usize, Bytes)> = BTreeMap::new();
        let mut quorum_of: BTreeMap<(String, String), usize> = BTreeMap::new();
        for set in &self.sets {
            let answers = join_all(set.online_positions().into_iter().map(|p| {
                let drive = set.drives[p].clone();
                let after = after.clone();
                async move { drive.list_uploads(bucket, prefix, after, 10_000).await.unwrap_or_default() }
            }))
            .await;
            for (key, upload_id, raw) in answers.into_iter().flatten() {
                let id = (key, upload_id);
                votes.entry(id.clone()).or_insert((0, raw)).0 += 1;
                quorum_of.insert(id, set.data());
            }
        }
        let mut page = UploadsPage::default();
        let max_uploads = max_uploads.min(LIST_KEYS_MAX);
        let mut count = 0;
        for ((key, upload_id), (holders, raw)) in votes {
            if holders < quorum_of.get(&(key.clone(), upload_id.clone())).copied().unwrap_or(1) {
                continue;
            }
            if let Some(delimiter) = delimiter.filter(|d| !d.is_empty())
                && let Some(index) = key[prefix.len()..].find(delimiter)
            {
                let common = key[..prefix.len() + index + delimiter.len()].to_owned();
                if page.common_prefixes.last() != Some(&common) && key_marker.is_none_or(|m| common.as_str() > m) {
                    if count == max_uploads {
                        page.is_truncated = true;
                        break;
                    }
                    count += 1;
                    page.next_key_marker = Some(common.clone());
                    page.common_prefixes.push(common);
                }
                continue;
            }
            let Ok(record) = meta::decode::<UploadRecord>("upload", &raw) else {
                continue;
            };
            if count == max_uploads {
                page.is_truncated = true;
                break;
            }
            count += 1;
            page.next_key_marker = Some(key.clone());
            page.next_upload_id_marker = Some(upload_id.clone());
            page.uploads.push(UploadInfo { key, upload_id, initiated_ns: record.initiated_ns });
        }
        Ok(page)
    }
}

/// Where a write's data landed.
/// Every multipart upload of `bucket` on `drive`, as `(key, upload id)`.
pub(crate) async fn all_uploads_on(drive: &dyn Drive, bucket: &str) -> bulwark_storage::Result<Vec<(String, String)>> {
    const PAGE: usize = 1000;
    let mut uploads = Vec::new();
    let mut after = None;
    loop {
        let page = drive.list_uploads(bucket, "", after.clone(), PAGE).await?;
        let full = page.len() == PAGE;
        uploads.extend(page.into_iter().map(|(key, upload_id, _)| (key, upload_id)));
        match uploads.last() {
            Some(last) if full => after = Some(last.clone()),
            _ => return Ok(uploads),
        }
    }
}

/// [`all_uploads_on`] with the blobs of each upload's parts; what the drive
/// cannot list is left out (it keeps it, invisible without a quorum).
async fn uploads_on(drive: &dyn Drive, bucket: &str) -> Vec<(String, String, Vec<[u8; 16]>)> {
    let mut uploads = Vec::new();
    for (key, upload_id) in all_uploads_on(drive, bucket).await.unwrap_or_default() {
        let parts = drive.list_parts(&upload_id).await.unwrap_or_default();
        let blobs = parts
            .iter()
            .filter_map(|(_, raw)| meta::decode::<PartRecord>("part", raw).ok())
            .filter_map(|record| read::parse_blob_id(&record.blob))
            .collect();
        uploads.push((key, upload_id, blobs));
    }
    uploads
}

/// Ops committed with a version in the same per-drive batch, and per drive
/// position the ops that put back what they changed there, for a version
/// that has to be rolled back.
#[derive(Default)]
struct Extra {
    ops: Vec<MetaOp>,
    undo: Vec<Vec<MetaOp>>,
}

struct WrittenData {
    durable: Vec<usize>,
    /// Framed shards by shard index, for inline objects.
    inline: Option<Vec<Vec<u8>>>,
    blob: Option<[u8; 16]>,
    /// Bytes stored (ciphertext length for encrypted data).
    stored_len: u64,
}

impl WrittenData {
    async fn discard(&self, set: &ErasureSet, bucket: &str) {
        if let Some(blob) = self.blob {
            join_all(self.durable.iter().map(|&p| set.drives[p].delete_blobs(bucket, vec![blob]))).await;
        }
    }
}

/// A version listing resumed within a key (after its version marker).
struct Resume {
    key: String,
    /// The key's latest version, to flag it though it was on an earlier page.
    latest: Option<VersionUid>,
    /// Whether the key's null version was on an earlier page.
    null_listed: bool,
}

struct Cursor {
    set: usize,
    position: usize,
    buffer: VecDeque<StoredVersion>,
    from: ScanFrom,
    exhausted: bool,
    failed: bool,
}

fn skip_prefix(cursors: &mut [Cursor], common: &str) {
    for cursor in cursors.iter_mut() {
        while cursor.buffer.front().is_some_and(|v| v.key.starts_with(common)) {
            cursor.buffer.pop_front();
        }
        if cursor.buffer.is_empty() && !cursor.exhausted {
            cursor.from = ScanFrom::AfterPrefix(common.to_owned());
        }
    }
}

/// Asks every online drive of `set` at once; `None` where a drive is offline
/// or its read failed (logged).
async fn read_online_drives<T, F, Fut>(set: &ErasureSet, read: F) -> Vec<Option<T>>
where
    F: Fn(Arc<dyn bulwark_storage::Drive>) -> Fut,
    Fut: std::future::Future<Output = bulwark_storage::Result<T>>,
{
    join_all(set.drives.iter().map(|drive| {
        let reading = drive.is_online().then(|| read(drive.clone()));
        async move {
            match reading?.await {
                Ok(answer) => Some(answer),
                Err(e) => {
                    tracing::warn!(drive = %drive.info().label, error = %e, "metadata read failed");
                    None
                }
            }
        }
    }))
    .await
}

/// Commits per-position batches on `positions` in parallel; returns where it succeeded.
async fn commit_on(set: &ErasureSet, positions: &[usize], ops_for: impl Fn(usize) -> Vec<MetaOp>) -> Vec<usize> {
    let commits = positions.iter().map(|&position| {
        let drive = set.drives[position].clone();
        let ops = ops_for(position);
        async move {
            match drive.commit(ops).await {
                Ok(()) => Some(position),
                Err(e) => {
                    tracing::warn!(drive = %drive.info().label, error = %e, "metadata commit failed");
                    None
                }
            }
        }
    });
    join_all(commits).await.into_iter().flatten().collect()
}

/// Removes null-version records of `key` older than `newer_than` from every
/// online drive, with their blobs: the clean-up after an overwrite.
/// `known` is what each drive held, read under the key lock (`None`: read it now).
async fn purge_null_versions(
    set: &ErasureSet,
    bucket: &str,
    key: &str,
    newer_than: Option<VersionUid>,
    known: Vec<Option<Vec<StoredVersion>>>,
) -> Vec<usize> {
    purge_versions_known(set, bucket, key, known, |uid, record| {
        record.version_id.is_none() && newer_than.is_none_or(|newer| *uid < newer)
    })
    .await
}

/// Removes the version records of `key` that `doomed` selects from every
/// online drive, then their blobs. Returns the positions where the removal
/// is durable. A drive removes only what it holds, so a record that a down
/// drive still has stays a minority and is invisible.
async fn purge_versions(
    set: &ErasureSet,
    bucket: &str,
    key: &str,
    doomed: impl Fn(&VersionUid, &VersionRecord) -> bool,
) -> Vec<usize> {
    purge_versions_known(set, bucket, key, Vec::new(), doomed).await
}

/// [`purge_versions`] with what drives are known to hold (by position;
/// missing or `None`: read the drive).
async fn purge_versions_known(
    set: &ErasureSet,
    bucket: &str,
    key: &str,
    mut known: Vec<Option<Vec<StoredVersion>>>,
    doomed: impl Fn(&VersionUid, &VersionRecord) -> bool,
) -> Vec<usize> {
    let doomed = &doomed;
    let work = set.online_positions().into_iter().map(|position| {
        let drive = set.drives[position].clone();
        let held = known.get_mut(position).and_then(Option::take);
        async move {
            let versions = match held {
                Some(versions) => versions,
                None => drive.get_versions(bucket, key).await.ok()?,
            };
            let mut ops = Vec::new();
            let mut blobs = Vec::new();
            for stored in versions {
                let Ok(record) = meta::decode::<VersionRecord>("version", &stored.record) else {
                    continue;
                };
                if !doomed(&stored.uid, &record) {
                    continue;
                }
                ops.push(MetaOp::DeleteVersion { bucket: bucket.to_owned(), key: key.to_owned(), uid: stored.uid });
                if let Some(layout) = &record.layout {
                    blobs.extend(layout.parts.iter().filter_map(|p| p.blob.as_deref().and_then(read::parse_blob_id)));
                }
            }
            if !ops.is_empty() {
                drive.commit(ops).await.ok()?;
            }
            if !blobs.is_empty()
                && let Err(e) = drive.delete_blobs(bucket, blobs).await
            {
                tracing::warn!(drive = %drive.info().label, error = %e, "old blobs not deleted");
            }
            Some(position)
        }
    });
    join_all(work).await.into_iter().flatten().collect()
}

/// Version id of a new version: a time-ordered id in an enabled bucket, the
/// null version otherwise.
fn version_id_for(versioning: Versioning, uid: &VersionUid) -> Option<String> {
    (versioning == Versioning::Enabled).then(|| hex::encode(uid))
}

/// Parses a version id from a request: `null` or one of ours (32 hex digits).
fn parse_version_id(id: &str) -> Result<Option<&str>> {
    if id == "null" {
        return Ok(None);
    }
    if id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Ok(Some(id));
    }
    Err(Error::InvalidArgument("Invalid version id specified".into()))
}

fn verify_body(
    declared: Option<u64>,
    total: u64,
    expected_md5: &Option<[u8; 16]>,
    md5: Option<&[u8; 16]>,
) -> Result<()> {
    if declared.is_some_and(|d| d != total) {
        return Err(Error::IncompleteBody);
    }
    if let Some(expected) = expected_md5
        && Some(expected) != md5
    {
        return Err(Error::BadDigest);
    }
    Ok(())
}

/// The ETag of a body: its MD5, or random bytes for encrypted data whose
/// ETag must not reveal a hash of the plaintext.
fn etag_of(md5_etag: bool, md5: Option<[u8; 16]>) -> Result<String> {
    match (md5_etag, md5) {
        (true, Some(md5)) => Ok(hex::encode(md5)),
        (true, None) => Err(Error::Internal("the MD5 of the body was not computed".into())),
        (false, _) => crate::sse::random_etag(),
    }
}

/// The checksum computed when the client names none (as S3 does since 2025).
const DEFAULT_CHECKSUM: ChecksumAlgorithm = ChecksumAlgorithm::Crc64nvme;

/// One part named in CompleteMultipartUpload.
#[derive(Debug, Clone)]
pub struct CompletedPart {
    pub number: u32,
    pub etag: String,
    /// A part checksum the client included, decoded.
    pub checksum: Option<(ChecksumAlgorithm, Vec<u8>)>,
}

/// Ends a body: finishes hashing and checks length, Content-MD5 and
/// checksums against what the client declared. Returns the MD5 and the
/// primary checksum digest.
async fn finish_body(
    reader: BodyReader,
    declared: Option<u64>,
    content_md5: &Option<[u8; 16]>,
    primary: ChecksumAlgorithm,
    request: &crate::ChecksumRequest,
) -> Result<(Option<[u8; 16]>, Vec<u8>)> {
    let total = reader.total();
    let (md5, digests) = reader.finish().await?;
    verify_body(declared, total, content_md5, md5.as_ref())?;
    let digest = verify_checksums(primary, request, &digests)?;
    Ok((md5, digest))
}

/// Compares computed digests with what the client claimed; returns the
/// primary digest.
fn verify_checksums(
    primary: ChecksumAlgorithm,
    request: &crate::ChecksumRequest,
    digests: &[(ChecksumAlgorithm, Vec<u8>)],
) -> Result<Vec<u8>> {
    let digest_of = |algorithm: ChecksumAlgorithm| {
        digests
            .iter()
            .find(|(a, _)| *a == algorithm)
            .map(|(_, d)| d.clone())
            .ok_or_else(|| Error::Internal(format!("{} was not computed", algorithm.as_str())))
    };
    let primary_digest = digest_of(primary)?;
    if let Some(expected) = &request.expected
        && let Some(expected) = expected.resolve()?
        && expected != primary_digest
    {
        return Err(Error::ChecksumMismatch(primary));
    }
    for (algorithm, expected) in &request.also_verify {
        if let Some(expected) = expected.resolve()?
            && expected != digest_of(*algorithm)?
        {
            return Err(Error::ChecksumMismatch(*algorithm));
        }
    }
    Ok(primary_digest)
}

fn etag_matches(condition: &str, etag: &str) -> bool {
    condition.split(',').map(|c| c.trim().trim_start_matches("W/").trim_matches('"')).any(|c| c == "*" || c == etag)
}

/// RFC 7232 precedence, as S3 applies it.
fn check_conditions(info: &ObjectInfo, c: &ReadConditions) -> Result<()> {
    let seconds = |ns: i64| ns.div_euclid(1_000_000_000);
    let modified = seconds(info.mod_time_ns);
    if let Some(if_match) = &c.if_match {
        if !etag_matches(if_match, &info.etag) {
            return Err(Error::PreconditionFailed);
        }
    } else if let Some(since) = c.if_unmodified_since_ns
        && modified > seconds(since)
    {
        return Err(Error::PreconditionFailed);
    }
    let not_modified = if c.copy_source { Error::PreconditionFailed } else { Error::NotModified };
    if let Some(if_none_match) = &c.if_none_match {
        if etag_matches(if_none_match, &info.etag) {
            return Err(not_modified);
        }
    } else if let Some(since) = c.if_modified_since_ns
        && modified <= seconds(since)
    {
        return Err(not_modified);
    }
    Ok(())
}

fn resolve_range(info: &ObjectInfo, opts: &GetOptions) -> Result<Option<ByteRange>> {
    if let Some(number) = opts.part_number {
        let mut start = 0;
        for part in &info.parts {
            if part.number == number {
                if part.size == 0 {
                    return Ok(None);
                }
                return Ok(Some(ByteRange { start, end_inclusive: start + part.size - 1 }));
            }
            start += part.size;
        }
        if number == 1 && info.size == 0 {
            return Ok(None);
        }
        return Err(Error::InvalidPartNumber);
    }
    let Some(spec) = opts.range else {
        return Ok(None);
    };
    let size = info.size;
    let range = match spec {
        RangeSpec::FromTo { first, last } => {
            if first >= size {
                return Err(Error::InvalidRange);
            }
            let last = last.unwrap_or(size - 1).min(size - 1);
            if last < first {
                return Err(Error::InvalidRange);
            }
            ByteRange { start: first, end_inclusive: last }
        }
        RangeSpec::Suffix { length } => {
            if length == 0 || size == 0 {
                return Err(Error::InvalidRange);
            }
            ByteRange { start: size.saturating_sub(length), end_inclusive: size - 1 }
        }
    };
    Ok(Some(range))
}

impl std::fmt::Debug for ObjectStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ObjectStore").field("sets", &self.sets.len()).finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn uid(high: u64, low: u64) -> VersionUid {
        ((u128::from(high) << 64) | u128::from(low)).to_be_bytes()
    }

    /// A UUIDv7: version nibble 7, variant bits 10.
    fn is_v7(uid: &VersionUid) -> bool {
        uuid::Uuid::from_bytes(*uid).get_version_num() == 7
            && uuid::Uuid::from_bytes(*uid).get_variant() == uuid::Variant::RFC4122
    }

    #[test]
    fn the_uid_after_another_sorts_right_after_it_and_is_still_a_uuid_v7() {
        let cases = [
            new_uid(),
            // Tail spent: the next rand_a.
            uid(0x0123_4567_89ab_7abc, 0xbfff_ffff_ffff_ffff),
            // Tail and rand_a spent: the next millisecond.
            uid(0x0123_4567_89ab_7fff, 0xbfff_ffff_ffff_ffff),
        ];
        for before in cases {
            let after = uid_after(&before);
            assert!(after > before, "{} must sort after {}", hex::encode(after), hex::encode(before));
            assert!(is_v7(&after), "{} is a UUIDv7", hex::encode(after));
        }
        assert_eq!(
            uid_after(&uid(0x0123_4567_89ab_7abc, 0x8000_0000_0000_0005)),
            uid(0x0123_4567_89ab_7abc, 0x8000_0000_0000_0006)
        );
        assert_eq!(uid_after(&cases[1]), uid(0x0123_4567_89ab_7abd, 0x8000_0000_0000_0000));
        assert_eq!(uid_after(&cases[2]), uid(0x0123_4567_89ac_7000, 0x8000_0000_0000_0000));
    }
}
