//! Server-side encryption of object data (D7): creating and opening the
//! per-object key. One mechanism for all three schemes: a fresh random
//! object key encrypts the data; it is sealed under a key-encryption key —
//! the customer's key (SSE-C), or a data key from the KMS (SSE-S3, SSE-KMS)
//! whose KMS ciphertext is stored beside it. Rewrapping re-encrypts only
//! that KMS ciphertext; the sealed object key and the data stay.

use base64::Engine;
use bulwark_crypto::{Key32, SealedKey};

use crate::meta::EncryptionRecord;
use crate::{Encryption, Error, Result};

pub(crate) const SCHEME_SSE_C: &str = "SSE-C";
pub(crate) const SCHEME_SSE_S3: &str = "SSE-S3";
pub(crate) const SCHEME_SSE_KMS: &str = "SSE-KMS";

use base64::engine::general_purpose::STANDARD as B64;

/// The managed scheme of a record, if it is SSE-S3 or SSE-KMS.
pub(crate) fn managed_scheme(record: &EncryptionRecord) -> Option<crate::ManagedScheme> {
    match record.scheme.as_str() {
        SCHEME_SSE_S3 => Some(crate::ManagedScheme::SseS3),
        SCHEME_SSE_KMS => Some(crate::ManagedScheme::SseKms),
        _ => None,
    }
}

/// What clients are told about a record's SSE-S3/SSE-KMS encryption.
pub(crate) fn summary(record: &EncryptionRecord) -> Option<crate::SseSummary> {
    Some(crate::SseSummary {
        scheme: managed_scheme(record)?,
        key_arn: record.kms_key_arn.clone(),
        context: record.kms_context.clone(),
        bucket_key: record.bucket_key,
    })
}

fn sealed_of(record: &EncryptionRecord) -> Result<SealedKey> {
    let nonce: [u8; 12] = hex::decode(&record.seal_nonce)
        .ok()
        .and_then(|v| v.try_into().ok())
        .ok_or_else(|| Error::Internal("stored encryption record is malformed".into()))?;
    Ok(SealedKey {
        salt: hex32(&record.seal_salt)?,
        nonce,
        ciphertext: hex::decode(&record.sealed_key).map_err(|_| Error::Internal("sealed key is malformed".into()))?,
    })
}

/// Opens the object key of any scheme: SSE-C with the key the request
/// provided, SSE-S3/SSE-KMS through the request's unwrapper (the KMS,
/// with the caller's permissions).
pub(crate) async fn open_any(
    record: &EncryptionRecord,
    bucket: &str,
    key: &str,
    provided: Option<&Encryption>,
    unwrapper: Option<&crate::Unwrapper>,
) -> Result<Key32> {
    let Some(scheme) = managed_scheme(record) else {
        return open_object_key(record, bucket, key, provided);
    };
    if provided.is_some() {
        return Err(Error::SseCNotApplicable("The encryption parameters are not applicable to this object.".into()));
    }
    let Some(unwrapper) = unwrapper else {
        return Err(Error::Internal("no key service to open a KMS-encrypted object".into()));
    };
    let wrapped = B64
        .decode(record.wrapped_key.as_deref().unwrap_or_default())
        .map_err(|_| Error::Internal("stored wrapped key is malformed".into()))?;
    let data_key = unwrapper
        .0
        .unwrap(crate::WrappedKey {
            scheme,
            wrapped: &wrapped,
            key_arn: record.kms_key_arn.as_deref(),
            context: record.kms_context.as_deref(),
            bucket,
            key,
        })
        .await?;
    bulwark_crypto::unseal_key(&data_key, &context(&record.scheme, bucket, key), &sealed_of(record)?)
        .map_err(|_| Error::Internal("the object key does not open with its data key".into()))
}

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
                wrapped_key: None,
                kms_key_arn: None,
                kms_context: None,
                bucket_key: false,
            };
            Ok((record, object_key))
        }
        Encryption::Managed(managed) => {
            let scheme = managed.scheme.name();
            let sealed = bulwark_crypto::seal_key(&managed.data_key, &context(scheme, bucket, key), &object_key)
                .map_err(|e| Error::Internal(e.to_string()))?;
            let record = EncryptionRecord {
                scheme: scheme.to_owned(),
                key_mac_salt: None,
                key_mac: None,
                seal_salt: hex::encode(sealed.salt),
                seal_nonce: hex::encode(sealed.nonce),
                sealed_key: hex::encode(&sealed.ciphertext),
                key_md5: None,
                wrapped_key: Some(B64.encode(&managed.wrapped)),
                kms_key_arn: managed.key_arn.clone(),
                kms_context: managed.context.clone(),
                bucket_key: managed.bucket_key,
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
    bulwark_crypto::unseal_key(customer, &context(&record.scheme, bucket, key), &sealed_of(record)?)
        .map_err(|_| Error::SseCKeyMismatch)
}

/// Data reads of unencrypted objects refuse SSE-C parameters, as S3 does.
pub(crate) fn refuse_key_for_plain(provided: Option<&Encryption>) -> Result<()> {
    match provided {
        Some(Encryption::Managed(_)) | None => Ok(()),
        Some(Encryption::CustomerKey { .. }) => {
            Err(Error::SseCNotApplicable("The encryption parameters are not applicable to this object.".into()))
        }
    }
}

/// A random ETag for encrypted objects: never the MD5 of the plaintext.
pub(crate) fn random_etag() -> Result<String> {
    bulwark_crypto::random_array::<16>().map(hex::encode).map_err(|e| Error::Internal(e.to_string()))
}

/// Base64 MD5 of a customer key, for comparing with `…-key-MD5` headers.
pub fn key_md5(key: &Key32) -> String {
    base64::engine::general_purpose::STANDARD.encode(bulwark_crypto::Md5::digest(key.expose()))
}
