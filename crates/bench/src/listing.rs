//! `--listing N` (issue 4): paging through many keys and many versions.
//!
//! Two populations, each in a bucket of its own that is kept after the run so the next run
//! reuses it (`--listing-cleanup` removes them):
//! - `<bucket>-listing`: N empty objects `listing-N/aAAA/bBB/kIIIIIIII` (three delimiter
//!   levels: 10,000 keys per `a`, 100 per `b`);
//! - `<bucket>-listing-versions`, versioning enabled: N/10 keys of the same shape under
//!   `versions-N/`, each written 10 times, so about N versions.
//!
//! A *survey* pass pages through a population first; whatever is missing is created
//! (`--listing-concurrency` PUTs in flight) and the pass repeated. The last pass is the
//! measurement: ListObjectsV2 (continuation tokens) or ListObjectVersions (key and
//! version-id markers), max-keys 1000, one request in flight, giving pages/s, entries/s,
//! p50/p99 page latency, and the first and the last page's latency: if each page re-read
//! the namespace up to its marker, the last page would be far slower than the first.
//! Delimiter probes then time single requests at each level (`/` as the delimiter).

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Instant;

use aws_sdk_s3::Client;
use aws_sdk_s3::error::DisplayErrorContext;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{BucketVersioningStatus, Delete, ObjectIdentifier, VersioningConfiguration};
use serde::Serialize;

use crate::stats::percentile;

/// Keys per page, the S3 maximum.
const PAGE_KEYS: i32 = 1000;
/// Versions written per key in the versioned population.
pub const VERSIONS_PER_KEY: u64 = 10;
/// Keys under one `a` level and one `b` level.
const KEYS_PER_A: u64 = 10_000;
const KEYS_PER_B: u64 = 100;
/// A population stops being created after this many failed PUTs.
const CREATE_ERRORS_MAX: u64 = 100;
/// Times each delimiter probe is repeated.
const PROBE_REPEATS: usize = 5;
const DELETE_BATCH_MAX: usize = 1000;

#[derive(Debug, Clone, Serialize)]
pub struct Population {
    pub bucket: String,
    pub prefix: String,
    pub keys: u64,
    pub versions_per_key: u64,
    /// Entries (objects or versions) found by the survey pass.
    pub found_before: u64,
    pub created: u64,
    pub create_seconds: f64,
    pub create_per_s: Option<f64>,
    pub create_errors: u64,
    pub create_first_error: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ListingPass {
    /// `ListObjectsV2` or `ListObjectVersions`.
    pub api: &'static str,
    pub bucket: String,
    pub prefix: String,
    pub pages: u64,
    pub entries: u64,
    pub seconds: f64,
    pub pages_per_s: f64,
    pub entries_per_s: f64,
    pub page_p50_ms: Option<f64>,
    pub page_p99_ms: Option<f64>,
    pub page_max_ms: Option<f64>,
    pub first_page_ms: Option<f64>,
    pub last_page_ms: Option<f64>,
    /// The pass stopped here (a listing cannot go on past a failed page).
    pub error: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct DelimiterProbe {
    pub prefix: String,
    pub common_prefixes: u64,
    pub keys: u64,
    pub p50_ms: Option<f64>,
    pub max_ms: Option<f64>,
    pub error: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ListingReport {
    pub keys_requested: u64,
    pub objects: Population,
    pub versions: Population,
    pub passes: Vec<ListingPass>,
    pub delimiter_probes: Vec<DelimiterProbe>,
}

/// Buckets and sizes of one run.
pub struct Plan {
    pub client: Client,
    pub bucket: String,
    pub keys: u64,
    pub concurrency: usize,
    pub cleanup: bool,
}

/// The key of entry `index` under `prefix`.
fn key_of(prefix: &str, index: u64) -> String {
    format!("{prefix}a{:03}/b{:02}/k{index:08}", index / KEYS_PER_A, (index / KEYS_PER_B) % (KEYS_PER_A / KEYS_PER_B))
}

/// The index encoded in a key made by [`key_of`], if it is one.
fn index_of(prefix: &str, key: &str) -> Option<u64> {
    let rest = key.strip_prefix(prefix)?;
    let leaf = rest.rsplit('/').next()?.strip_prefix('k')?;
    let index: u64 = leaf.parse().ok()?;
    (key_of(prefix, index) == key).then_some(index)
}

pub async fn run(plan: &Plan) -> Result<ListingReport, String> {
    let objects_bucket = format!("{}-listing", plan.bucket);
    let versions_bucket = format!("{}-listing-versions", plan.bucket);
    crate::s3::ensure_bucket(&plan.client, &objects_bucket).await?;
    crate::s3::ensure_bucket(&plan.client, &versions_bucket).await?;
    enable_versioning(&plan.client, &versions_bucket).await?;
    let version_keys = (plan.keys / VERSIONS_PER_KEY).max(1);
    let objects = Shape {
        bucket: objects_bucket,
        prefix: format!("listing-{}/", plan.keys),
        keys: plan.keys,
        versions_per_key: 1,
    };
    let versions = Shape {
        bucket: versions_bucket,
        prefix: format!("versions-{}/", plan.keys),
        keys: version_keys,
        versions_per_key: VERSIONS_PER_KEY,
    };
    let (objects_population, objects_pass, object_entries) = populate_and_list(plan, &objects, Api::Objects).await?;
    let (versions_population, versions_pass, version_entries) =
        populate_and_list(plan, &versions, Api::Versions).await?;
    let mut probes = Vec::new();
    for prefix in [objects.prefix.clone(), format!("{}a000/", objects.prefix), format!("{}a000/b00/", objects.prefix)] {
        let probe = delimiter_probe(&plan.client, &objects.bucket, &prefix).await;
        eprintln!(
            "  delimiter probe {prefix}: {} prefixes, {} keys, p50 {} ms",
            probe.common_prefixes,
            probe.keys,
            crate::report::ms(probe.p50_ms)
        );
        probes.push(probe);
    }
    if plan.cleanup {
        cleanup(&plan.client, &objects.bucket, &object_entries).await;
        cleanup(&plan.client, &versions.bucket, &version_entries).await;
    }
    Ok(ListingReport {
        keys_requested: plan.keys,
        objects: objects_population,
        versions: versions_population,
        passes: vec![objects_pass, versions_pass],
        delimiter_probes: probes,
    })
}

struct Shape {
    bucket: String,
    prefix: String,
    keys: u64,
    versions_per_key: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Api {
    Objects,
    Versions,
}

impl Api {
    fn name(self) -> &'static str {
        match self {
            Api::Objects => "ListObjectsV2",
            Api::Versions => "ListObjectVersions",
        }
    }
}

/// One listed entry: a key and, for versions, its version id.
type Entry = (String, Option<String>);

/// Survey, create what is missing, and measure; returns the entries of the last pass
/// (for cleanup).
async fn populate_and_list(
    plan: &Plan,
    shape: &Shape,
    api: Api,
) -> Result<(Population, ListingPass, Vec<Entry>), String> {
    eprintln!("listing: surveying {}/{} with {} ...", shape.bucket, shape.prefix, api.name());
    let (survey, entries) = list_all(&plan.client, &shape.bucket, &shape.prefix, api).await;
    if let Some(error) = &survey.error {
        return Err(format!("{} of {}/{}: {error}", api.name(), shape.bucket, shape.prefix));
    }
    let mut have = vec![0u64; usize::try_from(shape.keys).map_err(|_| "too many keys for this platform")?];
    for (key, _) in &entries {
        if let Some(slot) = index_of(&shape.prefix, key).and_then(|index| have.get_mut(index as usize)) {
            *slot += 1;
        }
    }
    // PUTs still to do: one per missing version of every key.
    let missing: Vec<u64> = (0..shape.keys)
        .flat_map(|index| {
            let count = shape.versions_per_key.saturating_sub(have[index as usize]);
            std::iter::repeat_n(index, count as usize)
        })
        .collect();
    let mut population = Population {
        bucket: shape.bucket.clone(),
        prefix: shape.prefix.clone(),
        keys: shape.keys,
        versions_per_key: shape.versions_per_key,
        found_before: survey.entries,
        created: 0,
        create_seconds: 0.0,
        create_per_s: None,
        create_errors: 0,
        create_first_error: None,
    };
    if missing.is_empty() {
        eprintln!("  {} entries already there: the survey pass is the measurement", survey.entries);
        return Ok((population, survey, entries));
    }
    eprintln!(
        "  {} entries there, creating {} with {} PUTs in flight ...",
        survey.entries,
        missing.len(),
        plan.concurrency
    );
    let created = create(&plan.client, &shape.bucket, &shape.prefix, missing, plan.concurrency).await;
    population.created = created.created;
    population.create_seconds = created.seconds;
    population.create_per_s = (created.seconds > 0.0).then(|| created.created as f64 / created.seconds);
    population.create_errors = created.errors;
    population.create_first_error = created.first_error;
    eprintln!("  created {} in {:.1} s; listing again ...", created.created, created.seconds);
    let (pass, entries) = list_all(&plan.client, &shape.bucket, &shape.prefix, api).await;
    Ok((population, pass, entries))
}

struct Created {
    created: u64,
    seconds: f64,
    errors: u64,
    first_error: Option<String>,
}

/// PUTs an empty object for every index in `todo` (an index twice makes two versions).
async fn create(client: &Client, bucket: &str, prefix: &str, todo: Vec<u64>, concurrency: usize) -> Created {
    let todo = Arc::new(todo);
    let next = Arc::new(AtomicUsize::new(0));
    let done = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let first_error = Arc::new(Mutex::new(None::<String>));
    let start = Instant::now();
    let workers: Vec<_> = (0..concurrency)
        .map(|_| {
            let (client, bucket, prefix) = (client.clone(), bucket.to_owned(), prefix.to_owned());
            let (todo, next, done, errors, first_error) =
                (todo.clone(), next.clone(), done.clone(), errors.clone(), first_error.clone());
            tokio::spawn(async move {
                while errors.load(Ordering::Relaxed) < CREATE_ERRORS_MAX {
                    let Some(&index) = todo.get(next.fetch_add(1, Ordering::Relaxed)) else { break };
                    let key = key_of(&prefix, index);
                    let put =
                        client.put_object().bucket(&bucket).key(&key).body(ByteStream::from_static(b"")).send().await;
                    match put {
                        Ok(_) => {
                            let count = done.fetch_add(1, Ordering::Relaxed) + 1;
                            let tenth = (todo.len() as u64 / 10).max(1);
                            if count.is_multiple_of(tenth) {
                                eprintln!("  ... {count} of {}", todo.len());
                            }
                        }
                        Err(e) => {
                            errors.fetch_add(1, Ordering::Relaxed);
                            if let Ok(mut first) = first_error.lock() {
                                first.get_or_insert(format!("PUT {key}: {}", DisplayErrorContext(&e)));
                            }
                        }
                    }
                }
            })
        })
        .collect();
    for worker in workers {
        let _ = worker.await;
    }
    Created {
        created: done.load(Ordering::Relaxed),
        seconds: start.elapsed().as_secs_f64(),
        errors: errors.load(Ordering::Relaxed),
        first_error: first_error.lock().ok().and_then(|first| first.clone()),
    }
}

/// Pages through everything under `prefix`, one request in flight.
async fn list_all(client: &Client, bucket: &str, prefix: &str, api: Api) -> (ListingPass, Vec<Entry>) {
    let mut latencies_us = Vec::new();
    let mut entries = Vec::new();
    let mut error = None;
    let mut marker: Option<(String, Option<String>)> = None;
    let start = Instant::now();
    loop {
        let page_start = Instant::now();
        let page = match api {
            Api::Objects => {
                objects_page(client, bucket, prefix, marker.as_ref().map(|(token, _)| token.as_str())).await
            }
            Api::Versions => versions_page(client, bucket, prefix, marker.as_ref()).await,
        };
        latencies_us.push(u64::try_from(page_start.elapsed().as_micros()).unwrap_or(u64::MAX));
        match page {
            Ok((mut page_entries, next)) => {
                entries.append(&mut page_entries);
                match next {
                    Some(next) if Some(&next) == marker.as_ref() => {
                        error = Some(format!("the server returned the same marker twice: {next:?}"));
                        break;
                    }
                    Some(next) => marker = Some(next),
                    None => break,
                }
            }
            Err(e) => {
                error = Some(e);
                break;
            }
        }
        if latencies_us.len().is_multiple_of(20) {
            eprintln!(
                "  ... {} pages, {} entries, {:.1} s",
                latencies_us.len(),
                entries.len(),
                start.elapsed().as_secs_f64()
            );
        }
    }
    let seconds = start.elapsed().as_secs_f64().max(f64::MIN_POSITIVE);
    let to_ms = |us: &u64| *us as f64 / 1000.0;
    let first_page_ms = latencies_us.first().map(to_ms);
    let last_page_ms = latencies_us.last().map(to_ms);
    let pages = latencies_us.len() as u64;
    latencies_us.sort_unstable();
    let pass = ListingPass {
        api: api.name(),
        bucket: bucket.to_owned(),
        prefix: prefix.to_owned(),
        pages,
        entries: entries.len() as u64,
        seconds,
        pages_per_s: pages as f64 / seconds,
        entries_per_s: entries.len() as f64 / seconds,
        page_p50_ms: percentile(&latencies_us, 0.50).map(|us| to_ms(&us)),
        page_p99_ms: percentile(&latencies_us, 0.99).map(|us| to_ms(&us)),
        page_max_ms: latencies_us.last().map(to_ms),
        first_page_ms,
        last_page_ms,
        error,
    };
    (pass, entries)
}

/// One ListObjectsV2 page: its keys and the next continuation token.
async fn objects_page(
    client: &Client,
    bucket: &str,
    prefix: &str,
    token: Option<&str>,
) -> Result<(Vec<Entry>, Option<(String, Option<String>)>), String> {
    let output = client
        .list_objects_v2()
        .bucket(bucket)
        .prefix(prefix)
        .max_keys(PAGE_KEYS)
        .set_continuation_token(token.map(str::to_owned))
        .send()
        .await
        .map_err(|e| format!("ListObjectsV2: {}", DisplayErrorContext(&e)))?;
    let entries =
        output.contents().iter().filter_map(|object| object.key().map(|key| (key.to_owned(), None))).collect();
    let next = match (output.is_truncated(), output.next_continuation_token()) {
        (Some(true), Some(token)) => Some((token.to_owned(), None)),
        (Some(true), None) => return Err("ListObjectsV2: truncated without a continuation token".to_owned()),
        _ => None,
    };
    Ok((entries, next))
}

/// One ListObjectVersions page: its versions and the next (key, version id) markers.
async fn versions_page(
    client: &Client,
    bucket: &str,
    prefix: &str,
    marker: Option<&(String, Option<String>)>,
) -> Result<(Vec<Entry>, Option<(String, Option<String>)>), String> {
    let output = client
        .list_object_versions()
        .bucket(bucket)
        .prefix(prefix)
        .max_keys(PAGE_KEYS)
        .set_key_marker(marker.map(|(key, _)| key.clone()))
        .set_version_id_marker(marker.and_then(|(_, version)| version.clone()))
        .send()
        .await
        .map_err(|e| format!("ListObjectVersions: {}", DisplayErrorContext(&e)))?;
    let entries = output
        .versions()
        .iter()
        .filter_map(|version| Some((version.key()?.to_owned(), version.version_id().map(str::to_owned))))
        .collect();
    let next = match (output.is_truncated(), output.next_key_marker()) {
        (Some(true), Some(key)) => Some((key.to_owned(), output.next_version_id_marker().map(str::to_owned))),
        (Some(true), None) => return Err("ListObjectVersions: truncated without a next key marker".to_owned()),
        _ => None,
    };
    Ok((entries, next))
}

async fn delimiter_probe(client: &Client, bucket: &str, prefix: &str) -> DelimiterProbe {
    let mut latencies_us = Vec::new();
    let mut probe = DelimiterProbe {
        prefix: prefix.to_owned(),
        common_prefixes: 0,
        keys: 0,
        p50_ms: None,
        max_ms: None,
        error: None,
    };
    for _ in 0..PROBE_REPEATS {
        let start = Instant::now();
        let sent =
            client.list_objects_v2().bucket(bucket).prefix(prefix).delimiter("/").max_keys(PAGE_KEYS).send().await;
        match sent {
            Ok(output) => {
                latencies_us.push(u64::try_from(start.elapsed().as_micros()).unwrap_or(u64::MAX));
                probe.common_prefixes = output.common_prefixes().len() as u64;
                probe.keys = output.contents().len() as u64;
            }
            Err(e) => {
                probe.error = Some(format!("ListObjectsV2: {}", DisplayErrorContext(&e)));
                break;
            }
        }
    }
    latencies_us.sort_unstable();
    probe.p50_ms = percentile(&latencies_us, 0.50).map(|us| us as f64 / 1000.0);
    probe.max_ms = latencies_us.last().map(|us| *us as f64 / 1000.0);
    probe
}

async fn enable_versioning(client: &Client, bucket: &str) -> Result<(), String> {
    client
        .put_bucket_versioning()
        .bucket(bucket)
        .versioning_configuration(VersioningConfiguration::builder().status(BucketVersioningStatus::Enabled).build())
        .send()
        .await
        .map(|_| ())
        .map_err(|e| format!("enable versioning on {bucket}: {}", DisplayErrorContext(&e)))
}

/// Deletes `entries` (versions by id) and then the bucket; failures are printed, not fatal.
async fn cleanup(client: &Client, bucket: &str, entries: &[Entry]) {
    let start = Instant::now();
    for batch in entries.chunks(DELETE_BATCH_MAX) {
        let objects: Result<Vec<_>, _> = batch
            .iter()
            .map(|(key, version)| ObjectIdentifier::builder().key(key).set_version_id(version.clone()).build())
            .collect();
        let delete = objects.and_then(|objects| Delete::builder().set_objects(Some(objects)).quiet(true).build());
        let outcome = match delete {
            Ok(delete) => client
                .delete_objects()
                .bucket(bucket)
                .delete(delete)
                .send()
                .await
                .map_err(|e| DisplayErrorContext(&e).to_string()),
            Err(e) => Err(e.to_string()),
        };
        if let Err(e) = outcome {
            eprintln!("listing cleanup: DeleteObjects in {bucket}: {e}");
            return;
        }
    }
    if let Err(e) = client.delete_bucket().bucket(bucket).send().await {
        eprintln!("listing cleanup: bucket {bucket} not deleted: {}", DisplayErrorContext(&e));
    }
    eprintln!(
        "listing cleanup: {} entries of {bucket} deleted in {:.1} s",
        entries.len(),
        start.elapsed().as_secs_f64()
    );
}

pub fn render(report: &ListingReport, out: &mut String) {
    use std::fmt::Write as _;
    let _ = writeln!(
        out,
        "\nlisting ({} keys requested; pages of max-keys {PAGE_KEYS}, one request in flight):",
        report.keys_requested
    );
    for population in [&report.objects, &report.versions] {
        let created = if population.created == 0 {
            "reused, nothing created".to_owned()
        } else {
            format!(
                "created {} in {:.1} s ({} PUT/s){}",
                population.created,
                population.create_seconds,
                population.create_per_s.map_or_else(|| "-".to_owned(), |rate| format!("{rate:.0}")),
                if population.create_errors > 0 {
                    format!(
                        ", {} failed, first: {}",
                        population.create_errors,
                        population.create_first_error.as_deref().unwrap_or("?")
                    )
                } else {
                    String::new()
                }
            )
        };
        let _ = writeln!(
            out,
            "  {}/{}: {} keys × {} versions; {} found before; {created}",
            population.bucket, population.prefix, population.keys, population.versions_per_key, population.found_before
        );
    }
    let _ = writeln!(
        out,
        "  api                   pages  entries  seconds  pages/s  entries/s  p50 ms  p99 ms  max ms  first ms  last ms"
    );
    for pass in &report.passes {
        let _ = writeln!(
            out,
            "  {:<19} {:>7} {:>8} {:>8.2} {:>8.1} {:>10.0} {:>7} {:>7} {:>7} {:>9} {:>8}",
            pass.api,
            pass.pages,
            pass.entries,
            pass.seconds,
            pass.pages_per_s,
            pass.entries_per_s,
            crate::report::ms(pass.page_p50_ms),
            crate::report::ms(pass.page_p99_ms),
            crate::report::ms(pass.page_max_ms),
            crate::report::ms(pass.first_page_ms),
            crate::report::ms(pass.last_page_ms),
        );
        if let Some(error) = &pass.error {
            let _ = writeln!(out, "    stopped: {error}");
        }
    }
    let _ = writeln!(out, "  delimiter '/' probes (one page each, {PROBE_REPEATS} times):");
    for probe in &report.delimiter_probes {
        let _ = writeln!(
            out,
            "    {:<32} {:>5} prefixes {:>5} keys   p50 {:>8} ms  max {:>8} ms{}",
            probe.prefix,
            probe.common_prefixes,
            probe.keys,
            crate::report::ms(probe.p50_ms),
            crate::report::ms(probe.max_ms),
            probe.error.as_deref().map_or_else(String::new, |e| format!("  error: {e}"))
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_spread_over_three_levels_and_parse_back() {
        assert_eq!(key_of("p/", 0), "p/a000/b00/k00000000");
        assert_eq!(key_of("p/", 12_345), "p/a001/b23/k00012345");
        assert_eq!(index_of("p/", "p/a001/b23/k00012345"), Some(12_345));
        assert_eq!(index_of("p/", "p/a000/b23/k00012345"), None);
        assert_eq!(index_of("p/", "q/a001/b23/k00012345"), None);
        let keys: Vec<String> = (0..30_000).step_by(7).map(|index| key_of("p/", index)).collect();
        assert!(keys.is_sorted(), "index order is key order, so pages follow creation order");
    }
}
