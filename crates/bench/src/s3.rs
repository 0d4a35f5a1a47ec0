//! The S3 side: one client, the benchmark bucket, and cells of timed PUTs or GETs.
//!
//! A cell runs `concurrency` workers that claim operation numbers from one counter until
//! the cell's bound is reached (a count, a byte budget, or a deadline; requests in flight
//! at the deadline finish and count). Throughput is successful bytes over the cell's wall
//! time; latency is per request, from send to the last byte of the response. Requests are
//! not retried, so every failure is counted and the first one is shown.
//!
//! TLS: for an `https://` endpoint with `--ca-cert`, the client's HTTP client is the SDK's
//! own hyper + rustls (aws-lc-rs) client, built with a trust store that holds only that
//! certificate; it offers HTTP/2 and HTTP/1.1 by ALPN (Bulwark picks HTTP/1.1, as Amazon
//! S3 does). Without `--ca-cert` the SDK's default client and the system's roots are used.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_runtime::auth::PayloadSigningOverride;
use aws_sdk_s3::Client;
use aws_sdk_s3::config::SharedHttpClient;
use aws_sdk_s3::config::interceptors::BeforeTransmitInterceptorContextMut;
use aws_sdk_s3::config::retry::RetryConfig;
use aws_sdk_s3::config::timeout::TimeoutConfig;
use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region, RequestChecksumCalculation};
use aws_sdk_s3::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_sdk_s3::error::{BoxError, DisplayErrorContext};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{ChecksumAlgorithm, Delete, ObjectIdentifier};
use aws_smithy_http_client::tls::{self, TlsContext, TrustStore};
use base64::Engine as _;
use bytes::Bytes;
use md5::Digest as _;
use rand::RngCore as _;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject as _;
use serde::Serialize;

use crate::payload::matches_repeated;
use crate::procfs::{RssSampler, cpu_seconds};
use crate::stats::Summary;

/// A cell gives up after this many failed requests: the server is not well.
pub const ERRORS_PER_CELL_MAX: u64 = 20;
/// Objects per DeleteObjects request (the S3 limit).
const DELETE_BATCH_MAX: usize = 1000;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Long enough for a 1 GiB PUT on a slow disk among fifteen others.
const OPERATION_TIMEOUT: Duration = Duration::from_secs(900);

#[derive(Debug, Clone)]
pub struct ClientSettings {
    pub endpoint: String,
    pub region: String,
    pub access_key: String,
    pub secret_key: String,
    /// Send a CRC32 with every upload (`WhenSupported`), or only what a request names.
    pub checksum: bool,
    /// PEM certificates to trust instead of the system's roots (https:// only).
    pub ca_cert_pem: Option<Vec<u8>>,
}

/// A path-style client with no retries (a failure must show, not be hidden by a retry).
pub fn client(settings: &ClientSettings) -> Result<Client, String> {
    let credentials = Credentials::new(&settings.access_key, &settings.secret_key, None, None, "bulwark-bench");
    let checksums = if settings.checksum {
        RequestChecksumCalculation::WhenSupported
    } else {
        RequestChecksumCalculation::WhenRequired
    };
    let mut config = aws_sdk_s3::Config::builder();
    if let Some(pem) = &settings.ca_cert_pem {
        config = config.http_client(tls_http_client(pem)?);
    }
    let config = config
        .behavior_version(BehaviorVersion::latest())
        .credentials_provider(credentials)
        .region(Region::new(settings.region.clone()))
        .endpoint_url(&settings.endpoint)
        .force_path_style(true)
        .retry_config(RetryConfig::disabled())
        .request_checksum_calculation(checksums)
        .timeout_config(
            TimeoutConfig::builder().connect_timeout(CONNECT_TIMEOUT).operation_timeout(OPERATION_TIMEOUT).build(),
        )
        .build();
    Ok(Client::from_conf(config))
}

/// The SDK's hyper + rustls client trusting only the certificates in `pem`.
pub fn tls_http_client(pem: &[u8]) -> Result<SharedHttpClient, String> {
    // The SDK parses the PEM only when it first connects, and panics on a bad one: check it
    // here, where a mistake can still be reported.
    let certificates = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("--ca-cert: not a PEM certificate file: {e}"))?;
    if certificates.is_empty() {
        return Err("--ca-cert: the file holds no certificate".to_owned());
    }
    let mut roots = rustls::RootCertStore::empty();
    for certificate in certificates {
        roots.add(certificate).map_err(|e| format!("--ca-cert: unusable certificate: {e}"))?;
    }
    let context = TlsContext::builder()
        .with_trust_store(TrustStore::empty().with_pem_certificate(pem.to_vec()))
        .build()
        .map_err(|e| format!("--ca-cert: {e}"))?;
    Ok(aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(tls::rustls_provider::CryptoMode::AwsLc))
        .tls_context(context)
        .build_https())
}

/// An SSE-C key for the benchmark's objects: random per run, sent base64 with its MD5.
#[derive(Clone)]
pub struct CustomerKey {
    key_base64: String,
    key_md5_base64: String,
}

impl CustomerKey {
    pub fn random() -> CustomerKey {
        let mut key = [0u8; 32];
        rand::rng().fill_bytes(&mut key);
        let base64 = base64::engine::general_purpose::STANDARD;
        CustomerKey { key_base64: base64.encode(key), key_md5_base64: base64.encode(md5::Md5::digest(key)) }
    }
}

impl std::fmt::Debug for CustomerKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CustomerKey([redacted])")
    }
}

/// SSE-S3 (`AES256`) or SSE-KMS (`aws:kms` with a key) on every PUT.
#[derive(Debug, Clone)]
pub struct ServerSide {
    pub algorithm: &'static str,
    pub kms_key_id: Option<String>,
}

/// What every request of a cell adds besides the body.
#[derive(Debug, Clone, Default)]
pub struct RequestOptions {
    /// A flexible checksum the client computes and sends with every PUT.
    pub checksum: Option<ChecksumAlgorithm>,
    /// SSE-C: PUTs encrypt and GETs decrypt under this key.
    pub customer_key: Option<CustomerKey>,
    /// SSE-S3/SSE-KMS: PUTs ask for it (GETs need nothing).
    pub server_side: Option<ServerSide>,
    /// PUT bodies as streams rather than in-memory bytes: the SDK then sends them
    /// aws-chunked, a checksum as a trailer instead of a header.
    pub streamed: bool,
}

/// How PUT cells sign their bodies (SigV4's `x-amz-content-sha256`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PayloadSigning {
    /// The body's SHA-256, hashed once per cell: every PUT of a cell sends the same
    /// bytes, so the client need not hash them again for each request, and the CPU
    /// it shares with the server goes to the server. The server still hashes and
    /// checks every body it receives.
    OncePerPayload,
    /// The body's SHA-256, hashed by the SDK for every request, as an application
    /// does; on a shared machine the client's hashing then takes the server's CPU.
    EveryBody,
    /// `UNSIGNED-PAYLOAD`, as the AWS CLI and the SDKs send over https.
    Unsigned,
}

impl PayloadSigning {
    pub fn describe(self) -> &'static str {
        match self {
            PayloadSigning::OncePerPayload => {
                "SigV4 with the body's SHA-256 (hashed once per cell: every PUT sends the same bytes; the server \
                 hashes and checks every body)"
            }
            PayloadSigning::EveryBody => "SigV4 with SHA-256 of every body, hashed by the SDK for each PUT",
            PayloadSigning::Unsigned => "UNSIGNED-PAYLOAD",
        }
    }
}

/// Gives the signer the body's SHA-256 computed beforehand, so the SDK does not
/// hash the body itself (`x-amz-content-sha256` is the same either way).
#[derive(Debug)]
struct PrecomputedPayloadHash(String);

impl Intercept for PrecomputedPayloadHash {
    fn name(&self) -> &'static str {
        "PrecomputedPayloadHash"
    }

    fn modify_before_signing(
        &self,
        _context: &mut BeforeTransmitInterceptorContextMut<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        cfg.interceptor_state().store_put(PayloadSigningOverride::Precomputed(self.0.clone()));
        Ok(())
    }
}

/// Makes sure `bucket` exists; returns whether this call created it.
pub async fn ensure_bucket(client: &Client, bucket: &str) -> Result<bool, String> {
    if client.head_bucket().bucket(bucket).send().await.is_ok() {
        return Ok(false);
    }
    client
        .create_bucket()
        .bucket(bucket)
        .send()
        .await
        .map(|_| true)
        .map_err(|e| format!("create bucket {bucket}: {}", DisplayErrorContext(&e)))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Op {
    #[serde(rename = "PUT")]
    Put,
    #[serde(rename = "GET")]
    Get,
}

impl Op {
    pub fn name(self) -> &'static str {
        match self {
            Op::Put => "PUT",
            Op::Get => "GET",
        }
    }
}

/// When a cell stops.
#[derive(Debug, Clone, Copy)]
pub struct Bounds {
    pub duration: Duration,
    pub bytes_max: u64,
    /// Exactly this many operations, ignoring `duration` and `bytes_max`.
    pub count: Option<u64>,
}

impl Bounds {
    /// Operations a cell may start: the count, or the byte budget but at least one per worker.
    fn operations_max(&self, size_bytes: u64, concurrency: usize) -> u64 {
        self.count.unwrap_or_else(|| (self.bytes_max / size_bytes).max(concurrency as u64))
    }

    fn deadline(&self, start: Instant) -> Option<Instant> {
        match self.count {
            Some(_) => None,
            None => Some(start + self.duration),
        }
    }
}

/// The figures of one cell.
#[derive(Debug, Clone, Serialize)]
pub struct Cell {
    pub op: Op,
    pub size_bytes: u64,
    pub concurrency: usize,
    #[serde(flatten)]
    pub summary: Summary,
    pub errors: u64,
    pub first_error: Option<String>,
    /// Peak sampled RSS of the server during the cell (with --server-pid).
    pub server_rss_peak_bytes: Option<u64>,
    /// Server CPU time over wall time: 1.0 is one core busy all along.
    pub server_cpu_cores: Option<f64>,
    pub client_cpu_cores: Option<f64>,
    /// Whether the page cache was dropped just before the cell (GET with --drop-caches).
    pub page_cache_dropped: bool,
}

/// What a cell needs to know besides its shape. Modes clone it with another client,
/// prefix or options for each variant they compare.
#[derive(Clone)]
pub struct Runner {
    pub client: Client,
    pub bucket: String,
    /// Key prefix unique to this run (and variant).
    pub prefix: String,
    pub signing: PayloadSigning,
    pub options: RequestOptions,
    pub sampler: Option<Arc<RssSampler>>,
}

struct Shared {
    next: AtomicU64,
    operations_max: u64,
    deadline: Option<Instant>,
    errors: AtomicU64,
    first_error: Mutex<Option<String>>,
}

impl Shared {
    /// The next operation number, or `None` once the cell is over.
    fn claim(&self) -> Option<u64> {
        if self.deadline.is_some_and(|deadline| Instant::now() >= deadline)
            || self.errors.load(Ordering::Relaxed) >= ERRORS_PER_CELL_MAX
        {
            return None;
        }
        let number = self.next.fetch_add(1, Ordering::Relaxed);
        (number < self.operations_max).then_some(number)
    }

    fn fail(&self, error: String) {
        self.errors.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut first) = self.first_error.lock() {
            first.get_or_insert(error);
        }
    }
}

/// Latencies and (for PUT) keys written by one worker.
struct WorkerResult {
    latencies_us: Vec<u64>,
    keys: Vec<String>,
}

impl Runner {
    /// Runs one cell. PUT writes fresh keys and returns them; GET reads `keys` round-robin
    /// and checks every byte against `payload`.
    pub async fn run_cell(
        &self,
        op: Op,
        payload: &Bytes,
        concurrency: usize,
        bounds: Bounds,
        keys: &Arc<Vec<String>>,
        page_cache_dropped: bool,
    ) -> (Cell, Vec<String>) {
        assert!(concurrency > 0, "a cell needs at least one worker");
        assert!(op == Op::Put || !keys.is_empty(), "GET needs objects to read");
        if op == Op::Put {
            let _ = tokio::task::spawn_blocking(crate::disk::settle).await;
        }
        let size_bytes = payload.len() as u64;
        let server_pid = self.sampler.as_deref().map(RssSampler::pid);
        if let Some(sampler) = &self.sampler {
            sampler.take_peak_bytes();
        }
        // Hashed before the clock starts: every PUT of the cell sends these same bytes.
        let payload_sha256 =
            (op == Op::Put && self.signing == PayloadSigning::OncePerPayload && !self.options.streamed)
                .then(|| hex::encode(sha2::Sha256::digest(payload)));
        let server_cpu_start = server_pid.and_then(|pid| cpu_seconds(&pid.to_string()).ok());
        let client_cpu_start = cpu_seconds("self").ok();
        let start = Instant::now();
        let shared = Arc::new(Shared {
            next: AtomicU64::new(0),
            operations_max: bounds.operations_max(size_bytes, concurrency),
            deadline: bounds.deadline(start),
            errors: AtomicU64::new(0),
            first_error: Mutex::new(None),
        });
        let workers: Vec<_> = (0..concurrency)
            .map(|_| {
                let worker = Worker {
                    client: self.client.clone(),
                    bucket: self.bucket.clone(),
                    signing: self.signing,
                    payload_sha256: payload_sha256.clone(),
                    options: self.options.clone(),
                    payload: payload.clone(),
                    keys: Arc::clone(keys),
                    key_prefix: format!("{}/{size_bytes}/c{concurrency}", self.prefix),
                    shared: Arc::clone(&shared),
                };
                tokio::spawn(worker.run(op))
            })
            .collect();
        let mut latencies_us = Vec::new();
        let mut written = Vec::new();
        for worker in workers {
            match worker.await {
                Ok(result) => {
                    latencies_us.extend(result.latencies_us);
                    written.extend(result.keys);
                }
                Err(e) => shared.fail(format!("worker task failed: {e}")),
            }
        }
        let elapsed = start.elapsed();
        let per_second = |start: Option<f64>, pid: &str| {
            let end = cpu_seconds(pid).ok()?;
            Some((end - start?) / elapsed.as_secs_f64())
        };
        let cell = Cell {
            op,
            size_bytes,
            concurrency,
            summary: Summary::new(latencies_us, size_bytes, elapsed),
            errors: shared.errors.load(Ordering::Relaxed),
            first_error: shared.first_error.lock().ok().and_then(|first| first.clone()),
            server_rss_peak_bytes: self.sampler.as_deref().map(RssSampler::take_peak_bytes),
            server_cpu_cores: server_pid.and_then(|pid| per_second(server_cpu_start, &pid.to_string())),
            client_cpu_cores: per_second(client_cpu_start, "self"),
            page_cache_dropped,
        };
        (cell, written)
    }

    /// Deletes `keys`, a thousand per request; returns how many could not be deleted and
    /// the first reason.
    pub async fn delete(&self, keys: &[String]) -> (usize, Option<String>) {
        let mut failed = 0;
        let mut first_error = None;
        for batch in keys.chunks(DELETE_BATCH_MAX) {
            if let Err(e) = self.delete_batch(batch).await {
                failed += batch.len();
                first_error.get_or_insert(e);
            }
        }
        (failed, first_error)
    }

    async fn delete_batch(&self, batch: &[String]) -> Result<(), String> {
        let objects = batch
            .iter()
            .map(|key| ObjectIdentifier::builder().key(key).build())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| format!("build DeleteObjects: {e}"))?;
        let delete = Delete::builder()
            .set_objects(Some(objects))
            .quiet(true)
            .build()
            .map_err(|e| format!("build DeleteObjects: {e}"))?;
        let output = self
            .client
            .delete_objects()
            .bucket(&self.bucket)
            .delete(delete)
            .send()
            .await
            .map_err(|e| format!("DeleteObjects: {}", DisplayErrorContext(&e)))?;
        match output.errors().first() {
            None => Ok(()),
            Some(error) => Err(format!(
                "DeleteObjects: {} errors, first {:?}: {:?}",
                output.errors().len(),
                error.key(),
                error.message()
            )),
        }
    }
}

struct Worker {
    client: Client,
    bucket: String,
    signing: PayloadSigning,
    /// The payload's SHA-256 (lowercase hex), given to the signer instead of
    /// letting the SDK hash every body (`PayloadSigning::OncePerPayload`).
    payload_sha256: Option<String>,
    options: RequestOptions,
    payload: Bytes,
    keys: Arc<Vec<String>>,
    /// PUT keys are `<key_prefix>/<operation number>`.
    key_prefix: String,
    shared: Arc<Shared>,
}

impl Worker {
    async fn run(self, op: Op) -> WorkerResult {
        let mut result = WorkerResult { latencies_us: Vec::new(), keys: Vec::new() };
        while let Some(number) = self.shared.claim() {
            let key = match op {
                Op::Put => format!("{}/{number:08}", self.key_prefix),
                Op::Get => self.keys[(number % self.keys.len() as u64) as usize].clone(),
            };
            let start = Instant::now();
            let outcome = match op {
                Op::Put => self.put(&key).await,
                Op::Get => self.get(&key).await,
            };
            match outcome {
                Ok(()) => {
                    let latency_us = u64::try_from(start.elapsed().as_micros()).unwrap_or(u64::MAX);
                    result.latencies_us.push(latency_us);
                    if op == Op::Put {
                        result.keys.push(key);
                    }
                }
                Err(e) => self.shared.fail(format!("{} {key}: {e}", op.name())),
            }
        }
        result
    }

    async fn put(&self, key: &str) -> Result<(), String> {
        let mut request = self
            .client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .body(if self.options.streamed {
                crate::payload::sliced_stream(&self.payload)
            } else {
                ByteStream::from(self.payload.clone())
            })
            .set_checksum_algorithm(self.options.checksum.clone());
        if let Some(customer) = &self.options.customer_key {
            request = request
                .sse_customer_algorithm("AES256")
                .sse_customer_key(&customer.key_base64)
                .sse_customer_key_md5(&customer.key_md5_base64);
        }
        if let Some(server_side) = &self.options.server_side {
            request = request
                .server_side_encryption(aws_sdk_s3::types::ServerSideEncryption::from(server_side.algorithm))
                .set_ssekms_key_id(server_side.kms_key_id.clone());
        }
        let sent = match (self.signing, &self.payload_sha256) {
            (PayloadSigning::Unsigned, _) => request.customize().disable_payload_signing().send().await,
            (_, Some(sha256)) => request.customize().interceptor(PrecomputedPayloadHash(sha256.clone())).send().await,
            (_, None) => request.send().await,
        };
        sent.map(|_| ()).map_err(|e| DisplayErrorContext(&e).to_string())
    }

    async fn get(&self, key: &str) -> Result<(), String> {
        let mut request = self.client.get_object().bucket(&self.bucket).key(key);
        if let Some(customer) = &self.options.customer_key {
            request = request
                .sse_customer_algorithm("AES256")
                .sse_customer_key(&customer.key_base64)
                .sse_customer_key_md5(&customer.key_md5_base64);
        }
        let output = request.send().await.map_err(|e| DisplayErrorContext(&e).to_string())?;
        // A body that comes with a full-object checksum is checked byte for
        // byte by the SDK as it is read (its default response validation; a
        // mismatch fails the read). Comparing every byte here as well would
        // only take CPU from the server on a machine they share, so then the
        // first chunk and the length are compared; without one, every byte.
        let checked_by_sdk = [
            output.checksum_crc32(),
            output.checksum_crc32_c(),
            output.checksum_crc64_nvme(),
            output.checksum_sha1(),
            output.checksum_sha256(),
        ]
        .into_iter()
        .any(|checksum| checksum.is_some_and(|value| !value.contains('-')));
        let mut body = output.body;
        let mut offset: u64 = 0;
        while let Some(chunk) = body.try_next().await.map_err(|e| format!("reading the body: {e}"))? {
            if offset + chunk.len() as u64 > self.payload.len() as u64
                || ((offset == 0 || !checked_by_sdk) && !matches_repeated(&self.payload, offset, &chunk))
            {
                return Err(format!("content differs from what was written, within bytes {offset}.."));
            }
            offset += chunk.len() as u64;
        }
        if offset != self.payload.len() as u64 {
            return Err(format!("body has {offset} bytes, expected {}", self.payload.len()));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    /// Answers one request on `listener` with an empty 200 and returns its
    /// `x-amz-content-sha256` header.
    async fn content_sha256_of_one_request(listener: tokio::net::TcpListener) -> String {
        let (mut socket, _) = listener.accept().await.expect("accept");
        let mut request = Vec::new();
        let mut buffer = [0u8; 8192];
        let head_end = loop {
            let read = socket.read(&mut buffer).await.expect("read the request");
            assert!(read > 0, "the client closed before sending its headers");
            request.extend_from_slice(&buffer[..read]);
            if let Some(at) = request.windows(4).position(|window| window == b"\r\n\r\n") {
                break at + 4;
            }
        };
        let head = String::from_utf8_lossy(&request[..head_end]).to_ascii_lowercase();
        let header =
            |name: &str| head.lines().find_map(|line| line.strip_prefix(name).map(|value| value.trim().to_owned()));
        let length: usize = header("content-length:").and_then(|value| value.parse().ok()).unwrap_or(0);
        while request.len() < head_end + length {
            let read = socket.read(&mut buffer).await.expect("read the body");
            assert!(read > 0, "the client closed before sending its body");
            request.extend_from_slice(&buffer[..read]);
        }
        socket.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n").await.expect("answer");
        header("x-amz-content-sha256:").expect("a signed request names its payload hash")
    }

    async fn sent_payload_hash(signing: PayloadSigning, payload_sha256: Option<String>, payload: &Bytes) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let endpoint = format!("http://{}", listener.local_addr().expect("address"));
        let server = tokio::spawn(content_sha256_of_one_request(listener));
        let client = client(&ClientSettings {
            endpoint,
            region: "us-east-1".to_owned(),
            access_key: "bench".to_owned(),
            secret_key: "benchbenchbench".to_owned(),
            checksum: true,
            ca_cert_pem: None,
        })
        .expect("a client");
        let worker = Worker {
            client,
            bucket: "bucket".to_owned(),
            signing,
            payload_sha256,
            options: RequestOptions::default(),
            payload: payload.clone(),
            keys: Arc::new(Vec::new()),
            key_prefix: "prefix".to_owned(),
            shared: Arc::new(Shared {
                next: AtomicU64::new(0),
                operations_max: 1,
                deadline: None,
                errors: AtomicU64::new(0),
                first_error: Mutex::new(None),
            }),
        };
        worker.put("key").await.expect("the PUT is answered 200");
        server.await.expect("the listener task")
    }

    #[tokio::test]
    async fn a_hash_computed_once_is_what_the_request_is_signed_with() {
        let payload = Bytes::from(vec![7u8; 4096]);
        let real = hex::encode(sha2::Sha256::digest(&payload));
        // A hash that is not the body's: the SDK must send it as given, not its own.
        let given = hex::encode(sha2::Sha256::digest(b"not the body"));
        assert_eq!(sent_payload_hash(PayloadSigning::OncePerPayload, Some(given.clone()), &payload).await, given);
        assert_eq!(sent_payload_hash(PayloadSigning::EveryBody, None, &payload).await, real);
        assert_eq!(sent_payload_hash(PayloadSigning::Unsigned, None, &payload).await, "unsigned-payload");
    }
}
