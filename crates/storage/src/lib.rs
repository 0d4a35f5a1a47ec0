//! The drive abstraction: everything the erasure engine may ask of one drive.
//!
//! Contract: a [`Drive`] stores two kinds of things for the object layer —
//! *blobs* (the shard files of object data, written once, read at offsets) and
//! *metadata records* (opaque bytes under ordered keys, changed only in atomic,
//! durable batches through [`Drive::commit`]). A drive never interprets a
//! record; the object layer owns their format. Every call that returns `Ok`
//! after a write has made that write durable (fsynced, directory included).
//!
//! The trait is async and object-safe and takes no paths, so that a drive on
//! another node (over RPC) can implement it later; [`local::LocalDrive`] is the
//! implementation over one local directory. Layout and commit rules are in
//! `docs/design/drive-layout.md`.
#![forbid(unsafe_code)]

use std::fmt;

use async_trait::async_trait;
use bytes::Bytes;

pub mod buffers;
pub mod keys;
pub mod local;
pub mod swap;
pub mod timed;

/// Identity of one blob (the shard file of one object part on one drive).
pub type BlobId = [u8; 16];
/// Identity of one stored version record; its byte order is its age order
/// (UUIDv7: newer ids sort higher).
pub type VersionUid = [u8; 16];

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("drive {drive} is offline")]
    Offline { drive: String },
    #[error("blob not found on drive {drive}")]
    BlobNotFound { drive: String },
    #[error("I/O error on drive {drive}: {source}")]
    Io {
        drive: String,
        #[source]
        source: std::io::Error,
    },
    #[error("metadata store error on drive {drive}: {detail}")]
    Store { drive: String, detail: String },
    #[error("short read on drive {drive}: wanted {wanted} bytes at {offset}, file holds {len}")]
    ShortRead { drive: String, offset: u64, wanted: usize, len: u64 },
    #[error("drive {drive} format: {detail}")]
    Format { drive: String, detail: String },
    #[error("drive {drive} did not answer within {secs} s")]
    TimedOut { drive: String, secs: u64 },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Where a drive sits in the topology.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DriveInfo {
    /// Human-readable name: the path of a local drive, later `node:/path`.
    pub label: String,
    /// Failure domain label (a rack, a room, a zone).
    pub facility: String,
}

/// One stored version record as kept by a drive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredVersion {
    pub key: String,
    pub uid: VersionUid,
    pub record: Bytes,
}

/// One change inside an atomic metadata batch.
#[derive(Debug, Clone)]
pub enum MetaOp {
    PutBucket {
        bucket: String,
        record: Bytes,
    },
    DeleteBucket {
        bucket: String,
    },
    /// Stores a version record; `inline` is this drive's shard of a small object.
    PutVersion {
        bucket: String,
        key: String,
        uid: VersionUid,
        record: Bytes,
        inline: Option<Bytes>,
    },
    /// Removes a version record and its inline shard, if any.
    DeleteVersion {
        bucket: String,
        key: String,
        uid: VersionUid,
    },
    PutUpload {
        bucket: String,
        key: String,
        upload_id: String,
        record: Bytes,
    },
    /// Removes an upload and every part record under it.
    DeleteUpload {
        bucket: String,
        key: String,
        upload_id: String,
    },
    PutPart {
        upload_id: String,
        number: u32,
        record: Bytes,
    },
    /// Removes one part record (rolling back a part write that missed its quorum).
    DeletePart {
        upload_id: String,
        number: u32,
    },
    PutSystem {
        name: String,
        value: Bytes,
    },
    DeleteSystem {
        name: String,
    },
}

/// Where a version scan continues.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScanFrom {
    /// From the first key with the prefix.
    Start,
    /// After every version of `key`.
    AfterKey(String),
    /// After the version `uid` of `key` (later versions of the same key first).
    AfterVersion(String, VersionUid),
    /// After every key that starts with this prefix (a listing's rolled-up
    /// common prefix).
    AfterPrefix(String),
}

#[async_trait]
pub trait Drive: Send + Sync + fmt::Debug {
    fn info(&self) -> &DriveInfo;

    /// Whether the drive is believed usable; a failed health check flips it.
    fn is_online(&self) -> bool;

    /// Re-checks that the drive is present and formatted as expected; updates
    /// [`Drive::is_online`].
    async fn check_health(&self) -> bool;

    /// Starts a new blob; nothing is visible under its id until [`BlobWriter::commit`].
    async fn create_blob(&self, bucket: &str, blob: BlobId) -> Result<Box<dyn BlobWriter>>;

    /// Opens a committed blob for reading. The handle stays valid even if the
    /// blob is deleted while it is open.
    async fn open_blob(&self, bucket: &str, blob: BlobId) -> Result<Box<dyn BlobReader>>;

    /// Deletes blobs durably; missing blobs are not an error.
    async fn delete_blobs(&self, bucket: &str, blobs: Vec<BlobId>) -> Result<()>;

    /// The buckets this drive holds blob files for (buckets since deleted
    /// included). A drive that keeps no blob files of its own lists none.
    async fn blob_buckets(&self) -> Result<Vec<String>> {
        Ok(Vec::new())
    }

    /// The committed blobs of `bucket` whose id starts with the byte
    /// `fan_out`, last modified before `before`: the candidates of orphan
    /// reclamation (see `bulwark_object`'s `reclaim`), a 256th at a time so
    /// that no listing holds a whole drive. A drive that keeps no blob files
    /// of its own lists none.
    async fn blobs_modified_before(
        &self,
        bucket: &str,
        fan_out: u8,
        before: std::time::SystemTime,
    ) -> Result<Vec<BlobId>> {
        let _ = (bucket, fan_out, before);
        Ok(Vec::new())
    }

    /// Applies all `ops` atomically and durably (fsynced before `Ok`).
    async fn commit(&self, ops: Vec<MetaOp>) -> Result<()>;

    /// Every version record of `key`, newest first.
    async fn get_versions(&self, bucket: &str, key: &str) -> Result<Vec<StoredVersion>>;

    /// The newest `limit` version records of `key`, newest first: what a read
    /// of the latest version needs, however long the key's history.
    async fn get_newest_versions(&self, bucket: &str, key: &str, limit: usize) -> Result<Vec<StoredVersion>> {
        let mut versions = self.get_versions(bucket, key).await?;
        versions.truncate(limit);
        Ok(versions)
    }

    /// The record of version `uid` of `key`, if this drive holds it: what a
    /// read by version id needs, however long the key's history.
    async fn get_version(&self, bucket: &str, key: &str, uid: VersionUid) -> Result<Option<StoredVersion>> {
        Ok(self.get_versions(bucket, key).await?.into_iter().find(|stored| stored.uid == uid))
    }

    /// This drive's inline shard of version `uid`, if it has one.
    async fn get_inline(&self, uid: VersionUid) -> Result<Option<Bytes>>;

    /// Up to `limit` version records whose keys start with `prefix`, in
    /// (key ascending, version newest-first) order, continuing `from`.
    async fn scan_versions(
        &self,
        bucket: &str,
        prefix: &str,
        from: ScanFrom,
        limit: usize,
    ) -> Result<Vec<StoredVersion>>;

    async fn list_buckets(&self) -> Result<Vec<(String, Bytes)>>;

    /// Whether the bucket holds no version records and no uploads.
    async fn bucket_is_empty(&self, bucket: &str) -> Result<bool>;

    async fn get_upload(&self, bucket: &str, key: &str, upload_id: &str) -> Result<Option<Bytes>>;

    /// Uploads in `bucket` with keys starting with `prefix`, ordered by (key, upload id),
    /// strictly after `after` when given.
    async fn list_uploads(
        &self,
        bucket: &str,
        prefix: &str,
        after: Option<(String, String)>,
        limit: usize,
    ) -> Result<Vec<(String, String, Bytes)>>;

    async fn list_parts(&self, upload_id: &str) -> Result<Vec<(u32, Bytes)>>;

    async fn get_system(&self, name: &str) -> Result<Option<Bytes>>;

    async fn list_system(&self, prefix: &str) -> Result<Vec<(String, Bytes)>>;
}

#[async_trait]
pub trait BlobWriter: Send {
    /// Appends `parts`, in order, to the blob (one call for a piece and its
    /// checksum, or several queued pieces, saves a trip to the I/O thread).
    async fn write(&mut self, parts: Vec<Bytes>) -> Result<()>;
    /// Makes the blob durable and visible under its id: fsync the file, rename
    /// it into place, fsync the directory.
    async fn commit(self: Box<Self>) -> Result<()>;
    /// Discards the blob.
    async fn abort(self: Box<Self>);
}

#[async_trait]
pub trait BlobReader: Send + Sync {
    fn len(&self) -> u64;
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Reads exactly `len` bytes at `offset`; fewer available is an error.
    /// The buffer may be pooled (see [`buffers::PIECES`]): shared views only.
    async fn read_at(&self, offset: u64, len: usize) -> Result<Bytes>;
    /// As [`BlobReader::read_at`], into a buffer nobody else holds, so that
    /// the caller can take it over (`Bytes::try_into_mut`) and change it in
    /// place, as decryption does.
    async fn read_at_owned(&self, offset: u64, len: usize) -> Result<Bytes> {
        self.read_at(offset, len).await
    }
}

/// Stands in for a drive that could not be opened (missing, foreign, broken),
/// so the set keeps its geometry and every call fails fast as offline.
#[derive(Debug)]
pub struct OfflineDrive {
    info: DriveInfo,
}

impl OfflineDrive {
    pub fn new(info: DriveInfo) -> OfflineDrive {
        OfflineDrive { info }
    }

    fn offline<T>(&self) -> Result<T> {
        Err(Error::Offline { drive: self.info.label.clone() })
    }
}

#[async_trait]
impl Drive for OfflineDrive {
    fn info(&self) -> &DriveInfo {
        &self.info
    }
    fn is_online(&self) -> bool {
        false
    }
    async fn check_health(&self) -> bool {
        false
    }
    async fn create_blob(&self, _: &str, _: BlobId) -> Result<Box<dyn BlobWriter>> {
        self.offline()
    }
    async fn open_blob(&self, _: &str, _: BlobId) -> Result<Box<dyn BlobReader>> {
        self.offline()
    }
    async fn delete_blobs(&self, _: &str, _: Vec<BlobId>) -> Result<()> {
        self.offline()
    }
    async fn commit(&self, _: Vec<MetaOp>) -> Result<()> {
        self.offline()
    }
    async fn get_versions(&self, _: &str, _: &str) -> Result<Vec<StoredVersion>> {
        self.offline()
    }
    async fn get_inline(&self, _: VersionUid) -> Result<Option<Bytes>> {
        self.offline()
    }
    async fn scan_versions(&self, _: &str, _: &str, _: ScanFrom, _: usize) -> Result<Vec<StoredVersion>> {
        self.offline()
    }
    async fn list_buckets(&self) -> Result<Vec<(String, Bytes)>> {
        self.offline()
    }
    async fn bucket_is_empty(&self, _: &str) -> Result<bool> {
        self.offline()
    }
    async fn get_upload(&self, _: &str, _: &str, _: &str) -> Result<Option<Bytes>> {
        self.offline()
    }
    async fn list_uploads(
        &self,
        _: &str,
        _: &str,
        _: Option<(String, String)>,
        _: usize,
    ) -> Result<Vec<(String, String, Bytes)>> {
        self.offline()
    }
    async fn list_parts(&self, _: &str) -> Result<Vec<(u32, Bytes)>> {
        self.offline()
    }
    async fn get_system(&self, _: &str) -> Result<Option<Bytes>> {
        self.offline()
    }
    async fn list_system(&self, _: &str) -> Result<Vec<(String, Bytes)>> {
        self.offline()
    }
}
