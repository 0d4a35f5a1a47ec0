//! `--checksums` (issue 3): what a flexible checksum costs a PUT.
//!
//! For every size × concurrency (default 64 MiB × 1, 4) three PUT cells run back to back,
//! each under its own key prefix so none overwrites another's objects:
//! - *none*: the SDK's `RequestChecksumCalculation::WhenRequired` and no algorithm, so the
//!   client computes nothing; the server still computes a CRC64NVME of every body (its
//!   default), so this is the server's own cost with no client checksum to verify;
//! - *CRC64NVME* and *SHA256*: the client computes the named checksum of every body and
//!   sends it; the server computes the same and compares before storing anything.
//!
//! Each row gives MiB/s and its ratio to the *none* row of the same size and concurrency,
//! with the server's and the client's CPU (they share the machine).

use std::sync::Arc;

use aws_sdk_s3::types::ChecksumAlgorithm;
use serde::Serialize;

use crate::payload;
use crate::s3::{Bounds, Cell, Op, RequestOptions, Runner};

/// The variants, the baseline first.
const VARIANTS: [(&str, Option<ChecksumAlgorithm>); 3] =
    [("none", None), ("CRC64NVME", Some(ChecksumAlgorithm::Crc64Nvme)), ("SHA256", Some(ChecksumAlgorithm::Sha256))];

#[derive(Debug, Clone, Serialize)]
pub struct ChecksumRow {
    /// `none`, `CRC64NVME` or `SHA256`: what the client sent.
    pub checksum: &'static str,
    #[serde(flatten)]
    pub cell: Cell,
    /// MiB/s over the MiB/s of the `none` row of the same size and concurrency.
    pub ratio_to_none: Option<f64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ChecksumReport {
    pub rows: Vec<ChecksumRow>,
}

/// Runs the PUT cells; returns the figures and every key written.
pub async fn run(runner: &Runner, sizes: &[u64], levels: &[usize], bounds: Bounds) -> (ChecksumReport, Vec<String>) {
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
            for (name, algorithm) in &VARIANTS {
                let variant = Runner {
                    prefix: format!("{}/checksum-{}", runner.prefix, name.to_ascii_lowercase()),
                    options: RequestOptions { checksum: algorithm.clone(), ..runner.options.clone() },
                    ..runner.clone()
                };
                let (cell, written) =
                    variant.run_cell(Op::Put, &body, concurrency, bounds, &Arc::new(Vec::new()), false).await;
                keys.extend(written);
                let mib_per_s = cell.summary.mib_per_s;
                if algorithm.is_none() {
                    baseline = Some(mib_per_s);
                }
                let ratio_to_none = baseline.filter(|base| *base > 0.0).map(|base| mib_per_s / base);
                let row = ChecksumRow { checksum: name, cell, ratio_to_none };
                eprintln!("{}", render_row(&row));
                rows.push(row);
            }
        }
    }
    (ChecksumReport { rows }, keys)
}

pub const HEADER: &str =
    "checksum   size      conc  objects errors      MiB/s  vs none     p50 ms     p99 ms  srv CPU  cli CPU";

pub fn render_row(row: &ChecksumRow) -> String {
    let cell = &row.cell;
    format!(
        "{:<10} {:<9} {:>4} {:>8} {:>6} {:>10.1} {:>8} {:>10} {:>10} {:>8} {:>8}",
        row.checksum,
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
    )
}

pub fn render(report: &ChecksumReport, out: &mut String) {
    use std::fmt::Write as _;
    let _ = writeln!(
        out,
        "\nchecksums (PUT only; none = WhenRequired and no algorithm, the server then computes CRC64NVME itself; \
         CRC64NVME/SHA256 = computed by the client, sent, and verified by the server):"
    );
    let _ = writeln!(out, "{HEADER}");
    for row in &report.rows {
        let _ = writeln!(out, "{}", render_row(row));
    }
    for row in report.rows.iter().filter(|row| row.cell.errors > 0) {
        let _ = writeln!(
            out,
            "  {} ×{}: {} failed, first: {}",
            row.checksum,
            row.cell.concurrency,
            row.cell.errors,
            row.cell.first_error.as_deref().unwrap_or("?")
        );
    }
}
