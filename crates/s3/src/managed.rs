//! SSE-S3 and SSE-KMS: which managed encryption a write gets (request
//! headers, else the bucket's default), data keys from the built-in KMS, and
//! opening them again on reads with the caller's key permissions.

use std::collections::BTreeMap;
use std::sync::Arc;

use base64::Engine;
use bulwark_access::Caller;
use bulwark_kms::{EncryptionContext, Kms, KmsError};
use bulwark_object::{
    BucketRecord, DefaultEncryption, Encryption, KeyUnwrapper, ManagedKey, ManagedScheme, SseSummary, Unwrapper,
    WrappedKey,
};
use s3s::dto::ServerSideEncryption;
use s3s::{S3Error, S3ErrorCode, S3Result, s3_error};

pub const AES256: &str = "AES256";
pub const AWS_KMS: &str = "aws:kms";
pub const AWS_KMS_DSSE: &str = "aws:kms:dsse";

/// What a write asked for in its `x-amz-server-side-encryption*` headers.
#[derive(Debug, Default, Clone)]
pub struct SseHeaders<'a> {
    pub algorithm: Option<&'a str>,
    pub kms_key_id: Option<&'a str>,
    /// Base64 of a JSON object of strings.
    pub context: Option<&'a str>,
    pub bucket_key: Option<bool>,
    /// SSE-C headers were present too.
    pub customer_key: bool,
}

/// The S3 answer for a KMS refusal, as S3 reports it (`KMS.<Exception>`).
pub fn kms_error(e: KmsError) -> S3Error {
    let (code, status) = match &e {
        KmsError::AccessDenied(_) => ("AccessDenied".to_owned(), http::StatusCode::FORBIDDEN),
        KmsError::Internal(detail) => {
            tracing::error!(error = %detail, "KMS failure");
            return s3_error!(InternalError, "We encountered an internal error. Please try again.");
        }
        other => (format!("KMS.{}", other.aws_name()), http::StatusCode::BAD_REQUEST),
    };
    let mut error = S3Error::with_message(S3ErrorCode::Custom(code.into()), e.to_string());
    error.set_status_code(status);
    error
}

fn object_error(e: KmsError) -> bulwark_object::Error {
    let s3 = kms_error(e);
    bulwark_object::Error::KeyUnavailable {
        code: s3.code().as_str().to_owned(),
        message: s3.message().unwrap_or_default().to_owned(),
    }
}

/// The encryption context of an object's data key: the client's context
/// (base64 JSON) plus `aws:s3:arn`, as S3 sends to KMS.
pub fn object_context(bucket: &str, key: &str, client: Option<&str>) -> S3Result<EncryptionContext> {
    let mut context = match client {
        Some(text) => parse_context(text)?,
        None => BTreeMap::new(),
    };
    context.insert("aws:s3:arn".to_owned(), format!("arn:aws:s3:::{bucket}/{key}"));
    Ok(context)
}

fn parse_context(text: &str) -> S3Result<EncryptionContext> {
    let invalid = || s3_error!(InvalidArgument, "The encryption context must be base64-encoded JSON of string pairs.");
    let raw = base64::engine::general_purpose::STANDARD.decode(text).map_err(|_| invalid())?;
    let map: BTreeMap<String, serde_json::Value> = serde_json::from_slice(&raw).map_err(|_| invalid())?;
    map.into_iter()
        .map(|(k, v)| match v {
            serde_json::Value::String(s) => Ok((k, s)),
            _ => Err(invalid()),
        })
        .collect()
}

/// Checks the headers of a write and decides its managed encryption:
/// the request's, else the bucket default's, else none.
pub async fn for_write(
    kms: Option<&Arc<Kms>>,
    bucket: &str,
    key: &str,
    record: &BucketRecord,
    headers: &SseHeaders<'_>,
    caller: &Caller,
    request_id: &str,
) -> S3Result<Option<Encryption>> {
    if headers.customer_key && headers.algorithm.is_some() {
        return Err(s3_error!(
            InvalidArgument,
            "Server Side Encryption with Customer provided key is incompatible with the encryption method specified"
        ));
    }
    if headers.kms_key_id.is_some() && headers.algorithm != Some(AWS_KMS) {
        return Err(s3_error!(
            InvalidArgument,
            "x-amz-server-side-encryption-aws-kms-key-id requires x-amz-server-side-encryption: aws:kms"
        ));
    }
    if headers.context.is_some() && headers.algorithm != Some(AWS_KMS) {
        return Err(s3_error!(
            InvalidArgument,
            "x-amz-server-side-encryption-context requires x-amz-server-side-encryption: aws:kms"
        ));
    }
    let default = record.default_encryption.as_ref();
    if headers.customer_key {
        if default.is_some_and(|d| d.blocked_sse_c) {
            return Err(s3_error!(AccessDenied, "This bucket blocks writes encrypted with SSE-C."));
        }
        return Ok(None);
    }
    let (algorithm, kms_key_id, bucket_key) = match headers.algorithm {
        Some(algorithm) => (algorithm.to_owned(), headers.kms_key_id.map(str::to_owned), headers.bucket_key),
        None => match default {
            Some(DefaultEncryption { algorithm, kms_key_id, bucket_key, .. }) => {
                (algorithm.clone(), kms_key_id.clone(), Some(*bucket_key))
            }
            None => return Ok(None),
        },
    };
    let kms =
        kms.ok_or_else(|| s3_error!(NotImplemented, "Server-side encryption needs the KMS, which is not running"))?;
    match algorithm.as_str() {
        AES256 => {
            let context = object_context(bucket, key, None)?;
            let data_key = kms.sse_s3_generate(&context, request_id).await.map_err(kms_error)?;
            Ok(Some(Encryption::Managed(ManagedKey {
                scheme: ManagedScheme::SseS3,
                data_key: data_key.plaintext,
                wrapped: data_key.ciphertext,
                key_arn: None,
                context: None,
                bucket_key: bucket_key.unwrap_or(false),
            })))
        }
        AWS_KMS => {
            let context = object_context(bucket, key, headers.context)?;
            let data_key =
                kms.generate_data_key(kms_key_id.as_deref(), &context, caller, request_id).await.map_err(kms_error)?;
            Ok(Some(Encryption::Managed(ManagedKey {
                scheme: ManagedScheme::SseKms,
                data_key: data_key.plaintext,
                wrapped: data_key.ciphertext,
                key_arn: Some(data_key.key_arn),
                context: headers.context.map(str::to_owned),
                bucket_key: bucket_key.unwrap_or(false),
            })))
        }
        AWS_KMS_DSSE => Err(s3_error!(NotImplemented, "Dual-layer SSE-KMS (aws:kms:dsse) is not supported")),
        _ => Err(s3_error!(InvalidArgument, "The encryption method specified is not supported; use AES256 or aws:kms")),
    }
}

/// Opens stored data keys through the KMS as the request's caller.
struct KmsUnwrapper {
    kms: Arc<Kms>,
    caller: Caller,
    request_id: String,
}

#[async_trait::async_trait]
impl KeyUnwrapper for KmsUnwrapper {
    async fn unwrap(&self, wrapped: WrappedKey<'_>) -> bulwark_object::Result<bulwark_crypto::Key32> {
        let bad_context = |_| bulwark_object::Error::Internal("stored encryption context is malformed".into());
        let key = match wrapped.scheme {
            ManagedScheme::SseS3 => {
                let context = object_context(wrapped.bucket, wrapped.key, None).map_err(bad_context)?;
                self.kms.sse_s3_decrypt(wrapped.wrapped, &context, &self.request_id).await
            }
            ManagedScheme::SseKms => {
                let context = object_context(wrapped.bucket, wrapped.key, wrapped.context).map_err(bad_context)?;
                self.kms.decrypt_data_key(wrapped.wrapped, &context, &self.caller, &self.request_id).await
            }
        };
        key.map(|k| k.plaintext).map_err(object_error)
    }
}

/// An unwrapper for one request, when the KMS is running.
pub fn unwrapper(kms: Option<&Arc<Kms>>, caller: &Caller, request_id: &str) -> Option<Unwrapper> {
    let kms = kms?.clone();
    Some(Unwrapper(Arc::new(KmsUnwrapper { kms, caller: caller.clone(), request_id: request_id.to_owned() })))
}

/// Response header values for an object's managed encryption.
pub struct SseFields {
    pub algorithm: Option<ServerSideEncryption>,
    pub kms_key_id: Option<String>,
    pub context: Option<String>,
    pub bucket_key: Option<bool>,
}

/// What a write's managed encryption will report (before it is stored).
pub fn summary_of(encryption: Option<&Encryption>) -> Option<SseSummary> {
    match encryption? {
        Encryption::Managed(m) => Some(SseSummary {
            scheme: m.scheme,
            key_arn: m.key_arn.clone(),
            context: m.context.clone(),
            bucket_key: m.bucket_key,
        }),
        Encryption::CustomerKey { .. } => None,
    }
}

pub fn fields(sse: Option<&SseSummary>) -> SseFields {
    match sse {
        None => SseFields { algorithm: None, kms_key_id: None, context: None, bucket_key: None },
        Some(s) => SseFields {
            algorithm: Some(ServerSideEncryption::from(
                match s.scheme {
                    ManagedScheme::SseS3 => AES256,
                    ManagedScheme::SseKms => AWS_KMS,
                }
                .to_owned(),
            )),
            kms_key_id: s.key_arn.clone(),
            context: s.context.clone(),
            bucket_key: s.bucket_key.then_some(true),
        },
    }
}
