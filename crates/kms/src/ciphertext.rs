//! The KMS ciphertext blob (`docs/design/kms-format.md`): what `Encrypt`,
//! `GenerateDataKey` and the SSE paths hand out, and what `Decrypt` takes
//! back from untrusted clients.
//!
//! ```text
//! offset  size  field
//! 0       2     magic "BK"
//! 2       1     format version (1)
//! 3       16    key id (UUID bytes)
//! 19      4     key version (u32 BE, 1 = the key's first material)
//! 23      12    nonce
//! 35      n+16  AES-256-GCM(material of that version, nonce, plaintext) ‖ tag
//! ```
//!
//! Associated data = the 23 header bytes ‖ the encryption context encoded by
//! [`encode_context`]. The header names the key and its version, so a
//! ciphertext stays readable after rotation, and binding it into the AAD
//! means an edited key id or version cannot select other material unnoticed.
//!
//! Parsing is pure and bounded: it never allocates more than the input and
//! refuses any length outside [`BLOB_BYTES_MIN`]..=[`BLOB_BYTES_MAX`].

use bulwark_crypto::{Key32, NONCE_LEN, TAG_LEN};
use uuid::Uuid;

use crate::EncryptionContext;

const MAGIC: &[u8; 2] = b"BK";
const FORMAT_VERSION: u8 = 1;
/// Magic, format version, key id and key version.
pub const HEADER_LEN: usize = 2 + 1 + 16 + 4;
/// An empty plaintext sealed: header, nonce and tag.
pub const BLOB_BYTES_MIN: usize = HEADER_LEN + NONCE_LEN + TAG_LEN;
/// Largest plaintext the KMS ever seals (Encrypt: 4096 bytes; data keys: 1024).
pub const PLAINTEXT_BYTES_MAX: usize = 4096;
/// Largest ciphertext blob accepted (AWS: 6144 bytes for Decrypt).
pub const BLOB_BYTES_MAX: usize = 6144;

const _: () = assert!(BLOB_BYTES_MIN + PLAINTEXT_BYTES_MAX <= BLOB_BYTES_MAX);

/// A parsed blob; the sealed part is still to be opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Blob<'a> {
    pub key_id: Uuid,
    /// 1-based index of the key material that sealed it.
    pub key_version: u32,
    header: &'a [u8],
    sealed: &'a [u8],
}

/// Why a blob cannot even be parsed (reported to clients as
/// `InvalidCiphertextException`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BlobError {
    #[error("ciphertext blob has the wrong length")]
    Length,
    #[error("ciphertext blob is not in a known format")]
    Format,
    #[error("ciphertext blob names key version 0")]
    Version,
}

/// The AAD encoding of an encryption context: for each pair in key order
/// (the map is sorted), `u32be(len(key)) ‖ key ‖ u32be(len(value)) ‖ value`.
/// Length prefixes make it unambiguous (`{"ab":"c"}` ≠ `{"a":"bc"}`); an
/// empty context encodes as nothing.
pub fn encode_context(context: &EncryptionContext) -> Vec<u8> {
    let mut out = Vec::new();
    for (key, value) in context {
        for part in [key.as_bytes(), value.as_bytes()] {
            // Contexts are bounded far below 4 GiB by the request size limit.
            out.extend_from_slice(&u32::try_from(part.len()).unwrap_or(u32::MAX).to_be_bytes());
            out.extend_from_slice(part);
        }
    }
    out
}

fn header(key_id: Uuid, key_version: u32) -> [u8; HEADER_LEN] {
    let mut header = [0u8; HEADER_LEN];
    header[..2].copy_from_slice(MAGIC);
    header[2] = FORMAT_VERSION;
    header[3..19].copy_from_slice(key_id.as_bytes());
    header[19..23].copy_from_slice(&key_version.to_be_bytes());
    header
}

fn aad(header: &[u8], context: &EncryptionContext) -> Vec<u8> {
    let mut aad = header.to_vec();
    aad.extend_from_slice(&encode_context(context));
    aad
}

/// Seals `plaintext` under version `key_version` of key `key_id`.
pub fn seal(
    material: &Key32,
    key_id: Uuid,
    key_version: u32,
    context: &EncryptionContext,
    plaintext: &[u8],
) -> Result<Vec<u8>, bulwark_crypto::CryptoError> {
    assert!(key_version >= 1, "key versions start at 1");
    assert!(plaintext.len() <= PLAINTEXT_BYTES_MAX, "callers bound the plaintext");
    let header = header(key_id, key_version);
    let sealed = bulwark_crypto::seal_bytes(material, &aad(&header, context), plaintext)?;
    let mut blob = Vec::with_capacity(HEADER_LEN + sealed.len());
    blob.extend_from_slice(&header);
    blob.extend_from_slice(&sealed);
    debug_assert!(blob.len() <= BLOB_BYTES_MAX);
    Ok(blob)
}

/// Parses a blob's header; nothing is decrypted yet.
pub fn parse(blob: &[u8]) -> Result<Blob<'_>, BlobError> {
    if blob.len() < BLOB_BYTES_MIN || blob.len() > BLOB_BYTES_MAX {
        return Err(BlobError::Length);
    }
    let (header, sealed) = blob.split_at(HEADER_LEN);
    if &header[..2] != MAGIC || header[2] != FORMAT_VERSION {
        return Err(BlobError::Format);
    }
    let key_id = Uuid::from_slice(&header[3..19]).map_err(|_| BlobError::Format)?;
    let key_version = u32::from_be_bytes([header[19], header[20], header[21], header[22]]);
    if key_version == 0 {
        return Err(BlobError::Version);
    }
    Ok(Blob { key_id, key_version, header, sealed })
}

impl Blob<'_> {
    /// Opens the blob with the material of the version it names; fails
    /// unless the material and the context are the ones it was sealed with.
    pub fn open(
        &self,
        material: &Key32,
        context: &EncryptionContext,
    ) -> Result<zeroize::Zeroizing<Vec<u8>>, bulwark_crypto::CryptoError> {
        bulwark_crypto::open_bytes(material, &aad(self.header, context), self.sealed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn context(pairs: &[(&str, &str)]) -> EncryptionContext {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    #[test]
    fn blobs_round_trip_and_name_their_key_and_version() {
        let material = Key32::random().expect("key");
        let id = Uuid::new_v4();
        let ctx = context(&[("aws:s3:arn", "arn:aws:s3:::b/k"), ("team", "red")]);
        let blob = seal(&material, id, 7, &ctx, b"data key bytes").expect("seal");
        assert_eq!(blob.len(), BLOB_BYTES_MIN + 14);
        let parsed = parse(&blob).expect("parse");
        assert_eq!((parsed.key_id, parsed.key_version), (id, 7));
        assert_eq!(parsed.open(&material, &ctx).expect("open").as_slice(), b"data key bytes");
        assert!(parsed.open(&material, &context(&[("team", "red")])).is_err(), "context is bound");
        assert!(parsed.open(&Key32::random().expect("key"), &ctx).is_err(), "material is bound");
    }

    #[test]
    fn an_edited_header_does_not_open() {
        let material = Key32::random().expect("key");
        let ctx = EncryptionContext::new();
        let blob = seal(&material, Uuid::new_v4(), 1, &ctx, b"x").expect("seal");
        for position in [3, 18, 22] {
            let mut edited = blob.clone();
            edited[position] ^= 0x10;
            let parsed = parse(&edited).expect("still parses");
            assert!(parsed.open(&material, &ctx).is_err(), "byte {position}");
        }
    }

    #[test]
    fn malformed_blobs_are_refused_before_decryption() {
        let material = Key32::random().expect("key");
        let blob = seal(&material, Uuid::new_v4(), 1, &EncryptionContext::new(), b"").expect("seal");
        assert_eq!(blob.len(), BLOB_BYTES_MIN);
        assert!(parse(&blob).is_ok());
        assert_eq!(parse(&blob[..BLOB_BYTES_MIN - 1]), Err(BlobError::Length));
        assert_eq!(parse(&vec![0u8; BLOB_BYTES_MAX + 1]), Err(BlobError::Length));
        let mut wrong = blob.clone();
        wrong[0] = b'X';
        assert_eq!(parse(&wrong), Err(BlobError::Format));
        let mut wrong = blob.clone();
        wrong[2] = 2;
        assert_eq!(parse(&wrong), Err(BlobError::Format));
        let mut wrong = blob;
        wrong[19..23].copy_from_slice(&0u32.to_be_bytes());
        assert_eq!(parse(&wrong), Err(BlobError::Version));
    }

    #[test]
    fn the_context_encoding_is_unambiguous() {
        assert_ne!(encode_context(&context(&[("ab", "c")])), encode_context(&context(&[("a", "bc")])));
        assert_ne!(encode_context(&context(&[("a", "")])), encode_context(&EncryptionContext::new()));
        assert_eq!(
            encode_context(&context(&[("b", "2"), ("a", "1")])),
            [0, 0, 0, 1, b'a', 0, 0, 0, 1, b'1', 0, 0, 0, 1, b'b', 0, 0, 0, 1, b'2']
        );
    }
}
