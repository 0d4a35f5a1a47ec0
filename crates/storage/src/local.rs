//! A drive that is one local directory.
//!
//! Layout (see `docs/design/drive-layout.md`):
//! ```text
//! <root>/.bulwark/format.json   identity: cluster, set, position (written once, fsynced)
//! <root>/.bulwark/meta.redb     metadata records (redb; every commit fsynced)
//! <root>/.bulwark/tmp/          blobs being written; emptied at start-up
//! <root>/data/<bucket>/<xx>/<blob-id-hex>   committed blobs (xx = first byte of the id)
//! ```
//!
//! Durability: a blob is written under `tmp/`, fsynced, renamed into `data/`,
//! and the target directory is fsynced (and its parent, when the directory was
//! just created), so after `commit` returns the blob survives power loss.
//! Metadata batches go through one committer thread per drive that folds all
//! batches waiting at the moment into a single redb write transaction with
//! immediate durability: many concurrent small PUTs share one fsync (group
//! commit), and no caller is answered before its batch is on disk.
//!
//! Health: before every metadata commit and on [`Drive::check_health`], the
//! format file is checked against the identity read at open time, so a drive
//! that was wiped or swapped while the server runs is taken offline instead of
//! silently accepting writes into an unlinked file.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, mpsc};

use async_trait::async_trait;
use bytes::Bytes;
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;

use crate::keys;
use crate::{
    BlobId, BlobReader, BlobWriter, Drive, DriveInfo, Error, MetaOp, Result, ScanFrom, StoredVersion, VersionUid,
};

const BUCKETS: TableDefinition<&str, &[u8]> = TableDefinition::new("buckets");
const VERSIONS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("versions");
const INLINE: TableDefinition<&[u8], &[u8]> = TableDefinition::new("inline");
const UPLOADS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("uploads");
const PARTS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("parts");
const SYSTEM: TableDefinition<&str, &[u8]> = TableDefinition::new("system");

/// Batches folded into one metadata transaction at most.
const COMMIT_BATCHES_MAX: usize = 512;
/// Page cache of the metadata store of one drive.
const META_CACHE_BYTES: usize = 32 * 1024 * 1024;
/// The format file's version marker.
pub const FORMAT_VERSION: u32 = 1;

const SYSTEM_DIR: &str = ".bulwark";
const FORMAT_FILE: &str = "format.json";

/// The identity of a drive, written once when it joins the cluster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Format {
    pub format: u32,
    pub cluster_id: String,
    pub drive_id: String,
    pub set_index: usize,
    pub position: usize,
    pub facility: String,
}

impl Format {
    /// Reads the format file of the drive at `root`; `Ok(None)` if there is none.
    pub fn read(root: &Path) -> Result<Option<Format>> {
        let path = root.join(SYSTEM_DIR).join(FORMAT_FILE);
        let bytes = match fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io_error(root, e)),
        };
        let format: Format = serde_json::from_slice(&bytes).map_err(|e| Error::Format {
            drive: root.display().to_string(),
            detail: format!("unreadable format file: {e}"),
        })?;
        if format.format != FORMAT_VERSION {
            return Err(Error::Format {
                drive: root.display().to_string(),
                detail: format!("unsupported format version {}", format.format),
            });
        }
        Ok(Some(format))
    }

    /// Writes the format file durably (temp, fsync, rename, fsync directory).
    pub fn write(&self, root: &Path) -> Result<()> {
        let system = root.join(SYSTEM_DIR);
        create_dir_durable(&system).map_err(|e| io_error(root, e))?;
        let bytes = serde_json::to_vec_pretty(self)
            .map_err(|e| Error::Format { drive: root.display().to_string(), detail: e.to_string() })?;
        let tmp = system.join(format!("{FORMAT_FILE}.tmp"));
        write_file_durable(&tmp, &bytes).map_err(|e| io_error(root, e))?;
        fs::rename(&tmp, system.join(FORMAT_FILE)).map_err(|e| io_error(root, e))?;
        sync_dir(&system).map_err(|e| io_error(root, e))
    }
}

pub struct LocalDrive {
    info: DriveInfo,
    root: PathBuf,
    format: Format,
    db: Arc<Database>,
    online: Arc<AtomicBool>,
    committer: mpsc::Sender<CommitRequest>,
    /// Large blobs are written and read with `O_DIRECT` (the file system
    /// passed [`direct_io_works`] when the drive was opened).
    direct_io: bool,
}

struct CommitRequest {
    ops: Vec<MetaOp>,
    reply: oneshot::Sender<Result<()>>,
}

impl std::fmt::Debug for LocalDrive {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalDrive").field("root", &self.root).finish_non_exhaustive()
    }
}

impl LocalDrive {
    /// Opens a formatted drive: sweeps leftovers of interrupted writes, opens
    /// the metadata store and starts the committer thread.
    pub fn open(root: &Path, format: Format) -> Result<LocalDrive> {
        let label = root.display().to_string();
        let on_disk = Format::read(root)?;
        if on_disk.as_ref() != Some(&format) {
            return Err(Error::Format {
                drive: label,
                detail: "format file does not match the expected identity".into(),
            });
        }
        let system = root.join(SYSTEM_DIR);
        let tmp = system.join("tmp");
        // Leftovers of writes interrupted by a crash: never committed, never referenced.
        if tmp.exists() {
            fs::remove_dir_all(&tmp).map_err(|e| io_error(root, e))?;
        }
        create_dir_durable(&tmp).map_err(|e| io_error(root, e))?;
        create_dir_durable(&root.join("data")).map_err(|e| io_error(root, e))?;
        let direct_io = direct_io_works(&tmp);
        if !direct_io {
            tracing::info!(drive = %label, "O_DIRECT refused here: large blobs go through the page cache");
        }

        let db_path = system.join("meta.redb");
        if !db_path.exists() && fs::read_dir(root.join("data")).is_ok_and(|mut entries| entries.next().is_some()) {
            tracing::warn!(drive = %label, "metadata store missing on a drive that holds data; starting empty, heal will restore it");
        }
        let db = match Database::builder().set_cache_size(META_CACHE_BYTES).create(&db_path) {
            Ok(db) => db,
            Err(redb::DatabaseError::DatabaseAlreadyOpen) => {
                return Err(Error::Store { drive: label, detail: "metadata store is already open".into() });
            }
            Err(redb::DatabaseError::Storage(e @ redb::StorageError::Corrupted(_)))
            | Err(redb::DatabaseError::Storage(e @ redb::StorageError::Io(_)))
                if is_corrupt(&e) =>
            {
                // A corrupt metadata store (or a file that is no redb database
                // at all) is set aside (never deleted: it may still help a
                // human) and replaced by an empty one; the scanner then finds
                // every record missing on this drive and heal restores them
                // from the other drives.
                let aside = system.join(format!("meta.redb.unreadable-{}", uuid::Uuid::new_v4().simple()));
                tracing::error!(drive = %label, error = %e, aside = %aside.display(),
                    "metadata store unreadable; set aside and starting empty, heal will restore it");
                fs::rename(&db_path, &aside).map_err(|e| io_error(root, e))?;
                sync_dir(&system).map_err(|e| io_error(root, e))?;
                Database::builder()
                    .set_cache_size(META_CACHE_BYTES)
                    .create(&db_path)
                    .map_err(|e| store_error(&label, e))?
            }
            Err(e) => {
                // Anything else (an I/O error, a file format this redb must
                // upgrade, a lock held elsewhere) says nothing about the
                // records, and every drive of a cluster may hit it at once
                // (after an upgrade): replacing the store then would empty the
                // cluster. The drive stays offline until it opens.
                return Err(Error::Store {
                    drive: label,
                    detail: format!("metadata store cannot be opened, drive left offline: {e}"),
                });
            }
        };
        let db = Arc::new(db);
        {
            let txn = db.begin_write().map_err(|e| store_error(&label, e))?;
            for open in [
                |t: &redb::WriteTransaction| t.open_table(VERSIONS).map(drop),
                |t: &redb::WriteTransaction| t.open_table(INLINE).map(drop),
                |t: &redb::WriteTransaction| t.open_table(UPLOADS).map(drop),
                |t: &redb::WriteTransaction| t.open_table(PARTS).map(drop),
            ] {
                open(&txn).map_err(|e| store_error(&label, e))?;
            }
            txn.open_table(BUCKETS).map_err(|e| store_error(&label, e))?;
            txn.open_table(SYSTEM).map_err(|e| store_error(&label, e))?;
            txn.commit().map_err(|e| store_error(&label, e))?;
        }
        let online = Arc::new(AtomicBool::new(true));
        let (sender, receiver) = mpsc::channel();
        let thread_db = db.clone();
        let thread_root = root.to_path_buf();
        let thread_format = format.clone();
        let thread_online = online.clone();
        std::thread::Builder::new()
            .name(format!("commit-{}", format.position))
            .spawn(move || committer(thread_root, thread_format, thread_db, thread_online, receiver))
            .map_err(|e| io_error(root, e))?;
        Ok(LocalDrive {
            info: DriveInfo { label, facility: format.facility.clone() },
            root: root.to_path_buf(),
            format,
            db,
            online,
            committer: sender,
            direct_io,
        })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn blob_path(&self, bucket: &str, blob: &BlobId) -> PathBuf {
        let hex = hex::encode(blob);
        self.root.join("data").join(bucket).join(&hex[..2]).join(hex)
    }

    fn label(&self) -> &str {
        &self.info.label
    }

    /// Starts a blob under `.bulwark/tmp/`; it goes on with `O_DIRECT` past
    /// its first MiB where the drive allows it (see [`DirectTail`]).
    async fn create_writer(&self, bucket: &str, blob: BlobId) -> Result<LocalBlobWriter> {
        self.ensure_online()?;
        let tmp_path = self.root.join(SYSTEM_DIR).join("tmp").join(format!(
            "{}.{}",
            hex::encode(blob),
            uuid::Uuid::new_v4().simple()
        ));
        let final_path = self.blob_path(bucket, &blob);
        let root = self.root.clone();
        let direct_allowed = self.direct_io;
        let blob = tokio::task::spawn_blocking(move || -> io::Result<OpenBlob> {
            // Readable too: going on with O_DIRECT reads back the last partial page.
            let file = OpenOptions::new().read(true).write(true).create_new(true).open(&tmp_path)?;
            Ok(OpenBlob { file, path: tmp_path, written: 0, writeback_from: 0, direct: None, direct_allowed })
        })
        .await
        .map_err(|e| io_error(&root, io::Error::other(e)))?
        .map_err(|e| io_error(&self.root, e))?;
        Ok(LocalBlobWriter { root: self.root.clone(), final_path, file: Some(blob) })
    }

    /// Opens a committed blob for reading; one of at least
    /// [`CACHE_DROP_MIN_BYTES`] is opened a second time with `O_DIRECT`, which
    /// its pooled reads use (see [`read_direct_at`]).
    async fn open_reader(&self, bucket: &str, blob: BlobId) -> Result<LocalBlobReader> {
        self.ensure_online()?;
        let path = self.blob_path(bucket, &blob);
        let label = self.label().to_owned();
        let root = self.root.clone();
        let direct_io = self.direct_io;
        let (file, direct, len) = tokio::task::spawn_blocking(move || -> io::Result<(File, Option<File>, u64)> {
            let file = File::open(&path)?;
            let len = file.metadata()?.len();
            let direct = if direct_io && len >= CACHE_DROP_MIN_BYTES { open_direct(&path) } else { None };
            Ok((file, direct, len))
        })
        .await
        .map_err(|e| io_error(&root, io::Error::other(e)))?
        .map_err(|e| {
            if e.kind() == io::ErrorKind::NotFound {
                Error::BlobNotFound { drive: label.clone() }
            } else {
                io_error(&root, e)
            }
        })?;
        Ok(LocalBlobReader {
            label,
            file: Arc::new(file),
            direct: direct.map(Arc::new),
            len,
            readahead: Arc::default(),
            prefetched: std::sync::Mutex::default(),
        })
    }

    fn ensure_online(&self) -> Result<()> {
        if self.online.load(Ordering::Acquire) {
            Ok(())
        } else {
            Err(Error::Offline { drive: self.label().to_owned() })
        }
    }

    /// Runs a read-only closure against the metadata store off the async runtime.
    async fn read<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&redb::ReadTransaction) -> Result<T, redb::Error> + Send + 'static,
    {
        self.ensure_online()?;
        let db = self.db.clone();
        let label = self.label().to_owned();
        tokio::task::spawn_blocking(move || {
            let txn = db.begin_read().map_err(|e| store_error(&label, e))?;
            f(&txn).map_err(|e| store_error(&label, e))
        })
        .await
        .map_err(|e| Error::Store { drive: self.label().to_owned(), detail: format!("reader task failed: {e}") })?
    }
}

fn io_error(root: &Path, source: io::Error) -> Error {
    Error::Io { drive: root.display().to_string(), source }
}

fn store_error(label: &str, e: impl Into<redb::Error>) -> Error {
    Error::Store { drive: label.to_owned(), detail: e.into().to_string() }
}

fn sync_dir(path: &Path) -> io::Result<()> {
    File::open(path)?.sync_all()
}

/// Directories between their `mkdir` and the fsync of their parent, with
/// how many threads are creating each.
static DIRS_BEING_CREATED: std::sync::Mutex<BTreeMap<PathBuf, usize>> = std::sync::Mutex::new(BTreeMap::new());

/// Creates `path` (and missing parents), fsyncing each parent whose entries changed.
///
/// A directory that exists but whose creator has not yet fsynced its parent
/// is not durable: a writer that found it would rename a blob into it, fsync
/// it and answer, and a crash could still lose the directory entry and the
/// blob with it. Such a writer fsyncs the parent itself.
fn create_dir_durable(path: &Path) -> io::Result<()> {
    let being_created = |path: &Path| DIRS_BEING_CREATED.lock().unwrap_or_else(|e| e.into_inner()).contains_key(path);
    if path.is_dir() && !being_created(path) {
        return Ok(());
    }
    if let Some(parent) = path.parent() {
        create_dir_durable(parent)?;
    }
    *DIRS_BEING_CREATED.lock().unwrap_or_else(|e| e.into_inner()).entry(path.to_path_buf()).or_default() += 1;
    let created = match fs::create_dir(path) {
        Ok(()) => Ok(()),
        // Created by another writer, which may not have fsynced the parent yet.
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e),
    };
    let synced = match (&created, path.parent()) {
        (Ok(()), Some(parent)) => sync_dir(parent),
        _ => Ok(()),
    };
    {
        let mut creating = DIRS_BEING_CREATED.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(count) = creating.get_mut(path) {
            *count -= 1;
            if *count == 0 {
                creating.remove(path);
            }
        }
    }
    created.and(synced)
}

fn write_file_durable(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut file = File::create(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

/// Whether redb says the store's bytes are bad: corruption it detected, or
/// a file that is not a redb database (reported as an I/O error of kind
/// `InvalidData`, which no system call returns).
fn is_corrupt(error: &redb::StorageError) -> bool {
    match error {
        redb::StorageError::Corrupted(_) => true,
        redb::StorageError::Io(e) => e.kind() == io::ErrorKind::InvalidData,
        _ => false,
    }
}

fn format_still_ours(root: &Path, format: &Format) -> bool {
    matches!(Format::read(root), Ok(Some(on_disk)) if on_disk == *format)
}

/// The committer thread: folds every waiting batch into one durable transaction.
fn committer(
    root: PathBuf,
    format: Format,
    db: Arc<Database>,
    online: Arc<AtomicBool>,
    receiver: mpsc::Receiver<CommitRequest>,
) {
    let label = root.display().to_string();
    while let Ok(first) = receiver.recv() {
        let mut batch = vec![first];
        while batch.len() < COMMIT_BATCHES_MAX {
            match receiver.try_recv() {
                Ok(request) => batch.push(request),
                Err(_) => break,
            }
        }
        let result = if !format_still_ours(&root, &format) {
            online.store(false, Ordering::Release);
            tracing::warn!(drive = %label, "drive lost its format file; taking it offline");
            Err(Error::Offline { drive: label.clone() })
        } else if !online.load(Ordering::Acquire) {
            Err(Error::Offline { drive: label.clone() })
        } else {
            apply_batch(&db, &label, &batch)
        };
        for request in batch {
            let reply = match &result {
                Ok(()) => Ok(()),
                Err(e) => Err(clone_error(e)),
            };
            let _ = request.reply.send(reply);
        }
    }
}

fn clone_error(e: &Error) -> Error {
    match e {
        Error::Offline { drive } => Error::Offline { drive: drive.clone() },
        other => Error::Store {
            drive: match other {
                Error::Store { drive, .. } | Error::Io { drive, .. } | Error::Format { drive, .. } => drive.clone(),
                _ => String::new(),
            },
            detail: other.to_string(),
        },
    }
}

fn apply_batch(db: &Database, label: &str, batch: &[CommitRequest]) -> Result<()> {
    let txn = db.begin_write().map_err(|e| store_error(label, e))?;
    {
        let mut buckets = txn.open_table(BUCKETS).map_err(|e| store_error(label, e))?;
        let mut versions = txn.open_table(VERSIONS).map_err(|e| store_error(label, e))?;
        let mut inline = txn.open_table(INLINE).map_err(|e| store_error(label, e))?;
        let mut uploads = txn.open_table(UPLOADS).map_err(|e| store_error(label, e))?;
        let mut parts = txn.open_table(PARTS).map_err(|e| store_error(label, e))?;
        let mut system = txn.open_table(SYSTEM).map_err(|e| store_error(label, e))?;
        for op in batch.iter().flat_map(|request| request.ops.iter()) {
            let r: Result<(), redb::Error> = (|| {
                match op {
                    MetaOp::PutBucket { bucket, record } => {
                        buckets.insert(bucket.as_str(), record.as_ref())?;
                    }
                    MetaOp::DeleteBucket { bucket } => {
                        buckets.remove(bucket.as_str())?;
                    }
                    MetaOp::PutVersion { bucket, key, uid, record, inline: shard } => {
                        versions.insert(keys::version_key(bucket, key, uid).as_slice(), record.as_ref())?;
                        if let Some(shard) = shard {
                            inline.insert(uid.as_slice(), shard.as_ref())?;
                        }
                    }
                    MetaOp::DeleteVersion { bucket, key, uid } => {
                        versions.remove(keys::version_key(bucket, key, uid).as_slice())?;
                        inline.remove(uid.as_slice())?;
                    }
                    MetaOp::PutUpload { bucket, key, upload_id, record } => {
                        uploads.insert(upload_key(bucket, key, upload_id).as_slice(), record.as_ref())?;
                    }
                    MetaOp::DeleteUpload { bucket, key, upload_id } => {
                        uploads.remove(upload_key(bucket, key, upload_id).as_slice())?;
                        let mut start = Vec::new();
                        keys::push_component(&mut start, upload_id);
                        let mut end = start.clone();
                        end.extend_from_slice(&[0xFF; 5]);
                        parts.retain_in(start.as_slice()..end.as_slice(), |_, _| false)?;
                    }
                    MetaOp::PutPart { upload_id, number, record } => {
                        parts.insert(part_key(upload_id, *number).as_slice(), record.as_ref())?;
                    }
                    MetaOp::DeletePart { upload_id, number } => {
                        parts.remove(part_key(upload_id, *number).as_slice())?;
                    }
                    MetaOp::PutSystem { name, value } => {
                        system.insert(name.as_str(), value.as_ref())?;
                    }
                    MetaOp::DeleteSystem { name } => {
                        system.remove(name.as_str())?;
                    }
                }
                Ok(())
            })();
            r.map_err(|e| store_error(label, e))?;
        }
    }
    txn.commit().map_err(|e| store_error(label, e))
}

fn upload_key(bucket: &str, key: &str, upload_id: &str) -> Vec<u8> {
    let mut out = Vec::new();
    keys::push_component(&mut out, bucket);
    keys::push_component(&mut out, key);
    keys::push_component(&mut out, upload_id);
    out
}

fn part_key(upload_id: &str, number: u32) -> Vec<u8> {
    let mut out = Vec::new();
    keys::push_component(&mut out, upload_id);
    out.extend_from_slice(&number.to_be_bytes());
    out
}

fn bucket_prefix(bucket: &str) -> Vec<u8> {
    let mut out = Vec::new();
    keys::push_component(&mut out, bucket);
    out
}

/// A raw (key, value) row of a metadata table.
type RawRow = (Vec<u8>, Vec<u8>);

/// Collects up to `limit` entries of `table` in `[start, end)` (start exclusive if asked).
fn scan_range(
    table: &impl ReadableTable<&'static [u8], &'static [u8]>,
    start: &[u8],
    start_exclusive: bool,
    end: Option<&[u8]>,
    limit: usize,
) -> Result<Vec<RawRow>, redb::Error> {
    let mut out = Vec::new();
    let range = match end {
        Some(end) => table.range(start..end)?,
        None => table.range(start..)?,
    };
    for entry in range {
        let (k, v) = entry?;
        if start_exclusive && k.value() == start {
            continue;
        }
        out.push((k.value().to_vec(), v.value().to_vec()));
        if out.len() >= limit {
            break;
        }
    }
    Ok(out)
}

#[async_trait]
impl Drive for LocalDrive {
    fn info(&self) -> &DriveInfo {
        &self.info
    }

    fn is_online(&self) -> bool {
        self.online.load(Ordering::Acquire)
    }

    async fn check_health(&self) -> bool {
        let root = self.root.clone();
        let format = self.format.clone();
        let ok = tokio::task::spawn_blocking(move || format_still_ours(&root, &format)).await.unwrap_or(false);
        let was = self.online.swap(ok, Ordering::AcqRel);
        if was && !ok {
            tracing::warn!(drive = %self.label(), "drive failed its health check; offline");
        } else if !was && ok {
            tracing::warn!(drive = %self.label(), "drive is back with its format; online again");
        }
        ok
    }

    async fn create_blob(&self, bucket: &str, blob: BlobId) -> Result<Box<dyn BlobWriter>> {
        Ok(Box::new(self.create_writer(bucket, blob).await?))
    }

    async fn open_blob(&self, bucket: &str, blob: BlobId) -> Result<Box<dyn BlobReader>> {
        Ok(Box::new(self.open_reader(bucket, blob).await?))
    }

    async fn blob_buckets(&self) -> Result<Vec<String>> {
        self.ensure_online()?;
        let data = self.root.join("data");
        let root = self.root.clone();
        tokio::task::spawn_blocking(move || -> io::Result<Vec<String>> {
            let entries = match fs::read_dir(&data) {
                Ok(entries) => entries,
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
                Err(e) => return Err(e),
            };
            let mut buckets = Vec::new();
            for entry in entries {
                let entry = entry?;
                if entry.file_type()?.is_dir()
                    && let Ok(name) = entry.file_name().into_string()
                {
                    buckets.push(name);
                }
            }
            buckets.sort();
            Ok(buckets)
        })
        .await
        .map_err(|e| io_error(&root, io::Error::other(e)))?
        .map_err(|e| io_error(&self.root, e))
    }

    async fn blobs_modified_before(
        &self,
        bucket: &str,
        fan_out: u8,
        before: std::time::SystemTime,
    ) -> Result<Vec<BlobId>> {
        self.ensure_online()?;
        let dir = self.root.join("data").join(bucket).join(hex::encode([fan_out]));
        let root = self.root.clone();
        tokio::task::spawn_blocking(move || old_blobs_in(&dir, before))
            .await
            .map_err(|e| io_error(&root, io::Error::other(e)))?
            .map_err(|e| io_error(&self.root, e))
    }

    async fn delete_blobs(&self, bucket: &str, blobs: Vec<BlobId>) -> Result<()> {
        self.ensure_online()?;
        let paths: Vec<PathBuf> = blobs.iter().map(|b| self.blob_path(bucket, b)).collect();
        let root = self.root.clone();
        tokio::task::spawn_blocking(move || -> io::Result<()> {
            let mut dirs = Vec::new();
            for path in paths {
                match fs::remove_file(&path) {
                    Ok(()) => {
                        if let Some(dir) = path.parent() {
                            dirs.push(dir.to_path_buf());
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(e) => return Err(e),
                }
            }
            dirs.sort();
            dirs.dedup();
            for dir in dirs {
                sync_dir(&dir)?;
            }
            Ok(())
        })
        .await
        .map_err(|e| io_error(&root, io::Error::other(e)))?
        .map_err(|e| io_error(&root, e))
    }

    async fn commit(&self, ops: Vec<MetaOp>) -> Result<()> {
        self.ensure_online()?;
        let (reply, wait) = oneshot::channel();
        self.committer
            .send(CommitRequest { ops, reply })
            .map_err(|_| Error::Offline { drive: self.label().to_owned() })?;
        wait.await.map_err(|_| Error::Offline { drive: self.label().to_owned() })?
    }

    async fn get_versions(&self, bucket: &str, key: &str) -> Result<Vec<StoredVersion>> {
        self.get_newest_versions(bucket, key, usize::MAX).await
    }

    async fn get_newest_versions(&self, bucket: &str, key: &str, limit: usize) -> Result<Vec<StoredVersion>> {
        let mut start = Vec::new();
        keys::push_component(&mut start, bucket);
        keys::push_component(&mut start, key);
        let key = key.to_owned();
        self.read(move |txn| {
            let table = txn.open_table(VERSIONS)?;
            let end = keys::prefix_end(&start);
            let rows = scan_range(&table, &start, false, end.as_deref(), limit)?;
            Ok(rows
                .into_iter()
                .filter_map(|(k, v)| {
                    let (_, _, uid) = keys::split_version_key(&k)?;
                    Some(StoredVersion { key: key.clone(), uid, record: Bytes::from(v) })
                })
                .collect())
        })
        .await
    }

    async fn get_version(&self, bucket: &str, key: &str, uid: VersionUid) -> Result<Option<StoredVersion>> {
        let raw = keys::version_key(bucket, key, &uid);
        let key = key.to_owned();
        self.read(move |txn| {
            let table = txn.open_table(VERSIONS)?;
            Ok(table.get(raw.as_slice())?.map(|record| StoredVersion {
                key,
                uid,
                record: Bytes::copy_from_slice(record.value()),
            }))
        })
        .await
    }

    async fn get_inline(&self, uid: VersionUid) -> Result<Option<Bytes>> {
        self.read(move |txn| {
            let table = txn.open_table(INLINE)?;
            Ok(table.get(uid.as_slice())?.map(|v| Bytes::copy_from_slice(v.value())))
        })
        .await
    }

    async fn scan_versions(
        &self,
        bucket: &str,
        prefix: &str,
        from: ScanFrom,
        limit: usize,
    ) -> Result<Vec<StoredVersion>> {
        let mut lower = bucket_prefix(bucket);
        keys::push_escaped(&mut lower, prefix);
        let end = keys::prefix_end(&lower);
        let (start, exclusive) = match from {
            ScanFrom::Start => (lower, false),
            ScanFrom::AfterKey(key) => {
                let mut start = bucket_prefix(bucket);
                keys::push_component(&mut start, &key);
                start.extend_from_slice(&[0xFF; 16]);
                (start.max(lower), true)
            }
            ScanFrom::AfterVersion(key, uid) => (keys::version_key(bucket, &key, &uid).max(lower), true),
            ScanFrom::AfterPrefix(skipped) => {
                // Every key starting with `skipped` encodes to bytes starting with
                // its escaped form (escaping is byte-wise), so the first key
                // after them all is at or above that form's end.
                let mut start = bucket_prefix(bucket);
                keys::push_escaped(&mut start, &skipped);
                match keys::prefix_end(&start) {
                    Some(after) => (after.max(lower), false),
                    None => return Ok(Vec::new()),
                }
            }
        };
        self.read(move |txn| {
            let table = txn.open_table(VERSIONS)?;
            let rows = scan_range(&table, &start, exclusive, end.as_deref(), limit)?;
            Ok(rows
                .into_iter()
                .filter_map(|(k, v)| {
                    let (_, key, uid) = keys::split_version_key(&k)?;
                    Some(StoredVersion { key, uid, record: Bytes::from(v) })
                })
                .collect())
        })
        .await
    }

    async fn list_buckets(&self) -> Result<Vec<(String, Bytes)>> {
        self.read(|txn| {
            let table = txn.open_table(BUCKETS)?;
            let mut out = Vec::new();
            for entry in table.iter()? {
                let (k, v) = entry?;
                out.push((k.value().to_owned(), Bytes::copy_from_slice(v.value())));
            }
            Ok(out)
        })
        .await
    }

    async fn bucket_is_empty(&self, bucket: &str) -> Result<bool> {
        let start = bucket_prefix(bucket);
        self.read(move |txn| {
            let end = keys::prefix_end(&start);
            let versions = txn.open_table(VERSIONS)?;
            let uploads = txn.open_table(UPLOADS)?;
            Ok(scan_range(&versions, &start, false, end.as_deref(), 1)?.is_empty()
                && scan_range(&uploads, &start, false, end.as_deref(), 1)?.is_empty())
        })
        .await
    }

    async fn get_upload(&self, bucket: &str, key: &str, upload_id: &str) -> Result<Option<Bytes>> {
        let raw = upload_key(bucket, key, upload_id);
        self.read(move |txn| {
            let table = txn.open_table(UPLOADS)?;
            Ok(table.get(raw.as_slice())?.map(|v| Bytes::copy_from_slice(v.value())))
        })
        .await
    }

    async fn list_uploads(
        &self,
        bucket: &str,
        prefix: &str,
        after: Option<(String, String)>,
        limit: usize,
    ) -> Result<Vec<(String, String, Bytes)>> {
        let mut lower = bucket_prefix(bucket);
        keys::push_escaped(&mut lower, prefix);
        let end = keys::prefix_end(&lower);
        let (start, exclusive) = match after {
            None => (lower, false),
            Some((key, upload_id)) => (upload_key(bucket, &key, &upload_id).max(lower), true),
        };
        self.read(move |txn| {
            let table = txn.open_table(UPLOADS)?;
            let rows = scan_range(&table, &start, exclusive, end.as_deref(), limit)?;
            Ok(rows
                .into_iter()
                .filter_map(|(k, v)| {
                    let (_, rest) = keys::pop_component(&k)?;
                    let (key, rest) = keys::pop_component(rest)?;
                    let (upload_id, _) = keys::pop_component(rest)?;
                    Some((key, upload_id, Bytes::from(v)))
                })
                .collect())
        })
        .await
    }

    async fn list_parts(&self, upload_id: &str) -> Result<Vec<(u32, Bytes)>> {
        let mut start = Vec::new();
        keys::push_component(&mut start, upload_id);
        self.read(move |txn| {
            let table = txn.open_table(PARTS)?;
            let end = keys::prefix_end(&start);
            let rows = scan_range(&table, &start, false, end.as_deref(), usize::MAX)?;
            Ok(rows
                .into_iter()
                .filter_map(|(k, v)| {
                    let number: [u8; 4] = k.get(start.len()..)?.try_into().ok()?;
                    Some((u32::from_be_bytes(number), Bytes::from(v)))
                })
                .collect())
        })
        .await
    }

    async fn get_system(&self, name: &str) -> Result<Option<Bytes>> {
        let name = name.to_owned();
        self.read(move |txn| {
            let table = txn.open_table(SYSTEM)?;
            Ok(table.get(name.as_str())?.map(|v| Bytes::copy_from_slice(v.value())))
        })
        .await
    }

    async fn list_system(&self, prefix: &str) -> Result<Vec<(String, Bytes)>> {
        let prefix = prefix.to_owned();
        self.read(move |txn| {
            let table = txn.open_table(SYSTEM)?;
            let mut out = Vec::new();
            for entry in table.range(prefix.as_str()..)? {
                let (k, v) = entry?;
                if !k.value().starts_with(prefix.as_str()) {
                    break;
                }
                out.push((k.value().to_owned(), Bytes::copy_from_slice(v.value())));
            }
            Ok(out)
        })
        .await
    }
}

/// Bytes written to a blob file after which the kernel is asked to start
/// writing them to the disk (`POSIX_FADV_DONTNEED` on the new range: for
/// dirty pages Linux starts asynchronous writeback and returns at once; it
/// neither waits nor forces a journal commit, unlike `fdatasync`). The same
/// idea as RocksDB's `bytes_per_sync`: the disk writes are spread over the
/// upload, so `commit`'s fsync only waits for the last few MiB and a large
/// PUT's acknowledgement stays close to its last byte. Durability does not
/// depend on it: `commit` still fsyncs.
const WRITEBACK_INTERVAL_BYTES: u64 = 1 << 20;

/// A blob file at least this long leaves the page cache once it is durable
/// (`POSIX_FADV_DONTNEED` after the fsync: its pages are clean then, and are
/// dropped). Large objects are streamed through rather than cached: they
/// would push out what is worth caching (the metadata stores, small objects),
/// and a server that keeps every written page makes the kernel take fresh
/// memory for every new one, while dropped pages are reused at once. Where
/// memory is handed back to a VM's host when free, taking fresh memory cost
/// large PUTs half their throughput. Smaller blobs stay cached for reads that
/// follow their writes. Past this length a blob is written and read with
/// `O_DIRECT` (see [`DirectTail`], [`read_direct_at`]), so only its first
/// MiB goes through the page cache at all.
const CACHE_DROP_MIN_BYTES: u64 = WRITEBACK_INTERVAL_BYTES;

struct LocalBlobWriter {
    root: PathBuf,
    final_path: PathBuf,
    /// The open temp file, with how far it is written and how far writeback
    /// was started (taken by the blocking call that writes it; lost only if
    /// that call panicked, and then start-up removes the temp file).
    file: Option<OpenBlob>,
}

struct OpenBlob {
    file: File,
    /// The temp file's path (under `.bulwark/tmp/`).
    path: PathBuf,
    written: u64,
    writeback_from: u64,
    /// Where the blob goes on with `O_DIRECT` writes once it is large.
    direct: Option<DirectTail>,
    /// Whether `O_DIRECT` may still be tried (the file system allowed it).
    direct_allowed: bool,
}

/// Bytes staged for one `O_DIRECT` write of a blob at most: a piece of a
/// 2 MiB block with K = 4 (a piece and its hash are one append; its whole
/// pages are written at once).
const DIRECT_STAGE_BYTES: usize = 512 << 10;

/// The rest of a large blob, written with `O_DIRECT` from a page-aligned
/// staging buffer (of [`crate::buffers::DIRECT`]): only whole pages are
/// written, at page-aligned offsets; the partial page at the end waits in the
/// buffer for the next append, and at the end is written padded with zeros
/// and cut off again (`ftruncate`), all before the fsync of `commit`.
///
/// Why: past its first MiB a blob is not going to be kept in the page cache
/// (see [`CACHE_DROP_MIN_BYTES`]), so writing it through the cache costs the
/// kernel a page allocation, a copy and an eviction for every page (and,
/// where a VM's host takes back free memory, a host fault). Staging costs
/// one copy into a buffer that stays mapped (PUT 64 MiB ×16 320–361 → 520–530
/// MiB/s, ×1 378–410 → 439–446, alternating runs on one disk); pieces laid
/// out at their file offset's place in a page skip even that copy for their
/// whole pages (×1 434–435 → 457–466, ×16 480–542 → 562–585). Durability is
/// unchanged: `commit` still fsyncs the file (its data, its length, the
/// device's cache) before the rename.
struct DirectTail {
    file: File,
    buf: Vec<u8>,
    /// Where in `buf` the aligned stage starts.
    pad: usize,
    /// The file offset of the stage's first byte (page-aligned).
    at: u64,
    /// Bytes in the stage.
    staged: usize,
    /// Bytes written from where they were, without staging.
    in_place: u64,
}

impl DirectTail {
    /// Goes on writing `plain` (written so far `written` bytes through the
    /// page cache) at `written` with `O_DIRECT`; `None` where the file system
    /// refuses it. The partial page at the end is read back into the stage.
    fn start(path: &Path, plain: &File, written: u64) -> io::Result<Option<DirectTail>> {
        use rustix::fs::{Mode, OFlags};
        let Ok(file) = rustix::fs::open(path, OFlags::WRONLY | OFlags::CLOEXEC | OFlags::DIRECT, Mode::empty()) else {
            return Ok(None);
        };
        let mut buf = crate::buffers::DIRECT.take_filled(DIRECT_STAGE_BYTES + DIRECT_ALIGN_BYTES);
        let pad = buf.as_ptr().align_offset(DIRECT_ALIGN_BYTES);
        let staged = (written % DIRECT_ALIGN_BYTES as u64) as usize;
        let at = written - staged as u64;
        let mut got = 0;
        while got < staged {
            let read = rustix::io::pread(plain, &mut buf[pad + got..pad + staged], at + got as u64)?;
            if read == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            got += read;
        }
        Ok(Some(DirectTail { file: File::from(file), buf, pad, at, staged, in_place: 0 }))
    }

    /// Appends `parts`. Memory that sits at the same place within its page as
    /// the file position does within its page (the object layer lays out
    /// blocks so: see [`page_phase`]) is written from where it is, whole
    /// pages at a time, once the stage has been filled to a page boundary;
    /// anything else is copied into the stage.
    fn append(&mut self, parts: &[Bytes]) -> io::Result<()> {
        for part in parts {
            let mut rest = &part[..];
            while !rest.is_empty() {
                if self.staged > 0 && self.staged.is_multiple_of(DIRECT_ALIGN_BYTES) {
                    self.write_whole_pages()?;
                }
                if self.staged == 0
                    && rest.len() >= DIRECT_ALIGN_BYTES
                    && (rest.as_ptr() as usize).is_multiple_of(DIRECT_ALIGN_BYTES)
                {
                    let whole = rest.len() - rest.len() % DIRECT_ALIGN_BYTES;
                    write_direct_at(&self.file, &rest[..whole], self.at)?;
                    self.at += whole as u64;
                    self.in_place += whole as u64;
                    rest = &rest[whole..];
                    continue;
                }
                let to_page = DIRECT_ALIGN_BYTES - self.staged % DIRECT_ALIGN_BYTES;
                let in_phase = (rest.as_ptr() as usize + to_page).is_multiple_of(DIRECT_ALIGN_BYTES)
                    && rest.len() >= to_page + DIRECT_ALIGN_BYTES;
                let take = if in_phase { to_page } else { rest.len().min(DIRECT_STAGE_BYTES - self.staged) };
                let to = self.pad + self.staged;
                self.buf[to..to + take].copy_from_slice(&rest[..take]);
                self.staged += take;
                rest = &rest[take..];
                if self.staged == DIRECT_STAGE_BYTES {
                    self.write_whole_pages()?;
                }
            }
        }
        self.write_whole_pages()
    }

    /// Writes the stage's whole pages and keeps the partial one.
    fn write_whole_pages(&mut self) -> io::Result<()> {
        let whole = self.staged - self.staged % DIRECT_ALIGN_BYTES;
        self.write_stage(whole)?;
        self.buf.copy_within(self.pad + whole..self.pad + self.staged, self.pad);
        self.at += whole as u64;
        self.staged -= whole;
        Ok(())
    }

    /// Writes the partial page at the end, zero-padded to a whole page (the
    /// caller cuts the file back to its length).
    fn finish(&mut self) -> io::Result<()> {
        if self.staged == 0 {
            return Ok(());
        }
        let padded = self.staged.next_multiple_of(DIRECT_ALIGN_BYTES);
        self.buf[self.pad + self.staged..self.pad + padded].fill(0);
        self.write_stage(padded)?;
        self.staged = 0;
        Ok(())
    }

    fn write_stage(&self, len: usize) -> io::Result<()> {
        write_direct_at(&self.file, &self.buf[self.pad..self.pad + len], self.at)
    }
}

/// Writes `bytes` (page-aligned memory, whole pages) at the page-aligned
/// `offset` of a file opened with `O_DIRECT`.
fn write_direct_at(file: &File, bytes: &[u8], offset: u64) -> io::Result<()> {
    let mut done = 0;
    while done < bytes.len() {
        match rustix::io::pwrite(file, &bytes[done..], offset + done as u64) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            // A short direct write can only go on from a page boundary.
            Ok(n) if n % DIRECT_ALIGN_BYTES != 0 && done + n < bytes.len() => {
                return Err(io::Error::other("short O_DIRECT write"));
            }
            Ok(n) => done += n,
            Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// Where within its page a blob's byte at `offset` lies. Memory that starts
/// at this place within its page can be written to `offset` of a large blob
/// from where it is (see [`DirectTail::append`]); the object layer builds
/// each block's pieces so.
pub fn page_phase(offset: u64) -> usize {
    (offset % DIRECT_ALIGN_BYTES as u64) as usize
}

impl Drop for DirectTail {
    fn drop(&mut self) {
        drop(crate::buffers::DIRECT.freeze(std::mem::take(&mut self.buf)));
    }
}

impl OpenBlob {
    /// Appends `parts`: through the page cache (vectored writes; a short
    /// write continues where it stopped, and writeback of every full interval
    /// written is started at once) until the blob is [`CACHE_DROP_MIN_BYTES`]
    /// long, then with `O_DIRECT` where the file system allows it.
    fn append(&mut self, parts: &[Bytes]) -> io::Result<()> {
        if let Some(direct) = &mut self.direct {
            direct.append(parts)?;
            self.written += parts.iter().map(|p| p.len() as u64).sum::<u64>();
            return Ok(());
        }
        let mut slices: Vec<io::IoSlice<'_>> = parts.iter().map(|p| io::IoSlice::new(p)).collect();
        let mut slices = &mut slices[..];
        while !slices.is_empty() {
            match (&self.file).write_vectored(slices) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => {
                    self.written += n as u64;
                    io::IoSlice::advance_slices(&mut slices, n);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        let pending = self.written - self.writeback_from;
        if let Some(len) = std::num::NonZeroU64::new(pending).filter(|l| l.get() >= WRITEBACK_INTERVAL_BYTES) {
            // Advice only: a failure changes nothing but when the bytes reach the disk.
            let _ = rustix::fs::fadvise(&self.file, self.writeback_from, Some(len), rustix::fs::Advice::DontNeed);
            self.writeback_from = self.written;
        }
        if self.direct_allowed && self.written >= CACHE_DROP_MIN_BYTES {
            self.direct = DirectTail::start(&self.path, &self.file, self.written)?;
            self.direct_allowed = self.direct.is_some();
        }
        Ok(())
    }

    /// Writes what is still staged and cuts the file to its length.
    fn finish(&mut self) -> io::Result<()> {
        if let Some(direct) = &mut self.direct {
            direct.finish()?;
            self.file.set_len(self.written)?;
        }
        Ok(())
    }
}

#[async_trait]
impl BlobWriter for LocalBlobWriter {
    async fn write(&mut self, parts: Vec<Bytes>) -> Result<()> {
        let mut blob = self.file.take().ok_or_else(|| io_error(&self.root, io::Error::other("blob writer closed")))?;
        let (blob, written) = tokio::task::spawn_blocking(move || {
            let written = blob.append(&parts);
            (blob, written)
        })
        .await
        .map_err(|e| io_error(&self.root, io::Error::other(e)))?;
        self.file = Some(blob);
        written.map_err(|e| io_error(&self.root, e))
    }

    async fn commit(mut self: Box<Self>) -> Result<()> {
        let blob = self.file.take().ok_or_else(|| io_error(&self.root, io::Error::other("blob writer closed")))?;
        let final_path = self.final_path.clone();
        tokio::task::spawn_blocking(move || -> io::Result<()> {
            let mut blob = blob;
            blob.finish()?;
            let (file, len, tmp_path) = (blob.file, blob.written, blob.path);
            file.sync_all()?;
            if len >= CACHE_DROP_MIN_BYTES {
                // Advice only: a failure changes nothing but what stays cached.
                let _ = rustix::fs::fadvise(&file, 0, None, rustix::fs::Advice::DontNeed);
            }
            drop(file);
            let dir = final_path.parent().ok_or_else(|| io::Error::other("blob path has no parent"))?;
            create_dir_durable(dir)?;
            fs::rename(&tmp_path, &final_path)?;
            sync_dir(dir)
        })
        .await
        .map_err(|e| io_error(&self.root, io::Error::other(e)))?
        .map_err(|e| io_error(&self.root, e))
    }

    async fn abort(mut self: Box<Self>) {
        if let Some(blob) = self.file.take() {
            let tmp_path = blob.path.clone();
            drop(blob);
            let _ = tokio::task::spawn_blocking(move || fs::remove_file(tmp_path)).await;
        }
    }
}

struct LocalBlobReader {
    label: String,
    file: Arc<File>,
    /// The same file opened with `O_DIRECT`, for a blob that is not cached
    /// (see [`CACHE_DROP_MIN_BYTES`]) on a file system that allows it.
    direct: Option<Arc<File>>,
    len: u64,
    readahead: Arc<Readahead>,
    /// The direct read of the piece after the last one, started while the
    /// caller verifies and sends that one.
    prefetched: std::sync::Mutex<Option<Prefetched>>,
}

/// A direct read started ahead of the reader (see [`LocalBlobReader::read`]).
struct Prefetched {
    offset: u64,
    len: usize,
    pooled: bool,
    read: tokio::task::JoinHandle<io::Result<Bytes>>,
}

/// Bytes of a shard file asked of the disk ahead of a sequential reader.
/// The kernel's own read-ahead (128 KiB by default) keeps one stream from a
/// cold disk far below what the disk can do when a GET reads a quarter-MiB
/// piece per shard at a time; asking for the next few MiB keeps several
/// requests queued per drive.
const READAHEAD_BYTES: u64 = 4 << 20;

/// Where a reader's last read ended and how far read-ahead was asked for.
#[derive(Default)]
struct Readahead {
    next: std::sync::atomic::AtomicU64,
    advised: std::sync::atomic::AtomicU64,
}

impl Readahead {
    /// After a read of `offset..end`: if it continued the previous one and
    /// less than half the window is left ahead, asks the kernel to start
    /// reading the next window (`POSIX_FADV_WILLNEED`: it only queues I/O).
    fn after_read(&self, file: &File, offset: u64, end: u64, file_len: u64) {
        let sequential = self.next.swap(end, Ordering::AcqRel) == offset;
        let advised = self.advised.load(Ordering::Acquire);
        if !sequential || end >= file_len || advised >= end + READAHEAD_BYTES / 2 {
            return;
        }
        let from = advised.max(end);
        let to = (end + READAHEAD_BYTES).min(file_len);
        if let Some(len) = std::num::NonZeroU64::new(to.saturating_sub(from)) {
            // Advice only: a failure changes nothing but speed.
            let _ = rustix::fs::fadvise(file, from, Some(len), rustix::fs::Advice::WillNeed);
            self.advised.store(to, Ordering::Release);
        }
    }
}

#[async_trait]
impl BlobReader for LocalBlobReader {
    fn len(&self) -> u64 {
        self.len
    }

    async fn read_at(&self, offset: u64, len: usize) -> Result<Bytes> {
        self.read(offset, len, true).await
    }

    async fn read_at_owned(&self, offset: u64, len: usize) -> Result<Bytes> {
        self.read(offset, len, false).await
    }
}

impl LocalBlobReader {
    async fn read(&self, offset: u64, len: usize, pooled: bool) -> Result<Bytes> {
        if offset.saturating_add(len as u64) > self.len {
            return Err(Error::ShortRead { drive: self.label.clone(), offset, wanted: len, len: self.len });
        }
        let label = self.label.clone();
        let read = match &self.direct {
            Some(direct) => self.read_direct(direct, offset, len, pooled),
            None => {
                let (file, readahead, file_len) = (self.file.clone(), self.readahead.clone(), self.len);
                tokio::task::spawn_blocking(move || -> io::Result<Bytes> {
                    let read = read_exact_at(&file, offset, len, pooled)?;
                    readahead.after_read(&file, offset, offset + len as u64, file_len);
                    Ok(read)
                })
            }
        };
        read.await.map_err(|e| Error::Io { drive: self.label.clone(), source: io::Error::other(e) })?.map_err(
            |source| {
                if source.kind() == io::ErrorKind::UnexpectedEof {
                    Error::ShortRead { drive: label, offset, wanted: len, len: self.len }
                } else {
                    Error::Io { drive: label, source }
                }
            },
        )
    }

    /// A direct read of `offset..offset + len`: the one started ahead when it
    /// is that, else a new one. A read that continues the one before it
    /// (from the second such read on: a GET of more than a block, a scrub)
    /// starts the read of the same length after it, so the disk reads the
    /// next piece of every shard while the read path verifies and sends this
    /// one: without the page cache, nothing else reads ahead.
    fn read_direct(
        &self,
        direct: &Arc<File>,
        offset: u64,
        len: usize,
        pooled: bool,
    ) -> tokio::task::JoinHandle<io::Result<Bytes>> {
        let end = offset + len as u64;
        let continued = self.readahead.next.swap(end, Ordering::AcqRel) == offset;
        let sequential = continued && offset > 0;
        let spawn = |offset: u64| {
            let direct = direct.clone();
            tokio::task::spawn_blocking(move || read_direct_at(&direct, offset, len, pooled))
        };
        let mut prefetched = self.prefetched.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        // A read ahead that is not this one is left to finish on its own; its
        // buffer goes back to the pool.
        let read = match prefetched.take() {
            Some(ahead) if (ahead.offset, ahead.len, ahead.pooled) == (offset, len, pooled) => ahead.read,
            _ => spawn(offset),
        };
        if sequential && end + len as u64 <= self.len {
            *prefetched = Some(Prefetched { offset: end, len, pooled, read: spawn(end) });
        }
        read
    }
}

/// Offsets, lengths and buffer addresses of `O_DIRECT` reads are multiples
/// of this (the page size; Linux needs the device's logical block size, at
/// most this).
const DIRECT_ALIGN_BYTES: usize = 4096;

/// Whether `O_DIRECT` writes and reads of a whole page at a page-aligned
/// offset, from and into page-aligned memory (what [`DirectTail`] and
/// [`read_direct_at`] do), work on the file system of `dir`: a probe file is
/// written, read back, compared and removed. A file system that refuses
/// `O_DIRECT`, or wants larger alignment than [`DIRECT_ALIGN_BYTES`], fails
/// the probe here, once, instead of failing writes later.
fn direct_io_works(dir: &Path) -> bool {
    use rustix::fs::{Mode, OFlags};
    let path = dir.join(format!("direct-probe.{}", uuid::Uuid::new_v4().simple()));
    let probe = || -> io::Result<bool> {
        let flags = OFlags::RDWR | OFlags::CREATE | OFlags::EXCL | OFlags::CLOEXEC | OFlags::DIRECT;
        let file = File::from(rustix::fs::open(&path, flags, Mode::from_raw_mode(0o600))?);
        let mut buf = crate::buffers::DIRECT.take_filled(2 * DIRECT_ALIGN_BYTES);
        let pad = buf.as_ptr().align_offset(DIRECT_ALIGN_BYTES);
        let page = pad..pad + DIRECT_ALIGN_BYTES;
        buf[page.clone()].iter_mut().enumerate().for_each(|(i, b)| *b = (i % 251) as u8);
        let written = rustix::io::pwrite(&file, &buf[page.clone()], 0)?;
        buf[page.clone()].fill(0);
        let read = rustix::io::pread(&file, &mut buf[page.clone()], 0)?;
        let same = buf[page].iter().enumerate().all(|(i, &b)| b == (i % 251) as u8);
        drop(crate::buffers::DIRECT.freeze(buf));
        Ok(written == DIRECT_ALIGN_BYTES && read == DIRECT_ALIGN_BYTES && same)
    };
    let works = probe().unwrap_or(false);
    let _ = fs::remove_file(&path);
    works
}

/// `path` opened again for reading with `O_DIRECT`, or `None` where the file
/// system refuses it (the buffered file is used instead).
fn open_direct(path: &Path) -> Option<File> {
    use rustix::fs::{Mode, OFlags};
    let flags = OFlags::RDONLY | OFlags::CLOEXEC | OFlags::DIRECT;
    rustix::fs::open(path, flags, Mode::empty()).ok().map(File::from)
}

/// The blobs in one fan-out directory of a bucket (`<xx>/`, named by 32 hex
/// digits that start with `xx`) last modified before `before`. Anything else
/// there (another name, a directory) is not a blob and is left alone; a file
/// removed while the directory is read is simply not listed.
fn old_blobs_in(fan_out_dir: &Path, before: std::time::SystemTime) -> io::Result<Vec<BlobId>> {
    let Some(prefix) = fan_out_dir.file_name().and_then(|n| n.to_str()).map(str::to_owned) else {
        return Ok(Vec::new());
    };
    let entries = match fs::read_dir(fan_out_dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut blobs = Vec::new();
    for entry in entries {
        let entry = entry?;
        let Ok(name) = entry.file_name().into_string() else { continue };
        let Some(id) = hex::decode(&name).ok().and_then(|b| BlobId::try_from(b).ok()) else { continue };
        if !name.starts_with(&prefix) || name != hex::encode(id) {
            continue; // not where this id's blob lives, or not in our spelling
        }
        let metadata = match entry.metadata() {
            Ok(metadata) => metadata,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue, // deleted meanwhile
            Err(e) => return Err(e),
        };
        if metadata.is_file() && metadata.modified()? < before {
            blobs.push(id);
        }
    }
    blobs.sort();
    Ok(blobs)
}

/// Reads exactly `len` bytes at `offset` of a file opened with `O_DIRECT`:
/// the disk copies the aligned pages around the range straight into a
/// buffer of [`crate::buffers::DIRECT`] (unless `pooled` is false: then into
/// a new one only the caller holds), and the range is a view of it.
///
/// A large blob is not kept in the page cache (it is dropped once durable),
/// so a buffered read of it would have the kernel allocate pages, read into
/// them and copy them out again, and then evict them: an extra pass over
/// every byte and, where a VM's host takes back free memory, a host fault per
/// page. With nothing reading ahead in the kernel, [`LocalBlobReader`]
/// reads the next piece of a sequential reader ahead itself.
fn read_direct_at(file: &File, offset: u64, len: usize, pooled: bool) -> io::Result<Bytes> {
    const ALIGN: u64 = DIRECT_ALIGN_BYTES as u64;
    let start = offset - offset % ALIGN;
    let end = (offset + len as u64).next_multiple_of(ALIGN);
    let span = (end - start) as usize;
    let needed = (offset + len as u64 - start) as usize;
    let mut buf = if pooled {
        crate::buffers::DIRECT.take_filled(span + DIRECT_ALIGN_BYTES)
    } else {
        vec![0; span + DIRECT_ALIGN_BYTES]
    };
    let pad = buf.as_ptr().align_offset(DIRECT_ALIGN_BYTES);
    let mut got = 0;
    while got < needed {
        let read = rustix::io::pread(file, &mut buf[pad + got..pad + span], start + got as u64)?;
        got += read;
        // Only the end of the file cuts a direct read short of whole pages;
        // reading on from there would not be aligned.
        if got < needed && (read == 0 || read % DIRECT_ALIGN_BYTES != 0) {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
    }
    let from = pad + (offset - start) as usize;
    let buf = if pooled { crate::buffers::DIRECT.freeze(buf) } else { Bytes::from(buf) };
    Ok(buf.slice(from..from + len))
}

/// Reads exactly `len` bytes at `offset` into a buffer of the read pool
/// ([`crate::buffers::PIECES`]; it goes back there when its last view is
/// dropped) or, unless `pooled`, a fresh one only the caller holds; straight
/// into its spare capacity: nothing is zeroed first, which on a large GET
/// saves a pass over every byte read.
fn read_exact_at(file: &File, offset: u64, len: usize, pooled: bool) -> io::Result<Bytes> {
    let mut buf: Vec<u8> = if pooled { crate::buffers::PIECES.take(len) } else { Vec::with_capacity(len) };
    while buf.len() < len {
        let at = offset + buf.len() as u64;
        // Fills spare capacity and extends the length by what was read.
        let read = rustix::io::pread(file, rustix::buffer::spare_capacity(&mut buf), at)?;
        if read == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
    }
    // The allocation may have had room for more than was asked.
    buf.truncate(len);
    Ok(if pooled { crate::buffers::PIECES.freeze(buf) } else { Bytes::from(buf) })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn format(position: usize) -> Format {
        Format {
            format: FORMAT_VERSION,
            cluster_id: "c".into(),
            drive_id: format!("d{position}"),
            set_index: 0,
            position,
            facility: "f1".into(),
        }
    }

    fn open(dir: &Path) -> LocalDrive {
        let f = format(0);
        f.write(dir).expect("format");
        LocalDrive::open(dir, f).expect("open")
    }

    #[tokio::test]
    async fn committed_versions_scan_in_key_then_age_order() {
        let dir = tempfile::tempdir().expect("tempdir");
        let drive = open(dir.path());
        let put = |key: &str, uid: u8| MetaOp::PutVersion {
            bucket: "b".into(),
            key: key.into(),
            uid: [uid; 16],
            record: Bytes::from(format!("{key}{uid}")),
            inline: None,
        };
        drive.commit(vec![put("a", 1), put("a", 2), put("b", 1), put("a/x", 3)]).await.expect("commit");
        let all = drive.scan_versions("b", "", ScanFrom::Start, 10).await.expect("scan");
        let seen: Vec<(String, u8)> = all.iter().map(|v| (v.key.clone(), v.uid[0])).collect();
        assert_eq!(seen, vec![("a".into(), 2), ("a".into(), 1), ("a/x".into(), 3), ("b".into(), 1)]);
        let after = drive.scan_versions("b", "", ScanFrom::AfterVersion("a".into(), [2; 16]), 10).await.expect("scan");
        assert_eq!(after[0].uid, [1; 16]);
        let after_key = drive.scan_versions("b", "a", ScanFrom::AfterKey("a".into()), 10).await.expect("scan");
        assert_eq!(after_key.len(), 1);
        assert_eq!(after_key[0].key, "a/x");
        // After a prefix: past every key it starts, the highest code point included.
        drive.commit(vec![put("a/\u{10FFFF}z", 5), put("a0", 6)]).await.expect("commit");
        let after_prefix = drive.scan_versions("b", "", ScanFrom::AfterPrefix("a/".into()), 10).await.expect("scan");
        let keys: Vec<&str> = after_prefix.iter().map(|v| v.key.as_str()).collect();
        assert_eq!(keys, vec!["a0", "b"]);
        assert!(!drive.bucket_is_empty("b").await.expect("empty"));
        assert!(drive.bucket_is_empty("c").await.expect("empty"));
        // The newest versions of one key only, never of a key it prefixes.
        drive.commit(vec![put("a", 3), put("a", 4)]).await.expect("commit");
        let newest = drive.get_newest_versions("b", "a", 2).await.expect("newest");
        assert_eq!(newest.iter().map(|v| (v.key.as_str(), v.uid[0])).collect::<Vec<_>>(), vec![("a", 4), ("a", 3)]);
        let all = drive.get_newest_versions("b", "a", 10).await.expect("all of a");
        assert_eq!(all.iter().map(|v| v.uid[0]).collect::<Vec<_>>(), vec![4, 3, 2, 1], "not a/x");
        // One version by its uid, and none of another key's.
        let one = drive.get_version("b", "a", [2; 16]).await.expect("one version").expect("held");
        assert_eq!((one.key.as_str(), one.uid, one.record), ("a", [2; 16], Bytes::from("a2")));
        assert!(drive.get_version("b", "a", [3; 16]).await.expect("lookup").is_some());
        assert!(drive.get_version("b", "a/x", [2; 16]).await.expect("lookup").is_none(), "uid 2 is a's, not a/x's");
        assert!(drive.get_version("b", "a", [9; 16]).await.expect("lookup").is_none());
    }

    #[tokio::test]
    async fn blobs_are_invisible_until_committed_and_survive_deletion_while_open() {
        let dir = tempfile::tempdir().expect("tempdir");
        let drive = open(dir.path());
        let mut writer = drive.create_blob("b", [7; 16]).await.expect("create");
        writer.write(vec![Bytes::from_static(b"hello ")]).await.expect("write");
        writer.write(vec![Bytes::from_static(b"wor"), Bytes::from_static(b"ld")]).await.expect("write");
        assert!(matches!(drive.open_blob("b", [7; 16]).await, Err(Error::BlobNotFound { .. })));
        writer.commit().await.expect("commit");
        let reader = drive.open_blob("b", [7; 16]).await.expect("open");
        drive.delete_blobs("b", vec![[7; 16]]).await.expect("delete");
        assert_eq!(&reader.read_at(6, 5).await.expect("read")[..], b"world");
        assert!(matches!(reader.read_at(8, 5).await, Err(Error::ShortRead { .. })));
        // An owned read can be taken over and changed in place (decryption);
        // a pooled one cannot: its buffer goes back to the pool.
        let owned = reader.read_at_owned(6, 5).await.expect("owned read");
        let mut owned = owned.try_into_mut().expect("an owned read is held by nobody else");
        owned[0] = b'W';
        assert_eq!(&owned[..], b"World");
        assert!(reader.read_at(6, 5).await.expect("read").try_into_mut().is_err(), "pooled");
        assert!(matches!(reader.read_at_owned(8, 5).await, Err(Error::ShortRead { .. })));
    }

    #[test]
    fn positional_reads_return_exactly_the_bytes_asked_for() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("f");
        let content: Vec<u8> = (0..3 * 1024 * 1024 + 17).map(|i| (i * 7 + i / 251) as u8).collect();
        fs::write(&path, &content).expect("write");
        let file = File::open(&path).expect("open");
        for (offset, len) in [(0, 1), (0, content.len()), (5, 1 << 20), (content.len() - 3, 3), (1 << 20, 0)] {
            let read = read_exact_at(&file, offset as u64, len, true).expect("read");
            assert_eq!(&read[..], &content[offset..offset + len], "offset {offset} len {len}");
        }
        let past = read_exact_at(&file, (content.len() - 2) as u64, 3, false).expect_err("past the end");
        assert_eq!(past.kind(), io::ErrorKind::UnexpectedEof);
    }

    #[test]
    fn direct_reads_return_exactly_the_bytes_asked_for_at_any_offset() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("f");
        // A shard file of 2 MiB blocks with K = 4: pieces of 512 KiB and their
        // 32-byte hashes, so no piece after the first starts on a page.
        let framed = 512 * 1024 + 32;
        let content: Vec<u8> = (0..5 * framed + 1000).map(|i| (i * 7 + i / 251) as u8).collect();
        fs::write(&path, &content).expect("write");
        let file = open_direct(&path).expect("this file system (ext4, xfs, tmpfs ≥ 6.6) allows O_DIRECT");
        let end = content.len();
        for (offset, len) in [
            (0, framed),
            (framed, framed),
            (4 * framed, end - 4 * framed),
            (4096, 8192),
            (17, 3),
            (end - 1, 1),
            (end - 4097, 4097),
            (0, end),
            (framed, 0),
        ] {
            let read = read_direct_at(&file, offset as u64, len, true).expect("read");
            assert_eq!(read.len(), len, "offset {offset} len {len}");
            assert!(read[..] == content[offset..offset + len], "offset {offset} len {len}");
        }
        // Buffers come back from the pool with old bytes in them: a read is
        // still exactly its own bytes.
        let again = read_direct_at(&file, 3, 100, true).expect("read");
        assert!(again[..] == content[3..103]);
        for (offset, len) in [(end - 2, 3), (end, 1), (end + 4096, 10)] {
            let past = read_direct_at(&file, offset as u64, len, offset % 2 == 0).expect_err("past the end");
            assert_eq!(past.kind(), io::ErrorKind::UnexpectedEof, "offset {offset} len {len}");
        }
    }

    #[tokio::test]
    async fn a_sequential_direct_reader_has_the_next_piece_read_ahead() {
        let dir = tempfile::tempdir().expect("tempdir");
        let drive = open(dir.path());
        let piece = 524_320usize;
        let content: Vec<u8> = (0..5 * piece + 100).map(|i| (i * 13 + i / 509) as u8).collect();
        let mut writer = drive.create_blob("b", [3; 16]).await.expect("create");
        writer.write(vec![Bytes::from(content.clone())]).await.expect("write");
        writer.commit().await.expect("commit");
        let reader = drive.open_reader("b", [3; 16]).await.expect("open");
        assert!(reader.direct.is_some());
        let ahead = |reader: &LocalBlobReader| {
            reader.prefetched.lock().expect("lock").as_ref().map(|p| (p.offset, p.len, p.pooled))
        };
        let p = piece as u64;
        let check = |read: Bytes, offset: usize, len: usize| {
            assert!(read[..] == content[offset..offset + len], "bytes at {offset}");
        };
        // The first read is not yet a sequence.
        check(reader.read_at(0, piece).await.expect("read"), 0, piece);
        assert_eq!(ahead(&reader), None);
        // The second one in order starts the third.
        check(reader.read_at(p, piece).await.expect("read"), piece, piece);
        assert_eq!(ahead(&reader), Some((2 * p, piece, true)));
        // The third is the one read ahead, and starts the fourth.
        check(reader.read_at(2 * p, piece).await.expect("read"), 2 * piece, piece);
        assert_eq!(ahead(&reader), Some((3 * p, piece, true)));
        // A jump elsewhere gets its own read and starts nothing.
        check(reader.read_at(7, 100).await.expect("read"), 7, 100);
        assert_eq!(ahead(&reader), None);
        // An owned (decrypting) reader in order is read ahead as owned.
        check(reader.read_at_owned(3 * p, piece).await.expect("read"), 3 * piece, piece);
        let owned = reader.read_at_owned(4 * p, piece).await.expect("read");
        assert_eq!(ahead(&reader), None, "no whole piece after the fifth: nothing past the end");
        assert!(owned.try_into_mut().is_ok(), "still a buffer of its own");
        check(reader.read_at(5 * p, 100).await.expect("read"), 5 * piece, 100);
        let again = reader.read_at_owned(p, piece).await.expect("read");
        reader.read_at_owned(2 * p, piece).await.expect("read");
        assert_eq!(ahead(&reader), Some((3 * p, piece, false)));
        // A pooled read of what was read ahead owned gets a read of its own.
        check(reader.read_at(3 * p, piece).await.expect("read"), 3 * piece, piece);
        check(again, piece, piece);
    }

    #[test]
    fn the_direct_io_probe_passes_here_and_leaves_nothing_behind() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert!(direct_io_works(dir.path()), "ext4, xfs and tmpfs ≥ 6.6 allow O_DIRECT");
        assert_eq!(fs::read_dir(dir.path()).expect("dir").count(), 0, "the probe file is removed");
        assert!(!direct_io_works(&dir.path().join("missing")), "a probe that cannot run says no");
    }

    #[tokio::test]
    async fn a_drive_without_direct_io_writes_and_reads_large_blobs_through_the_page_cache() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut drive = open(dir.path());
        assert!(drive.direct_io, "this file system passed the probe");
        drive.direct_io = false; // as on a file system that failed it
        let content: Vec<u8> = (0..3 * CACHE_DROP_MIN_BYTES as usize + 77).map(|i| (i % 241) as u8).collect();
        let mut writer = drive.create_writer("b", [4; 16]).await.expect("create");
        for chunk in content.chunks(524_320) {
            writer.write(vec![Bytes::copy_from_slice(chunk)]).await.expect("write");
            let blob = writer.file.as_ref().expect("open");
            assert!(blob.direct.is_none() && !blob.direct_allowed, "written through the page cache");
        }
        Box::new(writer).commit().await.expect("commit");
        let reader = drive.open_reader("b", [4; 16]).await.expect("open");
        assert!(reader.direct.is_none(), "read through the page cache");
        assert!(reader.read_at(0, content.len()).await.expect("read")[..] == content[..]);
    }

    #[tokio::test]
    async fn large_blobs_are_read_direct_and_small_ones_through_the_page_cache() {
        let dir = tempfile::tempdir().expect("tempdir");
        let drive = open(dir.path());
        for (id, len) in [(1u8, CACHE_DROP_MIN_BYTES as usize + 4099), (2, CACHE_DROP_MIN_BYTES as usize - 1)] {
            let content: Vec<u8> = (0..len).map(|i| (i % 253) as u8 ^ id).collect();
            let mut writer = drive.create_blob("b", [id; 16]).await.expect("create");
            writer.write(vec![Bytes::from(content.clone())]).await.expect("write");
            writer.commit().await.expect("commit");
            let reader = drive.open_reader("b", [id; 16]).await.expect("open");
            assert_eq!(reader.direct.is_some(), len as u64 >= CACHE_DROP_MIN_BYTES, "{len} bytes");
            for (offset, n) in [(0, len), (1, 4096), (len - 5000, 5000)] {
                let read = reader.read_at(offset as u64, n).await.expect("read");
                assert!(read[..] == content[offset..offset + n], "blob {id} offset {offset}");
            }
            let owned = reader.read_at_owned(7, 9).await.expect("owned read");
            assert_eq!(&owned[..], &content[7..16]);
            let mut owned = owned.try_into_mut().expect("an owned read is nobody else's, direct or not");
            owned[0] ^= 0xff;
            assert_eq!(owned[0], content[7] ^ 0xff);
            let pooled = reader.read_at(7, 9).await.expect("read");
            assert!(pooled.try_into_mut().is_err(), "a pooled read is the pool's");
        }
    }

    #[test]
    fn read_ahead_is_asked_only_for_sequential_reads_and_never_past_the_end() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("f");
        let file_len = 3 * READAHEAD_BYTES;
        File::create(&path).and_then(|f| f.set_len(file_len)).expect("file");
        let file = File::open(&path).expect("open");
        let readahead = Readahead::default();
        let advised = |r: &Readahead| r.advised.load(Ordering::Acquire);
        let piece = 256 * 1024;
        // The first read at 0 continues "nothing read yet" (next = 0).
        readahead.after_read(&file, 0, piece, file_len);
        assert_eq!(advised(&readahead), piece + READAHEAD_BYTES);
        // Further sequential reads ask again only when half the window is used.
        readahead.after_read(&file, piece, 2 * piece, file_len);
        assert_eq!(advised(&readahead), piece + READAHEAD_BYTES);
        let far = piece + READAHEAD_BYTES / 2 + 1;
        readahead.after_read(&file, 2 * piece, far, file_len);
        assert_eq!(advised(&readahead), far + READAHEAD_BYTES);
        // A jump elsewhere (a range GET, another block) asks for nothing.
        readahead.after_read(&file, 2 * READAHEAD_BYTES, 2 * READAHEAD_BYTES + piece, file_len);
        assert_eq!(advised(&readahead), far + READAHEAD_BYTES);
        // Near the end the window stops at the file's length.
        let last = file_len - piece;
        readahead.after_read(&file, 2 * READAHEAD_BYTES + piece, last, file_len);
        assert_eq!(advised(&readahead), file_len);
    }

    #[tokio::test]
    async fn writes_with_early_writeback_are_all_there_after_commit() {
        let dir = tempfile::tempdir().expect("tempdir");
        let drive = open(dir.path());
        let mut writer = drive.create_blob("b", [9; 16]).await.expect("create");
        // Several writeback intervals' worth, in uneven parts.
        let content: Vec<u8> = (0..(3 * WRITEBACK_INTERVAL_BYTES as usize + 12_345)).map(|i| (i % 253) as u8).collect();
        for chunk in content.chunks(777_777) {
            let (a, b) = chunk.split_at(chunk.len() / 3);
            writer.write(vec![Bytes::copy_from_slice(a), Bytes::copy_from_slice(b)]).await.expect("write");
        }
        writer.commit().await.expect("commit");
        let reader = drive.open_blob("b", [9; 16]).await.expect("open");
        assert_eq!(reader.len(), content.len() as u64);
        assert_eq!(&reader.read_at(0, content.len()).await.expect("read")[..], &content[..]);
    }

    #[test]
    fn a_large_blob_goes_on_with_direct_writes_and_ends_exactly_at_its_length() {
        let dir = tempfile::tempdir().expect("tempdir");
        // Ends on a page boundary, a byte after one, a byte before one.
        for extra in [0usize, 1, DIRECT_ALIGN_BYTES - 1] {
            let path = dir.path().join(format!("blob-{extra}"));
            let file = OpenOptions::new().read(true).write(true).create_new(true).open(&path).expect("create");
            let mut blob = OpenBlob {
                file,
                path: path.clone(),
                written: 0,
                writeback_from: 0,
                direct: None,
                direct_allowed: true,
            };
            let len = 3 * DIRECT_STAGE_BYTES + 5 * DIRECT_ALIGN_BYTES + extra;
            let content: Vec<u8> = (0..len).map(|i| (i * 31 + i / 4093) as u8).collect();
            // Framed pieces (not page multiples), odd small parts, and one part
            // longer than the stage.
            let cuts = [524_320, 524_320, 7, 4_095, 1, 3 * DIRECT_STAGE_BYTES / 2, 33];
            let mut at = 0;
            for (i, cut) in cuts.iter().cycle().enumerate() {
                if at == len {
                    break;
                }
                let end = (at + cut).min(len);
                let (a, b) = content[at..end].split_at((end - at) / 2);
                blob.append(&[Bytes::copy_from_slice(a), Bytes::copy_from_slice(b)]).expect("append");
                at = end;
                let direct = blob.direct.is_some();
                assert_eq!(direct, at as u64 >= CACHE_DROP_MIN_BYTES, "append {i} ends at {at}: direct {direct}");
                assert_eq!(blob.written, at as u64);
            }
            blob.finish().expect("finish");
            blob.file.sync_all().expect("fsync");
            let on_disk = fs::read(&path).expect("read back");
            assert_eq!(on_disk.len(), len, "cut back to its length (extra {extra})");
            assert!(on_disk == content, "every byte where it was written (extra {extra})");
        }
    }

    #[tokio::test]
    async fn listings_name_committed_blobs_by_age_and_nothing_that_is_not_a_blob() {
        let dir = tempfile::tempdir().expect("tempdir");
        let drive = open(dir.path());
        for (bucket, id) in [("b", [1u8; 16]), ("b", [2; 16]), ("c", [3; 16])] {
            let mut writer = drive.create_blob(bucket, id).await.expect("create");
            writer.write(vec![Bytes::from_static(b"data")]).await.expect("write");
            writer.commit().await.expect("commit");
        }
        // Being written: under tmp/, never listed.
        let mut open_writer = drive.create_blob("b", [4; 16]).await.expect("create");
        open_writer.write(vec![Bytes::from_static(b"data")]).await.expect("write");
        // Not blobs: a wrong fan-out directory, a bad name, upper-case hex, a directory.
        let bucket_dir = dir.path().join("data").join("b");
        let strays = [
            bucket_dir.join("02").join(hex::encode([1u8; 16])),
            bucket_dir.join("01").join("notes.txt"),
            bucket_dir.join("01").join(hex::encode([1u8; 16]).to_uppercase()),
        ];
        fs::create_dir_all(bucket_dir.join("02")).expect("a fan-out directory");
        for stray in &strays {
            fs::write(stray, b"x").expect("write a stray file");
        }
        fs::create_dir_all(bucket_dir.join("01").join(hex::encode([9u8; 16]))).expect("a directory named like a blob");
        let old = std::time::SystemTime::now() - std::time::Duration::from_secs(7200);
        let file = fs::File::options().write(true).open(drive.blob_path("b", &[1; 16])).expect("open");
        file.set_modified(old).expect("age one blob");

        assert_eq!(drive.blob_buckets().await.expect("buckets"), ["b", "c"]);
        let an_hour_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
        assert_eq!(drive.blobs_modified_before("b", 1, an_hour_ago).await.expect("old"), [[1u8; 16]]);
        let now = std::time::SystemTime::now() + std::time::Duration::from_secs(1);
        assert_eq!(drive.blobs_modified_before("b", 1, now).await.expect("all of 01/"), [[1u8; 16]]);
        assert_eq!(drive.blobs_modified_before("b", 2, now).await.expect("all of 02/"), [[2u8; 16]]);
        assert!(drive.blobs_modified_before("b", 3, now).await.expect("no 03/").is_empty());
        assert!(drive.blobs_modified_before("nothing-here", 1, now).await.expect("none").is_empty());
        open_writer.abort().await;
    }

    #[tokio::test]
    async fn an_aborted_blob_leaves_no_temp_file_and_never_appears() {
        let dir = tempfile::tempdir().expect("tempdir");
        let drive = open(dir.path());
        let tmp = dir.path().join(SYSTEM_DIR).join("tmp");
        let mut writer = drive.create_blob("b", [5; 16]).await.expect("create");
        // Past the first MiB, so the writer has gone on with O_DIRECT too.
        writer.write(vec![Bytes::from(vec![1u8; 3 << 20])]).await.expect("write");
        assert_eq!(fs::read_dir(&tmp).expect("tmp").count(), 1, "being written under tmp/");
        writer.abort().await;
        assert_eq!(fs::read_dir(&tmp).expect("tmp").count(), 0, "the temp file is gone");
        assert!(matches!(drive.open_blob("b", [5; 16]).await, Err(Error::BlobNotFound { .. })));
    }

    #[test]
    fn pieces_laid_out_in_the_files_page_phase_are_written_from_where_they_are() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("blob");
        let file = OpenOptions::new().read(true).write(true).create_new(true).open(&path).expect("create");
        let mut blob =
            OpenBlob { file, path: path.clone(), written: 0, writeback_from: 0, direct: None, direct_allowed: true };
        // Framed pieces as a 2 MiB block with K = 4 makes them: 512 KiB and a
        // 32-byte hash, each piece in memory at its file offset's page phase.
        let piece_len = 512 * 1024;
        let mut expected = Vec::new();
        for block in 0..6u64 {
            let offset = block * (piece_len as u64 + 32);
            let phase = page_phase(offset);
            let mut memory = crate::buffers::DIRECT.take_filled(piece_len + 2 * DIRECT_ALIGN_BYTES);
            let start = memory.as_ptr().align_offset(DIRECT_ALIGN_BYTES) + phase;
            memory[start..start + piece_len]
                .iter_mut()
                .enumerate()
                .for_each(|(i, b)| *b = (i as u64 * 7 + block) as u8);
            let piece = crate::buffers::DIRECT.freeze(memory).slice(start..start + piece_len);
            let hash = Bytes::from(vec![block as u8 ^ 0x5a; 32]);
            expected.extend_from_slice(&piece);
            expected.extend_from_slice(&hash);
            blob.append(&[piece, hash]).expect("append");
        }
        let in_place = blob.direct.as_ref().expect("direct past the first MiB").in_place;
        // The first two blocks' MiB went through the page cache; of the other
        // four pieces all but the pages they share with a hash were written in place.
        assert!(in_place >= 4 * (piece_len as u64 - 2 * DIRECT_ALIGN_BYTES as u64), "{in_place} bytes in place");
        blob.finish().expect("finish");
        blob.file.sync_all().expect("fsync");
        assert!(fs::read(&path).expect("read back") == expected, "every byte where it was written");
        // Out of phase, the same pieces are staged (copied), and land the same.
        let path = dir.path().join("blob-2");
        let file = OpenOptions::new().read(true).write(true).create_new(true).open(&path).expect("create");
        let mut blob =
            OpenBlob { file, path: path.clone(), written: 0, writeback_from: 0, direct: None, direct_allowed: true };
        for chunk in expected.chunks(piece_len + 32) {
            let mut memory = crate::buffers::DIRECT.take_filled(chunk.len() + 2 * DIRECT_ALIGN_BYTES);
            let start = memory.as_ptr().align_offset(DIRECT_ALIGN_BYTES) + 1000;
            memory[start..start + chunk.len()].copy_from_slice(chunk);
            blob.append(&[crate::buffers::DIRECT.freeze(memory).slice(start..start + chunk.len())]).expect("append");
        }
        assert_eq!(blob.direct.as_ref().expect("direct").in_place, 0, "nothing was in phase");
        blob.finish().expect("finish");
        assert!(fs::read(&path).expect("read back") == expected);
    }

    #[test]
    fn appends_count_every_byte_and_start_writeback_once_per_interval() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("blob");
        let file = OpenOptions::new().write(true).create_new(true).open(&path).expect("create");
        // Buffered throughout: this is about the page-cache writes' writeback.
        let mut blob = OpenBlob { file, path, written: 0, writeback_from: 0, direct: None, direct_allowed: false };
        // Many small parts in one vectored write, then a piece-sized part.
        let small: Vec<Bytes> = (0..100u8).map(|i| Bytes::from(vec![i; 33])).collect();
        blob.append(&small).expect("append small parts");
        assert_eq!((blob.written, blob.writeback_from), (3_300, 0), "below one interval: no writeback yet");
        let piece = Bytes::from(vec![7u8; WRITEBACK_INTERVAL_BYTES as usize]);
        blob.append(std::slice::from_ref(&piece)).expect("append a piece");
        let written = 3_300 + WRITEBACK_INTERVAL_BYTES;
        assert_eq!((blob.written, blob.writeback_from), (written, written), "a full interval: writeback started");
        blob.append(&small[..1]).expect("append one part");
        assert_eq!((blob.written, blob.writeback_from), (written + 33, written));
        let on_disk = fs::read(dir.path().join("blob")).expect("read back");
        assert_eq!(on_disk.len() as u64, written + 33);
        assert_eq!(&on_disk[..33], &[0u8; 33]);
        assert_eq!(&on_disk[3_267..3_300], &[99u8; 33]);
        assert!(on_disk[3_300..written as usize].iter().all(|&b| b == 7));
    }

    #[tokio::test]
    async fn an_unreadable_metadata_store_is_set_aside_and_replaced() {
        let dir = tempfile::tempdir().expect("tempdir");
        let f = format(0);
        f.write(dir.path()).expect("format");
        fs::write(dir.path().join(SYSTEM_DIR).join("meta.redb"), vec![0xA5; 64 * 1024]).expect("garbage");
        let drive = LocalDrive::open(dir.path(), f).expect("open despite the garbage");
        assert!(drive.list_buckets().await.expect("empty store").is_empty());
        let aside = fs::read_dir(dir.path().join(SYSTEM_DIR))
            .expect("list")
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with("meta.redb.unreadable-"))
            .count();
        assert_eq!(aside, 1, "the unreadable store is kept aside, not deleted");
    }

    #[tokio::test]
    async fn a_metadata_store_that_fails_to_open_but_is_not_corrupt_is_left_alone() {
        let dir = tempfile::tempdir().expect("tempdir");
        let f = format(0);
        f.write(dir.path()).expect("format");
        // Opening a directory fails with an I/O error, not a corruption report.
        let store = dir.path().join(SYSTEM_DIR).join("meta.redb");
        fs::create_dir(&store).expect("a directory where the store goes");
        fs::write(store.join("keep"), b"records").expect("a file inside");
        let opened = LocalDrive::open(dir.path(), f);
        assert!(matches!(opened, Err(Error::Store { .. })), "the drive does not open: {opened:?}");
        assert_eq!(fs::read(store.join("keep")).expect("still there"), b"records", "nothing was moved or replaced");
        let aside = fs::read_dir(dir.path().join(SYSTEM_DIR))
            .expect("list")
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with("meta.redb.unreadable-"))
            .count();
        assert_eq!(aside, 0, "nothing is set aside");
    }

    #[tokio::test]
    async fn a_wiped_drive_refuses_commits() {
        let dir = tempfile::tempdir().expect("tempdir");
        let drive = open(dir.path());
        fs::remove_dir_all(dir.path().join(SYSTEM_DIR)).expect("wipe");
        let result = drive.commit(vec![MetaOp::PutSystem { name: "x".into(), value: Bytes::new() }]).await;
        assert!(matches!(result, Err(Error::Offline { .. })), "{result:?}");
        assert!(!drive.is_online());
    }
}
