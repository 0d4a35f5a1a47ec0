//! Sealed object keys from records: unsealing arbitrary bytes must fail cleanly.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if data.len() < 44 {
        return;
    }
    let mut salt = [0u8; 32];
    salt.copy_from_slice(&data[..32]);
    let mut nonce = [0u8; 12];
    nonce.copy_from_slice(&data[32..44]);
    let sealed = bulwark_crypto::SealedKey { salt, nonce, ciphertext: data[44..].to_vec() };
    let secret = bulwark_crypto::Key32::from_bytes([9; 32]);
    let _ = bulwark_crypto::unseal_key(&secret, b"SSE-C\0b\0k", &sealed);
});
