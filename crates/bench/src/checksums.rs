//! `--checksums` (issue 3): what a flexible checksum costs a PUT.
//!
//! For every size × concurrency (default 64 MiB × 1, 4) three PUT cells run back to back,
//! each under its own key prefix so none overwrites another's objects:
//! - *none*: the SDK's `RequestChecksumCalculation::WhenRequired` and no algorithm, so the
//!   client computes nothing; the server still computes a CRC64NVME of every body (its
//!   default), so this is the server's own cost with no client checksum to verify;
//! - *CRC64NVME* and *SHA256*, each sent two ways: in a header (an in-memory body) and in
//!   an aws-chunked trailer (a streamed body, as the SDK sends a file). The client computes the named checksum of every body and
//!   sends it (`WhenSupported` and the algorithm named: with `WhenRequired` the SDK would
//!   only declare `x-amz-sdk-checksum-algorithm` and send no value, since PutObject does
//!   not require one); the server computes the same and compares before storing anything.
//!
//! Each row gives MiB/s and its ratio to the *none* row of the same size and concurrency,
//! with the server's and the client's CPU (they share the machine).

use std::sync::Arc;

use aws_sdk_s3::types::ChecksumAlgorithm;
use serde::Serialize;

use crate::payload;
use crate::s3::{Bounds, Cell, Op, RequestOptions, Runner};

/// One way of sending a PUT.
struct Variant {
    checksum: &'static str,
    algorithm: Option<ChecksumAlgorithm>,
    /// Streamed body: the checksum goes in an aws-chunked trailer, not a header.
    streamed: bool,
}

/// The variants, the baseline first.
const VARIANTS: [Variant; 5] = [
    Variant { checksum: "none", algorithm: None, streamed: false },
    Variant { checksum: "CRC64NVME", algorithm: Some(ChecksumAlgorithm::Crc64Nvme), streamed: false },
    Variant { checksum: "SHA256", algorithm: Some(ChecksumAlgorithm::Sha256), streamed: false },
    Variant { checksum: "CRC64NVME", algorithm: Some(ChecksumAlgorithm::Crc64Nvme), streamed: true },
    Variant { checksum: "SHA256", algorithm: Some(ChecksumAlgorithm::Sha256), streamed: true },
];

#[derive(Debug, Clone, Serialize)]
pub struct ChecksumRow {
    /// `none`, `CRC64NVME` or `SHA256`: what the client sent.
    pub checksum: &'static str,
    /// `header` (in-memory body), `trailer` (streamed, aws-chunked body) or `-` (none).
    pub sent_as: &'static str,
    #[serde(flatten)]
    pub cell: Cell,
    /// MiB/s over the MiB/s of the `none` row of the same size and concurrency.
    pub ratio_to_none: Option<f64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ChecksumReport {
    pub rows: Vec<ChecksumRow>,
}

/// Runs the PUT cells: `none` is a runner whose client computes no checksum
/// (`WhenRequired`), `computing` one whose client computes the algorithm it is given
/// (`WhenSupported`). Returns the figures and every key written.
pub async fn run(
    none: &Runner,
    computing: &Runner,
    sizes: &[u64],
    levels: &[usize],
    bounds: Bounds,
) -> (ChecksumReport, Vec<String>) {
    let mut rows = Vec::new();
    let mut keys = Vec::new();
    for &size in sizes {
        let Ok(length) = usize::try_from(size) else {
            eprintln!("skipping {size} bytes: too large for this platform");
            continue;
        };
        let body = payload::random_bytes(length, size);
        for &concurrency in levels {
            let mut baseline: Option<f64> = None;
            for variant in &VARIANTS {
                let runner = if variant.algorithm.is_some() { computing } else { none };
                let sent_as = match (&variant.algorithm, variant.streamed) {
                    (None, _) => "-",
                    (Some(_), false) => "header",
                    (Some(_), true) => "trailer",
                };
                let runner = Runner {
                    prefix: format!("{}/checksum-{}-{sent_as}", runner.prefix, variant.checksum.to_ascii_lowercase()),
                    options: RequestOptions {
                        checksum: variant.algorithm.clone(),
                        streamed: variant.streamed,
                        ..runner.options.clone()
                    },
                    ..runner.clone()
                };
                let (cell, written) =
                    runner.run_cell(Op::Put, &body, concurrency, bounds, &Arc::new(Vec::new()), false).await;
                keys.extend(written);
                let mib_per_s = cell.summary.mib_per_s;
                if variant.algorithm.is_none() {
                    baseline = Some(mib_per_s);
                }
                let ratio_to_none = baseline.filter(|base| *base > 0.0).map(|base| mib_per_s / base);
                let row = ChecksumRow { checksum: variant.checksum, sent_as, cell, ratio_to_none };
                eprintln!("{}", render_row(&row));
                rows.push(row);
            }
        }
    }
    (ChecksumReport { rows }, keys)
}

pub const HEADER: &str = "checksum   sent as size      conc  objects errors      MiB/s  vs none     p50 ms     p99 ms  srv CPU  cli CPU  \
                          srv s/GiB  cli s/GiB";

/// CPU seconds per GiB moved, from cores busy on average over the cell.
fn cpu_seconds_per_gib(cores: Option<f64>, cell: &Cell) -> String {
    let gib = cell.summary.bytes as f64 / (1024.0 * 1024.0 * 1024.0);
    match cores {
        Some(cores) if gib > 0.0 => format!("{:.2}", cores * cell.summary.seconds / gib),
        _ => "-".to_owned(),
    }
}

pub fn render_row(row: &ChecksumRow) -> String {
    let cell = &row.cell;
    format!(
        "{:<10} {:<7} {:<9} {:>4} {:>8} {:>6} {:>10.1} {:>8} {:>10} {:>10} {:>8} {:>8} {:>10} {:>10}",
        row.checksum,
        row.sent_as,
        crate::args::format_size(cell.size_bytes),
        cell.concurrency,
        cell.summary.objects,
        cell.errors,
        cell.summary.mib_per_s,
        row.ratio_to_none.map_or_else(|| "-".to_owned(), |ratio| format!("{:.0}%", ratio * 100.0)),
        crate::report::ms(cell.summary.p50_ms),
        crate::report::ms(cell.summary.p99_ms),
        crate::report::cores(cell.server_cpu_cores),
        crate::report::cores(cell.client_cpu_cores),
        cpu_seconds_per_gib(cell.server_cpu_cores, cell),
        cpu_seconds_per_gib(cell.client_cpu_cores, cell),
    )
}

pub fn render(report: &ChecksumReport, out: &mut String) {
    use std::fmt::Write as _;
    let _ = writeln!(
        out,
        "\nchecksums (PUT only; none = WhenRequired and no algorithm, the server then computes CRC64NVME itself; \
         CRC64NVME/SHA256 = computed by the client, sent, and verified by the server; s/GiB = CPU seconds per GiB \
         stored):"
    );
    let _ = writeln!(out, "{HEADER}");
    for row in &report.rows {
        let _ = writeln!(out, "{}", render_row(row));
    }
    for row in report.rows.iter().filter(|row| row.cell.errors > 0) {
        let _ = writeln!(
            out,
            "  {} ({}) ×{}: {} failed, first: {}",
            row.checksum,
            row.sent_as,
            row.cell.concurrency,
            row.cell.errors,
            row.cell.first_error.as_deref().unwrap_or("?")
        );
    }
}
