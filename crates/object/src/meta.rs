//! The records the object layer keeps on drives, and their encoding.
//!
//! Every record is stored as one format byte followed by JSON. The format byte
//! lets a later release change the encoding while still reading old records;
//! decoding rejects unknown formats instead of guessing. The layout is in
//! `docs/design/metadata-format.md`.

use std::collections::BTreeMap;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::checksum::{ChecksumAlgorithm, ChecksumType, StoredChecksum};

/// Format marker of every record written by this release.
pub const RECORD_FORMAT_V1: u8 = 1;

#[derive(Debug, thiserror::Error)]
#[error("undecodable {what} record: {detail}")]
pub struct DecodeError {
    pub what: &'static str,
    pub detail: String,
}

pub fn encode<T: Serialize>(record: &T) -> Bytes {
    let mut out = vec![RECORD_FORMAT_V1];
    // Serialising plain structs of strings and numbers cannot fail.
    serde_json::to_writer(&mut out, record).expect("records serialise");
    Bytes::from(out)
}

pub fn decode<T: for<'de> Deserialize<'de>>(what: &'static str, raw: &[u8]) -> Result<T, DecodeError> {
    match raw.split_first() {
        Some((&RECORD_FORMAT_V1, json)) => {
            serde_json::from_slice(json).map_err(|e| DecodeError { what, detail: e.to_string() })
        }
        Some((other, _)) => Err(DecodeError { what, detail: format!("unknown format byte {other}") }),
        None => Err(DecodeError { what, detail: "empty record".into() }),
    }
}

/// Bucket record, kept on every drive of every set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BucketRecord {
    pub created_ns: i64,
    #[serde(default)]
    pub versioning: crate::Versioning,
    /// Bumped by every change; the newest record wins when drives disagree.
    #[serde(default)]
    pub generation: u64,
    /// The bucket policy as the client sent it (validated by the access layer).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_access_block: Option<PublicAccessBlock>,
    /// Encryption applied to writes that name none (PutBucketEncryption).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_encryption: Option<DefaultEncryption>,
}

/// A bucket's default encryption rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DefaultEncryption {
    /// `AES256` or `aws:kms`.
    pub algorithm: String,
    /// As the client gave it (id, ARN or alias), for `aws:kms`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kms_key_id: Option<String>,
    #[serde(default)]
    pub bucket_key: bool,
    /// `BlockedEncryptionTypes` contains `SSE-C`: SSE-C writes are refused.
    #[serde(default)]
    pub blocked_sse_c: bool,
}

/// The four switches of S3's PublicAccessBlock configuration.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublicAccessBlock {
    pub block_public_acls: bool,
    pub ignore_public_acls: bool,
    pub block_public_policy: bool,
    pub restrict_public_buckets: bool,
}

/// Standard content headers that round-trip with an object.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContentHeaders {
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub content_type: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub content_encoding: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub content_disposition: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub content_language: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub cache_control: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub expires: Option<String>,
}

/// Where one part of an object's data lives and how it was coded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartLayout {
    pub number: u32,
    pub size: u64,
    /// Hex MD5 of the part's bytes (the part ETag, unquoted).
    pub etag: String,
    /// Hex id of the blob holding this part's shard on each drive; `None`
    /// when the data is inline in the metadata store (small objects).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub blob: Option<String>,
    /// Base64 checksum of this part's bytes, in the object's checksum algorithm.
    /// Absent for encrypted parts (the stored bytes are ciphertext; every
    /// package is authenticated instead).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub checksum: Option<String>,
    /// Encrypted parts: the plaintext size (`size` is the stored size).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub plain_size: Option<u64>,
    /// Encrypted parts: hex of the 12-byte base nonce of its packages.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub nonce: Option<String>,
}

impl PartLayout {
    /// Size of the part as the client sees it.
    pub fn client_size(&self) -> u64 {
        self.plain_size.unwrap_or(self.size)
    }
}

/// How an object's data is encrypted at rest and how its key is sealed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EncryptionRecord {
    /// `SSE-C` (issue 8 adds `SSE-S3` and `SSE-KMS`).
    pub scheme: String,
    /// Hex salt and HMAC-SHA256 of the customer key (SSE-C): recognises the
    /// key on later requests; the key itself is never stored.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub key_mac_salt: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub key_mac: Option<String>,
    /// Hex of the sealed object key: HKDF salt, AES-GCM nonce, ciphertext‖tag.
    pub seal_salt: String,
    pub seal_nonce: String,
    pub sealed_key: String,
    /// Base64 MD5 of the customer key, echoed in responses (as S3 does).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub key_md5: Option<String>,
    /// SSE-S3/SSE-KMS: base64 of the KMS ciphertext of the data key that
    /// sealed the object key (names the KMS key and its version).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub wrapped_key: Option<String>,
    /// SSE-KMS: the KMS key's ARN, and the client's encryption context.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub kms_key_arn: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub kms_context: Option<String>,
    #[serde(skip_serializing_if = "std::ops::Not::not", default)]
    pub bucket_key: bool,
}

/// How the object's data is spread over its set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DataLayout {
    pub data: usize,
    pub parity: usize,
    pub block_size: usize,
    /// `distribution[position]` is the shard index stored on the drive at that
    /// position of the set.
    pub distribution: Vec<usize>,
    pub inline: bool,
    pub parts: Vec<PartLayout>,
    /// True for objects made by CompleteMultipartUpload.
    #[serde(default)]
    pub multipart: bool,
}

/// One version of one object (or a delete marker), identical on every drive.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionRecord {
    /// `None` is S3's `null` version (unversioned or suspended buckets).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub version_id: Option<String>,
    pub mod_time_ns: i64,
    #[serde(default)]
    pub delete_marker: bool,
    pub size: u64,
    /// Unquoted ETag.
    pub etag: String,
    #[serde(default)]
    pub headers: ContentHeaders,
    #[serde(default)]
    pub user_meta: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub layout: Option<DataLayout>,
    /// The object's checksum (D4), verified on write and on full reads.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub checksum: Option<StoredChecksum>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub encryption: Option<EncryptionRecord>,
    /// Object tags (S3 tagging), at most ten.
    #[serde(skip_serializing_if = "BTreeMap::is_empty", default)]
    pub tags: BTreeMap<String, String>,
}

/// An in-progress multipart upload, kept on every drive of the object's set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UploadRecord {
    pub initiated_ns: i64,
    #[serde(default)]
    pub headers: ContentHeaders,
    #[serde(default)]
    pub user_meta: BTreeMap<String, String>,
    pub distribution: Vec<usize>,
    pub data: usize,
    pub parity: usize,
    pub block_size: usize,
    pub checksum_algorithm: ChecksumAlgorithm,
    pub checksum_type: ChecksumType,
    /// Whether the client chose the algorithm (else it is our default).
    #[serde(default)]
    pub checksum_explicit: bool,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub encryption: Option<EncryptionRecord>,
    /// Tags the completed object gets.
    #[serde(skip_serializing_if = "BTreeMap::is_empty", default)]
    pub tags: BTreeMap<String, String>,
}

/// One uploaded part, kept on every drive that holds its shard.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartRecord {
    pub size: u64,
    pub etag: String,
    pub blob: String,
    pub mod_time_ns: i64,
    /// Base64 checksum of the part in the upload's algorithm.
    pub checksum: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub plain_size: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub nonce: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_unknown_formats_are_refused() {
        let record = VersionRecord {
            version_id: None,
            mod_time_ns: 42,
            delete_marker: false,
            size: 3,
            etag: "abc".into(),
            headers: ContentHeaders { content_type: Some("text/plain".into()), ..ContentHeaders::default() },
            user_meta: BTreeMap::from([("k".into(), "v".into())]),
            layout: None,
            checksum: None,
            encryption: None,
            tags: BTreeMap::new(),
        };
        let raw = encode(&record);
        assert_eq!(raw[0], RECORD_FORMAT_V1);
        assert_eq!(decode::<VersionRecord>("version", &raw).expect("decode"), record);
        let mut future = raw.to_vec();
        future[0] = 9;
        assert!(decode::<VersionRecord>("version", &future).is_err());
        assert!(decode::<VersionRecord>("version", &[]).is_err());
        assert!(decode::<VersionRecord>("version", &raw[..raw.len() - 1]).is_err());
    }

    #[test]
    fn stored_v1_sample_still_decodes() {
        // A record as written by the first release; keep decoding it forever.
        let sample = b"\x01{\"mod_time_ns\":1,\"size\":0,\"etag\":\"d41d8cd98f00b204e9800998ecf8427e\"}";
        let record: VersionRecord = decode("version", sample).expect("decode v1 sample");
        assert_eq!(record.size, 0);
        assert!(record.layout.is_none());
        assert!(!record.delete_marker);
    }
}
