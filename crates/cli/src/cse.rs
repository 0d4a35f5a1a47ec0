//! `bulwark cse …`: client-side encryption (DESIGN.md D9). Objects are
//! encrypted here, before upload, in the AWS S3 Encryption Client formats, and
//! decrypted here after download; the server stores ciphertext and the
//! envelope, never the plaintext or a client-held master key.
//!
//! Transport is the AWS SDK (credentials, region and profiles from the usual
//! AWS environment variables and files); the cryptography and the formats are
//! `bulwark-cse`. Memory stays bounded: single PUTs up to
//! [`MULTIPART_THRESHOLD_BYTES`], then multipart in [`PART_BYTES`] parts with
//! one GCM message across all of them; downloads stream into a temporary file
//! that becomes the destination only once the GCM tag verified.

use std::collections::HashMap;
use std::io::{IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use aws_config::BehaviorVersion;
use aws_sdk_s3::error::DisplayErrorContext;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use bulwark_cse::envelope::{INSTRUCTION_FILE_BYTES_MAX, INSTRUCTION_FILE_MARKER, INSTRUCTION_SUFFIX};
use bulwark_cse::{
    Context, DataKey, EncryptionMaterials, Envelope, Format, Location, MasterKey, ObjectDecryptor, ObjectEncryptor,
    PendingFile, WrapAlgorithm, kms_encryption_context,
};
use futures::StreamExt;
use zeroize::Zeroizing;

/// Files smaller than this go up in one PUT (the ciphertext is held in memory).
pub const MULTIPART_THRESHOLD_BYTES: u64 = 16 * 1024 * 1024;
/// Plaintext bytes per multipart part (the last part also carries the tag).
pub const PART_BYTES: usize = 8 * 1024 * 1024;
const PARTS_COUNT_MAX: u64 = 10_000;
/// HEAD requests in flight while listing.
const LIST_CONCURRENCY: usize = 8;
const PROGRESS_INTERVAL: Duration = Duration::from_millis(100);
const DEFAULT_REGION: &str = "us-east-1";

const _: () = assert!(PART_BYTES >= 5 * 1024 * 1024, "S3 parts other than the last are at least 5 MiB");
const _: () = assert!(MULTIPART_THRESHOLD_BYTES >= PART_BYTES as u64);
const _: () = assert!(PART_BYTES as u64 * PARTS_COUNT_MAX >= bulwark_cse::object::PLAINTEXT_BYTES_MAX);

#[derive(clap::Args)]
pub struct CseArgs {
    #[command(flatten)]
    options: Options,
    #[command(subcommand)]
    command: CseCommand,
}

#[derive(clap::Args)]
struct Options {
    /// The S3 endpoint.
    #[arg(long, default_value = "http://127.0.0.1:9000", global = true)]
    endpoint: String,
    /// Region to sign for (default: the AWS configuration's, else us-east-1).
    #[arg(long, global = true)]
    region: Option<String>,
    /// KMS key (id, ARN or alias) for kms+context: a data key per object from
    /// GenerateDataKey. On get, passed to Decrypt if given.
    #[arg(long, global = true)]
    kms_key_id: Option<String>,
    /// AWS KMS API endpoint (default: --endpoint, Bulwark's built-in KMS).
    #[arg(long, global = true)]
    kms_endpoint: Option<String>,
    /// File with a 256-bit AES master key (32 raw bytes or base64): AES/GCM wrap.
    #[arg(long, global = true, conflicts_with_all = ["kms_key_id", "rsa_key"])]
    master_key: Option<PathBuf>,
    /// PEM RSA key (PKCS#1 or PKCS#8; a public key suffices for put): RSA-OAEP-SHA1 wrap.
    #[arg(long, global = true, conflicts_with = "kms_key_id")]
    rsa_key: Option<PathBuf>,
    /// Envelope format written by put: v2 (every S3 Encryption Client reads it)
    /// or v3 (key-committing; needs a v4 Java/Go/.NET or the Python client).
    #[arg(long, value_enum, default_value_t = FormatArg::V2, global = true)]
    format: FormatArg,
    /// Encryption context (KMS) or material description (raw keys), KEY=VALUE;
    /// repeatable. On get, the object's must equal it exactly.
    #[arg(long = "context", value_name = "KEY=VALUE", global = true)]
    context: Vec<String>,
    /// put: store the envelope in `<key>.instruction` instead of object metadata.
    #[arg(long, global = true)]
    instruction_file: bool,
    /// get: also decrypt legacy unauthenticated objects (AES-CBC content, v1).
    #[arg(long, global = true)]
    allow_legacy: bool,
    /// CA certificate (PEM) to trust for https endpoints (default: $AWS_CA_BUNDLE, else system roots).
    #[arg(long, global = true)]
    ca_cert: Option<PathBuf>,
    /// No progress bar, even on a terminal.
    #[arg(long, global = true)]
    quiet: bool,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum FormatArg {
    V2,
    V3,
}

#[derive(clap::Subcommand)]
enum CseCommand {
    /// Encrypt FILE and upload it to s3://BUCKET/KEY.
    Put { file: PathBuf, target: String },
    /// Download s3://BUCKET/KEY and decrypt it into FILE (written only if it authenticates).
    Get { source: String, file: PathBuf },
    /// List objects with their plaintext size and encryption.
    Ls { target: String },
    /// Delete s3://BUCKET/KEY and its instruction file.
    Rm { target: String },
}

pub async fn run(args: CseArgs) -> std::process::ExitCode {
    let result = match Clients::new(&args.options).await {
        Ok(clients) => match args.command {
            CseCommand::Put { file, target } => put(&clients, &args.options, &file, &target).await,
            CseCommand::Get { source, file } => get(&clients, &args.options, &source, &file).await,
            CseCommand::Ls { target } => ls(&clients, &target).await,
            CseCommand::Rm { target } => rm(&clients, &target).await,
        },
        Err(e) => Err(e),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

struct Clients {
    s3: aws_sdk_s3::Client,
    kms: aws_sdk_kms::Client,
}

impl Clients {
    async fn new(options: &Options) -> Result<Clients, String> {
        let mut loader = aws_config::defaults(BehaviorVersion::latest());
        if let Some(region) = &options.region {
            loader = loader.region(aws_config::Region::new(region.clone()));
        }
        let ca_cert = options.ca_cert.clone().or_else(|| std::env::var_os("AWS_CA_BUNDLE").map(PathBuf::from));
        if let Some(path) = ca_cert {
            let pem = std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
            use aws_smithy_http_client::tls::{self, TlsContext, TrustStore, rustls_provider::CryptoMode};
            let trust = TrustStore::empty().with_native_roots(false).with_pem_certificate(pem);
            let context = TlsContext::builder()
                .with_trust_store(trust)
                .build()
                .map_err(|e| format!("{}: {e}", path.display()))?;
            let client = aws_smithy_http_client::Builder::new()
                .tls_provider(tls::Provider::Rustls(CryptoMode::AwsLc))
                .tls_context(context)
                .build_https();
            loader = loader.http_client(client);
        }
        let shared = loader.load().await;
        let region = shared.region().cloned().unwrap_or_else(|| aws_config::Region::new(DEFAULT_REGION));
        let s3 = aws_sdk_s3::config::Builder::from(&shared)
            .region(region.clone())
            .endpoint_url(options.endpoint.trim_end_matches('/'))
            .force_path_style(true)
            .build();
        let kms_endpoint = options.kms_endpoint.as_deref().unwrap_or(&options.endpoint);
        let kms = aws_sdk_kms::config::Builder::from(&shared)
            .region(region)
            .endpoint_url(kms_endpoint.trim_end_matches('/'))
            .build();
        Ok(Clients { s3: aws_sdk_s3::Client::from_conf(s3), kms: aws_sdk_kms::Client::from_conf(kms) })
    }
}

/// `s3://bucket/key` → (bucket, key); the key may be empty.
fn parse_s3_uri(uri: &str) -> Result<(String, String), String> {
    let rest = uri.strip_prefix("s3://").ok_or_else(|| format!("{uri:?} is not an s3://BUCKET/KEY address"))?;
    let (bucket, key) = rest.split_once('/').unwrap_or((rest, ""));
    if bucket.is_empty() {
        return Err(format!("{uri:?} names no bucket"));
    }
    Ok((bucket.to_owned(), key.to_owned()))
}

fn parse_context(pairs: &[String]) -> Result<Context, String> {
    pairs
        .iter()
        .map(|pair| match pair.split_once('=') {
            Some((k, v)) if !k.is_empty() => Ok((k.to_owned(), v.to_owned())),
            _ => Err(format!("--context {pair:?}: expected KEY=VALUE")),
        })
        .collect()
}

fn read_key_file(path: &Path) -> Result<Zeroizing<Vec<u8>>, String> {
    std::fs::read(path).map(Zeroizing::new).map_err(|e| format!("{}: {e}", path.display()))
}

/// An SDK failure in one line: the service's code and message when it
/// answered, the whole cause chain otherwise (connection refused, TLS, …).
fn sdk_error<E, R>(what: &str, e: aws_sdk_s3::error::SdkError<E, R>) -> String
where
    E: aws_sdk_s3::error::ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    use aws_sdk_s3::error::ProvideErrorMetadata;
    match (e.code(), e.message()) {
        (Some(code), Some(message)) => format!("{what}: {code}: {message}"),
        (Some(code), None) => format!("{what}: {code}"),
        _ => format!("{what}: {}", DisplayErrorContext(e)),
    }
}

async fn put(clients: &Clients, options: &Options, file: &Path, target: &str) -> Result<(), String> {
    let (bucket, mut key) = parse_s3_uri(target)?;
    if key.is_empty() || key.ends_with('/') {
        let name = file.file_name().ok_or_else(|| format!("{} has no file name", file.display()))?;
        key.push_str(&name.to_string_lossy());
    }
    if key.ends_with(INSTRUCTION_SUFFIX) {
        return Err(format!("keys ending in {INSTRUCTION_SUFFIX} are reserved for instruction files"));
    }
    let mut source = std::fs::File::open(file).map_err(|e| format!("{}: {e}", file.display()))?;
    let size = source.metadata().map_err(|e| format!("{}: {e}", file.display()))?.len();
    let format = match options.format {
        FormatArg::V2 => Format::V2,
        FormatArg::V3 => Format::V3,
    };
    let user_context = parse_context(&options.context)?;
    let materials = put_materials(clients, options, format, user_context).await?;
    let encryptor = ObjectEncryptor::new(materials, Some(size)).map_err(|e| e.to_string())?;
    let envelope = encryptor.envelope().clone();
    let stored = envelope.to_storage(options.instruction_file).map_err(|e| e.to_string())?;
    if envelope.wrap != WrapAlgorithm::KmsContext {
        let key_file = options.master_key.as_ref().or(options.rsa_key.as_ref()).map(|p| p.display().to_string());
        eprintln!(
            "warning: s3://{bucket}/{key} can be decrypted only with the master key in {}. Bulwark never sees \
             that key and cannot recover it: if it is lost, the data is lost. Keep a copy of it somewhere safe, \
             apart from the data.",
            key_file.unwrap_or_default()
        );
    }
    let mut progress = Progress::new("upload", size, options.quiet);
    let metadata: HashMap<String, String> = stored.metadata.into_iter().collect();
    if size < MULTIPART_THRESHOLD_BYTES {
        put_single(clients, &bucket, &key, &mut source, size, encryptor, metadata, &mut progress).await?;
    } else {
        put_multipart(clients, &bucket, &key, &mut source, size, encryptor, metadata, &mut progress).await?;
    }
    if let Some(body) = stored.instruction_file {
        clients
            .s3
            .put_object()
            .bucket(&bucket)
            .key(format!("{key}{INSTRUCTION_SUFFIX}"))
            .metadata(INSTRUCTION_FILE_MARKER, "")
            .body(ByteStream::from(body))
            .send()
            .await
            .map_err(|e| sdk_error("PutObject (instruction file)", e))?;
    }
    progress.finish();
    println!(
        "upload: {} to s3://{bucket}/{key} ({size} bytes, encrypted {:?} {} before upload)",
        file.display(),
        envelope.version,
        envelope.wrap.name()
    );
    Ok(())
}

async fn put_materials(
    clients: &Clients,
    options: &Options,
    format: Format,
    user_context: Context,
) -> Result<EncryptionMaterials, String> {
    if let Some(key_id) = &options.kms_key_id {
        let context = kms_encryption_context(format.content_cipher(), &user_context).map_err(|e| e.to_string())?;
        let response = clients
            .kms
            .generate_data_key()
            .key_id(key_id)
            .key_spec(aws_sdk_kms::types::DataKeySpec::Aes256)
            .set_encryption_context(Some(context.clone().into_iter().collect()))
            .send()
            .await
            .map_err(|e| sdk_error(&format!("KMS GenerateDataKey with {key_id}"), e))?;
        let plaintext = response.plaintext().ok_or("KMS GenerateDataKey returned no plaintext key")?;
        let plaintext = DataKey::from_slice(plaintext.as_ref()).map_err(|e| e.to_string())?;
        let blob = response.ciphertext_blob().ok_or("KMS GenerateDataKey returned no ciphertext blob")?;
        return Ok(EncryptionMaterials::from_kms(format, plaintext, blob.as_ref().to_vec(), context));
    }
    let master = if let Some(path) = &options.master_key {
        MasterKey::aes_from_file_contents(&read_key_file(path)?).map_err(|e| format!("{}: {e}", path.display()))?
    } else if let Some(path) = &options.rsa_key {
        MasterKey::rsa_from_pem(&read_key_file(path)?).map_err(|e| format!("{}: {e}", path.display()))?
    } else {
        return Err("choose how to protect the data key: --kms-key-id KEY, --master-key FILE or --rsa-key FILE".into());
    };
    EncryptionMaterials::with_master_key(&master, format, user_context).map_err(|e| e.to_string())
}

fn read_full(source: &mut std::fs::File, buffer: &mut [u8]) -> Result<usize, String> {
    let mut filled = 0;
    while filled < buffer.len() {
        match source.read(&mut buffer[filled..]) {
            Ok(0) => break,
            Ok(read) => filled += read,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(format!("read: {e}")),
        }
    }
    Ok(filled)
}

#[allow(clippy::too_many_arguments)]
async fn put_single(
    clients: &Clients,
    bucket: &str,
    key: &str,
    source: &mut std::fs::File,
    size: u64,
    mut encryptor: ObjectEncryptor,
    metadata: HashMap<String, String>,
    progress: &mut Progress,
) -> Result<(), String> {
    let mut plain = Zeroizing::new(vec![0u8; size as usize]);
    let read = read_full(source, &mut plain)?;
    if read as u64 != size || read_full(source, &mut [0u8; 1])? != 0 {
        return Err("the file changed size while it was read".into());
    }
    let mut body = Vec::with_capacity(read + 16);
    encryptor.update(&plain, &mut body).map_err(|e| e.to_string())?;
    encryptor.finish(&mut body);
    clients
        .s3
        .put_object()
        .bucket(bucket)
        .key(key)
        .set_metadata(Some(metadata))
        .body(ByteStream::from(body))
        .send()
        .await
        .map_err(|e| sdk_error("PutObject", e))?;
    progress.add(size);
    Ok(())
}

#[allow(clippy::too_many_arguments)]
async fn put_multipart(
    clients: &Clients,
    bucket: &str,
    key: &str,
    source: &mut std::fs::File,
    size: u64,
    encryptor: ObjectEncryptor,
    metadata: HashMap<String, String>,
    progress: &mut Progress,
) -> Result<(), String> {
    let created = clients
        .s3
        .create_multipart_upload()
        .bucket(bucket)
        .key(key)
        .set_metadata(Some(metadata))
        .send()
        .await
        .map_err(|e| sdk_error("CreateMultipartUpload", e))?;
    let upload_id = created.upload_id().ok_or("CreateMultipartUpload returned no upload id")?.to_owned();
    let result = upload_parts(clients, bucket, key, &upload_id, source, size, encryptor, progress).await;
    if result.is_err() {
        // Best effort: an upload left behind holds only ciphertext.
        let _ = clients.s3.abort_multipart_upload().bucket(bucket).key(key).upload_id(&upload_id).send().await;
    }
    result
}

#[allow(clippy::too_many_arguments)]
async fn upload_parts(
    clients: &Clients,
    bucket: &str,
    key: &str,
    upload_id: &str,
    source: &mut std::fs::File,
    size: u64,
    mut encryptor: ObjectEncryptor,
    progress: &mut Progress,
) -> Result<(), String> {
    let changed = || "the file changed size while it was read".to_owned();
    let mut plain = Zeroizing::new(vec![0u8; PART_BYTES]);
    let mut completed = Vec::new();
    let mut sent = 0u64;
    let mut part_number = 1i32;
    loop {
        let read = read_full(source, &mut plain)?;
        sent += read as u64;
        let mut body = Vec::with_capacity(read + 16);
        encryptor.update(&plain[..read], &mut body).map_err(|e| e.to_string())?;
        if sent >= size {
            if sent != size || read_full(source, &mut [0u8; 1])? != 0 {
                return Err(changed());
            }
            // One GCM message across all parts: the tag ends the last part.
            encryptor.finish(&mut body);
            completed.push(upload_part(clients, bucket, key, upload_id, part_number, body).await?);
            progress.add(read as u64);
            break;
        }
        if read < PART_BYTES {
            return Err(changed());
        }
        completed.push(upload_part(clients, bucket, key, upload_id, part_number, body).await?);
        progress.add(read as u64);
        part_number += 1;
    }
    clients
        .s3
        .complete_multipart_upload()
        .bucket(bucket)
        .key(key)
        .upload_id(upload_id)
        .multipart_upload(CompletedMultipartUpload::builder().set_parts(Some(completed)).build())
        .send()
        .await
        .map_err(|e| sdk_error("CompleteMultipartUpload", e))?;
    Ok(())
}

async fn upload_part(
    clients: &Clients,
    bucket: &str,
    key: &str,
    upload_id: &str,
    part_number: i32,
    body: Vec<u8>,
) -> Result<CompletedPart, String> {
    let response = clients
        .s3
        .upload_part()
        .bucket(bucket)
        .key(key)
        .upload_id(upload_id)
        .part_number(part_number)
        .body(ByteStream::from(body))
        .send()
        .await
        .map_err(|e| sdk_error(&format!("UploadPart {part_number}"), e))?;
    Ok(CompletedPart::builder()
        .part_number(part_number)
        .set_e_tag(response.e_tag().map(str::to_owned))
        .set_checksum_crc32(response.checksum_crc32().map(str::to_owned))
        .set_checksum_crc32_c(response.checksum_crc32_c().map(str::to_owned))
        .set_checksum_crc64_nvme(response.checksum_crc64_nvme().map(str::to_owned))
        .build())
}

/// Finds and decodes the envelope of an object whose metadata is `metadata`.
async fn fetch_envelope(
    clients: &Clients,
    bucket: &str,
    key: &str,
    metadata: &bulwark_cse::Metadata,
) -> Result<Envelope, String> {
    let address = format!("s3://{bucket}/{key}");
    match Envelope::locate(metadata).map_err(|e| format!("{address}: {e}"))? {
        Location::Metadata => Envelope::from_metadata(metadata).map_err(|e| format!("{address}: {e}")),
        Location::InstructionFile => {
            let instruction_key = format!("{key}{INSTRUCTION_SUFFIX}");
            let response = match clients.s3.get_object().bucket(bucket).key(&instruction_key).send().await {
                Ok(response) => response,
                Err(e) if e.as_service_error().is_some_and(|s| s.is_no_such_key()) => {
                    return Err(format!(
                        "{address} is not client-side encrypted: its metadata holds no S3 Encryption Client \
                         envelope and there is no {instruction_key}"
                    ));
                }
                Err(e) => return Err(sdk_error(&format!("GetObject {instruction_key}"), e)),
            };
            if response.content_length().unwrap_or(0) > INSTRUCTION_FILE_BYTES_MAX as i64 {
                return Err(format!("{instruction_key} is larger than {INSTRUCTION_FILE_BYTES_MAX} bytes"));
            }
            let body = response.body.collect().await.map_err(|e| format!("read {instruction_key}: {e}"))?;
            Envelope::from_instruction_file(metadata, &body.into_bytes()).map_err(|e| format!("{address}: {e}"))
        }
    }
}

async fn unwrap_data_key(clients: &Clients, options: &Options, envelope: &Envelope) -> Result<DataKey, String> {
    let expected = if options.context.is_empty() { None } else { Some(parse_context(&options.context)?) };
    if envelope.wrap.is_kms() {
        let request = envelope.kms_decrypt_request(expected.as_ref()).map_err(|e| e.to_string())?;
        let response = clients
            .kms
            .decrypt()
            .ciphertext_blob(aws_sdk_kms::primitives::Blob::new(request.ciphertext_blob))
            .set_encryption_context(Some(request.context.into_iter().collect()))
            .set_key_id(options.kms_key_id.clone())
            .send()
            .await
            .map_err(|e| sdk_error("KMS Decrypt of the object's data key", e))?;
        let plaintext = response.plaintext().ok_or("KMS Decrypt returned no plaintext")?;
        return DataKey::from_slice(plaintext.as_ref()).map_err(|e| e.to_string());
    }
    if let Some(expected) = expected
        && expected != envelope.context
    {
        return Err(format!(
            "material description mismatch: the object has {}, --context gave {}",
            bulwark_cse::envelope::context_json(&envelope.context),
            bulwark_cse::envelope::context_json(&expected)
        ));
    }
    let master = match envelope.wrap {
        WrapAlgorithm::AesGcm | WrapAlgorithm::AesWrap => {
            let path = options.master_key.as_ref().ok_or_else(|| {
                format!("the object's data key is wrapped with {}: pass --master-key FILE", envelope.wrap.name())
            })?;
            MasterKey::aes_from_file_contents(&read_key_file(path)?).map_err(|e| format!("{}: {e}", path.display()))?
        }
        WrapAlgorithm::RsaOaepSha1 | WrapAlgorithm::RsaOaepSha256 => {
            let path = options.rsa_key.as_ref().ok_or_else(|| {
                format!("the object's data key is wrapped with {}: pass --rsa-key PRIVATE.pem", envelope.wrap.name())
            })?;
            MasterKey::rsa_from_pem(&read_key_file(path)?).map_err(|e| format!("{}: {e}", path.display()))?
        }
        _ => match (&options.master_key, &options.rsa_key) {
            (Some(path), _) => MasterKey::aes_from_file_contents(&read_key_file(path)?)
                .map_err(|e| format!("{}: {e}", path.display()))?,
            (None, Some(path)) => {
                MasterKey::rsa_from_pem(&read_key_file(path)?).map_err(|e| format!("{}: {e}", path.display()))?
            }
            (None, None) => return Err("this v1 object needs its master key: --master-key or --rsa-key".into()),
        },
    };
    master.unwrap(envelope).map_err(|e| e.to_string())
}

async fn get(clients: &Clients, options: &Options, source: &str, file: &Path) -> Result<(), String> {
    let (bucket, key) = parse_s3_uri(source)?;
    if key.is_empty() {
        return Err(format!("{source:?} names no object"));
    }
    let destination = if file.is_dir() {
        file.join(key.rsplit('/').next().filter(|name| !name.is_empty()).ok_or("the key has no file name")?)
    } else {
        file.to_owned()
    };
    let response = clients
        .s3
        .get_object()
        .bucket(&bucket)
        .key(&key)
        .send()
        .await
        .map_err(|e| sdk_error(&format!("GetObject s3://{bucket}/{key}"), e))?;
    let metadata = bulwark_cse::envelope::metadata_from(response.metadata().into_iter().flatten());
    let envelope = fetch_envelope(clients, &bucket, &key, &metadata).await?;
    envelope.check_policy(options.allow_legacy).map_err(|e| format!("s3://{bucket}/{key}: {e}"))?;
    let data_key = unwrap_data_key(clients, options, &envelope).await?;
    let length = u64::try_from(response.content_length().unwrap_or(0)).unwrap_or(0);
    let mut progress = Progress::new("download", length, options.quiet);
    let decrypted =
        decrypt_body(response.body, &envelope, &data_key, options.allow_legacy, &destination, &mut progress)
            .await
            .map_err(|e| {
                format!("cannot decrypt s3://{bucket}/{key}: {e}; nothing was written to {}", destination.display())
            })?;
    progress.finish();
    println!(
        "download: s3://{bucket}/{key} to {} ({decrypted} bytes, {:?} {}, authenticated)",
        destination.display(),
        envelope.version,
        envelope.wrap.name()
    );
    Ok(())
}

async fn decrypt_body(
    mut body: ByteStream,
    envelope: &Envelope,
    data_key: &DataKey,
    allow_legacy: bool,
    destination: &Path,
    progress: &mut Progress,
) -> Result<u64, String> {
    let mut decryptor = ObjectDecryptor::new(envelope, data_key, allow_legacy).map_err(|e| e.to_string())?;
    let mut pending = PendingFile::create(destination).map_err(|e| e.to_string())?;
    let mut plain = Zeroizing::new(Vec::new());
    let mut written = 0u64;
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|e| format!("reading the object: {e}"))?;
        plain.clear();
        decryptor.update(&chunk, &mut plain).map_err(|e| e.to_string())?;
        pending.write_all(&plain).map_err(|e| e.to_string())?;
        written += plain.len() as u64;
        progress.add(chunk.len() as u64);
    }
    plain.clear();
    decryptor.finish(&mut plain).map_err(|e| e.to_string())?;
    pending.write_all(&plain).map_err(|e| e.to_string())?;
    written += plain.len() as u64;
    pending.commit().map_err(|e| e.to_string())?;
    Ok(written)
}

async fn ls(clients: &Clients, target: &str) -> Result<(), String> {
    let (bucket, prefix) = parse_s3_uri(target)?;
    let mut pages = clients.s3.list_objects_v2().bucket(&bucket).prefix(&prefix).into_paginator().send();
    let mut listed = Vec::new();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| sdk_error(&format!("ListObjectsV2 s3://{bucket}"), e))?;
        for object in page.contents() {
            if let Some(key) = object.key() {
                listed.push((key.to_owned(), object.size().unwrap_or(0), object.last_modified().cloned()));
            }
        }
    }
    let keys: std::collections::HashSet<&str> = listed.iter().map(|(k, _, _)| k.as_str()).collect();
    let shown: Vec<_> = listed
        .iter()
        .filter(|(key, _, _)| !key.strip_suffix(INSTRUCTION_SUFFIX).is_some_and(|base| keys.contains(base)))
        .collect();
    let bucket = bucket.as_str();
    let mut lines = futures::stream::iter(shown.into_iter().map(|(key, size, modified)| async move {
        let description = describe(clients, bucket, key, *size).await;
        (key, modified, description)
    }))
    .buffered(LIST_CONCURRENCY);
    let mut stdout = std::io::stdout().lock();
    while let Some((key, modified, (size, kind))) = lines.next().await {
        let modified = modified
            .as_ref()
            .and_then(|m| m.fmt(aws_sdk_s3::primitives::DateTimeFormat::DateTime).ok())
            .unwrap_or_default();
        let _ = writeln!(stdout, "{modified:<20}  {size:>14}  {kind:<28}  {key}");
    }
    Ok(())
}

/// Plaintext size (or `~ciphertext` when unknown) and a description of how
/// the object is encrypted.
async fn describe(clients: &Clients, bucket: &str, key: &str, size: i64) -> (String, String) {
    let head = match clients.s3.head_object().bucket(bucket).key(key).send().await {
        Ok(head) => head,
        Err(e) => return (size.to_string(), format!("? ({})", DisplayErrorContext(e))),
    };
    let metadata = bulwark_cse::envelope::metadata_from(head.metadata().into_iter().flatten());
    let located = Envelope::locate(&metadata);
    if located.as_ref().is_ok_and(|l| *l == Location::InstructionFile)
        && !metadata.contains_key(bulwark_cse::envelope::V3_CONTENT_CIPHER)
    {
        let instruction =
            clients.s3.head_object().bucket(bucket).key(format!("{key}{INSTRUCTION_SUFFIX}")).send().await;
        if instruction.is_err() {
            return (size.to_string(), "not encrypted".into());
        }
    }
    match fetch_envelope(clients, bucket, key, &metadata).await {
        Ok(envelope) => {
            let plaintext = match (envelope.plaintext_length, envelope.content.is_authenticated()) {
                (Some(length), _) => length.to_string(),
                (None, true) => (size - 16).max(0).to_string(),
                (None, false) => format!("~{size}"),
            };
            let mut kind = format!("{:?} {}", envelope.version, envelope.wrap.name());
            if envelope.from_instruction_file {
                kind.push_str(" (instr)");
            }
            if envelope.legacy_reason().is_some() {
                kind.push_str(" LEGACY");
            }
            (plaintext, kind)
        }
        Err(e) => (size.to_string(), format!("? ({e})")),
    }
}

async fn rm(clients: &Clients, target: &str) -> Result<(), String> {
    let (bucket, key) = parse_s3_uri(target)?;
    if key.is_empty() {
        return Err(format!("{target:?} names no object"));
    }
    for name in [key.clone(), format!("{key}{INSTRUCTION_SUFFIX}")] {
        clients
            .s3
            .delete_object()
            .bucket(&bucket)
            .key(&name)
            .send()
            .await
            .map_err(|e| sdk_error(&format!("DeleteObject s3://{bucket}/{name}"), e))?;
    }
    println!("delete: s3://{bucket}/{key}");
    Ok(())
}

/// A one-line progress bar on stderr, drawn only on a terminal.
struct Progress {
    label: &'static str,
    total: u64,
    done: u64,
    started: Instant,
    drawn: Option<Instant>,
    enabled: bool,
}

impl Progress {
    fn new(label: &'static str, total: u64, quiet: bool) -> Progress {
        let enabled = !quiet && std::io::stderr().is_terminal();
        Progress { label, total, done: 0, started: Instant::now(), drawn: None, enabled }
    }

    fn add(&mut self, bytes: u64) {
        self.done += bytes;
        if self.enabled && self.drawn.is_none_or(|at| at.elapsed() >= PROGRESS_INTERVAL) {
            self.draw();
        }
    }

    fn draw(&mut self) {
        const WIDTH: u64 = 30;
        let fraction = if self.total == 0 { 1.0 } else { (self.done as f64 / self.total as f64).min(1.0) };
        let filled = (fraction * WIDTH as f64) as u64;
        let seconds = self.started.elapsed().as_secs_f64().max(0.001);
        let rate = self.done as f64 / seconds / (1024.0 * 1024.0);
        let bar: String = (0..WIDTH).map(|i| if i < filled { '#' } else { '-' }).collect();
        eprint!(
            "\r{} [{bar}] {:>5.1}% {:.1}/{:.1} MiB {rate:.1} MiB/s",
            self.label,
            fraction * 100.0,
            self.done as f64 / (1024.0 * 1024.0),
            self.total as f64 / (1024.0 * 1024.0)
        );
        let _ = std::io::stderr().flush();
        self.drawn = Some(Instant::now());
    }

    fn finish(&mut self) {
        if self.enabled {
            self.done = self.done.max(self.total);
            self.draw();
            eprintln!();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn s3_addresses_split_into_bucket_and_key() {
        assert_eq!(parse_s3_uri("s3://b/k/x").expect("uri"), ("b".into(), "k/x".into()));
        assert_eq!(parse_s3_uri("s3://b").expect("uri"), ("b".into(), String::new()));
        assert!(parse_s3_uri("b/k").is_err());
        assert!(parse_s3_uri("s3:///k").is_err());
    }

    #[test]
    fn contexts_are_key_value_pairs() {
        let context = parse_context(&["a=1".into(), "b=x=y".into()]).expect("context");
        assert_eq!(context.get("b").map(String::as_str), Some("x=y"));
        assert!(parse_context(&["novalue".into()]).is_err());
    }
}
