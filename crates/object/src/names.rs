//! Validation of bucket names and object keys.
//!
//! Bucket names become directory names on drives, so they are checked here
//! even though the protocol layer validates them too.

use crate::{Error, KEY_LENGTH_BYTES_MAX, Result};

/// S3's bucket naming rules (general purpose buckets).
pub fn validate_bucket_name(name: &str) -> Result<()> {
    let bad = |why: &str| Err(Error::InvalidBucketName(format!("{name:?}: {why}")));
    if !(3..=63).contains(&name.len()) {
        return bad("must be 3 to 63 characters long");
    }
    if !name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-') {
        return bad("only lowercase letters, digits, dots and hyphens are allowed");
    }
    let first = name.as_bytes()[0];
    let last = name.as_bytes()[name.len() - 1];
    if !first.is_ascii_alphanumeric() || !last.is_ascii_alphanumeric() {
        return bad("must begin and end with a letter or digit");
    }
    if name.contains("..") || name.contains(".-") || name.contains("-.") {
        return bad("dots may not be adjacent to dots or hyphens");
    }
    if name.split('.').count() == 4 && name.split('.').all(|p| p.parse::<u8>().is_ok()) {
        return bad("must not be formatted as an IP address");
    }
    if name.starts_with("xn--")
        || name.starts_with("sthree-")
        || name.ends_with("-s3alias")
        || name.ends_with("--ol-s3")
    {
        return bad("reserved prefix or suffix");
    }
    Ok(())
}

pub fn validate_object_key(key: &str) -> Result<()> {
    if key.is_empty() {
        return Err(Error::InvalidArgument("object key must not be empty".into()));
    }
    if key.len() > KEY_LENGTH_BYTES_MAX {
        return Err(Error::KeyTooLong);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_names_follow_s3_rules() {
        for good in ["abc", "my-bucket", "my.bucket.1", "a1b", &"a".repeat(63)] {
            assert!(validate_bucket_name(good).is_ok(), "{good}");
        }
        for bad in
            ["ab", &"a".repeat(64), "ABC", "-abc", "abc-", "a..b", "a.-b", "192.168.1.1", "xn--abc", "a_b", "a/b", ".."]
        {
            assert!(validate_bucket_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn keys_are_bounded() {
        assert!(validate_object_key("a").is_ok());
        assert!(validate_object_key("").is_err());
        assert!(matches!(validate_object_key(&"k".repeat(1025)), Err(Error::KeyTooLong)));
        assert!(validate_object_key(&"k".repeat(1024)).is_ok());
    }
}
