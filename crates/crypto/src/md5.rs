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

#[cfg(test)]
mod tests {
    use super::Md5;

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
}
