//! Encryption at rest (DESIGN.md §5): package encryption of object data and
//! sealing of object keys. Pure functions over bytes and keys — no I/O.
//!
//! **Packages.** Object data is cut into packages of `PACKAGE_SIZE` plaintext
//! bytes, each sealed with AES-256-GCM under the object key (a fresh random
//! key per object, version and part). The nonce is a random per-object base
//! nonce with the package's sequence number XORed into its last 8 bytes; the
//! associated data binds a domain string, the sequence number and a "final"
//! flag. A package moved, dropped, repeated, or a stream cut short therefore
//! fails authentication. An empty object is one empty final package, so even
//! "nothing" is authenticated. A range read decrypts only the packages that
//! cover the range. Layout: `docs/design/encryption-format.md`.
//!
//! **Sealing.** An object key is never stored in the clear; it is sealed with
//! a key-encryption key (KEK). For SSE-C the KEK is derived by HKDF-SHA256
//! from the customer's key, a random salt and the object's bucket/key, and the
//! server keeps only a salted HMAC-SHA256 of the customer key to recognise it.
//!
//! Secrets live in [`Key32`], which zeroizes on drop and prints as `[redacted]`.
//!
//! MD5 (ETags, Content-MD5) is the one place in the workspace with `unsafe`:
//! three calls into AWS-LC ([`Md5`]) and three into the vector kernels of
//! [`md5_lanes`], each with its `SAFETY` argument.
#![deny(unsafe_code)]

#[allow(unsafe_code)]
mod md5;
pub mod md5_lanes;
pub use md5::{Md5, Md5State};

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use aws_lc_rs::{hkdf, hmac};
use zeroize::Zeroizing;

/// Plaintext bytes per package.
pub const PACKAGE_SIZE: usize = 64 * 1024;
/// AES-GCM tag bytes appended to each package.
pub const TAG_LEN: usize = 16;
/// Ciphertext bytes of a full package.
pub const PACKAGE_CIPHER_SIZE: usize = PACKAGE_SIZE + TAG_LEN;
const PACKAGE_AAD_DOMAIN: &[u8] = b"bulwark package v1";
const SEAL_INFO_DOMAIN: &[u8] = b"bulwark sealed object key v1";
const PART_INFO_DOMAIN: &[u8] = b"bulwark part key v1";
const DERIVE_INFO_DOMAIN: &[u8] = b"bulwark derived key v1\0";

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CryptoError {
    #[error("authentication failed: the data or the key is not the one that was sealed")]
    Authentication,
    #[error("malformed sealed data")]
    Malformed,
    #[error("random number generator failed")]
    Random,
}

/// A 256-bit secret key. Zeroized on drop; never printed.
#[derive(Clone)]
pub struct Key32(Zeroizing<[u8; 32]>);

impl Key32 {
    pub fn from_bytes(bytes: [u8; 32]) -> Key32 {
        Key32(Zeroizing::new(bytes))
    }

    pub fn from_slice(bytes: &[u8]) -> Option<Key32> {
        let array: [u8; 32] = bytes.try_into().ok()?;
        Some(Key32::from_bytes(array))
    }

    pub fn random() -> Result<Key32, CryptoError> {
        let mut bytes = Zeroizing::new([0u8; 32]);
        SystemRandom::new().fill(bytes.as_mut()).map_err(|_| CryptoError::Random)?;
        Ok(Key32(bytes))
    }

    pub fn expose(&self) -> &[u8; 32] {
        &self.0
    }
}

impl std::fmt::Debug for Key32 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[redacted]")
    }
}

pub fn random_array<const N: usize>() -> Result<[u8; N], CryptoError> {
    let mut out = [0u8; N];
    SystemRandom::new().fill(&mut out).map_err(|_| CryptoError::Random)?;
    Ok(out)
}

/// `len` random bytes from the system generator, in a buffer zeroized on drop.
pub fn random_vec(len: usize) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
    let mut out = Zeroizing::new(vec![0u8; len]);
    SystemRandom::new().fill(out.as_mut_slice()).map_err(|_| CryptoError::Random)?;
    Ok(out)
}

fn aead_key(key: &Key32) -> LessSafeKey {
    // AES-256 takes exactly 32 bytes, which Key32 always holds.
    LessSafeKey::new(UnboundKey::new(&AES_256_GCM, key.expose()).expect("32-byte AES-256 key"))
}

/// Number of packages of an object of `plain_len` bytes (at least one).
pub fn package_count(plain_len: u64) -> u64 {
    plain_len.div_ceil(PACKAGE_SIZE as u64).max(1)
}

/// Ciphertext length of an object of `plain_len` bytes.
pub fn encrypted_len(plain_len: u64) -> u64 {
    plain_len + package_count(plain_len) * TAG_LEN as u64
}

fn package_nonce(base: &[u8; 12], seq: u64) -> Nonce {
    let mut nonce = *base;
    for (slot, byte) in nonce[4..].iter_mut().zip(seq.to_be_bytes()) {
        *slot ^= byte;
    }
    Nonce::assume_unique_for_key(nonce)
}

fn package_aad(seq: u64, is_final: bool) -> [u8; 27] {
    let mut aad = [0u8; 27];
    aad[..18].copy_from_slice(PACKAGE_AAD_DOMAIN);
    aad[18..26].copy_from_slice(&seq.to_be_bytes());
    aad[26] = u8::from(is_final);
    aad
}

/// Streaming encryptor: feed plaintext, take ciphertext of complete packages.
pub struct PackageSealer {
    key: LessSafeKey,
    base_nonce: [u8; 12],
    seq: u64,
    pending: Vec<u8>,
    /// One sealed package, for [`PackageSealer::push_with`].
    scratch: Vec<u8>,
}

impl PackageSealer {
    pub fn new(key: &Key32, base_nonce: [u8; 12]) -> PackageSealer {
        PackageSealer {
            key: aead_key(key),
            base_nonce,
            seq: 0,
            pending: Vec::with_capacity(PACKAGE_SIZE),
            scratch: Vec::new(),
        }
    }

    /// Adds plaintext, handing every package completed (ciphertext ‖ tag)
    /// to `sink`. Each package is sealed in a buffer of the sealer's own that
    /// stays in cache, so the caller lays packages out as it needs (in blocks
    /// of a fixed size, across which packages straddle). A full package is
    /// only sealed once more data follows, because the last package must
    /// carry the final flag.
    pub fn push_with(&mut self, mut data: &[u8], sink: &mut impl FnMut(&[u8])) {
        while !data.is_empty() {
            if self.pending.len() == PACKAGE_SIZE {
                let pending = std::mem::take(&mut self.pending);
                sink(self.seal_scratch(&pending, false));
                self.pending = pending;
                self.pending.clear();
            }
            if self.pending.is_empty() && data.len() > PACKAGE_SIZE {
                let (package, rest) = data.split_at(PACKAGE_SIZE);
                sink(self.seal_scratch(package, false));
                data = rest;
                continue;
            }
            let take = (PACKAGE_SIZE - self.pending.len()).min(data.len());
            self.pending.extend_from_slice(&data[..take]);
            data = &data[take..];
        }
    }

    /// Hands the final package (possibly empty) to `sink`.
    pub fn finish_with(mut self, sink: &mut impl FnMut(&[u8])) {
        let pending = std::mem::take(&mut self.pending);
        sink(self.seal_scratch(&pending, true));
    }

    fn seal_scratch(&mut self, plain: &[u8], is_final: bool) -> &[u8] {
        let nonce = package_nonce(&self.base_nonce, self.seq);
        let aad = package_aad(self.seq, is_final);
        self.scratch.clear();
        self.scratch.extend_from_slice(plain);
        // Sealing in memory with a valid key and nonce cannot fail.
        let tag = self.key.seal_in_place_separate_tag(nonce, Aad::from(aad), &mut self.scratch).expect("AES-GCM seal");
        self.scratch.extend_from_slice(tag.as_ref());
        self.seq += 1;
        &self.scratch
    }

    /// Adds plaintext; returns the ciphertext of every package completed.
    pub fn push(&mut self, data: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        self.push_with(data, &mut |package| out.extend_from_slice(package));
        out
    }

    /// Seals the final package (possibly empty) and returns its ciphertext.
    pub fn finish(self) -> Vec<u8> {
        let mut out = Vec::new();
        self.finish_with(&mut |package| out.extend_from_slice(package));
        out
    }
}

/// The packages that cover a plaintext range, and where they are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PackageSpan {
    pub first_seq: u64,
    pub last_seq: u64,
    /// Ciphertext offset and length of those packages.
    pub cipher_offset: u64,
    pub cipher_len: u64,
    /// Plaintext bytes to drop from the first package.
    pub skip: u64,
}

/// Maps the inclusive plaintext range `[start, end]` of an object of
/// `plain_len` bytes onto its packages.
pub fn package_span(plain_len: u64, start: u64, end: u64) -> PackageSpan {
    assert!(start <= end && (end < plain_len || plain_len == 0));
    let first_seq = start / PACKAGE_SIZE as u64;
    let last_seq = end / PACKAGE_SIZE as u64;
    let cipher_offset = first_seq * PACKAGE_CIPHER_SIZE as u64;
    let cipher_end = ((last_seq + 1) * PACKAGE_CIPHER_SIZE as u64).min(encrypted_len(plain_len));
    PackageSpan {
        first_seq,
        last_seq,
        cipher_offset,
        cipher_len: cipher_end - cipher_offset,
        skip: start % PACKAGE_SIZE as u64,
    }
}

/// Decrypts one package (`ciphertext ‖ tag`) in place; returns the plaintext.
pub fn open_package<'a>(
    key: &Key32,
    base_nonce: &[u8; 12],
    seq: u64,
    is_final: bool,
    package: &'a mut [u8],
) -> Result<&'a mut [u8], CryptoError> {
    if package.len() < TAG_LEN || package.len() > PACKAGE_CIPHER_SIZE {
        return Err(CryptoError::Malformed);
    }
    aead_key(key)
        .open_in_place(package_nonce(base_nonce, seq), Aad::from(package_aad(seq, is_final)), package)
        .map_err(|_| CryptoError::Authentication)
}

/// The key of part `number` of a multipart object, derived from the object key.
pub fn part_key(object_key: &Key32, number: u32) -> Key32 {
    let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, &[]).extract(object_key.expose());
    let number = number.to_be_bytes();
    let info = [PART_INFO_DOMAIN, &number[..]];
    let mut out = Zeroizing::new([0u8; 32]);
    prk.expand(&info, hkdf::HKDF_SHA256)
        .and_then(|okm| okm.fill(out.as_mut()))
        .expect("HKDF-SHA256 expand of 32 bytes");
    Key32(out)
}

/// A purpose-specific key derived from a root key (HKDF-SHA256, no salt):
/// one root key, independent keys for independent uses.
pub fn derive_key(root: &Key32, purpose: &[u8]) -> Key32 {
    let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, &[]).extract(root.expose());
    let info = [DERIVE_INFO_DOMAIN, purpose];
    let mut out = Zeroizing::new([0u8; 32]);
    prk.expand(&info, hkdf::HKDF_SHA256)
        .and_then(|okm| okm.fill(out.as_mut()))
        .expect("HKDF-SHA256 expand of 32 bytes");
    Key32(out)
}

/// An object key sealed under a key-encryption key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealedKey {
    /// HKDF salt, random per sealing.
    pub salt: [u8; 32],
    pub nonce: [u8; 12],
    /// Encrypted object key ‖ tag (48 bytes).
    pub ciphertext: Vec<u8>,
}

fn kek(secret: &Key32, salt: &[u8; 32], context: &[u8]) -> Key32 {
    let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, salt).extract(secret.expose());
    let info = [SEAL_INFO_DOMAIN, context];
    let mut out = Zeroizing::new([0u8; 32]);
    prk.expand(&info, hkdf::HKDF_SHA256)
        .and_then(|okm| okm.fill(out.as_mut()))
        .expect("HKDF-SHA256 expand of 32 bytes");
    Key32(out)
}

/// Seals `object_key` under a KEK derived from `secret`, bound to `context`
/// (for SSE-C: the object's `bucket/key` and the scheme).
pub fn seal_key(secret: &Key32, context: &[u8], object_key: &Key32) -> Result<SealedKey, CryptoError> {
    let salt = random_array::<32>()?;
    let nonce = random_array::<12>()?;
    let mut buffer = object_key.expose().to_vec();
    let tag = aead_key(&kek(secret, &salt, context))
        .seal_in_place_separate_tag(Nonce::assume_unique_for_key(nonce), Aad::from(context), &mut buffer)
        .map_err(|_| CryptoError::Malformed)?;
    buffer.extend_from_slice(tag.as_ref());
    Ok(SealedKey { salt, nonce, ciphertext: buffer })
}

pub fn unseal_key(secret: &Key32, context: &[u8], sealed: &SealedKey) -> Result<Key32, CryptoError> {
    if sealed.ciphertext.len() != 32 + TAG_LEN {
        return Err(CryptoError::Malformed);
    }
    let mut buffer = Zeroizing::new(sealed.ciphertext.clone());
    let plain = aead_key(&kek(secret, &sealed.salt, context))
        .open_in_place(Nonce::assume_unique_for_key(sealed.nonce), Aad::from(context), &mut buffer)
        .map_err(|_| CryptoError::Authentication)?;
    Key32::from_slice(plain).ok_or(CryptoError::Malformed)
}

/// HMAC-SHA256 of a customer key under a random salt: lets the server
/// recognise the key on later requests without keeping it.
pub fn key_mac(secret: &Key32, salt: &[u8; 32]) -> [u8; 32] {
    let tag = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, salt), secret.expose());
    let mut out = [0u8; 32];
    out.copy_from_slice(tag.as_ref());
    out
}

/// Constant-time check of a customer key against its stored salted HMAC.
pub fn verify_key_mac(secret: &Key32, salt: &[u8; 32], mac: &[u8]) -> bool {
    hmac::verify(&hmac::Key::new(hmac::HMAC_SHA256, salt), secret.expose(), mac).is_ok()
}

/// Nonce bytes in front of a [`seal_bytes`] ciphertext.
pub const NONCE_LEN: usize = 12;

/// Encrypts `plaintext` with AES-256-GCM under `key` and a fresh random
/// nonce, binding `aad`: returns `nonce ‖ ciphertext ‖ tag`
/// (`plaintext.len() + 28` bytes). For small whole values such as the KMS
/// keystore and KMS ciphertexts.
pub fn seal_bytes(key: &Key32, aad: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, CryptoError> {
    let nonce = random_array::<NONCE_LEN>()?;
    let mut out = Vec::with_capacity(NONCE_LEN + plaintext.len() + TAG_LEN);
    out.extend_from_slice(&nonce);
    out.extend_from_slice(plaintext);
    let tag = aead_key(key)
        .seal_in_place_separate_tag(Nonce::assume_unique_for_key(nonce), Aad::from(aad), &mut out[NONCE_LEN..])
        .map_err(|_| CryptoError::Malformed)?;
    out.extend_from_slice(tag.as_ref());
    Ok(out)
}

/// Opens what [`seal_bytes`] produced with the same key and `aad`; the
/// plaintext comes back in a buffer that is zeroized on drop.
pub fn open_bytes(key: &Key32, aad: &[u8], sealed: &[u8]) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
    if sealed.len() < NONCE_LEN + TAG_LEN {
        return Err(CryptoError::Malformed);
    }
    let (nonce, body) = sealed.split_at(NONCE_LEN);
    let nonce: [u8; NONCE_LEN] = nonce.try_into().map_err(|_| CryptoError::Malformed)?;
    let mut buffer = Zeroizing::new(body.to_vec());
    let plain_len = aead_key(key)
        .open_in_place(Nonce::assume_unique_for_key(nonce), Aad::from(aad), buffer.as_mut_slice())
        .map_err(|_| CryptoError::Authentication)?
        .len();
    buffer.truncate(plain_len);
    Ok(buffer)
}

/// SHA-256 of `data`.
pub fn sha256(data: &[u8]) -> [u8; 32] {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, data);
    let mut out = [0u8; 32];
    out.copy_from_slice(digest.as_ref());
    out
}

/// HMAC-SHA256 of `data` under `key`.
pub fn hmac_sha256(key: &Key32, data: &[u8]) -> [u8; 32] {
    let tag = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, key.expose()), data);
    let mut out = [0u8; 32];
    out.copy_from_slice(tag.as_ref());
    out
}

/// Constant-time check of an HMAC-SHA256 tag.
pub fn verify_hmac_sha256(key: &Key32, data: &[u8], tag: &[u8]) -> bool {
    hmac::verify(&hmac::Key::new(hmac::HMAC_SHA256, key.expose()), data, tag).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encrypt(key: &Key32, nonce: [u8; 12], data: &[u8], chunk: usize) -> Vec<u8> {
        let mut sealer = PackageSealer::new(key, nonce);
        let mut out = Vec::new();
        for piece in data.chunks(chunk.max(1)) {
            out.extend(sealer.push(piece));
        }
        out.extend(sealer.finish());
        out
    }

    fn decrypt_range(
        key: &Key32,
        nonce: [u8; 12],
        cipher: &[u8],
        plain_len: u64,
        start: u64,
        end: u64,
    ) -> Result<Vec<u8>, CryptoError> {
        let span = package_span(plain_len, start, end);
        let mut out = Vec::new();
        let last = package_count(plain_len) - 1;
        let region = &cipher[span.cipher_offset as usize..(span.cipher_offset + span.cipher_len) as usize];
        for (i, package) in region.chunks(PACKAGE_CIPHER_SIZE).enumerate() {
            let seq = span.first_seq + i as u64;
            let mut buffer = package.to_vec();
            out.extend_from_slice(open_package(key, &nonce, seq, seq == last, &mut buffer)?);
        }
        Ok(out[span.skip as usize..][..(end - start + 1) as usize].to_vec())
    }

    #[test]
    fn packages_round_trip_whole_and_by_range() {
        let key = Key32::random().expect("key");
        let nonce = random_array().expect("nonce");
        for len in [0usize, 1, PACKAGE_SIZE - 1, PACKAGE_SIZE, PACKAGE_SIZE + 1, 3 * PACKAGE_SIZE + 17] {
            let data: Vec<u8> = (0..len).map(|i| (i * 7 + 3) as u8).collect();
            let cipher = encrypt(&key, nonce, &data, 10_000);
            assert_eq!(cipher.len() as u64, encrypted_len(len as u64), "len {len}");
            if len == 0 {
                let mut buffer = cipher.clone();
                assert_eq!(open_package(&key, &nonce, 0, true, &mut buffer).expect("empty").len(), 0);
                continue;
            }
            assert_eq!(decrypt_range(&key, nonce, &cipher, len as u64, 0, len as u64 - 1).expect("whole"), data);
            let (start, end) = (len as u64 / 3, len as u64 - 1 - len as u64 / 5);
            if start <= end {
                assert_eq!(
                    decrypt_range(&key, nonce, &cipher, len as u64, start, end).expect("range"),
                    data[start as usize..=end as usize]
                );
            }
        }
    }

    /// Packages handed to a sink are the bytes `push`/`finish` append, in
    /// the same order, one whole package per call.
    #[test]
    fn packages_handed_to_a_sink_are_the_appended_ones() {
        let key = Key32::from_bytes([5; 32]);
        let nonce = [6; 12];
        for len in [0usize, 1, PACKAGE_SIZE, PACKAGE_SIZE + 1, 5 * PACKAGE_SIZE + 99] {
            let data: Vec<u8> = (0..len).map(|i| (i * 13 + 1) as u8).collect();
            for chunk in [1_000, PACKAGE_SIZE, 3 * PACKAGE_SIZE + 7] {
                let mut sealer = PackageSealer::new(&key, nonce);
                let mut sunk = Vec::new();
                let mut sizes = Vec::new();
                let mut sink = |package: &[u8]| {
                    sizes.push(package.len());
                    sunk.extend_from_slice(package);
                };
                for piece in data.chunks(chunk) {
                    sealer.push_with(piece, &mut sink);
                }
                sealer.finish_with(&mut sink);
                assert_eq!(sunk, encrypt(&key, nonce, &data, chunk), "len {len}, chunks of {chunk}");
                let (last, whole) = sizes.split_last().expect("the final package");
                assert!(whole.iter().all(|&size| size == PACKAGE_CIPHER_SIZE), "len {len}: whole packages");
                assert_eq!(*last, len - whole.len() * PACKAGE_SIZE + TAG_LEN, "len {len}: the final package");
            }
        }
    }

    #[test]
    fn reordered_truncated_or_flipped_packages_fail() {
        let key = Key32::random().expect("key");
        let nonce = random_array().expect("nonce");
        let data = vec![7u8; 3 * PACKAGE_SIZE];
        let cipher = encrypt(&key, nonce, &data, PACKAGE_SIZE);
        let package = |seq: usize| cipher[seq * PACKAGE_CIPHER_SIZE..(seq + 1) * PACKAGE_CIPHER_SIZE].to_vec();
        // Package 1 presented as package 0: wrong nonce and AAD.
        assert_eq!(open_package(&key, &nonce, 0, false, &mut package(1)), Err(CryptoError::Authentication));
        // Truncation: a non-final package presented as the final one.
        assert_eq!(open_package(&key, &nonce, 1, true, &mut package(1)), Err(CryptoError::Authentication));
        let mut flipped = package(2);
        flipped[100] ^= 1;
        assert_eq!(open_package(&key, &nonce, 2, true, &mut flipped), Err(CryptoError::Authentication));
        let other = Key32::random().expect("key");
        assert_eq!(open_package(&other, &nonce, 2, true, &mut package(2)), Err(CryptoError::Authentication));
        assert!(open_package(&key, &nonce, 2, true, &mut package(2)).is_ok());
    }

    #[test]
    fn sealed_keys_open_only_with_the_same_secret_and_context() {
        let customer = Key32::random().expect("key");
        let object = Key32::random().expect("key");
        let sealed = seal_key(&customer, b"SSE-C:bucket/key", &object).expect("seal");
        assert!(!sealed.ciphertext.windows(32).any(|w| w == object.expose()), "the key is not stored in the clear");
        assert_eq!(unseal_key(&customer, b"SSE-C:bucket/key", &sealed).expect("unseal").expose(), object.expose());
        assert!(unseal_key(&customer, b"SSE-C:bucket/other", &sealed).is_err());
        assert!(unseal_key(&Key32::random().expect("key"), b"SSE-C:bucket/key", &sealed).is_err());
    }

    #[test]
    fn the_key_mac_recognises_only_the_same_key() {
        let key = Key32::random().expect("key");
        let salt = random_array().expect("salt");
        let mac = key_mac(&key, &salt);
        assert!(verify_key_mac(&key, &salt, &mac));
        assert!(!verify_key_mac(&Key32::random().expect("key"), &salt, &mac));
        assert!(!verify_key_mac(&key, &random_array().expect("salt"), &mac));
        assert_eq!(format!("{key:?}"), "[redacted]");
    }

    #[test]
    fn part_keys_differ_per_part() {
        let key = Key32::random().expect("key");
        assert_ne!(part_key(&key, 1).expose(), part_key(&key, 2).expose());
        assert_eq!(part_key(&key, 7).expose(), part_key(&key, 7).expose());
    }

    #[test]
    fn derived_keys_differ_by_purpose_and_root() {
        let root = Key32::from_bytes([1; 32]);
        let a = derive_key(&root, b"iam");
        assert_eq!(a.expose(), derive_key(&root, b"iam").expose());
        assert_ne!(a.expose(), derive_key(&root, b"kms").expose());
        assert_ne!(a.expose(), derive_key(&Key32::from_bytes([2; 32]), b"iam").expose());
        assert_ne!(a.expose(), root.expose());
    }

    #[test]
    fn sealed_bytes_open_only_with_the_same_key_and_aad() {
        let key = Key32::random().expect("key");
        let sealed = seal_bytes(&key, b"aad", b"secret state").expect("seal");
        assert_eq!(sealed.len(), NONCE_LEN + 12 + TAG_LEN);
        assert_eq!(open_bytes(&key, b"aad", &sealed).expect("open").as_slice(), b"secret state");
        assert_eq!(open_bytes(&key, b"other", &sealed), Err(CryptoError::Authentication));
        assert_eq!(open_bytes(&Key32::random().expect("key"), b"aad", &sealed), Err(CryptoError::Authentication));
        assert_eq!(open_bytes(&key, b"aad", &sealed[..NONCE_LEN + TAG_LEN - 1]), Err(CryptoError::Malformed));
        let mut flipped = sealed.clone();
        flipped[NONCE_LEN] ^= 1;
        assert_eq!(open_bytes(&key, b"aad", &flipped), Err(CryptoError::Authentication));
        assert!(open_bytes(&key, b"", &seal_bytes(&key, b"", b"").expect("empty")).expect("open").is_empty());
    }

    #[test]
    fn hmac_and_sha256_match_known_answers() {
        // RFC 4231 does not use 32-byte keys, so check against SHA-256's FIPS vector and a round trip.
        assert_eq!(
            sha256(b"abc"),
            [
                0xba, 0x78, 0x16, 0xbf, 0x8f, 0x01, 0xcf, 0xea, 0x41, 0x41, 0x40, 0xde, 0x5d, 0xae, 0x22, 0x23, 0xb0,
                0x03, 0x61, 0xa3, 0x96, 0x17, 0x7a, 0x9c, 0xb4, 0x10, 0xff, 0x61, 0xf2, 0x00, 0x15, 0xad
            ]
        );
        let key = Key32::from_bytes([3; 32]);
        let tag = hmac_sha256(&key, b"record");
        assert!(verify_hmac_sha256(&key, b"record", &tag));
        assert!(!verify_hmac_sha256(&key, b"recorD", &tag));
        assert!(!verify_hmac_sha256(&Key32::from_bytes([4; 32]), b"record", &tag));
    }
}
