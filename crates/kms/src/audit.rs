//! The KMS audit log: one JSON line per KMS operation, hash-chained and
//! signed, appended and fsynced before the operation is answered
//! (`docs/design/kms-format.md`, "Audit log").
//!
//! Each record carries `seq` (1, 2, …), `prev_hash` (the previous record's
//! `hash`; 64 zeros for the first), `hash` = SHA-256 over a domain string and
//! the record's canonical JSON without `hash` and `sig`, and `sig` =
//! HMAC-SHA256 of `hash` under a key derived from the root key. Changing,
//! removing, inserting or reordering records therefore breaks the chain at
//! the first record touched, and nobody without the root key can re-chain
//! the rest. [`verify`] walks the file and names that record.
//!
//! Appends go through one writer thread that takes every record waiting at
//! that moment (at most [`AUDIT_BATCH_MAX`]), writes them with one `write`
//! and one `fsync`, and only then answers each caller: no operation is
//! answered before its record is durable. A failed write is cut off the file
//! again and fails every operation of the batch.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use bulwark_crypto::Key32;
use serde::{Deserialize, Serialize};

/// Domain separation for record hashes.
const HASH_DOMAIN: &[u8] = b"bulwark kms audit v1\0";
/// `prev_hash` of the first record.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";
/// Records written with one fsync, at most.
pub const AUDIT_BATCH_MAX: usize = 256;
/// Records waiting for the writer, at most (callers wait beyond that).
const AUDIT_QUEUE_MAX: usize = 4096;
/// How much of the file's end is read to find the last record on start.
const TAIL_BYTES_MAX: u64 = 256 * 1024;

const _: () = assert!(AUDIT_BATCH_MAX <= AUDIT_QUEUE_MAX);

/// What an operation reports; the writer adds the chain fields.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditEntry {
    /// `root`, a user ARN, `anonymous`, or `service:<name>` for uses the
    /// server makes on its own behalf (SSE-S3, rotation, deletion).
    pub principal: String,
    /// `api`, `sse-kms`, `sse-s3`, `rewrap` or `background`.
    pub source: String,
    /// The AWS operation name (`Decrypt`, `CreateKey`, …).
    pub operation: String,
    pub key_id: Option<String>,
    pub key_version: Option<u32>,
    /// ReEncrypt and rewrap: the key the result is sealed under.
    pub target_key_id: Option<String>,
    pub target_key_version: Option<u32>,
    /// The encryption context (not secret; AWS logs it too).
    pub context: BTreeMap<String, String>,
    /// `ok` or the AWS exception name.
    pub outcome: String,
    pub request_id: String,
}

/// One line of the log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditRecord {
    pub seq: u64,
    /// RFC 3339, UTC, milliseconds.
    pub time: String,
    pub principal: String,
    pub source: String,
    pub operation: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_version: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_key_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_key_version: Option<u32>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub context: BTreeMap<String, String>,
    pub outcome: String,
    pub request_id: String,
    pub prev_hash: String,
    pub hash: String,
    pub sig: String,
}

/// The fields the hash covers, in a fixed order.
#[derive(Serialize)]
struct Canonical<'a> {
    seq: u64,
    time: &'a str,
    principal: &'a str,
    source: &'a str,
    operation: &'a str,
    key_id: &'a Option<String>,
    key_version: &'a Option<u32>,
    target_key_id: &'a Option<String>,
    target_key_version: &'a Option<u32>,
    context: &'a BTreeMap<String, String>,
    outcome: &'a str,
    request_id: &'a str,
    prev_hash: &'a str,
}

impl AuditRecord {
    /// SHA-256 over the domain and the canonical JSON of every field but
    /// `hash` and `sig`. Serialising a struct of strings, integers and a
    /// sorted map is deterministic, so a verifier recomputes the same bytes.
    pub fn compute_hash(&self) -> [u8; 32] {
        let canonical = Canonical {
            seq: self.seq,
            time: &self.time,
            principal: &self.principal,
            source: &self.source,
            operation: &self.operation,
            key_id: &self.key_id,
            key_version: &self.key_version,
            target_key_id: &self.target_key_id,
            target_key_version: &self.target_key_version,
            context: &self.context,
            outcome: &self.outcome,
            request_id: &self.request_id,
            prev_hash: &self.prev_hash,
        };
        // Serialising this struct cannot fail: no maps with non-string keys, no I/O.
        let json = serde_json::to_vec(&canonical).unwrap_or_default();
        bulwark_crypto::sha256(&[HASH_DOMAIN, &json].concat())
    }

    fn seal(entry: AuditEntry, seq: u64, time: String, prev_hash: String, signing: &Key32) -> AuditRecord {
        let mut record = AuditRecord {
            seq,
            time,
            principal: entry.principal,
            source: entry.source,
            operation: entry.operation,
            key_id: entry.key_id,
            key_version: entry.key_version,
            target_key_id: entry.target_key_id,
            target_key_version: entry.target_key_version,
            context: entry.context,
            outcome: entry.outcome,
            request_id: entry.request_id,
            prev_hash,
            hash: String::new(),
            sig: String::new(),
        };
        let hash = record.compute_hash();
        record.hash = hex::encode(hash);
        record.sig = hex::encode(bulwark_crypto::hmac_sha256(signing, &hash));
        record
    }
}

/// The key that signs record hashes.
pub fn signing_key(root_key: &Key32) -> Key32 {
    bulwark_crypto::derive_key(root_key, b"kms/audit")
}

#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error("audit log {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("audit log {path}: {message}")]
    Corrupt { path: PathBuf, message: String },
    #[error("the audit log writer has stopped")]
    Stopped,
}

fn io_error(path: &Path) -> impl Fn(std::io::Error) -> AuditError + '_ {
    move |source| AuditError::Io { path: path.to_path_buf(), source }
}

fn now_rfc3339(now_ms: i64) -> String {
    let nanos = i128::from(now_ms) * 1_000_000;
    let time = time::OffsetDateTime::from_unix_timestamp_nanos(nanos).unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    let format =
        time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z");
    time.format(&format).unwrap_or_default()
}

/// Where the chain stands: the last record's sequence number and hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainHead {
    pub seq: u64,
    pub hash: String,
}

impl ChainHead {
    fn genesis() -> ChainHead {
        ChainHead { seq: 0, hash: GENESIS_HASH.to_owned() }
    }
}

/// Opens (creating) the log, cuts off a partial last line that a crash in
/// the middle of an append left behind (it was never acknowledged), and
/// returns the file and the chain head to continue from. A last record that
/// does not parse is refused: that is damage, not a crash.
fn open_for_append(path: &Path, signing: &Key32) -> Result<(File, ChainHead), AuditError> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(io_error(dir))?;
    }
    let mut file = OpenOptions::new().read(true).append(true).create(true).open(path).map_err(io_error(path))?;
    let len = file.metadata().map_err(io_error(path))?.len();
    let start = len.saturating_sub(TAIL_BYTES_MAX);
    file.seek(SeekFrom::Start(start)).map_err(io_error(path))?;
    let mut tail = Vec::new();
    file.read_to_end(&mut tail).map_err(io_error(path))?;
    let complete = tail.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
    if complete < tail.len() {
        if start > 0 && complete == 0 {
            return Err(AuditError::Corrupt { path: path.into(), message: "the last record is too long".into() });
        }
        tracing::warn!(path = %path.display(), bytes = tail.len() - complete, "audit log: dropping a partial last record left by a crash");
        file.set_len(start + complete as u64).map_err(io_error(path))?;
        file.sync_all().map_err(io_error(path))?;
    }
    let body = &tail[..complete];
    let last_line = body[..body.len().saturating_sub(1)].rsplit(|&b| b == b'\n').next().unwrap_or_default();
    if last_line.is_empty() {
        if start == 0 && complete == 0 {
            return Ok((file, ChainHead::genesis()));
        }
        return Err(AuditError::Corrupt { path: path.into(), message: "the log ends in an empty line".into() });
    }
    let record: AuditRecord = serde_json::from_slice(last_line).map_err(|e| AuditError::Corrupt {
        path: path.into(),
        message: format!("the last record does not parse ({e}); run `bulwark kms audit verify`"),
    })?;
    let signed = hex::decode(&record.sig)
        .is_ok_and(|sig| bulwark_crypto::verify_hmac_sha256(signing, &record.compute_hash(), &sig));
    if !signed || hex::encode(record.compute_hash()) != record.hash {
        // Keep chaining from what is there; `verify` names the damage.
        tracing::error!(path = %path.display(), seq = record.seq, "audit log: the last record does not verify; run `bulwark kms audit verify`");
    }
    Ok((file, ChainHead { seq: record.seq, hash: record.hash }))
}

type Reply = tokio::sync::oneshot::Sender<Result<(), String>>;

/// The handle operations append through.
pub(crate) struct AuditLog {
    sender: tokio::sync::mpsc::Sender<(AuditEntry, Reply)>,
}

impl AuditLog {
    /// Opens the log and starts its writer thread, which ends when the
    /// handle is dropped.
    pub(crate) fn open(
        path: &Path,
        signing: Key32,
        clock: std::sync::Arc<dyn crate::Clock>,
    ) -> Result<AuditLog, AuditError> {
        let (file, head) = open_for_append(path, &signing)?;
        let (sender, receiver) = tokio::sync::mpsc::channel(AUDIT_QUEUE_MAX);
        let writer = Writer { path: path.to_path_buf(), file, head, signing, clock, failed: false };
        std::thread::Builder::new()
            .name("kms-audit".into())
            .spawn(move || writer.run(receiver))
            .map_err(io_error(path))?;
        Ok(AuditLog { sender })
    }

    /// Appends a record; returns once it is on stable storage.
    pub(crate) async fn append(&self, entry: AuditEntry) -> Result<(), String> {
        let (reply, done) = tokio::sync::oneshot::channel();
        self.sender.send((entry, reply)).await.map_err(|_| AuditError::Stopped.to_string())?;
        done.await.map_err(|_| AuditError::Stopped.to_string())?
    }
}

struct Writer {
    path: PathBuf,
    file: File,
    head: ChainHead,
    signing: Key32,
    clock: std::sync::Arc<dyn crate::Clock>,
    /// A write failed and could not be undone: the file's end is unknown,
    /// so every later append fails rather than break the chain.
    failed: bool,
}

impl Writer {
    fn run(mut self, mut receiver: tokio::sync::mpsc::Receiver<(AuditEntry, Reply)>) {
        while let Some(first) = receiver.blocking_recv() {
            let mut batch = vec![first];
            while batch.len() < AUDIT_BATCH_MAX {
                match receiver.try_recv() {
                    Ok(next) => batch.push(next),
                    Err(_) => break,
                }
            }
            let (entries, replies): (Vec<_>, Vec<_>) = batch.into_iter().unzip();
            let result = self.write(entries);
            for reply in replies {
                // A caller that went away no longer needs the answer.
                let _ = reply.send(result.clone());
            }
        }
    }

    fn write(&mut self, entries: Vec<AuditEntry>) -> Result<(), String> {
        if self.failed {
            return Err("an earlier audit write failed".into());
        }
        let mut head = self.head.clone();
        let mut buffer = Vec::new();
        for entry in entries {
            let time = now_rfc3339(self.clock.now_ms());
            let record = AuditRecord::seal(entry, head.seq + 1, time, head.hash.clone(), &self.signing);
            serde_json::to_writer(&mut buffer, &record).map_err(|e| e.to_string())?;
            buffer.push(b'\n');
            head = ChainHead { seq: record.seq, hash: record.hash };
        }
        let before = self.file.metadata().map_err(|e| e.to_string())?.len();
        let written = self.file.write_all(&buffer).and_then(|()| self.file.sync_data());
        match written {
            Ok(()) => {
                self.head = head;
                Ok(())
            }
            Err(e) => {
                tracing::error!(path = %self.path.display(), error = %e, "audit log write failed");
                if self.file.set_len(before).and_then(|()| self.file.sync_all()).is_err() {
                    self.failed = true;
                }
                Err(format!("audit log write failed: {e}"))
            }
        }
    }
}

/// What a successful verification saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyReport {
    pub records: u64,
    /// The chain head: anchor it elsewhere to detect a later cut of the tail.
    pub head: ChainHead,
}

/// The first place the chain breaks. `line` is 1-based.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuditFault {
    #[error("line {line}: the record does not parse (altered or truncated)")]
    Malformed { line: u64 },
    #[error("line {line}: the file ends in the middle of a record (truncated)")]
    Truncated { line: u64 },
    #[error("record {seq} (line {line}) was altered: its contents do not match its hash")]
    Altered { line: u64, seq: u64 },
    #[error("record {seq} (line {line}) was altered: its signature is not valid")]
    BadSignature { line: u64, seq: u64 },
    #[error("record {expected} was removed: line {line} holds record {found}")]
    Removed { line: u64, expected: u64, found: u64 },
    #[error("record {expected} was reordered: line {line} holds record {found}, record {expected} comes later")]
    Reordered { line: u64, expected: u64, found: u64 },
    #[error("record {seq} (line {line}) does not follow record {previous}: inserted or duplicated")]
    OutOfSequence { line: u64, seq: u64, previous: u64 },
    #[error("record {seq} (line {line}) does not chain to the record before it")]
    BrokenChain { line: u64, seq: u64 },
}

#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error(transparent)]
    Fault(#[from] AuditFault),
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
}

/// Walks the whole log and proves the chain end to end, or names the first
/// record that was altered, removed or reordered.
pub fn verify(path: &Path, root_key: &Key32) -> Result<VerifyReport, VerifyError> {
    let signing = signing_key(root_key);
    let io = |source| VerifyError::Io { path: path.to_path_buf(), source };
    let mut reader = BufReader::new(File::open(path).map_err(io)?);
    let mut head = ChainHead::genesis();
    let mut line_no = 0u64;
    let mut line = Vec::new();
    loop {
        line.clear();
        if reader.read_until(b'\n', &mut line).map_err(io)? == 0 {
            break;
        }
        line_no += 1;
        if line.last() != Some(&b'\n') {
            return Err(AuditFault::Truncated { line: line_no }.into());
        }
        let Ok(record) = serde_json::from_slice::<AuditRecord>(&line) else {
            return Err(AuditFault::Malformed { line: line_no }.into());
        };
        let expected = head.seq + 1;
        if record.seq > expected {
            let later = seq_appears_after(path, line_no, expected).map_err(io)?;
            let (line, found) = (line_no, record.seq);
            return Err(if later {
                AuditFault::Reordered { line, expected, found }
            } else {
                AuditFault::Removed { line, expected, found }
            }
            .into());
        }
        if record.seq < expected {
            return Err(AuditFault::OutOfSequence { line: line_no, seq: record.seq, previous: head.seq }.into());
        }
        let hash = record.compute_hash();
        if hex::encode(hash) != record.hash {
            return Err(AuditFault::Altered { line: line_no, seq: record.seq }.into());
        }
        let signed =
            hex::decode(&record.sig).is_ok_and(|sig| bulwark_crypto::verify_hmac_sha256(&signing, &hash, &sig));
        if !signed {
            return Err(AuditFault::BadSignature { line: line_no, seq: record.seq }.into());
        }
        if record.prev_hash != head.hash {
            return Err(AuditFault::BrokenChain { line: line_no, seq: record.seq }.into());
        }
        head = ChainHead { seq: record.seq, hash: record.hash };
    }
    Ok(VerifyReport { records: line_no, head })
}

/// Whether a record numbered `seq` appears after line `line_no` (to tell a
/// reordering from a removal).
fn seq_appears_after(path: &Path, line_no: u64, seq: u64) -> std::io::Result<bool> {
    let reader = BufReader::new(File::open(path)?);
    for line in reader.split(b'\n').skip(usize::try_from(line_no).unwrap_or(usize::MAX)) {
        if let Ok(record) = serde_json::from_slice::<AuditRecord>(&line?)
            && record.seq == seq
        {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Reads every record that parses (for `bulwark kms audit show`), with the
/// line numbers of those that do not.
pub fn read_records(path: &Path) -> std::io::Result<(Vec<AuditRecord>, Vec<u64>)> {
    let reader = BufReader::new(File::open(path)?);
    let mut records = Vec::new();
    let mut unreadable = Vec::new();
    for (index, line) in reader.split(b'\n').enumerate() {
        let line = line?;
        match serde_json::from_slice::<AuditRecord>(&line) {
            Ok(record) => records.push(record),
            Err(_) => unreadable.push(index as u64 + 1),
        }
    }
    Ok((records, unreadable))
}

fn parse_time(text: &str) -> Option<time::OffsetDateTime> {
    time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339).ok()
}

/// The records `bulwark kms audit show` lists: those about key `key` (a key
/// id or key ARN; either side of a re-encryption) and at or after `since`
/// (RFC 3339).
pub fn select(records: Vec<AuditRecord>, key: Option<&str>, since: Option<&str>) -> Result<Vec<AuditRecord>, String> {
    let since = match since {
        Some(text) => Some(parse_time(text).ok_or_else(|| format!("--since {text} is not an RFC 3339 time"))?),
        None => None,
    };
    let key = key.map(|k| k.rsplit_once("key/").map_or(k, |(_, id)| id).to_ascii_lowercase());
    Ok(records
        .into_iter()
        .filter(|r| {
            key.as_ref().is_none_or(|k| r.key_id.as_ref() == Some(k) || r.target_key_id.as_ref() == Some(k))
                && since.is_none_or(|s| parse_time(&r.time).is_some_and(|t| t >= s))
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::ManualClock;

    fn entry(n: u32) -> AuditEntry {
        AuditEntry {
            principal: "root".into(),
            source: "api".into(),
            operation: "Encrypt".into(),
            key_id: Some("6f1c3a4e-0000-4000-8000-000000000001".into()),
            key_version: Some(n),
            context: [("purpose".to_owned(), format!("test {n}"))].into(),
            outcome: "ok".into(),
            request_id: format!("req-{n}"),
            ..AuditEntry::default()
        }
    }

    /// A log of `count` records written through the real writer.
    async fn write_log(path: &Path, root: &Key32, count: u32) {
        let log = AuditLog::open(path, signing_key(root), Arc::new(ManualClock::new(1_700_000_000_000))).expect("open");
        for n in 1..=count {
            log.append(entry(n)).await.expect("append");
        }
    }

    fn lines(path: &Path) -> Vec<String> {
        std::fs::read_to_string(path).expect("read").lines().map(str::to_owned).collect()
    }

    fn write_lines(path: &Path, lines: &[String]) {
        std::fs::write(path, lines.iter().map(|l| format!("{l}\n")).collect::<String>()).expect("write");
    }

    fn check(path: &Path, root: &Key32, expected: Result<u64, AuditFault>) {
        match (verify(path, root), expected) {
            (Ok(report), Ok(records)) => assert_eq!(report.records, records),
            (Err(VerifyError::Fault(fault)), Err(expected)) => assert_eq!(fault, expected),
            (other, expected) => panic!("verify gave {other:?}, expected {expected:?}"),
        }
    }

    #[tokio::test]
    async fn an_untouched_log_verifies_and_resumes_its_chain_after_a_restart() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("audit.log");
        let root = Key32::from_bytes([5; 32]);
        write_log(&path, &root, 3).await;
        write_log(&path, &root, 2).await;
        check(&path, &root, Ok(5));
        let (records, unreadable) = read_records(&path).expect("read");
        assert_eq!(records.iter().map(|r| r.seq).collect::<Vec<_>>(), [1, 2, 3, 4, 5]);
        assert!(unreadable.is_empty());
        assert_eq!(records[0].prev_hash, GENESIS_HASH);
        assert_eq!(records[0].time, "2023-11-14T22:13:20.000Z");
        // Someone else's key proves nothing.
        check(&path, &Key32::from_bytes([6; 32]), Err(AuditFault::BadSignature { line: 1, seq: 1 }));
    }

    #[tokio::test]
    async fn tampering_is_found_at_the_first_record_touched() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("audit.log");
        let root = Key32::from_bytes([5; 32]);
        write_log(&path, &root, 6).await;
        let original = lines(&path);

        // An edited field.
        let mut edited = original.clone();
        edited[2] = edited[2].replace("\"outcome\":\"ok\"", "\"outcome\":\"AccessDeniedException\"");
        assert_ne!(edited[2], original[2]);
        write_lines(&path, &edited);
        check(&path, &root, Err(AuditFault::Altered { line: 3, seq: 3 }));

        // An edited field with its hash recomputed, but no key to sign it.
        let mut record: AuditRecord = serde_json::from_str(&original[3]).expect("parse");
        record.principal = "arn:aws:iam::000000000000:user/mallory".into();
        record.hash = hex::encode(record.compute_hash());
        let mut rehashed = original.clone();
        rehashed[3] = serde_json::to_string(&record).expect("json");
        write_lines(&path, &rehashed);
        check(&path, &root, Err(AuditFault::BadSignature { line: 4, seq: 4 }));

        // A deleted line.
        let mut deleted = original.clone();
        deleted.remove(1);
        write_lines(&path, &deleted);
        check(&path, &root, Err(AuditFault::Removed { line: 2, expected: 2, found: 3 }));

        // Two lines swapped.
        let mut swapped = original.clone();
        swapped.swap(3, 4);
        write_lines(&path, &swapped);
        check(&path, &root, Err(AuditFault::Reordered { line: 4, expected: 4, found: 5 }));

        // A duplicated (replayed) line.
        let mut replayed = original.clone();
        replayed.insert(3, original[2].clone());
        write_lines(&path, &replayed);
        check(&path, &root, Err(AuditFault::OutOfSequence { line: 4, seq: 3, previous: 3 }));

        // The middle cut out, mid-record to mid-record.
        let whole = original.iter().map(|l| format!("{l}\n")).collect::<String>();
        let start = original[0].len() + 1 + original[1].len() / 2;
        let end = whole.len() - original[5].len() - 1 - original[4].len() / 2;
        std::fs::write(&path, format!("{}{}", &whole[..start], &whole[end..])).expect("write");
        check(&path, &root, Err(AuditFault::Malformed { line: 2 }));

        // A cut tail in the middle of the last line.
        std::fs::write(&path, &whole[..whole.len() - 10]).expect("write");
        check(&path, &root, Err(AuditFault::Truncated { line: 6 }));

        // And the untouched file is fine.
        write_lines(&path, &original);
        check(&path, &root, Ok(6));
    }

    #[tokio::test]
    async fn show_selects_by_key_and_time() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("audit.log");
        let root = Key32::from_bytes([5; 32]);
        write_log(&path, &root, 2).await;
        let mut other = entry(3);
        other.key_id = Some("11111111-0000-4000-8000-000000000000".into());
        let log =
            AuditLog::open(&path, signing_key(&root), Arc::new(ManualClock::new(1_800_000_000_000))).expect("open");
        log.append(other).await.expect("append");
        let (records, _) = read_records(&path).expect("read");
        let arn = "arn:aws:kms:us-east-1:000000000000:key/6f1c3a4e-0000-4000-8000-000000000001";
        assert_eq!(select(records.clone(), Some(arn), None).expect("select").len(), 2);
        let later = select(records.clone(), None, Some("2025-01-01T00:00:00Z")).expect("select");
        assert_eq!(later.iter().map(|r| r.seq).collect::<Vec<_>>(), [3]);
        assert!(select(records, None, Some("yesterday")).is_err());
    }

    #[tokio::test]
    async fn a_partial_last_line_from_a_crash_is_dropped_on_open() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("audit.log");
        let root = Key32::from_bytes([5; 32]);
        write_log(&path, &root, 2).await;
        let mut file = OpenOptions::new().append(true).open(&path).expect("open");
        file.write_all(b"{\"seq\":3,\"ti").expect("partial");
        drop(file);
        write_log(&path, &root, 1).await;
        check(&path, &root, Ok(3));
    }

    #[tokio::test]
    async fn a_last_record_that_does_not_parse_refuses_to_open() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("audit.log");
        let root = Key32::from_bytes([5; 32]);
        write_log(&path, &root, 2).await;
        let mut all = lines(&path);
        all[1].push_str("garbage");
        write_lines(&path, &all);
        let error = AuditLog::open(&path, signing_key(&root), Arc::new(ManualClock::new(0))).err().expect("refused");
        assert!(error.to_string().contains("does not parse"), "{error}");
    }
}
