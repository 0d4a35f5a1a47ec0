//! Order-preserving encoding of composite metadata keys.
//!
//! Keys are byte strings compared lexicographically by the metadata store.
//! A composite key is a sequence of components; each string component is
//! written with `0x00` escaped as `0x00 0xFF` and terminated by `0x00 0x01`.
//! Escaping is byte-wise, so `escape(p)` is a prefix of `escape(k)` whenever
//! `p` is a prefix of `k`, and the terminator sorts below every escaped byte,
//! so composite keys sort exactly like the tuples they encode. Fixed-width
//! components (version order, part numbers) are appended big-endian.

const ESCAPE: u8 = 0x00;
const ESCAPED_ZERO: u8 = 0xFF;
const TERMINATOR: u8 = 0x01;

/// Appends `component` escaped, without the terminator (for prefix bounds).
pub fn push_escaped(out: &mut Vec<u8>, component: &str) {
    for &byte in component.as_bytes() {
        if byte == ESCAPE {
            out.extend_from_slice(&[ESCAPE, ESCAPED_ZERO]);
        } else {
            out.push(byte);
        }
    }
}

/// Appends `component` escaped and terminated.
pub fn push_component(out: &mut Vec<u8>, component: &str) {
    push_escaped(out, component);
    out.extend_from_slice(&[ESCAPE, TERMINATOR]);
}

/// Splits off the first terminated component of `input`.
pub fn pop_component(input: &[u8]) -> Option<(String, &[u8])> {
    let mut out = Vec::new();
    let mut index = 0;
    while index < input.len() {
        let byte = input[index];
        if byte == ESCAPE {
            match input.get(index + 1) {
                Some(&ESCAPED_ZERO) => out.push(0),
                Some(&TERMINATOR) => {
                    return String::from_utf8(out).ok().map(|s| (s, &input[index + 2..]));
                }
                _ => return None,
            }
            index += 2;
        } else {
            out.push(byte);
            index += 1;
        }
    }
    None
}

/// The key of a version record: bucket, object key, then the bitwise
/// complement of the version uid so that newer versions sort first.
pub fn version_key(bucket: &str, key: &str, uid: &[u8; 16]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bucket.len() + key.len() + 20);
    push_component(&mut out, bucket);
    push_component(&mut out, key);
    out.extend(uid.iter().map(|b| !b));
    out
}

/// Splits a version key into (object key, uid); the bucket is known to the caller.
pub fn split_version_key(raw: &[u8]) -> Option<(String, String, [u8; 16])> {
    let (bucket, rest) = pop_component(raw)?;
    let (key, rest) = pop_component(rest)?;
    let order: [u8; 16] = rest.try_into().ok()?;
    Some((bucket, key, order.map(|b| !b)))
}

/// Smallest key that is greater than every key starting with `prefix`, or
/// `None` when no such bound exists (prefix of all 0xFF).
pub fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xFF {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn composite_keys_sort_like_tuples() {
        let keys = ["", "\0", "\0a", "a", "a\0", "a\0b", "a/", "a/b", "ab", "b", "é"];
        let uid_old = [1u8; 16];
        let uid_new = [2u8; 16];
        let mut encoded = Vec::new();
        for k in keys {
            encoded.push((version_key("bkt", k, &uid_new), (k, 0)));
            encoded.push((version_key("bkt", k, &uid_old), (k, 1)));
        }
        let mut sorted = encoded.clone();
        sorted.sort_by(|a, b| a.0.cmp(&b.0));
        let order: Vec<_> = sorted.iter().map(|e| e.1).collect();
        let mut expected: Vec<_> = encoded.iter().map(|e| e.1).collect();
        expected.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()).then(a.1.cmp(&b.1)));
        assert_eq!(order, expected);
    }

    #[test]
    fn version_keys_round_trip() {
        let uid = *b"0123456789abcdef";
        for key in ["", "plain", "with\0nul", "über/straße"] {
            let raw = version_key("bucket", key, &uid);
            assert_eq!(split_version_key(&raw), Some(("bucket".to_owned(), key.to_owned(), uid)));
        }
        assert_eq!(split_version_key(b"bucket"), None);
    }

    #[test]
    fn prefix_bounds_cover_exactly_the_prefix() {
        assert_eq!(prefix_end(b"ab"), Some(b"ac".to_vec()));
        assert_eq!(prefix_end(&[b'a', 0xFF]), Some(b"b".to_vec()));
        assert_eq!(prefix_end(&[0xFF, 0xFF]), None);
    }
}
