//! The one place where internal errors become S3 errors (code + status).
//!
//! Every variant of the object layer's error is matched exhaustively, so a new
//! variant cannot reach a client without a deliberate mapping. Internal
//! details (drive paths, I/O messages) are logged, never sent.

use bulwark_object::Error;
use s3s::{S3Error, S3ErrorCode, s3_error};

/// Why reading a request body failed, as far as the protocol is concerned.
/// `s3s` reports these as opaque errors; they are classified once here.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    #[error("x-amz-content-sha256 does not match the body")]
    ContentSha256Mismatch,
    #[error("an aws-chunked chunk signature does not match")]
    ChunkSignatureMismatch,
    #[error("{0}")]
    Malformed(String),
}

impl BodyError {
    /// Classifies an `s3s` body error by its (pinned, =0.14.1) description.
    pub fn classify(error: &(dyn std::error::Error + Send + Sync + 'static)) -> BodyError {
        let text = error.to_string();
        if text.contains("Sha256Mismatch") {
            BodyError::ContentSha256Mismatch
        } else if text.contains("SignatureMismatch") {
            BodyError::ChunkSignatureMismatch
        } else {
            BodyError::Malformed(text)
        }
    }
}

pub fn to_s3(error: Error) -> S3Error {
    match error {
        Error::NoSuchBucket(_) => s3_error!(NoSuchBucket, "The specified bucket does not exist"),
        Error::BucketAlreadyOwnedByYou(_) => s3_error!(
            BucketAlreadyOwnedByYou,
            "Your previous request to create the named bucket succeeded and you already own it."
        ),
        Error::BucketNotEmpty(_) => s3_error!(BucketNotEmpty, "The bucket you tried to delete is not empty"),
        Error::InvalidBucketName(why) => {
            S3Error::with_message(S3ErrorCode::InvalidBucketName, format!("The specified bucket is not valid: {why}"))
        }
        Error::NoSuchKey => s3_error!(NoSuchKey, "The specified key does not exist."),
        Error::NoSuchVersion => s3_error!(NoSuchVersion, "The specified version does not exist."),
        Error::DeleteMarker { version_id, by_version_id } => {
            let mut e = if by_version_id {
                s3_error!(MethodNotAllowed, "The specified method is not allowed against this resource.")
            } else {
                s3_error!(NoSuchKey, "The specified key does not exist.")
            };
            // These headers replace the error's own: the document keeps its type.
            let mut headers = http::HeaderMap::new();
            headers.insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static("application/xml"));
            headers.insert("x-amz-delete-marker", http::HeaderValue::from_static("true"));
            let id = version_id.unwrap_or_else(|| "null".to_owned());
            if let Ok(value) = http::HeaderValue::from_str(&id) {
                headers.insert("x-amz-version-id", value);
            }
            e.set_headers(headers);
            e
        }
        Error::NoSuchUpload => s3_error!(
            NoSuchUpload,
            "The specified upload does not exist. The upload ID may be invalid, or the upload may have been aborted or completed."
        ),
        Error::InvalidPart(why) => S3Error::with_message(
            S3ErrorCode::InvalidPart,
            format!("One or more of the specified parts could not be found or its entity tag did not match: {why}"),
        ),
        Error::InvalidPartOrder => s3_error!(InvalidPartOrder, "The list of parts was not in ascending order."),
        Error::EntityTooSmall { .. } => {
            s3_error!(EntityTooSmall, "Your proposed upload is smaller than the minimum allowed object size.")
        }
        Error::EntityTooLarge => {
            s3_error!(EntityTooLarge, "Your proposed upload exceeds the maximum allowed object size.")
        }
        Error::BadDigest => s3_error!(BadDigest, "The Content-MD5 you specified did not match what we received."),
        Error::IncompleteBody => s3_error!(
            IncompleteBody,
            "You did not provide the number of bytes specified by the Content-Length HTTP header."
        ),
        Error::PreconditionFailed => {
            s3_error!(PreconditionFailed, "At least one of the pre-conditions you specified did not hold")
        }
        Error::NotModified => s3_error!(NotModified),
        Error::InvalidRange => s3_error!(InvalidRange, "The requested range is not satisfiable"),
        Error::InvalidPartNumber => {
            let mut e = S3Error::with_message(
                S3ErrorCode::Custom("InvalidPartNumber".into()),
                "The requested partnumber is not satisfiable",
            );
            e.set_status_code(http::StatusCode::RANGE_NOT_SATISFIABLE);
            e
        }
        Error::KeyTooLong => s3_error!(KeyTooLongError, "Your key is too long"),
        Error::InvalidArgument(why) => S3Error::with_message(S3ErrorCode::InvalidArgument, why),
        Error::InsufficientDrives { needed, available } => {
            tracing::error!(needed, available, "write refused: not enough drives");
            s3_error!(
                ServiceUnavailable,
                "Not enough drives are available to store the data durably; please retry later."
            )
        }
        Error::Unreadable { bucket, key, detail } => {
            tracing::error!(%bucket, %key, %detail, "object unreadable");
            s3_error!(ServiceUnavailable, "The object cannot be read right now: too few of its shards are available.")
        }
        Error::Body(io) => match io.get_ref().and_then(|e| e.downcast_ref::<BodyError>()) {
            Some(BodyError::ContentSha256Mismatch) => {
                let mut e = S3Error::with_message(
                    S3ErrorCode::Custom("XAmzContentSHA256Mismatch".into()),
                    "The provided 'x-amz-content-sha256' header does not match what was computed.",
                );
                e.set_status_code(http::StatusCode::BAD_REQUEST);
                e
            }
            Some(BodyError::ChunkSignatureMismatch) => s3_error!(
                SignatureDoesNotMatch,
                "The request signature we calculated does not match the signature you provided."
            ),
            Some(BodyError::Malformed(detail)) => {
                tracing::info!(%detail, "malformed request body");
                S3Error::with_message(S3ErrorCode::IncompleteBody, "The request body could not be read completely.")
            }
            None => {
                tracing::info!(error = %io, "request body failed");
                S3Error::with_message(S3ErrorCode::IncompleteBody, "The request body could not be read completely.")
            }
        },
        Error::ChecksumMismatch(algorithm) => S3Error::with_message(
            S3ErrorCode::BadDigest,
            format!("The {} you specified did not match the calculated checksum.", algorithm.as_str()),
        ),
        Error::InvalidChecksumRequest(why) => S3Error::with_message(S3ErrorCode::InvalidRequest, why),
        Error::SseCKeyRequired => s3_error!(
            InvalidRequest,
            "The object was stored using a form of Server Side Encryption. The correct parameters must be provided to retrieve the object."
        ),
        Error::SseCKeyMismatch => s3_error!(
            AccessDenied,
            "Requests specifying Server Side Encryption with Customer provided keys must provide the correct secret key."
        ),
        Error::SseCNotApplicable(why) => S3Error::with_message(S3ErrorCode::InvalidRequest, why),
        Error::Forbidden(why) => S3Error::with_message(S3ErrorCode::AccessDenied, why),
        Error::KeyUnavailable { code, message } => {
            let status =
                if code == "AccessDenied" { http::StatusCode::FORBIDDEN } else { http::StatusCode::BAD_REQUEST };
            let code = S3ErrorCode::from_bytes(code.as_bytes()).unwrap_or(S3ErrorCode::InternalError);
            let mut e = S3Error::with_message(code, message);
            e.set_status_code(status);
            e
        }
        Error::Internal(detail) => {
            tracing::error!(%detail, "internal error");
            s3_error!(InternalError, "We encountered an internal error. Please try again.")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_map_to_s3_codes_and_statuses() {
        let check = |e: Error, code: S3ErrorCode, status: u16| {
            let s3 = to_s3(e);
            assert_eq!(s3.code(), &code);
            assert_eq!(s3.code().status_code().map(|s| s.as_u16()), Some(status), "{code:?}");
        };
        check(Error::NoSuchBucket("b".into()), S3ErrorCode::NoSuchBucket, 404);
        check(Error::NoSuchKey, S3ErrorCode::NoSuchKey, 404);
        check(Error::BucketNotEmpty("b".into()), S3ErrorCode::BucketNotEmpty, 409);
        check(Error::BucketAlreadyOwnedByYou("b".into()), S3ErrorCode::BucketAlreadyOwnedByYou, 409);
        check(Error::InvalidRange, S3ErrorCode::InvalidRange, 416);
        check(Error::PreconditionFailed, S3ErrorCode::PreconditionFailed, 412);
        check(Error::NotModified, S3ErrorCode::NotModified, 304);
        check(Error::InsufficientDrives { needed: 5, available: 3 }, S3ErrorCode::ServiceUnavailable, 503);
        check(Error::BadDigest, S3ErrorCode::BadDigest, 400);
        check(Error::EntityTooSmall { part: 1 }, S3ErrorCode::EntityTooSmall, 400);
        check(Error::InvalidPartOrder, S3ErrorCode::InvalidPartOrder, 400);
        check(Error::NoSuchUpload, S3ErrorCode::NoSuchUpload, 404);
    }

    #[test]
    fn internal_details_do_not_reach_the_client() {
        let s3 = to_s3(Error::Internal("/data/facility-1/drive-1 exploded".into()));
        assert!(!s3.message().unwrap_or_default().contains("/data"));
        let s3 = to_s3(Error::Unreadable { bucket: "b".into(), key: "k".into(), detail: "drive /x failed".into() });
        assert!(!s3.message().unwrap_or_default().contains("/x"));
    }
}
