//! Server-side encryption of object data (D7): creating and opening the
//! per-object key. SSE-C for now; SSE-S3 and SSE-KMS seal the same object key
//! under KMS-held keys (issue 8) and reuse everything else.

use base64::Engine;
use bulwark_crypto::{Key32, SealedKey};

use crate::meta::EncryptionRecord;
use crate::{Encryption, Error, Result};

pub(crate) const SCHEME_SSE_C: &str = "SSE-C";

/// What an object key is bound to when sealed: scheme and object name, so a
/// sealed key copied onto another object does not open.
fn context(scheme: &str, bucket: &str, key: &str) -> Vec<u8> {
    format!("{scheme}\0{bucket}\0{key}").into_bytes()
}

fn hex32(value: &str) -> Result<[u8; 32]> {
    hex::decode(value)
        .ok()
        .and_then(|v| v.try_into().ok())
        .ok_or_else(|| Error::Internal("stored encryption record is malformed".into()))
}

/// A fresh object key for a new object (or upload), sealed for storage.
pub(crate) fn new_object_key(request: &Encryption, bucket: &str, key: &str) -> Result<(EncryptionRecord, Key32)> {
    let object_key = Key32::random().map_err(|e| Error::Internal(e.to_string()))?;
    match request {
        Encryption::CustomerKey { key: customer, key_md5 } => {
            let sealed = bulwark_crypto::seal_key(customer, &context(SCHEME_SSE_C, bucket, key), &object_key)
                .map_err(|e| Error::Internal(e.to_string()))?;
            let mac_salt = bulwark_crypto::random_array::<32>().map_err(|e| Error::Internal(e.to_string()))?;
            let mac = bulwark_crypto::key_mac(customer, &mac_salt);
            let record = EncryptionRecord {
                scheme: SCHEME_SSE_C.to_owned(),
                key_mac_salt: Some(hex::encode(mac_salt)),
                key_mac: Some(hex::encode(mac)),
                seal_salt: hex::encode(sealed.salt),
                seal_nonce: hex::encode(sealed.nonce),
                sealed_key: hex::encode(&sealed.ciphertext),
                key_md5: Some(key_md5.clone()),
            };
            Ok((record, object_key))
        }
    }
}

/// Checks that `provided` is the customer key the object was written with
/// (constant time, against the stored salted HMAC).
pub(crate) fn check_customer_key(record: &EncryptionRecord, provided: Option<&Encryption>) -> Result<()> {
    if record.scheme != SCHEME_SSE_C {
        if provided.is_some() {
            return Err(Error::SseCNotApplicable("the object is not encrypted with a customer key".into()));
        }
        return Ok(());
    }
    let Some(Encryption::CustomerKey { key: customer, .. }) = provided else {
        return Err(Error::SseCKeyRequired);
    };
    let salt = hex32(record.key_mac_salt.as_deref().unwrap_or_default())?;
    let mac = hex::decode(record.key_mac.as_deref().unwrap_or_default()).unwrap_or_default();
    if bulwark_crypto::verify_key_mac(customer, &salt, &mac) { Ok(()) } else { Err(Error::SseCKeyMismatch) }
}

/// Recognises the key and unseals the object key.
pub(crate) fn open_object_key(
    record: &EncryptionRecord,
    bucket: &str,
    key: &str,
    provided: Option<&Encryption>,
) -> Result<Key32> {
    check_customer_key(record, provided)?;
    let Some(Encryption::CustomerKey { key: customer, .. }) = provided else {
        return Err(Error::SseCKeyRequired);
    };
    let nonce: [u8; 12] = hex::decode(&record.seal_nonce)
        .ok()
        .and_then(|v| v.try_into().ok())
        .ok_or_else(|| Error::Internal("stored encryption record is malformed".into()))?;
    let sealed = SealedKey {
        salt: hex32(&record.seal_salt)?,
        nonce,
        ciphertext: hex::decode(&record.sealed_key).map_err(|_| Error::Internal("sealed key is malformed".into()))?,
    };
    bulwark_crypto::unseal_key(customer, &context(&record.scheme, bucket, key), &sealed)
        .map_err(|_| Error::SseCKeyMismatch)
}

/// Data reads of unencrypted objects refuse SSE-C parameters, as S3 does.
pub(crate) fn refuse_key_for_plain(provided: Option<&Encryption>) -> Result<()> {
    match provided {
        Some(_) => Err(Error::SseCNotApplicable("The encryption parameters are not applicable to this object.".into())),
        None => Ok(()),
    }
}

/// A random ETag for encrypted objects: never the MD5 of the plaintext.
pub(crate) fn random_etag() -> Result<String> {
    bulwark_crypto::random_array::<16>().map(hex::encode).map_err(|e| Error::Internal(e.to_string()))
}

/// Base64 MD5 of a customer key, for comparing with `…-key-MD5` headers.
pub fn key_md5(key: &Key32) -> String {
    use md5::Digest;
    base64::engine::general_purpose::STANDARD.encode(md5::Md5::digest(key.expose()))
}
