//! Latency percentiles and throughput of one benchmark cell.
//!
//! Latencies are kept as a plain vector of microseconds and sorted once at the end: a cell
//! records at most a few hundred thousand operations, so exact percentiles cost less than
//! a histogram dependency would.

use std::time::Duration;

use serde::Serialize;

const MIB: f64 = 1024.0 * 1024.0;

/// Nearest-rank percentile (`quantile` in 0..=1) of sorted samples; `None` when empty.
pub fn percentile(sorted_us: &[u64], quantile: f64) -> Option<u64> {
    assert!((0.0..=1.0).contains(&quantile), "quantile {quantile} outside 0..=1");
    assert!(sorted_us.is_sorted(), "percentile needs sorted samples");
    if sorted_us.is_empty() {
        return None;
    }
    // Nearest rank: the smallest sample with at least `quantile` of all samples at or below it.
    let rank = (quantile * sorted_us.len() as f64).ceil() as usize;
    Some(sorted_us[rank.clamp(1, sorted_us.len()) - 1])
}

/// Summary of a set of operations that each moved `object_size_bytes`.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub objects: u64,
    pub bytes: u64,
    pub seconds: f64,
    pub mib_per_s: f64,
    pub objects_per_s: f64,
    pub p50_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    pub max_ms: Option<f64>,
}

impl Summary {
    /// `latencies_us` are the successful operations only; `elapsed` is the wall time of the
    /// whole cell, from the first request to the last response.
    pub fn new(mut latencies_us: Vec<u64>, object_size_bytes: u64, elapsed: Duration) -> Summary {
        latencies_us.sort_unstable();
        let objects = latencies_us.len() as u64;
        let bytes = objects * object_size_bytes;
        let seconds = elapsed.as_secs_f64().max(f64::MIN_POSITIVE);
        let to_ms = |us: u64| us as f64 / 1000.0;
        Summary {
            objects,
            bytes,
            seconds,
            mib_per_s: bytes as f64 / MIB / seconds,
            objects_per_s: objects as f64 / seconds,
            p50_ms: percentile(&latencies_us, 0.50).map(to_ms),
            p99_ms: percentile(&latencies_us, 0.99).map(to_ms),
            max_ms: latencies_us.last().copied().map(to_ms),
        }
    }
}

/// MiB/s of `bytes` moved in `elapsed`.
pub fn mib_per_s(bytes: u64, elapsed: Duration) -> f64 {
    bytes as f64 / MIB / elapsed.as_secs_f64().max(f64::MIN_POSITIVE)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_use_nearest_rank() {
        let samples: Vec<u64> = (1..=100).collect();
        assert_eq!(percentile(&samples, 0.50), Some(50));
        assert_eq!(percentile(&samples, 0.99), Some(99));
        assert_eq!(percentile(&samples, 1.0), Some(100));
        assert_eq!(percentile(&samples, 0.0), Some(1));
        assert_eq!(percentile(&[7], 0.99), Some(7));
        assert_eq!(percentile(&[1, 2], 0.50), Some(1));
        assert_eq!(percentile(&[], 0.50), None);
    }

    #[test]
    fn summary_counts_throughput_over_wall_time() {
        let summary = Summary::new(vec![3000, 1000, 2000, 4000], 1 << 20, Duration::from_secs(2));
        assert_eq!(summary.objects, 4);
        assert!((summary.mib_per_s - 2.0).abs() < 1e-9);
        assert!((summary.objects_per_s - 2.0).abs() < 1e-9);
        assert_eq!(summary.p50_ms, Some(2.0));
        assert_eq!(summary.p99_ms, Some(4.0));
        assert_eq!(summary.max_ms, Some(4.0));
    }
}
