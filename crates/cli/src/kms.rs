//! `bulwark kms audit …`: checks and lists the KMS audit log offline, from
//! the state directory, with the root key loaded the way the server loads it.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Subcommand};

/// The log's file name in the state directory (as the server writes it).
const AUDIT_LOG_FILE: &str = "kms-audit.log";

#[derive(Subcommand)]
pub enum KmsCommand {
    /// The hash-chained, signed audit log of every KMS operation.
    Audit {
        #[command(flatten)]
        location: LogLocation,
        #[command(subcommand)]
        command: AuditCommand,
    },
}

#[derive(Args)]
pub struct LogLocation {
    /// State directory of the server (the data directory of the embedded default).
    #[arg(long, default_value = "data", global = true)]
    data: PathBuf,
    /// The audit log (default: <data>/kms-audit.log).
    #[arg(long, global = true)]
    log: Option<PathBuf>,
}

#[derive(Subcommand)]
pub enum AuditCommand {
    /// Prove the chain end to end; on failure name the first record altered,
    /// removed or reordered (exit code 1).
    Verify,
    /// List records.
    Show {
        /// Only records about this key (key id or key ARN).
        #[arg(long)]
        key: Option<String>,
        /// Only records at or after this time (RFC 3339, e.g. 2026-05-01T00:00:00Z).
        #[arg(long)]
        since: Option<String>,
        /// One JSON object per line, as stored.
        #[arg(long)]
        json: bool,
    },
}

pub fn run(command: KmsCommand) -> ExitCode {
    let KmsCommand::Audit { location, command } = command;
    let log = location.log.clone().unwrap_or_else(|| location.data.join(AUDIT_LOG_FILE));
    let result = match command {
        AuditCommand::Verify => verify(&location.data, &log),
        AuditCommand::Show { key, since, json } => show(&log, key.as_deref(), since.as_deref(), json),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The root key, as the server finds it, but never a freshly generated one:
/// a new key would prove nothing about the log.
fn root_key(data: &Path) -> Result<bulwark_crypto::Key32, String> {
    use bulwark_server::root_key::{ENV_FILE, ENV_KEY};
    let from_env = [ENV_KEY, ENV_FILE].iter().any(|name| std::env::var_os(name).is_some_and(|v| !v.is_empty()));
    if !from_env && !data.join("kms-root.key").exists() {
        return Err(format!(
            "no root key: set {ENV_KEY} or {ENV_FILE}, or point --data at the state directory holding kms-root.key"
        ));
    }
    bulwark_server::root_key::load(data).map(|(key, _)| key).map_err(|e| format!("root key: {e}"))
}

fn verify(data: &Path, log: &Path) -> Result<ExitCode, String> {
    let key = root_key(data)?;
    match bulwark_kms::audit::verify(log, &key) {
        Ok(report) => {
            println!(
                "{}: {} records verified; the chain ends at record {} (hash {}).",
                log.display(),
                report.records,
                report.head.seq,
                report.head.hash
            );
            println!(
                "Keep that hash elsewhere: a later cut of the log's tail shows as a chain that no longer reaches it."
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(bulwark_kms::audit::VerifyError::Fault(fault)) => {
            println!("{}: VERIFICATION FAILED: {fault}", log.display());
            eprintln!("error: the audit log was tampered with or damaged: {fault}");
            Ok(ExitCode::FAILURE)
        }
        Err(e) => Err(e.to_string()),
    }
}

fn show(log: &Path, key: Option<&str>, since: Option<&str>, json: bool) -> Result<ExitCode, String> {
    let (records, unreadable) = bulwark_kms::audit::read_records(log).map_err(|e| format!("{}: {e}", log.display()))?;
    for line in unreadable {
        eprintln!("warning: line {line} of {} is not a record (run `bulwark kms audit verify`)", log.display());
    }
    for record in bulwark_kms::audit::select(records, key, since)? {
        if json {
            println!("{}", serde_json::to_string(&record).map_err(|e| e.to_string())?);
            continue;
        }
        let key = match (&record.key_id, record.key_version) {
            (Some(id), Some(version)) => format!("{id}#{version}"),
            (Some(id), None) => id.clone(),
            _ => "-".to_owned(),
        };
        let context = if record.context.is_empty() {
            String::new()
        } else {
            format!(" context={}", serde_json::to_string(&record.context).map_err(|e| e.to_string())?)
        };
        println!(
            "{:>6} {} {} {} {} {} {} request={}{context}",
            record.seq,
            record.time,
            record.principal,
            record.source,
            record.operation,
            key,
            record.outcome,
            record.request_id
        );
    }
    Ok(ExitCode::SUCCESS)
}
