//! What the benchmark prints and writes: the cell table, the raw disk lines, the memory
//! check, and the targets computed from the raw figures.
//!
//! The targets (default 4+2 layout, so a PUT writes 1.5× its size to the disk):
//! - large PUT ≥ 50% of (raw fsync'd write ÷ 1.5);
//! - large GET ≥ 70% of raw read (a read from the disk, not from the page cache);
//! - 4 KiB PUT at concurrency 16 > 1,000 objects/s (with fsync: the server's contract);
//! - server RSS ≤ 512 MiB under 16 concurrent 1 GiB PUTs (`--rss-check`);
//! - SSE-C at ≥ 85% of plaintext MiB/s over TLS, per op, size and concurrency (`--sse`).
//!
//! The other modes (`--checksums`, `--listing`, `--heal`) print their figures without a
//! verdict: their issues state no number to meet.

use std::fmt::Write as _;
use std::path::PathBuf;

use serde::Serialize;

use crate::args::format_size;
use crate::checksums::ChecksumReport;
use crate::disk::RawDisk;
use crate::heal::HealReport;
use crate::listing::ListingReport;
use crate::rss::RssCheck;
use crate::s3::{Cell, Op};
use crate::sse::{self, SseReport};

/// Default layout: 4 data + 2 parity shards, so the disk writes 6/4 of every object.
pub const WRITE_AMPLIFICATION: f64 = 1.5;
pub const PUT_SHARE_OF_RAW_MIN: f64 = 0.5;
pub const GET_SHARE_OF_RAW_MIN: f64 = 0.7;
pub const SMALL_OBJECT_BYTES: u64 = 4 * 1024;
pub const SMALL_CONCURRENCY: usize = 16;
pub const SMALL_PUT_OBJECTS_PER_S_MIN: f64 = 1000.0;
pub const RSS_BYTES_MAX: u64 = 512 * 1024 * 1024;
pub const RSS_OBJECT_BYTES: u64 = 1024 * 1024 * 1024;
pub const RSS_CONCURRENCY: usize = 16;
/// The smallest size that counts as "large" for the PUT and GET targets.
pub const LARGE_OBJECT_BYTES_MIN: u64 = 4 * 1024 * 1024;
/// SSE-C throughput over plaintext throughput (both over TLS), at least.
pub const SSE_C_SHARE_OF_PLAINTEXT_MIN: f64 = 0.85;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Verdict {
    #[serde(rename = "met")]
    Met,
    #[serde(rename = "not met")]
    NotMet,
    #[serde(rename = "not measured")]
    NotMeasured,
}

#[derive(Debug, Clone, Serialize)]
pub struct Target {
    pub name: String,
    pub measured: Option<f64>,
    pub required: Option<f64>,
    pub unit: &'static str,
    pub verdict: Verdict,
    pub note: Option<String>,
}

impl Target {
    fn not_measured(name: String, unit: &'static str, note: String) -> Target {
        Target { name, measured: None, required: None, unit, verdict: Verdict::NotMeasured, note: Some(note) }
    }

    /// `measured` against a lower (`at_least`) or upper bound; failed requests fail it.
    fn judge(
        name: String,
        unit: &'static str,
        measured: f64,
        bound: Bound,
        errors: u64,
        note: Option<String>,
    ) -> Target {
        let (within, required) = match bound {
            Bound::AtLeast(required) => (measured >= required, required),
            Bound::Above(required) => (measured > required, required),
            Bound::AtMost(required) => (measured <= required, required),
        };
        let note = match (errors, note) {
            (0, note) => note,
            (errors, Some(note)) => Some(format!("{errors} requests failed; {note}")),
            (errors, None) => Some(format!("{errors} requests failed")),
        };
        Target {
            name,
            measured: Some(measured),
            required: Some(required),
            unit,
            verdict: if within && errors == 0 { Verdict::Met } else { Verdict::NotMet },
            note,
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum Bound {
    AtLeast(f64),
    Above(f64),
    AtMost(f64),
}

/// Settings that shape the figures, echoed in the output.
#[derive(Debug, Clone, Serialize)]
pub struct Settings {
    pub endpoint: String,
    pub bucket: String,
    pub sizes_bytes: Vec<u64>,
    pub concurrency: Vec<usize>,
    pub duration_secs_max: u64,
    pub bytes_per_cell_max: u64,
    pub count: Option<u64>,
    /// How PUT bodies are signed (`s3::PayloadSigning::describe`).
    pub payload_signing: &'static str,
    pub checksum_crc32: bool,
    /// The PEM file trusted for https:// (`--ca-cert`), if any.
    pub ca_cert: Option<PathBuf>,
    pub drop_caches: bool,
    pub server_pid: Option<u32>,
    pub raw_dir: PathBuf,
    pub cpus: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub tool: &'static str,
    pub version: &'static str,
    pub mode: &'static str,
    pub started_unix_secs: u64,
    pub settings: Settings,
    pub cells: Vec<Cell>,
    pub raw_disk: Option<RawDisk>,
    pub raw_disk_error: Option<String>,
    /// Signed large PUTs only: the hashing ceiling of one PUT at a time.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hash_floor: Option<crate::hashing::HashFloor>,
    pub rss_check: Option<RssCheck>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub checksums: Option<ChecksumReport>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listing: Option<ListingReport>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub heal: Option<HealReport>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sse: Option<SseReport>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kms: Option<crate::kms::KmsReport>,
    /// Why the mode produced no figures, when it failed as a whole.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mode_error: Option<String>,
    pub targets: Vec<Target>,
}

/// What the large-object targets are judged against: this machine's disk,
/// and (signed PUTs) its hashing ceiling.
pub struct Machine<'a> {
    pub raw: Option<&'a RawDisk>,
    pub hash_floor: Option<&'a crate::hashing::HashFloor>,
    pub drop_caches: bool,
}

pub fn targets(cells: &[Cell], machine: &Machine<'_>, rss: Option<&RssCheck>) -> Vec<Target> {
    let mut targets = Vec::new();
    if rss.is_none() {
        large_targets(cells, machine, &mut targets);
        targets.push(small_put_target(cells));
    }
    targets.push(rss_target(rss));
    targets
}

fn large_targets(cells: &[Cell], machine: &Machine<'_>, targets: &mut Vec<Target>) {
    let (raw, drop_caches) = (machine.raw, machine.drop_caches);
    let large = cells.iter().map(|cell| cell.size_bytes).max().filter(|size| *size >= LARGE_OBJECT_BYTES_MIN);
    let Some(large) = large else {
        let note = format!("no object size of at least {} was measured", format_size(LARGE_OBJECT_BYTES_MIN));
        targets.push(Target::not_measured("large PUT".to_owned(), "MiB/s", note.clone()));
        targets.push(Target::not_measured("large GET".to_owned(), "MiB/s", note));
        return;
    };
    for cell in cells.iter().filter(|cell| cell.size_bytes == large) {
        let name = |rule: &str| format!("{} {} ×{} ≥ {rule}", cell.op.name(), format_size(large), cell.concurrency);
        let target = match (cell.op, raw) {
            (Op::Put, Some(raw)) => {
                let raw_write = raw.write_mib_per_s();
                let required = PUT_SHARE_OF_RAW_MIN * raw_write / WRITE_AMPLIFICATION;
                // The server syncs every object, a rhythm closer to the periodic-fsync figure;
                // the verdict keeps the stricter one, the note shows the other.
                let periodic = raw.write_fsync_every_64mib.mib_per_s;
                let mut note = format!(
                    "raw fsync'd write {raw_write:.1} MiB/s; against the fsync-every-64-MiB write ({periodic:.1} MiB/s) \
                     it would need {:.1}",
                    PUT_SHARE_OF_RAW_MIN * periodic / WRITE_AMPLIFICATION
                );
                if let (1, Some(floor)) = (cell.concurrency, machine.hash_floor) {
                    let _ = write!(
                        note,
                        "; signed payloads: the client's SHA-256 then the server's MD5 alone cap one PUT at a time \
                         at {:.1} MiB/s on this CPU",
                        floor.signed_put_mib_per_s()
                    );
                }
                Target::judge(
                    name("50% of raw fsync'd write ÷ 1.5"),
                    "MiB/s",
                    cell.summary.mib_per_s,
                    Bound::AtLeast(required),
                    cell.errors,
                    Some(note),
                )
            }
            (Op::Get, Some(raw)) => match raw.cold_read() {
                Some(read) => {
                    let mut note = format!("raw read {:.1} MiB/s ({})", read.mib_per_s, read.name);
                    if !drop_caches {
                        note.push_str("; GET data may have come from the server's page cache (use --drop-caches)");
                    }
                    let required = GET_SHARE_OF_RAW_MIN * read.mib_per_s;
                    Target::judge(
                        name("70% of raw read"),
                        "MiB/s",
                        cell.summary.mib_per_s,
                        Bound::AtLeast(required),
                        cell.errors,
                        Some(note),
                    )
                }
                None => Target::not_measured(
                    name("70% of raw read"),
                    "MiB/s",
                    "no read from the disk: O_DIRECT was refused and --drop-caches was not given".to_owned(),
                ),
            },
            (_, None) => Target::not_measured(name("share of raw disk"), "MiB/s", "no raw disk figures".to_owned()),
        };
        targets.push(target);
    }
}

fn small_put_target(cells: &[Cell]) -> Target {
    let name = format!(
        "PUT {} ×{SMALL_CONCURRENCY} > {SMALL_PUT_OBJECTS_PER_S_MIN:.0} obj/s (fsync'd)",
        format_size(SMALL_OBJECT_BYTES)
    );
    match cells.iter().find(|cell| {
        cell.op == Op::Put && cell.size_bytes == SMALL_OBJECT_BYTES && cell.concurrency == SMALL_CONCURRENCY
    }) {
        Some(cell) => Target::judge(
            name,
            "obj/s",
            cell.summary.objects_per_s,
            Bound::Above(SMALL_PUT_OBJECTS_PER_S_MIN),
            cell.errors,
            None,
        ),
        None => Target::not_measured(name, "obj/s", "needs --sizes with 4KiB and --concurrency with 16".to_owned()),
    }
}

fn rss_target(rss: Option<&RssCheck>) -> Target {
    let name = format!(
        "server RSS ≤ {} MiB under {RSS_CONCURRENCY} concurrent {} PUTs",
        RSS_BYTES_MAX >> 20,
        format_size(RSS_OBJECT_BYTES)
    );
    let Some(rss) = rss else {
        return Target::not_measured(name, "MiB", "run with --rss-check --server-pid PID".to_owned());
    };
    let note = (rss.object_size_bytes != RSS_OBJECT_BYTES || rss.concurrency != RSS_CONCURRENCY).then(|| {
        format!("measured with {} concurrent {} PUTs instead", rss.concurrency, format_size(rss.object_size_bytes))
    });
    let peak_mib = rss.peak_bytes() as f64 / (1024.0 * 1024.0);
    Target::judge(name, "MiB", peak_mib, Bound::AtMost((RSS_BYTES_MAX >> 20) as f64), rss.errors, note)
}

/// SSE-C against plaintext over TLS, for every op, size and concurrency measured.
pub fn sse_targets(report: &SseReport) -> Vec<Target> {
    let mut targets = Vec::new();
    for row in report.rows.iter().filter(|row| row.encryption == sse::SSE_C) {
        let cell = &row.cell;
        let name = format!(
            "{} {} ×{} SSE-C ≥ {:.0}% of plaintext (TLS)",
            cell.op.name(),
            format_size(cell.size_bytes),
            cell.concurrency,
            SSE_C_SHARE_OF_PLAINTEXT_MIN * 100.0
        );
        let plain = report.find(sse::TRANSPORT_TLS, sse::PLAINTEXT, cell.op, cell.size_bytes, cell.concurrency);
        let target = match (plain, row.ratio_to_plaintext_tls) {
            (Some(plain), Some(ratio)) => Target::judge(
                name,
                "%",
                ratio * 100.0,
                Bound::AtLeast(SSE_C_SHARE_OF_PLAINTEXT_MIN * 100.0),
                cell.errors + plain.cell.errors,
                Some(format!("{:.1} vs {:.1} MiB/s", cell.summary.mib_per_s, plain.cell.summary.mib_per_s)),
            ),
            _ => Target::not_measured(name, "%", "no plaintext figure over TLS to compare with".to_owned()),
        };
        targets.push(target);
    }
    targets
}

/// SSE-S3 and SSE-KMS against plaintext, for every op, size and concurrency measured.
pub fn kms_targets(report: &crate::kms::KmsReport) -> Vec<Target> {
    use crate::kms::{PLAINTEXT, SSE_KMS, SSE_S3};
    let mut targets = Vec::new();
    for row in report.rows.iter().filter(|row| row.encryption == SSE_S3 || row.encryption == SSE_KMS) {
        let cell = &row.cell;
        let name = format!(
            "{} {} ×{} {} ≥ {:.0}% of plaintext",
            cell.op.name(),
            format_size(cell.size_bytes),
            cell.concurrency,
            row.encryption,
            SSE_C_SHARE_OF_PLAINTEXT_MIN * 100.0
        );
        let plain = report.find(PLAINTEXT, cell.op, cell.size_bytes, cell.concurrency);
        let target = match (plain, row.ratio_to_plaintext) {
            (Some(plain), Some(ratio)) => Target::judge(
                name,
                "%",
                ratio * 100.0,
                Bound::AtLeast(SSE_C_SHARE_OF_PLAINTEXT_MIN * 100.0),
                cell.errors + plain.cell.errors,
                Some(format!("{:.1} vs {:.1} MiB/s", cell.summary.mib_per_s, plain.cell.summary.mib_per_s)),
            ),
            _ => Target::not_measured(name, "%", "no plaintext figure to compare with".to_owned()),
        };
        targets.push(target);
    }
    targets
}

pub fn ms(value: Option<f64>) -> String {
    value.map_or_else(|| "-".to_owned(), |ms| format!("{ms:.2}"))
}

pub fn cores(value: Option<f64>) -> String {
    value.map_or_else(|| "-".to_owned(), |cores| format!("{cores:.2}"))
}

pub const TABLE_HEADER: &str =
    "op   size      conc   objects  errors      MiB/s      obj/s     p50 ms     p99 ms  srv CPU  cli CPU  srv RSS MiB";

/// One table row; also printed as progress while the benchmark runs.
pub fn table_row(cell: &Cell) -> String {
    format!(
        "{:<4} {:<9} {:>4} {:>9} {:>7} {:>10.1} {:>10.1} {:>10} {:>10} {:>8} {:>8} {:>12}",
        cell.op.name(),
        format_size(cell.size_bytes),
        cell.concurrency,
        cell.summary.objects,
        cell.errors,
        cell.summary.mib_per_s,
        cell.summary.objects_per_s,
        ms(cell.summary.p50_ms),
        ms(cell.summary.p99_ms),
        cores(cell.server_cpu_cores),
        cores(cell.client_cpu_cores),
        cell.server_rss_peak_bytes.map_or_else(|| "-".to_owned(), |bytes| (bytes >> 20).to_string()),
    )
}

pub fn render(report: &Report) -> String {
    let mut out = String::new();
    let settings = &report.settings;
    let _ = writeln!(
        out,
        "bulwark-bench {} — {} against {}, bucket {}",
        report.version, report.mode, settings.endpoint, settings.bucket
    );
    let checksum = if report.checksums.is_some() {
        "upload checksum per row"
    } else if settings.checksum_crc32 {
        "CRC32 checksum on uploads"
    } else {
        "no upload checksum"
    };
    let _ = writeln!(
        out,
        "client: aws-sdk-s3, {}, {checksum}, no retries; {} CPUs shared by client and server",
        settings.payload_signing, settings.cpus
    );
    if let Some(ca_cert) = &settings.ca_cert {
        let _ = writeln!(
            out,
            "TLS: the SDK's hyper-rustls client (aws-lc-rs) trusting only {} (ALPN offers h2, http/1.1)",
            ca_cert.display()
        );
    }
    if let Some(error) = &report.mode_error {
        let _ = writeln!(out, "\n{} failed: {error}", report.mode);
    }
    if !report.cells.is_empty() {
        render_cells(report, &mut out);
    }
    if let Some(checksums) = &report.checksums {
        crate::checksums::render(checksums, &mut out);
    }
    if let Some(sse) = &report.sse {
        crate::sse::render(sse, &mut out);
    }
    if let Some(kms) = &report.kms {
        crate::kms::render(kms, &mut out);
    }
    if let Some(listing) = &report.listing {
        crate::listing::render(listing, &mut out);
    }
    if let Some(heal) = &report.heal {
        crate::heal::render(heal, report.raw_disk.as_ref(), &mut out);
    }
    render_raw(report, &mut out);
    if let Some(rss) = &report.rss_check {
        render_rss(rss, &mut out);
    }
    if report.targets.is_empty() {
        return out;
    }
    if report.sse.is_some() {
        let _ = writeln!(out, "\ntargets (issue 6):");
    } else if report.kms.is_some() {
        let _ = writeln!(out, "\ntargets (issue 8):");
    } else {
        let _ = writeln!(out, "\ntargets (default 4+2 layout: the disk writes 1.5× every object):");
    }
    for target in &report.targets {
        let verdict = match target.verdict {
            Verdict::Met => "[met]         ",
            Verdict::NotMet => "[NOT MET]     ",
            Verdict::NotMeasured => "[not measured]",
        };
        let figures = match (target.measured, target.required) {
            (Some(measured), Some(required)) => {
                format!(": {measured:.1} {unit} vs required {required:.1} {unit}", unit = target.unit)
            }
            _ => String::new(),
        };
        let note = target.note.as_ref().map_or_else(String::new, |note| format!(" ({note})"));
        let _ = writeln!(out, "  {verdict} {}{figures}{note}", target.name);
    }
    out
}

fn render_cells(report: &Report, out: &mut String) {
    let settings = &report.settings;
    let bounds = match settings.count {
        Some(count) => format!("{count} objects per cell"),
        None => format!(
            "each cell stops after {} s or {} moved (at least one object per worker)",
            settings.duration_secs_max,
            format_size(settings.bytes_per_cell_max)
        ),
    };
    let _ = writeln!(out, "\nS3 cells ({bounds}; latency per request, send to last byte):");
    let _ = writeln!(out, "{TABLE_HEADER}");
    for cell in &report.cells {
        let _ = writeln!(out, "{}", table_row(cell));
    }
    let _ = writeln!(
        out,
        "srv/cli CPU: cores busy on average (server from /proc/<pid>/stat, client this process); \
         srv RSS: peak sampled VmRSS"
    );
    if report.cells.iter().any(|cell| cell.op == Op::Put) {
        let _ =
            writeln!(out, "PUT cells start after sync(2): each pays for its own writes, not for the cell before it.");
    }
    if report.cells.iter().any(|cell| cell.op == Op::Get && cell.page_cache_dropped) {
        let _ = writeln!(out, "GET cells: the page cache was dropped just before each (reads from the disk).");
    } else if report.cells.iter().any(|cell| cell.op == Op::Get) {
        let _ = writeln!(
            out,
            "GET cells read objects written moments before: unless the server keeps what it writes out of \
             the page cache (Bulwark writes and reads blob files of 1 MiB or more with O_DIRECT: objects \
             of 4 MiB or more come from the disk), they were served from memory (use --drop-caches for \
             disk reads)."
        );
    }
    if report.cells.iter().any(|cell| cell.op == Op::Get) {
        let _ = writeln!(
            out,
            "GET bodies are checked end to end: by the SDK against the full-object checksum the server \
             returns (the bench then compares the first chunk and the length), else byte by byte."
        );
    }
    for cell in report.cells.iter().filter(|cell| cell.errors > 0) {
        let _ = writeln!(
            out,
            "  {} {} ×{}: {} failed, first: {}",
            cell.op.name(),
            format_size(cell.size_bytes),
            cell.concurrency,
            cell.errors,
            cell.first_error.as_deref().unwrap_or("?")
        );
    }
}

fn render_raw(report: &Report, out: &mut String) {
    if let Some(error) = &report.raw_disk_error {
        let _ = writeln!(out, "\nraw disk: not measured: {error}");
    }
    let Some(raw) = &report.raw_disk else {
        return;
    };
    let _ = writeln!(
        out,
        "\nraw disk (one file in {}, sequential 4 MiB requests, one in flight; median of {} runs):",
        raw.directory.display(),
        raw.write_fsync_end.runs_mib_per_s.len()
    );
    for figure in raw.figures() {
        let runs: Vec<String> = figure.runs_mib_per_s.iter().map(|run| format!("{run:.0}")).collect();
        let _ = writeln!(
            out,
            "  {:<28} {:>6} MiB in {:>7.2} s = {:>8.1} MiB/s   (runs: {})",
            figure.name,
            figure.bytes >> 20,
            figure.seconds,
            figure.mib_per_s,
            runs.join(", ")
        );
    }
    if let Some(error) = &raw.read_direct_error {
        let _ = writeln!(out, "  (no O_DIRECT read: {error})");
    }
    let _ = writeln!(out, "  raw fsync'd write for the targets: {:.1} MiB/s (the better write)", raw.write_mib_per_s());
    if let Some(floor) = &report.hash_floor {
        let _ = writeln!(
            out,
            "  hashing of a signed PUT on this CPU: the client's SHA-256 {:.0} MiB/s (the whole body, before it is \
             sent), the server's MD5 {:.0} MiB/s (the ETag; it follows the bytes received): one PUT at a time \
             cannot exceed {:.1} MiB/s (without --hash-every-body the client hashes the payload once)",
            floor.sha256_mib_per_s,
            floor.md5_mib_per_s,
            floor.signed_put_mib_per_s()
        );
    }
    match raw.cold_read() {
        Some(read) => {
            let _ = writeln!(out, "  raw read for the targets: {:.1} MiB/s ({})", read.mib_per_s, read.name);
        }
        None => {
            let _ = writeln!(out, "  raw read for the targets: none (every read came from the page cache)");
        }
    }
}

fn render_rss(rss: &RssCheck, out: &mut String) {
    let mib = |bytes: u64| bytes >> 20;
    let _ = writeln!(
        out,
        "\nrss check: {} concurrent PUTs of {}, server pid {} (streamed aws-chunked bodies: over http:// the SDK signs \
         every chunk with SHA-256 and sends a CRC32 trailer):",
        rss.concurrency,
        format_size(rss.object_size_bytes),
        rss.server_pid
    );
    let _ = writeln!(
        out,
        "  {} ok, {} failed; {} MiB in {:.1} s = {:.1} MiB/s; latency p50 {} ms, p99 {} ms; server CPU {} cores",
        rss.summary.objects,
        rss.errors,
        mib(rss.summary.bytes),
        rss.summary.seconds,
        rss.summary.mib_per_s,
        ms(rss.summary.p50_ms),
        ms(rss.summary.p99_ms),
        cores(rss.server_cpu_cores)
    );
    let _ = writeln!(
        out,
        "  server VmRSS before {} MiB, peak sampled {} MiB; VmHWM before {} MiB, after {} MiB; peak RSS {} MiB",
        mib(rss.rss_before_bytes),
        mib(rss.rss_peak_sampled_bytes),
        mib(rss.hwm_before_bytes),
        mib(rss.hwm_after_bytes),
        mib(rss.peak_bytes())
    );
    if let Some(error) = &rss.first_error {
        let _ = writeln!(out, "  first failure: {error}");
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::time::Duration;

    use super::*;
    use crate::disk::Figure;
    use crate::stats::Summary;

    /// A cell of `mib_per_s` (shared with other modules' tests).
    pub(crate) fn cell(op: Op, size_bytes: u64, concurrency: usize, mib_per_s: f64) -> Cell {
        let seconds = 1.0;
        let objects = ((mib_per_s * 1024.0 * 1024.0) / size_bytes as f64).round() as u64;
        Cell {
            op,
            size_bytes,
            concurrency,
            summary: Summary::new(vec![1000; objects as usize], size_bytes, Duration::from_secs_f64(seconds)),
            errors: 0,
            first_error: None,
            server_rss_peak_bytes: None,
            server_cpu_cores: None,
            client_cpu_cores: None,
            page_cache_dropped: false,
        }
    }

    fn figure(name: &'static str, mib_per_s: f64) -> Figure {
        Figure { name, bytes: 1 << 30, seconds: 1024.0 / mib_per_s, mib_per_s, runs_mib_per_s: vec![mib_per_s] }
    }

    fn raw(write: f64, read_direct: Option<f64>) -> RawDisk {
        RawDisk {
            directory: PathBuf::from("/data"),
            write_fsync_end: figure("write, fsync at end", write),
            write_fsync_every_64mib: figure("write, fsync every 64 MiB", write / 2.0),
            read_direct: read_direct.map(|read| figure("read, O_DIRECT (disk)", read)),
            read_direct_error: None,
            read_after_drop_caches: None,
            read_page_cache: figure("read, page cache (memory)", 5000.0),
        }
    }

    fn verdicts(targets: &[Target]) -> Vec<(String, Verdict)> {
        targets.iter().map(|target| (target.name.clone(), target.verdict)).collect()
    }

    #[test]
    fn targets_follow_the_raw_disk() {
        let large = 64 << 20;
        let cells = [
            cell(Op::Put, 4096, 16, 4.0),  // 1024 obj/s
            cell(Op::Put, large, 1, 64.0), // required 0.5 × 300 / 1.5 = 100
            cell(Op::Put, large, 16, 128.0),
            cell(Op::Get, large, 1, 128.0), // required 0.7 × 400 = 280
            cell(Op::Get, large, 16, 320.0),
        ];
        let disk = raw(300.0, Some(400.0));
        let targets = targets(&cells, &Machine { raw: Some(&disk), hash_floor: None, drop_caches: false }, None);
        let got = verdicts(&targets);
        let expected = [
            ("PUT 64 MiB ×1 ≥ 50% of raw fsync'd write ÷ 1.5", Verdict::NotMet),
            ("PUT 64 MiB ×16 ≥ 50% of raw fsync'd write ÷ 1.5", Verdict::Met),
            ("GET 64 MiB ×1 ≥ 70% of raw read", Verdict::NotMet),
            ("GET 64 MiB ×16 ≥ 70% of raw read", Verdict::Met),
            ("PUT 4 KiB ×16 > 1000 obj/s (fsync'd)", Verdict::Met),
            ("server RSS ≤ 512 MiB under 16 concurrent 1 GiB PUTs", Verdict::NotMeasured),
        ];
        let expected: Vec<_> = expected.iter().map(|(name, verdict)| (name.to_string(), *verdict)).collect();
        assert_eq!(got, expected);
        assert_eq!(targets[0].required, Some(100.0));
        assert!(!targets[0].note.as_deref().unwrap_or_default().contains("signed"), "no hashing figures, no ceiling");
    }

    #[test]
    fn a_signed_single_put_target_names_the_hashing_ceiling() {
        let large = 64 << 20;
        let cells = [cell(Op::Put, large, 1, 64.0), cell(Op::Put, large, 16, 128.0)];
        let disk = raw(300.0, Some(400.0));
        let floor = crate::hashing::HashFloor { sha256_mib_per_s: 1200.0, md5_mib_per_s: 600.0 };
        let machine = Machine { raw: Some(&disk), hash_floor: Some(&floor), drop_caches: false };
        let targets = targets(&cells, &machine, None);
        assert_eq!(targets[0].verdict, Verdict::NotMet, "the ceiling explains a miss; it does not excuse it");
        let single = targets[0].note.as_deref().unwrap_or_default();
        assert!(single.contains("cap one PUT at a time at 400.0 MiB/s"), "{single}");
        let concurrent = targets[1].note.as_deref().unwrap_or_default();
        assert!(!concurrent.contains("cap one PUT"), "concurrent PUTs overlap their hashing: {concurrent}");
    }

    #[test]
    fn get_target_needs_a_read_from_the_disk() {
        let cells = [cell(Op::Get, 64 << 20, 1, 100.0)];
        let disk = raw(300.0, None);
        let targets = targets(&cells, &Machine { raw: Some(&disk), hash_floor: None, drop_caches: false }, None);
        assert_eq!(targets[0].verdict, Verdict::NotMeasured);
    }

    fn sse_row(encryption: &'static str, op: Op, mib_per_s: f64) -> crate::sse::SseRow {
        crate::sse::SseRow {
            transport: crate::sse::TRANSPORT_TLS,
            encryption,
            cell: cell(op, 1 << 20, 1, mib_per_s),
            ratio_to_plaintext_tls: None,
            rounds_mib_per_s: vec![mib_per_s],
        }
    }

    #[test]
    fn sse_c_is_judged_against_plaintext_over_tls() {
        let mut report = SseReport {
            tls_endpoint: "https://127.0.0.1:9443".to_owned(),
            http_endpoint: None,
            rows: vec![
                sse_row(sse::PLAINTEXT, Op::Put, 200.0),
                sse_row(sse::SSE_C, Op::Put, 180.0),
                sse_row(sse::PLAINTEXT, Op::Get, 800.0),
                sse_row(sse::SSE_C, Op::Get, 640.0),
            ],
        };
        crate::sse::fill_ratios(&mut report);
        let targets = sse_targets(&report);
        let got: Vec<(Verdict, Option<f64>)> = targets.iter().map(|t| (t.verdict, t.measured)).collect();
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].0, Verdict::Met);
        assert_eq!(got[1].0, Verdict::NotMet);
        assert!((got[0].1.unwrap_or_default() - 90.0).abs() < 1.0, "{got:?}");
        assert!((got[1].1.unwrap_or_default() - 80.0).abs() < 1.0, "{got:?}");
    }

    #[test]
    fn sse_c_without_a_plaintext_figure_is_not_measured() {
        let report = SseReport {
            tls_endpoint: "https://127.0.0.1:9443".to_owned(),
            http_endpoint: None,
            rows: vec![sse_row(sse::SSE_C, Op::Put, 180.0)],
        };
        assert_eq!(sse_targets(&report)[0].verdict, Verdict::NotMeasured);
    }

    #[test]
    fn failed_requests_fail_a_target() {
        let mut small = cell(Op::Put, 4096, 16, 8.0);
        small.errors = 1;
        assert_eq!(small_put_target(&[small]).verdict, Verdict::NotMet);
    }
}
