//! Content algorithms and the key derivation of the committing suite 0x0073.
//!
//! Suite 0x0073 (`x-amz-c` = `115`, format v3) never encrypts with the data key
//! itself. With a fresh 28-byte message id as salt, HKDF-SHA512 turns the data
//! key into a content key and a 28-byte commitment:
//!
//! ```text
//! PRK        = HMAC-SHA512(key = message_id, data_key)            (HKDF-Extract)
//! content    = HKDF-Expand(PRK, 0x00 0x73 ‖ "DERIVEKEY", 32)
//! commitment = HKDF-Expand(PRK, 0x00 0x73 ‖ "COMMITKEY", 28)      (stored as x-amz-d)
//! ```
//!
//! The content is AES-256-GCM under the content key with the fixed IV of twelve
//! `0x01` bytes (safe: every object has its own message id, so its own key) and
//! associated data `0x00 0x73`. The commitment binds the data key to this object:
//! a reader compares it in constant time *before* decrypting, so a data key
//! swapped in from another object, or an altered `x-amz-d`, is rejected outright.

use aws_lc_rs::hkdf;
use zeroize::Zeroizing;

use crate::error::{Error, Result};
use crate::gcm::{IV_LEN, KEY_LEN};

/// The committing suite's id, as `x-amz-c` and the KMS context write it.
pub const COMMITTING_SUITE_ID: u16 = 0x0073;
/// `x-amz-c` and the reserved `aws:x-amz-cek-alg` of v3.
pub const COMMITTING_SUITE_NAME: &str = "115";
/// `x-amz-cek-alg` of v2 (suite 0x0072).
pub const GCM_CIPHER_NAME: &str = "AES/GCM/NoPadding";
/// Bytes of the v3 message id (`x-amz-i`).
pub const MESSAGE_ID_LEN: usize = 28;
/// Bytes of the v3 key commitment (`x-amz-d`).
pub const COMMITMENT_LEN: usize = 28;
/// The fixed content IV of suite 0x0073.
pub const COMMITTING_IV: [u8; IV_LEN] = [0x01; IV_LEN];
/// The associated data of suite 0x0073: its id, big-endian.
pub const COMMITTING_AAD: [u8; 2] = COMMITTING_SUITE_ID.to_be_bytes();

/// How an object's content is encrypted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContentCipher {
    /// AES-256-GCM, 12-byte IV, 16-byte tag, no AAD (suite 0x0072, v2).
    AesGcm,
    /// AES-256-GCM with HKDF-SHA512 key derivation and key commitment (0x0073, v3).
    AesGcmCommitting,
    /// AES-256-CBC with PKCS#7 padding (0x0070, v1 and legacy v2): not authenticated.
    AesCbc,
}

impl ContentCipher {
    /// The name the envelope and the KMS context use for it.
    pub fn name(self) -> &'static str {
        match self {
            ContentCipher::AesGcm => GCM_CIPHER_NAME,
            ContentCipher::AesGcmCommitting => COMMITTING_SUITE_NAME,
            ContentCipher::AesCbc => "AES/CBC/PKCS5Padding",
        }
    }

    pub fn is_legacy(self) -> bool {
        self == ContentCipher::AesCbc
    }

    /// Bytes the ciphertext adds to the plaintext (GCM: the tag; CBC: 1–16 of padding).
    pub fn is_authenticated(self) -> bool {
        !self.is_legacy()
    }
}

/// The content key and commitment derived from a data key for one message id.
pub struct DerivedKeys {
    pub content_key: Zeroizing<[u8; KEY_LEN]>,
    pub commitment: [u8; COMMITMENT_LEN],
}

struct Len(usize);

impl hkdf::KeyType for Len {
    fn len(&self) -> usize {
        self.0
    }
}

/// Suite 0x0073's derivation (see the module doc).
pub fn derive_committing(data_key: &[u8; KEY_LEN], message_id: &[u8; MESSAGE_ID_LEN]) -> Result<DerivedKeys> {
    let prk = hkdf::Salt::new(hkdf::HKDF_SHA512, message_id).extract(data_key);
    let suite = COMMITTING_SUITE_ID.to_be_bytes();
    let mut content_key = Zeroizing::new([0u8; KEY_LEN]);
    prk.expand(&[&suite, b"DERIVEKEY"], Len(KEY_LEN))
        .and_then(|okm| okm.fill(content_key.as_mut()))
        .map_err(|_| Error::Crypto("HKDF-Expand"))?;
    let mut commitment = [0u8; COMMITMENT_LEN];
    prk.expand(&[&suite, b"COMMITKEY"], Len(COMMITMENT_LEN))
        .and_then(|okm| okm.fill(&mut commitment))
        .map_err(|_| Error::Crypto("HKDF-Expand"))?;
    Ok(DerivedKeys { content_key, commitment })
}

/// Compares a stored commitment with the derived one in constant time.
pub fn verify_commitment(stored: &[u8], derived: &[u8; COMMITMENT_LEN]) -> Result<()> {
    aws_lc_rs::constant_time::verify_slices_are_equal(stored, derived).map_err(|_| Error::Commitment)
}

#[cfg(test)]
mod tests {
    use aws_lc_rs::hmac;

    use super::*;
    use crate::gcm::tests::hex;

    /// HKDF written out from RFC 5869 with HMAC-SHA512 only, as an independent
    /// derivation of the spec's construction: T(1) = HMAC(PRK, info ‖ 0x01), …
    fn rfc5869_by_hand(salt: &[u8], ikm: &[u8], info: &[u8], len: usize) -> Vec<u8> {
        let prk = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA512, salt), ikm);
        let key = hmac::Key::new(hmac::HMAC_SHA512, prk.as_ref());
        let mut out = Vec::new();
        let mut previous: Vec<u8> = Vec::new();
        let mut counter = 1u8;
        while out.len() < len {
            let mut input = previous.clone();
            input.extend_from_slice(info);
            input.push(counter);
            previous = hmac::sign(&key, &input).as_ref().to_vec();
            out.extend_from_slice(&previous);
            counter += 1;
        }
        out.truncate(len);
        out
    }

    /// Data key 0x00..0x1f, message id 0xa0..0xbb. Derived from REFERENCE §3 with
    /// an independent HKDF (Python `cryptography`, HKDF(SHA512, salt = message id,
    /// info = 0x0073 ‖ label)); the e2e suite also decrypts the Python client's v3
    /// objects, which checks the derivation against AWS's own code.
    const VECTOR_CONTENT_KEY: &str = "a8e0c7c35a41d8aaf9ef82a872f31b9e996b7ff6318c3772987ee5470cf89946";
    const VECTOR_COMMITMENT: &str = "c14b6f5ff01354a12d08225323f8bb6a482599d178c7bc3660be7a3b";

    #[test]
    fn commitment_derivation_follows_the_spec() {
        let data_key: [u8; 32] = std::array::from_fn(|i| i as u8);
        let message_id: [u8; 28] = std::array::from_fn(|i| 0xa0 + i as u8);
        let derived = derive_committing(&data_key, &message_id).expect("derive");
        let expected_key = rfc5869_by_hand(&message_id, &data_key, b"\x00\x73DERIVEKEY", 32);
        let expected_commitment = rfc5869_by_hand(&message_id, &data_key, b"\x00\x73COMMITKEY", 28);
        assert_eq!(derived.content_key.as_slice(), expected_key.as_slice());
        assert_eq!(derived.commitment.as_slice(), expected_commitment.as_slice());
        assert_eq!(derived.content_key.as_slice(), hex(VECTOR_CONTENT_KEY).as_slice());
        assert_eq!(derived.commitment.as_slice(), hex(VECTOR_COMMITMENT).as_slice());
    }

    #[test]
    fn a_different_commitment_is_refused() {
        let derived = derive_committing(&[9u8; 32], &[4u8; 28]).expect("derive");
        assert!(verify_commitment(&derived.commitment, &derived.commitment).is_ok());
        let mut altered = derived.commitment;
        altered[27] ^= 0x80;
        assert!(matches!(verify_commitment(&altered, &derived.commitment), Err(Error::Commitment)));
        assert!(matches!(verify_commitment(&altered[..27], &derived.commitment), Err(Error::Commitment)));
    }
}
