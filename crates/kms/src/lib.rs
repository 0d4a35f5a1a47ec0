//! The built-in KMS (D7, D8). SKELETON: the interface the S3 layer and the
//! server code against; the implementation is being written.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use bulwark_access::{Authorizer, Caller};
use bulwark_crypto::Key32;
use bulwark_object::ObjectStore;

/// An encryption context: bound to a ciphertext as associated data.
pub type EncryptionContext = BTreeMap<String, String>;

#[derive(Debug, Clone)]
pub struct KmsConfig {
    pub region: String,
    pub account: String,
    /// The append-only audit log (JSON lines, hash-chained and signed).
    pub audit_path: PathBuf,
    /// Rotation period of the SSE-S3 master key.
    pub sse_s3_rotation_days: u32,
}

/// A data key: the plaintext for immediate use (zeroized on drop) and the
/// ciphertext blob to store, which names the key and key version.
pub struct DataKey {
    pub plaintext: Key32,
    pub ciphertext: Vec<u8>,
    pub key_arn: String,
}

#[derive(Debug, thiserror::Error)]
pub enum KmsError {
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Disabled(String),
    #[error("{0}")]
    InvalidState(String),
    #[error("{0}")]
    AccessDenied(String),
    #[error("invalid ciphertext")]
    InvalidCiphertext,
    #[error("The key ID in the request does not identify a CMK that can perform this operation.")]
    IncorrectKey,
    #[error("{0}")]
    Validation(String),
    #[error("{0}")]
    Internal(String),
}

impl KmsError {
    /// The AWS exception name (`NotFoundException`, …).
    pub fn aws_name(&self) -> &'static str {
        match self {
            KmsError::NotFound(_) => "NotFoundException",
            KmsError::Disabled(_) => "DisabledException",
            KmsError::InvalidState(_) => "KMSInvalidStateException",
            KmsError::AccessDenied(_) => "AccessDeniedException",
            KmsError::InvalidCiphertext => "InvalidCiphertextException",
            KmsError::IncorrectKey => "IncorrectKeyException",
            KmsError::Validation(_) => "ValidationException",
            KmsError::Internal(_) => "KMSInternalException",
        }
    }
}

pub struct Kms {
    _store: Arc<ObjectStore>,
    _authorizer: Arc<Authorizer>,
    _config: KmsConfig,
}

impl Kms {
    pub async fn open(
        store: Arc<ObjectStore>,
        _root_key: &Key32,
        authorizer: Arc<Authorizer>,
        config: KmsConfig,
    ) -> Result<Kms, KmsError> {
        Ok(Kms { _store: store, _authorizer: authorizer, _config: config })
    }

    /// Deletion after the pending window, automatic rotation, SSE-S3 master rotation.
    pub fn start_background(self: &Arc<Self>) {}

    /// One AWS KMS JSON 1.1 request (`operation` is what follows
    /// `TrentService.`): HTTP status and JSON body (errors as `{"__type", "message"}`).
    pub async fn handle_api(&self, _operation: &str, _body: &[u8], _caller: &Caller, _request_id: &str) -> (u16, Vec<u8>) {
        (501, br#"{"__type":"UnsupportedOperationException","message":"not yet"}"#.to_vec())
    }

    /// SSE-KMS: a data key under `key_id` (id, ARN, alias name or alias ARN;
    /// `None` = the `alias/aws/s3` key, created on first use). Checks that
    /// `caller` may `kms:GenerateDataKey` with the key; audited.
    pub async fn generate_data_key(
        &self,
        _key_id: Option<&str>,
        _context: &EncryptionContext,
        _caller: &Caller,
        _request_id: &str,
    ) -> Result<DataKey, KmsError> {
        Err(KmsError::Internal("not yet".into()))
    }

    /// SSE-KMS: opens a stored data key; checks `kms:Decrypt` for `caller`; audited.
    pub async fn decrypt_data_key(
        &self,
        _ciphertext: &[u8],
        _context: &EncryptionContext,
        _caller: &Caller,
        _request_id: &str,
    ) -> Result<DataKey, KmsError> {
        Err(KmsError::Internal("not yet".into()))
    }

    /// SSE-S3: a data key under the internal SSE-S3 master key (no caller permission; audited).
    pub async fn sse_s3_generate(&self, _context: &EncryptionContext, _request_id: &str) -> Result<DataKey, KmsError> {
        Err(KmsError::Internal("not yet".into()))
    }

    pub async fn sse_s3_decrypt(
        &self,
        _ciphertext: &[u8],
        _context: &EncryptionContext,
        _request_id: &str,
    ) -> Result<DataKey, KmsError> {
        Err(KmsError::Internal("not yet".into()))
    }

    /// Rotates the SSE-S3 master key now.
    pub async fn rotate_sse_s3(&self) -> Result<(), KmsError> {
        Err(KmsError::Internal("not yet".into()))
    }

    /// Re-encrypts a stored data key (SSE-S3 or SSE-KMS) under the newest
    /// version of the same key; `None` when it already is. Audited.
    pub async fn rewrap(
        &self,
        _ciphertext: &[u8],
        _context: &EncryptionContext,
        _request_id: &str,
    ) -> Result<Option<Vec<u8>>, KmsError> {
        Err(KmsError::Internal("not yet".into()))
    }

    /// The full key ARN for an id, ARN or alias (for response headers);
    /// `None` = the `alias/aws/s3` key. NotFound if there is no such key.
    pub async fn key_arn(&self, _key_id: Option<&str>) -> Result<String, KmsError> {
        Err(KmsError::Internal("not yet".into()))
    }
}
