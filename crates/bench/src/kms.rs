//! `--kms` (issue 8): what SSE-S3 and SSE-KMS cost PUT and GET, and how many
//! data keys the built-in KMS hands out per second.
//!
//! On the one `--endpoint` (plain HTTP is fine: neither scheme needs TLS), for every
//! size × concurrency (default 64 MiB × 1, 4) three variants each run a PUT cell and a
//! GET cell of the objects just written (every byte compared): plaintext, SSE-S3
//! (`AES256`) and SSE-KMS (`aws:kms` under a key this run creates), in turn for
//! `--rounds` rounds (see [`crate::rounds`]). Each row is a variant's median round and
//! shows its MiB/s over the plaintext row of the same op, size and concurrency; the
//! issue's target is ≥ 85%. Then `--kms-concurrency` workers call GenerateDataKey (AES_256, with an
//! encryption context) for `--kms-secs`: operations per second and p50/p99 latency.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use aws_sdk_kms::config::retry::RetryConfig;
use aws_sdk_kms::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_kms::types::DataKeySpec;
use serde::Serialize;

use crate::args::format_size;
use crate::rounds::{self, Rounds};
use crate::s3::{Bounds, Cell, ClientSettings, Op, RequestOptions, Runner, ServerSide};
use crate::stats::Summary;
use crate::{disk, payload};

pub const PLAINTEXT: &str = "plaintext";
pub const SSE_S3: &str = "SSE-S3";
pub const SSE_KMS: &str = "SSE-KMS";

#[derive(Debug, Clone, Serialize)]
pub struct KmsRow {
    pub encryption: &'static str,
    #[serde(flatten)]
    pub cell: Cell,
    /// MiB/s over that of plaintext (same op, size, concurrency), both the median round.
    pub ratio_to_plaintext: Option<f64>,
    /// MiB/s of every round in the order they ran; `cell` is the median one.
    pub rounds_mib_per_s: Vec<f64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct DataKeyRate {
    pub concurrency: usize,
    pub seconds: f64,
    pub operations: u64,
    pub errors: u64,
    pub operations_per_s: f64,
    pub p50_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    pub first_error: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct KmsReport {
    pub endpoint: String,
    pub key_arn: Option<String>,
    pub rows: Vec<KmsRow>,
    pub generate_data_key: Option<DataKeyRate>,
    pub error: Option<String>,
}

impl KmsReport {
    pub fn find(&self, encryption: &str, op: Op, size: u64, concurrency: usize) -> Option<&KmsRow> {
        self.rows.iter().find(|row| {
            row.encryption == encryption
                && row.cell.op == op
                && row.cell.size_bytes == size
                && row.cell.concurrency == concurrency
        })
    }
}

pub struct Plan<'a> {
    pub runner: &'a Runner,
    pub settings: &'a ClientSettings,
    pub sizes: Vec<u64>,
    pub levels: Vec<usize>,
    pub bounds: Bounds,
    pub drop_caches: bool,
    pub kms_concurrency: usize,
    pub kms_secs: u64,
    /// Rounds of the comparison (see [`crate::rounds`]).
    pub rounds: usize,
}

/// A KMS client for the same endpoint and credentials, without retries.
fn kms_client(settings: &ClientSettings) -> Result<aws_sdk_kms::Client, String> {
    let credentials = Credentials::new(&settings.access_key, &settings.secret_key, None, None, "bulwark-bench");
    let mut config = aws_sdk_kms::Config::builder();
    if let Some(pem) = &settings.ca_cert_pem {
        config = config.http_client(crate::s3::tls_http_client(pem)?);
    }
    Ok(aws_sdk_kms::Client::from_conf(
        config
            .behavior_version(BehaviorVersion::latest())
            .credentials_provider(credentials)
            .region(Region::new(settings.region.clone()))
            .endpoint_url(&settings.endpoint)
            .retry_config(RetryConfig::disabled())
            .build(),
    ))
}

/// The figures and the keys written (for the cleanup).
pub async fn run(plan: &Plan<'_>) -> (KmsReport, Vec<String>) {
    let mut report = KmsReport {
        endpoint: plan.settings.endpoint.clone(),
        key_arn: None,
        rows: Vec::new(),
        generate_data_key: None,
        error: None,
    };
    let mut written = Vec::new();
    let kms = match kms_client(plan.settings) {
        Ok(kms) => kms,
        Err(e) => {
            report.error = Some(e);
            return (report, written);
        }
    };
    let key_arn = match kms.create_key().description("bulwark-bench").send().await {
        Ok(out) => out.key_metadata().map(|m| m.arn().unwrap_or(m.key_id()).to_owned()),
        Err(e) => {
            report.error = Some(format!("CreateKey: {}", aws_sdk_kms::error::DisplayErrorContext(&e)));
            return (report, written);
        }
    };
    report.key_arn = key_arn.clone();
    for &size in &plan.sizes {
        let Ok(length) = usize::try_from(size) else { continue };
        let body = payload::random_bytes(length, size);
        for &concurrency in &plan.levels {
            let variants = [
                (PLAINTEXT, None),
                (SSE_S3, Some(ServerSide { algorithm: "AES256", kms_key_id: None })),
                (SSE_KMS, Some(ServerSide { algorithm: "aws:kms", kms_key_id: key_arn.clone() })),
            ];
            let mut puts: Vec<Rounds> = variants.iter().map(|_| Rounds::default()).collect();
            let mut gets: Vec<Rounds> = variants.iter().map(|_| Rounds::default()).collect();
            for round in 0..plan.rounds {
                for variant in rounds::order(variants.len(), round) {
                    let (encryption, server_side) = variants[variant].clone();
                    let runner = Runner {
                        prefix: format!("{}/{}/r{round}", plan.runner.prefix, encryption.to_ascii_lowercase()),
                        options: RequestOptions { server_side, ..plan.runner.options.clone() },
                        ..plan.runner.clone()
                    };
                    let (put, keys) =
                        runner.run_cell(Op::Put, &body, concurrency, plan.bounds, &Arc::new(Vec::new()), false).await;
                    progress(round, plan.rounds, encryption, &put);
                    puts[variant].push(put);
                    let keys = Arc::new(keys);
                    if !keys.is_empty() {
                        let dropped = plan.drop_caches && disk::drop_page_cache().is_ok();
                        let (get, _) = runner.run_cell(Op::Get, &body, concurrency, plan.bounds, &keys, dropped).await;
                        progress(round, plan.rounds, encryption, &get);
                        gets[variant].push(get);
                    }
                    // Each round's objects go at once, so the rounds do not fill the disk
                    // (and a later round does not run on a fuller one); what could not be
                    // deleted is left to the final cleanup.
                    if runner.delete(&keys).await.0 > 0 {
                        written.extend(keys.iter().cloned());
                    }
                }
            }
            for (((encryption, _), puts), gets) in variants.iter().zip(puts).zip(gets) {
                for rounds in [puts, gets] {
                    if let Some((cell, all)) = rounds.median() {
                        report.rows.push(KmsRow { encryption, cell, ratio_to_plaintext: None, rounds_mib_per_s: all });
                    }
                }
            }
        }
    }
    fill_ratios(&mut report);
    if let Some(key) = &key_arn {
        report.generate_data_key = Some(data_key_rate(&kms, key, plan.kms_concurrency, plan.kms_secs).await);
    }
    (report, written)
}

async fn data_key_rate(kms: &aws_sdk_kms::Client, key: &str, concurrency: usize, secs: u64) -> DataKeyRate {
    let deadline = Instant::now() + Duration::from_secs(secs);
    let errors = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let first_error = Arc::new(std::sync::Mutex::new(None::<String>));
    let started = Instant::now();
    let workers = (0..concurrency).map(|_| {
        let (kms, key, errors, stop, first_error) =
            (kms.clone(), key.to_owned(), errors.clone(), stop.clone(), first_error.clone());
        tokio::spawn(async move {
            let mut latencies = Vec::new();
            while Instant::now() < deadline && !stop.load(Ordering::Relaxed) {
                let sent = Instant::now();
                let result = kms
                    .generate_data_key()
                    .key_id(&key)
                    .key_spec(DataKeySpec::Aes256)
                    .encryption_context("aws:s3:arn", "arn:aws:s3:::bench/object")
                    .send()
                    .await;
                match result {
                    Ok(_) => latencies.push(sent.elapsed().as_micros() as u64),
                    Err(e) => {
                        let n = errors.fetch_add(1, Ordering::Relaxed) + 1;
                        first_error
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .get_or_insert_with(|| aws_sdk_kms::error::DisplayErrorContext(&e).to_string());
                        if n >= crate::s3::ERRORS_PER_CELL_MAX {
                            stop.store(true, Ordering::Relaxed);
                        }
                    }
                }
            }
            latencies
        })
    });
    let mut latencies = Vec::new();
    for worker in futures_join(workers.collect()).await {
        latencies.extend(worker);
    }
    let summary = Summary::new(latencies, 0, started.elapsed());
    let rate = DataKeyRate {
        concurrency,
        seconds: summary.seconds,
        operations: summary.objects,
        errors: errors.load(Ordering::Relaxed),
        operations_per_s: summary.objects_per_s,
        p50_ms: summary.p50_ms,
        p99_ms: summary.p99_ms,
        first_error: first_error.lock().unwrap_or_else(|p| p.into_inner()).clone(),
    };
    eprintln!(
        "GenerateDataKey ×{concurrency}: {} ops in {:.1}s = {:.0} ops/s, p50 {} ms, p99 {} ms, {} errors",
        rate.operations,
        rate.seconds,
        rate.operations_per_s,
        crate::report::ms(rate.p50_ms),
        crate::report::ms(rate.p99_ms),
        rate.errors
    );
    rate
}

async fn futures_join(handles: Vec<tokio::task::JoinHandle<Vec<u64>>>) -> Vec<Vec<u64>> {
    let mut out = Vec::with_capacity(handles.len());
    for handle in handles {
        out.push(handle.await.unwrap_or_default());
    }
    out
}

/// One cell as it completes (the table at the end has the median rounds).
fn progress(round: usize, rounds: usize, encryption: &'static str, cell: &Cell) {
    let row = KmsRow { encryption, cell: cell.clone(), ratio_to_plaintext: None, rounds_mib_per_s: Vec::new() };
    eprintln!("round {}/{rounds}: {}", round + 1, render_row(&row));
    if let Some(error) = &cell.first_error {
        eprintln!("  first failure: {error}");
    }
}

fn fill_ratios(report: &mut KmsReport) {
    let ratios: Vec<Option<f64>> = report
        .rows
        .iter()
        .map(|row| {
            let cell = &row.cell;
            report
                .find(PLAINTEXT, cell.op, cell.size_bytes, cell.concurrency)
                .map(|base| base.cell.summary.mib_per_s)
                .filter(|base| *base > 0.0)
                .map(|base| cell.summary.mib_per_s / base)
        })
        .collect();
    for (row, ratio) in report.rows.iter_mut().zip(ratios) {
        row.ratio_to_plaintext = ratio;
    }
}

pub const HEADER: &str = "op   encryption size      conc  objects errors      MiB/s  vs plain     p50 ms     p99 ms  srv CPU  cli CPU  rounds MiB/s";

pub fn render_row(row: &KmsRow) -> String {
    let cell = &row.cell;
    format!(
        "{:<4} {:<10} {:<9} {:>4} {:>8} {:>6} {:>10.1} {:>9} {:>10} {:>10} {:>8} {:>8}  {}",
        cell.op.name(),
        row.encryption,
        format_size(cell.size_bytes),
        cell.concurrency,
        cell.summary.objects,
        cell.errors,
        cell.summary.mib_per_s,
        row.ratio_to_plaintext.map_or_else(|| "-".to_owned(), |ratio| format!("{:.0}%", ratio * 100.0)),
        crate::report::ms(cell.summary.p50_ms),
        crate::report::ms(cell.summary.p99_ms),
        crate::report::cores(cell.server_cpu_cores),
        crate::report::cores(cell.client_cpu_cores),
        rounds::render(&row.rounds_mib_per_s),
    )
}

pub fn render(report: &KmsReport, out: &mut String) {
    use std::fmt::Write as _;
    let _ = writeln!(
        out,
        "\nSSE-S3 and SSE-KMS against plaintext ({}; SSE-KMS key {}):",
        report.endpoint,
        report.key_arn.as_deref().unwrap_or("-")
    );
    if let Some(error) = &report.error {
        let _ = writeln!(out, "  failed: {error}");
    }
    let _ = writeln!(out, "{HEADER}");
    for row in &report.rows {
        let _ = writeln!(out, "{}", render_row(row));
    }
    if let Some(rate) = &report.generate_data_key {
        let _ = writeln!(
            out,
            "GenerateDataKey (AES_256) ×{}: {:.0} ops/s over {:.1}s ({} ops, {} errors), p50 {} ms, p99 {} ms",
            rate.concurrency,
            rate.operations_per_s,
            rate.seconds,
            rate.operations,
            rate.errors,
            crate::report::ms(rate.p50_ms),
            crate::report::ms(rate.p99_ms)
        );
        if let Some(e) = &rate.first_error {
            let _ = writeln!(out, "  first failure: {e}");
        }
    }
}
