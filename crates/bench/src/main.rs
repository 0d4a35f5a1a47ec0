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
//! - `--checksums` (issue 3): PUT MiB/s of 64 MiB objects (×1, ×4) with the client sending
//!   a CRC64NVME or a SHA256 checksum (each in a header and in an aws-chunked trailer), or
//!   none (WhenRequired, no algorithm; the server then computes its default CRC64NVME
//!   alone), side by side with the ratio to *none* and the CPU seconds per GiB of server
//!   and client. See [`checksums`].
//! - `--listing [N]` (issue 4, N = 100,000): N empty objects under three delimiter levels
//!   (created with 32 PUTs in flight, or reused from an earlier run) paged through with
//!   ListObjectsV2, then N/10 keys × 10 versions with ListObjectVersions; pages/s, keys/s,
//!   p50/p99 page latency, and the first page against the last. See [`listing`].
//! - `--heal` (issue 5): a 2 GiB data set of 4 MiB objects; `bulwark admin scrub --wait`
//!   timed (MiB/s of stored bytes checked); foreground 1 MiB PUT/GET p50/p99 with no scrub
//!   and under scrubs; then one drive's shard files deleted under the running server
//!   (`--data-dir`) and `bulwark admin heal --wait` timed (MiB/s rebuilt), beside the raw
//!   disk. The admin CLI is `--bulwark-bin` (default: `bulwark` next to this binary). See
//!   [`heal`].
//! - `--sse` (issue 6): PUT/GET MiB/s of 64 MiB objects as plaintext over HTTP
//!   (`--http-endpoint`, a second server), plaintext over TLS and SSE-C over TLS (the
//!   `https://` `--endpoint`, trusted through `--ca-cert`: the SDK's own hyper-rustls client
//!   built with a trust store holding that certificate), with SSE-C ÷ plaintext judged
//!   against ≥ 85%. See [`sse`].
//!
//! Objects are written under a per-run prefix and deleted afterwards (`--keep` keeps
//! them); the bucket is created if missing and then removed again. The `--listing`
//! populations are the exception: kept for the next run unless `--listing-cleanup`.
//!
//! Every write measurement (each PUT cell, each raw write run) starts with `sync(2)`, so it
//! pays for its own writes, not for the writeback of the cell before it (see
//! [`disk::settle`]).
//!
//! Client and server share the machine's CPUs, so the client's own cost (SigV4 hashes
//! every body with SHA-256 unless `--unsigned-payload`; CRC32 unless `--no-checksum`) is
//! part of the figures; the `cli CPU` column shows how much.
//!
//! - `--kms` (issue 8): PUT/GET MiB/s of 64 MiB objects as plaintext, SSE-S3 and SSE-KMS
//!   on `--endpoint` (each ÷ plaintext judged against ≥ 85%), then KMS GenerateDataKey
//!   operations per second with `--kms-concurrency` callers. See [`kms`]. `--kms` and
//!   `--sse` run their variants in turn for `--rounds` rounds (default 3) and report each
//!   variant's median round: one cell alone varies too much for a ratio (see [`rounds`]).
//!
//! ```text
//! export AWS_ACCESS_KEY_ID=... AWS_SECRET_ACCESS_KEY=...
//! bulwark-bench --endpoint http://127.0.0.1:9000 --raw-dir ./data --server-pid "$(pidof bulwark)" --json bench.json
//! bulwark-bench --endpoint http://127.0.0.1:9000 --rss-check --server-pid "$(pidof bulwark)"
//! bulwark-bench --sizes 4KiB --concurrency 16 --duration-secs 5 --no-raw
//! bulwark-bench --checksums --unsigned-payload --no-raw
//! bulwark-bench --listing 100000
//! bulwark-bench --heal --data-dir /srv/bulwark --raw-dir /srv/bulwark --drop-caches
//! bulwark-bench --sse --endpoint https://127.0.0.1:9443 --ca-cert tls/cert.pem --http-endpoint http://127.0.0.1:9000
//! bulwark-bench --kms --endpoint http://127.0.0.1:9000 --server-pid "$(pidof bulwark)"
//! sudo bulwark-bench --drop-caches ...   # GETs and the raw read from the disk, not the cache
//! ```
#![forbid(unsafe_code)]

mod admin;
mod args;
mod checksums;
mod disk;
mod hashing;
mod heal;
mod kms;
mod listing;
mod payload;
mod procfs;
mod report;
mod rounds;
mod rss;
mod s3;
mod sse;
mod stats;

use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_sdk_s3::error::DisplayErrorContext;
use bytes::Bytes;
use clap::Parser;

use crate::args::{Args, Mode, format_size};
use crate::procfs::RssSampler;
use crate::report::{Report, Settings};
use crate::s3::{Bounds, Cell, ClientSettings, Op, RequestOptions, Runner};

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
    let mode = args.mode();
    let ca_cert_pem = match &args.ca_cert {
        Some(path) => Some(std::fs::read(path).map_err(|e| format!("read --ca-cert {}: {e}", path.display()))?),
        None => None,
    };
    let client_settings = ClientSettings {
        endpoint: args.endpoint.clone(),
        region: args.region.clone(),
        access_key: args.access_key()?,
        secret_key: args.secret_key()?,
        // --checksums names the algorithm per request; nothing else is added.
        checksum: !args.no_checksum && mode != Mode::Checksums,
        ca_cert_pem,
    };
    let client = s3::client(&client_settings)?;
    client
        .list_buckets()
        .send()
        .await
        .map_err(|e| format!("cannot talk to {}: {}", args.endpoint, DisplayErrorContext(&e)))?;
    let created_bucket = if mode == Mode::Listing { false } else { s3::ensure_bucket(&client, &args.bucket).await? };
    let started_unix_secs = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |since| since.as_secs());
    let runner = Runner {
        client,
        bucket: args.bucket.clone(),
        prefix: format!("bulwark-bench-{started_unix_secs}-{}", std::process::id()),
        signing: args.payload_signing(),
        options: RequestOptions::default(),
        sampler: args.server_pid.map(RssSampler::start).transpose()?.map(Arc::new),
    };
    let mut report = Report {
        tool: "bulwark-bench",
        version: env!("CARGO_PKG_VERSION"),
        mode: mode.name(),
        started_unix_secs,
        settings: settings(&args),
        cells: Vec::new(),
        raw_disk: None,
        raw_disk_error: None,
        hash_floor: None,
        rss_check: None,
        checksums: None,
        listing: None,
        heal: None,
        sse: None,
        kms: None,
        mode_error: None,
        targets: Vec::new(),
    };
    let keys = match mode {
        Mode::Benchmark => run_benchmark(&args, &runner, &mut report).await,
        Mode::RssCheck => run_rss_check(&args, &runner, &mut report).await,
        Mode::Checksums => {
            let computing = s3::client(&ClientSettings { checksum: true, ..client_settings.clone() })?;
            let computing = Runner { client: computing, ..runner.clone() };
            let (checksums, keys) = checksums::run(
                &runner,
                &computing,
                &args.sizes(),
                &args.concurrency(),
                bounds(&args),
                args.checksum_rounds,
            )
            .await;
            report.checksums = Some(checksums);
            keys
        }
        Mode::Listing => {
            run_listing(&args, &runner, &mut report).await;
            Vec::new()
        }
        Mode::Heal => run_heal(&args, &client_settings, &runner, &mut report).await,
        Mode::Sse => run_sse(&args, &client_settings, &runner, &mut report).await,
        Mode::Kms => {
            let plan = kms::Plan {
                runner: &runner,
                settings: &client_settings,
                sizes: args.sizes(),
                levels: args.concurrency(),
                bounds: bounds(&args),
                drop_caches: args.drop_caches,
                kms_concurrency: args.kms_concurrency,
                kms_secs: args.kms_secs,
                rounds: args.rounds,
            };
            let (kms_report, keys) = kms::run(&plan).await;
            report.kms = Some(kms_report);
            keys
        }
    };
    report.targets = match mode {
        Mode::Benchmark | Mode::RssCheck => {
            let machine = report::Machine {
                raw: report.raw_disk.as_ref(),
                hash_floor: report.hash_floor.as_ref(),
                drop_caches: args.drop_caches,
            };
            report::targets(&report.cells, &machine, report.rss_check.as_ref())
        }
        Mode::Sse => report.sse.as_ref().map(report::sse_targets).unwrap_or_default(),
        Mode::Kms => report.kms.as_ref().map(report::kms_targets).unwrap_or_default(),
        Mode::Checksums | Mode::Listing | Mode::Heal => Vec::new(),
    };
    println!("{}", report::render(&report));
    let written = write_json(&args, &report);
    cleanup(&args, &runner, &keys, created_bucket).await;
    written
}

fn bounds(args: &Args) -> Bounds {
    Bounds { duration: Duration::from_secs(args.duration_secs), bytes_max: args.bytes_per_cell, count: args.count }
}

fn settings(args: &Args) -> Settings {
    Settings {
        endpoint: args.endpoint.clone(),
        bucket: args.bucket.clone(),
        sizes_bytes: args.sizes(),
        concurrency: args.concurrency(),
        duration_secs_max: args.duration_secs,
        bytes_per_cell_max: args.bytes_per_cell,
        count: args.count,
        payload_signing: args.payload_signing().describe(),
        checksum_crc32: !args.no_checksum && !args.checksums,
        ca_cert: args.ca_cert.clone(),
        drop_caches: args.drop_caches,
        server_pid: args.server_pid,
        raw_dir: args.raw_dir.clone(),
        cpus: std::thread::available_parallelism().map_or(1, |count| count.get()),
    }
}

/// The raw disk, then a PUT and a GET cell per size and concurrency. Returns the keys
/// written.
async fn run_benchmark(args: &Args, runner: &Runner, report: &mut Report) -> Vec<String> {
    measure_raw(args, report).await;
    if args.payload_signing() == s3::PayloadSigning::EveryBody
        && args.sizes().iter().any(|&size| size >= report::LARGE_OBJECT_BYTES_MIN)
    {
        // Large PUTs the SDK hashes: what the client's and the server's hashing alone allow.
        let pattern = payload::random_bytes(RAW_PATTERN_BYTES, 1);
        report.hash_floor = tokio::task::spawn_blocking(move || hashing::HashFloor::measure(&pattern)).await.ok();
    }
    let bounds = bounds(args);
    let mut all_keys = Vec::new();
    eprintln!("{}", report::TABLE_HEADER);
    for size in args.sizes() {
        let Ok(length) = usize::try_from(size) else {
            eprintln!("skipping {size} bytes: too large for this platform");
            continue;
        };
        let payload = payload::random_bytes(length, size);
        for concurrency in args.concurrency() {
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

/// The raw disk figures, unless `--no-raw`.
async fn measure_raw(args: &Args, report: &mut Report) {
    if args.no_raw {
        return;
    }
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

async fn run_listing(args: &Args, runner: &Runner, report: &mut Report) {
    let plan = listing::Plan {
        client: runner.client.clone(),
        bucket: args.bucket.clone(),
        keys: args.listing.unwrap_or(args::LISTING_KEYS_DEFAULT),
        concurrency: args.listing_concurrency,
        cleanup: args.listing_cleanup,
    };
    match listing::run(&plan).await {
        Ok(listing) => report.listing = Some(listing),
        Err(e) => report.mode_error = Some(e),
    }
}

async fn run_heal(args: &Args, settings: &ClientSettings, runner: &Runner, report: &mut Report) -> Vec<String> {
    let plan = match heal_plan(args, settings) {
        Ok(plan) => plan,
        Err(e) => {
            report.mode_error = Some(e);
            return Vec::new();
        }
    };
    // Check the admin CLI, its credentials and the endpoint before writing anything.
    if let Err(e) = plan.admin.status().await {
        report.mode_error = Some(e);
        return Vec::new();
    }
    measure_raw(args, report).await;
    let (heal, keys) = heal::run(&plan, runner).await;
    report.heal = Some(heal);
    keys
}

fn heal_plan(args: &Args, settings: &ClientSettings) -> Result<heal::Plan, String> {
    let binary = admin::locate(args.bulwark_bin.as_deref())?;
    let drive = match (&args.wipe_drive, &args.data_dir) {
        (Some(drive), _) => drive.clone(),
        (None, Some(data_dir)) => heal::find_drives(data_dir).into_iter().next().ok_or_else(|| {
            format!("no drive (a directory holding .bulwark/format.json) under {}", data_dir.display())
        })?,
        (None, None) => return Err("--heal needs --data-dir or --wipe-drive".to_owned()),
    };
    Ok(heal::Plan {
        admin: admin::Admin {
            binary,
            endpoint: args.endpoint.clone(),
            access_key: settings.access_key.clone(),
            secret_key: settings.secret_key.clone(),
        },
        bucket: args.bucket.clone(),
        data_bytes: args.heal_bytes,
        object_size_bytes: args.heal_object_size,
        drive,
        foreground: Duration::from_secs(args.foreground_secs),
        foreground_concurrency: args.foreground_concurrency,
        periodic_wait: Duration::from_secs(args.periodic_scrub_wait_secs),
        drop_caches: args.drop_caches,
        server_pid: args.server_pid,
    })
}

/// The SSE-C and TLS cells; returns the keys written over TLS (the plain HTTP server's
/// objects are deleted here).
async fn run_sse(args: &Args, settings: &ClientSettings, runner: &Runner, report: &mut Report) -> Vec<String> {
    let http = match &args.http_endpoint {
        Some(endpoint) => match http_runner(args, settings, runner, endpoint).await {
            Ok(http) => Some(http),
            Err(e) => {
                report.mode_error = Some(e);
                return Vec::new();
            }
        },
        None => None,
    };
    let plan = sse::Plan {
        tls: runner,
        http: http.as_ref().map(|(runner, _)| runner),
        tls_endpoint: args.endpoint.clone(),
        http_endpoint: args.http_endpoint.clone(),
        sizes: args.sizes(),
        levels: args.concurrency(),
        bounds: bounds(args),
        drop_caches: args.drop_caches,
        rounds: args.rounds,
    };
    let outcome = sse::run(&plan).await;
    report.sse = Some(outcome.report);
    if let Some((http, created_bucket)) = &http {
        cleanup(args, http, &outcome.http_keys, *created_bucket).await;
    }
    outcome.tls_keys
}

/// A runner for the plain HTTP server of `--sse`, and whether its bucket was created.
async fn http_runner(
    args: &Args,
    settings: &ClientSettings,
    runner: &Runner,
    endpoint: &str,
) -> Result<(Runner, bool), String> {
    let client = s3::client(&ClientSettings { endpoint: endpoint.to_owned(), ca_cert_pem: None, ..settings.clone() })?;
    let created_bucket = s3::ensure_bucket(&client, &args.bucket).await?;
    let sampler = args.http_server_pid.map(RssSampler::start).transpose()?.map(Arc::new);
    Ok((Runner { client, sampler, ..runner.clone() }, created_bucket))
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
