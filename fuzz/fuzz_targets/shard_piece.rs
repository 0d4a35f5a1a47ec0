//! Framed shard pieces read from drives: checking arbitrary bytes must never
//! panic, and must accept only what `frame_piece` produced.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let piece_len = data.len().saturating_sub(bulwark_erasure::HASH_LEN_BYTES);
    if let Ok(piece) = bulwark_erasure::open_piece(1, 2, data, piece_len) {
        let mut framed = Vec::new();
        bulwark_erasure::frame_piece(1, 2, piece, &mut framed);
        assert_eq!(framed, data);
    }
});
