//! The object layer: buckets, objects, multipart uploads and listings over
//! erasure sets of drives.
//!
//! Contract (DESIGN.md D1, D3): a write returns `Ok` only once its shards and
//! its metadata are durable on every reachable drive of the object's set and
//! on at least the write quorum `W` of them, spanning at least two facilities;
//! otherwise it fails with [`Error::InsufficientDrives`] and nothing becomes
//! visible. A read verifies every piece it uses and rebuilds from parity
//! whatever is missing or corrupt, never returning a byte it could not verify.
//!
//! This crate knows nothing of HTTP or S3 wire formats; the `s3` crate maps
//! its types and errors onto the protocol.
#![forbid(unsafe_code)]

use std::collections::BTreeMap;
use std::pin::Pin;

use bytes::Bytes;
use futures::Stream;

pub mod checksum;
mod documents;
mod heal;
mod healer;
mod md5_lanes;
pub use md5_lanes::blocks_hashed as md5_blocks_hashed;
pub mod meta;
mod names;
mod quorum;
mod read;
mod reclaim;
mod rekey;
mod set;
pub mod sse;
mod store;
mod tagging;
pub mod testing;
mod write;

pub use checksum::{ChecksumAlgorithm, ChecksumType, StoredChecksum};
pub use documents::Document;
pub use heal::{HealOutcome, VerifyReport};
pub use healer::{DriveStatus, ForegroundRequest, HealQueue, HealStats, HealerConfig, PassReport, Status};
pub use meta::{BucketRecord, ContentHeaders, DefaultEncryption, PublicAccessBlock};
pub use names::{validate_bucket_name, validate_object_key};
pub use reclaim::{ORPHAN_GRACE, ReclaimReport};
pub use rekey::{ManagedPage, ManagedVersion};
pub use set::{ErasureSet, SetConfig};
pub use store::{CompletedPart, GetOptions, GetOutcome, ObjectStore, RangeSpec, ReadConditions};

/// Objects at most this large are stored inline with their metadata.
pub const INLINE_SIZE_BYTES_MAX: u64 = 128 * 1024;
/// Bytes of object data coded together as one erasure block (for new objects
/// and uploads; each records its own, so a change never touches stored data).
/// 2 MiB: half the per-block costs of 1 MiB (handoffs to the hashing thread
/// and six drive writers, a write and a coding call per drive) for a 4+2 PUT
/// of 64 MiB (unsigned ×1 ~480 → ~520 MiB/s on the 2-core bench machine),
/// while a range read still reads at most a 512 KiB piece per drive.
pub const BLOCK_SIZE_BYTES: usize = 2 * 1024 * 1024;
/// Largest single PUT or part (S3's limit).
pub const OBJECT_SIZE_BYTES_MAX: u64 = 5 * 1024 * 1024 * 1024;
/// Smallest part size for every part but the last of a multipart upload.
pub const PART_SIZE_BYTES_MIN: u64 = 5 * 1024 * 1024;
pub const PART_NUMBER_MAX: u32 = 10_000;
pub const KEY_LENGTH_BYTES_MAX: usize = 1024;
pub const LIST_KEYS_MAX: usize = 1000;
const _: () = assert!(INLINE_SIZE_BYTES_MAX <= BLOCK_SIZE_BYTES as u64);

/// A request or response body as a stream of chunks.
pub type ByteStream = Pin<Box<dyn Stream<Item = Result<Bytes, std::io::Error>> + Send + Sync + 'static>>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("no such bucket {0}")]
    NoSuchBucket(String),
    #[error("bucket {0} already exists")]
    BucketAlreadyOwnedByYou(String),
    #[error("bucket {0} is not empty")]
    BucketNotEmpty(String),
    #[error("invalid bucket name: {0}")]
    InvalidBucketName(String),
    #[error("no such key")]
    NoSuchKey,
    #[error("no such version")]
    NoSuchVersion,
    /// The addressed object is a delete marker: 404 when it is the latest
    /// version of a key, 405 when it was asked for by version id.
    #[error("delete marker")]
    DeleteMarker { version_id: Option<String>, by_version_id: bool },
    #[error("no such upload")]
    NoSuchUpload,
    #[error("invalid part: {0}")]
    InvalidPart(String),
    #[error("parts are not in ascending order")]
    InvalidPartOrder,
    #[error("part {part} is smaller than the minimum part size")]
    EntityTooSmall { part: u32 },
    #[error("object is larger than the maximum size")]
    EntityTooLarge,
    #[error("the Content-MD5 you specified did not match what we received")]
    BadDigest,
    #[error("the body ended before the declared length")]
    IncompleteBody,
    #[error("precondition failed")]
    PreconditionFailed,
    #[error("not modified")]
    NotModified,
    #[error("the requested range is not satisfiable")]
    InvalidRange,
    #[error("the requested part number is not satisfiable")]
    InvalidPartNumber,
    #[error("key too long")]
    KeyTooLong,
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    #[error("only {available} drives usable of the {needed} this write needs")]
    InsufficientDrives { needed: usize, available: usize },
    #[error("object {bucket}/{key} is unreadable: {detail}")]
    Unreadable { bucket: String, key: String, detail: String },
    #[error("reading the request body failed: {0}")]
    Body(std::io::Error),
    #[error("the {} checksum you specified did not match the calculated checksum", .0.as_str())]
    ChecksumMismatch(ChecksumAlgorithm),
    #[error("invalid checksum request: {0}")]
    InvalidChecksumRequest(String),
    /// The object is SSE-C encrypted and the request gave no key.
    #[error("the object is encrypted with a customer key that the request did not provide")]
    SseCKeyRequired,
    /// The customer key does not match the one the object was written with.
    #[error("the customer key does not match")]
    SseCKeyMismatch,
    /// SSE-C parameters given for data that is not SSE-C encrypted.
    #[error("encryption parameters do not apply: {0}")]
    SseCNotApplicable(String),
    /// A configuration change refused by another setting of the bucket.
    #[error("forbidden: {0}")]
    Forbidden(String),
    /// The KMS would not open or make a data key: `code` is the S3 error
    /// code to answer with (`KMS.DisabledException`, `AccessDenied`, …).
    #[error("{code}: {message}")]
    KeyUnavailable { code: String, message: String },
    #[error("internal error: {0}")]
    Internal(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A bucket's versioning state. A bucket never returns to `Unversioned`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Versioning {
    #[default]
    Unversioned,
    Enabled,
    Suspended,
}

/// What DeleteObject did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeleteOutcome {
    /// A delete marker was created, or the deleted version was one.
    pub delete_marker: bool,
    /// The version id of the marker created, or of the version removed.
    pub version_id: Option<String>,
}

/// What the caller asks to store with a new object.
#[derive(Debug, Clone, Default)]
pub struct PutOptions {
    pub headers: ContentHeaders,
    pub user_meta: BTreeMap<String, String>,
    /// Expected MD5 of the body (Content-MD5), checked before anything is stored.
    pub content_md5: Option<[u8; 16]>,
    pub condition: WriteCondition,
    pub checksum: ChecksumRequest,
    /// Encrypt the data at rest.
    pub encryption: Option<Encryption>,
    /// Opens KMS-wrapped keys for this request (parts of an SSE-S3/SSE-KMS upload).
    pub unwrapper: Option<Unwrapper>,
    /// Object tags (validated by the caller).
    pub tags: BTreeMap<String, String>,
}

/// Server-side encryption requested for a write.
#[derive(Debug, Clone)]
pub enum Encryption {
    /// SSE-C: the customer's 256-bit key and its base64 MD5 (as sent).
    CustomerKey { key: bulwark_crypto::Key32, key_md5: String },
    /// SSE-S3 or SSE-KMS: a data key the KMS generated for this object.
    Managed(ManagedKey),
}

/// Which KMS-held key protects an object's data key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ManagedScheme {
    /// `AES256`: the KMS's SSE-S3 master key.
    SseS3,
    /// `aws:kms`: a customer-managed (or the `aws/s3`) KMS key.
    SseKms,
}

impl ManagedScheme {
    pub fn name(self) -> &'static str {
        match self {
            ManagedScheme::SseS3 => sse::SCHEME_SSE_S3,
            ManagedScheme::SseKms => sse::SCHEME_SSE_KMS,
        }
    }
}

/// A data key from the KMS: the plaintext seals the object key; the
/// wrapped form (the KMS ciphertext, naming key and key version) is stored.
#[derive(Debug, Clone)]
pub struct ManagedKey {
    pub scheme: ManagedScheme,
    pub data_key: bulwark_crypto::Key32,
    pub wrapped: Vec<u8>,
    /// Full ARN of the KMS key (SSE-KMS).
    pub key_arn: Option<String>,
    /// The client's encryption context, base64 JSON as sent (SSE-KMS).
    pub context: Option<String>,
    pub bucket_key: bool,
}

/// What the KMS needs to open a stored data key.
#[derive(Debug, Clone, Copy)]
pub struct WrappedKey<'a> {
    pub scheme: ManagedScheme,
    pub wrapped: &'a [u8],
    pub key_arn: Option<&'a str>,
    pub context: Option<&'a str>,
    pub bucket: &'a str,
    pub key: &'a str,
}

/// Opens KMS-wrapped data keys on behalf of one request's caller (so key
/// permissions are the caller's). Implemented by the S3 layer over the KMS.
#[async_trait::async_trait]
pub trait KeyUnwrapper: Send + Sync {
    async fn unwrap(&self, wrapped: WrappedKey<'_>) -> Result<bulwark_crypto::Key32>;
}

/// A shareable [`KeyUnwrapper`].
#[derive(Clone)]
pub struct Unwrapper(pub std::sync::Arc<dyn KeyUnwrapper>);

impl std::fmt::Debug for Unwrapper {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Unwrapper")
    }
}

/// Server-side encryption of an object as reported to clients.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseSummary {
    pub scheme: ManagedScheme,
    pub key_arn: Option<String>,
    pub context: Option<String>,
    pub bucket_key: bool,
}

/// Which checksum to compute over a body and what the client says it is.
#[derive(Debug, Clone, Default)]
pub struct ChecksumRequest {
    /// `None`: the client named none; the store computes its default (CRC64NVME).
    pub algorithm: Option<ChecksumAlgorithm>,
    pub expected: Option<ExpectedChecksum>,
    /// Further checksums the client sent (e.g. a part checksum in another
    /// algorithm than the upload's): verified, not stored.
    pub also_verify: Vec<(ChecksumAlgorithm, ExpectedChecksum)>,
}

/// Fetches a checksum that arrives in a trailer, once the body was read.
pub type TrailerFetch = std::sync::Arc<dyn Fn() -> Result<Option<Vec<u8>>, String> + Send + Sync>;

/// The value a client gave for a checksum: in a header (known up front) or
/// in an aws-chunked trailer (known only after the body).
#[derive(Clone)]
pub enum ExpectedChecksum {
    Value(Vec<u8>),
    Trailer(TrailerFetch),
}

impl std::fmt::Debug for ExpectedChecksum {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Value(v) => write!(f, "Value({})", checksum::encode(v)),
            Self::Trailer(_) => f.write_str("Trailer"),
        }
    }
}

impl ExpectedChecksum {
    /// The expected digest, fetching a trailer if needed.
    pub fn resolve(&self) -> Result<Option<Vec<u8>>> {
        match self {
            Self::Value(v) => Ok(Some(v.clone())),
            Self::Trailer(fetch) => fetch().map_err(Error::InvalidChecksumRequest),
        }
    }
}

/// Conditional write (`If-None-Match: *`, `If-Match: etag`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum WriteCondition {
    #[default]
    None,
    /// Only if no object exists under the key.
    IfNoneMatchAny,
    /// Only if the current object has this (unquoted) ETag.
    IfMatch(String),
}

/// The durability receipt of a write: `durable` of `total` shards are on disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Redundancy {
    pub durable: usize,
    pub total: usize,
}

#[derive(Debug, Clone)]
pub struct PutOutcome {
    pub etag: String,
    pub size: u64,
    pub version_id: Option<String>,
    pub redundancy: Redundancy,
    pub mod_time_ns: i64,
    pub checksum: Option<StoredChecksum>,
    /// Base64 MD5 of the SSE-C key used, for the response.
    pub sse_c_key_md5: Option<String>,
    /// SSE-S3 / SSE-KMS of what was written.
    pub sse: Option<SseSummary>,
}

#[derive(Debug, Clone)]
pub struct BucketInfo {
    pub name: String,
    pub created_ns: i64,
}

/// Everything HEAD returns about one version.
#[derive(Debug, Clone)]
pub struct ObjectInfo {
    pub bucket: String,
    pub key: String,
    pub version_id: Option<String>,
    pub size: u64,
    pub etag: String,
    pub mod_time_ns: i64,
    pub headers: ContentHeaders,
    pub user_meta: BTreeMap<String, String>,
    pub delete_marker: bool,
    /// Number of parts for multipart objects.
    pub parts_count: Option<u32>,
    /// Every part (one for single-part objects), for partNumber reads and
    /// GetObjectAttributes.
    pub parts: Vec<PartSummary>,
    pub checksum: Option<StoredChecksum>,
    /// Base64 MD5 of the SSE-C key the object is encrypted with.
    pub sse_c_key_md5: Option<String>,
    /// SSE-S3 / SSE-KMS, when the object is encrypted that way.
    pub sse: Option<SseSummary>,
    /// Number of object tags (x-amz-tagging-count).
    pub tag_count: usize,
}

#[derive(Debug, Clone)]
pub struct PartSummary {
    pub number: u32,
    pub size: u64,
    pub etag: String,
    /// Base64 part checksum in the object's checksum algorithm.
    pub checksum: Option<String>,
}

/// An inclusive byte range already resolved against the object size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteRange {
    pub start: u64,
    pub end_inclusive: u64,
}

impl ByteRange {
    pub fn len(&self) -> u64 {
        self.end_inclusive - self.start + 1
    }
    pub fn is_empty(&self) -> bool {
        false
    }
}

#[derive(Debug)]
pub struct ListParams {
    pub prefix: String,
    pub delimiter: Option<String>,
    /// Return keys strictly after this one.
    pub start_after: Option<String>,
    pub max_keys: usize,
}

#[derive(Debug, Clone)]
pub struct ListEntry {
    pub key: String,
    pub size: u64,
    pub etag: String,
    pub mod_time_ns: i64,
    pub multipart_parts: Option<u32>,
}

#[derive(Debug, Default)]
pub struct ListPage {
    pub objects: Vec<ListEntry>,
    pub common_prefixes: Vec<String>,
    pub is_truncated: bool,
    /// The last key or common prefix returned, for the next page's marker.
    pub next_marker: Option<String>,
}

#[derive(Debug)]
pub struct VersionListParams {
    pub prefix: String,
    pub delimiter: Option<String>,
    pub key_marker: Option<String>,
    pub version_id_marker: Option<String>,
    pub max_keys: usize,
}

#[derive(Debug, Clone)]
pub struct VersionEntry {
    pub key: String,
    /// `None` is the null version.
    pub version_id: Option<String>,
    pub is_latest: bool,
    pub delete_marker: bool,
    pub size: u64,
    pub etag: String,
    pub mod_time_ns: i64,
}

#[derive(Debug, Default)]
pub struct VersionsPage {
    pub versions: Vec<VersionEntry>,
    pub common_prefixes: Vec<String>,
    pub is_truncated: bool,
    pub next_key_marker: Option<String>,
    pub next_version_id_marker: Option<String>,
}

#[derive(Debug, Clone)]
pub struct UploadInfo {
    pub key: String,
    pub upload_id: String,
    pub initiated_ns: i64,
}

#[derive(Debug, Clone)]
pub struct PartInfo {
    pub number: u32,
    pub size: u64,
    pub etag: String,
    pub mod_time_ns: i64,
    pub checksum: Option<StoredChecksum>,
}

#[derive(Debug, Default)]
pub struct UploadsPage {
    pub uploads: Vec<UploadInfo>,
    pub common_prefixes: Vec<String>,
    pub is_truncated: bool,
    pub next_key_marker: Option<String>,
    pub next_upload_id_marker: Option<String>,
}

pub(crate) fn now_ns() -> i64 {
    let now = time::OffsetDateTime::now_utc();
    i64::try_from(now.unix_timestamp_nanos()).unwrap_or(i64::MAX)
}
