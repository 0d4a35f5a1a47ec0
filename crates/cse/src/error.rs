//! The one error type of the crate. Variants say what happened; a tampered or
//! corrupt object is never reported as an I/O error, and no message carries
//! key material or plaintext.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The object carries no S3 Encryption Client envelope (and no instruction
    /// file was given).
    #[error("not a client-side encrypted object: its metadata holds no S3 Encryption Client envelope")]
    NotEncrypted,
    /// The envelope is malformed or contradicts itself (possible tampering).
    #[error("malformed encryption metadata: {0}")]
    Malformed(String),
    /// A well-formed envelope this client does not implement.
    #[error("unsupported: {0}")]
    Unsupported(String),
    /// A legacy mode that is refused unless explicitly allowed.
    #[error("refused: {0} (legacy and unauthenticated); pass --allow-legacy to decrypt it anyway")]
    Legacy(String),
    /// The key given is not the kind the object needs, or does not open its data key.
    #[error("wrong key: {0}")]
    WrongKey(String),
    /// The v3 key commitment derived from the data key differs from the stored one.
    #[error(
        "key commitment mismatch: the data key does not belong to this object's ciphertext \
         (the encrypted data key or x-amz-d was altered)"
    )]
    Commitment,
    /// The AES-GCM tag did not verify.
    #[error(
        "authentication failed: the ciphertext, its tag or its encryption metadata were altered, \
         or the data key is not the one it was encrypted with"
    )]
    Authentication,
    /// Legacy AES-CBC content whose padding is wrong (wrong key or damage).
    #[error("decryption failed: bad padding in legacy AES-CBC content (wrong key or damaged object)")]
    Padding,
    /// The encryption context of the object is not the one that was asked for.
    #[error("encryption context mismatch: {0}")]
    Context(String),
    /// A master key file that cannot be used.
    #[error("key file: {0}")]
    KeyFile(String),
    /// More data than one AES-GCM message may hold.
    #[error("an object encrypted as one AES-GCM message may hold at most {max_bytes} bytes")]
    TooLarge { max_bytes: u64 },
    /// The ciphertext ended before its tag (or a block) was complete.
    #[error("truncated ciphertext: {0}")]
    Truncated(String),
    /// A failure inside the cryptographic library (random source, key setup).
    #[error("cryptographic library failure: {0}")]
    Crypto(&'static str),
    /// Local file I/O.
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
}

impl Error {
    pub(crate) fn io(path: &std::path::Path, source: std::io::Error) -> Error {
        Error::Io { path: path.to_owned(), source }
    }

    /// Whether the error means the object (data or metadata) or the key does
    /// not check out, as opposed to a local or usage problem.
    pub fn is_integrity_failure(&self) -> bool {
        matches!(self, Error::Commitment | Error::Authentication | Error::Padding | Error::Truncated(_))
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
