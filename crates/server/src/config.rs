//! Server configuration: the embedded default and the TOML file.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

pub const DEFAULT_ADDRESS: &str = "127.0.0.1:9000";
pub const DEFAULT_REGION: &str = "us-east-1";
/// Domains under which `Host: <bucket>.<domain>` names the bucket when none
/// are configured: `localhost`, so SDKs that address buckets as
/// `http://<bucket>.localhost:9000` work against the embedded default.
pub const DEFAULT_DOMAINS: &[&str] = &["localhost"];

/// One drive of the topology.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DriveConfig {
    pub path: PathBuf,
    pub facility: String,
}

/// Erasure geometry and write rules, shared by every set.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ErasureConfig {
    pub data: usize,
    pub parity: usize,
    /// Defaults to data + 1; never lower.
    #[serde(default)]
    pub write_quorum: Option<usize>,
    /// Refuse (503) writes that would not survive losing any one facility.
    #[serde(default)]
    pub strict_facility: bool,
}

/// The TOML file (`bulwark server --config FILE`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    #[serde(default)]
    pub address: Option<SocketAddr>,
    #[serde(default)]
    pub region: Option<String>,
    /// Domains for virtual-hosted-style requests (`<bucket>.<domain>`);
    /// default `["localhost"]`, `[]` for path-style only.
    #[serde(default)]
    pub domains: Option<Vec<String>>,
    /// Directory for server state such as the generated root credentials.
    #[serde(default)]
    pub state_dir: Option<PathBuf>,
    pub erasure: ErasureConfig,
    /// Drives in set order: the first N form set 0, the next N set 1, …
    pub drives: Vec<DriveConfig>,
    #[serde(default)]
    pub heal: HealFileConfig,
    #[serde(default)]
    pub tls: Option<crate::tls::TlsFiles>,
    /// How long one call on a drive (a write, an fsync, a read, a metadata
    /// commit) may take before the drive is treated as failed for that request.
    #[serde(default)]
    pub drive_timeout_secs: Option<u64>,
}

/// Default of `drive_timeout_secs`: far above what a healthy disk needs for
/// one call, even an fsync under heavy write-back.
pub const DRIVE_TIMEOUT_SECS_DEFAULT: u64 = 30;

/// Everything the server needs to start.
#[derive(Debug, Clone)]
pub struct Config {
    pub address: SocketAddr,
    pub region: String,
    /// Domains for virtual-hosted-style requests.
    pub domains: Vec<String>,
    pub state_dir: PathBuf,
    pub erasure: ErasureConfig,
    pub drives: Vec<DriveConfig>,
    /// Create missing drive directories (only for the embedded default; a
    /// configured drive that is missing is a fault, not something to create).
    pub create_drives: bool,
    /// Pace of the scanner and the scrub.
    pub healer: bulwark_object::HealerConfig,
    /// TLS certificate and key; plain HTTP when absent.
    pub tls: Option<crate::tls::TlsFiles>,
    /// Deadline of one drive call (see `bulwark_storage::timed`).
    pub drive_timeout: std::time::Duration,
}

/// `[heal]` in the TOML file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HealFileConfig {
    /// Seconds between scanner passes (default 900).
    #[serde(default)]
    pub scan_interval_secs: Option<u64>,
    /// Seconds between scrub passes (default 86400).
    #[serde(default)]
    pub scrub_interval_secs: Option<u64>,
    /// Scrub read rate in MiB/s (default 64; 0 = unlimited).
    #[serde(default)]
    pub scrub_rate_mib: Option<u64>,
    /// Periodic scrub on (default) or off.
    #[serde(default)]
    pub scrub: Option<bool>,
}

impl HealFileConfig {
    fn to_config(&self) -> bulwark_object::HealerConfig {
        let default = bulwark_object::HealerConfig::default();
        bulwark_object::HealerConfig {
            scan_interval: self.scan_interval_secs.map(std::time::Duration::from_secs).unwrap_or(default.scan_interval),
            scrub_interval: self
                .scrub_interval_secs
                .map(std::time::Duration::from_secs)
                .unwrap_or(default.scrub_interval),
            scrub_rate_bytes: self.scrub_rate_mib.map(|m| m * 1024 * 1024).unwrap_or(default.scrub_rate_bytes),
            scrub_enabled: self.scrub.unwrap_or(default.scrub_enabled),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("invalid config file {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

fn default_domains() -> Vec<String> {
    DEFAULT_DOMAINS.iter().map(|d| (*d).to_owned()).collect()
}

impl Config {
    /// The embedded default: six drives in three facilities under `data_dir`,
    /// one 4+2 set, write quorum 5.
    pub fn embedded(data_dir: &Path) -> Config {
        let drives = (1..=6)
            .map(|drive| {
                let facility = format!("facility-{}", (drive + 1) / 2);
                DriveConfig { path: data_dir.join(&facility).join(format!("drive-{drive}")), facility }
            })
            .collect();
        Config {
            address: DEFAULT_ADDRESS.parse().expect("constant address parses"),
            region: DEFAULT_REGION.to_owned(),
            domains: default_domains(),
            state_dir: data_dir.to_path_buf(),
            erasure: ErasureConfig { data: 4, parity: 2, write_quorum: None, strict_facility: false },
            drives,
            create_drives: true,
            healer: bulwark_object::HealerConfig::default(),
            tls: None,
            drive_timeout: std::time::Duration::from_secs(DRIVE_TIMEOUT_SECS_DEFAULT),
        }
    }

    pub fn from_file(path: &Path) -> Result<Config, ConfigError> {
        let text =
            std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.to_path_buf(), source })?;
        Self::from_toml(&text, path)
    }

    pub fn from_toml(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let file: FileConfig = toml::from_str(text)
            .map_err(|e| ConfigError::Parse { path: path.to_path_buf(), message: e.to_string() })?;
        let config = Config {
            address: file.address.unwrap_or_else(|| DEFAULT_ADDRESS.parse().expect("constant address parses")),
            region: file.region.unwrap_or_else(|| DEFAULT_REGION.to_owned()),
            domains: file.domains.unwrap_or_else(default_domains),
            state_dir: file.state_dir.unwrap_or_else(|| PathBuf::from("data")),
            erasure: file.erasure,
            drives: file.drives,
            create_drives: false,
            healer: file.heal.to_config(),
            tls: file.tls,
            drive_timeout: std::time::Duration::from_secs(
                file.drive_timeout_secs.unwrap_or(DRIVE_TIMEOUT_SECS_DEFAULT),
            ),
        };
        config.validate()?;
        Ok(config)
    }

    pub fn write_quorum(&self) -> usize {
        self.erasure.write_quorum.unwrap_or(self.erasure.data + 1)
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        let n = self.erasure.data + self.erasure.parity;
        if self.erasure.data == 0 || self.erasure.parity == 0 {
            return Err(ConfigError::Invalid("erasure data and parity must both be at least 1".into()));
        }
        if self.drives.is_empty() || !self.drives.len().is_multiple_of(n) {
            return Err(ConfigError::Invalid(format!("{} drives cannot be cut into sets of {n}", self.drives.len())));
        }
        let w = self.write_quorum();
        if w <= self.erasure.data || w > n {
            return Err(ConfigError::Invalid(format!(
                "write_quorum {w} must be between {} and {n}",
                self.erasure.data + 1
            )));
        }
        bulwark_s3::hosts::VirtualHosts::new(&self.domains)
            .map_err(|e| ConfigError::Invalid(format!("domains: {e}")))?;
        if self.drive_timeout.is_zero() {
            return Err(ConfigError::Invalid("drive_timeout_secs must be at least 1".into()));
        }
        let mut paths: Vec<&PathBuf> = self.drives.iter().map(|d| &d.path).collect();
        paths.sort();
        if paths.windows(2).any(|w| w[0] == w[1]) {
            return Err(ConfigError::Invalid("a drive path is listed twice".into()));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_default_is_six_drives_in_three_facilities() {
        let config = Config::embedded(Path::new("data"));
        let layout: Vec<(String, String)> =
            config.drives.iter().map(|d| (d.path.display().to_string(), d.facility.clone())).collect();
        assert_eq!(layout[0], ("data/facility-1/drive-1".into(), "facility-1".into()));
        assert_eq!(layout[1], ("data/facility-1/drive-2".into(), "facility-1".into()));
        assert_eq!(layout[2], ("data/facility-2/drive-3".into(), "facility-2".into()));
        assert_eq!(layout[5], ("data/facility-3/drive-6".into(), "facility-3".into()));
        assert_eq!(config.write_quorum(), 5);
        config.validate().expect("valid");
    }

    #[test]
    fn domains_for_virtual_hosted_style_are_configured_and_checked() {
        let drives = "[erasure]\ndata = 1\nparity = 1\n[[drives]]\npath = \"/a\"\nfacility = \"f1\"\n\
                      [[drives]]\npath = \"/b\"\nfacility = \"f2\"\n";
        let config = Config::from_toml(&format!("domains = [\"s3.example.com\"]\n{drives}"), Path::new("x.toml"))
            .expect("parses");
        assert_eq!(config.domains, ["s3.example.com"]);
        let config = Config::from_toml(&format!("domains = []\n{drives}"), Path::new("x.toml")).expect("parses");
        assert!(config.domains.is_empty(), "path-style only");
        let refused = Config::from_toml(&format!("domains = [\"s3.example.com:9000\"]\n{drives}"), Path::new("x.toml"));
        assert!(matches!(refused, Err(ConfigError::Invalid(m)) if m.contains("s3.example.com:9000")));
    }

    #[test]
    fn toml_config_lists_drives_and_geometry() {
        let text = r#"
            address = "0.0.0.0:9100"
            [erasure]
            data = 2
            parity = 1
            write_quorum = 3
            [[drives]]
            path = "/mnt/a"
            facility = "rack-a"
            [[drives]]
            path = "/mnt/b"
            facility = "rack-b"
            [[drives]]
            path = "/mnt/c"
            facility = "rack-c"
        "#;
        let config = Config::from_toml(text, Path::new("x.toml")).expect("parses");
        assert_eq!(config.drives.len(), 3);
        assert_eq!(config.write_quorum(), 3);
        assert_eq!(config.address.port(), 9100);
        assert!(!config.create_drives);
        assert_eq!(config.drive_timeout.as_secs(), DRIVE_TIMEOUT_SECS_DEFAULT);
        assert_eq!(config.domains, ["localhost"], "virtual-hosted style under localhost by default");
        let timed = format!("drive_timeout_secs = 5\n{text}");
        let config = Config::from_toml(&timed, Path::new("x.toml")).expect("parses");
        assert_eq!(config.drive_timeout.as_secs(), 5);
        let zero = format!("drive_timeout_secs = 0\n{text}");
        assert!(Config::from_toml(&zero, Path::new("x.toml")).is_err(), "a zero deadline is refused");
    }

    #[test]
    fn a_write_quorum_of_k_is_refused() {
        let text = r#"
            [erasure]
            data = 2
            parity = 1
            write_quorum = 2
            [[drives]]
            path = "/a"
            facility = "f1"
            [[drives]]
            path = "/b"
            facility = "f2"
            [[drives]]
            path = "/c"
            facility = "f3"
        "#;
        assert!(Config::from_toml(text, Path::new("x.toml")).is_err());
        let unknown = "[erasure]\ndata = 2\nparity = 1\nbogus = 1\n";
        assert!(Config::from_toml(unknown, Path::new("x.toml")).is_err());
    }
}
