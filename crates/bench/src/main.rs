//! `bulwark-bench`: PUT and GET throughput and latency of a running Bulwark (or any S3)
//! server, printed beside the raw sequential write and read of the disk it stores on.
//!
//! What it measures, and how:
//! - For every object size × concurrency level (default 4 KiB, 1 MiB, 64 MiB × 1, 16), a
//!   PUT cell then a GET cell of the objects just written. A cell stops after
//!   `--duration-secs` (10) or `--bytes-per-cell` (1 GiB), whichever comes first, or after
//!   exactly `--count` objects. Bodies are random bytes generated once per size; every GET
//!   body is compared with what was written. Each row gives objects, MiB/s, objects/s and
//!   p50/p99 latency (send to last byte), and with `--server-pid` the server's CPU and
//!   peak RSS during the cell.
//! - The raw disk, in `--raw-dir` (put it on the server's disk): a 1 GiB sequential write
//!   with fsync at the end, one with fsync every 64 MiB, an `O_DIRECT` read (the disk, not
//!   the page cache) and a buffered read (the page cache); each the median of 3 runs.
//!   See [`disk`].
//! - The issue's targets, computed from the raw figures and judged met / not met.
//! - `--rss-check`: 16 concurrent streamed 1 GiB PUTs while the server's VmRSS is sampled
//!   every 20 ms (and VmHWM read), instead of the cells. See [`rss`].
//!
//! Objects are written under a per-run prefix and deleted afterwards (`--keep` keeps
//! them); the bucket is created if missing and then removed again.
//!
//! Client and server share the machine's CPUs, so the client's own cost (SigV4 hashes
//! every body with SHA-256 unless `--unsigned-payload`; CRC32 unless `--no-checksum`) is
//! part of the figures; the `cli CPU` column shows how much.
//!
//! ```text
//! export AWS_ACCESS_KEY_ID=... AWS_SECRET_ACCESS_KEY=...
//! bulwark-bench --endpoint http://127.0.0.1:9000 --raw-dir ./data --server-pid "$(pidof bulwark)" --json bench.json
//! bulwark-bench --endpoint http://127.0.0.1:9000 --rss-check --server-pid "$(pidof bulwark)"
//! bulwark-bench --sizes 4KiB --concurrency 16 --duration-secs 5 --no-raw
//! sudo bulwark-bench --drop-caches ...   # GETs and the raw read from the disk, not the cache
//! ```
#![forbid(unsafe_code)]

mod args;
mod disk;
mod payload;
mod procfs;
mod report;
mod rss;
mod s3;
mod stats;

use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_sdk_s3::error::DisplayErrorContext;
use bytes::Bytes;
use clap::Parser;

use crate::args::{Args, format_size};
use crate::procfs::RssSampler;
use crate::report::{Report, Settings};
use crate::s3::{Bounds, Cell, ClientSettings, Op, Runner};

/// Random bytes behind the raw disk writes (rotated through, 4 MiB per request).
const RAW_PATTERN_BYTES: usize = 16 * 1024 * 1024;
/// Frame repeated by the RSS check's streamed bodies.
const RSS_FRAME_BYTES: usize = payload::FRAME_BYTES;
const _: () = assert!(RAW_PATTERN_BYTES >= disk::IO_BYTES);

fn main() -> ExitCode {
    let args = Args::parse();
    if let Err(e) = args.validate() {
        eprintln!("error: {e}");
        return ExitCode::from(2);
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> Result<(), String> {
    if args.drop_caches {
        // Fail before any work if this process may not drop the cache.
        disk::drop_page_cache()?;
    }
    let client = s3::client(&ClientSettings {
        endpoint: args.endpoint.clone(),
        region: args.region.clone(),
        access_key: args.access_key()?,
        secret_key: args.secret_key()?,
        checksum: !args.no_checksum,
    });
    client
        .list_buckets()
        .send()
        .await
        .map_err(|e| format!("cannot talk to {}: {}", args.endpoint, DisplayErrorContext(&e)))?;
    let created_bucket = s3::ensure_bucket(&client, &args.bucket).await?;
    let started_unix_secs = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |since| since.as_secs());
    let runner = Runner {
        client,
        bucket: args.bucket.clone(),
        prefix: format!("bulwark-bench-{started_unix_secs}-{}", std::process::id()),
        unsigned_payload: args.unsigned_payload,
        sampler: args.server_pid.map(RssSampler::start).transpose()?,
    };
    let mut report = Report {
        tool: "bulwark-bench",
        version: env!("CARGO_PKG_VERSION"),
        mode: if args.rss_check { "rss check" } else { "benchmark" },
        started_unix_secs,
        settings: settings(&args),
        cells: Vec::new(),
        raw_disk: None,
        raw_disk_error: None,
        rss_check: None,
        targets: Vec::new(),
    };
    let keys = if args.rss_check {
        run_rss_check(&args, &runner, &mut report).await
    } else {
        run_benchmark(&args, &runner, &mut report).await
    };
    report.targets =
        report::targets(&report.cells, report.raw_disk.as_ref(), report.rss_check.as_ref(), args.drop_caches);
    println!("{}", report::render(&report));
    let written = write_json(&args, &report);
    cleanup(&args, &runner, &keys, created_bucket).await;
    written
}

fn settings(args: &Args) -> Settings {
    Settings {
        endpoint: args.endpoint.clone(),
        bucket: args.bucket.clone(),
        sizes_bytes: args.sizes.0.clone(),
        concurrency: args.concurrency.0.clone(),
        duration_secs_max: args.duration_secs,
        bytes_per_cell_max: args.bytes_per_cell,
        count: args.count,
        payload_signing: !args.unsigned_payload,
        checksum_crc32: !args.no_checksum,
        drop_caches: args.drop_caches,
        server_pid: args.server_pid,
        raw_dir: args.raw_dir.clone(),
        cpus: std::thread::available_parallelism().map_or(1, |count| count.get()),
    }
}

/// The raw disk, then a PUT and a GET cell per size and concurrency. Returns the keys
/// written.
async fn run_benchmark(args: &Args, runner: &Runner, report: &mut Report) -> Vec<String> {
    if !args.no_raw {
        eprintln!("raw disk: writing and reading {} in {} ...", format_size(args.raw_bytes), args.raw_dir.display());
        let (directory, bytes, repeats, drop_caches) =
            (args.raw_dir.clone(), args.raw_bytes, args.raw_repeats, args.drop_caches);
        let measured = tokio::task::spawn_blocking(move || {
            let pattern = payload::random_bytes(RAW_PATTERN_BYTES, 0);
            disk::measure(&directory, bytes, repeats, &pattern, drop_caches)
        })
        .await
        .map_err(|e| format!("raw disk task failed: {e}"))
        .and_then(|measured| measured);
        match measured {
            Ok(raw) => report.raw_disk = Some(raw),
            Err(e) => report.raw_disk_error = Some(e),
        }
    }
    let bounds =
        Bounds { duration: Duration::from_secs(args.duration_secs), bytes_max: args.bytes_per_cell, count: args.count };
    let mut all_keys = Vec::new();
    eprintln!("{}", report::TABLE_HEADER);
    for &size in &args.sizes.0 {
        let Ok(length) = usize::try_from(size) else {
            eprintln!("skipping {size} bytes: too large for this platform");
            continue;
        };
        let payload = payload::random_bytes(length, size);
        for &concurrency in &args.concurrency.0 {
            let no_keys = Arc::new(Vec::new());
            let (put, keys) = runner.run_cell(Op::Put, &payload, concurrency, bounds, &no_keys, false).await;
            progress(&put, report);
            let keys = Arc::new(keys);
            if !keys.is_empty() {
                let dropped = args.drop_caches && disk::drop_page_cache().is_ok();
                let (get, _) = runner.run_cell(Op::Get, &payload, concurrency, bounds, &keys, dropped).await;
                progress(&get, report);
            }
            all_keys.extend(keys.iter().cloned());
        }
    }
    all_keys
}

fn progress(cell: &Cell, report: &mut Report) {
    eprintln!("{}", report::table_row(cell));
    if let Some(error) = &cell.first_error {
        eprintln!("  first failure: {error}");
    }
    report.cells.push(cell.clone());
}

async fn run_rss_check(args: &Args, runner: &Runner, report: &mut Report) -> Vec<String> {
    eprintln!("rss check: {} concurrent PUTs of {} ...", args.rss_concurrency, format_size(args.rss_object_size));
    let frame: Bytes = payload::random_bytes(RSS_FRAME_BYTES, 1);
    match rss::run(runner, args.rss_object_size, args.rss_concurrency, &frame).await {
        Ok((check, keys)) => {
            report.rss_check = Some(check);
            keys
        }
        Err(e) => {
            eprintln!("error: rss check: {e}");
            Vec::new()
        }
    }
}

fn write_json(args: &Args, report: &Report) -> Result<(), String> {
    let Some(path) = &args.json else {
        return Ok(());
    };
    let text = serde_json::to_string_pretty(report).map_err(|e| format!("encode the JSON report: {e}"))?;
    std::fs::write(path, text + "\n").map_err(|e| format!("write {}: {e}", path.display()))?;
    eprintln!("figures written to {}", path.display());
    Ok(())
}

async fn cleanup(args: &Args, runner: &Runner, keys: &[String], created_bucket: bool) {
    if args.keep {
        eprintln!("kept {} objects under {}/{}/", keys.len(), runner.bucket, runner.prefix);
        return;
    }
    let (failed, first_error) = runner.delete(keys).await;
    if let Some(error) = first_error {
        eprintln!("cleanup: {failed} of {} objects not deleted: {error}", keys.len());
        return;
    }
    if created_bucket && let Err(e) = runner.client.delete_bucket().bucket(&runner.bucket).send().await {
        eprintln!("cleanup: bucket {} not deleted: {}", runner.bucket, DisplayErrorContext(&e));
    }
}
