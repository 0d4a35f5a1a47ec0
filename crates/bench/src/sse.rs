//! `--sse` (issue 6): what SSE-C and TLS cost PUT and GET.
//!
//! SSE-C is refused over plain HTTP, so there are three variants, not four:
//! - *plaintext / HTTP*: a second server with the same configuration on a plain
//!   `--http-endpoint` (skipped without one);
//! - *plaintext / TLS* and *SSE-C / TLS*: the `https://` `--endpoint`, trusted through
//!   `--ca-cert`. SSE-C objects are written and read with one random key per run.
//!
//! For every size × concurrency (default 64 MiB × 1, 4) each variant runs a PUT cell and
//! then a GET cell of the objects it just wrote (every byte compared), in turn for
//! `--rounds` rounds (see [`crate::rounds`]). Each row is a variant's median round and
//! shows its MiB/s over the *plaintext / TLS* row of the same op, size and concurrency; the issue's
//! target is SSE-C at ≥ 85% of plaintext (see [`crate::report::sse_targets`]).

use std::sync::Arc;

use serde::Serialize;

use crate::args::format_size;
use crate::rounds::{self, Rounds};
use crate::s3::{Bounds, Cell, CustomerKey, Op, RequestOptions, Runner};
use crate::{disk, payload};

pub const TRANSPORT_HTTP: &str = "HTTP";
pub const TRANSPORT_TLS: &str = "TLS";
pub const PLAINTEXT: &str = "plaintext";
pub const SSE_C: &str = "SSE-C";

#[derive(Debug, Clone, Serialize)]
pub struct SseRow {
    pub transport: &'static str,
    pub encryption: &'static str,
    #[serde(flatten)]
    pub cell: Cell,
    /// MiB/s over that of plaintext over TLS (same op, size, concurrency), both the
    /// median round.
    pub ratio_to_plaintext_tls: Option<f64>,
    /// MiB/s of every round in the order they ran; `cell` is the median one.
    pub rounds_mib_per_s: Vec<f64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct SseReport {
    pub tls_endpoint: String,
    pub http_endpoint: Option<String>,
    pub rows: Vec<SseRow>,
}

impl SseReport {
    pub fn find(&self, transport: &str, encryption: &str, op: Op, size: u64, concurrency: usize) -> Option<&SseRow> {
        self.rows.iter().find(|row| {
            row.transport == transport
                && row.encryption == encryption
                && row.cell.op == op
                && row.cell.size_bytes == size
                && row.cell.concurrency == concurrency
        })
    }
}

/// The figures, with the keys written over TLS and those written over plain HTTP.
pub struct Outcome {
    pub report: SseReport,
    pub tls_keys: Vec<String>,
    pub http_keys: Vec<String>,
}

pub struct Plan<'a> {
    pub tls: &'a Runner,
    pub http: Option<&'a Runner>,
    pub tls_endpoint: String,
    pub http_endpoint: Option<String>,
    pub sizes: Vec<u64>,
    pub levels: Vec<usize>,
    pub bounds: Bounds,
    pub drop_caches: bool,
    /// Rounds of the comparison (see [`crate::rounds`]).
    pub rounds: usize,
}

pub async fn run(plan: &Plan<'_>) -> Outcome {
    let key = CustomerKey::random();
    let mut outcome = Outcome {
        report: SseReport {
            tls_endpoint: plan.tls_endpoint.clone(),
            http_endpoint: plan.http_endpoint.clone(),
            rows: Vec::new(),
        },
        tls_keys: Vec::new(),
        http_keys: Vec::new(),
    };
    for &size in &plan.sizes {
        let Ok(length) = usize::try_from(size) else {
            eprintln!("skipping {size} bytes: too large for this platform");
            continue;
        };
        let body = payload::random_bytes(length, size);
        for &concurrency in &plan.levels {
            let mut variants = Vec::new();
            if let Some(http) = plan.http {
                variants.push((TRANSPORT_HTTP, PLAINTEXT, http.clone()));
            }
            variants.push((TRANSPORT_TLS, PLAINTEXT, plan.tls.clone()));
            let sse = Runner {
                options: RequestOptions { customer_key: Some(key.clone()), ..plan.tls.options.clone() },
                ..plan.tls.clone()
            };
            variants.push((TRANSPORT_TLS, SSE_C, sse));
            let mut puts: Vec<Rounds> = variants.iter().map(|_| Rounds::default()).collect();
            let mut gets: Vec<Rounds> = variants.iter().map(|_| Rounds::default()).collect();
            for round in 0..plan.rounds {
                for variant in rounds::order(variants.len(), round) {
                    let (transport, encryption, runner) = &variants[variant];
                    let runner = Runner {
                        prefix: format!(
                            "{}/{}-{}/r{round}",
                            runner.prefix,
                            transport.to_ascii_lowercase(),
                            encryption.to_ascii_lowercase()
                        ),
                        ..runner.clone()
                    };
                    let (put, keys) =
                        runner.run_cell(Op::Put, &body, concurrency, plan.bounds, &Arc::new(Vec::new()), false).await;
                    progress(round, plan.rounds, transport, encryption, &put);
                    puts[variant].push(put);
                    let keys = Arc::new(keys);
                    if !keys.is_empty() {
                        let dropped = plan.drop_caches && disk::drop_page_cache().is_ok();
                        let (get, _) = runner.run_cell(Op::Get, &body, concurrency, plan.bounds, &keys, dropped).await;
                        progress(round, plan.rounds, transport, encryption, &get);
                        gets[variant].push(get);
                    }
                    // Each round's objects go at once (see crate::rounds); what could not be
                    // deleted is left to the final cleanup.
                    if runner.delete(&keys).await.0 > 0 {
                        let target =
                            if *transport == TRANSPORT_HTTP { &mut outcome.http_keys } else { &mut outcome.tls_keys };
                        target.extend(keys.iter().cloned());
                    }
                }
            }
            for (((transport, encryption, _), puts), gets) in variants.iter().zip(puts).zip(gets) {
                for rounds in [puts, gets] {
                    if let Some((cell, all)) = rounds.median() {
                        outcome.report.rows.push(SseRow {
                            transport,
                            encryption,
                            cell,
                            ratio_to_plaintext_tls: None,
                            rounds_mib_per_s: all,
                        });
                    }
                }
            }
        }
    }
    fill_ratios(&mut outcome.report);
    outcome
}

/// One cell as it completes (the table at the end has the median rounds).
fn progress(round: usize, rounds: usize, transport: &'static str, encryption: &'static str, cell: &Cell) {
    let row = SseRow {
        transport,
        encryption,
        cell: cell.clone(),
        ratio_to_plaintext_tls: None,
        rounds_mib_per_s: Vec::new(),
    };
    eprintln!("round {}/{rounds}: {}", round + 1, render_row(&row));
    if let Some(error) = &cell.first_error {
        eprintln!("  first failure: {error}");
    }
}

pub(crate) fn fill_ratios(report: &mut SseReport) {
    let baselines: Vec<Option<f64>> = report
        .rows
        .iter()
        .map(|row| {
            let cell = &row.cell;
            report
                .find(TRANSPORT_TLS, PLAINTEXT, cell.op, cell.size_bytes, cell.concurrency)
                .map(|base| base.cell.summary.mib_per_s)
                .filter(|base| *base > 0.0)
                .map(|base| cell.summary.mib_per_s / base)
        })
        .collect();
    for (row, ratio) in report.rows.iter_mut().zip(baselines) {
        row.ratio_to_plaintext_tls = ratio;
    }
}

pub const HEADER: &str = "op   encryption transport size      conc  objects errors      MiB/s  vs plain/TLS     p50 ms     p99 ms  srv CPU  cli CPU  rounds MiB/s";

pub fn render_row(row: &SseRow) -> String {
    let cell = &row.cell;
    format!(
        "{:<4} {:<10} {:<9} {:<9} {:>4} {:>8} {:>6} {:>10.1} {:>13} {:>10} {:>10} {:>8} {:>8}  {}",
        cell.op.name(),
        row.encryption,
        row.transport,
        format_size(cell.size_bytes),
        cell.concurrency,
        cell.summary.objects,
        cell.errors,
        cell.summary.mib_per_s,
        row.ratio_to_plaintext_tls.map_or_else(|| "-".to_owned(), |ratio| format!("{:.0}%", ratio * 100.0)),
        crate::report::ms(cell.summary.p50_ms),
        crate::report::ms(cell.summary.p99_ms),
        crate::report::cores(cell.server_cpu_cores),
        crate::report::cores(cell.client_cpu_cores),
        rounds::render(&row.rounds_mib_per_s),
    )
}

pub fn render(report: &SseReport, out: &mut String) {
    use std::fmt::Write as _;
    let http = report.http_endpoint.as_deref().unwrap_or("not measured: no --http-endpoint");
    let _ = writeln!(
        out,
        "\nSSE-C and TLS (TLS: {}; HTTP: {http}; SSE-C over plain HTTP is refused by design, so it is no cell; \
         GETs read the objects just written):",
        report.tls_endpoint
    );
    let _ = writeln!(out, "{HEADER}");
    for row in &report.rows {
        let _ = writeln!(out, "{}", render_row(row));
    }
    for row in report.rows.iter().filter(|row| row.cell.errors > 0) {
        let _ = writeln!(
            out,
            "  {} {}/{} ×{}: {} failed, first: {}",
            row.cell.op.name(),
            row.encryption,
            row.transport,
            row.cell.concurrency,
            row.cell.errors,
            row.cell.first_error.as_deref().unwrap_or("?")
        );
    }
}
