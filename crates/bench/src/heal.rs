//! `--heal` (issue 5): scrub and heal throughput, and what a scrub does to foreground
//! latency.
//!
//! In order:
//! 1. A data set: `--heal-bytes` (2 GiB) in `--heal-object-size` (4 MiB) objects, 8 PUTs
//!    in flight.
//! 2. With `--periodic-scrub-wait-secs`: wait for the server's own periodic scrub (its
//!    configured rate, 64 MiB/s by default; the first starts 60 s after the server) and run
//!    the foreground cells while it runs.
//! 3. Foreground cells with no scrub running: a 1 MiB PUT cell, then a GET cell of those
//!    objects, `--foreground-secs` each, `--foreground-concurrency` in flight. The
//!    foreground objects are deleted after each phase, so the scrub and the heal see the
//!    data set alone.
//! 4. `bulwark admin scrub --bucket B --wait`, timed: stored bytes checked (the report's
//!    `bytes checked`: every framed piece on every drive, ~1.5× the data in 4+2) over the
//!    wall time. An admin scrub runs at full speed: the server passes rate 0 (unlimited)
//!    for it; only the periodic scrub is paced.
//! 5. The foreground cells again while admin scrubs run (a new one is started whenever
//!    none is running), so the whole cell overlaps a scrub.
//! 6. Heal of a wiped drive: while the server runs, every shard file of the benchmark
//!    bucket on one drive (`<drive>/data/<bucket>/`) is deleted, then
//!    `bulwark admin heal --bucket B --wait` is timed; MiB/s rebuilt = the deleted bytes
//!    over its wall time. The same directory is summed again afterwards.
//!
//! During every foreground phase `bulwark admin status --json` is sampled twice a second
//! (the same small cost in every phase) to record whether a scrub ran and how fast it
//! progressed. With `--drop-caches` the page cache is dropped before the scrub and the
//! heal, so they read from the disk.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::Value;

use crate::admin::Admin;
use crate::args::format_size;
use crate::disk::{self, RawDisk};
use crate::payload;
use crate::s3::{Bounds, Cell, Op, Runner};

/// PUTs in flight while the data set is written.
const DATA_SET_CONCURRENCY: usize = 8;
/// Objects of the foreground cells.
const FOREGROUND_OBJECT_BYTES: u64 = 1024 * 1024;
/// The foreground cells stop on time, not bytes; this only bounds a runaway cell.
const FOREGROUND_BYTES_MAX: u64 = 64 * 1024 * 1024 * 1024;
const STATUS_INTERVAL: Duration = Duration::from_millis(500);
/// Longest wait for a running scrub to finish before the next step.
const SCRUB_IDLE_WAIT: Duration = Duration::from_secs(15 * 60);
/// Directory depth under `--data-dir` searched for drives (`facility-N/drive-M`).
const DRIVE_SEARCH_DEPTH: usize = 3;

pub struct Plan {
    pub admin: Admin,
    pub bucket: String,
    pub data_bytes: u64,
    pub object_size_bytes: u64,
    /// The drive whose shard files are deleted.
    pub drive: PathBuf,
    pub foreground: Duration,
    pub foreground_concurrency: usize,
    pub periodic_wait: Duration,
    pub drop_caches: bool,
    /// The server's process id, for its CPU time during the scrub and the heal.
    pub server_pid: Option<u32>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ForegroundPhase {
    pub phase: &'static str,
    pub put: Cell,
    pub get: Option<Cell>,
    /// Share of the status samples taken during the cells that showed a scrub running.
    pub scrub_running_share: Option<f64>,
    /// Stored bytes the scrub checked per second while the cells ran.
    pub scrub_mib_per_s: Option<f64>,
    /// Admin scrubs this phase started.
    pub scrubs_started: u64,
    pub status_samples: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct ScrubTiming {
    pub seconds: f64,
    pub bytes_checked: Option<u64>,
    pub versions_checked: Option<u64>,
    pub problems_found: Option<u64>,
    pub mib_per_s: Option<f64>,
    pub page_cache_dropped: bool,
    /// Server CPU time over wall time (with --server-pid).
    pub server_cpu_cores: Option<f64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct HealTiming {
    pub drive: PathBuf,
    pub shard_directory: PathBuf,
    pub files_deleted: u64,
    pub bytes_deleted: u64,
    pub seconds: f64,
    /// Deleted (= rebuilt) shard bytes over the wall time of `heal --wait`.
    pub mib_per_s: f64,
    pub versions_checked: Option<u64>,
    pub problems_found: Option<u64>,
    /// Growth of the server's `shards_rebuilt` counter over the heal.
    pub shards_rebuilt: Option<u64>,
    pub files_after: u64,
    pub bytes_after: u64,
    pub page_cache_dropped: bool,
    pub server_cpu_cores: Option<f64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct HealReport {
    pub bucket: String,
    pub data_set: Option<Cell>,
    pub foreground: Vec<ForegroundPhase>,
    pub scrub: Option<ScrubTiming>,
    pub heal: Option<HealTiming>,
    /// Steps that failed or were skipped, in order.
    pub errors: Vec<String>,
}

/// The drives under a server's data directory (directories holding `.bulwark/format.json`),
/// sorted.
pub fn find_drives(data_dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut level = vec![data_dir.to_path_buf()];
    for _ in 0..=DRIVE_SEARCH_DEPTH {
        let mut next = Vec::new();
        for directory in level {
            if directory.join(".bulwark").join("format.json").is_file() {
                found.push(directory);
                continue;
            }
            let Ok(entries) = std::fs::read_dir(&directory) else { continue };
            next.extend(entries.flatten().map(|entry| entry.path()).filter(|path| path.is_dir()));
        }
        level = next;
    }
    found.sort();
    found
}

/// Runs the steps (see the module docs); returns the figures and every key written.
pub async fn run(plan: &Plan, runner: &Runner) -> (HealReport, Vec<String>) {
    let mut report = HealReport {
        bucket: plan.bucket.clone(),
        data_set: None,
        foreground: Vec::new(),
        scrub: None,
        heal: None,
        errors: Vec::new(),
    };
    let mut keys = Vec::new();
    let count = plan.data_bytes / plan.object_size_bytes;
    eprintln!("heal: writing the data set, {count} × {} ...", format_size(plan.object_size_bytes));
    let Ok(length) = usize::try_from(plan.object_size_bytes) else {
        report.errors.push("object size too large for this platform".to_owned());
        return (report, keys);
    };
    let data_runner = Runner { prefix: format!("{}/heal-data", runner.prefix), ..runner.clone() };
    let bounds = Bounds { duration: Duration::MAX, bytes_max: u64::MAX, count: Some(count) };
    let body = payload::random_bytes(length, plan.object_size_bytes);
    let (cell, written) =
        data_runner.run_cell(Op::Put, &body, DATA_SET_CONCURRENCY, bounds, &Arc::new(Vec::new()), false).await;
    eprintln!("{}", crate::report::table_row(&cell));
    keys.extend(written);
    report.data_set = Some(cell);
    drop(body);

    let foreground = Foreground::new(plan, runner);
    if !plan.periodic_wait.is_zero() {
        eprintln!("heal: waiting up to {} s for the server's periodic scrub ...", plan.periodic_wait.as_secs());
        match wait_for_scrub(&plan.admin, true, plan.periodic_wait).await {
            Ok(true) => {
                let phase = foreground.measure("periodic scrub (server's rate)", false, &mut keys).await;
                report.foreground.push(phase);
            }
            Ok(false) => report.errors.push(format!(
                "no periodic scrub started within {} s (it starts 60 s after the server, then every scrub_interval)",
                plan.periodic_wait.as_secs()
            )),
            Err(e) => report.errors.push(e),
        }
    }
    settle(plan, &mut report).await;
    report.foreground.push(foreground.measure("no scrub", false, &mut keys).await);

    report.scrub = time_scrub(plan, &mut report.errors).await;
    report.foreground.push(foreground.measure("admin scrub (unlimited rate)", true, &mut keys).await);
    settle(plan, &mut report).await;

    report.heal = time_heal(plan, &mut report.errors).await;
    (report, keys)
}

/// Waits for a running scrub to end, noting it if it does not.
async fn settle(plan: &Plan, report: &mut HealReport) {
    match wait_for_scrub(&plan.admin, false, SCRUB_IDLE_WAIT).await {
        Ok(true) => {}
        Ok(false) => report.errors.push(format!("a scrub was still running after {} s", SCRUB_IDLE_WAIT.as_secs())),
        Err(e) => report.errors.push(e),
    }
}

/// Polls the status until `scrub_running` equals `running`; `Ok(false)` on timeout.
async fn wait_for_scrub(admin: &Admin, running: bool, timeout: Duration) -> Result<bool, String> {
    let deadline = Instant::now() + timeout;
    loop {
        if admin.status().await?["scrub_running"].as_bool() == Some(running) {
            return Ok(true);
        }
        if Instant::now() >= deadline {
            return Ok(false);
        }
        tokio::time::sleep(STATUS_INTERVAL).await;
    }
}

async fn time_scrub(plan: &Plan, errors: &mut Vec<String>) -> Option<ScrubTiming> {
    let dropped = plan.drop_caches && disk::drop_page_cache().is_ok();
    eprintln!("heal: bulwark admin scrub --bucket {} --wait ...", plan.bucket);
    let cpu_start = server_cpu_seconds(plan);
    match plan.admin.pass_and_wait("scrub", &plan.bucket).await {
        Ok(output) => {
            let bytes_checked = output.number("bytes checked");
            let timing = ScrubTiming {
                seconds: output.seconds,
                bytes_checked,
                versions_checked: output.number("versions checked"),
                problems_found: output.number("problems found"),
                mib_per_s: bytes_checked
                    .map(|bytes| crate::stats::mib_per_s(bytes, Duration::from_secs_f64(output.seconds))),
                page_cache_dropped: dropped,
                server_cpu_cores: server_cores(plan, cpu_start, output.seconds),
            };
            eprintln!(
                "  {} checked in {:.1} s",
                bytes_checked.map_or_else(|| "? bytes".to_owned(), format_size),
                output.seconds
            );
            Some(timing)
        }
        Err(e) => {
            errors.push(format!("scrub: {e}"));
            None
        }
    }
}

async fn time_heal(plan: &Plan, errors: &mut Vec<String>) -> Option<HealTiming> {
    let shard_directory = plan.drive.join("data").join(&plan.bucket);
    let rebuilt_before = plan.admin.status().await.ok().and_then(|status| status["shards_rebuilt"].as_u64());
    let directory = shard_directory.clone();
    let deleted = tokio::task::spawn_blocking(move || walk(&directory, true)).await;
    let (files_deleted, bytes_deleted) = match deleted {
        Ok(Ok(totals)) => totals,
        Ok(Err(e)) => {
            errors.push(format!("heal: wiping {}: {e}", shard_directory.display()));
            return None;
        }
        Err(e) => {
            errors.push(format!("heal: wipe task failed: {e}"));
            return None;
        }
    };
    eprintln!(
        "heal: deleted {files_deleted} shard files ({}) from {}; bulwark admin heal --bucket {} --wait ...",
        format_size(bytes_deleted.max(1)),
        shard_directory.display(),
        plan.bucket
    );
    let dropped = plan.drop_caches && disk::drop_page_cache().is_ok();
    let cpu_start = server_cpu_seconds(plan);
    let output = match plan.admin.pass_and_wait("heal", &plan.bucket).await {
        Ok(output) => output,
        Err(e) => {
            errors.push(format!("heal: {e}"));
            return None;
        }
    };
    let server_cpu_cores = server_cores(plan, cpu_start, output.seconds);
    let rebuilt_after = plan.admin.status().await.ok().and_then(|status| status["shards_rebuilt"].as_u64());
    let directory = shard_directory.clone();
    let (files_after, bytes_after) = match tokio::task::spawn_blocking(move || walk(&directory, false)).await {
        Ok(Ok(totals)) => totals,
        _ => (0, 0),
    };
    eprintln!("  rebuilt in {:.1} s; {files_after} files ({} bytes) there again", output.seconds, bytes_after);
    Some(HealTiming {
        drive: plan.drive.clone(),
        shard_directory,
        files_deleted,
        bytes_deleted,
        seconds: output.seconds,
        mib_per_s: crate::stats::mib_per_s(bytes_deleted, Duration::from_secs_f64(output.seconds)),
        versions_checked: output.number("versions checked"),
        problems_found: output.number("problems found"),
        shards_rebuilt: rebuilt_before.zip(rebuilt_after).map(|(before, after)| after.saturating_sub(before)),
        files_after,
        bytes_after,
        page_cache_dropped: dropped,
        server_cpu_cores,
    })
}

/// Server CPU seconds so far, if its pid is known.
fn server_cpu_seconds(plan: &Plan) -> Option<f64> {
    plan.server_pid.and_then(|pid| crate::procfs::cpu_seconds(&pid.to_string()).ok())
}

/// Cores the server kept busy on average since `start_cpu_seconds`, over `seconds`.
fn server_cores(plan: &Plan, start_cpu_seconds: Option<f64>, seconds: f64) -> Option<f64> {
    let (start, end) = (start_cpu_seconds?, server_cpu_seconds(plan)?);
    (seconds > 0.0).then(|| (end - start) / seconds)
}

/// Counts the files and bytes under `directory` (recursively), deleting each file when
/// `delete`; directories are kept. A missing directory holds nothing.
fn walk(directory: &Path, delete: bool) -> Result<(u64, u64), String> {
    let mut files = 0;
    let mut bytes = 0;
    let mut pending = vec![directory.to_path_buf()];
    while let Some(current) = pending.pop() {
        let entries = match std::fs::read_dir(&current) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(format!("read {}: {e}", current.display())),
        };
        for entry in entries {
            let entry = entry.map_err(|e| format!("read {}: {e}", current.display()))?;
            let path = entry.path();
            let metadata = entry.metadata().map_err(|e| format!("stat {}: {e}", path.display()))?;
            if metadata.is_dir() {
                pending.push(path);
                continue;
            }
            files += 1;
            bytes += metadata.len();
            if delete {
                std::fs::remove_file(&path).map_err(|e| format!("delete {}: {e}", path.display()))?;
            }
        }
    }
    Ok((files, bytes))
}

/// The foreground cells and the status sampler around them.
struct Foreground {
    runner: Runner,
    admin: Admin,
    bucket: String,
    body: bytes::Bytes,
    bounds: Bounds,
    concurrency: usize,
}

/// One status sample: seconds since the phase began, whether a scrub ran, and the
/// current pass's start and bytes checked.
#[derive(Debug, Clone, Copy)]
struct Sample {
    at_secs: f64,
    running: bool,
    pass_started_ns: Option<i64>,
    bytes_checked: u64,
}

impl Foreground {
    fn new(plan: &Plan, runner: &Runner) -> Foreground {
        Foreground {
            runner: runner.clone(),
            admin: plan.admin.clone(),
            bucket: plan.bucket.clone(),
            body: payload::random_bytes(FOREGROUND_OBJECT_BYTES as usize, FOREGROUND_OBJECT_BYTES + 1),
            bounds: Bounds { duration: plan.foreground, bytes_max: FOREGROUND_BYTES_MAX, count: None },
            concurrency: plan.foreground_concurrency,
        }
    }

    /// A PUT cell and a GET cell while the status is sampled; with `keep_scrubbing`, an
    /// admin scrub is started whenever none runs.
    async fn measure(&self, phase: &'static str, keep_scrubbing: bool, keys: &mut Vec<String>) -> ForegroundPhase {
        eprintln!("heal: foreground 1 MiB ×{} — {phase}", self.concurrency);
        let stop = Arc::new(AtomicBool::new(false));
        let sampler =
            tokio::spawn(sample_status(self.admin.clone(), self.bucket.clone(), keep_scrubbing, stop.clone()));
        let slug: String = phase.chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '-' }).collect();
        let runner = Runner { prefix: format!("{}/foreground-{slug}", self.runner.prefix), ..self.runner.clone() };
        let (put, written) =
            runner.run_cell(Op::Put, &self.body, self.concurrency, self.bounds, &Arc::new(Vec::new()), false).await;
        eprintln!("{}", crate::report::table_row(&put));
        let written = Arc::new(written);
        let get = if written.is_empty() {
            None
        } else {
            let (get, _) = runner.run_cell(Op::Get, &self.body, self.concurrency, self.bounds, &written, false).await;
            eprintln!("{}", crate::report::table_row(&get));
            Some(get)
        };
        stop.store(true, Ordering::Relaxed);
        // The scrub and the heal measure the data set alone: the foreground objects go.
        let (failed, error) = runner.delete(&written).await;
        if let Some(error) = error {
            eprintln!("  {failed} foreground objects not deleted (left for the final cleanup): {error}");
            keys.extend(written.iter().cloned());
        }
        let (samples, scrubs_started) = sampler.await.unwrap_or_default();
        let (scrub_running_share, scrub_mib_per_s) = summarise(&samples);
        ForegroundPhase {
            phase,
            put,
            get,
            scrub_running_share,
            scrub_mib_per_s,
            scrubs_started,
            status_samples: samples.len() as u64,
        }
    }
}

async fn sample_status(
    admin: Admin,
    bucket: String,
    keep_scrubbing: bool,
    stop: Arc<AtomicBool>,
) -> (Vec<Sample>, u64) {
    let start = Instant::now();
    let mut samples = Vec::new();
    let mut scrubs_started = 0;
    // Samples to skip after starting a scrub, so a pass that has not flagged itself running
    // yet is not started twice.
    let mut cooldown: u32 = 0;
    while !stop.load(Ordering::Relaxed) {
        if let Ok(status) = admin.status().await {
            let sample = sample_of(&status, start.elapsed().as_secs_f64());
            samples.push(sample);
            if keep_scrubbing && !sample.running && cooldown == 0 {
                match admin.start_pass("scrub", &bucket).await {
                    Ok(()) => {
                        scrubs_started += 1;
                        cooldown = 3;
                    }
                    Err(e) => eprintln!("  cannot start a scrub: {e}"),
                }
            }
            cooldown = cooldown.saturating_sub(1);
        }
        tokio::time::sleep(STATUS_INTERVAL).await;
    }
    (samples, scrubs_started)
}

fn sample_of(status: &Value, at_secs: f64) -> Sample {
    let pass = &status["current_pass"];
    Sample {
        at_secs,
        running: status["scrub_running"].as_bool() == Some(true),
        pass_started_ns: pass["started_ns"].as_i64(),
        bytes_checked: pass["bytes_checked"].as_u64().unwrap_or(0),
    }
}

/// The share of samples with a scrub running, and the scrub's rate between consecutive
/// samples of the same running pass.
fn summarise(samples: &[Sample]) -> (Option<f64>, Option<f64>) {
    if samples.is_empty() {
        return (None, None);
    }
    let running = samples.iter().filter(|sample| sample.running).count();
    let share = running as f64 / samples.len() as f64;
    let mut bytes = 0u64;
    let mut seconds = 0.0;
    for pair in samples.windows(2) {
        let (a, b) = (pair[0], pair[1]);
        if a.running && b.running && a.pass_started_ns.is_some() && a.pass_started_ns == b.pass_started_ns {
            bytes += b.bytes_checked.saturating_sub(a.bytes_checked);
            seconds += b.at_secs - a.at_secs;
        }
    }
    let rate = (seconds > 0.0).then(|| bytes as f64 / (1024.0 * 1024.0) / seconds);
    (Some(share), rate)
}

pub fn render(report: &HealReport, raw: Option<&RawDisk>, out: &mut String) {
    use std::fmt::Write as _;
    let _ = writeln!(out, "\nheal and scrub (bucket {}):", report.bucket);
    if let Some(cell) = &report.data_set {
        let _ = writeln!(
            out,
            "  data set: {} × {} = {} written in {:.1} s ({:.1} MiB/s, {} PUTs in flight, {} failed)",
            cell.summary.objects,
            format_size(cell.size_bytes),
            format_size(cell.summary.bytes.max(1)),
            cell.summary.seconds,
            cell.summary.mib_per_s,
            cell.concurrency,
            cell.errors
        );
    }
    let cold_read = raw.and_then(RawDisk::cold_read);
    let share =
        |rate: f64, of: Option<f64>| of.map_or_else(String::new, |of| format!(" = {:.0}% of it", rate / of * 100.0));
    if let Some(scrub) = &report.scrub {
        let rate = scrub.mib_per_s.unwrap_or(0.0);
        let _ = writeln!(
            out,
            "  scrub (`bulwark admin scrub --wait`, unlimited rate{}): {} of stored pieces checked in {:.1} s = {rate:.1} MiB/s; \
             {} versions, {} problems",
            if scrub.page_cache_dropped { ", page cache dropped first" } else { ", data possibly in the page cache" },
            scrub.bytes_checked.map_or_else(|| "?".to_owned(), |bytes| format_size(bytes.max(1))),
            scrub.seconds,
            scrub.versions_checked.map_or_else(|| "?".to_owned(), |n| n.to_string()),
            scrub.problems_found.map_or_else(|| "?".to_owned(), |n| n.to_string()),
        );
        let raw_read = cold_read.map_or_else(
            || "no raw disk read".to_owned(),
            |read| {
                format!(
                    "raw disk read ({}) {:.1} MiB/s{}",
                    read.name,
                    read.mib_per_s,
                    share(rate, Some(read.mib_per_s))
                )
            },
        );
        let _ = writeln!(out, "    {raw_read}; server CPU {} cores", crate::report::cores(scrub.server_cpu_cores));
    }
    if let Some(heal) = &report.heal {
        let _ = writeln!(
            out,
            "  heal of a wiped drive: {} shard files ({}) deleted from {}; `bulwark admin heal --wait` took {:.1} s = {:.1} MiB/s \
             rebuilt{}",
            heal.files_deleted,
            format_size(heal.bytes_deleted.max(1)),
            heal.shard_directory.display(),
            heal.seconds,
            heal.mib_per_s,
            if heal.page_cache_dropped { " (page cache dropped first)" } else { "" }
        );
        let _ = writeln!(
            out,
            "    shards rebuilt {}, versions checked {}; afterwards {} files, {} bytes ({})",
            heal.shards_rebuilt.map_or_else(|| "?".to_owned(), |n| n.to_string()),
            heal.versions_checked.map_or_else(|| "?".to_owned(), |n| n.to_string()),
            heal.files_after,
            heal.bytes_after,
            if heal.bytes_after == heal.bytes_deleted { "all back" } else { "NOT the bytes deleted" }
        );
        if let Some(raw) = raw {
            let write = raw.write_mib_per_s();
            let _ = writeln!(
                out,
                "    raw fsync'd write {write:.1} MiB/s{}; server CPU {} cores",
                share(heal.mib_per_s, Some(write)),
                crate::report::cores(heal.server_cpu_cores)
            );
        }
    }
    if !report.foreground.is_empty() {
        let _ = writeln!(out, "  foreground 1 MiB requests (latency send → last byte; status sampled every 0.5 s):");
        let _ = writeln!(
            out,
            "    phase                          op   conc objects errors    MiB/s   p50 ms   p99 ms  scrub running  scrub MiB/s"
        );
        for phase in &report.foreground {
            for cell in std::iter::once(&phase.put).chain(phase.get.as_ref()) {
                let _ = writeln!(
                    out,
                    "    {:<30} {:<4} {:>4} {:>7} {:>6} {:>8.1} {:>8} {:>8} {:>14} {:>12}",
                    phase.phase,
                    cell.op.name(),
                    cell.concurrency,
                    cell.summary.objects,
                    cell.errors,
                    cell.summary.mib_per_s,
                    crate::report::ms(cell.summary.p50_ms),
                    crate::report::ms(cell.summary.p99_ms),
                    phase.scrub_running_share.map_or_else(|| "-".to_owned(), |share| format!("{:.0}%", share * 100.0)),
                    phase.scrub_mib_per_s.map_or_else(|| "-".to_owned(), |rate| format!("{rate:.1}")),
                );
            }
        }
        let started: u64 = report.foreground.iter().map(|phase| phase.scrubs_started).sum();
        if started > 0 {
            let _ = writeln!(out, "    ({started} admin scrubs started to keep one running)");
        }
    }
    for error in &report.errors {
        let _ = writeln!(out, "  not measured / failed: {error}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(at_secs: f64, running: bool, pass: i64, bytes_checked: u64) -> Sample {
        Sample { at_secs, running, pass_started_ns: Some(pass), bytes_checked }
    }

    #[test]
    fn scrub_rate_counts_only_consecutive_samples_of_one_running_pass() {
        let mib = 1024 * 1024;
        let samples = [
            sample(0.0, false, 1, 0),
            sample(1.0, true, 2, 0),
            sample(2.0, true, 2, 100 * mib),
            sample(3.0, true, 3, 10 * mib), // a new pass: its first interval is not counted
            sample(4.0, true, 3, 110 * mib),
        ];
        let (share, rate) = summarise(&samples);
        assert_eq!(share, Some(0.8));
        assert_eq!(rate, Some(100.0));
        assert_eq!(summarise(&[]), (None, None));
    }

    #[test]
    fn walking_counts_and_deletes_files_but_keeps_directories() {
        let root = std::env::temp_dir().join(format!("bulwark-bench-walk-{}", std::process::id()));
        let nested = root.join("ab");
        std::fs::create_dir_all(&nested).expect("create the test directories");
        std::fs::write(root.join("one"), [0u8; 10]).expect("write a test file");
        std::fs::write(nested.join("two"), [0u8; 5]).expect("write a test file");
        assert_eq!(walk(&root, false), Ok((2, 15)));
        assert_eq!(walk(&root, true), Ok((2, 15)));
        assert_eq!(walk(&root, false), Ok((0, 0)));
        assert!(nested.is_dir());
        assert_eq!(walk(&root.join("missing"), false), Ok((0, 0)));
        let _ = std::fs::remove_dir_all(&root);
    }

    #[test]
    fn drives_are_found_by_their_format_file() {
        let root = std::env::temp_dir().join(format!("bulwark-bench-drives-{}", std::process::id()));
        for drive in ["facility-1/drive-2", "facility-1/drive-1", "facility-2/drive-3"] {
            let system = root.join(drive).join(".bulwark");
            std::fs::create_dir_all(&system).expect("create a test drive");
            std::fs::write(system.join("format.json"), "{}").expect("write a test format file");
        }
        std::fs::create_dir_all(root.join("other/empty")).expect("create a non-drive directory");
        let drives = find_drives(&root);
        assert_eq!(
            drives,
            vec![root.join("facility-1/drive-1"), root.join("facility-1/drive-2"), root.join("facility-2/drive-3")]
        );
        let _ = std::fs::remove_dir_all(&root);
    }
}
