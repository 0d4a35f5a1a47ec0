//! Master keys held by the client and the wrapping of data keys under them;
//! the KMS side as pure functions (the caller makes the KMS calls).
//!
//! - AES/GCM: `EDK = iv12 ‖ AES-256-GCM(master, data_key, AAD = cipher name)`,
//!   the cipher name being `AES/GCM/NoPadding` (v2) or `115` (v3).
//! - RSA-OAEP-SHA1: `EDK = RSA-OAEP(SHA-1, MGF1-SHA1)(len(dk) ‖ dk ‖ cipher name)`.
//!   The name binds the content algorithm to the key, so a v2 object cannot be
//!   relabelled as another suite.
//! - kms+context: `GenerateDataKey(AES_256, context ∪ {aws:x-amz-cek-alg: name})`.
//!
//! Data keys live in [`DataKey`] (zeroized on drop, printed as `[redacted]`).

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
use aws_lc_rs::cipher::{AES_256, DecryptionContext, StreamingDecryptingKey, UnboundCipherKey};
use aws_lc_rs::key_wrap::{AES_256 as KW_AES_256, AesKek, KeyWrap};
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use aws_lc_rs::rsa::{
    OAEP_SHA1_MGF1SHA1, OAEP_SHA256_MGF1SHA256, OaepPrivateDecryptingKey, OaepPublicEncryptingKey,
    Pkcs1PrivateDecryptingKey, PrivateDecryptingKey, PublicEncryptingKey,
};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use zeroize::Zeroizing;

use crate::envelope::{Context, Envelope, Version, WrapAlgorithm};
use crate::error::{Error, Result};
use crate::gcm::{IV_LEN, KEY_LEN, TAG_LEN};
use crate::suite::{ContentCipher, GCM_CIPHER_NAME};

/// The reserved KMS context key that binds the content algorithm.
pub const KMS_CEK_ALG_KEY: &str = "aws:x-amz-cek-alg";
/// The context key of the legacy `kms` wrap.
pub const KMS_LEGACY_KEY: &str = "kms_cmk_id";
/// Bytes of an AES/GCM-wrapped data key.
const AES_GCM_EDK_LEN: usize = IV_LEN + KEY_LEN + TAG_LEN;

/// A 256-bit data key. Zeroized on drop; never printed.
pub struct DataKey(Zeroizing<[u8; KEY_LEN]>);

impl DataKey {
    pub fn random() -> Result<DataKey> {
        let mut bytes = Zeroizing::new([0u8; KEY_LEN]);
        SystemRandom::new().fill(bytes.as_mut()).map_err(|_| Error::Crypto("random source"))?;
        Ok(DataKey(bytes))
    }

    /// A data key returned by KMS (must be 32 bytes).
    pub fn from_slice(bytes: &[u8]) -> Result<DataKey> {
        let array: [u8; KEY_LEN] = bytes
            .try_into()
            .map_err(|_| Error::WrongKey(format!("a data key must be {KEY_LEN} bytes, not {}", bytes.len())))?;
        Ok(DataKey(Zeroizing::new(array)))
    }

    pub fn expose(&self) -> &[u8; KEY_LEN] {
        &self.0
    }
}

impl std::fmt::Debug for DataKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DataKey([redacted])")
    }
}

/// A key held only by the client.
pub enum MasterKey {
    /// A 256-bit AES key: wraps with AES/GCM.
    Aes(Zeroizing<[u8; KEY_LEN]>),
    /// An RSA key pair: wraps and unwraps with RSA-OAEP-SHA1.
    RsaPrivate(PrivateDecryptingKey),
    /// An RSA public key: wraps only.
    RsaPublic(PublicEncryptingKey),
}

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MasterKey::Aes(_) => f.write_str("MasterKey::Aes([redacted])"),
            MasterKey::RsaPrivate(key) => write!(f, "MasterKey::RsaPrivate({} bits, [redacted])", key.key_size_bits()),
            MasterKey::RsaPublic(key) => write!(f, "MasterKey::RsaPublic({} bits)", key.key_size_bits()),
        }
    }
}

impl MasterKey {
    /// An AES-256 key from the contents of a key file: exactly 32 raw bytes, or
    /// the base64 text of 32 bytes (surrounding whitespace ignored).
    pub fn aes_from_file_contents(contents: &[u8]) -> Result<MasterKey> {
        if let Ok(raw) = <[u8; KEY_LEN]>::try_from(contents) {
            return Ok(MasterKey::Aes(Zeroizing::new(raw)));
        }
        let text = Zeroizing::new(String::from_utf8_lossy(contents).trim().to_owned());
        let decoded = Zeroizing::new(BASE64.decode(text.as_bytes()).map_err(|_| {
            Error::KeyFile(format!(
                "an AES master key file holds exactly {KEY_LEN} raw bytes or their base64 \
                 (this one has {} bytes and is not base64)",
                contents.len()
            ))
        })?);
        let key: [u8; KEY_LEN] = decoded.as_slice().try_into().map_err(|_| {
            Error::KeyFile(format!("the base64 key decodes to {} bytes; AES-256 needs {KEY_LEN}", decoded.len()))
        })?;
        Ok(MasterKey::Aes(Zeroizing::new(key)))
    }

    /// An RSA key from PEM: `PRIVATE KEY` (PKCS#8), `RSA PRIVATE KEY` (PKCS#1),
    /// `PUBLIC KEY` (SubjectPublicKeyInfo) or `RSA PUBLIC KEY` (PKCS#1). The
    /// first key block in the file is used.
    pub fn rsa_from_pem(contents: &[u8]) -> Result<MasterKey> {
        let blocks = pem::parse_many(contents).map_err(|e| Error::KeyFile(format!("not PEM: {e}")))?;
        for block in blocks {
            let der = Zeroizing::new(block.contents().to_vec());
            let rejected = |e: aws_lc_rs::error::KeyRejected| Error::KeyFile(format!("{} rejected: {e}", block.tag()));
            match block.tag() {
                "PRIVATE KEY" => {
                    return Ok(MasterKey::RsaPrivate(PrivateDecryptingKey::from_pkcs8(&der).map_err(rejected)?));
                }
                "RSA PRIVATE KEY" => {
                    let pkcs8 = Zeroizing::new(crate::der::pkcs1_private_to_pkcs8(&der));
                    return Ok(MasterKey::RsaPrivate(PrivateDecryptingKey::from_pkcs8(&pkcs8).map_err(rejected)?));
                }
                "PUBLIC KEY" => {
                    return Ok(MasterKey::RsaPublic(PublicEncryptingKey::from_der(&der).map_err(rejected)?));
                }
                "RSA PUBLIC KEY" => {
                    let spki = crate::der::pkcs1_public_to_spki(&der);
                    return Ok(MasterKey::RsaPublic(PublicEncryptingKey::from_der(&spki).map_err(rejected)?));
                }
                "ENCRYPTED PRIVATE KEY" => {
                    return Err(Error::KeyFile(
                        "the private key is passphrase-protected; export it without a passphrase \
                         (openssl pkey -in KEY -out PLAIN)"
                            .into(),
                    ));
                }
                _ => continue,
            }
        }
        Err(Error::KeyFile("no RSA key block (PRIVATE KEY, RSA PRIVATE KEY, PUBLIC KEY) in the PEM file".into()))
    }

    /// The wrap algorithm this key writes.
    pub fn wrap_algorithm(&self) -> WrapAlgorithm {
        match self {
            MasterKey::Aes(_) => WrapAlgorithm::AesGcm,
            MasterKey::RsaPrivate(_) | MasterKey::RsaPublic(_) => WrapAlgorithm::RsaOaepSha1,
        }
    }

    /// Wraps `data_key` for an object whose content is `content`.
    pub fn wrap(&self, data_key: &DataKey, content: ContentCipher) -> Result<Vec<u8>> {
        let label = content.name().as_bytes();
        match self {
            MasterKey::Aes(master) => {
                let mut iv = [0u8; IV_LEN];
                SystemRandom::new().fill(&mut iv).map_err(|_| Error::Crypto("random source"))?;
                let key = aes_gcm_key(master)?;
                let mut sealed = data_key.expose().to_vec();
                key.seal_in_place_append_tag(Nonce::assume_unique_for_key(iv), Aad::from(label), &mut sealed)
                    .map_err(|_| Error::Crypto("AES-GCM seal"))?;
                let mut edk = iv.to_vec();
                edk.extend_from_slice(&sealed);
                Ok(edk)
            }
            MasterKey::RsaPrivate(private) => rsa_oaep_wrap(&private.public_key(), data_key, label),
            MasterKey::RsaPublic(public) => rsa_oaep_wrap(public, data_key, label),
        }
    }

    /// Unwraps the data key of `envelope` (raw-key wraps only).
    pub fn unwrap(&self, envelope: &Envelope) -> Result<DataKey> {
        let edk = envelope.encrypted_key.as_slice();
        match (envelope.wrap, self) {
            (WrapAlgorithm::AesGcm, MasterKey::Aes(master)) => aes_gcm_unwrap(master, edk, envelope.content),
            (WrapAlgorithm::AesWrap, MasterKey::Aes(master)) => {
                let kek = AesKek::new(&KW_AES_256, master.as_slice()).map_err(|_| Error::Crypto("AES-KW key"))?;
                let mut out = Zeroizing::new([0u8; KEY_LEN + 8]);
                let key = kek.unwrap(edk, out.as_mut()).map_err(|_| wrong_master("AESWrap"))?;
                DataKey::from_slice(key)
            }
            (WrapAlgorithm::LegacyImplicit, MasterKey::Aes(master)) => aes_ecb_unwrap(master, edk),
            (WrapAlgorithm::RsaOaepSha1, MasterKey::RsaPrivate(private)) => {
                rsa_oaep_unwrap(private, edk, envelope.content)
            }
            (WrapAlgorithm::RsaOaepSha256, MasterKey::RsaPrivate(private)) => {
                let key = OaepPrivateDecryptingKey::new(private.clone()).map_err(|_| Error::Crypto("RSA key"))?;
                let mut out = Zeroizing::new(vec![0u8; key.min_output_size()]);
                let plain =
                    key.decrypt(&OAEP_SHA256_MGF1SHA256, edk, &mut out, None).map_err(|_| wrong_master("RSA"))?;
                DataKey::from_slice(plain)
            }
            (WrapAlgorithm::LegacyImplicit, MasterKey::RsaPrivate(private)) => {
                let key = Pkcs1PrivateDecryptingKey::new(private.clone()).map_err(|_| Error::Crypto("RSA key"))?;
                let mut out = Zeroizing::new(vec![0u8; key.min_output_size()]);
                let plain = key.decrypt(edk, &mut out).map_err(|_| wrong_master("RSA"))?;
                DataKey::from_slice(plain)
            }
            (_, MasterKey::RsaPublic(_)) => Err(Error::WrongKey(
                "an RSA public key can only encrypt; decrypting needs the private key (--rsa-key PRIVATE.pem)".into(),
            )),
            (wrap, master) => Err(Error::WrongKey(format!(
                "the object's data key is wrapped with {}, which {} cannot open{}",
                wrap.name(),
                match master {
                    MasterKey::Aes(_) => "an AES master key",
                    _ => "an RSA key",
                },
                if wrap.is_kms() { " (use --kms-key-id)" } else { "" }
            ))),
        }
    }
}

fn wrong_master(kind: &str) -> Error {
    Error::WrongKey(format!(
        "the {kind} master key does not open this object's data key (another key, or altered metadata)"
    ))
}

fn aes_gcm_key(master: &[u8; KEY_LEN]) -> Result<LessSafeKey> {
    Ok(LessSafeKey::new(UnboundKey::new(&AES_256_GCM, master).map_err(|_| Error::Crypto("AES-GCM key"))?))
}

fn aes_gcm_unwrap(master: &[u8; KEY_LEN], edk: &[u8], content: ContentCipher) -> Result<DataKey> {
    if edk.len() != AES_GCM_EDK_LEN {
        return Err(Error::Malformed(format!(
            "an AES/GCM-wrapped data key is {AES_GCM_EDK_LEN} bytes, this one {}",
            edk.len()
        )));
    }
    let (iv, sealed) = edk.split_at(IV_LEN);
    let iv: [u8; IV_LEN] = iv.try_into().map_err(|_| Error::Malformed("IV".into()))?;
    let mut in_out = Zeroizing::new(sealed.to_vec());
    let key = aes_gcm_key(master)?;
    let plain = key
        .open_in_place(Nonce::assume_unique_for_key(iv), Aad::from(content.name().as_bytes()), &mut in_out)
        .map_err(|_| wrong_master("AES"))?;
    DataKey::from_slice(plain)
}

fn aes_ecb_unwrap(master: &[u8; KEY_LEN], edk: &[u8]) -> Result<DataKey> {
    let key = UnboundCipherKey::new(&AES_256, master).map_err(|_| Error::Crypto("AES key"))?;
    let mut decrypter =
        StreamingDecryptingKey::ecb_pkcs7(key, DecryptionContext::None).map_err(|_| Error::Crypto("AES-ECB key"))?;
    let mut out = Zeroizing::new(vec![0u8; edk.len() + 32]);
    let first = decrypter.update(edk, &mut out).map_err(|_| wrong_master("AES"))?.written().len();
    let last = decrypter.finish(&mut out[first..]).map_err(|_| wrong_master("AES"))?.written().len();
    DataKey::from_slice(&out[..first + last])
}

fn rsa_oaep_wrap(public: &PublicEncryptingKey, data_key: &DataKey, label: &[u8]) -> Result<Vec<u8>> {
    let key = OaepPublicEncryptingKey::new(public.clone()).map_err(|_| Error::Crypto("RSA public key"))?;
    let mut plain = Zeroizing::new(Vec::with_capacity(1 + KEY_LEN + label.len()));
    plain.push(KEY_LEN as u8);
    plain.extend_from_slice(data_key.expose());
    plain.extend_from_slice(label);
    let mut out = vec![0u8; key.ciphertext_size()];
    let written = key
        .encrypt(&OAEP_SHA1_MGF1SHA1, &plain, &mut out, None)
        .map_err(|_| Error::KeyFile("the RSA key is too small for OAEP over the data key".into()))?
        .len();
    out.truncate(written);
    Ok(out)
}

fn rsa_oaep_unwrap(private: &PrivateDecryptingKey, edk: &[u8], content: ContentCipher) -> Result<DataKey> {
    let key = OaepPrivateDecryptingKey::new(private.clone()).map_err(|_| Error::Crypto("RSA key"))?;
    let mut out = Zeroizing::new(vec![0u8; key.min_output_size()]);
    let plain = key.decrypt(&OAEP_SHA1_MGF1SHA1, edk, &mut out, None).map_err(|_| wrong_master("RSA"))?;
    let (&length, rest) = plain.split_first().ok_or_else(|| wrong_master("RSA"))?;
    let length = usize::from(length);
    if length != KEY_LEN || rest.len() < length {
        return Err(Error::Malformed(format!(
            "the RSA-wrapped data key claims {length} bytes; AES-256 needs {KEY_LEN}"
        )));
    }
    let (data_key, label) = rest.split_at(length);
    // v3: AWS's v4 clients label the committing suite "115"; the JCE name of
    // that suite is also AES/GCM/NoPadding, which is accepted too (the
    // commitment, checked next, binds the key to this object either way).
    let label_ok = match content {
        ContentCipher::AesGcmCommitting => label == content.name().as_bytes() || label == GCM_CIPHER_NAME.as_bytes(),
        _ => label == content.name().as_bytes(),
    };
    if !label_ok {
        return Err(Error::Malformed(format!(
            "the RSA-wrapped data key was made for {:?}, the object says {} (altered metadata?)",
            String::from_utf8_lossy(label),
            content.name()
        )));
    }
    DataKey::from_slice(data_key)
}

/// The KMS encryption context for a new object: the user's context plus the
/// reserved `aws:x-amz-cek-alg`. The user may not set reserved keys.
pub fn kms_encryption_context(content: ContentCipher, user: &Context) -> Result<Context> {
    if let Some(key) = user.keys().find(|k| k.starts_with("aws:")) {
        return Err(Error::Context(format!("{key:?}: context keys starting with aws: are reserved")));
    }
    if let Some((key, _)) = user.iter().find(|(k, v)| !is_header_safe(k) || !is_header_safe(v)) {
        return Err(Error::Context(format!("{key:?}: context keys and values must be printable US-ASCII")));
    }
    let mut context = user.clone();
    context.insert(KMS_CEK_ALG_KEY.to_owned(), content.name().to_owned());
    Ok(context)
}

fn is_header_safe(text: &str) -> bool {
    text.bytes().all(|b| (0x20..0x7f).contains(&b))
}

/// What to send to KMS Decrypt for an object: the encrypted data key and the
/// stored context, after checking that context.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KmsDecryptRequest {
    pub ciphertext_blob: Vec<u8>,
    pub context: Context,
}

impl Envelope {
    /// Checks a KMS-wrapped envelope and says what to ask KMS. With `expected`
    /// (the caller's context), the stored context less the reserved key must
    /// equal it exactly; without, any stored context is accepted (KMS itself
    /// checks that it is the one the data key was made with).
    pub fn kms_decrypt_request(&self, expected: Option<&Context>) -> Result<KmsDecryptRequest> {
        match self.wrap {
            WrapAlgorithm::KmsContext => {
                let stored_alg = self.context.get(KMS_CEK_ALG_KEY).map(String::as_str);
                let accepted = match self.content {
                    // A v2 object names its cipher, a v3 object the suite id.
                    ContentCipher::AesGcmCommitting => stored_alg == Some(self.content.name()),
                    content => stored_alg == Some(content.name()),
                };
                if !accepted {
                    return Err(Error::Context(format!(
                        "the context's {KMS_CEK_ALG_KEY} is {stored_alg:?} but the object is {} (altered metadata?)",
                        self.content.name()
                    )));
                }
                if let Some(expected) = expected {
                    if expected.contains_key(KMS_CEK_ALG_KEY) {
                        return Err(Error::Context(format!("{KMS_CEK_ALG_KEY} is reserved")));
                    }
                    let mut stored = self.context.clone();
                    stored.remove(KMS_CEK_ALG_KEY);
                    if &stored != expected {
                        return Err(Error::Context(format!(
                            "the object was encrypted with context {} but {} was given",
                            crate::envelope::context_json(&stored),
                            crate::envelope::context_json(expected)
                        )));
                    }
                }
            }
            WrapAlgorithm::Kms => {
                if expected.is_some_and(|e| !e.is_empty()) {
                    return Err(Error::Context(
                        "the legacy kms wrap has no user encryption context; do not pass --context".into(),
                    ));
                }
            }
            other => {
                return Err(Error::WrongKey(format!(
                    "the object's data key is wrapped with {}, not by KMS (use --master-key or --rsa-key)",
                    other.name()
                )));
            }
        }
        Ok(KmsDecryptRequest { ciphertext_blob: self.encrypted_key.clone(), context: self.context.clone() })
    }

    /// Whether this object's modes are refused unless legacy modes are allowed.
    pub fn legacy_reason(&self) -> Option<String> {
        if self.content.is_legacy() {
            return Some(format!("content encrypted with {} ({:?} envelope)", self.content.name(), self.version));
        }
        if self.wrap.is_legacy_unauthenticated() {
            return Some(format!("data key wrapped with {}", self.wrap.name()));
        }
        None
    }

    /// Refuses legacy modes unless `allow_legacy`.
    pub fn check_policy(&self, allow_legacy: bool) -> Result<()> {
        match self.legacy_reason() {
            Some(reason) if !allow_legacy => Err(Error::Legacy(reason)),
            _ if self.version == Version::V1 && !allow_legacy => Err(Error::Legacy("v1 envelope".into())),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RSA_2048_PKCS8: &str = include_str!("../testdata/rsa-2048.pkcs8.pem");
    const RSA_2048_PKCS1: &str = include_str!("../testdata/rsa-2048.pkcs1.pem");
    const RSA_2048_PUBLIC: &str = include_str!("../testdata/rsa-2048.public.pem");
    const RSA_2048_PUBLIC_PKCS1: &str = include_str!("../testdata/rsa-2048.public-pkcs1.pem");

    fn envelope(wrap: WrapAlgorithm, content: ContentCipher, edk: Vec<u8>) -> Envelope {
        Envelope {
            version: Version::V2,
            content,
            wrap,
            encrypted_key: edk,
            iv: vec![0; 12],
            message_id: None,
            commitment: None,
            context: Context::new(),
            plaintext_length: None,
            from_instruction_file: false,
        }
    }

    #[test]
    fn aes_key_files_are_raw_or_base64() {
        let raw = [0x42u8; 32];
        assert!(matches!(MasterKey::aes_from_file_contents(&raw), Ok(MasterKey::Aes(k)) if *k == raw));
        let text = format!("{}\n", BASE64.encode(raw));
        assert!(matches!(MasterKey::aes_from_file_contents(text.as_bytes()), Ok(MasterKey::Aes(k)) if *k == raw));
        assert!(matches!(MasterKey::aes_from_file_contents(&[1u8; 31]), Err(Error::KeyFile(_))));
        assert!(matches!(
            MasterKey::aes_from_file_contents(BASE64.encode([1u8; 16]).as_bytes()),
            Err(Error::KeyFile(_))
        ));
    }

    #[test]
    fn aes_gcm_wrap_round_trips_and_binds_the_cipher_name() {
        let master = MasterKey::aes_from_file_contents(&[9u8; 32]).expect("key");
        let data_key = DataKey::random().expect("random");
        let edk = master.wrap(&data_key, ContentCipher::AesGcm).expect("wrap");
        assert_eq!(edk.len(), 60);
        let opened =
            master.unwrap(&envelope(WrapAlgorithm::AesGcm, ContentCipher::AesGcm, edk.clone())).expect("unwrap");
        assert_eq!(opened.expose(), data_key.expose());
        let relabelled = envelope(WrapAlgorithm::AesGcm, ContentCipher::AesGcmCommitting, edk);
        assert!(matches!(master.unwrap(&relabelled), Err(Error::WrongKey(_))));
        let other = MasterKey::aes_from_file_contents(&[8u8; 32]).expect("key");
        let edk = master.wrap(&data_key, ContentCipher::AesGcm).expect("wrap");
        assert!(matches!(
            other.unwrap(&envelope(WrapAlgorithm::AesGcm, ContentCipher::AesGcm, edk)),
            Err(Error::WrongKey(_))
        ));
    }

    #[test]
    fn rsa_pem_forms_are_read_and_the_public_half_encrypts() {
        let pkcs8 = MasterKey::rsa_from_pem(RSA_2048_PKCS8.as_bytes()).expect("pkcs8");
        let pkcs1 = MasterKey::rsa_from_pem(RSA_2048_PKCS1.as_bytes()).expect("pkcs1");
        let public = MasterKey::rsa_from_pem(RSA_2048_PUBLIC.as_bytes()).expect("spki");
        let public_pkcs1 = MasterKey::rsa_from_pem(RSA_2048_PUBLIC_PKCS1.as_bytes()).expect("pkcs1 public");
        assert!(matches!(public, MasterKey::RsaPublic(_)));
        let data_key = DataKey::random().expect("random");
        for writer in [&pkcs8, &pkcs1, &public, &public_pkcs1] {
            let edk = writer.wrap(&data_key, ContentCipher::AesGcm).expect("wrap");
            for reader in [&pkcs8, &pkcs1] {
                let opened = reader
                    .unwrap(&envelope(WrapAlgorithm::RsaOaepSha1, ContentCipher::AesGcm, edk.clone()))
                    .expect("unwrap");
                assert_eq!(opened.expose(), data_key.expose());
            }
            let refused = public.unwrap(&envelope(WrapAlgorithm::RsaOaepSha1, ContentCipher::AesGcm, edk));
            assert!(matches!(refused, Err(Error::WrongKey(_))));
        }
    }

    #[test]
    fn rsa_label_must_match_the_content_cipher() {
        let key = MasterKey::rsa_from_pem(RSA_2048_PKCS8.as_bytes()).expect("pkcs8");
        let edk = key.wrap(&DataKey::random().expect("random"), ContentCipher::AesGcm).expect("wrap");
        let as_cbc = envelope(WrapAlgorithm::RsaOaepSha1, ContentCipher::AesCbc, edk);
        assert!(matches!(key.unwrap(&as_cbc), Err(Error::Malformed(_))));
    }

    #[test]
    fn kms_context_carries_the_reserved_key_and_is_checked_on_read() {
        let user: Context = [("team".to_owned(), "blue".to_owned())].into();
        let context = kms_encryption_context(ContentCipher::AesGcm, &user).expect("context");
        assert_eq!(context.get(KMS_CEK_ALG_KEY).map(String::as_str), Some("AES/GCM/NoPadding"));
        let reserved: Context = [("aws:x".to_owned(), "1".to_owned())].into();
        assert!(matches!(kms_encryption_context(ContentCipher::AesGcm, &reserved), Err(Error::Context(_))));

        let mut stored = envelope(WrapAlgorithm::KmsContext, ContentCipher::AesGcm, vec![1, 2, 3]);
        stored.context = context;
        assert_eq!(stored.kms_decrypt_request(None).expect("request").ciphertext_blob, vec![1, 2, 3]);
        assert!(stored.kms_decrypt_request(Some(&user)).is_ok());
        assert!(matches!(stored.kms_decrypt_request(Some(&Context::new())), Err(Error::Context(_))));
        // The content algorithm and the context must agree.
        stored.content = ContentCipher::AesCbc;
        assert!(matches!(stored.kms_decrypt_request(None), Err(Error::Context(_))));
    }

    #[test]
    fn legacy_modes_are_refused_unless_allowed() {
        let cbc = envelope(WrapAlgorithm::Kms, ContentCipher::AesCbc, vec![1]);
        assert!(matches!(cbc.check_policy(false), Err(Error::Legacy(_))));
        assert!(cbc.check_policy(true).is_ok());
        let mut v1 = envelope(WrapAlgorithm::LegacyImplicit, ContentCipher::AesCbc, vec![1]);
        v1.version = Version::V1;
        assert!(matches!(v1.check_policy(false), Err(Error::Legacy(_))));
        let gcm_legacy_kms = envelope(WrapAlgorithm::Kms, ContentCipher::AesGcm, vec![1]);
        assert!(gcm_legacy_kms.check_policy(false).is_ok());
    }

    #[test]
    fn data_keys_do_not_print() {
        let key = DataKey::from_slice(&[0xab; 32]).expect("key");
        assert_eq!(format!("{key:?}"), "DataKey([redacted])");
        let master = MasterKey::aes_from_file_contents(&[0xcd; 32]).expect("key");
        assert!(!format!("{master:?}").contains("205"));
    }
}
