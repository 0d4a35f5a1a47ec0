//! `--checksums` (issue 3): what a flexible checksum costs a PUT.
//!
//! For every size × concurrency (default 64 MiB × 1, 4) five PUT cells run back to back,
//! each under its own key prefix so none overwrites another's objects, and the whole
//! `--checksum-rounds` times (the order rotated each round); the medians are printed last:
//! - *none*: the SDK's `RequestChecksumCalculation::WhenRequired` and no algorithm, so the
//!   client computes nothing; the server still computes a CRC64NVME of every body (its
//!   default), so this is the server's own cost with no client checksum to verify;
//! - *CRC64NVME* and *SHA256*, each sent two ways: in a header (an in-memory body) and in
//!   an aws-chunked trailer (a streamed body, as the SDK sends a file). The client computes the named checksum of every body and
//!   sends it (`WhenSupported` and the algorithm named: with `WhenRequired` the SDK would
//!   only declare `x-amz-sdk-checksum-algorithm` and send no value, since PutObject does
//!   not require one); the server computes the same and compares before storing anything.
//!
//! Each row gives MiB/s and its ratio to the *none* row of the same round, size and
//! concurrency, with the server's and the client's CPU (they share the machine) also as
//! CPU seconds per GiB stored: on a disk-bound machine that shows a checksum's cost when
//! MiB/s cannot.

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
    /// Which round (0-based) the cell belongs to.
    pub round: usize,
    /// `none`, `CRC64NVME` or `SHA256`: what the client sent.
    pub checksum: &'static str,
    /// `header` (in-memory body), `trailer` (streamed, aws-chunked body) or `-` (none).
    pub sent_as: &'static str,
    #[serde(flatten)]
    pub cell: Cell,
    /// MiB/s over the MiB/s of the `none` row of the same round, size and concurrency.
    pub ratio_to_none: Option<f64>,
}

/// One variant's figures over every round: the median of each.
#[derive(Debug, Clone, Serialize)]
pub struct ChecksumMedian {
    pub checksum: &'static str,
    pub sent_as: &'static str,
    pub size_bytes: u64,
    pub concurrency: usize,
    pub rounds: usize,
    pub errors: u64,
    pub mib_per_s: Option<f64>,
    /// The median MiB/s over the median MiB/s of `none`.
    pub ratio_to_none: Option<f64>,
    pub p50_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    /// CPU seconds per GiB stored.
    pub server_cpu_s_per_gib: Option<f64>,
    pub client_cpu_s_per_gib: Option<f64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ChecksumReport {
    pub rounds: usize,
    pub rows: Vec<ChecksumRow>,
    pub medians: Vec<ChecksumMedian>,
}

fn sent_as(variant: &Variant) -> &'static str {
    match (&variant.algorithm, variant.streamed) {
        (None, _) => "-",
        (Some(_), false) => "header",
        (Some(_), true) => "trailer",
    }
}

/// Runs the PUT cells `rounds` times, each round starting one variant further on (so a
/// slow spell of a shared disk does not always hit the same variant): `none` is a runner
/// whose client computes no checksum (`WhenRequired`), `computing` one whose client
/// computes the algorithm it is given (`WhenSupported`). Returns the figures and every key
/// written.
pub async fn run(
    none: &Runner,
    computing: &Runner,
    sizes: &[u64],
    levels: &[usize],
    bounds: Bounds,
    rounds: usize,
) -> (ChecksumReport, Vec<String>) {
    assert!(rounds > 0, "at least one round");
    let mut rows = Vec::new();
    let mut keys = Vec::new();
    for round in 0..rounds {
        for &size in sizes {
            let Ok(length) = usize::try_from(size) else {
                eprintln!("skipping {size} bytes: too large for this platform");
                continue;
            };
            let body = payload::random_bytes(length, size);
            for &concurrency in levels {
                for index in 0..VARIANTS.len() {
                    let variant = &VARIANTS[(index + round) % VARIANTS.len()];
                    let runner = if variant.algorithm.is_some() { computing } else { none };
                    let runner = Runner {
                        prefix: format!(
                            "{}/checksum-{}-{}-r{round}",
                            runner.prefix,
                            variant.checksum.to_ascii_lowercase(),
                            sent_as(variant)
                        ),
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
                    let row = ChecksumRow {
                        round,
                        checksum: variant.checksum,
                        sent_as: sent_as(variant),
                        cell,
                        ratio_to_none: None,
                    };
                    eprintln!("{}", render_row(&row));
                    rows.push(row);
                }
            }
        }
    }
    fill_ratios(&mut rows);
    let medians = medians(&rows);
    (ChecksumReport { rounds, rows, medians }, keys)
}

fn is_baseline(row: &ChecksumRow) -> bool {
    row.sent_as == "-"
}

fn fill_ratios(rows: &mut [ChecksumRow]) {
    let ratios: Vec<Option<f64>> = rows
        .iter()
        .map(|row| {
            let base = rows.iter().find(|base| {
                is_baseline(base)
                    && base.round == row.round
                    && base.cell.size_bytes == row.cell.size_bytes
                    && base.cell.concurrency == row.cell.concurrency
            })?;
            (base.cell.summary.mib_per_s > 0.0).then(|| row.cell.summary.mib_per_s / base.cell.summary.mib_per_s)
        })
        .collect();
    for (row, ratio) in rows.iter_mut().zip(ratios) {
        row.ratio_to_none = ratio;
    }
}

/// The upper median of `values`; `None` when empty.
fn median(mut values: Vec<f64>) -> Option<f64> {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied()
}

/// CPU seconds per GiB stored, from cores busy on average over the cell.
fn cpu_s_per_gib(cores: Option<f64>, cell: &Cell) -> Option<f64> {
    let gib = cell.summary.bytes as f64 / (1024.0 * 1024.0 * 1024.0);
    cores.filter(|_| gib > 0.0).map(|cores| cores * cell.summary.seconds / gib)
}

fn medians(rows: &[ChecksumRow]) -> Vec<ChecksumMedian> {
    let mut medians: Vec<ChecksumMedian> = Vec::new();
    for row in rows {
        let same = |other: &&ChecksumRow| {
            other.checksum == row.checksum
                && other.sent_as == row.sent_as
                && other.cell.size_bytes == row.cell.size_bytes
                && other.cell.concurrency == row.cell.concurrency
        };
        if medians.iter().any(|m| {
            m.checksum == row.checksum
                && m.sent_as == row.sent_as
                && m.size_bytes == row.cell.size_bytes
                && m.concurrency == row.cell.concurrency
        }) {
            continue;
        }
        let group: Vec<&ChecksumRow> = rows.iter().filter(same).collect();
        let ok: Vec<&&ChecksumRow> = group.iter().filter(|r| r.cell.summary.objects > 0).collect();
        medians.push(ChecksumMedian {
            checksum: row.checksum,
            sent_as: row.sent_as,
            size_bytes: row.cell.size_bytes,
            concurrency: row.cell.concurrency,
            rounds: group.len(),
            errors: group.iter().map(|r| r.cell.errors).sum(),
            mib_per_s: median(ok.iter().map(|r| r.cell.summary.mib_per_s).collect()),
            ratio_to_none: None,
            p50_ms: median(ok.iter().filter_map(|r| r.cell.summary.p50_ms).collect()),
            p99_ms: median(ok.iter().filter_map(|r| r.cell.summary.p99_ms).collect()),
            server_cpu_s_per_gib: median(
                ok.iter().filter_map(|r| cpu_s_per_gib(r.cell.server_cpu_cores, &r.cell)).collect(),
            ),
            client_cpu_s_per_gib: median(
                ok.iter().filter_map(|r| cpu_s_per_gib(r.cell.client_cpu_cores, &r.cell)).collect(),
            ),
        });
    }
    let bases: Vec<Option<f64>> = medians
        .iter()
        .map(|m| {
            medians
                .iter()
                .find(|base| {
                    base.sent_as == "-" && base.size_bytes == m.size_bytes && base.concurrency == m.concurrency
                })
                .and_then(|base| base.mib_per_s)
        })
        .collect();
    for (m, base) in medians.iter_mut().zip(bases) {
        m.ratio_to_none = base.zip(m.mib_per_s).filter(|(base, _)| *base > 0.0).map(|(base, rate)| rate / base);
    }
    medians
}

fn optional(value: Option<f64>, precision: usize) -> String {
    value.map_or_else(|| "-".to_owned(), |value| format!("{value:.precision$}"))
}

fn percent(ratio: Option<f64>) -> String {
    ratio.map_or_else(|| "-".to_owned(), |ratio| format!("{:.0}%", ratio * 100.0))
}

pub const HEADER: &str = "round checksum   sent as size      conc  objects errors      MiB/s  vs none     p50 ms     p99 ms  \
                          srv CPU  cli CPU  srv s/GiB  cli s/GiB";

pub fn render_row(row: &ChecksumRow) -> String {
    let cell = &row.cell;
    format!(
        "{:>5} {:<10} {:<7} {:<9} {:>4} {:>8} {:>6} {:>10.1} {:>8} {:>10} {:>10} {:>8} {:>8} {:>10} {:>10}",
        row.round + 1,
        row.checksum,
        row.sent_as,
        crate::args::format_size(cell.size_bytes),
        cell.concurrency,
        cell.summary.objects,
        cell.errors,
        cell.summary.mib_per_s,
        percent(row.ratio_to_none),
        crate::report::ms(cell.summary.p50_ms),
        crate::report::ms(cell.summary.p99_ms),
        crate::report::cores(cell.server_cpu_cores),
        crate::report::cores(cell.client_cpu_cores),
        optional(cpu_s_per_gib(cell.server_cpu_cores, cell), 2),
        optional(cpu_s_per_gib(cell.client_cpu_cores, cell), 2),
    )
}

const MEDIAN_HEADER: &str = "checksum   sent as size      conc rounds errors      MiB/s  vs none     p50 ms     p99 ms  srv s/GiB  \
                             cli s/GiB";

fn render_median(m: &ChecksumMedian) -> String {
    format!(
        "{:<10} {:<7} {:<9} {:>4} {:>6} {:>6} {:>10} {:>8} {:>10} {:>10} {:>10} {:>10}",
        m.checksum,
        m.sent_as,
        crate::args::format_size(m.size_bytes),
        m.concurrency,
        m.rounds,
        m.errors,
        optional(m.mib_per_s, 1),
        percent(m.ratio_to_none),
        crate::report::ms(m.p50_ms),
        crate::report::ms(m.p99_ms),
        optional(m.server_cpu_s_per_gib, 2),
        optional(m.client_cpu_s_per_gib, 2),
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
    let _ = writeln!(out, "medians over {} round(s) (vs none: median MiB/s over the median of none):", report.rounds);
    let _ = writeln!(out, "{MEDIAN_HEADER}");
    for median in &report.medians {
        let _ = writeln!(out, "{}", render_median(median));
    }
    for row in report.rows.iter().filter(|row| row.cell.errors > 0) {
        let _ = writeln!(
            out,
            "  round {} {} ({}) ×{}: {} failed, first: {}",
            row.round + 1,
            row.checksum,
            row.sent_as,
            row.cell.concurrency,
            row.cell.errors,
            row.cell.first_error.as_deref().unwrap_or("?")
        );
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::stats::Summary;

    fn row(round: usize, checksum: &'static str, sent_as: &'static str, mib_per_s: f64) -> ChecksumRow {
        let objects = mib_per_s.round() as usize;
        ChecksumRow {
            round,
            checksum,
            sent_as,
            cell: Cell {
                op: Op::Put,
                size_bytes: 1 << 20,
                concurrency: 1,
                summary: Summary::new(vec![1000; objects], 1 << 20, Duration::from_secs(1)),
                errors: 0,
                first_error: None,
                server_rss_peak_bytes: None,
                server_cpu_cores: Some(1.0),
                client_cpu_cores: None,
                page_cache_dropped: false,
            },
            ratio_to_none: None,
        }
    }

    #[test]
    fn ratios_compare_within_a_round_and_medians_across_rounds() {
        let mut rows = vec![
            row(0, "none", "-", 200.0),
            row(0, "SHA256", "header", 100.0),
            row(1, "SHA256", "header", 150.0),
            row(1, "none", "-", 100.0),
            row(2, "none", "-", 300.0),
            row(2, "SHA256", "header", 120.0),
        ];
        fill_ratios(&mut rows);
        let ratios: Vec<Option<f64>> = rows.iter().map(|r| r.ratio_to_none).collect();
        assert_eq!(ratios, [Some(1.0), Some(0.5), Some(1.5), Some(1.0), Some(1.0), Some(0.4)]);
        let medians = medians(&rows);
        assert_eq!(medians.len(), 2);
        assert_eq!((medians[0].checksum, medians[0].mib_per_s), ("none", Some(200.0)));
        assert_eq!((medians[1].checksum, medians[1].mib_per_s), ("SHA256", Some(120.0)));
        assert_eq!(medians[1].ratio_to_none, Some(0.6));
        assert_eq!(medians[1].rounds, 3);
        // One core busy for a second that stored 120 MiB: 1024 / 120 s per GiB.
        let per_gib = medians[1].server_cpu_s_per_gib.unwrap_or_default();
        assert!((per_gib - 1024.0 / 120.0).abs() < 1e-9, "{per_gib}");
    }
}
