//! What the server process costs: RSS and CPU time read from `/proc/<pid>`.
//!
//! A background thread samples `VmRSS` every [`SAMPLE_INTERVAL`] and keeps the highest
//! value since the last [`RssSampler::take_peak_bytes`]; the kernel's own `VmHWM` (the
//! peak over the process's whole life) is read alongside, since a sampler can miss a
//! spike shorter than its interval. CPU time comes from `utime + stime` in
//! `/proc/<pid>/stat`, which counts all threads.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

pub const SAMPLE_INTERVAL: Duration = Duration::from_millis(20);

/// `/proc/<pid>/stat` counts CPU time in clock ticks of `USER_HZ`, which Linux fixes at
/// 100 for user space on every architecture it exports to (reading it properly needs
/// `sysconf`, i.e. libc).
const USER_HZ: f64 = 100.0;

/// The memory lines of `/proc/<pid>/status`, in bytes.
#[derive(Debug, Clone, Copy)]
pub struct Memory {
    pub rss_bytes: u64,
    pub hwm_bytes: u64,
}

pub fn read_memory(pid: u32) -> Result<Memory, String> {
    let path = format!("/proc/{pid}/status");
    let text = std::fs::read_to_string(&path).map_err(|e| format!("read {path}: {e}"))?;
    let field = |name: &str| -> Result<u64, String> {
        let line =
            text.lines().find(|line| line.starts_with(name)).ok_or_else(|| format!("{path} has no {name} line"))?;
        let kib: u64 = line[name.len()..]
            .trim()
            .trim_end_matches("kB")
            .trim()
            .parse()
            .map_err(|_| format!("{path}: cannot parse `{line}`"))?;
        Ok(kib * 1024)
    };
    Ok(Memory { rss_bytes: field("VmRSS:")?, hwm_bytes: field("VmHWM:")? })
}

/// User + system CPU seconds used so far by all threads of `pid` (`"self"` for this process).
pub fn cpu_seconds(pid: &str) -> Result<f64, String> {
    let path = format!("/proc/{pid}/stat");
    let text = std::fs::read_to_string(&path).map_err(|e| format!("read {path}: {e}"))?;
    parse_cpu_seconds(&text).ok_or_else(|| format!("{path}: unexpected format"))
}

fn parse_cpu_seconds(stat: &str) -> Option<f64> {
    // The command name (field 2) is in parentheses and may itself hold spaces or ')'.
    let after_name = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    // Fields 14 and 15 of the line; field 3 (state) is the first after the name.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) as f64 / USER_HZ)
}

/// Samples a process's RSS in the background until dropped.
pub struct RssSampler {
    pid: u32,
    stop: Arc<AtomicBool>,
    peak_bytes: Arc<AtomicU64>,
    thread: Option<JoinHandle<()>>,
}

impl RssSampler {
    pub fn start(pid: u32) -> Result<RssSampler, String> {
        let first = read_memory(pid)?;
        let stop = Arc::new(AtomicBool::new(false));
        let peak_bytes = Arc::new(AtomicU64::new(first.rss_bytes));
        let thread = {
            let stop = Arc::clone(&stop);
            let peak_bytes = Arc::clone(&peak_bytes);
            std::thread::Builder::new()
                .name("rss-sampler".to_owned())
                .spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        // A process that exited stops contributing; the benchmark reports
                        // the failed requests separately.
                        if let Ok(memory) = read_memory(pid) {
                            peak_bytes.fetch_max(memory.rss_bytes, Ordering::Relaxed);
                        }
                        std::thread::sleep(SAMPLE_INTERVAL);
                    }
                })
                .map_err(|e| format!("start the RSS sampler thread: {e}"))?
        };
        Ok(RssSampler { pid, stop, peak_bytes, thread: Some(thread) })
    }

    /// Highest sampled RSS since the previous call (or the start); restarts the window at
    /// the current RSS.
    pub fn take_peak_bytes(&self) -> u64 {
        let current = read_memory(self.pid).map(|memory| memory.rss_bytes).unwrap_or(0);
        let peak = self.peak_bytes.swap(current, Ordering::Relaxed);
        peak.max(current)
    }

    pub fn pid(&self) -> u32 {
        self.pid
    }
}

impl Drop for RssSampler {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            // The thread only sleeps and reads /proc; it cannot panic in a way worth reporting.
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_seconds_parse_past_a_name_with_spaces() {
        let stat = "1234 (tokio (x) y) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 9 0 1 2 3";
        assert_eq!(parse_cpu_seconds(stat), Some(3.0));
        assert_eq!(parse_cpu_seconds("1234 (x) S 1"), None);
    }

    #[test]
    fn this_process_can_be_measured() {
        let memory = read_memory(std::process::id()).expect("read our own /proc status");
        assert!(memory.rss_bytes > 0 && memory.hwm_bytes > 0);
        assert!(cpu_seconds("self").expect("read our own /proc stat") >= 0.0);
    }
}
