//! SSE-C request parameters: parsing, validation with S3's exact errors, and
//! the refusal of customer keys over plain HTTP. The key is decoded into a
//! zeroizing `Key32` and never logged.

use base64::Engine;
use bulwark_crypto::Key32;
use bulwark_object::Encryption;
use s3s::{S3Error, S3ErrorCode, S3Result, s3_error};

use crate::Transport;

fn invalid_argument(message: &str) -> S3Error {
    S3Error::with_message(S3ErrorCode::InvalidArgument, message.to_owned())
}

/// The three SSE-C headers of a request (or of its copy source).
pub struct CustomerKeyHeaders<'a> {
    pub algorithm: Option<&'a str>,
    pub key: Option<&'a str>,
    pub key_md5: Option<&'a str>,
    /// The key opens existing data (GET, HEAD, copy source) rather than
    /// encrypting new data.
    pub for_read: bool,
}

impl CustomerKeyHeaders<'_> {
    fn any(&self) -> bool {
        self.algorithm.is_some() || self.key.is_some() || self.key_md5.is_some()
    }
}

/// Parses SSE-C headers into an encryption request; `None` when absent.
pub fn customer_key(headers: CustomerKeyHeaders<'_>, transport: Option<&Transport>) -> S3Result<Option<Encryption>> {
    if !headers.any() {
        return Ok(None);
    }
    if !transport.is_some_and(|t| t.secure) {
        return Err(s3_error!(
            InvalidRequest,
            "Requests specifying Server Side Encryption with Customer provided keys must be made over a secure connection."
        ));
    }
    let Some(algorithm) = headers.algorithm else {
        return Err(invalid_argument(
            "Requests specifying Server Side Encryption with Customer provided keys must provide a valid encryption algorithm.",
        ));
    };
    if algorithm != "AES256" {
        let mut e = S3Error::with_message(
            S3ErrorCode::Custom("InvalidEncryptionAlgorithmError".into()),
            "The Encryption request you specified is not valid. Supported value: AES256.",
        );
        e.set_status_code(http::StatusCode::BAD_REQUEST);
        return Err(e);
    }
    let Some(encoded) = headers.key else {
        return Err(invalid_argument(
            "Requests specifying Server Side Encryption with Customer provided keys must provide an appropriate secret key.",
        ));
    };
    let raw = zeroize::Zeroizing::new(
        base64::engine::general_purpose::STANDARD
            .decode(encoded.trim())
            .map_err(|_| invalid_argument("The secret key was invalid for the specified algorithm."))?,
    );
    let Some(key) = Key32::from_slice(&raw) else {
        // A key of the wrong length cannot be the object's key: on reads
        // that is a wrong key (403), on writes an invalid one (400).
        return Err(if headers.for_read {
            s3_error!(
                AccessDenied,
                "Requests specifying Server Side Encryption with Customer provided keys must provide the correct secret key."
            )
        } else {
            invalid_argument("The secret key was invalid for the specified algorithm.")
        });
    };
    let actual_md5 = bulwark_object::sse::key_md5(&key);
    let Some(claimed_md5) = headers.key_md5 else {
        return Err(invalid_argument(
            "Requests specifying Server Side Encryption with Customer provided keys must provide the client calculated MD5 of the secret key.",
        ));
    };
    if claimed_md5.trim() != actual_md5 {
        return Err(invalid_argument("The calculated MD5 hash of the key did not match the hash that was provided."));
    }
    Ok(Some(Encryption::CustomerKey { key, key_md5: actual_md5 }))
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY_B64: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";

    fn headers<'a>(algorithm: Option<&'a str>, key: Option<&'a str>, md5: Option<&'a str>) -> CustomerKeyHeaders<'a> {
        CustomerKeyHeaders { algorithm, key, key_md5: md5, for_read: false }
    }

    fn md5_of_key() -> String {
        let raw = base64::engine::general_purpose::STANDARD.decode(KEY_B64).expect("b64");
        bulwark_object::sse::key_md5(&Key32::from_slice(&raw).expect("32 bytes"))
    }

    #[test]
    fn customer_keys_need_tls_and_exact_parameters() {
        let secure = Transport { secure: true, peer: None };
        let plain = Transport { secure: false, peer: None };
        let md5 = md5_of_key();
        let ok = customer_key(headers(Some("AES256"), Some(KEY_B64), Some(&md5)), Some(&secure)).expect("valid");
        assert!(matches!(ok, Some(Encryption::CustomerKey { .. })));
        let over_http =
            customer_key(headers(Some("AES256"), Some(KEY_B64), Some(&md5)), Some(&plain)).expect_err("http");
        assert_eq!(over_http.code(), &S3ErrorCode::InvalidRequest);
        let bad_md5 =
            customer_key(headers(Some("AES256"), Some(KEY_B64), Some("AAAA")), Some(&secure)).expect_err("md5");
        assert_eq!(bad_md5.code(), &S3ErrorCode::InvalidArgument);
        let short = customer_key(headers(Some("AES256"), Some("AAAA"), Some(&md5)), Some(&secure)).expect_err("short");
        assert_eq!(short.code(), &S3ErrorCode::InvalidArgument);
        let algorithm =
            customer_key(headers(Some("AES128"), Some(KEY_B64), Some(&md5)), Some(&secure)).expect_err("alg");
        assert_eq!(algorithm.code().as_str(), "InvalidEncryptionAlgorithmError");
        assert!(customer_key(headers(None, None, None), Some(&plain)).expect("none").is_none());
        let message = format!("{:?}", bad_md5);
        assert!(!message.contains(KEY_B64), "the key never appears in errors");
    }
}
