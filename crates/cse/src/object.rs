//! Whole objects: encryption with a fresh data key per object, and streaming
//! decryption that holds back the trailing tag.
//!
//! Both directions take data in pieces and keep O(1) state, so memory is
//! bounded by the caller's piece size whatever the object's size. A decrypted
//! piece is not authentic until [`ObjectDecryptor::finish`] succeeds.

use aws_lc_rs::cipher::{AES_256, DecryptionContext, StreamingDecryptingKey, UnboundCipherKey};
use aws_lc_rs::iv::FixedLength;
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use zeroize::Zeroizing;

use crate::envelope::{Context, Envelope, Format, Version, WrapAlgorithm};
use crate::error::{Error, Result};
use crate::gcm::{GcmDecryptor, GcmEncryptor, IV_LEN, KEY_LEN, MESSAGE_BYTES_MAX, TAG_LEN};
use crate::keyring::{DataKey, MasterKey};
use crate::suite::{
    COMMITTING_AAD, COMMITTING_IV, ContentCipher, MESSAGE_ID_LEN, derive_committing, verify_commitment,
};

/// Largest plaintext one object may hold (one GCM message).
pub const PLAINTEXT_BYTES_MAX: u64 = MESSAGE_BYTES_MAX;

/// A fresh data key and its wrapped form, ready to encrypt one object.
pub struct EncryptionMaterials {
    format: Format,
    wrap: WrapAlgorithm,
    data_key: DataKey,
    encrypted_key: Vec<u8>,
    context: Context,
}

impl EncryptionMaterials {
    /// A random data key wrapped under a client-held master key. `matdesc` is
    /// the material description stored with it (not secret, not checked).
    pub fn with_master_key(master: &MasterKey, format: Format, matdesc: Context) -> Result<EncryptionMaterials> {
        let data_key = DataKey::random()?;
        let encrypted_key = master.wrap(&data_key, format.content_cipher())?;
        Ok(EncryptionMaterials { format, wrap: master.wrap_algorithm(), data_key, encrypted_key, context: matdesc })
    }

    /// A data key from KMS GenerateDataKey, made with `kms_context` (see
    /// [`crate::keyring::kms_encryption_context`]).
    pub fn from_kms(
        format: Format,
        plaintext: DataKey,
        ciphertext_blob: Vec<u8>,
        kms_context: Context,
    ) -> EncryptionMaterials {
        EncryptionMaterials {
            format,
            wrap: WrapAlgorithm::KmsContext,
            data_key: plaintext,
            encrypted_key: ciphertext_blob,
            context: kms_context,
        }
    }
}

/// Encrypts one object. Its envelope is fixed before the first byte, so it can
/// go into a CreateMultipartUpload.
pub struct ObjectEncryptor {
    gcm: GcmEncryptor,
    envelope: Envelope,
}

impl ObjectEncryptor {
    /// `plaintext_length`, when known, is recorded in v2 metadata.
    pub fn new(materials: EncryptionMaterials, plaintext_length: Option<u64>) -> Result<ObjectEncryptor> {
        if plaintext_length.is_some_and(|length| length > PLAINTEXT_BYTES_MAX) {
            return Err(Error::TooLarge { max_bytes: PLAINTEXT_BYTES_MAX });
        }
        let random = SystemRandom::new();
        let (gcm, envelope) = match materials.format {
            Format::V2 => {
                let mut iv = [0u8; IV_LEN];
                random.fill(&mut iv).map_err(|_| Error::Crypto("random source"))?;
                let gcm = GcmEncryptor::new(materials.data_key.expose(), &iv, &[])?;
                (gcm, envelope_of(&materials, Version::V2, iv.to_vec(), None, None, plaintext_length))
            }
            Format::V3 => {
                let mut message_id = [0u8; MESSAGE_ID_LEN];
                random.fill(&mut message_id).map_err(|_| Error::Crypto("random source"))?;
                let derived = derive_committing(materials.data_key.expose(), &message_id)?;
                let gcm = GcmEncryptor::new(&derived.content_key, &COMMITTING_IV, &COMMITTING_AAD)?;
                let commitment = Some(derived.commitment);
                (gcm, envelope_of(&materials, Version::V3, Vec::new(), Some(message_id), commitment, None))
            }
        };
        Ok(ObjectEncryptor { gcm, envelope })
    }

    pub fn envelope(&self) -> &Envelope {
        &self.envelope
    }

    /// Appends the ciphertext of `plaintext` to `out`.
    pub fn update(&mut self, plaintext: &[u8], out: &mut Vec<u8>) -> Result<()> {
        let start = out.len();
        out.resize(start + plaintext.len(), 0);
        self.gcm.update(plaintext, &mut out[start..])
    }

    /// Appends the tag to `out`; the object is complete.
    pub fn finish(self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.gcm.finish());
    }
}

fn envelope_of(
    materials: &EncryptionMaterials,
    version: Version,
    iv: Vec<u8>,
    message_id: Option<[u8; MESSAGE_ID_LEN]>,
    commitment: Option<[u8; 28]>,
    plaintext_length: Option<u64>,
) -> Envelope {
    Envelope {
        version,
        content: materials.format.content_cipher(),
        wrap: materials.wrap,
        encrypted_key: materials.encrypted_key.clone(),
        iv,
        message_id,
        commitment,
        context: materials.context.clone(),
        plaintext_length,
        from_instruction_file: false,
    }
}

/// The ciphertext length of a plaintext encrypted by this crate (GCM + tag).
pub fn ciphertext_length(plaintext_length: u64) -> u64 {
    plaintext_length + TAG_LEN as u64
}

enum Inner {
    Gcm {
        gcm: Box<GcmDecryptor>,
        /// The last bytes seen, possibly the tag: never decrypted before more arrive.
        tail: Zeroizing<Vec<u8>>,
    },
    Cbc(StreamingDecryptingKey),
}

/// Decrypts one object's body given in pieces.
pub struct ObjectDecryptor {
    inner: Inner,
}

impl ObjectDecryptor {
    /// Checks the policy and (v3) the key commitment, then prepares decryption.
    pub fn new(envelope: &Envelope, data_key: &DataKey, allow_legacy: bool) -> Result<ObjectDecryptor> {
        envelope.check_policy(allow_legacy)?;
        let inner = match envelope.content {
            ContentCipher::AesGcm => {
                let iv: [u8; IV_LEN] =
                    envelope.iv.as_slice().try_into().map_err(|_| Error::Malformed("GCM IV length".into()))?;
                Inner::Gcm {
                    gcm: Box::new(GcmDecryptor::new(data_key.expose(), &iv, &[])?),
                    tail: Zeroizing::new(Vec::new()),
                }
            }
            ContentCipher::AesGcmCommitting => {
                let (Some(message_id), Some(stored)) = (envelope.message_id, envelope.commitment) else {
                    return Err(Error::Malformed("a v3 envelope needs x-amz-i and x-amz-d".into()));
                };
                let derived = derive_committing(data_key.expose(), &message_id)?;
                verify_commitment(&stored, &derived.commitment)?;
                let gcm = GcmDecryptor::new(&derived.content_key, &COMMITTING_IV, &COMMITTING_AAD)?;
                Inner::Gcm { gcm: Box::new(gcm), tail: Zeroizing::new(Vec::new()) }
            }
            ContentCipher::AesCbc => {
                let iv: [u8; 16] =
                    envelope.iv.as_slice().try_into().map_err(|_| Error::Malformed("CBC IV length".into()))?;
                let key = UnboundCipherKey::new(&AES_256, &data_key.expose()[..KEY_LEN])
                    .map_err(|_| Error::Crypto("AES key"))?;
                let context = DecryptionContext::Iv128(FixedLength::from(iv));
                Inner::Cbc(StreamingDecryptingKey::cbc_pkcs7(key, context).map_err(|_| Error::Crypto("AES-CBC key"))?)
            }
        };
        Ok(ObjectDecryptor { inner })
    }

    /// Appends the (not yet authenticated) plaintext of `ciphertext` to `out`.
    pub fn update(&mut self, ciphertext: &[u8], out: &mut Vec<u8>) -> Result<()> {
        match &mut self.inner {
            Inner::Gcm { gcm, tail } => {
                // Keep the last TAG_LEN bytes of everything seen; decrypt the rest.
                let total = tail.len() + ciphertext.len();
                let release = total.saturating_sub(TAG_LEN);
                let from_tail = release.min(tail.len());
                let from_input = release - from_tail;
                let start = out.len();
                out.resize(start + release, 0);
                gcm.update(&tail[..from_tail], &mut out[start..start + from_tail])?;
                gcm.update(&ciphertext[..from_input], &mut out[start + from_tail..])?;
                tail.drain(..from_tail);
                tail.extend_from_slice(&ciphertext[from_input..]);
                debug_assert!(tail.len() <= TAG_LEN);
                Ok(())
            }
            Inner::Cbc(cbc) => {
                let start = out.len();
                out.resize(start + ciphertext.len() + 16, 0);
                let written = cbc.update(ciphertext, &mut out[start..]).map_err(|_| Error::Padding)?.written().len();
                out.truncate(start + written);
                Ok(())
            }
        }
    }

    /// Verifies the tag (GCM) or padding (CBC) and appends any last plaintext.
    /// Only after `Ok` is the plaintext authentic.
    pub fn finish(self, out: &mut Vec<u8>) -> Result<()> {
        match self.inner {
            Inner::Gcm { gcm, tail } => {
                if tail.len() < TAG_LEN {
                    return Err(Error::Truncated(format!(
                        "the body is shorter than the {TAG_LEN}-byte GCM tag ({} bytes)",
                        tail.len()
                    )));
                }
                gcm.finish(&tail)
            }
            Inner::Cbc(cbc) => {
                let start = out.len();
                out.resize(start + 16, 0);
                let written = cbc.finish(&mut out[start..]).map_err(|_| Error::Padding)?.written().len();
                out.truncate(start + written);
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encrypt_all(materials: EncryptionMaterials, plaintext: &[u8], piece: usize) -> (Envelope, Vec<u8>) {
        let mut encryptor = ObjectEncryptor::new(materials, Some(plaintext.len() as u64)).expect("encryptor");
        let envelope = encryptor.envelope().clone();
        let mut out = Vec::new();
        for chunk in plaintext.chunks(piece.max(1)) {
            encryptor.update(chunk, &mut out).expect("update");
        }
        encryptor.finish(&mut out);
        (envelope, out)
    }

    pub(crate) fn decrypt_all(envelope: &Envelope, key: &DataKey, body: &[u8], piece: usize) -> Result<Vec<u8>> {
        let mut decryptor = ObjectDecryptor::new(envelope, key, false)?;
        let mut out = Vec::new();
        for chunk in body.chunks(piece.max(1)) {
            decryptor.update(chunk, &mut out)?;
        }
        decryptor.finish(&mut out)?;
        Ok(out)
    }

    fn aes_master() -> MasterKey {
        MasterKey::aes_from_file_contents(&[0x11; 32]).expect("key")
    }

    #[test]
    fn v2_and_v3_round_trip_in_any_piece_size() {
        let master = aes_master();
        let plaintext: Vec<u8> = (0..5000u32).map(|i| (i * 7 % 251) as u8).collect();
        for format in [Format::V2, Format::V3] {
            for piece in [1, 15, 16, 17, 4096, 10_000] {
                let materials = EncryptionMaterials::with_master_key(&master, format, Context::new()).expect("m");
                let (envelope, body) = encrypt_all(materials, &plaintext, piece);
                assert_eq!(body.len() as u64, ciphertext_length(plaintext.len() as u64));
                let key = master.unwrap(&envelope).expect("unwrap");
                assert_eq!(decrypt_all(&envelope, &key, &body, piece + 3).expect("decrypt"), plaintext);
            }
        }
    }

    #[test]
    fn v3_known_answer() {
        // Data key 0x00..0x1f, message id 0xa0..0xbb, plaintext "bulwark": the
        // content key of suite::tests, IV 01×12, AAD 00 73 (computed with Python's
        // `cryptography` AESGCM from the spec, independently of this crate).
        let data_key = DataKey::from_slice(&std::array::from_fn::<u8, 32, _>(|i| i as u8)).expect("key");
        let message_id: [u8; 28] = std::array::from_fn(|i| 0xa0 + i as u8);
        let derived = derive_committing(data_key.expose(), &message_id).expect("derive");
        let envelope = Envelope {
            version: Version::V3,
            content: ContentCipher::AesGcmCommitting,
            wrap: WrapAlgorithm::AesGcm,
            encrypted_key: vec![0; 60],
            iv: Vec::new(),
            message_id: Some(message_id),
            commitment: Some(derived.commitment),
            context: Context::new(),
            plaintext_length: None,
            from_instruction_file: false,
        };
        let body = crate::gcm::tests::hex(V3_KNOWN_CIPHERTEXT);
        assert_eq!(decrypt_all(&envelope, &data_key, &body, 4).expect("decrypt"), b"bulwark");
    }

    const V3_KNOWN_CIPHERTEXT: &str = "aed9f65ac811ff17db37ab95f0f15293050093e62512b2";

    #[test]
    fn v2_known_answer() {
        // AES-256-GCM, key 0x00..0x1f, IV 0x00..0x0b, no AAD, plaintext "bulwark"
        // (Python `cryptography` AESGCM).
        let data_key = DataKey::from_slice(&std::array::from_fn::<u8, 32, _>(|i| i as u8)).expect("key");
        let envelope = Envelope {
            version: Version::V2,
            content: ContentCipher::AesGcm,
            wrap: WrapAlgorithm::AesGcm,
            encrypted_key: vec![0; 60],
            iv: (0u8..12).collect(),
            message_id: None,
            commitment: None,
            context: Context::new(),
            plaintext_length: None,
            from_instruction_file: false,
        };
        let body = crate::gcm::tests::hex(V2_KNOWN_CIPHERTEXT);
        assert_eq!(decrypt_all(&envelope, &data_key, &body, 5).expect("decrypt"), b"bulwark");
    }

    const V2_KNOWN_CIPHERTEXT: &str = "2577ba6ca497a91660d26da23451833e4b034a7c658153";

    #[test]
    fn tampering_is_detected() {
        let master = aes_master();
        let plaintext = vec![0x5a; 1000];
        let (envelope, body) = encrypt_all(
            EncryptionMaterials::with_master_key(&master, Format::V3, Context::new()).expect("m"),
            &plaintext,
            64,
        );
        let key = master.unwrap(&envelope).expect("unwrap");

        let mut flipped = body.clone();
        flipped[500] ^= 1;
        assert!(matches!(decrypt_all(&envelope, &key, &flipped, 64), Err(Error::Authentication)));

        let mut altered = envelope.clone();
        if let Some(commitment) = altered.commitment.as_mut() {
            commitment[0] ^= 1;
        }
        assert!(matches!(decrypt_all(&altered, &key, &body, 64), Err(Error::Commitment)));

        // The data key of another object: commitment (v3) or tag (v2) fails.
        let (other, _) =
            encrypt_all(EncryptionMaterials::with_master_key(&master, Format::V3, Context::new()).expect("m"), b"x", 1);
        let other_key = master.unwrap(&other).expect("unwrap");
        assert!(matches!(decrypt_all(&envelope, &other_key, &body, 64), Err(Error::Commitment)));
        let (v2, v2_body) = encrypt_all(
            EncryptionMaterials::with_master_key(&master, Format::V2, Context::new()).expect("m"),
            &plaintext,
            64,
        );
        assert!(matches!(decrypt_all(&v2, &other_key, &v2_body, 64), Err(Error::Authentication)));

        assert!(matches!(decrypt_all(&envelope, &key, &body[..10], 64), Err(Error::Truncated(_))));
        assert!(matches!(decrypt_all(&envelope, &key, &body[..body.len() - 1], 64), Err(Error::Authentication)));
    }

    #[test]
    fn v1_aes_cbc_objects_need_allow_legacy() {
        use aws_lc_rs::cipher::{EncryptionContext, PaddedBlockEncryptingKey};
        use base64::Engine as _;
        use base64::engine::general_purpose::STANDARD as BASE64;

        // A v1 object as the Ruby V1 client writes it: AES/ECB(PKCS#7)-wrapped
        // data key (48 bytes), AES-256-CBC(PKCS#7) content, no wrap algorithm.
        let master = [0x21u8; 32];
        let data_key = [0x42u8; 32];
        let iv = [0x07u8; 16];
        let ecb =
            PaddedBlockEncryptingKey::ecb_pkcs7(UnboundCipherKey::new(&AES_256, &master).expect("key")).expect("ecb");
        let mut wrapped = data_key.to_vec();
        ecb.less_safe_encrypt(&mut wrapped, EncryptionContext::None).expect("wrap");
        assert_eq!(wrapped.len(), 48);
        let cbc =
            PaddedBlockEncryptingKey::cbc_pkcs7(UnboundCipherKey::new(&AES_256, &data_key).expect("key")).expect("cbc");
        let mut body = b"legacy plaintext of some length".to_vec();
        cbc.less_safe_encrypt(&mut body, EncryptionContext::Iv128(FixedLength::from(iv))).expect("encrypt");

        let metadata: crate::envelope::Metadata = [
            ("x-amz-key".to_owned(), BASE64.encode(&wrapped)),
            ("x-amz-iv".to_owned(), BASE64.encode(iv)),
            ("x-amz-matdesc".to_owned(), "{}".to_owned()),
        ]
        .into();
        let envelope = Envelope::from_metadata(&metadata).expect("v1 envelope");
        let master = MasterKey::aes_from_file_contents(&master).expect("master");
        let key = master.unwrap(&envelope).expect("unwrap");
        assert!(matches!(ObjectDecryptor::new(&envelope, &key, false), Err(Error::Legacy(_))));
        let mut decryptor = ObjectDecryptor::new(&envelope, &key, true).expect("allowed");
        let mut out = Vec::new();
        for piece in body.chunks(5) {
            decryptor.update(piece, &mut out).expect("update");
        }
        decryptor.finish(&mut out).expect("padding");
        assert_eq!(out, b"legacy plaintext of some length");
    }
}
