//! Object tags: the `x-amz-tagging` header of writes and the tag sets of
//! Put/GetObjectTagging, validated as S3 does (at most ten tags; keys of 1 to
//! 128 and values of at most 256 Unicode characters; no duplicate keys; the
//! `aws:` prefix is reserved).

use std::collections::BTreeMap;

use s3s::dto::Tag;
use s3s::{S3Error, S3ErrorCode, S3Result};

const TAGS_MAX: usize = 10;
const KEY_CHARS_MAX: usize = 128;
const VALUE_CHARS_MAX: usize = 256;

fn invalid(message: impl Into<String>) -> S3Error {
    S3Error::with_message(S3ErrorCode::InvalidTag, message.into())
}

fn check(tags: Vec<(String, String)>) -> S3Result<BTreeMap<String, String>> {
    if tags.len() > TAGS_MAX {
        return Err(invalid("Object tags cannot be greater than 10"));
    }
    let mut out = BTreeMap::new();
    for (key, value) in tags {
        let key_chars = key.chars().count();
        if key_chars == 0 || key_chars > KEY_CHARS_MAX {
            return Err(invalid("The TagKey you have provided is invalid"));
        }
        if value.chars().count() > VALUE_CHARS_MAX {
            return Err(invalid("The TagValue you have provided is invalid"));
        }
        if key.to_ascii_lowercase().starts_with("aws:") {
            return Err(invalid("Your TagKey cannot be prefixed with aws:"));
        }
        if out.insert(key, value).is_some() {
            return Err(invalid("Cannot provide multiple Tags with the same key"));
        }
    }
    Ok(out)
}

/// Parses `x-amz-tagging` (URL query encoding: `k1=v1&k2=v2`).
pub fn from_header(header: Option<&str>) -> S3Result<BTreeMap<String, String>> {
    let Some(text) = header.filter(|t| !t.is_empty()) else { return Ok(BTreeMap::new()) };
    let decode =
        |s: &str| percent_encoding::percent_decode_str(&s.replace('+', " ")).decode_utf8().map(|c| c.into_owned());
    let mut pairs = Vec::new();
    for pair in text.split('&') {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let (Ok(k), Ok(v)) = (decode(k), decode(v)) else {
            return Err(invalid("The x-amz-tagging header is not valid URL query encoding"));
        };
        pairs.push((k, v));
    }
    check(pairs)
}

/// Validates a `<Tagging><TagSet>` document.
pub fn from_tag_set(tags: Vec<Tag>) -> S3Result<BTreeMap<String, String>> {
    let pairs = tags.into_iter().map(|t| (t.key.unwrap_or_default(), t.value.unwrap_or_default())).collect();
    check(pairs)
}

pub fn to_tag_set(tags: BTreeMap<String, String>) -> Vec<Tag> {
    tags.into_iter().map(|(key, value)| Tag { key: Some(key), value: Some(value) }).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_parse_and_limits_hold() {
        let tags = from_header(Some("project=apollo&team=a%20b&empty=")).expect("valid");
        assert_eq!(tags.get("team").map(String::as_str), Some("a b"));
        assert_eq!(tags.get("empty").map(String::as_str), Some(""));
        assert!(from_header(None).expect("none").is_empty());
        let eleven: Vec<String> = (0..11).map(|i| format!("k{i}=v")).collect();
        assert_eq!(from_header(Some(&eleven.join("&"))).expect_err("11").code(), &S3ErrorCode::InvalidTag);
        assert!(from_header(Some("a=1&a=2")).is_err(), "duplicate keys");
        assert!(from_header(Some("aws:x=1")).is_err(), "reserved prefix");
        assert!(from_header(Some(&format!("{}=v", "k".repeat(129)))).is_err());
        assert!(from_header(Some(&format!("k={}", "v".repeat(257)))).is_err());
    }
}
