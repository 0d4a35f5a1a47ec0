//! S3 checksums (CRC32, CRC32C, CRC64NVME, SHA1, SHA256): computed while the
//! body streams in, verified against what the client sent before anything is
//! stored, kept with the object, and checked again on full reads.
//!
//! Multipart objects carry either a COMPOSITE checksum — the hash of the
//! concatenated raw part digests, written `base64-N` — or, for the CRC family,
//! a FULL_OBJECT checksum obtained by combining the part CRCs mathematically
//! (no second read of the data).

use base64::Engine;
use serde::{Deserialize, Serialize};
use sha1::Digest as _;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum ChecksumAlgorithm {
    Crc32,
    Crc32c,
    Crc64nvme,
    Sha1,
    Sha256,
}

impl ChecksumAlgorithm {
    pub const ALL: [ChecksumAlgorithm; 5] = [Self::Crc32, Self::Crc32c, Self::Crc64nvme, Self::Sha1, Self::Sha256];

    /// The wire name (`CRC32`, …) as in `x-amz-checksum-algorithm`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Crc32 => "CRC32",
            Self::Crc32c => "CRC32C",
            Self::Crc64nvme => "CRC64NVME",
            Self::Sha1 => "SHA1",
            Self::Sha256 => "SHA256",
        }
    }

    pub fn parse(name: &str) -> Option<ChecksumAlgorithm> {
        Self::ALL.into_iter().find(|a| a.as_str().eq_ignore_ascii_case(name))
    }

    /// Lower-case header suffix: `x-amz-checksum-<suffix>`.
    pub fn header_suffix(self) -> &'static str {
        match self {
            Self::Crc32 => "crc32",
            Self::Crc32c => "crc32c",
            Self::Crc64nvme => "crc64nvme",
            Self::Sha1 => "sha1",
            Self::Sha256 => "sha256",
        }
    }

    pub fn digest_len(self) -> usize {
        match self {
            Self::Crc32 | Self::Crc32c => 4,
            Self::Crc64nvme => 8,
            Self::Sha1 => 20,
            Self::Sha256 => 32,
        }
    }

    pub fn is_crc(self) -> bool {
        matches!(self, Self::Crc32 | Self::Crc32c | Self::Crc64nvme)
    }

    fn crc(self) -> Option<crc_fast::CrcAlgorithm> {
        match self {
            Self::Crc32 => Some(crc_fast::CrcAlgorithm::Crc32IsoHdlc),
            Self::Crc32c => Some(crc_fast::CrcAlgorithm::Crc32Iscsi),
            Self::Crc64nvme => Some(crc_fast::CrcAlgorithm::Crc64Nvme),
            Self::Sha1 | Self::Sha256 => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ChecksumType {
    FullObject,
    Composite,
}

impl ChecksumType {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::FullObject => "FULL_OBJECT",
            Self::Composite => "COMPOSITE",
        }
    }
}

/// A checksum as stored with an object or part.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredChecksum {
    pub algorithm: ChecksumAlgorithm,
    #[serde(rename = "type")]
    pub kind: ChecksumType,
    /// Wire form: base64 of the digest, with `-N` for composite checksums.
    pub value: String,
}

pub fn encode(digest: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(digest)
}

/// Decodes a wire checksum value, checking its length for the algorithm.
pub fn decode(algorithm: ChecksumAlgorithm, value: &str) -> Option<Vec<u8>> {
    let raw = base64::engine::general_purpose::STANDARD.decode(value.trim()).ok()?;
    (raw.len() == algorithm.digest_len()).then_some(raw)
}

/// A running checksum.
pub enum Hasher {
    Crc(ChecksumAlgorithm, crc_fast::Digest),
    Sha1(sha1::Sha1),
    Sha256(sha2::Sha256),
}

impl Hasher {
    pub fn new(algorithm: ChecksumAlgorithm) -> Hasher {
        match (algorithm, algorithm.crc()) {
            (_, Some(crc)) => Hasher::Crc(algorithm, crc_fast::Digest::new(crc)),
            (ChecksumAlgorithm::Sha1, None) => Hasher::Sha1(sha1::Sha1::new()),
            _ => Hasher::Sha256(sha2::Sha256::new()),
        }
    }

    pub fn update(&mut self, data: &[u8]) {
        match self {
            Hasher::Crc(_, digest) => digest.update(data),
            Hasher::Sha1(h) => h.update(data),
            Hasher::Sha256(h) => h.update(data),
        }
    }

    /// The raw digest (big-endian for CRCs, as on the wire).
    pub fn finalize(self) -> Vec<u8> {
        match self {
            Hasher::Crc(algorithm, digest) => crc_bytes(algorithm, digest.finalize()),
            Hasher::Sha1(h) => h.finalize().to_vec(),
            Hasher::Sha256(h) => h.finalize().to_vec(),
        }
    }
}

fn crc_bytes(algorithm: ChecksumAlgorithm, value: u64) -> Vec<u8> {
    if algorithm == ChecksumAlgorithm::Crc64nvme {
        value.to_be_bytes().to_vec()
    } else {
        (value as u32).to_be_bytes().to_vec()
    }
}

fn crc_value(digest: &[u8]) -> u64 {
    digest.iter().fold(0u64, |acc, b| (acc << 8) | u64::from(*b))
}

/// CRC of `A ‖ B` from `crc(A)`, `crc(B)` and `len(B)`.
pub fn combine_crc(algorithm: ChecksumAlgorithm, first: &[u8], second: &[u8], second_len: u64) -> Option<Vec<u8>> {
    let crc = algorithm.crc()?;
    let combined = crc_fast::checksum_combine(crc, crc_value(first), crc_value(second), second_len);
    Some(crc_bytes(algorithm, combined))
}

/// Composite checksum of parts: hash of the concatenated raw part digests, `-N`.
pub fn composite(algorithm: ChecksumAlgorithm, part_digests: &[Vec<u8>]) -> String {
    let mut hasher = Hasher::new(algorithm);
    for digest in part_digests {
        hasher.update(digest);
    }
    format!("{}-{}", encode(&hasher.finalize()), part_digests.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn checksum(algorithm: ChecksumAlgorithm, data: &[u8]) -> String {
        let mut h = Hasher::new(algorithm);
        h.update(data);
        encode(&h.finalize())
    }

    #[test]
    fn known_vectors_match_s3() {
        // Values S3 (and the AWS SDKs) give for the 9-byte string "123456789".
        let data = b"123456789";
        assert_eq!(checksum(ChecksumAlgorithm::Crc32, data), "y/Q5Jg==");
        assert_eq!(checksum(ChecksumAlgorithm::Crc32c, data), "4waSgw==");
        assert_eq!(checksum(ChecksumAlgorithm::Crc64nvme, data), "rosUhgp5mIg=");
        assert_eq!(checksum(ChecksumAlgorithm::Sha1, b"abc"), "qZk+NkcGgWq6PiVxeFDCbJzQ2J0=");
        assert_eq!(checksum(ChecksumAlgorithm::Sha256, b"abc"), "ungWv48Bz+pBQUDeXa4iI7ADYaOWF3qctBD/YfIAFa0=");
    }

    #[test]
    fn combined_crcs_equal_the_crc_of_the_whole() {
        let a: Vec<u8> = (0..1000u32).map(|i| (i * 7) as u8).collect();
        let b: Vec<u8> = (0..777u32).map(|i| (i * 13 + 1) as u8).collect();
        let whole: Vec<u8> = a.iter().chain(&b).copied().collect();
        for algorithm in [ChecksumAlgorithm::Crc32, ChecksumAlgorithm::Crc32c, ChecksumAlgorithm::Crc64nvme] {
            let digest = |d: &[u8]| {
                let mut h = Hasher::new(algorithm);
                h.update(d);
                h.finalize()
            };
            let combined = combine_crc(algorithm, &digest(&a), &digest(&b), b.len() as u64).expect("crc");
            assert_eq!(combined, digest(&whole), "{algorithm:?}");
        }
        assert!(combine_crc(ChecksumAlgorithm::Sha256, &[], &[], 0).is_none());
    }

    #[test]
    fn wire_values_are_length_checked() {
        assert!(decode(ChecksumAlgorithm::Crc32, "y/Q5Jg==").is_some());
        assert!(decode(ChecksumAlgorithm::Crc64nvme, "y/Q5Jg==").is_none());
        assert!(decode(ChecksumAlgorithm::Crc32, "!!").is_none());
        assert_eq!(ChecksumAlgorithm::parse("crc64nvme"), Some(ChecksumAlgorithm::Crc64nvme));
        assert_eq!(ChecksumAlgorithm::parse("md5"), None);
    }
}
