//! One AES-256-GCM message (NIST SP 800-38D: 96-bit IV, 128-bit tag) fed in
//! pieces of any size, so that an object of many GiB is encrypted or checked
//! with a few KiB of state.
//!
//! The S3 Encryption Client formats encrypt a whole object as *one* GCM message
//! with one tag at the end. aws-lc-rs offers AES-GCM only as a one-shot AEAD
//! over a buffer, so this module assembles the same function from parts that
//! are not hand-rolled: the AES block function and AES-CTR keystream come from
//! aws-lc-rs, GHASH (GCM's universal hash over GF(2^128)) from RustCrypto's
//! constant-time `ghash`. What is written here is only GCM's plumbing:
//!
//! - `H = AES_K(0^128)` keys GHASH; `J0 = IV ‖ 0x00000001`;
//! - the keystream is AES-CTR starting at `inc32(J0) = IV ‖ 0x00000002`;
//! - `S = GHASH_H(A ‖ pad ‖ C ‖ pad ‖ [len(A)]64 ‖ [len(C)]64)`, tag `= S ⊕ AES_K(J0)`.
//!
//! CTR here increments all 128 bits where GCM's `inc32` wraps the low 32; the
//! two agree as long as the low word does not overflow, i.e. for fewer than
//! 2^32 − 2 blocks, which is exactly GCM's message limit ([`MESSAGE_BYTES_MAX`],
//! enforced). The unit tests check every piece against aws-lc-rs's one-shot
//! AES-256-GCM on random keys, IVs, AAD, lengths and chunkings.
//!
//! A decryptor releases plaintext before the tag is known, like any streaming
//! GCM: the caller must not treat it as authentic until [`GcmDecryptor::finish`]
//! returned `Ok` (the file helpers keep it in a temporary file until then).

use aws_lc_rs::cipher::{AES_256, EncryptingKey, EncryptionContext, StreamingEncryptingKey, UnboundCipherKey};
use aws_lc_rs::iv::FixedLength;
use ghash::GHash;
use ghash::universal_hash::UniversalHash;
use zeroize::{Zeroize, Zeroizing};

use crate::error::{Error, Result};

/// Bytes of the GCM tag (128 bits, `x-amz-tag-len` = 128).
pub const TAG_LEN: usize = 16;
/// Bytes of the GCM IV.
pub const IV_LEN: usize = 12;
/// Bytes of an AES-256 key.
pub const KEY_LEN: usize = 32;
const BLOCK_LEN: usize = 16;
/// GCM's bound on one message: 2^39 − 256 bits.
pub const MESSAGE_BYTES_MAX: u64 = (1 << 36) - 32;

const _: () = assert!(MESSAGE_BYTES_MAX / BLOCK_LEN as u64 <= (1 << 32) - 2);

/// State shared by both directions: the CTR keystream and GHASH over the
/// ciphertext.
struct Core {
    keystream: StreamingEncryptingKey,
    ghash: GHash,
    /// Ciphertext bytes not yet hashed because they do not fill a block.
    partial: Zeroizing<[u8; BLOCK_LEN]>,
    partial_len: usize,
    /// `AES_K(J0)`, XORed into the hash to make the tag.
    tag_mask: Zeroizing<[u8; BLOCK_LEN]>,
    aad_bytes: u64,
    text_bytes: u64,
    /// Output of the CTR update, which may ask for room up to a block boundary.
    scratch: Zeroizing<Vec<u8>>,
}

impl Core {
    fn new(key: &[u8; KEY_LEN], iv: &[u8; IV_LEN], aad: &[u8]) -> Result<Core> {
        let block_key = EncryptingKey::ecb(cipher_key(key)?).map_err(|_| Error::Crypto("AES-ECB key setup"))?;
        let mut h = Zeroizing::new([0u8; BLOCK_LEN]);
        block_key.less_safe_encrypt(h.as_mut(), EncryptionContext::None).map_err(|_| Error::Crypto("AES block"))?;
        let mut tag_mask = Zeroizing::new([0u8; BLOCK_LEN]);
        tag_mask[..IV_LEN].copy_from_slice(iv);
        tag_mask[BLOCK_LEN - 1] = 1;
        block_key
            .less_safe_encrypt(tag_mask.as_mut(), EncryptionContext::None)
            .map_err(|_| Error::Crypto("AES block"))?;

        let mut counter = [0u8; BLOCK_LEN];
        counter[..IV_LEN].copy_from_slice(iv);
        counter[BLOCK_LEN - 1] = 2;
        let keystream = StreamingEncryptingKey::less_safe_ctr(
            cipher_key(key)?,
            EncryptionContext::Iv128(FixedLength::from(counter)),
        )
        .map_err(|_| Error::Crypto("AES-CTR key setup"))?;

        let mut ghash = GHash::new(&ghash::Key::from(*h));
        ghash.update_padded(aad);
        Ok(Core {
            keystream,
            ghash,
            partial: Zeroizing::new([0u8; BLOCK_LEN]),
            partial_len: 0,
            tag_mask,
            aad_bytes: aad.len() as u64,
            text_bytes: 0,
            scratch: Zeroizing::new(Vec::new()),
        })
    }

    fn count(&mut self, len: usize) -> Result<()> {
        let total = self.text_bytes.checked_add(len as u64).filter(|total| *total <= MESSAGE_BYTES_MAX);
        self.text_bytes = total.ok_or(Error::TooLarge { max_bytes: MESSAGE_BYTES_MAX })?;
        Ok(())
    }

    /// XORs the next `input.len()` keystream bytes into `input`, into `output`.
    fn apply_keystream(&mut self, input: &[u8], output: &mut [u8]) -> Result<()> {
        assert_eq!(input.len(), output.len(), "GCM output must be as long as its input");
        self.scratch.resize(input.len() + BLOCK_LEN, 0);
        let update =
            self.keystream.less_safe_update(input, &mut self.scratch).map_err(|_| Error::Crypto("AES-CTR update"))?;
        let written = update.written();
        // CTR is a stream mode: every input byte comes out at once.
        assert_eq!(written.len(), input.len(), "AES-CTR withheld output");
        output.copy_from_slice(written);
        Ok(())
    }

    /// Feeds ciphertext to GHASH, a block at a time.
    fn absorb(&mut self, mut ciphertext: &[u8]) {
        if self.partial_len > 0 {
            let take = (BLOCK_LEN - self.partial_len).min(ciphertext.len());
            self.partial[self.partial_len..self.partial_len + take].copy_from_slice(&ciphertext[..take]);
            self.partial_len += take;
            ciphertext = &ciphertext[take..];
            if self.partial_len < BLOCK_LEN {
                return;
            }
            self.ghash.update(&[ghash::Block::from(*self.partial)]);
            self.partial_len = 0;
        }
        let (blocks, rest) = ghash::Block::slice_as_chunks(ciphertext);
        self.ghash.update(blocks);
        self.partial[..rest.len()].copy_from_slice(rest);
        self.partial_len = rest.len();
    }

    fn tag(mut self) -> [u8; TAG_LEN] {
        self.ghash.update_padded(&self.partial[..self.partial_len]);
        let mut lengths = [0u8; BLOCK_LEN];
        lengths[..8].copy_from_slice(&(self.aad_bytes * 8).to_be_bytes());
        lengths[8..].copy_from_slice(&(self.text_bytes * 8).to_be_bytes());
        self.ghash.update(&[ghash::Block::from(lengths)]);
        let mut tag: [u8; TAG_LEN] = self.ghash.finalize().into();
        for (byte, mask) in tag.iter_mut().zip(self.tag_mask.iter()) {
            *byte ^= mask;
        }
        tag
    }
}

fn cipher_key(key: &[u8; KEY_LEN]) -> Result<UnboundCipherKey> {
    UnboundCipherKey::new(&AES_256, key).map_err(|_| Error::Crypto("AES-256 key"))
}

/// Encrypts one GCM message in pieces; [`GcmEncryptor::finish`] gives the tag.
pub struct GcmEncryptor(Core);

impl GcmEncryptor {
    pub fn new(key: &[u8; KEY_LEN], iv: &[u8; IV_LEN], aad: &[u8]) -> Result<GcmEncryptor> {
        Ok(GcmEncryptor(Core::new(key, iv, aad)?))
    }

    /// Encrypts `plaintext` into `ciphertext` (same length).
    pub fn update(&mut self, plaintext: &[u8], ciphertext: &mut [u8]) -> Result<()> {
        self.0.count(plaintext.len())?;
        self.0.apply_keystream(plaintext, ciphertext)?;
        self.0.absorb(ciphertext);
        Ok(())
    }

    /// The tag over everything encrypted.
    pub fn finish(self) -> [u8; TAG_LEN] {
        self.0.tag()
    }
}

/// Decrypts one GCM message in pieces. Its output is unauthenticated until
/// [`GcmDecryptor::finish`] returns `Ok`.
pub struct GcmDecryptor(Core);

impl GcmDecryptor {
    pub fn new(key: &[u8; KEY_LEN], iv: &[u8; IV_LEN], aad: &[u8]) -> Result<GcmDecryptor> {
        Ok(GcmDecryptor(Core::new(key, iv, aad)?))
    }

    /// Decrypts `ciphertext` (not including the tag) into `plaintext` (same length).
    pub fn update(&mut self, ciphertext: &[u8], plaintext: &mut [u8]) -> Result<()> {
        self.0.count(ciphertext.len())?;
        self.0.absorb(ciphertext);
        self.0.apply_keystream(ciphertext, plaintext)
    }

    /// Checks `tag` (constant time) against everything decrypted.
    pub fn finish(self, tag: &[u8]) -> Result<()> {
        let mut expected = self.0.tag();
        let verdict = aws_lc_rs::constant_time::verify_slices_are_equal(&expected, tag);
        expected.zeroize();
        verdict.map_err(|_| Error::Authentication)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
    use proptest::prelude::*;

    use super::*;

    fn one_shot_seal(key: &[u8; 32], iv: &[u8; 12], aad: &[u8], plaintext: &[u8]) -> Vec<u8> {
        let key = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, key).expect("key"));
        let mut in_out = plaintext.to_vec();
        key.seal_in_place_append_tag(Nonce::assume_unique_for_key(*iv), Aad::from(aad), &mut in_out).expect("seal");
        in_out
    }

    /// Encrypts in the given piece sizes (cycled); returns ciphertext ‖ tag.
    fn streamed_seal(key: &[u8; 32], iv: &[u8; 12], aad: &[u8], plaintext: &[u8], pieces: &[usize]) -> Vec<u8> {
        let mut encryptor = GcmEncryptor::new(key, iv, aad).expect("encryptor");
        let mut out = vec![0u8; plaintext.len()];
        let mut offset = 0;
        for piece in pieces.iter().cycle() {
            if offset >= plaintext.len() {
                break;
            }
            let end = (offset + piece.max(&1)).min(plaintext.len());
            encryptor.update(&plaintext[offset..end], &mut out[offset..end]).expect("update");
            offset = end;
        }
        out.extend_from_slice(&encryptor.finish());
        out
    }

    fn streamed_open(key: &[u8; 32], iv: &[u8; 12], aad: &[u8], sealed: &[u8], pieces: &[usize]) -> Result<Vec<u8>> {
        let (ciphertext, tag) = sealed.split_at(sealed.len() - TAG_LEN);
        let mut decryptor = GcmDecryptor::new(key, iv, aad)?;
        let mut out = vec![0u8; ciphertext.len()];
        let mut offset = 0;
        for piece in pieces.iter().cycle() {
            if offset >= ciphertext.len() {
                break;
            }
            let end = (offset + piece.max(&1)).min(ciphertext.len());
            decryptor.update(&ciphertext[offset..end], &mut out[offset..end])?;
            offset = end;
        }
        decryptor.finish(tag)?;
        Ok(out)
    }

    #[test]
    fn nist_gcm_test_case_16_matches() {
        // McGrew & Viega, "The GCM mode of operation", test case 16 (AES-256, 96-bit IV, AAD).
        let key: [u8; 32] =
            hex("feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308").try_into().expect("32");
        let iv: [u8; 12] = hex("cafebabefacedbaddecaf888").try_into().expect("12");
        let plaintext =
            hex("d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a721c3c0c95956809532fcf0e2449a6b525\
             b16aedf5aa0de657ba637b39");
        let aad = hex("feedfacedeadbeeffeedfacedeadbeefabaddad2");
        let expected =
            hex("522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa8cb08e48590dbb3da7b08b1056828838\
             c5f61e6393ba7a0abcc9f662\
             76fc6ece0f4e1768cddf8853bb2d551b");
        assert_eq!(streamed_seal(&key, &iv, &aad, &plaintext, &[7, 16, 1]), expected);
        assert_eq!(streamed_open(&key, &iv, &aad, &expected, &[5]).expect("opens"), plaintext);
    }

    #[test]
    fn empty_message_is_a_tag_only() {
        let key = [7u8; 32];
        let iv = [1u8; 12];
        assert_eq!(streamed_seal(&key, &iv, b"", b"", &[1]), one_shot_seal(&key, &iv, b"", b""));
        assert_eq!(streamed_open(&key, &iv, b"", &one_shot_seal(&key, &iv, b"", b""), &[1]).expect("opens"), b"");
    }

    #[test]
    fn a_flipped_bit_anywhere_fails_the_tag() {
        let key = [3u8; 32];
        let iv = [9u8; 12];
        let sealed = one_shot_seal(&key, &iv, b"ad", &[0x55; 100]);
        for position in [0, 31, 99, 100, 115] {
            let mut tampered = sealed.clone();
            tampered[position] ^= 0x01;
            assert!(matches!(streamed_open(&key, &iv, b"ad", &tampered, &[13]), Err(Error::Authentication)));
        }
        assert!(matches!(streamed_open(&key, &iv, b"ae", &sealed, &[13]), Err(Error::Authentication)));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(96))]
        #[test]
        fn streamed_gcm_equals_one_shot_gcm(
            key in any::<[u8; 32]>(),
            iv in any::<[u8; 12]>(),
            aad in proptest::collection::vec(any::<u8>(), 0..40),
            plaintext in proptest::collection::vec(any::<u8>(), 0..700),
            pieces in proptest::collection::vec(1usize..70, 1..6),
        ) {
            let expected = one_shot_seal(&key, &iv, &aad, &plaintext);
            prop_assert_eq!(&streamed_seal(&key, &iv, &aad, &plaintext, &pieces), &expected);
            prop_assert_eq!(streamed_open(&key, &iv, &aad, &expected, &pieces).expect("opens"), plaintext);
        }
    }

    pub(crate) fn hex(text: &str) -> Vec<u8> {
        let text: String = text.chars().filter(|c| !c.is_whitespace()).collect();
        (0..text.len()).step_by(2).map(|i| u8::from_str_radix(&text[i..i + 2], 16).expect("hex")).collect()
    }
}
