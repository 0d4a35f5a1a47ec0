//! `bulwark`: the server and its tools.
#![forbid(unsafe_code)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use bulwark_server::credentials::Source;
use bulwark_server::{Config, Credentials, Server};
use clap::{Parser, Subcommand};

mod admin;
mod cse;
mod iam;
mod kms;

#[derive(Parser)]
#[command(name = "bulwark", version, about = "Bulwark: an S3-compatible object store that keeps your data")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the S3 server.
    Server {
        /// Data directory of the embedded default (six drives in three facilities).
        #[arg(long, default_value = "data")]
        data: PathBuf,
        /// Address to listen on.
        #[arg(long)]
        address: Option<SocketAddr>,
        /// TOML file listing drives, facilities and the erasure geometry.
        #[arg(long)]
        config: Option<PathBuf>,
        /// PEM certificate chain: serve HTTPS (HTTP/1.1 and HTTP/2). SIGHUP reloads it.
        #[arg(long, requires = "tls_key")]
        tls_cert: Option<PathBuf>,
        /// PEM private key for --tls-cert.
        #[arg(long, requires = "tls_cert")]
        tls_key: Option<PathBuf>,
        /// Domain for virtual-hosted-style requests (`<bucket>.<domain>`), repeatable
        /// (or comma-separated in BULWARK_DOMAINS); replaces the configured ones
        /// (default: localhost).
        #[arg(long = "domain", env = "BULWARK_DOMAINS", value_delimiter = ',')]
        domains: Vec<String>,
    },
    /// Certificates for development.
    Cert {
        #[command(subcommand)]
        command: CertCommand,
    },
    /// Operate a running server (root credentials required).
    Admin {
        /// The server's endpoint.
        #[arg(long, default_value = "http://127.0.0.1:9000", global = true)]
        endpoint: String,
        /// Data directory, to find generated root credentials.
        #[arg(long, default_value = "data", global = true)]
        data: PathBuf,
        /// CA certificate (PEM) to trust for an https endpoint (default: $AWS_CA_BUNDLE, else system roots).
        #[arg(long, global = true)]
        ca_cert: Option<PathBuf>,
        /// Print the server's JSON answer instead of a summary.
        #[arg(long, global = true)]
        json: bool,
        #[command(subcommand)]
        command: AdminCommand,
    },
    /// Client-side encryption: encrypt before upload, decrypt after download, in the
    /// AWS S3 Encryption Client formats (put, get, ls, rm).
    Cse(cse::CseArgs),
    /// The built-in KMS, offline: verify and list its audit log.
    Kms {
        #[command(subcommand)]
        command: kms::KmsCommand,
    },
}

#[derive(Subcommand)]
enum CertCommand {
    /// Write a self-signed certificate (cert.pem) and key (key.pem, mode 0600).
    SelfSigned {
        /// Directory to write into.
        #[arg(long)]
        out: PathBuf,
        /// DNS names and IP addresses the certificate is valid for.
        #[arg(long = "name", default_values = ["localhost", "127.0.0.1", "::1"])]
        names: Vec<String>,
    },
}

#[derive(Subcommand)]
enum AdminCommand {
    /// Drives, facilities, objects below full redundancy, heal queue, last scrub.
    Status,
    /// Scan for objects below full redundancy and heal them.
    Heal {
        #[arg(long)]
        bucket: Option<String>,
        /// Wait until every found object is healed; print the report.
        #[arg(long)]
        wait: bool,
    },
    /// Read and verify every shard now; rebuild what is corrupt.
    Scrub {
        #[arg(long)]
        bucket: Option<String>,
        #[arg(long)]
        wait: bool,
    },
    /// Rotate the SSE-S3 master key now (old objects stay readable; `rewrap` moves them forward).
    RotateSseS3,
    /// Re-seal SSE-S3/SSE-KMS data keys under the newest KMS key versions
    /// (object data is not rewritten); resumes an interrupted run.
    Rewrap {
        #[arg(long)]
        bucket: Option<String>,
    },
    /// Users: create, list, info, delete, enable, disable.
    User {
        #[command(subcommand)]
        command: iam::UserCommand,
    },
    /// Access keys: create (secret shown once), list, enable, disable, delete.
    Key {
        #[command(subcommand)]
        command: iam::KeyCommand,
    },
    /// Groups and their members.
    Group {
        #[command(subcommand)]
        command: iam::GroupCommand,
    },
    /// Managed identity policies: put, get, list, delete, attach, detach.
    Policy {
        #[command(subcommand)]
        command: iam::PolicyCommand,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Colours only for a terminal: a log file or journal gets plain text.
    let colours = std::io::IsTerminal::is_terminal(&std::io::stderr());
    tracing_subscriber::fmt().with_env_filter(log_filter()).with_writer(std::io::stderr).with_ansi(colours).init();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match cli.command {
        Command::Server { data, address, config, tls_cert, tls_key, domains } => {
            let tls = tls_cert.zip(tls_key).map(|(cert, key)| bulwark_server::tls::TlsFiles { cert, key });
            runtime.block_on(server(data, address, config, tls, domains))
        }
        Command::Cert { command: CertCommand::SelfSigned { out, names } } => {
            match bulwark_server::tls::write_self_signed(&out, &names) {
                Ok((cert, key)) => {
                    println!("Wrote {} and {} (valid for {})", cert.display(), key.display(), names.join(", "));
                    println!(
                        "Start the server with: bulwark server --tls-cert {} --tls-key {}",
                        cert.display(),
                        key.display()
                    );
                    println!("Clients must trust {} (e.g. AWS_CA_BUNDLE={}).", cert.display(), cert.display());
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("error: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Admin { endpoint, data, ca_cert, json, command } => {
            runtime.block_on(admin_command(endpoint, data, ca_cert, json, command))
        }
        Command::Cse(args) => runtime.block_on(cse::run(args)),
        Command::Kms { command } => kms::run(command),
    }
}

async fn admin_command(
    endpoint: String,
    data: PathBuf,
    ca_cert: Option<PathBuf>,
    json: bool,
    command: AdminCommand,
) -> ExitCode {
    let target = match admin::Target::from_env(endpoint, &data) {
        Ok(mut target) => {
            if ca_cert.is_some() {
                target.ca_cert = ca_cert;
            }
            target
        }
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = match command {
        AdminCommand::Status => admin::status(&target, json).await,
        AdminCommand::Heal { bucket, wait } => admin::run_pass(&target, "heal", bucket.as_deref(), wait).await,
        AdminCommand::Scrub { bucket, wait } => admin::run_pass(&target, "scrub", bucket.as_deref(), wait).await,
        AdminCommand::RotateSseS3 => admin::rotate_sse_s3(&target).await,
        AdminCommand::Rewrap { bucket } => admin::rewrap(&target, bucket.as_deref(), json).await,
        AdminCommand::User { command } => iam::user(&target, command, json).await,
        AdminCommand::Key { command } => iam::key(&target, command, json).await,
        AdminCommand::Group { command } => iam::group(&target, command, json).await,
        AdminCommand::Policy { command } => iam::policy(&target, command, json).await,
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn server(
    data: PathBuf,
    address: Option<SocketAddr>,
    config_file: Option<PathBuf>,
    tls: Option<bulwark_server::tls::TlsFiles>,
    domains: Vec<String>,
) -> ExitCode {
    let mut config = match &config_file {
        Some(path) => match Config::from_file(path) {
            Ok(config) => config,
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::FAILURE;
            }
        },
        None => Config::embedded(&data),
    };
    if let Some(address) = address {
        config.address = address;
    }
    if tls.is_some() {
        config.tls = tls;
    }
    if !domains.is_empty() {
        config.domains = domains;
        if let Err(e) = config.validate() {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    }
    let (credentials, source) = match Credentials::load(&config.state_dir) {
        Ok(loaded) => loaded,
        Err(e) => {
            eprintln!("error: root credentials: {e}");
            return ExitCode::FAILURE;
        }
    };
    let (root_key, key_source) = match bulwark_server::root_key::load(&config.state_dir) {
        Ok(loaded) => loaded,
        Err(e) => {
            eprintln!("error: root key: {e}");
            return ExitCode::FAILURE;
        }
    };
    if let bulwark_server::root_key::Source::Generated(path) = &key_source {
        eprintln!(
            "warning: generated the root key into {} (mode 0600). It seals every stored secret; keep it apart from \
             the data drives in production (set {} or {}).",
            path.display(),
            bulwark_server::root_key::ENV_FILE,
            bulwark_server::root_key::ENV_KEY
        );
    }
    let server = match Server::start(&config, credentials.clone(), root_key).await {
        Ok(server) => server,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let address = server.local_addr().unwrap_or(config.address);
    match source {
        Source::Generated(path) => {
            // Printed this once; afterwards only the 0600 file holds it.
            println!("Root credentials were generated and saved to {} (mode 0600):", path.display());
            println!("  AWS_ACCESS_KEY_ID={}", credentials.access_key);
            println!("  AWS_SECRET_ACCESS_KEY={}", credentials.secret_key.expose());
        }
        Source::File(path) => println!("Root credentials: {} (access key {})", path.display(), credentials.access_key),
        Source::Environment => {
            println!("Root credentials: from the environment (access key {})", credentials.access_key)
        }
    }
    let scheme = if server.is_tls() { "https" } else { "http" };
    println!("Bulwark S3 endpoint: {scheme}://{address}  (region {})", config.region);
    tracing::info!(%address, drives = config.drives.len(), "listening");
    server.run(shutdown_signal()).await;
    ExitCode::SUCCESS
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(term) => term,
            Err(_) => {
                let _ = ctrl_c.await;
                return;
            }
        };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

/// `BULWARK_LOG` (default `info`), with `s3s` held at `info` whatever it asks:
/// at `debug` s3s logs whole requests, SSE-C keys and Authorization headers
/// included, and the signature it expected when one does not match.
fn log_filter() -> tracing_subscriber::EnvFilter {
    log_filter_from(std::env::var("BULWARK_LOG").ok().as_deref())
}

fn log_filter_from(asked: Option<&str>) -> tracing_subscriber::EnvFilter {
    let filter =
        asked.and_then(|asked| tracing_subscriber::EnvFilter::try_new(asked).ok()).unwrap_or_else(|| "info".into());
    filter.add_directive("s3s=info".parse().expect("a constant directive parses"))
}

#[cfg(test)]
mod log_tests {
    #[test]
    fn s3s_stays_at_info_whatever_the_log_filter_asks() {
        for asked in [None, Some("debug"), Some("trace"), Some("s3s=trace"), Some("bulwark=debug,s3s=debug")] {
            let filter = super::log_filter_from(asked).to_string();
            assert!(filter.contains("s3s=info"), "{asked:?} gives {filter}");
            assert!(!filter.contains("s3s=debug") && !filter.contains("s3s=trace"), "{asked:?} gives {filter}");
        }
    }
}
