//! Black-box test harness: the real `bulwark` binary, driven by real S3 clients.
//!
//! Contract: a [`TestServer`] owns one `bulwark server` process, its own temporary
//! data directory and its own loopback port, so tests may run in parallel. It is
//! ready (answers `ListBuckets`) when [`TestServer::start`] returns, and it is killed
//! (SIGKILL) and its directory removed when the value is dropped. If the test
//! panicked, the tail of the server's log is printed first, so a failure shows what
//! the server said. Set `BULWARK_E2E_KEEP=1` to keep the data directory for a look.
//!
//! The harness knows the default on-disk layout only as far as the fault tests need
//! it: six drives in three facilities ([`TestServer::drive_path`]), and shard files of
//! objects larger than the inline threshold under `<drive>/data/<bucket>/` (see
//! [`shard_files`]). Everything else is observed through the S3 API.
//!
//! [`TestServer::start_tls`] starts one that serves HTTPS only, with a self-signed
//! certificate made by `bulwark cert self-signed` in its directory; its endpoint is
//! `https://localhost:PORT` and its clients trust that certificate and nothing else
//! (see [`tls`]).
//!
//! The binary is found next to the test executable (`<target>/debug/bulwark`) unless
//! `BULWARK_BIN` names another one; `cargo test --workspace` builds it.
#![forbid(unsafe_code)]

use std::fs;
use std::io::Write;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use aws_sdk_s3::Client;
use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::config::interceptors::BeforeDeserializationInterceptorContextRef;
use aws_sdk_s3::config::retry::RetryConfig;
use aws_sdk_s3::config::timeout::TimeoutConfig;
use aws_sdk_s3::config::{
    BehaviorVersion, ConfigBag, Credentials, Intercept, Region, RequestChecksumCalculation, RuntimeComponents,
};
use aws_sdk_s3::error::{BoxError, DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::ByteStream;
use md5::{Digest, Md5};
use rand::{RngCore, SeedableRng};

pub mod aws_cli;
pub mod cse;
pub mod iam;
pub mod kms;
pub mod raw_http;
pub mod rclone;
pub mod tls;

/// Access key of the root user every test server is started with.
pub const ACCESS_KEY: &str = "bulwarkadmin";
/// Secret key of the root user (40 characters, like an AWS secret key).
pub const SECRET_KEY: &str = "bulwark-e2e-secret-0123456789abcdefghijk";
/// The region the server answers for.
pub const REGION: &str = "us-east-1";
/// Number of drives in the default layout.
pub const DRIVE_COUNT: usize = 6;
/// Objects up to this size are stored inline in the metadata store, not as shards.
pub const INLINE_SIZE_MAX_BYTES: usize = 128 * 1024;
/// Smallest size of a multipart part other than the last.
pub const PART_SIZE_MIN_BYTES: usize = 5 * 1024 * 1024;
/// Response header with the write receipt `D/N` (durable shards / all shards).
pub const REDUNDANCY_HEADER: &str = "x-bulwark-redundancy";

const READY_TIMEOUT: Duration = Duration::from_secs(60);
const READY_POLL_INTERVAL: Duration = Duration::from_millis(50);
const OPERATION_TIMEOUT: Duration = Duration::from_secs(300);
const LOG_TAIL_LINES_MAX: usize = 200;
const START_ATTEMPTS_MAX: usize = 3;

const _: () = assert!(SECRET_KEY.len() == 40);

/// One running `bulwark server` with its own data directory and port.
pub struct TestServer {
    dir: tempfile::TempDir,
    port: u16,
    child: Option<Child>,
    /// Serves HTTPS with the certificate in [`TestServer::tls_dir`].
    tls: bool,
    /// Extra environment variables of every run (test-only knobs).
    env: Vec<(String, String)>,
}

impl TestServer {
    /// Starts a server on a fresh data directory and a free loopback port, and waits
    /// until it answers S3 requests.
    pub async fn start() -> TestServer {
        TestServer::start_with_transport(false).await
    }

    /// Starts a server that serves HTTPS only (HTTP/1.1 and HTTP/2), with a fresh
    /// self-signed certificate for `localhost` and `127.0.0.1` written by
    /// `bulwark cert self-signed` into [`TestServer::tls_dir`].
    pub async fn start_tls() -> TestServer {
        TestServer::start_with_transport(true).await
    }

    /// Starts a server like [`TestServer::start`] whose process (on every run,
    /// restarts included) also gets the environment variables `env`.
    pub async fn start_with_env(env: &[(&str, &str)]) -> TestServer {
        let env = env.iter().map(|(n, v)| ((*n).to_owned(), (*v).to_owned())).collect();
        TestServer::start_configured(false, env).await
    }

    /// [`TestServer::start_tls`] with the environment variables `env`.
    pub async fn start_tls_with_env(env: &[(&str, &str)]) -> TestServer {
        let env = env.iter().map(|(n, v)| ((*n).to_owned(), (*v).to_owned())).collect();
        TestServer::start_configured(true, env).await
    }

    async fn start_with_transport(tls: bool) -> TestServer {
        TestServer::start_configured(tls, Vec::new()).await
    }

    async fn start_configured(tls: bool, env: Vec<(String, String)>) -> TestServer {
        let dir = tempfile::Builder::new()
            .prefix("bulwark-e2e-")
            .tempdir()
            .expect("create a temporary directory for the server");
        fs::create_dir_all(dir.path().join("data")).expect("create the data directory");
        let mut server = TestServer { dir, port: 0, child: None, tls, env };
        if tls {
            server.regenerate_certificate();
        }
        // Another test may grab the port between our probe and the server's bind;
        // a server that exits before it is ready gets another port.
        for attempt in 1..=START_ATTEMPTS_MAX {
            server.port = free_port();
            server.spawn();
            match server.wait_ready().await {
                Ok(()) => return server,
                Err(reason) if attempt < START_ATTEMPTS_MAX && reason.exited => {
                    server.append_log_marker(&format!(
                        "server exited before ready ({}); retrying on another port",
                        reason.message
                    ));
                }
                Err(reason) => server.fail(&reason.message),
            }
        }
        unreachable!("the start loop returns or panics")
    }

    /// Kills the server with SIGKILL (no shutdown, no flush) and waits for it to die.
    pub fn crash(&mut self) {
        if let Some(mut child) = self.child.take() {
            // The process may have exited by itself; either way it is gone after wait().
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same data directory and port, after [`crash`].
    ///
    /// [`crash`]: TestServer::crash
    pub async fn start_again(&mut self) {
        assert!(self.child.is_none(), "start_again while the server runs");
        self.append_log_marker("starting again on the same data directory");
        self.spawn();
        if let Err(reason) = self.wait_ready().await {
            self.fail(&reason.message);
        }
    }

    /// Kills the server (SIGKILL) and starts it again on the same data and port.
    pub async fn restart(&mut self) {
        self.crash();
        self.start_again().await;
    }

    /// `http://127.0.0.1:PORT`, or `https://localhost:PORT` for a TLS server.
    pub fn endpoint(&self) -> String {
        if self.tls { format!("https://{}", self.host()) } else { format!("http://{}", self.host()) }
    }

    /// The `Host` clients send: `127.0.0.1:PORT`, or `localhost:PORT` for a TLS server.
    pub fn host(&self) -> String {
        if self.tls { format!("localhost:{}", self.port) } else { format!("127.0.0.1:{}", self.port) }
    }

    /// Whether the server was started with [`TestServer::start_tls`].
    pub fn is_tls(&self) -> bool {
        self.tls
    }

    /// The directory holding the TLS `cert.pem` and `key.pem` the server was started with.
    pub fn tls_dir(&self) -> PathBuf {
        self.dir.path().join("tls")
    }

    /// The PEM certificate the server was started with (`--tls-cert`).
    pub fn tls_cert_path(&self) -> PathBuf {
        self.tls_dir().join("cert.pem")
    }

    /// The PEM private key the server was started with (`--tls-key`).
    pub fn tls_key_path(&self) -> PathBuf {
        self.tls_dir().join("key.pem")
    }

    /// Overwrites [`TestServer::tls_cert_path`] and [`TestServer::tls_key_path`] with
    /// a new self-signed pair (`bulwark cert self-signed`); a running server keeps
    /// serving the old one until [`TestServer::signal_hangup`].
    pub fn regenerate_certificate(&self) {
        // `*.s3.localhost`: virtual-hosted style over TLS under the domain
        // `s3.localhost` (TLS clients accept no wildcard right under `localhost`).
        write_self_signed_certificate(&self.tls_dir(), &["localhost", "*.s3.localhost", "127.0.0.1"]);
    }

    /// The process id of the running server.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("the server is running").id()
    }

    /// Sends SIGHUP to the server (`kill -HUP PID`): reload the TLS certificate.
    pub fn signal_hangup(&self) {
        let pid = self.pid().to_string();
        let status = Command::new("kill").args(["-HUP", &pid]).status().expect("run kill -HUP");
        assert!(status.success(), "kill -HUP {pid} failed with {status}");
    }

    pub fn address(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// The directory passed as `--data`.
    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// The directory of drive `index` (1..=6): `facility-F/drive-index`.
    pub fn drive_path(&self, index: usize) -> PathBuf {
        assert!((1..=DRIVE_COUNT).contains(&index), "no drive {index}");
        self.data_dir().join(format!("facility-{}", index.div_ceil(2))).join(format!("drive-{index}"))
    }

    /// The drives of facility `facility` (1..=3).
    pub fn facility_drives(&self, facility: usize) -> [PathBuf; 2] {
        assert!((1..=3).contains(&facility), "no facility {facility}");
        [self.drive_path(facility * 2 - 1), self.drive_path(facility * 2)]
    }

    /// A scratch directory beside the data directory, removed with the server.
    pub fn scratch_dir(&self) -> PathBuf {
        let path = self.dir.path().join("scratch");
        fs::create_dir_all(&path).expect("create the scratch directory");
        path
    }

    /// Starts a server and creates `bucket` on it; returns the server and a client.
    pub async fn start_with_bucket(bucket: &str) -> (TestServer, Client) {
        let server = TestServer::start().await;
        let client = server.client();
        create_bucket(&client, bucket).await;
        (server, client)
    }

    /// A client with the root credentials and the SDK's standard retries.
    pub fn client(&self) -> Client {
        self.client_with(ClientOptions::default())
    }

    /// A client that makes exactly one attempt per request, so every failure shows.
    pub fn client_without_retries(&self) -> Client {
        self.client_with(ClientOptions { retries: false, ..ClientOptions::default() })
    }

    /// A client signing with the given credentials.
    pub fn client_with_credentials(&self, access_key: &str, secret_key: &str) -> Client {
        self.client_with(ClientOptions {
            access_key: access_key.to_owned(),
            secret_key: secret_key.to_owned(),
            ..ClientOptions::default()
        })
    }

    /// A client with the SDK's default addressing, virtual-hosted style: it
    /// sends `<bucket>.localhost:PORT` as the host (the server's default
    /// domain), resolving every `*.localhost` name to the loopback address.
    pub fn virtual_hosted_client(&self) -> Client {
        self.virtual_hosted_client_at("localhost")
    }

    /// [`TestServer::virtual_hosted_client`] under `domain`, which must end in
    /// `localhost` (`<bucket>.<domain>` resolves to the loopback address).
    pub fn virtual_hosted_client_at(&self, domain: &str) -> Client {
        use aws_smithy_http_client::tls::{self, TlsContext, TrustStore, rustls_provider::CryptoMode};
        let mut trust = TrustStore::empty().with_native_roots(false);
        if self.tls {
            let pem = fs::read(self.tls_cert_path())
                .unwrap_or_else(|e| panic!("read {}: {e}", self.tls_cert_path().display()));
            trust = trust.with_pem_certificate(pem);
        }
        let http_client = aws_smithy_http_client::Builder::new()
            .tls_provider(tls::Provider::Rustls(CryptoMode::AwsLc))
            .tls_context(TlsContext::builder().with_trust_store(trust).build().expect("a valid TLS context"))
            .build_with_resolver(LoopbackNames);
        let scheme = if self.tls { "https" } else { "http" };
        let config = aws_sdk_s3::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .credentials_provider(Credentials::new(ACCESS_KEY, SECRET_KEY, None, None, "bulwark-e2e"))
            .region(Region::new(REGION))
            .endpoint_url(format!("{scheme}://{domain}:{}", self.port))
            .force_path_style(false)
            .retry_config(RetryConfig::disabled())
            .http_client(http_client)
            .build();
        Client::from_conf(config)
    }

    pub fn client_with(&self, options: ClientOptions) -> Client {
        let credentials = Credentials::new(options.access_key, options.secret_key, None, None, "bulwark-e2e");
        let retry = if options.retries { RetryConfig::standard() } else { RetryConfig::disabled() };
        let checksums = if options.checksums_when_supported {
            RequestChecksumCalculation::WhenSupported
        } else {
            RequestChecksumCalculation::WhenRequired
        };
        let config = aws_sdk_s3::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .credentials_provider(credentials)
            .region(Region::new(REGION))
            .endpoint_url(self.endpoint())
            .force_path_style(true)
            .retry_config(retry)
            .request_checksum_calculation(checksums)
            .timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(Duration::from_secs(5))
                    .operation_timeout(OPERATION_TIMEOUT)
                    .build(),
            );
        let config = if self.tls {
            let pem = fs::read(self.tls_cert_path())
                .unwrap_or_else(|e| panic!("read {}: {e}", self.tls_cert_path().display()));
            config.http_client(tls::sdk_http_client(&pem))
        } else {
            config
        };
        Client::from_conf(config.build())
    }

    /// Everything the server wrote to stderr so far (all runs).
    pub fn log(&self) -> String {
        fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("server.log")
    }

    fn append_log_marker(&self, text: &str) {
        if let Ok(mut file) = fs::OpenOptions::new().create(true).append(true).open(self.log_path()) {
            let _ = writeln!(file, "===== e2e harness: {text} =====");
        }
    }

    fn spawn(&mut self) {
        let binary = bulwark_binary();
        let log =
            fs::OpenOptions::new().create(true).append(true).open(self.log_path()).expect("open the server log file");
        let mut command = Command::new(&binary);
        command
            .arg("server")
            .arg("--data")
            .arg(self.data_dir())
            .arg("--address")
            .arg(format!("127.0.0.1:{}", self.port));
        if self.tls {
            command.arg("--tls-cert").arg(self.tls_cert_path()).arg("--tls-key").arg(self.tls_key_path());
        }
        let child = command
            .env("BULWARK_ROOT_USER", ACCESS_KEY)
            .env("BULWARK_ROOT_PASSWORD", SECRET_KEY)
            .env("RUST_LOG", std::env::var("RUST_LOG").unwrap_or_else(|_| "info".to_owned()))
            .envs(self.env.iter().map(|(n, v)| (n, v)))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("clone the log file handle"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {}: {e}", binary.display()));
        self.child = Some(child);
    }

    async fn wait_ready(&mut self) -> Result<(), NotReady> {
        let deadline = Instant::now() + READY_TIMEOUT;
        let client = self.client_without_retries();
        loop {
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                self.child = None;
                return Err(NotReady {
                    exited: true,
                    message: format!("bulwark server exited during startup with {status}"),
                });
            }
            if tokio::net::TcpStream::connect(self.address()).await.is_ok() {
                match client.list_buckets().send().await {
                    Ok(_) => return Ok(()),
                    Err(e) if Instant::now() >= deadline => {
                        return Err(NotReady {
                            exited: false,
                            message: format!(
                                "ListBuckets still failing after {READY_TIMEOUT:?}: {}",
                                DisplayErrorContext(&e)
                            ),
                        });
                    }
                    Err(_) => {}
                }
            }
            if Instant::now() >= deadline {
                return Err(NotReady {
                    exited: false,
                    message: format!("no TCP listener on {} after {READY_TIMEOUT:?}", self.address()),
                });
            }
            tokio::time::sleep(READY_POLL_INTERVAL).await;
        }
    }

    /// Panics with why the server is not ready; `Drop` then prints its log.
    fn fail(&mut self, message: &str) -> ! {
        self.crash();
        panic!("bulwark server on port {} did not become ready: {message}", self.port);
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.crash();
        if std::thread::panicking() {
            eprintln!(
                "--- bulwark server log (last {LOG_TAIL_LINES_MAX} lines, {}) ---\n{}",
                self.log_path().display(),
                tail(&self.log(), LOG_TAIL_LINES_MAX)
            );
        }
        if std::env::var_os("BULWARK_E2E_KEEP").is_some() {
            let path = self.dir.path().to_path_buf();
            eprintln!("keeping the server directory {}", path.display());
            // Replace the directory guard with one that does not delete on drop.
            let dir = std::mem::replace(
                &mut self.dir,
                tempfile::tempdir().expect("create a placeholder temporary directory"),
            );
            let _kept = dir.keep();
        }
    }
}

struct NotReady {
    exited: bool,
    message: String,
}

/// How to build a client for a [`TestServer`].
#[derive(Debug, Clone)]
pub struct ClientOptions {
    pub access_key: String,
    pub secret_key: String,
    /// SDK standard retries (3 attempts) when true, a single attempt when false.
    pub retries: bool,
    /// The SDK's default (CRC trailers on every upload) when true; only where an
    /// operation requires a checksum when false (needed for clean presigned PUTs).
    pub checksums_when_supported: bool,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            access_key: ACCESS_KEY.to_owned(),
            secret_key: SECRET_KEY.to_owned(),
            retries: true,
            checksums_when_supported: true,
        }
    }
}

/// Path of the `bulwark` binary under test.
pub fn bulwark_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("BULWARK_BIN") {
        return PathBuf::from(path);
    }
    // The test executable is <target>/<profile>/deps/<test>-<hash>.
    let exe = std::env::current_exe().expect("locate the test executable");
    let profile_dir = exe.parent().and_then(Path::parent).expect("test executable lives in <target>/<profile>/deps");
    let binary = profile_dir.join("bulwark");
    assert!(
        binary.is_file(),
        "the bulwark binary is missing at {}: build it with `cargo test --workspace` \
         (or `cargo build -p bulwark-cli`), or point BULWARK_BIN at one",
        binary.display()
    );
    binary
}

/// Runs `bulwark cert self-signed --out DIR --name …`, which writes `DIR/cert.pem`
/// and `DIR/key.pem` (mode 0600); panics with its output if it fails.
pub fn write_self_signed_certificate(dir: &Path, names: &[&str]) {
    let binary = bulwark_binary();
    let mut command = Command::new(&binary);
    command.args(["cert", "self-signed", "--out"]).arg(dir);
    for name in names {
        command.args(["--name", name]);
    }
    let output = command.output().unwrap_or_else(|e| panic!("run {} cert self-signed: {e}", binary.display()));
    assert!(
        output.status.success(),
        "bulwark cert self-signed --out {} failed with {}\n--- stdout ---\n{}\n--- stderr ---\n{}",
        dir.display(),
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Resolves `localhost` and every `*.localhost` name to 127.0.0.1 (as
/// systemd-resolved and browsers do; glibc with `hosts: files dns` does not),
/// and nothing else.
#[derive(Debug, Clone)]
struct LoopbackNames;

impl aws_smithy_runtime_api::client::dns::ResolveDns for LoopbackNames {
    fn resolve_dns<'a>(&'a self, name: &'a str) -> aws_smithy_runtime_api::client::dns::DnsFuture<'a> {
        use aws_smithy_runtime_api::client::dns::{DnsFuture, ResolveDnsError};
        let result = if name == "localhost" || name.ends_with(".localhost") {
            Ok(vec![std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST)])
        } else {
            Err(ResolveDnsError::new(format!("{name} is not a loopback name")))
        };
        DnsFuture::ready(result)
    }
}

fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a probe listener");
    listener.local_addr().expect("probe listener address").port()
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

// ---------------------------------------------------------------------------
// Payloads and hashes

/// `len` pseudo-random bytes, the same for the same seed, so a test can check an
/// object by regenerating it instead of keeping a copy.
pub fn payload(seed: u64, len: usize) -> Vec<u8> {
    let mut bytes = vec![0u8; len];
    rand::rngs::StdRng::seed_from_u64(seed).fill_bytes(&mut bytes);
    bytes
}

/// Lower-case hex MD5.
pub fn md5_hex(bytes: &[u8]) -> String {
    hex::encode(Md5::digest(bytes))
}

/// The ETag S3 gives a single-part object: the quoted hex MD5 of its bytes.
pub fn etag_of(bytes: &[u8]) -> String {
    format!("\"{}\"", md5_hex(bytes))
}

/// The ETag S3 gives a multipart object: `"md5(md5(part1) ‖ … ‖ md5(partN))-N"`.
pub fn multipart_etag(part_md5s: &[[u8; 16]]) -> String {
    let mut hasher = Md5::new();
    for md5 in part_md5s {
        hasher.update(md5);
    }
    format!("\"{}-{}\"", hex::encode(hasher.finalize()), part_md5s.len())
}

/// Raw MD5 of `bytes`.
pub fn md5_bytes(bytes: &[u8]) -> [u8; 16] {
    Md5::digest(bytes).into()
}

/// Reads a whole body into memory (for small objects).
pub async fn read_all(body: ByteStream) -> Vec<u8> {
    body.collect().await.expect("read the response body").into_bytes().to_vec()
}

/// Streams a body through MD5 without keeping it: `(hex md5, length)`.
pub async fn md5_of_stream(mut body: ByteStream) -> (String, u64) {
    let mut hasher = Md5::new();
    let mut len = 0u64;
    while let Some(chunk) = body.next().await {
        let chunk = chunk.expect("read a chunk of the response body");
        len += chunk.len() as u64;
        hasher.update(&chunk);
    }
    (hex::encode(hasher.finalize()), len)
}

/// GETs an object and returns its bytes.
pub async fn get_bytes(client: &Client, bucket: &str, key: &str) -> Vec<u8> {
    let output = client
        .get_object()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET {bucket}/{key}: {}", DisplayErrorContext(&e)));
    read_all(output.body).await
}

/// PUTs `bytes` as an object and returns its ETag.
pub async fn put_bytes(client: &Client, bucket: &str, key: &str, bytes: Vec<u8>) -> String {
    let output = client
        .put_object()
        .bucket(bucket)
        .key(key)
        .body(ByteStream::from(bytes))
        .send()
        .await
        .unwrap_or_else(|e| panic!("PUT {bucket}/{key}: {}", DisplayErrorContext(&e)));
    output.e_tag.expect("PutObject returns an ETag")
}

/// Sets a bucket's versioning state, panicking with the server's answer on failure.
pub async fn set_versioning(client: &Client, bucket: &str, status: aws_sdk_s3::types::BucketVersioningStatus) {
    client
        .put_bucket_versioning()
        .bucket(bucket)
        .versioning_configuration(aws_sdk_s3::types::VersioningConfiguration::builder().status(status.clone()).build())
        .send()
        .await
        .unwrap_or_else(|e| panic!("PutBucketVersioning {status:?}: {}", DisplayErrorContext(&e)));
}

// ---------------------------------------------------------------------------
// Local files (what the command-line clients copy)

/// Writes `bytes` to `path`, creating its directory.
pub fn write_file(path: &Path, bytes: &[u8]) {
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).unwrap_or_else(|e| panic!("create {}: {e}", parent.display()));
    }
    fs::write(path, bytes).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
}

/// The bytes of the file at `path`.
pub fn read_file(path: &Path) -> Vec<u8> {
    fs::read(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

/// Creates a bucket, panicking with the server's answer on failure.
pub async fn create_bucket(client: &Client, bucket: &str) {
    client
        .create_bucket()
        .bucket(bucket)
        .send()
        .await
        .unwrap_or_else(|e| panic!("CreateBucket {bucket}: {}", DisplayErrorContext(&e)));
}

// ---------------------------------------------------------------------------
// Errors

/// The S3 error code of a failed request, if the server sent one.
pub fn error_code<E: ProvideErrorMetadata>(error: &SdkError<E, HttpResponse>) -> Option<String> {
    error.code().map(str::to_owned)
}

/// The HTTP status of a failed request, if a response arrived.
pub fn http_status<E>(error: &SdkError<E, HttpResponse>) -> Option<u16> {
    error.raw_response().map(|r| r.status().as_u16())
}

/// Asserts that `result` failed with HTTP `status` and S3 error `code`.
#[track_caller]
pub fn assert_s3_error<T, E>(result: Result<T, SdkError<E, HttpResponse>>, status: u16, code: &str)
where
    T: std::fmt::Debug,
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    let error = match result {
        Ok(output) => panic!("expected {status} {code}, got success: {output:?}"),
        Err(error) => error,
    };
    assert_eq!(
        (http_status(&error), error_code(&error).as_deref()),
        (Some(status), Some(code)),
        "unexpected error: {}",
        DisplayErrorContext(&error)
    );
}

/// Asserts that `result` failed with HTTP `status` (whatever the code, e.g. a HEAD).
#[track_caller]
pub fn assert_http_status<T, E>(result: Result<T, SdkError<E, HttpResponse>>, status: u16)
where
    T: std::fmt::Debug,
    E: std::error::Error + 'static,
{
    match result {
        Ok(output) => panic!("expected HTTP {status}, got success: {output:?}"),
        Err(error) => {
            assert_eq!(http_status(&error), Some(status), "unexpected error: {}", DisplayErrorContext(&error))
        }
    }
}

// ---------------------------------------------------------------------------
// Response headers the SDK does not model

/// Captures the status and headers of the last response to the request it is
/// attached to, for what the SDK does not model (`x-bulwark-redundancy`, 206 vs 200).
///
/// ```text
/// let capture = ResponseCapture::new();
/// client.put_object()…customize().interceptor(capture.clone()).send().await?;
/// assert_eq!(capture.redundancy().as_deref(), Some("6/6"));
/// ```
#[derive(Debug, Clone, Default)]
pub struct ResponseCapture {
    seen: Arc<Mutex<Option<CapturedResponse>>>,
}

#[derive(Debug, Clone)]
struct CapturedResponse {
    status: u16,
    headers: Vec<(String, String)>,
}

impl ResponseCapture {
    pub fn new() -> ResponseCapture {
        ResponseCapture::default()
    }

    /// The HTTP status of the last response seen.
    pub fn status(&self) -> Option<u16> {
        self.last().map(|r| r.status)
    }

    /// The value of header `name` (case-insensitive) in the last response seen.
    pub fn header(&self, name: &str) -> Option<String> {
        self.last().and_then(|r| r.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.clone()))
    }

    /// The `x-bulwark-redundancy` receipt of the last response seen.
    pub fn redundancy(&self) -> Option<String> {
        self.header(REDUNDANCY_HEADER)
    }

    fn last(&self) -> Option<CapturedResponse> {
        self.seen.lock().expect("response capture lock is never poisoned").clone()
    }
}

impl Intercept for ResponseCapture {
    fn name(&self) -> &'static str {
        "ResponseCapture"
    }

    fn read_before_deserialization(
        &self,
        context: &BeforeDeserializationInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let response = context.response();
        let captured = CapturedResponse {
            status: response.status().as_u16(),
            headers: response.headers().iter().map(|(n, v)| (n.to_owned(), v.to_owned())).collect(),
        };
        *self.seen.lock().expect("response capture lock is never poisoned") = Some(captured);
        Ok(())
    }
}

/// PUTs an object and returns its `x-bulwark-redundancy` receipt (`None` if absent).
pub async fn put_with_redundancy(
    client: &Client,
    bucket: &str,
    key: &str,
    bytes: Vec<u8>,
) -> Result<Option<String>, SdkError<aws_sdk_s3::operation::put_object::PutObjectError, HttpResponse>> {
    let capture = ResponseCapture::new();
    client
        .put_object()
        .bucket(bucket)
        .key(key)
        .body(ByteStream::from(bytes))
        .customize()
        .interceptor(capture.clone())
        .send()
        .await?;
    Ok(capture.redundancy())
}

// ---------------------------------------------------------------------------
// Drives and shard files

/// Every regular file under `<drive>/data/`, sorted: the shard files of all objects
/// larger than the inline threshold (and nothing else once writes have settled).
pub fn shard_files(drive: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    collect_files(&drive.join("data"), &mut files);
    files.sort();
    files
}

/// The shard files of one bucket on one drive.
pub fn shard_files_in_bucket(drive: &Path, bucket: &str) -> Vec<PathBuf> {
    let mut files = Vec::new();
    collect_files(&drive.join("data").join(bucket), &mut files);
    files.sort();
    files
}

fn collect_files(dir: &Path, files: &mut Vec<PathBuf>) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        match entry.file_type() {
            Ok(t) if t.is_dir() => collect_files(&path, files),
            Ok(t) if t.is_file() => files.push(path),
            _ => {}
        }
    }
}

/// Inverts `count` bytes of `path` starting at `offset` (in place, same length).
pub fn flip_bytes(path: &Path, offset: u64, count: usize) {
    use std::os::unix::fs::FileExt;
    let file = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .unwrap_or_else(|e| panic!("open {} to corrupt it: {e}", path.display()));
    let mut bytes = vec![0u8; count];
    file.read_exact_at(&mut bytes, offset).unwrap_or_else(|e| panic!("read {} at {offset}: {e}", path.display()));
    for byte in &mut bytes {
        *byte = !*byte;
    }
    file.write_all_at(&bytes, offset).unwrap_or_else(|e| panic!("write {} at {offset}: {e}", path.display()));
    file.sync_all().expect("sync the corrupted file");
}

/// Flips a few bytes in the middle of a file: the kind of damage bitrot does.
pub fn corrupt_middle(path: &Path) {
    let len = fs::metadata(path).unwrap_or_else(|e| panic!("stat {}: {e}", path.display())).len();
    assert!(len >= 16, "{} is too short to corrupt", path.display());
    flip_bytes(path, len / 2, 8);
}

/// Every file under `dir`, recursively (none if it does not exist).
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        let Ok(entries) = fs::read_dir(&dir) else { continue };
        for entry in entries.flatten() {
            let path = entry.path();
            match entry.file_type() {
                Ok(kind) if kind.is_dir() => pending.push(path),
                Ok(kind) if kind.is_file() => out.push(path),
                _ => {}
            }
        }
    }
    out
}

impl TestServer {
    /// Every file on any drive (shard files, metadata stores, everything)
    /// whose bytes contain `needle`: for "nothing is stored in the clear".
    pub fn drive_files_containing(&self, needle: &[u8]) -> Vec<PathBuf> {
        let files: Vec<PathBuf> = (1..=DRIVE_COUNT).flat_map(|i| files_under(&self.drive_path(i))).collect();
        for drive in 1..=DRIVE_COUNT {
            let store = self.drive_path(drive).join(".bulwark").join("meta.redb");
            assert!(files.contains(&store), "the search covers {}", store.display());
        }
        files
            .into_iter()
            .filter(|path| fs::read(path).is_ok_and(|bytes| bytes.windows(needle.len()).any(|w| w == needle)))
            .collect()
    }
}

/// Deletes a drive directory and everything in it, as a failed disk would vanish.
pub fn wipe_drive(drive: &Path) {
    fs::remove_dir_all(drive).unwrap_or_else(|e| panic!("rm -rf {}: {e}", drive.display()));
}

/// Moves a drive directory away (to `<drive>.away`), as an unmounted disk would.
pub fn unplug_drive(drive: &Path) -> PathBuf {
    let away = drive.with_extension("away");
    fs::rename(drive, &away).unwrap_or_else(|e| panic!("mv {} {}: {e}", drive.display(), away.display()));
    away
}

// ---------------------------------------------------------------------------
// Signing by hand

/// A presigned URL for `method` on `/bucket/key` valid for `expires_in`, signed with
/// the root credentials — without the SDK's 7-day limit, to test the server's.
pub fn presign_url_by_hand(server: &TestServer, method: &str, bucket: &str, key: &str, expires_in: Duration) -> String {
    use aws_sigv4::http_request::{
        PercentEncodingMode, SignableBody, SignableRequest, SignatureLocation, SigningSettings,
        UriPathNormalizationMode, sign,
    };
    use aws_sigv4::sign::v4;

    let url = format!("{}/{bucket}/{}", server.endpoint(), raw_http::encode_path(key));
    let identity = Credentials::new(ACCESS_KEY, SECRET_KEY, None, None, "bulwark-e2e").into();
    let mut settings = SigningSettings::default();
    settings.signature_location = SignatureLocation::QueryParams;
    settings.expires_in = Some(expires_in);
    settings.percent_encoding_mode = PercentEncodingMode::Single;
    settings.uri_path_normalization_mode = UriPathNormalizationMode::Disabled;
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(REGION)
        .name("s3")
        .time(SystemTime::now())
        .settings(settings)
        .build()
        .expect("valid signing parameters")
        .into();
    let host = format!("127.0.0.1:{}", server.port);
    let request =
        SignableRequest::new(method, &url, std::iter::once(("host", host.as_str())), SignableBody::UnsignedPayload)
            .expect("signable request");
    let (instructions, _signature) = sign(request, &params).expect("sign the request").into_parts();
    let query: Vec<String> = instructions
        .params()
        .iter()
        .map(|(name, value)| format!("{name}={}", raw_http::encode_query_value(value)))
        .collect();
    format!("{url}?{}", query.join("&"))
}

/// The headers to send with a request signed by hand with SigV4 header auth:
/// `headers` (without `host`, which the raw client adds) followed by
/// `authorization`, `x-amz-date` and `x-amz-content-sha256: <payload_hash>`. Every
/// header given is signed. `path_and_query` must be percent-encoded already.
///
/// For requests the SDK will not make: a payload hash that does not match the
/// body, a hand-built aws-chunked body with a trailer, headers it refuses to send.
pub fn sign_by_hand(
    server: &TestServer,
    method: &str,
    path_and_query: &str,
    headers: &[(&str, &str)],
    payload_hash: &str,
) -> Vec<(String, String)> {
    use aws_sigv4::http_request::{
        PayloadChecksumKind, PercentEncodingMode, SignableBody, SignableRequest, SignatureLocation, SigningSettings,
        UriPathNormalizationMode, sign,
    };
    use aws_sigv4::sign::v4;

    let url = format!("{}{path_and_query}", server.endpoint());
    let host = server.host();
    let identity = Credentials::new(ACCESS_KEY, SECRET_KEY, None, None, "bulwark-e2e").into();
    let mut settings = SigningSettings::default();
    settings.signature_location = SignatureLocation::Headers;
    settings.payload_checksum_kind = PayloadChecksumKind::XAmzSha256;
    settings.percent_encoding_mode = PercentEncodingMode::Single;
    settings.uri_path_normalization_mode = UriPathNormalizationMode::Disabled;
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(REGION)
        .name("s3")
        .time(SystemTime::now())
        .settings(settings)
        .build()
        .expect("valid signing parameters")
        .into();
    let all: Vec<(&str, &str)> = std::iter::once(("host", host.as_str())).chain(headers.iter().copied()).collect();
    let request =
        SignableRequest::new(method, &url, all.iter().copied(), SignableBody::Precomputed(payload_hash.to_owned()))
            .expect("signable request");
    let (instructions, _signature) = sign(request, &params).expect("sign the request").into_parts();
    let mut out: Vec<(String, String)> = headers.iter().map(|(n, v)| ((*n).to_owned(), (*v).to_owned())).collect();
    out.extend(instructions.headers().map(|(n, v)| (n.to_owned(), v.to_owned())));
    out
}

/// Sends a request signed by hand (see [`sign_by_hand`]) over the raw client.
pub async fn send_signed_by_hand(
    server: &TestServer,
    method: &str,
    path_and_query: &str,
    headers: &[(&str, &str)],
    payload_hash: &str,
    body: &[u8],
) -> raw_http::Response {
    let signed = sign_by_hand(server, method, path_and_query, headers, payload_hash);
    let borrowed: Vec<(&str, &str)> = signed.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
    raw_http::send(method, &format!("{}{path_and_query}", server.endpoint()), &borrowed, body).await
}

/// Sends a request signed by hand whose `x-amz-content-sha256` is the true hex
/// SHA-256 of `body`.
pub async fn send_signed(
    server: &TestServer,
    method: &str,
    path_and_query: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> raw_http::Response {
    let hash = hex::encode(sha2::Sha256::digest(body));
    send_signed_by_hand(server, method, path_and_query, headers, &hash, body).await
}

/// How to damage a signed aws-chunked upload, to test that the server notices.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChunkTampering {
    /// Send the chunks as signed.
    None,
    /// Flip one byte of the data of the second chunk after signing it.
    FlipByteInSecondChunk,
    /// Send the first chunk only, then close the connection's sending side, as a
    /// client that dies mid-upload would.
    HangUpAfterFirstChunk,
}

/// PUTs `body` as `STREAMING-AWS4-HMAC-SHA256-PAYLOAD` (signed aws-chunked
/// encoding, each chunk signed and chained to the previous signature), the way
/// SDKs that sign their payload stream it, over a raw connection. Returns `None`
/// if the server closed the connection without an answer (after a hang-up).
pub async fn put_signed_aws_chunked(
    server: &TestServer,
    bucket: &str,
    key: &str,
    body: &[u8],
    chunk_bytes: usize,
    tampering: ChunkTampering,
) -> Option<raw_http::Response> {
    use aws_sigv4::http_request::{
        PayloadChecksumKind, PercentEncodingMode, SignableBody, SignableRequest, SignatureLocation, SigningSettings,
        UriPathNormalizationMode, sign,
    };
    use aws_sigv4::sign::v4;

    const STREAMING: &str = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD";
    const SIGNATURE_HEX_LEN: usize = 64;
    assert!(chunk_bytes > 0, "chunks hold at least one byte");
    let chunks: Vec<&[u8]> = body.chunks(chunk_bytes).chain(std::iter::once(&[][..])).collect();
    let encoded_len: usize = chunks
        .iter()
        .map(|c| format!("{:x}", c.len()).len() + ";chunk-signature=".len() + SIGNATURE_HEX_LEN + 2 + c.len() + 2)
        .sum();

    let url = format!("{}/{bucket}/{}", server.endpoint(), raw_http::encode_path(key));
    let host = format!("127.0.0.1:{}", server.port);
    let decoded_len = body.len().to_string();
    let encoded_len_text = encoded_len.to_string();
    let identity = Credentials::new(ACCESS_KEY, SECRET_KEY, None, None, "bulwark-e2e").into();
    let time = SystemTime::now();
    let settings = || {
        let mut settings = SigningSettings::default();
        settings.signature_location = SignatureLocation::Headers;
        settings.payload_checksum_kind = PayloadChecksumKind::XAmzSha256;
        settings.percent_encoding_mode = PercentEncodingMode::Single;
        settings.uri_path_normalization_mode = UriPathNormalizationMode::Disabled;
        settings
    };
    let params = || {
        v4::SigningParams::builder()
            .identity(&identity)
            .region(REGION)
            .name("s3")
            .time(time)
            .settings(settings())
            .build()
            .expect("valid signing parameters")
    };
    let headers = [
        ("host", host.as_str()),
        ("content-encoding", "aws-chunked"),
        ("content-length", encoded_len_text.as_str()),
        ("x-amz-decoded-content-length", decoded_len.as_str()),
    ];
    let request =
        SignableRequest::new("PUT", &url, headers.iter().copied(), SignableBody::Precomputed(STREAMING.to_owned()))
            .expect("signable request");
    let (instructions, seed_signature) = sign(request, &params().into()).expect("sign the request").into_parts();

    let chunk_params = params();
    let mut running_signature = seed_signature;
    let mut encoded = Vec::with_capacity(encoded_len);
    for (index, chunk) in chunks.iter().enumerate() {
        let signature = v4::sign_chunk(&bytes::Bytes::copy_from_slice(chunk), &running_signature, &chunk_params)
            .expect("sign a chunk")
            .into_parts()
            .1;
        encoded.extend_from_slice(format!("{:x};chunk-signature={signature}\r\n", chunk.len()).as_bytes());
        let start = encoded.len();
        encoded.extend_from_slice(chunk);
        if index == 1 && tampering == ChunkTampering::FlipByteInSecondChunk {
            encoded[start + chunk.len() / 2] ^= 0xFF;
        }
        encoded.extend_from_slice(b"\r\n");
        running_signature = signature;
        if index == 0 && tampering == ChunkTampering::HangUpAfterFirstChunk {
            break;
        }
    }

    let signed: Vec<(String, String)> = instructions.headers().map(|(n, v)| (n.to_owned(), v.to_owned())).collect();
    let mut all_headers: Vec<(&str, &str)> = headers.iter().copied().filter(|(n, _)| *n != "host").collect();
    all_headers.extend(signed.iter().map(|(n, v)| (n.as_str(), v.as_str())));
    if tampering == ChunkTampering::HangUpAfterFirstChunk {
        return raw_http::send_then_hang_up("PUT", &url, &all_headers, &encoded).await;
    }
    Some(raw_http::send("PUT", &url, &all_headers, &encoded).await)
}

// ---------------------------------------------------------------------------
// Admin CLI, status and metrics

/// Longest an admin command may run before the harness kills it and fails.
const ADMIN_TIMEOUT: Duration = Duration::from_secs(300);
const ADMIN_POLL_INTERVAL: Duration = Duration::from_millis(50);

/// What one `bulwark admin …` run printed and how it ended.
#[derive(Debug, Clone)]
pub struct AdminOutput {
    /// The command line after `bulwark admin`, for messages.
    pub command: String,
    pub success: bool,
    pub stdout: String,
    pub stderr: String,
}

impl AdminOutput {
    /// Panics with everything the command printed unless it exited with 0.
    #[track_caller]
    pub fn assert_success(&self) {
        assert!(
            self.success,
            "`bulwark admin {}` failed\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.command, self.stdout, self.stderr
        );
    }

    /// The number after `label:` on a line of a heal or scrub report
    /// (`  problems found:     0`).
    pub fn report_number(&self, label: &str) -> Option<u64> {
        self.stdout.lines().find_map(|line| {
            let (name, value) = line.split_once(':')?;
            (name.trim() == label).then(|| value.trim().parse().ok())?
        })
    }
}

/// A `bulwark admin …` process running in the background; see [`AdminRun::finish`].
pub struct AdminRun {
    command: String,
    child: Child,
    stdout_path: PathBuf,
    stderr_path: PathBuf,
}

impl AdminRun {
    /// Waits for the command to exit (at most [`ADMIN_TIMEOUT`], then it is killed
    /// and the test fails) and returns what it printed.
    pub async fn finish(mut self) -> AdminOutput {
        let deadline = Instant::now() + ADMIN_TIMEOUT;
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("poll the admin command") {
                break status;
            }
            if Instant::now() >= deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!(
                    "`bulwark admin {}` still running after {ADMIN_TIMEOUT:?}; killed\n--- stdout ---\n{}",
                    self.command,
                    fs::read_to_string(&self.stdout_path).unwrap_or_default()
                );
            }
            tokio::time::sleep(ADMIN_POLL_INTERVAL).await;
        };
        AdminOutput {
            command: self.command,
            success: status.success(),
            stdout: fs::read_to_string(&self.stdout_path).unwrap_or_default(),
            stderr: fs::read_to_string(&self.stderr_path).unwrap_or_default(),
        }
    }
}

static ADMIN_RUNS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

impl TestServer {
    /// Starts `bulwark admin --endpoint <this server> <args…>` with the root
    /// credentials in the environment, without waiting for it. Its output goes
    /// to files in the scratch directory (no pipe can fill up and stall it).
    pub fn admin_spawn(&self, args: &[&str]) -> AdminRun {
        let run = ADMIN_RUNS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let scratch = self.scratch_dir();
        let stdout_path = scratch.join(format!("admin-{run}.stdout"));
        let stderr_path = scratch.join(format!("admin-{run}.stderr"));
        let stdout = fs::File::create(&stdout_path).expect("create the admin stdout file");
        let stderr = fs::File::create(&stderr_path).expect("create the admin stderr file");
        let binary = bulwark_binary();
        let mut command = Command::new(&binary);
        command.arg("admin").arg("--endpoint").arg(self.endpoint()).arg("--data").arg(self.data_dir());
        if self.is_tls() {
            command.arg("--ca-cert").arg(self.tls_cert_path());
        }
        let child = command
            .args(args)
            .env("BULWARK_ROOT_USER", ACCESS_KEY)
            .env("BULWARK_ROOT_PASSWORD", SECRET_KEY)
            .env("AWS_DEFAULT_REGION", REGION)
            .env("BULWARK_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr)
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {} admin: {e}", binary.display()));
        AdminRun { command: args.join(" "), child, stdout_path, stderr_path }
    }

    /// Runs `bulwark admin <args…>` against this server and waits for it.
    pub async fn admin(&self, args: &[&str]) -> AdminOutput {
        self.admin_spawn(args).finish().await
    }

    /// `bulwark admin status --json`, parsed; panics if the command fails.
    pub async fn admin_status(&self) -> serde_json::Value {
        let output = self.admin(&["status", "--json"]).await;
        output.assert_success();
        serde_json::from_str(&output.stdout)
            .unwrap_or_else(|e| panic!("`bulwark admin status --json` printed no JSON ({e}):\n{}", output.stdout))
    }

    /// The unsigned Prometheus text of `GET /metrics`; panics unless it is a 200.
    pub async fn metrics(&self) -> String {
        let response = raw_http::send("GET", &format!("{}/metrics", self.endpoint()), &[], b"").await;
        assert_eq!(response.status, 200, "unsigned GET /metrics: {}", response.text());
        response.text()
    }
}

/// The value of an unlabelled metric (`name 0`) in Prometheus text.
pub fn metric_value(metrics: &str, name: &str) -> Option<f64> {
    metrics.lines().find_map(|line| {
        let (metric, value) = line.split_once(' ')?;
        (metric == name).then(|| value.trim().parse().ok())?
    })
}

/// Moves a drive directory back from where [`unplug_drive`] put it.
pub fn replug_drive(drive: &Path) {
    let away = drive.with_extension("away");
    fs::rename(&away, drive).unwrap_or_else(|e| panic!("mv {} {}: {e}", away.display(), drive.display()));
}

/// Flips bit `bit` (0..8) of the byte at `offset` of `path`, in place.
pub fn flip_bit(path: &Path, offset: u64, bit: u8) {
    use std::os::unix::fs::FileExt;
    assert!(bit < 8, "a byte has eight bits, not {bit}");
    let file = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .unwrap_or_else(|e| panic!("open {} to flip a bit: {e}", path.display()));
    let mut byte = [0u8; 1];
    file.read_exact_at(&mut byte, offset).unwrap_or_else(|e| panic!("read {} at {offset}: {e}", path.display()));
    byte[0] ^= 1 << bit;
    file.write_all_at(&byte, offset).unwrap_or_else(|e| panic!("write {} at {offset}: {e}", path.display()));
    file.sync_all().expect("sync the bit-flipped file");
}

/// Cuts `path` down to `len` bytes.
pub fn truncate_file(path: &Path, len: u64) {
    let file = fs::OpenOptions::new()
        .write(true)
        .open(path)
        .unwrap_or_else(|e| panic!("open {} to truncate it: {e}", path.display()));
    file.set_len(len).unwrap_or_else(|e| panic!("truncate {} to {len}: {e}", path.display()));
    file.sync_all().expect("sync the truncated file");
}
