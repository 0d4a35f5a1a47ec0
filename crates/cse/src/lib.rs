//! Client-side encryption in the formats of the AWS S3 Encryption Client
//! (DESIGN.md D9): objects are encrypted before they leave the client and
//! decrypted after they arrive, so the server stores only ciphertext and never
//! sees the plaintext or a client-held master key.
//!
//! Contract:
//! - **Formats.** Writes v2 (`x-amz-key-v2`, AES/GCM/NoPadding) and v3
//!   (`x-amz-3`, committing suite 0x0073); reads v1, v2 and v3 from object
//!   metadata or `<key>.instruction` files ([`envelope`]). Envelopes that mix
//!   versions, or instruction files that carry what belongs in object metadata,
//!   are refused as tampering.
//! - **Keys.** Every object gets a fresh 256-bit data key, wrapped by KMS
//!   (`kms+context`), an AES-256 master key (`AES/GCM`) or an RSA key
//!   (`RSA-OAEP-SHA1`; the public half suffices to encrypt) ([`keyring`]).
//!   KMS calls are the caller's: this crate only builds and checks contexts.
//! - **Streaming.** One GCM message per object, processed in pieces with O(1)
//!   state ([`gcm`], [`object`]). Decrypted output is unauthenticated until the
//!   tag verified; [`file`] keeps it in a temporary file and renames it into
//!   place only then, so a failed decryption leaves no output at all.
//! - **Legacy.** Unauthenticated modes (AES-CBC content, AES/ECB or RSA PKCS#1
//!   v1.5 key wraps, all of v1) are refused unless explicitly allowed.
//! - **Secrets.** Data keys and master keys are zeroized on drop and print as
//!   `[redacted]`; no error message carries key material or plaintext.
//!
//! No network I/O happens here; [`file`] is the only module that touches files.
//! Byte layouts and the reasoning: `docs/design/cse.md`.
#![forbid(unsafe_code)]

pub mod der;
pub mod envelope;
pub mod error;
pub mod file;
pub mod gcm;
pub mod keyring;
pub mod object;
pub mod suite;

pub use envelope::{Context, Envelope, Format, Location, Metadata, Stored, Version, WrapAlgorithm};
pub use error::{Error, Result};
pub use file::{PendingFile, decrypt_to_file};
pub use keyring::{DataKey, KmsDecryptRequest, MasterKey, kms_encryption_context};
pub use object::{EncryptionMaterials, ObjectDecryptor, ObjectEncryptor, ciphertext_length};
pub use suite::ContentCipher;
