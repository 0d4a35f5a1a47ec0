//! Encrypted packages as read back from drives: opening arbitrary bytes under
//! a fixed key must fail cleanly (never panic), whatever the length.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let key = bulwark_crypto::Key32::from_bytes([7; 32]);
    let (head, body) = data.split_at(data.len().min(9));
    let seq = head.iter().take(8).fold(0u64, |a, b| (a << 8) | u64::from(*b));
    let is_final = head.get(8).is_some_and(|b| b & 1 == 1);
    let mut package = body.to_vec();
    let _ = bulwark_crypto::open_package(&key, &[3; 12], seq, is_final, &mut package);
    if !body.is_empty() {
        let span = bulwark_crypto::package_span(body.len() as u64, 0, body.len() as u64 - 1);
        assert!(span.cipher_offset + span.cipher_len <= bulwark_crypto::encrypted_len(body.len() as u64));
    }
});
