//! Command line: what to measure, against which server, and how long.
//!
//! Sizes accept binary units (`4KiB`, `1MiB`, `64MiB`, `1GiB`) or plain bytes; lists are
//! comma-separated. Credentials fall back to `AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY`
//! so that the same environment that drives the AWS CLI drives the benchmark.
//!
//! A run measures one thing: the PUT/GET cells (the default) or one of the modes
//! `--rss-check`, `--checksums`, `--listing`, `--heal`, `--sse`; [`Args::mode`] says which.

use std::path::PathBuf;

use clap::Parser;

/// Most cells a run may have (sizes × concurrency levels), so a typo cannot start an
/// hour-long run.
pub const SIZES_COUNT_MAX: usize = 8;
pub const CONCURRENCY_MAX: usize = 256;
/// Objects larger than this would need multipart uploads, which the benchmark does not do.
pub const OBJECT_SIZE_BYTES_MAX: u64 = 5 * 1024 * 1024 * 1024;
/// Most rounds of `--checksums`.
pub const CHECKSUM_ROUNDS_MAX: usize = 20;
/// Keys of `--listing` given without a number.
pub const LISTING_KEYS_DEFAULT: u64 = 100_000;
/// Most keys `--listing` creates, so a typo cannot fill a disk with metadata.
pub const LISTING_KEYS_MAX: u64 = 2_000_000;
/// Most bytes `--heal` writes as its data set.
pub const HEAL_BYTES_MAX: u64 = 256 * 1024 * 1024 * 1024;
/// Most seconds `--periodic-scrub-wait-secs` may wait for the server's own scrub.
pub const PERIODIC_SCRUB_WAIT_SECS_MAX: u64 = 3600;

/// What one run measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// PUT and GET cells per size × concurrency beside the raw disk.
    Benchmark,
    RssCheck,
    /// PUT with CRC64NVME, SHA256 and no checksum (issue 3).
    Checksums,
    /// Paging through many keys and versions (issue 4).
    Listing,
    /// Scrub and heal throughput, foreground latency under a scrub (issue 5).
    Heal,
    /// SSE-C versus plaintext, over TLS and plain HTTP (issue 6).
    Sse,
    /// SSE-S3 and SSE-KMS versus plaintext, and KMS data keys per second (issue 8).
    Kms,
}

impl Mode {
    pub fn name(self) -> &'static str {
        match self {
            Mode::Benchmark => "benchmark",
            Mode::RssCheck => "rss check",
            Mode::Checksums => "checksums",
            Mode::Listing => "listing",
            Mode::Heal => "heal and scrub",
            Mode::Sse => "SSE-C and TLS",
            Mode::Kms => "SSE-S3, SSE-KMS and KMS",
        }
    }
}

#[derive(Parser, Debug, Clone)]
#[command(
    name = "bulwark-bench",
    version,
    about = "PUT/GET throughput and latency of a running Bulwark (or any S3) server, beside the raw disk"
)]
pub struct Args {
    /// S3 endpoint of the running server.
    #[arg(long, default_value = "http://127.0.0.1:9000")]
    pub endpoint: String,
    /// Access key (default: $AWS_ACCESS_KEY_ID).
    #[arg(long)]
    pub access_key: Option<String>,
    /// Secret key (default: $AWS_SECRET_ACCESS_KEY).
    #[arg(long)]
    pub secret_key: Option<String>,
    /// Region used for signing.
    #[arg(long, default_value = "us-east-1")]
    pub region: String,
    /// Bucket to write into; created if missing (and then removed), objects deleted afterwards.
    #[arg(long, default_value = "bulwark-bench")]
    pub bucket: String,
    /// Object sizes, comma-separated [default: 4KiB,1MiB,64MiB; 64MiB with --checksums and --sse].
    #[arg(long, value_parser = parse_size_list)]
    pub sizes: Option<SizeList>,
    /// Concurrency levels (requests in flight), comma-separated [default: 1,16; 1,4 with
    /// --checksums and --sse].
    #[arg(long, value_parser = parse_concurrency_list)]
    pub concurrency: Option<ConcurrencyList>,
    /// Upper bound on the time of one cell (one op × size × concurrency), in seconds.
    #[arg(long, default_value_t = 10)]
    pub duration_secs: u64,
    /// Upper bound on the bytes moved by one cell; the cell stops at whichever bound comes first.
    #[arg(long, default_value = "1GiB", value_parser = parse_size)]
    pub bytes_per_cell: u64,
    /// Exactly this many objects per cell, instead of the time and byte bounds.
    #[arg(long)]
    pub count: Option<u64>,
    /// Directory on the same disk as the server's data, for the raw disk figures.
    #[arg(long, default_value = "./data")]
    pub raw_dir: PathBuf,
    /// Size of the raw sequential write/read test file.
    #[arg(long, default_value = "1GiB", value_parser = parse_size)]
    pub raw_bytes: u64,
    /// Runs of every raw figure; the median is reported.
    #[arg(long, default_value_t = 3)]
    pub raw_repeats: usize,
    /// Skip the raw disk measurement (the targets then cannot be computed).
    #[arg(long)]
    pub no_raw: bool,
    /// Sign PUTs of the cells with UNSIGNED-PAYLOAD instead of the body's SHA-256, as the AWS
    /// CLI and the SDKs do over https (the streamed bodies of --rss-check are signed chunk by
    /// chunk over http:// regardless).
    #[arg(long, conflicts_with = "hash_every_body")]
    pub unsigned_payload: bool,
    /// Let the SDK hash every PUT body with SHA-256 for its signature, as an application
    /// does, instead of hashing the cell's payload once (every PUT of a cell sends the same
    /// bytes; the server hashes and checks every body either way). On a machine the client
    /// shares with the server, the client's hashing then takes CPU from the server.
    #[arg(long)]
    pub hash_every_body: bool,
    /// Send no flexible checksum (x-amz-checksum-crc32) with uploads.
    #[arg(long)]
    pub no_checksum: bool,
    /// Before every GET cell and the raw read, write 1 to /proc/sys/vm/drop_caches
    /// (root only; drops the whole machine's clean page cache) so reads come from the disk.
    #[arg(long)]
    pub drop_caches: bool,
    /// Keep the benchmark objects (and bucket) instead of deleting them.
    #[arg(long)]
    pub keep: bool,
    /// Process id of the server: its RSS and CPU are sampled from /proc during each cell.
    #[arg(long)]
    pub server_pid: Option<u32>,
    /// Write all figures as JSON to this file.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Instead of the benchmark: concurrent streamed PUTs of large objects while sampling the
    /// server's RSS (needs --server-pid).
    #[arg(long)]
    pub rss_check: bool,
    /// Object size of the RSS check.
    #[arg(long, default_value = "1GiB", value_parser = parse_size)]
    pub rss_object_size: u64,
    /// Number of concurrent PUTs in the RSS check.
    #[arg(long, default_value_t = 16)]
    pub rss_concurrency: usize,

    /// Instead of the benchmark: PUT throughput with the client sending a CRC64NVME checksum,
    /// a SHA256 checksum, and none (the SDK's WhenRequired, no algorithm), side by side.
    #[arg(long)]
    pub checksums: bool,
    /// Times --checksums runs all its cells (rotating their order); medians are reported.
    #[arg(long, default_value_t = 1)]
    pub checksum_rounds: usize,

    /// Instead of the benchmark: create (or reuse) N empty objects under three delimiter
    /// levels and page through them with ListObjectsV2, then ~N versions (N/10 keys × 10)
    /// with ListObjectVersions in a versioned bucket [N default: 100000].
    #[arg(long, value_name = "N", num_args = 0..=1, default_missing_value = "100000")]
    pub listing: Option<u64>,
    /// Requests in flight while --listing creates its objects.
    #[arg(long, default_value_t = 32)]
    pub listing_concurrency: usize,
    /// Delete the --listing objects and buckets afterwards (by default they are kept, so the
    /// next run reuses them).
    #[arg(long)]
    pub listing_cleanup: bool,

    /// Instead of the benchmark: write a data set, then time `bulwark admin scrub --wait`,
    /// foreground 1 MiB PUT/GET latency with and without a scrub, and the heal of one drive
    /// whose shard files are deleted (needs --data-dir; plain http:// endpoint).
    #[arg(long)]
    pub heal: bool,
    /// Size of the --heal data set.
    #[arg(long, default_value = "2GiB", value_parser = parse_size)]
    pub heal_bytes: u64,
    /// Object size of the --heal data set.
    #[arg(long, default_value = "4MiB", value_parser = parse_size)]
    pub heal_object_size: u64,
    /// The server's data directory (`bulwark server --data DIR`): --heal deletes the shard
    /// files of the benchmark bucket on one drive found under it.
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// The drive directory whose shard files --heal deletes [default: the first drive under
    /// --data-dir].
    #[arg(long)]
    pub wipe_drive: Option<PathBuf>,
    /// The `bulwark` binary for the admin commands [default: `bulwark` next to this binary].
    #[arg(long)]
    pub bulwark_bin: Option<PathBuf>,
    /// Seconds of each foreground PUT and GET cell of --heal.
    #[arg(long, default_value_t = 10)]
    pub foreground_secs: u64,
    /// Requests in flight in the foreground cells of --heal.
    #[arg(long, default_value_t = 1)]
    pub foreground_concurrency: usize,
    /// With --heal: first wait up to this many seconds for the server's own periodic scrub
    /// (the configured rate, 64 MiB/s by default; it starts 60 s after the server) and
    /// measure the foreground cells while it runs. 0 skips this phase.
    #[arg(long, default_value_t = 0)]
    pub periodic_scrub_wait_secs: u64,

    /// Instead of the benchmark: PUT/GET of plaintext and SSE-C objects over TLS (the
    /// --endpoint must be https://), and of plaintext over --http-endpoint if given.
    #[arg(long)]
    pub sse: bool,
    /// PEM certificate(s) to trust for an https:// endpoint, instead of the system's roots
    /// (e.g. the cert.pem of `bulwark cert self-signed`).
    #[arg(long)]
    pub ca_cert: Option<PathBuf>,
    /// With --sse: a plain http:// endpoint of a second server with the same configuration,
    /// for the plaintext-over-HTTP cells.
    #[arg(long)]
    pub http_endpoint: Option<String>,
    /// Process id of the --http-endpoint server, sampled like --server-pid.
    #[arg(long)]
    pub http_server_pid: Option<u32>,

    /// Instead of the benchmark: PUT/GET of plaintext, SSE-S3 and SSE-KMS objects on
    /// --endpoint, then KMS GenerateDataKey operations per second.
    #[arg(long)]
    pub kms: bool,
    /// With --kms: concurrent GenerateDataKey callers.
    #[arg(long, default_value_t = 8)]
    pub kms_concurrency: usize,
    /// With --kms: seconds of GenerateDataKey calls.
    #[arg(long, default_value_t = 5)]
    pub kms_secs: u64,
    /// With --kms or --sse: rounds of the comparison. The variants run in turn, each round
    /// starting with the next one; each is reported by its median round.
    #[arg(long, default_value_t = 3)]
    pub rounds: usize,
}

/// Parsed `--sizes`: a newtype so clap treats the whole list as one value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SizeList(pub Vec<u64>);

/// Parsed `--concurrency`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConcurrencyList(pub Vec<usize>);

impl Args {
    pub fn payload_signing(&self) -> crate::s3::PayloadSigning {
        use crate::s3::PayloadSigning;
        if self.unsigned_payload {
            PayloadSigning::Unsigned
        } else if self.hash_every_body {
            PayloadSigning::EveryBody
        } else {
            PayloadSigning::OncePerPayload
        }
    }

    /// What this run measures (`validate` has checked that at most one mode was asked for).
    pub fn mode(&self) -> Mode {
        if self.rss_check {
            Mode::RssCheck
        } else if self.checksums {
            Mode::Checksums
        } else if self.listing.is_some() {
            Mode::Listing
        } else if self.heal {
            Mode::Heal
        } else if self.sse {
            Mode::Sse
        } else if self.kms {
            Mode::Kms
        } else {
            Mode::Benchmark
        }
    }

    /// `--sizes`, or the mode's default.
    pub fn sizes(&self) -> Vec<u64> {
        match (&self.sizes, self.mode()) {
            (Some(sizes), _) => sizes.0.clone(),
            (None, Mode::Checksums | Mode::Sse | Mode::Kms) => vec![64 << 20],
            (None, _) => vec![4 << 10, 1 << 20, 64 << 20],
        }
    }

    /// `--concurrency`, or the mode's default.
    pub fn concurrency(&self) -> Vec<usize> {
        match (&self.concurrency, self.mode()) {
            (Some(levels), _) => levels.0.clone(),
            (None, Mode::Checksums | Mode::Sse | Mode::Kms) => vec![1, 4],
            (None, _) => vec![1, 16],
        }
    }

    pub fn access_key(&self) -> Result<String, String> {
        credential(&self.access_key, "AWS_ACCESS_KEY_ID", "--access-key")
    }

    pub fn secret_key(&self) -> Result<String, String> {
        credential(&self.secret_key, "AWS_SECRET_ACCESS_KEY", "--secret-key")
    }

    /// Checks the combinations clap cannot express.
    pub fn validate(&self) -> Result<(), String> {
        let modes = [self.rss_check, self.checksums, self.listing.is_some(), self.heal, self.sse, self.kms];
        if modes.iter().filter(|on| **on).count() > 1 {
            return Err(
                "--rss-check, --checksums, --listing, --heal, --sse and --kms each make a run of their own".to_owned()
            );
        }
        if self.rounds == 0 || self.rounds > crate::rounds::ROUNDS_MAX {
            return Err(format!("--rounds must be 1..={}", crate::rounds::ROUNDS_MAX));
        }
        if self.kms && (self.kms_concurrency == 0 || self.kms_concurrency > CONCURRENCY_MAX || self.kms_secs == 0) {
            return Err(format!("--kms-concurrency must be 1..={CONCURRENCY_MAX} and --kms-secs at least 1"));
        }
        self.validate_modes()?;
        if self.rss_check && self.server_pid.is_none() {
            return Err("--rss-check needs --server-pid PID (the server's process id)".to_owned());
        }
        if self.rss_concurrency == 0 || self.rss_concurrency > CONCURRENCY_MAX {
            return Err(format!("--rss-concurrency must be 1..={CONCURRENCY_MAX}"));
        }
        if self.rss_object_size == 0 || self.rss_object_size > OBJECT_SIZE_BYTES_MAX {
            return Err(format!("--rss-object-size must be 1..={OBJECT_SIZE_BYTES_MAX} bytes"));
        }
        if self.raw_repeats == 0 || self.raw_repeats > RAW_REPEATS_MAX {
            return Err(format!("--raw-repeats must be 1..={RAW_REPEATS_MAX}"));
        }
        if self.duration_secs == 0 {
            return Err("--duration-secs must be at least 1".to_owned());
        }
        if self.count == Some(0) {
            return Err("--count must be at least 1".to_owned());
        }
        if !self.no_raw && self.raw_bytes < RAW_BYTES_MIN {
            return Err(format!("--raw-bytes must be at least {RAW_BYTES_MIN} bytes"));
        }
        Ok(())
    }
}

impl Args {
    fn validate_modes(&self) -> Result<(), String> {
        if self.checksum_rounds == 0 || self.checksum_rounds > CHECKSUM_ROUNDS_MAX {
            return Err(format!("--checksum-rounds must be 1..={CHECKSUM_ROUNDS_MAX}"));
        }
        if let Some(count) = self.listing
            && (count == 0 || count > LISTING_KEYS_MAX)
        {
            return Err(format!("--listing must be 1..={LISTING_KEYS_MAX} keys"));
        }
        if self.listing_concurrency == 0 || self.listing_concurrency > CONCURRENCY_MAX {
            return Err(format!("--listing-concurrency must be 1..={CONCURRENCY_MAX}"));
        }
        if self.foreground_concurrency == 0 || self.foreground_concurrency > CONCURRENCY_MAX {
            return Err(format!("--foreground-concurrency must be 1..={CONCURRENCY_MAX}"));
        }
        if self.foreground_secs == 0 {
            return Err("--foreground-secs must be at least 1".to_owned());
        }
        if self.periodic_scrub_wait_secs > PERIODIC_SCRUB_WAIT_SECS_MAX {
            return Err(format!("--periodic-scrub-wait-secs must be at most {PERIODIC_SCRUB_WAIT_SECS_MAX}"));
        }
        if self.heal_object_size > OBJECT_SIZE_BYTES_MAX || self.heal_bytes > HEAL_BYTES_MAX {
            return Err(format!(
                "--heal-object-size must be at most {OBJECT_SIZE_BYTES_MAX} bytes and --heal-bytes at most \
                 {HEAL_BYTES_MAX}"
            ));
        }
        if self.heal && self.heal_bytes < self.heal_object_size {
            return Err("--heal-bytes must hold at least one object of --heal-object-size".to_owned());
        }
        if self.heal && self.data_dir.is_none() && self.wipe_drive.is_none() {
            return Err("--heal needs --data-dir DIR (the server's data directory) or --wipe-drive DRIVE".to_owned());
        }
        if self.heal && !self.endpoint.starts_with("http://") {
            return Err("--heal needs a plain http:// endpoint: `bulwark admin` speaks plain HTTP only".to_owned());
        }
        if self.sse && !self.endpoint.starts_with("https://") {
            return Err("--sse needs an https:// --endpoint: the server refuses SSE-C over plain HTTP".to_owned());
        }
        if let Some(endpoint) = &self.http_endpoint
            && !endpoint.starts_with("http://")
        {
            return Err("--http-endpoint must be a plain http:// endpoint".to_owned());
        }
        Ok(())
    }
}

/// The raw test writes and reads in 4 MiB requests, so its file is at least one of them.
pub const RAW_BYTES_MIN: u64 = 4 * 1024 * 1024;
pub const RAW_REPEATS_MAX: usize = 20;

fn credential(flag: &Option<String>, variable: &str, name: &str) -> Result<String, String> {
    if let Some(value) = flag {
        return Ok(value.clone());
    }
    match std::env::var(variable) {
        Ok(value) if !value.is_empty() => Ok(value),
        _ => Err(format!("no credentials: pass {name} or set {variable}")),
    }
}

/// Parses `4KiB`, `1MiB`, `64MiB`, `1GiB`, `512B` or plain `4096` into bytes.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (digits, unit) = text.split_at(split);
    let number: u64 = digits.parse().map_err(|_| format!("`{text}` is not a size such as 4KiB or 64MiB"))?;
    let multiplier: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kib" => 1 << 10,
        "m" | "mib" => 1 << 20,
        "g" | "gib" => 1 << 30,
        other => return Err(format!("unknown unit `{other}` in `{text}` (use B, KiB, MiB or GiB)")),
    };
    let bytes = number.checked_mul(multiplier).ok_or_else(|| format!("`{text}` is too large"))?;
    if bytes == 0 {
        return Err(format!("`{text}`: a size must be at least one byte"));
    }
    Ok(bytes)
}

fn parse_size_list(text: &str) -> Result<SizeList, String> {
    let sizes = text.split(',').map(parse_size).collect::<Result<Vec<_>, _>>()?;
    if sizes.len() > SIZES_COUNT_MAX {
        return Err(format!("at most {SIZES_COUNT_MAX} sizes"));
    }
    if let Some(size) = sizes.iter().find(|size| **size > OBJECT_SIZE_BYTES_MAX) {
        return Err(format!("{size} bytes is above the single-PUT limit of 5 GiB"));
    }
    Ok(SizeList(sizes))
}

fn parse_concurrency_list(text: &str) -> Result<ConcurrencyList, String> {
    let levels = text
        .split(',')
        .map(|part| {
            let level: usize = part.trim().parse().map_err(|_| format!("`{part}` is not a number"))?;
            if level == 0 || level > CONCURRENCY_MAX {
                return Err(format!("concurrency {level} is outside 1..={CONCURRENCY_MAX}"));
            }
            Ok(level)
        })
        .collect::<Result<Vec<_>, _>>()?;
    if levels.len() > SIZES_COUNT_MAX {
        return Err(format!("at most {SIZES_COUNT_MAX} concurrency levels"));
    }
    Ok(ConcurrencyList(levels))
}

/// `4 KiB`, `64 MiB`, `1.5 GiB`, `100 B`: for tables, exact when the size is a whole unit.
pub fn format_size(bytes: u64) -> String {
    const UNITS: [(&str, u64); 3] = [("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)];
    for (name, unit) in UNITS {
        if bytes >= unit {
            return if bytes.is_multiple_of(unit) {
                format!("{} {name}", bytes / unit)
            } else {
                format!("{:.1} {name}", bytes as f64 / unit as f64)
            };
        }
    }
    format!("{bytes} B")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check_size(text: &str, expected: Result<u64, ()>) {
        assert_eq!(parse_size(text).map_err(|_| ()), expected, "parse_size({text:?})");
    }

    #[test]
    fn sizes_parse_in_binary_units() {
        check_size("4KiB", Ok(4096));
        check_size("1MiB", Ok(1 << 20));
        check_size("64mib", Ok(64 << 20));
        check_size("1GiB", Ok(1 << 30));
        check_size("1 GiB", Ok(1 << 30));
        check_size("4096", Ok(4096));
        check_size("100B", Ok(100));
        check_size("0", Err(()));
        check_size("4KB", Err(()));
        check_size("MiB", Err(()));
        check_size("99999999999999999999GiB", Err(()));
    }

    #[test]
    fn lists_parse_and_are_bounded() {
        assert_eq!(parse_size_list("4KiB,1MiB,64MiB"), Ok(SizeList(vec![4096, 1 << 20, 64 << 20])));
        assert!(parse_size_list("6GiB").is_err());
        assert_eq!(parse_concurrency_list("1,16"), Ok(ConcurrencyList(vec![1, 16])));
        assert!(parse_concurrency_list("0").is_err());
        assert!(parse_concurrency_list("1,x").is_err());
    }

    fn parse(line: &[&str]) -> Result<Args, String> {
        let args = Args::try_parse_from(std::iter::once("bulwark-bench").chain(line.iter().copied()))
            .map_err(|e| e.to_string())?;
        args.validate()?;
        Ok(args)
    }

    #[test]
    fn each_mode_has_its_defaults() {
        let check = |line: &[&str], mode: Mode, sizes: Vec<u64>, levels: Vec<usize>| {
            let args = parse(line).expect("a valid command line");
            assert_eq!((args.mode(), args.sizes(), args.concurrency()), (mode, sizes, levels), "{line:?}");
        };
        check(&[], Mode::Benchmark, vec![4 << 10, 1 << 20, 64 << 20], vec![1, 16]);
        check(&["--checksums"], Mode::Checksums, vec![64 << 20], vec![1, 4]);
        check(&["--checksums", "--sizes", "16MiB"], Mode::Checksums, vec![16 << 20], vec![1, 4]);
        check(&["--sse", "--endpoint", "https://127.0.0.1:9443"], Mode::Sse, vec![64 << 20], vec![1, 4]);
        let listing = parse(&["--listing"]).expect("--listing alone");
        assert_eq!((listing.mode(), listing.listing), (Mode::Listing, Some(LISTING_KEYS_DEFAULT)));
        assert_eq!(parse(&["--listing", "5000"]).expect("--listing N").listing, Some(5000));
        check(&["--heal", "--data-dir", "/srv"], Mode::Heal, vec![4 << 10, 1 << 20, 64 << 20], vec![1, 16]);
    }

    #[test]
    fn modes_refuse_what_they_cannot_measure() {
        assert!(parse(&["--checksums", "--heal", "--data-dir", "/srv"]).is_err(), "two modes");
        assert!(parse(&["--heal"]).is_err(), "heal without a data directory");
        assert!(parse(&["--heal", "--data-dir", "/srv", "--endpoint", "https://h:1"]).is_err(), "admin CLI over TLS");
        assert!(parse(&["--sse"]).is_err(), "SSE-C over plain HTTP");
        assert!(parse(&["--sse", "--endpoint", "https://h:1", "--http-endpoint", "https://h:2"]).is_err());
        assert!(parse(&["--listing", "0"]).is_err());
        assert_eq!(parse(&["--kms"]).expect("--kms").rounds, 3, "three rounds unless told");
        assert_eq!(parse(&["--kms", "--rounds", "1"]).expect("one round").rounds, 1);
        assert!(parse(&["--kms", "--rounds", "0"]).is_err());
        assert!(parse(&["--kms", "--rounds", "10"]).is_err());
        assert!(parse(&["--heal", "--data-dir", "/srv", "--heal-bytes", "1MiB"]).is_err(), "smaller than one object");
    }

    #[test]
    fn puts_sign_a_hash_computed_once_unless_told_otherwise() {
        use crate::s3::PayloadSigning;
        let signing = |line: &[&str]| parse(line).expect("valid").payload_signing();
        assert_eq!(signing(&[]), PayloadSigning::OncePerPayload);
        assert_eq!(signing(&["--hash-every-body"]), PayloadSigning::EveryBody);
        assert_eq!(signing(&["--unsigned-payload"]), PayloadSigning::Unsigned);
        assert!(parse(&["--unsigned-payload", "--hash-every-body"]).is_err(), "two ways to sign at once");
    }

    #[test]
    fn sizes_format_exactly_when_whole() {
        assert_eq!(format_size(4096), "4 KiB");
        assert_eq!(format_size(64 << 20), "64 MiB");
        assert_eq!(format_size(1536 << 20), "1.5 GiB");
        assert_eq!(format_size(100), "100 B");
    }
}
