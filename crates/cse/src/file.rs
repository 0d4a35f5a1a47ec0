//! Writing decrypted data so that nothing unauthenticated ever appears under
//! the destination's name.
//!
//! AES-GCM authenticates only at the end of the object, so plaintext is
//! streamed into a temporary file next to the destination (same directory, so
//! the final rename is atomic on one file system), mode 0600, and
//! [`PendingFile::commit`] — called only after the tag verified — fsyncs and
//! renames it into place. Dropping an uncommitted `PendingFile` (any error, a
//! panic) deletes it, so a failed decryption leaves no output, not even a
//! partial one, and an existing destination file untouched.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use aws_lc_rs::rand::{SecureRandom, SystemRandom};

use crate::envelope::Envelope;
use crate::error::{Error, Result};
use crate::keyring::DataKey;
use crate::object::ObjectDecryptor;

/// Bytes read per step by [`decrypt_to_file`].
pub const PIECE_BYTES: usize = 1024 * 1024;
/// Attempts at a fresh temporary name before giving up.
const TEMP_NAME_ATTEMPTS_MAX: usize = 8;

/// A temporary file that becomes `destination` on [`PendingFile::commit`] and
/// disappears otherwise.
pub struct PendingFile {
    file: Option<File>,
    temp_path: PathBuf,
    destination: PathBuf,
    committed: bool,
}

impl PendingFile {
    /// Creates `.NAME.bulwark-cse-RANDOM.part` in the destination's directory.
    pub fn create(destination: &Path) -> Result<PendingFile> {
        let name = destination
            .file_name()
            .ok_or_else(|| Error::io(destination, std::io::Error::other("not a file name")))?
            .to_string_lossy()
            .into_owned();
        let directory = match destination.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => parent.to_owned(),
            _ => PathBuf::from("."),
        };
        let random = SystemRandom::new();
        let mut last_error = None;
        for _ in 0..TEMP_NAME_ATTEMPTS_MAX {
            let mut tag = [0u8; 6];
            random.fill(&mut tag).map_err(|_| Error::Crypto("random source"))?;
            let suffix: String = tag.iter().map(|b| format!("{b:02x}")).collect();
            let temp_path = directory.join(format!(".{name}.bulwark-cse-{suffix}.part"));
            let mut options = OpenOptions::new();
            options.write(true).create_new(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
            match options.open(&temp_path) {
                Ok(file) => {
                    return Ok(PendingFile {
                        file: Some(file),
                        temp_path,
                        destination: destination.to_owned(),
                        committed: false,
                    });
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => last_error = Some(e),
                Err(e) => return Err(Error::io(&temp_path, e)),
            }
        }
        Err(Error::io(&directory, last_error.unwrap_or_else(|| std::io::Error::other("no free temporary name"))))
    }

    pub fn temp_path(&self) -> &Path {
        &self.temp_path
    }

    pub fn write_all(&mut self, bytes: &[u8]) -> Result<()> {
        let file = self.file.as_mut().ok_or_else(|| Error::io(&self.temp_path, std::io::Error::other("closed")))?;
        file.write_all(bytes).map_err(|e| Error::io(&self.temp_path, e))
    }

    /// Fsyncs the data, renames it to the destination and fsyncs the directory.
    /// Call only once the content is authenticated.
    pub fn commit(mut self) -> Result<()> {
        let file = self.file.take().ok_or_else(|| Error::io(&self.temp_path, std::io::Error::other("closed")))?;
        file.sync_all().map_err(|e| Error::io(&self.temp_path, e))?;
        drop(file);
        std::fs::rename(&self.temp_path, &self.destination).map_err(|e| Error::io(&self.destination, e))?;
        self.committed = true;
        if let Some(directory) = self.destination.parent().filter(|p| !p.as_os_str().is_empty()) {
            // Best effort: the data is in place; a failed directory fsync only
            // weakens durability against a crash right now.
            if let Ok(handle) = File::open(directory) {
                let _ = handle.sync_all();
            }
        }
        Ok(())
    }
}

impl Drop for PendingFile {
    fn drop(&mut self) {
        if !self.committed {
            self.file.take();
            let _ = std::fs::remove_file(&self.temp_path);
        }
    }
}

/// Decrypts an object body read from `source` into `destination`, which
/// appears only if the whole body authenticates. Memory: one piece.
pub fn decrypt_to_file(
    source: &mut impl Read,
    envelope: &Envelope,
    data_key: &DataKey,
    allow_legacy: bool,
    destination: &Path,
) -> Result<u64> {
    let mut decryptor = ObjectDecryptor::new(envelope, data_key, allow_legacy)?;
    let mut pending = PendingFile::create(destination)?;
    let mut piece = vec![0u8; PIECE_BYTES];
    let mut plain = zeroize::Zeroizing::new(Vec::with_capacity(PIECE_BYTES + 32));
    let mut written = 0u64;
    loop {
        let read = match source.read(&mut piece) {
            Ok(0) => break,
            Ok(read) => read,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(Error::io(Path::new("<object body>"), e)),
        };
        plain.clear();
        decryptor.update(&piece[..read], &mut plain)?;
        pending.write_all(&plain)?;
        written += plain.len() as u64;
    }
    plain.clear();
    decryptor.finish(&mut plain)?;
    pending.write_all(&plain)?;
    written += plain.len() as u64;
    pending.commit()?;
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::envelope::{Context, Format};
    use crate::keyring::MasterKey;
    use crate::object::{EncryptionMaterials, ObjectEncryptor};

    fn entries(directory: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(directory)
            .expect("read dir")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    fn encrypted(master: &MasterKey, plaintext: &[u8]) -> (Envelope, Vec<u8>) {
        let materials = EncryptionMaterials::with_master_key(master, Format::V2, Context::new()).expect("materials");
        let mut encryptor = ObjectEncryptor::new(materials, None).expect("encryptor");
        let envelope = encryptor.envelope().clone();
        let mut body = Vec::new();
        encryptor.update(plaintext, &mut body).expect("update");
        encryptor.finish(&mut body);
        (envelope, body)
    }

    #[test]
    fn a_verified_body_becomes_the_destination() {
        let directory = tempfile::tempdir().expect("tempdir");
        let master = MasterKey::aes_from_file_contents(&[3; 32]).expect("key");
        let plaintext = vec![0x77; 3 * PIECE_BYTES + 5];
        let (envelope, body) = encrypted(&master, &plaintext);
        let key = master.unwrap(&envelope).expect("unwrap");
        let destination = directory.path().join("out.bin");
        let written = decrypt_to_file(&mut body.as_slice(), &envelope, &key, false, &destination).expect("decrypt");
        assert_eq!(written, plaintext.len() as u64);
        assert_eq!(std::fs::read(&destination).expect("read"), plaintext);
        assert_eq!(entries(directory.path()), vec!["out.bin".to_owned()]);
    }

    #[test]
    fn a_tampered_body_leaves_no_file_and_keeps_the_old_one() {
        let directory = tempfile::tempdir().expect("tempdir");
        let master = MasterKey::aes_from_file_contents(&[3; 32]).expect("key");
        let (envelope, mut body) = encrypted(&master, &vec![0x77; 2 * PIECE_BYTES]);
        let key = master.unwrap(&envelope).expect("unwrap");
        body[PIECE_BYTES + 9] ^= 0x40;

        let fresh = directory.path().join("fresh.bin");
        let result = decrypt_to_file(&mut body.as_slice(), &envelope, &key, false, &fresh);
        assert!(matches!(result, Err(Error::Authentication)));
        assert!(entries(directory.path()).is_empty(), "left: {:?}", entries(directory.path()));

        let existing = directory.path().join("existing.bin");
        std::fs::write(&existing, b"old contents").expect("write");
        let result = decrypt_to_file(&mut body.as_slice(), &envelope, &key, false, &existing);
        assert!(matches!(result, Err(Error::Authentication)));
        assert_eq!(std::fs::read(&existing).expect("read"), b"old contents");
        assert_eq!(entries(directory.path()), vec!["existing.bin".to_owned()]);
    }
}
