//! Wire checksums: parsing `x-amz-checksum-*`, `x-amz-sdk-checksum-algorithm`
//! and `x-amz-trailer` into a request for the object layer, and filling the
//! checksum fields of responses.

use std::sync::Arc;

use bulwark_object::checksum as ck;
use bulwark_object::{ChecksumAlgorithm, ChecksumRequest, ExpectedChecksum, StoredChecksum};
use http::HeaderMap;
use s3s::{S3Error, S3ErrorCode, S3Result, TrailingHeaders};

fn invalid(message: impl Into<String>) -> S3Error {
    S3Error::with_message(S3ErrorCode::InvalidRequest, message.into())
}

/// Parses a wire algorithm name; unknown names are a client error.
pub fn parse_algorithm(name: &str, what: &str) -> S3Result<ChecksumAlgorithm> {
    ChecksumAlgorithm::parse(name).ok_or_else(|| invalid(format!("Value for {what} header is invalid.")))
}

/// The `x-amz-checksum-*` header values of a request, by algorithm.
pub struct ChecksumValues<'a> {
    pub crc32: Option<&'a String>,
    pub crc32c: Option<&'a String>,
    pub crc64nvme: Option<&'a String>,
    pub sha1: Option<&'a String>,
    pub sha256: Option<&'a String>,
}

impl<'a> ChecksumValues<'a> {
    fn present(&self) -> Vec<(ChecksumAlgorithm, &'a String)> {
        [
            (ChecksumAlgorithm::Crc32, self.crc32),
            (ChecksumAlgorithm::Crc32c, self.crc32c),
            (ChecksumAlgorithm::Crc64nvme, self.crc64nvme),
            (ChecksumAlgorithm::Sha1, self.sha1),
            (ChecksumAlgorithm::Sha256, self.sha256),
        ]
        .into_iter()
        .filter_map(|(a, v)| v.map(|v| (a, v)))
        .collect()
    }
}

/// Builds the checksum request of a PUT or UploadPart.
pub fn request(
    headers: &HeaderMap,
    trailers: Option<&TrailingHeaders>,
    declared: Option<&str>,
    values: ChecksumValues<'_>,
) -> S3Result<ChecksumRequest> {
    let present = values.present();
    if present.len() > 1 {
        return Err(invalid("Expecting a single x-amz-checksum- header. Multiple checksum Types are not allowed."));
    }
    // `declared` is `x-amz-checksum-algorithm` as s3s parsed it; the SDK's
    // `x-amz-sdk-checksum-algorithm` is read here, so an unknown algorithm in
    // either is refused.
    let sdk_declared = headers.get("x-amz-sdk-checksum-algorithm").and_then(|v| v.to_str().ok());
    let declared =
        declared.or(sdk_declared).map(|name| parse_algorithm(name, "x-amz-sdk-checksum-algorithm")).transpose()?;
    let trailer = trailer_algorithm(headers)?;
    let mut out = ChecksumRequest::default();
    match (present.first(), trailer) {
        (Some(_), Some(_)) => {
            return Err(invalid("Expecting a single x-amz-checksum- header. Multiple checksum Types are not allowed."));
        }
        (Some((algorithm, value)), None) => {
            let digest = ck::decode(*algorithm, value).ok_or_else(|| {
                invalid(format!("Value for x-amz-checksum-{} header is invalid.", algorithm.header_suffix()))
            })?;
            out.algorithm = Some(*algorithm);
            out.expected = Some(ExpectedChecksum::Value(digest));
        }
        (None, Some(algorithm)) => {
            out.algorithm = Some(algorithm);
            out.expected = Some(ExpectedChecksum::Trailer(trailer_fetch(trailers.cloned(), algorithm)));
        }
        (None, None) => out.algorithm = declared,
    }
    if let (Some(declared), Some(actual)) = (declared, out.algorithm)
        && declared != actual
    {
        return Err(invalid(format!(
            "Value for x-amz-sdk-checksum-algorithm header is invalid: {} declared, {} sent.",
            declared.as_str(),
            actual.as_str()
        )));
    }
    Ok(out)
}

/// The algorithm named by `x-amz-trailer`, if it names a checksum.
fn trailer_algorithm(headers: &HeaderMap) -> S3Result<Option<ChecksumAlgorithm>> {
    let Some(value) = headers.get("x-amz-trailer") else { return Ok(None) };
    let value = value.to_str().map_err(|_| invalid("The x-amz-trailer header is invalid."))?;
    let mut found = None;
    for name in value.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        let name = name.to_ascii_lowercase();
        if let Some(suffix) = name.strip_prefix("x-amz-checksum-") {
            if found.is_some() {
                return Err(invalid(
                    "Expecting a single x-amz-checksum- header. Multiple checksum Types are not allowed.",
                ));
            }
            found = Some(parse_algorithm(suffix, "x-amz-trailer")?);
        }
    }
    Ok(found)
}

fn trailer_fetch(trailers: Option<TrailingHeaders>, algorithm: ChecksumAlgorithm) -> bulwark_object::TrailerFetch {
    let name = format!("x-amz-checksum-{}", algorithm.header_suffix());
    Arc::new(move || {
        let Some(trailers) = &trailers else {
            return Err(format!("the request declared a {name} trailer but sent none"));
        };
        let value = trailers
            .read(|h| h.get(name.as_str()).and_then(|v| v.to_str().ok()).map(str::to_owned))
            .flatten()
            .ok_or_else(|| format!("the request declared a {name} trailer but sent none"))?;
        ck::decode(algorithm, &value).map(Some).ok_or_else(|| format!("Value for {name} trailing header is invalid."))
    })
}

/// The checksum fields every response shape carries.
#[derive(Default)]
pub struct Fields {
    pub crc32: Option<String>,
    pub crc32c: Option<String>,
    pub crc64nvme: Option<String>,
    pub sha1: Option<String>,
    pub sha256: Option<String>,
    pub kind: Option<s3s::dto::ChecksumType>,
}

pub fn fields(checksum: Option<&StoredChecksum>) -> Fields {
    let mut out = Fields::default();
    if let Some(c) = checksum {
        set_value(&mut out, c.algorithm, c.value.clone());
        out.kind = Some(s3s::dto::ChecksumType::from(c.kind.as_str().to_owned()));
    }
    out
}

pub fn set_value(out: &mut Fields, algorithm: ChecksumAlgorithm, value: String) {
    let slot = match algorithm {
        ChecksumAlgorithm::Crc32 => &mut out.crc32,
        ChecksumAlgorithm::Crc32c => &mut out.crc32c,
        ChecksumAlgorithm::Crc64nvme => &mut out.crc64nvme,
        ChecksumAlgorithm::Sha1 => &mut out.sha1,
        ChecksumAlgorithm::Sha256 => &mut out.sha256,
    };
    *slot = Some(value);
}

/// Copies [`Fields`] into any output struct with the standard field names.
#[macro_export]
macro_rules! fill_checksums {
    ($output:expr, $fields:expr) => {{
        let f = $fields;
        $output.checksum_crc32 = f.crc32;
        $output.checksum_crc32c = f.crc32c;
        $output.checksum_crc64nvme = f.crc64nvme;
        $output.checksum_sha1 = f.sha1;
        $output.checksum_sha256 = f.sha256;
        $output.checksum_type = f.kind;
    }};
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values<'a>(crc32: Option<&'a String>, sha256: Option<&'a String>) -> ChecksumValues<'a> {
        ChecksumValues { crc32, crc32c: None, crc64nvme: None, sha1: None, sha256 }
    }

    #[test]
    fn a_header_value_becomes_the_expected_digest() {
        let crc = "y/Q5Jg==".to_owned();
        let request = request(&HeaderMap::new(), None, Some("CRC32"), values(Some(&crc), None)).expect("valid");
        assert_eq!(request.algorithm, Some(ChecksumAlgorithm::Crc32));
        assert!(matches!(request.expected, Some(ExpectedChecksum::Value(ref d)) if d == &[0xCB, 0xF4, 0x39, 0x26]));
    }

    #[test]
    fn conflicting_or_unknown_algorithms_are_invalid_requests() {
        let crc = "y/Q5Jg==".to_owned();
        let sha = "ungWv48Bz+pBQUDeXa4iI7ADYaOWF3qctBD/YfIAFa0=".to_owned();
        let two = request(&HeaderMap::new(), None, None, values(Some(&crc), Some(&sha))).expect_err("two");
        assert_eq!(two.code(), &S3ErrorCode::InvalidRequest);
        let mismatch = request(&HeaderMap::new(), None, Some("SHA256"), values(Some(&crc), None)).expect_err("x");
        assert_eq!(mismatch.code(), &S3ErrorCode::InvalidRequest);
        let unknown = request(&HeaderMap::new(), None, Some("MD5"), values(None, None)).expect_err("unknown");
        assert_eq!(unknown.code(), &S3ErrorCode::InvalidRequest);
        let bad = "nope".to_owned();
        let malformed = request(&HeaderMap::new(), None, None, values(Some(&bad), None)).expect_err("bad");
        assert_eq!(malformed.code(), &S3ErrorCode::InvalidRequest);
    }

    #[test]
    fn a_declared_trailer_is_expected_after_the_body() {
        let mut headers = HeaderMap::new();
        headers.insert("x-amz-trailer", "x-amz-checksum-crc64nvme".parse().expect("header"));
        let request = request(&headers, None, None, values(None, None)).expect("valid");
        assert_eq!(request.algorithm, Some(ChecksumAlgorithm::Crc64nvme));
        let Some(ExpectedChecksum::Trailer(fetch)) = request.expected else {
            panic!("expected a trailer checksum");
        };
        assert!(fetch().is_err(), "a declared but missing trailer is an error");
    }
}
