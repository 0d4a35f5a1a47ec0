//! The server root key: the one secret that seals every other secret at
//! rest (access-key secrets now, the KMS keystore with issue 8). It must
//! come from outside the data drives:
//!
//! - `BULWARK_KMS_ROOT_KEY`: the key itself, 32 bytes as base64 or hex;
//! - `BULWARK_KMS_ROOT_KEY_FILE`: a file holding it (raw 32 bytes, base64 or hex);
//! - otherwise (embedded default) `<state dir>/kms-root.key` is used, and
//!   generated with mode 0600 on first start, with a warning: a copy of the
//!   state directory then carries the key with it.

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use base64::Engine;
use bulwark_crypto::Key32;

pub const ENV_KEY: &str = "BULWARK_KMS_ROOT_KEY";
pub const ENV_FILE: &str = "BULWARK_KMS_ROOT_KEY_FILE";
const DEFAULT_FILE: &str = "kms-root.key";

/// Where the root key came from, for the start-up message.
#[derive(Debug, PartialEq, Eq)]
pub enum Source {
    Environment,
    File(PathBuf),
    Generated(PathBuf),
}

fn parse(bytes: &[u8]) -> Option<Key32> {
    if bytes.len() == 32 {
        return Key32::from_slice(bytes);
    }
    let text = std::str::from_utf8(bytes).ok()?.trim();
    if text.len() == 64
        && let Ok(raw) = hex::decode(text)
    {
        return Key32::from_slice(&raw);
    }
    let raw = zeroize::Zeroizing::new(base64::engine::general_purpose::STANDARD.decode(text).ok()?);
    Key32::from_slice(&raw)
}

fn read_file(path: &Path) -> Result<Key32, String> {
    let mode = std::fs::metadata(path).map_err(|e| format!("{}: {e}", path.display()))?.permissions().mode();
    if mode & 0o077 != 0 {
        return Err(format!("{} is readable by others (mode {:o}); chmod 600 it", path.display(), mode & 0o777));
    }
    let bytes = zeroize::Zeroizing::new(std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?);
    parse(&bytes).ok_or_else(|| format!("{} does not hold a 32-byte key (raw, base64 or hex)", path.display()))
}

pub fn load(state_dir: &Path) -> Result<(Key32, Source), String> {
    if let Some(value) = std::env::var(ENV_KEY).ok().filter(|v| !v.is_empty()) {
        let key = parse(value.as_bytes()).ok_or_else(|| format!("{ENV_KEY} is not a 32-byte key (base64 or hex)"))?;
        return Ok((key, Source::Environment));
    }
    if let Some(path) = std::env::var_os(ENV_FILE).filter(|v| !v.is_empty()).map(PathBuf::from) {
        return Ok((read_file(&path)?, Source::File(path)));
    }
    let path = state_dir.join(DEFAULT_FILE);
    if path.exists() {
        return Ok((read_file(&path)?, Source::File(path)));
    }
    let key = Key32::random().map_err(|e| e.to_string())?;
    std::fs::create_dir_all(state_dir).map_err(|e| format!("{}: {e}", state_dir.display()))?;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    let text = zeroize::Zeroizing::new(base64::engine::general_purpose::STANDARD.encode(key.expose()));
    writeln!(file, "{}", text.as_str())
        .and_then(|()| file.sync_all())
        .map_err(|e| format!("{}: {e}", path.display()))?;
    if let Some(dir) = path.parent() {
        std::fs::File::open(dir).and_then(|d| d.sync_all()).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    Ok((key, Source::Generated(path)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_parse_as_raw_hex_or_base64_and_nothing_else() {
        let raw = [9u8; 32];
        let expect = Key32::from_bytes(raw);
        assert_eq!(parse(&raw).map(|k| *k.expose()), Some(*expect.expose()));
        assert_eq!(parse(hex::encode(raw).as_bytes()).map(|k| *k.expose()), Some(raw));
        let b64 = base64::engine::general_purpose::STANDARD.encode(raw);
        assert_eq!(parse(format!("{b64}\n").as_bytes()).map(|k| *k.expose()), Some(raw));
        assert!(parse(b"short").is_none());
        assert!(parse(base64::engine::general_purpose::STANDARD.encode([1u8; 16]).as_bytes()).is_none());
    }

    #[test]
    fn a_generated_key_is_private_and_stable() {
        if std::env::var(ENV_KEY).is_ok() || std::env::var(ENV_FILE).is_ok() {
            return;
        }
        let dir = tempfile::tempdir().expect("tempdir");
        let (first, source) = load(dir.path()).expect("generate");
        assert!(matches!(source, Source::Generated(_)));
        let mode = std::fs::metadata(dir.path().join(DEFAULT_FILE)).expect("file").permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let (again, source) = load(dir.path()).expect("reload");
        assert!(matches!(source, Source::File(_)));
        assert_eq!(first.expose(), again.expose());
        std::fs::set_permissions(dir.path().join(DEFAULT_FILE), std::fs::Permissions::from_mode(0o644)).expect("chmod");
        assert!(load(dir.path()).expect_err("a world-readable key is refused").contains("chmod 600"));
    }
}
