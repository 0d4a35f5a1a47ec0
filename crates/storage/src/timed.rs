//! Drive calls with a deadline.
//!
//! A failing disk often hangs instead of failing: an fsync or a read that
//! never returns would hold a PUT (and the key lock it holds) or a GET for as
//! long as the disk hangs, although the other drives of the set could serve
//! the request. [`TimedDrive`] gives every call on the drive underneath, and
//! on the blobs it opens, `limit` to finish; a call that takes longer fails
//! with [`Error::TimedOut`], which callers treat as they treat any drive
//! failure (the write goes on with the other drives and is queued for heal;
//! the read rebuilds from parity). The drive is then held offline for
//! [`SUSPECT_COOLDOWN`], so that the requests that follow skip it at once
//! instead of each waiting `limit`; a health check after the cool-down lets it
//! back in. The call that timed out keeps its thread until the disk answers.

use std::sync::Arc;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::Bytes;

use crate::{
    BlobId, BlobReader, BlobWriter, Drive, DriveInfo, Error, MetaOp, Result, ScanFrom, StoredVersion, VersionUid,
};

/// How long a drive that timed out is held offline before a health check may
/// let it back in.
pub const SUSPECT_COOLDOWN: Duration = Duration::from_secs(30);
/// Bound of one blob directory listing (orphan reclamation), far above what
/// a healthy disk needs even for a million blobs.
pub const LISTING_TIMEOUT: Duration = Duration::from_secs(600);

/// When the drive last timed out; shared with the blobs it opened.
#[derive(Debug)]
struct Deadline {
    label: String,
    limit: Duration,
    cooldown: Duration,
    timed_out_at: Mutex<Option<Instant>>,
}

impl Deadline {
    /// Runs `call`; past the limit, marks the drive suspect and fails.
    async fn run<T>(&self, call: impl std::future::Future<Output = Result<T>>) -> Result<T> {
        match tokio::time::timeout(self.limit, call).await {
            Ok(result) => result,
            Err(_) => {
                self.mark();
                Err(Error::TimedOut { drive: self.label.clone(), secs: self.limit.as_secs() })
            }
        }
    }

    fn mark(&self) {
        let mut at = self.timed_out_at.lock().unwrap_or_else(|e| e.into_inner());
        if at.is_none() {
            tracing::error!(drive = %self.label, limit_secs = self.limit.as_secs(),
                "drive call timed out; drive held offline, requests go on with the other drives");
        }
        *at = Some(Instant::now());
    }

    fn cooling_down(&self) -> bool {
        let at = self.timed_out_at.lock().unwrap_or_else(|e| e.into_inner());
        at.is_some_and(|at| at.elapsed() < self.cooldown)
    }

    fn suspect(&self) -> bool {
        self.timed_out_at.lock().unwrap_or_else(|e| e.into_inner()).is_some()
    }

    fn clear(&self) {
        let mut at = self.timed_out_at.lock().unwrap_or_else(|e| e.into_inner());
        if at.take().is_some() {
            tracing::warn!(drive = %self.label, "drive answers in time again; back online");
        }
    }
}

/// A drive whose every call has `limit` to finish (see the module docs).
#[derive(Debug)]
pub struct TimedDrive {
    inner: Arc<dyn Drive>,
    deadline: Arc<Deadline>,
}

impl TimedDrive {
    async fn listing<T>(&self, call: impl std::future::Future<Output = Result<T>>) -> Result<T> {
        match tokio::time::timeout(LISTING_TIMEOUT, call).await {
            Ok(result) => result,
            Err(_) => Err(Error::TimedOut { drive: self.inner.info().label.clone(), secs: LISTING_TIMEOUT.as_secs() }),
        }
    }
}

impl TimedDrive {
    pub fn new(inner: Arc<dyn Drive>, limit: Duration) -> TimedDrive {
        TimedDrive::with_cooldown(inner, limit, SUSPECT_COOLDOWN)
    }

    /// As [`TimedDrive::new`], with its own cool-down (tests).
    pub fn with_cooldown(inner: Arc<dyn Drive>, limit: Duration, cooldown: Duration) -> TimedDrive {
        let deadline = Deadline { label: inner.info().label.clone(), limit, cooldown, timed_out_at: Mutex::new(None) };
        TimedDrive { inner, deadline: Arc::new(deadline) }
    }
}

#[async_trait]
impl Drive for TimedDrive {
    fn info(&self) -> &DriveInfo {
        self.inner.info()
    }
    fn is_online(&self) -> bool {
        !self.deadline.suspect() && self.inner.is_online()
    }
    async fn check_health(&self) -> bool {
        if self.deadline.cooling_down() {
            return false;
        }
        match tokio::time::timeout(self.deadline.limit, self.inner.check_health()).await {
            Ok(healthy) => {
                if healthy {
                    self.deadline.clear();
                }
                healthy
            }
            Err(_) => {
                self.deadline.mark();
                false
            }
        }
    }
    async fn create_blob(&self, bucket: &str, blob: BlobId) -> Result<Box<dyn BlobWriter>> {
        let inner = self.deadline.run(self.inner.create_blob(bucket, blob)).await?;
        Ok(Box::new(TimedBlobWriter { inner: Some(inner), deadline: self.deadline.clone() }))
    }
    async fn open_blob(&self, bucket: &str, blob: BlobId) -> Result<Box<dyn BlobReader>> {
        let inner = self.deadline.run(self.inner.open_blob(bucket, blob)).await?;
        Ok(Box::new(TimedBlobReader { inner, deadline: self.deadline.clone() }))
    }
    async fn delete_blobs(&self, bucket: &str, blobs: Vec<BlobId>) -> Result<()> {
        self.deadline.run(self.inner.delete_blobs(bucket, blobs)).await
    }
    // Listings walk whole directories, so they get a bound of their own and
    // do not mark the drive: only the background pass that asked fails.
    async fn blob_buckets(&self) -> Result<Vec<String>> {
        self.listing(self.inner.blob_buckets()).await
    }
    async fn blobs_modified_before(
        &self,
        bucket: &str,
        fan_out: u8,
        before: std::time::SystemTime,
    ) -> Result<Vec<BlobId>> {
        self.listing(self.inner.blobs_modified_before(bucket, fan_out, before)).await
    }
    async fn commit(&self, ops: Vec<MetaOp>) -> Result<()> {
        self.deadline.run(self.inner.commit(ops)).await
    }
    async fn get_versions(&self, bucket: &str, key: &str) -> Result<Vec<StoredVersion>> {
        self.deadline.run(self.inner.get_versions(bucket, key)).await
    }
    async fn get_newest_versions(&self, bucket: &str, key: &str, limit: usize) -> Result<Vec<StoredVersion>> {
        self.deadline.run(self.inner.get_newest_versions(bucket, key, limit)).await
    }
    async fn get_version(&self, bucket: &str, key: &str, uid: VersionUid) -> Result<Option<StoredVersion>> {
        self.deadline.run(self.inner.get_version(bucket, key, uid)).await
    }
    async fn get_inline(&self, uid: VersionUid) -> Result<Option<Bytes>> {
        self.deadline.run(self.inner.get_inline(uid)).await
    }
    async fn scan_versions(
        &self,
        bucket: &str,
        prefix: &str,
        from: ScanFrom,
        limit: usize,
    ) -> Result<Vec<StoredVersion>> {
        self.deadline.run(self.inner.scan_versions(bucket, prefix, from, limit)).await
    }
    async fn list_buckets(&self) -> Result<Vec<(String, Bytes)>> {
        self.deadline.run(self.inner.list_buckets()).await
    }
    async fn bucket_is_empty(&self, bucket: &str) -> Result<bool> {
        self.deadline.run(self.inner.bucket_is_empty(bucket)).await
    }
    async fn get_upload(&self, bucket: &str, key: &str, upload_id: &str) -> Result<Option<Bytes>> {
        self.deadline.run(self.inner.get_upload(bucket, key, upload_id)).await
    }
    async fn list_uploads(
        &self,
        bucket: &str,
        prefix: &str,
        after: Option<(String, String)>,
        limit: usize,
    ) -> Result<Vec<(String, String, Bytes)>> {
        self.deadline.run(self.inner.list_uploads(bucket, prefix, after, limit)).await
    }
    async fn list_parts(&self, upload_id: &str) -> Result<Vec<(u32, Bytes)>> {
        self.deadline.run(self.inner.list_parts(upload_id)).await
    }
    async fn get_system(&self, name: &str) -> Result<Option<Bytes>> {
        self.deadline.run(self.inner.get_system(name)).await
    }
    async fn list_system(&self, prefix: &str) -> Result<Vec<(String, Bytes)>> {
        self.deadline.run(self.inner.list_system(prefix)).await
    }
}

/// A blob being written, each call under the drive's deadline.
struct TimedBlobWriter {
    /// Taken by `commit` and `abort`.
    inner: Option<Box<dyn BlobWriter>>,
    deadline: Arc<Deadline>,
}

#[async_trait]
impl BlobWriter for TimedBlobWriter {
    async fn write(&mut self, parts: Vec<Bytes>) -> Result<()> {
        let inner = self.inner.as_mut().ok_or_else(|| Error::Offline { drive: self.deadline.label.clone() })?;
        self.deadline.run(inner.write(parts)).await
    }
    async fn commit(mut self: Box<Self>) -> Result<()> {
        let inner = self.inner.take().ok_or_else(|| Error::Offline { drive: self.deadline.label.clone() })?;
        self.deadline.run(inner.commit()).await
    }
    async fn abort(mut self: Box<Self>) {
        if let Some(inner) = self.inner.take() {
            // Best effort: a hung drive's temp file is removed at its next start.
            let _ = tokio::time::timeout(self.deadline.limit, inner.abort()).await;
        }
    }
}

/// A blob being read, each read under the drive's deadline.
struct TimedBlobReader {
    inner: Box<dyn BlobReader>,
    deadline: Arc<Deadline>,
}

#[async_trait]
impl BlobReader for TimedBlobReader {
    fn len(&self) -> u64 {
        self.inner.len()
    }
    async fn read_at(&self, offset: u64, len: usize) -> Result<Bytes> {
        self.deadline.run(self.inner.read_at(offset, len)).await
    }
    async fn read_at_owned(&self, offset: u64, len: usize) -> Result<Bytes> {
        self.deadline.run(self.inner.read_at_owned(offset, len)).await
    }
}
