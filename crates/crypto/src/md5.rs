//! MD5, for what S3 defines with it: ETags and `Content-MD5`. Not a security
//! primitive here; nothing secret or trusted depends on it.
//!
//! Every PUT of a plaintext or SSE-S3 object hashes its whole body with MD5,
//! and MD5 is sequential (one core per object, whatever the machine has), so
//! its speed bounds the speed of a large PUT. AWS-LC's assembly
//! implementation runs about 1.2× as fast as the portable Rust one on x86-64
//! (763 vs 624 MiB/s on the development machine), and AWS-LC is already our
//! cryptographic library; `aws-lc-rs` simply does not expose MD5, so this
//! module calls the three C functions itself.
//!
//! [`Md5State`], the hash the write path uses, runs on a CPU with AVX-512VL
//! a compression function of our own another 1.1× as fast (837–859 against
//! 745–772 MiB/s there; see [`crate::md5_lanes`]), and steps several bodies
//! at once through the multi-buffer kernels.

use std::mem::MaybeUninit;

use aws_lc_sys::{MD5_CTX, MD5_Final, MD5_Init, MD5_Update};

/// A streaming MD5: `update` any number of times, then `finalize`.
pub struct Md5 {
    ctx: MD5_CTX,
}

impl Md5 {
    pub fn new() -> Md5 {
        let mut ctx = MaybeUninit::<MD5_CTX>::uninit();
        // SAFETY: MD5_Init writes every field of the context it is given (it
        // zeroes the struct, then sets the initial state) and cannot fail; the
        // pointer is valid for writes of one MD5_CTX. After it the context is
        // initialised. MD5_CTX is plain data (integers and a byte array, no
        // pointers), so moving it afterwards is sound.
        let ctx = unsafe {
            MD5_Init(ctx.as_mut_ptr());
            ctx.assume_init()
        };
        Md5 { ctx }
    }

    pub fn update(&mut self, data: &[u8]) {
        // SAFETY: the context was initialised by MD5_Init and is exclusively
        // borrowed; `data` is valid for reads of `data.len()` bytes for the
        // duration of the call, which does not keep the pointer.
        unsafe {
            MD5_Update(&mut self.ctx, data.as_ptr().cast(), data.len());
        }
    }

    pub fn finalize(mut self) -> [u8; 16] {
        let mut out = [0u8; 16];
        // SAFETY: `out` is valid for writes of the 16 bytes of an MD5 digest;
        // the context is initialised and exclusively owned.
        unsafe {
            MD5_Final(out.as_mut_ptr(), &mut self.ctx);
        }
        out
    }

    /// The MD5 of `data` in one call.
    pub fn digest(data: &[u8]) -> [u8; 16] {
        let mut md5 = Md5::new();
        md5.update(data);
        md5.finalize()
    }
}

impl Default for Md5 {
    fn default() -> Md5 {
        Md5::new()
    }
}

/// Whether this CPU runs the single-stream AVX-512VL compression function
/// (about 1.1× AWS-LC's scalar assembly: four instructions on a step's chain
/// of dependencies instead of about five).
#[cfg(target_arch = "x86_64")]
static SINGLE_STREAM_AVX512: std::sync::LazyLock<bool> = std::sync::LazyLock::new(crate::md5_lanes::single::supported);

/// MD5's initial chaining value (RFC 1321, 3.3).
const INITIAL: [u32; 4] = [0x6745_2301, 0xefcd_ab89, 0x98ba_dcfe, 0x1032_5476];

/// Runs the compression function over whole 64-byte blocks with AWS-LC's
/// scalar code (the one-lane kernel of [`crate::md5_lanes`]).
pub(crate) fn compress_blocks(state: &mut [u32; 4], blocks: &[u8]) {
    #[cfg(target_arch = "x86_64")]
    let avx512 = *SINGLE_STREAM_AVX512;
    #[cfg(not(target_arch = "x86_64"))]
    let avx512 = false;
    compress_blocks_with(avx512, state, blocks);
}

/// [`compress_blocks`] with the code chosen by the caller (tests run both).
///
/// # Panics
/// If `avx512` is asked for on a CPU without AVX-512F and AVX-512VL.
fn compress_blocks_with(avx512: bool, state: &mut [u32; 4], blocks: &[u8]) {
    assert_eq!(blocks.len() % 64, 0, "whole blocks only");
    #[cfg(target_arch = "x86_64")]
    if avx512 {
        assert!(crate::md5_lanes::single::supported(), "AVX-512VL MD5 asked for on a CPU without it");
        // SAFETY: `single::compress` is a safe function compiled with
        // `avx512f` and `avx512vl` enabled; calling it is sound on a CPU that
        // has both, which was asserted just above. It reads `blocks` through
        // bounds-checked slices.
        unsafe { crate::md5_lanes::single::compress(state, blocks) };
        return;
    }
    #[cfg(not(target_arch = "x86_64"))]
    assert!(!avx512, "AVX-512VL MD5 asked for on a CPU without it");
    let mut md5 = Md5::new();
    md5.ctx.h = *state;
    // Whole blocks with nothing buffered: AWS-LC compresses them all in
    // place and buffers nothing, so `h` is the state after them.
    md5.update(blocks);
    debug_assert_eq!(md5.ctx.num, 0);
    *state = md5.ctx.h;
}

/// A streaming MD5 whose chaining value is open, so that several streams can
/// be advanced together by a vector kernel ([`Md5State::update_many`]).
/// Produces the same digests as [`Md5`].
#[derive(Clone, Debug)]
pub struct Md5State {
    state: [u32; 4],
    /// The start of an incomplete block.
    buffer: [u8; 64],
    buffered: usize,
    len: u64,
}

impl Md5State {
    pub fn new() -> Md5State {
        Md5State { state: INITIAL, buffer: [0; 64], buffered: 0, len: 0 }
    }

    /// Bytes absorbed so far.
    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Absorbs `data` with the scalar code.
    pub fn update(&mut self, mut data: &[u8]) {
        self.len += data.len() as u64;
        if self.buffered > 0 {
            let take = (64 - self.buffered).min(data.len());
            self.buffer[self.buffered..self.buffered + take].copy_from_slice(&data[..take]);
            self.buffered += take;
            data = &data[take..];
            if self.buffered < 64 {
                return;
            }
            compress_blocks(&mut self.state, &self.buffer);
            self.buffered = 0;
        }
        let whole = data.len() / 64 * 64;
        if whole > 0 {
            compress_blocks(&mut self.state, &data[..whole]);
        }
        let tail = &data[whole..];
        self.buffer[..tail.len()].copy_from_slice(tail);
        self.buffered = tail.len();
    }

    /// Absorbs `streams[i].1` into `streams[i].0` for every `i`, running the
    /// whole blocks of up to `kernel.lanes()` streams at a time through the
    /// vector kernel; what no other stream can share a pass with (a stream
    /// longer than all the others, the ends of blocks) goes through the
    /// scalar code.
    ///
    /// # Panics
    /// If the CPU lacks `kernel`.
    pub fn update_many(kernel: crate::md5_lanes::Kernel, streams: &mut [(&mut Md5State, &[u8])]) {
        // Complete buffered blocks first, so every stream left with data is
        // block-aligned.
        for (md5, data) in streams.iter_mut() {
            if md5.buffered > 0 {
                let take = (64 - md5.buffered).min(data.len());
                md5.update(&data[..take]);
                *data = &data[take..];
            }
        }
        let lanes = kernel.lanes();
        let mut active: Vec<usize> = Vec::with_capacity(streams.len());
        loop {
            active.clear();
            active.extend((0..streams.len()).filter(|&i| streams[i].1.len() >= 64));
            if active.len() < 2 || lanes < 2 {
                break;
            }
            for group in active.chunks(lanes) {
                if group.len() < 2 {
                    continue;
                }
                let whole = group.iter().map(|&i| streams[i].1.len() / 64 * 64).min().unwrap_or(0);
                let mut states: Vec<[u32; 4]> = group.iter().map(|&i| streams[i].0.state).collect();
                let inputs: Vec<&[u8]> = group.iter().map(|&i| &streams[i].1[..whole]).collect();
                crate::md5_lanes::compress(kernel, &mut states, &inputs);
                for (&i, state) in group.iter().zip(states) {
                    let (md5, data) = &mut streams[i];
                    md5.state = state;
                    md5.len += whole as u64;
                    *data = &data[whole..];
                }
            }
        }
        for (md5, data) in streams.iter_mut() {
            md5.update(data);
            *data = &[];
        }
    }

    /// The digest of everything absorbed so far (the state is left as is).
    pub fn finalize(&self) -> [u8; 16] {
        let mut state = self.state;
        let mut tail = [0u8; 128];
        tail[..self.buffered].copy_from_slice(&self.buffer[..self.buffered]);
        tail[self.buffered] = 0x80;
        let padded = if self.buffered < 56 { 64 } else { 128 };
        tail[padded - 8..padded].copy_from_slice(&(self.len.wrapping_mul(8)).to_le_bytes());
        compress_blocks(&mut state, &tail[..padded]);
        let mut out = [0u8; 16];
        for (bytes, word) in out.chunks_exact_mut(4).zip(state) {
            bytes.copy_from_slice(&word.to_le_bytes());
        }
        out
    }
}

impl Default for Md5State {
    fn default() -> Md5State {
        Md5State::new()
    }
}

#[cfg(test)]
mod tests {
    use super::{Md5, Md5State, compress_blocks_with};
    use crate::md5_lanes::Kernel;

    fn hex(digest: [u8; 16]) -> String {
        digest.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// RFC 1321, appendix A.5.
    #[test]
    fn rfc_1321_test_suite() {
        let suite = [
            ("", "d41d8cd98f00b204e9800998ecf8427e"),
            ("a", "0cc175b9c0f1b6a831c399e269772661"),
            ("abc", "900150983cd24fb0d6963f7d28e17f72"),
            ("message digest", "f96b697d7cb7938d525a2f31aaf161d0"),
            ("abcdefghijklmnopqrstuvwxyz", "c3fcd3d76192e4007dfb496cca67e13b"),
            ("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789", "d174ab98d277d9f5a5611c2c9f419d9f"),
            (
                "12345678901234567890123456789012345678901234567890123456789012345678901234567890",
                "57edf4a22be3c955ac49da2e2107b67a",
            ),
        ];
        for (input, expected) in suite {
            assert_eq!(hex(Md5::digest(input.as_bytes())), expected, "MD5({input:?})");
        }
    }

    /// Fed in pieces of every awkward size (inside a 64-byte block, across
    /// blocks, empty), the digest is that of the whole, and equal to the
    /// portable implementation's.
    #[test]
    fn streaming_in_any_pieces_equals_one_pass_and_the_portable_implementation() {
        use md5_portable::Digest;
        let data: Vec<u8> = (0..300_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 9) as u8).collect();
        let whole = Md5::digest(&data);
        assert_eq!(whole, <[u8; 16]>::from(md5_portable::Md5::digest(&data)));
        for piece in [1, 7, 63, 64, 65, 1_000, 65_536, 100_003] {
            let mut md5 = Md5::new();
            md5.update(&[]);
            for chunk in data.chunks(piece) {
                md5.update(chunk);
            }
            assert_eq!(md5.finalize(), whole, "pieces of {piece} bytes");
        }
    }

    fn sample(len: usize, seed: u32) -> Vec<u8> {
        (0..len as u32).map(|i| (i.wrapping_add(seed).wrapping_mul(2_654_435_761) >> 11) as u8).collect()
    }

    /// The open-state MD5 gives AWS-LC's digests for every length around
    /// the padding boundaries, whole or fed in awkward pieces.
    #[test]
    fn open_state_md5_equals_aws_lc_at_every_padding_boundary() {
        for len in (0..200).chain([1_000, 4_096, 65_536 + 55, 300_001]) {
            let data = sample(len, len as u32);
            let mut whole = Md5State::new();
            whole.update(&data);
            assert_eq!(whole.finalize(), Md5::digest(&data), "length {len}");
            assert_eq!(whole.len(), len as u64);
            let mut pieces = Md5State::new();
            for chunk in data.chunks(37) {
                pieces.update(chunk);
            }
            assert_eq!(pieces.finalize(), Md5::digest(&data), "length {len} in pieces of 37");
        }
    }

    /// Streams advanced together through each vector kernel this CPU has
    /// (and the scalar one) end with the digests of hashing each alone,
    /// whatever their lengths, their buffered starts and their number
    /// (fewer, as many as and more than the lanes).
    #[test]
    fn streams_hashed_together_in_lanes_equal_each_hashed_alone() {
        for kernel in [Kernel::Avx512, Kernel::Avx2, Kernel::Scalar] {
            if !kernel.supported() {
                eprintln!("{kernel:?}: not on this CPU, skipped");
                continue;
            }
            for count in [1, 2, 3, 8, 9, 16, 17, 40] {
                let bodies: Vec<Vec<u8>> = (0..count)
                    .map(|i| sample([0, 1, 63, 64, 65, 640, 4_096, 70_000, 131_072][i % 9] + i * 64, i as u32))
                    .collect();
                let mut states: Vec<Md5State> = vec![Md5State::new(); count];
                // Feed each body in three rounds of unequal slices, the first
                // leaving most streams with a partial block buffered.
                let cuts = |body: &Vec<u8>, i: usize| {
                    let a = (body.len() / 3 + i % 5).min(body.len());
                    let b = (2 * body.len() / 3).max(a);
                    [0, a, b, body.len()]
                };
                for round in 0..3 {
                    let mut streams: Vec<(&mut Md5State, &[u8])> = states
                        .iter_mut()
                        .zip(&bodies)
                        .enumerate()
                        .map(|(i, (state, body))| {
                            let c = cuts(body, i);
                            (state, &body[c[round]..c[round + 1]])
                        })
                        .collect();
                    Md5State::update_many(kernel, &mut streams);
                    assert!(streams.iter().all(|(_, rest)| rest.is_empty()));
                }
                for (i, (state, body)) in states.iter().zip(&bodies).enumerate() {
                    assert_eq!(state.finalize(), Md5::digest(body), "{kernel:?}, {count} streams, stream {i}");
                }
            }
        }
    }

    /// Both single-stream compression functions (AVX-512VL where the CPU
    /// has it, and AWS-LC's) give AWS-LC's digests, padding included.
    #[test]
    fn both_single_stream_compression_functions_give_aws_lc_digests() {
        let choices: &[bool] = if cfg!(target_arch = "x86_64") && crate::md5_lanes::single_supported() {
            &[true, false]
        } else {
            &[false]
        };
        for &avx512 in choices {
            for len in [0, 1, 55, 56, 63, 64, 65, 119, 120, 128, 1_000, 65_536 + 13] {
                let data = sample(len, 7 + len as u32);
                let mut state = super::INITIAL;
                let whole = len / 64 * 64;
                compress_blocks_with(avx512, &mut state, &data[..whole]);
                let mut tail = [0u8; 128];
                let rest = &data[whole..];
                tail[..rest.len()].copy_from_slice(rest);
                tail[rest.len()] = 0x80;
                let padded = if rest.len() < 56 { 64 } else { 128 };
                tail[padded - 8..padded].copy_from_slice(&((len as u64) * 8).to_le_bytes());
                compress_blocks_with(avx512, &mut state, &tail[..padded]);
                let digest: Vec<u8> = state.iter().flat_map(|w| w.to_le_bytes()).collect();
                assert_eq!(digest, Md5::digest(&data), "length {len}, AVX-512VL {avx512}");
            }
        }
    }
}
