//! A store on six local directories in three facilities, one 4+2 set: the
//! shape of the embedded default, for tests of this and higher layers
//! (real drives, nothing mocked).

use std::path::Path;
use std::sync::Arc;

use bulwark_storage::local::{FORMAT_VERSION, Format, LocalDrive};
use bulwark_storage::{
    BlobId, BlobReader, BlobWriter, Drive, DriveInfo, MetaOp, Result as StorageResult, ScanFrom, StoredVersion,
    VersionUid,
};
use bytes::Bytes;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::{ErasureSet, ObjectStore, SetConfig};

/// Formats `dir/drive-{0..6}` and opens a store over them; also returns the
/// drives, for tests that reach under the store.
pub async fn local_store(dir: &Path) -> (ObjectStore, Vec<Arc<dyn Drive>>) {
    let (store, drives) = local_store_with(dir, |drive| drive).await;
    (store, drives)
}

/// [`local_store`] whose drives each pass through `wrap` (a fault injector)
/// before the store opens over them; returns the wrapped drives.
pub async fn local_store_with<D: IntoDrive + ?Sized + 'static>(
    dir: &Path,
    wrap: impl Fn(Arc<dyn Drive>) -> Arc<D>,
) -> (ObjectStore, Vec<Arc<D>>) {
    let mut drives: Vec<Arc<D>> = Vec::new();
    for position in 0..6 {
        let root = dir.join(format!("drive-{position}"));
        std::fs::create_dir_all(&root).expect("drive dir");
        let format = Format {
            format: FORMAT_VERSION,
            cluster_id: "test".into(),
            drive_id: format!("d{position}"),
            set_index: 0,
            position,
            facility: format!("f{}", position / 2),
        };
        format.write(&root).expect("format");
        drives.push(wrap(Arc::new(LocalDrive::open(&root, format).expect("open"))));
    }
    let members: Vec<Arc<dyn Drive>> = drives.iter().map(|d| as_drive(d.clone())).collect();
    let set = ErasureSet::new(members, SetConfig { data: 4, parity: 2, write_quorum: 5, strict_facility: false })
        .expect("set");
    (ObjectStore::open(vec![set]).await.expect("store"), drives)
}

/// Gives up the concrete type of a wrapped drive (`Arc<dyn Drive>` stays as is).
pub trait IntoDrive {
    fn into_drive(self: Arc<Self>) -> Arc<dyn Drive>;
}

impl IntoDrive for dyn Drive {
    fn into_drive(self: Arc<Self>) -> Arc<dyn Drive> {
        self
    }
}

impl IntoDrive for FaultyDrive {
    fn into_drive(self: Arc<Self>) -> Arc<dyn Drive> {
        self
    }
}

impl IntoDrive for bulwark_storage::timed::TimedDrive {
    fn into_drive(self: Arc<Self>) -> Arc<dyn Drive> {
        self
    }
}

fn as_drive<D: IntoDrive + ?Sized>(drive: Arc<D>) -> Arc<dyn Drive> {
    drive.into_drive()
}

/// A real drive with faults switched on and off by the test: metadata
/// commits that fail (a disk that errors on write but still reads), or every
/// call hanging (a disk that stops answering). Everything else goes to the
/// drive underneath.
#[derive(Debug)]
pub struct FaultyDrive {
    inner: Arc<dyn Drive>,
    failing_commits: AtomicBool,
    failing_blob_writes: AtomicBool,
    hanging: AtomicBool,
}

impl FaultyDrive {
    pub fn wrap(inner: Arc<dyn Drive>) -> Arc<FaultyDrive> {
        Arc::new(FaultyDrive {
            inner,
            failing_commits: AtomicBool::new(false),
            failing_blob_writes: AtomicBool::new(false),
            hanging: AtomicBool::new(false),
        })
    }

    /// New blobs cannot be created while set (a full or read-only disk).
    pub fn fail_blob_writes(&self, failing: bool) {
        self.failing_blob_writes.store(failing, Ordering::SeqCst);
    }

    /// Metadata commits fail while set.
    pub fn fail_commits(&self, failing: bool) {
        self.failing_commits.store(failing, Ordering::SeqCst);
    }

    /// Every call made while set never returns.
    pub fn hang(&self, hanging: bool) {
        self.hanging.store(hanging, Ordering::SeqCst);
    }

    async fn answer(&self) {
        if self.hanging.load(Ordering::SeqCst) {
            std::future::pending::<()>().await;
        }
    }
}

#[async_trait::async_trait]
impl Drive for FaultyDrive {
    fn info(&self) -> &DriveInfo {
        self.inner.info()
    }
    fn is_online(&self) -> bool {
        self.inner.is_online()
    }
    async fn check_health(&self) -> bool {
        self.answer().await;
        self.inner.check_health().await
    }
    async fn create_blob(&self, bucket: &str, blob: BlobId) -> StorageResult<Box<dyn BlobWriter>> {
        self.answer().await;
        if self.failing_blob_writes.load(Ordering::SeqCst) {
            let source = std::io::Error::new(std::io::ErrorKind::StorageFull, "no space left on device");
            return Err(bulwark_storage::Error::Io { drive: self.info().label.clone(), source });
        }
        self.inner.create_blob(bucket, blob).await
    }
    async fn open_blob(&self, bucket: &str, blob: BlobId) -> StorageResult<Box<dyn BlobReader>> {
        self.answer().await;
        self.inner.open_blob(bucket, blob).await
    }
    async fn delete_blobs(&self, bucket: &str, blobs: Vec<BlobId>) -> StorageResult<()> {
        self.answer().await;
        self.inner.delete_blobs(bucket, blobs).await
    }
    async fn blob_buckets(&self) -> StorageResult<Vec<String>> {
        self.answer().await;
        self.inner.blob_buckets().await
    }
    async fn blobs_modified_before(
        &self,
        bucket: &str,
        fan_out: u8,
        before: std::time::SystemTime,
    ) -> StorageResult<Vec<BlobId>> {
        self.answer().await;
        self.inner.blobs_modified_before(bucket, fan_out, before).await
    }
    async fn commit(&self, ops: Vec<MetaOp>) -> StorageResult<()> {
        self.answer().await;
        if self.failing_commits.load(Ordering::SeqCst) {
            return Err(bulwark_storage::Error::Offline { drive: self.info().label.clone() });
        }
        self.inner.commit(ops).await
    }
    async fn get_versions(&self, bucket: &str, key: &str) -> StorageResult<Vec<StoredVersion>> {
        self.answer().await;
        self.inner.get_versions(bucket, key).await
    }
    async fn get_inline(&self, uid: VersionUid) -> StorageResult<Option<Bytes>> {
        self.answer().await;
        self.inner.get_inline(uid).await
    }
    async fn scan_versions(
        &self,
        bucket: &str,
        prefix: &str,
        from: ScanFrom,
        limit: usize,
    ) -> StorageResult<Vec<StoredVersion>> {
        self.answer().await;
        self.inner.scan_versions(bucket, prefix, from, limit).await
    }
    async fn list_buckets(&self) -> StorageResult<Vec<(String, Bytes)>> {
        self.answer().await;
        self.inner.list_buckets().await
    }
    async fn bucket_is_empty(&self, bucket: &str) -> StorageResult<bool> {
        self.answer().await;
        self.inner.bucket_is_empty(bucket).await
    }
    async fn get_upload(&self, bucket: &str, key: &str, upload_id: &str) -> StorageResult<Option<Bytes>> {
        self.answer().await;
        self.inner.get_upload(bucket, key, upload_id).await
    }
    async fn list_uploads(
        &self,
        bucket: &str,
        prefix: &str,
        after: Option<(String, String)>,
        limit: usize,
    ) -> StorageResult<Vec<(String, String, Bytes)>> {
        self.answer().await;
        self.inner.list_uploads(bucket, prefix, after, limit).await
    }
    async fn list_parts(&self, upload_id: &str) -> StorageResult<Vec<(u32, Bytes)>> {
        self.answer().await;
        self.inner.list_parts(upload_id).await
    }
    async fn get_system(&self, name: &str) -> StorageResult<Option<Bytes>> {
        self.answer().await;
        self.inner.get_system(name).await
    }
    async fn list_system(&self, prefix: &str) -> StorageResult<Vec<(String, Bytes)>> {
        self.answer().await;
        self.inner.list_system(prefix).await
    }
}

/// Takes the drive at `position` of a [`local_store`] under `dir` offline (its
/// format file moved away, as when its disk is pulled) or brings it back.
pub async fn set_drive_online(dir: &Path, drive: &Arc<dyn Drive>, position: usize, online: bool) {
    let system = dir.join(format!("drive-{position}")).join(".bulwark");
    let (present, away) = (system.join("format.json"), system.join("format.json.away"));
    let (from, to) = if online { (away, present) } else { (present, away) };
    std::fs::rename(from, to).expect("move the format file");
    assert_eq!(drive.check_health().await, online, "drive {position} online = {online}");
}

/// A request body of `data`, in one chunk.
pub fn body(data: Vec<u8>) -> crate::ByteStream {
    Box::pin(futures::stream::once(async move { Ok(Bytes::from(data)) }))
}

/// The bytes of `key` in `bucket` (version `version_id`, or the latest), or
/// what stopped the read.
pub async fn read_object(
    store: &ObjectStore,
    bucket: &str,
    key: &str,
    version_id: Option<&str>,
) -> Result<Vec<u8>, String> {
    use futures::StreamExt;
    let opts = crate::GetOptions { version_id: version_id.map(str::to_owned), ..crate::GetOptions::default() };
    let outcome = store.get_object(bucket, key, &opts).await.map_err(|e| e.to_string())?;
    let mut read = Vec::new();
    let mut stream = outcome.body;
    while let Some(chunk) = stream.next().await {
        read.extend_from_slice(&chunk.map_err(|e| e.to_string())?);
    }
    Ok(read)
}
