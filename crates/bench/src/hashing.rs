//! The hashing floor of a signed PUT, measured on this machine.
//!
//! With `--hash-every-body` the SDK hashes the whole body with SHA-256 before it
//! sends a byte (the hash is part of the signature), and the server's MD5 of
//! the body (the ETag) can only follow the bytes as they arrive. So one PUT
//! at a time takes at least `size / SHA-256 rate + size / MD5 rate`, however
//! fast the store codes and writes: a ceiling the report prints beside the
//! PUT ×1 target, so a miss can be told apart from a slow store.

use std::time::Instant;

use serde::Serialize;
use sha2::Digest;

/// Bytes hashed per measurement (as a large object: out of the CPU caches).
const HASHED_BYTES: usize = 64 << 20;
/// Measurements per hash; the best is kept (the machine's rate, not its noise).
const RUNS: usize = 3;

#[derive(Debug, Clone, Copy, Serialize)]
pub struct HashFloor {
    /// SHA-256 as the SDK signs a payload (the RustCrypto implementation).
    pub sha256_mib_per_s: f64,
    /// MD5 as the server computes an ETag of one body (`bulwark_crypto::Md5State`,
    /// on the fastest single-stream code this CPU has).
    pub md5_mib_per_s: f64,
}

impl HashFloor {
    /// Times both hashes over `HASHED_BYTES` of `pattern` repeated.
    pub fn measure(pattern: &[u8]) -> HashFloor {
        HashFloor::measure_over(pattern, HASHED_BYTES)
    }

    fn measure_over(pattern: &[u8], bytes: usize) -> HashFloor {
        let mut data = Vec::with_capacity(bytes);
        while data.len() < bytes {
            let take = pattern.len().min(bytes - data.len());
            data.extend_from_slice(&pattern[..take]);
        }
        let sha256 = best_rate(&data, |data| sha2::Sha256::digest(data).len());
        let md5 = best_rate(&data, |data| {
            let mut md5 = bulwark_crypto::Md5State::new();
            md5.update(data);
            md5.finalize().len()
        });
        HashFloor { sha256_mib_per_s: sha256, md5_mib_per_s: md5 }
    }

    /// The most MiB/s one signed PUT at a time can reach: the client's
    /// SHA-256 of the body, then the server's MD5 of it, one after the other.
    pub fn signed_put_mib_per_s(&self) -> f64 {
        1.0 / (1.0 / self.sha256_mib_per_s + 1.0 / self.md5_mib_per_s)
    }
}

fn best_rate(data: &[u8], hash: impl Fn(&[u8]) -> usize) -> f64 {
    let mib = data.len() as f64 / f64::from(1u32 << 20);
    (0..RUNS)
        .map(|_| {
            let started = Instant::now();
            std::hint::black_box(hash(std::hint::black_box(data)));
            mib / started.elapsed().as_secs_f64().max(f64::MIN_POSITIVE)
        })
        .fold(0.0, f64::max)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ceiling_is_both_hashes_one_after_the_other() {
        let floor = HashFloor { sha256_mib_per_s: 1200.0, md5_mib_per_s: 600.0 };
        // 1 MiB takes 1/1200 s + 1/600 s = 1/400 s.
        assert!((floor.signed_put_mib_per_s() - 400.0).abs() < 1e-9);
        let equal = HashFloor { sha256_mib_per_s: 1000.0, md5_mib_per_s: 1000.0 };
        assert!((equal.signed_put_mib_per_s() - 500.0).abs() < 1e-9);
    }

    #[test]
    fn measured_rates_are_positive_and_finite() {
        let floor = HashFloor::measure_over(&[1, 2, 3, 5, 8, 13], 1 << 20);
        for rate in [floor.sha256_mib_per_s, floor.md5_mib_per_s, floor.signed_put_mib_per_s()] {
            assert!(rate.is_finite() && rate > 0.0, "{rate}");
        }
        assert!(floor.signed_put_mib_per_s() < floor.sha256_mib_per_s.min(floor.md5_mib_per_s));
    }
}
