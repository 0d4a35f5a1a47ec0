//! The memory check: many large PUTs at once, streamed from a generated body, while the
//! server's RSS is sampled.
//!
//! The client never holds an object: each body repeats one shared 1 MiB random frame (see
//! [`crate::payload::repeated_stream`]), so sixteen 1 GiB uploads cost the client about
//! 1 MiB plus the SDK's buffers. Whatever memory grows is the server's.

use std::time::{Duration, Instant};

use aws_sdk_s3::error::DisplayErrorContext;
use bytes::Bytes;
use serde::Serialize;

use crate::payload::repeated_stream;
use crate::procfs::{cpu_seconds, read_memory};
use crate::s3::Runner;
use crate::stats::Summary;

const PROGRESS_INTERVAL: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, Serialize)]
pub struct RssCheck {
    pub object_size_bytes: u64,
    pub concurrency: usize,
    #[serde(flatten)]
    pub summary: Summary,
    pub errors: u64,
    pub first_error: Option<String>,
    pub server_pid: u32,
    pub rss_before_bytes: u64,
    /// Highest VmRSS seen by the sampler during the uploads.
    pub rss_peak_sampled_bytes: u64,
    /// The kernel's VmHWM (peak over the server's whole life) before and after.
    pub hwm_before_bytes: u64,
    pub hwm_after_bytes: u64,
    pub server_cpu_cores: Option<f64>,
}

impl RssCheck {
    /// The figure for the target: the sampled peak, or the kernel's high-water mark if it
    /// rose during the check (it catches spikes between samples).
    pub fn peak_bytes(&self) -> u64 {
        if self.hwm_after_bytes > self.hwm_before_bytes {
            self.rss_peak_sampled_bytes.max(self.hwm_after_bytes)
        } else {
            self.rss_peak_sampled_bytes
        }
    }
}

/// Runs `concurrency` simultaneous PUTs of `size_bytes` each; returns the figures and the
/// keys written (for cleanup).
pub async fn run(
    runner: &Runner,
    size_bytes: u64,
    concurrency: usize,
    frame: &Bytes,
) -> Result<(RssCheck, Vec<String>), String> {
    let sampler = runner.sampler.as_ref().ok_or("the RSS check needs --server-pid")?;
    let pid = sampler.pid();
    let before = read_memory(pid)?;
    sampler.take_peak_bytes();
    let progress = tokio::spawn(report_progress(pid));
    let server_cpu_start = cpu_seconds(&pid.to_string()).ok();
    let start = Instant::now();
    let uploads: Vec<_> = (0..concurrency)
        .map(|number| {
            let client = runner.client.clone();
            let bucket = runner.bucket.clone();
            let key = format!("{}/rss/{number:04}", runner.prefix);
            let body = repeated_stream(frame, size_bytes);
            tokio::spawn(async move {
                let start = Instant::now();
                let outcome = client.put_object().bucket(&bucket).key(&key).body(body).send().await;
                let latency_us = u64::try_from(start.elapsed().as_micros()).unwrap_or(u64::MAX);
                (key, latency_us, outcome.map_err(|e| DisplayErrorContext(&e).to_string()))
            })
        })
        .collect();
    let mut latencies_us = Vec::new();
    let mut keys = Vec::new();
    let mut errors = 0;
    let mut first_error = None;
    for upload in uploads {
        match upload.await {
            Ok((key, latency_us, Ok(_))) => {
                latencies_us.push(latency_us);
                keys.push(key);
            }
            Ok((key, _, Err(e))) => {
                errors += 1;
                first_error.get_or_insert(format!("PUT {key}: {e}"));
                // A failed upload may still have left a partial object behind.
                keys.push(key);
            }
            Err(e) => {
                errors += 1;
                first_error.get_or_insert(format!("upload task failed: {e}"));
            }
        }
    }
    let elapsed = start.elapsed();
    progress.abort();
    let rss_peak_sampled_bytes = sampler.take_peak_bytes();
    let after = read_memory(pid)?;
    let server_cpu_cores = cpu_seconds(&pid.to_string())
        .ok()
        .zip(server_cpu_start)
        .map(|(end, start)| (end - start) / elapsed.as_secs_f64());
    let check = RssCheck {
        object_size_bytes: size_bytes,
        concurrency,
        summary: Summary::new(latencies_us, size_bytes, elapsed),
        errors,
        first_error,
        server_pid: pid,
        rss_before_bytes: before.rss_bytes,
        rss_peak_sampled_bytes,
        hwm_before_bytes: before.hwm_bytes,
        hwm_after_bytes: after.hwm_bytes,
        server_cpu_cores,
    };
    Ok((check, keys))
}

async fn report_progress(pid: u32) {
    let start = Instant::now();
    let mut interval = tokio::time::interval(PROGRESS_INTERVAL);
    interval.tick().await;
    loop {
        interval.tick().await;
        if let Ok(memory) = read_memory(pid) {
            eprintln!(
                "  rss check: {:>4.0} s, server VmRSS {} MiB, VmHWM {} MiB",
                start.elapsed().as_secs_f64(),
                memory.rss_bytes >> 20,
                memory.hwm_bytes >> 20
            );
        }
    }
}
