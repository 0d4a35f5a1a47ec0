//! A drive slot whose drive can be replaced while the server runs.
//!
//! The erasure set keeps one `SwappableDrive` per position; when a blank
//! replacement disk appears where a failed drive was, the server formats it
//! and swaps it in, and healing rebuilds its contents. Calls in flight keep
//! the drive they started with.

use std::sync::{Arc, RwLock};

use async_trait::async_trait;
use bytes::Bytes;

use crate::{BlobId, BlobReader, BlobWriter, Drive, DriveInfo, MetaOp, Result, ScanFrom, StoredVersion, VersionUid};

pub struct SwappableDrive {
    info: DriveInfo,
    current: RwLock<Arc<dyn Drive>>,
}

impl std::fmt::Debug for SwappableDrive {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SwappableDrive").field("label", &self.info.label).finish_non_exhaustive()
    }
}

impl SwappableDrive {
    pub fn new(drive: Arc<dyn Drive>) -> SwappableDrive {
        SwappableDrive { info: drive.info().clone(), current: RwLock::new(drive) }
    }

    pub fn current(&self) -> Arc<dyn Drive> {
        self.current.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Puts `drive` in this slot from now on.
    pub fn replace(&self, drive: Arc<dyn Drive>) {
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = drive;
    }
}

#[async_trait]
impl Drive for SwappableDrive {
    fn info(&self) -> &DriveInfo {
        &self.info
    }
    fn is_online(&self) -> bool {
        self.current().is_online()
    }
    async fn check_health(&self) -> bool {
        self.current().check_health().await
    }
    async fn create_blob(&self, bucket: &str, blob: BlobId) -> Result<Box<dyn BlobWriter>> {
        self.current().create_blob(bucket, blob).await
    }
    async fn open_blob(&self, bucket: &str, blob: BlobId) -> Result<Box<dyn BlobReader>> {
        self.current().open_blob(bucket, blob).await
    }
    async fn delete_blobs(&self, bucket: &str, blobs: Vec<BlobId>) -> Result<()> {
        self.current().delete_blobs(bucket, blobs).await
    }
    async fn blob_buckets(&self) -> Result<Vec<String>> {
        self.current().blob_buckets().await
    }
    async fn blobs_modified_before(
        &self,
        bucket: &str,
        fan_out: u8,
        before: std::time::SystemTime,
    ) -> Result<Vec<BlobId>> {
        self.current().blobs_modified_before(bucket, fan_out, before).await
    }
    async fn commit(&self, ops: Vec<MetaOp>) -> Result<()> {
        self.current().commit(ops).await
    }
    async fn get_versions(&self, bucket: &str, key: &str) -> Result<Vec<StoredVersion>> {
        self.current().get_versions(bucket, key).await
    }
    async fn get_newest_versions(&self, bucket: &str, key: &str, limit: usize) -> Result<Vec<StoredVersion>> {
        self.current().get_newest_versions(bucket, key, limit).await
    }
    async fn get_version(&self, bucket: &str, key: &str, uid: VersionUid) -> Result<Option<StoredVersion>> {
        self.current().get_version(bucket, key, uid).await
    }
    async fn get_inline(&self, uid: VersionUid) -> Result<Option<Bytes>> {
        self.current().get_inline(uid).await
    }
    async fn scan_versions(
        &self,
        bucket: &str,
        prefix: &str,
        from: ScanFrom,
        limit: usize,
    ) -> Result<Vec<StoredVersion>> {
        self.current().scan_versions(bucket, prefix, from, limit).await
    }
    async fn list_buckets(&self) -> Result<Vec<(String, Bytes)>> {
        self.current().list_buckets().await
    }
    async fn bucket_is_empty(&self, bucket: &str) -> Result<bool> {
        self.current().bucket_is_empty(bucket).await
    }
    async fn get_upload(&self, bucket: &str, key: &str, upload_id: &str) -> Result<Option<Bytes>> {
        self.current().get_upload(bucket, key, upload_id).await
    }
    async fn list_uploads(
        &self,
        bucket: &str,
        prefix: &str,
        after: Option<(String, String)>,
        limit: usize,
    ) -> Result<Vec<(String, String, Bytes)>> {
        self.current().list_uploads(bucket, prefix, after, limit).await
    }
    async fn list_parts(&self, upload_id: &str) -> Result<Vec<(u32, Bytes)>> {
        self.current().list_parts(upload_id).await
    }
    async fn get_system(&self, name: &str) -> Result<Option<Bytes>> {
        self.current().get_system(name).await
    }
    async fn list_system(&self, prefix: &str) -> Result<Vec<(String, Bytes)>> {
        self.current().list_system(prefix).await
    }
}
