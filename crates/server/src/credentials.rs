//! Root credentials: from `BULWARK_ROOT_USER` / `BULWARK_ROOT_PASSWORD`, or
//! generated on first start into a 0600 file under the state directory and
//! printed once.

use std::fmt;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use rand::Rng;

pub const ENV_USER: &str = "BULWARK_ROOT_USER";
pub const ENV_PASSWORD: &str = "BULWARK_ROOT_PASSWORD";
const FILE_NAME: &str = "root-credentials";
const SECRET_LEN_MIN: usize = 8;

/// A secret string that never prints.
#[derive(Clone)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: String) -> Secret {
        Secret(value)
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl Drop for Secret {
    fn drop(&mut self) {
        // Overwrite before freeing; a best effort without unsafe code.
        let len = self.0.len();
        self.0.clear();
        self.0.extend(std::iter::repeat_n('\0', len));
    }
}

#[derive(Debug, Clone)]
pub struct Credentials {
    pub access_key: String,
    pub secret_key: Secret,
}

/// How the credentials were obtained, for the start-up message.
#[derive(Debug, PartialEq, Eq)]
pub enum Source {
    Environment,
    File(PathBuf),
    Generated(PathBuf),
}

impl Credentials {
    /// A stable, non-secret owner id derived from the access key.
    pub fn owner_id(&self) -> String {
        blake3::hash(self.access_key.as_bytes()).to_hex().to_string()
    }

    pub fn load(state_dir: &Path) -> Result<(Credentials, Source), String> {
        let user = std::env::var(ENV_USER).ok().filter(|v| !v.is_empty());
        let password = std::env::var(ENV_PASSWORD).ok().filter(|v| !v.is_empty());
        match (user, password) {
            (Some(user), Some(password)) => {
                if password.len() < SECRET_LEN_MIN {
                    return Err(format!("{ENV_PASSWORD} must be at least {SECRET_LEN_MIN} characters"));
                }
                return Ok((Credentials { access_key: user, secret_key: Secret::new(password) }, Source::Environment));
            }
            (Some(_), None) | (None, Some(_)) => {
                return Err(format!("set both {ENV_USER} and {ENV_PASSWORD}, or neither"));
            }
            (None, None) => {}
        }
        let path = state_dir.join(FILE_NAME);
        if path.exists() {
            let mode = std::fs::metadata(&path).map_err(|e| e.to_string())?.permissions().mode();
            if mode & 0o077 != 0 {
                return Err(format!(
                    "{} is readable by others (mode {:o}); chmod 600 it",
                    path.display(),
                    mode & 0o777
                ));
            }
            let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
            let mut lines = text.lines();
            let (Some(user), Some(password)) = (lines.next(), lines.next()) else {
                return Err(format!("{} is malformed", path.display()));
            };
            return Ok((
                Credentials { access_key: user.trim().to_owned(), secret_key: Secret::new(password.trim().to_owned()) },
                Source::File(path),
            ));
        }
        let credentials = Credentials::generate();
        std::fs::create_dir_all(state_dir).map_err(|e| format!("{}: {e}", state_dir.display()))?;
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .map_err(|e| format!("{}: {e}", path.display()))?;
        writeln!(file, "{}\n{}", credentials.access_key, credentials.secret_key.expose())
            .and_then(|()| file.sync_all())
            .map_err(|e| format!("{}: {e}", path.display()))?;
        Ok((credentials, Source::Generated(path)))
    }

    fn generate() -> Credentials {
        const UPPER: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
        const SECRET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
        let mut rng = rand::rng();
        let pick = |alphabet: &[u8], len: usize, rng: &mut rand::rngs::ThreadRng| -> String {
            (0..len).map(|_| alphabet[rng.random_range(0..alphabet.len())] as char).collect()
        };
        Credentials {
            access_key: format!("BW{}", pick(UPPER, 18, &mut rng)),
            secret_key: Secret::new(pick(SECRET, 40, &mut rng)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_credentials_are_kept_private_and_reloaded() {
        let dir = tempfile::tempdir().expect("tempdir");
        // The environment of the test process is not set for these variables.
        if std::env::var(ENV_USER).is_ok() {
            return;
        }
        let (first, source) = Credentials::load(dir.path()).expect("generate");
        assert!(matches!(source, Source::Generated(_)));
        let mode = std::fs::metadata(dir.path().join(FILE_NAME)).expect("file").permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let (again, source) = Credentials::load(dir.path()).expect("reload");
        assert!(matches!(source, Source::File(_)));
        assert_eq!(first.access_key, again.access_key);
        assert_eq!(first.secret_key.expose(), again.secret_key.expose());
        assert_eq!(format!("{:?}", first.secret_key), "[redacted]");
    }
}
