//! The envelope: what an encrypted object's metadata (or its instruction file)
//! says about how to decrypt it, in the S3 Encryption Client formats v1, v2 and
//! v3. Parsing is strict (a confused or contradictory envelope is refused, as
//! format-confusion attacks go through exactly such mixtures); writing produces
//! only v2 and v3. Byte layouts: `docs/design/cse.md`.
//!
//! Keys are user-metadata names without the `x-amz-meta-` prefix, lower case.

use std::collections::BTreeMap;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;

use crate::error::{Error, Result};
use crate::gcm::IV_LEN;
use crate::suite::{COMMITMENT_LEN, ContentCipher, GCM_CIPHER_NAME, MESSAGE_ID_LEN};

/// Object metadata or instruction-file entries: name → value.
pub type Metadata = BTreeMap<String, String>;
/// A material description or KMS encryption context.
pub type Context = BTreeMap<String, String>;

pub const KEY_V1: &str = "x-amz-key";
pub const KEY_V2: &str = "x-amz-key-v2";
pub const IV: &str = "x-amz-iv";
pub const MATDESC: &str = "x-amz-matdesc";
pub const WRAP_ALG: &str = "x-amz-wrap-alg";
pub const CEK_ALG: &str = "x-amz-cek-alg";
pub const TAG_LEN: &str = "x-amz-tag-len";
pub const UNENCRYPTED_LENGTH: &str = "x-amz-unencrypted-content-length";
pub const INSTRUCTION_FILE_MARKER: &str = "x-amz-crypto-instr-file";
pub const V3_CONTENT_CIPHER: &str = "x-amz-c";
pub const V3_KEY: &str = "x-amz-3";
pub const V3_MATDESC: &str = "x-amz-m";
pub const V3_KMS_CONTEXT: &str = "x-amz-t";
pub const V3_WRAP_ALG: &str = "x-amz-w";
pub const V3_COMMITMENT: &str = "x-amz-d";
pub const V3_MESSAGE_ID: &str = "x-amz-i";

/// The suffix of an instruction file's key.
pub const INSTRUCTION_SUFFIX: &str = ".instruction";
/// Largest instruction file read (they hold a few hundred bytes).
pub const INSTRUCTION_FILE_BYTES_MAX: usize = 64 * 1024;
/// Largest encrypted data key accepted (RSA-8192 is 1024 bytes, a KMS blob ≤ 6144).
pub const ENCRYPTED_KEY_BYTES_MAX: usize = 8 * 1024;
/// Largest material description / context, as JSON text.
pub const CONTEXT_BYTES_MAX: usize = 8 * 1024;

/// Every key an S3 Encryption Client may write into an instruction file.
const INSTRUCTION_KEYS: [&str; 15] = [
    KEY_V1,
    KEY_V2,
    WRAP_ALG,
    MATDESC,
    IV,
    CEK_ALG,
    TAG_LEN,
    INSTRUCTION_FILE_MARKER,
    V3_CONTENT_CIPHER,
    V3_KEY,
    V3_MATDESC,
    V3_KMS_CONTEXT,
    V3_WRAP_ALG,
    V3_COMMITMENT,
    V3_MESSAGE_ID,
];
/// v3 keys that live only in object metadata, never in the instruction file.
const V3_OBJECT_ONLY: [&str; 3] = [V3_CONTENT_CIPHER, V3_COMMITMENT, V3_MESSAGE_ID];

/// The envelope's format version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    V1,
    V2,
    V3,
}

/// A format this client writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `x-amz-key-v2` …, AES/GCM/NoPadding: readable by every current client.
    V2,
    /// `x-amz-3` …, suite 0x0073 with key commitment.
    V3,
}

impl Format {
    pub fn content_cipher(self) -> ContentCipher {
        match self {
            Format::V2 => ContentCipher::AesGcm,
            Format::V3 => ContentCipher::AesGcmCommitting,
        }
    }
}

/// How the data key is wrapped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WrapAlgorithm {
    /// AES-256-GCM under the master key; EDK = iv ‖ ct ‖ tag, AAD = cipher name.
    AesGcm,
    /// KMS GenerateDataKey with the context + `aws:x-amz-cek-alg`.
    KmsContext,
    /// RSA-OAEP (SHA-1, MGF1-SHA1) over `len ‖ key ‖ cipher name`.
    RsaOaepSha1,
    /// Legacy KMS (context `{"kms_cmk_id": id}`), decrypt only.
    Kms,
    /// Legacy RFC 3394 AES key wrap, decrypt only.
    AesWrap,
    /// Legacy RSA-OAEP with SHA-256, decrypt only.
    RsaOaepSha256,
    /// v1 without `x-amz-wrap-alg`: AES/ECB (AES key) or RSA PKCS#1 v1.5 (RSA key).
    LegacyImplicit,
}

impl WrapAlgorithm {
    /// The v1/v2 name (`x-amz-wrap-alg`).
    pub fn name(self) -> &'static str {
        match self {
            WrapAlgorithm::AesGcm => "AES/GCM",
            WrapAlgorithm::KmsContext => "kms+context",
            WrapAlgorithm::RsaOaepSha1 => "RSA-OAEP-SHA1",
            WrapAlgorithm::Kms => "kms",
            WrapAlgorithm::AesWrap => "AESWrap",
            WrapAlgorithm::RsaOaepSha256 => "RSA/ECB/OAEPWithSHA-256AndMGF1Padding",
            WrapAlgorithm::LegacyImplicit => "(v1 implicit: AES/ECB or RSA/PKCS1)",
        }
    }

    fn from_name(name: &str) -> Result<WrapAlgorithm> {
        Ok(match name {
            "AES/GCM" => WrapAlgorithm::AesGcm,
            "kms+context" => WrapAlgorithm::KmsContext,
            "RSA-OAEP-SHA1" => WrapAlgorithm::RsaOaepSha1,
            "kms" => WrapAlgorithm::Kms,
            "AESWrap" => WrapAlgorithm::AesWrap,
            "RSA/ECB/OAEPWithSHA-256AndMGF1Padding" => WrapAlgorithm::RsaOaepSha256,
            "AES" | "RSA" => WrapAlgorithm::LegacyImplicit,
            other => return Err(Error::Unsupported(format!("key wrapping algorithm {other:?}"))),
        })
    }

    /// The v3 code (`x-amz-w`); only current algorithms have one.
    pub fn v3_code(self) -> Option<&'static str> {
        match self {
            WrapAlgorithm::AesGcm => Some("02"),
            WrapAlgorithm::KmsContext => Some("12"),
            WrapAlgorithm::RsaOaepSha1 => Some("22"),
            _ => None,
        }
    }

    fn from_v3_code(code: &str) -> Result<WrapAlgorithm> {
        match code {
            "02" => Ok(WrapAlgorithm::AesGcm),
            "12" => Ok(WrapAlgorithm::KmsContext),
            "22" => Ok(WrapAlgorithm::RsaOaepSha1),
            other => Err(Error::Malformed(format!("unknown v3 wrapping algorithm x-amz-w = {other:?}"))),
        }
    }

    pub fn is_kms(self) -> bool {
        matches!(self, WrapAlgorithm::KmsContext | WrapAlgorithm::Kms)
    }

    /// Wraps that are unauthenticated or malleable (AES/ECB, RSA PKCS#1 v1.5).
    pub fn is_legacy_unauthenticated(self) -> bool {
        self == WrapAlgorithm::LegacyImplicit
    }
}

/// A decoded, validated envelope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    pub version: Version,
    pub content: ContentCipher,
    pub wrap: WrapAlgorithm,
    pub encrypted_key: Vec<u8>,
    /// Content IV: 12 bytes (GCM), 16 (CBC), none for v3 (fixed IV).
    pub iv: Vec<u8>,
    pub message_id: Option<[u8; MESSAGE_ID_LEN]>,
    pub commitment: Option<[u8; COMMITMENT_LEN]>,
    /// Material description (raw keys) or KMS encryption context (KMS wraps).
    pub context: Context,
    pub plaintext_length: Option<u64>,
    /// Whether the key material came from `<key>.instruction`.
    pub from_instruction_file: bool,
}

/// Where the envelope of an object is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Location {
    /// Entirely in the object metadata.
    Metadata,
    /// (Partly) in `<key>.instruction`.
    InstructionFile,
}

impl Envelope {
    /// Where to find the envelope: an object whose metadata holds no encrypted
    /// data key must be read with its instruction file (which may not exist:
    /// then the object is not encrypted).
    pub fn locate(metadata: &Metadata) -> Result<Location> {
        let keys = [KEY_V1, KEY_V2, V3_KEY].iter().filter(|k| metadata.contains_key(**k)).count();
        match keys {
            0 => Ok(Location::InstructionFile),
            1 => Ok(Location::Metadata),
            _ => Err(Error::Malformed("metadata holds encrypted data keys of more than one format version".into())),
        }
    }

    /// Decodes an envelope held entirely in object metadata.
    pub fn from_metadata(metadata: &Metadata) -> Result<Envelope> {
        if Envelope::locate(metadata)? == Location::InstructionFile {
            return Err(Error::NotEncrypted);
        }
        decode(metadata, false)
    }

    /// Decodes an envelope from object metadata plus the body of its instruction
    /// file (a JSON object of S3EC keys).
    pub fn from_instruction_file(metadata: &Metadata, instruction: &[u8]) -> Result<Envelope> {
        if instruction.len() > INSTRUCTION_FILE_BYTES_MAX {
            return Err(Error::Malformed(format!("instruction file larger than {INSTRUCTION_FILE_BYTES_MAX} bytes")));
        }
        let entries = parse_instruction(instruction)?;
        if let Some(key) = V3_OBJECT_ONLY.iter().find(|k| entries.contains_key(**k)) {
            return Err(Error::Malformed(format!(
                "instruction file holds {key}, which belongs in the object metadata (tampered?)"
            )));
        }
        let object_has_v12_content =
            [CEK_ALG, IV, WRAP_ALG, KEY_V1, KEY_V2, V3_KEY].iter().any(|k| metadata.contains_key(*k));
        if object_has_v12_content {
            return Err(Error::Malformed(
                "both the object metadata and the instruction file carry key material (tampered?)".into(),
            ));
        }
        let mut merged = entries;
        for key in V3_OBJECT_ONLY.iter().chain([UNENCRYPTED_LENGTH].iter()) {
            if let Some(value) = metadata.get(*key) {
                merged.insert((*key).to_owned(), value.clone());
            }
        }
        if Envelope::locate(&merged)? == Location::InstructionFile {
            return Err(Error::Malformed("the instruction file holds no encrypted data key".into()));
        }
        decode(&merged, true)
    }

    /// The metadata and, if asked for, the instruction file that store this
    /// envelope. Only v2 and v3 envelopes with GCM content are written.
    pub fn to_storage(&self, instruction_file: bool) -> Result<Stored> {
        let mut key_entries = Metadata::new();
        let mut object = Metadata::new();
        match self.version {
            Version::V2 => {
                if self.content != ContentCipher::AesGcm {
                    return Err(Error::Unsupported("writing v2 with content other than AES/GCM".into()));
                }
                key_entries.insert(KEY_V2.into(), BASE64.encode(&self.encrypted_key));
                key_entries.insert(IV.into(), BASE64.encode(&self.iv));
                key_entries.insert(CEK_ALG.into(), GCM_CIPHER_NAME.into());
                key_entries.insert(TAG_LEN.into(), "128".into());
                key_entries.insert(WRAP_ALG.into(), self.wrap.name().into());
                key_entries.insert(MATDESC.into(), context_json(&self.context));
                if let Some(length) = self.plaintext_length {
                    object.insert(UNENCRYPTED_LENGTH.into(), length.to_string());
                }
            }
            Version::V3 => {
                let (Some(message_id), Some(commitment)) = (self.message_id, self.commitment) else {
                    return Err(Error::Malformed("a v3 envelope needs a message id and a commitment".into()));
                };
                let code = self
                    .wrap
                    .v3_code()
                    .ok_or_else(|| Error::Unsupported(format!("{} in a v3 envelope", self.wrap.name())))?;
                object.insert(V3_CONTENT_CIPHER.into(), ContentCipher::AesGcmCommitting.name().into());
                object.insert(V3_COMMITMENT.into(), BASE64.encode(commitment));
                object.insert(V3_MESSAGE_ID.into(), BASE64.encode(message_id));
                key_entries.insert(V3_KEY.into(), BASE64.encode(&self.encrypted_key));
                key_entries.insert(V3_WRAP_ALG.into(), code.into());
                let context_key = if self.wrap.is_kms() { V3_KMS_CONTEXT } else { V3_MATDESC };
                if !self.context.is_empty() {
                    key_entries.insert(context_key.into(), context_json(&self.context));
                }
            }
            Version::V1 => return Err(Error::Unsupported("writing v1 envelopes".into())),
        }
        if !instruction_file {
            object.extend(key_entries);
            return Ok(Stored { metadata: object, instruction_file: None });
        }
        let body = serde_json::to_vec(&key_entries).map_err(|e| Error::Malformed(e.to_string()))?;
        Ok(Stored { metadata: object, instruction_file: Some(body) })
    }
}

/// How an envelope is stored: object metadata, and the instruction file's body
/// (to be stored as `<key>.instruction` with metadata `x-amz-crypto-instr-file: ""`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    pub metadata: Metadata,
    pub instruction_file: Option<Vec<u8>>,
}

fn decode(metadata: &Metadata, from_instruction_file: bool) -> Result<Envelope> {
    let mut envelope = if metadata.contains_key(V3_KEY) {
        decode_v3(metadata)?
    } else if metadata.contains_key(KEY_V2) {
        reject_foreign(metadata, &[V3_CONTENT_CIPHER, V3_COMMITMENT, V3_MESSAGE_ID, V3_WRAP_ALG], "v2")?;
        decode_v12(metadata, Version::V2)?
    } else {
        reject_foreign(metadata, &[V3_CONTENT_CIPHER, V3_COMMITMENT, V3_MESSAGE_ID, V3_WRAP_ALG], "v1")?;
        decode_v12(metadata, Version::V1)?
    };
    envelope.from_instruction_file = from_instruction_file;
    envelope.plaintext_length = match metadata.get(UNENCRYPTED_LENGTH) {
        Some(text) => {
            Some(text.trim().parse().map_err(|_| Error::Malformed(format!("{UNENCRYPTED_LENGTH} = {text:?}")))?)
        }
        None => None,
    };
    Ok(envelope)
}

fn reject_foreign(metadata: &Metadata, keys: &[&str], version: &str) -> Result<()> {
    match keys.iter().find(|k| metadata.contains_key(**k)) {
        Some(key) => Err(Error::Malformed(format!("a {version} envelope also carries {key} (format confusion)"))),
        None => Ok(()),
    }
}

fn decode_v12(metadata: &Metadata, version: Version) -> Result<Envelope> {
    let key_name = if version == Version::V1 { KEY_V1 } else { KEY_V2 };
    let encrypted_key = decode_key(metadata, key_name)?;
    let iv = base64_field(metadata, IV, 16)?;
    let content = match (version, metadata.get(CEK_ALG).map(String::as_str)) {
        (Version::V1, None) => ContentCipher::AesCbc,
        (_, Some("AES/GCM/NoPadding")) => ContentCipher::AesGcm,
        (_, Some("AES/CBC/PKCS5Padding" | "AES/CBC/PKCS7Padding")) => ContentCipher::AesCbc,
        (_, Some(other)) => return Err(Error::Unsupported(format!("content algorithm x-amz-cek-alg = {other:?}"))),
        (_, None) => return Err(Error::Malformed("a v2 envelope without x-amz-cek-alg".into())),
    };
    let iv_len = if content == ContentCipher::AesGcm { IV_LEN } else { 16 };
    if iv.len() != iv_len {
        return Err(Error::Malformed(format!("x-amz-iv is {} bytes, {} needs {iv_len}", iv.len(), content.name())));
    }
    if content == ContentCipher::AesGcm
        && let Some(tag_len) = metadata.get(TAG_LEN)
        && tag_len.trim() != "128"
    {
        return Err(Error::Unsupported(format!("GCM tag length x-amz-tag-len = {tag_len:?}")));
    }
    let wrap = match (version, metadata.get(WRAP_ALG)) {
        (_, Some(name)) => WrapAlgorithm::from_name(name)?,
        (Version::V1, None) => WrapAlgorithm::LegacyImplicit,
        (_, None) => return Err(Error::Malformed("a v2 envelope without x-amz-wrap-alg".into())),
    };
    let context = parse_context(metadata.get(MATDESC).map(String::as_str))?;
    Ok(Envelope {
        version,
        content,
        wrap,
        encrypted_key,
        iv,
        message_id: None,
        commitment: None,
        context,
        plaintext_length: None,
        from_instruction_file: false,
    })
}

fn decode_v3(metadata: &Metadata) -> Result<Envelope> {
    reject_foreign(metadata, &[KEY_V1, KEY_V2, IV, CEK_ALG, WRAP_ALG], "v3")?;
    let cipher =
        metadata.get(V3_CONTENT_CIPHER).ok_or_else(|| Error::Malformed("a v3 envelope without x-amz-c".into()))?;
    if cipher.trim() != ContentCipher::AesGcmCommitting.name() {
        return Err(Error::Unsupported(format!("v3 content algorithm x-amz-c = {cipher:?}")));
    }
    let wrap = WrapAlgorithm::from_v3_code(
        metadata.get(V3_WRAP_ALG).ok_or_else(|| Error::Malformed("a v3 envelope without x-amz-w".into()))?.trim(),
    )?;
    let message_id: [u8; MESSAGE_ID_LEN] = fixed_field(metadata, V3_MESSAGE_ID)?;
    let commitment: [u8; COMMITMENT_LEN] = fixed_field(metadata, V3_COMMITMENT)?;
    let context_key = if wrap.is_kms() { V3_KMS_CONTEXT } else { V3_MATDESC };
    Ok(Envelope {
        version: Version::V3,
        content: ContentCipher::AesGcmCommitting,
        wrap,
        encrypted_key: decode_key(metadata, V3_KEY)?,
        iv: Vec::new(),
        message_id: Some(message_id),
        commitment: Some(commitment),
        context: parse_context(metadata.get(context_key).map(String::as_str))?,
        plaintext_length: None,
        from_instruction_file: false,
    })
}

fn decode_key(metadata: &Metadata, name: &str) -> Result<Vec<u8>> {
    let key = base64_field(metadata, name, ENCRYPTED_KEY_BYTES_MAX)?;
    if key.is_empty() {
        return Err(Error::Malformed(format!("{name} is empty")));
    }
    Ok(key)
}

fn base64_field(metadata: &Metadata, name: &str, bytes_max: usize) -> Result<Vec<u8>> {
    let text = metadata.get(name).ok_or_else(|| Error::Malformed(format!("{name} is missing")))?;
    if text.len() > bytes_max.div_ceil(3) * 4 + 4 {
        return Err(Error::Malformed(format!("{name} is longer than {bytes_max} bytes")));
    }
    let cleaned: String = text.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    BASE64.decode(cleaned.as_bytes()).map_err(|_| Error::Malformed(format!("{name} is not base64")))
}

fn fixed_field<const N: usize>(metadata: &Metadata, name: &str) -> Result<[u8; N]> {
    let bytes = base64_field(metadata, name, N)?;
    bytes.as_slice().try_into().map_err(|_| Error::Malformed(format!("{name} is {} bytes, not {N}", bytes.len())))
}

fn parse_instruction(body: &[u8]) -> Result<Metadata> {
    let value: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| Error::Malformed(format!("instruction file is not JSON: {e}")))?;
    let serde_json::Value::Object(map) = value else {
        return Err(Error::Malformed("instruction file is not a JSON object".into()));
    };
    let mut entries = Metadata::new();
    for (key, value) in map {
        if !INSTRUCTION_KEYS.contains(&key.as_str()) {
            return Err(Error::Malformed(format!("instruction file holds the foreign key {key:?}")));
        }
        let text = match value {
            serde_json::Value::String(text) => text,
            // Old writers stored the material description as a nested object.
            serde_json::Value::Object(_) if key == MATDESC || key == V3_MATDESC || key == V3_KMS_CONTEXT => {
                value.to_string()
            }
            _ => return Err(Error::Malformed(format!("instruction file value of {key} is not a string"))),
        };
        entries.insert(key, text);
    }
    Ok(entries)
}

/// Parses a material description / encryption context (JSON object of
/// strings). Absent or empty means `{}`. Values S3 returned RFC 2047-encoded
/// ("=?UTF-8?B?…?=") are decoded first.
pub fn parse_context(text: Option<&str>) -> Result<Context> {
    let Some(text) = text else { return Ok(Context::new()) };
    let decoded = decode_rfc2047(text.trim())?;
    if decoded.is_empty() {
        return Ok(Context::new());
    }
    if decoded.len() > CONTEXT_BYTES_MAX {
        return Err(Error::Malformed(format!("material description longer than {CONTEXT_BYTES_MAX} bytes")));
    }
    let value: serde_json::Value = serde_json::from_str(&decoded)
        .map_err(|e| Error::Malformed(format!("material description is not JSON: {e}")))?;
    let serde_json::Value::Object(map) = value else {
        return Err(Error::Malformed("material description is not a JSON object".into()));
    };
    map.into_iter()
        .map(|(k, v)| match v {
            serde_json::Value::String(v) => Ok((k, v)),
            _ => Err(Error::Malformed(format!("material description value of {k:?} is not a string"))),
        })
        .collect()
}

fn decode_rfc2047(text: &str) -> Result<String> {
    let lower = text.to_ascii_lowercase();
    if !(lower.starts_with("=?utf-8?b?") && text.ends_with("?=")) {
        return Ok(text.to_owned());
    }
    let payload = &text["=?utf-8?b?".len()..text.len() - 2];
    let bytes = BASE64.decode(payload).map_err(|_| Error::Malformed("bad RFC 2047 encoded metadata".into()))?;
    String::from_utf8(bytes).map_err(|_| Error::Malformed("RFC 2047 encoded metadata is not UTF-8".into()))
}

/// A context as compact JSON with sorted keys.
pub fn context_json(context: &Context) -> String {
    serde_json::to_string(context).unwrap_or_else(|_| "{}".to_owned())
}

/// Converts metadata as an SDK returns it (any map) into [`Metadata`].
pub fn metadata_from<'a>(entries: impl IntoIterator<Item = (&'a String, &'a String)>) -> Metadata {
    entries.into_iter().map(|(k, v)| (k.to_ascii_lowercase(), v.clone())).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(entries: &[(&str, &str)]) -> Metadata {
        entries.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    fn v2_entries() -> Vec<(&'static str, &'static str)> {
        vec![
            (KEY_V2, "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8gISIjJCUmJygpKissLS4vMDEyMzQ1Njc4OTo7"),
            (IV, "AAAAAAAAAAAAAAAA"),
            (CEK_ALG, "AES/GCM/NoPadding"),
            (TAG_LEN, "128"),
            (WRAP_ALG, "AES/GCM"),
            (MATDESC, "{}"),
        ]
    }

    #[test]
    fn v2_metadata_decodes() {
        let envelope = Envelope::from_metadata(&meta(&v2_entries())).expect("v2");
        assert_eq!(envelope.version, Version::V2);
        assert_eq!(envelope.content, ContentCipher::AesGcm);
        assert_eq!(envelope.wrap, WrapAlgorithm::AesGcm);
        assert_eq!(envelope.iv, vec![0u8; 12]);
        assert_eq!(envelope.encrypted_key.len(), 60);
    }

    #[test]
    fn keys_of_two_versions_are_refused() {
        let mut entries = v2_entries();
        entries.push((KEY_V1, "AAAA"));
        assert!(matches!(Envelope::from_metadata(&meta(&entries)), Err(Error::Malformed(_))));
        let mut entries = v2_entries();
        entries.push((V3_COMMITMENT, "AAAA"));
        assert!(matches!(Envelope::from_metadata(&meta(&entries)), Err(Error::Malformed(_))));
    }

    #[test]
    fn v1_metadata_is_cbc_with_an_implicit_wrap() {
        let entries = [(KEY_V1, "AAAAAAAAAAAAAAAAAAAAAA=="), (IV, "AAAAAAAAAAAAAAAAAAAAAA=="), (MATDESC, "{}")];
        let envelope = Envelope::from_metadata(&meta(&entries)).expect("v1");
        assert_eq!(envelope.version, Version::V1);
        assert_eq!(envelope.content, ContentCipher::AesCbc);
        assert_eq!(envelope.wrap, WrapAlgorithm::LegacyImplicit);
    }

    #[test]
    fn metadata_without_a_key_points_at_the_instruction_file() {
        assert_eq!(Envelope::locate(&meta(&[("other", "x")])).expect("locate"), Location::InstructionFile);
        assert!(matches!(Envelope::from_metadata(&meta(&[])), Err(Error::NotEncrypted)));
    }

    #[test]
    fn v2_instruction_file_decodes() {
        let body = serde_json::to_vec(&meta(&v2_entries())).expect("json");
        let envelope = Envelope::from_instruction_file(&meta(&[(UNENCRYPTED_LENGTH, "5")]), &body).expect("v2");
        assert!(envelope.from_instruction_file);
        assert_eq!(envelope.plaintext_length, Some(5));
        assert_eq!(envelope.wrap, WrapAlgorithm::AesGcm);
    }

    #[test]
    fn v3_instruction_file_takes_content_keys_from_metadata() {
        let object = meta(&[
            (V3_CONTENT_CIPHER, "115"),
            (V3_COMMITMENT, "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=="),
            (V3_MESSAGE_ID, "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQ=="),
        ]);
        let body = br#"{"x-amz-3":"AAECAw==","x-amz-w":"02","x-amz-m":"{\"purpose\":\"test\"}"}"#;
        let envelope = Envelope::from_instruction_file(&object, body).expect("v3");
        assert_eq!(envelope.version, Version::V3);
        assert_eq!(envelope.wrap, WrapAlgorithm::AesGcm);
        assert_eq!(envelope.message_id, Some([1u8; 28]));
        assert_eq!(envelope.context.get("purpose").map(String::as_str), Some("test"));
    }

    #[test]
    fn instruction_files_that_smuggle_keys_are_refused() {
        let with_commitment = br#"{"x-amz-3":"AAECAw==","x-amz-w":"02","x-amz-d":"AAAA"}"#;
        assert!(matches!(Envelope::from_instruction_file(&meta(&[]), with_commitment), Err(Error::Malformed(_))));
        let foreign = br#"{"x-amz-key-v2":"AAECAw==","evil":"1"}"#;
        assert!(matches!(Envelope::from_instruction_file(&meta(&[]), foreign), Err(Error::Malformed(_))));
        // A v2 key in the instruction file next to v3 content keys in the object.
        let body = serde_json::to_vec(&meta(&v2_entries())).expect("json");
        let object = meta(&[(V3_CONTENT_CIPHER, "115")]);
        assert!(matches!(Envelope::from_instruction_file(&object, &body), Err(Error::Malformed(_))));
        assert!(matches!(Envelope::from_instruction_file(&meta(&[]), b"[1]"), Err(Error::Malformed(_))));
    }

    #[test]
    fn v3_storage_round_trips_through_metadata_and_instruction_file() {
        let envelope = Envelope {
            version: Version::V3,
            content: ContentCipher::AesGcmCommitting,
            wrap: WrapAlgorithm::KmsContext,
            encrypted_key: vec![5; 40],
            iv: Vec::new(),
            message_id: Some([7; 28]),
            commitment: Some([8; 28]),
            context: meta(&[("aws:x-amz-cek-alg", "115"), ("team", "a")]),
            plaintext_length: None,
            from_instruction_file: false,
        };
        let stored = envelope.to_storage(false).expect("store");
        assert_eq!(stored.metadata.get(V3_WRAP_ALG).map(String::as_str), Some("12"));
        assert!(stored.metadata.contains_key(V3_KMS_CONTEXT));
        assert_eq!(Envelope::from_metadata(&stored.metadata).expect("decode"), envelope);

        let stored = envelope.to_storage(true).expect("store");
        assert!(!stored.metadata.contains_key(V3_KEY));
        let body = stored.instruction_file.expect("instruction file");
        let decoded = Envelope::from_instruction_file(&stored.metadata, &body).expect("decode");
        assert_eq!(Envelope { from_instruction_file: false, ..decoded }, envelope);
    }

    #[test]
    fn rfc2047_encoded_contexts_are_decoded() {
        let context = parse_context(Some("=?UTF-8?B?eyJrIjoidsOkbCJ9?=")).expect("decode");
        assert_eq!(context.get("k").map(String::as_str), Some("väl"));
        assert!(parse_context(Some("")).expect("empty").is_empty());
        assert!(matches!(parse_context(Some(r#"{"k":1}"#)), Err(Error::Malformed(_))));
    }
}
