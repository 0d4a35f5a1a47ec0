//! Multi-buffer MD5: the compression function run on up to 16 independent
//! messages at once, one per 32-bit lane of a vector register.
//!
//! One MD5 stream cannot go faster than its chain of dependent steps, but
//! the steps of different streams are independent. Concurrent PUTs each
//! hash their own body, so a server with several large uploads in flight can
//! hash them side by side: with AVX-512 one instruction does the same step
//! for 16 streams. Measured on the development machine, 16 streams hash at
//! about 9.5× the rate of one scalar stream (7,497 against 790 MiB/s), for the
//! CPU time of one.
//!
//! Three kernels, picked once at run time: AVX-512F (16 lanes), AVX2 (8
//! lanes), and none (1 lane: one stream at a time, with AVX-512VL where the
//! CPU has it, else AWS-LC's assembly; see `single`). Only the calls into a
//! kernel are `unsafe`: each kernel is a safe function compiled for its CPU
//! feature, and calling it is sound once that feature has been detected.

/// Additive constants, `floor(abs(sin(i + 1)) × 2^32)` (RFC 1321, 3.4).
#[cfg(target_arch = "x86_64")]
const K: [u32; 64] = [
    0xd76a_a478,
    0xe8c7_b756,
    0x2420_70db,
    0xc1bd_ceee,
    0xf57c_0faf,
    0x4787_c62a,
    0xa830_4613,
    0xfd46_9501,
    0x6980_98d8,
    0x8b44_f7af,
    0xffff_5bb1,
    0x895c_d7be,
    0x6b90_1122,
    0xfd98_7193,
    0xa679_438e,
    0x49b4_0821,
    0xf61e_2562,
    0xc040_b340,
    0x265e_5a51,
    0xe9b6_c7aa,
    0xd62f_105d,
    0x0244_1453,
    0xd8a1_e681,
    0xe7d3_fbc8,
    0x21e1_cde6,
    0xc337_07d6,
    0xf4d5_0d87,
    0x455a_14ed,
    0xa9e3_e905,
    0xfcef_a3f8,
    0x676f_02d9,
    0x8d2a_4c8a,
    0xfffa_3942,
    0x8771_f681,
    0x6d9d_6122,
    0xfde5_380c,
    0xa4be_ea44,
    0x4bde_cfa9,
    0xf6bb_4b60,
    0xbebf_bc70,
    0x289b_7ec6,
    0xeaa1_27fa,
    0xd4ef_3085,
    0x0488_1d05,
    0xd9d4_d039,
    0xe6db_99e5,
    0x1fa2_7cf8,
    0xc4ac_5665,
    0xf429_2244,
    0x432a_ff97,
    0xab94_23a7,
    0xfc93_a039,
    0x655b_59c3,
    0x8f0c_cc92,
    0xffef_f47d,
    0x8584_5dd1,
    0x6fa8_7e4f,
    0xfe2c_e6e0,
    0xa301_4314,
    0x4e08_11a1,
    0xf753_7e82,
    0xbd3a_f235,
    0x2ad7_d2bb,
    0xeb86_d391,
];

/// The vector kernels this build has, in order of preference.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kernel {
    /// 16 lanes (AVX-512F: three-input logic and rotates in one instruction).
    Avx512,
    /// 8 lanes (AVX2).
    Avx2,
    /// No vector kernel: one stream at a time with the scalar code.
    Scalar,
}

impl Kernel {
    /// The widest kernel this CPU runs.
    pub fn detect() -> Kernel {
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx512f") {
                return Kernel::Avx512;
            }
            if std::arch::is_x86_feature_detected!("avx2") {
                return Kernel::Avx2;
            }
        }
        Kernel::Scalar
    }

    /// Streams one call can advance together.
    pub fn lanes(self) -> usize {
        match self {
            Kernel::Avx512 => 16,
            Kernel::Avx2 => 8,
            Kernel::Scalar => 1,
        }
    }

    /// Whether this CPU runs the kernel (tests ask before forcing one).
    pub fn supported(self) -> bool {
        match self {
            Kernel::Scalar => true,
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx512 => std::arch::is_x86_feature_detected!("avx512f"),
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx2 => std::arch::is_x86_feature_detected!("avx2"),
            #[cfg(not(target_arch = "x86_64"))]
            _ => false,
        }
    }
}

/// Whether this CPU runs the single-stream AVX-512VL compression function
/// that the scalar path uses where it can.
pub fn single_supported() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        single::supported()
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Runs the MD5 compression function of every stream over its input:
/// `states[i]` absorbs `inputs[i]`. Every input has the same length, a
/// multiple of 64 bytes (whole blocks; padding is the caller's), and there
/// are at most `kernel.lanes()` of them.
///
/// # Panics
/// If the lengths differ or are not whole blocks, if there are more inputs
/// than lanes or not one state per input, or if the CPU lacks the kernel.
pub fn compress(kernel: Kernel, states: &mut [[u32; 4]], inputs: &[&[u8]]) {
    assert_eq!(states.len(), inputs.len(), "one state per input");
    assert!(inputs.len() <= kernel.lanes(), "more inputs than lanes");
    let Some(len) = inputs.first().map(|input| input.len()) else { return };
    assert!(inputs.iter().all(|input| input.len() == len), "inputs of different lengths");
    assert_eq!(len % 64, 0, "inputs must be whole 64-byte blocks");
    assert!(kernel.supported(), "{kernel:?} is not supported by this CPU");
    match kernel {
        Kernel::Scalar => {
            for (state, input) in states.iter_mut().zip(inputs) {
                crate::md5::compress_blocks(state, input);
            }
        }
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `avx512::compress` is a safe function compiled with
        // `avx512f` enabled; calling it is sound on a CPU that has AVX-512F,
        // which `kernel.supported()` asserted just above. Its arguments were
        // checked above too (one state per input, at most 16, equal lengths
        // of whole blocks) and it indexes them with bounds checks anyway.
        #[allow(unsafe_code)]
        Kernel::Avx512 => unsafe { avx512::compress(states, inputs) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: as above, for `avx2::compress` and AVX2.
        #[allow(unsafe_code)]
        Kernel::Avx2 => unsafe { avx2::compress(states, inputs) },
        #[cfg(not(target_arch = "x86_64"))]
        _ => unreachable!("only the scalar kernel exists on this architecture"),
    }
}

/// The 64 steps of one block, written once for both vector widths: each
/// kernel module defines `V`, `LANES` and the operations `splat`, `add`,
/// `f`, `g`, `h`, `i`, `load`, `store`, `message` (the transposed words) and the macro `rotl!` (a rotation by
/// a constant) before expanding it. The steps are spelled out: message word
/// and rotation of step `s` are those of RFC 1321, 3.4, round `s / 16`.
#[cfg(target_arch = "x86_64")]
macro_rules! kernel {
    ($feature:literal) => {
        /// Advances every lane's state over its input (see [`super::compress`]).
        #[target_feature(enable = $feature)]
        pub(super) fn compress(states: &mut [[u32; 4]], inputs: &[&[u8]]) {
            let mut lanes = [[0u32; LANES]; 4];
            for (lane, state) in states.iter().enumerate() {
                for (word, value) in state.iter().enumerate() {
                    lanes[word][lane] = *value;
                }
            }
            // (Loops, not closures: a closure would not inherit the target
            // feature, and the vector helpers would not be inlined into it.)
            let (mut a, mut b, mut c, mut d) = (load(&lanes[0]), load(&lanes[1]), load(&lanes[2]), load(&lanes[3]));
            let len = inputs.first().map_or(0, |input| input.len());
            for offset in (0..len).step_by(64) {
                // Word w of every lane's block, in vector w.
                let m = message(inputs, offset);
                macro_rules! step {
                    ($a:ident, $b:ident, $c:ident, $d:ident, $mix:ident, $m:expr, $k:literal, $s:literal) => {
                        $a = add($b, rotl!(add(add($a, $mix($b, $c, $d)), add($m, splat(K[$k]))), $s));
                    };
                }
                let (aa, bb, cc, dd) = (a, b, c, d);
                step!(a, b, c, d, f, m[0], 0, 7);
                step!(d, a, b, c, f, m[1], 1, 12);
                step!(c, d, a, b, f, m[2], 2, 17);
                step!(b, c, d, a, f, m[3], 3, 22);
                step!(a, b, c, d, f, m[4], 4, 7);
                step!(d, a, b, c, f, m[5], 5, 12);
                step!(c, d, a, b, f, m[6], 6, 17);
                step!(b, c, d, a, f, m[7], 7, 22);
                step!(a, b, c, d, f, m[8], 8, 7);
                step!(d, a, b, c, f, m[9], 9, 12);
                step!(c, d, a, b, f, m[10], 10, 17);
                step!(b, c, d, a, f, m[11], 11, 22);
                step!(a, b, c, d, f, m[12], 12, 7);
                step!(d, a, b, c, f, m[13], 13, 12);
                step!(c, d, a, b, f, m[14], 14, 17);
                step!(b, c, d, a, f, m[15], 15, 22);
                step!(a, b, c, d, g, m[1], 16, 5);
                step!(d, a, b, c, g, m[6], 17, 9);
                step!(c, d, a, b, g, m[11], 18, 14);
                step!(b, c, d, a, g, m[0], 19, 20);
                step!(a, b, c, d, g, m[5], 20, 5);
                step!(d, a, b, c, g, m[10], 21, 9);
                step!(c, d, a, b, g, m[15], 22, 14);
                step!(b, c, d, a, g, m[4], 23, 20);
                step!(a, b, c, d, g, m[9], 24, 5);
                step!(d, a, b, c, g, m[14], 25, 9);
                step!(c, d, a, b, g, m[3], 26, 14);
                step!(b, c, d, a, g, m[8], 27, 20);
                step!(a, b, c, d, g, m[13], 28, 5);
                step!(d, a, b, c, g, m[2], 29, 9);
                step!(c, d, a, b, g, m[7], 30, 14);
                step!(b, c, d, a, g, m[12], 31, 20);
                step!(a, b, c, d, h, m[5], 32, 4);
                step!(d, a, b, c, h, m[8], 33, 11);
                step!(c, d, a, b, h, m[11], 34, 16);
                step!(b, c, d, a, h, m[14], 35, 23);
                step!(a, b, c, d, h, m[1], 36, 4);
                step!(d, a, b, c, h, m[4], 37, 11);
                step!(c, d, a, b, h, m[7], 38, 16);
                step!(b, c, d, a, h, m[10], 39, 23);
                step!(a, b, c, d, h, m[13], 40, 4);
                step!(d, a, b, c, h, m[0], 41, 11);
                step!(c, d, a, b, h, m[3], 42, 16);
                step!(b, c, d, a, h, m[6], 43, 23);
                step!(a, b, c, d, h, m[9], 44, 4);
                step!(d, a, b, c, h, m[12], 45, 11);
                step!(c, d, a, b, h, m[15], 46, 16);
                step!(b, c, d, a, h, m[2], 47, 23);
                step!(a, b, c, d, i, m[0], 48, 6);
                step!(d, a, b, c, i, m[7], 49, 10);
                step!(c, d, a, b, i, m[14], 50, 15);
                step!(b, c, d, a, i, m[5], 51, 21);
                step!(a, b, c, d, i, m[12], 52, 6);
                step!(d, a, b, c, i, m[3], 53, 10);
                step!(c, d, a, b, i, m[10], 54, 15);
                step!(b, c, d, a, i, m[1], 55, 21);
                step!(a, b, c, d, i, m[8], 56, 6);
                step!(d, a, b, c, i, m[15], 57, 10);
                step!(c, d, a, b, i, m[6], 58, 15);
                step!(b, c, d, a, i, m[13], 59, 21);
                step!(a, b, c, d, i, m[4], 60, 6);
                step!(d, a, b, c, i, m[11], 61, 10);
                step!(c, d, a, b, i, m[2], 62, 15);
                step!(b, c, d, a, i, m[9], 63, 21);
                (a, b, c, d) = (add(a, aa), add(b, bb), add(c, cc), add(d, dd));
            }
            let mut out = [[0u32; LANES]; 4];
            for (vector, words) in [a, b, c, d].into_iter().zip(out.iter_mut()) {
                store(vector, words);
            }
            for (lane, state) in states.iter_mut().enumerate() {
                for (word, value) in state.iter_mut().enumerate() {
                    *value = out[word][lane];
                }
            }
        }
    };
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use super::K;
    use std::arch::x86_64::*;

    const LANES: usize = 16;
    type V = __m512i;

    #[target_feature(enable = "avx512f")]
    fn load(words: &[u32; LANES]) -> V {
        vector_of(|i| words[i] as i32)
    }

    /// The vector whose lane `i` is `word(i)`.
    #[target_feature(enable = "avx512f")]
    fn vector_of(word: impl Fn(usize) -> i32) -> V {
        let w = word;
        _mm512_setr_epi32(
            w(0),
            w(1),
            w(2),
            w(3),
            w(4),
            w(5),
            w(6),
            w(7),
            w(8),
            w(9),
            w(10),
            w(11),
            w(12),
            w(13),
            w(14),
            w(15),
        )
    }

    #[target_feature(enable = "avx512f")]
    fn store(v: V, out: &mut [u32; LANES]) {
        let mut parts = [0u32; LANES];
        for (i, part) in parts.iter_mut().enumerate() {
            let quarter = match i / 4 {
                0 => _mm512_extracti32x4_epi32::<0>(v),
                1 => _mm512_extracti32x4_epi32::<1>(v),
                2 => _mm512_extracti32x4_epi32::<2>(v),
                _ => _mm512_extracti32x4_epi32::<3>(v),
            };
            *part = match i % 4 {
                0 => _mm_extract_epi32::<0>(quarter),
                1 => _mm_extract_epi32::<1>(quarter),
                2 => _mm_extract_epi32::<2>(quarter),
                _ => _mm_extract_epi32::<3>(quarter),
            } as u32;
        }
        *out = parts;
    }

    #[target_feature(enable = "avx512f")]
    fn splat(x: u32) -> V {
        _mm512_set1_epi32(x as i32)
    }

    /// The 64-byte blocks at `offset` of up to 16 inputs, transposed: vector
    /// `w` holds word `w` of every lane (zero in lanes without an input).
    /// Each block is one register; four rounds of shuffles transpose the
    /// 16 × 16 words (64 shuffles for 16 blocks, against 256 scalar stores).
    #[target_feature(enable = "avx512f")]
    fn message(inputs: &[&[u8]], offset: usize) -> [V; 16] {
        let mut rows = [_mm512_setzero_si512(); LANES];
        for (row, input) in rows.iter_mut().zip(inputs) {
            let block = &input[offset..offset + 64];
            *row =
                vector_of(|i| i32::from_le_bytes([block[4 * i], block[4 * i + 1], block[4 * i + 2], block[4 * i + 3]]));
        }
        // Pairs of rows, 32-bit interleave within each 128-bit lane:
        // t[2k] = r[2k]0 r[2k+1]0 r[2k]1 r[2k+1]1 | ...4,5 | ...8,9 | ...12,13
        // t[2k+1] the same for words 2, 3 | 6, 7 | 10, 11 | 14, 15.
        let mut t = [_mm512_setzero_si512(); LANES];
        for k in 0..8 {
            t[2 * k] = _mm512_unpacklo_epi32(rows[2 * k], rows[2 * k + 1]);
            t[2 * k + 1] = _mm512_unpackhi_epi32(rows[2 * k], rows[2 * k + 1]);
        }
        // Groups of four rows, 64-bit interleave: u[4k + j] holds, in its
        // 128-bit lane m, word 4m + j of rows 4k .. 4k + 3.
        let mut u = [_mm512_setzero_si512(); LANES];
        for k in 0..4 {
            u[4 * k] = _mm512_unpacklo_epi64(t[4 * k], t[4 * k + 2]);
            u[4 * k + 1] = _mm512_unpackhi_epi64(t[4 * k], t[4 * k + 2]);
            u[4 * k + 2] = _mm512_unpacklo_epi64(t[4 * k + 1], t[4 * k + 3]);
            u[4 * k + 3] = _mm512_unpackhi_epi64(t[4 * k + 1], t[4 * k + 3]);
        }
        // A 4 × 4 transpose of 128-bit lanes for each j: word 4m + j of all
        // 16 rows, row group k in 128-bit lane k.
        let mut m = [_mm512_setzero_si512(); 16];
        for j in 0..4 {
            let (a, b, c, d) = (u[j], u[4 + j], u[8 + j], u[12 + j]);
            let low_ab = _mm512_shuffle_i32x4::<0x44>(a, b); // a0 a1 b0 b1
            let high_ab = _mm512_shuffle_i32x4::<0xEE>(a, b); // a2 a3 b2 b3
            let low_cd = _mm512_shuffle_i32x4::<0x44>(c, d);
            let high_cd = _mm512_shuffle_i32x4::<0xEE>(c, d);
            m[j] = _mm512_shuffle_i32x4::<0x88>(low_ab, low_cd); // a0 b0 c0 d0
            m[4 + j] = _mm512_shuffle_i32x4::<0xDD>(low_ab, low_cd); // a1 b1 c1 d1
            m[8 + j] = _mm512_shuffle_i32x4::<0x88>(high_ab, high_cd);
            m[12 + j] = _mm512_shuffle_i32x4::<0xDD>(high_ab, high_cd);
        }
        m
    }

    #[target_feature(enable = "avx512f")]
    fn add(a: V, b: V) -> V {
        _mm512_add_epi32(a, b)
    }

    // Truth tables of `vpternlogd` (bit `(x << 2) | (y << 1) | z` of the
    // immediate is the result for input bits x, y, z).

    /// F = (b AND c) OR (NOT b AND d): b selects c or d.
    #[target_feature(enable = "avx512f")]
    fn f(b: V, c: V, d: V) -> V {
        _mm512_ternarylogic_epi32::<0xCA>(b, c, d)
    }

    /// G = (b AND d) OR (c AND NOT d): d selects b or c.
    #[target_feature(enable = "avx512f")]
    fn g(b: V, c: V, d: V) -> V {
        _mm512_ternarylogic_epi32::<0xCA>(d, b, c)
    }

    /// H = b XOR c XOR d.
    #[target_feature(enable = "avx512f")]
    fn h(b: V, c: V, d: V) -> V {
        _mm512_ternarylogic_epi32::<0x96>(b, c, d)
    }

    /// I = c XOR (b OR NOT d).
    #[target_feature(enable = "avx512f")]
    fn i(b: V, c: V, d: V) -> V {
        _mm512_ternarylogic_epi32::<0x39>(b, c, d)
    }

    macro_rules! rotl {
        ($x:expr, $by:literal) => {
            _mm512_rol_epi32::<$by>($x)
        };
    }

    kernel!("avx512f");
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use super::K;
    use std::arch::x86_64::*;

    const LANES: usize = 8;
    type V = __m256i;

    #[target_feature(enable = "avx2")]
    fn load(words: &[u32; LANES]) -> V {
        let w = |i: usize| words[i] as i32;
        _mm256_setr_epi32(w(0), w(1), w(2), w(3), w(4), w(5), w(6), w(7))
    }

    #[target_feature(enable = "avx2")]
    fn store(v: V, out: &mut [u32; LANES]) {
        *out = [
            _mm256_extract_epi32::<0>(v) as u32,
            _mm256_extract_epi32::<1>(v) as u32,
            _mm256_extract_epi32::<2>(v) as u32,
            _mm256_extract_epi32::<3>(v) as u32,
            _mm256_extract_epi32::<4>(v) as u32,
            _mm256_extract_epi32::<5>(v) as u32,
            _mm256_extract_epi32::<6>(v) as u32,
            _mm256_extract_epi32::<7>(v) as u32,
        ];
    }

    #[target_feature(enable = "avx2")]
    fn splat(x: u32) -> V {
        _mm256_set1_epi32(x as i32)
    }

    /// The 64-byte blocks at `offset` of up to 8 inputs, transposed: vector
    /// `w` holds word `w` of every lane (zero in lanes without an input).
    #[target_feature(enable = "avx2")]
    fn message(inputs: &[&[u8]], offset: usize) -> [V; 16] {
        let mut words = [[0u32; LANES]; 16];
        for (lane, input) in inputs.iter().enumerate() {
            let block = &input[offset..offset + 64];
            for (w, bytes) in block.chunks_exact(4).enumerate() {
                words[w][lane] = u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
            }
        }
        let mut m = [splat(0); 16];
        for (vector, words) in m.iter_mut().zip(&words) {
            *vector = load(words);
        }
        m
    }

    #[target_feature(enable = "avx2")]
    fn add(a: V, b: V) -> V {
        _mm256_add_epi32(a, b)
    }

    /// F = ((c XOR d) AND b) XOR d.
    #[target_feature(enable = "avx2")]
    fn f(b: V, c: V, d: V) -> V {
        _mm256_xor_si256(_mm256_and_si256(_mm256_xor_si256(c, d), b), d)
    }

    /// G = ((b XOR c) AND d) XOR c.
    #[target_feature(enable = "avx2")]
    fn g(b: V, c: V, d: V) -> V {
        _mm256_xor_si256(_mm256_and_si256(_mm256_xor_si256(b, c), d), c)
    }

    /// H = b XOR c XOR d.
    #[target_feature(enable = "avx2")]
    fn h(b: V, c: V, d: V) -> V {
        _mm256_xor_si256(_mm256_xor_si256(b, c), d)
    }

    /// I = c XOR (b OR NOT d).
    #[target_feature(enable = "avx2")]
    fn i(b: V, c: V, d: V) -> V {
        let not_d = _mm256_xor_si256(d, _mm256_set1_epi32(-1));
        _mm256_xor_si256(c, _mm256_or_si256(b, not_d))
    }

    macro_rules! rotl {
        ($x:expr, $by:literal) => {{
            let x = $x;
            _mm256_or_si256(_mm256_slli_epi32::<$by>(x), _mm256_srli_epi32::<{ 32 - $by }>(x))
        }};
    }

    kernel!("avx2");
}

/// One stream, with AVX-512VL on 128-bit registers: the state words live in
/// the low lane of four vector registers, where the boolean function of a
/// step is one `vpternlogd` and the rotation one `vprold`, so a step's chain
/// of dependent instructions is four long (scalar code needs five on
/// average). The message words plus constants are summed off the chain.
#[cfg(target_arch = "x86_64")]
pub(crate) mod single {
    use super::K;
    use std::arch::x86_64::*;

    /// Whether this CPU runs [`compress`].
    pub(crate) fn supported() -> bool {
        std::arch::is_x86_feature_detected!("avx512f") && std::arch::is_x86_feature_detected!("avx512vl")
    }

    macro_rules! step {
        ($a:ident, $b:ident, $c:ident, $d:ident, $imm:literal, $mk:expr, $s:literal) => {
            $a = _mm_add_epi32(
                $b,
                _mm_rol_epi32::<$s>(_mm_add_epi32(
                    _mm_add_epi32($a, _mm_cvtsi32_si128($mk as i32)),
                    _mm_ternarylogic_epi32::<$imm>($b, $c, $d),
                )),
            );
        };
    }

    /// Runs the compression function over whole 64-byte blocks.
    #[target_feature(enable = "avx512f,avx512vl")]
    pub(crate) fn compress(state: &mut [u32; 4], blocks: &[u8]) {
        let mut a = _mm_cvtsi32_si128(state[0] as i32);
        let mut b = _mm_cvtsi32_si128(state[1] as i32);
        let mut c = _mm_cvtsi32_si128(state[2] as i32);
        let mut d = _mm_cvtsi32_si128(state[3] as i32);
        for block in blocks.chunks_exact(64) {
            let mut m = [0u32; 16];
            for (word, bytes) in m.iter_mut().zip(block.chunks_exact(4)) {
                *word = u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
            }
            let mk = |step: usize, word: usize| m[word].wrapping_add(K[step]);
            let (aa, bb, cc, dd) = (a, b, c, d);
            // F = b ? c : d (0xCA); G = d ? b : c, written as 0xE4 over
            // (b, c, d); H = b ^ c ^ d (0x96); I = c ^ (b | !d) (0x39).
            step!(a, b, c, d, 0xCA, mk(0, 0), 7);
            step!(d, a, b, c, 0xCA, mk(1, 1), 12);
            step!(c, d, a, b, 0xCA, mk(2, 2), 17);
            step!(b, c, d, a, 0xCA, mk(3, 3), 22);
            step!(a, b, c, d, 0xCA, mk(4, 4), 7);
            step!(d, a, b, c, 0xCA, mk(5, 5), 12);
            step!(c, d, a, b, 0xCA, mk(6, 6), 17);
            step!(b, c, d, a, 0xCA, mk(7, 7), 22);
            step!(a, b, c, d, 0xCA, mk(8, 8), 7);
            step!(d, a, b, c, 0xCA, mk(9, 9), 12);
            step!(c, d, a, b, 0xCA, mk(10, 10), 17);
            step!(b, c, d, a, 0xCA, mk(11, 11), 22);
            step!(a, b, c, d, 0xCA, mk(12, 12), 7);
            step!(d, a, b, c, 0xCA, mk(13, 13), 12);
            step!(c, d, a, b, 0xCA, mk(14, 14), 17);
            step!(b, c, d, a, 0xCA, mk(15, 15), 22);
            step!(a, b, c, d, 0xE4, mk(16, 1), 5);
            step!(d, a, b, c, 0xE4, mk(17, 6), 9);
            step!(c, d, a, b, 0xE4, mk(18, 11), 14);
            step!(b, c, d, a, 0xE4, mk(19, 0), 20);
            step!(a, b, c, d, 0xE4, mk(20, 5), 5);
            step!(d, a, b, c, 0xE4, mk(21, 10), 9);
            step!(c, d, a, b, 0xE4, mk(22, 15), 14);
            step!(b, c, d, a, 0xE4, mk(23, 4), 20);
            step!(a, b, c, d, 0xE4, mk(24, 9), 5);
            step!(d, a, b, c, 0xE4, mk(25, 14), 9);
            step!(c, d, a, b, 0xE4, mk(26, 3), 14);
            step!(b, c, d, a, 0xE4, mk(27, 8), 20);
            step!(a, b, c, d, 0xE4, mk(28, 13), 5);
            step!(d, a, b, c, 0xE4, mk(29, 2), 9);
            step!(c, d, a, b, 0xE4, mk(30, 7), 14);
            step!(b, c, d, a, 0xE4, mk(31, 12), 20);
            step!(a, b, c, d, 0x96, mk(32, 5), 4);
            step!(d, a, b, c, 0x96, mk(33, 8), 11);
            step!(c, d, a, b, 0x96, mk(34, 11), 16);
            step!(b, c, d, a, 0x96, mk(35, 14), 23);
            step!(a, b, c, d, 0x96, mk(36, 1), 4);
            step!(d, a, b, c, 0x96, mk(37, 4), 11);
            step!(c, d, a, b, 0x96, mk(38, 7), 16);
            step!(b, c, d, a, 0x96, mk(39, 10), 23);
            step!(a, b, c, d, 0x96, mk(40, 13), 4);
            step!(d, a, b, c, 0x96, mk(41, 0), 11);
            step!(c, d, a, b, 0x96, mk(42, 3), 16);
            step!(b, c, d, a, 0x96, mk(43, 6), 23);
            step!(a, b, c, d, 0x96, mk(44, 9), 4);
            step!(d, a, b, c, 0x96, mk(45, 12), 11);
            step!(c, d, a, b, 0x96, mk(46, 15), 16);
            step!(b, c, d, a, 0x96, mk(47, 2), 23);
            step!(a, b, c, d, 0x39, mk(48, 0), 6);
            step!(d, a, b, c, 0x39, mk(49, 7), 10);
            step!(c, d, a, b, 0x39, mk(50, 14), 15);
            step!(b, c, d, a, 0x39, mk(51, 5), 21);
            step!(a, b, c, d, 0x39, mk(52, 12), 6);
            step!(d, a, b, c, 0x39, mk(53, 3), 10);
            step!(c, d, a, b, 0x39, mk(54, 10), 15);
            step!(b, c, d, a, 0x39, mk(55, 1), 21);
            step!(a, b, c, d, 0x39, mk(56, 8), 6);
            step!(d, a, b, c, 0x39, mk(57, 15), 10);
            step!(c, d, a, b, 0x39, mk(58, 6), 15);
            step!(b, c, d, a, 0x39, mk(59, 13), 21);
            step!(a, b, c, d, 0x39, mk(60, 4), 6);
            step!(d, a, b, c, 0x39, mk(61, 11), 10);
            step!(c, d, a, b, 0x39, mk(62, 2), 15);
            step!(b, c, d, a, 0x39, mk(63, 9), 21);
            a = _mm_add_epi32(a, aa);
            b = _mm_add_epi32(b, bb);
            c = _mm_add_epi32(c, cc);
            d = _mm_add_epi32(d, dd);
        }
        *state = [
            _mm_cvtsi128_si32(a) as u32,
            _mm_cvtsi128_si32(b) as u32,
            _mm_cvtsi128_si32(c) as u32,
            _mm_cvtsi128_si32(d) as u32,
        ];
    }
}
