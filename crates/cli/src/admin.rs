//! `bulwark admin …`: a SigV4-signed client of the admin API.

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant, SystemTime};

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{
    PayloadChecksumKind, PercentEncodingMode, SignableBody, SignableRequest, SignatureLocation, SigningSettings,
    UriPathNormalizationMode, sign,
};
use aws_sigv4::sign::v4;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;

/// Where and as whom to talk to the server.
pub struct Target {
    pub endpoint: String,
    pub access_key: String,
    pub secret_key: String,
    pub region: String,
    /// PEM file of the CA (or self-signed certificate) to trust for https
    /// endpoints; the system's roots when absent.
    pub ca_cert: Option<std::path::PathBuf>,
}

impl Target {
    /// Credentials from `BULWARK_ROOT_USER`/`BULWARK_ROOT_PASSWORD`, else
    /// `AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY`, else the generated file.
    pub fn from_env(endpoint: String, data: &std::path::Path) -> Result<Target, String> {
        let pair = |a: &str, b: &str| Some((std::env::var(a).ok()?, std::env::var(b).ok()?));
        let (access_key, secret_key) = pair("BULWARK_ROOT_USER", "BULWARK_ROOT_PASSWORD")
            .or_else(|| pair("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"))
            .or_else(|| {
                let text = std::fs::read_to_string(data.join("root-credentials")).ok()?;
                let mut lines = text.lines();
                Some((lines.next()?.trim().to_owned(), lines.next()?.trim().to_owned()))
            })
            .ok_or("no credentials: set BULWARK_ROOT_USER and BULWARK_ROOT_PASSWORD (or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY)")?;
        let region = std::env::var("AWS_DEFAULT_REGION").unwrap_or_else(|_| "us-east-1".into());
        let ca_cert = std::env::var_os("AWS_CA_BUNDLE").map(std::path::PathBuf::from);
        Ok(Target { endpoint: endpoint.trim_end_matches('/').to_owned(), access_key, secret_key, region, ca_cert })
    }

    async fn call(&self, method: &str, query: &str) -> Result<Value, String> {
        self.call_with_body(method, query, Vec::new()).await
    }

    pub async fn call_with_body(&self, method: &str, query: &str, body: Vec<u8>) -> Result<Value, String> {
        let url = format!("{}/?{query}", self.endpoint);
        let uri: http::Uri = url.parse().map_err(|e| format!("bad endpoint {url}: {e}"))?;
        let host = uri.authority().map(|a| a.to_string()).ok_or("endpoint has no host")?;
        let identity = Credentials::new(&self.access_key, &self.secret_key, None, None, "bulwark-cli").into();
        let mut settings = SigningSettings::default();
        settings.signature_location = SignatureLocation::Headers;
        settings.payload_checksum_kind = PayloadChecksumKind::XAmzSha256;
        settings.percent_encoding_mode = PercentEncodingMode::Single;
        settings.uri_path_normalization_mode = UriPathNormalizationMode::Disabled;
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region(&self.region)
            .name("s3")
            .time(SystemTime::now())
            .settings(settings)
            .build()
            .map_err(|e| e.to_string())?
            .into();
        let signable =
            SignableRequest::new(method, &url, std::iter::once(("host", host.as_str())), SignableBody::Bytes(&body))
                .map_err(|e| e.to_string())?;
        let (instructions, _) = sign(signable, &params).map_err(|e| e.to_string())?.into_parts();
        let mut request = http::Request::builder().method(method).uri(uri).header("host", &host);
        for (name, value) in instructions.headers() {
            request = request.header(name, value);
        }
        let request = request.body(Full::new(bytes::Bytes::from(body))).map_err(|e| e.to_string())?;
        let client = Client::builder(TokioExecutor::new()).build(self.connector()?);
        let response = client.request(request).await.map_err(|e| format!("cannot reach {}: {e}", self.endpoint))?;
        let status = response.status();
        let body = response.into_body().collect().await.map_err(|e| e.to_string())?.to_bytes();
        let text = String::from_utf8_lossy(&body).to_string();
        if !status.is_success() {
            let field = |name: &str| {
                let start = text.find(&format!("<{name}>"))? + name.len() + 2;
                let end = text[start..].find(&format!("</{name}>"))? + start;
                Some(text[start..end].to_owned())
            };
            return Err(match (field("Code"), field("Message")) {
                (Some(code), Some(message)) => format!("{code}: {message} ({status})"),
                (Some(code), None) => format!("{code} ({status})"),
                _ => format!("server answered {status}: {text}"),
            });
        }
        serde_json::from_str(&text).map_err(|e| format!("unexpected answer: {e}: {text}"))
    }
}

impl Target {
    /// HTTP or HTTPS (rustls on aws-lc-rs), trusting `ca_cert` or the system roots.
    fn connector(
        &self,
    ) -> Result<hyper_rustls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector>, String> {
        use rustls::pki_types::CertificateDer;
        use rustls::pki_types::pem::PemObject;
        let provider = std::sync::Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let builder = hyper_rustls::HttpsConnectorBuilder::new();
        let builder = match &self.ca_cert {
            Some(path) => {
                let mut roots = rustls::RootCertStore::empty();
                for cert in CertificateDer::pem_file_iter(path).map_err(|e| format!("{}: {e}", path.display()))? {
                    roots
                        .add(cert.map_err(|e| format!("{}: {e}", path.display()))?)
                        .map_err(|e| format!("{}: {e}", path.display()))?;
                }
                let config = rustls::ClientConfig::builder_with_provider(provider)
                    .with_safe_default_protocol_versions()
                    .map_err(|e| e.to_string())?
                    .with_root_certificates(roots)
                    .with_no_client_auth();
                builder.with_tls_config(config)
            }
            None => builder.with_provider_and_native_roots(provider).map_err(|e| format!("system roots: {e}"))?,
        };
        Ok(builder.https_or_http().enable_http1().build())
    }
}

pub async fn status(target: &Target, as_json: bool) -> Result<(), String> {
    let status = target.call("GET", "bulwark-admin=status").await?;
    if as_json {
        println!("{}", serde_json::to_string_pretty(&status).unwrap_or_default());
        return Ok(());
    }
    print_status(&status);
    Ok(())
}

fn print_status(status: &Value) {
    println!("Drives:");
    for drive in status["drives"].as_array().into_iter().flatten() {
        println!(
            "  set {} pos {}  {:<8} {:<14} {}",
            drive["set"],
            drive["position"],
            if drive["online"].as_bool() == Some(true) { "online" } else { "OFFLINE" },
            drive["facility"].as_str().unwrap_or_default(),
            drive["label"].as_str().unwrap_or_default()
        );
    }
    let below = status["heal_queue"].as_u64().unwrap_or(0) + status["heal_deferred"].as_u64().unwrap_or(0);
    println!(
        "Objects below full redundancy: {below} (queued {}, waiting for drives {})",
        status["heal_queue"], status["heal_deferred"]
    );
    println!(
        "Healed: {} versions, {} shards rebuilt, {} records restored",
        status["healed"], status["shards_rebuilt"], status["records_restored"]
    );
    println!("Orphan blobs removed: {}", status["orphan_blobs_removed"]);
    let unrepairable = status["unrepairable"].as_array().cloned().unwrap_or_default();
    println!("Unrepairable: {}", unrepairable.len());
    for name in unrepairable {
        println!("  {}", name.as_str().unwrap_or_default());
    }
    for (label, key) in [("Last scan", "last_scan"), ("Last scrub", "last_scrub")] {
        match status[key].as_object() {
            Some(pass) => println!(
                "{label}: {} versions, {} bytes checked, {} problems",
                pass["versions_checked"], pass["bytes_checked"], pass["problems_found"]
            ),
            None => println!("{label}: none yet"),
        }
    }
}

/// Runs a heal or scrub pass; with `wait`, shows progress until the heal
/// queue has drained and prints the report.
pub async fn run_pass(target: &Target, command: &str, bucket: Option<&str>, wait: bool) -> Result<(), String> {
    let mut query = format!("bulwark-admin={command}");
    if let Some(bucket) = bucket {
        query.push_str(&format!("&bucket={bucket}"));
    }
    if !wait {
        target.call("POST", &query).await?;
        println!("{command} started; see `bulwark admin status`");
        return Ok(());
    }
    query.push_str("&wait=true");
    let started = Instant::now();
    let call = target.call("POST", &query);
    tokio::pin!(call);
    let tty = std::io::stdout().is_terminal();
    let mut first_queue: Option<u64> = None;
    let result = loop {
        tokio::select! {
            result = &mut call => break result?,
            () = tokio::time::sleep(Duration::from_millis(500)), if tty => {
                if let Ok(status) = target.call("GET", "bulwark-admin=status").await {
                    let pass = &status["current_pass"];
                    let queue = status["heal_queue"].as_u64().unwrap_or(0);
                    let first = *first_queue.get_or_insert(queue.max(1));
                    let done = first.saturating_sub(queue);
                    let elapsed = started.elapsed().as_secs_f64();
                    let eta = if done > 0 { format!("{:.0}s", elapsed / done as f64 * queue as f64) } else { "?".into() };
                    print!(
                        "\r{command}: {} versions, {} MiB checked, {} problems | heal queue {queue} | ETA {eta}   ",
                        pass["versions_checked"],
                        pass["bytes_checked"].as_u64().unwrap_or(0) / (1024 * 1024),
                        pass["problems_found"]
                    );
                    let _ = std::io::stdout().flush();
                }
            }
        }
    };
    if tty {
        println!();
    }
    let pass = &result["pass"];
    let status = &result["status"];
    println!("{command} report ({:.1}s):", started.elapsed().as_secs_f64());
    println!("  versions checked:   {}", pass["versions_checked"]);
    println!("  bytes checked:      {}", pass["bytes_checked"]);
    println!("  problems found:     {}", pass["problems_found"]);
    println!("  healed (total):     {}", status["healed"]);
    println!("  shards rebuilt:     {}", status["shards_rebuilt"]);
    let unrepairable = status["unrepairable"].as_array().map_or(0, Vec::len);
    println!("  unrepairable:       {unrepairable}");
    println!("  still queued:       {}", status["heal_queue"]);
    println!("  waiting for drives: {}", status["heal_deferred"]);
    if result["drained"].as_bool() != Some(true) {
        return Err("timed out waiting for the heal queue to drain".into());
    }
    if unrepairable > 0 {
        return Err(format!("{unrepairable} object versions are unrepairable (see `bulwark admin status`)"));
    }
    Ok(())
}

/// Starts (or resumes) a rewrap run and follows it to the end, printing
/// progress; the report counts versions rewrapped, already current, failed.
pub async fn rewrap(target: &Target, bucket: Option<&str>, as_json: bool) -> Result<(), String> {
    let mut query = "bulwark-admin=rewrap".to_owned();
    if let Some(bucket) = bucket {
        query.push_str(&format!(
            "&bucket={}",
            percent_encoding::utf8_percent_encode(bucket, percent_encoding::NON_ALPHANUMERIC)
        ));
    }
    let started = target.call("POST", &query).await?;
    if let Some(at) = started["resumed_after"].as_str() {
        eprintln!("resuming an interrupted run after {at}");
    }
    let tty = std::io::stdout().is_terminal() && !as_json;
    let progress = loop {
        let progress = target.call("GET", "bulwark-admin=rewrap-status").await?;
        if progress["running"].as_bool() != Some(true) {
            break progress;
        }
        if tty {
            print!(
                "\rrewrap {}: {} versions scanned, {} rewrapped, {} current, {} failed   ",
                progress["bucket"].as_str().unwrap_or("-"),
                progress["scanned"],
                progress["rewrapped"],
                progress["already_current"],
                progress["failed"]
            );
            let _ = std::io::stdout().flush();
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    if tty {
        println!();
    }
    if as_json {
        println!("{}", serde_json::to_string_pretty(&progress).unwrap_or_default());
    } else {
        println!("rewrap report:");
        println!("  versions scanned:  {}", progress["scanned"]);
        println!("  rewrapped:         {}", progress["rewrapped"]);
        println!("  already current:   {}", progress["already_current"]);
        println!("  failed:            {}", progress["failed"]);
    }
    if let Some(error) = progress["error"].as_str() {
        return Err(format!("rewrap stopped: {error} (run it again to resume)"));
    }
    match progress["failed"].as_u64() {
        Some(n) if n > 0 => Err(format!("{n} versions could not be rewrapped (see the server log)")),
        _ => Ok(()),
    }
}

/// Rotates the SSE-S3 master key now.
pub async fn rotate_sse_s3(target: &Target) -> Result<(), String> {
    target.call("POST", "bulwark-admin=rotate-sse-s3").await?;
    println!("SSE-S3 master key rotated; objects written before stay readable (`bulwark admin rewrap` re-seals them)");
    Ok(())
}
